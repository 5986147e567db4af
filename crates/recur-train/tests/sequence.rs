//! The sequence model's explicit backward pass against central differences, for every head,
//! with an embedding, two bidirectional layers and unsorted variable lengths.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use recur_nn::init::Init;
use recur_nn::{CellKind, RnnConfig};
use recur_train::models::sequence::{Head, SeqInput, SequenceModel, SequenceModelConfig};
use recur_train::Module;

fn cfg(cell: CellKind, head: Head) -> SequenceModelConfig {
    SequenceModelConfig {
        features: 2,
        vocab: 5,
        embed_dim: 3,
        rnn: RnnConfig {
            num_layers: 2,
            bidirectional: true,
            ..RnnConfig::new(cell, 5, 4)
        },
        head,
        outputs: 3,
    }
}

fn check(cell: CellKind, head: Head) {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let model = SequenceModel::new(cfg(cell, head), &Init::recurrent_default(), &mut rng).unwrap();
    let (b, t) = (3, 4);
    let lengths = [2, 4, 1];
    let mut features = vec![0.0f32; b * t * 2];
    let mut ids = vec![0usize; b * t];
    for i in 0..b {
        for s in 0..lengths[i] {
            features[(i * t + s) * 2] = ((i * 7 + s * 3) % 5) as f32 / 2.0 - 1.0;
            features[(i * t + s) * 2 + 1] = ((i * 5 + s * 11) % 7) as f32 / 3.0 - 1.0;
            ids[i * t + s] = (i + 2 * s) % 5;
        }
    }
    let x = SeqInput {
        batch: b,
        time: t,
        lengths: &lengths,
        features: &features,
        ids: Some(&ids),
    };
    let rows = if head == Head::PerStep { b * t } else { b };
    let weights: Vec<f32> = (0..rows * 3).map(|i| ((i * 13 % 7) as f32 - 3.0) / 3.0).collect();
    let loss = |m: &SequenceModel| -> f64 {
        m.forward(&x)
            .unwrap()
            .iter()
            .zip(&weights)
            .map(|(a, w)| *a as f64 * *w as f64)
            .sum()
    };
    let (_, tape) = model.forward_train(&x, &mut rng).unwrap();
    let grads = model.backward(&x, &tape, &weights, None).unwrap();
    let eps = 1e-2f32;
    let mut worst = 0.0f64;
    for (k, (name, buf)) in model.buffers().into_iter().enumerate() {
        for i in 0..buf.as_slice().len() {
            let mut m = model.clone();
            m.buffers_mut()[k].as_mut_slice()[i] += eps;
            let up = loss(&m);
            m.buffers_mut()[k].as_mut_slice()[i] -= 2.0 * eps;
            let down = loss(&m);
            let fd = (up - down) / (2.0 * eps as f64);
            let an = grads[k].as_slice()[i] as f64;
            let err = (fd - an).abs() / fd.abs().max(1.0);
            worst = worst.max(err);
            assert!(err < 5e-3, "{cell:?} {head:?} {name}[{i}]: fd {fd} vs analytic {an}");
        }
    }
    assert!(worst < 5e-3);
}

#[test]
fn gradients_match_finite_differences_for_every_head() {
    for head in [Head::Final, Head::Mean, Head::Max, Head::MeanMax, Head::PerStep] {
        check(CellKind::Gru, head);
    }
    check(CellKind::Lstm, Head::Final);
    check(CellKind::RnnTanh, Head::MeanMax);
}

#[test]
fn inputs_are_validated() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let model = SequenceModel::new(cfg(CellKind::Gru, Head::Final), &Init::recurrent_default(), &mut rng).unwrap();
    let f = vec![0.0f32; 2 * 3 * 2];
    let ids = vec![9usize; 6];
    let x = SeqInput {
        batch: 2,
        time: 3,
        lengths: &[3, 1],
        features: &f,
        ids: Some(&ids),
    };
    let e = model.forward(&x).unwrap_err().to_string();
    assert!(e.contains("vocabulary"), "{e}");
    let mut bad = cfg(CellKind::Gru, Head::Final);
    bad.rnn.input_size = 4;
    let e = SequenceModel::zeros(bad).unwrap_err().to_string();
    assert!(e.contains("model.rnn.input_size"), "{e}");
}
