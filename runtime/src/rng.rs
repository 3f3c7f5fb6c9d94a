//! Counter-based random numbers: Philox4x32-10 and the distributions built on it.
//!
//! This module owns every random draw the runtime makes. A draw is a pure function of
//! `(seed, stream, entity, step, draw index)`, never of a sequential global generator, so the
//! result of a simulation does not depend on how work is split across threads or on the order
//! in which entities are visited (architecture invariant 7). It must not keep any global or
//! thread-local state, and it does no IO.
//!
//! # Layout of keys and counters
//!
//! Philox4x32-10 (Salmon, Moraes, Dror & Shaw, SC'11; the Random123 library) maps a 128-bit
//! counter and a 64-bit key to 128 random bits. We use it as follows:
//!
//! * **Stream key.** A [`Stream`] for `(seed, stream)` has the key
//!   `philox(counter = [stream, 0, 0, 0x5354_524d], key = [seed_lo, seed_hi])[0..2]`.
//!   Deriving the key this way lets the full 32-bit stream id, the full 64-bit seed, the full
//!   32-bit entity, the full 64-bit step and the 32-bit draw index all be honoured, which would
//!   need 224 input bits and Philox only has 192. Two different `(seed, stream)` pairs share a
//!   key with probability about 2^-64, which we accept.
//! * **Counter.** A draw uses the counter `[draw / 2, entity, step_lo, step_hi]` under the
//!   stream key. One Philox block yields 128 bits, that is two 64-bit halves; draw `2m` takes
//!   the first half of block `m` and draw `2m + 1` the second, so no bits are wasted and no two
//!   draw indices share bits.
//! * **Uniform.** The 64-bit half `x` becomes `(x >> 11) * 2^-53`, a double in `[0, 1)` with
//!   53-bit resolution.
//!
//! * **Batched draws.** [`Stream::fill_first_variates`] computes the first variate of one draw
//!   index for many consecutive entities at once (compiled kernels draw a site for a whole
//!   range before their loop). It gives exactly the values of one [`Draws`] cursor per entity:
//!   it evaluates the same Philox blocks, eight entities at a time (with AVX2 intrinsics where
//!   the CPU has them, detected at run time), and the same distributions; its Poisson
//!   inversion searches a table summed exactly as the sequential search sums it. The unit
//!   tests compare the two bit for bit, including the AVX2 lanes against the portable ones.
//!
//! Conventions for users of the streams: simulation steps count up from 0; construction-time
//! draws (connectivity, initial values) use step tags at or above [`CONSTRUCTION_STEP_BASE`]
//! (2^63), which a simulation never reaches, so they cannot collide with run-time draws of the
//! same stream.

/// Step tags at or above this value are reserved for construction-time draws.
pub const CONSTRUCTION_STEP_BASE: u64 = 1 << 63;

const PHILOX_M0: u32 = 0xD251_1F53;
const PHILOX_M1: u32 = 0xCD9E_8D57;
const PHILOX_W0: u32 = 0x9E37_79B9;
const PHILOX_W1: u32 = 0xBB67_AE85;
/// The fourth counter word used when deriving a stream key ("STRM" in ASCII).
const STREAM_KEY_TAG: u32 = 0x5354_524d;

/// One Philox4x32 round: two 32x32→64 multiplications and a Feistel-like mix.
#[inline(always)]
fn philox_round(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let p0 = u64::from(PHILOX_M0) * u64::from(ctr[0]);
    let p1 = u64::from(PHILOX_M1) * u64::from(ctr[2]);
    let (hi0, lo0) = ((p0 >> 32) as u32, p0 as u32);
    let (hi1, lo1) = ((p1 >> 32) as u32, p1 as u32);
    [hi1 ^ ctr[1] ^ key[0], lo1, hi0 ^ ctr[3] ^ key[1], lo0]
}

/// Philox4x32 with 10 rounds, exactly as Random123's `philox4x32(ctr, key)`.
#[inline]
pub fn philox4x32_10(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = ctr;
    let mut k = key;
    for round in 0..10 {
        // The key is bumped between rounds, not before the first one.
        if round > 0 {
            k[0] = k[0].wrapping_add(PHILOX_W0);
            k[1] = k[1].wrapping_add(PHILOX_W1);
        }
        c = philox_round(c, k);
    }
    c
}

/// How many consecutive entities [`Stream::fill_first_variates`] runs through Philox at once.
const BATCH_LANES: usize = 8;

/// The Philox4x32-10 blocks of [`BATCH_LANES`] consecutive entities at once: lane `l` is
/// `philox4x32_10([block, first + l, step_lo, step_hi], key)` (the entity wrapping around at
/// 2^32), its word `w` in `out[w][l]`, held in the low half of a `u64`.
///
/// The portable version, written over arrays (structure of arrays) so the compiler can
/// vectorise it; [`philox4x32_10_lanes_avx2`] is the one x86-64 CPUs with AVX2 run.
#[inline(always)]
// Indexing lane by lane is the point: the loops over `l` are what the compiler vectorises.
#[allow(clippy::needless_range_loop)]
fn philox4x32_10_lanes(
    block: u32,
    first: u32,
    step: u64,
    key: [u32; 2],
) -> [[u64; BATCH_LANES]; 4] {
    const LOW: u64 = 0xffff_ffff;
    let mut c = [[0u64; BATCH_LANES]; 4];
    for l in 0..BATCH_LANES {
        c[0][l] = u64::from(block);
        c[1][l] = u64::from(first.wrapping_add(l as u32));
        c[2][l] = step & LOW;
        c[3][l] = step >> 32;
    }
    let mut k = [u64::from(key[0]), u64::from(key[1])];
    for round in 0..10 {
        if round > 0 {
            k[0] = (k[0] + u64::from(PHILOX_W0)) & LOW;
            k[1] = (k[1] + u64::from(PHILOX_W1)) & LOW;
        }
        for l in 0..BATCH_LANES {
            let p0 = u64::from(PHILOX_M0) * (c[0][l] & LOW);
            let p1 = u64::from(PHILOX_M1) * (c[2][l] & LOW);
            let (c1, c3) = (c[1][l], c[3][l]);
            c[0][l] = (p1 >> 32) ^ c1 ^ k[0];
            c[1][l] = p1 & LOW;
            c[2][l] = (p0 >> 32) ^ c3 ^ k[1];
            c[3][l] = p0 & LOW;
        }
    }
    c
}

