//! `exp` and `expm1` as a fixed sequence of IEEE operations that compiled kernels repeat.
//!
//! Kernels evaluate `exp` on every element every step (exponential Euler, escape noise, the
//! exponential integrate-and-fire current, Hodgkin-Huxley rates). A call into the C library
//! is scalar and costs 10-20 ns; inlined, the same function vectorises with the rest of the
//! kernel. For JIT code, object files, the LLVM backend and the interpreter to agree bit for
//! bit, all of them must run the same operations in the same order, so this module defines
//! the algorithm once, as plain `+ - *` on `f64` (never fused), comparisons, and integer
//! arithmetic on the bit pattern; the code generators emit exactly these steps (see
//! `compiler/src/codegen`), and the interpreter and the runtime's helpers call these
//! functions.
//!
//! The algorithm: with `k = round(x / ln 2)` and `r = x - k ln 2` (`|r| <= ln2 / 2`, ln 2 split
//! into a high part exact in `k * LN2_HI` and a low part), `expm1(r) = r + r^2 q(r)` where `q`
//! is the Taylor series of `(e^r - 1 - r) / r^2` to degree 11 (truncation below 2e-17
//! relative; the small correction added to `r` last keeps the rounding error small),
//! evaluated by Estrin's scheme ([`series`]), and
//! `e^x = 2^k (1 + expm1(r))`. The scale `2^k` is built from the bits of the rounding
//! constant (adding 1.5 * 2^52 leaves `k` in the low bits of the sum) and applied in two
//! halves, so results that underflow to subnormals are rounded once and correctly.
//! Measured against the C library over the whole range (tests below): `exp` within 1 ulp,
//! `expm1` within 2 ulp.
//!
//! It must not depend on the CPU's rounding of anything but IEEE basic operations: no
//! `mul_add`, no library calls.

/// 1 / ln 2.
pub const LOG2_E: f64 = std::f64::consts::LOG2_E;
/// 1.5 * 2^52: adding it rounds a double of magnitude below 2^51 to an integer, kept in the
/// low bits of the sum's representation.
pub const ROUNDING_SHIFTER: f64 = 6_755_399_441_055_744.0;
/// ln 2 rounded to 32 significant bits, so `k * LN2_HI` is exact for `|k| < 2^21`.
pub const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
/// ln 2 - LN2_HI.
pub const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
/// Inputs are clamped to `[CLAMP_LOW, CLAMP_HIGH]` before the reduction: `exp` is 0 below
/// -745.2 and infinite above 709.8, and the clamped range keeps both halves of the scale
/// `2^k` normal numbers.
pub const CLAMP_LOW: f64 = -746.0;
pub const CLAMP_HIGH: f64 = 710.0;
/// Above this `k`, `expm1(x)` is `exp(x) - 1` rounded; the split form `(2^k - 1) + 2^k p`
/// would overflow at `k = 1024` before the sum.
pub const EXPM1_LARGE_K: f64 = 56.0;
/// The exponent bias added to `k` before shifting it into the exponent field.
pub const EXPONENT_BIAS: i64 = 1023;

/// Taylor coefficients of `(e^r - 1 - r) / r^2 = sum r^n / (n + 2)!`, n = 0..=11, lowest
/// first.
pub const EXPM1_SERIES: [f64; 12] = [
    1.0 / 2.0,
    1.0 / 6.0,
    1.0 / 24.0,
    1.0 / 120.0,
    1.0 / 720.0,
    1.0 / 5040.0,
    1.0 / 40_320.0,
    1.0 / 362_880.0,
    1.0 / 3_628_800.0,
    1.0 / 39_916_800.0,
    1.0 / 479_001_600.0,
    1.0 / 6_227_020_800.0,
];

/// The reduced argument of `x`: `k` (an integer-valued double), the bits of `k / 2`'s
/// rounding sum and of `(k - k/2)`'s, and `expm1(r)`.
struct Reduced {
    k: f64,
    half_sum: f64,
    rest_sum: f64,
    expm1_r: f64,
}

fn reduce(x: f64) -> Reduced {
    // `clamp` passes NaN through (min/max would not); code generators compare and select.
    let x = x.clamp(CLAMP_LOW, CLAMP_HIGH);
    let k = (x * LOG2_E + ROUNDING_SHIFTER) - ROUNDING_SHIFTER;
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let r2 = r * r;
    let q = series(r, r2);
    let half_sum = k * 0.5 + ROUNDING_SHIFTER;
    let half = half_sum - ROUNDING_SHIFTER;
    let rest_sum = (k - half) + ROUNDING_SHIFTER;
    Reduced {
        k,
        half_sum,
        rest_sum,
        expm1_r: r + r2 * q,
    }
}

/// `EXPM1_SERIES` at `r` by Estrin's scheme: pairs of coefficients first, then pairs of
/// pairs with `r^2`, `r^4` and `r^8`. The dependency chain is four multiply-adds deep where
/// Horner's rule is twelve, and kernels are bound by that latency.
pub fn series(r: f64, r2: f64) -> f64 {
    let c = &EXPM1_SERIES;
    let r4 = r2 * r2;
    let r8 = r4 * r4;
    let pairs: [f64; 6] = std::array::from_fn(|i| c[2 * i] + c[2 * i + 1] * r);
    let quad0 = pairs[0] + pairs[1] * r2;
    let quad1 = pairs[2] + pairs[3] * r2;
    let quad2 = pairs[4] + pairs[5] * r2;
    (quad0 + quad1 * r4) + quad2 * r8
}

