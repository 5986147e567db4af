//! The decoder: one step over a set of rows (shared by training and decoding), the training
//! pass over a batch with teacher forcing or scheduled sampling, and its backward pass.

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use recur_nn::ParamBuffer;

use super::attention::{self, Memory, MemoryGrads};
use super::{Attention, Example, SampleFrom, Seq2Seq, ATTN, DECODER, DEC_EMBED};
use crate::error::Result;
use crate::params::Module;

/// One decoder step over `R` rows, with what its backward pass needs.
#[derive(Clone, Debug, Default)]
pub(super) struct StepRec {
    /// Input token of each row, `[R]`.
    pub tokens: Vec<usize>,
    /// GRU input `[R, I]`: the embedding, then the context (none, bahdanau).
    pub x: Vec<f32>,
    /// State before the step, `[R, H]`.
    pub h_prev: Vec<f32>,
    gru: super::GruStep,
    /// State after the step, `[R, H]`.
    pub h: Vec<f32>,
    /// Attention weights `[R, T]` (empty without attention).
    a: Vec<f32>,
    /// Bahdanau `tanh(keys + q)`, `[R, T, A]`.
    u: Vec<f32>,
    /// Luong `[c_t; h_t]`, `[R, M + H]`.
    ccat: Vec<f32>,
    /// Luong `tanh(W_c·[c_t; h_t])`, `[R, H]` (empty otherwise: the output layer reads `h`).
    o: Vec<f32>,
    /// Dropout mask on the output layer's input, `[R, H]` (empty = none).
    mask: Vec<f32>,
    /// The output layer's input after dropout (empty without a mask).
    dropped: Vec<f32>,
    /// Output scores `[R, V]`.
    pub logits: Vec<f32>,
}

/// What [`Seq2Seq::run_decoder`] returns.
struct DecoderRun {
    /// The steps (training only).
    recs: Vec<StepRec>,
    /// Summed negative log-likelihood of the targets.
    nll: f64,
    /// Target tokens.
    count: usize,
    /// Per step `softmax − onehot`, `[R, V]`, not yet divided by `count` (training only).
    dlogits: Vec<Vec<f32>>,
}

/// The loss and gradients of one batch.
#[derive(Clone, Debug)]
pub struct BatchOutput {
    /// Mean negative log-likelihood per target token (including `eos`), summed in `f64`.
    pub loss: f64,
    /// Target tokens in the batch (including one `eos` per sequence).
    pub tokens: usize,
    /// Gradients of `loss`, one buffer per [`Module::buffers`] entry, same layouts.
    pub grads: Vec<ParamBuffer<f32>>,
}

/// `[a_r; b_r]` for every row.
fn concat_rows(a: &[f32], wa: usize, b: &[f32], wb: usize, n: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(n * (wa + wb));
    for r in 0..n {
        out.extend_from_slice(&a[r * wa..(r + 1) * wa]);
        out.extend_from_slice(&b[r * wb..(r + 1) * wb]);
    }
    out
}

/// Splits `[R, wa + wb]` rows into `[R, wa]` and `[R, wb]`.
fn split_rows(x: &[f32], wa: usize, wb: usize) -> (Vec<f32>, Vec<f32>) {
    let n = x.len() / (wa + wb).max(1);
    let (mut a, mut b) = (Vec::with_capacity(n * wa), Vec::with_capacity(n * wb));
    for row in x.chunks_exact(wa + wb) {
        a.extend_from_slice(&row[..wa]);
        b.extend_from_slice(&row[wa..]);
    }
    (a, b)
}

/// The `t`-th training target of `ex`: its tokens, then `eos`, then nothing.
fn target(ex: &Example, t: usize, eos: usize) -> Option<usize> {
    match t.cmp(&ex.tgt.len()) {
        std::cmp::Ordering::Less => Some(ex.tgt[t]),
        std::cmp::Ordering::Equal => Some(eos),
        std::cmp::Ordering::Greater => None,
    }
}

