//! Int8 convolution (NHWC): geometry, epilogue, depthwise kernels.
//!
//! Activations are u8 NHWC with per-tensor [`QParams`](crate::QParams); weights are s8
//! `[C_out][KH][KW][C_in / groups]` with per-output-channel scales; padding reads the input
//! zero point. See [`ConvGeometry`] for the layouts and [`crate::reference::conv`] for the
//! defining loops.

pub(crate) mod epilogue;
pub(crate) mod geometry;
mod implicit;

pub use epilogue::{ConvEpilogue, ConvOutput, ConvWeights, Residual};
pub(crate) use geometry::Axis;
pub use geometry::{ConvGeometry, MAX_REDUCTION, Nhwc, Padding};
mod packed;

pub use packed::{PackedConvWeights, conv2d};
