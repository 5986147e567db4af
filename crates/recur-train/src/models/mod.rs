//! One model per sequence I/O pattern, each with an explicit backward pass:
//!
//! * [`sequence`]: many-to-one classifier and regressor (final states or pooling over time)
//!   and the aligned many-to-many tagger.
//! * [`seq2seq`]: encoder-decoder with Luong or Bahdanau attention (or none), teacher forcing,
//!   scheduled sampling, greedy and beam-search decoding.
//! * [`charlm`]: a character language model (one-to-many generation with temperature).
//! * [`stream`]: one event at a time through a unidirectional [`sequence`] model, carrying
//!   the hidden state (streaming inference for serving).

pub mod charlm;
pub mod seq2seq;
pub mod sequence;
pub mod stream;
