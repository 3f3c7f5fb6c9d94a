//! IR kernels to LLVM 14 functions through inkwell, optimised for the host and JIT-compiled,
//! or written as object files (cargo feature `llvm`; `snnc run --backend llvm`).
//!
//! This module owns the LLVM backend: building an LLVM module with one function
//! `extern "C" fn(*mut KernelContext)` per kernel, running LLVM's `-O3` pipeline on it (loop
//! and SLP vectorisation on) for the target's CPU and features, and either compiling it with
//! MCJIT into [`CompiledKernels`], the same type the Cranelift backend returns, so the runtime
//! sees no difference, or writing it as a relocatable object ([`emit_object`]) for the host or
//! for another 64-bit architecture (x86-64, AArch64, RISC-V), to link against the runtime. It must not change what a kernel means: `ir::interp` is the reference, and
//! every compiled kernel must agree with it bit for bit (NaN payloads aside), which
//! `tests/differential.rs` and `tests/examples_differential.rs` check for this backend too.
//! It knows nothing of how kernels were lowered, and nothing of the runtime beyond `abi.rs`.
//!
//! **Shape of a kernel.** The exported function reads the context and calls an inner,
//! always-inlined function that takes the context's index arrays and every array the kernel
//! touches as separate `noalias` pointers (arrays never overlap; the interpreter's `&mut`
//! slices guarantee it). A variable is addressed as `ir::Access` says: at the element, at 0
//! (scalar), or through an index array (gathered, as plasticity handlers do). After
//! inlining, LLVM knows that no store to one array changes another, so the element loop needs
//! no run-time overlap checks. The inner function has two loops:
//!
//! 1. the element loop, which for each element loads the values of the variables it touches, evaluates the body
//!    with IR locals and array values in stack slots (which LLVM promotes to registers), stores
//!    every array the body assigns (unconditionally: the value loaded is written back where no
//!    assignment ran, which leaves the same bits), and writes a 0/1 spike flag for the element
//!    into the spike buffer (which has room for one entry per element), summing the flags;
//! 2. when any flag is set, a pass that compacts the flagged elements' indices to the front
//!    of the buffer, in element order. It runs left to right, skipping eight flags at a time
//!    where none is set, and its write position never passes its read position, so it works
//!    in place.
//!
//! When no `if` body and no `select` arm calls a helper, the body is if-converted: both sides
//! of every `if` are evaluated under lane masks and assignments become selects (exact, because
//! every IR operation is pure), so the element loop is straight-line code that LLVM's loop
//! vectoriser turns into AVX2/AVX-512 code when the body calls nothing. Otherwise `if`s branch,
//! so helpers run only on the path taken, as in the interpreter; so do bodies with a bounded
//! `while` loop (adaptive integrators' sub-steps), whose iteration count lives in a phi.
//! Stores to scalar or gathered variables carry a dependence from one element to the next,
//! which LLVM sees and keeps in order.
//!
//! **Exactness.** Every operation reproduces `ir::interp`, as `codegen::cranelift` does (see
//! its module documentation for the reasoning): `+ - * /`, negation, `abs`, `sqrt`, `floor`,
//! `ceil` are IEEE operations or intrinsics; comparisons are ordered except `!=`; truth is
//! `!= 0.0`; `min`/`max` are a compare of the operands seen through `llvm.arithmetic.fence`
//! (so LLVM cannot turn them into `minnum`/`maxnum`) and two selects; `exp` and `expm1` are
//! the inline sequence of `snnc_runtime::math`; `%`, `^`, `log`, `log10`, `sin`, `cos`,
//! `tan`, `tanh` and random draws call the
//! runtime's `extern "C"` helpers (declared pure, so LLVM may hoist them out of the loop but
//! never computes them itself). Draws whose argument is the same for every element, and that
//! every element evaluates (`codegen::batched_draws`), are batched as in `codegen::cranelift`: one `snnc_random_block` call per occurrence before the
//! loop (declared as writing memory, its result `noalias`) and a load in it, so a loop whose
//! only calls were such draws vectorises. No instruction carries fast-math flags, and the module asks for
//! no contraction, so LLVM never fuses a multiply and an add into an FMA (the code generator's
//! default, `-fp-contract=standard`, fuses only the `fmuladd` intrinsic, which we never emit).
//! IR locals start at 0.0 once per invocation and carry over from one element to the next, as
//! in the interpreter.
//!
//! Setting `SNNC_LLVM_DUMP=<dir>` writes the optimised module (`kernels.ll`) and its host
//! assembly (`kernels.s`) into `<dir>`, to check what the vectoriser did.

use super::{
    batched_draws, touched_vars, used_vars, Batched, Code, CompileTiming, Compiled, CompiledKernels,
};
use crate::ir::interp::random_kind;
use crate::ir::{Access, BinOp, Expr, Func, Kernel, Random, Stmt, UnOp};
use inkwell::attributes::{Attribute, AttributeLoc};
use inkwell::basic_block::BasicBlock;
use inkwell::builder::{Builder, BuilderError};
use inkwell::context::Context;
use inkwell::execution_engine::ExecutionEngine;
use inkwell::module::{Linkage, Module};
use inkwell::passes::PassBuilderOptions;
use inkwell::targets::{
    CodeModel, FileType, InitializationConfig, RelocMode, Target, TargetMachine,
};
use inkwell::types::{BasicMetadataTypeEnum, FloatType, IntType};
use inkwell::values::{BasicMetadataValueEnum, FloatValue, FunctionValue, IntValue, PointerValue};
use inkwell::{AddressSpace, FloatPredicate, IntPredicate, OptimizationLevel};
use snnc_runtime::abi::{KernelContext, KernelFn, GATHERS};
use std::collections::HashMap;
use std::mem::{offset_of, ManuallyDrop};
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

/// The LLVM objects behind compiled kernels: the execution engine (which owns the module and
/// the machine code) and the context they were created in.
pub(super) struct Jit {
    engine: ManuallyDrop<ExecutionEngine<'static>>,
    context: ManuallyDrop<Box<Context>>,
}

impl Drop for Jit {
    fn drop(&mut self) {
        let _one_at_a_time = COMPILING
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // SAFETY: both are dropped exactly once, here: first the engine (which owns the module
        // and the code, and refers to the context), then the context.
        unsafe {
            ManuallyDrop::drop(&mut self.engine);
            ManuallyDrop::drop(&mut self.context);
        }
    }
}

// SAFETY: after `jit_compile` returns, nothing uses the engine or the context (they are only
// kept so the code stays mapped) until they are dropped, which happens on one thread with
// exclusive access. Shared references hand out nothing but function pointers to immutable code.
unsafe impl Send for Jit {}
unsafe impl Sync for Jit {}

static COMPILING: Mutex<()> = Mutex::new(());

/// The unwrap of builder results: the builder fails only when it is not positioned in a block
/// or given ill-typed values, which would be a bug in this module, not a property of a kernel.
fn ok<T>(result: Result<T, BuilderError>) -> T {
    result.expect("the LLVM builder is positioned and given well-typed values")
}

