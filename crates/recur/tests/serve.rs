//! `recur serve` against the real binary on loopback: endpoints, error paths, streaming across a
//! restart, the load generator and reduced-precision weights. Reload, overload, timeouts and
//! draining are in `serve_lifecycle.rs`; the in-process property tests in `serve_props.rs`.
//!
//! Models are tiny checkpoints made through the library (random weights, a preprocessor fitted
//! on a few generated Harbor tickets; `serve_support`), so every test runs in seconds.

mod serve_support;

use serve_support::*;
use std::net::SocketAddr;
use std::process::Command;

use recur::serve::features::{StepContext, StepFeaturizer};
use recur::serve::loadtest;
use recur::serve::LoadedModel;
use recur_data::schema::Ticket;
use serde_json::{json, Value};

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
