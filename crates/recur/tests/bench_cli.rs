//! End-to-end tests of `recur bench` through the binary: a model directory and a `sequence`
//! checkpoint, the JSON schema and its invariants, `--kernels reference`, `--samples`, the
//! table, and every error path (exit code 1, message naming the flag, file or kind at fault).
//! Measurements are kept short with `--seconds 0.05`.

use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use recur::{CellKind, Rnn, RnnConfig};
use recur_train::checkpoint::{self, Checkpoint};
use recur_train::models::sequence::{Head, SequenceModel, SequenceModelConfig};
use recur_train::supervised::Task;
use recur_train::Module;
use serde_json::{json, Value};

mod cli_support;
use cli_support::{assert_fails_with, assert_ok, recur};

/// A model directory holding a 2-layer bidirectional GRU, hidden 16.
fn model_dir(root: &Path) -> PathBuf {
    let mut cfg = RnnConfig::new(CellKind::Gru, 5, 16);
    cfg.num_layers = 2;
    cfg.bidirectional = true;
    let rnn = Rnn::<f32>::new(cfg, &mut ChaCha8Rng::seed_from_u64(3)).unwrap();
    let dir = root.join("gru");
    recur::model_dir::save(&dir, &rnn).unwrap();
    dir
}

fn sequence_config() -> SequenceModelConfig {
    let mut rnn = RnnConfig::new(CellKind::Lstm, 4 + 3, 8);
    rnn.bidirectional = true;
    SequenceModelConfig {
        features: 3,
        vocab: 12,
        embed_dim: 4,
        rnn,
        head: Head::Final,
        outputs: 5,
    }
}

/// A checkpoint written the way `recur train` writes a run's model.
fn write_checkpoint(dir: &Path, kind: &str, model: Value, tensors: recur_train::NamedTensors) {
    let ck = Checkpoint {
        kind: kind.into(),
        model,
        training: json!({}),
        metrics: json!({}),
        preprocessing: json!({"kind": "classify"}),
        state: Value::Null,
        tensors,
        optimizer: None,
    };
    checkpoint::save(dir, &ck).unwrap();
}

/// A `sequence` checkpoint with an embedding, as written by the classification recipe.
fn sequence_checkpoint(root: &Path) -> PathBuf {
    let cfg = sequence_config();
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let model = SequenceModel::new(cfg.clone(), &recur_nn::init::Init::default(), &mut rng).unwrap();
    let task = Task::Multiclass {
        classes: 5,
        class_weights: None,
    };
    let dir = root.join("run").join("model");
    write_checkpoint(
        &dir,
        "sequence",
        json!({"sequence": cfg, "task": task}),
        model.named_tensors(),
    );
    dir
}

