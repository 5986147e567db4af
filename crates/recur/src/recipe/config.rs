//! The recipe file (`--config FILE.toml`), `--set key=value` overrides, and validation.

use std::path::Path;

use recur_nn::CellKind;
use recur_train::models::sequence::Head;
use recur_train::optim::{OptimizerConfig, OptimizerKind};
use recur_train::schedule::{Decay, Mode, ScheduleConfig};
use recur_train::trainer::{EarlyStopping, TrainConfig};
use serde::{Deserialize, Serialize};

use super::RecipeError;

/// Everything `recur train` needs besides the data files. Every section and field has a
/// default; the defaults are the default recipe.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecipeConfig {
    /// Input preparation.
    pub data: DataConfig,
    /// The network.
    pub model: ModelRecipe,
    /// The training loop.
    pub training: TrainConfig,
    /// Forecasting (CSV series input).
    pub forecast: ForecastConfig,
}

/// Input preparation for sequence classification.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Fraction of the training file held out for validation (stratified by class).
    pub validation_fraction: f64,
    /// Append each channel's first difference as an extra channel.
    pub derivative: bool,
    /// Group consecutive steps into patches so that the longest training series has at most
    /// this many steps (each step then carries `patch × channels` values).
    pub max_steps: usize,
    /// After early stopping picks the epoch count on the validation split, retrain on the
    /// whole training file for that many epochs.
    pub refit: bool,
    /// Class weights in the loss: `none`, or `balanced` (`n / (classes · n_c)`, as
    /// scikit-learn's `class_weight="balanced"`), for rare classes.
    pub class_weight: ClassWeight,
}

/// How classes are weighted in the loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ClassWeight {
    /// Every example counts the same.
    #[default]
    None,
    /// Inverse class frequency in the fitting split.
    Balanced,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            validation_fraction: 0.2,
            derivative: true,
            max_steps: 40,
            refit: true,
            class_weight: ClassWeight::None,
        }
    }
}

/// The network of the default recipe.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelRecipe {
    /// Cell family.
    pub cell: CellKind,
    /// Hidden units per direction.
    pub hidden_size: usize,
    /// Stacked layers.
    pub num_layers: usize,
    /// Read the sequence in both directions.
    pub bidirectional: bool,
    /// Dropout between layers.
    pub dropout: f64,
    /// Head input.
    pub head: Head,
}

impl Default for ModelRecipe {
    fn default() -> Self {
        ModelRecipe {
            cell: CellKind::Gru,
            hidden_size: 64,
            num_layers: 1,
            bidirectional: true,
            dropout: 0.0,
            head: Head::MeanMax,
        }
    }
}

/// Forecasting a CSV series: a window of past values in, the next `horizon` values out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForecastConfig {
    /// Steps forecast at once; without `--test` the last `horizon` points are held out.
    pub horizon: usize,
    /// Past steps the model reads.
    pub window: usize,
    /// Season length for the seasonal-naive baseline (12 for monthly data).
    pub season: usize,
    /// Model the logarithm of the series (only when every value is positive).
    pub log: bool,
    /// The CSV column to forecast (default: the only numeric column).
    pub column: Option<String>,
}

impl Default for ForecastConfig {
    fn default() -> Self {
        ForecastConfig {
            horizon: 24,
            window: 36,
            season: 12,
            log: true,
            column: None,
        }
    }
}

impl Default for RecipeConfig {
    fn default() -> Self {
        RecipeConfig {
            data: DataConfig::default(),
            model: ModelRecipe::default(),
            training: TrainConfig {
                epochs: 200,
                batch_size: 16,
                optimizer: OptimizerConfig {
                    kind: OptimizerKind::AdamW,
                    lr: 3e-3,
                    weight_decay: Some(1e-2),
                    ..OptimizerConfig::default()
                },
                schedule: ScheduleConfig {
                    warmup_steps: 20,
                    decay: Decay::Constant,
                    ..ScheduleConfig::default()
                },
                clip_norm: Some(1.0),
                early_stopping: Some(EarlyStopping {
                    metric: "loss".into(),
                    mode: Mode::Min,
                    patience: 20,
                    min_delta: 1e-3,
                }),
                plateau: None,
                max_bad_steps: 10,
                bucketing: true,
                seed: 0,
                max_steps: None,
                checkpoint_interval_secs: 30.0,
                threads: 1,
            },
            forecast: ForecastConfig::default(),
        }
    }
}

