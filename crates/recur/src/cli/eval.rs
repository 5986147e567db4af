//! `recur eval` and `recur predict`: score data files with a trained checkpoint.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use recur::recipe::{classify, forecast};

/// `recur eval` arguments.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// The checkpoint directory (`DIR/model` of a training run).
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// Labelled data in the training format.
    #[arg(long, value_name = "FILE")]
    data: PathBuf,
}

/// `recur predict` arguments.
#[derive(Debug, clap::Args)]
pub struct PredictArgs {
    /// The checkpoint directory (`DIR/model` of a training run).
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// Data in the training format (labels are not needed).
    #[arg(long, value_name = "FILE")]
    data: PathBuf,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
}

fn kind(model: &std::path::Path) -> anyhow::Result<String> {
    let ck = recur_train::checkpoint::load(model)?;
    Ok(ck
        .preprocessing
        .get("kind")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string())
}

/// Runs `recur eval`.
pub fn eval(a: EvalArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let v = match kind(&a.model)?.as_str() {
        classify::PREP_KIND => classify::eval(&a.model, &a.data)?,
        forecast::PREP_KIND => forecast::eval(&a.model, &a.data)?,
        k => bail!("{}: unknown checkpoint kind `{k}`", a.model.display()),
    };
    writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `recur predict`.
pub fn predict(a: PredictArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    match kind(&a.model)?.as_str() {
        classify::PREP_KIND => {
            let preds = classify::predict_file(&a.model, &a.data)?;
            for (i, (class, p)) in preds.iter().enumerate() {
                if a.json {
                    writeln!(
                        out,
                        "{}",
                        serde_json::json!({"index": i, "class": class, "probabilities": p})
                    )?;
                } else {
                    let best = p.iter().cloned().fold(0.0f64, f64::max);
                    writeln!(out, "{i}\t{class}\t{best:.4}")?;
                }
            }
        }
        forecast::PREP_KIND => {
            let f = forecast::predict_file(&a.model, &a.data)?;
            for (step, v) in f.iter().enumerate() {
                if a.json {
                    writeln!(out, "{}", serde_json::json!({"step": step + 1, "forecast": v}))?;
                } else {
                    writeln!(out, "{}\t{v:.4}", step + 1)?;
                }
            }
        }
        k => bail!("{}: unknown checkpoint kind `{k}`", a.model.display()),
    }
    Ok(ExitCode::SUCCESS)
}
