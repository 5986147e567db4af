//! Event-log readers: CSV and JSONL with one row per event, plus escalations either as an event
//! type or as a separate `ticket_id,escalated_at` CSV file. The format is specified in
//! `docs/event-log.md`.
//!
//! Every bad row is either an error that names the file, the 1-based line (the CSV header is
//! line 1) and the column or field, for example
//! `events.csv:17: column timestamp: cannot parse "2025-13-01" as RFC 3339 or epoch seconds`,
//! or — with [`ReadOptions::skip_bad_rows`] — a count in the [`ReadReport`] returned alongside
//! the log, with the first [`MAX_BAD_ROW_EXAMPLES`] reasons kept. Rows are never dropped
//! silently. Problems with the file as a whole (I/O, a missing or duplicate column) are always
//! errors.
//!
//! Reading streams: CSV through the `csv` crate's byte records, JSONL line by line, so memory
//! is the log itself.

mod builder;
mod csv;
mod jsonl;
mod timestamp;

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use crate::schema::EventLog;

use self::builder::{bad_row, set_earliest, utf8, Builder};
use self::csv::{check_width, header_names, read_csv_rows, read_record};
use self::jsonl::read_jsonl_rows;
pub use self::timestamp::{parse_number, parse_timestamp};

/// The event type that marks an escalation unless [`ReadOptions::escalation_event`] says
/// otherwise.
pub const DEFAULT_ESCALATION_EVENT: &str = "escalated";
/// How many bad-row reasons a [`ReadReport`] keeps.
pub const MAX_BAD_ROW_EXAMPLES: usize = 10;
/// The columns every event file must have; any other column is numeric.
pub const REQUIRED_COLUMNS: [&str; 3] = ["ticket_id", "timestamp", "event_type"];
/// The columns an escalations file must have (others are ignored).
pub const ESCALATION_COLUMNS: [&str; 2] = ["ticket_id", "escalated_at"];
/// Earliest readable time, 0000-01-01T00:00:00Z, in epoch milliseconds (RFC 3339's range).
pub const MIN_TIMESTAMP_MS: i64 = -62_167_219_200_000;
/// Latest readable time, 9999-12-31T23:59:59.999Z, in epoch milliseconds.
pub const MAX_TIMESTAMP_MS: i64 = 253_402_300_799_999;

/// The two event-file formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated values with a header line.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

impl Format {
    /// The format a file name implies: `.csv` → CSV; `.jsonl`, `.ndjson` → JSONL.
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Some(Format::Csv),
            "jsonl" | "ndjson" => Some(Format::Jsonl),
            _ => None,
        }
    }
}

/// How to read a log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadOptions {
    /// The event type that marks an escalation (default `escalated`); `None` treats every event
    /// type as visible. Its earliest occurrence per ticket sets [`Ticket::escalated_at_ms`], and
    /// such events are removed from the ticket's sequence.
    ///
    /// [`Ticket::escalated_at_ms`]: crate::schema::Ticket::escalated_at_ms
    pub escalation_event: Option<String>,
    /// Count bad rows in the [`ReadReport`] instead of failing on the first one.
    pub skip_bad_rows: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            escalation_event: Some(DEFAULT_ESCALATION_EVENT.to_string()),
            skip_bad_rows: false,
        }
    }
}

/// Where in a row a problem sits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Field {
    /// A CSV column, by header name.
    Column(String),
    /// A JSONL object key.
    Key(String),
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Column(name) => write!(f, "column {name}"),
            Field::Key(name) => write!(f, "field {name}"),
        }
    }
}

/// What is wrong with a row.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// A required value is absent or empty.
    #[error("missing value")]
    Missing,
    /// A timestamp is neither RFC 3339 with an offset nor epoch seconds.
    #[error("cannot parse {0:?} as RFC 3339 or epoch seconds")]
    Timestamp(String),
    /// A timestamp lies outside years 0000–9999.
    #[error("timestamp {0:?} is outside years 0000-9999")]
    TimestampRange(String),
    /// A numeric column holds something that is not a number.
    #[error("cannot parse {0:?} as a number")]
    Number(String),
    /// A numeric column holds NaN or an infinity (leave the cell empty for a missing value).
    #[error("{0:?} is not a finite number (leave it empty for a missing value)")]
    NonFinite(String),
    /// The row has a different number of fields than the header.
    #[error("expected {expected} fields, found {found}")]
    FieldCount {
        /// Fields in the header.
        expected: usize,
        /// Fields in this row.
        found: usize,
    },
    /// The bytes are not UTF-8.
    #[error("not valid UTF-8")]
    Utf8,
    /// A JSONL line is not valid JSON.
    #[error("invalid JSON: {0}")]
    Json(String),
    /// A JSON value has the wrong type.
    #[error("expected {expected}, found {found}")]
    JsonType {
        /// What the field must hold.
        expected: &'static str,
        /// What it held.
        found: &'static str,
    },
    /// A JSON object names the same key twice.
    #[error("duplicate key")]
    DuplicateKey,
    /// An escalations-file row names a ticket that has no events.
    #[error("escalation for unknown ticket {0:?}")]
    UnknownTicket(String),
    /// A ticket's only rows are escalation events, so it has no visible sequence.
    #[error("ticket {0:?} has no events besides its escalation")]
    OnlyEscalation(String),
}

