//! Reduced-precision weight storage for inference: `W` (`[rows, cols]`) held as IEEE half
//! floats or as int8 with one scale per row, applied as `Y[n, rows] (=|+=) X[n, cols] · Wᵀ`
//! with `f32` inputs and outputs.
//!
//! # Half floats
//!
//! [`Precision::F16`]: `Ŵ[i, k] = f16(W[i, k])`, round to nearest even (relative error
//! ≤ 2⁻¹¹ for normal values; magnitudes beyond 65504 become infinite, below 6·10⁻⁵ lose
//! relative precision). Stored in the [`crate::GemvLayout::Panel8`] order; kernels widen to
//! `f32` and accumulate in `f32`.
//!
//! # Int8: integer dot products on quantized activations
//!
//! [`Precision::Int8`] quantizes both operands and multiplies in integers.
//!
//! * **Weights**, once, symmetric per row: `s_i = max_k |W[i, k]| / 127`,
//!   `q[i, k] = round(W[i, k] / s_i) ∈ [−127, 127]`, `Ŵ[i, k] = s_i · q[i, k]`, so
//!   `|W − Ŵ| ≤ s_i / 2` elementwise. The per-row sums `Σ_k q[i, k]` are kept too.
//! * **Activations**, per row of `X` and per call (dynamically), symmetric with 7-bit range
//!   ([`ACT_LEVELS`] = 63, as PyTorch's FBGEMM backend does with `reduce_range` on CPUs
//!   without VNNI): `m = max_k |x[k]|`, `s_x = m / 63`, `x_q[k] = round_half_even(x[k] ·
//!   (63 / m)) ∈ [−63, 63]`, so `|x − s_x·x_q| ≤ s_x / 2 · (1 + 2⁻¹³)` (the slack covers the
//!   rounding of `m / 63`, `63 / m` and `x · (63 / m)`).
//! * **Product**: `d_i = Σ_k q[i, k] · x_q[k]` exactly in `i32`, then
//!   `y_i (=|+=) (s_i · s_x) · f32(d_i)` (two `f32` multiplies, in this order, on every path).
//!
//! Error against the `f32` product, per output (with `ŵ = s_i·q`, `x̂ = s_x·x_q`):
//!
//! ```text
//! |y_i − Σ_k W[i,k]·x[k]| ≤ Σ_k (s_i/2 · |x[k]| + |Ŵ[i,k]| · s_x/2·(1+2⁻¹³)) + 3ε·|s_i·s_x·d_i|
//! ```
//!
//! (the last term: `f32(d_i)` when `|d_i| > 2²⁴`, and the two rounded multiplies; `ε = 2⁻²⁴`).
//!
//! **Why every path gives the same integers.** `|q| ≤ 127` and `|x_q| ≤ 63`, and the SIMD
//! paths multiply unsigned activation bytes `u = x_q + 64 ∈ [1, 127]` by signed weight bytes,
//! with accumulators started at `−64 · Σ_k q[i, k]`, so they end at `Σ q·u − 64·Σ q = d_i`:
//! * AVX-512 VNNI / AVX-VNNI: `vpdpbusd` (4 products into an `i32` without intermediate
//!   saturation);
//! * AVX2: `vpmaddubsw(u, q)`, each `i16` pair sum at most `2 · 127 · 127 = 32258 < 2¹⁵`, so
//!   the saturating instruction never saturates; `vpmaddwd` with ones widens to `i32`. (This
//!   is why activations get 7 bits: with 8, `u` would reach 255 and the pair sums could
//!   saturate, and the exact 8-bit form `vpmaddubsw(|x_q|, sign(q, x_q))` costs a `vpsignb`
//!   per 32 products, which on Zen 3 shares the two multiply pipes: about 25% slower.)
//! * the portable reference multiplies and adds in `i32`.
//!
//! Integer addition is associative, so the differing summation orders of these paths give the
//! same `d_i` as long as no partial sum overflows `i32`: `|d_i| ≤ 127 · 127 · cols < 2³¹` for
//! `cols ≤ 66 000` (asserted). The `f32` epilogue is the same expression on every path, so
//! outputs are bit-identical across the SIMD paths and [`gemm_portable`] (for `f32`).
//!
//! Edge rows of `X`: when `m < 2⁻¹²⁰` (all zero, or so small that `127/m` would overflow) the
//! row is taken as zero: `s_x = 0`, every `x_q = 0` and the contribution is exactly `+0`
//! (`y` keeps the bias). When the row holds an infinity or a NaN, `s_x` is NaN and every output
//! of that row is NaN (as the `f32` product would be, up to inf-vs-NaN).
//!
//! Int8 weights are stored in the [`int8_index`] order (panels of 8 rows × 4 consecutive
//! columns per 32-byte vector, 8 panels interleaved per group), whatever the CPU:
//! [`gemm_portable`] is the reference and runs on any machine; the SIMD kernels are selected
//! by [`crate::Kernels::gemm_quant`] (AVX-512 VNNI+VL, else AVX-VNNI, else AVX2).

