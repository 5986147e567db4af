//! Int8 kernels for [`QuantGemv`] ([`Precision::Int8`]): integer dot products on activations
//! quantized per row of `X` (the scheme, its error bound and why every path computes the same
//! integers are in [`crate::quant`]).
//!
//! Every path stores the quantized activations as unsigned bytes `u = x_q + 64 ∈ [1, 127]`
//! (activations have 7-bit range, [`crate::quant::ACT_LEVELS`]) and starts its accumulators at
//! `−64 · Σ_k q[i, k]`, so that `Σ_k q·u − 64·Σ_k q = Σ_k q·x_q`. Three instruction paths
//! share one loop structure ([`Int8Path`]):
//!
//! * [`Int8Path::Avx512Vnni`]: `vpdpbusd` on 256-bit vectors (AVX-512 VNNI + VL, e.g. Zen 4,
//!   Ice Lake and later Xeons);
//! * [`Int8Path::AvxVnni`]: the same with the VEX encoding (AVX-VNNI, e.g. Alder Lake, Zen 5);
//! * [`Int8Path::Avx2`]: `vpmaddubsw(u, q)` + `vpmaddwd(·, 1)` + `vpaddd` (Zen 3 and other
//!   AVX2 CPUs), exact because each `i16` pair sum is at most `2 · 127 · 127 < 2¹⁵`. With
//!   8-bit activations it would need `vpmaddubsw(|x_q|, sign(q, x_q))`, and on Zen 3 the extra
//!   `vpsignb` competes with the two multiplies for the same two pipes: the 7-bit range makes
//!   the kernel about a quarter faster there.
//!
//! The path is chosen once per process ([`int8_path`]). A call first quantizes up to 4 rows
//! of `X` into a stack buffer (no allocation), then streams the weights once for those rows:
//! one 32-byte weight vector holds 8 rows × 4 columns, and the kernel keeps `R` rows × `Q`
//! panels of `i32` accumulators in registers (4 × 4 with VNNI, which has 32 vector registers
//! under AVX-512VL; 4 × 2 on AVX2; 1 × 8 for a single row, the batch-1 recurrent step).
//! Rows of `X` wider than the stack buffer (more than 16,384 columns) run the portable
//! reference, which gives the same bits.

use std::arch::x86_64::*;
use std::mem::MaybeUninit;
use std::sync::OnceLock;

use super::{ld, st};
use crate::quant::{act_scale, Precision, QuantGemv};
use crate::Accum;

/// The instruction family of the int8 kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Int8Path {
    /// AVX-512 VNNI with VL (`vpdpbusd` on `ymm`, EVEX).
    Avx512Vnni,
    /// AVX-VNNI (`vpdpbusd` on `ymm`, VEX).
    AvxVnni,
    /// AVX2: `vpmaddubsw` + `vpmaddwd` + `vpaddd`.
    Avx2,
}

impl Int8Path {
    /// Every path, fastest first.
    pub const ALL: [Int8Path; 3] = [Int8Path::Avx512Vnni, Int8Path::AvxVnni, Int8Path::Avx2];

    /// Whether this CPU can run the path (AVX2 and FMA are required by all three).
    pub fn supported(self) -> bool {
        super::has_avx2_fma()
            && match self {
                Int8Path::Avx512Vnni => is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("avx512vl"),
                Int8Path::AvxVnni => is_x86_feature_detected!("avxvnni"),
                Int8Path::Avx2 => true,
            }
    }

    /// `"avx512vnni"`, `"avxvnni"` or `"avx2"`.
    pub fn name(self) -> &'static str {
        match self {
            Int8Path::Avx512Vnni => "avx512vnni",
            Int8Path::AvxVnni => "avxvnni",
            Int8Path::Avx2 => "avx2",
        }
    }
}

/// The fastest [`Int8Path`] this CPU supports (detected once, cached), `None` without AVX2+FMA.
pub fn int8_path() -> Option<Int8Path> {
    static PATH: OnceLock<Option<Int8Path>> = OnceLock::new();
    *PATH.get_or_init(|| Int8Path::ALL.into_iter().find(|p| p.supported()))
}

/// Stack buffer for the quantized rows of `X`: 4 rows of up to 4096 columns, or fewer, longer
/// rows.
const BUF: usize = 4 * 4096;

/// Bytes of one quantized row of `X` in the stack buffer: `⌈cols/8⌉ · 8`.
fn row_bytes(cols: usize) -> usize {
    cols.div_ceil(8) * 8
}

