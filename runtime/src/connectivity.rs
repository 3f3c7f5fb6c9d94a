//! Synapse structure: presynaptic-major CSR, its builders, and the post→synapse index.
//!
//! This module owns which synapses exist and, optionally, their per-synapse delays. It does not
//! own weights (the caller stores them in a separate vector indexed by synapse, filled with
//! [`Connectivity::fill_weights_f32`] or [`Connectivity::fill_weights_f64`]), nor delivery of
//! spikes (that is `delays.rs` and the schedule).
//!
//! Every random builder is a pure function of `(seed, projection id, sizes, parameters)`: each
//! presynaptic row (or postsynaptic column, for `fixed_indegree`) takes its draws from the
//! counter-based stream `Stream::new(seed, projection)` addressed by the row or column index
//! and a construction step tag, never from a sequential generator. A row's synapses therefore
//! do not depend on the order in which rows are built or on how rows are split across threads.
//!
//! Within each row targets are sorted ascending. Autapses (i → i) are only excluded when the
//! caller says the projection connects a population to itself (`same_population`) and asks for
//! none (`autapses == false`).

use std::collections::HashSet;
use std::ops::Range;
use std::sync::OnceLock;

use crate::delays::RowDelays;
use crate::error::RuntimeError;
use crate::rng::{Draws, Stream, CONSTRUCTION_STEP_BASE};

/// Step tag for target choices of a row or column.
const STEP_TARGETS: u64 = CONSTRUCTION_STEP_BASE;
/// Step tag for the multinomial split of `fixed_total` (entity 0, one draw cursor).
const STEP_TOTAL_SPLIT: u64 = CONSTRUCTION_STEP_BASE + 1;

/// What every builder needs to know about a projection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectionSpec {
    /// A human-readable name used in error messages (e.g. "projection 'exc->inh'").
    pub name: String,
    pub n_pre: u32,
    pub n_post: u32,
    pub seed: u64,
    /// The projection id, used as the random stream id.
    pub projection: u32,
    /// Whether pre and post are the same population (autapses are only possible then).
    pub same_population: bool,
    /// Whether i → i synapses are allowed when `same_population` holds.
    pub autapses: bool,
}

impl ProjectionSpec {
    /// Whether the synapse pre → post must be left out because it is a forbidden autapse.
    fn forbids(&self, pre: u32, post: u32) -> bool {
        self.same_population && !self.autapses && pre == post
    }

    fn no_autapses(&self) -> bool {
        self.same_population && !self.autapses
    }

    fn error(&self, message: impl Into<String>) -> RuntimeError {
        RuntimeError::invalid(self.name.clone(), message)
    }

    fn check_same_population_sizes(&self) -> Result<(), RuntimeError> {
        if self.same_population && self.n_pre != self.n_post {
            return Err(self.error(format!(
                "same_population is set but n_pre = {} differs from n_post = {}",
                self.n_pre, self.n_post
            )));
        }
        Ok(())
    }
}

/// For each postsynaptic neuron, the synapses that target it (a CSC view of the CSR).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostIndex {
    /// `col_start[j]..col_start[j + 1]` is the range of `synapse`/`source` for neuron `j`.
    pub col_start: Vec<u64>,
    /// Synapse indices into the CSR arrays, ascending within each column.
    pub synapse: Vec<u64>,
    /// The presynaptic neuron of each entry, so `on post` handlers need no search.
    pub source: Vec<u32>,
}

/// Presynaptic-major synapse storage.
#[derive(Debug)]
pub struct Connectivity {
    n_pre: u32,
    n_post: u32,
    /// `row_start[i]..row_start[i + 1]` are the synapses of presynaptic neuron `i`.
    row_start: Vec<u64>,
    target: Vec<u32>,
    /// The delay of every synapse, when delays are heterogeneous.
    delay: Option<SynapseDelays>,
    /// The delay of all synapses when `delay` is `None`.
    homogeneous_delay: u16,
    post_index: OnceLock<PostIndex>,
}

/// Builds CSR arrays from per-row sorted target lists.
/// Heterogeneous delays in steps, one per synapse in CSR order, stored in the narrowest type
/// that holds the largest: most networks' delays (below 25.6 ms at dt = 0.1 ms) take one byte.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SynapseDelays {
    Steps8(Vec<u8>),
    Steps16(Vec<u16>),
}

impl SynapseDelays {
    /// `delays` in one byte each when all fit, else as they are.
    pub fn narrowest(delays: Vec<u16>) -> SynapseDelays {
        if delays.iter().all(|&d| d <= u16::from(u8::MAX)) {
            SynapseDelays::Steps8(delays.into_iter().map(|d| d as u8).collect())
        } else {
            SynapseDelays::Steps16(delays)
        }
    }

