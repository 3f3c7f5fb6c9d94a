//! Population-level variables in network expressions: the reductions `mean(P, x)`,
//! `sum(P, x)`, `rate(P)` and `count(P)`, as the front end and lowering see them.
//!
//! This module owns recognising a reduction call in the syntax tree, checking its shape and
//! names (resolve), its dimension (check), and the rewriting that lowering uses: each reduction
//! call becomes a name of its own (its [`key`], such as `mean(E, V_m)`, which no user name can
//! be), which the lowering environment maps to the array a kernel reads. It does not compute
//! anything: `snnc_runtime::reductions` does, once per step, and owns the timing.
//!
//! Where reductions may appear: in `input P.x = ...` / `input P.x += ...` expressions (the
//! neuron kernels read them) and in the values a projection gives its synapse parameters (the
//! handlers of a plastic synapse read them). Anywhere else (initial values, sizes, delays,
//! `where` conditions) they are refused: those are evaluated once, not every step.

use crate::ast::{self, ExprKind};
use crate::check::dims::Dim;
use crate::diagnostics::Diagnostic;
use crate::resolve::PopulationInfo;
use crate::source::Span;
use snnc_runtime::reductions::ReductionKind;
use std::collections::BTreeMap;

/// The reduction functions and what they take.
pub const REDUCTIONS: &[(&str, ReductionKind, bool)] = &[
    ("mean", ReductionKind::Mean, true),
    ("sum", ReductionKind::Sum, true),
    ("rate", ReductionKind::Rate, false),
    ("count", ReductionKind::Count, false),
];

/// A reduction call as written: `mean(E, V_m)`.
#[derive(Clone, Debug)]
pub struct ReductionCall<'a> {
    pub function: &'static str,
    pub kind: ReductionKind,
    pub population: &'a ast::Ident,
    pub variable: Option<&'a ast::Ident>,
    pub span: Span,
}

/// Whether `name` is a reduction function.
pub fn is_reduction(name: &str) -> bool {
    REDUCTIONS.iter().any(|(n, _, _)| *n == name)
}

/// The reduction an expression is, if it is a call of a reduction function; `Err` with a
/// diagnostic when the call has the wrong shape.
pub fn as_reduction(expr: &ast::Expr) -> Option<Result<ReductionCall<'_>, Diagnostic>> {
    let ExprKind::Call { function, args } = &expr.kind else {
        return None;
    };
    let &(name, kind, with_variable) = REDUCTIONS.iter().find(|(n, _, _)| *n == function.name)?;
    let usage = if with_variable {
        format!("`{name}(P, x)`: a population `P` and one of its variables `x`")
    } else {
        format!("`{name}(P)`: a population or spike source `P`")
    };
    let names: Vec<Option<&ast::Ident>> = args
        .iter()
        .map(|a| match (&a.name, &a.value.kind) {
            (None, ExprKind::Name(n)) => Some(n),
            _ => None,
        })
        .collect();
    let expected = if with_variable { 2 } else { 1 };
    if names.len() != expected || names.iter().any(Option::is_none) {
        return Some(Err(Diagnostic::error(format!(
            "`{name}` takes {} name{}",
            expected,
            if expected == 1 { "" } else { "s" }
        ))
        .primary(expr.span, "not a reduction of the form the language has")
        .note(format!("write {usage}"))));
    }
    Some(Ok(ReductionCall {
        function: name,
        kind,
        population: names[0].expect("checked"),
        variable: names.get(1).map(|n| n.expect("checked")),
        span: expr.span,
    }))
}

/// The name lowering gives a reduction: what the user wrote, normalised.
pub fn key(call: &ReductionCall<'_>) -> String {
    match call.variable {
        Some(v) => format!("{}({}, {})", call.function, call.population.name, v.name),
        None => format!("{}({})", call.function, call.population.name),
    }
}

/// Every reduction call in an expression (well-formed or not), outermost first.
pub fn calls(expr: &ast::Expr) -> Vec<&ast::Expr> {
    let mut out = Vec::new();
    fn walk<'a>(e: &'a ast::Expr, out: &mut Vec<&'a ast::Expr>) {
        match &e.kind {
            ExprKind::Call { function, args } => {
                if is_reduction(&function.name) {
                    out.push(e);
                    return;
                }
                for a in args {
                    walk(&a.value, out);
                }
            }
            ExprKind::Unary(_, a) => walk(a, out),
            ExprKind::Binary(_, a, b) => {
                walk(a, out);
                walk(b, out);
            }
            _ => {}
        }
    }
    walk(expr, &mut out);
    out
}

/// Whether an expression contains a reduction.
pub fn contains(expr: &ast::Expr) -> bool {
    !calls(expr).is_empty()
}

/// The expression with each well-formed reduction call replaced by a name, its [`key`].
pub fn replace_calls(expr: &ast::Expr) -> ast::Expr {
    rewrite_calls(expr, &|call| match as_reduction(call) {
        Some(Ok(reduction)) => Some(ExprKind::Name(ast::Ident {
            name: key(&reduction),
            span: call.span,
        })),
        _ => None,
    })
}

