//! Iterate averaging: [`ParamAverage`] is the exact mean of the iterates it was given, and
//! [`CharLmTrainer`] with `average_from` averages exactly the tail of the run without changing
//! the training itself.

mod charlm_support;

use charlm_support::{random_ids, small};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use recur_nn::CellKind;
use recur_train::models::charlm::{CharLmTrainConfig, CharLmTrainer, CharVocab};
use recur_train::{Module, NamedTensors, ParamAverage};

fn vocab() -> CharVocab {
    CharVocab::from_text("the whale and the sea, a ship.", 1)
}

/// The mean of `snaps`, computed as the average does: an f64 sum of the f32 values, divided
/// by the count, rounded to f32.
fn mean(snaps: &[NamedTensors]) -> NamedTensors {
    let mut out = snaps[0].clone();
    for (name, (_, data)) in out.iter_mut() {
        for (k, v) in data.iter_mut().enumerate() {
            let s: f64 = snaps.iter().map(|m| m[name].1[k] as f64).sum();
            *v = (s / snaps.len() as f64) as f32;
        }
    }
    out
}

#[test]
fn param_average_is_the_exact_mean_of_its_iterates() {
    let v = vocab();
    let (a, b) = (small(CellKind::Lstm, &v, 1), small(CellKind::Lstm, &v, 2));
    let mut avg = ParamAverage::new(&a);
    let mut out = small(CellKind::Lstm, &v, 3);
    let err = avg.write_to(&mut out).unwrap_err().to_string();
    assert!(err.contains("no iterates"), "{err}");
    avg.add(&a).unwrap();
    avg.add(&b).unwrap();
    assert_eq!(avg.count(), 2);
    avg.write_to(&mut out).unwrap();
    assert_eq!(out.named_tensors(), mean(&[a.named_tensors(), b.named_tensors()]));
    // An average of one model is that model.
    let mut one = ParamAverage::new(&a);
    one.add(&a).unwrap();
    one.write_to(&mut out).unwrap();
    assert_eq!(out.named_tensors(), a.named_tensors());
    // Another layout is refused, both ways.
    let gru = small(CellKind::Gru, &v, 1);
    let err = avg.add(&gru).unwrap_err().to_string();
    assert!(err.contains("lengths"), "{err}");
    let mut gru_out = gru.clone();
    assert!(avg.write_to(&mut gru_out).is_err());
    assert_eq!(
        gru_out.named_tensors(),
        gru.named_tensors(),
        "a refused write changes nothing"
    );
}

#[test]
fn trainer_averages_exactly_the_tail_of_the_run() {
    let v = vocab();
    // One update per epoch (4 streams of 10 steps, BPTT 10), so the weights after every
    // update can be read between `train_epoch` calls.
    let ids = random_ids(&v, 4 * 10 + 1, 7);
    let cfg = |average_from| CharLmTrainConfig {
        batch: 4,
        bptt: 10,
        epochs: 10,
        average_from,
        ..CharLmTrainConfig::default()
    };
    let run = |average_from| {
        let mut model = small(CellKind::Lstm, &v, 4);
        let mut trainer = CharLmTrainer::new(cfg(average_from), ids.len()).unwrap();
        assert_eq!(trainer.total_steps(), 10);
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let mut snaps = Vec::new();
        while !trainer.finished() {
            let s = trainer.train_epoch(&mut model, &ids, &mut rng, |_| {}).unwrap();
            assert_eq!(s.steps, 1);
            snaps.push(model.named_tensors());
        }
        (model, trainer, snaps)
    };
    let (plain, plain_trainer, snaps) = run(None);
    assert_eq!(plain_trainer.averaged_updates(), 0);
    assert!(plain_trainer.averaged(&plain).unwrap().is_none());
    let (model, trainer, _) = run(Some(0.5));
    assert_eq!(
        model.named_tensors(),
        plain.named_tensors(),
        "averaging does not change training"
    );
    // From half of the 10 updates on: the weights after updates 6 to 10.
    assert_eq!(trainer.averaged_updates(), 5);
    let avg = trainer.averaged(&model).unwrap().expect("an average");
    assert_eq!(avg.named_tensors(), mean(&snaps[5..]));
    assert_ne!(avg.named_tensors(), model.named_tensors());
    // From the start: every update.
    let (model, trainer, _) = run(Some(0.0));
    assert_eq!(trainer.averaged_updates(), 10);
    assert_eq!(trainer.averaged(&model).unwrap().unwrap().named_tensors(), mean(&snaps));
}

#[test]
fn average_from_must_be_a_fraction() {
    for bad in [1.0, 1.5, -0.1, f64::NAN, f64::INFINITY] {
        let cfg = CharLmTrainConfig {
            average_from: Some(bad),
            ..CharLmTrainConfig::default()
        };
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("train.average_from"), "{bad}: {err}");
    }
}
