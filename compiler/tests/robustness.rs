//! Robustness: the checker must never panic, whatever it is given, and every diagnostic it
//! reports must point inside its file.
//!
//! Three property tests feed `driver::check_source`:
//!
//! * random byte strings (converted to UTF-8 lossily);
//! * random strings over the language's own token alphabet (keywords, names, numbers with
//!   units, operators, brackets, newlines, comments, a few whole phrases), which reach far
//!   more parser and checker paths than random bytes;
//! * random mutations of every `.snn` file under `examples/` and `stdlib/` (found at run time):
//!   deleted and swapped byte ranges, duplicated lines, truncation, inserted tokens. Mutated
//!   standard-library files are also checked as an import of every example that uses them.
//!
//! For each input it asserts: no panic; every label's span lies in a loaded file, with
//! `start <= end <= len` on character boundaries; `render_text` and `render_json` do not panic
//! and the JSON parses.
//!
//! Case counts: `SNNC_FUZZ_CASES` sets the cases per strategy (default 3,400, so just over
//! 10,000 in all). Each run picks a random seed and prints it; a failure prints the shrunk
//! input, and `SNNC_FUZZ_SEED=<seed>` replays the same run. Failure persistence is off, so
//! nothing is written to the source tree.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestError, TestRunner};
use snnc::diagnostics::{render_json, render_text};
use snnc::driver::{check_source, MemoryLoader};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

const DEFAULT_CASES: u32 = 3_400;

/// The name the root file is checked under; the loader also serves it, so `import
/// "fuzz.snn"` makes an import cycle back to the root.
const ROOT: &str = "fuzz.snn";

