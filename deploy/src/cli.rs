//! The deployed executable: `snnc run`'s flags and outputs for the linked model.
//!
//! `snnc build --emit exe` links a two-line C `main` that calls [`snnc_main`]. The flags are
//! those of `snnc run` that still mean something without a compiler (`--duration`, `--seed`,
//! `--set`, `--out`, `--format`, `--threads`, `--quiet`), the outputs (spikes, traces,
//! manifest) and the progress line and summary are the same, written by the same runtime
//! code. Exit status: 0 success, 1 a failed run or a refused value, 2 a usage error.
//!
//! `--set POP.VAR=VALUE` writes a state variable or per-neuron parameter for every neuron
//! after initialisation, before the first step; the value must be in the variable's declared
//! unit. Parameters folded into the code are refused (see [`crate::Model::variable`]).

use crate::Model;
use snnc_runtime::record::{OutputFormat, RunStatus};
use snnc_runtime::report;
use snnc_runtime::spec::{self, OutputSpec};
use std::ffi::{c_char, c_int, CStr};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

const USAGE: &str = "usage: MODEL [--duration TIME] [--seed N] [--set POP.VAR=VALUE]... [--out DIR] [--format npy|csv] [--threads N] [--quiet]";

/// The parsed command line.
#[derive(Debug, Default)]
struct Args {
    duration: Option<String>,
    seed: Option<u64>,
    set: Vec<String>,
    out: Option<PathBuf>,
    csv: bool,
    threads: Option<usize>,
    quiet: bool,
}

fn parse_args(args: &[String]) -> Result<Args, String> {
    let mut parsed = Args::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            if let Some(v) = inline.clone() {
                return Ok(v);
            }
            i += 1;
            args.get(i)
                .cloned()
                .ok_or_else(|| format!("a value is required for `{name}`"))
        };
        match flag {
            "--duration" => parsed.duration = Some(value(flag)?),
            "--seed" => {
                let v = value(flag)?;
                parsed.seed = Some(v.parse().map_err(|_| {
                    format!("invalid value `{v}` for `--seed`: expected a whole number")
                })?)
            }
            "--set" => parsed.set.push(value(flag)?),
            "--out" => parsed.out = Some(PathBuf::from(value(flag)?)),
            "--format" => {
                let v = value(flag)?;
                parsed.csv = match v.as_str() {
                    "npy" => false,
                    "csv" => true,
                    _ => {
                        return Err(format!(
                            "invalid value `{v}` for `--format`: expected `npy` or `csv`"
                        ))
                    }
                }
            }
            "--threads" => {
                let v = value(flag)?;
                parsed.threads = Some(match v.parse::<u16>() {
                    Ok(n) if n >= 1 => usize::from(n),
                    _ => {
                        return Err(format!(
                            "invalid value `{v}` for `--threads`: expected a number from 1 to 65535"
                        ))
                    }
                })
            }
            "--quiet" if inline.is_none() => parsed.quiet = true,
            _ => return Err(format!("unexpected argument `{arg}`")),
        }
        i += 1;
    }
    Ok(parsed)
}

/// A number and the unit written after it (`-55mV`, `"10 ms"`, `3`).
pub fn parse_quantity(text: &str) -> Option<(f64, String)> {
    let text = text.trim();
    let split = text
        .char_indices()
        .find(|&(i, c)| {
            c.is_ascii_alphabetic() && !(matches!(c, 'e' | 'E') && exponent_follows(text, i))
        })
        .map_or(text.len(), |(i, _)| i);
    let (number, unit) = text.split_at(split);
    let value: f64 = number.trim().parse().ok()?;
    Some((value, unit.trim().to_string()))
}

/// Whether `e` at byte `i` of `text` starts an exponent (`1e-3`), not a unit (`1 eV`).
fn exponent_follows(text: &str, i: usize) -> bool {
    let before = text[..i]
        .chars()
        .last()
        .is_some_and(|c| c.is_ascii_digit() || c == '.');
    let mut after = text[i + 1..].chars();
    let next = after.next();
    before
        && match next {
            Some(c) if c.is_ascii_digit() => true,
            Some('+' | '-') => after.next().is_some_and(|c| c.is_ascii_digit()),
            _ => false,
        }
}

/// `--duration`: seconds.
fn parse_duration(text: &str) -> Result<f64, String> {
    let bad = || format!("--duration needs a time, such as `2 s`; `{text}` is not a time");
    let (value, unit) = parse_quantity(text).ok_or_else(bad)?;
    let scale = match unit.as_str() {
        "s" => 1.0,
        "ms" => 1e-3,
        "us" => 1e-6,
        "ns" => 1e-9,
        "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(bad()),
    };
    let seconds = value * scale;
    if !(seconds.is_finite() && seconds > 0.0) {
        return Err(format!("--duration must be positive, found `{text}`"));
    }
    Ok(seconds)
}

