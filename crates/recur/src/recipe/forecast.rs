//! Forecasting a CSV series: a GRU reads a window of past values and predicts the next
//! `horizon` values at once, compared with the seasonal-naive forecast on held-out points.
//!
//! The series is log-transformed (when positive) and standardized with statistics of the
//! training part only. Each step's input is the scaled value plus the position in the season
//! (`sin`, `cos`); the targets are the next `horizon` scaled values minus the last observed
//! one, so the network learns changes rather than levels. Training windows never reach into
//! the held-out points; the validation window (for the epoch count) is the last `horizon`
//! points of the training part, after which the model is refit on the whole training part.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use recur_data::series::{read_csv_series_file, CsvSeries};
use recur_nn::init::Init;
use recur_nn::RnnConfig;
use recur_train::checkpoint;
use recur_train::models::sequence::{Head, SequenceModel, SequenceModelConfig};
use recur_train::supervised::{predict, Example, RegressionLoss, SeqDataset, Supervised, Target, Task};
use recur_train::trainer::{CheckpointPlan, EpochRecord, TrainConfig, Trainer};
use recur_train::Module;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::config::RecipeConfig;
use super::{epoch_message, progress, RecipeError, Result, RunDir};

/// `preprocessing.kind` of a forecasting checkpoint.
pub const PREP_KIND: &str = "series_forecast";

/// The transform from raw values to model units, fitted on the training part.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForecastPrep {
    /// Always [`PREP_KIND`].
    pub kind: String,
    /// The forecast column.
    pub column: String,
    /// Whether values are log-transformed.
    pub log: bool,
    /// Mean of the (log) training values.
    pub mean: f64,
    /// Standard deviation of the (log) training values.
    pub std: f64,
    /// Past steps read.
    pub window: usize,
    /// Steps forecast.
    pub horizon: usize,
    /// Season length.
    pub season: usize,
}

impl ForecastPrep {
    fn fit(column: String, train: &[f64], cfg: &RecipeConfig) -> Result<Self> {
        let f = &cfg.forecast;
        let log = f.log && train.iter().all(|&v| v > 0.0);
        let t: Vec<f64> = train.iter().map(|&v| if log { v.ln() } else { v }).collect();
        let mean = t.iter().sum::<f64>() / t.len() as f64;
        let var = t.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / t.len() as f64;
        Ok(ForecastPrep {
            kind: PREP_KIND.into(),
            column,
            log,
            mean,
            std: var.sqrt().max(1e-8),
            window: f.window,
            horizon: f.horizon,
            season: f.season,
        })
    }

    fn to_model(&self, v: f64) -> f64 {
        ((if self.log { v.ln() } else { v }) - self.mean) / self.std
    }

    fn to_raw(&self, z: f64) -> f64 {
        let v = z * self.std + self.mean;
        if self.log {
            v.exp()
        } else {
            v
        }
    }

    /// The input of the window ending just before absolute index `origin`.
    fn input(&self, z: &[f64], origin: usize) -> Vec<f32> {
        let mut x = Vec::with_capacity(self.window * 3);
        for (k, &v) in z.iter().enumerate().take(origin).skip(origin - self.window) {
            let phase = 2.0 * std::f64::consts::PI * (k % self.season) as f64 / self.season as f64;
            x.extend([v as f32, phase.sin() as f32, phase.cos() as f32]);
        }
        x
    }

    /// Windows whose targets all lie before `end` (absolute index), in time order.
    fn windows(&self, z: &[f64], end: usize) -> SeqDataset {
        let mut examples = Vec::new();
        for origin in self.window..=end.saturating_sub(self.horizon) {
            let last = z[origin - 1];
            let target = (0..self.horizon).map(|j| (z[origin + j] - last) as f32).collect();
            examples.push(Example {
                len: self.window,
                features: self.input(z, origin),
                ids: Vec::new(),
                target: Target::Real(target),
            });
        }
        SeqDataset { features: 3, examples }
    }

    /// Forecast of the `horizon` values from `origin` on, in raw units.
    fn forecast(&self, model: &SequenceModel, z: &[f64], origin: usize) -> recur_train::Result<Vec<f64>> {
        let set = SeqDataset {
            features: 3,
            examples: vec![Example {
                len: self.window,
                features: self.input(z, origin),
                ids: Vec::new(),
                target: Target::Real(vec![0.0; self.horizon]),
            }],
        };
        let out = predict(model, &set, 1)?;
        let last = z[origin - 1];
        Ok(out[0].iter().map(|&d| self.to_raw(last + d as f64)).collect())
    }
}

