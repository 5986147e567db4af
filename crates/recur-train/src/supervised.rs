//! Supervised training of a [`SequenceModel`]: classification (binary or multiclass),
//! regression and tagging over an in-memory set of variable-length examples.
//!
//! [`SeqDataset`] holds the examples and builds padded batches; [`Supervised`] pairs the
//! model with its [`Task`] (the loss) and implements [`Trainable`]; [`predict`] and
//! [`evaluate`] score a dataset in batches.

use std::collections::BTreeMap;

use rand_chacha::ChaCha8Rng;
use recur_nn::ParamBuffer;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::loss::{self, LossOut};
use crate::metrics;
use crate::models::sequence::{Head, SeqInput, SequenceModel};
use crate::params::Module;
use crate::trainer::{Dataset, Trainable};

/// Regression loss.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RegressionLoss {
    /// Mean squared error.
    #[default]
    Mse,
    /// Mean absolute error.
    L1,
    /// Huber with this δ.
    Huber(f32),
}

/// What the model predicts and which loss trains it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Task {
    /// One logit per sequence, BCE-with-logits (`pos_weight` for rare positives).
    Binary {
        /// Weight of positive examples.
        pos_weight: Option<f32>,
    },
    /// `classes` logits per sequence, cross-entropy (optional class weights).
    Multiclass {
        /// Number of classes.
        classes: usize,
        /// Per-class weights.
        class_weights: Option<Vec<f32>>,
    },
    /// `outputs` real values per sequence.
    Regression {
        /// Values per sequence.
        outputs: usize,
        /// The loss.
        loss: RegressionLoss,
    },
    /// `classes` logits per step (aligned many-to-many); padded steps are ignored.
    Tagging {
        /// Number of tags.
        classes: usize,
        /// Per-tag weights.
        class_weights: Option<Vec<f32>>,
    },
}

impl Task {
    /// Model outputs the task needs.
    pub fn outputs(&self) -> usize {
        match self {
            Task::Binary { .. } => 1,
            Task::Multiclass { classes, .. } | Task::Tagging { classes, .. } => *classes,
            Task::Regression { outputs, .. } => *outputs,
        }
    }
}

/// The target of one example.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Target {
    /// A class index (multiclass) .
    Class(usize),
    /// A binary label in `[0, 1]`.
    Binary(f32),
    /// Real targets (regression).
    Real(Vec<f32>),
    /// One tag per step.
    Tags(Vec<usize>),
}

/// One example: `len` steps of `features` values (and optionally one categorical id each).
#[derive(Clone, Debug, PartialEq)]
pub struct Example {
    /// Steps.
    pub len: usize,
    /// `[len, features]`, row-major.
    pub features: Vec<f32>,
    /// `[len]` categorical ids, or empty when the model has no vocabulary.
    pub ids: Vec<usize>,
    /// The target.
    pub target: Target,
}

/// Examples with a fixed feature width.
#[derive(Clone, Debug, Default)]
pub struct SeqDataset {
    /// Continuous features per step.
    pub features: usize,
    /// The examples.
    pub examples: Vec<Example>,
}

/// A padded batch with its targets.
#[derive(Clone, Debug)]
pub struct Batch {
    /// Sequences.
    pub batch: usize,
    /// Padded length.
    pub time: usize,
    /// Real lengths.
    pub lengths: Vec<usize>,
    /// `[batch, time, features]`.
    pub features: Vec<f32>,
    /// `[batch, time]` ids.
    pub ids: Option<Vec<usize>>,
    /// The targets, in example order.
    pub targets: Vec<Target>,
}

impl Batch {
    /// The model input view.
    pub fn input(&self) -> SeqInput<'_> {
        SeqInput {
            batch: self.batch,
            time: self.time,
            lengths: &self.lengths,
            features: &self.features,
            ids: self.ids.as_deref(),
        }
    }
}

