//! Instantiation of plastic projections: their arrays with initial values, their
//! [`Plasticity`] state, and the handler kernels (compiled or interpreted) for the step loop.
//!
//! `instantiate` calls [`attach`] for each plastic projection it builds, and the driver (or a
//! test) asks for [`compiled_handlers`] or [`interpreted_handlers`] as it asks for population
//! kernels. This module decides nothing about when handlers run (the runtime's
//! `plasticity.rs`) or what they compute (`lower::plasticity`); it only joins the two.

use crate::codegen::CompiledKernels;
use crate::diagnostics::Diagnostic;
use crate::instantiate::eval_per_synapse;
use crate::ir::{interp, Kernel};
use crate::lower::program::{
    stream_of_handler, stream_of_plastic_init, Node, Program, SynapseValue,
};
use snnc_runtime::plasticity::{
    HandlerCall, HandlerKernel, NativeHandler, PlasticArray, Plasticity, ProjectionHandlers, Space,
};
use snnc_runtime::rng::Stream;
use snnc_runtime::{Projection, RuntimeError};
use std::marker::PhantomData;

/// Gives `built` (projection `index` of `program`, just built) its plastic state: arrays
/// initialised from their values (the weight from the connection file's weight column when
/// there is one), the axonal delay (the connectivity's) and the dendritic delay (carried by
/// the ring from now on).
pub fn attach(
    program: &Program,
    index: usize,
    built: &mut Projection,
    file_weights: Option<&[f64]>,
) -> Result<(), Diagnostic> {
    let projection = &program.projections[index];
    let Some(plastic) = &projection.plasticity else {
        return Ok(());
    };
    let at = |e: RuntimeError| {
        Diagnostic::error(e.to_string()).primary(projection.span, "while building this")
    };
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
            (Some(w), _) if plastic.weight == Some(a as u32) => w.to_vec(),
            (_, SynapseValue::Const(c)) => vec![*c; len],
            (_, SynapseValue::PerSynapse(kernel)) => {
                eval_per_synapse(kernel, conn, program.seed, stream_of_plastic_init(index, a))
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
        return Err(
            Diagnostic::error("a plastic projection needs one delay for all its synapses")
                .primary(projection.delay_span, "the delays differ between synapses")
                .note("heterogeneous delays of plastic synapses are not simulated yet"),
        );
    }
    // The connectivity's delay is the axonal one; the ring carries the dendritic one.
    let axonal = conn.max_delay();
    // Rounded like any delay (a non-negative constant: lowering checked it).
    let dendritic = (projection.dendritic_delay / program.dt)
        .round()
        .clamp(0.0, f64::from(u16::MAX)) as u16;
    let state = Plasticity::new(
        conn,
        arrays,
        plastic.port.map(|p| p as usize),
        axonal,
        dendritic,
        matches!(projection.pre, Node::Population(_)),
    )
    .map_err(at)?;
    if dendritic != 0 {
        built.connectivity.set_homogeneous_delay(dendritic);
        built.ring = snnc_runtime::DelayRing::new(n_post, dendritic).map_err(at)?;
    }
    built.plasticity = Some(Box::new(state));
    Ok(())
}

/// A plasticity handler run by the reference interpreter.
pub struct InterpretedHandler {
    pub kernel: Kernel,
    pub seed: u64,
    pub stream: u32,
}

impl HandlerKernel for InterpretedHandler {
    fn run(&mut self, call: HandlerCall<'_>) -> Result<(), RuntimeError> {
        let mut views: Vec<&mut [f64]> = call
            .arrays
            .iter_mut()
            .zip(call.offsets)
            .map(|(a, &offset)| {
                let len = a.values.len();
                &mut a.values[offset.min(len)..]
            })
            .collect();
        let gathers: Vec<&[u32]> = call.gathers.to_vec();
        interp::run_gathered(
            &self.kernel,
            &mut views,
            &gathers,
            call.start,
            call.end,
            interp::StepInfo {
                step: call.step,
                t: call.t,
                seed: self.seed,
                stream: self.stream,
            },
            &mut Vec::new(),
        );
        Ok(())
    }
}

/// Interpreted handlers for every plastic projection.
pub fn interpreted_handlers(program: &Program) -> Vec<ProjectionHandlers<'static>> {
    handlers_with(program, |projection, pass, kernel, _| {
        Box::new(InterpretedHandler {
            kernel: kernel.clone(),
            seed: program.seed,
            stream: stream_of_handler(projection, pass),
        })
    })
}

/// A JIT-compiled handler, borrowing the compiled code like [`CompiledKernel`].
pub struct CompiledHandler<'code> {
    native: NativeHandler,
    _code: PhantomData<&'code CompiledKernels>,
}

impl HandlerKernel for CompiledHandler<'_> {
    fn run(&mut self, call: HandlerCall<'_>) -> Result<(), RuntimeError> {
        self.native.run(call)
    }
}

/// Compiled handlers for every plastic projection; `compiled` must come from `jit_compile`
/// over [`Program::jit_kernels`].
pub fn compiled_handlers<'code>(
    program: &Program,
    compiled: &'code CompiledKernels,
) -> Vec<ProjectionHandlers<'code>> {
    assert_eq!(
        compiled.len(),
        program.jit_kernels().len(),
        "one compiled kernel per population and handler"
    );
    let first = program.populations.len();
    handlers_with(program, |projection, pass, _, position| {
        let key = Stream::new(program.seed, stream_of_handler(projection, pass)).key();
        // SAFETY: function `first + position` was compiled from this handler kernel (the order
        // of `Program::jit_kernels`), whose variables are the projection's plastic arrays in
        // order, addressed as `Pass` says; the `'code` borrow keeps the code alive.
        let native = unsafe { NativeHandler::new(compiled.function(first + position), key) };
        Box::new(CompiledHandler {
            native,
            _code: PhantomData,
        })
    })
}

/// One [`ProjectionHandlers`] per plastic projection, each pass made by `make(projection,
/// pass, kernel, position in Program::handler_kernels)`.
fn handlers_with<'k>(
    program: &Program,
    mut make: impl FnMut(usize, usize, &Kernel, usize) -> Box<dyn HandlerKernel + 'k>,
) -> Vec<ProjectionHandlers<'k>> {
    let mut out: Vec<ProjectionHandlers<'k>> = Vec::new();
    for (position, (projection, pass, kernel)) in program.handler_kernels().into_iter().enumerate()
    {
        if out.last().is_none_or(|h| h.projection != projection) {
            out.push(ProjectionHandlers {
                projection,
                passes: Default::default(),
            });
        }
        let handlers = out.last_mut().expect("just pushed");
        handlers.passes[pass] = Some(make(projection, pass, kernel, position));
    }
    // A plastic projection whose handlers store nothing still needs an entry.
    for (index, projection) in program.projections.iter().enumerate() {
        if projection.plasticity.is_some() && !out.iter().any(|h| h.projection == index) {
            out.push(ProjectionHandlers {
                projection: index,
                passes: Default::default(),
            });
        }
    }
    out
}
