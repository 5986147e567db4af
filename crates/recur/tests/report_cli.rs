//! `recur report --run DIR` through the real binary, on synthetic run directories: the page
//! and its five figures, the figures matching `recur_train::metrics`, the merge into
//! `metrics.json`, the optional inputs, and the error paths.

use std::collections::BTreeMap;
use std::path::Path;

use recur::report::{self, ScoreRow};
use recur_train::metrics::{average_precision, brier_score, roc_auc};
use recur_train::trainer::EpochRecord;
use serde_json::Value;

mod cli_support;
use cli_support::{assert_fails, assert_ok, recur};

/// A small deterministic generator (no dependence on rand's stream).
struct Lcg(u64);

impl Lcg {
    fn uniform(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Scores where the BiGRU separates the classes better than the GBDT; about 20% positives.
fn synthetic_scores(n: usize) -> Vec<ScoreRow> {
    let mut g = Lcg(42);
    (0..n)
        .map(|i| {
            let label = g.uniform() < 0.2;
            let s = if label { 1.0 } else { -1.0 };
            ScoreRow {
                ticket_id: format!("HB-{:05}", i / 3),
                cut_ms: 1_700_000_000_000 + 60_000 * i as i64,
                label,
                bigru: sigmoid(-1.2 + 1.6 * s + g.normal()),
                gbdt: sigmoid(-1.2 + 0.7 * s + g.normal()),
            }
        })
        .collect()
}

fn epochs() -> Vec<(String, EpochRecord)> {
    (1..=8)
        .map(|e| {
            let mut val = BTreeMap::new();
            val.insert(
                "loss".to_string(),
                0.5 - 0.02 * e as f64 + 0.004 * (e as f64 - 5.0).powi(2),
            );
            val.insert("auc".to_string(), 0.7 + 0.02 * e as f64);
            val.insert("average_precision".to_string(), 0.3 + 0.01 * e as f64);
            (
                "select".to_string(),
                EpochRecord {
                    epoch: e,
                    step: 25 * e as u64,
                    lr: 3e-3,
                    train_loss: 0.6 / (e as f64).sqrt(),
                    skipped_steps: 0,
                    val,
                    is_best: e <= 5,
                    seconds: 2.5,
                },
            )
        })
        .collect()
}

fn latency_json() -> String {
    let mut g = Lcg(7);
    let mut lengths = serde_json::Map::new();
    for (t, base) in [(18usize, 0.21), (112, 0.95), (400, 3.1)] {
        let mut samples: Vec<f64> = (0..300).map(|_| base * (1.0 + 0.15 * g.normal().abs())).collect();
        samples.push(base * 4.0);
        let mut sorted = samples.clone();
        sorted.sort_by(f64::total_cmp);
        let q = |p: f64| sorted[((p * (sorted.len() - 1) as f64).round()) as usize];
        lengths.insert(
            t.to_string(),
            serde_json::json!({
                "median_ms": q(0.5), "p95_ms": q(0.95), "p99_ms": q(0.99),
                "mean_ms": samples.iter().sum::<f64>() / samples.len() as f64,
                "min_ms": sorted[0], "iterations": samples.len(), "samples_ms": samples,
            }),
        );
    }
    serde_json::to_string_pretty(&serde_json::json!({
        "kernels": "avx2-fma", "simd": "avx2+fma", "threads": 1, "batch": 1, "lengths": lengths,
    }))
    .unwrap()
}

fn full_run(dir: &Path) -> Vec<ScoreRow> {
    let rows = synthetic_scores(600);
    report::write_scores(&dir.join("holdout_scores.csv"), &rows).unwrap();
    report::write_epochs(&dir.join("metrics.jsonl"), &epochs()).unwrap();
    std::fs::write(dir.join("latency.json"), latency_json()).unwrap();
    std::fs::write(
        dir.join("metrics.json"),
        r#"{"holdout": {"cut_points": 600, "bigru_auc": 0.0}, "latency_ms": {"p50_t18": 99.0, "p50_t9": 0.1},
            "data": {"tickets": 200}}"#,
    )
    .unwrap();
    rows
}

fn metrics_json(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("metrics.json")).unwrap()).unwrap()
}

