//! The reference interpreter: the meaning of a kernel, executed directly.
//!
//! Code generation must agree with it exactly (the differential tests compare them), so it is
//! written for clarity, not speed: one recursive evaluation per expression.
//!
//! Storage precision ([`super::VarInfo::storage`]): a store to an `f32` variable rounds the
//! value to the nearest `f32` (`as f32`) before it is written, and every read returns the stored
//! value widened to `f64`, so a read after a store sees the rounded value. Arrays may be handed
//! over as `f32` storage ([`run_arrays`]) or as `f64` slices ([`run`]), in which case an `f32`
//! variable holds `f32` values widened; both give the same bits. It owns nothing
//! but the evaluation rules; random draws come from the runtime's counter-based generator so
//! that interpreted and compiled kernels draw the same numbers.

use super::{Access, BinOp, Expr, Func, Kernel, Precision, Random, Stmt, UnOp};
use snnc_runtime::abi::{self, snnc_random};
use snnc_runtime::array::ArrayMut;
use snnc_runtime::rng::Stream;

/// What a kernel invocation reads besides its arrays.
#[derive(Clone, Copy, Debug)]
pub struct StepInfo {
    pub step: u64,
    /// Time at the start of the step, in seconds.
    pub t: f64,
    pub seed: u64,
    /// The random stream of this kernel (one per population).
    pub stream: u32,
}

/// Runs `kernel` for elements `start..end`, appending spiking elements to `spikes`.
pub fn run(
    kernel: &Kernel,
    arrays: &mut [&mut [f64]],
    start: usize,
    end: usize,
    info: StepInfo,
    spikes: &mut Vec<u32>,
) {
    run_gathered(kernel, arrays, &[], start, end, info, spikes);
}

/// As [`run`], for kernels with `Scalar` and `Gather` variables ([`Access`]): a `Scalar`
/// variable is element 0 of its array, a `Gather(g)` variable element `gathers[g][element]`.
pub fn run_gathered(
    kernel: &Kernel,
    arrays: &mut [&mut [f64]],
    gathers: &[&[u32]],
    start: usize,
    end: usize,
    info: StepInfo,
    spikes: &mut Vec<u32>,
) {
    let mut views: Vec<ArrayMut> = arrays.iter_mut().map(|a| ArrayMut::F64(a)).collect();
    run_arrays(kernel, &mut views, gathers, start, end, info, spikes);
}

