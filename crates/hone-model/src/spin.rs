//! A pool of spinning helper threads for host decoding ([`crate::decode`]): matrix products split
//! into blocks of rows, and a batch's per-sequence work (attention, sampling).
//!
//! Decoding one token of SmolLM2 multiplies by about 120 matrices, each 50-150 µs of work split
//! across the cores. Through rayon a helper went to sleep between two products and was woken by a
//! futex for the next: on a 2-core Intel Xeon two threads decoded no faster than one (62 tokens/s
//! on Q8_0 with either, 31 against 23 on f32) while llama.cpp, whose threads spin between
//! operations, gained 1.7-1.9x. Here helpers wait for the next job for a while ([`SPIN`]) before
//! parking, so the next product of the same token finds them awake (106 tokens/s on Q8_0, 42 on
//! f32, before prefetching). Parts are claimed one at a time, by the caller too, so a helper that
//! is slow to wake holds nothing up.
//!
//! One caller at a time: a second concurrent caller (another model's decoding thread) runs its
//! parts itself, serially, rather than waiting.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a helper waits for the next job before parking: longer than the gaps between the
/// products of one token (norms, attention, sampling), short enough that an idle server's helper
/// sleeps within a fraction of a millisecond. For the first [`SPIN_HOT`] it spins; after that it
/// yields its core between checks, so that other runnable threads (a server's connections, a load
/// generator) are not starved by the wait.
const SPIN: Duration = Duration::from_micros(300);
const SPIN_HOT: Duration = Duration::from_micros(30);

/// A part function borrowed from the caller of [`run`] for the job's duration.
type Job = *const (dyn Fn(usize) + Sync);

/// Bits of [`Pool::claim`] holding the next unclaimed part; the job's epoch is above them.
const PART_BITS: u32 = 32;
const PART_MASK: u64 = (1 << PART_BITS) - 1;

struct Pool {
    /// Threads including the caller's.
    threads: usize,
    /// Held by the caller of [`run`] while its job is out.
    busy: Mutex<()>,
    /// `epoch << 32 | next part`: the current job and its first unclaimed part. A part is claimed by
    /// a compare-and-swap that also checks the epoch, so a helper that read a job late can never
    /// claim a part of the next one.
    claim: AtomicU64,
    /// The current job: its epoch, function and number of parts.
    job: Mutex<Option<(u64, SendJob, usize)>>,
    /// Parts of the current job finished.
    done: AtomicUsize,
    /// Set when a helper's part panicked; the caller re-raises it.
    panicked: AtomicBool,
    /// Helpers parked on `wake`.
    sleepers: AtomicUsize,
    sleep: Mutex<()>,
    wake: Condvar,
}

/// [`Job`] crossing to the helpers.
#[derive(Clone, Copy)]
struct SendJob(Job);
// SAFETY: the function is `Sync`; helpers call it only for parts they claimed, each of which the
// caller of `run` waits for before the borrow ends.
unsafe impl Send for SendJob {}

fn pool() -> &'static Pool {
    static POOL: OnceLock<&'static Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let threads = rayon::current_num_threads().max(1);
        let p: &'static Pool = Box::leak(Box::new(Pool {
            threads,
            busy: Mutex::new(()),
            claim: AtomicU64::new(0),
            job: Mutex::new(None),
            done: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            sleep: Mutex::new(()),
            wake: Condvar::new(),
        }));
        for k in 1..threads {
            std::thread::Builder::new()
                .name(format!("hone-decode-{k}"))
                .spawn(move || helper(p))
                .expect("cannot start a decoding helper thread");
        }
        p
    })
}

/// Claims and runs parts of job `epoch` until none is left; the panic of a part that panicked.
fn work(p: &Pool, epoch: u64, f: &(dyn Fn(usize) + Sync), parts: usize) -> Option<Box<dyn std::any::Any + Send>> {
    let mut failure = None;
    loop {
        let cur = p.claim.load(SeqCst);
        let k = (cur & PART_MASK) as usize;
        if cur >> PART_BITS != epoch || k >= parts {
            return failure;
        }
        if p.claim.compare_exchange(cur, cur + 1, SeqCst, SeqCst).is_ok() {
            if let Err(e) = catch_unwind(AssertUnwindSafe(|| f(k))) {
                // Before the part counts as done, so the caller sees the flag once all are done.
                p.panicked.store(true, SeqCst);
                failure = Some(e);
            }
            p.done.fetch_add(1, SeqCst);
        }
    }
}