/// Compiles `kernels` for the host with LLVM, in process; the result is used exactly like
/// [`super::jit_compile`]'s.
pub fn jit_compile(kernels: &[&Kernel]) -> Result<CompiledKernels, String> {
    let started = Instant::now();
    // LLVM's process-wide state (target registry, option tables, MCJIT's registration) is not
    // meant to be set up from several threads at once; compiling is rare, so one at a time.
    let one_at_a_time = COMPILING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for kernel in kernels {
        super::cranelift::validate(kernel)?;
    }
    let machine = KernelMachine::host(CodeModel::JITDefault)?;
    let context = Box::new(Context::create());
    // SAFETY: the context is boxed, so it does not move, and it is dropped only after the
    // engine and module that borrow it (see `Jit`); nothing else keeps the borrow.
    let cx: &'static Context = unsafe { &*(context.as_ref() as *const Context) };
    let symbols: Vec<String> = (0..kernels.len())
        .map(|index| format!("snnc_kernel_{index}"))
        .collect();
    let setup_started = started.elapsed();
    let OptimisedModule {
        module,
        per_kernel,
        optimising,
    } = optimised_module(cx, &machine, kernels, &symbols)?;

    let t0 = Instant::now();
    let engine = module
        .create_jit_execution_engine(OptimizationLevel::Aggressive)
        .map_err(|e| format!("llvm: {}", e.to_string_lossy()))?;
    let runtime = super::cranelift::runtime_symbols();
    for (name, address) in &runtime {
        if let Some(function) = module.get_function(name) {
            engine.add_global_mapping(&function, *address as usize);
        }
    }
    let mut compiled = Vec::with_capacity(kernels.len());
    for (kernel, symbol) in kernels.iter().zip(&symbols) {
        let address = engine
            .get_function_address(symbol)
            .map_err(|e| format!("llvm: kernel `{}`: {e:?}", kernel.name))?;
        // SAFETY: `define_kernel` gave the function exactly this signature.
        let function = unsafe { std::mem::transmute::<usize, KernelFn>(address) };
        compiled.push(Compiled {
            name: kernel.name.clone(),
            function,
            touched_vars: touched_vars(kernel),
            storage: kernel.vars.iter().map(|v| v.storage).collect(),
        });
    }
    // The engine owns the module now; the handle only marks it so.
    drop(module);
    let setup = setup_started + optimising + t0.elapsed();
    drop(one_at_a_time);

    Ok(CompiledKernels {
        code: Some(Code::Llvm(Jit {
            engine: ManuallyDrop::new(engine),
            context: ManuallyDrop::new(context),
        })),
        kernels: compiled,
        timing: CompileTiming {
            per_kernel,
            setup_and_finalize: setup,
            total: started.elapsed(),
        },
    })
}

/// Compiles `kernels` ahead of time into a relocatable ELF object in memory, kernel `k`
/// exported as `symbols[k]` with the signature `extern "C" fn(*mut KernelContext)`, the same
/// code `jit_compile` runs. The object imports the runtime's math and random helpers by name
/// (`snnc_log`, `snnc_random`, ...), so it links against the runtime library.
///
/// Without `triple` the object is for this machine: its triple, CPU and features, as the JIT
/// compiles (it may use instructions other CPUs of the family lack). With a triple (e.g.
/// `aarch64-unknown-linux-gnu`, `riscv64gc-unknown-linux-gnu`, `x86_64-unknown-linux-gnu`) it
/// is for that architecture's baseline CPU. The code is position-independent, so the object
/// also goes into shared libraries.
pub fn emit_object(
    kernels: &[&Kernel],
    symbols: &[String],
    triple: Option<&str>,
) -> Result<Vec<u8>, String> {
    assert_eq!(kernels.len(), symbols.len(), "one symbol per kernel");
    let _one_at_a_time = COMPILING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for kernel in kernels {
        super::cranelift::validate(kernel)?;
    }
    let machine = match triple {
        None => KernelMachine::host(CodeModel::Default)?,
        Some(triple) => KernelMachine::for_triple(triple)?,
    };
    let cx = Context::create();
    let OptimisedModule { module, .. } = optimised_module(&cx, &machine, kernels, symbols)?;
    let buffer = machine
        .machine
        .write_to_memory_buffer(&module, FileType::Object)
        .map_err(|e| format!("llvm: code generation failed: {}", e.to_string_lossy()))?;
    let mut object = buffer.as_slice().to_vec();
    if machine.abi == Some("lp64d") {
        mark_double_float_abi(&mut object)?;
    }
    Ok(object)
}

/// Marks a RISC-V ELF object as following the double-float ABI (lp64d). LLVM 14 generates the
/// code for the ABI the `target-abi` module flag names (doubles travel in `fa0`...), but
/// writes the ELF header's ABI flag from target-machine options that its C API cannot set, so
/// the header would claim soft-float and linkers would refuse to mix the object with the
/// system's lp64d code. The flag is bits 1-2 of `e_flags` (`EF_RISCV_FLOAT_ABI_DOUBLE` = 4).
fn mark_double_float_abi(object: &mut [u8]) -> Result<(), String> {
    const EM_RISCV: u16 = 243;
    const E_MACHINE: usize = 18;
    const E_FLAGS: usize = 48;
    const FLOAT_ABI_MASK: u32 = 0x6;
    const FLOAT_ABI_DOUBLE: u32 = 0x4;
    let is_elf64_le = object.len() > E_FLAGS + 4
        && object[..4] == *b"\x7fELF"
        && object[4] == 2
        && object[5] == 1;
    let machine =
        is_elf64_le.then(|| u16::from_le_bytes([object[E_MACHINE], object[E_MACHINE + 1]]));
    if machine != Some(EM_RISCV) {
        return Err("llvm: expected a 64-bit little-endian RISC-V ELF object".to_string());
    }
    let mut flags = [0; 4];
    flags.copy_from_slice(&object[E_FLAGS..E_FLAGS + 4]);
    let flags = (u32::from_le_bytes(flags) & !FLOAT_ABI_MASK) | FLOAT_ABI_DOUBLE;
    object[E_FLAGS..E_FLAGS + 4].copy_from_slice(&flags.to_le_bytes());
    Ok(())
}

/// A module holding every kernel, verified and optimised, and how long that took.
struct OptimisedModule<'ctx> {
    module: Module<'ctx>,
    per_kernel: Vec<std::time::Duration>,
    optimising: std::time::Duration,
}

/// Defines `kernels` as `symbols` in a new module for `machine`, verifies it and runs LLVM's
/// `-O3` pipeline with loop and SLP vectorisation; dumps it when `SNNC_LLVM_DUMP` is set. The
/// JIT and object emission share this, so both run the same optimised code.
fn optimised_module<'ctx>(
    cx: &'ctx Context,
    machine: &KernelMachine,
    kernels: &[&Kernel],
    symbols: &[String],
) -> Result<OptimisedModule<'ctx>, String> {
    let module = cx.create_module("snnc_kernels");
    module.set_triple(&machine.triple);
    module.set_data_layout(&machine.machine.get_target_data().get_data_layout());
    if let Some(abi) = machine.abi {
        module.add_metadata_flag(
            "target-abi",
            inkwell::module::FlagBehavior::Error,
            cx.metadata_string(abi),
        );
    }
    let mut per_kernel = Vec::with_capacity(kernels.len());
    for (kernel, symbol) in kernels.iter().zip(symbols) {
        let t0 = Instant::now();
        define_kernel(cx, &module, machine, kernel, symbol);
        per_kernel.push(t0.elapsed());
    }
    let t0 = Instant::now();
    module
        .verify()
        .map_err(|e| format!("llvm: invalid module: {}", e.to_string_lossy()))?;
    let options = PassBuilderOptions::create();
    options.set_loop_vectorization(true);
    options.set_loop_slp_vectorization(true);
    options.set_loop_interleaving(true);
    options.set_loop_unrolling(true);
    module
        .run_passes("default<O3>", &machine.machine, options)
        .map_err(|e| format!("llvm: optimisation failed: {}", e.to_string_lossy()))?;
    if let Some(dir) = std::env::var_os("SNNC_LLVM_DUMP") {
        dump(&module, &machine.machine, Path::new(&dir))?;
    }
    Ok(OptimisedModule {
        module,
        per_kernel,
        optimising: t0.elapsed(),
    })
}

/// The machine kernels are compiled for: the target machine (the optimiser's cost model and
/// the code generator), its triple, and the CPU name and features every function is marked
/// with.
struct KernelMachine {
    machine: TargetMachine,
    triple: inkwell::targets::TargetTriple,
    cpu: String,
    features: String,
    /// The calling convention's name where the triple alone does not fix it (RISC-V: which
    /// floating-point registers carry arguments), given to LLVM as the `target-abi` module
    /// flag.
    abi: Option<&'static str>,
}

impl KernelMachine {
    /// This machine, with its CPU and every feature it has.
    fn host(code_model: CodeModel) -> Result<KernelMachine, String> {
        Target::initialize_native(&InitializationConfig::default())
            .map_err(|e| format!("llvm: cannot initialise the host target: {e}"))?;
        let triple = TargetMachine::get_default_triple();
        let cpu = TargetMachine::get_host_cpu_name().to_string();
        let features = TargetMachine::get_host_cpu_features().to_string();
        KernelMachine::new(triple, cpu, features, code_model, None)
    }

