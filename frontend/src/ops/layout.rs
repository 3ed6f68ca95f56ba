//! Data-movement ops of any element type and rank: Transpose, Slice, Gather and Split
//! (Pad has its own module). Each
//! computes, for every output element, the input element it copies ([`take`]).

use rayon::prelude::*;

use super::{AttrValue, Exported, OpDef, OpSpec, arity, check_axis, concrete, def, fail};
use crate::error::Result;
use crate::ir::{DType, Dim, MAX_DIM, Op, Shape, Tensor, TensorData, ValueId, ValueType};
use crate::onnx::{ImportCx, TargetDim, normalize_index, slice_indices};

/// The elements of `data` at `positions`, in order (positions are in range).
pub(super) fn take(data: &TensorData, positions: &[usize]) -> TensorData {
    macro_rules! pick {
        ($($v:ident),*) => {
            match data {
                $(TensorData::$v(x) => TensorData::$v(positions.iter().map(|&i| x[i]).collect()),)*
            }
        };
    }
    pick!(F32, U8, I8, I32, I64, Bool)
}

/// The runs `data[s..s + run]` for each `s` of `starts`, concatenated ([`take`] of whole
/// contiguous blocks, copied as slices).
pub(super) fn take_runs(data: &TensorData, starts: &[usize], run: usize) -> TensorData {
    macro_rules! pick {
        ($($v:ident),*) => {
            match data {
                $(TensorData::$v(x) => {
                    let mut out = Vec::with_capacity(starts.len() * run);
                    for &s in starts {
                        out.extend_from_slice(&x[s..s + run]);
                    }
                    TensorData::$v(out)
                })*
            }
        };
    }
    pick!(F32, U8, I8, I32, I64, Bool)
}

/// Row-major strides of `shape`.
pub(super) fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Input offsets of an output walked in row-major order, where output axis `k` steps the
/// input by `axes[k].0` and visits the input indices `axes[k].1`.
pub(super) fn walk(axes: &[(usize, Vec<usize>)]) -> Vec<usize> {
    let mut offsets = vec![0usize];
    for (stride, picks) in axes {
        offsets = offsets
            .iter()
            .flat_map(|&base| picks.iter().map(move |&i| base + i * stride))
            .collect();
    }
    offsets
}

/// Input offsets of an axis-wise selection (`picks[a]` = the input indices along axis `a`).
pub(super) fn select(shape: &[usize], picks: Vec<Vec<usize>>) -> Vec<usize> {
    let axes: Vec<(usize, Vec<usize>)> = strides(shape).into_iter().zip(picks).collect();
    walk(&axes)
}

/// Outputs from this many elements are filled by the calling pool's threads.
const PARALLEL_FROM: usize = 1 << 16;

/// Output columns per block of a 2-D transpose: the block reads that many input rows side
/// by side, so each output row is written in runs of this length.
const TRANSPOSE_BLOCK: usize = 16;

/// The output of `shape` walked in row-major order, where output axis `k` steps the input
/// by `steps[k]` elements (every offset in range). Large outputs are split over their
/// first axis longer than 1 between the threads of the calling rayon pool (same values).
fn gather_strided<T: Copy + Default + Send + Sync>(
    x: &[T],
    shape: &[usize],
    steps: &[usize],
) -> Vec<T> {
    let n: usize = shape.iter().product();
    let mut out = vec![T::default(); n];
    let split = shape.iter().position(|&d| d > 1);
    match split {
        Some(a) if n >= PARALLEL_FROM => {
            // The axes before `a` are all 1: each index along `a` owns a contiguous chunk.
            out.par_chunks_mut(n / shape[a])
                .enumerate()
                .for_each(|(i, o)| {
                    fill_strided(&x[i * steps[a]..], &shape[a + 1..], &steps[a + 1..], o)
                });
        }
        _ => fill_strided(x, shape, steps, &mut out),
    }
    out
}

