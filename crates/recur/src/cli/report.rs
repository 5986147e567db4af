//! `recur report` (being written).

use std::io::Write;
use std::process::ExitCode;

/// `recur report` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `recur report`.
pub fn run(_a: Args, _out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    anyhow::bail!("recur report is not implemented yet")
}
