//! Scalar f32 functions shared by the kernels' epilogues and the frontend's fp32 ops, so that
//! an activation fused into an int8 GEMM and the same activation run alone give the same bits.
//!
//! ```
//! use q8_kernels::math::{erf, gelu_erf};
//! assert_eq!(erf(0.0), 0.0);
//! assert!((gelu_erf(1.0) - 0.841_344_7).abs() < 1e-6);
//! ```

/// Taylor coefficients of `erf(x) * sqrt(pi) / 2 / x` in `x^2`: `(-1)^n / (n! (2n + 1))`.
const ERF_TAYLOR: [f64; 36] = {
    let mut c = [0f64; 36];
    let mut fact = 1f64;
    let mut n = 0;
    while n < 36 {
        if n > 0 {
            fact *= n as f64;
        }
        let sign = if n % 2 == 0 { 1.0 } else { -1.0 };
        c[n] = sign / (fact * (2 * n + 1) as f64);
        n += 1;
    }
    c
};

/// The error function, computed in f64: its Taylor series for `|x| < 2` (Horner in `x^2`
/// with as many terms as the range needs for 1e-17), the continued fraction of `erfc`
/// (modified Lentz) on `[2, 4)`, and exactly `±1` beyond (erfc(4) < half an f32 ulp of 1);
/// accurate to f32 rounding on all of f32.
pub fn erf(x: f32) -> f32 {
    let x = f64::from(x);
    let a = x.abs();
    let y = if a < 2.0 {
        let terms = if a < 0.5 {
            13
        } else if a < 1.0 {
            19
        } else {
            ERF_TAYLOR.len()
        };
        let x2 = a * a;
        let sum = ERF_TAYLOR[..terms]
            .iter()
            .rev()
            .fold(0.0, |acc, &c| acc * x2 + c);
        a * sum * 2.0 / std::f64::consts::PI.sqrt()
    } else if a < 4.0 {
        // Continued fraction for erfc (Lentz), accurate for |x| >= 2.
        let mut f = a;
        let mut c = a;
        let mut d = 0.0;
        for n in 1..60 {
            let an = n as f64 / 2.0;
            d = a + an * d;
            d = 1.0 / d;
            c = a + an / c;
            let delta = c * d;
            f *= delta;
            if (delta - 1.0).abs() < 1e-16 {
                break;
            }
        }
        1.0 - (-a * a).exp() / (f * std::f64::consts::PI.sqrt())
    } else if a.is_nan() {
        a
    } else {
        1.0
    };
    (if x < 0.0 { -y } else { y }) as f32
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
        for i in -20_000..20_000 {
            let x = i as f32 * 1e-4;
            let (got, want) = (erf(x), erf_series(x));
            let ulps = (got.to_bits() as i64 - want.to_bits() as i64).abs();
            assert!(ulps <= 1, "erf({x}) = {got}, series {want}");
            differ += usize::from(ulps > 0);
        }
        assert!(differ < 40, "{differ} of 40000 values differ by one ulp");
        assert_eq!(erf(4.0), 1.0);
        assert_eq!(erf(-7.5), -1.0);
        assert!(erf(f32::NAN).is_nan());
        assert_eq!(erf(f32::INFINITY), 1.0);
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
