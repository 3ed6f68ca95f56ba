//! Scaled dot-product attention as one op: `softmax(scale(Q x K^T) [+ mask]) x V` per
//! batch matrix, computed head by head so the score matrix stays in cache and heads run in
//! parallel. Not an ONNX op: the int8 lowering forms it from the exported chain
//! `MatMul -> Div | Mul (scalar) -> [Add (mask)] -> Softmax (last axis) -> MatMul`, and it
//! gives exactly the bits of those five nodes (the same GEMM calls, the same element-wise
//! arithmetic in the same order, the same softmax rows).

use rayon::prelude::*;

use super::{Exported, OpDef, all_f32, arity, concrete, f32_input, fail};
use crate::error::Result;
use crate::exec::matmul::{Operand, gemm};
use crate::ir::{DType, Dim, Shape, Tensor, ValueType, broadcast};
use q8_kernels::vector;

/// How the scores are scaled before the mask and the softmax.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ScoreScale {
    /// `s / c` (PyTorch's `scores / math.sqrt(d)`).
    Div(f32),
    /// `s * c`.
    Mul(f32),
}

/// Inputs `[q [.., S, D], k_t [.., D, T], v [.., T, E]]` plus, when `masked`, a mask that
/// broadcasts to the scores `[.., S, T]`; output `[.., S, E]`. The batch axes of q, k_t and
/// v must be equal (no broadcasting between them).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Attention {
    /// Scaling of `Q x K^T`.
    pub scale: ScoreScale,
    /// A mask (fourth input) is added to the scaled scores.
    pub masked: bool,
}

/// The rank-`rank` numpy view of the mask's shape (leading 1s).
fn padded(mask: &[usize], rank: usize) -> Vec<usize> {
    let mut d = vec![1; rank - mask.len()];
    d.extend_from_slice(mask);
    d
}

impl Attention {
    /// `p[j] = scale(p[j]) + mask[j]` (a one-element mask broadcasts), vectorized.
    fn scale_and_mask(&self, p: &mut [f32], mask: Option<&[f32]>) {
        // Each arm is one branch-free loop; the lengths agree by construction.
        let done = match (self.scale, mask) {
            (ScoreScale::Div(c), None) => {
                vector::map_in_place(p, |x| x / c);
                Ok(())
            }
            (ScoreScale::Mul(c), None) => {
                vector::map_in_place(p, |x| x * c);
                Ok(())
            }
            (ScoreScale::Div(c), Some(&[m])) => {
                vector::map_in_place(p, |x| x / c + m);
                Ok(())
            }
            (ScoreScale::Mul(c), Some(&[m])) => {
                vector::map_in_place(p, |x| x * c + m);
                Ok(())
            }
            (ScoreScale::Div(c), Some(m)) => vector::zip_map_in_place(p, m, |x, m| x / c + m),
            (ScoreScale::Mul(c), Some(m)) => vector::zip_map_in_place(p, m, |x, m| x * c + m),
        };
        debug_assert!(done.is_ok());
    }
}