#[test]
fn full_report_has_five_figures_and_exact_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let rows = full_run(dir);
    let stdout = assert_ok(&recur(&[
        &"report",
        &"--run",
        &dir,
        &"--title",
        &"Harbor <demo> & \"Q3\"",
    ]));
    assert!(stdout.contains("5 figures"), "{stdout}");
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert_eq!(html.matches("<svg").count(), 5, "figures");
    assert!(html.starts_with("<!DOCTYPE html>"));
    for banned in ["<script", "<link", " src=", "<img", "@import"] {
        assert!(!html.contains(banned), "report holds {banned}");
    }
    // The only URL is the SVG namespace.
    assert_eq!(
        html.matches("http").count(),
        html.matches("http://www.w3.org/2000/svg").count()
    );
    assert!(html.contains("<title>Harbor &lt;demo&gt; &amp; &quot;Q3&quot;</title>"));
    assert!(!html.contains("<demo>"));

    let labels: Vec<bool> = rows.iter().map(|r| r.label).collect();
    let bigru: Vec<f64> = rows.iter().map(|r| r.bigru).collect();
    let gbdt: Vec<f64> = rows.iter().map(|r| r.gbdt).collect();
    let (auc_b, auc_g) = (roc_auc(&labels, &bigru).unwrap(), roc_auc(&labels, &gbdt).unwrap());
    assert!(
        auc_b > auc_g + 0.05,
        "synthetic BiGRU should be better: {auc_b} vs {auc_g}"
    );
    assert!(
        html.contains(&format!("id=\"bigru-auc\">{auc_b:.4}</td>")),
        "summary BiGRU AUC"
    );
    assert!(
        html.contains(&format!("id=\"gbdt-auc\">{auc_g:.4}</td>")),
        "summary GBDT AUC"
    );
    assert!(html.contains(&format!("BiGRU (AUC {auc_b:.4})")), "ROC legend");
    let ap_b = average_precision(&labels, &bigru).unwrap();
    assert!(html.contains(&format!("BiGRU (AP {ap_b:.4})")), "PR legend");
    assert!(html.contains(&format!("AUC {auc_b:.4}")) && stdout.contains(&format!("AUC {auc_b:.4}")));
    for needle in [
        "10 ms budget",
        "T=18: p50",
        "T=400: p50",
        "validation AUC",
        "n=",
        "Brier",
    ] {
        assert!(html.contains(needle), "report lacks {needle}");
    }

    let m = metrics_json(dir);
    let h = &m["holdout"];
    assert_eq!(h["bigru_auc"].as_f64().unwrap(), auc_b);
    assert_eq!(h["gbdt_auc"].as_f64().unwrap(), auc_g);
    assert_eq!(h["bigru_average_precision"].as_f64().unwrap(), ap_b);
    assert_eq!(
        h["gbdt_average_precision"].as_f64().unwrap(),
        average_precision(&labels, &gbdt).unwrap()
    );
    assert_eq!(h["gbdt_brier"].as_f64().unwrap(), brier_score(&labels, &gbdt).unwrap());
    assert_eq!(
        h["bigru_brier"].as_f64().unwrap(),
        brier_score(&labels, &bigru).unwrap()
    );
    assert_eq!(h["samples"], 600);
    assert_eq!(h["positives"], labels.iter().filter(|l| **l).count());
    assert_eq!(h["cut_points"], 600, "pre-existing key kept");
    assert_eq!(m["data"]["tickets"], 200, "pre-existing section kept");
    let lat: Value = serde_json::from_str(&latency_json()).unwrap();
    let l = &m["latency_ms"];
    assert_eq!(
        l["p50_t18"], lat["lengths"]["18"]["median_ms"],
        "overwritten from latency.json"
    );
    assert_eq!(l["p95_t112"], lat["lengths"]["112"]["p95_ms"]);
    assert_eq!(l["p99_t400"], lat["lengths"]["400"]["p99_ms"]);
    assert_eq!(l["p50_t9"], 0.1, "pre-existing latency key kept");

    // Idempotent: a second run gives the same page and the same metrics.
    assert_ok(&recur(&[
        &"report",
        &"--run",
        &dir,
        &"--title",
        &"Harbor <demo> & \"Q3\"",
    ]));
    assert_eq!(std::fs::read_to_string(dir.join("report.html")).unwrap(), html);
    assert_eq!(metrics_json(dir), m);
}

