//! Experiment: the GBDT baseline's holdout AUC on Harbor tickets with feature subsets (the
//! guide's "counts per type, last event, duration, priority" against recur's full aggregate
//! set), overall and per escalation cause.
//!
//! `cargo run --release -p recur --example harbor_gbdt -- TICKETS SEED`

use recur::recipe::escalation::{self, EscalationConfig};
use recur_baseline::{train_with_validation, RowMatrix};
use recur_data::aggregate::{AggregateFeaturizer, FeatureMatrix};
use recur_data::features::Preprocessor;
use recur_data::harbor::{cause_subsets, generate_annotated, HarborConfig};
use recur_data::split::split_log;
use recur_train::metrics::roc_auc;

/// A named feature filter.
type FeatureSet<'a> = (&'a str, Box<dyn Fn(&str) -> bool>);

fn select(m: &FeatureMatrix, keep: &[usize]) -> Vec<f64> {
    (0..m.n_rows)
        .flat_map(|r| keep.iter().map(move |&c| m.data[r * m.n_cols + c]))
        .collect()
}

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let tickets: usize = a.first().map_or(20000, |s| s.parse().expect("TICKETS"));
    let seed: u64 = a.get(1).map_or(1, |s| s.parse().expect("SEED"));
    let cfg = EscalationConfig::default();
    let (log, stories) = generate_annotated(&HarborConfig::new(tickets, seed));
    let split = split_log(&log, &cfg.split).unwrap();
    let s = escalation::samples(&cfg, &log, &split).unwrap();
    let pre = Preprocessor::fit(&log, &s.train, cfg.features.clone()).unwrap();
    let agg = AggregateFeaturizer::from_preprocessor(&pre);
    let names = agg.names();
    let (xt, xv, xh) = (
        agg.matrix(&log, &s.train),
        agg.matrix(&log, &s.validation),
        agg.matrix(&log, &s.holdout),
    );
    let y = |v: &[recur_data::labels::Sample]| v.iter().map(|x| x.label).collect::<Vec<bool>>();
    let (yt, yv, yh) = (y(&s.train), y(&s.validation), y(&s.holdout));
    let guide = |n: &str| {
        n.starts_with("count:")
            || n.starts_with("last_type:")
            || n == "duration_hours"
            || n == "events_so_far"
            || n.starts_with("priority:")
    };
    let sets: Vec<FeatureSet> = vec![
        ("full", Box::new(|_: &str| true)),
        ("guide: counts, last type, duration, priority", Box::new(guide)),
        (
            "guide + sentiment",
            Box::new(move |n: &str| guide(n) || n.starts_with("sentiment:")),
        ),
        (
            "full without recency (events_last_*, gaps, cut time)",
            Box::new(|n: &str| !(n.starts_with("events_last") || n.ends_with("gap_hours") || n.starts_with("cut_"))),
        ),
    ];
    for (label, f) in sets {
        let keep: Vec<usize> = (0..names.len()).filter(|&i| f(&names[i])).collect();
        let k = keep.len();
        let (t, v, h) = (select(&xt, &keep), select(&xv, &keep), select(&xh, &keep));
        let m = train_with_validation(
            &RowMatrix::new(&t, xt.n_rows, k).unwrap(),
            &yt,
            &RowMatrix::new(&v, xv.n_rows, k).unwrap(),
            &yv,
            &cfg.gbdt,
        )
        .unwrap();
        let p = m.predict_proba(&RowMatrix::new(&h, xh.n_rows, k).unwrap()).unwrap();
        let mut line = format!("{label} ({k} features): AUC {:.4} |", roc_auc(&yh, &p).unwrap());
        for (c, keep) in cause_subsets(&s.holdout, &stories) {
            let yy: Vec<bool> = keep.iter().map(|&i| yh[i]).collect();
            let pp: Vec<f64> = keep.iter().map(|&i| p[i]).collect();
            line += &format!(" {c} {:.3}", roc_auc(&yy, &pp).unwrap());
        }
        println!("{line}");
    }
}
