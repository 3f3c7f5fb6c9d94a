//! Type and unit checking of resolved models and networks.
//!
//! Every expression gets a [`Ty`]: a physical dimension, a boolean, or an already-reported
//! error. The checker verifies that ODE right-hand sides have the dimension of their state per
//! time, that assignments, comparisons, initialisers, weights, delays, rates, inputs and
//! connectivity arguments agree in dimension, that conditions are booleans, and that
//! transcendental functions get dimensionless arguments. It reads only what `resolve`
//! produced and reports with both spans and both dimensions; it computes no values beyond
//! literal integers needed for exponents, and lowers nothing.

pub mod dims;
pub mod dump;

use crate::ast::{self, BinOp, ExprKind, Member, NetItem, UnOp, VarKind};
use crate::diagnostics::Diagnostic;
use crate::resolve::{self, ModelInfo, NetContext, Resolved, Symbol, RANDOM_FUNCTIONS};
use crate::units::{self, Dimension};
use dims::{unit_dim, Dim, Ty};
use std::cell::RefCell;
use std::collections::HashMap;

/// Checks every model and every network of a resolved program.
pub fn check(resolved: &Resolved) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    for model in &resolved.models {
        ModelChecker::new(model, &mut diagnostics).check_model(&mut diagnostics);
    }
    for network in &resolved.networks {
        check_network(resolved, network, &mut diagnostics);
    }
    diagnostics
}

/// Where an expression sits, which decides what names mean and whether randomness is allowed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    Model,
    /// The right-hand side of an ODE: deterministic only.
    Ode,
    Network(NetContext),
}

/// Names visible in an expression and their types.
trait Scope {
    fn lookup(&self, name: &str) -> Option<Ty>;

    /// The type of a reduction call (`mean(P, x)`, ...), where the scope allows them; `None`
    /// elsewhere (resolve reported it).
    fn reduction(&self, _call: &ast::Expr) -> Option<Ty> {
        None
    }
}

/// The target port of a synapse model and its dimension (generic when declared without a
/// unit). Errors in the port's unit were reported when the model itself was checked.
fn model_port(model: &ModelInfo) -> Option<(&str, Dim)> {
    model.target.as_ref().map(|(name, unit)| {
        let mut ignored = Vec::new();
        let dim = unit
            .as_ref()
            .and_then(|u| unit_dim(u, None, &mut ignored))
            .unwrap_or(Dim::port());
        (name.name.as_str(), dim)
    })
}

/// The declared dimension of one variable of a model; `None` if it has none or it is unknown.
fn declared_dim(model: &ModelInfo, name: &str) -> Option<Dim> {
    let mut ignored = Vec::new();
    unit_dim(&model.var(name)?.unit, model_port(model), &mut ignored)
}

/// The dimension of a model's `let`, for lowering to record it in the user's unit.
pub fn let_dim(model: &ModelInfo, name: &str) -> Option<Dim> {
    let mut ignored = Vec::new();
    let checker = ModelChecker::new(model, &mut ignored);
    match checker.lookup(name)? {
        Ty::Quantity(dim) => Some(dim),
        _ => None,
    }
}

struct ModelChecker<'a> {
    model: &'a ModelInfo,
    var_dims: HashMap<&'a str, Option<Dim>>,
    port: Option<(&'a str, Dim)>,
    let_types: RefCell<HashMap<String, Ty>>,
}

impl<'a> ModelChecker<'a> {
    fn new(model: &'a ModelInfo, diagnostics: &mut Vec<Diagnostic>) -> Self {
        let port = model.target.as_ref().map(|(name, unit)| {
            let dim = match unit {
                Some(unit) => unit_dim(unit, None, diagnostics).unwrap_or(Dim::port()),
                None => Dim::port(),
            };
            (name.name.as_str(), dim)
        });
        let var_dims = model
            .vars
            .iter()
            .map(|v| (v.name.name.as_str(), unit_dim(&v.unit, port, diagnostics)))
            .collect();
        ModelChecker {
            model,
            var_dims,
            port,
            let_types: RefCell::new(HashMap::new()),
        }
    }

    fn var_dim(&self, name: &str) -> Option<Dim> {
        self.var_dims.get(name).copied().flatten()
    }