/// [`gather_strided`] into `out` (`shape`'s element count) on the calling thread:
/// contiguous innermost runs are copied whole, a transpose of the last two axes goes block
/// by block, and other layouts element by element.
fn fill_strided<T: Copy>(x: &[T], shape: &[usize], steps: &[usize], out: &mut [T]) {
    let Some((&inner, outer)) = shape.split_last() else {
        if let (Some(o), Some(&v)) = (out.first_mut(), x.first()) {
            *o = v;
        }
        return;
    };
    if out.is_empty() {
        return;
    }
    let step = steps[outer.len()];
    if step > 1 && outer.last().is_some() && steps[outer.len() - 1] == 1 {
        let rows = outer[outer.len() - 1];
        let planes: Vec<(usize, Vec<usize>)> = outer[..outer.len() - 1]
            .iter()
            .zip(steps)
            .map(|(&d, &s)| (s, (0..d).collect()))
            .collect();
        for (o, base) in out.chunks_exact_mut(rows * inner).zip(walk(&planes)) {
            transpose_plane(&x[base..], (inner, step), o);
        }
        return;
    }
    let mut index = vec![0usize; outer.len()];
    let mut base = 0usize;
    for o in out.chunks_exact_mut(inner) {
        if step == 1 {
            o.copy_from_slice(&x[base..base + inner]);
        } else {
            for (j, y) in o.iter_mut().enumerate() {
                *y = x[base + j * step];
            }
        }
        // Odometer over the outer axes, last fastest.
        for d in (0..outer.len()).rev() {
            index[d] += 1;
            base += steps[d];
            if index[d] < outer[d] {
                break;
            }
            base -= index[d] * steps[d];
            index[d] = 0;
        }
    }
}

/// `out[i * cols + j] = x[i + j * step]` for every row `i` of `out` and `j < cols`, in
/// blocks of [`TRANSPOSE_BLOCK`] columns (the block's input rows stay in L1 while `i`
/// advances).
fn transpose_plane<T: Copy>(x: &[T], (cols, step): (usize, usize), out: &mut [T]) {
    for j0 in (0..cols).step_by(TRANSPOSE_BLOCK) {
        let j1 = (j0 + TRANSPOSE_BLOCK).min(cols);
        for (i, row) in out.chunks_exact_mut(cols).enumerate() {
            for (j, y) in (j0..j1).zip(&mut row[j0..j1]) {
                *y = x[i + j * step];
            }
        }
    }
}

/// Permutes the axes: output axis `i` is input axis `perm[i]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transpose {
    /// A permutation of `0..rank`.
    pub perm: Vec<usize>,
}

impl OpDef for Transpose {
    fn name(&self) -> &'static str {
        "Transpose"
    }

    fn infer(&self, node: &str, inputs: &[&ValueType]) -> Result<Vec<ValueType>> {
        arity(self, node, inputs.len(), 1, 1)?;
        let x = inputs[0];
        if x.shape.rank() != self.perm.len() {
            return Err(fail(
                self,
                node,
                format!("perm {:?} for shape {}", self.perm, x.shape),
            ));
        }
        let dims = self
            .perm
            .iter()
            .map(|&p| x.shape.dims()[p].clone())
            .collect();
        Ok(vec![ValueType::new(x.dtype, Shape(dims))])
    }

    fn eval(&self, node: &str, inputs: &[&Tensor], outputs: &[ValueType]) -> Result<Vec<Tensor>> {
        let out = concrete(self, node, &outputs[0])?;
        let x = inputs[0];
        let st = strides(x.shape());
        // Output axis k steps the input by the stride of input axis perm[k].
        let steps: Vec<usize> = self.perm.iter().map(|&p| st[p]).collect();
        macro_rules! permute_each {
            ($($v:ident),*) => {
                match x.data() {
                    $(TensorData::$v(d) => TensorData::$v(gather_strided(d, &out, &steps)),)*
                }
            };
        }
        let data = permute_each!(F32, U8, I8, I32, I64, Bool);
        Ok(vec![Tensor::new(out, data)?])
    }

    fn export(&self, _node: &str) -> Result<Exported> {
        let perm = self.perm.iter().map(|&p| p as i64).collect();
        Ok(Exported {
            attrs: vec![("perm", AttrValue::Ints(perm))],
            operands: vec![],
        })
    }
}

fn import_transpose(cx: &ImportCx<'_>) -> Result<(Op, Vec<ValueId>)> {
    let x = cx.input(0)?;
    let rank = cx.ty(x).shape.rank();
    let perm: Vec<usize> = match cx.attrs().ints("perm") {
        None => (0..rank).rev().collect(),
        Some(p) => p
            .iter()
            .map(|&a| usize::try_from(a).ok().filter(|&a| a < rank))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| cx.err(format!("perm {p:?} is not a permutation of 0..{rank}")))?,
    };
    let mut seen = vec![false; rank];
    for &p in &perm {
        seen[p] = true;
    }
    if perm.len() != rank || seen.contains(&false) {
        return Err(cx.err(format!("perm {perm:?} is not a permutation of 0..{rank}")));
    }
    Ok((def(Transpose { perm }), vec![x]))
}

