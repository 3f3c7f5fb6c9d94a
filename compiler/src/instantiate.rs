//! Instantiation: a lowered [`Program`] and the contents of its data files become a runtime
//! [`Network`] with one kernel per population.
//!
//! This stage owns the decisions between the IR and the runtime: running initialisation
//! kernels, choosing connectivity builders, evaluating per-synapse weights and delays,
//! rounding delays to steps (with a warning when they are not multiples of dt), decoding data
//! files (whose bytes the driver read), estimating memory before allocating, and wrapping
//! kernels for the step loop. It reports problems as diagnostics that name the source span or
//! the file, and never reads the file system itself.

use crate::codegen::CompiledKernels;
use crate::diagnostics::Diagnostic;
pub use crate::instantiate_plastic::{compiled_handlers, interpreted_handlers};
use crate::ir::{interp, Kernel};
use crate::lower::program::{
    stream_of_connect, stream_of_init, stream_of_synapses, stream_of_update, ConnectIr, Node,
    Program, RecordIr, SynapseValue, SYNAPSE_OUT,
};
use crate::source::Span;
use snnc_runtime::network::{PopulationPlan, ProjectionPlan};
use snnc_runtime::plasticity::Space;
use snnc_runtime::rng::Stream;
use snnc_runtime::NativeKernel;
use snnc_runtime::{
    npy, Connectivity, Network, OutputFormat, Population, PopulationKernel, Projection,
    ProjectionSpec, RuntimeError, SpikeSource, TimedInput, TraceDtype, VariableSpec, Weights,
};
use std::collections::HashMap;
use std::marker::PhantomData;
use std::path::PathBuf;

/// The bytes of every data file the program names, keyed by the path as written.
pub type DataFiles = HashMap<String, Vec<u8>>;

/// Where and how to write outputs.
#[derive(Clone, Debug)]
pub struct Output {
    pub dir: PathBuf,
    pub format: OutputFormat,
}

/// Every data file a program reads, with the span that names it.
pub fn data_files(program: &Program) -> Vec<(String, Span)> {
    let mut files = Vec::new();
    for source in &program.sources {
        files.push((source.path.clone(), source.span));
    }
    for projection in &program.projections {
        if let ConnectIr::File { path, span } = &projection.connect {
            files.push((path.clone(), *span));
        }
    }
    for input in &program.timed_inputs {
        files.push((input.path.clone(), input.span));
    }
    files
}

/// The number of steps a run of `duration` seconds takes at `dt`.
pub fn steps_for(duration: f64, dt: f64) -> u64 {
    (duration / dt).round().max(0.0) as u64
}

fn runtime_error(span: Span, error: RuntimeError) -> Diagnostic {
    Diagnostic::error(error.to_string()).primary(span, "while building this")
}

