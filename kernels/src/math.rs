//! Scalar f32 functions shared by the kernels' epilogues and the frontend's fp32 ops, so that
//! an activation fused into an int8 GEMM and the same activation run alone give the same bits.
//!
//! ```
//! use q8_kernels::math::{erf, gelu_erf};
//! assert_eq!(erf(0.0), 0.0);
//! assert!((gelu_erf(1.0) - 0.841_344_7).abs() < 1e-6);
//! ```

/// `erf(a) ≈ a P(a²) / Q(a²)` on `[0, 3.925]`: the numerator's coefficients from
/// `t^0` (a rational fit minimizing the relative error, 2.2e-9 before rounding to f32;
/// `tools/fit/erf_rational.py` reproduces it).
const ERF_P: [f32; 7] = [
    std::f32::consts::FRAC_2_SQRT_PI,
    0.185_241_77,
    0.054_289_233,
    0.003_847_166_7,
    0.000_378_215_95,
    4.645_042_7e-6,
    -1.299_162_2e-8,
];

/// The denominator of [`ERF_P`]'s fit, from `t^0`.
const ERF_Q: [f32; 6] = [
    1.0,
    0.497_499_64,
    0.113_945_36,
    0.015_451_997,
    0.001_305_248,
    6.274_122e-5,
];

/// The smallest f32 whose exact `erf` rounds to 1 (`erfc(3.919206) = 2^-25`, half an ulp
/// below 1).
const ERF_ONE_FROM: f32 = 3.919_206;

/// `c[0] + t (c[1] + t (c[2] + ...))`, each step one fused multiply-add (`f32::mul_add`,
/// rounded once): a `vfmadd` where the caller is compiled with FMA (every SIMD tier), the
/// correctly rounded libm `fmaf` otherwise, so both give the same bits.
#[inline(always)]
fn horner(c: &[f32], t: f32) -> f32 {
    c.iter().rev().fold(0.0, |acc, &k| acc.mul_add(t, k))
}

/// The error function in f32: `a P(a²) / Q(a²)` for `a = |x|` below 3.919206 (at most 1),
/// exactly `±1` from there (where the exact value rounds to 1). Within 6 ulp of the exact
/// value on all of f32 (tested: most values exact or 1 ulp off; the largest errors are just
/// below 1, where an ulp is 6e-8), odd (`erf(-0) = -0`), NaN for NaN.
///
/// Branch-free (13 fused multiply-adds and one division), so a loop over a slice
/// vectorizes into the same bits as the scalar calls.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let a = x.abs().min(ERF_ONE_FROM);
    let t = a * a;
    let fit = (a * horner(&ERF_P, t) / horner(&ERF_Q, t)).min(1.0);
    let y = if a >= ERF_ONE_FROM { 1.0 } else { fit };
    // `a` is a number for NaN (`min` returned its other operand); put the NaN back.
    let y = if x.is_nan() { x } else { y };
    y.copysign(x)
}

/// Below this [`exp`] is exactly 0 (e^-87 = 1.6e-38 is 1.4 f32::MIN_POSITIVE).
const FLUSH_BELOW: f32 = -87.0;

/// `(e^r - 1 - r) / r²` on `[-ln 2 / 2, ln 2 / 2]`: the coefficients of Cephes' `expf`, from
/// `r^0`.
const EXP_POLY: [f32; 6] = [
    0.5,
    0.166_666_65,
    4.166_579_6e-2,
    8.333_452e-3,
    1.398_199_9e-3,
    1.987_569_1e-4,
];

/// `e^x` in f32 without a libm call, branch-free so that loops over slices vectorize:
/// `2^n · p(r)` with `n = rne(x · log2 e)`, `r = x - n ln 2` (ln 2 split in two so `r` is
/// exact) and the degree-7 Taylor-like polynomial of Cephes' `expf` in fused multiply-adds
/// (see [`horner`]); the scale `2^n` is applied as two halves so `n = 128` stays exact.
/// Within 2 ulp of the exact value from -87 up (tested); exactly `0` below -87, where the
/// result would be at most a few times `f32::MIN_POSITIVE` or subnormal (flushed as FTZ
/// would: a subnormal result costs a microcode assist of ~100 cycles per element, and the
/// masked entries of a softmax, `exp(-10000)`, are all of that kind); `+inf` above 88.73,
/// NaN for NaN.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Beyond these the result is 0 or inf anyway; clamping keeps n's halves in range and
    // every intermediate normal (2^n >= 2^-126 here).
    let xc = x.clamp(FLUSH_BELOW, 88.8);
    // Round to nearest even by the 1.5 * 2^23 trick (|xc * log2 e| < 2^22): a plain add and
    // subtract, where `round_ties_even` is a libm call without SSE4.1.
    const ROUND: f32 = 12_582_912.0;
    let shifted = xc * LOG2E + ROUND;
    let n = shifted - ROUND;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let q = horner(&EXP_POLY, r);
    let p = (q * r).mul_add(r, r) + 1.0;
    // The integer n from the shifted value's low mantissa bits (the same value as `n as
    // i32`, without a saturating float-to-int conversion, which does not vectorize).
    let n = shifted.to_bits() as i32 - ROUND.to_bits() as i32;
    let half = n >> 1;
    let scale = |e: i32| f32::from_bits(((e + 127) as u32) << 23);
    let y = p * scale(half) * scale(n - half);
    // NaN passes through `clamp` and the arithmetic; above the range the product is inf.
    let y = if x < FLUSH_BELOW { 0.0 } else { y };
    if x > 88.8 { f32::INFINITY } else { y }
}

