//! Many-to-one (classification, regression) and aligned many-to-many (tagging) models:
//! optional embedding of a categorical id per step, concatenated with continuous features,
//! a recurrent stack, and a linear head on the final states, a pooling over time, or every
//! step.
//!
//! Per-step input is `[embedding(id) | features]`. Heads:
//! * `final`: the last layer's final hidden state of each direction (forward at the last real
//!   step, reverse at step 0), concatenated;
//! * `mean`, `max`, `meanmax`: pooling of the last layer's outputs over the real steps;
//! * `per_step`: the head applied to every step's output (tagging; padded steps give zeros).

use rand::Rng;
use recur_nn::{BackwardOptions, DropoutMasks, ParamBuffer, Rnn, RnnConfig, SeqBatch, State, Tape};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::layers::{Embedding, Linear};
use crate::params::Module;

/// How the recurrent outputs become the head's input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Head {
    /// Final hidden states of both directions.
    #[default]
    Final,
    /// Mean over real steps.
    Mean,
    /// Max over real steps.
    Max,
    /// Mean and max over real steps, concatenated.
    MeanMax,
    /// Every step (aligned many-to-many).
    PerStep,
}

/// The architecture of a [`SequenceModel`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SequenceModelConfig {
    /// Continuous features per step.
    pub features: usize,
    /// Categorical vocabulary size (ids `0..vocab`); 0 = no categorical input.
    #[serde(default)]
    pub vocab: usize,
    /// Embedding width (when `vocab > 0`).
    #[serde(default)]
    pub embed_dim: usize,
    /// The recurrent stack; `input_size` must be `embed_dim + features`.
    pub rnn: RnnConfig,
    /// Head input.
    #[serde(default)]
    pub head: Head,
    /// Outputs per sequence (or per step): classes, 1 for a binary logit, or regression targets.
    pub outputs: usize,
}

impl SequenceModelConfig {
    /// Checks the fields that tie together; errors name the field.
    pub fn validate(&self) -> Result<()> {
        if (self.vocab == 0) != (self.embed_dim == 0) {
            return Err(TrainError::config(
                "model.embed_dim",
                format!(
                    "vocab ({}) and embed_dim ({}) must both be 0 or both positive",
                    self.vocab, self.embed_dim
                ),
            ));
        }
        if self.rnn.input_size != self.embed_dim + self.features {
            return Err(TrainError::config(
                "model.rnn.input_size",
                format!(
                    "must be embed_dim + features = {}, got {}",
                    self.embed_dim + self.features,
                    self.rnn.input_size
                ),
            ));
        }
        if self.rnn.input_size == 0 {
            return Err(TrainError::config(
                "model.features",
                "the model has no input (features = 0 and vocab = 0)",
            ));
        }
        if self.outputs == 0 {
            return Err(TrainError::config("model.outputs", "must be ≥ 1"));
        }
        self.rnn.validate()?;
        Ok(())
    }

    /// Width of the head's input.
    pub fn head_width(&self) -> usize {
        let w = self.rnn.directions() * self.rnn.h_out();
        if self.head == Head::MeanMax {
            2 * w
        } else {
            w
        }
    }
}

/// A padded batch: `features [batch, time, features]` and `ids [batch, time]` batch-first,
/// zero beyond each length.
#[derive(Clone, Copy, Debug)]
pub struct SeqInput<'a> {
    /// Sequences.
    pub batch: usize,
    /// Padded length.
    pub time: usize,
    /// Real lengths, each in `1..=time`.
    pub lengths: &'a [usize],
    /// Continuous features.
    pub features: &'a [f32],
    /// Categorical ids (when the model has a vocabulary).
    pub ids: Option<&'a [usize]>,
}

/// What the backward pass needs from a training forward pass.
#[derive(Debug)]
pub struct SeqTape {
    ids: Vec<usize>,
    tape: Tape<f32>,
    z: Vec<f32>,
    argmax: Vec<usize>,
    rows: usize,
}

/// Embedding + recurrent stack + linear head.
#[derive(Clone, Debug)]
pub struct SequenceModel {
    cfg: SequenceModelConfig,
    embed: Option<Embedding>,
    rnn: Rnn<f32>,
    head: Linear,
}

