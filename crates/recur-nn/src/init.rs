//! Parameter initializers. Every one draws from an explicit RNG (use `rand_chacha`, whose
//! streams are stable across versions).
//!
//! * [`WeightInit::TorchUniform`]: PyTorch's default, `U(−1/√H, 1/√H)`.
//! * [`WeightInit::Orthogonal`]: `torch.nn.init.orthogonal_` on the whole `(G·H, in)` matrix
//!   (Gaussian, reduced QR, sign-fixed by `diag(R)`): orthonormal columns when rows ≥ cols.
//! * [`WeightInit::XavierUniform`]: `U(±gain·√(6/(fan_in + fan_out)))` on the whole matrix.
//!
//! Biases use `U(−1/√H, 1/√H)` (or zeros with [`Init::zero_bias`]); `forget_bias` then sets
//! the LSTM forget chunk of `bias_ih` to the value and of `bias_hh` to zero. Layer-norm gains
//! are 1 and their biases 0.

use rand::Rng;
use recur_kernels::gates::LSTM_F;
use recur_kernels::Float;

use crate::config::CellKind;
use crate::rnn::Rnn;

/// How to initialize a weight matrix.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum WeightInit {
    /// PyTorch's default `U(−1/√H, 1/√H)`.
    #[default]
    TorchUniform,
    /// Orthogonal with the given gain.
    Orthogonal {
        /// Multiplier.
        gain: f64,
    },
    /// Xavier/Glorot uniform with the given gain.
    XavierUniform {
        /// Multiplier.
        gain: f64,
    },
}

/// A complete initialization recipe.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Init {
    /// For `weight_ih_*`.
    pub weight_ih: WeightInit,
    /// For `weight_hh_*`.
    pub weight_hh: WeightInit,
    /// Set biases to zero instead of PyTorch's uniform.
    pub zero_bias: bool,
    /// LSTM only: forget-gate bias value (in `bias_ih`; the `bias_hh` forget chunk is zeroed).
    pub forget_bias: Option<f64>,
}

impl Init {
    /// The common recurrent recipe: Xavier `W_ih`, orthogonal `W_hh`, zero biases.
    pub fn recurrent_default() -> Self {
        Init {
            weight_ih: WeightInit::XavierUniform { gain: 1.0 },
            weight_hh: WeightInit::Orthogonal { gain: 1.0 },
            zero_bias: true,
            forget_bias: None,
        }
    }

    /// Initializes every parameter of `model`, in registration order.
    pub fn apply<T: Float>(&self, model: &mut Rnn<T>, rng: &mut impl Rng) {
        let cfg = model.config().clone();
        let h = cfg.hidden_size;
        let stdv = 1.0 / (h as f64).sqrt();
        let specs = model.params().specs().to_vec();
        let data = model.params_mut().as_mut_slice();
        for s in &specs {
            let dst = &mut data[s.range()];
            let name = s.name.as_str();
            let how = if name.starts_with("weight_ih") {
                Some(self.weight_ih)
            } else if name.starts_with("weight_hh") {
                Some(self.weight_hh)
            } else {
                None
            };
            if name.starts_with("ln_") {
                let v = if name.contains("_weight") { T::one() } else { T::zero() };
                dst.iter_mut().for_each(|x| *x = v);
            } else if name.starts_with("bias") && self.zero_bias {
                dst.iter_mut().for_each(|x| *x = T::zero());
            } else {
                match how.unwrap_or_default() {
                    WeightInit::TorchUniform => uniform(dst, stdv, rng),
                    WeightInit::XavierUniform { gain } => {
                        let (rows, cols) = (s.shape[0], s.shape[1]);
                        uniform(dst, gain * (6.0 / (rows + cols) as f64).sqrt(), rng)
                    }
                    WeightInit::Orthogonal { gain } => orthogonal(dst, s.shape[0], s.shape[1], gain, rng),
                }
            }
            if let (Some(fb), CellKind::Lstm) = (self.forget_bias, cfg.cell) {
                let chunk = LSTM_F * h..(LSTM_F + 1) * h;
                if name.starts_with("bias_ih") {
                    dst[chunk].iter_mut().for_each(|x| *x = T::of(fb));
                } else if name.starts_with("bias_hh") {
                    dst[chunk].iter_mut().for_each(|x| *x = T::zero());
                }
            }
        }
    }
}

fn uniform<T: Float>(dst: &mut [T], bound: f64, rng: &mut impl Rng) {
    for x in dst {
        *x = T::of(rng.random_range(-bound..bound));
    }
}

