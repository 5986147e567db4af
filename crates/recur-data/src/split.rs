//! Splitting a log into train, validation and holdout tickets by opening time.
//!
//! A ticket belongs to the window that contains its opening time (its first event). With
//! `L` = the last opening time in the log and `end = L + 1 ms` (windows are half-open):
//!
//! ```text
//! holdout     [end − holdout_days,                   end)
//! validation  [end − holdout_days − validation_days, end − holdout_days)
//! train       [first opening,                        end − holdout_days − validation_days)
//! ```
//!
//! The window ends also bound the labels of the samples drawn from train and validation
//! tickets (see [`crate::labels`]): a training sample is only kept when its label is known
//! before [`Split::window_end_ms`] of its part, so nothing that happens inside the
//! validation or holdout windows reaches training.
//!
//! A random split leaks future information into training (the guide's first pitfall). It is
//! refused unless [`SplitConfig::force_random`] is set, and even then [`Split::warning`]
//! carries a [`SplitWarning`] that a command line must print.

use std::fmt;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::schema::{EventLog, DAY_MS};

/// How tickets are assigned to train, validation and holdout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SplitStrategy {
    /// By opening time (the default and the only leak-free choice).
    #[default]
    Time,
    /// Shuffled tickets, sized like the time split would be. Refused unless
    /// [`SplitConfig::force_random`] is set.
    Random,
}

/// Configuration of a split, validated once by [`Splitter::new`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SplitConfig {
    /// Length of the holdout window at the end of the opening-time range. Default 90.
    pub holdout_days: u32,
    /// Length of the validation window at the end of the remaining training range. Default 30.
    pub validation_days: u32,
    /// Time (default) or random.
    pub strategy: SplitStrategy,
    /// Required for [`SplitStrategy::Random`]. Default `false`.
    pub force_random: bool,
    /// Seed of the shuffle of a random split. Default 0.
    pub seed: u64,
}

impl Default for SplitConfig {
    fn default() -> Self {
        Self {
            holdout_days: 90,
            validation_days: 30,
            strategy: SplitStrategy::Time,
            force_random: false,
            seed: 0,
        }
    }
}

/// The three parts of a split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SplitPart {
    /// Tickets the model is fitted on.
    Train,
    /// Tickets for early stopping and model selection.
    Validation,
    /// Tickets for the final score, never seen during fitting.
    Holdout,
}

impl fmt::Display for SplitPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SplitPart::Train => "train",
            SplitPart::Validation => "validation",
            SplitPart::Holdout => "holdout",
        })
    }
}

/// A warning that a caller must show to the user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SplitWarning {
    /// The split was random ([`SplitConfig::force_random`]).
    RandomSplit,
}

impl fmt::Display for SplitWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SplitWarning::RandomSplit => f.write_str(RANDOM_SPLIT_WARNING),
        }
    }
}

/// The text of [`SplitWarning::RandomSplit`].
pub const RANDOM_SPLIT_WARNING: &str =
    "warning: random splits leak future information into training; scores on this split overstate real performance";

/// Errors of configuring or computing a split.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SplitError {
    /// A configuration field is invalid.
    #[error("invalid split config field `{field}`: {reason}")]
    Config {
        /// The field name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A random split was asked for without `force_random`.
    #[error(
        "random split refused: random splits leak future information into training; split by time, or set \
         `force_random` to accept the leak"
    )]
    RandomRefused,
    /// The log has no tickets.
    #[error("the event log has no tickets")]
    EmptyLog,
    /// A ticket has no events, so it has no opening time.
    #[error("ticket #{index} (`{id}`) has no events")]
    EmptyTicket {
        /// Index in [`EventLog::tickets`].
        index: usize,
        /// The ticket id.
        id: String,
    },
    /// The windows leave one part without tickets.
    #[error(
        "the {part} part is empty: window [{start_ms}, {end_ms}) ms holds no ticket opening \
         (log openings span {first_open_ms}..={last_open_ms} ms; holdout_days = {holdout_days}, \
         validation_days = {validation_days})"
    )]
    EmptyPart {
        /// Which part is empty.
        part: SplitPart,
        /// Start of its window (inclusive).
        start_ms: i64,
        /// End of its window (exclusive).
        end_ms: i64,
        /// First opening time in the log.
        first_open_ms: i64,
        /// Last opening time in the log.
        last_open_ms: i64,
        /// The configured holdout length.
        holdout_days: u32,
        /// The configured validation length.
        validation_days: u32,
    },
}

