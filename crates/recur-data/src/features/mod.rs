//! Per-step features for the recurrent model, and the fitted preprocessing that makes them.
//!
//! Every event of a visible prefix is one timestep with
//! - a type id from the [`Vocabulary`] (0 = unknown), and
//! - `n_scalars` scaled scalar channels from the [`Scaler`].
//!
//! # Embedding plan
//! The model embeds the type id into `embedding_dim = model_dim − n_scalars` dimensions and
//! concatenates the scalars, giving a `model_dim` (default 64) input per step:
//! `x_t = [embed(type_ids[t]) (embedding_dim), scalars[t, ..] (n_scalars)]`. Size the
//! embedding table `[vocab.len(), embedding_dim]` from [`Preprocessor::vocab_size`] and
//! [`Preprocessor::embedding_dim`].
//!
//! # Scalar channels, in order
//! | channel | value at step `i` |
//! |---|---|
//! | `hours_since_open` | `(t_i − t_0) / 1 h` |
//! | `hours_since_prev` | `(t_i − t_{i−1}) / 1 h`, 0 for the first event |
//! | `log1p_hours_since_open`, `log1p_hours_since_prev` | `ln(1 + ·)` of the two above |
//! | `log1p_events_before` | `ln(1 + i)` |
//! | `hour_of_day_sin`, `hour_of_day_cos` | UTC hour of `t_i` on the unit circle |
//! | `day_of_week_sin`, `day_of_week_cos` | UTC day of week (Monday 00:00 = 0) on the unit circle |
//! | one per numeric column (e.g. `priority`) | the event's value |
//! | `<column>_missing`, for each column with a missing value in training | 1 if missing, else 0 |
//!
//! Every channel but the indicators is standardised with the training mean and standard
//! deviation (`(x − mean) / std`, `std = 1` where it is 0); a missing value (NaN or ±inf)
//! becomes 0 after scaling, i.e. the training mean. Each step depends only on events
//! `0..=i`, so features never see past the cut.
//!
//! # Fitting
//! [`Preprocessor::fit`] counts types and accumulates channel statistics over the events
//! visible to the *training samples only* (per ticket, the longest training prefix, each event
//! once). The result is serialised with the checkpoint ([`Preprocessor::to_json`]) and
//! applied unchanged in evaluation and serving.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::labels::Sample;
use crate::schema::{Event, EventLog, Ticket, DAY_MS, HOUR_MS};

mod scaler;
mod vocab;

pub use scaler::{ChannelScale, Scaler};
pub use vocab::Vocabulary;

/// Names of the time channels that precede the numeric columns.
pub const TIME_CHANNELS: [&str; 9] = [
    "hours_since_open",
    "hours_since_prev",
    "log1p_hours_since_open",
    "log1p_hours_since_prev",
    "log1p_events_before",
    "hour_of_day_sin",
    "hour_of_day_cos",
    "day_of_week_sin",
    "day_of_week_cos",
];

/// The name of the unknown-type bucket (id 0).
pub const UNKNOWN_TYPE: &str = "<unk>";

/// Errors of fitting, loading or applying preprocessing.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum FeatureError {
    /// A configuration field is invalid.
    #[error("invalid feature config field `{field}`: {reason}")]
    Config {
        /// The field name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Fitting was given no training samples.
    #[error("cannot fit preprocessing on zero training samples")]
    NoSamples,
    /// A sample does not fit the log.
    #[error("sample {sample:?} is outside the log: {reason}")]
    BadSample {
        /// The sample.
        sample: Sample,
        /// Why.
        reason: String,
    },
    /// The scalars leave no room for the type embedding.
    #[error("{n_scalars} scalar channels leave no room for a type embedding in model_dim = {model_dim}")]
    TooManyScalars {
        /// Scalar channels.
        n_scalars: usize,
        /// The configured model input size.
        model_dim: usize,
    },
    /// A log's numeric columns differ from those the preprocessing was fitted on.
    #[error("numeric columns {got:?} differ from the fitted {expected:?}")]
    Columns {
        /// The fitted columns.
        expected: Vec<String>,
        /// The log's columns.
        got: Vec<String>,
    },
    /// A saved preprocessor is malformed.
    #[error("invalid saved preprocessing: {0}")]
    Invalid(String),
    /// JSON (de)serialisation failed.
    #[error("preprocessing JSON: {0}")]
    Json(String),
}

/// Preprocessing configuration, validated by [`Preprocessor::fit`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeatureConfig {
    /// Types seen fewer times than this in training go to the unknown bucket. Default 1.
    pub min_count: u64,
    /// Per-step model input size: type embedding plus scalars. Default 64.
    pub model_dim: usize,
}

impl Default for FeatureConfig {
    fn default() -> Self {
        Self {
            min_count: 1,
            model_dim: 64,
        }
    }
}

