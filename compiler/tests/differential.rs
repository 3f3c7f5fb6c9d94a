//! Differential tests: JIT-compiled kernels against the reference interpreter.
//!
//! `ir::interp` defines what a kernel means; `codegen` must reproduce it bit for bit, with every
//! backend this build has (`codegen::jit_backends`: Cranelift, and LLVM when built with
//! `--features snnc/llvm`). Each test runs the interpreter and each backend on copies of the
//! same arrays and requires identical arrays
//! (compared as bit patterns, NaNs canonicalised, see [`canonical`]) and identical spike lists:
//!
//! * `random_kernels_agree`: random kernels (proptest) over three variables and three locals,
//!   with random expression trees using every operator, function, `select` and random draw,
//!   constants including signed zeros, infinities and NaN (so `0/0`, `log(-1)`, `inf - inf`
//!   and the like occur), nested `if`s and `spike`, run for two steps over a sub-range with a
//!   nonzero start (elements outside it must stay untouched), over ranges long enough for
//!   vectorised loops (LLVM's runs 16 elements or more per iteration) and their remainders.
//!   `SNNC_DIFF_CASES` sets the case count (default 2,000); failure persistence is off, so
//!   nothing is written to the tree.
//!   Each variable is stored as `f32` or `f64` at random (`precision = f32`: loads widen,
//!   stores round, later reads see the rounded value), in the scalar and the vector loops.
//! * `operators_on_special_values`: every binary operator and function on every pair of a
//!   table of special values (±0, ±1, ±inf, NaN, ...), read from arrays so no constant
//!   folding hides the generated instructions.
//! * `lif_population_for_1000_steps`: a hand-written leaky integrate-and-fire kernel with
//!   refractoriness, Gaussian noise and Poisson input, 100 neurons for 1,000 steps, the JIT
//!   run in two chunks of the index range.
//! * `compile_time_of_a_50_statement_kernel` prints JIT compile time (`--nocapture`).
//! * `compiled_kernels_can_be_shared_across_threads`: `CompiledKernels` is `Send + Sync`.

use proptest::prelude::*;
use proptest::test_runner::Config;
use snnc::codegen::{jit_backends, JitCompile};
use snnc::ir::interp::{self, StepInfo};
use snnc::ir::{
    Access, BinOp, Expr, Func, Kernel, Precision, Random, Stmt, UnOp, VarInfo, VarRole,
};
use snnc_runtime::array::{Array, ArrayMut};
use std::time::Instant;

const N_VARS: u32 = 3;
const N_LOCALS: u32 = 3;
const LEN: usize = 40;

