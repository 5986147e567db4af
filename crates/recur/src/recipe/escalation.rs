//! The escalation forecaster (the guide's worked example): ticket event logs in, a time-split
//! BiGRU trained at cut points, compared with gradient-boosted trees on aggregated features.
//!
//! A sample is a ticket seen up to a cut point; its label is "escalates within the next 4
//! hours" (`recur_data::labels`). The per-step input is an event-type embedding concatenated
//! with scaled scalars to 64 dimensions (`recur_data::features::Preprocessor`, fitted on the
//! training window only and saved in the checkpoint). The model is the guide's: a 2-layer
//! BiGRU with 128 units per direction, final forward and backward states concatenated, a
//! linear head; BCE with `pos_weight` for the rare positives; truncated BPTT with chunk 64;
//! dropout between layers; clipping at 1.0; warmup; early stopping on validation AUC.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use recur_baseline::{train_with_validation, GbdtConfig, RowMatrix};
use recur_data::aggregate::{AggregateFeaturizer, FeatureMatrix};
use recur_data::features::{FeatureConfig, Preprocessor};
use recur_data::labels::{CutPolicy, LabelConfig, Labeler, Sample, SplitSamples};
use recur_data::schema::EventLog;
use recur_data::split::{Split, SplitConfig, SplitPart};
use recur_nn::init::Init;
use recur_nn::{CellKind, RnnConfig};
use recur_train::checkpoint;
use recur_train::models::sequence::{Head, SequenceModel, SequenceModelConfig};
use recur_train::optim::{OptimizerConfig, OptimizerKind};
use recur_train::schedule::{Decay, Mode, ScheduleConfig};
use recur_train::supervised::{evaluate, predict, Example, SeqDataset, Supervised, Target, Task};
use recur_train::trainer::{CheckpointPlan, EarlyStopping, EpochRecord, TrainConfig, Trainer};
use recur_train::Module;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{epoch_message, progress, RecipeError, Result, RunDir};

/// `preprocessing.kind` of an escalation checkpoint.
pub const PREP_KIND: &str = "event_log";

/// The network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EscalationModel {
    /// Hidden units per direction.
    pub hidden_size: usize,
    /// Stacked layers.
    pub num_layers: usize,
    /// Bidirectional (the guide's model) or unidirectional (for streaming).
    pub bidirectional: bool,
    /// Dropout between layers.
    pub dropout: f64,
}

impl Default for EscalationModel {
    fn default() -> Self {
        EscalationModel {
            hidden_size: 128,
            num_layers: 2,
            bidirectional: true,
            dropout: 0.1,
        }
    }
}

/// Everything the forecaster's training needs besides the log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EscalationConfig {
    /// The time split.
    pub split: SplitConfig,
    /// Cut points and the horizon.
    pub labels: LabelConfig,
    /// Vocabulary and scalers.
    pub features: FeatureConfig,
    /// The cut policy of the training samples; `None` uses `labels.policy`. Denser training
    /// cuts (for example `every_event`) give the network more of the rare positive cuts at
    /// their natural rate; validation and holdout always keep `labels.policy`, so the
    /// reported figures do not depend on this choice.
    pub train_cuts: Option<CutPolicy>,
    /// The positive-class weight of the BCE loss.
    pub pos_weight: PosWeight,
    /// The network.
    pub model: EscalationModel,
    /// Truncated BPTT chunk.
    pub truncate: usize,
    /// The training loop.
    pub training: TrainConfig,
    /// The baseline.
    pub gbdt: GbdtConfig,
}

