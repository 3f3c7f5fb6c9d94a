//! Constant folding: operations on constants are computed at compile time, selects and
//! conditionals on constants keep only the branch taken, and a few identities that are exact
//! in IEEE arithmetic (`x * 1`, `x / 1`, `x - 0`) are removed.
//!
//! Uniform parameters reach this pass as constants, so folding is what specialises a kernel to
//! its population's parameter values. A local bound to a constant is replaced by the constant
//! wherever it is read: every local is defined exactly once (lowering, the integrators and CSE
//! all allocate fresh ones), so the substitution is valid everywhere the local is visible.

use crate::ir::interp;
use crate::ir::{BinOp, Expr, Kernel, LocalId, Stmt, UnOp};
use std::collections::HashMap;

pub fn run(kernel: &mut Kernel) {
    // Substituting one constant can make another let constant; repeat until nothing changes.
    loop {
        kernel.body = fold_block(std::mem::take(&mut kernel.body));
        let mut constants = HashMap::new();
        collect_constants(&kernel.body, &mut constants);
        if constants.is_empty() || !substitute_block(&mut kernel.body, &constants) {
            break;
        }
    }
}

fn collect_constants(stmts: &[Stmt], constants: &mut HashMap<LocalId, f64>) {
    for stmt in stmts {
        match stmt {
            Stmt::Let(l, Expr::Const(v)) => {
                constants.insert(*l, *v);
            }
            Stmt::If(_, a, b) => {
                collect_constants(a, constants);
                collect_constants(b, constants);
            }
            // A loop body's locals are defined once too (each iteration redefines them with
            // the same expression), so a constant one is the same constant in every iteration.
            Stmt::While { body, .. } => collect_constants(body, constants),
            _ => {}
        }
    }
}

/// Replaces reads of constant locals; returns whether anything changed.
fn substitute_block(stmts: &mut [Stmt], constants: &HashMap<LocalId, f64>) -> bool {
    let mut changed = false;
    for stmt in stmts {
        match stmt {
            Stmt::Let(_, e) | Stmt::Store(_, e) => changed |= substitute(e, constants),
            Stmt::If(c, a, b) => {
                changed |= substitute(c, constants);
                changed |= substitute_block(a, constants);
                changed |= substitute_block(b, constants);
            }
            Stmt::While { cond, body, .. } => {
                changed |= substitute(cond, constants);
                changed |= substitute_block(body, constants);
            }
            Stmt::Spike => {}
        }
    }
    changed
}

fn substitute(e: &mut Expr, constants: &HashMap<LocalId, f64>) -> bool {
    match e {
        Expr::Local(l) => match constants.get(l) {
            Some(v) => {
                *e = Expr::Const(*v);
                true
            }
            None => false,
        },
        Expr::Unary(_, a) | Expr::Call(_, a) => substitute(a, constants),
        Expr::Random { arg, .. } => substitute(arg, constants),
        Expr::Binary(_, a, b) => substitute(a, constants) | substitute(b, constants),
        Expr::Select(c, a, b) => {
            substitute(c, constants) | substitute(a, constants) | substitute(b, constants)
        }
        Expr::Const(_) | Expr::Var(_) | Expr::Time | Expr::Index => false,
    }
}

fn fold_block(stmts: Vec<Stmt>) -> Vec<Stmt> {
    let mut out = Vec::with_capacity(stmts.len());
    for stmt in stmts {
        match stmt {
            Stmt::Let(l, e) => out.push(Stmt::Let(l, fold(e))),
            Stmt::Store(v, e) => out.push(Stmt::Store(v, fold(e))),
            Stmt::Spike => out.push(Stmt::Spike),
            Stmt::If(c, a, b) => {
                let c = fold(c);
                let (a, b) = (fold_block(a), fold_block(b));
                match c {
                    Expr::Const(v) if v != 0.0 => out.extend(a),
                    Expr::Const(_) => out.extend(b),
                    c => out.push(Stmt::If(c, a, b)),
                }
            }
            Stmt::While {
                cond,
                max_iterations,
                body,
            } => {
                let cond = fold(cond);
                // A loop whose condition is false from the start never runs.
                if !matches!(cond, Expr::Const(v) if v == 0.0) && max_iterations > 0 {
                    out.push(Stmt::While {
                        cond,
                        max_iterations,
                        body: fold_block(body),
                    });
                }
            }
        }
    }
    out
}

