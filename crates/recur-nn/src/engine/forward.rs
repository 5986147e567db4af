//! Forward pass.

use recur_kernels::{reference, Accum, Float, Kernels};

use super::{linear, mul, mul_in_place, steps, Dims, DirTape, DirWeights, LayerTape, TapeInner};
use crate::config::CellKind;
use crate::dropout::DropoutMasks;
use crate::packed::Packing;
use crate::rnn::{PackedStep, Rnn, RnnOutput, SeqBatch, State};

/// Runs the whole stack. With `train`, every intermediate needed by the backward pass is
/// kept in a tape; otherwise per-step scratch is reused and only outputs are kept. Without
/// `keep_output` the last layer's per-step outputs are not assembled (`output` is empty).
pub(crate) fn forward<T: Float>(
    m: &Rnn<T>,
    x: &SeqBatch<'_, T>,
    pk: &Packing,
    st: &State<'_, T>,
    masks: Option<&DropoutMasks<T>>,
    train: bool,
    keep_output: bool,
) -> (RnnOutput<T>, Option<TapeInner<T>>) {
    let cfg = m.config();
    let (b, d_n) = (x.batch, cfg.directions());
    let (h_out, h) = (cfg.h_out(), cfg.hidden_size);
    let lstm = cfg.cell == CellKind::Lstm;
    let mut h_n = vec![T::zero(); cfg.num_layers * d_n * b * h_out];
    let mut c_n = if lstm {
        vec![T::zero(); cfg.num_layers * d_n * b * h]
    } else {
        Vec::new()
    };
    let mut input = pk.pack(x);
    let mut layers = Vec::new();
    let total = pk.total();
    let mut layer_out = Vec::new();
    for l in 0..cfg.num_layers {
        let dims = Dims::new(cfg, l);
        let last = l + 1 == cfg.num_layers;
        let assemble = !last || keep_output || train;
        layer_out = if assemble {
            vec![T::zero(); total * d_n * h_out]
        } else {
            Vec::new()
        };
        let mut jobs: Vec<DirJob<'_, T>> = (0..d_n)
            .map(|d| DirJob::new(m, pk, st, masks, l, d, dims, train))
            .collect();
        let x_in = &input;
        match (m.helper(), jobs.as_mut_slice()) {
            (Some(helper), [fwd, bwd]) => {
                helper.join(|| fwd.run(x_in), || bwd.run(x_in));
            }
            (_, jobs) => jobs.iter_mut().for_each(|j| j.run(x_in)),
        }
        let mut dirs = Vec::with_capacity(d_n);
        for (d, job) in jobs.into_iter().enumerate() {
            let ld = l * d_n + d;
            let DirJob { hs, cs, mut tape, .. } = job;
            // The final states were left in hs / cs (sorted order).
            pk.unsort_rows(&hs, h_out, &mut h_n[ld * b * h_out..(ld + 1) * b * h_out]);
            if lstm {
                pk.unsort_rows(&cs, h, &mut c_n[ld * b * h..(ld + 1) * b * h]);
            }
            let w_out = d_n * h_out;
            if assemble {
                for (r, y) in tape.ys.chunks_exact(h_out).enumerate() {
                    layer_out[r * w_out + d * h_out..r * w_out + (d + 1) * h_out].copy_from_slice(y);
                }
            }
            if !train {
                tape = DirTape::default();
            }
            dirs.push(tape);
        }
        let mut out_mask = Vec::new();
        if let Some(ms) = masks.filter(|_| l + 1 < cfg.num_layers) {
            if !ms.between[l].is_empty() {
                out_mask = pk.pack_padded(&ms.between[l], crate::rnn::Layout::BatchFirst, d_n * h_out);
            }
        }
        // The last layer's output stays in `layer_out`; a lower layer's output becomes the
        // next input (moved, or masked into a new buffer).
        let next = if l + 1 == cfg.num_layers {
            Vec::new()
        } else if out_mask.is_empty() {
            std::mem::take(&mut layer_out)
        } else {
            mul(&layer_out, &out_mask)
        };
        let used = std::mem::replace(&mut input, next);
        if train {
            layers.push(LayerTape {
                input: used,
                dirs,
                out_mask,
            });
        }
    }
    let output = if keep_output || train {
        pk.unpack(&layer_out, x.layout, d_n * h_out)
    } else {
        Vec::new()
    };
    let out = RnnOutput {
        output,
        h_n,
        c_n: if lstm { Some(c_n) } else { None },
    };
    let tape = train.then(|| TapeInner {
        packing: pk.clone(),
        layout: x.layout,
        layers,
    });
    (out, tape)
}

