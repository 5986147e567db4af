//! What every handler shares: the configuration, the swappable model, the CPU pool, the
//! metrics, the streaming store and the drain flag; and hot reload.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use super::error::ApiError;
use super::metrics::Metrics;
use super::model::{LoadError, LoadedModel};
use super::pool::Pool;
use super::store::TicketStore;

/// Server settings (all validated by the CLI plan).
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// The model's name in the V2 API (`/v2/models/{name}`).
    pub name: String,
    /// Scoring threads.
    pub workers: usize,
    /// Jobs that may wait for a scoring thread; beyond that, 503 at once.
    pub queue: usize,
    /// Requests in flight across the whole router; beyond that, 503 at once.
    pub max_in_flight: usize,
    /// Largest accepted body (bytes); beyond that, 413.
    pub max_body_bytes: usize,
    /// Events per ticket (a scoring request, or an open stream); beyond that, 422.
    pub max_events: usize,
    /// Tickets per batch request; beyond that, 422.
    pub max_batch: usize,
    /// Per-request deadline; past it, 504.
    pub timeout: Duration,
    /// Admin token; `None` = admin endpoints off (404).
    pub admin_token: Option<String>,
    /// Single-ticket scores run together as one batch when this many are waiting.
    pub micro_batch: usize,
    /// A micro-batch stops growing at this many events (a longer ticket runs alone).
    pub micro_batch_events: usize,
    /// Artificial delay per scoring job (tests of overload, timeouts and draining only).
    pub debug_delay: Duration,
    /// Storage of the recurrent weights in inference (f32, f16 or int8), for the served model
    /// and every reloaded one.
    pub precision: recur_nn::Precision,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            name: "escalation".into(),
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            queue: 128,
            max_in_flight: 512,
            max_body_bytes: 1 << 20,
            max_events: 2048,
            max_batch: 256,
            timeout: Duration::from_secs(2),
            admin_token: None,
            micro_batch: 8,
            micro_batch_events: 256,
            debug_delay: Duration::ZERO,
            precision: recur_nn::Precision::F32,
        }
    }
}

/// Shared server state.
#[derive(Debug)]
pub struct AppState {
    /// Settings.
    pub cfg: ServeConfig,
    /// The served model, swapped atomically on reload.
    pub model: ArcSwap<LoadedModel>,
    /// Where reloads read the candidate from.
    pub model_dir: PathBuf,
    /// The scoring threads.
    pub pool: Pool,
    /// Counters and histograms.
    pub metrics: Metrics,
    /// Open tickets of the streaming endpoints (`None` without `--state`).
    pub store: Option<Arc<TicketStore>>,
    /// Set on SIGTERM: readiness is false and new requests are refused.
    pub draining: AtomicBool,
    /// Requests in flight (for the global limit).
    pub in_flight: AtomicUsize,
    reload_lock: tokio::sync::Mutex<()>,
}

impl AppState {
    /// State serving `model`, loaded from `model_dir`.
    pub fn new(cfg: ServeConfig, model: LoadedModel, model_dir: PathBuf, store: Option<TicketStore>) -> Arc<Self> {
        let metrics = Metrics::default();
        Arc::new(AppState {
            pool: Pool::new(
                cfg.workers,
                cfg.queue,
                (cfg.micro_batch, cfg.micro_batch_events),
                cfg.debug_delay,
                metrics.score_batches.clone(),
            ),
            cfg,
            model: ArcSwap::from_pointee(model),
            model_dir,
            metrics,
            store: store.map(Arc::new),
            draining: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            reload_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// Ready to take traffic: not draining.
    pub fn ready(&self) -> bool {
        !self.draining.load(Ordering::SeqCst)
    }

    /// Starts draining: readiness turns false and new requests get 503.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Runs `f` on the CPU pool with the request deadline.
    pub async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<R, ApiError> + Send + 'static,
    ) -> Result<R, ApiError> {
        self.pool.run(self.cfg.timeout, f).await
    }

    /// Loads and verifies the candidate in `model_dir` off the request path, then swaps it in;
    /// a bad candidate leaves the old model serving and counts a failure. Returns the new
    /// version.
    pub async fn reload(self: &Arc<Self>) -> Result<String, LoadError> {
        let _one_at_a_time = self.reload_lock.lock().await;
        let dir = self.model_dir.clone();
        let precision = self.cfg.precision;
        let loaded = tokio::task::spawn_blocking(move || LoadedModel::load_with(&dir, precision))
            .await
            .unwrap_or_else(|e| Err(LoadError::WarmUp(format!("loader panicked: {e}"))));
        let result = loaded.and_then(|m| {
            m.check_replaces(&self.model.load())?;
            Ok(m)
        });
        match result {
            Ok(m) => {
                let version = m.version.clone();
                self.model.store(Arc::new(m));
                self.metrics.reload_success.fetch_add(1, Ordering::Relaxed);
                eprintln!("recur serve: reloaded {} (version {version})", self.model_dir.display());
                Ok(version)
            }
            Err(e) => {
                self.metrics.reload_failure.fetch_add(1, Ordering::Relaxed);
                eprintln!("recur serve: reload rejected, the old model keeps serving: {e}");
                Err(e)
            }
        }
    }
}
