//! Held-out evaluation: static bits per character ([`CharLm::evaluate`]) and Krause et al.'s
//! dynamic evaluation ([`CharLm::evaluate_dynamic`]), a separate, labelled protocol.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use recur_nn::{SeqBatch, State};

use super::{nll_escape, CharLm, Chunk, UNK};
use crate::clip::clip_grad_norm;
use crate::error::{Result, TrainError};
use crate::params::Module;

/// Held-out evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Eval {
    /// Mean cross-entropy per predicted character, in nats.
    pub nats: f64,
    /// Bits per character (`nats / ln 2`).
    pub bpc: f64,
    /// Characters predicted (all but the first character of the text).
    pub chars: usize,
}

impl Eval {
    /// The mean of per-character losses (nats), e.g. a range of [`DynamicEval::losses`].
    pub fn from_losses(losses: &[f64]) -> Eval {
        let nats = losses.iter().sum::<f64>() / losses.len().max(1) as f64;
        Eval {
            nats,
            bpc: nats / std::f64::consts::LN_2,
            chars: losses.len(),
        }
    }
}

/// Settings of [`CharLm::evaluate_dynamic`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DynamicEvalConfig {
    /// Characters per segment (one update per segment).
    pub segment: usize,
    /// SGD learning rate on each segment's mean cross-entropy (0 = no adaptation).
    pub lr: f64,
    /// Per-update decay toward the trained weights, in `[0, 1)`.
    pub decay: f64,
    /// Clip each segment's global gradient norm to this (0 = no clipping).
    pub clip: f32,
    /// The update rule.
    pub rule: DynamicRule,
}

/// How [`CharLm::evaluate_dynamic`] updates the weights after scoring a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DynamicRule {
    /// `θ ← θ − lr·g + decay·(θ₀ − θ)`.
    Sgd,
    /// Krause et al.'s RMS rule with a global prior: the step is divided per weight by the
    /// root mean square of that weight's gradient on training text ([`GradientMs`], floored at
    /// 0.1 × its mean over all weights), and the decay toward `θ₀` is scaled per weight by that
    /// RMS over its mean (capped at 1): `θ ← θ − lr·g/rms + min(1, decay·rms/mean_rms)·(θ₀ − θ)`.
    Rms,
}

/// Mean squared gradient of every weight over segments of some (training) text, for
/// [`DynamicRule::Rms`]; from [`CharLm::gradient_ms`].
#[derive(Clone, Debug, PartialEq)]
pub struct GradientMs {
    /// Per buffer ([`Module::buffers`] order), per weight.
    pub ms: Vec<Vec<f32>>,
    /// Segments averaged.
    pub segments: usize,
}

impl Default for DynamicEvalConfig {
    fn default() -> Self {
        DynamicEvalConfig {
            segment: 100,
            lr: 0.0,
            decay: 0.0,
            clip: 1.0,
            rule: DynamicRule::Sgd,
        }
    }
}

impl DynamicEvalConfig {
    /// Checks every field; errors name the field as `dynamic_eval.<field>`.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, reason: &str| Err(TrainError::config(format!("dynamic_eval.{field}"), reason));
        if self.segment == 0 {
            return bad("segment", "must be at least 1");
        }
        if !(self.lr.is_finite() && self.lr >= 0.0) {
            return bad("lr", "must be a finite number ≥ 0");
        }
        if !(0.0..1.0).contains(&self.decay) {
            return bad("decay", "must be in [0, 1)");
        }
        if !(self.clip.is_finite() && self.clip >= 0.0) {
            return bad("clip", "must be a finite number ≥ 0");
        }
        Ok(())
    }
}

/// The result of [`CharLm::evaluate_dynamic`].
#[derive(Clone, Debug, PartialEq)]
pub struct DynamicEval {
    /// Over every predicted character.
    pub eval: Eval,
    /// `losses[j]`: nats of predicting `ids[j + 1]`.
    pub losses: Vec<f64>,
    /// Wall time.
    pub seconds: f64,
}

impl CharLm {
    /// Bits per character on `text`: every character but the first is predicted from all the
    /// characters before it, the state carried through the whole text. With `streams > 1` the
    /// predictions are split into that many contiguous pieces run in parallel (each starting
    /// from the zero state, a small handicap for its first few characters); `chunk` is the
    /// number of steps per forward call (memory, not results, depends on it). A character
    /// outside the vocabulary costs `−ln P(UNK)` (with the escape) plus its spelling,
    /// [`CharVocab::unknown_nats`](super::CharVocab::unknown_nats).
    pub fn evaluate(&self, text: &str, streams: usize, chunk: usize) -> Result<Eval> {
        Ok(Eval::from_losses(&self.losses(text, streams, chunk)?))
    }

