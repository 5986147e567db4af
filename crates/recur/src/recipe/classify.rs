//! Sequence classification from UEA/UCR `.ts` files (the default recipe of `recur train`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use recur_data::series::{read_ts_file, ChannelScaler, Label, Series, TsDataset};
use recur_nn::init::Init;
use recur_nn::RnnConfig;
use recur_train::checkpoint;
use recur_train::models::sequence::{SequenceModel, SequenceModelConfig};
use recur_train::supervised::{evaluate, predict, Example, SeqDataset, Supervised, Target, Task};
use recur_train::trainer::{CheckpointPlan, EpochRecord, Trainer};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::config::{DataConfig, RecipeConfig};
use super::{epoch_message, progress, RecipeError, Result, RunDir};

/// `preprocessing.kind` of a classification checkpoint.
pub const PREP_KIND: &str = "ts_classification";

/// Everything needed to turn a raw series into model input, fitted on training data only and
/// saved in the checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifyPrep {
    /// Always [`PREP_KIND`].
    pub kind: String,
    /// The problem name from the training file.
    pub problem: String,
    /// Channels of the raw series.
    pub channels: usize,
    /// Whether first differences are appended.
    pub derivative: bool,
    /// Raw steps per model step.
    pub patch: usize,
    /// Per-channel scaler over the raw (and difference) channels.
    pub scaler: ChannelScaler,
    /// Class names in index order.
    pub class_names: Vec<String>,
}

impl ClassifyPrep {
    /// Feature channels before patching.
    fn base_channels(&self) -> usize {
        self.channels * if self.derivative { 2 } else { 1 }
    }

    /// Features per model step.
    pub fn features(&self) -> usize {
        self.patch * self.base_channels()
    }

    /// `[len, base_channels]`: the raw values and (optionally) their first differences.
    fn base(channels: usize, derivative: bool, s: &Series) -> Vec<f32> {
        if !derivative {
            return s.values.clone();
        }
        let mut out = Vec::with_capacity(s.len * channels * 2);
        for t in 0..s.len {
            let cur = s.step(t);
            out.extend_from_slice(cur);
            if t == 0 {
                out.extend(std::iter::repeat_n(0.0, channels));
            } else {
                out.extend(cur.iter().zip(s.step(t - 1)).map(|(a, b)| a - b));
            }
        }
        out
    }

    /// Fits the scaler on `train` and picks the patch size from its longest series.
    pub fn fit(
        train: &[&Series],
        channels: usize,
        class_names: Vec<String>,
        problem: String,
        data: &DataConfig,
    ) -> Result<Self> {
        let mut all = Vec::new();
        for s in train {
            all.extend(Self::base(channels, data.derivative, s));
        }
        let base = channels * if data.derivative { 2 } else { 1 };
        let scaler = ChannelScaler::fit_values(&all, base)?;
        let longest = train.iter().map(|s| s.len).max().unwrap_or(1);
        Ok(ClassifyPrep {
            kind: PREP_KIND.into(),
            problem,
            channels,
            derivative: data.derivative,
            patch: longest.div_ceil(data.max_steps).max(1),
            scaler,
            class_names,
        })
    }

    /// The model input of one series: scaled, missing values at the training mean, patched.
    pub fn input(&self, s: &Series) -> Result<(usize, Vec<f32>)> {
        if s.channels != self.channels {
            return Err(RecipeError::Invalid(format!(
                "a series has {} channels, the model was trained on {}",
                s.channels, self.channels
            )));
        }
        let bc = self.base_channels();
        let mut base = Self::base(self.channels, self.derivative, s);
        self.scaler.transform_values(&mut base)?;
        for v in base.iter_mut().filter(|v| !v.is_finite()) {
            *v = 0.0;
        }
        let steps = s.len.div_ceil(self.patch);
        let mut out = Vec::with_capacity(steps * self.features());
        for k in 0..steps {
            for j in 0..self.patch {
                let t = (k * self.patch + j).min(s.len - 1);
                out.extend_from_slice(&base[t * bc..(t + 1) * bc]);
            }
        }
        Ok((steps, out))
    }

