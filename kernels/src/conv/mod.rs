//! Int8 convolution (NHWC): geometry, packed weights, fused epilogue.
//!
//! Activations are u8 NHWC with per-tensor [`QParams`](crate::QParams); weights are s8
//! `[C_out][KH][KW][C_in / groups]` with per-output-channel scales; padding reads the input
//! zero point. See [`ConvGeometry`] for the layouts and [`crate::reference::conv`] for the
//! defining loops.
//!
//! [`PackedConvWeights::new`] picks the kernel once per layer and tier:
//! - `Scalar`: the reference loops;
//! - depthwise with channel multiplier 1: a channel-vectorized exact kernel (i32 widening);
//! - 1x1 without padding (any stride, any groups): the packed GEMM reading each output
//!   pixel's `C_in / groups` input bytes in place;
//! - everything else (k x k, padding, dilation, grouped, channel multiplier > 1): implicit
//!   GEMM, gathering each GEMM job's receptive fields (K ordered `[KH][KW][C_in / groups]`,
//!   padded to whole 4-byte groups, padded taps = the zero point) into a per-thread block,
//!   one GEMM per group;
//! - on the AMX tier, k x k with stride 1, one group and `C_in % 64 == 0`: a direct
//!   convolution, the tiles reading the receptive fields from a padded copy of the input
//!   (`direct`), with no gather; the stride-2 7x7 stem on up to 4 channels the same way
//!   after a space-to-depth transform (`space_to_depth`).
//!
//! [`conv2d`] then runs it with the residual / activation epilogue into u8 or f32, with as many
//! threads as the current rayon pool has; results are bit-identical across tiers and thread counts.

pub(crate) mod direct;
pub(crate) mod epilogue;
pub(crate) mod geometry;
mod implicit;
mod space_to_depth;

pub use epilogue::{ConvEpilogue, ConvOutput, ConvWeights, Residual};
pub(crate) use geometry::Axis;
pub use geometry::{ConvGeometry, MAX_REDUCTION, Nhwc, Padding};
mod packed;

pub use packed::{PackedConvWeights, conv2d};
