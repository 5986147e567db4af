//! Inference passes reuse their buffers without clearing them: a warm model, whose buffers
//! hold whatever a larger, different pass left there, gives exactly the bits of a cold one.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use recur_nn::{CellKind, Precision, Rnn, RnnConfig, RnnOutput, SeqBatch, State};

struct Case {
    x: Vec<f32>,
    lengths: Vec<usize>,
    h0: Option<Vec<f32>>,
    c0: Option<Vec<f32>>,
    batch: usize,
    time: usize,
}

fn case(m: &Rnn<f32>, batch: usize, time: usize, with_state: bool, rng: &mut ChaCha8Rng) -> Case {
    let cfg = m.config();
    let f = cfg.input_size;
    let x = (0..batch * time * f).map(|_| rng.random_range(-2.0..2.0)).collect();
    let lengths = (0..batch).map(|_| rng.random_range(1..=time)).collect();
    let states = cfg.num_layers * cfg.directions() * batch;
    let mut fill = |w: usize| {
        (0..states * w)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect::<Vec<f32>>()
    };
    let h0 = with_state.then(|| fill(cfg.h_out()));
    let c0 = (with_state && cfg.cell == CellKind::Lstm).then(|| fill(cfg.hidden_size));
    Case {
        x,
        lengths,
        h0,
        c0,
        batch,
        time,
    }
}

fn run(m: &Rnn<f32>, c: &Case, keep_output: bool) -> RnnOutput<f32> {
    let f = m.config().input_size;
    let xb = SeqBatch::batch_first(&c.x, c.batch, c.time, f).with_lengths(&c.lengths);
    let st = State {
        h0: c.h0.as_deref(),
        c0: c.c0.as_deref(),
    };
    if keep_output {
        m.forward(&xb, &st).unwrap()
    } else {
        m.forward_final(&xb, &st).unwrap()
    }
}

fn configs() -> Vec<RnnConfig> {
    let mut out = Vec::new();
    for cell in [CellKind::Gru, CellKind::Lstm, CellKind::RnnTanh, CellKind::RnnRelu] {
        let mut c = RnnConfig::new(cell, 5, 12);
        c.num_layers = 3;
        c.bidirectional = true;
        out.push(c);
    }
    let mut lstm = RnnConfig::new(CellKind::Lstm, 5, 12);
    lstm.num_layers = 2;
    lstm.bidirectional = true;
    lstm.proj_size = 7;
    lstm.layer_norm = true;
    lstm.peephole = true;
    out.push(lstm);
    let mut uni = RnnConfig::new(CellKind::Gru, 5, 12);
    uni.num_layers = 2;
    out.push(uni);
    out
}

#[test]
fn warm_passes_equal_cold_passes_bit_for_bit() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for cfg in configs() {
        for precision in [Precision::F32, Precision::Int8] {
            for threads in [1, 2] {
                let mut m = Rnn::<f32>::new(cfg.clone(), &mut ChaCha8Rng::seed_from_u64(3)).unwrap();
                m.set_precision(precision);
                m.set_threads(threads).unwrap();
                // A large pass with initial states fills every buffer with values that a
                // smaller pass would read if it relied on zeroed memory.
                let big = case(&m, 9, 40, true, &mut rng);
                run(&m, &big, true);
                for (batch, time, with_state, keep) in [
                    (3, 17, false, true),
                    (1, 5, false, false),
                    (4, 40, true, true),
                    (9, 40, true, false),
                ] {
                    let c = case(&m, batch, time, with_state, &mut rng);
                    let warm = run(&m, &c, keep);
                    // A clone starts with no reusable buffers.
                    let cold = run(&m.clone(), &c, keep);
                    assert_eq!(
                        warm, cold,
                        "{:?} {precision:?} {threads} threads, batch {batch} T={time} state {with_state} \
                         keep_output {keep}: a warm pass differs from a cold one",
                        cfg.cell
                    );
                }
            }
        }
    }
}

#[test]
fn concurrent_passes_on_one_model_do_not_share_buffers() {
    let cfg = configs().remove(0);
    let m = Rnn::<f32>::new(cfg, &mut ChaCha8Rng::seed_from_u64(3)).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let cases: Vec<Case> = (0..4)
        .map(|i| case(&m, 1 + i, 10 + 7 * i, i % 2 == 0, &mut rng))
        .collect();
    let want: Vec<_> = cases.iter().map(|c| run(&m.clone(), c, true)).collect();
    std::thread::scope(|s| {
        for (c, w) in cases.iter().zip(&want) {
            let m = &m;
            s.spawn(move || {
                for _ in 0..50 {
                    assert_eq!(&run(m, c, true), w, "a concurrent pass changed another's result");
                }
            });
        }
    });
}
