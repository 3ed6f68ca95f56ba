//! `Range(start, limit, delta)` with constant start and delta and a constant or run-time
//! limit (the size of a graph input's axis, as `Shape -> Gather -> Range` gives for a
//! sequence length). f32, i64 and i32.

use super::{Exported, OpDef, OpSpec, arity, cast_tensor, concrete, def, fail};
use crate::error::Result;
use crate::ir::{DType, Dim, MAX_DIM, Op, Shape, Tensor, TensorData, ValueId, ValueType};
use crate::onnx::{ImportCx, TargetDim};

/// A scalar of the op's element type.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scalar {
    /// An integer (i64 or i32 op).
    Int(i64),
    /// A float (f32 op).
    Float(f32),
}

impl Scalar {
    fn f64(self) -> f64 {
        match self {
            Scalar::Int(v) => v as f64,
            Scalar::Float(v) => f64::from(v),
        }
    }
}

/// `Range`: `start, start + delta, ...` while before `limit`, `max(ceil((limit - start) /
/// delta), 0)` elements.
#[derive(Clone, Debug, PartialEq)]
pub struct Range {
    /// Element type (f32, i64 or i32).
    pub dtype: DType,
    /// First value.
    pub start: Scalar,
    /// Non-zero step.
    pub delta: Scalar,
    /// The limit when known at import; `None` = the size of axis `limit_axis` of the node's
    /// one input.
    pub limit: Option<Scalar>,
    /// Axis of the input whose size is the limit (when `limit` is `None`).
    pub limit_axis: usize,
}

impl Range {
    /// Number of elements for a concrete limit.
    fn len(&self, node: &str, limit: Scalar) -> Result<usize> {
        let n = match (self.start, limit, self.delta) {
            (Scalar::Int(s), Scalar::Int(l), Scalar::Int(d)) => {
                let span = i128::from(l) - i128::from(s);
                let d = i128::from(d);
                // Ceiling division for either sign of delta.
                let q = span / d + i128::from(span % d != 0 && (span < 0) == (d < 0));
                q.max(0)
            }
            (s, l, d) => ((l.f64() - s.f64()) / d.f64()).ceil().max(0.0) as i128,
        };
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= MAX_DIM)
            .ok_or_else(|| fail(self, node, format!("{n} elements exceed {MAX_DIM}")))
    }
}

impl OpDef for Range {
    fn name(&self) -> &'static str {
        "Range"
    }

    fn infer(&self, node: &str, inputs: &[&ValueType]) -> Result<Vec<ValueType>> {
        let dim = match self.limit {
            Some(l) => {
                arity(self, node, inputs.len(), 0, 0)?;
                Dim::Known(self.len(node, l)?)
            }
            None => {
                arity(self, node, inputs.len(), 1, 1)?;
                match inputs[0].shape.dims().get(self.limit_axis) {
                    Some(Dim::Known(n)) => Dim::Known(self.len(node, Scalar::Int(*n as i64))?),
                    Some(d) if self.start == Scalar::Int(0) && self.delta == Scalar::Int(1) => {
                        d.clone()
                    }
                    Some(d) => Dim::sym(&format!("range({:?},{d},{:?})", self.start, self.delta)),
                    None => {
                        return Err(fail(
                            self,
                            node,
                            format!("input has no axis {}", self.limit_axis),
                        ));
                    }
                }
            }
        };
        Ok(vec![ValueType::new(self.dtype, Shape(vec![dim]))])
    }

    fn eval(&self, node: &str, _inputs: &[&Tensor], outputs: &[ValueType]) -> Result<Vec<Tensor>> {
        let out = concrete(self, node, &outputs[0])?;
        let n = out.first().copied().unwrap_or(0);
        let data = match (self.start, self.delta) {
            (Scalar::Int(s), Scalar::Int(d)) => {
                let v = (0..n as i64).map(|i| s.wrapping_add(i.wrapping_mul(d)));
                match self.dtype {
                    DType::I32 => TensorData::I32(v.map(|x| x as i32).collect()),
                    _ => TensorData::I64(v.collect()),
                }
            }
            // ONNX Runtime accumulates: value += delta per element.
            (s, d) => {
                let (mut x, d) = (s.f64() as f32, d.f64() as f32);
                TensorData::F32(
                    (0..n)
                        .map(|_| {
                            let v = x;
                            x += d;
                            v
                        })
                        .collect(),
                )
            }
        };
        Ok(vec![Tensor::new(out, data)?])
    }

    fn export(&self, node: &str) -> Result<Exported> {
        let scalar = |v: Scalar| match v {
            Scalar::Float(f) => Tensor::from_f32(vec![], vec![f]),
            Scalar::Int(i) => cast_tensor(&Tensor::from_i64(vec![], vec![i])?, self.dtype)
                .ok_or_else(|| fail(self, node, "bad scalar")),
        };
        let limit = self.limit.ok_or_else(|| {
            fail(
                self,
                node,
                "a run-time limit cannot be exported as a constant",
            )
        })?;
        Ok(Exported {
            attrs: vec![],
            operands: vec![
                Some(("start", scalar(self.start)?)),
                Some(("limit", scalar(limit)?)),
                Some(("delta", scalar(self.delta)?)),
            ],
        })
    }
}

/// A constant scalar input of `dtype`.
fn scalar(cx: &ImportCx<'_>, i: usize, dtype: DType) -> Result<Scalar> {
    let one = |n: usize| {
        if n == 1 {
            Ok(())
        } else {
            Err(cx.err(format!("input {i} must have one element, has {n}")))
        }
    };
    if dtype == DType::F32 {
        let v = cx.const_floats(i)?.unwrap_or_default();
        one(v.len())?;
        Ok(Scalar::Float(v[0]))
    } else {
        let v = cx.const_ints(i)?.unwrap_or_default();
        one(v.len())?;
        Ok(Scalar::Int(v[0]))
    }
}

fn import(cx: &ImportCx<'_>) -> Result<(Op, Vec<ValueId>)> {
    let dtype = match cx.optional(0)? {
        Some(v) => cx.ty(v).dtype,
        None => return Err(cx.err("input 0 (start) is missing")),
    };
    if !matches!(dtype, DType::F32 | DType::I64 | DType::I32) {
        return Err(cx.err(format!("element type {dtype} is not supported")));
    }
    let start = scalar(cx, 0, dtype)?;
    let delta = scalar(cx, 2, dtype)?;
    if delta.f64() == 0.0 || !delta.f64().is_finite() || !start.f64().is_finite() {
        return Err(cx.err(format!(
            "start {start:?} and delta {delta:?} must be finite, delta non-zero"
        )));
    }
    let range = |limit, limit_axis| Range {
        dtype,
        start,
        delta,
        limit,
        limit_axis,
    };
    if dtype == DType::F32 {
        let limit = scalar(cx, 1, dtype)?;
        return Ok((def(range(Some(limit), 0)), vec![]));
    }
    match cx.dims_input(1)?.as_slice() {
        [TargetDim::Known(l)] => Ok((def(range(Some(Scalar::Int(*l)), 0)), vec![])),
        [TargetDim::Of(v, axis)] => Ok((def(range(None, *axis)), vec![*v])),
        other => Err(cx.err(format!("limit must have one element, has {}", other.len()))),
    }
}

/// The registry entry.
pub(super) const SPECS: &[OpSpec] = &[OpSpec::new("Range", 11, import)];