#[test]
fn report_works_without_the_optional_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let rows = synthetic_scores(200);
    report::write_scores(&dir.join("holdout_scores.csv"), &rows).unwrap();
    let stdout = assert_ok(&recur(&[&"report", &"--run", &dir]));
    assert!(
        stdout.contains("note: no metrics.jsonl") && stdout.contains("note: no latency.json"),
        "{stdout}"
    );
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert_eq!(html.matches("<svg").count(), 3, "ROC, PR, calibration");
    assert!(html.contains("No training curves"));
    assert!(html.contains("No latency figures"));
    let m = metrics_json(dir);
    assert_eq!(m["holdout"]["samples"], 200);
    assert!(m.get("latency_ms").is_none());

    // latency.json without samples: the table, no histogram.
    std::fs::write(
        dir.join("latency.json"),
        r#"{"lengths": {"18": {"median_ms": 0.2, "p95_ms": 0.3, "p99_ms": 0.4}}}"#,
    )
    .unwrap();
    assert_ok(&recur(&[&"report", &"--run", &dir]));
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert_eq!(html.matches("<svg").count(), 3);
    assert!(html.contains("No latency histogram") && html.contains("id=\"p50-t18\">0.200</td>"));
    assert_eq!(metrics_json(dir)["latency_ms"]["p99_t18"], 0.4);
}

#[test]
fn error_paths_name_the_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();

    assert_fails(
        &recur(&[&"report", &"--run", &dir.join("nope")]),
        &["--run", "no such directory"],
    );

    std::fs::write(dir.join("latency.json"), latency_json()).unwrap();
    assert_fails(
        &recur(&[&"report", &"--run", &dir]),
        &["holdout_scores.csv", "not found"],
    );

    let scores = dir.join("holdout_scores.csv");
    std::fs::write(
        &scores,
        "ticket_id,cut_ms,label,bigru,gbdt\nA,1,1,0.9,0.8\nB,2,0,0.7x,0.2\nC,3,0,0.1,0.3\n",
    )
    .unwrap();
    assert_fails(
        &recur(&[&"report", &"--run", &dir]),
        &["holdout_scores.csv:3:", "bigru `0.7x` is not a number"],
    );
    std::fs::write(&scores, "ticket_id,cut_ms,label,bigru,gbdt\nA,1,1,0.9,0.8\nB,2,0,0.7\n").unwrap();
    assert_fails(
        &recur(&[&"report", &"--run", &dir]),
        &["holdout_scores.csv:3:", "expected 5 fields"],
    );
    std::fs::write(&scores, "ticket_id,cut_ms,label,bigru,gbdt\nA,1,yes,0.9,0.8\n").unwrap();
    assert_fails(
        &recur(&[&"report", &"--run", &dir]),
        &["holdout_scores.csv:2:", "label `yes` is not 0 or 1"],
    );
    std::fs::write(&scores, "ticket_id,cut_ms,label,bigru,gbdt\nA,1,1,0.9,1.2\n").unwrap();
    assert_fails(
        &recur(&[&"report", &"--run", &dir]),
        &["holdout_scores.csv:2:", "gbdt 1.2 is outside [0, 1]"],
    );

    let one_class: Vec<ScoreRow> = synthetic_scores(50)
        .into_iter()
        .map(|r| ScoreRow { label: false, ..r })
        .collect();
    report::write_scores(&scores, &one_class).unwrap();
    assert_fails(
        &recur(&[&"report", &"--run", &dir]),
        &["holdout_scores.csv", "all 50 holdout rows have label 0", "both classes"],
    );

    report::write_scores(&scores, &synthetic_scores(50)).unwrap();
    std::fs::write(
        dir.join("metrics.jsonl"),
        "{\"epoch\": 1, \"train_loss\": 0.5}\n{\"epoch\": \"x\"}\n",
    )
    .unwrap();
    assert_fails(
        &recur(&[&"report", &"--run", &dir]),
        &["metrics.jsonl:2:", "invalid type"],
    );
    std::fs::remove_file(dir.join("metrics.jsonl")).unwrap();
    std::fs::write(
        dir.join("latency.json"),
        "{\"lengths\": {\"18\": {\"median_ms\": 0.2}}}",
    )
    .unwrap();
    assert_fails(&recur(&[&"report", &"--run", &dir]), &["latency.json", "p95_ms"]);
    assert!(!dir.join("report.html").exists(), "nothing written on error");
    assert!(!dir.join("metrics.json").exists(), "nothing written on error");
}