/// Index of the largest element (the first one on ties).
pub(super) fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// `log softmax(row)` in `f64`.
pub(super) fn log_softmax(row: &[f32]) -> Vec<f64> {
    let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
    let lse = row.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln() + max;
    row.iter().map(|&v| v as f64 - lse).collect()
}

fn sample_softmax(row: &[f32], rng: &mut impl Rng) -> usize {
    let lp = log_softmax(row);
    let mut u: f64 = rng.random();
    for (i, l) in lp.iter().enumerate() {
        u -= l.exp();
        if u < 0.0 {
            return i;
        }
    }
    argmax(row)
}

impl Seq2Seq {
    /// One decoder step: row `r` reads source `src_of[r]` of `mem`, is fed `tokens[r]` and
    /// starts from `state [R, S]` (see [`Seq2Seq::state_width`]); `mask [R, H]` (or empty) is
    /// the dropout mask of the output layer's input.
    pub(super) fn step(
        &self,
        mem: &Memory,
        src_of: &[usize],
        tokens: Vec<usize>,
        state: Vec<f32>,
        mask: Vec<f32>,
    ) -> StepRec {
        let (n, e, m, h) = (src_of.len(), self.cfg.tgt_embed, mem.width, self.cfg.dec_hidden);
        let (h_prev, feed) = match self.feed_width() {
            0 => (state, Vec::new()),
            f => split_rows(&state, h, f),
        };
        let emb = self.dec_embed.forward(&tokens);
        let mut rec = StepRec::default();
        rec.x = match &self.attn {
            Attention::None => {
                let last: Vec<f32> = src_of
                    .iter()
                    .flat_map(|&b| &mem.last[b * m..(b + 1) * m])
                    .copied()
                    .collect();
                concat_rows(&emb, e, &last, m, n)
            }
            Attention::Bahdanau { query, v, .. } => {
                let q = query.forward(&h_prev, n);
                (rec.a, rec.u) = attention::bahdanau_weights(mem, src_of, &q, v.weight());
                concat_rows(&emb, e, &attention::context(mem, src_of, &rec.a), m, n)
            }
            Attention::Luong { .. } if feed.is_empty() => emb,
            Attention::Luong { .. } => concat_rows(&emb, e, &feed, h, n),
        };
        (rec.h, rec.gru) = self.decoder.forward(n, &rec.x, &h_prev);
        if let Attention::Luong { combine, .. } = &self.attn {
            rec.a = attention::luong_weights(mem, src_of, &rec.h);
            rec.ccat = concat_rows(&attention::context(mem, src_of, &rec.a), m, &rec.h, h, n);
            rec.o = combine.forward(&rec.ccat, n);
            self.kernels.tanh(&mut rec.o);
        }
        let feat = if rec.o.is_empty() { &rec.h } else { &rec.o };
        if mask.is_empty() {
            rec.logits = self.out.forward(feat, n);
        } else {
            rec.dropped = feat.iter().zip(&mask).map(|(x, m)| x * m).collect();
            rec.logits = self.out.forward(&rec.dropped, n);
        }
        rec.mask = mask;
        rec.tokens = tokens;
        rec.h_prev = h_prev;
        rec
    }

    /// A dropout mask `[n, H]` for the output layer's input (empty when dropout is off).
    fn dropout_mask(&self, n: usize, rng: &mut impl Rng) -> Vec<f32> {
        recur_nn::inverted_dropout_mask(n * self.cfg.dec_hidden, self.cfg.dropout, rng)
    }

    /// The state after `rec`, `[R, S]`: `h`, then the attentional vector with input feeding.
    pub(super) fn next_state(&self, rec: &StepRec) -> Vec<f32> {
        match self.feed_width() {
            0 => rec.h.clone(),
            f => concat_rows(&rec.h, self.cfg.dec_hidden, &rec.o, f, rec.tokens.len()),
        }
    }

