//! A character language model: the one-to-many pattern, generation seeded from a vector.
//!
//! `Embedding → Rnn (LSTM, GRU or Elman; stacked, dropout between layers, optional variational
//! input and recurrent dropout) → dropout → Linear head → softmax` over a character vocabulary built from the training text, with id
//! [`UNK`] for characters it has not seen.
//!
//! * Training ([`CharLmTrainer`]) is truncated BPTT over contiguous streams: the training text
//!   is split into `batch` parallel streams, read in chunks of `bptt` steps; the hidden (and
//!   cell) state is carried from chunk to chunk but the gradient is not (it is detached).
//!   Cross-entropy, clip-by-global-norm, Adam/AdamW with a warmup/decay schedule.
//! * Evaluation ([`CharLm::evaluate`]) reports bits per character on held-out text, carrying
//!   the state through the whole text (optionally split into a few parallel streams). A
//!   character the vocabulary lacks is scored as the escape to [`UNK`] plus its spelling
//!   (see [`CharVocab::novel`]), so an unseen character costs about 20 bits, not 37.
//! * Generation ([`CharLm::generate`], [`Generator`]) starts from a [`Seed`]: an initial state
//!   vector (the "seed vector") and/or priming text. The next-character distribution in any
//!   state is `softmax(head(h_top) / temperature)`, so a seed vector alone already determines
//!   the first character; temperature 0 is greedy argmax.
//!
//! The backward pass is explicit: cross-entropy gradient → head backward → dropout mask →
//! [`Rnn::backward`] → the input gradient scattered into the embedding table.
//!
//! Parameters are named `embed.weight`, `rnn.weight_ih_l0`, …, `head.weight`, `head.bias`
//! ([`Module`]); the non-tensor parts (config and vocabulary) round trip through
//! [`CharLm::to_json`] / [`CharLm::from_json`].

use std::path::Path;

use rand_chacha::ChaCha8Rng;
use recur_nn::{BackwardOptions, CellKind, ParamBuffer, Rnn, RnnConfig, SeqBatch, State};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::checkpoint::{self, Checkpoint};
use crate::error::{Result, TrainError};
use crate::layers::{Embedding, Linear};
use crate::loss::cross_entropy;
use crate::params::Module;

mod eval;
mod generate;
mod resume;
mod train;
mod vocab;

pub use eval::{
    add_spelling, mixture_losses, DynamicEval, DynamicEvalConfig, DynamicRule, Eval, GradientMs, MixtureLosses,
};
pub use generate::{argmax, sample, Generator, Seed};
pub use train::{CharLmTrainConfig, CharLmTrainer, EpochStats, StepInfo};
pub use vocab::{CharVocab, UNK, UNK_CHAR};

/// `kind` of the checkpoints written by [`CharLm::save`].
pub const CHECKPOINT_KIND: &str = "charlm";

/// The architecture (everything but the vocabulary and the weights).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CharLmConfig {
    /// Recurrent cell (`lstm`, `gru`, `rnn_tanh`, `rnn_relu`).
    pub cell: CellKind,
    /// Embedding width (the RNN's input size).
    pub embed_dim: usize,
    /// Hidden units per layer.
    pub hidden_size: usize,
    /// Stacked recurrent layers.
    pub num_layers: usize,
    /// Dropout probability, training only: between stacked layers (PyTorch's `dropout`) and on
    /// the top layer's output before the head.
    pub dropout: f64,
    /// Variational dropout on each layer's input (the embedding for the first), one mask per
    /// stream and chunk, training only.
    pub input_dropout: f64,
    /// Variational dropout on the recurrent state fed to the gates (Gal & Ghahramani), one mask
    /// per stream and chunk, training only.
    pub recurrent_dropout: f64,
}

impl Default for CharLmConfig {
    fn default() -> Self {
        CharLmConfig {
            cell: CellKind::Lstm,
            embed_dim: 64,
            hidden_size: 256,
            num_layers: 1,
            dropout: 0.0,
            input_dropout: 0.0,
            recurrent_dropout: 0.0,
        }
    }
}

