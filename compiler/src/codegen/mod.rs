//! Code generation: IR kernels to machine code.
//!
//! Codegen sees only the IR ([`crate::ir::Kernel`]); it knows nothing of the AST, units or
//! models, so anything lowering or `opt` can express, it compiles, and nothing else. Its
//! contract is the reference interpreter (`ir::interp`): a compiled kernel must leave exactly
//! the arrays and spikes the interpreter would, bit for bit (NaN payloads aside); the
//! differential tests (`tests/differential.rs`) hold it to that.
//!
//! A compiled kernel is a C function `extern "C" fn(*mut KernelContext)` (see
//! `snnc_runtime::abi`): one call updates elements `start..end` of a population for one step
//! in a single fused loop, calling back into the runtime only for the math functions that are
//! not instructions and for random draws. The same ABI serves both ways of running it:
//!
//! * in-process, through [`jit_compile`], which returns [`CompiledKernels`]: function pointers
//!   plus the JIT memory that holds them (dropping it frees the code);
//! * ahead of time, by giving the same [`cranelift::define_kernel`] (generic over any
//!   `cranelift_module::Module`) an object-file module and linking against the runtime.
//!
//! Cranelift is the default backend; `cranelift` holds everything specific to it, and this
//! module only drives it. With the cargo feature `llvm`, `llvm::jit_compile` compiles the same
//! kernels through LLVM 14 (optimised and vectorised for the host) into the same
//! [`CompiledKernels`]; both backends answer to the interpreter alone.

pub mod cranelift;
#[cfg(feature = "llvm")]
pub mod llvm;
pub mod object;

use crate::ir::interp::StepInfo;
use crate::ir::{Expr, Kernel, Random, Stmt};
use cranelift_jit::{JITBuilder, JITModule};
use snnc_runtime::abi::{KernelContext, KernelFn};
use snnc_runtime::array::ArrayMut;
use snnc_runtime::rng::Stream;
use std::fmt;
use std::time::{Duration, Instant};

/// How long JIT compilation took.
#[derive(Clone, Debug, Default)]
pub struct CompileTiming {
    /// Building and compiling each kernel's function, in kernel order.
    pub per_kernel: Vec<Duration>,
    /// Setting up the JIT, resolving symbols and making the code executable.
    pub setup_and_finalize: Duration,
    /// Everything, from the call to `jit_compile` to its return.
    pub total: Duration,
}

struct Compiled {
    name: String,
    function: KernelFn,
    /// The element-addressed variables the kernel reads or writes (only those arrays need be
    /// valid, and hold `end` values).
    touched_vars: Vec<usize>,
    /// How each variable is stored: the arrays handed to the function must match.
    storage: Vec<crate::ir::Precision>,
}

/// The executable memory behind compiled kernels, by backend.
// One value per compilation: the size of the variants does not matter.
#[allow(clippy::large_enum_variant)]
enum Code {
    Cranelift(JITModule),
    #[cfg(feature = "llvm")]
    Llvm(llvm::Jit),
}

/// JIT-compiled kernels, in the order given to [`jit_compile`]. Owns the executable memory:
/// the function pointers are valid for as long as this value lives.
pub struct CompiledKernels {
    code: Option<Code>,
    kernels: Vec<Compiled>,
    timing: CompileTiming,
}

// SAFETY: after `jit_compile` returns, nothing reads or mutates the JIT module (the only
// interior mutability in it, its symbol table, is used while finalizing) until `drop`, which
// has exclusive access. Shared references only hand out function pointers to immutable code.
unsafe impl Sync for CompiledKernels {}

impl fmt::Debug for CompiledKernels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledKernels")
            .field(
                "kernels",
                &self.kernels.iter().map(|k| &k.name).collect::<Vec<_>>(),
            )
            .field("timing", &self.timing)
            .finish()
    }
}

impl Drop for CompiledKernels {
    fn drop(&mut self) {
        // SAFETY (both arms): the code is freed only when this value goes away; callers must
        // not keep function pointers obtained from it beyond its lifetime (see `function`).
        match self.code.take() {
            Some(Code::Cranelift(module)) => unsafe { module.free_memory() },
            #[cfg(feature = "llvm")]
            Some(Code::Llvm(engine)) => drop(engine),
            None => {}
        }
    }
}