    fn check_model(&self, diagnostics: &mut Vec<Diagnostic>) {
        for member in &self.model.ast.members {
            match member {
                Member::Var(var) => {
                    if let (Some(default), Some(dim)) = (&var.default, self.var_dim(&var.name.name))
                    {
                        let found = infer(self, default, Place::Model, diagnostics);
                        let what = match var.kind {
                            VarKind::Param => "default value",
                            VarKind::State => "initial value",
                            VarKind::Input => "value",
                        };
                        expect_dim(
                            found,
                            dim,
                            default,
                            diagnostics,
                            || format!("the {what} of `{}` has the wrong unit", var.name.name),
                            Some((
                                var.unit.span,
                                format!("`{}` is declared {}", var.name.name, dim.in_words()),
                            )),
                        );
                    }
                }
                Member::Let { value, .. } => {
                    infer(self, value, Place::Model, diagnostics);
                }
                Member::Ode(ode) => {
                    let Some(dim) = self.var_dim(&ode.var.name) else {
                        infer(self, &ode.rhs, Place::Ode, diagnostics);
                        continue;
                    };
                    let expected = dim.per(Dim::time());
                    let found = infer(self, &ode.rhs, Place::Ode, diagnostics);
                    if let Ty::Quantity(found_dim) = found {
                        if found_dim != expected && !is_zero(&ode.rhs) {
                            let mut d = Diagnostic::error(format!(
                                "the right-hand side of `d{}/dt` must be in {expected}, found {found_dim}",
                                ode.var.name
                            ))
                            .primary(ode.rhs.span, format!("this is {}", found_dim.in_words()))
                            .secondary(ode.var.span, format!("`{}` is {}, so its derivative is {}", ode.var.name, dim.in_words(), expected.in_words()));
                            if found_dim == dim {
                                d = d.help(
                                    "divide by a time constant, as in `(v_rest - v) / tau_m`",
                                );
                            } else if found_dim == expected.per(Dim::time()) {
                                d = d.help(
                                    "this divides by a time once too often; check the time constants",
                                );
                            } else if found_dim == expected.times(Dim::time()).times(Dim::time()) {
                                d = d.help("this is off by a factor of time squared; check the time constants");
                            }
                            diagnostics.push(d);
                        }
                    } else if found != Ty::Error {
                        diagnostics.push(
                            Diagnostic::error(format!(
                                "the right-hand side of `d{}/dt` must be a quantity",
                                ode.var.name
                            ))
                            .primary(ode.rhs.span, format!("this is {}", found.describe())),
                        );
                    }
                }
                Member::Spike { condition, .. } => {
                    expect_bool(
                        infer(self, condition, Place::Model, diagnostics),
                        condition,
                        "a spike condition",
                        diagnostics,
                    );
                }
                Member::Refractory { period, .. } => {
                    let found = infer(self, period, Place::Model, diagnostics);
                    expect_dim(
                        found,
                        Dim::time(),
                        period,
                        diagnostics,
                        || "the refractory period must be a time".to_string(),
                        None,
                    );
                }
                Member::Reset { body, .. } | Member::On { body, .. } => {
                    self.check_block(body, diagnostics)
                }
                Member::Target {
                    name,
                    value: Some(value),
                    ..
                } => {
                    // The output of a kernel synapse: deterministic, in the port's unit.
                    let found = infer(self, value, Place::Ode, diagnostics);
                    if let Some((_, dim)) = self.port.filter(|(_, d)| d.port == 0) {
                        expect_dim(
                            found,
                            dim,
                            value,
                            diagnostics,
                            || format!("the output `{}` has the wrong unit", name.name),
                            Some((
                                name.span,
                                format!("`{}` is declared {}", name.name, dim.in_words()),
                            )),
                        );
                    }
                }
                Member::Method { .. } | Member::Target { .. } | Member::Error(_) => {}
            }
        }
    }

    fn check_block(&self, block: &ast::Block, diagnostics: &mut Vec<Diagnostic>) {
        for stmt in &block.stmts {
            match stmt {
                ast::Stmt::Assign {
                    target, op, value, ..
                } => {
                    let found = infer(self, value, Place::Model, diagnostics);
                    let target_dim = match self.model.symbols.get(&target.name).map(|s| &s.symbol) {
                        Some(Symbol::Var { .. }) => self.var_dim(&target.name),
                        Some(Symbol::Target) => self.port.map(|(_, d)| d),
                        _ => None,
                    };
                    let Some(target_dim) = target_dim else {
                        continue;
                    };
                    let expected = match op {
                        ast::AssignOp::Mul | ast::AssignOp::Div => Dim::ONE,
                        _ => target_dim,
                    };
                    expect_dim(
                        found,
                        expected,
                        value,
                        diagnostics,
                        || match op {
                            ast::AssignOp::Mul | ast::AssignOp::Div => format!(
                                "`{}` scales `{}` by a quantity with a unit",
                                op.text(),
                                target.name
                            ),
                            _ => format!(
                                "`{} {}` needs a value in {target_dim}",
                                target.name,
                                op.text()
                            ),
                        },
                        Some((
                            target.span,
                            format!("`{}` is {}", target.name, target_dim.in_words()),
                        )),
                    );
                }
                ast::Stmt::If {
                    condition,
                    then_block,
                    else_block,
                    ..
                } => {
                    expect_bool(
                        infer(self, condition, Place::Model, diagnostics),
                        condition,
                        "an `if` condition",
                        diagnostics,
                    );
                    self.check_block(then_block, diagnostics);
                    if let Some(else_block) = else_block {
                        self.check_block(else_block, diagnostics);
                    }
                }
                ast::Stmt::Error(_) => {}
            }
        }
    }
}

impl Scope for ModelChecker<'_> {
    fn lookup(&self, name: &str) -> Option<Ty> {
        match self.model.symbols.get(name).map(|s| &s.symbol) {
            Some(Symbol::Var { .. }) => Some(self.var_dim(name).map_or(Ty::Error, Ty::Quantity)),
            Some(Symbol::Target) => Some(self.port.map_or(Ty::Error, |(_, d)| Ty::Quantity(d))),
            Some(Symbol::Let) => {
                if let Some(ty) = self.let_types.borrow().get(name) {
                    return Some(*ty);
                }
                // Mark first, so a cycle (already reported by resolve) ends here.
                self.let_types
                    .borrow_mut()
                    .insert(name.to_string(), Ty::Error);
                let value = self.model.let_value(name)?;
                let mut ignored = Vec::new();
                let ty = infer(self, value, Place::Model, &mut ignored);
                self.let_types.borrow_mut().insert(name.to_string(), ty);
                Some(ty)
            }
            None => builtin_or_unit(name, &["t", "dt", "pi"]),
        }
    }
}

