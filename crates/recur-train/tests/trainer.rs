//! The trainer: determinism, bit-exact resume, the non-finite guard, early stopping, and the
//! I/O patterns of the supervised task (many-to-one classification, regression, tagging).

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use recur_nn::init::Init;
use recur_nn::{CellKind, RnnConfig};
use recur_train::checkpoint;
use recur_train::models::sequence::{Head, SequenceModel, SequenceModelConfig};
use recur_train::optim::{OptimizerConfig, OptimizerKind};
use recur_train::schedule::Mode;
use recur_train::supervised::{evaluate, Example, RegressionLoss, SeqDataset, Supervised, Target, Task};
use recur_train::trainer::{CheckpointPlan, EarlyStopping, Stop, TrainConfig, Trainer};
use recur_train::{Module, TrainError};
use serde_json::json;

/// Sequences of ±1 steps (2 features: value and noise) with a per-sequence label (sum > 0),
/// per-step tags (running sum > 0) and a regression target (the mean).
type Raw = (Vec<f32>, usize, usize, Vec<usize>, f32);

fn data(n: usize, seed: u64) -> Vec<Raw> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let len = rng.random_range(3..12);
            let mut f = Vec::new();
            let (mut sum, mut tags) = (0.0f32, Vec::new());
            for _ in 0..len {
                let v = if rng.random::<bool>() { 1.0 } else { -1.0 };
                sum += v;
                tags.push(usize::from(sum > 0.0));
                f.extend([v, rng.random_range(-0.1..0.1)]);
            }
            (f, len, usize::from(sum > 0.0), tags, sum / len as f32)
        })
        .collect()
}

fn dataset(kind: &str, n: usize, seed: u64) -> SeqDataset {
    SeqDataset {
        features: 2,
        examples: data(n, seed)
            .into_iter()
            .map(|(features, len, label, tags, mean)| Example {
                len,
                features,
                ids: Vec::new(),
                target: match kind {
                    "class" => Target::Class(label),
                    "tags" => Target::Tags(tags),
                    _ => Target::Real(vec![mean]),
                },
            })
            .collect(),
    }
}

fn model(head: Head, outputs: usize, seed: u64) -> SequenceModel {
    let cfg = SequenceModelConfig {
        features: 2,
        vocab: 0,
        embed_dim: 0,
        rnn: RnnConfig {
            bidirectional: head != Head::PerStep,
            dropout: 0.0,
            recurrent_dropout: 0.1,
            ..RnnConfig::new(CellKind::Gru, 2, 16)
        },
        head,
        outputs,
    };
    SequenceModel::new(cfg, &Init::recurrent_default(), &mut ChaCha8Rng::seed_from_u64(seed)).unwrap()
}

fn classifier() -> Supervised {
    let task = Task::Multiclass {
        classes: 2,
        class_weights: Some(vec![1.0, 1.5]),
    };
    Supervised::new(model(Head::MeanMax, 2, 7), task, None).unwrap()
}

fn config(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 16,
        optimizer: OptimizerConfig {
            kind: OptimizerKind::AdamW,
            lr: 1e-2,
            ..OptimizerConfig::default()
        },
        checkpoint_interval_secs: 0.0,
        seed: 3,
        ..TrainConfig::default()
    }
}

fn plan(root: &std::path::Path) -> CheckpointPlan {
    CheckpointPlan {
        best_dir: root.join("model"),
        last_dir: root.join("last"),
        kind: "sequence".into(),
        model: json!({}),
        preprocessing: json!({}),
    }
}

fn no_eval(_: &Supervised) -> recur_train::Result<BTreeMap<String, f64>> {
    Ok(BTreeMap::new())
}

#[test]
fn learns_and_is_deterministic() {
    let train = dataset("class", 256, 1);
    let test = dataset("class", 200, 2);
    let mut a = classifier();
    let mut b = classifier();
    Trainer::new(config(6))
        .unwrap()
        .run(&mut a, &train, None, &mut no_eval, &mut |_| {})
        .unwrap();
    Trainer::new(config(6))
        .unwrap()
        .run(&mut b, &train, None, &mut no_eval, &mut |_| {})
        .unwrap();
    assert_eq!(a.named_tensors(), b.named_tensors(), "same seed, same weights");
    let acc = evaluate(&a, &test, 64).unwrap()["accuracy"];
    assert!(acc > 0.9, "accuracy {acc}");
    let mut other = config(6);
    other.seed = 4;
    let mut c = classifier();
    Trainer::new(other)
        .unwrap()
        .run(&mut c, &train, None, &mut no_eval, &mut |_| {})
        .unwrap();
    assert_ne!(
        a.named_tensors(),
        c.named_tensors(),
        "another seed, other batches and masks"
    );
}

