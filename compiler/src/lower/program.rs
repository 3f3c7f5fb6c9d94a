//! Lowering of a checked network into an IR program: kernels per population, and plain data
//! describing projections, spike sources, inputs and recordings.

use super::adaptive;
use super::odes::{self, Method, Ode};
use crate::ast::{self, ExprKind, Member, NetItem, VarKind};
use crate::check::dims::unit_scale;
use crate::diagnostics::Diagnostic;
use crate::ir::{
    self, interp, BinOp, Builder, Expr, Func, Kernel, Precision, Stmt, VarInfo, VarRole,
};
use crate::resolve::{self, ModelInfo, Resolved, Symbol};
use crate::source::Span;
use crate::units;
use std::collections::HashMap;

/// A whole network, ready to be instantiated by the runtime.
#[derive(Clone, Debug)]
pub struct Program {
    pub network: String,
    pub dt: f64,
    pub seed: u64,
    /// Seconds; `None` when the file has no `run` and none was given on the command line.
    pub duration: Option<f64>,
    pub populations: Vec<PopulationIr>,
    pub sources: Vec<SourceIr>,
    pub projections: Vec<ProjectionIr>,
    pub records: Vec<RecordIr>,
    pub timed_inputs: Vec<TimedInputIr>,
    /// Population-level values and who reads them (`lower/population.rs`).
    pub reductions: Vec<super::population::ReductionReaderIr>,
    /// What lowering accepted but wants the user to know (settings not implemented yet).
    pub warnings: Vec<Diagnostic>,
    /// The network's `precision`: how per-element and per-synapse arrays are stored.
    pub precision: Precision,
}

#[derive(Clone, Debug)]
pub struct PopulationIr {
    pub name: String,
    pub model: String,
    pub size: u32,
    /// Runs once before the first step; shares `update`'s variables.
    pub init: Kernel,
    pub update: Kernel,
    pub span: Span,
    /// The parameters folded into the kernels as uniform constants, sorted by name: a deployed
    /// model cannot change them after the build.
    pub constants: Vec<ConstantIr>,
}

/// A uniform parameter folded into the code.
#[derive(Clone, Debug, PartialEq)]
pub struct ConstantIr {
    pub name: String,
    /// SI value.
    pub value: f64,
    /// The declared unit and its SI scale.
    pub unit: String,
    pub scale: f64,
}

/// A spike-source array read from a file.
#[derive(Clone, Debug)]
pub struct SourceIr {
    pub name: String,
    pub size: u32,
    pub path: String,
    pub span: Span,
}

/// What sends spikes into a projection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Node {
    Population(usize),
    Source(usize),
}

#[derive(Clone, Debug)]
pub enum ConnectIr {
    AllToAll,
    OneToOne,
    Bernoulli(f64),
    /// `k` sources per target; with multapses, drawn with replacement.
    FixedIndegree {
        k: u32,
        multapses: bool,
    },
    FixedOutdegree(u32),
    FixedTotal(u64),
    /// A per-pair kernel storing 1 into `SYNAPSE_OUT` for pairs to connect.
    Where(Kernel),
    File {
        path: String,
        span: Span,
    },
}

/// A per-synapse value: one constant, or a kernel over synapses that reads the source index
/// from `SYNAPSE_PRE`, the target index from `SYNAPSE_POST`, and stores into `SYNAPSE_OUT`.
#[derive(Clone, Debug)]
pub enum SynapseValue {
    Const(f64),
    PerSynapse(Kernel),
}

pub const SYNAPSE_PRE: ir::VarId = 0;
pub const SYNAPSE_POST: ir::VarId = 1;
pub const SYNAPSE_OUT: ir::VarId = 2;

#[derive(Clone, Debug)]
pub struct ProjectionIr {
    pub name: String,
    pub pre: Node,
    pub post: usize,
    /// The variable of the target population's kernels that synapses add into.
    pub target_var: ir::VarId,
    pub connect: ConnectIr,
    pub autapses: bool,
    pub weight: SynapseValue,
    /// Seconds.
    pub delay: SynapseValue,
    pub span: Span,
    pub delay_span: Span,
    /// Seconds between a synapse and its target (after `on pre`, before `on post` sees a
    /// postsynaptic spike); `delay` is then the axonal part. Plastic projections only.
    pub dendritic_delay: f64,
    /// The handlers and state of a plastic synapse model (`weight` is then unused: the
    /// handlers deliver). `None` for a static synapse.
    pub plasticity: Option<super::plasticity::PlasticityIr>,
}

#[derive(Clone, Debug)]
pub enum RecordIr {
    Spikes {
        node: Node,
    },
    /// A per-synapse array of a plastic projection, for the synapses whose source lies in
    /// `pre` and target in `post`: sampled every `every` seconds, or (`None`) written once at
    /// the end as a connection table `(source, target, value)`.
    Synapses {
        projection: usize,
        array: ir::VarId,
        pre: std::ops::Range<u32>,
        post: std::ops::Range<u32>,
        every: Option<f64>,
        span: Span,
    },
    Trace {
        population: usize,
        var: ir::VarId,
        neurons: std::ops::Range<u32>,
        /// Seconds between samples.
        every: f64,
        span: Span,
    },
}

#[derive(Clone, Debug)]
pub struct TimedInputIr {
    pub population: usize,
    pub var: ir::VarId,
    pub neurons: std::ops::Range<u32>,
    pub path: String,
    /// Seconds per row of the file.
    pub every: f64,
    pub span: Span,
}

/// Command-line overrides of what the file says.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub duration: Option<f64>,
    pub seed: Option<u64>,
    /// `(population, variable, value)`; the value is parsed source text.
    pub set: Vec<(String, String, ast::Expr)>,
}

/// Random streams: each kernel family draws from its own stream, so adding a population
/// never changes the numbers another one draws.
pub fn stream_of_update(population: usize) -> u32 {
    (population as u32) * 4
}
pub fn stream_of_init(population: usize) -> u32 {
    (population as u32) * 4 + 1
}
pub fn stream_of_synapses(projection: usize) -> u32 {
    0x4000_0000 + (projection as u32) * 4
}
pub fn stream_of_connect(projection: usize) -> u32 {
    0x4000_0000 + (projection as u32) * 4 + 1
}

/// The stream of the initial values of plastic array `array` of a projection.
pub fn stream_of_plastic_init(projection: usize, array: usize) -> u32 {
    0x5000_0000u32.wrapping_add(
        (projection as u32)
            .wrapping_mul(64)
            .wrapping_add(array as u32),
    )
}
/// The stream of a plastic projection's handler pass (`Pass as usize`).
pub fn stream_of_handler(projection: usize, pass: usize) -> u32 {
    // `on step` (pass 4) came after the four event passes; it has a range of its own so the
    // streams of the others did not move.
    if pass >= 4 {
        return 0x6800_0000 + projection as u32;
    }
    0x6000_0000 + (projection as u32) * 4 + pass as u32
}

impl Program {
    /// Marks the arrays of an `f32` network as stored in `f32` (see `VarInfo::storage`): every
    /// array of every population (init and update kernels) and the plastic arrays of every
    /// projection except those that keep `f64` (`PlasticArrayIr::keeps_f64`). Lowering builds
    /// every kernel in `f64` first; the storage type changes only loads and stores, so it is
    /// applied here, once, for the whole network. Per-synapse weight and delay kernels keep
    /// `f64` arrays: the runtime rounds their results when it stores them.
    fn apply_precision(&mut self) {
        if self.precision == Precision::F64 {
            return;
        }
        let precision = self.precision;
        for population in &mut self.populations {
            for kernel in [&mut population.init, &mut population.update] {
                for var in &mut kernel.vars {
                    var.storage = precision;
                }
            }
        }
        for projection in &mut self.projections {
            let Some(plastic) = projection.plasticity.as_mut() else {
                continue;
            };
            let storage: Vec<Precision> = plastic
                .arrays
                .iter()
                .map(|a| {
                    if a.keeps_f64 {
                        Precision::F64
                    } else {
                        precision
                    }
                })
                .collect();
            for kernel in plastic.kernels.iter_mut().flatten() {
                for (var, &s) in kernel.vars.iter_mut().zip(&storage) {
                    var.storage = s;
                }
            }
        }
    }

    /// Every kernel the JIT compiles, in this order: each population's update kernel, then
    /// each plastic projection's handler kernels ([`Self::handler_kernels`]).
    pub fn jit_kernels(&self) -> Vec<&Kernel> {
        let mut kernels: Vec<&Kernel> = self.populations.iter().map(|p| &p.update).collect();
        kernels.extend(self.handler_kernels().into_iter().map(|(_, _, k)| k));
        kernels
    }

