//! Memory estimates for a network, checked against the memory that is available.
//!
//! This module owns the arithmetic of "will it fit": bytes for neuron state, synapses and ring
//! buffers, compared with `MemAvailable` from `/proc/meminfo` on Linux. It allocates nothing
//! and must be called BEFORE the big allocations, so that a network that cannot fit fails with
//! a clear message instead of being killed by the operating system halfway through setup.
//! Where available memory cannot be read, the check is skipped rather than guessed.

use crate::error::RuntimeError;

/// Neuron state of one population.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PopulationFootprint {
    pub neurons: u64,
    pub state_bytes_per_neuron: u64,
}

/// Synapses of one projection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProjectionFootprint {
    pub n_pre: u64,
    pub synapses: u64,
    /// Structure plus weight bytes per synapse (e.g. 4 target + 4 weight + 2 delay).
    pub bytes_per_synapse: u64,
}

/// Delay ring buffers of one target population.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingFootprint {
    pub targets: u64,
    pub slots: u64,
    pub bytes_per_value: u64,
}

/// An estimate broken down by kind, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryEstimate {
    pub neuron_bytes: u64,
    pub synapse_bytes: u64,
    pub ring_buffer_bytes: u64,
}

impl MemoryEstimate {
    /// Sums the parts with saturating arithmetic, so absurd sizes read as "too much" rather
    /// than wrapping to something small.
    pub fn new(
        populations: &[PopulationFootprint],
        projections: &[ProjectionFootprint],
        rings: &[RingFootprint],
    ) -> Self {
        let neuron_bytes = populations.iter().fold(0u64, |acc, p| {
            acc.saturating_add(p.neurons.saturating_mul(p.state_bytes_per_neuron))
        });
        let synapse_bytes = projections.iter().fold(0u64, |acc, p| {
            // Row offsets are one u64 per presynaptic neuron plus one.
            let offsets = p.n_pre.saturating_add(1).saturating_mul(8);
            acc.saturating_add(p.synapses.saturating_mul(p.bytes_per_synapse))
                .saturating_add(offsets)
        });
        let ring_buffer_bytes = rings.iter().fold(0u64, |acc, r| {
            acc.saturating_add(
                r.targets
                    .saturating_mul(r.slots)
                    .saturating_mul(r.bytes_per_value),
            )
        });
        MemoryEstimate {
            neuron_bytes,
            synapse_bytes,
            ring_buffer_bytes,
        }
    }

    pub fn total(&self) -> u64 {
        self.neuron_bytes
            .saturating_add(self.synapse_bytes)
            .saturating_add(self.ring_buffer_bytes)
    }
}

/// Extracts `MemAvailable` (in bytes) from the text of `/proc/meminfo`.
pub fn parse_meminfo(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let mut parts = line["MemAvailable:".len()..].split_whitespace();
    let value: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") => value.checked_mul(1024),
        None => Some(value),
        Some(_) => None,
    }
}

/// Available memory in bytes, or `None` where it cannot be determined (not Linux, no /proc).
pub fn available_memory_bytes() -> Option<u64> {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .as_deref()
        .and_then(parse_meminfo)
}

/// Fails when `needed` exceeds `available`; passes when `available` is unknown.
pub fn check_fits_in(needed: u64, available: Option<u64>) -> Result<(), RuntimeError> {
    match available {
        Some(available) if needed > available => Err(RuntimeError::OutOfMemory {
            needed_bytes: needed,
            available_bytes: available,
        }),
        _ => Ok(()),
    }
}

/// Checks the estimate against the memory available right now.
pub fn check_fits(estimate: &MemoryEstimate) -> Result<(), RuntimeError> {
    check_fits_in(estimate.total(), available_memory_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_adds_up() {
        let e = MemoryEstimate::new(
            &[PopulationFootprint {
                neurons: 4000,
                state_bytes_per_neuron: 16,
            }],
            &[ProjectionFootprint {
                n_pre: 4000,
                synapses: 320_000,
                bytes_per_synapse: 8,
            }],
            &[RingFootprint {
                targets: 4000,
                slots: 2,
                bytes_per_value: 4,
            }],
        );
        assert_eq!(e.neuron_bytes, 64_000);
        assert_eq!(e.synapse_bytes, 2_560_000 + 4001 * 8);
        assert_eq!(e.ring_buffer_bytes, 32_000);
        assert_eq!(e.total(), 64_000 + 2_560_000 + 32_008 + 32_000);
        let huge = MemoryEstimate::new(
            &[PopulationFootprint {
                neurons: u64::MAX,
                state_bytes_per_neuron: 8,
            }],
            &[],
            &[],
        );
        assert_eq!(huge.total(), u64::MAX);
    }

    #[test]
    fn meminfo_parsing() {
        let text = "MemTotal:       131072000 kB\nMemFree:  1000 kB\nMemAvailable:   2097152 kB\n";
        assert_eq!(parse_meminfo(text), Some(2 << 30));
        assert_eq!(parse_meminfo("MemTotal: 5 kB\n"), None);
        assert_eq!(parse_meminfo("MemAvailable: lots kB\n"), None);
    }

    #[test]
    fn check_reports_before_allocating() {
        let e = check_fits_in(3 << 30, Some(1 << 30)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "network needs ~3.00 GiB but only 1.00 GiB is available"
        );
        assert!(check_fits_in(1 << 30, Some(3 << 30)).is_ok());
        assert!(check_fits_in(u64::MAX, None).is_ok());
        // On this machine a small network fits and an absurd one does not (when readable).
        assert!(check_fits(&MemoryEstimate::default()).is_ok());
        if available_memory_bytes().is_some() {
            let absurd = MemoryEstimate {
                synapse_bytes: u64::MAX,
                ..MemoryEstimate::default()
            };
            assert!(check_fits(&absurd).is_err());
        }
    }
}