/// One bad row: file, 1-based line, the column or field (when one is at fault) and the problem.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct BadRow {
    /// The file, as given to the reader.
    pub file: String,
    /// 1-based line number; in CSV the header is line 1.
    pub line: u64,
    /// The column or field at fault.
    pub field: Option<Field>,
    /// What is wrong.
    pub problem: Problem,
}

impl fmt::Display for BadRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file, self.line)?;
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        write!(f, "{}", self.problem)
    }
}

/// Why a log could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be opened or read.
    #[error("{file}: {error}")]
    Io {
        /// The file.
        file: String,
        /// The I/O error.
        error: io::Error,
    },
    /// A bad row (only when bad rows are not skipped).
    #[error(transparent)]
    Row(#[from] BadRow),
    /// The file has no header line (CSV) or no rows at all.
    #[error("{file}: empty file")]
    Empty {
        /// The file.
        file: String,
    },
    /// A required column is not in the header (or a JSONL event file lacks it on every line).
    #[error("{file}:1: missing required column {column}")]
    MissingColumn {
        /// The file.
        file: String,
        /// The missing column.
        column: &'static str,
    },
    /// Two header fields have the same name.
    #[error("{file}:1: duplicate column {column:?}")]
    DuplicateColumn {
        /// The file.
        file: String,
        /// The repeated name.
        column: String,
    },
    /// A header field is empty or not UTF-8.
    #[error("{file}:1: column {position} has an empty or non-UTF-8 name")]
    BadColumnName {
        /// The file.
        file: String,
        /// 1-based position in the header.
        position: usize,
    },
    /// The file name does not tell CSV from JSONL.
    #[error("{file}: cannot tell the format from the name (use .csv, .jsonl or .ndjson)")]
    UnknownFormat {
        /// The file.
        file: String,
    },
    /// A log directory holds no event file.
    #[error("{dir}: no events.csv, events.jsonl or events.ndjson")]
    NoEventFile {
        /// The directory.
        dir: String,
    },
}

/// What a read saw: counts, and the bad rows it skipped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadReport {
    /// Data rows read from the event file (blank JSONL lines are not rows).
    pub rows: u64,
    /// Events kept in the log (escalation events are not events).
    pub events: u64,
    /// Tickets in the log.
    pub tickets: u64,
    /// Tickets with an escalation time.
    pub escalated_tickets: u64,
    /// Escalation rows accepted: escalation events plus escalations-file rows.
    pub escalation_rows: u64,
    /// Rows skipped because they were bad (only with [`ReadOptions::skip_bad_rows`]).
    pub bad_rows: u64,
    /// The first [`MAX_BAD_ROW_EXAMPLES`] bad rows, in reading order.
    pub bad_row_examples: Vec<BadRow>,
}

impl ReadReport {
    fn count_log(&mut self, log: &EventLog) {
        self.tickets = log.tickets.len() as u64;
        self.events = log.tickets.iter().map(|t| t.events.len() as u64).sum();
        self.escalated_tickets = log.tickets.iter().filter(|t| t.escalated_at_ms.is_some()).count() as u64;
    }
}

impl fmt::Display for ReadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} rows: {} events in {} tickets, {} escalated; {} bad rows skipped",
            self.rows, self.events, self.tickets, self.escalated_tickets, self.bad_rows
        )?;
        if let Some(first) = self.bad_row_examples.first() {
            write!(f, " (first: {first})")?;
        }
        Ok(())
    }
}

