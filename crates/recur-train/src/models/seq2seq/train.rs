//! The training loop helper: length-bucketed shuffled batches, one optimizer update per batch
//! with clipping, and a teacher-forced evaluation loss.

use rand::seq::SliceRandom;
use rand::Rng;

use super::{Example, Seq2Seq, TrainSettings};
use crate::clip::clip_grad_norm;
use crate::error::{Result, TrainError};
use crate::optim::Optimizer;
use crate::params::Module;

/// Consecutive non-finite batches after which [`train_epoch`] gives up.
const MAX_BAD_STEPS: usize = 5;

/// What one epoch did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EpochStats {
    /// Mean training NLL per target token (over the batches that were applied).
    pub loss: f64,
    /// Target tokens seen.
    pub tokens: usize,
    /// Optimizer updates made.
    pub updates: usize,
    /// Batches skipped because the loss or the gradient norm was not finite.
    pub skipped: usize,
    /// Mean global gradient norm before clipping.
    pub grad_norm: f64,
    /// Teacher-forcing probability at the last update.
    pub teacher_prob: f64,
}

/// Batches of at most `batch_size` indices into `lengths`, grouping similar lengths: the
/// indices are shuffled, stably sorted by length, cut into batches, and the batch order is
/// shuffled. Everything random comes from `rng`.
pub fn bucket_batches(lengths: &[usize], batch_size: usize, rng: &mut impl Rng) -> Vec<Vec<usize>> {
    let mut idx: Vec<usize> = (0..lengths.len()).collect();
    idx.shuffle(rng);
    idx.sort_by_key(|&i| lengths[i]);
    let mut batches: Vec<Vec<usize>> = idx.chunks(batch_size.max(1)).map(|c| c.to_vec()).collect();
    batches.shuffle(rng);
    batches
}

/// One pass over `data`: [`bucket_batches`] by source length, then per batch
/// [`Seq2Seq::forward_backward`] with the teacher-forcing probability of the optimizer's step
/// count, clipping, and one optimizer step at learning rate `lr(step)` (`step` = the
/// optimizer's step count before the update, e.g. a [`ScheduleConfig`](crate::schedule::ScheduleConfig)
/// factor times the peak rate). A batch with a non-finite
/// loss or gradient norm is skipped; [`TrainError::Diverged`] after 5 in a row.
pub fn train_epoch(
    model: &mut Seq2Seq,
    data: &[Example],
    settings: &TrainSettings,
    optimizer: &mut Optimizer,
    lr: impl Fn(u64) -> f64,
    rng: &mut impl Rng,
) -> Result<EpochStats> {
    settings.validate()?;
    let lengths: Vec<usize> = data.iter().map(|ex| ex.src.len()).collect();
    let mut stats = EpochStats::default();
    let (mut nll, mut norms, mut bad) = (0.0f64, 0.0f64, 0usize);
    for idx in bucket_batches(&lengths, settings.batch_size, rng) {
        let batch: Vec<Example> = idx.iter().map(|&i| data[i].clone()).collect();
        let p = settings.sampling.teacher_prob(optimizer.steps());
        let mut out = model.forward_backward(&batch, p, settings.sample_from, rng)?;
        let mut grads: Vec<&mut [f32]> = out.grads.iter_mut().map(|g| g.as_mut_slice()).collect();
        let norm = match settings.clip_norm {
            Some(c) => clip_grad_norm(&mut grads, c),
            None => crate::clip::global_norm(grads.iter().map(|g| &**g)),
        };
        if !(out.loss.is_finite() && norm.is_finite()) {
            stats.skipped += 1;
            bad += 1;
            if bad >= MAX_BAD_STEPS {
                return Err(TrainError::Diverged {
                    consecutive: bad,
                    step: optimizer.steps(),
                });
            }
            continue;
        }
        bad = 0;
        let grads: Vec<&[f32]> = grads.into_iter().map(|g| &*g).collect();
        let mut params: Vec<&mut [f32]> = model.buffers_mut().into_iter().map(|b| b.as_mut_slice()).collect();
        optimizer.step(lr(optimizer.steps()), &mut params, &grads);
        nll += out.loss * out.tokens as f64;
        norms += norm as f64;
        stats.tokens += out.tokens;
        stats.updates += 1;
        stats.teacher_prob = p;
    }
    if stats.updates > 0 {
        stats.loss = nll / stats.tokens.max(1) as f64;
        stats.grad_norm = norms / stats.updates as f64;
    }
    Ok(stats)
}

/// Mean teacher-forced NLL per target token over `data`, in batches of `batch_size`.
pub fn evaluate_loss(model: &Seq2Seq, data: &[Example], batch_size: usize) -> Result<f64> {
    let (mut nll, mut tokens) = (0.0f64, 0usize);
    for batch in data.chunks(batch_size.max(1)) {
        let (loss, n) = model.loss(batch)?;
        nll += loss * n as f64;
        tokens += n;
    }
    Ok(nll / tokens.max(1) as f64)
}