impl SequenceModel {
    /// A model with zero weights (to be loaded).
    pub fn zeros(cfg: SequenceModelConfig) -> Result<Self> {
        cfg.validate()?;
        Ok(SequenceModel {
            embed: (cfg.vocab > 0).then(|| Embedding::zeros(cfg.vocab, cfg.embed_dim)),
            rnn: Rnn::zeros(cfg.rnn.clone())?,
            head: Linear::zeros(cfg.head_width(), cfg.outputs, true),
            cfg,
        })
    }

    /// A freshly initialized model: embedding `N(0, 1)`, recurrent weights by
    /// `init` (Xavier input, orthogonal recurrent, zero bias by default), head as `nn.Linear`.
    pub fn new(cfg: SequenceModelConfig, init: &recur_nn::init::Init, rng: &mut impl Rng) -> Result<Self> {
        cfg.validate()?;
        let embed = (cfg.vocab > 0).then(|| Embedding::new(cfg.vocab, cfg.embed_dim, rng));
        let mut rnn = Rnn::zeros(cfg.rnn.clone())?;
        init.apply(&mut rnn, rng);
        let head = Linear::new(cfg.head_width(), cfg.outputs, true, rng);
        Ok(SequenceModel { cfg, embed, rnn, head })
    }

    /// The architecture.
    pub fn config(&self) -> &SequenceModelConfig {
        &self.cfg
    }

    /// The recurrent stack.
    pub fn rnn(&self) -> &Rnn<f32> {
        &self.rnn
    }

    /// Selects the kernel family of the recurrent stack (default: the best for this CPU).
    pub fn set_kernels(&mut self, choice: recur_nn::KernelChoice) {
        self.rnn.set_kernels(choice);
    }

    /// Runs the two directions of each bidirectional layer on two threads (`2`) or on the
    /// calling thread (`1`, the default); see [`Rnn::set_threads`]. Results are bit-identical.
    ///
    /// # Errors
    /// Any other count, or when the helper thread cannot be spawned.
    pub fn set_threads(&mut self, threads: usize) -> Result<()> {
        self.rnn
            .set_threads(threads)
            .map_err(|e| TrainError::Invalid(format!("threads: {e}")))
    }

    /// Stores the recurrent stack's input and recurrent weights in `precision` for inference
    /// ([`SequenceModel::forward`]); training passes always use f32. See [`Rnn::set_precision`].
    pub fn set_precision(&mut self, precision: recur_nn::Precision) {
        self.rnn.set_precision(precision);
    }

    fn check(&self, x: &SeqInput<'_>) -> Result<()> {
        let c = &self.cfg;
        if x.batch == 0 || x.time == 0 {
            return Err(TrainError::Invalid(format!("empty batch ({}x{})", x.batch, x.time)));
        }
        if x.lengths.len() != x.batch {
            return Err(TrainError::Invalid(format!(
                "{} lengths for a batch of {}",
                x.lengths.len(),
                x.batch
            )));
        }
        if x.features.len() != x.batch * x.time * c.features {
            return Err(TrainError::Invalid(format!(
                "features have {} values, expected batch {} × time {} × features {}",
                x.features.len(),
                x.batch,
                x.time,
                c.features
            )));
        }
        match (x.ids, c.vocab) {
            (None, 0) => {}
            (Some(ids), v) if v > 0 => {
                if ids.len() != x.batch * x.time {
                    return Err(TrainError::Invalid(format!(
                        "ids have {} values, expected {}",
                        ids.len(),
                        x.batch * x.time
                    )));
                }
                if let Some(i) = ids.iter().position(|&id| id >= v) {
                    return Err(TrainError::Invalid(format!(
                        "ids[{i}] = {} is outside the vocabulary 0..{v}",
                        ids[i]
                    )));
                }
            }
            (None, _) => return Err(TrainError::Invalid("this model needs categorical ids".into())),
            (Some(_), _) => {
                return Err(TrainError::Invalid(
                    "this model has no vocabulary but ids were given".into(),
                ))
            }
        }
        Ok(())
    }

