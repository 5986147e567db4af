//! Single-request CPU latency of a model: what `recur bench` measures.
//!
//! A model is either a recur model directory ([`crate::model_dir`], kind `rnn`: the bare
//! recurrent stack, fed `N(0, 1)` inputs `[batch, T, input_size]` through [`Rnn::forward`]) or
//! a recur checkpoint of kind `sequence` (a [`SequenceModel`]: embedding, recurrent stack and
//! head, fed random ids in `0..vocab` and `N(0, 1)` features through
//! [`SequenceModel::forward`]). Every sequence of the batch has the full length `T`.
//!
//! # Method
//!
//! For each length `T`, in the order given:
//!
//! 1. the input is drawn before any timing, from a [`ChaCha8Rng`] seeded with
//!    `seed + T` (so a length's input does not depend on the other lengths);
//! 2. warm-up: forward calls are repeated until at least [`BenchOptions::warmup_seconds`]
//!    have elapsed *and* at least [`BenchOptions::warmup_iterations`] calls were made (this
//!    also packs the recurrent weights, which happens on a model's first call);
//! 3. measurement: each call is timed on its own with [`Instant`], until at least
//!    [`BenchOptions::seconds`] have elapsed *and* at least [`BenchOptions::min_iterations`]
//!    calls were timed. A call is one inference forward pass from the prepared input to the
//!    returned output, including freeing that output.
//!
//! Statistics are computed from the samples (milliseconds): the mean, the minimum, and the
//! median, 95th and 99th percentiles by the nearest-rank definition (see [`percentile`]; the
//! median is the 50th percentile, i.e. the lower middle sample for an even count), so
//! `min ≤ median ≤ p95 ≤ p99` always holds.
//!
//! Threads: 1, or 2 for a recur model directory (the two directions of every bidirectional
//! layer run concurrently, see [`Rnn::set_threads`]); more are refused, as the engine only
//! parallelizes over directions. Precision: the storage of the input and recurrent weights of a
//! recur model directory in inference (`f32`, `f16`, `int8`; see [`Rnn::set_precision`]).
//! Both apply to `sequence` checkpoints too.

use std::fmt;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use recur_nn::{KernelChoice, Precision, Rnn, SeqBatch, State};
use recur_train::checkpoint;
use recur_train::models::sequence::{SeqInput, SequenceModel, SequenceModelConfig};
use recur_train::TrainError;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use thiserror::Error;

use crate::model_dir::{self, ModelDirError};

/// The checkpoint `kind` this module can benchmark.
pub const SEQUENCE_KIND: &str = "sequence";

/// Errors of a benchmark; each names the option, file or checkpoint at fault.
#[derive(Debug, Error)]
pub enum BenchError {
    /// A [`BenchOptions`] field has an unusable value.
    #[error("invalid bench option `{option}`: {reason}")]
    Option {
        /// The field (named like the `recur bench` flag).
        option: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The model path does not exist.
    #[error("{}: no such file or directory", .0.display())]
    NotFound(PathBuf),
    /// The model path is neither a model directory nor a checkpoint.
    #[error(
        "{}: neither a recur model directory (config.json with format \"{}\") nor a recur checkpoint \
         (manifest.json with format \"{}\")",
        .0.display(),
        model_dir::FORMAT,
        checkpoint::FORMAT
    )]
    NotAModel(PathBuf),
    /// The model directory cannot be loaded.
    #[error("cannot load model directory {}", path.display())]
    ModelDir {
        /// The directory.
        path: PathBuf,
        /// What is wrong (names the file and field or tensor).
        #[source]
        source: ModelDirError,
    },
    /// The checkpoint cannot be loaded or does not hold a usable sequence model.
    #[error("cannot load checkpoint {}", path.display())]
    Checkpoint {
        /// The checkpoint directory.
        path: PathBuf,
        /// What is wrong (names the file, field or tensor).
        #[source]
        source: TrainError,
    },
    /// The checkpoint holds a model family this command does not run.
    #[error(
        "checkpoint {}: kind `{kind}` is not supported (recur bench runs model directories and \
         checkpoints of kind `{SEQUENCE_KIND}`)",
        path.display()
    )]
    UnsupportedKind {
        /// The checkpoint directory.
        path: PathBuf,
        /// The checkpoint's `kind`.
        kind: String,
    },
    /// A forward pass failed.
    #[error("forward pass at length {length} failed")]
    Forward {
        /// The sequence length being measured.
        length: usize,
        /// The engine's error.
        #[source]
        source: TrainError,
    },
}

