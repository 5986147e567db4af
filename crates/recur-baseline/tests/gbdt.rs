//! Integration tests of the GBDT baseline on small synthetic tables.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use recur_baseline::{train, train_with_validation, BaselineError, GbdtConfig, GbdtModel, RowMatrix};

const N_COLS: usize = 5;

/// Rows of 5 uniform features; the label is `x0 + 0.5·[x1 > 0.5] > 0.8`, flipped for 5 % of
/// rows; x2..x4 are noise, and x4 is NaN (missing) in a tenth of rows.
fn toy(n: usize, seed: u64) -> (Vec<f64>, Vec<bool>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut x = Vec::with_capacity(n * N_COLS);
    let mut y = Vec::with_capacity(n);
    for _ in 0..n {
        let row: Vec<f64> = (0..N_COLS).map(|_| rng.random::<f64>()).collect();
        let rule = row[0] + if row[1] > 0.5 { 0.5 } else { 0.0 } > 0.8;
        y.push(rule ^ (rng.random::<f64>() < 0.05));
        x.extend_from_slice(&row[..N_COLS - 1]);
        x.push(if rng.random::<f64>() < 0.1 {
            f64::NAN
        } else {
            row[N_COLS - 1]
        });
    }
    (x, y)
}

/// Rank-based ROC AUC (ties count half).
fn auc(scores: &[f64], labels: &[bool]) -> f64 {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let (mut rank_sum, mut i) = (0.0, 0);
    while i < idx.len() {
        let j = (i..idx.len())
            .find(|&j| scores[idx[j]] != scores[idx[i]])
            .unwrap_or(idx.len());
        let mid_rank = (i + j + 1) as f64 / 2.0;
        rank_sum += mid_rank * idx[i..j].iter().filter(|&&k| labels[k]).count() as f64;
        i = j;
    }
    let pos = labels.iter().filter(|&&l| l).count() as f64;
    let neg = labels.len() as f64 - pos;
    (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}

fn small_config() -> GbdtConfig {
    GbdtConfig {
        rounds: 60,
        threads: Some(2),
        ..GbdtConfig::default()
    }
}

fn fit_toy(config: &GbdtConfig) -> (GbdtModel, Vec<f64>, Vec<bool>) {
    let (x, y) = toy(4000, 1);
    let model = train(&RowMatrix::new(&x, y.len(), N_COLS).unwrap(), &y, config).unwrap();
    let (tx, ty) = toy(2000, 2);
    let p = model
        .predict_proba(&RowMatrix::new(&tx, ty.len(), N_COLS).unwrap())
        .unwrap();
    (model, p, ty)
}

#[test]
fn learns_a_simple_rule_with_auc_above_0_9() {
    let (_, p, y) = fit_toy(&small_config());
    let a = auc(&p, &y);
    assert!(a > 0.9, "holdout AUC {a}");
    assert!(p.iter().all(|v| (0.0..=1.0).contains(v)));
}

#[test]
fn training_is_deterministic() {
    let (_, a, _) = fit_toy(&small_config());
    let (_, b, _) = fit_toy(&small_config());
    assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
}

#[test]
fn json_round_trip_predicts_bit_exactly() {
    let (model, p, _) = fit_toy(&small_config());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gbdt.json");
    model.save(&path).unwrap();
    let loaded = GbdtModel::load(&path).unwrap();
    let (tx, ty) = toy(2000, 2);
    let q = loaded
        .predict_proba(&RowMatrix::new(&tx, ty.len(), N_COLS).unwrap())
        .unwrap();
    assert!(p.iter().zip(&q).all(|(x, y)| x.to_bits() == y.to_bits()));
    assert_eq!(loaded.config(), model.config());
}

#[test]
fn early_stopping_stops_on_noise_and_keeps_the_best_round() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let x: Vec<f64> = (0..3000 * 2).map(|_| rng.random()).collect();
    let y: Vec<bool> = (0..3000).map(|_| rng.random::<f64>() < 0.3).collect();
    let (train_x, valid_x) = x.split_at(2000 * 2);
    let config = GbdtConfig {
        rounds: 300,
        early_stopping_rounds: 10,
        threads: Some(2),
        ..GbdtConfig::default()
    };
    let model = train_with_validation(
        &RowMatrix::new(train_x, 2000, 2).unwrap(),
        &y[..2000],
        &RowMatrix::new(valid_x, 1000, 2).unwrap(),
        &y[2000..],
        &config,
    )
    .unwrap();
    assert!(model.n_trees() < 300, "grew {} trees on pure noise", model.n_trees());
    let best = model.best_round().expect("early stopping records the best round");
    assert!(best < model.n_trees());
}

