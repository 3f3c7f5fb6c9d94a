//! Integrators: how a model's ODE system is advanced by one step `dt`.
//!
//! This module owns three things. It analyses right-hand sides symbolically (is the system
//! affine in its states, with constant coefficients? is each ODE at least linear in its own
//! state?), it chooses an integration method from that analysis or checks the one the user
//! forced, and it emits IR statements that advance every state from the values at the start
//! of the step. For linear systems with constant coefficients it computes the propagator
//! matrices at compile time with a matrix exponential (Van Loan's block form), so the emitted
//! code is a handful of multiply-adds with exact results.
//!
//! It does not see the AST or units: right-hand sides arrive as IR expressions over SI `f64`
//! values, and the statements it returns are spliced into a kernel by the caller. It does no
//! code generation and no optimisation beyond folding the constants it creates itself.
//!
//! The contract every method keeps: all new values are computed into locals before any state
//! is stored, so no ODE sees another's new value; `Expr::Local`s, other arrays and time are
//! constant over the step (time advances within Runge-Kutta stages); a state whose `hold` is
//! nonzero keeps its value, and the other ODEs see that held value for the whole step.

use crate::ir::interp;
use crate::ir::{BinOp, Builder, Expr, Func, Stmt, UnOp, VarId};

/// An integration method, as the user writes it in `method = ...`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Propagator matrices computed at compile time; exact for linear constant-coefficient
    /// systems with inputs constant over the step.
    Exact,
    /// Exponential Euler: each state advanced exactly in its own linear part, with the other
    /// states frozen at the start of the step.
    ExpEuler,
    /// Forward Euler.
    Euler,
    /// Explicit midpoint rule (second order).
    Rk2,
    /// The classic four-stage Runge-Kutta method.
    Rk4,
    /// Adaptive Runge-Kutta-Fehlberg 4(5) sub-steps with error control and the threshold
    /// tested after each (`lower/adaptive.rs`, which the caller uses instead of [`integrate`]).
    Rkf45,
}

impl Method {
    pub const ALL: [Method; 6] = [
        Method::Exact,
        Method::ExpEuler,
        Method::Euler,
        Method::Rk2,
        Method::Rk4,
        Method::Rkf45,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Method::Exact => "exact",
            Method::ExpEuler => "exp_euler",
            Method::Euler => "euler",
            Method::Rk2 => "rk2",
            Method::Rk4 => "rk4",
            Method::Rkf45 => "rkf45",
        }
    }

    pub fn parse(s: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.name() == s)
    }
}

/// One ODE: `d var/dt = rhs`.
#[derive(Clone, Debug, PartialEq)]
pub struct Ode {
    pub var: VarId,
    pub rhs: Expr,
    /// The state is held (not integrated) while this is nonzero, e.g.
    /// `Expr::Local(is_refractory)`; `None` means it is always integrated.
    pub hold: Option<Expr>,
}

/// The statements that advance a system by one step, and what was chosen.
#[derive(Clone, Debug, PartialEq)]
pub struct Integration {
    pub method: Method,
    /// Why this method, for `snnc ir`.
    pub reason: String,
    pub stmts: Vec<Stmt>,
}

/// Chooses (or checks the `forced`) method for the system `odes` and emits statements that
/// advance it by `dt` seconds. Returns `Err(message)` when the forced method cannot apply,
/// naming the offending term with `var_names`.
pub fn integrate(
    odes: &[Ode],
    forced: Option<Method>,
    dt: f64,
    builder: &mut Builder,
    var_names: &dyn Fn(VarId) -> String,
) -> Result<Integration, String> {
    if odes.iter().any(|o| o.rhs.is_random()) {
        return Err("random draws are not allowed in ODEs".to_string());
    }
    if odes.is_empty() {
        return Ok(Integration {
            method: Method::Exact,
            reason: "no ODEs".to_string(),
            stmts: Vec::new(),
        });
    }
    for (i, ode) in odes.iter().enumerate() {
        if odes[..i].iter().any(|o| o.var == ode.var) {
            return Err(format!("`{}` has two ODEs", var_names(ode.var)));
        }
    }
    if !(dt > 0.0 && dt.is_finite()) {
        return Err(format!(
            "the time step must be positive and finite, not {dt} s"
        ));
    }
    let n = odes.len();
    let states: Vec<VarId> = odes.iter().map(|o| o.var).collect();
    let linear = linear_system(odes, &states, var_names);
    let per_ode = conditionally_linear(odes, var_names);
    let plural = if n == 1 { "state" } else { "states" };
    let propagator = || format!("{n} {plural}, propagator computed for dt = {} ms", ms(dt));

    let (method, reason, stmts) = match forced {
        Some(Method::Exact) => {
            let sys = linear.map_err(|why| {
                format!("`method = exact` needs a linear system with constant coefficients, but {why}")
            })?;
            let stmts = emit_exact(odes, &sys, dt, builder);
            (
                Method::Exact,
                format!("exact: forced by `method = exact` ({})", propagator()),
                stmts,
            )
        }
        Some(Method::ExpEuler) => {
            let parts = per_ode.map_err(|why| {
                format!("`method = exp_euler` needs every ODE to be linear in its own state, but {why}")
            })?;
            let stmts = emit_exp_euler(odes, &parts, dt, builder);
            (
                Method::ExpEuler,
                format!("exp_euler: forced by `method = exp_euler` ({n} {plural})"),
                stmts,
            )
        }
        Some(Method::Rkf45) => {
            return Err("`method = rkf45` is lowered by the adaptive integrator".to_string())
        }
        Some(m) => {
            let stmts = emit_runge_kutta(m, odes, dt, builder);
            (m, format!("{0}: forced by `method = {0}` ({n} {plural})", m.name()), stmts)
        }
        None => match (linear, per_ode) {
            (Ok(sys), _) => (
                Method::Exact,
                format!("exact: linear with constant coefficients ({})", propagator()),
                emit_exact(odes, &sys, dt, builder),
            ),
            (Err(why), Ok(parts)) => (
                Method::ExpEuler,
                format!(
                    "exp_euler: each ODE is linear in its own state ({n} {plural}); not exact because {why}"
                ),
                emit_exp_euler(odes, &parts, dt, builder),
            ),
            (Err(_), Err(why)) => (
                Method::Rk4,
                format!("rk4: not conditionally linear because {why}"),
                emit_runge_kutta(Method::Rk4, odes, dt, builder),
            ),
        },
    };
    Ok(Integration {
        method,
        reason,
        stmts,
    })
}

