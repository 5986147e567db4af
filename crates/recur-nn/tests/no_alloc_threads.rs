//! With 2 threads a forward pass, a training forward pass and a backward pass allocate the
//! same number of times for 8 and for 200 time steps, counting the allocations of *every*
//! thread: the caller and the helper that runs the reverse direction.
//!
//! Per-thread counting (as in `no_alloc.rs`) cannot be used here: when the helper thread is
//! descheduled, the caller takes the reverse direction back and runs it itself
//! (`recur_kernels::par::Helper::join`), so the caller's own count depends on scheduling.
//! A process-wide count does not, and this binary has no test harness (`harness = false`),
//! so no other thread allocates while it runs.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use recur_nn::{CellKind, Rnn, RnnConfig};

mod common;

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

fn allocs() -> usize {
    ALLOCS.load(Ordering::SeqCst)
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn counts(m: &Rnn<f32>, t: usize, batch: usize) -> (usize, usize, usize) {
    common::alloc::pass_allocs(m, t, batch, allocs)
}

fn main() {
    for cell in [CellKind::Gru, CellKind::Lstm] {
        let mut cfg = RnnConfig::new(cell, 6, 16);
        cfg.num_layers = 2;
        cfg.bidirectional = true;
        let mut m = Rnn::<f32>::new(cfg, &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
        m.set_threads(2).unwrap();
        for batch in [1, 5] {
            // Packs the weights, warms the helper thread and grows the inference buffers once.
            counts(&m, 200, batch);
            // Several rounds, so that both outcomes of the helper race (the helper runs the
            // reverse direction, or the caller takes it back) are likely to be seen.
            let short: Vec<_> = (0..20).map(|_| counts(&m, 8, batch)).collect();
            let long: Vec<_> = (0..20).map(|_| counts(&m, 200, batch)).collect();
            let want = short[0];
            for (t, c) in short.iter().map(|c| (8, c)).chain(long.iter().map(|c| (200, c))) {
                assert_eq!(
                    *c, want,
                    "{cell:?} batch {batch} T={t}: allocations (forward, train, backward) on all threads \
                     differ from T=8's first round"
                );
            }
        }
    }
    println!("no_alloc_threads: ok (allocation counts on all threads do not depend on T or scheduling)");
}
