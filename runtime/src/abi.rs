//! The C ABI between compiled kernels and the runtime.
//!
//! Kernels, whether JIT-compiled in the compiler's process or linked into a deployed program,
//! take one pointer to a [`KernelContext`] and call back into the runtime only through the
//! `extern "C"` functions here. The layout is `#[repr(C)]` and the code generator reads field
//! offsets from this definition, so the two cannot drift apart. Nothing here knows how
//! kernels are produced. The helpers are `#[no_mangle]`: an ahead-of-time compiled model
//! object imports them by these names, and the linker resolves them in the runtime. The one
//! piece of state here is the per-thread buffers of [`snnc_random_block`], which hand a
//! kernel a block of draws to read during one invocation.

use crate::rng::{FirstVariate, Stream};
use std::cell::RefCell;

/// Everything a population kernel needs for one step over one range of elements.
#[repr(C)]
#[derive(Debug)]
pub struct KernelContext {
    /// One pointer per per-element array, in the kernel's variable order.
    pub arrays: *const *mut f64,
    /// First element to update.
    pub start: u64,
    /// One past the last element.
    pub end: u64,
    pub step: u64,
    /// Time at the start of the step, in seconds.
    pub t: f64,
    /// The key of the kernel's random stream ([`Stream::key`]).
    pub stream_key: u64,
    /// Where spiking elements are written; room for `end - start` entries.
    pub spikes: *mut u32,
    /// Number of spikes written; the kernel increments it.
    pub n_spikes: u64,
    /// Index arrays for variables addressed by gathering (plasticity handlers: the target of
    /// each synapse, the synapses of a postsynaptic neuron...): a variable gathered through
    /// `gather[g]` is read at `array[gather[g][element]]`. Null when the kernel gathers
    /// nothing (every population kernel).
    pub gather: [*const u32; GATHERS],
}

/// The number of index arrays a [`KernelContext`] carries.
pub const GATHERS: usize = 2;

/// The kinds of random draw, numbered as compiled code passes them.
pub const RANDOM_UNIFORM: u32 = 0;
pub const RANDOM_NORMAL: u32 = 1;
pub const RANDOM_EXPONENTIAL: u32 = 2;
pub const RANDOM_POISSON: u32 = 3;

/// Each draw site owns this many consecutive raw draws, enough for any rejection loop, so
/// sites never share numbers.
pub const DRAWS_PER_SITE_SHIFT: u32 = 16;

/// One random number for draw site `site` of `element` at `step`; a pure function of its
/// arguments. The interpreter calls the same function, so both agree bit for bit.
#[no_mangle]
pub extern "C" fn snnc_random(
    stream_key: u64,
    element: u32,
    step: u64,
    site: u32,
    kind: u32,
    arg: f64,
) -> f64 {
    let mut draws =
        Stream::from_key(stream_key).draws_at(element, step, site << DRAWS_PER_SITE_SHIFT);
    match kind {
        RANDOM_UNIFORM => draws.uniform(),
        RANDOM_NORMAL => draws.normal(),
        RANDOM_EXPONENTIAL => draws.exponential(),
        RANDOM_POISSON => {
            if arg.is_finite() && arg > 0.0 {
                draws.poisson(arg) as f64
            } else {
                0.0
            }
        }
        _ => f64::NAN,
    }
}

thread_local! {
    /// The buffers [`snnc_random_block`] fills, one per slot, per thread.
    static RANDOM_BLOCKS: RefCell<Vec<Vec<f64>>> = const { RefCell::new(Vec::new()) };
}

/// The draws of site `site` for every element of `start..end` at `step`, at once: returns a
/// pointer `p` with `p[j] == snnc_random(stream_key, (start + j) as u32, step, site, kind,
/// arg)` bit for bit for `j < end - start`.
///
/// Compiled kernels call this once per invocation, before their element loop, for each draw
/// whose argument is the same for every element (every uniform, normal and exponential draw,
/// and Poisson draws of an invariant mean), and then read the draw of an element like an
/// array: the per-element call, its spilled registers and its Philox evaluation one block at
/// a time are gone ([`Stream::fill_first_variates`] computes eight at once). Elements that do
/// not use their draw (a draw under a condition) cost a little wasted work, never a different
/// value, as draws are pure functions of their address.
///
/// The values live in a buffer owned by this thread, one per `slot` (a kernel gives each of
/// its batched draws its own slot). The pointer stays valid, and the values unchanged, until
/// the same thread calls this function again with the same slot: a kernel must read its
/// values before it returns. For an empty range the pointer is dangling and must not be read.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn snnc_random_block(
    stream_key: u64,
    start: u64,
    end: u64,
    step: u64,
    site: u32,
    kind: u32,
    arg: f64,
    slot: u32,
) -> *const f64 {
    let len = end.saturating_sub(start) as usize;
    RANDOM_BLOCKS.with(|blocks| {
        let mut blocks = blocks.borrow_mut();
        let slot = slot as usize;
        if blocks.len() <= slot {
            blocks.resize_with(slot + 1, Vec::new);
        }
        let buffer = &mut blocks[slot];
        buffer.clear();
        buffer.resize(len, 0.0);
        let variate = match kind {
            RANDOM_UNIFORM => FirstVariate::Uniform,
            RANDOM_NORMAL => FirstVariate::Normal,
            RANDOM_EXPONENTIAL => FirstVariate::Exponential,
            RANDOM_POISSON => FirstVariate::Poisson(arg),
            _ => {
                buffer.fill(f64::NAN);
                return buffer.as_ptr();
            }
        };
        Stream::from_key(stream_key).fill_first_variates(
            start as u32,
            step,
            site << DRAWS_PER_SITE_SHIFT,
            variate,
            buffer,
        );
        buffer.as_ptr()
    })
}

