//! Ahead-of-time builds (`snnc build`): a lowered program becomes an object file, a library
//! or an executable that runs without the compiler.
//!
//! This module owns what happens after lowering for a deployed model: the model object (the
//! kernels and the serialised network description, `codegen::object`), finding the deploy
//! runtime library (`libsnnc_deploy.a`, built by cargo next to the `snnc` binary), linking
//! with the system C compiler (`cc`) and archiver (`ar`), and the generated C header. It does
//! not decide how a network is built or run: the deployed program does that with the runtime's
//! `spec::build`, the same construction `snnc run` uses, so both give the same outputs.

use crate::instantiate::Described;
use snnc_runtime::spec::{NetworkSpec, VariableRole};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What `snnc build` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emit {
    /// An executable with `snnc run`'s flags.
    Exe,
    /// `libNAME.a` (with `libsnnc_deploy.a` beside it), `libNAME.so` and `NAME.h`.
    Lib,
    /// The model object, with the runtime's static library copied next to it.
    Obj,
}

/// Which code generator compiles the kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AotBackend {
    Cranelift,
    Llvm,
}

/// The file name of the deploy runtime's static library.
pub const RUNTIME_LIB: &str = "libsnnc_deploy.a";

/// The model's object files: one with kernels and data (Cranelift), or the LLVM backend's
/// kernels plus a data object importing them.
pub fn model_objects(
    described: &Described<'_>,
    backend: AotBackend,
    triple: Option<&str>,
) -> Result<Vec<Vec<u8>>, String> {
    let spec = described.spec.to_bytes();
    match backend {
        AotBackend::Cranelift => Ok(vec![crate::codegen::object::emit_model_object(
            &described.kernels,
            &spec,
            triple,
        )?]),
        AotBackend::Llvm => llvm_objects(described, &spec, triple),
    }
}

#[cfg(feature = "llvm")]
fn llvm_objects(
    described: &Described<'_>,
    spec: &[u8],
    triple: Option<&str>,
) -> Result<Vec<Vec<u8>>, String> {
    let symbols: Vec<String> = described
        .kernels
        .iter()
        .enumerate()
        .map(|(i, k)| crate::codegen::object::kernel_symbol(i, k))
        .collect();
    let kernels = crate::codegen::llvm::emit_object(&described.kernels, &symbols, triple)?;
    let data = crate::codegen::object::emit_model_data(&described.kernels, spec, triple)?;
    Ok(vec![kernels, data])
}

#[cfg(not(feature = "llvm"))]
fn llvm_objects(
    _described: &Described<'_>,
    _spec: &[u8],
    _triple: Option<&str>,
) -> Result<Vec<Vec<u8>>, String> {
    Err(llvm_unavailable())
}

/// Why `--backend llvm` is refused by a build without the feature.
pub fn llvm_unavailable() -> String {
    "this snnc was built without LLVM support, so `--backend llvm` is unavailable; rebuild with \
     `cargo build --release --features llvm` (needs the LLVM 14 development files, see \
     README.md), or use `--backend cranelift`"
        .to_string()
}

/// The deploy runtime library, found in this order: `$SNNC_RUNTIME_LIB`; next to the running
/// `snnc` (cargo builds both into one target directory); in the target directory of the
/// source tree this `snnc` was built from (`$CARGO_TARGET_DIR`, or `target/` of that tree),
/// the profile `snnc` was built with first. An `snnc` installed with `cargo install --path
/// compiler` has none of the first two, so as a last resort it builds the library from that
/// source tree, once, with cargo, and says so.
pub fn find_runtime_lib() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("SNNC_RUNTIME_LIB") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!(
                "SNNC_RUNTIME_LIB is {}, which is not a file; point it at {RUNTIME_LIB}",
                path.display()
            ))
        };
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot locate snnc itself: {e}"))?;
    let dir = exe.parent().unwrap_or(Path::new("."));
    // Test binaries run from `target/PROFILE/deps`; the library is one level up.
    let mut candidates = vec![dir.join(RUNTIME_LIB), dir.join("..").join(RUNTIME_LIB)];
    let source = source_tree();
    let target_dir = source_target_dir(&source);
    // The profile snnc itself was built with first: its library is the one built with it.
    let profiles = if cfg!(debug_assertions) {
        ["debug", "release"]
    } else {
        ["release", "debug"]
    };
    for profile in profiles {
        candidates.push(target_dir.join(profile).join(RUNTIME_LIB));
    }
    if let Some(found) = candidates.iter().find(|c| c.is_file()) {
        return Ok(found.clone());
    }
    if source.join("Cargo.toml").is_file() && source.join("deploy").is_dir() {
        return build_runtime_lib(&source, &target_dir);
    }
    Err(format!(
        "the deploy runtime library {RUNTIME_LIB} is not next to snnc (looked in {}) and the source tree snnc was built from ({}) is gone; build it with `cargo build --release -p snnc-deploy` in an snnc checkout and set SNNC_RUNTIME_LIB to its path",
        dir.display(),
        source.display()
    ))
}

