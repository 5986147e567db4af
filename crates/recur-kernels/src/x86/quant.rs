//! SIMD kernels for [`QuantGemv`]: `Y[n, rows] (=|+=) X[n, cols] · Ŵᵀ`.
//!
//! Half floats (here): the weights are widened to `f32` in registers (`vcvtph2ps`, F16C) and
//! multiplied in `f32`. The loop structure is that of the `f32` panel kernels: one row of `X`
//! runs 8 panels (64 rows of `W`) at a time, 8 independent FMA chains; several rows run
//! 4 rows × 2 panels, so each widened weight vector feeds 4 FMAs.
//!
//! Int8 goes to [`super::int8`]: integer dot products on quantized activations (VNNI or
//! AVX2), on the path [`super::int8_path`] picks for this CPU.

use std::arch::x86_64::*;

use super::{ld, st};
use crate::quant::{Precision, QuantGemv};
use crate::Accum;

/// Whether this CPU has the F16C conversions (checked at run time, cached by `std`).
pub fn has_f16c() -> bool {
    is_x86_feature_detected!("f16c")
}

/// Whether [`gemm_quant`] runs a SIMD kernel for `precision` on this CPU (AVX2, FMA and F16C
/// for both storage types; every AVX2 CPU made has F16C).
pub fn quant_supported(precision: Precision) -> bool {
    precision != Precision::F32 && super::has_avx2_fma() && has_f16c()
}

/// `Y[n, rows] (=|+=) X[n, cols] · Ŵᵀ`, the fast form of [`crate::quant::gemm_portable`] for `f32`.
///
/// # Panics
/// On short slices, or when [`quant_supported`] is false for `p`'s precision.
#[track_caller]
pub fn gemm_quant(p: &QuantGemv, n: usize, x: &[f32], y: &mut [f32], accum: Accum) {
    crate::quant::check(p, n, x.len(), y.len());
    assert!(
        quant_supported(p.precision()),
        "recur_kernels::x86::gemm_quant: this CPU lacks AVX2+FMA (or F16C)"
    );
    if p.precision() == Precision::Int8 {
        // `quant_supported` implies AVX2+FMA, so some int8 path exists.
        let path = super::int8_path().unwrap_or(super::Int8Path::Avx2);
        return super::gemm_int8(path, p, n, x, y, accum);
    }
    // SAFETY: the features were checked above; `check` verified the slice lengths and the
    // packed buffer holds `⌈rows/8⌉ · 8 · cols` elements by construction.
    unsafe { run(&Half(p.half()), p, n, x, y, accum) }
}

/// Widens the 8 weights of panel lane vector number `v` (element offset `8v`).
trait Lanes {
    /// # Safety
    /// `v` must be a lane vector inside the packed buffer, and the CPU must support the
    /// kernel's features.
    unsafe fn load(&self, v: usize) -> __m256;
}

struct Half<'a>(&'a [u16]);

impl Lanes for Half<'_> {
    #[inline(always)]
    unsafe fn load(&self, v: usize) -> __m256 {
        debug_assert!(8 * v + 8 <= self.0.len());
        // SAFETY: caller's contract (8 readable u16 at `8v`; F16C present).
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(self.0.as_ptr().add(8 * v) as *const __m128i)) }
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn run<L: Lanes>(l: &L, p: &QuantGemv, n: usize, x: &[f32], y: &mut [f32], accum: Accum) {
    let (rows, cols) = (p.rows(), p.cols());
    let mut r = 0;
    while r < n {
        let m = if n - r >= 4 { 4 } else { 1 };
        let (xr, yr) = (&x[r * cols..], &mut y[r * rows..]);
        // SAFETY: rows `r .. r + m` of `x` and `y` lie inside the slices (checked by caller).
        unsafe {
            if m == 4 {
                rows_of::<L, 4, 2>(l, rows, cols, xr, yr, accum);
            } else {
                rows_of::<L, 1, 8>(l, rows, cols, xr, yr, accum);
            }
        }
        r += m;
    }
}

/// `R` rows of `X` against every panel, `Q` panels at a time (fewer at a group's end).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn rows_of<L: Lanes, const R: usize, const Q: usize>(
    l: &L,
    rows: usize,
    cols: usize,
    x: &[f32],
    y: &mut [f32],
    accum: Accum,
) {
    let panels = rows.div_ceil(8);
    for g in (0..panels).step_by(8) {
        let gp = (panels - g).min(8);
        let mut q = 0;
        while q < gp {
            // SAFETY (all arms): panels `g + q ..` of the group lie inside the buffer.
            unsafe {
                q += match gp - q {
                    k if k >= Q => block::<L, R, Q>(l, g, gp, q, cols, x, rows, y, accum),
                    k if k >= 4 && Q > 4 => block::<L, R, 4>(l, g, gp, q, cols, x, rows, y, accum),
                    k if k >= 2 && Q > 2 => block::<L, R, 2>(l, g, gp, q, cols, x, rows, y, accum),
                    _ => block::<L, R, 1>(l, g, gp, q, cols, x, rows, y, accum),
                };
            }
        }
    }
}

/// Panels `g + q0 .. g + q0 + Q` (of a group of `gp` starting at panel `g`) times `R` rows of
/// `x`, written to `y`. Returns `Q`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn block<L: Lanes, const R: usize, const Q: usize>(
    l: &L,
    g: usize,
    gp: usize,
    q0: usize,
    cols: usize,
    x: &[f32],
    rows: usize,
    y: &mut [f32],
    accum: Accum,
) -> usize {
    let mut acc = [[_mm256_setzero_ps(); Q]; R];
    let base = g * cols; // lane vectors before this group: g panels · cols
    for k in 0..cols {
        let mut w = [_mm256_setzero_ps(); Q];
        for (j, w) in w.iter_mut().enumerate() {
            // SAFETY: lane vector `(k · gp + q0 + j)` of this group is inside the buffer.
            *w = unsafe { l.load(base + k * gp + q0 + j) };
        }
        for (r, acc) in acc.iter_mut().enumerate() {
            // SAFETY: `r · cols + k < R · cols ≤ x.len()`.
            let xb = _mm256_set1_ps(unsafe { *x.get_unchecked(r * cols + k) });
            for (s, &w) in acc.iter_mut().zip(&w) {
                *s = _mm256_fmadd_ps(w, xb, *s);
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        let yr = &mut y[r * rows..(r + 1) * rows];
        for (j, &v) in acc.iter().enumerate() {
            let panel = g + q0 + j;
            let (i, w) = (panel * 8, (rows - panel * 8).min(8));
            let v = match accum {
                Accum::Replace => v,
                Accum::Add => _mm256_add_ps(ld(yr, i, w), v),
            };
            st(yr, i, w, v);
        }
    }
    Q
}
