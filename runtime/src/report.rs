//! What a run prints: the progress line and the summary, shared by `snnc run` and a deployed
//! model's executable so both say the same things in the same words.
//!
//! This module only formats text; the callers decide where it goes (and whether standard
//! error is a terminal). It knows nothing of how the network or its kernels were made.

use crate::network::Network;
use crate::schedule::RunStats;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

/// Formats a number of seconds the way the summary does: 11 significant digits at most.
fn format_seconds(v: f64) -> String {
    crate::spec::format_number(v)
}

/// How long the stages of a run took.
#[derive(Clone, Debug, Default)]
pub struct Timings {
    /// Front end and code generation (`snnc run` only: a deployed model was compiled before).
    pub compile: Option<(Duration, Duration)>,
    /// Reading data files, connectivity, per-synapse values, initial state.
    pub build: Duration,
    /// The step loop.
    pub run: Duration,
}

/// The progress line for `done` of `total` steps of `dt` seconds, `elapsed` into the run, ending
/// with a newline on the last step. Starts with a carriage return, to be redrawn in place.
pub fn progress_line(done: u64, total: u64, dt: f64, elapsed: Duration) -> String {
    if total == 0 {
        return String::new();
    }
    let fraction = done as f64 / total as f64;
    let simulated = done as f64 * dt;
    let duration = total as f64 * dt;
    let rtf = if simulated > 0.0 {
        elapsed.as_secs_f64() / simulated
    } else {
        0.0
    };
    let filled = ((fraction * 30.0) as usize).min(30);
    let mut line = format!(
        "\r[{}{}] {:>3.0}%  t = {:.2} s / {:.2} s  real-time factor {:.3}  ",
        "=".repeat(filled),
        " ".repeat(30 - filled),
        fraction * 100.0,
        simulated,
        duration,
        rtf
    );
    if done == total {
        line.push('\n');
    }
    line
}

/// The run summary: sizes, spikes and rates per population, timings, synaptic events and where
/// the outputs are.
pub fn summary(
    network_name: &str,
    network: &Network,
    stats: &RunStats,
    steps: u64,
    timings: &Timings,
    out: &Path,
) -> String {
    let mut text = String::new();
    let n_neurons: usize = network.populations.iter().map(|p| p.size).sum();
    let n_synapses: u64 = network
        .projections
        .iter()
        .map(|p| p.connectivity.n_synapses())
        .sum();
    let simulated = steps as f64 * network.dt;
    let _ = writeln!(
        text,
        "network {network_name}: {n_neurons} neurons, {n_synapses} synapses, {} s simulated in {steps} steps",
        format_seconds(simulated)
    );
    let _ = writeln!(
        text,
        "  {:<12} {:>10} {:>10} {:>12}",
        "population", "neurons", "spikes", "mean rate"
    );
    for (i, population) in network.populations.iter().enumerate() {
        let spikes = stats.population_spikes.get(i).copied().unwrap_or(0);
        let rate = if population.size > 0 && simulated > 0.0 {
            spikes as f64 / population.size as f64 / simulated
        } else {
            0.0
        };
        let _ = writeln!(
            text,
            "  {:<12} {:>10} {:>10} {:>9.2} Hz",
            population.name, population.size, spikes, rate
        );
    }
    let compile = match timings.compile {
        Some((front_end, jit)) => format!(
            "compile {:.1} ms (front end {:.1} ms, JIT {:.1} ms), ",
            (front_end + jit).as_secs_f64() * 1e3,
            front_end.as_secs_f64() * 1e3,
            jit.as_secs_f64() * 1e3,
        ),
        None => String::new(),
    };
    let _ = writeln!(
        text,
        "  {compile}build {:.1} ms, run {:.3} s on {} thread{}, real-time factor {:.3}",
        timings.build.as_secs_f64() * 1e3,
        timings.run.as_secs_f64(),
        stats.threads,
        if stats.threads == 1 { "" } else { "s" },
        timings.run.as_secs_f64() / simulated.max(f64::MIN_POSITIVE)
    );
    let _ = writeln!(
        text,
        "  {} synaptic events; outputs in {}/ (manifest.json)",
        stats.synaptic_events,
        out.display()
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_line_fills_and_ends_with_a_newline() {
        let half = progress_line(5, 10, 0.1, Duration::from_millis(250));
        assert!(half.starts_with("\r[==============="), "{half}");
        assert!(
            half.contains(" 50%  t = 0.50 s / 1.00 s  real-time factor 0.500"),
            "{half}"
        );
        assert!(!half.ends_with('\n'));
        assert!(progress_line(10, 10, 0.1, Duration::ZERO).ends_with('\n'));
        assert_eq!(progress_line(0, 0, 0.1, Duration::ZERO), "");
    }
}
