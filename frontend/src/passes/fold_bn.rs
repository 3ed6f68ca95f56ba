//! BatchNorm folding into the preceding Conv or Gemm (PyTorch's `fuse_conv_bn_weights`):
//! `s = gamma / sqrt(var + eps)`, `W' = W * s` per output channel, `b' = (b - mean) * s + beta`.
//!
//! A BN is folded only when its input comes from a Conv (or a Gemm computing `[M, N]` with
//! per-column BN) whose output has the BN as its single reader and is not a graph output, and
//! when weight, bias and BN statistics are constants. Folded weights are new constants, so a
//! weight shared with another node is copied, never modified. Other BNs stay in the graph and
//! run as a per-channel scale and shift.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::ir::{Graph, NodeId, Op, Tensor, ValueId};

/// What [`fold_batch_norm`] did, by node name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BnFoldReport {
    /// `(batch norm, conv or gemm it was folded into)`.
    pub folded: Vec<(String, String)>,
    /// `(batch norm, why it was kept)`.
    pub kept: Vec<(String, String)>,
}

/// Folds every foldable BatchNormalization into its producer; see the module docs.
///
/// ```
/// use q8_frontend::ir::{BatchNormParams, Dim, GraphBuilder, Op, Shape, Window2d};
/// use q8_frontend::passes::fold_batch_norm;
/// let mut b = GraphBuilder::new("net");
/// let x = b.input("x", Shape(vec![Dim::sym("n"), 1.into(), 4.into(), 4.into()])).unwrap();
/// let y = b.conv2d("conv", x, vec![1.0; 2 * 9], None, 2, Window2d::new([3, 3], [1, 1], 1), 1).unwrap();
/// let bn = BatchNormParams {
///     gamma: vec![2.0, 1.0],
///     beta: vec![0.5, 0.0],
///     mean: vec![0.0, 1.0],
///     var: vec![1.0, 1.0],
///     epsilon: 0.0,
/// };
/// let y = b.batch_norm("bn", y, bn).unwrap();
/// let mut g = b.finish(&[y]).unwrap();
/// let report = fold_batch_norm(&mut g).unwrap();
/// assert_eq!(report.folded, vec![("bn".to_string(), "conv".to_string())]);
/// assert!(g.nodes().all(|(_, n)| !matches!(n.op, Op::BatchNorm { .. })));
/// ```
///
/// # Errors
/// [`Error::Graph`] when the rewritten graph does not validate (a bug, reported rather than
/// hidden).
pub fn fold_batch_norm(graph: &mut Graph) -> Result<BnFoldReport> {
    let mut report = BnFoldReport::default();
    let bns: Vec<NodeId> = graph
        .topo_order()?
        .into_iter()
        .filter(|id| {
            graph
                .node(*id)
                .is_some_and(|n| matches!(n.op, Op::BatchNorm { .. }))
        })
        .collect();
    for bn in bns {
        let name = graph.node(bn).map(|n| n.name.clone()).unwrap_or_default();
        match plan(graph, bn) {
            Ok(fold) => {
                let target = graph
                    .node(fold.producer)
                    .map(|n| n.name.clone())
                    .unwrap_or_default();
                apply(graph, bn, fold)?;
                report.folded.push((name, target));
            }
            Err(why) => report.kept.push((name, why)),
        }
    }
    graph.validate()?;
    Ok(report)
}

/// A fold ready to apply.
struct Fold {
    producer: NodeId,
    weight: Tensor,
    bias: Tensor,
    new_op: Op,
}

fn constant_f32(graph: &Graph, v: ValueId) -> std::result::Result<Arc<Tensor>, String> {
    let val = graph.value(v);
    val.constant
        .clone()
        .filter(|t| t.as_f32().is_some())
        .ok_or_else(|| format!("'{}' is not an f32 constant", val.name))
}

