//! Eight-lane `f32` `exp`, `sigmoid` and `tanh` for AVX2+FMA.
//!
//! Accuracy comes first: these feed recurrent gate epilogues whose outputs must track PyTorch
//! to 1e-5 relative after a hundred steps, so every function uses true division (never
//! `rcp_ps`) and is within a few ulp of the correctly rounded result over the whole `f32`
//! range. Measured over every `f32` input (`tests/kernels.rs`, ignored test
//! `exhaustive_max_rel_err`), wherever the true result is a normal number, the maximum
//! relative errors are 8.6e-8 (`exp`), 1.48e-7 (`sigmoid`) and 1.50e-7 (`tanh`). Saturation is exact (`sigmoid(±∞) = 1, 0`, `tanh(±∞) = ±1`) and NaN
//! inputs give NaN outputs.
//!
//! The functions are `#[target_feature(enable = "avx2,fma")]`: call them only from code that
//! has the same features enabled (every caller in [`crate::x86`] does).

use std::arch::x86_64::*;

/// Largest argument kept by [`exp`]; anything above overflows to `+∞` anyway.
const EXP_HI: f32 = 89.0;
/// Smallest argument kept by [`exp`]; anything below rounds to `+0` anyway.
const EXP_LO: f32 = -104.0;
/// `ln 2` split so that `n · LN2_HI` is exact for every `|n| ≤ 2^9` (Cody and Waite).
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Cephes `expf` minimax coefficients for `(eʳ − 1 − r) / r²` on `|r| ≤ ln2/2`.
const EXP_P: [f32; 6] = [
    1.987_569_1e-4,
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    1.666_666_5e-1,
    5e-1,
];
/// Below this `|x|` [`tanh`] uses its odd polynomial instead of `exp`.
const TANH_SMALL: f32 = 0.625;
/// Cephes `tanhf` coefficients for `(tanh x − x) / x³` as a polynomial in `x²`, `|x| < 0.625`.
const TANH_P: [f32; 5] = [
    -5.704_988_7e-3,
    2.063_909e-2,
    -5.373_971_6e-2,
    1.333_144_2e-1,
    -3.333_328e-1,
];

/// `eˣ` per lane.
///
/// Method: clamp `x` to `[−104, 89]` (outside it the result is `0` or `+∞` regardless);
/// `n = round(x · log₂e)`; two-constant Cody–Waite reduction `r = x − n·ln2` with
/// `|r| ≤ ln2/2`; `eʳ ≈ 1 + r + r²·P(r)` with Cephes' degree-5 minimax `P`, evaluated with
/// FMA in Estrin's scheme (three dependent FMAs instead of five: these sit on the critical
/// path of the gate epilogues); finally the result is scaled by `2ⁿ` in two exponent-field multiplications
/// (`2^⌊n/2⌋ · 2^(n−⌊n/2⌋)`), so results that are subnormal or overflow round correctly
/// instead of wrapping the exponent. Max relative error 8.6e-8 (about 1.4 ulp) for normal
/// results. NaN propagates (the
/// clamp keeps NaN because `max`/`min` return their second operand when it is NaN).
///
/// # Safety
/// The CPU must support AVX2 and FMA. Code compiled with both features enabled (every
/// caller in [`crate::x86`]) may call this safely.
#[target_feature(enable = "avx2,fma")]
#[inline]
pub fn exp(x: __m256) -> __m256 {
    let x = _mm256_min_ps(_mm256_set1_ps(EXP_HI), _mm256_max_ps(_mm256_set1_ps(EXP_LO), x));
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        x,
        _mm256_set1_ps(std::f32::consts::LOG2_E),
    ));
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
    let c = |i: usize| _mm256_set1_ps(EXP_P[i]);
    let r2 = _mm256_mul_ps(r, r);
    let p01 = _mm256_fmadd_ps(c(0), r, c(1));
    let p23 = _mm256_fmadd_ps(c(2), r, c(3));
    let p45 = _mm256_fmadd_ps(c(4), r, c(5));
    let p = _mm256_fmadd_ps(_mm256_fmadd_ps(p01, r2, p23), r2, p45);
    let y = _mm256_add_ps(_mm256_fmadd_ps(p, r2, r), _mm256_set1_ps(1.0));
    let ni = _mm256_cvtps_epi32(n);
    let n1 = _mm256_srai_epi32::<1>(ni);
    let n2 = _mm256_sub_epi32(ni, n1);
    let bias = _mm256_set1_epi32(127);
    let s1 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(n1, bias)));
    let s2 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(n2, bias)));
    _mm256_mul_ps(_mm256_mul_ps(y, s1), s2)
}