/// What was benchmarked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelKind {
    /// A bare recurrent stack (a recur model directory).
    Rnn,
    /// A [`SequenceModel`] (a `sequence` checkpoint).
    Sequence,
}

impl ModelKind {
    /// `"rnn"` or `"sequence"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Rnn => "rnn",
            ModelKind::Sequence => "sequence",
        }
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `"best"` or `"reference"`.
pub fn kernel_choice_name(choice: KernelChoice) -> &'static str {
    match choice {
        KernelChoice::Best => "best",
        KernelChoice::Reference => "reference",
    }
}

/// How to benchmark. [`Default`] gives what `recur bench` does without flags.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchOptions {
    /// Sequence lengths to measure, in report order; each ≥ 1, no repeats.
    pub lengths: Vec<usize>,
    /// Sequences per request (≥ 1).
    pub batch: usize,
    /// Threads per forward pass: 1, or 2 for model directories (directions in parallel).
    pub threads: usize,
    /// Storage of the input and recurrent weights (model directories only).
    pub precision: Precision,
    /// Kernel family.
    pub kernels: KernelChoice,
    /// Minimum measuring time per length, in seconds (finite, ≥ 0).
    pub seconds: f64,
    /// Minimum number of timed calls per length (≥ 1).
    pub min_iterations: usize,
    /// Minimum warm-up time per length, in seconds (finite, ≥ 0).
    pub warmup_seconds: f64,
    /// Minimum number of warm-up calls per length.
    pub warmup_iterations: usize,
    /// Seed of the random inputs.
    pub seed: u64,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            lengths: vec![18, 112],
            batch: 1,
            threads: 1,
            precision: Precision::F32,
            kernels: KernelChoice::Best,
            seconds: 2.0,
            min_iterations: 20,
            warmup_seconds: 0.2,
            warmup_iterations: 20,
            seed: 0,
        }
    }
}

impl BenchOptions {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), BenchError> {
        let bad = |option, reason: String| Err(BenchError::Option { option, reason });
        if self.lengths.is_empty() {
            return bad("lengths", "no lengths given".into());
        }
        for (i, &t) in self.lengths.iter().enumerate() {
            if t == 0 {
                return bad("lengths", "0 is not a positive length".into());
            }
            if self.lengths[..i].contains(&t) {
                return bad("lengths", format!("{t} is given more than once"));
            }
        }
        if self.batch == 0 {
            return bad("batch", "must be ≥ 1".into());
        }
        if !(1..=2).contains(&self.threads) {
            return bad(
                "threads",
                format!(
                    "{} threads requested, but only 1 or 2 are supported (the engine runs the two \
                     directions of a bidirectional layer in parallel, nothing more)",
                    self.threads
                ),
            );
        }
        if !(self.seconds.is_finite() && self.seconds >= 0.0) {
            return bad("seconds", format!("{} is not a finite number ≥ 0", self.seconds));
        }
        if !(self.warmup_seconds.is_finite() && self.warmup_seconds >= 0.0) {
            return bad(
                "warmup_seconds",
                format!("{} is not a finite number ≥ 0", self.warmup_seconds),
            );
        }
        if self.min_iterations == 0 {
            return bad("min_iterations", "must be ≥ 1".into());
        }
        Ok(())
    }
}

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

/// A model `recur bench` can run, loaded from disk.
#[derive(Clone, Debug)]
pub enum BenchModel {
    /// A recur model directory.
    Rnn(Box<Rnn<f32>>),
    /// A `sequence` checkpoint.
    Sequence(Box<SequenceModel>),
}