impl RecipeConfig {
    /// Reads a recipe file (or the defaults), applies `key=value` overrides, validates.
    pub fn resolve(file: Option<&Path>, sets: &[String], seed: Option<u64>) -> Result<Self, RecipeError> {
        let mut table: toml::Table = match file {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| RecipeError::io(p, e))?;
                // Parse once as the typed config so that errors carry the file's line numbers.
                toml::from_str::<RecipeConfig>(&text)
                    .map_err(|e| RecipeError::Config(format!("{}: {e}", p.display())))?;
                toml::from_str(&text).map_err(|e| RecipeError::Config(format!("{}: {e}", p.display())))?
            }
            None => toml::Table::try_from(RecipeConfig::default()).expect("defaults serialize"),
        };
        if file.is_some() {
            // Fill absent fields with defaults so that the resolved config is complete.
            let full = toml::Table::try_from(RecipeConfig::default()).expect("defaults serialize");
            table = merge(full, table);
        }
        for s in sets {
            apply_set(&mut table, s)?;
        }
        let mut cfg: RecipeConfig = toml::from_str(&toml::to_string(&table).expect("table serializes"))
            .map_err(|e| RecipeError::Config(format!("after --set overrides: {e}")))?;
        if let Some(seed) = seed {
            cfg.training.seed = seed;
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every field; errors name the field.
    pub fn validate(&self) -> Result<(), RecipeError> {
        let bad = |f: &str, r: String| Err(RecipeError::Config(format!("field `{f}`: {r}")));
        if !(0.0..0.9).contains(&self.data.validation_fraction) {
            return bad(
                "data.validation_fraction",
                format!("must be in [0, 0.9), got {}", self.data.validation_fraction),
            );
        }
        if self.data.max_steps == 0 {
            return bad("data.max_steps", "must be ≥ 1".into());
        }
        if self.model.hidden_size == 0 || self.model.num_layers == 0 {
            return bad("model.hidden_size", "hidden_size and num_layers must be ≥ 1".into());
        }
        if !(0.0..1.0).contains(&self.model.dropout) {
            return bad(
                "model.dropout",
                format!("must be in [0, 1), got {}", self.model.dropout),
            );
        }
        if self.forecast.horizon == 0 || self.forecast.window == 0 || self.forecast.season == 0 {
            return bad("forecast.horizon", "horizon, window and season must be ≥ 1".into());
        }
        self.training.validate().map_err(|e| RecipeError::Config(e.to_string()))
    }

    /// The resolved config as TOML text.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serializes")
    }
}

/// `base` with every key of `over` replacing it (tables merged recursively).
fn merge(mut base: toml::Table, over: toml::Table) -> toml::Table {
    for (k, v) in over {
        match (base.remove(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => {
                base.insert(k, toml::Value::Table(merge(b, o)));
            }
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
    base
}

/// `base` with `key=value` overrides applied (see [`RecipeConfig::resolve`] for the syntax);
/// errors name the key.
pub fn with_sets<T: Serialize + serde::de::DeserializeOwned>(base: &T, sets: &[String]) -> Result<T, RecipeError> {
    let mut table = toml::Table::try_from(base).map_err(|e| RecipeError::Config(e.to_string()))?;
    for s in sets {
        apply_set(&mut table, s)?;
    }
    toml::from_str(&toml::to_string(&table).expect("table serializes"))
        .map_err(|e| RecipeError::Config(format!("after --set overrides: {e}")))
}

/// Applies one `dotted.key=value`; the value is parsed as TOML (`3`, `1e-3`, `true`,
/// `"text"`, `[1, 2]`), falling back to a bare string.
fn apply_set(table: &mut toml::Table, set: &str) -> Result<(), RecipeError> {
    let (key, raw) = set
        .split_once('=')
        .ok_or_else(|| RecipeError::Config(format!("--set `{set}`: expected key=value")))?;
    let key = key.trim();
    let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.trim().to_string()));
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(RecipeError::Config(format!("--set `{set}`: bad key `{key}`")));
    }
    let mut cur = table;
    for p in &parts[..parts.len() - 1] {
        let entry = cur
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = match entry {
            toml::Value::Table(t) => t,
            _ => return Err(RecipeError::Config(format!("--set `{set}`: `{p}` is not a section"))),
        };
    }
    cur.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_and_sets_apply() {
        let c = RecipeConfig::resolve(None, &[], None).unwrap();
        assert_eq!(c, RecipeConfig::default());
        let back: RecipeConfig = toml::from_str(&c.to_toml()).unwrap();
        assert_eq!(back, c);
        let c = RecipeConfig::resolve(
            None,
            &[
                "model.hidden_size=32".into(),
                "training.optimizer.lr=1e-2".into(),
                "model.cell=lstm".into(),
            ],
            Some(7),
        )
        .unwrap();
        assert_eq!(c.model.hidden_size, 32);
        assert_eq!(c.model.cell, CellKind::Lstm);
        assert_eq!(c.training.optimizer.lr, 1e-2);
        assert_eq!(c.training.seed, 7);
    }

    #[test]
    fn errors_name_the_field() {
        let e = RecipeConfig::resolve(None, &["model.hiden_size=3".into()], None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("hiden_size"), "{e}");
        let e = RecipeConfig::resolve(None, &["model.dropout=1.5".into()], None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("model.dropout"), "{e}");
        let e = RecipeConfig::resolve(None, &["training.optimizer.lr=-1".into()], None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("optimizer.lr"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.toml");
        std::fs::write(&p, "[model]\nhidden_size = 16\n\n[training]\nepocs = 3\n").unwrap();
        let e = RecipeConfig::resolve(Some(&p), &[], None).unwrap_err().to_string();
        assert!(
            e.contains("epocs") && e.contains("r.toml") && e.contains("line 5"),
            "{e}"
        );
        std::fs::write(&p, "[model]\nhidden_size = 16\n").unwrap();
        let c = RecipeConfig::resolve(Some(&p), &[], None).unwrap();
        assert_eq!(c.model.hidden_size, 16);
        assert_eq!(c.training, RecipeConfig::default().training);
    }
}
