//! A bounded load generator for `recur serve`, aimed only at loopback: `connections` keep-alive
//! HTTP/1.1 connections send scoring requests for synthetic Harbor tickets (whose lengths
//! follow the guide's distribution: log-normal, median 18, p95 about 112 events) until
//! `requests` are sent or `duration` passes, and report throughput and latency percentiles.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use recur_data::harbor::{generate, HarborConfig};
use recur_data::schema::EventLog;
use serde::Serialize;
use serde_json::{json, Map, Value};

/// Why a load test cannot run.
#[derive(Debug, thiserror::Error)]
pub enum LoadTestError {
    /// The URL is malformed.
    #[error("bad URL `{0}`: expected http://HOST:PORT[/PATH]")]
    Url(String),
    /// The target is not on this machine.
    #[error("refusing to load-test `{0}`: only loopback targets (127.0.0.0/8, ::1, localhost) are allowed")]
    NotLoopback(String),
    /// A setting is out of range.
    #[error("{0}")]
    Invalid(String),
}

/// A loopback target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The socket address (loopback).
    pub addr: SocketAddr,
    /// The `Host` header.
    pub host: String,
    /// The request path (default `/v1/score`).
    pub path: String,
}

/// Parses `http://HOST:PORT[/PATH]` and checks that every address it resolves to is loopback.
pub fn loopback_target(url: &str) -> Result<Target, LoadTestError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| LoadTestError::Url(url.into()))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/v1/score"),
    };
    let path = if path == "/" { "/v1/score" } else { path };
    let addrs: Vec<SocketAddr> = host
        .to_socket_addrs()
        .map_err(|_| LoadTestError::Url(url.into()))?
        .collect();
    if addrs.is_empty() || !addrs.iter().all(|a| a.ip().is_loopback()) {
        return Err(LoadTestError::NotLoopback(url.into()));
    }
    Ok(Target {
        addr: addrs[0],
        host: host.to_string(),
        path: path.to_string(),
    })
}

/// `/v1/score` bodies for every ticket of `log` (timestamps as epoch seconds with
/// milliseconds; missing numeric values left out).
pub fn score_bodies(log: &EventLog) -> Vec<Bytes> {
    log.tickets
        .iter()
        .map(|t| {
            let events: Vec<Value> = t
                .events
                .iter()
                .map(|e| {
                    let mut o = Map::new();
                    let ms = e.timestamp_ms;
                    let ts: Value =
                        serde_json::from_str(&format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000)))
                            .expect("a decimal number");
                    o.insert("timestamp".into(), ts);
                    o.insert("event_type".into(), json!(e.event_type));
                    for (c, &x) in log.numeric_columns.iter().zip(&e.numeric) {
                        if x.is_finite() {
                            o.insert(c.clone(), json!(x));
                        }
                    }
                    Value::Object(o)
                })
                .collect();
            Bytes::from(json!({"ticket_id": t.id, "events": events}).to_string())
        })
        .collect()
}

/// Synthetic Harbor tickets for a load test.
pub fn harbor_log(tickets: usize, seed: u64) -> EventLog {
    generate(&HarborConfig::new(tickets, seed))
}

/// What a load test measured.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Requests sent.
    pub requests: u64,
    /// 2xx answers.
    pub ok: u64,
    /// Failures by kind (`status 503`, `connect`, `io`).
    pub errors: BTreeMap<String, u64>,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Successful requests per second.
    pub throughput: f64,
    /// Latency percentiles of successful requests, milliseconds.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
    /// Connections used.
    pub connections: usize,
    /// The open-loop rate asked for (requests/s), if any.
    pub rate: Option<f64>,
    /// Events per request: median, p95, mean over the bodies sent.
    pub events_p50: usize,
    /// 95th percentile of events per request.
    pub events_p95: usize,
    /// Mean events per request.
    pub events_mean: f64,
}

/// Limits of a run.
#[derive(Clone, Debug)]
pub struct LoadPlan {
    /// Where.
    pub target: Target,
    /// Concurrent keep-alive connections (1..=1024).
    pub connections: usize,
    /// At most this many requests.
    pub requests: u64,
    /// At most this long.
    pub duration: Duration,
    /// Open loop: request `i` is due at `i / rate` seconds (released by a pacer thread within
    /// tens of microseconds) and its latency counts from then (so waiting for a free
    /// connection is not hidden). `None` = closed loop, each connection sends as soon as its
    /// previous answer arrives.
    pub rate: Option<f64>,
}

#[derive(Default)]
struct Tally {
    ok: u64,
    errors: BTreeMap<String, u64>,
    lat: Vec<f64>,
    lens: Vec<usize>,
}

/// Where a connection gets its next request.
#[derive(Clone)]
enum Source {
    /// Closed loop: the next index, as soon as the connection is free.
    Closed(Arc<AtomicU64>),
    /// Open loop: `(index, due time)` pairs released by the pacer thread at their due times.
    Open(Arc<tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<(u64, Instant)>>>),
}

/// Releases request `i` at `t0 + i / rate` from a plain thread: `thread::sleep` wakes within
/// tens of microseconds, where tokio's timer has millisecond ticks and would add up to 2 ms
/// to every open-loop latency (which counts from the due time).
fn pacer(plan: &LoadPlan, rate: f64, t0: Instant, end: Instant) -> Source {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let requests = plan.requests;
    std::thread::spawn(move || {
        for i in 0..requests {
            let due = t0 + Duration::from_secs_f64(i as f64 / rate);
            if due >= end {
                break;
            }
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if tx.send((i, due)).is_err() {
                break;
            }
        }
    });
    Source::Open(Arc::new(tokio::sync::Mutex::new(rx)))
}

