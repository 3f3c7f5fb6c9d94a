//! The `snnc` command line.
//!
//! Parses arguments with clap, calls the driver, prints diagnostics, and turns the outcome
//! into an exit status: 0 when all is well, 1 when the input has errors, 2 for usage errors.

use clap::{Parser, Subcommand, ValueEnum};
use snnc::aot;
use snnc::diagnostics::{render_json, render_text, Diagnostic};
use snnc::driver::{self, Checked};
use snnc::instantiate::{self, Output};
use snnc::lower::program::{Overrides, Program};
use snnc_runtime::spec::{self, KernelTable};
use snnc_runtime::{report, OutputFormat, RunStatus, Simulation};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[derive(Parser, Debug)]
#[command(
    name = "snnc",
    version,
    about = "A compiler for spiking neural networks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check model files and print every diagnostic.
    Check {
        /// The .snn files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// How to print diagnostics.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Print a summary of the checked models and networks.
        #[arg(long)]
        dump: bool,
    },
    /// Compile a network, simulate it, and write spikes and traces.
    Run {
        /// The .snn file holding the network.
        file: PathBuf,
        #[command(flatten)]
        setup: Setup,
        /// Directory for spikes, traces and manifest.json.
        #[arg(long, default_value = "snnc-out")]
        out: PathBuf,
        /// File format of the outputs.
        #[arg(long, value_enum, default_value_t = DataFormat::Npy)]
        format: DataFormat,
        /// How kernels are executed: compiled to native code (Cranelift, or LLVM in builds with
        /// the `llvm` feature), or interpreted (the reference).
        #[arg(long, value_enum, default_value_t = Backend::Jit)]
        backend: Backend,
        /// Threads that step the network (default: one per idle core, at most one per 500
        /// neurons). Results do not depend on it.
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
        threads: Option<u16>,
        /// Print only errors.
        #[arg(long)]
        quiet: bool,
    },
    /// Compile a network ahead of time: an executable, a library or an object file that runs
    /// without the compiler.
    Build {
        /// The .snn file holding the network.
        file: PathBuf,
        #[command(flatten)]
        setup: Setup,
        /// Where to write: the executable, the object file, or (lib) the path whose directory
        /// receives libNAME.a, libNAME.so and NAME.h.
        #[arg(short = 'o', long = "output", value_name = "OUT")]
        output: PathBuf,
        /// What to write.
        #[arg(long, value_enum, default_value_t = EmitKind::Exe)]
        emit: EmitKind,
        /// The target triple (default: the host), e.g. aarch64-unknown-linux-gnu; other
        /// targets give object files only.
        #[arg(long, value_name = "TRIPLE")]
        target: Option<String>,
        /// The code generator.
        #[arg(long, value_enum, default_value_t = AotBackendArg::Cranelift)]
        backend: AotBackendArg,
        /// Print only errors.
        #[arg(long)]
        quiet: bool,
    },
    /// Print the intermediate representation: kernels, and the integrator each ODE got.
    Ir {
        /// The .snn file holding the network.
        file: PathBuf,
        #[command(flatten)]
        setup: Setup,
    },
}

