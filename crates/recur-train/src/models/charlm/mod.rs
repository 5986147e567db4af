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
//!   the state through the whole text (optionally split into a few parallel streams).
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

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use recur_kernels::{kernels, Accum, KernelChoice, Kernels, PackedGemv};
use recur_nn::{BackwardOptions, CellKind, ParamBuffer, Rnn, RnnConfig, SeqBatch, State};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::checkpoint::{self, Checkpoint};
use crate::clip::clip_grad_norm;
use crate::error::{Result, TrainError};
use crate::layers::{Embedding, Linear};
use crate::loss::cross_entropy;
use crate::params::Module;

mod train;

pub use train::{CharLmTrainConfig, CharLmTrainer, EpochStats, StepInfo};

/// The id of the unknown-character bucket. Known characters have ids `1..vocab.len()`.
pub const UNK: usize = 0;

/// `kind` of the checkpoints written by [`CharLm::save`].
pub const CHECKPOINT_KIND: &str = "charlm";

/// The character shown for [`UNK`] by [`CharVocab::decode`].
pub const UNK_CHAR: char = '\u{FFFD}';

/// A character vocabulary: id [`UNK`] plus every kept character, in code-point order.
///
/// Serialized as `{"chars": "<the known characters in id order>"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "VocabRepr", into = "VocabRepr")]
pub struct CharVocab {
    chars: Vec<char>,
    index: HashMap<char, usize>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct VocabRepr {
    chars: String,
}

impl TryFrom<VocabRepr> for CharVocab {
    type Error = String;

    fn try_from(r: VocabRepr) -> std::result::Result<Self, String> {
        CharVocab::from_chars(r.chars.chars()).map_err(|e| e.to_string())
    }
}

impl From<CharVocab> for VocabRepr {
    fn from(v: CharVocab) -> Self {
        VocabRepr {
            chars: v.chars.into_iter().collect(),
        }
    }
}

impl CharVocab {
    /// Every character of `text` that occurs at least `min_count` times (`min_count` 0 or 1
    /// keeps all), sorted by code point. Rarer characters map to [`UNK`].
    pub fn from_text(text: &str, min_count: usize) -> Self {
        let mut counts: HashMap<char, usize> = HashMap::new();
        for c in text.chars() {
            *counts.entry(c).or_insert(0) += 1;
        }
        let mut chars: Vec<char> = counts
            .into_iter()
            .filter(|&(_, n)| n >= min_count)
            .map(|(c, _)| c)
            .collect();
        chars.sort_unstable();
        let index = chars.iter().enumerate().map(|(i, &c)| (c, i + 1)).collect();
        CharVocab { chars, index }
    }

    /// A vocabulary with exactly these characters, in this order (ids `1, 2, …`). Duplicates
    /// are an error.
    pub fn from_chars(chars: impl IntoIterator<Item = char>) -> Result<Self> {
        let chars: Vec<char> = chars.into_iter().collect();
        let mut index = HashMap::with_capacity(chars.len());
        for (i, &c) in chars.iter().enumerate() {
            if index.insert(c, i + 1).is_some() {
                return Err(TrainError::Invalid(format!(
                    "vocabulary lists the character {c:?} twice"
                )));
            }
        }
        Ok(CharVocab { chars, index })
    }

    /// Number of ids, including [`UNK`].
    pub fn len(&self) -> usize {
        self.chars.len() + 1
    }

    /// Whether no character is known (only [`UNK`]).
    pub fn is_empty(&self) -> bool {
        self.chars.is_empty()
    }

    /// The known characters in id order (id of `chars()[i]` is `i + 1`).
    pub fn chars(&self) -> &[char] {
        &self.chars
    }

    /// The id of `c` ([`UNK`] if unknown).
    pub fn id(&self, c: char) -> usize {
        self.index.get(&c).copied().unwrap_or(UNK)
    }

    /// The character of `id`: `None` for [`UNK`] and out-of-range ids.
    pub fn char(&self, id: usize) -> Option<char> {
        id.checked_sub(1).and_then(|i| self.chars.get(i)).copied()
    }

    /// Ids of every character of `text`.
    pub fn encode(&self, text: &str) -> Vec<usize> {
        text.chars().map(|c| self.id(c)).collect()
    }

