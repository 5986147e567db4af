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

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use chrono::DateTime;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;

use crate::schema::{Event, EventLog, Ticket};

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
    let mut rdr = csv::ReaderBuilder::new().flexible(true).from_reader(input);
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
    let mut rec = csv::ByteRecord::new();
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

/// Parses a timestamp into UTC epoch milliseconds: RFC 3339 with an offset
/// (`2025-03-04T09:15:00Z`, `2025-03-04T10:15:00.250+01:00`) or epoch seconds, integer or
/// decimal (`1741079700`, `1741079700.25`). Surrounding whitespace is ignored; precision below a
/// millisecond is truncated toward the past; times must lie in years 0000–9999.
pub fn parse_timestamp(text: &str) -> Result<i64, Problem> {
    let s = text.trim();
    let ms = if looks_like_epoch(s) {
        parse_epoch_seconds(s)
    } else {
        DateTime::parse_from_rfc3339(s).ok().map(|t| t.timestamp_millis())
    };
    match ms {
        Some(ms) if (MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS).contains(&ms) => Ok(ms),
        Some(_) => Err(Problem::TimestampRange(text.to_string())),
        None => Err(Problem::Timestamp(text.to_string())),
    }
}

fn looks_like_epoch(s: &str) -> bool {
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// `[-+]digits[.digits]` seconds → milliseconds, floored; `None` if malformed or huge.
fn parse_epoch_seconds(s: &str) -> Option<i64> {
    let (negative, body) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty() || int.len() > 15 || frac.contains('.') || (body.contains('.') && frac.is_empty()) {
        return None;
    }
    let mut nanos: i128 = int.parse::<i128>().ok()? * 1_000_000_000;
    let mut scale = 100_000_000i128;
    for b in frac.bytes() {
        nanos += i128::from(b - b'0') * scale;
        scale /= 10;
    }
    if negative {
        nanos = -nanos;
    }
    i64::try_from(nanos.div_euclid(1_000_000)).ok()
}

/// Parses a numeric cell: empty (after trimming) is missing (NaN); NaN and infinities are errors.
pub fn parse_number(text: &str) -> Result<f64, Problem> {
    let s = text.trim();
    if s.is_empty() {
        return Ok(f64::NAN);
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(Problem::NonFinite(text.to_string())),
        Err(_) => Err(Problem::Number(text.to_string())),
    }
}

fn open(path: &Path) -> Result<BufReader<File>, ReadError> {
    File::open(path)
        .map(|f| BufReader::with_capacity(1 << 20, f))
        .map_err(|error| ReadError::Io {
            file: path.display().to_string(),
            error,
        })
}

fn set_earliest(slot: &mut Option<i64>, at: i64) {
    *slot = Some(slot.map_or(at, |old| old.min(at)));
}

/// Records a bad row in the report, or returns it as the error when rows are not skipped.
fn bad_row(report: &mut ReadReport, opts: &ReadOptions, row: BadRow) -> Result<(), ReadError> {
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
struct Builder<'a> {
    file: &'a str,
    opts: &'a ReadOptions,
    log: EventLog,
    index: HashMap<String, usize>,
    /// The ticket of the previous row: consecutive rows usually share one.
    last: Option<usize>,
    /// Line of each ticket's first row, for the "only escalations" error.
    first_line: Vec<u64>,
    report: ReadReport,
}

impl<'a> Builder<'a> {
    fn new(file: &'a str, opts: &'a ReadOptions) -> Self {
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

    fn bad(&mut self, line: u64, field: Option<Field>, problem: Problem) -> Result<(), ReadError> {
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
    fn push(&mut self, line: u64, id: &str, timestamp_ms: i64, event_type: &str, numeric: Vec<f64>) {
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
    fn finish(mut self) -> Result<(EventLog, ReadReport), ReadError> {
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

fn utf8(bytes: &[u8]) -> Result<&str, Problem> {
    std::str::from_utf8(bytes).map_err(|_| Problem::Utf8)
}

fn check_width(rec: &csv::ByteRecord, expected: usize) -> RowResult<()> {
    if rec.len() == expected {
        Ok(())
    } else {
        Err((
            None,
            Problem::FieldCount {
                expected,
                found: rec.len(),
            },
        ))
    }
}

fn read_record<R: Read>(rdr: &mut csv::Reader<R>, rec: &mut csv::ByteRecord, file: &str) -> Result<bool, ReadError> {
    rdr.read_byte_record(rec).map_err(|e| csv_error(e, file))
}

fn csv_error(e: csv::Error, file: &str) -> ReadError {
    let line = e.position().map(|p| p.line());
    let error = match e.into_kind() {
        csv::ErrorKind::Io(error) => error,
        other => io::Error::new(io::ErrorKind::InvalidData, format!("{other:?}")),
    };
    let file = match line {
        Some(line) => format!("{file}:{line}"),
        None => file.to_string(),
    };
    ReadError::Io { file, error }
}

/// Reads and checks a CSV header: UTF-8, non-empty, unique names (trimmed).
fn header_names<R: Read>(rdr: &mut csv::Reader<R>, file: &str) -> Result<Vec<String>, ReadError> {
    let header = rdr.byte_headers().map_err(|e| csv_error(e, file))?.clone();
    if header.is_empty() {
        return Err(ReadError::Empty { file: file.to_string() });
    }
    let mut names: Vec<String> = Vec::with_capacity(header.len());
    for (i, raw) in header.iter().enumerate() {
        let name = std::str::from_utf8(raw).map(str::trim).unwrap_or("");
        if name.is_empty() {
            return Err(ReadError::BadColumnName {
                file: file.to_string(),
                position: i + 1,
            });
        }
        if names.iter().any(|n| n == name) {
            return Err(ReadError::DuplicateColumn {
                file: file.to_string(),
                column: name.to_string(),
            });
        }
        names.push(name.to_string());
    }
    Ok(names)
}

/// Column positions of a CSV event file.
struct CsvLayout {
    names: Vec<String>,
    id: usize,
    timestamp: usize,
    event_type: usize,
    /// Positions of the numeric columns, in file order.
    numeric: Vec<usize>,
}

impl CsvLayout {
    fn new(names: Vec<String>, file: &str) -> Result<Self, ReadError> {
        let find = |column: &'static str| {
            names.iter().position(|n| n == column).ok_or(ReadError::MissingColumn {
                file: file.to_string(),
                column,
            })
        };
        let (id, timestamp, event_type) = (find("ticket_id")?, find("timestamp")?, find("event_type")?);
        let numeric = (0..names.len())
            .filter(|&i| i != id && i != timestamp && i != event_type)
            .collect();
        Ok(CsvLayout {
            names,
            id,
            timestamp,
            event_type,
            numeric,
        })
    }

    fn field(&self, i: usize) -> Option<Field> {
        Some(Field::Column(self.names[i].clone()))
    }

    /// Parses one record into (ticket id, timestamp, event type, numeric values).
    fn parse<'r>(&self, rec: &'r csv::ByteRecord) -> RowResult<CsvRow<'r>> {
        check_width(rec, self.names.len())?;
        let text = |i: usize| utf8(&rec[i]).map_err(|p| (self.field(i), p));
        let id = text(self.id)?;
        if id.is_empty() {
            return Err((self.field(self.id), Problem::Missing));
        }
        let ts = text(self.timestamp)?;
        if ts.trim().is_empty() {
            return Err((self.field(self.timestamp), Problem::Missing));
        }
        let ts = parse_timestamp(ts).map_err(|p| (self.field(self.timestamp), p))?;
        let event_type = text(self.event_type)?;
        if event_type.is_empty() {
            return Err((self.field(self.event_type), Problem::Missing));
        }
        let mut numeric = Vec::with_capacity(self.numeric.len());
        for &i in &self.numeric {
            numeric.push(parse_number(text(i)?).map_err(|p| (self.field(i), p))?);
        }
        Ok(CsvRow {
            id,
            ts,
            event_type,
            numeric,
        })
    }
}

/// One valid CSV event, borrowing its text from the record.
struct CsvRow<'r> {
    id: &'r str,
    ts: i64,
    event_type: &'r str,
    numeric: Vec<f64>,
}

fn read_csv_rows<R: Read>(input: R, b: &mut Builder<'_>) -> Result<(), ReadError> {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .buffer_capacity(1 << 16)
        .from_reader(input);
    let layout = CsvLayout::new(header_names(&mut rdr, b.file)?, b.file)?;
    b.log.numeric_columns = layout.numeric.iter().map(|&i| layout.names[i].clone()).collect();
    let mut rec = csv::ByteRecord::new();
    while read_record(&mut rdr, &mut rec, b.file)? {
        let line = rec.position().map_or(0, |p| p.line());
        b.report.rows += 1;
        match layout.parse(&rec) {
            Ok(row) => b.push(line, row.id, row.ts, row.event_type, row.numeric),
            Err((field, problem)) => b.bad(line, field, problem)?,
        }
    }
    Ok(())
}

/// A JSON object with its keys in file order.
struct OrderedObject(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for OrderedObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OrderedObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedObject, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(4));
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    entries.push(entry);
                }
                Ok(OrderedObject(entries))
            }
        }
        d.deserialize_map(V)
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The required fields of one JSONL line, borrowed from its object.
#[derive(Default)]
struct JsonRequired<'v> {
    id: Option<&'v Value>,
    timestamp: Option<&'v Value>,
    event_type: Option<&'v Value>,
}

