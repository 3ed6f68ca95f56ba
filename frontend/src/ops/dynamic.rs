//! Dynamic quantization ops: `DynamicQuantizeLinear` (opset 11) and `MatMulInteger`
//! (opset 10), the form ONNX Runtime's `quantize_dynamic` writes for linear layers.
//!
//! [`dynamic_qparams`] and [`dynamic_quantize`] are the one definition of the per-call
//! activation quantization: the op's evaluation and the int8 runtime's dynamic linear step
//! both call them, so their bits agree.

use super::matmul::{batch_offset, split};
use super::{OpDef, OpSpec, QuantRule, arity, concrete, def, f32_input, fail};
use crate::error::Result;
use crate::ir::{DType, Dim, Op, Shape, Tensor, TensorData, ValueId, ValueType, broadcast};
use crate::onnx::ImportCx;

/// The per-call qparams `DynamicQuantizeLinear` computes: `y = clamp(rne(x / scale) + zp)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DynamicQParams {
    /// `(max(0, max x) - min(0, min x)) / 255`, in f32; 0 only when every element is 0 (or
    /// so close to 0 that the quotient underflows).
    pub scale: f32,
    /// `clamp(rne(0 - min / scale), 0, 255)`; 0 when `scale` is 0.
    pub zero_point: u8,
}

/// The ONNX `DynamicQuantizeLinear` qparams of `x`, exactly as the spec computes them in
/// f32: the range `[min(0, min x), max(0, max x)]`, `scale = (max - min) / 255`,
/// `zero_point = saturate(round_half_even(0 - min / scale))`.
///
/// Where the spec's formula divides by zero (every element 0, or a range that underflows
/// to a zero scale), the result is `scale = 0, zero_point = 0` (and [`dynamic_quantize`]
/// then gives all zeros, which dequantize to 0).
///
/// ```
/// use q8_frontend::ops::dynamic_qparams;
/// let q = dynamic_qparams(&[-1.0, 0.5, 2.0]).unwrap();
/// assert_eq!((q.scale, q.zero_point), (3.0 / 255.0, 85));
/// assert!(dynamic_qparams(&[1.0, f32::NAN]).is_err());
/// ```
///
/// # Errors
/// A message when `x` holds a NaN or an infinity, or when `max - min` overflows f32 (the
/// scale would not be finite).
pub fn dynamic_qparams(x: &[f32]) -> std::result::Result<DynamicQParams, String> {
    let (lo, hi, finite) = q8_kernels::vector::range_with_zero(x);
    if !finite {
        let bad = x
            .iter()
            .find(|v| !v.is_finite())
            .copied()
            .unwrap_or(f32::NAN);
        return Err(format!(
            "input holds {bad}: a non-finite value has no qparams"
        ));
    }
    let scale = (hi - lo) / 255.0;
    if !scale.is_finite() {
        return Err(format!(
            "input range [{lo}, {hi}] is too wide: its scale overflows f32"
        ));
    }
    if scale == 0.0 {
        return Ok(DynamicQParams {
            scale: 0.0,
            zero_point: 0,
        });
    }
    // saturate(rne(0 - lo / scale)), as quantizing -lo with zero point 0 computes it
    // (negation is exact, so (-lo) / scale is -(lo / scale)).
    let mut zp = [0u8];
    let done = q8_kernels::vector::quantize_dividing(&[-lo], scale, 0, &mut zp);
    debug_assert!(done.is_ok());
    Ok(DynamicQParams {
        scale,
        zero_point: zp[0],
    })
}

/// `y[i] = saturate(round_half_even(x[i] / scale) + zero_point)` (all zeros when the scale
/// is 0). `y` must be as long as `x`.
pub fn dynamic_quantize(x: &[f32], qp: DynamicQParams, y: &mut [u8]) {
    if qp.scale == 0.0 {
        y.fill(0);
        return;
    }
    // Equal lengths are this function's contract.
    let done = q8_kernels::vector::quantize_dividing(x, qp.scale, qp.zero_point, y);
    debug_assert!(done.is_ok());
}

/// `DynamicQuantizeLinear(x)`: `y` (u8, the shape of `x`), `y_scale` (f32 scalar) and
/// `y_zero_point` (u8 scalar) per [`dynamic_qparams`] and [`dynamic_quantize`]. A NaN or
/// infinite input is an error naming the node (the spec's result would be meaningless).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DynamicQuantizeLinear;

