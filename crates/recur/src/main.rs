//! The `recur` command-line tool. Each subcommand lives in its own module under `cli/` and goes
//! raw arguments → validated plan → run; the work itself is done by the `recur` library.
//!
//! Exit codes: 0 on success (a closed stdout pipe counts as success), 1 on a runtime error
//! (printed as `error: …` with its cause chain), 2 on a usage error (clap's convention).

mod cli;

/// mimalloc instead of the system allocator: the server's request path (JSON parsing, per-ticket
/// featurizing, per-batch engine buffers on the scoring threads) allocates on several threads
/// at once, where glibc malloc's arena locking and consolidation showed up at about 5% of
/// server CPU under load. Library crates keep the default allocator; only the binary chooses.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let cli = cli::Cli::parse();
    cli.command.run(&mut io::stdout().lock())
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}