async fn connection(plan: Arc<LoadPlan>, bodies: Arc<Vec<(Bytes, usize)>>, source: Source, end: Instant) -> Tally {
    let mut t = Tally::default();
    let mut sender = None;
    loop {
        if Instant::now() >= end {
            break;
        }
        let (i, due) = match &source {
            Source::Closed(next) => (next.fetch_add(1, Ordering::Relaxed), None),
            Source::Open(rx) => match rx.lock().await.recv().await {
                Some((i, due)) => (i, Some(due)),
                None => break,
            },
        };
        if i >= plan.requests {
            break;
        }
        if sender.is_none() {
            match tokio::net::TcpStream::connect(plan.target.addr).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    match hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(s)).await {
                        Ok((tx, conn)) => {
                            tokio::spawn(conn);
                            sender = Some(tx);
                        }
                        Err(_) => *t.errors.entry("connect".into()).or_default() += 1,
                    }
                }
                Err(_) => *t.errors.entry("connect".into()).or_default() += 1,
            }
            if sender.is_none() {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        }
        let tx = sender.as_mut().expect("connected");
        if tx.ready().await.is_err() {
            // The server closed this idle keep-alive connection: reconnect; nothing was sent.
            sender = None;
            continue;
        }
        let (body, len) = &bodies[(i as usize) % bodies.len()];
        let req = hyper::Request::post(&plan.target.path)
            .header(hyper::header::HOST, &plan.target.host)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body.clone()))
            .expect("a valid request");
        // Open loop: latency counts from the due time, so waiting for a free connection (or
        // for a reconnect) is not hidden.
        let start = due.unwrap_or_else(Instant::now);
        let res = async {
            let r = tx.send_request(req).await?;
            let status = r.status();
            let close = r.headers().get(hyper::header::CONNECTION).is_some_and(|v| v == "close");
            r.into_body().collect().await?;
            Ok::<_, hyper::Error>((status, close))
        }
        .await;
        if matches!(res, Ok((_, true))) {
            sender = None;
        }
        match res.map(|(s, _)| s) {
            Ok(s) if s.is_success() => {
                t.ok += 1;
                t.lat.push(start.elapsed().as_secs_f64() * 1e3);
                t.lens.push(*len);
            }
            Ok(s) => *t.errors.entry(format!("status {}", s.as_u16())).or_default() += 1,
            Err(_) => {
                *t.errors.entry("io".into()).or_default() += 1;
                sender = None;
            }
        }
    }
    t
}

fn pct<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    (!sorted.is_empty()).then(|| sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1])
}

/// Runs the load test; `bodies` pairs each body with its event count.
pub async fn run(plan: LoadPlan, bodies: Vec<(Bytes, usize)>) -> Result<Report, LoadTestError> {
    let bad_rate = plan.rate.is_some_and(|r| !(r > 0.0 && r.is_finite()));
    if !(1..=1024).contains(&plan.connections) || bodies.is_empty() || plan.requests == 0 || bad_rate {
        return Err(LoadTestError::Invalid(
            "need 1..=1024 connections, at least one request and one body, and a positive rate".into(),
        ));
    }
    if !plan.target.addr.ip().is_loopback() {
        return Err(LoadTestError::NotLoopback(plan.target.addr.to_string()));
    }
    let (plan, bodies) = (Arc::new(plan), Arc::new(bodies));
    let start = Instant::now();
    let end = start + plan.duration;
    let source = match plan.rate {
        Some(r) => pacer(&plan, r, start, end),
        None => Source::Closed(Arc::new(AtomicU64::new(0))),
    };
    let tasks: Vec<_> = (0..plan.connections)
        .map(|_| tokio::spawn(connection(plan.clone(), bodies.clone(), source.clone(), end)))
        .collect();
    let mut all = Tally::default();
    for task in tasks {
        let t = task
            .await
            .map_err(|e| LoadTestError::Invalid(format!("a client task failed: {e}")))?;
        all.ok += t.ok;
        for (k, v) in t.errors {
            *all.errors.entry(k).or_default() += v;
        }
        all.lat.extend(t.lat);
        all.lens.extend(t.lens);
    }
    let seconds = start.elapsed().as_secs_f64();
    all.lat.sort_by(f64::total_cmp);
    all.lens.sort_unstable();
    let errors: u64 = all.errors.values().sum();
    Ok(Report {
        requests: all.ok + errors,
        ok: all.ok,
        errors: all.errors,
        seconds,
        throughput: all.ok as f64 / seconds.max(1e-9),
        p50_ms: pct(&all.lat, 0.50).unwrap_or(f64::NAN),
        p95_ms: pct(&all.lat, 0.95).unwrap_or(f64::NAN),
        p99_ms: pct(&all.lat, 0.99).unwrap_or(f64::NAN),
        max_ms: all.lat.last().copied().unwrap_or(f64::NAN),
        connections: plan.connections,
        rate: plan.rate,
        events_p50: pct(&all.lens, 0.5).unwrap_or(0),
        events_p95: pct(&all.lens, 0.95).unwrap_or(0),
        events_mean: all.lens.iter().sum::<usize>() as f64 / all.lens.len().max(1) as f64,
    })
}