/// `dt` in milliseconds, without float noise.
fn ms(dt: f64) -> String {
    let s = format!("{:.12}", dt * 1e3);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

// ---------------------------------------------------------------------------------------------
// Linearity analysis

/// An expression written as `Σ coef[j]·states[j] + rest`, where neither the coefficients nor
/// `rest` read the states.
#[derive(Clone, Debug)]
struct Affine {
    coef: Vec<Expr>,
    rest: Expr,
}

/// Why an expression is not affine: the smallest term found that is nonlinear in the states.
struct Nonlinear {
    term: Expr,
}

fn reads_any(e: &Expr, states: &[VarId]) -> bool {
    states.iter().any(|s| e.reads_var(*s))
}

/// Decomposes `e` into an affine function of `states`, or names a nonlinear term.
fn affine(e: &Expr, states: &[VarId]) -> Result<Affine, Nonlinear> {
    let zero = || vec![Expr::c(0.0); states.len()];
    if !reads_any(e, states) {
        return Ok(Affine {
            coef: zero(),
            rest: e.clone(),
        });
    }
    let combine = |a: Affine, b: Affine, f: fn(Expr, Expr) -> Expr| Affine {
        coef: a
            .coef
            .into_iter()
            .zip(b.coef)
            .map(|(x, y)| f(x, y))
            .collect(),
        rest: f(a.rest, b.rest),
    };
    let map = |a: Affine, f: &dyn Fn(Expr) -> Expr| Affine {
        coef: a.coef.into_iter().map(f).collect(),
        rest: f(a.rest),
    };
    match e {
        Expr::Var(v) => {
            let mut coef = zero();
            // reads_any said it is a state.
            let j = states.iter().position(|s| s == v).unwrap_or_default();
            coef[j] = Expr::c(1.0);
            Ok(Affine {
                coef,
                rest: Expr::c(0.0),
            })
        }
        Expr::Unary(UnOp::Neg, a) => Ok(map(affine(a, states)?, &neg)),
        Expr::Binary(BinOp::Add, a, b) => Ok(combine(affine(a, states)?, affine(b, states)?, add)),
        Expr::Binary(BinOp::Sub, a, b) => Ok(combine(affine(a, states)?, affine(b, states)?, sub)),
        Expr::Binary(BinOp::Mul, a, b) if !reads_any(a, states) => {
            Ok(map(affine(b, states)?, &|x| mul((**a).clone(), x)))
        }
        Expr::Binary(BinOp::Mul, a, b) if !reads_any(b, states) => {
            Ok(map(affine(a, states)?, &|x| mul(x, (**b).clone())))
        }
        Expr::Binary(BinOp::Div, a, b) if !reads_any(b, states) => {
            Ok(map(affine(a, states)?, &|x| div(x, (**b).clone())))
        }
        _ => Err(Nonlinear { term: e.clone() }),
    }
}

/// `x' = A x + b` with `A` a matrix of numbers (row-major) and `b` free of the states.
struct LinearSystem {
    a: Vec<f64>,
    b: Vec<Expr>,
}

fn linear_system(
    odes: &[Ode],
    states: &[VarId],
    names: &dyn Fn(VarId) -> String,
) -> Result<LinearSystem, String> {
    let n = odes.len();
    let mut a = vec![0.0; n * n];
    let mut b = Vec::with_capacity(n);
    for (i, ode) in odes.iter().enumerate() {
        let x = names(ode.var);
        let aff =
            affine(&ode.rhs, states).map_err(|nl| nonlinear_message(&x, &nl, states, names))?;
        for (j, c) in aff.coef.iter().enumerate() {
            a[i * n + j] = fold(c).ok_or_else(|| {
                format!(
                    "the coefficient of {} in d{x}/dt, `{}`, is not a compile-time constant",
                    names(states[j]),
                    show(c, names)
                )
            })?;
            if !a[i * n + j].is_finite() {
                return Err(format!(
                    "the coefficient of {} in d{x}/dt is not finite",
                    names(states[j])
                ));
            }
        }
        b.push(aff.rest);
    }
    Ok(LinearSystem { a, b })
}

fn nonlinear_message(
    x: &str,
    nl: &Nonlinear,
    states: &[VarId],
    names: &dyn Fn(VarId) -> String,
) -> String {
    let read: Vec<String> = states
        .iter()
        .filter(|s| nl.term.reads_var(**s))
        .map(|s| names(*s))
        .collect();
    format!(
        "d{x}/dt is nonlinear in {}: `{}`",
        read.join(" and "),
        show(&nl.term, names)
    )
}

/// Each ODE as `x' = a·x + c` with `a`, `c` free of its own state `x`.
fn conditionally_linear(
    odes: &[Ode],
    names: &dyn Fn(VarId) -> String,
) -> Result<Vec<(Expr, Expr)>, String> {
    odes.iter()
        .map(|ode| {
            let aff = affine(&ode.rhs, &[ode.var])
                .map_err(|nl| nonlinear_message(&names(ode.var), &nl, &[ode.var], names))?;
            let a = aff.coef.into_iter().next().unwrap_or(Expr::c(0.0));
            Ok((a, aff.rest))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Constant folding and simplifying constructors (for the expressions this module builds)

/// The value of an expression that reads nothing at run time.
fn fold(e: &Expr) -> Option<f64> {
    match e {
        Expr::Const(v) => Some(*v),
        Expr::Unary(UnOp::Neg, a) => Some(-fold(a)?),
        Expr::Unary(UnOp::Not, a) => Some(if fold(a)? == 0.0 { 1.0 } else { 0.0 }),
        Expr::Binary(op, a, b) => Some(interp::binary(*op, fold(a)?, fold(b)?)),
        Expr::Call(f, a) => Some(interp::call(*f, fold(a)?)),
        Expr::Select(c, a, b) => {
            if fold(c)? != 0.0 {
                fold(a)
            } else {
                fold(b)
            }
        }
        Expr::Var(_) | Expr::Local(_) | Expr::Time | Expr::Index | Expr::Random { .. } => None,
    }
}

fn is_const(e: &Expr, value: f64) -> bool {
    matches!(e, Expr::Const(v) if *v == value)
}

fn neg(a: Expr) -> Expr {
    match a {
        Expr::Const(v) => Expr::c(-v),
        Expr::Unary(UnOp::Neg, x) => *x,
        a => Expr::neg(a),
    }
}

fn add(a: Expr, b: Expr) -> Expr {
    match (&a, &b) {
        (Expr::Const(x), Expr::Const(y)) => Expr::c(x + y),
        _ if is_const(&a, 0.0) => b,
        _ if is_const(&b, 0.0) => a,
        _ => Expr::add(a, b),
    }
}

fn sub(a: Expr, b: Expr) -> Expr {
    match (&a, &b) {
        (Expr::Const(x), Expr::Const(y)) => Expr::c(x - y),
        _ if is_const(&b, 0.0) => a,
        _ if is_const(&a, 0.0) => neg(b),
        _ => Expr::sub(a, b),
    }
}

fn mul(a: Expr, b: Expr) -> Expr {
    match (&a, &b) {
        (Expr::Const(x), Expr::Const(y)) => Expr::c(x * y),
        _ if is_const(&a, 0.0) || is_const(&b, 0.0) => Expr::c(0.0),
        _ if is_const(&a, 1.0) => b,
        _ if is_const(&b, 1.0) => a,
        _ if is_const(&a, -1.0) => neg(b),
        _ if is_const(&b, -1.0) => neg(a),
        _ => Expr::mul(a, b),
    }
}

fn div(a: Expr, b: Expr) -> Expr {
    match (&a, &b) {
        (Expr::Const(x), Expr::Const(y)) => Expr::c(x / y),
        _ if is_const(&a, 0.0) => Expr::c(0.0),
        _ if is_const(&b, 1.0) => a,
        _ => Expr::div(a, b),
    }
}

/// A local holding `e`, or `e` itself when it is a constant or a plain read.
fn bind(e: Expr, builder: &mut Builder, stmts: &mut Vec<Stmt>) -> Expr {
    match e {
        Expr::Const(_) | Expr::Var(_) | Expr::Local(_) | Expr::Time => e,
        e => {
            let l = builder.local();
            stmts.push(Stmt::Let(l, e));
            Expr::Local(l)
        }
    }
}

/// A fresh local holding `e` (always a new local: used for values that must not change when
/// states are stored).
pub(super) fn let_local(e: Expr, builder: &mut Builder, stmts: &mut Vec<Stmt>) -> Expr {
    let l = builder.local();
    stmts.push(Stmt::Let(l, e));
    Expr::Local(l)
}

/// Replaces reads of states by the given expressions, and time by `time`.
pub(super) fn substitute(e: &Expr, states: &[VarId], values: &[Expr], time: &Expr) -> Expr {
    let go = |x: &Expr| Box::new(substitute(x, states, values, time));
    match e {
        Expr::Var(v) => match states.iter().position(|s| s == v) {
            Some(j) => values[j].clone(),
            None => e.clone(),
        },
        Expr::Time => time.clone(),
        Expr::Const(_) | Expr::Local(_) | Expr::Index => e.clone(),
        Expr::Unary(op, a) => Expr::Unary(*op, go(a)),
        Expr::Binary(op, a, b) => Expr::Binary(*op, go(a), go(b)),
        Expr::Call(f, a) => Expr::Call(*f, go(a)),
        Expr::Select(c, a, b) => Expr::Select(go(c), go(a), go(b)),
        Expr::Random { kind, draw, arg } => Expr::Random {
            kind: *kind,
            draw: *draw,
            arg: go(arg),
        },
    }
}

/// Stores the new values (already in locals), keeping held states. A hold condition that
/// reads a state is evaluated before the first store, so it sees the start-of-step values.
fn store_all(odes: &[Ode], new: Vec<Expr>, builder: &mut Builder, stmts: &mut Vec<Stmt>) {
    let states: Vec<VarId> = odes.iter().map(|o| o.var).collect();
    let holds: Vec<Option<Expr>> = odes
        .iter()
        .map(|o| {
            o.hold.as_ref().map(|h| {
                if reads_any(h, &states) {
                    let_local(h.clone(), builder, stmts)
                } else {
                    h.clone()
                }
            })
        })
        .collect();
    for ((ode, value), hold) in odes.iter().zip(new).zip(holds) {
        let value = match hold {
            Some(h) => Expr::select(h, Expr::Var(ode.var), value),
            None => value,
        };
        stmts.push(Stmt::Store(ode.var, value));
    }
}

// ---------------------------------------------------------------------------------------------
// Exact integration

/// `Φ = exp(A dt)` and `Ψ = ∫₀^dt exp(A s) ds`, from the exponential of `[[A, I], [0, 0]]·dt`.
fn propagators(a: &[f64], n: usize, dt: f64) -> (Vec<f64>, Vec<f64>) {
    let m = 2 * n;
    let mut big = vec![0.0; m * m];
    for i in 0..n {
        for j in 0..n {
            big[i * m + j] = a[i * n + j] * dt;
        }
        big[i * m + n + i] = dt;
    }
    let e = expm(&big, m);
    let mut phi = vec![0.0; n * n];
    let mut psi = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            phi[i * n + j] = e[i * m + j];
            psi[i * n + j] = e[i * m + n + j];
        }
    }
    (phi, psi)
}

fn emit_exact(odes: &[Ode], sys: &LinearSystem, dt: f64, builder: &mut Builder) -> Vec<Stmt> {
    let n = odes.len();
    let mut stmts = Vec::new();
    // The inputs, each evaluated once; constants stay constants.
    let b: Vec<Expr> = sys
        .b
        .iter()
        .map(|e| bind(e.clone(), builder, &mut stmts))
        .collect();
    let formula = |phi: &[f64], psi: &[f64], i: usize| {
        let mut sum = Expr::c(0.0);
        for (j, ode) in odes.iter().enumerate() {
            let p = phi[i * n + j];
            if p != 0.0 {
                sum = add(sum, mul(Expr::c(p), Expr::Var(ode.var)));
            }
        }
        // Constant inputs are combined at compile time.
        let mut constant = 0.0;
        for (j, bj) in b.iter().enumerate() {
            let q = psi[i * n + j];
            match bj {
                _ if q == 0.0 => {}
                Expr::Const(v) => constant += q * v,
                bj => sum = add(sum, mul(Expr::c(q), bj.clone())),
            }
        }
        if constant != 0.0 {
            sum = add(sum, Expr::c(constant));
        }
        sum
    };
    let (phi, psi) = propagators(&sys.a, n, dt);
    let free: Vec<Expr> = (0..n).map(|i| formula(&phi, &psi, i)).collect();

    // While a state is held its derivative is zero, so the other states evolve with the
    // held value: when every hold is the same condition, a second propagator for the system
    // with the held rows removed gives that exactly.
    let mut holds: Vec<&Expr> = Vec::new();
    for h in odes.iter().filter_map(|o| o.hold.as_ref()) {
        if !holds.contains(&h) {
            holds.push(h);
        }
    }
    let mut new = Vec::with_capacity(n);
    if let [hold] = holds[..] {
        let held: Vec<bool> = odes.iter().map(|o| o.hold.as_ref() == Some(hold)).collect();
        let mut a_held = sys.a.clone();
        for (i, &h) in held.iter().enumerate() {
            if h {
                a_held[i * n..(i + 1) * n].fill(0.0);
            }
        }
        let (phi_h, mut psi_h) = propagators(&a_held, n, dt);
        for i in 0..n {
            for (j, &h) in held.iter().enumerate() {
                if h {
                    psi_h[i * n + j] = 0.0;
                }
            }
        }
        for (i, f) in free.into_iter().enumerate() {
            let value = if held[i] {
                // store_all keeps the held state.
                f
            } else {
                let g = formula(&phi_h, &psi_h, i);
                if g == f {
                    f
                } else {
                    Expr::select(hold.clone(), g, f)
                }
            };
            new.push(let_local(value, builder, &mut stmts));
        }
    } else {
        for f in free {
            new.push(let_local(f, builder, &mut stmts));
        }
    }
    store_all(odes, new, builder, &mut stmts);
    stmts
}

// ---------------------------------------------------------------------------------------------
// Exponential Euler

fn emit_exp_euler(
    odes: &[Ode],
    parts: &[(Expr, Expr)],
    dt: f64,
    builder: &mut Builder,
) -> Vec<Stmt> {
    let mut stmts = Vec::new();
    let mut new = Vec::with_capacity(odes.len());
    for (ode, (a, c)) in odes.iter().zip(parts) {
        let x = Expr::Var(ode.var);
        // x(t+dt) = x·exp(a dt) + c·expm1(a dt)/a, with expm1(a dt)/a → dt as a → 0.
        let value = match fold(a) {
            Some(k) => {
                let z = k * dt;
                let h = if z == 0.0 { dt } else { z.exp_m1() / k };
                add(mul(Expr::c(z.exp()), x), mul(Expr::c(h), c.clone()))
            }
            None => {
                let a = bind(a.clone(), builder, &mut stmts);
                let e1 = let_local(
                    Expr::call(Func::Expm1, mul(a.clone(), Expr::c(dt))),
                    builder,
                    &mut stmts,
                );
                let h = Expr::select(
                    Expr::bin(BinOp::Eq, e1.clone(), Expr::c(0.0)),
                    Expr::c(dt),
                    Expr::div(e1.clone(), a),
                );
                add(x.clone(), add(mul(x, e1), mul(c.clone(), h)))
            }
        };
        new.push(let_local(value, builder, &mut stmts));
    }
    store_all(odes, new, builder, &mut stmts);
    stmts
}

// ---------------------------------------------------------------------------------------------
// Runge-Kutta methods

fn emit_runge_kutta(method: Method, odes: &[Ode], dt: f64, builder: &mut Builder) -> Vec<Stmt> {
    let states: Vec<VarId> = odes.iter().map(|o| o.var).collect();
    let start: Vec<Expr> = states.iter().map(|v| Expr::Var(*v)).collect();
    let mut stmts = Vec::new();
    // The derivatives at a stage: held states have none.
    let stage =
        |values: &[Expr], c: f64, builder: &mut Builder, stmts: &mut Vec<Stmt>| -> Vec<Expr> {
            let time = if c == 0.0 {
                Expr::Time
            } else {
                Expr::add(Expr::Time, Expr::c(c * dt))
            };
            odes.iter()
                .map(|ode| {
                    let f = substitute(&ode.rhs, &states, values, &time);
                    let f = match &ode.hold {
                        Some(h) => Expr::select(h.clone(), Expr::c(0.0), f),
                        None => f,
                    };
                    let_local(f, builder, stmts)
                })
                .collect()
        };
    // x + h·k, into locals.
    let advance = |h: f64, k: &[Expr], builder: &mut Builder, stmts: &mut Vec<Stmt>| -> Vec<Expr> {
        states
            .iter()
            .zip(k)
            .map(|(v, k)| {
                let_local(
                    add(Expr::Var(*v), mul(Expr::c(h), k.clone())),
                    builder,
                    stmts,
                )
            })
            .collect()
    };
    let new = match method {
        Method::Euler => {
            let k1 = stage(&start, 0.0, builder, &mut stmts);
            advance(dt, &k1, builder, &mut stmts)
        }
        Method::Rk2 => {
            let k1 = stage(&start, 0.0, builder, &mut stmts);
            let y = advance(dt / 2.0, &k1, builder, &mut stmts);
            let k2 = stage(&y, 0.5, builder, &mut stmts);
            advance(dt, &k2, builder, &mut stmts)
        }
        _ => {
            let k1 = stage(&start, 0.0, builder, &mut stmts);
            let y = advance(dt / 2.0, &k1, builder, &mut stmts);
            let k2 = stage(&y, 0.5, builder, &mut stmts);
            let y = advance(dt / 2.0, &k2, builder, &mut stmts);
            let k3 = stage(&y, 0.5, builder, &mut stmts);
            let y = advance(dt, &k3, builder, &mut stmts);
            let k4 = stage(&y, 1.0, builder, &mut stmts);
            let sum: Vec<Expr> = (0..odes.len())
                .map(|i| {
                    let two_mid = Expr::mul(Expr::c(2.0), Expr::add(k2[i].clone(), k3[i].clone()));
                    Expr::add(Expr::add(k1[i].clone(), two_mid), k4[i].clone())
                })
                .collect();
            advance(dt / 6.0, &sum, builder, &mut stmts)
        }
    };
    store_all(odes, new, builder, &mut stmts);
    stmts
}

// ---------------------------------------------------------------------------------------------
// Matrix exponential

fn matmul(a: &[f64], b: &[f64], n: usize) -> Vec<f64> {
    let mut c = vec![0.0; n * n];
    for i in 0..n {
        for k in 0..n {
            let aik = a[i * n + k];
            if aik == 0.0 {
                continue;
            }
            for j in 0..n {
                c[i * n + j] += aik * b[k * n + j];
            }
        }
    }
    c
}

fn norm1(a: &[f64], n: usize) -> f64 {
    (0..n)
        .map(|j| (0..n).map(|i| a[i * n + j].abs()).sum::<f64>())
        .fold(0.0, f64::max)
}

/// `exp(m)` for a small dense `n`×`n` matrix (row-major): scaling by a power of two until the
/// 1-norm is at most 1/2, a Taylor series summed to convergence (the terms fall below 2⁻⁷⁰ of
/// the sum within ~20 terms), then repeated squaring. Structural zeros stay exact zeros.
fn expm(m: &[f64], n: usize) -> Vec<f64> {
    // Balance first: in SI units a coupling such as 1/C_m is ~1e10 next to decay rates of
    // ~1e2, and scaling and squaring would square ~20 times and lose ~1e-10 of accuracy. A
    // diagonal similarity B = D^-1 A D with powers of two (exact in floating point) brings the
    // rows and columns to comparable norms; then exp(A) = D exp(B) D^-1.
    let (balanced, d) = balance(m, n);
    let e = expm_scaled(&balanced, n);
    let mut out = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            out[i * n + j] = e[i * n + j] * d[i] / d[j];
        }
    }
    out
}

