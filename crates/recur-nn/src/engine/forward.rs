//! Forward pass.

use recur_kernels::{reference, Accum, Float, Kernels};

use super::scratch::{grow, DirScratch, Scratch};
use super::{linear, mul, mul_in_place, steps, Dims, DirWeights, LayerTape, TapeInner};
use crate::config::CellKind;
use crate::dropout::DropoutMasks;
use crate::packed::Packing;
use crate::rnn::{PackedStep, Rnn, RnnOutput, SeqBatch, State};

/// Runs the whole stack. With `train`, every intermediate needed by the backward pass is
/// kept in a tape; otherwise per-step scratch is reused and only outputs are kept, and the
/// pass's buffers come from (and go back to) the model's scratch pool, so that a warm model
/// allocates only what it returns. Without `keep_output` the last layer's per-step outputs are
/// not assembled (`output` is empty).
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
    let total = pk.total();
    let w_out = d_n * h_out;
    // Training keeps its buffers in the tape; inference borrows a reusable set.
    let mut ws = if train { Scratch::default() } else { m.scratch().take() };
    ws.dirs.resize_with(d_n, DirScratch::default);
    // `input` holds `in_w` valid columns per packed row, `layer_out` the layer's output.
    let (mut input, mut in_w) = (std::mem::take(&mut ws.input), x.features);
    grow(&mut input, total * in_w);
    pk.pack_into(x, &mut input[..total * in_w]);
    let mut layer_out = std::mem::take(&mut ws.output);
    let mut layers = Vec::new();
    for l in 0..cfg.num_layers {
        let dims = Dims::new(cfg, l);
        let last = l + 1 == cfg.num_layers;
        let assemble = !last || keep_output || train;
        if train {
            layer_out = Vec::new();
        }
        if assemble {
            grow(&mut layer_out, total * w_out);
        }
        let mut jobs: Vec<DirJob<'_, T>> = (0..d_n)
            .map(|d| {
                let sc = std::mem::take(&mut ws.dirs[d]);
                DirJob::new(m, pk, st, masks, l, d, dims, train, sc)
            })
            .collect();
        let x_in = &input[..total * in_w];
        match (m.helper(), jobs.as_mut_slice()) {
            (Some(helper), [fwd, bwd]) => {
                helper.join(|| fwd.run(x_in), || bwd.run(x_in));
            }
            (_, jobs) => jobs.iter_mut().for_each(|j| j.run(x_in)),
        }
        let mut dirs = Vec::with_capacity(if train { d_n } else { 0 });
        for (d, job) in jobs.into_iter().enumerate() {
            let ld = l * d_n + d;
            let mut sc = job.sc;
            // The final states were left in hs / cs (sorted order).
            pk.unsort_rows(
                &sc.hs[..b * h_out],
                h_out,
                &mut h_n[ld * b * h_out..(ld + 1) * b * h_out],
            );
            if lstm {
                pk.unsort_rows(&sc.cs[..b * h], h, &mut c_n[ld * b * h..(ld + 1) * b * h]);
            }
            if assemble {
                for (r, y) in sc.tape.ys[..total * h_out].chunks_exact(h_out).enumerate() {
                    layer_out[r * w_out + d * h_out..r * w_out + (d + 1) * h_out].copy_from_slice(y);
                }
            }
            if train {
                dirs.push(std::mem::take(&mut sc.tape));
            } else {
                ws.dirs[d] = sc;
            }
        }
        let mut out_mask = Vec::new();
        if let Some(ms) = masks.filter(|_| l + 1 < cfg.num_layers) {
            if !ms.between[l].is_empty() {
                out_mask = pk.pack_padded(&ms.between[l], crate::rnn::Layout::BatchFirst, w_out);
            }
        }
        // A lower layer's output becomes the next input. Training moves it (or masks it into
        // a new buffer) and keeps the used input in the tape; inference swaps the two buffers.
        // The last layer's output stays in `layer_out`.
        if train {
            let next = if last {
                Vec::new()
            } else if out_mask.is_empty() {
                std::mem::take(&mut layer_out)
            } else {
                mul(&layer_out[..total * w_out], &out_mask)
            };
            let used = std::mem::replace(&mut input, next);
            layers.push(LayerTape {
                input: used,
                dirs,
                out_mask,
            });
        } else if !last {
            std::mem::swap(&mut input, &mut layer_out);
        }
        in_w = w_out;
    }
    let output = if keep_output || train {
        pk.unpack(&layer_out[..total * w_out], x.layout, w_out)
    } else {
        Vec::new()
    };
    if !train {
        ws.input = input;
        ws.output = layer_out;
        m.scratch().give(ws);
    }
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
    /// Its buffers: `hs` / `cs` hold the initial states on entry and the final states after
    /// [`DirJob::run`] (sorted order); `tape.ys` the outputs.
    sc: DirScratch<T>,
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
        mut sc: DirScratch<T>,
    ) -> Self {
        let cfg = m.config();
        let (b, h_out, h) = (pk.batch, cfg.h_out(), cfg.hidden_size);
        let ld = l * cfg.directions() + d;
        grow(&mut sc.hs, b * h_out);
        let hs = &mut sc.hs[..b * h_out];
        match st.h0 {
            Some(h0) => pk.sort_rows(&h0[ld * b * h_out..(ld + 1) * b * h_out], h_out, hs),
            None => hs.fill(T::zero()),
        }
        if cfg.cell == CellKind::Lstm {
            grow(&mut sc.cs, b * h);
            let cs = &mut sc.cs[..b * h];
            match st.c0 {
                Some(c0) => pk.sort_rows(&c0[ld * b * h..(ld + 1) * b * h], h, cs),
                None => cs.fill(T::zero()),
            }
        }
        let tape = &mut sc.tape;
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
        DirJob { run, dir: d, sc }
    }

    /// Runs the time loop over `input` (the layer's input, before input dropout).
    fn run(&mut self, input: &[T]) {
        let xd = (!self.sc.tape.in_mask.is_empty()).then(|| mul(input, &self.sc.tape.in_mask));
        let x = xd.as_deref().unwrap_or(input);
        self.run.run(self.dir, x, &mut self.sc);
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
    fn run(&mut self, dir: usize, x: &[T], sc: &mut DirScratch<T>) {
        let DirScratch {
            hs,
            cs,
            gi,
            hm,
            gh,
            gh_ln,
            tape,
        } = sc;
        let Dims { h: hd, h_out, g, .. } = self.dims;
        let pk = self.pk;
        let (total, b) = (pk.total(), pk.batch);
        let lstm = self.cell == CellKind::Lstm;
        let ln = self.w.ln;
        // Workspace, planned before the loop (grown, not cleared: every element of a buffer's
        // used prefix is written before it is read). Per-row caches span all rows when
        // training and one step's rows otherwise.
        let cap = if self.train { total } else { b };
        let row0 = |t: usize| if self.train { pk.offsets[t] } else { 0 };
        grow(gi, total * g);
        if let Some(p) = ln {
            self.input_projection(x, total, None, gi);
            let mut y = vec![T::zero(); total * g];
            let (mut xh, mut rs) = (vec![T::zero(); total * g], vec![T::zero(); total]);
            reference::layernorm_fwd(total, g, gi, p[0], p[1], self.eps, &mut y, &mut xh, &mut rs);
            if let Some(bias) = self.w.b_ih {
                y.chunks_exact_mut(g)
                    .for_each(|row| row.iter_mut().zip(bias).for_each(|(v, &bb)| *v += bb));
            }
            gi[..total * g].copy_from_slice(&y);
            if self.train {
                tape.ln_ih = (xh, rs);
            }
        } else {
            self.input_projection(x, total, self.w.b_ih, gi);
        }
        grow(hm, b * h_out);
        grow(gh, b * g);
        if ln.is_some() {
            grow(gh_ln, b * g);
        }
        let cache_w = match self.cell {
            CellKind::Gru | CellKind::Lstm => 4 * hd,
            _ => 0,
        };
        // A training pass starts from an empty tape, so these are exact and zeroed there.
        grow(&mut tape.ys, total * h_out);
        grow(&mut tape.cache, cap * cache_w);
        if self.train {
            grow(&mut tape.hprev, total * h_out);
        }
        if lstm {
            grow(&mut tape.c, cap * hd);
            if self.train {
                grow(&mut tape.cprev, total * hd);
            }
            if self.w.w_hr.is_some() {
                grow(&mut tape.htilde, cap * hd);
            }
            if ln.is_some() {
                grow(&mut tape.cn, cap * hd);
                grow(&mut tape.ln_c.0, cap * hd);
                grow(&mut tape.ln_c.1, cap);
                grow(&mut tape.ln_hh.0, cap * g);
                grow(&mut tape.ln_hh.1, cap);
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
                    self.recurrent(hin, n, self.w.b_hh, gh);
                    self.k
                        .rnn_fwd(n, hd, gi_t, &gh[..n * g], self.cell == CellKind::RnnRelu, ys);
                }
                CellKind::Gru => {
                    self.recurrent(hin, n, self.w.b_hh, gh);
                    let cache = &mut tape.cache[r * cache_w..(r + n) * cache_w];
                    self.k.gru_fwd(n, hd, gi_t, &gh[..n * g], &hs[..n * h_out], ys, cache);
                }
                CellKind::Lstm => {
                    let a = &mut tape.cache[r * g..(r + n) * g];
                    if let Some(p) = ln {
                        self.recurrent(hin, n, None, gh);
                        let (xh, rs) = (&mut tape.ln_hh.0[r * g..(r + n) * g], &mut tape.ln_hh.1[r..r + n]);
                        reference::layernorm_fwd(n, g, gh, p[2], p[3], self.eps, gh_ln, xh, rs);
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
