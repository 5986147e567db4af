//! x86-64 AVX2+FMA kernels for `f32`.
//!
//! Every public function here is safe to call on any CPU: it asserts [`has_avx2_fma`] (a
//! cached flag read, negligible next to the kernel) before entering `#[target_feature]` code.
//! The dispatch table only routes here after the same check.
//!
//! Gate epilogues process each row in chunks of 8 lanes; the last `h mod 8` lanes go through
//! the same vector code on a zero-padded stack copy, so tails compute bit-identical values to
//! full chunks. The epilogues evaluate in PyTorch's order with separate multiply and add (no
//! FMA contraction) so that, transcendentals aside, they round exactly like PyTorch and the
//! reference kernels; see [`math`] for the transcendentals. GRU and LSTM run two passes over
//! each row (all independent activations first, then the dependent ones), so the long
//! `exp`–divide chains of neighbouring chunks overlap instead of serializing.

use std::arch::x86_64::*;

use crate::gates::*;

mod gemv;
mod int8;
pub mod math;
mod quant;

pub use gemv::{gemm_panel8, gemv_panel8};
pub use int8::{gemm_int8, int8_path, Int8Path};
pub use quant::{gemm_quant, has_f16c, quant_supported};

/// Whether this CPU supports AVX2 and FMA (checked at run time, cached by `std`).
pub fn has_avx2_fma() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
}

#[track_caller]
fn require_avx2_fma() {
    assert!(has_avx2_fma(), "recur_kernels::x86 called on a CPU without AVX2+FMA");
}

/// Loads `s[i..i + w]` (`w ≤ 8`) into the low lanes, zeros elsewhere.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn ld(s: &[f32], i: usize, w: usize) -> __m256 {
    if w == 8 {
        let c = &s[i..i + 8];
        // SAFETY: `c` holds exactly 8 readable `f32`s.
        unsafe { _mm256_loadu_ps(c.as_ptr()) }
    } else {
        let mut buf = [0.0f32; 8];
        buf[..w].copy_from_slice(&s[i..i + w]);
        // SAFETY: `buf` holds exactly 8 readable `f32`s.
        unsafe { _mm256_loadu_ps(buf.as_ptr()) }
    }
}

/// Stores the low `w ≤ 8` lanes of `v` into `s[i..i + w]`.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn st(s: &mut [f32], i: usize, w: usize, v: __m256) {
    if w == 8 {
        let c = &mut s[i..i + 8];
        // SAFETY: `c` holds exactly 8 writable `f32`s.
        unsafe { _mm256_storeu_ps(c.as_mut_ptr(), v) }
    } else {
        let mut buf = [0.0f32; 8];
        // SAFETY: `buf` holds exactly 8 writable `f32`s.
        unsafe { _mm256_storeu_ps(buf.as_mut_ptr(), v) }
        s[i..i + w].copy_from_slice(&buf[..w]);
    }
}

/// Calls `f(j, w)` for the 8-lane chunks `j = 0, 8, …` of a row of width `h`, the last one
/// with `w = h mod 8` lanes when `h` is not a multiple of 8.
#[inline(always)]
fn chunks(h: usize, f: impl FnMut(usize, usize)) {
    chunks_from(0, h, f);
}

/// [`chunks`] starting at lane `start` (a multiple of 8).
#[inline(always)]
fn chunks_from(start: usize, h: usize, mut f: impl FnMut(usize, usize)) {
    let full = h / 8 * 8;
    for j in (start..full).step_by(8) {
        f(j, 8);
    }
    if full < h {
        f(full, h - full);
    }
}

