//! A text dump of checked models and networks: every variable with where it lives and its
//! unit, every equation with its verified dimension, every projection with its bound target.
//!
//! Golden tests compare it against files, so its format is stable and sorted; it reads the
//! resolved program only and prints no diagnostics.

use super::dims::{unit_dim, Dim};
use crate::ast::{self, Member, NetItem, Placement, VarKind};
use crate::resolve::{unit_text, ModelInfo, Resolved};
use std::fmt::Write as _;

/// Renders every model reachable from the root file and every network in it.
pub fn dump(resolved: &Resolved) -> String {
    let mut out = String::new();
    for model in &resolved.models {
        dump_model(model, &mut out);
    }
    for network in &resolved.networks {
        dump_network(network, &mut out);
    }
    out
}

fn dump_model(model: &ModelInfo, out: &mut String) {
    let mut ignored = Vec::new();
    let port = model.target.as_ref().map(|(name, unit)| {
        let dim = unit
            .as_ref()
            .and_then(|u| unit_dim(u, None, &mut ignored))
            .unwrap_or(Dim::port());
        (name.name.as_str(), dim)
    });
    let dim_of = |unit: &ast::UnitExpr| -> String {
        let mut ignored = Vec::new();
        unit_dim(unit, port, &mut ignored).map_or("?".to_string(), |d| d.to_string())
    };
    let _ = writeln!(out, "{} {} {{", model.ast.kind.word(), model.name());
    if let Some((name, dim)) = port {
        let _ = writeln!(out, "    target {name}: {dim}");
    }
    for var in &model.vars {
        let placement = match var.placement {
            Placement::Each => "",
            Placement::Shared => "shared ",
            Placement::Pre => "pre ",
            Placement::Post => "post ",
        };
        let kind = match var.kind {
            VarKind::Param => "param",
            VarKind::State => "state",
            VarKind::Input => "input",
        };
        let _ = writeln!(
            out,
            "    {placement}{kind} {}: {} (written {})",
            var.name.name,
            dim_of(&var.unit),
            unit_text(&var.unit)
        );
    }
    for (name, _) in &model.lets {
        let _ = writeln!(out, "    let {}", name.name);
    }
    for member in &model.ast.members {
        match member {
            Member::Ode(ode) => {
                let dim = model
                    .var(&ode.var.name)
                    .map_or("?".to_string(), |v| dim_of(&v.unit));
                let _ = writeln!(
                    out,
                    "    ode d{}/dt in {dim}/time{}",
                    ode.var.name,
                    if ode.unless_refractory {
                        ", clamped while refractory"
                    } else {
                        ""
                    }
                );
            }
            Member::Spike { .. } => out.push_str("    spike condition\n"),
            Member::Reset { body, .. } => {
                let _ = writeln!(out, "    reset: {} statement(s)", body.stmts.len());
            }
            Member::Refractory { .. } => out.push_str("    refractory period\n"),
            Member::On { event, body, .. } => {
                let _ = writeln!(
                    out,
                    "    on {}: {} statement(s)",
                    event.name,
                    body.stmts.len()
                );
            }
            Member::Method(ast::MethodChoice { method, args, .. }) => {
                let args: Vec<String> = args
                    .iter()
                    .map(|a| match (&a.name, &a.value.kind) {
                        (Some(n), ast::ExprKind::Number(v)) => format!("{} = {v:e}", n.name),
                        (Some(n), _) => format!("{} = ?", n.name),
                        (None, _) => "?".to_string(),
                    })
                    .collect();
                if args.is_empty() {
                    let _ = writeln!(out, "    method {}", method.name);
                } else {
                    let _ = writeln!(out, "    method {}({})", method.name, args.join(", "));
                }
            }
            _ => {}
        }
    }
    out.push_str("}\n");
}

fn dump_network(network: &ast::Network, out: &mut String) {
    let _ = writeln!(out, "network {} {{", network.name.name);
    for item in &network.items {
        match item {
            NetItem::Setting { name, .. } => {
                let _ = writeln!(out, "    setting {}", name.name);
            }
            NetItem::Population {
                name,
                model,
                inits,
                method,
                ..
            } => {
                let names: Vec<&str> = inits.iter().map(|i| i.name.name.as_str()).collect();
                let method = method
                    .as_ref()
                    .map(|m| format!(", method {}", m.method.name))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "    population {}: {} (sets {}){method}",
                    name.name,
                    model.name,
                    names.join(", ")
                );
            }
            NetItem::SpikeSource { name, path, .. } => {
                let _ = writeln!(out, "    spike source {} from \"{path}\"", name.name);
            }
            NetItem::Projection(p) => {
                let names = |refs: &[ast::PopRef]| {
                    refs.iter()
                        .map(|r| r.name.name.clone())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let target = p
                    .inits
                    .iter()
                    .find(|i| i.name.name == "target")
                    .and_then(|i| match &i.value.kind {
                        ast::ExprKind::Name(n) => Some(n.name.clone()),
                        _ => None,
                    })
                    .unwrap_or_else(|| "-".to_string());
                let connect = match &p.connect {
                    Some(ast::Connect::Rule { rule, .. }) => rule.name.clone(),
                    Some(ast::Connect::Where { .. }) => "where".to_string(),
                    Some(ast::Connect::File { path, .. }) => format!("from \"{path}\""),
                    None => "all_to_all".to_string(),
                };
                let _ = writeln!(
                    out,
                    "    projection {} -> {} : {} onto {target}, connect {connect}{}",
                    names(&p.sources),
                    names(&p.targets),
                    p.synapse.name,
                    if p.delay.is_some() { ", delayed" } else { "" }
                );
            }
            NetItem::Input(input) => {
                let _ = writeln!(
                    out,
                    "    input {}.{}",
                    input.population.name.name, input.variable.name
                );
            }
            NetItem::Record { what, of, .. } => {
                let what = match what {
                    ast::RecordWhat::Spikes(_) => "spikes".to_string(),
                    ast::RecordWhat::Vars(vars) => vars
                        .iter()
                        .map(|v| v.name.clone())
                        .collect::<Vec<_>>()
                        .join(", "),
                };
                let of: Vec<&str> = of.iter().map(|p| p.name.name.as_str()).collect();
                let _ = writeln!(out, "    record {what} of {}", of.join(", "));
            }
            NetItem::RecordSynapses {
                what,
                source,
                target,
                every,
                ..
            } => {
                let what = match what {
                    ast::RecordWhat::Spikes(_) => "spikes".to_string(),
                    ast::RecordWhat::Vars(vars) => vars
                        .iter()
                        .map(|v| v.name.clone())
                        .collect::<Vec<_>>()
                        .join(", "),
                };
                let _ = writeln!(
                    out,
                    "    record {what} of {} -> {}{}",
                    source.name.name,
                    target.name.name,
                    if every.is_some() {
                        ", sampled"
                    } else {
                        ", at the end"
                    }
                );
            }
            NetItem::Run { .. } => out.push_str("    run\n"),
            NetItem::Error(_) => out.push_str("    <error>\n"),
        }
    }
    out.push_str("}\n");
}
