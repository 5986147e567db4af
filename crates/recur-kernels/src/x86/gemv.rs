//! AVX2+FMA GEMV over the [`GemvLayout::Panel8`](crate::GemvLayout::Panel8) layout.
//!
//! The layout groups 8 panels of 8 rows (64 rows) and interleaves them by column, so a group
//! is one contiguous, 32-byte aligned stream: `[k][panel][8 lanes]`. Each step of the inner
//! loop broadcasts `x[k]` once and issues one aligned load + FMA per panel into that panel's
//! accumulator; 8 panels give 8 independent FMA chains, enough to cover the FMA latency
//! (4 cycles × 2 per cycle on Zen 3). A 384×128 matrix is 196 KB, so the loop streams `W` out
//! of L2 and runs at close to L2 bandwidth (one sequential stream per group also keeps the
//! hardware prefetcher effective and avoids the L1 set conflicts that 8 streams 4 KB apart
//! would cause). A last group with fewer panels runs the same loop at its own width, with two
//! accumulator sets over alternating `k` when it has 4 panels or fewer.

use std::arch::x86_64::*;

use super::{ld, require_avx2_fma, st};
use crate::Accum;

/// Panels per group (8 × 8 = 64 rows).
const GROUP: usize = 8;

/// `y[..rows] (=|+=) W · x[..cols]` with `W` packed in the `Panel8` layout (`data`:
/// `⌈rows/8⌉ · 8 · cols` elements, 32-byte aligned).
///
/// # Panics
/// On short slices, a misaligned `data`, or when the CPU lacks AVX2+FMA.
#[track_caller]
pub fn gemv_panel8(rows: usize, cols: usize, data: &[f32], x: &[f32], y: &mut [f32], accum: Accum) {
    assert!(
        data.len() >= rows.div_ceil(8) * 8 * cols,
        "gemv_panel8: packed data too short"
    );
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
    for p in (0..panels).step_by(GROUP) {
        let (a, x) = (data[p * 8 * cols..].as_ptr(), x.as_ptr());
        // SAFETY: the group starting at panel `p` holds `n · 8 · cols` elements inside `data`
        // (whose length the caller checked), starts at a multiple of 8 floats from the
        // 32-byte aligned base, and `x` holds at least `cols` elements.
        unsafe {
            match panels - p {
                1 => write(&block::<1>(a, cols, x), p, rows, y, accum),
                2 => write(&block::<2>(a, cols, x), p, rows, y, accum),
                3 => write(&block::<3>(a, cols, x), p, rows, y, accum),
                4 => write(&block::<4>(a, cols, x), p, rows, y, accum),
                5 => write(&block::<5>(a, cols, x), p, rows, y, accum),
                6 => write(&block::<6>(a, cols, x), p, rows, y, accum),
                7 => write(&block::<7>(a, cols, x), p, rows, y, accum),
                _ => write(&block::<GROUP>(a, cols, x), p, rows, y, accum),
            }
        }
    }
}

/// Dot products of the `P` interleaved panels of one group (at `a`) with `x[..cols]`.
///
/// # Safety
/// `a` must point to `P · 8 · cols` readable, 32-byte aligned `f32`s and `x` to `cols`.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn block<const P: usize>(a: *const f32, cols: usize, x: *const f32) -> [__m256; P] {
    let mut acc = [[_mm256_setzero_ps(); P]; 2];
    let mut k = 0;
    // SAFETY (both loops): `k < cols`, so `x + k` and the lane vectors
    // `a + (k·P + q)·8 .. + 8` for `q < P` are in bounds (caller's contract) and 32-byte
    // aligned (offsets are multiples of 8 floats from an aligned base).
    if P <= 4 {
        while k + 2 <= cols {
            for (u, acc) in acc.iter_mut().enumerate() {
                unsafe {
                    let xb = _mm256_broadcast_ss(&*x.add(k + u));
                    for (q, s) in acc.iter_mut().enumerate() {
                        *s = _mm256_fmadd_ps(_mm256_load_ps(a.add(((k + u) * P + q) * 8)), xb, *s);
                    }
                }
            }
            k += 2;
        }
    }
    while k < cols {
        unsafe {
            let xb = _mm256_broadcast_ss(&*x.add(k));
            for (q, s) in acc[0].iter_mut().enumerate() {
                *s = _mm256_fmadd_ps(_mm256_load_ps(a.add((k * P + q) * 8)), xb, *s);
            }
        }
        k += 1;
    }
    let [mut even, odd] = acc;
    for (e, o) in even.iter_mut().zip(odd) {
        *e = _mm256_add_ps(*e, o);
    }
    even
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

