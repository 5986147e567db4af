//! AVX2+FMA GEMV over the 8-row panel layout of [`crate::packed::PackedGemv`].
//!
//! Layout (`Panel8`): panel `p` holds rows `8p .. 8p + 8` (the last one zero-padded),
//! interleaved by column: element `W[8p + i, k]` is at `data[(p · cols + k) · 8 + i]`, and the
//! buffer is 32-byte aligned. Each step of the inner loop broadcasts `x[k]` once and issues
//! one aligned load + FMA per panel; [`PANELS`] panels run side by side so that enough
//! independent FMA chains are in flight to cover the FMA latency (4 cycles × 2 per cycle on
//! Zen 3). The loop is then bound by the load ports streaming `W` out of L2.

use std::arch::x86_64::*;

use super::{ld, require_avx2_fma, st};
use crate::Accum;

/// Panels computed together by the main loop (8 × 8 = 64 rows, 8 accumulators).
const PANELS: usize = 8;

/// `y[..rows] (=|+=) W · x[..cols]` with `W` in the `Panel8` layout described in the module
/// docs (`data`: `⌈rows/8⌉ · cols · 8` elements, 32-byte aligned).
///
/// # Panics
/// On short slices, a misaligned `data`, or when the CPU lacks AVX2+FMA.
#[track_caller]
pub fn gemv_panel8(rows: usize, cols: usize, data: &[f32], x: &[f32], y: &mut [f32], accum: Accum) {
    let panels = rows.div_ceil(8);
    assert!(data.len() >= panels * cols * 8, "gemv_panel8: packed data too short");
    assert!(
        x.len() >= cols && y.len() >= rows,
        "gemv_panel8: x has {} < {cols} or y has {} < {rows}",
        x.len(),
        y.len()
    );
    assert_eq!(
        data.as_ptr() as usize % 32,
        0,
        "gemv_panel8: packed data not 32-byte aligned"
    );
    require_avx2_fma();
    // SAFETY: AVX2 and FMA are present; the slice lengths and alignment were checked above.
    unsafe { gemv_avx2(rows, cols, data, x, y, accum) }
}

#[target_feature(enable = "avx2,fma")]
fn gemv_avx2(rows: usize, cols: usize, data: &[f32], x: &[f32], y: &mut [f32], accum: Accum) {
    let panels = rows.div_ceil(8);
    let mut p = 0;
    while p + PANELS <= panels {
        // SAFETY: panels `p .. p + PANELS` exist (`data` holds `panels · cols · 8` elements,
        // checked by the caller) and `x` holds at least `cols` elements.
        let acc = unsafe { block::<PANELS>(data.as_ptr().add(p * cols * 8), cols, x.as_ptr()) };
        write(&acc, p, rows, y, accum);
        p += PANELS;
    }
    while p < panels {
        let n = (panels - p).min(4);
        // SAFETY: as above, for panels `p .. p + n`.
        unsafe {
            let a = data.as_ptr().add(p * cols * 8);
            match n {
                4 => write(&block::<4>(a, cols, x.as_ptr()), p, rows, y, accum),
                3 => write(&block::<3>(a, cols, x.as_ptr()), p, rows, y, accum),
                2 => write(&block::<2>(a, cols, x.as_ptr()), p, rows, y, accum),
                _ => write(&block::<1>(a, cols, x.as_ptr()), p, rows, y, accum),
            }
        }
        p += n;
    }
}

/// Dot products of `P` consecutive panels starting at `a` with `x[..cols]`.
///
/// # Safety
/// `a` must point to `P · cols · 8` readable, 32-byte aligned `f32`s and `x` to `cols`.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn block<const P: usize>(a: *const f32, cols: usize, x: *const f32) -> [__m256; P] {
    let mut acc = [_mm256_setzero_ps(); P];
    for k in 0..cols {
        // SAFETY: `k < cols`, so `x + k` and every panel element `a + (q·cols + k)·8 .. + 8`
        // are in bounds (caller's contract); those panel offsets are multiples of 8 floats
        // from a 32-byte aligned base.
        unsafe {
            let xb = _mm256_broadcast_ss(&*x.add(k));
            for (q, s) in acc.iter_mut().enumerate() {
                *s = _mm256_fmadd_ps(_mm256_load_ps(a.add((q * cols + k) * 8)), xb, *s);
            }
        }
    }
    acc
}

/// Writes the panel results `acc` (panels `p0 ..`) into `y`, clipping at `rows`.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn write(acc: &[__m256], p0: usize, rows: usize, y: &mut [f32], accum: Accum) {
    for (q, &v) in acc.iter().enumerate() {
        let r = (p0 + q) * 8;
        let w = (rows - r).min(8);
        let v = match accum {
            Accum::Replace => v,
            Accum::Add => _mm256_add_ps(ld(y, r, w), v),
        };
        st(y, r, w, v);
    }
}
