//! CSV event rows: the header check, column layout and per-record parsing, streamed through the
//! `csv` crate's byte records.

use std::io::{self, Read};

use super::builder::{utf8, Builder, RowResult};
use super::timestamp::{parse_number, parse_timestamp};
use super::{Field, Problem, ReadError};

pub(super) fn check_width(rec: &csv::ByteRecord, expected: usize) -> RowResult<()> {
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

pub(super) fn read_record<R: Read>(
    rdr: &mut csv::Reader<R>,
    rec: &mut csv::ByteRecord,
    file: &str,
) -> Result<bool, ReadError> {
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
pub(super) fn header_names<R: Read>(rdr: &mut csv::Reader<R>, file: &str) -> Result<Vec<String>, ReadError> {
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

pub(super) fn read_csv_rows<R: Read>(input: R, b: &mut Builder<'_>) -> Result<(), ReadError> {
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
