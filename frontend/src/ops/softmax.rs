//! Softmax and LogSoftmax. Opset 13 and later normalize along one axis (default -1);
//! earlier opsets flatten the input to 2-D at `axis` (default 1) and normalize each row.

use super::{
    AttrValue, Exported, OpDef, OpSpec, check_axis, concrete, def, f32_input, fail, one_f32,
};
use crate::error::Result;
use crate::ir::{Op, Tensor, ValueId, ValueType};
use crate::onnx::ImportCx;
use q8_kernels::math::exp;
use q8_kernels::vector;

/// `exp(x - max) * (1 / sum(exp(x - max)))` over a block of the input (or its logarithm).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Softmax {
    /// The normalized axis, in `0..rank`.
    pub axis: usize,
    /// Opset < 13 semantics: normalize over all axes from `axis` on.
    pub coerce_2d: bool,
    /// LogSoftmax.
    pub log: bool,
}

impl Softmax {
    /// `(outer, n, inner)`: the input viewed as `[outer, n, inner]`, normalized along `n`.
    fn blocks(&self, shape: &[usize]) -> (usize, usize, usize) {
        let outer = shape[..self.axis].iter().product();
        if self.coerce_2d {
            (outer, shape[self.axis..].iter().product(), 1)
        } else {
            (
                outer,
                shape[self.axis],
                shape[self.axis + 1..].iter().product(),
            )
        }
    }
}

impl Softmax {
    /// One contiguous row: `exp(x - max) * (1 / sum)` (one division per row, as MLAS does)
    /// or `x - max - ln sum`, with the kernels' branch-free `exp` and fixed-order [`vector`]
    /// reductions, so every loop vectorizes with the same bits on every tier.
    fn normalize(&self, x: &[f32], y: &mut [f32]) -> q8_kernels::Result<()> {
        let max = vector::max(x);
        vector::map(x, y, |v| exp(v - max))?;
        let sum = vector::sum(y);
        if self.log {
            let log_sum = sum.ln();
            vector::map(x, y, |v| v - max - log_sum)
        } else {
            let inv = 1.0 / sum;
            vector::map_in_place(y, |e| e * inv);
            Ok(())
        }
    }
}

impl OpDef for Softmax {
    fn name(&self) -> &'static str {
        if self.log { "LogSoftmax" } else { "Softmax" }
    }

    fn infer(&self, node: &str, inputs: &[&ValueType]) -> Result<Vec<ValueType>> {
        let x = one_f32(self, node, inputs)?;
        check_axis(self, node, self.axis, &x.shape)?;
        Ok(vec![x.clone()])
    }

    fn eval(&self, node: &str, inputs: &[&Tensor], outputs: &[ValueType]) -> Result<Vec<Tensor>> {
        let x = f32_input(self, node, inputs, 0)?;
        let shape = concrete(self, node, &outputs[0])?;
        let (outer, n, inner) = self.blocks(&shape);
        let bad = |m: String| fail(self, node, m);
        let mut y = vec![0.0f32; x.len()];
        if inner == 1 && !self.log {
            // All rows in one vectorized call (the bits of `normalize` row by row).
            y.copy_from_slice(x);
            vector::softmax_rows(&mut y, n).map_err(|e| bad(e.to_string()))?;
        } else if inner == 1 {
            for (src, dst) in x.chunks_exact(n).zip(y.chunks_exact_mut(n)) {
                self.normalize(src, dst).map_err(|e| bad(e.to_string()))?;
            }
        } else {
            let (mut src, mut dst) = (vec![0.0f32; n], vec![0.0f32; n]);
            for o in 0..outer {
                for i in 0..inner {
                    let at = |k: usize| (o * n + k) * inner + i;
                    src.iter_mut().enumerate().for_each(|(k, v)| *v = x[at(k)]);
                    self.normalize(&src, &mut dst)
                        .map_err(|e| bad(e.to_string()))?;
                    dst.iter().enumerate().for_each(|(k, &v)| y[at(k)] = v);
                }
            }
        }
        Ok(vec![Tensor::from_f32(shape, y)?])
    }

    fn export(&self, node: &str) -> Result<Exported> {
        if self.coerce_2d {
            return Err(fail(
                self,
                node,
                "the opset < 13 form (flatten at axis) cannot be written at opset 17",
            ));
        }
        Ok(Exported {
            attrs: vec![("axis", AttrValue::Int(self.axis as i64))],
            operands: vec![],
        })
    }
}

fn import(cx: &ImportCx<'_>) -> Result<(Op, Vec<ValueId>)> {
    let x = cx.input(0)?;
    let rank = cx.ty(x).shape.rank();
    let legacy = cx.opset() < 13;
    let axis = cx.axis_attr(rank, if legacy { 1 } else { -1 })?;
    let softmax = Softmax {
        axis,
        // A flatten at the last axis is the same as the single-axis form.
        coerce_2d: legacy && axis + 1 != rank,
        log: cx.op_type() == "LogSoftmax",
    };
    Ok((def(softmax), vec![x]))
}

/// The family's registry entries.
pub(super) const SPECS: &[OpSpec] = &[
    OpSpec {
        op_type: "Softmax",
        since: 1,
        import,
    },
    OpSpec {
        op_type: "LogSoftmax",
        since: 1,
        import,
    },
];
