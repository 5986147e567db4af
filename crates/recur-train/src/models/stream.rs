//! Streaming inference for a unidirectional [`SequenceModel`] with the `final` head: one event
//! at a time, carrying the hidden state, so each appended step costs one recurrent step
//! (O(1) in the sequence length) instead of a recompute of the whole prefix.
//!
//! The state is `h [layers, H_out]` (and `c [layers, H]` for LSTM), exactly the `h_n`/`c_n`
//! of a full forward pass over the steps seen so far, so the logits after `n` streamed steps
//! equal [`SequenceModel::forward`] over those `n` steps (up to float rounding).

use recur_nn::{SeqBatch, State};
use serde::{Deserialize, Serialize};

use super::sequence::{Head, SequenceModel};
use crate::error::{Result, TrainError};
use crate::params::Module;

/// The carried state of one stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamState {
    /// Hidden state `[layers, H_out]`.
    pub h: Vec<f32>,
    /// Cell state `[layers, H]` (LSTM only).
    pub c: Option<Vec<f32>>,
    /// Steps consumed so far.
    pub steps: u64,
}

/// Errors unless `model` can stream: unidirectional, `final` head.
pub fn check_streamable(model: &SequenceModel) -> Result<()> {
    let cfg = model.config();
    if cfg.rnn.bidirectional {
        return Err(TrainError::Invalid(
            "streaming needs a unidirectional model (this one is bidirectional)".into(),
        ));
    }
    if cfg.head != Head::Final {
        return Err(TrainError::Invalid(format!(
            "streaming needs the `final` head, this model has {:?}",
            cfg.head
        )));
    }
    Ok(())
}

/// The state before the first step (zeros, as a full forward pass starts).
pub fn initial_state(model: &SequenceModel) -> StreamState {
    let r = &model.config().rnn;
    StreamState {
        h: vec![0.0; r.num_layers * r.h_out()],
        c: r.has_cell_state().then(|| vec![0.0; r.num_layers * r.hidden_size]),
        steps: 0,
    }
}

/// Consumes one step — categorical `id` (when the model has a vocabulary) and `features`
/// (`[features]`) — updates `state` and returns the logits `[outputs]` after it.
///
/// # Errors
/// When the model cannot stream ([`check_streamable`]), the state's or the step's shapes do not
/// fit the model, or `id` is outside the vocabulary.
pub fn step(model: &SequenceModel, state: &mut StreamState, id: Option<usize>, features: &[f32]) -> Result<Vec<f32>> {
    check_streamable(model)?;
    let cfg = model.config();
    let r = &cfg.rnn;
    if state.h.len() != r.num_layers * r.h_out()
        || state.c.as_ref().map(Vec::len) != r.has_cell_state().then_some(r.num_layers * r.hidden_size)
    {
        return Err(TrainError::Invalid("stream state does not fit the model".into()));
    }
    if features.len() != cfg.features {
        return Err(TrainError::Invalid(format!(
            "step has {} features, the model takes {}",
            features.len(),
            cfg.features
        )));
    }
    let bufs = model.buffers();
    let buf = |name: &str| bufs.iter().find(|(p, _)| *p == name).map(|(_, b)| *b);
    let mut input = Vec::with_capacity(r.input_size);
    match (buf("embed"), id) {
        (Some(e), Some(id)) if id < cfg.vocab => {
            input.extend_from_slice(&e.as_slice()[id * cfg.embed_dim..(id + 1) * cfg.embed_dim])
        }
        (None, None) => {}
        _ => {
            return Err(TrainError::Invalid(format!(
                "bad id {id:?} for vocabulary {}",
                cfg.vocab
            )))
        }
    }
    input.extend_from_slice(features);
    let x = SeqBatch::batch_first(&input, 1, 1, r.input_size);
    let s = State {
        h0: Some(&state.h),
        c0: state.c.as_deref(),
    };
    let out = model.rnn().forward(&x, &s)?;
    state.h = out.h_n;
    state.c = out.c_n;
    state.steps += 1;
    let head = buf("head").expect("a sequence model has a head");
    let (w, b) = (head.get("weight").expect("head.weight"), head.get("bias"));
    let ho = r.h_out();
    let last = &state.h[(r.num_layers - 1) * ho..];
    Ok((0..cfg.outputs)
        .map(|o| {
            let dot: f32 = w[o * ho..(o + 1) * ho].iter().zip(last).map(|(a, b)| a * b).sum();
            dot + b.map_or(0.0, |b| b[o])
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use recur_nn::init::Init;
    use recur_nn::{CellKind, RnnConfig};

    use super::*;
    use crate::models::sequence::{SeqInput, SequenceModelConfig};

    fn model(cell: CellKind, bidirectional: bool) -> SequenceModel {
        let cfg = SequenceModelConfig {
            features: 3,
            vocab: 5,
            embed_dim: 4,
            rnn: RnnConfig {
                num_layers: 2,
                bidirectional,
                ..RnnConfig::new(cell, 7, 6)
            },
            head: Head::Final,
            outputs: 1,
        };
        SequenceModel::new(cfg, &Init::recurrent_default(), &mut ChaCha8Rng::seed_from_u64(3)).unwrap()
    }

    #[test]
    fn streamed_logits_equal_full_recompute_at_every_prefix() {
        for cell in [CellKind::Gru, CellKind::Lstm] {
            let m = model(cell, false);
            let mut rng = ChaCha8Rng::seed_from_u64(9);
            let t = 40;
            let ids: Vec<usize> = (0..t).map(|_| rng.random_range(0..5)).collect();
            let feats: Vec<f32> = (0..t * 3).map(|_| rng.random_range(-2.0..2.0)).collect();
            let mut st = initial_state(&m);
            for n in 1..=t {
                let got = step(&m, &mut st, Some(ids[n - 1]), &feats[(n - 1) * 3..n * 3]).unwrap();
                let x = SeqInput {
                    batch: 1,
                    time: n,
                    lengths: &[n],
                    features: &feats[..n * 3],
                    ids: Some(&ids[..n]),
                };
                let want = m.forward(&x).unwrap();
                assert!(
                    (got[0] - want[0]).abs() < 1e-5,
                    "{cell:?} step {n}: {} vs {}",
                    got[0],
                    want[0]
                );
            }
            assert_eq!(st.steps, t as u64);
        }
    }

    #[test]
    fn refuses_bidirectional_models_and_bad_steps() {
        let m = model(CellKind::Gru, true);
        assert!(check_streamable(&m).unwrap_err().to_string().contains("unidirectional"));
        let m = model(CellKind::Gru, false);
        let mut st = initial_state(&m);
        assert!(step(&m, &mut st, Some(5), &[0.0; 3]).is_err());
        assert!(step(&m, &mut st, Some(1), &[0.0; 2]).is_err());
        assert_eq!(st.steps, 0);
    }
}
