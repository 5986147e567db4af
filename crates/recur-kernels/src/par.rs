//! Two-way fork-join on a persistent helper thread.
//!
//! [`Helper::join`] runs one closure on the calling thread and the other on a helper thread
//! that lives as long as the [`Helper`], and returns when both are done. The hand-off is a
//! pair of atomics plus a pointer to the closure on the caller's stack: nothing is allocated
//! per call and no thread is spawned per call. Both sides spin for a short while
//! ([`Helper::SPIN`]) before parking, so back-to-back calls (the layers of one forward pass)
//! hand off in well under a microsecond, while an idle helper sleeps instead of burning a core.
//!
//! When the caller finishes its closure before the helper has picked up the other one (the
//! helper thread is descheduled on a busy machine), the caller takes the job back and runs it
//! itself, so a join is never much slower than running both closures in sequence.
//!
//! One `join` runs at a time per helper; a concurrent caller (a model shared between server
//! workers) does not wait for it but runs both closures itself, one after the other.

use std::cell::UnsafeCell;
use std::fmt;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

const IDLE: u8 = 0;
const READY: u8 = 1;
const RUNNING: u8 = 2;
const DONE: u8 = 3;
const EXIT: u8 = 4;

/// A type-erased `FnOnce` living on the caller's stack.
#[derive(Clone, Copy)]
struct Job {
    data: *mut (),
    call: unsafe fn(*mut ()),
}

struct Shared {
    state: AtomicU8,
    /// Written by the caller before `READY`, read by the helper after it.
    job: UnsafeCell<Option<Job>>,
    /// The thread to wake when the job is done; written with `job`.
    caller: UnsafeCell<Option<Thread>>,
    panicked: AtomicBool,
    /// Set by the helper thread once it runs (see [`Helper::new`]).
    started: AtomicBool,
}

// SAFETY: `job` and `caller` are only written by the one caller holding `Helper::busy`, before
// it publishes `READY` (release), and only read by the helper after it observes `READY`
// (acquire) and before it publishes `DONE`; the two never access them at the same time.
unsafe impl Sync for Shared {}
// SAFETY: as above; the raw pointer in `job` is only dereferenced under that protocol.
unsafe impl Send for Shared {}

/// A persistent helper thread for [`Helper::join`]. Dropping it stops and joins the thread.
pub struct Helper {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    busy: AtomicBool,
}

impl fmt::Debug for Helper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Helper").finish_non_exhaustive()
    }
}

impl Helper {
    /// How long either side spins before parking.
    pub const SPIN: Duration = Duration::from_micros(50);

