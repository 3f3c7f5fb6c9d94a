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
    let mut sources = SourceMap::new();
    let root = sources.add(name, text);
    let (graph, mut diagnostics) = resolve::load_modules(&mut sources, root, name, loader);
    let (resolved, mut resolve_diagnostics) = resolve::resolve(&graph, &sources);
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
    Ok(check_source(&name, &text, &FileSystemLoader))
}

/// The path a user typed, as shown in messages.
pub fn display_path(path: &Path) -> String {
    PathBuf::from(path).display().to_string()
}
