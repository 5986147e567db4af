//! Gate orders are PyTorch's (LSTM `i|f|g|o`, GRU `r|z|n`, peephole `p_i|p_f|p_o`). Two
//! independent checks: hand-computed single steps with a different weight in every gate, and
//! golden fixtures that must stop matching under every non-identity permutation of the gate
//! chunks.

mod common;

use recur_nn::{CellKind, Rnn, RnnConfig, SeqBatch, State};

fn sig(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn one_step(cfg: RnnConfig, set: &[(&str, Vec<f64>)], x: f64, h0: f64, c0: Option<f64>) -> (f64, Option<f64>) {
    let mut m = Rnn::<f64>::zeros(cfg).unwrap();
    for (name, v) in set {
        let shape = m.params().spec(name).unwrap().shape.clone();
        m.params_mut().set(name, &shape, v).unwrap();
    }
    let c0v = c0.map(|c| vec![c]);
    let out = m
        .forward(
            &SeqBatch::batch_first(&[x], 1, 1, 1),
            &State {
                h0: Some(&[h0]),
                c0: c0v.as_deref(),
            },
        )
        .unwrap();
    (out.h_n[0], out.c_n.map(|c| c[0]))
}

#[test]
fn gru_step_by_hand() {
    let (x, h) = (0.7, -0.4);
    let (wi, wh, bi, bh) = (
        [0.3, -1.1, 0.8],
        [1.7, 0.45, -0.6],
        [0.05, -0.2, 0.33],
        [-0.15, 0.27, 0.9],
    );
    let r = sig(wi[0] * x + bi[0] + wh[0] * h + bh[0]);
    let z = sig(wi[1] * x + bi[1] + wh[1] * h + bh[1]);
    let n = (wi[2] * x + bi[2] + r * (wh[2] * h + bh[2])).tanh();
    let want = (1.0 - z) * n + z * h;
    let set = [
        ("weight_ih_l0", wi.to_vec()),
        ("weight_hh_l0", wh.to_vec()),
        ("bias_ih_l0", bi.to_vec()),
        ("bias_hh_l0", bh.to_vec()),
    ];
    let (got, _) = one_step(RnnConfig::new(CellKind::Gru, 1, 1), &set, x, h, None);
    assert!((got - want).abs() < 1e-14, "{got} vs {want}");
}

#[test]
fn lstm_step_by_hand_with_peepholes() {
    let (x, h, c) = (0.7, -0.4, 0.9);
    let (wi, wh) = ([0.3, -1.1, 0.8, 1.3], [1.7, 0.45, -0.6, -0.8]);
    let (bi, bh) = ([0.05, -0.2, 0.33, 0.6], [-0.15, 0.27, 0.9, -0.5]);
    let p = [0.4, -0.7, 1.2];
    let pre = |k: usize| wi[k] * x + bi[k] + wh[k] * h + bh[k];
    let i = sig(pre(0) + p[0] * c);
    let f = sig(pre(1) + p[1] * c);
    let g = pre(2).tanh();
    let c1 = f * c + i * g;
    let o = sig(pre(3) + p[2] * c1);
    let want = o * c1.tanh();
    let mut cfg = RnnConfig::new(CellKind::Lstm, 1, 1);
    cfg.peephole = true;
    let set = [
        ("weight_ih_l0", wi.to_vec()),
        ("weight_hh_l0", wh.to_vec()),
        ("bias_ih_l0", bi.to_vec()),
        ("bias_hh_l0", bh.to_vec()),
        ("weight_peephole_l0", p.to_vec()),
    ];
    let (got_h, got_c) = one_step(cfg, &set, x, h, Some(c));
    assert!((got_h - want).abs() < 1e-14 && (got_c.unwrap() - c1).abs() < 1e-14);
}

fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 1 {
        return vec![vec![0]];
    }
    let mut out = Vec::new();
    for p in permutations(n - 1) {
        for pos in 0..n {
            let mut q = p.clone();
            q.insert(pos, n - 1);
            out.push(q);
        }
    }
    out
}

/// Reorders the gate chunks (`H` rows each) of every gate-stacked tensor.
fn permute(m: &mut Rnn<f32>, perm: &[usize]) {
    let h = m.config().hidden_size;
    let specs = m.params().specs().to_vec();
    for s in specs
        .iter()
        .filter(|s| s.name.starts_with("weight_i") || s.name.starts_with("weight_hh") || s.name.starts_with("bias"))
    {
        let row = s.len() / s.shape[0];
        let old = m.params().get(&s.name).unwrap().to_vec();
        let new = m.params_mut().get_mut(&s.name).unwrap();
        for (dst, &src) in perm.iter().enumerate() {
            new[dst * h * row..(dst + 1) * h * row].copy_from_slice(&old[src * h * row..(src + 1) * h * row]);
        }
    }
}

#[test]
fn every_gate_permutation_breaks_pytorch_parity() {
    for (case, gates) in [("gru_l1_uni_var_given", 3), ("lstm_l1_uni_var_given", 4)] {
        let fx = common::load(case);
        let (b, t) = (fx.meta_usize("batch"), fx.meta_usize("time"));
        let x = SeqBatch::batch_first(fx.get("input").unwrap(), b, t, fx.meta_usize("input_size"))
            .with_lengths(&fx.lengths);
        let st = State {
            h0: fx.get("h0"),
            c0: fx.get("c0"),
        };
        let perms = permutations(gates);
        assert_eq!(perms.len(), if gates == 3 { 6 } else { 24 });
        for perm in perms {
            let mut m = fx.model();
            permute(&mut m, &perm);
            let err = common::max_rel(&m.forward(&x, &st).unwrap().output, fx.get("output").unwrap());
            let identity = perm.iter().enumerate().all(|(i, &p)| i == p);
            if identity {
                assert!(err < 1e-5, "{case}: identity permutation must match ({err:e})");
            } else {
                assert!(
                    err > 1e-2,
                    "{case}: permutation {perm:?} still matches PyTorch ({err:e})"
                );
            }
        }
    }
}
