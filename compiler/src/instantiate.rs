//! Instantiation: a lowered [`Program`] and the contents of its data files become a runtime
//! [`Network`] with one kernel per population.
//!
//! This stage translates the IR program into the runtime's plain-data network description
//! ([`snnc_runtime::spec::NetworkSpec`], [`describe`]): every kernel the network needs
//! (updates, handlers, initialisation, per-synapse weights and delays, connection predicates)
//! goes into one list the spec refers to by index, and every source span the runtime may
//! complain about becomes a numbered *site*. The runtime's `spec::build` then does the
//! construction (running init kernels, connectivity, delays and their rounding, data files,
//! memory estimate) with a kernel table: the interpreter ([`InterpretedTable`]) or compiled
//! code ([`native_table`]). A deployed model built by `snnc build` runs the same
//! construction on the same spec with the same kernels, linked, which is why its outputs equal
//! `snnc run`'s. This module maps the runtime's errors and warnings back to diagnostics at
//! their source spans; it never reads the file system itself.

use crate::codegen::CompiledKernels;
use crate::diagnostics::Diagnostic;
pub use crate::instantiate_plastic::{compiled_handlers, interpreted_handlers};
use crate::ir::VarRole;
use crate::ir::{interp, Kernel};
use crate::lower::program::{
    stream_of_connect, stream_of_handler, stream_of_init, stream_of_plastic_init,
    stream_of_synapses, stream_of_update, ConnectIr, Node, Program, RecordIr, SynapseValue,
};
use crate::source::Span;
use snnc_runtime::array::{Array, ArrayMut, Precision};
use snnc_runtime::plasticity::HandlerKernel;
use snnc_runtime::rng::Stream;
use snnc_runtime::spec::{
    self, BuildError, BuildWarning, ConnectRule, ConnectionSpec, ConstantDesc, DataFile, InputSpec,
    KernelInfo, KernelRef, KernelTable, NativeTable, NetworkSpec, NodeRef, OutputSpec,
    PlasticArraySpec, PlasticitySpec, PopulationSpec, RecordSpec, SourceSpec, SynapseValueSpec,
    VariableDesc, VariableRole, SPEC_VERSION,
};
use snnc_runtime::NativeKernel;
use snnc_runtime::{Network, OutputFormat, Population, PopulationKernel, RuntimeError};
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

pub use snnc_runtime::spec::steps_for;

/// A program described as plain data for the runtime ([`NetworkSpec`]), with the kernels the
/// spec refers to by index and the source span of every site the spec names.
pub struct Described<'p> {
    pub spec: NetworkSpec,
    /// Kernel `i` of the spec. The first ones are [`Program::jit_kernels`] in order (population
    /// updates, then handlers), so [`compiled_kernels`] and [`compiled_handlers`] can take code
    /// compiled from this list; then init kernels, then per-synapse and per-pair kernels.
    pub kernels: Vec<&'p Kernel>,
    /// The span of each site number used in the spec.
    pub sites: Vec<Span>,
}

impl Described<'_> {
    /// A runtime build error as a diagnostic at its site.
    pub fn diagnostic(&self, error: &BuildError) -> Diagnostic {
        let mut d = Diagnostic::error(error.message.clone());
        if let Some(site) = error.site {
            d = d.primary(self.sites[site as usize], error.label.clone());
        }
        if let Some(note) = &error.note {
            d = d.note(note.clone());
        }
        d
    }

    /// A runtime build warning as a diagnostic at its site.
    pub fn warning(&self, warning: &BuildWarning) -> Diagnostic {
        Diagnostic::warning(warning.message.clone())
            .primary(self.sites[warning.site as usize], warning.label.clone())
    }
}

struct Describer<'p> {
    kernels: Vec<&'p Kernel>,
    sites: Vec<Span>,
}

impl<'p> Describer<'p> {
    fn site(&mut self, span: Span) -> u32 {
        self.sites.push(span);
        (self.sites.len() - 1) as u32
    }

    fn kernel(&mut self, kernel: &'p Kernel, stream: u32) -> KernelRef {
        self.kernels.push(kernel);
        KernelRef {
            kernel: self.kernels.len() - 1,
            stream,
        }
    }

    fn value(&mut self, value: &'p SynapseValue, stream: u32) -> SynapseValueSpec {
        match value {
            SynapseValue::Const(c) => SynapseValueSpec::Const(*c),
            SynapseValue::PerSynapse(kernel) => {
                SynapseValueSpec::PerSynapse(self.kernel(kernel, stream))
            }
        }
    }
}

fn node_ref(node: Node) -> NodeRef {
    match node {
        Node::Population(p) => NodeRef::Population(p),
        Node::Source(s) => NodeRef::Source(s),
    }
}

