//! Reductions of f32 tensors over any set of axes: ReduceSum, ReduceMean, ReduceMax,
//! ReduceMin, ReduceProd (accumulated in f64), and ArgMax / ArgMin along one axis.
//! A ReduceMean over H, W of a rank-4 input stays the typed [`Op::ReduceMean`] the int8
//! pipeline lowers to a pool.

use super::layout::walk;
use super::{AttrValue, Exported, OpDef, OpSpec, check_axis, concrete, def, f32_input, one_f32};
use crate::error::Result;
use crate::ir::{DType, Dim, Op, Shape, Tensor, ValueId, ValueType};
use crate::onnx::{ImportCx, normalize_index};

/// The reducing function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceKind {
    /// Sum.
    Sum,
    /// Mean.
    Mean,
    /// Maximum.
    Max,
    /// Minimum.
    Min,
    /// Product.
    Prod,
}

const KINDS: [(&str, ReduceKind); 5] = [
    ("ReduceSum", ReduceKind::Sum),
    ("ReduceMean", ReduceKind::Mean),
    ("ReduceMax", ReduceKind::Max),
    ("ReduceMin", ReduceKind::Min),
    ("ReduceProd", ReduceKind::Prod),
];

/// A reduction over `axes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reduce {
    /// The function.
    pub kind: ReduceKind,
    /// Reduced axes, sorted, distinct.
    pub axes: Vec<usize>,
    /// Keep reduced axes as size 1.
    pub keepdims: bool,
}

/// Output dims of reducing `shape` over `axes` (kept as 1 or removed).
fn reduced_dims(shape: &Shape, axes: &[usize], keepdims: bool) -> Vec<Dim> {
    shape
        .dims()
        .iter()
        .enumerate()
        .filter_map(|(i, d)| match (axes.contains(&i), keepdims) {
            (false, _) => Some(d.clone()),
            (true, true) => Some(Dim::Known(1)),
            (true, false) => None,
        })
        .collect()
}

/// For every element of an input of `shape`, the offset of its reduced output element.
/// `(outer, reduced, inner)` element counts when `axes` (sorted, distinct) are one run of
/// adjacent axes, so the input is `outer` blocks of `reduced` rows of `inner` values.
fn contiguous_split(shape: &[usize], axes: &[usize]) -> Option<(usize, usize, usize)> {
    let (&first, &last) = (axes.first()?, axes.last()?);
    if last - first + 1 != axes.len() {
        return None;
    }
    let count = |r: &[usize]| r.iter().product::<usize>();
    Some((
        count(&shape[..first]),
        count(&shape[first..=last]),
        count(&shape[last + 1..]),
    ))
}

impl ReduceKind {
    /// The accumulator after one more value `v` (f64; NaN propagates for Max / Min: once
    /// the accumulator is NaN no comparison replaces it).
    #[inline(always)]
    fn combine(self, a: f64, v: f64) -> f64 {
        match self {
            ReduceKind::Sum | ReduceKind::Mean => a + v,
            ReduceKind::Prod => a * v,
            ReduceKind::Max if v.is_nan() || v > a => v,
            ReduceKind::Min if v.is_nan() || v < a => v,
            ReduceKind::Max | ReduceKind::Min => a,
        }
    }

    /// [`ReduceKind::combine`] of `row[i]` into `acc[i]`, with the kind chosen once so the
    /// loop vectorizes.
    fn combine_row(self, acc: &mut [f64], row: &[f32]) {
        fn each(acc: &mut [f64], row: &[f32], f: impl Fn(f64, f64) -> f64) {
            for (a, &v) in acc.iter_mut().zip(row) {
                *a = f(*a, f64::from(v));
            }
        }
        match self {
            ReduceKind::Sum | ReduceKind::Mean => each(acc, row, |a, v| a + v),
            ReduceKind::Prod => each(acc, row, |a, v| a * v),
            kind => each(acc, row, |a, v| kind.combine(a, v)),
        }
    }
}

fn out_offsets(shape: &[usize], axes: &[usize]) -> Vec<usize> {
    let mut stride = 1;
    let mut walk_axes = vec![(0, Vec::new()); shape.len()];
    for i in (0..shape.len()).rev() {
        let s = if axes.contains(&i) { 0 } else { stride };
        if !axes.contains(&i) {
            stride *= shape[i];
        }
        walk_axes[i] = (s, (0..shape[i]).collect());
    }
    walk(&walk_axes)
}