/// `Y[n, rows] (=|+=) X[n, cols] · Ŵᵀ` for an Int8 `p` on the given instruction `path`;
/// bit-identical to [`crate::quant::gemm_portable`]. [`crate::Kernels::gemm_quant`] uses
/// [`int8_path`]; tests call the other paths directly.
///
/// # Panics
/// On short slices, when `p` is not Int8, or when this CPU lacks `path`.
#[track_caller]
pub fn gemm_int8(path: Int8Path, p: &QuantGemv, n: usize, x: &[f32], y: &mut [f32], accum: Accum) {
    crate::quant::check(p, n, x.len(), y.len());
    assert_eq!(p.precision(), Precision::Int8, "gemm_int8: weights are not int8");
    assert!(
        path.supported(),
        "recur_kernels::x86::gemm_int8: this CPU lacks {}",
        path.name()
    );
    if n == 0 || p.rows() == 0 {
        return;
    }
    if row_bytes(p.cols()) > BUF {
        return crate::quant::gemm_portable(p, n, x, y, accum);
    }
    // SAFETY: the path's features were checked above; `check` verified the slice lengths, the
    // packed buffers are complete by construction, and one row of `X` fits the stack buffer.
    unsafe {
        match path {
            Int8Path::Avx512Vnni => run_avx512vnni(p, n, x, y, accum),
            Int8Path::AvxVnni => run_avxvnni(p, n, x, y, accum),
            Int8Path::Avx2 => run_avx2(p, n, x, y, accum),
        }
    }
}

#[target_feature(enable = "avx2,fma,avx512f,avx512vl,avx512vnni")]
unsafe fn run_avx512vnni(p: &QuantGemv, n: usize, x: &[f32], y: &mut [f32], accum: Accum) {
    // SAFETY: caller's contract.
    unsafe { run::<Vnni512>(p, n, x, y, accum) }
}

#[target_feature(enable = "avx2,fma,avxvnni")]
unsafe fn run_avxvnni(p: &QuantGemv, n: usize, x: &[f32], y: &mut [f32], accum: Accum) {
    // SAFETY: caller's contract.
    unsafe { run::<VnniVex>(p, n, x, y, accum) }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn run_avx2(p: &QuantGemv, n: usize, x: &[f32], y: &mut [f32], accum: Accum) {
    // SAFETY: caller's contract.
    unsafe { run::<Avx2>(p, n, x, y, accum) }
}

/// One instruction path: how 4-byte dot products of unsigned activations and signed weights
/// accumulate. Every method is `inline(always)` and only ever inlined into the path's `run_*`
/// function, which enables the features.
trait Dot {
    /// 32 vector registers: use 4 × 4 blocks for several rows (else 4 × 2).
    const WIDE: bool;
    /// `acc + Σ_{4 bytes} u · q` per `i32` lane (`u ∈ [1, 127]`, `q ∈ [−127, 127]`).
    unsafe fn dot(acc: __m256i, u: __m256i, w: __m256i) -> __m256i;
}

struct Vnni512;
struct VnniVex;
struct Avx2;

impl Dot for Vnni512 {
    const WIDE: bool = true;
    #[inline(always)]
    unsafe fn dot(acc: __m256i, u: __m256i, w: __m256i) -> __m256i {
        // SAFETY: only inlined into `run_avx512vnni`, which enables the features.
        unsafe { _mm256_dpbusd_epi32(acc, u, w) }
    }
}

impl Dot for VnniVex {
    const WIDE: bool = false;
    #[inline(always)]
    unsafe fn dot(acc: __m256i, u: __m256i, w: __m256i) -> __m256i {
        // SAFETY: only inlined into `run_avxvnni`, which enables the features.
        unsafe { _mm256_dpbusd_avx_epi32(acc, u, w) }
    }
}

impl Dot for Avx2 {
    const WIDE: bool = false;
    #[inline(always)]
    unsafe fn dot(acc: __m256i, u: __m256i, w: __m256i) -> __m256i {
        // Each i16 pair sum is at most 2·127·127 < 2¹⁵: `vpmaddubsw` never saturates.
        // SAFETY: only inlined into `run_avx2` (or a VNNI `run_*`).
        unsafe { _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, w), _mm256_set1_epi16(1))) }
    }
}

