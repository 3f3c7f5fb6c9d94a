//! IR kernels to Cranelift functions, generic over the [`Module`] that receives them.
//!
//! [`define_kernel`] emits one function `extern "C" fn(*mut KernelContext)` per kernel: it
//! loads the context's fields once, then runs a single fused loop over the elements
//! `start..end`. Per element it evaluates the body with IR locals as Cranelift [`Variable`]s,
//! loads each per-element array value lazily (at its first read, then keeps it in a variable,
//! which a store also updates), writes stores straight through to memory, and appends the
//! element to the spike buffer at the end if any `Spike` ran. The only calls are to the
//! runtime's `extern "C"` math helpers and `snnc_random`; the JIT registers their addresses
//! ([`runtime_symbols`]), an object file leaves them as imports for the linker.
//!
//! Every operation reproduces `ir::interp` bit for bit (NaN payloads aside):
//!
//! * `+ - * /`, negation, `abs`, `sqrt`, `floor`, `ceil` are Cranelift instructions, which are
//!   IEEE-exact like Rust's.
//! * Comparisons use ordered condition codes except `!=` (unordered-or-not-equal), as Rust's
//!   operators do, and produce 1.0 or 0.0; `and`, `or`, `if` and `select` test `!= 0.0`, so NaN
//!   counts as true; `not` tests `== 0.0`.
//! * `min`/`max` are a compare and two selects, not `fmin`/`fmax` (which propagate NaN): a NaN
//!   operand yields the other operand, and equal operands (`+0.0` and `-0.0`) yield the first,
//!   which is what Rust's `f64::min`/`max` do on x86-64.
//! * `exp` and `expm1` are inlined as the fixed sequence of `snnc_runtime::math`, which the
//!   interpreter calls, so they vectorise with the rest of the loop.
//! * `%`, `^`, `log`, `log10`, `sin`, `cos`, `tan`, `tanh` call the runtime's helpers, which
//!   are the Rust functions the interpreter uses.
//! * Random draws call `snnc_random` with the element as `u32`, like the interpreter; a
//!   non-Poisson draw ignores its argument, so the argument is not evaluated. A draw whose
//!   argument is the same for every element (all but Poisson draws of a per-element mean),
//!   and that every element evaluates (outside `if` and `while` bodies: `codegen::batched_draws`),
//!   is instead drawn for the whole range before the loop, one
//!   `snnc_random_block` call per occurrence, each with its own buffer slot, and loaded in the
//!   loop like an array; the runtime guarantees those are `snnc_random`'s values bit for bit.
//!   Such a load is not a call: a `select` over it stays branch-free and a kernel with it keeps
//!   the two-lane loop. An element that does not reach the draw wastes its value, which costs
//!   less than a call per element that does (measured: about 6 ns against 40 ns per Poisson
//!   draw).
//! * Subexpressions that are the same for every element (built from constants and `t` only)
//!   are computed once before the loop; constant ones are folded at compile time with the
//!   interpreter's own `binary` and `call`, so folding cannot change a result. Conditions
//!   (`if`, `select`, `and`, `or`, `not`) use comparison results directly instead of
//!   materialising 1.0/0.0 and testing it.
//! * IR locals start at 0.0 once per invocation, not per element, as in the interpreter (a
//!   well-formed kernel assigns before reading, and then this costs nothing).
//! * The scalar loop is rotated, and a side of an `if` that spikes is a cold block: the path
//!   of an element that does not spike falls through with one taken branch, the loop's. A
//!   kernel whose only `spike` is outside `while` loops appends the element where `spike`
//!   runs ([`ScalarSpike::InPlace`]); one that may run `spike` twice for an element sets a
//!   flag that the latch tests, so the element is recorded once. (`PoissonProcess`, which
//!   takes this loop for the `log` in its reset: 1.5 -> 0.9-1.2 ns per element; Song STDP
//!   over 100 s, median of 6 interleaved runs: 2.01 -> 1.40 s.)
//!
//! Arrays must not overlap (the interpreter's `&mut` slices guarantee it): a value loaded for
//! one variable is not reloaded after a store to another.
//!
//! Where the target has 128-bit vectors (x86-64, aarch64) and the kernel allows it
//! ([`vectorizable`]), a two-lane (`f64x2`) loop runs before the scalar one, four elements per
//! iteration and then two; `if` is if-converted under lane masks and stores are deferred to
//! the end of the element pair (see `Gen::pending`). What keeps its instructions few:
//!
//! * Constants and hoisted values are read from the lane table ([`LaneTable`]), a stack slot
//!   filled before the loop, at their use; the x64 backend folds such a read into the
//!   instruction as a memory operand. Held in registers, a dozen of them and the loop's
//!   temporaries outgrow the 16 vector registers and get spilled on every iteration.
//! * A local that is only ever assigned a condition stays a lane mask ([`mask_locals`]) and is
//!   made 1.0/0.0 only where it is read as a number.
//! * `select` and masked assignments are blends, one instruction per comparison in the mask
//!   (`Gen::blend`); negation and `abs` are one xor/and with a sign mask from the table.
//! * One test per pair decides whether anything else is needed: masked stores (written only
//!   when one of their lanes is set) and spikes are handled on a cold path.
//! * The loops are rotated: the latch tests for the next iteration.
//!
//! A variable stored as `f32` ([`crate::ir::VarInfo::storage`]) is loaded as `f32` and widened
//! (`fpromote`, exact), and stored by narrowing (`fdemote`, round to nearest even, like the
//! interpreter's `as f32`); the cache then holds the narrowed value widened again, so every later
//! read sees what memory holds. In the two-lane loop two `f32` lanes are 8 bytes: loaded as one
//! `f64` (bits only), moved into a vector and widened with `fvpromote_low`; stored with
//! `fvdemote`, whose low 8 bytes are written.

use super::{is_invariant, Batched};
use crate::ir::interp::{self, random_kind};
use crate::ir::{Access, BinOp, Expr, Func, Kernel, Precision, Random, Stmt, UnOp, GATHERS};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{
    types, AbiParam, Block, BlockArg, Endianness, FuncRef, InstBuilder, MemFlagsData, Opcode,
    Signature, StackSlot, StackSlotData, StackSlotKind, Type, UserFuncName, Value,
};
use cranelift_codegen::isa::{OwnedTargetIsa, TargetFrontendConfig};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};
use cranelift_module::{FuncId, Linkage, Module};
use snnc_runtime::abi::{self, KernelContext};
use std::collections::HashMap;
use std::mem::offset_of;

/// The runtime functions compiled kernels call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Helper {
    Log,
    Log10,
    Sin,
    Cos,
    Tan,
    Tanh,
    Pow,
    Fmod,
    Random,
    RandomBlock,
}

const HELPERS: [Helper; 10] = [
    Helper::Log,
    Helper::Log10,
    Helper::Sin,
    Helper::Cos,
    Helper::Tan,
    Helper::Tanh,
    Helper::Pow,
    Helper::Fmod,
    Helper::Random,
    Helper::RandomBlock,
];

impl Helper {
    fn name(self) -> &'static str {
        match self {
            Helper::Log => "snnc_log",
            Helper::Log10 => "snnc_log10",
            Helper::Sin => "snnc_sin",
            Helper::Cos => "snnc_cos",
            Helper::Tan => "snnc_tan",
            Helper::Tanh => "snnc_tanh",
            Helper::Pow => "snnc_pow",
            Helper::Fmod => "snnc_fmod",
            Helper::Random => "snnc_random",
            Helper::RandomBlock => "snnc_random_block",
        }
    }

    fn address(self) -> *const u8 {
        let unary = |f: extern "C" fn(f64) -> f64| f as *const u8;
        match self {
            Helper::Log => unary(abi::snnc_log),
            Helper::Log10 => unary(abi::snnc_log10),
            Helper::Sin => unary(abi::snnc_sin),
            Helper::Cos => unary(abi::snnc_cos),
            Helper::Tan => unary(abi::snnc_tan),
            Helper::Tanh => unary(abi::snnc_tanh),
            Helper::Pow => abi::snnc_pow as extern "C" fn(f64, f64) -> f64 as *const u8,
            Helper::Fmod => abi::snnc_fmod as extern "C" fn(f64, f64) -> f64 as *const u8,
            Helper::Random => {
                abi::snnc_random as extern "C" fn(u64, u32, u64, u32, u32, f64) -> f64 as *const u8
            }
            Helper::RandomBlock => {
                abi::snnc_random_block
                    as extern "C" fn(u64, u64, u64, u64, u32, u32, f64, u32) -> *const f64
                    as *const u8
            }
        }
    }

    fn signature<M: Module>(self, module: &M) -> Signature {
        let mut sig = module.make_signature();
        let params: &[Type] = match self {
            Helper::Pow | Helper::Fmod => &[types::F64, types::F64],
            // (stream_key, element, step, site, kind, arg)
            Helper::Random => &[
                types::I64,
                types::I32,
                types::I64,
                types::I32,
                types::I32,
                types::F64,
            ],
            // (stream_key, start, end, step, site, kind, arg, slot) -> pointer
            Helper::RandomBlock => &[
                types::I64,
                types::I64,
                types::I64,
                types::I64,
                types::I32,
                types::I32,
                types::F64,
                types::I32,
            ],
            _ => &[types::F64],
        };
        sig.params.extend(params.iter().map(|&t| AbiParam::new(t)));
        let returns = if self == Helper::RandomBlock {
            types::I64
        } else {
            types::F64
        };
        sig.returns.push(AbiParam::new(returns));
        sig
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The symbols compiled kernels import, with their addresses in this process, for a JIT to
/// resolve them.
pub fn runtime_symbols() -> Vec<(&'static str, *const u8)> {
    HELPERS.iter().map(|h| (h.name(), h.address())).collect()
}

/// The host's instruction set with `opt_level=speed`. A JIT needs `pic = false`; object files
/// for shared libraries want `pic = true`.
pub fn host_isa(pic: bool) -> Result<OwnedTargetIsa, String> {
    let mut flags = settings::builder();
    let set = |flags: &mut settings::Builder, name: &str, value: &str| {
        flags
            .set(name, value)
            .map_err(|e| format!("cranelift flag {name}={value}: {e}"))
    };
    set(&mut flags, "opt_level", "speed")?;
    set(&mut flags, "is_pic", if pic { "true" } else { "false" })?;
    // The JIT may place code far from the runtime's helpers.
    set(&mut flags, "use_colocated_libcalls", "false")?;
    set(
        &mut flags,
        "enable_verifier",
        if cfg!(debug_assertions) {
            "true"
        } else {
            "false"
        },
    )?;
    let isa = cranelift_native::builder().map_err(|e| format!("unsupported host: {e}"))?;
    isa.finish(settings::Flags::new(flags))
        .map_err(|e| format!("cranelift: {e}"))
}

/// Declares and defines `kernel` in `module` as an exported function `name` with the
/// signature `extern "C" fn(*mut KernelContext)`.
pub fn define_kernel<M: Module>(
    module: &mut M,
    kernel: &Kernel,
    name: &str,
) -> Result<FuncId, String> {
    validate(kernel)?;
    let ptr = module.target_config().pointer_type();
    if ptr != types::I64 {
        return Err(format!(
            "kernel `{}`: only 64-bit targets are supported",
            kernel.name
        ));
    }

    let mut sig = module.make_signature();
    sig.params.push(AbiParam::new(ptr));
    let id = module
        .declare_function(name, Linkage::Export, &sig)
        .map_err(|e| format!("kernel `{}`: {e}", kernel.name))?;

    let mut ctx = module.make_context();
    ctx.func.signature = sig;
    ctx.func.name = UserFuncName::user(0, id.as_u32());

    // Import only the helpers the kernel calls, so object files name no others.
    let batched = Batched::of(&kernel.body);
    let used = used_helpers(kernel, &batched);
    let mut helpers = [None; HELPERS.len()];
    for h in HELPERS {
        if used[h.index()] {
            let hid = module
                .declare_function(h.name(), Linkage::Import, &h.signature(module))
                .map_err(|e| format!("kernel `{}`: {e}", kernel.name))?;
            helpers[h.index()] = Some(module.declare_func_in_func(hid, &mut ctx.func));
        }
    }

    // Two-lane vectors need SIMD registers: x86_64 (SSE2) and aarch64 (NEON) always have
    // them; riscv64gc has none (its V extension is optional), so its kernels stay scalar.
    let simd = matches!(
        module.isa().triple().architecture,
        target_lexicon::Architecture::X86_64 | target_lexicon::Architecture::Aarch64(_)
    );
    let mut fctx = FunctionBuilderContext::new();
    let builder = FunctionBuilder::new(&mut ctx.func, &mut fctx);
    // The lane table's entries are for the tests.
    let _ = emit(builder, kernel, helpers, module.target_config(), simd);

    module
        .define_function(id, &mut ctx)
        .map_err(|e| format!("kernel `{}`: cranelift: {e:?}", kernel.name))?;
    module.clear_context(&mut ctx);
    Ok(id)
}

/// Rejects out-of-range variable and local indices, which the interpreter would panic on.
pub(super) fn validate(kernel: &Kernel) -> Result<(), String> {
    if let Some(v) = kernel
        .vars
        .iter()
        .find(|v| matches!(v.access, Access::Gather(g) if g as usize >= GATHERS))
    {
        return Err(format!(
            "kernel `{}`: variable `{}` gathers through an index array that does not exist",
            kernel.name, v.name
        ));
    }
    let n_vars = kernel.vars.len();
    let n_locals = kernel.n_locals as usize;
    let mut err = None;
    let mut check_expr = |e: &Expr| {
        e.visit(&mut |e| match e {
            Expr::Var(v) if *v as usize >= n_vars => {
                err = Some(format!("variable {v} out of range"))
            }
            Expr::Local(l) if *l as usize >= n_locals => {
                err = Some(format!("local {l} out of range"))
            }
            _ => {}
        })
    };
    let mut bad_target = None;
    walk(&kernel.body, &mut |s| match s {
        Stmt::Let(l, e) => {
            if *l as usize >= n_locals {
                bad_target = Some(format!("local {l} out of range"));
            }
            check_expr(e);
        }
        Stmt::Store(v, e) => {
            if *v as usize >= n_vars {
                bad_target = Some(format!("variable {v} out of range"));
            }
            check_expr(e);
        }
        Stmt::If(c, _, _) | Stmt::While { cond: c, .. } => check_expr(c),
        Stmt::Spike => {}
    });
    match err.or(bad_target) {
        Some(msg) => Err(format!("kernel `{}`: {msg}", kernel.name)),
        None => Ok(()),
    }
}

/// Calls `f` on every statement, nested ones included.
fn walk<'k>(stmts: &'k [Stmt], f: &mut dyn FnMut(&'k Stmt)) {
    for s in stmts {
        f(s);
        match s {
            Stmt::If(_, a, b) => {
                walk(a, f);
                walk(b, f);
            }
            Stmt::While { body, .. } => walk(body, f),
            _ => {}
        }
    }
}

/// Calls `f` on every expression of the statements.
fn walk_exprs(stmts: &[Stmt], f: &mut dyn FnMut(&Expr)) {
    walk(stmts, &mut |s| match s {
        Stmt::Let(_, e) | Stmt::Store(_, e) | Stmt::If(e, _, _) | Stmt::While { cond: e, .. } => {
            e.visit(f)
        }
        Stmt::Spike => {}
    });
}

/// The runtime helper an expression calls, if any; `batched` holds the kernel's batched draws.
fn helper_of(e: &Expr, batched: &Batched) -> Option<Helper> {
    Some(match e {
        Expr::Binary(BinOp::Rem, ..) => Helper::Fmod,
        Expr::Binary(BinOp::Pow, ..) => Helper::Pow,
        Expr::Call(Func::Log, _) => Helper::Log,
        Expr::Call(Func::Log10, _) => Helper::Log10,
        Expr::Call(Func::Sin, _) => Helper::Sin,
        Expr::Call(Func::Cos, _) => Helper::Cos,
        Expr::Call(Func::Tan, _) => Helper::Tan,
        Expr::Call(Func::Tanh, _) => Helper::Tanh,
        e @ Expr::Random { .. } if batched.contains(e) => Helper::RandomBlock,
        Expr::Random { .. } => Helper::Random,
        _ => return None,
    })
}

fn used_helpers(kernel: &Kernel, batched: &Batched) -> [bool; HELPERS.len()] {
    let mut used = [false; HELPERS.len()];
    walk_exprs(&kernel.body, &mut |e| {
        if let Some(h) = helper_of(e, batched) {
            used[h.index()] = true;
        }
    });
    used
}

/// Whether evaluating `e` calls out of the kernel (then `select` branches instead of
/// evaluating both sides). A batched draw is a load in the loop, not a call.
fn calls_out(e: &Expr, batched: &Batched) -> bool {
    let mut found = false;
    e.visit(&mut |e| found |= helper_of(e, batched).is_some_and(|h| h != Helper::RandomBlock));
    found
}

/// The largest invariant subexpressions of `e` that are not leaves.
fn maximal_invariants<'k>(e: &'k Expr, out: &mut Vec<&'k Expr>) {
    if matches!(e, Expr::Const(_) | Expr::Time) {
        return;
    }
    if is_invariant(e) {
        out.push(e);
        return;
    }
    match e {
        Expr::Const(_) | Expr::Var(_) | Expr::Local(_) | Expr::Time | Expr::Index => {}
        Expr::Unary(_, a) | Expr::Call(_, a) => maximal_invariants(a, out),
        Expr::Random { arg, .. } => maximal_invariants(arg, out),
        Expr::Binary(_, a, b) => {
            maximal_invariants(a, out);
            maximal_invariants(b, out);
        }
        Expr::Select(c, a, b) => {
            maximal_invariants(c, out);
            maximal_invariants(a, out);
            maximal_invariants(b, out);
        }
    }
}

