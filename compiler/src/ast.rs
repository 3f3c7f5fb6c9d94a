//! The abstract syntax tree: what the user wrote, with spans, and no meaning attached.
//!
//! The parser builds it; name resolution and checking read it. It does not know which names
//! exist, what units mean, or how anything is computed: `20 ms` is a number with a unit
//! expression, `tau_m` is just a name. Error recovery leaves `Error` nodes where the parser
//! skipped input, so later stages can keep going and report more.

use crate::source::Span;

/// A name as written, with where it was written.
#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct File {
    pub items: Vec<Item>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Import(Import),
    Model(Model),
    Network(Network),
    /// Input the parser skipped after a syntax error.
    Error(Span),
}

/// `import stdlib.neurons.lif` or `import "models/mine.snn"`; brings every model of that
/// file into scope.
#[derive(Clone, Debug, PartialEq)]
pub struct Import {
    pub path: ImportPath,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ImportPath {
    /// Dotted module path: `stdlib.neurons.lif`.
    Module(Vec<Ident>),
    /// A file path relative to the importing file.
    File { path: String, span: Span },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ModelKind {
    Neuron,
    Synapse,
}

impl ModelKind {
    pub fn word(self) -> &'static str {
        match self {
            ModelKind::Neuron => "neuron",
            ModelKind::Synapse => "synapse",
        }
    }
}

/// A `neuron` or `synapse` model.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    pub kind: ModelKind,
    pub doc: Option<String>,
    pub name: Ident,
    pub members: Vec<Member>,
    pub span: Span,
}

/// Where a variable lives, as written in front of `param` or `state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Placement {
    /// One per neuron (in a neuron model) or one per synapse (in a synapse model).
    Each,
    /// One value for the whole population or projection (`shared`).
    Shared,
    /// One per presynaptic neuron of a projection (`pre`).
    Pre,
    /// One per postsynaptic neuron of a projection (`post`).
    Post,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VarKind {
    Param,
    State,
    /// `input I_syn: pA` (neurons only): the sum of the continuous outputs of the kernel
    /// synapses a projection binds to it; zero when nothing is bound.
    Input,
}

