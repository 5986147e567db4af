//! `recur demo`: the escalation forecaster end to end on a ticket log: time split, labels,
//! GBDT baseline, BiGRU, holdout comparison, latency benchmark, HTML report.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use recur_data::features::Preprocessor;
use recur_data::harbor::{generate, HarborConfig};
use recur_data::reader::{read_log_dir, ReadOptions};
use recur_data::schema::EventLog;
use recur_data::split::split_log;
use recur_data::writer;
use serde_json::{json, Value};

use super::escalation::{self, EscalationConfig};
use super::{RecipeError, Result, RunDir};
use crate::bench::{bench_sequence_model, BenchOptions};
use crate::report::{generate as write_report, ReportOptions};
use crate::report::{write_scores, ScoreRow};

/// Where the tickets come from.
#[derive(Clone, Debug)]
pub enum DemoSource {
    /// Generate synthetic Harbor tickets.
    Generate {
        /// Tickets.
        tickets: usize,
        /// Seed.
        seed: u64,
    },
    /// A directory with `events.csv` (or `.jsonl`) and optionally `escalations.csv`.
    Dir(PathBuf),
}

/// Demo settings besides the forecaster's config.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Seconds per benchmarked length.
    pub bench_seconds: f64,
    /// Skip and count bad rows of a user's log instead of failing on the first (the count and
    /// the first examples go to `metrics.json` under `input` and to the report).
    pub skip_bad_rows: bool,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            bench_seconds: 2.0,
            skip_bad_rows: false,
        }
    }
}

fn say(out: &mut dyn Write, msg: String) -> Result<()> {
    writeln!(out, "{msg}").map_err(|e| RecipeError::io(Path::new("<stdout>"), e))
}

/// The log and what reading it found (`metrics.json` `input`).
fn load_log(source: &DemoSource, opts: &DemoOptions, run: &RunDir, out: &mut dyn Write) -> Result<(EventLog, Value)> {
    match source {
        DemoSource::Generate { tickets, seed } => {
            let cfg = HarborConfig::new(*tickets, *seed);
            cfg.validate().map_err(|e| RecipeError::Invalid(e.to_string()))?;
            let log = generate(&cfg);
            let dir = run.root.join("data");
            std::fs::create_dir_all(&dir).map_err(|e| RecipeError::io(&dir, e))?;
            writer::write_event_log(&dir, &log).map_err(|e| RecipeError::Invalid(e.to_string()))?;
            say(
                out,
                format!(
                    "generated {tickets} Harbor tickets (seed {seed}) into {}",
                    dir.display()
                ),
            )?;
            let events: usize = log.tickets.iter().map(|t| t.events.len()).sum();
            let input =
                json!({"source": "generated", "tickets": tickets, "seed": seed, "events": events, "bad_rows": 0});
            Ok((log, input))
        }
        DemoSource::Dir(dir) => {
            let read = ReadOptions {
                skip_bad_rows: opts.skip_bad_rows,
                ..ReadOptions::default()
            };
            let (log, report) = read_log_dir(dir, &read).map_err(|e| RecipeError::Invalid(e.to_string()))?;
            say(
                out,
                format!(
                    "read {} tickets ({} events) from {}",
                    report.tickets,
                    report.events,
                    dir.display()
                ),
            )?;
            if report.bad_rows > 0 {
                say(
                    out,
                    format!(
                        "warning: skipped {} bad rows (--skip-bad-rows); the first: {}",
                        report.bad_rows,
                        report
                            .bad_row_examples
                            .first()
                            .map(|b| b.to_string())
                            .unwrap_or_default()
                    ),
                )?;
            }
            let input = json!({
                "source": dir.display().to_string(),
                "rows": report.rows,
                "tickets": report.tickets,
                "events": report.events,
                "escalated_tickets": report.escalated_tickets,
                "bad_rows": report.bad_rows,
                "bad_row_examples": report.bad_row_examples.iter().map(|b| b.to_string()).collect::<Vec<_>>(),
            });
            Ok((log, input))
        }
    }
}

