//! Dynamic quantization of linear layers at convert time, in ONNX Runtime's
//! `quantize_dynamic` form:
//!
//! ```text
//! x -> DynamicQuantizeLinear -> (x_u8, x_scale, x_zp)
//! MatMulInteger(x_u8, W_s8, x_zp, 0) -> Cast(f32) -> Mul(., Mul(x_scale, w_scale)) [-> Add(bias)]
//! ```
//!
//! `W_s8` is the `[K, N]` weight (a Gemm's `[N, K]` transposed), quantized symmetric s8
//! per output channel (or per tensor) by the pattern's [`WeightSpec`]; `w_scale` has one
//! entry per column (or is a scalar). One `DynamicQuantizeLinear` serves every dynamic
//! linear reading the same tensor. The MatMulInteger keeps the anchor's node name; the
//! chain's last node writes the anchor's output value, so readers and graph outputs are
//! unchanged. No calibration is involved.

use std::collections::HashMap;

use super::annotate::PatternMatch;
use super::convert::{WeightQParams, floored_channels, quantize_weight, weight_spec};
use super::error::{QuantError, Result};
use crate::ir::{DType, Graph, Op, Tensor, TensorData, ValueId};
use crate::ops::{self, DynamicQuantizeLinear, MatMulInteger};

/// `(x_u8, x_scale, x_zero_point)` of the `DynamicQuantizeLinear` of each activation.
pub(super) type DqlCache = HashMap<ValueId, [ValueId; 3]>;

/// A node / value name prefix `g` does not use yet (`base`, or `base_1`, `base_2`, ...).
fn fresh(g: &Graph, base: &str) -> String {
    super::convert::free_name(base, |b| {
        g.node_by_name(b).is_some() || g.value_by_name(b).is_some()
    })
}

/// The `DynamicQuantizeLinear` outputs for activation `x`, added on first use.
fn quantized_input(g: &mut Graph, cache: &mut DqlCache, x: ValueId) -> Result<[ValueId; 3]> {
    if let Some(&q) = cache.get(&x) {
        return Ok(q);
    }
    let base = g.value(x).name.clone();
    let names = ["quantized", "scale", "zero_point"].map(|r| fresh(g, &format!("{base}_{r}")));
    let node = fresh(g, &format!("{base}_DynamicQuantizeLinear"));
    let outs = g.add_node_with_outputs(&node, ops::def(DynamicQuantizeLinear), &[x], &names)?;
    let q = [outs[0], outs[1], outs[2]];
    cache.insert(x, q);
    Ok(q)
}

/// Adds a one-output node named `name` with a fresh output `name + "_output"`.
fn add(g: &mut Graph, name: &str, op: Op, inputs: &[ValueId]) -> Result<ValueId> {
    let name = fresh(g, name);
    let out = fresh(g, &format!("{name}_output"));
    Ok(g.add_node_with_outputs(&name, op, inputs, &[out])?[0])
}

/// The anchor's f32 weight as `[K, N]` s8 (symmetric) with its scales, and its bias value.
struct Weight {
    q: Vec<i8>,
    k: usize,
    n: usize,
    scales: Vec<f32>,
    /// Channels with nonzero weights at the scale floor.
    floor_channels: usize,
    bias: Option<ValueId>,
}

/// Quantizes the pattern's weight (a MatMul's `[K, N]`, a Gemm's `[N, K]` with transB).
fn quantize(g: &Graph, p: &PatternMatch, name: &str) -> Result<Weight> {
    let node = g.node(p.nodes[0]).expect("live node");
    let w = p.weight.expect("linear patterns have a weight");
    let t = g
        .value(w)
        .constant
        .clone()
        .expect("annotated weights are constants");
    let (data, shape) = match (t.as_f32(), t.shape()) {
        (Some(d), &[r, c]) => (d, [r, c]),
        _ => {
            return Err(QuantError::Model(format!(
                "weight of node '{name}' is not a 2-D f32 constant"
            )));
        }
    };
    let qp = weight_spec(&p.spec.weight, &node.op).qparams(data, &shape)?;
    let q = quantize_weight(data, &shape, &qp);
    let floor_channels = floored_channels(&q, &shape, &qp.scales, qp.axis, p.spec.weight.eps);
    let gemm = matches!(node.op, Op::Gemm(_));
    let (k, n) = if gemm {
        (shape[1], shape[0])
    } else {
        (shape[0], shape[1])
    };
    let q = if gemm {
        crate::ir::transpose_2d(&q, n, k)
    } else {
        q
    };
    Ok(Weight {
        q,
        k,
        n,
        scales: qp.scales,
        floor_channels,
        bias: node.inputs.get(2).copied(),
    })
}

/// Rewrites one dynamic linear pattern (see the module doc); returns its weight qparams.
///
/// # Errors
/// [`QuantError::Model`] when the weight is not a 2-D f32 constant or a rewritten node does
/// not infer.
pub(super) fn rewrite(
    g: &mut Graph,
    p: &PatternMatch,
    cache: &mut DqlCache,
) -> Result<WeightQParams> {
    let anchor = p.nodes[0];
    let node = g.node(anchor).expect("live node").clone();
    let name = node.name.clone();
    let w = quantize(g, p, &name)?;
    let [xq, xs, xz] = quantized_input(g, cache, node.inputs[0])?;
    let wq = g.add_constant(
        &fresh(g, &format!("{name}.weight_quantized")),
        Tensor::new(vec![w.k, w.n], TensorData::I8(w.q))?,
    )?;
    let scale_shape = if w.scales.len() == 1 {
        vec![]
    } else {
        vec![w.n]
    };
    let ws = g.add_constant(
        &fresh(g, &format!("{name}.weight_scale")),
        Tensor::from_f32(scale_shape, w.scales.clone())?,
    )?;
    let wz = g.add_constant(
        &fresh(g, &format!("{name}.weight_zero_point")),
        Tensor::new(vec![], TensorData::I8(vec![0]))?,
    )?;
    let out = node.outputs[0];
    g.remove_node(anchor);
    let mmi = MatMulInteger {
        a_zero_point: true,
        b_zero_point: true,
    };
    let acc = add(g, &name, ops::def(mmi), &[xq, wq, xz, wz])?;
    let cast = ops::def(ops::Cast { to: DType::F32 });
    let acc = add(g, &format!("{name}_Cast"), cast, &[acc])?;
    let scale = add(g, &format!("{name}_scales_Mul"), Op::Mul, &[xs, ws])?;
    let mut y = add(g, &format!("{name}_Mul"), Op::Mul, &[acc, scale])?;
    if let Some(b) = w.bias {
        y = add(g, &format!("{name}_bias_Add"), Op::Add, &[y, b])?;
    }
    let last = g.value(y).producer.expect("just added");
    g.set_output(last, 0, out)?;
    Ok(WeightQParams {
        node: name,
        floor_channels: w.floor_channels,
        scales: w.scales,
    })
}
