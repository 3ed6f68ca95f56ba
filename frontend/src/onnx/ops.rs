//! ONNX node -> typed [`Op`]: attribute parsing with ONNX defaults, attribute-like inputs
//! (Clip bounds, Reshape targets, q/dq parameters, reduction axes) resolved from constants,
//! and import-time folding of shape arithmetic.

use std::sync::Arc;

use super::attrs::Attrs;
use super::fold::{self, SymInt, SymTensor, normalize_index};
use super::proto::NodeProto;
use super::{Folded, ImportCx, Importer, input};
use crate::error::Result;
use crate::ir::{
    Conv, DType, Dim, Gemm, Op, Padding, Pool, QuantSpec, ReshapeDim, Tensor, TensorData, ValueId,
    Window2d,
};

/// Registry entries of the ops built by [`Importer::typed_op`] (the typed [`Op`] variants
/// the int8 pipeline pattern-matches) and of the ops q8 only folds at import
/// ([`Importer::try_fold`]: shape arithmetic and constants).
pub(crate) const TYPED_SPECS: &[crate::ops::OpSpec] = &{
    const TYPED: [&str; 21] = [
        "Conv",
        "MaxPool",
        "AveragePool",
        "GlobalAveragePool",
        "Gemm",
        "BatchNormalization",
        "Relu",
        "Sigmoid",
        "HardSwish",
        "Identity",
        "Dropout",
        "Clip",
        "Add",
        "Mul",
        "Flatten",
        "Reshape",
        "Unsqueeze",
        "Squeeze",
        "Concat",
        "QuantizeLinear",
        "DequantizeLinear",
    ];
    const FOLDED: [&str; 4] = ["Constant", "Shape", "Size", "ConstantOfShape"];
    let mut out = [crate::ops::OpSpec {
        op_type: "",
        since: 1,
        import: typed,
    }; TYPED.len() + FOLDED.len()];
    let mut i = 0;
    while i < TYPED.len() {
        out[i].op_type = TYPED[i];
        i += 1;
    }
    while i < TYPED.len() + FOLDED.len() {
        out[i].op_type = FOLDED[i - TYPED.len()];
        out[i].import = fold_only;
        i += 1;
    }
    out
};

/// Imports a node as its typed [`Op`] variant.
pub(crate) fn typed(cx: &ImportCx<'_>) -> Result<(Op, Vec<ValueId>)> {
    cx.imp.typed_op(cx.node, cx.attrs)
}

fn fold_only(cx: &ImportCx<'_>) -> Result<(Op, Vec<ValueId>)> {
    Err(cx.err(format!(
        "q8 evaluates {} only on constants and shape values folded at import",
        cx.node.op_type
    )))
}

impl Importer {
    /// True when input `i` of `n` is a graph value (not a folded shape value).
    fn is_graph_value(&self, n: &NodeProto, i: usize) -> bool {
        input(n, i).is_some_and(|s| self.graph.value_by_name(s).is_some())
    }

