//! Validation of the standard-library neuron models against NEST, trace by trace.
//!
//! Each `tests/nest/<model>.snn` drives one neuron of a stdlib model with the protocol of
//! `neuron_traces_nest.py` (a DC step, two excitatory and one inhibitory input spike,
//! dt = 0.1 ms, 500 ms), with NEST's parameters. The test runs it through the `snnc` binary
//! and compares with NEST's trace (`tests/nest/<model>_V_m.npy`, `<model>_spikes.npy`,
//! converted from `tests/reference/nest_traces/<model>.npz` by `tests/nest/convert.py`).
//!
//! Alignment (worked out in `tests/nest/iaf_psc_delta.snn`): snnc's sample `s` is the state
//! at `(s + 1)·dt`, and so is NEST's multimeter sample `s` (t = 0.1 ms onwards), so the two
//! traces are compared sample by sample; NEST stops 1 ms before the end of the run (4990
//! samples), so the last 10 samples of snnc are not compared. Spike times are compared as
//! recorded (both record the end of the step in which the threshold was crossed).
//!
//! Each model gets a tolerance on |ΔV_m|, justified where it is set. Models whose NEST
//! semantics snnc cannot express yet have an ignored full comparison (with the reason) and a
//! passing comparison of the part that does match.

use std::path::{Path, PathBuf};
use std::process::Command;

const DT_MS: f64 = 0.1;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn nest_dir() -> PathBuf {
    root().join("tests").join("nest")
}

/// Reads a little-endian `f64` `.npy` file (any shape, C order) into a flat vector.
fn read_npy_f64(path: &Path) -> Vec<f64> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        bytes.len() >= 10 && &bytes[..6] == b"\x93NUMPY",
        "{}: not .npy",
        path.display()
    );
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        _ => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
    };
    let header = std::str::from_utf8(&bytes[start..start + header_len]).unwrap();
    assert!(
        header.contains("'descr': '<f8'") && header.contains("'fortran_order': False"),
        "{}: expected little-endian f64 in C order, header {header}",
        path.display()
    );
    bytes[start + header_len..]
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// One model run by snnc next to NEST's reference.
struct Comparison {
    model: &'static str,
    /// snnc's V_m (mV), sample `s` at `(s + 1)·dt`.
    v: Vec<f64>,
    /// NEST's V_m (mV), same sampling.
    v_nest: Vec<f64>,
    /// Spike times (ms).
    spikes: Vec<f64>,
    spikes_nest: Vec<f64>,
}

impl Comparison {
    fn run(model: &'static str) -> Comparison {
        let dir = nest_dir();
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("nest-{model}"));
        let _ = std::fs::remove_dir_all(&out);
        let output = Command::new(env!("CARGO_BIN_EXE_snnc"))
            .arg("run")
            .arg(dir.join(format!("{model}.snn")))
            .arg("--out")
            .arg(&out)
            .arg("--quiet")
            .output()
            .expect("failed to start snnc");
        assert!(
            output.status.success(),
            "snnc run {model}.snn failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let v = read_npy_f64(&out.join("N_V_m.npy"));
        let spikes = read_npy_f64(&out.join("N_spikes_times.npy"))
            .into_iter()
            .map(|t| t * 1e3)
            .collect();
        let v_nest = read_npy_f64(&dir.join(format!("{model}_V_m.npy")));
        let spikes_nest = read_npy_f64(&dir.join(format!("{model}_spikes.npy")));
        assert!(
            v.len() >= v_nest.len(),
            "{model}: {} samples, NEST has {}",
            v.len(),
            v_nest.len()
        );
        Comparison {
            model,
            v,
            v_nest,
            spikes,
            spikes_nest,
        }
    }

    /// The number of samples strictly before time `t_ms` (samples are at `(s + 1)·dt`).
    fn samples_before(&self, t_ms: f64) -> usize {
        let n = (t_ms / DT_MS - 1.0 - 1e-6).ceil().max(0.0) as usize;
        n.min(self.v_nest.len())
    }

