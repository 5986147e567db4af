//! Truncated-BPTT training of a [`CharLm`] over contiguous streams: the settings, the
//! trainer (optimizer state, schedule, step count) and the shards that split the streams over
//! threads.

use std::ops::Range;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{CharLm, Chunk, LmState, StepOut};
use crate::clip::clip_grad_norm;
use crate::error::{Result, TrainError};
use crate::optim::{Optimizer, OptimizerConfig, OptimizerKind};
use crate::params::{Module, ParamAverage};
use crate::schedule::{Decay, ScheduleConfig};

/// Training settings for [`CharLmTrainer`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CharLmTrainConfig {
    /// Parallel streams per update.
    pub batch: usize,
    /// Truncated-BPTT chunk length (steps per update).
    pub bptt: usize,
    /// Passes over the training text (used for the schedule's length).
    pub epochs: usize,
    /// Clip the global gradient norm to this (0 = no clipping).
    pub clip: f32,
    /// Optimizer (Adam or AdamW recommended).
    pub optimizer: OptimizerConfig,
    /// Learning-rate schedule; a linear or cosine decay without `total_steps` spans the whole
    /// run (`epochs` × updates per epoch).
    pub schedule: ScheduleConfig,
    /// Consecutive non-finite losses or gradients (each skipped, the state reset) before
    /// training stops with [`TrainError::Diverged`].
    pub max_bad_steps: usize,
    /// Threads per update: the streams are split into this many contiguous shards, each
    /// carrying its own state and computed on its own thread, and the shard gradients are
    /// averaged by stream count. 1 (the default) runs on the calling thread and draws the
    /// dropout masks from the trainer's RNG directly; with more, shard `k` of an update draws
    /// them from a generator seeded by the `k`-th value the trainer's RNG gives for that
    /// update, so a run is reproducible for a given thread count.
    pub threads: usize,
    /// Iterate averaging: from this fraction of the run's updates on (of
    /// [`CharLmTrainer::total_steps`] as it stands at each update), the weights after every
    /// update are added to a running mean, which [`CharLmTrainer::averaged`] returns as a
    /// model (Polyak averaging over the tail of the decay, as in ASGD or SWA). `None` (the
    /// default) keeps no average.
    pub average_from: Option<f64>,
    /// DropConnect on the recurrent matrices (AWD-LSTM's weight drop, Merity et al. 2018):
    /// for every update, each element of every `weight_hh_l*` is zeroed with this
    /// probability and the rest scaled by `1/(1 − p)`; the update's forward and backward run
    /// with those weights (one mask for all streams and time steps), the gradient reaches the
    /// kept elements through the mask, and the unmasked weights are restored before the
    /// optimizer step. Evaluation always uses the full weights. 0 (the default) is off.
    pub weight_drop: f64,
}

impl Default for CharLmTrainConfig {
    fn default() -> Self {
        CharLmTrainConfig {
            batch: 16,
            bptt: 100,
            epochs: 1,
            clip: 1.0,
            optimizer: OptimizerConfig {
                kind: OptimizerKind::Adam,
                lr: 3e-3,
                ..OptimizerConfig::default()
            },
            schedule: ScheduleConfig {
                warmup_steps: 100,
                decay: Decay::Cosine,
                min_factor: 0.05,
                ..ScheduleConfig::default()
            },
            max_bad_steps: 5,
            threads: 1,
            average_from: None,
            weight_drop: 0.0,
        }
    }
}