impl CharLmConfig {
    /// Checks every field; errors name the field as `charlm.<field>`.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, reason: &str| Err(TrainError::config(format!("charlm.{field}"), reason));
        if self.embed_dim == 0 {
            return bad("embed_dim", "must be at least 1");
        }
        if self.hidden_size == 0 {
            return bad("hidden_size", "must be at least 1");
        }
        if self.num_layers == 0 {
            return bad("num_layers", "must be at least 1");
        }
        for (field, p) in [
            ("dropout", self.dropout),
            ("input_dropout", self.input_dropout),
            ("recurrent_dropout", self.recurrent_dropout),
        ] {
            if !(0.0..1.0).contains(&p) {
                return bad(field, "must be in [0, 1)");
            }
        }
        Ok(())
    }

    /// The recurrent stack's config.
    pub fn rnn_config(&self) -> RnnConfig {
        let mut c = RnnConfig::new(self.cell, self.embed_dim, self.hidden_size);
        c.num_layers = self.num_layers;
        c.dropout = self.dropout;
        c.input_dropout = self.input_dropout;
        c.recurrent_dropout = self.recurrent_dropout;
        c
    }

    /// Whether any dropout is configured.
    pub fn has_dropout(&self) -> bool {
        self.dropout > 0.0 || self.input_dropout > 0.0 || self.recurrent_dropout > 0.0
    }
}

/// The recurrent state of `batch` streams: `h [layers, batch, H]` and, for LSTM,
/// `c [layers, batch, H]` (PyTorch's `h_n`/`c_n` layout).
#[derive(Clone, Debug, PartialEq)]
pub struct LmState {
    /// Streams.
    pub batch: usize,
    /// Hidden state.
    pub h: Vec<f32>,
    /// Cell state (LSTM only).
    pub c: Option<Vec<f32>>,
}

/// One chunk of `batch` streams × `time` steps, batch-first: `inputs[b·time + t]` is the id
/// read at step `t` of stream `b`, `targets[b·time + t]` the id to predict there.
#[derive(Clone, Copy, Debug)]
pub struct Chunk<'a> {
    /// Input ids, `[batch, time]`.
    pub inputs: &'a [usize],
    /// Target ids, `[batch, time]`.
    pub targets: &'a [usize],
    /// Streams.
    pub batch: usize,
    /// Steps.
    pub time: usize,
}

/// The result of [`CharLm::forward_backward`].
#[derive(Clone, Debug)]
pub struct StepOut {
    /// Mean cross-entropy over the chunk, in nats.
    pub loss: f64,
    /// Gradients in [`Module::buffers`] order (`embed`, `rnn`, `head`).
    pub grads: Vec<ParamBuffer<f32>>,
    /// The state after the chunk, to carry (detached) into the next one.
    pub state: LmState,
}

/// A character language model: vocabulary, config, embedding, recurrent stack and head.
#[derive(Clone, Debug)]
pub struct CharLm {
    cfg: CharLmConfig,
    vocab: CharVocab,
    embed: Embedding,
    rnn: Rnn<f32>,
    head: Linear,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Meta {
    config: CharLmConfig,
    vocab: CharVocab,
}

impl CharLm {
    /// A model with PyTorch's default initializations (embedding `N(0, 1)`, RNN and head
    /// uniform), drawn from `rng` in the order embedding, RNN, head.
    pub fn new(cfg: CharLmConfig, vocab: CharVocab, rng: &mut ChaCha8Rng) -> Result<Self> {
        Self::check_parts(&cfg, &vocab)?;
        let v = vocab.len();
        let embed = Embedding::new(v, cfg.embed_dim, rng);
        let rnn = Rnn::new(cfg.rnn_config(), rng)?;
        let head = Linear::new(cfg.hidden_size, v, true, rng);
        Ok(CharLm {
            cfg,
            vocab,
            embed,
            rnn,
            head,
        })
    }

    /// A model with every weight zero (to be filled by [`Module::load_named`]).
    pub fn zeros(cfg: CharLmConfig, vocab: CharVocab) -> Result<Self> {
        Self::check_parts(&cfg, &vocab)?;
        let v = vocab.len();
        Ok(CharLm {
            embed: Embedding::zeros(v, cfg.embed_dim),
            rnn: Rnn::zeros(cfg.rnn_config())?,
            head: Linear::zeros(cfg.hidden_size, v, true),
            cfg,
            vocab,
        })
    }

    fn check_parts(cfg: &CharLmConfig, vocab: &CharVocab) -> Result<()> {
        cfg.validate()?;
        if vocab.is_empty() {
            return Err(TrainError::Invalid("the vocabulary has no characters".into()));
        }
        Ok(())
    }