/// What the file says, overridden from the command line.
#[derive(clap::Args, Debug)]
struct Setup {
    /// Which network to use, when the file defines several.
    #[arg(long)]
    network: Option<String>,
    /// Simulated time, overriding the file's `run` (e.g. `2s`, `500ms`).
    #[arg(long)]
    duration: Option<String>,
    /// Seed of all random numbers, overriding the file's `seed`.
    #[arg(long)]
    seed: Option<u64>,
    /// Set a population's parameter or initial value: `--set E.tau_m=10ms` (repeatable).
    #[arg(long = "set", value_name = "POP.VAR=VALUE")]
    set: Vec<String>,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum DataFormat {
    Npy,
    Csv,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum Backend {
    /// Cranelift, JIT-compiled in process (`cranelift` is accepted too, as `build` names it).
    #[value(alias = "cranelift")]
    Jit,
    Llvm,
    Interpreter,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum EmitKind {
    Exe,
    Lib,
    Obj,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum AotBackendArg {
    /// Cranelift (`jit` is accepted too, as `run` names it).
    #[value(alias = "jit")]
    Cranelift,
    Llvm,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum Format {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check {
            files,
            format,
            dump,
        } => check(&files, format, dump),
        Command::Run {
            file,
            setup,
            out,
            format,
            backend,
            threads,
            quiet,
        } => run(
            &file,
            &setup,
            &out,
            format,
            backend,
            threads.map(usize::from),
            quiet,
        ),
        Command::Ir { file, setup } => ir(&file, &setup),
        Command::Build {
            file,
            setup,
            output,
            emit,
            target,
            backend,
            quiet,
        } => build(
            &file,
            &setup,
            &output,
            emit,
            target.as_deref(),
            backend,
            quiet,
        ),
    }
}

/// `snnc build`: the model object, linked as asked.
fn build(
    file: &Path,
    setup: &Setup,
    out: &Path,
    emit: EmitKind,
    target: Option<&str>,
    backend: AotBackendArg,
    quiet: bool,
) -> ExitCode {
    let started = Instant::now();
    let backend = match backend {
        AotBackendArg::Cranelift => aot::AotBackend::Cranelift,
        AotBackendArg::Llvm if cfg!(feature = "llvm") => aot::AotBackend::Llvm,
        AotBackendArg::Llvm => {
            eprintln!("error: {}", aot::llvm_unavailable());
            return ExitCode::from(2);
        }
    };
    let host = snnc::codegen::object::target_isa(None)
        .map(|isa| isa.triple().to_string())
        .unwrap_or_default();
    let cross = target.is_some_and(|t| t != host);
    if let Err(message) = snnc::codegen::object::target_isa(target) {
        eprintln!("error: {message}");
        return ExitCode::from(2);
    }
    let Some((checked, program)) = compile(file, setup, quiet) else {
        return ExitCode::from(1);
    };
    let data = match driver::read_data_files(file, &program) {
        Ok(data) => data,
        Err(diagnostics) => {
            eprint!("{}", render_text(&checked.sources, &diagnostics));
            return ExitCode::from(1);
        }
    };
    let described = instantiate::describe(&program, &data);
    let objects = match aot::model_objects(&described, backend, target) {
        Ok(objects) => objects,
        Err(message) => {
            eprintln!("error: code generation failed: {message}");
            return ExitCode::from(1);
        }
    };
    let emit = match emit {
        EmitKind::Exe => aot::Emit::Exe,
        EmitKind::Lib => aot::Emit::Lib,
        EmitKind::Obj => aot::Emit::Obj,
    };
    match aot::write_outputs(&objects, &described.spec, emit, cross, out) {
        Ok(written) => {
            if !quiet {
                let names: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
                println!(
                    "built network {} in {:.1} ms: {}",
                    program.network,
                    started.elapsed().as_secs_f64() * 1e3,
                    names.join(", ")
                );
            }
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
    }
}

/// Checks and lowers a file, printing diagnostics; `None` when it has errors.
fn compile(file: &Path, setup: &Setup, quiet: bool) -> Option<(Checked, Program)> {
    let overrides = match overrides(setup) {
        Ok(o) => o,
        Err(message) => {
            eprintln!("error: {message}");
            return None;
        }
    };
    let checked = match driver::check_file(file) {
        Ok(checked) => checked,
        Err(message) => {
            eprintln!("error: {message}");
            return None;
        }
    };
    let shown: Vec<Diagnostic> = checked
        .diagnostics
        .iter()
        .filter(|d| !quiet || d.is_error())
        .cloned()
        .collect();
    eprint!("{}", render_text(&checked.sources, &shown));
    if checked.has_errors() {
        return None;
    }
    match driver::lower(&checked, setup.network.as_deref(), &overrides) {
        Ok(program) => {
            if !quiet {
                eprint!("{}", render_text(&checked.sources, &program.warnings));
            }
            Some((checked, program))
        }
        Err(diagnostics) => {
            eprint!("{}", render_text(&checked.sources, &diagnostics));
            None
        }
    }
}

fn overrides(setup: &Setup) -> Result<Overrides, String> {
    let mut overrides = Overrides {
        seed: setup.seed,
        ..Overrides::default()
    };
    if let Some(duration) = &setup.duration {
        overrides.duration = Some(driver::parse_duration(duration)?);
    }
    for set in &setup.set {
        overrides.set.push(driver::parse_set(set)?);
    }
    Ok(overrides)
}

fn ir(file: &Path, setup: &Setup) -> ExitCode {
    let Some((_, program)) = compile(file, setup, false) else {
        return ExitCode::from(1);
    };
    let out = snnc::lower::program::print(&program);
    let _ = write!(std::io::stdout(), "{out}");
    ExitCode::SUCCESS
}

fn run(
    file: &Path,
    setup: &Setup,
    out: &Path,
    format: DataFormat,
    backend: Backend,
    threads: Option<usize>,
    quiet: bool,
) -> ExitCode {
    let started = Instant::now();
    let jit = match native_compiler(backend) {
        Ok(jit) => jit,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let Some((checked, program)) = compile(file, setup, quiet) else {
        return ExitCode::from(1);
    };
    let Some(duration) = program.duration else {
        eprintln!(
            "error: the network `{}` has no run length; add `run <duration>` to it or pass `--duration`",
            program.network
        );
        return ExitCode::from(1);
    };
    let front_end = started.elapsed();
    let report =
        |diagnostics: &[Diagnostic]| eprint!("{}", render_text(&checked.sources, diagnostics));

    let build_started = Instant::now();
    let data = match driver::read_data_files(file, &program) {
        Ok(data) => data,
        Err(diagnostics) => {
            report(&diagnostics);
            return ExitCode::from(1);
        }
    };
    let described = instantiate::describe(&program, &data);
    let read_time = build_started.elapsed();

    // Native code first: a failure here is a compiler bug, and must stop before any output.
    let jit_started = Instant::now();
    let compiled = match jit {
        Some(jit_compile) => match jit_compile(&described.kernels) {
            Ok(compiled) => Some(compiled),
            Err(message) => {
                eprintln!("error: code generation failed: {message}");
                return ExitCode::from(1);
            }
        },
        None => None,
    };
    let jit_time = jit_started.elapsed();

    // The construction a deployed model runs too (`snnc_runtime::spec`), with these kernels.
    let build_started = Instant::now();
    let table: Box<dyn KernelTable + '_> = match &compiled {
        Some(compiled) => Box::new(instantiate::native_table(compiled)),
        None => Box::new(instantiate::InterpretedTable::new(&described.kernels)),
    };
    let steps = instantiate::steps_for(duration, program.dt);
    let output = Output {
        dir: out.to_path_buf(),
        format: match format {
            DataFormat::Npy => OutputFormat::Npy,
            DataFormat::Csv => OutputFormat::Csv,
        },
    };
    let (mut network, warnings) = match instantiate::build_with(
        &described,
        table.as_ref(),
        program.seed,
        steps,
        Some(&output),
    ) {
        Ok(built) => built,
        Err(diagnostics) => {
            report(&diagnostics);
            return ExitCode::from(1);
        }
    };
    if !quiet {
        report(&warnings);
    }
    let mut kernels = spec::population_kernels(&described.spec, table.as_ref(), program.seed);
    let mut handlers = spec::projection_handlers(&described.spec, table.as_ref(), program.seed);
    let build_time = read_time + build_started.elapsed();

    let show_progress = !quiet && duration > 1.0 && std::io::stderr().is_terminal();
    let run_started = Instant::now();
    let mut progress = |done: u64, total: u64| {
        if show_progress {
            eprint!(
                "{}",
                report::progress_line(done, total, program.dt, run_started.elapsed())
            );
        }
    };
    if let Some(warning) = threads.and_then(snnc_runtime::parallel::oversubscription_warning) {
        if !quiet {
            eprintln!("warning: {warning}");
        }
    }
    let threads = threads.unwrap_or_else(|| {
        snnc_runtime::parallel::default_threads(network.populations.iter().map(|p| p.size).sum())
    });
    let mut simulation = Simulation::with_threads(threads);
    let stats = match simulation.run_with_plasticity(
        &mut network,
        &mut kernels,
        &mut handlers,
        steps,
        &mut progress,
    ) {
        Ok(stats) => stats,
        Err(error) => {
            eprintln!("error: the simulation stopped: {error}");
            eprintln!(
                "note: the partial outputs in {} are valid and marked as interrupted in manifest.json",
                out.display()
            );
            return ExitCode::from(1);
        }
    };
    if let Err(error) = network.finish_recording(RunStatus::Complete) {
        eprintln!("error: writing the outputs failed: {error}");
        return ExitCode::from(1);
    }
    let run_time = run_started.elapsed();
    if quiet {
        return ExitCode::SUCCESS;
    }

    let timings = report::Timings {
        compile: Some((front_end, jit_time)),
        build: build_time,
        run: run_time,
    };
    let text = report::summary(&program.network, &network, &stats, steps, &timings, out);
    // A closed pipe (`snnc run ... | head`) must not turn a finished run into a panic.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    ExitCode::SUCCESS
}

/// The code generator of a backend (`None`: interpreted), or why this build has none.
fn native_compiler(backend: Backend) -> Result<Option<snnc::codegen::JitCompile>, String> {
    match backend {
        Backend::Jit => Ok(Some(snnc::codegen::jit_compile)),
        #[cfg(feature = "llvm")]
        Backend::Llvm => Ok(Some(snnc::codegen::llvm::jit_compile)),
        #[cfg(not(feature = "llvm"))]
        Backend::Llvm => Err(
            "this snnc was built without LLVM support, so `--backend llvm` \
             is unavailable; rebuild with `cargo build --release --features llvm` (needs the \
             LLVM 14 development files, see README.md), or use `--backend jit`"
                .to_string(),
        ),
        Backend::Interpreter => Ok(None),
    }
}

fn check(files: &[PathBuf], format: Format, dump: bool) -> ExitCode {
    let mut failed = false;
    let mut json_items: Vec<serde_json::Value> = Vec::new();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for path in files {
        let checked = match driver::check_file(path) {
            Ok(checked) => checked,
            Err(message) => {
                failed = true;
                match format {
                    Format::Text => eprintln!("error: {message}"),
                    Format::Json => json_items.push(serde_json::json!({
                        "file": driver::display_path(path),
                        "line": 0, "column": 0, "end_line": 0, "end_column": 0,
                        "severity": "error", "message": message,
                        "labels": [], "notes": [], "help": null,
                    })),
                }
                continue;
            }
        };
        failed |= checked.has_errors();
        match format {
            Format::Text => {
                let text = render_text(&checked.sources, &checked.diagnostics);
                let _ = write!(std::io::stderr(), "{text}");
            }
            Format::Json => {
                let rendered = render_json(&checked.sources, &checked.diagnostics);
                if let Ok(serde_json::Value::Array(items)) = serde_json::from_str(&rendered) {
                    json_items.extend(items);
                }
            }
        }
        if dump && !checked.has_errors() {
            let _ = write!(out, "{}", snnc::check::dump::dump(&checked.resolved));
        }
    }
    if format == Format::Json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&json_items).unwrap_or_default()
        );
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
