//! Buffers that inference passes reuse, so that a warm model scores without heap allocation
//! or zeroing beyond its outputs.
//!
//! A model keeps a small pool of [`Scratch`] sets. An inference pass takes one (or starts an
//! empty one), grows its buffers to the pass's sizes and returns it; concurrent passes on one
//! model each take their own. Training passes never use the pool: their buffers become the
//! tape and leave with it.
//!
//! Reused buffers are **not cleared**: every buffer is grown to at least the size a pass needs
//! and holds whatever the previous pass left. The forward pass writes every element of the
//! prefix it uses before reading it (states are zeroed or set from `h0`/`c0` explicitly), and
//! never reads past that prefix; the engine tests compare warm passes against cold ones and
//! against the fixtures.

use std::sync::Mutex;

use recur_kernels::Float;

use super::DirTape;

/// Sets kept by a model at most (more concurrent passes allocate their own).
const KEEP_SETS: usize = 8;
/// A set larger than this (a very long or very wide pass) is dropped after its pass rather
/// than kept, so that one outlier request does not pin its memory for the model's lifetime.
const KEEP_BYTES: usize = 32 << 20;

/// One direction's time-loop buffers.
#[derive(Debug, Default)]
pub(crate) struct DirScratch<T> {
    /// Initial, then running, then final states (sorted order), `[batch, H_out]` / `[batch, H]`.
    pub hs: Vec<T>,
    pub cs: Vec<T>,
    /// The hoisted input projection, `[total, G·H]`.
    pub gi: Vec<T>,
    /// The masked state (variational dropout), the recurrent projection and its layer norm.
    pub hm: Vec<T>,
    pub gh: Vec<T>,
    pub gh_ln: Vec<T>,
    /// Per-row outputs and caches; the tape itself when training.
    pub tape: DirTape<T>,
}

/// The buffers of one pass: a layer's input and output, and one set per direction.
#[derive(Debug, Default)]
pub(crate) struct Scratch<T> {
    pub input: Vec<T>,
    pub output: Vec<T>,
    pub dirs: Vec<DirScratch<T>>,
}

impl<T: Default> Scratch<T> {
    fn bytes(&self) -> usize {
        let dir = |d: &DirScratch<T>| {
            let t = &d.tape;
            [
                &d.hs, &d.cs, &d.gi, &d.hm, &d.gh, &d.gh_ln, &t.ys, &t.cache, &t.c, &t.htilde, &t.cn,
            ]
            .iter()
            .map(|v| v.capacity())
            .sum::<usize>()
                + [&t.ln_c, &t.ln_hh]
                    .iter()
                    .map(|(a, b)| a.capacity() + b.capacity())
                    .sum::<usize>()
        };
        let n = self.input.capacity() + self.output.capacity() + self.dirs.iter().map(dir).sum::<usize>();
        n * std::mem::size_of::<T>()
    }
}

/// Makes `v` at least `n` long, zero-filling only what it adds; the elements it already had
/// keep their (stale) values. Callers use `v[..n]`.
pub(crate) fn grow<T: Float>(v: &mut Vec<T>, n: usize) {
    if v.len() < n {
        v.resize(n, T::zero());
    }
}

/// A model's free [`Scratch`] sets. Cloning a model starts the clone with an empty pool.
pub(crate) struct ScratchPool<T> {
    free: Mutex<Vec<Scratch<T>>>,
}

impl<T> Default for ScratchPool<T> {
    fn default() -> Self {
        ScratchPool {
            free: Mutex::new(Vec::new()),
        }
    }
}

impl<T> Clone for ScratchPool<T> {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl<T> std::fmt::Debug for ScratchPool<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.free.lock().map(|v| v.len()).unwrap_or(0);
        write!(f, "ScratchPool({n} free)")
    }
}

impl<T: Default> ScratchPool<T> {
    /// A free set, or an empty one.
    pub fn take(&self) -> Scratch<T> {
        // A panic in another pass cannot leave a set half-updated in the pool (sets are only
        // pushed whole), so a poisoned lock is safe to use.
        self.free
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_default()
    }

    /// Returns a set after its pass (dropped when the pool is full or the set is outsized).
    pub fn give(&self, s: Scratch<T>) {
        if s.bytes() > KEEP_BYTES {
            return;
        }
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        if free.len() < KEEP_SETS {
            free.push(s);
        }
    }
}
