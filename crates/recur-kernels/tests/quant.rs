//! Reduced-precision weights (`recur_kernels::quant`): every family's `gemm_quant` against the
//! portable reference at tail shapes and random shapes, the quantization error bounds, and
//! the selection of the SIMD path.

mod common;

use common::{assert_close, rand_vec};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use recur_kernels::quant::{f16_bits, f16_value, gemm_portable};
use recur_kernels::{kernels, Accum, KernelChoice, Kernels, Precision, QuantGemv};

const PRECISIONS: [Precision; 2] = [Precision::F16, Precision::Int8];

/// `k.gemm_quant` equals the reference: bit for bit for Int8 (exact integer sums, same
/// `f32` epilogue), up to summation order for F16:
/// `|fast − ref| ≤ (2·cols + 6)·ε·Σ_k |Ŵ[i,k]·x[k]|` (+ the accumulated base).
fn check(k: Kernels, prec: Precision, n: usize, rows: usize, cols: usize, seed: u64, scale: f64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let w = rand_vec::<f32>(&mut rng, rows * cols, scale);
    let x = rand_vec::<f32>(&mut rng, n * cols, 1.0);
    let y0 = rand_vec::<f32>(&mut rng, n * rows, scale);
    let p = QuantGemv::new(&w, rows, cols, prec);
    let wd = p.dequantize();
    for accum in [Accum::Replace, Accum::Add] {
        let (mut got, mut want) = (y0.clone(), y0.clone());
        k.gemm_quant(&p, n, &x, &mut got, accum);
        gemm_portable(&p, n, &x, &mut want, accum);
        if prec == Precision::Int8 {
            assert_same_bits(&format!("gemm_quant Int8 n={n} {rows}x{cols} {accum:?}"), &got, &want);
            continue;
        }
        let eps = f32::EPSILON as f64;
        for r in 0..n {
            let what = format!("gemm_quant {prec:?} n={n} row {r} {rows}x{cols} {accum:?}");
            assert_close(
                &what,
                &got[r * rows..(r + 1) * rows],
                &want[r * rows..(r + 1) * rows],
                |i| {
                    let a: f64 = (0..cols)
                        .map(|c| (wd[i * cols + c] as f64 * x[r * cols + c] as f64).abs())
                        .sum();
                    let base = if accum == Accum::Add {
                        y0[r * rows + i].abs() as f64
                    } else {
                        0.0
                    };
                    (2.0 * cols as f64 + 6.0) * eps * a + 4.0 * eps * base
                },
            );
        }
    }
}

/// Bit-for-bit equality (any NaN matches any NaN).
#[track_caller]
fn assert_same_bits(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.to_bits() == w.to_bits() || g.is_nan() && w.is_nan(),
            "{what}[{i}]: got {g:e} ({:#010x}), want {w:e} ({:#010x})",
            g.to_bits(),
            w.to_bits()
        );
    }
}

fn families() -> [Kernels; 2] {
    [kernels(KernelChoice::Best), kernels(KernelChoice::Reference)]
}

#[test]
fn gemm_quant_edges() {
    let mut seed = 5000;
    for prec in PRECISIONS {
        for n in [1, 2, 3, 4, 5, 8, 9] {
            for rows in [1, 7, 8, 9, 17, 63, 64, 65, 129, 3 * 128] {
                for cols in [1, 7, 8, 9, 127, 128, 129] {
                    seed += 1;
                    for k in families() {
                        check(k, prec, n, rows, cols, seed, 1.0);
                    }
                }
            }
        }
    }
}

proptest! {
    #[test]
    fn gemm_quant_prop(n in 1usize..=9, rows in 1usize..=200, cols in 1usize..=140,
                       seed in any::<u64>(), s in 0.01f64..100.0, int8 in any::<bool>()) {
        let prec = if int8 { Precision::Int8 } else { Precision::F16 };
        check(kernels(KernelChoice::Best), prec, n, rows, cols, seed, s);
    }
}