/// Runs `recur bench --json` and checks the schema and the invariants every report must hold;
/// returns the parsed object and the text.
#[track_caller]
fn bench_json(model: &Path, extra: &[&str]) -> (Value, String) {
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
        vec![&"bench", &"--model", &model, &"--seconds", &"0.05", &"--json"];
    args.extend(extra.iter().map(|a| a as &dyn AsRef<std::ffi::OsStr>));
    let text = assert_ok(&recur(&args));
    assert_eq!(text.lines().count(), 1, "exactly one JSON object on one line:\n{text}");
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let top: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    let mut want = vec![
        "batch",
        "kernels",
        "kind",
        "lengths",
        "model",
        "precision",
        "simd",
        "threads",
    ];
    want.sort();
    assert_eq!(top, want, "{text}");
    assert_eq!(v["model"], model.display().to_string());
    assert!([1, 2].contains(&v["threads"].as_u64().unwrap()), "{text}");
    assert!(
        ["f32", "f16", "int8"].contains(&v["precision"].as_str().unwrap()),
        "{text}"
    );
    assert!(v["batch"].as_u64().unwrap() >= 1);
    let simd = v["simd"].as_str().unwrap();
    match v["kernels"].as_str().unwrap() {
        "reference" => assert_eq!(simd, "reference"),
        "best" => assert!(["avx2+fma", "portable"].contains(&simd), "{simd}"),
        other => panic!("kernels {other}"),
    }
    let with_samples = extra.contains(&"--samples");
    for (t, s) in v["lengths"].as_object().unwrap() {
        assert!(t.parse::<usize>().unwrap() > 0);
        let keys: Vec<&str> = s.as_object().unwrap().keys().map(String::as_str).collect();
        let mut want = vec!["iterations", "mean_ms", "median_ms", "min_ms", "p95_ms", "p99_ms"];
        if with_samples {
            want.push("samples_ms");
        }
        want.sort();
        assert_eq!(keys, want, "length {t}: {s}");
        let f = |k: &str| s[k].as_f64().unwrap();
        let n = s["iterations"].as_u64().unwrap();
        assert!(n >= 20, "length {t}: {n} iterations");
        assert!(f("min_ms") > 0.0, "{s}");
        assert!(f("p99_ms") >= f("p95_ms") && f("p95_ms") >= f("median_ms"), "{s}");
        assert!(f("median_ms") >= f("min_ms") && f("mean_ms") >= f("min_ms"), "{s}");
        if with_samples {
            let samples: Vec<f64> = s["samples_ms"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            assert_eq!(samples.len() as u64, n);
            assert_eq!(samples.iter().cloned().fold(f64::INFINITY, f64::min), f("min_ms"));
        }
    }
    (v, text)
}

/// The keys of `lengths` in the order they appear in the text.
fn length_keys_in_text_order(v: &Value, text: &str) -> Vec<String> {
    let mut keys: Vec<(usize, String)> = v["lengths"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| (text.find(&format!("\"{k}\":{{")).unwrap(), k.clone()))
        .collect();
    keys.sort();
    keys.into_iter().map(|(_, k)| k).collect()
}

#[test]
fn model_directory_default_lengths_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = model_dir(tmp.path());
    let (v, text) = bench_json(&dir, &[]);
    assert_eq!(v["kind"], "rnn");
    assert_eq!(v["kernels"], "best");
    assert_eq!(v["batch"], 1);
    assert_eq!(length_keys_in_text_order(&v, &text), ["18", "112"]);
}

#[test]
fn model_directory_reference_kernels_with_samples() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = model_dir(tmp.path());
    let (v, _) = bench_json(
        &dir,
        &[
            "--kernels",
            "reference",
            "--batch",
            "3",
            "--lengths",
            "7, 2",
            "--samples",
        ],
    );
    assert_eq!(
        (v["kernels"].as_str(), v["simd"].as_str()),
        (Some("reference"), Some("reference"))
    );
    assert_eq!(v["batch"], 3);
    assert_eq!(v["lengths"].as_object().unwrap().len(), 2);
}

#[test]
fn sequence_checkpoint_json_and_table() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = sequence_checkpoint(tmp.path());
    let (v, text) = bench_json(&dir, &["--lengths", "4,30"]);
    assert_eq!(v["kind"], "sequence");
    assert_eq!(length_keys_in_text_order(&v, &text), ["4", "30"]);
    let (v, _) = bench_json(&dir, &["--lengths", "6", "--kernels", "reference", "--batch", "2"]);
    assert_eq!(
        (v["kind"].as_str(), v["simd"].as_str()),
        (Some("sequence"), Some("reference"))
    );

    let table = assert_ok(&recur(&[
        &"bench",
        &"--model",
        &dir,
        &"--seconds",
        &"0.05",
        &"--lengths",
        &"5,9",
    ]));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    assert!(
        lines[0].contains("sequence") && lines[0].contains("threads 1"),
        "{table}"
    );
    for h in ["length", "median ms", "p95 ms", "p99 ms", "iterations"] {
        assert!(lines[1].contains(h), "{table}");
    }
    for (line, t) in lines[2..].iter().zip(["5", "9"]) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols.len(), 5, "{line}");
        assert_eq!(cols[0], t);
        let ms: Vec<f64> = cols[1..4].iter().map(|c| c.parse().unwrap()).collect();
        assert!(ms[0] <= ms[1] && ms[1] <= ms[2], "{line}");
        assert!(cols[4].parse::<usize>().unwrap() >= 20, "{line}");
    }
}