impl OpDef for Attention {
    fn name(&self) -> &'static str {
        "q8.Attention"
    }

    fn infer(&self, node: &str, inputs: &[&ValueType]) -> Result<Vec<ValueType>> {
        let n = 3 + usize::from(self.masked);
        arity(self, node, inputs.len(), n, n)?;
        all_f32(self, node, inputs)?;
        let (q, k, v) = (&inputs[0].shape, &inputs[1].shape, &inputs[2].shape);
        let r = q.rank();
        if r < 2 || k.rank() != r || v.rank() != r {
            return Err(fail(
                self,
                node,
                format!("q, k_t, v must have one rank >= 2, got {q}, {k}, {v}"),
            ));
        }
        let (qd, kd, vd) = (q.dims(), k.dims(), v.dims());
        let agree = |a: &Dim, b: &Dim| a == b;
        let batch_ok = qd[..r - 2]
            .iter()
            .zip(&kd[..r - 2])
            .zip(&vd[..r - 2])
            .all(|((a, b), c)| agree(a, b) && agree(a, c));
        if !batch_ok || !agree(&qd[r - 1], &kd[r - 2]) || !agree(&kd[r - 1], &vd[r - 2]) {
            return Err(fail(
                self,
                node,
                format!("shapes do not chain: q {q}, k_t {k}, v {v}"),
            ));
        }
        let mut scores = qd[..r - 1].to_vec();
        scores.push(kd[r - 1].clone());
        if self.masked {
            let b = broadcast(&Shape(scores.clone()), &inputs[3].shape)
                .map_err(|e| fail(self, node, e))?;
            if b.rank() != r || b.dims() != scores.as_slice() {
                return Err(fail(
                    self,
                    node,
                    format!("mask {} does not broadcast to the scores", inputs[3].shape),
                ));
            }
        }
        let mut out = qd[..r - 1].to_vec();
        out.push(vd[r - 1].clone());
        Ok(vec![ValueType::new(DType::F32, Shape(out))])
    }

    fn eval(&self, node: &str, inputs: &[&Tensor], outputs: &[ValueType]) -> Result<Vec<Tensor>> {
        let (q, k, v) = (
            f32_input(self, node, inputs, 0)?,
            f32_input(self, node, inputs, 1)?,
            f32_input(self, node, inputs, 2)?,
        );
        let out_shape = concrete(self, node, &outputs[0])?;
        let qs = inputs[0].shape();
        let r = qs.len();
        let (s, d, t, e) = (
            qs[r - 2],
            qs[r - 1],
            inputs[1].shape()[r - 1],
            out_shape[r - 1],
        );
        let mask = match self.masked {
            true => {
                let dims = padded(inputs[3].shape(), r);
                let row_len = if dims[r - 1] == 1 { 1 } else { t };
                Some((
                    f32_input(self, node, inputs, 3)?,
                    broadcast_strides(&dims),
                    row_len,
                ))
            }
            false => None,
        };
        let batch: Vec<usize> = qs[..r - 2].to_vec();
        let mut y = vec![0.0f32; out_shape.iter().product()];
        let head = |(i, out): (usize, &mut [f32])| {
            let mut scores = vec![0.0f32; s * t];
            gemm(
                &mut scores,
                t,
                Operand::new(&q[i * s * d..][..s * d], s, d),
                Operand::new(&k[i * d * t..][..d * t], d, t),
                1.0,
                false,
                1,
            );
            for (row, p) in scores.chunks_exact_mut(t.max(1)).enumerate() {
                self.scale_and_mask(
                    p,
                    mask.as_ref()
                        .map(|(m, strides, len)| &m[mask_row(strides, &batch, i, row)..][..*len]),
                );
            }
            vector::softmax_rows(&mut scores, t).expect("rows of t tile the scores");
            gemm(
                out,
                e,
                Operand::new(&scores, s, t),
                Operand::new(&v[i * t * e..][..t * e], t, e),
                1.0,
                false,
                1,
            );
        };
        if s * e > 0 {
            y.par_chunks_mut(s * e).enumerate().for_each(head);
        }
        Ok(vec![Tensor::from_f32(out_shape, y)?])
    }

    fn export(&self, node: &str) -> Result<Exported> {
        Err(fail(
            self,
            node,
            "a q8-internal fused op: export the unfused graph",
        ))
    }
}

/// Element strides of a mask of dims `dims` read with numpy broadcasting (0 on size-1 axes).
fn broadcast_strides(dims: &[usize]) -> Vec<usize> {
    let mut strides = vec![0; dims.len()];
    let mut acc = 1;
    for a in (0..dims.len()).rev() {
        strides[a] = if dims[a] == 1 { 0 } else { acc };
        acc *= dims[a];
    }
    strides
}

/// Offset of the mask row broadcast to score row `row` of batch matrix `i` (batch axes
/// `batch`; `strides` of the mask at the scores' rank).
fn mask_row(strides: &[usize], batch: &[usize], i: usize, row: usize) -> usize {
    let mut at = row * strides[strides.len() - 2];
    let mut rest = i;
    for a in (0..batch.len()).rev() {
        at += (rest % batch[a]) * strides[a];
        rest /= batch[a];
    }
    at
}
