//! The training loop (written below).