/// A `--set`: (population, variable, SI value), checked against the linked model.
fn parse_set(model: &Model, text: &str) -> Result<(usize, usize, f64), String> {
    let usage =
        || format!("--set expects POPULATION.VARIABLE=VALUE, such as `E.v=-55mV`; found `{text}`");
    let (target, value) = text.split_once('=').ok_or_else(usage)?;
    let (pop, var) = target.trim().split_once('.').ok_or_else(usage)?;
    let (p, v) = model.variable(pop, var)?;
    let desc = &model.linked.spec.populations[p].variables[v];
    let (number, unit) = parse_quantity(value).ok_or_else(|| {
        format!(
            "--set {pop}.{var}: `{}` is not a number with a unit",
            value.trim()
        )
    })?;
    let declared = desc.unit.as_str();
    let matches = unit == declared || (unit.is_empty() && declared == "1");
    if !matches {
        let example = if declared == "1" {
            String::new()
        } else {
            declared.to_string()
        };
        return Err(format!(
            "--set {pop}.{var}: the value must be in {}, the variable's declared unit (such as `--set {pop}.{var}=1{example}`); found `{}`",
            if declared == "1" { "no unit (a plain number)".to_string() } else { format!("`{declared}`") },
            value.trim()
        ));
    }
    Ok((p, v, number * desc.scale))
}

/// The executable's entry point, called by the generated C `main`.
///
/// # Safety
///
/// `argv` must point to `argc` valid NUL-terminated strings, as C's `main` receives them.
#[no_mangle]
pub unsafe extern "C" fn snnc_main(argc: c_int, argv: *const *const c_char) -> c_int {
    let args: Vec<String> = (1..argc.max(0) as usize)
        // SAFETY: the caller's contract: `argc` valid C strings.
        .map(|i| {
            unsafe { CStr::from_ptr(*argv.add(i)) }
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    main_with(&args)
}

fn main_with(args: &[String]) -> c_int {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return 0;
    }
    let args = match parse_args(args) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("error: {message}\n\n{USAGE}");
            return 2;
        }
    };
    let started = Instant::now();
    let linked = match crate::linked() {
        Ok(linked) => linked,
        Err(message) => {
            eprintln!("error: {message}");
            return 1;
        }
    };
    let spec = &linked.spec;
    let duration = match &args.duration {
        Some(text) => match parse_duration(text) {
            Ok(d) => d,
            Err(message) => {
                eprintln!("error: {message}");
                return 1;
            }
        },
        None => match spec.duration {
            Some(d) => d,
            None => {
                eprintln!(
                    "error: the network `{}` has no run length; pass `--duration`",
                    spec.network
                );
                return 1;
            }
        },
    };
    let seed = args.seed.unwrap_or(spec.seed);
    let steps = spec::steps_for(duration, spec.dt);
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("snnc-out"));
    let output = OutputSpec {
        dir: out.clone(),
        format: if args.csv {
            OutputFormat::Csv
        } else {
            OutputFormat::Npy
        },
    };
    let neurons: usize = spec.populations.iter().map(|p| p.size as usize).sum();
    if let Some(warning) = args
        .threads
        .and_then(snnc_runtime::parallel::oversubscription_warning)
    {
        if !args.quiet {
            eprintln!("warning: {warning}");
        }
    }
    let threads = args
        .threads
        .unwrap_or_else(|| snnc_runtime::parallel::default_threads(neurons));
    // Check every `--set` against the description before anything is built or written.
    let mut model = match Model::new(seed, steps, None, false, threads) {
        Ok(model) => model,
        Err(message) => {
            eprintln!("error: {message}");
            return 1;
        }
    };
    let mut sets = Vec::new();
    for text in &args.set {
        match parse_set(&model, text) {
            Ok(set) => sets.push(set),
            Err(message) => {
                eprintln!("error: {message}");
                return 1;
            }
        }
    }
    if let Err(e) = spec::record(spec, &mut model.network, &output) {
        eprintln!("error: {e}");
        return 1;
    }
    for &(p, v, value) in &sets {
        model.network.populations[p].arrays[v].fill(value);
    }
    if !args.quiet {
        for warning in &model.warnings {
            eprintln!("warning: {warning}");
        }
    }
    let build_time = started.elapsed();

    let show_progress = !args.quiet && duration > 1.0 && std::io::stderr().is_terminal();
    let run_started = Instant::now();
    let dt = spec.dt;
    let mut progress = |done: u64, total: u64| {
        if show_progress {
            eprint!(
                "{}",
                report::progress_line(done, total, dt, run_started.elapsed())
            );
        }
    };
    let stats = match model.run(steps, &mut progress) {
        Ok(stats) => stats,
        Err(error) => {
            eprintln!("error: the simulation stopped: {error}");
            eprintln!(
                "note: the partial outputs in {} are valid and marked as interrupted in manifest.json",
                out.display()
            );
            return 1;
        }
    };
    if let Err(error) = model.network.finish_recording(RunStatus::Complete) {
        eprintln!("error: writing the outputs failed: {error}");
        return 1;
    }
    let run_time = run_started.elapsed();
    if args.quiet {
        return 0;
    }
    let timings = report::Timings {
        compile: None,
        build: build_time,
        run: run_time,
    };
    let text = report::summary(&spec.network, &model.network, &stats, steps, &timings, &out);
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    0
}