/// The value of a constant expression, computed exactly as the interpreter computes it.
fn fold(e: &Expr) -> Option<f64> {
    Some(match e {
        Expr::Const(c) => *c,
        Expr::Unary(UnOp::Neg, a) => -fold(a)?,
        Expr::Unary(UnOp::Not, a) => {
            if fold(a)? == 0.0 {
                1.0
            } else {
                0.0
            }
        }
        Expr::Binary(op, a, b) => interp::binary(*op, fold(a)?, fold(b)?),
        Expr::Call(f, a) => interp::call(*f, fold(a)?),
        Expr::Select(c, a, b) => {
            let (c, a, b) = (fold(c)?, fold(a)?, fold(b)?);
            if c != 0.0 {
                a
            } else {
                b
            }
        }
        Expr::Var(_) | Expr::Local(_) | Expr::Time | Expr::Index | Expr::Random { .. } => {
            return None
        }
    })
}

/// The condition code of a comparison operator: ordered, except `!=`, as Rust's operators.
fn comparison(op: BinOp) -> Option<FloatCC> {
    Some(match op {
        BinOp::Lt => FloatCC::LessThan,
        BinOp::Le => FloatCC::LessThanOrEqual,
        BinOp::Gt => FloatCC::GreaterThan,
        BinOp::Ge => FloatCC::GreaterThanOrEqual,
        BinOp::Eq => FloatCC::Equal,
        BinOp::Ne => FloatCC::NotEqual,
        _ => return None,
    })
}

/// Operators whose result is 1.0 or 0.0.
fn is_logical(op: BinOp) -> bool {
    comparison(op).is_some() || matches!(op, BinOp::And | BinOp::Or)
}

fn trusted() -> MemFlagsData {
    MemFlagsData::trusted()
}

/// Loads a context field.
fn field(b: &mut FunctionBuilder, ty: Type, ctx: Value, offset: usize) -> Value {
    b.ins().load(ty, trusted(), ctx, offset as i32)
}

struct Gen<'f> {
    b: FunctionBuilder<'f>,
    helpers: [Option<FuncRef>; HELPERS.len()],
    t: Value,
    step: Value,
    stream_key: Value,
    /// Base pointer of each array the kernel touches (loaded once, before the loop).
    bases: Vec<Option<Value>>,
    /// How each variable is addressed, and for gathered ones, the index arrays (loaded once)
    /// and the current element's byte offset through each (computed once per element).
    access: Vec<Access>,
    gather_bases: [Option<Value>; GATHERS],
    gather_offsets: [Option<Value>; GATHERS],
    /// The gathered element's byte offset into `f32` arrays, when the kernel has some.
    gather_offsets_f32: [Option<Value>; GATHERS],
    /// Whether each variable is stored as `f32`.
    single: Vec<bool>,
    /// The current element: as an index, its byte offset into f64 arrays, as u32, as f64.
    elem_offset: Value,
    /// The current element's byte offset into `f32` arrays.
    elem_offset_f32: Value,
    elem_u32: Value,
    elem_f64: Value,
    /// The element's value of each array, once loaded or stored in this element.
    var_cache: Vec<Variable>,
    /// Which `var_cache` entries are defined on every path to the current point.
    cached: Vec<bool>,
    locals: Vec<Variable>,
    /// How the scalar loop records a spike, when the kernel can spike.
    spiked: Option<ScalarSpike>,
    /// Values of loop-invariant subexpressions, computed before the loop (keyed by address).
    hoisted: HashMap<*const Expr, Value>,
    /// The kernel's batched draws (`codegen::batched_draws`), which are loads, not calls.
    batched: Batched,
    /// For each batched draw (keyed by address), the address its value for
    /// element 0 would have: the block `snnc_random_block` returned, minus `start` elements,
    /// so that the element's byte offset addresses it as it addresses an array.
    draw_bases: HashMap<*const Expr, Value>,
    /// Whether code is being emitted for the two-lane (`f64x2`) loop; see [`vectorizable`].
    vector: bool,
    /// Two-lane counterparts of `var_cache` and `locals`. A local whose every assignment is a
    /// condition (see [`mask_locals`]) lives in `mask_locals_v` as an `i64x2` lane mask
    /// instead, and becomes 1.0/0.0 only where it is read as a number.
    var_cache_v: Vec<Variable>,
    locals_v: Vec<Variable>,
    mask_locals_v: Vec<Option<Variable>>,
    /// What each hoisted subexpression puts in both lanes (an entry of `lane_table`).
    hoisted_lanes: HashMap<*const Expr, Lanes>,
    /// The two-lane loop's constants and hoisted values (see [`LaneTable`]).
    lane_table: LaneTable,
    /// In the two-lane loop: the lanes (an `i64x2` mask) for which the statements being
    /// emitted run, or `None` for both; `If` is if-converted under it.
    mask: Option<Value>,
    /// In the two-lane loop: the lanes that have spiked so far in the pair (`i64x2` mask), or
    /// `None` while no `spike` has run (straight-line code: `if` is if-converted).
    spiked_v: Option<Value>,
    /// In the two-lane loop, per array: stores are deferred to the end of the element pair
    /// (arrays do not overlap, and later reads use the cached value, so only the last value
    /// need reach memory). `Some(None)`: stored for both lanes; `Some(Some(mask))`: stored
    /// only under these lanes, so memory is written only when one of them is set.
    pending: Vec<Option<Option<Value>>>,
}

/// How the scalar loop records that the current element spiked.
#[derive(Clone, Copy)]
enum ScalarSpike {
    /// `spike` sets this flag (I8), and the latch appends the element once: for kernels in
    /// which `spike` may run more than once for an element.
    Flag(Variable),
    /// `spike` appends the element to the spike list where it runs, so the path of an element
    /// that does not spike carries no flag to test (`spike_runs_once`).
    InPlace { spikes: Value, count: Variable },
}

/// Whether `spike` can run at most once per element: the body has one `spike` statement, and
/// it is not in a `while` loop.
fn spike_runs_once(body: &[Stmt]) -> bool {
    fn count(stmts: &[Stmt], in_loop: bool, n: &mut u32) {
        for s in stmts {
            match s {
                Stmt::Spike => *n += if in_loop { 2 } else { 1 },
                Stmt::If(_, a, b) => {
                    count(a, in_loop, n);
                    count(b, in_loop, n);
                }
                Stmt::While { body, .. } => count(body, true, n),
                Stmt::Let(..) | Stmt::Store(..) => {}
            }
        }
    }
    let mut n = 0;
    count(body, false, &mut n);
    n == 1
}

/// Whether the statements contain `spike` (nested ones included).
fn contains_spike(stmts: &[Stmt]) -> bool {
    let mut found = false;
    walk(stmts, &mut |s| found |= matches!(s, Stmt::Spike));
    found
}

