//! Cut points inside tickets and their labels at a prediction horizon.
//!
//! # Cuts
//! A prediction is made at a *cut*: the moment right after an event was recorded. A cut
//! "after event `k`" has `cut_ms = events[k].timestamp_ms` and its visible prefix is every
//! event with `timestamp_ms <= cut_ms`.
//!
//! **Ties.** Several events can share a timestamp. A cut after event `k` is only valid when
//! event `k` is the *last* of its timestamp (`k + 1 == len` or `events[k + 1].timestamp_ms >
//! cut_ms`); a cut inside a group of simultaneous events is skipped. So the prefix is exactly
//! `events[..=k]`, `prefix_len = k + 1`, it holds every event a live system would have seen at
//! `cut_ms`, and no event after `cut_ms`.
//!
//! # Labels
//! The label of a cut is `true` iff the ticket escalates in `(cut_ms, cut_ms + horizon_ms]`.
//! A cut at or after the escalation (`escalated_at_ms <= cut_ms`) is no sample at all: the
//! ticket is already escalated, there is nothing to forecast.
//!
//! # Leakage guard
//! Samples of the train and validation parts must have labels that are known before their
//! window ends: `cut_ms + horizon_ms <= window_end_ms` ([`crate::split::Split::window_end_ms`]).
//! This also keeps every visible event inside the window, so nothing from a later window
//! reaches fitting.
//!
//! # Which cuts a ticket contributes
//! [`CutPolicy`] chooses among the valid cuts. The default is
//! [`CutPolicy::Sampled`] with at most 8 cuts per ticket. Thread lengths are heavy-tailed
//! (median 18, p95 112 events): taking every event would let the longest 5 % of tickets supply
//! about a quarter of the samples and weight each ticket by its length, and the cuts of one
//! ticket are strongly correlated anyway. A per-ticket cap keeps every ticket's weight
//! comparable while still covering early, middle and late cuts of long threads; the uniform
//! draw (seeded per ticket) does not favour any position.

use rand::seq::index;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::schema::{EventLog, Ticket, HOUR_MS};
use crate::split::{Split, SplitPart};

/// One prediction: ticket `ticket` seen up to `cut_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Sample {
    /// Index into [`EventLog::tickets`].
    pub ticket: usize,
    /// Number of visible events: the prefix is `events[..prefix_len]`, `prefix_len >= 1`.
    pub prefix_len: usize,
    /// The cut time, `events[prefix_len - 1].timestamp_ms`.
    pub cut_ms: i64,
    /// Whether the ticket escalates in `(cut_ms, cut_ms + horizon_ms]`.
    pub label: bool,
}

/// Which of a ticket's valid cuts become samples.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum CutPolicy {
    /// Every valid cut.
    EveryEvent,
    /// The 1st, (k+1)-th, (2k+1)-th, … valid cut.
    EveryKth {
        /// The stride, at least 1.
        k: usize,
    },
    /// At most `max_per_ticket` valid cuts per ticket, drawn uniformly without replacement
    /// with a per-ticket RNG (`ChaCha8Rng` seeded with [`LabelConfig::seed`], stream = ticket
    /// index), so a ticket's cuts do not depend on which other tickets are labelled.
    Sampled {
        /// The cap, at least 1.
        max_per_ticket: usize,
    },
    /// Cuts after these prefix lengths (e.g. `[1, 5, 10]`), where valid.
    Fixed {
        /// Prefix lengths, each at least 1.
        prefix_lens: Vec<usize>,
    },
}

impl Default for CutPolicy {
    fn default() -> Self {
        CutPolicy::Sampled { max_per_ticket: 8 }
    }
}

/// Labelling configuration, validated once by [`Labeler::new`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LabelConfig {
    /// The prediction horizon in milliseconds. Default 4 hours.
    pub horizon_ms: i64,
    /// Which cuts become samples. Default [`CutPolicy::Sampled`] with 8 per ticket.
    pub policy: CutPolicy,
    /// Seed of [`CutPolicy::Sampled`]. Default 0.
    pub seed: u64,
}

impl Default for LabelConfig {
    fn default() -> Self {
        Self {
            horizon_ms: 4 * HOUR_MS,
            policy: CutPolicy::default(),
            seed: 0,
        }
    }
}

/// Errors of labelling.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum LabelError {
    /// A configuration field is invalid.
    #[error("invalid label config field `{field}`: {reason}")]
    Config {
        /// The field name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A sample would leak information from after its window or its cut.
    #[error("sample {sample:?} leaks: {reason}")]
    Leak {
        /// The offending sample.
        sample: Sample,
        /// What leaks.
        reason: String,
    },
}