    /// The per-character losses behind [`CharLm::evaluate`]: `losses[j]` is the nats of
    /// predicting the `j + 1`-th character of `text`, its spelling included when unknown.
    pub fn losses(&self, text: &str, streams: usize, chunk: usize) -> Result<Vec<f64>> {
        let mut losses = self.losses_ids(&self.vocab.encode(text), streams, chunk)?;
        add_spelling(&mut losses, &self.vocab.spelling_nats(text));
        Ok(losses)
    }

    /// [`CharLm::evaluate`] on ids. Ids cannot tell unknown characters apart, so an [`UNK`]
    /// costs `−ln P(UNK)` only: add their spelling with [`add_spelling`] (as
    /// [`CharLm::evaluate`] does) to score text.
    pub fn evaluate_ids(&self, ids: &[usize], streams: usize, chunk: usize) -> Result<Eval> {
        Ok(Eval::from_losses(&self.losses_ids(ids, streams, chunk)?))
    }

    /// The per-character losses behind [`CharLm::evaluate_ids`]: `losses[j]` is the nats of
    /// predicting `ids[j + 1]` (from the characters before it in its stream).
    pub fn losses_ids(&self, ids: &[usize], streams: usize, chunk: usize) -> Result<Vec<f64>> {
        if ids.len() < 2 {
            return Err(TrainError::Invalid(format!(
                "evaluation needs at least 2 characters, got {}",
                ids.len()
            )));
        }
        if streams == 0 || chunk == 0 {
            return Err(TrainError::config("evaluate", "streams and chunk must be at least 1"));
        }
        self.check_ids("ids", ids)?;
        let m = ids.len() - 1; // predictions
        let s_n = streams.min(m);
        let (base, rem) = (m / s_n, m % s_n);
        // Stream s predicts ids[start+1 ..= start+len] from ids[start .. start+len].
        let lens: Vec<usize> = (0..s_n).map(|s| base + usize::from(s < rem)).collect();
        let starts: Vec<usize> = lens
            .iter()
            .scan(0, |acc, &l| {
                let s = *acc;
                *acc += l;
                Some(s)
            })
            .collect();
        let (e, v) = (self.cfg.embed_dim, self.vocab.len());
        let mut state = self.zero_state(s_n);
        let max_len = lens[0];
        let mut losses = vec![0.0f64; m];
        let mut pos = 0;
        let mut inputs = Vec::new();
        let mut chunk_lens = vec![0usize; s_n];
        while pos < max_len {
            let time = chunk.min(max_len - pos);
            inputs.clear();
            inputs.resize(s_n * time, UNK);
            for s in 0..s_n {
                let l = lens[s].saturating_sub(pos).min(time);
                for t in 0..l {
                    inputs[s * time + t] = ids[starts[s] + pos + t];
                }
                // A finished stream runs one padding step whose result is ignored.
                chunk_lens[s] = l.max(1);
            }
            let x = self.embed.forward(&inputs);
            let batch = SeqBatch::batch_first(&x, s_n, time, e).with_lengths(&chunk_lens);
            let out = self.rnn.forward(
                &batch,
                &State {
                    h0: Some(&state.h),
                    c0: state.c.as_deref(),
                },
            )?;
            let logits = self.head.forward(&out.output, s_n * time);
            for s in 0..s_n {
                let l = lens[s].saturating_sub(pos).min(time);
                for t in 0..l {
                    let row = &logits[(s * time + t) * v..(s * time + t + 1) * v];
                    losses[starts[s] + pos + t] = nll_escape(row, ids[starts[s] + pos + t + 1], self.vocab.novel());
                }
            }
            state.h = out.h_n;
            state.c = out.c_n;
            pos += time;
        }
        Ok(losses)
    }

