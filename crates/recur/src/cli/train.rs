//! `recur train`: fit a model from data files with the default recipe or a recipe file.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use recur::recipe::{classify, forecast, RecipeConfig, RunDir};

/// `recur train` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Recipe file (TOML); every field defaults to the default recipe.
    #[arg(long, value_name = "FILE.toml")]
    config: Option<PathBuf>,
    /// Override one recipe field, e.g. `--set model.hidden_size=128` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Training data: a UEA/UCR `.ts` file (classification) or a CSV series (forecasting).
    #[arg(long, value_name = "TRAIN", required_unless_present = "print_config")]
    train: Option<PathBuf>,
    /// Test data in the same format (`.ts`: required; CSV: optional continuation of the
    /// series, else the last `forecast.horizon` points of TRAIN are held out).
    #[arg(long, value_name = "TEST")]
    test: Option<PathBuf>,
    /// Run directory for the checkpoint, logs, metrics and plot.
    #[arg(long, value_name = "DIR", required_unless_present = "print_config")]
    out: Option<PathBuf>,
    /// Seed of every random choice (overrides `training.seed`).
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Print the resolved recipe as TOML and exit.
    #[arg(long)]
    print_config: bool,
}

/// A validated `train` command.
#[derive(Debug)]
pub struct Plan {
    cfg: RecipeConfig,
    job: Option<(PathBuf, Option<PathBuf>, PathBuf)>,
}

impl TryFrom<Args> for Plan {
    type Error = anyhow::Error;

    fn try_from(a: Args) -> anyhow::Result<Self> {
        let cfg = RecipeConfig::resolve(a.config.as_deref(), &a.sets, a.seed)?;
        if a.print_config {
            return Ok(Plan { cfg, job: None });
        }
        let (train, out) = (a.train.expect("clap requires it"), a.out.expect("clap requires it"));
        if !train.is_file() {
            bail!("--train {}: no such file", train.display());
        }
        if let Some(t) = &a.test {
            if !t.is_file() {
                bail!("--test {}: no such file", t.display());
            }
        }
        Ok(Plan {
            cfg,
            job: Some((train, a.test, out)),
        })
    }
}

impl Plan {
    /// Trains and prints the final metrics.
    pub fn run(self, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
        let Some((train, test, dir)) = self.job else {
            write!(out, "{}", self.cfg.to_toml())?;
            return Ok(ExitCode::SUCCESS);
        };
        let run = RunDir::create(&dir)?;
        let ext = train
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        let metrics = match ext.as_str() {
            "ts" => {
                let test = test.context("--test is required with a .ts training file")?;
                classify::train(&self.cfg, &train, &test, &run, out)?
            }
            "csv" => forecast::train(&self.cfg, &train, test.as_deref(), &run, out)?,
            other => bail!(
                "--train {}: unsupported extension `.{other}` (expected .ts for classification or .csv for a series)",
                train.display()
            ),
        };
        writeln!(out, "{}", serde_json::to_string_pretty(&metrics)?)?;
        writeln!(out, "wrote {}", dir.display())?;
        Ok(ExitCode::SUCCESS)
    }
}