/// Runs the whole job and returns `metrics.json`.
pub fn demo(
    cfg: &EscalationConfig,
    source: &DemoSource,
    opts: &DemoOptions,
    run: &RunDir,
    out: &mut dyn Write,
) -> Result<Value> {
    let started = Instant::now();
    let (log, input) = load_log(source, opts, run, out)?;
    let split = split_log(&log, &cfg.split).map_err(|e| RecipeError::Invalid(e.to_string()))?;
    let s = escalation::samples(cfg, &log, &split)?;
    let pre =
        Preprocessor::fit(&log, &s.train, cfg.features.clone()).map_err(|e| RecipeError::Invalid(e.to_string()))?;
    let yh: Vec<bool> = s.holdout.iter().map(|x| x.label).collect();
    let positives = |v: &[recur_data::labels::Sample]| v.iter().filter(|x| x.label).count();
    say(
        out,
        format!(
            "time split: train {} cut points ({} positive), validation {} ({}), holdout {} ({})",
            s.train.len(),
            positives(&s.train),
            s.validation.len(),
            positives(&s.validation),
            s.holdout.len(),
            positives(&s.holdout)
        ),
    )?;
    if positives(&s.holdout) == 0 || positives(&s.holdout) == s.holdout.len() {
        return Err(RecipeError::Invalid(
            "the holdout window needs both escalating and quiet cut points; use more tickets".into(),
        ));
    }
    let t = Instant::now();
    let gbdt = escalation::gbdt_holdout(cfg, &log, &s, &pre)?;
    let gbdt_secs = t.elapsed().as_secs_f64();
    say(out, format!("GBDT baseline trained in {gbdt_secs:.1} s"))?;
    // The same trees on the guide's narrower flat features, to show what the extra aggregates buy.
    let gbdt_guide = escalation::gbdt_holdout_on(cfg, &log, &s, &pre, &escalation::guide_feature)?;
    let t = Instant::now();
    let trained = escalation::train_bigru(cfg, &log, &s, &pre, run, out)?;
    let bigru_secs = t.elapsed().as_secs_f64();
    let bigru = escalation::score(&trained.model, &log, &pre, &s.holdout)?;
    let mut holdout = escalation::holdout_metrics(&yh, &bigru, &gbdt)?;
    holdout.insert(
        "gbdt_guide_features_auc".into(),
        recur_train::metrics::roc_auc(&yh, &gbdt_guide).map_err(|e| RecipeError::Invalid(e.to_string()))?,
    );
    holdout.insert(
        "gbdt_guide_features_average_precision".into(),
        recur_train::metrics::average_precision(&yh, &gbdt_guide).map_err(|e| RecipeError::Invalid(e.to_string()))?,
    );
    let rows: Vec<ScoreRow> = s
        .holdout
        .iter()
        .zip(bigru.iter().zip(&gbdt))
        .map(|(x, (&b, &g))| ScoreRow {
            ticket_id: log.tickets[x.ticket].id.clone(),
            cut_ms: x.cut_ms,
            label: x.label,
            bigru: b,
            gbdt: g,
        })
        .collect();
    write_scores(&run.root.join("holdout_scores.csv"), &rows).map_err(|e| RecipeError::Invalid(e.to_string()))?;
    let epochs: Vec<(String, recur_train::trainer::EpochRecord)> = trained
        .records
        .iter()
        .map(|r| ("train".to_string(), r.clone()))
        .collect();
    run.write_epochs(&epochs)?;

    // Latency at the guide's lengths and at this log's median, p95 and longest ticket.
    let (median, p95, longest) = escalation::length_profile(&log);
    let mut lengths = vec![18, 112, median, p95, longest.min(2000)];
    lengths.sort_unstable();
    lengths.dedup();
    let bench = bench_sequence_model(
        &trained.model,
        &BenchOptions {
            lengths,
            seconds: opts.bench_seconds,
            ..BenchOptions::default()
        },
    )
    .map_err(|e| RecipeError::Invalid(e.to_string()))?;
    run.write("latency.json", bench.to_json_string(true).as_bytes())?;
    let mut latency = serde_json::Map::new();
    for l in &bench.per_length {
        latency.insert(format!("p50_t{}", l.length), json!(l.median_ms));
        latency.insert(format!("p95_t{}", l.length), json!(l.p95_ms));
        latency.insert(format!("p99_t{}", l.length), json!(l.p99_ms));
    }
    let metrics = json!({
        "input": input,
        "holdout": holdout,
        "latency_ms": latency,
        "lengths": {"median": median, "p95": p95, "max": longest},
        "threshold": trained.threshold,
        "seconds": {"gbdt": gbdt_secs, "bigru": bigru_secs, "total": started.elapsed().as_secs_f64()},
        "config": serde_json::to_value(cfg).expect("config serializes"),
    });
    run.write_metrics(&metrics)?;
    write_report(&run.root, &ReportOptions::default()).map_err(|e| RecipeError::Invalid(e.to_string()))?;
    // The report merged its figures into metrics.json; return the merged file.
    let merged: Value = serde_json::from_slice(
        &std::fs::read(run.root.join("metrics.json"))
            .map_err(|e| RecipeError::io(&run.root.join("metrics.json"), e))?,
    )
    .map_err(|e| RecipeError::Invalid(format!("metrics.json: {e}")))?;
    say(
        out,
        format!(
            "holdout AUC: BiGRU {:.4}, GBDT {:.4} (on the guide's features only: {:.4}) ({} cut points, {} escalating); latency p95 at 18 / 112 events: {:.3} / {:.3} ms; {:.0} s in all",
            holdout["bigru_auc"],
            holdout["gbdt_auc"],
            holdout["gbdt_guide_features_auc"],
            holdout["samples"],
            holdout["positives"],
            latency.get("p95_t18").and_then(Value::as_f64).unwrap_or(f64::NAN),
            latency.get("p95_t112").and_then(Value::as_f64).unwrap_or(f64::NAN),
            started.elapsed().as_secs_f64()
        ),
    )?;
    Ok(merged)
}
