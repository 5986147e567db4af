//! Encoder-decoder with attention (written below).