/// The workspace this `snnc` was compiled from.
fn source_tree() -> PathBuf {
    let compiler = Path::new(env!("CARGO_MANIFEST_DIR"));
    compiler.parent().unwrap_or(compiler).to_path_buf()
}

/// Where cargo puts that workspace's builds.
fn source_target_dir(source: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| source.join("target"))
}

/// Builds the release deploy library from the source tree, telling the user why it waits.
fn build_runtime_lib(source: &Path, target_dir: &Path) -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(source)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "snnc-deploy",
            "--target-dir",
        ])
        .arg(target_dir);
    eprintln!(
        "note: building the deploy runtime library {RUNTIME_LIB} once, from {} (set SNNC_RUNTIME_LIB to use another)",
        source.display()
    );
    let output = command.output().map_err(|e| {
        format!("cannot run cargo to build {RUNTIME_LIB}: {e}; build it with `cargo build --release -p snnc-deploy` and set SNNC_RUNTIME_LIB to its path")
    })?;
    if !output.status.success() {
        return Err(format!(
            "building {RUNTIME_LIB} with cargo failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim_end()
        ));
    }
    let built = target_dir.join("release").join(RUNTIME_LIB);
    if built.is_file() {
        Ok(built)
    } else {
        Err(format!(
            "cargo built the deploy runtime library but {} is not there",
            built.display()
        ))
    }
}

/// Runs a system tool, saying which one failed and how.
fn run_tool(mut command: Command, what: &str) -> Result<(), String> {
    let shown = format!("{command:?}");
    let output = command.output().map_err(|e| {
        format!("cannot run `{}` for {what}: {e}; install a C toolchain (on Debian: `apt-get install gcc binutils`)", command.get_program().to_string_lossy())
    })?;
    if !output.status.success() {
        return Err(format!(
            "{what} failed ({}): {shown}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim_end()
        ));
    }
    Ok(())
}

/// A link error that names a missing runtime helper means the library is older than this
/// `snnc` (its kernels call a helper the library does not have yet): say so, and how to fix it.
fn explain_stale_runtime(error: String, lib: &Path) -> String {
    if error.contains("undefined reference to `snnc_") {
        format!(
            "{error}\nhelp: {} was built from older sources than this snnc (it lacks a runtime helper the model calls); rebuild it with `cargo build --release -p snnc-deploy` from the same checkout as snnc, or point SNNC_RUNTIME_LIB at a current one",
            lib.display()
        )
    } else {
        error
    }
}

/// The libraries a Rust static library needs from the system when linked by `cc`.
const SYSTEM_LIBS: [&str; 4] = ["-lpthread", "-ldl", "-lm", "-lrt"];

/// The C `main` of an executable: the deploy library's entry point.
const MAIN_C: &str = "int snnc_main(int argc, char **argv);\nint main(int argc, char **argv) { return snnc_main(argc, argv); }\n";

/// Every symbol of the C API, so a shared library pulls them out of the static runtime.
pub const C_API: [&str; 16] = [
    "snnc_last_error",
    "snnc_create",
    "snnc_default_seed",
    "snnc_destroy",
    "snnc_step",
    "snnc_steps_done",
    "snnc_dt",
    "snnc_population_size",
    "snnc_spikes",
    "snnc_get",
    "snnc_set",
    "snnc_inject_spikes",
    "snnc_reset",
    "snnc_save_state",
    "snnc_load_state",
    "snnc_main",
];

