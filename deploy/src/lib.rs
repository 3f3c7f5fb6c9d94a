//! `snnc-deploy`: what a model built by `snnc build` links besides its own object file.
//!
//! A model object (`compiler/src/codegen/object.rs`) defines four symbols: the serialised
//! network description (`snnc_model_spec`, `snnc_model_spec_len`) and the table of its
//! compiled kernels (`snnc_model_kernels`, `snnc_model_kernel_count`). This crate reads them
//! ([`linked`]), builds the network through the runtime's construction
//! (`snnc_runtime::spec::build`, the one `snnc run` uses, with the same kernels), and offers
//! it two ways: the C API of [`capi`] (a library: create, step, inputs, spikes, variables,
//! reset, state files) and [`cli::snnc_main`] (an executable with `snnc run`'s flags and
//! outputs). It depends on the runtime alone, never on the compiler: a deployed model has no
//! compiler.
//!
//! What can change after the build is what the description keeps as data: state variables and
//! parameters stored per neuron, the seed, the duration, the outputs. Parameters lowering
//! folded into the code are listed in the description as constants; setting one is refused
//! with the way to change it (`snnc build --set`).
//!
//! This crate has no unit tests of its own (every function needs a model's symbols, which
//! only a model object defines); `compiler/tests/aot.rs` tests it through built models.

pub mod capi;
pub mod cli;

use serde::{Deserialize, Serialize};
use snnc_runtime::abi::KernelFn;
use snnc_runtime::plasticity::ProjectionHandlers;
use snnc_runtime::spec::{self, NativeTable, NetworkSpec, OutputSpec, VariableRole};
use snnc_runtime::{Network, Population, PopulationKernel, RuntimeError, Simulation};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::OnceLock;

extern "C" {
    static snnc_model_spec: u8;
    static snnc_model_spec_len: u64;
    static snnc_model_kernels: KernelFn;
    static snnc_model_kernel_count: u64;
}

/// The model this program was linked with: its description and its compiled kernels.
pub struct Linked {
    pub spec: NetworkSpec,
    /// FNV-1a of the serialised description: state files carry it.
    pub fingerprint: u64,
    pub table: NativeTable<'static>,
}

