//! Attention over the encoder memory, forward and backward, one decoder step at a time.
//!
//! Shapes: `R` decoder rows, each attending to the memory of source `src_of[r]`; the memory
//! holds `B` sources of padded length `T` (`states [B, T, M]`, projected `keys [B, T, D]`) and
//! each source's real length. Positions at or beyond a source's length get weight 0 (the
//! softmax is over the real positions only) and receive no gradient.

use recur_kernels::{kernels, KernelChoice};

/// The encoder side of attention for one batch of sources.
#[derive(Clone, Debug, Default)]
pub struct Memory {
    /// Sources.
    pub batch: usize,
    /// Padded source length.
    pub time: usize,
    /// Width of a memory slot, `2·enc_hidden`.
    pub width: usize,
    /// Real length of each source, each in `1..=time`.
    pub lens: Vec<usize>,
    /// Encoder outputs `[B, T, M]` (zero at padded positions).
    pub states: Vec<f32>,
    /// Keys `[B, T, D]`: `W_a·s_j` (Luong) or `W_k·s_j + b_k` (Bahdanau); empty without attention.
    pub keys: Vec<f32>,
    /// Key width `D`.
    pub key_width: usize,
    /// The last layer's final states `[h_fwd; h_bwd]`, `[B, M]`.
    pub last: Vec<f32>,
    /// The decoder's initial state `tanh(bridge(last))`, `[B, H]`.
    pub init: Vec<f32>,
}

/// Gradients with respect to the parts of a [`Memory`] (same shapes).
#[derive(Clone, Debug, Default)]
pub struct MemoryGrads {
    /// `∂L/∂states`, `[B, T, M]`.
    pub states: Vec<f32>,
    /// `∂L/∂keys`, `[B, T, D]`.
    pub keys: Vec<f32>,
    /// `∂L/∂last`, `[B, M]`.
    pub last: Vec<f32>,
    /// `∂L/∂init`, `[B, H]`.
    pub init: Vec<f32>,
}

impl Memory {
    fn state(&self, b: usize, j: usize) -> &[f32] {
        let at = (b * self.time + j) * self.width;
        &self.states[at..at + self.width]
    }

