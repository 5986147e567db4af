//! Generation: [`Seed`], [`CharLm::generate`], step-by-step [`Generator`] and sampling.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use recur_kernels::{kernels, Accum, KernelChoice, Kernels, PackedGemv};
use recur_nn::{SeqBatch, State};

use super::{CharLm, LmState, UNK, UNK_CHAR};
use crate::error::{Result, TrainError};

/// Where generation starts: an initial state (the "seed vector"; zeros when `None`), then
/// optional priming text read from it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Seed<'a> {
    /// Initial hidden state `[layers·H]` (batch 1).
    pub h0: Option<&'a [f32]>,
    /// Initial cell state `[layers·H]` (LSTM only; zeros when `None`).
    pub c0: Option<&'a [f32]>,
    /// Text read before sampling starts (may be empty).
    pub prime: &'a str,
}

impl<'a> Seed<'a> {
    /// Start from the zero state and read `prime`.
    pub fn text(prime: &'a str) -> Self {
        Seed {
            prime,
            ..Seed::default()
        }
    }

    /// Start from the hidden vector `h0` (`[layers·H]`; a zero cell state for LSTM).
    pub fn vector(h0: &'a [f32]) -> Self {
        Seed {
            h0: Some(h0),
            ..Seed::default()
        }
    }
}

impl CharLm {
    /// Generates `n_chars` characters from `seed` (the seed's priming text is not repeated in
    /// the result). Each character is drawn from `softmax(logits / temperature)` with `rng`;
    /// `temperature == 0` is greedy argmax. [`UNK`] is never produced.
    pub fn generate(&self, seed: &Seed<'_>, n_chars: usize, temperature: f32, rng: &mut ChaCha8Rng) -> Result<String> {
        check_temperature(temperature)?;
        let mut g = Generator::new(self, seed)?;
        let mut out = String::with_capacity(n_chars);
        for i in 0..n_chars {
            let id = sample(g.logits(), temperature, rng);
            out.push(self.vocab.char(id).unwrap_or(UNK_CHAR));
            if i + 1 < n_chars {
                g.feed(id)?;
            }
        }
        Ok(out)
    }
}

fn check_temperature(t: f32) -> Result<()> {
    if t.is_finite() && t >= 0.0 {
        Ok(())
    } else {
        Err(TrainError::config(
            "temperature",
            format!("must be a finite number ≥ 0, got {t}"),
        ))
    }
}

/// Draws an id from `softmax(logits / temperature)`, never [`UNK`]; temperature 0 (or one so
/// small that the distribution is one-hot in `f64`) is argmax (the lowest id among ties).
///
/// `logits` must have at least two entries and `temperature` must be finite and ≥ 0 (as
/// [`CharLm::generate`] checks).
pub fn sample(logits: &[f32], temperature: f32, rng: &mut ChaCha8Rng) -> usize {
    let best = argmax(logits);
    if temperature == 0.0 || logits.len() <= 2 {
        return best;
    }
    let t = temperature as f64;
    let max = logits[best] as f64;
    let mut probs: Vec<f64> = logits.iter().map(|&x| ((x as f64 - max) / t).exp()).collect();
    probs[UNK] = 0.0;
    let z: f64 = probs.iter().sum();
    if !(z.is_finite() && z > 0.0) {
        return best;
    }
    let mut u = rng.random::<f64>() * z;
    for (i, &p) in probs.iter().enumerate() {
        if p > 0.0 {
            if u < p {
                return i;
            }
            u -= p;
        }
    }
    // Rounding left u just above the total: the last id with mass.
    probs.iter().rposition(|&p| p > 0.0).unwrap_or(best)
}

/// The id of the largest logit other than [`UNK`] (the lowest id among ties); NaNs never win.
pub fn argmax(logits: &[f32]) -> usize {
    let mut best = if logits.len() > 1 { 1 } else { 0 };
    for (i, &x) in logits.iter().enumerate().skip(2) {
        if x > logits[best] || (logits[best].is_nan() && !x.is_nan()) {
            best = i;
        }
    }
    best
}