#[test]
fn flag_errors_name_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = model_dir(tmp.path());
    let bench = |extra: &[&str]| {
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"bench", &"--model", &dir, &"--seconds", &"0.05"];
        args.extend(extra.iter().map(|a| a as &dyn AsRef<std::ffi::OsStr>));
        recur(&args)
    };
    let cases: [(&[&str], &[&str]); 9] = [
        (
            &["--lengths", "18,abc"],
            &["--lengths: `abc` is not a positive integer"],
        ),
        (&["--lengths", "18,0"], &["--lengths: `0` is not a positive integer"]),
        (&["--lengths=-3"], &["--lengths: `-3` is not a positive integer"]),
        (&["--lengths", "18,,5"], &["--lengths: `` is not a positive integer"]),
        (&["--lengths", ""], &["--lengths: no lengths given"]),
        (&["--lengths", "5,9,5"], &["--lengths: `5` is given more than once"]),
        (
            &["--threads", "3"],
            &["--threads 3", "only --threads 1 or 2", "two directions"],
        ),
        (&["--threads", "0"], &["--threads 0", "only --threads 1 or 2"]),
        (&["--batch", "0"], &["--batch"]),
    ];
    for (extra, needles) in cases {
        assert_fails_with(&bench(extra), needles);
    }
    for seconds in ["--seconds=-1", "--seconds=NaN", "--seconds=inf"] {
        assert_fails_with(&recur(&[&"bench", &"--model", &dir, &seconds]), &["--seconds: "]);
    }
    // --samples only makes sense with --json: a usage error.
    assert_eq!(bench(&["--samples"]).status.code(), Some(2));
}

#[test]
fn model_errors_name_the_directory_or_kind() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |dir: &Path| recur(&[&"bench", &"--model", &dir, &"--seconds", &"0.05"]);

    let missing = tmp.path().join("no-such-model");
    assert_fails_with(&run(&missing), &["no-such-model", "no such file or directory"]);

    let plain = tmp.path().join("plain");
    std::fs::create_dir(&plain).unwrap();
    std::fs::write(plain.join("notes.txt"), b"hello").unwrap();
    assert_fails_with(
        &run(&plain),
        &["plain", "neither a recur model directory", "nor a recur checkpoint"],
    );
    let file = plain.join("notes.txt");
    assert_fails_with(&run(&file), &["notes.txt", "neither a recur model directory"]);

    let charlm = tmp.path().join("charlm");
    write_checkpoint(&charlm, "charlm", json!({}), Default::default());
    assert_fails_with(&run(&charlm), &["charlm", "kind `charlm` is not supported"]);

    let no_config = tmp.path().join("no-config");
    write_checkpoint(&no_config, "sequence", json!({"task": null}), Default::default());
    assert_fails_with(
        &run(&no_config),
        &["no-config", "manifest.json", "`model.sequence`: missing"],
    );

    let mismatched = tmp.path().join("mismatched");
    let mut cfg = sequence_config();
    cfg.outputs = 2;
    let sequence = sequence_checkpoint(tmp.path());
    let tensors = checkpoint::load(&sequence).unwrap().tensors;
    write_checkpoint(&mismatched, "sequence", json!({"sequence": cfg}), tensors);
    assert_fails_with(&run(&mismatched), &["mismatched", "weights.safetensors", "head.weight"]);

    // A damaged model directory: the loader's error names the file.
    let dir = model_dir(tmp.path());
    std::fs::write(dir.join("weights.safetensors"), b"garbage").unwrap();
    assert_fails_with(&run(&dir), &["cannot load model directory", "weights.safetensors"]);
}

/// `--threads 2` and `--precision f16|int8` on a model directory: the report says what ran.
#[test]
fn two_threads_and_reduced_precision() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = model_dir(tmp.path());
    for (extra, threads, precision) in [
        (&["--threads", "2"][..], 2, "f32"),
        (&["--precision", "f16"][..], 1, "f16"),
        (&["--precision", "int8", "--threads", "2"][..], 2, "int8"),
    ] {
        let mut args = vec!["--lengths", "4,30"];
        args.extend_from_slice(extra);
        let (v, _) = bench_json(&dir, &args);
        assert_eq!(
            (v["threads"].as_u64(), v["precision"].as_str()),
            (Some(threads), Some(precision))
        );
    }
    let text = assert_ok(&recur(&[
        &"bench",
        &"--model",
        &dir,
        &"--seconds",
        &"0.05",
        &"--threads",
        &"2",
        &"--precision",
        &"f16",
    ]));
    assert!(
        text.lines().next().unwrap().contains("threads 2, precision f16"),
        "{text}"
    );
    assert_eq!(
        recur(&[&"bench", &"--model", &dir, &"--precision", &"f8"])
            .status
            .code(),
        Some(2)
    );
}

