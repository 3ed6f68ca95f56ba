//! Element-wise unary f32 ops: activations (HardSigmoid, LeakyRelu, Elu, Selu, Softplus,
//! Tanh, Gelu) and math (Exp, Log, Sqrt, Neg, Abs, Reciprocal, Floor, Ceil, Erf).

use q8_kernels::{math, vector};

use super::{OpDef, OpSpec, concrete, def, f32_input, one_f32};
use crate::error::{Error, Result};
use crate::ir::{Op, Tensor, ValueId, ValueType};
use crate::onnx::ImportCx;
use crate::ops::{AttrValue, Exported};

/// The function an [`Unary`] op applies, with its attributes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryKind {
    /// `clamp(alpha * x + beta, 0, 1)`.
    HardSigmoid {
        /// Slope.
        alpha: f32,
        /// Offset.
        beta: f32,
    },
    /// `x` for `x >= 0`, else `alpha * x`.
    LeakyRelu {
        /// Negative slope.
        alpha: f32,
    },
    /// `x` for `x > 0`, else `alpha * (exp(x) - 1)`.
    Elu {
        /// Negative scale.
        alpha: f32,
    },
    /// `gamma * (x` for `x > 0`, else `alpha * (exp(x) - 1))`.
    Selu {
        /// Negative scale.
        alpha: f32,
        /// Output scale.
        gamma: f32,
    },
    /// `ln(1 + exp(x))`.
    Softplus,
    /// Hyperbolic tangent.
    Tanh,
    /// `0.5 x (1 + erf(x / sqrt 2))`, or its tanh approximation.
    Gelu {
        /// `approximate = "tanh"`.
        tanh: bool,
    },
    /// `e^x`.
    Exp,
    /// Natural logarithm.
    Log,
    /// Square root.
    Sqrt,
    /// `-x`.
    Neg,
    /// `|x|`.
    Abs,
    /// `1 / x`.
    Reciprocal,
    /// Round down.
    Floor,
    /// Round up.
    Ceil,
    /// The error function.
    Erf,
}

impl UnaryKind {
    /// Applies the function to one element.
    pub fn apply(self, x: f32) -> f32 {
        match self {
            UnaryKind::HardSigmoid { alpha, beta } => (alpha * x + beta).clamp(0.0, 1.0),
            UnaryKind::LeakyRelu { alpha } => math::leaky_relu(x, alpha),
            UnaryKind::Elu { alpha } => elu(x, alpha),
            UnaryKind::Selu { alpha, gamma } => gamma * elu(x, alpha),
            UnaryKind::Softplus => {
                // ln(1 + e^x) without overflow for large x.
                if x > 20.0 { x } else { x.exp().ln_1p() }
            }
            UnaryKind::Tanh => x.tanh(),
            UnaryKind::Gelu { tanh: false } => math::gelu_erf(x),
            UnaryKind::Gelu { tanh: true } => math::gelu_tanh(x),
            UnaryKind::Exp => x.exp(),
            UnaryKind::Log => x.ln(),
            UnaryKind::Sqrt => x.sqrt(),
            UnaryKind::Neg => -x,
            UnaryKind::Abs => x.abs(),
            UnaryKind::Reciprocal => 1.0 / x,
            UnaryKind::Floor => x.floor(),
            UnaryKind::Ceil => x.ceil(),
            UnaryKind::Erf => math::erf(x),
        }
    }

    /// [`UnaryKind::apply`] over a slice. The branch-free functions run through
    /// [`q8_kernels::vector::map`] (vectorized, same bits); the others (libm calls, branches)
    /// element by element.
    ///
    /// # Errors
    /// `x` and `y` differ in length.
    fn map(self, x: &[f32], y: &mut [f32]) -> q8_kernels::Result<()> {
        match self {
            UnaryKind::Erf => math_map(vector::MathFn::Erf, x, y),
            UnaryKind::Gelu { tanh: false } => math_map(vector::MathFn::GeluErf, x, y),
            UnaryKind::Neg => vector::map(x, y, |v| -v),
            UnaryKind::Abs => vector::map(x, y, f32::abs),
            UnaryKind::Sqrt => vector::map(x, y, f32::sqrt),
            UnaryKind::Reciprocal => vector::map(x, y, |v| 1.0 / v),
            UnaryKind::HardSigmoid { alpha, beta } => {
                vector::map(x, y, |v| (alpha * v + beta).clamp(0.0, 1.0))
            }
            UnaryKind::LeakyRelu { alpha } => vector::map(x, y, |v| math::leaky_relu(v, alpha)),
            kind => {
                y.iter_mut().zip(x).for_each(|(o, &v)| *o = kind.apply(v));
                Ok(())
            }
        }
    }