fn builtin_or_unit(name: &str, builtins: &[&str]) -> Option<Ty> {
    if builtins.contains(&name) {
        return Some(match name {
            "t" | "dt" => Ty::Quantity(Dim::time()),
            _ => Ty::one(),
        });
    }
    units::lookup(name).map(|u| Ty::Quantity(Dim::si(u.dimension)))
}

/// A literal zero fits any dimension: `0` volts and `0` seconds are the same number.
fn is_zero(expr: &ast::Expr) -> bool {
    match &expr.kind {
        ExprKind::Number(v) => *v == 0.0,
        ExprKind::Unary(UnOp::Neg, inner) => is_zero(inner),
        _ => false,
    }
}

fn is_bare_number(expr: &ast::Expr) -> bool {
    match &expr.kind {
        ExprKind::Number(_) => true,
        ExprKind::Unary(UnOp::Neg, inner) => is_bare_number(inner),
        _ => false,
    }
}

fn literal_int(expr: &ast::Expr) -> Option<i32> {
    match &expr.kind {
        ExprKind::Number(v) if v.fract() == 0.0 && v.abs() < 64.0 => Some(*v as i32),
        ExprKind::Unary(UnOp::Neg, inner) => literal_int(inner).map(|v| -v),
        _ => None,
    }
}

fn expect_dim(
    found: Ty,
    expected: Dim,
    expr: &ast::Expr,
    diagnostics: &mut Vec<Diagnostic>,
    message: impl FnOnce() -> String,
    declared: Option<(crate::source::Span, String)>,
) {
    match found {
        Ty::Quantity(dim) if dim == expected || is_zero(expr) => {}
        Ty::Error => {}
        other => {
            let found_text = match other {
                Ty::Quantity(dim) => format!("found {dim}"),
                other => format!("found {}", other.describe()),
            };
            let mut d = Diagnostic::error(message())
                .primary(expr.span, format!("expected {expected}, {found_text}"));
            if let Some((span, label)) = declared {
                d = d.secondary(span, label);
            }
            if is_bare_number(expr) && !expected.is_dimensionless() && expected.port == 0 {
                let (unit, _) = units::display_unit(expected.si);
                d = d.help(format!(
                    "numbers without a unit are dimensionless; write `{} {unit}`",
                    units::format_number(literal_value(expr))
                ));
            }
            diagnostics.push(d);
        }
    }
}

/// The number of a literal quantity such as `0.1 ms` or `-0.1 ms`, in the unit written.
fn literal_quantity(expr: &ast::Expr) -> Option<f64> {
    match &expr.kind {
        ExprKind::Quantity(v, _) => Some(*v),
        ExprKind::Unary(UnOp::Neg, inner) => literal_quantity(inner).map(|v| -v),
        _ => None,
    }
}

fn literal_value(expr: &ast::Expr) -> f64 {
    match &expr.kind {
        ExprKind::Number(v) => *v,
        ExprKind::Unary(UnOp::Neg, inner) => -literal_value(inner),
        _ => 0.0,
    }
}

fn expect_bool(found: Ty, expr: &ast::Expr, what: &str, diagnostics: &mut Vec<Diagnostic>) {
    if matches!(found, Ty::Bool | Ty::Error) {
        return;
    }
    diagnostics.push(
        Diagnostic::error(format!("{what} must be a boolean"))
            .primary(expr.span, format!("this is {}", found.describe()))
            .help("compare with `>`, `<`, `==`..., and combine with `and`, `or`, `not`"),
    );
}

/// Infers the type of an expression, reporting every mismatch inside it.
fn infer(
    scope: &dyn Scope,
    expr: &ast::Expr,
    place: Place,
    diagnostics: &mut Vec<Diagnostic>,
) -> Ty {
    match &expr.kind {
        ExprKind::Number(_) => Ty::one(),
        ExprKind::Quantity(_, unit) => {
            unit_dim(unit, None, diagnostics).map_or(Ty::Error, Ty::Quantity)
        }
        ExprKind::Bool(_) => Ty::Bool,
        ExprKind::Str(_) => {
            diagnostics.push(Diagnostic::error("a string is not a value").primary(
                expr.span,
                "strings only name files, as in `from \"file.npy\"`",
            ));
            Ty::Error
        }
        ExprKind::Name(ident) => scope.lookup(&ident.name).unwrap_or(Ty::Error),
        ExprKind::Unary(UnOp::Neg, a) => match infer(scope, a, place, diagnostics) {
            Ty::Quantity(d) => Ty::Quantity(d),
            Ty::Error => Ty::Error,
            other => {
                diagnostics.push(
                    Diagnostic::error("cannot negate a boolean")
                        .primary(a.span, format!("this is {}", other.describe()))
                        .help("use `not`"),
                );
                Ty::Error
            }
        },
        ExprKind::Unary(UnOp::Not, a) => {
            let ty = infer(scope, a, place, diagnostics);
            expect_bool(ty, a, "the operand of `not`", diagnostics);
            Ty::Bool
        }
        ExprKind::Binary(op, a, b) => infer_binary(scope, *op, a, b, place, diagnostics),
        ExprKind::Call { function, .. } if crate::reductions::is_reduction(&function.name) => {
            scope.reduction(expr).unwrap_or(Ty::Error)
        }
        ExprKind::Call { function, args } => {
            infer_call(scope, function, args, expr, place, diagnostics)
        }
        ExprKind::Error => Ty::Error,
    }
}

