//! Command-line definition: one module per subcommand, each with its clap `Args`, a validated
//! `Plan` built from them, and `run`.

mod bench;
mod demo;
mod eval;
mod harbor;
mod import_torch;
mod loadtest;
mod report;
mod run;
mod serve;
mod train;

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// recur: fast RNN/LSTM/GRU models on the CPU, numerically matching PyTorch.
#[derive(Debug, Parser)]
#[command(name = "recur", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Import a PyTorch nn.RNN / nn.LSTM / nn.GRU state_dict saved with safetensors into a
    /// recur model directory.
    ImportTorch(import_torch::Args),
    /// Run a model on a batch of sequences stored as .npy files.
    Run(run::Args),
    /// Synthetic Harbor Support ticket logs (`recur harbor generate`).
    Harbor(harbor::Args),
    /// Train a model from data files (`.ts` classification, CSV series forecasting) with the
    /// default recipe or a recipe file; writes a run directory.
    Train(train::Args),
    /// Score labelled data with a trained checkpoint and print the metrics as JSON.
    Eval(eval::EvalArgs),
    /// Predict with a trained checkpoint.
    Predict(eval::PredictArgs),
    /// Measure single-request CPU latency of a model directory or checkpoint.
    Bench(bench::Args),
    /// Write the HTML report of a forecaster run directory.
    Report(report::Args),
    /// The escalation forecaster end to end: ticket logs (generated or yours), time split,
    /// BiGRU vs gradient-boosted trees on the holdout, HTML report, latency benchmark.
    Demo(demo::Args),
    /// Serve an escalation checkpoint over HTTP: scoring, KServe V2, streaming, metrics,
    /// hot reload (docs/serving.md).
    Serve(serve::Args),
    /// A bounded load test of `recur serve` on loopback: throughput and p50/p95/p99.
    Loadtest(loadtest::Args),
}

impl Command {
    /// Validates the arguments into a plan and runs it; human-readable output goes to `out`.
    pub fn run(self, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
        match self {
            Command::ImportTorch(args) => import_torch::Plan::try_from(args)?.run(out),
            Command::Run(args) => run::Plan::try_from(args)?.run(out),
            Command::Harbor(args) => harbor::Plan::try_from(args)?.run(out),
            Command::Train(args) => train::Plan::try_from(args)?.run(out),
            Command::Eval(args) => eval::eval(args, out),
            Command::Predict(args) => eval::predict(args, out),
            Command::Bench(args) => bench::run(args, out),
            Command::Report(args) => report::run(args, out),
            Command::Demo(args) => demo::run(args, out),
            Command::Serve(args) => serve::run(args, out),
            Command::Loadtest(args) => loadtest::run(args, out),
        }
    }
}
