//! Per-target ring buffers of delayed synaptic input.
//!
//! This module owns the accumulation of input that arrives in a later step: a value sent with a
//! delay of `d` steps is added to slot `(current_step + d) % n_slots` of its target and read
//! exactly `d` steps later. It does not know about weights, synapse storage or neuron state;
//! [`DelayRing::deliver`] only walks a [`Connectivity`] row to look up targets and delays.
//!
//! Layout: slot-major, so the current slot of all targets is one contiguous slice that the
//! neuron update reads with unit stride. `n_slots = max_delay_steps + 1`, because a delay of
//! `max_delay_steps` must not wrap onto the slot being read now.
//!
//! A delay of 0 writes into the current slot; it is seen only if added before the step's input
//! is read, and is discarded by [`DelayRing::advance`] otherwise. The scheduler
//! (`schedule.rs`) delivers the spikes of a step before it reads that step's slot, so a delay
//! of 0 acts within the same step.

use std::ops::AddAssign;

use crate::connectivity::Connectivity;
use crate::error::RuntimeError;

/// Ring buffers of pending input for `n_targets` neurons.
#[derive(Clone, Debug)]
pub struct DelayRing<T> {
    n_targets: usize,
    n_slots: usize,
    /// The slot read in the current step.
    current: usize,
    buffer: Vec<T>,
    /// Per slot, the targets that received input (possibly repeated), so that draining a slot
    /// costs the number of synaptic events, not the number of targets, when input is sparse.
    touched: Vec<Vec<u32>>,
}

impl<T: Copy + Default + AddAssign> DelayRing<T> {
    /// Creates zeroed buffers for `n_targets` neurons and delays up to `max_delay_steps`.
    pub fn new(n_targets: usize, max_delay_steps: u16) -> Result<Self, RuntimeError> {
        let n_slots = usize::from(max_delay_steps) + 1;
        let len = n_targets.checked_mul(n_slots).ok_or_else(|| {
            RuntimeError::invalid(
                "delay ring",
                format!("{n_targets} targets × {n_slots} slots overflows the address space"),
            )
        })?;
        Ok(DelayRing {
            n_targets,
            n_slots,
            current: 0,
            buffer: vec![T::default(); len],
            touched: vec![Vec::new(); n_slots],
        })
    }

    pub fn n_targets(&self) -> usize {
        self.n_targets
    }

    pub fn n_slots(&self) -> usize {
        self.n_slots
    }

    /// The largest delay this ring accepts.
    pub fn max_delay(&self) -> usize {
        self.n_slots - 1
    }

    fn slot_of(&self, delay_steps: u16) -> Result<usize, RuntimeError> {
        let d = usize::from(delay_steps);
        if d >= self.n_slots {
            return Err(RuntimeError::invalid(
                "delay ring",
                format!(
                    "delay of {d} steps exceeds the maximum of {} the ring was built for",
                    self.max_delay()
                ),
            ));
        }
        Ok((self.current + d) % self.n_slots)
    }

    /// Adds `value` to `target`'s input `delay_steps` steps from now.
    #[inline]
    pub fn add(&mut self, target: u32, delay_steps: u16, value: T) -> Result<(), RuntimeError> {
        let t = target as usize;
        if t >= self.n_targets {
            return Err(RuntimeError::invalid(
                "delay ring",
                format!("target {t} is outside 0..{}", self.n_targets),
            ));
        }
        let slot = self.slot_of(delay_steps)?;
        self.buffer[slot * self.n_targets + t] += value;
        self.touched[slot].push(target);
        Ok(())
    }

    /// Delivers a spike of presynaptic neuron `pre`: each synapse of its row adds its weight to
    /// its target with its own delay (or the projection's homogeneous delay). A per-synapse
    /// delay beyond the ring's maximum is reported when reached, after the synapses before it
    /// in the row were delivered; build the ring from `Connectivity::max_delay` to rule it out.
    pub fn deliver<W: Copy + Into<T>>(
        &mut self,
        conn: &Connectivity,
        pre: u32,
        weights: &[W],
    ) -> Result<(), RuntimeError> {
        if weights.len() as u64 != conn.n_synapses() {
            return Err(RuntimeError::invalid(
                "delay ring",
                format!(
                    "{} weights given for {} synapses",
                    weights.len(),
                    conn.n_synapses()
                ),
            ));
        }
        if conn.n_post() as usize > self.n_targets {
            return Err(RuntimeError::invalid(
                "delay ring",
                format!(
                    "projection has {} targets but the ring only {}",
                    conn.n_post(),
                    self.n_targets
                ),
            ));
        }
        let range = conn.row_range(pre);
        let targets = &conn.targets()[range.clone()];
        let weights = &weights[range.clone()];
        let n = self.n_targets;
        match conn.delays() {
            None => {
                // One slot for the whole row: slice it once.
                let index = self.slot_of(conn.max_delay())?;
                let slot = &mut self.buffer[index * n..index * n + n];
                for (&t, &w) in targets.iter().zip(weights) {
                    slot[t as usize] += w.into();
                }
                self.touched[index].extend_from_slice(targets);
            }
            Some(delays) => {
                for ((&t, &w), &d) in targets.iter().zip(weights).zip(&delays[range]) {
                    let slot = self.slot_of(d)?;
                    self.buffer[slot * n + t as usize] += w.into();
                    self.touched[slot].push(t);
                }
            }
        }
        Ok(())
    }