    fn name(self) -> &'static str {
        match self {
            UnaryKind::HardSigmoid { .. } => "HardSigmoid",
            UnaryKind::LeakyRelu { .. } => "LeakyRelu",
            UnaryKind::Elu { .. } => "Elu",
            UnaryKind::Selu { .. } => "Selu",
            UnaryKind::Softplus => "Softplus",
            UnaryKind::Tanh => "Tanh",
            UnaryKind::Gelu { .. } => "Gelu",
            UnaryKind::Exp => "Exp",
            UnaryKind::Log => "Log",
            UnaryKind::Sqrt => "Sqrt",
            UnaryKind::Neg => "Neg",
            UnaryKind::Abs => "Abs",
            UnaryKind::Reciprocal => "Reciprocal",
            UnaryKind::Floor => "Floor",
            UnaryKind::Ceil => "Ceil",
            UnaryKind::Erf => "Erf",
        }
    }

    fn attrs(self) -> Vec<(&'static str, AttrValue)> {
        use AttrValue::{Float, Str};
        match self {
            UnaryKind::HardSigmoid { alpha, beta } => {
                vec![("alpha", Float(alpha)), ("beta", Float(beta))]
            }
            UnaryKind::LeakyRelu { alpha } | UnaryKind::Elu { alpha } => {
                vec![("alpha", Float(alpha))]
            }
            UnaryKind::Selu { alpha, gamma } => {
                vec![("alpha", Float(alpha)), ("gamma", Float(gamma))]
            }
            UnaryKind::Gelu { tanh } => {
                vec![(
                    "approximate",
                    Str(if tanh { "tanh" } else { "none" }.into()),
                )]
            }
            _ => vec![],
        }
    }
}

fn elu(x: f32, alpha: f32) -> f32 {
    if x > 0.0 { x } else { alpha * x.exp_m1() }
}

/// An element-wise unary f32 op.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Unary(pub UnaryKind);

impl OpDef for Unary {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn infer(&self, node: &str, inputs: &[&ValueType]) -> Result<Vec<ValueType>> {
        Ok(vec![one_f32(self, node, inputs)?.clone()])
    }

    fn eval(&self, node: &str, inputs: &[&Tensor], outputs: &[ValueType]) -> Result<Vec<Tensor>> {
        let x = f32_input(self, node, inputs, 0)?;
        let shape = concrete(self, node, &outputs[0])?;
        let mut y = vec![0.0f32; x.len()];
        self.0
            .map(x, &mut y)
            .map_err(|e| Error::node(self.name(), node, e.to_string()))?;
        Ok(vec![Tensor::from_f32(shape, y)?])
    }

    fn export(&self, _node: &str) -> Result<Exported> {
        Ok(Exported {
            attrs: self.0.attrs(),
            operands: vec![],
        })
    }
}

fn import(cx: &ImportCx<'_>) -> Result<(Op, Vec<ValueId>)> {
    let a = cx.attrs();
    let finite = |key: &str, default: f32| -> Result<f32> {
        let v = a.float(key, default);
        if v.is_finite() {
            Ok(v)
        } else {
            Err(cx.err(format!("attribute {key} = {v} must be finite")))
        }
    };
    let kind = match cx.op_type() {
        "HardSigmoid" => UnaryKind::HardSigmoid {
            alpha: finite("alpha", 0.2)?,
            beta: finite("beta", 0.5)?,
        },
        "LeakyRelu" => UnaryKind::LeakyRelu {
            alpha: finite("alpha", 0.01)?,
        },
        "Elu" => UnaryKind::Elu {
            alpha: finite("alpha", 1.0)?,
        },
        "Selu" => UnaryKind::Selu {
            alpha: finite("alpha", 1.673_263_2)?,
            gamma: finite("gamma", 1.050_701)?,
        },
        "Softplus" => UnaryKind::Softplus,
        "Tanh" => UnaryKind::Tanh,
        "Gelu" => match a.string("approximate", "none").as_str() {
            "none" => UnaryKind::Gelu { tanh: false },
            "tanh" => UnaryKind::Gelu { tanh: true },
            other => {
                return Err(cx.err(format!("approximate '{other}' is not one of none, tanh")));
            }
        },
        "Exp" => UnaryKind::Exp,
        "Log" => UnaryKind::Log,
        "Sqrt" => UnaryKind::Sqrt,
        "Neg" => UnaryKind::Neg,
        "Abs" => UnaryKind::Abs,
        "Reciprocal" => UnaryKind::Reciprocal,
        "Floor" => UnaryKind::Floor,
        "Ceil" => UnaryKind::Ceil,
        "Erf" => UnaryKind::Erf,
        other => return Err(cx.err(format!("{other} is not an element-wise unary op"))),
    };
    Ok((def(Unary(kind)), vec![cx.input(0)?]))
}

/// The family's registry entries.
pub(super) const SPECS: &[OpSpec] = &[
    OpSpec::new("HardSigmoid", 6, import),
    OpSpec::new("LeakyRelu", 6, import),
    OpSpec::new("Elu", 6, import),
    OpSpec::new("Selu", 6, import),
    OpSpec::new("Softplus", 1, import),
    OpSpec::new("Tanh", 6, import),
    OpSpec::new("Gelu", 20, import),
    OpSpec::new("Exp", 6, import),
    OpSpec::new("Log", 6, import),
    OpSpec::new("Sqrt", 6, import),
    OpSpec::new("Neg", 6, import),
    OpSpec::new("Abs", 6, import),
    OpSpec::new("Reciprocal", 6, import),
    OpSpec::new("Floor", 6, import),
    OpSpec::new("Ceil", 6, import),
    OpSpec::new("Erf", 9, import),
];

/// `y = f(x)` for a [`vector::MathFn`]: a checked vectorized copy, then the function in place.
fn math_map(f: vector::MathFn, x: &[f32], y: &mut [f32]) -> q8_kernels::Result<()> {
    vector::map(x, y, |v| v)?;
    vector::map_math(f, y);
    Ok(())
}
