//! Golden parity with PyTorch 2.15 (fixtures/rnn, made by fixtures/gen_rnn.py): every cell ×
//! {1,2,3} layers × {uni, bi} × {equal, unsorted variable lengths} × {zero, given state}.
//! Forward outputs and final states within 1e-5 (relative, floor 1); every gradient of
//! `L = Σ output⊙R + Σ h_n⊙Rh (+ Σ c_n⊙Rc)` within 1e-4.

mod common;

use common::{load_all, max_rel, Fixture};
use recur_nn::{BackwardOptions, KernelChoice, SeqBatch, State};

const FWD_TOL: f64 = 1e-5;
const GRAD_TOL: f64 = 1e-4;

fn check_case(fx: &Fixture, choice: KernelChoice) -> (f64, f64) {
    let mut m = fx.model();
    m.set_kernels(choice);
    let (b, t) = (fx.meta_usize("batch"), fx.meta_usize("time"));
    let x =
        SeqBatch::batch_first(fx.get("input").unwrap(), b, t, fx.meta_usize("input_size")).with_lengths(&fx.lengths);
    let st = State {
        h0: fx.get("h0"),
        c0: fx.get("c0"),
    };
    let (out, tape) = m.forward_train(&x, &st, None).unwrap();
    let eval = m.forward(&x, &st).unwrap();
    assert_eq!(eval, out, "{}: eval and train forward differ", fx.name);
    let mut fwd = max_rel(&out.output, fx.get("output").unwrap());
    fwd = fwd.max(max_rel(&out.h_n, fx.get("h_n").unwrap()));
    if let Some(c_n) = &out.c_n {
        fwd = fwd.max(max_rel(c_n, fx.get("c_n").unwrap()));
    }
    let g = m
        .backward(
            &tape,
            fx.get("R").unwrap(),
            fx.get("Rh"),
            fx.get("Rc"),
            BackwardOptions::default(),
        )
        .unwrap();
    let mut bwd = max_rel(&g.input, fx.get("grad.input").unwrap());
    bwd = bwd.max(max_rel(&g.h0, fx.get("grad.h0").unwrap()));
    if let Some(c0) = &g.c0 {
        bwd = bwd.max(max_rel(c0, fx.get("grad.c0").unwrap()));
    }
    for s in g.params.specs() {
        let want = fx
            .get(&format!("grad.{}", s.name))
            .unwrap_or_else(|| panic!("{}: no grad.{}", fx.name, s.name));
        let e = max_rel(g.params.get(&s.name).unwrap(), want);
        assert!(e < GRAD_TOL, "{}: grad.{} off by {e:e}", fx.name, s.name);
        bwd = bwd.max(e);
    }
    assert!(fwd < FWD_TOL, "{} ({choice:?}): forward off by {fwd:e}", fx.name);
    assert!(bwd < GRAD_TOL, "{} ({choice:?}): gradients off by {bwd:e}", fx.name);
    (fwd, bwd)
}

fn run_all(choice: KernelChoice) {
    let all = load_all();
    assert_eq!(all.len(), 120, "expected the full 120-case fixture matrix");
    let (mut fwd, mut bwd) = (0.0f64, 0.0f64);
    for fx in &all {
        let (f, b) = check_case(fx, choice);
        fwd = fwd.max(f);
        bwd = bwd.max(b);
    }
    eprintln!(
        "{choice:?}: {} cases, worst forward error {fwd:e}, worst gradient error {bwd:e}",
        all.len()
    );
}

#[test]
fn pytorch_fixtures_best_kernels() {
    run_all(KernelChoice::Best);
}

#[test]
fn pytorch_fixtures_reference_kernels() {
    run_all(KernelChoice::Reference);
}