impl CharLmTrainConfig {
    /// Checks every field; errors name the field as `train.<field>` (or `optimizer.*`,
    /// `schedule.*`).
    pub fn validate(&self) -> Result<()> {
        if self.batch == 0 {
            return Err(TrainError::config("train.batch", "must be at least 1"));
        }
        if self.bptt == 0 {
            return Err(TrainError::config("train.bptt", "must be at least 1"));
        }
        if self.epochs == 0 {
            return Err(TrainError::config("train.epochs", "must be at least 1"));
        }
        if !(self.clip.is_finite() && self.clip >= 0.0) {
            return Err(TrainError::config(
                "train.clip",
                format!("must be a finite number ≥ 0, got {}", self.clip),
            ));
        }
        if self.max_bad_steps == 0 {
            return Err(TrainError::config("train.max_bad_steps", "must be at least 1"));
        }
        if self.threads == 0 || self.threads > self.batch {
            return Err(TrainError::config(
                "train.threads",
                format!(
                    "must be in 1..={} (the streams per update), got {}",
                    self.batch, self.threads
                ),
            ));
        }
        if let Some(f) = self.average_from {
            if !(f.is_finite() && (0.0..1.0).contains(&f)) {
                return Err(TrainError::config(
                    "train.average_from",
                    format!("must be a fraction in [0, 1), got {f}"),
                ));
            }
        }
        if !(self.weight_drop.is_finite() && (0.0..1.0).contains(&self.weight_drop)) {
            return Err(TrainError::config(
                "train.weight_drop",
                format!("must be a probability in [0, 1), got {}", self.weight_drop),
            ));
        }
        self.optimizer.validate()?;
        self.schedule.validate()
    }

    /// Steps per stream (`⌊(n − 1) / batch⌋`) for `n` training characters.
    pub fn stream_len(&self, n: usize) -> usize {
        n.saturating_sub(1) / self.batch.max(1)
    }

    /// Updates per epoch over `n` training characters.
    pub fn steps_per_epoch(&self, n: usize) -> usize {
        self.stream_len(n).div_ceil(self.bptt.max(1))
    }
}

/// What one update did, passed to the progress callback.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepInfo {
    /// Global update index (0-based).
    pub step: u64,
    /// Update index within the epoch.
    pub epoch_step: usize,
    /// Updates per epoch.
    pub steps_per_epoch: usize,
    /// Mean cross-entropy of the chunk (nats).
    pub loss: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f32,
    /// Learning rate used.
    pub lr: f64,
}

/// One epoch's summary.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// Mean training cross-entropy per character (nats), over the updates taken.
    pub loss: f64,
    /// Characters trained on.
    pub chars: usize,
    /// Updates taken (skipped non-finite steps excluded).
    pub steps: usize,
    /// Wall time.
    pub seconds: f64,
}

/// Truncated-BPTT training of a [`CharLm`]: optimizer state, schedule and step count.
#[derive(Clone, Debug)]
pub struct CharLmTrainer {
    pub(super) cfg: CharLmTrainConfig,
    pub(super) optim: Optimizer,
    pub(super) step: u64,
    pub(super) total_steps: u64,
    pub(super) average: Option<ParamAverage>,
    /// Weight drop's buffers, reused across updates: the full recurrent weights and their
    /// masks (`0` or `1/(1 − p)`), concatenated over the `weight_hh_l*` tensors in order.
    dropped_saved: Vec<f32>,
    dropped_mask: Vec<f32>,
}

impl CharLmTrainer {
    /// A trainer for `train_chars` training characters (sets the schedule's length).
    pub fn new(cfg: CharLmTrainConfig, train_chars: usize) -> Result<Self> {
        cfg.validate()?;
        if cfg.stream_len(train_chars) == 0 {
            return Err(TrainError::Invalid(format!(
                "{train_chars} training characters cannot fill {} streams (need at least {})",
                cfg.batch,
                cfg.batch + 1
            )));
        }
        let total_steps = (cfg.epochs * cfg.steps_per_epoch(train_chars)) as u64;
        Ok(CharLmTrainer {
            optim: Optimizer::new(cfg.optimizer.clone())?,
            cfg,
            step: 0,
            total_steps,
            average: None,
            dropped_saved: Vec::new(),
            dropped_mask: Vec::new(),
        })
    }

