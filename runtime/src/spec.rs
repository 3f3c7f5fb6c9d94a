//! Network construction from a plain-data description: what `snnc run` and a deployed
//! (ahead-of-time compiled) model share.
//!
//! A [`NetworkSpec`] says everything about a network that is not code: populations with their
//! variables and units, spike sources and timed inputs with the bytes of their data files,
//! projections with their connectivity rule, weights, delays and plastic state, recordings, dt,
//! the default duration and seed, and which parameters lowering folded into the code. Code is
//! referred to by index into a kernel table the caller supplies ([`KernelTable`]): native
//! functions behind the C ABI (JIT-compiled in the compiler's process, or linked into a
//! deployed program: [`NativeTable`]), or the compiler's reference interpreter. The spec is
//! serialisable (JSON, through serde), so `snnc build` embeds it in the object file it emits
//! and the deployed program reads it back.
//!
//! [`build`] owns the decisions of construction that used to live in the compiler: running
//! initialisation kernels, choosing connectivity builders, evaluating per-synapse weights and
//! delays, rounding delays and spike times to steps (with warnings), decoding data files,
//! estimating memory before allocating. Because `snnc run` and a deployed program both go
//! through it with the same kernels, their networks are identical bit for bit.
//!
//! This module knows nothing of the language, the IR or how kernels are produced. Problems are
//! reported as [`BuildError`]s carrying a *site*: an opaque number the producer of the spec
//! attached (the compiler maps it back to a source span), so messages can point at the model.

use crate::abi::{KernelContext, KernelFn, GATHERS};
use crate::array::{Array, ArrayMut, Precision};
use crate::connectivity::{Connectivity, ProjectionSpec};
use crate::error::RuntimeError;
use crate::inputs::TimedInput;
use crate::network::{Network, Node, PopulationPlan, ProjectionPlan};
use crate::npy;
use crate::plasticity::{
    HandlerKernel, NativeHandler, Pass, PlasticArray, Plasticity, ProjectionHandlers, Space,
};
use crate::record::{OutputFormat, TraceDtype};
use crate::rng::Stream;
use crate::schedule::{NativeKernel, PopulationKernel};
use crate::{Population, Projection, SpikeSource, VariableSpec, Weights};
use serde::{Deserialize, Serialize};
use std::marker::PhantomData;
use std::ops::Range;

/// The version of the spec format; a deployed program refuses a spec of another version.
pub const SPEC_VERSION: u32 = 1;

/// A network without its code.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NetworkSpec {
    pub version: u32,
    pub network: String,
    /// Seconds.
    pub dt: f64,
    /// The default seed (a run may override it: every draw is keyed by the seed at run time).
    pub seed: u64,
    /// The default run length in seconds, when the model or the build gave one.
    pub duration: Option<f64>,
    /// The kernels the table must provide, by index.
    pub kernels: Vec<KernelInfo>,
    pub populations: Vec<PopulationSpec>,
    pub sources: Vec<SourceSpec>,
    pub projections: Vec<ConnectionSpec>,
    pub inputs: Vec<InputSpec>,
    pub records: Vec<RecordSpec>,
    /// The data files the network reads, with their contents.
    pub files: Vec<DataFile>,
    /// Population-level variables (sums, means, counts, rates) and who reads them.
    #[serde(default)]
    pub reductions: crate::reductions::Reductions,
    /// The storage type of every per-element and per-synapse array (`precision = f32`); the
    /// kernels of the table were compiled for it.
    #[serde(default)]
    pub precision: Precision,
}

/// What a kernel of the table is, for messages and for checking a table against the spec.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct KernelInfo {
    pub name: String,
    pub n_arrays: usize,
}

/// A kernel of the table and the random stream it draws from.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct KernelRef {
    pub kernel: usize,
    pub stream: u32,
}

/// How a population variable is used.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum VariableRole {
    State,
    /// A parameter stored per neuron (so it can be read and written at run time).
    Parameter,
    /// Bookkeeping the compiler added.
    Internal,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct VariableDesc {
    pub name: String,
    pub role: VariableRole,
    /// The unit the user wrote, and its SI value.
    pub unit: String,
    pub scale: f64,
}

/// A parameter that lowering folded into the code: it cannot change after the build.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ConstantDesc {
    pub name: String,
    /// SI value.
    pub value: f64,
    pub unit: String,
    pub scale: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PopulationSpec {
    pub name: String,
    pub model: String,
    pub size: u32,
    pub variables: Vec<VariableDesc>,
    pub constants: Vec<ConstantDesc>,
    pub init: KernelRef,
    pub update: KernelRef,
    pub site: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SourceSpec {
    pub name: String,
    pub size: u32,
    pub path: String,
    pub site: u32,
}

/// What sends spikes into a projection.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum NodeRef {
    Population(usize),
    Source(usize),
}