/// Reads an event file (format from its extension) and, if given, an escalations file.
///
/// Escalations from both sources combine: a ticket's escalation time is the earliest one seen.
pub fn read_event_log(
    events: &Path,
    escalations: Option<&Path>,
    opts: &ReadOptions,
) -> Result<(EventLog, ReadReport), ReadError> {
    let name = events.display().to_string();
    let format = Format::from_path(events).ok_or_else(|| ReadError::UnknownFormat { file: name.clone() })?;
    let (mut log, mut report) = read_events(open(events)?, &name, format, opts)?;
    if let Some(path) = escalations {
        read_escalations(open(path)?, &path.display().to_string(), &mut log, opts, &mut report)?;
    }
    Ok((log, report))
}

/// Reads a log directory: `events.csv` (or `events.jsonl`, `events.ndjson`) and, when present,
/// `escalations.csv` — the layout the writer and `recur harbor generate` produce.
pub fn read_log_dir(dir: &Path, opts: &ReadOptions) -> Result<(EventLog, ReadReport), ReadError> {
    let events = ["events.csv", "events.jsonl", "events.ndjson"]
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
        .ok_or_else(|| ReadError::NoEventFile {
            dir: dir.display().to_string(),
        })?;
    let escalations = dir.join("escalations.csv");
    let escalations = escalations.is_file().then_some(escalations.as_path());
    read_event_log(&events, escalations, opts)
}

/// Reads events from any reader; `file` names it in messages.
pub fn read_events<R: Read>(
    input: R,
    file: &str,
    format: Format,
    opts: &ReadOptions,
) -> Result<(EventLog, ReadReport), ReadError> {
    let mut b = Builder::new(file, opts);
    match format {
        Format::Csv => read_csv_rows(input, &mut b)?,
        Format::Jsonl => read_jsonl_rows(input, &mut b)?,
    }
    b.finish()
}

/// Reads a `ticket_id,escalated_at` CSV into `log`: each row sets its ticket's escalation time
/// unless an earlier one is already known. An empty `escalated_at` means "did not escalate";
/// columns other than the two are ignored. A ticket the log does not hold is a bad row.
pub fn read_escalations<R: Read>(
    input: R,
    file: &str,
    log: &mut EventLog,
    opts: &ReadOptions,
    report: &mut ReadReport,
) -> Result<(), ReadError> {
    let mut rdr = ::csv::ReaderBuilder::new().flexible(true).from_reader(input);
    let names = header_names(&mut rdr, file)?;
    let [id_col, at_col] = ESCALATION_COLUMNS.map(|c| names.iter().position(|n| n == c));
    let (Some(id_col), Some(at_col)) = (id_col, at_col) else {
        let column = if id_col.is_none() { "ticket_id" } else { "escalated_at" };
        return Err(ReadError::MissingColumn {
            file: file.to_string(),
            column,
        });
    };
    let index: HashMap<&str, usize> = log
        .tickets
        .iter()
        .enumerate()
        .map(|(i, t)| (t.id.as_str(), i))
        .collect();
    let mut updates = Vec::new();
    let mut rec = ::csv::ByteRecord::new();
    while read_record(&mut rdr, &mut rec, file)? {
        let line = rec.position().map_or(0, |p| p.line());
        let row = (|| {
            check_width(&rec, names.len())?;
            let col = |i: usize| Field::Column(names[i].clone());
            let id = utf8(&rec[id_col]).map_err(|p| (Some(col(id_col)), p))?;
            if id.is_empty() {
                return Err((Some(col(id_col)), Problem::Missing));
            }
            let at = utf8(&rec[at_col]).map_err(|p| (Some(col(at_col)), p))?;
            let Some(&ticket) = index.get(id) else {
                return Err((Some(col(id_col)), Problem::UnknownTicket(id.to_string())));
            };
            if at.trim().is_empty() {
                return Ok(None);
            }
            let at = parse_timestamp(at).map_err(|p| (Some(col(at_col)), p))?;
            Ok(Some((ticket, at)))
        })();
        match row {
            Ok(Some(update)) => updates.push(update),
            Ok(None) => {}
            Err((field, problem)) => bad_row(
                report,
                opts,
                BadRow {
                    file: file.to_string(),
                    line,
                    field,
                    problem,
                },
            )?,
        }
    }
    drop(index);
    report.escalation_rows += updates.len() as u64;
    for (ticket, at) in updates {
        set_earliest(&mut log.tickets[ticket].escalated_at_ms, at);
    }
    report.count_log(log);
    Ok(())
}

fn open(path: &Path) -> Result<BufReader<File>, ReadError> {
    File::open(path)
        .map(|f| BufReader::with_capacity(1 << 20, f))
        .map_err(|error| ReadError::Io {
            file: path.display().to_string(),
            error,
        })
}
