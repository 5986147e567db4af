//! Resuming a [`CharLmTrainer`] run after any epoch, bit for bit: the trainer's settings,
//! update count and run length, the optimizer's moments, the iterate average and the position
//! of the dropout generator go into a checkpoint's `state` and `optimizer` parts, and
//! [`CharLmTrainer::resume`] rebuilds exactly the trainer and generator the uninterrupted run
//! had. Training N epochs, stopping and resuming for M more gives the weights of N + M epochs
//! in one run (same thread count), and a run can so span several sessions under one schedule.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use super::train::{CharLmTrainConfig, CharLmTrainer};
use super::CharLm;
use crate::error::{Result, TrainError};
use crate::optim::Optimizer;
use crate::params::{Module, NamedTensors, ParamAverage};

/// Prefix of the iterate-average tensors in a resume state.
const AVERAGE: &str = "average";
/// Prefix of the last iterate's weights in a resume state (kept only when averaging, because
/// the checkpoint's weights are then the average).
const ITERATE: &str = "iterate";

fn bad(what: impl Into<String>) -> TrainError {
    TrainError::Invalid(format!("resume state: {}", what.into()))
}

impl CharLmTrainer {
    /// The state to resume this run from, taken between epochs: `json` (for a checkpoint's
    /// `state`) holds the settings, the update count, the run length and the position of
    /// `rng`, the dropout generator given to [`CharLmTrainer::train_epoch`]; `tensors` (for
    /// its `optimizer` part) hold the optimizer's moments and, with iterate averaging, the
    /// running sums and `model`'s own weights (the iterate, since the checkpoint then stores
    /// the average as the model).
    pub fn resume_state(&self, model: &CharLm, rng: &ChaCha8Rng) -> (Value, NamedTensors) {
        let (optimizer_step, mut tensors) = self.optim.state();
        if let Some(avg) = &self.average {
            tensors.extend(avg.to_tensors(AVERAGE));
            tensors.extend(
                model
                    .named_tensors()
                    .into_iter()
                    .map(|(k, v)| (format!("{ITERATE}.{k}"), v)),
            );
        }
        let seed: String = rng.get_seed().iter().map(|b| format!("{b:02x}")).collect();
        let json = json!({
            "config": self.cfg,
            "step": self.step,
            "total_steps": self.total_steps,
            "optimizer_step": optimizer_step,
            "averaged": self.average.is_some(),
            "rng": {"seed": seed, "stream": rng.get_stream(), "word_pos": rng.get_word_pos().to_string()},
        });
        (json, tensors)
    }

    /// The trainer and dropout generator saved by [`CharLmTrainer::resume_state`], for
    /// `train_chars` training characters. `cfg` must equal the saved settings. `model` is the
    /// checkpoint's model; when the run averages iterates, its weights (the average) are
    /// replaced by the saved iterate. Only states saved at the end of an epoch (or of the
    /// run) can be resumed.
    pub fn resume(
        cfg: CharLmTrainConfig,
        train_chars: usize,
        state: &Value,
        tensors: &NamedTensors,
        model: &mut CharLm,
    ) -> Result<(Self, ChaCha8Rng)> {
        let saved: CharLmTrainConfig = serde_json::from_value(state.get("config").cloned().unwrap_or(Value::Null))
            .map_err(|e| bad(format!("config: {e}")))?;
        if saved != cfg {
            return Err(bad(format!(
                "the training settings differ from the saved ones: saved {}, given {}",
                json!(saved),
                json!(cfg)
            )));
        }
        let num = |key: &str| {
            state
                .get(key)
                .and_then(Value::as_u64)
                .ok_or_else(|| bad(format!("`{key}` is missing or not a count")))
        };
        let (step, total_steps, optimizer_step) = (num("step")?, num("total_steps")?, num("optimizer_step")?);
        let mut t = CharLmTrainer::new(cfg, train_chars)?;
        let per_epoch = t.cfg.steps_per_epoch(train_chars) as u64;
        if step % per_epoch != 0 && step < total_steps {
            return Err(bad(format!(
                "saved after update {step}, inside an epoch of {per_epoch} updates; only epoch ends can be resumed"
            )));
        }
        if state.get("averaged").and_then(Value::as_bool).unwrap_or(false) {
            let iterate: NamedTensors = tensors
                .iter()
                .filter_map(|(k, v)| {
                    k.strip_prefix(&format!("{ITERATE}."))
                        .map(|k| (k.to_string(), v.clone()))
                })
                .collect();
            model
                .load_named(&iterate)
                .map_err(|e| bad(format!("iterate weights: {e}")))?;
            t.average = Some(ParamAverage::from_tensors(tensors, AVERAGE, model)?);
        }
        let sizes: Vec<usize> = model.buffers().iter().map(|(_, b)| b.as_slice().len()).collect();
        t.optim = Optimizer::new(t.cfg.optimizer.clone())?;
        t.optim.load_state(optimizer_step, tensors, &sizes)?;
        t.step = step;
        t.total_steps = total_steps;
        let rng = state.get("rng").ok_or_else(|| bad("`rng` is missing"))?;
        let hex = rng.get("seed").and_then(Value::as_str).unwrap_or("");
        let mut seed = [0u8; 32];
        if hex.len() != 64 || !hex.is_ascii() {
            return Err(bad("`rng.seed` is not 64 hex digits"));
        }
        for (i, b) in seed.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad("`rng.seed` is not 64 hex digits"))?;
        }
        let stream = rng
            .get("stream")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad("`rng.stream` is missing"))?;
        let word_pos: u128 = rng
            .get("word_pos")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("`rng.word_pos` is missing or not a number"))?;
        let mut r = ChaCha8Rng::from_seed(seed);
        r.set_stream(stream);
        r.set_word_pos(word_pos);
        Ok((t, r))
    }
}
