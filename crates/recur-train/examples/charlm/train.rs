//! The `charlm` example's training loop: fresh, `--init` (warm restart) or `--resume`
//! (bit-exact continuation), per-epoch evaluation and resumable checkpoints, the time budget
//! and `--stop-after`.

use std::collections::VecDeque;
use std::error::Error;
use std::path::Path;
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use recur_train::models::charlm::{CharLm, CharLmTrainer, CharVocab, EpochStats, Eval};
use recur_train::{Module, NamedTensors};
use serde_json::{json, Value};

use crate::args::Args;
use crate::heldout::Heldout;

/// The settings that define a training run (stored in checkpoints and the result line).
pub fn settings(args: &Args) -> Value {
    json!({
        "text": args.text,
        "model": args.model,
        "init": args.init,
        "train": args.train,
        "seed": args.seed,
        "eval_streams": args.eval_streams,
        "holdout": args.holdout,
        "max_chars": args.max_chars,
        "steps": args.steps,
        "time_budget": args.time_budget,
        "temperature": args.temperature,
        "prime": args.prime,
    })
}

/// Writes `model` to `dir` with the run's settings, `metrics` and, for a resumable checkpoint,
/// the trainer's resume state (`state` JSON and optimizer tensors).
fn save(
    dir: &str,
    args: &Args,
    model: &CharLm,
    metrics: Value,
    resume: Option<(Value, NamedTensors)>,
) -> Result<(), Box<dyn Error>> {
    let mut ckpt = model.to_checkpoint(settings(args), metrics)?;
    // How the text was prepared before encoding (see `run`).
    ckpt.preprocessing["text"] = json!({"strip_bom": true, "crlf_to_lf": true, "holdout": args.holdout});
    if let Some((state, tensors)) = resume {
        ckpt.state = state;
        ckpt.optimizer = Some(tensors);
    }
    recur_train::checkpoint::save(Path::new(dir), &ckpt)?;
    Ok(())
}

/// What [`train`] returns: the model, its last epoch's statistics, and
/// the updates and epochs done.
pub struct Trained {
    pub model: CharLm,
    pub stats: EpochStats,
    /// The returned model's per-character held-out losses (from its last evaluation).
    pub losses: Vec<f64>,
    pub updates: u64,
    pub epochs: usize,
    /// Whether the run reached its length (not stopped by `--stop-after`).
    pub finished: bool,
}

/// Where a run starts.
pub enum Start {
    /// A fresh model from `--seed`.
    Fresh,
    /// `--init DIR`: that checkpoint's weights, a fresh optimizer and schedule.
    Init(CharLm),
    /// `--resume DIR`: that checkpoint's model and its saved trainer state.
    Resume {
        dir: String,
        model: CharLm,
        state: Value,
        tensors: NamedTensors,
    },
}