/// `param tau_m: ms = 20 ms`, `pre state x: 1 = 0`, ...
#[derive(Clone, Debug, PartialEq)]
pub struct VarDecl {
    pub doc: Option<String>,
    pub kind: VarKind,
    pub placement: Placement,
    pub name: Ident,
    pub unit: UnitExpr,
    pub default: Option<Expr>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Member {
    Var(VarDecl),
    /// `let I_syn = ge * (E_e - v)`: a named expression, substituted where used.
    Let {
        name: Ident,
        value: Expr,
        span: Span,
    },
    /// `dv/dt = rhs [unless refractory]`
    Ode(Ode),
    /// `method = rk4`, or with named arguments: `method = rkf45(atol = 1e-6)`
    Method(MethodChoice),
    /// `spike when v > v_th`
    Spike {
        condition: Expr,
        span: Span,
    },
    /// `reset { ... }`
    Reset {
        body: Block,
        span: Span,
    },
    /// `refractory t_ref`
    Refractory {
        period: Expr,
        span: Span,
    },
    /// `target g: nS`: the postsynaptic variable a synapse writes, bound at connect time.
    /// Without a unit (`target g`) the synapse is generic: the port takes the unit of whatever
    /// variable a projection binds it to, and `[g]` names that unit. With a value
    /// (`target I: pA = g * (E_rev - V_m)`) the synapse is a *kernel synapse*: the value is
    /// its continuous output, added every step to the neuron `input` the projection binds.
    Target {
        name: Ident,
        unit: Option<UnitExpr>,
        value: Option<Expr>,
        span: Span,
    },
    /// `on pre { ... }` / `on post { ... }`
    On {
        event: Ident,
        body: Block,
        span: Span,
    },
    Error(Span),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Ode {
    pub var: Ident,
    pub rhs: Expr,
    pub unless_refractory: bool,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    pub stmts: Vec<Stmt>,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AssignOp {
    Set,
    Add,
    Sub,
    Mul,
    Div,
}

impl AssignOp {
    pub fn text(self) -> &'static str {
        match self {
            AssignOp::Set => "=",
            AssignOp::Add => "+=",
            AssignOp::Sub => "-=",
            AssignOp::Mul => "*=",
            AssignOp::Div => "/=",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Stmt {
    Assign {
        target: Ident,
        op: AssignOp,
        value: Expr,
        span: Span,
    },
    If {
        condition: Expr,
        then_block: Block,
        else_block: Option<Block>,
        span: Span,
    },
    Error(Span),
}

/// A unit as written after `:` in a declaration: `mV`, `1/ms`, `nS/mV^2`, `1`, or `[g]`
/// (the unit of the target port `g`, for synapses generic over what they drive).
#[derive(Clone, Debug, PartialEq)]
pub struct UnitExpr {
    pub kind: UnitExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum UnitExprKind {
    One,
    Name(String),
    UnitOf(Ident),
    Mul(Box<UnitExpr>, Box<UnitExpr>),
    Div(Box<UnitExpr>, Box<UnitExpr>),
    Pow(Box<UnitExpr>, i32),
    Error,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Pow,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
}

impl BinOp {
    pub fn text(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
            BinOp::Pow => "^",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::And => "and",
            BinOp::Or => "or",
        }
    }

    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnOp {
    Neg,
    Not,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
    /// Nesting depth (1 for a leaf). The parser refuses expressions deeper than
    /// [`MAX_EXPR_DEPTH`], so every later stage may recurse over expressions safely.
    pub depth: u32,
}

/// The deepest expression the parser accepts; far beyond anything written by hand, far below
/// what would exhaust the stack of a recursive pass.
pub const MAX_EXPR_DEPTH: u32 = 256;

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    /// A plain number: dimensionless.
    Number(f64),
    /// A number with a unit: `20 ms`.
    Quantity(f64, UnitExpr),
    Bool(bool),
    Str(String),
    Name(Ident),
    Unary(UnOp, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Call {
        function: Ident,
        args: Vec<Arg>,
    },
    Error,
}

/// A call argument, positional (`uniform(0, 1)`) or named (`bernoulli(p = 0.1)`).
#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    pub name: Option<Ident>,
    pub value: Expr,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Network {
    pub doc: Option<String>,
    pub name: Ident,
    pub items: Vec<NetItem>,
    pub span: Span,
}

/// `name = value` inside braces: population initialisers and synapse settings.
#[derive(Clone, Debug, PartialEq)]
pub struct Init {
    pub name: Ident,
    pub value: Expr,
}

/// A population, optionally restricted to an index range: `E`, `E[0..10]`.
#[derive(Clone, Debug, PartialEq)]
pub struct PopRef {
    pub name: Ident,
    pub range: Option<(Expr, Expr)>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum NetItem {
    /// `dt = 0.1 ms`, `seed = 1`, `precision = f64`
    Setting {
        name: Ident,
        value: Expr,
        span: Span,
    },
    /// `E = LifExp[3200] { v = uniform(-60 mV, -50 mV) }`
    Population {
        name: Ident,
        model: Ident,
        size: Expr,
        inits: Vec<Init>,
        /// `method = ...` after the population: overrides the model's integration method.
        method: Option<MethodChoice>,
        span: Span,
    },
    /// `S = spikes[100] from "spikes.npy"`: a spike-source array read from a file.
    SpikeSource {
        name: Ident,
        size: Expr,
        path: String,
        path_span: Span,
        span: Span,
    },
    /// `E -> E, I : Static { w = 1.62 mV, target = ge } connect bernoulli(p = 0.02) delay 0.1 ms`
    Projection(Projection),
    /// `input E.I_e = 375 pA * pulse(100 ms, 400 ms)` or `input E.I_e from "i.npy" every 1 ms`
    Input(InputDecl),
    /// `record spikes of E, I` / `record v, ge of E[0..10] every 1 ms`
    Record {
        what: RecordWhat,
        of: Vec<PopRef>,
        every: Option<Expr>,
        span: Span,
    },
    /// `record w of Input -> Post every 10 s` (samples of chosen synapses) or
    /// `record w of Input -> Post` (the whole projection at the end, as a connection table).
    RecordSynapses {
        what: RecordWhat,
        source: PopRef,
        target: PopRef,
        every: Option<Expr>,
        span: Span,
    },
    /// `run 1 s`
    Run {
        duration: Expr,
        span: Span,
    },
    Error(Span),
}

#[derive(Clone, Debug, PartialEq)]
pub enum RecordWhat {
    Spikes(Span),
    Vars(Vec<Ident>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Projection {
    pub sources: Vec<PopRef>,
    pub targets: Vec<PopRef>,
    pub synapse: Ident,
    pub inits: Vec<Init>,
    pub connect: Option<Connect>,
    /// The axonal delay (before the synapse).
    pub delay: Option<Expr>,
    /// `delay AXONAL, dendritic EXPR`: the delay after the synapse (the word is kept to check
    /// it).
    pub dendritic_delay: Option<(Ident, Expr)>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Connect {
    /// `all_to_all`, `bernoulli(p = 0.1)`, `fixed_indegree(k = 100, autapses = false)`...
    Rule {
        rule: Ident,
        args: Vec<Arg>,
        span: Span,
    },
    /// `where abs(i - j) < 10`: a boolean expression over source `i` and target `j`.
    Where { condition: Expr, span: Span },
    /// `from "pairs.npy"`: a table of (source, target[, weight[, delay]]) rows.
    File {
        path: String,
        path_span: Span,
        span: Span,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct InputDecl {
    pub population: PopRef,
    pub variable: Ident,
    pub source: InputSource,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum InputSource {
    /// An expression of time `t`: a constant, a step, a sine...
    Expr(Expr),
    /// `input E.V_m += J * poisson(rate * dt)`: added to the variable every step, after
    /// integration and before the threshold (the way NEST adds its ring-buffer input).
    Add(Expr),
    /// A timed array read from a file, one row per `every` interval.
    File {
        path: String,
        path_span: Span,
        every: Expr,
    },
}

impl Expr {
    pub fn new(kind: ExprKind, span: Span) -> Self {
        let depth = 1 + match &kind {
            ExprKind::Unary(_, a) => a.depth,
            ExprKind::Binary(_, a, b) => a.depth.max(b.depth),
            ExprKind::Call { args, .. } => args.iter().map(|a| a.value.depth).max().unwrap_or(0),
            _ => 0,
        };
        Expr { kind, span, depth }
    }
}

/// An integration method as written, `method = rk4` or `method = rkf45(atol = 1e-6)`: a model
/// member, or a population's override of its model's.
#[derive(Clone, Debug, PartialEq)]
pub struct MethodChoice {
    pub method: Ident,
    pub args: Vec<Arg>,
    pub span: Span,
}
