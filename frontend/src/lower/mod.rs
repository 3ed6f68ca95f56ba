//! Lowering: a QDQ graph (q8's own, ONNX Runtime's or PyTorch PT2E's) onto q8's int8
//! kernels, as a list of [`Step`]s the [`crate::runtime`] executes.
//!
//! Passes, in order (the Inductor x86 lowering's order, `frontend-prior-art.md` §4):
//! 1. [`rewrite::duplicate_dequantize`]: one `DequantizeLinear` per consumer;
//!    [`rewrite::quantize_before_max_pool`] and [`rewrite::relax_fixed_batch`].
//! 2. Weight pre-packing for the tier chosen at load: every conv / linear whose weight is a
//!    dequantized symmetric s8 constant is packed once ([`PackedConvWeights`],
//!    [`PackedWeights`]).
//! 3. Fusion: `dq -> conv -> [relu | clip | add(dq(r)) | add(dq(r)) -> relu] -> [q]` becomes
//!    one int8 convolution with the matching epilogue and u8 (with `q`) or f32 output;
//!    `dq -> gemm/matmul -> [add(bias)] -> [relu | clip | leaky relu | tanh | gelu |
//!    add(dq(r)) [-> relu]] -> [q]` an int8 linear on any input rank; ONNX Runtime's dynamic form
//!    `DynamicQuantizeLinear -> MatMulInteger (constant s8 weight) -> Cast -> Mul [-> Add]` an
//!    int8 dynamic linear (the activation quantized per call inside the step, same bits as the
//!    fp32 executor); `q(maxpool(dq))`, average pools,
//!    global average pool (also `ReduceMean` over H, W), flatten / reshape and channel
//!    concat u8 ops; `q(add(dq(a), dq(b)) [-> relu])` the u8 add.
//! 4. Everything else runs in f32 between explicit quantize / dequantize steps, and the
//!    [`LoweringReport`] says so, node by node, with the reason.
//!
//! ```
//! use q8_frontend::ir::{DType, Dim, Graph, Op, QuantSpec, Shape};
//! use q8_frontend::lower::{lower, LowerOptions, StepKind};
//! let mut g = Graph::new("tiny");
//! let x = g.add_input("x", DType::F32, Shape(vec![Dim::sym("n"), Dim::Known(4)])).unwrap();
//! let spec = QuantSpec::per_tensor(0.1, 3, DType::U8);
//! let q = g.add_node("q", Op::QuantizeLinear(spec.clone()), &[x]).unwrap()[0];
//! let dq = g.add_node("dq", Op::DequantizeLinear(spec), &[q]).unwrap()[0];
//! let y = g.add_node("relu", Op::Relu, &[dq]).unwrap()[0];
//! g.set_outputs(&[y]);
//! let lowered = lower(&g, &LowerOptions::default()).unwrap();
//! assert!(matches!(lowered.steps[0].kind, StepKind::Quantize(_)));
//! assert_eq!(lowered.report.fallback_nodes(), ["relu"]);
//! ```

mod fallback;
mod fuse;
mod report;
pub mod rewrite;
mod weights;

use q8_kernels::conv::{PackedConvWeights, Padding as KPadding};
use q8_kernels::gemm::PackedWeights;
use q8_kernels::ops::{AddParams, Pool2d};
use q8_kernels::{Activation, QParams, Tier};

pub use fallback::FallbackNode;
pub use report::{LoweringReport, NodeEntry, NodeLowering};

use crate::error::{Error, Result};
use crate::ir::{Graph, ValueId};

/// Lowering settings.
#[derive(Clone, Copy, Debug, Default)]
pub struct LowerOptions {
    /// Tier the weights are packed for; `None` = [`q8_kernels::cpu::default_tier`] (the best
    /// available, capped by `Q8_ISA`).
    pub tier: Option<Tier>,
    /// Threads of the fp32 executor running fallback nodes (0 = one per core).
    pub threads: usize,
}

