//! LayerNormalization (opset 17): normalization over the trailing axes from `axis` on, then
//! an element-wise scale and optional bias of the normalized shape.

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
        let pick = |p: &[f32], j: usize| if p.len() == 1 { p[0] } else { p[j] };
        let mut y = Vec::with_capacity(x.len());
        for row in x.chunks_exact(inner.max(1)) {
            let n = row.len() as f64;
            let mean = row.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
            let var = row
                .iter()
                .map(|&v| (f64::from(v) - mean).powi(2))
                .sum::<f64>()
                / n;
            let inv = 1.0 / (var + f64::from(self.epsilon)).sqrt();
            y.extend(row.iter().enumerate().map(|(j, &v)| {
                let norm = ((f64::from(v) - mean) * inv) as f32;
                norm * pick(scale, j) + bias.map_or(0.0, |b| pick(b, j))
            }));
        }
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

fn import(cx: &ImportCx<'_>) -> Result<(Op, Vec<ValueId>)> {
    let x = cx.input(0)?;
    let rank = cx.ty(x).shape.rank();
    let a = cx.attrs();
    let axis = cx.axis_attr(rank, -1)?;
    let epsilon = a.float("epsilon", 1e-5);
    if !(epsilon.is_finite() && epsilon >= 0.0) {
        return Err(cx.err(format!("epsilon {epsilon} must be finite and >= 0")));
    }
    let mut inputs = vec![x, cx.input(1)?];
    inputs.extend(cx.optional(2)?);
    Ok((def(LayerNorm { axis, epsilon }), inputs))
}

/// The registry entry.
pub(super) const SPECS: &[OpSpec] = &[OpSpec {
    op_type: "LayerNormalization",
    since: 17,
    import,
}];
