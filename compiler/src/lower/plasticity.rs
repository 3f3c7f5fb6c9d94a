//! Lowering of plastic synapse models: per-synapse state, pre/post traces and their lazy
//! decay, and the `on pre` / `on post` handlers, into the four handler kernels of a projection.
//!
//! This module owns the translation of a synapse model into what `snnc_runtime::plasticity`
//! runs: the list of plastic arrays (where each lives, its unit and initial value) and one IR
//! kernel per pass (`Pass` in the runtime). It decides what each pass may store, so that a
//! synapse pass writes only per-synapse state and the target port, and a neuron pass only the
//! `pre` or `post` state of its neurons; it does not run anything.
//!
//! **Lazy (event-driven) integration.** A synapse ODE must be linear with constant
//! coefficients in its own variable, `dx/dt = a + b·x` (traces, recovery variables). Its
//! exact solution over any interval `Δ` is `x·e^{bΔ} + (a/b)·(e^{bΔ} - 1)` (`x + aΔ` when
//! `b = 0`), so each such variable gets a companion array with the time it was last brought up
//! to date, and a handler decays it to its event time `t` when it reads it, and stores it back
//! (with the new time) only where it writes it. Nothing is integrated between events.
//!
//! **Writes to traces inside a synapse pass.** A handler may write a `pre` trace in `on pre`
//! and read it afterwards (`A_pre += dA; w += A_pre`). The synapse pass replays such writes in
//! locals, starting from the stored (decayed) value, and never stores them; the neuron pass
//! performs them once per neuron. The two agree because a trace's new value may depend only on
//! the trace side's own state, shared parameters and `t` (checked by `resolve`), and draws no
//! random numbers (checked here).

use super::program::{lower_expr, NetworkLowerer, SynapseValue};
use crate::ast::{self, ExprKind, Member, Placement, VarKind};
use crate::check::dims::unit_scale;
use crate::diagnostics::Diagnostic;
use crate::ir::{self, Access, Builder, Expr, Func, Kernel, Stmt, VarId, VarInfo, VarRole};
use crate::resolve::{self, ModelInfo};
use snnc_runtime::plasticity::{Pass, Space};
use std::collections::HashMap;

/// One array of plastic state as lowering describes it.
#[derive(Clone, Debug)]
pub struct PlasticArrayIr {
    pub name: String,
    pub space: Space,
    pub unit: String,
    pub scale: f64,
    /// Per synapse (a kernel over `i`, `j` like a static weight) or one constant.
    pub init: SynapseValue,
    /// Stored as `f64` even in a network of `precision = f32`: the port scratch (input, like a
    /// ring buffer), last-update times (a time rounded to `f32` would be off by more than a
    /// step late in a run) and projection-wide values.
    pub keeps_f64: bool,
}

/// Everything a plastic projection needs beyond its connectivity.
#[derive(Clone, Debug)]
pub struct PlasticityIr {
    pub arrays: Vec<PlasticArrayIr>,
    /// The per-target scratch array of port increments.
    pub port: Option<VarId>,
    /// The synapse's weight: its first per-synapse `state`, which the weight column of a
    /// connection file sets and `record weights` / `save weights` name.
    pub weight: Option<VarId>,
    /// One kernel per pass, indexed by `Pass as usize`; `None` where the pass does nothing.
    pub kernels: [Option<Kernel>; 5],
    /// The reductions the handlers read, each with the projection-wide (`Space::Global`)
    /// array the runtime copies its value into every step.
    pub reductions: Vec<(crate::reductions::ReductionIr, VarId)>,
}

/// A lazily integrated variable: `dx/dt = a + b·x`, last brought up to date at `last`.
#[derive(Clone, Copy, Debug)]
struct Lazy {
    a: f64,
    b: f64,
    last: VarId,
}

