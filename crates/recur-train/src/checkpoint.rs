//! Checkpoint directories (written below).