/// The Philox blocks of four consecutive entities, as [`philox4x32_10_lanes_avx2`] computes
/// them, left in registers: word `w` of lane `l` in the low half of 64-bit lane `l` of result
/// `w`, the high halves meaningless (see there).
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn philox4x32_10_x4_avx2(
    block: u32,
    first: u32,
    step: u64,
    key: [u32; 2],
) -> [std::arch::x86_64::__m256i; 4] {
    use std::arch::x86_64::*;
    let m0 = _mm256_set1_epi64x(i64::from(PHILOX_M0));
    let m1 = _mm256_set1_epi64x(i64::from(PHILOX_M1));
    let mut c0 = _mm256_set1_epi64x(i64::from(block));
    // The low halves are `first + l` modulo 2^32, which is all a lane's multiply reads.
    let mut c1 = _mm256_add_epi64(
        _mm256_set1_epi64x(i64::from(first)),
        _mm256_set_epi64x(3, 2, 1, 0),
    );
    let mut c2 = _mm256_set1_epi64x((step & 0xffff_ffff) as i64);
    let mut c3 = _mm256_set1_epi64x((step >> 32) as i64);
    let mut k = key;
    for round in 0..10 {
        if round > 0 {
            k[0] = k[0].wrapping_add(PHILOX_W0);
            k[1] = k[1].wrapping_add(PHILOX_W1);
        }
        let k0 = _mm256_set1_epi64x(i64::from(k[0]));
        let k1 = _mm256_set1_epi64x(i64::from(k[1]));
        let p0 = _mm256_mul_epu32(c0, m0);
        let p1 = _mm256_mul_epu32(c2, m1);
        c0 = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64::<32>(p1), c1), k0);
        c1 = p1;
        c2 = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64::<32>(p0), c3), k1);
        c3 = p0;
    }
    [c0, c1, c2, c3]
}

/// Uniform or Poisson-by-inversion first variates of `out.len()` consecutive entities, four at
/// a time entirely in AVX2 registers: `out.len()` must be a multiple of four. Bit for bit
/// [`Stream::fill_batched`]'s values:
///
/// * The uniform `(x >> 11) * 2^-53` of the 64 bits `x = lo | hi << 32` is computed from the
///   two exact doubles `hi` and `lo >> 11` (each made by the exponent trick: the bits of
///   `2^52 + n`, minus `2^52`, exact for `n < 2^52`) as `(hi * 2^21 + (lo >> 11)) * 2^-53`.
///   Every step is exact (an integer below 2^53, then a power of two), so the result is the
///   exact value, which is what the scalar conversion gives.
/// * The Poisson count is the number of the table's first [`InversionTable::FAST`] entries
///   below `u` (ordered `<`, as Rust's), accumulated from the compare masks; where a lane's
///   count reaches the end of the fast part or of the table, the four lanes take
///   [`InversionTable::search`] instead. Counts below 16 convert to doubles exactly by the
///   same exponent trick.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn fill_uniform_or_poisson_avx2(
    key: [u32; 2],
    block: u32,
    first_entity: u32,
    step: u64,
    table: Option<&InversionTable>,
    out: &mut [f64],
) {
    use std::arch::x86_64::*;
    debug_assert_eq!(out.len() % 4, 0);
    let low = _mm256_set1_epi64x(0xffff_ffff);
    let exponent = _mm256_set1_epi64x(0x4330_0000_0000_0000);
    let two52 = _mm256_set1_pd(4_503_599_627_370_496.0);
    let two21 = _mm256_set1_pd(2_097_152.0);
    let two_minus53 = _mm256_set1_pd(1.0 / (1u64 << 53) as f64);
    let exact =
        |n: __m256i| _mm256_sub_pd(_mm256_castsi256_pd(_mm256_or_si256(n, exponent)), two52);
    let limit = table.map_or(0, |t| t.last.min(InversionTable::FAST - 1) as i64);
    let limit = _mm256_set1_epi64x(limit);
    for (chunk_index, chunk) in out.chunks_exact_mut(4).enumerate() {
        let first = first_entity.wrapping_add(4 * chunk_index as u32);
        // SAFETY: this function runs only where the CPU has AVX2.
        let [c0, c1, _, _] = unsafe { philox4x32_10_x4_avx2(block, first, step, key) };
        let lo = _mm256_srli_epi64::<11>(_mm256_and_si256(c0, low));
        let hi = _mm256_and_si256(c1, low);
        let u = _mm256_mul_pd(
            _mm256_add_pd(_mm256_mul_pd(exact(hi), two21), exact(lo)),
            two_minus53,
        );
        let value = match table {
            None => u,
            Some(table) => {
                let mut below = _mm256_setzero_si256();
                for &c in &table.cdf[..InversionTable::FAST] {
                    let less = _mm256_cmp_pd::<_CMP_LT_OQ>(_mm256_set1_pd(c), u);
                    // A true compare is all ones, -1 as an integer.
                    below = _mm256_sub_epi64(below, _mm256_castpd_si256(less));
                }
                let beyond = _mm256_cmpgt_epi64(below, limit);
                if _mm256_movemask_pd(_mm256_castsi256_pd(beyond)) == 0 {
                    exact(below)
                } else {
                    let mut us = [0.0; 4];
                    // SAFETY: four doubles, unaligned store.
                    unsafe { _mm256_storeu_pd(us.as_mut_ptr(), u) };
                    let ks = us.map(|u| f64::from(table.search(u) as u32));
                    // SAFETY: four doubles, unaligned load.
                    unsafe { _mm256_loadu_pd(ks.as_ptr()) }
                }
            }
        };
        // SAFETY: the chunk holds four doubles; the store is unaligned.
        unsafe { _mm256_storeu_pd(chunk.as_mut_ptr(), value) };
    }
}