/// As [`run_gathered`], with arrays stored as `f64` or `f32`.
pub fn run_arrays(
    kernel: &Kernel,
    arrays: &mut [ArrayMut<'_>],
    gathers: &[&[u32]],
    start: usize,
    end: usize,
    info: StepInfo,
    spikes: &mut Vec<u32>,
) {
    run_window(kernel, arrays, gathers, 0, start, end, info, spikes);
}

/// Runs `kernel` for elements `first..first + n` of arrays that hold only those `n` elements
/// (element `first + i` at index `i`): a window of a larger range, evaluated without
/// allocating the whole. The element index (`Index`, random streams) is the full one.
pub fn run_slice(kernel: &Kernel, arrays: &mut [ArrayMut<'_>], first: usize, info: StepInfo) {
    let n = arrays.first().map_or(0, |a| a.len());
    run_window(
        kernel,
        arrays,
        &[],
        first,
        first,
        first + n,
        info,
        &mut Vec::new(),
    );
}

/// [`run_arrays`] on arrays whose index 0 holds element `base`.
#[allow(clippy::too_many_arguments)]
fn run_window(
    kernel: &Kernel,
    arrays: &mut [ArrayMut<'_>],
    gathers: &[&[u32]],
    base: usize,
    start: usize,
    end: usize,
    info: StepInfo,
    spikes: &mut Vec<u32>,
) {
    let mut locals = vec![0.0; kernel.n_locals as usize];
    let storage: Vec<Precision> = kernel.vars.iter().map(|v| v.storage).collect();
    let stream_key = Stream::new(info.seed, info.stream).key();
    let access: Vec<Access> = kernel.vars.iter().map(|v| v.access).collect();
    for element in start..end {
        let mut frame = Frame {
            arrays: &mut *arrays,
            locals: &mut locals,
            element,
            base,
            info,
            stream_key,
            access: &access,
            storage: &storage,
            gathers,
        };
        if frame.exec(&kernel.body) {
            spikes.push(element as u32);
        }
    }
}

struct Frame<'a, 'b> {
    arrays: &'a mut [ArrayMut<'b>],
    locals: &'a mut [f64],
    element: usize,
    /// The element at index 0 of the arrays ([`run_slice`]); 0 otherwise.
    base: usize,
    info: StepInfo,
    stream_key: u64,
    access: &'a [Access],
    storage: &'a [Precision],
    gathers: &'a [&'a [u32]],
}

impl Frame<'_, '_> {
    /// The index of the current element's value in the array of `var`.
    fn slot(&self, var: u32) -> usize {
        match self.access.get(var as usize).copied().unwrap_or_default() {
            Access::Element => self.element - self.base,
            Access::Scalar => 0,
            Access::Gather(g) => self.gathers[g as usize][self.element] as usize,
        }
    }

    /// Executes statements; returns whether a spike was emitted.
    fn exec(&mut self, stmts: &[Stmt]) -> bool {
        let mut spiked = false;
        for stmt in stmts {
            match stmt {
                Stmt::Let(local, e) => self.locals[*local as usize] = self.eval(e),
                Stmt::Store(var, e) => {
                    let value = self.eval(e);
                    let slot = self.slot(*var);
                    let storage = self.storage.get(*var as usize).copied().unwrap_or_default();
                    self.arrays[*var as usize].set(slot, storage.round(value));
                }
                Stmt::If(c, then_body, else_body) => {
                    spiked |= if self.eval(c) != 0.0 {
                        self.exec(then_body)
                    } else {
                        self.exec(else_body)
                    };
                }
                Stmt::While {
                    cond,
                    max_iterations,
                    body,
                } => {
                    let mut n = 0;
                    while n < *max_iterations && self.eval(cond) != 0.0 {
                        spiked |= self.exec(body);
                        n += 1;
                    }
                }
                Stmt::Spike => spiked = true,
            }
        }
        spiked
    }

    fn eval(&self, expr: &Expr) -> f64 {
        match expr {
            Expr::Const(v) => *v,
            Expr::Var(v) => self.arrays[*v as usize].get(self.slot(*v)),
            Expr::Local(l) => self.locals[*l as usize],
            Expr::Time => self.info.t,
            Expr::Index => self.element as f64,
            Expr::Unary(UnOp::Neg, a) => -self.eval(a),
            Expr::Unary(UnOp::Not, a) => bool_value(self.eval(a) == 0.0),
            Expr::Binary(op, a, b) => binary(*op, self.eval(a), self.eval(b)),
            Expr::Call(f, a) => call(*f, self.eval(a)),
            Expr::Select(c, a, b) => {
                if self.eval(c) != 0.0 {
                    self.eval(a)
                } else {
                    self.eval(b)
                }
            }
            Expr::Random { kind, draw, arg } => snnc_random(
                self.stream_key,
                self.element as u32,
                self.info.step,
                *draw,
                random_kind(*kind),
                self.eval(arg),
            ),
        }
    }
}

fn bool_value(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

/// The arithmetic every backend must reproduce bit for bit.
pub fn binary(op: BinOp, a: f64, b: f64) -> f64 {
    match op {
        BinOp::Add => a + b,
        BinOp::Sub => a - b,
        BinOp::Mul => a * b,
        BinOp::Div => a / b,
        BinOp::Rem => a % b,
        BinOp::Pow => a.powf(b),
        BinOp::Min => a.min(b),
        BinOp::Max => a.max(b),
        BinOp::Lt => bool_value(a < b),
        BinOp::Le => bool_value(a <= b),
        BinOp::Gt => bool_value(a > b),
        BinOp::Ge => bool_value(a >= b),
        BinOp::Eq => bool_value(a == b),
        BinOp::Ne => bool_value(a != b),
        BinOp::And => bool_value(a != 0.0 && b != 0.0),
        BinOp::Or => bool_value(a != 0.0 || b != 0.0),
    }
}

pub fn call(f: Func, a: f64) -> f64 {
    match f {
        Func::Exp => snnc_runtime::math::exp(a),
        Func::Expm1 => snnc_runtime::math::expm1(a),
        Func::Log => a.ln(),
        Func::Log10 => a.log10(),
        Func::Sqrt => a.sqrt(),
        Func::Abs => a.abs(),
        Func::Sign => {
            if a > 0.0 {
                1.0
            } else if a < 0.0 {
                -1.0
            } else {
                0.0
            }
        }
        Func::Sin => a.sin(),
        Func::Cos => a.cos(),
        Func::Tan => a.tan(),
        Func::Tanh => a.tanh(),
        Func::Floor => a.floor(),
        Func::Ceil => a.ceil(),
    }
}

/// The ABI number of a kind of random draw.
pub fn random_kind(kind: Random) -> u32 {
    match kind {
        Random::Uniform => abi::RANDOM_UNIFORM,
        Random::Normal => abi::RANDOM_NORMAL,
        Random::Exponential => abi::RANDOM_EXPONENTIAL,
        Random::Poisson => abi::RANDOM_POISSON,
    }
}
