//! TopK (opsets 1, 10, 11): the `k` largest (or smallest) entries along one axis and their
//! int64 indices.

use std::cmp::Ordering;

use super::{AttrValue, Exported, OpDef, OpSpec, arity, check_axis, concrete, def, fail};
use crate::error::Result;
use crate::ir::{DType, Dim, MAX_DIM, Op, Shape, Tensor, TensorData, ValueId, ValueType};
use crate::onnx::ImportCx;

/// `TopK(x)` along `axis` with a constant `k`: outputs `Values` (the input's type) and
/// `Indices` (i64), both of the input's shape with axis `axis` of length `k`.
///
/// Order: largest first when `largest`, else smallest first; equal values keep the lower
/// index first (ONNX Runtime's order). NaN compares greater than every number (so it comes
/// first when `largest` and last otherwise) and equal to NaN. The output is always sorted
/// (`sorted = 0` leaves the order unspecified, so sorted is a valid answer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopK {
    /// Axis, in `0..rank`.
    pub axis: usize,
    /// Entries kept, in `0..=MAX_DIM`.
    pub k: usize,
    /// Largest (true) or smallest entries.
    pub largest: bool,
    /// The `sorted` attribute, kept for export.
    pub sorted: bool,
}

/// The total order TopK sorts by: numeric, NaN above every number.
fn order_f32(a: f32, b: f32) -> Ordering {
    a.partial_cmp(&b)
        .unwrap_or_else(|| a.is_nan().cmp(&b.is_nan()))
}

impl TopK {
    /// Checks `k` fits an axis of length `len`.
    fn check_k(&self, node: &str, len: usize) -> Result<()> {
        if self.k > len {
            return Err(fail(
                self,
                node,
                format!("k = {} exceeds the axis length {len}", self.k),
            ));
        }
        Ok(())
    }

    /// Positions (along the axis) of the kept entries of one line `line[0..len]`.
    fn pick(&self, len: usize, cmp: impl Fn(usize, usize) -> Ordering) -> Vec<usize> {
        let mut pos: Vec<usize> = (0..len).collect();
        // A stable sort keeps equal values in index order.
        if self.largest {
            pos.sort_by(|&a, &b| cmp(b, a));
        } else {
            pos.sort_by(|&a, &b| cmp(a, b));
        }
        pos.truncate(self.k);
        pos
    }

    /// Source offsets of the kept entries, in output order, and their axis indices.
    fn select(
        &self,
        shape: &[usize],
        cmp: impl Fn(usize, usize) -> Ordering,
    ) -> (Vec<usize>, Vec<i64>) {
        let len = shape[self.axis];
        let inner: usize = shape[self.axis + 1..].iter().product();
        let outer: usize = shape[..self.axis].iter().product();
        let n = outer * self.k * inner;
        let (mut src, mut idx) = (vec![0; n], vec![0i64; n]);
        for o in 0..outer {
            for i in 0..inner {
                let base = o * len * inner + i;
                let kept = self.pick(len, |a, b| cmp(base + a * inner, base + b * inner));
                for (j, &p) in kept.iter().enumerate() {
                    let at = (o * self.k + j) * inner + i;
                    src[at] = base + p * inner;
                    idx[at] = p as i64;
                }
            }
        }
        (src, idx)
    }
}

impl OpDef for TopK {
    fn name(&self) -> &'static str {
        "TopK"
    }

    fn infer(&self, node: &str, inputs: &[&ValueType]) -> Result<Vec<ValueType>> {
        arity(self, node, inputs.len(), 1, 1)?;
        let x = inputs[0];
        if !matches!(x.dtype, DType::F32 | DType::I64 | DType::I32) {
            return Err(fail(
                self,
                node,
                format!("input must be f32, i64 or i32, got {}", x.dtype),
            ));
        }
        check_axis(self, node, self.axis, &x.shape)?;
        if let Dim::Known(len) = x.shape.dims()[self.axis] {
            self.check_k(node, len)?;
        }
        let mut dims = x.shape.dims().to_vec();
        dims[self.axis] = Dim::Known(self.k);
        let shape = Shape(dims);
        Ok(vec![
            ValueType::new(x.dtype, shape.clone()),
            ValueType::new(DType::I64, shape),
        ])
    }

    fn eval(&self, node: &str, inputs: &[&Tensor], outputs: &[ValueType]) -> Result<Vec<Tensor>> {
        let x = inputs[0];
        let shape = x.shape();
        check_axis(self, node, self.axis, &Shape::known(shape))?;
        self.check_k(node, shape[self.axis])?;
        let out = concrete(self, node, &outputs[0])?;
        let (src, idx) = match x.data() {
            TensorData::F32(v) => self.select(shape, |a, b| order_f32(v[a], v[b])),
            TensorData::I64(v) => self.select(shape, |a, b| v[a].cmp(&v[b])),
            TensorData::I32(v) => self.select(shape, |a, b| v[a].cmp(&v[b])),
            other => {
                return Err(fail(
                    self,
                    node,
                    format!("input must be f32, i64 or i32, got {}", other.dtype()),
                ));
            }
        };
        let values = super::layout::take(x.data(), &src);
        Ok(vec![
            Tensor::new(out.clone(), values)?,
            Tensor::from_i64(out, idx)?,
        ])
    }

    fn export(&self, _node: &str) -> Result<Exported> {
        Ok(Exported {
            attrs: vec![
                ("axis", AttrValue::Int(self.axis as i64)),
                ("largest", AttrValue::Int(i64::from(self.largest))),
                ("sorted", AttrValue::Int(i64::from(self.sorted))),
            ],
            operands: vec![Some(("k", Tensor::from_i64(vec![1], vec![self.k as i64])?))],
        })
    }
}

fn import(cx: &ImportCx<'_>) -> Result<(Op, Vec<ValueId>)> {
    let x = cx.input(0)?;
    let a = cx.attrs();
    let axis = cx.axis_attr(cx.ty(x).shape.rank(), -1)?;
    let k = if cx.opset() < 10 {
        if !a.has("k") {
            return Err(cx.err("attribute k is missing"));
        }
        a.int("k", 0)
    } else {
        match cx.const_ints(1)?.as_deref() {
            Some([k]) => *k,
            Some(v) => return Err(cx.err(format!("k must hold one value, got {v:?}"))),
            None => return Err(cx.err("input 1 (k) is missing")),
        }
    };
    let k = usize::try_from(k)
        .ok()
        .filter(|&k| k <= MAX_DIM)
        .ok_or_else(|| cx.err(format!("k = {k} must be in 0..={MAX_DIM}")))?;
    let (largest, sorted) = if cx.opset() < 11 {
        (true, true)
    } else {
        (a.flag("largest", true)?, a.flag("sorted", true)?)
    };
    let op = TopK {
        axis,
        k,
        largest,
        sorted,
    };
    Ok((def(op), vec![x]))
}

/// The registry entry.
pub(super) const SPECS: &[OpSpec] = &[OpSpec::new("TopK", 1, import)];