/// Writes what `emit` asks for at `out`, from the model objects; returns the files written.
pub fn write_outputs(
    objects: &[Vec<u8>],
    spec: &NetworkSpec,
    emit: Emit,
    cross: bool,
    out: &Path,
) -> Result<Vec<PathBuf>, String> {
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create the directory {}: {e}", dir.display()))?;
    let stem = out
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("`{}` does not name a file", out.display()))?;
    let write = |path: &Path, bytes: &[u8]| {
        std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    // Object files: OUT itself for `--emit obj`, else in a scratch directory.
    let object_paths = |base: &Path| -> Vec<PathBuf> {
        (0..objects.len())
            .map(|i| {
                if i == 0 {
                    base.to_path_buf()
                } else {
                    base.with_extension(format!("{i}.o"))
                }
            })
            .collect()
    };
    if emit != Emit::Obj && cross {
        return Err("`--target` other than the host builds object files only (`--emit obj`); link them with the target's toolchain and a runtime library built for it (`cargo build --release -p snnc-deploy --target TRIPLE`)".to_string());
    }
    match emit {
        Emit::Obj => {
            let paths = object_paths(out);
            for (path, bytes) in paths.iter().zip(objects) {
                write(path, bytes)?;
            }
            let mut written = paths;
            if !cross {
                let lib = find_runtime_lib()?;
                let copy = dir.join(RUNTIME_LIB);
                std::fs::copy(&lib, &copy).map_err(|e| {
                    format!("cannot copy {} to {}: {e}", lib.display(), copy.display())
                })?;
                written.push(copy);
            }
            Ok(written)
        }
        Emit::Exe | Emit::Lib => {
            let lib = find_runtime_lib()?;
            let scratch = dir.join(format!(".{stem}.snnc-build"));
            std::fs::create_dir_all(&scratch)
                .map_err(|e| format!("cannot create {}: {e}", scratch.display()))?;
            let paths = object_paths(&scratch.join(format!("{stem}.o")));
            for (path, bytes) in paths.iter().zip(objects) {
                write(path, bytes)?;
            }
            let result = if emit == Emit::Exe {
                let main = scratch.join("main.c");
                write(&main, MAIN_C.as_bytes())?;
                let mut cc = Command::new("cc");
                cc.arg("-o").arg(out).arg(&main).args(&paths).arg(&lib);
                cc.args(SYSTEM_LIBS);
                run_tool(cc, "linking the executable")
                    .map_err(|e| explain_stale_runtime(e, &lib))
                    .map(|()| vec![out.to_path_buf()])
            } else {
                link_libraries(&paths, &lib, spec, dir, stem)
            };
            let _ = std::fs::remove_dir_all(&scratch);
            result
        }
    }
}

fn link_libraries(
    objects: &[PathBuf],
    runtime: &Path,
    spec: &NetworkSpec,
    dir: &Path,
    stem: &str,
) -> Result<Vec<PathBuf>, String> {
    let name = stem.strip_prefix("lib").unwrap_or(stem);
    let static_lib = dir.join(format!("lib{name}.a"));
    let shared_lib = dir.join(format!("lib{name}.so"));
    let header = dir.join(format!("{name}.h"));
    // The static library holds the model's objects only; the runtime's static library is
    // copied next to it, and programs link both (`libNAME.a libsnnc_deploy.a`). Merging the
    // two would need the archiver to re-index the runtime's members, and GNU ar with the LLVM
    // plugin of another LLVM version cannot read Rust's (it drops their symbols).
    let _ = std::fs::remove_file(&static_lib);
    let mut ar = Command::new("ar");
    ar.arg("rcs").arg(&static_lib).args(objects);
    run_tool(ar, "archiving the static library")?;
    let runtime_copy = dir.join(RUNTIME_LIB);
    std::fs::copy(runtime, &runtime_copy).map_err(|e| {
        format!(
            "cannot copy {} to {}: {e}",
            runtime.display(),
            runtime_copy.display()
        )
    })?;
    // The shared library: the model's objects and, from the runtime, what the C API needs.
    let mut cc = Command::new("cc");
    cc.arg("-shared").arg("-o").arg(&shared_lib).args(objects);
    for symbol in C_API {
        cc.arg(format!("-Wl,--undefined={symbol}"));
    }
    cc.arg(runtime).args(SYSTEM_LIBS);
    run_tool(cc, "linking the shared library").map_err(|e| explain_stale_runtime(e, runtime))?;
    std::fs::write(&header, header_text(spec, name))
        .map_err(|e| format!("cannot write {}: {e}", header.display()))?;
    Ok(vec![static_lib, runtime_copy, shared_lib, header])
}

