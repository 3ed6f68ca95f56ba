//! Graph rewrites that run before pattern matching: one dequantize per consumer, quantize
//! moved before max pooling (exact: quantization is monotonic), and a batch fixed at 1 by
//! the exporter made dynamic again.

use crate::error::Result;
use crate::ir::{Dim, Graph, NodeId, Op, ReshapeDim};

/// Clones every `DequantizeLinear` with several consumers so each consumer has its own
/// (PT2E's `DuplicateDQPass`, Inductor's dequant promotion): then every consumer can form
/// its own `dq -> op -> q` pattern. Returns how many clones were made.
///
/// # Errors
/// Graph bookkeeping errors (name clashes).
pub fn duplicate_dequantize(graph: &mut Graph) -> Result<usize> {
    let dqs: Vec<NodeId> = graph
        .nodes()
        .filter(|(_, n)| matches!(n.op, Op::DequantizeLinear(_)))
        .map(|(id, _)| id)
        .collect();
    let mut made = 0;
    for id in dqs {
        let node = graph.node(id).expect("live node").clone();
        let out = node.outputs[0];
        let users = graph.consumers(out);
        let keep_first = !graph.is_output(out);
        for (i, &user) in users.iter().enumerate().skip(usize::from(keep_first)) {
            let name = unique_name(graph, &format!("{}.dup{i}", node.name));
            let out_name = format!("{}.dup{i}", graph.value(out).name);
            let clone =
                graph.add_node_with_outputs(&name, node.op.clone(), &node.inputs, &[out_name])?[0];
            let slots: Vec<usize> = graph
                .node(user)
                .expect("live consumer")
                .inputs
                .iter()
                .enumerate()
                .filter(|(_, v)| **v == out)
                .map(|(k, _)| k)
                .collect();
            for k in slots {
                graph.set_input(user, k, clone)?;
            }
            made += 1;
        }
    }
    Ok(made)
}

/// Rewrites `q(maxpool(y))` into `q(maxpool(dq(q(y))))` when `y` (f32, not itself a
/// dequantize) feeds only the pool: quantization is monotonic and padding never wins a max,
/// so both give the same bits, and the new form lowers to a producer with u8 output and a
/// u8 max pool (the PT2E export quantizes after the stem's pool). Returns the rewrites made.
///
/// # Errors
/// Graph bookkeeping errors.
pub fn quantize_before_max_pool(graph: &mut Graph) -> Result<usize> {
    let mut made = 0;
    let qs: Vec<NodeId> = graph
        .nodes()
        .filter(|(_, n)| matches!(n.op, Op::QuantizeLinear(_)))
        .map(|(id, _)| id)
        .collect();
    for q in qs {
        let q_node = graph.node(q).expect("live node").clone();
        let Some(pool) = graph.value(q_node.inputs[0]).producer else {
            continue;
        };
        let pool_node = graph.node(pool).expect("live producer").clone();
        let y = pool_node.inputs[0];
        let pool_feeds_only_q = graph.consumers(pool_node.outputs[0]).len() == 1
            && !graph.is_output(pool_node.outputs[0]);
        let y_only_pool = graph.consumers(y).len() == 1 && !graph.is_output(y);
        let y_is_dq = graph
            .producer(y)
            .is_some_and(|n| matches!(n.op, Op::DequantizeLinear(_)));
        let y_is_runtime = graph.value(y).producer.is_some();
        if !matches!(pool_node.op, Op::MaxPool(_))
            || !pool_feeds_only_q
            || !y_only_pool
            || y_is_dq
            || !y_is_runtime
        {
            continue;
        }
        let Op::QuantizeLinear(spec) = &q_node.op else {
            unreachable!("filtered above")
        };
        let qname = unique_name(graph, &format!("{}.before_pool", q_node.name));
        let pre_q = graph.add_node(&qname, Op::QuantizeLinear(spec.clone()), &[y])?[0];
        let dname = unique_name(graph, &format!("{}.before_pool_dq", q_node.name));
        let pre_dq = graph.add_node(&dname, Op::DequantizeLinear(spec.clone()), &[pre_q])?[0];
        graph.set_input(pool, 0, pre_dq)?;
        made += 1;
    }
    Ok(made)
}

/// When a graph input has a leading dimension fixed at 1 (exporters that trace with one
/// example image), makes `Reshape` targets that pin the leading dimension to 1 copy it from
/// their input instead, so the graph runs at any batch size. Returns whether the batch is
/// treated as dynamic.
pub fn relax_fixed_batch(graph: &mut Graph) -> bool {
    let fixed_one = graph.inputs().iter().any(|&i| {
        let dims = graph.value(i).ty.shape.dims();
        dims.len() >= 2 && dims[0] == Dim::Known(1)
    });
    if !fixed_one {
        return false;
    }
    let reshapes: Vec<NodeId> = graph
        .nodes()
        .filter(|(_, n)| matches!(&n.op, Op::Reshape { target } if target.first() == Some(&ReshapeDim::Fixed(1))))
        .map(|(id, _)| id)
        .collect();
    for id in reshapes {
        if let Some(Op::Reshape { target }) = graph.op_mut(id) {
            target[0] = ReshapeDim::CopyInput(0);
        }
    }
    true
}

fn unique_name(graph: &Graph, base: &str) -> String {
    let mut name = base.to_string();
    let mut i = 0;
    while graph.node_by_name(&name).is_some()
        || graph.value_by_name(&format!("{name}_output_0")).is_some()
    {
        i += 1;
        name = format!("{base}.{i}");
    }
    name
}
