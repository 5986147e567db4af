//! Gate orders and per-cell widths, pinned in one place (PyTorch's conventions; see
//! `shared/docs/parity.md` §1.1).
//!
//! * LSTM rows of `weight_ih`/`weight_hh`/biases: `[i | f | g | o]`, each `H` rows.
//! * GRU rows: `[r | z | n]`; the candidate is `n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))`
//!   ("linear before reset") and `h' = (1 − z) ⊙ n + z ⊙ h`.
//! * Peephole vector (recur's own, PyTorch has none): `[p_i | p_f | p_o]` (oneDNN's order),
//!   where `p_i`, `p_f` see `c_{t−1}` and `p_o` sees `c_t`.

/// LSTM input gate chunk.
pub const LSTM_I: usize = 0;
/// LSTM forget gate chunk.
pub const LSTM_F: usize = 1;
/// LSTM cell candidate chunk.
pub const LSTM_G: usize = 2;
/// LSTM output gate chunk.
pub const LSTM_O: usize = 3;
/// Number of LSTM gate chunks.
pub const LSTM_GATES: usize = 4;

/// GRU reset gate chunk.
pub const GRU_R: usize = 0;
/// GRU update gate chunk.
pub const GRU_Z: usize = 1;
/// GRU candidate chunk.
pub const GRU_N: usize = 2;
/// Number of GRU gate chunks.
pub const GRU_GATES: usize = 3;
/// Width of the GRU forward cache per row, in units of `H`: `r | z | n | (W_hn h + b_hn)`.
pub const GRU_CACHE: usize = 4;

/// Peephole chunk seeing `c_{t−1}` in the input gate.
pub const PEEP_I: usize = 0;
/// Peephole chunk seeing `c_{t−1}` in the forget gate.
pub const PEEP_F: usize = 1;
/// Peephole chunk seeing `c_t` in the output gate.
pub const PEEP_O: usize = 2;
