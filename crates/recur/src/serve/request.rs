//! Request bodies into events: the JSON fields are the event-log columns (`timestamp`,
//! `event_type`, one field per numeric column), checked one by one so that every error names
//! its field (`tickets[2].events[5].priority`).

use recur_data::reader::{parse_timestamp, MAX_TIMESTAMP_MS, MIN_TIMESTAMP_MS};
use recur_data::schema::Event;
use serde_json::Value;

use super::error::ApiError;

/// One ticket of a scoring request.
#[derive(Clone, Debug, PartialEq)]
pub struct TicketRequest {
    /// The caller's ticket id, echoed back.
    pub ticket_id: String,
    /// Events in time order (a stable sort, as the log readers do).
    pub events: Vec<Event>,
}

/// Parses a body as JSON (400 on malformed JSON).
pub fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("invalid JSON: {e}")))
}

/// The object at `path`, or a 400 naming it.
pub fn object<'a>(v: &'a Value, path: &str) -> Result<&'a serde_json::Map<String, Value>, ApiError> {
    v.as_object()
        .ok_or_else(|| ApiError::BadRequest(format!("`{path}` must be a JSON object")))
}

/// The required field `key` of `obj`, or a 400 naming `path.key`.
pub fn field<'a>(obj: &'a serde_json::Map<String, Value>, path: &str, key: &str) -> Result<&'a Value, ApiError> {
    obj.get(key)
        .ok_or_else(|| ApiError::BadRequest(format!("missing field `{}`", join(path, key))))
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// A ticket `{"ticket_id", "events": [...]}` at `path`.
pub fn ticket(v: &Value, path: &str, columns: &[String], max_events: usize) -> Result<TicketRequest, ApiError> {
    let obj = object(v, if path.is_empty() { "body" } else { path })?;
    let ticket_id = match field(obj, path, "ticket_id")? {
        Value::String(s) => s.clone(),
        _ => {
            return Err(ApiError::BadRequest(format!(
                "`{}` must be a string",
                join(path, "ticket_id")
            )))
        }
    };
    let mut events = events(field(obj, path, "events")?, &join(path, "events"), columns, max_events)?;
    events.sort_by_key(|e| e.timestamp_ms);
    Ok(TicketRequest { ticket_id, events })
}

/// A non-empty array of at most `max_events` events at `path`, in the given order.
pub fn events(v: &Value, path: &str, columns: &[String], max_events: usize) -> Result<Vec<Event>, ApiError> {
    let arr = v
        .as_array()
        .ok_or_else(|| ApiError::BadRequest(format!("`{path}` must be an array of events")))?;
    if arr.is_empty() {
        return Err(ApiError::unprocessable("invalid", format!("`{path}` is empty")));
    }
    if arr.len() > max_events {
        return Err(ApiError::unprocessable(
            "too_many_events",
            format!("`{path}` has {} events; the limit is {max_events}", arr.len()),
        ));
    }
    arr.iter()
        .enumerate()
        .map(|(i, e)| match well_formed_event(e, columns) {
            Some(ev) => Ok(ev),
            None => event(e, &format!("{path}[{i}]"), columns),
        })
        .collect()
}

/// [`event`] for the common case of a well-formed event, without building the field paths
/// that only an error message needs (one `format!` per field and event was a visible share of
/// the server's CPU): `Some` exactly when [`event`] succeeds, with the same [`Event`]; `None`
/// sends the caller to [`event`] for the error naming the field.
fn well_formed_event(v: &Value, columns: &[String]) -> Option<Event> {
    let obj = v.as_object()?;
    let timestamp_ms = timestamp(obj.get("timestamp")?, "").ok()?;
    let event_type = match obj.get("event_type")? {
        Value::String(s) if !s.is_empty() => s.clone(),
        _ => return None,
    };
    let numeric = columns
        .iter()
        .map(|c| number(obj.get(c), "").ok())
        .collect::<Option<_>>()?;
    Some(Event {
        timestamp_ms,
        event_type,
        numeric,
    })
}

/// One event object at `path`; fields other than the columns are ignored.
pub fn event(v: &Value, path: &str, columns: &[String]) -> Result<Event, ApiError> {
    let obj = object(v, path)?;
    let timestamp_ms = timestamp(field(obj, path, "timestamp")?, &join(path, "timestamp"))?;
    let event_type = match field(obj, path, "event_type")? {
        Value::String(s) if !s.is_empty() => s.clone(),
        _ => {
            return Err(ApiError::BadRequest(format!(
                "`{}` must be a non-empty string",
                join(path, "event_type")
            )))
        }
    };
    let numeric = columns
        .iter()
        .map(|c| number(obj.get(c), &join(path, c)))
        .collect::<Result<_, _>>()?;
    Ok(Event {
        timestamp_ms,
        event_type,
        numeric,
    })
}

