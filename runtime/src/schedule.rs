//! The step loop: the order of events within one time step, and the meaning of a delay.
//!
//! This module owns the order in which a [`Network`] is advanced. It does not know how kernels
//! were produced: each population is updated by a [`PopulationKernel`], which may be compiled
//! code behind the C ABI ([`NativeKernel`]), an interpreter, or a hand-written test kernel.
//!
//! # One step
//!
//! Step `k` advances the network from `t = k·dt` to `t = (k + 1)·dt`. It follows Brian2's
//! default order, the one the reference networks assume, in six phases:
//!
//! 1. **Timed inputs**: each [`TimedInput`](crate::inputs::TimedInput) writes its row
//!    `floor(k / every_steps)` (the last row is held after the table ends) into its array.
//! 2. **Neurons**: each population's kernel runs over all its neurons, in population order. It
//!    integrates from `t` to `t + dt`, tests the threshold, resets, handles refractoriness and
//!    emits the indices of the neurons that spiked; all of that happens inside the kernel.
//!    Then each spike source emits its events of step `k`.
//! 3. **Spike recording**: a neuron spike of step `k` is recorded with time `(k + 1)·dt`, the
//!    end of the step in which the threshold was crossed (NEST's convention). A spike-source
//!    event of step `k` is recorded with its own time `k·dt`, so the user's input times come
//!    back unchanged (after rounding to steps).
//! 4. **Delivery**: for each projection, in projection order, for each spike of its
//!    presynaptic node in step `k` (in the order the kernel emitted them), every synapse `s` of
//!    that row adds `weights[s]` into the ring slot of step `k + delay[s]`. A projection whose
//!    delays are all zero and whose target array is `f64` has no use for a ring (phase 5 would
//!    add the slot right away): its weights are added straight into the target array, one by
//!    one, as Brian2's `v_post += w` does (`delays::deliver_row_direct`).
//! 5. **Ring to state**: for each projection that went through its ring, in projection order,
//!    the ring slot of step `k` is added into the target array of the post population
//!    (`post.arrays[target_array][i] += slot[i]` wherever `slot[i]` is not zero), then cleared
//!    and the ring advanced. Only targets that received spikes are visited when input is sparse.
//! 6. **Trace recording**: when `(k + 1)` is a multiple of a trace's `every_steps`, the state
//!    after the step (time `(k + 1)·dt`) is sampled, in the user's unit (SI value / scale).
//!
//! # Delays
//!
//! A spike of step `k` through a synapse of delay `d` steps reaches its target array at the end
//! of step `k + d` (phase 5) and is first seen by the target's update in step `k + d + 1`. A
//! delay of 0 is allowed: the input is added in the same step, after the thresholds, and is
//! visible to the next update. Measured in recorded spike times (`(k + 1)·dt`), a neuron spike
//! at time `t_s` changes the target's state sampled at `t_s + d·dt`.
//!
//! A spike-source event at `m·dt` is handled as a neuron spike of step `m`, so it reaches its
//! target at the end of step `m + d`, i.e. the state sampled at `(m + d + 1)·dt`.
//!
//! One difference from Brian2 follows from resets living inside the kernel: Brian2 delivers
//! `on pre` effects before resets, here resets happen first, so a delay-0 input to a neuron
//! that spiked in the same step is added to its reset value rather than overwritten by it.
//!
//! # Threads and determinism
//!
//! A [`Simulation`] runs on a fixed number of threads, each owning a contiguous range of every
//! population: it runs the compiled kernel on its neurons and delivers and drains the input of
//! its neurons (its part of every delay ring, reading all threads' spikes). Phases 1, 3 and 6
//! and the interpreted kernels are thread 0's; threads meet at a barrier between phases (see
//! `step_loop`). Every sum is taken in a fixed order (projections in order, spikes in element
//! order, synapses in CSR order), whichever thread takes it, so floating-point results are
//! the same on every run and for every thread count; random numbers are counter-based and
//! keyed by seed, element and step.
//!
//! # Interruption
//!
//! If anything fails mid-run (a kernel error, a recording error), the recorders are finished
//! with [`RunStatus::Interrupted`] before the error is returned, so the output directory holds
//! valid files with everything recorded up to the failing step and a manifest saying the run
//! was interrupted. The network is then left in the middle of a step and should not be run
//! further. After a successful run recording is NOT finished, because runs can be chained; the
//! caller calls [`Network::finish_recording`] with [`RunStatus::Complete`] at the end.

use std::cell::UnsafeCell;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::abi::{KernelContext, KernelFn};
use crate::array::{Array, Precision};
use crate::connectivity::Connectivity;
use crate::delays::{deliver_row_direct, deliver_row_part, RingPart, RowWeights};
use crate::error::RuntimeError;
use crate::network::{Network, Node, Population, Projection, Weights};
use crate::parallel::{split_evenly, SpinBarrier};
use crate::plasticity::ProjectionHandlers;
use crate::record::RunStatus;

/// Updates one population for one step (phase 2 of the step loop).
pub trait PopulationKernel {
    /// Advances every neuron of `population` from `t` (the start of step `step`, in seconds) to
    /// `t + dt`, appending the indices of neurons that spiked to `spikes` (which the caller
    /// has cleared). Indices must be `< population.size`.
    fn update(
        &mut self,
        population: &mut Population,
        step: u64,
        t: f64,
        spikes: &mut Vec<u32>,
    ) -> Result<(), RuntimeError>;

    /// The compiled function behind the kernel, if it is one. The scheduler then calls it
    /// directly, on disjoint ranges of neurons from several threads, instead of `update`.
    fn native(&self) -> Option<NativeFunction> {
        None
    }
}

/// A compiled kernel function with what a call needs besides the arrays.
#[derive(Clone, Copy, Debug)]
pub struct NativeFunction {
    pub function: KernelFn,
    pub stream_key: u64,
    pub n_arrays: usize,
}

/// A kernel compiled to native code behind the C ABI of [`crate::abi`].
#[derive(Debug)]
pub struct NativeKernel {
    function: KernelFn,
    stream_key: u64,
    n_arrays: usize,
    /// The array pointer table, refilled for each call and cleared after it.
    pointers: Vec<*mut f64>,
}

// SAFETY: the pointer table only holds pointers while `update` runs (it is cleared before
// `update` returns), and then only to arrays borrowed mutably for that call; between calls a
// `NativeKernel` is a function pointer and two integers.
unsafe impl Send for NativeKernel {}

impl NativeKernel {
    /// Wraps a compiled kernel that expects `n_arrays` arrays and draws from the random stream
    /// with key `stream_key` ([`crate::rng::Stream::key`]).
    ///
    /// # Safety
    ///
    /// Every call of `function` with a [`KernelContext`] whose `arrays` point to `n_arrays`
    /// pointers to arrays of at least `end` elements, with any `start <= end`, `spikes`
    /// pointing to room for `end - start` u32 values and `n_spikes = 0` must:
    /// - read and write only elements `start..end` of those arrays, and the context itself;
    /// - write at most `end - start` spike indices to `spikes[0..n_spikes]`, setting
    ///   `n_spikes` to the number written;
    /// - keep no pointer from the context after returning, and not unwind.
    ///
    /// `update` checks `n_spikes` and the spike indices after the call and reports violations
    /// as errors, but it cannot detect out-of-bounds accesses.
    pub unsafe fn new(function: KernelFn, stream_key: u64, n_arrays: usize) -> Self {
        NativeKernel {
            function,
            stream_key,
            n_arrays,
            pointers: Vec::with_capacity(n_arrays),
        }
    }
}

impl PopulationKernel for NativeKernel {
    fn update(
        &mut self,
        population: &mut Population,
        step: u64,
        t: f64,
        spikes: &mut Vec<u32>,
    ) -> Result<(), RuntimeError> {
        let size = population.size;
        let context = || format!("population '{}'", population.name);
        if population.arrays.len() != self.n_arrays {
            return Err(RuntimeError::invalid(
                context(),
                format!(
                    "the kernel expects {} arrays but the population has {}",
                    self.n_arrays,
                    population.arrays.len()
                ),
            ));
        }
        if let Some(a) = population.arrays.iter().position(|a| a.len() != size) {
            return Err(RuntimeError::invalid(
                context(),
                format!(
                    "array #{a} has {} elements, expected {size}",
                    population.arrays[a].len()
                ),
            ));
        }
        spikes.reserve(size);
        let already = spikes.len();
        self.pointers.clear();
        self.pointers
            .extend(population.arrays.iter_mut().map(|a| a.as_mut_ptr()));
        let mut ctx = KernelContext {
            arrays: self.pointers.as_ptr(),
            start: 0,
            end: size as u64,
            step,
            t,
            stream_key: self.stream_key,
            spikes: spikes.spare_capacity_mut().as_mut_ptr().cast::<u32>(),
            n_spikes: 0,
            gather: [std::ptr::null(); crate::abi::GATHERS],
        };
        // SAFETY: the context satisfies the layout promised in `NativeKernel::new`: `n_arrays`
        // valid pointers to arrays of `size` elements, borrowed mutably for this call only;
        // `spikes` has spare capacity for `size` entries after `already`. The caller of `new`
        // vouched that `function` stays within these bounds.
        unsafe { (self.function)(&mut ctx) };
        self.pointers.clear();
        let n = ctx.n_spikes;
        if n > size as u64 {
            return Err(RuntimeError::invalid(
                context(),
                format!("the kernel reported {n} spikes at step {step} for {size} neurons"),
            ));
        }
        // SAFETY: `n <= size <= spare capacity`, and the kernel initialised the first `n`
        // entries after `already` (contract of `NativeKernel::new`).
        unsafe { spikes.set_len(already + n as usize) };
        if let Err(e) = check_spikes(&population.name, size, step, &spikes[already..], 0..size) {
            spikes.truncate(already);
            return Err(e);
        }
        Ok(())
    }