    /// The config and vocabulary as JSON: `{"config": {...}, "vocab": {"chars": "..."}}`.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string(&Meta {
            config: self.cfg.clone(),
            vocab: self.vocab.clone(),
        })
        .map_err(|e| TrainError::Invalid(format!("charlm config to JSON: {e}")))
    }

    /// A zero-weight model from [`CharLm::to_json`]'s output; load the weights with
    /// [`Module::load_named`].
    pub fn from_json(json: &str) -> Result<Self> {
        let meta: Meta =
            serde_json::from_str(json).map_err(|e| TrainError::Invalid(format!("charlm config JSON: {e}")))?;
        Self::zeros(meta.config, meta.vocab)
    }

    /// An inference checkpoint ([`crate::checkpoint`]) of kind [`CHECKPOINT_KIND`]: `model` is
    /// the config, `preprocessing` is `{"vocab": {"chars": "…"}}` (callers may add fields, e.g.
    /// how the text was normalized), the weights are [`Module::named_tensors`], no optimizer.
    pub fn to_checkpoint(&self, training: Value, metrics: Value) -> Result<Checkpoint> {
        let js = |e: serde_json::Error| TrainError::Invalid(format!("charlm checkpoint JSON: {e}"));
        Ok(Checkpoint {
            kind: CHECKPOINT_KIND.into(),
            model: serde_json::to_value(&self.cfg).map_err(js)?,
            training,
            metrics,
            preprocessing: serde_json::json!({ "vocab": serde_json::to_value(&self.vocab).map_err(js)? }),
            state: Value::Null,
            tensors: self.named_tensors(),
            optimizer: None,
        })
    }

    /// The model of a [`CharLm::to_checkpoint`] checkpoint (kind, config, vocabulary and every
    /// tensor's name and shape are checked).
    pub fn from_checkpoint(ckpt: &Checkpoint) -> Result<Self> {
        if ckpt.kind != CHECKPOINT_KIND {
            return Err(TrainError::Invalid(format!(
                "checkpoint kind is {:?}, expected {CHECKPOINT_KIND:?}",
                ckpt.kind
            )));
        }
        let js = |what: &str, e: serde_json::Error| TrainError::Invalid(format!("charlm checkpoint {what}: {e}"));
        let cfg: CharLmConfig = serde_json::from_value(ckpt.model.clone()).map_err(|e| js("model", e))?;
        let vocab = ckpt
            .preprocessing
            .get("vocab")
            .ok_or_else(|| TrainError::Invalid("charlm checkpoint has no preprocessing.vocab".into()))?;
        let vocab: CharVocab = serde_json::from_value(vocab.clone()).map_err(|e| js("preprocessing.vocab", e))?;
        let mut m = Self::zeros(cfg, vocab)?;
        m.load_named(&ckpt.tensors)?;
        Ok(m)
    }

    /// [`CharLm::to_checkpoint`] written to `dir` with [`checkpoint::save`].
    pub fn save(&self, dir: &Path, training: Value, metrics: Value) -> Result<()> {
        checkpoint::save(dir, &self.to_checkpoint(training, metrics)?)
    }

    /// [`CharLm::from_checkpoint`] of [`checkpoint::load`]`(dir)`.
    pub fn load(dir: &Path) -> Result<Self> {
        Self::from_checkpoint(&checkpoint::load(dir)?)
    }

    /// The config.
    pub fn config(&self) -> &CharLmConfig {
        &self.cfg
    }

    /// The vocabulary.
    pub fn vocab(&self) -> &CharVocab {
        &self.vocab
    }

    /// Sets the vocabulary's escape probability ([`CharVocab::novel`], in `[0, 1)`), e.g. on a
    /// checkpoint saved before the escape existed, from the text it was trained on.
    pub fn set_novel(&mut self, novel: f64) -> Result<()> {
        self.vocab = self.vocab.clone().with_novel(novel)?;
        Ok(())
    }

    /// The recurrent stack.
    pub fn rnn(&self) -> &Rnn<f32> {
        &self.rnn
    }

    /// Length of one stream's state vector (`layers·H`), e.g. of a [`Seed::h0`].
    pub fn state_len(&self) -> usize {
        self.cfg.num_layers * self.cfg.hidden_size
    }

    /// The zero state of `batch` streams.
    pub fn zero_state(&self, batch: usize) -> LmState {
        let n = self.cfg.num_layers * batch * self.cfg.hidden_size;
        LmState {
            batch,
            h: vec![0.0; n],
            c: self.rnn.config().has_cell_state().then(|| vec![0.0; n]),
        }
    }

    fn check_state(&self, s: &LmState, batch: usize) -> Result<()> {
        let n = self.cfg.num_layers * batch * self.cfg.hidden_size;
        let lstm = self.rnn.config().has_cell_state();
        if s.batch != batch || s.h.len() != n || s.c.as_ref().map(Vec::len) != lstm.then_some(n) {
            return Err(TrainError::Invalid(format!(
                "state does not fit {batch} streams of a {}-layer, {}-unit {} (h: {} values, c: {:?})",
                self.cfg.num_layers,
                self.cfg.hidden_size,
                self.cfg.cell.cli_name(),
                s.h.len(),
                s.c.as_ref().map(Vec::len)
            )));
        }
        Ok(())
    }

    fn check_ids(&self, what: &str, ids: &[usize]) -> Result<()> {
        let v = self.vocab.len();
        match ids.iter().position(|&i| i >= v) {
            Some(p) => Err(TrainError::Invalid(format!(
                "{what}[{p}] = {} is outside the vocabulary (0..{v})",
                ids[p]
            ))),
            None => Ok(()),
        }
    }

    fn check_chunk(&self, c: &Chunk<'_>, state: &LmState) -> Result<()> {
        let n = c.batch.checked_mul(c.time).unwrap_or(0);
        if n == 0 || c.inputs.len() != n || c.targets.len() != n {
            return Err(TrainError::Invalid(format!(
                "chunk of {} streams × {} steps needs {n} inputs and targets (≥ 1), got {} and {}",
                c.batch,
                c.time,
                c.inputs.len(),
                c.targets.len()
            )));
        }
        self.check_ids("inputs", c.inputs)?;
        self.check_ids("targets", c.targets)?;
        self.check_state(state, c.batch)
    }

    /// Inverted-dropout mask on the top layer's output, `[n]` values of `0` or `1/(1−p)`
    /// (empty when `dropout` is 0).
    fn output_mask(&self, n: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
        recur_nn::inverted_dropout_mask(n, self.cfg.dropout, rng)
    }

    /// Forward pass of a chunk: logits `[batch·time, V]` and the final state. With `dropout`
    /// (training), masks are drawn from it: the RNN's between-layer masks, then the output mask.
    fn forward_chunk(
        &self,
        c: &Chunk<'_>,
        state: &LmState,
        dropout: Option<&mut ChaCha8Rng>,
    ) -> Result<(Vec<f32>, LmState)> {
        self.check_chunk(c, state)?;
        let x = self.embed.forward(c.inputs);
        let batch = SeqBatch::batch_first(&x, c.batch, c.time, self.cfg.embed_dim);
        let st = State {
            h0: Some(&state.h),
            c0: state.c.as_deref(),
        };
        let n = c.batch * c.time;
        let (y, h_n, c_n) = match dropout.filter(|_| self.cfg.has_dropout()) {
            None => {
                let o = self.rnn.forward(&batch, &st)?;
                (o.output, o.h_n, o.c_n)
            }
            Some(rng) => {
                let masks = self.rnn.sample_masks(c.batch, c.time, rng);
                let (mut o, _) = self.rnn.forward_train(&batch, &st, Some(&masks))?;
                let mask = self.output_mask(o.output.len(), rng);
                if !mask.is_empty() {
                    o.output.iter_mut().zip(&mask).for_each(|(a, m)| *a *= m);
                }
                (o.output, o.h_n, o.c_n)
            }
        };
        let logits = self.head.forward(&y, n);
        Ok((
            logits,
            LmState {
                batch: c.batch,
                h: h_n,
                c: c_n,
            },
        ))
    }

    /// Mean cross-entropy (nats) of a chunk, with log-softmax and sums in `f64`. `dropout` as
    /// in [`CharLm::forward_backward`] (the same RNG state gives the same masks).
    pub fn loss(&self, c: &Chunk<'_>, state: &LmState, dropout: Option<&mut ChaCha8Rng>) -> Result<f64> {
        let (logits, _) = self.forward_chunk(c, state, dropout)?;
        let v = self.vocab.len();
        let total: f64 = logits.chunks_exact(v).zip(c.targets).map(|(row, &t)| nll(row, t)).sum();
        Ok(total / c.targets.len() as f64)
    }

    /// Loss, gradients and final state of one chunk from `state`. The state is detached: no
    /// gradient flows into it. With `dropout` (training), dropout masks are drawn from it; with
    /// `None` there is no dropout.
    pub fn forward_backward(
        &self,
        c: &Chunk<'_>,
        state: &LmState,
        dropout: Option<&mut ChaCha8Rng>,
    ) -> Result<StepOut> {
        Ok(self.forward_backward_logits(c, state, dropout)?.0)
    }

    /// [`CharLm::forward_backward`] that also returns the logits `[batch·time, V]`.
    fn forward_backward_logits(
        &self,
        c: &Chunk<'_>,
        state: &LmState,
        dropout: Option<&mut ChaCha8Rng>,
    ) -> Result<(StepOut, Vec<f32>)> {
        self.check_chunk(c, state)?;
        let (e, v, hd) = (self.cfg.embed_dim, self.vocab.len(), self.cfg.hidden_size);
        let n = c.batch * c.time;
        let x = self.embed.forward(c.inputs);
        let batch = SeqBatch::batch_first(&x, c.batch, c.time, e);
        let st = State {
            h0: Some(&state.h),
            c0: state.c.as_deref(),
        };
        let (masks, out_mask) = match dropout.filter(|_| self.cfg.has_dropout()) {
            None => (None, Vec::new()),
            Some(rng) => {
                let m = self.rnn.sample_masks(c.batch, c.time, rng);
                (Some(m), self.output_mask(n * hd, rng))
            }
        };
        let (out, tape) = self.rnn.forward_train(&batch, &st, masks.as_ref())?;
        let mut y = out.output;
        if !out_mask.is_empty() {
            y.iter_mut().zip(&out_mask).for_each(|(a, m)| *a *= m);
        }
        let logits = self.head.forward(&y, n);
        let targets: Vec<i64> = c.targets.iter().map(|&t| t as i64).collect();
        let ce = cross_entropy(&logits, v, &targets, None, None)?;
        let mut grads = self.zero_grads();
        let mut dy = self
            .head
            .backward(&y, &ce.grad, n, &mut grads[2], true)
            .expect("dx was requested");
        if !out_mask.is_empty() {
            dy.iter_mut().zip(&out_mask).for_each(|(a, m)| *a *= m);
        }
        let g = self.rnn.backward(&tape, &dy, None, None, BackwardOptions::default())?;
        grads[1] = g.params;
        self.embed.backward(c.inputs, &g.input, &mut grads[0]);
        let step = StepOut {
            loss: ce.loss as f64,
            grads,
            state: LmState {
                batch: c.batch,
                h: out.h_n,
                c: out.c_n,
            },
        };
        Ok((step, logits))
    }
}