    /// A labelled example.
    pub fn example(&self, s: &Series) -> Result<Example> {
        let (len, features) = self.input(s)?;
        let target = match s.label {
            Label::Class(c) => Target::Class(c),
            _ => return Err(RecipeError::Invalid("a series has no class label".into())),
        };
        Ok(Example {
            len,
            features,
            ids: Vec::new(),
            target,
        })
    }

    /// A dataset of labelled examples.
    pub fn dataset(&self, series: &[&Series]) -> Result<SeqDataset> {
        Ok(SeqDataset {
            features: self.features(),
            examples: series.iter().map(|s| self.example(s)).collect::<Result<_>>()?,
        })
    }
}

fn read_labelled(path: &Path) -> Result<TsDataset> {
    let d = read_ts_file(path)?;
    if d.is_empty() {
        return Err(RecipeError::Invalid(format!("{}: no series", path.display())));
    }
    if d.class_names.is_empty() || !d.series.iter().all(|s| matches!(s.label, Label::Class(_))) {
        return Err(RecipeError::Invalid(format!(
            "{}: classification needs class labels (`@classLabel true ...`)",
            path.display()
        )));
    }
    Ok(d)
}

/// Stratified split of `0..n` by class: about `fraction` of each class (at least one of any
/// class with two or more members) goes to validation.
fn stratified_split(labels: &[usize], fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut by_class: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, &c) in labels.iter().enumerate() {
        by_class.entry(c).or_default().push(i);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_5711);
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for (_, mut idx) in by_class {
        idx.shuffle(&mut rng);
        let mut k = (idx.len() as f64 * fraction).round() as usize;
        if fraction > 0.0 && k == 0 && idx.len() >= 2 {
            k = 1;
        }
        val.extend_from_slice(&idx[..k]);
        train.extend_from_slice(&idx[k..]);
    }
    train.sort_unstable();
    val.sort_unstable();
    (train, val)
}

fn model_config(cfg: &RecipeConfig, features: usize, classes: usize) -> SequenceModelConfig {
    let m = &cfg.model;
    SequenceModelConfig {
        features,
        vocab: 0,
        embed_dim: 0,
        rnn: RnnConfig {
            num_layers: m.num_layers,
            bidirectional: m.bidirectional,
            dropout: m.dropout,
            ..RnnConfig::new(m.cell, features, m.hidden_size)
        },
        head: m.head,
        outputs: classes,
    }
}

/// The loss: cross-entropy, with balanced class weights when configured.
fn task_for(cfg: &RecipeConfig, train: &SeqDataset, classes: usize) -> Task {
    let class_weights = (cfg.data.class_weight == super::config::ClassWeight::Balanced).then(|| {
        let mut counts = vec![0usize; classes];
        for e in &train.examples {
            if let Target::Class(c) = e.target {
                counts[c] += 1;
            }
        }
        let n = train.examples.len() as f64;
        counts
            .iter()
            .map(|&c| {
                if c == 0 {
                    0.0
                } else {
                    (n / (classes as f64 * c as f64)) as f32
                }
            })
            .collect()
    });
    Task::Multiclass { classes, class_weights }
}

/// What one training phase produced.
struct Phase {
    records: Vec<EpochRecord>,
    best_epoch: Option<usize>,
}