type RowResult<T> = Result<T, (Option<Field>, Problem)>;

fn key_err(key: &str, problem: Problem) -> (Option<Field>, Problem) {
    (Some(Field::Key(key.to_string())), problem)
}

fn json_type(key: &str, expected: &'static str, v: &Value) -> (Option<Field>, Problem) {
    key_err(
        key,
        Problem::JsonType {
            expected,
            found: json_kind(v),
        },
    )
}

fn json_ticket_id(v: Option<&Value>) -> RowResult<String> {
    match v {
        None => Err(key_err("ticket_id", Problem::Missing)),
        Some(Value::String(s)) if s.is_empty() => Err(key_err("ticket_id", Problem::Missing)),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
        Some(v) => Err(json_type("ticket_id", "a string or an integer", v)),
    }
}

fn json_timestamp(v: Option<&Value>) -> RowResult<i64> {
    let err = |p| key_err("timestamp", p);
    match v {
        None => Err(err(Problem::Missing)),
        Some(Value::String(s)) if s.trim().is_empty() => Err(err(Problem::Missing)),
        Some(Value::String(s)) => parse_timestamp(s).map_err(err),
        Some(Value::Number(n)) => {
            let text = n.to_string();
            match parse_timestamp(&text) {
                Err(Problem::Timestamp(_)) => {
                    let ms = n.as_f64().map(|s| (s * 1000.0).floor()).unwrap_or(f64::NAN);
                    if (MIN_TIMESTAMP_MS as f64..=MAX_TIMESTAMP_MS as f64).contains(&ms) {
                        Ok(ms as i64)
                    } else {
                        Err(err(Problem::TimestampRange(text)))
                    }
                }
                other => other.map_err(err),
            }
        }
        Some(v) => Err(json_type("timestamp", "a string or a number", v)),
    }
}

