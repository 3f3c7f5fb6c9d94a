//! The adaptive integrator `method = rkf45`: embedded Runge-Kutta-Fehlberg 4(5) sub-steps
//! with error control, and the threshold tested after every accepted sub-step.
//!
//! This module owns the IR that advances one population's ODE system by one step `dt` in
//! sub-steps of adaptive size, the way GSL's `gsl_odeiv_evolve_apply` with the `rkf45`
//! stepper and the standard step-size control does it (which is how NEST integrates its
//! conductance-based, AdEx and Hodgkin-Huxley neurons):
//!
//! * A sub-step of size `h` (the size suggested by the previous one, clamped to what is left
//!   of the step when it is larger) computes the six Fehlberg stages, the fifth-order
//!   solution, which is what is kept, and the difference to the fourth-order one as the error
//!   estimate `err_i`.
//! * Each state's error is compared with `D_i = atol + rtol·|y_i| + rtol_dydt·h·|y'_i|`, with
//!   `y_i` the new value and `y'_i` the derivative there, all in the state's declared unit
//!   (a `mV` state with `atol = 1e-6` is allowed 1e-6 mV per sub-step), so tolerances are
//!   plain numbers. `r = max_i |err_i| / D_i`.
//! * `r > 1.1`: the sub-step is rejected and retried with `h·max(0.9·r^(-1/4), 0.2)` (unless
//!   that would not move time at all, then it is accepted as it is). `r < 0.5`: it is accepted
//!   and the next sub-step may grow to `h·min(0.9·r^(-1/5), 5)`. Otherwise it is accepted and
//!   `h` is kept. The suggested size persists from step to step in an array of its own.
//! * After every accepted sub-step the model's event (its `spike when` test, with the reset,
//!   the start of refractoriness and the spike) runs, so a neuron is reset at the sub-step
//!   where it crosses threshold and the rest of the step is integrated from the reset state.
//!   This is NEST's `aeif_cond_*` semantics; the spike is recorded at the step (at most one
//!   per step and neuron, however many sub-steps crossed).
//!
//! The loop is an IR `while` bounded by [`MAX_ATTEMPTS`] sub-step attempts per step, so every
//! kernel terminates; values carried from one attempt to the next (the time within the step,
//! the sub-step size) live in per-element arrays, as IR locals are defined once.
//!
//! It does not choose methods (`odes` does, and routes `rkf45` here), see the AST or units,
//! or decide what an event does: the caller passes the event's condition and statements.

use super::odes::{let_local, substitute, Integration, Method, Ode};
use crate::ir::{BinOp, Builder, Expr, Stmt, UnOp, VarId};

/// At most this many sub-step attempts per step and element. With the step-size control a
/// rejected attempt shrinks `h` at least fivefold, so this is only reached by a system whose
/// error estimate cannot be met at any representable step; the step then ends early.
pub const MAX_ATTEMPTS: u32 = 100_000;

/// The error tolerances of `method = rkf45(atol = ..., rtol = ..., rtol_dydt = ...)`, each a
/// dimensionless number applied to a state in its declared unit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerances {
    pub atol: f64,
    pub rtol: f64,
    pub rtol_dydt: f64,
}

impl Default for Tolerances {
    fn default() -> Tolerances {
        Tolerances {
            atol: 1e-6,
            rtol: 0.0,
            rtol_dydt: 0.0,
        }
    }
}

/// What runs after every accepted sub-step while `cond` holds: the model's threshold test and
/// what a spike does.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub cond: Expr,
    pub body: Vec<Stmt>,
}

/// The per-element arrays the integrator carries values in: the suggested sub-step size (s),
/// kept from step to step and initialised to `dt`, and the time reached within the step (s).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scratch {
    pub step_size: VarId,
    pub time: VarId,
}

