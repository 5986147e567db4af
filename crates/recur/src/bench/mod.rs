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
use thiserror::Error;

use crate::model_dir::{self, ModelDirError};

mod report;
pub mod throughput;
mod tune;

use tune::configured;

pub use report::{percentile, BenchReport, LengthStats};

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
    let rnn = configured(rnn, opts.kernels, opts.precision, opts.threads)?;
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
    let model = configured(model, opts.kernels, opts.precision, opts.threads)?;
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
