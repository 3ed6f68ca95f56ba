//! The fp32 attention chain of exported transformers,
//! `MatMul(q, k_t) -> Div | Mul (scalar) -> [Add (mask)] -> Softmax (last axis) -> MatMul(., v)`,
//! recognized so it runs as one [`Attention`] step (per head, scores kept in cache) instead
//! of five fallback steps that each write the `[.., S, T]` score tensor. The fused op gives
//! the five nodes' bits (see [`crate::ops::Attention`]).

use std::collections::HashMap;

use super::{Attempt, Matcher};
use crate::error::Result;
use crate::ir::{Graph, NodeId, Op, ValueId, ValueType};
use crate::lower::{FallbackNode, Step, StepKind};
use crate::ops::{Attention, BatchMatMul, Binary, BinaryKind, OpDef, ScoreScale, Softmax, def};

/// The nodes and operands of one matched chain.
struct Chain {
    nodes: Vec<NodeId>,
    scale: ScoreScale,
    /// `[q, k_t, v]` and the mask when there is one.
    inputs: Vec<ValueId>,
    output: ValueId,
}

impl Matcher<'_> {
    /// Fuses the attention chain starting at the batched MatMul `id`, if it is one.
    pub(super) fn attention(&mut self, id: NodeId) -> Result<Attempt> {
        // Not a chain: the MatMul stays a plain fallback step with the usual reason.
        let Some(chain) = self.attention_chain(id) else {
            return Ok(Ok(()));
        };
        let op = Attention {
            scale: chain.scale,
            masked: chain.inputs.len() == 4,
        };
        let types: Vec<&ValueType> = chain.inputs.iter().map(|&v| &self.g.value(v).ty).collect();
        let name = self.node(id).name.clone();
        match op.infer(&name, &types) {
            Ok(out) if out[0] == self.g.value(chain.output).ty => {}
            Ok(_) => {
                return Ok(Err(
                    "the chain's output type differs from the fused op's".into()
                ));
            }
            Err(e) => return Ok(Err(format!("not fusable as attention: {e}"))),
        }
        let (sub, inputs) = self.attention_graph(&name, op, &chain.inputs)?;
        let step = Step {
            name,
            kind: StepKind::Fallback(Box::new(FallbackNode::new(sub, self.threads)?)),
            inputs,
            output: chain.output,
        };
        let labels: Vec<&str> = chain
            .nodes
            .iter()
            .map(|&n| self.node(n).op.name())
            .collect();
        let detail = format!("f32 attention, one step per head: {}", labels.join(" -> "));
        self.fused_f32.extend(chain.nodes.iter().copied());
        self.push(step, &chain.nodes, detail);
        Ok(Ok(()))
    }

    fn attention_chain(&self, id: NodeId) -> Option<Chain> {
        let is_matmul = |n: NodeId| matches!(&self.node(n).op, Op::Def(d) if d.downcast::<BatchMatMul>().is_some());
        let first = self.node(id);
        if !is_matmul(id) {
            return None;
        }
        let (q, k_t, scores) = (first.inputs[0], first.inputs[1], first.outputs[0]);
        let scaler = self.sole_consumer(scores)?;
        let scale = self.score_scale(scaler, scores)?;
        let scaled = self.node(scaler).outputs[0];
        let mut nodes = vec![id, scaler];
        let mut next = self.sole_consumer(scaled)?;
        let mut mask = None;
        if matches!(self.node(next).op, Op::Add) {
            let add = self.node(next);
            mask = Some(if add.inputs[0] == scaled {
                add.inputs[1]
            } else {
                add.inputs[0]
            });
            nodes.push(next);
            next = self.sole_consumer(add.outputs[0])?;
        }
        let rank = self.g.value(scores).ty.shape.rank();
        let softmax = matches!(&self.node(next).op, Op::Def(d)
            if d.downcast::<Softmax>().is_some_and(|s| !s.log && !s.coerce_2d && s.axis + 1 == rank));
        if !softmax {
            return None;
        }
        nodes.push(next);
        let probs = self.node(next).outputs[0];
        let second = self.sole_consumer(probs)?;
        if !is_matmul(second) || self.node(second).inputs[0] != probs {
            return None;
        }
        nodes.push(second);
        let mut inputs = vec![q, k_t, self.node(second).inputs[1]];
        inputs.extend(mask);
        Some(Chain {
            nodes,
            scale,
            inputs,
            output: self.node(second).outputs[0],
        })
    }

    /// `Div(scores, c)` or `Mul(scores, c)` / `Mul(c, scores)` with a constant scalar `c`.
    fn score_scale(&self, id: NodeId, scores: ValueId) -> Option<ScoreScale> {
        let n = self.node(id);
        let is_div = matches!(&n.op, Op::Def(d)
            if d.downcast::<Binary>().is_some_and(|b| b.kind == BinaryKind::Div));
        if is_div && n.inputs[0] == scores {
            return self.scalar(n.inputs[1]).map(ScoreScale::Div);
        }
        self.scalar_operand(id, Op::Mul, scores)
            .map(ScoreScale::Mul)
    }

    /// A graph holding only the fused node (constants shared) and its run-time operands, in
    /// the order of the graph's inputs.
    fn attention_graph(
        &self,
        name: &str,
        op: Attention,
        operands: &[ValueId],
    ) -> Result<(Graph, Vec<ValueId>)> {
        let mut sub = Graph::new(name);
        let mut map: HashMap<ValueId, ValueId> = HashMap::new();
        let mut run_time = Vec::new();
        for &v in operands {
            if map.contains_key(&v) {
                continue;
            }
            let val = self.g.value(v);
            let nv = match &val.constant {
                Some(c) => sub.add_shared_constant(&val.name, c.clone())?,
                None => {
                    run_time.push(v);
                    sub.add_input(&val.name, val.ty.dtype, val.ty.shape.clone())?
                }
            };
            map.insert(v, nv);
        }
        let ins: Vec<ValueId> = operands.iter().map(|v| map[v]).collect();
        let out = sub.add_node(name, def(op), &ins)?;
        sub.set_outputs(&out);
        Ok((sub, run_time))
    }
}