/// Emits the kernel's function; returns what its two-lane loop reads from the lane table (see
/// [`LaneTable`]; empty without that loop), which the tests inspect.
fn emit(
    mut b: FunctionBuilder,
    kernel: &Kernel,
    helpers: [Option<FuncRef>; HELPERS.len()],
    config: TargetFrontendConfig,
    simd: bool,
) -> Vec<Lanes> {
    let n_vars = kernel.vars.len();
    let mut touched = vec![false; n_vars];
    walk(&kernel.body, &mut |s| {
        if let Stmt::Store(v, _) = s {
            touched[*v as usize] = true;
        }
    });
    walk_exprs(&kernel.body, &mut |e| {
        if let Expr::Var(v) = e {
            touched[*v as usize] = true;
        }
    });
    let can_spike = contains_spike(&kernel.body);

    let entry = b.create_block();
    let header = b.create_block();
    let body = b.create_block();
    let exit = b.create_block();
    b.append_block_params_for_function_params(entry);

    // Entry: read the context once.
    b.switch_to_block(entry);
    let ctx = b.block_params(entry)[0];
    let i64t = types::I64;
    let arrays = field(&mut b, i64t, ctx, offset_of!(KernelContext, arrays));
    let start = field(&mut b, i64t, ctx, offset_of!(KernelContext, start));
    let end = field(&mut b, i64t, ctx, offset_of!(KernelContext, end));
    let step = field(&mut b, i64t, ctx, offset_of!(KernelContext, step));
    let t = field(&mut b, types::F64, ctx, offset_of!(KernelContext, t));
    let stream_key = field(&mut b, i64t, ctx, offset_of!(KernelContext, stream_key));
    let bases = touched
        .iter()
        .enumerate()
        .map(|(v, &used)| used.then(|| b.ins().load(i64t, trusted(), arrays, (v * 8) as i32)))
        .collect();
    let access: Vec<Access> = kernel.vars.iter().map(|v| v.access).collect();
    let mut gather_bases = [None; GATHERS];
    for (g, base) in gather_bases.iter_mut().enumerate() {
        if access.contains(&Access::Gather(g as u8)) {
            *base = Some(field(
                &mut b,
                i64t,
                ctx,
                offset_of!(KernelContext, gather) + g * 8,
            ));
        }
    }
    let element = b.declare_var(i64t);
    b.def_var(element, start);
    let zero = b.ins().f64const(0.0);
    let locals: Vec<Variable> = (0..kernel.n_locals)
        .map(|_| {
            let v = b.declare_var(types::F64);
            b.def_var(v, zero);
            v
        })
        .collect();
    let var_cache = (0..n_vars).map(|_| b.declare_var(types::F64)).collect();
    let vector = simd && vectorizable(kernel);
    // Locals of the two-lane loop are assigned before they are read (see `vectorizable`), so
    // their values at the loop's entry are never used; they are defined only for SSA.
    let zero_v = b.ins().splat(types::F64X2, zero);
    let zero_mask = b.ins().bitcast(
        types::I64X2,
        MemFlagsData::new().with_endianness(Endianness::Little),
        zero_v,
    );
    let as_mask = if vector {
        mask_locals(kernel)
    } else {
        Vec::new()
    };
    let locals_v: Vec<Variable> = (0..if vector { kernel.n_locals } else { 0 })
        .map(|_| {
            let v = b.declare_var(types::F64X2);
            b.def_var(v, zero_v);
            v
        })
        .collect();
    let mask_locals_v = as_mask
        .iter()
        .map(|&m| {
            m.then(|| {
                let v = b.declare_var(types::I64X2);
                b.def_var(v, zero_mask);
                v
            })
        })
        .collect();
    let var_cache_v = (0..if vector { n_vars } else { 0 })
        .map(|_| b.declare_var(types::F64X2))
        .collect();
    let spike_state = can_spike.then(|| {
        let spikes = field(&mut b, i64t, ctx, offset_of!(KernelContext, spikes));
        let n = b.declare_var(i64t);
        let n0 = field(&mut b, i64t, ctx, offset_of!(KernelContext, n_spikes));
        b.def_var(n, n0);
        let recording = if spike_runs_once(&kernel.body) {
            ScalarSpike::InPlace { spikes, count: n }
        } else {
            ScalarSpike::Flag(b.declare_var(types::I8))
        };
        (spikes, n, recording)
    });
    let mut g = Gen {
        b,
        helpers,
        t,
        step,
        stream_key,
        bases,
        access,
        gather_bases,
        gather_offsets: [None; GATHERS],
        gather_offsets_f32: [None; GATHERS],
        single: kernel
            .vars
            .iter()
            .map(|v| v.storage == Precision::F32)
            .collect(),
        // Placeholders until the body block defines them; invariant code never reads them.
        elem_offset: start,
        elem_offset_f32: start,
        elem_u32: start,
        elem_f64: t,
        var_cache,
        cached: vec![false; n_vars],
        locals,
        spiked: spike_state.map(|s| s.2),
        hoisted: HashMap::new(),
        batched: Batched::of(&kernel.body),
        draw_bases: HashMap::new(),
        vector: false,
        var_cache_v,
        locals_v,
        mask_locals_v,
        hoisted_lanes: HashMap::new(),
        lane_table: LaneTable::default(),
        mask: None,
        spiked_v: None,
        pending: vec![None; n_vars],
    };
    // Loop-invariant subexpressions: folded when constant, else computed once here.
    let mut invariant = Vec::new();
    walk(&kernel.body, &mut |s| match s {
        Stmt::Let(_, e) | Stmt::Store(_, e) | Stmt::If(e, _, _) | Stmt::While { cond: e, .. } => {
            maximal_invariants(e, &mut invariant)
        }
        Stmt::Spike => {}
    });
    for e in invariant {
        let (value, lanes) = match fold(e) {
            Some(c) => (g.b.ins().f64const(c), Lanes::Const(c.to_bits())),
            None => {
                let v = g.expr(e);
                (v, Lanes::Splat(v))
            }
        };
        g.hoisted.insert(e as *const Expr, value);
        g.hoisted_lanes.insert(e as *const Expr, lanes);
    }
    // Batched draws: one call per draw for the whole range, before the loop; each gets its own
    // buffer slot, as all are read in the same loop.
    for (slot, e) in super::batched_draws(&kernel.body).into_iter().enumerate() {
        let Expr::Random { kind, draw, arg } = e else {
            unreachable!("only draws are batched")
        };
        let arg = if *kind == Random::Poisson {
            g.expr(arg)
        } else {
            g.b.ins().f64const(0.0)
        };
        let site = g.b.ins().iconst(types::I32, i64::from(*draw));
        let kind = g.b.ins().iconst(types::I32, i64::from(random_kind(*kind)));
        let slot = g.b.ins().iconst(types::I32, slot as i64);
        let f = g.helpers[Helper::RandomBlock.index()].expect("used helpers are imported");
        let args = [stream_key, start, end, step, site, kind, arg, slot];
        let inst = g.b.ins().call(f, &args);
        let block = g.b.inst_results(inst)[0];
        let start_bytes = g.b.ins().ishl_imm_u(start, 3);
        let base = g.b.ins().isub(block, start_bytes);
        g.draw_bases.insert(e as *const Expr, base);
    }
    if vector {
        // The lane table is filled in its own block, emitted after the loop, once the loop has
        // named every entry it reads.
        let fill = g.b.create_block();
        let vheader = g.b.create_block();
        g.b.ins().jump(fill, &[]);
        emit_two_lane_loop(&mut g, kernel, vheader, header, element, end, spike_state);
        g.b.switch_to_block(fill);
        g.lane_table.fill(&mut g.b);
        g.b.ins().jump(vheader, &[]);
    } else {
        g.b.ins().jump(header, &[]);
    }

    // Header: while element < end.
    g.b.switch_to_block(header);
    let i = g.b.use_var(element);
    let more = g.b.ins().icmp(IntCC::UnsignedLessThan, i, end);
    g.b.ins().brif(more, body, &[], exit, &[]);

    // Body: one element.
    g.b.switch_to_block(body);
    g.vector = false;
    g.mask = None;
    g.cached.iter_mut().for_each(|c| *c = false);
    let i = g.b.use_var(element);
    g.elem_offset = g.b.ins().ishl_imm_u(i, 3);
    g.elem_offset_f32 = g.b.ins().ishl_imm_u(i, 2);
    for gi in 0..GATHERS {
        if let Some(base) = g.gather_bases[gi] {
            let at = g.b.ins().ishl_imm_u(i, 2);
            let addr = g.b.ins().iadd(base, at);
            let index = g.b.ins().load(types::I32, trusted(), addr, 0);
            let index = g.b.ins().uextend(types::I64, index);
            g.gather_offsets[gi] = Some(g.b.ins().ishl_imm_u(index, 3));
            g.gather_offsets_f32[gi] = Some(g.b.ins().ishl_imm_u(index, 2));
        }
    }
    g.elem_u32 = g.b.ins().ireduce(types::I32, i);
    // Signed conversion is cheaper and equals `as f64` on a usize below 2^63.
    g.elem_f64 = g.b.ins().fcvt_from_sint(types::F64, i);
    let elem_u32 = g.elem_u32;
    if let Some((_, _, ScalarSpike::Flag(spiked))) = spike_state {
        let no = g.b.ins().iconst(types::I8, 0);
        g.b.def_var(spiked, no);
    }
    g.stmts(&kernel.body);
    let lane_entries = std::mem::take(&mut g.lane_table.entries);
    let mut b = g.b;

    // Latch: record a flagged spike, then the next element. The loop is rotated: the latch
    // tests for the next element itself rather than jumping back to the header.
    let latch = b.create_block();
    if let Some((spikes, n, ScalarSpike::Flag(spiked))) = spike_state {
        let record = b.create_block();
        let s = b.use_var(spiked);
        b.ins().brif(s, record, &[], latch, &[]);
        b.switch_to_block(record);
        b.set_cold_block(record);
        append_spike(&mut b, spikes, n, elem_u32);
    }
    b.ins().jump(latch, &[]);
    b.switch_to_block(latch);
    let i = b.use_var(element);
    let next = b.ins().iadd_imm_u(i, 1);
    b.def_var(element, next);
    let more = b.ins().icmp(IntCC::UnsignedLessThan, next, end);
    b.ins().brif(more, body, &[], exit, &[]);

    // Exit: publish the spike count.
    b.switch_to_block(exit);
    if let Some((_, n, _)) = spike_state {
        let count = b.use_var(n);
        b.ins().store(
            trusted(),
            count,
            ctx,
            offset_of!(KernelContext, n_spikes) as i32,
        );
    }
    b.ins().return_(&[]);

    b.seal_all_blocks();
    b.finalize(config);
    lane_entries
}

/// Whether a kernel gets the two-lane (`f64x2`) loop besides the scalar one. Two lanes give
/// the same bits as two scalar iterations when no value flows from one element to the next
/// and every lane does exactly the scalar operations:
///
/// * every local is assigned before it is read on every path (locals otherwise carry a value
///   over from the previous element, as in the interpreter);
/// * no `if` body and no `select` arm calls a helper: the two-lane loop runs both sides of
///   every `if` and `select` under lane masks (if-conversion), which is exact because every
///   operation is pure, but would pay for calls the scalar code skips.
///
/// * no `while` loop: its trip count depends on the element's data, so the lanes would have
///   to run different numbers of iterations; such kernels take the scalar loop.
///
/// Arithmetic, comparisons and `min`/`max` (compare and select) are the same IEEE operations
/// lane by lane; helpers, random draws, `floor` and `ceil` are called or computed lane by
/// lane, lane 0 first; spikes are appended in element order.
fn vectorizable(kernel: &Kernel) -> bool {
    // Gathered and scalar variables alias across elements; only the scalar loop handles them.
    if kernel.vars.iter().any(|v| v.access != Access::Element) {
        return false;
    }
    fn reads_defined(e: &Expr, defined: &[bool]) -> bool {
        let mut ok = true;
        e.visit(&mut |e| {
            if let Expr::Local(l) = e {
                ok &= defined[*l as usize];
            }
        });
        ok
    }
    fn no_calls_in_arms(e: &Expr, batched: &Batched) -> bool {
        let mut ok = true;
        e.visit(&mut |e| {
            if let Expr::Select(_, a, b) = e {
                ok &= !calls_out(a, batched) && !calls_out(b, batched);
            }
        });
        ok
    }
    fn check(stmts: &[Stmt], defined: &mut [bool], nested: bool, batched: &Batched) -> bool {
        let pure = |e: &Expr| no_calls_in_arms(e, batched) && !(nested && calls_out(e, batched));
        for s in stmts {
            match s {
                Stmt::Let(l, e) => {
                    if !reads_defined(e, defined) || !pure(e) {
                        return false;
                    }
                    defined[*l as usize] = true;
                }
                Stmt::Store(_, e) => {
                    if !reads_defined(e, defined) || !pure(e) {
                        return false;
                    }
                }
                Stmt::If(c, a, b) => {
                    if !reads_defined(c, defined) || !pure(c) {
                        return false;
                    }
                    let mut in_a = defined.to_vec();
                    let mut in_b = defined.to_vec();
                    if !check(a, &mut in_a, true, batched) || !check(b, &mut in_b, true, batched) {
                        return false;
                    }
                    for (d, (x, y)) in defined.iter_mut().zip(in_a.iter().zip(&in_b)) {
                        *d = *x && *y;
                    }
                }
                Stmt::While { .. } => return false,
                Stmt::Spike => {}
            }
        }
        true
    }
    let mut defined = vec![false; kernel.n_locals as usize];
    check(
        &kernel.body,
        &mut defined,
        false,
        &Batched::of(&kernel.body),
    )
}

