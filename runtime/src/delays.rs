//! Per-target ring buffers of delayed synaptic input.
//!
//! This module owns the accumulation of input that arrives in a later step: a value sent with a
//! delay of `d` steps is added to slot `(current_step + d) % n_slots` of its target and read
//! exactly `d` steps later. It does not know about weights, synapse storage or neuron state;
//! delivery takes one presynaptic row (targets, weights, delays) at a time.
//!
//! A ring is split into [`RingPart`]s, each owning a contiguous range of targets with its own
//! buffers, so that threads that own disjoint target ranges deliver and drain without sharing
//! anything (`schedule.rs`). A part is slot-major: the current slot of its targets is one
//! contiguous slice that the drain reads with unit stride. `n_slots = max_delay_steps + 1`,
//! because a delay of `max_delay_steps` must not wrap onto the slot being read now. Splitting
//! changes no result: every target receives the same additions in the same order, whichever
//! part holds it.
//!
//! A delay of 0 writes into the current slot; it is seen only if added before the step's input
//! is drained, and is discarded by [`DelayRing::advance`] otherwise. The scheduler delivers
//! the spikes of a step before it drains that step's slot, so a delay of 0 acts within the
//! same step. A projection whose delays are all zero can therefore skip its ring altogether:
//! [`deliver_row_direct`] adds into the target array itself, which the scheduler uses for
//! `f64` targets (it saves a random access per synaptic event and the drain).

use std::ops::{AddAssign, Range};

use crate::array::{Array, Element};
use crate::connectivity::Connectivity;
use crate::error::RuntimeError;

/// The weights of one presynaptic row: one for all its synapses, or one per synapse.
#[derive(Clone, Copy, Debug)]
pub enum RowWeights<'a, W> {
    Uniform(W),
    PerSynapse(&'a [W]),
}

impl<'a, W> RowWeights<'a, W> {
    /// The weights of `synapses` (CSR indices), from those of the whole projection.
    #[inline]
    fn of_synapses(self, synapses: Range<usize>) -> Self {
        match self {
            RowWeights::Uniform(w) => RowWeights::Uniform(w),
            RowWeights::PerSynapse(ws) => RowWeights::PerSynapse(&ws[synapses]),
        }
    }
}

