//! Central finite-difference gradient checks in f64 for every cell (including peephole,
//! layer-norm and projected LSTMs), stacked and bidirectional, with unsorted variable lengths,
//! dropout under fixed masks, given initial states, and truncated BPTT.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use recur_nn::{BackwardOptions, CellKind, DropoutMasks, Gradients, KernelChoice, Rnn, RnnConfig, SeqBatch, State};

const EPS: f64 = 1e-6;
const TOL: f64 = 1e-7;

struct Problem {
    model: Rnn<f64>,
    x: Vec<f64>,
    lengths: Vec<usize>,
    b: usize,
    t: usize,
    h0: Vec<f64>,
    c0: Option<Vec<f64>>,
    r: Vec<f64>,
    rh: Vec<f64>,
    rc: Option<Vec<f64>>,
    masks: Option<DropoutMasks<f64>>,
}

fn randn(n: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
    (0..n).map(|_| recur_nn::init::normal(rng)).collect()
}

impl Problem {
    fn new(cfg: RnnConfig, lengths: &[usize], t: usize, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut model = Rnn::<f64>::new(cfg.clone(), &mut rng).unwrap();
        for v in model.params_mut().as_mut_slice() {
            *v *= 1.5;
        }
        // Layer-norm gains away from 1 so their gradients are exercised.
        let specs = model.params().specs().to_vec();
        for s in specs.iter().filter(|s| s.name.starts_with("ln_")) {
            for v in model.params_mut().get_mut(&s.name).unwrap() {
                *v = rng.random_range(0.5..1.5);
            }
        }
        model.set_kernels(KernelChoice::Reference);
        let b = lengths.len();
        let (ld, ho, h) = (cfg.num_layers * cfg.directions(), cfg.h_out(), cfg.hidden_size);
        let lstm = cfg.cell == CellKind::Lstm;
        let masks = Some(model.sample_masks(b, t, &mut rng));
        Problem {
            x: randn(b * t * cfg.input_size, &mut rng),
            h0: randn(ld * b * ho, &mut rng),
            c0: lstm.then(|| randn(ld * b * h, &mut rng)),
            r: randn(b * t * cfg.directions() * ho, &mut rng),
            rh: randn(ld * b * ho, &mut rng),
            rc: lstm.then(|| randn(ld * b * h, &mut rng)),
            lengths: lengths.to_vec(),
            b,
            t,
            model,
            masks,
        }
    }

    fn loss(&self) -> f64 {
        let x =
            SeqBatch::batch_first(&self.x, self.b, self.t, self.model.config().input_size).with_lengths(&self.lengths);
        let st = State {
            h0: Some(&self.h0),
            c0: self.c0.as_deref(),
        };
        let (out, _) = self.model.forward_train(&x, &st, self.masks.as_ref()).unwrap();
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        let mut l = dot(&out.output, &self.r) + dot(&out.h_n, &self.rh);
        if let (Some(c), Some(rc)) = (&out.c_n, &self.rc) {
            l += dot(c, rc);
        }
        l
    }

    fn analytic(&self, opts: BackwardOptions) -> Gradients<f64> {
        let x =
            SeqBatch::batch_first(&self.x, self.b, self.t, self.model.config().input_size).with_lengths(&self.lengths);
        let st = State {
            h0: Some(&self.h0),
            c0: self.c0.as_deref(),
        };
        let (_, tape) = self.model.forward_train(&x, &st, self.masks.as_ref()).unwrap();
        self.model
            .backward(&tape, &self.r, Some(&self.rh), self.rc.as_deref(), opts)
            .unwrap()
    }
}

/// Central difference of `f` with respect to `v[i]`.
fn fd(p: &mut Problem, get: fn(&mut Problem) -> &mut [f64], i: usize, f: &dyn Fn(&Problem) -> f64) -> f64 {
    let orig = get(p)[i];
    get(p)[i] = orig + EPS;
    let lp = f(p);
    get(p)[i] = orig - EPS;
    let lm = f(p);
    get(p)[i] = orig;
    (lp - lm) / (2.0 * EPS)
}