/// Builds the network. Warnings (rounded delays and spike times) come back with it.
pub fn instantiate(
    program: &Program,
    data: &DataFiles,
    steps: u64,
    output: Option<&Output>,
) -> Result<(Network, Vec<Diagnostic>), Vec<Diagnostic>> {
    let mut warnings = Vec::new();
    let dt = program.dt;
    let fail = |d: Diagnostic| vec![d];
    check_memory(program).map_err(|e| fail(Diagnostic::error(e.to_string()).note("the estimate counts state arrays, synapses and delay buffers; reduce the network or use a machine with more memory")))?;
    let mut network =
        Network::new(dt, program.seed).map_err(|e| fail(Diagnostic::error(e.to_string())))?;

    for (index, pop) in program.populations.iter().enumerate() {
        let specs: Vec<VariableSpec> = pop
            .update
            .vars
            .iter()
            .map(|v| VariableSpec::new(&v.name, &v.unit, v.scale))
            .collect();
        let mut population = Population::new(&pop.name, pop.size as usize, &specs)
            .map_err(|e| fail(runtime_error(pop.span, e)))?;
        run_kernel_once(
            &pop.init,
            &mut population.arrays,
            program.seed,
            stream_of_init(index),
        );
        network
            .add_population(population)
            .map_err(|e| fail(runtime_error(pop.span, e)))?;
    }
    for source in &program.sources {
        let bytes = &data[&source.path];
        let (times, indices) = decode_spike_table(&source.path, bytes)
            .map_err(|e| fail(runtime_error(source.span, e)))?;
        let (spikes, rounding) = SpikeSource::from_times(
            &source.name,
            source.size as usize,
            &times,
            &indices,
            dt,
            steps,
        )
        .map_err(|e| fail(runtime_error(source.span, e)))?;
        if rounding.rounded > 0 {
            warnings.push(
                Diagnostic::warning(format!(
                    "{} spike time(s) in \"{}\" are not multiples of dt and were rounded to the nearest step (by up to {} ms)",
                    rounding.rounded,
                    source.path,
                    crate::units::format_number(rounding.max_shift_s * 1e3)
                ))
                .primary(source.span, "spike times rounded"),
            );
        }
        network
            .add_source(spikes)
            .map_err(|e| fail(runtime_error(source.span, e)))?;
    }
    for (index, projection) in program.projections.iter().enumerate() {
        let n_pre = node_size(program, projection.pre);
        let n_post = program.populations[projection.post].size;
        let spec = ProjectionSpec {
            name: projection.name.clone(),
            n_pre,
            n_post,
            seed: program.seed,
            projection: stream_of_connect(index),
            same_population: projection.pre == Node::Population(projection.post),
            autapses: projection.autapses,
        };
        let at = |e: RuntimeError| fail(runtime_error(projection.span, e));
        let mut file_weights: Option<Vec<f64>> = None;
        let mut file_delays: Option<Vec<f64>> = None;
        let mut connectivity = match &projection.connect {
            ConnectIr::AllToAll => Connectivity::all_to_all(&spec).map_err(at)?,
            ConnectIr::OneToOne => Connectivity::one_to_one(&spec).map_err(at)?,
            ConnectIr::Bernoulli(p) => Connectivity::bernoulli(&spec, *p).map_err(at)?,
            ConnectIr::FixedIndegree {
                k,
                multapses: false,
            } => Connectivity::fixed_indegree(&spec, *k).map_err(at)?,
            ConnectIr::FixedIndegree { k, multapses: true } => {
                Connectivity::fixed_indegree_with_multapses(&spec, *k).map_err(at)?
            }
            ConnectIr::FixedOutdegree(k) => Connectivity::fixed_outdegree(&spec, *k).map_err(at)?,
            ConnectIr::FixedTotal(n) => Connectivity::fixed_total(&spec, *n).map_err(at)?,
            ConnectIr::Where(kernel) => {
                // The builder asks row by row; each row is evaluated once, in one kernel run.
                let mut row: Option<(u32, Vec<f64>)> = None;
                Connectivity::predicate(&spec, |i, j| {
                    if row.as_ref().is_none_or(|(r, _)| *r != i) {
                        let values =
                            eval_row(kernel, i, n_post, program.seed, stream_of_connect(index));
                        row = Some((i, values));
                    }
                    row.as_ref()
                        .is_some_and(|(_, values)| values[j as usize] != 0.0)
                })
                .map_err(at)?
            }
            ConnectIr::File { path, span } => {
                let table = decode_pair_table(path, &data[path])
                    .map_err(|e| fail(runtime_error(*span, e)))?;
                let target_scale = program.populations[projection.post].update.vars
                    [projection.target_var as usize]
                    .scale;
                let mut order: Vec<usize> = (0..table.pairs.len()).collect();
                order.sort_by_key(|&r| table.pairs[r]);
                let pairs: Vec<(u32, u32)> = order.iter().map(|&r| table.pairs[r]).collect();
                if let Some(w) = &table.weights {
                    file_weights = Some(order.iter().map(|&r| w[r] * target_scale).collect());
                }
                if let Some(d) = &table.delays {
                    file_delays = Some(order.iter().map(|&r| d[r] * 1e-3).collect());
                }
                Connectivity::from_pairs(&spec, &pairs, path)
                    .map_err(|e| fail(runtime_error(*span, e)))?
            }
        };
        let n_synapses = connectivity.n_synapses() as usize;
        let synapse_stream = stream_of_synapses(index);
        // A constant weight is stored once, not once per synapse (same values delivered).
        let weights = match (&file_weights, &projection.weight) {
            // A plastic synapse's weight is its state; the file sets its initial value below.
            _ if projection.plasticity.is_some() => Weights::Uniform {
                value: 0.0,
                count: n_synapses as u64,
            },
            (Some(w), _) => Weights::PerSynapse(w.clone()),
            (None, SynapseValue::Const(w)) => Weights::Uniform {
                value: *w,
                count: n_synapses as u64,
            },
            (None, SynapseValue::PerSynapse(kernel)) => Weights::PerSynapse(eval_per_synapse(
                kernel,
                &connectivity,
                program.seed,
                synapse_stream,
            )),
        };
        let delays_s = match (&file_delays, &projection.delay) {
            (Some(d), _) => Some(d.clone()),
            (None, SynapseValue::Const(_)) => None,
            (None, SynapseValue::PerSynapse(kernel)) => Some(eval_per_synapse(
                kernel,
                &connectivity,
                program.seed,
                synapse_stream + 2,
            )),
        };
        let mut rounded = 0u64;
        let mut to_steps = |d: f64| -> Result<u16, Diagnostic> {
            if !d.is_finite() || d < 0.0 {
                return Err(Diagnostic::error(format!(
                    "a delay of {} ms is not allowed; delays must be zero or positive",
                    crate::units::format_number(d * 1e3)
                ))
                .primary(projection.delay_span, "negative or invalid delay"));
            }
            let steps = (d / dt).round();
            if ((d / dt) - steps).abs() > 1e-6 {
                rounded += 1;
            }
            if steps > f64::from(u16::MAX) {
                return Err(Diagnostic::error(format!(
                    "a delay of {} ms is {} steps, more than the {} the delay buffers hold",
                    crate::units::format_number(d * 1e3),
                    steps,
                    u16::MAX
                ))
                .primary(projection.delay_span, "delay too long"));
            }
            Ok(steps as u16)
        };
        match (&delays_s, &projection.delay) {
            (Some(per_synapse), _) => {
                let steps: Vec<u16> = per_synapse
                    .iter()
                    .map(|&d| to_steps(d))
                    .collect::<Result<_, _>>()
                    .map_err(fail)?;
                connectivity.set_delays(|_, _, s| steps[s as usize]);
            }
            (None, SynapseValue::Const(d)) => {
                let steps = to_steps(*d).map_err(fail)?;
                connectivity.set_homogeneous_delay(steps);
            }
            (None, SynapseValue::PerSynapse(_)) => {}
        }
        if rounded > 0 {
            warnings.push(
                Diagnostic::warning(format!(
                    "{rounded} delay(s) of `{}` are not multiples of dt = {} ms and were rounded to the nearest step",
                    projection.name,
                    crate::units::format_number(dt * 1e3)
                ))
                .primary(projection.delay_span, "rounded to whole steps"),
            );
        }
        let pre = match projection.pre {
            Node::Population(p) => snnc_runtime::Node::Population(p),
            Node::Source(s) => snnc_runtime::Node::Source(s),
        };
        let mut built = Projection::with_weights(
            &projection.name,
            pre,
            projection.post,
            connectivity,
            weights,
            projection.target_var as usize,
        )
        .map_err(at)?;
        if projection.plasticity.is_some() {
            crate::instantiate_plastic::attach(program, index, &mut built, file_weights.as_deref())
                .map_err(fail)?;
        }
        network.add_projection(built).map_err(at)?;
    }
    network.reductions = crate::lower::population::runtime_reductions(program);
    for input in &program.timed_inputs {
        let pop = &program.populations[input.population];
        let scale = pop.update.vars[input.var as usize].scale;
        let array = npy::decode_npy(&input.path, &data[&input.path])
            .map_err(|e| fail(runtime_error(input.span, e)))?;
        let values: Vec<f64> = array
            .to_f64(&input.path)
            .map_err(|e| fail(runtime_error(input.span, e)))?
            .into_iter()
            .map(|v| v * scale)
            .collect();
        let every_steps = steps_for(input.every, dt).max(1);
        let range = input.neurons.start as usize..input.neurons.end as usize;
        let timed = TimedInput::new(
            &input.path,
            input.population,
            input.var as usize,
            values,
            &array.shape,
            every_steps,
            range,
        )
        .map_err(|e| fail(runtime_error(input.span, e)))?;
        network
            .add_input(timed)
            .map_err(|e| fail(runtime_error(input.span, e)))?;
    }
    if let Some(output) = output {
        network
            .record_to(&output.dir, output.format)
            .map_err(|e| fail(Diagnostic::error(e.to_string())))?;
        for record in &program.records {
            let result = match record {
                RecordIr::Spikes { node } => network.record_spikes(match node {
                    Node::Population(p) => snnc_runtime::Node::Population(*p),
                    Node::Source(s) => snnc_runtime::Node::Source(*s),
                }),
                RecordIr::Trace {
                    population,
                    var,
                    neurons,
                    every,
                    ..
                } => {
                    let neurons: Vec<u32> = neurons.clone().collect();
                    network.record_trace(
                        *population,
                        *var as usize,
                        &neurons,
                        steps_for(*every, dt).max(1),
                        TraceDtype::F64,
                    )
                }
                RecordIr::Synapses {
                    projection,
                    array,
                    pre,
                    post,
                    every,
                    ..
                } => match every {
                    Some(every) => network.record_synapses(
                        *projection,
                        *array as usize,
                        pre.clone(),
                        post.clone(),
                        steps_for(*every, dt).max(1),
                    ),
                    None => network.record_synapse_table(
                        *projection,
                        *array as usize,
                        pre.clone(),
                        post.clone(),
                    ),
                },
            };
            let span = match record {
                RecordIr::Trace { span, .. } | RecordIr::Synapses { span, .. } => *span,
                RecordIr::Spikes { .. } => Span::default(),
            };
            result.map_err(|e| fail(runtime_error(span, e)))?;
        }
    }
    Ok((network, warnings))
}

