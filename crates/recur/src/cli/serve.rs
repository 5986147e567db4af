//! `recur serve`: the escalation forecaster as an HTTP routing webhook (docs/serving.md).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use recur::serve::{self, AppState, LoadedModel, ServeConfig, ShutdownPlan, TicketStore};

/// `recur serve` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The escalation checkpoint to serve (`RUN/model` of `recur demo`).
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// Address to listen on; loopback unless `--allow-remote`. Port 0 picks a free port
    /// (the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Allow a non-loopback listen address.
    #[arg(long)]
    allow_remote: bool,
    /// The model's name in the V2 API.
    #[arg(long, default_value = "escalation")]
    name: String,
    /// Scoring threads (default: the number of cores).
    #[arg(long)]
    workers: Option<usize>,
    /// Scoring jobs that may wait for a thread; when full, requests get 503 at once.
    #[arg(long, default_value_t = 128)]
    queue: usize,
    /// Requests in flight across the server; beyond that, 503 at once.
    #[arg(long, default_value_t = 512)]
    max_in_flight: usize,
    /// Largest request body in bytes (413 beyond).
    #[arg(long, default_value_t = 1 << 20)]
    max_body_bytes: usize,
    /// Events per ticket, per request and per open stream (422 beyond).
    #[arg(long, default_value_t = 2048)]
    max_events: usize,
    /// Tickets per batch request (422 beyond).
    #[arg(long, default_value_t = 256)]
    max_batch: usize,
    /// Single-ticket scores waiting together are run as one batch of up to this many
    /// (1 = never batch).
    #[arg(long, default_value_t = 8)]
    micro_batch: usize,
    /// A micro-batch stops growing at this many events, which bounds how long one batch holds a
    /// scoring thread (a longer ticket runs alone).
    #[arg(long, default_value_t = 256)]
    micro_batch_events: usize,
    /// Storage of the input and recurrent weights in inference: f16 halves the weight memory,
    /// int8 (per-row weight scales, activations quantized to 7 bits per call, integer dot
    /// products) is the fastest: about 2.5× f32 per ticket, with holdout AUC within 2e-4 of f32
    /// on the demo model (BENCHMARKS.md).
    #[arg(long, value_enum, default_value_t = super::bench::PrecisionArg::F32)]
    precision: super::bench::PrecisionArg,
    /// Per-request deadline in milliseconds (504 beyond).
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
    /// Streaming state database (redb); enables /v1/tickets/{id}/events. Open tickets survive
    /// restarts.
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Enables POST /admin/reload, protected by the bearer token in this file (at least 16
    /// characters). Off by default.
    #[arg(long, value_name = "FILE")]
    admin_token_file: Option<PathBuf>,
    /// After SIGTERM, milliseconds of readiness false (new requests refused) before the
    /// listener closes.
    #[arg(long, default_value_t = 0)]
    shutdown_delay_ms: u64,
    /// The most seconds in-flight requests get to finish after SIGTERM.
    #[arg(long, default_value_t = 30)]
    drain_secs: u64,
    /// Milliseconds of artificial delay per scoring job (tests of overload and draining).
    #[arg(long, default_value_t = 0, hide = true)]
    debug_delay_ms: u64,
}

/// Runs the server until SIGTERM/SIGINT.
pub fn run(a: Args, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    ensure!(
        a.addr.ip().is_loopback() || a.allow_remote,
        "--addr {} is not loopback; pass --allow-remote to listen there",
        a.addr
    );
    ensure!(
        a.queue >= 1 && a.max_in_flight >= 1 && a.max_events >= 1 && a.max_batch >= 1,
        "limits must be ≥ 1"
    );
    let admin_token = match &a.admin_token_file {
        Some(p) => {
            let t = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            let t = t.trim().to_string();
            if t.len() < 16 {
                bail!("the admin token in {} must have at least 16 characters", p.display());
            }
            Some(t)
        }
        None => None,
    };
    let cfg = ServeConfig {
        name: a.name,
        workers: a.workers.unwrap_or(ServeConfig::default().workers).max(1),
        queue: a.queue,
        max_in_flight: a.max_in_flight,
        max_body_bytes: a.max_body_bytes,
        max_events: a.max_events,
        max_batch: a.max_batch,
        timeout: Duration::from_millis(a.timeout_ms),
        admin_token,
        micro_batch: a.micro_batch.max(1),
        micro_batch_events: a.micro_batch_events,
        debug_delay: Duration::from_millis(a.debug_delay_ms),
        precision: a.precision.into(),
    };
    let model =
        LoadedModel::load_with(&a.model, cfg.precision).with_context(|| format!("loading {}", a.model.display()))?;
    let store = match &a.state {
        Some(p) => Some(TicketStore::open(p).with_context(|| format!("opening the state database {}", p.display()))?),
        None => None,
    };
    let summary = format!(
        "model {} version {} ({}, {} weights, threshold {:.4}, streaming {})",
        a.model.display(),
        model.version,
        recur::describe_config(&model.model.config().rnn),
        cfg.precision.name(),
        model.threshold,
        if !model.streamable() {
            "unavailable: bidirectional"
        } else if store.is_some() {
            "on"
        } else {
            "off: no --state"
        }
    );
    let state = AppState::new(cfg, model, a.model.clone(), store);
    let plan = ShutdownPlan {
        delay: Duration::from_millis(a.shutdown_delay_ms),
        drain_cap: Duration::from_secs(a.drain_secs),
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(a.addr)
            .await
            .with_context(|| format!("binding {}", a.addr))?;
        writeln!(out, "{summary}")?;
        writeln!(out, "listening on http://{}", listener.local_addr()?)?;
        out.flush()?;
        serve::run(listener, state, plan, std::future::pending()).await?;
        writeln!(out, "stopped")?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
