//! The LLVM backend (`snnc run --backend llvm`, cargo feature `llvm`) through the real binary.
//!
//! Built with the feature (`cargo test --workspace --features snnc/llvm`):
//!
//! * `every_example_gives_the_same_outputs_with_llvm_and_cranelift`: every runnable example's
//!   output files are byte for byte those of `--backend jit` (both backends agree with the
//!   interpreter bit for bit, so they agree with each other; LLVM runs on two threads, which
//!   must not change a bit either);
//! * `the_cuba_loop_is_vectorised_for_the_host`: the optimised LLVM IR of the CUBA kernels
//!   (dumped through `SNNC_LLVM_DUMP`) works on vectors as wide as the host allows (four
//!   doubles with AVX), and neither IR nor assembly fuses a multiply and an add.
//!
//! Built without it: `--backend llvm` is refused with a message saying how to get it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn snnc(args: &[&str], out: &Path, example: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_snnc"))
        .arg("run")
        .args(args)
        .arg("--out")
        .arg(out)
        .arg(example)
        .output()
        .expect("the snnc binary runs")
}

#[cfg(feature = "llvm")]
fn outputs(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("the output directory exists")
        .map(|e| {
            let path = e.expect("readable").path();
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            (file, std::fs::read(&path).expect("readable output"))
        })
        .collect();
    files.sort();
    files
}

#[cfg(feature = "llvm")]
#[test]
fn every_example_gives_the_same_outputs_with_llvm_and_cranelift() {
    let mut examples: Vec<PathBuf> = std::fs::read_dir(workspace().join("examples"))
        .expect("examples/ exists")
        .map(|e| e.expect("readable").path())
        .filter(|p| p.extension().is_some_and(|e| e == "snn"))
        .collect();
    examples.sort();
    let out_root = std::env::temp_dir().join(format!("snnc-llvm-{}", std::process::id()));
    let mut compared = Vec::new();
    for example in &examples {
        let name = example.file_name().unwrap().to_string_lossy().into_owned();
        let jit_out = out_root.join(format!("{name}-jit"));
        let llvm_out = out_root.join(format!("{name}-llvm"));
        // 100 ms of model time exercises every kernel and projection without the full cost.
        let jit = snnc(
            &["--duration", "100ms", "--quiet", "--threads", "1"],
            &jit_out,
            example,
        );
        let llvm = snnc(
            &[
                "--duration",
                "100ms",
                "--quiet",
                "--threads",
                "2",
                "--backend",
                "llvm",
            ],
            &llvm_out,
            example,
        );
        let (jit_err, llvm_err) = (
            String::from_utf8_lossy(&jit.stderr),
            String::from_utf8_lossy(&llvm.stderr),
        );
        if !jit.status.success() {
            // Examples the simulator cannot run yet (examples_run.rs keeps their list) must
            // fail the same way with either backend.
            assert!(
                jit_err.contains("not simulated yet") && llvm_err == jit_err,
                "{name}: jit failed: {jit_err}\nllvm: {llvm_err}"
            );
            continue;
        }
        assert!(llvm.status.success(), "{name} with llvm: {llvm_err}");
        let (a, b) = (outputs(&jit_out), outputs(&llvm_out));
        assert!(a.len() > 1, "{name}: no outputs besides the manifest");
        assert_eq!(
            a.iter().map(|f| &f.0).collect::<Vec<_>>(),
            b.iter().map(|f| &f.0).collect::<Vec<_>>(),
            "{name}: the backends wrote different files"
        );
        for ((file, x), (_, y)) in a.iter().zip(&b) {
            assert!(x == y, "{name}: {file} differs between jit and llvm");
        }
        compared.push(name);
    }
    let _ = std::fs::remove_dir_all(&out_root);
    assert!(compared.len() >= 4, "only {compared:?} ran");
}

#[cfg(all(feature = "llvm", target_arch = "x86_64"))]
#[test]
fn the_cuba_loop_is_vectorised_for_the_host() {
    let dir = std::env::temp_dir().join(format!("snnc-llvm-dump-{}", std::process::id()));
    let out = dir.join("out");
    let output = Command::new(env!("CARGO_BIN_EXE_snnc"))
        .env("SNNC_LLVM_DUMP", &dir)
        .args(["run", "--duration", "1ms", "--quiet", "--backend", "llvm"])
        .arg("--out")
        .arg(&out)
        .arg(workspace().join("examples/cuba.snn"))
        .output()
        .expect("the snnc binary runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let ir = std::fs::read_to_string(dir.join("kernels.ll")).expect("the IR was dumped");
    let asm = std::fs::read_to_string(dir.join("kernels.s")).expect("the assembly was dumped");
    let _ = std::fs::remove_dir_all(&dir);
    // x86-64 always has SSE2 (two doubles); AVX doubles that.
    let lanes = if std::is_x86_feature_detected!("avx") {
        4
    } else {
        2
    };
    let widest = ir
        .match_indices(" x double>")
        .filter_map(|(at, _)| {
            let open = ir[..at].rfind('<')?;
            ir[open + 1..at].parse::<u32>().ok()
        })
        .max()
        .unwrap_or(1);
    assert!(
        widest >= lanes,
        "the widest vector is {widest} doubles, the host allows {lanes}"
    );
    // Exactness: no fast-math flag on any instruction, no fused multiply-add.
    for banned in [
        " fast ",
        " contract ",
        " reassoc ",
        " nnan ",
        " ninf ",
        " nsz ",
        " arcp ",
        " afn ",
        "fmuladd",
        "llvm.fma",
    ] {
        assert!(!ir.contains(banned), "the IR contains `{banned}`");
    }
    for banned in ["vfmadd", "vfmsub", "vfnmadd", "vfnmsub"] {
        assert!(!asm.contains(banned), "the assembly contains `{banned}`");
    }
}

#[cfg(not(feature = "llvm"))]
#[test]
fn the_llvm_backend_needs_the_feature() {
    let out = std::env::temp_dir().join(format!("snnc-no-llvm-{}", std::process::id()));
    let output = snnc(
        &["--backend", "llvm"],
        &out,
        &workspace().join("examples/cuba.snn"),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("built without LLVM support") && stderr.contains("--features llvm"),
        "{stderr}"
    );
    assert!(!out.exists(), "nothing is written");
}