/// Per-step model input of one visible prefix.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StepFeatures {
    /// Type id of each step, `[len]`.
    pub type_ids: Vec<u32>,
    /// Scaled scalars, `[len, n_scalars]` row-major.
    pub scalars: Vec<f32>,
    /// Scalar channels per step.
    pub n_scalars: usize,
}

impl StepFeatures {
    /// Number of steps.
    pub fn len(&self) -> usize {
        self.type_ids.len()
    }

    /// True when there are no steps.
    pub fn is_empty(&self) -> bool {
        self.type_ids.is_empty()
    }
}

/// The features of `ticket.events[..prefix_len]`.
///
/// # Panics
/// When `prefix_len` is 0 or exceeds the ticket's events, or an event's numeric values do not
/// match the scaler's columns.
#[track_caller]
pub fn sequence_features(ticket: &Ticket, prefix_len: usize, vocab: &Vocabulary, scaler: &Scaler) -> StepFeatures {
    let mut out = StepFeatures::default();
    sequence_features_into(ticket, prefix_len, vocab, scaler, &mut out);
    out
}

/// [`sequence_features`] into reused buffers (no allocation once they are large enough).
///
/// # Panics
/// As [`sequence_features`].
#[track_caller]
pub fn sequence_features_into(
    ticket: &Ticket,
    prefix_len: usize,
    vocab: &Vocabulary,
    scaler: &Scaler,
    out: &mut StepFeatures,
) {
    assert!(
        (1..=ticket.events.len()).contains(&prefix_len),
        "prefix_len {prefix_len} outside 1..={}",
        ticket.events.len()
    );
    let events = &ticket.events[..prefix_len];
    let n = scaler.n_scalars();
    out.n_scalars = n;
    out.type_ids.clear();
    out.type_ids.extend(events.iter().map(|e| vocab.id(&e.event_type)));
    out.scalars.clear();
    out.scalars.resize(prefix_len * n, 0.0);
    let mut raw = Vec::with_capacity(TIME_CHANNELS.len() + scaler.n_numeric());
    for (i, row) in out.scalars.chunks_exact_mut(n).enumerate() {
        scaler.scale_step(events, i, &mut raw, row);
    }
}

/// The fitted preprocessing saved with a checkpoint: vocabulary, scaler and their config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preprocessor {
    /// The configuration it was fitted with.
    pub config: FeatureConfig,
    /// The log's numeric columns at fitting time, in order.
    pub numeric_columns: Vec<String>,
    /// Event-type vocabulary.
    pub vocab: Vocabulary,
    /// Scalar standardisation.
    pub scaler: Scaler,
}

impl Preprocessor {
    /// Fits vocabulary and scaler on the events visible to the training samples `train`.
    ///
    /// # Panics
    /// As [`Scaler::fit`].
    pub fn fit(log: &EventLog, train: &[Sample], config: FeatureConfig) -> Result<Self, FeatureError> {
        if config.min_count == 0 {
            return Err(FeatureError::Config {
                field: "min_count",
                reason: "must be at least 1".into(),
            });
        }
        if config.model_dim == 0 {
            return Err(FeatureError::Config {
                field: "model_dim",
                reason: "must be at least 1".into(),
            });
        }
        let vocab = Vocabulary::fit(log, train, config.min_count)?;
        let scaler = Scaler::fit(log, train)?;
        let p = Self {
            config,
            numeric_columns: log.numeric_columns.clone(),
            vocab,
            scaler,
        };
        p.validate()?;
        Ok(p)
    }

    /// Scalar channels per step.
    pub fn n_scalars(&self) -> usize {
        self.scaler.n_scalars()
    }

    /// Type-embedding size: `model_dim − n_scalars`.
    pub fn embedding_dim(&self) -> usize {
        self.config.model_dim - self.n_scalars()
    }

    /// Rows of the type-embedding table (known types plus the unknown bucket).
    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    /// Errors unless `numeric_columns` equals the fitted columns.
    pub fn check_columns(&self, numeric_columns: &[String]) -> Result<(), FeatureError> {
        if numeric_columns != self.numeric_columns.as_slice() {
            return Err(FeatureError::Columns {
                expected: self.numeric_columns.clone(),
                got: numeric_columns.to_vec(),
            });
        }
        Ok(())
    }

    /// The features of `ticket.events[..prefix_len]`; see [`sequence_features`].
    ///
    /// # Panics
    /// As [`sequence_features`].
    #[track_caller]
    pub fn sequence_features(&self, ticket: &Ticket, prefix_len: usize) -> StepFeatures {
        sequence_features(ticket, prefix_len, &self.vocab, &self.scaler)
    }

