//! Configuration of a recurrent stack, validated once at the boundary.

use serde::{Deserialize, Serialize};

use crate::error::{NnError, Result};

/// The recurrent cell family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CellKind {
    /// Elman RNN with `tanh` (PyTorch `nn.RNN(nonlinearity='tanh')`).
    RnnTanh,
    /// Elman RNN with `relu` (PyTorch `nn.RNN(nonlinearity='relu')`).
    RnnRelu,
    /// LSTM (PyTorch `nn.LSTM`), optionally with projection, peepholes or layer norm.
    Lstm,
    /// GRU (PyTorch `nn.GRU`, reset applied after the hidden matmul).
    Gru,
}

impl CellKind {
    /// Gate chunks per cell: 1 (RNN), 4 (LSTM), 3 (GRU).
    pub fn gates(self) -> usize {
        match self {
            CellKind::RnnTanh | CellKind::RnnRelu => 1,
            CellKind::Lstm => 4,
            CellKind::Gru => 3,
        }
    }

    /// The name used on the command line: `rnn-tanh`, `rnn-relu`, `lstm`, `gru`.
    pub fn cli_name(self) -> &'static str {
        match self {
            CellKind::RnnTanh => "rnn-tanh",
            CellKind::RnnRelu => "rnn-relu",
            CellKind::Lstm => "lstm",
            CellKind::Gru => "gru",
        }
    }
}

fn one() -> usize {
    1
}
fn yes() -> bool {
    true
}
fn ln_eps() -> f64 {
    1e-5
}

/// A recurrent stack: `num_layers` layers of `cell`, each uni- or bidirectional.
///
/// Defaults follow PyTorch. Fields beyond PyTorch's: `peephole` and `layer_norm` (LSTM only),
/// and variational dropout (`input_dropout`, `recurrent_dropout`: one mask per sequence,
/// reused at every step, on each layer's input and on the recurrent state fed to the gates).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RnnConfig {
    /// Cell family.
    pub cell: CellKind,
    /// Features per time step of the first layer's input.
    pub input_size: usize,
    /// Hidden units per direction.
    pub hidden_size: usize,
    /// Stacked layers (default 1).
    #[serde(default = "one")]
    pub num_layers: usize,
    /// Run a reverse direction too and concatenate (default false).
    #[serde(default)]
    pub bidirectional: bool,
    /// LSTM projection size `P` (0 = none); `h_t` then has width `P`.
    #[serde(default)]
    pub proj_size: usize,
    /// LSTM peephole connections (Gers & Schmidhuber 2000).
    #[serde(default)]
    pub peephole: bool,
    /// Layer-normalized LSTM (Ba et al. 2016): LN on the input and recurrent projections
    /// (each over all `4H` units) and on the cell before the output `tanh`; the unnormalized
    /// cell is carried.
    #[serde(default)]
    pub layer_norm: bool,
    /// Layer-norm epsilon (default 1e-5, PyTorch's `nn.LayerNorm`).
    #[serde(default = "ln_eps")]
    pub layer_norm_eps: f64,
    /// Learn `bias_ih`/`bias_hh` (default true).
    #[serde(default = "yes")]
    pub bias: bool,
    /// Dropout between stacked layers, training only (PyTorch's `dropout`).
    #[serde(default)]
    pub dropout: f64,
    /// Variational dropout on each layer's input, training only.
    #[serde(default)]
    pub input_dropout: f64,
    /// Variational dropout on the recurrent state fed to the gates, training only.
    #[serde(default)]
    pub recurrent_dropout: f64,
}

impl RnnConfig {
    /// A config with PyTorch's defaults for everything but the sizes.
    pub fn new(cell: CellKind, input_size: usize, hidden_size: usize) -> Self {
        RnnConfig {
            cell,
            input_size,
            hidden_size,
            num_layers: 1,
            bidirectional: false,
            proj_size: 0,
            peephole: false,
            layer_norm: false,
            layer_norm_eps: ln_eps(),
            bias: true,
            dropout: 0.0,
            input_dropout: 0.0,
            recurrent_dropout: 0.0,
        }
    }

    /// Checks every field; called by every constructor of a built model.
    pub fn validate(&self) -> Result<()> {
        let bad = |field, reason: &str| {
            Err(NnError::Config {
                field,
                reason: reason.to_string(),
            })
        };
        if self.input_size == 0 {
            return bad("input_size", "must be at least 1");
        }
        if self.hidden_size == 0 {
            return bad("hidden_size", "must be at least 1");
        }
        if self.num_layers == 0 {
            return bad("num_layers", "must be at least 1");
        }
        let lstm = self.cell == CellKind::Lstm;
        if self.proj_size > 0 && !lstm {
            return bad("proj_size", "is only supported for LSTM");
        }
        if self.proj_size >= self.hidden_size && self.proj_size > 0 {
            return bad("proj_size", "must be smaller than hidden_size");
        }
        if self.peephole && !lstm {
            return bad("peephole", "is only supported for LSTM");
        }
        if self.layer_norm && !lstm {
            return bad("layer_norm", "is only supported for LSTM");
        }
        if !(self.layer_norm_eps > 0.0 && self.layer_norm_eps.is_finite()) {
            return bad("layer_norm_eps", "must be a positive finite number");
        }
        for (field, p) in [
            ("dropout", self.dropout),
            ("input_dropout", self.input_dropout),
            ("recurrent_dropout", self.recurrent_dropout),
        ] {
            if !(0.0..1.0).contains(&p) {
                return bad(field, "must be in [0, 1)");
            }
        }
        Ok(())
    }

    /// Directions: 2 if bidirectional else 1.
    pub fn directions(&self) -> usize {
        if self.bidirectional {
            2
        } else {
            1
        }
    }

    /// Width of `h_t`: `proj_size` if set, else `hidden_size`.
    pub fn h_out(&self) -> usize {
        if self.proj_size > 0 {
            self.proj_size
        } else {
            self.hidden_size
        }
    }

    /// Input width of layer `layer`.
    pub fn layer_input(&self, layer: usize) -> usize {
        if layer == 0 {
            self.input_size
        } else {
            self.directions() * self.h_out()
        }
    }

    /// Whether the cell carries `c` (LSTM).
    pub fn has_cell_state(&self) -> bool {
        self.cell == CellKind::Lstm
    }
}