macro_rules! map_inplace {
    ($(#[$doc:meta])* $name:ident, $avx:ident, $f:path) => {
        $(#[$doc])*
        ///
        /// # Panics
        /// When the CPU lacks AVX2+FMA.
        #[track_caller]
        pub fn $name(x: &mut [f32]) {
            require_avx2_fma();
            // SAFETY: AVX2 and FMA are present (checked above).
            unsafe { $avx(x) }
        }

        #[target_feature(enable = "avx2,fma")]
        fn $avx(x: &mut [f32]) {
            chunks(x.len(), #[inline(always)] |j, w| st(x, j, w, $f(ld(x, j, w))));
        }
    };
}

map_inplace!(
    /// Applies [`math::exp`] to every element of `x` in place.
    exp_inplace, exp_avx2, math::exp
);
map_inplace!(
    /// Applies [`math::sigmoid`] to every element of `x` in place.
    sigmoid_inplace, sigmoid_avx2, math::sigmoid
);
map_inplace!(
    /// Applies [`math::tanh`] to every element of `x` in place.
    tanh_inplace, tanh_avx2, math::tanh
);

/// See [`crate::reference::rnn_fwd`].
///
/// # Panics
/// On short slices, or when the CPU lacks AVX2+FMA.
#[track_caller]
pub fn rnn_fwd(n: usize, h: usize, gi: &[f32], gh: &[f32], relu: bool, h_out: &mut [f32]) {
    let m = n * h;
    assert!(gi.len() >= m && gh.len() >= m && h_out.len() >= m, "rnn_fwd: shapes");
    require_avx2_fma();
    // SAFETY: AVX2 and FMA are present (checked above).
    unsafe { rnn_fwd_avx2(m, gi, gh, relu, h_out) }
}

#[target_feature(enable = "avx2,fma")]
fn rnn_fwd_avx2(m: usize, gi: &[f32], gh: &[f32], relu: bool, h_out: &mut [f32]) {
    chunks(
        m,
        #[inline(always)]
        |j, w| {
            let a = _mm256_add_ps(ld(gh, j, w), ld(gi, j, w));
            let y = if relu { relu8(a) } else { math::tanh(a) };
            st(h_out, j, w, y);
        },
    );
}

/// `max(a, 0)` with NaN propagated, as PyTorch's `relu` does (`vmaxps` returns its second
/// operand when either is NaN).
#[target_feature(enable = "avx2,fma")]
#[inline]
fn relu8(a: __m256) -> __m256 {
    _mm256_max_ps(_mm256_setzero_ps(), a)
}

/// See [`crate::reference::gru_fwd`] (PyTorch's evaluation order: `r = σ(gh_r + gi_r)`,
/// `z = σ(gh_z + gi_z)`, `n = tanh(gi_n + gh_n·r)`, `h' = (h_prev − n)·z + n`; cache
/// `r | z | n | gh_n`).
///
/// # Panics
/// On short slices, or when the CPU lacks AVX2+FMA.
#[track_caller]
pub fn gru_fwd(n: usize, h: usize, gi: &[f32], gh: &[f32], h_prev: &[f32], h_out: &mut [f32], cache: &mut [f32]) {
    let g = GRU_GATES * h;
    let cw = GRU_CACHE * h;
    crate::shapes::gru_fwd(n, h, gi.len(), gh.len(), h_prev.len(), h_out.len(), cache.len());
    require_avx2_fma();
    for b in 0..n {
        let (gi, gh) = (&gi[b * g..(b + 1) * g], &gh[b * g..(b + 1) * g]);
        let (hp, ho) = (&h_prev[b * h..(b + 1) * h], &mut h_out[b * h..(b + 1) * h]);
        // SAFETY: AVX2 and FMA are present (checked above).
        unsafe { gru_fwd_row(h, gi, gh, hp, ho, &mut cache[b * cw..(b + 1) * cw]) }
    }
}

/// Two passes over the row: first both sigmoids, then the candidate and the blend, which depend
/// on `r`. Each pass evaluates several chunks at once with the interleaved `_n` functions of
/// [`math`] (4 sigmoid chains, then 4 `tanh` chains), so the long `exp`–divide chains overlap
/// instead of serializing on their latency; the chunks left over (and the tail) run one at a
/// time. Every lane computes the same operations in the same order either way.
#[target_feature(enable = "avx2,fma")]
fn gru_fwd_row(h: usize, gi: &[f32], gh: &[f32], hp: &[f32], ho: &mut [f32], c: &mut [f32]) {
    let (gi, gh) = (split::<GRU_GATES>(gi, h), split::<GRU_GATES>(gh, h));
    let (hp, ho) = (&hp[..h], &mut ho[..h]);
    let [cr, cz, cn, cg] = split_mut::<GRU_CACHE>(c, h);
    let full = h / 8 * 8;
    let pre = |gate: usize, j: usize, w: usize| _mm256_add_ps(ld(gh[gate], j, w), ld(gi[gate], j, w));
    let mut j0 = 0;
    while j0 + 16 <= full {
        let [r0, z0, r1, z1] = math::sigmoid_n([
            pre(GRU_R, j0, 8),
            pre(GRU_Z, j0, 8),
            pre(GRU_R, j0 + 8, 8),
            pre(GRU_Z, j0 + 8, 8),
        ]);
        st(cr, j0, 8, r0);
        st(cz, j0, 8, z0);
        st(cr, j0 + 8, 8, r1);
        st(cz, j0 + 8, 8, z1);
        j0 += 16;
    }
    chunks_from(
        j0,
        h,
        #[inline(always)]
        |j, w| {
            let [r, z] = math::sigmoid_n([pre(GRU_R, j, w), pre(GRU_Z, j, w)]);
            st(cr, j, w, r);
            st(cz, j, w, z);
        },
    );
    let cand =
        |j: usize, w: usize| _mm256_add_ps(ld(gi[GRU_N], j, w), _mm256_mul_ps(ld(gh[GRU_N], j, w), ld(cr, j, w)));
    let mut blend = |j: usize, w: usize, nn: __m256| {
        let z = ld(cz, j, w);
        st(
            ho,
            j,
            w,
            _mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(ld(hp, j, w), nn), z), nn),
        );
        st(cn, j, w, nn);
        st(cg, j, w, ld(gh[GRU_N], j, w));
    };
    let mut j0 = 0;
    while j0 + 32 <= full {
        let nn = math::tanh_n(std::array::from_fn::<_, 4, _>(|u| cand(j0 + 8 * u, 8)));
        for (u, nn) in nn.into_iter().enumerate() {
            blend(j0 + 8 * u, 8, nn);
        }
        j0 += 32;
    }
    chunks_from(
        j0,
        h,
        #[inline(always)]
        |j, w| {
            let [nn] = math::tanh_n([cand(j, w)]);
            blend(j, w, nn);
        },
    );
}

/// See [`crate::reference::gru_bwd`].
///
/// # Panics
/// On short slices, or when the CPU lacks AVX2+FMA.
#[allow(clippy::too_many_arguments)]
#[track_caller]
pub fn gru_bwd(
    n: usize,
    h: usize,
    cache: &[f32],
    h_prev: &[f32],
    dh: &[f32],
    dgi: &mut [f32],
    dgh: &mut [f32],
    dh_prev: &mut [f32],
) {
    let g = GRU_GATES * h;
    let cw = GRU_CACHE * h;
    crate::shapes::gru_bwd(
        n,
        h,
        cache.len(),
        h_prev.len(),
        dh.len(),
        dgi.len(),
        dgh.len(),
        dh_prev.len(),
    );
    require_avx2_fma();
    for b in 0..n {
        let rows = (b * h..(b + 1) * h, b * g..(b + 1) * g);
        let (dgi, dgh) = (&mut dgi[rows.1.clone()], &mut dgh[rows.1]);
        let c = &cache[b * cw..(b + 1) * cw];
        // SAFETY: AVX2 and FMA are present (checked above).
        unsafe {
            gru_bwd_row(
                h,
                c,
                &h_prev[rows.0.clone()],
                &dh[rows.0.clone()],
                dgi,
                dgh,
                &mut dh_prev[rows.0],
            )
        }
    }
}

#[target_feature(enable = "avx2,fma")]
fn gru_bwd_row(h: usize, c: &[f32], hp: &[f32], dh: &[f32], dgi: &mut [f32], dgh: &mut [f32], dhp: &mut [f32]) {
    let one = _mm256_set1_ps(1.0);
    let [cr, cz, cn, cg] = split::<GRU_CACHE>(c, h);
    let (hp, dh, dhp) = (&hp[..h], &dh[..h], &mut dhp[..h]);
    let (mut dgi, mut dgh) = (split_mut::<GRU_GATES>(dgi, h), split_mut::<GRU_GATES>(dgh, h));
    chunks(
        h,
        #[inline(always)]
        |j, w| {
            let (r, z, nn, ghn, d) = (ld(cr, j, w), ld(cz, j, w), ld(cn, j, w), ld(cg, j, w), ld(dh, j, w));
            let mul = |a, b| _mm256_mul_ps(a, b);
            let dn = mul(mul(d, _mm256_sub_ps(one, z)), _mm256_sub_ps(one, mul(nn, nn)));
            let dz = mul(mul(mul(d, _mm256_sub_ps(ld(hp, j, w), nn)), z), _mm256_sub_ps(one, z));
            let dr = mul(mul(mul(dn, ghn), r), _mm256_sub_ps(one, r));
            st(dgi[GRU_R], j, w, dr);
            st(dgh[GRU_R], j, w, dr);
            st(dgi[GRU_Z], j, w, dz);
            st(dgh[GRU_Z], j, w, dz);
            st(dgi[GRU_N], j, w, dn);
            st(dgh[GRU_N], j, w, mul(dn, r));
            st(dhp, j, w, mul(d, z));
        },
    );
}

/// Fused LSTM step without peepholes: [`crate::reference::lstm_cell_fwd`] then
/// [`crate::reference::lstm_hidden_fwd`] on `c_out`. `a` (`[n, 4h]`, `i | f | g | o`) holds
/// `gi + gh` on entry and the activated gates on return; writes `c_out` and `h_out`
/// (`[n, h]`).
///
/// # Panics
/// On short slices, or when the CPU lacks AVX2+FMA.
#[track_caller]
pub fn lstm_fwd(n: usize, h: usize, a: &mut [f32], c_prev: &[f32], c_out: &mut [f32], h_out: &mut [f32]) {
    let g4 = LSTM_GATES * h;
    assert!(a.len() >= n * g4 && c_prev.len() >= n * h, "lstm_fwd: input shapes");
    assert!(c_out.len() >= n * h && h_out.len() >= n * h, "lstm_fwd: output shapes");
    require_avx2_fma();
    for b in 0..n {
        let s = b * h..(b + 1) * h;
        let (cp, co, ho) = (&c_prev[s.clone()], &mut c_out[s.clone()], &mut h_out[s]);
        // SAFETY: AVX2 and FMA are present (checked above).
        unsafe { lstm_fwd_row(h, &mut a[b * g4..(b + 1) * g4], cp, co, ho) }
    }
}

/// Two passes over the row: the four gate activations, then the cell update and
/// `o ⊙ tanh(c)`. As in [`gru_fwd_row`], whole chunks are evaluated several at a time with the
/// interleaved `_n` functions of [`math`] (two chunks: 6 sigmoid and 2 `tanh` chains; then 4
/// `tanh` chains), the rest one chunk at a time, with the same operations on every lane.
#[target_feature(enable = "avx2,fma")]
fn lstm_fwd_row(h: usize, a: &mut [f32], cp: &[f32], co: &mut [f32], ho: &mut [f32]) {
    let [ai, af, ag, ao] = split_mut::<LSTM_GATES>(a, h);
    let (cp, co, ho) = (&cp[..h], &mut co[..h], &mut ho[..h]);
    let full = h / 8 * 8;
    let mut j0 = 0;
    while j0 + 16 <= full {
        let (j1, w) = (j0 + 8, 8);
        let [i0, f0, o0, i1, f1, o1] = math::sigmoid_n([
            ld(ai, j0, w),
            ld(af, j0, w),
            ld(ao, j0, w),
            ld(ai, j1, w),
            ld(af, j1, w),
            ld(ao, j1, w),
        ]);
        let [g0, g1] = math::tanh_n([ld(ag, j0, w), ld(ag, j1, w)]);
        for (j, i, f, g, o) in [(j0, i0, f0, g0, o0), (j1, i1, f1, g1, o1)] {
            st(ai, j, w, i);
            st(af, j, w, f);
            st(ag, j, w, g);
            st(ao, j, w, o);
        }
        j0 += 16;
    }
    chunks_from(
        j0,
        h,
        #[inline(always)]
        |j, w| {
            let [i, f, o] = math::sigmoid_n([ld(ai, j, w), ld(af, j, w), ld(ao, j, w)]);
            let [g] = math::tanh_n([ld(ag, j, w)]);
            st(ai, j, w, i);
            st(af, j, w, f);
            st(ag, j, w, g);
            st(ao, j, w, o);
        },
    );
    let cell = |j: usize, w: usize| {
        _mm256_add_ps(
            _mm256_mul_ps(ld(af, j, w), ld(cp, j, w)),
            _mm256_mul_ps(ld(ai, j, w), ld(ag, j, w)),
        )
    };
    let mut j0 = 0;
    while j0 + 32 <= full {
        let c: [__m256; 4] = std::array::from_fn(|u| cell(j0 + 8 * u, 8));
        let t = math::tanh_n(c);
        for u in 0..4 {
            let j = j0 + 8 * u;
            st(co, j, 8, c[u]);
            st(ho, j, 8, _mm256_mul_ps(ld(ao, j, 8), t[u]));
        }
        j0 += 32;
    }
    chunks_from(
        j0,
        h,
        #[inline(always)]
        |j, w| {
            let c = cell(j, w);
            let [t] = math::tanh_n([c]);
            st(co, j, w, c);
            st(ho, j, w, _mm256_mul_ps(ld(ao, j, w), t));
        },
    );
}

/// The first `N · h` elements of `s` as `N` consecutive slices of length `h` (gate chunks).
#[inline(always)]
fn split<const N: usize>(s: &[f32], h: usize) -> [&[f32]; N] {
    std::array::from_fn(|i| &s[i * h..(i + 1) * h])
}

/// Mutable form of [`split`].
#[inline(always)]
fn split_mut<const N: usize>(s: &mut [f32], h: usize) -> [&mut [f32]; N] {
    let mut rest = &mut s[..N * h];
    std::array::from_fn(|_| {
        let (head, tail) = std::mem::take(&mut rest).split_at_mut(h);
        rest = tail;
        head
    })
}
