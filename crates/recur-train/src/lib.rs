//! recur's training layer, on top of the engine in `recur-nn`:
//!
//! * [`loss`]: BCE-with-logits (with `pos_weight`), cross-entropy (class weights, ignore
//!   index), MSE, L1 and Huber, each returning its gradient, with PyTorch's semantics.
//! * [`optim`], [`schedule`], [`clip`]: SGD (momentum, Nesterov), Adam and AdamW with
//!   `torch.optim`'s exact update rules; learning-rate schedules as pure functions of the step,
//!   plus reduce-on-plateau; `clip_grad_norm_`.
//! * [`metrics`]: ROC-AUC and average precision exactly as scikit-learn computes them (ties
//!   included), log loss, Brier, accuracy, macro-F1, confusion matrix, MAE, RMSE, MAPE.
//! * [`layers`]: the dense building blocks around the recurrent stack (linear, embedding).
//! * [`models`]: one model per sequence I/O pattern (many-to-one, tagging, generation,
//!   encoder-decoder with attention).
//! * [`checkpoint`] and [`trainer`]: atomic checkpoint directories and the training loop
//!   (batching, early stopping, NaN guard, bit-exact resume).
//!
//! There is no autograd: every model writes its backward pass explicitly, and each one is
//! checked against finite differences in f64 or against PyTorch fixtures.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod checkpoint;
pub mod clip;
mod error;
pub mod fsutil;
pub mod layers;
pub mod loss;
pub mod metrics;
pub mod models;
pub mod optim;
mod params;
pub mod schedule;
pub mod supervised;
pub mod trainer;

pub use error::{Result, TrainError};
pub use params::{accumulate, Module, NamedTensors, ParamAverage};