fn json_event_type(v: Option<&Value>) -> RowResult<&str> {
    match v {
        None => Err(key_err("event_type", Problem::Missing)),
        Some(Value::String(s)) if s.is_empty() => Err(key_err("event_type", Problem::Missing)),
        Some(Value::String(s)) => Ok(s),
        Some(v) => Err(json_type("event_type", "a string", v)),
    }
}

/// Numeric-column bookkeeping for JSONL: keys get columns in first-seen order.
#[derive(Default)]
struct JsonColumns {
    names: Vec<String>,
    index: HashMap<String, usize>,
    /// Whether each required key was ever seen (for the missing-column error).
    seen_required: [bool; 3],
}

/// One JSONL object split into its required fields and numeric values, before any new
/// column is committed.
struct JsonSplit<'v> {
    required: JsonRequired<'v>,
    /// (column index, value); indices past the known columns refer to `new_names`.
    values: Vec<(usize, f64)>,
    new_names: Vec<&'v str>,
}

impl JsonColumns {
    /// Splits an object; records which required keys it has.
    fn split<'v>(&mut self, obj: &'v OrderedObject) -> RowResult<JsonSplit<'v>> {
        let mut out = JsonSplit {
            required: JsonRequired::default(),
            values: Vec::new(),
            new_names: Vec::new(),
        };
        for (pos, (key, value)) in obj.0.iter().enumerate() {
            if obj.0[..pos].iter().any(|(k, _)| k == key) {
                return Err(key_err(key, Problem::DuplicateKey));
            }
            let slot = match key.as_str() {
                "ticket_id" => &mut out.required.id,
                "timestamp" => &mut out.required.timestamp,
                "event_type" => &mut out.required.event_type,
                _ => {
                    let v = match value {
                        Value::Null => f64::NAN,
                        Value::Number(n) => n
                            .as_f64()
                            .filter(|v| v.is_finite())
                            .ok_or_else(|| key_err(key, Problem::NonFinite(n.to_string())))?,
                        v => return Err(json_type(key, "a number or null", v)),
                    };
                    let col = self.index.get(key.as_str()).copied().unwrap_or_else(|| {
                        out.new_names.push(key);
                        self.names.len() + out.new_names.len() - 1
                    });
                    out.values.push((col, v));
                    continue;
                }
            };
            *slot = Some(value);
        }
        let r = &out.required;
        for (k, seen) in [r.id, r.timestamp, r.event_type].iter().zip(&mut self.seen_required) {
            *seen |= k.is_some();
        }
        Ok(out)
    }

    /// Adds the row's new columns (only valid rows get here) and returns its numeric values.
    fn commit(&mut self, values: Vec<(usize, f64)>, new_names: Vec<&str>) -> Vec<f64> {
        for name in new_names {
            self.index.insert(name.to_string(), self.names.len());
            self.names.push(name.to_string());
        }
        let mut numeric = vec![f64::NAN; self.names.len()];
        for (c, v) in values {
            numeric[c] = v;
        }
        numeric
    }
}