#[allow(clippy::too_many_arguments)]
fn run_phase(
    cfg: &RecipeConfig,
    train_cfg: recur_train::trainer::TrainConfig,
    prep: &ClassifyPrep,
    train: &SeqDataset,
    val: Option<&SeqDataset>,
    plan: &CheckpointPlan,
    label: &str,
) -> Result<Phase> {
    let classes = prep.class_names.len();
    let mcfg = model_config(cfg, prep.features(), classes);
    let mut rng = ChaCha8Rng::seed_from_u64(train_cfg.seed);
    let model = SequenceModel::new(mcfg, &Init::recurrent_default(), &mut rng)?;
    let task = task_for(cfg, train, classes);
    let mut sup = Supervised::new(model, task, None)?;
    let mut trainer = Trainer::new(train_cfg)?;
    let pb = progress(trainer.config().epochs as u64, label);
    let mut records = Vec::new();
    let bs = trainer.config().batch_size.max(64);
    let mut eval = |m: &Supervised| match val {
        Some(v) => evaluate(m, v, bs),
        None => Ok(BTreeMap::new()),
    };
    trainer.run(&mut sup, train, Some(plan), &mut eval, &mut |r| {
        pb.set_position(r.epoch as u64);
        pb.set_message(epoch_message(r));
        records.push(r.clone());
    })?;
    pb.finish_and_clear();
    Ok(Phase {
        records,
        best_epoch: trainer.state().best_epoch,
    })
}

/// Loads a classification checkpoint: the model and its preprocessing.
pub fn load(dir: &Path) -> Result<(Supervised, ClassifyPrep)> {
    let ck = checkpoint::load(dir)?;
    let bad = |r: String| RecipeError::Invalid(format!("{}: {r}", dir.display()));
    if ck.preprocessing.get("kind").and_then(Value::as_str) != Some(PREP_KIND) {
        return Err(bad(format!("not a {PREP_KIND} checkpoint (preprocessing.kind)")));
    }
    let prep: ClassifyPrep =
        serde_json::from_value(ck.preprocessing.clone()).map_err(|e| bad(format!("preprocessing: {e}")))?;
    let mcfg: SequenceModelConfig =
        serde_json::from_value(ck.model["sequence"].clone()).map_err(|e| bad(format!("model.sequence: {e}")))?;
    let task: Task = serde_json::from_value(ck.model["task"].clone()).map_err(|e| bad(format!("model.task: {e}")))?;
    let mut model = SequenceModel::zeros(mcfg)?;
    recur_train::Module::load_named(&mut model, &ck.tensors).map_err(|e| bad(e.to_string()))?;
    Ok((Supervised::new(model, task, None)?, prep))
}

