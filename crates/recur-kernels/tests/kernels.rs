//! The kernel test battery.
//!
//! One macro-generated battery runs against every kernel family (`Best` and `Reference`, in
//! `f32` and `f64`) and compares each dispatched kernel with the plain functions in
//! `recur_kernels::reference`: explicit edge shapes that hit the 8-lane SIMD tails
//! (`h ∈ {1, 7, 8, 9, 15, 16, 17, 127, 128, 129}`, `n ∈ {1, 2, 3, 5}`) and proptest over random
//! shapes, at input scales up to 1e4 so every activation saturates. Tolerances are about 1e-6
//! (`8·ε`) relative to the magnitudes that actually enter each output, so ill-conditioned
//! outputs (e.g. `tanh(gi_n + gh_n·r)` near a cancellation) do not make the tests flaky.
//!
//! Separately: a check that the fast path is actually selected, the panel layout, shape
//! contracts and NaN propagation. The vectorized `exp`/`sigmoid`/`tanh` have their own file
//! (`tests/math.rs`), and so do reduced-precision weights (`tests/quant.rs`).

mod common;

use common::{assert_close, rand_vec, rel, tol};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use recur_kernels::gates::{GRU_CACHE, GRU_GATES, LSTM_GATES};
use recur_kernels::packed::gemv_portable;
use recur_kernels::{
    kernels, reference, Accum, Float, GemvLayout, KernelChoice, Kernels, MatMut, MatRef, PackedGemv, Simd,
};

/// Row widths that hit every tail case of 8-lane code.
const WIDTHS: [usize; 10] = [1, 7, 8, 9, 15, 16, 17, 127, 128, 129];
/// Batch rows.
const ROWS: [usize; 4] = [1, 2, 3, 5];
/// Input magnitudes: ordinary, saturating, overflowing `exp`, far past saturation.
const SCALES: [f64; 4] = [1.0, 10.0, 200.0, 1e4];

fn check_rnn<T: Float>(k: Kernels, n: usize, h: usize, seed: u64, scale: f64, relu: bool) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (gi, gh) = (
        rand_vec::<T>(&mut rng, n * h, scale),
        rand_vec::<T>(&mut rng, n * h, scale),
    );
    let (mut got, mut want) = (vec![T::zero(); n * h], vec![T::zero(); n * h]);
    k.rnn_fwd(n, h, &gi, &gh, relu, &mut got);
    reference::rnn_fwd(n, h, &gi, &gh, relu, &mut want);
    assert_close(&format!("rnn_fwd relu={relu} n={n} h={h}"), &got, &want, rel(&want));
}

fn check_gru_fwd<T: Float>(k: Kernels, n: usize, h: usize, seed: u64, scale: f64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let g = GRU_GATES * h;
    let (gi, gh) = (
        rand_vec::<T>(&mut rng, n * g, scale),
        rand_vec::<T>(&mut rng, n * g, scale),
    );
    let hp = rand_vec::<T>(&mut rng, n * h, 1.0);
    let (mut got_h, mut want_h) = (vec![T::zero(); n * h], vec![T::zero(); n * h]);
    let (mut got_c, mut want_c) = (vec![T::zero(); n * GRU_CACHE * h], vec![T::zero(); n * GRU_CACHE * h]);
    k.gru_fwd(n, h, &gi, &gh, &hp, &mut got_h, &mut got_c);
    reference::gru_fwd(n, h, &gi, &gh, &hp, &mut want_h, &mut want_c);
    let cache = |b: usize, chunk: usize, j: usize| want_c[b * GRU_CACHE * h + chunk * h + j].f64();
    // The derivative of `n` w.r.t. the rounding of `r` is `(1 − n²)·gh_n·r`.
    let n_sens = |b, j| {
        let nn = cache(b, 2, j);
        (1.0 - nn * nn) * (cache(b, 3, j) * cache(b, 0, j)).abs()
    };
    let what = format!("gru_fwd n={n} h={h} scale={scale}");
    assert_close(&format!("{what} h_out"), &got_h, &want_h, |i| {
        let (b, j) = (i / h, i % h);
        tol::<T>() * (1.0 + hp[i].f64().abs() + n_sens(b, j) * (1.0 - cache(b, 1, j)))
    });
    assert_close(&format!("{what} cache"), &got_c, &want_c, |i| {
        let (b, chunk, j) = (i / (GRU_CACHE * h), i % (GRU_CACHE * h) / h, i % h);
        let extra = if chunk == 2 { n_sens(b, j) } else { 0.0 };
        tol::<T>() * (want_c[i].f64().abs() + extra)
    });
}

