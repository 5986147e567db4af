//! `recur demo`: the escalation forecaster end to end (generate or read logs, time split,
//! GBDT baseline, BiGRU, report, latency benchmark).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use recur::recipe::config::with_sets;
use recur::recipe::demo::{demo, DemoOptions, DemoSource};
use recur::recipe::escalation::EscalationConfig;
use recur::recipe::RunDir;

/// `recur demo` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A directory of ticket logs (`events.csv` or `.jsonl`, optional `escalations.csv`; see
    /// docs/event-log.md). Without it, synthetic Harbor tickets are generated.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["tickets", "seed"])]
    data: Option<PathBuf>,
    /// Tickets to generate.
    #[arg(long, value_name = "N", default_value_t = 20_000)]
    tickets: usize,
    /// Seed of the generator and of training.
    #[arg(long, value_name = "S", default_value_t = 1)]
    seed: u64,
    /// Run directory: model/, report.html, metrics.json, holdout_scores.csv, latency.json, …
    #[arg(long, value_name = "RUN", required_unless_present = "print_config")]
    out: Option<PathBuf>,
    /// Forecaster config (TOML); defaults are the guide's model and recipe.
    #[arg(long, value_name = "FILE.toml")]
    config: Option<PathBuf>,
    /// Override one config field, e.g. `--set training.epochs=2` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// With --data: skip bad rows of the log and count them (in metrics.json and the report)
    /// instead of failing on the first one.
    #[arg(long, requires = "data")]
    skip_bad_rows: bool,
    /// Seconds of latency measurement per length.
    #[arg(long, value_name = "S", default_value_t = 2.0)]
    bench_seconds: f64,
    /// Print the resolved config and exit.
    #[arg(long)]
    print_config: bool,
}

/// Runs `recur demo`.
pub fn run(a: Args, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let base = match &a.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
            toml::from_str::<EscalationConfig>(&text).with_context(|| format!("{}", p.display()))?
        }
        None => EscalationConfig::default(),
    };
    let mut cfg: EscalationConfig = with_sets(&base, &a.sets)?;
    if a.data.is_none() && !a.sets.iter().any(|s| s.starts_with("training.seed=")) {
        cfg.training.seed = a.seed;
    }
    cfg.training.validate()?;
    if a.print_config {
        write!(out, "{}", toml::to_string_pretty(&cfg)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    if !(a.bench_seconds.is_finite() && a.bench_seconds > 0.0) {
        bail!("--bench-seconds must be a positive number");
    }
    let source = match a.data {
        Some(d) => {
            if !d.is_dir() {
                bail!("--data {}: not a directory", d.display());
            }
            DemoSource::Dir(d)
        }
        None => DemoSource::Generate {
            tickets: a.tickets,
            seed: a.seed,
        },
    };
    let dir = a.out.expect("clap requires --out");
    let run = RunDir::create(&dir)?;
    let metrics = demo(
        &cfg,
        &source,
        &DemoOptions {
            bench_seconds: a.bench_seconds,
            skip_bad_rows: a.skip_bad_rows,
        },
        &run,
        out,
    )?;
    writeln!(out, "{}", serde_json::to_string_pretty(&metrics["holdout"])?)?;
    writeln!(out, "report: {}", dir.join("report.html").display())?;
    Ok(ExitCode::SUCCESS)
}