impl From<NodeRef> for Node {
    fn from(node: NodeRef) -> Node {
        match node {
            NodeRef::Population(p) => Node::Population(p),
            NodeRef::Source(s) => Node::Source(s),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum ConnectRule {
    AllToAll,
    OneToOne,
    Bernoulli(f64),
    FixedIndegree {
        k: u32,
        multapses: bool,
    },
    FixedOutdegree(u32),
    FixedTotal(u64),
    /// A kernel over (source, target, out) arrays of one row; a nonzero `out` connects.
    Where(KernelRef),
    /// A connection table (source, target[, weight[, delay in ms]]).
    File {
        path: String,
        site: u32,
    },
}

/// One constant, or a kernel over (source, target, out) arrays of every synapse.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum SynapseValueSpec {
    Const(f64),
    PerSynapse(KernelRef),
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PlasticArraySpec {
    pub name: String,
    pub space: Space,
    pub unit: String,
    pub scale: f64,
    pub init: SynapseValueSpec,
    /// The storage type; the handler kernels were compiled for it (an `f32` network stores
    /// its per-synapse, pre and post arrays as `f32` and its port scratch and projection-wide
    /// values as `f64`).
    #[serde(default)]
    pub precision: Precision,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PlasticitySpec {
    pub arrays: Vec<PlasticArraySpec>,
    pub port: Option<u32>,
    /// The array a connection file's weight column sets.
    pub weight: Option<u32>,
    /// One handler kernel per pass (`Pass as usize`).
    pub handlers: [Option<KernelRef>; Pass::ALL.len()],
}

/// A projection.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ConnectionSpec {
    pub name: String,
    pub pre: NodeRef,
    pub post: usize,
    pub target_var: usize,
    pub connect: ConnectRule,
    /// The stream connectivity draws from.
    pub connect_stream: u32,
    pub autapses: bool,
    pub weight: SynapseValueSpec,
    /// Seconds.
    pub delay: SynapseValueSpec,
    /// Seconds (plastic projections).
    pub dendritic_delay: f64,
    pub plasticity: Option<PlasticitySpec>,
    pub site: u32,
    pub delay_site: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct InputSpec {
    pub population: usize,
    pub var: usize,
    pub neurons: Range<u32>,
    pub path: String,
    /// Seconds per row.
    pub every: f64,
    pub site: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum RecordSpec {
    Spikes {
        node: NodeRef,
    },
    Trace {
        population: usize,
        var: usize,
        neurons: Range<u32>,
        every: f64,
        site: u32,
    },
    Synapses {
        projection: usize,
        array: usize,
        pre: Range<u32>,
        post: Range<u32>,
        every: Option<f64>,
        site: u32,
    },
}

/// A data file's contents, as the model names it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DataFile {
    pub path: String,
    #[serde(with = "hex_bytes")]
    pub bytes: Vec<u8>,
}

/// Bytes as one hexadecimal string: compact enough in JSON, and exact.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        let mut text = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            text.push_str(&format!("{b:02x}"));
        }
        serializer.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.len() % 2 != 0 {
            return Err(serde::de::Error::custom("odd number of hex digits"));
        }
        (0..text.len())
            .step_by(2)
            .map(|i| {
                u8::from_str_radix(&text[i..i + 2], 16)
                    .map_err(|_| serde::de::Error::custom("not a hex digit"))
            })
            .collect()
    }
}

impl NetworkSpec {
    /// The spec as JSON bytes (what `snnc build` embeds).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a spec always serialises")
    }

    /// Reads a spec back, refusing one of another format version.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, RuntimeError> {
        let spec: NetworkSpec = serde_json::from_slice(bytes)
            .map_err(|e| RuntimeError::format("the embedded network description", e.to_string()))?;
        if spec.version != SPEC_VERSION {
            return Err(RuntimeError::format(
                "the embedded network description",
                format!(
                    "format version {} but this runtime reads version {SPEC_VERSION}; rebuild the model with the matching snnc",
                    spec.version
                ),
            ));
        }
        Ok(spec)
    }

    /// The bytes of the data file `path`.
    pub fn file(&self, path: &str) -> Result<&[u8], RuntimeError> {
        self.files
            .iter()
            .find(|f| f.path == path)
            .map(|f| f.bytes.as_slice())
            .ok_or_else(|| {
                RuntimeError::format(
                    path,
                    "the data file is missing from the network description",
                )
            })
    }

    /// A 64-bit fingerprint of everything the spec says (FNV-1a of its serialised form); state
    /// files carry it, so a state file of another model is refused.
    pub fn fingerprint(&self) -> u64 {
        fnv1a(&self.to_bytes())
    }

    /// The index of the population called `name`.
    pub fn population(&self, name: &str) -> Option<usize> {
        self.populations.iter().position(|p| p.name == name)
    }
}

/// FNV-1a, 64 bits.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// Formats a number for messages, as the compiler's and a deployed program's both do: at most
/// 12 significant digits (hiding float noise such as `0.30000000000000004`), exponent
/// notation outside 1e-6..1e9.
pub fn format_number(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    if v == 0.0 {
        return "0".to_string();
    }
    let rounded: f64 = format!("{v:.11e}").parse().unwrap_or(v);
    let mag = rounded.abs();
    if !(1e-6..1e9).contains(&mag) {
        format!("{rounded:e}")
    } else {
        format!("{rounded}")
    }
}

/// The number of steps a run of `duration` seconds takes at `dt`.
pub fn steps_for(duration: f64, dt: f64) -> u64 {
    (duration / dt).round().max(0.0) as u64
}

/// A problem found while building, at a site of the spec's producer.
#[derive(Clone, Debug, PartialEq)]
pub struct BuildError {
    /// `None`: not about one place of the model.
    pub site: Option<u32>,
    pub message: String,
    /// What to say at the site.
    pub label: String,
    pub note: Option<String>,
}

impl BuildError {
    fn at(site: u32, error: RuntimeError) -> Self {
        BuildError {
            site: Some(site),
            message: error.to_string(),
            label: "while building this".to_string(),
            note: None,
        }
    }

    fn global(error: RuntimeError) -> Self {
        BuildError {
            site: None,
            message: error.to_string(),
            label: String::new(),
            note: None,
        }
    }
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.message)?;
        if let Some(note) = &self.note {
            write!(f, " ({note})")?;
        }
        Ok(())
    }
}

/// A warning (rounded delays or spike times), at a site.
#[derive(Clone, Debug, PartialEq)]
pub struct BuildWarning {
    pub site: u32,
    pub message: String,
    pub label: String,
}

/// Where and how to write outputs.
#[derive(Clone, Debug)]
pub struct OutputSpec {
    pub dir: std::path::PathBuf,
    pub format: OutputFormat,
}

