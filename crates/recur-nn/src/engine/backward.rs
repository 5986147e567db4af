//! Backward pass through time.

use recur_kernels::{reference, Accum, Float, Kernels, MatMut, MatRef};

use super::{mul, mul_in_place, steps, Dims, DirTape, DirWeights, TapeInner};
use crate::config::CellKind;
use crate::error::{check_len, NnError, Result};
use crate::packed::Packing;
use crate::params::{LayerIndex, ParamBuffer};
use crate::rnn::{BackwardOptions, Gradients, PackedStep, Rnn};

pub(crate) fn backward<T: Float>(
    m: &Rnn<T>,
    tape: &TapeInner<T>,
    d_output: &[T],
    d_hn: Option<&[T]>,
    d_cn: Option<&[T]>,
    opts: BackwardOptions,
) -> Result<Gradients<T>> {
    let cfg = m.config();
    let pk = &tape.packing;
    let (b, d_n, h_out, h) = (pk.batch, cfg.directions(), cfg.h_out(), cfg.hidden_size);
    let lstm = cfg.cell == CellKind::Lstm;
    let ld_n = cfg.num_layers * d_n;
    check_len("d_output", d_output.len(), vec![b, pk.time, d_n * h_out])?;
    if let Some(g) = d_hn {
        check_len("d_hn", g.len(), vec![ld_n, b, h_out])?;
    }
    match (d_cn, lstm) {
        (Some(g), true) => check_len("d_cn", g.len(), vec![ld_n, b, h])?,
        (Some(_), false) => return Err(NnError::Invalid("d_cn is only accepted by LSTM models".into())),
        _ => {}
    }
    if opts.truncate == Some(0) {
        return Err(NnError::Invalid("truncate must be at least 1 step".into()));
    }
    let mut grads = m.params().zeros_like();
    let mut dh0 = vec![T::zero(); ld_n * b * h_out];
    let mut dc0 = if lstm {
        vec![T::zero(); ld_n * b * h]
    } else {
        Vec::new()
    };
    let mut dy = pk.pack_padded(d_output, tape.layout, d_n * h_out);
    for l in (0..cfg.num_layers).rev() {
        let lt = &tape.layers[l];
        let dims = Dims::new(cfg, l);
        if !lt.out_mask.is_empty() {
            mul_in_place(&mut dy, &lt.out_mask);
        }
        let mut dx = vec![T::zero(); pk.total() * dims.input];
        for d in 0..d_n {
            let ld = l * d_n + d;
            let mut dh = vec![T::zero(); b * h_out];
            let mut dc = vec![T::zero(); if lstm { b * h } else { 0 }];
            if let Some(g) = d_hn {
                pk.sort_rows(&g[ld * b * h_out..(ld + 1) * b * h_out], h_out, &mut dh);
            }
            if let (Some(g), true) = (d_cn, lstm) {
                pk.sort_rows(&g[ld * b * h..(ld + 1) * b * h], h, &mut dc);
            }
            let run = DirBack {
                k: m.kernels(),
                cell: cfg.cell,
                dims,
                pk,
                w: DirWeights::new(m.params(), &m.index()[ld]),
                idx: &m.index()[ld],
                packed: &m.packed(true)[ld],
                truncate: opts.truncate,
            };
            run.run(d, &lt.dirs[d], &lt.input, &dy, &mut dh, &mut dc, &mut dx, &mut grads);
            pk.unsort_rows(&dh, h_out, &mut dh0[ld * b * h_out..(ld + 1) * b * h_out]);
            if lstm {
                pk.unsort_rows(&dc, h, &mut dc0[ld * b * h..(ld + 1) * b * h]);
            }
        }
        dy = std::mem::take(&mut dx);
    }
    let input = pk.unpack(&dy, tape.layout, cfg.input_size);
    Ok(Gradients {
        params: grads,
        input,
        h0: dh0,
        c0: lstm.then_some(dc0),
    })
}

struct DirBack<'a, T> {
    k: Kernels,
    cell: CellKind,
    dims: Dims,
    pk: &'a Packing,
    w: DirWeights<'a, T>,
    idx: &'a LayerIndex,
    /// `W_hhᵀ` and `W_hrᵀ`, packed.
    packed: &'a PackedStep<T>,
    truncate: Option<usize>,
}

fn grad<T: Float>(g: &mut ParamBuffer<T>, i: usize) -> &mut [T] {
    let r = g.specs()[i].range();
    &mut g.as_mut_slice()[r]
}

