//! The synthetic Harbor Support ticket generator: realistic event logs whose escalations depend
//! on the order and timing of events, as in the guide's worked example. The full story, its
//! parameters and the measured statistics are in `docs/harbor.md`.
//!
//! Each ticket is a small latent process. At opening it draws a topic (technical, billing,
//! account), a priority (1 low … 4 urgent), a customer mood, a thread length (log-normal,
//! median 18, p95 112) and, for some technical tickets, a link to a platform incident (shown
//! only as an `integration_webhook` right after `opened`). It then emits events one by one
//! from a Markov chain over the 12 [`EVENT_TYPES`] with heavy-tailed, shift-aware gaps. Some
//! patterns start an escalation clock that rings after a delay of minutes to hours:
//! `refund_approved` *followed by* `chargeback_filed` (the reverse order does not), a
//! `reopened` in an incident-linked ticket (a hazard set at the very start that fires much
//! later), several `sla_tick`s bunched within two hours (the same count spread out does not),
//! angry messages, a raise to urgent priority, and unexplained background escalations. The
//! first clock to ring is the ticket's `escalated_at`; the ticket then ends or, usually, goes
//! on with Tier 3 picking it up.
//!
//! Determinism: the log is a pure function of [`HarborConfig`] and [`GENERATOR_VERSION`]. All
//! randomness comes from `rand_chacha::ChaCha8Rng` keyed by the seed (expanded with
//! SplitMix64), one ChaCha stream per ticket, turned into draws by this crate's own code (no
//! `rand` distribution), so neither thread count nor `rand` upgrades change the stream. Any
//! change to the generated logs bumps [`GENERATOR_VERSION`].

mod calendar;
mod params;
mod sample;
mod ticket;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use params::{Story, Trigger};

use crate::schema::EventLog;
use crate::writer::format_timestamp;

/// The 12 event types, in the generator's internal order.
pub const EVENT_TYPES: [&str; 12] = [
    "opened",
    "customer_message",
    "agent_reply",
    "status_change",
    "sla_tick",
    "integration_webhook",
    "priority_raised",
    "refund_approved",
    "chargeback_filed",
    "reopened",
    "internal_note",
    "assignment_change",
];

/// The numeric columns: `priority` (code 1 low … 4 urgent, on every event, after any raise)
/// and `sentiment` (in [-1, 1] on `customer_message`, NaN on other events).
pub const NUMERIC_COLUMNS: [&str; 2] = ["priority", "sentiment"];

/// Version of the generated stream; bumped whenever the same config would give another log.
pub const GENERATOR_VERSION: u32 = 1;

/// 2025-01-01T00:00:00Z in epoch milliseconds.
pub const DEFAULT_START_MS: i64 = 1_735_689_600_000;

/// What to generate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HarborConfig {
    /// Number of tickets (default 20,000).
    pub tickets: usize,
    /// Seed of the random stream (default 0).
    pub seed: u64,
    /// Opening times start at midnight UTC of this instant's day (default 2025-01-01).
    pub start_ms: i64,
    /// Opening times spread over this many days (default 365).
    pub span_days: u32,
    /// The story's parameters.
    pub story: Story,
}

impl Default for HarborConfig {
    fn default() -> Self {
        HarborConfig {
            tickets: 20_000,
            seed: 0,
            start_ms: DEFAULT_START_MS,
            span_days: 365,
            story: Story::default(),
        }
    }
}

impl HarborConfig {
    /// `tickets` tickets from `seed`, everything else default.
    pub fn new(tickets: usize, seed: u64) -> Self {
        HarborConfig {
            tickets,
            seed,
            ..HarborConfig::default()
        }
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |field: &'static str, reason: String| Err(ConfigError { field, reason });
        if self.span_days == 0 {
            return err("span_days", "must be at least 1".into());
        }
        // Leave room for threads running on past the last opening day.
        let end = i64::from(self.span_days) * crate::schema::DAY_MS + 10 * 365 * crate::schema::DAY_MS;
        if self.start_ms < 0 || self.start_ms.saturating_add(end) > crate::reader::MAX_TIMESTAMP_MS {
            return err("start_ms", format!("{} must lie between 1970 and ~9980", self.start_ms));
        }
        self.story.validate().or_else(|(field, reason)| err(field, reason))
    }
}

/// An invalid [`HarborConfig`] field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid harbor config field `{field}`: {reason}")]
pub struct ConfigError {
    /// The field (story fields by their name in [`Story`]).
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

/// A ticket's topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Topic {
    /// Integrations, outages, bugs.
    Technical,
    /// Refunds, chargebacks, invoices.
    Billing,
    /// Access, plans, users.
    Account,
}

/// The trigger whose clock rang first, i.e. why a ticket escalated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Cause {
    /// `refund_approved` then `chargeback_filed`.
    Dispute,
    /// `chargeback_filed` with no refund before it.
    Chargeback,
    /// `reopened` in an incident-linked ticket.
    IncidentReopen,
    /// `reopened` in another ticket.
    Reopen,
    /// SLA ticks bunched in a short window.
    SlaBurst,
    /// A very negative customer message.
    AngryMessage,
    /// Priority raised to urgent.
    UrgentPriority,
    /// No visible reason.
    Background,
}

