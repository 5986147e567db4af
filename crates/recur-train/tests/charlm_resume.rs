//! Resuming a character-LM run from a checkpoint is bit-for-bit the uninterrupted run: the
//! optimizer moments, schedule position, iterate average, weight-drop and dropout draws all
//! continue where they stopped, on one thread and on two.

mod charlm_support;

use charlm_support::{random_ids, small};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use recur_nn::CellKind;
use recur_train::checkpoint;
use recur_train::models::charlm::{CharLm, CharLmTrainConfig, CharLmTrainer, CharVocab};
use recur_train::Module;

fn vocab() -> CharVocab {
    CharVocab::from_text("the whale and the sea, a ship.", 1)
}

fn cfg(threads: usize) -> CharLmTrainConfig {
    let mut c = CharLmTrainConfig {
        batch: 4,
        bptt: 16,
        epochs: 4,
        threads,
        weight_drop: 0.2,
        average_from: Some(0.3),
        ..CharLmTrainConfig::default()
    };
    c.schedule.warmup_steps = 5;
    c
}

fn epochs(t: &mut CharLmTrainer, m: &mut CharLm, ids: &[usize], rng: &mut ChaCha8Rng, n: usize) {
    for _ in 0..n {
        t.train_epoch(m, ids, rng, |_| {}).unwrap();
    }
}

/// Saves `model` (or its average, as the `charlm` example does) with the resume state, and
/// loads both back from disk.
fn round_trip(dir: &std::path::Path, t: &CharLmTrainer, m: &CharLm, rng: &ChaCha8Rng) -> checkpoint::Checkpoint {
    let shown = t.averaged(m).unwrap().unwrap_or_else(|| m.clone());
    let mut ckpt = shown
        .to_checkpoint(serde_json::json!({}), serde_json::json!({}))
        .unwrap();
    let (state, tensors) = t.resume_state(m, rng);
    ckpt.state = state;
    ckpt.optimizer = Some(tensors);
    checkpoint::save(dir, &ckpt).unwrap();
    checkpoint::load(dir).unwrap()
}

#[test]
fn resume_after_any_epoch_equals_the_uninterrupted_run() {
    let v = vocab();
    let ids = random_ids(&v, 700, 3);
    for threads in [1, 2] {
        for cell in [CellKind::Lstm, CellKind::Gru] {
            let c = cfg(threads);
            let mut a = small(cell, &v, 7);
            let mut ta = CharLmTrainer::new(c.clone(), ids.len()).unwrap();
            let mut ra = ChaCha8Rng::seed_from_u64(11);
            epochs(&mut ta, &mut a, &ids, &mut ra, 4);

            let mut b = small(cell, &v, 7);
            let mut tb = CharLmTrainer::new(c.clone(), ids.len()).unwrap();
            let mut rb = ChaCha8Rng::seed_from_u64(11);
            epochs(&mut tb, &mut b, &ids, &mut rb, 2);
            let dir = tempfile::tempdir().unwrap();
            let ck = round_trip(dir.path(), &tb, &b, &rb);
            let mut b2 = CharLm::from_checkpoint(&ck).unwrap();
            assert_ne!(
                b2.named_tensors(),
                b.named_tensors(),
                "the checkpoint's weights are the average, not the iterate"
            );
            let (mut tb2, mut rb2) =
                CharLmTrainer::resume(c.clone(), ids.len(), &ck.state, ck.optimizer.as_ref().unwrap(), &mut b2)
                    .unwrap();
            assert_eq!(b2.named_tensors(), b.named_tensors(), "resume restores the iterate");
            assert_eq!((tb2.steps(), tb2.total_steps()), (tb.steps(), tb.total_steps()));
            epochs(&mut tb2, &mut b2, &ids, &mut rb2, 2);
            assert_eq!(b2.named_tensors(), a.named_tensors(), "{threads} threads, {cell:?}");
            assert_eq!(
                tb2.averaged(&b2).unwrap().unwrap().named_tensors(),
                ta.averaged(&a).unwrap().unwrap().named_tensors()
            );
            assert_eq!(tb2.averaged_updates(), ta.averaged_updates());
            assert!(tb2.finished() && ta.finished());
        }
    }
}

#[test]
fn resume_without_averaging_and_from_the_first_epoch() {
    let v = vocab();
    let ids = random_ids(&v, 500, 4);
    let c = CharLmTrainConfig {
        average_from: None,
        ..cfg(1)
    };
    let mut a = small(CellKind::Lstm, &v, 2);
    let mut ta = CharLmTrainer::new(c.clone(), ids.len()).unwrap();
    let mut ra = ChaCha8Rng::seed_from_u64(5);
    epochs(&mut ta, &mut a, &ids, &mut ra, 4);
    for stop in [1, 3] {
        let mut b = small(CellKind::Lstm, &v, 2);
        let mut tb = CharLmTrainer::new(c.clone(), ids.len()).unwrap();
        let mut rb = ChaCha8Rng::seed_from_u64(5);
        epochs(&mut tb, &mut b, &ids, &mut rb, stop);
        let dir = tempfile::tempdir().unwrap();
        let ck = round_trip(dir.path(), &tb, &b, &rb);
        let mut b2 = CharLm::from_checkpoint(&ck).unwrap();
        assert_eq!(b2.named_tensors(), b.named_tensors());
        let (mut tb2, mut rb2) =
            CharLmTrainer::resume(c.clone(), ids.len(), &ck.state, ck.optimizer.as_ref().unwrap(), &mut b2).unwrap();
        epochs(&mut tb2, &mut b2, &ids, &mut rb2, 4 - stop);
        assert_eq!(b2.named_tensors(), a.named_tensors(), "stopped after epoch {stop}");
    }
}

#[test]
fn bad_resume_states_are_refused_with_the_reason() {
    let v = vocab();
    let ids = random_ids(&v, 500, 4);
    let c = cfg(1);
    let mut m = small(CellKind::Lstm, &v, 2);
    let mut t = CharLmTrainer::new(c.clone(), ids.len()).unwrap();
    let mut r = ChaCha8Rng::seed_from_u64(5);
    // Two epochs of four: past `average_from`, so the state holds an average.
    epochs(&mut t, &mut m, &ids, &mut r, 2);
    assert!(t.averaged_updates() > 0);
    let (state, tensors) = t.resume_state(&m, &r);
    let err = |c: CharLmTrainConfig, s: &serde_json::Value, t: &recur_train::NamedTensors| {
        let mut m2 = m.clone();
        match CharLmTrainer::resume(c, ids.len(), s, t, &mut m2) {
            Ok(_) => panic!("a bad resume state was accepted"),
            Err(e) => e.to_string(),
        }
    };
    let other = CharLmTrainConfig { batch: 5, ..c.clone() };
    assert!(err(other, &state, &tensors).contains("settings differ"));
    let mut mid = state.clone();
    mid["step"] = serde_json::json!(3);
    assert!(err(c.clone(), &mid, &tensors).contains("inside an epoch"));
    let mut seed = state.clone();
    seed["rng"]["seed"] = serde_json::json!("zz");
    assert!(err(c.clone(), &seed, &tensors).contains("rng.seed"));
    let mut no_avg = tensors.clone();
    no_avg.retain(|k, _| !k.starts_with("average."));
    assert!(err(c.clone(), &state, &no_avg).contains("average"));
    let mut no_m = tensors.clone();
    no_m.retain(|k, _| !k.starts_with("optim.m."));
    assert!(err(c, &state, &no_m).contains("optim.m.0"));
}