/// Quantizes one row of `X` (`x.len()` columns) to `xs = ⌈cols/8⌉ · 8` bytes at `out` (zero
/// activations in the padding) as `u = x_q + 64`, and returns its scale `s_x`; identical to
/// the portable
/// [`crate::quant::act_scale`] / [`crate::quant::act_quant`].
///
/// # Safety
/// `out` must be writable for `xs` bytes.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn quantize_row(x: &[f32], out: *mut u8) -> f32 {
    let cols = x.len();
    let full = cols / 8 * 8;
    let mut tail = [0.0f32; 8];
    tail[..cols - full].copy_from_slice(&x[full..]);
    // SAFETY: loads stay inside `x` / `tail`; stores inside `out` (caller's contract).
    unsafe {
        let abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
        let inf = _mm256_set1_ps(f32::INFINITY);
        let (mut mx, mut bad) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut scan = |v: __m256| {
            let a = _mm256_and_ps(v, abs);
            mx = _mm256_max_ps(mx, a);
            // Not less than infinity, or unordered: an infinity or a NaN.
            bad = _mm256_or_ps(bad, _mm256_cmp_ps::<_CMP_NLT_UQ>(a, inf));
        };
        for k in (0..full).step_by(8) {
            scan(_mm256_loadu_ps(x.as_ptr().add(k)));
        }
        if full < cols {
            scan(_mm256_loadu_ps(tail.as_ptr()));
        }
        // Horizontal max (exact in any order: no NaN reaches `mx` in a finite row).
        let m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps::<1>(mx));
        let m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        let m1 = _mm_max_ss(m2, _mm_shuffle_ps::<1>(m2, m2));
        let (sx, inv) = act_scale(_mm_cvtss_f32(m1), _mm256_movemask_ps(bad) == 0);
        let vi = _mm256_set1_ps(inv);
        let offset = _mm_set1_epi8(64);
        let put = |k: usize, v: __m256| {
            // Round half to even (the default MXCSR mode), then i32 → i16 → i8 (in range: the
            // saturating packs never saturate for a finite row).
            let q = _mm256_cvtps_epi32(_mm256_mul_ps(v, vi));
            let h = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256::<1>(q));
            // |x_q| ≤ 63, so `x_q + 64` is in [1, 127].
            let b = _mm_add_epi8(_mm_packs_epi16(h, h), offset);
            _mm_storel_epi64(out.add(k) as *mut __m128i, b);
        };
        for k in (0..full).step_by(8) {
            put(k, _mm256_loadu_ps(x.as_ptr().add(k)));
        }
        if full < cols {
            put(full, _mm256_loadu_ps(tail.as_ptr()));
        }
        sx
    }
}

/// Quantizes `X` 4 rows at a time into a stack buffer and runs the blocks.
///
/// # Safety
/// The features of `D`; the caller checked the shapes and that one quantized row
/// ([`row_bytes`]) fits in `BUF`.
#[inline(always)]
unsafe fn run<D: Dot>(p: &QuantGemv, n: usize, x: &[f32], y: &mut [f32], accum: Accum) {
    let (rows, cols) = (p.rows(), p.cols());
    let stride = row_bytes(cols);
    let rmax = (BUF / stride).min(4);
    let mut buf = MaybeUninit::<[u8; BUF]>::uninit();
    let xq = buf.as_mut_ptr() as *mut u8;
    let mut r = 0;
    while r < n {
        let m = (n - r).min(rmax);
        let mut sx = [0.0f32; 4];
        for (j, s) in sx.iter_mut().enumerate().take(m) {
            // SAFETY: row `r + j` of `x` exists; `(j + 1) · stride ≤ rmax · stride ≤ BUF`.
            *s = unsafe { quantize_row(&x[(r + j) * cols..(r + j + 1) * cols], xq.add(j * stride)) };
        }
        let k = Kern {
            w: p.int8().as_ptr() as *const u8,
            scales: p.scales(),
            row_sums: p.row_sums(),
            rows,
            kq: cols.div_ceil(4),
            xq,
            stride,
            accum,
        };
        let yr = &mut y[r * rows..(r + m) * rows];
        // SAFETY: rows `0 .. m` of the buffer were written above; `yr` holds `m` rows.
        unsafe {
            match m {
                4 if D::WIDE => k.panels::<D, 4, 4>(&sx, yr),
                4 => k.panels::<D, 4, 2>(&sx, yr),
                3 if D::WIDE => k.panels::<D, 3, 4>(&sx, yr),
                3 => k.panels::<D, 3, 2>(&sx, yr),
                2 => k.panels::<D, 2, 4>(&sx, yr),
                _ => k.panels::<D, 1, 8>(&sx, yr),
            }
        }
        r += m;
    }
}

