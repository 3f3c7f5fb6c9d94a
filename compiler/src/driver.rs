//! The driver: runs the pipeline stages in order and is the only module that reads files.
//!
//! It loads the root file, gives `resolve` a loader for relative imports, runs the checker,
//! and collects every diagnostic, sorted by position. Callers (the CLI, tests, the fuzzer)
//! get a [`Checked`] value and decide how to print it; nothing here prints.

use crate::check;
use crate::diagnostics::{self, Diagnostic};
use crate::resolve::{self, LoadedSource, Resolved, SourceLoader};
use crate::source::SourceMap;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The outcome of checking one root file.
#[derive(Debug)]
pub struct Checked {
    pub sources: SourceMap,
    pub diagnostics: Vec<Diagnostic>,
    pub resolved: Resolved,
}

impl Checked {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Loads imported files from the file system, relative to the importing file.
#[derive(Debug, Default)]
pub struct FileSystemLoader;

impl SourceLoader for FileSystemLoader {
    fn load(&self, from: &str, path: &str) -> Result<LoadedSource, String> {
        let base = Path::new(from).parent().unwrap_or(Path::new("."));
        let full = base.join(path);
        let text = std::fs::read_to_string(&full).map_err(|e| describe_io_error(&full, &e))?;
        let key = full
            .canonicalize()
            .unwrap_or_else(|_| full.clone())
            .display()
            .to_string();
        Ok(LoadedSource {
            key,
            display_name: full.display().to_string(),
            text,
        })
    }
}

/// Serves imports from memory: tests and the fuzzer use it to check several files at once.
#[derive(Debug, Default)]
pub struct MemoryLoader {
    pub files: HashMap<String, String>,
}

impl SourceLoader for MemoryLoader {
    fn load(&self, _from: &str, path: &str) -> Result<LoadedSource, String> {
        match self.files.get(path) {
            Some(text) => Ok(LoadedSource {
                key: path.to_string(),
                display_name: path.to_string(),
                text: text.clone(),
            }),
            None => Err(format!("no file named \"{path}\"")),
        }
    }
}

fn describe_io_error(path: &Path, error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::NotFound => format!("{} does not exist", path.display()),
        std::io::ErrorKind::PermissionDenied => {
            format!("{} cannot be read (permission denied)", path.display())
        }
        _ => format!("{} cannot be read: {error}", path.display()),
    }
}

/// Checks source text that is already in memory.
pub fn check_source(name: &str, text: &str, loader: &dyn SourceLoader) -> Checked {
    check_source_keyed(name, name, text, loader)
}

/// Checks source text whose file the loader knows under `key`.
fn check_source_keyed(name: &str, key: &str, text: &str, loader: &dyn SourceLoader) -> Checked {
    let mut sources = SourceMap::new();
    let root = sources.add(name, text);
    let (graph, mut diagnostics) = resolve::load_modules(&mut sources, root, key, loader);
    let (resolved, mut resolve_diagnostics) = resolve::resolve(&graph);
    diagnostics.append(&mut resolve_diagnostics);
    diagnostics.append(&mut check::check(&resolved));
    diagnostics::sort(&mut diagnostics);
    diagnostics.dedup();
    Checked {
        sources,
        diagnostics,
        resolved,
    }
}

