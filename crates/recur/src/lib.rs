//! recur: fast recurrent sequence models (Elman RNN, LSTM, GRU) on the CPU with PyTorch's
//! semantics — the stable facade over the workspace crates, and the library behind the
//! `recur` command-line tool.
//!
//! * [`model_dir`]: the on-disk model format (config, safetensors weights, checksummed
//!   manifest), written atomically and verified on load.
//! * [`torch_import`]: turning a PyTorch `nn.RNN`/`nn.LSTM`/`nn.GRU` `state_dict()` saved with
//!   safetensors into a model.
//! * [`npy_run`]: running a model on `.npy` arrays (what `recur run` does).
//! * [`tensors`]: the name/shape/dtype/finiteness checks shared by both loaders.
//! * [`serve`]: the HTTP routing webhook behind `recur serve` and its load generator.
//!
//! Everything the binary does is reachable from here, so it is tested as a library; the binary
//! only parses arguments into a plan and prints. Errors are typed (`thiserror`) and name the
//! file plus the field or tensor at fault (`anyhow` is used only by the binary).
//!
//! Must never hold numeric or engine code: that lives in `recur-nn` (models) and
//! `recur-kernels` (kernels), whose main types are re-exported below. No other workspace crate
//! may depend on this one.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod bench;
pub mod model_dir;
pub mod npy_run;
pub mod recipe;
pub mod report;
pub mod serve;
pub mod tensors;
pub mod torch_import;

pub use recur_nn::{
    CellKind, KernelChoice, Layout, NnError, ParamBuffer, ParamSpec, Rnn, RnnConfig, RnnOutput, SeqBatch, State,
};

/// The engine crate, for everything the facade does not re-export.
pub use recur_nn as nn;

/// A one-line description of a config, e.g.
/// `gru, 2 layers, bidirectional, input_size 5, hidden_size 6, with bias`.
pub fn describe_config(cfg: &RnnConfig) -> String {
    let mut s = format!(
        "{}, {} layer{}, {}, input_size {}, hidden_size {}",
        cfg.cell.cli_name(),
        cfg.num_layers,
        if cfg.num_layers == 1 { "" } else { "s" },
        if cfg.bidirectional {
            "bidirectional"
        } else {
            "unidirectional"
        },
        cfg.input_size,
        cfg.hidden_size,
    );
    if cfg.proj_size > 0 {
        s += &format!(", proj_size {}", cfg.proj_size);
    }
    s += if cfg.bias { ", with bias" } else { ", no bias" };
    s
}

/// A one-line summary of a model: its config and parameter count.
pub fn describe_model(rnn: &Rnn<f32>) -> String {
    format!(
        "{}, {} parameters",
        describe_config(rnn.config()),
        rnn.params().as_slice().len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_a_projected_lstm() {
        let mut cfg = RnnConfig::new(CellKind::Lstm, 5, 6);
        cfg.proj_size = 4;
        cfg.num_layers = 2;
        cfg.bidirectional = true;
        let rnn = Rnn::<f32>::zeros(cfg).unwrap();
        let s = describe_model(&rnn);
        assert!(
            s.starts_with("lstm, 2 layers, bidirectional, input_size 5, hidden_size 6, proj_size 4, with bias, "),
            "{s}"
        );
        assert!(s.ends_with(&format!("{} parameters", rnn.params().as_slice().len())));
    }
}
