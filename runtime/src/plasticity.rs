//! Plasticity: synapses whose state changes when spikes arrive, run by compiled handlers.
//!
//! This module owns the per-projection state of plastic synapses (per-synapse arrays, per-
//! presynaptic and per-postsynaptic traces, the last-update times that let traces decay
//! lazily), the queue that holds presynaptic spikes for their axonal delay, the post-to-synapse
//! index (built once), and the order in which a step's handler passes run. It does not know how
//! handlers were produced: each pass is a [`HandlerKernel`], compiled code behind the C ABI
//! ([`NativeHandler`]) or an interpreter. It touches neuron state only through the projection's
//! delay ring (the target port), never a population's arrays directly.
//!
//! # The passes of a step
//!
//! A synapse model's `on pre` and `on post` handlers are lowered into up to four kernels, run
//! in this order in the delivery phase of step `k` (after every neuron has been updated):
//!
//! 1. [`Pass::PreSynapses`]: for each presynaptic spike arriving in step `k` (emitted in step
//!    `k - d`, `d` the axonal delay), in emission order, one call over the synapses of its row
//!    (elements: the row's synapse indices). It writes per-synapse state and the target port;
//!    it reads presynaptic traces as they were before this spike (the handler's own writes to
//!    them are replayed in registers, never stored).
//! 2. [`Pass::PreNeurons`]: one call over the arriving presynaptic neurons (elements: positions
//!    in the arrival list, gathered through it): the handler's writes to `pre` state.
//! 3. [`Pass::PostSynapses`]: for each postsynaptic spike of step `k`, in emission order, one call
//!    over the synapses that target the neuron (through the post-to-synapse index).
//! 4. [`Pass::PostNeurons`]: one call over the spiking postsynaptic neurons: `post` state.
//! 5. [`Pass::Step`] (`on step`): one call over every synapse of the projection, at
//!    `t = (k + 1)·dt`, whether or not anything spiked. It writes per-synapse state only and
//!    reads `pre`/`post` state through per-synapse index arrays (gathers).
//!
//! So `on pre` effects of a step precede its `on post` effects (Brian2's order), and per-
//! neuron state is written only in the per-neuron passes. A synapse pass writes only the state
//! of its synapses and, through the port, the input of the synapse's target; a neuron pass only
//! the state of its neurons. Every synapse or neuron is visited in a fixed order, so a run is
//! deterministic, and work can be split by target neuron (or by neuron) without changing a bit.
//!
//! # Time
//!
//! A handler sees `t` = the time of its event: for `on pre`, the presynaptic spike's recorded
//! time plus the axonal delay (a neuron spike of step `m` is recorded at `(m + 1)·dt`, a
//! spike-source event of step `m` at `m·dt`); for `on post`, the postsynaptic spike's recorded
//! time `(k + 1)·dt`. Traces are stored with the time they were last brought up to date and are
//! decayed to `t` exactly when a handler reads them (the lowering emits that code).
//!
//! # The target port
//!
//! Increments of the port (`g += w` in `on pre`) go into a per-target scratch array, which is
//! added into the projection's delay ring (slot of the current step) after each row and
//! cleared, so the input reaches the target at the end of this step, like a static synapse's.

use crate::abi::{KernelContext, KernelFn, GATHERS};
use crate::array::Array;
use crate::connectivity::Connectivity;
use crate::delays::DelayRing;
use crate::error::RuntimeError;
use crate::network::{Network, Projection};
use crate::record::{Recorder, TableHandle, TraceDtype, TraceHandle};
use std::ops::Range;

/// Where one value of a plastic array lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Space {
    /// One per synapse, in the connectivity's CSR order.
    Synapse,
    /// One per presynaptic neuron.
    Pre,
    /// One per postsynaptic neuron.
    Post,
    /// One value for the whole projection that the synapse reads but never writes: a
    /// parameter bound to a population-level reduction (`reductions.rs`), refreshed by the
    /// scheduler before each step's handlers run.
    Global,
}