/// One sliced axis: `start`, `end`, `step` as in ONNX (clamped against the axis length).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SliceAxis {
    /// The axis, in `0..rank`.
    pub axis: usize,
    /// First index (negative counts from the end).
    pub start: i64,
    /// One past the last index (negative counts from the end).
    pub end: i64,
    /// Non-zero step.
    pub step: i64,
    /// When set, `end` is instead the run-time size of axis `.1` of node input `.0` (an
    /// extra input: PyTorch slices a buffer to the sequence length this way).
    pub end_of: Option<(usize, usize)>,
}

/// `Slice` with constant starts, axes and steps, and constant or run-time ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slice {
    /// The sliced axes (distinct).
    pub axes: Vec<SliceAxis>,
}

impl Slice {
    /// The concrete end of `a` given the node's input shapes.
    fn end_value(&self, a: &SliceAxis, shapes: &[&[usize]]) -> std::result::Result<i64, String> {
        match a.end_of {
            None => Ok(a.end),
            Some((input, axis)) => shapes
                .get(input)
                .and_then(|s| s.get(axis))
                .map(|&n| n as i64)
                .ok_or_else(|| format!("input {input} has no axis {axis}")),
        }
    }

    fn picks(&self, shapes: &[&[usize]]) -> std::result::Result<Vec<Vec<usize>>, String> {
        let shape = shapes[0];
        let mut picks: Vec<Vec<usize>> = shape.iter().map(|&n| (0..n).collect()).collect();
        for a in &self.axes {
            let end = self.end_value(a, shapes)?;
            picks[a.axis] = slice_indices(shape[a.axis], a.start, end, a.step)?;
        }
        Ok(picks)
    }
}

impl OpDef for Slice {
    fn name(&self) -> &'static str {
        "Slice"
    }

    fn infer(&self, node: &str, inputs: &[&ValueType]) -> Result<Vec<ValueType>> {
        arity(self, node, inputs.len(), 1, usize::MAX)?;
        let x = inputs[0];
        let mut dims = x.shape.dims().to_vec();
        for a in &self.axes {
            check_axis(self, node, a.axis, &x.shape)?;
            let end = match a.end_of {
                None => Some(a.end),
                Some((i, axis)) => match inputs.get(i).and_then(|t| t.shape.dims().get(axis)) {
                    Some(Dim::Known(n)) => Some(*n as i64),
                    Some(Dim::Sym(_)) => None,
                    None => return Err(fail(self, node, format!("input {i} has no axis {axis}"))),
                },
            };
            let d = &mut dims[a.axis];
            *d = match (&*d, end) {
                (Dim::Known(n), Some(end)) => Dim::Known(
                    slice_indices(*n, a.start, end, a.step)
                        .map_err(|e| fail(self, node, e))?
                        .len(),
                ),
                (Dim::Sym(_), Some(end))
                    if a.start == 0 && a.step == 1 && end >= MAX_DIM as i64 =>
                {
                    d.clone()
                }
                // `x[0:n]` for a run-time `n`: assumed within the axis (checked at run time).
                (_, None) if a.start == 0 && a.step == 1 => a
                    .end_of
                    .and_then(|(i, axis)| inputs.get(i)?.shape.dims().get(axis).cloned())
                    .unwrap_or_else(|| d.clone()),
                (d, _) => Dim::sym(&format!("{d}[{}:{:?}:{}]", a.start, end, a.step)),
            };
        }
        Ok(vec![ValueType::new(x.dtype, Shape(dims))])
    }

    fn eval(&self, node: &str, inputs: &[&Tensor], outputs: &[ValueType]) -> Result<Vec<Tensor>> {
        let out = concrete(self, node, &outputs[0])?;
        let x = inputs[0];
        let shapes: Vec<&[usize]> = inputs.iter().map(|t| t.shape()).collect();
        let picks = self.picks(&shapes).map_err(|e| fail(self, node, e))?;
        Ok(vec![Tensor::new(
            out,
            take(x.data(), &select(x.shape(), picks)),
        )?])
    }

    fn export(&self, node: &str) -> Result<Exported> {
        if self.axes.iter().any(|a| a.end_of.is_some()) {
            return Err(fail(
                self,
                node,
                "a run-time end cannot be exported as a constant",
            ));
        }
        let list = |role: &'static str,
                    f: fn(&SliceAxis) -> i64|
         -> Result<Option<(&'static str, Tensor)>> {
            let v: Vec<i64> = self.axes.iter().map(f).collect();
            Ok(Some((role, Tensor::from_i64(vec![v.len()], v)?)))
        };
        Ok(Exported {
            attrs: vec![],
            operands: vec![
                list("starts", |a| a.start)?,
                list("ends", |a| a.end)?,
                list("axes", |a| a.axis as i64)?,
                list("steps", |a| a.step)?,
            ],
        })
    }
}