/// RFC 3339 text or epoch seconds (a number or numeric text) into epoch milliseconds.
pub fn timestamp(v: &Value, path: &str) -> Result<i64, ApiError> {
    let bad = |why: String| ApiError::BadRequest(format!("`{path}`: {why}"));
    let ms = match v {
        Value::String(s) => parse_timestamp(s).map_err(|p| bad(p.to_string()))?,
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(s), _) => s.checked_mul(1000).ok_or_else(|| bad(format!("{s} is out of range")))?,
            (None, Some(s)) if (s * 1000.0).abs() < 9.0e18 => (s * 1000.0).floor() as i64,
            _ => return Err(bad(format!("{n} is out of range"))),
        },
        _ => return Err(bad("must be RFC 3339 text or epoch seconds".into())),
    };
    if !(MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS).contains(&ms) {
        return Err(bad("must lie in years 0000-9999".into()));
    }
    Ok(ms)
}

/// A numeric column's value: absent or `null` is missing (NaN, as an empty log cell); a
/// number must fit f32; text spelling NaN or infinity is a 422, anything else a 400.
pub fn number(v: Option<&Value>, path: &str) -> Result<f64, ApiError> {
    let non_finite = || ApiError::unprocessable("non_finite", format!("`{path}` is not a finite number"));
    match v {
        None | Some(Value::Null) => Ok(f64::NAN),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(x) if (x as f32).is_finite() => Ok(x),
            _ => Err(non_finite()),
        },
        Some(Value::String(s)) if s.trim().parse::<f64>().is_ok_and(|x| !x.is_finite()) => Err(non_finite()),
        Some(_) => Err(ApiError::BadRequest(format!("`{path}` must be a number or null"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The fast path accepts exactly what [`event`] accepts, with the same result.
    #[test]
    fn well_formed_event_agrees_with_event() {
        let columns = vec!["priority".to_string(), "sentiment".to_string()];
        let cases = [
            json!({"timestamp": "2025-03-01T10:00:00Z", "event_type": "opened", "priority": 2}),
            json!({"timestamp": 1_740_823_200, "event_type": "agent_reply", "sentiment": -0.5}),
            json!({"timestamp": 1.5e9, "event_type": "x", "priority": null, "extra": [1]}),
            json!({"timestamp": "1740823200", "event_type": "x", "priority": "2"}),
            json!({"timestamp": "2025-03-01T10:00:00Z", "event_type": "", "priority": 2}),
            json!({"timestamp": "yesterday", "event_type": "opened"}),
            json!({"timestamp": 1e300, "event_type": "opened"}),
            json!({"timestamp": -1e13, "event_type": "opened"}),
            json!({"event_type": "opened"}),
            json!({"timestamp": 1_740_823_200}),
            json!({"timestamp": 1_740_823_200, "event_type": 3}),
            json!({"timestamp": 1_740_823_200, "event_type": "a", "priority": 1e39}),
            json!({"timestamp": 1_740_823_200, "event_type": "a", "priority": "NaN"}),
            json!({"timestamp": 1_740_823_200, "event_type": "a", "sentiment": true}),
            json!([1, 2]),
            json!(null),
        ];
        let mut ok = 0;
        for v in &cases {
            let slow = event(v, "events[0]", &columns);
            let fast = well_formed_event(v, &columns);
            match (&slow, &fast) {
                (Ok(a), Some(b)) => {
                    assert_eq!(
                        (a.timestamp_ms, &a.event_type, a.numeric.len()),
                        (b.timestamp_ms, &b.event_type, b.numeric.len())
                    );
                    for (x, y) in a.numeric.iter().zip(&b.numeric) {
                        assert_eq!(x.to_bits(), y.to_bits(), "{v}");
                    }
                    ok += 1;
                }
                (Err(_), None) => {}
                _ => panic!("{v}: event {slow:?}, fast path {fast:?}"),
            }
        }
        assert_eq!(
            ok, 3,
            "the first three cases are well formed (numeric text is not a number)"
        );
        let arr = json!([cases[0], cases[1], cases[9]]);
        let err = events(&arr, "events", &columns, 10).unwrap_err();
        assert!(format!("{err:?}").contains("events[2].event_type"), "{err:?}");
    }
}