    /// The baseline CPU of `triple`'s architecture. Only 64-bit targets: the kernels read
    /// the runtime's `KernelContext` at this machine's field offsets.
    fn for_triple(triple: &str) -> Result<KernelMachine, String> {
        let arch = triple.split('-').next().unwrap_or_default();
        let config = InitializationConfig::default();
        // The baseline each architecture's Linux distributions assume: x86-64 with SSE2,
        // AArch64 with NEON (part of ARMv8-A), and RV64GC (integer multiply, atomics, single
        // and double floating point, compressed instructions).
        // RV64GC's Linux ABI, lp64d, passes doubles in floating-point registers; without it
        // LLVM would build soft-float objects that do not link with the rest of the system.
        let (cpu, features, abi) = match arch {
            "x86_64" => {
                Target::initialize_x86(&config);
                ("x86-64", "", None)
            }
            "aarch64" => {
                Target::initialize_aarch64(&config);
                ("generic", "+neon", None)
            }
            "riscv64" | "riscv64gc" => {
                Target::initialize_riscv(&config);
                ("generic-rv64", "+m,+a,+f,+d,+c", Some("lp64d"))
            }
            _ => {
                return Err(format!(
                    "llvm: no code generator for target `{triple}`; the LLVM backend emits \
                     x86_64, aarch64 and riscv64 (e.g. `aarch64-unknown-linux-gnu`, \
                     `riscv64gc-unknown-linux-gnu`)"
                ))
            }
        };
        // LLVM names RISC-V's architecture `riscv64`; the extensions are features.
        let llvm_triple = triple.replacen("riscv64gc-", "riscv64-", 1);
        let triple = inkwell::targets::TargetTriple::create(&llvm_triple);
        KernelMachine::new(
            triple,
            cpu.to_string(),
            features.to_string(),
            CodeModel::Default,
            abi,
        )
    }

    fn new(
        triple: inkwell::targets::TargetTriple,
        cpu: String,
        features: String,
        code_model: CodeModel,
        abi: Option<&'static str>,
    ) -> Result<KernelMachine, String> {
        let target = Target::from_triple(&triple)
            .map_err(|e| format!("llvm: unsupported target {triple}: {}", e.to_string_lossy()))?;
        // Position-independent code serves the JIT, objects, static and shared libraries alike.
        let machine = target
            .create_target_machine(
                &triple,
                &cpu,
                &features,
                OptimizationLevel::Aggressive,
                RelocMode::PIC,
                code_model,
            )
            .ok_or_else(|| format!("llvm: no target machine for {cpu} ({triple})"))?;
        let pointer_bytes = machine.get_target_data().get_pointer_byte_size(None);
        if pointer_bytes != 8 {
            return Err(format!(
                "llvm: target {triple} has {pointer_bytes}-byte pointers; kernels need a 64-bit \
                 target"
            ));
        }
        Ok(KernelMachine {
            machine,
            triple,
            cpu,
            features,
            abi,
        })
    }
}

/// Writes the optimised module and its assembly into `dir` (see the module documentation).
fn dump(module: &Module, machine: &TargetMachine, dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let ir = dir.join("kernels.ll");
    module
        .print_to_file(&ir)
        .map_err(|e| format!("{}: {}", ir.display(), e.to_string_lossy()))?;
    // Code generation rewrites the module it is given, so it gets a copy.
    let copy = module.clone();
    let asm = dir.join("kernels.s");
    machine
        .write_to_file(&copy, FileType::Assembly, &asm)
        .map_err(|e| format!("{}: {}", asm.display(), e.to_string_lossy()))
}

/// How many spike flags the compaction tests at once.
const COMPACT_BLOCK: u64 = 8;

/// The runtime helper an expression calls, if any; `batched` holds the kernel's batched
/// draws.
fn helper_of(e: &Expr, batched: &Batched) -> Option<&'static str> {
    Some(match e {
        Expr::Binary(BinOp::Rem, ..) => "snnc_fmod",
        Expr::Binary(BinOp::Pow, ..) => "snnc_pow",
        Expr::Call(Func::Log, _) => "snnc_log",
        Expr::Call(Func::Log10, _) => "snnc_log10",
        Expr::Call(Func::Sin, _) => "snnc_sin",
        Expr::Call(Func::Cos, _) => "snnc_cos",
        Expr::Call(Func::Tan, _) => "snnc_tan",
        Expr::Call(Func::Tanh, _) => "snnc_tanh",
        e @ Expr::Random { .. } if batched.contains(e) => "snnc_random_block",
        Expr::Random { .. } => "snnc_random",
        _ => return None,
    })
}

/// Whether evaluating `e` calls out of the element loop. A batched draw is a load there.
fn calls_out(e: &Expr, batched: &Batched) -> bool {
    let mut found = false;
    e.visit(&mut |e| found |= helper_of(e, batched).is_some_and(|h| h != "snnc_random_block"));
    found
}

/// Whether the body can be if-converted without paying for helper calls the interpreter would
/// skip: no `if` body and no `select` arm calls out.
fn if_convertible(body: &[Stmt], batched: &Batched) -> bool {
    fn arms_pure(e: &Expr, batched: &Batched) -> bool {
        let mut ok = true;
        e.visit(&mut |e| {
            if let Expr::Select(_, a, b) = e {
                ok &= !calls_out(a, batched) && !calls_out(b, batched);
            }
        });
        ok
    }
    fn check(stmts: &[Stmt], nested: bool, batched: &Batched) -> bool {
        let pure = |e: &Expr| arms_pure(e, batched) && !(nested && calls_out(e, batched));
        stmts.iter().all(|s| match s {
            Stmt::Let(_, e) | Stmt::Store(_, e) => pure(e),
            Stmt::If(c, a, b) => pure(c) && check(a, true, batched) && check(b, true, batched),
            Stmt::Spike => true,
            Stmt::While { .. } => false,
        })
    }
    check(body, false, batched)
}

/// Calls `f` on every statement, nested ones included.
fn walk(stmts: &[Stmt], f: &mut dyn FnMut(&Stmt)) {
    for s in stmts {
        f(s);
        match s {
            Stmt::If(_, a, b) => {
                walk(a, f);
                walk(b, f);
            }
            Stmt::While { body, .. } => walk(body, f),
            Stmt::Let(..) | Stmt::Store(..) | Stmt::Spike => {}
        }
    }
}

