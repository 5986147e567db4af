//! The training loop: shuffled, length-bucketed batches; an optimizer with a schedule and
//! clipping; validation every epoch with early stopping; best and last checkpoints; a guard
//! against non-finite steps; bit-exact resume.
//!
//! Determinism: all randomness is derived from `seed` by position, never carried in a
//! stateful generator: the batch order of epoch `e` comes from a generator seeded with
//! `(seed, "epoch", e)` and the dropout masks of update `s` from `(seed, "step", s)`. A run
//! stopped after any update and resumed from its last checkpoint therefore takes exactly the
//! same steps as an uninterrupted run, and two runs with one seed are identical bit for bit.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use recur_nn::ParamBuffer;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::checkpoint::{self, Checkpoint};
use crate::clip::clip_grad_norm;
use crate::error::{Result, TrainError};
use crate::optim::{Optimizer, OptimizerConfig};
use crate::params::Module;
use crate::schedule::{Mode, Plateau, ScheduleConfig};

/// A model the trainer can fit: one batch in, loss and gradients out.
pub trait Trainable: Module {
    /// What one batch is.
    type Batch;
    /// Mean loss over the batch and its gradients in [`Module::buffers`] order, in training
    /// mode (`rng` draws dropout masks).
    fn loss_and_grads(&self, batch: &Self::Batch, rng: &mut ChaCha8Rng) -> Result<(f64, Vec<ParamBuffer<f32>>)>;

    /// The denominator of the batch's mean loss (rows, or the sum of class weights, or the
    /// number of non-ignored tags). Shards of one batch computed on several threads are
    /// combined with these weights, so the result is the loss of the whole batch.
    fn normalizer(&self, batch: &Self::Batch) -> f64;
}

/// Training examples the trainer can batch.
pub trait Dataset {
    /// What a batch is.
    type Batch;
    /// Number of examples.
    fn len(&self) -> usize;
    /// Whether there are no examples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Length of example `i` (for bucketing).
    fn seq_len(&self, i: usize) -> usize;
    /// A batch of the given examples, in that order.
    fn batch(&self, indices: &[usize]) -> Result<Self::Batch>;
}

/// Early stopping on a validation metric.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EarlyStopping {
    /// Metric name as returned by the evaluation (`auc`, `accuracy`, `loss`, `mae`, …).
    pub metric: String,
    /// Whether larger or smaller is better.
    pub mode: Mode,
    /// Epochs without improvement before stopping.
    pub patience: usize,
    /// Smallest change that counts as an improvement.
    #[serde(default)]
    pub min_delta: f64,
}

/// Reduce-on-plateau settings (the metric is the early-stopping metric).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlateauConfig {
    /// Multiplier on a plateau.
    pub factor: f64,
    /// Epochs without improvement before reducing.
    pub patience: u32,
    /// Relative improvement that counts.
    #[serde(default = "plateau_threshold")]
    pub threshold: f64,
    /// Epochs to wait after a reduction.
    #[serde(default)]
    pub cooldown: u32,
    /// Lowest factor.
    #[serde(default)]
    pub min_factor: f64,
}

fn plateau_threshold() -> f64 {
    1e-4
}

/// Trainer settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Maximum epochs.
    pub epochs: usize,
    /// Examples per batch.
    pub batch_size: usize,
    /// The optimizer.
    pub optimizer: OptimizerConfig,
    /// The learning-rate schedule.
    pub schedule: ScheduleConfig,
    /// Clip the global gradient norm to this value (`None` = no clipping).
    pub clip_norm: Option<f64>,
    /// Early stopping (`None` = run all epochs; the last epoch is then the best).
    pub early_stopping: Option<EarlyStopping>,
    /// Reduce-on-plateau on the early-stopping metric.
    pub plateau: Option<PlateauConfig>,
    /// Abort after this many consecutive non-finite steps.
    pub max_bad_steps: usize,
    /// Group examples of similar length into batches (less padding).
    pub bucketing: bool,
    /// Seed of every random choice.
    pub seed: u64,
    /// Stop after this many updates in total (a budget; the run can be resumed).
    pub max_steps: Option<u64>,
    /// Write the checkpoints at most this often (seconds) during training; they are always
    /// written when training stops. The best weights are kept in memory in between.
    pub checkpoint_interval_secs: f64,
    /// Threads computing each batch (the batch is split into this many shards whose gradients
    /// are combined). Results are bit-identical for a given seed and thread count.
    pub threads: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 10,
            batch_size: 32,
            optimizer: OptimizerConfig::default(),
            schedule: ScheduleConfig::default(),
            clip_norm: Some(1.0),
            early_stopping: None,
            plateau: None,
            max_bad_steps: 10,
            bucketing: true,
            seed: 0,
            max_steps: None,
            checkpoint_interval_secs: 30.0,
            threads: 1,
        }
    }
}

