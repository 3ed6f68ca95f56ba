//! Scalar f32 functions shared by the kernels' epilogues and the frontend's fp32 ops, so that
//! an activation fused into an int8 GEMM and the same activation run alone give the same bits.
//!
//! ```
//! use q8_kernels::math::{erf, gelu_erf};
//! assert_eq!(erf(0.0), 0.0);
//! assert!((gelu_erf(1.0) - 0.841_344_7).abs() < 1e-6);
//! ```

/// Taylor coefficients of `erf(x) * sqrt(pi) / 2 / x` in `x^2`: `(-1)^n / (n! (2n + 1))`.
const ERF_TAYLOR: [f64; 16] = {
    let mut c = [0f64; 16];
    let mut fact = 1f64;
    let mut n = 0;
    while n < 16 {
        if n > 0 {
            fact *= n as f64;
        }
        let sign = if n % 2 == 0 { 1.0 } else { -1.0 };
        c[n] = sign / (fact * (2 * n + 1) as f64);
        n += 1;
    }
    c
};

/// Chebyshev fit of `erfc(a) = t · exp(-a² + P(t))`, `t = 1 / (1 + a / 2)`, fractional error
/// below 1.2e-7 for every `a >= 0` (Numerical Recipes' `erfcc`); coefficients of `P` from `t^0`.
const ERFC_FIT: [f64; 10] = [
    -1.265_512_23,
    1.000_023_68,
    0.374_091_96,
    0.096_784_18,
    -0.186_288_06,
    0.278_868_07,
    -1.135_203_98,
    1.488_515_87,
    -0.822_152_23,
    0.170_872_77,
];

/// The error function, computed in f64: its Taylor series for `|x| < 1` (16 terms in `x²`,
/// remainder below 2e-15), `1 - erfc` by a Chebyshev fit on `[1, 4)` (erfc's fractional error
/// 1.2e-7 is below 0.4 f32 ulp of erf there), and exactly `±1` beyond (erfc(4) < half an f32
/// ulp of 1); within 1 ulp of the exact value on all of f32.
pub fn erf(x: f32) -> f32 {
    let x = f64::from(x);
    let a = x.abs();
    let y = if a < 1.0 {
        let x2 = a * a;
        let sum = ERF_TAYLOR[..16]
            .iter()
            .rev()
            .fold(0.0, |acc, &c| acc * x2 + c);
        a * sum * 2.0 / std::f64::consts::PI.sqrt()
    } else if a < 4.0 {
        let t = 1.0 / (1.0 + 0.5 * a);
        let p = ERFC_FIT.iter().rev().fold(0.0, |acc, &c| acc * t + c);
        1.0 - t * (p - a * a).exp()
    } else if a.is_nan() {
        a
    } else {
        1.0
    };
    (if x < 0.0 { -y } else { y }) as f32
}

/// `e^x` in f32 without a libm call, branch-free so that loops over slices vectorize:
/// `2^n · p(r)` with `n = rne(x · log2 e)`, `r = x - n ln 2` (ln 2 split in two so `r` is
/// exact) and the degree-7 Taylor-like polynomial of Cephes' `expf`; the scale `2^n` is
/// applied as two halves so subnormal results and `n = 128` stay exact. Within 2 ulp of the
/// exact value on all of f32 (tested); `0` below -104, `+inf` above 88.73, NaN for NaN.
#[inline]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Beyond these the result is 0 or inf anyway; clamping keeps n's halves in range.
    let xc = x.clamp(-104.0, 88.8);
    // Round to nearest even by the 1.5 * 2^23 trick (|xc * log2 e| < 2^22): a plain add and
    // subtract, where `round_ties_even` is a libm call without SSE4.1.
    const ROUND: f32 = 12_582_912.0;
    let n = (xc * LOG2E + ROUND) - ROUND;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let p = ((((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2)
        * r
        + 0.166_666_65)
        * r
        + 0.5)
        * r)
        * r
        + r
        + 1.0;
    let n = n as i32;
    let half = n >> 1;
    let scale = |e: i32| f32::from_bits(((e + 127) as u32) << 23);
    let y = p * scale(half) * scale(n - half);
    // NaN passes through `clamp` and the arithmetic; above the range the product is inf.
    if x > 88.8 { f32::INFINITY } else { y }
}

/// `x` for `x >= 0`, else `alpha * x` (ONNX `LeakyRelu`).
#[inline]
pub fn leaky_relu(x: f32, alpha: f32) -> f32 {
    if x >= 0.0 { x } else { alpha * x }
}

/// `0.5 x (1 + erf(x / sqrt 2))` (ONNX `Gelu`, `approximate = "none"`), in f32 steps.
#[inline]
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
    fn erf_matches_the_series_to_one_ulp_and_is_one_beyond_four() {
        let mut differ = 0;
        for i in -40_000..40_000 {
            let x = i as f32 * 1e-4;
            let (got, want) = (erf(x), erf_series(x));
            let ulps = (got.to_bits() as i64 - want.to_bits() as i64).abs();
            assert!(ulps <= 1, "erf({x}) = {got}, series {want}");
            differ += usize::from(ulps > 0);
        }
        // The erfc fit on [1, 4) rounds to the neighbour now and then (about 2 %).
        assert!(differ < 4000, "{differ} of 80000 values differ by one ulp");
        assert_eq!(erf(4.0), 1.0);
        assert_eq!(erf(-7.5), -1.0);
        assert!(erf(f32::NAN).is_nan());
        assert_eq!(erf(f32::INFINITY), 1.0);
    }

    #[test]
    fn exp_is_within_two_ulp_everywhere() {
        let mut worst = 0;
        let mut x = -110.0f32;
        while x < 90.0 {
            let want = f64::from(x).exp() as f32;
            let got = exp(x);
            let ulps = (got.to_bits() as i64 - want.to_bits() as i64).abs();
            assert!(ulps <= 2, "exp({x}) = {got}, want {want}");
            worst = worst.max(ulps);
            x += 1.3e-3;
        }
        for (x, want) in [(0.0, 1.0), (-200.0, 0.0), (100.0, f32::INFINITY)] {
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