use crate::packed::{index, GemvLayout};
use crate::{Accum, Float};

/// Largest `cols` for [`Precision::Int8`] (keeps every `i32` partial sum exact).
pub const INT8_MAX_COLS: usize = 66_000;

/// Rows of `X` whose `max |x|` is below this are quantized as zero (`2⁻¹²⁰`).
pub const INT8_MIN_RANGE: f32 = f32::from_bits((127 - 120) << 23);

/// Quantization levels on each side of zero for activations: `x_q ∈ [−63, 63]` (7 bits; see
/// the module docs for why not 127).
pub const ACT_LEVELS: f32 = 63.0;

/// The activation scale and its inverse for a row of `X` with `m = max_k |x[k]|` (`finite`:
/// no infinity or NaN in the row): `(m / 63, 63 / m)` ([`ACT_LEVELS`]), `(0, 0)` for
/// `m < 2⁻¹²⁰`, `(NaN, 0)` for a non-finite row. Shared by every path so they quantize
/// identically.
#[inline]
pub fn act_scale(m: f32, finite: bool) -> (f32, f32) {
    if !finite {
        (f32::NAN, 0.0)
    } else if m >= INT8_MIN_RANGE {
        (m / ACT_LEVELS, ACT_LEVELS / m)
    } else {
        (0.0, 0.0)
    }
}

/// `x_q = round_half_even(x · inv)` (in `[−63, 63]` when `inv` comes from [`act_scale`] and
/// the row is finite).
#[inline]
pub fn act_quant(x: f32, inv: f32) -> i32 {
    (x * inv).round_ties_even() as i32
}

/// Byte position of `q[i, k]` in the int8 buffer of a `[rows, cols]` matrix: with
/// `kq = ⌈cols/4⌉` column quads, `g = i / 64` (group), `p = (i / 8) mod 8` (panel in the
/// group), `P` the panels of group `g` (8, or fewer in the last group) and `c = k / 4`, the
/// 32-byte vector `g · 8 · kq + c · P + p` holds rows `8⌊i/8⌋ .. +8` × columns `4c .. 4c + 4`,
/// row-major (`(i mod 8) · 4 + k mod 4`). Rows are zero-padded to 8, columns to 4.
#[inline(always)]
pub fn int8_index(rows: usize, cols: usize, i: usize, k: usize) -> usize {
    let kq = cols.div_ceil(4);
    let (g, p) = (i / 64, (i / 8) % 8);
    let group_panels = (rows.div_ceil(8) - 8 * g).min(8);
    (g * 8 * kq + (k / 4) * group_panels + p) * 32 + (i % 8) * 4 + k % 4
}

/// 32 bytes with 32-byte alignment: the allocation unit of the int8 buffer.
#[repr(C, align(32))]
#[derive(Clone, Copy, Debug, PartialEq)]
struct Bytes32([i8; 32]);

/// The storage type of weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Precision {
    /// Single precision (no quantization).
    #[default]
    F32,
    /// IEEE 754 half precision.
    F16,
    /// Signed 8-bit integers with one `f32` scale per row; activations quantized per row to
    /// 7 bits ([`ACT_LEVELS`]).
    Int8,
}

impl Precision {
    /// `"f32"`, `"f16"` or `"int8"`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
            Precision::Int8 => "int8",
        }
    }
}

