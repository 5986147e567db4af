//! `recur demo` through the real binary on a small generated log, then on the same log read
//! back from disk as a user's own files: the run directory, the metrics keys later checks use,
//! the report, and the checkpoint's preprocessing round trip.

use std::path::Path;

use serde_json::Value;

mod cli_support;
use cli_support::{assert_ok, recur};

fn check_run(dir: &Path) -> Value {
    let m: Value = serde_json::from_slice(&std::fs::read(dir.join("metrics.json")).unwrap()).unwrap();
    for key in ["bigru_auc", "gbdt_auc", "gbdt_guide_features_auc"] {
        let v = m["holdout"][key].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v), "{key} = {v}");
    }
    assert!(m["latency_ms"]["p95_t112"].as_f64().unwrap() > 0.0);
    assert!(m["latency_ms"]["p95_t18"].as_f64().unwrap() > 0.0);
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert_eq!(html.matches("<svg").count(), 5, "five figures");
    for f in [
        "model/manifest.json",
        "holdout_scores.csv",
        "latency.json",
        "metrics.jsonl",
    ] {
        assert!(dir.join(f).is_file(), "missing {f}");
    }
    // The checkpoint carries the preprocessing (vocabulary and scalers) and the threshold.
    let (_, pre, threshold) = recur::recipe::escalation::load(&dir.join("model")).unwrap();
    assert!(pre.vocab_size() >= 13, "12 event types and the unknown bucket");
    assert!((0.0..=1.0).contains(&threshold));
    // `recur bench` on the checkpoint measures its training window's median, p95 and longest
    // ticket by default.
    let manifest: Value = serde_json::from_slice(&std::fs::read(dir.join("model/manifest.json")).unwrap()).unwrap();
    let recorded = &manifest["preprocessing"]["lengths"];
    let bench = assert_ok(&recur(&[
        &"bench",
        &"--model",
        &dir.join("model"),
        &"--seconds",
        &"0.02",
        &"--json",
    ]));
    let bench: Value = serde_json::from_str(&bench).unwrap();
    for key in ["median", "p95", "max"] {
        let t = recorded[key].as_u64().unwrap().min(2000);
        assert!(
            bench["lengths"][t.to_string()]["p99_ms"].as_f64().unwrap() > 0.0,
            "{key} = {t}: {bench}"
        );
    }
    let json = pre.to_json().unwrap();
    assert_eq!(recur_data::features::Preprocessor::from_json(&json).unwrap(), pre);
    m
}

#[test]
fn demo_on_generated_and_on_user_logs() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let small = [
        "--set",
        "training.epochs=1",
        "--set",
        "model.hidden_size=16",
        "--set",
        "training.threads=1",
        "--bench-seconds",
        "0.05",
    ];
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
        vec![&"demo", &"--tickets", &"4000", &"--seed", &"3", &"--out", &run];
    args.extend(small.iter().map(|s| s as &dyn AsRef<std::ffi::OsStr>));
    let out = assert_ok(&recur(&args));
    assert!(out.contains("holdout AUC: BiGRU"), "{out}");
    let first = check_run(&run);

    // The generated files in the documented format go through the same command as a user's own.
    let run2 = tmp.path().join("run2");
    let data = run.join("data");
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
        vec![&"demo", &"--data", &data, &"--out", &run2, &"--set", &"training.seed=3"];
    args.extend(small.iter().map(|s| s as &dyn AsRef<std::ffi::OsStr>));
    assert_ok(&recur(&args));
    let second = check_run(&run2);
    assert_eq!(
        first["holdout"]["gbdt_auc"], second["holdout"]["gbdt_auc"],
        "same tickets, same baseline"
    );
    assert_eq!(first["holdout"]["samples"], second["holdout"]["samples"]);

    // A user's log with a bad row: a clear error naming the line, or with --skip-bad-rows a
    // count in metrics.json and the report.
    let bad = tmp.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    let mut events = std::fs::read_to_string(data.join("events.csv")).unwrap();
    let line = events.lines().count() + 1;
    events.push_str("HS-9999999,not-a-time,opened,1,\n");
    std::fs::write(bad.join("events.csv"), events).unwrap();
    std::fs::copy(data.join("escalations.csv"), bad.join("escalations.csv")).unwrap();
    let e = recur(&[&"demo", &"--data", &bad, &"--out", &tmp.path().join("run3")]);
    assert!(!e.status.success());
    let msg = String::from_utf8_lossy(&e.stderr);
    assert!(msg.contains(&format!("events.csv:{line}")), "{msg}");
    let run3 = tmp.path().join("run4");
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![
        &"demo",
        &"--data",
        &bad,
        &"--skip-bad-rows",
        &"--out",
        &run3,
        &"--set",
        &"training.seed=3",
    ];
    args.extend(small.iter().map(|s| s as &dyn AsRef<std::ffi::OsStr>));
    let out = assert_ok(&recur(&args));
    assert!(out.contains("skipped 1 bad rows"), "{out}");
    let third = check_run(&run3);
    assert_eq!(third["input"]["bad_rows"], 1);
    assert!(third["input"]["bad_row_examples"][0]
        .as_str()
        .unwrap()
        .contains(&format!(":{line}:")));
    assert_eq!(
        third["holdout"]["gbdt_auc"], second["holdout"]["gbdt_auc"],
        "the bad row was dropped"
    );
    let html = std::fs::read_to_string(run3.join("report.html")).unwrap();
    assert!(html.contains("id=\"bad-rows\""));

    let e = recur(&[&"demo", &"--tickets", &"100", &"--out", &tmp.path().join("tiny")]);
    assert!(!e.status.success());
    let e = recur(&[&"demo", &"--set", &"training.epocs=1", &"--print-config"]);
    assert!(String::from_utf8_lossy(&e.stderr).contains("epocs"));
}
