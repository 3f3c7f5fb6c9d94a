//! The pieces of multi-threaded stepping that know nothing of neurons: how a population is
//! split among threads, and the barrier threads meet at between the phases of a step.
//!
//! Threads own disjoint, contiguous ranges of every population ([`split_evenly`]); the
//! scheduler (`schedule.rs`) runs the kernels of a thread's ranges, and delivers and drains
//! the input of the targets in them, so nothing on the per-step path is shared for writing
//! and nothing is locked. Between phases threads wait at a [`SpinBarrier`]. This module must
//! not know the order of phases or what a phase does; that is `schedule.rs`'s.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Elements per cache line of `f64`: range bounds are multiples of it, so two threads never
/// write the same cache line of a state array.
const ALIGN: usize = 8;

/// Splits `0..n` into `parts` contiguous ranges of nearly equal size, each starting at a
/// multiple of 8 (ranges at the end may be empty). Returns the `parts + 1` bounds.
pub fn split_evenly(n: usize, parts: usize) -> Vec<usize> {
    let parts = parts.max(1);
    let chunk = n.div_ceil(parts).div_ceil(ALIGN) * ALIGN;
    (0..=parts).map(|i| (i * chunk).min(n)).collect()
}

/// The number of hardware threads, or 1 when it cannot be told.
pub fn available_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Neurons below which another thread costs more at the barriers than it saves.
const NEURONS_PER_THREAD: usize = 500;

/// The thread count to use when the user names none, for a network of `neurons` neurons:
/// one per core that other processes are not already using (by the one-minute load average,
/// where the system reports it), and at most one per 500 neurons.
///
/// Threads advance in lockstep, meeting at a barrier every step, so a thread that has to wait
/// for a core stalls all of them: on a machine whose cores are busy, fewer threads are
/// faster. Results do not depend on the count, so this only affects speed.
pub fn default_threads(neurons: usize) -> usize {
    let busy = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0, |load| load.max(0.0).floor() as usize);
    threads_for(available_threads(), busy, neurons)
}

/// The warning for a thread count the user chose above the cores this process may use, if
/// it is: results stay the same, but the run can be many times slower.
///
/// Threads meet at a barrier every step, so with more threads than cores every step waits
/// for a thread that waits for a core (on 2 cores, 3 threads ran a 1,000-neuron network about 40x
/// slower than 2). The count is kept, not capped: the user may want exactly it, for example
/// to check that results do not depend on it.
pub fn oversubscription_warning(threads: usize) -> Option<String> {
    warning_for(threads, available_threads())
}

/// [`oversubscription_warning`] on a machine with `cores` cores.
fn warning_for(threads: usize, cores: usize) -> Option<String> {
    (threads > cores).then(|| {
        format!(
            "--threads {threads} is more than the {cores} core{} this process may use: threads \
             wait for each other every step, so a thread waiting for a core stalls them all and \
             the run may be many times slower than with --threads {cores} (results are the same)",
            if cores == 1 { "" } else { "s" }
        )
    })
}

/// [`default_threads`] for `cores` cores of which `busy` are in use.
fn threads_for(cores: usize, busy: usize, neurons: usize) -> usize {
    let free = cores.saturating_sub(busy).max(1);
    free.min(neurons / NEURONS_PER_THREAD).max(1)
}

/// A reusable barrier for a fixed number of threads that spins briefly before yielding.
///
/// A step of a small network takes microseconds, far less than a futex wake-up, so threads
/// spin; after a while they yield the core, so that a machine with fewer free cores than
/// threads still makes progress. `wait` synchronises memory: everything a thread wrote before
/// `wait` is visible to every thread after it.
#[derive(Debug)]
pub struct SpinBarrier {
    threads: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
}

/// Spins before the first yield; a few microseconds on current hardware.
const SPINS_BEFORE_YIELD: u32 = 2_000;

impl SpinBarrier {
    pub fn new(threads: usize) -> Self {
        SpinBarrier {
            threads: threads.max(1),
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
        }
    }

    /// Blocks until all threads have called `wait` for the same generation.
    pub fn wait(&self) {
        if self.threads == 1 {
            return;
        }
        let generation = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.threads {
            self.arrived.store(0, Ordering::Relaxed);
            self.generation
                .store(generation.wrapping_add(1), Ordering::Release);
            return;
        }
        let mut spins = 0u32;
        while self.generation.load(Ordering::Acquire) == generation {
            if spins < SPINS_BEFORE_YIELD {
                std::hint::spin_loop();
                spins += 1;
            } else {
                std::thread::yield_now();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn default_threads_leave_busy_cores_and_small_networks_alone() {
        assert_eq!(threads_for(16, 0, 1_000_000), 16);
        assert_eq!(threads_for(16, 3, 1_000_000), 13);
        assert_eq!(threads_for(2, 6, 1_000_000), 1);
        assert_eq!(threads_for(16, 0, 4000), 8);
        assert_eq!(threads_for(16, 0, 10), 1);
        assert_eq!(threads_for(1, 0, 0), 1);
        let n = default_threads(1_000_000);
        assert!((1..=available_threads()).contains(&n));
    }

    #[test]
    fn more_threads_than_cores_are_warned_about() {
        assert_eq!(warning_for(2, 2), None);
        assert_eq!(warning_for(1, 16), None);
        let warning = warning_for(3, 2).expect("3 threads on 2 cores");
        assert!(
            warning.starts_with("--threads 3 is more than the 2 cores"),
            "{warning}"
        );
        assert!(warning.contains("--threads 2"), "{warning}");
        assert!(warning_for(2, 1).unwrap().contains("the 1 core this"));
        assert_eq!(oversubscription_warning(available_threads()), None);
    }

    #[test]
    fn splits_cover_the_range_in_aligned_chunks() {
        for n in [0usize, 1, 7, 8, 9, 100, 3200, 4001] {
            for parts in 1..=17 {
                let b = split_evenly(n, parts);
                assert_eq!(b.len(), parts + 1);
                assert_eq!((b[0], b[parts]), (0, n), "n {n} parts {parts}");
                assert!(b.windows(2).all(|w| w[0] <= w[1]));
                assert!(b.iter().all(|&x| x % ALIGN == 0 || x == n));
                let largest = b.windows(2).map(|w| w[1] - w[0]).max().unwrap();
                assert!(
                    largest <= n.div_ceil(parts) + ALIGN,
                    "n {n} parts {parts}: {b:?}"
                );
            }
        }
    }

    /// Each thread adds its id to a shared sum in every round and checks after the barrier
    /// that all threads' additions of the round are visible.
    #[test]
    fn barrier_separates_rounds() {
        let threads = 4;
        let barrier = SpinBarrier::new(threads);
        let sum = AtomicU64::new(0);
        std::thread::scope(|s| {
            for id in 0..threads as u64 {
                let (barrier, sum) = (&barrier, &sum);
                s.spawn(move || {
                    for round in 1..=200u64 {
                        sum.fetch_add(id + 1, Ordering::Relaxed);
                        barrier.wait();
                        assert_eq!(sum.load(Ordering::Relaxed), round * 10);
                        barrier.wait();
                    }
                });
            }
        });
    }
}