fn check_gru_bwd<T: Float>(k: Kernels, n: usize, h: usize, seed: u64, scale: f64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let g = GRU_GATES * h;
    let (gi, gh) = (
        rand_vec::<T>(&mut rng, n * g, scale),
        rand_vec::<T>(&mut rng, n * g, scale),
    );
    let (hp, dh) = (
        rand_vec::<T>(&mut rng, n * h, 1.0),
        rand_vec::<T>(&mut rng, n * h, scale),
    );
    let (mut hout, mut cache) = (vec![T::zero(); n * h], vec![T::zero(); n * GRU_CACHE * h]);
    reference::gru_fwd(n, h, &gi, &gh, &hp, &mut hout, &mut cache);
    let mut got = (vec![T::zero(); n * g], vec![T::zero(); n * g], vec![T::zero(); n * h]);
    let mut want = got.clone();
    k.gru_bwd(n, h, &cache, &hp, &dh, &mut got.0, &mut got.1, &mut got.2);
    reference::gru_bwd(n, h, &cache, &hp, &dh, &mut want.0, &mut want.1, &mut want.2);
    let what = format!("gru_bwd n={n} h={h} scale={scale}");
    assert_close(&format!("{what} dgi"), &got.0, &want.0, rel(&want.0));
    assert_close(&format!("{what} dgh"), &got.1, &want.1, rel(&want.1));
    assert_close(&format!("{what} dh_prev"), &got.2, &want.2, rel(&want.2));
}

fn check_lstm_fwd<T: Float>(k: Kernels, n: usize, h: usize, seed: u64, scale: f64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let a0 = rand_vec::<T>(&mut rng, n * LSTM_GATES * h, scale);
    let cp = rand_vec::<T>(&mut rng, n * h, scale.min(10.0));
    let (mut got_a, mut want_a) = (a0.clone(), a0);
    let (mut got_c, mut want_c) = (vec![T::zero(); n * h], vec![T::zero(); n * h]);
    let (mut got_h, mut want_h) = (vec![T::zero(); n * h], vec![T::zero(); n * h]);
    k.lstm_fwd(n, h, &mut got_a, &cp, &mut got_c, &mut got_h);
    reference::lstm_cell_fwd(n, h, &mut want_a, &cp, None, &mut want_c);
    reference::lstm_hidden_fwd(n, h, &want_a, &want_c, &mut want_h);
    let what = format!("lstm_fwd n={n} h={h} scale={scale}");
    let state = |i: usize| tol::<T>() * (1.0 + cp[i].f64().abs());
    assert_close(&format!("{what} gates"), &got_a, &want_a, rel(&want_a));
    assert_close(&format!("{what} c_out"), &got_c, &want_c, state);
    assert_close(&format!("{what} h_out"), &got_h, &want_h, state);
}

/// `W · x` in `f64` and the rounding bound `(cols + 2)·ε·Σ|W||x|` for each row.
fn gemv_truth<T: Float>(w: &[T], x: &[T], rows: usize, cols: usize) -> (Vec<f64>, Vec<f64>) {
    (0..rows)
        .map(|i| {
            let terms = (0..cols).map(|k| w[i * cols + k].f64() * x[k].f64());
            let (s, a) = terms.fold((0.0, 0.0), |(s, a), t| (s + t, a + t.abs()));
            (s, (cols as f64 + 2.0) * T::epsilon().f64() * a)
        })
        .unzip()
}

fn check_gemv<T: Float>(k: Kernels, rows: usize, cols: usize, seed: u64, scale: f64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (w, x) = (
        rand_vec::<T>(&mut rng, rows * cols, scale),
        rand_vec::<T>(&mut rng, cols, 1.0),
    );
    let y0 = rand_vec::<T>(&mut rng, rows, scale);
    let (truth, bound) = gemv_truth(&w, &x, rows, cols);
    let packs = [
        k.pack_gemv(&w, rows, cols),
        PackedGemv::new(&w, rows, cols, GemvLayout::RowMajor),
    ];
    let packs = packs
        .into_iter()
        .chain([PackedGemv::new(&w, rows, cols, GemvLayout::Panel8)]);
    for p in packs {
        for accum in [Accum::Replace, Accum::Add] {
            let mut y = y0.clone();
            k.gemv(&p, &x, &mut y, accum);
            let base = |i: usize| if accum == Accum::Add { y0[i].f64() } else { 0.0 };
            let want: Vec<T> = (0..rows).map(|i| T::of(base(i) + truth[i])).collect();
            let what = format!("gemv {rows}x{cols} {:?} {accum:?}", p.layout());
            assert_close(&what, &y, &want, |i| {
                bound[i] + 2.0 * T::epsilon().f64() * (want[i].f64().abs() + base(i).abs())
            });
        }
    }
}