/// The half-open opening-time windows of a time split, in UTC epoch milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitWindows {
    /// First opening time in the log (start of the train window).
    pub train_start_ms: i64,
    /// End of the train window (exclusive) = `validation_start_ms`.
    pub train_end_ms: i64,
    /// Start of the validation window.
    pub validation_start_ms: i64,
    /// End of the validation window (exclusive) = `holdout_start_ms`.
    pub validation_end_ms: i64,
    /// Start of the holdout window.
    pub holdout_start_ms: i64,
    /// End of the holdout window (exclusive): last opening time + 1 ms.
    pub holdout_end_ms: i64,
}

/// Ticket indices (into [`EventLog::tickets`], ascending) of each part.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Split {
    /// Training tickets.
    pub train: Vec<usize>,
    /// Validation tickets.
    pub validation: Vec<usize>,
    /// Holdout tickets.
    pub holdout: Vec<usize>,
    /// The time windows. For a random split these are the windows the time split would have
    /// used; they describe sizes only and bound nothing.
    pub windows: SplitWindows,
    /// How the split was made.
    pub strategy: SplitStrategy,
    /// Set for a random split; the caller must print it.
    pub warning: Option<SplitWarning>,
}

impl Split {
    /// The tickets of one part.
    pub fn part(&self, part: SplitPart) -> &[usize] {
        match part {
            SplitPart::Train => &self.train,
            SplitPart::Validation => &self.validation,
            SplitPart::Holdout => &self.holdout,
        }
    }

    /// The time before which every label of a sample from `part` must be known: the end of
    /// the train window for train, the end of the validation window for validation, and
    /// `None` (no bound) for holdout and for every part of a random split.
    pub fn window_end_ms(&self, part: SplitPart) -> Option<i64> {
        match (self.strategy, part) {
            (SplitStrategy::Random, _) | (_, SplitPart::Holdout) => None,
            (SplitStrategy::Time, SplitPart::Train) => Some(self.windows.train_end_ms),
            (SplitStrategy::Time, SplitPart::Validation) => Some(self.windows.validation_end_ms),
        }
    }
}

/// A validated split configuration.
#[derive(Clone, Debug)]
pub struct Splitter {
    config: SplitConfig,
}

impl Splitter {
    /// Validates `config`: both window lengths at least one day and at most 100 years, and
    /// a random strategy only with `force_random`.
    pub fn new(config: SplitConfig) -> Result<Self, SplitError> {
        check_days("holdout_days", config.holdout_days)?;
        check_days("validation_days", config.validation_days)?;
        if config.strategy == SplitStrategy::Random && !config.force_random {
            return Err(SplitError::RandomRefused);
        }
        Ok(Self { config })
    }

    /// The validated configuration.
    pub fn config(&self) -> &SplitConfig {
        &self.config
    }

    /// Splits `log`. Errors when a ticket has no events or a part would be empty.
    pub fn split(&self, log: &EventLog) -> Result<Split, SplitError> {
        let opened = opening_times(log)?;
        let windows = self.windows(&opened);
        let mut split = Split {
            train: Vec::new(),
            validation: Vec::new(),
            holdout: Vec::new(),
            windows,
            strategy: self.config.strategy,
            warning: None,
        };
        for (index, &t) in opened.iter().enumerate() {
            match part_of(&windows, t) {
                SplitPart::Train => split.train.push(index),
                SplitPart::Validation => split.validation.push(index),
                SplitPart::Holdout => split.holdout.push(index),
            }
        }
        self.check_nonempty(&split, &opened)?;
        if self.config.strategy == SplitStrategy::Random {
            self.shuffle(&mut split);
        }
        Ok(split)
    }

    fn windows(&self, opened: &[i64]) -> SplitWindows {
        let first = *opened.iter().min().expect("opening_times rejects empty logs");
        let last = *opened.iter().max().expect("opening_times rejects empty logs");
        let holdout_end_ms = last.saturating_add(1);
        let holdout_start_ms = holdout_end_ms.saturating_sub(i64::from(self.config.holdout_days) * DAY_MS);
        let validation_start_ms = holdout_start_ms.saturating_sub(i64::from(self.config.validation_days) * DAY_MS);
        SplitWindows {
            train_start_ms: first,
            train_end_ms: validation_start_ms,
            validation_start_ms,
            validation_end_ms: holdout_start_ms,
            holdout_start_ms,
            holdout_end_ms,
        }
    }

