//! `recur serve` against the real binary on loopback (endpoints, error paths, overload,
//! timeouts, draining on SIGTERM, reload with corrupt candidates, streaming across a restart),
//! plus in-process property tests that random bodies never panic or give a 5xx.
//!
//! Models are tiny checkpoints made here through the library (random weights, a preprocessor
//! fitted on a few generated Harbor tickets), so every test runs in seconds.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use recur::recipe::escalation::{self, EscalationConfig, EscalationModel};
use recur::serve::features::{StepContext, StepFeaturizer};
use recur::serve::loadtest;
use recur::serve::{self as srv, AppState, LoadedModel, ServeConfig, TicketStore};
use recur_data::features::{FeatureConfig, Preprocessor};
use recur_data::harbor::{generate, HarborConfig};
use recur_data::labels::Sample;
use recur_data::schema::{EventLog, Ticket};
use recur_nn::init::Init;
use recur_train::checkpoint::{self, Checkpoint};
use recur_train::models::sequence::SequenceModel;
use recur_train::Module;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

// ---------- fixtures ----------

fn harbor(tickets: usize, seed: u64) -> EventLog {
    generate(&HarborConfig::new(tickets, seed))
}

/// A tiny escalation checkpoint with random weights in `dir`.
fn make_model(dir: &Path, bidirectional: bool, hidden: usize, seed: u64) {
    let log = harbor(60, 5);
    let samples: Vec<Sample> = log
        .tickets
        .iter()
        .enumerate()
        .map(|(i, t)| Sample {
            ticket: i,
            prefix_len: t.events.len(),
            cut_ms: t.events.last().unwrap().timestamp_ms,
            label: false,
        })
        .collect();
    let pre = Preprocessor::fit(
        &log,
        &samples,
        FeatureConfig {
            min_count: 1,
            model_dim: 24,
        },
    )
    .unwrap();
    let cfg = EscalationConfig {
        model: EscalationModel {
            hidden_size: hidden,
            num_layers: 2,
            bidirectional,
            dropout: 0.0,
        },
        ..EscalationConfig::default()
    };
    let mcfg = escalation::model_config(&cfg, &pre);
    let model = SequenceModel::new(
        mcfg.clone(),
        &Init::recurrent_default(),
        &mut ChaCha8Rng::seed_from_u64(seed),
    )
    .unwrap();
    let ck = Checkpoint {
        kind: "sequence".into(),
        model: json!({ "sequence": mcfg }),
        training: json!({}),
        metrics: json!({}),
        preprocessing: json!({"kind": escalation::PREP_KIND, "preprocessor": pre, "threshold": 0.5}),
        state: Value::Null,
        tensors: model.named_tensors(),
        optimizer: None,
    };
    checkpoint::save(dir, &ck).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// Rewrites the manifest's entry for the weights file to match its current bytes.
fn fix_manifest(dir: &Path, edit: impl FnOnce(&mut Value)) {
    let w = std::fs::read(dir.join("weights.safetensors")).unwrap();
    let mp = dir.join("manifest.json");
    let mut m: Value = serde_json::from_slice(&std::fs::read(&mp).unwrap()).unwrap();
    let sha: String = Sha256::digest(&w).iter().map(|b| format!("{b:02x}")).collect();
    m["files"][0]["size"] = json!(w.len());
    m["files"][0]["sha256"] = json!(sha);
    edit(&mut m);
    std::fs::write(mp, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
}

fn ticket_json(id: &str, t: &Ticket, columns: &[String], n: usize) -> Value {
    let events: Vec<Value> = t.events[..n]
        .iter()
        .map(|e| {
            let mut o = json!({"timestamp": e.timestamp_ms as f64 / 1000.0, "event_type": e.event_type});
            for (c, &x) in columns.iter().zip(&e.numeric) {
                if x.is_finite() {
                    o[c] = json!(x);
                }
            }
            o
        })
        .collect();
    json!({"ticket_id": id, "events": events})
}

// ---------- a blocking HTTP/1.1 client ----------

struct Resp {
    status: u16,
    body: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

fn raw(addr: SocketAddr, request: &[u8]) -> std::io::Result<Resp> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    s.write_all(request)?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad response: {text:?}")))?;
    Ok(Resp {
        status,
        body: body.to_string(),
    })
}

fn req(addr: SocketAddr, method: &str, path: &str, body: &[u8], headers: &str) -> std::io::Result<Resp> {
    let mut r = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{headers}\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    raw(addr, &r)
}

fn post(addr: SocketAddr, path: &str, body: &Value) -> Resp {
    req(addr, "POST", path, body.to_string().as_bytes(), "").unwrap()
}

fn get(addr: SocketAddr, path: &str) -> Resp {
    req(addr, "GET", path, b"", "").unwrap()
}

// ---------- the server process ----------

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(model: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_recur"))
            .args(["serve", "--model"])
            .arg(model)
            .args(["--addr", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = loop {
            let line = lines.next().expect("server exited before listening").unwrap();
            if let Some(a) = line.strip_prefix("listening on http://") {
                break a.parse().unwrap();
            }
        };
        thread::spawn(move || for _ in lines {});
        Server { child, addr }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn metric(addr: SocketAddr, line_prefix: &str) -> f64 {
    let m = get(addr, "/metrics").body;
    m.lines()
        .find_map(|l| l.strip_prefix(line_prefix).map(|v| v.trim().parse().unwrap()))
        .unwrap_or(0.0)
}

/// Polls `/metrics` until the gauge `name` reads `value` (10 s at most).
fn wait_for(addr: SocketAddr, name: &str, value: f64) {
    let end = Instant::now() + Duration::from_secs(10);
    while metric(addr, name) != value {
        assert!(Instant::now() < end, "{name} never reached {value}");
        thread::sleep(Duration::from_millis(5));
    }
}

fn version(addr: SocketAddr) -> String {
    get(addr, "/v2/models/escalation").json()["versions"][0]
        .as_str()
        .unwrap()
        .to_string()
}

// ---------- tests ----------

#[test]
fn scoring_batch_kserve_metrics_and_every_validation_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    make_model(&dir, true, 8, 1);
    let lm = LoadedModel::load(&dir).unwrap();
    let s = Server::start(&dir, &["--max-events", "200", "--max-body-bytes", "40000"]);
    let a = s.addr;
    let log = harbor(40, 9);
    let cols = lm.pre.numeric_columns.clone();
    let t = log.tickets.iter().find(|t| (5..150).contains(&t.events.len())).unwrap();

    // /v1/score equals the library's scoring of the same events, shuffled input order included.
    let body = ticket_json("T1", t, &cols, t.events.len());
    let r = post(a, "/v1/score", &body);
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    let p = v["probability"].as_f64().unwrap();
    let want = lm.score(&[&t.events]).unwrap()[0];
    assert!((p - want).abs() < 1e-9 && (0.0..=1.0).contains(&p));
    assert_eq!(v["ticket_id"], "T1");
    assert_eq!(v["route"], if p >= 0.5 { "tier3" } else { "tier1" });
    assert_eq!(v["model_version"], lm.version);
    let mut shuffled = body.clone();
    shuffled["events"].as_array_mut().unwrap().reverse();
    assert!((post(a, "/v1/score", &shuffled).json()["probability"].as_f64().unwrap() - p).abs() < 1e-9);

    // Batch: same answers as one by one, in order.
    let tickets: Vec<Value> = (0..3)
        .map(|i| {
            ticket_json(
                &format!("B{i}"),
                &log.tickets[i],
                &cols,
                log.tickets[i].events.len().min(200),
            )
        })
        .collect();
    let rb = post(a, "/v1/score/batch", &json!({ "tickets": tickets }));
    assert_eq!(rb.status, 200, "{}", rb.body);
    for (i, res) in rb.json()["results"].as_array().unwrap().iter().enumerate() {
        let single = post(a, "/v1/score", &tickets[i]).json();
        assert_eq!(res["ticket_id"], format!("B{i}"));
        assert!((res["probability"].as_f64().unwrap() - single["probability"].as_f64().unwrap()).abs() < 1e-5);
    }

    // KServe V2.
    assert_eq!(get(a, "/v2/health/live").json()["live"], true);
    assert_eq!(get(a, "/v2/health/ready").json()["ready"], true);
    assert_eq!(get(a, "/v2").json()["name"], "recur");
    let md = get(a, "/v2/models/escalation").json();
    assert_eq!(md["versions"][0], lm.version);
    assert_eq!(md["inputs"][2]["shape"], json!([-1, -1, cols.len()]));
    assert_eq!(
        get(a, &format!("/v2/models/escalation/versions/{}", lm.version)).status,
        200
    );
    assert_eq!(get(a, "/v2/models/escalation/ready").json()["ready"], true);
    assert_eq!(get(a, "/v2/models/other").status, 404);
    assert_eq!(get(a, "/v2/models/escalation/versions/nope/ready").status, 404);
    let n = t.events.len();
    let types: Vec<&str> = t.events.iter().map(|e| e.event_type.as_str()).collect();
    let times: Vec<f64> = t.events.iter().map(|e| e.timestamp_ms as f64 / 1000.0).collect();
    let feats: Vec<Value> = t
        .events
        .iter()
        .flat_map(|e| {
            e.numeric
                .iter()
                .map(|&x| if x.is_finite() { json!(x) } else { Value::Null })
        })
        .collect();
    let infer = json!({"id": "req-7", "inputs": [
        {"name": "event_type", "datatype": "BYTES", "shape": [1, n], "data": types},
        {"name": "timestamp", "datatype": "FP64", "shape": [1, n], "data": [times]},
        {"name": "event_features", "datatype": "FP32", "shape": [1, n, cols.len()], "data": feats},
    ]});
    let ri = post(a, "/v2/models/escalation/infer", &infer);
    assert_eq!(ri.status, 200, "{}", ri.body);
    let vi = ri.json();
    assert_eq!(vi["id"], "req-7");
    assert_eq!(vi["model_name"], "escalation");
    assert_eq!(vi["outputs"][0]["shape"], json!([1, 1]));
    assert!((vi["outputs"][0]["data"][0].as_f64().unwrap() - p).abs() < 1e-6);
    let mut bad_shape = infer.clone();
    bad_shape["inputs"][1]["shape"] = json!([1, n + 1]);
    let r = post(
        a,
        &format!("/v2/models/escalation/versions/{}/infer", lm.version),
        &bad_shape,
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.json()["error"].as_str().unwrap().contains("inputs[1]"));
    assert_eq!(post(a, "/v2/models/nope/infer", &infer).status, 404);

    // Validation: (body, status, words the error must contain).
    let ev = |extra: Value| {
        let mut e = json!({"timestamp": "2025-03-01T10:00:00Z", "event_type": "opened"});
        for (k, v) in extra.as_object().unwrap() {
            e[k] = v.clone();
        }
        json!({"ticket_id": "V", "events": [e]})
    };
    let too_many: Vec<Value> = (0..201)
        .map(|i| json!({"timestamp": 1740823200 + i, "event_type": "x"}))
        .collect();
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (b"{\"ticket_id\": ".to_vec(), 400, "invalid JSON"),
        (b"[1,2]".to_vec(), 400, "body"),
        (json!({"events": []}).to_string().into_bytes(), 400, "ticket_id"),
        (
            json!({"ticket_id": 5, "events": []}).to_string().into_bytes(),
            400,
            "ticket_id",
        ),
        (
            json!({"ticket_id": "V", "events": {}}).to_string().into_bytes(),
            400,
            "events",
        ),
        (
            json!({"ticket_id": "V", "events": [{"event_type": "x"}]})
                .to_string()
                .into_bytes(),
            400,
            "events[0].timestamp",
        ),
        (
            ev(json!({"timestamp": "yesterday"})).to_string().into_bytes(),
            400,
            "events[0].timestamp",
        ),
        (
            ev(json!({"timestamp": true})).to_string().into_bytes(),
            400,
            "events[0].timestamp",
        ),
        (
            ev(json!({"event_type": 3})).to_string().into_bytes(),
            400,
            "events[0].event_type",
        ),
        (
            ev(json!({"priority": "high"})).to_string().into_bytes(),
            400,
            "events[0].priority",
        ),
        (
            ev(json!({"sentiment": [1]})).to_string().into_bytes(),
            400,
            "events[0].sentiment",
        ),
        (
            ev(json!({"priority": 1e300})).to_string().into_bytes(),
            422,
            "events[0].priority",
        ),
        (
            ev(json!({"priority": "NaN"})).to_string().into_bytes(),
            422,
            "events[0].priority",
        ),
        (
            ev(json!({"sentiment": "-Infinity"})).to_string().into_bytes(),
            422,
            "events[0].sentiment",
        ),
        (
            json!({"ticket_id": "V", "events": []}).to_string().into_bytes(),
            422,
            "empty",
        ),
        (
            json!({"ticket_id": "V", "events": too_many}).to_string().into_bytes(),
            422,
            "limit",
        ),
    ];
    for (body, status, words) in &cases {
        let r = req(a, "POST", "/v1/score", body, "").unwrap();
        assert_eq!(r.status, *status, "{} -> {}", String::from_utf8_lossy(body), r.body);
        let msg = r.json()["error"].as_str().unwrap().to_string();
        assert!(msg.contains(words), "{msg} lacks {words}");
    }
    let r = post(
        a,
        "/v1/score/batch",
        &json!({"tickets": [tickets[0], {"ticket_id": "Z", "events": [{"timestamp": 1, "event_type": 2}]}]}),
    );
    assert_eq!(r.status, 400);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("tickets[1].events[0].event_type"));

    // Body limit: limit − 1 is scored, limit + 1 is 413 (also when chunked); all JSON.
    let limit = 40000;
    let mut small = ticket_json("L", t, &cols, 2).to_string().into_bytes();
    small.resize(limit - 1, b' ');
    assert_eq!(req(a, "POST", "/v1/score", &small, "").unwrap().status, 200);
    small.resize(limit + 1, b' ');
    let r = req(a, "POST", "/v1/score", &small, "").unwrap();
    assert_eq!(r.status, 413);
    assert!(r.json()["error"].as_str().unwrap().contains("limit"));
    let mut chunked =
        format!("POST /v1/score HTTP/1.1\r\nHost: {a}\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n")
            .into_bytes();
    for _ in 0..5 {
        chunked.extend_from_slice(format!("{:x}\r\n", 10000).as_bytes());
        chunked.extend_from_slice(&[b' '; 10000]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(raw(a, &chunked).unwrap().status, 413);

    // Unknown routes and methods are JSON too; admin is off by default; streaming needs --state.
    assert_eq!(get(a, "/nope").json()["error"], "no such route");
    let r = req(a, "PUT", "/v1/score", b"", "").unwrap();
    assert_eq!(r.status, 405);
    assert!(r.json()["error"].is_string());
    assert_eq!(post(a, "/admin/reload", &json!({})).status, 404);
    assert_eq!(post(a, "/v1/tickets/a/events", &json!({"events": []})).status, 409);

    // Unknown event types map to the unknown bucket, are scored and counted.
    let before = metric(a, "recur_unknown_event_types_total ");
    let r = post(
        a,
        "/v1/score",
        &json!({"ticket_id": "U", "events": [
        {"timestamp": 1740823200, "event_type": "never_seen_1"},
        {"timestamp": 1740823260, "event_type": "never_seen_2", "priority": 2}]}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(metric(a, "recur_unknown_event_types_total ") - before, 2.0);

    // Metrics: histogram buckets, rejections by reason, the model version.
    let m = get(a, "/metrics");
    assert_eq!(m.status, 200);
    for want in [
        "recur_request_duration_seconds_bucket{route=\"/v1/score\",le=\"0.001\"}",
        "recur_request_duration_seconds_bucket{route=\"/v1/score\",le=\"+Inf\"}",
        "# TYPE recur_request_duration_seconds histogram",
        "recur_rejections_total{reason=\"malformed\"}",
        "recur_rejections_total{reason=\"non_finite\"} 3",
        "recur_rejections_total{reason=\"too_many_events\"} 1",
        "recur_rejections_total{reason=\"body_too_large\"} 2",
        "recur_rejections_total{reason=\"method_not_allowed\"} 1",
        "recur_requests_total{route=\"/v1/score\",status=\"200\"}",
        "recur_ready 1",
    ] {
        assert!(m.body.contains(want), "metrics lack {want}:\n{}", m.body);
    }
    assert!(m.body.contains(&format!(
        "recur_model_info{{name=\"escalation\",version=\"{}\"}} 1",
        lm.version
    )));
}

#[test]
fn streaming_equals_recompute_limits_events_and_resumes_after_a_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    make_model(&dir, false, 12, 2);
    let state = tmp.path().join("state").join("tickets.redb");
    let st = state.to_str().unwrap();
    let log = harbor(40, 3);
    let cols = LoadedModel::load(&dir).unwrap().pre.numeric_columns.clone();
    let picks: Vec<&Ticket> = log
        .tickets
        .iter()
        .filter(|t| (8..=30).contains(&t.events.len()))
        .take(3)
        .collect();
    let check = |a: SocketAddr, id: &str, t: &Ticket, from: usize, to: usize| {
        for n in from..to {
            let one = ticket_json(id, t, &cols, n + 1)["events"][n].clone();
            let body = if n % 2 == 0 { json!({ "events": [one] }) } else { one };
            let r = post(a, &format!("/v1/tickets/{id}/events"), &body);
            assert_eq!(r.status, 200, "{}", r.body);
            let v = r.json();
            assert_eq!(v["events"], n + 1);
            let full = post(a, "/v1/score", &ticket_json(id, t, &cols, n + 1)).json();
            let (ps, pf) = (
                v["probability"].as_f64().unwrap(),
                full["probability"].as_f64().unwrap(),
            );
            assert!(
                (ps - pf).abs() < 1e-5,
                "{id} after {} events: streamed {ps} vs full {pf}",
                n + 1
            );
        }
    };
    {
        let s = Server::start(&dir, &["--state", st, "--max-events", "30"]);
        for (i, t) in picks.iter().enumerate() {
            check(s.addr, &format!("T{i}"), t, 0, t.events.len() / 2);
        }
        // The state directory is private.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(state.parent().unwrap()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        // Out of order and over the per-ticket limit: 422, state unchanged.
        let r = post(
            s.addr,
            "/v1/tickets/T0/events",
            &json!({"timestamp": 0, "event_type": "x"}),
        );
        assert_eq!(r.status, 422, "{}", r.body);
        let many: Vec<Value> = (0..30)
            .map(|k| json!({"timestamp": 4102444800i64 + k, "event_type": "x"}))
            .collect();
        let r = post(s.addr, "/v1/tickets/T0/events", &json!({ "events": many }));
        assert_eq!(r.status, 422);
        assert!(r.json()["error"].as_str().unwrap().contains("limit"));
        assert_eq!(
            get(s.addr, "/v1/tickets/T0").json()["events"],
            picks[0].events.len() / 2
        );
        assert_eq!(metric(s.addr, "recur_open_tickets "), 3.0);
        // s is killed (SIGKILL) here: no graceful shutdown.
    }
    let s = Server::start(&dir, &["--state", st, "--max-events", "30"]);
    for (i, t) in picks.iter().enumerate() {
        let id = format!("T{i}");
        assert_eq!(
            get(s.addr, &format!("/v1/tickets/{id}")).json()["events"],
            t.events.len() / 2
        );
        check(s.addr, &id, t, t.events.len() / 2, t.events.len());
    }
    let r = req(s.addr, "DELETE", "/v1/tickets/T1", b"", "").unwrap();
    assert_eq!((r.status, r.json()["closed"].clone()), (200, json!(true)));
    assert_eq!(get(s.addr, "/v1/tickets/T1").status, 404);
    assert_eq!(req(s.addr, "DELETE", "/v1/tickets/T1", b"", "").unwrap().status, 404);
    // A closed ticket reopens from scratch.
    check(s.addr, "T1", picks[1], 0, 2);
    assert_eq!(metric(s.addr, "recur_open_tickets "), 3.0);
    drop(s);

    // Under a different model, an open ticket is replayed once from its stored events.
    let dir2 = tmp.path().join("m2");
    make_model(&dir2, false, 12, 7);
    let s = Server::start(&dir2, &["--state", st, "--max-events", "30"]);
    let t = picks[2];
    let n = t.events.len();
    let last = ticket_json("T2", t, &cols, n)["events"][n - 1].clone();
    let r = req(s.addr, "DELETE", "/v1/tickets/T2", b"", "").unwrap();
    assert_eq!(r.status, 200);
    check(s.addr, "T2", t, 0, n - 1);
    drop(s);
    let s = Server::start(&dir, &["--state", st, "--max-events", "30"]);
    let v = post(s.addr, "/v1/tickets/T2/events", &last).json();
    assert_eq!((v["replayed"].clone(), v["events"].clone()), (json!(true), json!(n)));
    let full = post(s.addr, "/v1/score", &ticket_json("T2", t, &cols, n)).json();
    assert!((v["probability"].as_f64().unwrap() - full["probability"].as_f64().unwrap()).abs() < 1e-5);
}

#[test]
fn listens_on_loopback_only_unless_told_and_refuses_weak_admin_tokens() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    make_model(&dir, true, 8, 1);
    let token = tmp.path().join("token");
    std::fs::write(&token, "short").unwrap();
    for extra in [
        vec!["--addr", "0.0.0.0:0"],
        vec!["--admin-token-file", token.to_str().unwrap()],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_recur"))
            .args(["serve", "--model", dir.to_str().unwrap()])
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("loopback") || err.contains("16 characters"), "{err}");
    }
    // A checkpoint that fails verification never starts serving.
    std::fs::write(dir.join("weights.safetensors"), b"garbage").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_recur"))
        .args(["serve", "--model", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("size"));
}

#[test]
fn streaming_is_refused_for_bidirectional_models() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    make_model(&dir, true, 8, 1);
    let st = tmp.path().join("s.redb");
    let s = Server::start(&dir, &["--state", st.to_str().unwrap()]);
    let r = post(
        s.addr,
        "/v1/tickets/a/events",
        &json!({"timestamp": 1, "event_type": "opened"}),
    );
    assert_eq!(r.status, 409);
    assert!(r.json()["error"].as_str().unwrap().contains("unidirectional"));
}

#[test]
fn corrupt_reload_candidates_keep_the_old_model_with_zero_failed_requests() {
    let tmp = tempfile::tempdir().unwrap();
    let (good_a, good_b, other_shape) = (tmp.path().join("a"), tmp.path().join("b"), tmp.path().join("c"));
    make_model(&good_a, true, 8, 1);
    make_model(&good_b, true, 8, 2);
    make_model(&other_shape, true, 12, 3);
    let serving = tmp.path().join("serving");
    copy_dir(&good_a, &serving);
    let token = tmp.path().join("token");
    std::fs::write(&token, "0123456789abcdef-secret\n").unwrap();
    let s = Server::start(&serving, &["--admin-token-file", token.to_str().unwrap()]);
    let a = s.addr;
    let va = version(a);
    let auth = "Authorization: Bearer 0123456789abcdef-secret\r\n";

    // Clients score continuously during every reload attempt.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicU64::new(0));
    let seen = Arc::new(Mutex::new(vec![Vec::<String>::new(); 3]));
    let log = harbor(20, 4);
    let cols = LoadedModel::load(&good_a).unwrap().pre.numeric_columns.clone();
    let bodies: Vec<Value> = log
        .tickets
        .iter()
        .map(|t| ticket_json("L", t, &cols, t.events.len().min(60)))
        .collect();
    let clients: Vec<_> = (0..3)
        .map(|k| {
            let (stop, failures, seen, bodies) = (stop.clone(), failures.clone(), seen.clone(), bodies.clone());
            thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let r = post(a, "/v1/score", &bodies[(n as usize + k) % bodies.len()]);
                    if r.status != 200 {
                        failures.fetch_add(1, Ordering::Relaxed);
                    } else {
                        let v = r.json()["model_version"].as_str().unwrap().to_string();
                        let mut s = seen.lock().unwrap();
                        if s[k].last() != Some(&v) {
                            s[k].push(v);
                        }
                    }
                    n += 1;
                }
                n
            })
        })
        .collect();

    assert_eq!(req(a, "POST", "/admin/reload", b"", "").unwrap().status, 401);
    assert_eq!(
        req(
            a,
            "POST",
            "/admin/reload",
            b"",
            "Authorization: Bearer wrong-token-000000\r\n"
        )
        .unwrap()
        .status,
        401
    );

    let weights = |d: &Path| d.join("weights.safetensors");
    type Corrupt = Box<dyn Fn(&Path)>;
    let kinds: Vec<(&str, Corrupt, &str)> = vec![
        (
            "truncated",
            Box::new(move |d: &Path| {
                let w = std::fs::read(weights(d)).unwrap();
                std::fs::write(weights(d), &w[..w.len() / 2]).unwrap();
            }),
            "size",
        ),
        (
            "bit flip",
            Box::new(move |d: &Path| {
                let mut w = std::fs::read(weights(d)).unwrap();
                let i = w.len() - 7;
                w[i] ^= 0x10;
                std::fs::write(weights(d), w).unwrap();
            }),
            "SHA-256",
        ),
        (
            "empty",
            Box::new(move |d: &Path| {
                std::fs::write(weights(d), b"").unwrap();
                fix_manifest(d, |_| {});
            }),
            "safetensors",
        ),
        (
            "garbage",
            Box::new(move |d: &Path| {
                std::fs::write(weights(d), vec![0xAB; 4096]).unwrap();
                fix_manifest(d, |_| {});
            }),
            "safetensors",
        ),
        (
            "NaN weight",
            Box::new(move |d: &Path| {
                let mut w = std::fs::read(weights(d)).unwrap();
                let n = w.len();
                w[n - 4..].copy_from_slice(&f32::NAN.to_le_bytes());
                std::fs::write(weights(d), w).unwrap();
                fix_manifest(d, |_| {});
            }),
            "non-finite",
        ),
        (
            "wrong shape",
            {
                let other = other_shape.clone();
                Box::new(move |d: &Path| {
                    std::fs::copy(weights(&other), weights(d)).unwrap();
                    fix_manifest(d, |_| {});
                })
            },
            "shape",
        ),
        (
            "vocabulary mismatch",
            Box::new(move |d: &Path| {
                fix_manifest(d, |m| {
                    let v = &mut m["preprocessing"]["preprocessor"]["vocab"];
                    v["types"].as_array_mut().unwrap().push(json!("brand_new_type"));
                    v["counts"].as_array_mut().unwrap().push(json!(1));
                })
            }),
            "incompatible",
        ),
        (
            "numeric columns changed",
            Box::new(move |d: &Path| {
                fix_manifest(d, |m| {
                    m["preprocessing"]["preprocessor"]["numeric_columns"][0] = json!("urgency")
                })
            }),
            "numeric columns",
        ),
    ];
    let mut expected_failures = 0.0;
    for (name, corrupt, words) in &kinds {
        std::fs::remove_dir_all(&serving).unwrap();
        copy_dir(&good_b, &serving);
        corrupt(&serving);
        let r = req(a, "POST", "/admin/reload", b"", auth).unwrap();
        assert_eq!(r.status, 422, "{name}: {}", r.body);
        let msg = r.json()["error"].as_str().unwrap().to_string();
        assert!(msg.contains(words), "{name}: {msg}");
        expected_failures += 1.0;
        assert_eq!(
            metric(a, "recur_reloads_total{result=\"failure\"} "),
            expected_failures,
            "{name}"
        );
        assert_eq!(version(a), va, "{name}");
    }
    // A good candidate swaps in once; SIGHUP reloads too.
    std::fs::remove_dir_all(&serving).unwrap();
    copy_dir(&good_b, &serving);
    let r = req(a, "POST", "/admin/reload", b"", auth).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let vb = r.json()["model_version"].as_str().unwrap().to_string();
    assert_ne!(vb, va);
    assert_eq!(version(a), vb);
    thread::sleep(Duration::from_millis(200));
    std::fs::remove_dir_all(&serving).unwrap();
    copy_dir(&good_a, &serving);
    s.signal("-HUP");
    let end = Instant::now() + Duration::from_secs(10);
    while version(a) != va && Instant::now() < end {
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(version(a), va);
    thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let sent: u64 = clients.into_iter().map(|c| c.join().unwrap()).sum();
    eprintln!("{sent} scoring requests during the reload attempts");
    assert!(sent > 50, "only {sent} requests during the reloads");
    assert_eq!(failures.load(Ordering::Relaxed), 0, "failed requests during reloads");
    // Each client saw the versions in swap order: A, then B once, then A again.
    for s in seen.lock().unwrap().iter() {
        let mut order = [&va, &vb, &va].into_iter();
        assert!(
            s.first() == Some(&va) && s.iter().all(|v| order.any(|x| x == v)),
            "{s:?}"
        );
    }
    assert_eq!(metric(a, "recur_reloads_total{result=\"success\"} "), 2.0);
    assert_eq!(metric(a, "recur_reloads_total{result=\"failure\"} "), expected_failures);
}

#[test]
fn a_full_queue_gives_fast_503s_and_a_deadline_gives_504() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    make_model(&dir, true, 8, 1);
    let body = json!({"ticket_id": "Q", "events": [{"timestamp": 1740823200, "event_type": "opened"}]});
    // One thread, one queue slot, 800 ms per job: 1 running + 1 queued, the rest refused at once.
    let s = Server::start(
        &dir,
        &[
            "--workers",
            "1",
            "--queue",
            "1",
            "--debug-delay-ms",
            "800",
            "--timeout-ms",
            "5000",
        ],
    );
    let a = s.addr;
    let spawn = |b: Value| {
        thread::spawn(move || {
            let t = Instant::now();
            let r = post(a, "/v1/score", &b);
            (r.status, t.elapsed())
        })
    };
    let first = spawn(body.clone());
    wait_for(a, "recur_in_flight_requests ", 1.0);
    wait_for(a, "recur_pool_queued_jobs ", 0.0);
    let rest: Vec<_> = (0..4).map(|_| spawn(body.clone())).collect();
    let mut got: Vec<(u16, Duration)> = rest.into_iter().map(|h| h.join().unwrap()).collect();
    got.push(first.join().unwrap());
    let ok = got.iter().filter(|(s, _)| *s == 200).count();
    let fast503: Vec<_> = got.iter().filter(|(s, _)| *s == 503).collect();
    assert_eq!((ok, fast503.len()), (2, 3), "{got:?}");
    assert!(fast503.iter().all(|(_, d)| *d < Duration::from_millis(400)), "{got:?}");
    assert_eq!(metric(a, "recur_rejections_total{reason=\"overloaded\"} "), 3.0);
    drop(s);

    // The global in-flight limit bites around the whole router, and the deadline gives 504.
    let s = Server::start(
        &dir,
        &[
            "--workers",
            "1",
            "--max-in-flight",
            "2",
            "--debug-delay-ms",
            "500",
            "--timeout-ms",
            "300",
        ],
    );
    let a = s.addr;
    let spawn = |b: Value| thread::spawn(move || post(a, "/v1/score", &b).status);
    let slow: Vec<_> = (0..2).map(|_| spawn(body.clone())).collect();
    wait_for(a, "recur_in_flight_requests ", 2.0);
    let r = post(a, "/v1/score", &body);
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.json()["error"].as_str().unwrap().contains("overloaded"));
    assert_eq!(get(a, "/v2/health/ready").status, 200, "health is not limited");
    let statuses: Vec<u16> = slow.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(statuses, vec![504, 504]);
    assert_eq!(metric(a, "recur_rejections_total{reason=\"timeout\"} "), 2.0);
}

