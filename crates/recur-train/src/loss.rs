//! Losses with PyTorch's semantics (`reduction="mean"`), each returning the loss and its
//! gradient with respect to the prediction, so models need no autograd.
//!
//! Sums are accumulated in `f64`; results are `f32`.

use crate::error::{Result, TrainError};

/// A scalar loss and `∂loss/∂prediction` (same shape as the prediction).
#[derive(Clone, Debug, PartialEq)]
pub struct LossOut {
    /// The reduced loss.
    pub loss: f32,
    /// Gradient with respect to each prediction element.
    pub grad: Vec<f32>,
}

fn same_len(what: &str, a: usize, b: usize) -> Result<()> {
    if a != b {
        return Err(TrainError::Invalid(format!(
            "{what}: predictions have {a} elements, targets {b}"
        )));
    }
    Ok(())
}

fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `BCEWithLogitsLoss(pos_weight=…)`, mean over all elements. `logits` and `targets` are
/// `[n, c]` flattened; `pos_weight` has length `c` (broadcast over rows) or 1, or is `None`.
/// Targets may be soft (in `[0, 1]`).
///
/// Per element: `(1−y)·x + (1 + (p−1)·y)·(log(1 + e^{−|x|}) + max(−x, 0))`, PyTorch's stable form.
pub fn bce_with_logits(logits: &[f32], targets: &[f32], pos_weight: Option<&[f32]>) -> Result<LossOut> {
    same_len("bce_with_logits", logits.len(), targets.len())?;
    let c = match pos_weight {
        None => 1,
        Some(p) if !p.is_empty() && logits.len().is_multiple_of(p.len()) => p.len(),
        Some(p) => {
            return Err(TrainError::Invalid(format!(
                "bce_with_logits: pos_weight has {} elements, which does not divide the {} logits",
                p.len(),
                logits.len()
            )))
        }
    };
    let n = logits.len().max(1) as f64;
    let mut total = 0.0f64;
    let mut grad = Vec::with_capacity(logits.len());
    for (i, (&x, &y)) in logits.iter().zip(targets).enumerate() {
        let (x, y) = (x as f64, y as f64);
        let p = pos_weight.map_or(1.0, |pw| pw[i % c] as f64);
        let lw = (p - 1.0) * y + 1.0;
        total += (1.0 - y) * x + lw * ((-x.abs()).exp().ln_1p() + (-x).max(0.0));
        // d/dx: (1 − y) − lw·σ(−x)
        grad.push((((1.0 - y) - lw * sigmoid(-x)) / n) as f32);
    }
    Ok(LossOut {
        loss: (total / n) as f32,
        grad,
    })
}

/// `CrossEntropyLoss(weight=…, ignore_index=…)` over `logits [n, classes]` and integer
/// `targets [n]`. The reduction is PyTorch's weighted mean: `Σ w[yᵢ]·nllᵢ / Σ w[yᵢ]` over rows
/// whose target is not `ignore_index`.
///
/// When every row is ignored PyTorch returns NaN; recur returns a zero loss and gradient
/// instead, so that an all-padding batch is a no-op rather than a divergence.
pub fn cross_entropy(
    logits: &[f32],
    classes: usize,
    targets: &[i64],
    weights: Option<&[f32]>,
    ignore_index: Option<i64>,
) -> Result<LossOut> {
    if classes == 0 || logits.len() != targets.len() * classes {
        return Err(TrainError::Invalid(format!(
            "cross_entropy: logits have {} elements, expected {} rows × {classes} classes",
            logits.len(),
            targets.len()
        )));
    }
    if let Some(w) = weights {
        if w.len() != classes {
            return Err(TrainError::Invalid(format!(
                "cross_entropy: {} class weights for {classes} classes",
                w.len()
            )));
        }
    }
    let mut grad = vec![0.0f32; logits.len()];
    let mut total = 0.0f64;
    let mut wsum = 0.0f64;
    let mut probs = vec![0.0f64; classes];
    let mut rows = Vec::with_capacity(targets.len());
    for (i, &t) in targets.iter().enumerate() {
        if Some(t) == ignore_index {
            continue;
        }
        if t < 0 || t as usize >= classes {
            return Err(TrainError::Invalid(format!(
                "cross_entropy: target[{i}] = {t} is outside 0..{classes}"
            )));
        }
        let row = &logits[i * classes..(i + 1) * classes];
        let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
        let mut z = 0.0f64;
        for (p, &v) in probs.iter_mut().zip(row) {
            *p = (v as f64 - max).exp();
            z += *p;
        }
        let w = weights.map_or(1.0, |w| w[t as usize] as f64);
        total += w * (z.ln() + max - row[t as usize] as f64);
        wsum += w;
        rows.push((i, t as usize, w, z));
    }
    if wsum == 0.0 {
        return Ok(LossOut { loss: 0.0, grad });
    }
    for (i, t, w, z) in rows {
        let row = &logits[i * classes..(i + 1) * classes];
        let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
        let g = &mut grad[i * classes..(i + 1) * classes];
        for (j, (gj, &v)) in g.iter_mut().zip(row).enumerate() {
            let p = (v as f64 - max).exp() / z;
            let onehot = if j == t { 1.0 } else { 0.0 };
            *gj = (w * (p - onehot) / wsum) as f32;
        }
    }
    Ok(LossOut {
        loss: (total / wsum) as f32,
        grad,
    })
}