fn compare(
    what: &str,
    analytic: &[f64],
    p: &mut Problem,
    get: fn(&mut Problem) -> &mut [f64],
    f: &dyn Fn(&Problem) -> f64,
) {
    assert_eq!(analytic.len(), get(p).len());
    let mut nonzero = 0;
    for (i, &a) in analytic.iter().enumerate() {
        let n = fd(p, get, i, f);
        let err = (a - n).abs() / n.abs().max(1.0);
        assert!(err < TOL, "{what}[{i}]: analytic {a} vs numeric {n} (err {err:e})");
        nonzero += (n.abs() > 1e-9) as usize;
    }
    assert!(
        nonzero > 0 || analytic.is_empty(),
        "{what}: every numeric gradient is zero; the check is vacuous"
    );
}

fn check(p: &mut Problem, opts: BackwardOptions, f: &dyn Fn(&Problem) -> f64) {
    let g = p.analytic(opts);
    for s in g.params.specs() {
        let a = g.params.get(&s.name).unwrap();
        let start = s.offset;
        for (i, &ai) in a.iter().enumerate() {
            let n = fd(p, |p| p.model.params_mut().as_mut_slice(), start + i, f);
            let err = (ai - n).abs() / n.abs().max(1.0);
            assert!(err < TOL, "{}[{i}]: analytic {ai} vs numeric {n} (err {err:e})", s.name);
        }
    }
    compare("input", &g.input, p, |p| &mut p.x, f);
    compare("h0", &g.h0, p, |p| &mut p.h0, f);
    if let Some(c0) = &g.c0 {
        compare("c0", c0, p, |p| p.c0.as_mut().unwrap(), f);
    }
}

fn cfg(cell: CellKind, layers: usize, bi: bool) -> RnnConfig {
    let mut c = RnnConfig::new(cell, 3, 4);
    c.num_layers = layers;
    c.bidirectional = bi;
    c
}

fn variants() -> Vec<(&'static str, RnnConfig)> {
    let mut out = vec![
        ("rnn_tanh", cfg(CellKind::RnnTanh, 2, true)),
        ("rnn_relu", cfg(CellKind::RnnRelu, 2, true)),
        ("gru", cfg(CellKind::Gru, 2, true)),
        ("lstm", cfg(CellKind::Lstm, 2, true)),
    ];
    let mut proj = cfg(CellKind::Lstm, 2, true);
    proj.proj_size = 2;
    out.push(("lstm_proj", proj));
    let mut peep = cfg(CellKind::Lstm, 2, true);
    peep.peephole = true;
    out.push(("lstm_peephole", peep));
    let mut ln = cfg(CellKind::Lstm, 2, true);
    ln.layer_norm = true;
    out.push(("lstm_layer_norm", ln));
    let mut all = cfg(CellKind::Lstm, 2, true);
    all.layer_norm = true;
    all.peephole = true;
    all.proj_size = 3;
    out.push(("lstm_ln_peephole_proj", all));
    out
}

#[test]
fn every_cell_variable_lengths_bidirectional_stacked() {
    for (name, c) in variants() {
        let mut p = Problem::new(c, &[4, 6, 1, 3], 6, 11);
        eprintln!("checking {name}");
        check(&mut p, BackwardOptions::default(), &|p| p.loss());
    }
}

#[test]
fn every_cell_with_fixed_dropout_masks() {
    for (name, mut c) in variants() {
        c.dropout = 0.3;
        c.input_dropout = 0.25;
        c.recurrent_dropout = 0.25;
        let mut p = Problem::new(c, &[5, 2, 5], 5, 23);
        let m = p.masks.as_ref().unwrap();
        let all: Vec<&Vec<f64>> = m.between.iter().chain(&m.input).chain(&m.recurrent).collect();
        assert!(all.iter().all(|v| !v.is_empty()), "{name}: every mask must be drawn");
        assert!(all.iter().any(|v| v.contains(&0.0)), "{name}: masks drop nothing");
        check(&mut p, BackwardOptions::default(), &|p| p.loss());
    }
}

