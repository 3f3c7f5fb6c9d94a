//! Population-level variables: reductions over a population, computed once per step, and
//! where their values are copied for kernels and handlers to read.
//!
//! This module owns the list of reductions of a network (`mean(P, x)`, `sum(P, x)`,
//! `rate(P)`, `count(P)`), their current values, the order in which they are computed, and the
//! list of readers: per-neuron arrays of populations (a population kernel reads a reduction
//! through an array filled with its value) and projection-wide arrays of plastic projections
//! ([`crate::plasticity::Space::Global`]). It does not know how readers use the values, and it
//! never writes a population's own state.
//!
//! # Timing (the contract `docs/language.md` documents)
//!
//! The scheduler calls [`Reductions::compute`] and [`Reductions::broadcast`] on thread 0
//! alone, while every other thread waits at a barrier: once before step 0 (from the initial
//! state, with no spikes) and after every step `k`, at the very end of it (after the plastic
//! projections' input and the trace recording of step `k`). So every reader in step `k` (the
//! neuron kernels, `on pre`, `on post` and `on step` handlers) sees values computed from the
//! state at `t = k·dt` (what a trace recorded at `k·dt` shows) and the spikes of step `k - 1`
//! (recorded at `k·dt` for neurons).
//!
//! # Determinism
//!
//! A sum is taken by one thread over the elements in index order, whatever the thread count,
//! so a reduction is the same bits on any number of threads.

use crate::error::RuntimeError;
use crate::network::{Node, Population, Projection};

/// What a reduction computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ReductionKind {
    /// `sum(P, x)`: the sum of `x` over the neurons, in index order.
    Sum,
    /// `mean(P, x)`: that sum divided by the population size.
    Mean,
    /// `count(P)`: the number of spikes of `P` in the previous step.
    Count,
    /// `rate(P)`: `count(P) / (size · dt)`, the population's mean rate in that step (in Hz).
    Rate,
}

/// One reduction and its current value (SI units).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Reduction {
    /// As the user wrote it, for messages: `mean(E, V_m)`.
    pub name: String,
    pub kind: ReductionKind,
    /// The reduced population (or, for `count` and `rate`, spike source).
    pub node: Node,
    /// The reduced array of the population (`sum`, `mean`).
    pub array: Option<usize>,
    pub value: f64,
}

/// Where a reduction's value is copied after it is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Reader {
    /// Every element of array `array` of population `population`.
    Population { population: usize, array: usize },
    /// The projection-wide array `array` of plastic projection `projection`.
    Projection { projection: usize, array: usize },
}

/// The population-level variables of a network.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Reductions {
    pub reductions: Vec<Reduction>,
    /// `(reduction, reader)` pairs.
    pub readers: Vec<(usize, Reader)>,
}

impl Reductions {
    pub fn is_empty(&self) -> bool {
        self.reductions.is_empty()
    }

    /// Adds a reduction (or finds the same one) and returns its index.
    pub fn add(
        &mut self,
        name: &str,
        kind: ReductionKind,
        node: Node,
        array: Option<usize>,
    ) -> usize {
        if let Some(i) = self
            .reductions
            .iter()
            .position(|r| r.kind == kind && r.node == node && r.array == array)
        {
            return i;
        }
        self.reductions.push(Reduction {
            name: name.to_string(),
            kind,
            node,
            array,
            value: 0.0,
        });
        self.reductions.len() - 1
    }

    /// Checks that every reduction and reader refers to something that exists.
    pub fn validate(
        &self,
        populations: &[Population],
        n_sources: usize,
        projections: &[Projection],
    ) -> Result<(), RuntimeError> {
        for r in &self.reductions {
            let ok = match (r.node, r.array) {
                (Node::Population(p), Some(a)) => {
                    populations.get(p).is_some_and(|p| a < p.arrays.len())
                }
                (Node::Population(p), None) => p < populations.len(),
                (Node::Source(s), None) => s < n_sources,
                (Node::Source(_), Some(_)) => false,
            };
            let needs_array = matches!(r.kind, ReductionKind::Sum | ReductionKind::Mean);
            if !ok || needs_array != r.array.is_some() {
                return Err(RuntimeError::invalid(
                    format!("reduction '{}'", r.name),
                    "it refers to a population or array that does not exist",
                ));
            }
        }
        for &(r, reader) in &self.readers {
            let ok = r < self.reductions.len()
                && match reader {
                    Reader::Population { population, array } => populations
                        .get(population)
                        .is_some_and(|p| array < p.arrays.len()),
                    Reader::Projection { projection, array } => projections
                        .get(projection)
                        .and_then(|p| p.plasticity.as_ref())
                        .and_then(|p| p.arrays.get(array))
                        .is_some_and(|a| a.space == crate::plasticity::Space::Global),
                };
            if !ok {
                return Err(RuntimeError::invalid(
                    "reductions",
                    format!("reader {reader:?} of reduction #{r} does not exist"),
                ));
            }
        }
        Ok(())
    }