/// Describes `program` for the runtime, embedding the data files it reads (`data` must hold
/// every file of [`data_files`]; a missing one is reported when the network is built).
pub fn describe<'p>(program: &'p Program, data: &DataFiles) -> Described<'p> {
    let mut d = Describer {
        kernels: program.jit_kernels(),
        sites: Vec::new(),
    };
    let first_handler = program.populations.len();
    let mut handler_refs: HashMap<(usize, usize), KernelRef> = HashMap::new();
    for (position, (projection, pass, _)) in program.handler_kernels().into_iter().enumerate() {
        handler_refs.insert(
            (projection, pass),
            KernelRef {
                kernel: first_handler + position,
                stream: stream_of_handler(projection, pass),
            },
        );
    }
    let mut populations = Vec::new();
    for (index, pop) in program.populations.iter().enumerate() {
        let init = d.kernel(&pop.init, stream_of_init(index));
        let site = d.site(pop.span);
        populations.push(PopulationSpec {
            name: pop.name.clone(),
            model: pop.model.clone(),
            size: pop.size,
            variables: pop
                .update
                .vars
                .iter()
                .map(|v| VariableDesc {
                    name: v.name.clone(),
                    role: match v.role {
                        VarRole::State => VariableRole::State,
                        VarRole::Param => VariableRole::Parameter,
                        VarRole::Internal => VariableRole::Internal,
                    },
                    unit: v.unit.clone(),
                    scale: v.scale,
                })
                .collect(),
            constants: pop
                .constants
                .iter()
                .map(|c| ConstantDesc {
                    name: c.name.clone(),
                    value: c.value,
                    unit: c.unit.clone(),
                    scale: c.scale,
                })
                .collect(),
            init,
            update: KernelRef {
                kernel: index,
                stream: stream_of_update(index),
            },
            site,
        });
    }
    let sources = program
        .sources
        .iter()
        .map(|source| SourceSpec {
            name: source.name.clone(),
            size: source.size,
            path: source.path.clone(),
            site: d.site(source.span),
        })
        .collect();
    let mut projections = Vec::new();
    for (index, projection) in program.projections.iter().enumerate() {
        let synapse_stream = stream_of_synapses(index);
        let connect = match &projection.connect {
            ConnectIr::AllToAll => ConnectRule::AllToAll,
            ConnectIr::OneToOne => ConnectRule::OneToOne,
            ConnectIr::Bernoulli(p) => ConnectRule::Bernoulli(*p),
            ConnectIr::FixedIndegree { k, multapses } => ConnectRule::FixedIndegree {
                k: *k,
                multapses: *multapses,
            },
            ConnectIr::FixedOutdegree(k) => ConnectRule::FixedOutdegree(*k),
            ConnectIr::FixedTotal(n) => ConnectRule::FixedTotal(*n),
            ConnectIr::Where(kernel) => {
                ConnectRule::Where(d.kernel(kernel, stream_of_connect(index)))
            }
            ConnectIr::File { path, span } => ConnectRule::File {
                path: path.clone(),
                site: d.site(*span),
            },
        };
        let weight = d.value(&projection.weight, synapse_stream);
        let delay = d.value(&projection.delay, synapse_stream + 2);
        let plasticity = projection.plasticity.as_ref().map(|plastic| {
            let arrays = plastic
                .arrays
                .iter()
                .enumerate()
                .map(|(a, array)| PlasticArraySpec {
                    name: array.name.clone(),
                    space: array.space,
                    unit: array.unit.clone(),
                    scale: array.scale,
                    init: d.value(&array.init, stream_of_plastic_init(index, a)),
                    precision: if array.keeps_f64 {
                        Precision::F64
                    } else {
                        program.precision
                    },
                })
                .collect();
            PlasticitySpec {
                arrays,
                port: plastic.port,
                weight: plastic.weight,
                handlers: std::array::from_fn(|pass| handler_refs.get(&(index, pass)).copied()),
            }
        });
        projections.push(ConnectionSpec {
            name: projection.name.clone(),
            pre: node_ref(projection.pre),
            post: projection.post,
            target_var: projection.target_var as usize,
            connect,
            connect_stream: stream_of_connect(index),
            autapses: projection.autapses,
            weight,
            delay,
            dendritic_delay: projection.dendritic_delay,
            plasticity,
            site: d.site(projection.span),
            delay_site: d.site(projection.delay_span),
        });
    }
    let inputs = program
        .timed_inputs
        .iter()
        .map(|input| InputSpec {
            population: input.population,
            var: input.var as usize,
            neurons: input.neurons.clone(),
            path: input.path.clone(),
            every: input.every,
            site: d.site(input.span),
        })
        .collect();
    let records = program
        .records
        .iter()
        .map(|record| match record {
            RecordIr::Spikes { node } => RecordSpec::Spikes {
                node: node_ref(*node),
            },
            RecordIr::Trace {
                population,
                var,
                neurons,
                every,
                span,
            } => RecordSpec::Trace {
                population: *population,
                var: *var as usize,
                neurons: neurons.clone(),
                every: *every,
                site: d.site(*span),
            },
            RecordIr::Synapses {
                projection,
                array,
                pre,
                post,
                every,
                span,
            } => RecordSpec::Synapses {
                projection: *projection,
                array: *array as usize,
                pre: pre.clone(),
                post: post.clone(),
                every: *every,
                site: d.site(*span),
            },
        })
        .collect();
    let mut files: Vec<DataFile> = Vec::new();
    for (path, _) in data_files(program) {
        if let (false, Some(bytes)) = (files.iter().any(|f| f.path == path), data.get(&path)) {
            files.push(DataFile {
                path,
                bytes: bytes.clone(),
            });
        }
    }
    let spec = NetworkSpec {
        version: SPEC_VERSION,
        network: program.network.clone(),
        dt: program.dt,
        seed: program.seed,
        duration: program.duration,
        kernels: d
            .kernels
            .iter()
            .map(|k| KernelInfo {
                name: k.name.clone(),
                n_arrays: k.vars.len(),
            })
            .collect(),
        populations,
        sources,
        projections,
        inputs,
        records,
        files,
        reductions: crate::lower::population::runtime_reductions(program),
        precision: program.precision,
    };
    Described {
        spec,
        kernels: d.kernels,
        sites: d.sites,
    }
}