/// `gemm_packed` over `n` rows equals `n` exact GEMVs, for every packing and accumulate mode.
fn check_gemm_packed<T: Float>(k: Kernels, n: usize, rows: usize, cols: usize, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let w = rand_vec::<T>(&mut rng, rows * cols, 1.0);
    let x = rand_vec::<T>(&mut rng, n * cols, 1.0);
    let y0 = rand_vec::<T>(&mut rng, n * rows, 1.0);
    let packs = [
        k.pack_gemv(&w, rows, cols),
        PackedGemv::new(&w, rows, cols, GemvLayout::RowMajor),
        PackedGemv::new(&w, rows, cols, GemvLayout::Panel8),
    ];
    for p in packs {
        for accum in [Accum::Replace, Accum::Add] {
            let mut y = y0.clone();
            k.gemm_packed(&p, n, &x, &mut y, accum);
            for r in 0..n {
                let (truth, bound) = gemv_truth(&w, &x[r * cols..(r + 1) * cols], rows, cols);
                let base = |i: usize| {
                    if accum == Accum::Add {
                        y0[r * rows + i].f64()
                    } else {
                        0.0
                    }
                };
                let want: Vec<T> = (0..rows).map(|i| T::of(base(i) + truth[i])).collect();
                let what = format!("gemm_packed n={n} row {r} {rows}x{cols} {:?} {accum:?}", p.layout());
                assert_close(&what, &y[r * rows..(r + 1) * rows], &want, |i| {
                    bound[i] + 2.0 * T::epsilon().f64() * (want[i].f64().abs() + base(i).abs())
                });
            }
        }
    }
}

/// One strided operand: `[rows, cols]` stored row-major, column-major or with a padded
/// leading dimension, in a buffer with a few spare elements.
fn strided<T: Float>(rng: &mut ChaCha8Rng, rows: usize, cols: usize, kind: usize) -> (Vec<T>, usize, usize) {
    let (rs, cs) = match kind {
        0 => (cols, 1),
        1 => (1, rows),
        _ => (cols + 3, 1),
    };
    (
        rand_vec(rng, rows * cols.max(1) + rows * 3 + cols * rows + 1, 1.0),
        rs,
        cs,
    )
}

fn check_gemm<T: Float>(k: Kernels, m: usize, kk: usize, n: usize, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for kinds in [(0, 0, 0), (1, 1, 0), (2, 1, 2), (1, 2, 1)] {
        let (a, ars, acs) = strided::<T>(&mut rng, m, kk, kinds.0);
        let (b, brs, bcs) = strided::<T>(&mut rng, kk, n, kinds.1);
        let (c0, crs, ccs) = strided::<T>(&mut rng, m, n, kinds.2);
        let av = MatRef {
            data: &a,
            rows: m,
            cols: kk,
            rs: ars,
            cs: acs,
        };
        let bv = MatRef {
            data: &b,
            rows: kk,
            cols: n,
            rs: brs,
            cs: bcs,
        };
        for accum in [Accum::Replace, Accum::Add] {
            let mut c = c0.clone();
            k.gemm(
                av,
                bv,
                MatMut {
                    data: &mut c,
                    rows: m,
                    cols: n,
                    rs: crs,
                    cs: ccs,
                },
                accum,
            );
            let mut want = c0.clone();
            reference::gemm(
                av,
                bv,
                MatMut {
                    data: &mut want,
                    rows: m,
                    cols: n,
                    rs: crs,
                    cs: ccs,
                },
                accum,
            );
            let mut inside = vec![false; c.len()];
            let mut bound = vec![0.0; c.len()];
            for i in 0..m {
                for j in 0..n {
                    let abs: f64 = (0..kk)
                        .map(|p| (a[i * ars + p * acs] * b[p * brs + j * bcs]).f64().abs())
                        .sum();
                    inside[i * crs + j * ccs] = true;
                    bound[i * crs + j * ccs] =
                        2.0 * (kk as f64 + 2.0) * T::epsilon().f64() * (abs + c0[i * crs + j * ccs].f64().abs());
                }
            }
            for (idx, _) in inside.iter().enumerate().filter(|(_, &v)| !v) {
                assert_eq!(c[idx], c0[idx], "gemm wrote outside its view at {idx}");
            }
            assert_close(
                &format!("gemm {m}x{kk}x{n} strides {kinds:?} {accum:?}"),
                &c,
                &want,
                |i| bound[i],
            );
        }
    }
}

