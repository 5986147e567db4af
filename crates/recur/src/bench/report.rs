//! The report of a latency benchmark: per-length statistics, nearest-rank percentiles, the
//! table and the JSON object `recur bench` prints.

use std::path::PathBuf;

use recur_nn::{KernelChoice, Precision};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use super::{kernel_choice_name, ModelKind};

/// The measurements of one sequence length.
#[derive(Clone, Debug, PartialEq)]
pub struct LengthStats {
    /// The sequence length `T`.
    pub length: usize,
    /// Every timed call in milliseconds, in the order measured.
    pub samples_ms: Vec<f64>,
    /// 50th percentile (nearest rank).
    pub median_ms: f64,
    /// 95th percentile (nearest rank).
    pub p95_ms: f64,
    /// 99th percentile (nearest rank).
    pub p99_ms: f64,
    /// Arithmetic mean.
    pub mean_ms: f64,
    /// Fastest call.
    pub min_ms: f64,
}

impl LengthStats {
    /// Summarizes `samples_ms` (milliseconds, any order); `None` if there are none.
    pub fn from_samples(length: usize, samples_ms: Vec<f64>) -> Option<Self> {
        let mut sorted = samples_ms.clone();
        sorted.sort_by(f64::total_cmp);
        Some(LengthStats {
            length,
            median_ms: percentile(&sorted, 50.0)?,
            p95_ms: percentile(&sorted, 95.0)?,
            p99_ms: percentile(&sorted, 99.0)?,
            mean_ms: sorted.iter().sum::<f64>() / sorted.len() as f64,
            min_ms: sorted[0],
            samples_ms,
        })
    }

    /// The number of timed calls.
    pub fn iterations(&self) -> usize {
        self.samples_ms.len()
    }
}

/// The `p`-th percentile of `sorted` (ascending) by the nearest-rank method: the sample of
/// 1-based rank `⌈p/100 · n⌉`, or the first sample for `p = 0`. It is always one of the
/// samples (no interpolation). `None` for no samples.
///
/// # Panics
///
/// If `p` is not within `0..=100`.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    assert!((0.0..=100.0).contains(&p), "percentile {p} outside 0..=100");
    if sorted.is_empty() {
        return None;
    }
    // Multiply before dividing so that an exact rank (e.g. 95·20/100 = 19) stays exact.
    let rank = (p * sorted.len() as f64 / 100.0).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The result of a benchmark.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchReport {
    /// The model directory or checkpoint measured (`None` for an in-memory model).
    pub model: Option<PathBuf>,
    /// What was measured.
    pub kind: ModelKind,
    /// The kernel family asked for.
    pub kernels: KernelChoice,
    /// The kernels actually used ([`recur_kernels::Kernels::name`]: `avx2+fma`, `portable`,
    /// `reference`).
    pub simd: String,
    /// Threads per forward pass (1 or 2).
    pub threads: usize,
    /// Storage precision of the input and recurrent weights.
    pub precision: Precision,
    /// Sequences per request.
    pub batch: usize,
    /// One entry per length, in the order asked for.
    pub per_length: Vec<LengthStats>,
}

impl BenchReport {
    /// The report as one JSON object:
    ///
    /// ```json
    /// {"model": "<dir>" | null, "kind": "rnn" | "sequence", "kernels": "best" | "reference",
    ///  "simd": "avx2+fma", "threads": 1, "precision": "f32" | "f16" | "int8", "batch": 1,
    ///  "lengths": {"18": {"median_ms": …, "p95_ms": …, "p99_ms": …, "mean_ms": …,
    ///                     "min_ms": …, "iterations": …, "samples_ms": […]}, …}}
    /// ```
    ///
    /// `samples_ms` (the raw samples, in measured order) only with `include_samples`. A
    /// [`serde_json::Value`] keeps object keys sorted in this build, so the `lengths` keys
    /// come out in string order here; [`BenchReport::to_json_string`] keeps the order asked for.
    pub fn to_json(&self, include_samples: bool) -> serde_json::Value {
        serde_json::to_value(JsonView {
            report: self,
            include_samples,
        })
        .expect("a bench report serializes")
    }

    /// The same object as [`BenchReport::to_json`], as compact JSON text with the keys in
    /// schema order and `lengths` in the order asked for.
    pub fn to_json_string(&self, include_samples: bool) -> String {
        serde_json::to_string(&JsonView {
            report: self,
            include_samples,
        })
        .expect("a bench report serializes")
    }

    /// A human-readable table: one line of context, then length, median, p95, p99 (ms) and
    /// iterations per length.
    pub fn table(&self) -> String {
        let model = self
            .model
            .as_ref()
            .map_or_else(|| "(in memory)".to_string(), |p| p.display().to_string());
        let mut s = format!(
            "{model}: {}, kernels {} ({}), threads {}, precision {}, batch {}\n",
            self.kind,
            kernel_choice_name(self.kernels),
            self.simd,
            self.threads,
            self.precision.name(),
            self.batch
        );
        s += &format!(
            "{:>8}  {:>11}  {:>11}  {:>11}  {:>10}\n",
            "length", "median ms", "p95 ms", "p99 ms", "iterations"
        );
        for l in &self.per_length {
            s += &format!(
                "{:>8}  {:>11.4}  {:>11.4}  {:>11.4}  {:>10}\n",
                l.length,
                l.median_ms,
                l.p95_ms,
                l.p99_ms,
                l.iterations()
            );
        }
        s
    }
}

/// Serializes a report in schema order (see [`BenchReport::to_json`]).
struct JsonView<'a> {
    report: &'a BenchReport,
    include_samples: bool,
}

struct LengthsView<'a>(&'a [LengthStats], bool);

struct StatsView<'a>(&'a LengthStats, bool);

impl Serialize for JsonView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.report;
        let mut m = s.serialize_map(Some(8))?;
        m.serialize_entry("model", &r.model.as_ref().map(|p| p.display().to_string()))?;
        m.serialize_entry("kind", r.kind.as_str())?;
        m.serialize_entry("kernels", kernel_choice_name(r.kernels))?;
        m.serialize_entry("simd", &r.simd)?;
        m.serialize_entry("threads", &r.threads)?;
        m.serialize_entry("precision", r.precision.name())?;
        m.serialize_entry("batch", &r.batch)?;
        m.serialize_entry("lengths", &LengthsView(&r.per_length, self.include_samples))?;
        m.end()
    }
}

impl Serialize for LengthsView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for l in self.0 {
            m.serialize_entry(&l.length.to_string(), &StatsView(l, self.1))?;
        }
        m.end()
    }
}

impl Serialize for StatsView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let l = self.0;
        let mut m = s.serialize_map(Some(if self.1 { 7 } else { 6 }))?;
        m.serialize_entry("median_ms", &l.median_ms)?;
        m.serialize_entry("p95_ms", &l.p95_ms)?;
        m.serialize_entry("p99_ms", &l.p99_ms)?;
        m.serialize_entry("mean_ms", &l.mean_ms)?;
        m.serialize_entry("min_ms", &l.min_ms)?;
        m.serialize_entry("iterations", &l.iterations())?;
        if self.1 {
            m.serialize_entry("samples_ms", &l.samples_ms)?;
        }
        m.end()
    }
}
