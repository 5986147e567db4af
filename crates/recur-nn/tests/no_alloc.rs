//! The time loop never allocates: the number of heap allocations of a forward pass, a
//! training forward pass and a backward pass is the same for 8 and for 200 time steps (once
//! the model's reusable inference buffers have grown to the longer pass); and a warm inference
//! pass allocates only what it returns, however many layers and directions it runs.
//!
//! Allocations are counted per thread (the engine runs on the calling thread), so that the
//! test harness's own threads cannot change the count on a busy machine.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use recur_nn::{CellKind, Rnn, RnnConfig};

mod common;

struct Counting;

thread_local! {
    // Const-initialized: touching it never allocates.
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

fn bump() {
    ALLOCS.with(|c| c.set(c.get() + 1));
}

fn allocs() -> usize {
    ALLOCS.with(Cell::get)
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn counts(m: &Rnn<f32>, t: usize, batch: usize) -> (usize, usize, usize) {
    common::alloc::pass_allocs(m, t, batch, allocs)
}

#[test]
fn allocation_count_does_not_grow_with_sequence_length() {
    let mut variants = Vec::new();
    for cell in [CellKind::Gru, CellKind::Lstm, CellKind::RnnRelu] {
        let mut c = RnnConfig::new(cell, 6, 16);
        c.num_layers = 2;
        c.bidirectional = true;
        variants.push(c);
    }
    let mut proj = RnnConfig::new(CellKind::Lstm, 6, 16);
    proj.proj_size = 8;
    proj.layer_norm = true;
    proj.peephole = true;
    variants.push(proj);
    for cfg in variants {
        let m = Rnn::<f32>::new(cfg.clone(), &mut ChaCha8Rng::seed_from_u64(0)).unwrap();
        for batch in [1, 7] {
            counts(&m, 200, batch); // packs the weights and grows the inference buffers once
            let short = counts(&m, 8, batch);
            let long = counts(&m, 200, batch);
            assert_eq!(
                short, long,
                "{:?} batch {batch}: allocations (forward, train, backward) grew with T",
                cfg.cell
            );
        }
    }
}

#[test]
fn a_warm_inference_pass_allocates_only_its_results() {
    for (layers, bidirectional) in [(1, false), (2, true), (3, true)] {
        let mut c = RnnConfig::new(CellKind::Gru, 6, 16);
        c.num_layers = layers;
        c.bidirectional = bidirectional;
        let m = Rnn::<f32>::new(c, &mut ChaCha8Rng::seed_from_u64(0)).unwrap();
        counts(&m, 50, 3);
        let (fwd, _, _) = counts(&m, 50, 3);
        // The packing's vectors, `h_n` and the output, plus per layer the job list and per
        // layer-direction the GEMM's own packing buffer (`matrixmultiply`): a bound that does
        // not count the buffers a pass uses (about 7 more per layer-direction when cold).
        let dirs = if bidirectional { 2 } else { 1 };
        assert!(
            fwd <= 8 + layers * (1 + dirs),
            "{layers} layers, bidirectional {bidirectional}: a warm forward pass made {fwd} allocations"
        );
    }
}
