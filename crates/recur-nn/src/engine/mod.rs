//! The time-loop driver: forward and backward passes of stacked, optionally bidirectional
//! layers over the packed layout of [`Packing`].
//!
//! Memory is planned per layer and direction before the time loop; inside it each step does one
//! recurrent GEMM over the active prefix of rows and one fused epilogue, and allocates nothing.

mod backward;
mod forward;
mod scratch;

pub(crate) use backward::backward;
pub(crate) use forward::forward;
pub(crate) use scratch::ScratchPool;

use recur_kernels::{reference, Accum, Float, Kernels, MatMut, MatRef};

use crate::config::RnnConfig;
use crate::packed::Packing;
use crate::params::{LayerIndex, ParamBuffer};
use crate::rnn::Layout;

/// What one direction of one layer recorded for the backward pass. Row-indexed buffers are
/// `[total, width]` in packed order.
#[derive(Debug, Default)]
pub(crate) struct DirTape<T> {
    /// This direction's outputs `h_t`, `[total, H_out]`.
    pub ys: Vec<T>,
    /// Unmasked `h_{t−1}` of each row, `[total, H_out]`.
    pub hprev: Vec<T>,
    /// GRU: `r|z|n|gh_n`; LSTM: activated gates `i|f|g|o`. `[total, 4H]`.
    pub cache: Vec<T>,
    /// LSTM `c_{t−1}` and `c_t`, `[total, H]`.
    pub cprev: Vec<T>,
    pub c: Vec<T>,
    /// LSTM with projection: `o ⊙ tanh(·)` before `W_hr`, `[total, H]`.
    pub htilde: Vec<T>,
    /// Layer-norm LSTM caches: normalized values and reciprocal std of the input projection,
    /// the recurrent projection and the cell; plus the normalized cell output `cn`.
    pub ln_ih: (Vec<T>, Vec<T>),
    pub ln_hh: (Vec<T>, Vec<T>),
    pub ln_c: (Vec<T>, Vec<T>),
    pub cn: Vec<T>,
    /// Variational masks: per packed row for the input (`[total, in]`), per sorted sequence
    /// for the recurrent state (`[batch, H_out]`). Empty = none.
    pub in_mask: Vec<T>,
    pub rec_mask: Vec<T>,
}

#[derive(Debug)]
pub(crate) struct LayerTape<T> {
    /// The layer's input `[total, in]` (after between-layer dropout).
    pub input: Vec<T>,
    pub dirs: Vec<DirTape<T>>,
    /// Between-layer dropout mask applied to this layer's output, `[total, D·H_out]`.
    pub out_mask: Vec<T>,
}

#[derive(Debug)]
pub(crate) struct TapeInner<T> {
    pub packing: Packing,
    pub layout: Layout,
    pub layers: Vec<LayerTape<T>>,
}

/// Borrowed weights of one layer-direction.
pub(crate) struct DirWeights<'a, T> {
    pub w_ih: &'a [T],
    pub b_ih: Option<&'a [T]>,
    pub b_hh: Option<&'a [T]>,
    pub w_hr: Option<&'a [T]>,
    pub peep: Option<&'a [T]>,
    /// `ih γ, ih β, hh γ, hh β, cell γ, cell β`.
    pub ln: Option<[&'a [T]; 6]>,
}

impl<'a, T: Float> DirWeights<'a, T> {
    pub fn new(p: &'a ParamBuffer<T>, li: &LayerIndex) -> Self {
        let at = |i: usize| p.at(&p.specs()[i]);
        DirWeights {
            w_ih: at(li.w_ih),
            b_ih: li.b_ih.map(at),
            b_hh: li.b_hh.map(at),
            w_hr: li.w_hr.map(at),
            peep: li.peep.map(at),
            ln: li.ln.map(|ix| ix.map(at)),
        }
    }
}

/// Static sizes of one layer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Dims {
    pub h: usize,
    pub h_out: usize,
    pub g: usize,
    pub input: usize,
    pub dirs: usize,
}

impl Dims {
    pub fn new(cfg: &RnnConfig, layer: usize) -> Self {
        Dims {
            h: cfg.hidden_size,
            h_out: cfg.h_out(),
            g: cfg.cell.gates() * cfg.hidden_size,
            input: cfg.layer_input(layer),
            dirs: cfg.directions(),
        }
    }
}

/// The time steps of one direction in processing order.
pub(crate) fn steps(t_max: usize, direction: usize) -> impl DoubleEndedIterator<Item = usize> {
    let fwd = direction == 0;
    (0..t_max).map(move |i| if fwd { i } else { t_max - 1 - i })
}

/// `y[n, out] (=|+=) x[n, in] · w[out, in]ᵀ (+ bias)`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn linear<T: Float>(
    k: Kernels,
    x: &[T],
    n: usize,
    input: usize,
    w: &[T],
    out: usize,
    bias: Option<&[T]>,
    y: &mut [T],
) {
    let accum = match bias {
        Some(b) => {
            reference::broadcast_rows(n, Some(b), y);
            Accum::Add
        }
        None => Accum::Replace,
    };
    k.gemm(
        MatRef::new(x, n, input),
        MatRef::new(w, out, input).t(),
        MatMut::new(&mut y[..n * out], n, out),
        accum,
    );
}

/// `dst[i] *= mask[i]` over the common length.
pub(crate) fn mul_in_place<T: Float>(dst: &mut [T], mask: &[T]) {
    for (d, &m) in dst.iter_mut().zip(mask) {
        *d *= m;
    }
}

/// `a ⊙ b` into a new vector.
pub(crate) fn mul<T: Float>(a: &[T], b: &[T]) -> Vec<T> {
    a.iter().zip(b).map(|(&x, &y)| x * y).collect()
}
