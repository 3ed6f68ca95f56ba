//! Element-indexed data movement of any element type and rank: GatherElements (an index
//! per output element along one axis) and Tile (constant repeats per axis).

use super::layout::{select, strides, take};
use super::{AttrValue, Exported, OpDef, OpSpec, arity, check_axis, concrete, def, fail};
use crate::error::Result;
use crate::ir::{DType, Dim, MAX_DIM, Op, Shape, Tensor, TensorData, ValueId, ValueType};
use crate::onnx::{ImportCx, normalize_index};

/// `GatherElements(data, indices)` along `axis`: `out[i] = data[i with i[axis] =
/// indices[i]]`; the output has the indices' shape, which must not exceed the data's on the
/// other axes. Negative indices count from the end; out of range is an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GatherElements {
    /// Axis, in `0..rank`.
    pub axis: usize,
}

/// Integer indices as i64.
fn index_values(op: &dyn OpDef, node: &str, t: &Tensor) -> Result<Vec<i64>> {
    match t.data() {
        TensorData::I64(v) => Ok(v.clone()),
        TensorData::I32(v) => Ok(v.iter().map(|&i| i64::from(i)).collect()),
        other => Err(fail(
            op,
            node,
            format!("indices must be i64 or i32, got {}", other.dtype()),
        )),
    }
}

impl OpDef for GatherElements {
    fn name(&self) -> &'static str {
        "GatherElements"
    }

    fn infer(&self, node: &str, inputs: &[&ValueType]) -> Result<Vec<ValueType>> {
        arity(self, node, inputs.len(), 2, 2)?;
        let (x, idx) = (inputs[0], inputs[1]);
        if !matches!(idx.dtype, DType::I64 | DType::I32) {
            return Err(fail(
                self,
                node,
                format!("indices must be i64 or i32, got {}", idx.dtype),
            ));
        }
        check_axis(self, node, self.axis, &x.shape)?;
        let fits =
            x.shape.rank() == idx.shape.rank()
                && x.shape.dims().iter().zip(idx.shape.dims()).enumerate().all(
                    |(a, (d, i))| match (d, i) {
                        (Dim::Known(d), Dim::Known(i)) => a == self.axis || i <= d,
                        _ => true,
                    },
                );
        if !fits {
            return Err(fail(
                self,
                node,
                format!(
                    "indices of shape {} for data of shape {}",
                    idx.shape, x.shape
                ),
            ));
        }
        Ok(vec![ValueType::new(x.dtype, idx.shape.clone())])
    }

    fn eval(&self, node: &str, inputs: &[&Tensor], outputs: &[ValueType]) -> Result<Vec<Tensor>> {
        let out = concrete(self, node, &outputs[0])?;
        let (x, idx) = (inputs[0], inputs[1]);
        let shape = x.shape();
        if out
            .iter()
            .zip(shape)
            .enumerate()
            .any(|(a, (&o, &d))| a != self.axis && o > d)
        {
            return Err(fail(
                self,
                node,
                format!("indices of shape {out:?} for data of shape {shape:?}"),
            ));
        }
        let values = index_values(self, node, idx)?;
        let (xs, os) = (strides(shape), strides(&out));
        let len = shape[self.axis];
        let mut positions = Vec::with_capacity(values.len());
        for (flat, &v) in values.iter().enumerate() {
            let i = normalize_index(v, len).ok_or_else(|| {
                fail(
                    self,
                    node,
                    format!("index {v} out of range for axis length {len}"),
                )
            })?;
            let offset = (0..out.len()).fold(0, |acc, a| {
                let k = if a == self.axis {
                    i
                } else {
                    flat / os[a] % out[a]
                };
                acc + k * xs[a]
            });
            positions.push(offset);
        }
        Ok(vec![Tensor::new(out, take(x.data(), &positions))?])
    }

    fn export(&self, _node: &str) -> Result<Exported> {
        Ok(Exported {
            attrs: vec![("axis", AttrValue::Int(self.axis as i64))],
            operands: vec![],
        })
    }
}

fn import_gather_elements(cx: &ImportCx<'_>) -> Result<(Op, Vec<ValueId>)> {
    let (x, idx) = (cx.input(0)?, cx.input(1)?);
    let axis = cx.axis_attr(cx.ty(x).shape.rank(), 0)?;
    Ok((def(GatherElements { axis }), vec![x, idx]))
}

/// `Tile(x, repeats)` with constant repeats: output axis `a` is `repeats[a]` copies of the
/// input's axis `a`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tile {
    /// Copies per axis (one per input axis, each in `0..=MAX_DIM`).
    pub repeats: Vec<usize>,
}

impl OpDef for Tile {
    fn name(&self) -> &'static str {
        "Tile"
    }

    fn infer(&self, node: &str, inputs: &[&ValueType]) -> Result<Vec<ValueType>> {
        arity(self, node, inputs.len(), 1, 1)?;
        let x = inputs[0];
        if x.shape.rank() != self.repeats.len() {
            return Err(fail(
                self,
                node,
                format!("{} repeats for shape {}", self.repeats.len(), x.shape),
            ));
        }
        let dims = x
            .shape
            .dims()
            .iter()
            .zip(&self.repeats)
            .map(|(d, &r)| match d {
                Dim::Known(n) => n
                    .checked_mul(r)
                    .filter(|&m| m <= MAX_DIM)
                    .map(Dim::Known)
                    .ok_or_else(|| fail(self, node, format!("{n} x {r} exceeds {MAX_DIM}"))),
                d if r == 1 => Ok(d.clone()),
                d => Ok(Dim::sym(&format!("({d}*{r})"))),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(vec![ValueType::new(x.dtype, Shape(dims))])
    }

    fn eval(&self, node: &str, inputs: &[&Tensor], outputs: &[ValueType]) -> Result<Vec<Tensor>> {
        let out = concrete(self, node, &outputs[0])?;
        let x = inputs[0];
        let picks = out
            .iter()
            .zip(x.shape())
            .map(|(&o, &n)| (0..o).map(|i| i % n).collect())
            .collect();
        Ok(vec![Tensor::new(
            out,
            take(x.data(), &select(x.shape(), picks)),
        )?])
    }

    fn export(&self, _node: &str) -> Result<Exported> {
        let r: Vec<i64> = self.repeats.iter().map(|&r| r as i64).collect();
        Ok(Exported {
            attrs: vec![],
            operands: vec![Some(("repeats", Tensor::from_i64(vec![r.len()], r)?))],
        })
    }
}

fn import_tile(cx: &ImportCx<'_>) -> Result<(Op, Vec<ValueId>)> {
    let x = cx.input(0)?;
    let repeats = cx
        .const_ints(1)?
        .ok_or_else(|| cx.err("input 1 (repeats) is missing"))?;
    let repeats = repeats
        .iter()
        .map(|&r| usize::try_from(r).ok().filter(|&r| r <= MAX_DIM))
        .collect::<Option<Vec<usize>>>()
        .ok_or_else(|| cx.err(format!("repeats {repeats:?} must be in 0..={MAX_DIM}")))?;
    Ok((def(Tile { repeats }), vec![x]))
}

/// The family's registry entries.
pub(super) const SPECS: &[OpSpec] = &[
    OpSpec::new("GatherElements", 11, import_gather_elements),
    OpSpec::new("Tile", 6, import_tile),
];
