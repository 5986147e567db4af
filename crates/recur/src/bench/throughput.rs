//! Batched scoring throughput: what `recur bench --throughput` measures.
//!
//! A scoring job sends many tickets at once. This measures how many sequences and events per
//! second a model scores in batches of [`ThroughputOptions::batch`] variable-length sequences
//! whose lengths follow the guide's distribution: log-normal with the given median and 95th
//! percentile (`σ = ln(p95 / median) / 1.645`), rounded, clamped to `1..=max`. That is the
//! distribution of `shared/anchors/torch_batch.py`, PyTorch's figure for this workload.
//!
//! # Method
//!
//! 1. [`ThroughputOptions::distinct`] batches are drawn before any timing from a
//!    [`ChaCha8Rng`] seeded with [`ThroughputOptions::seed`]: lengths first, then `N(0, 1)`
//!    features (and random ids for a model with a vocabulary), padded to the batch's longest
//!    sequence. Padding never enters the computation (the engine packs the batch).
//! 2. Warm-up: every distinct batch is scored once.
//! 3. Measurement: the batches are scored in turn, round-robin, until at least
//!    [`ThroughputOptions::seconds`] have elapsed *and* at least
//!    [`ThroughputOptions::min_batches`] were scored. Throughput is the events (real steps, not
//!    padding) and sequences scored divided by the wall time of the whole loop.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use recur_nn::{KernelChoice, Precision, Rnn, SeqBatch, State};
use recur_train::models::sequence::{SeqInput, SequenceModel};
use recur_train::TrainError;
use serde_json::json;

use super::{kernel_choice_name, load_model, normals, BenchError, BenchModel, ModelKind};

/// The length distribution of the batches.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LengthDist {
    /// Median length (events), ≥ 1.
    pub median: f64,
    /// 95th percentile, ≥ median.
    pub p95: f64,
    /// Longest length drawn (longer draws are clamped to it), ≥ 1.
    pub max: usize,
}

impl LengthDist {
    /// The guide's ticket lengths: median 18, p95 112, capped at 512 (as in the anchors).
    pub const GUIDE: LengthDist = LengthDist {
        median: 18.0,
        p95: 112.0,
        max: 512,
    };

    /// The log-normal `σ`.
    pub fn sigma(&self) -> f64 {
        (self.p95 / self.median).ln() / 1.645
    }

    /// One length.
    pub fn draw(&self, rng: &mut impl Rng) -> usize {
        let z = recur_nn::init::normal(rng);
        let v = (self.median.ln() + self.sigma() * z).exp().round();
        (v.max(1.0) as usize).clamp(1, self.max)
    }

    fn validate(&self) -> Result<(), BenchError> {
        let ok = self.median.is_finite() && self.median >= 1.0 && self.p95.is_finite() && self.p95 >= self.median;
        if !ok || self.max == 0 {
            return Err(BenchError::Option {
                option: "length-dist",
                reason: format!(
                    "median {}, p95 {}, max {}: need 1 ≤ median ≤ p95 (finite) and max ≥ 1",
                    self.median, self.p95, self.max
                ),
            });
        }
        Ok(())
    }
}

/// How to measure throughput. [`Default`] is the issue's workload: batches of 256 at the
/// guide's lengths, 1 thread, f32.
#[derive(Clone, Debug, PartialEq)]
pub struct ThroughputOptions {
    /// Sequences per batch (≥ 1).
    pub batch: usize,
    /// Threads per forward pass: 1, or 2 (the directions of a bidirectional layer in parallel).
    pub threads: usize,
    /// Storage of the input and recurrent weights.
    pub precision: Precision,
    /// Kernel family.
    pub kernels: KernelChoice,
    /// The length distribution.
    pub lengths: LengthDist,
    /// Distinct batches drawn and cycled through (≥ 1).
    pub distinct: usize,
    /// Minimum measuring time, in seconds (finite, ≥ 0).
    pub seconds: f64,
    /// Minimum number of batches timed (≥ 1).
    pub min_batches: usize,
    /// Seed of the lengths and inputs.
    pub seed: u64,
}

