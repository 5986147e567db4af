//! The held-out side of the example: the add-one baselines, the held-out text with its
//! unknown characters' spelling costs, and the escape for checkpoints saved without one.

use std::collections::HashMap;
use std::error::Error;

use recur_train::models::charlm::{add_spelling, CharLm, CharVocab};

/// Add-one (Laplace) unigram and bigram models over the vocabulary (unknown bucket included),
/// fitted on `train` and scored in bits per character on every character of `test` (the
/// bigram's first context is the last training character).
pub fn baselines(vocab: &CharVocab, train: &[usize], test: &[usize]) -> (f64, f64) {
    let v = vocab.len();
    let mut uni = vec![0u64; v];
    let mut prev = vec![0u64; v];
    let mut bi: HashMap<(usize, usize), u64> = HashMap::new();
    for &c in train {
        uni[c] += 1;
    }
    for w in train.windows(2) {
        prev[w[0]] += 1;
        *bi.entry((w[0], w[1])).or_insert(0) += 1;
    }
    let n = train.len() as f64;
    let mut ub = 0.0f64;
    let mut bb = 0.0f64;
    let mut p = *train.last().unwrap_or(&0);
    for &c in test {
        ub -= ((uni[c] as f64 + 1.0) / (n + v as f64)).log2();
        let pair = bi.get(&(p, c)).copied().unwrap_or(0) as f64;
        bb -= ((pair + 1.0) / (prev[p] as f64 + v as f64)).log2();
        p = c;
    }
    let m = test.len().max(1) as f64;
    (ub / m, bb / m)
}

/// The held-out text as the model reads it: ids, and the spelling cost of every character
/// the vocabulary lacks ([`CharVocab::spelling_nats`]).
pub struct Heldout {
    pub ids: Vec<usize>,
    pub spelling: Vec<f64>,
}

impl Heldout {
    /// Per-character losses of `m` (`losses[j]` predicts character `j + 1`), unknown
    /// characters spelled out.
    pub fn losses(&self, m: &CharLm, streams: usize) -> Result<Vec<f64>, Box<dyn Error>> {
        let mut l = m.losses_ids(&self.ids, streams, 256)?;
        add_spelling(&mut l, &self.spelling);
        Ok(l)
    }
}

/// A checkpoint from before the vocabulary's escape probability existed (`novel` 0) gets the
/// training split's estimate when its characters are the split's; `what` names it in the note.
pub fn adopt_escape(m: &mut CharLm, split: &CharVocab, what: &str) -> Result<(), Box<dyn Error>> {
    if m.vocab().novel() == 0.0 && m.vocab().chars() == split.chars() && split.novel() > 0.0 {
        m.set_novel(split.novel())?;
        eprintln!(
            "{what}: saved without an escape for unseen characters; using the training split's ({:.3e})",
            split.novel()
        );
    }
    Ok(())
}
