//! Optimizers with `torch.optim`'s update rules (the single-tensor CPU code paths), so that a
//! run reproduces PyTorch's weights step for step.
//!
//! * SGD: `d = g + wd·θ`; with momentum `b = d` on the first step, then `b = μ·b + (1−τ)·d`;
//!   Nesterov uses `d + μ·b`, otherwise `b`; `θ −= lr·d`.
//! * Adam: `g += wd·θ` (L2); `m += (g − m)(1−β₁)`; `v = β₂v + (1−β₂)g²`;
//!   `θ −= lr/(1−β₁ᵗ) · m / (√v/√(1−β₂ᵗ) + ε)`.
//! * AdamW: as Adam without the L2 term, after the decoupled decay `θ *= 1 − lr·wd`.
//!
//! Scalars (`lr/(1−β₁ᵗ)`, `√(1−β₂ᵗ)`) are computed in `f64` and applied in `f32`, as PyTorch
//! does with Python floats against `float32` tensors.

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::params::NamedTensors;

/// Which update rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// `torch.optim.SGD`.
    Sgd,
    /// `torch.optim.Adam`.
    Adam,
    /// `torch.optim.AdamW`.
    #[default]
    AdamW,
}

/// Optimizer settings; fields that do not apply to the chosen kind are ignored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimizerConfig {
    /// The update rule.
    pub kind: OptimizerKind,
    /// Peak learning rate (schedules scale it).
    pub lr: f64,
    /// SGD momentum μ.
    pub momentum: f64,
    /// SGD dampening τ.
    pub dampening: f64,
    /// SGD Nesterov momentum.
    pub nesterov: bool,
    /// Adam β₁.
    pub beta1: f64,
    /// Adam β₂.
    pub beta2: f64,
    /// Adam ε.
    pub eps: f64,
    /// Weight decay; `None` = PyTorch's default for the kind (0.01 for AdamW, 0 otherwise).
    pub weight_decay: Option<f64>,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig {
            kind: OptimizerKind::AdamW,
            lr: 1e-3,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: None,
        }
    }
}

impl OptimizerConfig {
    /// The effective weight decay.
    pub fn weight_decay(&self) -> f64 {
        self.weight_decay
            .unwrap_or(if self.kind == OptimizerKind::AdamW { 0.01 } else { 0.0 })
    }

    /// Checks every field; errors name the field as `optimizer.<field>`.
    pub fn validate(&self) -> Result<()> {
        let f = |field: &str, reason: String| Err(TrainError::config(format!("optimizer.{field}"), reason));
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return f("lr", format!("must be a positive number, got {}", self.lr));
        }
        if !(0.0..1.0).contains(&self.beta1) {
            return f("beta1", format!("must be in [0, 1), got {}", self.beta1));
        }
        if !(0.0..1.0).contains(&self.beta2) {
            return f("beta2", format!("must be in [0, 1), got {}", self.beta2));
        }
        if !(self.eps.is_finite() && self.eps >= 0.0) {
            return f("eps", format!("must be ≥ 0, got {}", self.eps));
        }
        if !(self.momentum.is_finite() && self.momentum >= 0.0) {
            return f("momentum", format!("must be ≥ 0, got {}", self.momentum));
        }
        if !(self.weight_decay().is_finite() && self.weight_decay() >= 0.0) {
            return f("weight_decay", format!("must be ≥ 0, got {}", self.weight_decay()));
        }
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return f(
                "nesterov",
                "Nesterov momentum requires momentum > 0 and dampening = 0 (as in PyTorch)".into(),
            );
        }
        Ok(())
    }
}

/// An optimizer and its state: one pair of moment buffers per parameter buffer.
#[derive(Clone, Debug, PartialEq)]
pub struct Optimizer {
    cfg: OptimizerConfig,
    step: u64,
    /// Per buffer: (first moment or momentum buffer, second moment).
    slots: Vec<(Vec<f32>, Vec<f32>)>,
}

impl Optimizer {
    /// A fresh optimizer (validates the config).
    pub fn new(cfg: OptimizerConfig) -> Result<Self> {
        cfg.validate()?;
        Ok(Optimizer {
            cfg,
            step: 0,
            slots: Vec::new(),
        })
    }