/// The latent side of a generated ticket, for analysis and docs (not visible in the log).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketStory {
    /// The topic.
    pub topic: Topic,
    /// Whether the ticket was linked to a platform incident at opening.
    pub incident: bool,
    /// Why it escalated, if it did.
    pub cause: Option<Cause>,
}

/// Generates the log: tickets ordered and numbered (`HS-0000001`, …) by opening time.
///
/// # Panics
/// When the config is invalid ([`HarborConfig::validate`]).
pub fn generate(cfg: &HarborConfig) -> EventLog {
    generate_annotated(cfg).0
}

/// [`generate`], plus each ticket's latent story, aligned with `log.tickets`.
///
/// # Panics
/// When the config is invalid ([`HarborConfig::validate`]).
pub fn generate_annotated(cfg: &HarborConfig) -> (EventLog, Vec<TicketStory>) {
    if let Err(e) = cfg.validate() {
        panic!("{e}");
    }
    let calendar = calendar::Calendar::new(cfg.start_ms, cfg.span_days);
    let one = |i: usize| ticket::simulate(sample::ticket_rng(cfg.seed, i as u64), &cfg.story, &calendar);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(16);
    let chunk = cfg.tickets.div_ceil(threads).max(1);
    let mut sims: Vec<ticket::Simulated> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..cfg.tickets)
            .step_by(chunk)
            .map(|lo| s.spawn(move || (lo..(lo + chunk).min(cfg.tickets)).map(one).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("generator thread"))
            .collect()
    });
    sims.sort_by_key(|t| t.events[0].timestamp_ms);
    let width = cfg.tickets.to_string().len().max(7);
    let mut log = EventLog {
        numeric_columns: NUMERIC_COLUMNS.map(String::from).to_vec(),
        tickets: Vec::with_capacity(sims.len()),
    };
    let mut stories = Vec::with_capacity(sims.len());
    for (i, sim) in sims.into_iter().enumerate() {
        log.tickets.push(crate::schema::Ticket {
            id: format!("HS-{:0width$}", i + 1),
            events: sim.events,
            escalated_at_ms: sim.escalated_at_ms,
        });
        stories.push(sim.story);
    }
    (log, stories)
}

/// Per-cause evaluation subsets of labelled cut points from a generated log: for each cause
/// that escalated a positive sample (in name order), the indices into `samples` of that cause's
/// positives together with every negative. An AUC on such a subset says how well a model ranks
/// that cause's escalations above the quiet cuts.
///
/// # Panics
/// When a positive sample's ticket has no cause in `stories` (the two do not come from the same
/// [`generate_annotated`] call).
pub fn cause_subsets(samples: &[crate::labels::Sample], stories: &[TicketStory]) -> Vec<(String, Vec<usize>)> {
    let cause = |i: usize| {
        let c = stories[samples[i].ticket]
            .cause
            .expect("a positive cut's ticket has a cause");
        format!("{c:?}")
    };
    let mut names: Vec<String> = (0..samples.len()).filter(|&i| samples[i].label).map(cause).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|c| {
            let keep = (0..samples.len())
                .filter(|&i| !samples[i].label || cause(i) == c)
                .collect();
            (c, keep)
        })
        .collect()
}

/// Headline statistics of a log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogSummary {
    /// Number of tickets.
    pub tickets: usize,
    /// Number of events.
    pub events: usize,
    /// Tickets with an escalation time.
    pub escalated: usize,
    /// `escalated / tickets` (0 for an empty log).
    pub escalation_rate: f64,
    /// Median events per ticket (nearest rank).
    pub median_length: usize,
    /// 95th percentile of events per ticket (nearest rank).
    pub p95_length: usize,
    /// Earliest event time, epoch ms (`None` for an empty log).
    pub first_ms: Option<i64>,
    /// Latest event time, epoch ms.
    pub last_ms: Option<i64>,
}

impl LogSummary {
    /// Computes the statistics.
    pub fn of(log: &EventLog) -> Self {
        let mut lengths: Vec<usize> = log.tickets.iter().map(|t| t.events.len()).collect();
        lengths.sort_unstable();
        let rank = |q: f64| match lengths.len() {
            0 => 0,
            n => lengths[((q * n as f64).ceil() as usize).clamp(1, n) - 1],
        };
        let times = log.tickets.iter().flat_map(|t| &t.events).map(|e| e.timestamp_ms);
        let escalated = log.tickets.iter().filter(|t| t.escalated_at_ms.is_some()).count();
        LogSummary {
            tickets: log.tickets.len(),
            events: lengths.iter().sum(),
            escalated,
            escalation_rate: escalated as f64 / log.tickets.len().max(1) as f64,
            median_length: rank(0.5),
            p95_length: rank(0.95),
            first_ms: times.clone().min(),
            last_ms: times.max(),
        }
    }
}

impl fmt::Display for LogSummary {
    /// One line: `20000 tickets, 661234 events, 3.21% escalated (642), length median 18 p95 112,
    /// 2025-01-01T00:03:12.000Z .. 2026-01-20T11:12:00.000Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} tickets, {} events, {:.2}% escalated ({}), length median {} p95 {}",
            self.tickets,
            self.events,
            100.0 * self.escalation_rate,
            self.escalated,
            self.median_length,
            self.p95_length
        )?;
        if let (Some(a), Some(b)) = (self.first_ms, self.last_ms) {
            write!(f, ", {} .. {}", format_timestamp(a), format_timestamp(b))?;
        }
        Ok(())
    }
}