fn infer_binary(
    scope: &dyn Scope,
    op: BinOp,
    a: &ast::Expr,
    b: &ast::Expr,
    place: Place,
    diagnostics: &mut Vec<Diagnostic>,
) -> Ty {
    let ta = infer(scope, a, place, diagnostics);
    let tb = infer(scope, b, place, diagnostics);
    match op {
        BinOp::And | BinOp::Or => {
            expect_bool(
                ta,
                a,
                &format!("the left operand of `{}`", op.text()),
                diagnostics,
            );
            expect_bool(
                tb,
                b,
                &format!("the right operand of `{}`", op.text()),
                diagnostics,
            );
            Ty::Bool
        }
        BinOp::Add
        | BinOp::Sub
        | BinOp::Rem
        | BinOp::Eq
        | BinOp::Ne
        | BinOp::Lt
        | BinOp::Le
        | BinOp::Gt
        | BinOp::Ge => {
            let result = match (ta, tb) {
                (Ty::Error, _) | (_, Ty::Error) => {
                    return if op.is_comparison() {
                        Ty::Bool
                    } else {
                        Ty::Error
                    }
                }
                (Ty::Quantity(da), Ty::Quantity(db)) => {
                    if da == db || is_zero(a) || is_zero(b) {
                        Ty::Quantity(if is_zero(a) { db } else { da })
                    } else {
                        diagnostics.push(mismatch(op, a, da, b, db));
                        Ty::Error
                    }
                }
                (Ty::Bool, Ty::Bool) if matches!(op, BinOp::Eq | BinOp::Ne) => Ty::Bool,
                (x, y) => {
                    diagnostics.push(not_quantities(op, (a, x), (b, y)));
                    Ty::Error
                }
            };
            if op.is_comparison() {
                Ty::Bool
            } else {
                result
            }
        }
        BinOp::Mul | BinOp::Div => match (ta, tb) {
            (Ty::Quantity(da), Ty::Quantity(db)) => Ty::Quantity(if op == BinOp::Mul {
                da.times(db)
            } else {
                da.per(db)
            }),
            (Ty::Error, _) | (_, Ty::Error) => Ty::Error,
            (x, y) => {
                diagnostics.push(not_quantities(op, (a, x), (b, y)));
                Ty::Error
            }
        },
        BinOp::Pow => {
            let Ty::Quantity(base) = ta else {
                if ta != Ty::Error {
                    diagnostics.push(
                        Diagnostic::error("`^` needs a number")
                            .primary(a.span, format!("this is {}", ta.describe())),
                    );
                }
                return Ty::Error;
            };
            match tb {
                Ty::Quantity(e) if e.is_dimensionless() => {}
                Ty::Error => return Ty::Error,
                other => {
                    diagnostics.push(
                        Diagnostic::error("an exponent must be dimensionless")
                            .primary(b.span, format!("this is {}", other.describe())),
                    );
                    return Ty::Error;
                }
            }
            if base.is_dimensionless() {
                return Ty::one();
            }
            match literal_int(b) {
                Some(n) => base.powi(n).map_or(Ty::Error, Ty::Quantity),
                None => {
                    diagnostics.push(
                        Diagnostic::error(format!("a quantity in {base} can only be raised to a whole-number literal power"))
                            .primary(b.span, "the unit of the result would depend on this value")
                            .secondary(a.span, format!("this is {}", base.in_words()))
                            .help("divide by a reference value first to make the base dimensionless"),
                    );
                    Ty::Error
                }
            }
        }
    }
}

/// An arithmetic or comparison operator applied to something that is not a quantity; the
/// label goes on the operand at fault (the left one when both are).
fn not_quantities(op: BinOp, a: (&ast::Expr, Ty), b: (&ast::Expr, Ty)) -> Diagnostic {
    let (expr, ty) = if matches!(a.1, Ty::Quantity(_)) { b } else { a };
    Diagnostic::error(format!("`{}` needs two quantities", op.text()))
        .primary(expr.span, format!("this is {}", ty.describe()))
}

fn mismatch(op: BinOp, a: &ast::Expr, da: Dim, b: &ast::Expr, db: Dim) -> Diagnostic {
    let verb = match op {
        BinOp::Add => "cannot add".to_string(),
        BinOp::Sub => "cannot subtract".to_string(),
        BinOp::Rem => "cannot take the remainder of".to_string(),
        _ => "cannot compare".to_string(),
    };
    let joiner = match op {
        BinOp::Add => "and",
        BinOp::Sub => "and",
        BinOp::Rem => "by",
        _ => "with",
    };
    let mut d = Diagnostic::error(format!("{verb} {da} {joiner} {db}"))
        .primary(b.span, format!("this is {}", db.in_words()))
        .secondary(a.span, format!("this is {}", da.in_words()));
    let (bare, other) = if is_bare_number(b) {
        (Some(b), da)
    } else if is_bare_number(a) {
        (Some(a), db)
    } else {
        (None, da)
    };
    if let Some(bare) = bare {
        if other.port == 0 {
            let (unit, _) = units::display_unit(other.si);
            d = d.help(format!(
                "numbers without a unit are dimensionless; write `{} {unit}`",
                units::format_number(literal_value(bare))
            ));
        }
    }
    d
}

