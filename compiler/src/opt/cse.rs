//! Common-subexpression elimination.
//!
//! Within one block, a pure expression (no random draw) computed twice from the same inputs is
//! computed once into a new local before its first use. "The same inputs" is exact: every
//! variable read carries the number of stores to that variable seen so far in the block, so an
//! expression read before and after `v := ...` is two different expressions. Nested blocks are
//! optimised on their own and share nothing with their parent, so a local defined in one
//! branch is never read on a path that skipped it. A loop body is a nested block too, and a
//! loop's condition is left as it is: it is evaluated again after the body's stores, so it
//! must not be replaced by a value computed before the loop. Inlined `let`s and integrator formulas are
//! where this pays: the Hodgkin-Huxley rate functions appear several times each.

use crate::ir::{Expr, Kernel, LocalId, Stmt, VarId};
use std::collections::HashMap;

pub fn run(kernel: &mut Kernel) {
    let mut next_local = kernel.n_locals;
    kernel.body = cse_block(std::mem::take(&mut kernel.body), &mut next_local);
    kernel.n_locals = next_local;
}

/// A structural key for an expression, with store generations for variable reads.
fn key(e: &Expr, generations: &HashMap<VarId, u32>) -> String {
    match e {
        Expr::Const(v) => format!("c{:x}", v.to_bits()),
        Expr::Var(v) => format!("v{v}.{}", generations.get(v).copied().unwrap_or(0)),
        Expr::Local(l) => format!("l{l}"),
        Expr::Time => "t".to_string(),
        Expr::Index => "i".to_string(),
        Expr::Unary(op, a) => format!("({op:?} {})", key(a, generations)),
        Expr::Binary(op, a, b) => {
            format!("({op:?} {} {})", key(a, generations), key(b, generations))
        }
        Expr::Call(f, a) => format!("({f:?} {})", key(a, generations)),
        Expr::Select(c, a, b) => format!(
            "(sel {} {} {})",
            key(c, generations),
            key(a, generations),
            key(b, generations)
        ),
        Expr::Random { draw, .. } => format!("r{draw}"),
    }
}

fn is_candidate(e: &Expr) -> bool {
    !matches!(
        e,
        Expr::Const(_) | Expr::Var(_) | Expr::Local(_) | Expr::Time | Expr::Index
    ) && !e.is_random()
}

fn count(e: &Expr, generations: &HashMap<VarId, u32>, counts: &mut HashMap<String, u32>) {
    if is_candidate(e) {
        let entry = counts.entry(key(e, generations)).or_default();
        *entry += 1;
        // A repeat will become one local, so its parts occur only once more: at its first use.
        if *entry > 1 {
            return;
        }
    }
    match e {
        Expr::Unary(_, a) | Expr::Call(_, a) => count(a, generations, counts),
        Expr::Binary(_, a, b) => {
            count(a, generations, counts);
            count(b, generations, counts);
        }
        Expr::Select(c, a, b) => {
            count(c, generations, counts);
            count(a, generations, counts);
            count(b, generations, counts);
        }
        _ => {}
    }
}

struct Rewriter<'a> {
    counts: &'a HashMap<String, u32>,
    available: HashMap<String, LocalId>,
    next_local: &'a mut u32,
    hoisted: Vec<Stmt>,
}

impl Rewriter<'_> {
    fn rewrite(&mut self, e: Expr, generations: &HashMap<VarId, u32>) -> Expr {
        if is_candidate(&e) {
            let k = key(&e, generations);
            if let Some(&local) = self.available.get(&k) {
                return Expr::Local(local);
            }
            if self.counts.get(&k).copied().unwrap_or(0) >= 2 {
                let inner = self.rewrite_children(e, generations);
                let local = *self.next_local;
                *self.next_local += 1;
                self.hoisted.push(Stmt::Let(local, inner));
                self.available.insert(k, local);
                return Expr::Local(local);
            }
        }
        self.rewrite_children(e, generations)
    }

    fn rewrite_children(&mut self, e: Expr, generations: &HashMap<VarId, u32>) -> Expr {
        match e {
            Expr::Unary(op, a) => Expr::Unary(op, Box::new(self.rewrite(*a, generations))),
            Expr::Call(f, a) => Expr::call(f, self.rewrite(*a, generations)),
            Expr::Binary(op, a, b) => {
                let a = self.rewrite(*a, generations);
                Expr::bin(op, a, self.rewrite(*b, generations))
            }
            // Both arms of a select are evaluated, so sharing across them is safe.
            Expr::Select(c, a, b) => {
                let c = self.rewrite(*c, generations);
                let a = self.rewrite(*a, generations);
                Expr::select(c, a, self.rewrite(*b, generations))
            }
            Expr::Random { kind, draw, arg } => Expr::Random {
                kind,
                draw,
                arg: Box::new(self.rewrite(*arg, generations)),
            },
            leaf => leaf,
        }
    }
}

