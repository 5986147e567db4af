//! End-to-end tests of the `recur` binary: every PyTorch golden fixture in `fixtures/rnn`
//! goes through `recur import-torch` and `recur run` and must reproduce PyTorch's `output`,
//! `h_n` and `c_n`; then the error paths, which must fail with exit code 1 and a message
//! naming the key or file at fault.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use ndarray::{ArrayD, IxDyn};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

const EXPECTED_CASES: usize = 120;
const RTOL: f32 = 1e-5;
const ATOL: f32 = 1e-6;

fn recur(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_recur"))
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .expect("spawn recur")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn assert_ok(o: &Output) {
    assert!(o.status.success(), "recur failed ({:?}):\n{}", o.status, stderr(o));
}

/// Asserts a runtime failure (exit code 1, `error:` prefix) whose message contains every
/// needle; returns the message.
#[track_caller]
fn assert_fails_with(o: &Output, needles: &[&str]) -> String {
    let msg = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "expected exit code 1, got {:?}; stderr:\n{msg}",
        o.status
    );
    assert!(msg.starts_with("error: "), "{msg}");
    for n in needles {
        assert!(msg.contains(n), "stderr does not mention {n:?}:\n{msg}");
    }
    msg
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/rnn")
}

/// One golden case: the safetensors bytes and their string metadata.
struct Fixture {
    name: String,
    bytes: Vec<u8>,
    meta: HashMap<String, String>,
}

impl Fixture {
    fn load(path: &Path) -> Self {
        let bytes = fs::read(path).unwrap();
        let (_, metadata) = SafeTensors::read_metadata(&bytes).unwrap();
        let meta = metadata.metadata().clone().unwrap_or_default();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        Fixture { name, bytes, meta }
    }

    fn named(name: &str) -> Self {
        Fixture::load(&fixtures_dir().join(format!("{name}.safetensors")))
    }

    fn tensors(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.bytes).unwrap()
    }

    /// `--cell` for this case (`lstm_proj` fixtures have cell `lstm` in their metadata).
    fn cli_cell(&self) -> &'static str {
        match self.meta["cell"].as_str() {
            "rnn_tanh" => "rnn-tanh",
            "rnn_relu" => "rnn-relu",
            "lstm" => "lstm",
            "gru" => "gru",
            other => panic!("{}: unknown cell {other}", self.name),
        }
    }

    /// The PyTorch `state_dict()` entries: everything named `weight_*`/`bias_*`.
    fn state_dict(&self) -> Vec<(String, TensorView<'_>)> {
        let mut sd: Vec<_> = self
            .tensors()
            .tensors()
            .into_iter()
            .filter(|(k, _)| k.starts_with("weight_") || k.starts_with("bias_"))
            .collect();
        sd.sort_by(|a, b| a.0.cmp(&b.0));
        sd
    }

    fn f32(&self, key: &str) -> Option<ArrayD<f32>> {
        let st = self.tensors();
        let v = st.tensor(key).ok()?;
        assert_eq!(v.dtype(), Dtype::F32, "{}: {key}", self.name);
        let data = v
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        Some(ArrayD::from_shape_vec(IxDyn(v.shape()), data).unwrap())
    }

    fn lengths(&self) -> ArrayD<i64> {
        let st = self.tensors();
        let v = st.tensor("lengths").unwrap();
        assert_eq!(v.dtype(), Dtype::I64, "{}", self.name);
        let data = v
            .data()
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
            .collect();
        ArrayD::from_shape_vec(IxDyn(v.shape()), data).unwrap()
    }
}

fn write_safetensors<'a>(path: &Path, tensors: impl IntoIterator<Item = (String, TensorView<'a>)>) {
    fs::write(path, safetensors::serialize(tensors, None).unwrap()).unwrap();
}

fn write_npy<T: ndarray_npy::WritableElement>(path: &Path, a: &ArrayD<T>) {
    ndarray_npy::write_npy(path, a).unwrap();
}

/// A scratch directory holding one case's files.
struct Case {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl Case {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        Case { _tmp: tmp, dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn import(&self, cell: &str, sd: &Path) -> Output {
        recur(&[
            &"import-torch",
            &"--cell",
            &cell,
            &"--state-dict",
            &sd,
            &"--out",
            &self.path("model"),
        ])
    }

