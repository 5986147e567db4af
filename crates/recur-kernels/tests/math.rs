//! The vectorized math functions: accuracy of `exp`, `sigmoid` and `tanh` against `f64` over a
//! dense sweep of `f32` bit patterns (every family, with an opt-in exhaustive run), their
//! special values, and the interleaved multi-chain versions used by the gate epilogues equal
//! to the single-chain ones bit for bit.

/// Accuracy of `exp`, `sigmoid` and `tanh` (`f32`) against `f64`, for each family.
mod accuracy {
    use recur_kernels::{kernels, KernelChoice};

    const SPECIALS: [f32; 8] = [
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::MIN_POSITIVE,
        f32::MAX,
        f32::MIN,
    ];

    /// Checks `f` over every `step`-th `f32` bit pattern of both signs (with `step = 251`,
    /// about 17 million values covering every binade) and the special values, in chunks.
    /// Returns the maximum relative error where the true value is a normal `f32`; elsewhere
    /// asserts the result is within one smallest normal of the truth (`0` or a subnormal), or
    /// `±∞` on overflow. NaN must map to NaN.
    fn max_rel_err(name: &str, step: usize, f: impl Fn(&mut [f32]), truth: impl Fn(f64) -> f64) -> f64 {
        let mut worst = (0.0, 0.0f32);
        let mut bits = (0..0x7f80_0000u32).step_by(step).peekable();
        let mut x = Vec::with_capacity(1 << 17);
        let mut y = Vec::with_capacity(1 << 17);
        while bits.peek().is_some() {
            x.clear();
            x.extend(
                bits.by_ref()
                    .take(1 << 16)
                    .flat_map(|b| [f32::from_bits(b), -f32::from_bits(b)]),
            );
            if bits.peek().is_none() {
                x.extend(SPECIALS);
            }
            y.clone_from(&x);
            f(&mut y);
            for (&x, &y) in x.iter().zip(&y) {
                let t = truth(x as f64);
                if t.is_nan() {
                    assert!(y.is_nan(), "{name}({x:e}) = {y:e}, want NaN");
                } else if t.abs() > f32::MAX as f64 {
                    assert_eq!(y as f64, t.signum() * f64::INFINITY, "{name}({x:e}) should overflow");
                } else if t.abs() < f32::MIN_POSITIVE as f64 {
                    let d = (y as f64 - t).abs();
                    assert!(d <= f32::MIN_POSITIVE as f64, "{name}({x:e}) = {y:e}, want {t:e}");
                } else {
                    let e = (y as f64 - t).abs() / t.abs();
                    if e.is_nan() || e > worst.0 {
                        worst = (e, x);
                    }
                }
            }
        }
        eprintln!("{name}: max relative error {:e} at x = {:e}", worst.0, worst.1);
        worst.0
    }