    /// Mean squared gradient of every weight over the segments of `ids` (one stream, the state
    /// carried, `segment` characters per segment, gradients of each segment's mean
    /// cross-entropy, no dropout): the global prior of [`DynamicRule::Rms`]. Use training text.
    pub fn gradient_ms(&self, ids: &[usize], segment: usize) -> Result<GradientMs> {
        if ids.len() < 2 || segment == 0 {
            return Err(TrainError::Invalid(format!(
                "gradient_ms needs at least 2 characters and a segment of at least 1, got {} and {segment}",
                ids.len()
            )));
        }
        self.check_ids("ids", ids)?;
        let mut ms: Vec<Vec<f32>> = self
            .buffers()
            .iter()
            .map(|(_, b)| vec![0.0; b.as_slice().len()])
            .collect();
        let mut state = self.zero_state(1);
        let (m, mut pos, mut segments) = (ids.len() - 1, 0, 0usize);
        while pos < m {
            let time = segment.min(m - pos);
            let chunk = Chunk {
                inputs: &ids[pos..pos + time],
                targets: &ids[pos + 1..pos + 1 + time],
                batch: 1,
                time,
            };
            let out = self.forward_backward(&chunk, &state, None)?;
            for (acc, g) in ms.iter_mut().zip(&out.grads) {
                acc.iter_mut().zip(g.as_slice()).for_each(|(a, g)| *a += g * g);
            }
            segments += 1;
            state = out.state;
            pos += time;
        }
        let k = 1.0 / segments as f32;
        ms.iter_mut().flatten().for_each(|v| *v *= k);
        Ok(GradientMs { ms, segments })
    }