/// Elementwise: `|W − Ŵ| ≤ s_i/2` for int8 (and `s_i = max|W_i·|/127`), and
/// `|W − Ŵ| ≤ max(2⁻¹¹·|W|, 2⁻²⁵)` for half floats; half-float products then obey
/// `|Ŵx − Wx| ≤ Σ_k |W − Ŵ|·|x|` (+ rounding).
#[test]
fn quantization_error_is_bounded() {
    let (rows, cols) = (3 * 128 + 5, 131);
    let mut rng = ChaCha8Rng::seed_from_u64(77);
    let mut w = rand_vec::<f32>(&mut rng, rows * cols, 0.1);
    w[cols..2 * cols].iter_mut().for_each(|v| *v = 0.0); // an all-zero row
    let x = rand_vec::<f32>(&mut rng, cols, 1.0);
    for prec in PRECISIONS {
        let p = QuantGemv::new(&w, rows, cols, prec);
        let wd = p.dequantize();
        for i in 0..rows {
            let row = &w[i * cols..(i + 1) * cols];
            let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            for (c, (&a, &b)) in row.iter().zip(&wd[i * cols..]).enumerate() {
                let bound = match prec {
                    Precision::Int8 => {
                        assert_eq!(p.scales()[i], max / 127.0);
                        (max / 127.0) as f64 * (0.5 + 1e-6)
                    }
                    // Below 2⁻¹⁴ half floats are subnormal: absolute spacing 2⁻²⁴.
                    _ => (a.abs() as f64 * 2f64.powi(-11)).max(2f64.powi(-25)),
                };
                assert!(((a - b) as f64).abs() <= bound, "{prec:?} W[{i},{c}] = {a} → {b}");
            }
        }
        if prec == Precision::Int8 {
            continue; // products also quantize `x`: see `int8_error_vs_f32_is_bounded`
        }
        let mut y = vec![0.0f32; rows];
        k_best().gemm_quant(&p, 1, &x, &mut y, Accum::Replace);
        for i in 0..rows {
            let exact: f64 = (0..cols).map(|c| w[i * cols + c] as f64 * x[c] as f64).sum();
            let err: f64 = (0..cols)
                .map(|c| ((w[i * cols + c] - wd[i * cols + c]) as f64 * x[c] as f64).abs())
                .sum();
            let abs: f64 = (0..cols).map(|c| (w[i * cols + c] as f64 * x[c] as f64).abs()).sum();
            let bound = err * (1.0 + 1e-3) + 2.0 * (cols as f64 + 2.0) * f32::EPSILON as f64 * abs;
            assert!((y[i] as f64 - exact).abs() <= bound, "{prec:?} row {i}");
        }
    }
}

fn k_best() -> Kernels {
    kernels(KernelChoice::Best)
}

#[test]
fn half_conversion_round_trips_and_rounds_to_nearest_even() {
    for bits in (0..=u16::MAX).step_by(7) {
        let v = f16_value(bits);
        if !v.is_nan() {
            assert_eq!(f16_bits(v), bits);
        }
    }
    assert_eq!(f16_value(f16_bits(1.0 + 2f32.powi(-11))), 1.0, "tie to even");
    assert_eq!(f16_value(f16_bits(70000.0)), f32::INFINITY);
}

/// On a CPU with AVX2, FMA and F16C the `Best` family takes the SIMD path for both
/// storage types; `Reference` never does.
#[test]
fn quant_fast_path_is_selected() {
    let reference = kernels(KernelChoice::Reference);
    for prec in PRECISIONS {
        assert!(!reference.quant_simd(prec));
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c") {
            assert!(k_best().quant_simd(prec), "{prec:?}");
        }
    }
    assert!(!k_best().quant_simd(Precision::F32));
}