    fn native(&self) -> Option<NativeFunction> {
        Some(NativeFunction {
            function: self.function,
            stream_key: self.stream_key,
            n_arrays: self.n_arrays,
        })
    }
}

/// What a run did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunStats {
    /// Steps completed in this run.
    pub steps: u64,
    /// Spikes per population, in population order.
    pub population_spikes: Vec<u64>,
    /// Events emitted per spike source, in source order.
    pub source_spikes: Vec<u64>,
    /// Synaptic events: one per synapse of every spiking presynaptic row.
    pub synaptic_events: u64,
    /// Wall time of the step loop.
    pub wall_time: Duration,
    /// Threads that ran the steps.
    pub threads: usize,
}

impl RunStats {
    pub fn total_spikes(&self) -> u64 {
        self.population_spikes.iter().sum()
    }
}

/// Runs networks with a fixed number of threads.
#[derive(Debug)]
pub struct Simulation {
    /// The least wall time between two progress reports (besides the first and last).
    pub progress_interval: Duration,
    threads: usize,
}

impl Default for Simulation {
    fn default() -> Self {
        Self::new()
    }
}

impl Simulation {
    /// A simulation on one thread.
    pub fn new() -> Self {
        Self::with_threads(1)
    }

    /// A simulation on `threads` threads (at least 1). Results do not depend on it.
    pub fn with_threads(threads: usize) -> Self {
        Simulation {
            progress_interval: Duration::from_millis(100),
            threads: threads.max(1),
        }
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `steps` steps from `network.step`, with `kernels[p]` updating population `p`.
    ///
    /// `progress(done, total)` is called once at the start, at 1% boundaries of `steps` when
    /// at least [`Self::progress_interval`] has passed since the previous call, and once at
    /// the end. On an error after stepping started, recording is finished as interrupted (see
    /// the module documentation) and the error is returned.
    pub fn run(
        &mut self,
        network: &mut Network,
        kernels: &mut [Box<dyn PopulationKernel + '_>],
        steps: u64,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<RunStats, RuntimeError> {
        self.run_with_plasticity(network, kernels, &mut [], steps, progress)
    }

    /// As [`Self::run`], with the handler kernels of the network's plastic projections (one
    /// [`ProjectionHandlers`] per plastic projection; see `plasticity.rs`).
    pub fn run_with_plasticity(
        &mut self,
        network: &mut Network,
        kernels: &mut [Box<dyn PopulationKernel + '_>],
        handlers: &mut [ProjectionHandlers<'_>],
        steps: u64,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<RunStats, RuntimeError> {
        if let Some(p) = network
            .projections
            .iter()
            .enumerate()
            .find(|(i, p)| p.plasticity.is_some() && !handlers.iter().any(|h| h.projection == *i))
            .map(|(_, p)| p)
        {
            return Err(RuntimeError::invalid(
                format!("projection '{}'", p.name),
                "it is plastic but no handlers were given for it",
            ));
        }
        if kernels.len() != network.populations.len() {
            return Err(RuntimeError::invalid(
                "simulation",
                format!(
                    "{} kernels given for {} populations",
                    kernels.len(),
                    network.populations.len()
                ),
            ));
        }
        if network.step.checked_add(steps).is_none() {
            return Err(RuntimeError::invalid(
                "simulation",
                format!(
                    "{steps} steps from step {} overflow the step counter",
                    network.step
                ),
            ));
        }
        network.validate()?;
        for (kernel, population) in kernels.iter().zip(&network.populations) {
            if let Some(native) = kernel.native() {
                if native.n_arrays != population.arrays.len() {
                    return Err(RuntimeError::invalid(
                        format!("population '{}'", population.name),
                        format!(
                            "the kernel expects {} arrays but the population has {}",
                            native.n_arrays,
                            population.arrays.len()
                        ),
                    ));
                }
            }
        }
        let threads = self.threads;
        let bounds: Vec<Vec<usize>> = network
            .populations
            .iter()
            .map(|p| split_evenly(p.size, threads))
            .collect();
        for projection in &mut network.projections {
            // A plastic projection is stepped by thread 0 alone (phase 3): one part.
            let post_size = network.populations[projection.post].size;
            match projection.plasticity {
                None => projection.ring.split_at(&bounds[projection.post])?,
                Some(_) => projection.ring.split_at(&[0, post_size])?,
            }
        }
        let mut stats = RunStats {
            steps: 0,
            population_spikes: vec![0; network.populations.len()],
            source_spikes: vec![0; network.sources.len()],
            synaptic_events: 0,
            wall_time: Duration::ZERO,
            threads,
        };
        let started = Instant::now();
        let result = step_loop(
            network,
            kernels,
            handlers,
            &bounds,
            steps,
            self.progress_interval,
            progress,
            &mut stats,
        );
        stats.wall_time = started.elapsed();
        match result {
            Ok(()) => Ok(stats),
            Err(error) => {
                let reason = format!("stopped at step {}: {error}", network.step);
                // The run's own error matters more than a failure to write partial output;
                // the recorder attempts every file regardless.
                let _ = network.finish_recording(RunStatus::Interrupted { reason });
                Err(error)
            }
        }
    }
}

/// A pointer that threads may share because the step's phases keep their accesses apart
/// (see [`step_loop`]).
struct Shared<T>(*mut T);

// SAFETY: see `step_loop`: between two barriers, every element behind a `Shared` pointer is
// written by at most one thread and then not read by another.
unsafe impl<T> Send for Shared<T> {}
unsafe impl<T> Sync for Shared<T> {}

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Shared<T> {}

/// A value one thread writes in one phase and every thread reads in the next.
struct PhaseCell<T>(UnsafeCell<T>);

// SAFETY: see `step_loop`: the owner writes only while the others wait at a barrier or work
// on other cells, and readers read only after the barrier that follows the write.
unsafe impl<T: Send> Sync for PhaseCell<T> {}

impl<T> PhaseCell<T> {
    /// # Safety
    /// No other thread accesses the cell until the next barrier.
    #[allow(clippy::mut_from_ref)]
    unsafe fn get_mut(&self) -> &mut T {
        // SAFETY: the caller's promise.
        unsafe { &mut *self.0.get() }
    }

    /// # Safety
    /// No thread writes the cell until the next barrier.
    unsafe fn get(&self) -> &T {
        // SAFETY: the caller's promise.
        unsafe { &*self.0.get() }
    }
}

/// What every thread reads during the run.
struct StepShared<'a> {
    dt: f64,
    first_step: u64,
    steps: u64,
    threads: usize,
    barrier: SpinBarrier,
    failed: AtomicBool,
    errors: Mutex<Vec<(usize, RuntimeError)>>,
    /// Per population: the compiled kernel, when there is one.
    natives: Vec<Option<NativeFunction>>,
    /// Per population: its thread ranges.
    bounds: &'a [Vec<usize>],
    /// Per population: the population and its arrays' pointer table.
    populations: Vec<Shared<Population>>,
    array_tables: Vec<Vec<*mut f64>>,
    sizes: Vec<usize>,
    /// Per step parity, per thread, per population: the spikes of the thread's range in the
    /// step (index `parity * threads + thread`). Two sets, so that a thread may start the
    /// kernels of step k + 1 while another still delivers the spikes of step k.
    spikes: Vec<PhaseCell<Vec<Vec<u32>>>>,
    /// Per step parity, per spike source: its events of the step (written by thread 0).
    source_spikes: [PhaseCell<Vec<Vec<u32>>>; 2],
    /// Whether thread 0 updates some population whole (a kernel without compiled code): then
    /// every thread must finish delivering into it before the next step's kernels start.
    barrier_after_delivery: bool,
    projections: Vec<ProjectionView<'a>>,
    /// Whether the network has timed inputs, and the sampling interval of every trace: what
    /// decides whether thread 0 has work after a step (see [`Self::serial_after`]).
    has_inputs: bool,
    trace_intervals: Vec<u64>,
    /// Whether some projection is plastic, or the network has reductions: thread 0 steps
    /// those after every step.
    has_plastic: bool,
}

// SAFETY: the pointer tables are read-only during the run and the arrays behind them are
// accessed as `step_loop` describes.
unsafe impl Sync for StepShared<'_> {}

/// The read-only part of a projection.
struct ProjectionView<'a> {
    pre: Node,
    post: usize,
    target_array: usize,
    /// The element type of the target array, which delivery reaches through a raw pointer.
    target_precision: Precision,
    /// Whether spikes are added straight into the target array rather than through the ring
    /// (all delays zero, an `f64` target: phase 4 in the module documentation).
    direct: bool,
    connectivity: &'a Connectivity,
    weights: &'a Weights,
}

impl StepShared<'_> {
    /// Whether thread 0 has work after step `first_step + i` that needs the state to itself
    /// (the next step's timed inputs, or traces to sample); the same answer on every thread.
    fn serial_after(&self, i: u64) -> bool {
        let k = self.first_step + i;
        self.has_plastic
            || (self.has_inputs && i + 1 < self.steps)
            || self
                .trace_intervals
                .iter()
                .any(|every| (k + 1) % every == 0)
    }

    /// The pointer to population `p`; see `step_loop` for when it may be dereferenced.
    fn population(&self, p: usize) -> *mut Population {
        self.populations[p].0
    }

    fn fail(&self, thread: usize, error: RuntimeError) {
        self.errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((thread, error));
        self.failed.store(true, Ordering::Release);
    }

    /// The spike buffers of `thread` for step `k`.
    fn spike_cell(&self, thread: usize, k: u64) -> &PhaseCell<Vec<Vec<u32>>> {
        &self.spikes[(k % 2) as usize * self.threads + thread]
    }

    /// Waits for every thread; true when some thread failed, and all must stop.
    fn meet(&self) -> bool {
        self.barrier.wait();
        self.failed.load(Ordering::Acquire)
    }

    /// The spikes of `node` in step `k`, in element order, as slices.
    ///
    /// # Safety
    /// Only between the barrier after the kernels of step `k` and the kernels of step `k + 2`.
    unsafe fn spikes_of(&self, node: Node, k: u64) -> impl Iterator<Item = &[u32]> {
        let (population, source) = match node {
            Node::Population(p) => (Some(p), None),
            Node::Source(s) => (None, Some(s)),
        };
        let threads = population.map_or(0, |_| self.threads);
        // SAFETY: the caller's promise: no thread writes spike buffers in this phase.
        let of_threads = (0..threads).map(move |t| {
            let buffers = unsafe { self.spike_cell(t, k).get() };
            buffers[population.unwrap_or(0)].as_slice()
        });
        let of_source = source.into_iter().map(move |s| {
            let events = unsafe { self.source_spikes[(k % 2) as usize].get() };
            events[s].as_slice()
        });
        of_threads.chain(of_source)
    }
}

/// Steps the network on `bounds[p].len() - 1` threads (the calling thread is thread 0).
///
/// # How threads share the network
///
/// Thread `i` owns elements `bounds[p][i]..bounds[p][i + 1]` of every population `p`: it runs
/// the compiled kernel on them, and it delivers, through its own part of every ring, the
/// input of the targets among them and drains it into their arrays. A population without a
/// compiled kernel (the interpreter, test kernels) is updated whole by thread 0. A step has
/// up to three phases:
///
/// 1. kernels (each thread its ranges, thread 0 also the spike sources' events), then a
///    barrier: every spike of the step is known;
/// 2. delivery and draining (each thread its targets, reading every thread's spikes), while
///    thread 0 also records spikes and counts them;
/// 3. only on steps that need it (see [`StepShared::serial_after`]), a barrier, thread 0 alone
///    steps the plastic projections (their handlers, then their ring into the targets: they
///    are not split among threads), samples traces and applies the next step's timed inputs,
///    and a barrier.
///
/// Otherwise a thread goes straight from its phase 2 to the next step's phase 1: it touches
/// only its own ranges there, and spikes are double-buffered by step parity, so the next
/// kernels never overwrite spikes another thread is still delivering. The exception is a
/// population updated whole by thread 0, which must wait for every thread's delivery into it
/// (`barrier_after_delivery`).
///
/// Within a phase no two threads write the same element, and no thread reads an element
/// another writes, so the accesses through the shared pointers never race. Every target
/// receives its inputs in the same order as on one thread (spikes in element order, synapses
/// in row order, projections in order), so results are bitwise identical for any number of
/// threads.
#[allow(clippy::too_many_arguments)]
fn step_loop(
    network: &mut Network,
    kernels: &mut [Box<dyn PopulationKernel + '_>],
    handlers: &mut [ProjectionHandlers<'_>],
    bounds: &[Vec<usize>],
    steps: u64,
    progress_interval: Duration,
    progress: &mut dyn FnMut(u64, u64),
    stats: &mut RunStats,
) -> Result<(), RuntimeError> {
    let threads = stats.threads;
    let first_step = network.step;
    let Network {
        dt,
        populations,
        sources,
        projections,
        inputs,
        recording,
        reductions,
        step,
        ..
    } = network;

    // Every static projection's ring parts, by thread, in projection order; the rest of each
    // projection is read. Plastic projections are thread 0's, reached through the pointer.
    let projections_ptr = Shared(projections.as_mut_ptr());
    let n_projections = projections.len();
    let mut plastic = Vec::new();
    let mut parts_of_thread: Vec<Vec<&mut RingPart<f64>>> =
        (0..threads).map(|_| Vec::new()).collect();
    let mut views = Vec::with_capacity(projections.len());
    for (index, projection) in projections.iter_mut().enumerate() {
        if projection.plasticity.is_some() {
            plastic.push(index);
            continue;
        }
        let Projection {
            pre,
            post,
            target_array,
            connectivity,
            weights,
            ring,
            ..
        } = projection;
        let target_precision = populations
            .get(*post)
            .and_then(|p| p.arrays.get(*target_array))
            .map_or(Precision::F64, Array::precision);
        views.push(ProjectionView {
            pre: *pre,
            post: *post,
            target_array: *target_array,
            target_precision,
            direct: connectivity.max_delay() == 0 && target_precision == Precision::F64,
            connectivity,
            weights,
        });
        for (t, part) in ring.parts_mut().iter_mut().enumerate() {
            parts_of_thread[t].push(part);
        }
    }

    let trace_intervals = recording.as_ref().map_or_else(Vec::new, |r| {
        r.traces.iter().map(|m| m.every_steps).collect()
    });
    let sizes = populations.iter().map(|p| p.size).collect();
    let natives: Vec<Option<NativeFunction>> = kernels.iter().map(|k| k.native()).collect();
    // Every population pointer derives from one base pointer, so the whole slice can be
    // viewed at once (the reductions read it) without invalidating the others.
    let populations_base = populations.as_mut_ptr();
    let n_populations = populations.len();
    // SAFETY: `i < len`, within the vector's allocation.
    let population_ptrs: Vec<Shared<Population>> = (0..n_populations)
        .map(|i| Shared(unsafe { populations_base.add(i) }))
        .collect();
    let array_tables = population_ptrs
        .iter()
        // SAFETY: the populations are borrowed mutably for the whole run; nothing else
        // accesses them while the table is built.
        .map(|p| unsafe { (*p.0).arrays.iter_mut().map(|a| a.as_mut_ptr()).collect() })
        .collect();
    let shared = StepShared {
        dt: *dt,
        first_step,
        steps,
        threads,
        barrier: SpinBarrier::new(threads),
        failed: AtomicBool::new(false),
        errors: Mutex::new(Vec::new()),
        natives: natives.clone(),
        bounds,
        populations: population_ptrs,
        array_tables,
        sizes,
        spikes: (0..2 * threads)
            .map(|_| PhaseCell(UnsafeCell::new(vec![Vec::new(); bounds.len()])))
            .collect(),
        source_spikes: [0, 1].map(|_| PhaseCell(UnsafeCell::new(vec![Vec::new(); sources.len()]))),
        barrier_after_delivery: natives.iter().any(Option::is_none),
        projections: views,
        has_inputs: !inputs.is_empty(),
        has_plastic: !plastic.is_empty() || !reductions.is_empty(),
        trace_intervals,
    };
    let source_sizes: Vec<usize> = sources.iter().map(|s| s.size).collect();
    let population_sizes: Vec<usize> = shared.sizes.clone();
    let node_size = move |node: Node| match node {
        Node::Population(p) => population_sizes[p],
        Node::Source(s) => source_sizes[s],
    };
    // Population-level variables (`reductions.rs`): computed by thread 0 alone while the
    // others wait, in a fixed order, then copied to the arrays that kernels and handlers read.
    let mut update_reductions = |k: Option<u64>| -> Result<(), RuntimeError> {
        if reductions.is_empty() {
            return Ok(());
        }
        // SAFETY: called only before the threads start or in phase 3, when the other threads
        // wait at the barrier; no other reference to the populations or projections is live.
        let (populations, projections) = unsafe {
            (
                std::slice::from_raw_parts_mut(populations_base, n_populations),
                std::slice::from_raw_parts_mut(projections_ptr.0, n_projections),
            )
        };
        let spike_count = |node: Node| match k {
            // SAFETY: phase 3, in which no spikes are written.
            Some(k) => unsafe { shared.spikes_of(node, k) }.map(<[u32]>::len).sum(),
            None => 0,
        };
        reductions.compute(populations, &spike_count, &node_size, shared.dt);
        reductions.broadcast(populations, projections)
    };

    // Thread 0's serial work: the interpreted kernels, the sources, recording, inputs.
    let mut source_cursors: Vec<usize> = sources
        .iter()
        .map(|s| s.spikes.partition_point(|&(event, _)| event < first_step))
        .collect();
    let (mut pre, mut post) = (Vec::new(), Vec::new());
    let mut serial = |phase: Phase, k: u64, stats: &mut RunStats| -> Result<(), RuntimeError> {
        match phase {
            Phase::Start => {
                // A run that continues an earlier one keeps the values of its last step.
                if k == 0 {
                    update_reductions(None)?;
                }
                for input in inputs.iter() {
                    // SAFETY: the other threads have not started stepping yet.
                    input.apply(unsafe { &mut *shared.population(input.population) }, k)?;
                }
            }
            Phase::Kernels => {
                let t = k as f64 * shared.dt;
                for (p, kernel) in kernels.iter_mut().enumerate() {
                    if shared.natives[p].is_some() {
                        continue;
                    }
                    // SAFETY: phase 1: no other thread touches a population without a native
                    // kernel, and only thread 0 writes its spike buffers.
                    let (population, spikes) = unsafe {
                        (
                            &mut *shared.population(p),
                            &mut shared.spike_cell(0, k).get_mut()[p],
                        )
                    };
                    spikes.clear();
                    kernel.update(population, k, t, spikes)?;
                    check_spikes(
                        &population.name,
                        population.size,
                        k,
                        spikes,
                        0..population.size,
                    )?;
                }
                // SAFETY: phase 1: only thread 0 writes the source events.
                let events = unsafe { shared.source_spikes[(k % 2) as usize].get_mut() };
                for ((source, cursor), events) in
                    sources.iter().zip(&mut source_cursors).zip(events)
                {
                    events.clear();
                    while let Some(&(event_step, index)) = source.spikes.get(*cursor) {
                        if event_step > k {
                            break;
                        }
                        if event_step == k {
                            events.push(index);
                        }
                        *cursor += 1;
                    }
                }
            }
            Phase::Delivery => {
                // SAFETY (all `spikes_of` below): phase 2, in which no spikes are written.
                for (p, count) in stats.population_spikes.iter_mut().enumerate() {
                    *count += unsafe { shared.spikes_of(Node::Population(p), k) }
                        .map(|s| s.len() as u64)
                        .sum::<u64>();
                }
                for (s, count) in stats.source_spikes.iter_mut().enumerate() {
                    *count += unsafe { shared.spikes_of(Node::Source(s), k) }
                        .map(|s| s.len() as u64)
                        .sum::<u64>();
                }
                for view in &shared.projections {
                    for spikes in unsafe { shared.spikes_of(view.pre, k) } {
                        for &pre in spikes {
                            stats.synaptic_events += view.connectivity.row_range(pre).len() as u64;
                        }
                    }
                }
                // A neuron spike of step k is recorded at (k + 1)·dt, a source event at k·dt.
                if let Some(recording) = recording.as_mut() {
                    for monitor in &recording.spikes {
                        let recorded_step = match monitor.node {
                            Node::Population(_) => k + 1,
                            Node::Source(_) => k,
                        };
                        for spikes in unsafe { shared.spikes_of(monitor.node, k) } {
                            if !spikes.is_empty() {
                                recording.recorder.record_spikes(
                                    monitor.handle,
                                    recorded_step,
                                    spikes,
                                )?;
                            }
                        }
                    }
                }
            }
            Phase::AfterStep => {
                // Plastic projections (`plasticity.rs`): `on pre` for the spikes arriving now,
                // then `on post`; their port input into the targets, after the static ones'.
                for &index in &plastic {
                    // SAFETY: phase 3: the other threads wait at the barrier, and no view or
                    // ring part refers to a plastic projection.
                    let projection = unsafe { &mut *projections_ptr.0.add(index) };
                    let handlers = handlers
                        .iter_mut()
                        .find(|h| h.projection == index)
                        .expect("checked when the run started");
                    // The thread-chunked spike lists joined, in buffers kept between steps.
                    // SAFETY (both): phase 3, in which no spikes are written.
                    pre.clear();
                    pre.extend(unsafe { shared.spikes_of(projection.pre, k) }.flatten());
                    post.clear();
                    post.extend(
                        unsafe { shared.spikes_of(Node::Population(projection.post), k) }.flatten(),
                    );
                    let Projection {
                        connectivity,
                        ring,
                        plasticity,
                        post: post_population,
                        target_array,
                        ..
                    } = projection;
                    let state = plasticity.as_deref_mut().expect("a plastic projection");
                    stats.synaptic_events +=
                        state.step(connectivity, ring, handlers, &pre, &post, k, shared.dt)?;
                    // SAFETY: phase 3: the other threads wait at the barrier.
                    let population = unsafe { &mut *shared.population(*post_population) };
                    ring.drain_into_array(&mut population.arrays[*target_array]);
                }
                // Traces: the state at (k + 1)·dt.
                if let Some(recording) = recording.as_mut() {
                    if !plastic.is_empty() {
                        // SAFETY: phase 3: nothing else reads or writes plastic state now.
                        let projections =
                            unsafe { std::slice::from_raw_parts(projections_ptr.0, n_projections) };
                        recording
                            .synapses
                            .sample(&mut recording.recorder, projections, k)?;
                    }
                    for monitor in &recording.traces {
                        if (k + 1) % monitor.every_steps == 0 {
                            // SAFETY: phase 3: the other threads wait at the barrier.
                            let population = unsafe { &*shared.population(monitor.population) };
                            recording.recorder.record_trace_scaled(
                                monitor.handle,
                                k + 1,
                                &population.arrays[monitor.array],
                                monitor.scale,
                            )?;
                        }
                    }
                }
                // The population-level variables every reader of step k + 1 sees.
                update_reductions(Some(k))?;
                if k + 1 < shared.first_step + shared.steps {
                    for input in inputs.iter() {
                        // SAFETY: phase 3: the other threads wait at the barrier.
                        let population = unsafe { &mut *shared.population(input.population) };
                        input.apply(population, k + 1)?;
                    }
                }
            }
        }
        Ok(())
    };

    let percent = (steps / 100).max(1);
    let mut next_boundary = percent;
    let mut last_report = Instant::now();
    progress(0, steps);
    if steps > 0 {
        serial(Phase::Start, first_step, stats)?;
    }

    let mut parts_of_thread = parts_of_thread.into_iter();
    let main_parts = parts_of_thread.next().unwrap_or_default();
    let completed = std::thread::scope(|scope| {
        for (t, mut parts) in parts_of_thread.enumerate() {
            let shared = &shared;
            scope.spawn(move || {
                for i in 0..shared.steps {
                    let k = shared.first_step + i;
                    if let Err(e) = run_kernels(shared, t + 1, k) {
                        shared.fail(t + 1, e);
                    }
                    if shared.meet() {
                        return;
                    }
                    deliver(shared, k, &mut parts);
                    if shared.barrier_after_delivery || shared.serial_after(i) {
                        if shared.meet() {
                            return;
                        }
                        // Thread 0 works alone here (phase 3), when it has work.
                        if shared.serial_after(i) && shared.meet() {
                            return;
                        }
                    }
                }
            });
        }

        let mut parts = main_parts;
        let mut completed = 0;
        for i in 0..shared.steps {
            let k = shared.first_step + i;
            if let Err(e) =
                run_kernels(&shared, 0, k).and_then(|()| serial(Phase::Kernels, k, stats))
            {
                shared.fail(0, e);
            }
            if shared.meet() {
                break;
            }
            deliver(&shared, k, &mut parts);
            if let Err(e) = serial(Phase::Delivery, k, stats) {
                shared.fail(0, e);
            }
            if shared.barrier_after_delivery || shared.serial_after(i) {
                if shared.meet() {
                    break;
                }
                if shared.serial_after(i) {
                    if let Err(e) = serial(Phase::AfterStep, k, stats) {
                        shared.fail(0, e);
                    }
                    if shared.meet() {
                        break;
                    }
                }
            }
            if shared.failed.load(Ordering::Acquire) {
                // Found at the next barrier by every thread; this step did not complete.
                continue;
            }
            completed = i + 1;
            stats.steps = completed;
            if completed >= next_boundary && completed < steps {
                next_boundary = (completed / percent + 1) * percent;
                if last_report.elapsed() >= progress_interval {
                    progress(completed, steps);
                    last_report = Instant::now();
                }
            }
        }
        completed
    });
    *step = first_step + completed;
    let mut errors = shared
        .errors
        .into_inner()
        .unwrap_or_else(|e| e.into_inner());
    if !errors.is_empty() {
        // The lowest thread's error, so the report does not depend on timing.
        errors.sort_by_key(|(thread, _)| *thread);
        return Err(errors.swap_remove(0).1);
    }
    progress(steps, steps);
    Ok(())
}

/// The parts of a step that thread 0 does alone.
#[derive(Clone, Copy, Debug)]
enum Phase {
    /// Before the first step: its timed inputs.
    Start,
    /// With the kernels: interpreted kernels and spike sources.
    Kernels,
    /// With the delivery: spike counts and spike recording.
    Delivery,
    /// After the step, alone: trace recording and the next step's inputs.
    AfterStep,
}

/// Phase 1 for thread `thread`: the compiled kernels on its range of every population.
fn run_kernels(shared: &StepShared<'_>, thread: usize, k: u64) -> Result<(), RuntimeError> {
    let t = k as f64 * shared.dt;
    // SAFETY: phase 1: only this thread writes its spike buffers.
    let spikes = unsafe { shared.spike_cell(thread, k).get_mut() };
    for (p, native) in shared.natives.iter().enumerate() {
        let Some(native) = native else { continue };
        let range = shared.bounds[p][thread]..shared.bounds[p][thread + 1];
        let buffer = &mut spikes[p];
        buffer.clear();
        if range.is_empty() {
            continue;
        }
        buffer.reserve(range.len());
        let mut ctx = KernelContext {
            arrays: shared.array_tables[p].as_ptr(),
            start: range.start as u64,
            end: range.end as u64,
            step: k,
            t,
            stream_key: native.stream_key,
            spikes: buffer.spare_capacity_mut().as_mut_ptr().cast::<u32>(),
            n_spikes: 0,
            gather: [std::ptr::null(); crate::abi::GATHERS],
        };
        // SAFETY: the pointer table holds `n_arrays` (checked in `run`) pointers to arrays of
        // the population's size; this thread alone accesses elements `range` of them in this
        // phase; `spikes` has room for `range.len()` entries. The creator of the kernel
        // vouched that it stays within these bounds (`NativeKernel::new`).
        unsafe { (native.function)(&mut ctx) };
        let n = ctx.n_spikes;
        let name = || {
            // SAFETY: only the name is read, which no thread writes.
            unsafe { &(*shared.population(p)).name }.clone()
        };
        if n > range.len() as u64 {
            return Err(RuntimeError::invalid(
                format!("population '{}'", name()),
                format!(
                    "the kernel reported {n} spikes at step {k} for {} neurons",
                    range.len()
                ),
            ));
        }
        // SAFETY: `n <= range.len() <= spare capacity`, and the kernel initialised the first
        // `n` entries.
        unsafe { buffer.set_len(n as usize) };
        if let Err(e) = check_spikes(&name(), shared.sizes[p], k, buffer, range) {
            buffer.clear();
            return Err(e);
        }
    }
    Ok(())
}

/// Rejects spike indices outside `range`, the elements the kernel was called on (its
/// contract), in population `name` of `size` neurons.
fn check_spikes(
    name: &str,
    size: usize,
    k: u64,
    spikes: &[u32],
    range: Range<usize>,
) -> Result<(), RuntimeError> {
    match spikes.iter().find(|&&i| !range.contains(&(i as usize))) {
        Some(&bad) => {
            let called = if range == (0..size) {
                format!("outside 0..{size}")
            } else {
                format!(
                    "outside the neurons {}..{} it was called on (population of {size})",
                    range.start, range.end
                )
            };
            Err(RuntimeError::invalid(
                format!("population '{name}'"),
                format!("the kernel emitted spike index {bad} at step {k}, {called}"),
            ))
        }
        None => Ok(()),
    }
}

/// Phase 2 for thread `thread`: every spike of the step through its ring parts (one per
/// projection, in projection order) or straight into its targets, then the parts' current
/// slots into their targets.
fn deliver(shared: &StepShared<'_>, k: u64, parts: &mut [&mut RingPart<f64>]) {
    for (view, part) in shared.projections.iter().zip(parts.iter_mut()) {
        let owned = part.targets();
        if owned.is_empty() {
            continue;
        }
        // SAFETY: phase 2: this thread alone owns the targets `owned` of the post population
        // (its range), and the array has the population's size. A direct view's target is
        // `f64` (`ProjectionView::direct`).
        let mut direct = view.direct.then(|| unsafe {
            std::slice::from_raw_parts_mut(
                shared.array_tables[view.post][view.target_array]
                    .cast::<f64>()
                    .add(owned.start),
                owned.len(),
            )
        });
        // SAFETY: phase 2: no thread writes spike buffers.
        for spikes in unsafe { shared.spikes_of(view.pre, k) } {
            for (n, &pre) in spikes.iter().enumerate() {
                if let Some(&ahead) = spikes.get(n + ROWS_AHEAD) {
                    prefetch_row(view.connectivity, view.weights, ahead);
                }
                let row = view.connectivity.row_range(pre);
                let target = direct.as_deref_mut();
                match view.weights {
                    Weights::Uniform { value, .. } => deliver_row(
                        part,
                        target,
                        view.connectivity,
                        row,
                        RowWeights::Uniform(*value),
                    ),
                    Weights::PerSynapse(w) => deliver_row(
                        part,
                        target,
                        view.connectivity,
                        row,
                        RowWeights::PerSynapse(w.as_slice()),
                    ),
                    Weights::PerSynapseF32(w) => deliver_row(
                        part,
                        target,
                        view.connectivity,
                        row,
                        RowWeights::PerSynapse(w.as_slice()),
                    ),
                }
            }
        }
    }
    for (view, part) in shared.projections.iter().zip(parts.iter_mut()) {
        let targets = part.targets();
        if targets.is_empty() || view.direct {
            continue;
        }
        let array = shared.array_tables[view.post][view.target_array];
        // SAFETY: phase 2: this thread alone owns the targets `targets` of the post
        // population (its range), and the array has the population's size.
        // The pointer is to the array's own element type (`Array::as_mut_ptr`).
        match view.target_precision {
            Precision::F64 => {
                let target = unsafe {
                    std::slice::from_raw_parts_mut(array.add(targets.start), targets.len())
                };
                part.drain_into(target);
            }
            Precision::F32 => {
                let target = unsafe {
                    std::slice::from_raw_parts_mut(
                        array.cast::<f32>().add(targets.start),
                        targets.len(),
                    )
                };
                part.drain_into(target);
            }
        }
    }
}

/// Delivers one row of a projection: into `part`'s ring, or straight into `direct`, the
/// values of the part's targets, when the projection delivers directly.
#[inline]
fn deliver_row<W: Copy + Into<f64>>(
    part: &mut RingPart<f64>,
    direct: Option<&mut [f64]>,
    conn: &Connectivity,
    row: Range<usize>,
    weights: RowWeights<'_, W>,
) {
    match direct {
        Some(target) => deliver_row_direct(target, part.targets(), conn, row, weights),
        None => deliver_row_part(part, conn, row, weights),
    }
}

/// How many spikes ahead delivery prefetches a row: far enough for a row's first lines to
/// arrive from memory while the rows before it are delivered.
const ROWS_AHEAD: usize = 2;

/// Asks the CPU to start loading the targets and weights of `pre`'s row, which delivery
/// reads next. Rows of large networks live in main memory, and a row's first line is a miss
/// that every target access of the row waits for.
#[inline]
fn prefetch_row(conn: &Connectivity, weights: &Weights, pre: u32) {
    let row = conn.row_range(pre);
    prefetch_lines(&conn.targets()[row.clone()]);
    match weights {
        Weights::Uniform { .. } => {}
        Weights::PerSynapse(w) => prefetch_lines(&w[row]),
        Weights::PerSynapseF32(w) => prefetch_lines(&w[row]),
    }
}

/// Prefetches the cache lines of the first KiB of `data` (the hardware prefetcher follows a
/// longer row by itself). A hint only: it changes no result.
#[inline]
fn prefetch_lines<T>(data: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let bytes = std::mem::size_of_val(data).min(1024);
        let base = data.as_ptr().cast::<i8>();
        for offset in (0..bytes).step_by(64) {
            // SAFETY: `offset` lies within `data`; a prefetch never faults anyway.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(base.add(offset)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::fs;
    use std::path::{Path, PathBuf};
    use std::rc::Rc;

    use super::*;
    use crate::connectivity::{Connectivity, ProjectionSpec};
    use crate::inputs::TimedInput;
    use crate::network::{Projection, SpikeSource, VariableSpec};
    use crate::npy::{read_npy, NpyData};
    use crate::record::{OutputFormat, TraceDtype};
    use crate::rng::Stream;

    const DT: f64 = 1e-4;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("snnc-schedule-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn spec(n_pre: u32, n_post: u32) -> ProjectionSpec {
        ProjectionSpec {
            name: "projection 'test'".into(),
            n_pre,
            n_post,
            seed: 9,
            projection: 0,
            same_population: false,
            autapses: true,
        }
    }

    fn population(name: &str, size: usize) -> Population {
        Population::new(
            name,
            size,
            &[
                VariableSpec::new("v", "mV", 1e-3),
                VariableSpec::new("I", "nA", 1e-9),
            ],
        )
        .unwrap()
    }

    /// Emits the given neurons at the given steps; touches no state.
    struct SpikeAt(Vec<(u64, Vec<u32>)>);

    impl PopulationKernel for SpikeAt {
        fn update(
            &mut self,
            _: &mut Population,
            step: u64,
            _: f64,
            spikes: &mut Vec<u32>,
        ) -> Result<(), RuntimeError> {
            for (s, neurons) in &self.0 {
                if *s == step {
                    spikes.extend_from_slice(neurons);
                }
            }
            Ok(())
        }
    }

    /// Logs what array `array` holds when the update of each step starts, then zeroes it, so
    /// each log entry is the input that arrived since the previous update.
    struct Probe {
        array: usize,
        log: Log,
    }

    impl PopulationKernel for Probe {
        fn update(
            &mut self,
            population: &mut Population,
            step: u64,
            _: f64,
            _: &mut Vec<u32>,
        ) -> Result<(), RuntimeError> {
            let array = &mut population.arrays[self.array];
            self.log.borrow_mut().push((step, array.to_f64()));
            array.fill(0.0);
            Ok(())
        }
    }

    type Log = Rc<RefCell<Vec<(u64, Vec<f64>)>>>;

    fn probe(array: usize) -> (Box<dyn PopulationKernel>, Log) {
        let log: Log = Rc::default();
        (
            Box::new(Probe {
                array,
                log: log.clone(),
            }),
            log,
        )
    }

    fn no_progress() -> impl FnMut(u64, u64) {
        |_, _| {}
    }

    /// pre (2 neurons) → post (3 neurons), all to all, weight `10·pre + post + 1`; pre 1
    /// spikes at step 3. Returns the network with `set_delays` applied.
    fn delay_network(set_delays: impl FnMut(u32, u32, u64) -> u16) -> Network {
        let mut net = Network::new(DT, 1).unwrap();
        net.add_population(population("pre", 2)).unwrap();
        net.add_population(population("post", 3)).unwrap();
        let mut conn = Connectivity::all_to_all(&spec(2, 3)).unwrap();
        conn.set_delays(set_delays);
        let w = conn.fill_weights_f64(|pre, post, _| f64::from(10 * pre + post + 1));
        net.add_projection(Projection::new("pp", Node::Population(0), 1, conn, w, 1).unwrap())
            .unwrap();
        net
    }

    #[test]
    fn a_spike_with_delay_d_arrives_at_the_end_of_step_k_plus_d() {
        for d in 0..5u16 {
            let mut net = delay_network(|_, _, _| d);
            let (post, log) = probe(1);
            let mut kernels: Vec<Box<dyn PopulationKernel>> =
                vec![Box::new(SpikeAt(vec![(3, vec![1])])), post];
            let stats = Simulation::new()
                .run(&mut net, &mut kernels, 12, &mut no_progress())
                .unwrap();
            assert_eq!(stats.population_spikes, vec![1, 0]);
            assert_eq!(stats.synaptic_events, 3);
            // Added at the end of step 3 + d, seen by the update of step 3 + d + 1.
            for (step, seen) in log.borrow().iter() {
                let expected = if *step == 3 + u64::from(d) + 1 {
                    vec![11.0, 12.0, 13.0]
                } else {
                    vec![0.0; 3]
                };
                assert_eq!(seen, &expected, "d = {d}, step {step}");
            }
        }
    }

    #[test]
    fn delay_zero_acts_within_the_same_step() {
        let mut net = delay_network(|_, _, _| 0);
        let (post, log) = probe(1);
        let mut kernels: Vec<Box<dyn PopulationKernel>> =
            vec![Box::new(SpikeAt(vec![(3, vec![1])])), post];
        // Steps 0..=3: the spike of step 3 is already in the target array after step 3.
        Simulation::new()
            .run(&mut net, &mut kernels, 4, &mut no_progress())
            .unwrap();
        assert_eq!(net.populations[1].arrays[1], vec![11.0, 12.0, 13.0]);
        assert!(log.borrow().iter().all(|(_, seen)| seen == &vec![0.0; 3]));
    }

    /// Two spikes of one step reach a target holding 1.0 with weights of 2^-53 each. A
    /// projection without delay adds each weight as it arrives (`delays::deliver_row_direct`):
    /// 1 + 2^-53 is a tie that rounds to 1.0, twice. A delayed projection sums the step's input
    /// in its ring first (2^-52) and adds that once. The two results tell the paths apart.
    #[test]
    fn delay_zero_adds_each_weight_as_it_arrives_and_a_ring_adds_the_sum() {
        let half_ulp = f64::EPSILON / 2.0;
        for (delay, expected) in [(0, 1.0), (1, 1.0 + f64::EPSILON)] {
            let mut net = Network::new(DT, 1).unwrap();
            net.add_population(population("pre", 2)).unwrap();
            net.add_population(population("post", 1)).unwrap();
            let mut conn = Connectivity::all_to_all(&spec(2, 1)).unwrap();
            conn.set_homogeneous_delay(delay);
            net.add_projection(
                Projection::with_uniform_weight("pp", Node::Population(0), 1, conn, half_ulp, 1)
                    .unwrap(),
            )
            .unwrap();
            net.populations[1].arrays[1].fill(1.0);
            let mut kernels: Vec<Box<dyn PopulationKernel>> = vec![
                Box::new(SpikeAt(vec![(0, vec![0, 1])])),
                Box::new(SpikeAt(Vec::new())),
            ];
            Simulation::new()
                .run(&mut net, &mut kernels, 3, &mut no_progress())
                .unwrap();
            assert_eq!(
                net.populations[1].arrays[1].to_f64(),
                vec![expected],
                "delay {delay}"
            );
        }
    }

    #[test]
    fn heterogeneous_delays_arrive_per_synapse() {
        let mut net = delay_network(|_, post, _| post as u16 * 2);
        let (post, log) = probe(1);
        let mut kernels: Vec<Box<dyn PopulationKernel>> =
            vec![Box::new(SpikeAt(vec![(3, vec![0, 1])])), post];
        let stats = Simulation::new()
            .run(&mut net, &mut kernels, 12, &mut no_progress())
            .unwrap();
        assert_eq!(stats.synaptic_events, 6);
        let log = log.borrow();
        // Post j has delay 2j: seen in step 3 + 2j + 1, the sum of both presynaptic weights.
        assert_eq!(log[4].1, vec![1.0 + 11.0, 0.0, 0.0]);
        assert_eq!(log[6].1, vec![0.0, 2.0 + 12.0, 0.0]);
        assert_eq!(log[8].1, vec![0.0, 0.0, 3.0 + 13.0]);
        let total: f64 = log.iter().flat_map(|(_, v)| v).sum();
        assert_eq!(total, 42.0);
    }

    #[test]
    fn spike_source_arrays_emit_at_their_steps() {
        let dir = temp_dir("source");
        let mut net = Network::new(DT, 1).unwrap();
        net.add_population(population("post", 3)).unwrap();
        // 0.44 ms rounds to step 4; 0.2 ms and 0.5 ms are exact.
        let (source, rounding) =
            SpikeSource::from_times("in", 3, &[0.5e-3, 0.2e-3, 0.44e-3], &[2, 0, 1], DT, 10)
                .unwrap();
        assert_eq!(rounding.rounded, 1);
        let s = net.add_source(source).unwrap();
        let conn = Connectivity::one_to_one(&spec(3, 3)).unwrap();
        net.add_projection(
            Projection::new("in->post", Node::Source(s), 0, conn, vec![1.0; 3], 1).unwrap(),
        )
        .unwrap();
        net.record_to(&dir, OutputFormat::Npy).unwrap();
        net.record_spikes(Node::Source(s)).unwrap();
        let (post, log) = probe(1);
        let mut kernels = vec![post];
        let stats = Simulation::new()
            .run(&mut net, &mut kernels, 10, &mut no_progress())
            .unwrap();
        assert_eq!(stats.source_spikes, vec![3]);
        // Delay 0: an event of step m is seen by the update of step m + 1.
        let log = log.borrow();
        assert_eq!(log[3].1, vec![1.0, 0.0, 0.0]);
        assert_eq!(log[5].1, vec![0.0, 1.0, 0.0]);
        assert_eq!(log[6].1, vec![0.0, 0.0, 1.0]);
        assert_eq!(
            log.iter()
                .filter(|(_, v)| v.iter().any(|&x| x != 0.0))
                .count(),
            3
        );
        net.finish_recording(RunStatus::Complete).unwrap();
        // Source events are recorded at their own (rounded) times.
        let times = read_npy(&dir.join("in_spikes_times.npy")).unwrap();
        assert_eq!(times.data, NpyData::F64(vec![2.0 * DT, 4.0 * DT, 5.0 * DT]));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn timed_inputs_write_their_rows_before_the_kernels() {
        let mut net = Network::new(DT, 1).unwrap();
        net.add_population(population("p", 4)).unwrap();
        let input = TimedInput::new("I_ext", 0, 1, vec![1.0, 2.0, 3.0], &[3], 2, 1..3).unwrap();
        net.add_input(input).unwrap();
        let (kernel, log) = probe(1);
        let mut kernels = vec![kernel];
        Simulation::new()
            .run(&mut net, &mut kernels, 8, &mut no_progress())
            .unwrap();
        let seen: Vec<Vec<f64>> = log.borrow().iter().map(|(_, v)| v.clone()).collect();
        let row = |x: f64| vec![0.0, x, x, 0.0];
        assert_eq!(
            seen,
            vec![
                row(1.0),
                row(1.0),
                row(2.0),
                row(2.0),
                row(3.0),
                row(3.0),
                row(3.0),
                row(3.0)
            ]
        );
    }

    #[test]
    fn recorded_spike_times_are_the_end_of_the_step() {
        let dir = temp_dir("spikes");
        let mut net = Network::new(DT, 1).unwrap();
        net.add_population(population("p", 3)).unwrap();
        net.record_to(&dir, OutputFormat::Npy).unwrap();
        net.record_spikes(Node::Population(0)).unwrap();
        let mut kernels: Vec<Box<dyn PopulationKernel>> =
            vec![Box::new(SpikeAt(vec![(0, vec![2]), (3, vec![0, 1])]))];
        Simulation::new()
            .run(&mut net, &mut kernels, 5, &mut no_progress())
            .unwrap();
        net.finish_recording(RunStatus::Complete).unwrap();
        let times = read_npy(&dir.join("p_spikes_times.npy")).unwrap();
        assert_eq!(times.data, NpyData::F64(vec![DT, 4.0 * DT, 4.0 * DT]));
        let indices = read_npy(&dir.join("p_spikes_indices.npy")).unwrap();
        assert_eq!(indices.data, NpyData::U32(vec![2, 0, 1]));
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Sets v of neuron i to (step + 1)·(i + 1) millivolts, in SI.
    struct Ramp;

    impl PopulationKernel for Ramp {
        fn update(
            &mut self,
            population: &mut Population,
            step: u64,
            _: f64,
            _: &mut Vec<u32>,
        ) -> Result<(), RuntimeError> {
            for (i, v) in population.arrays[0]
                .as_f64_mut()
                .expect("f64")
                .iter_mut()
                .enumerate()
            {
                *v = (step + 1) as f64 * (i + 1) as f64 * 1e-3;
            }
            Ok(())
        }
    }

    fn manifest(dir: &Path) -> serde_json::Value {
        serde_json::from_str(&fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap()
    }

    #[test]
    fn traces_are_sampled_every_k_steps_in_the_users_unit() {
        let dir = temp_dir("traces");
        let mut net = Network::new(DT, 1).unwrap();
        net.add_population(population("p", 3)).unwrap();
        net.record_to(&dir, OutputFormat::Npy).unwrap();
        net.record_trace(0, 0, &[0, 2], 3, TraceDtype::F64).unwrap();
        let mut kernels: Vec<Box<dyn PopulationKernel>> = vec![Box::new(Ramp)];
        Simulation::new()
            .run(&mut net, &mut kernels, 10, &mut no_progress())
            .unwrap();
        net.finish_recording(RunStatus::Complete).unwrap();
        let trace = read_npy(&dir.join("p_v.npy")).unwrap();
        assert_eq!(trace.shape, vec![3, 2]);
        // Samples after steps 2, 5, 8 (times 3, 6, 9 · dt), in mV.
        let NpyData::F64(values) = trace.data else {
            panic!("expected f64")
        };
        let expected = [3.0, 9.0, 6.0, 18.0, 9.0, 27.0];
        for (a, b) in values.iter().zip(expected) {
            assert!((a - b).abs() < 1e-12, "{values:?}");
        }
        let m = manifest(&dir);
        let entry = &m["files"][0];
        assert_eq!(entry["first_step"], 3);
        assert_eq!(entry["every_steps"], 3);
        assert_eq!(entry["unit"], "mV");
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A leaky integrate-and-fire population with counter-based noise.
    struct Lif {
        stream: Stream,
    }

    impl PopulationKernel for Lif {
        fn update(
            &mut self,
            population: &mut Population,
            step: u64,
            _: f64,
            spikes: &mut Vec<u32>,
        ) -> Result<(), RuntimeError> {
            let (v, rest) = population.arrays.split_at_mut(1);
            let (v, input) = (
                v[0].as_f64_mut().expect("f64"),
                rest[0].as_f64_mut().expect("f64"),
            );
            for (i, (v, input)) in v.iter_mut().zip(input.iter_mut()).enumerate() {
                let noise = self.stream.uniform(i as u32, step, 0) * 2e-3;
                *v += (-0.07 - *v) * 0.01 + *input + noise;
                *input = 0.0;
                if *v > -0.05 {
                    *v = -0.07;
                    spikes.push(i as u32);
                }
            }
            Ok(())
        }
    }

    /// A recurrent network with a source and an input; returns the stats and output bytes.
    fn run_small_network(dir: &Path, chunks: &[u64]) -> (Vec<u64>, u64, Vec<Vec<u8>>) {
        let mut net = Network::new(DT, 42).unwrap();
        let mut exc = population("exc", 40);
        exc.arrays[0].fill(-0.07);
        net.add_population(exc).unwrap();
        let (source, _) = SpikeSource::from_times(
            "drive",
            5,
            &[1e-4, 3e-4, 7e-4, 2e-3],
            &[0, 4, 2, 1],
            DT,
            300,
        )
        .unwrap();
        net.add_source(source).unwrap();
        let mut rec = Connectivity::bernoulli(&spec(40, 40), 0.2).unwrap();
        rec.set_delays(|pre, post, _| ((pre + post) % 4) as u16);
        let w = rec.fill_weights_f64(|_, _, syn| 1e-3 + (syn % 3) as f64 * 1e-4);
        net.add_projection(Projection::new("rec", Node::Population(0), 0, rec, w, 1).unwrap())
            .unwrap();
        let mut drive = Connectivity::bernoulli(&spec(5, 40), 0.5).unwrap();
        drive.set_homogeneous_delay(1);
        let w = vec![5e-3; drive.n_synapses() as usize];
        net.add_projection(Projection::new("drive", Node::Source(0), 0, drive, w, 1).unwrap())
            .unwrap();
        net.record_to(dir, OutputFormat::Npy).unwrap();
        net.record_spikes(Node::Population(0)).unwrap();
        net.record_trace(0, 0, &[0, 7, 39], 5, TraceDtype::F64)
            .unwrap();
        let mut kernels: Vec<Box<dyn PopulationKernel>> = vec![Box::new(Lif {
            stream: Stream::new(42, 0),
        })];
        let mut sim = Simulation::new();
        let mut spikes = vec![0];
        let mut events = 0;
        for &steps in chunks {
            let stats = sim
                .run(&mut net, &mut kernels, steps, &mut no_progress())
                .unwrap();
            spikes[0] += stats.population_spikes[0];
            events += stats.synaptic_events;
        }
        net.finish_recording(RunStatus::Complete).unwrap();
        let files = [
            "exc_spikes_times.npy",
            "exc_spikes_indices.npy",
            "exc_v.npy",
        ]
        .iter()
        .map(|f| fs::read(dir.join(f)).unwrap())
        .collect();
        (spikes, events, files)
    }

    #[test]
    fn a_small_network_gives_the_same_result_twice() {
        let (a_dir, b_dir, c_dir) = (temp_dir("det-a"), temp_dir("det-b"), temp_dir("det-c"));
        let a = run_small_network(&a_dir, &[300]);
        let b = run_small_network(&b_dir, &[300]);
        assert!(a.0[0] > 10, "the network should be active: {:?}", a.0);
        assert!(a.1 > 0);
        assert_eq!(a, b);
        // Chained runs continue exactly where the previous one stopped.
        let c = run_small_network(&c_dir, &[120, 1, 179]);
        assert_eq!(a, c);
        for dir in [a_dir, b_dir, c_dir] {
            fs::remove_dir_all(dir).unwrap();
        }
    }

    /// Spikes at the given steps and fails at `fail_at`.
    struct FailAt {
        fail_at: u64,
        spikes: SpikeAt,
    }

    impl PopulationKernel for FailAt {
        fn update(
            &mut self,
            population: &mut Population,
            step: u64,
            t: f64,
            spikes: &mut Vec<u32>,
        ) -> Result<(), RuntimeError> {
            if step == self.fail_at {
                return Err(RuntimeError::invalid(
                    format!("population '{}'", population.name),
                    "v became NaN",
                ));
            }
            self.spikes.update(population, step, t, spikes)
        }
    }

    #[test]
    fn an_error_mid_run_leaves_valid_partial_output() {
        let dir = temp_dir("error");
        let mut net = Network::new(DT, 1).unwrap();
        net.add_population(population("p", 2)).unwrap();
        net.record_to(&dir, OutputFormat::Npy).unwrap();
        net.record_spikes(Node::Population(0)).unwrap();
        net.record_trace(0, 0, &[1], 1, TraceDtype::F32).unwrap();
        let mut kernels: Vec<Box<dyn PopulationKernel>> = vec![Box::new(FailAt {
            fail_at: 5,
            spikes: SpikeAt(vec![(1, vec![1]), (6, vec![0])]),
        })];
        let mut calls = Vec::new();
        let e = Simulation::new()
            .run(&mut net, &mut kernels, 10, &mut |d, t| calls.push((d, t)))
            .unwrap_err();
        assert_eq!(e.to_string(), "population 'p': v became NaN");
        assert_eq!(net.step, 5);
        let m = manifest(&dir);
        assert_eq!(m["status"]["state"], "interrupted");
        let reason = m["status"]["reason"].as_str().unwrap();
        assert!(
            reason.contains("step 5") && reason.contains("NaN"),
            "{reason}"
        );
        let times = read_npy(&dir.join("p_spikes_times.npy")).unwrap();
        assert_eq!(times.data, NpyData::F64(vec![2.0 * DT]));
        assert_eq!(read_npy(&dir.join("p_v.npy")).unwrap().shape, vec![5, 1]);
        assert_eq!(calls, vec![(0, 10)]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_kernels_and_arguments_are_errors() {
        let mut net = Network::new(DT, 1).unwrap();
        net.add_population(population("p", 2)).unwrap();
        let mut sim = Simulation::new();
        let e = sim
            .run(&mut net, &mut [], 1, &mut no_progress())
            .unwrap_err();
        assert!(
            e.to_string().contains("0 kernels given for 1 populations"),
            "{e}"
        );
        let mut kernels: Vec<Box<dyn PopulationKernel>> =
            vec![Box::new(SpikeAt(vec![(0, vec![2])]))];
        let e = sim
            .run(&mut net, &mut kernels, 1, &mut no_progress())
            .unwrap_err();
        assert!(e.to_string().contains("spike index 2 at step 0"), "{e}");
        net.step = u64::MAX;
        assert!(sim
            .run(&mut net, &mut kernels, 1, &mut no_progress())
            .is_err());
    }

    #[test]
    fn progress_is_reported_at_start_end_and_on_percent_boundaries() {
        let mut net = Network::new(DT, 1).unwrap();
        net.add_population(population("p", 1)).unwrap();
        let mut kernels: Vec<Box<dyn PopulationKernel>> = vec![Box::new(Ramp)];
        let mut sim = Simulation::new();
        assert_eq!(sim.progress_interval, Duration::from_millis(100));
        // An interval longer than the run (robust on a loaded machine): only the first and
        // last report.
        sim.progress_interval = Duration::from_secs(3600);
        let mut calls = Vec::new();
        sim.run(&mut net, &mut kernels, 1000, &mut |d, t| calls.push((d, t)))
            .unwrap();
        assert_eq!(calls, vec![(0, 1000), (1000, 1000)]);
        sim.progress_interval = Duration::ZERO;
        calls.clear();
        sim.run(&mut net, &mut kernels, 1000, &mut |d, t| calls.push((d, t)))
            .unwrap();
        assert_eq!(calls.len(), 101);
        assert!(calls.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(calls[1], (10, 1000));
        assert_eq!(calls.last(), Some(&(1000, 1000)));
        assert_eq!(net.step, 2000);
    }

    /// A kernel with the C ABI: arrays[0] counts up, arrays[1] gets t + step·1000 +
    /// stream_key, and a neuron spikes (and resets) when its counter reaches 3.
    unsafe extern "C" fn counting_kernel(ctx: *mut KernelContext) {
        // SAFETY: called by NativeKernel::update with a context that satisfies its contract.
        let ctx = unsafe { &mut *ctx };
        for i in ctx.start..ctx.end {
            // SAFETY: two arrays of at least `end` elements; `i < end`.
            unsafe {
                let count = *ctx.arrays.add(0);
                let stamp = *ctx.arrays.add(1);
                let c = count.add(i as usize);
                *c += 1.0 + i as f64;
                *stamp.add(i as usize) = ctx.t + ctx.step as f64 * 1000.0 + ctx.stream_key as f64;
                if *c >= 3.0 {
                    *c = 0.0;
                    *ctx.spikes.add(ctx.n_spikes as usize) = i as u32;
                    ctx.n_spikes += 1;
                }
            }
        }
    }

    /// Reports one spike more than there are neurons.
    unsafe extern "C" fn lying_kernel(ctx: *mut KernelContext) {
        // SAFETY: a valid context; only `n_spikes` is written.
        let ctx = unsafe { &mut *ctx };
        ctx.n_spikes = ctx.end - ctx.start + 1;
    }

    #[test]
    fn native_kernels_are_called_through_the_c_abi() {
        let mut net = Network::new(DT, 1).unwrap();
        net.add_population(population("p", 3)).unwrap();
        // SAFETY: `counting_kernel` touches only elements start..end of two arrays and writes
        // at most one spike per element.
        let kernel = unsafe { NativeKernel::new(counting_kernel, 7, 2) };
        let mut kernels: Vec<Box<dyn PopulationKernel>> = vec![Box::new(kernel)];
        let stats = Simulation::new()
            .run(&mut net, &mut kernels, 6, &mut no_progress())
            .unwrap();
        // Neuron 0 counts 1,2,3→spike every 3 steps; neuron 1 counts 2,4→spike every 2 steps;
        // neuron 2 spikes every step.
        assert_eq!(stats.population_spikes, vec![2 + 3 + 6]);
        assert_eq!(net.populations[0].arrays[0], vec![0.0, 0.0, 0.0]);
        let last = 5.0 * DT + 5000.0 + 7.0;
        assert_eq!(net.populations[0].arrays[1], vec![last; 3]);

        // Spikes are appended after what is already in the buffer.
        let mut kernel = unsafe { NativeKernel::new(counting_kernel, 0, 2) };
        let mut p = population("q", 3);
        let mut spikes = vec![99];
        kernel.update(&mut p, 0, 0.0, &mut spikes).unwrap();
        assert_eq!(spikes, vec![99, 2]);

        // SAFETY: `lying_kernel` touches no array; its bad count is caught.
        let mut kernel = unsafe { NativeKernel::new(lying_kernel, 0, 2) };
        let mut spikes = Vec::new();
        let e = kernel.update(&mut p, 4, 0.0, &mut spikes).unwrap_err();
        assert!(e.to_string().contains("reported 4 spikes at step 4"), "{e}");
        assert!(spikes.is_empty());
        let mut kernel = unsafe { NativeKernel::new(counting_kernel, 0, 3) };
        let e = kernel.update(&mut p, 0, 0.0, &mut spikes).unwrap_err();
        assert!(e.to_string().contains("expects 3 arrays"), "{e}");
    }

    /// A leaky integrator with random drive, behind the C ABI: `v = 0.9 v + I + 0.3 u` with
    /// `u` uniform from `snnc_random`, then `I = 0`; spikes and resets to 0 above 1.
    extern "C" fn noisy_leaky_kernel(ctx: *mut KernelContext) {
        // SAFETY: called by the scheduler with two arrays covering `start..end`.
        unsafe {
            let c = &mut *ctx;
            let v = *c.arrays;
            let input = *c.arrays.add(1);
            for i in c.start..c.end {
                let u = crate::abi::snnc_random(
                    c.stream_key,
                    i as u32,
                    c.step,
                    0,
                    crate::abi::RANDOM_UNIFORM,
                    0.0,
                );
                let (vi, ii) = (v.add(i as usize), input.add(i as usize));
                *vi = 0.9 * *vi + *ii + 0.3 * u;
                *ii = 0.0;
                if *vi > 1.0 {
                    *vi = 0.0;
                    *c.spikes.add(c.n_spikes as usize) = i as u32;
                    c.n_spikes += 1;
                }
            }
        }
    }

    /// The same integrator as `noisy_leaky_kernel`, as a plain Rust kernel (run by thread 0).
    struct NoisyLeaky(Stream);

    impl PopulationKernel for NoisyLeaky {
        fn update(
            &mut self,
            population: &mut Population,
            step: u64,
            _: f64,
            spikes: &mut Vec<u32>,
        ) -> Result<(), RuntimeError> {
            let [v, input] = &mut population.arrays[..] else {
                unreachable!("two arrays")
            };
            let (v, input) = (
                v.as_f64_mut().expect("f64"),
                input.as_f64_mut().expect("f64"),
            );
            for i in 0..v.len() {
                let u = self.0.uniform(i as u32, step, 0);
                v[i] = 0.9 * v[i] + input[i] + 0.3 * u;
                input[i] = 0.0;
                if v[i] > 1.0 {
                    v[i] = 0.0;
                    spikes.push(i as u32);
                }
            }
            Ok(())
        }
    }

    /// A network of three populations (all compiled, or one of them a Rust kernel, which
    /// thread 0 runs whole), with per-synapse weights and delays, a uniform-weight projection,
    /// a spike source, a timed input and recordings, run on 1 to 6 threads: spikes, traces,
    /// final state and statistics must be bitwise equal.
    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        for mixed in [false, true] {
            results_do_not_depend_on_the_thread_count_with(mixed);
        }
    }

    fn results_do_not_depend_on_the_thread_count_with(mixed: bool) {
        let build = |dir: &Path| {
            let mut net = Network::new(DT, 3).unwrap();
            for (name, size) in [("a", 61), ("b", 9), ("c", 43)] {
                net.add_population(population(name, size)).unwrap();
            }
            let mut ab = Connectivity::bernoulli(&spec(61, 9), 0.5).unwrap();
            ab.set_delays(|pre, post, _| ((pre + 2 * post) % 4) as u16);
            let w = ab.fill_weights_f64(|pre, post, _| {
                0.01 * f64::from(pre % 7) + 0.003 * f64::from(post)
            });
            net.add_projection(Projection::new("a->b", Node::Population(0), 1, ab, w, 1).unwrap())
                .unwrap();
            let aa = Connectivity::bernoulli(
                &ProjectionSpec {
                    same_population: true,
                    ..spec(61, 61)
                },
                0.2,
            )
            .unwrap();
            let w = aa.fill_weights_f64(|pre, post, s| {
                0.02 - 0.001 * f64::from((pre * post) % 5) + 1e-9 * s as f64
            });
            net.add_projection(Projection::new("a->a", Node::Population(0), 0, aa, w, 1).unwrap())
                .unwrap();
            let mut ca = Connectivity::bernoulli(&spec(43, 61), 0.3).unwrap();
            ca.set_homogeneous_delay(2);
            net.add_projection(
                Projection::with_uniform_weight("c->a", Node::Population(2), 0, ca, -0.05, 1)
                    .unwrap(),
            )
            .unwrap();
            let (source, _) =
                SpikeSource::from_times("in", 5, &[1e-3, 2e-3, 2e-3, 5e-3], &[0, 4, 1, 3], DT, 400)
                    .unwrap();
            let s = net.add_source(source).unwrap();
            let sc = Connectivity::all_to_all(&spec(5, 43)).unwrap();
            let w = sc.fill_weights_f64(|pre, post, _| 0.1 + 0.01 * f64::from(pre + post));
            net.add_projection(Projection::new("in->c", Node::Source(s), 2, sc, w, 1).unwrap())
                .unwrap();
            let input =
                TimedInput::new("drive", 0, 1, vec![0.05, 0.0, 0.2], &[3], 50, 10..40).unwrap();
            net.add_input(input).unwrap();
            net.record_to(dir, OutputFormat::Npy).unwrap();
            for node in [
                Node::Population(0),
                Node::Population(1),
                Node::Population(2),
                Node::Source(s),
            ] {
                net.record_spikes(node).unwrap();
            }
            net.record_trace(0, 0, &[0, 17, 60], 3, TraceDtype::F64)
                .unwrap();
            net.record_trace(2, 0, &[1, 42], 1, TraceDtype::F64)
                .unwrap();
            net
        };
        let mut reference = None;
        for threads in 1..=6 {
            let dir = temp_dir(&format!("threads-{threads}-{mixed}"));
            let mut net = build(&dir);
            // SAFETY: `noisy_leaky_kernel` touches elements start..end of its two arrays and
            // writes at most one spike per element.
            let native = |key| unsafe { NativeKernel::new(noisy_leaky_kernel, key, 2) };
            let mut kernels: Vec<Box<dyn PopulationKernel>> = vec![
                Box::new(native(Stream::new(3, 0).key())),
                if mixed {
                    Box::new(NoisyLeaky(Stream::new(3, 1)))
                } else {
                    Box::new(native(Stream::new(3, 1).key()))
                },
                Box::new(native(Stream::new(3, 2).key())),
            ];
            let mut stats = Simulation::with_threads(threads)
                .run(&mut net, &mut kernels, 400, &mut no_progress())
                .unwrap();
            assert_eq!(stats.threads, threads);
            stats.wall_time = Duration::ZERO;
            stats.threads = 0;
            net.finish_recording(RunStatus::Complete).unwrap();
            let mut files: Vec<(String, Vec<u8>)> = fs::read_dir(&dir)
                .unwrap()
                .map(|e| {
                    let path = e.unwrap().path();
                    (
                        path.file_name().unwrap().to_string_lossy().into_owned(),
                        fs::read(&path).unwrap(),
                    )
                })
                .collect();
            files.sort();
            let state: Vec<Vec<u64>> = net
                .populations
                .iter()
                .flat_map(|p| {
                    p.arrays
                        .iter()
                        .map(|a| a.iter().map(|x| x.to_bits()).collect())
                })
                .collect();
            fs::remove_dir_all(&dir).unwrap();
            let result = (stats, files, state);
            match &reference {
                None => {
                    let (stats, files, _) = &result;
                    assert!(stats.population_spikes.iter().all(|&n| n > 20), "{stats:?}");
                    assert_eq!(stats.source_spikes, vec![4]);
                    assert!(
                        files.len() >= 9,
                        "{:?}",
                        files.iter().map(|f| &f.0).collect::<Vec<_>>()
                    );
                    reference = Some(result);
                }
                Some(reference) => assert!(
                    *reference == result,
                    "{threads} threads differ from 1 (mixed: {mixed})"
                ),
            }
        }
    }

    /// A kernel error on any thread stops every thread, finishes the recording as
    /// interrupted and reports the error.
    #[test]
    fn an_error_on_one_thread_stops_the_run() {
        let dir = temp_dir("thread-error");
        let mut net = Network::new(DT, 1).unwrap();
        net.add_population(population("p", 64)).unwrap();
        net.record_to(&dir, OutputFormat::Npy).unwrap();
        net.record_spikes(Node::Population(0)).unwrap();
        // SAFETY: `lying_kernel` touches no array; its bad count is caught.
        let mut kernels: Vec<Box<dyn PopulationKernel>> =
            vec![Box::new(unsafe { NativeKernel::new(lying_kernel, 0, 2) })];
        let e = Simulation::with_threads(3)
            .run(&mut net, &mut kernels, 10, &mut no_progress())
            .unwrap_err();
        // Thread 0 owns neurons 0..24 (a third of 64, rounded up to a multiple of 8).
        assert!(
            e.to_string()
                .contains("reported 25 spikes at step 0 for 24 neurons"),
            "{e}"
        );
        let manifest = fs::read_to_string(dir.join("manifest.json")).unwrap();
        assert!(manifest.contains("interrupted"), "{manifest}");
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Emits the first element past its range, which belongs to another thread.
    unsafe extern "C" fn trespassing_kernel(ctx: *mut KernelContext) {
        // SAFETY: a valid context with room for `end - start >= 1` spikes.
        let ctx = unsafe { &mut *ctx };
        if ctx.end > ctx.start {
            unsafe { *ctx.spikes = ctx.end as u32 };
            ctx.n_spikes = 1;
        }
    }

    /// A spike index outside the neurons a thread was given is an error naming that range.
    #[test]
    fn a_spike_outside_the_threads_range_is_an_error() {
        let mut net = Network::new(DT, 1).unwrap();
        net.add_population(population("p", 64)).unwrap();
        // SAFETY: `trespassing_kernel` touches no array and writes one spike.
        let mut kernels: Vec<Box<dyn PopulationKernel>> = vec![Box::new(unsafe {
            NativeKernel::new(trespassing_kernel, 0, 2)
        })];
        let e = Simulation::with_threads(2)
            .run(&mut net, &mut kernels, 3, &mut no_progress())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("spike index 32 at step 0, outside the neurons 0..32 it was called on"),
            "{e}"
        );
    }
}
