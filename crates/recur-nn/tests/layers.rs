//! Layer semantics beyond the PyTorch fixtures: layouts, dropout, validation errors.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use recur_nn::{CellKind, DropoutMasks, Layout, NnError, Rnn, RnnConfig, SeqBatch, State};

fn model(cell: CellKind, layers: usize, bi: bool, seed: u64) -> Rnn<f64> {
    let mut c = RnnConfig::new(cell, 3, 5);
    c.num_layers = layers;
    c.bidirectional = bi;
    Rnn::new(c, &mut ChaCha8Rng::seed_from_u64(seed)).unwrap()
}

fn data(n: usize) -> Vec<f64> {
    (0..n).map(|i| ((i * 37 % 23) as f64 / 11.0) - 1.0).collect()
}

#[test]
fn time_first_equals_batch_first() {
    let m = model(CellKind::Lstm, 2, true, 1);
    let (b, t, f) = (3, 4, 3);
    let x = data(b * t * f);
    let lengths = [2, 4, 3];
    let mut tf = vec![0.0; x.len()];
    for bi in 0..b {
        for ti in 0..t {
            for k in 0..f {
                tf[(ti * b + bi) * f + k] = x[(bi * t + ti) * f + k];
            }
        }
    }
    let a = m
        .forward(
            &SeqBatch::batch_first(&x, b, t, f).with_lengths(&lengths),
            &State::default(),
        )
        .unwrap();
    let tb = SeqBatch {
        layout: Layout::TimeFirst,
        ..SeqBatch::batch_first(&tf, b, t, f).with_lengths(&lengths)
    };
    let o = m.forward(&tb, &State::default()).unwrap();
    assert_eq!(a.h_n, o.h_n);
    assert_eq!(a.c_n, o.c_n);
    let w = 10;
    for bi in 0..b {
        for ti in 0..t {
            assert_eq!(a.output[(bi * t + ti) * w..][..w], o.output[(ti * b + bi) * w..][..w]);
        }
    }
}

#[test]
fn padding_never_reaches_the_state() {
    let m = model(CellKind::Gru, 2, true, 2);
    let (b, t, f) = (2, 5, 3);
    let mut x = data(b * t * f);
    let lengths = [3, 5];
    let a = m
        .forward(
            &SeqBatch::batch_first(&x, b, t, f).with_lengths(&lengths),
            &State::default(),
        )
        .unwrap();
    for v in &mut x[3 * f..5 * f] {
        *v = 1e6;
    }
    let c = m
        .forward(
            &SeqBatch::batch_first(&x, b, t, f).with_lengths(&lengths),
            &State::default(),
        )
        .unwrap();
    assert_eq!(a, c);
    assert!(
        a.output[3 * 10..5 * 10].iter().all(|&v| v == 0.0),
        "outputs at padded steps are zero"
    );
}

#[test]
fn variational_masks_are_per_sequence_and_reused_at_every_step() {
    // With one sequence, an input mask m equals feeding x ⊙ m at every step, and a recurrent
    // mask m equals scaling the columns of W_hh by m.
    for cell in [CellKind::Gru, CellKind::Lstm, CellKind::RnnTanh] {
        let mut cfg = RnnConfig::new(cell, 3, 4);
        cfg.input_dropout = 0.5;
        cfg.recurrent_dropout = 0.5;
        let m = Rnn::<f64>::new(cfg.clone(), &mut ChaCha8Rng::seed_from_u64(3)).unwrap();
        let (t, f) = (6, 3);
        let x = data(t * f);
        let mut masks = DropoutMasks::none(&cfg);
        masks.input[0] = vec![2.0, 0.0, 2.0];
        masks.recurrent[0] = vec![0.0, 2.0, 2.0, 0.0];
        let (got, _) = m
            .forward_train(&SeqBatch::batch_first(&x, 1, t, f), &State::default(), Some(&masks))
            .unwrap();
        let xm: Vec<f64> = x.iter().enumerate().map(|(i, v)| v * masks.input[0][i % f]).collect();
        let mut m2 = m.clone();
        let g = m2.params().spec("weight_hh_l0").unwrap().shape[0];
        let w = m2.params_mut().get_mut("weight_hh_l0").unwrap();
        for r in 0..g {
            for c in 0..4 {
                w[r * 4 + c] *= masks.recurrent[0][c];
            }
        }
        let want = m2
            .forward(&SeqBatch::batch_first(&xm, 1, t, f), &State::default())
            .unwrap();
        for (a, b) in got.output.iter().zip(&want.output) {
            assert!((a - b).abs() < 1e-12, "{cell:?}: {a} vs {b}");
        }
    }
}