/// What a lowered step computes. Activations are u8 NHWC (rank 4) or row-major (other
/// ranks) with per-tensor [`QParams`]; f32 values carry their layout at run time.
pub enum StepKind {
    /// f32 -> u8 (an NCHW input is transposed to NHWC in the same pass).
    Quantize(QParams),
    /// u8 -> f32.
    Dequantize(QParams),
    /// Fused int8 convolution: inputs `[x]` or `[x, residual]`.
    Conv {
        /// Weights packed for the model's tier (retargeted per input shape at run time).
        packed: PackedConvWeights,
        /// Input quantization.
        input: QParams,
        /// Residual ("sum") input quantization, when fused.
        residual: Option<QParams>,
        /// Fused activation.
        activation: Activation,
        /// `Some` = u8 output with these qparams; `None` = f32 output.
        output: Option<QParams>,
    },
    /// Fused int8 linear (a GEMM): inputs `[x]` or `[x, residual]`, `x` of shape `[.., K]`
    /// read as `rows = product of the leading dims` rows of K (no copy), the output `[.., N]`.
    Linear {
        /// Packed `[N, K]` weights with scales and bias.
        packed: PackedWeights,
        /// Input quantization.
        input: QParams,
        /// Residual ("sum") input quantization, when fused.
        residual: Option<QParams>,
        /// Fused activation.
        activation: Activation,
        /// `Some` = u8 output; `None` = f32 output.
        output: Option<QParams>,
    },
    /// A dynamically quantized linear layer (ONNX Runtime's `DynamicQuantizeLinear ->
    /// MatMulInteger -> Cast -> Mul [-> Add]`): input `[x]`, f32 `[.., K]`, quantized per call
    /// by [`crate::ops::dynamic_qparams`] / [`crate::ops::dynamic_quantize`]; the GEMM's exact
    /// i32 accumulators then become `(acc as f32) * (x_scale * scales[n]) [+ bias[n]]`, the
    /// nodes' f32 arithmetic in their order, so the bits are the fp32 executor's.
    DynamicLinear {
        /// Packed `[N, K]` s8 weights (scale 1, no bias: the epilogue is applied in f32).
        packed: PackedWeights,
        /// Name of the `DynamicQuantizeLinear` node (named in errors).
        quantizer: String,
        /// Weight scale per output column.
        scales: Vec<f32>,
        /// Bias per output column.
        bias: Option<Vec<f32>>,
        /// The decomposed exact GELU that followed the layer, applied last
        /// ([`q8_kernels::math::gelu_erf`], the five nodes' bits).
        gelu: bool,
    },
    /// u8 max pool (qparams unchanged).
    MaxPool(Pool2d),
    /// u8 average pool.
    AvgPool {
        /// Window.
        pool: Pool2d,
        /// Divide by the padded window size.
        count_include_pad: bool,
        /// Input (= output) qparams.
        qparams: QParams,
    },
    /// u8 global average pool over H, W.
    GlobalAvgPool(QParams),
    /// Reshape / flatten (u8 or f32): the bytes in logical order, no arithmetic.
    Reshape,
    /// u8 concatenation along channels, requantizing inputs with other qparams.
    Concat {
        /// Qparams of each input.
        inputs: Vec<QParams>,
        /// Output qparams.
        output: QParams,
    },
    /// u8 element-wise add (+ relu).
    Add(AddParams),
    /// f32 mean over H, W (`GlobalAveragePool` / `ReduceMean` on f32 values).
    MeanF32,
    /// A node without an int8 kernel, evaluated by the fp32 executor's op on the model's
    /// threads (constant operands folded at load).
    Fallback(Box<FallbackNode>),
}