/// What a pass is: which spaces it reads, which one it stores, how it addresses each.
fn access(pass: Pass, space: Space) -> Access {
    match (pass, space) {
        (_, Space::Global) => Access::Scalar,
        (Pass::Step, Space::Synapse) => Access::Element,
        (Pass::Step, Space::Post) => Access::Gather(0),
        (Pass::Step, Space::Pre) => Access::Gather(1),
        (Pass::PreSynapses, Space::Synapse) => Access::Element,
        (Pass::PreSynapses, Space::Pre) => Access::Scalar,
        (Pass::PreSynapses, Space::Post) => Access::Gather(0),
        (Pass::PostSynapses, Space::Synapse) => Access::Gather(0),
        (Pass::PostSynapses, Space::Pre) => Access::Gather(1),
        (Pass::PostSynapses, Space::Post) => Access::Scalar,
        (Pass::PreNeurons, _) | (Pass::PostNeurons, _) => Access::Gather(0),
    }
}

fn stores(pass: Pass) -> Space {
    match pass {
        Pass::PreSynapses | Pass::PostSynapses | Pass::Step => Space::Synapse,
        Pass::PreNeurons => Space::Pre,
        Pass::PostNeurons => Space::Post,
    }
}

fn reads(pass: Pass, space: Space) -> bool {
    matches!(pass, Pass::PreSynapses | Pass::PostSynapses | Pass::Step)
        || space == stores(pass)
        || space == Space::Global
}

fn event_of(pass: Pass) -> &'static str {
    match pass {
        Pass::PreSynapses | Pass::PreNeurons => "pre",
        Pass::PostSynapses | Pass::PostNeurons => "post",
        Pass::Step => "step",
    }
}

/// Whether a synapse model needs the plasticity machinery (anything beyond `target += value`
/// in `on pre` with a value fixed for the run).
pub fn is_plastic(synapse: &ModelInfo) -> bool {
    let port = synapse.target.as_ref().map(|(n, _)| n.name.as_str());
    synapse.vars.iter().any(|v| {
        matches!(v.placement, Placement::Pre | Placement::Post) || v.kind == VarKind::State
    }) || synapse.ast.members.iter().any(|m| match m {
        Member::Ode(_) => true,
        Member::On { event, body, .. } => {
            event.name == "post"
                || event.name == "step"
                || body.stmts.iter().any(|s| match s {
                    ast::Stmt::Assign { target, op, .. } => {
                        Some(target.name.as_str()) != port
                            || !matches!(op, ast::AssignOp::Add | ast::AssignOp::Sub)
                    }
                    _ => true,
                })
        }
        _ => false,
    })
}