impl OpDef for DynamicQuantizeLinear {
    fn name(&self) -> &'static str {
        "DynamicQuantizeLinear"
    }

    fn infer(&self, node: &str, inputs: &[&ValueType]) -> Result<Vec<ValueType>> {
        arity(self, node, inputs.len(), 1, 1)?;
        if inputs[0].dtype != DType::F32 {
            return Err(fail(
                self,
                node,
                format!("input must be f32, got {}", inputs[0].dtype),
            ));
        }
        let scalar = Shape(vec![]);
        Ok(vec![
            ValueType::new(DType::U8, inputs[0].shape.clone()),
            ValueType::new(DType::F32, scalar.clone()),
            ValueType::new(DType::U8, scalar),
        ])
    }

    fn eval(&self, node: &str, inputs: &[&Tensor], outputs: &[ValueType]) -> Result<Vec<Tensor>> {
        let x = f32_input(self, node, inputs, 0)?;
        let shape = concrete(self, node, &outputs[0])?;
        let qp = dynamic_qparams(x).map_err(|e| fail(self, node, e))?;
        let mut y = vec![0u8; x.len()];
        dynamic_quantize(x, qp, &mut y);
        Ok(vec![
            Tensor::new(shape, TensorData::U8(y))?,
            Tensor::from_f32(vec![], vec![qp.scale])?,
            Tensor::new(vec![], TensorData::U8(vec![qp.zero_point]))?,
        ])
    }

    fn quant_rule(&self) -> QuantRule {
        QuantRule::Fp32 {
            why: "already a quantization op (kept as is)",
        }
    }
}

fn import_dql(cx: &ImportCx<'_>) -> Result<(Op, Vec<ValueId>)> {
    if cx.input_count() != 1 {
        return Err(cx.err(format!("expects 1 input, got {}", cx.input_count())));
    }
    Ok((def(DynamicQuantizeLinear), vec![cx.input(0)?]))
}

/// `MatMulInteger(A, B[, a_zero_point[, b_zero_point]])`: `(A - a_zp) x (B - b_zp)` in
/// int32 with numpy matmul semantics (1-D operands promoted, batch dims broadcast).
///
/// A and B are u8 or i8 (each its own); a zero point has its operand's type and is a
/// scalar (or one element) — `b_zero_point` may also hold one value per column (`[N]`).
/// Omitted zero points are 0. Sums wrap modulo 2^32 (two's complement), as the int8
/// kernels' i32 accumulators do; no realistic K gets there (|term| <= 255 * 255).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatMulInteger {
    /// Input 2 (`a_zero_point`) is given.
    pub a_zero_point: bool,
    /// Input 3 (`b_zero_point`) is given (it follows A, B and, when given, a_zero_point in
    /// the node's inputs).
    pub b_zero_point: bool,
}

/// Elements of a u8 / i8 tensor as i32.
fn ints(t: &Tensor) -> Option<Vec<i32>> {
    match t.data() {
        TensorData::U8(v) => Some(v.iter().map(|&x| i32::from(x)).collect()),
        TensorData::I8(v) => Some(v.iter().map(|&x| i32::from(x)).collect()),
        _ => None,
    }
}

impl MatMulInteger {
    /// Input positions of the zero points in the node's inputs.
    fn zp_slots(&self) -> (Option<usize>, Option<usize>) {
        let a = self.a_zero_point.then_some(2);
        let b = self
            .b_zero_point
            .then_some(2 + usize::from(self.a_zero_point));
        (a, b)
    }

