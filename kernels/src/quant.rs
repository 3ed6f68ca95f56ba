//! Quantization parameters and the scalar quantize / dequantize rules of `int8-math.md`.
//!
//! These functions *are* the numeric contract: every SIMD path reproduces them bit for bit.
//!
//! ```
//! use q8_kernels::quant::{dequantize, quantize, QParams};
//! let qp = QParams::new(0.5, 10).unwrap();
//! assert_eq!(quantize(1.25, qp.inv_scale(), qp.zero_point), 12); // rne(2.5) = 2, + 10
//! assert_eq!(dequantize(12, qp), 1.0);
//! assert_eq!(quantize(f32::NAN, qp.inv_scale(), qp.zero_point), 0);
//! ```

use crate::error::{Error, Result};

/// Per-tensor affine parameters of a u8 tensor: real = (q - zero_point) * scale.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QParams {
    /// Real value of one quantum; finite and > 0.
    pub scale: f32,
    /// The u8 code of real 0, in [0, 255].
    pub zero_point: i32,
}

impl QParams {
    /// Checked constructor.
    ///
    /// # Errors
    /// [`Error::QParams`] when the scale is not finite and positive or the zero point is
    /// outside [0, 255].
    pub fn new(scale: f32, zero_point: i32) -> Result<QParams> {
        let qp = QParams { scale, zero_point };
        qp.validate()?;
        Ok(qp)
    }

    /// Checks the invariants [`QParams::new`] enforces (for values built as literals).
    ///
    /// # Errors
    /// As [`QParams::new`].
    pub fn validate(&self) -> Result<()> {
        if !(self.scale.is_finite() && self.scale > 0.0) {
            return Err(Error::QParams(format!(
                "scale {} must be finite and > 0",
                self.scale
            )));
        }
        if !(0..=255).contains(&self.zero_point) {
            return Err(Error::QParams(format!(
                "zero point {} must be in [0, 255]",
                self.zero_point
            )));
        }
        if !(1.0f32 / self.scale).is_finite() {
            return Err(Error::QParams(format!(
                "scale {} is too small: its inverse overflows f32",
                self.scale
            )));
        }
        Ok(())
    }

    /// `1 / scale`, computed once in f32; quantization multiplies by it (never divides).
    pub fn inv_scale(&self) -> f32 {
        1.0f32 / self.scale
    }
}

/// quantize(x) = clamp(rne(x * inv_scale) + zero_point, 0, 255).
///
/// Saturating for any input; NaN maps to 0 (what clamping a NaN against 0 first gives, and
/// what the SIMD paths produce with `max(v, lo)` ordered NaN-to-`lo`).
#[inline]
pub fn quantize(x: f32, inv_scale: f32, zero_point: i32) -> u8 {
    let shifted = (x * inv_scale).round_ties_even() + zero_point as f32;
    // `clamp` passes NaN through and the cast then maps it to 0.
    shifted.clamp(0.0, 255.0) as u8
}

/// dequantize(q) = ((q - zero_point) as f32) * scale.
#[inline]
pub fn dequantize(q: u8, qp: QParams) -> f32 {
    (q as i32 - qp.zero_point) as f32 * qp.scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_half_to_even_and_saturates() {
        assert_eq!(quantize(0.5, 1.0, 0), 0);
        assert_eq!(quantize(1.5, 1.0, 0), 2);
        assert_eq!(quantize(2.5, 1.0, 0), 2);
        assert_eq!(quantize(-3.0, 1.0, 2), 0);
        assert_eq!(quantize(1e30, 1.0, 0), 255);
        assert_eq!(quantize(f32::INFINITY, 1.0, 0), 255);
        assert_eq!(quantize(f32::NEG_INFINITY, 1.0, 255), 0);
        assert_eq!(quantize(f32::NAN, 1.0, 128), 0);
    }

    #[test]
    fn rejects_bad_params() {
        assert!(QParams::new(0.0, 0).is_err());
        assert!(QParams::new(f32::NAN, 0).is_err());
        assert!(QParams::new(-1.0, 0).is_err());
        assert!(QParams::new(1.0, 256).is_err());
        assert!(QParams::new(1e-40, 0).is_err());
        assert!(QParams::new(0.1, 255).is_ok());
    }
}