/// `log`, `sin` etc. are not Cranelift instructions; compiled code calls these. (`exp` and
/// `expm1` are inlined: see [`crate::math`].)
#[no_mangle]
pub extern "C" fn snnc_log(x: f64) -> f64 {
    x.ln()
}
#[no_mangle]
pub extern "C" fn snnc_log10(x: f64) -> f64 {
    x.log10()
}
#[no_mangle]
pub extern "C" fn snnc_sin(x: f64) -> f64 {
    x.sin()
}
#[no_mangle]
pub extern "C" fn snnc_cos(x: f64) -> f64 {
    x.cos()
}
#[no_mangle]
pub extern "C" fn snnc_tan(x: f64) -> f64 {
    x.tan()
}
#[no_mangle]
pub extern "C" fn snnc_tanh(x: f64) -> f64 {
    x.tanh()
}
#[no_mangle]
pub extern "C" fn snnc_pow(x: f64, y: f64) -> f64 {
    x.powf(y)
}
#[no_mangle]
pub extern "C" fn snnc_fmod(x: f64, y: f64) -> f64 {
    x % y
}

/// A population kernel as compiled code exposes it.
pub type KernelFn = unsafe extern "C" fn(*mut KernelContext);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_pure_functions_of_their_address() {
        let key = Stream::new(7, 3).key();
        let a = snnc_random(key, 5, 11, 2, RANDOM_NORMAL, 0.0);
        let b = snnc_random(key, 5, 11, 2, RANDOM_NORMAL, 0.0);
        assert_eq!(a.to_bits(), b.to_bits());
        assert_ne!(a, snnc_random(key, 5, 11, 3, RANDOM_NORMAL, 0.0));
        assert_ne!(a, snnc_random(key, 6, 11, 2, RANDOM_NORMAL, 0.0));
        let u = snnc_random(key, 0, 0, 0, RANDOM_UNIFORM, 0.0);
        assert!((0.0..1.0).contains(&u));
        assert!(snnc_random(key, 0, 0, 0, 99, 0.0).is_nan());
    }

    /// The batched draws must be the per-element draws bit for bit: for every kind, for
    /// Poisson means on both sides of the inversion threshold and at its edges, for ranges
    /// that are not a multiple of the batch width, that wrap the `u32` element index, and for
    /// uniforms close enough to 1 that the inversion search runs past its fast part.
    #[test]
    fn blocks_of_draws_equal_the_draws_one_at_a_time() {
        let key = Stream::new(20_261_123, 4).key();
        let cases: &[(u32, f64)] = &[
            (RANDOM_UNIFORM, 0.0),
            (RANDOM_NORMAL, 0.0),
            (RANDOM_EXPONENTIAL, 0.0),
            (RANDOM_POISSON, 2.0),
            (RANDOM_POISSON, 1e-9),
            (RANDOM_POISSON, 0.3),
            (RANDOM_POISSON, 9.99),
            (RANDOM_POISSON, 10.0),
            (RANDOM_POISSON, 37.5),
            (RANDOM_POISSON, 0.0),
            (RANDOM_POISSON, -1.0),
            (RANDOM_POISSON, f64::NAN),
            (RANDOM_POISSON, f64::INFINITY),
            (7, 0.0),
        ];
        let ranges: &[(u64, u64)] = &[
            (0, 0),
            (3, 4),
            (5, 1234),
            (u64::from(u32::MAX) - 5, u64::from(u32::MAX) + 9),
        ];
        for (slot, &(kind, arg)) in cases.iter().enumerate() {
            for &(start, end) in ranges {
                for (step, site) in [(0u64, 0u32), (77, 3), (1 << 40, 1)] {
                    let block =
                        snnc_random_block(key, start, end, step, site, kind, arg, slot as u32);
                    for element in start..end {
                        let one = snnc_random(key, element as u32, step, site, kind, arg);
                        // SAFETY: the block holds `end - start` values and this thread made no
                        // other call with this slot since.
                        let batched = unsafe { *block.add((element - start) as usize) };
                        assert_eq!(
                            one.to_bits(),
                            batched.to_bits(),
                            "kind {kind}, arg {arg}, element {element}, step {step}, site {site}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn poisson_with_a_non_positive_mean_is_zero() {
        assert_eq!(snnc_random(1, 0, 0, 0, RANDOM_POISSON, 0.0), 0.0);
        assert_eq!(snnc_random(1, 0, 0, 0, RANDOM_POISSON, -1.0), 0.0);
    }
}
