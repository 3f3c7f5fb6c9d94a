//! The handler kernels of plastic projections (compiled or interpreted) for the step loop.
//!
//! The plastic state itself (arrays and their initial values, delays) is built by the
//! runtime's `spec::build` from the network description; a test asks for
//! [`compiled_handlers`] or [`interpreted_handlers`] as it asks for population kernels. This
//! module decides nothing about when handlers run (the runtime's `plasticity.rs`) or what they
//! compute (`lower::plasticity`); it only joins the two.

use crate::codegen::CompiledKernels;
use crate::ir::{interp, Kernel};
use crate::lower::program::{stream_of_handler, Program};
use snnc_runtime::array::ArrayMut;
use snnc_runtime::plasticity::{HandlerCall, HandlerKernel, NativeHandler, ProjectionHandlers};
use snnc_runtime::rng::Stream;
use snnc_runtime::RuntimeError;
use std::marker::PhantomData;

/// A plasticity handler run by the reference interpreter.
pub struct InterpretedHandler {
    pub kernel: Kernel,
    pub seed: u64,
    pub stream: u32,
}

impl HandlerKernel for InterpretedHandler {
    fn run(&mut self, call: HandlerCall<'_>) -> Result<(), RuntimeError> {
        let mut views: Vec<ArrayMut> = call
            .arrays
            .iter_mut()
            .zip(call.offsets)
            .map(|(a, &offset)| {
                let len = a.values.len();
                a.values
                    .slice_mut(offset.min(len)..len)
                    .expect("a range within the array")
            })
            .collect();
        let gathers: Vec<&[u32]> = call.gathers.to_vec();
        interp::run_arrays(
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
/// over [`Program::jit_kernels`] (or a list that starts with them).
pub fn compiled_handlers<'code>(
    program: &Program,
    compiled: &'code CompiledKernels,
) -> Vec<ProjectionHandlers<'code>> {
    assert!(
        compiled.len() >= program.jit_kernels().len(),
        "one compiled kernel per population and handler, first"
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