/// The handler passes of a step, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    PreSynapses = 0,
    PreNeurons = 1,
    PostSynapses = 2,
    PostNeurons = 3,
    /// `on step`: once per step, after the event passes, over every synapse.
    Step = 4,
}

impl Pass {
    pub const ALL: [Pass; 5] = [
        Pass::PreSynapses,
        Pass::PreNeurons,
        Pass::PostSynapses,
        Pass::PostNeurons,
        Pass::Step,
    ];

    /// Whether a handler of this pass addresses an array of `space` as one value per call
    /// (the lowering compiles it so: presynaptic arrays in the presynaptic synapse pass,
    /// postsynaptic ones in the postsynaptic synapse pass); the runtime then passes a pointer
    /// offset to the event's neuron. A `Global` array (one value) is scalar in every pass,
    /// at offset 0. Every other array is element-addressed or gathered.
    fn is_scalar(self, space: Space) -> bool {
        matches!(
            (self, space),
            (Pass::PreSynapses, Space::Pre)
                | (Pass::PostSynapses, Space::Post)
                | (_, Space::Global)
        )
    }
}

/// One array of plastic state, in SI units.
#[derive(Clone, Debug)]
pub struct PlasticArray {
    pub name: String,
    pub space: Space,
    /// The unit it is recorded in, and that unit's SI value.
    pub unit: String,
    pub scale: f64,
    /// In the array's precision (see [`crate::array`]).
    pub values: Array,
}

/// One call of a handler kernel: elements `start..end` of its arrays.
pub struct HandlerCall<'a> {
    /// Every plastic array of the projection, in the kernel's variable order.
    pub arrays: &'a mut [PlasticArray],
    /// Per array, the element its pointer starts at: the neuron of a scalar-addressed array,
    /// 0 for the others.
    pub offsets: &'a [usize],
    /// The index arrays of gathered variables (empty when unused).
    pub gathers: [&'a [u32]; GATHERS],
    pub start: usize,
    pub end: usize,
    pub step: u64,
    /// The time of the event, in seconds.
    pub t: f64,
}