impl Default for ThroughputOptions {
    fn default() -> Self {
        ThroughputOptions {
            batch: 256,
            threads: 1,
            precision: Precision::F32,
            kernels: KernelChoice::Best,
            lengths: LengthDist::GUIDE,
            distinct: 8,
            seconds: 5.0,
            min_batches: 10,
            seed: 0,
        }
    }
}

impl ThroughputOptions {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), BenchError> {
        let bad = |option, reason: String| Err(BenchError::Option { option, reason });
        if self.batch == 0 {
            return bad("batch", "must be ≥ 1".into());
        }
        if !(1..=2).contains(&self.threads) {
            return bad(
                "threads",
                format!("{} threads requested, but only 1 or 2 are supported", self.threads),
            );
        }
        self.lengths.validate()?;
        if self.distinct == 0 {
            return bad("distinct", "must be ≥ 1".into());
        }
        if !(self.seconds.is_finite() && self.seconds >= 0.0) {
            return bad("seconds", format!("{} is not a finite number ≥ 0", self.seconds));
        }
        if self.min_batches == 0 {
            return bad("min_batches", "must be ≥ 1".into());
        }
        Ok(())
    }
}

/// The result of a throughput measurement.
#[derive(Clone, Debug, PartialEq)]
pub struct ThroughputReport {
    /// The model directory or checkpoint measured (`None` for an in-memory model).
    pub model: Option<PathBuf>,
    /// What was measured.
    pub kind: ModelKind,
    /// The options used.
    pub opts: ThroughputOptions,
    /// The kernels actually used.
    pub simd: String,
    /// Batches timed.
    pub batches: usize,
    /// Sequences scored in the timed loop.
    pub sequences: usize,
    /// Events (real time steps) scored in the timed loop.
    pub events: usize,
    /// Wall time of the timed loop, in seconds.
    pub seconds: f64,
    /// Mean length of the distinct batches' sequences.
    pub mean_length: f64,
}

impl ThroughputReport {
    /// Sequences per second.
    pub fn sequences_per_s(&self) -> f64 {
        self.sequences as f64 / self.seconds
    }

    /// Events per second.
    pub fn events_per_s(&self) -> f64 {
        self.events as f64 / self.seconds
    }

    /// The report as one JSON object:
    ///
    /// ```json
    /// {"model": "<dir>" | null, "kind": "rnn" | "sequence", "kernels": "best", "simd": "avx2+fma",
    ///  "threads": 2, "precision": "f32", "batch": 256,
    ///  "lengths": {"distribution": "lognormal", "median": 18, "p95": 112, "max": 512, "mean": …},
    ///  "throughput": {"events_per_s": …, "sequences_per_s": …, "batches": …, "events": …,
    ///                 "sequences": …, "seconds": …}}
    /// ```
    pub fn to_json(&self) -> serde_json::Value {
        let o = &self.opts;
        json!({
            "model": self.model.as_ref().map(|p| p.display().to_string()),
            "kind": self.kind.as_str(),
            "kernels": kernel_choice_name(o.kernels),
            "simd": self.simd,
            "threads": o.threads,
            "precision": o.precision.name(),
            "batch": o.batch,
            "lengths": {
                "distribution": "lognormal",
                "median": o.lengths.median,
                "p95": o.lengths.p95,
                "max": o.lengths.max,
                "mean": self.mean_length,
            },
            "throughput": {
                "events_per_s": self.events_per_s(),
                "sequences_per_s": self.sequences_per_s(),
                "batches": self.batches,
                "events": self.events,
                "sequences": self.sequences,
                "seconds": self.seconds,
            },
        })
    }

    /// Two human-readable lines.
    pub fn table(&self) -> String {
        let o = &self.opts;
        let model = self
            .model
            .as_ref()
            .map_or_else(|| "(in memory)".to_string(), |p| p.display().to_string());
        format!(
            "{model}: {}, kernels {} ({}), threads {}, precision {}, batches of {} at log-normal lengths \
             (median {}, p95 {}, max {}; mean {:.1})\n{:.0} events/s, {:.0} sequences/s ({} batches in {:.2} s)\n",
            self.kind,
            kernel_choice_name(o.kernels),
            self.simd,
            o.threads,
            o.precision.name(),
            o.batch,
            o.lengths.median,
            o.lengths.p95,
            o.lengths.max,
            self.mean_length,
            self.events_per_s(),
            self.sequences_per_s(),
            self.batches,
            self.seconds
        )
    }
}