/// A `sequence` checkpoint runs on 1 thread with f32 weights; asking for more names the flag.
#[test]
fn sequence_checkpoint_runs_on_two_threads_and_reduced_precision() {
    let tmp = tempfile::tempdir().unwrap();
    let ck = sequence_checkpoint(tmp.path());
    for (flag, value, key, want) in [
        ("--threads", "2", "threads", "2"),
        ("--precision", "int8", "precision", "\"int8\""),
    ] {
        let o = recur(&[
            &"bench",
            &"--model",
            &ck,
            &"--seconds",
            &"0.05",
            &"--lengths",
            &"5",
            &"--json",
            &flag,
            &value,
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v[key].to_string(), want);
        assert!(v["lengths"]["5"]["median_ms"].as_f64().unwrap() > 0.0);
    }
    assert_fails_with(&recur(&[&"bench", &"--model", &ck, &"--threads", &"3"]), &["threads"]);
}

/// `--throughput`: batched scoring of variable-length batches, on a model directory and on a
/// `sequence` checkpoint, as JSON and as text; its flags are checked and named.
#[test]
fn throughput_json_text_and_flag_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = model_dir(tmp.path());
    let ck = sequence_checkpoint(tmp.path());
    let run = |model: &Path, extra: &[&str]| {
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
            vec![&"bench", &"--model", &model, &"--throughput", &"--seconds", &"0.05"];
        args.extend(extra.iter().map(|a| a as &dyn AsRef<std::ffi::OsStr>));
        recur(&args)
    };
    for (model, extra, threads, precision) in [
        (&dir, &["--batch", "7", "--length-dist", "4,9,12"][..], 1, "f32"),
        (
            &dir,
            &["--batch", "5", "--threads", "2", "--precision", "int8"][..],
            2,
            "int8",
        ),
        (&ck, &["--batch", "3", "--length-dist", "3,6"][..], 1, "f32"),
    ] {
        let mut args = extra.to_vec();
        args.push("--json");
        let text = assert_ok(&run(model, &args));
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert_eq!(v["model"], model.display().to_string());
        assert_eq!(v["threads"], threads, "{text}");
        assert_eq!(v["precision"], precision, "{text}");
        let batch = v["batch"].as_u64().unwrap();
        let t = &v["throughput"];
        let (batches, sequences, events) = (
            t["batches"].as_u64().unwrap(),
            t["sequences"].as_u64().unwrap(),
            t["events"].as_u64().unwrap(),
        );
        assert!(batches >= 1 && sequences == batches * batch, "{text}");
        assert!(events >= sequences, "every sequence has at least one event: {text}");
        let seconds = t["seconds"].as_f64().unwrap();
        let eps = t["events_per_s"].as_f64().unwrap();
        assert!((eps - events as f64 / seconds).abs() <= 1e-6 * eps, "{text}");
        if let Some(max) = v["lengths"]["max"].as_u64().filter(|_| extra.contains(&"4,9,12")) {
            assert_eq!(max, 12);
            assert!(v["lengths"]["mean"].as_f64().unwrap() <= 12.0, "{text}");
        }
    }
    let text = assert_ok(&run(&dir, &["--batch", "4"]));
    assert!(text.contains("events/s") && text.contains("batches of 4"), "{text}");
    // Without --batch, a throughput run scores batches of 256 (the workload).
    let v: Value = serde_json::from_str(&assert_ok(&run(&dir, &["--length-dist", "2,3", "--json"]))).unwrap();
    assert_eq!(v["batch"], 256);
    for (extra, needles) in [
        (
            &["--length-dist", "20,10"][..],
            &["--length-dist", "below the median"][..],
        ),
        (&["--length-dist", "x,10"][..], &["--length-dist", "median `x`"][..]),
        (&["--length-dist", "5"][..], &["--length-dist", "MEDIAN,P95"][..]),
        (&["--length-dist", "5,9,0"][..], &["--length-dist", "max `0`"][..]),
        (&["--batch", "0"][..], &["batch"][..]),
    ] {
        assert_fails_with(&run(&dir, extra), needles);
    }
    // --lengths is for latency runs; together with --throughput it is a usage error.
    assert_eq!(run(&dir, &["--lengths", "5"]).status.code(), Some(2));
}