fn node_size(program: &Program, node: Node) -> u32 {
    match node {
        Node::Population(p) => program.populations[p].size,
        Node::Source(s) => program.sources[s].size,
    }
}

/// Estimates memory from the program alone, before anything large is allocated.
fn check_memory(program: &Program) -> Result<(), RuntimeError> {
    let populations: Vec<PopulationPlan> = program
        .populations
        .iter()
        .map(|p| PopulationPlan {
            size: u64::from(p.size),
            n_arrays: p.update.vars.len() as u64,
        })
        .collect();
    let projections: Vec<ProjectionPlan> = program
        .projections
        .iter()
        .map(|p| {
            let n_pre = u64::from(node_size(program, p.pre));
            let n_post = u64::from(program.populations[p.post].size);
            let synapses = match &p.connect {
                ConnectIr::AllToAll | ConnectIr::Where(_) => n_pre * n_post,
                ConnectIr::OneToOne => n_pre.min(n_post),
                ConnectIr::Bernoulli(prob) => (prob * (n_pre * n_post) as f64) as u64,
                ConnectIr::FixedIndegree { k, .. } => u64::from(*k) * n_post,
                ConnectIr::FixedOutdegree(k) => u64::from(*k) * n_pre,
                ConnectIr::FixedTotal(n) => *n,
                ConnectIr::File { .. } => 0,
            };
            ProjectionPlan {
                n_pre,
                n_post,
                synapses,
                heterogeneous_delays: matches!(p.delay, SynapseValue::PerSynapse(_)),
                max_delay_steps: match p.delay {
                    SynapseValue::Const(d) => steps_for(d, program.dt),
                    SynapseValue::PerSynapse(_) => 0,
                },
                // Per-synapse arrays (8 bytes each), and the post-to-synapse index: the
                // connectivity's (8 + 4) and the handlers' u32 copy of the synapse column (4).
                plastic_bytes_per_synapse: p.plasticity.as_ref().map_or(0, |pl| {
                    let per_synapse = pl
                        .arrays
                        .iter()
                        .filter(|a| a.space == Space::Synapse)
                        .count() as u64;
                    8 * per_synapse + 16
                }),
            }
        })
        .collect();
    Network::check_memory(&populations, &projections, 0).map(|_| ())
}

