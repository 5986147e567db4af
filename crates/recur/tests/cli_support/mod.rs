//! Helpers shared by the CLI test binaries (`cli.rs`, `run_cli.rs`, `bench_cli.rs`,
//! `demo_cli.rs`, `report_cli.rs`, `train_cli.rs`): running the `recur` binary and checking
//! its outcome, the PyTorch golden fixtures in `fixtures/rnn`, and scratch directories.

#![allow(dead_code)]

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use ndarray::{ArrayD, IxDyn};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

pub const EXPECTED_CASES: usize = 120;
pub const RTOL: f32 = 1e-5;
pub const ATOL: f32 = 1e-6;

/// Runs the `recur` binary with `args` and no standard input.
pub fn recur(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_recur"))
        .args(args.iter().map(|a| a.as_ref()))
        .stdin(Stdio::null())
        .output()
        .expect("spawn recur")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success; returns standard output.
#[track_caller]
pub fn assert_ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "recur failed ({:?}):\n{}\n{}",
        o.status,
        stderr(o),
        stdout(o)
    );
    stdout(o)
}

/// Asserts any failure (a runtime error or a command-line error) whose standard error
/// contains every needle; returns standard error.
#[track_caller]
pub fn assert_fails(o: &Output, needles: &[&str]) -> String {
    assert!(!o.status.success(), "expected failure; stdout:\n{}", stdout(o));
    let msg = stderr(o);
    for n in needles {
        assert!(msg.contains(n), "stderr does not mention {n:?}:\n{msg}");
    }
    msg
}

/// Asserts a runtime failure (exit code 1, `error:` prefix) whose message contains every
/// needle; returns the message.
#[track_caller]
pub fn assert_fails_with(o: &Output, needles: &[&str]) -> String {
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

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/rnn")
}

/// One golden case: the safetensors bytes and their string metadata.
pub struct Fixture {
    pub name: String,
    pub bytes: Vec<u8>,
    pub meta: HashMap<String, String>,
}

impl Fixture {
    pub fn load(path: &Path) -> Self {
        let bytes = fs::read(path).unwrap();
        let (_, metadata) = SafeTensors::read_metadata(&bytes).unwrap();
        let meta = metadata.metadata().clone().unwrap_or_default();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        Fixture { name, bytes, meta }
    }

    pub fn named(name: &str) -> Self {
        Fixture::load(&fixtures_dir().join(format!("{name}.safetensors")))
    }

    pub fn tensors(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.bytes).unwrap()
    }

    /// `--cell` for this case (`lstm_proj` fixtures have cell `lstm` in their metadata).
    pub fn cli_cell(&self) -> &'static str {
        match self.meta["cell"].as_str() {
            "rnn_tanh" => "rnn-tanh",
            "rnn_relu" => "rnn-relu",
            "lstm" => "lstm",
            "gru" => "gru",
            other => panic!("{}: unknown cell {other}", self.name),
        }
    }

    /// The PyTorch `state_dict()` entries: everything named `weight_*`/`bias_*`.
    pub fn state_dict(&self) -> Vec<(String, TensorView<'_>)> {
        let mut sd: Vec<_> = self
            .tensors()
            .tensors()
            .into_iter()
            .filter(|(k, _)| k.starts_with("weight_") || k.starts_with("bias_"))
            .collect();
        sd.sort_by(|a, b| a.0.cmp(&b.0));
        sd
    }

    pub fn f32(&self, key: &str) -> Option<ArrayD<f32>> {
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

    pub fn lengths(&self) -> ArrayD<i64> {
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

pub fn write_safetensors<'a>(path: &Path, tensors: impl IntoIterator<Item = (String, TensorView<'a>)>) {
    fs::write(path, safetensors::serialize(tensors, None).unwrap()).unwrap();
}

pub fn write_npy<T: ndarray_npy::WritableElement>(path: &Path, a: &ArrayD<T>) {
    ndarray_npy::write_npy(path, a).unwrap();
}

/// A scratch directory holding one case's files.
pub struct Case {
    _tmp: tempfile::TempDir,
    pub dir: PathBuf,
}

impl Case {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        Case { _tmp: tmp, dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn import(&self, cell: &str, sd: &Path) -> Output {
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
    pub fn run(&self, input: &Path, extra: &[(&str, PathBuf)]) -> Output {
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

/// A fixture with two bidirectional LSTM layers, projections, variable lengths and given
/// initial states: the richest case, used by the error-path tests.
pub const RICH: &str = "lstm_proj_l2_bi_var_given";

/// `|g − w| ≤ ATOL + RTOL·|w|`; false when either is NaN.
pub fn close(g: f32, w: f32) -> bool {
    (g - w).abs() <= ATOL + RTOL * w.abs()
}

pub fn compare(got: &ArrayD<f32>, want: &ArrayD<f32>) -> Result<(), String> {
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