/// Rows of `X` per register block of [`gemm_panel8`].
const ROWS: usize = 6;

/// `Y[n, rows] (=|+=) X[n, cols] · Wᵀ` with `W` (`[rows, cols]`) packed in the `Panel8`
/// layout: the multi-row form of [`gemv_panel8`] for the recurrent projection of several
/// active sequences and the batch-1 input projection. `X` and `Y` are row-major and
/// contiguous. Register blocks of 6 rows of `X` × 2 panels of `W` (12 accumulators, 15 of the
/// 16 registers: 12 independent FMA chains cover the FMA latency with room to spare) run
/// panel pair by panel pair, so each pair's slab of `W` comes into L1 once for all the rows;
/// nothing is packed or allocated per call. Each output is one FMA chain over
/// `k` in column order whatever the block shape, so results do not depend on it.
///
/// # Panics
/// On short slices, a misaligned `data`, or when the CPU lacks AVX2+FMA.
#[track_caller]
pub fn gemm_panel8(rows: usize, cols: usize, data: &[f32], n: usize, x: &[f32], y: &mut [f32], accum: Accum) {
    assert!(
        data.len() >= rows.div_ceil(8) * 8 * cols,
        "gemm_panel8: packed data too short"
    );
    assert!(
        x.len() >= n * cols && y.len() >= n * rows,
        "gemm_panel8: x has {} < {n}x{cols} or y has {} < {n}x{rows}",
        x.len(),
        y.len()
    );
    assert_eq!(
        data.as_ptr() as usize % 32,
        0,
        "gemm_panel8: packed data not 32-byte aligned"
    );
    require_avx2_fma();
    if n == 1 {
        // One row is the batch-1 recurrent step: the GEMV's 8 independent FMA chains per
        // group beat the 2-panel register blocks below (measured 1.85 vs 2.9 µs at 384×128).
        // SAFETY: as in `gemv_panel8`; the checks above cover one row of `x` and `y`.
        return unsafe { gemv_avx2(rows, cols, data, x, y, accum) };
    }
    let panels = rows.div_ceil(8);
    // Panel pairs outermost: one pair's slab of `W` (2 × 8 × `cols` floats, 8 KB at 128
    // columns) is read from L2 (or L3) once and stays in L1 while every 6-row block of `X`
    // passes over it, instead of `W` streaming once per row block (a 384×256 `W_ih` is
    // 393 KB, more than Zen 3's 512 KB L2 holds beside `W_hh`).
    for p in (0..panels).step_by(GROUP) {
        let gp = (panels - p).min(GROUP);
        let a = data[p * 8 * cols..].as_ptr();
        let mut q = 0;
        while q < gp {
            let wide = q + 2 <= gp;
            let mut r = 0;
            while r < n {
                let m = (n - r).min(ROWS);
                let (xr, yr) = (x[r * cols..].as_ptr(), &mut y[r * rows..]);
                // SAFETY: AVX2 and FMA are present; the group at panel `p` holds
                // `gp · 8 · cols` aligned elements inside `data` (checked above) and panels
                // `q .. q + 2` (or `q`) lie in it; rows `r .. r + m` of `x` and `y` lie inside
                // the slices.
                unsafe {
                    match (m, wide) {
                        (1, true) => tile::<1, 2>(a, gp, q, cols, xr, p, rows, yr, accum),
                        (2, true) => tile::<2, 2>(a, gp, q, cols, xr, p, rows, yr, accum),
                        (3, true) => tile::<3, 2>(a, gp, q, cols, xr, p, rows, yr, accum),
                        (4, true) => tile::<4, 2>(a, gp, q, cols, xr, p, rows, yr, accum),
                        (5, true) => tile::<5, 2>(a, gp, q, cols, xr, p, rows, yr, accum),
                        (_, true) => tile::<ROWS, 2>(a, gp, q, cols, xr, p, rows, yr, accum),
                        (1, false) => tile::<1, 1>(a, gp, q, cols, xr, p, rows, yr, accum),
                        (2, false) => tile::<2, 1>(a, gp, q, cols, xr, p, rows, yr, accum),
                        (3, false) => tile::<3, 1>(a, gp, q, cols, xr, p, rows, yr, accum),
                        (4, false) => tile::<4, 1>(a, gp, q, cols, xr, p, rows, yr, accum),
                        (5, false) => tile::<5, 1>(a, gp, q, cols, xr, p, rows, yr, accum),
                        (_, false) => tile::<ROWS, 1>(a, gp, q, cols, xr, p, rows, yr, accum),
                    }
                }
                r += m;
            }
            q += if wide { 2 } else { 1 };
        }
    }
}

