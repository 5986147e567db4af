//! Experiment: the escalation BiGRU against the GBDT baseline on generated Harbor tickets,
//! through the same code `recur demo` uses.
//!
//! `cargo run --release -p recur --example harbor_bigru -- TICKETS SEED HIDDEN EPOCHS THREADS OVERSAMPLE`

use std::time::Instant;

use recur::recipe::escalation::{self, EscalationConfig};
use recur::recipe::RunDir;
use recur_data::features::Preprocessor;
use recur_data::harbor::{generate, HarborConfig};
use recur_data::split::split_log;

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: usize| a.get(i).map_or(d, |s| s.parse().unwrap());
    let (tickets, seed, hidden, epochs, threads, over) = (
        arg(0, 20000),
        arg(1, 1) as u64,
        arg(2, 128),
        arg(3, 4),
        arg(4, 2),
        arg(5, 1),
    );
    let mut cfg = EscalationConfig::default();
    cfg.model.hidden_size = hidden;
    cfg.training.epochs = epochs;
    cfg.training.threads = threads;
    cfg.training.seed = seed;
    cfg.oversample_positives = over == 1;
    let t0 = Instant::now();
    let log = generate(&HarborConfig::new(tickets, seed));
    let split = split_log(&log, &cfg.split).unwrap();
    let s = escalation::samples(&cfg, &log, &split).unwrap();
    let pre = Preprocessor::fit(&log, &s.train, cfg.features.clone()).unwrap();
    let yh: Vec<bool> = s.holdout.iter().map(|x| x.label).collect();
    let pg = escalation::gbdt_holdout(&cfg, &log, &s, &pre).unwrap();
    println!(
        "{tickets} tickets: train {} cuts ({} positive), validation {}, holdout {} ({} positive); GBDT done at {:.0} s",
        s.train.len(),
        s.train.iter().filter(|x| x.label).count(),
        s.validation.len(),
        s.holdout.len(),
        yh.iter().filter(|&&y| y).count(),
        t0.elapsed().as_secs_f64()
    );
    let dir = std::env::temp_dir().join(format!("harbor_bigru_{}", std::process::id()));
    let run = RunDir::create(&dir).unwrap();
    let trained = escalation::train_bigru(&cfg, &log, &s, &pre, &run, &mut std::io::stdout()).unwrap();
    let pb = escalation::score(&trained.model, &log, &pre, &s.holdout).unwrap();
    let m = escalation::holdout_metrics(&yh, &pb, &pg).unwrap();
    println!("{m:?}; {:.0} s total", t0.elapsed().as_secs_f64());
    let _ = std::fs::remove_dir_all(dir);
}