/// The samples of each part of a split.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SplitSamples {
    /// Samples of training tickets, labels known before the train window ends.
    pub train: Vec<Sample>,
    /// Samples of validation tickets, labels known before the validation window ends.
    pub validation: Vec<Sample>,
    /// Samples of holdout tickets.
    pub holdout: Vec<Sample>,
}

impl SplitSamples {
    /// The samples of one part.
    pub fn part(&self, part: SplitPart) -> &[Sample] {
        match part {
            SplitPart::Train => &self.train,
            SplitPart::Validation => &self.validation,
            SplitPart::Holdout => &self.holdout,
        }
    }
}

/// A validated labelling configuration.
#[derive(Clone, Debug)]
pub struct Labeler {
    config: LabelConfig,
}

impl Labeler {
    /// Validates `config`: a positive horizon of at most 365 days, and policy parameters of at
    /// least 1.
    pub fn new(config: LabelConfig) -> Result<Self, LabelError> {
        let max = 365 * 24 * HOUR_MS;
        if config.horizon_ms <= 0 || config.horizon_ms > max {
            let reason = format!("{} ms is outside 1..={max} ms", config.horizon_ms);
            return Err(LabelError::Config {
                field: "horizon_ms",
                reason,
            });
        }
        let zero = |field| {
            Err(LabelError::Config {
                field,
                reason: "must be at least 1".into(),
            })
        };
        match &config.policy {
            CutPolicy::EveryKth { k: 0 } => return zero("policy.k"),
            CutPolicy::Sampled { max_per_ticket: 0 } => return zero("policy.max_per_ticket"),
            CutPolicy::Fixed { prefix_lens } if prefix_lens.contains(&0) => return zero("policy.prefix_lens"),
            _ => {}
        }
        Ok(Self { config })
    }

    /// The validated configuration.
    pub fn config(&self) -> &LabelConfig {
        &self.config
    }

    /// The prediction horizon in milliseconds.
    pub fn horizon_ms(&self) -> i64 {
        self.config.horizon_ms
    }

    /// The samples ticket `index` of `log` contributes, in cut order. With `window_end_ms`,
    /// only cuts with `cut_ms + horizon_ms <= window_end_ms` are eligible.
    ///
    /// # Panics
    /// When `index` is out of range.
    pub fn ticket_samples(&self, log: &EventLog, index: usize, window_end_ms: Option<i64>) -> Vec<Sample> {
        let ticket = &log.tickets[index];
        let eligible: Vec<Sample> = valid_cuts(ticket)
            .filter(|&len| {
                window_end_ms.is_none_or(|end| cut_time(ticket, len).saturating_add(self.config.horizon_ms) <= end)
            })
            .filter_map(|len| self.sample_at(ticket, index, len))
            .collect();
        self.choose(index, eligible)
    }

    /// The samples of `tickets`, concatenated in the given order.
    pub fn samples(&self, log: &EventLog, tickets: &[usize], window_end_ms: Option<i64>) -> Vec<Sample> {
        tickets
            .iter()
            .flat_map(|&i| self.ticket_samples(log, i, window_end_ms))
            .collect()
    }

    /// The samples of every part of `split`, each bounded by [`Split::window_end_ms`].
    pub fn split_samples(&self, log: &EventLog, split: &Split) -> SplitSamples {
        let part = |p| self.samples(log, split.part(p), split.window_end_ms(p));
        SplitSamples {
            train: part(SplitPart::Train),
            validation: part(SplitPart::Validation),
            holdout: part(SplitPart::Holdout),
        }
    }

    /// Checks that every sample has a consistent prefix (nothing after the cut visible,
    /// nothing at or before it hidden), the right label, and, with `window_end_ms`, a label
    /// known before the window ends.
    pub fn check(&self, log: &EventLog, samples: &[Sample], window_end_ms: Option<i64>) -> Result<(), LabelError> {
        for &s in samples {
            let leak = |reason: String| Err(LabelError::Leak { sample: s, reason });
            let Some(ticket) = log.tickets.get(s.ticket) else {
                return leak(format!("ticket index out of range ({} tickets)", log.tickets.len()));
            };
            if s.prefix_len == 0 || visible_prefix_len(ticket, s.cut_ms) != s.prefix_len {
                return leak(format!(
                    "{} events have timestamp <= cut_ms",
                    visible_prefix_len(ticket, s.cut_ms)
                ));
            }
            if label_at(ticket, s.cut_ms, self.config.horizon_ms) != Some(s.label) {
                return leak("label disagrees with the escalation time".into());
            }
            if let Some(end) = window_end_ms.filter(|&end| s.cut_ms.saturating_add(self.config.horizon_ms) > end) {
                return leak(format!("cut_ms + horizon_ms > window end {end}"));
            }
        }
        Ok(())
    }

