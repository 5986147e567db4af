//! Flat per-ticket features of a visible prefix, for the gradient-boosted-tree baseline.
//!
//! This is the feature vector a data scientist would build by hand (the guide's "flat feature
//! vector per ticket"): counts and fractions per event type, the last event type, the
//! thread's duration and gaps, recent activity, and summaries of each numeric column. It
//! summarises the prefix without its order, which is exactly what the recurrent model is
//! meant to improve on.
//!
//! Features, in order ([`AggregateFeaturizer::names`]):
//! - `events_so_far`, `duration_hours` (last − first event), `last_gap_hours` (between the
//!   last two events, 0 for one event), `mean_gap_hours`, `max_gap_hours`;
//! - `events_last_1h`, `events_last_24h`: events within 1 h / 24 h before the cut, inclusive;
//! - `open_hour_utc`, `open_day_of_week`, `cut_hour_utc`, `cut_day_of_week` (Monday = 0);
//! - `count:<type>`, `frac:<type>`, `last_type:<type>` (one-hot) for the unknown bucket and each
//!   vocabulary type, in vocabulary order;
//! - per numeric column `<col>`: `<col>:last`, `<col>:first`, `<col>:min`, `<col>:max`,
//!   `<col>:mean` over present values (NaN when none; the GBDT handles NaN as missing), and
//!   `<col>:missing_frac`.
//!
//! A cut sits at the last visible event, so "time since the last event" would always be 0;
//! `last_gap_hours` carries that information instead. Every feature is a function of
//! `events[..prefix_len]` only.

use serde::{Deserialize, Serialize};

use crate::features::{Preprocessor, Vocabulary, UNKNOWN_TYPE};
use crate::labels::Sample;
use crate::schema::{Event, EventLog, Ticket, DAY_MS, HOUR_MS};

const SCALAR_NAMES: [&str; 11] = [
    "events_so_far",
    "duration_hours",
    "last_gap_hours",
    "mean_gap_hours",
    "max_gap_hours",
    "events_last_1h",
    "events_last_24h",
    "open_hour_utc",
    "open_day_of_week",
    "cut_hour_utc",
    "cut_day_of_week",
];
const NUMERIC_STATS: [&str; 6] = ["last", "first", "min", "max", "mean", "missing_frac"];

/// A dense row-major feature matrix with named columns.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureMatrix {
    /// Number of rows (samples).
    pub n_rows: usize,
    /// Number of columns (features).
    pub n_cols: usize,
    /// `[n_rows, n_cols]` row-major.
    pub data: Vec<f64>,
    /// Column names.
    pub names: Vec<String>,
}

impl FeatureMatrix {
    /// Row `i`.
    ///
    /// # Panics
    /// When `i >= n_rows`.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.n_cols..(i + 1) * self.n_cols]
    }
}

/// Computes aggregated features with a vocabulary fitted on training data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateFeaturizer {
    vocab: Vocabulary,
    numeric_columns: Vec<String>,
}

impl AggregateFeaturizer {
    /// A featurizer for logs with `numeric_columns`, over the types of `vocab`.
    pub fn new(vocab: Vocabulary, numeric_columns: Vec<String>) -> Self {
        Self { vocab, numeric_columns }
    }

    /// Uses the preprocessor's vocabulary and columns, so both models see the same types.
    pub fn from_preprocessor(p: &Preprocessor) -> Self {
        Self::new(p.vocab.clone(), p.numeric_columns.clone())
    }

    /// The vocabulary.
    pub fn vocab(&self) -> &Vocabulary {
        &self.vocab
    }

    /// Number of features.
    pub fn n_features(&self) -> usize {
        SCALAR_NAMES.len() + 3 * self.vocab.len() + NUMERIC_STATS.len() * self.numeric_columns.len()
    }

    /// Feature names, in column order.
    pub fn names(&self) -> Vec<String> {
        let types: Vec<&str> = (0..self.vocab.len() as u32).map(|i| self.vocab.name(i)).collect();
        debug_assert_eq!(types[0], UNKNOWN_TYPE);
        let per_type = ["count", "frac", "last_type"]
            .into_iter()
            .flat_map(|k| types.iter().map(move |t| format!("{k}:{t}")));
        let numeric = self
            .numeric_columns
            .iter()
            .flat_map(|c| NUMERIC_STATS.iter().map(move |s| format!("{c}:{s}")));
        SCALAR_NAMES
            .iter()
            .map(|s| s.to_string())
            .chain(per_type)
            .chain(numeric)
            .collect()
    }

    /// The features of `ticket.events[..prefix_len]`.
    ///
    /// # Panics
    /// As [`AggregateFeaturizer::features_into`].
    #[track_caller]
    pub fn features(&self, ticket: &Ticket, prefix_len: usize) -> Vec<f64> {
        let mut out = vec![0.0; self.n_features()];
        self.features_into(ticket, prefix_len, &mut out);
        out
    }