/// How a built-in function treats dimensions.
fn infer_call(
    scope: &dyn Scope,
    function: &ast::Ident,
    args: &[ast::Arg],
    whole: &ast::Expr,
    place: Place,
    diagnostics: &mut Vec<Diagnostic>,
) -> Ty {
    let name = function.name.as_str();
    for arg in args {
        if let Some(arg_name) = &arg.name {
            diagnostics.push(
                Diagnostic::error(format!("`{name}` takes positional arguments"))
                    .primary(arg_name.span, "named argument")
                    .help(format!("write the value alone, as in `{name}(...)`")),
            );
        }
    }
    let types: Vec<Ty> = args
        .iter()
        .map(|a| infer(scope, &a.value, place, diagnostics))
        .collect();
    if RANDOM_FUNCTIONS.contains(&name) && place == Place::Ode {
        diagnostics.push(
            Diagnostic::error(format!("`{name}` draws a random number inside an ODE"))
                .primary(whole.span, "ODEs must be deterministic")
                .note("a random draw per integration step would make the result depend on dt")
                .help("add noise in a handler, or drive the neuron with a Poisson input"),
        );
    }
    let arity = |n: usize, diagnostics: &mut Vec<Diagnostic>| -> bool {
        if args.len() == n {
            return true;
        }
        diagnostics.push(
            Diagnostic::error(format!(
                "`{name}` takes {n} argument{}, found {}",
                if n == 1 { "" } else { "s" },
                args.len()
            ))
            .primary(whole.span, "wrong number of arguments"),
        );
        false
    };
    let quantity = |i: usize, diagnostics: &mut Vec<Diagnostic>| -> Option<Dim> {
        match types[i] {
            Ty::Quantity(d) => Some(d),
            Ty::Error => None,
            other => {
                diagnostics.push(
                    Diagnostic::error(format!("`{name}` needs a number"))
                        .primary(args[i].value.span, format!("this is {}", other.describe())),
                );
                None
            }
        }
    };
    let dimensionless = |i: usize, diagnostics: &mut Vec<Diagnostic>| -> bool {
        match quantity(i, diagnostics) {
            Some(d) if d.is_dimensionless() => true,
            Some(d) => {
                diagnostics.push(
                    Diagnostic::error(format!(
                        "`{name}` needs a dimensionless argument, found {d}"
                    ))
                    .primary(args[i].value.span, format!("this is {}", d.in_words()))
                    .help("divide by a reference value, as in `exp((v - v_th) / delta_T)`"),
                );
                false
            }
            None => false,
        }
    };
    // All arguments must share one dimension, which is the result's.
    let same = |diagnostics: &mut Vec<Diagnostic>| -> Ty {
        let mut first: Option<(Dim, usize)> = None;
        for i in 0..args.len() {
            let Some(d) = quantity(i, diagnostics) else {
                return Ty::Error;
            };
            match first {
                None => first = Some((d, i)),
                Some((f, _)) if f == d || is_zero(&args[i].value) => {}
                Some((_, j)) if is_zero(&args[j].value) => first = Some((d, i)),
                Some((f, j)) => {
                    diagnostics.push(
                        Diagnostic::error(format!(
                            "the arguments of `{name}` must have the same unit"
                        ))
                        .primary(args[i].value.span, format!("this is {}", d.in_words()))
                        .secondary(args[j].value.span, format!("this is {}", f.in_words())),
                    );
                    return Ty::Error;
                }
            }
        }
        first.map_or(Ty::Error, |(d, _)| Ty::Quantity(d))
    };
    match name {
        "exp" | "log" | "log10" | "sin" | "cos" | "tan" | "tanh" => {
            if !arity(1, diagnostics) {
                return Ty::Error;
            }
            // A dimensioned argument is reported; the result is dimensionless either way.
            dimensionless(0, diagnostics);
            Ty::one()
        }
        "sqrt" => {
            if !arity(1, diagnostics) {
                return Ty::Error;
            }
            let Some(d) = quantity(0, diagnostics) else {
                return Ty::Error;
            };
            match d.root(2) {
                Some(r) => Ty::Quantity(r),
                None => {
                    diagnostics.push(
                        Diagnostic::error(format!("the square root of {d} has no unit"))
                            .primary(args[0].value.span, format!("this is {}", d.in_words())),
                    );
                    Ty::Error
                }
            }
        }
        "abs" | "sign" | "floor" | "ceil" => {
            if !arity(1, diagnostics) {
                return Ty::Error;
            }
            match quantity(0, diagnostics) {
                Some(_) if name == "sign" => Ty::one(),
                Some(d) => Ty::Quantity(d),
                None => Ty::Error,
            }
        }
        "min" | "max" => {
            if args.len() < 2 {
                arity(2, diagnostics);
                return Ty::Error;
            }
            same(diagnostics)
        }
        "clip" => {
            if !arity(3, diagnostics) {
                return Ty::Error;
            }
            same(diagnostics)
        }
        "pow" => {
            if !arity(2, diagnostics) {
                return Ty::Error;
            }
            let Some(base) = quantity(0, diagnostics) else {
                return Ty::Error;
            };
            if !dimensionless(1, diagnostics) {
                return Ty::Error;
            }
            if base.is_dimensionless() {
                return Ty::one();
            }
            match literal_int(&args[1].value) {
                Some(n) => base.powi(n).map_or(Ty::Error, Ty::Quantity),
                None => {
                    diagnostics.push(
                        Diagnostic::error(format!("a quantity in {base} can only be raised to a whole-number literal power"))
                            .primary(args[1].value.span, "the unit of the result would depend on this value"),
                    );
                    Ty::Error
                }
            }
        }
        "rand" | "randn" => {
            if arity(0, diagnostics) {
                Ty::one()
            } else {
                Ty::Error
            }
        }
        "uniform" | "normal" => {
            if !arity(2, diagnostics) {
                return Ty::Error;
            }
            same(diagnostics)
        }
        "exponential" => {
            if !arity(1, diagnostics) {
                return Ty::Error;
            }
            quantity(0, diagnostics).map_or(Ty::Error, Ty::Quantity)
        }
        "poisson" => {
            if arity(1, diagnostics) && dimensionless(0, diagnostics) {
                Ty::one()
            } else {
                Ty::Error
            }
        }
        "pulse" => {
            if !arity(2, diagnostics) {
                return Ty::Error;
            }
            for i in 0..2 {
                if let Some(d) = quantity(i, diagnostics) {
                    if d != Dim::time() {
                        diagnostics.push(
                            Diagnostic::error(format!(
                                "`pulse` takes a start and a stop time, found {d}"
                            ))
                            .primary(args[i].value.span, format!("this is {}", d.in_words())),
                        );
                    }
                }
            }
            Ty::one()
        }
        // Unknown functions were reported by resolve.
        _ => Ty::Error,
    }
}