/// `MSELoss`: mean of `(x − y)²`.
pub fn mse(pred: &[f32], target: &[f32]) -> Result<LossOut> {
    same_len("mse", pred.len(), target.len())?;
    let n = pred.len().max(1) as f64;
    let mut total = 0.0f64;
    let grad = pred
        .iter()
        .zip(target)
        .map(|(&x, &y)| {
            let d = x as f64 - y as f64;
            total += d * d;
            (2.0 * d / n) as f32
        })
        .collect();
    Ok(LossOut {
        loss: (total / n) as f32,
        grad,
    })
}

/// `L1Loss`: mean of `|x − y|`; the gradient at `x = y` is 0, as PyTorch's `sign`.
pub fn l1(pred: &[f32], target: &[f32]) -> Result<LossOut> {
    same_len("l1", pred.len(), target.len())?;
    let n = pred.len().max(1) as f64;
    let mut total = 0.0f64;
    let grad = pred
        .iter()
        .zip(target)
        .map(|(&x, &y)| {
            let d = x as f64 - y as f64;
            total += d.abs();
            let s = if d > 0.0 {
                1.0
            } else if d < 0.0 {
                -1.0
            } else {
                0.0
            };
            (s / n) as f32
        })
        .collect();
    Ok(LossOut {
        loss: (total / n) as f32,
        grad,
    })
}

/// `HuberLoss(delta=δ)`: `½d²` for `|d| ≤ δ`, else `δ·(|d| − ½δ)`, mean over elements.
pub fn huber(pred: &[f32], target: &[f32], delta: f32) -> Result<LossOut> {
    same_len("huber", pred.len(), target.len())?;
    if delta.is_nan() || delta <= 0.0 {
        return Err(TrainError::config("huber_delta", format!("must be > 0, got {delta}")));
    }
    let (n, dl) = (pred.len().max(1) as f64, delta as f64);
    let mut total = 0.0f64;
    let grad = pred
        .iter()
        .zip(target)
        .map(|(&x, &y)| {
            let d = x as f64 - y as f64;
            if d.abs() <= dl {
                total += 0.5 * d * d;
                (d / n) as f32
            } else {
                total += dl * (d.abs() - 0.5 * dl);
                (dl * d.signum() / n) as f32
            }
        })
        .collect();
    Ok(LossOut {
        loss: (total / n) as f32,
        grad,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fd_check(f: impl Fn(&[f32]) -> LossOut, x: &[f32]) {
        let g = f(x).grad;
        for i in 0..x.len() {
            let mut p = x.to_vec();
            let eps = 1e-3f32;
            p[i] += eps;
            let up = f(&p).loss as f64;
            p[i] -= 2.0 * eps;
            let down = f(&p).loss as f64;
            let fd = (up - down) / (2.0 * eps as f64);
            assert!((fd - g[i] as f64).abs() < 2e-3, "element {i}: fd {fd} vs {}", g[i]);
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        let x = [0.3f32, -1.2, 2.5, 0.05, -0.7, 1.9];
        let y = [1.0f32, 0.0, 1.0, 0.0, 0.5, 1.0];
        fd_check(|p| bce_with_logits(p, &y, Some(&[3.0, 0.5])).unwrap(), &x);
        fd_check(|p| mse(p, &y).unwrap(), &x);
        fd_check(|p| huber(p, &y, 0.8).unwrap(), &x);
        fd_check(
            |p| cross_entropy(p, 3, &[2, -100], Some(&[1.0, 2.0, 0.5]), Some(-100)).unwrap(),
            &x,
        );
        fd_check(|p| cross_entropy(p, 2, &[1, 0, 1], None, None).unwrap(), &x);
    }

    #[test]
    fn cross_entropy_rejects_out_of_range_targets_and_handles_all_ignored() {
        assert!(cross_entropy(&[0.0, 1.0], 2, &[2], None, None).is_err());
        let out = cross_entropy(&[0.0, 1.0], 2, &[-1], None, Some(-1)).unwrap();
        assert_eq!(out.loss, 0.0);
        assert_eq!(out.grad, vec![0.0, 0.0]);
    }
}