/// Runs one handler pass (compiled or interpreted).
pub trait HandlerKernel {
    fn run(&mut self, call: HandlerCall<'_>) -> Result<(), RuntimeError>;
}

/// A handler compiled to native code behind the C ABI of [`crate::abi`].
#[derive(Debug)]
pub struct NativeHandler {
    function: KernelFn,
    stream_key: u64,
    pointers: Vec<*mut f64>,
}

impl NativeHandler {
    /// Wraps a compiled handler kernel drawing from the stream with key `stream_key`.
    ///
    /// # Safety
    ///
    /// `function` must have been compiled from a handler kernel of the pass it is used for,
    /// whose variables are the projection's plastic arrays in order and addressed as
    /// [`Pass`] says; then every access stays within the arrays, because the runtime passes
    /// only in-range elements and index arrays. It must not keep pointers or unwind.
    pub unsafe fn new(function: KernelFn, stream_key: u64) -> Self {
        NativeHandler {
            function,
            stream_key,
            pointers: Vec::new(),
        }
    }
}

impl HandlerKernel for NativeHandler {
    fn run(&mut self, call: HandlerCall<'_>) -> Result<(), RuntimeError> {
        self.pointers.clear();
        for (array, &offset) in call.arrays.iter_mut().zip(call.offsets) {
            if offset > array.values.len() {
                return Err(RuntimeError::invalid(
                    format!("plastic array '{}'", array.name),
                    format!("offset {offset} beyond {} values", array.values.len()),
                ));
            }
            // SAFETY: `offset <= len`, checked just above.
            self.pointers
                .push(unsafe { array.values.as_mut_ptr_at(offset) });
        }
        let mut gather = [std::ptr::null(); GATHERS];
        for (p, g) in gather.iter_mut().zip(call.gathers) {
            if !g.is_empty() {
                *p = g.as_ptr();
            }
        }
        let mut ctx = KernelContext {
            arrays: self.pointers.as_ptr(),
            start: call.start as u64,
            end: call.end as u64,
            step: call.step,
            t: call.t,
            stream_key: self.stream_key,
            spikes: std::ptr::null_mut(),
            n_spikes: 0,
            gather,
        };
        // SAFETY: the pointers are valid for this call (borrowed mutably through `call`), and
        // the caller of `new` vouched that the kernel addresses them as `Pass` describes, with
        // elements and indices the scheduler keeps in range.
        unsafe { (self.function)(&mut ctx) };
        self.pointers.clear();
        Ok(())
    }
}

/// The handler kernels of one plastic projection, one per pass (a pass with nothing to do has
/// none).
pub struct ProjectionHandlers<'k> {
    /// The projection's index in the network.
    pub projection: usize,
    pub passes: [Option<Box<dyn HandlerKernel + 'k>>; 5],
}

/// The plastic state of one projection.
#[derive(Debug)]
pub struct Plasticity {
    pub arrays: Vec<PlasticArray>,
    /// The array handlers increment for the target port (per postsynaptic neuron, zero between
    /// calls), if any handler writes the port.
    pub port: Option<usize>,
    /// Steps between a presynaptic spike and its `on pre` handlers.
    axonal_delay: usize,
    /// Presynaptic spikes waiting for their arrival step, one list per step modulo the delay.
    pending: Vec<Vec<u32>>,
    /// Steps between a synapse and its target: port increments reach the target this much
    /// later, and a postsynaptic spike reaches the synapse (`on post`) this much later.
    dendritic_delay: u16,
    /// Postsynaptic spikes waiting to reach the synapses.
    pending_post: Vec<Vec<u32>>,
    /// Whether the presynaptic node is a neuron population (its spikes are recorded at the end
    /// of their step) rather than a spike source (recorded at the start).
    pre_is_population: bool,
    /// The post-to-synapse index: for target `j`, `post_start[j]..post_start[j + 1]` indexes
    /// `post_synapse` (synapse indices) and `post_source` (their presynaptic neurons).
    post_start: Vec<u64>,
    post_synapse: Vec<u32>,
    post_source: Vec<u32>,
    /// Per synapse, its presynaptic neuron (for `on step`, which gathers `pre` state through
    /// it); built at the first step that needs it.
    synapse_source: Vec<u32>,
    offsets: Vec<usize>,
}

impl Plasticity {
    /// Plastic state for `connectivity`, with its arrays (already sized and initialised), an
    /// axonal delay of `axonal_delay` steps and a dendritic delay of `dendritic_delay` steps
    /// (the projection's ring must hold delays up to `dendritic_delay`).
    pub fn new(
        connectivity: &Connectivity,
        arrays: Vec<PlasticArray>,
        port: Option<usize>,
        axonal_delay: u16,
        dendritic_delay: u16,
        pre_is_population: bool,
    ) -> Result<Self, RuntimeError> {
        let n_synapses = connectivity.n_synapses();
        if n_synapses > u64::from(u32::MAX) {
            return Err(RuntimeError::invalid(
                "plastic projection",
                format!("{n_synapses} synapses: plastic projections hold at most 2^32 - 1"),
            ));
        }
        for array in &arrays {
            let expected = match array.space {
                Space::Synapse => n_synapses as usize,
                Space::Pre => connectivity.n_pre() as usize,
                Space::Post => connectivity.n_post() as usize,
                Space::Global => 1,
            };
            if array.values.len() != expected {
                return Err(RuntimeError::invalid(
                    format!("plastic array '{}'", array.name),
                    format!("{} values, expected {expected}", array.values.len()),
                ));
            }
        }
        if port.is_some_and(|p| arrays.get(p).is_none_or(|a| a.space != Space::Post)) {
            return Err(RuntimeError::invalid(
                "plastic projection",
                "the port must be a per-postsynaptic array",
            ));
        }
        let index = connectivity.post_index();
        let post_synapse = index.synapse.iter().map(|&s| s as u32).collect();
        let axonal_delay = usize::from(axonal_delay);
        Ok(Plasticity {
            offsets: vec![0; arrays.len()],
            arrays,
            port,
            axonal_delay,
            pending: vec![Vec::new(); axonal_delay + 1],
            dendritic_delay,
            pending_post: vec![Vec::new(); usize::from(dendritic_delay) + 1],
            pre_is_population,
            post_start: index.col_start.clone(),
            post_synapse,
            post_source: index.source.clone(),
            synapse_source: Vec::new(),
        })
    }

