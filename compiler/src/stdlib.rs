//! The standard library's sources, embedded in the compiler.
//!
//! The models themselves are `.snn` files under `stdlib/` at the top of the repository,
//! written in the language like any user model; the build script embeds every one of them, so
//! `import stdlib.neurons.lif` works wherever the `snnc` binary is copied. This module only
//! looks sources up; parsing and checking them is the ordinary pipeline's job.

include!(concat!(env!("OUT_DIR"), "/stdlib_files.rs"));

/// The source of a standard-library module, by its dotted path below `stdlib`
/// (`neurons.lif` for `stdlib/neurons/lif.snn`).
pub fn source(module: &str) -> Option<&'static str> {
    FILES
        .iter()
        .find(|(name, _)| *name == module)
        .map(|(_, text)| *text)
}

/// Every module path, for suggestions and for tests that check the whole library.
pub fn modules() -> impl Iterator<Item = &'static str> {
    FILES.iter().map(|(name, _)| *name)
}
