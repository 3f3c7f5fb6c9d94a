//! Dead-code elimination: lets whose local is never read, conditionals with two empty
//! branches, and loops with an empty body are removed. Stores and spikes are what a kernel does, so they always stay.

use crate::ir::{Expr, Kernel, LocalId, Stmt};
use std::collections::HashSet;

pub fn run(kernel: &mut Kernel) {
    // Removing one let can make another dead; repeat until nothing changes.
    loop {
        let mut used = HashSet::new();
        collect_block(&kernel.body, &mut used);
        let before = count(&kernel.body);
        kernel.body = sweep(std::mem::take(&mut kernel.body), &used);
        if count(&kernel.body) == before {
            break;
        }
    }
}

fn collect_block(stmts: &[Stmt], used: &mut HashSet<LocalId>) {
    for stmt in stmts {
        match stmt {
            Stmt::Let(_, e) | Stmt::Store(_, e) => collect(e, used),
            Stmt::If(c, a, b) => {
                collect(c, used);
                collect_block(a, used);
                collect_block(b, used);
            }
            Stmt::While { cond, body, .. } => {
                collect(cond, used);
                collect_block(body, used);
            }
            Stmt::Spike => {}
        }
    }
}

fn collect(e: &Expr, used: &mut HashSet<LocalId>) {
    e.visit(&mut |x| {
        if let Expr::Local(l) = x {
            used.insert(*l);
        }
    });
}

fn sweep(stmts: Vec<Stmt>, used: &HashSet<LocalId>) -> Vec<Stmt> {
    stmts
        .into_iter()
        .filter_map(|stmt| match stmt {
            Stmt::Let(l, _) if !used.contains(&l) => None,
            Stmt::If(c, a, b) => {
                let (a, b) = (sweep(a, used), sweep(b, used));
                if a.is_empty() && b.is_empty() {
                    None
                } else {
                    Some(Stmt::If(c, a, b))
                }
            }
            // A loop with an empty body changes nothing (its condition is pure).
            Stmt::While {
                cond,
                max_iterations,
                body,
            } => {
                let body = sweep(body, used);
                (!body.is_empty()).then_some(Stmt::While {
                    cond,
                    max_iterations,
                    body,
                })
            }
            other => Some(other),
        })
        .collect()
}

fn count(stmts: &[Stmt]) -> usize {
    stmts
        .iter()
        .map(|s| match s {
            Stmt::If(_, a, b) => 1 + count(a) + count(b),
            Stmt::While { body, .. } => 1 + count(body),
            _ => 1,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unused_lets_go_and_stores_stay() {
        let mut k = Kernel {
            name: "k".into(),
            vars: Vec::new(),
            n_locals: 2,
            n_draws: 0,
            body: vec![
                Stmt::Let(0, Expr::c(1.0)),
                Stmt::Let(1, Expr::Local(0)),
                Stmt::Store(0, Expr::c(2.0)),
                Stmt::If(Expr::Var(0), Vec::new(), Vec::new()),
            ],
            notes: Vec::new(),
        };
        run(&mut k);
        assert_eq!(k.body, vec![Stmt::Store(0, Expr::c(2.0))]);
    }
}
