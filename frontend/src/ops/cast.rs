//! Cast between the element types (f32, u8, i8, i32, i64, bool).

use super::{AttrValue, Exported, OpDef, OpSpec, arity, concrete, def, fail};
use crate::error::Result;
use crate::ir::{DType, Op, Tensor, TensorData, ValueId, ValueType};
use crate::onnx::ImportCx;

/// Converts `t` to `to` as C casts do through f64 (floats truncate toward zero; integers
/// beyond 2^53 round; out-of-range values saturate), or `None` when the shape is invalid.
pub fn cast_tensor(t: &Tensor, to: DType) -> Option<Tensor> {
    let as_f64: Vec<f64> = match t.data() {
        TensorData::F32(v) => v.iter().map(|&x| x as f64).collect(),
        TensorData::U8(v) => v.iter().map(|&x| x as f64).collect(),
        TensorData::I8(v) => v.iter().map(|&x| x as f64).collect(),
        TensorData::I32(v) => v.iter().map(|&x| x as f64).collect(),
        TensorData::I64(v) => v.iter().map(|&x| x as f64).collect(),
        TensorData::Bool(v) => v.iter().map(|&x| f64::from(u8::from(x))).collect(),
    };
    let data = match to {
        DType::F32 => TensorData::F32(as_f64.iter().map(|&x| x as f32).collect()),
        DType::I64 => TensorData::I64(as_f64.iter().map(|&x| x as i64).collect()),
        DType::I32 => TensorData::I32(as_f64.iter().map(|&x| x as i32).collect()),
        DType::U8 => TensorData::U8(as_f64.iter().map(|&x| x as u8).collect()),
        DType::I8 => TensorData::I8(as_f64.iter().map(|&x| x as i8).collect()),
        DType::Bool => TensorData::Bool(as_f64.iter().map(|&x| x != 0.0).collect()),
    };
    Tensor::new(t.shape().to_vec(), data).ok()
}

/// `Cast(x, to)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cast {
    /// Target element type.
    pub to: DType,
}

impl OpDef for Cast {
    fn name(&self) -> &'static str {
        "Cast"
    }

    fn infer(&self, node: &str, inputs: &[&ValueType]) -> Result<Vec<ValueType>> {
        arity(self, node, inputs.len(), 1, 1)?;
        Ok(vec![ValueType::new(self.to, inputs[0].shape.clone())])
    }

    fn eval(&self, node: &str, inputs: &[&Tensor], outputs: &[ValueType]) -> Result<Vec<Tensor>> {
        let shape = concrete(self, node, &outputs[0])?;
        let y = cast_tensor(inputs[0], self.to)
            .ok_or_else(|| fail(self, node, format!("cannot cast {}", inputs[0].dtype())))?;
        Ok(vec![y.reshape(shape)?])
    }

    fn export(&self, _node: &str) -> Result<Exported> {
        Ok(Exported {
            attrs: vec![("to", AttrValue::Int(i64::from(self.to.onnx_code())))],
            operands: vec![],
        })
    }
}

fn import(cx: &ImportCx<'_>) -> Result<(Op, Vec<ValueId>)> {
    let code = cx.attrs().int("to", 0);
    let to = i32::try_from(code)
        .ok()
        .and_then(DType::from_onnx_code)
        .ok_or_else(|| cx.err(format!("cast to element type code {code} is not supported")))?;
    Ok((def(Cast { to }), vec![cx.input(0)?]))
}

/// The registry entry.
pub(super) const SPECS: &[OpSpec] = &[OpSpec {
    op_type: "Cast",
    since: 6,
    import,
}];
