//! recur's baseline: gradient-boosted trees on flat per-ticket features (binary log-loss),
//! the model the BiGRU escalation forecaster is compared with on the same holdout.
//!
//! Inputs are row-major `[n_rows, n_features]` matrices such as those built by
//! `recur_data::aggregate`; NaN means missing and is routed by learned default directions.
//! This crate knows nothing of events, sequences or the recurrent engine, and must never
//! depend on them.
//!
//! # Which GBDT crate, and why
//! [`forust-ml`](https://crates.io/crates/forust-ml) 0.8: pure Rust (rayon, serde; no C or
//! C++ toolchain), XGBoost-style histogram trees with the parameters this baseline is
//! specified with (rounds, depth, learning rate, L2, min leaf weight), binary log-loss,
//! native missing values, early stopping on an evaluation set, and JSON (de)serialisation of
//! the whole booster. Without row or column subsampling it uses no randomness, and the
//! test suite checks that two fits give bit-identical predictions with two threads.
//!
//! Measured on this project's 2-core machine with 500k rows × 60 features and the default
//! config (300 rounds, depth 6, learning rate 0.1, 64 bins): 25 s for all 300 rounds
//! (`cargo test --release -p recur-baseline -- --ignored timing`).
//!
//! Also evaluated:
//! - `perpetual` (the most actively developed Rust GBM): its stable 1.x/2.x releases require a nightly compiler (`#![feature(array_ptr_get)]`); the
//!   3.0 release candidate builds on stable but is pre-release, replaces depth/rate/rounds with a
//!   single "budget", and took 415 s to fit 100k × 60 rows here at budget 0.5.
//! - `gbdt` (gbdt-rs, last release 0.1.3): single-threaded, exact (unbinned) splits: 12 s for 20 rounds
//!   on 100k rows, i.e. roughly 15 minutes for the 500k-row job.
//!
//! # Example
//! ```
//! use recur_baseline::{train, GbdtConfig, RowMatrix};
//! let x: Vec<f64> = (0..200).map(|i| (i % 10) as f64).collect();
//! let y: Vec<bool> = (0..200).map(|i| i % 10 >= 5).collect();
//! let features = RowMatrix::new(&x, 200, 1).unwrap();
//! let model = train(&features, &y, &GbdtConfig { rounds: 20, ..GbdtConfig::default() }).unwrap();
//! let p = model.predict_proba(&features).unwrap();
//! assert!(p[9] > 0.5 && p[0] < 0.5);
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::fmt;
use std::path::Path;

use forust_ml::gradientbooster::GradientBooster;
use forust_ml::metric::Metric;
use forust_ml::objective::ObjectiveType;
use forust_ml::Matrix;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Errors of the baseline.
#[derive(Debug, Error)]
pub enum BaselineError {
    /// A configuration field is invalid.
    #[error("invalid GBDT config field `{field}`: {reason}")]
    Config {
        /// The field name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Input shapes disagree.
    #[error("`{name}` has {got} values, expected {expected}")]
    Shape {
        /// Which input.
        name: &'static str,
        /// The number of values given.
        got: usize,
        /// The number required.
        expected: usize,
    },
    /// Training needs at least one row.
    #[error("no training rows")]
    Empty,
    /// The GBDT library failed.
    #[error("forust-ml: {0}")]
    Library(String),
    /// Reading or writing a model file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A saved model is not valid JSON for this crate.
    #[error("model JSON: {0}")]
    Json(String),
}

/// Result alias for this crate.
pub type Result<T, E = BaselineError> = std::result::Result<T, E>;

/// A borrowed dense row-major `[n_rows, n_cols]` matrix of `f64` (NaN = missing).
#[derive(Clone, Copy, Debug)]
pub struct RowMatrix<'a> {
    data: &'a [f64],
    n_rows: usize,
    n_cols: usize,
}

impl<'a> RowMatrix<'a> {
    /// Wraps `data`; errors unless `data.len() == n_rows * n_cols` and `n_cols > 0`.
    pub fn new(data: &'a [f64], n_rows: usize, n_cols: usize) -> Result<Self> {
        if n_cols == 0 {
            return Err(BaselineError::Shape {
                name: "n_cols",
                got: 0,
                expected: 1,
            });
        }
        if Some(data.len()) != n_rows.checked_mul(n_cols) {
            return Err(BaselineError::Shape {
                name: "features",
                got: data.len(),
                expected: n_rows * n_cols,
            });
        }
        Ok(Self { data, n_rows, n_cols })
    }

    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// Number of columns.
    pub fn n_cols(&self) -> usize {
        self.n_cols
    }

    /// Column-major copy, the layout forust-ml reads.
    fn to_column_major(self) -> Vec<f64> {
        let mut out = vec![0.0; self.data.len()];
        for (r, row) in self.data.chunks_exact(self.n_cols).enumerate() {
            for (c, &v) in row.iter().enumerate() {
                out[c * self.n_rows + r] = v;
            }
        }
        out
    }
}

