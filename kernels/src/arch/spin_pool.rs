//! A persistent pool of spinning worker threads for the kernels' parallel loops.
//!
//! A kernel call is a few microseconds to a few milliseconds of work split into jobs. Rayon
//! parks idle workers on a futex, and waking one costs 17-27 us on the project's VMs even
//! inside the pool (a 20 us serial gap before a `join`, measured on an Intel Xeon with AMX),
//! which is most of a batch-1 layer's time. Here the workers watch an epoch counter for a
//! while after each call (spinning, then yielding, then parking), so publishing the next
//! call costs a cache-line transfer, and the calling thread works through the jobs too.
//!
//! This module lives under `arch` because handing a borrowed closure to other threads needs
//! `unsafe`: the closure's lifetime is erased while [`run`] blocks until every job finished.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, TryLockError};
use std::thread;
use std::time::{Duration, Instant};

/// The largest thread count with its own pool; larger requests use this many threads.
const MAX_POOL_THREADS: usize = crate::gemm::MAX_THREADS;

/// How long an idle worker keeps spinning with `pause` before it starts yielding the core.
const SPIN: Duration = Duration::from_micros(200);

/// How long an idle worker keeps looking for work (spinning, then yielding) before it parks.
const STAY_AWAKE: Duration = Duration::from_millis(2);

/// Runs `f(0) .. f(jobs - 1)`, each exactly once, on the calling thread and the
/// `threads - 1` workers of the pool for `threads`; returns when all have finished.
///
/// Each participant starts on its own contiguous run of job indices. When the pool is already busy
/// (another caller, or a call from inside a job) the calling thread runs every job itself,
/// so the call never waits for another one. A panic in a job is re-raised here after the
/// other jobs finished.
pub(crate) fn run(threads: usize, jobs: usize, f: &(dyn Fn(usize) + Sync)) {
    if threads <= 1 || jobs <= 1 {
        (0..jobs).for_each(f);
        return;
    }
    let pool = pool(threads.min(MAX_POOL_THREADS));
    match pool.caller.try_lock() {
        Ok(_only_caller) => pool.shared.run(jobs, f),
        Err(TryLockError::WouldBlock | TryLockError::Poisoned(_)) => (0..jobs).for_each(f),
    }
}

/// The pool for `threads` threads (the caller plus `threads - 1` workers), built on first use
/// and kept for the life of the process.
fn pool(threads: usize) -> &'static SpinPool {
    static POOLS: [OnceLock<SpinPool>; MAX_POOL_THREADS + 1] =
        [const { OnceLock::new() }; MAX_POOL_THREADS + 1];
    POOLS[threads].get_or_init(|| SpinPool::start(threads - 1))
}

struct SpinPool {
    shared: Arc<Shared>,
    /// Held by the one thread whose call the workers are serving.
    caller: Mutex<()>,
}

impl SpinPool {
    fn start(workers: usize) -> SpinPool {
        let shared = Arc::new(Shared {
            workers,
            epoch: AtomicUsize::new(0),
            region: Mutex::new(None),
            sleepers: Mutex::new(0),
            wake: Condvar::new(),
        });
        for i in 1..=workers {
            let s = shared.clone();
            // A worker that cannot be spawned only means fewer helpers: the caller and the
            // other workers still drain every job.
            let _ = thread::Builder::new()
                .name(format!("q8-kernel-{i}"))
                .spawn(move || s.serve(i));
        }
        SpinPool {
            shared,
            caller: Mutex::new(()),
        }
    }
}

/// One parallel call: the erased job closure and its counters.
///
/// The jobs are cut into one contiguous segment per participant (the caller is 0, worker `i`
/// is `i + 1`): a participant works through its own segment in order, which keeps the data
/// of neighbouring jobs (a B panel chunk, a row block) on one core, then helps with the
/// others' segments.
struct Region {
    /// Valid while `done < jobs`: [`Shared::run`] does not return before that.
    f: *const (dyn Fn(usize) + Sync + 'static),
    segments: Box<[Segment]>,
    done: AtomicUsize,
    panicked: AtomicBool,
}

/// Jobs `next..end` of one segment are still unclaimed (`next` may run past `end`).
struct Segment {
    next: AtomicUsize,
    end: usize,
}

// SAFETY: `f` points to a `Sync` closure, so calling it from several threads is allowed;
// it is dereferenced only for claimed jobs, while the publishing call waits for all of them
// (see `Region::f`).
unsafe impl Send for Region {}
// SAFETY: as for `Send`; the counters are atomics and the segments are not mutated.
unsafe impl Sync for Region {}

impl Region {
    fn new(f: &'static (dyn Fn(usize) + Sync), jobs: usize, participants: usize) -> Region {
        let bound = |p: usize| jobs * p / participants;
        Region {
            f,
            segments: (0..participants)
                .map(|p| Segment {
                    next: AtomicUsize::new(bound(p)),
                    end: bound(p + 1),
                })
                .collect(),
            done: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
        }
    }