    /// The text of `ids`; [`UNK`] and out-of-range ids become [`UNK_CHAR`].
    pub fn decode(&self, ids: &[usize]) -> String {
        ids.iter().map(|&i| self.char(i).unwrap_or(UNK_CHAR)).collect()
    }
}

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

/// Where generation starts: an initial state (the "seed vector"; zeros when `None`), then
/// optional priming text read from it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Seed<'a> {
    /// Initial hidden state `[layers·H]` (batch 1).
    pub h0: Option<&'a [f32]>,
    /// Initial cell state `[layers·H]` (LSTM only; zeros when `None`).
    pub c0: Option<&'a [f32]>,
    /// Text read before sampling starts (may be empty).
    pub prime: &'a str,
}

impl<'a> Seed<'a> {
    /// Start from the zero state and read `prime`.
    pub fn text(prime: &'a str) -> Self {
        Seed {
            prime,
            ..Seed::default()
        }
    }

    /// Start from the hidden vector `h0` (`[layers·H]`; a zero cell state for LSTM).
    pub fn vector(h0: &'a [f32]) -> Self {
        Seed {
            h0: Some(h0),
            ..Seed::default()
        }
    }
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
        let p = self.cfg.dropout;
        if p == 0.0 {
            return Vec::new();
        }
        let keep = (1.0 / (1.0 - p)) as f32;
        (0..n)
            .map(|_| if rng.random::<f64>() < p { 0.0 } else { keep })
            .collect()
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

    /// Bits per character on `text`: every character but the first is predicted from all the
    /// characters before it, the state carried through the whole text. With `streams > 1` the
    /// predictions are split into that many contiguous pieces run in parallel (each starting
    /// from the zero state, a small handicap for its first few characters); `chunk` is the
    /// number of steps per forward call (memory, not results, depends on it).
    pub fn evaluate(&self, text: &str, streams: usize, chunk: usize) -> Result<Eval> {
        self.evaluate_ids(&self.vocab.encode(text), streams, chunk)
    }

    /// [`CharLm::evaluate`] on ids.
    pub fn evaluate_ids(&self, ids: &[usize], streams: usize, chunk: usize) -> Result<Eval> {
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
        let mut total = 0.0f64;
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
                    total += nll(row, ids[starts[s] + pos + t + 1]);
                }
            }
            state.h = out.h_n;
            state.c = out.c_n;
            pos += time;
        }
        let nats = total / m as f64;
        Ok(Eval {
            nats,
            bpc: nats / std::f64::consts::LN_2,
            chars: m,
        })
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
        let v = self.vocab.len();
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
            losses.extend(logits.chunks_exact(v).zip(chunk.targets).map(|(row, &t)| nll(row, t)));
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

    /// Generates `n_chars` characters from `seed` (the seed's priming text is not repeated in
    /// the result). Each character is drawn from `softmax(logits / temperature)` with `rng`;
    /// `temperature == 0` is greedy argmax. [`UNK`] is never produced.
    pub fn generate(&self, seed: &Seed<'_>, n_chars: usize, temperature: f32, rng: &mut ChaCha8Rng) -> Result<String> {
        check_temperature(temperature)?;
        let mut g = Generator::new(self, seed)?;
        let mut out = String::with_capacity(n_chars);
        for i in 0..n_chars {
            let id = sample(g.logits(), temperature, rng);
            out.push(self.vocab.char(id).unwrap_or(UNK_CHAR));
            if i + 1 < n_chars {
                g.feed(id)?;
            }
        }
        Ok(out)
    }
}

fn check_temperature(t: f32) -> Result<()> {
    if t.is_finite() && t >= 0.0 {
        Ok(())
    } else {
        Err(TrainError::config(
            "temperature",
            format!("must be a finite number ≥ 0, got {t}"),
        ))
    }
}

/// `−log softmax(row)[target]` in `f64`.
fn nll(row: &[f32], target: usize) -> f64 {
    let max = row.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x as f64));
    let z: f64 = row.iter().map(|&x| (x as f64 - max).exp()).sum();
    z.ln() + max - row[target] as f64
}

/// Draws an id from `softmax(logits / temperature)`, never [`UNK`]; temperature 0 (or one so
/// small that the distribution is one-hot in `f64`) is argmax (the lowest id among ties).
///
/// `logits` must have at least two entries and `temperature` must be finite and ≥ 0 (as
/// [`CharLm::generate`] checks).
pub fn sample(logits: &[f32], temperature: f32, rng: &mut ChaCha8Rng) -> usize {
    let best = argmax(logits);
    if temperature == 0.0 || logits.len() <= 2 {
        return best;
    }
    let t = temperature as f64;
    let max = logits[best] as f64;
    let mut probs: Vec<f64> = logits.iter().map(|&x| ((x as f64 - max) / t).exp()).collect();
    probs[UNK] = 0.0;
    let z: f64 = probs.iter().sum();
    if !(z.is_finite() && z > 0.0) {
        return best;
    }
    let mut u = rng.random::<f64>() * z;
    for (i, &p) in probs.iter().enumerate() {
        if p > 0.0 {
            if u < p {
                return i;
            }
            u -= p;
        }
    }
    // Rounding left u just above the total: the last id with mass.
    probs.iter().rposition(|&p| p > 0.0).unwrap_or(best)
}

