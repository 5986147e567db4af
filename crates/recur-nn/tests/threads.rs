//! Two-thread forward passes (`Rnn::set_threads(2)`: the two directions of each bidirectional
//! layer on separate threads) are bit-identical to one thread: on all 120 PyTorch fixtures
//! (every cell, 1 to 3 layers, uni/bi, variable lengths, given states) with both kernel
//! families, and on random models with LSTM projection, peepholes, layer norm and dropout masks.

mod common;

use common::load_all;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use recur_nn::{CellKind, KernelChoice, Rnn, RnnConfig, SeqBatch, State};

#[test]
fn two_threads_match_one_thread_bitwise_on_fixtures() {
    let all = load_all();
    assert_eq!(all.len(), 120);
    for choice in [KernelChoice::Best, KernelChoice::Reference] {
        for fx in &all {
            let mut m = fx.model();
            m.set_kernels(choice);
            let (b, t) = (fx.meta_usize("batch"), fx.meta_usize("time"));
            let x = SeqBatch::batch_first(fx.get("input").unwrap(), b, t, fx.meta_usize("input_size"))
                .with_lengths(&fx.lengths);
            let st = State {
                h0: fx.get("h0"),
                c0: fx.get("c0"),
            };
            let one = m.forward(&x, &st).unwrap();
            let (one_train, _) = m.forward_train(&x, &st, None).unwrap();
            m.set_threads(2).unwrap();
            assert_eq!(m.threads(), 2);
            assert_eq!(m.forward(&x, &st).unwrap(), one, "{} {choice:?}: inference", fx.name);
            let (two_train, _) = m.forward_train(&x, &st, None).unwrap();
            assert_eq!(two_train, one_train, "{} {choice:?}: training forward", fx.name);
        }
    }
}

#[test]
fn two_threads_match_one_thread_with_extras_and_dropout() {
    let mut cfgs = Vec::new();
    for cell in [CellKind::RnnTanh, CellKind::RnnRelu, CellKind::Gru, CellKind::Lstm] {
        for bidirectional in [false, true] {
            let mut c = RnnConfig::new(cell, 5, 11);
            c.num_layers = 2;
            c.bidirectional = bidirectional;
            cfgs.push(c);
        }
    }
    let mut lstm = RnnConfig::new(CellKind::Lstm, 5, 12);
    lstm.bidirectional = true;
    lstm.num_layers = 2;
    lstm.proj_size = 7;
    lstm.peephole = true;
    lstm.layer_norm = true;
    lstm.dropout = 0.3;
    lstm.input_dropout = 0.2;
    lstm.recurrent_dropout = 0.25;
    cfgs.push(lstm);
    for (i, cfg) in cfgs.into_iter().enumerate() {
        let mut rng = ChaCha8Rng::seed_from_u64(i as u64);
        let mut m = Rnn::<f32>::new(cfg.clone(), &mut rng).unwrap();
        let (b, t) = (4, 23);
        let x: Vec<f32> = (0..b * t * 5).map(|v| ((v * 37 % 101) as f32 / 50.0) - 1.0).collect();
        let lengths = [23, 1, 17, 9];
        let xb = SeqBatch::batch_first(&x, b, t, 5).with_lengths(&lengths);
        let masks = m.sample_masks(b, t, &mut rng);
        let one = m.forward(&xb, &State::default()).unwrap();
        let (one_train, _) = m.forward_train(&xb, &State::default(), Some(&masks)).unwrap();
        m.set_threads(2).unwrap();
        let two = m.forward(&xb, &State::default()).unwrap();
        let (two_train, _) = m.forward_train(&xb, &State::default(), Some(&masks)).unwrap();
        assert_eq!(two, one, "{cfg:?}");
        assert_eq!(two_train, one_train, "{cfg:?} with dropout");
    }
}

#[test]
fn thread_counts_other_than_one_or_two_are_refused() {
    let mut m = Rnn::<f32>::new(RnnConfig::new(CellKind::Gru, 3, 4), &mut ChaCha8Rng::seed_from_u64(0)).unwrap();
    for n in [0, 3, 8] {
        let e = m.set_threads(n).unwrap_err().to_string();
        assert!(e.contains(&format!("threads = {n}")) && e.contains("1 or 2"), "{e}");
    }
    m.set_threads(2).unwrap();
    m.set_threads(1).unwrap();
    assert_eq!(m.threads(), 1);
}

/// A model shared between threads with a busy helper still gives the same answers (the second
/// caller falls back to running both directions itself).
#[test]
fn concurrent_forwards_on_shared_two_thread_model() {
    let mut cfg = RnnConfig::new(CellKind::Gru, 6, 16);
    cfg.bidirectional = true;
    cfg.num_layers = 2;
    let mut m = Rnn::<f32>::new(cfg, &mut ChaCha8Rng::seed_from_u64(9)).unwrap();
    let x: Vec<f32> = (0..30 * 6).map(|v| (v as f32 * 0.37).sin()).collect();
    let xb = SeqBatch::batch_first(&x, 1, 30, 6);
    let want = m.forward(&xb, &State::default()).unwrap();
    m.set_threads(2).unwrap();
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                for _ in 0..50 {
                    assert_eq!(m.forward(&xb, &State::default()).unwrap(), want);
                }
            });
        }
    });
}