#[test]
fn resume_equals_uninterrupted_training_bit_for_bit() {
    let train = dataset("class", 100, 1);
    let tmp = tempfile::tempdir().unwrap();
    // 100 examples / 16 = 7 batches per epoch; stop mid-epoch at step 10, resume to 20.
    let mut straight = classifier();
    let mut cfg = config(5);
    cfg.max_steps = Some(20);
    let mut t = Trainer::new(cfg.clone()).unwrap();
    let stop = t.run(
        &mut straight,
        &train,
        Some(&plan(&tmp.path().join("a"))),
        &mut no_eval,
        &mut |_| {},
    );
    assert_eq!(stop.unwrap(), Stop::MaxSteps);

    let mut first = classifier();
    cfg.max_steps = Some(10);
    let p = plan(&tmp.path().join("b"));
    Trainer::new(cfg)
        .unwrap()
        .run(&mut first, &train, Some(&p), &mut no_eval, &mut |_| {})
        .unwrap();
    let mut resumed = classifier();
    let mut t2 = Trainer::resume(&p.last_dir, &mut resumed).unwrap();
    assert_eq!(resumed.named_tensors(), first.named_tensors());
    assert_eq!(t2.state().step, 10);
    t2.set_max_steps(Some(20));
    t2.run(&mut resumed, &train, Some(&p), &mut no_eval, &mut |_| {})
        .unwrap();
    assert_eq!(resumed.named_tensors(), straight.named_tensors());
    assert_eq!(t2.optimizer(), t.optimizer());
    assert_eq!(t2.state(), t.state());
}

#[test]
fn a_huge_learning_rate_aborts_cleanly_and_the_last_good_checkpoint_loads() {
    let train = dataset("class", 64, 1);
    let tmp = tempfile::tempdir().unwrap();
    let p = plan(tmp.path());
    let mut m = classifier();
    let mut cfg = config(50);
    cfg.optimizer = OptimizerConfig {
        kind: OptimizerKind::Adam,
        lr: 3e38,
        ..OptimizerConfig::default()
    };
    cfg.clip_norm = None;
    cfg.max_bad_steps = 3;
    let err = Trainer::new(cfg)
        .unwrap()
        .run(&mut m, &train, Some(&p), &mut no_eval, &mut |_| {})
        .unwrap_err();
    assert!(matches!(err, TrainError::Diverged { consecutive: 3, .. }), "{err}");
    assert!(err.to_string().contains("lower the learning rate"), "{err}");
    let ck = checkpoint::load(&p.last_dir).unwrap();
    let mut fresh = classifier();
    fresh.load_named(&ck.tensors).unwrap();
    assert!(fresh
        .named_tensors()
        .values()
        .all(|(_, v)| v.iter().all(|x| x.is_finite())));
    // A resumed trainer from that checkpoint is consistent too.
    Trainer::resume(&p.last_dir, &mut fresh).unwrap();
}

#[test]
fn early_stopping_keeps_the_best_epoch() {
    let train = dataset("class", 128, 1);
    let val = dataset("class", 64, 5);
    let tmp = tempfile::tempdir().unwrap();
    let p = plan(tmp.path());
    let mut m = classifier();
    let mut cfg = config(60);
    cfg.early_stopping = Some(EarlyStopping {
        metric: "loss".into(),
        mode: Mode::Min,
        patience: 2,
        min_delta: 0.0,
    });
    let mut records = Vec::new();
    let mut t = Trainer::new(cfg).unwrap();
    let stop = t
        .run(
            &mut m,
            &train,
            Some(&p),
            &mut |m: &Supervised| evaluate(m, &val, 64),
            &mut |r| records.push(r.clone()),
        )
        .unwrap();
    assert_eq!(stop, Stop::EarlyStop);
    let best = t.state().best_epoch.unwrap();
    assert_eq!(records.len(), best + 3);
    let best_loss = records[best - 1].val["loss"];
    assert!(records.iter().all(|r| r.val["loss"] >= best_loss));
    // The best checkpoint holds the best epoch's weights: re-evaluating gives its loss.
    let ck = checkpoint::load(&p.best_dir).unwrap();
    let mut reloaded = classifier();
    reloaded.load_named(&ck.tensors).unwrap();
    let again = evaluate(&reloaded, &val, 64).unwrap()["loss"];
    assert!((again - best_loss).abs() < 1e-9, "{again} vs {best_loss}");
    assert_eq!(ck.metrics["epoch"], json!(best));
    // A missing metric is a config error naming the field.
    let mut cfg = config(2);
    cfg.early_stopping = Some(EarlyStopping {
        metric: "auc".into(),
        mode: Mode::Max,
        patience: 2,
        min_delta: 0.0,
    });
    let e = Trainer::new(cfg)
        .unwrap()
        .run(
            &mut classifier(),
            &train,
            None,
            &mut |m: &Supervised| evaluate(m, &val, 64),
            &mut |_| {},
        )
        .unwrap_err();
    assert!(e.to_string().contains("training.early_stopping.metric"), "{e}");
}