/// Memory flags of two-lane loads and stores: arrays are only 8-byte aligned.
fn unaligned() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

/// The most lane-table entries the two pairs of a four-element iteration share through
/// registers. CUBA's update reads 11 (two of them only on its cold path) and does not spill
/// with them shared, saving 5 of 69 instructions per four neurons; a kernel with 15 spilled
/// (the test `the_two_lane_loop_does_not_spill`).
const SHARED_LANE_ENTRIES: usize = 11;

/// Emits the two-lane loops, entered at `vheader`: while at least four elements are left,
/// one iteration updates elements `i, i + 1` and then `i + 2, i + 3` (two lanes each); then,
/// while two are left, `i, i + 1`; then it leaves for the scalar loop at `scalar_header`,
/// which finishes the remaining element (if any). Elements are visited in order.
fn emit_two_lane_loop(
    g: &mut Gen,
    kernel: &Kernel,
    vheader: Block,
    scalar_header: Block,
    element: Variable,
    end: Value,
    spike_state: Option<(Value, Variable, ScalarSpike)>,
) {
    let pair_header = g.b.create_block();
    for (header, exit, width) in [
        (vheader, pair_header, 4u32),
        (pair_header, scalar_header, 2),
    ] {
        let body = g.b.create_block();
        let latch = g.b.create_block();
        g.b.switch_to_block(header);
        let i = g.b.use_var(element);
        // `i + width` cannot wrap: element indices are below 2^63.
        let last = g.b.ins().iadd_imm_u(i, i64::from(width));
        let enough = g.b.ins().icmp(IntCC::UnsignedLessThanOrEqual, last, end);
        g.b.ins().brif(enough, body, &[], exit, &[]);

        g.b.switch_to_block(body);
        let i = g.b.use_var(element);
        g.lane_table.enter_iteration(&mut g.b, i);
        for pair in 0..width / 2 {
            let next = if pair + 1 == width / 2 {
                latch
            } else {
                g.b.create_block()
            };
            // The pairs of an iteration share the table's loads through registers, unless
            // there are so many entries that sharing them would make the register allocator
            // spill (see `SHARED_LANE_ENTRIES`): then each pair reads its own.
            if pair > 0 && g.lane_table.entries.len() > SHARED_LANE_ENTRIES {
                let first = g.b.ins().iadd_imm_u(i, i64::from(2 * pair));
                g.lane_table.enter_iteration(&mut g.b, first);
            }
            emit_pair(g, kernel, i, 2 * pair, next, spike_state);
            g.b.switch_to_block(next);
        }
        // The loop is rotated: the latch tests for the next iteration itself rather than
        // jumping back to the header.
        let next = g.b.ins().iadd_imm_u(i, i64::from(width));
        g.b.def_var(element, next);
        let last = g.b.ins().iadd_imm_u(next, i64::from(width));
        let enough = g.b.ins().icmp(IntCC::UnsignedLessThanOrEqual, last, end);
        g.b.ins().brif(enough, body, &[], exit, &[]);
    }
    g.vector = false;
}

/// Emits, from the current block, the update of elements `i` and `i + 1` in two lanes, where
/// `i` is `skip` elements after the loop iteration's first element, and the recording of
/// their spikes (element `i` first), then jumps to `after`.
fn emit_pair(
    g: &mut Gen,
    kernel: &Kernel,
    iteration: Value,
    skip: u32,
    after: Block,
    spike_state: Option<(Value, Variable, ScalarSpike)>,
) {
    g.vector = true;
    g.mask = None;
    g.cached.iter_mut().for_each(|c| *c = false);
    // The byte offsets as the iteration's plus a constant, which the x64 backend folds into
    // the addressing of every array (rather than computing `i + skip` first).
    let bytes = g.b.ins().ishl_imm_u(iteration, 3);
    g.elem_offset = g.b.ins().iadd_imm_u(bytes, i64::from(8 * skip));
    let bytes_f32 = g.b.ins().ishl_imm_u(iteration, 2);
    g.elem_offset_f32 = g.b.ins().iadd_imm_u(bytes_f32, i64::from(4 * skip));
    let i = g.b.ins().iadd_imm_u(iteration, i64::from(skip));
    g.elem_u32 = g.b.ins().ireduce(types::I32, i);
    let f0 = g.b.ins().fcvt_from_sint(types::F64, i);
    let one = g.b.ins().f64const(1.0);
    // Exact: (i + 1) as f64 for i below 2^53.
    let f1 = g.b.ins().fadd(f0, one);
    let v = g.b.ins().splat(types::F64X2, f0);
    g.elem_f64 = g.b.ins().insertlane(v, f1, 1);
    g.spiked_v = None;
    g.stmts(&kernel.body);
    let conditional = g.flush_stores();
    let spiked = g.spiked_v.take();

    // One test on the fast path: whether any lane has a conditional store or a spike. Both
    // are rare (a refractory or spiking neuron), so the pair usually goes straight on.
    let masks: Vec<Value> = conditional.iter().map(|c| c.lanes).chain(spiked).collect();
    let Some(any) = masks.into_iter().reduce(|x, y| g.b.ins().bor(x, y)) else {
        g.b.ins().jump(after, &[]);
        return;
    };
    let any_bits = g.b.ins().vhigh_bits(types::I32, any);
    let slow = g.b.create_block();
    g.b.ins().brif(any_bits, slow, &[], after, &[]);
    g.b.switch_to_block(slow);
    g.b.set_cold_block(slow);
    let alone = conditional.len() + usize::from(spiked.is_some()) == 1;
    for store in conditional {
        if alone {
            g.b.ins().store(unaligned(), store.value, store.addr, 0);
            continue;
        }
        let write = g.b.create_block();
        let join = g.b.create_block();
        let bits = g.b.ins().vhigh_bits(types::I32, store.lanes);
        g.b.ins().brif(bits, write, &[], join, &[]);
        g.b.switch_to_block(write);
        g.b.set_cold_block(write);
        g.b.ins().store(unaligned(), store.value, store.addr, 0);
        g.b.ins().jump(join, &[]);
        g.b.switch_to_block(join);
        g.b.set_cold_block(join);
    }
    let (Some((spikes, n, _)), Some(spiked)) = (spike_state, spiked) else {
        g.b.ins().jump(after, &[]);
        return;
    };
    let bits = if alone {
        any_bits
    } else {
        g.b.ins().vhigh_bits(types::I32, spiked)
    };
    let lane0 = g.b.create_block();
    let after0 = g.b.create_block();
    let lane1 = g.b.create_block();
    let b0 = g.b.ins().band_imm_u(bits, 1);
    g.b.ins().brif(b0, lane0, &[], after0, &[]);
    let elem0 = g.elem_u32;
    for (block, lane) in [(lane0, 0), (lane1, 1)] {
        g.b.switch_to_block(block);
        g.b.set_cold_block(block);
        let elem = if lane == 0 {
            elem0
        } else {
            g.b.ins().iadd_imm_u(elem0, 1)
        };
        append_spike(&mut g.b, spikes, n, elem);
        if lane == 0 {
            g.b.ins().jump(after0, &[]);
            g.b.switch_to_block(after0);
            g.b.set_cold_block(after0);
            let b1 = g.b.ins().band_imm_u(bits, 2);
            g.b.ins().brif(b1, lane1, &[], after, &[]);
        } else {
            g.b.ins().jump(after, &[]);
        }
    }
}

/// Appends element `elem` (u32) to the spike list at `spikes`, whose length is `count`.
fn append_spike(b: &mut FunctionBuilder, spikes: Value, count: Variable, elem: Value) {
    let n = b.use_var(count);
    let offset = b.ins().ishl_imm_u(n, 2);
    let addr = b.ins().iadd(spikes, offset);
    b.ins().store(trusted(), elem, addr, 0);
    let n = b.ins().iadd_imm_u(n, 1);
    b.def_var(count, n);
}

/// A store of the two-lane loop that is written only if one of its lanes is set.
struct MaskedStore {
    value: Value,
    addr: Value,
    lanes: Value,
}

/// What an entry of the [`LaneTable`] holds in both lanes: a constant (its bits) or a value
/// computed before the loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Lanes {
    Const(u64),
    Splat(Value),
}

/// The constants and loop-invariant values the two-lane loop reads, each splatted into a
/// 16-byte entry of a stack slot that is filled once before the loop. The loop reads an entry
/// with an ordinary (not read-only) load at each use, just before the instruction that uses
/// it: Cranelift neither hoists such a load out of the loop nor merges it with another across
/// the loop's stores, and the x64 backend folds a load that has one use, in the same block,
/// with no other load or store in between, into the instruction as a memory operand. Held in
/// registers instead (Cranelift hoists splatted constants), a dozen constants and the loop's
/// temporaries outgrow the 16 vector registers, and the register allocator spills constants
/// and reloads and stores them back on every iteration.
///
/// Not every read folds: the x64 backend folds a load only if nothing above it in the
/// expression is used twice (it marks everything under a value used twice as used twice), so
/// e.g. the coefficients of a sum whose result is compared and then stored are separate loads.
/// The two pairs of a four-element iteration share the table's address, and so these loads,
/// unless the table is large (see [`SHARED_LANE_ENTRIES`]).
#[derive(Default)]
struct LaneTable {
    entries: Vec<Lanes>,
    index: HashMap<Lanes, u32>,
    slot: Option<StackSlot>,
    /// The table's address in the current loop iteration (see `enter_iteration`).
    base: Option<Value>,
}

impl LaneTable {
    /// Loads both lanes of `lanes`, adding an entry if it is new.
    fn load(&mut self, b: &mut FunctionBuilder, lanes: Lanes) -> Value {
        let next = self.entries.len() as u32;
        let entry = *self.index.entry(lanes).or_insert(next);
        if entry == next {
            self.entries.push(lanes);
        }
        let base = self
            .base
            .expect("the lane table is read in the two-lane loop");
        // Read-only and movable, so Cranelift treats the load as a pure value: merged with
        // other loads of the entry and placed where it is first needed (a cold block if only
        // that uses it), right before its user, into which the x64 backend then folds it.
        let flags = trusted().with_readonly().with_can_move();
        b.ins().load(types::F64X2, flags, base, (entry * 16) as i32)
    }

    /// Sets the table's address for the pair or loop iteration whose first element is `i` (see
    /// [`SHARED_LANE_ENTRIES`]).
    fn enter_iteration(&mut self, b: &mut FunctionBuilder, i: Value) {
        let slot = *self.slot.get_or_insert_with(|| {
            // The size is set by `fill`, when every entry is known; 16-byte aligned.
            b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, 0, 4))
        });
        // The slot's address plus `i >> 63`, which is 0 (an element index is below 2^63) but
        // not known to Cranelift to be: a loop-invariant address would let it hoist the loads
        // out of the loop, into registers, which is what the table is for avoiding.
        let addr = b.ins().stack_addr(types::I64, slot, 0);
        let zero = b.ins().ushr_imm_u(i, 63);
        self.base = Some(b.ins().iadd(addr, zero));
    }

    /// Stores every entry into the slot (in the block before the loop).
    fn fill(&self, b: &mut FunctionBuilder) {
        let Some(slot) = self.slot else {
            return;
        };
        b.func.sized_stack_slots[slot].size = (self.entries.len() * 16) as u32;
        for (entry, lanes) in self.entries.iter().enumerate() {
            let x = match *lanes {
                Lanes::Const(bits) => b.ins().f64const(f64::from_bits(bits)),
                Lanes::Splat(v) => v,
            };
            let both = b.ins().splat(types::F64X2, x);
            let addr = b.ins().stack_addr(types::I64, slot, (entry * 16) as i32);
            b.ins().store(trusted(), both, addr, 0);
        }
    }
}

