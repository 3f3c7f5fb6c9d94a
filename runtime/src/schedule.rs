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
//! 4. **Delivery into rings**: for each projection, in projection order, for each spike of its
//!    presynaptic node in step `k` (in the order the kernel emitted them), every synapse `s` of
//!    that row adds `weights[s]` into the ring slot of step `k + delay[s]`.
//! 5. **Ring to state**: for each projection, in projection order, the ring slot of step `k` is
//!    added into the target array of the post population
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
//! # Determinism
//!
//! Everything is sequential and in fixed order (populations, sources, projections, spikes in
//! emission order, synapses in CSR order), so floating-point sums come out the same on every
//! run; random numbers are counter-based and keyed by seed, element and step.
//!
//! # Interruption
//!
//! If anything fails mid-run (a kernel error, a recording error), the recorders are finished
//! with [`RunStatus::Interrupted`] before the error is returned, so the output directory holds
//! valid files with everything recorded up to the failing step and a manifest saying the run
//! was interrupted. The network is then left in the middle of a step and should not be run
//! further. After a successful run recording is NOT finished, because runs can be chained; the
//! caller calls [`Network::finish_recording`] with [`RunStatus::Complete`] at the end.

use std::time::{Duration, Instant};

use crate::abi::{KernelContext, KernelFn};
use crate::error::RuntimeError;
use crate::network::{Network, Node, Population, Projection, Weights};
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
    /// Every call of `function` with a [`KernelContext`] built as [`PopulationKernel::update`]
    /// builds it (`arrays` pointing to `n_arrays` pointers to arrays of at least `end`
    /// elements, `start = 0`, `end = population size`, `spikes` pointing to room for
    /// `end - start` u32 values and `n_spikes = 0`) must:
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
        if let Some(&bad) = spikes[already..].iter().find(|&&i| i as usize >= size) {
            spikes.truncate(already);
            return Err(RuntimeError::invalid(
                context(),
                format!("the kernel emitted spike index {bad} at step {step}, outside 0..{size}"),
            ));
        }
        Ok(())
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
}

impl RunStats {
    pub fn total_spikes(&self) -> u64 {
        self.population_spikes.iter().sum()
    }
}

/// Runs networks; holds the per-step scratch buffers so steps allocate nothing.
#[derive(Debug)]
pub struct Simulation {
    /// The least wall time between two progress reports (besides the first and last).
    pub progress_interval: Duration,
    population_spikes: Vec<Vec<u32>>,
    source_spikes: Vec<Vec<u32>>,
    source_cursors: Vec<usize>,
}

impl Default for Simulation {
    fn default() -> Self {
        Self::new()
    }
}