/// Runs a kernel once over all elements (initialisation), with step 0.
pub fn run_kernel_once(kernel: &Kernel, arrays: &mut [Vec<f64>], seed: u64, stream: u32) {
    let n = arrays.first().map_or(0, Vec::len);
    let mut views: Vec<&mut [f64]> = arrays.iter_mut().map(|a| a.as_mut_slice()).collect();
    let mut spikes = Vec::new();
    let info = interp::StepInfo {
        step: 0,
        t: 0.0,
        seed,
        stream,
    };
    interp::run(kernel, &mut views, 0, n, info, &mut spikes);
}

/// Evaluates a per-pair kernel (a `where` condition) for every target `j` of source `i`.
/// Random draws are keyed by (target, source) as (element, step), so every pair draws its own
/// numbers, independently of how rows are visited.
fn eval_row(kernel: &Kernel, i: u32, n_post: u32, seed: u64, stream: u32) -> Vec<f64> {
    let n = n_post as usize;
    let mut pre = vec![f64::from(i); n];
    let mut post: Vec<f64> = (0..n_post).map(f64::from).collect();
    let mut out = vec![0.0; n];
    let mut views: Vec<&mut [f64]> = vec![&mut pre, &mut post, &mut out];
    let mut spikes = Vec::new();
    let info = interp::StepInfo {
        step: u64::from(i),
        t: 0.0,
        seed,
        stream,
    };
    interp::run(kernel, &mut views, 0, n, info, &mut spikes);
    out
}