/// Compiles `kernels` for the host, in process.
pub fn jit_compile(kernels: &[&Kernel]) -> Result<CompiledKernels, String> {
    let started = Instant::now();
    let isa = cranelift::host_isa(false)?;
    let mut builder = JITBuilder::with_isa(isa, cranelift_module::default_libcall_names());
    for (name, address) in cranelift::runtime_symbols() {
        builder.symbol(name, address);
    }
    let mut module = JITModule::new(builder);
    let mut setup = started.elapsed();

    let mut ids = Vec::with_capacity(kernels.len());
    let mut per_kernel = Vec::with_capacity(kernels.len());
    for (index, kernel) in kernels.iter().enumerate() {
        let t0 = Instant::now();
        let symbol = format!("snnc_kernel_{index}_{}", kernel.name);
        ids.push(cranelift::define_kernel(&mut module, kernel, &symbol)?);
        per_kernel.push(t0.elapsed());
    }

    let t0 = Instant::now();
    module
        .finalize_definitions()
        .map_err(|e| format!("cranelift: {e}"))?;
    let compiled = kernels
        .iter()
        .zip(ids)
        .map(|(kernel, id)| {
            let code = module.get_finalized_function(id);
            // SAFETY: `define_kernel` gave the function exactly this signature.
            let function = unsafe { std::mem::transmute::<*const u8, KernelFn>(code) };
            Compiled {
                name: kernel.name.clone(),
                function,
                touched_vars: touched_vars(kernel),
                storage: kernel.vars.iter().map(|v| v.storage).collect(),
            }
        })
        .collect();
    setup += t0.elapsed();

    Ok(CompiledKernels {
        code: Some(Code::Cranelift(module)),
        kernels: compiled,
        timing: CompileTiming {
            per_kernel,
            setup_and_finalize: setup,
            total: started.elapsed(),
        },
    })
}

/// A backend's entry point: compiles kernels for the host, in process.
pub type JitCompile = fn(&[&Kernel]) -> Result<CompiledKernels, String>;

/// The backends this build has, by name: Cranelift, and LLVM with the feature `llvm`. The
/// differential tests hold each of them to the interpreter.
pub fn jit_backends() -> Vec<(&'static str, JitCompile)> {
    #[cfg_attr(not(feature = "llvm"), allow(unused_mut))]
    let mut backends: Vec<(&'static str, JitCompile)> = vec![("cranelift", jit_compile)];
    #[cfg(feature = "llvm")]
    backends.push(("llvm", llvm::jit_compile));
    backends
}

/// Whether `e` has the same value for every element of one invocation.
fn is_invariant(e: &Expr) -> bool {
    match e {
        Expr::Const(_) | Expr::Time => true,
        Expr::Var(_) | Expr::Local(_) | Expr::Index | Expr::Random { .. } => false,
        Expr::Unary(_, a) | Expr::Call(_, a) => is_invariant(a),
        Expr::Binary(_, a, b) => is_invariant(a) && is_invariant(b),
        Expr::Select(c, a, b) => is_invariant(c) && is_invariant(a) && is_invariant(b),
    }
}

/// Whether a random draw can be drawn for the whole range before the element loop
/// (`snnc_random_block`) and read in the loop like an array: every draw whose argument is the
/// same for every element, that is every draw but a Poisson draw of a per-element mean.
/// Whether it is depends on where it stands too ([`batched_draws`]).
fn batchable(e: &Expr) -> bool {
    matches!(e, Expr::Random { kind, arg, .. } if *kind != Random::Poisson || is_invariant(arg))
}

/// The draws of a kernel body that are batched, in the order the statements and their
/// expressions are written (a draw occurring twice is listed twice): the batchable ones that
/// every element evaluates, outside the bodies of `if`s and `while`s. A draw in such a body
/// may be reached by few elements (the reset of an event-driven source: one element in
/// hundreds per step), and drawing it for every element then costs far more than a call for
/// each element that gets there. Measured on the Song STDP network: half of the step went into
/// drawing 1,000 uniforms of which about 1.5 were read.
fn batched_draws(stmts: &[Stmt]) -> Vec<&Expr> {
    fn in_expr<'k>(e: &'k Expr, out: &mut Vec<&'k Expr>) {
        match e {
            Expr::Const(_) | Expr::Var(_) | Expr::Local(_) | Expr::Time | Expr::Index => {}
            Expr::Random { arg, .. } => {
                if batchable(e) {
                    out.push(e);
                } else {
                    in_expr(arg, out);
                }
            }
            Expr::Unary(_, a) | Expr::Call(_, a) => in_expr(a, out),
            Expr::Binary(_, a, b) => {
                in_expr(a, out);
                in_expr(b, out);
            }
            Expr::Select(c, a, b) => {
                in_expr(c, out);
                in_expr(a, out);
                in_expr(b, out);
            }
        }
    }
    let mut out = Vec::new();
    for s in stmts {
        match s {
            Stmt::Let(_, e) | Stmt::Store(_, e) => in_expr(e, &mut out),
            Stmt::If(c, _, _) => in_expr(c, &mut out),
            Stmt::While { cond, .. } => in_expr(cond, &mut out),
            Stmt::Spike => {}
        }
    }
    out
}