fn import_slice(cx: &ImportCx<'_>) -> Result<(Op, Vec<ValueId>)> {
    let x = cx.input(0)?;
    let rank = cx.ty(x).shape.rank();
    let a = cx.attrs();
    let (starts, ends, axes, steps) = if cx.opset() < 10 {
        let get = |k: &str| a.ints(k).map(<[i64]>::to_vec);
        (get("starts"), get("ends"), get("axes"), None)
    } else {
        (
            cx.const_ints(1)?,
            Some(vec![]),
            cx.const_ints(3)?,
            cx.const_ints(4)?,
        )
    };
    // Ends: constants, or folded shape values whose run-time entries come from a graph input.
    let mut inputs = vec![x];
    let mut end_of = Vec::new();
    let ends = if cx.opset() < 10 {
        ends
    } else {
        let mut known = Vec::new();
        for d in cx.dims_input(2)? {
            match d {
                TargetDim::Known(k) => {
                    known.push(k);
                    end_of.push(None);
                }
                TargetDim::Of(v, axis) => {
                    known.push(i64::MAX);
                    if !inputs.contains(&v) {
                        inputs.push(v);
                    }
                    let input = inputs.iter().position(|&i| i == v).unwrap_or(0);
                    end_of.push(Some((input, axis)));
                }
            }
        }
        Some(known)
    };
    let (Some(starts), Some(ends)) = (starts, ends) else {
        return Err(cx.err("starts and ends are required"));
    };
    let n = starts.len();
    let axes = axes.unwrap_or_else(|| (0..n as i64).collect());
    let steps = steps.unwrap_or_else(|| vec![1; n]);
    if ends.len() != n || axes.len() != n || steps.len() != n {
        return Err(cx.err(format!(
            "starts, ends, axes and steps have {n}, {}, {} and {} entries",
            ends.len(),
            axes.len(),
            steps.len()
        )));
    }
    let mut out: Vec<SliceAxis> = Vec::with_capacity(n);
    for i in 0..n {
        let axis = normalize_index(axes[i], rank)
            .ok_or_else(|| cx.err(format!("axis {} out of range for rank {rank}", axes[i])))?;
        if out.iter().any(|s| s.axis == axis) || steps[i] == 0 {
            return Err(cx.err(format!("axis {axis} repeats or has step 0")));
        }
        out.push(SliceAxis {
            axis,
            start: starts[i],
            end: ends[i],
            step: steps[i],
            end_of: end_of.get(i).copied().flatten(),
        });
    }
    Ok((def(Slice { axes: out }), inputs))
}

/// `Gather` along `axis` with run-time or constant integer indices (negative ones count
/// from the end; out of range is an error naming the index).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gather {
    /// Axis of the data, in `0..rank`.
    pub axis: usize,
}