impl NetworkLowerer<'_> {
    /// Lowers a plastic synapse model for one projection; `None` after reporting errors.
    /// `port_unit` is the unit and scale of the bound target variable (what `[g]` means).
    pub(super) fn lower_plasticity(
        &mut self,
        synapse: &ModelInfo,
        projection: &ast::Projection,
        port_unit: (&str, f64),
    ) -> Option<PlasticityIr> {
        let errors_before = self.error_count();
        let here = projection.synapse.span;
        let mut arrays: Vec<PlasticArrayIr> = Vec::new();
        let mut constants: HashMap<String, f64> = HashMap::new();
        let mut array_of: HashMap<String, VarId> = HashMap::new();
        let mut bound: HashMap<String, ast::Expr> = HashMap::new();
        let mut reductions: Vec<(crate::reductions::ReductionIr, VarId)> = Vec::new();
        for decl in &synapse.vars {
            let name = &decl.name.name;
            let given = projection
                .inits
                .iter()
                .rev()
                .find(|i| i.name.name == *name)
                .map(|i| &i.value);
            if let Some(value) = given.filter(|v| crate::reductions::contains(v)) {
                if let Some(rewritten) = self.bind_to_reductions(
                    synapse,
                    decl,
                    value,
                    &mut arrays,
                    &mut array_of,
                    &mut reductions,
                ) {
                    bound.insert(name.clone(), rewritten);
                }
                continue;
            }
            let name_expr = ast::Expr::new(ExprKind::Name(decl.name.clone()), decl.name.span);
            let value = constant_if_possible(self.synapse_value(synapse, projection, &name_expr));
            let (unit, scale) = match &decl.unit.kind {
                ast::UnitExprKind::One => ("1".to_string(), 1.0),
                ast::UnitExprKind::UnitOf(_) => (port_unit.0.to_string(), port_unit.1),
                _ => (resolve::unit_text(&decl.unit), unit_scale(&decl.unit)),
            };
            let space = match (decl.placement, decl.kind) {
                (Placement::Shared, VarKind::Param) | (Placement::Each, VarKind::Param) => {
                    match value {
                        SynapseValue::Const(c) => {
                            constants.insert(name.clone(), c);
                            continue;
                        }
                        SynapseValue::PerSynapse(_) if decl.placement == Placement::Shared => {
                            self.push(
                                Diagnostic::error(format!(
                                    "the shared parameter `{name}` must have one value for the whole projection"
                                ))
                                .primary(here, "set here per synapse (it uses `i`, `j` or a random draw)")
                                .secondary(decl.span, "declared `shared` here")
                                .help("drop `shared` to give every synapse its own value"),
                            );
                            continue;
                        }
                        SynapseValue::PerSynapse(_) => Space::Synapse,
                    }
                }
                (Placement::Each, VarKind::State) => Space::Synapse,
                // Resolution keeps inputs out of synapse models.
                (_, VarKind::Input) => continue,
                (Placement::Pre, _) | (Placement::Post, _) => {
                    if !matches!(value, SynapseValue::Const(_)) {
                        self.push(
                            Diagnostic::error(format!(
                                "the initial value of the trace `{name}` must be a constant"
                            ))
                            .primary(here, "set here per synapse")
                            .note("a `pre`/`post` state is one value per neuron, not per synapse"),
                        );
                        continue;
                    }
                    if decl.placement == Placement::Pre {
                        Space::Pre
                    } else {
                        Space::Post
                    }
                }
                (Placement::Shared, VarKind::State) => {
                    self.push(
                        Diagnostic::error(format!(
                            "`{}` has the shared state `{name}`, which the simulator does not run yet",
                            synapse.name()
                        ))
                        .primary(decl.span, "shared state is not simulated yet")
                        .secondary(here, "used here")
                        .help("use a `pre` or `post` state, or a per-synapse `state`"),
                    );
                    continue;
                }
            };
            array_of.insert(name.clone(), arrays.len() as VarId);
            arrays.push(PlasticArrayIr {
                name: name.clone(),
                space,
                unit,
                scale,
                init: value,
                keeps_f64: false,
            });
        }

        // Lazily integrated variables, each with its last-update time.
        let lets: HashMap<&str, &ast::Expr> = synapse
            .lets
            .iter()
            .map(|(n, e)| (n.name.as_str(), e))
            .collect();
        let mut lazy: HashMap<VarId, Lazy> = HashMap::new();
        for member in &synapse.ast.members {
            let Member::Ode(ode) = member else { continue };
            let Some(&var) = array_of.get(&ode.var.name) else {
                continue;
            };
            let Some((a, b)) = self.linear_coefficients(ode, &constants, &lets) else {
                self.push(
                    Diagnostic::error(format!(
                        "cannot integrate `{}` between events: its ODE is not of the form `a + b * {}` with constant `a` and `b`",
                        ode.var.name, ode.var.name
                    ))
                    .primary(ode.span, "not linear with constant coefficients")
                    .note("synapse ODEs are integrated exactly and lazily, at the events that read them, which needs a linear first-order ODE whose coefficients are constants or shared parameters"),
                );
                continue;
            };
            let space = arrays[var as usize].space;
            let last = arrays.len() as VarId;
            arrays.push(PlasticArrayIr {
                name: format!("{}_last_update", ode.var.name),
                space,
                unit: "s".to_string(),
                scale: 1.0,
                init: SynapseValue::Const(0.0),
                keeps_f64: true,
            });
            lazy.insert(var, Lazy { a, b, last });
        }

        let port_name = synapse.target.as_ref().map(|(n, _)| n.name.clone());
        let writes_port = synapse.ast.members.iter().any(|m| match m {
            Member::On { event, body, .. } if event.name == "pre" => {
                block_assigns(body, port_name.as_deref().unwrap_or(""))
            }
            _ => false,
        });
        let port = writes_port.then(|| {
            arrays.push(PlasticArrayIr {
                name: "port".to_string(),
                space: Space::Post,
                unit: port_unit.0.to_string(),
                scale: port_unit.1,
                init: SynapseValue::Const(0.0),
                keeps_f64: true,
            });
            (arrays.len() - 1) as VarId
        });

        let mut kernels: [Option<Kernel>; 5] = Default::default();
        for pass in Pass::ALL {
            let handler = synapse.ast.members.iter().find_map(|m| match m {
                Member::On { event, body, .. } if event.name == event_of(pass) => Some(body),
                _ => None,
            });
            let Some(body) = handler else { continue };
            let context = HandlerContext {
                pass,
                arrays: &arrays,
                array_of: &array_of,
                constants: &constants,
                lets: &lets,
                lazy: &lazy,
                port,
                port_name: port_name.as_deref(),
                dt: self.dt,
                bound: &bound,
            };
            let kernel = self.handler_kernel(synapse, &context, body);
            if let Some(k) = kernel {
                kernels[pass as usize] = Some(k);
            }
        }
        if self.error_count() > errors_before {
            return None;
        }
        let weight = synapse
            .vars
            .iter()
            .find(|d| d.kind == VarKind::State && d.placement == Placement::Each)
            .and_then(|d| array_of.get(&d.name.name).copied());
        Some(PlasticityIr {
            arrays,
            port,
            weight,
            kernels,
            reductions,
        })
    }

    /// `(a, b)` of `dx/dt = a + b·x`, or `None` when the right-hand side is not of that form.
    fn linear_coefficients(
        &self,
        ode: &ast::Ode,
        constants: &HashMap<String, f64>,
        lets: &HashMap<&str, &ast::Expr>,
    ) -> Option<(f64, f64)> {
        let at = |x: f64| -> Option<f64> {
            let mut builder = Builder::default();
            let env = ConstEnv {
                var: &ode.var.name,
                x,
                constants,
                lets,
                dt: self.dt,
            };
            super::program::const_eval(&lower_expr(&ode.rhs, &|n| env.get(n), &mut builder))
                .filter(|v| v.is_finite())
        };
        let (f0, f1, f2, f3) = (at(0.0)?, at(1.0)?, at(2.0)?, at(-3.0)?);
        let (a, b) = (f0, f1 - f0);
        // Linear: the values at 2 and -3 lie on the same line (to rounding).
        let close =
            |u: f64, v: f64| (u - v).abs() <= 1e-9 * (u.abs() + v.abs() + f64::MIN_POSITIVE);
        (close(f2, a + 2.0 * b) && close(f3, a - 3.0 * b)).then_some((a, b))
    }

    fn handler_kernel(
        &mut self,
        synapse: &ModelInfo,
        cx: &HandlerContext<'_>,
        body: &ast::Block,
    ) -> Option<Kernel> {
        let mut builder = Builder::default();
        let mut stmts = Vec::new();
        // The current value of every readable array, decayed to the event time. Each
        // assignment binds a fresh local (the IR's locals are defined once), and `state` maps
        // each variable to the local holding its latest value.
        let mut state = HandlerState::default();
        let mut model_vars: Vec<VarId> = cx.array_of.values().copied().collect();
        model_vars.sort_unstable();
        let mut initial: HashMap<VarId, ir::LocalId> = HashMap::new();
        for var in model_vars {
            let array = &cx.arrays[var as usize];
            if !reads(cx.pass, array.space) {
                continue;
            }
            let value = match cx.lazy.get(&var) {
                Some(lazy) => decayed(var, lazy),
                None => Expr::Var(var),
            };
            let local = builder.local();
            stmts.push(Stmt::Let(local, value));
            state.current.insert(var, local);
            initial.insert(var, local);
        }
        let port_delta = (cx.port.is_some() && cx.pass == Pass::PreSynapses).then(|| {
            let local = builder.local();
            stmts.push(Stmt::Let(local, Expr::c(0.0)));
            local
        });
        if let (Some(port), Some(local)) = (cx.port, port_delta) {
            state.current.insert(port, local);
            initial.insert(port, local);
        }
        self.handler_block(synapse, cx, body, &mut state, &mut stmts, &mut builder);

        let own = stores(cx.pass);
        let mut changed: Vec<(VarId, ir::LocalId)> = state
            .current
            .iter()
            .filter(|(var, local)| initial.get(var) != Some(local))
            .map(|(v, l)| (*v, *l))
            .collect();
        changed.sort_unstable();
        let mut stored = false;
        for (var, local) in changed {
            if Some(var) == cx.port {
                stmts.push(Stmt::Store(
                    var,
                    Expr::add(Expr::Var(var), Expr::Local(local)),
                ));
                stored = true;
                continue;
            }
            if cx.arrays[var as usize].space != own {
                continue;
            }
            stmts.push(Stmt::Store(var, Expr::Local(local)));
            if let Some(lazy) = cx.lazy.get(&var) {
                stmts.push(Stmt::Store(lazy.last, Expr::Time));
            }
            stored = true;
        }
        if !stored {
            return None;
        }
        let vars = cx
            .arrays
            .iter()
            .map(|a| VarInfo {
                name: a.name.clone(),
                role: VarRole::State,
                access: access(cx.pass, a.space),
                unit: a.unit.clone(),
                scale: a.scale,
                storage: Default::default(),
            })
            .collect();
        let mut lazy_names: Vec<String> = cx
            .lazy
            .keys()
            .map(|v| cx.arrays[*v as usize].name.clone())
            .collect();
        lazy_names.sort();
        let note = format!(
            "{} pass of `on {}`; integrated lazily (exactly, to the event time): {}",
            match cx.pass {
                Pass::PreSynapses | Pass::PostSynapses => "per-synapse",
                Pass::Step => "every-step, per-synapse",
                Pass::PreNeurons => "per-presynaptic-neuron",
                Pass::PostNeurons => "per-postsynaptic-neuron",
            },
            event_of(cx.pass),
            if lazy_names.is_empty() {
                "nothing".to_string()
            } else {
                lazy_names.join(", ")
            }
        );
        Some(Kernel {
            name: format!("{}.{:?}", synapse.name(), cx.pass),
            vars,
            n_locals: builder.n_locals,
            n_draws: builder.n_draws,
            body: stmts,
            notes: vec![note],
        })
    }

    /// Lowers a handler block into straight-line code: assignments bind fresh locals, and an
    /// `if` evaluates both branches (every expression is pure; a random draw is a function of
    /// its address, so drawing it on the untaken branch changes nothing) and then selects,
    /// per variable, the value of the branch taken.
    fn handler_block(
        &mut self,
        synapse: &ModelInfo,
        cx: &HandlerContext<'_>,
        block: &ast::Block,
        state: &mut HandlerState,
        out: &mut Vec<Stmt>,
        builder: &mut Builder,
    ) {
        for stmt in &block.stmts {
            match stmt {
                ast::Stmt::Assign {
                    target,
                    op,
                    value,
                    span,
                } => {
                    let is_port = Some(target.name.as_str()) == cx.port_name;
                    if is_port && !matches!(op, ast::AssignOp::Add | ast::AssignOp::Sub) {
                        if cx.pass == Pass::PreSynapses {
                            self.push(
                                Diagnostic::error(format!(
                                    "`{}` sets the target port `{}`, which can only be incremented",
                                    synapse.name(),
                                    target.name
                                ))
                                .primary(*span, "only `+=` and `-=` are simulated")
                                .note("the port is the postsynaptic variable; a synapse adds its contribution to it"),
                            );
                        }
                        continue;
                    }
                    let var = if is_port {
                        cx.port
                    } else {
                        cx.array_of.get(&target.name).copied()
                    };
                    let Some(var) = var else { continue };
                    let Some(&local) = state.current.get(&var) else {
                        // Not readable in this pass: another pass performs this write.
                        continue;
                    };
                    let values = state.values(cx);
                    let env = |n: &str| -> Option<Expr> { handler_env(n, &values, cx) };
                    let lowered = lower_expr(value, &env, builder);
                    let space = cx.arrays[var as usize].space;
                    if !is_port && space != Space::Synapse && lowered.is_random() {
                        if space == stores(cx.pass) {
                            self.push(
                                Diagnostic::error(format!(
                                    "`{}` draws a random number for the trace `{}`, which the simulator does not support",
                                    synapse.name(),
                                    target.name
                                ))
                                .primary(*span, "a random draw in a trace update")
                                .note("a trace is one value per neuron; random draws are allowed in per-synapse updates"),
                            );
                        }
                        continue;
                    }
                    let current_value = Expr::Local(local);
                    let new = match op {
                        ast::AssignOp::Set => lowered,
                        ast::AssignOp::Add => Expr::add(current_value, lowered),
                        ast::AssignOp::Sub => Expr::sub(current_value, lowered),
                        ast::AssignOp::Mul => Expr::mul(current_value, lowered),
                        ast::AssignOp::Div => Expr::div(current_value, lowered),
                    };
                    let fresh = builder.local();
                    out.push(Stmt::Let(fresh, new));
                    state.current.insert(var, fresh);
                }
                ast::Stmt::If {
                    condition,
                    then_block,
                    else_block,
                    ..
                } => {
                    let values = state.values(cx);
                    let env = |n: &str| -> Option<Expr> { handler_env(n, &values, cx) };
                    let c = lower_expr(condition, &env, builder);
                    let cond = builder.local();
                    let mut then_state = state.clone();
                    let mut else_state = state.clone();
                    let mut branches = Vec::new();
                    self.handler_block(
                        synapse,
                        cx,
                        then_block,
                        &mut then_state,
                        &mut branches,
                        builder,
                    );
                    if let Some(b) = else_block {
                        self.handler_block(synapse, cx, b, &mut else_state, &mut branches, builder);
                    }
                    if branches.is_empty() {
                        continue;
                    }
                    out.push(Stmt::Let(cond, c));
                    out.extend(branches);
                    let mut vars: Vec<VarId> = state.current.keys().copied().collect();
                    vars.sort_unstable();
                    for var in vars {
                        let (a, b) = (then_state.current[&var], else_state.current[&var]);
                        if a == b {
                            state.current.insert(var, a);
                            continue;
                        }
                        let merged = builder.local();
                        out.push(Stmt::Let(
                            merged,
                            Expr::select(Expr::Local(cond), Expr::Local(a), Expr::Local(b)),
                        ));
                        state.current.insert(var, merged);
                    }
                }
                ast::Stmt::Error(_) => {}
            }
        }
    }
}

