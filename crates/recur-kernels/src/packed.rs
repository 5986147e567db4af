//! Pre-packed weights for the recurrent batch-1 GEMV `y (=|+=) W · x`.
//!
//! `W` is `[rows, cols]` row-major as given; for a recurrent layer it is PyTorch's
//! `weight_hh` (`[G·H, H]`), and `W · h` is exactly `h · W_hhᵀ`. Pack once when the model is
//! built ([`crate::Kernels::pack_gemv`] allocates), then apply every step with
//! [`crate::Kernels::gemv`], which never allocates.
//!
//! A [`PackedGemv`] records its [`GemvLayout`]; applying it with any kernel family gives the
//! right answer (a family that has no fast path for the layout runs a portable loop over it).

use crate::{Accum, Float};

/// How a [`PackedGemv`] stores its matrix. Both layouts sit in a 32-byte aligned buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GemvLayout {
    /// A plain row-major copy: `W[i, k]` at `i · cols + k`. Used by the reference family, for
    /// `f64`, and on CPUs without AVX2.
    RowMajor,
    /// Panels of 8 rows (the last one zero-padded), grouped 8 panels (64 rows) at a time and
    /// interleaved by column inside each group, so that one group is a single contiguous
    /// stream: with `g = i / 64`, `q = (i / 8) mod 8`, and `P` the number of panels in group
    /// `g` (8, or fewer in the last group), `W[i, k]` sits at
    /// `g · 64 · cols + (k · P + q) · 8 + i mod 8`. Used by the AVX2+FMA `f32` kernel.
    Panel8,
}

/// Eight elements with 32-byte alignment: the allocation unit of [`PackedGemv`].
#[repr(C, align(32))]
#[derive(Clone, Copy, Debug)]
struct Lane8<T>([T; 8]);

/// A matrix `W` (`[rows, cols]`) packed for repeated `y (=|+=) W · x`.
///
/// Create it with [`crate::Kernels::pack_gemv`] (the layout that family runs fastest) or
/// [`PackedGemv::new`] (an explicit layout); apply it with [`crate::Kernels::gemv`].
#[derive(Clone, Debug)]
pub struct PackedGemv<T> {
    rows: usize,
    cols: usize,
    layout: GemvLayout,
    buf: Vec<Lane8<T>>,
}

impl<T: Float> PackedGemv<T> {
    /// Packs the row-major `w` (`[rows, cols]`, exactly `rows · cols` elements) into `layout`.
    ///
    /// # Panics
    /// When `w.len() != rows · cols`.
    #[track_caller]
    pub fn new(w: &[T], rows: usize, cols: usize, layout: GemvLayout) -> Self {
        assert_eq!(
            w.len(),
            rows * cols,
            "PackedGemv: {} elements for {rows}x{cols}",
            w.len()
        );
        assert_eq!(
            std::mem::size_of::<Lane8<T>>(),
            8 * std::mem::size_of::<T>(),
            "PackedGemv: padded element type"
        );
        let len = match layout {
            GemvLayout::RowMajor => rows * cols,
            GemvLayout::Panel8 => rows.div_ceil(8) * 8 * cols,
        };
        let mut p = PackedGemv {
            rows,
            cols,
            layout,
            buf: vec![Lane8([T::zero(); 8]); len.div_ceil(8)],
        };
        let data = p.as_mut_slice();
        for (i, row) in w.chunks_exact(cols.max(1)).take(rows).enumerate() {
            for (k, &v) in row.iter().enumerate() {
                data[index(layout, rows, cols, i, k)] = v;
            }
        }
        p
    }

    /// Rows of `W` (length of `y`).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns of `W` (length of `x`).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The stored layout.
    pub fn layout(&self) -> GemvLayout {
        self.layout
    }

    /// The packed elements (32-byte aligned; see [`GemvLayout`] for the order). Padding
    /// elements are zero.
    pub fn as_slice(&self) -> &[T] {
        // SAFETY: `Lane8<T>` is `repr(C)` over `[T; 8]` and `new` asserted it has no padding,
        // so the buffer is `8 · buf.len()` contiguous, initialized `T`s.
        unsafe { std::slice::from_raw_parts(self.buf.as_ptr() as *const T, self.buf.len() * 8) }
    }

    fn as_mut_slice(&mut self) -> &mut [T] {
        // SAFETY: as in `as_slice`; `self` is uniquely borrowed.
        unsafe { std::slice::from_raw_parts_mut(self.buf.as_mut_ptr() as *mut T, self.buf.len() * 8) }
    }
}

/// Position of `W[i, k]` in the packed buffer (see [`GemvLayout`]).
#[inline(always)]
pub(crate) fn index(layout: GemvLayout, rows: usize, cols: usize, i: usize, k: usize) -> usize {
    match layout {
        GemvLayout::RowMajor => i * cols + k,
        GemvLayout::Panel8 => {
            let (g, q) = (i / 64, (i / 8) % 8);
            let group_panels = (rows.div_ceil(8) - 8 * g).min(8);
            g * 64 * cols + (k * group_panels + q) * 8 + i % 8
        }
    }
}

/// Checks the shape contract of a GEMV call.
#[track_caller]
pub(crate) fn check_gemv<T>(p: &PackedGemv<T>, x: &[T], y: &[T]) {
    assert!(
        x.len() >= p.cols,
        "gemv: x has {} elements, W is {}x{}",
        x.len(),
        p.rows,
        p.cols
    );
    assert!(
        y.len() >= p.rows,
        "gemv: y has {} elements, W is {}x{}",
        y.len(),
        p.rows,
        p.cols
    );
}

/// `Y[n, rows] (=|+=) X[n, cols] · Wᵀ` as `n` calls of [`gemv_portable`].
///
/// # Panics
/// When `x` or `y` is too short.
#[track_caller]
pub fn gemm_portable<T: Float>(p: &PackedGemv<T>, n: usize, x: &[T], y: &mut [T], accum: Accum) {
    let (rows, cols) = (p.rows, p.cols);
    assert!(
        x.len() >= n * cols && y.len() >= n * rows,
        "gemm_packed: x or y too short for {n} rows"
    );
    for r in 0..n {
        gemv_portable(p, &x[r * cols..(r + 1) * cols], &mut y[r * rows..(r + 1) * rows], accum);
    }
}

/// `y[..rows] (=|+=) W · x[..cols]` by a plain loop over either layout, summing each row in
/// column order in `T` (for `RowMajor` this is the reference GEMV).
///
/// # Panics
/// When `x` or `y` is too short.
#[track_caller]
pub fn gemv_portable<T: Float>(p: &PackedGemv<T>, x: &[T], y: &mut [T], accum: Accum) {
    check_gemv(p, x, y);
    let (data, cols) = (p.as_slice(), p.cols);
    for (i, d) in y[..p.rows].iter_mut().enumerate() {
        let s = match p.layout {
            GemvLayout::RowMajor => data[i * cols..(i + 1) * cols]
                .iter()
                .zip(x)
                .fold(T::zero(), |s, (&w, &v)| s + w * v),
            GemvLayout::Panel8 => {
                (0..cols).fold(T::zero(), |s, k| s + data[index(p.layout, p.rows, cols, i, k)] * x[k])
            }
        };
        match accum {
            Accum::Replace => *d = s,
            Accum::Add => *d += s,
        }
    }
}