    /// The iterate average (see [`CharLmTrainConfig::average_from`]) as a copy of `model`
    /// with the mean weights, or `None` while no update has been averaged.
    pub fn averaged(&self, model: &CharLm) -> Result<Option<CharLm>> {
        match &self.average {
            Some(avg) if avg.count() > 0 => {
                let mut m = model.clone();
                avg.write_to(&mut m)?;
                Ok(Some(m))
            }
            _ => Ok(None),
        }
    }

    /// How many updates' weights are in the iterate average.
    pub fn averaged_updates(&self) -> u64 {
        self.average.as_ref().map_or(0, ParamAverage::count)
    }

    /// The settings.
    pub fn config(&self) -> &CharLmTrainConfig {
        &self.cfg
    }

    /// Updates taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// The run's length in updates: the schedule decays over it and training stops there.
    /// `epochs` × updates per epoch unless set with [`CharLmTrainer::set_total_steps`].
    pub fn total_steps(&self) -> u64 {
        self.total_steps
    }

    /// Sets the run's length in updates (at least 1): the schedule spans it and
    /// [`CharLmTrainer::train_epoch`] stops once it is reached, possibly inside an epoch.
    pub fn set_total_steps(&mut self, total: u64) {
        self.total_steps = total.max(1);
    }

    /// Whether the run's length has been reached.
    pub fn finished(&self) -> bool {
        self.step >= self.total_steps
    }

    /// One pass over `ids` (the encoded training text): `batch` contiguous streams, chunks of
    /// `bptt` steps, the state carried (detached) between chunks and zero at the start of the
    /// epoch. Dropout masks are drawn from `rng`. `on_step` sees every update. The pass ends
    /// early when [`CharLmTrainer::total_steps`] is reached.
    pub fn train_epoch(
        &mut self,
        model: &mut CharLm,
        ids: &[usize],
        rng: &mut ChaCha8Rng,
        mut on_step: impl FnMut(&StepInfo),
    ) -> Result<EpochStats> {
        self.train_epoch_with(model, ids, rng, |s| {
            on_step(s);
            None
        })
    }