/// Defines `kernel` in `module` as the exported function `symbol`.
fn define_kernel<'ctx>(
    cx: &'ctx Context,
    module: &Module<'ctx>,
    machine: &KernelMachine,
    kernel: &Kernel,
    symbol: &str,
) {
    let n_vars = kernel.vars.len();
    // Every array the kernel reads or writes, however addressed, is a parameter.
    let touched = used_vars(kernel);
    let mut stored = vec![false; n_vars];
    let mut can_spike = false;
    walk(&kernel.body, &mut |s| match s {
        Stmt::Store(v, _) => stored[*v as usize] = true,
        Stmt::Spike => can_spike = true,
        _ => {}
    });

    let f64t = cx.f64_type();
    let i64t = cx.i64_type();
    let i32t = cx.i32_type();
    let f64p = f64t.ptr_type(AddressSpace::default());
    let f32t = cx.f32_type();
    let f32p = f32t.ptr_type(AddressSpace::default());
    let i32p = i32t.ptr_type(AddressSpace::default());
    let i8p = cx.i8_type().ptr_type(AddressSpace::default());
    // Whether each variable is stored as f32 (loaded with `fpext`, stored with `fptrunc`).
    let single: Vec<bool> = kernel
        .vars
        .iter()
        .map(|v| v.storage == crate::ir::Precision::F32)
        .collect();
    let attr = |name: &str| cx.create_enum_attribute(Attribute::get_named_enum_kind_id(name), 0);
    let host = |f: FunctionValue<'ctx>| {
        f.add_attribute(
            AttributeLoc::Function,
            cx.create_string_attribute("target-cpu", &machine.cpu),
        );
        f.add_attribute(
            AttributeLoc::Function,
            cx.create_string_attribute("target-features", &machine.features),
        );
        f.add_attribute(AttributeLoc::Function, attr("nounwind"));
    };

    // The inner function: (start, end, step, t, stream_key, spikes, gathers..., arrays...) ->
    // spike count.
    let mut params: Vec<BasicMetadataTypeEnum> = vec![
        i64t.into(),
        i64t.into(),
        i64t.into(),
        f64t.into(),
        i64t.into(),
        i32p.into(),
    ];
    params.extend((0..GATHERS).map(|_| BasicMetadataTypeEnum::from(i32p)));
    let first_array = params.len();
    params.extend(
        touched
            .iter()
            .map(|&v| BasicMetadataTypeEnum::from(if single[v] { f32p } else { f64p })),
    );
    let inner = module.add_function(
        &format!("{symbol}_body"),
        i64t.fn_type(&params, false),
        Some(Linkage::Internal),
    );
    host(inner);
    inner.add_attribute(AttributeLoc::Function, attr("alwaysinline"));
    for p in 5..params.len() as u32 {
        // Index arrays are only read; arrays never overlap one another or the index arrays.
        inner.add_attribute(AttributeLoc::Param(p), attr("noalias"));
        inner.add_attribute(AttributeLoc::Param(p), attr("nocapture"));
    }
    let param = |n: usize| inner.get_nth_param(n as u32).expect("declared parameter");
    let mut bases = vec![None; n_vars];
    for (k, &v) in touched.iter().enumerate() {
        bases[v] = Some(param(first_array + k).into_pointer_value());
    }
    let gathers: Vec<PointerValue> = (0..GATHERS)
        .map(|g| param(6 + g).into_pointer_value())
        .collect();

    let b = cx.create_builder();
    let entry = cx.append_basic_block(inner, "entry");
    b.position_at_end(entry);
    let start = param(0).into_int_value();
    let end = param(1).into_int_value();
    let spikes = param(5).into_pointer_value();
    let zero = f64t.const_float(0.0);
    let locals: Vec<PointerValue> = (0..kernel.n_locals)
        .map(|l| {
            let slot = ok(b.build_alloca(f64t, &format!("local{l}")));
            ok(b.build_store(slot, zero));
            slot
        })
        .collect();
    let slots: Vec<Option<PointerValue>> = (0..n_vars)
        .map(|v| bases[v].map(|_| ok(b.build_alloca(f64t, &format!("var{v}")))))
        .collect();
    let spiked = can_spike.then(|| ok(b.build_alloca(cx.bool_type(), "spiked")));
    let element = ok(b.build_alloca(i64t, "element"));
    ok(b.build_store(element, start));
    let flags = ok(b.build_alloca(i64t, "flags"));
    ok(b.build_store(flags, i64t.const_zero()));
    // One generator for the whole function. Before the loop it has no element: it emits the
    // batched draws, one call per draw for the whole range, each into its own buffer slot (all
    // are read in the same loop); their arguments are the same for every element. The loop
    // body then sets the element's values.
    let mut g = Gen {
        cx,
        module,
        b: &b,
        function: inner,
        f64t,
        i32t,
        t: param(3).into_float_value(),
        step: param(2).into_int_value(),
        stream_key: param(4).into_int_value(),
        elem_u32: i32t.const_zero(),
        elem_f64: f64t.const_zero(),
        locals,
        slots: slots.clone(),
        single: single.clone(),
        f32t,
        spiked,
        flat: true,
        mask: None,
        draw_blocks: HashMap::new(),
        batched: Batched::of(&kernel.body),
        element_offset: i64t.const_zero(),
    };
    for (slot, e) in batched_draws(&kernel.body).into_iter().enumerate() {
        let block = g.random_block(e, start, end, slot as u32);
        g.draw_blocks.insert(e as *const Expr, block);
    }

    let header = cx.append_basic_block(inner, "loop");
    let body = cx.append_basic_block(inner, "element");
    let exit = cx.append_basic_block(inner, "done");
    ok(b.build_unconditional_branch(header));
    b.position_at_end(header);
    let i = ok(b.build_load(element, "i")).into_int_value();
    let more = ok(b.build_int_compare(IntPredicate::ULT, i, end, "more"));
    ok(b.build_conditional_branch(more, body, exit));

    b.position_at_end(body);
    // Where the current element's value of variable `v` lives, by its access (see
    // `ir::Access`). Gathered indices are loaded once per element: the index arrays are never
    // written by a kernel.
    let gathered: Vec<Option<IntValue>> = (0..GATHERS)
        .map(|g| {
            let used = touched
                .iter()
                .any(|&v| kernel.vars[v].access == Access::Gather(g as u8));
            used.then(|| {
                // SAFETY (of the generated code): the runtime passes an index array holding at
                // least `end` entries for every gather a kernel uses.
                let at = unsafe { ok(b.build_in_bounds_gep(gathers[g], &[i], "")) };
                let index = ok(b.build_load(at, &format!("gather{g}"))).into_int_value();
                ok(b.build_int_z_extend(index, i64t, ""))
            })
        })
        .collect();
    let address = |b: &Builder<'ctx>, v: usize| {
        let base = bases[v].expect("touched arrays are parameters");
        let index = match kernel.vars[v].access {
            Access::Element => i,
            Access::Scalar => i64t.const_zero(),
            Access::Gather(g) => gathered[g as usize].expect("used gathers are loaded"),
        };
        // SAFETY (of the generated code): the runtime guarantees every element-addressed array
        // holds at least `end` elements (and `i < end`), every scalar one at least one, and
        // every gathered index is within its array.
        unsafe { ok(b.build_in_bounds_gep(base, &[index], "")) }
    };
    for (v, slot) in slots.iter().enumerate() {
        if let Some(slot) = *slot {
            let x = ok(b.build_load(address(&b, v), ""));
            let x = if single[v] {
                ok(b.build_float_ext(x.into_float_value(), f64t, "")).into()
            } else {
                x
            };
            ok(b.build_store(slot, x));
        }
    }
    if let Some(s) = spiked {
        ok(b.build_store(s, cx.bool_type().const_zero()));
    }
    g.elem_u32 = ok(b.build_int_truncate(i, i32t, "elem_u32"));
    // Signed conversion equals `as f64` on an index below 2^63.
    g.elem_f64 = ok(b.build_signed_int_to_float(i, f64t, "elem_f64"));
    g.element_offset = ok(b.build_int_sub(i, start, "element_offset"));
    g.flat = if_convertible(&kernel.body, &g.batched);
    g.stmts(&kernel.body);
    for v in 0..n_vars {
        if stored[v] {
            let slot = slots[v].expect("stored arrays have a slot");
            let x = ok(b.build_load(slot, ""));
            // Exact: the slot holds a rounded value (see `Gen::single`).
            let x = if single[v] {
                ok(b.build_float_trunc(x.into_float_value(), f32t, "")).into()
            } else {
                x
            };
            ok(b.build_store(address(&b, v), x));
        }
    }
    if let Some(s) = spiked {
        let flag = ok(b.build_load(s, "")).into_int_value();
        let flag = ok(b.build_int_z_extend(flag, i32t, "flag"));
        let offset = ok(b.build_int_sub(i, start, "offset"));
        let at = unsafe { ok(b.build_in_bounds_gep(spikes, &[offset], "")) };
        ok(b.build_store(at, flag));
        let wide = ok(b.build_int_z_extend(flag, i64t, ""));
        let sum = ok(b.build_load(flags, "")).into_int_value();
        ok(b.build_store(flags, ok(b.build_int_add(sum, wide, ""))));
    }
    let next = ok(b.build_int_add(i, i64t.const_int(1, false), "next"));
    ok(b.build_store(element, next));
    ok(b.build_unconditional_branch(header));

    // Compaction: move the indices of flagged elements to the front, in order, stopping after
    // the last one.
    b.position_at_end(exit);
    let total = ok(b.build_load(flags, "total")).into_int_value();
    if can_spike {
        let read = ok(b.build_alloca(i64t, "read"));
        let written = ok(b.build_alloca(i64t, "written"));
        ok(b.build_store(read, i64t.const_zero()));
        ok(b.build_store(written, i64t.const_zero()));
        let check = cx.append_basic_block(inner, "compact");
        let block = cx.append_basic_block(inner, "compact_block");
        let skip = cx.append_basic_block(inner, "compact_skip");
        let step = cx.append_basic_block(inner, "compact_one");
        let finished = cx.append_basic_block(inner, "return");
        let n = ok(b.build_int_sub(end, start, "n"));
        ok(b.build_unconditional_branch(check));
        b.position_at_end(check);
        let w = ok(b.build_load(written, "w")).into_int_value();
        let more = ok(b.build_int_compare(IntPredicate::ULT, w, total, "more"));
        ok(b.build_conditional_branch(more, block, finished));
        // Spikes are rare: the flags are tested eight at a time, and a block without a flag
        // is skipped. (Stopping after the last flagged element still leaves, with spikes
        // spread over the population, most of it to scan.)
        b.position_at_end(block);
        let r = ok(b.build_load(read, "r")).into_int_value();
        let block_end = ok(b.build_int_add(r, i64t.const_int(COMPACT_BLOCK, false), ""));
        let whole = ok(b.build_int_compare(IntPredicate::ULE, block_end, n, "whole"));
        let test = cx.append_basic_block(inner, "compact_test");
        ok(b.build_conditional_branch(whole, test, step));
        b.position_at_end(test);
        let lanes = i32t.vec_type(COMPACT_BLOCK as u32);
        let from = unsafe { ok(b.build_in_bounds_gep(spikes, &[r], "")) };
        let from = ok(b.build_pointer_cast(from, lanes.ptr_type(AddressSpace::default()), ""));
        let loaded = ok(b.build_load(from, "flags8"));
        inkwell::values::BasicValue::as_instruction_value(&loaded)
            .expect("a load is an instruction")
            .set_alignment(4)
            .map_err(|e| e.to_string())
            .expect("4 is a valid alignment");
        let set = ok(b.build_int_compare(
            IntPredicate::NE,
            loaded.into_vector_value(),
            lanes.const_zero(),
            "set",
        ));
        let mask_type = cx.custom_width_int_type(COMPACT_BLOCK as u32);
        let mask = ok(b.build_bit_cast(set, mask_type, "mask")).into_int_value();
        let none = ok(b.build_int_compare(IntPredicate::EQ, mask, mask_type.const_zero(), "none"));
        ok(b.build_conditional_branch(none, skip, step));
        b.position_at_end(skip);
        ok(b.build_store(read, block_end));
        ok(b.build_unconditional_branch(check));
        b.position_at_end(step);
        let r = ok(b.build_load(read, "r")).into_int_value();
        let from = unsafe { ok(b.build_in_bounds_gep(spikes, &[r], "")) };
        let flag = ok(b.build_load(from, "flag")).into_int_value();
        let index = ok(b.build_int_add(start, r, ""));
        let index = ok(b.build_int_truncate(index, i32t, "index"));
        let to = unsafe { ok(b.build_in_bounds_gep(spikes, &[w], "")) };
        ok(b.build_store(to, index));
        let flag = ok(b.build_int_z_extend(flag, i64t, ""));
        ok(b.build_store(written, ok(b.build_int_add(w, flag, ""))));
        ok(b.build_store(read, ok(b.build_int_add(r, i64t.const_int(1, false), ""))));
        ok(b.build_unconditional_branch(check));
        b.position_at_end(finished);
    }
    ok(b.build_return(Some(&total)));

    // The exported function: reads the context, runs the body, publishes the spike count.
    let outer = module.add_function(
        symbol,
        cx.void_type().fn_type(&[i8p.into()], false),
        Some(Linkage::External),
    );
    host(outer);
    let entry = cx.append_basic_block(outer, "entry");
    b.position_at_end(entry);
    let ctx = outer
        .get_first_param()
        .expect("one parameter")
        .into_pointer_value();
    let field = |offset: usize, ty: inkwell::types::PointerType<'ctx>, name: &str| {
        let offset = i64t.const_int(offset as u64, false);
        let at = unsafe { ok(b.build_in_bounds_gep(ctx, &[offset], "")) };
        ok(b.build_pointer_cast(at, ty, name))
    };
    let i64p = i64t.ptr_type(AddressSpace::default());
    let load_u64 = |offset: usize, name: &str| {
        ok(b.build_load(field(offset, i64p, name), name)).into_int_value()
    };
    let arrays_at = field(
        offset_of!(KernelContext, arrays),
        f64p.ptr_type(AddressSpace::default())
            .ptr_type(AddressSpace::default()),
        "arrays_field",
    );
    let arrays = ok(b.build_load(arrays_at, "arrays")).into_pointer_value();
    let t_at = field(
        offset_of!(KernelContext, t),
        f64t.ptr_type(AddressSpace::default()),
        "t_field",
    );
    let spikes_at = field(
        offset_of!(KernelContext, spikes),
        i32p.ptr_type(AddressSpace::default()),
        "spikes_field",
    );
    let n_spikes_at = field(offset_of!(KernelContext, n_spikes), i64p, "n_spikes_field");
    let n0 = ok(b.build_load(n_spikes_at, "n0")).into_int_value();
    let spikes = ok(b.build_load(spikes_at, "spikes")).into_pointer_value();
    let spikes = unsafe { ok(b.build_in_bounds_gep(spikes, &[n0], "free")) };
    let mut args: Vec<BasicMetadataValueEnum> = vec![
        load_u64(offset_of!(KernelContext, start), "start").into(),
        load_u64(offset_of!(KernelContext, end), "end").into(),
        load_u64(offset_of!(KernelContext, step), "step").into(),
        ok(b.build_load(t_at, "t")).into(),
        load_u64(offset_of!(KernelContext, stream_key), "stream_key").into(),
        spikes.into(),
    ];
    let gather_at = field(
        offset_of!(KernelContext, gather),
        i32p.ptr_type(AddressSpace::default()),
        "gather_field",
    );
    for g in 0..GATHERS {
        let at =
            unsafe { ok(b.build_in_bounds_gep(gather_at, &[i64t.const_int(g as u64, false)], "")) };
        args.push(ok(b.build_load(at, &format!("gather{g}"))).into());
    }
    for &v in &touched {
        let at =
            unsafe { ok(b.build_in_bounds_gep(arrays, &[i64t.const_int(v as u64, false)], "")) };
        let base = ok(b.build_load(at, &format!("base{v}"))).into_pointer_value();
        let base = if kernel.vars[v].storage == crate::ir::Precision::F32 {
            ok(b.build_pointer_cast(base, cx.f32_type().ptr_type(AddressSpace::default()), ""))
        } else {
            base
        };
        args.push(base.into());
    }
    let count = ok(b.build_call(inner, &args, "count"))
        .try_as_basic_value()
        .unwrap_basic()
        .into_int_value();
    let count = ok(b.build_int_add(n0, count, "n_spikes"));
    ok(b.build_store(n_spikes_at, count));
    ok(b.build_return(None));
}

