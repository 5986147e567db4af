//! recur's recurrent engine: Elman RNN (tanh, relu), LSTM (with projection, peepholes, layer
//! norm) and GRU cells with PyTorch's equations, gate orders and parameter names; stacked and
//! bidirectional layers; variable-length batches with `pack_padded_sequence` semantics;
//! backpropagation through time (optionally truncated); initializers; dropout between layers
//! and variational dropout.
//!
//! The time loop follows the fast layout from the start: the input projection of a whole layer
//! and direction is one GEMM before the loop; inside it there is one recurrent GEMM (or packed
//! GEMV at batch 1) and one fused gate epilogue per step, over workspace planned before the
//! loop. Sequences are handled in PyTorch's packed layout (sorted by length, time-major), so
//! the active rows at each step are a contiguous prefix and padding never enters a state.
//!
//! Inference options on a model: [`Rnn::set_threads`]`(2)` runs the two directions of each
//! bidirectional layer concurrently (bit-identical to one thread; the reverse direction runs on
//! a persistent helper thread owned by the model), and [`Rnn::set_precision`] stores the input
//! and recurrent weights as f16 or int8 (per-row scales) for inference passes.
//!
//! This crate never does I/O and contains no `unsafe`; the kernels live in `recur-kernels`.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod config;
mod dropout;
mod engine;
mod error;
pub mod init;
mod packed;
mod params;
mod rnn;

pub use config::{CellKind, RnnConfig};
pub use dropout::{inverted_dropout_mask, DropoutMasks};
pub use error::{NnError, Result};
pub use packed::Packing;
pub use params::{direction_suffix, ParamBuffer, ParamSpec};
pub use recur_kernels::{Float, KernelChoice, Precision};
pub use rnn::{BackwardOptions, Gradients, Layout, Rnn, RnnOutput, SeqBatch, State, Tape};