    /// The features of `ticket.events[..prefix_len]` into `out` (`n_features` values).
    ///
    /// # Panics
    /// When `prefix_len` is 0 or exceeds the ticket's events, `out` has the wrong length, or an
    /// event has the wrong number of numeric values.
    #[track_caller]
    pub fn features_into(&self, ticket: &Ticket, prefix_len: usize, out: &mut [f64]) {
        assert!(
            (1..=ticket.events.len()).contains(&prefix_len),
            "prefix_len {prefix_len} outside 1..={}",
            ticket.events.len()
        );
        assert_eq!(out.len(), self.n_features(), "aggregate output length");
        let events = &ticket.events[..prefix_len];
        let (scalars, rest) = out.split_at_mut(SCALAR_NAMES.len());
        timing(events, scalars);
        let (per_type, numeric) = rest.split_at_mut(3 * self.vocab.len());
        self.type_features(events, per_type);
        for (col, chunk) in numeric.chunks_exact_mut(NUMERIC_STATS.len()).enumerate() {
            column_stats(events, col, chunk);
        }
    }

    /// One row per sample of `log`.
    ///
    /// # Panics
    /// When a sample does not belong to `log`.
    pub fn matrix(&self, log: &EventLog, samples: &[Sample]) -> FeatureMatrix {
        let n_cols = self.n_features();
        let mut data = vec![0.0; samples.len() * n_cols];
        for (s, row) in samples.iter().zip(data.chunks_exact_mut(n_cols)) {
            self.features_into(&log.tickets[s.ticket], s.prefix_len, row);
        }
        FeatureMatrix {
            n_rows: samples.len(),
            n_cols,
            data,
            names: self.names(),
        }
    }

    fn type_features(&self, events: &[Event], out: &mut [f64]) {
        out.fill(0.0);
        let v = self.vocab.len();
        let (counts, rest) = out.split_at_mut(v);
        let (fracs, last) = rest.split_at_mut(v);
        for e in events {
            counts[self.vocab.id(&e.event_type) as usize] += 1.0;
        }
        for (f, c) in fracs.iter_mut().zip(counts.iter()) {
            *f = c / events.len() as f64;
        }
        let last_event = events.last().expect("prefix is non-empty");
        last[self.vocab.id(&last_event.event_type) as usize] = 1.0;
    }
}

fn timing(events: &[Event], out: &mut [f64]) {
    let hours = |ms: i64| ms as f64 / HOUR_MS as f64;
    let (first, cut) = (events[0].timestamp_ms, events[events.len() - 1].timestamp_ms);
    let gaps = events.windows(2).map(|w| hours(w[1].timestamp_ms - w[0].timestamp_ms));
    let n = events.len();
    let within = |ms: i64| events.iter().filter(|e| e.timestamp_ms >= cut - ms).count() as f64;
    let hour_of_day = |t: i64| hours(t.rem_euclid(DAY_MS));
    // 1970-01-01 was a Thursday (3 days after a Monday).
    let day_of_week = |t: i64| (t + 3 * DAY_MS).div_euclid(DAY_MS).rem_euclid(7) as f64;
    out.copy_from_slice(&[
        n as f64,
        hours(cut - first),
        if n > 1 {
            hours(cut - events[n - 2].timestamp_ms)
        } else {
            0.0
        },
        if n > 1 {
            hours(cut - first) / (n - 1) as f64
        } else {
            0.0
        },
        gaps.fold(0.0, f64::max),
        within(HOUR_MS),
        within(DAY_MS),
        hour_of_day(first),
        day_of_week(first),
        hour_of_day(cut),
        day_of_week(cut),
    ]);
}

fn column_stats(events: &[Event], col: usize, out: &mut [f64]) {
    let values = || events.iter().map(|e| e.numeric[col]).filter(|x| x.is_finite());
    let present = values().count();
    let (last, first) = (
        values().next_back().unwrap_or(f64::NAN),
        values().next().unwrap_or(f64::NAN),
    );
    let (min, max) = if present > 0 {
        (
            values().fold(f64::INFINITY, f64::min),
            values().fold(f64::NEG_INFINITY, f64::max),
        )
    } else {
        (f64::NAN, f64::NAN)
    };
    let mean = if present > 0 {
        values().sum::<f64>() / present as f64
    } else {
        f64::NAN
    };
    let missing_frac = (events.len() - present) as f64 / events.len() as f64;
    out.copy_from_slice(&[last, first, min, max, mean, missing_frac]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_feature_count() {
        let vocab = Vocabulary::from_counts([("a".to_string(), 2), ("b".to_string(), 1)], 1);
        let f = AggregateFeaturizer::new(vocab, vec!["priority".into()]);
        assert_eq!(f.names().len(), f.n_features());
        assert_eq!(f.names()[SCALAR_NAMES.len()], "count:<unk>");
    }
}
