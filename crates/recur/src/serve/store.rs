//! Open tickets of the streaming endpoints, kept in an embedded redb database so a restart
//! loses none: per ticket the carried hidden state and what the next event's features need
//! (opening time, previous time, count), plus every event so that a ticket opened under an
//! older model is replayed once under the new one.
//!
//! An append is one write transaction (read state, step, write, commit with fsync), so
//! appends to one ticket are serialized and a crash leaves either the old or the new state.

use std::path::Path;

use recur_data::schema::Event;
use recur_train::models::stream::{self, StreamState};
use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::model::LoadedModel;

const TICKETS: TableDefinition<&str, &[u8]> = TableDefinition::new("tickets");
const EVENTS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("events");

/// The saved state of one open ticket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TicketRecord {
    /// The model version the state belongs to.
    pub version: String,
    /// First event's time (epoch ms).
    pub open_ms: i64,
    /// Latest event's time (epoch ms).
    pub prev_ms: i64,
    /// The recurrent state after the latest event (`steps` = events so far).
    pub state: StreamState,
    /// The probability after the latest event.
    pub probability: f64,
}

/// The result of an append.
#[derive(Clone, Debug, PartialEq)]
pub struct Appended {
    /// The updated record.
    pub record: TicketRecord,
    /// Whether the ticket was replayed because the model changed since its last event.
    pub replayed: bool,
}

/// The store cannot be opened.
#[derive(Debug, thiserror::Error)]
#[error("ticket store {path}: {source}")]
pub struct StoreError {
    /// The database file.
    pub path: String,
    /// What redb said.
    #[source]
    pub source: Box<redb::Error>,
}

/// The streaming store.
#[derive(Debug)]
pub struct TicketStore {
    db: Database,
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(format!("ticket store: {e}"))
}

fn encode_event(e: &Event) -> Vec<u8> {
    let mut b = Vec::with_capacity(12 + 8 * e.numeric.len() + e.event_type.len());
    b.extend_from_slice(&e.timestamp_ms.to_le_bytes());
    b.extend_from_slice(&(e.numeric.len() as u32).to_le_bytes());
    for x in &e.numeric {
        b.extend_from_slice(&x.to_le_bytes());
    }
    b.extend_from_slice(e.event_type.as_bytes());
    b
}

fn decode_event(b: &[u8]) -> Option<Event> {
    let ts = i64::from_le_bytes(b.get(..8)?.try_into().ok()?);
    let n = u32::from_le_bytes(b.get(8..12)?.try_into().ok()?) as usize;
    let nums = b.get(12..12 + 8 * n)?;
    let numeric = nums
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect();
    let event_type = String::from_utf8(b.get(12 + 8 * n..)?.to_vec()).ok()?;
    Some(Event {
        timestamp_ms: ts,
        event_type,
        numeric,
    })
}