/// GBDT hyperparameters (serde, documented defaults), validated by [`train`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GbdtConfig {
    /// Maximum boosting rounds (trees). Default 300.
    pub rounds: usize,
    /// Shrinkage per tree, in (0, 1]. Default 0.1.
    pub learning_rate: f32,
    /// Maximum tree depth, 1..=16. Default 6.
    pub max_depth: usize,
    /// Minimum hessian sum per leaf. Default 1.0.
    pub min_leaf_weight: f32,
    /// L2 penalty on leaf weights. Default 1.0.
    pub l2: f32,
    /// Histogram bins per feature, 2..=256. Default 64.
    pub n_bins: u16,
    /// Stop when validation log-loss has not improved for this many rounds (only with
    /// [`train_with_validation`]); predictions then use the best round. Default 30.
    pub early_stopping_rounds: usize,
    /// Weight of positive rows (negatives weigh 1), > 0. Default 1.0.
    pub positive_weight: f64,
    /// Worker threads; `None` = all cores. Default `None`.
    pub threads: Option<usize>,
    /// Seed passed to forust-ml (used only by its subsampling, which is off). Default 0.
    pub seed: u64,
}

impl Default for GbdtConfig {
    fn default() -> Self {
        Self {
            rounds: 300,
            learning_rate: 0.1,
            max_depth: 6,
            min_leaf_weight: 1.0,
            l2: 1.0,
            n_bins: 64,
            early_stopping_rounds: 30,
            positive_weight: 1.0,
            threads: None,
            seed: 0,
        }
    }
}

impl GbdtConfig {
    /// Checks every field; errors name the field.
    pub fn validate(&self) -> Result<()> {
        let bad = |field, reason: String| Err(BaselineError::Config { field, reason });
        if self.rounds == 0 || self.rounds > 100_000 {
            return bad("rounds", format!("{} is outside 1..=100000", self.rounds));
        }
        if !(self.learning_rate > 0.0 && self.learning_rate <= 1.0) {
            return bad("learning_rate", format!("{} is outside (0, 1]", self.learning_rate));
        }
        if !(1..=16).contains(&self.max_depth) {
            return bad("max_depth", format!("{} is outside 1..=16", self.max_depth));
        }
        if !(self.min_leaf_weight >= 0.0 && self.min_leaf_weight.is_finite()) {
            return bad(
                "min_leaf_weight",
                format!("{} is not a finite value >= 0", self.min_leaf_weight),
            );
        }
        if !(self.l2 >= 0.0 && self.l2.is_finite()) {
            return bad("l2", format!("{} is not a finite value >= 0", self.l2));
        }
        if !(2..=256).contains(&self.n_bins) {
            return bad("n_bins", format!("{} is outside 2..=256", self.n_bins));
        }
        if self.early_stopping_rounds == 0 {
            return bad("early_stopping_rounds", "must be at least 1".into());
        }
        if !(self.positive_weight > 0.0 && self.positive_weight.is_finite()) {
            return bad(
                "positive_weight",
                format!("{} is not a finite value > 0", self.positive_weight),
            );
        }
        if self.threads == Some(0) {
            return bad("threads", "must be at least 1 (or absent for all cores)".into());
        }
        Ok(())
    }

    fn booster(&self) -> GradientBooster {
        GradientBooster::default()
            .set_objective_type(ObjectiveType::LogLoss)
            .set_iterations(self.rounds)
            .set_learning_rate(self.learning_rate)
            .set_max_depth(self.max_depth)
            .set_min_leaf_weight(self.min_leaf_weight)
            .set_l2(self.l2)
            .set_nbins(self.n_bins)
            .set_initialize_base_score(true)
            .set_parallel(true)
            .set_num_threads(self.threads)
            .set_seed(self.seed)
    }
}

/// A fitted GBDT classifier.
#[derive(Serialize, Deserialize)]
pub struct GbdtModel {
    n_features: usize,
    config: GbdtConfig,
    booster: GradientBooster,
}

impl fmt::Debug for GbdtModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GbdtModel")
            .field("n_features", &self.n_features)
            .field("n_trees", &self.n_trees())
            .field("best_round", &self.best_round())
            .field("config", &self.config)
            .finish()
    }
}

/// Fits `config.rounds` trees on `features` and `labels` (no early stopping).
pub fn train(features: &RowMatrix<'_>, labels: &[bool], config: &GbdtConfig) -> Result<GbdtModel> {
    fit(features, labels, None, config)
}

/// Fits with early stopping on validation log-loss ([`GbdtConfig::early_stopping_rounds`]).
pub fn train_with_validation(
    features: &RowMatrix<'_>,
    labels: &[bool],
    valid_features: &RowMatrix<'_>,
    valid_labels: &[bool],
    config: &GbdtConfig,
) -> Result<GbdtModel> {
    fit(features, labels, Some((valid_features, valid_labels)), config)
}