#[test]
fn config_errors_name_the_field() {
    let cases: [(&str, GbdtConfig); 4] = [
        (
            "rounds",
            GbdtConfig {
                rounds: 0,
                ..GbdtConfig::default()
            },
        ),
        (
            "learning_rate",
            GbdtConfig {
                learning_rate: 0.0,
                ..GbdtConfig::default()
            },
        ),
        (
            "max_depth",
            GbdtConfig {
                max_depth: 40,
                ..GbdtConfig::default()
            },
        ),
        (
            "n_bins",
            GbdtConfig {
                n_bins: 1,
                ..GbdtConfig::default()
            },
        ),
    ];
    let x = [0.0, 1.0];
    for (name, config) in cases {
        match train(&RowMatrix::new(&x, 2, 1).unwrap(), &[false, true], &config) {
            Err(BaselineError::Config { field, .. }) => assert_eq!(field, name),
            other => panic!("{name}: expected a config error, got {other:?}"),
        }
    }
}

#[test]
fn shape_errors_are_reported() {
    let x = [0.0; 6];
    assert!(matches!(
        RowMatrix::new(&x, 4, 2),
        Err(BaselineError::Shape { name: "features", .. })
    ));
    let m = RowMatrix::new(&x, 3, 2).unwrap();
    let err = train(&m, &[true, false], &small_config()).unwrap_err();
    assert!(
        matches!(
            err,
            BaselineError::Shape {
                name: "labels",
                got: 2,
                expected: 3
            }
        ),
        "{err}"
    );
    let (model, _, _) = fit_toy(&small_config());
    assert!(matches!(model.predict_proba(&m), Err(BaselineError::Shape { .. })));
}

#[test]
fn config_json_uses_documented_defaults() {
    let c: GbdtConfig = serde_json::from_str(r#"{"rounds": 50}"#).unwrap();
    assert_eq!(
        c,
        GbdtConfig {
            rounds: 50,
            ..GbdtConfig::default()
        }
    );
    assert!(serde_json::from_str::<GbdtConfig>(r#"{"round": 50}"#).is_err());
}

/// Timing of the full-size baseline job: `cargo test --release -p recur-baseline -- --ignored`.
#[test]
#[ignore = "timing run: about a minute on 2 cores"]
fn timing_500k_rows_60_features() {
    let (n, cols) = (500_000, 60);
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let x: Vec<f64> = (0..n * cols).map(|_| rng.random()).collect();
    let y: Vec<bool> = (0..n).map(|i| x[i * cols] + 0.3 * rng.random::<f64>() > 1.0).collect();
    let (vx, vy) = (&x[..50_000 * cols], &y[..50_000]);
    let start = std::time::Instant::now();
    let model = train_with_validation(
        &RowMatrix::new(&x, n, cols).unwrap(),
        &y,
        &RowMatrix::new(vx, 50_000, cols).unwrap(),
        vy,
        &GbdtConfig {
            early_stopping_rounds: 1000,
            ..GbdtConfig::default()
        },
    )
    .unwrap();
    eprintln!("{} trees on {n} x {cols} in {:?}", model.n_trees(), start.elapsed());
}
