//! `recur train` / `eval` / `predict` recipes: turning data files into a trained checkpoint
//! with logs, metrics and a plot.
//!
//! * [`config`]: the recipe file and `--set` overrides (every field has a default: the
//!   default recipe).
//! * [`classify`]: sequence classification from UEA/UCR `.ts` files: per-channel scaling
//!   fitted on the training split, first differences, patching of long series, a stratified
//!   validation split carved from the training file, a bidirectional GRU with mean+max
//!   pooling, early stopping, then a refit on the whole training file.
//! * [`forecast`]: forecasting a CSV series with a GRU over a window of past values, compared
//!   with the seasonal-naive forecast.
//!
//! A run directory holds `model/` (the checkpoint), `last/` (the resumable state),
//! `metrics.jsonl` (one line per epoch), `metrics.json` (final figures), `config.toml` (the
//! resolved recipe) and `training_curve.svg`.

pub mod classify;
pub mod config;
pub mod demo;
pub mod escalation;
pub mod forecast;
pub mod plot;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use recur_train::trainer::EpochRecord;
use serde_json::Value;
use thiserror::Error;

pub use config::RecipeConfig;

/// Errors of the recipes; each names the file or field at fault.
#[derive(Debug, Error)]
pub enum RecipeError {
    /// The recipe config is invalid.
    #[error("config: {0}")]
    Config(String),
    /// A data file cannot be used.
    #[error(transparent)]
    Data(#[from] recur_data::series::SeriesError),
    /// Training or a checkpoint failed.
    #[error(transparent)]
    Train(#[from] recur_train::TrainError),
    /// The inputs do not fit together.
    #[error("{0}")]
    Invalid(String),
    /// An I/O error at a path.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

impl RecipeError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        RecipeError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// Result alias for recipes.
pub type Result<T> = std::result::Result<T, RecipeError>;

/// The files of a run directory.
#[derive(Clone, Debug)]
pub struct RunDir {
    /// The directory.
    pub root: PathBuf,
}

impl RunDir {
    /// Creates the directory (and parents).
    pub fn create(root: &Path) -> Result<Self> {
        std::fs::create_dir_all(root).map_err(|e| RecipeError::io(root, e))?;
        Ok(RunDir {
            root: root.to_path_buf(),
        })
    }

    /// The best checkpoint.
    pub fn model(&self) -> PathBuf {
        self.root.join("model")
    }

    /// The resumable checkpoint.
    pub fn last(&self) -> PathBuf {
        self.root.join("last")
    }

    /// Writes `metrics.jsonl` (one record per line, each with its phase) atomically.
    pub fn write_epochs(&self, records: &[(String, EpochRecord)]) -> Result<()> {
        let mut text = String::new();
        for (phase, r) in records {
            let mut v = serde_json::to_value(r).expect("record serializes");
            v["phase"] = Value::String(phase.clone());
            text.push_str(&serde_json::to_string(&v).expect("json"));
            text.push('\n');
        }
        self.write("metrics.jsonl", text.as_bytes())
    }

    /// Writes a file in the run directory atomically.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let p = self.root.join(name);
        recur_train::fsutil::write_atomic(&p, bytes).map_err(|e| RecipeError::io(&p, e))
    }

    /// Writes `metrics.json`.
    pub fn write_metrics(&self, v: &Value) -> Result<()> {
        let mut b = serde_json::to_vec_pretty(v).expect("json");
        b.push(b'\n');
        self.write("metrics.json", &b)
    }
}

/// An epoch progress bar on a terminal (stderr), hidden otherwise.
pub(crate) fn progress(len: u64, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} epochs {msg}")
            .expect("template")
            .progress_chars("=> "),
    );
    pb.set_prefix(what.to_string());
    pb
}

/// One-line summary of an epoch for the progress bar.
pub(crate) fn epoch_message(r: &EpochRecord) -> String {
    let mut s = format!("loss {:.4}", r.train_loss);
    for (k, v) in &r.val {
        s.push_str(&format!(" val_{k} {v:.4}"));
    }
    s
}