    /// As [`Self::deliver`] with every synapse of the row carrying the same weight `value`.
    pub fn deliver_uniform(
        &mut self,
        conn: &Connectivity,
        pre: u32,
        value: T,
    ) -> Result<(), RuntimeError> {
        if conn.n_post() as usize > self.n_targets {
            return Err(RuntimeError::invalid(
                "delay ring",
                format!(
                    "projection has {} targets but the ring only {}",
                    conn.n_post(),
                    self.n_targets
                ),
            ));
        }
        let range = conn.row_range(pre);
        let targets = &conn.targets()[range.clone()];
        let n = self.n_targets;
        match conn.delays() {
            None => {
                let index = self.slot_of(conn.max_delay())?;
                let slot = &mut self.buffer[index * n..index * n + n];
                for &t in targets {
                    slot[t as usize] += value;
                }
                self.touched[index].extend_from_slice(targets);
            }
            Some(delays) => {
                for (&t, &d) in targets.iter().zip(&delays[range]) {
                    let slot = self.slot_of(d)?;
                    self.buffer[slot * n + t as usize] += value;
                    self.touched[slot].push(t);
                }
            }
        }
        Ok(())
    }

    /// The input of all targets for the current step.
    pub fn current(&self) -> &[T] {
        let start = self.current * self.n_targets;
        &self.buffer[start..start + self.n_targets]
    }

    /// The input of one target for the current step (`None` when out of range).
    pub fn take_current(&self, target: u32) -> Option<T> {
        self.current().get(target as usize).copied()
    }

    /// Ends the step: clears the consumed slot so it can receive input `n_slots` steps ahead,
    /// and makes the next slot current.
    pub fn advance(&mut self) {
        let start = self.current * self.n_targets;
        self.buffer[start..start + self.n_targets].fill(T::default());
        self.touched[self.current].clear();
        self.current = (self.current + 1) % self.n_slots;
    }

    /// Bytes held by the buffers.
    pub fn bytes(&self) -> u64 {
        (self.buffer.len() * std::mem::size_of::<T>()) as u64
    }
}

impl DelayRing<f64> {
    /// Adds the current slot's input into `target` and ends the step as [`Self::advance`]
    /// does. A target whose input is zero is left unchanged (adding `+0.0` would turn a `-0.0`
    /// state into `+0.0`; nothing else differs), which lets sparse input touch only the targets
    /// that received spikes, while dense input takes one pass over all targets; both give the
    /// same bits.
    pub fn drain_into(&mut self, target: &mut [f64]) {
        let n = self.n_targets;
        let start = self.current * n;
        let slot = &mut self.buffer[start..start + n];
        let touched = &mut self.touched[self.current];
        let m = target.len().min(n);
        if touched.len() < n / 4 {
            for &t in touched.iter() {
                let t = t as usize;
                let input = slot[t];
                if input != 0.0 && t < m {
                    target[t] += input;
                }
                slot[t] = 0.0;
            }
        } else {
            let (head, rest) = slot.split_at_mut(m);
            add_nonzero_and_clear(&mut target[..m], head);
            // Targets beyond `target` (none when the sizes match) are still cleared.
            rest.fill(0.0);
        }
        touched.clear();
        self.current = (self.current + 1) % self.n_slots;
    }
}

/// `if slot[i] != 0 { target[i] += slot[i] }; slot[i] = 0.0` for every `i` (equal lengths).
fn add_nonzero_and_clear(target: &mut [f64], slot: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx") {
            // SAFETY: the CPU supports AVX (checked just above).
            unsafe { add_nonzero_and_clear_avx(target, slot) };
            return;
        }
    }
    add_nonzero_and_clear_portable(target, slot);
}