/// One valid JSONL event: ticket id, timestamp, event type, numeric values.
type JsonEvent = (String, i64, String, Vec<f64>);

fn parse_json_line(line: &[u8], cols: &mut JsonColumns) -> RowResult<JsonEvent> {
    let text = utf8(line).map_err(|p| (None, p))?;
    let obj: OrderedObject = serde_json::from_str(text).map_err(|e| {
        let problem = if e.classify() == serde_json::error::Category::Data {
            Problem::JsonType {
                expected: "an object",
                found: "another JSON value",
            }
        } else {
            Problem::Json(e.to_string())
        };
        (None, problem)
    })?;
    let split = cols.split(&obj)?;
    let id = json_ticket_id(split.required.id)?;
    let ts = json_timestamp(split.required.timestamp)?;
    let event_type = json_event_type(split.required.event_type)?.to_string();
    Ok((id, ts, event_type, cols.commit(split.values, split.new_names)))
}

fn read_jsonl_rows<R: Read>(input: R, b: &mut Builder<'_>) -> Result<(), ReadError> {
    let mut input = BufReader::with_capacity(1 << 16, input);
    let mut cols = JsonColumns::default();
    let mut buf = Vec::new();
    let mut line = 0u64;
    loop {
        buf.clear();
        let n = input.read_until(b'\n', &mut buf).map_err(|error| ReadError::Io {
            file: b.file.to_string(),
            error,
        })?;
        if n == 0 {
            break;
        }
        line += 1;
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        b.report.rows += 1;
        match parse_json_line(&buf, &mut cols) {
            Ok((id, ts, event_type, numeric)) => b.push(line, &id, ts, &event_type, numeric),
            Err((field, problem)) => b.bad(line, field, problem)?,
        }
    }
    if b.report.rows > 0 {
        if let Some(k) = cols.seen_required.iter().position(|seen| !seen) {
            return Err(ReadError::MissingColumn {
                file: b.file.to_string(),
                column: REQUIRED_COLUMNS[k],
            });
        }
    }
    b.log.numeric_columns = cols.names;
    Ok(())
}