    /// The features of one sample of `log`.
    ///
    /// # Panics
    /// When the sample does not belong to `log`.
    #[track_caller]
    pub fn sample_features(&self, log: &EventLog, sample: &Sample) -> StepFeatures {
        self.sequence_features(&log.tickets[sample.ticket], sample.prefix_len)
    }

    /// Serialises to JSON (floats round-trip bit-exactly).
    pub fn to_json(&self) -> Result<String, FeatureError> {
        serde_json::to_string_pretty(self).map_err(|e| FeatureError::Json(e.to_string()))
    }

    /// Loads from JSON written by [`Preprocessor::to_json`], and validates it.
    pub fn from_json(json: &str) -> Result<Self, FeatureError> {
        let p: Self = serde_json::from_str(json).map_err(|e| FeatureError::Json(e.to_string()))?;
        p.validate()?;
        Ok(p)
    }

    fn validate(&self) -> Result<(), FeatureError> {
        self.scaler.validate()?;
        if self.scaler.n_numeric() != self.numeric_columns.len() {
            return Err(FeatureError::Invalid("scaler and numeric_columns disagree".into()));
        }
        if self.n_scalars() >= self.config.model_dim {
            return Err(FeatureError::TooManyScalars {
                n_scalars: self.n_scalars(),
                model_dim: self.config.model_dim,
            });
        }
        Ok(())
    }
}

/// Per ticket (ascending), the longest visible prefix among `samples`, checked against `log`.
pub(crate) fn visible_extent(log: &EventLog, samples: &[Sample]) -> Result<BTreeMap<usize, usize>, FeatureError> {
    if samples.is_empty() {
        return Err(FeatureError::NoSamples);
    }
    let mut extent = BTreeMap::new();
    for s in samples {
        let n_events = log.tickets.get(s.ticket).map(|t| t.events.len());
        if !n_events.is_some_and(|n| (1..=n).contains(&s.prefix_len)) {
            let reason = format!("ticket has {n_events:?} events");
            return Err(FeatureError::BadSample { sample: *s, reason });
        }
        let e = extent.entry(s.ticket).or_insert(0);
        *e = (*e).max(s.prefix_len);
    }
    Ok(extent)
}

/// The unscaled [`TIME_CHANNELS`] of an event at `timestamp_ms` in a ticket opened at
/// `open_ms`, after the event at `prev_ms` (`None` for the first), with `index` events before
/// it. Batch featurizing and streaming (one event at a time) both use it.
pub fn time_channels(timestamp_ms: i64, open_ms: i64, prev_ms: Option<i64>, index: usize) -> [f64; 9] {
    let hours = |ms: i64| ms as f64 / HOUR_MS as f64;
    let since_open = hours(timestamp_ms - open_ms);
    let since_prev = prev_ms.map_or(0.0, |p| hours(timestamp_ms - p));
    let tau = std::f64::consts::TAU;
    let day_phase = tau * timestamp_ms.rem_euclid(DAY_MS) as f64 / DAY_MS as f64;
    // 1970-01-01 was a Thursday: shifting by 3 days puts Monday 00:00 at phase 0.
    let week_phase = tau * (timestamp_ms + 3 * DAY_MS).rem_euclid(7 * DAY_MS) as f64 / (7 * DAY_MS) as f64;
    [
        since_open,
        since_prev,
        since_open.max(0.0).ln_1p(),
        since_prev.max(0.0).ln_1p(),
        (index as f64).ln_1p(),
        day_phase.sin(),
        day_phase.cos(),
        week_phase.sin(),
        week_phase.cos(),
    ]
}

/// Unscaled channels of step `i` (time channels, then numeric columns) into `out`.
#[track_caller]
pub(super) fn raw_step(events: &[Event], i: usize, out: &mut [f64]) {
    let e = &events[i];
    let time = time_channels(
        e.timestamp_ms,
        events[0].timestamp_ms,
        i.checked_sub(1).map(|j| events[j].timestamp_ms),
        i,
    );
    let (t, numeric) = out.split_at_mut(TIME_CHANNELS.len());
    t.copy_from_slice(&time);
    assert_eq!(
        e.numeric.len(),
        numeric.len(),
        "event has {} numeric values, expected {}",
        e.numeric.len(),
        numeric.len()
    );
    numeric.copy_from_slice(&e.numeric);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monday_midnight_has_week_phase_zero() {
        // 1970-01-05 was a Monday.
        let e = Event {
            timestamp_ms: 4 * DAY_MS,
            event_type: "x".into(),
            numeric: vec![],
        };
        let mut raw = [0.0; TIME_CHANNELS.len()];
        raw_step(&[e], 0, &mut raw);
        assert!(raw[7].abs() < 1e-12 && (raw[8] - 1.0).abs() < 1e-12);
    }
}