    /// The array called `name`.
    pub fn array(&self, name: &str) -> Option<&PlasticArray> {
        self.arrays.iter().find(|a| a.name == name)
    }

    /// Bytes held by the arrays and the index.
    pub fn bytes(&self) -> u64 {
        let arrays: u64 = self.arrays.iter().map(|a| a.values.bytes()).sum();
        arrays + (self.post_start.len() * 8 + self.post_synapse.len() * 8) as u64
    }

    fn set_offsets(&mut self, pass: Pass, neuron: usize) {
        for (offset, array) in self.offsets.iter_mut().zip(&self.arrays) {
            *offset = if pass.is_scalar(array.space) && array.space != Space::Global {
                neuron
            } else {
                0
            };
        }
    }

    /// Sets the projection-wide array `array` (a [`Space::Global`] one) to `value`.
    pub fn set_global(&mut self, array: usize, value: f64) -> Result<(), RuntimeError> {
        match self.arrays.get_mut(array) {
            Some(a) if a.space == Space::Global => {
                a.values.set(0, value);
                Ok(())
            }
            _ => Err(RuntimeError::invalid(
                "plastic projection",
                format!("array #{array} is not a projection-wide value"),
            )),
        }
    }

    /// Runs the handler passes of step `k` (see the module documentation): queues `pre_spikes`
    /// (emitted in step `k`) for their axonal delay, runs `on pre` for the spikes arriving now
    /// and `on post` for `post_spikes` (emitted in step `k`). Port increments go into `ring`'s
    /// current slot. Returns the number of synapses whose `on pre` ran.
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        &mut self,
        connectivity: &Connectivity,
        ring: &mut DelayRing<f64>,
        handlers: &mut ProjectionHandlers<'_>,
        pre_spikes: &[u32],
        post_spikes: &[u32],
        k: u64,
        dt: f64,
    ) -> Result<u64, RuntimeError> {
        let n_slots = self.pending.len();
        let arrive = ((k + self.axonal_delay as u64) % n_slots as u64) as usize;
        self.pending[arrive].extend_from_slice(pre_spikes);
        let now = (k % n_slots as u64) as usize;
        // Taken out (and put back emptied) so the passes can borrow the state mutably.
        let mut arrivals = std::mem::take(&mut self.pending[now]);
        let n_post_slots = self.pending_post.len() as u64;
        let reach = ((k + u64::from(self.dendritic_delay)) % n_post_slots) as usize;
        self.pending_post[reach].extend_from_slice(post_spikes);
        let now_post = (k % n_post_slots) as usize;
        let reaching = std::mem::take(&mut self.pending_post[now_post]);
        let post_spikes = reaching.as_slice();
        let dendritic = self.dendritic_delay;

        let mut events = 0u64;
        let t_pre = if self.pre_is_population {
            (k + 1) as f64 * dt
        } else {
            k as f64 * dt
        };
        let t_post = (k + 1) as f64 * dt;
        let result = (|| {
            if let Some(kernel) = handlers.passes[Pass::PreSynapses as usize].as_deref_mut() {
                for &pre in &arrivals {
                    let range = connectivity.row_range(pre);
                    events += range.len() as u64;
                    self.set_offsets(Pass::PreSynapses, pre as usize);
                    kernel.run(HandlerCall {
                        arrays: &mut self.arrays,
                        offsets: &self.offsets,
                        gathers: [connectivity.targets(), &[]],
                        start: range.start,
                        end: range.end,
                        step: k,
                        t: t_pre,
                    })?;
                    if let Some(port) = self.port {
                        let values = &mut self.arrays[port].values;
                        for &target in &connectivity.targets()[range] {
                            let value = values.get(target as usize);
                            values.set(target as usize, 0.0);
                            if value != 0.0 {
                                ring.add(target, dendritic, value)?;
                            }
                        }
                    }
                }
            } else {
                for &pre in &arrivals {
                    events += connectivity.row_range(pre).len() as u64;
                }
            }
            if let Some(kernel) = handlers.passes[Pass::PreNeurons as usize].as_deref_mut() {
                if !arrivals.is_empty() {
                    self.set_offsets(Pass::PreNeurons, 0);
                    kernel.run(HandlerCall {
                        arrays: &mut self.arrays,
                        offsets: &self.offsets,
                        gathers: [&arrivals, &[]],
                        start: 0,
                        end: arrivals.len(),
                        step: k,
                        t: t_pre,
                    })?;
                }
            }
            if let Some(kernel) = handlers.passes[Pass::PostSynapses as usize].as_deref_mut() {
                for &post in post_spikes {
                    let j = post as usize;
                    let (start, end) =
                        (self.post_start[j] as usize, self.post_start[j + 1] as usize);
                    self.set_offsets(Pass::PostSynapses, j);
                    kernel.run(HandlerCall {
                        arrays: &mut self.arrays,
                        offsets: &self.offsets,
                        gathers: [&self.post_synapse, &self.post_source],
                        start,
                        end,
                        step: k,
                        t: t_post,
                    })?;
                }
            }
            if let Some(kernel) = handlers.passes[Pass::PostNeurons as usize].as_deref_mut() {
                if !post_spikes.is_empty() {
                    self.set_offsets(Pass::PostNeurons, 0);
                    kernel.run(HandlerCall {
                        arrays: &mut self.arrays,
                        offsets: &self.offsets,
                        gathers: [post_spikes, &[]],
                        start: 0,
                        end: post_spikes.len(),
                        step: k,
                        t: t_post,
                    })?;
                }
            }
            if let Some(kernel) = handlers.passes[Pass::Step as usize].as_deref_mut() {
                let n_synapses = connectivity.targets().len();
                if self.synapse_source.len() != n_synapses {
                    self.synapse_source = (0..connectivity.n_pre())
                        .flat_map(|i| connectivity.row_range(i).map(move |_| i))
                        .collect();
                }
                self.set_offsets(Pass::Step, 0);
                kernel.run(HandlerCall {
                    arrays: &mut self.arrays,
                    offsets: &self.offsets,
                    gathers: [connectivity.targets(), &self.synapse_source],
                    start: 0,
                    end: n_synapses,
                    step: k,
                    t: (k + 1) as f64 * dt,
                })?;
            }
            Ok(())
        })();
        arrivals.clear();
        self.pending[now] = arrivals;
        let mut reaching = reaching;
        reaching.clear();
        self.pending_post[now_post] = reaching;
        result.map(|()| events)
    }
}

