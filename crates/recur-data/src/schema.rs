//! The event-log schema shared by readers, the generator, labelling and serving.
//!
//! A log is a set of tickets; a ticket is a time-ordered sequence of events and an optional
//! escalation time. Times are UTC epoch milliseconds.

use serde::{Deserialize, Serialize};

/// One event of a ticket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// UTC epoch milliseconds.
    pub timestamp_ms: i64,
    /// The event type as written in the log (e.g. `customer_message`).
    pub event_type: String,
    /// Values of the log's numeric columns ([`EventLog::numeric_columns`]), in that order;
    /// `NaN` where the row left the column empty.
    pub numeric: Vec<f64>,
}

/// One ticket: its events in time order (ties keep file order) and when it escalated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ticket {
    /// The ticket id as written in the log.
    pub id: String,
    /// Events sorted by `timestamp_ms` (stable).
    pub events: Vec<Event>,
    /// When the ticket escalated (UTC epoch milliseconds), if it did.
    pub escalated_at_ms: Option<i64>,
}

impl Ticket {
    /// Opening time: the first event's timestamp.
    ///
    /// # Panics
    /// When the ticket has no events (readers never produce such tickets).
    pub fn opened_at_ms(&self) -> i64 {
        self.events[0].timestamp_ms
    }
}

/// A whole event log.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EventLog {
    /// Names of the optional numeric columns, in the order of [`Event::numeric`].
    pub numeric_columns: Vec<String>,
    /// Tickets, in order of first appearance in the input.
    pub tickets: Vec<Ticket>,
}

/// Milliseconds per hour.
pub const HOUR_MS: i64 = 3_600_000;
/// Milliseconds per day.
pub const DAY_MS: i64 = 24 * HOUR_MS;