/// `x` rows of assorted magnitudes for the int8 tests: ordinary, huge, tiny, around the
/// `2⁻¹²⁰` zero threshold, all zero, one lone value, and subnormal.
fn int8_rows(rng: &mut ChaCha8Rng, n: usize, cols: usize, kind: usize) -> Vec<f32> {
    let mut x = rand_vec::<f32>(rng, n * cols, 1.0);
    for (r, row) in x.chunks_exact_mut(cols).enumerate() {
        let scale: f32 = match (kind + r) % 9 {
            0 | 1 => 1.0,
            2 => 1e30,
            3 => 1e-30,
            4 => 2f32.powi(-119),
            5 => 2f32.powi(-121),
            6 => 0.0,
            7 => 1e-40, // subnormal
            _ => 37.0,
        };
        row.iter_mut().for_each(|v| *v *= scale);
        if (kind + r) % 9 == 8 {
            row.iter_mut().for_each(|v| *v = 0.0);
            row[cols / 2] = -37.0; // a lone value
        }
    }
    x
}

/// Every int8 instruction path this CPU has, against the portable reference, bit for bit;
/// plus the dispatched `Best` family.
#[allow(clippy::too_many_arguments)]
fn check_int8_paths(n: usize, rows: usize, cols: usize, seed: u64, wscale: f64, kind: usize, zero_w_row: bool) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut w = rand_vec::<f32>(&mut rng, rows * cols, wscale);
    if zero_w_row {
        w[..cols].iter_mut().for_each(|v| *v = 0.0);
    }
    let x = int8_rows(&mut rng, n, cols, kind);
    let y0 = rand_vec::<f32>(&mut rng, n * rows, 1.0);
    let p = QuantGemv::new(&w, rows, cols, Precision::Int8);
    for accum in [Accum::Replace, Accum::Add] {
        let mut want = y0.clone();
        gemm_portable(&p, n, &x, &mut want, accum);
        if wscale <= 1e3 {
            // (Larger weights times the 1e30 rows overflow `f32` in any precision.)
            assert!(want.iter().all(|v| v.is_finite()), "finite inputs give finite outputs");
        }
        let mut got = y0.clone();
        k_best().gemm_quant(&p, n, &x, &mut got, accum);
        let what = format!("Best n={n} {rows}x{cols} kind {kind} {accum:?}");
        assert_same_bits(&what, &got, &want);
        #[cfg(target_arch = "x86_64")]
        for path in Int8Path::ALL.into_iter().filter(|p| p.supported()) {
            let mut got = y0.clone();
            gemm_int8(path, &p, n, &x, &mut got, accum);
            let what = format!("{path:?} n={n} {rows}x{cols} kind {kind} {accum:?}");
            assert_same_bits(&what, &got, &want);
        }
    }
}

#[cfg(target_arch = "x86_64")]
use recur_kernels::x86::{gemm_int8, int8_path, Int8Path};

/// Tail shapes: rows not a multiple of 8 (and of 64), cols not a multiple of 4 (and of 8),
/// `n = 1..9` (every row-block size and remainder), zero weight rows, and `x` rows that
/// are all zero, tiny, huge or subnormal.
#[test]
fn int8_paths_match_portable_bitwise_at_tails() {
    let mut seed = 9000;
    for n in 1..=9 {
        for rows in [1, 7, 8, 9, 17, 63, 64, 65, 72, 129, 3 * 128] {
            for cols in [1, 2, 3, 4, 5, 7, 8, 9, 13, 31, 64, 127, 128, 129, 256] {
                seed += 1;
                check_int8_paths(n, rows, cols, seed, 1.0, seed as usize, seed % 3 == 0);
            }
        }
    }
}

