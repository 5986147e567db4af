//! Greedy and beam-search decoding, batched over sources (and over beams).

use super::attention::Memory;
use super::config::BeamConfig;
use super::decoder::{argmax, log_softmax};
use super::Seq2Seq;
use crate::error::Result;

/// A beam-search hypothesis.
#[derive(Clone, Debug)]
struct Hyp {
    tokens: Vec<usize>,
    logp: f64,
    /// Decoder state after the last token, `[S]`.
    h: Vec<f32>,
}

/// A finished hypothesis and its ranking score.
#[derive(Clone, Debug)]
struct Done {
    tokens: Vec<usize>,
    score: f64,
}

impl Seq2Seq {
    /// Greedy decoding of every source: at each step the most likely token (the lowest id on
    /// ties) is fed back, until `eos` or `max_len` tokens. Returns the tokens without `eos`.
    pub fn greedy(&self, srcs: &[&[usize]], max_len: usize) -> Result<Vec<Vec<usize>>> {
        let (mem, _) = self.encode(srcs, None)?;
        let (sw, v) = (self.state_width(), self.cfg.tgt_vocab);
        let mut outs = vec![Vec::new(); srcs.len()];
        let mut active: Vec<usize> = if max_len == 0 {
            Vec::new()
        } else {
            (0..srcs.len()).collect()
        };
        let mut tokens = vec![self.cfg.bos; active.len()];
        let mut state = self.initial_state(&mem);
        while !active.is_empty() {
            let rec = self.step(&mem, &active, tokens, state, Vec::new());
            let after = self.next_state(&rec);
            let (mut next_active, mut next_tokens, mut next_state) = (Vec::new(), Vec::new(), Vec::new());
            for (r, &b) in active.iter().enumerate() {
                let y = argmax(&rec.logits[r * v..(r + 1) * v]);
                if y == self.cfg.eos {
                    continue;
                }
                outs[b].push(y);
                if outs[b].len() < max_len {
                    next_active.push(b);
                    next_tokens.push(y);
                    next_state.extend_from_slice(&after[r * sw..(r + 1) * sw]);
                }
            }
            (active, tokens, state) = (next_active, next_tokens, next_state);
        }
        Ok(outs)
    }

    /// Beam search over every source, all live hypotheses of all sources in one batch per
    /// step. Each step ranks the `2k` best extensions of a source's (at most `k`) live
    /// hypotheses by cumulative log-probability; an extension ending in `eos` among the top `k`
    /// is finished, the best `k` others stay live, and a hypothesis reaching `max_len` tokens
    /// finishes as it is. Finished hypotheses are ranked by `log p / len^α` (`len` counting
    /// `eos`). A source is done when no live hypothesis can still beat its best finished one
    /// (scores only fall as tokens are added); the result is that best finished hypothesis,
    /// without `eos`. With width 1 and `α = 0` this is exactly [`Seq2Seq::greedy`].
    pub fn beam_search(&self, srcs: &[&[usize]], cfg: &BeamConfig) -> Result<Vec<Vec<usize>>> {
        cfg.validate()?;
        let (mem, _) = self.encode(srcs, None)?;
        let init = self.initial_state(&mem);
        let mut live: Vec<Vec<Hyp>> = init
            .chunks_exact(self.state_width())
            .map(|h| {
                vec![Hyp {
                    tokens: Vec::new(),
                    logp: 0.0,
                    h: h.to_vec(),
                }]
            })
            .collect();
        let mut done: Vec<Vec<Done>> = vec![Vec::new(); srcs.len()];
        if cfg.max_len == 0 {
            for (d, l) in done.iter_mut().zip(&mut live) {
                d.push(Done {
                    tokens: Vec::new(),
                    score: 0.0,
                });
                l.clear();
            }
        }
        while live.iter().any(|l| !l.is_empty()) {
            self.beam_step(&mem, cfg, &mut live, &mut done);
        }
        Ok(done
            .into_iter()
            .map(|d| {
                let mut best = 0;
                for (i, x) in d.iter().enumerate() {
                    if x.score > d[best].score {
                        best = i;
                    }
                }
                d.into_iter().nth(best).map(|x| x.tokens).unwrap_or_default()
            })
            .collect())
    }

    fn beam_step(&self, mem: &Memory, cfg: &BeamConfig, live: &mut [Vec<Hyp>], done: &mut [Vec<Done>]) {
        let (sw, v, k) = (self.state_width(), self.cfg.tgt_vocab, cfg.width);
        let mut src_of = Vec::new();
        let mut tokens = Vec::new();
        let mut state = Vec::new();
        for (b, hyps) in live.iter().enumerate() {
            for hyp in hyps {
                src_of.push(b);
                tokens.push(hyp.tokens.last().copied().unwrap_or(self.cfg.bos));
                state.extend_from_slice(&hyp.h);
            }
        }
        let rec = self.step(mem, &src_of, tokens, state, Vec::new());
        let after = self.next_state(&rec);
        let norm = |logp: f64, len: usize| logp / (len.max(1) as f64).powf(cfg.length_penalty);
        let mut row = 0;
        for (b, hyps) in live.iter_mut().enumerate() {
            // (cumulative log p, hypothesis, token, row)
            let mut cand: Vec<(f64, usize, usize, usize)> = Vec::new();
            for (i, hyp) in hyps.iter().enumerate() {
                let lp = log_softmax(&rec.logits[row * v..(row + 1) * v]);
                let mut order: Vec<usize> = (0..v).collect();
                order.sort_by(|&x, &y| lp[y].total_cmp(&lp[x]).then(x.cmp(&y)));
                cand.extend(order.into_iter().take(2 * k).map(|y| (hyp.logp + lp[y], i, y, row)));
                row += 1;
            }
            cand.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)).then(x.2.cmp(&y.2)));
            let mut next = Vec::new();
            for (rank, &(logp, i, y, r)) in cand.iter().enumerate().take(2 * k) {
                if y == self.cfg.eos {
                    if rank < k {
                        let tokens = hyps[i].tokens.clone();
                        let score = norm(logp, tokens.len() + 1);
                        done[b].push(Done { tokens, score });
                    }
                } else if next.len() < k {
                    let mut tokens = hyps[i].tokens.clone();
                    tokens.push(y);
                    let hyp = Hyp {
                        tokens,
                        logp,
                        h: after[r * sw..(r + 1) * sw].to_vec(),
                    };
                    if hyp.tokens.len() >= cfg.max_len {
                        let score = norm(hyp.logp, hyp.tokens.len());
                        done[b].push(Done {
                            tokens: hyp.tokens,
                            score,
                        });
                    } else {
                        next.push(hyp);
                    }
                }
            }
            // A live hypothesis can only lose log-probability, and its length is at most
            // `max_len`, so `log p / max_len^α` bounds every score it can still reach.
            let best_live = next
                .iter()
                .map(|hyp| hyp.logp / (cfg.max_len as f64).powf(cfg.length_penalty))
                .fold(f64::NEG_INFINITY, f64::max);
            let best_done = done[b].iter().map(|d| d.score).fold(f64::NEG_INFINITY, f64::max);
            *hyps = if best_done >= best_live { Vec::new() } else { next };
        }
    }
}