fn cases() -> u32 {
    std::env::var("SNNC_FUZZ_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

fn seed() -> u64 {
    if let Some(seed) = std::env::var("SNNC_FUZZ_SEED")
        .ok()
        .and_then(|v| v.trim().parse().ok())
    {
        return seed;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    now ^ u64::from(std::process::id()).rotate_left(32)
}

/// Runs `strategy` through `test` with the configured number of cases, a printed seed and
/// no failure persistence; panics with the shrunk input on failure.
fn run_property<S>(name: &str, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S: Strategy,
    S::Value: std::fmt::Debug,
{
    let cases = cases();
    let seed = seed();
    let config = Config {
        cases,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(seed),
        // Inputs that fail are shrunk; keep that bounded so a failure reports quickly.
        max_shrink_iters: 2_000,
        ..Config::default()
    };
    let counter = AtomicU64::new(0);
    let started = Instant::now();
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |value| {
        counter.fetch_add(1, Ordering::Relaxed);
        test(value)
    });
    let elapsed = started.elapsed();
    match result {
        Ok(()) => println!(
            "{name}: {} cases passed in {:.2} s (seed {seed}; SNNC_FUZZ_CASES={cases})",
            counter.load(Ordering::Relaxed),
            elapsed.as_secs_f64()
        ),
        Err(TestError::Fail(reason, value)) => panic!(
            "{name}: failed after {} cases: {reason}\nminimal input: {value:#?}\n\
             replay with SNNC_FUZZ_SEED={seed} SNNC_FUZZ_CASES={cases}",
            counter.load(Ordering::Relaxed)
        ),
        Err(TestError::Abort(reason)) => panic!("{name}: aborted: {reason} (seed {seed})"),
    }
}

fn loader_for(text: &str, extra: &[(&str, &str)]) -> MemoryLoader {
    let mut loader = MemoryLoader::default();
    loader.files.insert(ROOT.to_string(), text.to_string());
    loader.files.insert("a.snn".to_string(), text.to_string());
    loader.files.insert(
        "lif.snn".to_string(),
        snnc::stdlib::source("neurons.lif")
            .unwrap_or("")
            .to_string(),
    );
    for (name, text) in extra {
        loader.files.insert(name.to_string(), text.to_string());
    }
    loader
}

/// Checks `text` as the root file and verifies every diagnostic and both renderings.
fn check_all(name: &str, text: &str, loader: &MemoryLoader) -> Result<(), TestCaseError> {
    let checked = check_source(name, text, loader);
    let files: Vec<_> = checked.sources.files().map(|(_, f)| f).collect();
    for diagnostic in &checked.diagnostics {
        for label in &diagnostic.labels {
            let span = label.span;
            let Some(file) = files.get(span.file.0 as usize) else {
                return Err(TestCaseError::fail(format!(
                    "label {:?} of `{}` names file {} of {}",
                    span,
                    diagnostic.message,
                    span.file.0,
                    files.len()
                )));
            };
            let (start, end, len) = (span.start as usize, span.end as usize, file.text.len());
            if !(start <= end && end <= len) {
                return Err(TestCaseError::fail(format!(
                    "label {start}..{end} of `{}` lies outside `{}` ({len} bytes)",
                    diagnostic.message, file.name
                )));
            }
            if !file.text.is_char_boundary(start) || !file.text.is_char_boundary(end) {
                return Err(TestCaseError::fail(format!(
                    "label {start}..{end} of `{}` splits a character in `{}`",
                    diagnostic.message, file.name
                )));
            }
        }
    }
    let _ = render_text(&checked.sources, &checked.diagnostics);
    let json = render_json(&checked.sources, &checked.diagnostics);
    if serde_json::from_str::<serde_json::Value>(&json).is_err() {
        return Err(TestCaseError::fail(format!(
            "render_json gave invalid JSON: {json}"
        )));
    }
    Ok(())
}

fn check_text(text: &str) -> Result<(), TestCaseError> {
    check_all(ROOT, text, &loader_for(text, &[]))
}

// ---------------------------------------------------------------- (a) random bytes

#[test]
fn random_bytes_never_panic() {
    let strategy = prop::collection::vec(any::<u8>(), 0..400)
        .prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
    run_property("random bytes", strategy, |text| check_text(&text));
}

// ---------------------------------------------------------------- (b) token strings

/// The language's own alphabet: every keyword and punctuation token, names the standard
/// library and examples use, numbers (with ones that overflow), units, strings naming files
/// the loader has and has not, comments, stray characters, and some whole phrases.
const TOKENS: &[&str] = &[
    // Keywords.
    "import",
    "as",
    "neuron",
    "synapse",
    "network",
    "param",
    "state",
    "shared",
    "pre",
    "post",
    "let",
    "target",
    "spike",
    "when",
    "reset",
    "refractory",
    "unless",
    "method",
    "on",
    "if",
    "else",
    "and",
    "or",
    "not",
    "true",
    "false",
    "connect",
    "where",
    "from",
    "delay",
    "record",
    "of",
    "every",
    "input",
    "spikes",
    "run",
    // Names.
    "v",
    "ge",
    "gi",
    "g",
    "w",
    "x",
    "i",
    "j",
    "t",
    "dt",
    "seed",
    "p",
    "E",
    "I",
    "N",
    "S",
    "tau_m",
    "tau_e",
    "v_rest",
    "v_th",
    "v_reset",
    "t_ref",
    "LifExp",
    "Static",
    "Cuba",
    "bernoulli",
    "uniform",
    "normal",
    "exp",
    "log",
    "sqrt",
    "abs",
    "min",
    "max",
    "euler",
    "exact",
    "stdlib",
    "neurons",
    "synapses",
    "lif",
    "static",
    "_",
    "é",
    // Units.
    "ms",
    "s",
    "us",
    "mV",
    "V",
    "nA",
    "pA",
    "pF",
    "nS",
    "Hz",
    "kHz",
    "um",
    "µm",
    "Ω",
    "MΩ",
    "mm",
    "m",
    "kg",
    "mol",
    "K",
    "A",
    "1",
    // Numbers.
    "0",
    "1",
    "2",
    "0.5",
    "20",
    "1.62",
    "-9",
    "0.02",
    "3200",
    "1e3",
    "2.5e-3",
    "1E+2",
    "1e400",
    "99999999999",
    "4294967296",
    "00",
    "1.",
    // Derivatives.
    "dv/dt",
    "dge/dt",
    "dx/dt",
    "dq/dt",
    // Strings.
    "\"a.snn\"",
    "\"lif.snn\"",
    "\"fuzz.snn\"",
    "\"missing.snn\"",
    "\"\"",
    "\"x",
    // Punctuation and operators.
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    ",",
    ":",
    ";",
    ".",
    "..",
    "->",
    "=",
    "+=",
    "-=",
    "*=",
    "/=",
    "+",
    "-",
    "*",
    "/",
    "^",
    "%",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    // Layout, comments, stray characters.
    "\n",
    "\n",
    "\n",
    "\n\n",
    "// comment\n",
    "/// doc\n",
    "\t",
    "$",
    "#",
    "\u{0}",
    "\r\n",
    // Phrases that get the parser into declarations, so the checker sees more.
    "neuron N {\n",
    "synapse S {\n",
    "network Net {\n",
    "}\n",
    "param tau: ms = 10 ms\n",
    "state v: mV = 0 mV\n",
    "state x: 1 = 0\n",
    "shared param a: nA = 1 nA\n",
    "pre state y: 1 = 0\n",
    "post param z: [v] = 1\n",
    "let k = v / tau\n",
    "dv/dt = -v / tau\n",
    "dx/dt = -x / tau unless refractory\n",
    "spike when v > 1 mV\n",
    "reset { v = 0 mV }\n",
    "refractory 2 ms\n",
    "target g\n",
    "target g: nA\n",
    "on pre { g += w }\n",
    "on post { x = 1 }\n",
    "method = euler\n",
    "if v > 0 mV { v = 0 mV } else { v += 1 mV }\n",
    "import stdlib.neurons.lif\n",
    "import stdlib.synapses.static\n",
    "import \"a.snn\"\n",
    "import \"lif.snn\"\n",
    "dt = 0.1 ms\n",
    "seed = 1\n",
    "E = LifExp[100] { v = uniform(-60 mV, -50 mV) }\n",
    "P = N[10]\n",
    "Q = spikes[10] from \"x.csv\"\n",
    "E -> E : Static { w = 1 mV, target = ge } connect bernoulli(p = 0.1)\n",
    "E -> P : S connect where i == j delay 1 ms\n",
    "E, P -> E[0..10] : S connect from \"c.csv\"\n",
    "input E.v = 1 mV\n",
    "input P.x from \"in.csv\" every 1 ms\n",
    "record spikes of E\n",
    "record v, ge of E[0..10] every 1 ms\n",
    "run 1 s\n",
];

fn token_string() -> impl Strategy<Value = String> {
    let separator = prop::sample::select(vec!["", " ", " ", " ", "\n"]);
    prop::collection::vec((prop::sample::select(TOKENS), separator), 0..160).prop_map(|tokens| {
        let mut text = String::new();
        for (token, separator) in tokens {
            text.push_str(token);
            text.push_str(separator);
        }
        text
    })
}

#[test]
fn token_strings_never_panic() {
    run_property("token strings", token_string(), |text| check_text(&text));
}

// ---------------------------------------------------------------- (c) mutated real files

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the compiler crate lies inside the workspace")
        .to_path_buf()
}

fn collect_snn(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            collect_snn(&path, out);
        } else if path.extension().is_some_and(|e| e == "snn") {
            out.push(path);
        }
    }
}

