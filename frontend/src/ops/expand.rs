//! Expand: numpy-broadcasts a tensor of any element type to a target shape. Target entries
//! known at import are fixed; run-time ones (a dynamic batch) are read from the graph input
//! that has that dimension, which the node takes as an extra input.

use super::{Exported, OpDef, OpSpec, arity, concrete, def, fail};
use crate::error::Result;
use crate::ir::{Dim, MAX_DIM, Op, Shape, Tensor, TensorData, ValueId, ValueType, broadcast};
use crate::onnx::{ImportCx, TargetDim};

/// One target entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpandDim {
    /// This size (1 keeps the data's size).
    Fixed(usize),
    /// The size of `axis` of node input `input` (an extra input, 1..).
    Of {
        /// Node input index.
        input: usize,
        /// Axis of that input.
        axis: usize,
    },
}

/// `Expand(data, shape)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expand {
    /// The target shape.
    pub target: Vec<ExpandDim>,
}

impl Expand {
    fn target_shape(&self, node: &str, inputs: &[&Shape]) -> Result<Shape> {
        self.target
            .iter()
            .map(|t| match *t {
                ExpandDim::Fixed(n) => Ok(Dim::Known(n)),
                ExpandDim::Of { input, axis } => inputs
                    .get(input)
                    .and_then(|s| s.dims().get(axis))
                    .cloned()
                    .ok_or_else(|| fail(self, node, format!("input {input} has no axis {axis}"))),
            })
            .collect::<Result<Vec<_>>>()
            .map(Shape)
    }
}

impl OpDef for Expand {
    fn name(&self) -> &'static str {
        "Expand"
    }

    fn infer(&self, node: &str, inputs: &[&ValueType]) -> Result<Vec<ValueType>> {
        arity(self, node, inputs.len(), 1, usize::MAX)?;
        let shapes: Vec<&Shape> = inputs.iter().map(|t| &t.shape).collect();
        let target = self.target_shape(node, &shapes)?;
        let out = broadcast(&inputs[0].shape, &target).map_err(|e| fail(self, node, e))?;
        Ok(vec![ValueType::new(inputs[0].dtype, out)])
    }

    fn eval(&self, node: &str, inputs: &[&Tensor], outputs: &[ValueType]) -> Result<Vec<Tensor>> {
        let out = concrete(self, node, &outputs[0])?;
        let x = inputs[0];
        let n: usize = out.iter().product();
        macro_rules! spread {
            ($($v:ident),*) => {
                match x.data() {
                    $(TensorData::$v(d) => {
                        let mut y = vec![Default::default(); n];
                        crate::exec::eltwise::binary(d, x.shape(), &[()], &[], &out, &mut y, |a, _| a);
                        TensorData::$v(y)
                    })*
                }
            };
        }
        let data = spread!(F32, U8, I8, I32, I64, Bool);
        Ok(vec![Tensor::new(out, data)?])
    }

    fn export(&self, node: &str) -> Result<Exported> {
        let fixed = self
            .target
            .iter()
            .map(|t| match t {
                ExpandDim::Fixed(n) => Ok(*n as i64),
                ExpandDim::Of { .. } => Err(fail(
                    self,
                    node,
                    "a run-time target dim cannot be exported as a constant shape",
                )),
            })
            .collect::<Result<Vec<i64>>>()?;
        let len = fixed.len();
        Ok(Exported {
            attrs: vec![],
            operands: vec![Some(("shape", Tensor::from_i64(vec![len], fixed)?))],
        })
    }
}

fn import(cx: &ImportCx<'_>) -> Result<(Op, Vec<ValueId>)> {
    let mut inputs = vec![cx.input(0)?];
    let mut target = Vec::new();
    for d in cx.dims_input(1)? {
        target.push(match d {
            TargetDim::Known(k) => ExpandDim::Fixed(
                usize::try_from(k)
                    .ok()
                    .filter(|&k| k <= MAX_DIM)
                    .ok_or_else(|| cx.err(format!("target dimension {k} is out of range")))?,
            ),
            TargetDim::Of(v, axis) => {
                let input = match inputs.iter().position(|&i| i == v) {
                    Some(p) => p,
                    None => {
                        inputs.push(v);
                        inputs.len() - 1
                    }
                };
                ExpandDim::Of { input, axis }
            }
        });
    }
    Ok((def(Expand { target }), inputs))
}

/// The registry entry.
pub(super) const SPECS: &[OpSpec] = &[OpSpec {
    op_type: "Expand",
    since: 8,
    import,
}];
