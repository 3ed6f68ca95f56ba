//! Quantized ranges and the scale / zero-point formulas of PyTorch's observers
//! (`_calculate_qparams`), computed in f32 exactly as torch does.
//!
//! ```
//! use q8_frontend::quant::{compute_qparams, QuantRange, Symmetry};
//! let eps = 2f32.powi(-12);
//! // Activations: u8 affine, the range always includes 0.
//! let a = compute_qparams(-1.0, 3.0, QuantRange::U8, Symmetry::Affine, eps);
//! assert_eq!((a.scale, a.zero_point), (4.0 / 255.0, 64)); // 0 - rne(-1 / (4/255)) = 64 (63.75)
//! // Weights: s8 symmetric, amax / 127.5 (not 127), zero point 0.
//! let w = compute_qparams(-0.51, 0.3, QuantRange::I8, Symmetry::Symmetric, eps);
//! assert_eq!((w.scale, w.zero_point), (0.51 / 127.5, 0));
//! // Never observed: (1.0, 0).
//! let n = compute_qparams(f32::INFINITY, f32::NEG_INFINITY, QuantRange::U8, Symmetry::Affine, eps);
//! assert_eq!((n.scale, n.zero_point), (1.0, 0));
//! ```

use super::error::{QuantError, Result};

/// Integer type of a quantized tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QDType {
    /// `u8`, codes 0..=255 (activations).
    U8,
    /// `i8`, codes -128..=127 (weights).
    I8,
}

impl QDType {
    /// Smallest and largest code of the type.
    pub fn bounds(self) -> (i32, i32) {
        match self {
            QDType::U8 => (0, 255),
            QDType::I8 => (-128, 127),
        }
    }
}

/// The integer codes a tensor may use: a sub-range `[qmin, qmax]` of its dtype containing 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuantRange {
    dtype: QDType,
    qmin: i32,
    qmax: i32,
}

impl QuantRange {
    /// u8 activations, the X86 default: [0, 255].
    pub const U8: QuantRange = QuantRange {
        dtype: QDType::U8,
        qmin: 0,
        qmax: 255,
    };
    /// u8 activations with `reduce_range` (CPUs without VNNI): [0, 127].
    pub const U8_REDUCED: QuantRange = QuantRange {
        dtype: QDType::U8,
        qmin: 0,
        qmax: 127,
    };
    /// s8 weights, the X86 default: [-128, 127].
    pub const I8: QuantRange = QuantRange {
        dtype: QDType::I8,
        qmin: -128,
        qmax: 127,
    };

    /// A custom range.
    ///
    /// # Errors
    /// [`QuantError::Config`] unless `dtype_min <= qmin <= 0 <= qmax <= dtype_max` and
    /// `qmin < qmax` (PyTorch's `validate_qmin_qmax`).
    pub fn new(dtype: QDType, qmin: i32, qmax: i32) -> Result<QuantRange> {
        let (lo, hi) = dtype.bounds();
        if !(lo <= qmin && qmin <= 0 && 0 <= qmax && qmax <= hi && qmin < qmax) {
            return Err(QuantError::Config(format!(
                "quantized range [{qmin}, {qmax}] must contain 0, be non-empty and fit {dtype:?} [{lo}, {hi}]"
            )));
        }
        Ok(QuantRange { dtype, qmin, qmax })
    }

    /// Integer type.
    pub fn dtype(self) -> QDType {
        self.dtype
    }

    /// Smallest code.
    pub fn qmin(self) -> i32 {
        self.qmin
    }

    /// Largest code.
    pub fn qmax(self) -> i32 {
        self.qmax
    }
}

/// How the real range maps onto the codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Symmetry {
    /// `[min, max]` (extended to include 0) maps onto `[qmin, qmax]`; any zero point.
    Affine,
    /// `[-amax, amax]` maps onto the codes; zero point 0 for i8 (the midpoint for u8).
    Symmetric,
}

/// Per-tensor quantization parameters: real = (q - zero_point) * scale.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TensorQParams {
    /// Real value of one quantum; > 0.
    pub scale: f32,
    /// Code of real 0, within `range`.
    pub zero_point: i32,
    /// Codes the tensor uses.
    pub range: QuantRange,
}

impl TensorQParams {
    /// The kernels' u8 parameter type.
    ///
    /// # Errors
    /// [`QuantError::Config`] if the range is not u8 or the kernels reject the values.
    pub fn to_kernel_u8(&self) -> Result<q8_kernels::quant::QParams> {
        if self.range.dtype != QDType::U8 {
            return Err(QuantError::Config(format!(
                "kernel activations are u8, these qparams are {:?}",
                self.range.dtype
            )));
        }
        q8_kernels::quant::QParams::new(self.scale, self.zero_point)
            .map_err(|e| QuantError::Config(e.to_string()))
    }
}

/// Per-channel parameters along one axis (weights: axis 0, the output channel).
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelQParams {
    /// One scale per channel.
    pub scales: Vec<f32>,
    /// One zero point per channel (0 for symmetric i8).
    pub zero_points: Vec<i32>,
    /// Axis the channels run along.
    pub axis: usize,
    /// Codes the tensor uses.
    pub range: QuantRange,
}

