//! Plain reference kernels, generic over `f32`/`f64`. They define what every fast kernel must
//! compute. Shapes use `n` = active rows, `h` = hidden width; all matrices are row-major and
//! contiguous unless a leading dimension is given.
//!
//! Caches hold post-activation values so derivatives are cheap: `σ' = y(1 − y)`,
//! `tanh' = 1 − y²`.

use crate::gates::*;
use crate::{Accum, Float, MatMut, MatRef};

/// Logistic sigmoid, `1 / (1 + e^{−x})`.
#[inline(always)]
pub fn sigmoid<T: Float>(x: T) -> T {
    T::one() / (T::one() + (-x).exp())
}

#[track_caller]
pub(crate) fn check_gemm<T>(a: &MatRef<'_, T>, b: &MatRef<'_, T>, c: &MatMut<'_, T>) {
    assert_eq!(
        a.cols, b.rows,
        "gemm: inner dimensions {}x{} · {}x{}",
        a.rows, a.cols, b.rows, b.cols
    );
    assert_eq!(
        (c.rows, c.cols),
        (a.rows, b.cols),
        "gemm: destination {}x{} for {}x{}",
        c.rows,
        c.cols,
        a.rows,
        b.cols
    );
    let span = |rows: usize, cols: usize, rs: usize, cs: usize| {
        if rows == 0 || cols == 0 {
            0
        } else {
            (rows - 1) * rs + (cols - 1) * cs + 1
        }
    };
    assert!(
        a.data.len() >= span(a.rows, a.cols, a.rs, a.cs),
        "gemm: lhs slice too short"
    );
    assert!(
        b.data.len() >= span(b.rows, b.cols, b.rs, b.cs),
        "gemm: rhs slice too short"
    );
    assert!(
        c.data.len() >= span(c.rows, c.cols, c.rs, c.cs),
        "gemm: destination slice too short"
    );
    if c.rows > 1 && c.cols > 1 {
        assert!(c.rs != 0 && c.cs != 0, "gemm: aliased destination strides");
    }
}

pub(crate) fn fill_mat<T: Float>(c: MatMut<'_, T>, v: T) {
    for i in 0..c.rows {
        for j in 0..c.cols {
            c.data[i * c.rs + j * c.cs] = v;
        }
    }
}

/// `C (=|+=) A · B` with strided views, accumulated in the element type.
///
/// # Panics
/// On mismatched dimensions or short slices.
#[track_caller]
pub fn gemm<T: Float>(a: MatRef<'_, T>, b: MatRef<'_, T>, c: MatMut<'_, T>, accum: Accum) {
    check_gemm(&a, &b, &c);
    for i in 0..c.rows {
        for j in 0..c.cols {
            let mut s = T::zero();
            for k in 0..a.cols {
                s += a.data[i * a.rs + k * a.cs] * b.data[k * b.rs + j * b.cs];
            }
            let d = &mut c.data[i * c.rs + j * c.cs];
            *d = match accum {
                Accum::Replace => s,
                Accum::Add => *d + s,
            };
        }
    }
}

/// Fills each of `n` rows of `dst` (`[n, bias.len()]`) with `bias`, or with zeros when `None`.
#[track_caller]
pub fn broadcast_rows<T: Float>(n: usize, bias: Option<&[T]>, dst: &mut [T]) {
    match bias {
        Some(b) => {
            let w = b.len();
            assert!(dst.len() >= n * w, "broadcast_rows: destination too short");
            for row in dst[..n * w].chunks_exact_mut(w) {
                row.copy_from_slice(b);
            }
        }
        None => dst.iter_mut().for_each(|x| *x = T::zero()),
    }
}

/// Adds the `n` rows of `src` (`[n, w]`) into `dst` (`[w]`): a bias gradient.
#[track_caller]
pub fn sum_rows<T: Float>(n: usize, w: usize, src: &[T], dst: &mut [T]) {
    assert!(src.len() >= n * w && dst.len() == w, "sum_rows: shapes");
    for row in src[..n * w].chunks_exact(w) {
        for (d, &s) in dst.iter_mut().zip(row) {
            *d += s;
        }
    }
}

/// `max(x, 0)` with NaN propagated (PyTorch's `relu`).
#[inline(always)]
pub fn relu<T: Float>(x: T) -> T {
    if x.is_nan() || x > T::zero() {
        x
    } else {
        T::zero()
    }
}

