//! Data-driven tests of what `snnc check` tells its users.
//!
//! # Layout and conventions
//!
//! * `tests/ui/<category>/<case>.snn` (at the top of the workspace) is a bad input. Its
//!   expected diagnostics, rendered as `snnc check` prints them, are in the sibling file
//!   `<case>.stderr`. Every case must produce at least one error. The categories are
//!   `lex`, `syntax`, `names`, `units`, `types`, `network` and `imports`; any `.snn` file
//!   found below `tests/ui/` by a recursive walk is a case, except helper files (next point).
//! * Helper files: a case that imports other files keeps them in a directory named after
//!   the case, next to it (`imports/cycle.snn` imports `"cycle/a.snn"`). A `.snn` file inside
//!   a directory `<dir>/` that has a sibling `<dir>.snn` is a helper, not a case.
//! * The first line of a case may be a comment `// <what this case tests>`; it is
//!   documentation only, and is part of the source the diagnostics point into.
//! * `tests/check/<case>.snn` is a good input: it must check without any diagnostic, and
//!   `snnc check --dump`'s summary of it is compared with `<case>.dump`. Helper files follow
//!   the same rule as above.
//! * Every `.snn` file under `examples/` and `stdlib/` (found recursively, not listed) must
//!   check without errors or warnings.
//!
//! File names in rendered diagnostics are relative to the workspace root
//! (`tests/ui/units/ode_rhs.snn`), so golden files hold no machine paths; imported files are
//! loaded from disk relative to the importing file and shown the same way.
//!
//! # Updating golden files
//!
//! `SNNC_BLESS=1 cargo test -p snnc --test ui` rewrites every `.stderr` and `.dump` file
//! from the compiler's current output (and deletes none). Review the diff before committing:
//! a golden file is a promise about what users will read.

use snnc::diagnostics::render_text;
use snnc::driver::{check_source, Checked};
use snnc::resolve::{LoadedSource, SourceLoader};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

/// The workspace root, which all displayed paths are relative to.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("the workspace root exists")
}

fn blessing() -> bool {
    std::env::var("SNNC_BLESS").is_ok_and(|v| v == "1")
}

/// Serves `import "path"` from disk, relative to the importing file, with workspace-relative
/// names (so rendered diagnostics do not depend on where the repository is checked out).
struct RelativeLoader {
    root: PathBuf,
}

/// Lexically normalises `a/b/../c` to `a/c`, with `/` separators.
fn normalise(path: &Path) -> String {
    let mut parts: Vec<String> = Vec::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                if parts.last().is_some_and(|p| p != "..") {
                    parts.pop();
                } else {
                    parts.push("..".to_string());
                }
            }
            Component::CurDir => {}
            other => parts.push(other.as_os_str().to_string_lossy().into_owned()),
        }
    }
    parts.join("/")
}

impl SourceLoader for RelativeLoader {
    fn load(&self, from: &str, path: &str) -> Result<LoadedSource, String> {
        let base = Path::new(from).parent().unwrap_or(Path::new(""));
        let name = normalise(&base.join(path));
        match std::fs::read_to_string(self.root.join(&name)) {
            Ok(text) => Ok(LoadedSource {
                key: name.clone(),
                display_name: name,
                text,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(format!("{name} does not exist"))
            }
            Err(e) => Err(format!("{name} cannot be read: {e}")),
        }
    }
}

/// Checks a file given by its workspace-relative name.
fn check_relative(name: &str) -> Checked {
    let root = root();
    let text = std::fs::read_to_string(root.join(name))
        .unwrap_or_else(|e| panic!("cannot read {name}: {e}"));
    check_source(name, &text, &RelativeLoader { root })
}

/// Every `.snn` file below `dir` (workspace-relative), recursively, sorted, as
/// workspace-relative names with `/` separators. With `skip_helpers`, files in a directory
/// `x/` that has a sibling `x.snn` are left out (they belong to case `x`).
fn snn_files(dir: &str, skip_helpers: bool) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, skip_helpers: bool, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            return;
        };
        let mut entries: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        entries.sort();
        for path in entries {
            let relative = dir.join(path.file_name().expect("a directory entry has a name"));
            if path.is_dir() {
                if skip_helpers && path.with_extension("snn").is_file() {
                    continue;
                }
                walk(root, &relative, skip_helpers, out);
            } else if path.extension().is_some_and(|e| e == "snn") {
                out.push(normalise(&relative));
            }
        }
    }
    let mut out = Vec::new();
    walk(&root(), Path::new(dir), skip_helpers, &mut out);
    out
}

