//! Quantization: configuration, observers and qparams (the X86 recipe).
//!
//! - [`config`]: what to quantize and how ([`QuantConfig`], the X86 default, overrides).
//! - [`qparams`]: quantized ranges and PyTorch's scale / zero-point formulas.
//! - Observers, computing exactly what torchao's pt2e observers compute:
//!   [`MinMaxObserver`], [`MovingAverageMinMaxObserver`], [`PerChannelMinMaxObserver`] and
//!   [`HistogramObserver`] (the X86 default, with torch's L2 range search), plus percentile and
//!   MSE range selection on the same histogram.
//! - The flow (PyTorch's `prepare_pt2e` / calibrate / `convert_pt2e` with the X86 quantizer):
//!   [`annotate`] finds the recipe's patterns by graph structure and groups the activation
//!   quantizers that share qparams; [`prepare`] folds BatchNorm and creates one observer per
//!   group; [`Prepared::calibrate`] runs the fp32 executor over input batches; [`Prepared::convert`]
//!   gives a QDQ graph ([`Quantized`]) that [`Quantized::save`] writes as ONNX. The
//!   [`CoverageReport`] says which nodes are quantized and why others are not; [`compare`] gives
//!   the per-layer SQNR against fp32. A runnable example of the whole flow is on [`Prepared`].
//!
//! ```
//! use q8_frontend::quant::{Observer, QuantConfig, Setting};
//! let config = QuantConfig::x86_default();
//! let Setting::Quantize(spec) = config.resolve("conv1", "Conv").0 else { unreachable!() };
//! let mut observer = spec.activation.build_observer().unwrap();
//! for batch in [[0.1f32, 2.0, -0.5], [0.3, 1.5, -0.2]] {
//!     observer.observe(&batch).unwrap();
//! }
//! let qp = observer.qparams().to_kernel_u8().unwrap(); // u8 scale / zero point for the kernels
//! assert!(qp.scale > 0.0 && (0..=255).contains(&qp.zero_point));
//! ```

mod annotate;
mod calibrate;
mod clipping;
pub mod config;
mod convert;
mod dynamic;
mod error;
mod histogram;
mod l2_search;
mod minmax;
mod observer;
mod prepare;
pub mod qparams;
mod report;
mod sqnr;
mod torch_math;

pub use annotate::{
    Annotation, Fp32Reason, NodeStatus, PatternKind, PatternMatch, QuantGroup, QuantPoint, Unary,
    annotate,
};
pub use calibrate::{CalibrationProgress, batches};
pub use convert::{ActivationQParams, Quantized, WeightQParams};
pub use prepare::{Prepared, prepare};
pub use report::{CoverageReport, NodeCoverage};
pub use sqnr::{Comparison, LayerSqnr, compare, sqnr_db};

pub use config::{
    ActivationSpec, ConfigSource, OpQuantSpec, QUANTIZABLE_OP_TYPES, QuantConfig, Setting,
    WeightGranularity, WeightSpec, X86_EPS,
};
pub use error::{QuantError, Result};
pub use histogram::{Histogram, HistogramObserver, RangeSearch};
pub use minmax::{MinMaxObserver, MovingAverageMinMaxObserver, PerChannelMinMaxObserver, min_max};
pub use observer::{Observer, ObserverKind, dynamic_qparams};
pub use qparams::{ChannelQParams, QDType, QuantRange, Symmetry, TensorQParams, compute_qparams};
