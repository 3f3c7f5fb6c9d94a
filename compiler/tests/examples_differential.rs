//! Every example, interpreted and compiled: the JIT must agree with the reference interpreter
//! bit for bit, with every backend this build has (`codegen::jit_backends`: Cranelift, and LLVM
//! when built with `--features snnc/llvm`).
//!
//! For each `examples/*.snn` that lowers (ones that do not, e.g. plasticity not yet supported,
//! are skipped and listed), every population's update kernel runs for `STEPS` steps in both
//! `snnc::ir::interp::run` and `CompiledKernels::run`, from the same initial arrays (the init
//! kernel run once by `instantiate::run_kernel_once`). Populations are driven in isolation (no
//! synapses, no timed inputs): the kernels are what is compared. After every step the arrays
//! must be bitwise identical (NaNs canonicalised) and the spike lists equal. Arrays are stored
//! as the kernels' variables are (`examples/cuba_f32.snn` is an `f32` network), so `f32` loads
//! and stores are compared too.
//!
//! Populations are capped at `MAX_NEURONS` elements to keep the debug-mode interpreter fast;
//! random draws are keyed by element index, so the first elements behave as in the full
//! population. Runtime: ~2 s in debug.

use snnc::codegen::jit_backends;
use snnc::driver;
use snnc::instantiate::run_kernel_once_arrays;
use snnc::ir::interp::{self, StepInfo};
use snnc::lower::program::{stream_of_init, stream_of_update, Overrides};
use snnc_runtime::array::{Array, ArrayMut};
use std::path::Path;

const STEPS: u64 = 200;
const MAX_NEURONS: usize = 500;

fn canonical(x: f64) -> u64 {
    if x.is_nan() {
        f64::NAN.to_bits()
    } else {
        x.to_bits()
    }
}

#[test]
fn every_example_interpreted_and_jitted_agree_bitwise() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut files: Vec<_> = std::fs::read_dir(&examples)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "snn"))
        .collect();
    files.sort();
    let (mut ran, mut skipped) = (Vec::new(), Vec::new());
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let checked = driver::check_file(file).unwrap();
        assert!(!checked.has_errors(), "{name} has errors");
        let program = match driver::lower(&checked, None, &Overrides::default()) {
            Ok(p) => p,
            Err(d) => {
                skipped.push(format!(
                    "{name}: {}",
                    d.first().map_or("?".to_string(), |d| d.message.clone())
                ));
                continue;
            }
        };
        let kernels: Vec<&snnc::ir::Kernel> =
            program.populations.iter().map(|p| &p.update).collect();
        for (backend, jit_compile) in jit_backends() {
            let compiled =
                jit_compile(&kernels).unwrap_or_else(|e| panic!("{name} ({backend}): {e}"));
            let mut total_spikes = 0usize;
            for (index, population) in program.populations.iter().enumerate() {
                let n = (population.size as usize).min(MAX_NEURONS);
                let mut arrays: Vec<Array> = population
                    .update
                    .vars
                    .iter()
                    .map(|v| Array::zeros(v.storage, n))
                    .collect();
                run_kernel_once_arrays(
                    &population.init,
                    &mut arrays,
                    program.seed,
                    stream_of_init(index),
                );
                let mut jit_arrays = arrays.clone();
                for step in 0..STEPS {
                    let info = StepInfo {
                        step,
                        t: step as f64 * program.dt,
                        seed: program.seed,
                        stream: stream_of_update(index),
                    };
                    let (mut a, mut b) = (Vec::new(), Vec::new());
                    {
                        let mut views: Vec<ArrayMut> =
                            arrays.iter_mut().map(Array::view_mut).collect();
                        interp::run_arrays(&population.update, &mut views, &[], 0, n, info, &mut a);
                    }
                    {
                        let mut views: Vec<ArrayMut> =
                            jit_arrays.iter_mut().map(Array::view_mut).collect();
                        compiled.run_arrays(index, &mut views, &[], 0, n, info, &mut b);
                    }
                    assert_eq!(
                        a, b,
                        "{name} ({backend}): population {} step {step}: spikes differ",
                        population.name
                    );
                    total_spikes += a.len();
                    for (v, (x, y)) in arrays.iter().zip(&jit_arrays).enumerate() {
                        for (e, (p, q)) in x.iter().zip(y.iter()).enumerate() {
                            assert_eq!(
                                canonical(p),
                                canonical(q),
                                "{name} ({backend}): population {} variable {} element {e} \
                             step {step}: interpreter {p:e}, JIT {q:e}",
                                population.name,
                                population.update.vars[v].name
                            );
                        }
                    }
                }
            }
            eprintln!(
            "{name} ({backend}): {} populations agree over {STEPS} steps ({total_spikes} spikes)",
            program.populations.len()
        );
        }
        ran.push(name);
    }
    eprintln!("ran: {ran:?}; skipped: {skipped:?}");
    // The f32 loads and stores are compared through this example.
    assert!(
        ran.iter().any(|n| n == "cuba_f32.snn"),
        "the f32 example did not run: {ran:?}"
    );
    assert!(
        ran.len() >= 4,
        "only {} examples lowered: {ran:?}; skipped: {skipped:?}",
        ran.len()
    );
}
