//! Exports the escalation forecaster's featurized data of a `recur demo` run as `.npy` files,
//! so that another framework (`bench/forecaster_torch`) can train the same model on exactly
//! the same inputs.
//!
//! `cargo run --release -p recur --example harbor_export -- RUN_DIR OUT_DIR`
//!
//! The log is regenerated from the run's `metrics.json` (`input.tickets`, `input.seed`) and
//! split with the run's config, as `harbor_precision` does; the preprocessor is the one saved
//! in `RUN_DIR/model`. The example checks that a preprocessor fitted afresh on the training
//! cuts equals the saved one, that `pos_weight` equals the checkpoint's, and that the saved
//! model scores the exported holdout at the recorded `holdout.bigru_auc`.
//!
//! Per split (`train`, `validation`, `holdout`), with `n` samples and `E` steps in all:
//! * `{split}_ids.npy`      i64 `[E]`: event-type id per step (embedding rows),
//! * `{split}_scalars.npy`  f32 `[E, F]`: scaled scalar channels per step,
//! * `{split}_offsets.npy`  i64 `[n + 1]`: sample `i` is steps `offsets[i]..offsets[i + 1]`,
//! * `{split}_lengths.npy`  i64 `[n]`,
//! * `{split}_labels.npy`   u8 `[n]`,
//! * `{split}_tickets.npy`  i64 `[n]` (ticket index) and `{split}_cut_ms.npy` i64 `[n]`;
//!
//! plus `holdout_recur_probs.npy` (f64 `[n]`, the saved model's holdout probabilities) and
//! `meta.json` (shapes, vocabulary, embedding width, `pos_weight`, model and training config).

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use ndarray::{Array1, Array2};
use ndarray_npy::WriteNpyExt;
use recur::recipe::escalation::{self, EscalationConfig};
use recur_data::features::Preprocessor;
use recur_data::harbor::{generate, HarborConfig};
use recur_data::labels::Sample;
use recur_data::schema::EventLog;
use recur_data::split::split_log;
use recur_train::metrics::roc_auc;
use serde_json::{json, Value};

fn write<T: WriteNpyExt>(dir: &Path, name: &str, a: &T) -> Result<()> {
    let p = dir.join(name);
    let f = BufWriter::new(File::create(&p).with_context(|| format!("creating {}", p.display()))?);
    a.write_npy(f).with_context(|| format!("writing {}", p.display()))
}

/// Writes one split's arrays; returns its summary for `meta.json`.
fn export(dir: &Path, name: &str, log: &EventLog, pre: &Preprocessor, samples: &[Sample]) -> Result<Value> {
    let f = pre.n_scalars();
    let (mut ids, mut scalars, mut offsets, mut lengths) = (Vec::new(), Vec::new(), vec![0i64], Vec::new());
    for s in samples {
        let x = pre.sample_features(log, s);
        ensure!(
            x.len() == s.prefix_len && x.scalars.len() == x.len() * f && x.type_ids.len() == x.len(),
            "{name}: inconsistent features for ticket {} prefix {}",
            s.ticket,
            s.prefix_len
        );
        ids.extend(x.type_ids.iter().map(|&i| i as i64));
        scalars.extend_from_slice(&x.scalars);
        lengths.push(x.len() as i64);
        offsets.push(ids.len() as i64);
    }
    let steps = ids.len();
    let labels: Vec<u8> = samples.iter().map(|s| u8::from(s.label)).collect();
    let positives = labels.iter().filter(|&&l| l == 1).count();
    write(dir, &format!("{name}_ids.npy"), &Array1::from(ids))?;
    write(
        dir,
        &format!("{name}_scalars.npy"),
        &Array2::from_shape_vec((steps, f), scalars)?,
    )?;
    write(dir, &format!("{name}_offsets.npy"), &Array1::from(offsets))?;
    let max_len = lengths.iter().copied().max().unwrap_or(0);
    let over_64 = lengths.iter().filter(|&&l| l > 64).count();
    write(dir, &format!("{name}_lengths.npy"), &Array1::from(lengths))?;
    write(dir, &format!("{name}_labels.npy"), &Array1::from(labels))?;
    let tickets: Vec<i64> = samples.iter().map(|s| s.ticket as i64).collect();
    write(dir, &format!("{name}_tickets.npy"), &Array1::from(tickets))?;
    let cuts: Vec<i64> = samples.iter().map(|s| s.cut_ms).collect();
    write(dir, &format!("{name}_cut_ms.npy"), &Array1::from(cuts))?;
    Ok(json!({
        "samples": samples.len(),
        "positives": positives,
        "steps": steps,
        "scalars": f,
        "max_length": max_len,
        "samples_longer_than_64": over_64,
    }))
}

