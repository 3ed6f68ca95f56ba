//! Scalar f32 functions shared by the kernels' epilogues and the frontend's fp32 ops, so that
//! an activation fused into an int8 GEMM and the same activation run alone give the same bits.
//!
//! ```
//! use q8_kernels::math::{erf, gelu_erf};
//! assert_eq!(erf(0.0), 0.0);
//! assert!((gelu_erf(1.0) - 0.841_344_7).abs() < 1e-6);
//! ```

/// The error function, computed in f64: its Maclaurin series for `|x| < 2`, the continued
/// fraction of `erfc` (modified Lentz) beyond; accurate to f32 rounding on all of f32.
pub fn erf(x: f32) -> f32 {
    let x = f64::from(x);
    let a = x.abs();
    let y = if a < 2.0 {
        // Maclaurin series: converges fast for |x| < 2 (40 terms < 1e-16).
        let mut term = a;
        let mut sum = a;
        let x2 = a * a;
        for n in 1..60 {
            term *= -x2 / n as f64;
            let add = term / (2 * n + 1) as f64;
            sum += add;
            if add.abs() < 1e-17 {
                break;
            }
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
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

    #[test]
    fn gelu_forms_agree_roughly() {
        for x in [-3.0f32, -1.0, -0.1, 0.0, 0.3, 1.0, 4.0] {
            assert!((gelu_erf(x) - gelu_tanh(x)).abs() < 2e-3, "x = {x}");
        }
        assert_eq!(leaky_relu(-2.0, 0.25), -0.5);
        assert_eq!(leaky_relu(3.0, 0.25), 3.0);
    }
}