/// Reads the linked model's symbols once per process.
pub fn linked() -> Result<&'static Linked, String> {
    static LINKED: OnceLock<Result<Linked, String>> = OnceLock::new();
    LINKED
        .get_or_init(|| {
            // SAFETY: the model object `snnc build` emitted defines these symbols:
            // `snnc_model_spec_len` bytes at `snnc_model_spec`, and `snnc_model_kernel_count`
            // function pointers at `snnc_model_kernels`, all immutable after loading.
            let (bytes, functions) = unsafe {
                let bytes = std::slice::from_raw_parts(
                    &raw const snnc_model_spec,
                    snnc_model_spec_len as usize,
                );
                let functions = std::slice::from_raw_parts(
                    &raw const snnc_model_kernels,
                    snnc_model_kernel_count as usize,
                );
                (bytes, functions.to_vec())
            };
            let spec = NetworkSpec::from_bytes(bytes).map_err(|e| e.to_string())?;
            if functions.len() != spec.kernels.len() {
                return Err(format!(
                    "the model object has {} kernels but its description names {}; the object is damaged",
                    functions.len(),
                    spec.kernels.len()
                ));
            }
            // SAFETY: `snnc build` compiled function `i` from kernel `i` of this description
            // and linked it into this program, so it lives as long as the process.
            let table = unsafe { NativeTable::new(functions) };
            Ok(Linked {
                fingerprint: spec::fnv1a(bytes),
                spec,
                table,
            })
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// A population kernel that keeps the spikes of its last step, for the C API. The scheduler
/// then runs it on its own thread (it does not expose a native function).
struct Capturing {
    inner: Box<dyn PopulationKernel + 'static>,
    last: Rc<RefCell<Vec<u32>>>,
}

impl PopulationKernel for Capturing {
    fn update(
        &mut self,
        population: &mut Population,
        step: u64,
        t: f64,
        spikes: &mut Vec<u32>,
    ) -> Result<(), RuntimeError> {
        let start = spikes.len();
        self.inner.update(population, step, t, spikes)?;
        let mut last = self.last.borrow_mut();
        last.clear();
        last.extend_from_slice(&spikes[start..]);
        Ok(())
    }
}

/// A built, runnable instance of the linked model.
pub struct Model {
    pub linked: &'static Linked,
    pub seed: u64,
    pub network: Network,
    kernels: Vec<Box<dyn PopulationKernel + 'static>>,
    handlers: Vec<ProjectionHandlers<'static>>,
    /// Per population, the spikes of the last step (only when built to capture them).
    last_spikes: Vec<Rc<RefCell<Vec<u32>>>>,
    capture: bool,
    pub simulation: Simulation,
    /// Warnings of the build (rounded delays and spike times).
    pub warnings: Vec<String>,
}

impl Model {
    /// Builds the network for `steps` steps (spike times beyond them are refused), recording
    /// into `output` when given; `capture` keeps each step's spikes for [`Self::last_spikes`].
    pub fn new(
        seed: u64,
        steps: u64,
        output: Option<&OutputSpec>,
        capture: bool,
        threads: usize,
    ) -> Result<Model, String> {
        let linked = linked()?;
        let (network, warnings) = spec::build(&linked.spec, &linked.table, seed, steps, output)
            .map_err(|e| e.to_string())?;
        let mut kernels = spec::population_kernels(&linked.spec, &linked.table, seed);
        let mut last_spikes = Vec::new();
        if capture {
            kernels = kernels
                .into_iter()
                .map(|inner| {
                    let last = Rc::new(RefCell::new(Vec::new()));
                    last_spikes.push(last.clone());
                    Box::new(Capturing { inner, last }) as Box<dyn PopulationKernel>
                })
                .collect();
        }
        let handlers = spec::projection_handlers(&linked.spec, &linked.table, seed);
        Ok(Model {
            linked,
            seed,
            network,
            kernels,
            handlers,
            last_spikes,
            capture,
            simulation: Simulation::with_threads(threads.max(1)),
            warnings: warnings.into_iter().map(|w| w.message).collect(),
        })
    }

    /// Runs `steps` steps, reporting progress.
    pub fn run(
        &mut self,
        steps: u64,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<snnc_runtime::RunStats, String> {
        for last in &self.last_spikes {
            last.borrow_mut().clear();
        }
        self.simulation
            .run_with_plasticity(
                &mut self.network,
                &mut self.kernels,
                &mut self.handlers,
                steps,
                progress,
            )
            .map_err(|e| e.to_string())
    }

    /// The spikes population `population` emitted in the last step run.
    pub fn last_spikes(&self, population: usize) -> Option<Vec<u32>> {
        if !self.capture {
            return None;
        }
        self.last_spikes.get(population).map(|l| l.borrow().clone())
    }

    /// Population `pop`'s variable `var`: its indices, checking it can be read and written at
    /// run time. A folded parameter is refused with how to change it.
    pub fn variable(&self, pop: &str, var: &str) -> Result<(usize, usize), String> {
        let spec = &self.linked.spec;
        let p = spec.population(pop).ok_or_else(|| {
            format!(
                "there is no population `{pop}`; the model has {}",
                names(spec.populations.iter().map(|p| p.name.as_str()))
            )
        })?;
        let population = &spec.populations[p];
        if let Some(c) = population.constants.iter().find(|c| c.name == var) {
            return Err(format!(
                "`{pop}.{var}` is a build-time constant ({} {}): lowering folded it into the compiled code, so it cannot change at run time; rebuild with `snnc build ... --set {pop}.{var}=VALUE` to change it",
                spec::format_number(c.value / c.scale),
                c.unit
            ));
        }
        let v = population
            .variables
            .iter()
            .position(|v| v.name == var && v.role != VariableRole::Internal)
            .ok_or_else(|| {
                format!(
                    "population `{pop}` has no variable `{var}`; it has {}",
                    names(
                        population
                            .variables
                            .iter()
                            .filter(|v| v.role != VariableRole::Internal)
                            .map(|v| v.name.as_str())
                            .chain(population.constants.iter().map(|c| c.name.as_str()))
                    )
                )
            })?;
        Ok((p, v))
    }

    /// Injects spikes of the spike source `source` (indices) into the next step.
    pub fn inject_spikes(&mut self, source: &str, indices: &[u32]) -> Result<(), String> {
        let s = self
            .network
            .sources
            .iter()
            .position(|s| s.name == source)
            .ok_or_else(|| {
                format!(
                    "there is no spike source `{source}`; the model has {}",
                    names(self.network.sources.iter().map(|s| s.name.as_str()))
                )
            })?;
        let step = self.network.step;
        let src = &mut self.network.sources[s];
        if let Some(&bad) = indices.iter().find(|&&i| i as usize >= src.size) {
            return Err(format!(
                "spike source `{source}` has {} elements; index {bad} is out of range",
                src.size
            ));
        }
        let at = src.spikes.partition_point(|&e| e <= (step, u32::MAX));
        let mut events: Vec<(u64, u32)> = indices.iter().map(|&i| (step, i)).collect();
        events.sort_unstable();
        src.spikes.splice(at..at, events);
        src.spikes.sort_unstable();
        Ok(())
    }

    /// The full state, for a state file.
    pub fn state(&self) -> State {
        State {
            format: STATE_FORMAT.to_string(),
            fingerprint: format!("{:016x}", self.linked.fingerprint),
            network: self.linked.spec.network.clone(),
            seed: self.seed,
            step: self.network.step,
            populations: self
                .network
                .populations
                .iter()
                .map(|p| p.arrays.iter().map(|a| a.bits()).collect())
                .collect(),
            plastic: self
                .network
                .projections
                .iter()
                .map(|p| {
                    p.plasticity.as_ref().map_or_else(Vec::new, |pl| {
                        pl.arrays.iter().map(|a| a.values.bits()).collect()
                    })
                })
                .collect(),
            rings: self
                .network
                .projections
                .iter()
                .map(|p| {
                    p.ring
                        .pending()
                        .into_iter()
                        .map(|(d, t, v)| (d, t, v.to_bits()))
                        .collect()
                })
                .collect(),
            sources: self
                .network
                .sources
                .iter()
                .map(|s| s.spikes.clone())
                .collect(),
            reductions: self
                .network
                .reductions
                .reductions
                .iter()
                .map(|r| r.value.to_bits())
                .collect(),
        }
    }

    /// Restores a state saved by [`Self::state`] into a freshly built model.
    pub fn restore(&mut self, state: &State) -> Result<(), String> {
        let shape = |what: &str| format!("the state file does not match the model: {what}");
        if state.populations.len() != self.network.populations.len()
            || state.rings.len() != self.network.projections.len()
            || state.plastic.len() != self.network.projections.len()
            || state.sources.len() != self.network.sources.len()
        {
            return Err(shape(
                "different numbers of populations, projections or sources",
            ));
        }
        for (population, arrays) in self.network.populations.iter_mut().zip(&state.populations) {
            if arrays.len() != population.arrays.len()
                || arrays.iter().any(|a| a.len() != population.size)
            {
                return Err(shape(&format!("population `{}`", population.name)));
            }
            // Bits of the array's own type (f32 bits for an f32 model; the fingerprint keeps
            // a state file of another model, or another precision, out).
            for (array, saved) in population.arrays.iter_mut().zip(arrays) {
                array.set_bits(saved);
            }
        }
        for (projection, (ring, plastic)) in self
            .network
            .projections
            .iter_mut()
            .zip(state.rings.iter().zip(&state.plastic))
        {
            for &(d, t, v) in ring {
                projection
                    .ring
                    .add(t, d, f64::from_bits(v))
                    .map_err(|e| shape(&e.to_string()))?;
            }
            if let Some(pl) = &mut projection.plasticity {
                for (i, saved) in plastic.iter().enumerate() {
                    let array = pl
                        .arrays
                        .get_mut(i)
                        .filter(|a| a.values.len() == saved.len())
                        .ok_or_else(|| shape(&format!("projection `{}`", projection.name)))?;
                    array.values.set_bits(saved);
                }
            }
        }
        for (source, spikes) in self.network.sources.iter_mut().zip(&state.sources) {
            source.spikes = spikes.clone();
        }
        let reductions = &mut self.network.reductions.reductions;
        if state.reductions.len() != reductions.len() {
            return Err(shape("different numbers of population-level values"));
        }
        for (reduction, &bits) in reductions.iter_mut().zip(&state.reductions) {
            reduction.value = f64::from_bits(bits);
        }
        self.network.step = state.step;
        Ok(())
    }
}

/// The `format` field of every state file.
pub const STATE_FORMAT: &str = "snnc-state-1";

/// A simulation's full state: what a state file holds (JSON). Values are stored as the bits
/// of their `f64`, so a loaded state continues exactly as the saved one would have.
///
/// Not saved: the spikes of plastic projections still in their axonal-delay queue (a state
/// saved between a presynaptic spike and its arrival at the synapse loses that arrival).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct State {
    pub format: String,
    /// The model's fingerprint, hexadecimal: a state file of another model is refused.
    pub fingerprint: String,
    pub network: String,
    pub seed: u64,
    pub step: u64,
    /// Per population, per array, the bits of each value.
    pub populations: Vec<Vec<Vec<u64>>>,
    /// Per projection, per plastic array (none for a static one), the bits of each value.
    pub plastic: Vec<Vec<Vec<u64>>>,
    /// Per projection, the input waiting in its delay ring: (delay, target, value bits).
    pub rings: Vec<Vec<(u16, u32, u64)>>,
    /// Per spike source, its events (step, index), injected ones included.
    pub sources: Vec<Vec<(u64, u32)>>,
    /// The bits of each population-level value (sum, mean, count, rate) of the last step.
    #[serde(default)]
    pub reductions: Vec<u64>,
}

impl State {
    /// Reads a state file, refusing one of another model.
    pub fn read(path: &std::path::Path, linked: &Linked) -> Result<State, String> {
        let text = std::fs::read(path)
            .map_err(|e| format!("cannot read the state file {}: {e}", path.display()))?;
        let state: State = serde_json::from_slice(&text)
            .map_err(|e| format!("{} is not an snnc state file: {e}", path.display()))?;
        if state.format != STATE_FORMAT {
            return Err(format!(
                "{} is a state file of format `{}`; this model reads `{STATE_FORMAT}`",
                path.display(),
                state.format
            ));
        }
        let ours = format!("{:016x}", linked.fingerprint);
        if state.fingerprint != ours {
            return Err(format!(
                "the state file {} was saved by a different model (network `{}`, fingerprint {}); this model is network `{}`, fingerprint {ours}",
                path.display(),
                state.network,
                state.fingerprint,
                linked.spec.network
            ));
        }
        Ok(state)
    }

    pub fn write(&self, path: &std::path::Path) -> Result<(), String> {
        let text = serde_json::to_vec(self).map_err(|e| e.to_string())?;
        std::fs::write(path, text)
            .map_err(|e| format!("cannot write the state file {}: {e}", path.display()))
    }
}

/// `a`, `b` and `c` — for messages listing names.
fn names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<String> = names.map(|n| format!("`{n}`")).collect();
    match names.len() {
        0 => "none".to_string(),
        1 => names[0].clone(),
        n => format!("{} and {}", names[..n - 1].join(", "), names[n - 1]),
    }
}