/// `recur train` on `.ts` files. Returns the `metrics.json` value.
pub fn train(
    cfg: &RecipeConfig,
    train_path: &Path,
    test_path: &Path,
    run: &RunDir,
    log: &mut dyn Write,
) -> Result<Value> {
    let started = Instant::now();
    let train_ts = read_labelled(train_path)?;
    let test_ts = read_labelled(test_path)?;
    if test_ts.channels != train_ts.channels {
        return Err(RecipeError::Invalid(format!(
            "{} has {} channels but {} has {}",
            test_path.display(),
            test_ts.channels,
            train_path.display(),
            train_ts.channels
        )));
    }
    let test_classes_known = test_ts.class_names.iter().all(|c| train_ts.class_names.contains(c));
    if !test_classes_known {
        return Err(RecipeError::Invalid(format!(
            "{} declares classes {:?} that the training file ({:?}) does not",
            test_path.display(),
            test_ts.class_names,
            train_ts.class_names
        )));
    }
    // Map test labels onto the training file's class order.
    let remap: Vec<usize> = test_ts
        .class_names
        .iter()
        .map(|c| train_ts.class_names.iter().position(|t| t == c).expect("checked"))
        .collect();
    let test_series: Vec<Series> = test_ts
        .series
        .iter()
        .map(|s| {
            let mut s = s.clone();
            if let Label::Class(c) = s.label {
                s.label = Label::Class(remap[c]);
            }
            s
        })
        .collect();
    let labels: Vec<usize> = train_ts
        .series
        .iter()
        .map(|s| match s.label {
            Label::Class(c) => c,
            _ => unreachable!("checked by read_labelled"),
        })
        .collect();
    let (tr_idx, val_idx) = stratified_split(&labels, cfg.data.validation_fraction, cfg.training.seed);
    let fit_part: Vec<&Series> = tr_idx.iter().map(|&i| &train_ts.series[i]).collect();
    let val_part: Vec<&Series> = val_idx.iter().map(|&i| &train_ts.series[i]).collect();
    let classes = train_ts.class_names.clone();
    let prep = ClassifyPrep::fit(
        &fit_part,
        train_ts.channels,
        classes.clone(),
        train_ts.problem.clone(),
        &cfg.data,
    )?;
    let train_set = prep.dataset(&fit_part)?;
    let val_set = (!val_part.is_empty()).then(|| prep.dataset(&val_part)).transpose()?;
    writeln!(
        log,
        "{}: {} training series ({} for fitting, {} for validation), {} test, {} channels, {} classes, lengths {:?}, patch {}",
        train_ts.problem,
        train_ts.len(),
        fit_part.len(),
        val_part.len(),
        test_series.len(),
        train_ts.channels,
        classes.len(),
        train_ts.length_range(),
        prep.patch
    )
    .map_err(|e| RecipeError::io(Path::new("<stdout>"), e))?;

    let mut train_cfg = cfg.training.clone();
    if val_set.is_none() {
        train_cfg.early_stopping = None;
        train_cfg.plateau = None;
    }
    let refit = cfg.data.refit && val_set.is_some();
    let model_json = |features: usize| {
        json!({
            "sequence": model_config(cfg, features, classes.len()),
            "task": task_for(cfg, &train_set, classes.len()),
        })
    };
    let select_root = run.root.join(".select");
    let plan = |root: &Path, prep: &ClassifyPrep| CheckpointPlan {
        best_dir: if root == run.root {
            run.model()
        } else {
            root.join("model")
        },
        last_dir: if root == run.root {
            run.last()
        } else {
            root.join("last")
        },
        kind: "sequence".into(),
        model: model_json(prep.features()),
        preprocessing: serde_json::to_value(prep).expect("prep serializes"),
    };
    let mut all_records: Vec<(String, EpochRecord)> = Vec::new();
    let first_root = if refit { select_root.clone() } else { run.root.clone() };
    if refit {
        let _ = std::fs::remove_dir_all(&select_root);
    }
    let phase = run_phase(
        cfg,
        train_cfg.clone(),
        &prep,
        &train_set,
        val_set.as_ref(),
        &plan(&first_root, &prep),
        "select",
    )?;
    let best_epoch = phase.best_epoch.unwrap_or(phase.records.len());
    let val_metrics = phase
        .records
        .iter()
        .find(|r| Some(r.epoch) == phase.best_epoch)
        .map(|r| r.val.clone())
        .unwrap_or_default();
    all_records.extend(phase.records.iter().map(|r| ("select".to_string(), r.clone())));
    let final_prep = if refit {
        let everything: Vec<&Series> = train_ts.series.iter().collect();
        let mut prep2 = ClassifyPrep::fit(
            &everything,
            train_ts.channels,
            classes.clone(),
            train_ts.problem.clone(),
            &cfg.data,
        )?;
        prep2.patch = prep.patch;
        let full = prep2.dataset(&everything)?;
        let mut refit_cfg = train_cfg.clone();
        refit_cfg.epochs = best_epoch.max(1);
        refit_cfg.early_stopping = None;
        refit_cfg.plateau = None;
        for d in [run.model(), run.last()] {
            if checkpoint::is_checkpoint(&d) {
                std::fs::remove_dir_all(&d).map_err(|e| RecipeError::io(&d, e))?;
            }
        }
        let p2 = run_phase(cfg, refit_cfg, &prep2, &full, None, &plan(&run.root, &prep2), "refit")?;
        all_records.extend(p2.records.into_iter().map(|r| ("refit".to_string(), r)));
        let _ = std::fs::remove_dir_all(&select_root);
        prep2
    } else {
        prep
    };
    let (sup, loaded_prep) = load(&run.model())?;
    debug_assert_eq!(loaded_prep, final_prep);
    let test_set = loaded_prep.dataset(&test_series.iter().collect::<Vec<_>>())?;
    let test = evaluate(&sup, &test_set, 256)?;
    let wall = started.elapsed().as_secs_f64();
    let metrics = json!({
        "problem": train_ts.problem,
        "test": test,
        "validation": val_metrics,
        "best_epoch": best_epoch,
        "refit": refit,
        "epochs_run": all_records.len(),
        "train_series": train_ts.len(),
        "validation_series": val_part.len(),
        "test_series": test_series.len(),
        "patch": loaded_prep.patch,
        "wall_seconds": wall,
    });
    run.write_epochs(&all_records)?;
    run.write_metrics(&metrics)?;
    run.write("config.toml", cfg.to_toml().as_bytes())?;
    let curve: Vec<EpochRecord> = all_records
        .iter()
        .filter(|(p, _)| p == "select")
        .map(|(_, r)| r.clone())
        .collect();
    super::plot::training_curve(
        &run.root.join("training_curve.svg"),
        &curve,
        &format!("{} — training", train_ts.problem),
    )
    .map_err(|e| RecipeError::io(&run.root.join("training_curve.svg"), e))?;
    Ok(metrics)
}

