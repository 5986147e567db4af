//! The `charlm` example's command line: the settings, their defaults and the flag parser
//! (the flags are listed in `main.rs`'s docs).

use std::error::Error;
use std::time::Instant;

use recur_nn::CellKind;
use recur_train::models::charlm::{CharLmConfig, CharLmTrainConfig, DynamicEvalConfig, DynamicRule};

pub struct Args {
    pub text: String,
    pub model: CharLmConfig,
    pub train: CharLmTrainConfig,
    pub seed: u64,
    pub eval_streams: usize,
    pub holdout: f64,
    pub max_chars: Option<usize>,
    pub sample_chars: usize,
    pub temperature: f32,
    pub prime: String,
    pub log_every: usize,
    pub segment_at: Option<String>,
    pub save: Option<String>,
    pub load: Option<String>,
    pub init: Option<String>,
    pub resume: Option<String>,
    pub stop_after: Option<f64>,
    pub ensemble: Vec<String>,
    pub dynamic_lrs: Vec<f64>,
    pub dynamic: DynamicEvalConfig,
    pub steps: Option<u64>,
    pub time_budget: Option<f64>,
    pub started: Instant,
    pub dynamic_ms_chars: usize,
}

/// The flags that define the model (fixed by an `--init` or `--resume` checkpoint).
const MODEL_FLAGS: [&str; 7] = [
    "--cell",
    "--embed",
    "--hidden",
    "--layers",
    "--dropout",
    "--input-dropout",
    "--recurrent-dropout",
];

