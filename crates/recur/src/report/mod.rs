//! The HTML report of an escalation-forecaster run (`recur report --run DIR`).
//!
//! The forecaster (`recur demo`) trains a BiGRU and a gradient-boosted-tree baseline, scores
//! both on a time-based holdout, benchmarks latency, and leaves a run directory. [`generate`]
//! reads that directory, writes `DIR/report.html` and merges the figures it computed into
//! `DIR/metrics.json`.
//!
//! # Inputs (in the run directory)
//!
//! * **`holdout_scores.csv`** (required): the header `ticket_id,cut_ms,label,bigru,gbdt`, then
//!   one row per holdout cut point: the ticket id (text; quoted as in RFC 4180 when it holds a
//!   comma, a quote or surrounding spaces; never a line break), the cut time in milliseconds
//!   (integer), the label `0` or `1` (escalated within the horizon), and the two models'
//!   probabilities of escalation in `[0, 1]`. Written by [`write_scores`] (atomically), read by
//!   [`read_scores`], whose errors name the file and line: a wrong column count, a bad number,
//!   a label other than `0`/`1`, a probability outside `[0, 1]` or NaN. Both classes must
//!   occur, or ROC and precision-recall are undefined.
//! * **`metrics.jsonl`** (optional): one JSON object per training epoch, a serialized
//!   [`recur_train::trainer::EpochRecord`] plus a `"phase"` field (`epoch`, `step`, `lr`,
//!   `train_loss`, `skipped_steps`, `val` — an object of validation metrics such as `loss`,
//!   `auc`, `average_precision` —, `is_best`, `seconds`, `phase`). Non-finite numbers appear
//!   as `null`. Written by [`write_epochs`] (the format of
//!   [`crate::recipe::RunDir::write_epochs`]), read by [`read_epochs`]. Without it the
//!   training-curve section says so.
//! * **`latency.json`** (optional): what `recur bench --json --samples` prints:
//!   `{"kernels": …, "simd": …, "threads": 1, "batch": 1, "lengths": {"18": {"median_ms",
//!   "p95_ms", "p99_ms", "mean_ms", "min_ms", "iterations", "samples_ms": [...]}, …}}`. Only
//!   `lengths` and each length's `median_ms`, `p95_ms` and `p99_ms` are required; keys this
//!   module does not know are kept. [`LatencyReport`], [`read_latency`], [`write_latency`].
//! * **`metrics.json`** (optional): the run's final figures. Kept as it is, except that
//!   [`merge_metrics`] sets under `"holdout"`: `bigru_auc`, `gbdt_auc`,
//!   `bigru_average_precision`, `gbdt_average_precision`, `bigru_brier`, `gbdt_brier`,
//!   `positives`, `samples`; and, when `latency.json` is there, under `"latency_ms"`:
//!   `p50_t{T}`, `p95_t{T}`, `p99_t{T}` for every benchmarked length `T`. Written atomically.
//!
//! # The report
//!
//! `report.html` is one self-contained page (inline CSS, inline SVG drawn with plotters, no
//! JavaScript, no external resource): a summary table (ROC-AUC, average precision, Brier
//! score of both models, positives and samples, latency percentiles per length), then five
//! figures, each with a short explanation: ROC curves, precision-recall curves, training
//! curves, a reliability diagram with 10 equal-width bins, and the latency histogram with the
//! 10 ms budget. Ranking metrics are scikit-learn-exact ([`recur_train::metrics`]). Every text
//! taken from the inputs (the title, paths) is HTML-escaped.

mod figures;
mod html;
mod inputs;
mod stats;

use std::path::{Path, PathBuf};

pub use inputs::{
    read_epochs, read_latency, read_scores, write_epochs, write_latency, write_scores, EpochPoint, LatencyReport,
    LengthLatency, ScoreRow, SCORES_HEADER,
};
pub use stats::{calibration, merge_metrics, summarize, CalibrationBin, HoldoutSummary, ModelSummary};

/// The holdout scores file in a run directory.
pub const SCORES_FILE: &str = "holdout_scores.csv";
/// The per-epoch training log in a run directory.
pub const EPOCHS_FILE: &str = "metrics.jsonl";
/// The latency benchmark in a run directory.
pub const LATENCY_FILE: &str = "latency.json";
/// The run's final figures, merged into.
pub const METRICS_FILE: &str = "metrics.json";
/// The report written.
pub const REPORT_FILE: &str = "report.html";
/// The single-request latency budget drawn on the latency histogram, in milliseconds.
pub const LATENCY_BUDGET_MS: f64 = 10.0;
/// Number of equal-width probability bins of the reliability diagram.
pub const CALIBRATION_BINS: usize = 10;

/// What can go wrong while reading a run directory or writing the report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A required input file does not exist.
    #[error("{path}: not found; {what}")]
    Missing {
        /// The path.
        path: String,
        /// What the file is and who writes it.
        what: String,
    },
    /// An I/O error at a path.
    #[error("{path}: {err}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        err: std::io::Error,
    },
    /// A line of an input file is malformed.
    #[error("{path}:{line}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The 1-based line number.
        line: usize,
        /// What is wrong, naming the field.
        message: String,
    },
    /// An input file is well-formed but cannot be used.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A metric could not be computed.
    #[error("{path}: {what}: {err}")]
    Metric {
        /// The file the scores came from.
        path: String,
        /// Which metric of which model.
        what: String,
        /// The error.
        err: recur_train::TrainError,
    },
    /// A figure could not be drawn.
    #[error("drawing the {figure} figure: {message}")]
    Plot {
        /// The figure.
        figure: &'static str,
        /// The plotting error.
        message: String,
    },
}

