//! The built network: populations, spike sources, projections, timed inputs and what to record.
//!
//! This module owns the data a simulation runs on and the checks that make it consistent: every
//! projection's connectivity matches the sizes of its presynaptic node and postsynaptic
//! population, its weights cover every synapse, its target array exists and its delay ring is
//! large enough for its longest delay. It does not step anything; `schedule.rs` does, and it
//! does not know how kernels were produced.
//!
//! Units: every array holds SI values (volts, amperes, siemens, seconds). Each array carries
//! the unit the user wrote and its SI scale (`1 mV` is `1e-3`), which is used only when a trace
//! is recorded: recorded traces are written in the user's unit (value / scale).
//!
//! Spike sources ("spike-source arrays") are fixed lists of `(step, index)` events. Times given
//! in seconds are rounded to the nearest step; how many were not already multiples of `dt` is
//! returned so the caller can warn. A source spike with time `t = m·dt` is emitted in step `m`
//! and is then treated exactly like a neuron spike of step `m` (see `schedule.rs`).
//!
//! Memory: [`Network::check_memory`] estimates the bytes of a network from its sizes alone, so
//! the driver can call it BEFORE building connectivity and allocating state.

use std::path::{Path, PathBuf};

use crate::array::{Array, Precision};
use crate::connectivity::Connectivity;
use crate::delays::DelayRing;
use crate::error::RuntimeError;
use crate::inputs::TimedInput;
use crate::memory::{
    check_fits, MemoryEstimate, PopulationFootprint, ProjectionFootprint, RingFootprint,
};
use crate::record::{OutputFormat, Recorder, RunStatus, SpikeHandle, TraceDtype, TraceHandle};

/// One per-neuron variable of a population: its name, the unit the user wrote and that unit's
/// SI scale (the SI value of one user unit).
#[derive(Clone, Debug, PartialEq)]
pub struct VariableSpec {
    pub name: String,
    pub unit: String,
    pub scale: f64,
}

impl VariableSpec {
    pub fn new(name: impl Into<String>, unit: impl Into<String>, scale: f64) -> Self {
        VariableSpec {
            name: name.into(),
            unit: unit.into(),
            scale,
        }
    }
}

/// A population of `size` neurons whose state is a structure of arrays, one array per kernel
/// variable, in the kernel's variable order. Refractory and spike bookkeeping live in these
/// arrays too; the runtime does not interpret them.
#[derive(Clone, Debug)]
pub struct Population {
    pub name: String,
    pub size: usize,
    /// One array of `size` SI values per kernel variable, in the network's precision.
    pub arrays: Vec<Array>,
    pub array_names: Vec<String>,
    /// The unit of each array as the user wrote it and its SI scale.
    pub array_units: Vec<(String, f64)>,
}

impl Population {
    /// A population with every array zero-filled.
    pub fn new(
        name: impl Into<String>,
        size: usize,
        variables: &[VariableSpec],
    ) -> Result<Self, RuntimeError> {
        Self::with_precision(name, size, variables, Precision::F64)
    }

    /// A population with every array zero-filled and stored in `precision`.
    pub fn with_precision(
        name: impl Into<String>,
        size: usize,
        variables: &[VariableSpec],
        precision: Precision,
    ) -> Result<Self, RuntimeError> {
        let name = name.into();
        let population = Population {
            arrays: vec![Array::zeros(precision, size); variables.len()],
            array_names: variables.iter().map(|v| v.name.clone()).collect(),
            array_units: variables
                .iter()
                .map(|v| (v.unit.clone(), v.scale))
                .collect(),
            name,
            size,
        };
        population.validate()?;
        Ok(population)
    }

