//! `recur report`: the HTML report of an escalation-forecaster run directory.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use recur::report::{self, ReportOptions};

/// `recur report` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The run directory: holdout_scores.csv (required), metrics.jsonl, latency.json and
    /// metrics.json (optional). Writes DIR/report.html and merges into DIR/metrics.json.
    #[arg(long, value_name = "DIR")]
    run: PathBuf,
    /// The page title (default: "Escalation forecaster — DIRNAME").
    #[arg(long, value_name = "T")]
    title: Option<String>,
}

/// Runs `recur report`.
pub fn run(a: Args, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    if !a.run.is_dir() {
        bail!("--run {}: no such directory", a.run.display());
    }
    let opts = ReportOptions {
        title: a.title,
        ..ReportOptions::default()
    };
    let done = report::generate(&a.run, &opts).with_context(|| format!("writing the report of {}", a.run.display()))?;
    let h = &done.holdout;
    writeln!(
        out,
        "holdout: {} cut points, {} positive; BiGRU AUC {:.4} AP {:.4} Brier {:.4}; GBDT AUC {:.4} AP {:.4} Brier {:.4}",
        h.samples,
        h.positives,
        h.bigru.auc,
        h.bigru.average_precision,
        h.bigru.brier,
        h.gbdt.auc,
        h.gbdt.average_precision,
        h.gbdt.brier
    )?;
    for n in &done.notes {
        writeln!(out, "note: {n}")?;
    }
    writeln!(
        out,
        "wrote {} ({} figure{}), merged into {}",
        done.html_path.display(),
        done.figures,
        if done.figures == 1 { "" } else { "s" },
        done.metrics_path.display()
    )?;
    Ok(ExitCode::SUCCESS)
}