    /// The settings.
    pub fn config(&self) -> &OptimizerConfig {
        &self.cfg
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// One update of every buffer with learning rate `lr` (the schedule's value for this step).
    /// `params[i]` and `grads[i]` must have the same length on every call.
    pub fn step(&mut self, lr: f64, params: &mut [&mut [f32]], grads: &[&[f32]]) {
        assert_eq!(params.len(), grads.len(), "one gradient per parameter buffer");
        if self.slots.is_empty() {
            self.slots = params
                .iter()
                .map(|p| {
                    let second = if self.cfg.kind == OptimizerKind::Sgd {
                        0
                    } else {
                        p.len()
                    };
                    (vec![0.0; p.len()], vec![0.0; second])
                })
                .collect();
        }
        assert_eq!(
            self.slots.len(),
            params.len(),
            "parameter buffers changed between steps"
        );
        self.step += 1;
        let wd = self.cfg.weight_decay();
        for ((p, g), (m, v)) in params.iter_mut().zip(grads).zip(self.slots.iter_mut()) {
            assert_eq!(p.len(), g.len(), "gradient length");
            match self.cfg.kind {
                OptimizerKind::Sgd => sgd(&self.cfg, self.step, lr, wd, p, g, m),
                OptimizerKind::Adam | OptimizerKind::AdamW => adam(&self.cfg, self.step, lr, wd, p, g, m, v),
            }
        }
    }

    /// The state as named tensors (`optim.m.{i}`, `optim.v.{i}`) plus the step count.
    pub fn state(&self) -> (u64, NamedTensors) {
        let mut t = NamedTensors::new();
        for (i, (m, v)) in self.slots.iter().enumerate() {
            t.insert(format!("optim.m.{i}"), (vec![m.len()], m.clone()));
            t.insert(format!("optim.v.{i}"), (vec![v.len()], v.clone()));
        }
        (self.step, t)
    }

    /// Restores [`Optimizer::state`]; `sizes` are the parameter buffer lengths, checked.
    pub fn load_state(&mut self, step: u64, t: &NamedTensors, sizes: &[usize]) -> Result<()> {
        if step == 0 {
            self.step = 0;
            self.slots.clear();
            return Ok(());
        }
        let mut slots = Vec::with_capacity(sizes.len());
        for (i, &n) in sizes.iter().enumerate() {
            let get = |k: &str| {
                t.get(&format!("optim.{k}.{i}"))
                    .map(|(_, d)| d.clone())
                    .ok_or_else(|| TrainError::Invalid(format!("optimizer state lacks `optim.{k}.{i}`")))
            };
            let (m, v) = (get("m")?, get("v")?);
            let second = if self.cfg.kind == OptimizerKind::Sgd { 0 } else { n };
            if m.len() != n || v.len() != second {
                return Err(TrainError::Invalid(format!(
                    "optimizer state `optim.*.{i}` has {} / {} elements, expected {n} / {second}",
                    m.len(),
                    v.len()
                )));
            }
            slots.push((m, v));
        }
        self.step = step;
        self.slots = slots;
        Ok(())
    }
}

fn sgd(cfg: &OptimizerConfig, step: u64, lr: f64, wd: f64, p: &mut [f32], g: &[f32], buf: &mut [f32]) {
    let (lr, wd) = (lr as f32, wd as f32);
    // `1 − τ` is a Python double in torch, rounded to f32 once (not `1 − f32(τ)`).
    let (mu, keep) = (cfg.momentum as f32, (1.0 - cfg.dampening) as f32);
    for ((p, &g), b) in p.iter_mut().zip(g).zip(buf.iter_mut()) {
        let mut d = if wd != 0.0 { g + wd * *p } else { g };
        if mu != 0.0 {
            *b = if step == 1 { d } else { *b * mu + keep * d };
            d = if cfg.nesterov { d + mu * *b } else { *b };
        }
        *p += -lr * d;
    }
}

#[allow(clippy::too_many_arguments)]
fn adam(cfg: &OptimizerConfig, step: u64, lr: f64, wd: f64, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
    let decoupled = cfg.kind == OptimizerKind::AdamW;
    let (b1, b2) = (cfg.beta1, cfg.beta2);
    let bc1 = 1.0 - b1.powi(step as i32);
    let bc2 = 1.0 - b2.powi(step as i32);
    let step_size = (lr / bc1) as f32;
    let bc2_sqrt = bc2.sqrt() as f32;
    let (w1, b2f, w2, eps) = ((1.0 - b1) as f32, b2 as f32, (1.0 - b2) as f32, cfg.eps as f32);
    let decay = (1.0 - lr * wd) as f32;
    let wdf = wd as f32;
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let mut g = g;
        if decoupled {
            if wd != 0.0 {
                *p *= decay;
            }
        } else if wd != 0.0 {
            g += wdf * *p;
        }
        *m += (g - *m) * w1;
        *v = *v * b2f + w2 * g * g;
        let denom = v.sqrt() / bc2_sqrt + eps;
        *p += -step_size * (*m / denom);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_field() {
        let bad = OptimizerConfig {
            lr: -1.0,
            ..OptimizerConfig::default()
        };
        let e = Optimizer::new(bad).unwrap_err().to_string();
        assert!(e.contains("optimizer.lr"), "{e}");
        let nest = OptimizerConfig {
            kind: OptimizerKind::Sgd,
            nesterov: true,
            ..OptimizerConfig::default()
        };
        assert!(Optimizer::new(nest).unwrap_err().to_string().contains("nesterov"));
    }

    #[test]
    fn adam_first_step_moves_by_lr() {
        // With bias correction the first Adam step is lr·sign(g) (up to ε).
        let mut o = Optimizer::new(OptimizerConfig {
            kind: OptimizerKind::Adam,
            lr: 0.1,
            ..OptimizerConfig::default()
        })
        .unwrap();
        let mut p = vec![1.0f32, 1.0];
        o.step(0.1, &mut [&mut p], &[&[0.5, -2.0]]);
        assert!((p[0] - 0.9).abs() < 1e-6 && (p[1] - 1.1).abs() < 1e-6, "{p:?}");
    }

    #[test]
    fn state_round_trips() {
        let mut o = Optimizer::new(OptimizerConfig::default()).unwrap();
        let mut p = vec![1.0f32, 2.0, 3.0];
        o.step(1e-2, &mut [&mut p], &[&[0.1, 0.2, 0.3]]);
        let (step, t) = o.state();
        let mut o2 = Optimizer::new(OptimizerConfig::default()).unwrap();
        o2.load_state(step, &t, &[3]).unwrap();
        assert_eq!(o, o2);
        assert!(o2.load_state(step, &t, &[4]).is_err());
    }
}
