//! Shared by the `recur serve` test binaries: tiny models, a blocking HTTP/1.1 client and the
//! server process.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use recur::recipe::escalation::{self, EscalationConfig, EscalationModel};
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

pub fn harbor(tickets: usize, seed: u64) -> EventLog {
    generate(&HarborConfig::new(tickets, seed))
}

/// A tiny escalation checkpoint with random weights in `dir`.
pub fn make_model(dir: &Path, bidirectional: bool, hidden: usize, seed: u64) {
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

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// Rewrites the manifest's entry for the weights file to match its current bytes.
pub fn fix_manifest(dir: &Path, edit: impl FnOnce(&mut Value)) {
    let w = std::fs::read(dir.join("weights.safetensors")).unwrap();
    let mp = dir.join("manifest.json");
    let mut m: Value = serde_json::from_slice(&std::fs::read(&mp).unwrap()).unwrap();
    let sha: String = Sha256::digest(&w).iter().map(|b| format!("{b:02x}")).collect();
    m["files"][0]["size"] = json!(w.len());
    m["files"][0]["sha256"] = json!(sha);
    edit(&mut m);
    std::fs::write(mp, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
}

pub fn ticket_json(id: &str, t: &Ticket, columns: &[String], n: usize) -> Value {
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

pub struct Resp {
    pub status: u16,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

pub fn raw(addr: SocketAddr, request: &[u8]) -> std::io::Result<Resp> {
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

pub fn req(addr: SocketAddr, method: &str, path: &str, body: &[u8], headers: &str) -> std::io::Result<Resp> {
    let mut r = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{headers}\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    raw(addr, &r)
}

pub fn post(addr: SocketAddr, path: &str, body: &Value) -> Resp {
    req(addr, "POST", path, body.to_string().as_bytes(), "").unwrap()
}

pub fn get(addr: SocketAddr, path: &str) -> Resp {
    req(addr, "GET", path, b"", "").unwrap()
}

// ---------- the server process ----------

pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Server {
    pub fn start(model: &Path, extra: &[&str]) -> Server {
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

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
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

pub fn metric(addr: SocketAddr, line_prefix: &str) -> f64 {
    let m = get(addr, "/metrics").body;
    m.lines()
        .find_map(|l| l.strip_prefix(line_prefix).map(|v| v.trim().parse().unwrap()))
        .unwrap_or(0.0)
}

/// Polls `/metrics` until the gauge `name` reads `value` (10 s at most).
pub fn wait_for(addr: SocketAddr, name: &str, value: f64) {
    let end = Instant::now() + Duration::from_secs(10);
    while metric(addr, name) != value {
        assert!(Instant::now() < end, "{name} never reached {value}");
        thread::sleep(Duration::from_millis(5));
    }
}

pub fn version(addr: SocketAddr) -> String {
    get(addr, "/v2/models/escalation").json()["versions"][0]
        .as_str()
        .unwrap()
        .to_string()
}