    /// `recur run` with the given optional flags (`--lengths`, `--h0`, `--c0`, …).
    fn run(&self, input: &Path, extra: &[(&str, PathBuf)]) -> Output {
        let (model, out) = (self.path("model"), self.path("out"));
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
            vec![&"run", &"--model", &model, &"--input", &input, &"--out-dir", &out];
        for (flag, p) in extra {
            args.push(flag);
            args.push(p);
        }
        recur(&args)
    }
}

/// Writes the fixture's state dict and inputs, imports, runs, and compares with PyTorch.
/// Returns a description of every mismatch.
fn check_fixture(f: &Fixture) -> Result<(), String> {
    let c = Case::new();
    let sd = c.path("sd.safetensors");
    write_safetensors(&sd, f.state_dict());
    let o = c.import(f.cli_cell(), &sd);
    if !o.status.success() {
        return Err(format!("import-torch failed: {}", stderr(&o)));
    }
    let x = c.path("x.npy");
    write_npy(&x, &f.f32("input").unwrap());
    let mut extra = Vec::new();
    if f.meta["lengths_kind"] == "var" {
        write_npy(&c.path("lengths.npy"), &f.lengths());
        extra.push(("--lengths", c.path("lengths.npy")));
    }
    for key in ["h0", "c0"] {
        if let Some(a) = f.f32(key) {
            let p = c.path(&format!("{key}.npy"));
            write_npy(&p, &a);
            extra.push((if key == "h0" { "--h0" } else { "--c0" }, p));
        }
    }
    let o = c.run(&x, &extra);
    if !o.status.success() {
        return Err(format!("run failed: {}", stderr(&o)));
    }
    let mut problems = Vec::new();
    for key in ["output", "h_n", "c_n"] {
        let file = c.path(&format!("out/{key}.npy"));
        match (f.f32(key), file.exists()) {
            (None, false) => {}
            (None, true) => problems.push(format!("{key}.npy written for a model without it")),
            (Some(_), false) => problems.push(format!("{key}.npy missing")),
            (Some(want), true) => {
                let got: ArrayD<f32> = ndarray_npy::read_npy(&file).unwrap();
                if let Err(e) = compare(&got, &want) {
                    problems.push(format!("{key}: {e}"));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// `|g − w| ≤ ATOL + RTOL·|w|`; false when either is NaN.
fn close(g: f32, w: f32) -> bool {
    (g - w).abs() <= ATOL + RTOL * w.abs()
}

fn compare(got: &ArrayD<f32>, want: &ArrayD<f32>) -> Result<(), String> {
    if got.shape() != want.shape() {
        return Err(format!("shape {:?}, expected {:?}", got.shape(), want.shape()));
    }
    let bad: Vec<_> = got
        .indexed_iter()
        .zip(want.iter())
        .filter(|((_, &g), &w)| !close(g, w))
        .map(|((i, &g), &w)| format!("{i:?}: {g} vs {w}"))
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} of {} values differ, first: {}",
            bad.len(),
            want.len(),
            bad[..bad.len().min(3)].join(", ")
        ))
    }
}

#[test]
fn every_pytorch_fixture_round_trips_through_import_and_run() {
    let mut paths: Vec<PathBuf> = fs::read_dir(fixtures_dir())
        .expect("fixtures/rnn exists (generated by fixtures/gen_rnn.py)")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    paths.sort();
    assert_eq!(paths.len(), EXPECTED_CASES, "fixture count");

    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 8);
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let paths = &paths;
                s.spawn(move || {
                    let mut fails = Vec::new();
                    for p in paths.iter().skip(w).step_by(workers) {
                        let f = Fixture::load(p);
                        if let Err(e) = check_fixture(&f) {
                            fails.push(format!("{}: {e}", f.name));
                        }
                    }
                    fails
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert!(
        failures.is_empty(),
        "{} of {EXPECTED_CASES} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A fixture with two bidirectional LSTM layers, projections, variable lengths and given
/// initial states: the richest case, used by the error-path tests.
const RICH: &str = "lstm_proj_l2_bi_var_given";

fn import_modified(edit: impl FnOnce(&mut Vec<(String, Dtype, Vec<usize>, Vec<u8>)>)) -> Output {
    let f = Fixture::named(RICH);
    let mut owned: Vec<_> = f
        .state_dict()
        .into_iter()
        .map(|(k, v)| (k, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    edit(&mut owned);
    let c = Case::new();
    let sd = c.path("sd.safetensors");
    write_safetensors(
        &sd,
        owned
            .iter()
            .map(|(k, d, s, b)| (k.clone(), TensorView::new(*d, s.clone(), b).unwrap())),
    );
    let o = c.import("lstm", &sd);
    assert!(!c.path("model").exists(), "no model directory after a failed import");
    o
}

#[test]
fn import_rejects_a_missing_key() {
    let o = import_modified(|t| t.retain(|(k, ..)| k != "bias_hh_l1_reverse"));
    assert_fails_with(&o, &["sd.safetensors", "missing", "`bias_hh_l1_reverse`"]);
}

#[test]
fn import_rejects_an_extra_key() {
    let o = import_modified(|t| t.push(("input".into(), Dtype::F32, vec![1], vec![0; 4])));
    assert_fails_with(&o, &["unexpected", "`input`"]);
}

#[test]
fn import_rejects_a_misshaped_key() {
    let o = import_modified(|t| {
        let w = t.iter_mut().find(|(k, ..)| k == "weight_hh_l1").unwrap();
        w.2 = vec![w.2[1], w.2[0]];
    });
    assert_fails_with(&o, &["`weight_hh_l1` has shape [4, 24], expected [24, 4]"]);
}

#[test]
fn import_rejects_an_integer_tensor() {
    let o = import_modified(|t| t.iter_mut().find(|(k, ..)| k == "bias_ih_l0").unwrap().1 = Dtype::I32);
    assert_fails_with(&o, &["`bias_ih_l0` has dtype I32"]);
}

#[test]
fn import_rejects_a_nan_weight() {
    let o = import_modified(|t| {
        let b = &mut t.iter_mut().find(|(k, ..)| k == "weight_hr_l1_reverse").unwrap().3;
        b[8..12].copy_from_slice(&f32::NAN.to_le_bytes());
    });
    assert_fails_with(&o, &["`weight_hr_l1_reverse`", "non-finite"]);
}

#[test]
fn import_converts_f64_and_strips_a_module_prefix() {
    let f = Fixture::named("gru_l2_bi_var_given");
    let reference = Case::new();
    let sd = reference.path("sd.safetensors");
    write_safetensors(&sd, f.state_dict());
    assert_ok(&reference.import("gru", &sd));

    let owned: Vec<(String, Vec<usize>, Vec<u8>)> = f
        .state_dict()
        .into_iter()
        .map(|(k, v)| {
            let b = v
                .data()
                .chunks_exact(4)
                .flat_map(|b| (f32::from_le_bytes(b.try_into().unwrap()) as f64).to_le_bytes());
            (format!("module.gru.{k}"), v.shape().to_vec(), b.collect())
        })
        .collect();
    let mut views: Vec<_> = owned
        .iter()
        .map(|(k, s, b)| (k.clone(), TensorView::new(Dtype::F64, s.clone(), b).unwrap()))
        .collect();
    let c = Case::new();
    let sd = c.path("sd.safetensors");
    write_safetensors(&sd, views.clone());
    let o = c.import("gru", &sd);
    assert_ok(&o);
    assert!(String::from_utf8_lossy(&o.stdout).contains("prefix `module.gru.` stripped"));
    let (a, b) = (
        reference.path("model/weights.safetensors"),
        c.path("model/weights.safetensors"),
    );
    assert_eq!(
        fs::read(a).unwrap(),
        fs::read(b).unwrap(),
        "same weights after f64 → f32"
    );

    // A head next to the RNN: an error listing it, unless --prefix picks the RNN.
    let head = [0u8; 8];
    views.push((
        "module.fc.weight".into(),
        TensorView::new(Dtype::F64, vec![1], &head).unwrap(),
    ));
    write_safetensors(&sd, views);
    assert_fails_with(&c.import("gru", &sd), &["`module.fc.weight`", "--prefix"]);
    let o = recur(&[
        &"import-torch",
        &"--cell",
        &"gru",
        &"--state-dict",
        &sd,
        &"--out",
        &c.path("model"),
        &"--prefix",
        &"module.gru",
    ]);
    assert_ok(&o);
}

#[test]
fn import_summary_line() {
    let f = Fixture::named(RICH);
    let c = Case::new();
    let sd = c.path("sd.safetensors");
    write_safetensors(&sd, f.state_dict());
    let o = c.import("lstm", &sd);
    assert_ok(&o);
    let out = String::from_utf8(o.stdout).unwrap();
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.contains("lstm, 2 layers, bidirectional, input_size 5, hidden_size 6, proj_size 4, with bias"),
        "{out}"
    );
}

/// A model and input files from the rich fixture, ready for `recur run`.
fn prepared_run() -> (Fixture, Case) {
    let f = Fixture::named(RICH);
    let c = Case::new();
    let sd = c.path("sd.safetensors");
    write_safetensors(&sd, f.state_dict());
    assert_ok(&c.import("lstm", &sd));
    write_npy(&c.path("x.npy"), &f.f32("input").unwrap());
    write_npy(&c.path("h0.npy"), &f.f32("h0").unwrap());
    write_npy(&c.path("c0.npy"), &f.f32("c0").unwrap());
    (f, c)
}

#[test]
fn run_rejects_float64_input() {
    let (f, c) = prepared_run();
    let x64 = f.f32("input").unwrap().mapv(f64::from);
    let p = c.path("x64.npy");
    write_npy(&p, &x64);
    assert_fails_with(&c.run(&p, &[]), &["x64.npy", "float32", "float64"]);
    assert!(!c.path("out").exists());
}

#[test]
fn run_rejects_bad_lengths() {
    let (_f, c) = prepared_run();
    let cases: [(&str, ArrayD<i64>, &[&str]); 4] = [
        (
            "zero.npy",
            ArrayD::from_shape_vec(IxDyn(&[4]), vec![5, 0, 1, 3]).unwrap(),
            &["lengths[1] = 0", "1..=7"],
        ),
        (
            "long.npy",
            ArrayD::from_shape_vec(IxDyn(&[4]), vec![5, 7, 8, 3]).unwrap(),
            &["lengths[2] = 8"],
        ),
        (
            "neg.npy",
            ArrayD::from_shape_vec(IxDyn(&[4]), vec![-1, 7, 1, 3]).unwrap(),
            &["lengths[0] = -1"],
        ),
        (
            "short.npy",
            ArrayD::from_shape_vec(IxDyn(&[3]), vec![5, 7, 1]).unwrap(),
            &["has shape [3], expected [4]"],
        ),
    ];
    for (name, lengths, needles) in cases {
        let p = c.path(name);
        write_npy(&p, &lengths);
        let msg = assert_fails_with(&c.run(&c.path("x.npy"), &[("--lengths", p)]), needles);
        assert!(msg.contains(name), "{msg}");
    }
    let p = c.path("float.npy");
    write_npy(&p, &ArrayD::from_elem(IxDyn(&[4]), 3.0f32));
    assert_fails_with(
        &c.run(&c.path("x.npy"), &[("--lengths", p)]),
        &["float.npy", "int64 or int32", "float32"],
    );
}

#[test]
fn run_accepts_int32_lengths() {
    let (f, c) = prepared_run();
    let p = c.path("l32.npy");
    write_npy(&p, &f.lengths().mapv(|v| v as i32));
    let o = c.run(
        &c.path("x.npy"),
        &[("--lengths", p), ("--h0", c.path("h0.npy")), ("--c0", c.path("c0.npy"))],
    );
    assert_ok(&o);
    let got: ArrayD<f32> = ndarray_npy::read_npy(c.path("out/output.npy")).unwrap();
    compare(&got, &f.f32("output").unwrap()).unwrap();
}

/// `--precision f16|int8` runs quantized copies of the weights: close to f32 (the bounds of
/// recur-nn's precision tests) but not equal to it, so the flag really changes the weights used.
#[test]
fn run_precision_flag_quantizes_the_weights() {
    let (f, c) = prepared_run();
    let lengths = c.path("lengths.npy");
    write_npy(&lengths, &f.lengths());
    let states = [
        ("--lengths", lengths),
        ("--h0", c.path("h0.npy")),
        ("--c0", c.path("c0.npy")),
    ];
    assert_ok(&c.run(&c.path("x.npy"), &states));
    let f32_out: ArrayD<f32> = ndarray_npy::read_npy(c.path("out/output.npy")).unwrap();
    compare(&f32_out, &f.f32("output").unwrap()).unwrap();
    for (precision, bound) in [("f16", 1e-2f32), ("int8", 3e-2)] {
        let mut extra = states.to_vec();
        extra.push(("--precision", PathBuf::from(precision)));
        assert_ok(&c.run(&c.path("x.npy"), &extra));
        let got: ArrayD<f32> = ndarray_npy::read_npy(c.path("out/output.npy")).unwrap();
        assert_eq!(got.shape(), f32_out.shape());
        let err = got
            .iter()
            .zip(&f32_out)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(err <= bound, "{precision}: max |Δ| = {err} > {bound}");
        assert!(err > 0.0, "{precision}: the output equals f32's bit for bit");
    }
    let mut bad = states.to_vec();
    bad.push(("--precision", PathBuf::from("int4")));
    let o = c.run(&c.path("x.npy"), &bad);
    assert!(!o.status.success() && stderr(&o).contains("int4") && stderr(&o).contains("int8"));
}

#[test]
fn run_rejects_misshaped_states_and_inputs() {
    let (f, c) = prepared_run();
    let p = c.path("h0_bad.npy");
    write_npy(&p, &ArrayD::<f32>::zeros(IxDyn(&[4, 4, 6])));
    assert_fails_with(
        &c.run(&c.path("x.npy"), &[("--h0", p)]),
        &["h0_bad.npy", "[4, 4, 6]", "expected [4, 4, 4]"],
    );
    let p = c.path("x_bad.npy");
    write_npy(&p, &ArrayD::<f32>::zeros(IxDyn(&[4, 7, 3])));
    assert_fails_with(&c.run(&p, &[]), &["x_bad.npy", "expected [batch, time, 5]"]);
    let p = c.path("x_2d.npy");
    write_npy(
        &p,
        &f.f32("input").unwrap().into_shape_with_order(IxDyn(&[28, 5])).unwrap(),
    );
    assert_fails_with(&c.run(&p, &[]), &["x_2d.npy", "[28, 5]"]);
    let o = c.run(&c.path("x.npy"), &[("--lengths", c.path("missing.npy"))]);
    assert_fails_with(&o, &["missing.npy"]);
}

#[test]
fn run_rejects_c0_for_a_gru() {
    let f = Fixture::named("gru_l1_uni_equal_zero");
    let c = Case::new();
    let sd = c.path("sd.safetensors");
    write_safetensors(&sd, f.state_dict());
    assert_ok(&c.import("gru", &sd));
    let x = c.path("x.npy");
    write_npy(&x, &f.f32("input").unwrap());
    let c0 = c.path("c0.npy");
    write_npy(&c0, &ArrayD::<f32>::zeros(IxDyn(&[1, 4, 6])));
    assert_fails_with(&c.run(&x, &[("--c0", c0)]), &["c0.npy", "only accepted by LSTM"]);
}

#[test]
fn run_rejects_a_corrupted_model() {
    let (_f, c) = prepared_run();
    let w = c.path("model/weights.safetensors");
    let mut bytes = fs::read(&w).unwrap();
    let n = bytes.len();
    bytes[n - 2] ^= 1;
    fs::write(&w, bytes).unwrap();
    assert_fails_with(&c.run(&c.path("x.npy"), &[]), &["weights.safetensors", "sha256"]);
}

#[test]
fn usage_errors_exit_with_2() {
    let o = recur(&[
        &"import-torch",
        &"--cell",
        &"transformer",
        &"--state-dict",
        &"a",
        &"--out",
        &"b",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = recur(&[&"run", &"--model", &"m"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(recur(&[&"--help"]).status.code(), Some(0));
}

#[test]
fn a_closed_stdout_is_not_an_error() {
    let f = Fixture::named("gru_l1_uni_equal_zero");
    let c = Case::new();
    let sd = c.path("sd.safetensors");
    write_safetensors(&sd, f.state_dict());
    let mut child = Command::new(env!("CARGO_BIN_EXE_recur"))
        .args(["import-torch", "--cell", "gru", "--out"])
        .arg(c.path("model"))
        .arg("--state-dict")
        .arg(&sd)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
}
