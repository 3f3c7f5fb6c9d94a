//! Lowering: the checked program to the IR.
//!
//! Only this stage sees both the checked syntax tree and the IR. It evaluates constants in SI
//! units, decides which parameters are uniform (folded into kernels) and which are per-neuron
//! arrays, inlines `let`s, chooses integrators (`odes`, and `adaptive` for `rkf45`), and builds one update kernel and one
//! initialisation kernel per population, plus the description of every projection, input and
//! recording. Nothing here runs a simulation or touches files.

pub mod adaptive;
pub mod odes;
pub mod plasticity;
pub mod population;
pub mod program;
pub mod synapse_kernels;
