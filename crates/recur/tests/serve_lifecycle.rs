//! `recur serve` under stress, against the real binary on loopback: reload with corrupt
//! candidates, a full queue and deadlines, micro-batching, and draining on SIGTERM.

mod serve_support;

use serve_support::*;
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use recur::serve::LoadedModel;
use recur_data::schema::Ticket;
use serde_json::{json, Value};

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
