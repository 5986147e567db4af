//! `recur train`, `eval` and `predict` through the real binary: the default recipe on the real
//! datasets in ../shared/datasets (when present), and the run directory, config and error
//! paths on small synthetic files.

use std::path::{Path, PathBuf};

use serde_json::Value;

mod cli_support;
use cli_support::{assert_fails, assert_ok, recur};

fn datasets() -> Option<PathBuf> {
    let candidates = [
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets"),
        PathBuf::from("/work/shared/datasets"),
    ];
    let found = candidates.into_iter().find(|p| p.join("JapaneseVowels").is_dir());
    if found.is_none() {
        eprintln!("note: ../shared/datasets not found; skipping the real-data runs");
    }
    found
}

fn metrics(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("metrics.json")).unwrap()).unwrap()
}

fn run_ts(name: &str, min_accuracy: f64) {
    let Some(d) = datasets() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let train = d.join(format!("{name}/{name}_TRAIN.ts"));
    let test = d.join(format!("{name}/{name}_TEST.ts"));
    assert_ok(&recur(&[
        &"train", &"--train", &train, &"--test", &test, &"--out", &out,
    ]));
    let m = metrics(&out);
    let acc = m["test"]["accuracy"].as_f64().unwrap();
    eprintln!(
        "{name}: test accuracy {acc:.4}, wall {:.2} s",
        m["wall_seconds"].as_f64().unwrap()
    );
    assert!(acc >= min_accuracy, "{name}: accuracy {acc} < {min_accuracy}");
    for f in [
        "model/manifest.json",
        "last/manifest.json",
        "metrics.jsonl",
        "config.toml",
        "training_curve.svg",
    ] {
        assert!(out.join(f).is_file(), "missing {f}");
    }
    // `recur eval` on the test file reproduces the recorded accuracy from the checkpoint alone.
    let model = out.join("model");
    let e: Value = serde_json::from_str(&assert_ok(&recur(&[&"eval", &"--model", &model, &"--data", &test]))).unwrap();
    assert_eq!(e["metrics"]["accuracy"].as_f64().unwrap(), acc);
    let p = assert_ok(&recur(&[&"predict", &"--model", &model, &"--data", &test, &"--json"]));
    assert_eq!(p.lines().count(), m["test_series"].as_u64().unwrap() as usize);
}

#[test]
fn japanese_vowels_default_recipe() {
    run_ts("JapaneseVowels", 0.97);
}

#[test]
fn gunpoint_default_recipe_beats_1nn_dtw() {
    run_ts("GunPoint", 0.907);
}

#[test]
fn airline_forecast_beats_seasonal_naive() {
    let Some(d) = datasets() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("air");
    let csv = d.join("Airline/Airline.csv");
    assert_ok(&recur(&[&"train", &"--train", &csv, &"--out", &out]));
    let m = metrics(&out);
    let (mae, naive) = (
        m["test"]["mae"].as_f64().unwrap(),
        m["test"]["seasonal_naive_mae"].as_f64().unwrap(),
    );
    eprintln!("Airline: GRU MAE {mae:.2}, seasonal naive {naive:.2}");
    assert!(
        (naive - 71.25).abs() < 1e-9,
        "seasonal naive on the last 24 months is 71.25"
    );
    assert!(mae < naive, "GRU {mae} vs seasonal naive {naive}");
    let p = assert_ok(&recur(&[&"predict", &"--model", &out.join("model"), &"--data", &csv]));
    assert_eq!(p.lines().count(), 24);
}

fn write_ts(path: &Path, n: usize, seed: u64) {
    // Two classes: rising or falling ramps with noise, variable length, 2 channels.
    let mut text = String::from("# synthetic\n@problemName Ramps\n@timeStamps false\n@missing false\n@univariate false\n@dimensions 2\n@equalLength false\n@classLabel true up down\n@data\n");
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut next = || {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((x >> 33) as f64 / (1u64 << 31) as f64) - 0.5
    };
    for i in 0..n {
        let up = i % 2 == 0;
        let len = 5 + (i * 7) % 11;
        let ch = |scale: f64, next: &mut dyn FnMut() -> f64| -> String {
            (0..len)
                .map(|t| {
                    let v = if up { t as f64 } else { (len - t) as f64 } * scale + next();
                    format!("{v:.3}")
                })
                .collect::<Vec<_>>()
                .join(",")
        };
        let a = ch(0.3, &mut next);
        let b = ch(-0.2, &mut next);
        text.push_str(&format!("{a}:{b}:{}\n", if up { "up" } else { "down" }));
    }
    std::fs::write(path, text).unwrap();
}

