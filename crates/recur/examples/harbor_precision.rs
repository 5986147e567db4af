//! Experiment: the forecaster's holdout AUC with the recurrent weights stored in f32, f16 and
//! int8 (per-row scales), for a run directory made by `recur demo --tickets N --seed S`.
//!
//! `cargo run --release -p recur --example harbor_precision -- RUN_DIR TICKETS SEED`
//!
//! The log is regenerated from (TICKETS, SEED) and split with the run's config, so the holdout
//! cut points are exactly the run's.

use std::path::PathBuf;

use recur::recipe::escalation::{self, EscalationConfig};
use recur_data::harbor::{generate, HarborConfig};
use recur_data::split::split_log;
use recur_nn::Precision;
use recur_train::metrics::roc_auc;

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let run = PathBuf::from(a.first().expect("RUN_DIR"));
    let tickets: usize = a.get(1).map_or(20000, |s| s.parse().expect("TICKETS"));
    let seed: u64 = a.get(2).map_or(1, |s| s.parse().expect("SEED"));
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("metrics.json")).expect("metrics.json")).unwrap();
    let mut raw = metrics["config"].clone();
    // Runs made before `train_cuts` replaced it.
    raw.as_object_mut()
        .expect("config object")
        .remove("oversample_positives");
    let cfg: EscalationConfig = serde_json::from_value(raw).expect("config");
    let log = generate(&HarborConfig::new(tickets, seed));
    let split = split_log(&log, &cfg.split).unwrap();
    let s = escalation::samples(&cfg, &log, &split).unwrap();
    let y: Vec<bool> = s.holdout.iter().map(|x| x.label).collect();
    let (model, pre, _) = escalation::load(&run.join("model")).unwrap();
    let mut base = None;
    for p in [Precision::F32, Precision::F16, Precision::Int8] {
        let mut m = model.clone();
        m.set_precision(p);
        let probs = escalation::score(&m, &log, &pre, &s.holdout).unwrap();
        let auc = roc_auc(&y, &probs).unwrap();
        let b: &Vec<f64> = base.get_or_insert(probs.clone());
        let max_diff = b.iter().zip(&probs).map(|(x, z)| (x - z).abs()).fold(0.0, f64::max);
        println!(
            "{:>5}: holdout AUC {auc:.5} ({} cuts, {} positive); max |Δp| vs f32 {max_diff:.2e}; recorded bigru_auc {}",
            p.name(),
            y.len(),
            y.iter().filter(|&&v| v).count(),
            metrics["holdout"]["bigru_auc"]
        );
    }
}