    /// Dynamic evaluation (Krause et al. 2018, "Dynamic Evaluation of Neural Sequence Models"):
    /// a copy of the model reads `ids` as one stream, in segments of `cfg.segment` characters,
    /// the state carried throughout. Each segment is scored first, then the copy takes one
    /// step on that segment's mean cross-entropy (gradient clipped to `cfg.clip`) by
    /// `cfg.rule` ([`DynamicRule`]; SGD: `θ ← θ − lr·g + decay·(θ₀ − θ)`, with `θ₀` the
    /// trained weights). Every character is thus
    /// predicted from the characters before it and weights adapted only on earlier segments;
    /// the score is not comparable with static evaluation ([`CharLm::evaluate`]), which never
    /// changes the weights. With `lr` 0 it equals `evaluate_ids(ids, 1, cfg.segment)`. `self`
    /// is not changed.
    ///
    /// [`DynamicRule::Rms`] needs `prior` (from [`CharLm::gradient_ms`] on training text).
    pub fn evaluate_dynamic(
        &self,
        ids: &[usize],
        cfg: &DynamicEvalConfig,
        prior: Option<&GradientMs>,
    ) -> Result<DynamicEval> {
        cfg.validate()?;
        // Per-weight step scale and decay rate of the RMS rule.
        let rms = match (cfg.rule, prior) {
            (DynamicRule::Sgd, _) => None,
            (DynamicRule::Rms, None) => {
                return Err(TrainError::config(
                    "dynamic_eval.rule",
                    "rms needs the mean squared gradients of training text (gradient_ms)",
                ))
            }
            (DynamicRule::Rms, Some(p)) => {
                let sizes: Vec<usize> = self.buffers().iter().map(|(_, b)| b.as_slice().len()).collect();
                if p.ms.iter().map(Vec::len).collect::<Vec<_>>() != sizes {
                    return Err(TrainError::Invalid(
                        "gradient_ms does not match this model's weights".into(),
                    ));
                }
                let n: usize = sizes.iter().sum();
                let mean = p.ms.iter().flatten().map(|&v| (v as f64).sqrt()).sum::<f64>() / n.max(1) as f64;
                let floor = (0.1 * mean).max(1e-12) as f32;
                let mean = mean.max(1e-12) as f32;
                let scale: Vec<Vec<f32>> =
                    p.ms.iter()
                        .map(|b| b.iter().map(|&v| 1.0 / v.sqrt().max(floor)).collect())
                        .collect();
                let decay: Vec<Vec<f32>> =
                    p.ms.iter()
                        .map(|b| {
                            b.iter()
                                .map(|&v| (cfg.decay as f32 * v.sqrt() / mean).min(1.0))
                                .collect()
                        })
                        .collect();
                Some((scale, decay))
            }
        };
        if ids.len() < 2 {
            return Err(TrainError::Invalid(format!(
                "evaluation needs at least 2 characters, got {}",
                ids.len()
            )));
        }
        self.check_ids("ids", ids)?;
        let started = Instant::now();
        let m = ids.len() - 1;
        let (v, novel) = (self.vocab.len(), self.vocab.novel());
        let mut model = self.clone();
        let theta0: Vec<Vec<f32>> = if cfg.decay > 0.0 {
            self.buffers().iter().map(|(_, b)| b.as_slice().to_vec()).collect()
        } else {
            Vec::new()
        };
        let (lr, decay) = (cfg.lr as f32, cfg.decay as f32);
        let mut state = self.zero_state(1);
        let mut losses = Vec::with_capacity(m);
        let mut pos = 0;
        while pos < m {
            let time = cfg.segment.min(m - pos);
            let chunk = Chunk {
                inputs: &ids[pos..pos + time],
                targets: &ids[pos + 1..pos + 1 + time],
                batch: 1,
                time,
            };
            let (mut out, logits) = model.forward_backward_logits(&chunk, &state, None)?;
            // Scored before the update on this segment.
            losses.extend(
                logits
                    .chunks_exact(v)
                    .zip(chunk.targets)
                    .map(|(row, &t)| nll_escape(row, t, novel)),
            );
            if lr > 0.0 {
                let norm = {
                    let mut gs: Vec<&mut [f32]> = out.grads.iter_mut().map(|g| g.as_mut_slice()).collect();
                    if cfg.clip > 0.0 {
                        clip_grad_norm(&mut gs, cfg.clip)
                    } else {
                        crate::clip::global_norm(gs.iter().map(|g| &**g))
                    }
                };
                if norm.is_finite() {
                    for (i, p) in model.buffers_mut().into_iter().enumerate() {
                        let g = out.grads[i].as_slice();
                        let p = p.as_mut_slice();
                        match &rms {
                            None => {
                                p.iter_mut().zip(g).for_each(|(p, g)| *p -= lr * g);
                                if decay > 0.0 {
                                    p.iter_mut().zip(&theta0[i]).for_each(|(p, p0)| *p += decay * (p0 - *p));
                                }
                            }
                            Some((scale, rate)) => {
                                p.iter_mut()
                                    .zip(g)
                                    .zip(&scale[i])
                                    .for_each(|((p, g), s)| *p -= lr * g * s);
                                if decay > 0.0 {
                                    p.iter_mut()
                                        .zip(&theta0[i])
                                        .zip(&rate[i])
                                        .for_each(|((p, p0), r)| *p += r * (p0 - *p));
                                }
                            }
                        }
                    }
                }
            }
            state = out.state;
            pos += time;
        }
        Ok(DynamicEval {
            eval: Eval::from_losses(&losses),
            losses,
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}

/// What [`mixture_losses`] returns: the ensemble's per-character losses and each member's.
#[derive(Clone, Debug, PartialEq)]
pub struct MixtureLosses {
    /// `mixture[j]`: nats of the ensemble predicting `ids[j + 1]`.
    pub mixture: Vec<f64>,
    /// `members[k][j]`: nats of member `k` predicting `ids[j + 1]` ([`CharLm::losses_ids`]).
    pub members: Vec<Vec<f64>>,
}

/// Per-character losses of the equal-weight mixture of `models` (an ensemble): the mixture's
/// probability of each character is the mean of the members' probabilities, so
/// `loss[j] = −ln(mean_k exp(−loss_k[j]))`, each member evaluated as [`CharLm::losses_ids`]
/// does (once; its own losses are returned too). By convexity no character's mixture loss
/// exceeds the members' mean loss. The members must share one vocabulary (the same training
/// text gives the same one).
pub fn mixture_losses(models: &[&CharLm], ids: &[usize], streams: usize, chunk: usize) -> Result<MixtureLosses> {
    let Some(first) = models.first() else {
        return Err(TrainError::config("ensemble", "needs at least one model"));
    };
    if let Some(i) = models.iter().position(|m| m.vocab() != first.vocab()) {
        return Err(TrainError::config(
            "ensemble",
            format!("model {i}'s vocabulary differs from model 0's; members must be trained on the same text"),
        ));
    }
    let members: Vec<Vec<f64>> = models
        .iter()
        .map(|m| m.losses_ids(ids, streams, chunk))
        .collect::<Result<_>>()?;
    let ln_k = (models.len() as f64).ln();
    let mixture = (0..members[0].len())
        .map(|j| {
            let best = members.iter().map(|l| l[j]).fold(f64::INFINITY, f64::min);
            let sum: f64 = members.iter().map(|l| (best - l[j]).exp()).sum();
            best - sum.ln() + ln_k
        })
        .collect();
    Ok(MixtureLosses { mixture, members })
}

/// Adds the spelling cost of unknown characters to per-character losses:
/// `losses[j] += spelling[j + 1]`, where `losses[j]` predicts character `j + 1` and
/// `spelling` is [`CharVocab::spelling_nats`](super::CharVocab::spelling_nats) of the same
/// text (the first character is never predicted).
pub fn add_spelling(losses: &mut [f64], spelling: &[f64]) {
    for (l, s) in losses.iter_mut().zip(spelling.iter().skip(1)) {
        *l += s;
    }
}