impl OpDef for Reduce {
    fn name(&self) -> &'static str {
        KINDS
            .iter()
            .find(|(_, k)| *k == self.kind)
            .map_or("Reduce", |(n, _)| n)
    }

    fn infer(&self, node: &str, inputs: &[&ValueType]) -> Result<Vec<ValueType>> {
        let x = one_f32(self, node, inputs)?;
        for &a in &self.axes {
            check_axis(self, node, a, &x.shape)?;
        }
        let dims = reduced_dims(&x.shape, &self.axes, self.keepdims);
        Ok(vec![ValueType::new(DType::F32, Shape(dims))])
    }

    fn eval(&self, node: &str, inputs: &[&Tensor], outputs: &[ValueType]) -> Result<Vec<Tensor>> {
        let x = f32_input(self, node, inputs, 0)?;
        let out = concrete(self, node, &outputs[0])?;
        let n: usize = out.iter().product();
        let init = match self.kind {
            ReduceKind::Sum | ReduceKind::Mean => 0.0,
            ReduceKind::Prod => 1.0,
            ReduceKind::Max => f64::NEG_INFINITY,
            ReduceKind::Min => f64::INFINITY,
        };
        let mut acc = vec![init; n];
        let shape = inputs[0].shape();
        match contiguous_split(shape, &self.axes) {
            // Whole rows at a time, in the same order per output as the general walk.
            Some((_, len, inner)) if inner > 1 && n > 0 => {
                for (block, a) in x.chunks_exact(len * inner).zip(acc.chunks_exact_mut(inner)) {
                    for row in block.chunks_exact(inner) {
                        self.kind.combine_row(a, row);
                    }
                }
            }
            _ => {
                for (&o, &v) in out_offsets(shape, &self.axes).iter().zip(x) {
                    let a = &mut acc[o];
                    *a = self.kind.combine(*a, f64::from(v));
                }
            }
        }
        let count = (x.len() / n.max(1)) as f64;
        let y = acc
            .into_iter()
            .map(|a| match self.kind {
                ReduceKind::Mean => (a / count) as f32,
                _ => a as f32,
            })
            .collect();
        Ok(vec![Tensor::from_f32(out, y)?])
    }

    fn export(&self, _node: &str) -> Result<Exported> {
        // Opset 17: ReduceSum reads axes as an input, the others as an attribute.
        let axes: Vec<i64> = self.axes.iter().map(|&a| a as i64).collect();
        let keep = ("keepdims", AttrValue::Int(self.keepdims as i64));
        if self.kind == ReduceKind::Sum {
            return Ok(Exported {
                attrs: vec![keep],
                operands: vec![Some(("axes", Tensor::from_i64(vec![axes.len()], axes)?))],
            });
        }
        Ok(Exported {
            attrs: vec![("axes", AttrValue::Ints(axes)), keep],
            operands: vec![],
        })
    }
}

/// The reduced axes of a Reduce* node, normalized, sorted and distinct (all axes when none
/// are given and `noop_with_empty_axes` is 0).
fn axes(cx: &ImportCx<'_>, rank: usize, attr_until: i64) -> Result<Option<Vec<usize>>> {
    let a = cx.attrs();
    let raw = if cx.opset() < attr_until {
        a.ints("axes").map(<[i64]>::to_vec)
    } else {
        cx.const_ints(1)?
    };
    let raw = raw.unwrap_or_default();
    if raw.is_empty() {
        return Ok(if a.flag("noop_with_empty_axes", false)? {
            None
        } else {
            Some((0..rank).collect())
        });
    }
    let mut axes = raw
        .iter()
        .map(|&x| normalize_index(x, rank))
        .collect::<Option<Vec<usize>>>()
        .ok_or_else(|| cx.err(format!("axes {raw:?} out of range for rank {rank}")))?;
    axes.sort_unstable();
    axes.dedup();
    Ok(Some(axes))
}

fn import_reduce(cx: &ImportCx<'_>) -> Result<(Op, Vec<ValueId>)> {
    let kind = KINDS
        .iter()
        .find(|(n, _)| *n == cx.op_type())
        .map(|(_, k)| *k)
        .ok_or_else(|| cx.err("not a reduction"))?;
    let x = cx.input(0)?;
    let rank = cx.ty(x).shape.rank();
    let attr_until = if kind == ReduceKind::Sum { 13 } else { 18 };
    let keepdims = cx.attrs().flag("keepdims", true)?;
    let Some(axes) = axes(cx, rank, attr_until)? else {
        return Ok((Op::Identity, vec![x]));
    };
    if kind == ReduceKind::Mean && rank == 4 && axes == [2, 3] {
        return Ok((Op::ReduceMean { axes, keepdims }, vec![x]));
    }
    Ok((
        def(Reduce {
            kind,
            axes,
            keepdims,
        }),
        vec![x],
    ))
}

/// Index of the largest (ArgMax) or smallest (ArgMin) element along `axis`, as i64.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArgExtreme {
    /// ArgMax (else ArgMin).
    pub max: bool,
    /// Axis, in `0..rank`.
    pub axis: usize,
    /// Keep the axis as size 1.
    pub keepdims: bool,
    /// On ties, the last index (else the first).
    pub last: bool,
}