#[test]
fn queued_scores_are_micro_batched_and_equal_single_scores() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    make_model(&dir, true, 8, 1);
    let lm = LoadedModel::load(&dir).unwrap();
    let log = harbor(30, 6);
    let cols = lm.pre.numeric_columns.clone();
    let picks: Vec<Ticket> = log
        .tickets
        .iter()
        .filter(|t| (2..=100).contains(&t.events.len()))
        .take(9)
        .cloned()
        .collect();
    // With room for every ticket the queued scores share model calls; with an event cap
    // below every ticket's length each one runs alone.
    for events_cap in ["1024", "1"] {
        // One thread that pauses 300 ms per model call: the requests behind the first queue
        // up and are scored together.
        let s = Server::start(
            &dir,
            &[
                "--workers",
                "1",
                "--debug-delay-ms",
                "300",
                "--micro-batch",
                "8",
                "--micro-batch-events",
                events_cap,
                "--timeout-ms",
                "20000",
            ],
        );
        let a = s.addr;
        let handles: Vec<_> = picks
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let body = ticket_json(&format!("M{i}"), t, &cols, t.events.len());
                thread::spawn(move || post(a, "/v1/score", &body).json())
            })
            .collect();
        for (h, t) in handles.into_iter().zip(&picks) {
            let v = h.join().unwrap();
            let want = lm.score(&[&t.events]).unwrap()[0];
            assert!(
                (v["probability"].as_f64().unwrap() - want).abs() < 1e-5,
                "{v} vs {want}"
            );
        }
        let (scores, batches) = (
            metric(a, "recur_scores_total "),
            metric(a, "recur_score_batches_total "),
        );
        assert_eq!(scores, 9.0);
        if events_cap == "1" {
            assert_eq!(batches, 9.0, "an event cap of 1 still batched");
        } else {
            assert!(batches <= 5.0, "9 queued scores took {batches} model calls");
        }
    }
}