fn main() -> Result<()> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let [run, out] = match a.as_slice() {
        [r, o] => [PathBuf::from(r), PathBuf::from(o)],
        _ => bail!("usage: harbor_export RUN_DIR OUT_DIR"),
    };
    let metrics: Value = serde_json::from_slice(
        &std::fs::read(run.join("metrics.json")).with_context(|| format!("{}/metrics.json", run.display()))?,
    )?;
    ensure!(
        metrics["input"]["source"] == "generated",
        "the run did not generate its tickets (input.source = {})",
        metrics["input"]["source"]
    );
    let tickets = metrics["input"]["tickets"].as_u64().context("input.tickets")? as usize;
    let seed = metrics["input"]["seed"].as_u64().context("input.seed")?;
    let mut raw = metrics["config"].clone();
    // Runs made before `train_cuts` replaced it.
    raw.as_object_mut()
        .context("config object")?
        .remove("oversample_positives");
    let cfg: EscalationConfig = serde_json::from_value(raw).context("config")?;

    let log = generate(&HarborConfig::new(tickets, seed));
    let split = split_log(&log, &cfg.split)?;
    let s = escalation::samples(&cfg, &log, &split)?;
    let (model, pre, _) = escalation::load(&run.join("model"))?;
    let refit = Preprocessor::fit(&log, &s.train, cfg.features.clone())?;
    ensure!(
        refit == pre,
        "a preprocessor fitted on the regenerated training cuts differs from the checkpoint's"
    );
    let ck: Value = serde_json::from_slice(&std::fs::read(run.join("model").join("manifest.json"))?)?;
    let pos = s.train.iter().filter(|x| x.label).count();
    let pos_weight = cfg.pos_weight.resolve(s.train.len() - pos, pos)?;
    let ck_pw = ck["model"]["task"]["pos_weight"]
        .as_f64()
        .context("model.task.pos_weight")?;
    ensure!(
        pos_weight as f64 == ck_pw,
        "pos_weight {pos_weight} differs from the checkpoint's {ck_pw}"
    );

    // The saved model on the regenerated holdout must give the recorded AUC.
    let yh: Vec<bool> = s.holdout.iter().map(|x| x.label).collect();
    let probs = escalation::score(&model, &log, &pre, &s.holdout)?;
    let auc = roc_auc(&yh, &probs)?;
    let recorded = metrics["holdout"]["bigru_auc"].as_f64().context("holdout.bigru_auc")?;
    ensure!(
        (auc - recorded).abs() < 1e-9,
        "holdout AUC of the saved model {auc} differs from the recorded {recorded}"
    );
    println!(
        "verified: preprocessor, pos_weight {pos_weight}, holdout AUC {auc:.5} = recorded {recorded:.5} ({} cuts, {} positive)",
        yh.len(),
        yh.iter().filter(|&&y| y).count()
    );

    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let mut parts = serde_json::Map::new();
    for (name, part) in [
        ("train", &s.train),
        ("validation", &s.validation),
        ("holdout", &s.holdout),
    ] {
        let summary = export(&out, name, &log, &pre, part)?;
        println!("{name}: {summary}");
        parts.insert(name.to_string(), summary);
    }
    write(&out, "holdout_recur_probs.npy", &Array1::from(probs))?;
    let batches = s.train.len().div_ceil(cfg.training.batch_size);
    let meta = json!({
        "run": run.display().to_string(),
        "tickets": tickets,
        "seed": seed,
        "splits": parts,
        "vocab_size": pre.vocab_size(),
        "embedding_dim": pre.embedding_dim(),
        "n_scalars": pre.n_scalars(),
        "scalar_names": pre.scaler.channel_names(),
        "pos_weight": pos_weight,
        "model": ck["model"]["sequence"],
        "truncate": cfg.truncate,
        "training": serde_json::to_value(&cfg.training)?,
        "optimizer_weight_decay": cfg.training.optimizer.weight_decay(),
        "batches_per_epoch": batches,
        "total_steps": batches * cfg.training.epochs,
        "recur": {
            "holdout_auc": recorded,
            "epochs": std::fs::read_to_string(run.join("metrics.jsonl"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .collect::<Vec<_>>(),
        },
    });
    std::fs::write(out.join("meta.json"), serde_json::to_string_pretty(&meta)?)?;
    println!("wrote {}", out.display());
    Ok(())
}