// ------------------------------------------------------------------ networks

struct NetScope<'p, 'a> {
    context: NetContext,
    /// The network's populations, where reductions over them may be read.
    populations: Option<&'p std::collections::BTreeMap<&'a str, resolve::PopulationInfo<'a>>>,
}

impl Scope for NetScope<'_, '_> {
    fn reduction(&self, call: &ast::Expr) -> Option<Ty> {
        let pops = self.populations?;
        crate::reductions::dim_of(call, pops, &declared_dim).map(Ty::Quantity)
    }

    fn lookup(&self, name: &str) -> Option<Ty> {
        if resolve::context_names(self.context).contains(&name) {
            return Some(match name {
                "t" | "dt" => Ty::Quantity(Dim::time()),
                _ => Ty::one(),
            });
        }
        builtin_or_unit(name, &[])
    }
}

fn infer_net(expr: &ast::Expr, context: NetContext, diagnostics: &mut Vec<Diagnostic>) -> Ty {
    infer(
        &NetScope {
            context,
            populations: None,
        },
        expr,
        Place::Network(context),
        diagnostics,
    )
}

/// As [`infer_net`], where reductions over `populations` may be read (inputs, synapse
/// parameters).
fn infer_net_reading(
    expr: &ast::Expr,
    context: NetContext,
    populations: &std::collections::BTreeMap<&str, resolve::PopulationInfo<'_>>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Ty {
    infer(
        &NetScope {
            context,
            populations: Some(populations),
        },
        expr,
        Place::Network(context),
        diagnostics,
    )
}

fn expect_net(
    expr: &ast::Expr,
    context: NetContext,
    expected: Dim,
    what: &str,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let found = infer_net(expr, context, diagnostics);
    expect_dim(
        found,
        expected,
        expr,
        diagnostics,
        || format!("{what} must be in {expected}"),
        None,
    );
}

/// A literal count (population size, `k`, `n`): checks it is a non-negative whole number.
fn expect_count(expr: &ast::Expr, what: &str, positive: bool, diagnostics: &mut Vec<Diagnostic>) {
    expect_net(expr, NetContext::Constant, Dim::ONE, what, diagnostics);
    if let ExprKind::Number(v) = expr.kind {
        if v.fract() != 0.0 || v < 0.0 || (positive && v == 0.0) || v > u32::MAX as f64 {
            diagnostics.push(
                Diagnostic::error(format!(
                    "{what} must be a {} whole number, found {}",
                    if positive { "positive" } else { "non-negative" },
                    units::format_number(v)
                ))
                .primary(expr.span, "not a valid count"),
            );
        }
    } else if let ExprKind::Unary(UnOp::Neg, _) = expr.kind {
        diagnostics.push(
            Diagnostic::error(format!("{what} cannot be negative")).primary(expr.span, "negative"),
        );
    }
}