/// Parlett-Reinsch balancing with powers of two: returns `D^-1 A D` and the diagonal of `D`.
///
/// A coupling with nothing in the other direction (the usual case: a current drives a voltage,
/// nothing drives back) has a zero row or column sum, which classic balancing skips; such a
/// row or column is instead scaled toward the magnitude of the largest diagonal entry, so the
/// norm that decides the number of squarings reflects the decay rates, not the units.
fn balance(m: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut b = m.to_vec();
    let mut d = vec![1.0; n];
    let diagonal = (0..n).map(|i| m[i * n + i].abs()).fold(0.0f64, f64::max);
    for _ in 0..64 {
        let mut converged = true;
        for i in 0..n {
            let (mut c, mut r) = (0.0f64, 0.0f64);
            for j in 0..n {
                if j != i {
                    c += b[j * n + i].abs();
                    r += b[i * n + j].abs();
                }
            }
            if !(c + r).is_finite() || (c == 0.0 && r == 0.0) {
                continue;
            }
            if c == 0.0 || r == 0.0 {
                // One-sided: shrink the nonzero side to within a factor of two of the diagonal.
                if diagonal == 0.0 {
                    continue;
                }
                let mut f = 1.0;
                let mut side = c + r;
                while side > 2.0 * diagonal {
                    side /= 2.0;
                    f *= 2.0;
                }
                if f == 1.0 {
                    continue;
                }
                // Row i is divided by the new factor and column i multiplied by it: a large
                // row sum wants a larger d_i, a large column sum a smaller one.
                let factor = if r > 0.0 { f } else { 1.0 / f };
                converged = false;
                d[i] *= factor;
                for j in 0..n {
                    b[i * n + j] /= factor;
                    b[j * n + i] *= factor;
                }
                continue;
            }
            let total = c + r;
            let mut f = 1.0;
            while c < r / 2.0 {
                c *= 2.0;
                r /= 2.0;
                f *= 2.0;
            }
            while c >= r * 2.0 {
                c /= 2.0;
                r *= 2.0;
                f /= 2.0;
            }
            if c + r < 0.95 * total {
                converged = false;
                d[i] *= f;
                for j in 0..n {
                    b[i * n + j] /= f;
                    b[j * n + i] *= f;
                }
            }
        }
        if converged {
            break;
        }
    }
    (b, d)
}