    /// [`CharLmTrainer::train_epoch`] whose callback may return a new
    /// [`CharLmTrainer::total_steps`] (e.g. fitted to a time budget once the speed is known),
    /// applied from the next update on.
    pub fn train_epoch_with(
        &mut self,
        model: &mut CharLm,
        ids: &[usize],
        rng: &mut ChaCha8Rng,
        mut on_step: impl FnMut(&StepInfo) -> Option<u64>,
    ) -> Result<EpochStats> {
        let started = Instant::now();
        let (b, bptt) = (self.cfg.batch, self.cfg.bptt);
        let len = self.cfg.stream_len(ids.len());
        if len == 0 {
            return Err(TrainError::Invalid(format!(
                "{} training characters cannot fill {b} streams",
                ids.len()
            )));
        }
        model.check_ids("ids", ids)?;
        let per_epoch = self.cfg.steps_per_epoch(ids.len());
        let mut shards = Shard::split(model, b, self.cfg.threads);
        let (mut loss_sum, mut chars, mut steps, mut bad) = (0.0f64, 0usize, 0usize, 0usize);
        for (k, pos) in (0..len).step_by(bptt).enumerate() {
            if self.finished() {
                break;
            }
            let time = bptt.min(len - pos);
            for sh in &mut shards {
                sh.fill(ids, len, pos, time);
            }
            let dropped = self.drop_recurrent_weights(model, rng);
            let mut out = Shard::forward_backward(model, &mut shards, b, time, rng);
            let grads = out.as_mut().ok().map(|o| &mut o.grads[1]);
            self.restore_recurrent_weights(model, &dropped, grads);
            let mut out = out?;
            let norm = {
                let mut gs: Vec<&mut [f32]> = out.grads.iter_mut().map(|g| g.as_mut_slice()).collect();
                if self.cfg.clip > 0.0 {
                    clip_grad_norm(&mut gs, self.cfg.clip)
                } else {
                    crate::clip::global_norm(gs.iter().map(|g| &**g))
                }
            };
            let lr = self.cfg.optimizer.lr * self.cfg.schedule.factor(self.step, self.total_steps);
            if !(out.loss.is_finite() && norm.is_finite()) {
                bad += 1;
                if bad >= self.cfg.max_bad_steps {
                    return Err(TrainError::Diverged {
                        consecutive: bad,
                        step: self.step,
                    });
                }
                shards = Shard::split(model, b, self.cfg.threads);
                continue;
            }
            bad = 0;
            {
                let grads: Vec<&[f32]> = out.grads.iter().map(|g| g.as_slice()).collect();
                let mut params: Vec<&mut [f32]> = model.buffers_mut().into_iter().map(|p| p.as_mut_slice()).collect();
                self.optim.step(lr, &mut params, &grads);
            }
            if let Some(f) = self.cfg.average_from {
                if (self.step + 1) as f64 > f * self.total_steps as f64 {
                    let model: &CharLm = model;
                    self.average
                        .get_or_insert_with(|| ParamAverage::new(model))
                        .add(model)?;
                }
            }
            let total = on_step(&StepInfo {
                step: self.step,
                epoch_step: k,
                steps_per_epoch: per_epoch,
                loss: out.loss,
                grad_norm: norm,
                lr,
            });
            if let Some(t) = total {
                self.set_total_steps(t);
            }
            self.step += 1;
            loss_sum += out.loss * (b * time) as f64;
            chars += b * time;
            steps += 1;
        }
        Ok(EpochStats {
            loss: if chars > 0 { loss_sum / chars as f64 } else { f64::NAN },
            chars,
            steps,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// Weight drop (see [`CharLmTrainConfig::weight_drop`]): masks every `weight_hh_l*` of
    /// `model` in place with a fresh mask drawn from `rng` (element by element, tensors in
    /// registration order), keeping the full weights and the mask. Returns the masked ranges
    /// of the RNN's parameter buffer (none when weight drop is off; `rng` is then untouched).
    fn drop_recurrent_weights(&mut self, model: &mut CharLm, rng: &mut ChaCha8Rng) -> Vec<Range<usize>> {
        let p = self.cfg.weight_drop;
        if p == 0.0 {
            return Vec::new();
        }
        let ranges: Vec<Range<usize>> = model
            .rnn
            .params()
            .specs()
            .iter()
            .filter(|s| s.name.starts_with("weight_hh_l"))
            .map(|s| s.range())
            .collect();
        self.dropped_saved.clear();
        self.dropped_mask.clear();
        let w = model.rnn.params_mut().as_mut_slice();
        for r in &ranges {
            self.dropped_mask
                .extend(recur_nn::inverted_dropout_mask::<f32>(r.len(), p, rng));
            self.dropped_saved.extend_from_slice(&w[r.clone()]);
            let mask = &self.dropped_mask[self.dropped_mask.len() - r.len()..];
            w[r.clone()].iter_mut().zip(mask).for_each(|(v, m)| *v *= m);
        }
        ranges
    }

    /// Undoes [`CharLmTrainer::drop_recurrent_weights`]: the full weights go back (bit for
    /// bit) and `grads` (the RNN's gradient, same layout), if given, is multiplied by the
    /// mask, the chain rule through `W ⊙ m`.
    fn restore_recurrent_weights(
        &self,
        model: &mut CharLm,
        ranges: &[Range<usize>],
        mut grads: Option<&mut recur_nn::ParamBuffer<f32>>,
    ) {
        if ranges.is_empty() {
            return;
        }
        let w = model.rnn.params_mut().as_mut_slice();
        let mut k = 0;
        for r in ranges {
            let n = r.len();
            w[r.clone()].copy_from_slice(&self.dropped_saved[k..k + n]);
            if let Some(g) = grads.as_deref_mut() {
                let g = &mut g.as_mut_slice()[r.clone()];
                g.iter_mut()
                    .zip(&self.dropped_mask[k..k + n])
                    .for_each(|(g, m)| *g *= m);
            }
            k += n;
        }
    }
}

/// A contiguous group of a trainer's streams with its own carried state and chunk buffers
/// (one per [`CharLmTrainConfig::threads`]).
struct Shard {
    /// First stream.
    first: usize,
    /// Streams.
    batch: usize,
    state: LmState,
    inputs: Vec<usize>,
    targets: Vec<usize>,
}

impl Shard {
    /// `b` streams in `threads` contiguous shards (the first `b mod threads` one stream
    /// larger), each from the zero state.
    fn split(model: &CharLm, b: usize, threads: usize) -> Vec<Shard> {
        let t = threads.clamp(1, b.max(1));
        let mut first = 0;
        (0..t)
            .map(|k| {
                let batch = b / t + usize::from(k < b % t);
                let sh = Shard {
                    first,
                    batch,
                    state: model.zero_state(batch),
                    inputs: Vec::new(),
                    targets: Vec::new(),
                };
                first += batch;
                sh
            })
            .collect()
    }

    /// Loads steps `pos .. pos + time` of this shard's streams (stream `s` is
    /// `ids[s·len ..]`).
    fn fill(&mut self, ids: &[usize], len: usize, pos: usize, time: usize) {
        self.inputs.clear();
        self.targets.clear();
        for s in self.first..self.first + self.batch {
            let at = s * len + pos;
            self.inputs.extend_from_slice(&ids[at..at + time]);
            self.targets.extend_from_slice(&ids[at + 1..at + 1 + time]);
        }
    }

    fn chunk(&self, time: usize) -> Chunk<'_> {
        Chunk {
            inputs: &self.inputs,
            targets: &self.targets,
            batch: self.batch,
            time,
        }
    }

    /// One update's loss and gradients over all shards (`b` streams in all), each shard's
    /// state advanced. One shard runs on the calling thread with `rng`; several run on scoped
    /// threads with generators seeded from `rng`, and their losses and gradients are averaged
    /// weighted by stream count (every shard has the same number of steps).
    fn forward_backward(
        model: &CharLm,
        shards: &mut [Shard],
        b: usize,
        time: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<StepOut> {
        if let [sh] = shards {
            let out = model.forward_backward(&sh.chunk(time), &sh.state, Some(rng))?;
            sh.state = out.state.clone();
            return Ok(out);
        }
        let mut rngs: Vec<ChaCha8Rng> = shards
            .iter()
            .map(|_| ChaCha8Rng::seed_from_u64(rng.random::<u64>()))
            .collect();
        let outs: Vec<Result<StepOut>> = std::thread::scope(|scope| {
            let handles: Vec<_> = shards
                .iter()
                .zip(&mut rngs)
                .map(|(sh, r)| scope.spawn(move || model.forward_backward(&sh.chunk(time), &sh.state, Some(r))))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("language-model shard panicked"))
                .collect()
        });
        let mut total: Option<StepOut> = None;
        for (sh, out) in shards.iter_mut().zip(outs) {
            let out = out?;
            let f = sh.batch as f64 / b as f64;
            sh.state = out.state.clone();
            match &mut total {
                None => {
                    let mut t = out;
                    t.loss *= f;
                    for g in &mut t.grads {
                        g.as_mut_slice().iter_mut().for_each(|v| *v *= f as f32);
                    }
                    total = Some(t);
                }
                Some(t) => {
                    t.loss += out.loss * f;
                    for (a, g) in t.grads.iter_mut().zip(&out.grads) {
                        a.as_mut_slice()
                            .iter_mut()
                            .zip(g.as_slice())
                            .for_each(|(a, &g)| *a += g * f as f32);
                    }
                }
            }
        }
        Ok(total.expect("at least one shard"))
    }
}