/// PyTorch's `_calculate_qparams` for one (min, max) pair, in f32.
///
/// - `min = +inf, max = -inf` (never observed) gives scale 1.0, zero point 0.
/// - The range is extended to include 0: `min_neg = min(min, 0)`, `max_pos = max(max, 0)`.
/// - Affine: `scale = max((max_pos - min_neg) / (qmax - qmin), eps)`,
///   `zero_point = clamp(qmin - rne(min_neg / scale), qmin, qmax)`.
/// - Symmetric: `scale = max(max(-min_neg, max_pos) / ((qmax - qmin) / 2), eps)`; zero point 0
///   for i8, `(qmin + qmax) / 2` rounded down for u8 (the custom-range rule; X86 configs always
///   pass an explicit range).
///
/// Callers pass `min <= max` (observers guarantee it); reversed bounds are treated as the range
/// they span.
pub fn compute_qparams(
    min: f32,
    max: f32,
    range: QuantRange,
    symmetry: Symmetry,
    eps: f32,
) -> TensorQParams {
    if min == f32::INFINITY && max == f32::NEG_INFINITY {
        let zero_point = 0.clamp(range.qmin, range.qmax);
        return TensorQParams {
            scale: 1.0,
            zero_point,
            range,
        };
    }
    let (min, max) = if min <= max { (min, max) } else { (max, min) };
    let min_neg = min.min(0.0);
    let max_pos = max.max(0.0);
    let (qmin, qmax) = (range.qmin, range.qmax);
    match symmetry {
        Symmetry::Symmetric => {
            let amax = (-min_neg).max(max_pos);
            let half_levels = ((qmax - qmin) as f64 / 2.0) as f32;
            let scale = (amax / half_levels).max(eps);
            let zero_point = match range.dtype {
                QDType::I8 => 0,
                QDType::U8 => (qmin + qmax).div_euclid(2),
            };
            TensorQParams {
                scale,
                zero_point,
                range,
            }
        }
        Symmetry::Affine => {
            let scale = ((max_pos - min_neg) / (qmax - qmin) as f32).max(eps);
            let shift = (min_neg / scale).round_ties_even() as i64;
            let zero_point = (i64::from(qmin) - shift).clamp(i64::from(qmin), i64::from(qmax));
            TensorQParams {
                scale,
                // In range by the clamp.
                zero_point: zero_point as i32,
                range,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPS: f32 = 1.0 / 4096.0;

    #[test]
    fn ranges_validate() {
        assert!(QuantRange::new(QDType::U8, 0, 127).is_ok());
        assert!(QuantRange::new(QDType::U8, 1, 127).is_err());
        assert!(QuantRange::new(QDType::I8, -128, 128).is_err());
        assert!(QuantRange::new(QDType::I8, 0, 0).is_err());
    }

    #[test]
    fn eps_floors_the_scale_and_zero_range_gives_eps() {
        let q = compute_qparams(0.0, 0.0, QuantRange::U8, Symmetry::Affine, EPS);
        assert_eq!((q.scale, q.zero_point), (EPS, 0));
        let w = compute_qparams(-0.01, 0.01, QuantRange::I8, Symmetry::Symmetric, EPS);
        assert_eq!((w.scale, w.zero_point), (EPS, 0));
    }

    #[test]
    fn negative_only_and_positive_only_ranges() {
        let q = compute_qparams(-3.5, -3.5, QuantRange::U8, Symmetry::Affine, EPS);
        assert_eq!(q.zero_point, 255);
        assert_eq!(q.scale, 3.5 / 255.0);
        let q = compute_qparams(0.5, 3.0, QuantRange::U8_REDUCED, Symmetry::Affine, EPS);
        assert_eq!((q.scale, q.zero_point), (3.0 / 127.0, 0));
    }

    #[test]
    fn zero_point_rounds_half_to_even() {
        // min_neg / scale = -2.5 exactly -> rne = -2 -> zp = 2.
        let q = compute_qparams(-2.5, 252.5, QuantRange::U8, Symmetry::Affine, EPS);
        assert_eq!(q.scale, 1.0);
        assert_eq!(q.zero_point, 2);
    }

    #[test]
    fn u8_symmetric_uses_the_midpoint() {
        let q = compute_qparams(-1.0, 2.0, QuantRange::U8, Symmetry::Symmetric, EPS);
        assert_eq!((q.scale, q.zero_point), (2.0 / 127.5, 127));
    }

    #[test]
    fn kernel_conversion_checks_dtype() {
        let q = compute_qparams(-1.0, 1.0, QuantRange::U8, Symmetry::Affine, EPS);
        assert_eq!(q.to_kernel_u8().unwrap().zero_point, q.zero_point);
        let w = compute_qparams(-1.0, 1.0, QuantRange::I8, Symmetry::Symmetric, EPS);
        assert!(w.to_kernel_u8().is_err());
    }
}