#[test]
fn dropout_only_in_training() {
    let mut cfg = RnnConfig::new(CellKind::Lstm, 3, 5);
    cfg.num_layers = 2;
    cfg.dropout = 0.5;
    let m = Rnn::<f64>::new(cfg.clone(), &mut ChaCha8Rng::seed_from_u64(4)).unwrap();
    cfg.dropout = 0.0;
    let mut plain = Rnn::<f64>::zeros(cfg).unwrap();
    plain.params_mut().as_mut_slice().copy_from_slice(m.params().as_slice());
    let x = data(2 * 4 * 3);
    let xb = SeqBatch::batch_first(&x, 2, 4, 3);
    assert_eq!(
        m.forward(&xb, &State::default()).unwrap(),
        plain.forward(&xb, &State::default()).unwrap()
    );
    let masks = m.sample_masks(2, 4, &mut ChaCha8Rng::seed_from_u64(5));
    assert!(masks.between[0].contains(&0.0) && masks.between[0].contains(&2.0));
    let (train, _) = m.forward_train(&xb, &State::default(), Some(&masks)).unwrap();
    assert_ne!(train.output, m.forward(&xb, &State::default()).unwrap().output);
}

#[test]
fn errors_name_the_problem() {
    let m = model(CellKind::Gru, 1, false, 6);
    let x = data(2 * 3 * 3);
    let xb = SeqBatch::batch_first(&x, 2, 3, 3);
    let err = m.forward(&xb.with_lengths(&[3, 4]), &State::default()).unwrap_err();
    assert_eq!(
        err,
        NnError::Length {
            index: 1,
            length: 4,
            max: 3
        }
    );
    assert!(err.to_string().contains("lengths[1] = 4"));
    let err = m
        .forward(&SeqBatch::batch_first(&x, 2, 3, 2), &State::default())
        .unwrap_err();
    assert!(
        matches!(err, NnError::Shape { ref name, .. } if name == "input"),
        "{err}"
    );
    let err = m
        .forward(
            &xb,
            &State {
                h0: Some(&[0.0; 3]),
                c0: None,
            },
        )
        .unwrap_err();
    assert!(err.to_string().contains("h0"), "{err}");
    let err = m
        .forward(
            &xb,
            &State {
                h0: None,
                c0: Some(&[0.0; 10]),
            },
        )
        .unwrap_err();
    assert!(err.to_string().contains("c0"), "{err}");
    let mut c = RnnConfig::new(CellKind::Gru, 3, 4);
    c.proj_size = 2;
    assert!(Rnn::<f32>::zeros(c).unwrap_err().to_string().contains("proj_size"));
    let mut c = RnnConfig::new(CellKind::Lstm, 3, 4);
    c.dropout = 1.0;
    assert!(Rnn::<f32>::zeros(c).unwrap_err().to_string().contains("`dropout`"));
    let json = r#"{"cell": "gru", "input_size": 3, "hidden_size": 4, "layers": 2}"#;
    assert!(serde_json_err(json).contains("layers"));
}

fn serde_json_err(s: &str) -> String {
    serde_json::from_str::<RnnConfig>(s).unwrap_err().to_string()
}