impl SeqDataset {
    /// Checks every example against the feature width; errors name the example.
    pub fn validate(&self) -> Result<()> {
        for (i, e) in self.examples.iter().enumerate() {
            if e.len == 0 {
                return Err(TrainError::Invalid(format!("example {i} is empty")));
            }
            if e.features.len() != e.len * self.features {
                return Err(TrainError::Invalid(format!(
                    "example {i}: {} feature values for {} steps × {} features",
                    e.features.len(),
                    e.len,
                    self.features
                )));
            }
            if !e.ids.is_empty() && e.ids.len() != e.len {
                return Err(TrainError::Invalid(format!(
                    "example {i}: {} ids for {} steps",
                    e.ids.len(),
                    e.len
                )));
            }
            if let Target::Tags(t) = &e.target {
                if t.len() != e.len {
                    return Err(TrainError::Invalid(format!(
                        "example {i}: {} tags for {} steps",
                        t.len(),
                        e.len
                    )));
                }
            }
        }
        Ok(())
    }
}

impl Dataset for SeqDataset {
    type Batch = Batch;

    fn len(&self) -> usize {
        self.examples.len()
    }

    fn seq_len(&self, i: usize) -> usize {
        self.examples[i].len
    }

    fn batch(&self, indices: &[usize]) -> Result<Batch> {
        let f = self.features;
        let time = indices.iter().map(|&i| self.examples[i].len).max().unwrap_or(0);
        let b = indices.len();
        let mut features = vec![0.0f32; b * time * f];
        let with_ids = indices.first().is_some_and(|&i| !self.examples[i].ids.is_empty());
        let mut ids = with_ids.then(|| vec![0usize; b * time]);
        let mut lengths = Vec::with_capacity(b);
        let mut targets = Vec::with_capacity(b);
        for (r, &i) in indices.iter().enumerate() {
            let e = &self.examples[i];
            features[r * time * f..][..e.len * f].copy_from_slice(&e.features);
            if let Some(ids) = &mut ids {
                if e.ids.len() != e.len {
                    return Err(TrainError::Invalid(format!("example {i} has no categorical ids")));
                }
                ids[r * time..][..e.len].copy_from_slice(&e.ids);
            }
            lengths.push(e.len);
            targets.push(e.target.clone());
        }
        Ok(Batch {
            batch: b,
            time,
            lengths,
            features,
            ids,
            targets,
        })
    }
}

/// A [`SequenceModel`] with its task: what the trainer fits.
#[derive(Clone, Debug)]
pub struct Supervised {
    /// The network.
    pub model: SequenceModel,
    /// The loss.
    pub task: Task,
    /// Truncated BPTT chunk (`None` = full BPTT).
    pub truncate: Option<usize>,
}

impl Supervised {
    /// Pairs a model with a task, checking that the head fits it.
    pub fn new(model: SequenceModel, task: Task, truncate: Option<usize>) -> Result<Self> {
        let per_step = model.config().head == Head::PerStep;
        if per_step != matches!(task, Task::Tagging { .. }) {
            return Err(TrainError::config(
                "model.head",
                "tagging needs the per_step head, and the per_step head needs a tagging task",
            ));
        }
        if model.config().outputs != task.outputs() {
            return Err(TrainError::config(
                "model.outputs",
                format!(
                    "the task needs {} outputs, the model has {}",
                    task.outputs(),
                    model.config().outputs
                ),
            ));
        }
        Ok(Supervised { model, task, truncate })
    }