struct Gen<'a, 'ctx> {
    /// Whether each variable is stored as `f32`: a store rounds the value held in its slot.
    single: Vec<bool>,
    f32t: FloatType<'ctx>,
    cx: &'ctx Context,
    module: &'a Module<'ctx>,
    b: &'a Builder<'ctx>,
    function: FunctionValue<'ctx>,
    f64t: FloatType<'ctx>,
    i32t: IntType<'ctx>,
    t: FloatValue<'ctx>,
    step: IntValue<'ctx>,
    stream_key: IntValue<'ctx>,
    elem_u32: IntValue<'ctx>,
    elem_f64: FloatValue<'ctx>,
    /// Stack slots of the IR locals, of the current element's array values, and of whether
    /// the element has spiked; LLVM promotes them to registers.
    locals: Vec<PointerValue<'ctx>>,
    slots: Vec<Option<PointerValue<'ctx>>>,
    spiked: Option<PointerValue<'ctx>>,
    /// Whether the body is if-converted (see the module documentation).
    flat: bool,
    /// When if-converted: the condition under which the statements being emitted run, or
    /// `None` for always.
    mask: Option<IntValue<'ctx>>,
    /// The block of values `snnc_random_block` returned for each batched draw (see
    /// `codegen::batched_draws`; keyed by address), read at `element_offset`, the current
    /// element's position in the range.
    draw_blocks: HashMap<*const Expr, PointerValue<'ctx>>,
    /// The kernel's batched draws (`codegen::batched_draws`), which are loads, not calls.
    batched: Batched,
    element_offset: IntValue<'ctx>,
}