/// A line diff (longest common subsequence), `-` for expected and `+` for actual lines.
fn diff(expected: &str, actual: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = String::new();
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push_str(&format!("   {}\n", a[i]));
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push_str(&format!("  +{}\n", b[j]));
            j += 1;
        } else {
            out.push_str(&format!("  -{}\n", a[i]));
            i += 1;
        }
    }
    if expected.ends_with('\n') != actual.ends_with('\n') {
        out.push_str("  (the files differ in their final newline)\n");
    }
    out
}

/// Compares `actual` with the golden file `golden` (workspace-relative), or rewrites it when
/// blessing. Returns a description of the mismatch, if any.
fn compare_golden(golden: &str, actual: &str) -> Option<String> {
    let path = root().join(golden);
    if blessing() {
        let current = std::fs::read_to_string(&path).ok();
        if current.as_deref() != Some(actual) {
            std::fs::write(&path, actual).unwrap_or_else(|e| panic!("cannot write {golden}: {e}"));
        }
        return None;
    }
    match std::fs::read_to_string(&path) {
        Ok(expected) if expected == actual => None,
        Ok(expected) => Some(format!(
            "{golden} differs from the output (- expected, + actual):\n{}",
            diff(&expected, actual)
        )),
        Err(_) => Some(format!(
            "{golden} is missing; the output is:\n{actual}\n(run with SNNC_BLESS=1 to create it)"
        )),
    }
}

fn golden_name(case: &str, extension: &str) -> String {
    format!("{}.{extension}", case.strip_suffix(".snn").unwrap_or(case))
}

fn report(kind: &str, cases: usize, failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} of {cases} {kind} cases failed:\n\n{}\n\nIf the new output is right, run \
         `SNNC_BLESS=1 cargo test -p snnc --test ui` and review the golden-file diff.",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn ui_cases_report_the_expected_diagnostics() {
    let cases = snn_files("tests/ui", true);
    assert!(
        cases.len() >= 60,
        "expected at least 60 ui cases, found {}",
        cases.len()
    );
    let mut failures = Vec::new();
    for case in &cases {
        let checked = check_relative(case);
        let rendered = render_text(&checked.sources, &checked.diagnostics);
        if !checked.has_errors() {
            failures.push(format!(
                "{case}: a ui case must produce an error, but it checked without one:\n{rendered}"
            ));
            continue;
        }
        if let Some(mismatch) = compare_golden(&golden_name(case, "stderr"), &rendered) {
            failures.push(format!("{case}: {mismatch}"));
        }
    }
    report("ui", cases.len(), &failures);
}

#[test]
fn ui_cases_are_in_known_categories_and_have_golden_files() {
    const CATEGORIES: &[&str] = &[
        "lex", "syntax", "names", "units", "types", "network", "imports",
    ];
    for case in snn_files("tests/ui", true) {
        let category = case.split('/').nth(2).unwrap_or("");
        assert!(
            CATEGORIES.contains(&category),
            "{case} is not in one of the categories {CATEGORIES:?}"
        );
    }
    // A golden file without its case is left over from a renamed or deleted case.
    let mut stale = Vec::new();
    fn walk(dir: &Path, stale: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, stale);
            } else if path
                .extension()
                .is_some_and(|e| e == "stderr" || e == "dump")
                && !path.with_extension("snn").is_file()
            {
                stale.push(path);
            }
        }
    }
    walk(&root().join("tests/ui"), &mut stale);
    walk(&root().join("tests/check"), &mut stale);
    assert!(stale.is_empty(), "golden files without a case: {stale:?}");
}

