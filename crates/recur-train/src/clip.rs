//! Gradient clipping by global norm, as `torch.nn.utils.clip_grad_norm_`.

/// Scales every gradient so that their joint L2 norm is at most `max_norm` and returns the norm
/// before clipping. As in PyTorch: `coef = max_norm / (norm + 1e-6)`, clamped to 1, and every
/// gradient is multiplied by it. A non-finite norm is returned without touching the gradients
/// (the trainer then skips the step).
pub fn clip_grad_norm(grads: &mut [&mut [f32]], max_norm: f32) -> f32 {
    let total = global_norm(grads.iter().map(|g| &**g));
    if !total.is_finite() {
        return total;
    }
    let coef = (max_norm as f64 / (total as f64 + 1e-6)).min(1.0) as f32;
    if coef < 1.0 {
        for g in grads.iter_mut() {
            for v in g.iter_mut() {
                *v *= coef;
            }
        }
    }
    total
}

/// The joint L2 norm of several gradient buffers (accumulated in `f64`).
pub fn global_norm<'a>(grads: impl IntoIterator<Item = &'a [f32]>) -> f32 {
    let mut sum = 0.0f64;
    for g in grads {
        for &v in g {
            sum += (v as f64) * (v as f64);
        }
    }
    sum.sqrt() as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clips_to_max_norm_and_reports_the_original() {
        let mut a = vec![3.0f32, 0.0];
        let mut b = vec![0.0f32, 4.0];
        let n = clip_grad_norm(&mut [&mut a, &mut b], 1.0);
        assert_eq!(n, 5.0);
        assert!((global_norm([a.as_slice(), b.as_slice()]) - 1.0).abs() < 1e-5);
        let mut c = vec![0.3f32];
        assert_eq!(clip_grad_norm(&mut [&mut c], 1.0), 0.3);
        assert_eq!(c, vec![0.3]);
        let mut d = vec![f32::NAN, 1.0];
        assert!(clip_grad_norm(&mut [&mut d], 1.0).is_nan());
        assert_eq!(d[1], 1.0);
    }
}