impl TrainConfig {
    /// Checks every field; errors name the field.
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(TrainError::config("training.epochs", "must be ≥ 1"));
        }
        if self.batch_size == 0 {
            return Err(TrainError::config("training.batch_size", "must be ≥ 1"));
        }
        if self.threads == 0 || self.threads > 64 {
            return Err(TrainError::config(
                "training.threads",
                format!("must be in 1..=64, got {}", self.threads),
            ));
        }
        if self.max_bad_steps == 0 {
            return Err(TrainError::config("training.max_bad_steps", "must be ≥ 1"));
        }
        if let Some(c) = self.clip_norm {
            if !(c.is_finite() && c > 0.0) {
                return Err(TrainError::config(
                    "training.clip_norm",
                    format!("must be > 0, got {c}"),
                ));
            }
        }
        if self.checkpoint_interval_secs.is_nan() || self.checkpoint_interval_secs < 0.0 {
            return Err(TrainError::config("training.checkpoint_interval_secs", "must be ≥ 0"));
        }
        if let Some(p) = &self.plateau {
            if self.early_stopping.is_none() {
                return Err(TrainError::config(
                    "training.plateau",
                    "needs training.early_stopping for its metric",
                ));
            }
            if !(p.factor > 0.0 && p.factor < 1.0) {
                return Err(TrainError::config(
                    "training.plateau.factor",
                    format!("must be in (0, 1), got {}", p.factor),
                ));
            }
        }
        self.optimizer.validate()?;
        self.schedule.validate()
    }
}

/// Where the trainer writes checkpoints and what it puts in them besides weights.
#[derive(Clone, Debug)]
pub struct CheckpointPlan {
    /// The best model so far (by the early-stopping metric, else the latest epoch).
    pub best_dir: PathBuf,
    /// The latest state, resumable (weights, optimizer, trainer state).
    pub last_dir: PathBuf,
    /// Model family.
    pub kind: String,
    /// Model config JSON.
    pub model: Value,
    /// Preprocessing JSON (scalers, vocabularies, label names).
    pub preprocessing: Value,
}

/// The trainer's position and memory, saved in every checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct TrainState {
    /// Completed epochs.
    pub epoch: usize,
    /// Batches of the current epoch already taken.
    pub batch_in_epoch: usize,
    /// Updates attempted (including skipped ones).
    pub step: u64,
    /// Best early-stopping metric so far.
    pub best: Option<f64>,
    /// Epoch (1-based) of the best metric.
    pub best_epoch: Option<usize>,
    /// Epochs since the best.
    pub since_best: usize,
    /// Non-finite steps skipped in total.
    pub skipped_steps: u64,
    /// Non-finite steps in a row.
    pub consecutive_bad: usize,
    /// Sum and count of finite batch losses in the current epoch.
    pub epoch_loss: (f64, u64),
    /// Reduce-on-plateau state.
    pub plateau: Option<Plateau>,
    /// Whether training has finished (all epochs or early stop).
    pub finished: bool,
}

/// One line of the training log.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EpochRecord {
    /// Epoch number (1-based).
    pub epoch: usize,
    /// Updates so far.
    pub step: u64,
    /// Learning rate of the last update.
    pub lr: f64,
    /// Mean training loss of the epoch.
    pub train_loss: f64,
    /// Non-finite steps skipped so far.
    pub skipped_steps: u64,
    /// Validation metrics.
    pub val: BTreeMap<String, f64>,
    /// Whether this epoch is the best so far.
    pub is_best: bool,
    /// Wall seconds of the epoch (training and validation).
    pub seconds: f64,
}

/// Why [`Trainer::run`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// All epochs ran.
    Epochs,
    /// Early stopping triggered.
    EarlyStop,
    /// The `max_steps` budget was reached (resumable).
    MaxSteps,
}

/// A trainer: config, optimizer and state.
#[derive(Clone, Debug)]
pub struct Trainer {
    cfg: TrainConfig,
    optimizer: Optimizer,
    state: TrainState,
    lr: f64,
    /// Best weights and their metrics not yet written to `best_dir`.
    pending_best: Option<(crate::params::NamedTensors, Value)>,
    last_write: Option<Instant>,
}

/// One shard's mean loss, loss normalizer and gradients.
type Shard = (f64, f64, Vec<ParamBuffer<f32>>);

