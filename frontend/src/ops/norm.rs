//! LayerNormalization (opset 17): normalization over the trailing axes from `axis` on, then
//! an element-wise scale and optional bias of the normalized shape; InstanceNormalization
//! (opset 6): normalization over the spatial axes of each (batch, channel), then a
//! per-channel scale and bias.

use rayon::prelude::*;

use super::{
    AttrValue, Exported, OpDef, OpSpec, all_f32, arity, check_axis, concrete, def, f32_input, fail,
};
use crate::error::Result;
use crate::ir::{Op, Tensor, ValueId, ValueType, checked_numel};
use crate::onnx::ImportCx;

/// `(x - mean) / sqrt(var + epsilon) * scale + bias` over axes `axis..rank` (population
/// variance, computed in f64).
#[derive(Clone, Debug, PartialEq)]
pub struct LayerNorm {
    /// First normalized axis, in `0..rank`.
    pub axis: usize,
    /// Added to the variance.
    pub epsilon: f32,
}

impl OpDef for LayerNorm {
    fn name(&self) -> &'static str {
        "LayerNormalization"
    }

    fn infer(&self, node: &str, inputs: &[&ValueType]) -> Result<Vec<ValueType>> {
        arity(self, node, inputs.len(), 2, 3)?;
        let x = inputs[0];
        all_f32(self, node, inputs)?;
        check_axis(self, node, self.axis, &x.shape)?;
        // Scale and bias must hold one value per normalized element (or be a scalar).
        if let Some(inner) = x
            .shape
            .to_known()
            .map(|d| d[self.axis..].iter().product::<usize>())
        {
            for (i, p) in inputs.iter().enumerate().skip(1) {
                let n = p.shape.to_known().map(|d| checked_numel(&d)).transpose()?;
                if n != Some(inner) && n != Some(1) {
                    return Err(fail(
                        self,
                        node,
                        format!(
                            "input {i} of shape {} does not match the normalized size {inner} of {}",
                            p.shape, x.shape
                        ),
                    ));
                }
            }
        }
        Ok(vec![x.clone()])
    }

    fn eval(&self, node: &str, inputs: &[&Tensor], outputs: &[ValueType]) -> Result<Vec<Tensor>> {
        let x = f32_input(self, node, inputs, 0)?;
        let scale = f32_input(self, node, inputs, 1)?;
        let bias = match inputs.get(2) {
            Some(_) => Some(f32_input(self, node, inputs, 2)?),
            None => None,
        };
        let shape = concrete(self, node, &outputs[0])?;
        let inner: usize = shape[self.axis..].iter().product();
        // Scale and bias of the normalized size (a scalar repeated), so the row loop is
        // branch-free and vectorizes.
        let full = |p: &[f32]| match p {
            [one] => vec![*one; inner],
            _ => p.to_vec(),
        };
        let scale = full(scale);
        let bias = bias.map_or_else(|| vec![0.0; inner], full);
        let mut y = vec![0.0f32; x.len()];
        let row_len = inner.max(1);
        let normalize = |(xs, ys): (&[f32], &mut [f32])| {
            for (row, out) in xs.chunks_exact(row_len).zip(ys.chunks_exact_mut(row_len)) {
                let (mean, inv) = moments(row, self.epsilon);
                for ((o, &v), (&s, &b)) in out.iter_mut().zip(row).zip(scale.iter().zip(&bias)) {
                    *o = ((f64::from(v) - mean) * inv) as f32 * s + b;
                }
            }
        };
        // Rows are independent: blocks of them run on the rayon pool (the same values).
        let block = PARALLEL_BLOCK.div_ceil(row_len) * row_len;
        x.par_chunks(block)
            .zip(y.par_chunks_mut(block))
            .for_each(normalize);
        Ok(vec![Tensor::from_f32(shape, y)?])
    }

    fn export(&self, _node: &str) -> Result<Exported> {
        Ok(Exported {
            attrs: vec![
                ("axis", AttrValue::Int(self.axis as i64)),
                ("epsilon", AttrValue::Float(self.epsilon)),
            ],
            operands: vec![],
        })
    }
}

/// Elements (whole rows) per parallel task of LayerNormalization.
const PARALLEL_BLOCK: usize = 1 << 14;

/// The mean and `1 / sqrt(variance + epsilon)` of `row` (population variance), summed in
/// f64 in two passes (mean, then squared deviations), each in a fixed order: [`lane_sum`].
fn moments(row: &[f32], epsilon: f32) -> (f64, f64) {
    let n = row.len() as f64;
    let mean = lane_sum(row, |v| v) / n;
    let var = lane_sum(row, |v| (v - mean) * (v - mean)) / n;
    (mean, 1.0 / (var + f64::from(epsilon)).sqrt())
}

/// `sum f(x[i])` in f64 over 8 lanes (lane `l` adds elements `l, l + 8, ...`, the tail into
/// the first lanes), then the lanes in index order: independent chains that vectorize,
/// in an order fixed by the length alone.
fn lane_sum(row: &[f32], f: impl Fn(f64) -> f64) -> f64 {
    let mut lanes = [0f64; 8];
    let chunks = row.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l += f(f64::from(v));
        }
    }
    for (l, &v) in lanes.iter_mut().zip(tail) {
        *l += f(f64::from(v));
    }
    lanes.iter().sum()
}

fn import(cx: &ImportCx<'_>) -> Result<(Op, Vec<ValueId>)> {
    let x = cx.input(0)?;
    let rank = cx.ty(x).shape.rank();
    let axis = cx.axis_attr(rank, -1)?;
    let epsilon = epsilon(cx)?;
    let mut inputs = vec![x, cx.input(1)?];
    inputs.extend(cx.optional(2)?);
    Ok((def(LayerNorm { axis, epsilon }), inputs))
}