/// Checks the fold conditions and computes the folded parameters.
fn plan(graph: &Graph, bn: NodeId) -> std::result::Result<Fold, String> {
    let node = graph.node(bn).ok_or("node vanished")?;
    let Op::BatchNorm { epsilon } = node.op else {
        return Err("not a BatchNormalization".into());
    };
    let x = node.inputs[0];
    let producer_id = graph
        .value(x)
        .producer
        .ok_or("its input is not computed by a node")?;
    let producer = graph.node(producer_id).ok_or("its producer was removed")?;
    if graph.consumers(x) != [bn] || graph.is_output(x) {
        return Err(format!(
            "the output of '{}' has other readers",
            producer.name
        ));
    }
    let foldable = match &producer.op {
        Op::Conv(_) => true,
        Op::Gemm(g) => !g.trans_a,
        _ => false,
    };
    if !foldable {
        return Err(format!(
            "its input comes from {} '{}', not a Conv or a Gemm without transA",
            producer.op.name(),
            producer.name
        ));
    }
    let params: Vec<Arc<Tensor>> = node.inputs[1..]
        .iter()
        .map(|v| constant_f32(graph, *v))
        .collect::<std::result::Result<_, _>>()?;
    let f = |i: usize| params[i].as_f32().unwrap_or_default();
    let (gamma, beta, mean, var) = (f(0), f(1), f(2), f(3));
    let scale: Vec<f32> = gamma
        .iter()
        .zip(var)
        .map(|(g, v)| g / (v + epsilon).sqrt())
        .collect();
    let channels = scale.len();
    let w = constant_f32(graph, producer.inputs[1])?;
    let w_data = w.as_f32().unwrap_or_default();
    let old_bias = match producer.inputs.get(2) {
        Some(b) => Some(constant_f32(graph, *b)?),
        None => None,
    };
    let (weight, bias_in, new_op) = match &producer.op {
        Op::Conv(_) => {
            let per = w_data.len() / channels.max(1);
            let data: Vec<f32> = w_data
                .iter()
                .enumerate()
                .map(|(i, v)| v * scale[i / per])
                .collect();
            let bias: Vec<f32> = match &old_bias {
                Some(b) => b.as_f32().unwrap_or_default().to_vec(),
                None => vec![0.0; channels],
            };
            (data, bias, producer.op.clone())
        }
        Op::Gemm(g) if !g.trans_a => {
            let shape = w.shape();
            let data: Vec<f32> = if g.trans_b {
                w_data
                    .iter()
                    .enumerate()
                    .map(|(i, v)| v * scale[i / shape[1]])
                    .collect()
            } else {
                w_data
                    .iter()
                    .enumerate()
                    .map(|(i, v)| v * scale[i % shape[1]])
                    .collect()
            };
            let bias: Vec<f32> = match &old_bias {
                Some(b) if b.len() == channels => b
                    .as_f32()
                    .unwrap_or_default()
                    .iter()
                    .map(|c| c * g.beta)
                    .collect(),
                Some(b) if b.len() == 1 => {
                    vec![b.as_f32().unwrap_or_default()[0] * g.beta; channels]
                }
                Some(_) => return Err("the Gemm's C is not a per-column bias".into()),
                None => vec![0.0; channels],
            };
            let mut ng = g.clone();
            ng.beta = 1.0;
            (data, bias, Op::Gemm(ng))
        }
        // Checked above.
        _ => return Err("not foldable".into()),
    };
    if bias_in.len() != channels {
        return Err("bias length differs from the BN channel count".into());
    }
    let bias: Vec<f32> = bias_in
        .iter()
        .zip(mean)
        .zip(&scale)
        .zip(beta)
        .map(|(((b, m), s), t)| (b - m) * s + t)
        .collect();
    Ok(Fold {
        producer: producer_id,
        weight: Tensor::from_f32(w.shape().to_vec(), weight).map_err(|e| e.to_string())?,
        bias: Tensor::from_f32(vec![channels], bias).map_err(|e| e.to_string())?,
        new_op,
    })
}

fn fresh_name(graph: &Graph, base: &str) -> String {
    let mut name = base.to_string();
    let mut i = 1;
    while graph.value_by_name(&name).is_some() {
        name = format!("{base}_{i}");
        i += 1;
    }
    name
}

fn apply(graph: &mut Graph, bn: NodeId, fold: Fold) -> Result<()> {
    let bn_node = graph
        .node(bn)
        .ok_or_else(|| Error::Graph("batch norm vanished".into()))?;
    let (bn_name, bn_out) = (bn_node.name.clone(), bn_node.outputs[0]);
    let x = graph
        .node(fold.producer)
        .map(|n| n.inputs[0])
        .ok_or_else(|| Error::Graph("producer vanished".into()))?;
    let w = graph.add_constant(
        &fresh_name(graph, &format!("{bn_name}.folded_weight")),
        fold.weight,
    )?;
    let b = graph.add_constant(
        &fresh_name(graph, &format!("{bn_name}.folded_bias")),
        fold.bias,
    )?;
    graph.set_inputs(fold.producer, vec![x, w, b])?;
    if let Some(op) = graph.op_mut(fold.producer) {
        *op = fold.new_op;
    }
    graph.remove_node(bn);
    graph.set_output(fold.producer, 0, bn_out)
}