    fn sigmoid(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    macro_rules! accuracy_tests {
        ($name:ident, $choice:expr) => {
            mod $name {
                use super::*;

                const NAME: &str = stringify!($name);

                #[test]
                fn exp_max_rel_err() {
                    let e = max_rel_err(&format!("{NAME} exp"), 251, |v| kernels($choice).exp(v), f64::exp);
                    assert!(e <= 1.5e-7, "exp: {e:e}");
                }

                #[test]
                fn sigmoid_max_rel_err() {
                    let e = max_rel_err(
                        &format!("{NAME} sigmoid"),
                        251,
                        |v| kernels($choice).sigmoid(v),
                        sigmoid,
                    );
                    assert!(e <= 2e-7, "sigmoid: {e:e}");
                }

                #[test]
                fn tanh_max_rel_err() {
                    let e = max_rel_err(
                        &format!("{NAME} tanh"),
                        251,
                        |v| kernels($choice).tanh(v),
                        f64::tanh,
                    );
                    assert!(e <= 2e-7, "tanh: {e:e}");
                }

                /// Every `f32` (about 4·10⁹ values per function; minutes): run with `--ignored`.
                #[test]
                #[ignore = "all 2^32 inputs, about 2 minutes; the every-251st-pattern sweep above runs in CI"]
                fn exhaustive_max_rel_err() {
                    let k = kernels($choice);
                    assert!(max_rel_err(&format!("{NAME} exp"), 1, |v| k.exp(v), f64::exp) <= 1.5e-7);
                    assert!(max_rel_err(&format!("{NAME} sigmoid"), 1, |v| k.sigmoid(v), sigmoid) <= 2e-7);
                    assert!(max_rel_err(&format!("{NAME} tanh"), 1, |v| k.tanh(v), f64::tanh) <= 2e-7);
                }

                #[test]
                fn special_values() {
                    let k = kernels($choice);
                    let mut v = [
                        0.0f32,
                        -0.0,
                        f32::INFINITY,
                        f32::NEG_INFINITY,
                        1e30,
                        -1e30,
                        f32::NAN,
                        20.0,
                        -20.0,
                    ];
                    let mut t = v;
                    k.tanh(&mut t);
                    assert_eq!(t[..6], [0.0, -0.0, 1.0, -1.0, 1.0, -1.0]);
                    assert!(t[0].is_sign_positive() && t[1].is_sign_negative());
                    assert!(t[6].is_nan());
                    assert_eq!(t[7..], [1.0, -1.0]);
                    let mut s = v;
                    k.sigmoid(&mut s);
                    assert_eq!(s[..6], [0.5, 0.5, 1.0, 0.0, 1.0, 0.0]);
                    assert!(s[6].is_nan());
                    k.exp(&mut v);
                    assert_eq!(v[..6], [1.0, 1.0, f32::INFINITY, 0.0, f32::INFINITY, 0.0]);
                    assert!(v[6].is_nan());
                }
            }
        };
    }

    accuracy_tests!(best, KernelChoice::Best);
    accuracy_tests!(reference, KernelChoice::Reference);
}

/// The interleaved `exp_n` / `sigmoid_n` / `tanh_n` (the gate epilogues evaluate several chunks
/// at once through them) equal the single-chain `exp` / `sigmoid` / `tanh` bit for bit, lane by
/// lane, over every 997th `f32` bit pattern of both signs and the special values.
#[cfg(target_arch = "x86_64")]
#[test]
fn interleaved_math_equals_single_chain_math_bitwise() {
    use recur_kernels::x86::math;
    use std::arch::x86_64::*;
    if !recur_kernels::x86::has_avx2_fma() {
        return;
    }
    let mut x: Vec<f32> = (0..0x7f80_0000u32)
        .step_by(997)
        .flat_map(|b| [f32::from_bits(b), -f32::from_bits(b)])
        .collect();
    x.extend([
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::MAX,
        f32::MIN,
        1e-40,
    ]);
    while !x.len().is_multiple_of(32) {
        x.push(0.5);
    }
    let lanes = |v: __m256| {
        let mut out = [0.0f32; 8];
        // SAFETY: `out` holds 8 writable floats.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), v) };
        out.map(f32::to_bits)
    };
    type One = unsafe fn(__m256) -> __m256;
    type Four = unsafe fn([__m256; 4]) -> [__m256; 4];
    type Two = unsafe fn([__m256; 2]) -> [__m256; 2];
    let fns: [(&str, One, Four, Two); 3] = [
        ("exp", math::exp, math::exp_n::<4>, math::exp_n::<2>),
        ("sigmoid", math::sigmoid, math::sigmoid_n::<4>, math::sigmoid_n::<2>),
        ("tanh", math::tanh, math::tanh_n::<4>, math::tanh_n::<2>),
    ];
    for (name, one, four, two) in fns {
        for c in x.chunks_exact(32) {
            // SAFETY: AVX2 and FMA are present (checked above); every load reads 8 floats of
            // the 32-float chunk.
            unsafe {
                let v: [__m256; 4] = std::array::from_fn(|i| _mm256_loadu_ps(c[8 * i..].as_ptr()));
                let got4 = four(v);
                let got2 = two([v[0], v[1]]);
                for i in 0..4 {
                    let want = lanes(one(v[i]));
                    assert_eq!(lanes(got4[i]), want, "{name}_n::<4> on {:?}", &c[8 * i..8 * i + 8]);
                    if i < 2 {
                        assert_eq!(lanes(got2[i]), want, "{name}_n::<2> on {:?}", &c[8 * i..8 * i + 8]);
                    }
                }
            }
        }
    }
}