/// `W` (`[rows, cols]`) in [`Precision::F16`] or [`Precision::Int8`], in the panel layout.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantGemv {
    rows: usize,
    cols: usize,
    precision: Precision,
    /// Half-float bit patterns (F16) in panel order; empty for Int8.
    half: Vec<u16>,
    /// Quantized values (Int8) in the [`int8_index`] order, 32-byte aligned; empty for F16.
    int8: Vec<Bytes32>,
    /// Per-row scales (Int8), zero-padded to a multiple of 8 rows; empty for F16.
    scales: Vec<f32>,
    /// Per-row `Σ_k q[i, k]` (Int8), zero-padded to a multiple of 8 rows; empty for F16.
    row_sums: Vec<i32>,
}

/// `f32` → half-float bits, round to nearest even.
pub fn f16_bits(v: f32) -> u16 {
    half::f16::from_f32(v).to_bits()
}

/// Half-float bits → `f32` (exact).
pub fn f16_value(bits: u16) -> f32 {
    half::f16::from_bits(bits).to_f32()
}

impl QuantGemv {
    /// Quantizes the row-major `w` (`[rows, cols]`, exactly `rows · cols` elements).
    ///
    /// # Panics
    /// When `w.len() != rows · cols`, `precision` is [`Precision::F32`], or (Int8)
    /// `cols > INT8_MAX_COLS`.
    #[track_caller]
    pub fn new(w: &[f32], rows: usize, cols: usize, precision: Precision) -> Self {
        assert_eq!(
            w.len(),
            rows * cols,
            "QuantGemv: {} elements for {rows}x{cols}",
            w.len()
        );
        assert_ne!(precision, Precision::F32, "QuantGemv: f32 weights are not quantized");
        let padded_rows = rows.div_ceil(8) * 8;
        let mut q = QuantGemv {
            rows,
            cols,
            precision,
            half: Vec::new(),
            int8: Vec::new(),
            scales: Vec::new(),
            row_sums: Vec::new(),
        };
        let rows_of = || w.chunks_exact(cols.max(1)).take(rows).enumerate();
        match precision {
            Precision::F16 => {
                q.half = vec![0; padded_rows * cols];
                for (i, row) in rows_of() {
                    for (k, &v) in row.iter().enumerate() {
                        q.half[index(GemvLayout::Panel8, rows, cols, i, k)] = f16_bits(v);
                    }
                }
            }
            _ => {
                assert!(
                    cols <= INT8_MAX_COLS,
                    "QuantGemv: int8 supports at most {INT8_MAX_COLS} columns, got {cols}"
                );
                // `padded_rows · 4⌈cols/4⌉` bytes = `padded_rows / 8 · ⌈cols/4⌉` vectors.
                q.int8 = vec![Bytes32([0; 32]); padded_rows / 8 * cols.div_ceil(4)];
                q.scales = vec![0.0; padded_rows];
                q.row_sums = vec![0; padded_rows];
                for (i, row) in rows_of() {
                    let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                    let s = max / 127.0;
                    q.scales[i] = s;
                    let mut sum = 0i32;
                    for (k, &v) in row.iter().enumerate() {
                        let qv = if s > 0.0 {
                            (v / s).round().clamp(-127.0, 127.0)
                        } else {
                            0.0
                        };
                        sum += qv as i32;
                        let at = int8_index(rows, cols, i, k);
                        q.int8[at / 32].0[at % 32] = qv as i8;
                    }
                    q.row_sums[i] = sum;
                }
            }
        }
        q
    }

    /// Rows of `W`.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns of `W`.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The storage precision.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Half-float bits in panel order (F16; empty otherwise).
    pub fn half(&self) -> &[u16] {
        &self.half
    }

    /// Quantized values in the [`int8_index`] order, 32-byte aligned, zero padding included
    /// (Int8; empty otherwise).
    pub fn int8(&self) -> &[i8] {
        // SAFETY: `Bytes32` is `repr(C)` over `[i8; 32]` (size 32, no padding), so the buffer
        // is `32 · len` contiguous, initialized bytes.
        unsafe { std::slice::from_raw_parts(self.int8.as_ptr() as *const i8, self.int8.len() * 32) }
    }