/// `x` for `x >= 0`, else `alpha * x` (ONNX `LeakyRelu`).
#[inline]
pub fn leaky_relu(x: f32, alpha: f32) -> f32 {
    if x >= 0.0 { x } else { alpha * x }
}

/// `0.5 x (1 + erf(x / sqrt 2))` (ONNX `Gelu`, `approximate = "none"`), in f32 steps: the
/// bits of the decomposed graph `Div(x, 1.4142135) -> Erf -> Add 1 -> Mul x -> Mul 0.5`.
#[inline(always)]
pub fn gelu_erf(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x / std::f32::consts::SQRT_2))
}

/// `0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))` (ONNX `Gelu`, `approximate =
/// "tanh"`), in f32 steps.
#[inline]
pub fn gelu_tanh(x: f32) -> f32 {
    let c = (2.0 / std::f32::consts::PI).sqrt();
    0.5 * x * (1.0 + (c * (x + 0.044715 * x * x * x)).tanh())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_is_odd_and_saturates() {
        for x in [0.1f32, 0.7, 1.9, 2.0, 3.5, 9.0] {
            assert_eq!(erf(-x), -erf(x));
        }
        assert_eq!(erf(10.0), 1.0);
        // Python's math.erf(0.5) = 0.5204998778130465.
        assert!((erf(0.5) - 0.520_499_9).abs() < 1e-7);
    }

    /// The direct Maclaurin series (term by term, to 1e-17), the definition the Horner form
    /// must reproduce after rounding to f32.
    fn erf_series(x: f32) -> f32 {
        let a = f64::from(x).abs();
        let (mut term, mut sum) = (a, a);
        for n in 1..80 {
            term *= -a * a / n as f64;
            let add = term / (2 * n + 1) as f64;
            sum += add;
            if add.abs() < 1e-18 {
                break;
            }
        }
        let y = (sum * 2.0 / std::f64::consts::PI.sqrt()) as f32;
        if x < 0.0 { -y } else { y }
    }

    #[test]
    fn erf_matches_the_series_to_six_ulp_and_is_one_beyond() {
        let mut ulp_counts = [0usize; 7];
        for i in -40_000..40_000 {
            let x = i as f32 * 1e-4;
            let (got, want) = (erf(x), erf_series(x));
            let ulps = (got.to_bits() as i64 - want.to_bits() as i64).unsigned_abs() as usize;
            assert!(ulps <= 6, "erf({x}) = {got}, series {want}");
            ulp_counts[ulps] += 1;
        }
        eprintln!("erf ulp histogram over [-4, 4): {ulp_counts:?}");
        // Most values are exact or one ulp off; under 2 % are 3 or more (1426 of 80 000).
        assert!(ulp_counts[0] + ulp_counts[1] > 60_000, "{ulp_counts:?}");
        assert!(
            ulp_counts[3..].iter().sum::<usize>() < 4_000,
            "{ulp_counts:?}"
        );
        assert_eq!(erf(3.919_206), 1.0);
        assert_eq!(erf(-0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(erf(1e-30), 1.128_379_2e-30);
        assert_eq!(erf(4.0), 1.0);
        assert_eq!(erf(-7.5), -1.0);
        assert!(erf(f32::NAN).is_nan());
        assert_eq!(erf(f32::INFINITY), 1.0);
    }

    #[test]
    fn exp_is_within_two_ulp_above_the_flush_point() {
        let mut worst = 0;
        let mut x = -110.0f32;
        while x < 90.0 {
            let want = if x < -87.0 {
                0.0
            } else {
                f64::from(x).exp() as f32
            };
            let got = exp(x);
            let ulps = (got.to_bits() as i64 - want.to_bits() as i64).abs();
            assert!(ulps <= 2, "exp({x}) = {got}, want {want}");
            worst = worst.max(ulps);
            x += 1.3e-3;
        }
        for (x, want) in [
            (0.0, 1.0),
            (-200.0, 0.0),
            (-87.01, 0.0),
            (100.0, f32::INFINITY),
        ] {
            assert_eq!(exp(x), want, "exp({x})");
        }
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(f32::INFINITY), f32::INFINITY);
        assert!(exp(f32::NAN).is_nan());
        assert!(worst >= 1, "the sweep compares something");
    }

    #[test]
    fn gelu_forms_agree_roughly() {
        for x in [-3.0f32, -1.0, -0.1, 0.0, 0.3, 1.0, 4.0] {
            assert!((gelu_erf(x) - gelu_tanh(x)).abs() < 2e-3, "x = {x}");
        }
        assert_eq!(leaky_relu(-2.0, 0.25), -0.5);
        assert_eq!(leaky_relu(3.0, 0.25), 3.0);
    }
}