/// Shapes, seed and input scale for the proptest cases.
fn shape() -> impl Strategy<Value = (usize, usize, u64, f64)> {
    (
        1usize..=5,
        1usize..=140,
        any::<u64>(),
        prop::sample::select(SCALES.to_vec()),
    )
}

macro_rules! battery {
    ($name:ident, $choice:expr, $t:ty) => {
        mod $name {
            use super::*;

            fn k() -> Kernels {
                kernels($choice)
            }

            /// Every `(n, h, scale)` edge combination with a distinct seed.
            fn edges(mut f: impl FnMut(usize, usize, u64, f64)) {
                let mut seed = 0;
                for n in ROWS {
                    for h in WIDTHS {
                        for s in SCALES {
                            seed += 1;
                            f(n, h, seed, s);
                        }
                    }
                }
            }

            #[test]
            fn rnn_fwd_tanh_edges() {
                edges(|n, h, seed, s| check_rnn::<$t>(k(), n, h, seed, s, false));
            }

            #[test]
            fn rnn_fwd_relu_edges() {
                edges(|n, h, seed, s| check_rnn::<$t>(k(), n, h, seed, s, true));
            }

            #[test]
            fn gru_fwd_edges() {
                edges(|n, h, seed, s| check_gru_fwd::<$t>(k(), n, h, seed, s));
            }

            #[test]
            fn gru_bwd_edges() {
                edges(|n, h, seed, s| check_gru_bwd::<$t>(k(), n, h, seed, s));
            }

            #[test]
            fn lstm_fwd_edges() {
                edges(|n, h, seed, s| check_lstm_fwd::<$t>(k(), n, h, seed, s));
            }

            #[test]
            fn gemv_edges() {
                let mut seed = 0;
                for rows in WIDTHS.into_iter().chain([3 * 128, 4 * 128, 3 * 129]) {
                    for cols in WIDTHS.into_iter().chain([0]) {
                        seed += 1;
                        check_gemv::<$t>(k(), rows, cols, seed, 1.0);
                    }
                }
            }

            #[test]
            fn gemm_packed_edges() {
                let mut seed = 1000;
                for n in [1, 2, 3, 4, 5, 7, 8, 9] {
                    for rows in [1, 7, 8, 9, 17, 63, 64, 65, 3 * 128, 3 * 129] {
                        for cols in [1, 7, 8, 9, 128, 129] {
                            seed += 1;
                            check_gemm_packed::<$t>(k(), n, rows, cols, seed);
                        }
                    }
                }
            }

            #[test]
            fn gemm_strided_edges() {
                let sizes = [1, 7, 8, 9, 17, 33];
                let mut seed = 0;
                for m in sizes {
                    for kk in sizes {
                        for n in sizes {
                            seed += 1;
                            check_gemm::<$t>(k(), m, kk, n, seed);
                        }
                    }
                }
            }

            proptest! {
                #[test]
                fn rnn_fwd_prop((n, h, seed, s) in shape(), relu in any::<bool>()) {
                    check_rnn::<$t>(k(), n, h, seed, s, relu);
                }

                #[test]
                fn gru_fwd_prop((n, h, seed, s) in shape()) {
                    check_gru_fwd::<$t>(k(), n, h, seed, s);
                }

                #[test]
                fn gru_bwd_prop((n, h, seed, s) in shape()) {
                    check_gru_bwd::<$t>(k(), n, h, seed, s);
                }

                #[test]
                fn lstm_fwd_prop((n, h, seed, s) in shape()) {
                    check_lstm_fwd::<$t>(k(), n, h, seed, s);
                }

                #[test]
                fn gemv_prop(rows in 1usize..=400, cols in 1usize..=200, seed in any::<u64>(), s in 0.01f64..100.0) {
                    check_gemv::<$t>(k(), rows, cols, seed, s);
                }

                #[test]
                fn gemm_prop(m in 1usize..=40, kk in 1usize..=40, n in 1usize..=40, seed in any::<u64>()) {
                    check_gemm::<$t>(k(), m, kk, n, seed);
                }
            }
        }
    };
}