    /// The earliest first spike of snnc and NEST (ms), or the end of the reference.
    fn first_spike(&self) -> f64 {
        let end = self.v_nest.len() as f64 * DT_MS;
        let first = |s: &[f64]| s.first().copied().unwrap_or(end);
        first(&self.spikes).min(first(&self.spikes_nest))
    }

    /// max |ΔV_m| (mV) over the first `n` samples, and the time (ms) where it is reached.
    fn max_dv(&self, n: usize) -> (f64, f64) {
        let mut worst = (0.0_f64, 0.0);
        for s in 0..n {
            let d = (self.v[s] - self.v_nest[s]).abs();
            // A NaN must fail the comparison, not be skipped by `>`.
            if d.is_nan() || d > worst.0 {
                worst = (
                    if d.is_nan() { f64::INFINITY } else { d },
                    (s + 1) as f64 * DT_MS,
                );
            }
        }
        worst
    }

    /// V_m agrees within `tol` mV on every sample before `t_ms`.
    fn assert_v_before(&self, t_ms: f64, tol: f64) {
        let n = self.samples_before(t_ms);
        assert!(n > 100, "{}: only {n} samples before {t_ms} ms", self.model);
        let (dv, at) = self.max_dv(n);
        eprintln!(
            "{}: max |dV_m| = {dv:.3e} mV before {t_ms:.1} ms (at {at:.1} ms), tolerance {tol:e}",
            self.model
        );
        assert!(
            dv <= tol,
            "{}: |dV_m| = {dv:e} mV at {at:.1} ms exceeds {tol:e} mV",
            self.model
        );
    }

    /// V_m agrees within `tol` mV on every compared sample.
    fn assert_v_all(&self, tol: f64) {
        self.assert_v_before((self.v_nest.len() + 1) as f64 * DT_MS, tol);
    }

    fn assert_spike_count(&self) {
        eprintln!(
            "{}: {} spikes, NEST {}",
            self.model,
            self.spikes.len(),
            self.spikes_nest.len()
        );
        assert_eq!(
            self.spikes.len(),
            self.spikes_nest.len(),
            "{}: spike count differs from NEST's\n  snnc {:?}\n  NEST {:?}",
            self.model,
            self.spikes,
            self.spikes_nest
        );
    }

    /// The first `n` spikes are within one step of NEST's.
    fn assert_spike_times(&self, n: usize) {
        for (k, (a, b)) in self
            .spikes
            .iter()
            .zip(&self.spikes_nest)
            .take(n)
            .enumerate()
        {
            assert!(
                (a - b).abs() <= DT_MS + 1e-9,
                "{}: spike {k} at {a} ms, NEST {b} ms\n  snnc {:?}\n  NEST {:?}",
                self.model,
                self.spikes,
                self.spikes_nest
            );
        }
    }

    /// Same number of spikes, all within one step of NEST's.
    fn assert_spikes(&self) {
        self.assert_spike_count();
        let worst = self
            .spikes
            .iter()
            .zip(&self.spikes_nest)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        eprintln!("{}: max |dt_spike| = {worst:.3e} ms", self.model);
        self.assert_spike_times(self.spikes.len());
    }
}

// --- Exact integration --------------------------------------------------------------------
//
// NEST integrates these models exactly (propagator matrices), as snnc does (`exact`): the only
// differences are rounding and the accuracy of the propagators. `iaf_psc_delta` (one state)
// agrees to 1e-12 mV. For the 3- and 5-state systems of `iaf_psc_exp`/`iaf_psc_alpha` (and
// `EscapeLif`) snnc's compile-time propagator entries differ from the closed forms by about
// 1e-10 (relative), e.g. 0.9512294247437297 for exp(-0.05) = 0.951229424500714, which shows
// as a slow drift of up to 4e-7 mV (1.2e-6 mV for `EscapeLif`, tau_m = 20 ms) even at rest.
// So 1e-6 mV (2e-6 mV for `EscapeLif`); the spike times coincide exactly, so the tolerance
// holds over the whole run.

