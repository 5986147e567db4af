//! The gradient-boosted-tree baseline on synthetic Harbor Support tickets: generate, split by
//! time, label cut points at a 4-hour horizon, aggregate the visible prefixes, train with
//! early stopping on the validation window, and report the holdout AUC.
//!
//! `cargo run --release -p recur-baseline --example harbor_baseline -- [TICKETS] [SEED]`

use std::time::Instant;

use recur_baseline::{train_with_validation, GbdtConfig, RowMatrix};
use recur_data::aggregate::{AggregateFeaturizer, FeatureMatrix};
use recur_data::features::{FeatureConfig, Preprocessor};
use recur_data::harbor::{generate, HarborConfig};
use recur_data::labels::{LabelConfig, Labeler, Sample};
use recur_data::split::{split_log, SplitConfig};

fn rows(f: &FeatureMatrix) -> RowMatrix<'_> {
    RowMatrix::new(&f.data, f.n_rows, f.n_cols).expect("matrix")
}

/// ROC-AUC as the Mann–Whitney statistic with half credit for ties.
fn auc(scores: &[f64], labels: &[bool]) -> f64 {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let (mut rank_sum, mut i) = (0.0, 0);
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let mid = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += (i..=j).filter(|&k| labels[idx[k]]).count() as f64 * mid;
        i = j + 1;
    }
    let pos = labels.iter().filter(|&&l| l).count() as f64;
    let neg = labels.len() as f64 - pos;
    (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let tickets: usize = args.next().map_or(20_000, |s| s.parse().expect("TICKETS"));
    let seed: u64 = args.next().map_or(1, |s| s.parse().expect("SEED"));
    let t0 = Instant::now();
    let log = generate(&HarborConfig::new(tickets, seed));
    let split = split_log(&log, &SplitConfig::default()).expect("time split");
    let samples = Labeler::new(LabelConfig::default())
        .expect("labels")
        .split_samples(&log, &split);
    let pre = Preprocessor::fit(&log, &samples.train, FeatureConfig::default()).expect("preprocessing");
    let agg = AggregateFeaturizer::from_preprocessor(&pre);
    let m = |s: &[Sample]| (agg.matrix(&log, s), s.iter().map(|s| s.label).collect::<Vec<bool>>());
    let ((xt, yt), (xv, yv), (xh, yh)) = (m(&samples.train), m(&samples.validation), m(&samples.holdout));
    let rate = |y: &[bool]| y.iter().filter(|&&l| l).count() as f64 / y.len() as f64;
    println!(
        "{tickets} tickets (seed {seed}); samples train {} ({:.2}% positive), validation {}, holdout {} ({:.2}% positive); {} features",
        yt.len(),
        100.0 * rate(&yt),
        yv.len(),
        yh.len(),
        100.0 * rate(&yh),
        xt.n_cols
    );
    let model = train_with_validation(&rows(&xt), &yt, &rows(&xv), &yv, &GbdtConfig::default()).expect("train");
    let p = model.predict_proba(&rows(&xh)).expect("predict");
    println!(
        "GBDT holdout AUC {:.4} ({} trees, best round {:?}); {:.1} s",
        auc(&p, &yh),
        model.n_trees(),
        model.best_round(),
        t0.elapsed().as_secs_f64()
    );
}