/// A seed file: its text, and for a standard-library file the dotted module path that
/// `import` names it by.
#[derive(Debug, Clone)]
struct Seed {
    path: String,
    text: String,
    module: Option<String>,
}

fn seeds() -> Vec<Seed> {
    let root = workspace_root();
    let mut paths = Vec::new();
    collect_snn(&root.join("examples"), &mut paths);
    collect_snn(&root.join("stdlib"), &mut paths);
    paths
        .into_iter()
        .filter_map(|path| {
            let text = std::fs::read_to_string(&path).ok()?;
            let relative = path.strip_prefix(&root).ok()?.to_path_buf();
            let module = relative.starts_with("stdlib").then(|| {
                relative
                    .with_extension("")
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join(".")
            });
            Some(Seed {
                path: relative.display().to_string(),
                text,
                module,
            })
        })
        .collect()
}

/// One edit. Positions are fractions (in 1/65536ths) of the current length, so the same
/// edit applies to a text of any size and shrinks sensibly.
#[derive(Debug, Clone)]
enum Mutation {
    Delete { at: u16, len: u16 },
    Swap { a: u16, b: u16, len: u16 },
    DuplicateLine { line: u16 },
    Truncate { at: u16 },
    Insert { at: u16, token: &'static str },
}

fn position(fraction: u16, len: usize) -> usize {
    (len * fraction as usize) / 65_536
}

fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    let len = bytes.len();
    match *mutation {
        Mutation::Delete { at, len: n } => {
            let start = position(at, len);
            let end = (start + n as usize % 64).min(len);
            bytes.drain(start..end);
        }
        Mutation::Swap { a, b, len: n } => {
            let (a, b) = (position(a, len), position(b, len));
            let (first, second) = (a.min(b), a.max(b));
            let n = (n as usize % 48).min(second - first).min(len - second);
            if n > 0 {
                let left: Vec<u8> = bytes[first..first + n].to_vec();
                let right: Vec<u8> = bytes[second..second + n].to_vec();
                bytes[first..first + n].copy_from_slice(&right);
                bytes[second..second + n].copy_from_slice(&left);
            }
        }
        Mutation::DuplicateLine { line } => {
            let starts: Vec<usize> = std::iter::once(0)
                .chain(
                    bytes
                        .iter()
                        .enumerate()
                        .filter(|(_, b)| **b == b'\n')
                        .map(|(i, _)| i + 1),
                )
                .filter(|&i| i < len)
                .collect();
            if starts.is_empty() {
                return;
            }
            let start = starts[position(line, starts.len())];
            let end = bytes[start..]
                .iter()
                .position(|b| *b == b'\n')
                .map_or(len, |i| start + i + 1);
            let mut copy: Vec<u8> = bytes[start..end].to_vec();
            if !copy.ends_with(b"\n") {
                copy.insert(0, b'\n');
            }
            bytes.splice(end..end, copy);
        }
        Mutation::Truncate { at } => bytes.truncate(position(at, len)),
        Mutation::Insert { at, token } => {
            let at = position(at, len);
            bytes.splice(at..at, token.bytes());
        }
    }
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<u16>(), any::<u16>()).prop_map(|(at, len)| Mutation::Delete { at, len }),
        2 => (any::<u16>(), any::<u16>(), any::<u16>())
            .prop_map(|(a, b, len)| Mutation::Swap { a, b, len }),
        2 => any::<u16>().prop_map(|line| Mutation::DuplicateLine { line }),
        1 => any::<u16>().prop_map(|at| Mutation::Truncate { at }),
        4 => (any::<u16>(), prop::sample::select(TOKENS))
            .prop_map(|(at, token)| Mutation::Insert { at, token }),
    ]
}

