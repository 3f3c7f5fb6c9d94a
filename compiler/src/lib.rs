//! snnc: a compiler for spiking neural networks.
//!
//! The pipeline reads top to bottom through the modules: `source` holds the text, `lexer` and
//! `parser` build the `ast`, `resolve` binds names across files and the standard library,
//! `check` verifies types and physical `units`, and `driver` runs the stages and is the only
//! place that touches the file system. `diagnostics` renders what any stage reports.

pub mod aot;
pub mod ast;
pub mod check;
pub mod codegen;
pub mod diagnostics;
pub mod driver;
pub mod instantiate;
pub mod instantiate_plastic;
pub mod ir;
pub mod lexer;
pub mod lower;
pub mod opt;
pub mod parser;
pub mod reductions;
pub mod resolve;
pub mod source;
pub mod stdlib;
pub mod units;
