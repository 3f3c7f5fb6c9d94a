//! The `snnc` command line.
//!
//! Parses arguments with clap, calls the driver, prints diagnostics, and turns the outcome
//! into an exit status: 0 when all is well, 1 when the input has errors, 2 for usage errors.

use clap::{Parser, Subcommand, ValueEnum};
use snnc::diagnostics::{render_json, render_text};
use snnc::driver;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

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
