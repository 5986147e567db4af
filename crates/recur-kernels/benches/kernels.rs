//! Kernel benchmarks named after recur's workloads (batch-1 recurrent step at hidden 128).
//!
//! `*_reference` runs the same workload on the reference family, the in-tree A/B baseline.
//! Run: `cargo bench -p recur-kernels --bench kernels -- --warm-up-time 1 --measurement-time 3`.
//!
//! * `gemv_h128_3h`: `W_hh · h` for a GRU, `W` = 384×128 `f32` packed (196 KB: L2-resident).
//! * `gemv_h128_4h`: the same for an LSTM, 512×128.
//! * `gemv_h128_3h_f16`, `gemv_h128_3h_int8`: the GRU GEMV with half-float (98 KB) or int8
//!   (49 KB + scales) weights.
//! * `gru_fwd_h128_b1`, `lstm_fwd_h128_b1`, `gru_bwd_h128_b1`: the fused gate epilogues.
//! * `gru_step_h128_b1`: one full recurrent GRU step, GEMV (bias via `Accum::Add`) + epilogue.
//! * `exp_1024`, `sigmoid_1024`, `tanh_1024`: the activations alone (copy-in included).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use recur_kernels::{kernels, Accum, KernelChoice, Kernels, Precision, QuantGemv};

const H: usize = 128;

fn rand_vec(rng: &mut ChaCha8Rng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
}

/// The two families with their bench-name suffixes.
fn families() -> [(Kernels, &'static str); 2] {
    [
        (kernels(KernelChoice::Best), ""),
        (kernels(KernelChoice::Reference), "_reference"),
    ]
}

fn gemv(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for (gates, name) in [(3, "gemv_h128_3h"), (4, "gemv_h128_4h")] {
        let rows = gates * H;
        let w = rand_vec(&mut rng, rows * H);
        let x = rand_vec(&mut rng, H);
        for (k, suffix) in families() {
            let p = k.pack_gemv(&w, rows, H);
            let mut y = vec![0.0f32; rows];
            c.bench_function(&format!("{name}{suffix}"), |b| {
                b.iter(|| k.gemv(&p, black_box(&x), black_box(&mut y), Accum::Replace))
            });
        }
    }
}

/// `gemv_h128_3h_f16`, `gemv_h128_3h_int8` (and `_reference`): the GRU recurrent GEMV with
/// reduced-precision weights, through [`Kernels::gemm_quant`] at one row.
fn gemv_quant(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let rows = 3 * H;
    let w = rand_vec(&mut rng, rows * H);
    let x = rand_vec(&mut rng, H);
    for prec in [Precision::F16, Precision::Int8] {
        let p = QuantGemv::new(&w, rows, H, prec);
        for (k, suffix) in families() {
            let mut y = vec![0.0f32; rows];
            c.bench_function(&format!("gemv_h128_3h_{}{suffix}", prec.name()), |b| {
                b.iter(|| k.gemm_quant(&p, 1, black_box(&x), black_box(&mut y), Accum::Replace))
            });
        }
    }
}

fn gates(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let (gi, gh) = (rand_vec(&mut rng, 3 * H), rand_vec(&mut rng, 3 * H));
    let (hp, dh) = (rand_vec(&mut rng, H), rand_vec(&mut rng, H));
    let a0: Vec<f32> = rand_vec(&mut rng, 4 * H).iter().map(|v| v * 4.0).collect();
    for (k, suffix) in families() {
        let (mut h_out, mut cache) = (vec![0.0f32; H], vec![0.0f32; 4 * H]);
        c.bench_function(&format!("gru_fwd_h128_b1{suffix}"), |b| {
            b.iter(|| k.gru_fwd(1, H, black_box(&gi), black_box(&gh), &hp, &mut h_out, &mut cache))
        });
        let (mut dgi, mut dgh, mut dhp) = (vec![0.0f32; 3 * H], vec![0.0f32; 3 * H], vec![0.0f32; H]);
        c.bench_function(&format!("gru_bwd_h128_b1{suffix}"), |b| {
            b.iter(|| {
                k.gru_bwd(
                    1,
                    H,
                    black_box(&cache),
                    &hp,
                    black_box(&dh),
                    &mut dgi,
                    &mut dgh,
                    &mut dhp,
                )
            })
        });
        let (mut a, mut c_out) = (a0.clone(), vec![0.0f32; H]);
        c.bench_function(&format!("lstm_fwd_h128_b1{suffix}"), |b| {
            b.iter(|| {
                a.copy_from_slice(&a0);
                k.lstm_fwd(1, H, black_box(&mut a), &hp, &mut c_out, &mut h_out)
            })
        });
    }
}

fn gru_step(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (w_hh, b_hh) = (rand_vec(&mut rng, 3 * H * H), rand_vec(&mut rng, 3 * H));
    let gi = rand_vec(&mut rng, 3 * H);
    for (k, suffix) in families() {
        let p = k.pack_gemv(&w_hh, 3 * H, H);
        let (mut h, mut h_next) = (rand_vec(&mut rng, H), vec![0.0f32; H]);
        let (mut gh, mut cache) = (vec![0.0f32; 3 * H], vec![0.0f32; 4 * H]);
        c.bench_function(&format!("gru_step_h128_b1{suffix}"), |b| {
            b.iter(|| {
                gh.copy_from_slice(&b_hh);
                k.gemv(&p, &h, &mut gh, Accum::Add);
                k.gru_fwd(1, H, black_box(&gi), &gh, &h, &mut h_next, &mut cache);
                std::mem::swap(&mut h, &mut h_next);
            })
        });
    }
}

fn activations(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let x: Vec<f32> = rand_vec(&mut rng, 1024).iter().map(|v| v * 8.0).collect();
    let mut y = x.clone();
    for (k, suffix) in families() {
        c.bench_function(&format!("exp_1024{suffix}"), |b| {
            b.iter(|| {
                y.copy_from_slice(&x);
                k.exp(black_box(&mut y))
            })
        });
        c.bench_function(&format!("sigmoid_1024{suffix}"), |b| {
            b.iter(|| {
                y.copy_from_slice(&x);
                k.sigmoid(black_box(&mut y))
            })
        });
        c.bench_function(&format!("tanh_1024{suffix}"), |b| {
            b.iter(|| {
                y.copy_from_slice(&x);
                k.tanh(black_box(&mut y))
            })
        });
    }
}

criterion_group!(benches, gemv, gemv_quant, gates, gru_step, activations);
criterion_main!(benches);