/// A per-synapse array sampled during the run.
#[derive(Debug)]
struct SynapseTrace {
    projection: usize,
    array: usize,
    every_steps: u64,
    scale: f64,
    handle: TraceHandle,
}

/// A per-synapse array written once, at the end, as a connection table.
#[derive(Debug)]
struct SynapseTable {
    projection: usize,
    array: usize,
    /// The chosen synapses and their (source, target).
    synapses: Vec<(u32, u32, u32)>,
    scale: f64,
    handle: TableHandle,
}

/// What is recorded of plastic synapses.
#[derive(Debug, Default)]
pub struct SynapseRecording {
    traces: Vec<SynapseTrace>,
    tables: Vec<SynapseTable>,
}

impl SynapseRecording {
    /// Samples every synapse trace due after step `k` (phase 6 of the step loop).
    pub fn sample(
        &self,
        recorder: &mut Recorder,
        projections: &[Projection],
        k: u64,
    ) -> Result<(), RuntimeError> {
        for trace in &self.traces {
            if (k + 1) % trace.every_steps != 0 {
                continue;
            }
            if let Some(plastic) = &projections[trace.projection].plasticity {
                recorder.record_trace_scaled(
                    trace.handle,
                    k + 1,
                    &plastic.arrays[trace.array].values,
                    trace.scale,
                )?;
            }
        }
        Ok(())
    }
}