fn pick_column(s: &CsvSeries, want: Option<&str>, path: &Path) -> Result<(String, Vec<f64>)> {
    let name = match want {
        Some(c) => c.to_string(),
        None if s.columns.len() == 1 => s.columns[0].clone(),
        None => {
            return Err(RecipeError::Invalid(format!(
                "{}: {} numeric columns {:?}; choose one with --set forecast.column=NAME",
                path.display(),
                s.columns.len(),
                s.columns
            )))
        }
    };
    let v = s.column(&name).ok_or_else(|| {
        RecipeError::Invalid(format!(
            "{}: no column `{name}` (columns: {:?})",
            path.display(),
            s.columns
        ))
    })?;
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(RecipeError::Invalid(format!(
            "{}: column `{name}` has a missing or non-finite value at data row {}",
            path.display(),
            i + 1
        )));
    }
    Ok((name, v.into_iter().map(f64::from).collect()))
}

/// Seasonal-naive forecast: each future step repeats the value one (or more) seasons back
/// from the end of the observed part.
pub fn seasonal_naive(observed: &[f64], horizon: usize, season: usize) -> Vec<f64> {
    let n = observed.len();
    (0..horizon).map(|j| observed[n - season + (j % season)]).collect()
}

fn mae(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f64>() / a.len().max(1) as f64
}

fn model_config(cfg: &RecipeConfig, horizon: usize) -> SequenceModelConfig {
    let m = &cfg.model;
    SequenceModelConfig {
        features: 3,
        vocab: 0,
        embed_dim: 0,
        rnn: RnnConfig {
            num_layers: m.num_layers,
            dropout: m.dropout,
            ..RnnConfig::new(m.cell, 3, m.hidden_size)
        },
        head: Head::Final,
        outputs: horizon,
    }
}

fn fit(
    cfg: &RecipeConfig,
    tc: TrainConfig,
    data: &SeqDataset,
    plan: &CheckpointPlan,
    val: Option<(&ForecastPrep, &[f64], usize, &[f64])>,
    label: &str,
) -> Result<(Supervised, Vec<EpochRecord>, Option<usize>)> {
    let horizon = cfg.forecast.horizon;
    let mut rng = ChaCha8Rng::seed_from_u64(tc.seed);
    let model = SequenceModel::new(model_config(cfg, horizon), &Init::recurrent_default(), &mut rng)?;
    let task = Task::Regression {
        outputs: horizon,
        loss: RegressionLoss::Mse,
    };
    let mut sup = Supervised::new(model, task, None)?;
    let mut trainer = Trainer::new(tc)?;
    let pb = progress(trainer.config().epochs as u64, label);
    let mut records = Vec::new();
    let mut eval = |m: &Supervised| {
        let mut out = std::collections::BTreeMap::new();
        if let Some((prep, z, origin, actual)) = val {
            let f = prep.forecast(&m.model, z, origin)?;
            out.insert("mae".to_string(), mae(&f, actual));
        }
        Ok(out)
    };
    trainer.run(&mut sup, data, Some(plan), &mut eval, &mut |r| {
        pb.set_position(r.epoch as u64);
        pb.set_message(epoch_message(r));
        records.push(r.clone());
    })?;
    pb.finish_and_clear();
    Ok((sup, records, trainer.state().best_epoch))
}

/// Loads a forecasting checkpoint.
pub fn load(dir: &Path) -> Result<(SequenceModel, ForecastPrep)> {
    let ck = checkpoint::load(dir)?;
    let bad = |r: String| RecipeError::Invalid(format!("{}: {r}", dir.display()));
    if ck.preprocessing.get("kind").and_then(Value::as_str) != Some(PREP_KIND) {
        return Err(bad(format!("not a {PREP_KIND} checkpoint (preprocessing.kind)")));
    }
    let prep: ForecastPrep =
        serde_json::from_value(ck.preprocessing.clone()).map_err(|e| bad(format!("preprocessing: {e}")))?;
    let mcfg: SequenceModelConfig =
        serde_json::from_value(ck.model["sequence"].clone()).map_err(|e| bad(format!("model.sequence: {e}")))?;
    let mut model = SequenceModel::zeros(mcfg)?;
    model.load_named(&ck.tensors).map_err(|e| bad(e.to_string()))?;
    Ok((model, prep))
}