impl StepKind {
    /// Short kernel name for reports ("int8 conv", "u8 max pool", ...).
    pub fn label(&self) -> &'static str {
        match self {
            StepKind::Quantize(_) => "quantize",
            StepKind::Dequantize(_) => "dequantize",
            StepKind::Conv {
                output: Some(_), ..
            } => "int8 conv (u8 out)",
            StepKind::Conv { output: None, .. } => "int8 conv (f32 out)",
            StepKind::Linear {
                output: Some(_), ..
            } => "int8 linear (u8 out)",
            StepKind::Linear { output: None, .. } => "int8 linear (f32 out)",
            StepKind::DynamicLinear { .. } => "int8 dynamic linear (f32 out)",
            StepKind::MaxPool(_) => "u8 max pool",
            StepKind::AvgPool { .. } => "u8 average pool",
            StepKind::GlobalAvgPool(_) => "u8 global average pool",
            StepKind::Reshape => "reshape",
            StepKind::Concat { .. } => "u8 concat",
            StepKind::Add(_) => "u8 add",
            StepKind::MeanF32 => "f32 mean",
            StepKind::Fallback(_) => "f32 fallback",
        }
    }
}

/// One executable step: reads `inputs`, writes `output` (values of the lowered graph).
pub struct Step {
    /// Name of the node the step is anchored on (its conv, pool, ...).
    pub name: String,
    /// What it computes.
    pub kind: StepKind,
    /// Values read, in the kind's order.
    pub inputs: Vec<ValueId>,
    /// Value written.
    pub output: ValueId,
}

/// A lowered model: the rewritten graph (for names and shapes), the steps in execution
/// order and the report.
pub struct Lowered {
    /// The graph after the rewrites (steps refer to its values).
    pub graph: Graph,
    /// Steps in execution order.
    pub steps: Vec<Step>,
    /// Per-node account of what happened.
    pub report: LoweringReport,
    /// Tier the weights were packed for.
    pub tier: Tier,
    /// True when the graph's batch was fixed at 1 by its exporter and is treated as dynamic.
    pub batch_relaxed: bool,
}

/// Lowers a (validated) QDQ graph. Graphs without any quantization lower too: every node
/// becomes an f32 fallback step.
///
/// # Errors
/// Invalid graph; quantized weights that are not symmetric s8 (naming the node); a tier
/// that is unavailable; weights the kernels reject (naming the node).
pub fn lower(graph: &Graph, options: &LowerOptions) -> Result<Lowered> {
    graph.validate()?;
    let tier = match options.tier {
        Some(t) => t,
        None => q8_kernels::cpu::default_tier().map_err(kernel_error("model", "load"))?,
    };
    q8_kernels::cpu::require(tier).map_err(kernel_error("model", "load"))?;
    let mut g = graph.clone();
    let duplicated = rewrite::duplicate_dequantize(&mut g)?;
    let pool_moves = rewrite::quantize_before_max_pool(&mut g)?;
    let batch_relaxed = rewrite::relax_fixed_batch(&mut g);
    g.validate()?;
    let (steps, mut report) = fuse::fuse(&g, tier, options.threads, batch_relaxed)?;
    report.duplicated_dequantize = duplicated;
    report.quantize_moved_before_max_pool = pool_moves;
    report.batch_relaxed = batch_relaxed;
    report.tier = tier.name().to_string();
    Ok(Lowered {
        graph: g,
        steps,
        report,
        tier,
        batch_relaxed,
    })
}

/// Maps a kernel error to a frontend error naming the op and node.
pub(crate) fn kernel_error<'a>(
    op: &'a str,
    node: &'a str,
) -> impl Fn(q8_kernels::Error) -> Error + 'a {
    move |e| Error::node(op, node, e.to_string())
}

/// Kernel padding from resolved ONNX pads.
pub(crate) fn kernel_padding(begin: [usize; 2], end: [usize; 2]) -> KPadding {
    KPadding::new(begin[0], begin[1], end[0], end[1])
}

/// Whether two qparams are the same within the 1e-5 relative scale tolerance Inductor's
/// u8 lowerings use, with equal zero points.
pub(crate) fn same_qparams(a: QParams, b: QParams) -> bool {
    a.zero_point == b.zero_point
        && (a.scale - b.scale).abs() <= 1e-5 * a.scale.abs().max(b.scale.abs())
}