#[test]
fn tagging_and_regression_learn() {
    let train = dataset("tags", 256, 1);
    let test = dataset("tags", 100, 2);
    let task = Task::Tagging {
        classes: 2,
        class_weights: None,
    };
    let mut tagger = Supervised::new(model(Head::PerStep, 2, 1), task, None).unwrap();
    Trainer::new(config(8))
        .unwrap()
        .run(&mut tagger, &train, None, &mut no_eval, &mut |_| {})
        .unwrap();
    let acc = evaluate(&tagger, &test, 64).unwrap()["accuracy"];
    assert!(acc > 0.95, "tagging accuracy {acc}");

    let train = dataset("real", 256, 1);
    let test = dataset("real", 100, 2);
    let task = Task::Regression {
        outputs: 1,
        loss: RegressionLoss::Huber(1.0),
    };
    let mut reg = Supervised::new(model(Head::Final, 1, 1), task.clone(), Some(4)).unwrap();
    let before = evaluate(&reg, &test, 64).unwrap()["mae"];
    Trainer::new(config(8))
        .unwrap()
        .run(&mut reg, &train, None, &mut no_eval, &mut |_| {})
        .unwrap();
    let after = evaluate(&reg, &test, 64).unwrap()["mae"];
    assert!(after < 0.5 * before && after < 0.1, "mae {before} → {after}");
    // A head that does not fit the task is refused.
    assert!(Supervised::new(model(Head::PerStep, 1, 1), task, None).is_err());
}

#[test]
fn two_threads_match_one_thread_and_are_deterministic() {
    let train = dataset("class", 96, 1);
    let plain = || {
        let mut m = model(Head::MeanMax, 2, 7);
        // No dropout, so that the shards see exactly what one thread sees.
        let mut cfg = m.config().clone();
        cfg.rnn.recurrent_dropout = 0.0;
        m = SequenceModel::new(cfg, &Init::recurrent_default(), &mut ChaCha8Rng::seed_from_u64(7)).unwrap();
        let task = Task::Multiclass {
            classes: 2,
            class_weights: Some(vec![1.0, 3.0]),
        };
        Supervised::new(m, task, None).unwrap()
    };
    let run = |threads: usize| {
        let mut m = plain();
        let mut cfg = config(1);
        cfg.threads = threads;
        cfg.max_steps = Some(3);
        // SGD without clipping: any error in how shards are weighted shows in the weights.
        cfg.optimizer = OptimizerConfig {
            kind: OptimizerKind::Sgd,
            lr: 0.5,
            ..OptimizerConfig::default()
        };
        cfg.clip_norm = None;
        Trainer::new(cfg)
            .unwrap()
            .run(&mut m, &train, None, &mut no_eval, &mut |_| {})
            .unwrap();
        m
    };
    let (one, two, two_again) = (run(1), run(2), run(2));
    assert_eq!(
        two.named_tensors(),
        two_again.named_tensors(),
        "same seed and thread count, same weights"
    );
    let mut worst = 0.0f32;
    for ((_, (_, a)), (_, (_, b))) in one.named_tensors().iter().zip(two.named_tensors().iter()) {
        for (x, y) in a.iter().zip(b) {
            worst = worst.max((x - y).abs());
        }
    }
    assert!(
        worst < 1e-5,
        "sharded gradients combine to the full batch's: max weight difference {worst}"
    );
}
