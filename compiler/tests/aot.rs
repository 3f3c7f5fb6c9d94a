//! Ahead-of-time builds (`snnc build`): every example built as an executable writes the same
//! files as `snnc run`, byte for byte (Cranelift JIT against Cranelift AOT: the same code
//! generator on the same kernels, and the same runtime construction from the same network
//! description, so no tolerance is needed); `--set` at run time of a runtime variable works
//! and of a folded parameter is refused; state files of another model are refused; the C
//! example of `examples/deploy/` gives `snnc run`'s spikes; objects for other targets carry
//! the right machine; bad flags are refused with exit status 2.
//!
//! The deploy runtime library must sit next to the `snnc` binary; the first test to need it
//! builds it with cargo (the same profile as this test's `snnc`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn snnc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_snnc"))
}

/// Builds `libsnnc_deploy.a` into the target directory of this test's `snnc`, once.
fn ensure_runtime_lib() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let exe = Path::new(env!("CARGO_BIN_EXE_snnc"));
        let release = exe
            .parent()
            .and_then(|p| p.file_name())
            .is_some_and(|n| n == "release");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let mut command = Command::new(cargo);
        command
            .current_dir(workspace())
            .args(["build", "-p", "snnc-deploy"]);
        if release {
            command.arg("--release");
        }
        let output = command.output().expect("cargo runs");
        assert!(
            output.status.success(),
            "building the deploy runtime failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    });
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("snnc-aot-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn check(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Every file of a directory, sorted by name, with its bytes.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let path = e.unwrap().path();
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&path).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

fn build(model: &Path, out: &Path, extra: &[&str]) -> Output {
    ensure_runtime_lib();
    snnc()
        .arg("build")
        .arg(model)
        .arg("-o")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn every_example_built_as_an_executable_writes_snnc_runs_outputs() {
    examples_match_snnc_run("examples", &[]);
}

/// LLVM AOT against Cranelift JIT: bit for bit as well (the LLVM backend keeps the
/// interpreter's semantics: no fast-math, no FMA contraction; `llvm_backend.rs`).
#[cfg(feature = "llvm")]
#[test]
fn every_example_built_with_llvm_writes_snnc_runs_outputs() {
    examples_match_snnc_run("examples-llvm", &["--backend", "llvm"]);
}

/// Builds every example with `build_flags` and compares the executable's outputs with
/// `snnc run`'s (Cranelift JIT).
fn examples_match_snnc_run(scratch_name: &str, build_flags: &[&str]) {
    let dir = scratch(scratch_name);
    let mut examples: Vec<PathBuf> = std::fs::read_dir(workspace().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "snn"))
        .collect();
    examples.sort();
    let mut compared = 0;
    for example in &examples {
        let name = example.file_stem().unwrap().to_string_lossy().into_owned();
        // 100 ms, seed 3 (not the file's), 2 threads: every kernel, projection and draw runs.
        let flags = [
            "--duration",
            "100ms",
            "--seed",
            "3",
            "--threads",
            "2",
            "--quiet",
        ];
        let jit_out = dir.join(format!("{name}-jit"));
        let run = snnc()
            .arg("run")
            .arg(example)
            .args(flags)
            .arg("--out")
            .arg(&jit_out)
            .output()
            .unwrap();
        if String::from_utf8_lossy(&run.stderr).contains("not simulated yet") {
            // Listed in examples_run.rs as awaiting a feature; `snnc build` must refuse it too.
            let built = build(example, &dir.join(&name), build_flags);
            assert!(!built.status.success(), "{name} built but cannot run");
            continue;
        }
        check(&run, &format!("snnc run {name}"));
        let exe = dir.join(&name);
        check(
            &build(example, &exe, build_flags),
            &format!("snnc build {name} {build_flags:?}"),
        );
        let aot_out = dir.join(format!("{name}-aot"));
        let ran = Command::new(&exe)
            .args(flags)
            .arg("--out")
            .arg(&aot_out)
            .output()
            .unwrap();
        check(&ran, &format!("the built {name}"));
        let (jit, aot) = (files(&jit_out), files(&aot_out));
        assert_eq!(
            jit.iter().map(|f| &f.0).collect::<Vec<_>>(),
            aot.iter().map(|f| &f.0).collect::<Vec<_>>(),
            "{name}: different output files"
        );
        for ((file, a), (_, b)) in jit.iter().zip(&aot) {
            assert!(
                a == b,
                "{name}: {file} differs between snnc run and the built executable"
            );
        }
        compared += 1;
    }
    assert!(compared >= 4, "only {compared} examples compared");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A model with a per-neuron parameter (an array at run time) and folded ones.
const DRIVEN: &str = r#"
import stdlib.neurons.lif
network Driven {
    dt = 0.1 ms
    N = iaf_psc_delta[20] { I_e = uniform(300 pA, 400 pA) }
    record spikes of N
    record I_e of N[0..3]
    run 50 ms
}
"#;

#[test]
fn set_at_run_time_changes_runtime_variables_and_refuses_folded_ones() {
    let dir = scratch("set");
    let model = dir.join("driven.snn");
    std::fs::write(&model, DRIVEN).unwrap();
    let exe = dir.join("driven");
    check(&build(&model, &exe, &[]), "snnc build");
    let run = |args: &[&str], out: &str| {
        Command::new(&exe)
            .args(args)
            .arg("--out")
            .arg(dir.join(out))
            .arg("--quiet")
            .output()
            .unwrap()
    };
    let spikes = |out: &str| std::fs::read(dir.join(out).join("N_spikes_indices.npy")).unwrap();
    // I_e is drawn per neuron, so it stays an array: 376 pA everywhere is recorded as such,
    // and changes the spikes.
    check(&run(&[], "default"), "default run");
    check(&run(&["--set", "N.I_e=376pA"], "set"), "--set N.I_e");
    assert_ne!(
        spikes("default"),
        spikes("set"),
        "--set N.I_e changed nothing"
    );
    let trace = std::fs::read(dir.join("set").join("N_I_e.npy")).unwrap();
    // The .npy payload: every sample of the 3 recorded neurons is exactly 376 (pA).
    let payload = &trace[trace.len() - 500 * 3 * 8..];
    assert!(payload
        .chunks(8)
        .all(|c| f64::from_le_bytes(c.try_into().unwrap()) == 376.0));
    // Zero input: the neurons rest below threshold and never spike (iaf_psc_delta needs
    // I_e > C_m (V_th - E_L) / tau_m = 375 pA to fire).
    check(&run(&["--set", "N.I_e=0 pA"], "zero"), "--set N.I_e=0");
    assert!(
        npy_payload(&spikes("zero"), 4).is_empty(),
        "spikes without input"
    );

    // A state variable set at run time equals `snnc run --set` of its initial value.
    check(&run(&["--set", "N.V_m=-60mV"], "state"), "--set N.V_m");
    let reference = snnc()
        .arg("run")
        .arg(&model)
        .args(["--set", "N.V_m=-60mV", "--quiet", "--out"])
        .arg(dir.join("state-ref"))
        .output()
        .unwrap();
    check(&reference, "snnc run --set N.V_m");
    assert_eq!(files(&dir.join("state")), files(&dir.join("state-ref")));

    // tau_m is uniform, so lowering folded it into the propagator: refused, with the way out.
    let folded = run(&["--set", "N.tau_m=20ms"], "folded");
    assert_eq!(folded.status.code(), Some(1));
    let message = String::from_utf8_lossy(&folded.stderr);
    assert!(
        message.contains("`N.tau_m` is a build-time constant (10 ms)")
            && message.contains("snnc build ... --set N.tau_m=VALUE"),
        "{message}"
    );
    // Units: the declared one only.
    let wrong_unit = run(&["--set", "N.I_e=3mV"], "unit");
    assert_eq!(wrong_unit.status.code(), Some(1));
    let message = String::from_utf8_lossy(&wrong_unit.stderr);
    assert!(message.contains("must be in `pA`"), "{message}");
    let unknown = run(&["--set", "N.nope=1"], "unknown");
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("has no variable `nope`"));
    // A build-time --set is a new constant.
    let rebuilt = dir.join("driven-fast");
    check(
        &build(&model, &rebuilt, &["--set", "N.tau_m=20ms"]),
        "snnc build --set",
    );
    let folded = Command::new(&rebuilt)
        .args(["--set", "N.tau_m=5ms", "--quiet", "--out"])
        .arg(dir.join("rebuilt"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&folded.stderr).contains("build-time constant (20 ms)"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_installed_snnc_finds_the_runtime_library_of_its_source_tree() {
    // `cargo install --path compiler` copies snnc alone into ~/.cargo/bin: nothing is next to
    // it, so it must find the library in the target directory of the tree it came from.
    ensure_runtime_lib();
    let dir = scratch("installed");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let installed = bin.join("snnc");
    std::fs::copy(env!("CARGO_BIN_EXE_snnc"), &installed).unwrap();
    // The test's own target directory (`TARGET/PROFILE/snnc`), as cargo would use it.
    let target_dir = Path::new(env!("CARGO_BIN_EXE_snnc"))
        .parent()
        .and_then(Path::parent)
        .unwrap();
    let exe = dir.join("cuba");
    let output = Command::new(&installed)
        .args(["build", "examples/cuba.snn", "-o"])
        .arg(&exe)
        .current_dir(workspace())
        .env_remove("SNNC_RUNTIME_LIB")
        .env("CARGO_TARGET_DIR", target_dir)
        .output()
        .unwrap();
    check(&output, "snnc build from a copied snnc");
    let ran = Command::new(&exe)
        .args(["--duration", "10 ms", "--out"])
        .arg(dir.join("out"))
        .output()
        .unwrap();
    check(&ran, "the executable it built");

    let missing = Command::new(&installed)
        .args(["build", "examples/cuba.snn", "-o"])
        .arg(&exe)
        .current_dir(workspace())
        .env("SNNC_RUNTIME_LIB", dir.join("nowhere.a"))
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    let message = String::from_utf8_lossy(&missing.stderr);
    assert!(
        message.contains("SNNC_RUNTIME_LIB") && message.contains("nowhere.a"),
        "{message}"
    );

    // A library that lacks the runtime's helpers, as one built before an update would: the
    // link fails, and the error says why and how to rebuild it.
    let stale = dir.join("libstale.a");
    let ar = Command::new("ar").arg("rcs").arg(&stale).output().unwrap();
    check(&ar, "ar rcs (an empty archive)");
    let output = Command::new(&installed)
        .args(["build", "examples/cuba.snn", "-o"])
        .arg(&exe)
        .current_dir(workspace())
        .env("SNNC_RUNTIME_LIB", &stale)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        message.contains("was built from older sources than this snnc")
            && message.contains("cargo build --release -p snnc-deploy"),
        "{message}"
    );
}

#[test]
fn bad_flags_are_refused_with_exit_status_2() {
    let dir = scratch("flags");
    let exe = dir.join("cuba");
    check(
        &build(&workspace().join("examples/cuba.snn"), &exe, &[]),
        "snnc build",
    );
    for (args, expected) in [
        (vec!["--bogus"], "unexpected argument `--bogus`"),
        (vec!["--threads", "0"], "invalid value `0` for `--threads`"),
        (
            vec!["--format", "xml"],
            "invalid value `xml` for `--format`",
        ),
        (vec!["--seed"], "a value is required for `--seed`"),
    ] {
        let output = Command::new(&exe).args(&args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let message = String::from_utf8_lossy(&output.stderr);
        assert!(message.contains(expected), "{args:?}: {message}");
    }
    let bad_duration = Command::new(&exe)
        .args(["--duration", "3 mV"])
        .output()
        .unwrap();
    assert_eq!(bad_duration.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad_duration.stderr).contains("is not a time"));
    // More threads than cores is allowed, with the warning `snnc run` gives.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let too_many = (cores + 1).to_string();
    let oversubscribed = Command::new(&exe)
        .args(["--duration", "2ms", "--threads", &too_many, "--out"])
        .arg(dir.join("oversubscribed"))
        .output()
        .unwrap();
    check(&oversubscribed, "the built cuba on too many threads");
    assert!(
        String::from_utf8_lossy(&oversubscribed.stderr).contains(&format!(
            "warning: --threads {too_many} is more than the {cores} core"
        )),
        "{}",
        String::from_utf8_lossy(&oversubscribed.stderr)
    );

    let model = workspace().join("examples/cuba.snn");
    let emit = build(&model, &dir.join("x"), &["--emit", "dll"]);
    assert_eq!(emit.status.code(), Some(2));
    let target = build(
        &model,
        &dir.join("x.o"),
        &["--emit", "obj", "--target", "vax-dec-vms"],
    );
    assert_eq!(target.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&target.stderr)
        .contains("cannot generate code for the target `vax-dec-vms`"));
    let cross_exe = build(
        &model,
        &dir.join("x"),
        &["--target", "aarch64-unknown-linux-gnu"],
    );
    assert_eq!(cross_exe.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&cross_exe.stderr).contains("object files only"));
    if !cfg!(feature = "llvm") {
        let llvm = build(&model, &dir.join("x"), &["--backend", "llvm"]);
        assert_eq!(llvm.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&llvm.stderr).contains("--features llvm"));
    }
    let missing = snnc()
        .env("SNNC_RUNTIME_LIB", dir.join("nowhere.a"))
        .arg("build")
        .arg(&model)
        .arg("-o")
        .arg(dir.join("y"))
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr)
        .contains("which is not a file; point it at libsnnc_deploy.a"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn objects_for_other_targets_carry_their_machine() {
    let dir = scratch("cross");
    for (triple, machine) in [
        ("aarch64-unknown-linux-gnu", "AArch64"),
        ("riscv64gc-unknown-linux-gnu", "RISC-V"),
        ("x86_64-unknown-linux-gnu", "X86-64"),
    ] {
        let object = dir.join(format!("{triple}.o"));
        let output = build(
            &workspace().join("examples/brunel.snn"),
            &object,
            &["--emit", "obj", "--target", triple],
        );
        check(&output, triple);
        let header = Command::new("readelf")
            .arg("-h")
            .arg(&object)
            .output()
            .unwrap();
        check(&header, "readelf -h");
        let text = String::from_utf8_lossy(&header.stdout);
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with("Machine:") && l.contains(machine)),
            "{triple}: {text}"
        );
        assert!(text.contains("REL (Relocatable file)"), "{triple}: {text}");
        let symbols = Command::new("readelf")
            .arg("-s")
            .arg(&object)
            .output()
            .unwrap();
        let symbols = String::from_utf8_lossy(&symbols.stdout);
        for name in ["snnc_model_spec", "snnc_model_kernels", "snnc_kernel_0_"] {
            assert!(symbols.contains(name), "{triple}: no {name}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Links `main` (C source) against the library of `model`'s network `network`.
fn c_program(dir: &Path, model: &Path, network: &str, main: &Path, name: &str) -> PathBuf {
    let lib = dir.join(format!("{name}-lib"));
    check(
        &build(
            model,
            &lib.join(name),
            &["--network", network, "--emit", "lib"],
        ),
        "snnc build --emit lib",
    );
    for file in [
        format!("lib{name}.a"),
        format!("lib{name}.so"),
        format!("{name}.h"),
        "libsnnc_deploy.a".to_string(),
    ] {
        assert!(lib.join(&file).is_file(), "{file} missing");
    }
    let exe = dir.join(format!("{name}-demo"));
    let output = Command::new("cc")
        .arg("-o")
        .arg(&exe)
        .arg(format!("-I{}", lib.display()))
        .arg(format!(
            "-include{}",
            lib.join(format!("{name}.h")).display()
        ))
        .arg(main)
        .arg("-Wl,--start-group")
        .arg(lib.join(format!("lib{name}.a")))
        .arg(lib.join("libsnnc_deploy.a"))
        .arg("-Wl,--end-group")
        .args(["-lpthread", "-ldl", "-lm", "-lrt"])
        .output()
        .unwrap();
    check(&output, "cc");
    exe
}

/// Reads a little-endian .npy payload of `n` values of `size` bytes (the header is the rest).
fn npy_payload(bytes: &[u8], size: usize) -> Vec<&[u8]> {
    let header = u16::from_le_bytes([bytes[8], bytes[9]]) as usize + 10;
    bytes[header..].chunks(size).collect()
}

#[test]
fn the_c_example_gives_snnc_runs_spikes_and_refuses_another_models_state() {
    let dir = scratch("deploy");
    let example = workspace().join("examples/deploy");
    // controller.h is included by name; copy main.c next to nothing else, so `-I` finds it.
    let exe = c_program(
        &dir,
        &example.join("controller.snn"),
        "Live",
        &example.join("main.c"),
        "controller",
    );
    // The header names every variable with its unit and role, and the input port.
    let header = std::fs::read_to_string(dir.join("controller-lib/controller.h")).unwrap();
    for line in [
        "population \"N\" (10 neurons, model iaf_psc_delta):",
        "\"V_m\" [mV]  state variable",
        "\"tau_m\" [ms]  build-time constant = 10 ms",
        "\"I_e\" [pA]  build-time constant = 0 pA",
        "input port: spike source \"In\" (20 elements): snnc_inject_spikes",
        "int snnc_inject_spikes(SnncModel *model, const char *source,",
    ] {
        assert!(
            header.contains(line),
            "no `{line}` in the header:\n{header}"
        );
    }
    let live = Command::new(&exe).arg("5").output().unwrap();
    check(&live, "the C example");
    let live: Vec<(u64, u32)> = String::from_utf8_lossy(&live.stdout)
        .lines()
        .map(|l| {
            let (s, i) = l.split_once(' ').unwrap();
            (s.parse().unwrap(), i.parse().unwrap())
        })
        .collect();
    assert!(live.len() > 50, "only {} spikes", live.len());

    let out = dir.join("recorded");
    let run = snnc()
        .arg("run")
        .arg(example.join("controller.snn"))
        .args(["--network", "Recorded", "--seed", "5", "--quiet", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    check(&run, "snnc run --network Recorded");
    let times = std::fs::read(out.join("N_spikes_times.npy")).unwrap();
    let indices = std::fs::read(out.join("N_spikes_indices.npy")).unwrap();
    // A spike of step k has time (k + 1) dt; dt = 0.1 ms, so rounding recovers k exactly.
    let recorded: Vec<(u64, u32)> = npy_payload(&times, 8)
        .into_iter()
        .zip(npy_payload(&indices, 4))
        .map(|(t, i)| {
            let t = f64::from_le_bytes(t.try_into().unwrap());
            (
                (t / 1e-4).round() as u64 - 1,
                u32::from_le_bytes(i.try_into().unwrap()),
            )
        })
        .collect();
    assert_eq!(live, recorded);

    // Saving halfway, resetting and loading the state again changes nothing.
    let state = dir.join("state.json");
    let resumed = Command::new(&exe).arg("5").arg(&state).output().unwrap();
    check(&resumed, "the C example with a state file");
    let straight = Command::new(&exe).arg("5").output().unwrap();
    assert_eq!(resumed.stdout, straight.stdout);

    // Another model (Recorded: another description, so another fingerprint) refuses it.
    let loader = dir.join("load.c");
    std::fs::write(
        &loader,
        "#include <stdio.h>\nint main(int argc, char **argv) {\n  SnncModel *m = snnc_create(1);\n  if (snnc_load_state(m, argv[1]) == 0) { puts(\"loaded\"); return 0; }\n  fprintf(stderr, \"%s\\n\", snnc_last_error());\n  return 1;\n}\n",
    )
    .unwrap();
    let other = c_program(
        &dir,
        &example.join("controller.snn"),
        "Recorded",
        &loader,
        "recorded",
    );
    let refused = Command::new(&other).arg(&state).output().unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.contains("was saved by a different model (network `Live`")
            && message.contains("this model is network `Recorded`"),
        "{message}"
    );
    let garbage = dir.join("garbage.json");
    std::fs::write(&garbage, "not a state").unwrap();
    let refused = Command::new(&other).arg(&garbage).output().unwrap();
    assert!(String::from_utf8_lossy(&refused.stderr).contains("is not an snnc state file"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The C API on a `precision = f32` model: `snnc_set` converts the value to SI in `f64` and
/// stores it rounded once to `f32`; `snnc_get` widens it exactly and converts back to the
/// declared unit in `f64`. The values chosen are not representable in `f32`, so the test sees
/// the rounding; a wrong length is refused with an explanation.
#[test]
fn the_c_api_rounds_an_f32_models_values_once() {
    let dir = scratch("capi-f32");
    let main = dir.join("f32.c");
    std::fs::write(
        &main,
        r#"#include <stdio.h>
#include <stdlib.h>
int main(void) {
  SnncModel *m = snnc_create(1);
  if (!m) { fprintf(stderr, "%s\n", snnc_last_error()); return 1; }
  int64_t n = snnc_population_size(m, "E");
  double *v = malloc(sizeof(double) * (size_t)n);
  for (int64_t i = 0; i < n; i++) v[i] = -55.123456789 + 1e-7 * (double)i;
  if (snnc_set(m, "E", "v", v, (size_t)n) != 0) { fprintf(stderr, "%s\n", snnc_last_error()); return 1; }
  for (int64_t i = 0; i < n; i++) v[i] = 0.0;
  if (snnc_get(m, "E", "v", v, (size_t)n) != 0) { fprintf(stderr, "%s\n", snnc_last_error()); return 1; }
  for (int64_t i = 0; i < 5; i++) printf("%.17g\n", v[i]);
  if (snnc_set(m, "E", "v", v, 3) == 0) return 2;
  fprintf(stderr, "%s\n", snnc_last_error());
  snnc_destroy(m);
  free(v);
  return 0;
}
"#,
    )
    .unwrap();
    let exe = c_program(
        &dir,
        &workspace().join("examples/cuba_f32.snn"),
        "CubaF32",
        &main,
        "cubaf32",
    );
    let output = Command::new(&exe).output().unwrap();
    check(&output, "the f32 C program");
    let got: Vec<f64> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    let expected: Vec<f64> = (0..5)
        .map(|i| {
            let millivolts = -55.123456789 + 1e-7 * f64::from(i);
            f64::from((millivolts * 1e-3) as f32) / 1e-3
        })
        .collect();
    assert_eq!(got, expected);
    // Rounding is visible: the values differ from what was set, by less than f32's precision.
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        let set = -55.123456789 + 1e-7 * i as f64;
        assert_ne!(*g, set);
        assert!(
            (g - set).abs() < 55.2 * f64::from(f32::EPSILON),
            "{g} vs {e}"
        );
    }
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        message.contains("`E.v` has 3200 values; give exactly that many"),
        "{message}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
