//! Models shared by the character-LM test binaries (`charlm.rs`, `charlm_dynamic.rs`).

#![allow(dead_code)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use recur_nn::CellKind;
use recur_train::models::charlm::{CharLm, CharLmConfig, CharVocab};

/// Embedding 3, hidden 4: small enough for central-difference gradient checks.
pub fn tiny(cell: CellKind, vocab: &CharVocab, layers: usize, dropout: f64, seed: u64) -> CharLm {
    let cfg = CharLmConfig {
        cell,
        embed_dim: 3,
        hidden_size: 4,
        num_layers: layers,
        dropout,
        input_dropout: dropout / 2.0,
        recurrent_dropout: dropout / 2.0,
    };
    CharLm::new(cfg, vocab.clone(), &mut ChaCha8Rng::seed_from_u64(seed)).unwrap()
}

/// Embedding 8, hidden 24, one layer: learns small texts in a fraction of a second.
pub fn small(cell: CellKind, vocab: &CharVocab, seed: u64) -> CharLm {
    let cfg = CharLmConfig {
        cell,
        embed_dim: 8,
        hidden_size: 24,
        num_layers: 1,
        ..CharLmConfig::default()
    };
    CharLm::new(cfg, vocab.clone(), &mut ChaCha8Rng::seed_from_u64(seed)).unwrap()
}

/// `n` uniformly random known ids (never `UNK`).
pub fn random_ids(vocab: &CharVocab, n: usize, seed: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(1..vocab.len())).collect()
}
