//! Nodes without an int8 kernel: kept as the node's op with its constant operands, and
//! evaluated by the runtime through the fp32 executor's op implementations
//! ([`crate::exec::eval_node`]) on the model's own thread pool and buffers, not by an
//! executor (and thread pool) per node.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::exec::{Arg, Buffers, eval_node, fold_constants};
use crate::ir::{Graph, Op, Tensor, ValueId};

/// Where one operand of a fallback node comes from.
#[derive(Debug)]
enum Operand {
    /// The step's input at this index.
    Input(usize),
    /// A constant, folded at load time (weights, shape sub-graphs).
    Constant(Arc<Tensor>),
}

/// What a fallback step computes.
#[derive(Debug)]
enum Body {
    /// Output `output` of `op` on its operands.
    Node {
        op: Op,
        operands: Vec<Operand>,
        output: usize,
    },
    /// A value fixed at load time (a constant-derived node a step reads).
    Constant(Arc<Tensor>),
}

/// One node run in f32 (or on any element type) by the int8 runtime.
#[derive(Debug)]
pub struct FallbackNode {
    body: Body,
}

impl FallbackNode {
    /// From a sub-graph holding the node, the constant-derived nodes it reads and, as graph
    /// inputs (in the step's input order), the run-time values it reads. The constant
    /// nodes are evaluated now (with `threads` workers of the calling pool).
    ///
    /// # Errors
    /// A constant node that fails, or a sub-graph that does not reduce to one node.
    pub(crate) fn new(mut sub: Graph, threads: usize) -> Result<FallbackNode> {
        fold_constants(&mut sub, threads.max(1), &mut Buffers::default())?;
        let [out] = sub.outputs() else {
            return Err(Error::Graph(format!(
                "fallback '{}' must have one output",
                sub.name
            )));
        };
        let out = *out;
        if let Some(c) = &sub.value(out).constant {
            return Ok(FallbackNode {
                body: Body::Constant(Arc::clone(c)),
            });
        }
        let node = sub
            .value(out)
            .producer
            .and_then(|p| sub.node(p))
            .ok_or_else(|| Error::Graph(format!("fallback '{}' has no node", sub.name)))?;
        let operands = node
            .inputs
            .iter()
            .map(|&v| operand(&sub, v))
            .collect::<Result<_>>()?;
        let output = node.outputs.iter().position(|&o| o == out).unwrap_or(0);
        Ok(FallbackNode {
            body: Body::Node {
                op: node.op.clone(),
                operands,
                output,
            },
        })
    }

    /// Computes the node's output (the sub-graph's output it was built for) from the step's
    /// inputs (in the step's order).
    ///
    /// # Errors
    /// Wrong input count, or the op's inference / evaluation errors naming `name`.
    pub(crate) fn eval(
        &self,
        name: &str,
        inputs: Vec<Arg<'_>>,
        threads: usize,
        buffers: &mut Buffers,
    ) -> Result<Tensor> {
        let (op, operands, output) = match &self.body {
            Body::Constant(c) => return Ok(Tensor::clone(c)),
            Body::Node {
                op,
                operands,
                output,
            } => (op, operands, *output),
        };
        // Inputs read once move into the op (which may then work in place); an input read
        // twice (`Mul(x, x)`) is lent to both operands.
        let mut kept: Vec<Option<Arg<'_>>> = inputs.into_iter().map(Some).collect();
        let mut moved: Vec<Option<Arg<'_>>> = (0..kept.len())
            .map(|k| {
                if self.reads_once(k) {
                    kept[k].take()
                } else {
                    None
                }
            })
            .collect();
        let mut args = Vec::with_capacity(operands.len());
        for o in operands {
            let arg = match o {
                Operand::Constant(c) => Some(Arg::Borrowed(c)),
                Operand::Input(k) => match moved.get_mut(*k).and_then(Option::take) {
                    Some(a) => Some(a),
                    None => kept
                        .get(*k)
                        .and_then(Option::as_ref)
                        .map(|a| Arg::Borrowed(a.tensor())),
                },
            };
            args.push(
                arg.ok_or_else(|| Error::node(op.name(), name, "a run-time operand is missing"))?,
            );
        }
        eval_node(op, name, args, threads, buffers)?
            .into_iter()
            .nth(output)
            .ok_or_else(|| Error::node(op.name(), name, "produced no output"))
    }
}

impl FallbackNode {
    /// Whether the node reads the step's input `k` as one operand only (so the runtime may
    /// hand it over when the step is its last reader).
    pub(crate) fn reads_once(&self, k: usize) -> bool {
        match &self.body {
            Body::Node { operands, .. } => {
                operands
                    .iter()
                    .filter(|o| matches!(o, Operand::Input(i) if *i == k))
                    .count()
                    == 1
            }
            Body::Constant(_) => false,
        }
    }
}

/// The source of value `v` of the folded sub-graph.
fn operand(sub: &Graph, v: ValueId) -> Result<Operand> {
    if let Some(c) = &sub.value(v).constant {
        return Ok(Operand::Constant(Arc::clone(c)));
    }
    sub.inputs()
        .iter()
        .position(|&i| i == v)
        .map(Operand::Input)
        .ok_or_else(|| {
            Error::Graph(format!(
                "fallback '{}': operand '{}' is neither an input nor a constant",
                sub.name,
                sub.value(v).name
            ))
        })
}
