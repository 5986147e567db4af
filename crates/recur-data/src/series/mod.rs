//!
//! Readers for the UEA/UCR `.ts` format ([`read_ts`](crate::series::read_ts)) and for
//! time-indexed CSV files ([`read_csv_series`](crate::series::read_csv_series)), and a
//! per-channel standardiser fitted on the training split
//! ([`ChannelScaler`](crate::series::ChannelScaler)).
//!
//! Values are `f32`, stored time-major (`[len, channels]`, channel fastest) so a series is
//! ready to be one sequence of a recurrent batch. A missing value is `NaN`.
//!
//! Every parse error names the file, the 1-based line and, where one is at fault, the field,
//! for example `GunPoint_TRAIN.ts:23: channel 1, value 17: cannot parse "0.1.2" as a number`.

mod csv;
mod scaler;
mod ts;

use std::fmt;
use std::io;

pub use self::csv::{read_csv_series, read_csv_series_file, CsvSeries};
pub use self::scaler::ChannelScaler;
pub use self::ts::{read_ts, read_ts_file, TsDataset};

/// The label of one series.
#[derive(Clone, Debug, PartialEq)]
pub enum Label {
    /// No label (`@classLabel false` without `@targetLabel true`, or a CSV series).
    None,
    /// A class, as an index into [`TsDataset::class_names`] (the order of `@classLabel`).
    Class(usize),
    /// A regression target (`@targetLabel true`).
    Target(f64),
}

/// One (possibly multivariate) series with its label.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Time-major values, `values[t * channels + c]`; `NaN` marks a missing value.
    pub values: Vec<f32>,
    /// Number of time steps.
    pub len: usize,
    /// Number of channels (dimensions).
    pub channels: usize,
    /// The label.
    pub label: Label,
}

impl Series {
    /// The values of step `t`, one per channel.
    ///
    /// # Panics
    /// When `t >= self.len`.
    pub fn step(&self, t: usize) -> &[f32] {
        &self.values[t * self.channels..(t + 1) * self.channels]
    }

    /// Channel `c` as its own vector, in time order.
    ///
    /// # Panics
    /// When `c >= self.channels`.
    pub fn channel(&self, c: usize) -> Vec<f32> {
        assert!(c < self.channels, "channel {c} of {}", self.channels);
        self.values.iter().skip(c).step_by(self.channels).copied().collect()
    }

    /// Whether any value is missing (`NaN`).
    pub fn has_missing(&self) -> bool {
        self.values.iter().any(|x| x.is_nan())
    }

    /// Replaces every missing value with `value`; after [`ChannelScaler::transform`], `0.0`
    /// is the training mean of each channel.
    pub fn fill_missing(&mut self, value: f32) {
        for x in self.values.iter_mut().filter(|x| x.is_nan()) {
            *x = value;
        }
    }
}

/// Why a series file could not be read, or a scaler not be used.
#[derive(Debug, thiserror::Error)]
pub enum SeriesError {
    /// The file could not be opened or read.
    #[error("{file}: {error}")]
    Io {
        /// The file.
        file: String,
        /// The I/O error.
        error: io::Error,
    },
    /// A line of the file is wrong, or the file ends early.
    #[error("{file}:{line}: {}{reason}", FieldPrefix(.field))]
    Parse {
        /// The file, as given to the reader.
        file: String,
        /// 1-based line number.
        line: u64,
        /// The field at fault (a header tag, `channel 3, value 7`, `label`, a CSV column).
        field: Option<String>,
        /// What is wrong.
        reason: String,
    },
    /// Data and scaler do not fit together, or a deserialised scaler is inconsistent.
    #[error("{0}")]
    Invalid(String),
}

struct FieldPrefix<'a>(&'a Option<String>);

impl fmt::Display for FieldPrefix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(field) => write!(f, "{field}: "),
            None => Ok(()),
        }
    }
}

impl SeriesError {
    fn parse(file: &str, line: u64, field: Option<String>, reason: impl Into<String>) -> Self {
        SeriesError::Parse {
            file: file.to_string(),
            line,
            field,
            reason: reason.into(),
        }
    }

    /// The 1-based line of a parse error.
    pub fn line(&self) -> Option<u64> {
        match self {
            SeriesError::Parse { line, .. } => Some(*line),
            _ => None,
        }
    }
}
