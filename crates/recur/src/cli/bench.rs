//! `recur bench`: single-request CPU latency of a model directory or `sequence` checkpoint
//! (the method is described in the `recur::bench` library module).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::ValueEnum;
use recur::bench::throughput::{throughput_dir, LengthDist, ThroughputOptions};
use recur::bench::{bench_dir, BenchOptions};
use recur::nn::Precision;
use recur::KernelChoice;

/// Kernel family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Kernels {
    /// The fastest kernels this CPU supports.
    Best,
    /// The plain reference kernels (slow; for debugging and A/B timing).
    Reference,
}

/// Storage precision of the input and recurrent weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PrecisionArg {
    /// Single precision.
    F32,
    /// IEEE half precision (widened to f32 in the kernel).
    F16,
    /// int8 weights with one scale per row, activations quantized to 7 bits per row and call,
    /// integer dot products (AVX-512 VNNI, AVX-VNNI or AVX2).
    Int8,
}

impl From<PrecisionArg> for Precision {
    fn from(p: PrecisionArg) -> Self {
        match p {
            PrecisionArg::F32 => Precision::F32,
            PrecisionArg::F16 => Precision::F16,
            PrecisionArg::Int8 => Precision::Int8,
        }
    }
}

/// Measures the latency of one forward pass per request on random inputs (N(0,1) features,
/// random ids for models with a vocabulary): per sequence length, a warm-up, then calls timed
/// one by one for --seconds (and at least 20 calls). Prints median, p95 and p99 latency
/// (nearest-rank percentiles) per length, or one JSON object with --json.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A recur model directory (from `recur import-torch`) or a checkpoint of kind `sequence`
    /// (`DIR/model` of a training run).
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// Comma-separated sequence lengths to measure, in report order. Default: for a forecaster
    /// checkpoint, the median, p95 and longest ticket length of its training window; otherwise
    /// 18,112 (the guide's median and p95).
    #[arg(long, value_name = "T1,T2,...")]
    lengths: Option<String>,
    /// Sequences per request (default 1; 256 with --throughput).
    #[arg(long, value_name = "N")]
    batch: Option<usize>,
    /// Measure batched scoring throughput (events/s and sequences/s over batches of --batch
    /// variable-length sequences drawn from --length-dist) instead of single-request latency.
    #[arg(long, conflicts_with_all = ["lengths", "samples"])]
    throughput: bool,
    /// With --throughput: the log-normal length distribution, `MEDIAN,P95[,MAX]`. Default: for
    /// a forecaster checkpoint, its training window's median, p95 and longest ticket;
    /// otherwise the guide's 18,112,512.
    #[arg(long, value_name = "MEDIAN,P95[,MAX]", requires = "throughput")]
    length_dist: Option<String>,
    /// Threads per forward pass: 1, or 2 to run the two directions of each bidirectional layer
    /// on separate cores.
    #[arg(long, value_name = "N", default_value_t = 1)]
    threads: usize,
    /// Storage of the input and recurrent weights in inference.
    #[arg(long, value_enum, default_value_t = PrecisionArg::F32)]
    precision: PrecisionArg,
    /// Kernel family.
    #[arg(long, value_enum, default_value_t = Kernels::Best)]
    kernels: Kernels,
    /// Minimum measuring time per length, in seconds.
    #[arg(long, value_name = "S", default_value_t = 2.0)]
    seconds: f64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// With --json, include every timed call's latency (`samples_ms`) per length.
    #[arg(long, requires = "json")]
    samples: bool,
}

/// Parses `--lengths`: comma-separated positive integers, no repeats; errors name the item.
fn parse_lengths(s: &str) -> anyhow::Result<Vec<usize>> {
    if s.trim().is_empty() {
        bail!("--lengths: no lengths given (expected e.g. `18,112`)");
    }
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim) {
        match item.parse::<usize>() {
            Ok(t) if t > 0 => {
                if out.contains(&t) {
                    bail!("--lengths: `{item}` is given more than once");
                }
                out.push(t);
            }
            _ => bail!("--lengths: `{item}` is not a positive integer"),
        }
    }
    Ok(out)
}

impl TryFrom<&Args> for BenchOptions {
    type Error = anyhow::Error;