/// The truncated-BPTT gradient equals the gradient of the surrogate loss in which the state
/// entering each chunk is a constant (computed once with the unperturbed weights).
fn tbptt_surrogate(p: &Problem, k: usize, boundary: &[(Vec<f64>, Option<Vec<f64>>)]) -> f64 {
    let cfg = p.model.config();
    let (i, w) = (cfg.input_size, cfg.h_out());
    let mut total = 0.0;
    for (c, start) in (0..p.t).step_by(k).enumerate() {
        let len = k.min(p.t - start);
        let x: Vec<f64> = (0..p.b)
            .flat_map(|b| p.x[(b * p.t + start) * i..(b * p.t + start + len) * i].to_vec())
            .collect();
        let lengths: Vec<usize> = p.lengths.iter().map(|&l| (l - start).min(len)).collect();
        let xb = SeqBatch::batch_first(&x, p.b, len, i).with_lengths(&lengths);
        let (h0, c0) = if c == 0 {
            (p.h0.clone(), p.c0.clone())
        } else {
            boundary[c - 1].clone()
        };
        let out = p
            .model
            .forward(
                &xb,
                &State {
                    h0: Some(&h0),
                    c0: c0.as_deref(),
                },
            )
            .unwrap();
        for b in 0..p.b {
            for s in 0..len {
                for j in 0..w {
                    total += out.output[(b * len + s) * w + j] * p.r[(b * p.t + start + s) * w + j];
                }
            }
        }
        if start + len == p.t {
            total += out.h_n.iter().zip(&p.rh).map(|(a, b)| a * b).sum::<f64>();
            if let (Some(cn), Some(rc)) = (&out.c_n, &p.rc) {
                total += cn.iter().zip(rc).map(|(a, b)| a * b).sum::<f64>();
            }
        }
    }
    total
}

fn boundary_states(p: &Problem, k: usize) -> Vec<(Vec<f64>, Option<Vec<f64>>)> {
    let cfg = p.model.config();
    let i = cfg.input_size;
    (k..p.t)
        .step_by(k)
        .map(|end| {
            let x: Vec<f64> = (0..p.b)
                .flat_map(|b| p.x[b * p.t * i..(b * p.t + end) * i].to_vec())
                .collect();
            let xb = SeqBatch::batch_first(&x, p.b, end, i);
            let out = p
                .model
                .forward(
                    &xb,
                    &State {
                        h0: Some(&p.h0),
                        c0: p.c0.as_deref(),
                    },
                )
                .unwrap();
            (out.h_n, out.c_n)
        })
        .collect()
}

#[test]
fn truncated_bptt_matches_the_detached_surrogate() {
    for (name, c) in variants() {
        let mut c = c;
        c.bidirectional = false;
        c.dropout = 0.0;
        // Every sequence reaches the last chunk; lengths vary inside it.
        let mut p = Problem::new(c, &[8, 7, 8, 7], 8, 5);
        p.masks = None;
        let k = 3;
        let boundary = boundary_states(&p, k);
        let surrogate = move |p: &Problem| tbptt_surrogate(p, k, &boundary);
        assert!(
            (surrogate(&p) - p.loss()).abs() < 1e-9,
            "{name}: surrogate value must equal the loss"
        );
        check(&mut p, BackwardOptions { truncate: Some(k) }, &surrogate);
        let full = p.analytic(BackwardOptions::default());
        let cut = p.analytic(BackwardOptions { truncate: Some(k) });
        assert_ne!(full.params, cut.params, "{name}: truncation must change the gradient");
        assert_eq!(
            full,
            p.analytic(BackwardOptions { truncate: Some(p.t) }),
            "{name}: k ≥ T is full BPTT"
        );
    }
}

#[test]
fn truncation_in_a_bidirectional_model_keeps_full_bptt_when_k_covers_the_sequence() {
    let p = Problem::new(cfg(CellKind::Gru, 2, true), &[6, 3, 5], 6, 9);
    let full = p.analytic(BackwardOptions::default());
    assert_eq!(full, p.analytic(BackwardOptions { truncate: Some(6) }));
    assert_ne!(full.params, p.analytic(BackwardOptions { truncate: Some(2) }).params);
}