impl<'ctx> Gen<'_, 'ctx> {
    fn stmts(&mut self, stmts: &[Stmt]) {
        for s in stmts {
            self.stmt(s);
        }
    }

    /// Stores `value` into `slot`, or under the current mask, keeps the old value where the
    /// mask is false.
    fn assign(&mut self, slot: PointerValue<'ctx>, value: FloatValue<'ctx>) {
        let value = match self.mask {
            Some(mask) => {
                let old = ok(self.b.build_load(slot, "")).into_float_value();
                self.select(mask, value, old)
            }
            None => value,
        };
        ok(self.b.build_store(slot, value));
    }

    fn stmt(&mut self, stmt: &Stmt) {
        match stmt {
            Stmt::Let(l, e) => {
                let v = self.expr(e);
                self.assign(self.locals[*l as usize], v);
            }
            Stmt::Store(var, e) => {
                let v = self.expr(e);
                // An f32 variable holds the rounded value from here on, as memory will.
                let v = if self.single[*var as usize] {
                    let narrow = ok(self.b.build_float_trunc(v, self.f32t, ""));
                    ok(self.b.build_float_ext(narrow, self.f64t, ""))
                } else {
                    v
                };
                let slot = self.slots[*var as usize].expect("stored arrays have a slot");
                self.assign(slot, v);
            }
            Stmt::If(c, then_body, else_body) if self.flat => {
                let cond = self.cond(c);
                let outer = self.mask;
                self.mask = Some(match outer {
                    Some(m) => ok(self.b.build_and(m, cond, "")),
                    None => cond,
                });
                self.stmts(then_body);
                if !else_body.is_empty() {
                    let not = ok(self.b.build_not(cond, ""));
                    self.mask = Some(match outer {
                        Some(m) => ok(self.b.build_and(m, not, "")),
                        None => not,
                    });
                    self.stmts(else_body);
                }
                self.mask = outer;
            }
            Stmt::If(c, then_body, else_body) => {
                let cond = self.cond(c);
                let then_block = self.cx.append_basic_block(self.function, "then");
                let else_block = self.cx.append_basic_block(self.function, "else");
                let join = self.cx.append_basic_block(self.function, "join");
                ok(self
                    .b
                    .build_conditional_branch(cond, then_block, else_block));
                for (block, body) in [(then_block, then_body), (else_block, else_body)] {
                    self.b.position_at_end(block);
                    self.stmts(body);
                    ok(self.b.build_unconditional_branch(join));
                }
                self.b.position_at_end(join);
            }
            Stmt::Spike => {
                let slot = self.spiked.expect("a kernel with `spike` has a spike flag");
                let yes = self.cx.bool_type().const_int(1, false);
                let value = match self.mask {
                    Some(mask) => {
                        let old = ok(self.b.build_load(slot, "")).into_int_value();
                        ok(self.b.build_or(old, mask, ""))
                    }
                    None => yes,
                };
                ok(self.b.build_store(slot, value));
            }
            Stmt::While {
                cond,
                max_iterations,
                body,
            } => {
                // Bodies with loops are never if-converted (`if_convertible`), so this branches:
                // header (count < max && cond) -> body -> header, or on to the exit.
                assert!(self.mask.is_none(), "a loop is never if-converted");
                let i32t = self.i32t;
                let before = self.b.get_insert_block().expect("positioned in a block");
                let header = self.cx.append_basic_block(self.function, "while");
                let body_block = self.cx.append_basic_block(self.function, "while_body");
                let exit = self.cx.append_basic_block(self.function, "while_done");
                ok(self.b.build_unconditional_branch(header));
                self.b.position_at_end(header);
                let count = ok(self.b.build_phi(i32t, "iterations"));
                let n = count.as_basic_value().into_int_value();
                let max = i32t.const_int(u64::from(*max_iterations), false);
                let below = ok(self.b.build_int_compare(IntPredicate::ULT, n, max, "below"));
                // `cond` is pure, so evaluating it after the last allowed iteration changes
                // nothing the interpreter (which skips it then) would see.
                let go = self.cond(cond);
                let go = ok(self.b.build_and(below, go, "again"));
                ok(self.b.build_conditional_branch(go, body_block, exit));
                self.b.position_at_end(body_block);
                self.stmts(body);
                let next = ok(self.b.build_int_add(n, i32t.const_int(1, false), "next"));
                let latch = self.b.get_insert_block().expect("positioned in a block");
                ok(self.b.build_unconditional_branch(header));
                count.add_incoming(&[(&i32t.const_zero(), before), (&next, latch)]);
                self.b.position_at_end(exit);
            }
        }
    }

    fn select(
        &self,
        cond: IntValue<'ctx>,
        a: FloatValue<'ctx>,
        b: FloatValue<'ctx>,
    ) -> FloatValue<'ctx> {
        ok(self.b.build_select(cond, a, b, "")).into_float_value()
    }

    fn fconst(&self, c: f64) -> FloatValue<'ctx> {
        self.f64t.const_float(c)
    }

    fn fcmp(&self, p: FloatPredicate, a: FloatValue<'ctx>, b: FloatValue<'ctx>) -> IntValue<'ctx> {
        ok(self.b.build_float_compare(p, a, b, ""))
    }

    /// `eval(e) != 0.0` as an `i1`, without materialising 1.0/0.0 for comparisons and logic.
    fn cond(&mut self, e: &Expr) -> IntValue<'ctx> {
        match e {
            Expr::Binary(op, a, b) => {
                if let Some(p) = comparison(*op) {
                    let a = self.expr(a);
                    let b = self.expr(b);
                    return self.fcmp(p, a, b);
                }
                if matches!(op, BinOp::And | BinOp::Or) {
                    let x = self.cond(a);
                    let y = self.cond(b);
                    return if *op == BinOp::And {
                        ok(self.b.build_and(x, y, ""))
                    } else {
                        ok(self.b.build_or(x, y, ""))
                    };
                }
            }
            // `a == 0.0` is exactly `!(a != 0.0)`, NaN included.
            Expr::Unary(UnOp::Not, a) => {
                let x = self.cond(a);
                return ok(self.b.build_not(x, ""));
            }
            _ => {}
        }
        let v = self.expr(e);
        self.fcmp(FloatPredicate::UNE, v, self.fconst(0.0))
    }

    /// A zero constant of the IR, read from a mutable global rather than written as a
    /// constant. LLVM 14's instruction combiner rewrites a compare-and-select against a
    /// constant `-0.0` as if `+0.0` and `-0.0` were equal (`min(x, -0.0)` gave `-0.0` for
    /// `x = +0.0`, found by `tests/differential.rs`); a value it cannot see folds nothing. The
    /// load is invariant, so it is hoisted out of the element loop.
    fn opaque_zero(&mut self, c: f64) -> FloatValue<'ctx> {
        if c.is_sign_negative() {
            self.opaque_constant("snnc_negative_zero", -0.0)
        } else {
            self.opaque_constant("snnc_positive_zero", 0.0)
        }
    }

    /// `value`, loaded from a mutable global named `name`, so the optimiser cannot fold it.
    fn opaque_constant(&mut self, name: &str, value: f64) -> FloatValue<'ctx> {
        let global = self.module.get_global(name).unwrap_or_else(|| {
            let g = self.module.add_global(self.f64t, None, name);
            g.set_initializer(&self.f64t.const_float(value));
            g.set_constant(false);
            // Weak, so LLVM cannot assume the value it sees is the one at run time, and every
            // object of a program may define it (a deployed program can link several models'
            // kernels); hidden, so a shared library does not export it.
            g.set_linkage(Linkage::WeakAny);
            g.set_visibility(inkwell::GlobalVisibility::Hidden);
            g
        });
        ok(self.b.build_load(global.as_pointer_value(), name)).into_float_value()
    }

    fn bool_to_f64(&self, cond: IntValue<'ctx>) -> FloatValue<'ctx> {
        self.select(cond, self.fconst(1.0), self.fconst(0.0))
    }

    fn expr(&mut self, e: &Expr) -> FloatValue<'ctx> {
        match e {
            Expr::Const(c) if *c == 0.0 => self.opaque_zero(*c),
            Expr::Const(c) => self.fconst(*c),
            Expr::Var(v) => {
                let slot = self.slots[*v as usize].expect("read arrays have a slot");
                ok(self.b.build_load(slot, "")).into_float_value()
            }
            Expr::Local(l) => {
                ok(self.b.build_load(self.locals[*l as usize], "")).into_float_value()
            }
            Expr::Time => self.t,
            Expr::Index => self.elem_f64,
            Expr::Unary(UnOp::Neg, a) => {
                let a = self.expr(a);
                ok(self.b.build_float_neg(a, ""))
            }
            Expr::Unary(UnOp::Not, _) => {
                let c = self.cond(e);
                self.bool_to_f64(c)
            }
            Expr::Binary(op, _, _)
                if comparison(*op).is_some() || matches!(op, BinOp::And | BinOp::Or) =>
            {
                let c = self.cond(e);
                self.bool_to_f64(c)
            }
            Expr::Binary(op, a, b) => {
                let a = self.expr(a);
                let b = self.expr(b);
                self.binary(*op, a, b)
            }
            Expr::Call(f, a) => {
                let a = self.expr(a);
                self.func(*f, a)
            }
            Expr::Select(c, a, b) => {
                let cond = self.cond(c);
                if !self.flat && (calls_out(a, &self.batched) || calls_out(b, &self.batched)) {
                    self.select_branching(cond, a, b)
                } else {
                    let a = self.expr(a);
                    let b = self.expr(b);
                    self.select(cond, a, b)
                }
            }
            Expr::Random { .. } if self.draw_blocks.contains_key(&(e as *const Expr)) => {
                let block = self.draw_blocks[&(e as *const Expr)];
                // SAFETY (of the generated code): the block holds one value per element of the
                // range, and `element_offset` is below its length.
                let at = unsafe {
                    ok(self
                        .b
                        .build_in_bounds_gep(block, &[self.element_offset], ""))
                };
                ok(self.b.build_load(at, "draw")).into_float_value()
            }
            Expr::Random { kind, draw, arg } => {
                // A non-Poisson draw ignores its argument, so it is not evaluated.
                let arg = if *kind == Random::Poisson {
                    self.expr(arg)
                } else {
                    self.fconst(0.0)
                };
                let args = [
                    self.stream_key.into(),
                    self.elem_u32.into(),
                    self.step.into(),
                    self.i32t.const_int(u64::from(*draw), false).into(),
                    self.i32t
                        .const_int(u64::from(random_kind(*kind)), false)
                        .into(),
                    arg.into(),
                ];
                self.call("snnc_random", &args)
            }
        }
    }

    /// `select` whose sides call out: evaluate only the side taken.
    fn select_branching(&mut self, cond: IntValue<'ctx>, a: &Expr, b: &Expr) -> FloatValue<'ctx> {
        let then_block = self.cx.append_basic_block(self.function, "select_then");
        let else_block = self.cx.append_basic_block(self.function, "select_else");
        let join = self.cx.append_basic_block(self.function, "select_join");
        ok(self
            .b
            .build_conditional_branch(cond, then_block, else_block));
        let mut incoming: Vec<(FloatValue<'ctx>, BasicBlock<'ctx>)> = Vec::with_capacity(2);
        for (block, side) in [(then_block, a), (else_block, b)] {
            self.b.position_at_end(block);
            let v = self.expr(side);
            incoming.push((v, self.b.get_insert_block().expect("positioned")));
            ok(self.b.build_unconditional_branch(join));
        }
        self.b.position_at_end(join);
        let phi = ok(self.b.build_phi(self.f64t, ""));
        phi.add_incoming(&[
            (&incoming[0].0, incoming[0].1),
            (&incoming[1].0, incoming[1].1),
        ]);
        phi.as_basic_value().into_float_value()
    }

    /// Arithmetic operators (comparisons and logic go through [`Gen::cond`]).
    fn binary(&mut self, op: BinOp, a: FloatValue<'ctx>, b: FloatValue<'ctx>) -> FloatValue<'ctx> {
        match op {
            BinOp::Add => ok(self.b.build_float_add(a, b, "")),
            BinOp::Sub => ok(self.b.build_float_sub(a, b, "")),
            BinOp::Mul => ok(self.b.build_float_mul(a, b, "")),
            BinOp::Div => ok(self.b.build_float_div(a, b, "")),
            BinOp::Rem => self.call("snnc_fmod", &[a.into(), b.into()]),
            BinOp::Pow => self.call("snnc_pow", &[a.into(), b.into()]),
            // Rust's `a.min(b)` / `a.max(b)` on x86-64: `b` if `b` beats `a` or `a` is NaN,
            // else `a` (see `codegen::cranelift`).
            BinOp::Min | BinOp::Max => {
                let beats = if op == BinOp::Min {
                    FloatPredicate::OLT
                } else {
                    FloatPredicate::OGT
                };
                // The compares read the operands through `llvm.arithmetic.fence`, which LLVM
                // does not look through: LLVM 14's instruction combiner rewrites a select
                // between the very values it compares as if `+0.0` and `-0.0` were equal
                // (`max(+0.0, -0.0)` gave `-0.0` where the `-0.0` was a zero it had computed;
                // see `tests/differential.rs`). Fenced, the compares are of other values.
                let fenced_a = self.call("llvm.arithmetic.fence.f64", &[a.into()]);
                let fenced_b = self.call("llvm.arithmetic.fence.f64", &[b.into()]);
                let b_beats = self.fcmp(beats, fenced_b, fenced_a);
                let a_nan = self.fcmp(FloatPredicate::UNO, fenced_a, fenced_a);
                let pick = self.select(b_beats, b, a);
                self.select(a_nan, b, pick)
            }
            _ => unreachable!("{op:?} is lowered as a condition"),
        }
    }

    fn func(&mut self, f: Func, a: FloatValue<'ctx>) -> FloatValue<'ctx> {
        let intrinsic = match f {
            Func::Sqrt => "llvm.sqrt.f64",
            Func::Abs => "llvm.fabs.f64",
            Func::Floor => "llvm.floor.f64",
            Func::Ceil => "llvm.ceil.f64",
            Func::Exp => return self.exp_inline(a, false),
            Func::Expm1 => return self.exp_inline(a, true),
            Func::Sign => {
                // (a > 0) - (a < 0), as 1.0/0.0 values: 1, -1, or +0.0 for zeros and NaN, as
                // the interpreter.
                let zero = self.fconst(0.0);
                let pos = self.fcmp(FloatPredicate::OGT, a, zero);
                let neg = self.fcmp(FloatPredicate::OLT, a, zero);
                let f64_type = self.cx.f64_type();
                let pos = ok(self.b.build_unsigned_int_to_float(pos, f64_type, ""));
                let neg = ok(self.b.build_unsigned_int_to_float(neg, f64_type, ""));
                return ok(self.b.build_float_sub(pos, neg, ""));
            }
            _ => {
                let name = helper_of(
                    &Expr::Call(f, Box::new(Expr::Const(0.0))),
                    &Batched::default(),
                )
                .expect("every other function is a runtime helper");
                return self.call(name, &[a.into()]);
            }
        };
        let value = self.call(intrinsic, &[a.into()]);
        if f == Func::Sqrt {
            // LLVM 14 assumes `sqrt` never returns a negative number, but `sqrt(-0.0)` is
            // -0.0, and it then folds `1 / sqrt(-0.0) < 0` (-inf < 0) to false
            // (`nested_else_store_under_a_true_condition_keeps_negative_zero`). Multiplying by
            // a 1.0 it cannot see through is exact for every value, -0.0 and NaN included,
            // and hides the sign from it.
            let one = self.opaque_constant("snnc_one", 1.0);
            return ok(self.b.build_float_mul(value, one, ""));
        }
        value
    }

    /// Calls `snnc_random_block` for the batched draw `e` over `start..end` with buffer `slot`,
    /// and returns the block of values. The helper writes memory (the thread's buffer), so it
    /// is declared without `readnone`; its result points to memory nothing else in the kernel
    /// reaches, so it is `noalias`, as `malloc`'s is.
    fn random_block(
        &mut self,
        e: &Expr,
        start: IntValue<'ctx>,
        end: IntValue<'ctx>,
        slot: u32,
    ) -> PointerValue<'ctx> {
        let Expr::Random { kind, draw, arg } = e else {
            unreachable!("only draws are batched")
        };
        let arg = if *kind == Random::Poisson {
            self.expr(arg)
        } else {
            self.fconst(0.0)
        };
        let i64t = self.cx.i64_type();
        let f64p = self.f64t.ptr_type(AddressSpace::default());
        let name = "snnc_random_block";
        let function = self.module.get_function(name).unwrap_or_else(|| {
            let params: Vec<BasicMetadataTypeEnum> = vec![
                i64t.into(),
                i64t.into(),
                i64t.into(),
                i64t.into(),
                self.i32t.into(),
                self.i32t.into(),
                self.f64t.into(),
                self.i32t.into(),
            ];
            let f = self
                .module
                .add_function(name, f64p.fn_type(&params, false), None);
            for attr in ["nounwind", "willreturn"] {
                f.add_attribute(
                    AttributeLoc::Function,
                    self.cx
                        .create_enum_attribute(Attribute::get_named_enum_kind_id(attr), 0),
                );
            }
            f.add_attribute(
                AttributeLoc::Return,
                self.cx
                    .create_enum_attribute(Attribute::get_named_enum_kind_id("noalias"), 0),
            );
            f
        });
        let args: [BasicMetadataValueEnum; 8] = [
            self.stream_key.into(),
            start.into(),
            end.into(),
            self.step.into(),
            self.i32t.const_int(u64::from(*draw), false).into(),
            self.i32t
                .const_int(u64::from(random_kind(*kind)), false)
                .into(),
            arg.into(),
            self.i32t.const_int(u64::from(slot), false).into(),
        ];
        ok(self.b.build_call(function, &args, "draws"))
            .try_as_basic_value()
            .unwrap_basic()
            .into_pointer_value()
    }

    /// `exp(x)`, or `expm1(x)` when `minus_one`, inline: the operations of
    /// `snnc_runtime::math::{exp, expm1}` in the same order (see `codegen::cranelift`), which
    /// the loop vectoriser can widen, unlike a call.
    fn exp_inline(&mut self, x: FloatValue<'ctx>, minus_one: bool) -> FloatValue<'ctx> {
        use snnc_runtime::math::{
            CLAMP_HIGH, CLAMP_LOW, EXPM1_LARGE_K, EXPM1_SERIES, LN2_HI, LN2_LO, LOG2_E,
            ROUNDING_SHIFTER,
        };
        let add = |g: &Self, a, b| ok(g.b.build_float_add(a, b, ""));
        let sub = |g: &Self, a, b| ok(g.b.build_float_sub(a, b, ""));
        let mul = |g: &Self, a, b| ok(g.b.build_float_mul(a, b, ""));
        let (low, high) = (self.fconst(CLAMP_LOW), self.fconst(CLAMP_HIGH));
        let below = self.fcmp(FloatPredicate::OLT, x, low);
        let above = self.fcmp(FloatPredicate::OGT, x, high);
        let clamped = self.select(above, high, x);
        let clamped = self.select(below, low, clamped);

        let shifter = self.fconst(ROUNDING_SHIFTER);
        let sum = add(self, mul(self, clamped, self.fconst(LOG2_E)), shifter);
        let k = sub(self, sum, shifter);
        let r = sub(self, clamped, mul(self, k, self.fconst(LN2_HI)));
        let r = sub(self, r, mul(self, k, self.fconst(LN2_LO)));
        // `math::series`: Estrin's scheme.
        let r2 = mul(self, r, r);
        let r4 = mul(self, r2, r2);
        let r8 = mul(self, r4, r4);
        let pairs: Vec<_> = EXPM1_SERIES
            .chunks(2)
            .map(|c| add(self, self.fconst(c[0]), mul(self, self.fconst(c[1]), r)))
            .collect();
        let quads: Vec<_> = pairs
            .chunks(2)
            .map(|p| add(self, p[0], mul(self, p[1], r2)))
            .collect();
        let low = add(self, quads[0], mul(self, quads[1], r4));
        let q = add(self, low, mul(self, quads[2], r8));
        let expm1_r = add(self, r, mul(self, r2, q));

        let half_sum = add(self, mul(self, k, self.fconst(0.5)), shifter);
        let half = sub(self, half_sum, shifter);
        let rest_sum = add(self, sub(self, k, half), shifter);
        let half_scale = self.power_of_two(half_sum);
        let rest_scale = self.power_of_two(rest_sum);

        let one = self.fconst(1.0);
        let mantissa = add(self, one, expm1_r);
        let exp = mul(self, mul(self, mantissa, half_scale), rest_scale);
        if !minus_one {
            return exp;
        }
        let large = sub(self, exp, one);
        let scale = mul(self, half_scale, rest_scale);
        let moderate = add(self, sub(self, scale, one), mul(self, scale, expm1_r));
        let is_large = self.fcmp(FloatPredicate::OGT, k, self.fconst(EXPM1_LARGE_K));
        let scaled = self.select(is_large, large, moderate);
        // `x == 0 ? x : ...` compares a fenced `x`: LLVM 14 would otherwise put the constant
        // in place of `x` in the select and lose the sign of -0.0 (see `binary`'s min/max).
        let fenced_x = self.call("llvm.arithmetic.fence.f64", &[x.into()]);
        let x_is_zero = self.fcmp(FloatPredicate::OEQ, fenced_x, self.fconst(0.0));
        let small = self.select(x_is_zero, x, expm1_r);
        let k_is_zero = self.fcmp(FloatPredicate::OEQ, k, self.fconst(0.0));
        self.select(k_is_zero, small, scaled)
    }

    /// `snnc_runtime::math::power_of_two`: `2^j` from the bits of `j + 1.5 * 2^52`.
    fn power_of_two(&mut self, rounding_sum: FloatValue<'ctx>) -> FloatValue<'ctx> {
        use snnc_runtime::math::EXPONENT_BIAS;
        let i64t = self.cx.i64_type();
        let bits = ok(self.b.build_bit_cast(rounding_sum, i64t, "")).into_int_value();
        let bias = i64t.const_int(EXPONENT_BIAS as u64, false);
        let biased = ok(self.b.build_int_add(bits, bias, ""));
        let exponent = ok(self
            .b
            .build_left_shift(biased, i64t.const_int(52, false), ""));
        ok(self.b.build_bit_cast(exponent, self.f64t, "")).into_float_value()
    }

    /// Calls a runtime helper or an intrinsic, declaring it at its first use. Helpers are
    /// pure functions of their arguments, and say so, so LLVM may hoist or merge calls.
    fn call(&mut self, name: &str, args: &[BasicMetadataValueEnum<'ctx>]) -> FloatValue<'ctx> {
        let function = self.module.get_function(name).unwrap_or_else(|| {
            let params: Vec<BasicMetadataTypeEnum> =
                args.iter().map(|a| metadata_type(*a)).collect();
            let f = self
                .module
                .add_function(name, self.f64t.fn_type(&params, false), None);
            for attr in ["nounwind", "readnone", "willreturn"] {
                f.add_attribute(
                    AttributeLoc::Function,
                    self.cx
                        .create_enum_attribute(Attribute::get_named_enum_kind_id(attr), 0),
                );
            }
            f
        });
        ok(self.b.build_call(function, args, ""))
            .try_as_basic_value()
            .unwrap_basic()
            .into_float_value()
    }
}

fn metadata_type(value: BasicMetadataValueEnum) -> BasicMetadataTypeEnum {
    match value {
        BasicMetadataValueEnum::FloatValue(v) => v.get_type().into(),
        BasicMetadataValueEnum::IntValue(v) => v.get_type().into(),
        _ => unreachable!("helpers take integers and floats"),
    }
}

/// The predicate of a comparison operator: ordered, except `!=`, as Rust's operators.
fn comparison(op: BinOp) -> Option<FloatPredicate> {
    Some(match op {
        BinOp::Lt => FloatPredicate::OLT,
        BinOp::Le => FloatPredicate::OLE,
        BinOp::Gt => FloatPredicate::OGT,
        BinOp::Ge => FloatPredicate::OGE,
        BinOp::Eq => FloatPredicate::OEQ,
        BinOp::Ne => FloatPredicate::UNE,
        _ => return None,
    })
}