/// A generator for `(tag, index)` under `seed`: ChaCha's 64-bit stream id separates them.
fn derived_rng(seed: u64, tag: u64, index: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream((tag << 56) ^ index);
    r
}

impl Trainer {
    /// A fresh trainer (validates the config).
    pub fn new(cfg: TrainConfig) -> Result<Self> {
        cfg.validate()?;
        let plateau = cfg.plateau.as_ref().map(|p| {
            let mode = cfg.early_stopping.as_ref().map_or(Mode::Min, |e| e.mode);
            Plateau {
                factor: p.factor,
                patience: p.patience,
                threshold: p.threshold,
                cooldown: p.cooldown,
                min_factor: p.min_factor,
                ..Plateau::new(mode)
            }
        });
        Ok(Trainer {
            optimizer: Optimizer::new(cfg.optimizer.clone())?,
            state: TrainState {
                plateau,
                ..TrainState::default()
            },
            lr: cfg.optimizer.lr,
            pending_best: None,
            last_write: None,
            cfg,
        })
    }

    /// Restores a trainer and `model` from a resumable checkpoint written by [`Trainer::run`].
    pub fn resume<M: Module>(dir: &Path, model: &mut M) -> Result<Self> {
        let ck = checkpoint::load(dir)?;
        let bad = |reason: String| TrainError::Checkpoint {
            path: dir.display().to_string(),
            reason,
        };
        let cfg: TrainConfig =
            serde_json::from_value(ck.training.clone()).map_err(|e| bad(format!("training config: {e}")))?;
        let state: TrainState =
            serde_json::from_value(ck.state.clone()).map_err(|e| bad(format!("trainer state: {e}")))?;
        let step: u64 = ck.state.get("optimizer_step").and_then(Value::as_u64).unwrap_or(0);
        model.load_named(&ck.tensors).map_err(|e| bad(e.to_string()))?;
        let mut t = Trainer::new(cfg)?;
        let sizes: Vec<usize> = model.buffers().iter().map(|(_, b)| b.as_slice().len()).collect();
        let opt = ck.optimizer.unwrap_or_default();
        t.optimizer
            .load_state(step, &opt, &sizes)
            .map_err(|e| bad(e.to_string()))?;
        t.state = state;
        Ok(t)
    }

    /// The settings.
    pub fn config(&self) -> &TrainConfig {
        &self.cfg
    }

    /// Changes the update budget (e.g. to continue a resumed run past its old budget).
    pub fn set_max_steps(&mut self, max_steps: Option<u64>) {
        self.cfg.max_steps = max_steps;
    }

    /// The optimizer (for inspection).
    pub fn optimizer(&self) -> &Optimizer {
        &self.optimizer
    }

    /// The state.
    pub fn state(&self) -> &TrainState {
        &self.state
    }

    /// Batches of epoch `epoch` (0-based): shuffled; with bucketing, pools of 32 batches are
    /// sorted by length before being cut, then the batches are shuffled.
    fn epoch_batches<D: Dataset>(&self, data: &D, epoch: usize) -> Vec<Vec<usize>> {
        let mut rng = derived_rng(self.cfg.seed, 1, epoch as u64);
        let mut idx: Vec<usize> = (0..data.len()).collect();
        idx.shuffle(&mut rng);
        let b = self.cfg.batch_size;
        if self.cfg.bucketing {
            for pool in idx.chunks_mut(b * 32) {
                pool.sort_by_key(|&i| data.seq_len(i));
            }
        }
        let mut batches: Vec<Vec<usize>> = idx.chunks(b).map(<[usize]>::to_vec).collect();
        if self.cfg.bucketing {
            batches.shuffle(&mut rng);
        }
        batches
    }

    fn total_steps<D: Dataset>(&self, data: &D) -> u64 {
        (self.cfg.epochs * data.len().div_ceil(self.cfg.batch_size)) as u64
    }

    fn save<M: Module>(
        &self,
        plan: &CheckpointPlan,
        dir: &Path,
        model: &M,
        metrics: Value,
        with_optimizer: bool,
    ) -> Result<()> {
        self.save_tensors(plan, dir, model.named_tensors(), metrics, with_optimizer)
    }

    fn save_tensors(
        &self,
        plan: &CheckpointPlan,
        dir: &Path,
        tensors: crate::params::NamedTensors,
        metrics: Value,
        with_optimizer: bool,
    ) -> Result<()> {
        let (opt_step, opt_state) = self.optimizer.state();
        let mut state = serde_json::to_value(&self.state).expect("state serializes");
        state["optimizer_step"] = json!(opt_step);
        checkpoint::save(
            dir,
            &Checkpoint {
                kind: plan.kind.clone(),
                model: plan.model.clone(),
                training: serde_json::to_value(&self.cfg).expect("config serializes"),
                metrics,
                preprocessing: plan.preprocessing.clone(),
                state,
                tensors,
                optimizer: with_optimizer.then_some(opt_state),
            },
        )
    }