impl TicketStore {
    /// Opens (or creates) the database at `path`; a missing parent directory is created 0700.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_inner(path).map_err(|source| StoreError {
            path: path.display().to_string(),
            source,
        })
    }

    fn open_inner(path: &Path) -> Result<Self, Box<redb::Error>> {
        fn b(e: impl Into<redb::Error>) -> Box<redb::Error> {
            Box::new(e.into())
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty() && !p.exists()) {
            std::fs::create_dir_all(parent).map_err(b)?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o700));
            }
        }
        let db = Database::create(path).map_err(b)?;
        let tx = db.begin_write().map_err(b)?;
        tx.open_table(TICKETS).map_err(b)?;
        tx.open_table(EVENTS).map_err(b)?;
        tx.commit().map_err(b)?;
        Ok(TicketStore { db })
    }

    /// Number of open tickets.
    pub fn open_tickets(&self) -> Result<u64, ApiError> {
        let tx = self.db.begin_read().map_err(internal)?;
        tx.open_table(TICKETS).map_err(internal)?.len().map_err(internal)
    }

    /// The record of ticket `id`, if open.
    pub fn get(&self, id: &str) -> Result<Option<TicketRecord>, ApiError> {
        let tx = self.db.begin_read().map_err(internal)?;
        let t = tx.open_table(TICKETS).map_err(internal)?;
        let v = t.get(id).map_err(internal)?;
        v.map(|g| serde_json::from_slice(g.value()).map_err(internal))
            .transpose()
    }

    /// Appends `events` (time-ordered, not before the ticket's latest event) to ticket `id`,
    /// opening it if needed, with at most `max_events` per ticket; O(1) model work per event
    /// unless the served model changed since the ticket's last event.
    pub fn append(
        &self,
        model: &LoadedModel,
        id: &str,
        events: &[Event],
        max_events: usize,
    ) -> Result<Appended, ApiError> {
        let tx = self.db.begin_write().map_err(internal)?;
        let out = {
            let mut tickets = tx.open_table(TICKETS).map_err(internal)?;
            let mut stored = tx.open_table(EVENTS).map_err(internal)?;
            let old: Option<TicketRecord> = match tickets.get(id).map_err(internal)? {
                Some(g) => Some(serde_json::from_slice(g.value()).map_err(internal)?),
                None => None,
            };
            let have = old.as_ref().map_or(0, |r| r.state.steps) as usize;
            if have + events.len() > max_events {
                return Err(ApiError::unprocessable(
                    "too_many_events",
                    format!(
                        "ticket `{id}` has {have} events; {} more would pass the limit of {max_events}",
                        events.len()
                    ),
                ));
            }
            let (mut rec, replayed) = match old {
                Some(r) if r.version == model.version => (r, false),
                Some(r) => {
                    let past: Vec<Event> = stored
                        .range((id, 0)..(id, r.state.steps))
                        .map_err(internal)?
                        .map(|kv| {
                            kv.map_err(internal)
                                .and_then(|(_, v)| decode_event(v.value()).ok_or_else(|| internal("bad event")))
                        })
                        .collect::<Result<_, _>>()?;
                    (replay(model, &past)?, true)
                }
                None => {
                    let first = &events[0];
                    let rec = TicketRecord {
                        version: model.version.clone(),
                        open_ms: first.timestamp_ms,
                        prev_ms: first.timestamp_ms,
                        state: stream::initial_state(&model.model),
                        probability: f64::NAN,
                    };
                    (rec, false)
                }
            };
            for (i, e) in events.iter().enumerate() {
                if e.timestamp_ms < rec.prev_ms {
                    return Err(ApiError::unprocessable(
                        "invalid",
                        format!("`events[{i}].timestamp` is earlier than the ticket's previous event"),
                    ));
                }
                let seq = rec.state.steps;
                let prev = (seq > 0).then_some(rec.prev_ms);
                rec.probability = model
                    .stream_step(&mut rec.state, rec.open_ms, prev, e)
                    .map_err(|err| prefix(err, &format!("events[{i}]: ")))?;
                rec.prev_ms = e.timestamp_ms;
                stored.insert((id, seq), encode_event(e).as_slice()).map_err(internal)?;
            }
            let bytes = serde_json::to_vec(&rec).map_err(internal)?;
            tickets.insert(id, bytes.as_slice()).map_err(internal)?;
            Appended { record: rec, replayed }
        };
        tx.commit().map_err(internal)?;
        Ok(out)
    }

    /// Closes ticket `id`; false when it was not open.
    pub fn close(&self, id: &str) -> Result<bool, ApiError> {
        let tx = self.db.begin_write().map_err(internal)?;
        let existed = {
            let mut tickets = tx.open_table(TICKETS).map_err(internal)?;
            let old = tickets.remove(id).map_err(internal)?;
            let existed = old.is_some();
            drop(old);
            let mut stored = tx.open_table(EVENTS).map_err(internal)?;
            stored
                .retain_in((id, 0)..=(id, u64::MAX), |_, _| false)
                .map_err(internal)?;
            existed
        };
        tx.commit().map_err(internal)?;
        Ok(existed)
    }
}

fn prefix(e: ApiError, p: &str) -> ApiError {
    match e {
        ApiError::Unprocessable { reason, message } => ApiError::Unprocessable {
            reason,
            message: format!("{p}{message}"),
        },
        e => e,
    }
}

/// A ticket's state after `events` under `model`, from scratch.
fn replay(model: &LoadedModel, events: &[Event]) -> Result<TicketRecord, ApiError> {
    let first = events
        .first()
        .ok_or_else(|| internal("an open ticket without events"))?;
    let mut rec = TicketRecord {
        version: model.version.clone(),
        open_ms: first.timestamp_ms,
        prev_ms: first.timestamp_ms,
        state: stream::initial_state(&model.model),
        probability: f64::NAN,
    };
    for e in events {
        let prev = (rec.state.steps > 0).then_some(rec.prev_ms);
        rec.probability = model.stream_step(&mut rec.state, rec.open_ms, prev, e)?;
        rec.prev_ms = e.timestamp_ms;
    }
    Ok(rec)
}