    fn check_nonempty(&self, split: &Split, opened: &[i64]) -> Result<(), SplitError> {
        let w = &split.windows;
        let parts = [
            (SplitPart::Train, w.train_start_ms, w.train_end_ms),
            (SplitPart::Validation, w.validation_start_ms, w.validation_end_ms),
            (SplitPart::Holdout, w.holdout_start_ms, w.holdout_end_ms),
        ];
        for (part, start_ms, end_ms) in parts {
            if split.part(part).is_empty() {
                return Err(SplitError::EmptyPart {
                    part,
                    start_ms,
                    end_ms,
                    first_open_ms: w.train_start_ms,
                    last_open_ms: *opened.iter().max().unwrap_or(&0),
                    holdout_days: self.config.holdout_days,
                    validation_days: self.config.validation_days,
                });
            }
        }
        Ok(())
    }

    /// Reassigns tickets at random, keeping the sizes of the time split.
    fn shuffle(&self, split: &mut Split) {
        let (n_train, n_valid) = (split.train.len(), split.validation.len());
        let mut all: Vec<usize> = (0..n_train + n_valid + split.holdout.len()).collect();
        all.shuffle(&mut ChaCha8Rng::seed_from_u64(self.config.seed));
        let take = |range: std::ops::Range<usize>| {
            let mut part = all[range].to_vec();
            part.sort_unstable();
            part
        };
        split.train = take(0..n_train);
        split.validation = take(n_train..n_train + n_valid);
        split.holdout = take(n_train + n_valid..all.len());
        split.warning = Some(SplitWarning::RandomSplit);
    }
}

/// Splits `log` with `config` (validates the config, then [`Splitter::split`]).
pub fn split_log(log: &EventLog, config: &SplitConfig) -> Result<Split, SplitError> {
    Splitter::new(config.clone())?.split(log)
}

fn check_days(field: &'static str, days: u32) -> Result<(), SplitError> {
    const MAX_DAYS: u32 = 36_500;
    if days == 0 || days > MAX_DAYS {
        return Err(SplitError::Config {
            field,
            reason: format!("{days} is outside 1..={MAX_DAYS} days"),
        });
    }
    Ok(())
}

fn opening_times(log: &EventLog) -> Result<Vec<i64>, SplitError> {
    if log.tickets.is_empty() {
        return Err(SplitError::EmptyLog);
    }
    log.tickets
        .iter()
        .enumerate()
        .map(|(index, t)| {
            t.events
                .first()
                .map(|e| e.timestamp_ms)
                .ok_or_else(|| SplitError::EmptyTicket {
                    index,
                    id: t.id.clone(),
                })
        })
        .collect()
}

fn part_of(w: &SplitWindows, opened_ms: i64) -> SplitPart {
    if opened_ms >= w.holdout_start_ms {
        SplitPart::Holdout
    } else if opened_ms >= w.validation_start_ms {
        SplitPart::Validation
    } else {
        SplitPart::Train
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_days_names_the_field() {
        let cfg = SplitConfig {
            validation_days: 0,
            ..SplitConfig::default()
        };
        match Splitter::new(cfg) {
            Err(SplitError::Config { field, .. }) => assert_eq!(field, "validation_days"),
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn windows_are_contiguous() {
        let s = Splitter::new(SplitConfig::default()).unwrap();
        let w = s.windows(&[0, 200 * DAY_MS]);
        assert_eq!(w.holdout_end_ms, 200 * DAY_MS + 1);
        assert_eq!(w.holdout_start_ms, 110 * DAY_MS + 1);
        assert_eq!(w.validation_start_ms, 80 * DAY_MS + 1);
        assert_eq!(w.train_end_ms, w.validation_start_ms);
        assert_eq!(part_of(&w, 80 * DAY_MS), SplitPart::Train);
        assert_eq!(part_of(&w, 80 * DAY_MS + 1), SplitPart::Validation);
        assert_eq!(part_of(&w, 110 * DAY_MS + 1), SplitPart::Holdout);
    }
}
