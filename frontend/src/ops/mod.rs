//! The op registry: one home per ONNX op (or small family of ops).
//!
//! Each op module owns, for its ops, everything q8 knows about them:
//!
//! * **import** — an [`OpSpec`] entry: ONNX op type, the opsets it reads, and the function
//!   that validates the node's attributes (per opset) and builds the typed op;
//! * **inference** — [`OpDef::infer`]: output element types and shapes (symbolic dims
//!   included) from the input types;
//! * **evaluation** — [`OpDef::eval`]: fp32 (and integer) execution on concrete tensors;
//! * **export** — [`OpDef::export`]: attributes and attribute-like operands to write the op
//!   back to ONNX;
//! * **quantization** — [`OpDef::quant_rule`]: what the X86 recipe does with it.
//!
//! Adding a plain fp32 op means writing its [`OpDef`] and [`OpSpec`] in its family's module
//! (or a new module listed in [`specs`]) plus its tests; import, inference, execution,
//! export, the quantization report and the supported-op list pick it up from here.
//!
//! The ops the int8 pipeline pattern-matches (Conv, Gemm, pools, q/dq, ...) are still the
//! typed variants of [`crate::ir::Op`]; their [`OpSpec`]s route to the ONNX importer's typed
//! constructor so that every op q8 reads is listed here.

mod attention;
mod binary;
mod cast;
mod conv_transpose;
mod dim_expr;
mod dynamic;
mod expand;
mod index;
mod layout;
mod logic;
mod matmul;
mod norm;
mod pad;
mod range;
mod reduce;
mod resize;
mod softmax;
mod topk;
mod unary;

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::ir::{DType, Op, Tensor, ValueId, ValueType};
use crate::onnx::ImportCx;

pub use self::attention::{Attention, ScoreScale};
pub use self::binary::{Binary, BinaryKind};
pub use self::cast::{Cast, cast_tensor};
pub use self::dim_expr::{ArithOp, DimExpr, DimValue};
pub use self::dynamic::{
    DynamicQParams, DynamicQuantizeLinear, MatMulInteger, dynamic_qparams, dynamic_quantize,
};
pub use self::matmul::BatchMatMul;
pub use self::pad::{Pad, PadMode};
pub use self::softmax::Softmax;
pub use self::unary::{Unary, UnaryKind};

/// Behaviour of one registered op: inference, evaluation, export and quantization rule.
///
/// Implementations are immutable values holding the op's normalized attributes (axes
/// non-negative, defaults resolved). Every method reports bad input as [`Error::Node`]
/// naming the op and `node`; none may panic on any input types or tensors.
pub trait OpDef: OpAny + fmt::Debug + Send + Sync {
    /// The ONNX op type (used in errors, reports and export).
    fn name(&self) -> &'static str;

    /// Output types for the given input types (dims may be symbolic).
    ///
    /// # Errors
    /// [`Error::Node`] when the input count, element types or shapes do not fit.
    fn infer(&self, node: &str, inputs: &[&ValueType]) -> Result<Vec<ValueType>>;

    /// Computes the outputs. `outputs` are the types [`OpDef::infer`] gave for the
    /// concrete input shapes (all dims known); the results must have exactly these types.
    ///
    /// # Errors
    /// [`Error::Node`] when an input does not fit.
    fn eval(&self, node: &str, inputs: &[&Tensor], outputs: &[ValueType]) -> Result<Vec<Tensor>>;

    /// Attributes and trailing attribute-like operands for writing the node to ONNX.
    ///
    /// # Errors
    /// [`Error::Node`] when the op cannot be expressed in the exported opset.
    fn export(&self, node: &str) -> Result<Exported> {
        let _ = node;
        Ok(Exported::default())
    }

    /// The node's input names as written to ONNX, from its graph inputs' names followed by
    /// the [`Exported::operands`]: an op with an omitted optional input in the middle
    /// inserts its `""` here.
    fn export_inputs(&self, inputs: Vec<String>) -> Vec<String> {
        inputs
    }

    /// What the X86 quantization recipe does with this op.
    fn quant_rule(&self) -> QuantRule {
        QuantRule::Fp32 {
            why: "no int8 recipe",
        }
    }
}

/// Object-safe equality and downcasting, implemented for every `PartialEq` op type.
pub trait OpAny: Any {
    /// `self` as [`Any`] (to downcast to the concrete op).
    fn as_any(&self) -> &dyn Any;
    /// True when `other` is the same op type with equal attributes.
    fn dyn_eq(&self, other: &dyn Any) -> bool;
}

impl<T: Any + PartialEq> OpAny for T {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn dyn_eq(&self, other: &dyn Any) -> bool {
        other.downcast_ref::<T>() == Some(self)
    }
}

/// A registered op inside [`Op::Def`]: shared, cheap to clone, compared by value.
#[derive(Clone)]
pub struct DynOp(Arc<dyn OpDef>);

impl DynOp {
    /// Wraps an op definition.
    pub fn new(op: impl OpDef + 'static) -> DynOp {
        DynOp(Arc::new(op))
    }

    /// The concrete op, if it is a `T`.
    pub fn downcast<T: OpDef + 'static>(&self) -> Option<&T> {
        self.0.as_any().downcast_ref::<T>()
    }
}

impl std::ops::Deref for DynOp {
    type Target = dyn OpDef;

    fn deref(&self) -> &dyn OpDef {
        &*self.0
    }
}

impl fmt::Debug for DynOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl PartialEq for DynOp {
    fn eq(&self, other: &DynOp) -> bool {
        self.0.dyn_eq(other.0.as_any())
    }
}

/// What quantization does with a registered op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuantRule {
    /// Runs in fp32 between explicit dequantize / quantize nodes.
    Fp32 {
        /// Why (shown in the quantization report).
        why: &'static str,
    },
}