const BINOPS: [BinOp; 16] = [
    BinOp::Add,
    BinOp::Sub,
    BinOp::Mul,
    BinOp::Div,
    BinOp::Rem,
    BinOp::Pow,
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

const FUNCS: [Func; 13] = [
    Func::Exp,
    Func::Expm1,
    Func::Log,
    Func::Log10,
    Func::Sqrt,
    Func::Abs,
    Func::Sign,
    Func::Sin,
    Func::Cos,
    Func::Tan,
    Func::Tanh,
    Func::Floor,
    Func::Ceil,
];

const RANDOMS: [Random; 4] = [
    Random::Uniform,
    Random::Normal,
    Random::Exponential,
    Random::Poisson,
];

const SPECIAL: [f64; 16] = [
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.5,
    -2.5,
    3.0,
    1e-310,
    -1e300,
    1e300,
    f64::MIN_POSITIVE,
    f64::EPSILON,
    f64::INFINITY,
    f64::NEG_INFINITY,
    f64::NAN,
    -f64::NAN,
];

/// A value's bits, with every NaN mapped to one canonical NaN.
///
/// NaN payloads (and NaN signs) are not part of the semantics: IEEE leaves the payload of an
/// operation's NaN result to the implementation, and Rust's code, the C library's and
/// Cranelift's instructions choose differently (x86 arithmetic yields the negative "default
/// NaN", constant folding the positive one). No IR operation can turn a NaN's payload into a
/// non-NaN value, so canonicalising NaNs hides nothing else; every other value, signed zeros
/// included, must agree exactly.
fn canonical(x: f64) -> u64 {
    if x.is_nan() {
        f64::NAN.to_bits()
    } else {
        x.to_bits()
    }
}

fn canonical_arrays(arrays: &[Vec<f64>]) -> Vec<Vec<u64>> {
    arrays
        .iter()
        .map(|a| a.iter().map(|&x| canonical(x)).collect())
        .collect()
}

/// The first (variable, element) whose canonical bits differ.
fn first_difference(a: &[Vec<f64>], b: &[Vec<f64>]) -> Option<(usize, usize)> {
    let (a, b) = (canonical_arrays(a), canonical_arrays(b));
    (0..a.len()).find_map(|v| {
        (0..a[v].len())
            .find(|&e| a[v][e] != b[v][e])
            .map(|e| (v, e))
    })
}

fn kernel(name: &str, n_vars: u32, n_locals: u32, n_draws: u32, body: Vec<Stmt>) -> Kernel {
    Kernel {
        name: name.to_string(),
        vars: (0..n_vars)
            .map(|i| VarInfo {
                access: Default::default(),
                name: format!("v{i}"),
                role: VarRole::State,
                unit: String::new(),
                scale: 1.0,
                storage: Default::default(),
            })
            .collect(),
        n_locals,
        n_draws,
        body,
        notes: Vec::new(),
    }
}

fn as_slices(arrays: &mut [Vec<f64>]) -> Vec<&mut [f64]> {
    arrays.iter_mut().map(|a| a.as_mut_slice()).collect()
}

/// Runs `kernel` in the interpreter and with every backend from the same arrays for each of
/// `steps`; returns the first difference.
fn compare(
    kernel: &Kernel,
    arrays: &[Vec<f64>],
    start: usize,
    end: usize,
    steps: &[StepInfo],
) -> Result<(), String> {
    for (backend, jit_compile) in jit_backends() {
        compare_with(jit_compile, kernel, arrays, start, end, steps)
            .map_err(|e| format!("{backend}: {e}"))?;
    }
    Ok(())
}

fn compare_with(
    jit_compile: JitCompile,
    kernel: &Kernel,
    arrays: &[Vec<f64>],
    start: usize,
    end: usize,
    steps: &[StepInfo],
) -> Result<(), String> {
    let jit = jit_compile(&[kernel])?;
    // Stored as the kernel's variables are (an f32 variable's initial values rounded).
    let initial: Vec<Array> = arrays
        .iter()
        .zip(&kernel.vars)
        .map(|(a, v)| Array::from_f64(v.storage, a.clone()))
        .collect();
    let mut a_store = initial.clone();
    let mut b_store = initial;
    for (n, &info) in steps.iter().enumerate() {
        let mut sa = Vec::new();
        let mut sb = Vec::new();
        interp::run_arrays(
            kernel,
            &mut views(&mut a_store),
            &[],
            start,
            end,
            info,
            &mut sa,
        );
        jit.run_arrays(0, &mut views(&mut b_store), &[], start, end, info, &mut sb);
        let a: Vec<Vec<f64>> = a_store.iter().map(Array::to_f64).collect();
        let b: Vec<Vec<f64>> = b_store.iter().map(Array::to_f64).collect();
        if let Some((var, e)) = first_difference(&a, &b) {
            return Err(format!(
                "step {n} (elements {start}..{end}, {info:?}): v{var}[{e}] is {:?} interpreted, {:?} compiled",
                a[var][e], b[var][e]
            ));
        }
        if sa != sb {
            return Err(format!(
                "spikes differ after step {n}: interp {sa:?}, jit {sb:?}"
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Random kernels.

fn constant() -> impl Strategy<Value = f64> {
    prop_oneof![
        3 => proptest::sample::select(SPECIAL.to_vec()),
        2 => -4.0..4.0f64,
        1 => proptest::sample::select(vec![2.0, 10.0, 0.1, 100.0]),
    ]
}

/// Random expressions; with `call_free`, only those compiled without calls to the runtime (no
/// `%`, `^`, transcendental functions or draws), which vectorising backends vectorise.
fn expr_of(call_free: bool) -> BoxedStrategy<Expr> {
    let binops: Vec<BinOp> = BINOPS
        .into_iter()
        .filter(|op| !call_free || !matches!(op, BinOp::Rem | BinOp::Pow))
        .collect();
    let funcs: Vec<Func> = FUNCS
        .into_iter()
        .filter(|f| {
            !call_free
                || matches!(
                    f,
                    Func::Sqrt | Func::Abs | Func::Sign | Func::Floor | Func::Ceil
                )
        })
        .collect();
    let leaf = prop_oneof![
        3 => constant().prop_map(Expr::Const),
        4 => (0..N_VARS).prop_map(Expr::Var),
        3 => (0..N_LOCALS).prop_map(Expr::Local),
        1 => Just(Expr::Time),
        1 => Just(Expr::Index),
    ];
    leaf.prop_recursive(5, 40, 3, move |inner| {
        prop_oneof![
            1 => (prop_oneof![Just(UnOp::Neg), Just(UnOp::Not)], inner.clone())
                .prop_map(|(op, a)| Expr::Unary(op, Box::new(a))),
            5 => (proptest::sample::select(binops.clone()), inner.clone(), inner.clone())
                .prop_map(|(op, a, b)| Expr::bin(op, a, b)),
            3 => (proptest::sample::select(funcs.clone()), inner.clone())
                .prop_map(|(f, a)| Expr::call(f, a)),
            2 => (inner.clone(), inner.clone(), inner.clone())
                .prop_map(|(c, a, b)| Expr::select(c, a, b)),
            if call_free { 0 } else { 1 } => (proptest::sample::select(RANDOMS.to_vec()), 0..4u32, inner)
                .prop_map(|(kind, draw, arg)| Expr::Random { kind, draw, arg: Box::new(arg) }),
        ]
    })
    .boxed()
}

fn stmt() -> BoxedStrategy<Stmt> {
    stmt_of(false)
}

fn stmt_of(call_free: bool) -> BoxedStrategy<Stmt> {
    let leaf = prop_oneof![
        4 => (0..N_LOCALS, expr_of(call_free)).prop_map(|(l, e)| Stmt::Let(l, e)),
        4 => (0..N_VARS, expr_of(call_free)).prop_map(|(v, e)| Stmt::Store(v, e)),
        1 => Just(Stmt::Spike),
    ];
    leaf.prop_recursive(3, 16, 4, move |inner| {
        prop_oneof![
            3 => (
                expr_of(call_free),
                proptest::collection::vec(inner.clone(), 0..4),
                proptest::collection::vec(inner.clone(), 0..3),
            )
                .prop_map(|(c, a, b)| Stmt::If(c, a, b)),
            // Bounded loops: the condition usually reads arrays the body stores, so trip
            // counts vary per element (and such kernels take the scalar path).
            1 => (expr_of(call_free), 0..5u32, proptest::collection::vec(inner, 0..4))
                .prop_map(|(cond, max_iterations, body)| Stmt::While { cond, max_iterations, body }),
        ]
    })
    .boxed()
}

fn step_info() -> impl Strategy<Value = StepInfo> {
    (0..1_000_000u64, constant(), any::<u64>(), 0..8u32).prop_map(|(step, t, seed, stream)| {
        StepInfo {
            step,
            t,
            seed,
            stream,
        }
    })
}

fn cases() -> u32 {
    std::env::var("SNNC_DIFF_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000)
}

proptest! {
    #![proptest_config(Config { cases: cases(), failure_persistence: None, ..Config::default() })]

    #[test]
    fn random_kernels_agree(
        body in proptest::collection::vec(stmt(), 1..8),
        arrays in proptest::collection::vec(proptest::collection::vec(constant(), LEN), N_VARS as usize),
        start in 0..4usize,
        len in prop_oneof![0..7usize, 7..(LEN - 3)],
        info in step_info(),
        single in proptest::array::uniform3(any::<bool>()),
    ) {
        let k = with_storage(kernel("random", N_VARS, N_LOCALS, 4, body), single);
        let next = StepInfo { step: info.step + 1, t: info.t + 0.1, ..info };
        compare(&k, &arrays, start, start + len, &[info, next]).map_err(TestCaseError::fail)?;
    }

    /// Kernels that vectorise: no calls, every local assigned (from arrays, `t` and the index)
    /// before the rest of the body, so no value flows from one element to the next.
    #[test]
    fn call_free_kernels_agree(
        first in proptest::collection::vec(expr_of(true), N_LOCALS as usize),
        body in proptest::collection::vec(stmt_of(true), 1..8),
        arrays in proptest::collection::vec(proptest::collection::vec(constant(), LEN), N_VARS as usize),
        start in 0..4usize,
        len in 0..(LEN - 3),
        info in step_info(),
        single in proptest::array::uniform3(any::<bool>()),
    ) {
        let mut all: Vec<Stmt> = first
            .into_iter()
            .enumerate()
            .map(|(l, e)| {
                // Reads of locals in the initialisers become reads of arrays.
                let mut e = e;
                replace_locals(&mut e);
                Stmt::Let(l as u32, e)
            })
            .collect();
        all.extend(body);
        let k = with_storage(kernel("call-free", N_VARS, N_LOCALS, 0, all), single);
        let next = StepInfo { step: info.step + 1, t: info.t + 0.1, ..info };
        compare(&k, &arrays, start, start + len, &[info, next]).map_err(TestCaseError::fail)?;
    }
}

fn views(arrays: &mut [Array]) -> Vec<ArrayMut<'_>> {
    arrays.iter_mut().map(Array::view_mut).collect()
}

/// `kernel` with variable `v` stored as `f32` where `single[v]`.
fn with_storage(mut kernel: Kernel, single: [bool; N_VARS as usize]) -> Kernel {
    for (var, &s) in kernel.vars.iter_mut().zip(&single) {
        var.storage = if s { Precision::F32 } else { Precision::F64 };
    }
    kernel
}

/// Replaces every local in `e` by the array of the same number.
fn replace_locals(e: &mut Expr) {
    match e {
        Expr::Local(l) => *e = Expr::Var(*l % N_VARS),
        Expr::Const(_) | Expr::Var(_) | Expr::Time | Expr::Index => {}
        Expr::Unary(_, a) | Expr::Call(_, a) => replace_locals(a),
        Expr::Random { arg, .. } => replace_locals(arg),
        Expr::Binary(_, a, b) => {
            replace_locals(a);
            replace_locals(b);
        }
        Expr::Select(c, a, b) => {
            replace_locals(c);
            replace_locals(b);
            replace_locals(a);
        }
    }
}

/// As `compare`, for kernels whose variables are scalar or gathered (plasticity handlers):
/// both run through `run_gathered` with the same index arrays.
fn compare_gathered(
    kernel: &Kernel,
    arrays: &[Vec<f64>],
    gathers: &[Vec<u32>],
    start: usize,
    end: usize,
    info: StepInfo,
) -> Result<(), String> {
    let jit = snnc::codegen::jit_compile(&[kernel])?;
    let mut a = arrays.to_vec();
    let mut b = arrays.to_vec();
    let gathers: Vec<&[u32]> = gathers.iter().map(|g| g.as_slice()).collect();
    interp::run_gathered(
        kernel,
        &mut as_slices(&mut a),
        &gathers,
        start,
        end,
        info,
        &mut Vec::new(),
    );
    jit.run_gathered(
        0,
        &mut as_slices(&mut b),
        &gathers,
        start,
        end,
        info,
        &mut Vec::new(),
    );
    match first_difference(&a, &b) {
        Some((var, e)) => Err(format!(
            "elements {start}..{end}: v{var}[{e}] is {:?} interpreted, {:?} compiled",
            a[var][e], b[var][e]
        )),
        None => Ok(()),
    }
}

fn access() -> impl Strategy<Value = Access> {
    prop_oneof![
        Just(Access::Element),
        Just(Access::Scalar),
        Just(Access::Gather(0)),
        Just(Access::Gather(1)),
    ]
}

proptest! {
    #![proptest_config(Config { cases: cases() / 4, failure_persistence: None, ..Config::default() })]

    /// Handler kernels address arrays per element, through one value, or through index arrays
    /// whose entries repeat (several synapses onto one target): stores to a repeated index
    /// must be seen by later elements, as in the interpreter.
    #[test]
    fn gathered_kernels_agree(
        body in proptest::collection::vec(stmt(), 1..8),
        arrays in proptest::collection::vec(proptest::collection::vec(constant(), LEN), N_VARS as usize),
        modes in proptest::collection::vec(access(), N_VARS as usize),
        gathers in proptest::collection::vec(proptest::collection::vec(0..LEN as u32, LEN), 2),
        start in 0..4usize,
        len in 0..7usize,
        info in step_info(),
    ) {
        let mut k = kernel("gathered", N_VARS, N_LOCALS, 4, body);
        for (var, mode) in k.vars.iter_mut().zip(modes) {
            var.access = mode;
        }
        compare_gathered(&k, &arrays, &gathers, start, start + len, info).map_err(TestCaseError::fail)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Batched draws.

/// Compiled kernels draw every draw whose argument is the same for all elements (uniform,
/// normal and exponential draws, and Poisson draws of an element-independent mean) for the
/// whole range before their loop, through `snnc_random_block`, and read them in the loop; the
/// interpreter draws each one when it reaches it. Both must give the same bits: for Poisson
/// means on special values and on both sides of the inversion threshold (10), for a mean that
/// depends on `t`, for draws in `select` arms and `if` bodies (drawn for every element though
/// only some use them), for a draw site written twice, for a range that starts inside the
/// arrays and has an odd length (the two-lane loop and its scalar tail), and for a step above
/// 2^32.
#[test]
fn batched_draws_agree_with_draws_one_element_at_a_time() {
    let n = 37;
    let mut arrays = vec![vec![0.0; n]; 3];
    for e in 0..n {
        arrays[0][e] = SPECIAL[e % SPECIAL.len()];
        arrays[1][e] = e as f64 - 20.0;
    }
    let steps = [
        StepInfo {
            step: 7,
            t: 0.25,
            seed: 11,
            stream: 2,
        },
        StepInfo {
            step: (1 << 33) | 5,
            t: 3.5,
            seed: 11,
            stream: 2,
        },
    ];
    let draw = |kind, draw, arg| Expr::Random {
        kind,
        draw,
        arg: Box::new(arg),
    };
    let means = SPECIAL.into_iter().chain([2.0, 0.3, 9.99, 10.0, 37.5]);
    for mean in means {
        let body = vec![
            Stmt::Store(2, draw(Random::Poisson, 3, Expr::c(mean))),
            Stmt::Store(
                1,
                Expr::select(
                    Expr::Var(0),
                    draw(
                        Random::Poisson,
                        0,
                        Expr::bin(BinOp::Mul, Expr::Time, Expr::c(mean)),
                    ),
                    Expr::bin(
                        BinOp::Add,
                        draw(Random::Uniform, 1, Expr::c(0.0)),
                        draw(Random::Uniform, 1, Expr::c(0.0)),
                    ),
                ),
            ),
            Stmt::If(
                Expr::bin(BinOp::Gt, Expr::Var(1), Expr::c(0.5)),
                vec![Stmt::Store(0, draw(Random::Normal, 2, Expr::c(mean)))],
                vec![Stmt::Store(
                    0,
                    Expr::bin(
                        BinOp::Sub,
                        draw(Random::Exponential, 4, Expr::Var(0)),
                        // A Poisson draw of a per-element mean stays a call.
                        draw(Random::Poisson, 5, Expr::Var(1)),
                    ),
                )],
            ),
        ];
        let k = kernel(&format!("batched draws, mean {mean}"), 3, 0, 6, body);
        compare(&k, &arrays, 3, n, &steps).unwrap_or_else(|e| panic!("mean {mean}: {e}"));
    }
}

// ---------------------------------------------------------------------------------------------
// Operators on special values.

#[test]
fn operators_on_special_values() {
    // Element e holds the pair (SPECIAL[e / n], SPECIAL[e % n]) in v0 and v1.
    let n = SPECIAL.len();
    let mut arrays = vec![vec![0.0; n * n]; 3];
    for e in 0..n * n {
        arrays[0][e] = SPECIAL[e / n];
        arrays[1][e] = SPECIAL[e % n];
    }
    let info = StepInfo {
        step: 3,
        t: 0.25,
        seed: 11,
        stream: 2,
    };
    let mut body = Vec::new();
    for op in BINOPS {
        body.push(Stmt::Store(2, Expr::bin(op, Expr::Var(0), Expr::Var(1))));
        let k = kernel(
            &format!("binary {op:?}"),
            3,
            0,
            0,
            std::mem::take(&mut body),
        );
        compare(&k, &arrays, 0, n * n, &[info]).unwrap_or_else(|e| panic!("{op:?}: {e}"));
    }
    for f in FUNCS {
        body.push(Stmt::Store(2, Expr::call(f, Expr::Var(0))));
        let k = kernel(&format!("call {f:?}"), 3, 0, 0, std::mem::take(&mut body));
        compare(&k, &arrays, 0, n * n, &[info]).unwrap_or_else(|e| panic!("{f:?}: {e}"));
    }
    for op in [UnOp::Neg, UnOp::Not] {
        body.push(Stmt::Store(2, Expr::Unary(op, Box::new(Expr::Var(0)))));
        let k = kernel(&format!("unary {op:?}"), 3, 0, 0, std::mem::take(&mut body));
        compare(&k, &arrays, 0, n * n, &[info]).unwrap_or_else(|e| panic!("{op:?}: {e}"));
    }
    for kind in RANDOMS {
        body.push(Stmt::Store(
            2,
            Expr::Random {
                kind,
                draw: 1,
                arg: Box::new(Expr::Var(0)),
            },
        ));
        let k = kernel(
            &format!("random {kind:?}"),
            3,
            0,
            2,
            std::mem::take(&mut body),
        );
        compare(&k, &arrays, 0, n * n, &[info]).unwrap_or_else(|e| panic!("{kind:?}: {e}"));
    }
    // Select, if and spike on every condition value.
    body.push(Stmt::Store(
        2,
        Expr::select(Expr::Var(0), Expr::Var(1), Expr::c(7.0)),
    ));
    body.push(Stmt::If(
        Expr::Var(1),
        vec![Stmt::Spike],
        vec![Stmt::Store(0, Expr::c(-1.0))],
    ));
    let k = kernel("select and if", 3, 0, 0, body);
    compare(&k, &arrays, 0, n * n, &[info]).unwrap();
}

/// `min`/`max` of a zero and a signed-zero constant: the result keeps the first operand's sign
/// (LLVM 14 once gave `-0.0` for `min(x - x, -0.0)` with `x = 0`, found by
/// `call_free_kernels_agree`).
#[test]
fn min_and_max_with_signed_zero_constants() {
    let info = StepInfo {
        step: 0,
        t: 0.0,
        seed: 0,
        stream: 0,
    };
    let arrays = vec![vec![0.0; 20], vec![0.0; 20], vec![-0.0; 20]];
    for op in [BinOp::Min, BinOp::Max] {
        for c in [0.0, -0.0] {
            for a in [
                Expr::sub(Expr::Var(1), Expr::Var(1)),
                Expr::Var(1),
                Expr::Var(2),
            ] {
                let body = vec![Stmt::Store(0, Expr::bin(op, a.clone(), Expr::c(c)))];
                let k = kernel("signed zeros", 3, 0, 0, body);
                compare(&k, &arrays, 0, 20, &[info])
                    .unwrap_or_else(|e| panic!("{op:?}({a:?}, {c:?}): {e}"));
            }
        }
    }
}

/// A store in the `else` branch of a nested `if` whose condition is `sign(1 / sqrt(-0.0))`
/// (= -1, true): the store must not happen, so a `-0.0` in the array stays `-0.0` (found by
/// `call_free_kernels_agree` on the LLVM backend, elements 1..33 with a `-0.0` at 32).
#[test]
fn nested_else_store_under_a_true_condition_keeps_negative_zero() {
    let info = StepInfo {
        step: 0,
        t: 0.0,
        seed: 0,
        stream: 0,
    };
    let mut v0 = vec![0.0; 40];
    v0[32] = -0.0;
    let arrays = vec![v0, vec![0.0; 40], vec![0.0; 40]];
    let inner = Expr::call(
        Func::Sign,
        Expr::div(Expr::c(1.0), Expr::call(Func::Sqrt, Expr::c(-0.0))),
    );
    let body = vec![Stmt::If(
        Expr::Unary(UnOp::Neg, Box::new(Expr::c(1.0))),
        vec![Stmt::If(inner, vec![], vec![Stmt::Store(0, Expr::c(0.0))])],
        vec![],
    )];
    let k = kernel("nested else", 3, 0, 0, body);
    compare(&k, &arrays, 1, 33, &[info]).unwrap_or_else(|e| panic!("{e}"));
}

/// `max(0.0, l)` where the loop's previous iteration left `l = -(v < v) = -0.0`: the maximum of
/// `+0.0` and `-0.0` is the first operand, `+0.0`. LLVM 14 folded the compare-and-selects of
/// `max` with a computed `-0.0` into `maxnum`, whose zero sign is unspecified, and stored
/// `-0.0` (found by `call_free_kernels_agree` on the LLVM backend once it compiled loops).
#[test]
fn max_of_zeros_computed_in_a_loop_keeps_the_first_operand() {
    let info = StepInfo {
        step: 0,
        t: 0.0,
        seed: 0,
        stream: 0,
    };
    let arrays = vec![vec![0.0; 3]];
    let body = vec![Stmt::While {
        cond: Expr::c(1.0),
        max_iterations: 2,
        body: vec![
            Stmt::Store(
                0,
                Expr::call(
                    Func::Floor,
                    Expr::Binary(BinOp::Max, Box::new(Expr::c(0.0)), Box::new(Expr::Local(0))),
                ),
            ),
            Stmt::Let(
                0,
                Expr::Unary(
                    UnOp::Neg,
                    Box::new(Expr::Binary(
                        BinOp::Lt,
                        Box::new(Expr::Var(0)),
                        Box::new(Expr::Var(0)),
                    )),
                ),
            ),
        ],
    }];
    let k = kernel("max of zeros in a loop", 1, 1, 0, body);
    compare(&k, &arrays, 0, 3, &[info]).unwrap_or_else(|e| panic!("{e}"));
}

// ---------------------------------------------------------------------------------------------
// A leaky integrate-and-fire population.

fn lif_kernel() -> Kernel {
    use Expr as E;
    let (v, i_syn, refrac, bias) = (0, 1, 2, 3);
    let dt = 1e-4;
    let tau_m = 20e-3;
    let tau_syn = 5e-3;
    let (l_decay, l_drive, l_noise) = (0, 1, 2);
    let body = vec![
        Stmt::Let(l_decay, E::call(Func::Exp, E::c(-dt / tau_m))),
        Stmt::If(
            E::bin(BinOp::Gt, E::Var(refrac), E::c(0.0)),
            vec![Stmt::Store(
                refrac,
                E::bin(BinOp::Max, E::sub(E::Var(refrac), E::c(dt)), E::c(0.0)),
            )],
            vec![
                Stmt::Let(l_drive, E::add(E::Var(bias), E::Var(i_syn))),
                Stmt::Let(
                    l_noise,
                    E::mul(
                        E::c(2e-3 * (dt / tau_m).sqrt()),
                        E::Random {
                            kind: Random::Normal,
                            draw: 0,
                            arg: Box::new(E::c(0.0)),
                        },
                    ),
                ),
                Stmt::Store(
                    v,
                    E::add(
                        E::add(
                            E::mul(E::Var(v), E::Local(l_decay)),
                            E::mul(E::sub(E::c(1.0), E::Local(l_decay)), E::Local(l_drive)),
                        ),
                        E::Local(l_noise),
                    ),
                ),
                Stmt::If(
                    E::bin(BinOp::Ge, E::Var(v), E::c(-50e-3)),
                    vec![
                        Stmt::Store(v, E::c(-65e-3)),
                        Stmt::Store(refrac, E::c(2e-3)),
                        Stmt::Spike,
                    ],
                    vec![],
                ),
            ],
        ),
        Stmt::Store(
            i_syn,
            E::add(
                E::mul(E::Var(i_syn), E::call(Func::Expm1, E::c(-dt / tau_syn))),
                E::add(
                    E::Var(i_syn),
                    E::mul(
                        E::c(1e-3),
                        E::Random {
                            kind: Random::Poisson,
                            draw: 1,
                            arg: Box::new(E::mul(E::c(dt * 500.0), E::add(E::Index, E::c(1.0)))),
                        },
                    ),
                ),
            ),
        ),
    ];
    kernel("lif", 4, 3, 2, body)
}

#[test]
fn lif_population_for_1000_steps() {
    let k = lif_kernel();
    let n = 100;
    let a = vec![
        (0..n)
            .map(|e| -65e-3 + 1e-4 * e as f64)
            .collect::<Vec<f64>>(),
        vec![0.0; n],
        vec![0.0; n],
        (0..n).map(|e| -60e-3 + 2e-4 * e as f64).collect(),
    ];
    for (backend, jit_compile) in jit_backends() {
        lif_population_with(backend, jit_compile, &k, a.clone(), n);
    }
}

fn lif_population_with(
    backend: &str,
    jit_compile: JitCompile,
    k: &Kernel,
    mut a: Vec<Vec<f64>>,
    n: usize,
) {
    let mut b = a.clone();
    let jit = jit_compile(&[k]).unwrap();
    let mut total_spikes = 0;
    for step in 0..1000u64 {
        let info = StepInfo {
            step,
            t: step as f64 * 1e-4,
            seed: 42,
            stream: 1,
        };
        let mut sa = Vec::new();
        let mut sb = Vec::new();
        interp::run(k, &mut as_slices(&mut a), 0, n, info, &mut sa);
        // Two chunks, as a parallel runtime would split the population.
        jit.run(0, &mut as_slices(&mut b), 0, 37, info, &mut sb);
        jit.run(0, &mut as_slices(&mut b), 37, n, info, &mut sb);
        assert_eq!(sa, sb, "{backend}: spikes differ at step {step}");
        assert_eq!(
            canonical_arrays(&a),
            canonical_arrays(&b),
            "{backend}: arrays differ at step {step}"
        );
        total_spikes += sa.len();
    }
    assert!(
        total_spikes > 100,
        "the test population should spike ({total_spikes} spikes)"
    );
}

// ---------------------------------------------------------------------------------------------
// Compile time.

/// Kernels on the scalar loop (a `log` in an `if` body keeps them off the two-lane loop), the
/// way Cranelift records spikes there: in place where the kernel's only `spike` runs, through
/// a flag when two `spike`s may both run for an element (which must still record it once),
/// and either way out of line. Every element pattern of a 13-element range is covered by the
/// thresholds on `v0 = i / 12`; ranges start mid-population to check the element written.
#[test]
fn scalar_loop_records_each_spike_once() {
    use Expr as E;
    let spiking_reset = |threshold: f64| {
        Stmt::If(
            E::bin(BinOp::Gt, E::Var(0), E::c(threshold)),
            vec![Stmt::Store(1, E::call(Func::Log, E::Var(0))), Stmt::Spike],
            vec![Stmt::Store(1, E::c(0.0))],
        )
    };
    let once = vec![spiking_reset(0.4)];
    let twice = vec![
        spiking_reset(0.4),
        Stmt::If(
            E::bin(BinOp::Lt, E::Var(0), E::c(0.6)),
            vec![Stmt::Spike],
            vec![],
        ),
    ];
    let arrays = vec![
        (0..13).map(|i| f64::from(i) / 12.0).collect(),
        vec![0.0; 13],
    ];
    let info = StepInfo {
        step: 3,
        t: 0.0,
        seed: 1,
        stream: 0,
    };
    for (name, body) in [("one spike", once), ("two spikes", twice)] {
        let k = kernel(name, 2, 0, 0, body);
        for (start, end) in [(0, 13), (5, 13), (5, 6), (0, 0)] {
            compare(&k, &arrays, start, end, &[info])
                .unwrap_or_else(|e| panic!("{name}, {start}..{end}: {e}"));
        }
    }
}

/// A counting loop whose trip count differs per element (element i runs min(i, 5) times,
/// the bound cuts it), with a spike from inside the body and a value cached before the loop
/// and read after it.
#[test]
fn data_dependent_loop() {
    use Expr as E;
    let body = vec![
        Stmt::Store(1, E::c(0.0)),
        Stmt::Let(0, E::Var(2)),
        Stmt::While {
            cond: E::bin(BinOp::Lt, E::Var(1), E::Index),
            max_iterations: 5,
            body: vec![
                Stmt::Store(1, E::add(E::Var(1), E::c(1.0))),
                Stmt::Store(0, E::add(E::Var(0), E::mul(E::Var(1), E::Local(0)))),
                Stmt::If(
                    E::bin(BinOp::Ge, E::Var(1), E::c(3.0)),
                    vec![Stmt::Spike],
                    vec![],
                ),
            ],
        },
        Stmt::Store(2, E::add(E::Var(2), E::Var(1))),
    ];
    let k = kernel("loop", 3, 1, 0, body);
    let arrays = vec![vec![0.5; 9], vec![0.0; 9], (0..9).map(f64::from).collect()];
    let info = StepInfo {
        step: 0,
        t: 0.0,
        seed: 1,
        stream: 0,
    };
    compare(&k, &arrays, 0, 9, &[info, info]).unwrap();
    // And the interpreter counts as the loop says.
    let mut a = arrays.clone();
    let mut spikes = Vec::new();
    interp::run(&k, &mut as_slices(&mut a), 0, 9, info, &mut spikes);
    assert_eq!(a[1], vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 5.0, 5.0, 5.0]);
    assert_eq!(spikes, vec![3, 4, 5, 6, 7, 8]);
}

#[test]
fn compile_time_of_a_50_statement_kernel() {
    use Expr as E;
    let mut body = Vec::new();
    for s in 0..50u32 {
        let l = s % 8;
        let e = match s % 5 {
            0 => E::add(E::mul(E::Var(s % 4), E::c(0.99)), E::Local((l + 1) % 8)),
            1 => E::call(Func::Exp, E::neg(E::Local(l))),
            2 => E::select(
                E::bin(BinOp::Gt, E::Var(0), E::c(1.0)),
                E::Local(l),
                E::Var(1),
            ),
            3 => E::bin(BinOp::Min, E::div(E::Local(l), E::c(3.0)), E::Var(2)),
            _ => E::add(
                E::Local(l),
                E::Random {
                    kind: Random::Normal,
                    draw: s,
                    arg: Box::new(E::c(0.0)),
                },
            ),
        };
        body.push(if s % 3 == 2 {
            Stmt::Store(s % 4, e)
        } else if s % 7 == 6 {
            Stmt::If(E::Var(3), vec![Stmt::Let(l, e), Stmt::Spike], vec![])
        } else {
            Stmt::Let(l, e)
        });
    }
    let k = kernel("fifty", 4, 8, 50, body);
    for (backend, jit_compile) in jit_backends() {
        let t0 = Instant::now();
        let jit = jit_compile(&[&k]).unwrap();
        let wall = t0.elapsed();
        eprintln!(
            "50-statement kernel, {backend}: {wall:?} wall, {:?}",
            jit.timing()
        );
    }
    let arrays = vec![vec![0.5; 16]; 4];
    compare(
        &k,
        &arrays,
        1,
        15,
        &[StepInfo {
            step: 1,
            t: 0.0,
            seed: 3,
            stream: 0,
        }],
    )
    .unwrap();
}

#[test]
fn compiled_kernels_can_be_shared_across_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<snnc::codegen::CompiledKernels>();
}

/// Spike lists over every position pattern the compaction of the LLVM backend treats
/// differently (blocks of eight flags skipped when empty, a partial last block, a spike as the
/// first or last element of a block or of the range, all or none spiking), on ranges that do
/// and do not start at 0: the same lists as the interpreter, for every backend.
#[test]
fn spike_lists_over_every_position_pattern() {
    let body = vec![Stmt::If(
        Expr::Binary(
            BinOp::Gt,
            Box::new(Expr::Var(0)),
            Box::new(Expr::Const(0.5)),
        ),
        vec![Stmt::Spike],
        vec![],
    )];
    let k = kernel("compaction", 1, 0, 0, body);
    let info = StepInfo {
        step: 3,
        t: 3e-4,
        seed: 1,
        stream: 0,
    };
    let n = 1000;
    type Pattern<'a> = Box<dyn Fn(usize) -> bool + 'a>;
    let patterns: Vec<(&str, Pattern)> = vec![
        ("none", Box::new(|_| false)),
        ("all", Box::new(|_| true)),
        ("every 7th", Box::new(|i| i % 7 == 0)),
        ("block edges", Box::new(|i| i % 8 == 0 || i % 8 == 7)),
        ("one in 300", Box::new(|i| i % 300 == 299)),
        ("the last", Box::new(|i| i == n - 1)),
        ("pseudo-random", Box::new(|i| (i * 2_654_435_761) % 97 < 5)),
    ];
    for (name, spikes) in &patterns {
        let v: Vec<f64> = (0..n).map(|i| if spikes(i) { 1.0 } else { 0.0 }).collect();
        for (start, end) in [(0, n), (3, n), (0, 1), (5, 13), (8, 16), (1, 40), (0, 999)] {
            compare(&k, std::slice::from_ref(&v), start, end, &[info])
                .unwrap_or_else(|e| panic!("{name}, elements {start}..{end}: {e}"));
        }
    }
}