/// Batches of up to this many sequences run the input projection on the pre-packed `W_ih`
/// with the GEMV-style kernel ([`Kernels::gemm_packed`]: no packing per call, which dominates a
/// short batch-1 sequence, and within about 10% of the general GEMM at 1,000 rows); larger
/// batches go through the general GEMM. The choice depends only on the batch size, so
/// inference and training forward passes agree bit for bit and the allocation count of a pass
/// does not depend on its length.
const PACKED_INPUT_BATCH: usize = 1;

/// One direction of one layer with its own state buffers and tape, ready to run on any thread.
struct DirJob<'a, T> {
    run: DirRun<'a, T>,
    dir: usize,
    /// Initial states on entry, final states after [`DirJob::run`] (sorted order).
    hs: Vec<T>,
    cs: Vec<T>,
    tape: DirTape<T>,
}

impl<'a, T: Float> DirJob<'a, T> {
    #[allow(clippy::too_many_arguments)]
    fn new(
        m: &'a Rnn<T>,
        pk: &'a Packing,
        st: &State<'_, T>,
        masks: Option<&DropoutMasks<T>>,
        l: usize,
        d: usize,
        dims: Dims,
        train: bool,
    ) -> Self {
        let cfg = m.config();
        let (b, h_out, h) = (pk.batch, cfg.h_out(), cfg.hidden_size);
        let ld = l * cfg.directions() + d;
        let mut hs = vec![T::zero(); b * h_out];
        if let Some(h0) = st.h0 {
            pk.sort_rows(&h0[ld * b * h_out..(ld + 1) * b * h_out], h_out, &mut hs);
        }
        let mut cs = vec![T::zero(); b * h];
        if let (Some(c0), CellKind::Lstm) = (st.c0, cfg.cell) {
            pk.sort_rows(&c0[ld * b * h..(ld + 1) * b * h], h, &mut cs);
        }
        let mut tape = DirTape::default();
        if let Some(ms) = masks {
            if !ms.input[ld].is_empty() {
                tape.in_mask = pk.per_row(&ms.input[ld], dims.input);
            }
            if !ms.recurrent[ld].is_empty() {
                tape.rec_mask = vec![T::zero(); b * h_out];
                pk.sort_rows(&ms.recurrent[ld], h_out, &mut tape.rec_mask);
            }
        }
        let run = DirRun {
            k: m.kernels(),
            cell: cfg.cell,
            dims,
            pk,
            w: DirWeights::new(m.params(), &m.index()[ld]),
            packed: &m.packed(false)[ld],
            train,
            eps: T::of(cfg.layer_norm_eps),
        };
        DirJob {
            run,
            dir: d,
            hs,
            cs,
            tape,
        }
    }

    /// Runs the time loop over `input` (the layer's input, before input dropout).
    fn run(&mut self, input: &[T]) {
        let xd = (!self.tape.in_mask.is_empty()).then(|| mul(input, &self.tape.in_mask));
        let x = xd.as_deref().unwrap_or(input);
        self.run.run(self.dir, x, &mut self.hs, &mut self.cs, &mut self.tape);
    }
}

/// One direction of one layer.
struct DirRun<'a, T> {
    k: Kernels,
    cell: CellKind,
    dims: Dims,
    pk: &'a Packing,
    w: DirWeights<'a, T>,
    packed: &'a PackedStep<T>,
    train: bool,
    eps: T,
}