    pub(super) fn required<'n>(&self, n: &'n NodeProto, a: &Attrs, i: usize) -> Result<&'n str> {
        input(n, i).ok_or_else(|| a.err(format!("input {i} is missing")))
    }

    /// Folds shape arithmetic and constant pass-throughs; `None` when the node is a real op.
    pub(super) fn try_fold(&self, n: &NodeProto, a: &Attrs) -> Result<Option<Folded>> {
        let sym_in = |i: usize| input(n, i).and_then(|s| self.sym(s));
        let all_sym = || {
            n.input
                .iter()
                .all(|s| !s.is_empty() && self.sym(s).is_some())
        };
        let any_run_time = || n.input.iter().any(|s| self.syms.contains_key(s));
        let folded = match n.op_type.as_str() {
            "Shape" if sym_in(0).is_some() && !self.is_graph_value(n, 0) => {
                // The shape of a folded shape value: its length.
                let s = sym_in(0).unwrap_or(SymTensor {
                    scalar: true,
                    values: vec![],
                });
                let dims = if s.scalar {
                    vec![]
                } else {
                    vec![SymInt::Known(s.values.len() as i64)]
                };
                Folded::Sym(SymTensor {
                    scalar: false,
                    values: dims,
                })
            }
            "Reshape" if sym_in(0).is_some() && !self.is_graph_value(n, 0) => {
                let s = sym_in(0).unwrap_or(SymTensor {
                    scalar: true,
                    values: vec![],
                });
                let target = sym_in(1)
                    .and_then(|t| t.known())
                    .ok_or_else(|| a.err("shape must be a constant"))?;
                match target.as_slice() {
                    [] if s.values.len() == 1 => Folded::Sym(SymTensor { scalar: true, ..s }),
                    [k] if *k == -1 || *k == s.values.len() as i64 => {
                        Folded::Sym(SymTensor { scalar: false, ..s })
                    }
                    _ => {
                        return Err(a.err(format!(
                            "cannot reshape a shape value of length {} to {target:?}",
                            s.values.len()
                        )));
                    }
                }
            }
            "ConstantOfShape" => {
                let dims = sym_in(0).and_then(|s| s.known()).ok_or_else(|| {
                    a.err("q8 needs a shape known at import (dynamic ConstantOfShape is not supported)")
                })?;
                let dims = dims
                    .iter()
                    .map(|&d| usize::try_from(d).ok().filter(|&d| d <= crate::ir::MAX_DIM))
                    .collect::<Option<Vec<usize>>>()
                    .ok_or_else(|| a.err(format!("shape {dims:?} has a dimension out of range")))?;
                let count = crate::ir::checked_numel(&dims).map_err(|e| a.err(e.to_string()))?;
                let fill = match a.tensor("value") {
                    Some(t) => {
                        super::tensor::tensor_from_proto(t).map_err(|e| a.err(e.to_string()))?
                    }
                    None => Tensor::from_f32(vec![1], vec![0.0])?,
                };
                if fill.len() != 1 {
                    return Err(a.err("value must have one element"));
                }
                let data = match fill.data() {
                    TensorData::F32(v) => TensorData::F32(vec![v[0]; count]),
                    TensorData::I64(v) => TensorData::I64(vec![v[0]; count]),
                    TensorData::I32(v) => TensorData::I32(vec![v[0]; count]),
                    other => {
                        return Err(
                            a.err(format!("value of type {} is not supported", other.dtype()))
                        );
                    }
                };
                Folded::Tensor(Arc::new(Tensor::new(dims, data)?))
            }
            // Comparisons and selections of constants are the registered ops (evaluated at
            // import); only those reading a shape value with run-time dims fold here.
            "Equal" if all_sym() && n.input.len() == 2 && any_run_time() => {
                let (Some(x), Some(y)) = (sym_in(0), sym_in(1)) else {
                    return Ok(None);
                };
                Folded::Tensor(Arc::new(fold::equal(&x, &y).map_err(|e| a.err(e))?))
            }
            "Where" if n.input.len() == 3 && any_run_time() => {
                let cond = input(n, 0)
                    .and_then(|s| self.constant(s))
                    .and_then(|t| fold::condition(&t));
                let (Some(c), Some(x), Some(y)) = (cond, sym_in(1), sym_in(2)) else {
                    return Ok(None);
                };
                Folded::Sym(fold::select(&c, &x, &y).map_err(|e| a.err(e))?)
            }
            "Shape" => {
                let x = self.value(self.required(n, a, 0)?, a)?;
                let dims = SymTensor::from_dims(self.graph.value(x).ty.shape.dims());
                let len = dims.values.len() as i64;
                let end = if a.has("end") { a.int("end", len) } else { len };
                Folded::Sym(fold::slice(&dims, a.int("start", 0), end, 1).map_err(|e| a.err(e))?)
            }
            "Size" => {
                let x = self.value(self.required(n, a, 0)?, a)?;
                let scalar = |d| SymTensor {
                    scalar: true,
                    values: vec![d],
                };
                let mut dims = SymTensor::from_dims(self.graph.value(x).ty.shape.dims())
                    .values
                    .into_iter()
                    .map(scalar);
                let first = dims.next().unwrap_or(scalar(SymInt::Known(1)));
                let size = dims.try_fold(first, |acc, d| fold::arith("Mul", &acc, &d));
                Folded::Sym(size.map_err(|e| a.err(e))?)
            }
            "Gather" if sym_in(0).is_some() => {
                if a.int("axis", 0) != 0 {
                    return Err(a.err("folding a shape Gather needs axis 0"));
                }
                let (Some(data), Some(idx)) = (sym_in(0), sym_in(1)) else {
                    return Err(a.err("indices must be constant"));
                };
                Folded::Sym(fold::gather(&data, &idx).map_err(|e| a.err(e))?)
            }
            "Unsqueeze" | "Squeeze"
                if sym_in(0).is_some_and(|s| s.scalar == (n.op_type == "Unsqueeze")) =>
            {
                let mut s = sym_in(0).unwrap_or(SymTensor {
                    scalar: false,
                    values: vec![],
                });
                if !s.scalar && s.values.len() != 1 {
                    return Err(a.err("can only squeeze a length-1 shape tensor"));
                }
                s.scalar = !s.scalar;
                Folded::Sym(s)
            }
            "Concat" if all_sym() => {
                let mut values = Vec::new();
                for s in n.input.iter().filter_map(|s| self.sym(s)) {
                    values.extend(s.values);
                }
                Folded::Sym(SymTensor {
                    scalar: false,
                    values,
                })
            }
            "Slice" if sym_in(0).is_some() => {
                let scalar = |i: usize, default: i64| -> Result<i64> {
                    match input(n, i) {
                        None => Ok(default),
                        Some(_) => match sym_in(i).and_then(|s| s.known()).as_deref() {
                            Some([v]) => Ok(*v),
                            _ => {
                                Err(a.err(format!("input {i} must be a constant with one element")))
                            }
                        },
                    }
                };
                if scalar(3, 0)? != 0 {
                    return Err(a.err("folding a shape Slice needs axis 0"));
                }
                let data = sym_in(0).unwrap_or(SymTensor {
                    scalar: false,
                    values: vec![],
                });
                Folded::Sym(
                    fold::slice(&data, scalar(1, 0)?, scalar(2, i64::MAX)?, scalar(4, 1)?)
                        .map_err(|e| a.err(e))?,
                )
            }
            "Add" | "Sub" | "Mul" | "Div" if all_sym() && n.input.len() == 2 => {
                let (x, y) = (sym_in(0), sym_in(1));
                match (x, y) {
                    (Some(x), Some(y)) => {
                        Folded::Sym(fold::arith(&n.op_type, &x, &y).map_err(|e| a.err(e))?)
                    }
                    _ => return Ok(None),
                }
            }
            // A shape value cast to an integer type stays a shape value; any other Cast is
            // the registered op (evaluated at import when its input is constant).
            "Cast"
                if input(n, 0).is_some_and(|s| self.syms.contains_key(s))
                    && matches!(a.int("to", 0), 6 | 7) =>
            {
                Folded::Sym(sym_in(0).unwrap_or(SymTensor {
                    scalar: true,
                    values: vec![],
                }))
            }
            "Identity" | "Dropout" => match input(n, 0) {
                Some(s) if self.syms.contains_key(s) => Folded::Sym(self.syms[s].clone()),
                Some(s) => match self.constant(s) {
                    Some(t) => Folded::Tensor(t),
                    None => return Ok(None),
                },
                None => return Ok(None),
            },
            "Unsqueeze" | "Squeeze" | "Reshape" | "Flatten" => {
                match input(n, 0).and_then(|s| self.constant(s)) {
                    Some(t) => {
                        let (op, _) = self.typed_op(n, a)?;
                        Folded::Tensor(Arc::new(reshape_constant(&t, &op).map_err(|e| a.err(e))?))
                    }
                    None => return Ok(None),
                }
            }
            _ => return Ok(None),
        };
        Ok(Some(folded))
    }

    /// The typed op of a node and the values it reads.
    pub(super) fn typed_op(&self, n: &NodeProto, a: &Attrs) -> Result<(Op, Vec<ValueId>)> {
        let v = |i: usize| -> Result<ValueId> { self.value(self.required(n, a, i)?, a) };
        let rank_of = |id: ValueId| self.graph.value(id).ty.shape.rank();
        let x = v(0)?;
        let op = match n.op_type.as_str() {
            "Conv" => {
                let w = v(1)?;
                let wshape = self.graph.value(w).ty.shape.clone();
                let (kernel, spatial) = match wshape.dims() {
                    [_, _, Dim::Known(k)] => ([1, *k], 1),
                    [_, _, Dim::Known(kh), Dim::Known(kw)] => ([*kh, *kw], 2),
                    _ => {
                        return Err(a.err(format!(
                            "q8 supports 1-D and 2-D convolution with a known kernel; weight shape is {wshape}"
                        )));
                    }
                };
                let groups = usize::try_from(a.int("group", 1))
                    .ok()
                    .filter(|g| (1..=crate::ir::MAX_DIM).contains(g))
                    .ok_or_else(|| a.err(format!("group {} must be >= 1", a.int("group", 1))))?;
                let mut inputs = vec![x, w];
                if let Some(b) = input(n, 2) {
                    inputs.push(self.value(b, a)?);
                }
                return Ok((
                    Op::Conv(Conv {
                        window: self.window(a, kernel, spatial)?,
                        groups,
                    }),
                    inputs,
                ));
            }
            "MaxPool" | "AveragePool" => {
                let kernel = a.sizes("kernel_shape", [0, 0], 1)?;
                if !a.has("kernel_shape") {
                    return Err(a.err("attribute kernel_shape is required"));
                }
                if a.int("storage_order", 0) != 0 {
                    return Err(a.err("storage_order 1 is not supported"));
                }
                let pool = Pool {
                    window: self.window(a, kernel, 2)?,
                    ceil_mode: a.flag("ceil_mode", false)?,
                };
                if n.op_type == "MaxPool" {
                    Op::MaxPool(pool)
                } else {
                    Op::AveragePool {
                        pool,
                        count_include_pad: a.flag("count_include_pad", false)?,
                    }
                }
            }
            "GlobalAveragePool" => Op::GlobalAveragePool,
            "ReduceMean" => {
                let axes: Vec<i64> = if self.opset >= 18 {
                    match input(n, 1) {
                        Some(s) => self
                            .sym(s)
                            .and_then(|t| t.known())
                            .ok_or_else(|| a.err("axes must be a constant"))?,
                        None => vec![],
                    }
                } else {
                    a.ints("axes").map(<[i64]>::to_vec).unwrap_or_default()
                };
                if axes.is_empty() {
                    return Err(a.err("reducing over all axes is not supported"));
                }
                let mut axes = normalize_axes(&axes, rank_of(x)).map_err(|e| a.err(e))?;
                axes.sort_unstable();
                axes.dedup();
                Op::ReduceMean {
                    axes,
                    keepdims: a.flag("keepdims", true)?,
                }
            }
            "Gemm" => {
                let mut inputs = vec![x, v(1)?];
                if let Some(c) = input(n, 2) {
                    inputs.push(self.value(c, a)?);
                }
                let gemm = Gemm {
                    alpha: a.float("alpha", 1.0),
                    beta: a.float("beta", 1.0),
                    trans_a: a.flag("transA", false)?,
                    trans_b: a.flag("transB", false)?,
                };
                return Ok((Op::Gemm(gemm), inputs));
            }
            "MatMul" => return Ok((Op::MatMul, vec![x, v(1)?])),
            "BatchNormalization" => {
                if a.flag("training_mode", false)? {
                    return Err(a.err(
                        "training_mode = 1 is not supported (export the model in eval mode)",
                    ));
                }
                let inputs = (0..5).map(v).collect::<Result<Vec<_>>>()?;
                return Ok((
                    Op::BatchNorm {
                        epsilon: a.float("epsilon", 1e-5),
                    },
                    inputs,
                ));
            }
            "Relu" => Op::Relu,
            "Sigmoid" => Op::Sigmoid,
            "HardSwish" => Op::HardSwish,
            "Identity" | "Dropout" => Op::Identity,
            "Clip" => {
                let bound = |i: usize, default: f32| -> Result<f32> {
                    match input(n, i) {
                        None => Ok(default),
                        Some(s) => match self.constant(s).as_deref().and_then(Tensor::as_f32) {
                            Some([b]) => Ok(*b),
                            _ => Err(a.err(format!("bound '{s}' must be a constant f32 scalar"))),
                        },
                    }
                };
                let (min, max) = if self.opset < 11 {
                    (
                        a.float("min", f32::NEG_INFINITY),
                        a.float("max", f32::INFINITY),
                    )
                } else {
                    (bound(1, f32::NEG_INFINITY)?, bound(2, f32::INFINITY)?)
                };
                if min.is_nan() || max.is_nan() {
                    return Err(a.err("bounds must not be NaN"));
                }
                Op::Clip { min, max }
            }
            "Add" => return Ok((Op::Add, vec![x, v(1)?])),
            "Mul" => return Ok((Op::Mul, vec![x, v(1)?])),
            "Flatten" => {
                let r = rank_of(x) as i64;
                let axis = a.int("axis", 1);
                let axis = if axis < 0 { axis + r } else { axis };
                if !(0..=r).contains(&axis) {
                    return Err(a.err(format!(
                        "axis {} out of range for rank {r}",
                        a.int("axis", 1)
                    )));
                }
                Op::Flatten {
                    axis: axis as usize,
                }
            }
            "Reshape" => {
                let s = self.required(n, a, 1)?;
                let target = self.sym(s).ok_or_else(|| {
                    a.err(format!(
                        "shape input '{s}' must be a constant or a folded shape expression"
                    ))
                })?;
                let allow_zero = a.flag("allowzero", false)?;
                let shape = self.graph.value(x).ty.shape.clone();
                let mut dims = Vec::with_capacity(target.values.len());
                let mut inferred = target.values.contains(&SymInt::Known(-1));
                for (i, t) in target.values.iter().enumerate() {
                    dims.push(match t {
                        SymInt::Known(-1) => ReshapeDim::Infer,
                        SymInt::Known(0) if !allow_zero => ReshapeDim::CopyInput(i),
                        SymInt::Known(k) if *k >= 1 && *k <= crate::ir::MAX_DIM as i64 => {
                            ReshapeDim::Fixed(*k as usize)
                        }
                        SymInt::Known(k) => {
                            return Err(a.err(format!("target dimension {k} is not supported")));
                        }
                        t @ (SymInt::Sym(_) | SymInt::Expr(_)) => {
                            match shape
                                .dims()
                                .iter()
                                .position(|d| matches!(d, Dim::Sym(s) if **s == *fold::show(t)))
                            {
                                Some(axis) => ReshapeDim::CopyInput(axis),
                                // A dim computed from run-time dims: inferred from the element
                                // count, when it is the only such entry.
                                None if !inferred => {
                                    inferred = true;
                                    ReshapeDim::Infer
                                }
                                None => return Err(a.err(format!(
                                    "target dimension '{}' is not a dimension of the input {shape}",
                                    fold::show(t)
                                ))),
                            }
                        }
                    });
                }
                Op::Reshape { target: dims }
            }
            "Unsqueeze" | "Squeeze" => {
                let shape = self.graph.value(x).ty.shape.clone();
                let attr_axes = a.ints("axes").filter(|_| self.opset < 13);
                let axes = match (attr_axes, input(n, 1)) {
                    (Some(axes), _) => axes.to_vec(),
                    (None, Some(s)) => self
                        .sym(s)
                        .and_then(|t| t.known())
                        .ok_or_else(|| a.err("axes must be a constant"))?,
                    (None, None) if n.op_type == "Squeeze" => shape
                        .dims()
                        .iter()
                        .enumerate()
                        .filter(|(_, d)| **d == Dim::Known(1))
                        .map(|(i, _)| i as i64)
                        .collect(),
                    (None, None) => return Err(a.err("axes are required")),
                };
                let unsqueeze = n.op_type == "Unsqueeze";
                let out_rank = if unsqueeze {
                    shape.rank() + axes.len()
                } else {
                    shape.rank()
                };
                let axes = normalize_axes(&axes, out_rank).map_err(|e| a.err(e))?;
                let mut target = Vec::new();
                let mut src = 0;
                for i in 0..out_rank {
                    if unsqueeze && axes.contains(&i) {
                        target.push(ReshapeDim::Fixed(1));
                    } else if !unsqueeze && axes.contains(&i) {
                        if shape.dims()[i] != Dim::Known(1) {
                            return Err(a.err(format!("cannot squeeze axis {i} of {shape}")));
                        }
                        src += 1;
                    } else {
                        target.push(ReshapeDim::CopyInput(src));
                        src += 1;
                    }
                }
                Op::Reshape { target }
            }
            "Concat" => {
                let inputs = (0..n.input.len()).map(v).collect::<Result<Vec<_>>>()?;
                let axis =
                    normalize_axes(&[a.int("axis", 0)], rank_of(x)).map_err(|e| a.err(e))?[0];
                if !a.has("axis") {
                    return Err(a.err("attribute axis is required"));
                }
                return Ok((Op::Concat { axis }, inputs));
            }
            "QuantizeLinear" | "DequantizeLinear" => {
                let quantize = n.op_type == "QuantizeLinear";
                if a.int("block_size", 0) != 0 {
                    return Err(a.err("blocked quantization (block_size) is not supported"));
                }
                let scale_name = self.required(n, a, 1)?;
                let scale = self.constant(scale_name).filter(|t| t.shape().len() <= 1);
                let scales = scale
                    .as_deref()
                    .and_then(Tensor::as_f32)
                    .ok_or_else(|| {
                        a.err(format!(
                            "scale '{scale_name}' must be a constant f32 scalar or vector"
                        ))
                    })?
                    .to_vec();
                let zp = input(n, 2).map(|s| {
                    self.constant(s)
                        .ok_or_else(|| a.err(format!("zero point '{s}' must be a constant")))
                });
                let zp = zp.transpose()?;
                let x_dtype = self.graph.value(x).ty.dtype;
                let dtype = match (&zp, quantize) {
                    (Some(z), _) => z.dtype(),
                    (None, false) => x_dtype,
                    (None, true) => match a.int("output_dtype", 2) {
                        2 => DType::U8,
                        3 => DType::I8,
                        c => return Err(a.err(format!("output_dtype {c} is not supported"))),
                    },
                };
                let zero_points: Vec<i32> = match zp.as_deref().map(Tensor::data) {
                    None => vec![0; scales.len()],
                    Some(TensorData::U8(z)) => z.iter().map(|&v| v as i32).collect(),
                    Some(TensorData::I8(z)) => z.iter().map(|&v| v as i32).collect(),
                    Some(TensorData::I32(z)) => z.clone(),
                    Some(other) => {
                        return Err(a.err(format!(
                            "zero point of type {} is not supported",
                            other.dtype()
                        )));
                    }
                };
                let axis = if scales.len() == 1 {
                    None
                } else {
                    Some(normalize_axes(&[a.int("axis", 1)], rank_of(x)).map_err(|e| a.err(e))?[0])
                };
                let spec = QuantSpec {
                    scales,
                    zero_points,
                    axis,
                    dtype,
                };
                if quantize {
                    Op::QuantizeLinear(spec)
                } else {
                    Op::DequantizeLinear(spec)
                }
            }
            _ => return Err(self.unsupported(n, a)),
        };
        Ok((op, vec![x]))
    }

    /// Window geometry from `kernel_shape`, `strides`, `dilations`, `pads` and `auto_pad`:
    /// the window of a Conv or pool node with `spatial` (1 or 2) spatial axes. A 1-D window
    /// (over `[N, C, L]`) is the 2-D window `1 x k` over `H = 1`: unit stride and dilation
    /// and no padding on H. `kernel` is the weight's (`[1, k]` in 1-D); a `kernel_shape`
    /// attribute must have `spatial` entries and agree with it (checked at inference).
    fn window(&self, a: &Attrs, kernel: [usize; 2], spatial: usize) -> Result<Window2d> {
        let (kernel, strides, dilations, pads) = if spatial == 1 {
            let [k] = a.sizes("kernel_shape", [kernel[1]], 1)?;
            let [s] = a.sizes("strides", [1], 1)?;
            let [d] = a.sizes("dilations", [1], 1)?;
            let [b, e] = a.sizes("pads", [0, 0], 0)?;
            ([1, k], [1, s], [1, d], [0, b, 0, e])
        } else {
            (
                a.sizes("kernel_shape", kernel, 1)?,
                a.sizes("strides", [1, 1], 1)?,
                a.sizes("dilations", [1, 1], 1)?,
                a.sizes("pads", [0, 0, 0, 0], 0)?,
            )
        };
        let padding = match a.string("auto_pad", "NOTSET").as_str() {
            "NOTSET" | "" => Padding::Explicit {
                begin: [pads[0], pads[1]],
                end: [pads[2], pads[3]],
            },
            "SAME_UPPER" => Padding::SameUpper,
            "SAME_LOWER" => Padding::SameLower,
            "VALID" => Padding::Valid,
            other => {
                return Err(a.err(format!(
                    "auto_pad '{other}' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID"
                )));
            }
        };
        let w = Window2d {
            kernel,
            strides,
            dilations,
            padding,
        };
        w.check().map_err(|e| a.err(e))?;
        Ok(w)
    }
}

/// Normalizes possibly negative axes against `rank`.
fn normalize_axes(axes: &[i64], rank: usize) -> std::result::Result<Vec<usize>, String> {
    axes.iter()
        .map(|&ax| {
            normalize_index(ax, rank)
                .ok_or_else(|| format!("axis {ax} out of range for rank {rank}"))
        })
        .collect()
}

/// A shape-only op applied to a constant.
fn reshape_constant(t: &Tensor, op: &Op) -> std::result::Result<Tensor, String> {
    use crate::ir::{Shape, ValueType, infer};
    let ty = ValueType::new(t.dtype(), Shape::known(t.shape()));
    let out = infer(op, "constant", &[&ty]).map_err(|e| e.to_string())?;
    let dims = out[0].shape.to_known().ok_or("result shape is not known")?;
    Tensor::new(dims, t.data().clone()).map_err(|e| e.to_string())
}