/// The code of a network: kernel `i` of the table is kernel `i` of the spec.
pub trait KernelTable {
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runs kernel `index` once over every element of `arrays` (initial values, per-synapse
    /// values, a row of a connection predicate), at step `step` and time 0, drawing from
    /// `stream` of `seed`. The arrays hold elements `first..first + len` (element `first + i`
    /// at index `i`), so a long range can be evaluated a window at a time with the values and
    /// draws of the whole. Spikes it may emit are discarded.
    #[allow(clippy::too_many_arguments)]
    fn run_once(
        &self,
        index: usize,
        arrays: &mut [ArrayMut<'_>],
        first: usize,
        step: u64,
        seed: u64,
        stream: u32,
    );

    /// Kernel `index` as a population's update kernel.
    fn population_kernel<'a>(
        &'a self,
        index: usize,
        seed: u64,
        stream: u32,
        n_arrays: usize,
    ) -> Box<dyn PopulationKernel + 'a>;

    /// Kernel `index` as a plasticity handler.
    fn handler<'a>(&'a self, index: usize, seed: u64, stream: u32) -> Box<dyn HandlerKernel + 'a>;
}

/// Native kernels behind the C ABI ([`crate::abi`]), borrowed for `'code`.
#[derive(Debug)]
pub struct NativeTable<'code> {
    functions: Vec<KernelFn>,
    _code: PhantomData<&'code ()>,
}

impl NativeTable<'_> {
    /// A table of compiled kernels.
    ///
    /// # Safety
    ///
    /// `functions[i]` must have been compiled from kernel `i` of the spec the table is used
    /// with (its variables are the arrays [`build`] and the scheduler pass it, addressed as
    /// its kernel says), and must stay valid for the table's lifetime `'code`.
    pub unsafe fn new(functions: Vec<KernelFn>) -> Self {
        NativeTable {
            functions,
            _code: PhantomData,
        }
    }
}

impl<'code> KernelTable for NativeTable<'code> {
    fn len(&self) -> usize {
        self.functions.len()
    }

    fn run_once(
        &self,
        index: usize,
        arrays: &mut [ArrayMut<'_>],
        first: usize,
        step: u64,
        seed: u64,
        stream: u32,
    ) {
        let n = arrays.first().map_or(0, |a| a.len());
        debug_assert!(arrays.iter().all(|a| a.len() == n));
        // The kernel addresses element `e` at `pointer + e`, for `e` in `first..first + n`.
        let pointers: Vec<*mut f64> = arrays
            .iter_mut()
            .map(|a| a.as_mut_ptr_for_window(first))
            .collect();
        let mut spikes = vec![0u32; n];
        let mut ctx = KernelContext {
            arrays: pointers.as_ptr(),
            start: first as u64,
            end: (first + n) as u64,
            step,
            t: 0.0,
            stream_key: Stream::new(seed, stream).key(),
            spikes: spikes.as_mut_ptr(),
            n_spikes: 0,
            gather: [std::ptr::null(); GATHERS],
        };
        // SAFETY: the table's constructor vouched that the function was compiled from this
        // kernel, whose variables are these arrays, each holding elements `first..first + n`
        // at the pointers' offsets `first..first + n`; `spikes` has room for `n` entries.
        unsafe { (self.functions[index])(&mut ctx) };
    }

    fn population_kernel<'a>(
        &'a self,
        index: usize,
        seed: u64,
        stream: u32,
        n_arrays: usize,
    ) -> Box<dyn PopulationKernel + 'a> {
        // SAFETY: compiled from this population's update kernel (the table's contract), whose
        // variables are the population's arrays; `NativeKernel` checks their count and sizes.
        Box::new(unsafe {
            NativeKernel::new(
                self.functions[index],
                Stream::new(seed, stream).key(),
                n_arrays,
            )
        })
    }

    fn handler<'a>(&'a self, index: usize, seed: u64, stream: u32) -> Box<dyn HandlerKernel + 'a> {
        // SAFETY: compiled from this handler kernel (the table's contract).
        Box::new(unsafe {
            NativeHandler::new(self.functions[index], Stream::new(seed, stream).key())
        })
    }
}

/// Checks that a table has the spec's kernels.
fn check_table(spec: &NetworkSpec, table: &dyn KernelTable) -> Result<(), BuildError> {
    if table.len() != spec.kernels.len() {
        return Err(BuildError::global(RuntimeError::invalid(
            "kernel table",
            format!(
                "{} kernels given for a network description that has {}",
                table.len(),
                spec.kernels.len()
            ),
        )));
    }
    Ok(())
}

/// The update kernel of every population, in order.
pub fn population_kernels<'a>(
    spec: &NetworkSpec,
    table: &'a dyn KernelTable,
    seed: u64,
) -> Vec<Box<dyn PopulationKernel + 'a>> {
    spec.populations
        .iter()
        .map(|p| table.population_kernel(p.update.kernel, seed, p.update.stream, p.variables.len()))
        .collect()
}

/// The handlers of every plastic projection.
pub fn projection_handlers<'a>(
    spec: &NetworkSpec,
    table: &'a dyn KernelTable,
    seed: u64,
) -> Vec<ProjectionHandlers<'a>> {
    spec.projections
        .iter()
        .enumerate()
        .filter_map(|(index, projection)| {
            let plastic = projection.plasticity.as_ref()?;
            let mut passes: [Option<Box<dyn HandlerKernel + 'a>>; Pass::ALL.len()] =
                Default::default();
            for (pass, handler) in plastic.handlers.iter().enumerate() {
                if let Some(k) = handler {
                    passes[pass] = Some(table.handler(k.kernel, seed, k.stream));
                }
            }
            Some(ProjectionHandlers {
                projection: index,
                passes,
            })
        })
        .collect()
}