    /// Loss and `∂loss/∂logits` of a batch's logits.
    pub fn loss(&self, batch: &Batch, logits: &[f32]) -> Result<LossOut> {
        let wrong =
            |i: usize| TrainError::Invalid(format!("target of batch row {i} does not fit the task {:?}", self.task));
        match &self.task {
            Task::Binary { pos_weight } => {
                let y = batch
                    .targets
                    .iter()
                    .enumerate()
                    .map(|(i, t)| match t {
                        Target::Binary(v) => Ok(*v),
                        _ => Err(wrong(i)),
                    })
                    .collect::<Result<Vec<f32>>>()?;
                let pw = pos_weight.map(|p| [p]);
                loss::bce_with_logits(logits, &y, pw.as_ref().map(|p| &p[..]))
            }
            Task::Multiclass { classes, class_weights } => {
                let y = batch
                    .targets
                    .iter()
                    .enumerate()
                    .map(|(i, t)| match t {
                        Target::Class(c) => Ok(*c as i64),
                        _ => Err(wrong(i)),
                    })
                    .collect::<Result<Vec<i64>>>()?;
                loss::cross_entropy(logits, *classes, &y, class_weights.as_deref(), None)
            }
            Task::Regression { outputs, loss: kind } => {
                let mut y = Vec::with_capacity(batch.batch * outputs);
                for (i, t) in batch.targets.iter().enumerate() {
                    match t {
                        Target::Real(v) if v.len() == *outputs => y.extend_from_slice(v),
                        _ => return Err(wrong(i)),
                    }
                }
                match kind {
                    RegressionLoss::Mse => loss::mse(logits, &y),
                    RegressionLoss::L1 => loss::l1(logits, &y),
                    RegressionLoss::Huber(d) => loss::huber(logits, &y, *d),
                }
            }
            Task::Tagging { classes, class_weights } => {
                let mut y = vec![-100i64; batch.batch * batch.time];
                for (i, t) in batch.targets.iter().enumerate() {
                    match t {
                        Target::Tags(tags) => {
                            for (s, &tag) in tags.iter().enumerate() {
                                y[i * batch.time + s] = tag as i64;
                            }
                        }
                        _ => return Err(wrong(i)),
                    }
                }
                loss::cross_entropy(logits, *classes, &y, class_weights.as_deref(), Some(-100))
            }
        }
    }
}

impl Module for Supervised {
    fn buffers(&self) -> Vec<(&'static str, &ParamBuffer<f32>)> {
        self.model.buffers()
    }

    fn buffers_mut(&mut self) -> Vec<&mut ParamBuffer<f32>> {
        self.model.buffers_mut()
    }
}

impl Trainable for Supervised {
    type Batch = Batch;

    fn loss_and_grads(&self, batch: &Batch, rng: &mut ChaCha8Rng) -> Result<(f64, Vec<ParamBuffer<f32>>)> {
        let x = batch.input();
        let (logits, tape) = self.model.forward_train(&x, rng)?;
        let out = self.loss(batch, &logits)?;
        let grads = self.model.backward(&x, &tape, &out.grad, self.truncate)?;
        Ok((out.loss as f64, grads))
    }

    fn normalizer(&self, batch: &Batch) -> f64 {
        let weight =
            |w: &Option<Vec<f32>>, c: usize| w.as_ref().map_or(1.0, |w| w.get(c).copied().unwrap_or(0.0) as f64);
        match &self.task {
            Task::Binary { .. } => batch.batch as f64,
            Task::Regression { outputs, .. } => (batch.batch * outputs) as f64,
            Task::Multiclass { class_weights, .. } => batch
                .targets
                .iter()
                .map(|t| match t {
                    Target::Class(c) => weight(class_weights, *c),
                    _ => 0.0,
                })
                .sum(),
            Task::Tagging { class_weights, .. } => batch
                .targets
                .iter()
                .map(|t| match t {
                    Target::Tags(tags) => tags.iter().map(|&c| weight(class_weights, c)).sum(),
                    _ => 0.0,
                })
                .sum(),
        }
    }
}

/// Logits of every example, in dataset order (`[outputs]` per example, or `[len, outputs]`
/// for tagging), computed in length-sorted batches of `batch_size`.
pub fn predict(model: &SequenceModel, data: &SeqDataset, batch_size: usize) -> Result<Vec<Vec<f32>>> {
    let mut order: Vec<usize> = (0..data.len()).collect();
    order.sort_by_key(|&i| data.examples[i].len);
    let mut out = vec![Vec::new(); data.len()];
    let k = model.config().outputs;
    let per_step = model.config().head == Head::PerStep;
    for chunk in order.chunks(batch_size.max(1)) {
        let b = data.batch(chunk)?;
        let logits = model.forward(&b.input())?;
        for (r, &i) in chunk.iter().enumerate() {
            out[i] = if per_step {
                logits[r * b.time * k..][..b.lengths[r] * k].to_vec()
            } else {
                logits[r * k..(r + 1) * k].to_vec()
            };
        }
    }
    Ok(out)
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}