/// Logistic sigmoid `1 / (1 + e^{−x})` per lane.
///
/// Method: exactly PyTorch's CPU formula, `1 / (1 + exp(−x))`, with [`exp`] and a true
/// division. For `x ≥ 0` the error of `exp` is damped by `e/(1+e) ≤ 1/2`; for `x < 0` it
/// passes through (max relative error 1.48e-7). `x → +∞` gives exactly 1, `x < −88.7` gives 0
/// (the true value is subnormal there), NaN gives NaN.
///
/// # Safety
/// The CPU must support AVX2 and FMA. Code compiled with both features enabled (every
/// caller in [`crate::x86`]) may call this safely.
#[target_feature(enable = "avx2,fma")]
#[inline]
pub fn sigmoid(x: __m256) -> __m256 {
    let one = _mm256_set1_ps(1.0);
    let e = exp(_mm256_sub_ps(_mm256_setzero_ps(), x));
    _mm256_div_ps(one, _mm256_add_ps(one, e))
}

/// Hyperbolic tangent per lane.
///
/// Method, on `a = |x|` with the sign of `x` restored at the end:
/// * `a < 0.625`: the odd polynomial `x + x³·Q(x²)` (Cephes `tanhf`, degree 11), which has no
///   cancellation near 0;
/// * otherwise `(1 − u) / (1 + u)` with `u = e^{−2a} ≤ 0.29` from [`exp`]: every term is
///   well-conditioned (the error of `u` is damped by `2u/(1−u²) ≤ 0.63`), and for large `a`
///   `u` underflows to 0 so the result saturates to exactly `±1`.
///
/// Both branches are computed for all lanes and blended, then the sign of `x` is copied onto
/// the result (so `tanh(−0) = −0`). NaN takes the second branch and propagates through `exp`.
///
/// # Safety
/// The CPU must support AVX2 and FMA. Code compiled with both features enabled (every
/// caller in [`crate::x86`]) may call this safely.
#[target_feature(enable = "avx2,fma")]
#[inline]
pub fn tanh(x: __m256) -> __m256 {
    let sign = _mm256_set1_ps(-0.0);
    let a = _mm256_andnot_ps(sign, x);
    let z = _mm256_mul_ps(x, x);
    let mut q = _mm256_set1_ps(TANH_P[0]);
    for &c in &TANH_P[1..] {
        q = _mm256_fmadd_ps(q, z, _mm256_set1_ps(c));
    }
    let small = _mm256_fmadd_ps(_mm256_mul_ps(q, z), x, x);
    let one = _mm256_set1_ps(1.0);
    let u = exp(_mm256_mul_ps(a, _mm256_set1_ps(-2.0)));
    let big = _mm256_div_ps(_mm256_sub_ps(one, u), _mm256_add_ps(one, u));
    let is_small = _mm256_cmp_ps::<_CMP_LT_OQ>(a, _mm256_set1_ps(TANH_SMALL));
    let magnitude = _mm256_andnot_ps(sign, _mm256_blendv_ps(big, small, is_small));
    _mm256_or_ps(magnitude, _mm256_and_ps(sign, x))
}

/// Applies `f` to each of `N` vectors, one operation of the sequence at a time: the helper of
/// the `_n` functions below.
#[inline(always)]
fn each<const N: usize>(x: [__m256; N], f: impl Fn(__m256) -> __m256) -> [__m256; N] {
    x.map(f)
}