/// Builds the network a spec describes for a run of `steps` steps, with random numbers from
/// `seed`, recording into `output` when given. Warnings come back with it.
pub fn build(
    spec: &NetworkSpec,
    table: &dyn KernelTable,
    seed: u64,
    steps: u64,
    output: Option<&OutputSpec>,
) -> Result<(Network, Vec<BuildWarning>), BuildError> {
    check_table(spec, table)?;
    let mut warnings = Vec::new();
    let dt = spec.dt;
    check_memory(spec).map_err(|e| BuildError {
        note: Some("the estimate counts state arrays, synapses and delay buffers; reduce the network or use a machine with more memory".to_string()),
        ..BuildError::global(e)
    })?;
    let mut network = Network::new(dt, seed).map_err(BuildError::global)?;

    for pop in &spec.populations {
        let specs: Vec<VariableSpec> = pop
            .variables
            .iter()
            .map(|v| VariableSpec::new(&v.name, &v.unit, v.scale))
            .collect();
        let mut population =
            Population::with_precision(&pop.name, pop.size as usize, &specs, spec.precision)
                .map_err(|e| BuildError::at(pop.site, e))?;
        let mut views: Vec<ArrayMut> = population.arrays.iter_mut().map(Array::view_mut).collect();
        table.run_once(pop.init.kernel, &mut views, 0, 0, seed, pop.init.stream);
        network
            .add_population(population)
            .map_err(|e| BuildError::at(pop.site, e))?;
    }
    for source in &spec.sources {
        let at = |e| BuildError::at(source.site, e);
        let bytes = spec.file(&source.path).map_err(at)?;
        let (times, indices) = decode_spike_table(&source.path, bytes).map_err(at)?;
        let (spikes, rounding) = SpikeSource::from_times(
            &source.name,
            source.size as usize,
            &times,
            &indices,
            dt,
            steps,
        )
        .map_err(at)?;
        if rounding.rounded > 0 {
            warnings.push(BuildWarning {
                site: source.site,
                message: format!(
                    "{} spike time(s) in \"{}\" are not multiples of dt and were rounded to the nearest step (by up to {} ms)",
                    rounding.rounded,
                    source.path,
                    format_number(rounding.max_shift_s * 1e3)
                ),
                label: "spike times rounded".to_string(),
            });
        }
        network.add_source(spikes).map_err(at)?;
    }
    for (index, projection) in spec.projections.iter().enumerate() {
        let built = build_projection(spec, table, seed, index, projection, &mut warnings)?;
        network
            .add_projection(built)
            .map_err(|e| BuildError::at(projection.site, e))?;
    }
    network.reductions = spec.reductions.clone();
    for input in &spec.inputs {
        let at = |e| BuildError::at(input.site, e);
        let pop = &spec.populations[input.population];
        let scale = pop.variables[input.var].scale;
        let bytes = spec.file(&input.path).map_err(at)?;
        let array = npy::decode_npy(&input.path, bytes).map_err(at)?;
        let values: Vec<f64> = array
            .to_f64(&input.path)
            .map_err(at)?
            .into_iter()
            .map(|v| v * scale)
            .collect();
        let every_steps = steps_for(input.every, dt).max(1);
        let range = input.neurons.start as usize..input.neurons.end as usize;
        let timed = TimedInput::new(
            &input.path,
            input.population,
            input.var,
            values,
            &array.shape,
            every_steps,
            range,
        )
        .map_err(at)?;
        network.add_input(timed).map_err(at)?;
    }
    if let Some(output) = output {
        record(spec, &mut network, output)?;
    }
    Ok((network, warnings))
}

/// Sets up the recordings of the spec, writing into `output`.
pub fn record(
    spec: &NetworkSpec,
    network: &mut Network,
    output: &OutputSpec,
) -> Result<(), BuildError> {
    let dt = spec.dt;
    network
        .record_to(&output.dir, output.format)
        .map_err(BuildError::global)?;
    for record in &spec.records {
        let (result, site) = match record {
            RecordSpec::Spikes { node } => (network.record_spikes((*node).into()), None),
            RecordSpec::Trace {
                population,
                var,
                neurons,
                every,
                site,
            } => {
                let neurons: Vec<u32> = neurons.clone().collect();
                (
                    network.record_trace(
                        *population,
                        *var,
                        &neurons,
                        steps_for(*every, dt).max(1),
                        // An f32 network's traces are written as the f32 values it holds.
                        match spec.precision {
                            Precision::F64 => TraceDtype::F64,
                            Precision::F32 => TraceDtype::F32,
                        },
                    ),
                    Some(*site),
                )
            }
            RecordSpec::Synapses {
                projection,
                array,
                pre,
                post,
                every,
                site,
            } => (
                match every {
                    Some(every) => network.record_synapses(
                        *projection,
                        *array,
                        pre.clone(),
                        post.clone(),
                        steps_for(*every, dt).max(1),
                    ),
                    None => {
                        network.record_synapse_table(*projection, *array, pre.clone(), post.clone())
                    }
                },
                Some(*site),
            ),
        };
        result.map_err(|e| match site {
            Some(site) => BuildError::at(site, e),
            None => BuildError::global(e),
        })?;
    }
    Ok(())
}

fn node_size(spec: &NetworkSpec, node: NodeRef) -> u32 {
    match node {
        NodeRef::Population(p) => spec.populations[p].size,
        NodeRef::Source(s) => spec.sources[s].size,
    }
}