    pub fn len(&self) -> usize {
        match self {
            SynapseDelays::Steps8(d) => d.len(),
            SynapseDelays::Steps16(d) => d.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The delay of synapse `syn`, if there is one.
    pub fn get(&self, syn: usize) -> Option<u16> {
        match self {
            SynapseDelays::Steps8(d) => d.get(syn).map(|&x| u16::from(x)),
            SynapseDelays::Steps16(d) => d.get(syn).copied(),
        }
    }

    /// The largest delay, if any.
    pub fn max(&self) -> Option<u16> {
        match self {
            SynapseDelays::Steps8(d) => d.iter().max().map(|&x| u16::from(x)),
            SynapseDelays::Steps16(d) => d.iter().max().copied(),
        }
    }
}

fn from_rows(n_pre: u32, n_post: u32, rows: Vec<Vec<u32>>) -> Connectivity {
    let total: usize = rows.iter().map(Vec::len).sum();
    let mut row_start = Vec::with_capacity(n_pre as usize + 1);
    let mut target = Vec::with_capacity(total);
    row_start.push(0u64);
    for row in rows {
        target.extend_from_slice(&row);
        row_start.push(target.len() as u64);
    }
    Connectivity {
        n_pre,
        n_post,
        row_start,
        target,
        delay: None,
        homogeneous_delay: 0,
        post_index: OnceLock::new(),
    }
}

/// Chooses `k` distinct values of `0..n` in ascending order using only `draws`.
/// Sparse choices use Floyd's algorithm (O(k) draws); dense ones selection sampling
/// (Knuth's Algorithm S, O(n) draws) which yields sorted output directly.
fn choose_distinct(draws: &mut Draws, n: u32, k: u32) -> Vec<u32> {
    if u64::from(k) * 4 >= u64::from(n) {
        let mut chosen = Vec::with_capacity(k as usize);
        let mut needed = u64::from(k);
        for t in 0..n {
            if needed == 0 {
                break;
            }
            let remaining = u64::from(n - t);
            if draws.below(remaining) < needed {
                chosen.push(t);
                needed -= 1;
            }
        }
        chosen
    } else {
        let mut set: HashSet<u32> = HashSet::with_capacity(k as usize);
        for j in (n - k)..n {
            let t = draws.below(u64::from(j) + 1) as u32;
            if !set.insert(t) {
                set.insert(j);
            }
        }
        let mut chosen: Vec<u32> = set.into_iter().collect();
        chosen.sort_unstable();
        chosen
    }
}

/// Maps a choice from `0..n-1` to `0..n` skipping `excluded`, keeping order.
fn skip_index(values: &mut [u32], excluded: u32) {
    for v in values.iter_mut() {
        if *v >= excluded {
            *v += 1;
        }
    }
}

impl Connectivity {
    /// Every pre connects to every post (minus forbidden autapses).
    pub fn all_to_all(spec: &ProjectionSpec) -> Result<Self, RuntimeError> {
        spec.check_same_population_sizes()?;
        Self::predicate(spec, |_, _| true)
    }

    /// Pre `i` connects to post `i`; sizes must match. With autapses forbidden on the same
    /// population this would be empty, which is reported as an error because it is surely
    /// not what the model meant.
    pub fn one_to_one(spec: &ProjectionSpec) -> Result<Self, RuntimeError> {
        if spec.n_pre != spec.n_post {
            return Err(spec.error(format!(
                "one_to_one needs equal sizes, found n_pre = {} and n_post = {}",
                spec.n_pre, spec.n_post
            )));
        }
        if spec.no_autapses() {
            return Err(spec.error(
                "one_to_one on the same population without autapses would create no synapses",
            ));
        }
        let rows = (0..spec.n_pre).map(|i| vec![i]).collect();
        Ok(from_rows(spec.n_pre, spec.n_post, rows))
    }

    /// Each pair independently with probability `p`. Each row skips ahead by geometric gaps,
    /// so the cost is O(n_pre + synapses), not O(n_pre * n_post).
    pub fn bernoulli(spec: &ProjectionSpec, p: f64) -> Result<Self, RuntimeError> {
        spec.check_same_population_sizes()?;
        if !(0.0..=1.0).contains(&p) {
            return Err(spec.error(format!("bernoulli: p = {p} is outside [0, 1]")));
        }
        if p == 1.0 {
            return Self::all_to_all(spec);
        }
        let stream = Stream::new(spec.seed, spec.projection);
        let n_post = u64::from(spec.n_post);
        let log_q = (-p).ln_1p();
        let rows = (0..spec.n_pre)
            .map(|i| {
                let mut row = Vec::new();
                if p == 0.0 {
                    return row;
                }
                let mut draws = stream.draws(i, STEP_TARGETS);
                // `j` is one past the last visited candidate.
                let mut j: u64 = 0;
                loop {
                    // Number of failures before the next success: floor(ln(U) / ln(1 - p)).
                    let gap = ((1.0 - draws.uniform()).ln() / log_q).floor();
                    if gap.is_nan() || gap >= (n_post - j) as f64 {
                        break;
                    }
                    j += gap as u64;
                    let post = j as u32;
                    if !spec.forbids(i, post) {
                        row.push(post);
                    }
                    j += 1;
                    if j >= n_post {
                        break;
                    }
                }
                row
            })
            .collect();
        Ok(from_rows(spec.n_pre, spec.n_post, rows))
    }

    /// Every post receives exactly `k` synapses from distinct pre neurons (no multapses).
    /// Draws are per postsynaptic column.
    pub fn fixed_indegree(spec: &ProjectionSpec, k: u32) -> Result<Self, RuntimeError> {
        spec.check_same_population_sizes()?;
        let candidates = if spec.no_autapses() {
            spec.n_pre.saturating_sub(1)
        } else {
            spec.n_pre
        };
        if k > candidates {
            return Err(spec.error(format!(
                "fixed_indegree: k = {k} exceeds the {candidates} available presynaptic neurons{}",
                if spec.no_autapses() {
                    " (autapses excluded)"
                } else {
                    ""
                }
            )));
        }
        let stream = Stream::new(spec.seed, spec.projection);
        let mut rows: Vec<Vec<u32>> = vec![Vec::new(); spec.n_pre as usize];
        // Columns are visited in ascending order, so each row receives ascending targets.
        for j in 0..spec.n_post {
            let mut draws = stream.draws(j, STEP_TARGETS);
            let mut sources = choose_distinct(&mut draws, candidates, k);
            if spec.no_autapses() {
                skip_index(&mut sources, j);
            }
            for s in sources {
                rows[s as usize].push(j);
            }
        }
        Ok(from_rows(spec.n_pre, spec.n_post, rows))
    }

    /// Every post receives exactly `k` synapses from presynaptic neurons drawn with
    /// replacement, so a pair may be connected more than once (NEST's `fixed_indegree` with
    /// `allow_multapses`). Deterministic from (seed, projection) like the other builders.
    pub fn fixed_indegree_with_multapses(
        spec: &ProjectionSpec,
        k: u32,
    ) -> Result<Self, RuntimeError> {
        spec.check_same_population_sizes()?;
        let candidates = if spec.no_autapses() {
            spec.n_pre.saturating_sub(1)
        } else {
            spec.n_pre
        };
        if candidates == 0 && k > 0 {
            return Err(spec.error(format!(
                "fixed_indegree: k = {k} but there is no presynaptic neuron to draw from"
            )));
        }
        let stream = Stream::new(spec.seed, spec.projection);
        let mut rows: Vec<Vec<u32>> = vec![Vec::new(); spec.n_pre as usize];
        for j in 0..spec.n_post {
            let mut draws = stream.draws(j, STEP_TARGETS);
            let mut sources: Vec<u32> = (0..k)
                .map(|_| draws.below(u64::from(candidates)) as u32)
                .collect();
            sources.sort_unstable();
            if spec.no_autapses() {
                skip_index(&mut sources, j);
            }
            for s in sources {
                rows[s as usize].push(j);
            }
        }
        Ok(from_rows(spec.n_pre, spec.n_post, rows))
    }

    /// Every pre sends exactly `k` synapses to distinct post neurons (no multapses).
    pub fn fixed_outdegree(spec: &ProjectionSpec, k: u32) -> Result<Self, RuntimeError> {
        spec.check_same_population_sizes()?;
        let candidates = if spec.no_autapses() {
            spec.n_post.saturating_sub(1)
        } else {
            spec.n_post
        };
        if k > candidates {
            return Err(spec.error(format!(
                "fixed_outdegree: k = {k} exceeds the {candidates} available postsynaptic neurons{}",
                if spec.no_autapses() {
                    " (autapses excluded)"
                } else {
                    ""
                }
            )));
        }
        let stream = Stream::new(spec.seed, spec.projection);
        let rows = (0..spec.n_pre)
            .map(|i| {
                let mut draws = stream.draws(i, STEP_TARGETS);
                let mut targets = choose_distinct(&mut draws, candidates, k);
                if spec.no_autapses() {
                    skip_index(&mut targets, i);
                }
                targets
            })
            .collect();
        Ok(from_rows(spec.n_pre, spec.n_post, rows))
    }

    /// Exactly `total` synapses, each pre/post pair drawn uniformly with replacement (so
    /// multapses are possible, as in NEST's `fixed_total_number` default). The row counts come
    /// from a multinomial split done as a chain of binomials on one dedicated cursor, which is
    /// cheap (O(n_pre)) and deterministic; the targets of each row then come from that row's
    /// own draws.
    pub fn fixed_total(spec: &ProjectionSpec, total: u64) -> Result<Self, RuntimeError> {
        spec.check_same_population_sizes()?;
        let candidates = if spec.no_autapses() {
            spec.n_post.saturating_sub(1)
        } else {
            spec.n_post
        };
        if total > 0 && (spec.n_pre == 0 || candidates == 0) {
            return Err(spec.error(format!(
                "fixed_total: {total} synapses requested but there are no admissible pairs"
            )));
        }
        let stream = Stream::new(spec.seed, spec.projection);
        let mut split = stream.draws(0, STEP_TOTAL_SPLIT);
        let mut remaining = total;
        let mut rows = Vec::with_capacity(spec.n_pre as usize);
        for i in 0..spec.n_pre {
            let rows_left = u64::from(spec.n_pre - i);
            let count = if rows_left == 1 {
                remaining
            } else {
                split.binomial(remaining, 1.0 / rows_left as f64)
            };
            remaining -= count;
            let mut draws = stream.draws(i, STEP_TARGETS);
            let mut row: Vec<u32> = (0..count)
                .map(|_| draws.below(u64::from(candidates)) as u32)
                .collect();
            if spec.no_autapses() {
                skip_index(&mut row, i);
            }
            row.sort_unstable();
            rows.push(row);
        }
        Ok(from_rows(spec.n_pre, spec.n_post, rows))
    }

    /// Every pair for which `keep(pre, post)` holds (minus forbidden autapses). O(n_pre*n_post).
    pub fn predicate(
        spec: &ProjectionSpec,
        mut keep: impl FnMut(u32, u32) -> bool,
    ) -> Result<Self, RuntimeError> {
        spec.check_same_population_sizes()?;
        let rows = (0..spec.n_pre)
            .map(|i| {
                (0..spec.n_post)
                    .filter(|&j| !spec.forbids(i, j) && keep(i, j))
                    .collect()
            })
            .collect();
        Ok(from_rows(spec.n_pre, spec.n_post, rows))
    }

    /// Synapses from an explicit list of (pre, post) pairs read from `source` (a file name or
    /// other description used in errors). Duplicates are kept as multapses.
    pub fn from_pairs(
        spec: &ProjectionSpec,
        pairs: &[(u32, u32)],
        source: &str,
    ) -> Result<Self, RuntimeError> {
        spec.check_same_population_sizes()?;
        let mut rows: Vec<Vec<u32>> = vec![Vec::new(); spec.n_pre as usize];
        for (n, &(pre, post)) in pairs.iter().enumerate() {
            if pre >= spec.n_pre {
                return Err(RuntimeError::format(
                    source,
                    format!(
                        "pair {n} ({pre}, {post}): pre index {pre} is outside 0..{} of {}",
                        spec.n_pre, spec.name
                    ),
                ));
            }
            if post >= spec.n_post {
                return Err(RuntimeError::format(
                    source,
                    format!(
                        "pair {n} ({pre}, {post}): post index {post} is outside 0..{} of {}",
                        spec.n_post, spec.name
                    ),
                ));
            }
            if spec.forbids(pre, post) {
                return Err(RuntimeError::format(
                    source,
                    format!(
                        "pair {n} ({pre}, {post}) is an autapse but {} excludes autapses",
                        spec.name
                    ),
                ));
            }
            rows[pre as usize].push(post);
        }
        for row in &mut rows {
            row.sort_unstable();
        }
        Ok(from_rows(spec.n_pre, spec.n_post, rows))
    }

    pub fn n_pre(&self) -> u32 {
        self.n_pre
    }

    pub fn n_post(&self) -> u32 {
        self.n_post
    }

    pub fn n_synapses(&self) -> u64 {
        self.target.len() as u64
    }

    pub fn row_start(&self) -> &[u64] {
        &self.row_start
    }

    pub fn targets(&self) -> &[u32] {
        &self.target
    }

    /// The synapse index range of presynaptic neuron `pre` (empty when out of range).
    pub fn row_range(&self, pre: u32) -> Range<usize> {
        let i = pre as usize;
        if i >= self.n_pre as usize {
            return 0..0;
        }
        self.row_start[i] as usize..self.row_start[i + 1] as usize
    }

    /// The sorted targets of presynaptic neuron `pre` (empty when out of range).
    pub fn row(&self, pre: u32) -> &[u32] {
        &self.target[self.row_range(pre)]
    }

    /// Per-synapse delays in steps, present only when they are heterogeneous.
    pub fn delays(&self) -> Option<&SynapseDelays> {
        self.delay.as_ref()
    }

    /// The delays of synapses `synapses` (a range of CSR indices), for delivery.
    pub fn row_delays(&self, synapses: Range<usize>) -> RowDelays<'_> {
        match &self.delay {
            None => RowDelays::Homogeneous(self.homogeneous_delay),
            Some(SynapseDelays::Steps8(d)) => RowDelays::PerSynapse8(&d[synapses]),
            Some(SynapseDelays::Steps16(d)) => RowDelays::PerSynapse16(&d[synapses]),
        }
    }

    /// The delay of synapse `syn` in steps.
    pub fn delay_of(&self, syn: usize) -> u16 {
        match &self.delay {
            Some(d) => d.get(syn).unwrap_or(self.homogeneous_delay),
            None => self.homogeneous_delay,
        }
    }

    /// The largest delay in steps, which sizes the ring buffers.
    pub fn max_delay(&self) -> u16 {
        match &self.delay {
            Some(d) => d.max().unwrap_or(self.homogeneous_delay),
            None => self.homogeneous_delay,
        }
    }

    /// Gives every synapse the same delay and drops any per-synapse array.
    pub fn set_homogeneous_delay(&mut self, steps: u16) {
        self.homogeneous_delay = steps;
        self.delay = None;
    }

    /// Sets delays from `f(pre, post, synapse_index)`. When all come out equal the result is
    /// stored as a homogeneous delay, which costs nothing per synapse; otherwise one byte per
    /// synapse when every delay is below 256 steps, two bytes when not.
    pub fn set_delays(&mut self, mut f: impl FnMut(u32, u32, u64) -> u16) {
        let mut delays = Vec::with_capacity(self.target.len());
        for pre in 0..self.n_pre {
            for syn in self.row_range(pre) {
                delays.push(f(pre, self.target[syn], syn as u64));
            }
        }
        match delays.first() {
            Some(&first) if delays.iter().any(|&d| d != first) => {
                self.delay = Some(SynapseDelays::narrowest(delays))
            }
            Some(&first) => self.set_homogeneous_delay(first),
            None => self.delay = None,
        }
    }

    /// A weight vector in synapse order from `f(pre, post, synapse_index)`.
    pub fn fill_weights_f64(&self, mut f: impl FnMut(u32, u32, u64) -> f64) -> Vec<f64> {
        let mut w = Vec::with_capacity(self.target.len());
        for pre in 0..self.n_pre {
            for syn in self.row_range(pre) {
                w.push(f(pre, self.target[syn], syn as u64));
            }
        }
        w
    }

    /// As [`Self::fill_weights_f64`], rounded to f32 storage.
    pub fn fill_weights_f32(&self, mut f: impl FnMut(u32, u32, u64) -> f64) -> Vec<f32> {
        let mut w = Vec::with_capacity(self.target.len());
        for pre in 0..self.n_pre {
            for syn in self.row_range(pre) {
                w.push(f(pre, self.target[syn], syn as u64) as f32);
            }
        }
        w
    }

    /// The post→synapse index, built on first use and kept.
    pub fn post_index(&self) -> &PostIndex {
        self.post_index.get_or_init(|| {
            let n_post = self.n_post as usize;
            let mut col_start = vec![0u64; n_post + 1];
            for &t in &self.target {
                col_start[t as usize + 1] += 1;
            }
            for j in 0..n_post {
                col_start[j + 1] += col_start[j];
            }
            let mut fill: Vec<u64> = col_start[..n_post].to_vec();
            let mut synapse = vec![0u64; self.target.len()];
            let mut source = vec![0u32; self.target.len()];
            // Rows are visited in order, so entries of each column are ascending in synapse
            // index and in source.
            for pre in 0..self.n_pre {
                for syn in self.row_range(pre) {
                    let t = self.target[syn] as usize;
                    let slot = fill[t] as usize;
                    synapse[slot] = syn as u64;
                    source[slot] = pre;
                    fill[t] += 1;
                }
            }
            PostIndex {
                col_start,
                synapse,
                source,
            }
        })
    }

    /// Bytes each synapse costs in this structure: a u32 target plus a u8 or u16 delay when
    /// delays are heterogeneous. Weights are stored by the caller and are not included.
    pub fn bytes_per_synapse(&self) -> usize {
        4 + match &self.delay {
            None => 0,
            Some(SynapseDelays::Steps8(_)) => 1,
            Some(SynapseDelays::Steps16(_)) => 2,
        }
    }

    /// Total bytes held, including row offsets and the post index when it has been built.
    pub fn total_bytes(&self) -> u64 {
        let mut bytes = self.row_start.len() as u64 * 8
            + self.target.len() as u64 * self.bytes_per_synapse() as u64;
        if let Some(index) = self.post_index.get() {
            bytes += index.col_start.len() as u64 * 8 + index.synapse.len() as u64 * 12;
        }
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(n_pre: u32, n_post: u32, same: bool, autapses: bool) -> ProjectionSpec {
        ProjectionSpec {
            name: "projection 'test'".into(),
            n_pre,
            n_post,
            seed: 1234,
            projection: 7,
            same_population: same,
            autapses,
        }
    }

    /// Checks the CSR invariants every builder must keep.
    fn check_csr(c: &Connectivity) {
        assert_eq!(c.row_start().len(), c.n_pre() as usize + 1);
        assert_eq!(c.row_start()[0], 0);
        assert_eq!(*c.row_start().last().unwrap(), c.n_synapses());
        for i in 0..c.n_pre() {
            let row = c.row(i);
            assert!(row.windows(2).all(|w| w[0] <= w[1]), "row {i} unsorted");
            assert!(row.iter().all(|&t| t < c.n_post()));
        }
    }

    fn has_autapse(c: &Connectivity) -> bool {
        (0..c.n_pre()).any(|i| c.row(i).contains(&i))
    }

    #[test]
    fn all_to_all_and_one_to_one() {
        let c = Connectivity::all_to_all(&spec(5, 5, true, false)).unwrap();
        check_csr(&c);
        assert_eq!(c.n_synapses(), 20);
        assert!(!has_autapse(&c));
        let c = Connectivity::all_to_all(&spec(5, 5, true, true)).unwrap();
        assert_eq!(c.n_synapses(), 25);
        let c = Connectivity::all_to_all(&spec(3, 4, false, false)).unwrap();
        assert_eq!(c.n_synapses(), 12);
        let c = Connectivity::one_to_one(&spec(4, 4, false, false)).unwrap();
        check_csr(&c);
        assert_eq!(c.targets(), &[0, 1, 2, 3]);
        let e = Connectivity::one_to_one(&spec(4, 5, false, false)).unwrap_err();
        assert!(e.to_string().contains("n_pre = 4 and n_post = 5"), "{e}");
        assert!(Connectivity::one_to_one(&spec(4, 4, true, false)).is_err());
        assert!(Connectivity::all_to_all(&spec(4, 5, true, true)).is_err());
    }

    #[test]
    fn bernoulli_mean_degree_and_rules() {
        let (n, p) = (2000u32, 0.02);
        let c = Connectivity::bernoulli(&spec(n, n, true, false), p).unwrap();
        check_csr(&c);
        assert!(!has_autapse(&c));
        // No multapses: strictly increasing targets.
        for i in 0..n {
            assert!(c.row(i).windows(2).all(|w| w[0] < w[1]));
        }
        // Each of n * (n - 1) candidate pairs is included independently with probability p.
        let pairs = f64::from(n) * f64::from(n - 1);
        let mean = pairs * p;
        let se = (pairs * p * (1.0 - p)).sqrt();
        let got = c.n_synapses() as f64;
        assert!((got - mean).abs() <= 5.0 * se, "{got} vs {mean} ± {se}");

        assert_eq!(
            Connectivity::bernoulli(&spec(10, 20, false, false), 0.0)
                .unwrap()
                .n_synapses(),
            0
        );
        assert_eq!(
            Connectivity::bernoulli(&spec(10, 20, false, false), 1.0)
                .unwrap()
                .n_synapses(),
            200
        );
        let e = Connectivity::bernoulli(&spec(10, 20, false, false), 1.5).unwrap_err();
        assert!(e.to_string().contains("p = 1.5 is outside [0, 1]"), "{e}");
        assert!(Connectivity::bernoulli(&spec(10, 20, false, false), f64::NAN).is_err());
    }

    #[test]
    fn bernoulli_per_target_frequency_is_uniform() {
        // Geometric skipping must not favour the start or the end of a row.
        let c = Connectivity::bernoulli(&spec(20_000, 10, false, false), 0.3).unwrap();
        let mut counts = [0u64; 10];
        for &t in c.targets() {
            counts[t as usize] += 1;
        }
        let mean = 20_000.0 * 0.3;
        let se = (20_000.0f64 * 0.3 * 0.7).sqrt();
        for (j, &n) in counts.iter().enumerate() {
            assert!((n as f64 - mean).abs() <= 5.0 * se, "target {j}: {n}");
        }
    }

    #[test]
    fn builders_are_deterministic_and_seed_dependent() {
        let s = spec(300, 300, true, false);
        let a = Connectivity::bernoulli(&s, 0.1).unwrap();
        let b = Connectivity::bernoulli(&s, 0.1).unwrap();
        assert_eq!(a.targets(), b.targets());
        assert_eq!(a.row_start(), b.row_start());
        let mut other = s.clone();
        other.seed += 1;
        let c = Connectivity::bernoulli(&other, 0.1).unwrap();
        assert_ne!(a.targets(), c.targets());
        let mut other = s.clone();
        other.projection += 1;
        let d = Connectivity::fixed_indegree(&other, 10).unwrap();
        let e = Connectivity::fixed_indegree(&s, 10).unwrap();
        assert_ne!(d.targets(), e.targets());
        assert_eq!(
            e.targets(),
            Connectivity::fixed_indegree(&s, 10).unwrap().targets()
        );
    }

    #[test]
    fn rows_do_not_depend_on_population_size_beyond_them() {
        // A row's draws depend only on its own index: the first rows of a bigger
        // pre-population are identical, which is what makes splitting work safe.
        let small = Connectivity::fixed_outdegree(&spec(50, 400, false, false), 20).unwrap();
        let large = Connectivity::fixed_outdegree(&spec(80, 400, false, false), 20).unwrap();
        for i in 0..50 {
            assert_eq!(small.row(i), large.row(i));
        }
    }

    #[test]
    fn fixed_indegree_exact_no_multapses_no_autapses() {
        for k in [3u32, 90] {
            // k = 3 exercises Floyd's algorithm, k = 90 selection sampling.
            let c = Connectivity::fixed_indegree(&spec(100, 100, true, false), k).unwrap();
            check_csr(&c);
            assert!(!has_autapse(&c));
            let index = c.post_index();
            for j in 0..100usize {
                let sources =
                    &index.source[index.col_start[j] as usize..index.col_start[j + 1] as usize];
                assert_eq!(sources.len(), k as usize);
                assert!(sources.windows(2).all(|w| w[0] < w[1]), "multapse in {j}");
            }
        }
        let c = Connectivity::fixed_indegree(&spec(100, 100, true, false), 99).unwrap();
        assert_eq!(c.n_synapses(), 9900);
        let e = Connectivity::fixed_indegree(&spec(100, 100, true, false), 100).unwrap_err();
        assert!(e.to_string().contains("autapses excluded"), "{e}");
        assert!(Connectivity::fixed_indegree(&spec(100, 100, true, true), 100).is_ok());
        assert!(Connectivity::fixed_indegree(&spec(10, 100, false, false), 11).is_err());
    }

    #[test]
    fn fixed_indegree_with_multapses_repeats_pairs_at_the_expected_rate() {
        // k = 50 draws with replacement from 100 sources: the expected number of distinct
        // sources per target is 100 * (1 - 0.99^50) = 39.5, so repeats must occur; without
        // autapses no source equals its target, and every target still receives exactly k.
        let c =
            Connectivity::fixed_indegree_with_multapses(&spec(100, 100, true, false), 50).unwrap();
        check_csr(&c);
        assert!(!has_autapse(&c));
        let index = c.post_index();
        let mut distinct = 0usize;
        for j in 0..100usize {
            let sources =
                &index.source[index.col_start[j] as usize..index.col_start[j + 1] as usize];
            assert_eq!(sources.len(), 50);
            let mut unique = sources.to_vec();
            unique.dedup();
            distinct += unique.len();
        }
        let mean = distinct as f64 / 100.0;
        // The count of distinct sources has sd ~ 2.3 per target, so ~0.23 for the mean.
        assert!((mean - 39.5).abs() < 1.5, "mean distinct sources {mean}");
        assert!(Connectivity::fixed_indegree_with_multapses(&spec(1, 1, true, false), 1).is_err());
    }

    #[test]
    fn fixed_indegree_sources_are_uniform() {
        // Each pre should be chosen by about n_post * k / n_pre columns.
        let c = Connectivity::fixed_indegree(&spec(20, 20_000, false, false), 5).unwrap();
        let p = 5.0 / 20.0;
        let mean = 20_000.0 * p;
        let se = (20_000.0f64 * p * (1.0 - p)).sqrt();
        for i in 0..20 {
            let n = c.row(i).len() as f64;
            assert!((n - mean).abs() <= 5.0 * se, "pre {i}: {n}");
        }
    }

    #[test]
    fn fixed_outdegree_exact() {
        let c = Connectivity::fixed_outdegree(&spec(60, 60, true, false), 7).unwrap();
        check_csr(&c);
        assert!(!has_autapse(&c));
        for i in 0..60 {
            assert_eq!(c.row(i).len(), 7);
            assert!(c.row(i).windows(2).all(|w| w[0] < w[1]));
        }
        assert!(Connectivity::fixed_outdegree(&spec(60, 60, true, false), 60).is_err());
    }

    #[test]
    fn fixed_total_exact_count() {
        let c = Connectivity::fixed_total(&spec(50, 50, true, false), 1234).unwrap();
        check_csr(&c);
        assert_eq!(c.n_synapses(), 1234);
        assert!(!has_autapse(&c));
        // Row counts are Binomial(1234, 1/50); no row should be wildly off.
        let mean = 1234.0 / 50.0;
        let sd = (1234.0f64 * (1.0 / 50.0) * (49.0 / 50.0)).sqrt();
        for i in 0..50 {
            assert!((c.row(i).len() as f64 - mean).abs() < 6.0 * sd);
        }
        assert!(Connectivity::fixed_total(&spec(0, 5, false, false), 3).is_err());
        assert_eq!(
            Connectivity::fixed_total(&spec(0, 5, false, false), 0)
                .unwrap()
                .n_synapses(),
            0
        );
    }

    #[test]
    fn predicate_and_from_pairs() {
        let c =
            Connectivity::predicate(&spec(10, 10, false, false), |i, j| j == (i + 1) % 10).unwrap();
        check_csr(&c);
        assert_eq!(c.n_synapses(), 10);
        assert_eq!(c.row(9), &[0]);

        let c = Connectivity::from_pairs(
            &spec(3, 4, false, false),
            &[(2, 3), (0, 1), (2, 0), (0, 1)],
            "pairs.csv",
        )
        .unwrap();
        check_csr(&c);
        assert_eq!(c.row(0), &[1, 1]);
        assert_eq!(c.row(2), &[0, 3]);
        let e = Connectivity::from_pairs(&spec(3, 4, false, false), &[(0, 4)], "pairs.csv")
            .unwrap_err();
        assert!(e.to_string().starts_with("pairs.csv: pair 0 (0, 4)"), "{e}");
        let e =
            Connectivity::from_pairs(&spec(3, 3, true, false), &[(1, 1)], "pairs.csv").unwrap_err();
        assert!(e.to_string().contains("autapse"), "{e}");
    }

    #[test]
    fn post_index_inverts_the_csr() {
        let c = Connectivity::bernoulli(&spec(40, 30, false, false), 0.2).unwrap();
        let index = c.post_index();
        assert_eq!(index.synapse.len() as u64, c.n_synapses());
        for j in 0..30usize {
            for k in index.col_start[j] as usize..index.col_start[j + 1] as usize {
                let syn = index.synapse[k] as usize;
                assert_eq!(c.targets()[syn], j as u32);
                assert!(c.row_range(index.source[k]).contains(&syn));
            }
        }
    }

    #[test]
    fn delays_weights_and_bytes() {
        let mut c = Connectivity::all_to_all(&spec(3, 3, false, false)).unwrap();
        assert_eq!(c.bytes_per_synapse(), 4);
        c.set_delays(|_, _, _| 5);
        assert!(c.delays().is_none());
        assert_eq!(c.max_delay(), 5);
        // Heterogeneous delays below 256 steps take one byte per synapse...
        c.set_delays(|pre, post, _| (pre + post) as u16 + 1);
        assert!(matches!(c.delays(), Some(SynapseDelays::Steps8(d)) if d.len() == 9));
        assert_eq!(c.max_delay(), 5);
        assert_eq!(c.delay_of(4), 3);
        assert_eq!(c.bytes_per_synapse(), 5);
        // ... and two bytes as soon as one is 256 or more.
        c.set_delays(|pre, post, _| if pre == 2 && post == 2 { 256 } else { 3 });
        assert!(matches!(c.delays(), Some(SynapseDelays::Steps16(d)) if d.len() == 9));
        assert_eq!(c.max_delay(), 256);
        assert_eq!(c.delay_of(8), 256);
        assert_eq!(c.delay_of(0), 3);
        assert_eq!(c.bytes_per_synapse(), 6);
        c.set_delays(|pre, post, _| (pre + post) as u16 + 1);
        let w = c.fill_weights_f32(|pre, post, syn| f64::from(pre * 10 + post) + syn as f64);
        assert_eq!(w[5], 12.0 + 5.0);
        let w = c.fill_weights_f64(|pre, _, _| f64::from(pre));
        assert_eq!(w, vec![0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0]);
        let before = c.total_bytes();
        c.post_index();
        assert!(c.total_bytes() > before);
    }
}