    /// The recurrent input `[batch, time, embed_dim + features]`.
    fn input(&self, x: &SeqInput<'_>) -> Vec<f32> {
        let (e, f) = (self.cfg.embed_dim, self.cfg.features);
        if e == 0 {
            return x.features.to_vec();
        }
        let embed = self.embed.as_ref().expect("vocab > 0");
        let ids = x.ids.expect("checked");
        let mut out = Vec::with_capacity(x.batch * x.time * (e + f));
        for (r, &id) in ids.iter().enumerate() {
            out.extend_from_slice(embed.row(id));
            out.extend_from_slice(&x.features[r * f..(r + 1) * f]);
        }
        out
    }

    /// Pools the recurrent result into the head input `[rows, head_width]`.
    fn pool(&self, x: &SeqInput<'_>, output: &[f32], h_n: &[f32], argmax: &mut Vec<usize>) -> (Vec<f32>, usize) {
        let cfg = &self.cfg.rnn;
        let (d, ho, b, t) = (cfg.directions(), cfg.h_out(), x.batch, x.time);
        let w = d * ho;
        match self.cfg.head {
            Head::PerStep => (output.to_vec(), b * t),
            Head::Final => {
                let mut z = vec![0.0; b * w];
                let last = (cfg.num_layers - 1) * d;
                for dir in 0..d {
                    for i in 0..b {
                        let src = &h_n[((last + dir) * b + i) * ho..][..ho];
                        z[i * w + dir * ho..][..ho].copy_from_slice(src);
                    }
                }
                (z, b)
            }
            Head::Mean | Head::Max | Head::MeanMax => {
                let hw = self.cfg.head_width();
                let mut z = vec![0.0; b * hw];
                argmax.clear();
                argmax.resize(b * w, 0);
                for i in 0..b {
                    let len = x.lengths[i];
                    let rows = &output[i * t * w..(i * t + len) * w];
                    let zi = &mut z[i * hw..(i + 1) * hw];
                    let want_mean = self.cfg.head != Head::Max;
                    let want_max = self.cfg.head != Head::Mean;
                    let max_off = if self.cfg.head == Head::MeanMax { w } else { 0 };
                    if want_mean {
                        for row in rows.chunks_exact(w) {
                            for (a, v) in zi[..w].iter_mut().zip(row) {
                                *a += *v;
                            }
                        }
                        let inv = 1.0 / len as f32;
                        zi[..w].iter_mut().for_each(|a| *a *= inv);
                    }
                    if want_max {
                        let am = &mut argmax[i * w..(i + 1) * w];
                        zi[max_off..max_off + w].copy_from_slice(&rows[..w]);
                        for (s, row) in rows.chunks_exact(w).enumerate().skip(1) {
                            for j in 0..w {
                                if row[j] > zi[max_off + j] {
                                    zi[max_off + j] = row[j];
                                    am[j] = s;
                                }
                            }
                        }
                    }
                }
                (z, b)
            }
        }
    }

    /// Inference: logits `[batch, outputs]` (or `[batch, time, outputs]` for `per_step`).
    pub fn forward(&self, x: &SeqInput<'_>) -> Result<Vec<f32>> {
        self.check(x)?;
        let input = self.input(x);
        let sb = SeqBatch::batch_first(&input, x.batch, x.time, self.cfg.rnn.input_size).with_lengths(x.lengths);
        let out = match self.cfg.head {
            // Only the final states are read: skip the padded per-step outputs.
            Head::Final => self.rnn.forward_final(&sb, &State::default())?,
            _ => self.rnn.forward(&sb, &State::default())?,
        };
        let (z, rows) = self.pool(x, &out.output, &out.h_n, &mut Vec::new());
        Ok(self.head.forward(&z, rows))
    }

    /// Training forward pass with dropout masks drawn from `rng` (when the config has any).
    pub fn forward_train(&self, x: &SeqInput<'_>, rng: &mut impl Rng) -> Result<(Vec<f32>, SeqTape)> {
        self.check(x)?;
        let input = self.input(x);
        let sb = SeqBatch::batch_first(&input, x.batch, x.time, self.cfg.rnn.input_size).with_lengths(x.lengths);
        let c = &self.cfg.rnn;
        let masks: Option<DropoutMasks<f32>> = (c.dropout > 0.0 || c.input_dropout > 0.0 || c.recurrent_dropout > 0.0)
            .then(|| self.rnn.sample_masks(x.batch, x.time, rng));
        let (out, tape) = self.rnn.forward_train(&sb, &State::default(), masks.as_ref())?;
        let mut argmax = Vec::new();
        let (z, rows) = self.pool(x, &out.output, &out.h_n, &mut argmax);
        let logits = self.head.forward(&z, rows);
        Ok((
            logits,
            SeqTape {
                ids: x.ids.map(<[usize]>::to_vec).unwrap_or_default(),
                tape,
                z,
                argmax,
                rows,
            },
        ))
    }