/// The expression with every subexpression for which `rewrite` gives a replacement replaced
/// (outermost first; a replaced subexpression is not looked into).
fn rewrite_calls(expr: &ast::Expr, rewrite: &dyn Fn(&ast::Expr) -> Option<ExprKind>) -> ast::Expr {
    if let Some(kind) = rewrite(expr) {
        return ast::Expr::new(kind, expr.span);
    }
    let kind = match &expr.kind {
        ExprKind::Unary(op, a) => ExprKind::Unary(*op, Box::new(rewrite_calls(a, rewrite))),
        ExprKind::Binary(op, a, b) => ExprKind::Binary(
            *op,
            Box::new(rewrite_calls(a, rewrite)),
            Box::new(rewrite_calls(b, rewrite)),
        ),
        ExprKind::Call { function, args } => ExprKind::Call {
            function: function.clone(),
            args: args
                .iter()
                .map(|a| ast::Arg {
                    name: a.name.clone(),
                    value: rewrite_calls(&a.value, rewrite),
                })
                .collect(),
        },
        other => other.clone(),
    };
    ast::Expr::new(kind, expr.span)
}

/// Resolve: checks every reduction in `expr` against the network's populations, or refuses
/// them all where the expression is evaluated only once (`allowed = None`; the string says
/// what the expression is).
pub fn resolve_in(
    expr: &ast::Expr,
    pops: &BTreeMap<&str, PopulationInfo<'_>>,
    allowed: Result<(), &str>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    for call in calls(expr) {
        if let Err(what) = allowed {
            diagnostics.push(
                Diagnostic::error(format!("a population-level value cannot be used in {what}"))
                    .primary(call.span, "computed anew every step")
                    .note("reductions (`mean`, `sum`, `rate`, `count`) may be read by `input` expressions and by the parameters a projection gives its synapses"),
            );
            continue;
        }
        let call = match as_reduction(call) {
            Some(Ok(call)) => call,
            Some(Err(d)) => {
                diagnostics.push(d);
                continue;
            }
            None => continue,
        };
        let Some(info) = pops.get(call.population.name.as_str()) else {
            let mut d = Diagnostic::error(format!(
                "`{}` reduces `{}`, which is not a population of this network",
                call.function, call.population.name
            ))
            .primary(call.population.span, "unknown population");
            if let Some(best) =
                crate::diagnostics::did_you_mean(&call.population.name, pops.keys().copied())
            {
                d = d.help(format!("did you mean `{best}`?"));
            }
            diagnostics.push(d);
            continue;
        };
        let Some(variable) = call.variable else {
            continue;
        };
        match info.model {
            // A population of an unknown model: reported where it is declared.
            None if !info.is_source => {}
            None => diagnostics.push(
                Diagnostic::error(format!(
                    "`{}` is a spike source: it has no variable `{}` to reduce",
                    call.population.name, variable.name
                ))
                .primary(call.span, "only `rate` and `count` apply to spike sources"),
            ),
            Some(model) if model.var(&variable.name).is_none() => {
                let mut d = Diagnostic::error(format!(
                    "`{}` has no parameter or state `{}`",
                    call.population.name, variable.name
                ))
                .primary(
                    variable.span,
                    format!("not a variable of `{}`", model.name()),
                );
                if let Some(best) = crate::diagnostics::did_you_mean(
                    &variable.name,
                    model.vars.iter().map(|v| v.name.name.as_str()),
                ) {
                    d = d.help(format!("did you mean `{best}`?"));
                }
                diagnostics.push(d);
            }
            Some(_) => {}
        }
    }
}

/// Check: the dimension of a reduction call (`None` when its names are wrong, which resolve
/// reported): `mean`/`sum` that of the variable, `rate` a frequency, `count` a number.
pub fn dim_of(
    expr: &ast::Expr,
    pops: &BTreeMap<&str, PopulationInfo<'_>>,
    declared: &dyn Fn(&crate::resolve::ModelInfo, &str) -> Option<Dim>,
) -> Option<Dim> {
    let call = as_reduction(expr)?.ok()?;
    match call.kind {
        ReductionKind::Count => Some(Dim::ONE),
        ReductionKind::Rate => Some(Dim::si(crate::units::Dimension::frequency())),
        ReductionKind::Sum | ReductionKind::Mean => {
            let model = pops.get(call.population.name.as_str())?.model?;
            declared(model, &call.variable?.name)
        }
    }
}

/// The expression with every call of a reduction function (well-formed or not) replaced by
/// the number 0, for the checks that do not look inside reductions (their arguments are names
/// of another scope, the network's populations and their variables).
pub fn strip_calls(expr: &ast::Expr) -> ast::Expr {
    rewrite_calls(expr, &|e| match &e.kind {
        ExprKind::Call { function, .. } if is_reduction(&function.name) => {
            Some(ExprKind::Number(0.0))
        }
        _ => None,
    })
}

/// A reduction as lowering describes it to instantiation: by names, resolved to indices at
/// the end of lowering.
#[derive(Clone, Debug, PartialEq)]
pub struct ReductionIr {
    /// [`key`]: the name the kernels know it by.
    pub key: String,
    pub kind: ReductionKind,
    pub population: String,
    pub variable: Option<String>,
    pub span: Span,
}

impl ReductionIr {
    pub fn of(call: &ReductionCall<'_>) -> Self {
        ReductionIr {
            key: key(call),
            kind: call.kind,
            population: call.population.name.clone(),
            variable: call.variable.map(|v| v.name.clone()),
            span: call.span,
        }
    }
}

/// The well-formed reductions of an expression, each once.
pub fn distinct(expr: &ast::Expr) -> Vec<ReductionIr> {
    let mut out: Vec<ReductionIr> = Vec::new();
    for call in calls(expr) {
        if let Some(Ok(call)) = as_reduction(call) {
            let r = ReductionIr::of(&call);
            if !out.iter().any(|o| o.key == r.key) {
                out.push(r);
            }
        }
    }
    out
}
