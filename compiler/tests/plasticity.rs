//! Plasticity against analytic weight changes: hand-made presynaptic and postsynaptic spike
//! trains (spike-source arrays from files) drive one plastic synapse, and the learned weight is
//! compared with the change the rule predicts in closed form. Every run is done twice, with
//! the JIT and with the reference interpreter, and the two must agree bit for bit.
//!
//! The postsynaptic neuron is a `Trigger` that spikes in the step after a drive spike reaches
//! it: a drive event at step `m` reaches `v` at the end of step `m` (delay 0), the update of
//! step `m + 1` crosses the threshold, and the spike is recorded, and handled by `on post`, at
//! `(m + 2)·dt`. A presynaptic spike-source event at `m·dt` is handled by `on pre` at
//! `(m + d)·dt`, `d` the axonal delay in steps (docs/language.md, section 9).

use snnc::driver;
use snnc::instantiate;
use snnc::lower::program::{Overrides, Program};
use snnc_runtime::{write_npy, Network, Simulation};
use std::path::{Path, PathBuf};

const DT: f64 = 1e-4;

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("plasticity-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes a spike table (time in seconds, index) as `.npy`.
fn spikes_file(path: &Path, spikes: &[(f64, u32)]) {
    let data: Vec<f64> = spikes
        .iter()
        .flat_map(|&(t, i)| [t, f64::from(i)])
        .collect();
    write_npy(path, &data, &[spikes.len(), 2]).unwrap();
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Backend {
    Jit,
    Interpreter,
}

/// Compiles `model.snn` in `dir` and runs it to its end; returns the program and the network.
fn run(dir: &Path, backend: Backend) -> (Program, Network) {
    let model = dir.join("model.snn");
    let checked = driver::check_file(&model).unwrap();
    assert!(
        !checked.has_errors(),
        "{}",
        snnc::diagnostics::render_text(&checked.sources, &checked.diagnostics)
    );
    let program = driver::lower(&checked, None, &Overrides::default())
        .unwrap_or_else(|d| panic!("{}", snnc::diagnostics::render_text(&checked.sources, &d)));
    let data = driver::read_data_files(&model, &program).unwrap();
    let steps = instantiate::steps_for(program.duration.unwrap(), program.dt);
    let (mut network, _) = instantiate::instantiate(&program, &data, steps, None).unwrap();
    let mut simulation = Simulation::new();
    match backend {
        Backend::Jit => {
            let compiled = snnc::codegen::jit_compile(&program.jit_kernels()).unwrap();
            let mut kernels = instantiate::compiled_kernels(&program, &compiled);
            let mut handlers = instantiate::compiled_handlers(&program, &compiled);
            simulation
                .run_with_plasticity(
                    &mut network,
                    &mut kernels,
                    &mut handlers,
                    steps,
                    &mut |_, _| {},
                )
                .unwrap();
        }
        Backend::Interpreter => {
            let mut kernels = instantiate::interpreted_kernels(&program);
            let mut handlers = instantiate::interpreted_handlers(&program);
            simulation
                .run_with_plasticity(
                    &mut network,
                    &mut kernels,
                    &mut handlers,
                    steps,
                    &mut |_, _| {},
                )
                .unwrap();
        }
    }
    (program, network)
}

/// Runs with both backends, checks that every plastic array agrees bit for bit, and returns
/// the values of `array` of projection `projection` (JIT run).
fn run_both(dir: &Path, projection: usize, array: &str) -> Vec<f64> {
    let (_, jit) = run(dir, Backend::Jit);
    let (_, interp) = run(dir, Backend::Interpreter);
    for (p, (a, b)) in jit.projections.iter().zip(&interp.projections).enumerate() {
        if let (Some(a), Some(b)) = (&a.plasticity, &b.plasticity) {
            for (x, y) in a.arrays.iter().zip(&b.arrays) {
                let xb: Vec<u64> = x.values.iter().map(|v| v.to_bits()).collect();
                let yb: Vec<u64> = y.values.iter().map(|v| v.to_bits()).collect();
                assert_eq!(
                    xb, yb,
                    "projection {p}, array {}: JIT and interpreter differ",
                    x.name
                );
            }
        }
    }
    jit.projections[projection]
        .plasticity
        .as_ref()
        .expect("a plastic projection")
        .array(array)
        .unwrap_or_else(|| panic!("no plastic array `{array}`"))
        .values
        .clone()
}

const TRIGGER: &str = r#"
/// Spikes in the step after `v` receives 1; `g` is only a sink for the plastic synapse.
neuron Trigger {
    state v: 1 = 0
    state g: 1 = 0
    spike when v > 0.5
    reset { v = 0 }
}
"#;

/// One pre spike and one post spike per pairing, the pairings 1 s apart (so a trace left by
/// one pairing has decayed by e^-50 when the next starts: far below rounding), and the post
/// drive sent so that the post spike lands at `t_pre + delta`.
fn pairings(deltas_ms: &[f64]) -> (Vec<(f64, u32)>, Vec<(f64, u32)>, Vec<(f64, f64)>) {
    let mut pre = Vec::new();
    let mut drive = Vec::new();
    let mut times = Vec::new();
    for (n, &delta) in deltas_ms.iter().enumerate() {
        let t_pre = 0.5 + n as f64;
        let t_post = t_pre + delta * 1e-3;
        pre.push((t_pre, 0));
        // The post spike is handled two steps after its drive event (module docs).
        drive.push((t_post - 2.0 * DT, 0));
        times.push((t_pre, t_post));
    }
    (pre, drive, times)
}

fn pair_model(synapse_import: &str, synapse: &str, delay_ms: f64, duration_s: usize) -> String {
    format!(
        r#"{synapse_import}
import stdlib.synapses.static
{TRIGGER}
network Pairs {{
    dt = 0.1 ms
    Pre = spikes[1] from "pre.npy"
    Drive = spikes[1] from "drive.npy"
    Post = Trigger[1]
    Drive -> Post : Static {{ w = 1, target = v }} connect one_to_one
    Pre -> Post : {synapse} connect one_to_one delay {delay_ms} ms
    run {duration_s} s
}}
"#
    )
}

/// Pair STDP, all-to-all interaction through exponential traces (stdlib `StdpAdditive`): a
/// pre spike at `t_pre` followed by a post spike at `t_post` changes the weight by
/// `dA_pre·exp(-(t_post - t_pre)/τ)`, a post spike followed by a pre spike by
/// `dA_post·exp(-(t_pre - t_post)/τ)`. With axonal delay `D`, the synapse sees the pre spike at
/// `t_pre + D`. Each pairing is isolated, so the final weight is `w0 + Σ Δw`.
#[test]
fn pair_stdp_matches_the_exponential_window() {
    for delay_ms in [0.0, 2.0] {
        let dir = scratch(&format!("pair-{delay_ms}"));
        let deltas = [5.0, -5.0, 10.0, -20.0, 1.0, 40.0, -0.5];
        let (pre, drive, times) = pairings(&deltas);
        spikes_file(&dir.join("pre.npy"), &pre);
        spikes_file(&dir.join("drive.npy"), &drive);
        let (w0, dpre, dpost, tau) = (0.5, 0.01, -0.0105, 0.020);
        let model = pair_model(
            "import stdlib.synapses.stdp",
            "StdpAdditive { w = 0.5, w_max = 1, dA_pre = 0.01, dA_post = -0.0105, target = g }",
            delay_ms,
            deltas.len() + 1,
        );
        std::fs::write(dir.join("model.snn"), model).unwrap();
        let w = run_both(&dir, 1, "w");
        let mut expected = w0;
        for &(t_pre, t_post) in &times {
            let seen_pre = t_pre + delay_ms * 1e-3;
            let lag = t_post - seen_pre;
            expected += if lag >= 0.0 {
                dpre * (-lag / tau).exp()
            } else {
                dpost * (lag / tau).exp()
            };
        }
        // The simulation computes the same exponentials from times that are whole multiples of
        // dt (exact to ~1e-16 s); the sum of 7 terms of size 1e-2 carries a few ulps of 0.5.
        let error = (w[0] - expected).abs();
        assert!(
            error < 1e-14,
            "delay {delay_ms} ms: w = {}, expected {expected} (error {error:e})",
            w[0]
        );
    }
}