/// `R` rows of `X` (at `x`, row stride `cols`) times panels `q .. q + Q` of the group of `gp`
/// panels at `a` (whose first panel is `p`), written to `y` (row stride `rows`).
///
/// # Safety
/// As [`rows_block`]; `y` holds `R` rows.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const R: usize, const Q: usize>(
    a: *const f32,
    gp: usize,
    q: usize,
    cols: usize,
    x: *const f32,
    p: usize,
    rows: usize,
    y: &mut [f32],
    accum: Accum,
) {
    // SAFETY: caller's contract.
    let acc = unsafe { rows_block::<R, Q>(a, gp, q, cols, x) };
    write_rows(&acc, p + q, rows, y, accum);
}

/// Dot products of panels `q0 .. q0 + Q` of a group of `gp` interleaved panels (at `a`) with
/// `R` rows of `x` (row stride `cols`).
///
/// # Safety
/// `a` must point to `gp · 8 · cols` readable, 32-byte aligned `f32`s and `x` to `R · cols`.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn rows_block<const R: usize, const Q: usize>(
    a: *const f32,
    gp: usize,
    q0: usize,
    cols: usize,
    x: *const f32,
) -> [[__m256; Q]; R] {
    let mut acc = [[_mm256_setzero_ps(); Q]; R];
    for k in 0..cols {
        // SAFETY: `k < cols` and `q0 + j < gp`, so every load is inside the group and
        // aligned; `x + r·cols + k` is inside the `R · cols` rows.
        unsafe {
            let mut w = [_mm256_setzero_ps(); Q];
            for (j, w) in w.iter_mut().enumerate() {
                *w = _mm256_load_ps(a.add((k * gp + q0 + j) * 8));
            }
            for (r, acc) in acc.iter_mut().enumerate() {
                let xb = _mm256_broadcast_ss(&*x.add(r * cols + k));
                for (s, &w) in acc.iter_mut().zip(&w) {
                    *s = _mm256_fmadd_ps(w, xb, *s);
                }
            }
        }
    }
    acc
}

/// Writes `acc[r][j]` (panel `p0 + j`, row `r`) into `y` (row stride `rows`), clipping at `rows`.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn write_rows<const R: usize, const Q: usize>(
    acc: &[[__m256; Q]; R],
    p0: usize,
    rows: usize,
    y: &mut [f32],
    accum: Accum,
) {
    for (r, acc) in acc.iter().enumerate() {
        write(acc, p0, rows, &mut y[r * rows..(r + 1) * rows], accum);
    }
}