/// Elman RNN step: `h_out = act(gi + gh)`, with `act = relu` when `relu` else `tanh`.
/// `gi`, `gh`, `h_out`: `[n, h]`.
#[track_caller]
pub fn rnn_fwd<T: Float>(n: usize, h: usize, gi: &[T], gh: &[T], relu: bool, h_out: &mut [T]) {
    let m = n * h;
    assert!(gi.len() >= m && gh.len() >= m && h_out.len() >= m, "rnn_fwd: shapes");
    for k in 0..m {
        let a = gh[k] + gi[k];
        h_out[k] = if relu { self::relu(a) } else { a.tanh() };
    }
}

/// Elman RNN step backward: `dpre = dh ⊙ act'(h_out)`. All `[n, h]`.
#[track_caller]
pub fn rnn_bwd<T: Float>(n: usize, h: usize, h_out: &[T], dh: &[T], relu: bool, dpre: &mut [T]) {
    let m = n * h;
    assert!(h_out.len() >= m && dh.len() >= m && dpre.len() >= m, "rnn_bwd: shapes");
    for k in 0..m {
        let y = h_out[k];
        dpre[k] = if relu {
            if y > T::zero() {
                dh[k]
            } else {
                T::zero()
            }
        } else {
            dh[k] * (T::one() - y * y)
        };
    }
}

/// GRU step (PyTorch's CPU evaluation order).
///
/// `gi = x·W_ihᵀ + b_ih` and `gh = h·W_hhᵀ + b_hh` are `[n, 3h]` in gate order `r | z | n`;
/// `h_prev`, `h_out` are `[n, h]`; `cache` is `[n, 4h]` and receives `r | z | n | gh_n`.
#[track_caller]
pub fn gru_fwd<T: Float>(n: usize, h: usize, gi: &[T], gh: &[T], h_prev: &[T], h_out: &mut [T], cache: &mut [T]) {
    let g = GRU_GATES * h;
    let cw = GRU_CACHE * h;
    crate::shapes::gru_fwd(n, h, gi.len(), gh.len(), h_prev.len(), h_out.len(), cache.len());
    for b in 0..n {
        let (gi, gh) = (&gi[b * g..(b + 1) * g], &gh[b * g..(b + 1) * g]);
        let c = &mut cache[b * cw..(b + 1) * cw];
        for j in 0..h {
            let r = sigmoid(gh[GRU_R * h + j] + gi[GRU_R * h + j]);
            let z = sigmoid(gh[GRU_Z * h + j] + gi[GRU_Z * h + j]);
            let ghn = gh[GRU_N * h + j];
            let nn = (gi[GRU_N * h + j] + ghn * r).tanh();
            let hp = h_prev[b * h + j];
            h_out[b * h + j] = (hp - nn) * z + nn;
            c[GRU_R * h + j] = r;
            c[GRU_Z * h + j] = z;
            c[GRU_N * h + j] = nn;
            c[3 * h + j] = ghn;
        }
    }
}

/// GRU step backward.
///
/// From the forward `cache` (`[n, 4h]`), `h_prev` and `dh = ∂L/∂h_t` (`[n, h]`) it writes the
/// pre-activation gradients of the input projection `dgi` and of the recurrent projection
/// `dgh` (both `[n, 3h]`; they differ only in the `n` chunk, `dgh_n = dgi_n ⊙ r`) and the direct
/// part of `∂L/∂h_{t−1}`, `dh_prev = dh ⊙ z` (`[n, h]`, replaced).
#[allow(clippy::too_many_arguments)]
#[track_caller]
pub fn gru_bwd<T: Float>(
    n: usize,
    h: usize,
    cache: &[T],
    h_prev: &[T],
    dh: &[T],
    dgi: &mut [T],
    dgh: &mut [T],
    dh_prev: &mut [T],
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
    let one = T::one();
    for b in 0..n {
        let c = &cache[b * cw..(b + 1) * cw];
        for j in 0..h {
            let (r, z, nn, ghn) = (c[j], c[h + j], c[2 * h + j], c[3 * h + j]);
            let d = dh[b * h + j];
            let hp = h_prev[b * h + j];
            let dn = d * (one - z) * (one - nn * nn);
            let dz = d * (hp - nn) * z * (one - z);
            let dr = dn * ghn * r * (one - r);
            let (ri, zi, ni) = (b * g + GRU_R * h + j, b * g + GRU_Z * h + j, b * g + GRU_N * h + j);
            dgi[ri] = dr;
            dgh[ri] = dr;
            dgi[zi] = dz;
            dgh[zi] = dz;
            dgi[ni] = dn;
            dgh[ni] = dn * r;
            dh_prev[b * h + j] = d * z;
        }
    }
}

