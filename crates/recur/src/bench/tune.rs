//! Setting up a model for a benchmark run: kernel family, weight precision and threads, the
//! same way for the latency and the throughput benchmarks.

use recur_nn::{KernelChoice, Precision, Rnn};
use recur_train::models::sequence::SequenceModel;

use super::BenchError;

/// A model a benchmark can tune: kernel family, weight precision and threads.
pub(crate) trait Tunable: Clone {
    fn set_kernels(&mut self, choice: KernelChoice);
    fn set_precision(&mut self, precision: Precision);
    fn set_threads(&mut self, threads: usize) -> Result<(), String>;
}

impl Tunable for Rnn<f32> {
    fn set_kernels(&mut self, choice: KernelChoice) {
        Rnn::set_kernels(self, choice);
    }
    fn set_precision(&mut self, precision: Precision) {
        Rnn::set_precision(self, precision);
    }
    fn set_threads(&mut self, threads: usize) -> Result<(), String> {
        Rnn::set_threads(self, threads).map_err(|e| e.to_string())
    }
}

impl Tunable for SequenceModel {
    fn set_kernels(&mut self, choice: KernelChoice) {
        SequenceModel::set_kernels(self, choice);
    }
    fn set_precision(&mut self, precision: Precision) {
        SequenceModel::set_precision(self, precision);
    }
    fn set_threads(&mut self, threads: usize) -> Result<(), String> {
        SequenceModel::set_threads(self, threads).map_err(|e| e.to_string())
    }
}

/// A copy of `model` with the benchmark's kernel family, precision and threads (an
/// unsupported thread count is an error about the `threads` option).
pub(crate) fn configured<M: Tunable>(
    model: &M,
    kernels: KernelChoice,
    precision: Precision,
    threads: usize,
) -> Result<M, BenchError> {
    let mut m = model.clone();
    m.set_kernels(kernels);
    m.set_precision(precision);
    m.set_threads(threads).map_err(|reason| BenchError::Option {
        option: "threads",
        reason,
    })?;
    Ok(m)
}