/// Reads a file and checks it, with imports loaded from the file system.
pub fn check_file(path: &Path) -> Result<Checked, String> {
    let text = std::fs::read(path).map_err(|e| describe_io_error(path, &e))?;
    let text = String::from_utf8(text).map_err(|e| {
        format!(
            "{} is not UTF-8 text (invalid byte at offset {})",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })?;
    let name = path.display().to_string();
    // The root's key is canonical, as the loader's keys are, so a file that imports itself is
    // recognised as the same file.
    let key = path
        .canonicalize()
        .map_or_else(|_| name.clone(), |p| p.display().to_string());
    Ok(check_source_keyed(&name, &key, &text, &FileSystemLoader))
}

/// The path a user typed, as shown in messages.
pub fn display_path(path: &Path) -> String {
    PathBuf::from(path).display().to_string()
}

/// A value given on the command line (`--duration 2s`, `--set E.tau_m=10ms`), parsed as an
/// expression of the language.
pub fn parse_flag_value(flag: &str, text: &str) -> Result<crate::ast::Expr, String> {
    let mut sources = SourceMap::new();
    let file = sources.add(format!("<{flag}>"), text);
    crate::parser::parse_expr(file, text).map_err(|diagnostics| {
        format!(
            "invalid value for {flag}: `{text}`\n{}",
            diagnostics::render_text(&sources, &diagnostics)
        )
    })
}

/// Parses a `--duration` value: a time such as `2s`, `500 ms`.
pub fn parse_duration(text: &str) -> Result<f64, String> {
    let expr = parse_flag_value("--duration", text)?;
    let crate::ast::ExprKind::Quantity(value, unit) = &expr.kind else {
        return Err(format!(
            "--duration needs a time with a unit, such as `2 s` or `500 ms`; found `{text}`"
        ));
    };
    let mut ignored = Vec::new();
    let dim = crate::check::dims::unit_dim(unit, None, &mut ignored);
    if dim != Some(crate::check::dims::Dim::time()) {
        return Err(format!(
            "--duration needs a time, such as `2 s`; `{text}` is not a time"
        ));
    }
    let seconds = value * crate::check::dims::unit_scale(unit);
    if !(seconds.is_finite() && seconds > 0.0) {
        return Err(format!("--duration must be positive, found `{text}`"));
    }
    Ok(seconds)
}

/// Parses a `--set POP.VAR=VALUE` flag.
pub fn parse_set(text: &str) -> Result<(String, String, crate::ast::Expr), String> {
    let usage = || {
        format!("--set expects POPULATION.VARIABLE=VALUE, such as `E.tau_m=10ms`; found `{text}`")
    };
    let (target, value) = text.split_once('=').ok_or_else(usage)?;
    let (population, variable) = target.trim().split_once('.').ok_or_else(usage)?;
    if population.is_empty() || variable.is_empty() {
        return Err(usage());
    }
    let expr = parse_flag_value("--set", value.trim())?;
    Ok((population.to_string(), variable.to_string(), expr))
}

/// Lowers and optimises the checked program.
pub fn lower(
    checked: &Checked,
    network: Option<&str>,
    overrides: &crate::lower::program::Overrides,
) -> Result<crate::lower::program::Program, Vec<Diagnostic>> {
    let mut program = crate::lower::program::lower(&checked.resolved, network, overrides)?;
    for population in &mut program.populations {
        crate::opt::optimize(&mut population.update);
        crate::opt::optimize(&mut population.init);
    }
    for projection in &mut program.projections {
        if let Some(plastic) = &mut projection.plasticity {
            for kernel in plastic.kernels.iter_mut().flatten() {
                crate::opt::optimize(kernel);
            }
        }
    }
    Ok(program)
}

/// Reads every data file the program names, relative to the model file's directory.
pub fn read_data_files(
    model: &Path,
    program: &crate::lower::program::Program,
) -> Result<crate::instantiate::DataFiles, Vec<Diagnostic>> {
    let base = model.parent().unwrap_or(Path::new("."));
    let mut files = crate::instantiate::DataFiles::new();
    let mut errors = Vec::new();
    for (path, span) in crate::instantiate::data_files(program) {
        if files.contains_key(&path) {
            continue;
        }
        let full = base.join(&path);
        match std::fs::read(&full) {
            Ok(bytes) => {
                files.insert(path, bytes);
            }
            Err(e) => errors.push(
                Diagnostic::error(format!("cannot read the data file \"{path}\""))
                    .primary(span, describe_io_error(&full, &e)),
            ),
        }
    }
    if errors.is_empty() {
        Ok(files)
    } else {
        Err(errors)
    }
}