impl Default for EscalationConfig {
    fn default() -> Self {
        EscalationConfig {
            split: SplitConfig::default(),
            labels: LabelConfig::default(),
            features: FeatureConfig::default(),
            train_cuts: None,
            pos_weight: PosWeight::default(),
            model: EscalationModel::default(),
            truncate: 64,
            training: TrainConfig {
                epochs: 4,
                batch_size: 64,
                optimizer: OptimizerConfig {
                    kind: OptimizerKind::AdamW,
                    lr: 2e-3,
                    ..OptimizerConfig::default()
                },
                schedule: ScheduleConfig {
                    warmup_steps: 200,
                    decay: Decay::Cosine,
                    total_steps: None,
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
                plateau: None,
                max_bad_steps: 10,
                bucketing: true,
                seed: 0,
                max_steps: None,
                checkpoint_interval_secs: 60.0,
                threads: 2,
            },
            gbdt: GbdtConfig::default(),
        }
    }
}

/// The samples of one split; the training part follows `train_cuts` when it is set.
pub fn samples(cfg: &EscalationConfig, log: &EventLog, split: &Split) -> Result<SplitSamples> {
    let labeler = Labeler::new(cfg.labels.clone()).map_err(|e| RecipeError::Invalid(e.to_string()))?;
    let mut s = labeler.split_samples(log, split);
    if let Some(policy) = &cfg.train_cuts {
        let train = Labeler::new(LabelConfig {
            policy: policy.clone(),
            ..cfg.labels.clone()
        })
        .map_err(|e| RecipeError::Invalid(format!("train_cuts: {e}")))?;
        s.train = train.samples(log, split.part(SplitPart::Train), split.window_end_ms(SplitPart::Train));
    }
    Ok(s)
}

/// How the positive class is weighted in the BCE loss (`pos_weight`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PosWeight {
    /// A rule applied to the training window's class counts.
    Rule(PosWeightRule),
    /// A fixed weight (positive and finite).
    Value(f64),
}

/// Rules for [`PosWeight`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PosWeightRule {
    /// negatives / positives: both classes weigh the same in total.
    Balanced,
    /// sqrt(negatives / positives): half way, in log terms, between no weighting and balanced.
    Sqrt,
    /// No weighting (1).
    None,
}

impl Default for PosWeight {
    fn default() -> Self {
        PosWeight::Rule(PosWeightRule::Balanced)
    }
}

impl PosWeight {
    /// The weight for `neg` negatives and `pos` positives.
    pub fn resolve(self, neg: usize, pos: usize) -> Result<f32> {
        let w = match self {
            PosWeight::Rule(PosWeightRule::Balanced) => neg as f64 / pos.max(1) as f64,
            PosWeight::Rule(PosWeightRule::Sqrt) => (neg as f64 / pos.max(1) as f64).sqrt(),
            PosWeight::Rule(PosWeightRule::None) => 1.0,
            PosWeight::Value(v) => v,
        };
        if !(w.is_finite() && w > 0.0) {
            return Err(RecipeError::Invalid(format!(
                "pos_weight: {w} is not a positive number"
            )));
        }
        Ok(w as f32)
    }
}

