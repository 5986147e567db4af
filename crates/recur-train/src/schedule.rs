//! Learning-rate schedules. The step schedules are pure functions of the update index, so a
//! resumed run needs nothing but the step count; reduce-on-plateau reacts to a metric and
//! carries serializable state.

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// The shape of the schedule after warmup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Decay {
    /// Stay at the peak.
    #[default]
    Constant,
    /// Linear from the peak to `min_factor` at `total_steps`.
    Linear,
    /// Half cosine from the peak to `min_factor` at `total_steps`.
    Cosine,
    /// Multiply by `gamma` every `step_size` steps.
    Step,
}

/// A step schedule: linear warmup from `1/warmup_steps` of the peak, then a decay. The factor
/// multiplies the optimizer's `lr`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    /// Warmup updates (0 = none). Update `i < warmup_steps` uses `(i + 1) / warmup_steps`.
    pub warmup_steps: u64,
    /// What follows warmup.
    pub decay: Decay,
    /// End of a linear or cosine decay (updates, including warmup); `None` lets the trainer
    /// use epochs × batches per epoch.
    pub total_steps: Option<u64>,
    /// Factor reached at the end of a linear or cosine decay.
    pub min_factor: f64,
    /// Step decay period (updates).
    pub step_size: u64,
    /// Step decay multiplier.
    pub gamma: f64,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            warmup_steps: 0,
            decay: Decay::Constant,
            total_steps: None,
            min_factor: 0.0,
            step_size: 1000,
            gamma: 0.1,
        }
    }
}

impl ScheduleConfig {
    /// Checks every field; errors name the field as `schedule.<field>`.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.min_factor) {
            return Err(TrainError::config(
                "schedule.min_factor",
                format!("must be in [0, 1], got {}", self.min_factor),
            ));
        }
        if self.decay == Decay::Step {
            if self.step_size == 0 {
                return Err(TrainError::config("schedule.step_size", "must be ≥ 1"));
            }
            if !(self.gamma > 0.0 && self.gamma <= 1.0) {
                return Err(TrainError::config(
                    "schedule.gamma",
                    format!("must be in (0, 1], got {}", self.gamma),
                ));
            }
        }
        if let Some(t) = self.total_steps {
            if matches!(self.decay, Decay::Linear | Decay::Cosine) && t <= self.warmup_steps {
                return Err(TrainError::config(
                    "schedule.total_steps",
                    format!("must exceed warmup_steps ({}), got {t}", self.warmup_steps),
                ));
            }
        }
        Ok(())
    }

    /// The learning-rate factor for update `step` (0-based), given the run's total updates
    /// (used when `total_steps` is `None`).
    pub fn factor(&self, step: u64, run_total: u64) -> f64 {
        let w = self.warmup_steps;
        if step < w {
            return (step + 1) as f64 / w as f64;
        }
        let total = self.total_steps.unwrap_or(run_total).max(w + 1);
        let progress = ((step - w) as f64 / (total - w) as f64).min(1.0);
        match self.decay {
            Decay::Constant => 1.0,
            Decay::Linear => 1.0 - (1.0 - self.min_factor) * progress,
            Decay::Cosine => {
                self.min_factor + (1.0 - self.min_factor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
            Decay::Step => self.gamma.powi(((step - w) / self.step_size) as i32),
        }
    }
}

/// Whether a larger or smaller metric is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Larger is better (AUC, accuracy).
    Max,
    /// Smaller is better (loss, MAE).
    Min,
}

/// `ReduceLROnPlateau` with relative threshold: after `patience` evaluations without a relative
/// improvement of `threshold`, the factor is multiplied by `factor` (not below `min_factor`),
/// then `cooldown` evaluations are ignored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plateau {
    /// Direction of improvement.
    pub mode: Mode,
    /// Multiplier on a plateau.
    pub factor: f64,
    /// Evaluations without improvement before reducing.
    pub patience: u32,
    /// Relative improvement that counts.
    pub threshold: f64,
    /// Evaluations to wait after a reduction.
    pub cooldown: u32,
    /// Lowest factor.
    pub min_factor: f64,
    /// State: the current multiplier.
    pub scale: f64,
    /// State: best metric so far.
    pub best: Option<f64>,
    /// State: evaluations since the last improvement.
    pub bad: u32,
    /// State: cooldown evaluations left.
    pub cooldown_left: u32,
}

impl Plateau {
    /// PyTorch's defaults (`factor 0.1, patience 10, threshold 1e-4`).
    pub fn new(mode: Mode) -> Self {
        Plateau {
            mode,
            factor: 0.1,
            patience: 10,
            threshold: 1e-4,
            cooldown: 0,
            min_factor: 0.0,
            scale: 1.0,
            best: None,
            bad: 0,
            cooldown_left: 0,
        }
    }

    /// Records an evaluation and returns the current multiplier.
    pub fn observe(&mut self, metric: f64) -> f64 {
        let better = match (self.best, self.mode) {
            (None, _) => true,
            (Some(b), Mode::Max) => metric > b * (1.0 + self.threshold.copysign(b)),
            (Some(b), Mode::Min) => metric < b * (1.0 - self.threshold.copysign(b)),
        };
        if better {
            self.best = Some(metric);
            self.bad = 0;
        } else {
            self.bad += 1;
        }
        if self.cooldown_left > 0 {
            self.cooldown_left -= 1;
            self.bad = 0;
        }
        if self.bad > self.patience {
            self.scale = (self.scale * self.factor).max(self.min_factor);
            self.cooldown_left = self.cooldown;
            self.bad = 0;
        }
        self.scale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine() {
        let s = ScheduleConfig {
            warmup_steps: 4,
            decay: Decay::Cosine,
            total_steps: Some(14),
            ..ScheduleConfig::default()
        };
        s.validate().unwrap();
        let f: Vec<f64> = (0..16).map(|i| s.factor(i, 0)).collect();
        assert_eq!(&f[..4], &[0.25, 0.5, 0.75, 1.0]);
        assert!((f[9] - 0.5).abs() < 1e-12);
        assert!(f[14].abs() < 1e-12 && f[15].abs() < 1e-12);
    }

    #[test]
    fn step_decay_and_plateau() {
        let s = ScheduleConfig {
            decay: Decay::Step,
            step_size: 3,
            gamma: 0.5,
            ..ScheduleConfig::default()
        };
        assert_eq!(s.factor(2, 0), 1.0);
        assert_eq!(s.factor(3, 0), 0.5);
        assert_eq!(s.factor(7, 0), 0.25);
        let mut p = Plateau::new(Mode::Max);
        p.patience = 1;
        assert_eq!(p.observe(0.5), 1.0);
        assert_eq!(p.observe(0.5), 1.0);
        assert!((p.observe(0.4) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn validation_names_the_field() {
        let bad = ScheduleConfig {
            decay: Decay::Linear,
            warmup_steps: 10,
            total_steps: Some(5),
            ..ScheduleConfig::default()
        };
        assert!(bad.validate().unwrap_err().to_string().contains("schedule.total_steps"));
    }
}