#[inline(always)]
fn add_nonzero_and_clear_portable(target: &mut [f64], slot: &mut [f64]) {
    for (x, r) in target.iter_mut().zip(slot.iter_mut()) {
        // A select, not a branch, so the loop vectorises.
        *x = if *r != 0.0 { *x + *r } else { *x };
        *r = 0.0;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn add_nonzero_and_clear_avx(target: &mut [f64], slot: &mut [f64]) {
    add_nonzero_and_clear_portable(target, slot);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectivity::ProjectionSpec;

    #[test]
    fn value_arrives_exactly_after_its_delay() {
        let max = 7u16;
        for d in 0..=max {
            // Start at several phases of the ring so wrap-around is covered.
            for start in 0..(usize::from(max) + 3) {
                let mut ring: DelayRing<f64> = DelayRing::new(3, max).unwrap();
                for _ in 0..start {
                    ring.advance();
                }
                ring.add(1, d, 2.5).unwrap();
                for step in 0..=(usize::from(max) + 2) {
                    let seen = ring.current()[1];
                    if step == usize::from(d) {
                        assert_eq!(seen, 2.5, "d = {d}, start = {start}");
                    } else {
                        assert_eq!(seen, 0.0, "d = {d} seen at step {step}");
                    }
                    assert_eq!(ring.current()[0], 0.0);
                    assert_eq!(ring.current()[2], 0.0);
                    ring.advance();
                }
            }
        }
    }

    #[test]
    fn accumulates_and_rejects_bad_input() {
        let mut ring: DelayRing<f32> = DelayRing::new(2, 2).unwrap();
        assert_eq!(ring.n_slots(), 3);
        ring.add(0, 1, 1.0).unwrap();
        ring.add(0, 1, 0.5).unwrap();
        ring.advance();
        assert_eq!(ring.take_current(0), Some(1.5));
        assert_eq!(ring.take_current(5), None);
        assert!(ring.add(2, 1, 1.0).is_err());
        let e = ring.add(0, 3, 1.0).unwrap_err();
        assert!(e.to_string().contains("exceeds the maximum of 2"), "{e}");
    }

    #[test]
    fn sparse_and_dense_draining_agree_and_zero_input_changes_nothing() {
        // 64 targets; one ring gets input for 3 of them (sparse path), the other for 40 (dense
        // path), with the same values where they overlap, including a pair that cancels.
        let mut sparse = DelayRing::<f64>::new(64, 0).unwrap();
        let mut dense = DelayRing::<f64>::new(64, 0).unwrap();
        for (t, w) in [(1u32, 0.5), (2, 0.25), (2, -0.25), (3, 1.0)] {
            sparse.add(t, 0, w).unwrap();
            dense.add(t, 0, w).unwrap();
        }
        for t in 10..46u32 {
            dense.add(t, 0, 0.125).unwrap();
        }
        let mut a = vec![-0.0; 64];
        let mut b = vec![-0.0; 64];
        sparse.drain_into(&mut a);
        dense.drain_into(&mut b);
        for t in [0usize, 1, 2, 3, 4, 63] {
            assert_eq!(a[t].to_bits(), b[t].to_bits(), "target {t}");
        }
        assert_eq!(a[1], 0.5);
        assert_eq!(a[3], 1.0);
        // Target 2's inputs cancel and target 0 got none: both keep their -0.0.
        assert!(a[2] == 0.0 && a[2].is_sign_negative());
        assert!(a[0].is_sign_negative() && b[0].is_sign_negative());
        assert_eq!(b[20], 0.125 - 0.0);
        // Both rings are empty afterwards.
        assert!(sparse.current().iter().all(|&x| x == 0.0));
        assert!(dense.current().iter().all(|&x| x == 0.0));
    }

    #[test]
    fn delivers_homogeneous_and_heterogeneous_delays() {
        let spec = ProjectionSpec {
            name: "projection 'p'".into(),
            n_pre: 2,
            n_post: 3,
            seed: 1,
            projection: 0,
            same_population: false,
            autapses: true,
        };
        let mut conn = Connectivity::all_to_all(&spec).unwrap();
        let weights: Vec<f32> = conn.fill_weights_f32(|_, post, _| f64::from(post + 1));

        conn.set_homogeneous_delay(2);
        let mut ring: DelayRing<f64> = DelayRing::new(3, conn.max_delay()).unwrap();
        ring.deliver(&conn, 0, &weights).unwrap();
        ring.advance();
        assert_eq!(ring.current(), &[0.0, 0.0, 0.0]);
        ring.advance();
        assert_eq!(ring.current(), &[1.0, 2.0, 3.0]);

        // Target j of pre i gets delay j + 1.
        conn.set_delays(|_, post, _| post as u16 + 1);
        let mut ring: DelayRing<f64> = DelayRing::new(3, conn.max_delay()).unwrap();
        ring.deliver(&conn, 1, &weights).unwrap();
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.push(ring.current().to_vec());
            ring.advance();
        }
        assert_eq!(
            seen,
            vec![
                vec![0.0, 0.0, 0.0],
                vec![1.0, 0.0, 0.0],
                vec![0.0, 2.0, 0.0],
                vec![0.0, 0.0, 3.0]
            ]
        );

        // A ring built too small for the projection's delays is an error, not a wrap.
        let mut small: DelayRing<f64> = DelayRing::new(3, 1).unwrap();
        assert!(small.deliver(&conn, 0, &weights).is_err());
        assert!(ring.deliver(&conn, 0, &weights[..2]).is_err());
    }
}