    /// The handler kernels of plastic projections: (projection, pass index, kernel), in
    /// projection and pass order.
    pub fn handler_kernels(&self) -> Vec<(usize, usize, &Kernel)> {
        let mut out = Vec::new();
        for (index, projection) in self.projections.iter().enumerate() {
            if let Some(plastic) = &projection.plasticity {
                for (pass, kernel) in plastic.kernels.iter().enumerate() {
                    if let Some(kernel) = kernel {
                        out.push((index, pass, kernel));
                    }
                }
            }
        }
        out
    }
}

/// Evaluates an expression without per-element inputs; `None` if it needs any.
pub fn const_eval(expr: &Expr) -> Option<f64> {
    match expr {
        Expr::Const(v) => Some(*v),
        Expr::Var(_) | Expr::Local(_) | Expr::Time | Expr::Index | Expr::Random { .. } => None,
        Expr::Unary(ir::UnOp::Neg, a) => Some(-const_eval(a)?),
        Expr::Unary(ir::UnOp::Not, a) => Some(if const_eval(a)? == 0.0 { 1.0 } else { 0.0 }),
        Expr::Binary(op, a, b) => Some(interp::binary(*op, const_eval(a)?, const_eval(b)?)),
        Expr::Call(f, a) => Some(interp::call(*f, const_eval(a)?)),
        Expr::Select(c, a, b) => {
            if const_eval(c)? != 0.0 {
                const_eval(a)
            } else {
                const_eval(b)
            }
        }
    }
}

/// Lowers the named network (or the only one) of a checked program.
pub fn lower(
    resolved: &Resolved,
    network_name: Option<&str>,
    overrides: &Overrides,
) -> Result<Program, Vec<Diagnostic>> {
    let network = match network_name {
        Some(name) => resolved
            .networks
            .iter()
            .find(|n| n.name.name == name)
            .ok_or_else(|| {
                let names: Vec<&str> = resolved
                    .networks
                    .iter()
                    .map(|n| n.name.name.as_str())
                    .collect();
                vec![
                    Diagnostic::error(format!("no network named `{name}`")).note(
                        if names.is_empty() {
                            "the file defines no network".to_string()
                        } else {
                            format!("the file defines: {}", names.join(", "))
                        },
                    ),
                ]
            })?,
        None => match resolved.networks.as_slice() {
            [only] => only,
            [] => {
                return Err(vec![Diagnostic::error(
                    "the file defines no network to run",
                )
                .help(
                    "add `network Name { ... }` with populations, projections and `run <duration>`",
                )])
            }
            many => {
                let names: Vec<&str> = many.iter().map(|n| n.name.name.as_str()).collect();
                return Err(vec![Diagnostic::error("the file defines several networks")
                    .note(format!("they are: {}", names.join(", ")))
                    .help("choose one with `--network NAME`")]);
            }
        },
    };
    let mut lowerer = NetworkLowerer {
        resolved,
        network,
        overrides,
        diagnostics: Vec::new(),
        dt: 1e-4,
        population_reads: Vec::new(),
    };
    let mut program = lowerer.lower();
    if lowerer.diagnostics.iter().any(Diagnostic::is_error) {
        return Err(lowerer.diagnostics);
    }
    program.warnings = lowerer.diagnostics;
    // A projection to several targets lowers once per pair; one warning is enough.
    program.warnings.dedup();
    Ok(program)
}

pub(super) struct NetworkLowerer<'a> {
    pub(super) resolved: &'a Resolved,
    pub(super) network: &'a ast::Network,
    overrides: &'a Overrides,
    pub(super) diagnostics: Vec<Diagnostic>,
    pub(super) dt: f64,
    /// Reductions read by populations' inputs: (population name, internal array, reduction).
    population_reads: Vec<(String, ir::VarId, crate::reductions::ReductionIr)>,
}

/// What a name means while lowering an expression.
type Env<'e> = dyn Fn(&str) -> Option<Expr> + 'e;

/// Lowers an expression; names are looked up in `env`, then as units.
pub(super) fn lower_expr(e: &ast::Expr, env: &Env<'_>, builder: &mut Builder) -> Expr {
    match &e.kind {
        ExprKind::Number(v) => Expr::c(*v),
        ExprKind::Quantity(v, unit) => Expr::c(v * unit_scale(unit)),
        ExprKind::Bool(b) => Expr::c(if *b { 1.0 } else { 0.0 }),
        ExprKind::Str(_) | ExprKind::Error => Expr::c(f64::NAN),
        ExprKind::Name(ident) => env(&ident.name)
            .or_else(|| match ident.name.as_str() {
                "pi" => Some(Expr::c(std::f64::consts::PI)),
                name => units::lookup(name).map(|u| Expr::c(u.scale)),
            })
            .unwrap_or(Expr::c(f64::NAN)),
        ExprKind::Unary(ast::UnOp::Neg, a) => Expr::neg(lower_expr(a, env, builder)),
        ExprKind::Unary(ast::UnOp::Not, a) => {
            Expr::Unary(ir::UnOp::Not, Box::new(lower_expr(a, env, builder)))
        }
        ExprKind::Binary(op, a, b) => {
            let op = match op {
                ast::BinOp::Add => BinOp::Add,
                ast::BinOp::Sub => BinOp::Sub,
                ast::BinOp::Mul => BinOp::Mul,
                ast::BinOp::Div => BinOp::Div,
                ast::BinOp::Rem => BinOp::Rem,
                ast::BinOp::Pow => BinOp::Pow,
                ast::BinOp::Eq => BinOp::Eq,
                ast::BinOp::Ne => BinOp::Ne,
                ast::BinOp::Lt => BinOp::Lt,
                ast::BinOp::Le => BinOp::Le,
                ast::BinOp::Gt => BinOp::Gt,
                ast::BinOp::Ge => BinOp::Ge,
                ast::BinOp::And => BinOp::And,
                ast::BinOp::Or => BinOp::Or,
            };
            Expr::bin(op, lower_expr(a, env, builder), lower_expr(b, env, builder))
        }
        ExprKind::Call { function, args } => {
            let mut a: Vec<Expr> = args
                .iter()
                .map(|arg| lower_expr(&arg.value, env, builder))
                .collect();
            let mut arg = |i: usize| std::mem::replace(&mut a[i], Expr::c(0.0));
            let unary = |f: Func, x: Expr| Expr::call(f, x);
            match function.name.as_str() {
                "exp" => unary(Func::Exp, arg(0)),
                "log" => unary(Func::Log, arg(0)),
                "log10" => unary(Func::Log10, arg(0)),
                "sqrt" => unary(Func::Sqrt, arg(0)),
                "abs" => unary(Func::Abs, arg(0)),
                "sign" => unary(Func::Sign, arg(0)),
                "sin" => unary(Func::Sin, arg(0)),
                "cos" => unary(Func::Cos, arg(0)),
                "tan" => unary(Func::Tan, arg(0)),
                "tanh" => unary(Func::Tanh, arg(0)),
                "floor" => unary(Func::Floor, arg(0)),
                "ceil" => unary(Func::Ceil, arg(0)),
                "pow" => Expr::bin(BinOp::Pow, arg(0), arg(1)),
                "min" | "max" => {
                    let op = if function.name == "min" {
                        BinOp::Min
                    } else {
                        BinOp::Max
                    };
                    let mut acc = arg(0);
                    for i in 1..args.len() {
                        acc = Expr::bin(op, acc, arg(i));
                    }
                    acc
                }
                "clip" => {
                    let (x, lo, hi) = (arg(0), arg(1), arg(2));
                    Expr::bin(BinOp::Min, Expr::bin(BinOp::Max, x, lo), hi)
                }
                "rand" => random(ir::Random::Uniform, Expr::c(0.0), builder),
                "randn" => random(ir::Random::Normal, Expr::c(0.0), builder),
                "uniform" => {
                    let (lo, hi) = (arg(0), arg(1));
                    let u = random(ir::Random::Uniform, Expr::c(0.0), builder);
                    Expr::add(lo.clone(), Expr::mul(Expr::sub(hi, lo), u))
                }
                "normal" => {
                    let (mean, sd) = (arg(0), arg(1));
                    Expr::add(
                        mean,
                        Expr::mul(sd, random(ir::Random::Normal, Expr::c(0.0), builder)),
                    )
                }
                "exponential" => Expr::mul(
                    arg(0),
                    random(ir::Random::Exponential, Expr::c(0.0), builder),
                ),
                "poisson" => random(ir::Random::Poisson, arg(0), builder),
                "pulse" => {
                    let (start, stop) = (arg(0), arg(1));
                    Expr::bin(
                        BinOp::And,
                        Expr::bin(BinOp::Ge, Expr::Time, start),
                        Expr::bin(BinOp::Lt, Expr::Time, stop),
                    )
                }
                _ => Expr::c(f64::NAN),
            }
        }
    }
}

fn random(kind: ir::Random, arg: Expr, builder: &mut Builder) -> Expr {
    Expr::Random {
        kind,
        draw: builder.draw(),
        arg: Box::new(arg),
    }
}