impl OpDef for Gather {
    fn name(&self) -> &'static str {
        "Gather"
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
        let d = x.shape.dims();
        let dims = [&d[..self.axis], idx.shape.dims(), &d[self.axis + 1..]].concat();
        Ok(vec![ValueType::new(x.dtype, Shape(dims))])
    }

    fn eval(&self, node: &str, inputs: &[&Tensor], outputs: &[ValueType]) -> Result<Vec<Tensor>> {
        let out = concrete(self, node, &outputs[0])?;
        let (x, idx) = (inputs[0], inputs[1]);
        let len = x.shape()[self.axis];
        let raw: Vec<i64> = match idx.data() {
            TensorData::I64(v) => v.clone(),
            TensorData::I32(v) => v.iter().map(|&i| i64::from(i)).collect(),
            other => {
                return Err(fail(
                    self,
                    node,
                    format!("indices of type {}", other.dtype()),
                ));
            }
        };
        let picked = raw
            .iter()
            .map(|&i| {
                normalize_index(i, len).ok_or_else(|| {
                    fail(
                        self,
                        node,
                        format!("index {i} out of range for axis length {len}"),
                    )
                })
            })
            .collect::<Result<Vec<usize>>>()?;
        let outer: usize = x.shape()[..self.axis].iter().product();
        let inner: usize = x.shape()[self.axis + 1..].iter().product();
        let starts: Vec<usize> = (0..outer)
            .flat_map(|o| picked.iter().map(move |&p| (o * len + p) * inner))
            .collect();
        Ok(vec![Tensor::new(out, take_runs(x.data(), &starts, inner))?])
    }

    fn export(&self, _node: &str) -> Result<Exported> {
        Ok(Exported {
            attrs: vec![("axis", AttrValue::Int(self.axis as i64))],
            operands: vec![],
        })
    }
}

fn import_gather(cx: &ImportCx<'_>) -> Result<(Op, Vec<ValueId>)> {
    let (x, idx) = (cx.input(0)?, cx.input(1)?);
    let rank = cx.ty(x).shape.rank();
    let axis = cx.axis_attr(rank, 0)?;
    Ok((def(Gather { axis }), vec![x, idx]))
}

/// `Split` into consecutive parts of the given lengths along `axis`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    /// Axis, in `0..rank`.
    pub axis: usize,
    /// Part lengths (`None`: equal parts, the last one smaller when the length does not
    /// divide, as ONNX does).
    pub sizes: Option<Vec<usize>>,
    /// Number of parts (outputs).
    pub parts: usize,
}

impl Split {
    fn lengths(&self, len: usize) -> std::result::Result<Vec<usize>, String> {
        match &self.sizes {
            Some(s) if s.iter().sum::<usize>() == len => Ok(s.clone()),
            Some(s) => Err(format!("split {s:?} does not sum to the axis length {len}")),
            None => {
                let each = len.div_ceil(self.parts);
                let mut v = vec![each; self.parts];
                let last = len.checked_sub(each * (self.parts - 1));
                match last {
                    Some(l) => {
                        v[self.parts - 1] = l;
                        Ok(v)
                    }
                    None => Err(format!(
                        "cannot split length {len} into {} parts",
                        self.parts
                    )),
                }
            }
        }
    }
}

impl OpDef for Split {
    fn name(&self) -> &'static str {
        "Split"
    }

    fn infer(&self, node: &str, inputs: &[&ValueType]) -> Result<Vec<ValueType>> {
        arity(self, node, inputs.len(), 1, 1)?;
        let x = inputs[0];
        let d = x.shape.dims().get(self.axis).ok_or_else(|| {
            fail(
                self,
                node,
                format!("axis {} out of range for {}", self.axis, x.shape),
            )
        })?;
        let lens: Vec<Dim> = match d {
            Dim::Known(n) => self
                .lengths(*n)
                .map_err(|e| fail(self, node, e))?
                .into_iter()
                .map(Dim::Known)
                .collect(),
            Dim::Sym(s) => match &self.sizes {
                Some(v) => v.iter().map(|&n| Dim::Known(n)).collect(),
                None => (0..self.parts)
                    .map(|i| Dim::sym(&format!("{s}/{}#{i}", self.parts)))
                    .collect(),
            },
        };
        Ok(lens
            .into_iter()
            .map(|l| {
                let mut dims = x.shape.dims().to_vec();
                dims[self.axis] = l;
                ValueType::new(x.dtype, Shape(dims))
            })
            .collect())
    }

    fn eval(&self, node: &str, inputs: &[&Tensor], outputs: &[ValueType]) -> Result<Vec<Tensor>> {
        let x = inputs[0];
        let shape = x.shape();
        let lens = self
            .lengths(shape[self.axis])
            .map_err(|e| fail(self, node, e))?;
        let mut start = 0;
        let mut out = Vec::with_capacity(lens.len());
        for (len, ty) in lens.iter().zip(outputs) {
            let mut picks: Vec<Vec<usize>> = shape.iter().map(|&n| (0..n).collect()).collect();
            picks[self.axis] = (start..start + len).collect();
            start += len;
            let dims = concrete(self, node, ty)?;
            out.push(Tensor::new(dims, take(x.data(), &select(shape, picks)))?);
        }
        Ok(out)
    }

    fn export(&self, _node: &str) -> Result<Exported> {
        let operands = match &self.sizes {
            Some(s) => {
                let v: Vec<i64> = s.iter().map(|&n| n as i64).collect();
                vec![Some(("split", Tensor::from_i64(vec![v.len()], v)?))]
            }
            None => vec![],
        };
        Ok(Exported {
            attrs: vec![("axis", AttrValue::Int(self.axis as i64))],
            operands,
        })
    }
}