/// Trains a model per `args` from `start` on `train_ids`, evaluating on the held-out text
/// after every epoch and saving to `--save` after every epoch (a resumable checkpoint, so an
/// interrupted or `--stop-after` run keeps its latest model and can be resumed).
pub fn train(
    args: &Args,
    start: Start,
    vocab: CharVocab,
    train_ids: &[usize],
    heldout: &Heldout,
) -> Result<Trained, Box<dyn Error>> {
    let used = &train_ids[..args.max_chars.unwrap_or(usize::MAX).min(train_ids.len())];
    let mut init_rng = ChaCha8Rng::seed_from_u64(args.seed);
    let fresh_rng = || ChaCha8Rng::seed_from_u64(args.seed.wrapping_add(1));
    let check_vocab = |m: &CharLm, what: &str| -> Result<(), Box<dyn Error>> {
        if *m.vocab() != vocab {
            return Err(format!("{what}: the checkpoint's vocabulary differs from this text's training split").into());
        }
        Ok(())
    };
    let resumed = matches!(start, Start::Resume { .. });
    let (mut model, mut trainer, mut drop_rng, mut epoch) = match start {
        Start::Init(m) => {
            let dir = args.init.as_deref().unwrap_or("--init");
            check_vocab(&m, &format!("--init {dir}"))?;
            eprintln!("training continues from {dir} (fresh optimizer and schedule)");
            let t = CharLmTrainer::new(args.train.clone(), used.len())?;
            (m, t, fresh_rng(), 0)
        }
        Start::Fresh => {
            let m = CharLm::new(args.model.clone(), vocab.clone(), &mut init_rng)?;
            let t = CharLmTrainer::new(args.train.clone(), used.len())?;
            (m, t, fresh_rng(), 0)
        }
        Start::Resume {
            dir,
            mut model,
            state,
            tensors,
        } => {
            check_vocab(&model, &format!("--resume {dir}"))?;
            let trainer_state = state.get("trainer").cloned().unwrap_or(Value::Null);
            let (t, r) = CharLmTrainer::resume(args.train.clone(), used.len(), &trainer_state, &tensors, &mut model)
                .map_err(|e| format!("--resume {dir}: {e}"))?;
            let epoch = state.get("epoch").and_then(Value::as_u64).unwrap_or(0) as usize;
            eprintln!(
                "resuming {dir} after epoch {epoch}: update {} of {}, same schedule, optimizer state and random stream",
                t.steps(),
                t.total_steps()
            );
            (model, t, r, epoch)
        }
    };
    let per_epoch = args.train.steps_per_epoch(used.len());
    let (e, h, l, v) = (
        args.model.embed_dim as f64,
        args.model.hidden_size as f64,
        args.model.num_layers as f64,
        model.vocab().len() as f64,
    );
    let g = args.model.cell.gates() as f64;
    // Multiply-adds per character: input and recurrent projections, head; backward ≈ 2×.
    let fwd = g * h * (e + h) + (l - 1.0) * g * h * 2.0 * h + h * v;
    eprintln!(
        "model: {} params; ≈{:.1} MFLOP per training character (fwd+bwd); {} updates per epoch of {}×{} characters",
        model.num_params(),
        6.0 * fwd / 1e6,
        per_epoch,
        args.train.batch,
        args.train.bptt
    );
    if let (Some(n), false) = (args.steps, resumed) {
        trainer.set_total_steps(n);
    }
    // Time budget: the run's length (and so the schedule) is refitted every 50 updates to the
    // recent speed, so that training, the per-epoch evaluations and the final evaluation end
    // within the budget, counted from the program's start.
    let test_chars = heldout.ids.len() as f64;
    let chunk_chars = (args.train.batch * args.train.bptt) as f64;
    let mut eval_secs = 0.0f64;
    let mut recent: VecDeque<(u64, Instant)> = VecDeque::new();
    let mut last = None;
    let averaging = args.train.average_from.is_some();
    // A resumed run keeps the saved length: no refits to a new budget.
    let time_budget = if resumed { None } else { args.time_budget };
    while !trainer.finished() {
        epoch += 1;
        let t0 = Instant::now();
        let log_every = args.log_every;
        let (budget, start, evals_so_far) = (time_budget, args.started, eval_secs);
        let recent = &mut recent;
        let stats = trainer.train_epoch_with(&mut model, used, &mut drop_rng, |s| {
            if log_every > 0 && (s.epoch_step + 1) % log_every == 0 {
                eprintln!(
                    "  epoch {epoch} step {}/{}: loss {:.4} ({:.3} bpc), |g| {:.3}, lr {:.2e}, {:.0} s",
                    s.epoch_step + 1,
                    s.steps_per_epoch,
                    s.loss,
                    s.loss / std::f64::consts::LN_2,
                    s.grad_norm,
                    s.lr,
                    t0.elapsed().as_secs_f64()
                );
            }
            let budget = budget?;
            let done = s.step + 1;
            recent.push_back((done, Instant::now()));
            if recent.len() > 300 {
                recent.pop_front();
            }
            if done < 50 || done % 50 != 0 {
                return None;
            }
            let (n0, t0) = recent[0];
            let per_step = if done > n0 {
                t0.elapsed().as_secs_f64() / (done - n0) as f64
            } else {
                start.elapsed().as_secs_f64() / done as f64
            };
            // Forward-only evaluation of the held-out text ≈ half the cost per character of
            // a training update (batch 8 is less efficient than the training batch).
            // With iterate averaging, the average is evaluated too.
            let evals = if averaging { 2.0 } else { 1.0 };
            let eval_t = evals * 0.5 * per_step * test_chars / chunk_chars;
            let left = budget - start.elapsed().as_secs_f64() - 2.0 * eval_t - 15.0;
            let mut extra = (left / per_step).max(0.0);
            for _ in 0..3 {
                let epochs_left = ((done as f64 + extra) / per_epoch as f64).ceil() - (done / per_epoch as u64) as f64;
                extra = ((left - epochs_left * eval_t) / per_step).max(0.0);
            }
            let total = done + extra as u64;
            if done % 500 == 0 || extra < 1.0 {
                eprintln!(
                    "  time budget: {:.2} s per update, {:.0} s evaluating so far, {} s left → {total} updates in all",
                    per_step,
                    evals_so_far,
                    left.round()
                );
            }
            Some(total)
        })?;
        let t1 = Instant::now();
        let losses = heldout.losses(&model, args.eval_streams)?;
        let ev = Eval::from_losses(&losses);
        eval_secs += t1.elapsed().as_secs_f64();
        eprintln!(
            "epoch {epoch}: train loss {:.4} ({:.3} bpc, {} updates), held-out {:.3} bpc, {:.0} chars/s training ({:.0} s), eval {:.0} s; {}/{} updates",
            stats.loss,
            stats.loss / std::f64::consts::LN_2,
            stats.steps,
            ev.bpc,
            stats.chars as f64 / stats.seconds,
            stats.seconds,
            t1.elapsed().as_secs_f64(),
            trainer.steps(),
            trainer.total_steps()
        );
        // With `--average-from`, the run's model is the iterate average once it exists (the
        // last iterate's figure is logged beside it).
        let avg = match trainer.averaged(&model)? {
            Some(m) => {
                let t2 = Instant::now();
                let losses_avg = heldout.losses(&m, args.eval_streams)?;
                let ev_avg = Eval::from_losses(&losses_avg);
                eval_secs += t2.elapsed().as_secs_f64();
                eprintln!(
                    "epoch {epoch}: iterate average of the last {} updates: held-out {:.3} bpc (last iterate {:.3}), eval {:.0} s",
                    trainer.averaged_updates(),
                    ev_avg.bpc,
                    ev.bpc,
                    t2.elapsed().as_secs_f64()
                );
                Some((m, ev_avg, losses_avg))
            }
            None => None,
        };
        let (best_model, best_ev) = match &avg {
            Some((m, e, _)) => (m, *e),
            None => (&model, ev),
        };
        if let Some(dir) = &args.save {
            let metrics = json!({"epoch": epoch, "updates": trainer.steps(), "heldout_bpc": best_ev.bpc, "heldout_chars": best_ev.chars, "train_loss": stats.loss, "averaged_updates": trainer.averaged_updates(), "last_iterate_heldout_bpc": ev.bpc});
            let mut state = json!({"epoch": epoch});
            let (trainer_state, tensors) = trainer.resume_state(&model, &drop_rng);
            state["trainer"] = trainer_state;
            save(dir, args, best_model, metrics, Some((state, tensors)))?;
            eprintln!("saved to {dir}");
        }
        let epoch_secs = t0.elapsed().as_secs_f64();
        last = Some(match avg {
            Some((m, _, l)) => (stats, Some(m), l),
            None => (stats, None, losses),
        });
        // `--stop-after`: stop between epochs when another one (and the final evaluation)
        // would end past the limit; the saved checkpoint resumes the run.
        if let Some(limit) = args.stop_after {
            let eval_t = t1.elapsed().as_secs_f64();
            if !trainer.finished() && args.started.elapsed().as_secs_f64() + epoch_secs + eval_t > limit {
                eprintln!(
                    "stopping after epoch {epoch} (update {} of {}): another epoch would end past --stop-after {limit} s{}",
                    trainer.steps(),
                    trainer.total_steps(),
                    match &args.save {
                        Some(dir) => format!("; continue with --resume {dir}"),
                        None => " (no --save, so it cannot be resumed)".into(),
                    }
                );
                break;
            }
        }
    }
    eprintln!(
        "trained {} of {} updates, {epoch} epochs",
        trainer.steps(),
        trainer.total_steps()
    );
    let (stats, avg, losses) = last.ok_or("no epochs were run")?;
    Ok(Trained {
        model: avg.unwrap_or(model),
        stats,
        losses,
        updates: trainer.steps(),
        epochs: epoch,
        finished: trainer.finished(),
    })
}