/// A standard normal sample (Box–Muller).
pub fn normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Fills `dst` (`[rows, cols]`) with `gain · Q`, `Q` Haar-orthogonal, as `orthogonal_` does.
pub fn orthogonal<T: Float>(dst: &mut [T], rows: usize, cols: usize, gain: f64, rng: &mut impl Rng) {
    // Work on the tall orientation: a is (m, k) with m ≥ k; columns become orthonormal.
    let (m, k, transpose) = if rows >= cols {
        (rows, cols, false)
    } else {
        (cols, rows, true)
    };
    let mut a: Vec<f64> = (0..m * k).map(|_| normal(rng)).collect();
    // Modified Gram–Schmidt, twice for stability; R's diagonal stays positive, which is
    // exactly the `sign(diag(R))` fix of PyTorch.
    for j in 0..k {
        for _pass in 0..2 {
            for p in 0..j {
                let dot: f64 = (0..m).map(|i| a[i * k + p] * a[i * k + j]).sum();
                for i in 0..m {
                    a[i * k + j] -= dot * a[i * k + p];
                }
            }
        }
        let norm = (0..m).map(|i| a[i * k + j] * a[i * k + j]).sum::<f64>().sqrt();
        for i in 0..m {
            a[i * k + j] /= norm;
        }
    }
    for r in 0..rows {
        for c in 0..cols {
            let v = if transpose { a[c * k + r] } else { a[r * k + c] };
            dst[r * cols + c] = T::of(gain * v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RnnConfig;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn gram(w: &[f64], rows: usize, cols: usize, by_cols: bool) -> Vec<f64> {
        let n = if by_cols { cols } else { rows };
        let mut g = vec![0.0; n * n];
        for a in 0..n {
            for b in 0..n {
                g[a * n + b] = if by_cols {
                    (0..rows).map(|i| w[i * cols + a] * w[i * cols + b]).sum()
                } else {
                    (0..cols).map(|j| w[a * cols + j] * w[b * cols + j]).sum()
                };
            }
        }
        g
    }

    #[test]
    fn orthogonal_has_orthonormal_columns_or_rows() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for (rows, cols) in [(12, 4), (4, 12), (6, 6)] {
            let mut w = vec![0.0f64; rows * cols];
            orthogonal(&mut w, rows, cols, 1.0, &mut rng);
            let by_cols = rows >= cols;
            let n = if by_cols { cols } else { rows };
            let g = gram(&w, rows, cols, by_cols);
            for a in 0..n {
                for b in 0..n {
                    let e = if a == b { 1.0 } else { 0.0 };
                    assert!(
                        (g[a * n + b] - e).abs() < 1e-12,
                        "{rows}x{cols} gram[{a},{b}] = {}",
                        g[a * n + b]
                    );
                }
            }
        }
    }

    #[test]
    fn recipes_are_seeded_and_shaped() {
        let mut cfg = RnnConfig::new(CellKind::Lstm, 3, 5);
        cfg.layer_norm = true;
        let init = Init {
            forget_bias: Some(1.0),
            ..Init::recurrent_default()
        };
        let mut a = Rnn::<f64>::zeros(cfg.clone()).unwrap();
        let mut b = Rnn::<f64>::zeros(cfg).unwrap();
        init.apply(&mut a, &mut ChaCha8Rng::seed_from_u64(3));
        init.apply(&mut b, &mut ChaCha8Rng::seed_from_u64(3));
        assert_eq!(a.params(), b.params());
        let bih = a.params().get("bias_ih_l0").unwrap();
        assert_eq!(&bih[5..10], &[1.0; 5]);
        assert_eq!(&bih[..5], &[0.0; 5]);
        assert!(a.params().get("ln_cell_weight_l0").unwrap().iter().all(|&x| x == 1.0));
        let bound = (6.0f64 / (20 + 3) as f64).sqrt();
        assert!(a.params().get("weight_ih_l0").unwrap().iter().all(|x| x.abs() <= bound));
    }

    #[test]
    fn torch_default_is_bounded_by_inverse_sqrt_hidden() {
        let cfg = RnnConfig::new(CellKind::Gru, 3, 16);
        let m = Rnn::<f32>::new(cfg, &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
        assert!(m.params().as_slice().iter().all(|x| x.abs() <= 0.25));
        assert!(m.params().as_slice().iter().any(|x| x.abs() > 0.2));
    }
}
