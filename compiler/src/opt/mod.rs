//! IR optimisation: a flat list of passes, each in its own file, run in order.
//!
//! Every pass maps a kernel to a kernel with the same observable behaviour, bit for bit: the
//! same stores, the same spikes, the same random draws. So no algebraic rewrite that could
//! change a rounding, the sign of a zero or a NaN is allowed (`x + 0` is not `x` when `x` is
//! `-0`). Passes see only the IR. Fusion needs no pass of its own: lowering already emits all
//! per-neuron work of a population (inputs, integration, threshold, reset, refractoriness) as
//! one kernel, which code generation turns into one loop.

pub mod cse;
pub mod dce;
pub mod fold;

use crate::ir::Kernel;

/// Runs every pass in order.
pub fn optimize(kernel: &mut Kernel) {
    fold::run(kernel);
    cse::run(kernel);
    dce::run(kernel);
}
