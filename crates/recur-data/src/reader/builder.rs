//! Accumulating validated rows into tickets, and the bad-row bookkeeping both formats share.

use std::collections::HashMap;

use super::{BadRow, Field, Problem, ReadError, ReadOptions, ReadReport, MAX_BAD_ROW_EXAMPLES};
use crate::schema::{Event, EventLog, Ticket};

/// A row-level failure: the column or field at fault (if any) and the problem.
pub(super) type RowResult<T> = Result<T, (Option<Field>, Problem)>;

pub(super) fn set_earliest(slot: &mut Option<i64>, at: i64) {
    *slot = Some(slot.map_or(at, |old| old.min(at)));
}

/// Records a bad row in the report, or returns it as the error when rows are not skipped.
pub(super) fn bad_row(report: &mut ReadReport, opts: &ReadOptions, row: BadRow) -> Result<(), ReadError> {
    if !opts.skip_bad_rows {
        return Err(row.into());
    }
    report.bad_rows += 1;
    if report.bad_row_examples.len() < MAX_BAD_ROW_EXAMPLES {
        report.bad_row_examples.push(row);
    }
    Ok(())
}

/// Accumulates rows into tickets.
pub(super) struct Builder<'a> {
    pub(super) file: &'a str,
    opts: &'a ReadOptions,
    pub(super) log: EventLog,
    index: HashMap<String, usize>,
    /// The ticket of the previous row: consecutive rows usually share one.
    last: Option<usize>,
    /// Line of each ticket's first row, for the "only escalations" error.
    first_line: Vec<u64>,
    pub(super) report: ReadReport,
}

impl<'a> Builder<'a> {
    pub(super) fn new(file: &'a str, opts: &'a ReadOptions) -> Self {
        Builder {
            file,
            opts,
            log: EventLog::default(),
            index: HashMap::new(),
            last: None,
            first_line: Vec::new(),
            report: ReadReport::default(),
        }
    }

    pub(super) fn bad(&mut self, line: u64, field: Option<Field>, problem: Problem) -> Result<(), ReadError> {
        let row = BadRow {
            file: self.file.to_string(),
            line,
            field,
            problem,
        };
        bad_row(&mut self.report, self.opts, row)
    }

    fn ticket(&mut self, id: &str, line: u64) -> usize {
        if let Some(i) = self.last.filter(|&i| self.log.tickets[i].id == id) {
            return i;
        }
        let i = match self.index.get(id) {
            Some(&i) => i,
            None => {
                let i = self.log.tickets.len();
                self.log.tickets.push(Ticket {
                    id: id.to_string(),
                    events: Vec::new(),
                    escalated_at_ms: None,
                });
                self.first_line.push(line);
                self.index.insert(id.to_string(), i);
                i
            }
        };
        self.last = Some(i);
        i
    }

    fn is_escalation(&self, event_type: &str) -> bool {
        self.opts.escalation_event.as_deref() == Some(event_type)
    }

    /// Adds one validated row.
    pub(super) fn push(&mut self, line: u64, id: &str, timestamp_ms: i64, event_type: &str, numeric: Vec<f64>) {
        let t = self.ticket(id, line);
        if self.is_escalation(event_type) {
            self.report.escalation_rows += 1;
            set_earliest(&mut self.log.tickets[t].escalated_at_ms, timestamp_ms);
        } else {
            self.log.tickets[t].events.push(Event {
                timestamp_ms,
                event_type: event_type.to_string(),
                numeric,
            });
        }
    }

    /// Pads numeric vectors to the final column count, sorts each ticket by time (stable) and
    /// reports tickets that hold only escalations.
    pub(super) fn finish(mut self) -> Result<(EventLog, ReadReport), ReadError> {
        let width = self.log.numeric_columns.len();
        let tickets = std::mem::take(&mut self.log.tickets);
        let mut kept = Vec::with_capacity(tickets.len());
        for (mut ticket, line) in tickets.into_iter().zip(std::mem::take(&mut self.first_line)) {
            if ticket.events.is_empty() {
                self.bad(line, None, Problem::OnlyEscalation(ticket.id))?;
                continue;
            }
            for e in &mut ticket.events {
                e.numeric.resize(width, f64::NAN);
            }
            if !ticket.events.is_sorted_by_key(|e| e.timestamp_ms) {
                ticket.events.sort_by_key(|e| e.timestamp_ms);
            }
            kept.push(ticket);
        }
        self.log.tickets = kept;
        self.report.count_log(&self.log);
        Ok((self.log, self.report))
    }
}

pub(super) fn utf8(bytes: &[u8]) -> Result<&str, Problem> {
    std::str::from_utf8(bytes).map_err(|_| Problem::Utf8)
}
