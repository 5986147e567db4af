//! `recur bench` (being written).

use std::io::Write;
use std::process::ExitCode;

/// `recur bench` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `recur bench`.
pub fn run(_a: Args, _out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    anyhow::bail!("recur bench is not implemented yet")
}
