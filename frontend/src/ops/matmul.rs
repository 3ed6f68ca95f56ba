//! MatMul of any ranks with numpy semantics: 1-D operands are promoted (and the added axis
//! removed again), batch axes broadcast. `A [.., M, K] x B [K, N]` (rank-2 B) stays the
//! typed [`Op::MatMul`] the int8 pipeline lowers as a linear layer.

use super::{OpDef, OpSpec, all_f32, arity, concrete, def, f32_input, fail};
use crate::error::Result;
use crate::exec::matmul::{Operand, gemm};
use crate::ir::{DType, Dim, Op, Shape, Tensor, ValueId, ValueType, broadcast};
use crate::onnx::ImportCx;

/// Batched, broadcasting matrix product.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchMatMul;

/// `(batch dims, M, K)` of A and `(batch dims, K, N)` of B after 1-D promotion.
pub(super) fn split<T: Clone>(dims: &[T], one: T, is_a: bool) -> (Vec<T>, T, T) {
    let promoted: Vec<T> = match (dims.len(), is_a) {
        (1, true) => vec![one, dims[0].clone()],
        (1, false) => vec![dims[0].clone(), one],
        _ => dims.to_vec(),
    };
    let r = promoted.len();
    (
        promoted[..r - 2].to_vec(),
        promoted[r - 2].clone(),
        promoted[r - 1].clone(),
    )
}

/// numpy matmul's output shape of `a x b` (rank >= 1 each; a 1-D operand is promoted and its
/// axis dropped; batch axes broadcast), for `op`'s node `node`.
pub(super) fn product_shape(op: &dyn OpDef, node: &str, a: &Shape, b: &Shape) -> Result<Shape> {
    if a.rank() == 0 || b.rank() == 0 {
        return Err(fail(
            op,
            node,
            format!("needs operands of rank >= 1, got {a} and {b}"),
        ));
    }
    let (ba, m, ka) = split(a.dims(), Dim::Known(1), true);
    let (bb, kb, n) = split(b.dims(), Dim::Known(1), false);
    if let (Dim::Known(x), Dim::Known(y)) = (&ka, &kb)
        && x != y
    {
        return Err(fail(
            op,
            node,
            format!("inner dimensions differ: A {a} vs B {b}"),
        ));
    }
    let batch = broadcast(&Shape(ba), &Shape(bb)).map_err(|e| fail(op, node, e))?;
    let mut dims = batch.0;
    if a.rank() > 1 {
        dims.push(m);
    }
    if b.rank() > 1 {
        dims.push(n);
    }
    Ok(Shape(dims))
}

impl OpDef for BatchMatMul {
    fn name(&self) -> &'static str {
        "MatMul"
    }

    fn infer(&self, node: &str, inputs: &[&ValueType]) -> Result<Vec<ValueType>> {
        arity(self, node, inputs.len(), 2, 2)?;
        all_f32(self, node, inputs)?;
        let shape = product_shape(self, node, &inputs[0].shape, &inputs[1].shape)?;
        Ok(vec![ValueType::new(DType::F32, shape)])
    }

    fn eval(&self, node: &str, inputs: &[&Tensor], outputs: &[ValueType]) -> Result<Vec<Tensor>> {
        let (a, b) = (
            f32_input(self, node, inputs, 0)?,
            f32_input(self, node, inputs, 1)?,
        );
        let out = concrete(self, node, &outputs[0])?;
        let (ba, m, k) = split(inputs[0].shape(), 1, true);
        let (bb, _, n) = split(inputs[1].shape(), 1, false);
        let batch = broadcast(&Shape::known(&ba), &Shape::known(&bb))
            .ok()
            .and_then(|s| s.to_known())
            .ok_or_else(|| fail(self, node, "batch dims do not broadcast"))?;
        let count: usize = batch.iter().product();
        let mut y = vec![0.0f32; count * m * n];
        for (i, dst) in y.chunks_exact_mut((m * n).max(1)).enumerate().take(count) {
            let (ia, ib) = (batch_offset(i, &batch, &ba), batch_offset(i, &batch, &bb));
            gemm(
                dst,
                n,
                Operand::new(&a[ia * m * k..(ia + 1) * m * k], m, k),
                Operand::new(&b[ib * k * n..(ib + 1) * k * n], k, n),
                1.0,
                false,
                1,
            );
        }
        Ok(vec![Tensor::from_f32(out, y)?])
    }
}

/// The matrix index, in an operand with batch dims `dims`, of output batch entry `i` of the
/// broadcast batch shape `batch` (size-1 and missing axes repeat).
pub(super) fn batch_offset(i: usize, batch: &[usize], dims: &[usize]) -> usize {
    let (mut rest, mut at, mut stride) = (i, 0, 1);
    for (axis, &len) in batch.iter().enumerate().rev() {
        let pos = rest % len;
        rest /= len;
        let offset = axis + dims.len();
        if offset >= batch.len() {
            let d = dims[offset - batch.len()];
            at += if d == 1 { 0 } else { pos * stride };
            stride *= d;
        }
    }
    at
}

fn import(cx: &ImportCx<'_>) -> Result<(Op, Vec<ValueId>)> {
    let (a, b) = (cx.input(0)?, cx.input(1)?);
    if cx.ty(a).shape.rank() >= 2 && cx.ty(b).shape.rank() == 2 {
        return crate::onnx::typed_import(cx);
    }
    Ok((def(BatchMatMul), vec![a, b]))
}

/// The registry entry.
pub(super) const SPECS: &[OpSpec] = &[OpSpec {
    op_type: "MatMul",
    since: 1,
    import,
}];