fn expm_scaled(m: &[f64], n: usize) -> Vec<f64> {
    let norm = norm1(m, n);
    let mut squarings = 0;
    let mut scale = 1.0;
    while norm * scale > 0.5 {
        scale *= 0.5;
        squarings += 1;
    }
    let a: Vec<f64> = m.iter().map(|x| x * scale).collect();
    let mut sum = vec![0.0; n * n];
    let mut term = vec![0.0; n * n];
    for i in 0..n {
        sum[i * n + i] = 1.0;
        term[i * n + i] = 1.0;
    }
    for k in 1..=40 {
        term = matmul(&term, &a, n);
        let inv = 1.0 / k as f64;
        term.iter_mut().for_each(|x| *x *= inv);
        sum.iter_mut().zip(&term).for_each(|(s, t)| *s += t);
        if norm1(&term, n) <= 1e-21 * norm1(&sum, n) {
            break;
        }
    }
    for _ in 0..squarings {
        sum = matmul(&sum, &sum, n);
    }
    sum
}

// ---------------------------------------------------------------------------------------------
// Messages

/// An expression in source-like notation, for messages.
fn show(e: &Expr, names: &dyn Fn(VarId) -> String) -> String {
    match e {
        Expr::Const(v) => format!("{v}"),
        Expr::Var(v) => names(*v),
        Expr::Local(l) => format!("%{l}"),
        Expr::Time => "t".to_string(),
        Expr::Index => "i".to_string(),
        Expr::Unary(UnOp::Neg, a) => format!("-{}", show(a, names)),
        Expr::Unary(UnOp::Not, a) => format!("not {}", show(a, names)),
        Expr::Binary(op @ (BinOp::Min | BinOp::Max), a, b) => {
            format!("{}({}, {})", op.symbol(), show(a, names), show(b, names))
        }
        Expr::Binary(op, a, b) => {
            let side = |x: &Expr| match x {
                Expr::Binary(..) | Expr::Unary(..) => format!("({})", show(x, names)),
                _ => show(x, names),
            };
            format!("{} {} {}", side(a), op.symbol(), side(b))
        }
        Expr::Call(f, a) => format!("{f}({})", show(a, names)),
        Expr::Select(c, a, b) => format!(
            "if {} then {} else {}",
            show(c, names),
            show(a, names),
            show(b, names)
        ),
        Expr::Random { .. } => "random".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::interp::{self, StepInfo};
    use crate::ir::{Kernel, VarInfo, VarRole};

    fn var(v: VarId) -> Expr {
        Expr::Var(v)
    }

    fn c(x: f64) -> Expr {
        Expr::c(x)
    }

    /// A one-element simulation of the emitted statements.
    struct Sim {
        kernel: Kernel,
        arrays: Vec<Vec<f64>>,
        dt: f64,
        step: u64,
        integration: Integration,
    }

    /// A kernel over dimensionless state arrays named `names` that runs `integration`.
    fn state_kernel(names: &[&str], integration: &Integration, builder: &Builder) -> Kernel {
        Kernel {
            name: "test".to_string(),
            vars: names
                .iter()
                .map(|n| VarInfo {
                    access: Default::default(),
                    name: n.to_string(),
                    role: VarRole::State,
                    unit: "1".to_string(),
                    scale: 1.0,
                    storage: Default::default(),
                })
                .collect(),
            n_locals: builder.n_locals,
            n_draws: builder.n_draws,
            body: integration.stmts.clone(),
            notes: vec![integration.reason.clone()],
        }
    }

    impl Sim {
        fn new(names: &[&str], init: &[f64], odes: &[Ode], forced: Option<Method>, dt: f64) -> Sim {
            let mut builder = Builder::default();
            let names_fn = |v: VarId| names[v as usize].to_string();
            let integration = integrate(odes, forced, dt, &mut builder, &names_fn).unwrap();
            let kernel = state_kernel(names, &integration, &builder);
            Sim {
                kernel,
                arrays: init.iter().map(|x| vec![*x]).collect(),
                dt,
                step: 0,
                integration,
            }
        }

        fn step(&mut self) {
            let mut refs: Vec<&mut [f64]> =
                self.arrays.iter_mut().map(|a| a.as_mut_slice()).collect();
            let info = StepInfo {
                step: self.step,
                t: self.step as f64 * self.dt,
                seed: 1,
                stream: 0,
            };
            interp::run(&self.kernel, &mut refs, 0, 1, info, &mut Vec::new());
            self.step += 1;
        }

        fn get(&self, v: VarId) -> f64 {
            self.arrays[v as usize][0]
        }

        fn t(&self) -> f64 {
            self.step as f64 * self.dt
        }
    }

    fn assert_close(a: &[f64], b: &[f64], tol: f64) {
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= tol, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn method_names_round_trip() {
        for m in Method::ALL {
            assert_eq!(Method::parse(m.name()), Some(m));
        }
        assert_eq!(Method::parse("midpoint"), None);
    }

    #[test]
    fn expm_matches_closed_forms() {
        // Diagonal.
        let e = expm(&[-0.3, 0.0, 0.0, 2.5], 2);
        assert_close(
            &e,
            &[(-0.3f64).exp(), 0.0, 0.0, 2.5f64.exp()],
            1e-15 * 2.5f64.exp(),
        );
        assert_eq!(e[1], 0.0);
        // Rotation, small and large angle (the latter exercises squaring).
        for theta in [0.1f64, 1.0, 10.0] {
            let e = expm(&[0.0, theta, -theta, 0.0], 2);
            let (s, co) = theta.sin_cos();
            assert_close(&e, &[co, s, -s, co], 2e-14 * theta.max(1.0));
        }
        // Jordan block [[a, 1], [0, a]] → e^a [[1, 1], [0, 1]].
        for a in [-2.0f64, 0.0, 0.5, 3.0] {
            let e = expm(&[a, 1.0, 0.0, a], 2);
            let ea = a.exp();
            for (x, y) in e.iter().zip([ea, ea, 0.0, ea]) {
                assert!((x - y).abs() <= 1e-14 * ea, "a = {a}: {e:?}");
            }
        }
        // A badly scaled system, as SI units give for iaf_psc_exp: dV/dt = -V/tau_m + I/C_m,
        // dI/dt = -I/tau_s, with 1/C_m = 4e9 next to rates of ~100. Closed form:
        // Phi_VI = (1/C_m) (e^{-h/tau_s} - e^{-h/tau_m}) / (1/tau_m - 1/tau_s).
        let (tau_m, tau_s, c_m, h) = (10e-3f64, 2e-3f64, 250e-12f64, 1e-4f64);
        let a = [-1.0 / tau_m * h, h / c_m, 0.0, -1.0 / tau_s * h];
        let e = expm(&a, 2);
        let (em, es) = ((-h / tau_m).exp(), (-h / tau_s).exp());
        let coupling = (es - em) / (c_m * (1.0 / tau_m - 1.0 / tau_s));
        for (x, y) in e.iter().zip([em, coupling, 0.0, es]) {
            assert!((x - y).abs() <= 1e-14 * y.abs(), "{x} vs {y} in {e:?}");
        }
        // 3x3 nilpotent: exp(N) = I + N + N²/2.
        let e = expm(&[0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0], 3);
        assert_eq!(e, vec![1.0, 1.0, 0.5, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0]);
        // Van Loan for a pure integrator: Φ = 1, Ψ = dt.
        let (phi, psi) = propagators(&[0.0], 1, 1e-4);
        assert_eq!(phi, vec![1.0]);
        assert!((psi[0] - 1e-4).abs() <= 1e-20);
    }

    const TAU_M: f64 = 0.02;
    const TAU_I: f64 = 0.01;
    const V_REST: f64 = -0.049;

    /// The CUBA neuron (v, ge, gi = vars 0, 1, 2).
    fn cuba(tau_e: f64) -> Vec<Ode> {
        let dv = Expr::div(
            Expr::sub(Expr::add(var(1), var(2)), Expr::sub(var(0), c(V_REST))),
            c(TAU_M),
        );
        vec![
            Ode {
                var: 0,
                rhs: dv,
                hold: None,
            },
            Ode {
                var: 1,
                rhs: Expr::div(Expr::neg(var(1)), c(tau_e)),
                hold: None,
            },
            Ode {
                var: 2,
                rhs: Expr::div(Expr::neg(var(2)), c(TAU_I)),
                hold: None,
            },
        ]
    }

    /// The contribution to v - v_rest of a conductance g0·exp(-t/tau) fed through tau_m, with
    /// v starting at rest: K (exp(-t/tau) - exp(-t/tau_m)), K = g0 tau / (tau - tau_m); for
    /// tau == tau_m the limit g0 (t/tau_m) exp(-t/tau_m).
    fn response(g0: f64, tau: f64, t: f64) -> f64 {
        if tau == TAU_M {
            g0 * t / TAU_M * (-t / TAU_M).exp()
        } else {
            g0 * tau / (tau - TAU_M) * ((-t / tau).exp() - (-t / TAU_M).exp())
        }
    }

    fn check_cuba(tau_e: f64) {
        let (v0, ge0, gi0) = (-0.055, 0.001, -0.002);
        let dt = 1e-4;
        let mut sim = Sim::new(&["v", "ge", "gi"], &[v0, ge0, gi0], &cuba(tau_e), None, dt);
        assert_eq!(sim.integration.method, Method::Exact);
        assert_eq!(
            sim.integration.reason,
            "exact: linear with constant coefficients (3 states, propagator computed for dt = 0.1 ms)"
        );
        // Errors are measured against the largest excursion of v from rest (|v - v_rest|
        // reaches 6 mV), which is stricter than dividing by |v| (~50 mV), and against the
        // initial value for the conductances.
        let (mut err_v, mut max_dev, mut err_g) = (0.0f64, 0.0f64, 0.0f64);
        for _ in 0..10_000 {
            sim.step();
            let t = sim.t();
            let ge = ge0 * (-t / tau_e).exp();
            let gi = gi0 * (-t / TAU_I).exp();
            let v = V_REST
                + (v0 - V_REST) * (-t / TAU_M).exp()
                + response(ge0, tau_e, t)
                + response(gi0, TAU_I, t);
            err_v = err_v.max((sim.get(0) - v).abs());
            max_dev = max_dev.max((v - V_REST).abs());
            err_g = err_g
                .max((sim.get(1) - ge).abs() / ge0)
                .max((sim.get(2) - gi).abs() / gi0.abs());
        }
        let rel = err_v / max_dev;
        eprintln!("CUBA tau_e = {tau_e}: max |v err| / max |v - v_rest| = {rel:e}, conductances {err_g:e}");
        assert!(rel < 1e-10, "{rel}");
        assert!(err_g < 1e-10, "{err_g}");
    }

    #[test]
    fn exact_cuba_matches_analytic_solution() {
        check_cuba(0.005);
    }

    #[test]
    fn exact_cuba_degenerate_time_constants() {
        check_cuba(TAU_M);
    }

    #[test]
    fn exact_with_input_array() {
        // dv/dt = (E_L - v)/tau + I/C with I a per-element array (var 1).
        let (e_l, tau, cap, current) = (-0.07, 0.01, 2.5e-10, 1e-10);
        let rhs = Expr::add(
            Expr::div(Expr::sub(c(e_l), var(0)), c(tau)),
            Expr::div(var(1), c(cap)),
        );
        let odes = [Ode {
            var: 0,
            rhs,
            hold: None,
        }];
        let dt = 1e-4;
        let mut sim = Sim::new(&["v", "I"], &[e_l, current], &odes, None, dt);
        assert_eq!(sim.integration.method, Method::Exact);
        let v_inf = e_l + current * tau / cap;
        let mut err = 0.0f64;
        for _ in 0..10_000 {
            sim.step();
            let v = v_inf + (e_l - v_inf) * (-sim.t() / tau).exp();
            err = err.max((sim.get(0) - v).abs());
        }
        let rel = err / (v_inf - e_l).abs();
        eprintln!("input array: max |v err| / |v_inf - E_L| = {rel:e}");
        assert!(rel < 1e-10, "{rel}");
        assert_eq!(sim.get(1), current);
    }

    #[test]
    fn exact_pure_integrator() {
        // dx/dt = r (an array): singular A.
        let odes = [Ode {
            var: 0,
            rhs: var(1),
            hold: None,
        }];
        let mut sim = Sim::new(&["x", "r"], &[1.0, 3.0], &odes, None, 1e-3);
        assert_eq!(sim.integration.method, Method::Exact);
        for _ in 0..1000 {
            sim.step();
        }
        assert!((sim.get(0) - 4.0).abs() < 1e-12, "{}", sim.get(0));
    }

    /// Runs `odes` to time `t_end` and returns the error in var 0.
    fn final_error(
        names: &[&str],
        init: &[f64],
        odes: &[Ode],
        method: Method,
        dt: f64,
        t_end: f64,
        exact: f64,
    ) -> f64 {
        let mut sim = Sim::new(names, init, odes, Some(method), dt);
        let steps = (t_end / dt).round() as usize;
        for _ in 0..steps {
            sim.step();
        }
        (sim.get(0) - exact).abs()
    }

    fn orders(errors: &[f64]) -> Vec<f64> {
        errors.windows(2).map(|w| (w[0] / w[1]).log2()).collect()
    }

    #[test]
    fn observed_orders_of_convergence() {
        // dx/dt = -x², x(0) = 1 → x = 1/(1+t).
        let square = [Ode {
            var: 0,
            rhs: Expr::neg(Expr::mul(var(0), var(0))),
            hold: None,
        }];
        // dx/dt = cos(t), x(0) = 0 → sin t (exercises time within stages).
        let cosine = [Ode {
            var: 0,
            rhs: Expr::call(Func::Cos, Expr::Time),
            hold: None,
        }];
        // dx/dt = -y x, dy/dt = -y, x(0) = y(0) = 1 → x = exp(e^{-t} - 1): conditionally linear.
        let cond = [
            Ode {
                var: 0,
                rhs: Expr::neg(Expr::mul(var(1), var(0))),
                hold: None,
            },
            Ode {
                var: 1,
                rhs: Expr::neg(var(1)),
                hold: None,
            },
        ];
        let t_end = 1.0;
        // (label, system, initial values, exact x(1), method, coarsest dt, expected order)
        type Case<'a> = (&'a str, &'a [Ode], &'a [f64], f64, Method, f64, f64);
        let cases: [Case; 7] = [
            ("euler -x^2", &square, &[1.0], 0.5, Method::Euler, 0.01, 1.0),
            ("rk2 -x^2", &square, &[1.0], 0.5, Method::Rk2, 0.01, 2.0),
            ("rk4 -x^2", &square, &[1.0], 0.5, Method::Rk4, 0.1, 4.0),
            (
                "rk2 cos t",
                &cosine,
                &[0.0],
                1f64.sin(),
                Method::Rk2,
                0.05,
                2.0,
            ),
            (
                "rk4 cos t",
                &cosine,
                &[0.0],
                1f64.sin(),
                Method::Rk4,
                0.1,
                4.0,
            ),
            (
                "exp_euler -yx",
                &cond,
                &[1.0, 1.0],
                ((-1f64).exp() - 1.0).exp(),
                Method::ExpEuler,
                0.01,
                1.0,
            ),
            (
                "euler -yx",
                &cond,
                &[1.0, 1.0],
                ((-1f64).exp() - 1.0).exp(),
                Method::Euler,
                0.01,
                1.0,
            ),
        ];
        for (label, odes, init, exact, method, h, order) in cases {
            let names: &[&str] = if odes.len() == 2 { &["x", "y"] } else { &["x"] };
            let errors: Vec<f64> = [h, h / 2.0, h / 4.0]
                .iter()
                .map(|&dt| final_error(names, init, odes, method, dt, t_end, exact))
                .collect();
            let measured = orders(&errors);
            eprintln!("{label}: errors {errors:?}, orders {measured:?}");
            for p in measured {
                assert!(
                    (p - order).abs() <= 0.3,
                    "{label}: order {p}, expected {order}"
                );
            }
        }
        // Exponential Euler is exact for a linear ODE with a constant coefficient.
        let linear = [Ode {
            var: 0,
            rhs: Expr::add(Expr::mul(c(-2.0), var(0)), c(1.0)),
            hold: None,
        }];
        let exact = 0.5 + 0.5 * (-2.0f64).exp();
        let err = final_error(&["x"], &[1.0], &linear, Method::ExpEuler, 0.1, 1.0, exact);
        eprintln!("exp_euler on x' = 1 - 2x: error {err:e}");
        assert!(err < 1e-14, "{err}");
        // ... and with a coefficient known only at run time (an array): same, via expm1.
        let linear = [Ode {
            var: 0,
            rhs: Expr::add(Expr::mul(Expr::neg(var(1)), var(0)), c(1.0)),
            hold: None,
        }];
        let err = final_error(
            &["x", "k"],
            &[1.0, 2.0],
            &linear,
            Method::ExpEuler,
            0.1,
            1.0,
            exact,
        );
        assert!(err < 1e-14, "{err}");
        // A zero coefficient at run time reduces to Euler (here exact: dx/dt = 1).
        let err = final_error(
            &["x", "k"],
            &[1.0, 0.0],
            &linear,
            Method::ExpEuler,
            0.1,
            1.0,
            2.0,
        );
        assert!(err < 1e-14, "{err}");
    }

    #[test]
    fn held_state_keeps_its_value() {
        // CUBA with v held while `refr` (var 3) is nonzero.
        let mut odes = cuba(0.005);
        odes[0].hold = Some(var(3));
        let (v0, ge0, gi0) = (-0.055, 0.001, -0.002);
        let dt = 1e-4;
        let mut sim = Sim::new(
            &["v", "ge", "gi", "refr"],
            &[v0, ge0, gi0, 1.0],
            &odes,
            None,
            dt,
        );
        for _ in 0..100 {
            sim.step();
        }
        let t = sim.t();
        assert_eq!(sim.get(0), v0);
        assert!((sim.get(1) - ge0 * (-t / 0.005).exp()).abs() < 1e-15);
        assert!((sim.get(2) - gi0 * (-t / TAU_I).exp()).abs() < 1e-15);
        sim.arrays[3][0] = 0.0;
        sim.step();
        assert_ne!(sim.get(0), v0);

        // A state coupled to the held one sees the held value for the whole step:
        // dv/dt = (E_L - v)/tau_m, dw/dt = (a (v - E_L) - w)/tau_w with v held.
        let (e_l, a, tau_w) = (-0.07, 2.0, 0.1);
        let odes = [
            Ode {
                var: 0,
                rhs: Expr::div(Expr::sub(c(e_l), var(0)), c(TAU_M)),
                hold: Some(var(2)),
            },
            Ode {
                var: 1,
                rhs: Expr::div(
                    Expr::sub(Expr::mul(c(a), Expr::sub(var(0), c(e_l))), var(1)),
                    c(tau_w),
                ),
                hold: None,
            },
        ];
        let v0 = -0.05;
        let w_inf = a * (v0 - e_l);
        for method in [Method::Exact, Method::Rk4, Method::Euler, Method::ExpEuler] {
            let mut sim = Sim::new(
                &["v", "w", "refr"],
                &[v0, 0.0, 1.0],
                &odes,
                Some(method),
                dt,
            );
            for _ in 0..1000 {
                sim.step();
            }
            assert_eq!(sim.get(0), v0, "{method:?}");
            let w = w_inf * (1.0 - (-sim.t() / tau_w).exp());
            let err = (sim.get(1) - w).abs() / w_inf;
            eprintln!("hold, {method:?}: w relative error {err:e}");
            let tol = if method == Method::Euler { 1e-3 } else { 1e-9 };
            assert!(err < tol, "{method:?}: {err}");
        }
    }

    #[test]
    fn hold_reading_a_state_sees_the_start_of_step_value() {
        // y is stored before x; x's hold reads y and must see y at the start of the step.
        let odes = [
            Ode {
                var: 1,
                rhs: c(1.0),
                hold: None,
            },
            Ode {
                var: 0,
                rhs: c(1.0),
                hold: Some(Expr::bin(BinOp::Gt, var(1), c(0.5))),
            },
        ];
        // (rkf45 is emitted by `adaptive`, whose sub-steps see the hold at each sub-step.)
        for method in Method::ALL.into_iter().filter(|m| *m != Method::Rkf45) {
            let mut sim = Sim::new(&["x", "y"], &[0.0, 0.45], &odes, Some(method), 0.1);
            sim.step();
            assert!(
                (sim.get(0) - 0.1).abs() < 1e-15,
                "{method:?}: {}",
                sim.get(0)
            );
            sim.step();
            assert!(
                (sim.get(0) - 0.1).abs() < 1e-15,
                "{method:?}: {}",
                sim.get(0)
            );
        }
    }

    fn choose(names: &[&str], odes: &[Ode], forced: Option<Method>) -> Result<Integration, String> {
        let mut builder = Builder::default();
        integrate(odes, forced, 1e-4, &mut builder, &|v| {
            names[v as usize].to_string()
        })
    }

    #[test]
    fn method_choice() {
        let cuba_names = ["v", "ge", "gi"];
        assert_eq!(
            choose(&cuba_names, &cuba(0.005), None).unwrap().method,
            Method::Exact
        );

        // COBA: dv/dt = (ge (E_e - v) + (E_l - v))/tau, dge/dt = -ge/tau_e.
        let coba = [
            Ode {
                var: 0,
                rhs: Expr::div(
                    Expr::add(
                        Expr::mul(var(1), Expr::sub(c(0.0), var(0))),
                        Expr::sub(c(-0.06), var(0)),
                    ),
                    c(0.02),
                ),
                hold: None,
            },
            Ode {
                var: 1,
                rhs: Expr::div(Expr::neg(var(1)), c(0.005)),
                hold: None,
            },
        ];
        let chosen = choose(&["v", "ge"], &coba, None).unwrap();
        assert_eq!(chosen.method, Method::ExpEuler);
        assert_eq!(
            chosen.reason,
            "exp_euler: each ODE is linear in its own state (2 states); not exact because dv/dt is nonlinear in v and ge: `ge * (0 - v)`"
        );

        // Izhikevich: dv/dt = 0.04 v² + 5 v + 140 - u + I, du/dt = a (b v - u).
        let izh = [
            Ode {
                var: 0,
                rhs: Expr::add(
                    Expr::sub(
                        Expr::add(
                            Expr::add(
                                Expr::mul(c(0.04), Expr::mul(var(0), var(0))),
                                Expr::mul(c(5.0), var(0)),
                            ),
                            c(140.0),
                        ),
                        var(1),
                    ),
                    var(2),
                ),
                hold: None,
            },
            Ode {
                var: 1,
                rhs: Expr::mul(c(0.02), Expr::sub(Expr::mul(c(0.2), var(0)), var(1))),
                hold: None,
            },
        ];
        let names = ["v", "u", "I"];
        let chosen = choose(&names, &izh, None).unwrap();
        assert_eq!(chosen.method, Method::Rk4);
        assert_eq!(
            chosen.reason,
            "rk4: not conditionally linear because dv/dt is nonlinear in v: `v * v`"
        );

        let err = choose(&names, &izh, Some(Method::Exact)).unwrap_err();
        assert_eq!(
            err,
            "`method = exact` needs a linear system with constant coefficients, but dv/dt is nonlinear in v: `v * v`"
        );
        let err = choose(&names, &izh, Some(Method::ExpEuler)).unwrap_err();
        assert!(err.contains("dv/dt is nonlinear in v"), "{err}");
        assert!(choose(&["v", "ge"], &coba, Some(Method::Exact))
            .unwrap_err()
            .contains("ge * (0 - v)"));

        // A coefficient known only at run time (a per-element tau) is not exact.
        let per_tau = [Ode {
            var: 0,
            rhs: Expr::div(Expr::neg(var(0)), var(1)),
            hold: None,
        }];
        assert_eq!(
            choose(&["x", "tau"], &per_tau, None).unwrap().method,
            Method::ExpEuler
        );
        let err = choose(&["x", "tau"], &per_tau, Some(Method::Exact)).unwrap_err();
        assert!(
            err.contains(
                "the coefficient of x in dx/dt, `-1 / tau`, is not a compile-time constant"
            ),
            "{err}"
        );

        // Forced methods are reported as forced.
        let forced = choose(&cuba_names, &cuba(0.005), Some(Method::Rk2)).unwrap();
        assert_eq!(
            (forced.method, forced.reason.as_str()),
            (Method::Rk2, "rk2: forced by `method = rk2` (3 states)")
        );

        // Random draws, and the empty system.
        let noisy = [Ode {
            var: 0,
            rhs: Expr::Random {
                kind: crate::ir::Random::Normal,
                draw: 0,
                arg: Box::new(c(0.0)),
            },
            hold: None,
        }];
        assert_eq!(
            choose(&["x"], &noisy, None).unwrap_err(),
            "random draws are not allowed in ODEs"
        );
        let empty = choose(&[], &[], None).unwrap();
        assert_eq!(
            (empty.method, empty.reason.as_str(), empty.stmts.len()),
            (Method::Exact, "no ODEs", 0)
        );
    }

    fn print(names: &[&str], odes: &[Ode], forced: Option<Method>) -> (Integration, String) {
        let mut builder = Builder::default();
        let got = integrate(odes, forced, 1e-4, &mut builder, &|v| {
            names[v as usize].to_string()
        })
        .unwrap();
        let kernel = state_kernel(names, &got, &builder);
        let text = crate::ir::print::kernel(&kernel);
        eprintln!("{text}");
        (got, text)
    }

    #[test]
    fn emitted_code_is_small() {
        // CUBA: one multiply-add per propagator entry, the constant input folded.
        let (got, text) = print(&["v", "ge", "gi"], &cuba(0.005), None);
        assert_eq!(got.stmts.len(), 6);
        assert!(text.contains("%1 = (9.801986733067554e-1 * ge)"), "{text}");
        // COBA under exponential Euler: v's coefficient depends on ge, so expm1 at run time;
        // ge's is constant, so a single multiplication.
        let coba = [
            Ode {
                var: 0,
                rhs: Expr::div(
                    Expr::add(
                        Expr::mul(var(1), Expr::sub(c(0.0), var(0))),
                        Expr::sub(c(-0.06), var(0)),
                    ),
                    c(0.02),
                ),
                hold: Some(var(2)),
            },
            Ode {
                var: 1,
                rhs: Expr::div(Expr::neg(var(1)), c(0.005)),
                hold: None,
            },
        ];
        let (got, text) = print(&["v", "ge", "refr"], &coba, None);
        assert_eq!(got.method, Method::ExpEuler);
        assert!(text.contains("expm1"), "{text}");
        assert!(text.contains("ge := %"), "{text}");
        print(&["v", "ge", "refr"], &coba, Some(Method::Rk2));
    }
}
