//! Quantization configuration: what to quantize and how, mirroring
//! `get_default_x86_inductor_quantization_config()` and the quantizer's
//! `set_global` / `set_module_type_qconfig` / `set_module_name_qconfig` API.
//!
//! Pure data plus validation; the annotator reads it through [`QuantConfig::resolve`].
//! Precedence, as in PyTorch's `X86InductorQuantizer`: node name > op type > global.
//!
//! ```
//! use q8_frontend::quant::{ConfigSource, ObserverKind, OpQuantSpec, QuantConfig, Setting};
//! let mut config = QuantConfig::x86_default();
//! config
//!     .set_op_type("MatMul", Setting::Quantize(OpQuantSpec::x86_default().with_observer(ObserverKind::Mse)))
//!     .set_node("/fc/Gemm", Setting::Fp32);
//! config.validate().unwrap();
//! let (setting, source) = config.resolve("/fc/Gemm", "Gemm");
//! assert_eq!((setting, source), (&Setting::Fp32, ConfigSource::NodeName));
//! let (setting, source) = config.resolve("/layer1/conv/Conv", "Conv");
//! assert_eq!(source, ConfigSource::Global);
//! assert!(matches!(setting, Setting::Quantize(spec) if spec.activation.observer == ObserverKind::Histogram));
//! ```

use std::collections::BTreeMap;

use super::error::{QuantError, Result};
use super::minmax::PerChannelMinMaxObserver;
use super::observer::{Observer, ObserverKind, dynamic_qparams};
use super::qparams::{ChannelQParams, QDType, QuantRange, Symmetry, TensorQParams};

/// The X86 recipe's `eps`, 2^-12, the floor of every scale (activations and weights).
pub const X86_EPS: f32 = 1.0 / 4096.0;

/// ONNX op types a per-op-type setting may name (the ops the X86 recipe can quantize).
pub const QUANTIZABLE_OP_TYPES: &[&str] = &[
    "Conv",
    "Gemm",
    "MatMul",
    "Mul",
    "Add",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "Flatten",
    "Reshape",
    "Concat",
];

/// How activations (inputs/outputs of quantized patterns) are quantized: per-tensor affine.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ActivationSpec {
    /// Codes: u8 [0, 255], or [0, 127] with `reduce_range`.
    pub range: QuantRange,
    /// Statistic that picks the range (static quantization).
    pub observer: ObserverKind,
    /// Smallest scale.
    pub eps: f32,
}

impl ActivationSpec {
    /// A fresh observer for one activation tensor.
    ///
    /// # Errors
    /// [`QuantError::Config`] for invalid observer parameters.
    pub fn build_observer(&self) -> Result<Box<dyn Observer>> {
        self.observer.build(self.range, Symmetry::Affine, self.eps)
    }

    /// Per-call qparams for dynamic quantization (min/max of this call's tensor).
    ///
    /// # Errors
    /// [`QuantError::NonFinite`] for NaN/inf.
    pub fn dynamic_qparams(&self, values: &[f32]) -> Result<TensorQParams> {
        dynamic_qparams(values, self.range, self.eps)
    }
}

/// Granularity of the (always symmetric) weight scales.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightGranularity {
    /// One scale per index of `axis` (0: conv `[OC, IC, KH, KW]` / linear `[OUT, IN]`).
    PerChannel {
        /// Channel axis.
        axis: usize,
    },
    /// One scale for the whole tensor.
    PerTensor,
}

/// How weights are quantized: symmetric with zero point 0, min/max observed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WeightSpec {
    /// Codes: s8 [-128, 127].
    pub range: QuantRange,
    /// Per channel (default, axis 0) or per tensor.
    pub granularity: WeightGranularity,
    /// Smallest scale.
    pub eps: f32,
}