/// The id of the largest logit other than [`UNK`] (the lowest id among ties); NaNs never win.
pub fn argmax(logits: &[f32]) -> usize {
    let mut best = if logits.len() > 1 { 1 } else { 0 };
    for (i, &x) in logits.iter().enumerate().skip(2) {
        if x > logits[best] || (logits[best].is_nan() && !x.is_nan()) {
            best = i;
        }
    }
    best
}

/// Step-by-step inference at batch 1: holds the state and the logits of the next character.
/// The head's weight is packed once for the GEMV kernel (one step is one [`Rnn::forward`] of
/// length 1 plus one GEMV).
#[derive(Clone, Debug)]
pub struct Generator<'m> {
    model: &'m CharLm,
    k: Kernels,
    head: PackedGemv<f32>,
    state: LmState,
    logits: Vec<f32>,
}

impl<'m> Generator<'m> {
    /// Starts from `seed`: its state (zeros by default), then its priming text in one forward
    /// call. Without priming text the first logits are `head(h0 of the top layer)`.
    pub fn new(model: &'m CharLm, seed: &Seed<'_>) -> Result<Self> {
        let n = model.state_len();
        let lstm = model.rnn.config().has_cell_state();
        let mut state = model.zero_state(1);
        if let Some(h0) = seed.h0 {
            if h0.len() != n {
                return Err(TrainError::Invalid(format!(
                    "seed vector h0 has {} values, expected layers·hidden = {n}",
                    h0.len()
                )));
            }
            state.h.copy_from_slice(h0);
        }
        match (seed.c0, lstm) {
            (Some(c0), true) if c0.len() == n => state.c = Some(c0.to_vec()),
            (Some(c0), true) => {
                return Err(TrainError::Invalid(format!(
                    "seed cell state c0 has {} values, expected layers·hidden = {n}",
                    c0.len()
                )))
            }
            (Some(_), false) => {
                return Err(TrainError::Invalid(format!(
                    "seed cell state c0 is only accepted by LSTM models, this one is {}",
                    model.cfg.cell.cli_name()
                )))
            }
            (None, _) => {}
        }
        let k = kernels(KernelChoice::Best);
        let (v, hd) = (model.vocab.len(), model.cfg.hidden_size);
        let mut g = Generator {
            model,
            k,
            head: k.pack_gemv(model.head.weight(), v, hd),
            state,
            logits: vec![0.0; v],
        };
        let prime = model.vocab.encode(seed.prime);
        if prime.is_empty() {
            let top = g.state.h[n - hd..].to_vec();
            g.head_logits(&top);
        } else {
            g.run(&prime)?;
        }
        Ok(g)
    }

    /// `logits = W·h + b` for the top layer's `h`.
    fn head_logits(&mut self, h: &[f32]) {
        match self.model.head.params.get("bias") {
            Some(b) => self.logits.copy_from_slice(b),
            None => self.logits.fill(0.0),
        }
        self.k.gemv(&self.head, h, &mut self.logits, Accum::Add);
    }

    /// Logits of the next character, `[V]`.
    pub fn logits(&self) -> &[f32] {
        &self.logits
    }

    /// The current state (batch 1).
    pub fn state(&self) -> &LmState {
        &self.state
    }

    /// Reads one character id and updates the state and logits.
    pub fn feed(&mut self, id: usize) -> Result<()> {
        self.run(&[id])
    }

    /// Reads several ids in one forward call.
    pub fn run(&mut self, ids: &[usize]) -> Result<()> {
        let m = self.model;
        if ids.is_empty() {
            return Ok(());
        }
        m.check_ids("ids", ids)?;
        let x = m.embed.forward(ids);
        let out = m.rnn.forward(
            &SeqBatch::batch_first(&x, 1, ids.len(), m.cfg.embed_dim),
            &State {
                h0: Some(&self.state.h),
                c0: self.state.c.as_deref(),
            },
        )?;
        let hd = m.cfg.hidden_size;
        self.head_logits(&out.output[out.output.len() - hd..]);
        self.state.h = out.h_n;
        self.state.c = out.c_n;
        Ok(())
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