/// Step-by-step inference at batch 1: holds the state and the logits of the next character.
/// The head's weight is packed once for the GEMV kernel (one step is one [`Rnn::forward`](recur_nn::Rnn::forward) of
/// length 1 plus one GEMV).
#[derive(Clone, Debug)]
pub struct Generator<'m> {
    model: &'m CharLm,
    k: Kernels,
    head: PackedGemv<f32>,
    state: LmState,
    logits: Vec<f32>,
}

impl<'m> Generator<'m> {
    /// Starts from `seed`: its state (zeros by default), then its priming text in one forward
    /// call. Without priming text the first logits are `head(h0 of the top layer)`.
    pub fn new(model: &'m CharLm, seed: &Seed<'_>) -> Result<Self> {
        let n = model.state_len();
        let lstm = model.rnn.config().has_cell_state();
        let mut state = model.zero_state(1);
        if let Some(h0) = seed.h0 {
            if h0.len() != n {
                return Err(TrainError::Invalid(format!(
                    "seed vector h0 has {} values, expected layers·hidden = {n}",
                    h0.len()
                )));
            }
            state.h.copy_from_slice(h0);
        }
        match (seed.c0, lstm) {
            (Some(c0), true) if c0.len() == n => state.c = Some(c0.to_vec()),
            (Some(c0), true) => {
                return Err(TrainError::Invalid(format!(
                    "seed cell state c0 has {} values, expected layers·hidden = {n}",
                    c0.len()
                )))
            }
            (Some(_), false) => {
                return Err(TrainError::Invalid(format!(
                    "seed cell state c0 is only accepted by LSTM models, this one is {}",
                    model.cfg.cell.cli_name()
                )))
            }
            (None, _) => {}
        }
        let k = kernels(KernelChoice::Best);
        let (v, hd) = (model.vocab.len(), model.cfg.hidden_size);
        let mut g = Generator {
            model,
            k,
            head: k.pack_gemv(model.head.weight(), v, hd),
            state,
            logits: vec![0.0; v],
        };
        let prime = model.vocab.encode(seed.prime);
        if prime.is_empty() {
            let top = g.state.h[n - hd..].to_vec();
            g.head_logits(&top);
        } else {
            g.run(&prime)?;
        }
        Ok(g)
    }

    /// `logits = W·h + b` for the top layer's `h`.
    fn head_logits(&mut self, h: &[f32]) {
        match self.model.head.params.get("bias") {
            Some(b) => self.logits.copy_from_slice(b),
            None => self.logits.fill(0.0),
        }
        self.k.gemv(&self.head, h, &mut self.logits, Accum::Add);
    }

    /// Logits of the next character, `[V]`.
    pub fn logits(&self) -> &[f32] {
        &self.logits
    }

    /// The current state (batch 1).
    pub fn state(&self) -> &LmState {
        &self.state
    }

    /// Reads one character id and updates the state and logits.
    pub fn feed(&mut self, id: usize) -> Result<()> {
        self.run(&[id])
    }

    /// Reads several ids in one forward call.
    pub fn run(&mut self, ids: &[usize]) -> Result<()> {
        let m = self.model;
        if ids.is_empty() {
            return Ok(());
        }
        m.check_ids("ids", ids)?;
        let x = m.embed.forward(ids);
        let out = m.rnn.forward(
            &SeqBatch::batch_first(&x, 1, ids.len(), m.cfg.embed_dim),
            &State {
                h0: Some(&self.state.h),
                c0: self.state.c.as_deref(),
            },
        )?;
        let hd = m.cfg.hidden_size;
        self.head_logits(&out.output[out.output.len() - hd..]);
        self.state.h = out.h_n;
        self.state.c = out.c_n;
        Ok(())
    }
}