    /// Loss and gradients of one batch, on `threads` shards in parallel when configured. Shard
    /// `k` of update `s` draws its dropout masks from `(seed, s, k)`, so a run is reproducible
    /// for a given thread count.
    fn batch_grads<M, D>(&self, model: &M, data: &D, indices: &[usize]) -> Result<(f64, Vec<ParamBuffer<f32>>)>
    where
        M: Trainable + Sync,
        D: Dataset<Batch = M::Batch> + Sync,
        M::Batch: Send,
    {
        let threads = self.cfg.threads.clamp(1, indices.len().max(1));
        if threads == 1 {
            let batch = data.batch(indices)?;
            let mut rng = derived_rng(self.cfg.seed, 2, self.state.step);
            return model.loss_and_grads(&batch, &mut rng);
        }
        let chunk = indices.len().div_ceil(threads);
        let step = self.state.step;
        let seed = self.cfg.seed;
        let results: Vec<Result<Shard>> = std::thread::scope(|scope| {
            let handles: Vec<_> = indices
                .chunks(chunk)
                .enumerate()
                .map(|(k, part)| {
                    scope.spawn(move || {
                        let batch = data.batch(part)?;
                        let mut rng = derived_rng(seed, 3 + k as u64, step);
                        let w = model.normalizer(&batch);
                        let (loss, grads) = model.loss_and_grads(&batch, &mut rng)?;
                        Ok((loss, w, grads))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("training shard panicked"))
                .collect()
        });
        let mut parts = Vec::with_capacity(results.len());
        for r in results {
            parts.push(r?);
        }
        let total: f64 = parts.iter().map(|p| p.1).sum();
        let mut loss = 0.0;
        let mut grads: Option<Vec<ParamBuffer<f32>>> = None;
        for (l, w, g) in parts {
            let f = if total > 0.0 { w / total } else { 0.0 };
            loss += l * f;
            match &mut grads {
                None => {
                    let mut g = g;
                    for b in &mut g {
                        b.as_mut_slice().iter_mut().for_each(|v| *v *= f as f32);
                    }
                    grads = Some(g);
                }
                Some(acc) => {
                    for (a, b) in acc.iter_mut().zip(&g) {
                        for (x, y) in a.as_mut_slice().iter_mut().zip(b.as_slice()) {
                            *x += *y * f as f32;
                        }
                    }
                }
            }
        }
        Ok((loss, grads.expect("at least one shard")))
    }

    /// Writes the best weights kept in memory, if any.
    fn flush_best(&mut self, plan: &CheckpointPlan) -> Result<()> {
        if let Some((tensors, metrics)) = self.pending_best.take() {
            self.save_tensors(plan, &plan.best_dir, tensors, metrics, false)?;
        }
        Ok(())
    }

    /// Trains until the epochs are done, early stopping triggers or `max_steps` is reached.
    /// `evaluate` scores the model on validation data after each epoch (an empty map when
    /// there is none); `on_epoch` receives each epoch's record (for logs and progress).
    pub fn run<M, D>(
        &mut self,
        model: &mut M,
        data: &D,
        plan: Option<&CheckpointPlan>,
        evaluate: &mut dyn FnMut(&M) -> Result<BTreeMap<String, f64>>,
        on_epoch: &mut dyn FnMut(&EpochRecord),
    ) -> Result<Stop>
    where
        M: Trainable + Sync,
        D: Dataset<Batch = M::Batch> + Sync,
        M::Batch: Send,
    {
        if data.is_empty() {
            return Err(TrainError::Invalid("the training set is empty".into()));
        }
        if self.state.finished {
            return Ok(Stop::Epochs);
        }
        if let Some(p) = plan {
            if self.state.step == 0 && !checkpoint::is_checkpoint(&p.last_dir) {
                self.save(p, &p.last_dir, model, json!({}), true)?;
            }
        }
        let total = self.total_steps(data);
        let clip = self.cfg.clip_norm.map(|c| c as f32);
        while self.state.epoch < self.cfg.epochs {
            let started = Instant::now();
            let batches = self.epoch_batches(data, self.state.epoch);
            while self.state.batch_in_epoch < batches.len() {
                if self.cfg.max_steps.is_some_and(|m| self.state.step >= m) {
                    if let Some(p) = plan {
                        self.flush_best(p)?;
                        self.save(p, &p.last_dir, model, json!({}), true)?;
                    }
                    return Ok(Stop::MaxSteps);
                }
                let (loss, mut grads) = self.batch_grads(model, data, &batches[self.state.batch_in_epoch])?;
                let step = self.state.step;
                self.state.step += 1;
                self.state.batch_in_epoch += 1;
                let norm = {
                    let mut views: Vec<&mut [f32]> = grads.iter_mut().map(|g| g.as_mut_slice()).collect();
                    match clip {
                        Some(c) => clip_grad_norm(&mut views, c),
                        None => crate::clip::global_norm(views.iter().map(|v| &**v)),
                    }
                };
                if !(loss.is_finite() && norm.is_finite()) {
                    self.state.skipped_steps += 1;
                    self.state.consecutive_bad += 1;
                    if self.state.consecutive_bad >= self.cfg.max_bad_steps {
                        if let Some(p) = plan {
                            self.flush_best(p)?;
                        }
                        return Err(TrainError::Diverged {
                            consecutive: self.state.consecutive_bad,
                            step,
                        });
                    }
                    continue;
                }
                self.state.consecutive_bad = 0;
                self.state.epoch_loss.0 += loss;
                self.state.epoch_loss.1 += 1;
                let scale = self.state.plateau.as_ref().map_or(1.0, |p| p.scale);
                self.lr = self.cfg.optimizer.lr * self.cfg.schedule.factor(self.optimizer.steps(), total) * scale;
                let mut params = model.buffers_mut();
                let mut pviews: Vec<&mut [f32]> = params.iter_mut().map(|p| p.as_mut_slice()).collect();
                let gviews: Vec<&[f32]> = grads.iter().map(|g| g.as_slice()).collect();
                self.optimizer.step(self.lr, &mut pviews, &gviews);
            }
            // End of epoch.
            let val = evaluate(model)?;
            let (sum, n) = self.state.epoch_loss;
            let train_loss = if n > 0 { sum / n as f64 } else { f64::NAN };
            self.state.epoch += 1;
            self.state.batch_in_epoch = 0;
            self.state.epoch_loss = (0.0, 0);
            let mut is_best = true;
            let mut stop = false;
            if let Some(es) = &self.cfg.early_stopping {
                let m = *val.get(&es.metric).ok_or_else(|| {
                    TrainError::config(
                        "training.early_stopping.metric",
                        format!(
                            "the evaluation has no metric `{}` (it has {:?})",
                            es.metric,
                            val.keys().collect::<Vec<_>>()
                        ),
                    )
                })?;
                is_best = match self.state.best {
                    None => m.is_finite(),
                    Some(b) => match es.mode {
                        Mode::Max => m > b + es.min_delta,
                        Mode::Min => m < b - es.min_delta,
                    },
                };
                if is_best {
                    self.state.best = Some(m);
                    self.state.best_epoch = Some(self.state.epoch);
                    self.state.since_best = 0;
                } else {
                    self.state.since_best += 1;
                    stop = self.state.since_best > es.patience;
                }
                if let Some(p) = &mut self.state.plateau {
                    p.observe(m);
                }
            } else {
                self.state.best_epoch = Some(self.state.epoch);
            }
            if stop || self.state.epoch == self.cfg.epochs {
                self.state.finished = true;
            }
            let record = EpochRecord {
                epoch: self.state.epoch,
                step: self.state.step,
                lr: self.lr,
                train_loss,
                skipped_steps: self.state.skipped_steps,
                val,
                is_best,
                seconds: started.elapsed().as_secs_f64(),
            };
            if let Some(p) = plan {
                let metrics = serde_json::to_value(&record).expect("record serializes");
                let finite = model
                    .buffers()
                    .iter()
                    .all(|(_, b)| b.as_slice().iter().all(|v| v.is_finite()));
                if !finite {
                    return Err(TrainError::Diverged {
                        consecutive: self.state.consecutive_bad,
                        step: self.state.step,
                    });
                }
                if is_best {
                    self.pending_best = Some((model.named_tensors(), metrics.clone()));
                }
                let due = self
                    .last_write
                    .is_none_or(|t| t.elapsed().as_secs_f64() >= self.cfg.checkpoint_interval_secs);
                if due || self.state.finished {
                    self.flush_best(p)?;
                    self.save(p, &p.last_dir, model, metrics, true)?;
                    self.last_write = Some(Instant::now());
                }
            }
            on_epoch(&record);
            if stop {
                return Ok(Stop::EarlyStop);
            }
        }
        Ok(Stop::Epochs)
    }
}