/// Evaluates a per-synapse kernel for every synapse; random draws are keyed by synapse index.
pub(crate) fn eval_per_synapse(
    kernel: &Kernel,
    connectivity: &Connectivity,
    seed: u64,
    stream: u32,
) -> Vec<f64> {
    let n = connectivity.n_synapses() as usize;
    let mut pre = vec![0.0; n];
    let mut post = vec![0.0; n];
    for i in 0..connectivity.n_pre() {
        for s in connectivity.row_range(i) {
            pre[s] = f64::from(i);
            post[s] = f64::from(connectivity.targets()[s]);
        }
    }
    let mut out = vec![0.0; n];
    let mut views: Vec<&mut [f64]> = vec![&mut pre, &mut post, &mut out];
    let mut spikes = Vec::new();
    interp::run(
        kernel,
        &mut views,
        0,
        n,
        interp::StepInfo {
            step: 0,
            t: 0.0,
            seed,
            stream,
        },
        &mut spikes,
    );
    debug_assert_eq!(SYNAPSE_OUT, 2);
    out
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

/// A population kernel run by the reference interpreter.
pub struct InterpretedKernel {
    pub kernel: Kernel,
    pub seed: u64,
    pub stream: u32,
}

impl PopulationKernel for InterpretedKernel {
    fn update(
        &mut self,
        population: &mut Population,
        step: u64,
        t: f64,
        spikes: &mut Vec<u32>,
    ) -> Result<(), RuntimeError> {
        let n = population.size;
        let mut views: Vec<&mut [f64]> = population
            .arrays
            .iter_mut()
            .map(|a| a.as_mut_slice())
            .collect();
        interp::run(
            &self.kernel,
            &mut views,
            0,
            n,
            interp::StepInfo {
                step,
                t,
                seed: self.seed,
                stream: self.stream,
            },
            spikes,
        );
        Ok(())
    }
}

/// Interpreted kernels for every population.
pub fn interpreted_kernels(program: &Program) -> Vec<Box<dyn PopulationKernel>> {
    program
        .populations
        .iter()
        .enumerate()
        .map(|(i, p)| {
            Box::new(InterpretedKernel {
                kernel: p.update.clone(),
                seed: program.seed,
                stream: stream_of_update(i),
            }) as Box<dyn PopulationKernel>
        })
        .collect()
}

/// A JIT-compiled population kernel. It borrows the compiled code, so the borrow checker
/// guarantees the code outlives every call.
pub struct CompiledKernel<'code> {
    native: NativeKernel,
    _code: PhantomData<&'code CompiledKernels>,
}

impl PopulationKernel for CompiledKernel<'_> {
    fn update(
        &mut self,
        population: &mut Population,
        step: u64,
        t: f64,
        spikes: &mut Vec<u32>,
    ) -> Result<(), RuntimeError> {
        self.native.update(population, step, t, spikes)
    }

    fn native(&self) -> Option<snnc_runtime::NativeFunction> {
        self.native.native()
    }
}

/// Compiled kernels for every population; `compiled` must come from
/// `jit_compile` over the populations' update kernels, in order.
pub fn compiled_kernels<'code>(
    program: &Program,
    compiled: &'code CompiledKernels,
) -> Vec<Box<dyn PopulationKernel + 'code>> {
    assert!(
        compiled.len() >= program.populations.len(),
        "one compiled kernel per population, first"
    );
    program
        .populations
        .iter()
        .enumerate()
        .map(|(i, population)| {
            let key = Stream::new(program.seed, stream_of_update(i)).key();
            // SAFETY: function `i` was compiled from population `i`'s update kernel, whose
            // variables are exactly that population's arrays (NativeKernel checks their count and
            // lengths on every call), and the `'code` borrow keeps the code alive.
            let native = unsafe {
                NativeKernel::new(compiled.function(i), key, population.update.vars.len())
            };
            Box::new(CompiledKernel {
                native,
                _code: PhantomData,
            }) as Box<dyn PopulationKernel + 'code>
        })
        .collect()
}