    fn sample_at(&self, ticket: &Ticket, index: usize, prefix_len: usize) -> Option<Sample> {
        let cut_ms = cut_time(ticket, prefix_len);
        let label = label_at(ticket, cut_ms, self.config.horizon_ms)?;
        Some(Sample {
            ticket: index,
            prefix_len,
            cut_ms,
            label,
        })
    }

    fn choose(&self, index: usize, eligible: Vec<Sample>) -> Vec<Sample> {
        match &self.config.policy {
            CutPolicy::EveryEvent => eligible,
            CutPolicy::EveryKth { k } => eligible.into_iter().step_by(*k).collect(),
            CutPolicy::Sampled { max_per_ticket } if eligible.len() <= *max_per_ticket => eligible,
            CutPolicy::Sampled { max_per_ticket } => {
                let mut rng = ChaCha8Rng::seed_from_u64(self.config.seed);
                rng.set_stream(index as u64);
                let mut picked = index::sample(&mut rng, eligible.len(), *max_per_ticket).into_vec();
                picked.sort_unstable();
                picked.into_iter().map(|i| eligible[i]).collect()
            }
            CutPolicy::Fixed { prefix_lens } => eligible
                .into_iter()
                .filter(|s| prefix_lens.contains(&s.prefix_len))
                .collect(),
        }
    }
}

/// The label of a cut at `cut_ms`: `None` when the ticket escalated at or before the cut
/// (not a sample), else whether it escalates in `(cut_ms, cut_ms + horizon_ms]`.
pub fn label_at(ticket: &Ticket, cut_ms: i64, horizon_ms: i64) -> Option<bool> {
    match ticket.escalated_at_ms {
        Some(e) if e <= cut_ms => None,
        Some(e) => Some(e <= cut_ms.saturating_add(horizon_ms)),
        None => Some(false),
    }
}

/// How many events are visible at `cut_ms`: those with `timestamp_ms <= cut_ms`.
pub fn visible_prefix_len(ticket: &Ticket, cut_ms: i64) -> usize {
    ticket.events.partition_point(|e| e.timestamp_ms <= cut_ms)
}

/// The prefix lengths of the valid cuts of `ticket` (after the last event of each timestamp).
pub fn valid_cuts(ticket: &Ticket) -> impl Iterator<Item = usize> + '_ {
    let ev = &ticket.events;
    (1..=ev.len()).filter(move |&len| len == ev.len() || ev[len].timestamp_ms > ev[len - 1].timestamp_ms)
}

fn cut_time(ticket: &Ticket, prefix_len: usize) -> i64 {
    ticket.events[prefix_len - 1].timestamp_ms
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Event;

    fn ticket(times: &[i64], escalated_at_ms: Option<i64>) -> Ticket {
        let events = times
            .iter()
            .map(|&t| Event {
                timestamp_ms: t,
                event_type: "x".into(),
                numeric: vec![],
            })
            .collect();
        Ticket {
            id: "t".into(),
            events,
            escalated_at_ms,
        }
    }

    #[test]
    fn ties_collapse_into_one_cut() {
        let t = ticket(&[0, 5, 5, 9], None);
        assert_eq!(valid_cuts(&t).collect::<Vec<_>>(), vec![1, 3, 4]);
        assert_eq!(visible_prefix_len(&t, 5), 3);
    }

    #[test]
    fn sampled_policy_caps_and_is_deterministic() {
        let times: Vec<i64> = (0..50).collect();
        let log = EventLog {
            numeric_columns: vec![],
            tickets: vec![ticket(&times, None)],
        };
        let l = Labeler::new(LabelConfig {
            policy: CutPolicy::Sampled { max_per_ticket: 5 },
            ..Default::default()
        })
        .unwrap();
        let a = l.ticket_samples(&log, 0, None);
        assert_eq!(a.len(), 5);
        assert_eq!(a, l.ticket_samples(&log, 0, None));
        assert!(a.windows(2).all(|w| w[0].prefix_len < w[1].prefix_len));
    }

    #[test]
    fn every_kth_starts_at_the_first_cut() {
        let log = EventLog {
            numeric_columns: vec![],
            tickets: vec![ticket(&[0, 1, 2, 3, 4, 5, 6], None)],
        };
        let l = Labeler::new(LabelConfig {
            policy: CutPolicy::EveryKth { k: 3 },
            ..Default::default()
        })
        .unwrap();
        let lens: Vec<usize> = l.ticket_samples(&log, 0, None).iter().map(|s| s.prefix_len).collect();
        assert_eq!(lens, vec![1, 4, 7]);
    }
}