/// The shared operands of one block of rows of `X`.
struct Kern<'a> {
    /// The packed weights ([`crate::quant::int8_index`] order, 32-byte aligned).
    w: *const u8,
    scales: &'a [f32],
    row_sums: &'a [i32],
    rows: usize,
    /// Column quads.
    kq: usize,
    /// Quantized rows of `X` (`u = x_q + 64`), `stride` bytes apart.
    xq: *const u8,
    stride: usize,
    accum: Accum,
}

impl Kern<'_> {
    /// `R` rows of `X` against every panel, `Q` panels at a time (fewer at a group's end).
    #[inline(always)]
    unsafe fn panels<D: Dot, const R: usize, const Q: usize>(&self, sx: &[f32; 4], y: &mut [f32]) {
        let panels = self.rows.div_ceil(8);
        for g in (0..panels).step_by(8) {
            let gp = (panels - g).min(8);
            let mut q = 0;
            while q < gp {
                // SAFETY (all arms): panels `g + q ..` of the group lie inside the buffer.
                unsafe {
                    q += match gp - q {
                        k if k >= Q => self.block::<D, R, Q>(g, gp, q, sx, y),
                        k if k >= 4 && Q > 4 => self.block::<D, R, 4>(g, gp, q, sx, y),
                        k if k >= 2 && Q > 2 => self.block::<D, R, 2>(g, gp, q, sx, y),
                        _ => self.block::<D, R, 1>(g, gp, q, sx, y),
                    };
                }
            }
        }
    }

    /// Panels `g + q0 .. g + q0 + Q` (of a group of `gp` starting at panel `g`) times `R`
    /// quantized rows of `X`, written to `y` (`R` rows of `self.rows`). Returns `Q`.
    #[inline(always)]
    unsafe fn block<D: Dot, const R: usize, const Q: usize>(
        &self,
        g: usize,
        gp: usize,
        q0: usize,
        sx: &[f32; 4],
        y: &mut [f32],
    ) -> usize {
        let (kq, stride) = (self.kq, self.stride);
        // SAFETY: panel `g + q0 + j < ⌈rows/8⌉` and the row sums / scales are padded to whole
        // panels; weight vector `g · kq + c · gp + q0 + j` (`g` is the group's first panel,
        // `c < kq`) is inside the buffer; activation quad `c` of row `r < R` lies in the
        // `stride ≥ 4 · kq` written bytes.
        unsafe {
            let mut acc = [[_mm256_setzero_si256(); Q]; R];
            for j in 0..Q {
                let rs = _mm256_loadu_si256(self.row_sums.as_ptr().add((g + q0 + j) * 8) as *const __m256i);
                // Start at −64 · Σ_k q[i, k]: the offset of `u` cancels.
                let init = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32::<6>(rs));
                for a in acc.iter_mut() {
                    a[j] = init;
                }
            }
            let mut wp = self.w.add((g * kq + q0) * 32) as *const __m256i; // `g` is a panel index
            let mut xp = self.xq;
            for _ in 0..kq {
                let mut w = [_mm256_setzero_si256(); Q];
                for (j, w) in w.iter_mut().enumerate() {
                    *w = _mm256_load_si256(wp.add(j));
                }
                for (r, acc) in acc.iter_mut().enumerate() {
                    let xb = _mm256_set1_epi32((xp.add(r * stride) as *const i32).read_unaligned());
                    for (a, &w) in acc.iter_mut().zip(&w) {
                        *a = D::dot(*a, xb, w);
                    }
                }
                wp = wp.add(gp);
                xp = xp.add(4);
            }
            let rows = self.rows;
            for (r, acc) in acc.iter().enumerate() {
                let yr = &mut y[r * rows..(r + 1) * rows];
                let s = _mm256_set1_ps(sx[r]);
                for (j, &a) in acc.iter().enumerate() {
                    let i = (g + q0 + j) * 8;
                    // (s_i · s_x) · f32(d_i), as in the portable reference.
                    let scale = _mm256_mul_ps(_mm256_loadu_ps(self.scales.as_ptr().add(i)), s);
                    let v = _mm256_mul_ps(scale, _mm256_cvtepi32_ps(a));
                    let wd = (rows - i).min(8);
                    let v = match self.accum {
                        Accum::Replace => v,
                        Accum::Add => _mm256_add_ps(ld(yr, i, wd), v),
                    };
                    st(yr, i, wd, v);
                }
            }
        }
        Q
    }
}