/// How a parameter of one population is represented.
#[derive(Clone, Debug)]
enum ParamValue {
    Uniform(f64),
    PerNeuron,
}

impl NetworkLowerer<'_> {
    pub(super) fn push(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    pub(super) fn error_count(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }

    fn lower(&mut self) -> Program {
        let items = &self.network.items;
        let mut seed = 1u64;
        let mut duration = None;
        let mut precision = Precision::F64;
        for item in items {
            match item {
                NetItem::Setting { name, value, .. } => match name.name.as_str() {
                    "dt" => {
                        if let Some(v) = self.constant(value) {
                            self.dt = v;
                        }
                    }
                    "seed" => {
                        if let Some(v) = self.constant(value) {
                            seed = v as u64;
                        }
                    }
                    "precision" => {
                        if matches!(&value.kind, ExprKind::Name(n) if n.name == "f32") {
                            precision = Precision::F32;
                        }
                    }
                    _ => {}
                },
                NetItem::Run { duration: d, .. } => duration = self.constant(d),
                _ => {}
            }
        }
        let seed = self.overrides.seed.unwrap_or(seed);
        let duration = self.overrides.duration.or(duration);
        let mut program = Program {
            network: self.network.name.name.clone(),
            dt: self.dt,
            seed,
            duration,
            populations: Vec::new(),
            sources: Vec::new(),
            projections: Vec::new(),
            records: Vec::new(),
            timed_inputs: Vec::new(),
            reductions: Vec::new(),
            warnings: Vec::new(),
            precision,
        };
        let mut nodes: HashMap<&str, Node> = HashMap::new();
        for item in items {
            match item {
                NetItem::Population {
                    name,
                    model,
                    size,
                    inits,
                    method,
                    span,
                } => {
                    let Some(info) = self.resolved.lookup_model(0, &model.name) else {
                        continue;
                    };
                    let size = self.count(size).unwrap_or(0);
                    let index = program.populations.len();
                    let inputs: Vec<&ast::InputDecl> = items
                        .iter()
                        .filter_map(|i| match i {
                            NetItem::Input(input) if input.population.name.name == name.name => {
                                Some(input)
                            }
                            _ => None,
                        })
                        .collect();
                    let recorded: Vec<&str> = items
                        .iter()
                        .filter_map(|i| match i {
                            NetItem::Record {
                                what: ast::RecordWhat::Vars(vars),
                                of,
                                ..
                            } if of.iter().any(|p| p.name.name == name.name) => Some(vars),
                            _ => None,
                        })
                        .flatten()
                        .map(|v| v.name.as_str())
                        .collect();
                    let written = written_by_projections(items, &name.name);
                    let pop = self.lower_population(
                        &name.name,
                        info,
                        size,
                        inits,
                        method.as_ref(),
                        &inputs,
                        &recorded,
                        written,
                        *span,
                    );
                    nodes.insert(&name.name, Node::Population(index));
                    program.populations.push(pop);
                }
                NetItem::SpikeSource {
                    name,
                    size,
                    path,
                    span,
                    ..
                } => {
                    nodes.insert(&name.name, Node::Source(program.sources.len()));
                    program.sources.push(SourceIr {
                        name: name.name.clone(),
                        size: self.count(size).unwrap_or(0),
                        path: path.clone(),
                        span: *span,
                    });
                }
                _ => {}
            }
        }
        for (pop, var, _) in &self.overrides.set {
            if !nodes.contains_key(pop.as_str()) {
                self.diagnostics.push(Diagnostic::error(format!(
                    "`--set {pop}.{var}=...`: the network has no population `{pop}`"
                )));
            }
        }
        for item in items {
            match item {
                NetItem::Projection(projection) => {
                    self.lower_projection(projection, &nodes, &mut program)
                }
                NetItem::Input(input) => {
                    if let ast::InputSource::File { path, every, .. } = &input.source {
                        let Some(Node::Population(p)) =
                            nodes.get(input.population.name.name.as_str()).copied()
                        else {
                            continue;
                        };
                        let Some(var) = program.populations[p].update.var(&input.variable.name)
                        else {
                            continue;
                        };
                        let neurons = self.range(&input.population, program.populations[p].size);
                        let every = self.constant(every).unwrap_or(self.dt);
                        program.timed_inputs.push(TimedInputIr {
                            population: p,
                            var,
                            neurons,
                            path: path.clone(),
                            every,
                            span: input.span,
                        });
                    }
                }
                NetItem::Record {
                    what,
                    of,
                    every,
                    span,
                } => {
                    for pop in of {
                        let Some(node) = nodes.get(pop.name.name.as_str()).copied() else {
                            continue;
                        };
                        match what {
                            ast::RecordWhat::Spikes(_) => {
                                program.records.push(RecordIr::Spikes { node })
                            }
                            ast::RecordWhat::Vars(vars) => {
                                let Node::Population(p) = node else { continue };
                                let every = every
                                    .as_ref()
                                    .and_then(|e| self.constant(e))
                                    .unwrap_or(self.dt);
                                let neurons = self.range(pop, program.populations[p].size);
                                for var in vars {
                                    match program.populations[p].update.var(&var.name) {
                                        Some(v) => program.records.push(RecordIr::Trace { population: p, var: v, neurons: neurons.clone(), every, span: *span }),
                                        None => self.diagnostics.push(
                                            Diagnostic::error(format!("cannot record `{}`: it is a constant of this population", var.name))
                                                .primary(var.span, "a uniform parameter does not change; it is not stored per neuron")
                                                .help("record state variables, or parameters that vary per neuron or are driven by an input"),
                                        ),
                                    }
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        // Synapse recordings last: they name projections, which may be declared after them.
        for item in items {
            if let NetItem::RecordSynapses {
                what: ast::RecordWhat::Vars(vars),
                source,
                target,
                every,
                span,
            } = item
            {
                self.lower_synapse_record(
                    &mut program,
                    vars,
                    source,
                    target,
                    every.as_ref(),
                    *span,
                );
            }
        }
        let reads = std::mem::take(&mut self.population_reads)
            .into_iter()
            .filter_map(|(name, var, r)| {
                let p = program.populations.iter().position(|p| p.name == name)?;
                Some((p, var, r))
            })
            .collect();
        self.resolve_reductions(&mut program, reads);
        program.apply_precision();
        program
    }

    fn lower_synapse_record(
        &mut self,
        program: &mut Program,
        vars: &[ast::Ident],
        source: &ast::PopRef,
        target: &ast::PopRef,
        every: Option<&ast::Expr>,
        span: Span,
    ) {
        let name = format!("{}->{}", source.name.name, target.name.name);
        let Some(index) = program.projections.iter().position(|p| p.name == name) else {
            return;
        };
        let projection = &program.projections[index];
        let n_pre = match projection.pre {
            Node::Population(p) => program.populations[p].size,
            Node::Source(s) => program.sources[s].size,
        };
        let n_post = program.populations[projection.post].size;
        let Some(plastic) = &projection.plasticity else {
            self.diagnostics.push(
                Diagnostic::error(format!(
                    "cannot record `{}` of `{name}`: its synapses are static",
                    vars.first().map_or("", |v| v.name.as_str())
                ))
                .primary(span, "nothing changes here")
                .note("a static synapse's value is fixed when the network is built; only plastic synapses keep per-synapse state"),
            );
            return;
        };
        let arrays: Vec<(ir::VarId, &ast::Ident)> = vars
            .iter()
            .filter_map(|v| {
                let found = plastic.arrays.iter().position(|a| a.name == v.name);
                if found.is_none() {
                    self.diagnostics.push(
                        Diagnostic::error(format!(
                            "cannot record `{}` of `{name}`: it is the same constant for every synapse",
                            v.name
                        ))
                        .primary(v.span, "not stored per synapse"),
                    );
                }
                found.map(|a| (a as ir::VarId, v))
            })
            .collect();
        let pre = self.range(source, n_pre);
        let post = self.range(target, n_post);
        let every = every.and_then(|e| self.constant(e));
        for (array, var) in arrays {
            program.records.push(RecordIr::Synapses {
                projection: index,
                array,
                pre: pre.clone(),
                post: post.clone(),
                every,
                span: var.span,
            });
        }
    }

    fn constant(&mut self, e: &ast::Expr) -> Option<f64> {
        let mut builder = Builder::default();
        let lowered = lower_expr(e, &|_| None, &mut builder);
        let value = const_eval(&lowered);
        if value.is_none() {
            self.diagnostics.push(
                Diagnostic::error("this value must be a constant")
                    .primary(e.span, "depends on something that varies"),
            );
        }
        value
    }

    fn count(&mut self, e: &ast::Expr) -> Option<u32> {
        let v = self.constant(e)?;
        if v.fract() != 0.0 || !(0.0..=u32::MAX as f64).contains(&v) {
            self.diagnostics.push(
                Diagnostic::error(format!(
                    "expected a whole number, found {}",
                    units::format_number(v)
                ))
                .primary(e.span, "not a count"),
            );
            return None;
        }
        Some(v as u32)
    }

    fn range(&mut self, pop: &ast::PopRef, size: u32) -> std::ops::Range<u32> {
        let Some((a, b)) = &pop.range else {
            return 0..size;
        };
        let (Some(start), Some(end)) = (self.count(a), self.count(b)) else {
            return 0..0;
        };
        if end > size || start >= end {
            self.diagnostics.push(
                Diagnostic::error(format!(
                    "the range {start}..{end} is outside `{}`, which has {size} neurons",
                    pop.name.name
                ))
                .primary(pop.span, "out of range"),
            );
            return 0..0;
        }
        start..end
    }

    #[allow(clippy::too_many_arguments)]
    fn lower_population(
        &mut self,
        name: &str,
        model: &ModelInfo,
        size: u32,
        inits: &[ast::Init],
        method_override: Option<&ast::MethodChoice>,
        inputs: &[&ast::InputDecl],
        recorded: &[&str],
        written_by_projections: Option<Vec<String>>,
        span: Span,
    ) -> PopulationIr {
        let mut vars: Vec<VarInfo> = Vec::new();
        let mut init_builder = Builder::default();
        let mut init_body: Vec<Stmt> = Vec::new();
        let mut values: HashMap<String, Expr> = HashMap::new();
        let mut params: HashMap<String, ParamValue> = HashMap::new();
        let driven: Vec<&str> = inputs.iter().map(|i| i.variable.name.as_str()).collect();
        let overrides: Vec<(&str, &ast::Expr)> = self
            .overrides
            .set
            .iter()
            .filter(|(p, _, _)| p == name)
            .map(|(_, v, e)| (v.as_str(), e))
            .collect();
        for (var_name, value) in &overrides {
            if model.var(var_name).is_none() {
                self.diagnostics.push(Diagnostic::error(format!(
                    "`--set {name}.{var_name}=...`: `{}` has no parameter or state `{var_name}`; it has {}",
                    model.name(),
                    resolve::describe_vars(model, |_| true)
                )));
            } else {
                self.check_override_unit(model, var_name, value, name);
            }
        }
        let add_var = |vars: &mut Vec<VarInfo>, decl: &ast::VarDecl, role: VarRole| -> ir::VarId {
            let scale = unit_scale(&decl.unit);
            let unit = match &decl.unit.kind {
                ast::UnitExprKind::One => "1".to_string(),
                _ => resolve::unit_text(&decl.unit),
            };
            vars.push(VarInfo {
                access: Default::default(),
                name: decl.name.name.clone(),
                role,
                unit,
                scale,
                storage: Default::default(),
            });
            (vars.len() - 1) as ir::VarId
        };

        let lets: HashMap<&str, &ast::Expr> = model
            .lets
            .iter()
            .map(|(n, e)| (n.name.as_str(), e))
            .collect();
        // Declarations are processed in order, so an initialiser sees the values above it.
        for decl in &model.vars {
            if decl.kind == VarKind::Input {
                // Zero in initialisers; the sum of its kernel synapses' outputs after them.
                values.insert(decl.name.name.clone(), Expr::c(0.0));
                continue;
            }
            let source = overrides
                .iter()
                .rev()
                .find(|(n, _)| *n == decl.name.name)
                .map(|(_, e)| *e)
                .or_else(|| {
                    inits
                        .iter()
                        .rev()
                        .find(|i| i.name.name == decl.name.name)
                        .map(|i| &i.value)
                })
                .or(decl.default.as_ref());
            let lowered = match source {
                Some(e) => {
                    // `let`s are visible too, computed from the values initialised above.
                    let model_names = model_env(&values, &lets, self.dt);
                    let env = |n: &str| -> Option<Expr> {
                        if n == "i" {
                            return Some(Expr::Index);
                        }
                        model_names(n)
                    };
                    lower_expr(e, &env, &mut init_builder)
                }
                None => {
                    if decl.kind == VarKind::Param {
                        self.diagnostics.push(
                            Diagnostic::error(format!(
                                "`{}.{}` has no value",
                                name, decl.name.name
                            ))
                            .primary(
                                span,
                                format!("set it here, as in `{{ {} = ... }}`", decl.name.name),
                            )
                            .secondary(decl.span, "declared without a default"),
                        );
                    }
                    Expr::c(0.0)
                }
            };
            let is_state = decl.kind == VarKind::State;
            let uniform = if is_state || driven.contains(&decl.name.name.as_str()) {
                None
            } else {
                const_eval(&lowered)
            };
            match uniform {
                Some(value) => {
                    params.insert(decl.name.name.clone(), ParamValue::Uniform(value));
                    values.insert(decl.name.name.clone(), Expr::c(value));
                }
                None => {
                    let role = if is_state {
                        VarRole::State
                    } else {
                        VarRole::Param
                    };
                    let id = add_var(&mut vars, decl, role);
                    init_body.push(Stmt::Store(id, lowered));
                    if !is_state {
                        params.insert(decl.name.name.clone(), ParamValue::PerNeuron);
                    }
                    values.insert(decl.name.name.clone(), Expr::Var(id));
                }
            }
        }
        let refractory_var = model.refractory.map(|_| {
            vars.push(VarInfo {
                access: Default::default(),
                name: "refractory_steps".to_string(),
                role: VarRole::Internal,
                unit: "1".to_string(),
                scale: 1.0,
                storage: Default::default(),
            });
            (vars.len() - 1) as ir::VarId
        });
        if let Some(var) = refractory_var {
            init_body.push(Stmt::Store(var, Expr::c(0.0)));
        }
        let kernel_odes = self.lower_kernel_synapses(
            name,
            model,
            &mut vars,
            &mut init_body,
            &mut init_builder,
            &mut values,
        );

        // The update kernel.
        let dt = self.dt;
        let mut builder = Builder::default();
        let mut body: Vec<Stmt> = Vec::new();

        fn model_env<'v>(
            values: &'v HashMap<String, Expr>,
            lets: &'v HashMap<&'v str, &'v ast::Expr>,
            dt: f64,
        ) -> impl Fn(&str) -> Option<Expr> + 'v {
            move |n: &str| -> Option<Expr> {
                match n {
                    "t" => return Some(Expr::Time),
                    "dt" => return Some(Expr::c(dt)),
                    _ => {}
                }
                if let Some(v) = values.get(n) {
                    return Some(v.clone());
                }
                let let_expr = lets.get(n)?;
                // Lets are inlined; common-subexpression elimination shares them again.
                let mut builder = Builder::default();
                let inner = model_env(values, lets, dt);
                Some(lower_expr(let_expr, &inner, &mut builder))
            }
        }
        // Reductions an input reads come from internal arrays the runtime fills every step.
        let reduction_arrays = super::population::input_arrays(inputs, &mut vars);
        for (r, var) in &reduction_arrays {
            self.population_reads
                .push((name.to_string(), *var, r.clone()));
        }
        let input_env = |n: &str| -> Option<Expr> {
            match n {
                "t" => Some(Expr::Time),
                "dt" => Some(Expr::c(dt)),
                "i" => Some(Expr::Index),
                _ => reduction_arrays
                    .iter()
                    .find(|(r, _)| r.key == n)
                    .map(|(_, v)| Expr::Var(*v)),
            }
        };
        // Set inputs apply at the start of the step; additive inputs after integration.
        let mut additive = Vec::new();
        for input in inputs {
            let Some(var) = vars.iter().position(|v| v.name == input.variable.name) else {
                continue;
            };
            let var = var as ir::VarId;
            // An input to part of a population leaves the other neurons as they are.
            let neurons = self.range(&input.population, size);
            let in_range = (neurons != (0..size)).then(|| {
                Expr::bin(
                    BinOp::And,
                    Expr::bin(BinOp::Ge, Expr::Index, Expr::c(f64::from(neurons.start))),
                    Expr::bin(BinOp::Lt, Expr::Index, Expr::c(f64::from(neurons.end))),
                )
            });
            match &input.source {
                ast::InputSource::Expr(e) => {
                    let e = &crate::reductions::replace_calls(e);
                    let mut value = lower_expr(e, &input_env, &mut builder);
                    if let Some(in_range) = &in_range {
                        value = Expr::select(in_range.clone(), value, Expr::Var(var));
                    }
                    body.push(Stmt::Store(var, value));
                }
                ast::InputSource::Add(e) => {
                    let e = &crate::reductions::replace_calls(e);
                    let mut value = lower_expr(e, &input_env, &mut builder);
                    if let Some(in_range) = &in_range {
                        value = Expr::select(in_range.clone(), value, Expr::c(0.0));
                    }
                    additive.push(Stmt::Store(var, Expr::add(Expr::Var(var), value)));
                }
                ast::InputSource::File { .. } => {}
            }
        }
        // The countdown is a select stored every step, not a store under `if`: a few percent
        // of neurons are refractory at any time (2.8 % in CUBA, 9 % in COBA), enough for a
        // branch on "either neuron of the pair" to be taken and mispredicted often in a
        // vectorised loop; the select costs a subtraction, a blend and a store per pair.
        // CUBA 100,000 on the Cranelift JIT: 2.13-2.22 s -> 2.03-2.07 s.
        let is_refractory = refractory_var.map(|var| {
            let local = builder.local();
            body.push(Stmt::Let(
                local,
                Expr::bin(BinOp::Gt, Expr::Var(var), Expr::c(0.0)),
            ));
            body.push(Stmt::Store(
                var,
                Expr::select(
                    Expr::Local(local),
                    Expr::sub(Expr::Var(var), Expr::c(1.0)),
                    Expr::Var(var),
                ),
            ));
            local
        });
        // `unless refractory` states are held while refractory: not integrated, and not moved by
        // inputs either (NEST discards input that arrives during the refractory period). The
        // value at the spike (after the reset) is kept in an array of its own and restored at
        // the start of every refractory step, which drops whatever synapses or set inputs
        // wrote meanwhile. A state nothing writes from outside the kernel needs no copy: not
        // integrated, it keeps its value by itself (additive inputs are masked below).
        let set_by_inputs: Vec<&str> = inputs
            .iter()
            .filter(|i| !matches!(i.source, ast::InputSource::Add(_)))
            .map(|i| i.variable.name.as_str())
            .collect();
        let written_from_outside = |state: &str| {
            set_by_inputs.contains(&state)
                || written_by_projections
                    .as_ref()
                    .is_none_or(|names| names.iter().any(|n| n == state))
        };
        let mut held: Vec<(ir::VarId, ir::VarId)> = Vec::new();
        if let Some(local) = is_refractory {
            for member in &model.ast.members {
                let Member::Ode(ode) = member else { continue };
                let Some(Expr::Var(var)) = values.get(&ode.var.name).cloned() else {
                    continue;
                };
                if !ode.unless_refractory
                    || held.iter().any(|(v, _)| *v == var)
                    || !written_from_outside(&ode.var.name)
                {
                    continue;
                }
                let info = vars[var as usize].clone();
                vars.push(VarInfo {
                    access: Default::default(),
                    name: format!("{}_held", info.name),
                    role: VarRole::Internal,
                    ..info
                });
                let keep = (vars.len() - 1) as ir::VarId;
                init_body.push(Stmt::Store(keep, Expr::Var(var)));
                body.push(Stmt::Store(
                    var,
                    Expr::select(Expr::Local(local), Expr::Var(keep), Expr::Var(var)),
                ));
                held.push((var, keep));
            }
            for stmt in &mut additive {
                if let Stmt::Store(var, value) = stmt {
                    if held.iter().any(|(v, _)| v == var) {
                        let unchanged = Expr::Var(*var);
                        *value = Expr::select(
                            Expr::Local(local),
                            unchanged,
                            std::mem::replace(value, Expr::c(0.0)),
                        );
                    }
                }
            }
        }
        let env = model_env(&values, &lets, dt);
        // The population's `method = ...` wins over its model's.
        let method_choice = method_override.or_else(|| {
            model.ast.members.iter().find_map(|m| match m {
                Member::Method(choice) => Some(choice),
                _ => None,
            })
        });
        // `method = rkf45(...)`: adaptive sub-steps, with the threshold tested after each.
        let (forced, tolerances) = forced_method(method_choice);
        let adaptive = forced == Some(Method::Rkf45);
        // Refractory now: at the start of the step, or since a spike at an earlier sub-step
        // of this one (which set the countdown, decremented only at the next step's start).
        let refractory_now = is_refractory.map(|local| match (adaptive, refractory_var) {
            (true, Some(var)) => Expr::bin(
                BinOp::Or,
                Expr::Local(local),
                Expr::bin(BinOp::Gt, Expr::Var(var), Expr::c(0.0)),
            ),
            _ => Expr::Local(local),
        });
        let mut odes_in = Vec::new();
        for member in &model.ast.members {
            if let Member::Ode(ode) = member {
                let Some(ir::Expr::Var(var)) = values.get(&ode.var.name).cloned() else {
                    continue;
                };
                let mut ode_builder = Builder::default();
                let rhs = lower_expr(&ode.rhs, &env, &mut ode_builder);
                let hold = if ode.unless_refractory {
                    refractory_now.clone()
                } else {
                    None
                };
                odes_in.push(Ode { var, rhs, hold });
            }
        }
        odes_in.extend(kernel_odes);
        let event = self.spike_event(
            model,
            &env,
            &values,
            refractory_var,
            &held,
            refractory_now,
            &mut builder,
        );
        let var_names: Vec<String> = vars.iter().map(|v| v.name.clone()).collect();
        let mut notes = Vec::new();
        let integration = if adaptive {
            let scales: Vec<f64> = odes_in.iter().map(|o| vars[o.var as usize].scale).collect();
            let mut scratch_var = |name: &str, unit: &str, scale: f64, init: f64| {
                vars.push(VarInfo {
                    name: name.to_string(),
                    role: VarRole::Internal,
                    unit: unit.to_string(),
                    scale,
                    access: Default::default(),
                    storage: Default::default(),
                });
                let var = (vars.len() - 1) as ir::VarId;
                init_body.push(Stmt::Store(var, Expr::c(init)));
                var
            };
            let scratch = adaptive::Scratch {
                step_size: scratch_var("rkf45_step", "ms", 1e-3, dt),
                time: scratch_var("rkf45_time", "ms", 1e-3, 0.0),
            };
            Ok(adaptive::integrate_rkf45(
                &odes_in,
                &scales,
                tolerances,
                dt,
                scratch,
                event.clone(),
                &mut builder,
            ))
        } else {
            odes::integrate(&odes_in, forced, dt, &mut builder, &|v| {
                var_names.get(v as usize).cloned().unwrap_or_default()
            })
        };
        match integration {
            Ok(integration) => {
                notes.push(format!("integrator: {}", integration.reason));
                body.extend(integration.stmts);
            }
            Err(message) => {
                let span = method_choice.map_or(model.ast.name.span, |choice| choice.span);
                self.diagnostics.push(
                    Diagnostic::error(format!("cannot integrate `{}`: {message}", model.name()))
                        .primary(span, "here"),
                );
            }
        }
        body.extend(additive);
        // The adaptive integrator has run the event after each sub-step already.
        if let (Some(event), false) = (event, adaptive) {
            body.push(Stmt::If(event.cond, event.body, Vec::new()));
        }
        let mut constants = Vec::new();
        for (param, value) in &params {
            if let ParamValue::Uniform(v) = value {
                let decl = model.var(param);
                constants.push(ConstantIr {
                    name: param.clone(),
                    value: *v,
                    unit: decl.map_or("1".to_string(), |d| resolve::unit_text(&d.unit)),
                    scale: decl.map_or(1.0, |d| unit_scale(&d.unit)),
                });
                let shown = decl.map_or(units::format_number(*v), |d| {
                    let scale = unit_scale(&d.unit);
                    match resolve::unit_text(&d.unit).as_str() {
                        "1" => units::format_number(v / scale),
                        unit => format!("{} {unit}", units::format_number(v / scale)),
                    }
                });
                notes.push(format!("uniform {param} = {shown}"));
            }
        }
        // A recorded `let` or `input` is computed into an array of its own at the end of each
        // step.
        for let_name in recorded {
            if let Some(decl) = model.var(let_name).filter(|d| d.kind == VarKind::Input) {
                if vars.iter().any(|v| v.name == *let_name) {
                    continue;
                }
                vars.push(VarInfo {
                    access: Default::default(),
                    name: let_name.to_string(),
                    role: VarRole::Internal,
                    unit: resolve::unit_text(&decl.unit),
                    scale: unit_scale(&decl.unit),
                    storage: Default::default(),
                });
                let var = (vars.len() - 1) as ir::VarId;
                let value = env(let_name).unwrap_or(Expr::c(0.0));
                body.push(Stmt::Store(var, value));
                init_body.push(Stmt::Store(var, Expr::c(0.0)));
                continue;
            }
            let Some(value) = lets.get(let_name) else {
                continue;
            };
            if vars.iter().any(|v| v.name == *let_name) {
                continue;
            }
            let (unit, scale) = crate::check::let_dim(model, let_name)
                .map_or(("1".to_string(), 1.0), |d| units::display_unit(d.si));
            vars.push(VarInfo {
                access: Default::default(),
                name: let_name.to_string(),
                role: VarRole::Internal,
                unit,
                scale,
                storage: Default::default(),
            });
            let var = (vars.len() - 1) as ir::VarId;
            let value = lower_expr(value, &env, &mut builder);
            body.push(Stmt::Store(var, value));
            init_body.push(Stmt::Store(var, Expr::c(0.0)));
        }
        notes.sort();
        let update = Kernel {
            name: format!("{name}.update"),
            vars: vars.clone(),
            n_locals: builder.n_locals,
            n_draws: builder.n_draws,
            body,
            notes,
        };
        let init = Kernel {
            name: format!("{name}.init"),
            vars,
            n_locals: init_builder.n_locals,
            n_draws: init_builder.n_draws,
            body: init_body,
            notes: Vec::new(),
        };
        constants.sort_by(|a, b| a.name.cmp(&b.name));
        PopulationIr {
            constants,
            name: name.to_string(),
            model: model.name().to_string(),
            size,
            init,
            update,
            span,
        }
    }

    /// The model's threshold test and what a spike does: the reset, the start of the
    /// refractory period, saving the held states, and the spike. `refractory_now` is the
    /// condition under which the neuron cannot spike.
    #[allow(clippy::too_many_arguments)]
    fn spike_event(
        &mut self,
        model: &ModelInfo,
        env: &dyn Fn(&str) -> Option<Expr>,
        values: &HashMap<String, Expr>,
        refractory_var: Option<ir::VarId>,
        held: &[(ir::VarId, ir::VarId)],
        refractory_now: Option<Expr>,
        builder: &mut Builder,
    ) -> Option<adaptive::Event> {
        let condition = model.ast.members.iter().find_map(|m| match m {
            Member::Spike { condition, .. } => Some(condition),
            _ => None,
        })?;
        let mut cond = lower_expr(condition, env, builder);
        if let Some(refractory) = refractory_now {
            cond = Expr::bin(
                BinOp::And,
                Expr::Unary(ir::UnOp::Not, Box::new(refractory)),
                cond,
            );
        }
        let dt = self.dt;
        let mut on_spike = Vec::new();
        if let Some(body) = model.ast.members.iter().find_map(|m| match m {
            Member::Reset { body, .. } => Some(body),
            _ => None,
        }) {
            on_spike.extend(self.lower_block(body, env, values, builder));
        }
        if let (Some(var), Some(period)) = (
            refractory_var,
            model.ast.members.iter().find_map(|m| match m {
                Member::Refractory { period, .. } => Some(period),
                _ => None,
            }),
        ) {
            let period = lower_expr(period, env, builder);
            let steps = Expr::call(
                Func::Floor,
                Expr::add(Expr::div(period, Expr::c(dt)), Expr::c(0.5)),
            );
            on_spike.push(Stmt::Store(var, steps));
        }
        for (var, keep) in held {
            on_spike.push(Stmt::Store(*keep, Expr::Var(*var)));
        }
        on_spike.push(Stmt::Spike);
        Some(adaptive::Event {
            cond,
            body: on_spike,
        })
    }

    fn check_override_unit(&mut self, model: &ModelInfo, var: &str, value: &ast::Expr, pop: &str) {
        let Some(decl) = model.var(var) else { return };
        let mut ignored = Vec::new();
        let expected = crate::check::dims::unit_dim(&decl.unit, None, &mut ignored);
        let found = match &value.kind {
            ExprKind::Quantity(_, unit) => crate::check::dims::unit_dim(unit, None, &mut ignored),
            ExprKind::Number(_) => Some(crate::check::dims::Dim::ONE),
            ExprKind::Unary(ast::UnOp::Neg, inner) => match &inner.kind {
                ExprKind::Quantity(_, unit) => {
                    crate::check::dims::unit_dim(unit, None, &mut ignored)
                }
                _ => Some(crate::check::dims::Dim::ONE),
            },
            _ => None,
        };
        if let (Some(expected), Some(found)) = (expected, found) {
            if expected != found {
                self.diagnostics.push(Diagnostic::error(format!(
                    "`--set {pop}.{var}=...` needs a value {}, found {}",
                    expected.in_words(),
                    found.in_words()
                )));
            }
        }
    }

    fn lower_block(
        &mut self,
        block: &ast::Block,
        env: &Env<'_>,
        values: &HashMap<String, Expr>,
        builder: &mut Builder,
    ) -> Vec<Stmt> {
        let mut out = Vec::new();
        for stmt in &block.stmts {
            match stmt {
                ast::Stmt::Assign {
                    target, op, value, ..
                } => {
                    let Some(Expr::Var(var)) = values.get(&target.name).cloned() else {
                        continue;
                    };
                    let value = lower_expr(value, env, builder);
                    let current = Expr::Var(var);
                    let new = match op {
                        ast::AssignOp::Set => value,
                        ast::AssignOp::Add => Expr::add(current, value),
                        ast::AssignOp::Sub => Expr::sub(current, value),
                        ast::AssignOp::Mul => Expr::mul(current, value),
                        ast::AssignOp::Div => Expr::div(current, value),
                    };
                    out.push(Stmt::Store(var, new));
                }
                ast::Stmt::If {
                    condition,
                    then_block,
                    else_block,
                    ..
                } => {
                    let c = lower_expr(condition, env, builder);
                    let a = self.lower_block(then_block, env, values, builder);
                    let b = else_block
                        .as_ref()
                        .map(|b| self.lower_block(b, env, values, builder))
                        .unwrap_or_default();
                    out.push(Stmt::If(c, a, b));
                }
                ast::Stmt::Error(_) => {}
            }
        }
        out
    }

    fn lower_projection(
        &mut self,
        projection: &ast::Projection,
        nodes: &HashMap<&str, Node>,
        program: &mut Program,
    ) {
        let Some(synapse) = self.resolved.lookup_model(0, &projection.synapse.name) else {
            return;
        };
        // A kernel synapse delivers like a static one, into its state in the target
        // population (`synapse_kernels.rs`).
        let kernel = super::synapse_kernels::is_kernel(synapse);
        let plastic = !kernel && super::plasticity::is_plastic(synapse);
        if let (false, Some(init)) = (
            plastic,
            projection
                .inits
                .iter()
                .find(|i| crate::reductions::contains(&i.value)),
        ) {
            self.diagnostics.push(
                Diagnostic::error(format!(
                    "`{}` is a static synapse: its values are computed once, so `{}` cannot follow a population-level value",
                    synapse.name(),
                    init.name.name
                ))
                .primary(init.value.span, "changes every step")
                .help("use a plastic synapse model (one with `state`, `on post` or `on step`) to read population-level values in its handlers"),
            );
            return;
        }
        if !plastic && !kernel && !self.synapse_supported(synapse, projection) {
            return;
        }
        for source in &projection.sources {
            for target in &projection.targets {
                let (Some(&pre), Some(&Node::Population(post))) = (
                    nodes.get(source.name.name.as_str()),
                    nodes.get(target.name.name.as_str()),
                ) else {
                    continue;
                };
                if source.range.is_some() || target.range.is_some() {
                    self.diagnostics.push(
                        Diagnostic::error(
                            "projections between parts of populations are not simulated yet",
                        )
                        .primary(source.span.to(target.span), "a range here")
                        .help("connect whole populations, or split the population in two"),
                    );
                    continue;
                }
                let target_name = if kernel {
                    super::synapse_kernels::delivery_var(
                        self.resolved,
                        &self.network.items,
                        projection,
                        &target.name.name,
                    )
                } else {
                    projection
                        .inits
                        .iter()
                        .find(|i| i.name.name == "target")
                        .and_then(|i| match &i.value.kind {
                            ExprKind::Name(n) => Some(n.name.clone()),
                            _ => None,
                        })
                };
                let Some(target_var) = target_name
                    .as_deref()
                    .and_then(|n| program.populations[post].update.var(n))
                else {
                    self.diagnostics.push(
                        Diagnostic::error(
                            "the projection's target variable is not stored per neuron",
                        )
                        .primary(projection.span, "here"),
                    );
                    continue;
                };
                let (connect, autapses) = self.lower_connect(projection.connect.as_ref());
                let delay = match &projection.delay {
                    Some(d) => self.synapse_value(synapse, projection, d),
                    None => SynapseValue::Const(0.0),
                };
                let dendritic_delay = match &projection.dendritic_delay {
                    Some((_, d)) => {
                        if !plastic {
                            self.diagnostics.push(
                                Diagnostic::error("a dendritic delay needs a plastic synapse")
                                    .primary(d.span, "here")
                                    .note("for a static synapse only the total delay matters: add it to the `delay`"),
                            );
                            continue;
                        }
                        let value = self.constant(d).unwrap_or(0.0);
                        if value < 0.0 {
                            self.diagnostics.push(
                                Diagnostic::error("a delay cannot be negative")
                                    .primary(d.span, "negative dendritic delay"),
                            );
                        }
                        value.max(0.0)
                    }
                    None => 0.0,
                };
                let (weight, plasticity) = if plastic {
                    if let (SynapseValue::PerSynapse(_), Some(d)) = (&delay, &projection.delay) {
                        self.diagnostics.push(
                            Diagnostic::error(
                                "a plastic projection needs one delay for all its synapses",
                            )
                            .primary(d.span, "differs between synapses")
                            .note("heterogeneous delays of plastic synapses are not simulated yet"),
                        );
                        continue;
                    }
                    let port = &program.populations[post].update.vars[target_var as usize];
                    let port_unit = (port.unit.clone(), port.scale);
                    let Some(ir) =
                        self.lower_plasticity(synapse, projection, (&port_unit.0, port_unit.1))
                    else {
                        continue;
                    };
                    (SynapseValue::Const(0.0), Some(ir))
                } else {
                    let weight =
                        self.synapse_value(synapse, projection, &self.weight_expr(synapse));
                    (weight, None)
                };
                let pre_name = match pre {
                    Node::Population(p) => program.populations[p].name.clone(),
                    Node::Source(s) => program.sources[s].name.clone(),
                };
                program.projections.push(ProjectionIr {
                    name: format!("{pre_name}->{}", program.populations[post].name),
                    pre,
                    post,
                    target_var,
                    connect,
                    autapses,
                    weight,
                    delay,
                    span: projection.span,
                    delay_span: projection
                        .delay
                        .as_ref()
                        .map_or(projection.span, |d| d.span),
                    dendritic_delay,
                    plasticity,
                });
            }
        }
    }

    /// The simulator supports synapses whose only effect is `target += expression` at a
    /// presynaptic spike, where the expression does not change during the run.
    fn synapse_supported(&mut self, synapse: &ModelInfo, projection: &ast::Projection) -> bool {
        let mut supported = true;
        let port = synapse.target.as_ref().map(|(n, _)| n.name.as_str());
        for member in &synapse.ast.members {
            let problem = match member {
                Member::Ode(ode) => Some((ode.span, "an ODE in a synapse")),
                Member::On { event, span, .. } if event.name == "post" => {
                    Some((*span, "an `on post` handler"))
                }
                Member::On { body, .. } => body.stmts.iter().find_map(|s| match s {
                    ast::Stmt::Assign {
                        target,
                        op: ast::AssignOp::Add | ast::AssignOp::Sub,
                        ..
                    } if Some(target.name.as_str()) == port => None,
                    ast::Stmt::Assign { span, .. } => {
                        Some((*span, "a handler that changes synapse state"))
                    }
                    ast::Stmt::If { span, .. } => Some((*span, "a conditional in a handler")),
                    ast::Stmt::Error(span) => Some((*span, "an erroneous statement")),
                }),
                _ => None,
            };
            if let Some((span, what)) = problem {
                self.diagnostics.push(
                    Diagnostic::error(format!("`{}` has {what}, which the simulator does not run yet", synapse.name()))
                        .primary(span, "plasticity is not simulated yet")
                        .secondary(projection.synapse.span, "used here")
                        .note("today's simulator runs synapses whose only effect is `target += value` at a presynaptic spike"),
                );
                supported = false;
            }
        }
        if synapse
            .vars
            .iter()
            .any(|v| matches!(v.placement, ast::Placement::Pre | ast::Placement::Post))
        {
            supported = false;
            self.diagnostics.push(
                Diagnostic::error(format!("`{}` has presynaptic or postsynaptic traces, which the simulator does not run yet", synapse.name()))
                    .primary(projection.synapse.span, "plasticity is not simulated yet"),
            );
        }
        supported
    }

    /// The total increment an `on pre` handler adds to the target, as one expression.
    fn weight_expr(&self, synapse: &ModelInfo) -> ast::Expr {
        let mut total: Option<ast::Expr> = None;
        for member in &synapse.ast.members {
            if let Member::On { event, body, .. } = member {
                if event.name != "pre" {
                    continue;
                }
                for stmt in &body.stmts {
                    if let ast::Stmt::Assign {
                        op, value, span, ..
                    } = stmt
                    {
                        let term = match op {
                            ast::AssignOp::Sub => ast::Expr::new(
                                ExprKind::Unary(ast::UnOp::Neg, Box::new(value.clone())),
                                *span,
                            ),
                            _ => value.clone(),
                        };
                        total = Some(match total {
                            None => term,
                            Some(acc) => ast::Expr::new(
                                ExprKind::Binary(ast::BinOp::Add, Box::new(acc), Box::new(term)),
                                *span,
                            ),
                        });
                    }
                }
            }
        }
        total.unwrap_or(ast::Expr::new(ExprKind::Number(0.0), synapse.ast.name.span))
    }

    /// Lowers a per-synapse expression over the synapse's parameters (set by the projection
    /// or defaulted), `i` and `j`.
    pub(super) fn synapse_value(
        &mut self,
        synapse: &ModelInfo,
        projection: &ast::Projection,
        expr: &ast::Expr,
    ) -> SynapseValue {
        let mut builder = Builder::default();
        let mut values: HashMap<String, Expr> = HashMap::new();
        let mut stmts = Vec::new();
        for decl in &synapse.vars {
            // A kernel synapse's `post param`s are read from its target neuron.
            if synapse.output.is_some() && decl.placement == ast::Placement::Post {
                continue;
            }
            let source = projection
                .inits
                .iter()
                .rev()
                .find(|i| i.name.name == decl.name.name)
                .map(|i| &i.value)
                .or(decl.default.as_ref());
            let Some(source) = source else {
                if synapse
                    .symbols
                    .get(&decl.name.name)
                    .is_some_and(|s| matches!(s.symbol, Symbol::Var { .. }))
                    && decl.kind == VarKind::Param
                {
                    self.diagnostics.push(
                        Diagnostic::error(format!(
                            "`{}.{}` has no value",
                            synapse.name(),
                            decl.name.name
                        ))
                        .primary(
                            projection.synapse.span,
                            format!("set it here, as in `{{ {} = ... }}`", decl.name.name),
                        ),
                    );
                }
                continue;
            };
            let env = |n: &str| -> Option<Expr> {
                match n {
                    "i" => Some(Expr::Var(SYNAPSE_PRE)),
                    "j" => Some(Expr::Var(SYNAPSE_POST)),
                    _ => values.get(n).cloned(),
                }
            };
            let lowered = lower_expr(source, &env, &mut builder);
            // Each parameter is drawn once per synapse, even if the handler reads it twice.
            let local = builder.local();
            stmts.push(Stmt::Let(local, lowered));
            values.insert(decl.name.name.clone(), Expr::Local(local));
        }
        let env = |n: &str| -> Option<Expr> {
            match n {
                "i" => Some(Expr::Var(SYNAPSE_PRE)),
                "j" => Some(Expr::Var(SYNAPSE_POST)),
                "dt" => Some(Expr::c(self.dt)),
                _ => values.get(n).cloned(),
            }
        };
        let value = lower_expr(expr, &env, &mut builder);
        stmts.push(Stmt::Store(SYNAPSE_OUT, value));
        let kernel = Kernel {
            name: format!("{}.synapse", synapse.name()),
            vars: synapse_vars(),
            n_locals: builder.n_locals,
            n_draws: builder.n_draws,
            body: stmts,
            notes: Vec::new(),
        };
        match constant_kernel_value(&kernel) {
            Some(v) => SynapseValue::Const(v),
            None => SynapseValue::PerSynapse(kernel),
        }
    }

    fn lower_connect(&mut self, connect: Option<&ast::Connect>) -> (ConnectIr, bool) {
        let Some(connect) = connect else {
            return (ConnectIr::AllToAll, true);
        };
        match connect {
            ast::Connect::Rule { rule, args, .. } => {
                let mut values: HashMap<&str, (f64, &ast::Expr)> = HashMap::new();
                for (name, arg) in resolve::connect_args(&rule.name, args) {
                    if let Some(v) = self.constant(&arg.value) {
                        values.insert(name, (v, &arg.value));
                    }
                }
                let autapses = values.get("autapses").is_none_or(|(v, _)| *v != 0.0);
                let multapses = values.get("multapses").is_some_and(|(v, _)| *v != 0.0);
                if let Some((v, e)) = values.get("multapses") {
                    if *v != 0.0 && rule.name == "fixed_outdegree" {
                        self.diagnostics.push(
                            Diagnostic::warning("multapses are not drawn yet")
                                .primary(e.span, "connections are drawn without repeats")
                                .note("each source connects to a target at most once; NEST's default allows repeats"),
                        );
                    }
                }
                let count = |key: &str, this: &mut Self| -> u64 {
                    match values.get(key) {
                        Some((v, _)) if v.fract() == 0.0 && *v >= 0.0 => *v as u64,
                        Some((v, e)) => {
                            this.diagnostics.push(
                                Diagnostic::error(format!(
                                    "`{key}` must be a whole number, found {}",
                                    units::format_number(*v)
                                ))
                                .primary(e.span, "not a count"),
                            );
                            0
                        }
                        None => 0,
                    }
                };
                let ir = match rule.name.as_str() {
                    "one_to_one" => ConnectIr::OneToOne,
                    "bernoulli" => {
                        let p = values.get("p").map_or(0.0, |(p, _)| *p);
                        if let Some((p, e)) =
                            values.get("p").filter(|(p, _)| !(0.0..=1.0).contains(p))
                        {
                            self.diagnostics.push(
                                Diagnostic::error(format!(
                                    "a probability must lie in [0, 1], found {}",
                                    units::format_number(*p)
                                ))
                                .primary(e.span, "out of range"),
                            );
                        }
                        ConnectIr::Bernoulli(p)
                    }
                    "fixed_indegree" => ConnectIr::FixedIndegree {
                        k: count("k", self).min(u32::MAX as u64) as u32,
                        multapses,
                    },
                    "fixed_outdegree" => {
                        ConnectIr::FixedOutdegree(count("k", self).min(u32::MAX as u64) as u32)
                    }
                    "fixed_total" => ConnectIr::FixedTotal(count("n", self)),
                    _ => ConnectIr::AllToAll,
                };
                (ir, autapses)
            }
            ast::Connect::Where { condition, .. } => {
                let mut builder = Builder::default();
                let env = |n: &str| -> Option<Expr> {
                    match n {
                        "i" => Some(Expr::Var(SYNAPSE_PRE)),
                        "j" => Some(Expr::Var(SYNAPSE_POST)),
                        _ => None,
                    }
                };
                let cond = lower_expr(condition, &env, &mut builder);
                let kernel = Kernel {
                    name: "where".to_string(),
                    vars: synapse_vars(),
                    n_locals: builder.n_locals,
                    n_draws: builder.n_draws,
                    body: vec![Stmt::Store(SYNAPSE_OUT, cond)],
                    notes: Vec::new(),
                };
                (ConnectIr::Where(kernel), true)
            }
            ast::Connect::File {
                path, path_span, ..
            } => (
                ConnectIr::File {
                    path: path.clone(),
                    span: *path_span,
                },
                true,
            ),
        }
    }
}

/// The method a model or population forces (`method = ...`), with the tolerances of `rkf45`
/// (the resolver has checked the arguments; anything else keeps its default).
fn forced_method(choice: Option<&ast::MethodChoice>) -> (Option<Method>, adaptive::Tolerances) {
    let mut tolerances = adaptive::Tolerances::default();
    if let Some(ast::MethodChoice { method, args, .. }) = choice {
        for arg in args {
            let (Some(name), ExprKind::Number(value)) = (&arg.name, &arg.value.kind) else {
                continue;
            };
            match name.name.as_str() {
                "atol" => tolerances.atol = *value,
                "rtol" => tolerances.rtol = *value,
                "rtol_dydt" => tolerances.rtol_dydt = *value,
                _ => {}
            }
        }
        return (Method::parse(&method.name), tolerances);
    }
    (None, tolerances)
}

fn synapse_vars() -> Vec<VarInfo> {
    ["pre", "post", "value"]
        .iter()
        .map(|n| VarInfo {
            access: Default::default(),
            name: n.to_string(),
            role: VarRole::Internal,
            unit: "1".to_string(),
            scale: 1.0,
            storage: Default::default(),
        })
        .collect()
}

/// The value a synapse kernel stores when it reads nothing per synapse.
pub(super) fn constant_kernel_value(kernel: &Kernel) -> Option<f64> {
    let mut locals: HashMap<u32, f64> = HashMap::new();
    let mut result = None;
    for stmt in &kernel.body {
        match stmt {
            Stmt::Let(l, e) => {
                let v = const_eval(&substitute_locals(e, &locals))?;
                locals.insert(*l, v);
            }
            Stmt::Store(_, e) => result = Some(const_eval(&substitute_locals(e, &locals))?),
            _ => return None,
        }
    }
    result
}

fn substitute_locals(e: &Expr, locals: &HashMap<u32, f64>) -> Expr {
    match e {
        Expr::Local(l) => locals.get(l).map_or(e.clone(), |v| Expr::c(*v)),
        Expr::Unary(op, a) => Expr::Unary(*op, Box::new(substitute_locals(a, locals))),
        Expr::Binary(op, a, b) => Expr::bin(
            *op,
            substitute_locals(a, locals),
            substitute_locals(b, locals),
        ),
        Expr::Call(f, a) => Expr::call(*f, substitute_locals(a, locals)),
        Expr::Select(c, a, b) => Expr::select(
            substitute_locals(c, locals),
            substitute_locals(a, locals),
            substitute_locals(b, locals),
        ),
        Expr::Random { kind, draw, arg } => Expr::Random {
            kind: *kind,
            draw: *draw,
            arg: Box::new(substitute_locals(arg, locals)),
        },
        other => other.clone(),
    }
}

impl ProjectionIr {
    /// A short description of the connectivity rule, for `snnc ir`.
    pub fn connect_summary(&self) -> String {
        match &self.connect {
            ConnectIr::AllToAll => "all_to_all".to_string(),
            ConnectIr::OneToOne => "one_to_one".to_string(),
            ConnectIr::Bernoulli(p) => format!("bernoulli(p = {p})"),
            ConnectIr::FixedIndegree { k, multapses } => {
                format!("fixed_indegree(k = {k}, multapses = {multapses})")
            }
            ConnectIr::FixedOutdegree(k) => format!("fixed_outdegree(k = {k})"),
            ConnectIr::FixedTotal(n) => format!("fixed_total(n = {n})"),
            ConnectIr::Where(_) => "where".to_string(),
            ConnectIr::File { path, .. } => format!("from \"{path}\""),
        }
    }
}

/// The text form of a whole program, as `snnc ir` prints it and the IR golden tests compare.
pub fn print(program: &Program) -> String {
    let mut out = format!(
        "network {} (dt = {} ms, seed = {})\n",
        program.network,
        units::format_number(program.dt * 1e3),
        program.seed
    );
    for population in &program.populations {
        out.push_str(&format!(
            "\npopulation {}: {}[{}]\n",
            population.name, population.model, population.size
        ));
        out.push_str(&ir::print::kernel(&population.init));
        out.push_str(&ir::print::kernel(&population.update));
    }
    for source in &program.sources {
        out.push_str(&format!(
            "\nspike source {}[{}] from \"{}\"\n",
            source.name, source.size, source.path
        ));
    }
    for projection in &program.projections {
        let value = |v: &SynapseValue| match v {
            SynapseValue::Const(c) => ir::print::number(*c),
            SynapseValue::PerSynapse(_) => "per synapse".to_string(),
        };
        out.push_str(&format!(
            "\nprojection {}: connect {}, onto {}, weight {}, delay {} s\n",
            projection.name,
            projection.connect_summary(),
            program.populations[projection.post].update.vars[projection.target_var as usize].name,
            match (&projection.plasticity, &projection.connect) {
                (Some(_), _) => "plastic (handlers deliver)".to_string(),
                (None, ConnectIr::File { .. }) => format!(
                    "{} (or the file's weight column)",
                    value(&projection.weight)
                ),
                (None, _) => value(&projection.weight),
            },
            value(&projection.delay)
        ));
        for kernel in [&projection.weight, &projection.delay] {
            if let SynapseValue::PerSynapse(kernel) = kernel {
                out.push_str(&ir::print::kernel(kernel));
            }
        }
        if let Some(plastic) = &projection.plasticity {
            out.push_str("plastic arrays:");
            for array in &plastic.arrays {
                out.push_str(&format!(
                    " {} ({:?}, initially {})",
                    array.name,
                    array.space,
                    value(&array.init)
                ));
            }
            out.push('\n');
            for kernel in plastic.kernels.iter().flatten() {
                out.push_str(&ir::print::kernel(kernel));
            }
        }
    }
    if !program.reductions.is_empty() {
        out.push('\n');
        out.push_str(&super::population::print(program));
    }
    out
}

/// The states of population `population` that projections onto it add to (their `target`),
/// or `None` when some projection onto it does not name its target (then any state may be).
fn written_by_projections(items: &[NetItem], population: &str) -> Option<Vec<String>> {
    let mut names = Vec::new();
    for item in items {
        let NetItem::Projection(projection) = item else {
            continue;
        };
        if !projection.targets.iter().any(|t| t.name.name == population) {
            continue;
        }
        let target = projection
            .inits
            .iter()
            .find(|i| i.name.name == "target")
            .and_then(|i| match &i.value.kind {
                ExprKind::Name(n) => Some(n.name.clone()),
                _ => None,
            })?;
        names.push(target);
    }
    Some(names)
}