/// The C header of a library: the API, and every name of the model with its unit.
pub fn header_text(spec: &NetworkSpec, name: &str) -> String {
    let guard: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    let mut h = String::new();
    let _ = writeln!(
        h,
        "/* {name}.h: the C interface of network `{}`, generated by `snnc build`.\n *\n * dt = {} s; default seed {}{}.\n *",
        spec.network,
        snnc_runtime::spec::format_number(spec.dt),
        spec.seed,
        spec.duration.map_or(String::new(), |d| format!(
            "; default run {} s",
            snnc_runtime::spec::format_number(d)
        ))
    );
    let _ = writeln!(
        h,
        " * Values passed to snnc_get / snnc_set are in each variable's declared unit (below).\n * Build-time constants were folded into the code: change them with `snnc build --set`.\n *"
    );
    for population in &spec.populations {
        let _ = writeln!(
            h,
            " * population \"{}\" ({} neurons, model {}):",
            population.name, population.size, population.model
        );
        for v in &population.variables {
            let role = match v.role {
                VariableRole::State => "state variable",
                VariableRole::Parameter => "parameter, per neuron (read/write)",
                VariableRole::Internal => continue,
            };
            let _ = writeln!(h, " *   \"{}\" [{}]  {role}", v.name, v.unit);
        }
        for c in &population.constants {
            let _ = writeln!(
                h,
                " *   \"{}\" [{}]  build-time constant = {} {}",
                c.name,
                c.unit,
                snnc_runtime::spec::format_number(c.value / c.scale),
                c.unit
            );
        }
    }
    for source in &spec.sources {
        let _ = writeln!(
            h,
            " * input port: spike source \"{}\" ({} elements): snnc_inject_spikes",
            source.name, source.size
        );
    }
    let _ = writeln!(
        h,
        " */\n#ifndef SNNC_{guard}_H\n#define SNNC_{guard}_H\n\n#include <stddef.h>\n#include <stdint.h>\n\n#ifdef __cplusplus\nextern \"C\" {{\n#endif\n"
    );
    h.push_str(API_DECLARATIONS);
    let _ = writeln!(h, "\n#ifdef __cplusplus\n}}\n#endif\n#endif");
    h
}

const API_DECLARATIONS: &str = r#"/* A model instance. Functions return 0 (or a count) on success and a negative value on
 * failure; snnc_last_error() then says why. Instances are not shared between threads. */
typedef struct SnncModel SnncModel;

/* The message of the last failure on this thread ("" if none). */
const char *snnc_last_error(void);
/* Builds the network (initial state, connectivity) with random seed `seed`; NULL on failure. */
SnncModel *snnc_create(uint64_t seed);
/* The seed the model file (or `snnc build --seed`) gave. */
uint64_t snnc_default_seed(void);
void snnc_destroy(SnncModel *model);
/* Runs n steps of dt seconds. */
int snnc_step(SnncModel *model, uint64_t n);
/* Steps run so far (after snnc_reset: 0). */
uint64_t snnc_steps_done(const SnncModel *model);
/* The time step in seconds. */
double snnc_dt(void);
/* The number of neurons of a population; negative if there is none. */
int64_t snnc_population_size(const SnncModel *model, const char *population);
/* The neurons of `population` that spiked in the last step: copies up to `capacity` indices
 * into `out` and returns how many spiked. */
int64_t snnc_spikes(const SnncModel *model, const char *population, uint32_t *out, size_t capacity);
/* Reads / writes a state variable or per-neuron parameter of every neuron (n = population
 * size), in its declared unit. Writing a build-time constant fails with an explanation. */
int snnc_get(const SnncModel *model, const char *population, const char *variable, double *out, size_t n);
int snnc_set(SnncModel *model, const char *population, const char *variable, const double *values, size_t n);
/* External input: spike source `source` emits `indices` in the next step. */
int snnc_inject_spikes(SnncModel *model, const char *source, const uint32_t *indices, size_t n);
/* Back to the initial state with the same seed. */
int snnc_reset(SnncModel *model);
/* Saves / loads the full state; a state file of another model is refused. */
int snnc_save_state(const SnncModel *model, const char *path);
int snnc_load_state(SnncModel *model, const char *path);
"#;
