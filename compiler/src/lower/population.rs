//! Lowering of population-level values: the reductions (`mean(P, x)`, `sum(P, x)`,
//! `rate(P)`, `count(P)`) that `input` expressions and synapse parameters read.
//!
//! This module owns how a reader gets a reduction's value: a population kernel reads it from
//! an internal per-neuron array named after the reduction, a plastic synapse's handlers from
//! a projection-wide (`Space::Global`) array; the runtime (`snnc_runtime::reductions`) fills
//! both every step. Here each reduction is resolved to the population (or spike source) and
//! the stored array it reduces, with errors for what cannot be reduced. It does not decide
//! when reductions are computed (the runtime's contract, documented in `docs/language.md`).

use super::plasticity::PlasticArrayIr;
use super::program::{NetworkLowerer, Node, Program, SynapseValue};
use crate::ast;
use crate::diagnostics::Diagnostic;
use crate::ir::{VarId, VarInfo, VarRole};
use crate::reductions::{self, ReductionIr};
use crate::resolve::ModelInfo;
use snnc_runtime::plasticity::Space;
use snnc_runtime::reductions::ReductionKind;
use std::collections::HashMap;

/// Who reads a reduction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReaderIr {
    /// Internal per-neuron array `var` of population `population`.
    Population { population: usize, var: VarId },
    /// Projection-wide array `array` of plastic projection `projection`.
    Projection { projection: usize, array: VarId },
}

/// One reduction with what it reduces, resolved to indices, and one of its readers.
#[derive(Clone, Debug)]
pub struct ReductionReaderIr {
    pub reduction: ReductionIr,
    pub node: Node,
    /// The reduced variable of the population's kernels (`sum`, `mean`).
    pub array: Option<VarId>,
    pub reader: ReaderIr,
}

/// The internal arrays a population's kernel reads its inputs' reductions from: adds one per
/// distinct reduction to `vars` and returns the names to lower them by.
pub(super) fn input_arrays(
    inputs: &[&ast::InputDecl],
    vars: &mut Vec<VarInfo>,
) -> Vec<(ReductionIr, VarId)> {
    let mut out: Vec<(ReductionIr, VarId)> = Vec::new();
    for input in inputs {
        let (ast::InputSource::Expr(e) | ast::InputSource::Add(e)) = &input.source else {
            continue;
        };
        for r in reductions::distinct(e) {
            if out.iter().any(|(o, _)| o.key == r.key) {
                continue;
            }
            vars.push(VarInfo {
                access: Default::default(),
                name: r.key.clone(),
                role: VarRole::Internal,
                unit: "1".to_string(),
                scale: 1.0,
                storage: Default::default(),
            });
            out.push((r, (vars.len() - 1) as VarId));
        }
    }
    out
}