/// Which locals the two-lane loop keeps as lane masks: those assigned at least once and only
/// ever assigned a condition (a comparison, `and`, `or` or `not`), whose value is 1.0 or 0.0.
/// Where such a local is a condition (`if`, `select`, `and`, `or`, `not`) its mask is used as
/// it is; where it is a number, 1.0/0.0 is made from the mask there.
fn mask_locals(kernel: &Kernel) -> Vec<bool> {
    let n = kernel.n_locals as usize;
    let mut assigned = vec![false; n];
    let mut logical = vec![true; n];
    walk(&kernel.body, &mut |s| {
        if let Stmt::Let(l, e) = s {
            let l = *l as usize;
            assigned[l] = true;
            logical[l] &= matches!(e, Expr::Binary(op, _, _) if is_logical(*op))
                || matches!(e, Expr::Unary(UnOp::Not, _));
        }
    });
    assigned.iter().zip(&logical).map(|(a, l)| a & l).collect()
}

impl Gen<'_> {
    /// A statement in the two-lane loop: `if` becomes lane masks, stores and local
    /// assignments under a mask keep the old value in the other lanes.
    fn stmt_v(&mut self, stmt: &Stmt) {
        match stmt {
            Stmt::Let(l, e) => {
                if let Some(local) = self.mask_locals_v[*l as usize] {
                    let c = self.cond(e);
                    let c = match self.mask {
                        Some(m) => {
                            let old = self.b.use_var(local);
                            self.b.ins().bitselect(m, c, old)
                        }
                        None => c,
                    };
                    self.b.def_var(local, c);
                    return;
                }
                let local = self.locals_v[*l as usize];
                // The old value first, so that a constant's load is next to the blend that
                // uses it (see `LaneTable`).
                let old = self.mask.map(|_| self.b.use_var(local));
                let v = self.expr(e);
                let v = match (self.mask, old) {
                    (Some(m), Some(old)) => self.select(m, v, old),
                    _ => v,
                };
                self.b.def_var(local, v);
            }
            Stmt::Store(var, e) => {
                let old = self.mask.map(|_| self.var_v(*var));
                let v = self.expr(e);
                // What memory will hold, which later reads of the pair must see.
                let v = if self.single[*var as usize] {
                    let narrow = self.b.ins().fvdemote(v);
                    self.b.ins().fvpromote_low(narrow)
                } else {
                    v
                };
                let v = match (self.mask, old) {
                    (Some(m), Some(old)) => self.select(m, v, old),
                    _ => v,
                };
                self.b.def_var(self.var_cache_v[*var as usize], v);
                self.cached[*var as usize] = true;
                let slot = &mut self.pending[*var as usize];
                *slot = match (*slot, self.mask) {
                    (Some(None), _) | (_, None) => Some(None),
                    (Some(Some(lanes)), Some(m)) => Some(Some(self.b.ins().bor(lanes, m))),
                    (None, Some(m)) => Some(Some(m)),
                };
            }
            Stmt::If(c, then_body, else_body) => {
                let cond = self.cond(c);
                let outer = self.mask;
                let then_mask = match outer {
                    Some(m) => self.b.ins().band(m, cond),
                    None => cond,
                };
                self.mask = Some(then_mask);
                self.stmts(then_body);
                if !else_body.is_empty() {
                    let not = self.b.ins().bnot(cond);
                    let else_mask = match outer {
                        Some(m) => self.b.ins().band(m, not),
                        None => not,
                    };
                    self.mask = Some(else_mask);
                    self.stmts(else_body);
                }
                self.mask = outer;
            }
            Stmt::While { .. } => unreachable!("kernels with loops are not vectorized"),
            Stmt::Spike => {
                let lanes = match self.mask {
                    Some(m) => m,
                    None => {
                        let all = self.b.ins().iconst(types::I64, -1);
                        self.b.ins().splat(types::I64X2, all)
                    }
                };
                self.spiked_v = Some(match self.spiked_v {
                    Some(old) => self.b.ins().bor(old, lanes),
                    None => lanes,
                });
            }
        }
    }

    /// Writes the deferred stores of the element pair (see `pending`) for both lanes, in array
    /// order, and returns the stores under lane masks, for the caller to write when a lane is
    /// set.
    fn flush_stores(&mut self) -> Vec<MaskedStore> {
        let mut masked = Vec::new();
        for var in 0..self.pending.len() {
            let Some(lanes) = self.pending[var].take() else {
                continue;
            };
            let value = self.b.use_var(self.var_cache_v[var]);
            // An f32 array: the two lanes narrowed are the low 8 bytes of an f32x4 (exact: the
            // cached lanes were rounded when they were stored).
            let value = if self.single[var] {
                let narrow = self.b.ins().fvdemote(value);
                let flags = MemFlagsData::new().with_endianness(Endianness::Little);
                // As an f64 lane, so the 8 bytes go from the vector register to memory
                // directly (an integer lane would pass through a general register).
                let bits = self.b.ins().bitcast(types::F64X2, flags, narrow);
                self.b.ins().extractlane(bits, 0)
            } else {
                value
            };
            let addr = self.address(var as u32);
            match lanes {
                None => {
                    self.b.ins().store(unaligned(), value, addr, 0);
                }
                Some(lanes) => masked.push(MaskedStore { value, addr, lanes }),
            }
        }
        masked
    }

    /// The two lanes of array `v` at the current element, loaded at the first use.
    fn var_v(&mut self, v: u32) -> Value {
        let var = v as usize;
        if !self.cached[var] {
            let addr = self.address(v);
            let x = if self.single[var] {
                // Loaded as one f64 (a float register, not a general one), then reinterpreted.
                let bits = self.b.ins().load(types::F64, unaligned(), addr, 0);
                let bits = self.b.ins().scalar_to_vector(types::F64X2, bits);
                let flags = MemFlagsData::new().with_endianness(Endianness::Little);
                let narrow = self.b.ins().bitcast(types::F32X4, flags, bits);
                self.b.ins().fvpromote_low(narrow)
            } else {
                self.b.ins().load(types::F64X2, unaligned(), addr, 0)
            };
            self.b.def_var(self.var_cache_v[var], x);
            self.cached[var] = true;
        }
        self.b.use_var(self.var_cache_v[var])
    }

    /// The value of a batched draw (see `codegen::batched_draws`) at the current element, or both lanes of it.
    fn batched_draw(&mut self, e: &Expr) -> Option<Value> {
        let base = *self.draw_bases.get(&(e as *const Expr))?;
        let addr = self.b.ins().iadd(base, self.elem_offset);
        Some(if self.vector {
            self.b.ins().load(types::F64X2, unaligned(), addr, 0)
        } else {
            self.b.ins().load(types::F64, trusted(), addr, 0)
        })
    }

    /// A random draw per lane, with each lane's element index.
    fn random_v(&mut self, kind: Random, draw: u32, arg: &Expr) -> Value {
        let arg = if kind == Random::Poisson {
            self.expr(arg)
        } else {
            self.fconst(0.0)
        };
        let f = self.helpers[Helper::Random.index()].expect("used helpers are imported");
        let site = self.b.ins().iconst(types::I32, i64::from(draw));
        let kind = self
            .b
            .ins()
            .iconst(types::I32, i64::from(random_kind(kind)));
        let elem0 = self.elem_u32;
        let a0 = self.b.ins().extractlane(arg, 0);
        let inst = self
            .b
            .ins()
            .call(f, &[self.stream_key, elem0, self.step, site, kind, a0]);
        let r0 = self.b.inst_results(inst)[0];
        let elem1 = self.b.ins().iadd_imm_u(elem0, 1);
        let a1 = self.b.ins().extractlane(arg, 1);
        let inst = self
            .b
            .ins()
            .call(f, &[self.stream_key, elem1, self.step, site, kind, a1]);
        let r1 = self.b.inst_results(inst)[0];
        let v = self.b.ins().splat(types::F64X2, r0);
        self.b.ins().insertlane(v, r1, 1)
    }
}

