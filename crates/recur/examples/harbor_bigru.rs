//! Experiment: the escalation BiGRU against the GBDT baseline on generated Harbor tickets,
//! through the same code `recur demo` uses, with holdout AUC per escalation cause (the
//! generator's latent story: each cause's positive cuts against all negative cuts).
//!
//! `cargo run --release -p recur --example harbor_bigru -- TICKETS SEED [key=value ...]`
//!
//! `key=value` overrides fields of the forecaster config exactly as `recur demo --set` does
//! (for example `model.hidden_size=64 training.epochs=2 train_cuts="every_event"`).

use std::time::Instant;

use recur::recipe::config::with_sets;
use recur::recipe::escalation::{self, EscalationConfig};
use recur::recipe::RunDir;
use recur_data::features::Preprocessor;
use recur_data::harbor::{cause_subsets, generate_annotated, HarborConfig};
use recur_data::split::split_log;
use recur_train::metrics::roc_auc;

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let tickets: usize = a.first().map_or(20000, |s| s.parse().expect("TICKETS"));
    let seed: u64 = a.get(1).map_or(1, |s| s.parse().expect("SEED"));
    let mut base = EscalationConfig::default();
    base.training.seed = seed;
    let cfg = with_sets(&base, &a[2.min(a.len())..]).expect("overrides");
    let t0 = Instant::now();
    let (log, stories) = generate_annotated(&HarborConfig::new(tickets, seed));
    let split = split_log(&log, &cfg.split).unwrap();
    let s = escalation::samples(&cfg, &log, &split).unwrap();
    let pre = Preprocessor::fit(&log, &s.train, cfg.features.clone()).unwrap();
    let yh: Vec<bool> = s.holdout.iter().map(|x| x.label).collect();
    let pg = escalation::gbdt_holdout(&cfg, &log, &s, &pre).unwrap();
    println!(
        "{tickets} tickets: train {} cuts ({} positive), validation {} ({} positive), holdout {} ({} positive); GBDT done at {:.0} s",
        s.train.len(),
        s.train.iter().filter(|x| x.label).count(),
        s.validation.len(),
        s.validation.iter().filter(|x| x.label).count(),
        s.holdout.len(),
        yh.iter().filter(|&&y| y).count(),
        t0.elapsed().as_secs_f64()
    );
    let dir = std::env::temp_dir().join(format!("harbor_bigru_{}", std::process::id()));
    let run = RunDir::create(&dir).unwrap();
    let trained = escalation::train_bigru(&cfg, &log, &s, &pre, &run, &mut std::io::stdout()).unwrap();
    let pb = escalation::score(&trained.model, &log, &pre, &s.holdout).unwrap();
    let m = escalation::holdout_metrics(&yh, &pb, &pg).unwrap();
    println!("{}", serde_json::to_string(&m).unwrap());
    // Per cause: that cause's positives against every negative.
    for (c, keep) in cause_subsets(&s.holdout, &stories) {
        let y: Vec<bool> = keep.iter().map(|&i| yh[i]).collect();
        let sub = |p: &[f64]| keep.iter().map(|&i| p[i]).collect::<Vec<f64>>();
        println!(
            "  {c:<28} {:>4} positives: BiGRU {:.3}  GBDT {:.3}",
            y.iter().filter(|&&v| v).count(),
            roc_auc(&y, &sub(&pb)).unwrap(),
            roc_auc(&y, &sub(&pg)).unwrap()
        );
    }
    println!("{:.0} s total", t0.elapsed().as_secs_f64());
    let _ = std::fs::remove_dir_all(dir);
}