battery!(best_f32, KernelChoice::Best, f32);
battery!(reference_f32, KernelChoice::Reference, f32);
battery!(best_f64, KernelChoice::Best, f64);

/// On a CPU with AVX2 and FMA the `Best` family must be the AVX2+FMA one, and its GEMV
/// packing must use the panel layout; `Reference` must stay portable.
#[test]
fn fast_path_is_selected_on_avx2() {
    let best = kernels(KernelChoice::Best);
    let reference = kernels(KernelChoice::Reference);
    assert_eq!((reference.simd(), reference.name()), (Simd::None, "reference"));
    assert_eq!(reference.pack_gemv(&[1.0f32; 6], 2, 3).layout(), GemvLayout::RowMajor);
    assert_eq!(best.pack_gemv(&[1.0f64; 6], 2, 3).layout(), GemvLayout::RowMajor);
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        assert_eq!(best.simd(), Simd::Avx2Fma);
        assert_eq!(best.name(), "avx2+fma");
        assert_eq!(best.pack_gemv(&[1.0f32; 6], 2, 3).layout(), GemvLayout::Panel8);
        return;
    }
    assert_eq!((best.simd(), best.name()), (Simd::None, "portable"));
}

/// The panel layout: groups of up to 8 panels of 8 rows, interleaved by column, the last panel
/// zero-padded. 75 rows = 10 panels = a group of 8 and a group of 2.
#[test]
fn panel8_layout_and_padding() {
    let (rows, cols) = (75, 3);
    let w: Vec<f32> = (0..rows * cols).map(|v| v as f32 + 1.0).collect();
    let p = PackedGemv::new(&w, rows, cols, GemvLayout::Panel8);
    let d = p.as_slice();
    assert_eq!(d.len(), 80 * cols);
    assert_eq!(d.as_ptr() as usize % 32, 0);
    for i in 0..80 {
        let (g, q, group_panels) = (i / 64, (i / 8) % 8, if i < 64 { 8 } else { 2 });
        for k in 0..cols {
            let want = if i < rows { w[i * cols + k] } else { 0.0 };
            assert_eq!(
                d[g * 64 * cols + (k * group_panels + q) * 8 + i % 8],
                want,
                "W[{i}, {k}]"
            );
        }
    }
    for layout in [GemvLayout::Panel8, GemvLayout::RowMajor] {
        let p = PackedGemv::new(&w, rows, cols, layout);
        let mut y = vec![0.0f32; rows];
        gemv_portable(&p, &[1.0, 0.0, 0.0], &mut y, Accum::Replace);
        assert_eq!(y, (0..rows).map(|i| w[i * cols]).collect::<Vec<_>>(), "{layout:?}");
    }
}

/// Shape contract of the GEMV.
#[test]
#[should_panic(expected = "gemv: x has")]
fn gemv_rejects_short_x() {
    let k = kernels(KernelChoice::Best);
    let p = k.pack_gemv(&[1.0f32; 12], 3, 4);
    k.gemv(&p, &[1.0; 3], &mut [0.0; 3], Accum::Replace);
}

/// PyTorch's `relu(NaN)` is NaN; a NaN must never turn into a plausible activation.
#[test]
fn relu_propagates_nan_in_every_family() {
    for choice in [KernelChoice::Best, KernelChoice::Reference] {
        let k = kernels(choice);
        let gi = [f32::NAN, -1.0, 2.0, 0.5, f32::NAN, 3.0, -4.0, 1.0, f32::NAN];
        let gh = [0.0f32; 9];
        let mut out = [0.0f32; 9];
        k.rnn_fwd(1, 9, &gi, &gh, true, &mut out);
        assert!(
            out[0].is_nan() && out[4].is_nan() && out[8].is_nan(),
            "{choice:?}: {out:?}"
        );
        assert_eq!(&out[1..4], &[0.0, 2.0, 0.5]);
    }
}