/// Loads `dir` as a recur model directory or a `sequence` checkpoint (decided by
/// [`checkpoint::is_checkpoint`], then [`model_dir::is_model_dir`]).
pub fn load_model(dir: &Path) -> Result<BenchModel, BenchError> {
    if !dir.exists() {
        return Err(BenchError::NotFound(dir.to_path_buf()));
    }
    if checkpoint::is_checkpoint(dir) {
        return load_sequence_checkpoint(dir).map(|m| BenchModel::Sequence(Box::new(m)));
    }
    if !model_dir::is_model_dir(dir) {
        return Err(BenchError::NotAModel(dir.to_path_buf()));
    }
    model_dir::load(dir)
        .map(|rnn| BenchModel::Rnn(Box::new(rnn)))
        .map_err(|source| BenchError::ModelDir {
            path: dir.to_path_buf(),
            source,
        })
}

/// Loads a checkpoint of kind `sequence` (its `model.sequence` config and weights).
pub fn load_sequence_checkpoint(dir: &Path) -> Result<SequenceModel, BenchError> {
    let ck_err = |source| BenchError::Checkpoint {
        path: dir.to_path_buf(),
        source,
    };
    let ck = checkpoint::load(dir).map_err(ck_err)?;
    if ck.kind != SEQUENCE_KIND {
        return Err(BenchError::UnsupportedKind {
            path: dir.to_path_buf(),
            kind: ck.kind,
        });
    }
    let manifest = dir.join(checkpoint::MANIFEST_FILE);
    let field = |reason: String| TrainError::Checkpoint {
        path: manifest.display().to_string(),
        reason: format!("field `model.sequence`: {reason}"),
    };
    let raw = ck
        .model
        .get("sequence")
        .ok_or_else(|| ck_err(field("missing".into())))?;
    let cfg: SequenceModelConfig = serde_json::from_value(raw.clone()).map_err(|e| ck_err(field(e.to_string())))?;
    let mut model = SequenceModel::zeros(cfg).map_err(|e| ck_err(field(e.to_string())))?;
    recur_train::Module::load_named(&mut model, &ck.tensors).map_err(|e| {
        ck_err(TrainError::Checkpoint {
            path: dir.join(checkpoint::WEIGHTS_FILE).display().to_string(),
            reason: format!("does not match `model.sequence`: {e}"),
        })
    })?;
    Ok(model)
}

/// Benchmarks the model directory or `sequence` checkpoint at `dir` (see the module docs).
pub fn bench_dir(dir: &Path, opts: &BenchOptions) -> Result<BenchReport, BenchError> {
    opts.validate()?;
    let mut report = match load_model(dir)? {
        BenchModel::Rnn(rnn) => bench_rnn(&rnn, opts)?,
        BenchModel::Sequence(model) => bench_sequence_model(&model, opts)?,
    };
    report.model = Some(dir.to_path_buf());
    Ok(report)
}

/// Benchmarks an in-memory recurrent stack on `N(0, 1)` inputs (`model` of the report is
/// `None`). The model is copied so that its kernel family can be set.
pub fn bench_rnn(rnn: &Rnn<f32>, opts: &BenchOptions) -> Result<BenchReport, BenchError> {
    opts.validate()?;
    let mut rnn = rnn.clone();
    rnn.set_kernels(opts.kernels);
    rnn.set_precision(opts.precision);
    rnn.set_threads(opts.threads).map_err(|e| BenchError::Option {
        option: "threads",
        reason: e.to_string(),
    })?;
    let (batch, width) = (opts.batch, rnn.config().input_size);
    let per_length = measure_lengths(
        opts,
        |t, rng| normals(batch * t * width, rng),
        |t, x| {
            let sb = SeqBatch::batch_first(x, batch, t, width);
            let out = rnn.forward(&sb, &State::default()).map_err(TrainError::from)?;
            black_box(out);
            Ok(())
        },
    )?;
    Ok(report(ModelKind::Rnn, rnn.kernels().name(), opts, per_length))
}

