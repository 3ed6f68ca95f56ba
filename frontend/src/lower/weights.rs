//! Reading a quantized layer's constants out of the QDQ graph: s8 weights with per-channel
//! (or per-tensor) scales and zero point 0, and an f32 bias (dequantized when the producer,
//! like ONNX Runtime, stored it as i32 with scale `s_in * s_w`).

use crate::error::{Error, Result};
use crate::ir::{DType, Graph, Node, Op, QuantSpec, TensorData, ValueId};

/// s8 weights in the source layout with one f32 scale per output channel.
pub struct QuantWeights {
    /// The s8 values, in the tensor's own (row-major) layout.
    pub data: Vec<i8>,
    /// Tensor shape.
    pub shape: Vec<usize>,
    /// One scale per index of the quantized axis (expanded from per-tensor).
    pub scales: Vec<f32>,
    /// The per-channel axis (0 for per-tensor weights).
    pub axis: usize,
}

/// The s8 weights behind `w` = `DequantizeLinear(constant i8)`; `Ok(None)` when `w` is not
/// such a value (the layer then runs in f32).
///
/// # Errors
/// [`Error::Node`] naming `node` when the weights are quantized but not symmetric (a zero
/// point other than 0): q8's kernels take symmetric s8 weights only.
pub fn quantized_weights(graph: &Graph, node: &Node, w: ValueId) -> Result<Option<QuantWeights>> {
    let Some(dq) = graph.producer(w) else {
        return Ok(None);
    };
    let Op::DequantizeLinear(spec) = &dq.op else {
        return Ok(None);
    };
    let Some(t) = graph.value(dq.inputs[0]).constant.as_ref() else {
        return Ok(None);
    };
    let TensorData::I8(data) = t.data() else {
        return Ok(None);
    };
    if spec.zero_points.iter().any(|&z| z != 0) {
        return Err(Error::node(
            node.op.name(),
            &node.name,
            format!(
                "weight '{}' has a non-zero zero point: q8 needs symmetric s8 weights (zero point 0)",
                graph.value(dq.inputs[0]).name
            ),
        ));
    }
    let axis = spec.axis.unwrap_or(0);
    let channels = t.shape().get(axis).copied().unwrap_or(1);
    let scales = match spec.scales.len() {
        1 => vec![spec.scales[0]; channels],
        n if n == channels => spec.scales.clone(),
        n => {
            return Err(Error::node(
                node.op.name(),
                &node.name,
                format!("weight has {n} scales for {channels} channels"),
            ));
        }
    };
    Ok(Some(QuantWeights {
        data: data.clone(),
        shape: t.shape().to_vec(),
        scales,
        axis,
    }))
}

/// The value `v` forwards: `v` itself, or the source of the chain of `Identity` nodes that
/// produces it (exporters route shared initializers through `Identity`, as ONNX Runtime's
/// quantizer does for the int32 biases of a deduplicated model).
fn through_identity(graph: &Graph, mut v: ValueId) -> ValueId {
    // A graph is acyclic (validated), so the chain ends.
    while let Some(n) = graph.producer(v).filter(|n| matches!(n.op, Op::Identity)) {
        v = n.inputs[0];
    }
    v
}

/// The f32 bias behind `b` (through any `Identity` chain): an f32 constant or a dequantized integer constant. `Err` with
/// the reason when it is neither (the layer then runs in f32).
pub fn bias_values(
    graph: &Graph,
    b: ValueId,
    channels: usize,
) -> std::result::Result<Vec<f32>, String> {
    let v = graph.value(b);
    let b = through_identity(graph, b);
    let values = if let Some(t) = &graph.value(b).constant {
        t.as_f32().map(<[f32]>::to_vec)
    } else {
        match graph.producer(b).map(|n| (&n.op, n)) {
            Some((Op::DequantizeLinear(spec), dq)) => graph
                .value(through_identity(graph, dq.inputs[0]))
                .constant
                .as_ref()
                .and_then(|t| dequantize_constant(t.data(), spec)),
            _ => None,
        }
    };
    let values = values.ok_or_else(|| format!("bias '{}' is not a constant", v.name))?;
    if values.len() != channels {
        return Err(format!(
            "bias has {} values for {channels} channels",
            values.len()
        ));
    }
    Ok(values)
}

/// `(q - zero_point) * scale` per element of a 1-D integer constant (per-tensor or per-axis 0).
fn dequantize_constant(data: &TensorData, spec: &QuantSpec) -> Option<Vec<f32>> {
    let ints: Vec<i64> = match data {
        TensorData::I32(v) => v.iter().map(|&x| i64::from(x)).collect(),
        TensorData::I8(v) => v.iter().map(|&x| i64::from(x)).collect(),
        TensorData::U8(v) => v.iter().map(|&x| i64::from(x)).collect(),
        _ => return None,
    };
    let pick = |s: &[f32], i: usize| if s.len() == 1 { s[0] } else { s[i] };
    if spec.scales.len() != 1 && spec.scales.len() != ints.len() {
        return None;
    }
    let zp = |i: usize| {
        let z = &spec.zero_points;
        i64::from(if z.len() == 1 { z[0] } else { z[i] })
    };
    Some(
        ints.iter()
            .enumerate()
            .map(|(i, &q)| ((q - zp(i)) as f32) * pick(&spec.scales, i))
            .collect(),
    )
}

/// Whether `spec` describes a u8 per-tensor activation.
pub fn is_u8_per_tensor(spec: &QuantSpec) -> bool {
    spec.dtype == DType::U8 && spec.axis.is_none() && spec.scales.len() == 1
}