impl WeightSpec {
    /// The weight's qparams (`PerChannelMinMaxObserver`, symmetric): scale per channel
    /// `max(amax / ((qmax - qmin) / 2), eps)`, zero point 0. Per-tensor returns one channel.
    ///
    /// ```
    /// use q8_frontend::quant::OpQuantSpec;
    /// let w = [0.5f32, -1.0, 0.25, 0.0];
    /// let q = OpQuantSpec::x86_default().weight.qparams(&w, &[2, 2]).unwrap();
    /// assert_eq!(q.scales, vec![1.0 / 127.5, 0.25 / 127.5]);
    /// ```
    ///
    /// # Errors
    /// [`QuantError::Shape`] if `values` and `shape` disagree or the axis is missing,
    /// [`QuantError::NonFinite`] for NaN/inf, [`QuantError::NotObserved`] for an empty weight.
    pub fn qparams(&self, values: &[f32], shape: &[usize]) -> Result<ChannelQParams> {
        let (axis, shape) = match self.granularity {
            WeightGranularity::PerChannel { axis } => (axis, shape.to_vec()),
            WeightGranularity::PerTensor => (0, vec![1, values.len()]),
        };
        let mut obs =
            PerChannelMinMaxObserver::new(axis, self.range, Symmetry::Symmetric, self.eps);
        obs.observe(values, &shape)?;
        obs.qparams()
    }
}

/// Everything about quantizing one node (pattern).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OpQuantSpec {
    /// Activation quantization.
    pub activation: ActivationSpec,
    /// Weight quantization (conv / linear).
    pub weight: WeightSpec,
    /// Dynamic quantization: activation qparams are computed per call from the tensor itself
    /// (ONNX `DynamicQuantizeLinear`, [`crate::ops::dynamic_qparams`]: u8 [0, 255] over the
    /// range extended to 0) instead of by an observer. Applies to linear layers (Gemm /
    /// MatMul with a constant weight); other patterns under a dynamic setting stay fp32. The
    /// observer kind and the activation range are then unused.
    pub dynamic: bool,
}

impl OpQuantSpec {
    /// The X86 recipe's default: u8 [0, 255] affine activations with the histogram observer,
    /// s8 [-128, 127] symmetric per-channel (axis 0) weights, eps 2^-12, static. Bias stays f32.
    pub fn x86_default() -> OpQuantSpec {
        OpQuantSpec {
            activation: ActivationSpec {
                range: QuantRange::U8,
                observer: ObserverKind::Histogram,
                eps: X86_EPS,
            },
            weight: WeightSpec {
                range: QuantRange::I8,
                granularity: WeightGranularity::PerChannel { axis: 0 },
                eps: X86_EPS,
            },
            dynamic: false,
        }
    }

    /// Activations in [0, 127] (for CPUs without VNNI) when `on`, [0, 255] otherwise.
    pub fn with_reduce_range(mut self, on: bool) -> OpQuantSpec {
        self.activation.range = if on {
            QuantRange::U8_REDUCED
        } else {
            QuantRange::U8
        };
        self
    }

    /// Another floor for the weight scales (the X86 recipe's is 2^-12, which leaves channels
    /// with `max |w| < 127.5 * 2^-12 ~ 0.031` fewer than 255 levels; `f32::EPSILON` is
    /// torch's observer default). Checked by [`OpQuantSpec::validate`].
    ///
    /// ```
    /// use q8_frontend::quant::OpQuantSpec;
    /// let spec = OpQuantSpec::x86_default().with_weight_eps(f32::EPSILON);
    /// assert_eq!(spec.weight.eps, f32::EPSILON);
    /// ```
    pub fn with_weight_eps(mut self, eps: f32) -> OpQuantSpec {
        self.weight.eps = eps;
        self
    }

    /// Another activation observer.
    pub fn with_observer(mut self, observer: ObserverKind) -> OpQuantSpec {
        self.activation.observer = observer;
        self
    }

    /// Dynamic (per-call) activation qparams when `on`.
    pub fn with_dynamic(mut self, on: bool) -> OpQuantSpec {
        self.dynamic = on;
        self
    }