/// The file-name stem of a projection's recordings: `A->B` becomes `A-B`.
fn projection_stem(name: &str) -> String {
    name.replace("->", "-")
}

impl Network {
    /// The chosen synapses of plastic projection `projection` (sources in `pre`, targets in
    /// `post`), with their (synapse, source, target), in CSR order.
    fn chosen_synapses(
        &self,
        projection: usize,
        pre: Range<u32>,
        post: Range<u32>,
    ) -> Result<Vec<(u32, u32, u32)>, RuntimeError> {
        let p = self.projections.get(projection).ok_or_else(|| {
            RuntimeError::invalid(
                "recorder",
                format!("projection #{projection} does not exist"),
            )
        })?;
        let conn = &p.connectivity;
        let mut chosen = Vec::new();
        for i in pre.start..pre.end.min(conn.n_pre()) {
            for s in conn.row_range(i) {
                let j = conn.targets()[s];
                if post.contains(&j) {
                    chosen.push((s as u32, i, j));
                }
            }
        }
        Ok(chosen)
    }

    fn plastic_array(
        &self,
        projection: usize,
        array: usize,
    ) -> Result<(&Projection, &PlasticArray), RuntimeError> {
        let p = &self.projections[projection];
        let a = p
            .plasticity
            .as_ref()
            .and_then(|pl| pl.arrays.get(array))
            .filter(|a| a.space == Space::Synapse)
            .ok_or_else(|| {
                RuntimeError::invalid(
                    format!("projection '{}'", p.name),
                    format!("array #{array} is not a per-synapse plastic array"),
                )
            })?;
        Ok((p, a))
    }

    /// Samples per-synapse array `array` of `projection`, for the synapses from `pre` to
    /// `post`, every `every_steps` steps (like [`Network::record_trace`]): a matrix
    /// `{A}-{B}_{var}_samples` (samples × synapses, in the array's unit) and a table
    /// `{A}-{B}_{var}_synapses` of the synapses' (source, target). A lazily integrated variable
    /// is sampled as stored at its last event.
    pub fn record_synapses(
        &mut self,
        projection: usize,
        array: usize,
        pre: Range<u32>,
        post: Range<u32>,
        every_steps: u64,
    ) -> Result<(), RuntimeError> {
        let chosen = self.chosen_synapses(projection, pre, post)?;
        let (p, a) = self.plastic_array(projection, array)?;
        let (stem, var, unit, scale) = (
            projection_stem(&p.name),
            a.name.clone(),
            a.unit.clone(),
            a.scale,
        );
        let recording = self
            .recording
            .as_mut()
            .ok_or_else(|| RuntimeError::invalid("recorder", "no output directory was set"))?;
        let ids: Vec<u32> = chosen.iter().map(|c| c.0).collect();
        let handle = recording.recorder.add_trace(
            &stem,
            &format!("{var}_samples"),
            &unit,
            &ids,
            every_steps,
            TraceDtype::F64,
        )?;
        let list = recording.recorder.add_table(
            &stem,
            &format!("{var}_synapses"),
            "1",
            &["source", "target"],
        )?;
        let rows = chosen
            .iter()
            .flat_map(|&(_, i, j)| [f64::from(i), f64::from(j)])
            .collect();
        recording.recorder.set_table(list, rows)?;
        recording.synapses.traces.push(SynapseTrace {
            projection,
            array,
            every_steps,
            scale,
            handle,
        });
        Ok(())
    }