/// Measures the model directory or `sequence` checkpoint at `dir` (see the module docs).
pub fn throughput_dir(dir: &Path, opts: &ThroughputOptions) -> Result<ThroughputReport, BenchError> {
    opts.validate()?;
    let mut report = match load_model(dir)? {
        BenchModel::Rnn(rnn) => throughput_rnn(&rnn, opts)?,
        BenchModel::Sequence(model) => throughput_sequence_model(&model, opts)?,
    };
    report.model = Some(dir.to_path_buf());
    Ok(report)
}

/// One drawn batch: lengths (at least one), padded length, and whatever input the model needs.
struct Batch<I> {
    lengths: Vec<usize>,
    time: usize,
    input: I,
}

fn draw_lengths(opts: &ThroughputOptions, rng: &mut ChaCha8Rng) -> (Vec<usize>, usize) {
    let lengths: Vec<usize> = (0..opts.batch).map(|_| opts.lengths.draw(rng)).collect();
    let time = lengths.iter().copied().max().unwrap_or(1);
    (lengths, time)
}

/// Measures an in-memory recurrent stack (`model` of the report is `None`).
pub fn throughput_rnn(rnn: &Rnn<f32>, opts: &ThroughputOptions) -> Result<ThroughputReport, BenchError> {
    opts.validate()?;
    let rnn = super::tune::configured(rnn, opts.kernels, opts.precision, opts.threads)?;
    let width = rnn.config().input_size;
    let report = measure(
        opts,
        |rng| {
            let (lengths, time) = draw_lengths(opts, rng);
            let input = normals(opts.batch * time * width, rng);
            Batch { lengths, time, input }
        },
        |b| {
            let sb = SeqBatch::batch_first(&b.input, opts.batch, b.time, width).with_lengths(&b.lengths);
            black_box(rnn.forward_final(&sb, &State::default()).map_err(TrainError::from)?);
            Ok(())
        },
    )?;
    Ok(ThroughputReport {
        kind: ModelKind::Rnn,
        simd: rnn.kernels().name().to_string(),
        ..report
    })
}

/// Measures an in-memory [`SequenceModel`] (`model` of the report is `None`).
pub fn throughput_sequence_model(
    model: &SequenceModel,
    opts: &ThroughputOptions,
) -> Result<ThroughputReport, BenchError> {
    opts.validate()?;
    let model = super::tune::configured(model, opts.kernels, opts.precision, opts.threads)?;
    let (features, vocab) = (model.config().features, model.config().vocab);
    let report = measure(
        opts,
        |rng| {
            let (lengths, time) = draw_lengths(opts, rng);
            let n = opts.batch * time;
            let ids: Vec<usize> = if vocab > 0 {
                (0..n).map(|_| rng.random_range(0..vocab)).collect()
            } else {
                Vec::new()
            };
            let input = (normals(n * features, rng), ids);
            Batch { lengths, time, input }
        },
        |b| {
            let input = SeqInput {
                batch: opts.batch,
                time: b.time,
                lengths: &b.lengths,
                features: &b.input.0,
                ids: (vocab > 0).then_some(b.input.1.as_slice()),
            };
            black_box(model.forward(&input)?);
            Ok(())
        },
    )?;
    Ok(ThroughputReport {
        kind: ModelKind::Sequence,
        simd: model.rnn().kernels().name().to_string(),
        ..report
    })
}