impl Gen<'_> {
    fn stmts(&mut self, stmts: &[Stmt]) {
        for s in stmts {
            self.stmt(s);
        }
    }

    fn stmt(&mut self, stmt: &Stmt) {
        if self.vector {
            return self.stmt_v(stmt);
        }
        match stmt {
            Stmt::Let(l, e) => {
                let v = self.expr(e);
                self.b.def_var(self.locals[*l as usize], v);
            }
            Stmt::Store(var, e) => {
                let v = self.expr(e);
                let addr = self.address(*var);
                let v = if self.single[*var as usize] {
                    let narrow = self.b.ins().fdemote(types::F32, v);
                    self.b.ins().store(trusted(), narrow, addr, 0);
                    // Later reads see what memory holds.
                    self.b.ins().fpromote(types::F64, narrow)
                } else {
                    self.b.ins().store(trusted(), v, addr, 0);
                    v
                };
                self.b.def_var(self.var_cache[*var as usize], v);
                self.cached[*var as usize] = true;
            }
            Stmt::If(c, then_body, else_body) => {
                let cond = self.cond(c);
                let then_block = self.b.create_block();
                let else_block = self.b.create_block();
                let join = self.b.create_block();
                self.b.ins().brif(cond, then_block, &[], else_block, &[]);
                let before = self.cached.clone();

                // A side that spikes is taken rarely (a neuron spikes in few of its steps): it
                // goes out of line, and the common path falls through to the join.
                if contains_spike(then_body) {
                    self.b.set_cold_block(then_block);
                }
                if contains_spike(else_body) {
                    self.b.set_cold_block(else_block);
                }
                self.b.switch_to_block(then_block);
                self.stmts(then_body);
                self.b.ins().jump(join, &[]);
                let after_then = std::mem::replace(&mut self.cached, before);

                self.b.switch_to_block(else_block);
                self.stmts(else_body);
                self.b.ins().jump(join, &[]);

                self.b.switch_to_block(join);
                self.meet(&after_then);
            }
            Stmt::While {
                cond,
                max_iterations,
                body,
            } => self.while_loop(cond, *max_iterations, body),
            Stmt::Spike => match self.spiked.expect("a kernel with `spike` records spikes") {
                ScalarSpike::Flag(spiked) => {
                    let yes = self.b.ins().iconst(types::I8, 1);
                    self.b.def_var(spiked, yes);
                }
                ScalarSpike::InPlace { spikes, count } => {
                    append_spike(&mut self.b, spikes, count, self.elem_u32)
                }
            },
        }
    }

    /// A bounded loop (scalar code only; see [`vectorizable`]). The header tests the trip
    /// count, then the condition, as the interpreter does. The body only adds cached array
    /// values (stores write through to memory and define the cache), so what is cached before
    /// the loop is defined on both paths into the header; values first cached in the body
    /// are forgotten after the loop, to be reloaded from memory.
    fn while_loop(&mut self, cond: &Expr, max_iterations: u32, body: &[Stmt]) {
        let count = self.b.declare_var(types::I32);
        let zero = self.b.ins().iconst(types::I32, 0);
        self.b.def_var(count, zero);
        let header = self.b.create_block();
        let test = self.b.create_block();
        let body_block = self.b.create_block();
        let exit = self.b.create_block();
        self.b.ins().jump(header, &[]);

        self.b.switch_to_block(header);
        let n = self.b.use_var(count);
        let more = self
            .b
            .ins()
            .icmp_imm_u(IntCC::UnsignedLessThan, n, i64::from(max_iterations));
        self.b.ins().brif(more, test, &[], exit, &[]);

        self.b.switch_to_block(test);
        let before = self.cached.clone();
        let c = self.cond(cond);
        self.b.ins().brif(c, body_block, &[], exit, &[]);

        self.b.switch_to_block(body_block);
        self.stmts(body);
        let n = self.b.use_var(count);
        let next = self.b.ins().iadd_imm_u(n, 1);
        self.b.def_var(count, next);
        self.b.ins().jump(header, &[]);

        self.b.switch_to_block(exit);
        self.cached = before;
    }

    /// After a join: a cached value is usable only if both paths defined it.
    fn meet(&mut self, other: &[bool]) {
        for (a, &b) in self.cached.iter_mut().zip(other) {
            *a &= b;
        }
    }

    fn address(&mut self, var: u32) -> Value {
        let base = self.bases[var as usize].expect("touched arrays have a base pointer");
        let single = self.single[var as usize];
        match self.access[var as usize] {
            Access::Element if single => self.b.ins().iadd(base, self.elem_offset_f32),
            Access::Element => self.b.ins().iadd(base, self.elem_offset),
            Access::Scalar => base,
            Access::Gather(g) => {
                let offsets = if single {
                    self.gather_offsets_f32
                } else {
                    self.gather_offsets
                };
                let offset = offsets[g as usize]
                    .expect("gathered variables have their index loaded per element");
                self.b.ins().iadd(base, offset)
            }
        }
    }

    /// `x != 0.0` as a Cranelift boolean (NaN is true).
    fn truthy(&mut self, x: Value) -> Value {
        let zero = self.fconst(0.0);
        self.b.ins().fcmp(FloatCC::NotEqual, x, zero)
    }

    /// 1.0 or 0.0 from a Cranelift boolean (or, in the two-lane loop, a lane mask).
    fn bool_to_f64(&mut self, cond: Value) -> Value {
        let one = self.fconst(1.0);
        let zero = self.fconst(0.0);
        self.select(cond, one, zero)
    }

    /// A constant; in the two-lane loop, both lanes loaded from the lane table.
    fn fconst(&mut self, c: f64) -> Value {
        if self.vector {
            return self.lane_table.load(&mut self.b, Lanes::Const(c.to_bits()));
        }
        self.b.ins().f64const(c)
    }

    /// `cond ? a : b`, per lane in the two-lane loop (where `cond` is an `i64x2` mask).
    fn select(&mut self, cond: Value, a: Value, b: Value) -> Value {
        if self.vector {
            return self.blend(cond, a, b, 2);
        }
        self.b.ins().select(cond, a, b)
    }

    /// `mask ? a : b` lane by lane, as blends. Cranelift blends in one instruction only when
    /// it sees that every lane of the mask is all ones or all zeros, which it knows of a
    /// comparison alone; a mask combined with `and`, `or` or `not` would become and, and-not
    /// and or. So a combination of at most `leaves` comparisons is taken apart into one blend
    /// per comparison (`x and y ? a : b` is `x ? (y ? a : b) : b`, `not x ? a : b` is
    /// `x ? b : a`, `x or y ? a : b` is `x ? a : (y ? a : b)`), which also leaves the combined
    /// mask to the cold path when nothing else uses it; a larger one is compared with zero
    /// (its lanes are all-ones NaNs or +0.0) and blended: two instructions.
    fn blend(&mut self, mask: Value, a: Value, b: Value, leaves: usize) -> Value {
        let flags = MemFlagsData::new().with_endianness(Endianness::Little);
        let dfg = &self.b.func.dfg;
        let def = dfg.value_def(mask).inst().map(|inst| {
            let args = dfg.inst_args(inst);
            (
                dfg.insts[inst].opcode(),
                args.first().copied(),
                args.get(1).copied(),
            )
        });
        match def {
            Some((Opcode::Fcmp, ..)) => {
                let c = self.b.ins().bitcast(types::F64X2, flags, mask);
                return self.b.ins().bitselect(c, a, b);
            }
            Some((Opcode::Bnot, Some(x), _)) if self.comparisons(mask) <= leaves => {
                return self.blend(x, b, a, leaves);
            }
            Some((Opcode::Band, Some(x), Some(y))) if self.comparisons(mask) <= leaves => {
                let inner = self.blend(y, a, b, leaves);
                return self.blend(x, inner, b, leaves);
            }
            Some((Opcode::Bor, Some(x), Some(y))) if self.comparisons(mask) <= leaves => {
                let inner = self.blend(y, a, b, leaves);
                return self.blend(x, a, inner, leaves);
            }
            _ => {}
        }
        let bits = self.b.ins().bitcast(types::F64X2, flags, mask);
        let zero = self.fconst(0.0);
        let c = self.b.ins().fcmp(FloatCC::NotEqual, bits, zero);
        let c = self.b.ins().bitcast(types::F64X2, flags, c);
        self.b.ins().bitselect(c, a, b)
    }

    /// How many comparisons a lane mask combines with `and`, `or` and `not`, or `usize::MAX`
    /// if it is made some other way.
    fn comparisons(&self, mask: Value) -> usize {
        let dfg = &self.b.func.dfg;
        let Some(inst) = dfg.value_def(mask).inst() else {
            return usize::MAX;
        };
        match dfg.insts[inst].opcode() {
            Opcode::Fcmp => 1,
            Opcode::Bnot | Opcode::Band | Opcode::Bor => dfg
                .inst_args(inst)
                .iter()
                .map(|&x| self.comparisons(x))
                .fold(0, usize::saturating_add),
            _ => usize::MAX,
        }
    }

    /// Whether `e` is read from the lane table in the two-lane loop.
    fn in_lane_table(&self, e: &Expr) -> bool {
        matches!(e, Expr::Const(_) | Expr::Time) || self.hoisted.contains_key(&(e as *const Expr))
    }

    fn call(&mut self, h: Helper, args: &[Value]) -> Value {
        let f = self.helpers[h.index()].expect("used helpers are imported");
        if self.vector {
            // One scalar call per lane, lane 0 first.
            let mut result = None;
            for lane in 0..2u8 {
                let scalar: Vec<Value> = args
                    .iter()
                    .map(|&a| self.b.ins().extractlane(a, lane))
                    .collect();
                let inst = self.b.ins().call(f, &scalar);
                let r = self.b.inst_results(inst)[0];
                result = Some(match result {
                    None => self.b.ins().splat(types::F64X2, r),
                    Some(v) => self.b.ins().insertlane(v, r, lane),
                });
            }
            return result.expect("two lanes");
        }
        let inst = self.b.ins().call(f, args);
        self.b.inst_results(inst)[0]
    }

    /// A per-lane scalar operation in the two-lane loop (the operation itself otherwise).
    fn lanewise(&mut self, a: Value, op: fn(&mut FunctionBuilder, Value) -> Value) -> Value {
        if !self.vector {
            return op(&mut self.b, a);
        }
        let x0 = self.b.ins().extractlane(a, 0);
        let y0 = op(&mut self.b, x0);
        let x1 = self.b.ins().extractlane(a, 1);
        let y1 = op(&mut self.b, x1);
        let v = self.b.ins().splat(types::F64X2, y0);
        self.b.ins().insertlane(v, y1, 1)
    }

    /// `eval(e) != 0.0` as a Cranelift boolean, without materialising 1.0/0.0 for
    /// comparisons and logic.
    fn cond(&mut self, e: &Expr) -> Value {
        if let Some(v) = self.hoisted_value(e) {
            return self.truthy(v);
        }
        match e {
            Expr::Local(l) if self.vector => {
                if let Some(mask) = self.mask_locals_v[*l as usize] {
                    return self.b.use_var(mask);
                }
            }
            Expr::Binary(op, a, b) => {
                if let Some(cc) = comparison(*op) {
                    let a = self.expr(a);
                    let b = self.expr(b);
                    return self.b.ins().fcmp(cc, a, b);
                }
                if matches!(op, BinOp::And | BinOp::Or) {
                    let x = self.cond(a);
                    let y = self.cond(b);
                    return if *op == BinOp::And {
                        self.b.ins().band(x, y)
                    } else {
                        self.b.ins().bor(x, y)
                    };
                }
            }
            // `a == 0.0` is exactly `!(a != 0.0)`, NaN included.
            Expr::Unary(UnOp::Not, a) => {
                let x = self.cond(a);
                if self.vector {
                    return self.b.ins().bnot(x);
                }
                let one = self.b.ins().iconst(types::I8, 1);
                return self.b.ins().bxor(x, one);
            }
            _ => {}
        }
        let v = self.expr(e);
        self.truthy(v)
    }

    /// The value of a hoisted subexpression; in the two-lane loop, both lanes loaded from the
    /// lane table.
    fn hoisted_value(&mut self, e: &Expr) -> Option<Value> {
        let key = e as *const Expr;
        if self.vector {
            let lanes = *self.hoisted_lanes.get(&key)?;
            return Some(self.lane_table.load(&mut self.b, lanes));
        }
        self.hoisted.get(&key).copied()
    }

    fn expr(&mut self, e: &Expr) -> Value {
        if let Some(v) = self.hoisted_value(e) {
            return v;
        }
        if self.vector {
            match e {
                Expr::Var(v) => return self.var_v(*v),
                Expr::Local(l) => {
                    if let Some(mask) = self.mask_locals_v[*l as usize] {
                        let c = self.b.use_var(mask);
                        return self.bool_to_f64(c);
                    }
                    return self.b.use_var(self.locals_v[*l as usize]);
                }
                Expr::Time => return self.lane_table.load(&mut self.b, Lanes::Splat(self.t)),
                Expr::Index => return self.elem_f64,
                // A table operand second, right before the instruction, so that it becomes a
                // memory operand (see `LaneTable`); `+` and `*` are commutative in IEEE
                // arithmetic (NaN payloads aside).
                Expr::Binary(op @ (BinOp::Add | BinOp::Mul), a, b)
                    if self.in_lane_table(a) && !self.in_lane_table(b) =>
                {
                    let y = self.expr(b);
                    let x = self.expr(a);
                    return self.binary(*op, y, x);
                }
                Expr::Select(c, a, b) => {
                    let cond = self.cond(c);
                    let a = self.expr(a);
                    let b = self.expr(b);
                    return self.select(cond, a, b);
                }
                Expr::Random { kind, draw, arg } => {
                    if let Some(v) = self.batched_draw(e) {
                        return v;
                    }
                    return self.random_v(*kind, *draw, arg);
                }
                _ => {}
            }
        }
        match e {
            Expr::Const(c) => self.fconst(*c),
            Expr::Var(v) => {
                let var = *v as usize;
                if !self.cached[var] {
                    let addr = self.address(*v);
                    let x = if self.single[var] {
                        let narrow = self.b.ins().load(types::F32, trusted(), addr, 0);
                        self.b.ins().fpromote(types::F64, narrow)
                    } else {
                        self.b.ins().load(types::F64, trusted(), addr, 0)
                    };
                    self.b.def_var(self.var_cache[var], x);
                    self.cached[var] = true;
                }
                self.b.use_var(self.var_cache[var])
            }
            Expr::Local(l) => self.b.use_var(self.locals[*l as usize]),
            Expr::Time => self.t,
            Expr::Index => self.elem_f64,
            Expr::Unary(UnOp::Neg, a) => {
                let a = self.expr(a);
                self.neg(a)
            }
            Expr::Unary(UnOp::Not, _) => {
                let c = self.cond(e);
                self.bool_to_f64(c)
            }
            Expr::Binary(op, _, _) if is_logical(*op) => {
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
                if calls_out(a, &self.batched) || calls_out(b, &self.batched) {
                    self.select_branching(cond, a, b)
                } else {
                    let a = self.expr(a);
                    let b = self.expr(b);
                    self.b.ins().select(cond, a, b)
                }
            }
            Expr::Random { kind, draw, arg } => {
                if let Some(v) = self.batched_draw(e) {
                    return v;
                }
                let arg = if *kind == Random::Poisson {
                    self.expr(arg)
                } else {
                    self.b.ins().f64const(0.0)
                };
                let site = self.b.ins().iconst(types::I32, i64::from(*draw));
                let kind = self
                    .b
                    .ins()
                    .iconst(types::I32, i64::from(random_kind(*kind)));
                let args = [self.stream_key, self.elem_u32, self.step, site, kind, arg];
                self.call(Helper::Random, &args)
            }
        }
    }

    /// `select` whose sides call out: evaluate only the side taken.
    fn select_branching(&mut self, cond: Value, a: &Expr, b: &Expr) -> Value {
        let then_block = self.b.create_block();
        let else_block = self.b.create_block();
        let join = self.b.create_block();
        let result = self.b.append_block_param(join, types::F64);
        self.b.ins().brif(cond, then_block, &[], else_block, &[]);
        let before = self.cached.clone();

        self.b.switch_to_block(then_block);
        let x = self.expr(a);
        self.b.ins().jump(join, &[BlockArg::Value(x)]);
        let after_then = std::mem::replace(&mut self.cached, before);

        self.b.switch_to_block(else_block);
        let y = self.expr(b);
        self.b.ins().jump(join, &[BlockArg::Value(y)]);

        self.b.switch_to_block(join);
        self.meet(&after_then);
        result
    }

    /// `-a`. In the two-lane loop, the sign bits flipped with a mask from the lane table (one
    /// instruction with the mask as a memory operand; Cranelift's `fneg` makes the mask in
    /// registers each time): the same bits as `fneg`.
    fn neg(&mut self, a: Value) -> Value {
        if !self.vector {
            return self.b.ins().fneg(a);
        }
        let sign = self.fconst(-0.0);
        self.b.ins().bxor(a, sign)
    }

    /// `abs(a)`: in the two-lane loop, the sign bits cleared with a mask from the lane table,
    /// as for [`Gen::neg`].
    fn abs(&mut self, a: Value) -> Value {
        if !self.vector {
            return self.b.ins().fabs(a);
        }
        let magnitude = self.fconst(f64::from_bits(!(1u64 << 63)));
        self.b.ins().band(a, magnitude)
    }

    /// Arithmetic operators (comparisons and logic go through [`Gen::cond`]).
    fn binary(&mut self, op: BinOp, a: Value, b: Value) -> Value {
        match op {
            BinOp::Add => self.b.ins().fadd(a, b),
            BinOp::Sub => self.b.ins().fsub(a, b),
            BinOp::Mul => self.b.ins().fmul(a, b),
            BinOp::Div => self.b.ins().fdiv(a, b),
            BinOp::Rem => self.call(Helper::Fmod, &[a, b]),
            BinOp::Pow => self.call(Helper::Pow, &[a, b]),
            BinOp::Min => self.min_max(FloatCC::LessThan, a, b),
            BinOp::Max => self.min_max(FloatCC::GreaterThan, a, b),
            _ => unreachable!("{op:?} is lowered as a condition"),
        }
    }

    /// Rust's `a.min(b)` (with `LessThan`) or `a.max(b)` (with `GreaterThan`) as compiled on
    /// x86-64: `b` if `b` beats `a` or `a` is NaN, else `a`.
    fn min_max(&mut self, beats: FloatCC, a: Value, b: Value) -> Value {
        let b_beats = self.b.ins().fcmp(beats, b, a);
        let pick = self.select(b_beats, b, a);
        let a_nan = self.b.ins().fcmp(FloatCC::Unordered, a, a);
        self.select(a_nan, b, pick)
    }

    fn func(&mut self, f: Func, a: Value) -> Value {
        let helper = match f {
            Func::Sqrt => return self.b.ins().sqrt(a),
            Func::Abs => return self.abs(a),
            Func::Floor => return self.lanewise(a, |b, x| b.ins().floor(x)),
            Func::Ceil => return self.lanewise(a, |b, x| b.ins().ceil(x)),
            Func::Sign => {
                let zero = self.fconst(0.0);
                let one = self.fconst(1.0);
                let minus_one = self.fconst(-1.0);
                let pos = self.b.ins().fcmp(FloatCC::GreaterThan, a, zero);
                let neg = self.b.ins().fcmp(FloatCC::LessThan, a, zero);
                let low = self.select(neg, minus_one, zero);
                return self.select(pos, one, low);
            }
            Func::Exp => return self.exp_inline(a, false),
            Func::Expm1 => return self.exp_inline(a, true),
            Func::Log => Helper::Log,
            Func::Log10 => Helper::Log10,
            Func::Sin => Helper::Sin,
            Func::Cos => Helper::Cos,
            Func::Tan => Helper::Tan,
            Func::Tanh => Helper::Tanh,
        };
        self.call(helper, &[a])
    }

    /// `exp(x)`, or `expm1(x)` when `minus_one`, inline: the operations of
    /// `snnc_runtime::math::{exp, expm1}` in the same order, so that the result is the same
    /// bit for bit and the two-lane loop computes both lanes at once.
    fn exp_inline(&mut self, x: Value, minus_one: bool) -> Value {
        use snnc_runtime::math::{
            CLAMP_HIGH, CLAMP_LOW, EXPM1_LARGE_K, EXPM1_SERIES, LN2_HI, LN2_LO, LOG2_E,
            ROUNDING_SHIFTER,
        };
        let low = self.fconst(CLAMP_LOW);
        let high = self.fconst(CLAMP_HIGH);
        let below = self.b.ins().fcmp(FloatCC::LessThan, x, low);
        let above = self.b.ins().fcmp(FloatCC::GreaterThan, x, high);
        let clamped = self.select(above, high, x);
        let clamped = self.select(below, low, clamped);

        let log2_e = self.fconst(LOG2_E);
        let shifter = self.fconst(ROUNDING_SHIFTER);
        let scaled = self.b.ins().fmul(clamped, log2_e);
        let sum = self.b.ins().fadd(scaled, shifter);
        let k = self.b.ins().fsub(sum, shifter);
        let ln2_hi = self.fconst(LN2_HI);
        let ln2_lo = self.fconst(LN2_LO);
        let k_hi = self.b.ins().fmul(k, ln2_hi);
        let r = self.b.ins().fsub(clamped, k_hi);
        let k_lo = self.b.ins().fmul(k, ln2_lo);
        let r = self.b.ins().fsub(r, k_lo);
        // `math::series`: Estrin's scheme.
        let r2 = self.b.ins().fmul(r, r);
        let r4 = self.b.ins().fmul(r2, r2);
        let r8 = self.b.ins().fmul(r4, r4);
        let mut pairs = Vec::with_capacity(6);
        for pair in EXPM1_SERIES.chunks(2) {
            let (low, high) = (self.fconst(pair[0]), self.fconst(pair[1]));
            let high_r = self.b.ins().fmul(high, r);
            pairs.push(self.b.ins().fadd(low, high_r));
        }
        let mut quads = Vec::with_capacity(3);
        for pair in pairs.chunks(2) {
            let high_r2 = self.b.ins().fmul(pair[1], r2);
            quads.push(self.b.ins().fadd(pair[0], high_r2));
        }
        let quad1_r4 = self.b.ins().fmul(quads[1], r4);
        let low = self.b.ins().fadd(quads[0], quad1_r4);
        let quad2_r8 = self.b.ins().fmul(quads[2], r8);
        let q = self.b.ins().fadd(low, quad2_r8);
        let correction = self.b.ins().fmul(r2, q);
        let expm1_r = self.b.ins().fadd(r, correction);

        let one_half = self.fconst(0.5);
        let half_k = self.b.ins().fmul(k, one_half);
        let half_sum = self.b.ins().fadd(half_k, shifter);
        let half = self.b.ins().fsub(half_sum, shifter);
        let rest_k = self.b.ins().fsub(k, half);
        let rest_sum = self.b.ins().fadd(rest_k, shifter);
        let half_scale = self.power_of_two(half_sum);
        let rest_scale = self.power_of_two(rest_sum);

        let one = self.fconst(1.0);
        let mantissa = self.b.ins().fadd(one, expm1_r);
        let partial = self.b.ins().fmul(mantissa, half_scale);
        let exp = self.b.ins().fmul(partial, rest_scale);
        if !minus_one {
            return exp;
        }
        let large = self.b.ins().fsub(exp, one);
        let scale = self.b.ins().fmul(half_scale, rest_scale);
        let scale_minus_one = self.b.ins().fsub(scale, one);
        let scaled_r = self.b.ins().fmul(scale, expm1_r);
        let moderate = self.b.ins().fadd(scale_minus_one, scaled_r);
        let large_k = self.fconst(EXPM1_LARGE_K);
        let is_large = self.b.ins().fcmp(FloatCC::GreaterThan, k, large_k);
        let scaled = self.select(is_large, large, moderate);
        let zero = self.fconst(0.0);
        let x_is_zero = self.b.ins().fcmp(FloatCC::Equal, x, zero);
        let small = self.select(x_is_zero, x, expm1_r);
        let k_is_zero = self.b.ins().fcmp(FloatCC::Equal, k, zero);
        self.select(k_is_zero, small, scaled)
    }

    /// `snnc_runtime::math::power_of_two`: `2^j` from the bits of `j + 1.5 * 2^52`.
    fn power_of_two(&mut self, rounding_sum: Value) -> Value {
        use snnc_runtime::math::EXPONENT_BIAS;
        let flags = MemFlagsData::new().with_endianness(Endianness::Little);
        let (int_ty, float_ty) = if self.vector {
            (types::I64X2, types::F64X2)
        } else {
            (types::I64, types::F64)
        };
        let bits = self.b.ins().bitcast(int_ty, flags, rounding_sum);
        let mut bias = self.b.ins().iconst(types::I64, EXPONENT_BIAS);
        if self.vector {
            bias = self.b.ins().splat(types::I64X2, bias);
        }
        let biased = self.b.ins().iadd(bits, bias);
        let shift = self.b.ins().iconst(types::I32, 52);
        let exponent = self.b.ins().ishl(biased, shift);
        self.b.ins().bitcast(float_ty, flags, exponent)
    }
}

