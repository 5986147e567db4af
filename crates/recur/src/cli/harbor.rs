//! `recur harbor`: synthetic Harbor Support ticket logs (the escalation forecaster's data).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{ensure, Context};
use clap::Subcommand;
use recur_data::harbor::{self, HarborConfig, LogSummary};
use recur_data::writer;

/// Synthetic Harbor Support ticket logs.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    command: HarborCommand,
}

/// The `harbor` subcommands.
#[derive(Debug, Subcommand)]
enum HarborCommand {
    /// Generate a ticket log: writes DIR/events.csv and DIR/escalations.csv in the documented
    /// event-log format (docs/event-log.md); the story behind it is in docs/harbor.md.
    Generate(GenerateArgs),
}

/// `recur harbor generate` arguments.
#[derive(Debug, clap::Args)]
struct GenerateArgs {
    /// Number of tickets.
    #[arg(long, value_name = "N", default_value_t = 20_000)]
    tickets: usize,
    /// Seed; the same seed always gives the same log.
    #[arg(long, value_name = "S", default_value_t = 0)]
    seed: u64,
    /// Output directory (created if needed; existing files are replaced atomically).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

/// A validated `harbor` command.
#[derive(Debug)]
pub enum Plan {
    /// Generate `config` into the directory.
    Generate {
        /// What to generate.
        config: HarborConfig,
        /// Where to write it.
        out: PathBuf,
    },
}

impl TryFrom<Args> for Plan {
    type Error = anyhow::Error;

    fn try_from(a: Args) -> anyhow::Result<Self> {
        match a.command {
            HarborCommand::Generate(g) => {
                ensure!(g.tickets >= 1, "--tickets must be at least 1");
                let config = HarborConfig::new(g.tickets, g.seed);
                config.validate()?;
                Ok(Plan::Generate { config, out: g.out })
            }
        }
    }
}

impl Plan {
    /// Generates and writes the log, then prints a one-line summary.
    pub fn run(self, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
        match self {
            Plan::Generate { config, out: dir } => {
                let start = Instant::now();
                let log = harbor::generate(&config);
                let files = writer::write_event_log(&dir, &log)
                    .with_context(|| format!("cannot write the log to {}", dir.display()))?;
                writeln!(
                    out,
                    "{}; seed {}; wrote {} and {} in {:.1} s",
                    LogSummary::of(&log),
                    config.seed,
                    files.events.display(),
                    files.escalations.display(),
                    start.elapsed().as_secs_f64()
                )?;
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::super::Cli;

    #[test]
    fn generate_writes_both_files_and_prints_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let out_dir = dir.path().join("logs");
        let args = [
            "recur",
            "harbor",
            "generate",
            "--tickets",
            "300",
            "--seed",
            "5",
            "--out",
        ];
        let args = args
            .into_iter()
            .map(Into::into)
            .chain([out_dir.clone().into_os_string()]);
        let cli = Cli::try_parse_from(args).unwrap();
        let mut printed = Vec::new();
        cli.command.run(&mut printed).unwrap();
        let printed = String::from_utf8(printed).unwrap();
        assert_eq!(printed.lines().count(), 1, "{printed}");
        assert!(printed.starts_with("300 tickets, "), "{printed}");
        assert!(
            printed.contains("% escalated") && printed.contains("length median"),
            "{printed}"
        );
        let opts = recur_data::reader::ReadOptions::default();
        let (log, _) = recur_data::reader::read_log_dir(&out_dir, &opts).unwrap();
        let generated = recur_data::harbor::generate(&recur_data::harbor::HarborConfig::new(300, 5));
        // Debug text treats the NaN sentiments as equal.
        assert!(
            format!("{log:?}") == format!("{generated:?}"),
            "the files hold the generated log"
        );
    }

    #[test]
    fn zero_tickets_is_refused() {
        let cli = Cli::try_parse_from(["recur", "harbor", "generate", "--tickets", "0", "--out", "x"]).unwrap();
        let err = cli.command.run(&mut Vec::new()).unwrap_err();
        assert_eq!(err.to_string(), "--tickets must be at least 1");
    }
}
