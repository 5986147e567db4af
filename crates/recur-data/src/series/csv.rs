//! Time-indexed CSV: a header line, then one row per time step whose first column is a time
//! label (kept as text, e.g. `1949-01`) and whose other columns are numbers.
//!
//! ```text
//! Date,Passengers
//! 1949-01,112
//! 1949-02,118
//! ```
//!
//! An empty cell is a missing value (`NaN`); any other cell that is not a finite number is an
//! error naming the line and the column. Names are trimmed, must be non-empty and unique.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use super::{Label, Series, SeriesError};

/// A time-indexed table of numeric columns.
#[derive(Clone, Debug, PartialEq)]
pub struct CsvSeries {
    /// The name of the first (index) column, e.g. `Date`.
    pub index_name: String,
    /// The time label of each row, as written.
    pub index: Vec<String>,
    /// Names of the numeric columns, in file order.
    pub columns: Vec<String>,
    /// Row-major (time-major) values, `values[t * columns.len() + c]`; `NaN` is missing.
    pub values: Vec<f32>,
}

impl CsvSeries {
    /// Number of rows (time steps).
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether there are no rows (never true for a table returned by the readers).
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The values of the column called `name`, in time order.
    pub fn column(&self, name: &str) -> Option<Vec<f32>> {
        let c = self.columns.iter().position(|n| n == name)?;
        Some(
            self.values
                .iter()
                .skip(c)
                .step_by(self.columns.len())
                .copied()
                .collect(),
        )
    }

    /// The whole table as one unlabelled [`Series`] with one channel per column.
    pub fn to_series(&self) -> Series {
        Series {
            values: self.values.clone(),
            len: self.len(),
            channels: self.columns.len(),
            label: Label::None,
        }
    }
}

/// Reads a time-indexed CSV file.
pub fn read_csv_series_file(path: impl AsRef<Path>) -> Result<CsvSeries, SeriesError> {
    let path = path.as_ref();
    let file = path.display().to_string();
    let f = File::open(path).map_err(|error| SeriesError::Io {
        file: file.clone(),
        error,
    })?;
    read_csv_series(f, &file)
}

/// Reads time-indexed CSV text from `input`; `file` names it in errors. The header is line 1.
pub fn read_csv_series(input: impl Read, file: &str) -> Result<CsvSeries, SeriesError> {
    let mut rdr = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(input);
    let mut rec = ::csv::ByteRecord::new();
    let next = |rdr: &mut ::csv::Reader<_>, rec: &mut ::csv::ByteRecord| {
        rdr.read_byte_record(rec).map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            SeriesError::parse(file, line, None, format!("malformed CSV: {e}"))
        })
    };
    if !next(&mut rdr, &mut rec)? {
        return Err(SeriesError::parse(file, 1, None, "empty file (expected a header line)"));
    }
    let mut names: Vec<String> = Vec::with_capacity(rec.len());
    for (i, raw) in rec.iter().enumerate() {
        let name = std::str::from_utf8(raw).map(str::trim).unwrap_or("");
        let name = if i == 0 {
            name.trim_start_matches('\u{feff}')
        } else {
            name
        };
        if name.is_empty() {
            return Err(SeriesError::parse(
                file,
                1,
                Some(format!("column {}", i + 1)),
                "empty or non-UTF-8 name",
            ));
        }
        if names.iter().any(|n| n == name) {
            return Err(SeriesError::parse(
                file,
                1,
                Some(format!("column {}", i + 1)),
                format!("duplicate name {name:?}"),
            ));
        }
        names.push(name.to_string());
    }
    if names.len() < 2 {
        return Err(SeriesError::parse(
            file,
            1,
            None,
            "expected a time column followed by at least one numeric column",
        ));
    }
    let index_name = names.remove(0);
    let width = names.len() + 1;
    let mut out = CsvSeries {
        index_name,
        index: Vec::new(),
        columns: names,
        values: Vec::new(),
    };
    while next(&mut rdr, &mut rec)? {
        let line = rec.position().map_or(0, |p| p.line());
        if rec.len() == 1 && rec[0].iter().all(u8::is_ascii_whitespace) {
            continue; // a blank line
        }
        if rec.len() != width {
            return Err(SeriesError::parse(
                file,
                line,
                None,
                format!("expected {width} fields, found {}", rec.len()),
            ));
        }
        let text = |i: usize| {
            std::str::from_utf8(&rec[i]).map(str::trim).map_err(|_| {
                let column = if i == 0 { &out.index_name } else { &out.columns[i - 1] };
                SeriesError::parse(file, line, Some(format!("column {column}")), "not valid UTF-8")
            })
        };
        let label = text(0)?;
        if label.is_empty() {
            let field = Some(format!("column {}", out.index_name));
            return Err(SeriesError::parse(file, line, field, "empty time label"));
        }
        let label = label.to_string();
        for (c, name) in out.columns.iter().enumerate() {
            let raw = text(c + 1)?;
            let v = if raw.is_empty() {
                f32::NAN
            } else {
                match raw.parse::<f32>() {
                    Ok(v) if v.is_finite() => v,
                    _ => {
                        return Err(SeriesError::parse(
                            file,
                            line,
                            Some(format!("column {name}")),
                            format!("cannot parse {raw:?} as a finite number (leave the cell empty if missing)"),
                        ))
                    }
                }
            };
            out.values.push(v);
        }
        out.index.push(label);
    }
    if out.index.is_empty() {
        return Err(SeriesError::parse(file, 1, None, "a header but no rows"));
    }
    Ok(out)
}