fn check_network(resolved: &Resolved, network: &ast::Network, diagnostics: &mut Vec<Diagnostic>) {
    let pops = resolve::populations(resolved, 0, network);
    let var_dim = |model: &ModelInfo, name: &str, _: &mut Vec<Diagnostic>| -> Option<Dim> {
        declared_dim(model, name)
    };
    for item in &network.items {
        match item {
            NetItem::Setting { name, value, .. } => match name.name.as_str() {
                "dt" => {
                    expect_net(
                        value,
                        NetContext::Constant,
                        Dim::time(),
                        "the time step `dt`",
                        diagnostics,
                    );
                    if let Some(v) = literal_quantity(value) {
                        if v <= 0.0 {
                            diagnostics.push(
                                Diagnostic::error("the time step must be positive")
                                    .primary(value.span, "not positive"),
                            );
                        }
                    }
                }
                "seed" => expect_count(value, "the seed", false, diagnostics),
                _ => {}
            },
            NetItem::Population {
                model, size, inits, ..
            } => {
                expect_count(size, "a population size", true, diagnostics);
                let Some(info) = resolved
                    .lookup_model(0, &model.name)
                    .filter(|m| m.ast.kind == ast::ModelKind::Neuron)
                else {
                    continue;
                };
                for init in inits {
                    let Some(dim) = var_dim(info, &init.name.name, diagnostics) else {
                        infer_net(&init.value, NetContext::Neuron, diagnostics);
                        continue;
                    };
                    let found = infer_net(&init.value, NetContext::Neuron, diagnostics);
                    expect_dim(
                        found,
                        dim,
                        &init.value,
                        diagnostics,
                        || format!("`{}.{}` has the wrong unit", info.name(), init.name.name),
                        None,
                    );
                    if found != Ty::Error
                        && !matches!(found, Ty::Quantity(d) if d == dim)
                        && !is_zero(&init.value)
                    {
                        if let Some(last) = diagnostics.last_mut() {
                            last.notes.push(format!(
                                "`{}` takes: {}",
                                info.name(),
                                resolve::describe_vars(info, |v| v.kind == VarKind::Param)
                            ));
                        }
                    }
                }
            }
            NetItem::SpikeSource { size, .. } => {
                expect_count(size, "a population size", true, diagnostics)
            }
            NetItem::Projection(projection) => {
                check_projection(resolved, &pops, projection, diagnostics)
            }
            NetItem::Input(input) => {
                let model = pops
                    .get(input.population.name.name.as_str())
                    .and_then(|p| p.model);
                check_range(&input.population, diagnostics);
                let dim = model.and_then(|m| var_dim(m, &input.variable.name, diagnostics));
                match &input.source {
                    ast::InputSource::Expr(expr) | ast::InputSource::Add(expr) => {
                        let found = infer_net_reading(expr, NetContext::Input, &pops, diagnostics);
                        if let Some(dim) = dim {
                            expect_dim(
                                found,
                                dim,
                                expr,
                                diagnostics,
                                || {
                                    format!(
                                        "the input to `{}.{}` has the wrong unit",
                                        input.population.name.name, input.variable.name
                                    )
                                },
                                None,
                            );
                        }
                    }
                    ast::InputSource::File { every, .. } => expect_net(
                        every,
                        NetContext::Constant,
                        Dim::time(),
                        "the interval of a timed input",
                        diagnostics,
                    ),
                }
            }
            NetItem::RecordSynapses {
                source,
                target,
                every,
                ..
            } => {
                check_range(source, diagnostics);
                check_range(target, diagnostics);
                if let Some(every) = every {
                    expect_net(
                        every,
                        NetContext::Constant,
                        Dim::time(),
                        "a recording interval",
                        diagnostics,
                    );
                }
            }
            NetItem::Record { of, every, .. } => {
                for pop in of {
                    check_range(pop, diagnostics);
                }
                if let Some(every) = every {
                    expect_net(
                        every,
                        NetContext::Constant,
                        Dim::time(),
                        "a recording interval",
                        diagnostics,
                    );
                }
            }
            NetItem::Run { duration, .. } => expect_net(
                duration,
                NetContext::Constant,
                Dim::time(),
                "the run length",
                diagnostics,
            ),
            NetItem::Error(_) => {}
        }
    }
}

fn check_range(pop: &ast::PopRef, diagnostics: &mut Vec<Diagnostic>) {
    if let Some((a, b)) = &pop.range {
        expect_count(a, "a range bound", false, diagnostics);
        expect_count(b, "a range bound", false, diagnostics);
        if let (ExprKind::Number(x), ExprKind::Number(y)) = (&a.kind, &b.kind) {
            if x >= y {
                diagnostics.push(
                    Diagnostic::error("an empty range")
                        .primary(pop.span, format!("`{}..{}` selects no neuron", units::format_number(*x), units::format_number(*y)))
                        .note("ranges include the start and exclude the end, as in `E[0..10]` for the first ten neurons"),
                );
            }
        }
    }
}