#[test]
fn mutated_files_never_panic() {
    let seeds = seeds();
    assert!(
        seeds.iter().any(|s| s.module.is_none()) && seeds.iter().any(|s| s.module.is_some()),
        "expected .snn files under both examples/ and stdlib/ in {}",
        workspace_root().display()
    );
    let examples: Vec<Seed> = seeds
        .iter()
        .filter(|s| s.module.is_none())
        .cloned()
        .collect();
    // Every seed file checks without a panic before it is mutated.
    for seed in &seeds {
        if let Err(error) = check_all(&seed.path, &seed.text, &loader_for(&seed.text, &[])) {
            panic!("{}: {error}", seed.path);
        }
    }
    let strategy = (0..seeds.len(), prop::collection::vec(mutation(), 1..5));
    run_property("mutated files", strategy, |(index, mutations)| {
        let seed = &seeds[index];
        let mut bytes = seed.text.as_bytes().to_vec();
        for mutation in &mutations {
            apply(&mut bytes, mutation);
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        check_all(&seed.path, &text, &loader_for(&text, &[]))?;
        // A mutated standard-library file, imported by file path from every example that
        // imports it: errors now come from two files.
        if let Some(module) = &seed.module {
            let import = format!("import {module}");
            for example in examples.iter().filter(|e| e.text.contains(&import)) {
                let root = example.text.replace(&import, "import \"mutated.snn\"");
                check_all(
                    &example.path,
                    &root,
                    &loader_for(&root, &[("mutated.snn", &text)]),
                )?;
            }
        }
        Ok(())
    });
}

// ---------------------------------------------------------------- regressions

/// Inputs found by the properties above (or the fuzz target in `fuzz/`) that once panicked
/// or produced a bad span. Each stays here as a fixed case.
#[test]
fn regressions() {
    let cases: &[&str] = &[
        "",
        "\n",
        "}",
        "neuron",
        "neuron N {",
        "network N { E = ",
        "dv/dt",
        "1e400",
        "µΩ",
        "\"unterminated",
        "import \"fuzz.snn\"",
        "import stdlib",
        "import stdlib.neurons.nothing",
    ];
    for case in cases {
        if let Err(error) = check_text(case) {
            panic!("{case:?}: {error}");
        }
    }
}

fn nested(depth: usize) -> Vec<(&'static str, String)> {
    vec![
        (
            "unary minus",
            format!("network N {{ run {}1 ms }}", "-".repeat(depth)),
        ),
        (
            "not",
            format!("network N {{ run {}true }}", "not ".repeat(depth)),
        ),
        (
            "power",
            format!("network N {{ run 2{} }}", "^2".repeat(depth)),
        ),
        (
            "sum",
            format!("network N {{ run 1 ms{} }}", " + 1 ms".repeat(depth)),
        ),
        (
            "parentheses",
            format!(
                "network N {{ run {}1 ms{} }}",
                "(".repeat(depth),
                ")".repeat(depth)
            ),
        ),
    ]
}

/// Nesting as deep as generated code might plausibly write must check on a test thread's
/// small (2 MiB) stack in a debug build.
#[test]
fn moderately_deep_expressions_check() {
    for (what, text) in nested(300) {
        if let Err(error) = check_text(&text) {
            panic!("{what}: {error}");
        }
    }
}

/// Deeply nested expressions once overflowed the stack (an abort, not a panic) in the passes
/// after parsing. The parser now refuses expressions nested more than `MAX_EXPR_DEPTH` levels
/// with a diagnostic, so `network N { run <100,000 × "-">1 ms }` is an error, not a crash.
#[test]
fn very_deep_expressions_do_not_overflow_the_stack() {
    for (what, text) in nested(100_000) {
        if let Err(error) = check_text(&text) {
            panic!("{what}: {error}");
        }
    }
}

/// Runs of blank lines once took quadratic time in the lexer (each newline scanned forward
/// past all the following ones). It now decides statement ends back to front in one pass.
/// No timing is asserted here (benchmarks measure time, tests do not); a quadratic lexer
/// would make this test take minutes, which CI's time limit would show.
#[test]
fn long_runs_of_blank_lines_are_accepted() {
    let text = format!("network N {{\n{}run 1 s\n}}\n", "\n".repeat(200_000));
    check_text(&text).unwrap();
}