/// The task's metrics on `data`: `loss` (the training loss), and
/// * binary: `auc`, `average_precision`, `log_loss`, `brier`, `accuracy` (threshold 0.5);
/// * multiclass and tagging: `accuracy`, `macro_f1`;
/// * regression: `mae`, `rmse` (in the model's units).
pub fn evaluate(sup: &Supervised, data: &SeqDataset, batch_size: usize) -> Result<BTreeMap<String, f64>> {
    let logits = predict(&sup.model, data, batch_size)?;
    let mut m = BTreeMap::new();
    // Loss over the whole set, as the mean of per-example losses weighted like the training loss.
    let all: Vec<usize> = (0..data.len()).collect();
    let mut total = 0.0f64;
    let mut count = 0usize;
    for chunk in all.chunks(batch_size.max(1)) {
        let b = data.batch(chunk)?;
        let flat: Vec<f32> = if matches!(sup.task, Task::Tagging { .. }) {
            let k = sup.task.outputs();
            let mut f = vec![0.0f32; b.batch * b.time * k];
            for (r, &i) in chunk.iter().enumerate() {
                f[r * b.time * k..][..logits[i].len()].copy_from_slice(&logits[i]);
            }
            f
        } else {
            chunk.iter().flat_map(|&i| logits[i].iter().copied()).collect()
        };
        total += sup.loss(&b, &flat)?.loss as f64 * chunk.len() as f64;
        count += chunk.len();
    }
    m.insert("loss".to_string(), total / count.max(1) as f64);
    match &sup.task {
        Task::Binary { .. } => {
            let y: Vec<bool> = data
                .examples
                .iter()
                .map(|e| matches!(e.target, Target::Binary(v) if v >= 0.5))
                .collect();
            let p: Vec<f64> = logits.iter().map(|l| sigmoid(l[0] as f64)).collect();
            if y.iter().any(|&v| v) && y.iter().any(|&v| !v) {
                m.insert("auc".into(), metrics::roc_auc(&y, &p)?);
                m.insert("average_precision".into(), metrics::average_precision(&y, &p)?);
            }
            m.insert("log_loss".into(), metrics::log_loss(&y, &p)?);
            m.insert("brier".into(), metrics::brier_score(&y, &p)?);
            let pred: Vec<usize> = p.iter().map(|&v| usize::from(v >= 0.5)).collect();
            let truth: Vec<usize> = y.iter().map(|&v| usize::from(v)).collect();
            m.insert("accuracy".into(), metrics::accuracy(&truth, &pred)?);
        }
        Task::Multiclass { .. } | Task::Tagging { .. } => {
            let k = sup.task.outputs();
            let (mut truth, mut pred) = (Vec::new(), Vec::new());
            for (e, l) in data.examples.iter().zip(&logits) {
                match &e.target {
                    Target::Class(c) => {
                        truth.push(*c);
                        pred.push(argmax(l));
                    }
                    Target::Tags(tags) => {
                        for (s, &t) in tags.iter().enumerate() {
                            truth.push(t);
                            pred.push(argmax(&l[s * k..(s + 1) * k]));
                        }
                    }
                    _ => {}
                }
            }
            m.insert("accuracy".into(), metrics::accuracy(&truth, &pred)?);
            m.insert("macro_f1".into(), metrics::macro_f1(&truth, &pred)?);
        }
        Task::Regression { .. } => {
            let (mut y, mut p) = (Vec::new(), Vec::new());
            for (e, l) in data.examples.iter().zip(&logits) {
                if let Target::Real(v) = &e.target {
                    y.extend(v.iter().map(|&x| x as f64));
                    p.extend(l.iter().map(|&x| x as f64));
                }
            }
            m.insert("mae".into(), metrics::mae(&y, &p)?);
            m.insert("rmse".into(), metrics::rmse(&y, &p)?);
        }
    }
    Ok(m)
}
