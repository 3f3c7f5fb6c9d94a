//! The C ABI between compiled kernels and the runtime.
//!
//! Kernels, whether JIT-compiled in the compiler's process or linked into a deployed program,
//! take one pointer to a [`KernelContext`] and call back into the runtime only through the
//! `extern "C"` functions here. The layout is `#[repr(C)]` and the code generator reads field
//! offsets from this definition, so the two cannot drift apart. Nothing here knows how
//! kernels are produced. The helpers are `#[no_mangle]`: an ahead-of-time compiled model
//! object imports them by these names, and the linker resolves them in the runtime.

use crate::rng::Stream;

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

    #[test]
    fn poisson_with_a_non_positive_mean_is_zero() {
        assert_eq!(snnc_random(1, 0, 0, 0, RANDOM_POISSON, 0.0), 0.0);
        assert_eq!(snnc_random(1, 0, 0, 0, RANDOM_POISSON, -1.0), 0.0);
    }
}
