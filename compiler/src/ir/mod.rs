//! The intermediate representation: unit-free, typed kernels.
//!
//! A [`Kernel`] is straight-line code with structured `if`s and bounded `while` loops, run once per element (neuron) of
//! a population over an index range. It reads and writes per-element arrays ([`Expr::Var`],
//! [`Stmt::Store`]), computes temporaries ([`Stmt::Let`], [`Expr::Local`]), draws random numbers
//! keyed by (seed, stream, element, step, draw index), and may emit a spike for the element.
//! Every number is an `f64` in SI units; booleans are 0.0 and 1.0. An array may be *stored* as
//! `f32` ([`VarInfo::storage`], a network of `precision = f32`): loads widen it, stores round. Lowering produces kernels,
//! `opt` rewrites them, `interp` runs them as the reference semantics, and `codegen` compiles
//! them. The IR knows nothing of the AST, units or spans.

pub mod interp;
pub mod print;

pub use snnc_runtime::array::Precision;

use std::fmt;

/// Index of a per-element array in a kernel's variable table.
pub type VarId = u32;
/// Index of a temporary within one kernel.
pub type LocalId = u32;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnOp {
    Neg,
    Not,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    /// Remainder with the sign of the dividend (Rust's `%` on f64).
    Rem,
    Pow,
    Min,
    Max,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    And,
    Or,
}

/// Functions of one argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Func {
    Exp,
    /// `exp(x) - 1`, accurate near zero; used by integrators.
    Expm1,
    Log,
    Log10,
    Sqrt,
    Abs,
    Sign,
    Sin,
    Cos,
    Tan,
    Tanh,
    Floor,
    Ceil,
}

/// Random draws; each occurrence in a kernel has its own draw index, so draws are independent
/// and reproducible whatever order elements are processed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Random {
    /// Uniform on [0, 1).
    Uniform,
    /// Standard normal.
    Normal,
    /// Exponential with mean 1.
    Exponential,
    /// Poisson with the mean given as the argument.
    Poisson,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Const(f64),
    /// The element's value in a per-element array.
    Var(VarId),
    Local(LocalId),
    /// Simulation time at the start of the step, in seconds.
    Time,
    /// The element's index within its population.
    Index,
    Unary(UnOp, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Call(Func, Box<Expr>),
    /// `if c != 0 then a else b`; both branches are pure, so either may be evaluated.
    Select(Box<Expr>, Box<Expr>, Box<Expr>),
    /// A random draw; `Poisson` takes its mean as the argument, the others ignore it.
    Random {
        kind: Random,
        draw: u32,
        arg: Box<Expr>,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Stmt {
    Let(LocalId, Expr),
    Store(VarId, Expr),
    If(Expr, Vec<Stmt>, Vec<Stmt>),
    /// A bounded loop: while `cond` is nonzero, runs `body`, at most `max_iterations` times.
    /// `cond` is evaluated before every iteration and sees the body's stores. Adaptive
    /// integrators use it for their sub-steps; the bound keeps every kernel terminating.
    /// Locals defined in the body keep the single-definition rule (one `Let` per local), so
    /// a value carried from one iteration to the next lives in an array.
    While {
        cond: Expr,
        max_iterations: u32,
        body: Vec<Stmt>,
    },
    /// Appends the current element's index to the kernel's spike output.
    Spike,
}

/// How a per-element array is used, for printing and memory layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VarRole {
    /// Declared `state` in the model.
    State,
    /// A parameter given per element (set by an initialiser that varies, or driven by input).
    Param,
    /// Bookkeeping the compiler adds (the refractory countdown).
    Internal,
}

/// Where a kernel finds the value of a variable for the element it is processing.
///
/// Population kernels use `Element` throughout. Plasticity handlers run over synapses but also
/// read and write per-neuron traces: their `Scalar` variables are one value for the whole call
/// (the runtime passes a pointer to it), and their `Gather(g)` variables are indexed through
/// the call's index array `g` (`value = array[index_g[element]]`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Access {
    /// `array[element]`.
    #[default]
    Element,
    /// `array[0]`: one value for every element of the call.
    Scalar,
    /// `array[gather[g][element]]`, `g` in `0..GATHERS`.
    Gather(u8),
}

/// The number of index arrays a kernel call may gather through.
pub const GATHERS: usize = 2;