fn import_split(cx: &ImportCx<'_>) -> Result<(Op, Vec<ValueId>)> {
    let x = cx.input(0)?;
    let rank = cx.ty(x).shape.rank();
    let a = cx.attrs();
    let axis = cx.axis_attr(rank, 0)?;
    let sizes = if cx.opset() < 13 {
        a.ints("split").map(<[i64]>::to_vec)
    } else {
        cx.const_ints(1)?
    };
    let parts = match (a.has("num_outputs"), &sizes) {
        (true, _) => usize::try_from(a.int("num_outputs", 0)).unwrap_or(0),
        (false, Some(s)) => s.len(),
        (false, None) => cx.output_count(),
    };
    if parts == 0 || parts > MAX_DIM {
        return Err(cx.err(format!("cannot split into {parts} parts")));
    }
    let sizes = sizes
        .map(|s| {
            s.iter()
                .map(|&v| usize::try_from(v).ok().filter(|&v| v <= MAX_DIM))
                .collect::<Option<Vec<usize>>>()
                .ok_or_else(|| cx.err(format!("split sizes {s:?} must be in 0..={MAX_DIM}")))
        })
        .transpose()?;
    Ok((def(Split { axis, sizes, parts }), vec![x]))
}

/// The family's registry entries.
pub(super) const SPECS: &[OpSpec] = &[
    OpSpec {
        op_type: "Transpose",
        since: 1,
        import: import_transpose,
    },
    OpSpec {
        op_type: "Slice",
        since: 1,
        import: import_slice,
    },
    OpSpec {
        op_type: "Gather",
        since: 1,
        import: import_gather,
    },
    OpSpec {
        op_type: "Split",
        since: 2,
        import: import_split,
    },
];

#[cfg(test)]
mod tests {
    use super::{gather_strided, strides};

    fn permutations(n: usize) -> Vec<Vec<usize>> {
        if n == 0 {
            return vec![vec![]];
        }
        let mut all = Vec::new();
        for p in permutations(n - 1) {
            for at in 0..=p.len() {
                let mut q = p.clone();
                q.insert(at, n - 1);
                all.push(q);
            }
        }
        all
    }

    /// Every permutation of ranks 0 to 4 (unit, empty and ragged dims) against the output
    /// index decomposed element by element.
    #[test]
    fn strided_gather_transposes_like_the_definition() {
        for shape in [
            vec![],
            vec![5],
            vec![2, 3],
            vec![3, 1, 4],
            vec![2, 0, 3],
            vec![2, 3, 1, 5],
            vec![1, 4, 3, 2],
            // Transposed planes with block tails (16-column blocks).
            vec![3, 17, 33],
            vec![2, 16, 1, 18],
            // Large enough to be split between threads.
            vec![1, 4, 130, 129],
        ] {
            let n: usize = shape.iter().product();
            let x: Vec<u32> = (0..n as u32).collect();
            let st = strides(&shape);
            for perm in permutations(shape.len()) {
                let out: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
                let steps: Vec<usize> = perm.iter().map(|&p| st[p]).collect();
                let got = gather_strided(&x, &out, &steps);
                let want: Vec<u32> = (0..n)
                    .map(|flat| {
                        let (mut rest, mut at) = (flat, 0);
                        for k in (0..out.len()).rev() {
                            at += rest % out[k] * steps[k];
                            rest /= out[k];
                        }
                        x[at]
                    })
                    .collect();
                assert_eq!(got, want, "shape {shape:?} perm {perm:?}");
            }
        }
    }
}