    /// Checks that there is one name and unit per array, every array has `size` elements,
    /// names are unique and scales are positive and finite.
    pub fn validate(&self) -> Result<(), RuntimeError> {
        let context = || format!("population '{}'", self.name);
        if u32::try_from(self.size).is_err() {
            return Err(RuntimeError::invalid(
                context(),
                format!(
                    "{} neurons exceed the limit of {} (indices are 32-bit)",
                    self.size,
                    u32::MAX
                ),
            ));
        }
        if self.array_names.len() != self.arrays.len()
            || self.array_units.len() != self.arrays.len()
        {
            return Err(RuntimeError::invalid(
                context(),
                format!(
                    "{} arrays but {} names and {} units",
                    self.arrays.len(),
                    self.array_names.len(),
                    self.array_units.len()
                ),
            ));
        }
        for (i, array) in self.arrays.iter().enumerate() {
            if array.len() != self.size {
                return Err(RuntimeError::invalid(
                    context(),
                    format!(
                        "array '{}' has {} elements, expected {}",
                        self.array_names[i],
                        array.len(),
                        self.size
                    ),
                ));
            }
            if self.array_names[..i].contains(&self.array_names[i]) {
                return Err(RuntimeError::invalid(
                    context(),
                    format!("array name '{}' is used twice", self.array_names[i]),
                ));
            }
            let scale = self.array_units[i].1;
            if !(scale.is_finite() && scale > 0.0) {
                return Err(RuntimeError::invalid(
                    context(),
                    format!(
                        "array '{}': unit scale {scale} must be positive and finite",
                        self.array_names[i]
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The index of the array called `name`.
    pub fn array_index(&self, name: &str) -> Option<usize> {
        self.array_names.iter().position(|n| n == name)
    }

    /// The array called `name`, in SI units.
    pub fn array(&self, name: &str) -> Option<&Array> {
        self.array_index(name).map(|i| &self.arrays[i])
    }

    /// The array called `name`, mutably, in SI units.
    pub fn array_mut(&mut self, name: &str) -> Option<&mut Array> {
        self.array_index(name).map(move |i| &mut self.arrays[i])
    }

    /// Bytes of neuron state.
    pub fn bytes(&self) -> u64 {
        self.arrays.iter().map(Array::bytes).sum()
    }
}

/// Where a projection's spikes come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Node {
    /// An index into [`Network::populations`].
    Population(usize),
    /// An index into [`Network::sources`].
    Source(usize),
}

/// How spike times given in seconds were rounded to steps.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SourceRounding {
    /// Times that were not multiples of `dt` (beyond floating-point noise) and were rounded to
    /// the nearest step.
    pub rounded: usize,
    /// The largest shift rounding made, in seconds.
    pub max_shift_s: f64,
    /// Events that share their `(step, index)` with an earlier one after rounding; each is
    /// still delivered (like a spike of multiplicity > 1).
    pub duplicates: usize,
}

/// A fixed list of spike events: a "spike-source array".
#[derive(Clone, Debug, PartialEq)]
pub struct SpikeSource {
    pub name: String,
    pub size: usize,
    /// `(step, index)` pairs sorted by step, then index.
    pub spikes: Vec<(u64, u32)>,
}

impl SpikeSource {
    /// A source from events given in steps. Events are sorted; an index `>= size` is an error
    /// naming the source.
    pub fn new(
        name: impl Into<String>,
        size: usize,
        mut spikes: Vec<(u64, u32)>,
    ) -> Result<Self, RuntimeError> {
        let name = name.into();
        if u32::try_from(size).is_err() {
            return Err(RuntimeError::invalid(
                format!("spike source '{name}'"),
                format!("{size} elements exceed the 32-bit index limit"),
            ));
        }
        if let Some(&(step, index)) = spikes.iter().find(|&&(_, i)| i as usize >= size) {
            return Err(RuntimeError::invalid(
                format!("spike source '{name}'"),
                format!("index {index} (at step {step}) is outside 0..{size}"),
            ));
        }
        spikes.sort_unstable();
        Ok(SpikeSource { name, size, spikes })
    }

    /// A source from spike times in seconds and element indices, for a run of `run_steps`
    /// steps of `dt` seconds. Times are rounded to the nearest step (halves round up; the
    /// count of times that were not multiples of `dt` is returned for a warning). Negative,
    /// non-finite or beyond-the-run times (step `>= run_steps`), negative indices, indices `>= size` and
    /// arrays of different lengths are errors naming the source.
    pub fn from_times(
        name: impl Into<String>,
        size: usize,
        times_s: &[f64],
        indices: &[i64],
        dt: f64,
        run_steps: u64,
    ) -> Result<(Self, SourceRounding), RuntimeError> {
        let name = name.into();
        let error =
            |message: String| RuntimeError::invalid(format!("spike source '{name}'"), message);
        if !(dt.is_finite() && dt > 0.0) {
            return Err(error(format!(
                "dt = {dt} must be a positive number of seconds"
            )));
        }
        if times_s.len() != indices.len() {
            return Err(error(format!(
                "{} times but {} indices; both arrays must have the same length",
                times_s.len(),
                indices.len()
            )));
        }
        let mut rounding = SourceRounding::default();
        let mut spikes = Vec::with_capacity(times_s.len());
        for (n, (&t, &i)) in times_s.iter().zip(indices).enumerate() {
            if !t.is_finite() || t < 0.0 {
                return Err(error(format!(
                    "spike {n} has time {t} s; times must be finite and non-negative"
                )));
            }
            if i < 0 || i as u64 >= size as u64 {
                return Err(error(format!(
                    "spike {n} (t = {t} s) has index {i}, outside 0..{size}"
                )));
            }
            let exact = t / dt;
            let step = exact.round();
            // Division leaves relative noise of a few ulps; only larger offsets count as
            // rounding the user should hear about.
            let noise = 1e-9 + 8.0 * f64::EPSILON * exact;
            if (exact - step).abs() > noise {
                rounding.rounded += 1;
                rounding.max_shift_s = rounding.max_shift_s.max((step * dt - t).abs());
            }
            if step >= run_steps as f64 {
                return Err(error(format!(
                    "spike {n} has time {t} s (step {step}), at or beyond the end of the run \
                     ({run_steps} steps of {dt} s = {} s)",
                    run_steps as f64 * dt
                )));
            }
            spikes.push((step as u64, i as u32));
        }
        let source = SpikeSource::new(name, size, spikes)?;
        rounding.duplicates = source.spikes.windows(2).filter(|w| w[0] == w[1]).count();
        Ok((source, rounding))
    }

    /// The events of step `step`, as a range into `spikes`.
    pub fn range_of_step(&self, step: u64) -> std::ops::Range<usize> {
        let start = self.spikes.partition_point(|&(s, _)| s < step);
        let end = start + self.spikes[start..].partition_point(|&(s, _)| s == step);
        start..end
    }

    /// Bytes held by the event list.
    pub fn bytes(&self) -> u64 {
        (self.spikes.len() * std::mem::size_of::<(u64, u32)>()) as u64
    }
}

/// The weights of a projection's synapses, in SI units.
///
/// A projection whose synapses all carry the same weight stores it once instead of once per
/// synapse (8 bytes per synapse less). Delivery adds exactly the same value either way, so the
/// two forms give bit-identical results.
#[derive(Clone, Debug, PartialEq)]
pub enum Weights {
    /// Every one of `count` synapses has weight `value`.
    Uniform { value: f64, count: u64 },
    /// One weight per synapse, in CSR order.
    PerSynapse(Vec<f64>),
    /// One weight per synapse, in CSR order, stored as `f32` (a network of `precision =
    /// f32`); delivery widens each weight exactly and sums in `f64`.
    PerSynapseF32(Vec<f32>),
}

impl Weights {
    /// The number of synapses covered.
    pub fn len(&self) -> u64 {
        match self {
            Weights::Uniform { count, .. } => *count,
            Weights::PerSynapse(w) => w.len() as u64,
            Weights::PerSynapseF32(w) => w.len() as u64,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The weight of synapse `syn` (`None` when out of range).
    pub fn get(&self, syn: usize) -> Option<f64> {
        match self {
            Weights::Uniform { value, count } => ((syn as u64) < *count).then_some(*value),
            Weights::PerSynapse(w) => w.get(syn).copied(),
            Weights::PerSynapseF32(w) => w.get(syn).map(|&w| f64::from(w)),
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        match self {
            Weights::Uniform { .. } => 0,
            Weights::PerSynapse(w) => w.len() as u64 * 8,
            Weights::PerSynapseF32(w) => w.len() as u64 * 4,
        }
    }

    /// Per-synapse `weights` stored in `precision` (each rounded once for `f32`).
    pub fn per_synapse(precision: Precision, weights: Vec<f64>) -> Self {
        match precision {
            Precision::F64 => Weights::PerSynapse(weights),
            Precision::F32 => {
                Weights::PerSynapseF32(weights.into_iter().map(|w| w as f32).collect())
            }
        }
    }
}

/// Synapses from a node to a population, their weights and their delay ring.
#[derive(Debug)]
pub struct Projection {
    pub name: String,
    pub pre: Node,
    /// An index into [`Network::populations`].
    pub post: usize,
    pub connectivity: Connectivity,
    /// The SI weight of every synapse, in CSR order.
    pub weights: Weights,
    /// The index of the post population's array that delivered weights are added to.
    pub target_array: usize,
    /// Pending input per post neuron, sized for the connectivity's longest delay.
    pub ring: DelayRing<f64>,
    /// The state of plastic synapses; `None` for static ones. A plastic projection delivers
    /// through its handlers (`plasticity.rs`) instead of `weights`.
    pub plasticity: Option<Box<crate::plasticity::Plasticity>>,
}

impl Projection {
    /// A projection whose ring is sized from the connectivity (`n_post` targets, delays up to
    /// `connectivity.max_delay()` steps). Delays live in the connectivity (homogeneous or per
    /// synapse, in steps; 0 is allowed). Sizes are checked against the network when it is
    /// added with [`Network::add_projection`].
    pub fn new(
        name: impl Into<String>,
        pre: Node,
        post: usize,
        connectivity: Connectivity,
        weights: Vec<f64>,
        target_array: usize,
    ) -> Result<Self, RuntimeError> {
        Self::with_weights(
            name,
            pre,
            post,
            connectivity,
            Weights::PerSynapse(weights),
            target_array,
        )
    }

    /// As [`Self::new`], with every synapse carrying the weight `weight` (stored once).
    pub fn with_uniform_weight(
        name: impl Into<String>,
        pre: Node,
        post: usize,
        connectivity: Connectivity,
        weight: f64,
        target_array: usize,
    ) -> Result<Self, RuntimeError> {
        let count = connectivity.n_synapses();
        Self::with_weights(
            name,
            pre,
            post,
            connectivity,
            Weights::Uniform {
                value: weight,
                count,
            },
            target_array,
        )
    }

    /// As [`Self::new`], with weights in either form.
    pub fn with_weights(
        name: impl Into<String>,
        pre: Node,
        post: usize,
        connectivity: Connectivity,
        weights: Weights,
        target_array: usize,
    ) -> Result<Self, RuntimeError> {
        let name = name.into();
        if weights.len() != connectivity.n_synapses() {
            return Err(RuntimeError::invalid(
                format!("projection '{name}'"),
                format!(
                    "{} weights given for {} synapses",
                    weights.len(),
                    connectivity.n_synapses()
                ),
            ));
        }
        let ring = DelayRing::new(connectivity.n_post() as usize, connectivity.max_delay())?;
        Ok(Projection {
            name,
            pre,
            post,
            connectivity,
            weights,
            target_array,
            ring,
            plasticity: None,
        })
    }

    /// Bytes of synapses, weights and ring.
    pub fn bytes(&self) -> u64 {
        self.connectivity.total_bytes()
            + self.weights.bytes()
            + self.ring.bytes()
            + self.plasticity.as_ref().map_or(0, |p| p.bytes())
    }
}

/// A spike monitor: which node, and where the recorder keeps it.
#[derive(Clone, Copy, Debug)]
pub struct SpikeMonitor {
    pub node: Node,
    pub handle: SpikeHandle,
}

/// A trace monitor: which array of which neurons, sampled every `every_steps` steps.
#[derive(Clone, Debug)]
pub struct TraceMonitor {
    pub population: usize,
    pub array: usize,
    pub every_steps: u64,
    /// The SI value of one recorded unit; samples are written as value / scale.
    pub scale: f64,
    pub handle: TraceHandle,
}

/// What is recorded and the recorder it goes to.
#[derive(Debug)]
pub struct Recording {
    pub recorder: Recorder,
    pub spikes: Vec<SpikeMonitor>,
    pub traces: Vec<TraceMonitor>,
    /// Recordings of plastic synapses (`plasticity.rs`).
    pub synapses: crate::plasticity::SynapseRecording,
}

/// The sizes of a population to be built, for [`Network::check_memory`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PopulationPlan {
    pub size: u64,
    pub n_arrays: u64,
    /// The arrays' storage type.
    pub precision: Precision,
}

/// The sizes of a projection to be built, for [`Network::check_memory`]. For random
/// connectivity `synapses` is the expected count (e.g. `p · n_pre · n_post`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProjectionPlan {
    pub n_pre: u64,
    pub n_post: u64,
    pub synapses: u64,
    pub heterogeneous_delays: bool,
    pub max_delay_steps: u64,
    /// Bytes per synapse of plastic state (per-synapse arrays and the post-to-synapse index;
    /// `plasticity.rs`), 0 for static synapses.
    pub plastic_bytes_per_synapse: u64,
    /// The storage type of per-synapse weights.
    pub precision: Precision,
}

/// Everything a simulation runs on.
#[derive(Debug)]
pub struct Network {
    /// The time step in seconds.
    pub dt: f64,
    pub seed: u64,
    pub populations: Vec<Population>,
    pub sources: Vec<SpikeSource>,
    pub projections: Vec<Projection>,
    pub inputs: Vec<TimedInput>,
    pub recording: Option<Recording>,
    /// Population-level variables (`reductions.rs`), computed by the scheduler every step.
    pub reductions: crate::reductions::Reductions,
    /// Steps completed so far; the next step to run. Rings and inputs are tied to it.
    pub step: u64,
}

impl Network {
    pub fn new(dt: f64, seed: u64) -> Result<Self, RuntimeError> {
        if !(dt.is_finite() && dt > 0.0) {
            return Err(RuntimeError::invalid(
                "network",
                format!("dt = {dt} must be a positive number of seconds"),
            ));
        }
        Ok(Network {
            dt,
            seed,
            populations: Vec::new(),
            sources: Vec::new(),
            projections: Vec::new(),
            inputs: Vec::new(),
            recording: None,
            reductions: Default::default(),
            step: 0,
        })
    }

    /// The bytes a network of these sizes needs: 8 bytes (4 for `f32`) per neuron per array,
    /// per synapse a 4-byte target, an 8-byte (4-byte) weight and a 2-byte delay when delays
    /// are heterogeneous, row
    /// offsets, and an f64 ring of `(max_delay + 1)` slots per post neuron per projection.
    /// `extra_bytes` (spike-source events, timed-input tables) is added to the neuron part.
    pub fn estimate_memory(
        populations: &[PopulationPlan],
        projections: &[ProjectionPlan],
        extra_bytes: u64,
    ) -> MemoryEstimate {
        let pops: Vec<PopulationFootprint> = populations
            .iter()
            .map(|p| PopulationFootprint {
                neurons: p.size,
                state_bytes_per_neuron: p.n_arrays.saturating_mul(p.precision.bytes()),
            })
            .collect();
        let projs: Vec<ProjectionFootprint> = projections
            .iter()
            .map(|p| ProjectionFootprint {
                n_pre: p.n_pre,
                synapses: p.synapses,
                // At most: a u32 target, a weight in the network's precision, a two-byte delay
                // (one byte when the built delays all fit; they are not known before building).
                bytes_per_synapse: 4
                    + p.precision.bytes()
                    + if p.heterogeneous_delays { 2 } else { 0 }
                    + p.plastic_bytes_per_synapse,
            })
            .collect();
        let rings: Vec<RingFootprint> = projections
            .iter()
            .map(|p| RingFootprint {
                targets: p.n_post,
                slots: p.max_delay_steps.saturating_add(1),
                bytes_per_value: 8,
            })
            .collect();
        let mut estimate = MemoryEstimate::new(&pops, &projs, &rings);
        estimate.neuron_bytes = estimate.neuron_bytes.saturating_add(extra_bytes);
        estimate
    }

    /// [`Self::estimate_memory`], checked against the memory available now. Call it before
    /// building connectivity so a network that cannot fit fails with a clear message.
    pub fn check_memory(
        populations: &[PopulationPlan],
        projections: &[ProjectionPlan],
        extra_bytes: u64,
    ) -> Result<MemoryEstimate, RuntimeError> {
        let estimate = Self::estimate_memory(populations, projections, extra_bytes);
        check_fits(&estimate)?;
        Ok(estimate)
    }

    /// The bytes the built network holds, by kind.
    pub fn memory_in_use(&self) -> MemoryEstimate {
        let neuron_bytes = self.populations.iter().map(Population::bytes).sum::<u64>()
            + self.sources.iter().map(SpikeSource::bytes).sum::<u64>()
            + self.inputs.iter().map(TimedInput::bytes).sum::<u64>();
        let mut synapse_bytes = 0;
        let mut ring_buffer_bytes = 0;
        for p in &self.projections {
            synapse_bytes += p.connectivity.total_bytes() + p.weights.bytes();
            ring_buffer_bytes += p.ring.bytes();
        }
        MemoryEstimate {
            neuron_bytes,
            synapse_bytes,
            ring_buffer_bytes,
        }
    }

    pub fn add_population(&mut self, population: Population) -> Result<usize, RuntimeError> {
        population.validate()?;
        if self.populations.iter().any(|p| p.name == population.name) {
            return Err(RuntimeError::invalid(
                format!("population '{}'", population.name),
                "a population of this name already exists",
            ));
        }
        self.populations.push(population);
        Ok(self.populations.len() - 1)
    }

    pub fn add_source(&mut self, source: SpikeSource) -> Result<usize, RuntimeError> {
        if self.sources.iter().any(|s| s.name == source.name) {
            return Err(RuntimeError::invalid(
                format!("spike source '{}'", source.name),
                "a spike source of this name already exists",
            ));
        }
        if let Some(&(_, i)) = source
            .spikes
            .iter()
            .find(|&&(_, i)| i as usize >= source.size)
        {
            return Err(RuntimeError::invalid(
                format!("spike source '{}'", source.name),
                format!("index {i} is outside 0..{}", source.size),
            ));
        }
        if !source.spikes.is_sorted() {
            return Err(RuntimeError::invalid(
                format!("spike source '{}'", source.name),
                "events are not sorted by step",
            ));
        }
        self.sources.push(source);
        Ok(self.sources.len() - 1)
    }

    /// The number of elements of `node`.
    pub fn node_size(&self, node: Node) -> Result<usize, RuntimeError> {
        match node {
            Node::Population(p) => self.populations.get(p).map(|p| p.size),
            Node::Source(s) => self.sources.get(s).map(|s| s.size),
        }
        .ok_or_else(|| RuntimeError::invalid("network", format!("{node:?} does not exist")))
    }

    /// A description of `node` for messages, e.g. "population 'exc'".
    pub fn node_name(&self, node: Node) -> String {
        match node {
            Node::Population(p) => match self.populations.get(p) {
                Some(p) => format!("population '{}'", p.name),
                None => format!("population #{p}"),
            },
            Node::Source(s) => match self.sources.get(s) {
                Some(s) => format!("spike source '{}'", s.name),
                None => format!("spike source #{s}"),
            },
        }
    }

    fn check_projection(&self, p: &Projection) -> Result<(), RuntimeError> {
        let error =
            |message: String| RuntimeError::invalid(format!("projection '{}'", p.name), message);
        let n_pre = self.node_size(p.pre).map_err(|e| error(e.to_string()))?;
        let post = self
            .populations
            .get(p.post)
            .ok_or_else(|| error(format!("post population #{} does not exist", p.post)))?;
        if p.connectivity.n_pre() as usize != n_pre {
            return Err(error(format!(
                "connectivity has {} presynaptic elements but {} has {n_pre}",
                p.connectivity.n_pre(),
                self.node_name(p.pre)
            )));
        }
        if p.connectivity.n_post() as usize != post.size {
            return Err(error(format!(
                "connectivity has {} postsynaptic elements but population '{}' has {}",
                p.connectivity.n_post(),
                post.name,
                post.size
            )));
        }
        if p.weights.len() != p.connectivity.n_synapses() {
            return Err(error(format!(
                "{} weights given for {} synapses",
                p.weights.len(),
                p.connectivity.n_synapses()
            )));
        }
        if p.target_array >= post.arrays.len() {
            return Err(error(format!(
                "target array #{} does not exist; population '{}' has {} arrays",
                p.target_array,
                post.name,
                post.arrays.len()
            )));
        }
        if p.ring.n_targets() != post.size
            || p.ring.max_delay() < usize::from(p.connectivity.max_delay())
        {
            return Err(error(format!(
                "delay ring has {} targets and delays up to {} steps, but the projection needs {} \
                 targets and delays up to {} steps",
                p.ring.n_targets(),
                p.ring.max_delay(),
                post.size,
                p.connectivity.max_delay()
            )));
        }
        Ok(())
    }

    /// Adds a projection after checking it against the nodes it connects.
    pub fn add_projection(&mut self, projection: Projection) -> Result<usize, RuntimeError> {
        self.check_projection(&projection)?;
        self.projections.push(projection);
        Ok(self.projections.len() - 1)
    }

    /// Adds a timed input after checking its population, array and range.
    pub fn add_input(&mut self, input: TimedInput) -> Result<usize, RuntimeError> {
        input.check_against(&self.populations)?;
        self.inputs.push(input);
        Ok(self.inputs.len() - 1)
    }

    /// Checks everything again (the fields are public, so they may have been edited).
    pub fn validate(&self) -> Result<(), RuntimeError> {
        for p in &self.populations {
            p.validate()?;
        }
        for p in &self.projections {
            self.check_projection(p)?;
        }
        for input in &self.inputs {
            input.check_against(&self.populations)?;
        }
        self.reductions
            .validate(&self.populations, self.sources.len(), &self.projections)?;
        if let Some(recording) = &self.recording {
            for m in &recording.spikes {
                self.node_size(m.node)?;
            }
            for m in &recording.traces {
                let ok = self
                    .populations
                    .get(m.population)
                    .is_some_and(|p| m.array < p.arrays.len());
                if !ok {
                    return Err(RuntimeError::invalid(
                        "recorder",
                        format!(
                            "trace of array #{} of population #{} does not exist",
                            m.array, m.population
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Sends recordings to `dir` (created and checked for writability now).
    pub fn record_to(
        &mut self,
        dir: impl Into<PathBuf>,
        format: OutputFormat,
    ) -> Result<(), RuntimeError> {
        let recorder = Recorder::new(dir, self.dt, format)?;
        self.recording = Some(Recording {
            recorder,
            spikes: Vec::new(),
            traces: Vec::new(),
            synapses: Default::default(),
        });
        Ok(())
    }

    fn recording_mut(&mut self, what: &str) -> Result<&mut Recording, RuntimeError> {
        self.recording.as_mut().ok_or_else(|| {
            RuntimeError::invalid(
                "recorder",
                format!("{what}: no output directory was set (call record_to first)"),
            )
        })
    }

    /// Records the spikes of `node`. Population spikes of step `k` are written with time
    /// `(k + 1)·dt`; spike-source events of step `k` with their own time `k·dt`.
    pub fn record_spikes(&mut self, node: Node) -> Result<(), RuntimeError> {
        self.node_size(node)?;
        let name = match node {
            Node::Population(p) => self.populations[p].name.clone(),
            Node::Source(s) => self.sources[s].name.clone(),
        };
        let recording = self.recording_mut(&format!("spikes of '{name}'"))?;
        let handle = recording.recorder.add_spikes(&name)?;
        recording.spikes.push(SpikeMonitor { node, handle });
        Ok(())
    }

    /// Records array `array` of `neurons` of `population` every `every_steps` steps: after
    /// step `k` when `(k + 1)` is a multiple of `every_steps`, the state at time `(k + 1)·dt`,
    /// in the array's unit.
    pub fn record_trace(
        &mut self,
        population: usize,
        array: usize,
        neurons: &[u32],
        every_steps: u64,
        dtype: TraceDtype,
    ) -> Result<(), RuntimeError> {
        let p = self.populations.get(population).ok_or_else(|| {
            RuntimeError::invalid(
                "recorder",
                format!("population #{population} does not exist"),
            )
        })?;
        let context = || format!("trace of population '{}'", p.name);
        let Some(variable) = p.array_names.get(array) else {
            return Err(RuntimeError::invalid(
                context(),
                format!("array #{array} does not exist"),
            ));
        };
        if let Some(&bad) = neurons.iter().find(|&&n| n as usize >= p.size) {
            return Err(RuntimeError::invalid(
                context(),
                format!("neuron {bad} is outside 0..{}", p.size),
            ));
        }
        let (unit, scale) = p.array_units[array].clone();
        let (name, variable) = (p.name.clone(), variable.clone());
        let recording = self.recording_mut(&format!("trace of '{name}.{variable}'"))?;
        let handle =
            recording
                .recorder
                .add_trace(&name, &variable, &unit, neurons, every_steps, dtype)?;
        recording.traces.push(TraceMonitor {
            population,
            array,
            every_steps,
            scale,
            handle,
        });
        Ok(())
    }

    /// Writes every recording and the manifest with `status`; `None` when nothing is recorded.
    /// Safe to call more than once (each call rewrites the files).
    pub fn finish_recording(&mut self, status: RunStatus) -> Result<Option<PathBuf>, RuntimeError> {
        self.fill_synapse_tables()?;
        match &mut self.recording {
            Some(recording) => recording.recorder.finish(status).map(Some),
            None => Ok(None),
        }
    }

    /// The output directory, when recording.
    pub fn output_dir(&self) -> Option<&Path> {
        self.recording.as_ref().map(|r| r.recorder.dir())
    }

    pub fn population_index(&self, name: &str) -> Option<usize> {
        self.populations.iter().position(|p| p.name == name)
    }

    pub fn source_index(&self, name: &str) -> Option<usize> {
        self.sources.iter().position(|s| s.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectivity::ProjectionSpec;

    fn spec(n_pre: u32, n_post: u32) -> ProjectionSpec {
        ProjectionSpec {
            name: "projection 'p'".into(),
            n_pre,
            n_post,
            seed: 1,
            projection: 0,
            same_population: false,
            autapses: true,
        }
    }

    fn vars() -> Vec<VariableSpec> {
        vec![
            VariableSpec::new("v", "mV", 1e-3),
            VariableSpec::new("g", "nS", 1e-9),
        ]
    }

    #[test]
    fn population_arrays_and_checks() {
        let mut p = Population::new("exc", 4, &vars()).unwrap();
        assert_eq!(p.arrays, vec![vec![0.0; 4]; 2]);
        assert_eq!(p.array_index("g"), Some(1));
        p.array_mut("v").unwrap().set(2, -0.07);
        assert_eq!(p.array("v").unwrap().get(2), -0.07);
        assert_eq!(p.bytes(), 64);
        p.arrays[1].pop();
        let e = p.validate().unwrap_err().to_string();
        assert!(
            e.contains("population 'exc'") && e.contains("array 'g' has 3"),
            "{e}"
        );
        let e = Population::new(
            "x",
            1,
            &[
                VariableSpec::new("v", "mV", 1e-3),
                VariableSpec::new("v", "V", 1.0),
            ],
        )
        .unwrap_err();
        assert!(e.to_string().contains("used twice"), "{e}");
        assert!(Population::new("x", 1, &[VariableSpec::new("v", "mV", 0.0)]).is_err());
    }

    #[test]
    fn spike_source_from_times_rounds_and_counts() {
        let dt = 0.1e-3;
        // 0.3 ms is not exactly 3 · 0.1e-3 in binary but is a multiple in intent.
        let times = [0.3e-3, 0.0, 0.26e-3, 0.3e-3, 1.0e-3];
        let indices = [1, 0, 2, 1, 0];
        let (s, r) = SpikeSource::from_times("in", 3, &times, &indices, dt, 20).unwrap();
        assert_eq!(s.spikes, vec![(0, 0), (3, 1), (3, 1), (3, 2), (10, 0)]);
        assert_eq!(r.rounded, 1);
        assert!((r.max_shift_s - 0.04e-3).abs() < 1e-12, "{}", r.max_shift_s);
        assert_eq!(r.duplicates, 1);
        assert_eq!(s.range_of_step(3), 1..4);
        assert_eq!(s.range_of_step(4), 4..4);
        assert_eq!(s.range_of_step(11), 5..5);

        let err = |t: &[f64], i: &[i64]| {
            SpikeSource::from_times("in", 3, t, i, dt, 20)
                .unwrap_err()
                .to_string()
        };
        let e = err(&[-1e-3], &[0]);
        assert!(
            e.starts_with("spike source 'in'") && e.contains("non-negative"),
            "{e}"
        );
        let e = err(&[2.0e-3], &[0]);
        assert!(e.contains("beyond the end of the run"), "{e}");
        assert!(err(&[f64::NAN], &[0]).contains("finite"));
        let e = err(&[0.0], &[3]);
        assert!(e.contains("index 3, outside 0..3"), "{e}");
        assert!(err(&[0.0], &[-1]).contains("index -1"));
        assert!(err(&[0.0, 1e-4], &[0]).contains("same length"));
        assert!(SpikeSource::new("s", 2, vec![(0, 2)]).is_err());
    }

    #[test]
    fn projections_are_checked_against_their_nodes() {
        let mut net = Network::new(1e-4, 1).unwrap();
        let a = net
            .add_population(Population::new("a", 3, &vars()).unwrap())
            .unwrap();
        let b = net
            .add_population(Population::new("b", 2, &vars()).unwrap())
            .unwrap();
        assert!(net
            .add_population(Population::new("a", 1, &[]).unwrap())
            .is_err());
        let src = net
            .add_source(SpikeSource::new("s", 3, vec![(1, 2)]).unwrap())
            .unwrap();

        let conn = || Connectivity::all_to_all(&spec(3, 2)).unwrap();
        let mut c = conn();
        c.set_homogeneous_delay(3);
        let p = Projection::new("ab", Node::Population(a), b, c, vec![1.0; 6], 1).unwrap();
        assert_eq!(p.ring.n_slots(), 4);
        assert_eq!(net.add_projection(p).unwrap(), 0);
        let p = Projection::new("sb", Node::Source(src), b, conn(), vec![1.0; 6], 0).unwrap();
        net.add_projection(p).unwrap();

        assert!(Projection::new("w", Node::Population(a), b, conn(), vec![1.0; 5], 0).is_err());
        let p = Projection::new("ba", Node::Population(b), a, conn(), vec![1.0; 6], 0).unwrap();
        let e = net.add_projection(p).unwrap_err().to_string();
        assert!(
            e.starts_with("projection 'ba'") && e.contains("presynaptic"),
            "{e}"
        );
        let p = Projection::new("t", Node::Population(a), b, conn(), vec![1.0; 6], 2).unwrap();
        let e = net.add_projection(p).unwrap_err().to_string();
        assert!(e.contains("target array #2"), "{e}");
        let p = Projection::new("n", Node::Source(5), b, conn(), vec![1.0; 6], 0).unwrap();
        assert!(net.add_projection(p).is_err());
        net.validate().unwrap();
        assert_eq!(net.node_name(Node::Source(src)), "spike source 's'");
        assert_eq!(net.node_size(Node::Population(a)).unwrap(), 3);

        let used = net.memory_in_use();
        assert_eq!(used.ring_buffer_bytes, 2 * 4 * 8 + 2 * 8);
        assert!(used.neuron_bytes >= (3 + 2) * 2 * 8);
    }

    #[test]
    fn recording_needs_an_output_directory() {
        let mut net = Network::new(1e-4, 1).unwrap();
        let a = net
            .add_population(Population::new("a", 3, &vars()).unwrap())
            .unwrap();
        let e = net.record_spikes(Node::Population(a)).unwrap_err();
        assert!(e.to_string().contains("record_to"), "{e}");
        let dir = std::env::temp_dir().join(format!("snnc-network-rec-{}", std::process::id()));
        net.record_to(&dir, OutputFormat::Npy).unwrap();
        net.record_spikes(Node::Population(a)).unwrap();
        assert!(net.record_spikes(Node::Source(0)).is_err());
        assert!(net.record_trace(a, 2, &[0], 1, TraceDtype::F64).is_err());
        let e = net
            .record_trace(a, 0, &[3], 1, TraceDtype::F64)
            .unwrap_err();
        assert!(e.to_string().contains("neuron 3"), "{e}");
        net.record_trace(a, 0, &[0, 2], 1, TraceDtype::F64).unwrap();
        assert_eq!(net.recording.as_ref().unwrap().traces[0].scale, 1e-3);
        assert!(net.finish_recording(RunStatus::Complete).unwrap().is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn memory_estimate_from_sizes() {
        let e = Network::estimate_memory(
            &[PopulationPlan {
                size: 1000,
                n_arrays: 4,
                precision: Precision::F64,
            }],
            &[ProjectionPlan {
                n_pre: 1000,
                n_post: 1000,
                synapses: 100_000,
                heterogeneous_delays: true,
                max_delay_steps: 9,
                plastic_bytes_per_synapse: 0,
                precision: Precision::F64,
            }],
            16,
        );
        assert_eq!(e.neuron_bytes, 32_000 + 16);
        assert_eq!(e.synapse_bytes, 100_000 * 14 + 1001 * 8);
        let plastic = Network::estimate_memory(
            &[],
            &[ProjectionPlan {
                n_pre: 1000,
                n_post: 1000,
                synapses: 100_000,
                plastic_bytes_per_synapse: 24,
                ..ProjectionPlan::default()
            }],
            0,
        );
        assert_eq!(plastic.synapse_bytes, 100_000 * (12 + 24) + 1001 * 8);
        assert_eq!(e.ring_buffer_bytes, 1000 * 10 * 8);
        // f32: 4-byte state and weights; targets, delays and rings unchanged.
        let single = Network::estimate_memory(
            &[PopulationPlan {
                size: 1000,
                n_arrays: 4,
                precision: Precision::F32,
            }],
            &[ProjectionPlan {
                n_pre: 1000,
                n_post: 1000,
                synapses: 100_000,
                precision: Precision::F32,
                ..ProjectionPlan::default()
            }],
            0,
        );
        assert_eq!(single.neuron_bytes, 16_000);
        assert_eq!(single.synapse_bytes, 100_000 * 8 + 1001 * 8);
        assert!(Network::check_memory(&[], &[], 0).is_ok());
        if crate::memory::available_memory_bytes().is_some() {
            let huge = ProjectionPlan {
                n_pre: 1 << 20,
                synapses: u64::MAX / 2,
                ..ProjectionPlan::default()
            };
            let e = Network::check_memory(&[], &[huge], 0).unwrap_err();
            assert!(matches!(e, RuntimeError::OutOfMemory { .. }));
        }
    }
}