fn build_projection(
    spec: &NetworkSpec,
    table: &dyn KernelTable,
    seed: u64,
    index: usize,
    projection: &ConnectionSpec,
    warnings: &mut Vec<BuildWarning>,
) -> Result<Projection, BuildError> {
    let dt = spec.dt;
    let n_pre = node_size(spec, projection.pre);
    let n_post = spec.populations[projection.post].size;
    let builder = ProjectionSpec {
        name: projection.name.clone(),
        n_pre,
        n_post,
        seed,
        projection: projection.connect_stream,
        same_population: projection.pre == NodeRef::Population(projection.post),
        autapses: projection.autapses,
    };
    let at = |e: RuntimeError| BuildError::at(projection.site, e);
    let mut file_weights: Option<Vec<f64>> = None;
    let mut file_delays: Option<Vec<f64>> = None;
    let mut connectivity = match &projection.connect {
        ConnectRule::AllToAll => Connectivity::all_to_all(&builder).map_err(at)?,
        ConnectRule::OneToOne => Connectivity::one_to_one(&builder).map_err(at)?,
        ConnectRule::Bernoulli(p) => Connectivity::bernoulli(&builder, *p).map_err(at)?,
        ConnectRule::FixedIndegree {
            k,
            multapses: false,
        } => Connectivity::fixed_indegree(&builder, *k).map_err(at)?,
        ConnectRule::FixedIndegree { k, multapses: true } => {
            Connectivity::fixed_indegree_with_multapses(&builder, *k).map_err(at)?
        }
        ConnectRule::FixedOutdegree(k) => {
            Connectivity::fixed_outdegree(&builder, *k).map_err(at)?
        }
        ConnectRule::FixedTotal(n) => Connectivity::fixed_total(&builder, *n).map_err(at)?,
        ConnectRule::Where(kernel) => {
            // The builder asks row by row; each row is evaluated once, in one kernel run.
            let mut row: Option<(u32, Vec<f64>)> = None;
            Connectivity::predicate(&builder, |i, j| {
                if row.as_ref().is_none_or(|(r, _)| *r != i) {
                    let values = eval_row(table, *kernel, i, n_post, seed);
                    row = Some((i, values));
                }
                row.as_ref()
                    .is_some_and(|(_, values)| values[j as usize] != 0.0)
            })
            .map_err(at)?
        }
        ConnectRule::File { path, site } => {
            let file_at = |e| BuildError::at(*site, e);
            let table =
                decode_pair_table(path, spec.file(path).map_err(file_at)?).map_err(file_at)?;
            let target_scale =
                spec.populations[projection.post].variables[projection.target_var].scale;
            let mut order: Vec<usize> = (0..table.pairs.len()).collect();
            order.sort_by_key(|&r| table.pairs[r]);
            let pairs: Vec<(u32, u32)> = order.iter().map(|&r| table.pairs[r]).collect();
            if let Some(w) = &table.weights {
                file_weights = Some(order.iter().map(|&r| w[r] * target_scale).collect());
            }
            if let Some(d) = &table.delays {
                file_delays = Some(order.iter().map(|&r| d[r] * 1e-3).collect());
            }
            Connectivity::from_pairs(&builder, &pairs, path).map_err(file_at)?
        }
    };
    let n_synapses = connectivity.n_synapses() as usize;
    // A constant weight is stored once, not once per synapse (same values delivered).
    let weights = match (&file_weights, &projection.weight) {
        // A plastic synapse's weight is its state; the file sets its initial value below.
        _ if projection.plasticity.is_some() => Weights::Uniform {
            value: 0.0,
            count: n_synapses as u64,
        },
        (Some(w), _) => Weights::per_synapse(spec.precision, w.clone()),
        // Rounded like a stored weight, so the two forms still deliver the same bits.
        (None, SynapseValueSpec::Const(w)) => Weights::Uniform {
            value: spec.precision.round(*w),
            count: n_synapses as u64,
        },
        (None, SynapseValueSpec::PerSynapse(kernel)) => {
            match eval_per_synapse_stored(table, *kernel, &connectivity, seed, spec.precision) {
                Array::F64(w) => Weights::PerSynapse(w),
                Array::F32(w) => Weights::PerSynapseF32(w),
            }
        }
    };
    let delays_s = match (&file_delays, &projection.delay) {
        (Some(d), _) => Some(d.clone()),
        (None, SynapseValueSpec::Const(_)) => None,
        (None, SynapseValueSpec::PerSynapse(kernel)) => {
            Some(eval_per_synapse(table, *kernel, &connectivity, seed))
        }
    };
    let mut rounded = 0u64;
    let delay_error = |message: String, label: &str| BuildError {
        site: Some(projection.delay_site),
        message,
        label: label.to_string(),
        note: None,
    };
    let mut to_steps = |d: f64| -> Result<u16, BuildError> {
        if !d.is_finite() || d < 0.0 {
            return Err(delay_error(
                format!(
                    "a delay of {} ms is not allowed; delays must be zero or positive",
                    format_number(d * 1e3)
                ),
                "negative or invalid delay",
            ));
        }
        let steps = (d / dt).round();
        if ((d / dt) - steps).abs() > 1e-6 {
            rounded += 1;
        }
        if steps > f64::from(u16::MAX) {
            return Err(delay_error(
                format!(
                    "a delay of {} ms is {} steps, more than the {} the delay buffers hold",
                    format_number(d * 1e3),
                    steps,
                    u16::MAX
                ),
                "delay too long",
            ));
        }
        Ok(steps as u16)
    };
    match (&delays_s, &projection.delay) {
        (Some(per_synapse), _) => {
            let steps: Vec<u16> = per_synapse
                .iter()
                .map(|&d| to_steps(d))
                .collect::<Result<_, _>>()?;
            connectivity.set_delays(|_, _, s| steps[s as usize]);
        }
        (None, SynapseValueSpec::Const(d)) => {
            let steps = to_steps(*d)?;
            connectivity.set_homogeneous_delay(steps);
        }
        (None, SynapseValueSpec::PerSynapse(_)) => {}
    }
    if rounded > 0 {
        warnings.push(BuildWarning {
            site: projection.delay_site,
            message: format!(
                "{rounded} delay(s) of `{}` are not multiples of dt = {} ms and were rounded to the nearest step",
                projection.name,
                format_number(dt * 1e3)
            ),
            label: "rounded to whole steps".to_string(),
        });
    }
    let mut built = Projection::with_weights(
        &projection.name,
        projection.pre.into(),
        projection.post,
        connectivity,
        weights,
        projection.target_var,
    )
    .map_err(at)?;
    if let Some(plastic) = &projection.plasticity {
        attach_plasticity(
            spec,
            table,
            seed,
            index,
            plastic,
            &mut built,
            file_weights.as_deref(),
        )?;
    }
    Ok(built)
}

