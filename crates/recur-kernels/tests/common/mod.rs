//! Helpers shared by the kernel test binaries: random operands and tolerance checks.
#![allow(dead_code)]

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use recur_kernels::Float;

pub fn rand_vec<T: Float>(rng: &mut ChaCha8Rng, len: usize, scale: f64) -> Vec<T> {
    (0..len).map(|_| T::of(rng.random_range(-scale..=scale))).collect()
}

/// `8·ε`: about 1e-6 for `f32`.
pub fn tol<T: Float>() -> f64 {
    8.0 * T::epsilon().f64()
}

/// Asserts `|got[i] − want[i]| ≤ bound(i)` for every `i` (NaN matches NaN).
#[track_caller]
pub fn assert_close<T: Float>(what: &str, got: &[T], want: &[T], bound: impl Fn(usize) -> f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let (g, w) = (g.f64(), w.f64());
        if g.is_nan() && w.is_nan() || g == w {
            continue;
        }
        let b = bound(i) + T::min_positive_value().f64();
        assert!(
            (g - w).abs() <= b,
            "{what}[{i}]: got {g:e}, want {w:e}, |diff| {:e} > {b:e}",
            (g - w).abs()
        );
    }
}

pub fn rel<T: Float>(want: &[T]) -> impl Fn(usize) -> f64 + '_ {
    move |i| tol::<T>() * want[i].f64().abs()
}