/// LSTM cell update. `a` (`[n, 4h]`, order `i | f | g | o`) holds the pre-activations
/// `gi + gh` on entry and the activated gates on return. `peep` (`[3h]`, order
/// `p_i | p_f | p_o`) adds `p_i ⊙ c_{t−1}`, `p_f ⊙ c_{t−1}` and `p_o ⊙ c_t`. Writes
/// `c_out = f ⊙ c_prev + i ⊙ g` (`[n, h]`).
#[track_caller]
pub fn lstm_cell_fwd<T: Float>(n: usize, h: usize, a: &mut [T], c_prev: &[T], peep: Option<&[T]>, c_out: &mut [T]) {
    let g4 = LSTM_GATES * h;
    assert!(
        a.len() >= n * g4 && c_prev.len() >= n * h && c_out.len() >= n * h,
        "lstm_cell_fwd: shapes"
    );
    if let Some(p) = peep {
        assert_eq!(p.len(), 3 * h, "lstm_cell_fwd: peephole length");
    }
    for b in 0..n {
        let a = &mut a[b * g4..(b + 1) * g4];
        for j in 0..h {
            let cp = c_prev[b * h + j];
            let (mut ai, mut af, mut ao) = (a[LSTM_I * h + j], a[LSTM_F * h + j], a[LSTM_O * h + j]);
            if let Some(p) = peep {
                ai += p[PEEP_I * h + j] * cp;
                af += p[PEEP_F * h + j] * cp;
            }
            let i = sigmoid(ai);
            let f = sigmoid(af);
            let gg = a[LSTM_G * h + j].tanh();
            let c = f * cp + i * gg;
            if let Some(p) = peep {
                ao += p[PEEP_O * h + j] * c;
            }
            a[LSTM_I * h + j] = i;
            a[LSTM_F * h + j] = f;
            a[LSTM_G * h + j] = gg;
            a[LSTM_O * h + j] = sigmoid(ao);
            c_out[b * h + j] = c;
        }
    }
}

/// LSTM visible state: `h_out = o ⊙ tanh(x)` where `o` is chunk 3 of the activated gates
/// `a` (`[n, 4h]`) and `x` (`[n, h]`) is `c_t` (or its layer-normalized form).
#[track_caller]
pub fn lstm_hidden_fwd<T: Float>(n: usize, h: usize, a: &[T], x: &[T], h_out: &mut [T]) {
    let g4 = LSTM_GATES * h;
    assert!(
        a.len() >= n * g4 && x.len() >= n * h && h_out.len() >= n * h,
        "lstm_hidden_fwd: shapes"
    );
    for b in 0..n {
        for j in 0..h {
            h_out[b * h + j] = a[b * g4 + LSTM_O * h + j] * x[b * h + j].tanh();
        }
    }
}

/// Backward of [`lstm_hidden_fwd`]: from `dh` (`[n, h]`) writes `d_o = ∂L/∂o` and
/// `dx = ∂L/∂x` (both `[n, h]`, replaced).
#[track_caller]
pub fn lstm_hidden_bwd<T: Float>(n: usize, h: usize, a: &[T], x: &[T], dh: &[T], d_o: &mut [T], dx: &mut [T]) {
    let g4 = LSTM_GATES * h;
    assert!(
        a.len() >= n * g4 && x.len() >= n * h && dh.len() >= n * h,
        "lstm_hidden_bwd: shapes"
    );
    assert!(
        d_o.len() >= n * h && dx.len() >= n * h,
        "lstm_hidden_bwd: output shapes"
    );
    for b in 0..n {
        for j in 0..h {
            let k = b * h + j;
            let t = x[k].tanh();
            let o = a[b * g4 + LSTM_O * h + j];
            d_o[k] = dh[k] * t;
            dx[k] = dh[k] * o * (T::one() - t * t);
        }
    }
}

