//! Reduced-precision weight storage for inference: `W` (`[rows, cols]`) held as IEEE half
//! floats or as int8 with one scale per row, applied as `Y[n, rows] (=|+=) X[n, cols] · Wᵀ`
//! with `f32` inputs, outputs and accumulation (the weights are widened in the kernel).
//!
//! * [`Precision::F16`]: `Ŵ[i, k] = f16(W[i, k])`, round to nearest even (relative error
//!   ≤ 2⁻¹¹ for normal values; magnitudes beyond 65504 become infinite, below 6·10⁻⁵ lose
//!   relative precision).
//! * [`Precision::Int8`]: symmetric per-row quantization, `s_i = max_k |W[i, k]| / 127`,
//!   `q[i, k] = round(W[i, k] / s_i) ∈ [−127, 127]`, `Ŵ[i, k] = s_i · q[i, k]`, so
//!   `|W − Ŵ| ≤ s_i / 2` elementwise. Kernels compute `s_i · Σ_k q[i, k] · x[k]`.
//!
//! Both are stored in the [`crate::GemvLayout::Panel8`] order (with
//! zero padding), whatever the CPU: [`gemm_portable`] is the reference and runs on any
//! machine; the AVX2 kernels (F16C for half floats) are selected by [`crate::Kernels::gemm_quant`].

use crate::packed::{index, GemvLayout};
use crate::{Accum, Float};

/// The storage type of weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Precision {
    /// Single precision (no quantization).
    #[default]
    F32,
    /// IEEE 754 half precision.
    F16,
    /// Signed 8-bit integers with one `f32` scale per row.
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
    /// Quantized values (Int8) in panel order; empty for F16.
    int8: Vec<i8>,
    /// Per-row scales (Int8), zero-padded to a multiple of 8 rows; empty for F16.
    scales: Vec<f32>,
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
    /// When `w.len() != rows · cols` or `precision` is [`Precision::F32`].
    #[track_caller]
    pub fn new(w: &[f32], rows: usize, cols: usize, precision: Precision) -> Self {
        assert_eq!(
            w.len(),
            rows * cols,
            "QuantGemv: {} elements for {rows}x{cols}",
            w.len()
        );
        assert_ne!(precision, Precision::F32, "QuantGemv: f32 weights are not quantized");
        let len = rows.div_ceil(8) * 8 * cols;
        let mut q = QuantGemv {
            rows,
            cols,
            precision,
            half: Vec::new(),
            int8: Vec::new(),
            scales: Vec::new(),
        };
        let rows_of = || w.chunks_exact(cols.max(1)).take(rows).enumerate();
        match precision {
            Precision::F16 => {
                q.half = vec![0; len];
                for (i, row) in rows_of() {
                    for (k, &v) in row.iter().enumerate() {
                        q.half[index(GemvLayout::Panel8, rows, cols, i, k)] = f16_bits(v);
                    }
                }
            }
            _ => {
                q.int8 = vec![0; len];
                q.scales = vec![0.0; rows.div_ceil(8) * 8];
                for (i, row) in rows_of() {
                    let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                    let s = max / 127.0;
                    q.scales[i] = s;
                    for (k, &v) in row.iter().enumerate() {
                        let qv = if s > 0.0 {
                            (v / s).round().clamp(-127.0, 127.0)
                        } else {
                            0.0
                        };
                        q.int8[index(GemvLayout::Panel8, rows, cols, i, k)] = qv as i8;
                    }
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

    /// Quantized values in panel order (Int8; empty otherwise).
    pub fn int8(&self) -> &[i8] {
        &self.int8
    }

    /// Per-row scales, padded to a multiple of 8 rows (Int8; empty otherwise).
    pub fn scales(&self) -> &[f32] {
        &self.scales
    }

    /// `Ŵ[i, k]` without the row scale: the half value, or `q[i, k]` for Int8.
    #[inline]
    fn raw(&self, i: usize, k: usize) -> f32 {
        let at = index(GemvLayout::Panel8, self.rows, self.cols, i, k);
        match self.precision {
            Precision::F16 => f16_value(self.half[at]),
            _ => f32::from(self.int8[at]),
        }
    }

    /// The dequantized matrix `Ŵ`, row-major `[rows, cols]` (allocates; for tests and error
    /// reports).
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

/// The reference: `Y[r, i] (=|+=) s_i · Σ_k raw(i, k) · X[r, k]`, summed in column order in
/// `T` (`s_i = 1` for F16).
///
/// # Panics
/// When `x` or `y` is too short.
#[track_caller]
pub fn gemm_portable<T: Float>(p: &QuantGemv, n: usize, x: &[T], y: &mut [T], accum: Accum) {
    check(p, n, x.len(), y.len());
    let (rows, cols) = (p.rows, p.cols);
    for r in 0..n {
        let xr = &x[r * cols..(r + 1) * cols];
        for (i, d) in y[r * rows..(r + 1) * rows].iter_mut().enumerate() {
            let dot = (0..cols).fold(T::zero(), |s, k| s + T::of(f64::from(p.raw(i, k))) * xr[k]);
            let v = T::of(f64::from(p.scale(i))) * dot;
            match accum {
                Accum::Replace => *d = v,
                Accum::Add => *d += v,
            }
        }
    }
}