/// The latest value of each variable while a handler is lowered.
#[derive(Clone, Debug, Default)]
struct HandlerState {
    current: HashMap<VarId, ir::LocalId>,
}

impl HandlerState {
    /// Names to values: the arrays' latest locals and the constants.
    fn values(&self, cx: &HandlerContext<'_>) -> HashMap<String, Expr> {
        cx.array_of
            .iter()
            .filter_map(|(n, v)| self.current.get(v).map(|l| (n.clone(), Expr::Local(*l))))
            .chain(cx.constants.iter().map(|(n, c)| (n.clone(), Expr::c(*c))))
            .collect()
    }
}

/// What a handler kernel is being built for.
struct HandlerContext<'a> {
    pass: Pass,
    arrays: &'a [PlasticArrayIr],
    array_of: &'a HashMap<String, VarId>,
    constants: &'a HashMap<String, f64>,
    lets: &'a HashMap<&'a str, &'a ast::Expr>,
    lazy: &'a HashMap<VarId, Lazy>,
    port: Option<VarId>,
    port_name: Option<&'a str>,
    dt: f64,
    /// Parameters bound to population-level values, with their value (reductions replaced by
    /// the names of their projection-wide arrays).
    bound: &'a HashMap<String, ast::Expr>,
}

/// Names inside a handler: `t`, `dt`, the synapse's values, and its `let`s (inlined).
fn handler_env(n: &str, values: &HashMap<String, Expr>, cx: &HandlerContext<'_>) -> Option<Expr> {
    match n {
        "t" => return Some(Expr::Time),
        "dt" => return Some(Expr::c(cx.dt)),
        _ => {}
    }
    if let Some(v) = values.get(n) {
        return Some(v.clone());
    }
    if let Some(bound) = cx.bound.get(n) {
        let mut builder = Builder::default();
        return Some(lower_expr(
            bound,
            &|m| handler_env(m, values, cx),
            &mut builder,
        ));
    }
    let let_expr = cx.lets.get(n)?;
    let mut builder = Builder::default();
    Some(lower_expr(
        let_expr,
        &|m| handler_env(m, values, cx),
        &mut builder,
    ))
}

