//! `recur import-torch`: PyTorch state_dict (safetensors) → recur model directory.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::ValueEnum;
use recur::torch_import::{import_file, ImportOptions};
use recur::{describe_model, model_dir, CellKind};

/// The PyTorch module the state dict comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Cell {
    /// torch.nn.GRU
    Gru,
    /// torch.nn.LSTM (with or without proj_size)
    Lstm,
    /// torch.nn.RNN(nonlinearity='tanh')
    RnnTanh,
    /// torch.nn.RNN(nonlinearity='relu')
    RnnRelu,
}

impl From<Cell> for CellKind {
    fn from(c: Cell) -> Self {
        match c {
            Cell::Gru => CellKind::Gru,
            Cell::Lstm => CellKind::Lstm,
            Cell::RnnTanh => CellKind::RnnTanh,
            Cell::RnnRelu => CellKind::RnnRelu,
        }
    }
}

/// Sizes, layer count, directions, bias and projection are inferred from the keys
/// (`weight_ih_l0`, `weight_hh_l0`, `bias_ih_l0`, `bias_hh_l0`, `weight_hr_l0`, `…_reverse`);
/// every tensor is checked against that layout. F64/F16/BF16 tensors are converted to f32.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The module type (an RNN's nonlinearity cannot be inferred from its weights).
    #[arg(long, value_enum)]
    cell: Cell,
    /// The state_dict, saved with safetensors.
    #[arg(long, value_name = "FILE.safetensors")]
    state_dict: PathBuf,
    /// The model directory to write (replaced if it is a recur model directory).
    #[arg(long, value_name = "MODEL_DIR")]
    out: PathBuf,
    /// Import only the keys under this module prefix (e.g. `rnn.` or `module.gru.`) and ignore
    /// the rest. Without it the prefix shared by all RNN keys is stripped, and any key outside
    /// it is an error.
    #[arg(long)]
    prefix: Option<String>,
}

/// A validated import.
#[derive(Debug)]
pub struct Plan {
    state_dict: PathBuf,
    out: PathBuf,
    options: ImportOptions,
}

impl TryFrom<Args> for Plan {
    type Error = anyhow::Error;

    fn try_from(a: Args) -> anyhow::Result<Self> {
        Ok(Plan {
            state_dict: a.state_dict,
            out: a.out,
            options: ImportOptions {
                cell: a.cell.into(),
                prefix: a.prefix,
            },
        })
    }
}

impl Plan {
    /// Imports, writes the model directory and prints a one-line summary.
    pub fn run(self, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
        let imported = import_file(&self.state_dict, &self.options)?;
        model_dir::save(&self.out, &imported.rnn)
            .with_context(|| format!("cannot write model directory {}", self.out.display()))?;
        let mut line = format!("imported {} -> {}", describe_model(&imported.rnn), self.out.display());
        if !imported.prefix.is_empty() {
            line += &format!(" (prefix `{}` stripped", imported.prefix);
            if !imported.ignored.is_empty() {
                line += &format!(", {} other key(s) ignored", imported.ignored.len());
            }
            line += ")";
        }
        writeln!(out, "{line}")?;
        Ok(ExitCode::SUCCESS)
    }
}
