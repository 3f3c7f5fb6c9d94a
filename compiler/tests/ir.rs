//! Golden tests of the IR: every `tests/ir/*.snn` is checked, lowered and optimised, and the
//! printed program (what `snnc ir` shows) is compared with the sibling `.ir` file.
//!
//! These pin down the integrator each model gets and why, the propagator constants, which
//! parameters fold and which become arrays, and what the optimisation passes leave. After a
//! deliberate change, `SNNC_BLESS=1 cargo test -p snnc --test ir` rewrites the `.ir` files;
//! review the diff before committing it.

use snnc::lower::program::{print, Overrides};
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn ir_dumps_match_their_golden_files() {
    let dir = workspace().join("tests/ir");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/ir exists")
        .map(|e| e.expect("readable").path())
        .filter(|p| p.extension().is_some_and(|e| e == "snn"))
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 5,
        "expected the IR cases in {}",
        dir.display()
    );
    let bless = std::env::var_os("SNNC_BLESS").is_some();
    let mut failures = Vec::new();
    for case in &cases {
        let checked = snnc::driver::check_file(case).expect("readable case");
        assert!(
            !checked.has_errors(),
            "{} has errors: {:?}",
            case.display(),
            checked.diagnostics
        );
        let program = snnc::driver::lower(&checked, None, &Overrides::default())
            .unwrap_or_else(|d| panic!("{} does not lower: {d:?}", case.display()));
        let actual = print(&program);
        let golden = case.with_extension("ir");
        if bless {
            std::fs::write(&golden, &actual).expect("writable");
            continue;
        }
        let expected = std::fs::read_to_string(&golden).unwrap_or_default();
        if expected != actual {
            failures.push(format!(
                "{}: the IR differs from {}\n--- expected\n{expected}\n--- actual\n{actual}",
                case.display(),
                golden.display()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n(SNNC_BLESS=1 regenerates after a deliberate change)",
        failures.join("\n")
    );
}

#[test]
fn the_chosen_integrators_are_the_expected_ones() {
    // Independent of the golden files: the method each case must get, and why.
    let expect = [
        ("exact_cuba.snn", "integrator: exact"),
        ("exp_euler_coba.snn", "integrator: exp_euler"),
        ("rk4_izhikevich.snn", "integrator: rk4"),
        ("per_neuron_params.snn", "integrator: exp_euler"),
    ];
    for (file, note) in expect {
        let checked = snnc::driver::check_file(&workspace().join("tests/ir").join(file)).unwrap();
        let program = snnc::driver::lower(&checked, None, &Overrides::default()).unwrap();
        let notes = &program.populations[0].update.notes;
        assert!(
            notes.iter().any(|n| n.starts_with(note)),
            "{file}: notes are {notes:?}"
        );
    }
}
