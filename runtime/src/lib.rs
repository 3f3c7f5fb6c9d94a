//! The snnc runtime: everything an ahead-of-time compiled model links against.
//!
//! It owns errors, counter-based random numbers, connectivity, delay buffers, array file
//! formats, recording and memory estimates. It must never depend on the compiler crate: a
//! compiled model links this crate alone (architecture invariant 3).

pub mod abi;
pub mod array;
pub mod connectivity;
pub mod delays;
pub mod error;
pub mod inputs;
pub mod math;
pub mod memory;
pub mod network;
pub mod npy;
pub mod parallel;
pub mod plasticity;
pub mod record;
pub mod reductions;
pub mod report;
pub mod rng;
pub mod schedule;
pub mod spec;

pub use array::{Array, ArrayMut, Element, Precision};
pub use connectivity::{Connectivity, PostIndex, ProjectionSpec};
pub use delays::DelayRing;
pub use error::RuntimeError;
pub use inputs::TimedInput;
pub use memory::{check_fits, MemoryEstimate};
pub use network::{Network, Node, Population, Projection, SpikeSource, VariableSpec, Weights};
pub use npy::{read_csv, read_npy, write_csv, write_npy, CsvTable, NpyArray, NpyData};
pub use plasticity::{HandlerKernel, NativeHandler, Plasticity, ProjectionHandlers};
pub use record::{OutputFormat, Recorder, RunStatus, TraceDtype};
pub use rng::{uniform, Draws, Stream};
pub use schedule::{NativeFunction, NativeKernel, PopulationKernel, RunStats, Simulation};