/// Model inputs of `samples`: type ids and scaled scalars of each visible prefix.
pub fn dataset(log: &EventLog, pre: &Preprocessor, samples: &[Sample]) -> SeqDataset {
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

/// The network's config for a fitted preprocessor.
pub fn model_config(cfg: &EscalationConfig, pre: &Preprocessor) -> SequenceModelConfig {
    let m = &cfg.model;
    SequenceModelConfig {
        features: pre.n_scalars(),
        vocab: pre.vocab_size(),
        embed_dim: pre.embedding_dim(),
        rnn: RnnConfig {
            num_layers: m.num_layers,
            bidirectional: m.bidirectional,
            dropout: if m.num_layers > 1 { m.dropout } else { 0.0 },
            ..RnnConfig::new(CellKind::Gru, pre.embedding_dim() + pre.n_scalars(), m.hidden_size)
        },
        head: Head::Final,
        outputs: 1,
    }
}

/// Probabilities of `samples` under `model`.
pub fn score(model: &SequenceModel, log: &EventLog, pre: &Preprocessor, samples: &[Sample]) -> Result<Vec<f64>> {
    let logits = predict(model, &dataset(log, pre, samples), 256)?;
    Ok(logits.iter().map(|l| 1.0 / (1.0 + (-(l[0] as f64)).exp())).collect())
}

/// The threshold on validation probabilities that maximizes F1 (the routing threshold saved
/// in the checkpoint).
pub fn f1_threshold(labels: &[bool], probs: &[f64]) -> f64 {
    let mut idx: Vec<usize> = (0..probs.len()).collect();
    idx.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
    let pos = labels.iter().filter(|&&l| l).count() as f64;
    let (mut tp, mut fp, mut best, mut thr) = (0.0, 0.0, -1.0, 0.5);
    for (k, &i) in idx.iter().enumerate() {
        if labels[i] {
            tp += 1.0;
        } else {
            fp += 1.0;
        }
        if k + 1 < idx.len() && probs[idx[k + 1]] == probs[i] {
            continue;
        }
        let f1 = if tp > 0.0 {
            2.0 * tp / (2.0 * tp + fp + (pos - tp))
        } else {
            0.0
        };
        if f1 > best {
            best = f1;
            thr = probs[i];
        }
    }
    thr
}

/// What the BiGRU training produced.
pub struct Trained {
    /// The best model (by validation AUC).
    pub model: SequenceModel,
    /// Epoch records.
    pub records: Vec<EpochRecord>,
    /// Routing threshold.
    pub threshold: f64,
}

/// Trains the BiGRU and writes `run/model` (best) and `run/last`.
pub fn train_bigru(
    cfg: &EscalationConfig,
    log: &EventLog,
    s: &SplitSamples,
    pre: &Preprocessor,
    run: &RunDir,
    out: &mut dyn Write,
) -> Result<Trained> {
    let train = dataset(log, pre, &s.train);
    let val = dataset(log, pre, &s.validation);
    let pos = s.train.iter().filter(|x| x.label).count();
    if pos == 0 || s.validation.iter().all(|x| !x.label) {
        return Err(RecipeError::Invalid(
            "the training or validation window has no escalations within the horizon; use more tickets".into(),
        ));
    }
    let neg = s.train.len() - pos;
    let mcfg = model_config(cfg, pre);
    let model = SequenceModel::new(
        mcfg.clone(),
        &Init::recurrent_default(),
        &mut ChaCha8Rng::seed_from_u64(cfg.training.seed),
    )?;
    let task = Task::Binary {
        pos_weight: Some(cfg.pos_weight.resolve(neg, pos)?),
    };
    let mut sup = Supervised::new(model, task.clone(), Some(cfg.truncate))?;
    let plan = CheckpointPlan {
        best_dir: run.model(),
        last_dir: run.last(),
        kind: "sequence".into(),
        model: json!({"sequence": mcfg, "task": task}),
        preprocessing: json!({"kind": PREP_KIND, "preprocessor": pre, "labels": cfg.labels, "threshold": Value::Null}),
    };
    for d in [run.model(), run.last()] {
        if checkpoint::is_checkpoint(&d) {
            std::fs::remove_dir_all(&d).map_err(|e| RecipeError::io(&d, e))?;
        }
    }
    let events: usize = train.examples.iter().map(|e| e.len).sum();
    writeln!(
        out,
        "training the {} on {} cut points ({pos} positive, {events} events), validating on {}",
        if cfg.model.bidirectional { "BiGRU" } else { "GRU" },
        train.examples.len(),
        val.examples.len()
    )
    .map_err(|e| RecipeError::io(Path::new("<stdout>"), e))?;
    let mut trainer = Trainer::new(cfg.training.clone())?;
    let pb = progress(trainer.config().epochs as u64, "bigru");
    let mut records = Vec::new();
    let mut eval = |m: &Supervised| evaluate(m, &val, 256);
    trainer.run(&mut sup, &train, Some(&plan), &mut eval, &mut |r: &EpochRecord| {
        pb.set_position(r.epoch as u64);
        pb.set_message(epoch_message(r));
        let _ = writeln!(
            std::io::stderr(),
            "epoch {}: train loss {:.4}, validation AUC {:.4}, {:.0} s ({:.0} events/s)",
            r.epoch,
            r.train_loss,
            r.val.get("auc").copied().unwrap_or(f64::NAN),
            r.seconds,
            events as f64 / r.seconds.max(1e-9)
        );
        records.push(r.clone());
    })?;
    pb.finish_and_clear();
    // The best checkpoint, plus its routing threshold chosen on validation.
    let mut ck = checkpoint::load(&run.model())?;
    let mut model = SequenceModel::zeros(mcfg)?;
    model.load_named(&ck.tensors)?;
    let yv: Vec<bool> = s.validation.iter().map(|x| x.label).collect();
    let pv = score(&model, log, pre, &s.validation)?;
    let threshold = f1_threshold(&yv, &pv);
    ck.preprocessing["threshold"] = json!(threshold);
    // Ticket lengths of the training window: `recur bench` measures at these by default.
    let mut train_tickets: Vec<usize> = s.train.iter().map(|x| x.ticket).collect();
    train_tickets.dedup();
    let (median, p95, max) = lengths_of(train_tickets.iter().map(|&t| log.tickets[t].events.len()));
    ck.preprocessing["lengths"] = json!({"median": median, "p95": p95, "max": max});
    checkpoint::save(&run.model(), &ck)?;
    Ok(Trained {
        model,
        records,
        threshold,
    })
}

/// Loads an escalation checkpoint: model, preprocessor, routing threshold.
pub fn load(dir: &Path) -> Result<(SequenceModel, Preprocessor, f64)> {
    let ck = checkpoint::load(dir)?;
    let bad = |r: String| RecipeError::Invalid(format!("{}: {r}", dir.display()));
    if ck.preprocessing.get("kind").and_then(Value::as_str) != Some(PREP_KIND) {
        return Err(bad(format!("not an {PREP_KIND} checkpoint (preprocessing.kind)")));
    }
    let pre: Preprocessor = serde_json::from_value(ck.preprocessing["preprocessor"].clone())
        .map_err(|e| bad(format!("preprocessing.preprocessor: {e}")))?;
    let threshold = ck.preprocessing["threshold"].as_f64().unwrap_or(0.5);
    let mcfg: SequenceModelConfig =
        serde_json::from_value(ck.model["sequence"].clone()).map_err(|e| bad(format!("model.sequence: {e}")))?;
    let mut model = SequenceModel::zeros(mcfg)?;
    model.load_named(&ck.tensors).map_err(|e| bad(e.to_string()))?;
    Ok((model, pre, threshold))
}

fn rows(f: &FeatureMatrix) -> Result<RowMatrix<'_>> {
    RowMatrix::new(&f.data, f.n_rows, f.n_cols).map_err(|e| RecipeError::Invalid(e.to_string()))
}