impl OpDef for ArgExtreme {
    fn name(&self) -> &'static str {
        if self.max { "ArgMax" } else { "ArgMin" }
    }

    fn infer(&self, node: &str, inputs: &[&ValueType]) -> Result<Vec<ValueType>> {
        let x = one_f32(self, node, inputs)?;
        check_axis(self, node, self.axis, &x.shape)?;
        let dims = reduced_dims(&x.shape, &[self.axis], self.keepdims);
        Ok(vec![ValueType::new(DType::I64, Shape(dims))])
    }

    fn eval(&self, node: &str, inputs: &[&Tensor], outputs: &[ValueType]) -> Result<Vec<Tensor>> {
        let x = f32_input(self, node, inputs, 0)?;
        let out = concrete(self, node, &outputs[0])?;
        let s = inputs[0].shape();
        let (len, inner) = (s[self.axis], s[self.axis + 1..].iter().product::<usize>());
        let outer: usize = s[..self.axis].iter().product();
        let mut y = Vec::with_capacity(outer * inner);
        for o in 0..outer {
            for i in 0..inner {
                let mut best = 0usize;
                for k in 1..len {
                    let (v, b) = (
                        x[(o * len + k) * inner + i],
                        x[(o * len + best) * inner + i],
                    );
                    let better = if self.max { v > b } else { v < b };
                    if better || (self.last && v == b) {
                        best = k;
                    }
                }
                y.push(best as i64);
            }
        }
        Ok(vec![Tensor::from_i64(out, y)?])
    }

    fn export(&self, _node: &str) -> Result<Exported> {
        Ok(Exported {
            attrs: vec![
                ("axis", AttrValue::Int(self.axis as i64)),
                ("keepdims", AttrValue::Int(self.keepdims as i64)),
                ("select_last_index", AttrValue::Int(self.last as i64)),
            ],
            operands: vec![],
        })
    }
}

fn import_arg(cx: &ImportCx<'_>) -> Result<(Op, Vec<ValueId>)> {
    let x = cx.input(0)?;
    let rank = cx.ty(x).shape.rank();
    let a = cx.attrs();
    let axis = cx.axis_attr(rank, 0)?;
    let op = ArgExtreme {
        max: cx.op_type() == "ArgMax",
        axis,
        keepdims: a.flag("keepdims", true)?,
        last: a.flag("select_last_index", false)?,
    };
    Ok((def(op), vec![x]))
}

const fn spec(op_type: &'static str, import: super::ImportFn) -> OpSpec {
    OpSpec {
        op_type,
        since: 1,
        import,
    }
}

/// The family's registry entries.
pub(super) const SPECS: &[OpSpec] = &[
    spec("ReduceSum", import_reduce),
    spec("ReduceMean", import_reduce),
    spec("ReduceMax", import_reduce),
    spec("ReduceMin", import_reduce),
    spec("ReduceProd", import_reduce),
    spec("ArgMax", import_arg),
    spec("ArgMin", import_arg),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// The row-at-a-time path gives the general walk's bits (same order per output).
    #[test]
    fn contiguous_axes_match_the_general_walk_bit_for_bit() {
        let shape = [3usize, 4, 5, 6];
        let n: usize = shape.iter().product();
        let mut x: Vec<f32> = (0..n)
            .map(|i| ((i * 37) % 101) as f32 * 0.37 - 17.0)
            .collect();
        x[7] = f32::NAN;
        let t = Tensor::from_f32(shape.to_vec(), x.clone()).unwrap();
        for axes in [
            vec![0],
            vec![1],
            vec![1, 2],
            vec![0, 1, 2],
            vec![2, 3],
            vec![3],
        ] {
            for (_, kind) in KINDS {
                let op = Reduce {
                    kind,
                    axes: axes.clone(),
                    keepdims: true,
                };
                let ty = ValueType::new(DType::F32, Shape::known(&shape));
                let out = op.infer("r", &[&ty]).unwrap();
                let got = op.eval("r", &[&t], &out).unwrap().remove(0);
                let m = got.len();
                let mut acc = vec![
                    match kind {
                        ReduceKind::Prod => 1.0,
                        ReduceKind::Max => f64::NEG_INFINITY,
                        ReduceKind::Min => f64::INFINITY,
                        _ => 0.0,
                    };
                    m
                ];
                for (&o, &v) in out_offsets(&shape, &axes).iter().zip(&x) {
                    acc[o] = kind.combine(acc[o], f64::from(v));
                }
                let count = (n / m) as f64;
                for (g, a) in got.as_f32().unwrap().iter().zip(acc) {
                    let want = if kind == ReduceKind::Mean {
                        a / count
                    } else {
                        a
                    } as f32;
                    assert_eq!(g.to_bits(), want.to_bits(), "{kind:?} over {axes:?}");
                }
            }
        }
    }
}