    /// Checks dtypes, ranges, eps and observer parameters.
    ///
    /// # Errors
    /// [`QuantError::Config`] naming the bad field.
    pub fn validate(&self) -> Result<()> {
        let a = &self.activation;
        if a.range.dtype() != QDType::U8 {
            return Err(QuantError::Config(
                "activations must be u8 (the kernels take u8 activations)".into(),
            ));
        }
        if self.weight.range.dtype() != QDType::I8 {
            return Err(QuantError::Config(
                "weights must be s8 (symmetric, zero point 0)".into(),
            ));
        }
        for (what, eps) in [("activation", a.eps), ("weight", self.weight.eps)] {
            if !(eps.is_finite() && eps > 0.0) {
                return Err(QuantError::Config(format!(
                    "{what} eps {eps} must be finite and > 0"
                )));
            }
        }
        a.observer.validate()
    }
}

/// What to do with a node.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Setting {
    /// Quantize it with this spec.
    Quantize(OpQuantSpec),
    /// Leave it in fp32 (PyTorch's `set_*_qconfig(..., None)`).
    Fp32,
}

/// Which rule decided a node's [`Setting`] (for the coverage report).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    /// A per-node-name override.
    NodeName,
    /// A per-op-type override.
    OpType,
    /// The global setting.
    Global,
}

/// Global setting plus per-op-type and per-node-name overrides.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantConfig {
    global: Setting,
    by_op_type: BTreeMap<String, Setting>,
    by_node_name: BTreeMap<String, Setting>,
}

impl Default for QuantConfig {
    fn default() -> QuantConfig {
        QuantConfig::x86_default()
    }
}

impl QuantConfig {
    /// Everything quantizable gets [`OpQuantSpec::x86_default`].
    pub fn x86_default() -> QuantConfig {
        QuantConfig::with_global(Setting::Quantize(OpQuantSpec::x86_default()))
    }

    /// Dynamic quantization of every linear layer ([`OpQuantSpec::dynamic`]), everything
    /// else fp32; needs no calibration.
    pub fn dynamic() -> QuantConfig {
        QuantConfig::with_global(Setting::Quantize(
            OpQuantSpec::x86_default().with_dynamic(true),
        ))
    }

    /// A config with this global setting and no overrides.
    pub fn with_global(global: Setting) -> QuantConfig {
        QuantConfig {
            global,
            by_op_type: BTreeMap::new(),
            by_node_name: BTreeMap::new(),
        }
    }

    /// Replaces the global setting.
    pub fn set_global(&mut self, setting: Setting) -> &mut QuantConfig {
        self.global = setting;
        self
    }

    /// Overrides the setting of every node of an ONNX op type (e.g. `"Conv"`, `"Gemm"`).
    pub fn set_op_type(
        &mut self,
        op_type: impl Into<String>,
        setting: Setting,
    ) -> &mut QuantConfig {
        self.by_op_type.insert(op_type.into(), setting);
        self
    }

    /// Overrides the setting of one node, by its ONNX node name.
    pub fn set_node(&mut self, node_name: impl Into<String>, setting: Setting) -> &mut QuantConfig {
        self.by_node_name.insert(node_name.into(), setting);
        self
    }

    /// The global setting.
    pub fn global(&self) -> &Setting {
        &self.global
    }

    /// Per-op-type overrides, by op type.
    pub fn op_type_overrides(&self) -> &BTreeMap<String, Setting> {
        &self.by_op_type
    }

    /// Per-node overrides, by node name.
    pub fn node_overrides(&self) -> &BTreeMap<String, Setting> {
        &self.by_node_name
    }

    /// The setting that applies to a node and where it came from: its name's override, else
    /// its op type's, else the global one.
    pub fn resolve(&self, node_name: &str, op_type: &str) -> (&Setting, ConfigSource) {
        if let Some(s) = self.by_node_name.get(node_name) {
            (s, ConfigSource::NodeName)
        } else if let Some(s) = self.by_op_type.get(op_type) {
            (s, ConfigSource::OpType)
        } else {
            (&self.global, ConfigSource::Global)
        }
    }