/// The value of lazily integrated `var` at the event time (`Expr::Time`).
fn decayed(var: VarId, lazy: &Lazy) -> Expr {
    let elapsed = Expr::sub(Expr::Time, Expr::Var(lazy.last));
    if lazy.b == 0.0 {
        return Expr::add(Expr::Var(var), Expr::mul(Expr::c(lazy.a), elapsed));
    }
    let exponent = Expr::mul(Expr::c(lazy.b), elapsed);
    let homogeneous = Expr::mul(Expr::Var(var), Expr::call(Func::Exp, exponent.clone()));
    if lazy.a == 0.0 {
        return homogeneous;
    }
    Expr::add(
        homogeneous,
        Expr::mul(Expr::c(lazy.a / lazy.b), Expr::call(Func::Expm1, exponent)),
    )
}

/// A per-synapse value that, once the other parameters' unused draws are removed, turns out
/// to be one constant (`synapse_value` evaluates every parameter, so a trace's initial value
/// looks per-synapse when a weight next to it is random).
fn constant_if_possible(value: SynapseValue) -> SynapseValue {
    match value {
        SynapseValue::PerSynapse(kernel) => {
            let mut simplified = kernel.clone();
            crate::opt::optimize(&mut simplified);
            match super::program::constant_kernel_value(&simplified) {
                Some(c) => SynapseValue::Const(c),
                None => SynapseValue::PerSynapse(kernel),
            }
        }
        constant => constant,
    }
}