/// Folds one expression, children first.
pub fn fold(e: Expr) -> Expr {
    match e {
        Expr::Unary(op, a) => match (op, fold(*a)) {
            (UnOp::Neg, Expr::Const(v)) => Expr::Const(-v),
            (UnOp::Not, Expr::Const(v)) => Expr::Const(if v == 0.0 { 1.0 } else { 0.0 }),
            (UnOp::Neg, Expr::Unary(UnOp::Neg, inner)) => *inner,
            (op, a) => Expr::Unary(op, Box::new(a)),
        },
        Expr::Binary(op, a, b) => {
            let (a, b) = (fold(*a), fold(*b));
            match (op, &a, &b) {
                (_, Expr::Const(x), Expr::Const(y)) => Expr::Const(interp::binary(op, *x, *y)),
                (BinOp::Mul, x, Expr::Const(y)) | (BinOp::Mul, Expr::Const(y), x) if *y == 1.0 => {
                    x.clone()
                }
                (BinOp::Div, x, Expr::Const(y)) if *y == 1.0 => x.clone(),
                (BinOp::Sub, x, Expr::Const(y)) if *y == 0.0 && y.is_sign_positive() => x.clone(),
                _ => Expr::bin(op, a, b),
            }
        }
        Expr::Call(f, a) => match fold(*a) {
            Expr::Const(v) => Expr::Const(interp::call(f, v)),
            a => Expr::call(f, a),
        },
        Expr::Select(c, a, b) => match fold(*c) {
            Expr::Const(v) if v != 0.0 => fold(*a),
            Expr::Const(_) => fold(*b),
            c => Expr::select(c, fold(*a), fold(*b)),
        },
        Expr::Random { kind, draw, arg } => Expr::Random {
            kind,
            draw,
            arg: Box::new(fold(*arg)),
        },
        leaf => leaf,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Func;

    #[test]
    fn folds_arithmetic_on_constants() {
        let e = Expr::add(Expr::c(2.0), Expr::mul(Expr::c(3.0), Expr::c(4.0)));
        assert_eq!(fold(e), Expr::c(14.0));
        assert_eq!(fold(Expr::call(Func::Exp, Expr::c(0.0))), Expr::c(1.0));
    }

    #[test]
    fn keeps_rewrites_that_could_change_bits() {
        // `x + 0` would turn -0.0 into +0.0, and `x * 0` would turn NaN into 0: both stay.
        let plus_zero = Expr::add(Expr::Var(0), Expr::c(0.0));
        assert_eq!(fold(plus_zero.clone()), plus_zero);
        let times_zero = Expr::mul(Expr::Var(0), Expr::c(0.0));
        assert_eq!(fold(times_zero.clone()), times_zero);
        assert_eq!(fold(Expr::mul(Expr::Var(0), Expr::c(1.0))), Expr::Var(0));
    }

    #[test]
    fn constant_conditions_keep_one_branch() {
        let mut k = Kernel {
            name: "k".into(),
            vars: Vec::new(),
            n_locals: 0,
            n_draws: 0,
            body: vec![Stmt::If(
                Expr::bin(BinOp::Lt, Expr::c(1.0), Expr::c(2.0)),
                vec![Stmt::Spike],
                vec![Stmt::Store(0, Expr::c(1.0))],
            )],
            notes: Vec::new(),
        };
        run(&mut k);
        assert_eq!(k.body, vec![Stmt::Spike]);
    }
}
