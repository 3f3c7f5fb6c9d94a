//! Kernel synapses: synapse models with a continuous output, merged into the update kernel of
//! their target population.
//!
//! A *kernel synapse* is a synapse model whose target port has a value,
//! `target I: pA = g * (E_rev - V_m)`. Its `post state`s (one set per projection and
//! postsynaptic neuron) follow the model's ODEs every step; its `on pre` increments one of them
//! (`g += w`) through the ordinary static delivery path (rings, per-synapse weights and delays);
//! and its output is added, every step, to the neuron `input` the projection binds with
//! `target = I_syn`. A `post param` of the synapse (`post param V_m: mV`) is read from the
//! target neuron's variable of the same name.
//!
//! This module owns that merge, and only it: for each population it finds the projections of
//! kernel synapses onto it ([`bindings_onto`]), adds their states to the population's arrays
//! (named `<input>#<k>.<state>`, `k` counting the projections bound to that input in
//! declaration order), lowers their ODEs in the population's environment so that the
//! integrator sees one combined system (a LIF neuron with an exponential current synapse is
//! linear with constant coefficients and is integrated exactly, like `iaf_psc_exp`), and gives
//! each neuron `input` its value: the sum of the bound outputs, in declaration order, or zero.
//! `program.rs` calls it from `lower_population` and `lower_projection` and keeps everything
//! else (refractoriness, inputs, thresholds, delivery); this module does not build kernels,
//! projections or rings itself, and knows nothing of plastic synapses (a kernel synapse is
//! never plastic: its handler only increments its state).
//!
//! What a kernel synapse may contain is checked here, with spans: `post state`s and their
//! ODEs, parameters (per-synapse or shared) and `post param` reads; an `on pre` whose
//! statements all increment (`+=`, `-=`) one `post state` by values computed from the
//! parameters alone; ODEs and the output that read only `post` states, `post param`s,
//! parameters with one value for the whole projection, constants and `t`. Units were checked
//! by `check`.

use super::odes::Ode;
use super::program::{const_eval, lower_expr, NetworkLowerer};
use crate::ast::{self, Member, NetItem, Placement, VarKind};
use crate::check::dims::unit_scale;
use crate::diagnostics::Diagnostic;
use crate::ir::{self, Builder, Expr, Stmt, VarInfo, VarRole};
use crate::resolve::{self, ModelInfo, Resolved};
use std::collections::HashMap;

/// Whether a synapse model is a kernel synapse (its target port has a value).
pub fn is_kernel(synapse: &ModelInfo) -> bool {
    synapse.output.is_some()
}

/// One projection of a kernel synapse onto one population.
pub(super) struct KernelBinding<'a> {
    pub projection: &'a ast::Projection,
    pub synapse: &'a ModelInfo,
    /// The neuron input it drives (`target = I_syn`).
    pub input: String,
    /// The prefix of its state arrays in the population: `I_syn#0`.
    pub tag: String,
}

/// The projections of kernel synapses onto `population`, in declaration order.
pub(super) fn bindings_onto<'a>(
    resolved: &'a Resolved,
    items: &'a [NetItem],
    population: &str,
) -> Vec<KernelBinding<'a>> {
    let mut bindings: Vec<KernelBinding<'a>> = Vec::new();
    for item in items {
        let NetItem::Projection(projection) = item else {
            continue;
        };
        if !projection.targets.iter().any(|t| t.name.name == population) {
            continue;
        }
        let Some(synapse) = resolved.lookup_model(0, &projection.synapse.name) else {
            continue;
        };
        if !is_kernel(synapse) {
            continue;
        }
        let Some(input) = projection
            .inits
            .iter()
            .find(|i| i.name.name == "target")
            .and_then(|i| match &i.value.kind {
                ast::ExprKind::Name(n) => Some(n.name.clone()),
                _ => None,
            })
        else {
            continue;
        };
        let k = bindings.iter().filter(|b| b.input == input).count();
        bindings.push(KernelBinding {
            projection,
            synapse,
            tag: format!("{input}#{k}"),
            input,
        });
    }
    bindings
}

