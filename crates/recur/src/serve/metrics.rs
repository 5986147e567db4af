//! Prometheus text-format metrics kept by the server itself (no exporter, no extra listener):
//! request counters and latency histograms with explicit buckets per route, rejections by
//! reason, unknown event types, reloads, and the served model's version.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Latency bucket upper bounds, seconds.
pub const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// All counters. Cheap enough to update on every request.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    rejections: Mutex<BTreeMap<&'static str, u64>>,
    /// Events whose type mapped to the unknown bucket.
    pub unknown_event_types: AtomicU64,
    /// Tickets scored (one per ticket in a batch, one per streamed append).
    pub scores: AtomicU64,
    /// Model calls of the micro-batching scorer (`recur_scores_total` over this is the mean
    /// batch size of `/v1/score`).
    pub score_batches: std::sync::Arc<AtomicU64>,
    /// Reloads that swapped in a new model.
    pub reload_success: AtomicU64,
    /// Reload candidates rejected (the old model kept serving).
    pub reload_failure: AtomicU64,
}

impl Metrics {
    /// Records one finished request on `route` (a route template, never a raw path).
    pub fn record(&self, route: &str, status: u16, seconds: f64, rejection: Option<&'static str>) {
        *self
            .requests
            .lock()
            .expect("metrics lock")
            .entry((route.to_string(), status))
            .or_default() += 1;
        {
            let mut l = self.latency.lock().expect("metrics lock");
            let h = l.entry(route.to_string()).or_default();
            h.count += 1;
            h.sum += seconds;
            if let Some(i) = BUCKETS.iter().position(|&b| seconds <= b) {
                h.counts[i] += 1;
            }
        }
        if let Some(r) = rejection {
            *self.rejections.lock().expect("metrics lock").entry(r).or_default() += 1;
        }
    }

    /// A rejection counter's value (for tests and logs).
    pub fn rejections(&self, reason: &str) -> u64 {
        self.rejections
            .lock()
            .expect("metrics lock")
            .get(reason)
            .copied()
            .unwrap_or(0)
    }

    /// The text exposition; `gauges` are extra `(name, help, value)` lines and `model` is
    /// `(name, version)`.
    pub fn render(&self, model: (&str, &str), gauges: &[(&str, &str, f64)]) -> String {
        let mut s = String::new();
        let head = |s: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        head(
            &mut s,
            "recur_requests_total",
            "counter",
            "HTTP requests by route and status.",
        );
        for ((route, status), n) in self.requests.lock().expect("metrics lock").iter() {
            let _ = writeln!(s, "recur_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}");
        }
        head(
            &mut s,
            "recur_request_duration_seconds",
            "histogram",
            "Request latency by route, from the first byte of the request to the response.",
        );
        for (route, h) in self.latency.lock().expect("metrics lock").iter() {
            let mut cum = 0;
            for (b, c) in BUCKETS.iter().zip(&h.counts) {
                cum += c;
                let _ = writeln!(
                    s,
                    "recur_request_duration_seconds_bucket{{route=\"{route}\",le=\"{b}\"}} {cum}"
                );
            }
            let _ = writeln!(
                s,
                "recur_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(s, "recur_request_duration_seconds_sum{{route=\"{route}\"}} {}", h.sum);
            let _ = writeln!(
                s,
                "recur_request_duration_seconds_count{{route=\"{route}\"}} {}",
                h.count
            );
        }
        head(
            &mut s,
            "recur_rejections_total",
            "counter",
            "Refused requests by reason.",
        );
        for (r, n) in self.rejections.lock().expect("metrics lock").iter() {
            let _ = writeln!(s, "recur_rejections_total{{reason=\"{r}\"}} {n}");
        }
        let counters = [
            (
                "recur_unknown_event_types_total",
                "Events whose type was not in the vocabulary (scored as the unknown bucket).",
                &self.unknown_event_types,
            ),
            ("recur_scores_total", "Tickets scored.", &self.scores),
            (
                "recur_score_batches_total",
                "Model calls that scored single-ticket requests (micro-batched).",
                &*self.score_batches,
            ),
        ];
        for (name, help, v) in counters {
            head(&mut s, name, "counter", help);
            let _ = writeln!(s, "{name} {}", v.load(Ordering::Relaxed));
        }
        head(&mut s, "recur_reloads_total", "counter", "Model reloads by result.");
        let (ok, bad) = (&self.reload_success, &self.reload_failure);
        let _ = writeln!(
            s,
            "recur_reloads_total{{result=\"success\"}} {}",
            ok.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            s,
            "recur_reloads_total{{result=\"failure\"}} {}",
            bad.load(Ordering::Relaxed)
        );
        head(&mut s, "recur_model_info", "gauge", "The served model (always 1).");
        let _ = writeln!(s, "recur_model_info{{name=\"{}\",version=\"{}\"}} 1", model.0, model.1);
        for (name, help, v) in gauges {
            head(&mut s, name, "gauge", help);
            let _ = writeln!(s, "{name} {v}");
        }
        s
    }
}