// The Fehlberg 4(5) tableau, as in GSL's rkf45.c: stage times, stage weights, the weights of
// the fifth-order solution, and the differences between the fifth- and fourth-order weights.
const AH: [f64; 5] = [1.0 / 4.0, 3.0 / 8.0, 12.0 / 13.0, 1.0, 1.0 / 2.0];
const B3: [f64; 2] = [3.0 / 32.0, 9.0 / 32.0];
const B4: [f64; 3] = [1932.0 / 2197.0, -7200.0 / 2197.0, 7296.0 / 2197.0];
const B5: [f64; 4] = [
    8341.0 / 4104.0,
    -32832.0 / 4104.0,
    29440.0 / 4104.0,
    -845.0 / 4104.0,
];
const B6: [f64; 5] = [
    -6080.0 / 20520.0,
    41040.0 / 20520.0,
    -28352.0 / 20520.0,
    9295.0 / 20520.0,
    -5643.0 / 20520.0,
];
/// Fifth-order weights of k1, k3, k4, k5, k6 (k2 has none).
const C5: [f64; 5] = [
    902880.0 / 7618050.0,
    3953664.0 / 7618050.0,
    3855735.0 / 7618050.0,
    -1371249.0 / 7618050.0,
    277020.0 / 7618050.0,
];
/// Error weights of k1, k3, k4, k5, k6.
const EC: [f64; 5] = [
    1.0 / 360.0,
    -128.0 / 4275.0,
    -2197.0 / 75240.0,
    1.0 / 50.0,
    2.0 / 55.0,
];

/// GSL's safety factor and the thresholds of its step-size control.
const SAFETY: f64 = 0.9;
const REJECT_ABOVE: f64 = 1.1;
const GROW_BELOW: f64 = 0.5;
/// Below this error ratio the growth factor `0.9·r^(-1/5)` exceeds its cap of 5 (the exact
/// bound is (0.9/5)^5 = 1.8896e-4; this one is safely inside it).
const GROW_CAPPED_BELOW: f64 = 1.8e-4;
/// The order of the embedded error estimate, which sets the exponents `1/4` and `1/5`.
const ORDER: f64 = 4.0;

fn c(x: f64) -> Expr {
    Expr::c(x)
}

fn bin(op: BinOp, a: Expr, b: Expr) -> Expr {
    Expr::bin(op, a, b)
}

