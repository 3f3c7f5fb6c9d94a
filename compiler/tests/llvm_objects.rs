//! Ahead-of-time objects from the LLVM backend (`codegen::llvm::emit_object`, cargo feature
//! `llvm`; `cargo test -p snnc --features llvm --test llvm_objects`).
//!
//! * `host_objects_run_like_the_jit`: the CUBA example's update kernels, emitted as an object
//!   for this machine, linked into a shared library by the system C compiler and loaded, leave
//!   the same arrays and spikes as the JIT's kernels, bit for bit, for 300 steps. (CUBA's
//!   kernels call no runtime helper, so the library needs nothing from this process.)
//! * `cross_objects_are_for_their_architecture`: objects for `aarch64-unknown-linux-gnu` and
//!   `riscv64gc-unknown-linux-gnu` (of CUBA, COBA, the adaptive-step example and a clipped
//!   weight update with a gathered variable) are ELF files for that machine (read back with `readelf`),
//!   export every kernel, import only the runtime's helpers, vectorise where the architecture
//!   has vectors (NEON), and contain no fused multiply-add (which would change results).
//! * `unsupported_targets_are_refused`: a 32-bit or unknown target gives an error that says
//!   which targets there are.
#![cfg(feature = "llvm")]

use snnc::codegen::{jit_compile, llvm};
use snnc::driver;
use snnc::instantiate::run_kernel_once;
use snnc::ir::interp::StepInfo;
use snnc::ir::Kernel;
use snnc::lower::program::{stream_of_init, stream_of_update, Overrides, Program};
use snnc_runtime::abi::{KernelContext, KernelFn, GATHERS};
use snnc_runtime::rng::Stream;
use std::ffi::{c_char, c_int, c_void, CString};
use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("snnc-llvm-objects-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn lowered(example: &str) -> Program {
    let checked = driver::check_file(&workspace().join("examples").join(example)).unwrap();
    assert!(!checked.has_errors(), "{example} has errors");
    driver::lower(&checked, None, &Overrides::default())
        .unwrap_or_else(|d| panic!("{example}: {}", d[0].message))
}

fn symbols(n: usize) -> Vec<String> {
    (0..n).map(|k| format!("cuba_kernel_{k}")).collect()
}

// glibc (2.34 and later: in libc itself) loads the shared library; std has no binding.
extern "C" {
    fn dlopen(filename: *const c_char, flags: c_int) -> *mut c_void;
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
    fn dlerror() -> *const c_char;
}
const RTLD_NOW: c_int = 2;

fn dl_error() -> String {
    // SAFETY: dlerror returns null or a NUL-terminated message owned by the loader.
    unsafe {
        let message = dlerror();
        if message.is_null() {
            "unknown error".to_string()
        } else {
            std::ffi::CStr::from_ptr(message)
                .to_string_lossy()
                .into_owned()
        }
    }
}

/// Calls a kernel through the ABI, as the runtime does, over every element.
fn call(function: KernelFn, arrays: &mut [Vec<f64>], info: StepInfo, spikes: &mut Vec<u32>) {
    let n = arrays[0].len();
    let pointers: Vec<*mut f64> = arrays.iter_mut().map(|a| a.as_mut_ptr()).collect();
    spikes.clear();
    spikes.resize(n, 0);
    let mut context = KernelContext {
        arrays: pointers.as_ptr(),
        start: 0,
        end: n as u64,
        step: info.step,
        t: info.t,
        stream_key: Stream::new(info.seed, info.stream).key(),
        spikes: spikes.as_mut_ptr(),
        n_spikes: 0,
        gather: [std::ptr::null(); GATHERS],
    };
    // SAFETY: every array holds `n` elements, the spike buffer has room for `n` entries, and
    // the function was compiled for this ABI from a kernel over these arrays.
    unsafe { function(&mut context) };
    spikes.truncate(context.n_spikes as usize);
}