/// The batched draws of one kernel by address, for the code generators' question "is this
/// draw a load or a call?".
#[derive(Clone, Debug, Default)]
struct Batched(std::collections::HashSet<*const Expr>);

impl Batched {
    fn of(body: &[Stmt]) -> Self {
        Batched(
            batched_draws(body)
                .into_iter()
                .map(|e| e as *const Expr)
                .collect(),
        )
    }

    fn contains(&self, e: &Expr) -> bool {
        self.0.contains(&(e as *const Expr))
    }
}

/// The element-addressed variables `kernel` reads or writes: the arrays that must hold `end`
/// values when it runs (scalar and gathered ones are indexed otherwise).
fn touched_vars(kernel: &Kernel) -> Vec<usize> {
    used_vars(kernel)
        .into_iter()
        .filter(|&v| kernel.vars[v].access == crate::ir::Access::Element)
        .collect()
}

/// Every variable `kernel` reads or writes, however addressed, in variable order.
fn used_vars(kernel: &Kernel) -> Vec<usize> {
    fn stmts(body: &[Stmt], seen: &mut Vec<bool>) {
        for s in body {
            let mut expr = |e: &Expr| {
                e.visit(&mut |e| {
                    if let Expr::Var(v) = e {
                        seen[*v as usize] = true;
                    }
                })
            };
            match s {
                Stmt::Let(_, e) => expr(e),
                Stmt::Store(v, e) => {
                    expr(e);
                    seen[*v as usize] = true;
                }
                Stmt::If(c, a, b) => {
                    expr(c);
                    stmts(a, seen);
                    stmts(b, seen);
                }
                Stmt::While { cond, body, .. } => {
                    expr(cond);
                    stmts(body, seen);
                }
                Stmt::Spike => {}
            }
        }
    }
    let mut seen = vec![false; kernel.vars.len()];
    stmts(&kernel.body, &mut seen);
    (0..seen.len()).filter(|&v| seen[v]).collect()
}

impl CompiledKernels {
    pub fn len(&self) -> usize {
        self.kernels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.kernels.is_empty()
    }

    /// The compiled function of kernel `index`. It is valid only while `self` lives, and
    /// calling it is unsafe: the context must satisfy the contract of
    /// `snnc_runtime::abi::KernelContext` (every array the kernel touches holds at least
    /// `end` elements, arrays do not overlap, room for `end - start` spikes).
    pub fn function(&self, index: usize) -> KernelFn {
        self.kernels[index].function
    }

    pub fn name(&self, index: usize) -> &str {
        &self.kernels[index].name
    }

    pub fn timing(&self) -> &CompileTiming {
        &self.timing
    }

    /// Runs kernel `index` like `ir::interp::run`, with the same arguments: elements
    /// `start..end`, spiking elements appended to `spikes`. Panics, like the interpreter, if an
    /// array the kernel touches is missing or shorter than `end`.
    pub fn run(
        &self,
        index: usize,
        arrays: &mut [&mut [f64]],
        start: usize,
        end: usize,
        info: StepInfo,
        spikes: &mut Vec<u32>,
    ) {
        self.run_gathered(index, arrays, &[], start, end, info, spikes)
    }

    /// As [`Self::run`] for kernels with `Scalar` or `Gather` variables, like
    /// `ir::interp::run_gathered`. Panics if an index array is missing or shorter than `end`, or
    /// (through the interpreter's contract, not checked here) if an index is out of range of
    /// its array: callers pass indices they built.
    #[allow(clippy::too_many_arguments)]
    pub fn run_gathered(
        &self,
        index: usize,
        arrays: &mut [&mut [f64]],
        gathers: &[&[u32]],
        start: usize,
        end: usize,
        info: StepInfo,
        spikes: &mut Vec<u32>,
    ) {
        let mut views: Vec<ArrayMut> = arrays.iter_mut().map(|a| ArrayMut::F64(a)).collect();
        self.run_arrays(index, &mut views, gathers, start, end, info, spikes)
    }

