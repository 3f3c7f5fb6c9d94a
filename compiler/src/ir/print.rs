//! The text form of kernels, for `snnc ir` and golden tests.
//!
//! Stable and explicit: every variable is printed by name, every local as `%n`, and constants
//! with enough digits to round-trip. It reads kernels and writes strings; nothing else.

use super::{Access, Expr, Kernel, Random, Stmt, UnOp, VarRole};
use std::fmt::Write as _;

pub fn kernel(kernel: &Kernel) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "kernel {} {{", kernel.name);
    for note in &kernel.notes {
        let _ = writeln!(out, "    // {note}");
    }
    for (i, var) in kernel.vars.iter().enumerate() {
        let role = match var.role {
            VarRole::State => "state",
            VarRole::Param => "param",
            VarRole::Internal => "internal",
        };
        let access = match var.access {
            Access::Element => String::new(),
            Access::Scalar => ", one per call".to_string(),
            Access::Gather(g) => format!(", gathered through index {g}"),
        };
        let _ = writeln!(
            out,
            "    var #{i} {}: {role} (recorded in {}{access})",
            var.name, var.unit
        );
    }
    for stmt in &kernel.body {
        write_stmt(kernel, stmt, 1, &mut out);
    }
    out.push_str("}\n");
    out
}

fn write_stmt(kernel: &Kernel, stmt: &Stmt, depth: usize, out: &mut String) {
    let indent = "    ".repeat(depth);
    match stmt {
        Stmt::Let(local, e) => {
            let _ = writeln!(out, "{indent}%{local} = {}", expr(kernel, e));
        }
        Stmt::Store(var, e) => {
            let _ = writeln!(
                out,
                "{indent}{} := {}",
                var_name(kernel, *var),
                expr(kernel, e)
            );
        }
        Stmt::If(c, then_body, else_body) => {
            let _ = writeln!(out, "{indent}if {} {{", expr(kernel, c));
            for s in then_body {
                write_stmt(kernel, s, depth + 1, out);
            }
            if !else_body.is_empty() {
                let _ = writeln!(out, "{indent}}} else {{");
                for s in else_body {
                    write_stmt(kernel, s, depth + 1, out);
                }
            }
            let _ = writeln!(out, "{indent}}}");
        }
        Stmt::While {
            cond,
            max_iterations,
            body,
        } => {
            let _ = writeln!(
                out,
                "{indent}while {} (at most {max_iterations}) {{",
                expr(kernel, cond)
            );
            for s in body {
                write_stmt(kernel, s, depth + 1, out);
            }
            let _ = writeln!(out, "{indent}}}");
        }
        Stmt::Spike => {
            let _ = writeln!(out, "{indent}spike");
        }
    }
}

fn var_name(kernel: &Kernel, var: u32) -> String {
    kernel
        .vars
        .get(var as usize)
        .map_or_else(|| format!("#{var}"), |v| v.name.clone())
}

/// Formats a constant so it reads back to the same bits.
pub fn number(value: f64) -> String {
    if value.is_finite() && value == value.trunc() && value.abs() < 1e15 {
        format!("{value:.1}")
    } else {
        format!("{value:e}")
    }
}

pub fn expr(kernel: &Kernel, e: &Expr) -> String {
    match e {
        Expr::Const(v) => number(*v),
        Expr::Var(v) => var_name(kernel, *v),
        Expr::Local(l) => format!("%{l}"),
        Expr::Time => "t".to_string(),
        Expr::Index => "i".to_string(),
        Expr::Unary(UnOp::Neg, a) => format!("-{}", expr(kernel, a)),
        Expr::Unary(UnOp::Not, a) => format!("not {}", expr(kernel, a)),
        Expr::Binary(op, a, b) => match op {
            super::BinOp::Min | super::BinOp::Max => {
                format!("{}({}, {})", op.symbol(), expr(kernel, a), expr(kernel, b))
            }
            _ => format!("({} {} {})", expr(kernel, a), op.symbol(), expr(kernel, b)),
        },
        Expr::Call(f, a) => format!("{f}({})", expr(kernel, a)),
        Expr::Select(c, a, b) => format!(
            "select({}, {}, {})",
            expr(kernel, c),
            expr(kernel, a),
            expr(kernel, b)
        ),
        Expr::Random { kind, draw, arg } => match kind {
            Random::Uniform => format!("uniform#{draw}()"),
            Random::Normal => format!("normal#{draw}()"),
            Random::Exponential => format!("exponential#{draw}()"),
            Random::Poisson => format!("poisson#{draw}({})", expr(kernel, arg)),
        },
    }
}