/// Huge and tiny weights, and wide rows of `X`: fewer rows per block of the stack buffer (over
/// 4096 columns), one row per block (over 8192), and the portable fallback (over 16,384).
#[test]
fn int8_paths_match_portable_bitwise_at_extremes() {
    for (i, wscale) in [1e-30, 1e-3, 1e3, 1e30].into_iter().enumerate() {
        for kind in 0..9 {
            check_int8_paths(5, 67, 45, 100 + i as u64, wscale, kind, true);
        }
    }
    check_int8_paths(2, 9, 4100, 7, 1.0, 0, false);
    check_int8_paths(6, 17, 4095, 8, 1.0, 3, false);
    check_int8_paths(5, 9, 2049, 9, 1.0, 1, false);
    check_int8_paths(3, 9, 8192, 10, 1.0, 2, false);
    check_int8_paths(3, 9, 8193, 11, 1.0, 4, false);
    check_int8_paths(2, 9, 16384, 12, 1.0, 5, false);
    check_int8_paths(2, 9, 16385, 13, 1.0, 6, false);
}

proptest! {
    #[test]
    fn int8_paths_match_portable_bitwise_prop(n in 1usize..=9, rows in 1usize..=200,
                                              cols in 1usize..=300, seed in any::<u64>(),
                                              wexp in -20i32..=20, kind in 0usize..9,
                                              zero_w_row in any::<bool>()) {
        check_int8_paths(n, rows, cols, seed, 2f64.powi(wexp), kind, zero_w_row);
    }
}

/// A row of `X` with an infinity or a NaN gives NaN in every output of that row (other
/// rows unaffected) on every path; all-zero rows give exactly the bias.
#[test]
fn int8_nonfinite_and_zero_rows() {
    let (rows, cols, n) = (19, 21, 4);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let w = rand_vec::<f32>(&mut rng, rows * cols, 1.0);
    let p = QuantGemv::new(&w, rows, cols, Precision::Int8);
    let mut x = rand_vec::<f32>(&mut rng, n * cols, 1.0);
    x[3] = f32::INFINITY;
    x[cols + 20] = f32::NAN;
    x[2 * cols..3 * cols].iter_mut().for_each(|v| *v = 0.0);
    let y0 = rand_vec::<f32>(&mut rng, n * rows, 1.0);
    let mut outs = Vec::new();
    let mut want = y0.clone();
    gemm_portable(&p, n, &x, &mut want, Accum::Add);
    outs.push(("portable", want.clone()));
    let mut got = y0.clone();
    k_best().gemm_quant(&p, n, &x, &mut got, Accum::Add);
    outs.push(("best", got));
    #[cfg(target_arch = "x86_64")]
    for path in Int8Path::ALL.into_iter().filter(|p| p.supported()) {
        let mut got = y0.clone();
        gemm_int8(path, &p, n, &x, &mut got, Accum::Add);
        outs.push((path.name(), got));
    }
    for (name, y) in outs {
        assert!(y[..2 * rows].iter().all(|v| v.is_nan()), "{name}: non-finite rows");
        assert_eq!(&y[2 * rows..3 * rows], &y0[2 * rows..3 * rows], "{name}: zero row");
        assert!(y[3 * rows..].iter().all(|v| v.is_finite()), "{name}: finite row");
        assert_same_bits(name, &y, &want);
    }
}