impl<T: Float> DirBack<'_, T> {
    /// Runs one direction backward. `dy` is the gradient of the layer output
    /// `[total, D·H_out]`; `dh`/`dc` (sorted order) hold the final-state gradients on entry and
    /// the initial-state gradients on return; the input gradient is added into `dx`.
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        dir: usize,
        tp: &DirTape<T>,
        input: &[T],
        dy: &[T],
        dh: &mut [T],
        dc: &mut [T],
        dx: &mut [T],
        grads: &mut ParamBuffer<T>,
    ) {
        let Dims {
            h: hd,
            h_out,
            g,
            input: in_w,
            dirs,
        } = self.dims;
        let pk = self.pk;
        let total = pk.total();
        let k = self.k;
        let ln = self.w.ln;
        let w_out = dirs * h_out;
        let mut dgi = vec![T::zero(); total * g];
        let mut dgh = vec![T::zero(); total * g];
        let mut dh_direct = vec![T::zero(); pk.batch * h_out];
        let mut d_o = vec![T::zero(); pk.batch * hd];
        let mut dxc = vec![T::zero(); pk.batch * hd];
        let mut dxc2 = vec![T::zero(); pk.batch * hd];
        let mut dht = vec![T::zero(); pk.batch * hd];
        let mut dpeep = vec![T::zero(); if self.w.peep.is_some() { 3 * hd } else { 0 }];
        let mut dln = [(); 6].map(|_| Vec::new());
        if ln.is_some() {
            dln = [g, g, g, g, hd, hd].map(|w| vec![T::zero(); w]);
        }
        // With a projection, `∂L/∂h_t` of every row is kept for one `dW_hr` GEMM after the loop.
        let mut dh_rows = vec![T::zero(); if self.w.w_hr.is_some() { total * h_out } else { 0 }];
        let t_max = pk.t_max();
        for t in steps(t_max, dir).rev() {
            let n = pk.batch_sizes[t];
            let off = pk.offsets[t];
            for j in 0..n {
                let src = &dy[(off + j) * w_out + dir * h_out..(off + j) * w_out + (dir + 1) * h_out];
                dh[j * h_out..(j + 1) * h_out]
                    .iter_mut()
                    .zip(src)
                    .for_each(|(a, &s)| *a += s);
            }
            let (dgi_t, dgh_t) = (&mut dgi[off * g..(off + n) * g], &mut dgh[off * g..(off + n) * g]);
            match self.cell {
                CellKind::RnnTanh | CellKind::RnnRelu => {
                    let ys = &tp.ys[off * h_out..(off + n) * h_out];
                    reference::rnn_bwd(n, hd, ys, &dh[..n * h_out], self.cell == CellKind::RnnRelu, dgi_t);
                    dgh_t.copy_from_slice(dgi_t);
                }
                CellKind::Gru => {
                    let cache = &tp.cache[off * 4 * hd..(off + n) * 4 * hd];
                    let hp = &tp.hprev[off * h_out..(off + n) * h_out];
                    k.gru_bwd(
                        n,
                        hd,
                        cache,
                        hp,
                        &dh[..n * h_out],
                        dgi_t,
                        dgh_t,
                        &mut dh_direct[..n * h_out],
                    );
                }
                CellKind::Lstm => {
                    let a = &tp.cache[off * g..(off + n) * g];
                    let c = &tp.c[off * hd..(off + n) * hd];
                    let dhid: &[T] = match &self.packed.hr {
                        Some(hr_t) => {
                            dh_rows[off * h_out..(off + n) * h_out].copy_from_slice(&dh[..n * h_out]);
                            k.gemm_packed(hr_t, n, &dh[..n * h_out], &mut dht[..n * hd], Accum::Replace);
                            &dht[..n * hd]
                        }
                        None => &dh[..n * hd],
                    };
                    let xc = if ln.is_some() {
                        &tp.cn[off * hd..(off + n) * hd]
                    } else {
                        c
                    };
                    reference::lstm_hidden_bwd(n, hd, a, xc, dhid, &mut d_o[..n * hd], &mut dxc[..n * hd]);
                    let dcx: &[T] = match ln {
                        Some(p) => {
                            let (xh, rs) = (&tp.ln_c.0[off * hd..(off + n) * hd], &tp.ln_c.1[off..off + n]);
                            let [.., dgc, dbc] = &mut dln;
                            reference::layernorm_bwd(
                                n,
                                hd,
                                &dxc[..n * hd],
                                xh,
                                rs,
                                p[4],
                                &mut dxc2[..n * hd],
                                dgc,
                                dbc,
                            );
                            &dxc2[..n * hd]
                        }
                        None => &dxc[..n * hd],
                    };
                    dc[..n * hd].iter_mut().zip(dcx).for_each(|(a, &s)| *a += s);
                    let cp = &tp.cprev[off * hd..(off + n) * hd];
                    let dp = if dpeep.is_empty() { None } else { Some(&mut dpeep[..]) };
                    reference::lstm_cell_bwd(
                        n,
                        hd,
                        a,
                        cp,
                        c,
                        self.w.peep,
                        &d_o[..n * hd],
                        &mut dc[..n * hd],
                        dgi_t,
                        dp,
                    );
                    match ln {
                        Some(p) => {
                            let (xh, rs) = (&tp.ln_hh.0[off * g..(off + n) * g], &tp.ln_hh.1[off..off + n]);
                            let [_, _, dg, db, ..] = &mut dln;
                            reference::layernorm_bwd(n, g, dgi_t, xh, rs, p[2], dgh_t, dg, db);
                        }
                        None => dgh_t.copy_from_slice(dgi_t),
                    }
                }
            }
            // dh_{t−1} = dgh · W_hh (⊙ recurrent mask) (+ the GRU's direct path).
            k.gemm_packed(&self.packed.hh, n, dgh_t, &mut dh[..n * h_out], Accum::Replace);
            if !tp.rec_mask.is_empty() {
                mul_in_place(&mut dh[..n * h_out], &tp.rec_mask[..n * h_out]);
            }
            if self.cell == CellKind::Gru {
                dh[..n * h_out]
                    .iter_mut()
                    .zip(&dh_direct[..n * h_out])
                    .for_each(|(a, &s)| *a += s);
            }
            if let Some(kk) = self.truncate {
                // Cut at the boundary between this step and the one processed before it.
                let cut = if dir == 0 {
                    t > 0 && t % kk == 0
                } else {
                    t + 1 < t_max && (t + 1) % kk == 0
                };
                if cut {
                    let m = if dir == 0 { n } else { pk.batch_sizes[t + 1] };
                    dh[..m * h_out].iter_mut().for_each(|v| *v = T::zero());
                    if !dc.is_empty() {
                        dc[..m * hd].iter_mut().for_each(|v| *v = T::zero());
                    }
                }
            }
        }
        self.finish(tp, input, in_w, &dgi, &dgh, dx, grads, dpeep, dln, &dh_rows);
    }

    /// The parameter gradients that are sums over time, done as one GEMM each.
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        tp: &DirTape<T>,
        input: &[T],
        in_w: usize,
        dgi: &[T],
        dgh: &[T],
        dx: &mut [T],
        grads: &mut ParamBuffer<T>,
        dpeep: Vec<T>,
        dln: [Vec<T>; 6],
        dh_rows: &[T],
    ) {
        let Dims { h_out, g, .. } = self.dims;
        let total = self.pk.total();
        let (k, idx) = (self.k, self.idx);
        let hm = if tp.rec_mask.is_empty() {
            None
        } else {
            let mut hm = tp.hprev.clone();
            for (t, &n) in self.pk.batch_sizes.iter().enumerate() {
                let off = self.pk.offsets[t];
                mul_in_place(&mut hm[off * h_out..(off + n) * h_out], &tp.rec_mask[..n * h_out]);
            }
            Some(hm)
        };
        k.gemm(
            MatRef::new(dgh, total, g).t(),
            MatRef::new(hm.as_deref().unwrap_or(&tp.hprev), total, h_out),
            MatMut::new(grad(grads, idx.w_hh), g, h_out),
            Accum::Add,
        );
        let ln = self.w.ln.is_some();
        if let Some(i) = idx.b_hh {
            reference::sum_rows(total, g, if ln { dgi } else { dgh }, grad(grads, i));
        }
        if let Some(i) = idx.b_ih {
            reference::sum_rows(total, g, dgi, grad(grads, i));
        }
        let mut dgi_raw = Vec::new();
        if let (Some(p), Some(ix)) = (self.w.ln, idx.ln) {
            dgi_raw = vec![T::zero(); total * g];
            let (xh, rs) = &tp.ln_ih;
            let [dg, db, ..] = &dln;
            let (mut dg2, mut db2) = (dg.clone(), db.clone());
            reference::layernorm_bwd(total, g, dgi, xh, rs, p[0], &mut dgi_raw, &mut dg2, &mut db2);
            let vals = [dg2, db2, dln[2].clone(), dln[3].clone(), dln[4].clone(), dln[5].clone()];
            for (i, v) in ix.iter().zip(vals) {
                grad(grads, *i).iter_mut().zip(&v).for_each(|(a, &s)| *a += s);
            }
        }
        let dgi = if ln { &dgi_raw[..] } else { dgi };
        let xm = if tp.in_mask.is_empty() {
            None
        } else {
            Some(mul(input, &tp.in_mask))
        };
        k.gemm(
            MatRef::new(dgi, total, g).t(),
            MatRef::new(xm.as_deref().unwrap_or(input), total, in_w),
            MatMut::new(grad(grads, idx.w_ih), g, in_w),
            Accum::Add,
        );
        let mut dxd = vec![T::zero(); total * in_w];
        k.gemm(
            MatRef::new(dgi, total, g),
            MatRef::new(self.w.w_ih, g, in_w),
            MatMut::new(&mut dxd, total, in_w),
            Accum::Replace,
        );
        if !tp.in_mask.is_empty() {
            mul_in_place(&mut dxd, &tp.in_mask);
        }
        dx.iter_mut().zip(&dxd).for_each(|(a, &s)| *a += s);
        if let Some(i) = idx.peep {
            grad(grads, i).iter_mut().zip(&dpeep).for_each(|(a, &s)| *a += s);
        }
        if let Some(i) = idx.w_hr {
            let hd = self.dims.h;
            k.gemm(
                MatRef::new(dh_rows, total, h_out).t(),
                MatRef::new(&tp.htilde, total, hd),
                MatMut::new(grad(grads, i), h_out, hd),
                Accum::Add,
            );
        }
    }
}