#[test]
fn iaf_psc_delta() {
    let c = Comparison::run("iaf_psc_delta");
    c.assert_spikes();
    // Measured: 7e-13 mV over the whole run.
    c.assert_v_all(1e-9);
}

#[test]
fn iaf_psc_exp() {
    let c = Comparison::run("iaf_psc_exp");
    c.assert_spikes();
    // Measured: 4.1e-7 mV (propagator accuracy, see above).
    c.assert_v_all(1e-6);
}

#[test]
fn iaf_psc_alpha() {
    let c = Comparison::run("iaf_psc_alpha");
    c.assert_spikes();
    // Measured: 4.1e-7 mV (propagator accuracy, see above).
    c.assert_v_all(1e-6);
}

// --- Conductance-based LIF ----------------------------------------------------------------
//
// NEST integrates `iaf_cond_exp`/`iaf_cond_alpha` with GSL's adaptive RKF45 with an absolute
// error bound of 1e-3 mV per step (`gsl_odeiv_control_y_new(1e-3, 0)`); the stdlib models use
// fixed-step RK4 (`method = rk4`), whose error after an input spike (tau_syn_ex = 0.2 ms, two
// steps) is of the same order. Measured: 1.7e-4 mV (exp), 1.6e-3 mV (alpha), spike times
// identical. Tolerance 5e-3 mV: a few times NEST's own error bound.

#[test]
fn iaf_cond_exp() {
    let c = Comparison::run("iaf_cond_exp");
    c.assert_spikes();
    c.assert_v_all(5e-3);
}

#[test]
fn iaf_cond_alpha() {
    let c = Comparison::run("iaf_cond_alpha");
    c.assert_spikes();
    c.assert_v_all(5e-3);
}

// --- Adaptive exponential IF --------------------------------------------------------------
//
// NEST integrates `aeif_cond_*` with GSL's RKF45 in adaptive sub-steps with the `yp` error
// control (`gsl_error_tol` = 1e-6 absolute, 1e-6 relative to h·|dy/dt|) and tests
// `V_m >= V_peak` after each accepted sub-step: the neuron is reset, and `w` incremented, at
// the sub-step, and the rest of the step is integrated from `V_reset`. The stdlib models say
// the same in the language, `method = rkf45(atol = 1e-6, rtol_dydt = 1e-6)` (the same tableau,
// error norm and step-size control; `lower/adaptive.rs`), so the two follow the same sub-step
// sequence. Up to 1 ms before the first spike they agree to rounding amplified by the
// exponential term: measured 9.9e-9 mV (exp) and 2.4e-8 mV (alpha, whose alpha kernel snnc
// writes with a different state, `x = DG·tau/e`, so its error estimate differs slightly);
// tolerance 1e-6 mV. (In the last millisecond, on the upswing, the gain of the exponential
// term brings this to 3.4e-6 and 9.6e-6 mV; the full comparison covers it.) Over the whole run the 12 spikes are at the same steps, and V_m differs by at most
// 1.8e-4 mV (exp) and 1.3e-4 mV (alpha), right after a reset: a sub-step that crosses V_peak
// differs by rounding in where it ends, and the exponential term (gain e^((V_peak - V_th) /
// Delta_T) ~ 1e11 per mV near V_peak in the derivative) turns that into a different sub-step
// sequence until the step sizes re-align. Tolerance 1e-3 mV: NEST's own per-sub-step error
// bound (1e-6 mV) summed over the ~100 sub-steps of a spike's upstroke, times ten.

fn aeif_subthreshold(model: &'static str) {
    let c = Comparison::run(model);
    c.assert_spike_times(1);
    c.assert_v_before(c.first_spike() - 1.0, 1e-6);
}

fn aeif_full(model: &'static str) {
    let c = Comparison::run(model);
    c.assert_spikes();
    c.assert_v_all(1e-3);
}

#[test]
fn aeif_cond_exp_subthreshold() {
    aeif_subthreshold("aeif_cond_exp");
}

#[test]
fn aeif_cond_exp_full() {
    aeif_full("aeif_cond_exp");
}

