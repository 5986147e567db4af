//! Character language model (written below).
