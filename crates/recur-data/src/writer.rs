//! Writes an [`EventLog`] in the documented input format (`docs/event-log.md`):
//! `events.csv` (`ticket_id,timestamp,event_type,<numeric columns>`, timestamps in RFC 3339 UTC
//! with millisecond precision, missing numbers as empty cells) and `escalations.csv`
//! (`ticket_id,escalated_at`, one row per escalated ticket).
//!
//! [`write_event_log`] replaces both files atomically: each is written to a temporary sibling,
//! fsynced and renamed into place, then the directory is fsynced. Reading the files back with
//! [`crate::reader::read_log_dir`] gives an equal log (NaN where NaN was), provided no event
//! type equals the reader's escalation event name (`escalated` by default).

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::reader::{MAX_TIMESTAMP_MS, MIN_TIMESTAMP_MS, REQUIRED_COLUMNS};
use crate::schema::{EventLog, DAY_MS};

/// Why a log could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Creating, writing, syncing or renaming a file failed.
    #[error("{path}: {error}")]
    Io {
        /// The file or directory.
        path: String,
        /// The I/O error.
        error: io::Error,
    },
    /// A numeric column name cannot be written (empty, repeated, or a required column's name).
    #[error("numeric column {column:?}: {reason}")]
    Column {
        /// The column name.
        column: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A ticket cannot be written as it is.
    #[error("ticket {ticket:?}: {reason}")]
    Ticket {
        /// The ticket id.
        ticket: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The files [`write_event_log`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrittenFiles {
    /// `DIR/events.csv`.
    pub events: PathBuf,
    /// `DIR/escalations.csv`.
    pub escalations: PathBuf,
}

/// Writes `dir/events.csv` and `dir/escalations.csv` atomically, creating `dir` if needed.
/// The log is checked first ([`check_writable`]), so nothing is written for an invalid log.
pub fn write_event_log(dir: &Path, log: &EventLog) -> Result<WrittenFiles, WriteError> {
    check_writable(log)?;
    fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let files = WrittenFiles {
        events: dir.join("events.csv"),
        escalations: dir.join("escalations.csv"),
    };
    let tmp_events = write_temp(&files.events, |w| write_events(w, log))?;
    let tmp_escalations = match write_temp(&files.escalations, |w| write_escalations(w, log)) {
        Ok(t) => t,
        Err(e) => {
            let _ = fs::remove_file(&tmp_events);
            return Err(e);
        }
    };
    for (tmp, path) in [(&tmp_events, &files.events), (&tmp_escalations, &files.escalations)] {
        if let Err(e) = fs::rename(tmp, path) {
            let _ = fs::remove_file(&tmp_events);
            let _ = fs::remove_file(&tmp_escalations);
            return Err(io_err(path, e));
        }
    }
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io_err(dir, e))?;
    Ok(files)
}

/// Checks that every part of the log has a representation the reader reads back unchanged:
/// numeric column names non-empty, unique and distinct from the required columns; ticket ids
/// non-empty and unique; every ticket with at least one event; event types non-empty; numeric
/// vectors as long as the column list; numbers finite or NaN; times in years 0000–9999.
pub fn check_writable(log: &EventLog) -> Result<(), WriteError> {
    for (i, c) in log.numeric_columns.iter().enumerate() {
        let reason = if c.trim().is_empty() || c.trim() != c {
            Some("empty, or with surrounding whitespace")
        } else if REQUIRED_COLUMNS.contains(&c.as_str()) {
            Some("is a required column's name")
        } else if log.numeric_columns[..i].contains(c) {
            Some("appears twice")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(WriteError::Column {
                column: c.clone(),
                reason,
            });
        }
    }
    let mut ids = std::collections::HashSet::with_capacity(log.tickets.len());
    for t in &log.tickets {
        let bad = |reason: String| WriteError::Ticket {
            ticket: t.id.clone(),
            reason,
        };
        if t.id.is_empty() {
            return Err(bad("empty ticket id".into()));
        }
        if !ids.insert(t.id.as_str()) {
            return Err(bad("appears twice".into()));
        }
        if t.events.is_empty() {
            return Err(bad("has no events".into()));
        }
        if let Some(at) = t.escalated_at_ms.filter(|ms| !in_range(*ms)) {
            return Err(bad(format!("escalated_at_ms {at} is outside years 0000-9999")));
        }
        for (k, e) in t.events.iter().enumerate() {
            if !in_range(e.timestamp_ms) {
                return Err(bad(format!(
                    "event {k}: timestamp_ms {} is outside years 0000-9999",
                    e.timestamp_ms
                )));
            }
            if e.event_type.is_empty() {
                return Err(bad(format!("event {k}: empty event type")));
            }
            if e.numeric.len() != log.numeric_columns.len() {
                let (n, m) = (e.numeric.len(), log.numeric_columns.len());
                return Err(bad(format!("event {k}: {n} numeric values for {m} numeric columns")));
            }
            if let Some(j) = e.numeric.iter().position(|v| v.is_infinite()) {
                let column = &log.numeric_columns[j];
                return Err(bad(format!("event {k}: column {column} is {}", e.numeric[j])));
            }
        }
        if !t.events.is_sorted_by_key(|e| e.timestamp_ms) {
            return Err(bad("events are not in time order".into()));
        }
    }
    Ok(())
}

/// Writes the events file: header, then one row per event, tickets in log order.
/// Call [`check_writable`] first; this writes whatever it is given.
pub fn write_events<W: Write>(out: W, log: &EventLog) -> io::Result<()> {
    let mut w = csv::WriterBuilder::new().buffer_capacity(1 << 16).from_writer(out);
    let header = REQUIRED_COLUMNS
        .iter()
        .copied()
        .chain(log.numeric_columns.iter().map(String::as_str));
    w.write_record(header)?;
    let mut num = String::new();
    for t in &log.tickets {
        for e in &t.events {
            w.write_field(&t.id)?;
            w.write_field(rfc3339_ms(e.timestamp_ms))?;
            w.write_field(&e.event_type)?;
            for &v in &e.numeric {
                num.clear();
                push_number(&mut num, v);
                w.write_field(&num)?;
            }
            w.write_record(None::<&[u8]>)?;
        }
    }
    w.flush()
}

/// Writes the escalations file: header, then `ticket_id,escalated_at` for each escalated
/// ticket in log order.
pub fn write_escalations<W: Write>(out: W, log: &EventLog) -> io::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(["ticket_id", "escalated_at"])?;
    for t in &log.tickets {
        if let Some(at) = t.escalated_at_ms {
            w.write_record([t.id.as_bytes(), &rfc3339_ms(at)])?;
        }
    }
    w.flush()
}

/// Formats UTC epoch milliseconds as RFC 3339 with millisecond precision,
/// e.g. `2025-03-04T09:15:00.250Z`.
///
/// # Panics
/// When `ms` lies outside years 0000–9999 ([`MIN_TIMESTAMP_MS`]..=[`MAX_TIMESTAMP_MS`]).
pub fn format_timestamp(ms: i64) -> String {
    String::from_utf8(rfc3339_ms(ms).to_vec()).expect("ASCII")
}

fn in_range(ms: i64) -> bool {
    (MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS).contains(&ms)
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` without allocation (civil-from-days after H. Hinnant).
#[track_caller]
fn rfc3339_ms(ms: i64) -> [u8; 24] {
    assert!(in_range(ms), "timestamp {ms} ms is outside years 0000-9999");
    let (days, in_day) = (ms.div_euclid(DAY_MS), ms.rem_euclid(DAY_MS));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut out = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut v: i64| {
        for i in (at..at + width).rev() {
            out[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, in_day / 3_600_000);
    put(14, 2, in_day / 60_000 % 60);
    put(17, 2, in_day / 1000 % 60);
    put(20, 3, in_day % 1000);
    out
}

/// Shortest text that parses back to exactly `v`; empty for NaN.
fn push_number(s: &mut String, v: f64) {
    use std::fmt::Write as _;
    if v.is_nan() {
        return;
    }
    let a = v.abs();
    if a == 0.0 || (1e-5..1e16).contains(&a) {
        write!(s, "{v}").expect("write to String");
    } else {
        write!(s, "{v:e}").expect("write to String");
    }
}

fn io_err(path: &Path, error: io::Error) -> WriteError {
    WriteError::Io {
        path: path.display().to_string(),
        error,
    }
}

/// Writes a synced temporary sibling of `path` with `fill` and returns its path.
fn write_temp(path: &Path, fill: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>) -> Result<PathBuf, WriteError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = path.with_file_name(format!(".{name}.tmp-{}-{n}", std::process::id()));
    let result = File::create(&tmp).and_then(|f| {
        let mut w = BufWriter::with_capacity(1 << 20, f);
        fill(&mut w)?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()
    });
    match result {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(io_err(path, e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_timestamp(1_735_689_600_000), "2025-01-01T00:00:00.000Z");
        assert_eq!(format_timestamp(1_709_164_800_123), "2024-02-29T00:00:00.123Z");
        assert_eq!(format_timestamp(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(format_timestamp(MIN_TIMESTAMP_MS), "0000-01-01T00:00:00.000Z");
        assert_eq!(format_timestamp(MAX_TIMESTAMP_MS), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn formats_like_chrono_everywhere() {
        let mut ms = MIN_TIMESTAMP_MS;
        while ms <= MAX_TIMESTAMP_MS {
            let chrono = chrono::DateTime::from_timestamp_millis(ms)
                .unwrap()
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string();
            assert_eq!(format_timestamp(ms), chrono, "{ms}");
            ms += 7_777_777_777;
        }
    }

    #[test]
    fn numbers_round_trip() {
        for v in [
            0.0,
            -0.0,
            1.0,
            3.0,
            -0.25,
            0.1,
            1e-7,
            123456.789,
            1e300,
            -2.5e-300,
            f64::MIN_POSITIVE,
            f64::MAX,
        ] {
            let mut s = String::new();
            push_number(&mut s, v);
            assert_eq!(s.parse::<f64>().unwrap().to_bits(), v.to_bits(), "{v} -> {s}");
        }
        let mut s = String::new();
        push_number(&mut s, 3.0);
        assert_eq!(s, "3");
    }
}