pub fn parse() -> Result<Args, Box<dyn Error>> {
    let mut a = Args {
        text: String::new(),
        model: CharLmConfig {
            hidden_size: 512,
            dropout: 0.25,
            input_dropout: 0.1,
            recurrent_dropout: 0.1,
            ..CharLmConfig::default()
        },
        train: CharLmTrainConfig {
            epochs: 12,
            ..CharLmTrainConfig::default()
        },
        seed: 1,
        eval_streams: 8,
        holdout: 0.1,
        max_chars: None,
        sample_chars: 300,
        temperature: 0.8,
        prime: "The whale".into(),
        log_every: 50,
        segment_at: None,
        save: None,
        load: None,
        init: None,
        resume: None,
        stop_after: None,
        ensemble: Vec::new(),
        dynamic_lrs: Vec::new(),
        dynamic: DynamicEvalConfig::default(),
        steps: None,
        time_budget: None,
        started: Instant::now(),
        dynamic_ms_chars: 100_000,
    };
    let mut it = std::env::args().skip(1);
    // Model flags given on the command line (refused with `--init`, whose checkpoint fixes them),
    // and every flag given (those defining the run are refused with `--resume`).
    let mut model_flags = Vec::new();
    let mut given = Vec::new();
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            let doc = include_str!("main.rs").lines().take_while(|l| l.starts_with("//!"));
            let doc: Vec<&str> = doc.map(|l| l.trim_start_matches("//!")).collect();
            println!("{}", doc.join("\n"));
            std::process::exit(0);
        }
        let val = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {val:?}: {e}");
        macro_rules! num {
            () => {
                val.parse().map_err(|e| bad(&e))?
            };
        }
        given.push(flag.clone());
        if MODEL_FLAGS.contains(&flag.as_str()) {
            model_flags.push(flag.clone());
        }
        match flag.as_str() {
            "--text" => a.text = val.clone(),
            "--cell" => {
                a.model.cell = match val.as_str() {
                    "lstm" => CellKind::Lstm,
                    "gru" => CellKind::Gru,
                    "rnn-tanh" => CellKind::RnnTanh,
                    _ => return Err(bad(&"expected lstm, gru or rnn-tanh").into()),
                }
            }
            "--embed" => a.model.embed_dim = num!(),
            "--hidden" => a.model.hidden_size = num!(),
            "--layers" => a.model.num_layers = num!(),
            "--dropout" => a.model.dropout = num!(),
            "--input-dropout" => a.model.input_dropout = num!(),
            "--recurrent-dropout" => a.model.recurrent_dropout = num!(),
            "--epochs" => a.train.epochs = num!(),
            "--bptt" => a.train.bptt = num!(),
            "--batch" => a.train.batch = num!(),
            "--lr" => a.train.optimizer.lr = num!(),
            "--warmup" => a.train.schedule.warmup_steps = num!(),
            "--min-lr-factor" => a.train.schedule.min_factor = num!(),
            "--clip" => a.train.clip = num!(),
            "--threads" => a.train.threads = num!(),
            "--seed" => a.seed = num!(),
            "--eval-streams" => a.eval_streams = num!(),
            "--holdout" => a.holdout = num!(),
            "--max-chars" => a.max_chars = Some(num!()),
            "--sample-chars" => a.sample_chars = num!(),
            "--temperature" => a.temperature = num!(),
            "--prime" => a.prime = val.clone(),
            "--log-every" => a.log_every = num!(),
            "--segment-at" => a.segment_at = Some(val.clone()),
            "--save" => a.save = Some(val.clone()),
            "--load" => a.load = Some(val.clone()),
            "--init" => a.init = Some(val.clone()),
            "--resume" => a.resume = Some(val.clone()),
            "--stop-after" => a.stop_after = Some(num!()),
            "--average-from" => a.train.average_from = Some(num!()),
            "--weight-drop" => a.train.weight_drop = num!(),
            "--ensemble" => a.ensemble.push(val.clone()),
            "--dynamic-eval" => {
                a.dynamic_lrs = val
                    .split(',')
                    .map(|x| x.trim().parse::<f64>())
                    .collect::<Result<_, _>>()
                    .map_err(|e| bad(&e))?
            }
            "--dynamic-segment" => a.dynamic.segment = num!(),
            "--dynamic-decay" => a.dynamic.decay = num!(),
            "--dynamic-clip" => a.dynamic.clip = num!(),
            "--dynamic-rule" => {
                a.dynamic.rule = match val.as_str() {
                    "sgd" => DynamicRule::Sgd,
                    "rms" => DynamicRule::Rms,
                    _ => return Err(bad(&"expected sgd or rms").into()),
                }
            }
            "--dynamic-ms-chars" => a.dynamic_ms_chars = num!(),
            "--steps" => a.steps = Some(num!()),
            "--time-budget" => a.time_budget = Some(num!()),
            _ => return Err(format!("unknown option {flag} (see --help)").into()),
        }
    }
    if let Some(dir) = &a.resume {
        // The checkpoint fixes everything that shapes the run; the rest (output, evaluation
        // and where to save) may be given.
        const RUN_FLAGS: [&str; 17] = [
            "--epochs",
            "--bptt",
            "--batch",
            "--lr",
            "--warmup",
            "--min-lr-factor",
            "--clip",
            "--threads",
            "--seed",
            "--holdout",
            "--max-chars",
            "--steps",
            "--time-budget",
            "--average-from",
            "--weight-drop",
            "--init",
            "--load",
        ];
        let fixed: Vec<&str> = given
            .iter()
            .map(String::as_str)
            .filter(|f| RUN_FLAGS.contains(f) || MODEL_FLAGS.contains(f))
            .collect();
        if !fixed.is_empty() {
            return Err(format!(
                "{} cannot be combined with --resume {dir}: the checkpoint fixes the model and the training run",
                fixed.join(", ")
            )
            .into());
        }
    } else if a.text.is_empty() {
        return Err("--text PATH is required".into());
    }
    if let Some(s) = a.stop_after {
        if !(s.is_finite() && s > 0.0) {
            return Err(format!("--stop-after must be a positive number of seconds, got {s}").into());
        }
        if a.load.is_some() {
            return Err("--stop-after limits training; --load DIR does not train".into());
        }
    }
    if !a.ensemble.is_empty() && a.load.is_none() {
        return Err("--ensemble DIR needs --load DIR (the first member)".into());
    }
    if a.init.is_some() && !model_flags.is_empty() {
        return Err(format!(
            "{} cannot be combined with --init DIR: the checkpoint fixes the architecture and dropout",
            model_flags.join(", ")
        )
        .into());
    }
    if a.init.is_some() && a.load.is_some() {
        return Err(
            "--init DIR (train from a checkpoint) and --load DIR (evaluate one, no training) exclude each other".into(),
        );
    }
    if !(a.holdout > 0.0 && a.holdout < 1.0) {
        return Err(format!("--holdout must be in (0, 1), got {}", a.holdout).into());
    }
    Ok(a)
}
