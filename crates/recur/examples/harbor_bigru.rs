//! Experiment: the escalation BiGRU against the GBDT baseline on generated Harbor tickets.
//!
//! `cargo run --release -p recur --example harbor_bigru -- TICKETS SEED HIDDEN EPOCHS CUTS`

use std::collections::BTreeMap;
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use recur_baseline::{train_with_validation, GbdtConfig, RowMatrix};
use recur_data::aggregate::AggregateFeaturizer;
use recur_data::features::{FeatureConfig, Preprocessor};
use recur_data::harbor::{generate, HarborConfig};
use recur_data::labels::{CutPolicy, LabelConfig, Labeler, Sample};
use recur_data::schema::EventLog;
use recur_data::split::{split_log, SplitConfig};
use recur_nn::init::Init;
use recur_nn::{CellKind, RnnConfig};
use recur_train::metrics::roc_auc;
use recur_train::models::sequence::{Head, SequenceModel, SequenceModelConfig};
use recur_train::optim::{OptimizerConfig, OptimizerKind};
use recur_train::schedule::{Decay, Mode, ScheduleConfig};
use recur_train::supervised::{evaluate, predict, Example, SeqDataset, Supervised, Target, Task};
use recur_train::trainer::{EarlyStopping, TrainConfig, Trainer};

fn dataset(log: &EventLog, pre: &Preprocessor, samples: &[Sample]) -> SeqDataset {
    SeqDataset {
        features: pre.n_scalars(),
        examples: samples
            .iter()
            .map(|s| {
                let f = pre.sample_features(log, s);
                Example {
                    len: f.len(),
                    features: f.scalars,
                    ids: f.type_ids.iter().map(|&i| i as usize).collect(),
                    target: Target::Binary(if s.label { 1.0 } else { 0.0 }),
                }
            })
            .collect(),
    }
}

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: usize| a.get(i).map_or(d, |s| s.parse().unwrap());
    let (tickets, seed, hidden, epochs, cuts) = (arg(0, 20000), arg(1, 1) as u64, arg(2, 128), arg(3, 6), arg(4, 8));
    let t0 = Instant::now();
    let log = generate(&HarborConfig::new(tickets, seed));
    let split = split_log(&log, &SplitConfig::default()).unwrap();
    let labeler = Labeler::new(LabelConfig {
        policy: CutPolicy::Sampled { max_per_ticket: cuts },
        ..LabelConfig::default()
    })
    .unwrap();
    let samples = labeler.split_samples(&log, &split);
    let pre = Preprocessor::fit(&log, &samples.train, FeatureConfig::default()).unwrap();
    let agg = AggregateFeaturizer::from_preprocessor(&pre);
    let lab = |s: &[Sample]| s.iter().map(|s| s.label).collect::<Vec<bool>>();
    let (xt, xv, xh) = (agg.matrix(&log, &samples.train), agg.matrix(&log, &samples.validation), agg.matrix(&log, &samples.holdout));
    let g = train_with_validation(
        &RowMatrix::new(&xt.data, xt.n_rows, xt.n_cols).unwrap(),
        &lab(&samples.train),
        &RowMatrix::new(&xv.data, xv.n_rows, xv.n_cols).unwrap(),
        &lab(&samples.validation),
        &GbdtConfig::default(),
    )
    .unwrap();
    let pg = g.predict_proba(&RowMatrix::new(&xh.data, xh.n_rows, xh.n_cols).unwrap()).unwrap();
    let yh = lab(&samples.holdout);
    let gbdt_auc = roc_auc(&yh, &pg).unwrap();
    let events: usize = samples.train.iter().map(|s| s.prefix_len).sum();
    let pos = samples.train.iter().filter(|s| s.label).count();
    println!(
        "{tickets} tickets: train {} samples ({pos} positive, {events} events), val {}, holdout {} ({} positive); GBDT holdout AUC {gbdt_auc:.4} [{:.1} s]",
        samples.train.len(),
        samples.validation.len(),
        samples.holdout.len(),
        yh.iter().filter(|&&y| y).count(),
        t0.elapsed().as_secs_f64()
    );
    let (train, val, hold) = (
        dataset(&log, &pre, &samples.train),
        dataset(&log, &pre, &samples.validation),
        dataset(&log, &pre, &samples.holdout),
    );
    let cfg = SequenceModelConfig {
        features: pre.n_scalars(),
        vocab: pre.vocab_size(),
        embed_dim: pre.embedding_dim(),
        rnn: RnnConfig {
            num_layers: 2,
            bidirectional: true,
            dropout: 0.1,
            ..RnnConfig::new(CellKind::Gru, pre.embedding_dim() + pre.n_scalars(), hidden)
        },
        head: Head::Final,
        outputs: 1,
    };
    let model = SequenceModel::new(cfg, &Init::recurrent_default(), &mut ChaCha8Rng::seed_from_u64(seed)).unwrap();
    let neg = samples.train.len() - pos;
    let task = Task::Binary {
        pos_weight: Some(neg as f32 / pos.max(1) as f32),
    };
    let mut sup = Supervised::new(model, task, Some(64)).unwrap();
    let steps = epochs * train.examples.len().div_ceil(64);
    let mut trainer = Trainer::new(TrainConfig {
        epochs,
        batch_size: 64,
        optimizer: OptimizerConfig {
            kind: OptimizerKind::AdamW,
            lr: 2e-3,
            ..OptimizerConfig::default()
        },
        schedule: ScheduleConfig {
            warmup_steps: 200,
            decay: Decay::Cosine,
            total_steps: Some(steps as u64),
            min_factor: 0.05,
            ..ScheduleConfig::default()
        },
        clip_norm: Some(1.0),
        early_stopping: Some(EarlyStopping {
            metric: "auc".into(),
            mode: Mode::Max,
            patience: 2,
            min_delta: 0.0,
        }),
        seed,
        ..TrainConfig::default()
    })
    .unwrap();
    let t1 = Instant::now();
    let mut best: Option<(f64, Supervised)> = None;
    let mut eval = |m: &Supervised| {
        let r = evaluate(m, &val, 256)?;
        let auc = r.get("auc").copied().unwrap_or(0.0);
        if best.as_ref().is_none_or(|(b, _)| auc > *b) {
            best = Some((auc, m.clone()));
        }
        Ok(r)
    };
    trainer
        .run(&mut sup, &train, None, &mut eval, &mut |r| {
            let vals: BTreeMap<_, _> = r.val.iter().map(|(k, v)| (k.clone(), (v * 1e4).round() / 1e4)).collect();
            println!(
                "epoch {} loss {:.4} val {vals:?} {:.0} s ({:.0} events/s)",
                r.epoch,
                r.train_loss,
                r.seconds,
                events as f64 / r.seconds
            );
        })
        .unwrap();
    let (_, m) = best.unwrap();
    let logits = predict(&m.model, &hold, 256).unwrap();
    let p: Vec<f64> = logits.iter().map(|l| l[0] as f64).collect();
    println!(
        "BiGRU holdout AUC {:.4} vs GBDT {gbdt_auc:.4} [{:.0} s training]",
        roc_auc(&yh, &p).unwrap(),
        t1.elapsed().as_secs_f64()
    );
}