    /// Runs the decoder over `batch` with ground-truth inputs fed with probability
    /// `teacher_prob` (per token). With `keep` (training) it applies dropout and keeps the
    /// steps and the logit gradients.
    fn run_decoder(
        &self,
        mem: &Memory,
        batch: &[Example],
        teacher_prob: f64,
        sample_from: SampleFrom,
        rng: &mut impl Rng,
        keep: bool,
    ) -> DecoderRun {
        let (n, v, eos) = (batch.len(), self.cfg.tgt_vocab, self.cfg.eos);
        let src_of: Vec<usize> = (0..n).collect();
        let steps = batch.iter().map(|ex| ex.tgt.len()).max().unwrap_or(0) + 1;
        let (mut recs, mut dlogits) = (Vec::new(), Vec::new());
        let (mut nll, mut count) = (0.0f64, 0usize);
        let mut tokens = vec![self.cfg.bos; n];
        let mut state = self.initial_state(mem);
        for t in 0..steps {
            let mask = if keep { self.dropout_mask(n, rng) } else { Vec::new() };
            let rec = self.step(mem, &src_of, tokens, state, mask);
            let mut grad = if keep { vec![0.0f32; n * v] } else { Vec::new() };
            let mut next = Vec::with_capacity(n);
            for (r, ex) in batch.iter().enumerate() {
                let row = &rec.logits[r * v..(r + 1) * v];
                if let Some(y) = target(ex, t, eos) {
                    let lp = log_softmax(row);
                    nll -= lp[y];
                    count += 1;
                    if keep {
                        for (g, l) in grad[r * v..(r + 1) * v].iter_mut().zip(&lp) {
                            *g = l.exp() as f32;
                        }
                        grad[r * v + y] -= 1.0;
                    }
                }
                next.push(match ex.tgt.get(t) {
                    None => eos,
                    Some(&y) if teacher_prob >= 1.0 || rng.random::<f64>() < teacher_prob => y,
                    Some(_) => match sample_from {
                        SampleFrom::Argmax => argmax(row),
                        SampleFrom::Softmax => sample_softmax(row, rng),
                    },
                });
            }
            tokens = next;
            state = self.next_state(&rec);
            if keep {
                recs.push(rec);
                dlogits.push(grad);
            }
        }
        DecoderRun {
            recs,
            nll,
            count,
            dlogits,
        }
    }

    /// Mean NLL per target token of `batch` under teacher forcing, summed in `f64` (for
    /// validation and gradient checks), and the number of target tokens.
    pub fn loss(&self, batch: &[Example]) -> Result<(f64, usize)> {
        self.check_targets(batch)?;
        let srcs: Vec<&[usize]> = batch.iter().map(|ex| ex.src.as_slice()).collect();
        let (mem, _) = self.encode(&srcs, None)?;
        // Teacher forcing never draws from the generator.
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let run = self.run_decoder(&mem, batch, 1.0, SampleFrom::Argmax, &mut rng, false);
        Ok((run.nll / run.count as f64, run.count))
    }

    /// The loss of `batch` and its gradient with respect to every parameter. Each target
    /// input after the first is the ground truth with probability `teacher_prob`, else the
    /// model's own prediction from the previous step (`sample_from`), drawn from `rng`.
    pub fn forward_backward(
        &self,
        batch: &[Example],
        teacher_prob: f64,
        sample_from: SampleFrom,
        rng: &mut impl Rng,
    ) -> Result<BatchOutput> {
        self.check_targets(batch)?;
        let srcs: Vec<&[usize]> = batch.iter().map(|ex| ex.src.as_slice()).collect();
        let (mem, enc) = self.encode(&srcs, Some(rng as &mut dyn RngCore))?;
        let mut run = self.run_decoder(&mem, batch, teacher_prob, sample_from, rng, true);
        let scale = 1.0 / run.count as f32;
        run.dlogits.iter_mut().flatten().for_each(|g| *g *= scale);
        let mut g = self.zero_grads();
        let dm = self.decoder_backward(&mem, &run.recs, &run.dlogits, &mut g);
        let enc = enc.expect("training encoder pass keeps a tape");
        self.encode_backward(&mem, enc, dm, &mut g)?;
        Ok(BatchOutput {
            loss: run.nll / run.count as f64,
            tokens: run.count,
            grads: g,
        })
    }