/// Gives a just-built plastic projection its state: arrays initialised from their values (the
/// weight from the connection file's weight column when there is one), the axonal delay (the
/// connectivity's) and the dendritic delay (carried by the ring from now on).
fn attach_plasticity(
    spec: &NetworkSpec,
    table: &dyn KernelTable,
    seed: u64,
    index: usize,
    plastic: &PlasticitySpec,
    built: &mut Projection,
    file_weights: Option<&[f64]>,
) -> Result<(), BuildError> {
    let projection = &spec.projections[index];
    let at = |e: RuntimeError| BuildError::at(projection.site, e);
    let conn = &built.connectivity;
    let (n_pre, n_post) = (conn.n_pre() as usize, conn.n_post() as usize);
    let mut arrays = Vec::with_capacity(plastic.arrays.len());
    for (a, array) in plastic.arrays.iter().enumerate() {
        let len = match array.space {
            Space::Synapse => conn.n_synapses() as usize,
            Space::Pre => n_pre,
            Space::Post => n_post,
            Space::Global => 1,
        };
        let values = match (file_weights, &array.init) {
            (Some(w), _) if plastic.weight == Some(a as u32) => {
                Array::from_f64(array.precision, w.to_vec())
            }
            (_, SynapseValueSpec::Const(c)) => Array::from_f64(array.precision, vec![*c; len]),
            (_, SynapseValueSpec::PerSynapse(kernel)) => {
                eval_per_synapse_stored(table, *kernel, conn, seed, array.precision)
            }
        };
        arrays.push(PlasticArray {
            name: array.name.clone(),
            space: array.space,
            unit: array.unit.clone(),
            scale: array.scale,
            values,
        });
    }
    if conn.delays().is_some() {
        return Err(BuildError {
            site: Some(projection.delay_site),
            message: "a plastic projection needs one delay for all its synapses".to_string(),
            label: "the delays differ between synapses".to_string(),
            note: Some(
                "heterogeneous delays of plastic synapses are not simulated yet".to_string(),
            ),
        });
    }
    // The connectivity's delay is the axonal one; the ring carries the dendritic one.
    let axonal = conn.max_delay();
    // Rounded like any delay (a non-negative constant: lowering checked it).
    let dendritic = (projection.dendritic_delay / spec.dt)
        .round()
        .clamp(0.0, f64::from(u16::MAX)) as u16;
    let state = Plasticity::new(
        conn,
        arrays,
        plastic.port.map(|p| p as usize),
        axonal,
        dendritic,
        matches!(projection.pre, NodeRef::Population(_)),
    )
    .map_err(at)?;
    if dendritic != 0 {
        built.connectivity.set_homogeneous_delay(dendritic);
        built.ring = crate::DelayRing::new(n_post, dendritic).map_err(at)?;
    }
    built.plasticity = Some(Box::new(state));
    Ok(())
}

/// Estimates memory from the spec alone, before anything large is allocated.
fn check_memory(spec: &NetworkSpec) -> Result<(), RuntimeError> {
    let populations: Vec<PopulationPlan> = spec
        .populations
        .iter()
        .map(|p| PopulationPlan {
            size: u64::from(p.size),
            n_arrays: p.variables.len() as u64,
            precision: spec.precision,
        })
        .collect();
    let projections: Vec<ProjectionPlan> = spec
        .projections
        .iter()
        .map(|p| {
            let n_pre = u64::from(node_size(spec, p.pre));
            let n_post = u64::from(spec.populations[p.post].size);
            let synapses = match &p.connect {
                ConnectRule::AllToAll | ConnectRule::Where(_) => n_pre * n_post,
                ConnectRule::OneToOne => n_pre.min(n_post),
                ConnectRule::Bernoulli(prob) => (prob * (n_pre * n_post) as f64) as u64,
                ConnectRule::FixedIndegree { k, .. } => u64::from(*k) * n_post,
                ConnectRule::FixedOutdegree(k) => u64::from(*k) * n_pre,
                ConnectRule::FixedTotal(n) => *n,
                ConnectRule::File { .. } => 0,
            };
            ProjectionPlan {
                n_pre,
                n_post,
                synapses,
                heterogeneous_delays: matches!(p.delay, SynapseValueSpec::PerSynapse(_)),
                max_delay_steps: match p.delay {
                    SynapseValueSpec::Const(d) => steps_for(d, spec.dt),
                    SynapseValueSpec::PerSynapse(_) => 0,
                },
                // Per-synapse arrays (8 or 4 bytes each), and the post-to-synapse index: the
                // connectivity's (8 + 4) and the handlers' u32 copy of the synapse column (4).
                plastic_bytes_per_synapse: p.plasticity.as_ref().map_or(0, |pl| {
                    let bytes: u64 = pl
                        .arrays
                        .iter()
                        .filter(|a| a.space == Space::Synapse)
                        .map(|a| a.precision.bytes())
                        .sum();
                    bytes + 16
                }),
                precision: spec.precision,
            }
        })
        .collect();
    Network::check_memory(&populations, &projections, 0).map(|_| ())
}