/// The GBDT baseline: trained on the training cuts' aggregates (all of
/// [`AggregateFeaturizer::names`]) with early stopping on the validation cuts; returns holdout
/// probabilities.
pub fn gbdt_holdout(cfg: &EscalationConfig, log: &EventLog, s: &SplitSamples, pre: &Preprocessor) -> Result<Vec<f64>> {
    gbdt_holdout_on(cfg, log, s, pre, &|_| true)
}

/// Whether an aggregate feature belongs to the guide's flat feature vector: "counts per type,
/// last event, duration, priority" (`count:*`, `last_type:*`, `events_so_far`,
/// `duration_hours`, `priority:*`). recur's full set adds type fractions, gaps, recent
/// activity, calendar features and every other numeric column (such as sentiment).
pub fn guide_feature(name: &str) -> bool {
    name.starts_with("count:")
        || name.starts_with("last_type:")
        || name.starts_with("priority:")
        || name == "events_so_far"
        || name == "duration_hours"
}

/// [`gbdt_holdout`] on the aggregate features whose names pass `keep`.
pub fn gbdt_holdout_on(
    cfg: &EscalationConfig,
    log: &EventLog,
    s: &SplitSamples,
    pre: &Preprocessor,
    keep: &dyn Fn(&str) -> bool,
) -> Result<Vec<f64>> {
    let agg = AggregateFeaturizer::from_preprocessor(pre);
    let cols: Vec<usize> = agg
        .names()
        .iter()
        .enumerate()
        .filter(|(_, n)| keep(n))
        .map(|(i, _)| i)
        .collect();
    if cols.is_empty() {
        return Err(RecipeError::Invalid("GBDT: no aggregate feature selected".into()));
    }
    let pick = |m: FeatureMatrix| -> FeatureMatrix {
        if cols.len() == m.n_cols {
            return m;
        }
        let data = (0..m.n_rows)
            .flat_map(|r| cols.iter().map(move |&c| (r, c)))
            .map(|(r, c)| m.data[r * m.n_cols + c])
            .collect();
        FeatureMatrix {
            n_rows: m.n_rows,
            n_cols: cols.len(),
            data,
            names: cols.iter().map(|&c| m.names[c].clone()).collect(),
        }
    };
    let y = |v: &[Sample]| v.iter().map(|x| x.label).collect::<Vec<bool>>();
    let (xt, xv, xh) = (
        pick(agg.matrix(log, &s.train)),
        pick(agg.matrix(log, &s.validation)),
        pick(agg.matrix(log, &s.holdout)),
    );
    let m = train_with_validation(&rows(&xt)?, &y(&s.train), &rows(&xv)?, &y(&s.validation), &cfg.gbdt)
        .map_err(|e| RecipeError::Invalid(format!("GBDT: {e}")))?;
    m.predict_proba(&rows(&xh)?)
        .map_err(|e| RecipeError::Invalid(format!("GBDT: {e}")))
}