    /// Starts the helper thread (named `recur-helper`) and returns once it is running.
    pub fn new() -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: AtomicU8::new(IDLE),
            job: UnsafeCell::new(None),
            caller: UnsafeCell::new(None),
            panicked: AtomicBool::new(false),
            started: AtomicBool::new(false),
        });
        let s = Arc::clone(&shared);
        let thread = thread::Builder::new()
            .name("recur-helper".into())
            .spawn(move || helper_loop(&s))?;
        // Wait until the thread runs: its start-up allocates (the standard library's per-thread
        // bookkeeping), and on a busy machine it may otherwise start in the middle of a later
        // join, so that a join would appear to allocate.
        while !shared.started.load(Ordering::Acquire) {
            thread::yield_now();
        }
        Ok(Helper {
            shared,
            thread: Some(thread),
            busy: AtomicBool::new(false),
        })
    }

    /// Runs `a` on the calling thread and `b` on the helper thread, and returns both results
    /// once both have finished. Never allocates. When another `join` on this helper is in
    /// progress, runs `a` then `b` on the calling thread instead.
    ///
    /// # Panics
    /// Re-raises a panic of `a` or `b` after both have finished.
    pub fn join<RA, RB: Send, A: FnOnce() -> RA, B: FnOnce() -> RB + Send>(&self, a: A, b: B) -> (RA, RB) {
        if self
            .busy
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return (a(), b());
        }
        let mut pack = (Some(b), None::<RB>);
        let sh = &*self.shared;
        // SAFETY: we hold `busy`, and the helper is IDLE (the previous join waited for DONE and
        // reset the state), so nobody else touches these cells; `pack` outlives the job because
        // we wait for DONE below before returning or unwinding.
        unsafe {
            *sh.job.get() = Some(Job {
                data: &mut pack as *mut _ as *mut (),
                call: run_pack::<B, RB>,
            });
            *sh.caller.get() = Some(thread::current());
        }
        sh.state.store(READY, Ordering::Release);
        if let Some(t) = &self.thread {
            t.thread().unpark();
        }
        let ra = catch_unwind(AssertUnwindSafe(a));
        let b_panicked = if sh
            .state
            .compare_exchange(READY, IDLE, Ordering::Acquire, Ordering::Acquire)
            .is_ok()
        {
            // The helper never started: take the job back and run it here.
            // SAFETY: the helper only touches the cells after winning READY → RUNNING, which
            // it can no longer do; we hold `busy`.
            let job = unsafe {
                (*sh.caller.get()).take();
                (*sh.job.get()).take().expect("the job is still there")
            };
            // SAFETY: `pack` is alive and untouched by anyone else.
            catch_unwind(AssertUnwindSafe(|| unsafe { (job.call)(job.data) })).is_err()
        } else {
            wait_for(|| sh.state.load(Ordering::Acquire) == DONE);
            sh.state.store(IDLE, Ordering::Relaxed);
            sh.panicked.swap(false, Ordering::Relaxed)
        };
        self.busy.store(false, Ordering::Release);
        let ra = match ra {
            Ok(v) => v,
            Err(e) => resume_unwind(e),
        };
        assert!(!b_panicked, "recur-helper: the job given to the helper thread panicked");
        (ra, pack.1.expect("the helper ran the job"))
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.shared.state.store(EXIT, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// Runs the closure of a `(Some(f), None)` pack and stores its result.
///
/// # Safety
/// `p` must point to a live `(Option<F>, Option<R>)` that nothing else accesses meanwhile.
unsafe fn run_pack<F: FnOnce() -> R, R>(p: *mut ()) {
    // SAFETY: caller's contract.
    let pack = unsafe { &mut *(p as *mut (Option<F>, Option<R>)) };
    let f = pack.0.take().expect("a job runs once");
    pack.1 = Some(f());
}

/// Spins for [`Helper::SPIN`], then parks, until `ready()`.
fn wait_for(ready: impl Fn() -> bool) {
    let start = Instant::now();
    let mut spins = 0u32;
    while !ready() {
        if spins < 64 || start.elapsed() < Helper::SPIN {
            spins = spins.wrapping_add(1);
            std::hint::spin_loop();
        } else {
            thread::park();
        }
    }
}

fn helper_loop(sh: &Shared) {
    sh.started.store(true, Ordering::Release);
    loop {
        wait_for(|| matches!(sh.state.load(Ordering::Acquire), READY | EXIT));
        match sh
            .state
            .compare_exchange(READY, RUNNING, Ordering::Acquire, Ordering::Acquire)
        {
            Ok(_) => {}
            Err(EXIT) => return,
            Err(_) => continue, // the caller took the job back
        }
        // SAFETY: READY was published after `job` and `caller` were written (see `Shared`).
        let (job, caller) = unsafe { ((*sh.job.get()).take(), (*sh.caller.get()).take()) };
        if let Some(job) = job {
            // SAFETY: the caller keeps the pack alive and untouched until it sees DONE.
            if catch_unwind(AssertUnwindSafe(|| unsafe { (job.call)(job.data) })).is_err() {
                sh.panicked.store(true, Ordering::Relaxed);
            }
        }
        sh.state.store(DONE, Ordering::Release);
        if let Some(c) = caller {
            c.unpark();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_runs_both_and_returns_results() {
        let h = Helper::new().unwrap();
        let mut left = vec![0u32; 100];
        let mut right = vec![0u32; 100];
        for round in 0..1000u32 {
            let (a, b) = h.join(
                || {
                    left.iter_mut().for_each(|v| *v += round);
                    thread::current().id()
                },
                || {
                    right.iter_mut().for_each(|v| *v += 2 * round);
                    thread::current().id()
                },
            );
            assert_eq!(a, thread::current().id());
            let _ = b; // the helper, or the caller when it took the job back
        }
        let s: u32 = (0..1000).sum();
        assert!(left.iter().all(|&v| v == s) && right.iter().all(|&v| v == 2 * s));
    }

    #[test]
    fn join_after_idle_period_wakes_parked_helper() {
        let h = Helper::new().unwrap();
        thread::sleep(Helper::SPIN * 5);
        assert_eq!(h.join(|| 1, || 2), (1, 2));
    }

    #[test]
    fn concurrent_joins_fall_back_to_sequential() {
        let h = Helper::new().unwrap();
        thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    for i in 0..500u64 {
                        assert_eq!(h.join(|| i, || i * 3), (i, i * 3));
                    }
                });
            }
        });
    }

    /// When the caller is busy long enough, `b` runs on the helper thread.
    #[test]
    fn b_runs_on_the_helper_when_a_is_long() {
        let h = Helper::new().unwrap();
        let (_, tid) = h.join(|| thread::sleep(Duration::from_millis(20)), || thread::current().id());
        assert_ne!(tid, thread::current().id());
    }

    /// Both paths (helper runs `b`, caller takes `b` back) give the same results.
    #[test]
    fn caller_takes_the_job_back_when_the_helper_is_slow() {
        let h = Helper::new().unwrap();
        let mut stolen = 0;
        for i in 0..2000u64 {
            let (a, (b, tid)) = h.join(|| i, || (i * 2, thread::current().id()));
            assert_eq!((a, b), (i, 2 * i));
            stolen += usize::from(tid == thread::current().id());
        }
        eprintln!("{stolen} of 2000 jobs taken back by the caller");
    }

    #[test]
    fn panic_on_helper_is_reported_and_helper_survives() {
        let h = Helper::new().unwrap();
        let r = catch_unwind(AssertUnwindSafe(|| h.join(|| 1, || panic!("boom"))));
        assert!(r.is_err());
        assert_eq!(h.join(|| 3, || 4), (3, 4));
    }
}