    /// Checks the input count, element types and zero-point shapes.
    fn check_types(&self, node: &str, inputs: &[&ValueType]) -> Result<()> {
        let expected = 2 + usize::from(self.a_zero_point) + usize::from(self.b_zero_point);
        arity(self, node, inputs.len(), expected, expected)?;
        for (i, t) in inputs[..2].iter().enumerate() {
            if !matches!(t.dtype, DType::U8 | DType::I8) {
                return Err(fail(
                    self,
                    node,
                    format!("input {i} must be u8 or i8, got {}", t.dtype),
                ));
            }
        }
        let (a_slot, b_slot) = self.zp_slots();
        for (slot, of, per_column) in [(a_slot, 0, false), (b_slot, 1, true)] {
            let Some(s) = slot else { continue };
            let zp = inputs[s];
            if zp.dtype != inputs[of].dtype {
                return Err(fail(
                    self,
                    node,
                    format!(
                        "zero point (input {s}) is {}, its operand is {}",
                        zp.dtype, inputs[of].dtype
                    ),
                ));
            }
            let n = inputs[of].shape.dims().last().cloned();
            let ok = match zp.shape.dims() {
                [] | [Dim::Known(1)] => true,
                [d] => per_column && inputs[of].shape.rank() >= 2 && Some(d) == n.as_ref(),
                _ => false,
            };
            if !ok {
                return Err(fail(
                    self,
                    node,
                    format!(
                        "zero point (input {s}) of shape {} must be a scalar{}",
                        zp.shape,
                        if per_column { " or [N]" } else { "" }
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The zero point at `slot` (one value per column, or one for all), default 0.
    fn zero_points(&self, inputs: &[&Tensor], slot: Option<usize>) -> Option<Vec<i32>> {
        match slot {
            None => Some(vec![0]),
            Some(s) => ints(inputs.get(s)?),
        }
    }
}

/// `c[m x n] = (a - za) x (b - zb[col])` for one matrix pair, wrapping in i32.
fn matmul_i32(c: &mut [i32], a: &[i32], b: &[i32], za: i32, zb: &[i32], k: usize, n: usize) {
    let bz: Vec<i32> = b
        .iter()
        .enumerate()
        .map(|(i, &v)| v.wrapping_sub(zb[if zb.len() == 1 { 0 } else { i % n }]))
        .collect();
    for (row, ar) in c.chunks_exact_mut(n.max(1)).zip(a.chunks_exact(k.max(1))) {
        row.fill(0);
        for (&av, br) in ar.iter().zip(bz.chunks_exact(n.max(1))) {
            let av = av.wrapping_sub(za);
            for (o, &bv) in row.iter_mut().zip(br) {
                *o = o.wrapping_add(av.wrapping_mul(bv));
            }
        }
    }
}

impl OpDef for MatMulInteger {
    fn name(&self) -> &'static str {
        "MatMulInteger"
    }

    fn infer(&self, node: &str, inputs: &[&ValueType]) -> Result<Vec<ValueType>> {
        self.check_types(node, inputs)?;
        let shape = super::matmul::product_shape(self, node, &inputs[0].shape, &inputs[1].shape)?;
        Ok(vec![ValueType::new(DType::I32, shape)])
    }

    fn eval(&self, node: &str, inputs: &[&Tensor], outputs: &[ValueType]) -> Result<Vec<Tensor>> {
        let out = concrete(self, node, &outputs[0])?;
        let bad = || fail(self, node, "an input is not a u8 / i8 tensor");
        let (a, b) = (
            ints(inputs[0]).ok_or_else(bad)?,
            ints(inputs[1]).ok_or_else(bad)?,
        );
        let (a_slot, b_slot) = self.zp_slots();
        let za = self.zero_points(inputs, a_slot).ok_or_else(bad)?;
        let zb = self.zero_points(inputs, b_slot).ok_or_else(bad)?;
        let (ba, m, k) = split(inputs[0].shape(), 1, true);
        let (bb, kb, n) = split(inputs[1].shape(), 1, false);
        if k != kb || (zb.len() != 1 && zb.len() != n) || za.len() != 1 {
            return Err(fail(self, node, "operand shapes do not fit"));
        }
        let batch = broadcast(&Shape::known(&ba), &Shape::known(&bb))
            .ok()
            .and_then(|s| s.to_known())
            .ok_or_else(|| fail(self, node, "batch dims do not broadcast"))?;
        let count: usize = batch.iter().product();
        let mut y = vec![0i32; count * m * n];
        for (i, dst) in y.chunks_exact_mut((m * n).max(1)).enumerate().take(count) {
            let (ia, ib) = (batch_offset(i, &batch, &ba), batch_offset(i, &batch, &bb));
            let am = &a[ia * m * k..(ia + 1) * m * k];
            let bm = &b[ib * k * n..(ib + 1) * k * n];
            matmul_i32(dst, am, bm, za[0], &zb, k, n);
        }
        Ok(vec![Tensor::new(out, TensorData::I32(y))?])
    }

    fn export_inputs(&self, mut inputs: Vec<String>) -> Vec<String> {
        if self.b_zero_point && !self.a_zero_point {
            inputs.insert(2, String::new());
        }
        inputs
    }

    fn quant_rule(&self) -> QuantRule {
        QuantRule::Fp32 {
            why: "already an integer op (kept as is)",
        }
    }
}

fn import_mmi(cx: &ImportCx<'_>) -> Result<(Op, Vec<ValueId>)> {
    if !(2..=4).contains(&cx.input_count()) {
        return Err(cx.err(format!("expects 2..=4 inputs, got {}", cx.input_count())));
    }
    let mut inputs = vec![cx.input(0)?, cx.input(1)?];
    let a_zp = cx.optional(2)?;
    let b_zp = cx.optional(3)?;
    inputs.extend(a_zp);
    inputs.extend(b_zp);
    let op = MatMulInteger {
        a_zero_point: a_zp.is_some(),
        b_zero_point: b_zp.is_some(),
    };
    Ok((def(op), inputs))
}

/// The registry entries.
pub(super) const SPECS: &[OpSpec] = &[
    OpSpec::new("DynamicQuantizeLinear", 11, import_dql),
    OpSpec::new("MatMulInteger", 10, import_mmi),
];