/// [`philox4x32_10_lanes`] written with AVX2 intrinsics: each word of four lanes is one
/// 256-bit register and each multiply one `vpmuludq` (which reads the low 32 bits of every
/// 64-bit lane). Only the low halves of the lanes are kept meaningful between rounds: a
/// product depends only on the low halves of its inputs, and `xor` and the shift of a
/// product never move high bits down, so the high halves are cleared once, at the end. The
/// counters are built in registers (building them in memory and loading them as vectors
/// stalls store forwarding). The compiler's own vectorisation of the portable loop emulates
/// full 64-bit multiplies and is about half as fast.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn philox4x32_10_lanes_avx2(
    block: u32,
    first: u32,
    step: u64,
    key: [u32; 2],
) -> [[u64; BATCH_LANES]; 4] {
    use std::arch::x86_64::*;
    let low = _mm256_set1_epi64x(0xffff_ffff);
    let mut out = [[0u64; BATCH_LANES]; 4];
    for h in 0..BATCH_LANES / 4 {
        let first = first.wrapping_add(4 * h as u32);
        // SAFETY: this function runs only where the CPU has AVX2.
        let words = unsafe { philox4x32_10_x4_avx2(block, first, step, key) };
        for (word, value) in out.iter_mut().zip(words) {
            // SAFETY: lanes `4h..4h + 4` of a word are in bounds; the store is unaligned.
            unsafe {
                _mm256_storeu_si256(
                    word.as_mut_ptr().add(h * 4).cast(),
                    _mm256_and_si256(value, low),
                )
            };
        }
    }
    out
}