#[test]
fn aeif_cond_alpha_subthreshold() {
    aeif_subthreshold("aeif_cond_alpha");
}

#[test]
fn aeif_cond_alpha_full() {
    aeif_full("aeif_cond_alpha");
}

// --- Izhikevich ---------------------------------------------------------------------------
//
// NEST's `izhikevich` with `consistent_integration = true` (the default) is forward Euler on
// (v, u) from the values at the start of the step, then adds the step's input spikes to v,
// clamps v at V_min, and tests `v >= V_th` (reset v = c, u += d); the DC read in a step acts
// from the next. snnc's model is forward Euler (`method = euler`) on the same equations; the
// one difference is that snnc adds input spikes after the threshold test (NEST before), which
// only matters if an input spike itself crosses V_th, and does not here. Measured: 1.2e-11 mV
// (rounding) over the whole run, identical spike times. Tolerance 1e-9 mV.

#[test]
fn izhikevich() {
    let c = Comparison::run("izhikevich");
    c.assert_spikes();
    c.assert_v_all(1e-9);
}

// --- Hodgkin-Huxley -----------------------------------------------------------------------
//
// NEST integrates `hh_psc_alpha` with GSL's RKF45 and an absolute error bound of 1e-3 per
// sub-step (`gsl_odeiv_control_y_new(1e-3, 0)`, in mV, pA and the dimensionless gating
// variables); the stdlib model says `method = rkf45(atol = 1e-3)`, the same integrator. The
// one difference in formulation is the alpha kernel's first state (snnc's `x` in pA against
// NEST's dI/dt in pA/ms), which changes the error estimate only while an input spike's kernel
// is large. Measured: 2.6e-7 mV before the DC step (100 ms), 7.6e-3 mV over the whole run
// (the worst on a spike's upstroke, where V_m moves ~100 mV/ms and the two sub-step
// sequences, each within 1e-3 mV per sub-step of the true solution, differ by several such
// errors). Tolerances: 1e-5 mV before the DC step (the two follow the same sub-steps there:
// rounding, amplified by the gating dynamics), 0.05 mV over the whole run (NEST's own bound
// times the ~10 sub-steps of an upstroke, times five).
//
// Spikes: NEST emits a spike at the end of the step in which V_m (>= 0 mV) is below its value
// at the start of the step; snnc's model, whose threshold is tested after every sub-step,
// when V_m >= 0 mV and the net membrane current is negative, i.e. at the first sub-step past
// the peak. When the peak falls in the second half of a step NEST sees V_m still above its
// value at the start and emits the spike one step later: measured, the 21 spikes are all at
// the same step as NEST's or one step earlier (max |dt| = 0.1 ms), within the one-step bound.

#[test]
fn hh_psc_alpha_subthreshold() {
    let c = Comparison::run("hh_psc_alpha");
    c.assert_v_before(100.0, 1e-5);
}

#[test]
fn hh_psc_alpha_full() {
    let c = Comparison::run("hh_psc_alpha");
    c.assert_spikes();
    c.assert_v_all(0.05);
}

// --- gif_psc_exp / EscapeLif --------------------------------------------------------------
//
// NEST's `gif_psc_exp` with its default empty `q_stc`/`q_sfa` is stdlib `EscapeLif`, whose
// subthreshold dynamics are linear and integrated exactly by both (within the propagator
// accuracy above: measured 1.2e-6 mV, tolerance 2e-6 mV). Its spikes are random (escape
// noise) and drawn from another generator, so spike times cannot match, and neither can the
// trace after the first spike.

#[test]
fn gif_psc_exp_subthreshold() {
    let c = Comparison::run("gif_psc_exp");
    c.assert_v_before(c.first_spike(), 2e-6);
}

#[test]
#[ignore = "escape noise: NEST and snnc draw the spikes of gif_psc_exp / EscapeLif from \
            different random generators, so spike times (and the trace after the first \
            spike) cannot match"]
fn gif_psc_exp_full() {
    let c = Comparison::run("gif_psc_exp");
    c.assert_spikes();
    c.assert_v_all(1e-3);
}