fn helper(p: &'static Pool) {
    let mut seen = 0;
    loop {
        let start = Instant::now();
        let mut spins = 0u32;
        while p.claim.load(SeqCst) >> PART_BITS == seen {
            spins += 1;
            if !spins.is_multiple_of(64) {
                std::hint::spin_loop();
                continue;
            }
            let waited = start.elapsed();
            if waited > SPIN {
                let mut g = p.sleep.lock().unwrap_or_else(|e| e.into_inner());
                p.sleepers.fetch_add(1, SeqCst);
                while p.claim.load(SeqCst) >> PART_BITS == seen {
                    g = p.wake.wait(g).unwrap_or_else(|e| e.into_inner());
                }
                p.sleepers.fetch_sub(1, SeqCst);
            } else if waited > SPIN_HOT {
                std::thread::yield_now();
            }
        }
        let Some((epoch, SendJob(job), parts)) = *p.job.lock().unwrap_or_else(|e| e.into_inner()) else { continue };
        seen = epoch;
        // SAFETY: `work` calls the function only for parts of `epoch` it claimed, and the caller of
        // `run` keeps it borrowed until every claimed part is done.
        let f = unsafe { &*job };
        // A panic is flagged for the caller inside `work`.
        let _ = work(p, epoch, f, parts);
    }
}

/// Threads [`run`] splits a job across (the caller's included): rayon's thread count.
pub fn threads() -> usize {
    pool().threads
}

/// Runs `f(k)` for every `k` in `0..parts`, claimed one at a time by the calling thread and the
/// helpers, and returns when all have finished: a helper that is slow to wake leaves its parts to
/// the others rather than holding them up. Runs every part on the caller when the pool is busy with
/// another caller's job. A panic in any part is raised here, after every part has finished.
pub fn run(parts: usize, f: &(dyn Fn(usize) + Sync)) {
    let p = pool();
    let guard = match p.busy.try_lock() {
        _ if p.threads == 1 || parts < 2 => None,
        Ok(g) => Some(g),
        // A part panicked under an earlier job; every part had finished before the unwinding.
        Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    };
    let Some(_busy) = guard else {
        (0..parts).for_each(f);
        return;
    };
    let epoch = (p.claim.load(SeqCst) >> PART_BITS) + 1;
    // SAFETY: only the lifetime is erased; this function returns only once every claimed part of
    // the job has finished, and no part can be claimed after that (the epoch moves on or the
    // parts are exhausted).
    let job: Job = unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync), Job>(f) };
    *p.job.lock().unwrap_or_else(|e| e.into_inner()) = Some((epoch, SendJob(job), parts));
    p.panicked.store(false, SeqCst);
    p.done.store(0, SeqCst);
    p.claim.store(epoch << PART_BITS, SeqCst);
    if p.sleepers.load(SeqCst) > 0 {
        let _g = p.sleep.lock().unwrap_or_else(|e| e.into_inner());
        p.wake.notify_all();
    }
    let failure = work(p, epoch, f, parts);
    let mut spins = 0u32;
    while p.done.load(SeqCst) < parts {
        spins += 1;
        if spins > 1 << 12 {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
    if let Some(e) = failure {
        resume_unwind(e);
    }
    if p.panicked.load(SeqCst) {
        panic!("a decoding helper thread panicked");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn every_part_runs_once_per_job() {
        for round in 0..2000u64 {
            let seen: Vec<AtomicU64> = (0..1 + round as usize % 9).map(|_| AtomicU64::new(0)).collect();
            run(seen.len(), &|k| {
                seen[k].fetch_add(round + 1, SeqCst);
            });
            for s in &seen {
                assert_eq!(s.load(SeqCst), round + 1);
            }
            // Now and then let the helpers park, to cover waking them.
            if round % 500 == 0 {
                std::thread::sleep(SPIN * 3);
            }
        }
    }

    #[test]
    fn concurrent_callers_each_get_all_their_parts() {
        let total = AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    for _ in 0..500 {
                        run(5, &|_| {
                            total.fetch_add(1, SeqCst);
                        });
                    }
                });
            }
        });
        assert_eq!(total.load(SeqCst), 3 * 500 * 5);
    }

    #[test]
    fn a_panicking_part_is_raised_to_the_caller_and_the_pool_still_works() {
        for bad in 0..4 {
            let r = catch_unwind(|| {
                run(4, &|k| {
                    if k == bad {
                        panic!("part {k} fails");
                    }
                })
            });
            assert!(r.is_err());
            let n = AtomicU64::new(0);
            run(4, &|_| {
                n.fetch_add(1, SeqCst);
            });
            assert_eq!(n.load(SeqCst), 4);
        }
    }
}