impl Simulation {
    pub fn new() -> Self {
        Simulation {
            progress_interval: Duration::from_millis(100),
            population_spikes: Vec::new(),
            source_spikes: Vec::new(),
            source_cursors: Vec::new(),
        }
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
        self.prepare(network);
        let mut stats = RunStats {
            steps: 0,
            population_spikes: vec![0; network.populations.len()],
            source_spikes: vec![0; network.sources.len()],
            synaptic_events: 0,
            wall_time: Duration::ZERO,
        };
        let started = Instant::now();
        let result = self.step_loop(network, kernels, handlers, steps, progress, &mut stats);
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

    /// Sizes the scratch buffers and positions each source at the current step.
    fn prepare(&mut self, network: &Network) {
        self.population_spikes
            .resize_with(network.populations.len(), Vec::new);
        for (buffer, p) in self.population_spikes.iter_mut().zip(&network.populations) {
            buffer.clear();
            buffer.reserve(p.size);
        }
        self.source_spikes
            .resize_with(network.sources.len(), Vec::new);
        self.source_cursors.clear();
        self.source_cursors.extend(
            network
                .sources
                .iter()
                .map(|s| s.spikes.partition_point(|&(step, _)| step < network.step)),
        );
    }

    fn step_loop(
        &mut self,
        network: &mut Network,
        kernels: &mut [Box<dyn PopulationKernel + '_>],
        handlers: &mut [ProjectionHandlers<'_>],
        steps: u64,
        progress: &mut dyn FnMut(u64, u64),
        stats: &mut RunStats,
    ) -> Result<(), RuntimeError> {
        let Network {
            dt,
            populations,
            sources,
            projections,
            inputs,
            recording,
            step,
            ..
        } = network;
        let dt = *dt;
        let percent = (steps / 100).max(1);
        let mut next_boundary = percent;
        let mut last_report = Instant::now();
        progress(0, steps);

        for done in 1..=steps {
            let k = *step;
            let t = k as f64 * dt;

            // (1) Timed inputs.
            for input in inputs.iter() {
                input.apply(&mut populations[input.population], k)?;
            }

            // (2) Neurons, then spike sources.
            for (p, (population, kernel)) in
                populations.iter_mut().zip(kernels.iter_mut()).enumerate()
            {
                let spikes = &mut self.population_spikes[p];
                spikes.clear();
                kernel.update(population, k, t, spikes)?;
                if let Some(&bad) = spikes.iter().find(|&&i| i as usize >= population.size) {
                    return Err(RuntimeError::invalid(
                        format!("population '{}'", population.name),
                        format!(
                            "the kernel emitted spike index {bad} at step {k}, outside 0..{}",
                            population.size
                        ),
                    ));
                }
                stats.population_spikes[p] += spikes.len() as u64;
            }
            for (s, source) in sources.iter().enumerate() {
                let spikes = &mut self.source_spikes[s];
                spikes.clear();
                let cursor = &mut self.source_cursors[s];
                while let Some(&(event_step, index)) = source.spikes.get(*cursor) {
                    if event_step > k {
                        break;
                    }
                    if event_step == k {
                        spikes.push(index);
                    }
                    *cursor += 1;
                }
                stats.source_spikes[s] += spikes.len() as u64;
            }
            let spikes_of = |node: Node| -> &[u32] {
                match node {
                    Node::Population(p) => &self.population_spikes[p],
                    Node::Source(s) => &self.source_spikes[s],
                }
            };

            // (3) Spike recording.
            if let Some(recording) = recording.as_mut() {
                for monitor in &recording.spikes {
                    let spikes = spikes_of(monitor.node);
                    if spikes.is_empty() {
                        continue;
                    }
                    let recorded_step = match monitor.node {
                        Node::Population(_) => k + 1,
                        Node::Source(_) => k,
                    };
                    recording
                        .recorder
                        .record_spikes(monitor.handle, recorded_step, spikes)?;
                }
            }

            // (4) Delivery into the rings. Plastic projections run their handlers instead
            // (`plasticity.rs`): `on pre` for the spikes arriving now, then `on post`.
            for (index, projection) in projections.iter_mut().enumerate() {
                if let Some(plastic) = projection.plasticity.as_deref_mut() {
                    let handlers = handlers
                        .iter_mut()
                        .find(|h| h.projection == index)
                        .expect("checked when the run started");
                    stats.synaptic_events += plastic.step(
                        &projection.connectivity,
                        &mut projection.ring,
                        handlers,
                        spikes_of(projection.pre),
                        &self.population_spikes[projection.post],
                        k,
                        dt,
                    )?;
                    continue;
                }
                let spikes = spikes_of(projection.pre);
                if spikes.is_empty() {
                    continue;
                }
                let Projection {
                    connectivity,
                    weights,
                    ring,
                    ..
                } = projection;
                match weights {
                    Weights::Uniform { value, .. } => {
                        for &pre in spikes {
                            ring.deliver_uniform(connectivity, pre, *value)?;
                        }
                    }
                    Weights::PerSynapse(w) => {
                        for &pre in spikes {
                            ring.deliver(connectivity, pre, w)?;
                        }
                    }
                }
                for &pre in spikes {
                    stats.synaptic_events += connectivity.row_range(pre).len() as u64;
                }
            }

            // (5) The rings' slot of step k into the target arrays (and cleared).
            for projection in projections.iter_mut() {
                let target = &mut populations[projection.post].arrays[projection.target_array];
                projection.ring.drain_into(target);
            }

            // (6) Trace recording, after the step: the state at (k + 1)·dt.
            if let Some(recording) = recording.as_mut() {
                recording
                    .synapses
                    .sample(&mut recording.recorder, projections, k)?;
                for monitor in &recording.traces {
                    if (k + 1) % monitor.every_steps == 0 {
                        recording.recorder.record_trace_scaled(
                            monitor.handle,
                            k + 1,
                            &populations[monitor.population].arrays[monitor.array],
                            monitor.scale,
                        )?;
                    }
                }
            }

            *step += 1;
            stats.steps = done;
            if done >= next_boundary && done < steps {
                next_boundary = (done / percent + 1) * percent;
                if last_report.elapsed() >= self.progress_interval {
                    progress(done, steps);
                    last_report = Instant::now();
                }
            }
        }
        progress(steps, steps);
        Ok(())
    }
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
            self.log.borrow_mut().push((step, array.clone()));
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
            for (i, v) in population.arrays[0].iter_mut().enumerate() {
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
            for (i, (v, input)) in v[0].iter_mut().zip(rest[0].iter_mut()).enumerate() {
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
}