    fn key(&self, b: usize, j: usize) -> &[f32] {
        let at = (b * self.time + j) * self.key_width;
        &self.keys[at..at + self.key_width]
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    y.iter_mut().zip(x).for_each(|(y, x)| *y += alpha * x);
}

/// In place softmax over the first `len` scores of `e`; the rest are set to 0.
fn masked_softmax(e: &mut [f32], len: usize) {
    let max = e[..len].iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let mut z = 0.0f32;
    for v in &mut e[..len] {
        *v = (*v - max).exp();
        z += *v;
    }
    e[..len].iter_mut().for_each(|v| *v /= z);
    e[len..].fill(0.0);
}

/// Luong "general" weights: `a [R, T]` with `e_j = h_r · keys_j`.
pub fn luong_weights(mem: &Memory, src_of: &[usize], h: &[f32]) -> Vec<f32> {
    let (t, d) = (mem.time, mem.key_width);
    let mut a = vec![0.0; src_of.len() * t];
    for (r, &b) in src_of.iter().enumerate() {
        let (hr, ar) = (&h[r * d..(r + 1) * d], &mut a[r * t..(r + 1) * t]);
        for (j, e) in ar.iter_mut().enumerate().take(mem.lens[b]) {
            *e = dot(hr, mem.key(b, j));
        }
        masked_softmax(ar, mem.lens[b]);
    }
    a
}

/// Bahdanau weights from the projected query `q [R, D]` and `v [D]`: returns `a [R, T]` and
/// `u = tanh(keys_j + q_r)`, `[R, T, D]` (zero at padded positions), with `e_j = v · u_j`.
pub fn bahdanau_weights(mem: &Memory, src_of: &[usize], q: &[f32], v: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let (t, d) = (mem.time, mem.key_width);
    let k = kernels(KernelChoice::Best);
    let mut a = vec![0.0; src_of.len() * t];
    let mut u = vec![0.0; src_of.len() * t * d];
    for (r, &b) in src_of.iter().enumerate() {
        let (qr, len) = (&q[r * d..(r + 1) * d], mem.lens[b]);
        let ur = &mut u[r * t * d..(r * t + len) * d];
        for (j, uj) in ur.chunks_exact_mut(d).enumerate() {
            for ((o, k), q) in uj.iter_mut().zip(mem.key(b, j)).zip(qr) {
                *o = k + q;
            }
        }
        k.tanh(ur);
        for (j, uj) in ur.chunks_exact(d).enumerate() {
            a[r * t + j] = dot(v, uj);
        }
        masked_softmax(&mut a[r * t..(r + 1) * t], mem.lens[b]);
    }
    (a, u)
}

/// Context vectors `c [R, M] = Σ_j a_j · s_j`.
pub fn context(mem: &Memory, src_of: &[usize], a: &[f32]) -> Vec<f32> {
    let (t, m) = (mem.time, mem.width);
    let mut c = vec![0.0; src_of.len() * m];
    for (r, &b) in src_of.iter().enumerate() {
        let cr = &mut c[r * m..(r + 1) * m];
        for j in 0..mem.lens[b] {
            axpy(a[r * t + j], mem.state(b, j), cr);
        }
    }
    c
}

/// Backward of [`context`] and the softmax: adds `∂L/∂s_j = a_j·dc` into `d_states [B, T, M]`
/// and returns the score gradients `de [R, T]` (`de_j = a_j·(da_j − Σ_k a_k·da_k)` with
/// `da_j = dc · s_j`).
pub fn context_backward(mem: &Memory, src_of: &[usize], a: &[f32], dc: &[f32], d_states: &mut [f32]) -> Vec<f32> {
    let (t, m) = (mem.time, mem.width);
    let mut de = vec![0.0; src_of.len() * t];
    for (r, &b) in src_of.iter().enumerate() {
        let dcr = &dc[r * m..(r + 1) * m];
        let (ar, der) = (&a[r * t..(r + 1) * t], &mut de[r * t..(r + 1) * t]);
        let mut mean = 0.0f32;
        for j in 0..mem.lens[b] {
            let da = dot(dcr, mem.state(b, j));
            der[j] = da;
            mean += ar[j] * da;
            let at = (b * t + j) * m;
            axpy(ar[j], dcr, &mut d_states[at..at + m]);
        }
        for j in 0..mem.lens[b] {
            der[j] = ar[j] * (der[j] - mean);
        }
    }
    de
}

/// Backward of [`luong_weights`]: adds `Σ_j de_j·keys_j` into `dh [R, D]` and `de_j·h_r`
/// into `d_keys [B, T, D]`.
pub fn luong_backward(mem: &Memory, src_of: &[usize], h: &[f32], de: &[f32], dh: &mut [f32], d_keys: &mut [f32]) {
    let (t, d) = (mem.time, mem.key_width);
    for (r, &b) in src_of.iter().enumerate() {
        let hr = &h[r * d..(r + 1) * d];
        for j in 0..mem.lens[b] {
            let e = de[r * t + j];
            axpy(e, mem.key(b, j), &mut dh[r * d..(r + 1) * d]);
            let at = (b * t + j) * d;
            axpy(e, hr, &mut d_keys[at..at + d]);
        }
    }
}

/// Backward of [`bahdanau_weights`]: adds `Σ de_j·u_j` into `dv [D]` and the pre-`tanh`
/// gradients into `d_keys [B, T, D]`; returns `dq [R, D]`.
pub fn bahdanau_backward(
    mem: &Memory,
    src_of: &[usize],
    u: &[f32],
    v: &[f32],
    de: &[f32],
    dv: &mut [f32],
    d_keys: &mut [f32],
) -> Vec<f32> {
    let (t, d) = (mem.time, mem.key_width);
    let mut dq = vec![0.0; src_of.len() * d];
    for (r, &b) in src_of.iter().enumerate() {
        for j in 0..mem.lens[b] {
            let e = de[r * t + j];
            let uj = &u[(r * t + j) * d..(r * t + j + 1) * d];
            axpy(e, uj, dv);
            let at = (b * t + j) * d;
            let (dk, dqr) = (&mut d_keys[at..at + d], &mut dq[r * d..(r + 1) * d]);
            for i in 0..d {
                let g = e * v[i] * (1.0 - uj[i] * uj[i]);
                dk[i] += g;
                dqr[i] += g;
            }
        }
    }
    dq
}