    fn try_from(a: &Args) -> anyhow::Result<Self> {
        let lengths = match &a.lengths {
            Some(l) => parse_lengths(l)?,
            None => recorded_lengths(&a.model).unwrap_or_else(|| vec![18, 112]),
        };
        let batch = a.batch.unwrap_or(1);
        if batch == 0 {
            bail!("--batch: must be ≥ 1");
        }
        if !(1..=2).contains(&a.threads) {
            bail!(
                "--threads {}: only --threads 1 or 2 is supported (the engine runs the two directions of a \
                 bidirectional layer in parallel; there is no other parallelism yet)",
                a.threads
            );
        }
        if !(a.seconds.is_finite() && a.seconds >= 0.0) {
            bail!("--seconds: {} is not a finite number ≥ 0", a.seconds);
        }
        let kernels = match a.kernels {
            Kernels::Best => KernelChoice::Best,
            Kernels::Reference => KernelChoice::Reference,
        };
        Ok(BenchOptions {
            lengths,
            batch,
            threads: a.threads,
            precision: a.precision.into(),
            kernels,
            seconds: a.seconds,
            ..BenchOptions::default()
        })
    }
}

/// The ticket lengths a forecaster checkpoint recorded from its training window
/// (`preprocessing.lengths`: median, p95, max), deduplicated and capped at 2,000 events.
fn recorded_lengths(dir: &std::path::Path) -> Option<Vec<usize>> {
    let text = std::fs::read(dir.join("manifest.json")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&text).ok()?;
    let l = &v["preprocessing"]["lengths"];
    let mut out = Vec::new();
    for key in ["median", "p95", "max"] {
        let t = (l[key].as_u64()? as usize).clamp(1, 2000);
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Some(out)
}

/// Parses `--length-dist MEDIAN,P95[,MAX]`; errors name the item.
fn parse_length_dist(s: &str) -> anyhow::Result<LengthDist> {
    let items: Vec<&str> = s.split(',').map(str::trim).collect();
    if !(2..=3).contains(&items.len()) {
        bail!("--length-dist: `{s}` is not MEDIAN,P95 or MEDIAN,P95,MAX");
    }
    let num = |name: &str, v: &str| -> anyhow::Result<f64> {
        match v.parse::<f64>() {
            Ok(x) if x.is_finite() && x >= 1.0 => Ok(x),
            _ => bail!("--length-dist: {name} `{v}` is not a number ≥ 1"),
        }
    };
    let (median, p95) = (num("median", items[0])?, num("p95", items[1])?);
    if p95 < median {
        bail!("--length-dist: p95 {p95} is below the median {median}");
    }
    let max = match items.get(2) {
        Some(v) => match v.parse::<usize>() {
            Ok(m) if m >= 1 => m,
            _ => bail!("--length-dist: max `{v}` is not a positive integer"),
        },
        None => LengthDist::GUIDE.max.max(p95.ceil() as usize),
    };
    Ok(LengthDist { median, p95, max })
}

/// The log-normal length distribution a forecaster checkpoint recorded from its training
/// window (`preprocessing.lengths`: median, p95, max).
fn recorded_dist(dir: &std::path::Path) -> Option<LengthDist> {
    let text = std::fs::read(dir.join("manifest.json")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&text).ok()?;
    let l = &v["preprocessing"]["lengths"];
    let (median, p95) = (l["median"].as_f64()?.max(1.0), l["p95"].as_f64()?);
    let max = (l["max"].as_u64()? as usize).clamp(1, 2000);
    Some(LengthDist {
        median,
        p95: p95.max(median),
        max,
    })
}

fn run_throughput(a: &Args, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let lengths = match &a.length_dist {
        Some(s) => parse_length_dist(s)?,
        None => recorded_dist(&a.model).unwrap_or(LengthDist::GUIDE),
    };
    let opts = ThroughputOptions {
        batch: a.batch.unwrap_or(256),
        threads: a.threads,
        precision: a.precision.into(),
        kernels: match a.kernels {
            Kernels::Best => KernelChoice::Best,
            Kernels::Reference => KernelChoice::Reference,
        },
        lengths,
        seconds: a.seconds,
        ..ThroughputOptions::default()
    };
    let report = throughput_dir(&a.model, &opts)?;
    if a.json {
        writeln!(out, "{}", report.to_json())?;
    } else {
        write!(out, "{}", report.table())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `recur bench`.
pub fn run(a: Args, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    if a.throughput {
        return run_throughput(&a, out);
    }
    let opts = BenchOptions::try_from(&a)?;
    let report = bench_dir(&a.model, &opts)?;
    if a.json {
        writeln!(out, "{}", report.to_json_string(a.samples))?;
    } else {
        write!(out, "{}", report.table())?;
    }
    Ok(ExitCode::SUCCESS)
}