fn check_projection(
    resolved: &Resolved,
    pops: &std::collections::BTreeMap<&str, resolve::PopulationInfo<'_>>,
    projection: &ast::Projection,
    diagnostics: &mut Vec<Diagnostic>,
) {
    for pop in projection.sources.iter().chain(&projection.targets) {
        check_range(pop, diagnostics);
    }
    let synapse = resolved
        .lookup_model(0, &projection.synapse.name)
        .filter(|m| m.ast.kind == ast::ModelKind::Synapse);
    // The dimension the target port takes in this projection, from the bound variable.
    let mut bound: Option<Dimension> = None;
    if let Some(synapse) = synapse {
        let synapse_port = model_port(synapse).map(|(_, d)| d);
        if let Some(init) = projection.inits.iter().find(|i| i.name.name == "target") {
            if let ExprKind::Name(var) = &init.value.kind {
                for target in &projection.targets {
                    let Some(model) = pops.get(target.name.name.as_str()).and_then(|p| p.model)
                    else {
                        continue;
                    };
                    let Some(dim) = declared_dim(model, &var.name) else {
                        continue;
                    };
                    // A kernel synapse bound to something other than an input is reported by
                    // `resolve` (one mistake, one message).
                    let is_input = model
                        .var(&var.name)
                        .is_some_and(|v| v.kind == VarKind::Input);
                    if synapse.output.is_some() != is_input {
                        continue;
                    }
                    let port = synapse_port;
                    match port {
                        Some(port) if port.port == 0 && port != dim => diagnostics.push(
                            Diagnostic::error(format!(
                                "`{}` writes {port} into `{}.{}`, which is in {dim}",
                                synapse.name(),
                                target.name.name,
                                var.name
                            ))
                            .primary(var.span, format!("in {dim}"))
                            .secondary(
                                synapse
                                    .target
                                    .as_ref()
                                    .map_or(projection.synapse.span, |(n, _)| n.span),
                                format!("the port is declared in {port}"),
                            ),
                        ),
                        _ => {}
                    }
                    match bound {
                        Some(previous) if previous != dim.si => diagnostics.push(
                            Diagnostic::error(
                                "the target variable has different units in the target populations",
                            )
                            .primary(target.span, format!("`{}` is in {} here", var.name, dim.si))
                            .note(format!(
                                "elsewhere it is in {previous}; split the projection"
                            )),
                        ),
                        _ => bound = Some(dim.si),
                    }
                }
            }
        }
        if synapse.output.is_some() {
            check_post_reads(synapse, pops, projection, diagnostics);
        }
        for init in &projection.inits {
            if init.name.name == "target" {
                continue;
            }
            let Some(dim) = declared_dim(synapse, &init.name.name) else {
                infer_net(&init.value, NetContext::Synapse, diagnostics);
                continue;
            };
            let dim = match bound {
                Some(port) => Dim::si(dim.bind(port)),
                None => dim,
            };
            let found = infer_net_reading(&init.value, NetContext::Synapse, pops, diagnostics);
            if dim.port != 0 {
                // The port is unbound (an error reported elsewhere), so the unit is unknown.
                continue;
            }
            expect_dim(
                found,
                dim,
                &init.value,
                diagnostics,
                || format!("`{}.{}` has the wrong unit", synapse.name(), init.name.name),
                None,
            );
        }
    }
    if let Some(connect) = &projection.connect {
        match connect {
            ast::Connect::Rule { args, rule, .. } => {
                for (name, arg) in resolve::connect_args(&rule.name, args) {
                    match name {
                        "p" => {
                            expect_net(
                                &arg.value,
                                NetContext::Constant,
                                Dim::ONE,
                                "a connection probability",
                                diagnostics,
                            );
                            if let ExprKind::Number(p) = arg.value.kind {
                                if !(0.0..=1.0).contains(&p) {
                                    diagnostics.push(
                                        Diagnostic::error(format!(
                                            "a probability must lie in [0, 1], found {}",
                                            units::format_number(p)
                                        ))
                                        .primary(arg.value.span, "out of range"),
                                    );
                                }
                            } else if let ExprKind::Unary(UnOp::Neg, _) = arg.value.kind {
                                diagnostics.push(
                                    Diagnostic::error("a probability cannot be negative")
                                        .primary(arg.value.span, "out of range"),
                                );
                            }
                        }
                        "k" => expect_count(&arg.value, "the degree `k`", false, diagnostics),
                        "n" => {
                            expect_count(&arg.value, "the synapse count `n`", false, diagnostics)
                        }
                        flag @ ("autapses" | "multapses") => {
                            let found = infer_net(&arg.value, NetContext::Constant, diagnostics);
                            expect_bool(found, &arg.value, &format!("`{flag}`"), diagnostics);
                        }
                        _ => {}
                    }
                }
            }
            ast::Connect::Where { condition, .. } => {
                let found = infer_net(condition, NetContext::Synapse, diagnostics);
                expect_bool(found, condition, "a `where` condition", diagnostics);
            }
            ast::Connect::File { .. } => {}
        }
    }
    if let Some((_, delay)) = &projection.dendritic_delay {
        expect_net(
            delay,
            NetContext::Constant,
            Dim::time(),
            "a dendritic delay",
            diagnostics,
        );
    }
    if let Some(delay) = &projection.delay {
        expect_net(
            delay,
            NetContext::Synapse,
            Dim::time(),
            "a delay",
            diagnostics,
        );
        if let ExprKind::Unary(UnOp::Neg, inner) = &delay.kind {
            if matches!(inner.kind, ExprKind::Quantity(..)) {
                diagnostics.push(
                    Diagnostic::error("a delay cannot be negative")
                        .primary(delay.span, "negative delay")
                        .note("a spike cannot arrive before it was sent"),
                );
            }
        }
    }
}

/// A kernel synapse reads each `post param` from the variable of the same name of its target
/// neuron, every step: the target population's model must have it, in the same unit.
fn check_post_reads(
    synapse: &ModelInfo,
    pops: &std::collections::BTreeMap<&str, resolve::PopulationInfo<'_>>,
    projection: &ast::Projection,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let reads = synapse
        .vars
        .iter()
        .filter(|v| v.kind == VarKind::Param && v.placement == ast::Placement::Post);
    for read in reads {
        let Some(dim) = declared_dim(synapse, &read.name.name) else {
            continue;
        };
        for target in &projection.targets {
            let Some(model) = pops.get(target.name.name.as_str()).and_then(|p| p.model) else {
                continue;
            };
            match model.var(&read.name.name) {
                Some(var) if var.kind != VarKind::Input => {
                    let Some(found) = declared_dim(model, &read.name.name) else {
                        continue;
                    };
                    if found != dim {
                        diagnostics.push(
                            Diagnostic::error(format!(
                                "`{}` reads `{}` of `{}` in {dim}, but it is in {found}",
                                synapse.name(),
                                read.name.name,
                                model.name()
                            ))
                            .primary(
                                target.span,
                                format!("`{}.{}` is in {found}", target.name.name, read.name.name),
                            )
                            .secondary(read.span, format!("read here in {dim}")),
                        );
                    }
                }
                _ => {
                    let variables = resolve::describe_vars(model, |v| v.kind != VarKind::Input);
                    diagnostics.push(
                        Diagnostic::error(format!(
                            "`{}` reads `{}` of its target neuron, which `{}` does not have",
                            synapse.name(),
                            read.name.name,
                            model.name()
                        ))
                        .primary(target.span, format!("a population of `{}`", model.name()))
                        .secondary(read.span, "a `post param` of a kernel synapse is read from the target neuron's variable of the same name")
                        .note(format!("the variables of `{}` are: {variables}", model.name())),
                    );
                }
            }
        }
    }
}