#[derive(Clone, Debug, PartialEq)]
pub struct VarInfo {
    pub name: String,
    pub role: VarRole,
    /// How the variable is addressed (always `Element` in population kernels).
    pub access: Access,
    /// The unit users see this variable in, and its SI scale (for recording).
    pub unit: String,
    pub scale: f64,
    /// How the array is stored. An `F32` variable is widened (exactly) when the kernel loads
    /// it and rounded to the nearest `f32` when the kernel stores it; every later read in the
    /// kernel, cached or not, sees the rounded value. Arithmetic is `f64` either way.
    pub storage: Precision,
}

/// Per-element code for one population and one step.
#[derive(Clone, Debug, PartialEq)]
pub struct Kernel {
    pub name: String,
    pub vars: Vec<VarInfo>,
    pub n_locals: u32,
    /// Number of distinct random draws per element and step.
    pub n_draws: u32,
    pub body: Vec<Stmt>,
    /// Notes for `snnc ir`: which integrator each ODE system got, and why.
    pub notes: Vec<String>,
}

impl Kernel {
    pub fn var(&self, name: &str) -> Option<VarId> {
        self.vars
            .iter()
            .position(|v| v.name == name)
            .map(|i| i as VarId)
    }
}

/// Allocates locals and draw indices while building a kernel.
#[derive(Debug, Default)]
pub struct Builder {
    pub n_locals: u32,
    pub n_draws: u32,
}

impl Builder {
    pub fn local(&mut self) -> LocalId {
        self.n_locals += 1;
        self.n_locals - 1
    }

    pub fn draw(&mut self) -> u32 {
        self.n_draws += 1;
        self.n_draws - 1
    }
}

// Small constructors keep lowering and the integrators readable. They build trees; they are
// not arithmetic on values, so the operator traits would be the wrong promise.
#[allow(clippy::should_implement_trait)]
impl Expr {
    pub fn c(value: f64) -> Expr {
        Expr::Const(value)
    }

    pub fn bin(op: BinOp, a: Expr, b: Expr) -> Expr {
        Expr::Binary(op, Box::new(a), Box::new(b))
    }

    pub fn add(a: Expr, b: Expr) -> Expr {
        Expr::bin(BinOp::Add, a, b)
    }

    pub fn sub(a: Expr, b: Expr) -> Expr {
        Expr::bin(BinOp::Sub, a, b)
    }

    pub fn mul(a: Expr, b: Expr) -> Expr {
        Expr::bin(BinOp::Mul, a, b)
    }

    pub fn div(a: Expr, b: Expr) -> Expr {
        Expr::bin(BinOp::Div, a, b)
    }

    pub fn call(f: Func, a: Expr) -> Expr {
        Expr::Call(f, Box::new(a))
    }

    pub fn select(c: Expr, a: Expr, b: Expr) -> Expr {
        Expr::Select(Box::new(c), Box::new(a), Box::new(b))
    }

    pub fn neg(a: Expr) -> Expr {
        Expr::Unary(UnOp::Neg, Box::new(a))
    }

    /// Whether the expression reads the given per-element variable.
    pub fn reads_var(&self, var: VarId) -> bool {
        let mut found = false;
        self.visit(&mut |e| found |= matches!(e, Expr::Var(v) if *v == var));
        found
    }

    /// Whether the expression draws random numbers.
    pub fn is_random(&self) -> bool {
        let mut found = false;
        self.visit(&mut |e| found |= matches!(e, Expr::Random { .. }));
        found
    }

    /// Calls `f` on this expression and every subexpression, parents first.
    pub fn visit(&self, f: &mut dyn FnMut(&Expr)) {
        f(self);
        match self {
            Expr::Const(_) | Expr::Var(_) | Expr::Local(_) | Expr::Time | Expr::Index => {}
            Expr::Unary(_, a) | Expr::Call(_, a) => a.visit(f),
            Expr::Random { arg, .. } => arg.visit(f),
            Expr::Binary(_, a, b) => {
                a.visit(f);
                b.visit(f);
            }
            Expr::Select(c, a, b) => {
                c.visit(f);
                a.visit(f);
                b.visit(f);
            }
        }
    }
}

impl fmt::Display for Func {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Func::Exp => "exp",
            Func::Expm1 => "expm1",
            Func::Log => "log",
            Func::Log10 => "log10",
            Func::Sqrt => "sqrt",
            Func::Abs => "abs",
            Func::Sign => "sign",
            Func::Sin => "sin",
            Func::Cos => "cos",
            Func::Tan => "tan",
            Func::Tanh => "tanh",
            Func::Floor => "floor",
            Func::Ceil => "ceil",
        };
        f.write_str(name)
    }
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
            BinOp::Pow => "^",
            BinOp::Min => "min",
            BinOp::Max => "max",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::And => "and",
            BinOp::Or => "or",
        }
    }
}