    /// Writes per-synapse array `array` of `projection` at the end of the run, for the
    /// synapses from `pre` to `post`, as a connection table `{A}-{B}_{var}` of rows (source,
    /// target, value in the array's unit): the format `connect from "file.npy"` reads, so a
    /// later run can start from the learned weights.
    pub fn record_synapse_table(
        &mut self,
        projection: usize,
        array: usize,
        pre: Range<u32>,
        post: Range<u32>,
    ) -> Result<(), RuntimeError> {
        let synapses = self.chosen_synapses(projection, pre, post)?;
        let (p, a) = self.plastic_array(projection, array)?;
        let (stem, var, unit, scale) = (
            projection_stem(&p.name),
            a.name.clone(),
            a.unit.clone(),
            a.scale,
        );
        let recording = self
            .recording
            .as_mut()
            .ok_or_else(|| RuntimeError::invalid("recorder", "no output directory was set"))?;
        let handle =
            recording
                .recorder
                .add_table(&stem, &var, &unit, &["source", "target", &var])?;
        recording.synapses.tables.push(SynapseTable {
            projection,
            array,
            synapses,
            scale,
            handle,
        });
        Ok(())
    }

    /// Puts the current values into every synapse table (called when recording finishes).
    pub(crate) fn fill_synapse_tables(&mut self) -> Result<(), RuntimeError> {
        let Some(recording) = self.recording.as_mut() else {
            return Ok(());
        };
        for table in &recording.synapses.tables {
            let Some(plastic) = &self.projections[table.projection].plasticity else {
                continue;
            };
            let values = &plastic.arrays[table.array].values;
            let rows = table
                .synapses
                .iter()
                .flat_map(|&(s, i, j)| {
                    [
                        f64::from(i),
                        f64::from(j),
                        values.get(s as usize) / table.scale,
                    ]
                })
                .collect();
            recording.recorder.set_table(table.handle, rows)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectivity::ProjectionSpec;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// What a pass saw: (pass, start, end, t, offsets).
    type Log = Rc<RefCell<Vec<(Pass, usize, usize, f64, Vec<usize>)>>>;

    /// Logs each call; the presynaptic synapse pass also adds 1 to the port of each element's
    /// target (through gather 0) and to the weight of each synapse.
    struct Logger {
        pass: Pass,
        log: Log,
    }

    impl HandlerKernel for Logger {
        fn run(&mut self, call: HandlerCall<'_>) -> Result<(), RuntimeError> {
            self.log.borrow_mut().push((
                self.pass,
                call.start,
                call.end,
                call.t,
                call.offsets.to_vec(),
            ));
            if self.pass == Pass::PreSynapses {
                for e in call.start..call.end {
                    call.arrays[0].values.add(e, 1.0);
                    let target = call.gathers[0][e] as usize;
                    call.arrays[1].values.add(target, 1.0);
                }
            }
            Ok(())
        }
    }

    fn array(name: &str, space: Space, len: usize) -> PlasticArray {
        PlasticArray {
            name: name.into(),
            space,
            unit: "1".into(),
            scale: 1.0,
            values: vec![0.0; len].into(),
        }
    }

    #[test]
    fn passes_run_in_order_with_the_axonal_delay_and_event_times() {
        let spec = ProjectionSpec {
            name: "projection 'test'".into(),
            n_pre: 2,
            n_post: 3,
            seed: 1,
            projection: 0,
            same_population: false,
            autapses: true,
        };
        let conn = Connectivity::all_to_all(&spec).unwrap();
        let arrays = vec![
            array("w", Space::Synapse, 6),
            array("port", Space::Post, 3),
            array("x_pre", Space::Pre, 2),
        ];
        let mut plastic = Plasticity::new(&conn, arrays, Some(1), 2, 0, true).unwrap();
        let log: Log = Rc::default();
        let mut handlers = ProjectionHandlers {
            projection: 0,
            passes: Default::default(),
        };
        for pass in Pass::ALL {
            handlers.passes[pass as usize] = Some(Box::new(Logger {
                pass,
                log: log.clone(),
            }));
        }
        let mut ring = DelayRing::new(3, 0).unwrap();
        let dt = 0.5;
        // Step 0: source 1 spikes, target 2 spikes. Step 2: source 1's spike arrives.
        let events = plastic
            .step(&conn, &mut ring, &mut handlers, &[1], &[2], 0, dt)
            .unwrap();
        assert_eq!(events, 0);
        {
            let log = log.borrow();
            // No arrival yet: no presynaptic synapse pass, but on post ran for target 2.
            assert!(log.iter().all(|c| c.0 != Pass::PreSynapses));
            let post = log.iter().find(|c| c.0 == Pass::PostSynapses).unwrap();
            // Target 2's synapses (one per source) through the post index; its time is the
            // end of step 0; the post array `port` is offset to the spiking target.
            assert_eq!((post.2 - post.1, post.3), (2, 0.5));
            assert_eq!(post.4, vec![0, 2, 0]);
        }
        ring.advance();
        plastic
            .step(&conn, &mut ring, &mut handlers, &[], &[], 1, dt)
            .unwrap();
        ring.advance();
        log.borrow_mut().clear();
        let events = plastic
            .step(&conn, &mut ring, &mut handlers, &[], &[], 2, dt)
            .unwrap();
        assert_eq!(events, 3);
        let log = log.borrow();
        let order: Vec<Pass> = log.iter().map(|c| c.0).collect();
        assert_eq!(order, vec![Pass::PreSynapses, Pass::PreNeurons, Pass::Step]);
        // Row of source 1 (synapses 3..6), at the spike's time plus the delay: (0 + 1 + 2)·dt,
        // with the presynaptic array offset to source 1.
        assert_eq!((log[0].1, log[0].2, log[0].3), (3, 6, 1.5));
        assert_eq!(log[0].4, vec![0, 0, 1]);
        // `on step`: every synapse, at the end of the step, nothing offset.
        assert_eq!((log[2].1, log[2].2, log[2].3), (0, 6, 1.5));
        assert_eq!(log[2].4, vec![0, 0, 0]);
        // It gathers `pre` state through each synapse's source (CSR rows of sources 0 and 1).
        assert_eq!(plastic.synapse_source, vec![0, 0, 0, 1, 1, 1]);
        // The port increments went into the ring's current slot and the scratch is clear.
        assert_eq!(ring.current(), &[1.0, 1.0, 1.0]);
        assert_eq!(plastic.array("port").unwrap().values, vec![0.0; 3]);
        assert_eq!(
            plastic.array("w").unwrap().values,
            vec![0.0, 0.0, 0.0, 1.0, 1.0, 1.0]
        );
    }

    #[test]
    fn arrays_of_the_wrong_size_are_refused() {
        let spec = ProjectionSpec {
            name: "projection 'test'".into(),
            n_pre: 2,
            n_post: 2,
            seed: 1,
            projection: 0,
            same_population: false,
            autapses: true,
        };
        let conn = Connectivity::all_to_all(&spec).unwrap();
        let e = Plasticity::new(&conn, vec![array("w", Space::Synapse, 3)], None, 0, 0, true)
            .unwrap_err();
        assert!(e.to_string().contains("expected 4"), "{e}");
        let e = Plasticity::new(
            &conn,
            vec![array("w", Space::Synapse, 4)],
            Some(0),
            0,
            0,
            true,
        )
        .unwrap_err();
        assert!(e.to_string().contains("port"), "{e}");
    }
}