/// `InstanceNormalization(x, scale, bias)` for `x` of shape `N x C x D1 x .. x Dn`
/// (rank >= 3): each `(n, c)` slice is normalized over its spatial elements with
/// [`moments`] (f64 mean and population variance), then `y = norm * scale[c] + bias[c]`
/// in f32. `scale` and `bias` hold `C` values.
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceNorm {
    /// Added to the variance.
    pub epsilon: f32,
}

impl OpDef for InstanceNorm {
    fn name(&self) -> &'static str {
        "InstanceNormalization"
    }

    fn infer(&self, node: &str, inputs: &[&ValueType]) -> Result<Vec<ValueType>> {
        arity(self, node, inputs.len(), 3, 3)?;
        all_f32(self, node, inputs)?;
        let x = inputs[0];
        if x.shape.rank() < 3 {
            return Err(fail(
                self,
                node,
                format!("input must be N x C x D1.. (rank >= 3), got {}", x.shape),
            ));
        }
        let c = &x.shape.dims()[1];
        for (i, p) in inputs.iter().enumerate().skip(1) {
            let fits = p.shape.rank() == 1
                && match (c.known(), p.shape.dims()[0].known()) {
                    (Some(c), Some(n)) => c == n,
                    _ => true,
                };
            if !fits {
                return Err(fail(
                    self,
                    node,
                    format!("input {i} of shape {} must be [C] for {}", p.shape, x.shape),
                ));
            }
        }
        Ok(vec![x.clone()])
    }

    fn eval(&self, node: &str, inputs: &[&Tensor], outputs: &[ValueType]) -> Result<Vec<Tensor>> {
        let x = f32_input(self, node, inputs, 0)?;
        let scale = f32_input(self, node, inputs, 1)?;
        let bias = f32_input(self, node, inputs, 2)?;
        let shape = concrete(self, node, &outputs[0])?;
        let channels = shape[1];
        if scale.len() != channels || bias.len() != channels {
            return Err(fail(
                self,
                node,
                format!(
                    "scale ({}) and bias ({}) must hold C = {channels} values",
                    scale.len(),
                    bias.len()
                ),
            ));
        }
        let inner: usize = shape[2..].iter().product();
        let mut y = Vec::with_capacity(x.len());
        for (r, row) in x.chunks_exact(inner.max(1)).enumerate() {
            let c = r % channels;
            let (mean, inv) = moments(row, self.epsilon);
            y.extend(
                row.iter()
                    .map(|&v| ((f64::from(v) - mean) * inv) as f32 * scale[c] + bias[c]),
            );
        }
        Ok(vec![Tensor::from_f32(shape, y)?])
    }

    fn export(&self, _node: &str) -> Result<Exported> {
        Ok(Exported {
            attrs: vec![("epsilon", AttrValue::Float(self.epsilon))],
            operands: vec![],
        })
    }
}

/// The `epsilon` attribute (default `1e-5`), which must be finite and >= 0.
fn epsilon(cx: &ImportCx<'_>) -> Result<f32> {
    let epsilon = cx.attrs().float("epsilon", 1e-5);
    if !(epsilon.is_finite() && epsilon >= 0.0) {
        return Err(cx.err(format!("epsilon {epsilon} must be finite and >= 0")));
    }
    Ok(epsilon)
}

fn import_instance(cx: &ImportCx<'_>) -> Result<(Op, Vec<ValueId>)> {
    let inputs = vec![cx.input(0)?, cx.input(1)?, cx.input(2)?];
    Ok((
        def(InstanceNorm {
            epsilon: epsilon(cx)?,
        }),
        inputs,
    ))
}

/// The family's registry entries.
pub(super) const SPECS: &[OpSpec] = &[
    OpSpec::new("LayerNormalization", 17, import),
    OpSpec::new("InstanceNormalization", 6, import_instance),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{DType, Shape};

    /// Rows split into parallel blocks (several blocks, a ragged last one) give the bits of
    /// one thread.
    #[test]
    fn layer_norm_is_thread_invariant() {
        let shape = [3usize, 211, 97];
        let n: usize = shape.iter().product();
        let x = Tensor::from_f32(
            shape.to_vec(),
            (0..n)
                .map(|i| ((i * 7919) % 1013) as f32 * 0.01 - 5.0)
                .collect(),
        )
        .unwrap();
        let scale =
            Tensor::from_f32(vec![97], (0..97).map(|i| 0.5 + i as f32 * 0.01).collect()).unwrap();
        let op = LayerNorm {
            axis: 2,
            epsilon: 1e-5,
        };
        let ty = ValueType::new(DType::F32, Shape::known(&shape));
        let sty = ValueType::new(DType::F32, Shape::known(&[97]));
        let out = op.infer("ln", &[&ty, &sty]).unwrap();
        let run = |threads| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| op.eval("ln", &[&x, &scale], &out).unwrap().remove(0))
        };
        let one = run(1);
        assert_eq!(one, run(2));
        // Every row against the definition (a block boundary inside a row would show here).
        let (got, s) = (one.as_f32().unwrap(), scale.as_f32().unwrap());
        for (r, row) in x.as_f32().unwrap().chunks_exact(97).enumerate() {
            let mean = row.iter().map(|&v| f64::from(v)).sum::<f64>() / 97.0;
            let var = row
                .iter()
                .map(|&v| (f64::from(v) - mean).powi(2))
                .sum::<f64>()
                / 97.0;
            for (j, &v) in row.iter().enumerate() {
                let want = ((f64::from(v) - mean) / (var + 1e-5).sqrt()) as f32 * s[j];
                let g = got[r * 97 + j];
                assert!((g - want).abs() < 1e-5, "row {r} col {j}: {g} vs {want}");
            }
        }
    }
}
