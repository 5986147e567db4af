//! `recur loadtest`: a bounded load test of `recur serve` on loopback.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::ensure;
use recur::serve::loadtest::{self, LoadPlan};

/// `recur loadtest` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The server, `http://HOST:PORT[/PATH]` (path default `/v1/score`); loopback only.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Stop after this many requests.
    #[arg(long, default_value_t = 20_000)]
    requests: u64,
    /// Stop after this many seconds (at most 600).
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// Open loop at this many requests per second (latency counted from each request's due
    /// time); without it, closed loop (each connection sends as soon as it has an answer).
    #[arg(long)]
    rate: Option<f64>,
    /// Distinct synthetic Harbor tickets to cycle through.
    #[arg(long, default_value_t = 2000)]
    tickets: usize,
    /// Seed of the ticket generator.
    #[arg(long, default_value_t = 11)]
    seed: u64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs the load test and prints the report; exits 1 when any request failed.
pub fn run(a: Args, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let target = loadtest::loopback_target(&a.url)?;
    ensure!(
        a.duration > 0.0 && a.duration <= 600.0,
        "--duration must be in (0, 600] seconds"
    );
    ensure!(
        a.tickets >= 1 && a.tickets <= 100_000,
        "--tickets must be in 1..=100000"
    );
    ensure!(a.requests <= 10_000_000, "--requests must be at most 10,000,000");
    let log = loadtest::harbor_log(a.tickets, a.seed);
    let bodies: Vec<_> = loadtest::score_bodies(&log)
        .into_iter()
        .zip(&log.tickets)
        .map(|(b, t)| (b, t.events.len()))
        .collect();
    let plan = LoadPlan {
        target,
        connections: a.connections,
        requests: a.requests,
        duration: Duration::from_secs_f64(a.duration),
        rate: a.rate,
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let r = rt.block_on(loadtest::run(plan, bodies))?;
    if a.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&r)?)?;
    } else {
        writeln!(
            out,
            "{} requests in {:.2} s over {} connections ({}): {:.0} ok/s, {} ok, {} errors {:?}",
            r.requests,
            r.seconds,
            r.connections,
            r.rate
                .map_or("closed loop".into(), |r| format!("open loop at {r} req/s")),
            r.throughput,
            r.ok,
            r.requests - r.ok,
            r.errors
        )?;
        writeln!(
            out,
            "latency ms: p50 {:.3}  p95 {:.3}  p99 {:.3}  max {:.3}",
            r.p50_ms, r.p95_ms, r.p99_ms, r.max_ms
        )?;
        writeln!(
            out,
            "events per request: median {}, p95 {}, mean {:.1}",
            r.events_p50, r.events_p95, r.events_mean
        )?;
    }
    Ok(if r.ok == r.requests {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