impl<T: Float> DirRun<'_, T> {
    /// The recurrent projection `gh[n, G·H] = h[n, H_out] · W_hhᵀ (+ bias)`, with the
    /// reduced-precision `W_hh` in inference passes when the model has one.
    fn recurrent(&self, hin: &[T], n: usize, bias: Option<&[T]>, gh: &mut [T]) {
        let g = self.dims.g;
        let accum = if bias.is_some() { Accum::Add } else { Accum::Replace };
        reference::broadcast_rows(n, bias, &mut gh[..n * g]);
        match self.packed.hh_q.as_ref().filter(|_| !self.train) {
            Some(q) => self.k.gemm_quant(q, n, hin, &mut gh[..n * g], accum),
            None => self.k.gemm_packed(&self.packed.hh, n, hin, &mut gh[..n * g], accum),
        }
    }

    /// The hoisted input projection `gi[total, G·H] = x[total, in] · W_ihᵀ (+ bias)`, with the
    /// reduced-precision `W_ih` in inference passes when the model has one.
    fn input_projection(&self, x: &[T], total: usize, bias: Option<&[T]>, gi: &mut [T]) {
        let Dims { g, input, .. } = self.dims;
        match self.packed.ih_q.as_ref().filter(|_| !self.train) {
            Some(q) => {
                reference::broadcast_rows(total, bias, &mut gi[..total * g]);
                let accum = if bias.is_some() { Accum::Add } else { Accum::Replace };
                self.k.gemm_quant(q, total, x, &mut gi[..total * g], accum);
            }
            None => match self.packed.ih.as_ref().filter(|_| self.pk.batch <= PACKED_INPUT_BATCH) {
                Some(p) => {
                    reference::broadcast_rows(total, bias, &mut gi[..total * g]);
                    let accum = if bias.is_some() { Accum::Add } else { Accum::Replace };
                    self.k.gemm_packed(p, total, x, &mut gi[..total * g], accum);
                }
                None => linear(self.k, x, total, input, self.w.w_ih, g, bias, gi),
            },
        }
    }

    /// Runs the time loop. `h` / `c` hold the initial states (sorted order) on entry and the
    /// final states on return. Fills `tape.ys` always and the rest of `tape` when training.
    fn run(&mut self, dir: usize, x: &[T], hs: &mut [T], cs: &mut [T], tape: &mut DirTape<T>) {
        let Dims { h: hd, h_out, g, .. } = self.dims;
        let pk = self.pk;
        let (total, b) = (pk.total(), pk.batch);
        let lstm = self.cell == CellKind::Lstm;
        let ln = self.w.ln;
        // Workspace, planned before the loop. Per-row caches span all rows when training and
        // one step's rows otherwise.
        let cap = if self.train { total } else { b };
        let row0 = |t: usize| if self.train { pk.offsets[t] } else { 0 };
        let mut gi = vec![T::zero(); total * g];
        if let Some(p) = ln {
            self.input_projection(x, total, None, &mut gi);
            let mut y = vec![T::zero(); total * g];
            let (mut xh, mut rs) = (vec![T::zero(); total * g], vec![T::zero(); total]);
            reference::layernorm_fwd(total, g, &gi, p[0], p[1], self.eps, &mut y, &mut xh, &mut rs);
            if let Some(bias) = self.w.b_ih {
                y.chunks_exact_mut(g)
                    .for_each(|row| row.iter_mut().zip(bias).for_each(|(v, &bb)| *v += bb));
            }
            gi = y;
            if self.train {
                tape.ln_ih = (xh, rs);
            }
        } else {
            self.input_projection(x, total, self.w.b_ih, &mut gi);
        }
        let mut hm = vec![T::zero(); b * h_out];
        let mut gh = vec![T::zero(); b * g];
        let mut gh_ln = if ln.is_some() {
            vec![T::zero(); b * g]
        } else {
            Vec::new()
        };
        let cache_w = match self.cell {
            CellKind::Gru | CellKind::Lstm => 4 * hd,
            _ => 0,
        };
        tape.ys = vec![T::zero(); total * h_out];
        tape.cache = vec![T::zero(); cap * cache_w];
        if self.train {
            tape.hprev = vec![T::zero(); total * h_out];
        }
        if lstm {
            tape.c = vec![T::zero(); cap * hd];
            if self.train {
                tape.cprev = vec![T::zero(); total * hd];
            }
            if self.w.w_hr.is_some() {
                tape.htilde = vec![T::zero(); cap * hd];
            }
            if ln.is_some() {
                tape.cn = vec![T::zero(); cap * hd];
                tape.ln_c = (vec![T::zero(); cap * hd], vec![T::zero(); cap]);
                tape.ln_hh = (vec![T::zero(); cap * g], vec![T::zero(); cap]);
            }
        }
        let rec_mask = std::mem::take(&mut tape.rec_mask);
        for t in steps(pk.t_max(), dir) {
            let n = pk.batch_sizes[t];
            let (off, r) = (pk.offsets[t], row0(t));
            if self.train {
                tape.hprev[off * h_out..(off + n) * h_out].copy_from_slice(&hs[..n * h_out]);
                if lstm {
                    tape.cprev[off * hd..(off + n) * hd].copy_from_slice(&cs[..n * hd]);
                }
            }
            let hin: &[T] = if rec_mask.is_empty() {
                &hs[..n * h_out]
            } else {
                hm[..n * h_out].copy_from_slice(&hs[..n * h_out]);
                mul_in_place(&mut hm[..n * h_out], &rec_mask[..n * h_out]);
                &hm[..n * h_out]
            };
            let gi_t = &gi[off * g..(off + n) * g];
            let ys = &mut tape.ys[off * h_out..(off + n) * h_out];
            match self.cell {
                CellKind::RnnTanh | CellKind::RnnRelu => {
                    self.recurrent(hin, n, self.w.b_hh, &mut gh);
                    self.k
                        .rnn_fwd(n, hd, gi_t, &gh[..n * g], self.cell == CellKind::RnnRelu, ys);
                }
                CellKind::Gru => {
                    self.recurrent(hin, n, self.w.b_hh, &mut gh);
                    let cache = &mut tape.cache[r * cache_w..(r + n) * cache_w];
                    self.k.gru_fwd(n, hd, gi_t, &gh[..n * g], &hs[..n * h_out], ys, cache);
                }
                CellKind::Lstm => {
                    let a = &mut tape.cache[r * g..(r + n) * g];
                    if let Some(p) = ln {
                        self.recurrent(hin, n, None, &mut gh);
                        let (xh, rs) = (&mut tape.ln_hh.0[r * g..(r + n) * g], &mut tape.ln_hh.1[r..r + n]);
                        reference::layernorm_fwd(n, g, &gh, p[2], p[3], self.eps, &mut gh_ln, xh, rs);
                        a.copy_from_slice(&gh_ln[..n * g]);
                        if let Some(bias) = self.w.b_hh {
                            a.chunks_exact_mut(g)
                                .for_each(|row| row.iter_mut().zip(bias).for_each(|(v, &bb)| *v += bb));
                        }
                    } else {
                        self.recurrent(hin, n, self.w.b_hh, a);
                    }
                    a.iter_mut().zip(gi_t).for_each(|(v, &x)| *v += x);
                    let c_out = &mut tape.c[r * hd..(r + n) * hd];
                    let hid: &mut [T] = match self.w.w_hr {
                        Some(_) => &mut tape.htilde[r * hd..(r + n) * hd],
                        None => &mut *ys,
                    };
                    if ln.is_none() && self.w.peep.is_none() {
                        self.k.lstm_fwd(n, hd, a, &cs[..n * hd], c_out, hid);
                    } else {
                        reference::lstm_cell_fwd(n, hd, a, &cs[..n * hd], self.w.peep, c_out);
                        match ln {
                            Some(p) => {
                                let cn = &mut tape.cn[r * hd..(r + n) * hd];
                                let (xh, rs) = (&mut tape.ln_c.0[r * hd..(r + n) * hd], &mut tape.ln_c.1[r..r + n]);
                                reference::layernorm_fwd(n, hd, c_out, p[4], p[5], self.eps, cn, xh, rs);
                                reference::lstm_hidden_fwd(n, hd, a, cn, hid);
                            }
                            None => reference::lstm_hidden_fwd(n, hd, a, c_out, hid),
                        }
                    }
                    cs[..n * hd].copy_from_slice(c_out);
                    if let Some(w_hr) = self.w.w_hr {
                        let ht = &tape.htilde[r * hd..(r + n) * hd];
                        let p = self.packed.hr.as_ref().expect("projection weights are packed");
                        debug_assert_eq!(p.rows() * p.cols(), w_hr.len());
                        self.k.gemm_packed(p, n, ht, ys, Accum::Replace);
                    }
                }
            }
            hs[..n * h_out].copy_from_slice(&tape.ys[off * h_out..(off + n) * h_out]);
        }
        tape.rec_mask = rec_mask;
    }
}
