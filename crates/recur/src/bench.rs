//! Latency benchmarks of model directories and checkpoints (being written).