#[test]
fn run_directory_config_and_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let (train, test) = (tmp.path().join("r_TRAIN.ts"), tmp.path().join("r_TEST.ts"));
    write_ts(&train, 60, 1);
    write_ts(&test, 30, 2);
    let out = tmp.path().join("run");
    let cfg = tmp.path().join("recipe.toml");
    std::fs::write(&cfg, "[model]\nhidden_size = 8\n\n[training]\nepochs = 15\n").unwrap();
    let printed = assert_ok(&recur(&[
        &"train",
        &"--config",
        &cfg,
        &"--set",
        &"training.batch_size=8",
        &"--print-config",
    ]));
    let resolved: toml::Table = toml::from_str(&printed).unwrap();
    assert_eq!(resolved["model"]["hidden_size"].as_integer(), Some(8));
    assert_eq!(resolved["training"]["batch_size"].as_integer(), Some(8));
    assert_eq!(resolved["training"]["epochs"].as_integer(), Some(15));
    assert_ok(&recur(&[
        &"train",
        &"--config",
        &cfg,
        &"--train",
        &train,
        &"--test",
        &test,
        &"--out",
        &out,
        &"--seed",
        &"3",
    ]));
    let m = metrics(&out);
    assert!(m["test"]["accuracy"].as_f64().unwrap() > 0.9, "{m}");
    let written: toml::Table = toml::from_str(&std::fs::read_to_string(out.join("config.toml")).unwrap()).unwrap();
    assert_eq!(written["training"]["seed"].as_integer(), Some(3));
    let lines = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert!(lines
        .lines()
        .all(|l| serde_json::from_str::<Value>(l).unwrap()["epoch"].is_u64()));
    let svg = std::fs::read_to_string(out.join("training_curve.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("polyline"),
        "an SVG with curves"
    );
    // Same seed, same model: the run is deterministic end to end.
    let out2 = tmp.path().join("run2");
    assert_ok(&recur(&[
        &"train",
        &"--config",
        &cfg,
        &"--train",
        &train,
        &"--test",
        &test,
        &"--out",
        &out2,
        &"--seed",
        &"3",
    ]));
    assert_eq!(
        std::fs::read(out.join("model/weights.safetensors")).unwrap(),
        std::fs::read(out2.join("model/weights.safetensors")).unwrap()
    );

    assert_fails(
        &recur(&[&"train", &"--set", &"model.hiden_size=3", &"--print-config"]),
        &["hiden_size"],
    );
    assert_fails(
        &recur(&[&"train", &"--set", &"model.dropout=2", &"--print-config"]),
        &["model.dropout"],
    );
    assert_fails(
        &recur(&[&"train", &"--train", &train, &"--out", &out]),
        &["--test is required"],
    );
    assert_fails(
        &recur(&[&"train", &"--train", &cfg, &"--test", &test, &"--out", &out]),
        &["unsupported extension"],
    );
    let broken = tmp.path().join("broken.ts");
    std::fs::write(
        &broken,
        "@problemName X\n@classLabel true a b\n@data\n1,2,3:a\n1,x,3:b\n",
    )
    .unwrap();
    assert_fails(
        &recur(&[&"train", &"--train", &broken, &"--test", &test, &"--out", &out]),
        &["broken.ts", ":5"],
    );
    assert_fails(
        &recur(&[&"eval", &"--model", &tmp.path().join("nope"), &"--data", &test]),
        &["nope"],
    );
    // A corrupted checkpoint is refused by name.
    let w = out.join("model/weights.safetensors");
    let mut bytes = std::fs::read(&w).unwrap();
    let k = bytes.len() - 3;
    bytes[k] ^= 1;
    std::fs::write(&w, bytes).unwrap();
    assert_fails(
        &recur(&[&"eval", &"--model", &out.join("model"), &"--data", &test]),
        &["weights.safetensors", "SHA-256"],
    );
}