    /// Backward from `∂L/∂logits`; returns gradients in [`Module::buffers`] order.
    pub fn backward(
        &self,
        x: &SeqInput<'_>,
        tape: &SeqTape,
        d_logits: &[f32],
        truncate: Option<usize>,
    ) -> Result<Vec<ParamBuffer<f32>>> {
        let mut grads = self.zero_grads();
        let gi = usize::from(self.embed.is_some());
        let cfg = &self.cfg.rnn;
        let (d, ho, b, t) = (cfg.directions(), cfg.h_out(), x.batch, x.time);
        let w = d * ho;
        if d_logits.len() != tape.rows * self.cfg.outputs {
            return Err(TrainError::Invalid(format!(
                "d_logits has {} values, expected {}",
                d_logits.len(),
                tape.rows * self.cfg.outputs
            )));
        }
        let dz = self
            .head
            .backward(&tape.z, d_logits, tape.rows, &mut grads[gi + 1], true)
            .expect("asked for dx");
        let mut d_out = vec![0.0f32; b * t * w];
        let mut d_hn = vec![0.0f32; cfg.num_layers * d * b * ho];
        let hw = self.cfg.head_width();
        match self.cfg.head {
            Head::PerStep => {
                for i in 0..b {
                    let n = x.lengths[i] * w;
                    d_out[i * t * w..][..n].copy_from_slice(&dz[i * t * w..][..n]);
                }
            }
            Head::Final => {
                let last = (cfg.num_layers - 1) * d;
                for dir in 0..d {
                    for i in 0..b {
                        d_hn[((last + dir) * b + i) * ho..][..ho].copy_from_slice(&dz[i * w + dir * ho..][..ho]);
                    }
                }
            }
            Head::Mean | Head::Max | Head::MeanMax => {
                let max_off = if self.cfg.head == Head::MeanMax { w } else { 0 };
                for i in 0..b {
                    let len = x.lengths[i];
                    let dzi = &dz[i * hw..(i + 1) * hw];
                    if self.cfg.head != Head::Max {
                        let inv = 1.0 / len as f32;
                        for s in 0..len {
                            for (o, g) in d_out[(i * t + s) * w..][..w].iter_mut().zip(&dzi[..w]) {
                                *o += *g * inv;
                            }
                        }
                    }
                    if self.cfg.head != Head::Mean {
                        for j in 0..w {
                            let s = tape.argmax[i * w + j];
                            d_out[(i * t + s) * w + j] += dzi[max_off + j];
                        }
                    }
                }
            }
        }
        let g = self
            .rnn
            .backward(&tape.tape, &d_out, Some(&d_hn), None, BackwardOptions { truncate })?;
        grads[gi] = g.params;
        if let Some(embed) = &self.embed {
            let (e, width) = (self.cfg.embed_dim, cfg.input_size);
            let mut d_emb = Vec::with_capacity(tape.ids.len() * e);
            for r in 0..tape.ids.len() {
                d_emb.extend_from_slice(&g.input[r * width..r * width + e]);
            }
            embed.backward(&tape.ids, &d_emb, &mut grads[0]);
        }
        Ok(grads)
    }
}

impl Module for SequenceModel {
    fn buffers(&self) -> Vec<(&'static str, &ParamBuffer<f32>)> {
        let mut v = Vec::with_capacity(3);
        if let Some(e) = &self.embed {
            v.push(("embed", &e.params));
        }
        v.push(("rnn", self.rnn.params()));
        v.push(("head", &self.head.params));
        v
    }

    fn buffers_mut(&mut self) -> Vec<&mut ParamBuffer<f32>> {
        let mut v = Vec::with_capacity(3);
        if let Some(e) = &mut self.embed {
            v.push(&mut e.params);
        }
        v.push(self.rnn.params_mut());
        v.push(&mut self.head.params);
        v
    }
}
