use std::fmt::Debug;
use std::iter::Sum;
use std::ops::{AddAssign, DivAssign, MulAssign, SubAssign};

use crate::{Accum, MatMut, MatRef};

/// The element types recur computes in: `f32` for training and serving, `f64` for gradient
/// checks. Each type names its fast GEMM.
pub trait Float:
    num_traits::Float + AddAssign + SubAssign + MulAssign + DivAssign + Sum + Default + Debug + Send + Sync + 'static
{
    /// Converts from `f64` (rounding for `f32`).
    fn of(x: f64) -> Self;
    /// Converts to `f64`.
    fn f64(self) -> f64;
    /// `C (=|+=) A · B` through the `matrixmultiply` crate.
    ///
    /// # Panics
    /// On mismatched dimensions.
    fn gemm_fast(a: MatRef<'_, Self>, b: MatRef<'_, Self>, c: MatMut<'_, Self>, accum: Accum);
}

macro_rules! impl_float {
    ($t:ty, $f:ident) => {
        impl Float for $t {
            #[inline(always)]
            fn of(x: f64) -> Self {
                x as $t
            }
            #[inline(always)]
            fn f64(self) -> f64 {
                self as f64
            }
            #[track_caller]
            fn gemm_fast(a: MatRef<'_, Self>, b: MatRef<'_, Self>, c: MatMut<'_, Self>, accum: Accum) {
                crate::reference::check_gemm(&a, &b, &c);
                if c.rows == 0 || c.cols == 0 {
                    return;
                }
                let beta = match accum {
                    Accum::Replace => 0.0,
                    Accum::Add => 1.0,
                };
                if a.cols == 0 {
                    if accum == Accum::Replace {
                        crate::reference::fill_mat(c, 0.0);
                    }
                    return;
                }
                // SAFETY: check_gemm verified that every index reached through the strides lies
                // inside the slices; `c` is uniquely borrowed.
                unsafe {
                    matrixmultiply::$f(
                        a.rows,
                        a.cols,
                        b.cols,
                        1.0,
                        a.data.as_ptr(),
                        a.rs as isize,
                        a.cs as isize,
                        b.data.as_ptr(),
                        b.rs as isize,
                        b.cs as isize,
                        beta,
                        c.data.as_mut_ptr(),
                        c.rs as isize,
                        c.cs as isize,
                    );
                }
            }
        }
    };
}
impl_float!(f32, sgemm);
impl_float!(f64, dgemm);