/// The int8 product against the exact product of the unquantized `W` and `x`:
/// `|y_i − Σ W x| ≤ Σ_k (s_i/2·|x_k| + |Ŵ_ik|·s_x/2·(1 + 2⁻¹³)) + 3ε·Σ_k |Ŵ_ik x̂_k|`
/// (the module docs' bound; `s_x = max|x|/63`, `x̂ = s_x·x_q`).
#[test]
fn int8_error_vs_f32_is_bounded() {
    let mut worst = 0.0f64;
    for (seed, (n, rows, cols, xs)) in [
        (1, 384, 128, 1.0),
        (5, 384, 64, 3.0),
        (3, 77, 131, 1e-3),
        (2, 9, 1000, 1e4),
        (9, 200, 256, 1.0),
    ]
    .into_iter()
    .enumerate()
    {
        let mut rng = ChaCha8Rng::seed_from_u64(seed as u64 + 11);
        let w = rand_vec::<f32>(&mut rng, rows * cols, 0.1);
        let x = rand_vec::<f32>(&mut rng, n * cols, xs);
        let p = QuantGemv::new(&w, rows, cols, Precision::Int8);
        let wd = p.dequantize();
        let mut y = vec![0.0f32; n * rows];
        k_best().gemm_quant(&p, n, &x, &mut y, Accum::Replace);
        for r in 0..n {
            let xr = &x[r * cols..(r + 1) * cols];
            let sx = xr.iter().fold(0.0f32, |m, v| m.max(v.abs())) as f64 / recur_kernels::ACT_LEVELS as f64;
            for i in 0..rows {
                let si = p.scales()[i] as f64;
                let wr = &w[i * cols..(i + 1) * cols];
                let wq = &wd[i * cols..(i + 1) * cols];
                let exact: f64 = wr.iter().zip(xr).map(|(&a, &b)| a as f64 * b as f64).sum();
                let bound: f64 = wq
                    .iter()
                    .zip(xr)
                    .map(|(&a, &b)| {
                        si / 2.0 * (b as f64).abs()
                            + (a as f64).abs() * sx / 2.0 * (1.0 + 2f64.powi(-13))
                            + 3.0 * f32::EPSILON as f64 * (a as f64 * b as f64).abs() * 1.01
                    })
                    .sum();
                let err = (y[r * rows + i] as f64 - exact).abs();
                assert!(
                    err <= bound,
                    "n={n} {rows}x{cols} row {r} out {i}: |Δ| {err:e} > {bound:e}"
                );
                worst = worst.max(err / bound);
            }
        }
    }
    eprintln!("int8: worst error / bound = {worst:.3}");
}

/// On a CPU with AVX-512 VNNI and VL the VNNI path is the one selected (the AVX2 path is
/// exercised directly by the bitwise tests); without AVX2+FMA there is no int8 SIMD path.
#[test]
fn int8_vnni_path_is_selected() {
    #[cfg(target_arch = "x86_64")]
    {
        let want = if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            None
        } else if is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("avx512vl") {
            Some(Int8Path::Avx512Vnni)
        } else if is_x86_feature_detected!("avxvnni") {
            Some(Int8Path::AvxVnni)
        } else {
            Some(Int8Path::Avx2)
        };
        assert_eq!(int8_path(), want);
        if want.is_some() {
            assert!(Int8Path::Avx2.supported());
            assert!(k_best().quant_simd(Precision::Int8));
        }
        eprintln!("int8 path: {:?}", int8_path());
    }
}

/// The int8 layout: 8 rows × 4 columns per 32-byte vector, panels interleaved per group of
/// 8, zero padding; row sums and dequantization agree with it.
#[test]
fn int8_layout_and_row_sums() {
    let (rows, cols) = (75, 6); // 10 panels: a group of 8 and a group of 2; 2 column quads
    let w: Vec<f32> = (0..rows * cols).map(|v| ((v * 37) % 255) as f32 - 127.0).collect();
    let p = QuantGemv::new(&w, rows, cols, Precision::Int8);
    let d = p.int8();
    assert_eq!(d.len(), 80 * 8);
    assert_eq!(d.as_ptr() as usize % 32, 0);
    let wd = p.dequantize();
    for i in 0..80 {
        let (g, q, group_panels) = (i / 64, (i / 8) % 8, if i < 64 { 8 } else { 2 });
        let mut sum = 0i32;
        for k in 0..8 {
            let at = (g * 8 * 2 + (k / 4) * group_panels + q) * 32 + (i % 8) * 4 + k % 4;
            assert_eq!(at, recur_kernels::quant::int8_index(rows, cols, i, k));
            let v = d[at];
            if i >= rows || k >= cols {
                assert_eq!(v, 0, "padding at W[{i}, {k}]");
            } else {
                assert_eq!(p.scales()[i] * v as f32, wd[i * cols + k]);
                sum += v as i32;
            }
        }
        assert_eq!(p.row_sums()[i], sum, "row sum {i}");
    }
}
