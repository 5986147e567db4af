//! Interleaved A/B timing of the escalation model's inference variants (f32 on 1 and 2 threads,
//! f16 and int8 weights), plus the input-projection GEMM choices, on a machine shared with
//! other jobs: every round times each variant once, in rotating order, so load drift hits all
//! variants alike. Prints median, p95 and min (ms) per variant and length, and the ratio of
//! each median to the first variant's.
//!
//! Run: `cargo bench -p recur-nn --bench variants -- [ROUNDS]` (default 400 rounds).

use std::hint::black_box;
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use recur_kernels::{kernels, Accum, KernelChoice, MatMut, MatRef};
use recur_nn::init::normal;
use recur_nn::{CellKind, Precision, Rnn, RnnConfig, SeqBatch, State};

fn model() -> Rnn<f32> {
    let mut cfg = RnnConfig::new(CellKind::Gru, 64, 128);
    cfg.num_layers = 2;
    cfg.bidirectional = true;
    Rnn::new(cfg, &mut ChaCha8Rng::seed_from_u64(0)).unwrap()
}

/// Median, p95 (nearest rank) and minimum.
fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let at = |p: f64| v[((p * v.len() as f64 / 100.0).ceil() as usize).clamp(1, v.len()) - 1];
    (at(50.0), at(95.0), v[0])
}

/// A named variant: one call of the workload.
type Variant<'a> = (&'static str, Box<dyn FnMut() + 'a>);

/// Times every closure once per round, rotating the order, and prints median / p95.
fn interleave(title: &str, rounds: usize, variants: &mut [Variant<'_>]) {
    for (_, f) in variants.iter_mut() {
        for _ in 0..20 {
            f();
        }
    }
    let n = variants.len();
    let mut samples = vec![Vec::with_capacity(rounds); n];
    for r in 0..rounds {
        for j in 0..n {
            let i = (j + r) % n;
            let t0 = Instant::now();
            (variants[i].1)();
            samples[i].push(t0.elapsed().as_secs_f64() * 1e3);
        }
    }
    let base = stats(samples[0].clone()).0;
    println!("{title}");
    for ((name, _), s) in variants.iter().zip(samples) {
        let (med, p95, min) = stats(s);
        println!(
            "  {name:<24} median {med:>8.4} ms  p95 {p95:>8.4} ms  min {min:>8.4} ms  ratio {:>5.2}",
            med / base
        );
    }
}

fn main() {
    let rounds: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(400);
    let base = model();
    let variant = |threads: usize, prec: Precision| {
        let mut m = base.clone();
        m.set_threads(threads).unwrap();
        m.set_precision(prec);
        m
    };
    let models = [
        ("f32 1 thread", variant(1, Precision::F32)),
        ("f32 2 threads", variant(2, Precision::F32)),
        ("f16 1 thread", variant(1, Precision::F16)),
        ("int8 1 thread", variant(1, Precision::Int8)),
        ("f16 2 threads", variant(2, Precision::F16)),
        ("int8 2 threads", variant(2, Precision::Int8)),
    ];
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for t in [18usize, 112] {
        let x: Vec<f32> = (0..t * 64).map(|_| normal(&mut rng) as f32).collect();
        let mut vs: Vec<Variant<'_>> = models
            .iter()
            .map(|(name, m)| {
                let x = &x;
                let f: Box<dyn FnMut()> = Box::new(move || {
                    black_box(
                        m.forward(&SeqBatch::batch_first(x, 1, t, 64), &State::default())
                            .unwrap(),
                    );
                });
                (*name, f)
            })
            .collect();
        interleave(&format!("infer_bigru2_h128_t{t}_b1 ({rounds} rounds)"), rounds, &mut vs);
    }
    // Fork-join overhead: a persistent helper (spin, then park) vs a scoped thread per call.
    let helper = recur_kernels::par::Helper::new().unwrap();
    let mut vs: Vec<Variant<'_>> = vec![
        (
            "Helper::join (no-op)",
            Box::new(|| {
                black_box(helper.join(|| black_box(1), || black_box(2)));
            }),
        ),
        (
            "thread::scope spawn",
            Box::new(|| {
                std::thread::scope(|s| {
                    let h = s.spawn(|| black_box(2));
                    black_box((black_box(1), h.join().unwrap()));
                })
            }),
        ),
    ];
    interleave("fork-join of two no-op closures", rounds, &mut vs);
    // Input projection: general GEMM (packs per call) vs the pre-packed panel kernel.
    let k = kernels(KernelChoice::Best);
    for input in [64usize, 256] {
        let w: Vec<f32> = (0..384 * input).map(|_| normal(&mut rng) as f32).collect();
        let p = k.pack_gemv(&w, 384, input);
        for n in [18usize, 112, 256, 1024] {
            let x: Vec<f32> = (0..n * input).map(|_| normal(&mut rng) as f32).collect();
            let mut y1 = vec![0.0f32; n * 384];
            let mut y2 = vec![0.0f32; n * 384];
            let mut vs: Vec<Variant<'_>> = vec![
                (
                    "gemm (matrixmultiply)",
                    Box::new(|| {
                        k.gemm(
                            MatRef::new(&x, n, input),
                            MatRef::new(&w, 384, input).t(),
                            MatMut::new(&mut y1, n, 384),
                            Accum::Replace,
                        )
                    }),
                ),
                (
                    "gemm_packed (panel8)",
                    Box::new(|| k.gemm_packed(&p, n, &x, &mut y2, Accum::Replace)),
                ),
            ];
            interleave(&format!("input projection {n}x{input} -> 384"), rounds, &mut vs);
        }
    }
}