/// The name of the population array that a kernel projection's `on pre` increments.
pub(super) fn delivery_var(
    resolved: &Resolved,
    items: &[NetItem],
    projection: &ast::Projection,
    population: &str,
) -> Option<String> {
    let binding = bindings_onto(resolved, items, population)
        .into_iter()
        .find(|b| std::ptr::eq(b.projection, projection))?;
    let state = incremented_state(binding.synapse)?;
    Some(format!("{}.{state}", binding.tag))
}

/// The `post state` the `on pre` handler increments (the first assignment's target).
fn incremented_state(synapse: &ModelInfo) -> Option<&str> {
    synapse.ast.members.iter().find_map(|m| match m {
        Member::On { event, body, .. } if event.name == "pre" => {
            body.stmts.iter().find_map(|s| match s {
                ast::Stmt::Assign { target, .. } => Some(target.name.as_str()),
                _ => None,
            })
        }
        _ => None,
    })
}

/// The unit a declaration of a kernel synapse is stored in; `[g]` is the port's unit.
fn declared_unit<'m>(synapse: &'m ModelInfo, decl: &'m ast::VarDecl) -> &'m ast::UnitExpr {
    match (&decl.unit.kind, &synapse.target) {
        (ast::UnitExprKind::UnitOf(_), Some((_, Some(unit)))) => unit,
        _ => &decl.unit,
    }
}

fn names_read(expr: &ast::Expr) -> Vec<(String, crate::source::Span)> {
    let mut out = Vec::new();
    resolve::walk_names(expr, &mut |name, span, is_call| {
        if !is_call {
            out.push((name.to_string(), span));
        }
    });
    out
}