#[test]
fn sigterm_drains_in_flight_requests_then_refuses_and_exits() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    make_model(&dir, true, 8, 1);
    let mut s = Server::start(
        &dir,
        &[
            "--debug-delay-ms",
            "300",
            "--shutdown-delay-ms",
            "1500",
            "--drain-secs",
            "5",
        ],
    );
    let a = s.addr;
    let body = json!({"ticket_id": "D", "events": [{"timestamp": 1740823200, "event_type": "opened"}]});
    let in_flight: Vec<_> = (0..6)
        .map(|_| {
            let b = body.clone();
            thread::spawn(move || post(a, "/v1/score", &b).status)
        })
        .collect();
    wait_for(a, "recur_in_flight_requests ", 6.0);
    let t0 = Instant::now();
    s.signal("-TERM");
    thread::sleep(Duration::from_millis(100));
    assert_eq!(get(a, "/v2/health/ready").status, 503);
    assert_eq!(get(a, "/v2/health/live").status, 200);
    let r = post(a, "/v1/score", &body);
    assert_eq!(r.status, 503);
    assert!(r.json()["error"].as_str().unwrap().contains("shutting down"));
    let statuses: Vec<u16> = in_flight.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(statuses, vec![200; 6], "in-flight requests must finish");
    let status = s.wait_exit(Duration::from_secs(6)).expect("exits within the cap");
    assert!(status.success());
    assert!(t0.elapsed() < Duration::from_secs(6));
    assert!(TcpStream::connect(a).is_err(), "the listener is closed");
}

