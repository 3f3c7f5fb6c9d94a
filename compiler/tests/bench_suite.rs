//! The benchmark suite's own checks (`bench/suite/test_suite.py`), run with the workspace's
//! tests so that a changed example or a changed `snnc run` summary that the suite can no
//! longer read fails here rather than on the day someone benchmarks.
//!
//! The Python tests measure nothing and need neither the peers (Brian2, NEST) nor the snnc
//! binary: they parse recorded outputs, generate the benchmark models from the current
//! `examples/`, and rebuild the results table from recorded samples. They are deterministic,
//! so this test cannot be flaky. It needs `python3` (3.8 or newer, standard library only) and
//! says so when it is missing rather than passing without having run.

use std::path::Path;
use std::process::Command;

#[test]
fn the_benchmark_suite_parses_generates_and_tabulates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let script = root.join("bench").join("suite").join("test_suite.py");
    let output = Command::new("python3")
        .arg(&script)
        .current_dir(&root)
        .output()
        .unwrap_or_else(|error| {
            panic!(
                "could not start python3 ({error}); the benchmark suite's tests need Python 3.8+"
            )
        });
    assert!(
        output.status.success(),
        "{} failed:\n{}{}",
        script.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