    /// Computes every reduction from the populations' arrays and the spike counts of the step
    /// just completed (`spike_count(node)`); `size(node)` is the node's size.
    pub fn compute(
        &mut self,
        populations: &[Population],
        spike_count: &dyn Fn(Node) -> usize,
        size: &dyn Fn(Node) -> usize,
        dt: f64,
    ) {
        for r in &mut self.reductions {
            r.value = match (r.kind, r.node, r.array) {
                (ReductionKind::Sum | ReductionKind::Mean, Node::Population(p), Some(a)) => {
                    let values = &populations[p].arrays[a];
                    // In index order, on one thread: the same bits for any thread count.
                    let mut sum = 0.0;
                    for v in values.iter() {
                        sum += v;
                    }
                    if r.kind == ReductionKind::Mean {
                        sum / values.len().max(1) as f64
                    } else {
                        sum
                    }
                }
                (ReductionKind::Count, node, _) => spike_count(node) as f64,
                (ReductionKind::Rate, node, _) => {
                    spike_count(node) as f64 / (size(node).max(1) as f64 * dt)
                }
                _ => f64::NAN,
            };
        }
    }

    /// Copies every reduction's value to its readers.
    pub fn broadcast(
        &self,
        populations: &mut [Population],
        projections: &mut [Projection],
    ) -> Result<(), RuntimeError> {
        for &(r, reader) in &self.readers {
            let value = self.reductions[r].value;
            match reader {
                Reader::Population { population, array } => {
                    populations[population].arrays[array].fill(value);
                }
                Reader::Projection { projection, array } => {
                    if let Some(plastic) = projections[projection].plasticity.as_mut() {
                        plastic.set_global(array, value)?;
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::VariableSpec;

    fn population(values: &[f64]) -> Population {
        let mut p = Population::new("P", values.len(), &[VariableSpec::new("x", "1", 1.0)])
            .expect("a population");
        p.arrays[0].copy_from(0, values);
        p
    }

    #[test]
    fn sums_means_counts_and_rates() {
        let pops = vec![population(&[1.0, 2.0, 3.0, 6.0])];
        let mut r = Reductions::default();
        let sum = r.add(
            "sum(P, x)",
            ReductionKind::Sum,
            Node::Population(0),
            Some(0),
        );
        let mean = r.add(
            "mean(P, x)",
            ReductionKind::Mean,
            Node::Population(0),
            Some(0),
        );
        let count = r.add("count(P)", ReductionKind::Count, Node::Population(0), None);
        let rate = r.add("rate(P)", ReductionKind::Rate, Node::Population(0), None);
        assert_eq!(
            r.add(
                "sum(P, x)",
                ReductionKind::Sum,
                Node::Population(0),
                Some(0)
            ),
            sum
        );
        r.validate(&pops, 0, &[]).expect("valid");
        r.compute(&pops, &|_| 2, &|_| 4, 0.001);
        assert_eq!(r.reductions[sum].value, 12.0);
        assert_eq!(r.reductions[mean].value, 3.0);
        assert_eq!(r.reductions[count].value, 2.0);
        // 2 spikes of 4 neurons in 1 ms: 500 Hz.
        assert_eq!(r.reductions[rate].value, 2.0 / (4.0 * 0.001));
    }

    #[test]
    fn readers_receive_the_value_and_bad_readers_are_refused() {
        let mut pops = vec![population(&[1.0, 3.0]), population(&[0.0, 0.0, 0.0])];
        let mut r = Reductions::default();
        let mean = r.add(
            "mean(P, x)",
            ReductionKind::Mean,
            Node::Population(0),
            Some(0),
        );
        r.readers.push((
            mean,
            Reader::Population {
                population: 1,
                array: 0,
            },
        ));
        r.validate(&pops, 0, &[]).expect("valid");
        r.compute(&pops, &|_| 0, &|_| 2, 0.001);
        r.broadcast(&mut pops, &mut []).expect("broadcast");
        assert_eq!(pops[1].arrays[0], vec![2.0; 3]);
        r.readers.push((
            mean,
            Reader::Population {
                population: 1,
                array: 5,
            },
        ));
        assert!(r.validate(&pops, 0, &[]).is_err());
    }
}