/// `recur eval` on a `.ts` file: the task's metrics.
pub fn eval(model_dir: &Path, data: &Path) -> Result<Value> {
    let (sup, prep) = load(model_dir)?;
    let d = read_labelled(data)?;
    let series = remap_to(&prep, &d, data)?;
    let set = prep.dataset(&series.iter().collect::<Vec<_>>())?;
    let m = evaluate(&sup, &set, 256)?;
    Ok(json!({ "data": data.display().to_string(), "series": set.examples.len(), "metrics": m }))
}

fn remap_to(prep: &ClassifyPrep, d: &TsDataset, path: &Path) -> Result<Vec<Series>> {
    d.series
        .iter()
        .map(|s| {
            let mut s = s.clone();
            if let Label::Class(c) = s.label {
                let name = &d.class_names[c];
                let idx = prep.class_names.iter().position(|n| n == name).ok_or_else(|| {
                    RecipeError::Invalid(format!(
                        "{}: class `{name}` is not one of the model's classes {:?}",
                        path.display(),
                        prep.class_names
                    ))
                })?;
                s.label = Label::Class(idx);
            }
            Ok(s)
        })
        .collect()
}

/// `recur predict` on a `.ts` file (labels optional): per series, the predicted class and the
/// class probabilities.
pub fn predict_file(model_dir: &Path, data: &Path) -> Result<Vec<(String, Vec<f64>)>> {
    let (sup, prep) = load(model_dir)?;
    let d = read_ts_file(data)?;
    let mut set = SeqDataset {
        features: prep.features(),
        examples: Vec::new(),
    };
    for s in &d.series {
        let (len, features) = prep.input(s)?;
        set.examples.push(Example {
            len,
            features,
            ids: Vec::new(),
            target: Target::Class(0),
        });
    }
    let logits = predict(&sup.model, &set, 256)?;
    Ok(logits
        .iter()
        .map(|l| {
            let max = l.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
            let e: Vec<f64> = l.iter().map(|&v| (v as f64 - max).exp()).collect();
            let z: f64 = e.iter().sum();
            let p: Vec<f64> = e.iter().map(|v| v / z).collect();
            let best = p.iter().enumerate().fold(0, |b, (i, v)| if *v > p[b] { i } else { b });
            (prep.class_names[best].clone(), p)
        })
        .collect())
}