/// Evaluates a per-pair kernel (a `where` condition) for every target `j` of source `i`.
/// Random draws are keyed by (target, source) as (element, step), so every pair draws its own
/// numbers, independently of how rows are visited.
fn eval_row(
    table: &dyn KernelTable,
    kernel: KernelRef,
    i: u32,
    n_post: u32,
    seed: u64,
) -> Vec<f64> {
    let n = n_post as usize;
    let mut pre = vec![f64::from(i); n];
    let mut post: Vec<f64> = (0..n_post).map(f64::from).collect();
    let mut out = vec![0.0; n];
    let mut views: Vec<ArrayMut> = vec![
        (&mut pre[..]).into(),
        (&mut post[..]).into(),
        (&mut out[..]).into(),
    ];
    table.run_once(
        kernel.kernel,
        &mut views,
        0,
        u64::from(i),
        seed,
        kernel.stream,
    );
    out
}

/// Synapses whose per-synapse values are evaluated at a time: the temporaries (source,
/// target and value of each, as `f64`) take 24 bytes per synapse, 1.5 MiB per window here,
/// instead of 24 bytes per synapse of the whole projection on top of its storage.
const SYNAPSE_WINDOW: usize = 1 << 16;

/// Evaluates a per-synapse kernel for every synapse, `window` synapses at a time
/// ([`SYNAPSE_WINDOW`]), handing `sink` each window's values in synapse order. Random draws
/// are keyed by synapse index, so the values do not depend on the window. The kernel reads
/// the source from array 0, the target from array 1, and stores array 2.
fn eval_per_synapse_windows(
    table: &dyn KernelTable,
    kernel: KernelRef,
    connectivity: &Connectivity,
    seed: u64,
    window: usize,
    mut sink: impl FnMut(&[f64]),
) {
    let n = connectivity.n_synapses() as usize;
    let window = window.max(1);
    let capacity = n.min(window);
    let (mut pre, mut post, mut out) = (
        Vec::with_capacity(capacity),
        Vec::with_capacity(capacity),
        Vec::with_capacity(capacity),
    );
    // `source` is the row holding synapse `first`: rows are contiguous and in source order.
    let mut source = 0u32;
    let mut first = 0;
    while first < n {
        let end = (first + window).min(n);
        pre.clear();
        post.clear();
        for s in first..end {
            while connectivity.row_range(source).end <= s {
                source += 1;
            }
            pre.push(f64::from(source));
            post.push(f64::from(connectivity.targets()[s]));
        }
        out.clear();
        out.resize(end - first, 0.0);
        let mut views: Vec<ArrayMut> = vec![
            (&mut pre[..]).into(),
            (&mut post[..]).into(),
            (&mut out[..]).into(),
        ];
        table.run_once(kernel.kernel, &mut views, first, 0, seed, kernel.stream);
        sink(&out);
        first = end;
    }
}

/// The values of a per-synapse kernel for every synapse, as `f64`.
fn eval_per_synapse(
    table: &dyn KernelTable,
    kernel: KernelRef,
    connectivity: &Connectivity,
    seed: u64,
) -> Vec<f64> {
    let mut values = Vec::with_capacity(connectivity.n_synapses() as usize);
    eval_per_synapse_windows(table, kernel, connectivity, seed, SYNAPSE_WINDOW, |w| {
        values.extend_from_slice(w)
    });
    values
}

/// The values of a per-synapse kernel for every synapse, stored in `precision` (each rounded
/// once for `f32`) without an `f64` copy of the whole.
fn eval_per_synapse_stored(
    table: &dyn KernelTable,
    kernel: KernelRef,
    connectivity: &Connectivity,
    seed: u64,
    precision: Precision,
) -> Array {
    match precision {
        Precision::F64 => Array::F64(eval_per_synapse(table, kernel, connectivity, seed)),
        Precision::F32 => {
            let mut values = Vec::with_capacity(connectivity.n_synapses() as usize);
            eval_per_synapse_windows(table, kernel, connectivity, seed, SYNAPSE_WINDOW, |w| {
                values.extend(w.iter().map(|&v| v as f32))
            });
            Array::F32(values)
        }
    }
}

/// A spike table: `.npy` of shape (n, 2) with rows (time in seconds, index), or CSV with
/// columns time,index.
fn decode_spike_table(path: &str, bytes: &[u8]) -> Result<(Vec<f64>, Vec<i64>), RuntimeError> {
    let (values, rows, columns) = decode_table(path, bytes)?;
    if columns != 2 {
        return Err(RuntimeError::format(
            path,
            format!("a spike table has 2 columns (time in seconds, neuron index), found {columns}"),
        ));
    }
    let mut times = Vec::with_capacity(rows);
    let mut indices = Vec::with_capacity(rows);
    for r in 0..rows {
        times.push(values[r * 2]);
        let index = values[r * 2 + 1];
        if index.fract() != 0.0 {
            return Err(RuntimeError::format(
                path,
                format!("row {r}: the neuron index {index} is not a whole number"),
            ));
        }
        indices.push(index as i64);
    }
    Ok((times, indices))
}

struct PairTable {
    pairs: Vec<(u32, u32)>,
    weights: Option<Vec<f64>>,
    delays: Option<Vec<f64>>,
}

/// A connection table: rows (source, target[, weight[, delay in ms]]), `.npy` (n, 2..4) or CSV.
fn decode_pair_table(path: &str, bytes: &[u8]) -> Result<PairTable, RuntimeError> {
    let (values, rows, columns) = decode_table(path, bytes)?;
    if !(2..=4).contains(&columns) {
        return Err(RuntimeError::format(path, format!("a connection table has 2 to 4 columns (source, target, weight, delay in ms), found {columns}")));
    }
    let mut pairs = Vec::with_capacity(rows);
    for r in 0..rows {
        let (i, j) = (values[r * columns], values[r * columns + 1]);
        for (what, v) in [("source", i), ("target", j)] {
            if v.fract() != 0.0 || v < 0.0 || v > f64::from(u32::MAX) {
                return Err(RuntimeError::format(
                    path,
                    format!("row {r}: the {what} index {v} is not a valid neuron index"),
                ));
            }
        }
        pairs.push((i as u32, j as u32));
    }
    let column = |c: usize| {
        (0..rows)
            .map(|r| values[r * columns + c])
            .collect::<Vec<f64>>()
    };
    Ok(PairTable {
        pairs,
        weights: (columns >= 3).then(|| column(2)),
        delays: (columns >= 4).then(|| column(3)),
    })
}