fn cse_block(stmts: Vec<Stmt>, next_local: &mut u32) -> Vec<Stmt> {
    // Pass 1: count each expression under its generation-aware key.
    let mut generations: HashMap<VarId, u32> = HashMap::new();
    let mut counts: HashMap<String, u32> = HashMap::new();
    for stmt in &stmts {
        match stmt {
            Stmt::Let(_, e) => count(e, &generations, &mut counts),
            Stmt::Store(v, e) => {
                count(e, &generations, &mut counts);
                *generations.entry(*v).or_default() += 1;
            }
            Stmt::If(c, a, b) => {
                count(c, &generations, &mut counts);
                for v in stored_vars(a).into_iter().chain(stored_vars(b)) {
                    *generations.entry(v).or_default() += 1;
                }
            }
            Stmt::While { body, .. } => {
                for v in stored_vars(body) {
                    *generations.entry(v).or_default() += 1;
                }
            }
            Stmt::Spike => {}
        }
    }
    // Pass 2: hoist repeated expressions before their first use.
    let mut generations: HashMap<VarId, u32> = HashMap::new();
    let mut rewriter = Rewriter {
        counts: &counts,
        available: HashMap::new(),
        next_local,
        hoisted: Vec::new(),
    };
    let mut out = Vec::with_capacity(stmts.len());
    for stmt in stmts {
        let rewritten = match stmt {
            Stmt::Let(l, e) => Stmt::Let(l, rewriter.rewrite(e, &generations)),
            Stmt::Store(v, e) => {
                let e = rewriter.rewrite(e, &generations);
                *generations.entry(v).or_default() += 1;
                Stmt::Store(v, e)
            }
            Stmt::If(c, a, b) => {
                let c = rewriter.rewrite(c, &generations);
                for v in stored_vars(&a).into_iter().chain(stored_vars(&b)) {
                    *generations.entry(v).or_default() += 1;
                }
                let a = cse_block(a, rewriter.next_local);
                let b = cse_block(b, rewriter.next_local);
                Stmt::If(c, a, b)
            }
            Stmt::While {
                cond,
                max_iterations,
                body,
            } => {
                for v in stored_vars(&body) {
                    *generations.entry(v).or_default() += 1;
                }
                Stmt::While {
                    cond,
                    max_iterations,
                    body: cse_block(body, rewriter.next_local),
                }
            }
            Stmt::Spike => Stmt::Spike,
        };
        out.append(&mut rewriter.hoisted);
        out.push(rewritten);
    }
    out
}

fn stored_vars(stmts: &[Stmt]) -> Vec<VarId> {
    let mut vars = Vec::new();
    for stmt in stmts {
        match stmt {
            Stmt::Store(v, _) => vars.push(*v),
            Stmt::If(_, a, b) => {
                vars.extend(stored_vars(a));
                vars.extend(stored_vars(b));
            }
            Stmt::While { body, .. } => vars.extend(stored_vars(body)),
            _ => {}
        }
    }
    vars
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{BinOp, Func};

    fn kernel(body: Vec<Stmt>) -> Kernel {
        Kernel {
            name: "k".into(),
            vars: Vec::new(),
            n_locals: 0,
            n_draws: 0,
            body,
            notes: Vec::new(),
        }
    }

    #[test]
    fn a_repeated_expression_is_computed_once() {
        let e = Expr::call(Func::Exp, Expr::bin(BinOp::Div, Expr::Var(0), Expr::c(2.0)));
        let mut k = kernel(vec![
            Stmt::Store(1, e.clone()),
            Stmt::Store(2, Expr::add(e.clone(), Expr::c(1.0))),
        ]);
        run(&mut k);
        assert_eq!(k.body.len(), 3);
        assert_eq!(k.body[0], Stmt::Let(0, e));
        assert_eq!(k.body[1], Stmt::Store(1, Expr::Local(0)));
        assert_eq!(
            k.body[2],
            Stmt::Store(2, Expr::add(Expr::Local(0), Expr::c(1.0)))
        );
    }

    #[test]
    fn a_store_in_between_makes_two_different_expressions() {
        let e = Expr::mul(Expr::Var(0), Expr::c(3.0));
        let mut k = kernel(vec![
            Stmt::Store(1, e.clone()),
            Stmt::Store(0, Expr::c(1.0)),
            Stmt::Store(2, e.clone()),
        ]);
        let before = k.body.clone();
        run(&mut k);
        assert_eq!(k.body, before);
    }

    #[test]
    fn random_draws_are_never_shared() {
        let r = Expr::Random {
            kind: crate::ir::Random::Uniform,
            draw: 0,
            arg: Box::new(Expr::c(0.0)),
        };
        let e = Expr::add(r, Expr::c(1.0));
        let mut k = kernel(vec![Stmt::Store(1, e.clone()), Stmt::Store(2, e)]);
        let before = k.body.clone();
        run(&mut k);
        assert_eq!(k.body, before);
    }
}