    /// Backward through the decoder steps; returns the gradients with respect to the memory.
    fn decoder_backward(
        &self,
        mem: &Memory,
        recs: &[StepRec],
        dlogits: &[Vec<f32>],
        g: &mut [ParamBuffer<f32>],
    ) -> MemoryGrads {
        let (e, m, h) = (self.cfg.tgt_embed, mem.width, self.cfg.dec_hidden);
        let n = mem.batch;
        let src_of: Vec<usize> = (0..n).collect();
        let out_g = g.len() - 1;
        let mut d_states = vec![0.0; mem.states.len()];
        let mut d_keys = vec![0.0; mem.keys.len()];
        let mut d_last = vec![0.0; mem.last.len()];
        let mut dh_carry = vec![0.0; n * h];
        // With input feeding: ∂L/∂o_t from the next step's GRU input.
        let mut do_carry = vec![0.0; n * self.feed_width()];
        for (rec, dl) in recs.iter().zip(dlogits).rev() {
            let feat = match (rec.dropped.is_empty(), rec.o.is_empty()) {
                (false, _) => &rec.dropped,
                (true, true) => &rec.h,
                (true, false) => &rec.o,
            };
            let mut dfeat = self.out.backward(feat, dl, n, &mut g[out_g], true).expect("dx");
            if !rec.mask.is_empty() {
                dfeat.iter_mut().zip(&rec.mask).for_each(|(d, m)| *d *= m);
            }
            dfeat.iter_mut().zip(&do_carry).for_each(|(a, b)| *a += *b);
            let mut dh = match &self.attn {
                Attention::Luong { combine, .. } => {
                    let dz: Vec<f32> = dfeat.iter().zip(&rec.o).map(|(d, o)| d * (1.0 - o * o)).collect();
                    let dcat = combine.backward(&rec.ccat, &dz, n, &mut g[ATTN + 1], true).expect("dx");
                    let (dc, mut dh) = split_rows(&dcat, m, h);
                    let de = attention::context_backward(mem, &src_of, &rec.a, &dc, &mut d_states);
                    attention::luong_backward(mem, &src_of, &rec.h, &de, &mut dh, &mut d_keys);
                    dh
                }
                _ => dfeat,
            };
            dh.iter_mut().zip(&dh_carry).for_each(|(a, b)| *a += *b);
            let (dx, dh_prev) = self
                .decoder
                .backward(n, &rec.x, &rec.h_prev, &rec.gru, &dh, &mut g[DECODER]);
            dh_carry = dh_prev;
            let ctx = self.decoder.input - e;
            let (d_emb, dc) = split_rows(&dx, e, ctx);
            self.dec_embed.backward(&rec.tokens, &d_emb, &mut g[DEC_EMBED]);
            match &self.attn {
                Attention::None => d_last.iter_mut().zip(&dc).for_each(|(a, b)| *a += *b),
                Attention::Bahdanau { query, v, .. } => {
                    let de = attention::context_backward(mem, &src_of, &rec.a, &dc, &mut d_states);
                    let dv = g[ATTN + 2].as_mut_slice();
                    let dq = attention::bahdanau_backward(mem, &src_of, &rec.u, v.weight(), &de, dv, &mut d_keys);
                    let dhq = query.backward(&rec.h_prev, &dq, n, &mut g[ATTN], true).expect("dx");
                    dh_carry.iter_mut().zip(&dhq).for_each(|(a, b)| *a += *b);
                }
                Attention::Luong { .. } => do_carry = dc,
            }
        }
        MemoryGrads {
            states: d_states,
            keys: d_keys,
            last: d_last,
            init: dh_carry,
        }
    }
}