/// Builds the network with the reference interpreter running initialisation and per-synapse
/// kernels (bit for bit what compiled ones give). Warnings (rounded delays and spike times)
/// come back with it.
pub fn instantiate(
    program: &Program,
    data: &DataFiles,
    steps: u64,
    output: Option<&Output>,
) -> Result<(Network, Vec<Diagnostic>), Vec<Diagnostic>> {
    let described = describe(program, data);
    let table = InterpretedTable::new(&described.kernels);
    build_with(&described, &table, program.seed, steps, output)
}

/// Builds the network `described` says with the kernels of `table`, through the runtime's
/// construction ([`snnc_runtime::spec::build`]), which a deployed model shares.
pub fn build_with(
    described: &Described<'_>,
    table: &dyn KernelTable,
    seed: u64,
    steps: u64,
    output: Option<&Output>,
) -> Result<(Network, Vec<Diagnostic>), Vec<Diagnostic>> {
    let output = output.map(|o| OutputSpec {
        dir: o.dir.clone(),
        format: o.format,
    });
    let (network, warnings) = spec::build(&described.spec, table, seed, steps, output.as_ref())
        .map_err(|e| vec![described.diagnostic(&e)])?;
    Ok((
        network,
        warnings.iter().map(|w| described.warning(w)).collect(),
    ))
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

/// As [`run_kernel_once`], with arrays stored as the kernel's variables are (`f32` or `f64`).
pub fn run_kernel_once_arrays(kernel: &Kernel, arrays: &mut [Array], seed: u64, stream: u32) {
    let n = arrays.first().map_or(0, Array::len);
    let mut views: Vec<ArrayMut> = arrays.iter_mut().map(Array::view_mut).collect();
    let info = interp::StepInfo {
        step: 0,
        t: 0.0,
        seed,
        stream,
    };
    interp::run_arrays(kernel, &mut views, &[], 0, n, info, &mut Vec::new());
}

/// The interpreter as a kernel table: the reference, and what `--backend interpreter` runs.
pub struct InterpretedTable {
    kernels: Vec<Kernel>,
}

impl InterpretedTable {
    pub fn new(kernels: &[&Kernel]) -> Self {
        InterpretedTable {
            kernels: kernels.iter().map(|&k| k.clone()).collect(),
        }
    }
}

impl KernelTable for InterpretedTable {
    fn len(&self) -> usize {
        self.kernels.len()
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
        let info = interp::StepInfo {
            step,
            t: 0.0,
            seed,
            stream,
        };
        interp::run_slice(&self.kernels[index], arrays, first, info);
    }

    fn population_kernel<'a>(
        &'a self,
        index: usize,
        seed: u64,
        stream: u32,
        _n_arrays: usize,
    ) -> Box<dyn PopulationKernel + 'a> {
        Box::new(InterpretedKernel {
            kernel: self.kernels[index].clone(),
            seed,
            stream,
        })
    }

    fn handler<'a>(&'a self, index: usize, seed: u64, stream: u32) -> Box<dyn HandlerKernel + 'a> {
        Box::new(crate::instantiate_plastic::InterpretedHandler {
            kernel: self.kernels[index].clone(),
            seed,
            stream,
        })
    }
}

/// Compiled code as a kernel table; `compiled` must come from compiling
/// [`Described::kernels`], in order.
pub fn native_table<'code>(compiled: &'code CompiledKernels) -> NativeTable<'code> {
    let functions = (0..compiled.len()).map(|i| compiled.function(i)).collect();
    // SAFETY: function `i` was compiled from kernel `i` of the description (the caller's
    // contract), and the `'code` borrow keeps the code alive as long as the table.
    unsafe { NativeTable::new(functions) }
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
        let mut views: Vec<ArrayMut> = population.arrays.iter_mut().map(Array::view_mut).collect();
        interp::run_arrays(
            &self.kernel,
            &mut views,
            &[],
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
