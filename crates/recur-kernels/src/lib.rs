//! recur's numeric kernels.
//!
//! This is the only crate in recur that contains SIMD or `unsafe`. It knows nothing of models,
//! layers, configs or files: every kernel is a free function over slices with explicit
//! dimensions, never allocates, and asserts its shape contract.
//!
//! * [`reference`](mod@reference) holds the plain kernels, generic over `f32` and `f64`. They define the
//!   semantics; every fast kernel is tested against them.
//! * [`dispatch`] detects the CPU once at run time and hands out a [`dispatch::Kernels`] table
//!   whose entries are the fastest implementation this CPU supports (or the reference ones when
//!   asked, for debugging and A/B timing).
//!
//! [`par::Helper`] is the one piece of threading: a persistent helper thread for two-way
//! fork-join without allocation (the two directions of a bidirectional layer).
//!
//! Gate orders are PyTorch's and are pinned in [`gates`].
//!
//! Choice of GEMM: large products (the hoisted input projection, weight gradients) go through
//! the `matrixmultiply` crate, a well-kept BLIS-style GEMM with its own run-time AVX/FMA
//! detection. The recurrent batch-1 GEMV, where packing and call overhead dominate, is our own.
#![deny(missing_docs)]

pub mod dispatch;
pub mod gates;
pub mod packed;
pub mod par;
pub mod quant;
pub mod reference;
mod scalar;
mod shapes;
#[cfg(target_arch = "x86_64")]
pub mod x86;

pub use dispatch::{kernels, KernelChoice, Kernels, Simd};
pub use packed::{GemvLayout, PackedGemv};
pub use quant::{Precision, QuantGemv, ACT_LEVELS};
pub use scalar::Float;

/// Whether a kernel overwrites its destination or adds into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accum {
    /// `dst = result`
    Replace,
    /// `dst += result`
    Add,
}

/// A strided read-only matrix view: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a, T> {
    /// Backing storage.
    pub data: &'a [T],
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Row stride (elements).
    pub rs: usize,
    /// Column stride (elements).
    pub cs: usize,
}

impl<'a, T> MatRef<'a, T> {
    /// A row-major `[rows, cols]` view of a slice.
    ///
    /// # Panics
    /// When `data` is shorter than `rows * cols`.
    #[track_caller]
    pub fn new(data: &'a [T], rows: usize, cols: usize) -> Self {
        assert!(
            data.len() >= rows * cols,
            "MatRef: {} elements < {rows}x{cols}",
            data.len()
        );
        MatRef {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// A row-major view with an explicit leading dimension (row stride).
    ///
    /// # Panics
    /// When `data` is too short for the view.
    #[track_caller]
    pub fn with_ld(data: &'a [T], rows: usize, cols: usize, ld: usize) -> Self {
        assert!(ld >= cols, "MatRef: ld {ld} < cols {cols}");
        assert!(
            rows == 0 || data.len() >= (rows - 1) * ld + cols,
            "MatRef: slice too short"
        );
        MatRef {
            data,
            rows,
            cols,
            rs: ld,
            cs: 1,
        }
    }

    /// The transposed view (no copy).
    pub fn t(self) -> Self {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }
}

/// A strided mutable matrix view: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Debug)]
pub struct MatMut<'a, T> {
    /// Backing storage.
    pub data: &'a mut [T],
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Row stride (elements).
    pub rs: usize,
    /// Column stride (elements).
    pub cs: usize,
}

impl<'a, T> MatMut<'a, T> {
    /// A row-major `[rows, cols]` view of a slice.
    ///
    /// # Panics
    /// When `data` is shorter than `rows * cols`.
    #[track_caller]
    pub fn new(data: &'a mut [T], rows: usize, cols: usize) -> Self {
        assert!(
            data.len() >= rows * cols,
            "MatMut: {} elements < {rows}x{cols}",
            data.len()
        );
        MatMut {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// A row-major view with an explicit leading dimension (row stride).
    ///
    /// # Panics
    /// When `data` is too short for the view.
    #[track_caller]
    pub fn with_ld(data: &'a mut [T], rows: usize, cols: usize, ld: usize) -> Self {
        assert!(ld >= cols, "MatMut: ld {ld} < cols {cols}");
        assert!(
            rows == 0 || data.len() >= (rows - 1) * ld + cols,
            "MatMut: slice too short"
        );
        MatMut {
            data,
            rows,
            cols,
            rs: ld,
            cs: 1,
        }
    }

    /// The transposed view (no copy).
    pub fn t(self) -> Self {
        MatMut {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }
}