fn measure<I>(
    opts: &ThroughputOptions,
    mut make: impl FnMut(&mut ChaCha8Rng) -> Batch<I>,
    mut score: impl FnMut(&Batch<I>) -> Result<(), TrainError>,
) -> Result<ThroughputReport, BenchError> {
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let batches: Vec<Batch<I>> = (0..opts.distinct).map(|_| make(&mut rng)).collect();
    let err = |b: &Batch<I>, source| BenchError::Forward { length: b.time, source };
    for b in &batches {
        score(b).map_err(|e| err(b, e))?;
    }
    let (mut n, mut sequences, mut events) = (0usize, 0usize, 0usize);
    let start = Instant::now();
    while n < opts.min_batches || start.elapsed().as_secs_f64() < opts.seconds {
        let b = &batches[n % batches.len()];
        score(b).map_err(|e| err(b, e))?;
        sequences += b.lengths.len();
        events += b.lengths.iter().sum::<usize>();
        n += 1;
    }
    let seconds = start.elapsed().as_secs_f64();
    let all: usize = batches.iter().map(|b| b.lengths.iter().sum::<usize>()).sum();
    Ok(ThroughputReport {
        model: None,
        kind: ModelKind::Rnn,
        opts: opts.clone(),
        simd: String::new(),
        batches: n,
        sequences,
        events,
        seconds,
        mean_length: all as f64 / (batches.len() * opts.batch) as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use recur_nn::{CellKind, RnnConfig};

    fn quick() -> ThroughputOptions {
        ThroughputOptions {
            batch: 5,
            distinct: 3,
            seconds: 0.0,
            min_batches: 7,
            lengths: LengthDist {
                median: 4.0,
                p95: 9.0,
                max: 12,
            },
            ..ThroughputOptions::default()
        }
    }

    #[test]
    fn guide_lengths_have_the_asked_median_and_p95() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut l: Vec<usize> = (0..20_000).map(|_| LengthDist::GUIDE.draw(&mut rng)).collect();
        l.sort_unstable();
        let (median, p95) = (l[l.len() / 2], l[l.len() * 95 / 100]);
        assert!((17..=19).contains(&median), "median {median}");
        assert!((104..=120).contains(&p95), "p95 {p95}");
        assert!(l[0] >= 1 && *l.last().unwrap() <= 512);
    }

    #[test]
    fn counts_real_events_and_reports_json() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut cfg = RnnConfig::new(CellKind::Gru, 3, 4);
        cfg.bidirectional = true;
        let rnn = Rnn::<f32>::new(cfg, &mut rng).unwrap();
        let r = throughput_rnn(&rnn, &quick()).unwrap();
        assert_eq!((r.batches, r.sequences), (7, 35));
        // The same draws as the measurement: batches 0, 1, 2, 0, 1, 2, 0.
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let o = quick();
        let sums: Vec<usize> = (0..3)
            .map(|_| {
                let (l, t) = draw_lengths(&o, &mut rng);
                let _ = normals(o.batch * t * 3, &mut rng);
                l.iter().sum()
            })
            .collect();
        assert_eq!(r.events, 3 * sums[0] + 2 * sums[1] + 2 * sums[2]);
        assert!(r.events_per_s() > 0.0 && r.seconds > 0.0);
        let v = r.to_json();
        assert_eq!(v["batch"], 5);
        assert_eq!(v["throughput"]["events"], r.events);
        assert_eq!(v["lengths"]["p95"], 9.0);
        assert!(r.table().contains("events/s"), "{}", r.table());
    }

    #[test]
    fn option_errors_name_the_option() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let rnn = Rnn::<f32>::new(RnnConfig::new(CellKind::Gru, 3, 4), &mut rng).unwrap();
        let bad_dist = |median, p95, max| ThroughputOptions {
            lengths: LengthDist { median, p95, max },
            ..quick()
        };
        let cases = [
            (ThroughputOptions { batch: 0, ..quick() }, "`batch`"),
            (ThroughputOptions { threads: 4, ..quick() }, "`threads`"),
            (bad_dist(20.0, 10.0, 5), "`length-dist`"),
            (bad_dist(0.5, 10.0, 5), "`length-dist`"),
            (bad_dist(2.0, 10.0, 0), "`length-dist`"),
            (ThroughputOptions { distinct: 0, ..quick() }, "`distinct`"),
        ];
        for (opts, needle) in cases {
            let msg = throughput_rnn(&rnn, &opts).unwrap_err().to_string();
            assert!(msg.contains(needle), "{msg}");
        }
    }
}