/// Backward of [`lstm_cell_fwd`].
///
/// Inputs: activated gates `a` (`[n, 4h]`), `c_prev`, `c` (`[n, h]`), the peephole vector, and
/// `d_o = ∂L/∂o` (`[n, h]`). `dc` holds `∂L/∂c_t` on entry (everything except the output-gate
/// peephole path) and `∂L/∂c_{t−1}` on return. Writes the pre-activation gradients `da`
/// (`[n, 4h]`, replaced) and adds the peephole gradient into `dpeep` (`[3h]`).
#[allow(clippy::too_many_arguments)]
#[track_caller]
pub fn lstm_cell_bwd<T: Float>(
    n: usize,
    h: usize,
    a: &[T],
    c_prev: &[T],
    c: &[T],
    peep: Option<&[T]>,
    d_o: &[T],
    dc: &mut [T],
    da: &mut [T],
    mut dpeep: Option<&mut [T]>,
) {
    let g4 = LSTM_GATES * h;
    assert!(a.len() >= n * g4 && da.len() >= n * g4, "lstm_cell_bwd: gate shapes");
    assert!(
        c_prev.len() >= n * h && c.len() >= n * h && d_o.len() >= n * h && dc.len() >= n * h,
        "lstm_cell_bwd: state shapes"
    );
    let one = T::one();
    for b in 0..n {
        let ab = &a[b * g4..(b + 1) * g4];
        let dab = &mut da[b * g4..(b + 1) * g4];
        for j in 0..h {
            let k = b * h + j;
            let (i, f, gg, o) = (
                ab[LSTM_I * h + j],
                ab[LSTM_F * h + j],
                ab[LSTM_G * h + j],
                ab[LSTM_O * h + j],
            );
            let dao = d_o[k] * o * (one - o);
            let mut dct = dc[k];
            if let Some(p) = peep {
                dct += dao * p[PEEP_O * h + j];
            }
            let dai = dct * gg * i * (one - i);
            let daf = dct * c_prev[k] * f * (one - f);
            let dag = dct * i * (one - gg * gg);
            let mut dcp = dct * f;
            if let Some(p) = peep {
                dcp += dai * p[PEEP_I * h + j] + daf * p[PEEP_F * h + j];
            }
            if let Some(dp) = dpeep.as_deref_mut() {
                dp[PEEP_I * h + j] += dai * c_prev[k];
                dp[PEEP_F * h + j] += daf * c_prev[k];
                dp[PEEP_O * h + j] += dao * c[k];
            }
            dab[LSTM_I * h + j] = dai;
            dab[LSTM_F * h + j] = daf;
            dab[LSTM_G * h + j] = dag;
            dab[LSTM_O * h + j] = dao;
            dc[k] = dcp;
        }
    }
}

/// Layer normalization over rows: `y = γ ⊙ (x − μ)/√(σ² + ε) + β` with the biased variance,
/// for `n` rows of width `w`. Saves `xhat` (`[n, w]`) and `rstd` (`[n]`) for the backward pass.
#[allow(clippy::too_many_arguments)]
#[track_caller]
pub fn layernorm_fwd<T: Float>(
    n: usize,
    w: usize,
    x: &[T],
    gamma: &[T],
    beta: &[T],
    eps: T,
    y: &mut [T],
    xhat: &mut [T],
    rstd: &mut [T],
) {
    assert!(
        x.len() >= n * w && y.len() >= n * w && xhat.len() >= n * w && rstd.len() >= n,
        "layernorm_fwd: shapes"
    );
    assert!(gamma.len() == w && beta.len() == w, "layernorm_fwd: parameter shapes");
    let wf = T::of(w as f64);
    for b in 0..n {
        let xr = &x[b * w..(b + 1) * w];
        let mean = xr.iter().copied().sum::<T>() / wf;
        let var = xr.iter().map(|&v| (v - mean) * (v - mean)).sum::<T>() / wf;
        let rs = T::one() / (var + eps).sqrt();
        rstd[b] = rs;
        for j in 0..w {
            let xh = (xr[j] - mean) * rs;
            xhat[b * w + j] = xh;
            y[b * w + j] = gamma[j] * xh + beta[j];
        }
    }
}

/// Backward of [`layernorm_fwd`]: writes `dx` (replaced) and adds into `dgamma`, `dbeta`.
#[allow(clippy::too_many_arguments)]
#[track_caller]
pub fn layernorm_bwd<T: Float>(
    n: usize,
    w: usize,
    dy: &[T],
    xhat: &[T],
    rstd: &[T],
    gamma: &[T],
    dx: &mut [T],
    dgamma: &mut [T],
    dbeta: &mut [T],
) {
    assert!(
        dy.len() >= n * w && xhat.len() >= n * w && dx.len() >= n * w && rstd.len() >= n,
        "layernorm_bwd: shapes"
    );
    assert!(
        gamma.len() == w && dgamma.len() == w && dbeta.len() == w,
        "layernorm_bwd: parameter shapes"
    );
    let wf = T::of(w as f64);
    for b in 0..n {
        let (dyr, xr) = (&dy[b * w..(b + 1) * w], &xhat[b * w..(b + 1) * w]);
        let mut m1 = T::zero();
        let mut m2 = T::zero();
        for j in 0..w {
            let dxh = dyr[j] * gamma[j];
            m1 += dxh;
            m2 += dxh * xr[j];
            dgamma[j] += dyr[j] * xr[j];
            dbeta[j] += dyr[j];
        }
        m1 /= wf;
        m2 /= wf;
        for j in 0..w {
            dx[b * w + j] = rstd[b] * (dyr[j] * gamma[j] - m1 - xr[j] * m2);
        }
    }
}
