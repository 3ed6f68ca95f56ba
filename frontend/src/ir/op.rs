//! Typed operators. Each op holds its attributes in normalized form (non-negative axes,
//! resolved defaults); tensors an op reads (weights, biases, BN statistics) are node inputs,
//! so a quantized graph can feed them from `DequantizeLinear` nodes.

use super::dtype::DType;
use super::window::Window2d;
use crate::ops::DynOp;

/// 2-D convolution. Inputs: `x [N, C, H, W]`, `w [OC, C / groups, KH, KW]`, optional
/// `bias [OC]`. Output `[N, OC, OH, OW]`.
///
/// A 1-D convolution (`x [N, C, L]`, `w [OC, C / groups, k]`, output `[N, OC, OL]`, as
/// `torch.nn.Conv1d` exports it) is the same op on rank-3 tensors: its window is `1 x k`
/// over `H = 1` (unit stride and dilation, no padding on H), `[N, C, L]` being
/// `[N, C, 1, L]` in memory. The input's rank tells the two apart.
#[derive(Clone, Debug, PartialEq)]
pub struct Conv {
    /// Kernel window (its `kernel` equals the weight's KH, KW).
    pub window: Window2d,
    /// Number of groups (`C` and `OC` are multiples of it).
    pub groups: usize,
}

/// `Y = alpha * op(A) * op(B) + beta * C`. Inputs `A`, `B`, optional `C` (broadcast to
/// `[M, N]`). A linear layer is `trans_b = true` with `B = W [N, K]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Gemm {
    /// Scale of the product.
    pub alpha: f32,
    /// Scale of `C`.
    pub beta: f32,
    /// Use `A` transposed (`A` is `[K, M]`).
    pub trans_a: bool,
    /// Use `B` transposed (`B` is `[N, K]`).
    pub trans_b: bool,
}

/// A pooling window.
#[derive(Clone, Debug, PartialEq)]
pub struct Pool {
    /// Window geometry.
    pub window: Window2d,
    /// Round the output size up (the last window may start inside the end padding's
    /// reach but never entirely in it).
    pub ceil_mode: bool,
}

/// One entry of a [`Op::Reshape`] target shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReshapeDim {
    /// This size.
    Fixed(usize),
    /// The input's size on this axis.
    CopyInput(usize),
    /// Whatever makes the element count match (at most one per target).
    Infer,
}

/// Quantization parameters of a `QuantizeLinear` / `DequantizeLinear`.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantSpec {
    /// Scales: one (per-tensor) or one per index of `axis`.
    pub scales: Vec<f32>,
    /// Zero points, as many as `scales`, in the range of `dtype`.
    pub zero_points: Vec<i32>,
    /// `None` = per-tensor; `Some(a)` = per-axis along axis `a`.
    pub axis: Option<usize>,
    /// The quantized element type (`U8`, `I8`, or `I32` for biases).
    pub dtype: DType,
}

impl QuantSpec {
    /// Per-tensor parameters.
    pub fn per_tensor(scale: f32, zero_point: i32, dtype: DType) -> QuantSpec {
        QuantSpec {
            scales: vec![scale],
            zero_points: vec![zero_point],
            axis: None,
            dtype,
        }
    }

    /// The representable range of `dtype`.
    pub fn range(&self) -> (i32, i32) {
        match self.dtype {
            DType::U8 => (0, 255),
            DType::I8 => (-128, 127),
            _ => (i32::MIN, i32::MAX),
        }
    }
}

/// A graph operator with its attributes.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// 1-D or 2-D convolution.
    Conv(Conv),
    /// General matrix multiply.
    Gemm(Gemm),
    /// `A [..., M, K] x B [K, N]`.
    MatMul,
    /// Inference batch normalization over axis 1. Inputs `x, scale, bias, mean, var`.
    BatchNorm {
        /// Added to the variance.
        epsilon: f32,
    },
    /// max(x, 0).
    Relu,
    /// min(max(x, min), max) (Hardtanh, ReLU6).
    Clip {
        /// Lower bound.
        min: f32,
        /// Upper bound.
        max: f32,
    },
    /// x * relu6(x + 3) / 6.
    HardSwish,
    /// 1 / (1 + exp(-x)).
    Sigmoid,
    /// Element-wise product, numpy broadcasting.
    Mul,
    /// Element-wise sum, numpy broadcasting.
    Add,
    /// Max pooling (padding never wins).
    MaxPool(Pool),
    /// Average pooling.
    AveragePool {
        /// Window.
        pool: Pool,
        /// Count padded positions in the divisor.
        count_include_pad: bool,
    },
    /// Mean over H, W: `[N, C, H, W] -> [N, C, 1, 1]`.
    GlobalAveragePool,
    /// Mean over the given axes (q8 supports the spatial axes {2, 3} of a rank-4 input).
    ReduceMean {
        /// Reduced axes, sorted.
        axes: Vec<usize>,
        /// Keep reduced axes as size 1.
        keepdims: bool,
    },
    /// `[d0, .., dn] -> [d0 * .. * d(axis-1), d(axis) * .. * dn]`.
    Flatten {
        /// Split axis, in 0..=rank.
        axis: usize,
    },
    /// Reshape to a target shape (resolved from the ONNX shape input).
    Reshape {
        /// Target dimensions.
        target: Vec<ReshapeDim>,
    },
    /// Concatenation along `axis`.
    Concat {
        /// Axis, in 0..rank.
        axis: usize,
    },
    /// Pass-through.
    Identity,
    /// f32 -> u8/i8: clamp(rne(x * (1 / scale)) + zero_point).
    QuantizeLinear(QuantSpec),
    /// u8/i8/i32 -> f32: (q - zero_point) * scale.
    DequantizeLinear(QuantSpec),
    /// An op of the registry ([`crate::ops`]), which owns its behaviour.
    Def(DynOp),
}

impl Op {
    /// The ONNX op type this op corresponds to (used in errors and reports).
    pub fn name(&self) -> &'static str {
        match self {
            Op::Conv(_) => "Conv",
            Op::Gemm(_) => "Gemm",
            Op::MatMul => "MatMul",
            Op::BatchNorm { .. } => "BatchNormalization",
            Op::Relu => "Relu",
            Op::Clip { .. } => "Clip",
            Op::HardSwish => "HardSwish",
            Op::Sigmoid => "Sigmoid",
            Op::Mul => "Mul",
            Op::Add => "Add",
            Op::MaxPool(_) => "MaxPool",
            Op::AveragePool { .. } => "AveragePool",
            Op::GlobalAveragePool => "GlobalAveragePool",
            Op::ReduceMean { .. } => "ReduceMean",
            Op::Flatten { .. } => "Flatten",
            Op::Reshape { .. } => "Reshape",
            Op::Concat { .. } => "Concat",
            Op::Identity => "Identity",
            Op::QuantizeLinear(_) => "QuantizeLinear",
            Op::DequantizeLinear(_) => "DequantizeLinear",
            Op::Def(d) => d.name(),
        }
    }

    /// Allowed number of inputs (min, max).
    pub fn arity(&self) -> (usize, usize) {
        match self {
            Op::Conv(_) => (2, 3),
            Op::Gemm(_) => (2, 3),
            Op::MatMul | Op::Mul | Op::Add => (2, 2),
            Op::BatchNorm { .. } => (5, 5),
            Op::Concat { .. } => (1, usize::MAX),
            // A registered op checks its own inputs in `OpDef::infer`.
            Op::Def(_) => (0, usize::MAX),
            _ => (1, 1),
        }
    }
}