/// Converts 64 random bits to a double in [0, 1) using the top 53 bits.
#[inline]
fn bits_to_unit(x: u64) -> f64 {
    // Through i64, which is exact below 2^53 and one instruction (`u64` to `f64` is several).
    (x >> 11) as i64 as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A keyed random stream: `(seed, stream)` fixed, draws addressed by `(entity, step, draw)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stream {
    key: [u32; 2],
}

impl Stream {
    /// Derives the stream key from the seed and stream id (see the module documentation).
    pub fn new(seed: u64, stream: u32) -> Self {
        let out = philox4x32_10(
            [stream, 0, 0, STREAM_KEY_TAG],
            [seed as u32, (seed >> 32) as u32],
        );
        Stream {
            key: [out[0], out[1]],
        }
    }

    /// The raw 64 random bits of draw `draw` for `(entity, step)`.
    #[inline]
    pub fn bits(&self, entity: u32, step: u64, draw: u32) -> u64 {
        let block = philox4x32_10(
            [draw >> 1, entity, step as u32, (step >> 32) as u32],
            self.key,
        );
        let half = if draw & 1 == 0 {
            [block[0], block[1]]
        } else {
            [block[2], block[3]]
        };
        u64::from(half[0]) | (u64::from(half[1]) << 32)
    }

    /// A uniform double in [0, 1) for `(entity, step, draw)`.
    #[inline]
    pub fn uniform(&self, entity: u32, step: u64, draw: u32) -> f64 {
        bits_to_unit(self.bits(entity, step, draw))
    }

    /// The stream's 64-bit key, so compiled code can carry it and rebuild the stream with
    /// [`Stream::from_key`] without re-deriving it from the seed.
    pub fn key(&self) -> u64 {
        u64::from(self.key[0]) | (u64::from(self.key[1]) << 32)
    }

    pub fn from_key(key: u64) -> Self {
        Stream {
            key: [key as u32, (key >> 32) as u32],
        }
    }

    /// A cursor over the draws of `(entity, step)` starting at draw index `first`.
    pub fn draws_at(&self, entity: u32, step: u64, first: u32) -> Draws {
        Draws {
            stream: *self,
            entity,
            step,
            next: first,
            cached_block: None,
            spare_normal: None,
        }
    }

    /// A cursor over the draws of `(entity, step)` starting at draw index 0, for the
    /// distributions that need a variable number of uniforms.
    pub fn draws(&self, entity: u32, step: u64) -> Draws {
        Draws {
            stream: *self,
            entity,
            step,
            next: 0,
            cached_block: None,
            spare_normal: None,
        }
    }
}

/// Which first variate of a draw site [`Stream::fill_first_variates`] computes: the first value
/// a fresh [`Draws`] cursor returns from `uniform`, `normal`, `exponential` or `poisson`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FirstVariate {
    Uniform,
    Normal,
    Exponential,
    /// A Poisson count with this mean (as `f64`); a mean that is not finite or not positive
    /// gives 0.
    Poisson(f64),
}

impl Stream {
    /// `out[j]` becomes the first variate of kind `variate` of the cursor
    /// `draws_at(first_entity + j, step, first_draw)` (entities wrap around at 2^32, as `u32`
    /// arithmetic does), bit for bit what the cursor would return, for all `j` at once.
    ///
    /// This is the batched form of one draw site over a range of elements (compiled kernels
    /// call it once per step through `abi::snnc_random_block` instead of once per element).
    /// It is faster because the Philox blocks of [`BATCH_LANES`] entities are computed
    /// together, and because a Poisson count by inversion searches a table built once per
    /// call instead of the thread's shared [`PoissonCdf`]. Variates that need a variable
    /// number of uniforms (Poisson means at or above [`POISSON_INVERSION_MAX_MEAN`]) and odd
    /// `first_draw` (whose first variate straddles two blocks) are drawn one entity at a time
    /// through the cursor itself.
    pub fn fill_first_variates(
        &self,
        first_entity: u32,
        step: u64,
        first_draw: u32,
        variate: FirstVariate,
        out: &mut [f64],
    ) {
        let table = match variate {
            FirstVariate::Poisson(mean) if !(mean.is_finite() && mean > 0.0) => {
                out.fill(0.0);
                return;
            }
            FirstVariate::Poisson(mean) if mean < POISSON_INVERSION_MAX_MEAN => {
                Some(InversionTable::new(mean))
            }
            FirstVariate::Poisson(_) => None,
            _ => None,
        };
        let batched = first_draw & 1 == 0
            && (table.is_some() || !matches!(variate, FirstVariate::Poisson(_)));
        if !batched {
            for (j, x) in out.iter_mut().enumerate() {
                let entity = first_entity.wrapping_add(j as u32);
                let mut draws = self.draws_at(entity, step, first_draw);
                *x = match variate {
                    FirstVariate::Uniform => draws.uniform(),
                    FirstVariate::Normal => draws.normal(),
                    FirstVariate::Exponential => draws.exponential(),
                    FirstVariate::Poisson(mean) => draws.poisson(mean) as f64,
                };
            }
            return;
        }
        let block = first_draw >> 1;
        let table = table.as_ref();
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            let mut out = out;
            let mut first_entity = first_entity;
            if matches!(variate, FirstVariate::Uniform | FirstVariate::Poisson(_)) {
                let (whole, rest) = out.split_at_mut(out.len() / 4 * 4);
                // SAFETY: the CPU has AVX2, checked just above; `whole` is a multiple of four.
                unsafe {
                    fill_uniform_or_poisson_avx2(self.key, block, first_entity, step, table, whole)
                };
                first_entity = first_entity.wrapping_add(whole.len() as u32);
                out = rest;
            }
            // SAFETY: the CPU has AVX2, checked just above.
            unsafe { self.fill_batched_avx2(first_entity, step, block, variate, table, out) };
            return;
        }
        self.fill_batched(
            first_entity,
            step,
            block,
            variate,
            table,
            out,
            philox4x32_10_lanes,
        );
    }

    /// [`Self::fill_batched`] compiled for AVX2, where the eight lanes of a Philox round take two
    /// `vpmuludq` per multiplier instead of four `pmuludq`. The same operations in the same
    /// order, so the same bits (no FMA: Rust never contracts a multiply and an add).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn fill_batched_avx2(
        &self,
        first_entity: u32,
        step: u64,
        block: u32,
        variate: FirstVariate,
        table: Option<&InversionTable>,
        out: &mut [f64],
    ) {
        let philox = |block: u32, first: u32, step: u64, key: [u32; 2]| {
            // SAFETY: this function runs only where the CPU has AVX2.
            unsafe { philox4x32_10_lanes_avx2(block, first, step, key) }
        };
        self.fill_batched(first_entity, step, block, variate, table, out, philox);
    }

    /// The batched part of [`Self::fill_first_variates`]: Philox block `block` of each entity,
    /// [`BATCH_LANES`] entities at a time (through `philox`, one of the two lane-wise
    /// implementations), then the variate from its two halves.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn fill_batched(
        &self,
        first_entity: u32,
        step: u64,
        block: u32,
        variate: FirstVariate,
        table: Option<&InversionTable>,
        out: &mut [f64],
        philox: impl Fn(u32, u32, u64, [u32; 2]) -> [[u64; BATCH_LANES]; 4],
    ) {
        for (chunk_index, chunk) in out.chunks_mut(BATCH_LANES).enumerate() {
            let first = first_entity.wrapping_add((chunk_index * BATCH_LANES) as u32);
            let c = philox(block, first, step, self.key);
            for (l, x) in chunk.iter_mut().enumerate() {
                // Draw `first_draw` (even) is the block's first half, the next draw its second.
                let first_half = c[0][l] | (c[1][l] << 32);
                let second_half = c[2][l] | (c[3][l] << 32);
                *x = match variate {
                    FirstVariate::Uniform => bits_to_unit(first_half),
                    FirstVariate::Normal => box_muller_first(first_half, second_half),
                    FirstVariate::Exponential => exponential_of(first_half),
                    FirstVariate::Poisson(_) => {
                        let table = table.expect("batched Poisson draws have a table");
                        // The count is at most 200: through u32 the conversion is one instruction.
                        f64::from(table.search(bits_to_unit(first_half)) as u32)
                    }
                };
            }
        }
    }
}

/// The first value of a Box–Muller pair from the bits of two consecutive draws, as
/// [`Draws::normal`] computes it.
#[inline]
fn box_muller_first(first: u64, second: u64) -> f64 {
    let u1 = 1.0 - bits_to_unit(first);
    let u2 = bits_to_unit(second);
    let r = (-2.0 * u1.ln()).sqrt();
    r * (std::f64::consts::TAU * u2).cos()
}

/// An exponential variate with rate 1 from the bits of one draw, as [`Draws::exponential`].
#[inline]
fn exponential_of(bits: u64) -> f64 {
    -(1.0 - bits_to_unit(bits)).ln()
}

/// The cumulative Poisson probabilities of one mean below [`POISSON_INVERSION_MAX_MEAN`], as
/// far as they change, for [`Stream::fill_first_variates`]: its `search(u)` is the sequential
/// search of [`PoissonCdf::search`] bit for bit.
///
/// The entries are summed exactly as the sequential search sums them. Past the mean the terms
/// shrink, so once adding one leaves the sum unchanged, adding any later one does too (rounding
/// is monotone): the table stops there, at `cdf[last]`, and a `u` above it is a search that
/// runs to the cap, [`POISSON_INVERSION_MAX_K`].
struct InversionTable {
    /// `cdf[k] = P(X <= k)` for `k <= last`, then `+inf` padding up to [`Self::FAST`] entries.
    cdf: Vec<f64>,
    last: usize,
}

impl InversionTable {
    /// The search compares `u` with this many entries at once, without branches: the count of
    /// entries below `u` is the variate when it is smaller (the table is non-decreasing, as a
    /// sum of non-negative terms rounded monotonically). Sixteen covers all but about 1e-10
    /// of the draws at mean 2 (Brunel's external drive) and half of them at mean 9.9.
    const FAST: usize = 16;

    fn new(mean: f64) -> Self {
        let mut term = (-mean).exp();
        let mut cdf = vec![term];
        let mut k = 0;
        while k < POISSON_INVERSION_MAX_K {
            k += 1;
            term *= mean / k as f64;
            let previous = cdf[k - 1];
            let next = previous + term;
            cdf.push(next);
            if next == previous && k as f64 > mean {
                break;
            }
        }
        let last = cdf.len() - 1;
        cdf.resize(cdf.len().max(Self::FAST), f64::INFINITY);
        InversionTable { cdf, last }
    }

    #[inline]
    fn search(&self, u: f64) -> u64 {
        let below = self.cdf[..Self::FAST]
            .iter()
            .fold(0usize, |n, &c| n + usize::from(c < u));
        let k = if below < Self::FAST {
            below
        } else {
            let mut k = Self::FAST;
            while k <= self.last && u > self.cdf[k] {
                k += 1;
            }
            k
        };
        if k > self.last {
            POISSON_INVERSION_MAX_K as u64
        } else {
            k as u64
        }
    }
}

/// A uniform double in [0, 1), 53-bit resolution, as a pure function of its arguments.
pub fn uniform(seed: u64, stream: u32, entity: u32, step: u64, draw: u32) -> f64 {
    Stream::new(seed, stream).uniform(entity, step, draw)
}

/// Sequential access to the draws of one `(stream, entity, step)`.
///
/// The values a `Draws` returns depend only on the stream key, entity, step and on the
/// sequence of calls made on it, so they are reproducible regardless of threads. Draw indices
/// are consumed in order starting at 0; the index wraps after 2^32 draws, which no
/// distribution here comes close to.
#[derive(Clone, Debug)]
pub struct Draws {
    stream: Stream,
    entity: u32,
    step: u64,
    next: u32,
    /// The last Philox block, so that draws 2m and 2m+1 cost one block evaluation.
    cached_block: Option<(u32, [u32; 4])>,
    /// Box–Muller yields two normals; the second is kept for the next call.
    spare_normal: Option<f64>,
}

/// Below this mean Poisson variates come from inversion; at or above it from PTRS.
pub const POISSON_INVERSION_MAX_MEAN: f64 = 10.0;
/// Below this value of `n * min(p, 1-p)` binomial variates come from inversion; at or above
/// it from BTRS.
pub const BINOMIAL_INVERSION_MAX_MEAN: f64 = 10.0;

/// The cumulative distribution of the last Poisson mean a thread drew from by inversion,
/// computed as far as its searches have needed.
struct PoissonCdf {
    mean: u64,
    /// The last probability `P(X = k)` computed, `k = cdf.len() - 1`.
    last_term: f64,
    /// `P(X <= k)` for `k` in `0..cdf.len()`.
    cdf: Vec<f64>,
}

/// The search gives up at this `k`: it guards against rounding leaving the CDF just below `u`
/// forever; below the inversion's largest mean the probability of `k >= 200` is far below
/// 2^-53.
const POISSON_INVERSION_MAX_K: usize = 200;

impl PoissonCdf {
    fn search(&mut self, mean: f64, u: f64) -> u64 {
        if self.mean != mean.to_bits() || self.cdf.is_empty() {
            self.mean = mean.to_bits();
            self.last_term = (-mean).exp();
            self.cdf.clear();
            self.cdf.push(self.last_term);
        }
        let mut k = 0;
        while u > self.cdf[k] && k < POISSON_INVERSION_MAX_K {
            k += 1;
            if k == self.cdf.len() {
                self.last_term *= mean / k as f64;
                let previous = self.cdf[k - 1];
                self.cdf.push(previous + self.last_term);
            }
        }
        k as u64
    }
}

thread_local! {
    static POISSON_CDF: std::cell::RefCell<PoissonCdf> = const {
        std::cell::RefCell::new(PoissonCdf {
            mean: 0,
            last_term: 0.0,
            cdf: Vec::new(),
        })
    };
}

impl Draws {
    /// The number of draw indices consumed so far.
    pub fn consumed(&self) -> u32 {
        self.next
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_bits(&mut self) -> u64 {
        let draw = self.next;
        self.next = self.next.wrapping_add(1);
        let block_index = draw >> 1;
        let block = match self.cached_block {
            Some((index, block)) if index == block_index => block,
            _ => {
                let block = philox4x32_10(
                    [
                        block_index,
                        self.entity,
                        self.step as u32,
                        (self.step >> 32) as u32,
                    ],
                    self.stream.key,
                );
                self.cached_block = Some((block_index, block));
                block
            }
        };
        let half = if draw & 1 == 0 {
            [block[0], block[1]]
        } else {
            [block[2], block[3]]
        };
        u64::from(half[0]) | (u64::from(half[1]) << 32)
    }

    /// The next uniform double in [0, 1).
    #[inline]
    pub fn uniform(&mut self) -> f64 {
        bits_to_unit(self.next_bits())
    }

    /// A uniform double in (0, 1], for logarithms that must not see zero.
    #[inline]
    fn uniform_open_zero(&mut self) -> f64 {
        1.0 - self.uniform()
    }

    /// A uniform integer in `0..n` (returns 0 when `n` is 0). Uses `floor(u * n)`; with 53-bit
    /// `u` the bias is below `n / 2^53`, negligible for the `u32` ranges used here.
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        let x = (self.uniform() * n as f64) as u64;
        // Rounding of u * n can reach n only for n above 2^53; clamp to stay in range.
        x.min(n.saturating_sub(1))
    }

    /// A standard normal variate (Box–Muller; the second value of each pair is kept).
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare_normal.take() {
            return z;
        }
        let u1 = self.uniform_open_zero();
        let u2 = self.uniform();
        let r = (-2.0 * u1.ln()).sqrt();
        let theta = std::f64::consts::TAU * u2;
        self.spare_normal = Some(r * theta.sin());
        r * theta.cos()
    }

    /// An exponential variate with rate 1 (mean 1), by inversion.
    pub fn exponential(&mut self) -> f64 {
        -self.uniform_open_zero().ln()
    }

    /// A Poisson variate with the given mean. Means below [`POISSON_INVERSION_MAX_MEAN`] use
    /// sequential-search inversion; larger means use Hörmann's PTRS transformed rejection
    /// (1993), which is exact. A mean that is not finite or is negative yields 0.
    pub fn poisson(&mut self, mean: f64) -> u64 {
        if mean.is_nan() || mean <= 0.0 || mean.is_infinite() {
            return 0;
        }
        if mean < POISSON_INVERSION_MAX_MEAN {
            self.poisson_inversion(mean)
        } else {
            self.poisson_ptrs(mean)
        }
    }

    /// Sequential search: the smallest `k` with `u <= P(X <= k)`. The cumulative
    /// probabilities come from this thread's [`PoissonCdf`], which computes them exactly as a
    /// search from scratch would (`p_0 = exp(-mean)`, `p_k = p_(k-1) · (mean / k)`, summed in
    /// order), so the variate is the same bit for bit; but a network drawing one Poisson count
    /// per neuron per step with the same mean (a Poisson input) pays for the exponential and
    /// the divisions once, not at every draw.
    fn poisson_inversion(&mut self, mean: f64) -> u64 {
        let u = self.uniform();
        POISSON_CDF.with(|cdf| cdf.borrow_mut().search(mean, u))
    }

    fn poisson_ptrs(&mut self, mean: f64) -> u64 {
        let slam = mean.sqrt();
        let loglam = mean.ln();
        let b = 0.931 + 2.53 * slam;
        let a = -0.059 + 0.02483 * b;
        let invalpha = 1.1239 + 1.1328 / (b - 3.4);
        let vr = 0.9277 - 3.6224 / (b - 2.0);
        loop {
            let u = self.uniform() - 0.5;
            let v = self.uniform();
            let us = 0.5 - u.abs();
            let k = ((2.0 * a / us + b) * u + mean + 0.43).floor();
            if us >= 0.07 && v <= vr {
                return k as u64;
            }
            if k < 0.0 || (us < 0.013 && v > us) {
                continue;
            }
            let lhs = v.ln() + invalpha.ln() - (a / (us * us) + b).ln();
            let rhs = -mean + k * loglam - log_gamma(k + 1.0);
            if lhs <= rhs {
                return k as u64;
            }
        }
    }

    /// A binomial variate: successes in `n` trials of probability `p`. Small `n * min(p,1-p)`
    /// uses inversion; larger uses Hörmann's BTRS transformed rejection (1993), which is exact.
    /// `p` outside [0, 1] or NaN is clamped (NaN counts as 0).
    pub fn binomial(&mut self, n: u64, p: f64) -> u64 {
        let p = if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) };
        if n == 0 || p == 0.0 {
            return 0;
        }
        if p == 1.0 {
            return n;
        }
        // Sample with the smaller of p and 1-p and mirror, which both methods require.
        let (q, flipped) = if p > 0.5 { (1.0 - p, true) } else { (p, false) };
        let k = if (n as f64) * q < BINOMIAL_INVERSION_MAX_MEAN {
            self.binomial_inversion(n, q)
        } else {
            self.binomial_btrs(n, q)
        };
        if flipped {
            n - k
        } else {
            k
        }
    }

    fn binomial_inversion(&mut self, n: u64, p: f64) -> u64 {
        let q = 1.0 - p;
        let s = p / q;
        let a = (n as f64 + 1.0) * s;
        let mut r = q.powf(n as f64);
        let mut u = self.uniform();
        let mut k = 0u64;
        while u > r && k < n {
            u -= r;
            k += 1;
            r *= a / k as f64 - s;
        }
        k
    }

    fn binomial_btrs(&mut self, n: u64, p: f64) -> u64 {
        let nf = n as f64;
        let q = 1.0 - p;
        let spq = (nf * p * q).sqrt();
        let b = 1.15 + 2.53 * spq;
        let a = -0.0873 + 0.0248 * b + 0.01 * p;
        let c = nf * p + 0.5;
        let vr = 0.92 - 4.2 / b;
        let alpha = (2.83 + 5.1 / b) * spq;
        let lpq = (p / q).ln();
        let m = ((nf + 1.0) * p).floor();
        let h = log_gamma(m + 1.0) + log_gamma(nf - m + 1.0);
        loop {
            let u = self.uniform() - 0.5;
            let v = self.uniform();
            let us = 0.5 - u.abs();
            let k = ((2.0 * a / us + b) * u + c).floor();
            if k < 0.0 || k > nf {
                continue;
            }
            if us >= 0.07 && v <= vr {
                return k as u64;
            }
            let lv = (v * alpha / (a / (us * us) + b)).ln();
            if lv <= h - log_gamma(k + 1.0) - log_gamma(nf - k + 1.0) + (k - m) * lpq {
                return k as u64;
            }
        }
    }
}

/// ln Γ(x) for x > 0 by the Stirling series with the argument shifted above 7 (the method of
/// numpy's `random_loggam`); accurate to about 1e-15 relative, which the rejection tests need.
pub fn log_gamma(x: f64) -> f64 {
    const A: [f64; 10] = [
        8.333_333_333_333_333e-02,
        -2.777_777_777_777_778e-03,
        7.936_507_936_507_937e-04,
        -5.952_380_952_380_952e-04,
        8.417_508_417_508_418e-04,
        -1.917_526_917_526_918e-03,
        6.410_256_410_256_41e-3,
        -2.955_065_359_477_124e-02,
        1.796_443_723_688_307e-01,
        -1.392_432_216_905_90e+00,
    ];
    if x == 1.0 || x == 2.0 {
        return 0.0;
    }
    let mut x0 = x;
    let mut shift = 0u32;
    if x < 7.0 {
        shift = (7.0 - x.floor()) as u32;
        x0 = x + f64::from(shift);
    }
    let x2 = 1.0 / (x0 * x0);
    let mut gl0 = A[9];
    for coefficient in A[..9].iter().rev() {
        gl0 = gl0 * x2 + coefficient;
    }
    let mut gl = gl0 / x0 + 0.5 * std::f64::consts::TAU.ln() + (x0 - 0.5) * x0.ln() - x0;
    for _ in 0..shift {
        x0 -= 1.0;
        gl -= x0.ln();
    }
    gl
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: usize = 100_000;

    /// The sequential search without a table, as `poisson_inversion` was written before the
    /// table: the reference the table must reproduce bit for bit.
    fn poisson_search_from_scratch(mean: f64, u: f64) -> u64 {
        let mut k = 0u64;
        let mut p = (-mean).exp();
        let mut cdf = p;
        while u > cdf && k < POISSON_INVERSION_MAX_K as u64 {
            k += 1;
            p *= mean / k as f64;
            cdf += p;
        }
        k
    }

    #[test]
    fn the_poisson_table_gives_the_variates_of_a_search_from_scratch() {
        let mut table = PoissonCdf {
            mean: 0,
            last_term: 0.0,
            cdf: Vec::new(),
        };
        let mut draws = Stream::new(3, 1).draws_at(0, 0, 0);
        // Runs of one mean (the table is reused and extended) and changes of mean (rebuilt),
        // with u up to the largest double below 1 (the search's longest path, to the cap).
        let means = [2.0, 2.0, 0.3, 9.99, 9.99, 2.0, 1e-9, 5.5];
        for i in 0..N {
            let mean = means[(i / 7) % means.len()];
            let u = if i % 1000 == 999 {
                1.0 - f64::EPSILON / 2.0
            } else {
                draws.uniform()
            };
            assert_eq!(
                table.search(mean, u),
                poisson_search_from_scratch(mean, u),
                "mean {mean}, u {u}"
            );
        }
    }

    /// The batched inversion's table gives the sequential search's variates bit for bit,
    /// including the long path past its branch-free part (means near the threshold, where
    /// sixteen entries do not suffice) and the search that runs to the cap (`u` above the last
    /// cumulative probability that rounding lets the sum reach).
    #[test]
    fn the_batched_inversion_table_gives_the_variates_of_a_search_from_scratch() {
        let mut draws = Stream::new(5, 2).draws_at(0, 0, 0);
        for mean in [1e-9, 0.3, 2.0, 4.0, 7.25, 9.99, 9.999_999_999] {
            let table = InversionTable::new(mean);
            let extremes = [
                0.0,
                f64::MIN_POSITIVE,
                0.5,
                1.0 - f64::EPSILON,
                1.0 - f64::EPSILON / 2.0,
            ];
            let sampled = (0..20_000).map(|_| draws.uniform());
            for u in extremes.into_iter().chain(sampled) {
                assert_eq!(
                    table.search(u),
                    poisson_search_from_scratch(mean, u),
                    "mean {mean}, u {u}"
                );
            }
            // Each entry itself and its neighbours, where `<=` against `<` matters.
            for k in 0..=table.last {
                let c = table.cdf[k];
                for u in [c, c.next_down(), c.next_up()] {
                    if (0.0..1.0).contains(&u) {
                        assert_eq!(
                            table.search(u),
                            poisson_search_from_scratch(mean, u),
                            "mean {mean}, u {u}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    // Lane `l` is compared with the counter of entity `first + l`: the index is the point.
    #[allow(clippy::needless_range_loop)]
    fn batched_philox_equals_philox_lane_by_lane() {
        let key = [0xa409_3822, 0x299f_31d0];
        // Entities that wrap around 2^32 within the lanes, and a step with both halves set.
        for (block, first, step) in [(0, 0, 0), (7, u32::MAX - 3, (5u64 << 32) | 9)] {
            let lanes = philox4x32_10_lanes(block, first, step, key);
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2.
                let avx2 = unsafe { philox4x32_10_lanes_avx2(block, first, step, key) };
                assert_eq!(avx2, lanes, "AVX2 and portable lanes");
            }
            for l in 0..BATCH_LANES {
                let counter = [
                    block,
                    first.wrapping_add(l as u32),
                    step as u32,
                    (step >> 32) as u32,
                ];
                let words = [lanes[0][l], lanes[1][l], lanes[2][l], lanes[3][l]];
                assert!(words.iter().all(|&w| w <= u64::from(u32::MAX)), "lane {l}");
                assert_eq!(
                    philox4x32_10(counter, key),
                    words.map(|w| w as u32),
                    "lane {l}"
                );
            }
        }
    }

    #[test]
    fn philox_known_answers_from_random123() {
        // Random123 kat_vectors, philox4x32_10.
        assert_eq!(
            philox4x32_10([0; 4], [0; 2]),
            [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]
        );
        assert_eq!(
            philox4x32_10([0xffff_ffff; 4], [0xffff_ffff; 2]),
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
        );
        assert_eq!(
            philox4x32_10(
                [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
                [0xa4093822, 0x299f31d0]
            ),
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
        );
    }

    #[test]
    fn draws_are_pure_functions_of_their_address() {
        let a = uniform(42, 3, 17, 1_000_000_007, 5);
        let b = uniform(42, 3, 17, 1_000_000_007, 5);
        assert_eq!(a.to_bits(), b.to_bits());
        // Changing any coordinate changes the value.
        assert_ne!(a, uniform(43, 3, 17, 1_000_000_007, 5));
        assert_ne!(a, uniform(42, 4, 17, 1_000_000_007, 5));
        assert_ne!(a, uniform(42, 3, 18, 1_000_000_007, 5));
        assert_ne!(a, uniform(42, 3, 17, 1_000_000_008, 5));
        assert_ne!(a, uniform(42, 3, 17, 1_000_000_007, 4));
        // The high half of the step matters too.
        assert_ne!(uniform(1, 0, 0, 5, 0), uniform(1, 0, 0, 5 + (1 << 32), 0));
        // The cursor agrees with direct addressing, in any order of entities.
        let s = Stream::new(42, 3);
        let mut d = s.draws(17, 1_000_000_007);
        let seq: Vec<f64> = (0..7).map(|_| d.uniform()).collect();
        for (i, x) in seq.iter().enumerate() {
            assert_eq!(
                x.to_bits(),
                s.uniform(17, 1_000_000_007, i as u32).to_bits()
            );
        }
        assert_eq!(d.consumed(), 7);
    }

    /// Checks a sample's mean and variance against the true ones within 5 standard errors.
    /// `mu4_minus_var2` is the fourth central moment minus the squared variance, which gives
    /// the standard error of the sample variance, sqrt((mu4 - sigma^4) / n).
    fn check_moments(name: &str, xs: &[f64], mean: f64, var: f64, mu4_minus_var2: f64) {
        let n = xs.len() as f64;
        let m = xs.iter().sum::<f64>() / n;
        let v = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0);
        let se_mean = (var / n).sqrt();
        let se_var = (mu4_minus_var2 / n).sqrt();
        assert!(
            (m - mean).abs() <= 5.0 * se_mean,
            "{name}: mean {m} vs {mean} (5 se = {})",
            5.0 * se_mean
        );
        assert!(
            (v - var).abs() <= 5.0 * se_var,
            "{name}: variance {v} vs {var} (5 se = {})",
            5.0 * se_var
        );
    }

    fn sample(stream: u32, mut f: impl FnMut(&mut Draws) -> f64) -> Vec<f64> {
        let s = Stream::new(20_261_122, stream);
        (0..N as u32).map(|e| f(&mut s.draws(e, 0))).collect()
    }

    #[test]
    fn uniform_moments_and_range() {
        let xs = sample(1, |d| d.uniform());
        assert!(xs.iter().all(|&x| (0.0..1.0).contains(&x)));
        check_moments("uniform", &xs, 0.5, 1.0 / 12.0, 1.0 / 180.0);
    }

    #[test]
    fn normal_moments() {
        // Use both values of each Box–Muller pair.
        let s = Stream::new(7, 2);
        let mut xs = Vec::with_capacity(N);
        for e in 0..(N / 2) as u32 {
            let mut d = s.draws(e, 0);
            xs.push(d.normal());
            xs.push(d.normal());
        }
        check_moments("normal", &xs, 0.0, 1.0, 2.0);
    }

    #[test]
    fn exponential_moments() {
        let xs = sample(3, |d| d.exponential());
        check_moments("exponential", &xs, 1.0, 1.0, 8.0);
    }

    #[test]
    fn poisson_moments_across_the_method_threshold() {
        for (i, &lambda) in [0.3, 4.0, 9.99, 10.0, 37.5, 1000.0].iter().enumerate() {
            let xs = sample(10 + i as u32, |d| d.poisson(lambda) as f64);
            check_moments(
                &format!("poisson({lambda})"),
                &xs,
                lambda,
                lambda,
                lambda + 2.0 * lambda * lambda,
            );
        }
    }

    #[test]
    fn poisson_pmf_at_the_mode_for_ptrs() {
        // Mean and variance alone would not catch a wrong shape; check P(K = 30) at mean 30.
        let lambda: f64 = 30.0;
        let xs = sample(30, |d| d.poisson(lambda) as f64);
        let hits = xs.iter().filter(|&&x| x == 30.0).count() as f64;
        let p = (-lambda + 30.0 * lambda.ln() - log_gamma(31.0)).exp();
        let se = (p * (1.0 - p) / N as f64).sqrt();
        assert!(
            (hits / N as f64 - p).abs() <= 5.0 * se,
            "P(30) = {} vs {p}",
            hits / N as f64
        );
    }

    #[test]
    fn binomial_moments_both_methods_and_mirrored() {
        for (i, &(n, p)) in [(20u64, 0.1), (1000, 0.3), (1000, 0.9), (50_000_000, 1e-4)]
            .iter()
            .enumerate()
        {
            let xs = sample(40 + i as u32, |d| d.binomial(n, p) as f64);
            let nf = n as f64;
            let var = nf * p * (1.0 - p);
            let kappa4 = var * (1.0 - 6.0 * p * (1.0 - p));
            check_moments(
                &format!("binomial({n}, {p})"),
                &xs,
                nf * p,
                var,
                kappa4 + 2.0 * var * var,
            );
            assert!(xs.iter().all(|&x| x <= nf));
        }
    }

    /// Pearson chi-square of `xs` against the pmf `ln_pmf`, over the bins `lo..=hi` plus the
    /// two pooled tails; fails beyond df + 5 sqrt(2 df), the 5-sigma point of the normal
    /// approximation to the chi-square distribution. This checks the whole shape, which a
    /// rejection sampler with a wrong hat or squeeze can get wrong while keeping the mean.
    fn check_chi_square(name: &str, xs: &[f64], lo: u64, hi: u64, ln_pmf: impl Fn(u64) -> f64) {
        let n = xs.len() as f64;
        let mut observed = vec![0f64; (hi - lo + 3) as usize];
        for &x in xs {
            let k = x as u64;
            let bin = if k < lo {
                0
            } else if k > hi {
                observed.len() - 1
            } else {
                (k - lo + 1) as usize
            };
            observed[bin] += 1.0;
        }
        let inner: Vec<f64> = (lo..=hi).map(|k| ln_pmf(k).exp()).collect();
        let below: f64 = (0..lo).map(|k| ln_pmf(k).exp()).sum();
        let above = 1.0 - below - inner.iter().sum::<f64>();
        let mut expected = vec![below];
        expected.extend(inner);
        expected.push(above);
        let chi2: f64 = observed
            .iter()
            .zip(&expected)
            // An empty tail (lo = 0) has nothing expected and nothing observed; skip it.
            .filter(|(_, &p)| p > 0.0)
            .map(|(o, p)| (o - n * p).powi(2) / (n * p))
            .sum();
        let df = (expected.iter().filter(|&&p| p > 0.0).count() - 1) as f64;
        assert!(
            chi2 <= df + 5.0 * (2.0 * df).sqrt(),
            "{name}: chi-square {chi2} with {df} df"
        );
    }

    #[test]
    fn poisson_and_binomial_shapes_fit_their_pmfs() {
        let lambda: f64 = 37.5;
        let xs = sample(60, |d| d.poisson(lambda) as f64);
        check_chi_square("poisson(37.5)", &xs, 22, 55, |k| {
            -lambda + k as f64 * lambda.ln() - log_gamma(k as f64 + 1.0)
        });
        let lambda: f64 = 4.0;
        let xs = sample(61, |d| d.poisson(lambda) as f64);
        check_chi_square("poisson(4)", &xs, 0, 12, |k| {
            -lambda + k as f64 * lambda.ln() - log_gamma(k as f64 + 1.0)
        });
        let (n, p) = (200u64, 0.3f64);
        let xs = sample(62, |d| d.binomial(n, p) as f64);
        check_chi_square("binomial(200, 0.3)", &xs, 42, 78, |k| {
            let (kf, nf) = (k as f64, n as f64);
            log_gamma(nf + 1.0) - log_gamma(kf + 1.0) - log_gamma(nf - kf + 1.0)
                + kf * p.ln()
                + (nf - kf) * (1.0 - p).ln()
        });
    }

    #[test]
    fn binomial_edge_cases() {
        let mut d = Stream::new(1, 1).draws(0, 0);
        assert_eq!(d.binomial(0, 0.5), 0);
        assert_eq!(d.binomial(10, 0.0), 0);
        assert_eq!(d.binomial(10, 1.0), 10);
        assert_eq!(d.binomial(10, f64::NAN), 0);
        assert_eq!(d.poisson(-1.0), 0);
        assert_eq!(d.poisson(f64::NAN), 0);
    }

    #[test]
    fn log_gamma_matches_factorials() {
        let mut fact = 1.0f64;
        for k in 1..30u32 {
            fact *= f64::from(k);
            let lg = log_gamma(f64::from(k) + 1.0);
            assert!(
                (lg - fact.ln()).abs() < 1e-12 * fact.ln().max(1.0),
                "k = {k}"
            );
        }
        // Γ(1/2) = sqrt(pi).
        assert!((log_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-12);
    }
}
