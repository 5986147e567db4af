//! Dropout masks: PyTorch's inter-layer dropout (a fresh mask per element and step) and
//! variational dropout (Gal & Ghahramani 2016: one mask per sequence, reused at every step, on
//! each layer's input and on the recurrent state fed to the gates; one mask shared by all gates).
//! Masks hold `0` or `1/(1−p)` (inverted dropout), in the user's batch order.

use rand::Rng;
use recur_kernels::Float;

use crate::config::RnnConfig;
use crate::error::{NnError, Result};

/// Dropout masks for one training forward pass. An empty vector means "no mask".
#[derive(Clone, Debug, PartialEq)]
pub struct DropoutMasks<T> {
    /// For each layer `l < L−1`: `[batch, time, D·H_out]` applied to layer `l`'s output.
    pub between: Vec<Vec<T>>,
    /// For each `layer·D + direction`: `[batch, input width of the layer]`.
    pub input: Vec<Vec<T>>,
    /// For each `layer·D + direction`: `[batch, H_out]`, applied to `h_{t−1}` in the gates.
    pub recurrent: Vec<Vec<T>>,
}

/// An inverted-dropout mask of `n` values, each `0` with probability `p` and `1/(1−p)`
/// otherwise, drawn one `f64` per element from `rng` (empty, with no draws, when `p` is 0).
pub fn inverted_dropout_mask<T: Float>(n: usize, p: f64, rng: &mut impl Rng) -> Vec<T> {
    if p == 0.0 {
        return Vec::new();
    }
    let keep = T::of(1.0 / (1.0 - p));
    (0..n)
        .map(|_| if rng.random::<f64>() < p { T::zero() } else { keep })
        .collect()
}

impl<T: Float> DropoutMasks<T> {
    /// Masks that drop nothing.
    pub fn none(cfg: &RnnConfig) -> Self {
        let ld = cfg.num_layers * cfg.directions();
        DropoutMasks {
            between: vec![Vec::new(); cfg.num_layers - 1],
            input: vec![Vec::new(); ld],
            recurrent: vec![Vec::new(); ld],
        }
    }

    /// Draws masks from `rng` for the config's dropout probabilities.
    pub fn sample(cfg: &RnnConfig, batch: usize, time: usize, rng: &mut impl Rng) -> Self {
        let d = cfg.directions();
        let w = d * cfg.h_out();
        let between = (0..cfg.num_layers - 1)
            .map(|_| inverted_dropout_mask(batch * time * w, cfg.dropout, rng))
            .collect();
        let mut input = Vec::new();
        let mut recurrent = Vec::new();
        for l in 0..cfg.num_layers {
            for _ in 0..d {
                input.push(inverted_dropout_mask(
                    batch * cfg.layer_input(l),
                    cfg.input_dropout,
                    rng,
                ));
                recurrent.push(inverted_dropout_mask(batch * cfg.h_out(), cfg.recurrent_dropout, rng));
            }
        }
        DropoutMasks {
            between,
            input,
            recurrent,
        }
    }

    pub(crate) fn check(&self, cfg: &RnnConfig, batch: usize, time: usize) -> Result<()> {
        let d = cfg.directions();
        let bad = |name: String, got: usize, expected: Vec<usize>| {
            Err(NnError::Shape {
                name,
                got: vec![got],
                expected,
            })
        };
        if self.between.len() != cfg.num_layers - 1
            || self.input.len() != cfg.num_layers * d
            || self.recurrent.len() != cfg.num_layers * d
        {
            return Err(NnError::Invalid(
                "dropout masks do not match the number of layers and directions".into(),
            ));
        }
        for (l, m) in self.between.iter().enumerate() {
            if !m.is_empty() && m.len() != batch * time * d * cfg.h_out() {
                return bad(
                    format!("between-layer mask {l}"),
                    m.len(),
                    vec![batch, time, d * cfg.h_out()],
                );
            }
        }
        for (i, (mi, mr)) in self.input.iter().zip(&self.recurrent).enumerate() {
            let w = cfg.layer_input(i / d);
            if !mi.is_empty() && mi.len() != batch * w {
                return bad(format!("input mask {i}"), mi.len(), vec![batch, w]);
            }
            if !mr.is_empty() && mr.len() != batch * cfg.h_out() {
                return bad(format!("recurrent mask {i}"), mr.len(), vec![batch, cfg.h_out()]);
            }
        }
        Ok(())
    }
}