/// The environment for evaluating an ODE's right-hand side at `var = x`.
struct ConstEnv<'a> {
    var: &'a str,
    x: f64,
    constants: &'a HashMap<String, f64>,
    lets: &'a HashMap<&'a str, &'a ast::Expr>,
    dt: f64,
}

impl ConstEnv<'_> {
    fn get(&self, n: &str) -> Option<Expr> {
        if n == self.var {
            return Some(Expr::c(self.x));
        }
        if n == "dt" {
            return Some(Expr::c(self.dt));
        }
        if n == "t" {
            return Some(Expr::Time);
        }
        if let Some(c) = self.constants.get(n) {
            return Some(Expr::c(*c));
        }
        let let_expr = self.lets.get(n)?;
        let mut builder = Builder::default();
        Some(lower_expr(let_expr, &|m| self.get(m), &mut builder))
    }
}

/// Whether a block assigns to `name` anywhere.
fn block_assigns(block: &ast::Block, name: &str) -> bool {
    block.stmts.iter().any(|s| match s {
        ast::Stmt::Assign { target, .. } => target.name == name,
        ast::Stmt::If {
            then_block,
            else_block,
            ..
        } => {
            block_assigns(then_block, name)
                || else_block.as_ref().is_some_and(|b| block_assigns(b, name))
        }
        ast::Stmt::Error(_) => false,
    })
}