#[test]
fn host_objects_run_like_the_jit() {
    let program = lowered("cuba.snn");
    let kernels: Vec<&Kernel> = program.populations.iter().map(|p| &p.update).collect();
    let names = symbols(kernels.len());
    let object = llvm::emit_object(&kernels, &names, None).expect("an object for the host");
    let dir = scratch("host");
    std::fs::write(dir.join("kernels.o"), &object).unwrap();
    let library = dir.join("libkernels.so");
    let linked = Command::new("cc")
        .arg("-shared")
        .arg("-o")
        .arg(&library)
        .arg(dir.join("kernels.o"))
        .output()
        .expect("the system C compiler runs");
    assert!(
        linked.status.success(),
        "cc -shared: {}",
        String::from_utf8_lossy(&linked.stderr)
    );
    let path = CString::new(library.to_str().unwrap()).unwrap();
    // SAFETY: a library of kernels has no initialisers; it stays loaded until the process ends.
    let handle = unsafe { dlopen(path.as_ptr(), RTLD_NOW) };
    assert!(!handle.is_null(), "dlopen: {}", dl_error());
    let loaded: Vec<KernelFn> = names
        .iter()
        .map(|name| {
            let symbol = CString::new(name.as_str()).unwrap();
            // SAFETY: the symbol names a function of type `KernelFn` (emit_object's contract).
            let address = unsafe { dlsym(handle, symbol.as_ptr()) };
            assert!(!address.is_null(), "dlsym {name}: {}", dl_error());
            unsafe { std::mem::transmute::<*mut c_void, KernelFn>(address) }
        })
        .collect();
    let jit = jit_compile(&kernels).unwrap();

    let mut total_spikes = 0;
    for (index, population) in program.populations.iter().enumerate() {
        let n = population.size as usize;
        let mut arrays = vec![vec![0.0; n]; population.update.vars.len()];
        run_kernel_once(
            &population.init,
            &mut arrays,
            program.seed,
            stream_of_init(index),
        );
        // CUBA's neurons start below threshold and receive no input here; a constant drive
        // makes them fire, so thresholds, resets and refractoriness are exercised too.
        let v = population
            .update
            .vars
            .iter()
            .position(|var| var.name == "v")
            .expect("CUBA's neurons have `v`");
        for (k, x) in arrays[v].iter_mut().enumerate() {
            *x += 0.02 * (k % 7) as f64;
        }
        let mut from_object = arrays.clone();
        let (mut jit_spikes, mut object_spikes) = (Vec::new(), Vec::new());
        for step in 0..300 {
            let info = StepInfo {
                step,
                t: step as f64 * program.dt,
                seed: program.seed,
                stream: stream_of_update(index),
            };
            let mut views: Vec<&mut [f64]> = arrays.iter_mut().map(|a| a.as_mut_slice()).collect();
            jit.run(index, &mut views, 0, n, info, &mut jit_spikes);
            call(loaded[index], &mut from_object, info, &mut object_spikes);
            assert_eq!(jit_spikes, object_spikes, "spikes at step {step}");
            total_spikes += jit_spikes.len();
            jit_spikes.clear();
            for (a, b) in arrays.iter().zip(&from_object) {
                let same = a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
                assert!(same, "{}: arrays differ at step {step}", population.name);
            }
        }
    }
    assert!(total_spikes > 0, "the drive made no neuron fire");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `readelf`'s answer for `args` on `object`.
fn readelf(args: &[&str], object: &Path) -> String {
    let output = Command::new("readelf")
        .args(args)
        .arg(object)
        .output()
        .expect("readelf (binutils) runs");
    assert!(output.status.success(), "readelf {args:?} failed");
    String::from_utf8(output.stdout).unwrap()
}

fn disassembly(object: &Path) -> String {
    let output = Command::new("llvm-objdump-14")
        .arg("-d")
        .arg(object)
        .output()
        .expect("llvm-objdump-14 (llvm-14) runs");
    assert!(output.status.success(), "llvm-objdump-14 failed");
    String::from_utf8(output.stdout).unwrap()
}

/// `w[i] = min(max(w[i] + x[pre[i]], 0), 1)`: the clipped weight update of an STDP handler.
fn clip_kernel() -> Kernel {
    use snnc::ir::{Access, BinOp, Expr, Stmt, VarInfo, VarRole};
    let var = |name: &str, access: Access| VarInfo {
        access,
        name: name.to_string(),
        role: VarRole::State,
        unit: String::new(),
        scale: 1.0,
        storage: Default::default(),
    };
    let bin = |op, a, b| Expr::Binary(op, Box::new(a), Box::new(b));
    let sum = bin(BinOp::Add, Expr::Var(0), Expr::Var(1));
    let clipped = bin(BinOp::Min, bin(BinOp::Max, sum, Expr::c(0.0)), Expr::c(1.0));
    Kernel {
        name: "clip".to_string(),
        vars: vec![var("w", Access::Element), var("x", Access::Gather(0))],
        n_locals: 0,
        n_draws: 0,
        body: vec![Stmt::Store(0, clipped)],
        notes: Vec::new(),
    }
}

#[test]
fn cross_objects_are_for_their_architecture() {
    // Brunel's Poisson input calls `snnc_random`, so its objects must import a runtime
    // symbol; CUBA and COBA are plain arithmetic, so theirs import nothing; `exp` (the
    // adaptive neurons' exponential current) is inline, so nothing imports it.
    for example in ["cuba.snn", "coba.snn", "brunel.snn", "adaptive_neurons.snn"] {
        let program = lowered(example);
        // Besides the example's kernels, one with `min`/`max` (compared through LLVM's
        // arithmetic fence) and a gathered variable, as plasticity handlers have.
        let clip = clip_kernel();
        let mut kernels: Vec<&Kernel> = program.populations.iter().map(|p| &p.update).collect();
        kernels.push(&clip);
        let names = symbols(kernels.len());
        // (triple, readelf's machine, instructions that must not appear: fused multiply-adds)
        let targets = [
            (
                "aarch64-unknown-linux-gnu",
                "AArch64",
                &["fmla", "fmls", "fmadd", "fmsub", "fnmadd", "fnmsub"][..],
            ),
            (
                "riscv64gc-unknown-linux-gnu",
                "RISC-V",
                &["fmadd.d", "fmsub.d", "fnmadd.d", "fnmsub.d"][..],
            ),
        ];
        for (triple, machine, fused) in targets {
            let object = llvm::emit_object(&kernels, &names, Some(triple))
                .unwrap_or_else(|e| panic!("{example} for {triple}: {e}"));
            let dir = scratch(&format!("{triple}-{example}"));
            let path = dir.join("kernels.o");
            std::fs::write(&path, &object).unwrap();

            let header = readelf(&["-h"], &path);
            assert!(header.contains("ELF64"), "{triple}: {header}");
            assert!(
                header.contains("REL (Relocatable file)"),
                "{triple}: {header}"
            );
            let found = header
                .lines()
                .find(|l| l.trim_start().starts_with("Machine:"))
                .unwrap_or_default();
            assert!(found.contains(machine), "{triple}: {found}");
            if machine == "RISC-V" {
                // The standard Linux ABI: compressed instructions and doubles in FP registers.
                assert!(header.contains("RVC"), "{triple}: {header}");
                assert!(header.contains("double-float ABI"), "{triple}: {header}");
            }

            let table = readelf(&["-s", "-W"], &path);
            for name in &names {
                let exported = table.lines().any(|l| {
                    l.contains(" FUNC ")
                        && l.contains(" GLOBAL ")
                        && l.ends_with(&format!(" {name}"))
                });
                assert!(
                    exported,
                    "{triple}: `{name}` is not a global function:\n{table}"
                );
            }
            // Columns: Num: Value Size Type Bind Vis Ndx Name; the null entry has no name.
            let imports: Vec<&str> = table
                .lines()
                .map(|l| l.split_whitespace().collect::<Vec<_>>())
                .filter(|fields| fields.len() == 8 && fields[6] == "UND")
                .map(|fields| fields[7])
                .collect();
            // The runtime's helpers, and the C library's memory functions LLVM may turn a
            // loop into (every program linking the runtime has the C library).
            for symbol in &imports {
                assert!(
                    symbol.starts_with("snnc_") || ["memset", "memcpy", "memmove"].contains(symbol),
                    "{triple}: imports `{symbol}`, which neither the runtime nor libc defines"
                );
            }
            match example {
                // Brunel's Poisson drive has the same mean for every neuron: it is drawn for
                // the whole range before the loop (a batched draw).
                "brunel.snn" => assert!(
                    imports.contains(&"snnc_random_block"),
                    "{triple}: Brunel does not call snnc_random_block? {imports:?}"
                ),
                "cuba.snn" | "coba.snn" => assert!(
                    imports.is_empty(),
                    "{triple}: {example} imports {imports:?}"
                ),
                _ => assert!(
                    !imports.iter().any(|s| s.starts_with("snnc_exp")),
                    "{triple}: {example} calls exp out of line: {imports:?}"
                ),
            }

            let code = disassembly(&path);
            for instruction in fused {
                let fused_here = code
                    .lines()
                    .any(|l| l.split_whitespace().any(|word| word == *instruction));
                assert!(!fused_here, "{triple}: {example} uses `{instruction}`");
            }
            if machine == "RISC-V" && example == "brunel.snn" {
                // The header says double-float ABI (emit_object writes that flag itself), so
                // the code must pass doubles to the runtime's helpers (`snnc_random`'s Poisson
                // mean) in `fa0`, never through
                // an integer register as soft-float code does.
                assert!(code.contains("fa0"), "{triple}: no double in fa0:\n{code}");
                assert!(
                    !code.contains("fmv.x.d\ta0"),
                    "{triple}: passes a double in a0:\n{code}"
                );
            }
            if machine == "AArch64" && example == "cuba.snn" {
                // NEON holds two doubles: the element loop works on `v?.2d` registers.
                assert!(
                    code.contains(".2d"),
                    "{triple}: CUBA's loop is not vectorised:\n{code}"
                );
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

#[test]
fn unsupported_targets_are_refused() {
    let program = lowered("cuba.snn");
    let kernels: Vec<&Kernel> = program.populations.iter().map(|p| &p.update).collect();
    let names = symbols(kernels.len());
    let error = llvm::emit_object(&kernels, &names, Some("armv7-unknown-linux-gnueabihf"))
        .expect_err("a 32-bit ARM target is not supported");
    assert!(error.contains("x86_64, aarch64 and riscv64"), "{error}");
    let error = llvm::emit_object(&kernels, &names, Some("sparc64-unknown-linux-gnu"))
        .expect_err("no SPARC code generator");
    assert!(
        error.contains("no code generator for target `sparc64"),
        "{error}"
    );
}