fn fit(
    features: &RowMatrix<'_>,
    labels: &[bool],
    valid: Option<(&RowMatrix<'_>, &[bool])>,
    config: &GbdtConfig,
) -> Result<GbdtModel> {
    config.validate()?;
    check_rows(features, labels, "labels")?;
    if features.n_rows == 0 {
        return Err(BaselineError::Empty);
    }
    let x = features.to_column_major();
    let y = as_targets(labels);
    let w: Vec<f64> = labels
        .iter()
        .map(|&l| if l { config.positive_weight } else { 1.0 })
        .collect();
    let mut booster = config.booster();
    let library = |e: forust_ml::errors::ForustError| BaselineError::Library(e.to_string());
    match valid {
        None => booster
            .fit(&Matrix::new(&x, features.n_rows, features.n_cols), &y, &w, None)
            .map_err(library)?,
        Some((vf, vl)) => {
            check_rows(vf, vl, "valid_labels")?;
            if vf.n_cols != features.n_cols {
                return Err(BaselineError::Shape {
                    name: "valid_features columns",
                    got: vf.n_cols,
                    expected: features.n_cols,
                });
            }
            let (vx, vy, vw) = (vf.to_column_major(), as_targets(vl), vec![1.0; vl.len()]);
            let eval = vec![(Matrix::new(&vx, vf.n_rows, vf.n_cols), vy.as_slice(), vw.as_slice())];
            booster = booster
                .set_evaluation_metric(Some(Metric::LogLoss))
                .set_early_stopping_rounds(Some(config.early_stopping_rounds));
            booster
                .fit(&Matrix::new(&x, features.n_rows, features.n_cols), &y, &w, Some(eval))
                .map_err(library)?;
        }
    }
    Ok(GbdtModel {
        n_features: features.n_cols,
        config: config.clone(),
        booster,
    })
}

impl GbdtModel {
    /// Probability of the positive class for each row of `features`.
    pub fn predict_proba(&self, features: &RowMatrix<'_>) -> Result<Vec<f64>> {
        Ok(self.predict_log_odds(features)?.into_iter().map(sigmoid).collect())
    }

    /// Raw scores (log-odds) for each row of `features`.
    pub fn predict_log_odds(&self, features: &RowMatrix<'_>) -> Result<Vec<f64>> {
        if features.n_cols != self.n_features {
            return Err(BaselineError::Shape {
                name: "features columns",
                got: features.n_cols,
                expected: self.n_features,
            });
        }
        let x = features.to_column_major();
        Ok(self
            .booster
            .predict(&Matrix::new(&x, features.n_rows, features.n_cols), true))
    }

    /// Number of features the model was trained on.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Trees grown (including those after the best round when early stopping).
    pub fn n_trees(&self) -> usize {
        self.booster.trees.len()
    }

    /// The best round (0-based) under early stopping; predictions use rounds `0..=best`.
    pub fn best_round(&self) -> Option<usize> {
        self.booster.best_iteration
    }

    /// The configuration the model was trained with.
    pub fn config(&self) -> &GbdtConfig {
        &self.config
    }

    /// Mean split gain per feature (index = column), normalised to sum to 1; 0 for unused.
    pub fn feature_importance(&self) -> Vec<f32> {
        let gains = self
            .booster
            .calculate_feature_importance(forust_ml::gradientbooster::ImportanceMethod::Gain, true);
        (0..self.n_features)
            .map(|i| gains.get(&i).copied().unwrap_or(0.0))
            .collect()
    }

    /// Serialises to JSON (floats round-trip bit-exactly).
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|e| BaselineError::Json(e.to_string()))
    }

    /// Loads from [`GbdtModel::to_json`] output.
    pub fn from_json(json: &str) -> Result<Self> {
        serde_json::from_str(json).map_err(|e| BaselineError::Json(e.to_string()))
    }

    /// Writes [`GbdtModel::to_json`] to `path`.
    pub fn save(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.to_json()?).map_err(|source| BaselineError::Io {
            path: path.display().to_string(),
            source,
        })
    }

    /// Reads a model written by [`GbdtModel::save`].
    pub fn load(path: &Path) -> Result<Self> {
        let json = std::fs::read_to_string(path).map_err(|source| BaselineError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_json(&json)
    }
}

fn check_rows(features: &RowMatrix<'_>, labels: &[bool], name: &'static str) -> Result<()> {
    if labels.len() != features.n_rows {
        return Err(BaselineError::Shape {
            name,
            got: labels.len(),
            expected: features.n_rows,
        });
    }
    Ok(())
}

fn as_targets(labels: &[bool]) -> Vec<f64> {
    labels.iter().map(|&l| if l { 1.0 } else { 0.0 }).collect()
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}
