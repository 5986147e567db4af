//! Allocation counts of the three passes, for the no-allocation tests (each test binary
//! installs its own counting allocator and passes its counter in).

use recur_nn::{BackwardOptions, Rnn, SeqBatch, State};

/// Allocations (per `allocs`) of a forward pass, a training forward pass and a truncated
/// backward pass of `m` over a batch of `batch` sequences of about `t` steps.
pub fn pass_allocs(m: &Rnn<f32>, t: usize, batch: usize, allocs: fn() -> usize) -> (usize, usize, usize) {
    let f = m.config().input_size;
    let x = vec![0.3f32; batch * t * f];
    let lengths: Vec<usize> = (0..batch).map(|b| t - b % t.min(3)).collect();
    let xb = SeqBatch::batch_first(&x, batch, t, f).with_lengths(&lengths);
    let before = allocs();
    let out = m.forward(&xb, &State::default()).unwrap();
    let fwd = allocs() - before;
    let before = allocs();
    let (out2, tape) = m.forward_train(&xb, &State::default(), None).unwrap();
    let train = allocs() - before;
    let d = vec![1.0f32; out.output.len()];
    let before = allocs();
    let g = m
        .backward(&tape, &d, None, None, BackwardOptions { truncate: Some(5) })
        .unwrap();
    let bwd = allocs() - before;
    drop((out, out2, g));
    (fwd, train, bwd)
}