/// `recur train` on a CSV series. Returns the `metrics.json` value.
pub fn train(
    cfg: &RecipeConfig,
    train_path: &Path,
    test_path: Option<&Path>,
    run: &RunDir,
    log: &mut dyn Write,
) -> Result<Value> {
    let started = Instant::now();
    let f = &cfg.forecast;
    let csv = read_csv_series_file(train_path)?;
    let (column, mut series) = pick_column(&csv, f.column.as_deref(), train_path)?;
    let n_train = match test_path {
        Some(tp) => {
            let t = read_csv_series_file(tp)?;
            let (_, test_values) = pick_column(&t, Some(&column), tp)?;
            let n = series.len();
            series.extend(test_values);
            n
        }
        None => series.len().saturating_sub(f.horizon),
    };
    let held_out = series.len() - n_train;
    if held_out < f.horizon {
        return Err(RecipeError::Invalid(format!(
            "the test part has {held_out} points; forecast.horizon is {}",
            f.horizon
        )));
    }
    let fit_end = n_train - f.horizon;
    if fit_end < f.window + f.horizon + 1 || n_train < f.season {
        return Err(RecipeError::Invalid(format!(
            "{}: {n_train} training points are too few for window {} + horizon {} (twice, for validation)",
            train_path.display(),
            f.window,
            f.horizon
        )));
    }
    writeln!(
        log,
        "{}: column `{column}`, {} points: {} for training (validation: the last {} of them), {} held out",
        train_path.display(),
        series.len(),
        n_train,
        f.horizon,
        held_out
    )
    .map_err(|e| RecipeError::io(Path::new("<stdout>"), e))?;

    // Phase 1: fit on points before `fit_end`, validate on the forecast of the next horizon.
    let prep1 = ForecastPrep::fit(column.clone(), &series[..fit_end], cfg)?;
    let z1: Vec<f64> = series[..n_train].iter().map(|&v| prep1.to_model(v)).collect();
    let set1 = prep1.windows(&z1, fit_end);
    let mut tc = cfg.training.clone();
    tc.early_stopping = Some(recur_train::trainer::EarlyStopping {
        metric: "mae".into(),
        mode: recur_train::schedule::Mode::Min,
        patience: cfg.training.early_stopping.as_ref().map_or(30, |e| e.patience),
        min_delta: 0.0,
    });
    tc.plateau = None;
    let select = run.root.join(".select");
    let _ = std::fs::remove_dir_all(&select);
    let model_json = json!({
        "sequence": model_config(cfg, f.horizon),
        "task": Task::Regression { outputs: f.horizon, loss: RegressionLoss::Mse },
    });
    let plan1 = CheckpointPlan {
        best_dir: select.join("model"),
        last_dir: select.join("last"),
        kind: "sequence".into(),
        model: model_json.clone(),
        preprocessing: serde_json::to_value(&prep1).expect("serializes"),
    };
    let actual_val = &series[fit_end..n_train];
    let (_, rec1, best) = fit(
        cfg,
        tc.clone(),
        &set1,
        &plan1,
        Some((&prep1, &z1, fit_end, actual_val)),
        "select",
    )?;
    let best_epoch = best.unwrap_or(rec1.len()).max(1);
    let val_mae = rec1
        .iter()
        .find(|r| Some(r.epoch) == best)
        .and_then(|r| r.val.get("mae").copied());

    // Phase 2: refit on the whole training part for the chosen number of epochs.
    let prep = ForecastPrep::fit(column.clone(), &series[..n_train], cfg)?;
    let z: Vec<f64> = series.iter().map(|&v| prep.to_model(v)).collect();
    let set = prep.windows(&z, n_train);
    let mut tc2 = cfg.training.clone();
    tc2.epochs = best_epoch;
    tc2.early_stopping = None;
    tc2.plateau = None;
    for d in [run.model(), run.last()] {
        if checkpoint::is_checkpoint(&d) {
            std::fs::remove_dir_all(&d).map_err(|e| RecipeError::io(&d, e))?;
        }
    }
    let plan2 = CheckpointPlan {
        best_dir: run.model(),
        last_dir: run.last(),
        kind: "sequence".into(),
        model: model_json,
        preprocessing: serde_json::to_value(&prep).expect("serializes"),
    };
    let (_, rec2, _) = fit(cfg, tc2, &set, &plan2, None, "refit")?;
    let _ = std::fs::remove_dir_all(&select);
    let (model, prep) = load(&run.model())?;
    let forecast = prep.forecast(&model, &z, n_train)?;
    let actual = &series[n_train..n_train + f.horizon];
    let naive = seasonal_naive(&series[..n_train], f.horizon, f.season);
    let gru_mae = mae(&forecast, actual);
    let naive_mae = mae(&naive, actual);
    let rmse = (forecast.iter().zip(actual).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / f.horizon as f64).sqrt();
    let mape = forecast
        .iter()
        .zip(actual)
        .map(|(a, b)| ((a - b) / b).abs())
        .sum::<f64>()
        / f.horizon as f64;
    let metrics = json!({
        "column": column,
        "test": {"mae": gru_mae, "rmse": rmse, "mape": mape, "seasonal_naive_mae": naive_mae,
                 "mae_ratio_to_seasonal_naive": gru_mae / naive_mae},
        "validation": {"mae": val_mae},
        "best_epoch": best_epoch,
        "train_points": n_train,
        "test_points": f.horizon,
        "forecast": forecast,
        "actual": actual,
        "seasonal_naive": naive,
        "wall_seconds": started.elapsed().as_secs_f64(),
    });
    let records: Vec<(String, EpochRecord)> = rec1
        .iter()
        .map(|r| ("select".to_string(), r.clone()))
        .chain(rec2.into_iter().map(|r| ("refit".to_string(), r)))
        .collect();
    run.write_epochs(&records)?;
    run.write_metrics(&metrics)?;
    run.write("config.toml", cfg.to_toml().as_bytes())?;
    super::plot::training_curve(
        &run.root.join("training_curve.svg"),
        &rec1,
        &format!("{column} — training"),
    )
    .map_err(|e| RecipeError::io(&run.root.join("training_curve.svg"), e))?;
    Ok(metrics)
}