/// The delays of one presynaptic row, in steps: one for the projection, or one per synapse
/// in the width the projection stores them in (see `connectivity::SynapseDelays`).
#[derive(Clone, Copy, Debug)]
pub enum RowDelays<'a> {
    Homogeneous(u16),
    PerSynapse8(&'a [u8]),
    PerSynapse16(&'a [u16]),
}

/// Pending input of the targets `first..first + len` of a ring.
#[derive(Clone, Debug)]
pub struct RingPart<T> {
    first: usize,
    len: usize,
    n_slots: usize,
    /// The slot read in the current step.
    current: usize,
    buffer: Vec<T>,
    /// Per slot, the targets (relative to `first`) that received input, possibly repeated, so
    /// that draining a slot costs the number of synaptic events, not the number of targets,
    /// when input is sparse. A list stops growing at [`Self::sparse_limit`] entries: the
    /// slot is then drained whole, and recording more events would only cost time.
    touched: Vec<Vec<u32>>,
}

impl<T: Copy + Default + AddAssign> RingPart<T> {
    fn new(targets: Range<usize>, n_slots: usize, current: usize) -> Self {
        let len = targets.len();
        RingPart {
            first: targets.start,
            len,
            n_slots,
            current,
            buffer: vec![T::default(); len * n_slots],
            touched: vec![Vec::new(); n_slots],
        }
    }

    /// A slot with fewer touched entries than this is drained through its list; one with
    /// more is drained whole (and its list is no longer extended).
    #[inline]
    fn sparse_limit(&self) -> usize {
        self.len / 4
    }

    /// The targets this part owns.
    pub fn targets(&self) -> Range<usize> {
        self.first..self.first + self.len
    }

    /// The slot `delay_steps` ahead of the current one; the delay must be below `n_slots`
    /// (the ring was sized for the connectivity's largest delay, which the network checks).
    #[inline]
    fn slot_ahead(&self, delay_steps: u16) -> usize {
        let d = usize::from(delay_steps);
        debug_assert!(d < self.n_slots, "delay {d} beyond the ring");
        let slot = self.current + d;
        if slot >= self.n_slots {
            slot - self.n_slots
        } else {
            slot
        }
    }

    /// Delivers the synapses of one presynaptic row whose targets this part owns: `targets`
    /// (global indices, all within [`Self::targets`]) with their weights and delays, the
    /// weights and delays given for exactly these synapses.
    #[inline]
    pub fn deliver<W: Copy + Into<T>>(
        &mut self,
        targets: &[u32],
        weights: RowWeights<'_, W>,
        delays: RowDelays<'_>,
    ) {
        let first = self.first as u32;
        let n = self.len;
        match delays {
            RowDelays::Homogeneous(d) => {
                // One slot for the whole row: slice it once.
                let index = self.slot_ahead(d);
                let limit = self.sparse_limit();
                let slot = &mut self.buffer[index * n..index * n + n];
                let touched = &mut self.touched[index];
                match weights {
                    RowWeights::Uniform(w) => {
                        let w = w.into();
                        for &t in targets {
                            slot[(t - first) as usize] += w;
                        }
                    }
                    RowWeights::PerSynapse(ws) => {
                        for (&t, &w) in targets.iter().zip(ws) {
                            slot[(t - first) as usize] += w.into();
                        }
                    }
                }
                if touched.len() < limit {
                    touched.extend(targets.iter().map(|&t| t - first));
                }
            }
            RowDelays::PerSynapse8(ds) => self.deliver_each(targets, weights, ds),
            RowDelays::PerSynapse16(ds) => self.deliver_each(targets, weights, ds),
        }
    }

    /// Delivers synapses with delays of their own, each into the slot of its delay.
    #[inline]
    fn deliver_each<W: Copy + Into<T>, D: Copy + Into<u16>>(
        &mut self,
        targets: &[u32],
        weights: RowWeights<'_, W>,
        delays: &[D],
    ) {
        let first = self.first as u32;
        let n = self.len;
        let limit = self.sparse_limit();
        for (s, (&t, &d)) in targets.iter().zip(delays).enumerate() {
            let w = match weights {
                RowWeights::Uniform(w) => w,
                RowWeights::PerSynapse(ws) => ws[s],
            };
            let slot = self.slot_ahead(d.into());
            let local = t - first;
            self.buffer[slot * n + local as usize] += w.into();
            let touched = &mut self.touched[slot];
            if touched.len() < limit {
                touched.push(local);
            }
        }
    }

    /// The input of this part's targets for the current step.
    pub fn current(&self) -> &[T] {
        let start = self.current * self.len;
        &self.buffer[start..start + self.len]
    }

    /// Ends the step without reading it: clears the current slot and moves to the next.
    pub fn advance(&mut self) {
        let start = self.current * self.len;
        self.buffer[start..start + self.len].fill(T::default());
        self.touched[self.current].clear();
        self.current = (self.current + 1) % self.n_slots;
    }
}

impl RingPart<f64> {
    /// Adds the current slot's input into `target` (this part's targets, in order) and ends
    /// the step as [`Self::advance`] does. A target whose input is zero is left unchanged
    /// (adding `+0.0` would turn a `-0.0` state into `+0.0`; nothing else differs), which lets
    /// sparse input touch only the targets that received spikes, while dense input takes one
    /// pass over all targets; both give the same bits.
    ///
    /// Targets stored as `f32` (an `f32` network) get the sum taken in `f64` and rounded once.
    pub fn drain_into<E: Element>(&mut self, target: &mut [E]) {
        let n = self.len;
        let limit = self.sparse_limit();
        let start = self.current * n;
        let slot = &mut self.buffer[start..start + n];
        let touched = &mut self.touched[self.current];
        let m = target.len().min(n);
        if touched.len() < limit {
            for &t in touched.iter() {
                let t = t as usize;
                let input = slot[t];
                if input != 0.0 && t < m {
                    target[t] = E::from_f64(target[t].to_f64() + input);
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

/// Ring buffers of pending input for `n_targets` neurons, split into parts by target range.
#[derive(Clone, Debug)]
pub struct DelayRing<T> {
    n_targets: usize,
    n_slots: usize,
    parts: Vec<RingPart<T>>,
}

impl<T: Copy + Default + AddAssign> DelayRing<T> {
    /// Creates zeroed buffers, in one part, for `n_targets` neurons and delays up to
    /// `max_delay_steps`.
    pub fn new(n_targets: usize, max_delay_steps: u16) -> Result<Self, RuntimeError> {
        let n_slots = usize::from(max_delay_steps) + 1;
        n_targets.checked_mul(n_slots).ok_or_else(|| {
            RuntimeError::invalid(
                "delay ring",
                format!("{n_targets} targets × {n_slots} slots overflows the address space"),
            )
        })?;
        Ok(DelayRing {
            n_targets,
            n_slots,
            parts: vec![RingPart::new(0..n_targets, n_slots, 0)],
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

    /// The parts, in target order.
    pub fn parts(&self) -> &[RingPart<T>] {
        &self.parts
    }

    pub fn parts_mut(&mut self) -> &mut [RingPart<T>] {
        &mut self.parts
    }

    /// Splits the ring at `bounds` (ascending, from 0 to `n_targets`): part `i` owns targets
    /// `bounds[i]..bounds[i + 1]`. Pending input moves with its target.
    pub fn split_at(&mut self, bounds: &[usize]) -> Result<(), RuntimeError>
    where
        T: PartialEq,
    {
        let valid = bounds.len() >= 2
            && bounds[0] == 0
            && bounds[bounds.len() - 1] == self.n_targets
            && bounds.windows(2).all(|w| w[0] <= w[1]);
        if !valid {
            return Err(RuntimeError::invalid(
                "delay ring",
                format!(
                    "cannot split {} targets at {bounds:?}: the bounds must rise from 0 to {}",
                    self.n_targets, self.n_targets
                ),
            ));
        }
        let current = self.parts[0].current;
        let same = self.parts.len() == bounds.len() - 1
            && self.parts.iter().zip(bounds).all(|(p, &b)| p.first == b);
        if same {
            return Ok(());
        }
        let mut parts: Vec<RingPart<T>> = bounds
            .windows(2)
            .map(|w| RingPart::new(w[0]..w[1], self.n_slots, current))
            .collect();
        // The new parts' touched lists are rebuilt from the values, since an old list may have
        // stopped growing: a target with nonzero input is listed once, and the drain treats a
        // zero input as none, so the lists say everything a complete one would.
        for old in &self.parts {
            for slot in 0..self.n_slots {
                for (local, &value) in old.buffer[slot * old.len..(slot + 1) * old.len]
                    .iter()
                    .enumerate()
                {
                    let t = old.first + local;
                    let part = bounds.partition_point(|&b| b <= t) - 1;
                    let new = &mut parts[part];
                    let new_local = t - new.first;
                    let limit = new.sparse_limit();
                    new.buffer[slot * new.len + new_local] = value;
                    if value != T::default() && new.touched[slot].len() < limit {
                        new.touched[slot].push(new_local as u32);
                    }
                }
            }
        }
        self.parts = parts;
        Ok(())
    }

    /// The input waiting in the ring, for saving a simulation's state: `(delay from now,
    /// target, value)` for every slot value that is not the default. Adding each back with
    /// [`Self::add`] into an empty ring of the same size restores it.
    pub fn pending(&self) -> Vec<(u16, u32, T)>
    where
        T: PartialEq,
    {
        let mut out = Vec::new();
        for part in &self.parts {
            for d in 0..part.n_slots {
                let slot = (part.current + d) % part.n_slots;
                let values = &part.buffer[slot * part.len..(slot + 1) * part.len];
                for (t, &v) in values.iter().enumerate() {
                    if v != T::default() {
                        out.push((d as u16, (part.first + t) as u32, v));
                    }
                }
            }
        }
        out
    }

    /// Adds `value` to `target`'s input `delay_steps` steps from now.
    pub fn add(&mut self, target: u32, delay_steps: u16, value: T) -> Result<(), RuntimeError> {
        let t = target as usize;
        if t >= self.n_targets {
            return Err(RuntimeError::invalid(
                "delay ring",
                format!("target {t} is outside 0..{}", self.n_targets),
            ));
        }
        self.check_delay(delay_steps)?;
        let part = self.part_of(t);
        self.parts[part].deliver(
            &[target],
            RowWeights::Uniform(value),
            RowDelays::Homogeneous(delay_steps),
        );
        Ok(())
    }

    /// Delivers a spike of presynaptic neuron `pre`: each synapse of its row adds its weight to
    /// its target with its own delay (or the projection's homogeneous delay).
    pub fn deliver<W: Copy + Into<T>>(
        &mut self,
        conn: &Connectivity,
        pre: u32,
        weights: RowWeights<'_, W>,
    ) -> Result<(), RuntimeError> {
        if let RowWeights::PerSynapse(w) = weights {
            if w.len() as u64 != conn.n_synapses() {
                return Err(RuntimeError::invalid(
                    "delay ring",
                    format!(
                        "{} weights given for {} synapses",
                        w.len(),
                        conn.n_synapses()
                    ),
                ));
            }
        }
        if conn.n_post() as usize != self.n_targets {
            return Err(RuntimeError::invalid(
                "delay ring",
                format!(
                    "projection has {} targets but the ring {}",
                    conn.n_post(),
                    self.n_targets
                ),
            ));
        }
        self.check_delay(conn.max_delay())?;
        let row = conn.row_range(pre);
        for part in &mut self.parts {
            deliver_row_part(part, conn, row.clone(), weights);
        }
        Ok(())
    }

    /// The input of all targets for the current step.
    pub fn current(&self) -> Vec<T> {
        self.parts
            .iter()
            .flat_map(|p| p.current().iter().copied())
            .collect()
    }

    /// Ends the step: clears the consumed slot so it can receive input `n_slots` steps ahead,
    /// and makes the next slot current.
    pub fn advance(&mut self) {
        for part in &mut self.parts {
            part.advance();
        }
    }

    /// Bytes held by the buffers.
    pub fn bytes(&self) -> u64 {
        self.parts
            .iter()
            .map(|p| (p.buffer.len() * std::mem::size_of::<T>()) as u64)
            .sum()
    }

    fn check_delay(&self, delay_steps: u16) -> Result<(), RuntimeError> {
        if usize::from(delay_steps) >= self.n_slots {
            return Err(RuntimeError::invalid(
                "delay ring",
                format!(
                    "delay of {delay_steps} steps exceeds the maximum of {} the ring was built for",
                    self.max_delay()
                ),
            ));
        }
        Ok(())
    }

    fn part_of(&self, target: usize) -> usize {
        self.parts.partition_point(|p| p.first + p.len <= target)
    }
}

impl DelayRing<f64> {
    /// Adds the current slot's input into `target` (all targets) and ends the step, part by
    /// part (see [`RingPart::drain_into`]).
    pub fn drain_into<E: Element>(&mut self, target: &mut [E]) {
        for part in &mut self.parts {
            let range = part.targets();
            let end = range.end.min(target.len());
            let start = range.start.min(end);
            part.drain_into(&mut target[start..end]);
        }
    }

    /// [`Self::drain_into`] an array of either precision.
    pub fn drain_into_array(&mut self, target: &mut Array) {
        match target {
            Array::F64(a) => self.drain_into(a.as_mut_slice()),
            Array::F32(a) => self.drain_into(a.as_mut_slice()),
        }
    }
}

/// Delivers the synapses `row` (a presynaptic row of `conn`, targets ascending) whose targets
/// `part` owns. The network checked that the ring covers the connectivity's targets and
/// delays.
#[inline]
pub fn deliver_row_part<T: Copy + Default + AddAssign, W: Copy + Into<T>>(
    part: &mut RingPart<T>,
    conn: &Connectivity,
    row: Range<usize>,
    weights: RowWeights<'_, W>,
) {
    let synapses = owned_synapses(conn, row, part.targets());
    if synapses.is_empty() {
        return;
    }
    let targets = &conn.targets()[synapses.clone()];
    let weights = weights.of_synapses(synapses.clone());
    part.deliver(targets, weights, conn.row_delays(synapses));
}

/// Delivers the synapses `row` of a projection whose delays are all zero straight into
/// `target`, the values of the targets `owned` (`target[0]` is target `owned.start`), adding
/// each weight in row order, as Brian2's `v_post += w` does.
///
/// A ring of one slot would hold the same input for no time at all: the scheduler delivers
/// a step's spikes after its kernels and drains the slot right after, so the target sees the
/// input in the same step either way. Direct delivery saves a second random access per
/// synaptic event (the slot, then the target) and the list of touched targets. The sum is
/// rounded per event instead of once per step, which is what a target of the network's
/// precision does anyway when it is `f64`; `f32` targets keep the ring, whose sum is rounded
/// to `f32` once. A zero weight adds nothing (so a `-0.0` target stays `-0.0`, as in a
/// drained ring).
#[inline]
pub fn deliver_row_direct<W: Copy + Into<f64>>(
    target: &mut [f64],
    owned: Range<usize>,
    conn: &Connectivity,
    row: Range<usize>,
    weights: RowWeights<'_, W>,
) {
    let synapses = owned_synapses(conn, row, owned.clone());
    let targets = &conn.targets()[synapses.clone()];
    let first = owned.start as u32;
    match weights.of_synapses(synapses) {
        RowWeights::Uniform(w) => {
            let w = w.into();
            if w != 0.0 {
                for &t in targets {
                    target[(t - first) as usize] += w;
                }
            }
        }
        RowWeights::PerSynapse(ws) => {
            for (&t, &w) in targets.iter().zip(ws) {
                let w = w.into();
                if w != 0.0 {
                    target[(t - first) as usize] += w;
                }
            }
        }
    }
}

/// The synapses of `row` whose targets lie in `owned`: one contiguous run, since rows are
/// sorted by target.
#[inline]
fn owned_synapses(conn: &Connectivity, row: Range<usize>, owned: Range<usize>) -> Range<usize> {
    if owned.start == 0 && owned.end >= conn.n_post() as usize {
        return row;
    }
    let all = &conn.targets()[row.clone()];
    let lo = all.partition_point(|&t| (t as usize) < owned.start);
    let hi = lo + all[lo..].partition_point(|&t| (t as usize) < owned.end);
    row.start + lo..row.start + hi
}

/// `if slot[i] != 0 { target[i] += slot[i] }; slot[i] = 0.0` for every `i` (equal lengths),
/// the sum taken in `f64` and rounded once to the target's type.
fn add_nonzero_and_clear<E: Element>(target: &mut [E], slot: &mut [f64]) {
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
fn add_nonzero_and_clear_portable<E: Element>(target: &mut [E], slot: &mut [f64]) {
    for (x, r) in target.iter_mut().zip(slot.iter_mut()) {
        // A select, not a branch, so the loop vectorises.
        *x = if *r != 0.0 {
            E::from_f64(x.to_f64() + *r)
        } else {
            *x
        };
        *r = 0.0;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn add_nonzero_and_clear_avx<E: Element>(target: &mut [E], slot: &mut [f64]) {
    add_nonzero_and_clear_portable(target, slot);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectivity::{ProjectionSpec, SynapseDelays};

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
        assert_eq!(ring.current()[0], 1.5);
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
        let mut a = vec![-0.0f64; 64];
        let mut b = vec![-0.0f64; 64];
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
        // The dense ring's list of touched targets stopped growing at 16 (a quarter of 64);
        // the targets after that still get their input, since such a slot is drained whole.
        assert_eq!(b[45], 0.125 - 0.0);
        assert!(b[46].is_sign_negative());
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
        ring.deliver(&conn, 0, RowWeights::PerSynapse(&weights))
            .unwrap();
        ring.advance();
        assert_eq!(ring.current(), vec![0.0, 0.0, 0.0]);
        ring.advance();
        assert_eq!(ring.current(), vec![1.0, 2.0, 3.0]);

        // Target j of pre i gets delay j + 1.
        conn.set_delays(|_, post, _| post as u16 + 1);
        let mut ring: DelayRing<f64> = DelayRing::new(3, conn.max_delay()).unwrap();
        ring.deliver(&conn, 1, RowWeights::PerSynapse(&weights))
            .unwrap();
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.push(ring.current());
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

        // Delays of 256 steps and more are stored in two bytes and delivered the same way.
        conn.set_delays(|_, post, _| 254 + post as u16);
        assert!(matches!(conn.delays(), Some(SynapseDelays::Steps16(_))));
        let mut wide: DelayRing<f64> = DelayRing::new(3, conn.max_delay()).unwrap();
        wide.deliver(&conn, 0, RowWeights::PerSynapse(&weights))
            .unwrap();
        let mut arrivals = Vec::new();
        for step in 0..260 {
            let now = wide.current();
            arrivals.extend((0..3).filter(|&j| now[j] != 0.0).map(|j| (step, j, now[j])));
            wide.advance();
        }
        assert_eq!(arrivals, vec![(254, 0, 1.0), (255, 1, 2.0), (256, 2, 3.0)]);
        conn.set_delays(|_, post, _| post as u16 + 1);

        // A ring built too small for the projection's delays is an error, not a wrap.
        let mut small: DelayRing<f64> = DelayRing::new(3, 1).unwrap();
        assert!(small
            .deliver(&conn, 0, RowWeights::PerSynapse(&weights))
            .is_err());
        assert!(ring
            .deliver(&conn, 0, RowWeights::PerSynapse(&weights[..2]))
            .is_err());
    }

    /// Delivers the same spikes (per-synapse delays and weights) into a ring in one part and
    /// a ring split into uneven parts, part of them before the split; the drained inputs must
    /// be bitwise equal, step after step.
    #[test]
    fn splitting_a_ring_changes_no_result() {
        let spec = ProjectionSpec {
            name: "projection 'p'".into(),
            n_pre: 20,
            n_post: 37,
            seed: 5,
            projection: 0,
            same_population: false,
            autapses: true,
        };
        let mut conn = Connectivity::bernoulli(&spec, 0.4).unwrap();
        conn.set_delays(|pre, post, _| ((pre * 7 + post * 3) % 5) as u16);
        let weights = conn.fill_weights_f64(|pre, post, s| {
            0.1 * f64::from(pre) - 0.3 + s as f64 * 1e-3 + f64::from(post) * 0.01
        });
        let mut whole = DelayRing::<f64>::new(37, conn.max_delay()).unwrap();
        let mut split = whole.clone();
        let mut a = vec![0.0; 37];
        let mut b = vec![0.0; 37];
        for step in 0..12u32 {
            if step == 3 {
                split.split_at(&[0, 5, 5, 16, 30, 37]).unwrap();
                assert_eq!(split.parts().len(), 5);
            }
            for pre in (0..20).filter(|p| (p + step) % 3 == 0) {
                whole
                    .deliver(&conn, pre, RowWeights::PerSynapse(&weights))
                    .unwrap();
                split
                    .deliver(&conn, pre, RowWeights::PerSynapse(&weights))
                    .unwrap();
            }
            whole.drain_into(&mut a);
            split.drain_into(&mut b);
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a), bits(&b), "step {step}");
        }
        assert!(a.iter().any(|&x| x != 0.0));
        assert!(split.split_at(&[0, 40]).is_err());
        assert!(split.split_at(&[0, 20, 10, 37]).is_err());
    }

    /// Direct delivery over target ranges (as threads own them) adds, per target, the same
    /// weights in the same order as over all targets at once, touches only the range it is
    /// given, and skips zero weights.
    #[test]
    fn direct_delivery_splits_by_target_range_and_skips_zero_weights() {
        let spec = ProjectionSpec {
            name: "projection 'p'".into(),
            n_pre: 15,
            n_post: 29,
            seed: 8,
            projection: 0,
            same_population: false,
            autapses: true,
        };
        let conn = Connectivity::bernoulli(&spec, 0.5).unwrap();
        // Every fourth weight is zero; the targets start at -0.0, which a zero weight keeps.
        let weights = conn.fill_weights_f64(|pre, post, s| {
            if s % 4 == 0 {
                0.0
            } else {
                0.37 * f64::from(pre) - 0.21 * f64::from(post) + 1e-3 * s as f64
            }
        });
        let mut whole = vec![-0.0; 29];
        let mut split = vec![-0.0; 29];
        let bounds = [0, 7, 7, 20, 29];
        for pre in [3, 0, 14, 3, 9] {
            let row = conn.row_range(pre);
            deliver_row_direct(
                &mut whole,
                0..29,
                &conn,
                row.clone(),
                RowWeights::PerSynapse(&weights),
            );
            for w in bounds.windows(2) {
                deliver_row_direct(
                    &mut split[w[0]..w[1]],
                    w[0]..w[1],
                    &conn,
                    row.clone(),
                    RowWeights::PerSynapse(&weights),
                );
            }
        }
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&whole), bits(&split));
        // By hand: each target's weights in spike order, then synapse order.
        let mut expected = vec![-0.0f64; 29];
        for pre in [3, 0, 14, 3, 9] {
            for syn in conn.row_range(pre) {
                if weights[syn] != 0.0 {
                    expected[conn.targets()[syn] as usize] += weights[syn];
                }
            }
        }
        assert_eq!(bits(&whole), bits(&expected));
        assert!(whole.iter().any(|x| x.to_bits() == (-0.0f64).to_bits()));
        assert!(whole.iter().any(|&x| x != 0.0));
        // A uniform zero weight changes nothing at all.
        let before = bits(&whole);
        deliver_row_direct(
            &mut whole,
            0..29,
            &conn,
            conn.row_range(3),
            RowWeights::Uniform(0.0),
        );
        assert_eq!(bits(&whole), before);
    }
}
