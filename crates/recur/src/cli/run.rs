//! `recur run`: a model directory plus .npy inputs → .npy outputs.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::ValueEnum;
use recur::npy_run::{write_outputs, InputFiles, Inputs};
use recur::{model_dir, KernelChoice};

/// Kernel family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Kernels {
    /// The fastest kernels this CPU supports.
    Best,
    /// The plain reference kernels (slow; for debugging and A/B timing).
    Reference,
}

/// Writes DIR/output.npy [batch, time, directions*H_out] (zeros at padded steps),
/// DIR/h_n.npy [layers*directions, batch, H_out] and, for LSTMs, DIR/c_n.npy
/// [layers*directions, batch, hidden_size]. Padded sequences follow PyTorch's
/// pack_padded_sequence → RNN → pad_packed_sequence semantics.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model directory (from `recur import-torch`).
    #[arg(long, value_name = "MODEL_DIR")]
    model: PathBuf,
    /// Input sequences: float32 [batch, time, input_size].
    #[arg(long, value_name = "X.npy")]
    input: PathBuf,
    /// Sequence lengths: int64 or int32 [batch], each in 1..=time (default: all full length).
    #[arg(long, value_name = "L.npy")]
    lengths: Option<PathBuf>,
    /// Initial hidden state: float32 [layers*directions, batch, H_out] (default: zeros).
    #[arg(long, value_name = "H0.npy")]
    h0: Option<PathBuf>,
    /// Initial cell state, LSTM only: float32 [layers*directions, batch, hidden_size].
    #[arg(long, value_name = "C0.npy")]
    c0: Option<PathBuf>,
    /// Directory for the outputs (created if needed).
    #[arg(long, value_name = "DIR")]
    out_dir: PathBuf,
    /// Kernel family.
    #[arg(long, value_enum, default_value_t = Kernels::Best)]
    kernels: Kernels,
    /// Storage of the input and recurrent weights: f32 (the parameters as they are), f16 or
    /// int8 (quantized copies, as in `recur bench --precision` and `recur serve --precision`).
    #[arg(long, value_enum, default_value_t = super::bench::PrecisionArg::F32)]
    precision: super::bench::PrecisionArg,
}

/// A validated run.
#[derive(Debug)]
pub struct Plan {
    model: PathBuf,
    inputs: InputFiles,
    out_dir: PathBuf,
    kernels: KernelChoice,
    precision: recur_nn::Precision,
}

impl TryFrom<Args> for Plan {
    type Error = anyhow::Error;

    fn try_from(a: Args) -> anyhow::Result<Self> {
        let kernels = match a.kernels {
            Kernels::Best => KernelChoice::Best,
            Kernels::Reference => KernelChoice::Reference,
        };
        let inputs = InputFiles {
            input: a.input,
            lengths: a.lengths,
            h0: a.h0,
            c0: a.c0,
        };
        Ok(Plan {
            model: a.model,
            inputs,
            out_dir: a.out_dir,
            kernels,
            precision: a.precision.into(),
        })
    }
}

impl Plan {
    /// Loads the model and inputs, runs the forward pass and writes the outputs.
    pub fn run(self, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
        let mut rnn = model_dir::load(&self.model)
            .with_context(|| format!("cannot load model directory {}", self.model.display()))?;
        rnn.set_kernels(self.kernels);
        rnn.set_precision(self.precision);
        let inputs = Inputs::load(rnn.config(), &self.inputs)?;
        let result = inputs.forward(&rnn)?;
        let written = write_outputs(&self.out_dir, rnn.config(), &inputs, &result)?;
        let names: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
        writeln!(out, "wrote {}", names.join(", "))?;
        Ok(ExitCode::SUCCESS)
    }
}
