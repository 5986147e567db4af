//! End-to-end tests of `recur run` on a model imported from the richest golden fixture: the
//! error paths (exit code 1 and a message naming the file or flag at fault), reduced
//! precision, usage errors (exit code 2) and a closed stdout.

mod cli_support;

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use ndarray::{ArrayD, IxDyn};

use cli_support::*;

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
