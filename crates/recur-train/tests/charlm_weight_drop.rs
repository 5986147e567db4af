//! Weight drop (DropConnect on the recurrent matrices): one update of [`CharLmTrainer`] with
//! `weight_drop` equals plain SGD on the gradient of the masked model, with the gradient
//! routed through the mask, applied to the full (restored) weights.

mod charlm_support;

use charlm_support::{random_ids, small};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use recur_nn::CellKind;
use recur_train::models::charlm::{CharLm, CharLmTrainConfig, CharLmTrainer, CharVocab, Chunk};
use recur_train::optim::{OptimizerConfig, OptimizerKind};
use recur_train::schedule::ScheduleConfig;
use recur_train::Module;

fn vocab() -> CharVocab {
    CharVocab::from_text("the whale and the sea, a ship.", 1)
}

/// SGD at a constant rate without clipping: the update is exactly `w − lr·g`.
fn sgd_cfg(weight_drop: f64, threads: usize) -> CharLmTrainConfig {
    CharLmTrainConfig {
        batch: 4,
        bptt: 10,
        epochs: 1,
        clip: 0.0,
        threads,
        weight_drop,
        optimizer: OptimizerConfig {
            kind: OptimizerKind::Sgd,
            lr: 0.5,
            ..OptimizerConfig::default()
        },
        schedule: ScheduleConfig::default(),
        ..CharLmTrainConfig::default()
    }
}

/// All parameters as one flat vector (embedding, RNN, head).
fn flat(m: &CharLm) -> Vec<f32> {
    m.buffers().iter().flat_map(|(_, b)| b.as_slice().to_vec()).collect()
}

fn check_one_update(cell: CellKind, p: f64) {
    let v = vocab();
    // 4 streams of 10 steps, BPTT 10: one update covers the whole text.
    let ids = random_ids(&v, 4 * 10 + 1, 11);
    let model = small(cell, &v, 5);
    assert!(!model.config().has_dropout(), "the test model has no unit dropout");

    let mut trained = model.clone();
    let mut trainer = CharLmTrainer::new(sgd_cfg(p, 1), ids.len()).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let mut lr = f64::NAN;
    let stats = trainer
        .train_epoch(&mut trained, &ids, &mut rng, |s| lr = s.lr)
        .unwrap();
    assert_eq!(stats.steps, 1);
    assert_eq!(lr, 0.5);

    // The masks, drawn as documented: element by element over every weight_hh_l*, from the
    // trainer's RNG at the start of the update.
    let mut mask_rng = ChaCha8Rng::seed_from_u64(21);
    let keep = (1.0 / (1.0 - p)) as f32;
    let rnn_len = model.rnn().params().as_slice().len();
    let mut mask = vec![1.0f32; rnn_len];
    let mut dropped = 0usize;
    let mut hh = 0usize;
    for spec in model.rnn().params().specs() {
        if spec.name.starts_with("weight_hh_l") {
            for m in &mut mask[spec.range()] {
                *m = if mask_rng.random::<f64>() < p { 0.0 } else { keep };
                dropped += usize::from(*m == 0.0);
                hh += 1;
            }
        }
    }
    let frac = dropped as f64 / hh as f64;
    assert!((frac - p).abs() < 0.06, "dropped {frac} of {hh}, expected about {p}");

    // The masked model's gradient on the same chunk.
    let mut masked = model.clone();
    {
        let mut bufs = masked.buffers_mut();
        bufs[1].as_mut_slice().iter_mut().zip(&mask).for_each(|(w, m)| *w *= m);
    }
    let mut inputs = Vec::new();
    let mut targets = Vec::new();
    for s in 0..4 {
        inputs.extend_from_slice(&ids[s * 10..s * 10 + 10]);
        targets.extend_from_slice(&ids[s * 10 + 1..s * 10 + 11]);
    }
    let chunk = Chunk {
        inputs: &inputs,
        targets: &targets,
        batch: 4,
        time: 10,
    };
    let out = masked.forward_backward(&chunk, &masked.zero_state(4), None).unwrap();
    let mut grads = out.grads;
    grads[1].as_mut_slice().iter_mut().zip(&mask).for_each(|(g, m)| *g *= m);
    let g: Vec<f32> = grads.iter().flat_map(|b| b.as_slice().to_vec()).collect();

    // The full weights minus lr × that gradient.
    let before = flat(&model);
    let after = flat(&trained);
    let mut changed_hh = 0usize;
    for (k, ((w0, w1), g)) in before.iter().zip(&after).zip(&g).enumerate() {
        let want = w0 - 0.5 * g;
        assert!(
            (w1 - want).abs() <= 1e-6 * (1.0 + want.abs()),
            "{cell:?} p={p}: parameter {k}: {w1} after the update, expected {want} (was {w0})"
        );
        changed_hh += usize::from(w0 != w1);
    }
    assert!(changed_hh > 0);
    // A dropped recurrent weight gets no gradient, so it keeps its full (restored) value.
    let off = model.buffers()[0].1.as_slice().len();
    for (k, m) in mask.iter().enumerate() {
        if *m == 0.0 {
            assert_eq!(after[off + k], before[off + k], "dropped weight {k} changed");
        }
    }
}

#[test]
fn one_update_is_sgd_through_the_mask_on_the_full_weights() {
    for cell in [CellKind::Lstm, CellKind::Gru] {
        check_one_update(cell, 0.4);
    }
}

#[test]
fn zero_weight_drop_changes_nothing() {
    // p = 0 draws nothing from the RNG and gives the plain update; p > 0 differs.
    let v = vocab();
    let ids = random_ids(&v, 4 * 10 + 1, 3);
    let run = |p: f64, threads: usize| {
        let mut m = small(CellKind::Lstm, &v, 6);
        let mut t = CharLmTrainer::new(sgd_cfg(p, threads), ids.len()).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        t.train_epoch(&mut m, &ids, &mut rng, |_| {}).unwrap();
        (flat(&m), rng.random::<u64>())
    };
    let mut plain_rng = ChaCha8Rng::seed_from_u64(4);
    let plain = run(0.0, 1);
    assert_eq!(plain.1, plain_rng.random::<u64>(), "no draws without dropout");
    assert_ne!(run(0.3, 1).0, plain.0);
    // Two threads see the same masked weights: the same seed gives the same result.
    assert_eq!(run(0.3, 2), run(0.3, 2));
}

#[test]
fn weight_drop_must_be_a_probability_below_one() {
    for bad in [1.0, 1.5, -0.1, f64::NAN, f64::INFINITY] {
        let cfg = CharLmTrainConfig {
            weight_drop: bad,
            ..CharLmTrainConfig::default()
        };
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("train.weight_drop"), "{bad}: {err}");
    }
    let ok = CharLmTrainConfig {
        weight_drop: 0.5,
        ..CharLmTrainConfig::default()
    };
    ok.validate().unwrap();
    // Settings saved before the field existed still load (it defaults to 0).
    let mut json = serde_json::to_value(CharLmTrainConfig::default()).unwrap();
    json.as_object_mut().unwrap().remove("weight_drop");
    let cfg: CharLmTrainConfig = serde_json::from_value(json).unwrap();
    assert_eq!(cfg.weight_drop, 0.0);
}