    /// Per-row scales, padded to a multiple of 8 rows (Int8; empty otherwise).
    pub fn scales(&self) -> &[f32] {
        &self.scales
    }

    /// Per-row `Σ_k q[i, k]`, padded to a multiple of 8 rows with zeros (Int8; empty
    /// otherwise).
    pub fn row_sums(&self) -> &[i32] {
        &self.row_sums
    }

    /// `q[i, k]` (Int8).
    #[inline]
    fn q(&self, i: usize, k: usize) -> i8 {
        let at = int8_index(self.rows, self.cols, i, k);
        self.int8[at / 32].0[at % 32]
    }

    /// `Ŵ[i, k]` without the row scale: the half value, or `q[i, k]` for Int8.
    #[inline]
    fn raw(&self, i: usize, k: usize) -> f32 {
        match self.precision {
            Precision::F16 => f16_value(self.half[index(GemvLayout::Panel8, self.rows, self.cols, i, k)]),
            _ => f32::from(self.q(i, k)),
        }
    }

    /// The dequantized matrix `Ŵ`, row-major `[rows, cols]` (allocates; for tests and error
    /// reports). For Int8 this is the weight side only: products also quantize `X`.
    pub fn dequantize(&self) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.rows * self.cols);
        for i in 0..self.rows {
            let s = self.scale(i);
            out.extend((0..self.cols).map(|k| s * self.raw(i, k)));
        }
        out
    }

    #[inline]
    fn scale(&self, i: usize) -> f32 {
        match self.precision {
            Precision::Int8 => self.scales[i],
            _ => 1.0,
        }
    }
}

/// Checks the shape contract of a quantized GEMM call.
#[track_caller]
pub(crate) fn check(p: &QuantGemv, n: usize, x_len: usize, y_len: usize) {
    assert!(
        x_len >= n * p.cols && y_len >= n * p.rows,
        "gemm_quant: x has {x_len} < {n}x{} or y has {y_len} < {n}x{}",
        p.cols,
        p.rows
    );
}

/// The reference.
///
/// F16: `Y[r, i] (=|+=) Σ_k f16(W[i, k]) · X[r, k]`, summed in column order in `T`.
///
/// Int8 (see the module docs): each row of `X` is converted to `f32` and quantized, the dot
/// products are exact `i32` sums, and `Y[r, i] (=|+=) T((s_i · s_x) · f32(d_i))`. For
/// `T = f32` this is bit-identical to every SIMD kernel. Never allocates (the quantized
/// activations are recomputed per output).
///
/// # Panics
/// When `x` or `y` is too short.
#[track_caller]
pub fn gemm_portable<T: Float>(p: &QuantGemv, n: usize, x: &[T], y: &mut [T], accum: Accum) {
    check(p, n, x.len(), y.len());
    let (rows, cols) = (p.rows, p.cols);
    for r in 0..n {
        let xr = &x[r * cols..(r + 1) * cols];
        let yr = &mut y[r * rows..(r + 1) * rows];
        if p.precision == Precision::Int8 {
            let (mut m, mut finite) = (0.0f32, true);
            for v in xr {
                let v = v.f64() as f32;
                m = m.max(v.abs());
                finite &= v.is_finite();
            }
            let (sx, inv) = act_scale(m, finite);
            for (i, d) in yr.iter_mut().enumerate() {
                let dot = if finite {
                    (0..cols).fold(0i32, |s, k| {
                        s + i32::from(p.q(i, k)) * act_quant(xr[k].f64() as f32, inv)
                    })
                } else {
                    0
                };
                let v = T::of(f64::from((p.scales[i] * sx) * dot as f32));
                match accum {
                    Accum::Replace => *d = v,
                    Accum::Add => *d += v,
                }
            }
            continue;
        }
        for (i, d) in yr.iter_mut().enumerate() {
            let dot = (0..cols).fold(T::zero(), |s, k| s + T::of(f64::from(p.raw(i, k))) * xr[k]);
            match accum {
                Accum::Replace => *d = dot,
                Accum::Add => *d += dot,
            }
        }
    }
}