#[test]
fn streaming_featurizer_equals_the_batch_featurizer() {
    let log = harbor(50, 8);
    let tmp = tempfile::tempdir().unwrap();
    make_model(&tmp.path().join("m"), false, 8, 1);
    let lm = LoadedModel::load(&tmp.path().join("m")).unwrap();
    let f = StepFeaturizer::new(&lm.pre);
    let n = f.n_scalars();
    for t in &log.tickets {
        let want = lm.pre.sequence_features(t, t.events.len());
        let mut row = vec![0.0f32; n];
        for (i, e) in t.events.iter().enumerate() {
            let ctx = StepContext {
                open_ms: t.events[0].timestamp_ms,
                prev_ms: i.checked_sub(1).map(|j| t.events[j].timestamp_ms),
                index: i as u64,
            };
            f.step(ctx, e, &mut row);
            assert_eq!(
                row.as_slice(),
                &want.scalars[i * n..(i + 1) * n],
                "ticket {} event {i}",
                t.id
            );
        }
    }
}

#[test]
fn loadtest_refuses_non_loopback_targets_and_reports_percentiles() {
    assert!(loadtest::loopback_target("http://10.1.2.3:80").is_err());
    assert!(loadtest::loopback_target("http://192.168.0.1:8080/v1/score").is_err());
    assert!(loadtest::loopback_target("https://127.0.0.1:1").is_err());
    let t = loadtest::loopback_target("http://localhost:9").unwrap();
    assert!(t.addr.ip().is_loopback() && t.path == "/v1/score");

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    make_model(&dir, true, 8, 1);
    let s = Server::start(&dir, &[]);
    // 4 connections, 100 synthetic tickets, JSON report; `extra` adds the request count etc.
    let loadtest = |extra: &[&str]| -> Value {
        let out = Command::new(env!("CARGO_BIN_EXE_recur"))
            .args(["loadtest", "--url", &format!("http://{}", s.addr)])
            .args(["--connections", "4", "--duration", "20", "--tickets", "100", "--json"])
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let r = loadtest(&["--requests", "300"]);
    assert_eq!((r["requests"].as_u64(), r["ok"].as_u64()), (Some(300), Some(300)));
    assert!(r["p50_ms"].as_f64().unwrap() <= r["p99_ms"].as_f64().unwrap());
    // Open loop: 100 requests paced at 200/s cannot finish before the last is due (0.495 s).
    let r = loadtest(&["--requests", "100", "--rate", "200"]);
    assert_eq!((r["requests"].as_u64(), r["ok"].as_u64()), (Some(100), Some(100)));
    assert_eq!(r["rate"].as_f64(), Some(200.0));
    assert!(r["seconds"].as_f64().unwrap() >= 0.49, "{r}");
    let out = Command::new(env!("CARGO_BIN_EXE_recur"))
        .args(["loadtest", "--url", "http://10.0.0.1:8080", "--requests", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
}

// ---------- property tests, in process ----------

mod props {
    use axum::body::Body;
    use axum::http::Request;
    use proptest::prelude::*;
    use tower::ServiceExt;

    use super::*;

    struct Fixture {
        rt: tokio::runtime::Runtime,
        app: axum::Router,
        _tmp: tempfile::TempDir,
    }

    fn fixture() -> &'static Fixture {
        static F: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
        F.get_or_init(|| {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("m");
            make_model(&dir, false, 8, 1);
            let store = TicketStore::open(&tmp.path().join("s.redb")).unwrap();
            let cfg = ServeConfig {
                workers: 1,
                max_events: 64,
                max_body_bytes: 64 * 1024,
                ..ServeConfig::default()
            };
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            let state = AppState::new(cfg, LoadedModel::load(&dir).unwrap(), dir.clone(), Some(store));
            Fixture {
                rt,
                app: srv::app(state),
                _tmp: tmp,
            }
        })
    }

    fn status(path: &str, body: Vec<u8>) -> u16 {
        let f = fixture();
        let req = Request::post(path).body(Body::from(body)).unwrap();
        f.rt.block_on(f.app.clone().oneshot(req)).unwrap().status().as_u16()
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |x| x.is_finite())
                .prop_map(Value::from),
            prop_oneof![
                Just("opened".to_string()),
                Just("NaN".to_string()),
                Just("2025-03-01T10:00:00Z".to_string()),
                Just("1740823200.5".to_string()),
                ".{0,12}"
            ]
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("ticket_id".to_string()),
                        Just("events".to_string()),
                        Just("timestamp".to_string()),
                        Just("event_type".to_string()),
                        Just("priority".to_string()),
                        Just("sentiment".to_string()),
                        Just("tickets".to_string()),
                        Just("inputs".to_string()),
                        Just("name".to_string()),
                        Just("shape".to_string()),
                        Just("datatype".to_string()),
                        Just("data".to_string()),
                        "[a-z]{1,6}"
                    ],
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    const PATHS: [&str; 5] = [
        "/v1/score",
        "/v1/score/batch",
        "/v2/models/escalation/infer",
        "/v1/tickets/p/events",
        "/admin/reload",
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn random_bytes_never_give_a_5xx(path in 0..PATHS.len(), body in prop::collection::vec(any::<u8>(), 0..300)) {
            let s = status(PATHS[path], body);
            prop_assert!(s < 500, "status {}", s);
        }

        #[test]
        fn random_json_never_gives_a_5xx(path in 0..PATHS.len(), v in json_value()) {
            let s = status(PATHS[path], v.to_string().into_bytes());
            prop_assert!(s < 500, "status {} for {}", s, v);
        }

        #[test]
        fn mutated_valid_requests_never_give_a_5xx(
            field in prop_oneof![Just("timestamp"), Just("event_type"), Just("priority"), Just("sentiment")],
            value in json_value(),
            n in 1usize..5,
        ) {
            let mut events: Vec<Value> = (0..n)
                .map(|i| json!({"timestamp": 1740823200 + 60 * i as i64, "event_type": "customer_message", "priority": 2}))
                .collect();
            events[n - 1][field] = value.clone();
            for (path, body) in [
                ("/v1/score", json!({"ticket_id": "P", "events": events})),
                ("/v1/score/batch", json!({"tickets": [{"ticket_id": "P", "events": events}]})),
                ("/v1/tickets/prop/events", json!({"events": events})),
            ] {
                let s = status(path, body.to_string().into_bytes());
                prop_assert!(s < 500, "status {} on {} for {}", s, path, value);
            }
        }
    }
}

#[test]
fn reduced_precision_weights_score_like_the_library_and_close_to_f32() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    make_model(&dir, true, 8, 1);
    let f32_model = LoadedModel::load(&dir).unwrap();
    let log = harbor(40, 9);
    let cols = f32_model.pre.numeric_columns.clone();
    let t = log.tickets.iter().find(|t| (5..150).contains(&t.events.len())).unwrap();
    let body = ticket_json("T1", t, &cols, t.events.len());
    let exact = f32_model.score(&[&t.events]).unwrap()[0];
    for (flag, precision, tol) in [
        ("f16", recur::nn::Precision::F16, 1e-3),
        ("int8", recur::nn::Precision::Int8, 2e-2),
    ] {
        let lm = LoadedModel::load_with(&dir, precision).unwrap();
        let want = lm.score(&[&t.events]).unwrap()[0];
        assert!((want - exact).abs() < tol, "{flag}: {want} vs f32 {exact}");
        let s = Server::start(&dir, &["--precision", flag]);
        let r = post(s.addr, "/v1/score", &body);
        assert_eq!(r.status, 200, "{}", r.body);
        let p = r.json()["probability"].as_f64().unwrap();
        assert!((p - want).abs() < 1e-9, "{flag}: served {p}, library {want}");
    }
}