fn read_values(model_dir: &Path, data: &Path) -> Result<(SequenceModel, ForecastPrep, Vec<f64>)> {
    let (model, prep) = load(model_dir)?;
    let csv = read_csv_series_file(data)?;
    let (_, v) = pick_column(&csv, Some(&prep.column), data)?;
    if v.len() < prep.window {
        return Err(RecipeError::Invalid(format!(
            "{}: {} points; the model reads windows of {}",
            data.display(),
            v.len(),
            prep.window
        )));
    }
    if prep.log && v.iter().any(|&x| x <= 0.0) {
        return Err(RecipeError::Invalid(format!(
            "{}: the model works in log units and needs positive values",
            data.display()
        )));
    }
    Ok((model, prep, v))
}

/// `recur predict` on a CSV series: the forecast of the `horizon` points after its end.
pub fn predict_file(model_dir: &Path, data: &Path) -> Result<Vec<f64>> {
    let (model, prep, v) = read_values(model_dir, data)?;
    let z: Vec<f64> = v.iter().map(|&x| prep.to_model(x)).collect();
    Ok(prep.forecast(&model, &z, z.len())?)
}

/// `recur eval` on a CSV series: forecasts the last `horizon` points from the ones before and
/// compares with them and with the seasonal-naive forecast.
pub fn eval(model_dir: &Path, data: &Path) -> Result<Value> {
    let (model, prep, v) = read_values(model_dir, data)?;
    if v.len() < prep.window + prep.horizon || v.len() < prep.season + prep.horizon {
        return Err(RecipeError::Invalid(format!(
            "{}: too few points to evaluate",
            data.display()
        )));
    }
    let origin = v.len() - prep.horizon;
    let z: Vec<f64> = v.iter().map(|&x| prep.to_model(x)).collect();
    let f = prep.forecast(&model, &z, origin)?;
    let naive = seasonal_naive(&v[..origin], prep.horizon, prep.season);
    Ok(json!({"data": data.display().to_string(), "metrics": {
        "mae": mae(&f, &v[origin..]), "seasonal_naive_mae": mae(&naive, &v[origin..])}}))
}