/// Benchmarks an in-memory [`SequenceModel`] on random ids in `0..vocab` (when it has a
/// vocabulary) and `N(0, 1)` features (`model` of the report is `None`). The model is copied
/// so that its kernel family can be set.
pub fn bench_sequence_model(model: &SequenceModel, opts: &BenchOptions) -> Result<BenchReport, BenchError> {
    opts.validate()?;
    let mut model = model.clone();
    model.set_kernels(opts.kernels);
    model.set_precision(opts.precision);
    model.set_threads(opts.threads).map_err(|e| BenchError::Option {
        option: "threads",
        reason: e.to_string(),
    })?;
    let (batch, features, vocab) = (opts.batch, model.config().features, model.config().vocab);
    let per_length = measure_lengths(
        opts,
        |t, rng| {
            let ids: Vec<usize> = if vocab > 0 {
                (0..batch * t).map(|_| rng.random_range(0..vocab)).collect()
            } else {
                Vec::new()
            };
            (normals(batch * t * features, rng), ids, vec![t; batch])
        },
        |t, (x, ids, lengths)| {
            let input = SeqInput {
                batch,
                time: t,
                lengths,
                features: x,
                ids: (vocab > 0).then_some(ids.as_slice()),
            };
            black_box(model.forward(&input)?);
            Ok(())
        },
    )?;
    Ok(report(
        ModelKind::Sequence,
        model.rnn().kernels().name(),
        opts,
        per_length,
    ))
}

fn report(kind: ModelKind, simd: &str, opts: &BenchOptions, per_length: Vec<LengthStats>) -> BenchReport {
    BenchReport {
        model: None,
        kind,
        kernels: opts.kernels,
        simd: simd.to_string(),
        threads: opts.threads,
        precision: opts.precision,
        batch: opts.batch,
        per_length,
    }
}

fn normals(n: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    (0..n).map(|_| recur_nn::init::normal(rng) as f32).collect()
}