    /// Participant `p` claims and runs jobs until none is left, its own segment first; a
    /// panicking job is counted and flagged.
    fn drain(&self, p: usize) {
        let n = self.segments.len();
        for seg in (0..n).map(|s| &self.segments[(p + s) % n]) {
            loop {
                let i = seg.next.fetch_add(1, Ordering::Relaxed);
                if i >= seg.end {
                    break;
                }
                // SAFETY: job `i` was claimed by this thread alone, so `done < jobs` until
                // it is counted below, and the publisher keeps the closure alive until then.
                let f = unsafe { &*self.f };
                if panic::catch_unwind(AssertUnwindSafe(|| f(i))).is_err() {
                    self.panicked.store(true, Ordering::Relaxed);
                }
                self.done.fetch_add(1, Ordering::Release);
            }
        }
    }
}

struct Shared {
    /// Worker threads (participant ids 1..=workers).
    workers: usize,
    /// Bumped once per published region.
    epoch: AtomicUsize,
    region: Mutex<Option<Arc<Region>>>,
    /// Workers asleep on `wake`; guarded for the lost-wakeup check.
    sleepers: Mutex<usize>,
    wake: Condvar,
}

impl Shared {
    fn run(&self, jobs: usize, f: &(dyn Fn(usize) + Sync)) {
        // SAFETY: only the lifetime is erased; this function does not return (or unwind)
        // before every job has finished, so the closure outlives each use (`Region::f`).
        let f: &'static (dyn Fn(usize) + Sync) = unsafe { std::mem::transmute(f) };
        let region = Arc::new(Region::new(f, jobs, self.workers + 1));
        *lock(&self.region) = Some(region.clone());
        self.epoch.fetch_add(1, Ordering::Release);
        if *lock(&self.sleepers) > 0 {
            self.wake.notify_all();
        }
        region.drain(0);
        while region.done.load(Ordering::Acquire) < jobs {
            std::hint::spin_loop();
        }
        *lock(&self.region) = None;
        if region.panicked.load(Ordering::Relaxed) {
            panic!("a q8 kernel job panicked");
        }
    }

    /// A worker's loop: wait for a new epoch, help with its region, repeat.
    fn serve(&self, id: usize) {
        let mut seen = self.epoch.load(Ordering::Acquire);
        loop {
            seen = self.wait_for_epoch(seen);
            let region = lock(&self.region).clone();
            if let Some(r) = region {
                r.drain(id);
            }
        }
    }

    /// Returns the first epoch different from `seen`: spinning, then yielding, then parked.
    fn wait_for_epoch(&self, seen: usize) -> usize {
        let start = Instant::now();
        let mut polls = 0u32;
        loop {
            let e = self.epoch.load(Ordering::Acquire);
            if e != seen {
                return e;
            }
            polls = polls.wrapping_add(1);
            if !polls.is_multiple_of(64) {
                std::hint::spin_loop();
                continue;
            }
            let idle = start.elapsed();
            if idle >= STAY_AWAKE {
                return self.park(seen);
            }
            if idle >= SPIN {
                thread::yield_now();
            }
        }
    }

    fn park(&self, seen: usize) -> usize {
        let mut sleepers = lock(&self.sleepers);
        *sleepers += 1;
        let mut e = self.epoch.load(Ordering::Acquire);
        while e == seen {
            sleepers = self.wake.wait(sleepers).unwrap_or_else(|p| p.into_inner());
            e = self.epoch.load(Ordering::Acquire);
        }
        *sleepers -= 1;
        e
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::run;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn every_job_runs_exactly_once() {
        for threads in [1, 2, 3] {
            for jobs in [0, 1, 2, 7, 100] {
                let hits: Vec<AtomicUsize> = (0..jobs).map(|_| AtomicUsize::new(0)).collect();
                run(threads, jobs, &|i| {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                });
                assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
            }
        }
    }

    #[test]
    fn nested_and_concurrent_calls_complete() {
        let total = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    for _ in 0..50 {
                        run(2, 4, &|_| {
                            run(2, 3, &|_| {
                                total.fetch_add(1, Ordering::Relaxed);
                            })
                        });
                    }
                });
            }
        });
        assert_eq!(total.load(Ordering::Relaxed), 3 * 50 * 4 * 3);
    }

    #[test]
    fn a_panicking_job_panics_the_caller_after_the_others() {
        let done = AtomicUsize::new(0);
        let r = std::panic::catch_unwind(|| {
            run(2, 16, &|i| {
                if i == 5 {
                    panic!("job 5");
                }
                done.fetch_add(1, Ordering::Relaxed);
            })
        });
        assert!(r.is_err());
        assert_eq!(done.load(Ordering::Relaxed), 15);
        // The pool still serves later calls.
        let n = AtomicUsize::new(0);
        run(2, 8, &|_| {
            n.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(n.load(Ordering::Relaxed), 8);
    }
}