impl NetworkLowerer<'_> {
    /// Adds the state of every kernel synapse bound to population `population` to its arrays
    /// (`vars`, initialised in `init_body`), sets each neuron input in `values` to the sum of
    /// its bound outputs (zero when none), and returns the synapses' ODEs, to be integrated
    /// with the neuron's.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn lower_kernel_synapses(
        &mut self,
        population: &str,
        model: &ModelInfo,
        vars: &mut Vec<VarInfo>,
        init_body: &mut Vec<Stmt>,
        init_builder: &mut Builder,
        values: &mut HashMap<String, Expr>,
    ) -> Vec<Ode> {
        let resolved = self.resolved;
        let items = &self.network.items;
        let dt = self.dt;
        let mut odes = Vec::new();
        let mut sums: HashMap<String, Expr> = HashMap::new();
        for binding in bindings_onto(resolved, items, population) {
            let synapse = binding.synapse;
            if !self.kernel_shape_ok(synapse, binding.projection) {
                continue;
            }
            // Parameters: one value per projection where the ODEs or the output read them.
            let mut constants: HashMap<String, f64> = HashMap::new();
            let mut varying: Vec<&str> = Vec::new();
            for decl in &synapse.vars {
                if decl.kind != VarKind::Param || decl.placement == Placement::Post {
                    continue;
                }
                let source = binding
                    .projection
                    .inits
                    .iter()
                    .rev()
                    .find(|i| i.name.name == decl.name.name)
                    .map(|i| &i.value)
                    .or(decl.default.as_ref());
                let Some(source) = source else {
                    // `synapse_value` reports a parameter without a value.
                    continue;
                };
                let env = |n: &str| -> Option<Expr> {
                    match n {
                        "dt" => Some(Expr::c(dt)),
                        _ => constants.get(n).map(|v| Expr::c(*v)),
                    }
                };
                let mut builder = Builder::default();
                match const_eval(&lower_expr(source, &env, &mut builder)) {
                    Some(v) => {
                        constants.insert(decl.name.name.clone(), v);
                    }
                    None => varying.push(&decl.name.name),
                }
            }
            // States: arrays of the population.
            let mut state_vars: HashMap<String, ir::VarId> = HashMap::new();
            for decl in &synapse.vars {
                if decl.kind != VarKind::State {
                    continue;
                }
                let unit = declared_unit(synapse, decl);
                vars.push(VarInfo {
                    access: Default::default(),
                    name: format!("{}.{}", binding.tag, decl.name.name),
                    role: VarRole::State,
                    unit: match &unit.kind {
                        ast::UnitExprKind::One => "1".to_string(),
                        _ => resolve::unit_text(unit),
                    },
                    scale: unit_scale(unit),
                    storage: Default::default(),
                });
                let id = (vars.len() - 1) as ir::VarId;
                let init = match &decl.default {
                    Some(e) => {
                        let env = |n: &str| -> Option<Expr> {
                            match n {
                                "dt" => Some(Expr::c(dt)),
                                _ => constants
                                    .get(n)
                                    .map(|v| Expr::c(*v))
                                    .or_else(|| state_vars.get(n).map(|v| Expr::Var(*v))),
                            }
                        };
                        lower_expr(e, &env, init_builder)
                    }
                    None => Expr::c(0.0),
                };
                init_body.push(Stmt::Store(id, init));
                state_vars.insert(decl.name.name.clone(), id);
            }
            let env = |n: &str| -> Option<Expr> {
                match n {
                    "t" => return Some(Expr::Time),
                    "dt" => return Some(Expr::c(dt)),
                    _ => {}
                }
                if let Some(id) = state_vars.get(n) {
                    return Some(Expr::Var(*id));
                }
                if let Some(v) = constants.get(n) {
                    return Some(Expr::c(*v));
                }
                match synapse.var(n) {
                    Some(d) if d.kind == VarKind::Param && d.placement == Placement::Post => {
                        values.get(n).cloned()
                    }
                    _ => None,
                }
            };
            let mut check_reads = |expr: &ast::Expr, what: &str| {
                for (name, span) in names_read(expr) {
                    if varying.contains(&name.as_str()) {
                        self.diagnostics.push(
                            Diagnostic::error(format!(
                                "the {what} of `{}` reads `{name}`, which differs between synapses",
                                synapse.name()
                            ))
                            .primary(span, "read here")
                            .secondary(binding.projection.synapse.span, "set per synapse in this projection")
                            .note("a kernel synapse's state is one value per postsynaptic neuron: its ODEs and output may read only parameters with one value for the whole projection"),
                        );
                    }
                }
            };
            for member in &synapse.ast.members {
                let Member::Ode(ode) = member else { continue };
                check_reads(&ode.rhs, "ODE");
                let Some(&var) = state_vars.get(&ode.var.name) else {
                    continue;
                };
                let mut builder = Builder::default();
                let rhs = lower_expr(&ode.rhs, &env, &mut builder);
                odes.push(Ode {
                    var,
                    rhs,
                    hold: None,
                });
            }
            if let Some(output) = &synapse.output {
                check_reads(output, "output");
                let mut builder = Builder::default();
                let value = lower_expr(output, &env, &mut builder);
                let sum = match sums.remove(&binding.input) {
                    Some(acc) => Expr::add(acc, value),
                    None => value,
                };
                sums.insert(binding.input.clone(), sum);
            }
        }
        for decl in &model.vars {
            if decl.kind == VarKind::Input {
                let value = sums.remove(&decl.name.name).unwrap_or(Expr::c(0.0));
                values.insert(decl.name.name.clone(), value);
            }
        }
        odes
    }

    /// Reports what a kernel synapse may not contain; `false` if it has any of it.
    fn kernel_shape_ok(&mut self, synapse: &ModelInfo, projection: &ast::Projection) -> bool {
        let errors_before = self.error_count();
        let used_here = projection.synapse.span;
        let note = "a kernel synapse has `post state`s with ODEs, parameters, `post param` reads of its target neuron, and an `on pre` that increments one `post state`";
        for decl in &synapse.vars {
            let problem = match (decl.placement, decl.kind) {
                (Placement::Post, _) | (Placement::Each | Placement::Shared, VarKind::Param) => {
                    None
                }
                (Placement::Pre, _) => Some("a presynaptic (`pre`) variable"),
                (_, _) => Some("a per-synapse or shared `state`"),
            };
            if let Some(what) = problem {
                self.push(
                    Diagnostic::error(format!(
                        "the kernel synapse `{}` has {what}",
                        synapse.name()
                    ))
                    .primary(decl.span, "not allowed in a kernel synapse")
                    .secondary(used_here, "used here")
                    .note(note),
                );
            }
        }
        // Lowering substitutes the synapse's own names only; a `let` would read as NaN.
        for (name, _) in &synapse.lets {
            self.push(
                Diagnostic::error(format!(
                    "the kernel synapse `{}` has the `let` `{}`, which kernel synapses do not support yet",
                    synapse.name(),
                    name.name
                ))
                .primary(name.span, "not supported in a kernel synapse yet")
                .secondary(used_here, "used here")
                .help("write the expression where it is used"),
            );
        }
        let mut incremented: Option<&ast::Ident> = None;
        for member in &synapse.ast.members {
            let Member::On { event, body, span } = member else {
                continue;
            };
            if event.name != "pre" {
                self.push(
                    Diagnostic::error(format!(
                        "the kernel synapse `{}` has an `on {}` handler",
                        synapse.name(),
                        event.name
                    ))
                    .primary(*span, "not allowed in a kernel synapse")
                    .secondary(used_here, "used here")
                    .note(note),
                );
                continue;
            }
            for stmt in &body.stmts {
                match stmt {
                    ast::Stmt::Assign {
                        target,
                        op: ast::AssignOp::Add | ast::AssignOp::Sub,
                        value,
                        ..
                    } if synapse.var(&target.name).is_some_and(|d| {
                        d.kind == VarKind::State && d.placement == Placement::Post
                    }) =>
                    {
                        if let Some(first) = incremented.filter(|f| f.name != target.name) {
                            self.push(
                                Diagnostic::error(format!(
                                    "the `on pre` of the kernel synapse `{}` increments two states",
                                    synapse.name()
                                ))
                                .primary(target.span, "second state")
                                .secondary(first.span, "first state")
                                .note("a presynaptic spike increments one `post state`; write the kernel so that one state takes the jump (as `stdlib.synapses.current` does for alpha and dual-exponential kernels)"),
                            );
                        }
                        incremented.get_or_insert(target);
                        for (name, span) in names_read(value) {
                            let per_synapse = synapse.var(&name).is_some_and(|d| {
                                d.kind == VarKind::Param && d.placement != Placement::Post
                            });
                            if !per_synapse && synapse.symbols.contains_key(&name) {
                                self.push(
                                    Diagnostic::error(format!(
                                        "the increment of `{}` reads `{name}`",
                                        target.name
                                    ))
                                    .primary(span, "not a parameter of the synapse")
                                    .note("the increment is computed once per synapse when the network is built, from the synapse's parameters"),
                                );
                            }
                        }
                    }
                    ast::Stmt::Assign { span, .. } | ast::Stmt::If { span, .. } => self.push(
                        Diagnostic::error(format!(
                            "the `on pre` of the kernel synapse `{}` may only increment a `post state`",
                            synapse.name()
                        ))
                        .primary(*span, "not an increment of a `post state`")
                        .secondary(used_here, "used here")
                        .note(note),
                    ),
                    ast::Stmt::Error(_) => {}
                }
            }
        }
        if incremented.is_none() {
            self.push(
                Diagnostic::error(format!(
                    "the kernel synapse `{}` has no `on pre` that increments a `post state`",
                    synapse.name()
                ))
                .primary(
                    synapse.ast.name.span,
                    "presynaptic spikes would have no effect",
                )
                .secondary(used_here, "used here")
                .help("add, for example, `on pre { g += w }`"),
            );
        }
        self.error_count() == errors_before
    }
}