/// Ticket-length statistics of a log: median, p95 and max (for the latency benchmark).
pub fn length_profile(log: &EventLog) -> (usize, usize, usize) {
    lengths_of(log.tickets.iter().map(|t| t.events.len()))
}

/// Median, p95 and max of `lengths` (1 for an empty input).
fn lengths_of(lengths: impl Iterator<Item = usize>) -> (usize, usize, usize) {
    let mut l: Vec<usize> = lengths.collect();
    if l.is_empty() {
        return (1, 1, 1);
    }
    l.sort_unstable();
    let q = |p: f64| l[((l.len() - 1) as f64 * p).round() as usize].max(1);
    (q(0.5), q(0.95), *l.last().expect("non-empty"))
}

/// Holdout metrics of both models.
pub fn holdout_metrics(labels: &[bool], bigru: &[f64], gbdt: &[f64]) -> Result<BTreeMap<String, f64>> {
    use recur_train::metrics::{average_precision, roc_auc};
    let mut m = BTreeMap::new();
    m.insert("bigru_auc".into(), roc_auc(labels, bigru)?);
    m.insert("gbdt_auc".into(), roc_auc(labels, gbdt)?);
    m.insert("bigru_average_precision".into(), average_precision(labels, bigru)?);
    m.insert("gbdt_average_precision".into(), average_precision(labels, gbdt)?);
    m.insert("samples".into(), labels.len() as f64);
    m.insert("positives".into(), labels.iter().filter(|&&l| l).count() as f64);
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use recur_data::harbor::{generate, HarborConfig};
    use recur_data::split::split_log;

    #[test]
    fn train_cuts_change_only_the_training_samples_and_stay_inside_the_window() {
        let log = generate(&HarborConfig::new(3000, 5));
        let base = EscalationConfig::default();
        let split = split_log(&log, &base.split).unwrap();
        let a = samples(&base, &log, &split).unwrap();
        let dense = EscalationConfig {
            train_cuts: Some(CutPolicy::EveryEvent),
            ..base.clone()
        };
        let b = samples(&dense, &log, &split).unwrap();
        assert!(
            b.train.len() > 2 * a.train.len(),
            "{} vs {}",
            b.train.len(),
            a.train.len()
        );
        assert_eq!(a.validation, b.validation);
        assert_eq!(a.holdout, b.holdout);
        // Every training cut, and its label, is knowable inside the training window.
        let labeler = Labeler::new(base.labels.clone()).unwrap();
        labeler
            .check(&log, &b.train, split.window_end_ms(SplitPart::Train))
            .unwrap();
        let train_tickets: std::collections::HashSet<usize> = split.part(SplitPart::Train).iter().copied().collect();
        assert!(b.train.iter().all(|x| train_tickets.contains(&x.ticket)));
        // The config round-trips through TOML (`--set train_cuts="every_event"`).
        let text = toml::to_string(&dense).unwrap();
        assert_eq!(toml::from_str::<EscalationConfig>(&text).unwrap(), dense);
    }

    #[test]
    fn pos_weight_rules_and_values() {
        assert_eq!(PosWeight::default().resolve(300, 3).unwrap(), 100.0);
        assert_eq!(PosWeight::Rule(PosWeightRule::Sqrt).resolve(300, 3).unwrap(), 10.0);
        assert_eq!(PosWeight::Rule(PosWeightRule::None).resolve(300, 3).unwrap(), 1.0);
        assert_eq!(PosWeight::Value(7.5).resolve(300, 3).unwrap(), 7.5);
        assert!(PosWeight::Value(-1.0).resolve(300, 3).is_err());
        assert!(PosWeight::Value(f64::NAN).resolve(300, 3).is_err());
        for (text, want) in [
            ("pos_weight = \"sqrt\"", PosWeight::Rule(PosWeightRule::Sqrt)),
            ("pos_weight = 4.0", PosWeight::Value(4.0)),
            ("pos_weight = \"balanced\"", PosWeight::Rule(PosWeightRule::Balanced)),
        ] {
            assert_eq!(
                toml::from_str::<EscalationConfig>(text).unwrap().pos_weight,
                want,
                "{text}"
            );
        }
        assert!(toml::from_str::<EscalationConfig>("pos_weight = \"heavy\"").is_err());
    }
}