/// An attribute value written on export.
#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    /// `INT`.
    Int(i64),
    /// `INTS`.
    Ints(Vec<i64>),
    /// `FLOAT`.
    Float(f32),
    /// `STRING`.
    Str(String),
}

/// How a registered op is written to ONNX: attributes, plus operands appended after the
/// node's graph inputs (`None` = an omitted optional input, written as `""`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Exported {
    /// Named attributes.
    pub attrs: Vec<(&'static str, AttrValue)>,
    /// Extra operands, each `(role, constant)`; the role names the initializer.
    pub operands: Vec<Option<(&'static str, Tensor)>>,
}

/// Builds the typed op and its graph inputs from one ONNX node.
pub(crate) type ImportFn = fn(&ImportCx<'_>) -> Result<(Op, Vec<ValueId>)>;

/// A registry entry: how q8 reads one ONNX op type.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OpSpec {
    /// ONNX op type (default domain).
    pub op_type: &'static str,
    /// Oldest opset of the op's definitions q8 reads (inclusive).
    pub since: i64,
    /// The importer.
    pub import: ImportFn,
}

impl OpSpec {
    /// The entry reading `op_type` from opset `since` on through `import`.
    pub(crate) const fn new(op_type: &'static str, since: i64, import: ImportFn) -> OpSpec {
        OpSpec {
            op_type,
            since,
            import,
        }
    }
}

/// Every registry entry, family by family.
pub(crate) fn specs() -> impl Iterator<Item = &'static OpSpec> {
    [
        crate::onnx::TYPED_SPECS,
        crate::onnx::QLINEAR_SPECS,
        unary::SPECS,
        binary::SPECS,
        softmax::SPECS,
        resize::SPECS,
        conv_transpose::SPECS,
        layout::SPECS,
        pad::SPECS,
        logic::SPECS,
        index::SPECS,
        range::SPECS,
        reduce::SPECS,
        norm::SPECS,
        topk::SPECS,
        matmul::SPECS,
        expand::SPECS,
        cast::SPECS,
        dynamic::SPECS,
    ]
    .into_iter()
    .flatten()
}

/// The entry for `op_type` at `opset`, if q8 reads it.
pub(crate) fn lookup(op_type: &str, opset: i64) -> Option<&'static OpSpec> {
    specs().find(|s| s.op_type == op_type && opset >= s.since)
}

/// The sorted ONNX op types q8 imports (the README's list is generated from this).
pub fn supported_ops() -> Vec<&'static str> {
    let mut v: Vec<&str> = specs().map(|s| s.op_type).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Wraps a registered op as an [`Op`].
pub fn def(op: impl OpDef + 'static) -> Op {
    Op::Def(DynOp::new(op))
}

/// An error of op `op` at node `node`.
fn fail(op: &dyn OpDef, node: &str, message: impl Into<String>) -> Error {
    Error::node(op.name(), node, message)
}

/// Checks the input count is in `lo..=hi`.
fn arity(op: &dyn OpDef, node: &str, n: usize, lo: usize, hi: usize) -> Result<()> {
    if n < lo || n > hi {
        return Err(fail(
            op,
            node,
            format!("expects {lo}..={hi} inputs, got {n}"),
        ));
    }
    Ok(())
}

/// The single input of a one-input op that reads f32 only.
fn one_f32<'t>(op: &dyn OpDef, node: &str, inputs: &[&'t ValueType]) -> Result<&'t ValueType> {
    arity(op, node, inputs.len(), 1, 1)?;
    all_f32(op, node, inputs)?;
    Ok(inputs[0])
}

/// Checks every input is f32.
fn all_f32(op: &dyn OpDef, node: &str, inputs: &[&ValueType]) -> Result<()> {
    match inputs
        .iter()
        .enumerate()
        .find(|(_, t)| t.dtype != DType::F32)
    {
        Some((i, t)) => Err(fail(
            op,
            node,
            format!("input {i} must be f32, got {}", t.dtype),
        )),
        None => Ok(()),
    }
}

/// The numpy broadcast of the shapes of `inputs`, which must all be of type `dtype`.
pub(super) fn broadcast_all(
    op: &dyn OpDef,
    node: &str,
    inputs: &[&ValueType],
    dtype: DType,
) -> Result<crate::ir::Shape> {
    let mut shape = crate::ir::Shape(vec![]);
    for (i, t) in inputs.iter().enumerate() {
        if t.dtype != dtype {
            return Err(fail(
                op,
                node,
                format!("input {i} is {}, expected {dtype}", t.dtype),
            ));
        }
        shape = crate::ir::broadcast(&shape, &t.shape).map_err(|e| fail(op, node, e))?;
    }
    Ok(shape)
}

/// Checks `axis` is an axis of `shape`.
fn check_axis(op: &dyn OpDef, node: &str, axis: usize, shape: &crate::ir::Shape) -> Result<()> {
    if axis >= shape.rank() {
        return Err(fail(
            op,
            node,
            format!("axis {axis} out of range for {shape}"),
        ));
    }
    Ok(())
}

/// The f32 data of input `i`.
fn f32_input<'t>(op: &dyn OpDef, node: &str, inputs: &[&'t Tensor], i: usize) -> Result<&'t [f32]> {
    inputs
        .get(i)
        .and_then(|t| t.as_f32())
        .ok_or_else(|| fail(op, node, format!("input {i} must be an f32 tensor")))
}

/// The concrete shape of an inferred output type.
fn concrete(op: &dyn OpDef, node: &str, ty: &ValueType) -> Result<Vec<usize>> {
    ty.shape.to_known().ok_or_else(|| {
        fail(
            op,
            node,
            format!("output shape {} is not concrete", ty.shape),
        )
    })
}