impl NetworkLowerer<'_> {
    /// A synapse parameter that a projection sets to an expression of reductions: checks it
    /// may be (a parameter, one value for the projection), adds a projection-wide array per
    /// reduction, and returns the expression with each reduction replaced by its array's name
    /// (which the handlers then read).
    pub(super) fn bind_to_reductions(
        &mut self,
        synapse: &ModelInfo,
        decl: &ast::VarDecl,
        value: &ast::Expr,
        arrays: &mut Vec<PlasticArrayIr>,
        array_of: &mut HashMap<String, VarId>,
        readers: &mut Vec<(ReductionIr, VarId)>,
    ) -> Option<ast::Expr> {
        let name = &decl.name.name;
        if decl.kind != ast::VarKind::Param
            || matches!(decl.placement, ast::Placement::Pre | ast::Placement::Post)
        {
            self.push(
                Diagnostic::error(format!(
                    "`{}.{name}` cannot follow a population-level value: it is not a per-synapse or shared parameter",
                    synapse.name()
                ))
                .primary(value.span, "read every step")
                .secondary(decl.span, "declared here")
                .note("a projection may set a `param` or `shared param` to an expression of reductions; state is the synapse's own"),
            );
            return None;
        }
        let rewritten = reductions::replace_calls(value);
        let mut refused: Option<Diagnostic> = None;
        crate::resolve::walk_names(&rewritten, &mut |n, span, is_call| {
            let per_synapse = !is_call && (n == "i" || n == "j");
            let random = is_call && crate::resolve::RANDOM_FUNCTIONS.contains(&n);
            if (per_synapse || random) && refused.is_none() {
                refused = Some(
                    Diagnostic::error(format!(
                        "`{}.{name}` is set to a population-level value, which is one value for the whole projection",
                        synapse.name()
                    ))
                    .primary(span, if random { "a random draw per synapse" } else { "differs between synapses" })
                    .note("a value that follows a reduction cannot also depend on `i`, `j` or random draws"),
                );
            }
        });
        if let Some(d) = refused {
            self.push(d);
            return None;
        }
        for r in reductions::distinct(value) {
            if array_of.contains_key(&r.key) {
                continue;
            }
            let id = arrays.len() as VarId;
            arrays.push(PlasticArrayIr {
                name: r.key.clone(),
                space: Space::Global,
                unit: "1".to_string(),
                scale: 1.0,
                init: SynapseValue::Const(0.0),
                keeps_f64: true,
            });
            array_of.insert(r.key.clone(), id);
            readers.push((r, id));
        }
        Some(rewritten)
    }

    /// Resolves every reduction read in `program` (inputs of populations, `reads`, and the
    /// plastic projections' bound parameters) to what it reduces; reports what cannot be.
    pub(super) fn resolve_reductions(
        &mut self,
        program: &mut Program,
        reads: Vec<(usize, VarId, ReductionIr)>,
    ) {
        let mut wanted: Vec<(ReductionIr, ReaderIr)> = reads
            .into_iter()
            .map(|(population, var, r)| (r, ReaderIr::Population { population, var }))
            .collect();
        for (projection, p) in program.projections.iter().enumerate() {
            if let Some(plastic) = &p.plasticity {
                for (r, array) in &plastic.reductions {
                    wanted.push((
                        r.clone(),
                        ReaderIr::Projection {
                            projection,
                            array: *array,
                        },
                    ));
                }
            }
        }
        for (reduction, reader) in wanted {
            let node = if let Some(p) = program
                .populations
                .iter()
                .position(|p| p.name == reduction.population)
            {
                Node::Population(p)
            } else if let Some(s) = program
                .sources
                .iter()
                .position(|s| s.name == reduction.population)
            {
                Node::Source(s)
            } else {
                // Reported by resolve.
                continue;
            };
            let array = match (&reduction.variable, node) {
                (Some(v), Node::Population(p)) => match program.populations[p].update.var(v) {
                    Some(id) => Some(id),
                    None => {
                        self.push(
                                Diagnostic::error(format!(
                                    "cannot compute `{}`: `{}.{v}` is one constant for the whole population",
                                    reduction.key, reduction.population
                                ))
                                .primary(reduction.span, "nothing to reduce")
                                .note("a uniform parameter is folded into the kernel and not stored per neuron")
                                .help("reduce a state variable, or write the constant itself"),
                            );
                        continue;
                    }
                },
                (Some(_), Node::Source(_)) => continue,
                (None, _) => None,
            };
            debug_assert_eq!(
                array.is_some(),
                matches!(reduction.kind, ReductionKind::Sum | ReductionKind::Mean)
            );
            program.reductions.push(ReductionReaderIr {
                reduction,
                node,
                array,
                reader,
            });
        }
    }
}

/// `snnc ir`'s lines for the reductions of a program.
pub fn print(program: &Program) -> String {
    let mut out = String::new();
    for r in &program.reductions {
        let reader = match r.reader {
            ReaderIr::Population { population, .. } => {
                format!("population {}", program.populations[population].name)
            }
            ReaderIr::Projection { projection, .. } => {
                format!("projection {}", program.projections[projection].name)
            }
        };
        out.push_str(&format!(
            "reduction {} (computed after each step, read by {reader})\n",
            r.reduction.key
        ));
    }
    out
}

/// The runtime's description of the reductions of `program` (instantiation attaches it to
/// the network; the scheduler computes them).
pub fn runtime_reductions(program: &Program) -> snnc_runtime::reductions::Reductions {
    use snnc_runtime::reductions::{Reader, Reductions};
    let mut out = Reductions::default();
    for r in &program.reductions {
        let node = match r.node {
            Node::Population(p) => snnc_runtime::Node::Population(p),
            Node::Source(s) => snnc_runtime::Node::Source(s),
        };
        let index = out.add(
            &r.reduction.key,
            r.reduction.kind,
            node,
            r.array.map(|a| a as usize),
        );
        let reader = match r.reader {
            ReaderIr::Population { population, var } => Reader::Population {
                population,
                array: var as usize,
            },
            ReaderIr::Projection { projection, array } => Reader::Projection {
                projection,
                array: array as usize,
            },
        };
        out.readers.push((index, reader));
    }
    out
}