#[test]
fn good_inputs_check_clean_and_match_their_dumps() {
    let cases = snn_files("tests/check", true);
    assert!(
        cases.len() >= 8,
        "expected at least 8 good cases, found {}",
        cases.len()
    );
    let mut failures = Vec::new();
    for case in &cases {
        let checked = check_relative(case);
        if !checked.diagnostics.is_empty() {
            failures.push(format!(
                "{case}: a good input must check without diagnostics, but got:\n{}",
                render_text(&checked.sources, &checked.diagnostics)
            ));
            continue;
        }
        let dump = snnc::check::dump::dump(&checked.resolved);
        if let Some(mismatch) = compare_golden(&golden_name(case, "dump"), &dump) {
            failures.push(format!("{case}: {mismatch}"));
        }
    }
    report("check", cases.len(), &failures);
}

#[test]
fn every_example_and_stdlib_file_checks_clean() {
    let mut files = snn_files("examples", false);
    let examples = files.len();
    files.extend(snn_files("stdlib", false));
    assert!(examples > 0, "no examples found");
    assert!(files.len() > examples, "no stdlib files found");
    let mut failures = Vec::new();
    for file in &files {
        let checked = check_relative(file);
        if !checked.diagnostics.is_empty() {
            failures.push(format!(
                "{file}:\n{}",
                render_text(&checked.sources, &checked.diagnostics)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} files in examples/ and stdlib/ have errors or warnings:\n\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

fn snnc(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_snnc"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("the snnc binary runs")
}

const GOOD: &str = "examples/cuba.snn";
const BAD: &str = "tests/ui/units/ode_rhs_missing_tau.snn";

#[test]
fn binary_exit_codes_follow_the_outcome() {
    let good = snnc(&["check", GOOD]);
    assert_eq!(
        good.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&good.stderr)
    );
    assert!(good.stderr.is_empty());

    let bad = snnc(&["check", BAD]);
    assert_eq!(bad.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("error"), "stderr: {stderr}");
    assert!(stderr.contains(BAD), "stderr: {stderr}");
}

#[test]
fn binary_json_output_has_the_editor_fields() {
    let bad = snnc(&["check", "--format", "json", BAD]);
    assert_eq!(bad.status.code(), Some(1));
    let value: serde_json::Value =
        serde_json::from_slice(&bad.stdout).expect("`--format json` prints JSON");
    let items = value.as_array().expect("a JSON array");
    assert!(!items.is_empty());
    for item in items {
        assert_eq!(item["file"], BAD);
        assert!(item["line"].as_u64().is_some_and(|l| l > 0), "{item}");
        assert!(item["column"].as_u64().is_some_and(|c| c > 0), "{item}");
        assert!(item["severity"].is_string(), "{item}");
        assert!(item["message"].is_string(), "{item}");
    }
    assert!(items.iter().any(|i| i["severity"] == "error"));

    let good = snnc(&["check", "--format", "json", GOOD]);
    assert_eq!(good.status.code(), Some(0));
    let value: serde_json::Value = serde_json::from_slice(&good.stdout).expect("JSON");
    assert_eq!(value, serde_json::json!([]));
}

#[test]
fn binary_reports_a_missing_file_by_name() {
    let missing = "tests/ui/no_such_file.snn";
    let out = snnc(&["check", missing]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(missing), "stderr: {stderr}");

    let out = snnc(&["check", "--format", "json", missing]);
    assert_eq!(out.status.code(), Some(1));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(value[0]["file"], missing);
    assert_eq!(value[0]["severity"], "error");
    assert!(value[0]["message"]
        .as_str()
        .is_some_and(|m| m.contains(missing)));
}
