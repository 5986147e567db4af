//! Training the character language model on several threads: the streams are split into
//! shards whose gradients are averaged by stream count, so without dropout a multi-threaded
//! update is the single-threaded one up to float rounding, and with dropout a run is
//! reproducible for a given thread count.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use recur_nn::CellKind;
use recur_train::models::charlm::{CharLm, CharLmConfig, CharLmTrainConfig, CharLmTrainer, CharVocab};
use recur_train::optim::{OptimizerConfig, OptimizerKind};
use recur_train::Module;

const TEXT: &str = "It is not down in any map; true places never are. Call me Ishmael. ";

fn model(cell: CellKind, vocab: &CharVocab, dropout: f64) -> CharLm {
    let cfg = CharLmConfig {
        cell,
        embed_dim: 6,
        hidden_size: 12,
        num_layers: 2,
        dropout,
        input_dropout: dropout / 2.0,
        recurrent_dropout: dropout / 2.0,
    };
    CharLm::new(cfg, vocab.clone(), &mut ChaCha8Rng::seed_from_u64(7)).unwrap()
}

/// Trains 2 epochs of 5 streams with `threads` and returns the weights and the epoch losses.
fn run(cell: CellKind, dropout: f64, threads: usize) -> (Vec<Vec<f32>>, Vec<f64>) {
    let text = TEXT.repeat(6);
    let vocab = CharVocab::from_text(&text, 1);
    let ids = vocab.encode(&text);
    let mut m = model(cell, &vocab, dropout);
    let cfg = CharLmTrainConfig {
        batch: 5,
        bptt: 16,
        epochs: 2,
        optimizer: OptimizerConfig {
            kind: OptimizerKind::Sgd,
            lr: 0.5,
            ..OptimizerConfig::default()
        },
        threads,
        ..CharLmTrainConfig::default()
    };
    let mut trainer = CharLmTrainer::new(cfg, ids.len()).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let losses = (0..2)
        .map(|_| trainer.train_epoch(&mut m, &ids, &mut rng, |_| {}).unwrap().loss)
        .collect();
    assert!(trainer.steps() > 8, "{} updates", trainer.steps());
    let weights = m.buffers().iter().map(|(_, b)| b.as_slice().to_vec()).collect();
    (weights, losses)
}

fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn sharded_updates_equal_single_threaded_ones_without_dropout() {
    for cell in [CellKind::Lstm, CellKind::Gru] {
        let (w1, l1) = run(cell, 0.0, 1);
        // 5 streams: shards of 3 + 2, and of 1 + 1 + 1 + 1 + 1.
        for threads in [2, 5] {
            let (w, l) = run(cell, 0.0, threads);
            let d = max_diff(&w1, &w);
            assert!(d < 1e-5, "{cell:?}, {threads} threads: weights differ by {d}");
            for (a, b) in l1.iter().zip(&l) {
                assert!((a - b).abs() < 1e-6, "{cell:?}, {threads} threads: loss {a} vs {b}");
            }
        }
    }
}

#[test]
fn sharded_training_with_dropout_is_reproducible_and_learns() {
    let (w1, l1) = run(CellKind::Lstm, 0.2, 2);
    let (w2, l2) = run(CellKind::Lstm, 0.2, 2);
    assert_eq!(w1, w2, "same seed and thread count, different weights");
    assert_eq!(l1, l2);
    assert!(l1[1] < l1[0], "loss did not fall: {l1:?}");
}

#[test]
fn thread_count_is_validated() {
    for threads in [0, 6] {
        let cfg = CharLmTrainConfig {
            batch: 5,
            threads,
            ..CharLmTrainConfig::default()
        };
        let e = CharLmTrainer::new(cfg, 1000).unwrap_err().to_string();
        assert!(e.contains("train.threads") && e.contains("1..=5"), "{e}");
    }
}
