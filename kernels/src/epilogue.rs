//! The post-accumulation steps of `int8-math.md`, as data, and their scalar definition.
//!
//! Order (each a separate IEEE f32 operation, no FMA contraction):
//! `y = acc * scale[n]`, `+ bias[n]`, `+ (r - zr) * sr`, activation, then the output
//! conversion (u8 requantize, f32 as is, or the raw i32 accumulator).
//!
//! ```
//! use q8_kernels::epilogue::{epilogue_f32, Activation};
//! use q8_kernels::quant::QParams;
//! let res = QParams::new(0.5, 3).unwrap();
//! // acc 10 * 0.25 + bias 1.0 + (5 - 3) * 0.5 = 4.5, relu keeps it.
//! assert_eq!(epilogue_f32(10, 0.25, Some(1.0), Some((5, res)), Activation::Relu), 4.5);
//! ```

use crate::error::{Error, Result};
use crate::quant::QParams;

/// Element-wise activation fused after bias and residual.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Activation {
    /// Identity.
    #[default]
    None,
    /// max(y, 0).
    Relu,
    /// min(max(y, min), max): hardtanh; ReLU6 is `Clamp { min: 0.0, max: 6.0 }`. Real units.
    Clamp {
        /// Lower bound (real units).
        min: f32,
        /// Upper bound (real units).
        max: f32,
    },
    /// `y` for `y >= 0`, else `alpha * y` ([`crate::math::leaky_relu`]).
    LeakyRelu {
        /// Negative slope.
        alpha: f32,
    },
    /// `tanh(y)` (`f32::tanh`).
    Tanh,
    /// GELU: [`crate::math::gelu_erf`], or [`crate::math::gelu_tanh`] when `tanh`.
    Gelu {
        /// The tanh approximation instead of the erf form.
        tanh: bool,
    },
}

impl Activation {
    /// Checks that clamp bounds are ordered and not NaN, and a leaky slope is finite.
    ///
    /// # Errors
    /// [`Error::Shape`] naming the bad bounds or slope.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Activation::Clamp { min, max } if min.partial_cmp(&max).is_none_or(|o| o.is_gt()) => {
                Err(Error::Shape(format!(
                    "activation clamp bounds [{min}, {max}] must be ordered and not NaN"
                )))
            }
            Activation::LeakyRelu { alpha } if !alpha.is_finite() => Err(Error::Shape(format!(
                "activation leaky relu slope {alpha} must be finite"
            ))),
            _ => Ok(()),
        }
    }

    /// True for the activations every tier applies with the scalar [`Activation::apply`] on
    /// the f32 pre-activation (no vector form: that keeps the tiers bit-identical).
    #[inline]
    pub fn is_scalar_only(&self) -> bool {
        matches!(
            self,
            Activation::LeakyRelu { .. } | Activation::Tanh | Activation::Gelu { .. }
        )
    }

    /// Applies the activation to one value.
    #[inline]
    pub fn apply(self, y: f32) -> f32 {
        match self {
            Activation::None => y,
            Activation::Relu => y.max(0.0),
            Activation::Clamp { min, max } => y.max(min).min(max),
            Activation::LeakyRelu { alpha } => crate::math::leaky_relu(y, alpha),
            Activation::Tanh => y.tanh(),
            Activation::Gelu { tanh: false } => crate::math::gelu_erf(y),
            Activation::Gelu { tanh: true } => crate::math::gelu_tanh(y),
        }
    }
}

/// The f32 result of the epilogue for one accumulator, before the output conversion.
///
/// `scale` is the combined `s_a * s_w[n]`; `residual` is the u8 code of the summed tensor
/// at the same position with its qparams.
#[inline]
pub fn epilogue_f32(
    acc: i32,
    scale: f32,
    bias: Option<f32>,
    residual: Option<(u8, QParams)>,
    activation: Activation,
) -> f32 {
    let mut y = acc as f32 * scale;
    if let Some(b) = bias {
        y += b;
    }
    if let Some((r, rq)) = residual {
        y += (r as i32 - rq.zero_point) as f32 * rq.scale;
    }
    activation.apply(y)
}