    /// Checks every spec, that op-type keys name quantizable ops and that node names are
    /// non-empty.
    ///
    /// # Errors
    /// [`QuantError::Config`] naming the offending entry.
    pub fn validate(&self) -> Result<()> {
        let check = |what: String, setting: &Setting| match setting {
            Setting::Quantize(spec) => spec
                .validate()
                .map_err(|e| QuantError::Config(format!("{what}: {e}"))),
            Setting::Fp32 => Ok(()),
        };
        check("global setting".into(), &self.global)?;
        for (op, s) in &self.by_op_type {
            if !QUANTIZABLE_OP_TYPES.contains(&op.as_str()) {
                return Err(QuantError::Config(format!(
                    "op type {op:?} is not quantizable; expected one of {QUANTIZABLE_OP_TYPES:?}"
                )));
            }
            check(format!("op type {op:?}"), s)?;
        }
        for (node, s) in &self.by_node_name {
            if node.is_empty() {
                return Err(QuantError::Config("empty node name in overrides".into()));
            }
            check(format!("node {node:?}"), s)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_the_x86_recipe() {
        let spec = OpQuantSpec::x86_default();
        assert_eq!(spec.activation.range, QuantRange::U8);
        assert_eq!(spec.activation.observer, ObserverKind::Histogram);
        assert_eq!(spec.weight.range, QuantRange::I8);
        assert_eq!(
            spec.weight.granularity,
            WeightGranularity::PerChannel { axis: 0 }
        );
        assert_eq!(spec.activation.eps, 2f32.powi(-12));
        assert!(!spec.dynamic);
        assert_eq!(spec.with_reduce_range(true).activation.range.qmax(), 127);
        QuantConfig::default().validate().unwrap();
    }

    #[test]
    fn precedence_is_node_then_op_type_then_global() {
        let mut c = QuantConfig::with_global(Setting::Fp32);
        let q = Setting::Quantize(OpQuantSpec::x86_default());
        c.set_op_type("Conv", q).set_node("a", Setting::Fp32);
        assert_eq!(
            c.resolve("a", "Conv"),
            (&Setting::Fp32, ConfigSource::NodeName)
        );
        assert_eq!(c.resolve("b", "Conv"), (&q, ConfigSource::OpType));
        assert_eq!(
            c.resolve("b", "Relu"),
            (&Setting::Fp32, ConfigSource::Global)
        );
    }

    #[test]
    fn validation_names_the_problem() {
        let bad_eps = OpQuantSpec {
            activation: ActivationSpec {
                eps: 0.0,
                ..OpQuantSpec::x86_default().activation
            },
            ..OpQuantSpec::x86_default()
        };
        let err = QuantConfig::with_global(Setting::Quantize(bad_eps))
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("eps"), "{err}");

        let mut c = QuantConfig::x86_default();
        c.set_op_type("Softmax", Setting::Fp32);
        assert!(c.validate().unwrap_err().to_string().contains("Softmax"));

        let mut c = QuantConfig::x86_default();
        let pct = OpQuantSpec::x86_default()
            .with_observer(ObserverKind::Percentile { percentile: 120.0 });
        c.set_node("n1", Setting::Quantize(pct));
        assert!(c.validate().unwrap_err().to_string().contains("n1"));

        let wrong_dtype = OpQuantSpec {
            activation: ActivationSpec {
                range: QuantRange::I8,
                ..OpQuantSpec::x86_default().activation
            },
            ..OpQuantSpec::x86_default()
        };
        assert!(wrong_dtype.validate().is_err());
    }

    #[test]
    fn per_tensor_weights_give_one_scale_and_dynamic_uses_the_call() {
        let spec = WeightSpec {
            granularity: WeightGranularity::PerTensor,
            ..OpQuantSpec::x86_default().weight
        };
        let q = spec.qparams(&[0.5, -2.0, 1.0, 0.0], &[2, 2]).unwrap();
        assert_eq!(q.scales, vec![2.0 / 127.5]);
        let dynamic = OpQuantSpec::x86_default().with_dynamic(true);
        let q = dynamic.activation.dynamic_qparams(&[0.0, 2.55]).unwrap();
        assert_eq!((q.scale, q.zero_point), (2.55f32 / 255.0, 0));
        assert!(dynamic.activation.dynamic_qparams(&[f32::NAN]).is_err());
    }
}