impl ReportError {
    pub(crate) fn io(path: &Path, err: std::io::Error) -> Self {
        ReportError::Io {
            path: path.display().to_string(),
            err,
        }
    }

    pub(crate) fn parse(path: &Path, line: usize, message: impl Into<String>) -> Self {
        ReportError::Parse {
            path: path.display().to_string(),
            line,
            message: message.into(),
        }
    }

    pub(crate) fn invalid(path: &Path, message: impl Into<String>) -> Self {
        ReportError::Invalid {
            path: path.display().to_string(),
            message: message.into(),
        }
    }
}

/// Result alias for the report.
pub type Result<T> = std::result::Result<T, ReportError>;

/// Everything read from a run directory.
#[derive(Clone, Debug)]
pub struct RunInputs {
    /// The run directory.
    pub dir: PathBuf,
    /// The holdout scores (`holdout_scores.csv`).
    pub scores: Vec<ScoreRow>,
    /// The training log (`metrics.jsonl`), when present.
    pub epochs: Option<Vec<EpochPoint>>,
    /// The latency benchmark (`latency.json`), when present.
    pub latency: Option<LatencyReport>,
}

impl RunInputs {
    /// Reads the inputs of the run directory `dir`: `holdout_scores.csv` must exist,
    /// `metrics.jsonl` and `latency.json` may be absent (but must be valid when present).
    pub fn load(dir: &Path) -> Result<Self> {
        let scores_path = dir.join(SCORES_FILE);
        if !scores_path.exists() {
            return Err(ReportError::Missing {
                path: scores_path.display().to_string(),
                what: format!(
                    "the report needs the holdout scores ({SCORES_HEADER}, one row per cut point), \
                     which the forecaster run writes"
                ),
            });
        }
        let scores = read_scores(&scores_path)?;
        let epochs_path = dir.join(EPOCHS_FILE);
        let epochs = if epochs_path.exists() {
            Some(read_epochs(&epochs_path)?)
        } else {
            None
        };
        let latency_path = dir.join(LATENCY_FILE);
        let latency = if latency_path.exists() {
            Some(read_latency(&latency_path)?)
        } else {
            None
        };
        Ok(RunInputs {
            dir: dir.to_path_buf(),
            scores,
            epochs,
            latency,
        })
    }
}

/// Options of [`generate`].
#[derive(Clone, Debug)]
pub struct ReportOptions {
    /// The page title; defaults to "Escalation forecaster — DIRNAME".
    pub title: Option<String>,
    /// The latency budget drawn on the histogram, in milliseconds.
    pub latency_budget_ms: f64,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            title: None,
            latency_budget_ms: LATENCY_BUDGET_MS,
        }
    }
}

/// The rendered page and what it found.
#[derive(Clone, Debug)]
pub struct Rendered {
    /// The HTML document.
    pub html: String,
    /// The holdout figures.
    pub holdout: HoldoutSummary,
    /// How many figures were drawn (inline `<svg>` elements).
    pub figures: usize,
    /// Sections that could not be drawn and why (missing optional inputs).
    pub notes: Vec<String>,
}

/// What [`generate`] did.
#[derive(Clone, Debug)]
pub struct ReportOutcome {
    /// The report written.
    pub html_path: PathBuf,
    /// The metrics file merged into.
    pub metrics_path: PathBuf,
    /// The holdout figures.
    pub holdout: HoldoutSummary,
    /// How many figures the report holds.
    pub figures: usize,
    /// Sections that could not be drawn and why.
    pub notes: Vec<String>,
}

/// Renders the report of `inputs` without touching the disk.
pub fn render(inputs: &RunInputs, opts: &ReportOptions) -> Result<Rendered> {
    let scores_path = inputs.dir.join(SCORES_FILE);
    let holdout = summarize(&scores_path, &inputs.scores)?;
    html::page(inputs, &holdout, opts)
}

/// Reads the run directory `dir`, writes `DIR/report.html` and merges the holdout (and
/// latency) figures into `DIR/metrics.json`, both atomically. Nothing is written when an
/// input is missing or malformed.
pub fn generate(dir: &Path, opts: &ReportOptions) -> Result<ReportOutcome> {
    if !dir.is_dir() {
        return Err(ReportError::Missing {
            path: dir.display().to_string(),
            what: "the run directory does not exist".into(),
        });
    }
    let inputs = RunInputs::load(dir)?;
    let rendered = render(&inputs, opts)?;
    let metrics_path = dir.join(METRICS_FILE);
    let merged = stats::merged_metrics(&metrics_path, &rendered.holdout, inputs.latency.as_ref())?;
    let html_path = dir.join(REPORT_FILE);
    recur_train::fsutil::write_atomic(&html_path, rendered.html.as_bytes())
        .map_err(|e| ReportError::io(&html_path, e))?;
    stats::write_json(&metrics_path, &merged)?;
    Ok(ReportOutcome {
        html_path,
        metrics_path,
        holdout: rendered.holdout,
        figures: rendered.figures,
        notes: rendered.notes,
    })
}