/// `−log softmax(row)[target]` in `f64`.
fn nll(row: &[f32], target: usize) -> f64 {
    let max = row.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x as f64));
    let z: f64 = row.iter().map(|&x| (x as f64 - max).exp()).sum();
    z.ln() + max - row[target] as f64
}

/// `−ln P(target)` under the predictive distribution that scoring uses: the softmax of `row`
/// scaled by `1 − novel`, plus the escape `novel` on [`UNK`] ([`CharVocab::novel`]). With
/// `novel` 0 it is [`nll`]. For a known target it differs from [`nll`] by a constant, so
/// training on [`nll`] trains this too.
fn nll_escape(row: &[f32], target: usize, novel: f64) -> f64 {
    let l = nll(row, target);
    if novel == 0.0 {
        l
    } else if target == UNK {
        -((1.0 - novel) * (-l).exp() + novel).ln()
    } else {
        l - (-novel).ln_1p()
    }
}

impl Module for CharLm {
    fn buffers(&self) -> Vec<(&'static str, &ParamBuffer<f32>)> {
        vec![
            ("embed", &self.embed.params),
            ("rnn", self.rnn.params()),
            ("head", &self.head.params),
        ]
    }

    fn buffers_mut(&mut self) -> Vec<&mut ParamBuffer<f32>> {
        vec![&mut self.embed.params, self.rnn.params_mut(), &mut self.head.params]
    }
}