/// Emits the statements that advance `odes` by `dt` in adaptive sub-steps. `scales[i]` is the
/// SI value of one declared unit of `odes[i].var`.
pub fn integrate_rkf45(
    odes: &[Ode],
    scales: &[f64],
    tol: Tolerances,
    dt: f64,
    scratch: Scratch,
    event: Option<Event>,
    builder: &mut Builder,
) -> Integration {
    let states: Vec<VarId> = odes.iter().map(|o| o.var).collect();
    let n = odes.len();
    let mut body = Vec::new();
    let b = &mut body;
    let t_sub = Expr::Var(scratch.time);
    let remaining = let_local(Expr::sub(c(dt), t_sub.clone()), builder, b);
    // GSL clamps only a larger size (`h0 > dt`), and then ends exactly at the step's end.
    let last = let_local(
        bin(BinOp::Gt, Expr::Var(scratch.step_size), remaining.clone()),
        builder,
        b,
    );
    let h = let_local(
        Expr::select(last.clone(), remaining, Expr::Var(scratch.step_size)),
        builder,
        b,
    );
    // The derivatives at a stage; held states have none.
    let stage = |values: &[Expr], at: f64, builder: &mut Builder, b: &mut Vec<Stmt>| {
        let offset = if at == 0.0 {
            t_sub.clone()
        } else {
            Expr::add(t_sub.clone(), Expr::mul(c(at), h.clone()))
        };
        let time = Expr::add(Expr::Time, offset);
        odes.iter()
            .map(|ode| {
                let f = substitute(&ode.rhs, &states, values, &time);
                let f = match &ode.hold {
                    Some(held) => Expr::select(held.clone(), c(0.0), f),
                    None => f,
                };
                let_local(f, builder, b)
            })
            .collect::<Vec<Expr>>()
    };
    // y + h·Σ w_j·k_j, into locals.
    let combine = |weights: &[f64], ks: &[&Vec<Expr>], builder: &mut Builder, b: &mut Vec<Stmt>| {
        (0..n)
            .map(|i| {
                let mut sum: Option<Expr> = None;
                for (w, k) in weights.iter().zip(ks) {
                    let term = Expr::mul(c(*w), k[i].clone());
                    sum = Some(match sum {
                        None => term,
                        Some(s) => Expr::add(s, term),
                    });
                }
                let sum = sum.expect("at least one stage");
                let_local(
                    Expr::add(Expr::Var(states[i]), Expr::mul(h.clone(), sum)),
                    builder,
                    b,
                )
            })
            .collect::<Vec<Expr>>()
    };
    let y: Vec<Expr> = states.iter().map(|v| Expr::Var(*v)).collect();
    let k1 = stage(&y, 0.0, builder, b);
    let y2 = combine(&[AH[0]], &[&k1], builder, b);
    let k2 = stage(&y2, AH[0], builder, b);
    let y3 = combine(&B3, &[&k1, &k2], builder, b);
    let k3 = stage(&y3, AH[1], builder, b);
    let y4 = combine(&B4, &[&k1, &k2, &k3], builder, b);
    let k4 = stage(&y4, AH[2], builder, b);
    let y5 = combine(&B5, &[&k1, &k2, &k3, &k4], builder, b);
    let k5 = stage(&y5, AH[3], builder, b);
    let y6 = combine(&B6, &[&k1, &k2, &k3, &k4, &k5], builder, b);
    let k6 = stage(&y6, AH[4], builder, b);
    let new = combine(&C5, &[&k1, &k3, &k4, &k5, &k6], builder, b);
    // The derivative at the new point, when the tolerance is relative to it.
    let slope = (tol.rtol_dydt != 0.0).then(|| stage(&new, 1.0, builder, b));
    // r = max_i |err_i| / (s_i·atol + rtol·|y_i| + rtol_dydt·h·|y'_i|), which is the ratio
    // of the error to D_i with both in the state's declared unit (scale s_i). GSL starts the
    // maximum at DBL_MIN; `max` skips a NaN ratio, as GSL's comparison does.
    let mut ratio = c(f64::MIN_POSITIVE);
    for i in 0..n {
        let mut err = None;
        for (w, k) in EC.iter().zip([&k1, &k3, &k4, &k5, &k6]) {
            let term = Expr::mul(c(*w), k[i].clone());
            err = Some(match err {
                None => term,
                Some(s) => Expr::add(s, term),
            });
        }
        let err = Expr::mul(h.clone(), err.expect("five weights"));
        let abs = |e: Expr| Expr::call(crate::ir::Func::Abs, e);
        let mut allowed = c(tol.atol * scales[i]);
        if tol.rtol != 0.0 {
            allowed = Expr::add(allowed, Expr::mul(c(tol.rtol), abs(new[i].clone())));
        }
        if let Some(slope) = &slope {
            let change = abs(Expr::mul(h.clone(), slope[i].clone()));
            allowed = Expr::add(allowed, Expr::mul(c(tol.rtol_dydt), change));
        }
        let r = Expr::div(abs(err), allowed);
        ratio = bin(BinOp::Max, r, ratio);
    }
    let ratio = let_local(ratio, builder, b);
    let t_new = let_local(
        Expr::select(last, c(dt), Expr::add(t_sub.clone(), h.clone())),
        builder,
        b,
    );
    // Shrinking needs a power, computed only when the error is too large (a select whose arm
    // calls out is a branch in compiled code).
    let too_large = let_local(bin(BinOp::Gt, ratio.clone(), c(REJECT_ABOVE)), builder, b);
    let shrink = let_local(
        Expr::select(
            too_large.clone(),
            Expr::mul(
                h.clone(),
                bin(
                    BinOp::Max,
                    Expr::div(c(SAFETY), bin(BinOp::Pow, ratio.clone(), c(1.0 / ORDER))),
                    c(0.2),
                ),
            ),
            h.clone(),
        ),
        builder,
        b,
    );
    // Growth is capped at 5, which 0.9·r^(-1/5) reaches for r <= (0.9/5)^5 = 1.8896e-4; below
    // 1.8e-4 (the usual case at rest) the factor is 5 without computing the power, and the
    // result is the same as with it.
    let grow = Expr::mul(
        h.clone(),
        Expr::select(
            bin(BinOp::Lt, ratio.clone(), c(GROW_CAPPED_BELOW)),
            c(5.0),
            bin(
                BinOp::Max,
                bin(
                    BinOp::Min,
                    Expr::div(
                        c(SAFETY),
                        bin(BinOp::Pow, ratio.clone(), c(1.0 / (ORDER + 1.0))),
                    ),
                    c(5.0),
                ),
                c(1.0),
            ),
        ),
    );
    // Rejected: the error is too large, and the smaller size would still move time.
    let reject = let_local(
        bin(
            BinOp::And,
            too_large,
            bin(
                BinOp::And,
                bin(BinOp::Lt, shrink.clone(), h.clone()),
                bin(
                    BinOp::Ne,
                    Expr::add(t_new.clone(), shrink.clone()),
                    t_new.clone(),
                ),
            ),
        ),
        builder,
        b,
    );
    b.push(Stmt::Store(
        scratch.step_size,
        Expr::select(
            reject.clone(),
            shrink,
            Expr::select(bin(BinOp::Lt, ratio, c(GROW_BELOW)), grow, h),
        ),
    ));
    let mut accept: Vec<Stmt> = states
        .iter()
        .zip(new)
        .map(|(v, value)| Stmt::Store(*v, value))
        .collect();
    accept.push(Stmt::Store(scratch.time, t_new));
    if let Some(event) = event {
        accept.push(Stmt::If(event.cond, event.body, Vec::new()));
    }
    body.push(Stmt::If(
        Expr::Unary(UnOp::Not, Box::new(reject)),
        accept,
        Vec::new(),
    ));
    let stmts = vec![
        Stmt::Store(scratch.time, c(0.0)),
        Stmt::While {
            cond: bin(BinOp::Lt, Expr::Var(scratch.time), c(dt)),
            max_iterations: MAX_ATTEMPTS,
            body,
        },
    ];
    let plural = if n == 1 { "state" } else { "states" };
    Integration {
        method: Method::Rkf45,
        reason: format!(
            "rkf45: forced by `method = rkf45` ({n} {plural}; atol = {}, rtol = {}, \
             rtol_dydt = {}; threshold tested after every accepted sub-step)",
            tol.atol, tol.rtol, tol.rtol_dydt
        ),
        stmts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::interp::{self, StepInfo};
    use crate::ir::{Kernel, VarInfo, VarRole};
    use crate::opt;

    /// A one-element simulation: states `0..n`, then the two scratch arrays. The kernel is
    /// optimised as lowering's kernels are, and run by the reference interpreter.
    struct Sim {
        kernel: Kernel,
        arrays: Vec<Vec<f64>>,
        dt: f64,
        step: u64,
        spikes: Vec<u64>,
    }

    impl Sim {
        fn new(init: &[f64], odes: &[Ode], tol: Tolerances, dt: f64, event: Option<Event>) -> Sim {
            let n = init.len() as VarId;
            let scratch = Scratch {
                step_size: n,
                time: n + 1,
            };
            let mut builder = Builder::default();
            let scales = vec![1.0; odes.len()];
            let integration = integrate_rkf45(odes, &scales, tol, dt, scratch, event, &mut builder);
            let vars = (0..n + 2)
                .map(|i| VarInfo {
                    name: format!("v{i}"),
                    role: VarRole::State,
                    unit: "1".to_string(),
                    scale: 1.0,
                    access: Default::default(),
                    storage: Default::default(),
                })
                .collect();
            let mut kernel = Kernel {
                name: "test".to_string(),
                vars,
                n_locals: builder.n_locals,
                n_draws: 0,
                body: integration.stmts,
                notes: Vec::new(),
            };
            opt::optimize(&mut kernel);
            let mut arrays: Vec<Vec<f64>> = init.iter().map(|x| vec![*x]).collect();
            arrays.push(vec![dt]);
            arrays.push(vec![0.0]);
            Sim {
                kernel,
                arrays,
                dt,
                step: 0,
                spikes: Vec::new(),
            }
        }

        fn run(&mut self, steps: u64) {
            for _ in 0..steps {
                let mut refs: Vec<&mut [f64]> =
                    self.arrays.iter_mut().map(|a| a.as_mut_slice()).collect();
                let info = StepInfo {
                    step: self.step,
                    t: self.step as f64 * self.dt,
                    seed: 1,
                    stream: 0,
                };
                let mut spikes = Vec::new();
                interp::run(&self.kernel, &mut refs, 0, 1, info, &mut spikes);
                if !spikes.is_empty() {
                    self.spikes.push(self.step);
                }
                self.step += 1;
            }
        }
    }

    fn ode(var: VarId, rhs: Expr) -> Ode {
        Ode {
            var,
            rhs,
            hold: None,
        }
    }

    fn tol(atol: f64) -> Tolerances {
        Tolerances {
            atol,
            ..Tolerances::default()
        }
    }

    /// The harmonic oscillator x'' = -w² x (x(0) = 1, x'(0) = 0) over 2 s at dt = 0.1 s: the
    /// global error follows the tolerance. Each accepted sub-step has a local error below
    /// atol (5th-order solution, so in fact well below), and the ~20-100 sub-steps add up,
    /// so the error must be within 100 atol; and tightening atol by 100 must shrink it by
    /// at least 10 (for a 4(5) pair, error ~ atol^(4/5) or better).
    #[test]
    fn error_follows_the_tolerance_on_an_oscillator() {
        let w = 2.0 * std::f64::consts::PI;
        let odes = [
            ode(0, Expr::Var(1)),
            ode(1, Expr::mul(c(-w * w), Expr::Var(0))),
        ];
        let mut errors = Vec::new();
        for atol in [1e-4, 1e-6, 1e-8] {
            let mut sim = Sim::new(&[1.0, 0.0], &odes, tol(atol), 0.1, None);
            sim.run(20);
            let t = 2.0;
            let error = (sim.arrays[0][0] - (w * t).cos())
                .abs()
                .max((sim.arrays[1][0] + w * (w * t).sin()).abs() / w);
            assert!(error <= 100.0 * atol, "atol {atol}: error {error}");
            errors.push(error);
        }
        assert!(errors[1] * 10.0 <= errors[0], "{errors:?}");
        assert!(errors[2] * 10.0 <= errors[1], "{errors:?}");
    }

    /// dx/dt = -x² from x = 1: x(t) = 1 / (1 + t). At atol = 1e-10 the result after 5 s
    /// (dt = 0.5 s) is within 1e-9 of the closed form, while a single RK4 step per dt would
    /// be off by ~1e-4: the sub-steps are doing the work.
    #[test]
    fn nonlinear_decay_matches_the_closed_form() {
        let odes = [ode(0, Expr::neg(Expr::mul(Expr::Var(0), Expr::Var(0))))];
        let mut sim = Sim::new(&[1.0], &odes, tol(1e-10), 0.5, None);
        sim.run(10);
        let error = (sim.arrays[0][0] - 1.0 / 6.0).abs();
        assert!(error < 1e-9, "error {error}");
        // The time within the step ends exactly at dt, and a step size is kept for the next.
        assert_eq!(sim.arrays[2][0], 0.5);
        assert!(sim.arrays[1][0] > 0.0 && sim.arrays[1][0] <= 0.5);
    }

    /// The event runs at the sub-step where the threshold is crossed: dx/dt = x from 1 with
    /// a reset to 1 at x >= 2 crosses at t = k ln 2. With dt = 0.25 s a test at the end of
    /// the step would make every period 0.75 s (three steps); tested after sub-steps, the
    /// reset comes within a sub-step of k ln 2, so spike k is recorded in the step containing
    /// k ln 2 (or, when the crossing sub-step ends in the next step, that one).
    #[test]
    fn threshold_is_tested_after_each_sub_step() {
        let odes = [ode(0, Expr::Var(0))];
        let event = Event {
            cond: Expr::bin(BinOp::Ge, Expr::Var(0), c(2.0)),
            body: vec![Stmt::Store(0, c(1.0)), Stmt::Spike],
        };
        let dt = 0.25;
        let mut sim = Sim::new(&[1.0], &odes, tol(1e-9), dt, Some(event));
        sim.run(40);
        let expected: Vec<f64> = (1..=14)
            .map(|k| (f64::from(k) * std::f64::consts::LN_2 / dt).floor())
            .collect();
        assert_eq!(sim.spikes.len(), expected.len(), "{:?}", sim.spikes);
        for (got, want) in sim.spikes.iter().zip(&expected) {
            assert!(
                (*got as f64 - want).abs() <= 1.0,
                "{:?} vs {expected:?}",
                sim.spikes
            );
        }
        // After the last reset x grows as exp(t - t_reset), so ln x gives the time since the
        // reset. Each reset comes at the end of the sub-step that crossed, up to one sub-step
        // after the crossing (at atol = 1e-9 sub-steps are ~(1e-9)^(1/5) ~ 0.016 s), and the
        // overshoot is lost, so the resets lag k ln 2 by at most 14 such sub-steps.
        let t_end = 40.0 * dt;
        let since_ideal_reset = t_end - 14.0 * std::f64::consts::LN_2;
        let lag = since_ideal_reset - sim.arrays[0][0].ln();
        assert!((0.0..14.0 * 0.02).contains(&lag), "lag {lag}");
    }

    /// A held state has no derivative: it keeps its value through every sub-step.
    #[test]
    fn held_state_keeps_its_value() {
        let odes = [
            Ode {
                var: 0,
                rhs: c(1.0),
                hold: Some(c(1.0)),
            },
            ode(1, c(1.0)),
        ];
        let mut sim = Sim::new(&[0.25, 0.0], &odes, tol(1e-6), 0.1, None);
        sim.run(10);
        assert_eq!(sim.arrays[0][0], 0.25);
        assert!((sim.arrays[1][0] - 1.0).abs() < 1e-12);
    }
}
