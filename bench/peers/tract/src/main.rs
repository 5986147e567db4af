//! tract-onnx timing for recur's peer comparison harness (`bench/peers`).
//!
//!     peers-tract --model OUT [--lengths 18,112] [--seconds 2] [--min-iters 20]
//!                 [--warmup-seconds 0.2] [--warmup-iters 20] [--samples]
//!
//! OUT is a directory written by `bench/peers/make_model.py` (esc.onnx, check.npz). For each
//! length T the ONNX model is loaded with its input fixed to [1, T, 64], optimized and made
//! runnable (`into_optimized()` / `into_runnable()`), and its output for check.npz's `x{T}`
//! is compared with PyTorch's `y{T}` (|diff| <= atol, default 1e-4); a length whose output
//! differs is not timed (exit status 2). Then the protocol shared by every system of the
//! harness: warm-up calls until at least `warmup-seconds` have passed and `warmup-iters` calls
//! were made, then single calls each timed on its own until at least `seconds` have passed and
//! `min-iters` calls were timed; median and p95 by nearest rank. tract runs on one thread.
//!
//! One call is `SimpleState::run` on the prepared input (a reference-counted tensor, so the
//! call does not copy the input) up to the returned output, which is dropped inside the timing.
//! Prints one JSON object on stdout.

use std::fs::File;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use ndarray_npy::NpzReader;
use serde_json::{json, Map, Value};
use tract_onnx::prelude::*;

struct Args {
    model: PathBuf,
    lengths: Vec<usize>,
    seconds: f64,
    min_iters: usize,
    warmup_seconds: f64,
    warmup_iters: usize,
    samples: bool,
    atol: f32,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        model: PathBuf::new(),
        lengths: vec![18, 112],
        seconds: 2.0,
        min_iters: 20,
        warmup_seconds: 0.2,
        warmup_iters: 20,
        samples: false,
        atol: 1e-4,
    };
    let mut model = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--model" => model = Some(PathBuf::from(val()?)),
            "--lengths" => {
                a.lengths = val()?
                    .split(',')
                    .map(|s| s.trim().parse::<usize>().context("--lengths: bad length"))
                    .collect::<Result<_>>()?
            }
            "--seconds" => a.seconds = val()?.parse()?,
            "--min-iters" => a.min_iters = val()?.parse()?,
            "--warmup-seconds" => a.warmup_seconds = val()?.parse()?,
            "--warmup-iters" => a.warmup_iters = val()?.parse()?,
            "--atol" => a.atol = val()?.parse()?,
            "--samples" => a.samples = true,
            "-h" | "--help" => {
                println!(
                    "peers-tract --model OUT [--lengths 18,112] [--seconds 2] [--min-iters 20] \
                     [--warmup-seconds 0.2] [--warmup-iters 20] [--atol 1e-4] [--samples]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}"),
        }
    }
    a.model = model.context("--model OUT is required")?;
    if a.min_iters == 0 {
        bail!("--min-iters must be >= 1");
    }
    Ok(a)
}

/// Nearest-rank percentile of ascending `sorted` (the sample of 1-based rank ceil(p/100 * n)).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = (p * sorted.len() as f64 / 100.0).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The tract-onnx version this binary was built with, read from its own Cargo.lock.
fn tract_version() -> String {
    let lock = include_str!("../Cargo.lock");
    let mut lines = lock.lines();
    while let Some(l) = lines.next() {
        if l.trim() == "name = \"tract-onnx\"" {
            if let Some(v) = lines.next() {
                return v.trim().trim_start_matches("version = ").trim_matches('"').to_string();
            }
        }
    }
    "unknown".into()
}

fn main() {
    match run() {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("peers-tract: {e:?}");
            println!("{}", json!({"system": "tract", "error": format!("{e:#}")}));
            std::process::exit(1);
        }
    }
}

fn run() -> Result<i32> {
    let a = parse_args()?;
    let onnx_path = a.model.join("esc.onnx");
    let npz_path = a.model.join("check.npz");
    let mut npz = NpzReader::new(
        File::open(&npz_path).with_context(|| format!("cannot open {}", npz_path.display()))?,
    )
    .with_context(|| format!("{}: not an npz file", npz_path.display()))?;

    let mut lengths = Map::new();
    let mut code = 0;
    for &t in &a.lengths {
        let x: tract_ndarray::Array3<f32> = npz
            .by_name(&format!("x{t}.npy"))
            .with_context(|| format!("check.npz has no x{t}"))?;
        let y_ref: tract_ndarray::Array2<f32> = npz
            .by_name(&format!("y{t}.npy"))
            .with_context(|| format!("check.npz has no y{t}"))?;
        if x.shape() != [1, t, 64] {
            bail!("x{t} has shape {:?}, expected [1, {t}, 64]", x.shape());
        }

        let t0 = Instant::now();
        let plan = tract_onnx::onnx()
            .model_for_path(&onnx_path)
            .with_context(|| format!("cannot load {}", onnx_path.display()))?
            .with_input_fact(0, f32::fact([1, t, 64]).into())?
            .into_optimized()
            .context("into_optimized")?
            .into_runnable()
            .context("into_runnable")?;
        let prepare_ms = t0.elapsed().as_secs_f64() * 1e3;
        let mut state = plan.spawn()?;
        let input: TValue = Tensor::from(x).into_tvalue();

        // Check the output against PyTorch's before timing anything.
        let out = state.run(tvec!(input.clone()))?;
        let y = out[0].to_plain_array_view::<f32>()?;
        if y.shape() != y_ref.shape() {
            bail!("T={t}: output shape {:?}, expected {:?}", y.shape(), y_ref.shape());
        }
        let err = y.iter().zip(y_ref.iter()).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        let mut entry = Map::new();
        entry.insert("max_abs_err".into(), json!(err));
        entry.insert("prepare_ms".into(), json!(prepare_ms));
        if !(err <= a.atol) {
            eprintln!("peers-tract: T={t}: output differs from PyTorch by {err} > {}", a.atol);
            entry.insert("error".into(), json!(format!("output differs from PyTorch by {err}")));
            lengths.insert(t.to_string(), Value::Object(entry));
            code = 2;
            continue;
        }
        drop(out);

        let w0 = Instant::now();
        let mut n = 0;
        while n < a.warmup_iters || w0.elapsed().as_secs_f64() < a.warmup_seconds {
            black_box(state.run(tvec!(input.clone()))?);
            n += 1;
        }
        let mut samples = Vec::new();
        let m0 = Instant::now();
        while samples.len() < a.min_iters || m0.elapsed().as_secs_f64() < a.seconds {
            let c0 = Instant::now();
            let out = state.run(tvec!(black_box(input.clone())))?;
            drop(black_box(out));
            samples.push(c0.elapsed().as_secs_f64() * 1e3);
        }
        let mut sorted = samples.clone();
        sorted.sort_by(f64::total_cmp);
        entry.insert("median_ms".into(), json!(percentile(&sorted, 50.0)));
        entry.insert("p95_ms".into(), json!(percentile(&sorted, 95.0)));
        entry.insert("min_ms".into(), json!(sorted[0]));
        entry.insert("iterations".into(), json!(samples.len()));
        if a.samples {
            entry.insert("samples_ms".into(), json!(samples));
        }
        lengths.insert(t.to_string(), Value::Object(entry));
    }
    println!(
        "{}",
        json!({"system": "tract", "version": tract_version(), "threads": 1, "lengths": lengths})
    );
    Ok(code)
}