/// `2^j` from the rounding sum `j + 1.5 * 2^52`, for `|j| <= 1022`: the low bits of the sum
/// are `j` in two's complement, and the shift drops everything above the exponent field.
pub fn power_of_two(rounding_sum: f64) -> f64 {
    f64::from_bits(
        (rounding_sum.to_bits() as i64)
            .wrapping_add(EXPONENT_BIAS)
            .wrapping_shl(52) as u64,
    )
}

/// `e^x`, within 2 ulp of the correctly rounded result.
pub fn exp(x: f64) -> f64 {
    let red = reduce(x);
    ((1.0 + red.expm1_r) * power_of_two(red.half_sum)) * power_of_two(red.rest_sum)
}

/// `e^x - 1`, within 2 ulp of the correctly rounded result, and exact in sign for zeros.
pub fn expm1(x: f64) -> f64 {
    let red = reduce(x);
    let half = power_of_two(red.half_sum);
    let rest = power_of_two(red.rest_sum);
    if red.k == 0.0 {
        // `r + r^2 q` is +0.0 for r = -0.0; the zeros are their own results.
        if x == 0.0 {
            x
        } else {
            red.expm1_r
        }
    } else if red.k > EXPM1_LARGE_K {
        ((1.0 + red.expm1_r) * half) * rest - 1.0
    } else {
        let scale = half * rest;
        (scale - 1.0) + scale * red.expm1_r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units in the last place, through the ordered integer representation.
    fn ulps(a: f64, b: f64) -> u64 {
        fn ordered(x: f64) -> i64 {
            let bits = x.to_bits() as i64;
            if bits < 0 {
                i64::MIN - bits
            } else {
                bits
            }
        }
        ordered(a).abs_diff(ordered(b))
    }

    /// A small deterministic generator (splitmix64), so the test needs no dependency.
    fn sample(state: &mut u64, low: f64, high: f64) -> f64 {
        *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        low + (high - low) * ((z >> 11) as f64 / (1u64 << 53) as f64)
    }

    /// Worst error over ranges that cover the reduction's cases: `k = 0`, small `k` of both
    /// signs, the subnormal and overflow edges. glibc's `exp` is correctly rounded and its
    /// `expm1` within 1 ulp; ours rounds in `r`, in the Horner sum and in the final scaling,
    /// so `exp` lands within 1 ulp of it and `expm1`'s split `(2^k - 1) + 2^k p` within 2.
    #[test]
    fn within_two_ulp_of_the_c_library() {
        let mut state = 1;
        let ranges = [
            (-1e-8, 1e-8),
            (-0.35, 0.35),
            (-3.0, 3.0),
            (-40.0, 40.0),
            (-708.0, 709.7),
            (-745.0, -708.0),
        ];
        for (low, high) in ranges {
            let (mut worst_exp, mut worst_expm1) = (0, 0);
            for _ in 0..200_000 {
                let x = sample(&mut state, low, high);
                worst_exp = worst_exp.max(ulps(exp(x), x.exp()));
                if x > -708.0 {
                    worst_expm1 = worst_expm1.max(ulps(expm1(x), x.exp_m1()));
                }
            }
            eprintln!("[{low}, {high}]: exp {worst_exp} ulp, expm1 {worst_expm1} ulp");
            assert!(worst_exp <= 1, "exp on [{low}, {high}]: {worst_exp} ulp");
            assert!(
                worst_expm1 <= 2,
                "expm1 on [{low}, {high}]: {worst_expm1} ulp"
            );
        }
    }

    #[test]
    fn special_values() {
        assert_eq!(exp(0.0), 1.0);
        assert!(ulps(exp(1.0), std::f64::consts::E) <= 1);
        assert_eq!(exp(f64::INFINITY), f64::INFINITY);
        assert_eq!(exp(f64::NEG_INFINITY), 0.0);
        assert_eq!(exp(710.0), f64::INFINITY);
        assert!(exp(709.78).is_finite());
        assert_eq!(exp(-746.0), 0.0);
        assert!(exp(f64::NAN).is_nan());
        assert_eq!(expm1(0.0).to_bits(), 0.0f64.to_bits());
        assert_eq!(expm1(-0.0).to_bits(), (-0.0f64).to_bits());
        assert_eq!(expm1(f64::INFINITY), f64::INFINITY);
        assert_eq!(expm1(709.78), 709.78f64.exp_m1());
        assert_eq!(expm1(f64::NEG_INFINITY), -1.0);
        assert_eq!(expm1(-50.0), -1.0);
        assert!(expm1(f64::NAN).is_nan());
        // The smallest subnormal, and exp of its logarithm's neighbourhood.
        assert_eq!(exp(-744.44), (-744.44f64).exp());
    }
}
