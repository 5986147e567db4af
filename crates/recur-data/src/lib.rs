//! recur's data layer: the event-log schema, readers (CSV, JSONL) with line-numbered errors,
//! the synthetic Harbor Support ticket generator, labels at a prediction horizon, time-based
//! splits, and the fitted preprocessing (vocabulary, scalers) saved with a model.
//!
//! This crate never touches float kernels or models.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod aggregate;
pub mod features;
pub mod harbor;
pub mod labels;
pub mod reader;
pub mod schema;
/// Time-series datasets: UEA/UCR `.ts` files, time-indexed CSV and a per-channel scaler.
pub mod series;
pub mod split;
pub mod writer;

pub use schema::{Event, EventLog, Ticket};