    /// As [`Self::run_gathered`], with arrays stored as the kernel's variables are
    /// (`VarInfo::storage`), like `ir::interp::run_arrays`. Panics if an array the kernel
    /// touches is stored otherwise.
    #[allow(clippy::too_many_arguments)]
    pub fn run_arrays(
        &self,
        index: usize,
        arrays: &mut [ArrayMut<'_>],
        gathers: &[&[u32]],
        start: usize,
        end: usize,
        info: StepInfo,
        spikes: &mut Vec<u32>,
    ) {
        let kernel = &self.kernels[index];
        for (v, array) in arrays.iter().enumerate() {
            assert!(
                kernel
                    .storage
                    .get(v)
                    .is_none_or(|&s| s == array.precision()),
                "kernel `{}`: array {v} is stored as {}, the kernel expects {}",
                kernel.name,
                array.precision().name(),
                kernel.storage[v].name()
            );
        }
        for gather in gathers {
            assert!(
                gather.len() >= end,
                "kernel `{}`: short index array",
                kernel.name
            );
        }
        let mut gather_pointers = [std::ptr::null(); snnc_runtime::abi::GATHERS];
        for (p, g) in gather_pointers.iter_mut().zip(gathers) {
            *p = g.as_ptr();
        }
        assert!(
            start <= end,
            "kernel `{}`: start {start} > end {end}",
            kernel.name
        );
        for &v in &kernel.touched_vars {
            assert!(
                v < arrays.len() && arrays[v].len() >= end,
                "kernel `{}`: array {v} is missing or shorter than {end}",
                kernel.name
            );
        }
        let pointers: Vec<*mut f64> = arrays.iter_mut().map(|a| a.as_mut_ptr()).collect();
        let room = end - start;
        spikes.reserve(room);
        let before = spikes.len();
        let mut ctx = KernelContext {
            arrays: pointers.as_ptr(),
            start: start as u64,
            end: end as u64,
            step: info.step,
            t: info.t,
            stream_key: Stream::new(info.seed, info.stream).key(),
            // SAFETY: `reserve` made room for `room` more entries after `before`.
            spikes: unsafe { spikes.as_mut_ptr().add(before) },
            n_spikes: 0,
            gather: gather_pointers,
        };
        // SAFETY: the touched arrays were checked to hold `end` elements; `&mut` slices do not
        // overlap; the spike buffer has room for one entry per element.
        unsafe { (kernel.function)(&mut ctx) };
        let written = ctx.n_spikes as usize;
        assert!(
            written <= room,
            "kernel `{}` wrote {written} spikes for {room} elements",
            kernel.name
        );
        // SAFETY: the kernel initialised `written` entries after `before`, within the reserve.
        unsafe { spikes.set_len(before + written) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::BinOp;

    fn draw(kind: Random, draw: u32, arg: Expr) -> Expr {
        Expr::Random {
            kind,
            draw,
            arg: Box::new(arg),
        }
    }

    /// Draws every element evaluates are batched (in a `let`, a store, a `select` arm, an `if`
    /// or `while` condition); draws in `if` and `while` bodies are not, and neither is a
    /// Poisson draw of a per-element mean anywhere.
    #[test]
    fn only_draws_every_element_evaluates_are_batched() {
        let uniform = |d| draw(Random::Uniform, d, Expr::Const(0.0));
        let body = vec![
            Stmt::Let(0, uniform(0)),
            Stmt::Store(
                0,
                Expr::Select(
                    Box::new(Expr::Var(1)),
                    Box::new(uniform(1)),
                    Box::new(draw(Random::Poisson, 2, Expr::Var(0))),
                ),
            ),
            Stmt::If(
                Expr::Binary(BinOp::Lt, Box::new(uniform(3)), Box::new(Expr::Var(0))),
                vec![Stmt::Store(1, uniform(4)), Stmt::Spike],
                vec![Stmt::Store(1, draw(Random::Poisson, 5, Expr::Const(2.0)))],
            ),
            Stmt::While {
                cond: Expr::Binary(BinOp::Lt, Box::new(uniform(6)), Box::new(Expr::Var(1))),
                max_iterations: 3,
                body: vec![Stmt::Store(1, uniform(7))],
            },
            Stmt::Store(2, draw(Random::Poisson, 8, Expr::Time)),
        ];
        let sites: Vec<u32> = batched_draws(&body)
            .into_iter()
            .map(|e| match e {
                Expr::Random { draw, .. } => *draw,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(sites, vec![0, 1, 3, 6, 8]);
        let batched = Batched::of(&body);
        let Stmt::If(_, then, _) = &body[2] else {
            unreachable!()
        };
        let Stmt::Store(_, in_body) = &then[0] else {
            unreachable!()
        };
        let Stmt::Let(_, first) = &body[0] else {
            unreachable!()
        };
        assert!(batched.contains(first));
        assert!(!batched.contains(in_body));
    }
}
