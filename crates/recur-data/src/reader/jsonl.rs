//! JSONL event rows: one object per line, required keys checked by type, every other key a
//! numeric column in first-seen order.

use std::collections::HashMap;
use std::fmt;
use std::io::{BufRead, BufReader, Read};

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;

use super::builder::{utf8, Builder, RowResult};
use super::timestamp::parse_timestamp;
use super::{Field, Problem, ReadError, MAX_TIMESTAMP_MS, MIN_TIMESTAMP_MS, REQUIRED_COLUMNS};

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

pub(super) fn read_jsonl_rows<R: Read>(input: R, b: &mut Builder<'_>) -> Result<(), ReadError> {
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