/// For each length: builds the input with `make`, warms up, then times `call` one call at a
/// time (see the module docs).
fn measure_lengths<I>(
    opts: &BenchOptions,
    mut make: impl FnMut(usize, &mut ChaCha8Rng) -> I,
    mut call: impl FnMut(usize, &I) -> Result<(), TrainError>,
) -> Result<Vec<LengthStats>, BenchError> {
    let mut out = Vec::with_capacity(opts.lengths.len());
    for &t in &opts.lengths {
        let mut rng = ChaCha8Rng::seed_from_u64(opts.seed.wrapping_add(t as u64));
        let input = make(t, &mut rng);
        let mut run = || call(t, &input).map_err(|source| BenchError::Forward { length: t, source });

        let start = Instant::now();
        let mut n = 0usize;
        while n < opts.warmup_iterations.max(1) || start.elapsed().as_secs_f64() < opts.warmup_seconds {
            run()?;
            n += 1;
        }

        let mut samples = Vec::with_capacity(opts.min_iterations.max(1024));
        let start = Instant::now();
        while samples.len() < opts.min_iterations || start.elapsed().as_secs_f64() < opts.seconds {
            let t0 = Instant::now();
            run()?;
            samples.push(t0.elapsed().as_secs_f64() * 1e3);
        }
        out.push(LengthStats::from_samples(t, samples).expect("at least one sample"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use recur_nn::{CellKind, RnnConfig};
    use recur_train::models::sequence::Head;

    #[test]
    fn nearest_rank_percentiles() {
        let twenty: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&twenty, 0.0), Some(1.0));
        assert_eq!(percentile(&twenty, 5.0), Some(1.0));
        assert_eq!(percentile(&twenty, 5.1), Some(2.0));
        assert_eq!(percentile(&twenty, 50.0), Some(10.0), "lower middle for an even count");
        assert_eq!(percentile(&twenty, 95.0), Some(19.0), "rank 19 exactly, not 20");
        assert_eq!(percentile(&twenty, 99.0), Some(20.0));
        assert_eq!(percentile(&twenty, 100.0), Some(20.0));
        let odd: Vec<f64> = (1..=21).map(f64::from).collect();
        assert_eq!(percentile(&odd, 50.0), Some(11.0));
        assert_eq!(percentile(&odd, 95.0), Some(20.0), "⌈19.95⌉ = 20");
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        for p in 1..=100 {
            assert_eq!(percentile(&hundred, f64::from(p)), Some(f64::from(p)), "p{p}");
        }
        assert_eq!(percentile(&[3.5], 99.0), Some(3.5));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    #[should_panic(expected = "outside 0..=100")]
    fn percentile_refuses_out_of_range() {
        percentile(&[1.0], 100.5);
    }

    #[test]
    fn stats_from_unsorted_samples() {
        let samples = vec![5.0, 1.0, 4.0, 2.0, 3.0];
        let s = LengthStats::from_samples(7, samples.clone()).unwrap();
        assert_eq!(s.samples_ms, samples, "raw samples keep their order");
        assert_eq!((s.median_ms, s.p95_ms, s.p99_ms, s.min_ms), (3.0, 5.0, 5.0, 1.0));
        assert_eq!(s.mean_ms, 3.0);
        assert_eq!(s.iterations(), 5);
        assert!(LengthStats::from_samples(7, Vec::new()).is_none());
    }

    fn quick() -> BenchOptions {
        BenchOptions {
            lengths: vec![9, 3],
            batch: 2,
            seconds: 0.0,
            warmup_seconds: 0.0,
            warmup_iterations: 1,
            ..BenchOptions::default()
        }
    }

    #[test]
    fn in_memory_sequence_model() {
        let mut rnn = RnnConfig::new(CellKind::Lstm, 4 + 2, 5);
        rnn.bidirectional = true;
        let cfg = SequenceModelConfig {
            features: 2,
            vocab: 11,
            embed_dim: 4,
            rnn,
            head: Head::MeanMax,
            outputs: 3,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let model = SequenceModel::new(cfg, &recur_nn::init::Init::default(), &mut rng).unwrap();
        let opts = BenchOptions {
            kernels: KernelChoice::Reference,
            ..quick()
        };
        let r = bench_sequence_model(&model, &opts).unwrap();
        assert_eq!(
            (r.kind, r.simd.as_str(), r.batch, r.model.as_ref()),
            (ModelKind::Sequence, "reference", 2, None)
        );
        assert_eq!(r.per_length.iter().map(|l| l.length).collect::<Vec<_>>(), vec![9, 3]);
        for l in &r.per_length {
            assert_eq!(l.iterations(), 20);
            assert!(l.min_ms > 0.0 && l.min_ms <= l.median_ms && l.median_ms <= l.p95_ms && l.p95_ms <= l.p99_ms);
        }
        let text = r.to_json_string(true);
        assert!(text.find("\"9\":").unwrap() < text.find("\"3\":").unwrap(), "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v, r.to_json(true));
        assert_eq!(v["model"], serde_json::Value::Null);
        assert_eq!(v["lengths"]["3"]["samples_ms"].as_array().unwrap().len(), 20);
        assert!(r.to_json(false)["lengths"]["3"].get("samples_ms").is_none());
    }

    #[test]
    fn in_memory_rnn_and_option_errors() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let rnn = Rnn::<f32>::new(RnnConfig::new(CellKind::Gru, 3, 4), &mut rng).unwrap();
        let r = bench_rnn(&rnn, &quick()).unwrap();
        assert_eq!(r.kind, ModelKind::Rnn);
        assert_ne!(r.simd, "reference");
        let cases: [(BenchOptions, &str); 6] = [
            (
                BenchOptions {
                    lengths: vec![],
                    ..quick()
                },
                "`lengths`: no lengths",
            ),
            (
                BenchOptions {
                    lengths: vec![4, 0],
                    ..quick()
                },
                "`lengths`: 0 is not",
            ),
            (
                BenchOptions {
                    lengths: vec![4, 4],
                    ..quick()
                },
                "4 is given more than once",
            ),
            (BenchOptions { batch: 0, ..quick() }, "`batch`"),
            (BenchOptions { threads: 3, ..quick() }, "only 1 or 2"),
            (
                BenchOptions {
                    seconds: f64::NAN,
                    ..quick()
                },
                "`seconds`: NaN",
            ),
        ];
        for (opts, needle) in cases {
            let msg = bench_rnn(&rnn, &opts).unwrap_err().to_string();
            assert!(msg.contains(needle), "{msg}");
        }
    }
}