/// A numeric table from `.npy` (2-D) or CSV, as row-major values, rows and columns.
fn decode_table(path: &str, bytes: &[u8]) -> Result<(Vec<f64>, usize, usize), RuntimeError> {
    if path.ends_with(".csv") {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| RuntimeError::format(path, "not UTF-8 text".to_string()))?;
        let table = npy::parse_csv(path, text)?;
        let rows = table.n_rows();
        return Ok((table.values.clone(), rows, table.n_columns));
    }
    let array = npy::decode_npy(path, bytes)?;
    let (rows, columns) = match array.shape.as_slice() {
        [rows, columns] => (*rows, *columns),
        other => {
            return Err(RuntimeError::format(
                path,
                format!("expected a 2-D table, found shape {other:?}"),
            ));
        }
    };
    Ok((array.to_f64(path)?, rows, columns))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_bytes_round_trip_and_spec_version_is_checked() {
        let mut spec = NetworkSpec {
            version: SPEC_VERSION,
            network: "N".into(),
            dt: 1e-4,
            seed: 3,
            duration: Some(0.1),
            kernels: vec![],
            populations: vec![],
            sources: vec![],
            projections: vec![],
            inputs: vec![],
            records: vec![],
            reductions: Default::default(),
            precision: Precision::F32,
            files: vec![DataFile {
                path: "a.npy".into(),
                bytes: vec![0, 1, 254, 255, 16],
            }],
        };
        let back = NetworkSpec::from_bytes(&spec.to_bytes()).unwrap();
        assert_eq!(back, spec);
        assert_eq!(back.fingerprint(), spec.fingerprint());
        spec.version = SPEC_VERSION + 1;
        let error = NetworkSpec::from_bytes(&spec.to_bytes()).unwrap_err();
        assert!(error.to_string().contains("format version"), "{error}");
    }

    /// A kernel table whose one kernel stores `source * 1e6 + target * 1e3 + element` from
    /// what it is handed: the arrays (source, target) and the window's first element.
    struct EchoTable;

    impl KernelTable for EchoTable {
        fn len(&self) -> usize {
            1
        }

        fn run_once(
            &self,
            _index: usize,
            arrays: &mut [ArrayMut<'_>],
            first: usize,
            _step: u64,
            _seed: u64,
            _stream: u32,
        ) {
            for i in 0..arrays[0].len() {
                let value = arrays[0].get(i) * 1e6 + arrays[1].get(i) * 1e3 + (first + i) as f64;
                arrays[2].set(i, value);
            }
        }

        fn population_kernel<'a>(
            &'a self,
            _: usize,
            _: u64,
            _: u32,
            _: usize,
        ) -> Box<dyn PopulationKernel + 'a> {
            unreachable!("not a population kernel")
        }

        fn handler<'a>(&'a self, _: usize, _: u64, _: u32) -> Box<dyn HandlerKernel + 'a> {
            unreachable!("not a handler")
        }
    }

    /// Every synapse gets its own source, target and index, whatever the window, including
    /// windows that start inside a row, rows longer than a window, and empty rows.
    #[test]
    fn per_synapse_values_do_not_depend_on_the_window() {
        let spec = ProjectionSpec {
            name: "A -> B".into(),
            n_pre: 200,
            n_post: 12,
            seed: 5,
            projection: 0,
            same_population: false,
            autapses: true,
        };
        let connectivity = Connectivity::bernoulli(&spec, 0.15).unwrap();
        let n = connectivity.n_synapses() as usize;
        assert!(n > 200, "{n} synapses");
        assert!((0..200).any(|i| connectivity.row_range(i).is_empty()));
        let mut expected = Vec::with_capacity(n);
        for i in 0..200 {
            for s in connectivity.row_range(i) {
                let target = f64::from(connectivity.targets()[s]);
                expected.push(f64::from(i) * 1e6 + target * 1e3 + s as f64);
            }
        }
        let kernel = KernelRef {
            kernel: 0,
            stream: 0,
        };
        for window in [1, 2, 7, 64, n - 1, n, n + 5] {
            let mut values = Vec::new();
            let mut windows = 0;
            eval_per_synapse_windows(&EchoTable, kernel, &connectivity, 1, window, |w| {
                assert!(w.len() <= window);
                windows += 1;
                values.extend_from_slice(w);
            });
            assert_eq!(values, expected, "window {window}");
            assert_eq!(windows, n.div_ceil(window), "window {window}");
        }
        let stored = eval_per_synapse_stored(&EchoTable, kernel, &connectivity, 1, Precision::F32);
        let rounded: Vec<f32> = expected.iter().map(|&v| v as f32).collect();
        assert_eq!(stored, Array::F32(rounded));
    }

    #[test]
    fn floats_survive_the_round_trip_bit_for_bit() {
        // serde_json's `float_roundtrip` feature: parsing must give back exactly the f64
        // written, or a deployed model's constants would differ from `snnc run`'s.
        for v in [
            0.1f64,
            1.0 / 3.0,
            9.950124791926822e-1,
            2.2250738585072014e-308,
            -0.0,
        ] {
            let text = serde_json::to_string(&v).unwrap();
            let back: f64 = serde_json::from_str(&text).unwrap();
            assert_eq!(back.to_bits(), v.to_bits(), "{text}");
        }
    }
}