/// [`exp`] on `N` independent vectors, bit for bit, with the operations of the `N` evaluations
/// interleaved step by step. A single `exp` is one long chain of dependent operations; the
/// out-of-order window of the CPU holds only a few such chains at once, so a gate epilogue
/// that evaluates them one after another is bound by their latency. Interleaving `N` chains
/// in program order lets the scheduler find `N` ready operations at every step.
///
/// # Safety
/// As [`exp`].
#[target_feature(enable = "avx2,fma")]
#[inline]
pub fn exp_n<const N: usize>(x: [__m256; N]) -> [__m256; N] {
    let x = each(x, |x| {
        _mm256_min_ps(_mm256_set1_ps(EXP_HI), _mm256_max_ps(_mm256_set1_ps(EXP_LO), x))
    });
    let n = each(x, |x| {
        _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
            x,
            _mm256_set1_ps(std::f32::consts::LOG2_E),
        ))
    });
    let r: [__m256; N] = std::array::from_fn(|i| _mm256_fnmadd_ps(n[i], _mm256_set1_ps(LN2_HI), x[i]));
    let r: [__m256; N] = std::array::from_fn(|i| _mm256_fnmadd_ps(n[i], _mm256_set1_ps(LN2_LO), r[i]));
    let c = |i: usize| _mm256_set1_ps(EXP_P[i]);
    let r2 = each(r, |r| _mm256_mul_ps(r, r));
    let p01 = each(r, |r| _mm256_fmadd_ps(c(0), r, c(1)));
    let p23 = each(r, |r| _mm256_fmadd_ps(c(2), r, c(3)));
    let p45 = each(r, |r| _mm256_fmadd_ps(c(4), r, c(5)));
    let p: [__m256; N] = std::array::from_fn(|i| _mm256_fmadd_ps(p01[i], r2[i], p23[i]));
    let p: [__m256; N] = std::array::from_fn(|i| _mm256_fmadd_ps(p[i], r2[i], p45[i]));
    let y: [__m256; N] =
        std::array::from_fn(|i| _mm256_add_ps(_mm256_fmadd_ps(p[i], r2[i], r[i]), _mm256_set1_ps(1.0)));
    let bias = _mm256_set1_epi32(127);
    std::array::from_fn(|i| {
        let ni = _mm256_cvtps_epi32(n[i]);
        let n1 = _mm256_srai_epi32::<1>(ni);
        let n2 = _mm256_sub_epi32(ni, n1);
        let s1 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(n1, bias)));
        let s2 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(n2, bias)));
        _mm256_mul_ps(_mm256_mul_ps(y[i], s1), s2)
    })
}

/// [`sigmoid`] on `N` independent vectors, bit for bit, interleaved as in [`exp_n`].
///
/// # Safety
/// As [`sigmoid`].
#[target_feature(enable = "avx2,fma")]
#[inline]
pub fn sigmoid_n<const N: usize>(x: [__m256; N]) -> [__m256; N] {
    let one = _mm256_set1_ps(1.0);
    let e = exp_n(each(x, |x| _mm256_sub_ps(_mm256_setzero_ps(), x)));
    each(e, |e| _mm256_div_ps(one, _mm256_add_ps(one, e)))
}

/// [`tanh`] on `N` independent vectors, bit for bit, interleaved as in [`exp_n`].
///
/// # Safety
/// As [`tanh`].
#[target_feature(enable = "avx2,fma")]
#[inline]
pub fn tanh_n<const N: usize>(x: [__m256; N]) -> [__m256; N] {
    let sign = _mm256_set1_ps(-0.0);
    let a = each(x, |x| _mm256_andnot_ps(sign, x));
    let z = each(x, |x| _mm256_mul_ps(x, x));
    let mut q = [_mm256_set1_ps(TANH_P[0]); N];
    for &c in &TANH_P[1..] {
        q = std::array::from_fn(|i| _mm256_fmadd_ps(q[i], z[i], _mm256_set1_ps(c)));
    }
    let small: [__m256; N] = std::array::from_fn(|i| _mm256_fmadd_ps(_mm256_mul_ps(q[i], z[i]), x[i], x[i]));
    let one = _mm256_set1_ps(1.0);
    let u = exp_n(each(a, |a| _mm256_mul_ps(a, _mm256_set1_ps(-2.0))));
    let big = each(u, |u| _mm256_div_ps(_mm256_sub_ps(one, u), _mm256_add_ps(one, u)));
    std::array::from_fn(|i| {
        let is_small = _mm256_cmp_ps::<_CMP_LT_OQ>(a[i], _mm256_set1_ps(TANH_SMALL));
        let magnitude = _mm256_andnot_ps(sign, _mm256_blendv_ps(big[i], small[i], is_small));
        _mm256_or_ps(magnitude, _mm256_and_ps(sign, x[i]))
    })
}