#[cfg(test)]
mod tests {
    //! The two-lane loop against the interpreter, on kernels built to take it (locals assigned
    //! before use, helpers only outside `if` and `select` arms), over odd and even ranges.

    use super::{emit, host_isa, spike_runs_once, used_helpers, vectorizable, Lanes};
    use crate::codegen::jit_compile;
    use crate::ir::interp::{self, StepInfo};
    use crate::ir::{BinOp, Expr, Func, Kernel, Random, Stmt, UnOp, VarInfo, VarRole};

    const N_VARS: u32 = 3;
    const N_LOCALS: u32 = 2;
    const SPECIAL: [f64; 10] = [
        0.0,
        -0.0,
        1.0,
        -1.5,
        0.5,
        1e300,
        -1e-310,
        f64::NAN,
        3.0,
        -2.0,
    ];

    /// A small deterministic generator (xorshift64*).
    struct Gen(u64);

    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn special(&mut self) -> f64 {
            SPECIAL[self.below(SPECIAL.len() as u64) as usize]
        }
        /// An expression reading only locals `< defined`; calls out only when `calls`.
        fn expr(&mut self, depth: u32, defined: u32, calls: bool) -> Expr {
            let leaf = depth == 0 || self.below(3) == 0;
            if leaf {
                return match self.below(5) {
                    0 => Expr::Const(self.special()),
                    1 | 2 => Expr::Var(self.below(u64::from(N_VARS)) as u32),
                    3 if defined > 0 => Expr::Local(self.below(u64::from(defined)) as u32),
                    3 => Expr::Time,
                    _ => Expr::Index,
                };
            }
            let sub = |g: &mut Self| Box::new(g.expr(depth - 1, defined, calls));
            const OPS: [BinOp; 14] = [
                BinOp::Add,
                BinOp::Sub,
                BinOp::Mul,
                BinOp::Div,
                BinOp::Min,
                BinOp::Max,
                BinOp::Lt,
                BinOp::Le,
                BinOp::Gt,
                BinOp::Ge,
                BinOp::Eq,
                BinOp::Ne,
                BinOp::And,
                BinOp::Or,
            ];
            const PURE: [Func; 5] = [Func::Sqrt, Func::Abs, Func::Sign, Func::Floor, Func::Ceil];
            match self.below(if calls { 8 } else { 6 }) {
                0 | 1 => Expr::Binary(OPS[self.below(14) as usize], sub(self), sub(self)),
                2 => Expr::Unary(
                    if self.below(2) == 0 {
                        UnOp::Neg
                    } else {
                        UnOp::Not
                    },
                    sub(self),
                ),
                3 => Expr::Call(PURE[self.below(5) as usize], sub(self)),
                4 | 5 => {
                    // Arms never call out (the condition may).
                    let c = sub(self);
                    Expr::Select(
                        c,
                        Box::new(self.expr(depth - 1, defined, false)),
                        Box::new(self.expr(depth - 1, defined, false)),
                    )
                }
                6 => Expr::Call(
                    [Func::Exp, Func::Expm1, Func::Log, Func::Tanh][self.below(4) as usize],
                    sub(self),
                ),
                _ => Expr::Random {
                    kind: [Random::Uniform, Random::Normal, Random::Poisson]
                        [self.below(3) as usize],
                    draw: self.below(3) as u32,
                    arg: sub(self),
                },
            }
        }
        fn body(&mut self, n: u32, defined: &mut u32, nested: bool) -> Vec<Stmt> {
            let mut body = Vec::new();
            for _ in 0..n {
                let calls = !nested;
                match self.below(6) {
                    0 if *defined < N_LOCALS => {
                        body.push(Stmt::Let(*defined, self.expr(3, *defined, calls)));
                        if !nested {
                            *defined += 1;
                        }
                    }
                    0..=2 => body.push(Stmt::Store(
                        self.below(u64::from(N_VARS)) as u32,
                        self.expr(3, *defined, calls),
                    )),
                    3 | 4 if !nested || self.below(2) == 0 => {
                        let c = self.expr(2, *defined, calls);
                        let mut inner = *defined;
                        let a = self.body(3, &mut inner, true);
                        let b = if self.below(2) == 0 {
                            self.body(2, &mut inner, true)
                        } else {
                            Vec::new()
                        };
                        body.push(Stmt::If(c, a, b));
                    }
                    _ => body.push(Stmt::Spike),
                }
            }
            body
        }
    }

    fn kernel(body: Vec<Stmt>) -> Kernel {
        Kernel {
            name: "two_lanes".into(),
            vars: (0..N_VARS)
                .map(|i| VarInfo {
                    access: Default::default(),
                    name: format!("v{i}"),
                    role: VarRole::State,
                    unit: String::new(),
                    scale: 1.0,
                    storage: Default::default(),
                })
                .collect(),
            n_locals: N_LOCALS,
            n_draws: 3,
            body,
            notes: Vec::new(),
        }
    }

    fn bits(arrays: &[Vec<f64>]) -> Vec<Vec<u64>> {
        // NaN payloads aside, as everywhere in codegen.
        arrays
            .iter()
            .map(|a| {
                a.iter()
                    .map(|x| if x.is_nan() { u64::MAX } else { x.to_bits() })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn two_lane_loop_matches_the_interpreter() {
        let mut g = Gen(0x9e37_79b9_7f4a_7c15);
        let mut vectorized = 0;
        for case in 0..400 {
            let mut defined = 0;
            let n = 1 + g.below(6) as u32;
            let k = kernel(g.body(n, &mut defined, false));
            if !vectorizable(&k) {
                continue;
            }
            vectorized += 1;
            // `emitted` imports no helpers.
            if !used_helpers(&k, &crate::codegen::Batched::of(&k.body)).contains(&true) {
                emitted(&k);
            }
            let len = 9;
            let arrays: Vec<Vec<f64>> = (0..N_VARS)
                .map(|_| (0..len).map(|_| g.special()).collect())
                .collect();
            let jit = jit_compile(&[&k]).unwrap();
            for (start, end) in [(0, 9), (0, 8), (1, 9), (2, 5), (3, 4), (4, 4)] {
                let mut a = arrays.clone();
                let mut b = arrays.clone();
                for step in 0..3u64 {
                    let info = StepInfo {
                        step,
                        t: step as f64 * 1e-4,
                        seed: 5,
                        stream: 2,
                    };
                    let (mut sa, mut sb) = (Vec::new(), Vec::new());
                    let mut va: Vec<&mut [f64]> = a.iter_mut().map(|x| x.as_mut_slice()).collect();
                    interp::run(&k, &mut va, start, end, info, &mut sa);
                    let mut vb: Vec<&mut [f64]> = b.iter_mut().map(|x| x.as_mut_slice()).collect();
                    jit.run(0, &mut vb, start, end, info, &mut sb);
                    assert_eq!(
                        bits(&a),
                        bits(&b),
                        "case {case}, {start}..{end}, step {step}: {:#?}",
                        k.body
                    );
                    assert_eq!(sa, sb, "case {case}: spikes");
                }
            }
        }
        assert!(vectorized > 200, "only {vectorized} kernels took two lanes");
    }

    /// In-place spike recording needs a `spike` that runs at most once per element.
    #[test]
    fn which_kernels_record_spikes_in_place() {
        let cond = || Expr::Var(0);
        let in_if = || Stmt::If(cond(), vec![Stmt::Spike], vec![]);
        let in_while = || Stmt::While {
            cond: cond(),
            max_iterations: 3,
            body: vec![in_if()],
        };
        assert!(spike_runs_once(&[in_if()]));
        assert!(spike_runs_once(&[Stmt::If(
            cond(),
            vec![],
            vec![Stmt::Store(0, cond()), Stmt::Spike]
        )]));
        assert!(!spike_runs_once(&[]));
        assert!(!spike_runs_once(&[in_if(), in_if()]));
        assert!(!spike_runs_once(&[Stmt::If(
            cond(),
            vec![Stmt::Spike],
            vec![Stmt::Spike]
        )]));
        assert!(!spike_runs_once(&[in_while()]));
    }

    #[test]
    fn which_kernels_take_two_lanes() {
        let read_before_write = kernel(vec![Stmt::Store(0, Expr::Local(0))]);
        assert!(!vectorizable(&read_before_write));
        let assigned_in_one_branch = kernel(vec![
            Stmt::If(Expr::Var(0), vec![Stmt::Let(0, Expr::Const(1.0))], vec![]),
            Stmt::Store(1, Expr::Local(0)),
        ]);
        assert!(!vectorizable(&assigned_in_one_branch));
        let in_if = |f: Func| {
            kernel(vec![Stmt::If(
                Expr::Var(0),
                vec![Stmt::Store(1, Expr::Call(f, Box::new(Expr::Var(1))))],
                vec![],
            )])
        };
        // A helper call under a condition keeps the scalar loop; inline `exp` does not.
        assert!(!vectorizable(&in_if(Func::Log)));
        assert!(vectorizable(&in_if(Func::Exp)));
        assert!(vectorizable(&in_if(Func::Expm1)));
        let lif = kernel(vec![
            Stmt::Let(0, Expr::Call(Func::Exp, Box::new(Expr::Var(0)))),
            Stmt::If(
                Expr::Binary(
                    BinOp::Gt,
                    Box::new(Expr::Local(0)),
                    Box::new(Expr::Const(1.0)),
                ),
                vec![Stmt::Store(0, Expr::Const(0.0)), Stmt::Spike],
                vec![Stmt::Store(0, Expr::Local(0))],
            ),
        ]);
        assert!(vectorizable(&lif));
    }

    /// A CUBA-like update: `%0` is only ever a condition (`if`, `select`, `not %0 and ...`),
    /// and no statement of the kernel uses the constant 1.0.
    fn refractory_kernel() -> Kernel {
        let gt = |a: Expr, b: f64| Expr::Binary(BinOp::Gt, Box::new(a), Box::new(Expr::Const(b)));
        let c = |x: f64| Box::new(Expr::Const(x));
        kernel(vec![
            Stmt::Let(0, gt(Expr::Var(1), 0.5)),
            Stmt::If(
                Expr::Local(0),
                vec![Stmt::Store(
                    1,
                    Expr::Binary(BinOp::Sub, Box::new(Expr::Var(1)), c(2.0)),
                )],
                vec![],
            ),
            Stmt::Store(
                0,
                Expr::Select(
                    Box::new(Expr::Local(0)),
                    Box::new(Expr::Var(0)),
                    Box::new(Expr::Binary(BinOp::Mul, c(0.25), Box::new(Expr::Var(0)))),
                ),
            ),
            Stmt::Store(2, Expr::Binary(BinOp::Mul, c(0.75), Box::new(Expr::Var(2)))),
            Stmt::If(
                Expr::Binary(
                    BinOp::And,
                    Box::new(Expr::Unary(UnOp::Not, Box::new(Expr::Local(0)))),
                    Box::new(gt(Expr::Var(0), 3.0)),
                ),
                vec![
                    Stmt::Store(0, Expr::Const(4.0)),
                    Stmt::Store(1, Expr::Const(5.0)),
                    Stmt::Spike,
                ],
                vec![],
            ),
        ])
    }

    /// The function `emit` builds for `k` with the host's instruction set, and the lane table.
    fn emitted(k: &Kernel) -> (cranelift_codegen::ir::Function, Vec<Lanes>) {
        use cranelift_codegen::ir::{types, AbiParam, Function, Signature, UserFuncName};
        use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
        let isa = host_isa(false).unwrap();
        let mut sig = Signature::new(isa.default_call_conv());
        sig.params.push(AbiParam::new(types::I64));
        let mut func = Function::with_name_signature(UserFuncName::user(0, 0), sig);
        let mut fctx = FunctionBuilderContext::new();
        let builder = FunctionBuilder::new(&mut func, &mut fctx);
        let lanes = emit(
            builder,
            k,
            [None; super::HELPERS.len()],
            isa.frontend_config(),
            true,
        );
        // Release builds compile without Cranelift's verifier; the tests run it.
        if let Err(errors) = cranelift_codegen::verify_function(&func, &*isa) {
            panic!("invalid CLIF for {:#?}:\n{errors}", k.body);
        }
        (func, lanes)
    }

    #[test]
    fn condition_locals_are_not_materialised_in_two_lanes() {
        let k = refractory_kernel();
        assert!(vectorizable(&k));
        let (_, lanes) = emitted(&k);
        let consts: Vec<f64> = lanes
            .iter()
            .filter_map(|l| match l {
                Lanes::Const(bits) => Some(f64::from_bits(*bits)),
                Lanes::Splat(_) => None,
            })
            .collect();
        // Turning `%0` into 1.0/0.0 would put 1.0 in the table, which otherwise holds the
        // kernel's own constants.
        assert!(!consts.contains(&1.0), "1.0/0.0 materialised: {consts:?}");
        for c in [0.5, 2.0, 0.25, 0.75, 3.0, 4.0, 5.0] {
            assert!(
                consts.contains(&c),
                "{c} missing from the lane table {consts:?}"
            );
        }
        // And the kernel still computes what the interpreter computes.
        let jit = jit_compile(&[&k]).unwrap();
        let init: Vec<Vec<f64>> = vec![
            vec![1.0, 3.5, -2.0, 2.9, 7.0, 0.0, 3.0, 10.0, f64::NAN],
            vec![0.0, 1.0, 3.0, 0.5, 0.0, 2.5, 0.0, 0.0, 1.0],
            vec![1.0; 9],
        ];
        let (mut a, mut b) = (init.clone(), init);
        for step in 0..4u64 {
            let info = StepInfo {
                step,
                t: 0.0,
                seed: 1,
                stream: 0,
            };
            let (mut sa, mut sb) = (Vec::new(), Vec::new());
            let mut va: Vec<&mut [f64]> = a.iter_mut().map(|x| x.as_mut_slice()).collect();
            interp::run(&k, &mut va, 0, 9, info, &mut sa);
            let mut vb: Vec<&mut [f64]> = b.iter_mut().map(|x| x.as_mut_slice()).collect();
            jit.run(0, &mut vb, 0, 9, info, &mut sb);
            assert_eq!(bits(&a), bits(&b), "step {step}");
            assert_eq!(sa, sb, "step {step}: spikes");
        }
    }

    /// Each variable updated by a polynomial of degree 4 with its own coefficients: 15
    /// constants, more than the 16 vector registers hold beside the loop's temporaries.
    fn many_constants_kernel() -> Kernel {
        let c = |x: f64| Box::new(Expr::Const(x));
        kernel(
            (0..N_VARS)
                .map(|var| {
                    let coefficient = |k: u32| c(0.1 * f64::from(5 * var + k + 1));
                    let mut e = coefficient(4);
                    for k in (0..4).rev() {
                        let times = Expr::Binary(BinOp::Mul, Box::new(Expr::Var(var)), e);
                        e = Box::new(Expr::Binary(BinOp::Add, coefficient(k), Box::new(times)));
                    }
                    Stmt::Store(var, *e)
                })
                .collect(),
        )
    }

    /// The register allocator must not spill in the two-lane loop: the only vector stores to
    /// the stack are the lane table's, filled once before the loop. (With the constants held
    /// in registers, this kernel's, like CUBA's, were spilled, reloaded and stored back on
    /// every iteration.)
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_two_lane_loop_does_not_spill() {
        use cranelift_codegen::control::ControlPlane;
        use cranelift_codegen::Context;
        let (func, lanes) = emitted(&many_constants_kernel());
        let isa = host_isa(false).unwrap();
        let mut ctx = Context::for_function(func);
        ctx.set_disasm(true);
        let code = ctx.compile(&*isa, &mut ControlPlane::default()).unwrap();
        let vcode = code.vcode.clone().expect("disassembly was asked for");
        // Vector stores to the frame: `movdqu`/`movups`/`movupd` (or VEX forms) whose
        // destination is `rsp`-relative; general-register saves (`movq %rbx, ...`) are not
        // counted.
        let stack_stores = vcode
            .lines()
            .filter(|l| {
                let l = l.trim();
                let op = l.split_whitespace().next().unwrap_or("");
                op.contains("movdq") || op.contains("movup") || op.contains("movap")
            })
            .filter(|l| l.trim_end().ends_with("(%rsp)"))
            .count();
        assert!(!lanes.is_empty());
        assert_eq!(stack_stores, lanes.len(), "spills in:\n{vcode}");
    }
}
