//! Annotation: which nodes form quantized patterns and where activation quantizers go,
//! found from the graph's structure (op types and edges, never names or export metadata),
//! with the X86 recipe's priorities (`frontend-prior-art.md` §1.3, §1.4, §3.2):
//!
//! 1. conv patterns, larger first: conv+add+relu, conv+add, conv+{relu, clip (relu6 /
//!    hardtanh), hardswish, silu}, conv alone; then linear (Gemm with a constant `[N, K]`
//!    weight, or MatMul with a constant `[K, N]` weight): linear+add(+relu), linear+relu, linear alone; then `Mul` of two same-shaped
//!    tensors. Convs are visited in graph order, so when both inputs of an `Add` are convs the
//!    earlier one is fused and the other becomes the quantized extra input (as PyTorch's
//!    partition search does).
//! 2. propagation (graph order): MaxPool, AveragePool, GlobalAveragePool / ReduceMean over
//!    H, W, Flatten / Reshape and Concat are quantized only when their inputs are outputs of
//!    quantized patterns; their output shares the input's quantizer (Concat: every input shares
//!    the first input's).
//! 3. sharing: quantizers on the same tensor with the same range are merged, plus the explicit
//!    sharing of step 2 — a union-find over [`QuantPoint`]s whose classes are the
//!    [`QuantGroup`]s (one observer each).
//!
//! Deliberate differences from PyTorch: an intermediate of a fused pattern (conv output before
//! its relu, ...) must have that pattern's next node as its only reader and must not be a graph
//! output, because a fused kernel cannot expose it; a pattern is skipped when one of its
//! non-anchor nodes is explicitly overridden to fp32 (the next smaller pattern is tried); an
//! anchor overridden to fp32 stays fp32 alone, leaving its post-ops to other patterns.

use std::collections::{BTreeMap, HashSet};

use super::config::{ActivationSpec, ConfigSource, OpQuantSpec, QuantConfig, Setting};
use super::error::{QuantError, Result};
use crate::ir::{Gemm, Graph, NodeId, Op, ValueId};
use crate::ops::{self, UnaryKind};

/// Where an activation quantizer sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QuantPoint {
    /// `value` as read by `consumer` (an input edge).
    Edge {
        /// The tensor.
        value: ValueId,
        /// The node reading it.
        consumer: NodeId,
    },
    /// A node's output, for all its readers.
    Output(ValueId),
}

impl QuantPoint {
    /// The tensor this quantizer observes.
    pub fn value(self) -> ValueId {
        match self {
            QuantPoint::Edge { value, .. } | QuantPoint::Output(value) => value,
        }
    }
}

/// The post-op of a conv or linear pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unary {
    /// `Relu`.
    Relu,
    /// `Clip` with finite bounds (ReLU6, Hardtanh).
    Clip,
    /// `HardSwish`.
    HardSwish,
    /// `x * Sigmoid(x)`.
    Silu,
}

impl Unary {
    fn name(self) -> &'static str {
        match self {
            Unary::Relu => "relu",
            Unary::Clip => "clip",
            Unary::HardSwish => "hardswish",
            Unary::Silu => "silu",
        }
    }
}

/// The kinds of quantized patterns, in the recipe's vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatternKind {
    /// Conv -> Add (other input quantized) -> Relu.
    ConvAddRelu,
    /// Conv -> Add (other input quantized).
    ConvAdd,
    /// Conv -> unary post-op.
    ConvUnary(Unary),
    /// Conv alone.
    Conv,
    /// Gemm -> Add (other input left fp32) -> Relu.
    LinearAddRelu,
    /// Gemm -> Add (other input left fp32).
    LinearAdd,
    /// Gemm -> Relu.
    LinearUnary(Unary),
    /// Gemm alone.
    Linear,
    /// A linear layer (Gemm / MatMul alone) quantized dynamically: activation qparams per
    /// call (`DynamicQuantizeLinear`), weights s8 at convert.
    DynamicLinear,
    /// Mul of two same-shaped tensors.
    Mul,
    /// An int8-in int8-out op whose output shares its input's quantizer (MaxPool,
    /// AveragePool, GlobalAveragePool, ReduceMean over H W, Flatten, Reshape, Concat).
    Propagation,
}

impl PatternKind {
    /// A short name, e.g. `conv+add+relu`.
    pub fn name(self) -> String {
        match self {
            PatternKind::ConvAddRelu => "conv+add+relu".into(),
            PatternKind::ConvAdd => "conv+add".into(),
            PatternKind::ConvUnary(u) => format!("conv+{}", u.name()),
            PatternKind::Conv => "conv".into(),
            PatternKind::LinearAddRelu => "linear+add+relu".into(),
            PatternKind::LinearAdd => "linear+add".into(),
            PatternKind::LinearUnary(u) => format!("linear+{}", u.name()),
            PatternKind::Linear => "linear".into(),
            PatternKind::DynamicLinear => "linear (dynamic)".into(),
            PatternKind::Mul => "mul".into(),
            PatternKind::Propagation => "int8-in-int8-out".into(),
        }
    }
}

/// One matched, quantized pattern.
#[derive(Clone, Debug, PartialEq)]
pub struct PatternMatch {
    /// What was matched.
    pub kind: PatternKind,
    /// Its nodes, anchor (conv, gemm, mul or the propagated op) first, in data-flow order.
    pub nodes: Vec<NodeId>,
    /// The value the pattern computes (its last node's output).
    pub output: ValueId,
    /// The weight constant of a conv / linear anchor, quantized per channel.
    pub weight: Option<ValueId>,
    /// The spec that applies (resolved from the anchor's name and op type).
    pub spec: OpQuantSpec,
}

/// Quantizers sharing one observer and one set of qparams.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantGroup {
    /// The quantizers, in annotation order.
    pub points: Vec<QuantPoint>,
    /// The distinct tensors they observe, in annotation order.
    pub values: Vec<ValueId>,
    /// The spec of the group (its first non-shared quantizer's).
    pub spec: ActivationSpec,
}

/// Why a node stays in fp32.
#[derive(Clone, Debug, PartialEq)]
pub enum Fp32Reason {
    /// The configuration says so.
    Override(ConfigSource),
    /// The op can be quantized, but not here (the message says which condition failed).
    NotMatched(String),
    /// q8 has no int8 recipe for the op.
    Unsupported(String),
}

/// What happens to one node.
#[derive(Clone, Debug, PartialEq)]
pub enum NodeStatus {
    /// Part of `patterns[pattern]`.
    Quantized {
        /// Index into [`Annotation::patterns`].
        pattern: usize,
    },
    /// Left in fp32.
    Fp32(Fp32Reason),
}

/// The result of [`annotate`].
#[derive(Clone, Debug, PartialEq)]
pub struct Annotation {
    /// Matched patterns, in match order.
    pub patterns: Vec<PatternMatch>,
    /// Observer-sharing groups.
    pub groups: Vec<QuantGroup>,
    /// Every live node's status, in graph order.
    pub status: Vec<(NodeId, NodeStatus)>,
    group_of: BTreeMap<QuantPoint, usize>,
}

impl Annotation {
    /// The group a quantizer belongs to.
    pub fn group_of(&self, point: QuantPoint) -> Option<usize> {
        self.group_of.get(&point).copied()
    }

    /// The pattern a node belongs to, if quantized.
    pub fn pattern_of(&self, node: NodeId) -> Option<&PatternMatch> {
        self.status.iter().find_map(|(id, s)| match s {
            NodeStatus::Quantized { pattern } if *id == node => self.patterns.get(*pattern),
            _ => None,
        })
    }
}

/// A quantizer request before sharing is resolved.
#[derive(Clone, Copy)]
enum Request {
    Own(ActivationSpec),
    /// Shares the quantizer of that point, whose spec is the one given.
    SharedWith(QuantPoint, ActivationSpec),
}

/// Annotates `graph` under `config`.
///
/// ```
/// use q8_frontend::ir::{Dim, GraphBuilder, Op, Shape, Window2d};
/// use q8_frontend::quant::{annotate, PatternKind, QuantConfig};
/// let mut b = GraphBuilder::new("net");
/// let x = b.input("x", Shape(vec![Dim::sym("n"), 1.into(), 4.into(), 4.into()])).unwrap();
/// let y = b.conv2d("conv", x, vec![0.5; 2 * 9], None, 2, Window2d::new([3, 3], [1, 1], 1), 1).unwrap();
/// let y = b.op("relu", Op::Relu, &[y]).unwrap();
/// let g = b.finish(&[y]).unwrap();
/// let a = annotate(&g, &QuantConfig::x86_default()).unwrap();
/// assert_eq!(a.patterns[0].kind.name(), "conv+relu");
/// assert_eq!(a.groups.len(), 1); // the conv's input
/// ```
///
/// # Errors
/// [`QuantError::Config`] when the config is invalid; [`QuantError::Model`] when the graph
/// already holds QuantizeLinear / DequantizeLinear nodes.
pub fn annotate(graph: &Graph, config: &QuantConfig) -> Result<Annotation> {
    config.validate()?;
    if let Some((_, n)) = graph.nodes().find(|(_, n)| match &n.op {
        Op::QuantizeLinear(_) | Op::DequantizeLinear(_) => true,
        Op::Def(d) => matches!(d.name(), "DynamicQuantizeLinear" | "MatMulInteger"),
        _ => false,
    }) {
        return Err(QuantError::Model(format!(
            "the model is already quantized (node '{}' is {}); quantize its fp32 original",
            n.name,
            n.op.name()
        )));
    }
    let mut a = Annotator {
        graph,
        config,
        status: BTreeMap::new(),
        patterns: Vec::new(),
        requests: Vec::new(),
        pattern_outputs: HashSet::new(),
    };
    a.run();
    let (groups, group_of) = share(graph, &a.requests);
    let status = graph
        .nodes()
        .map(|(id, n)| {
            let s = a
                .status
                .remove(&id)
                .unwrap_or_else(|| NodeStatus::Fp32(unclaimed_reason(&n.op)));
            (id, s)
        })
        .collect();
    Ok(Annotation {
        patterns: a.patterns,
        groups,
        status,
        group_of,
    })
}

struct Annotator<'g> {
    graph: &'g Graph,
    config: &'g QuantConfig,
    status: BTreeMap<NodeId, NodeStatus>,
    patterns: Vec<PatternMatch>,
    requests: Vec<(QuantPoint, Request)>,
    /// Values computed by quantized patterns (PyTorch's `_is_output_of_quantized_pattern`).
    pattern_outputs: HashSet<ValueId>,
}

/// A candidate pattern: kind, nodes (anchor first), output, weight, extra quantized inputs.
struct Candidate {
    kind: PatternKind,
    nodes: Vec<NodeId>,
    output: ValueId,
    weight: Option<ValueId>,
    /// Activation inputs to quantize, as (value, consumer).
    inputs: Vec<(ValueId, NodeId)>,
}

impl Annotator<'_> {
    fn run(&mut self) {
        let order: Vec<NodeId> = self.graph.nodes().map(|(id, _)| id).collect();
        let levels: [fn(&Self, NodeId) -> Option<Candidate>; 8] = [
            |a, n| a.conv_add(n, true),
            |a, n| a.conv_add(n, false),
            Annotator::conv_unary,
            Annotator::conv,
            |a, n| a.linear_add(n, true),
            |a, n| a.linear_add(n, false),
            Annotator::linear_relu,
            Annotator::linear,
        ];
        for matcher in levels {
            for &id in &order {
                if !self.status.contains_key(&id)
                    && let Some(c) = matcher(self, id)
                {
                    self.claim(c);
                }
            }
        }
        for &id in &order {
            if !self.status.contains_key(&id)
                && let Some(c) = self.mul(id)
            {
                self.claim(c);
            }
        }
        for &id in &order {
            if !self.status.contains_key(&id) {
                self.propagate(id);
            }
        }
    }

    fn op(&self, id: NodeId) -> &Op {
        &self.graph.node(id).expect("live node").op
    }

    fn inputs(&self, id: NodeId) -> &[ValueId] {
        &self.graph.node(id).expect("live node").inputs
    }

    fn out(&self, id: NodeId) -> ValueId {
        self.graph.node(id).expect("live node").outputs[0]
    }

    fn is_const(&self, v: ValueId) -> bool {
        self.graph.value(v).constant.is_some()
    }

    /// The single unclaimed reader of `v`, if `v` is an internal value read only by it.
    fn sole_reader(&self, v: ValueId) -> Option<NodeId> {
        match self.graph.consumers(v).as_slice() {
            [only] if !self.graph.is_output(v) && !self.status.contains_key(only) => Some(*only),
            _ => None,
        }
    }

    /// An explicit (name or op-type) fp32 override of a non-anchor node blocks the pattern.
    fn blocked(&self, id: NodeId) -> bool {
        let n = self.graph.node(id).expect("live node");
        matches!(
            self.config.resolve(&n.name, n.op.name()),
            (Setting::Fp32, ConfigSource::NodeName | ConfigSource::OpType)
        )
    }

    /// A conv with a constant f32 weight and an activation input.
    fn conv(&self, id: NodeId) -> Option<Candidate> {
        let ins = self.inputs(id);
        let ok = matches!(self.op(id), Op::Conv(_))
            && !self.is_const(ins[0])
            && self.is_const(ins[1])
            && ins.get(2).is_none_or(|b| self.is_const(*b));
        ok.then(|| Candidate {
            kind: PatternKind::Conv,
            nodes: vec![id],
            output: self.out(id),
            weight: Some(ins[1]),
            inputs: vec![(ins[0], id)],
        })
    }

    /// A linear layer: a Gemm computing `x [M, K] * W^T + b` with a constant `W [N, K]`, or
    /// a MatMul `x [.., K] x W [K, N]` with a constant 2-D `W` (any rank of `x`).
    fn linear(&self, id: NodeId) -> Option<Candidate> {
        let ins = self.inputs(id);
        let plain = |g: &Gemm| g.alpha == 1.0 && g.beta == 1.0 && !g.trans_a && g.trans_b;
        let matmul_2d_weight =
            || matches!(self.op(id), Op::MatMul) && self.graph.value(ins[1]).ty.shape.rank() == 2;
        let ok = (matches!(self.op(id), Op::Gemm(g) if plain(g)) || matmul_2d_weight())
            && !self.is_const(ins[0])
            && self.is_const(ins[1])
            && ins.get(2).is_none_or(|b| self.is_const(*b));
        ok.then(|| Candidate {
            kind: PatternKind::Linear,
            nodes: vec![id],
            output: self.out(id),
            weight: Some(ins[1]),
            inputs: vec![(ins[0], id)],
        })
    }

    /// `anchor -> Add(anchor, other)`: the add and the other input.
    fn add_after(&self, anchor: NodeId) -> Option<(NodeId, ValueId)> {
        let v = self.out(anchor);
        let add = self.sole_reader(v)?;
        if !matches!(self.op(add), Op::Add) || self.blocked(add) {
            return None;
        }
        let ins = self.inputs(add);
        let other = if ins[0] == v { ins[1] } else { ins[0] };
        let same_shape = self.graph.value(other).ty.shape == self.graph.value(v).ty.shape;
        (other != v && !self.is_const(other) && same_shape).then_some((add, other))
    }

    /// The unary post-op reading `v` (for SiLU: Sigmoid(v) and Mul(v, sigmoid)).
    fn unary_after(&self, v: ValueId, allowed: &[Unary]) -> Option<(Unary, Vec<NodeId>)> {
        if self.graph.is_output(v) {
            return None;
        }
        let readers = self.graph.consumers(v);
        if readers
            .iter()
            .any(|r| self.status.contains_key(r) || self.blocked(*r))
        {
            return None;
        }
        let found = match readers.as_slice() {
            [one] => match self.op(*one) {
                Op::Relu => Some((Unary::Relu, vec![*one])),
                Op::Clip { min, max } if min.is_finite() && max.is_finite() => {
                    Some((Unary::Clip, vec![*one]))
                }
                Op::HardSwish => Some((Unary::HardSwish, vec![*one])),
                _ => None,
            },
            [a, b] => {
                let (sig, mul) = match (self.op(*a), self.op(*b)) {
                    (Op::Sigmoid, Op::Mul) => (*a, *b),
                    (Op::Mul, Op::Sigmoid) => (*b, *a),
                    _ => return None,
                };
                let s = self.out(sig);
                let mut ins = self.inputs(mul).to_vec();
                ins.sort();
                let mut want = vec![v, s];
                want.sort();
                let sole = self.graph.consumers(s) == [mul] && !self.graph.is_output(s);
                (ins == want && sole).then(|| (Unary::Silu, vec![sig, mul]))
            }
            _ => None,
        };
        found.filter(|(u, _)| allowed.contains(u))
    }

    fn conv_add(&self, id: NodeId, with_relu: bool) -> Option<Candidate> {
        let mut c = self.conv(id)?;
        let (add, other) = self.add_after(id)?;
        c.nodes.push(add);
        c.inputs.push((other, add));
        c.output = self.out(add);
        c.kind = PatternKind::ConvAdd;
        if with_relu {
            let (_, nodes) = self.unary_after(c.output, &[Unary::Relu])?;
            c.output = self.out(nodes[0]);
            c.nodes.extend(nodes);
            c.kind = PatternKind::ConvAddRelu;
        }
        Some(c)
    }

    fn conv_unary(&self, id: NodeId) -> Option<Candidate> {
        let mut c = self.conv(id)?;
        let all = [Unary::Relu, Unary::Clip, Unary::HardSwish, Unary::Silu];
        let (u, nodes) = self.unary_after(c.output, &all)?;
        c.output = self.out(*nodes.last().expect("non-empty"));
        c.nodes.extend(nodes);
        c.kind = PatternKind::ConvUnary(u);
        Some(c)
    }

    /// Linear + add (+ relu): the add's other input is not quantized (PyTorch: accuracy).
    fn linear_add(&self, id: NodeId, with_relu: bool) -> Option<Candidate> {
        let mut c = self.linear(id)?;
        let (add, _) = self.add_after(id)?;
        c.nodes.push(add);
        c.output = self.out(add);
        c.kind = PatternKind::LinearAdd;
        if with_relu {
            let (_, nodes) = self.unary_after(c.output, &[Unary::Relu])?;
            c.output = self.out(nodes[0]);
            c.nodes.extend(nodes);
            c.kind = PatternKind::LinearAddRelu;
        }
        Some(c)
    }

    fn linear_relu(&self, id: NodeId) -> Option<Candidate> {
        let mut c = self.linear(id)?;
        let (u, nodes) = self.unary_after(c.output, &[Unary::Relu])?;
        c.output = self.out(nodes[0]);
        c.nodes.extend(nodes);
        c.kind = PatternKind::LinearUnary(u);
        Some(c)
    }

    fn mul(&self, id: NodeId) -> Option<Candidate> {
        let (Op::Mul, [a, b]) = (self.op(id), self.inputs(id)) else {
            return None;
        };
        let (a, b) = (*a, *b);
        let same = self.graph.value(a).ty.shape == self.graph.value(b).ty.shape;
        let ok = !self.is_const(a) && !self.is_const(b) && same && !self.is_gelu_product(a, b);
        let mut inputs = vec![(a, id)];
        if b != a {
            inputs.push((b, id));
        }
        ok.then(|| Candidate {
            kind: PatternKind::Mul,
            nodes: vec![id],
            output: self.out(id),
            weight: None,
            inputs,
        })
    }

    /// `x · (1 + erf(..))`, the product inside a decomposed exact GELU: it stays fp32 with
    /// the rest of the GELU (which the int8 runtime then fuses into the preceding linear).
    fn is_gelu_product(&self, a: ValueId, b: ValueId) -> bool {
        let from_erf = |v: ValueId| {
            self.graph.value(v).producer.is_some_and(|p| {
                matches!(self.op(p), Op::Def(d)
                    if d.downcast::<ops::Unary>().is_some_and(|u| u.0 == UnaryKind::Erf))
            })
        };
        [a, b].into_iter().any(|v| {
            self.graph.value(v).producer.is_some_and(|add| {
                matches!(self.op(add), Op::Add) && self.inputs(add).iter().any(|&i| from_erf(i))
            })
        })
    }

    /// Records a candidate under the anchor's setting.
    fn claim(&mut self, c: Candidate) {
        let anchor = self.graph.node(c.nodes[0]).expect("live node");
        let (setting, source) = self.config.resolve(&anchor.name, anchor.op.name());
        let spec = match setting {
            Setting::Fp32 => {
                // Only the anchor: its post-ops stay free for another pattern (e.g. the other
                // conv feeding the same Add).
                self.status
                    .insert(c.nodes[0], NodeStatus::Fp32(Fp32Reason::Override(source)));
                return;
            }
            Setting::Quantize(spec) if spec.dynamic => {
                self.claim_dynamic(c, *spec);
                return;
            }
            Setting::Quantize(spec) => *spec,
        };
        let index = self.patterns.len();
        for &n in &c.nodes {
            self.status
                .insert(n, NodeStatus::Quantized { pattern: index });
        }
        for (value, consumer) in c.inputs {
            self.requests.push((
                QuantPoint::Edge { value, consumer },
                Request::Own(spec.activation),
            ));
        }
        self.pattern_outputs.insert(c.output);
        self.patterns.push(PatternMatch {
            kind: c.kind,
            nodes: c.nodes,
            output: c.output,
            weight: c.weight,
            spec,
        });
    }

    /// Dynamic quantization of a linear anchor alone (its post-ops stay fp32, as in ONNX
    /// Runtime's form): no activation quantizer, the weight quantized at convert. Any other
    /// pattern stays fp32.
    fn claim_dynamic(&mut self, c: Candidate, spec: OpQuantSpec) {
        let anchor = c.nodes[0];
        if !matches!(self.op(anchor), Op::Gemm(_) | Op::MatMul) {
            self.status.insert(
                anchor,
                NodeStatus::Fp32(Fp32Reason::Unsupported(DYNAMIC_ONLY.into())),
            );
            return;
        }
        let index = self.patterns.len();
        self.status
            .insert(anchor, NodeStatus::Quantized { pattern: index });
        self.patterns.push(PatternMatch {
            kind: PatternKind::DynamicLinear,
            nodes: vec![anchor],
            output: self.out(anchor),
            weight: c.weight,
            spec,
        });
    }

    /// Step 2 of the recipe for one node.
    fn propagate(&mut self, id: NodeId) {
        let node = self.graph.node(id).expect("live node");
        let inputs = node.inputs.clone();
        let is_reduce_hw = |axes: &[usize]| axes == [2, 3];
        let kind = match &node.op {
            Op::MaxPool(_) | Op::AveragePool { .. } | Op::GlobalAveragePool => "pool",
            Op::ReduceMean { axes, .. } if is_reduce_hw(axes) => "pool",
            Op::Flatten { .. } | Op::Reshape { .. } => "flatten",
            Op::Concat { .. } => "concat",
            _ => return,
        };
        let (setting, source) = self.config.resolve(&node.name, node.op.name());
        let spec = match setting {
            Setting::Fp32 => {
                self.status
                    .insert(id, NodeStatus::Fp32(Fp32Reason::Override(source)));
                return;
            }
            Setting::Quantize(spec) if spec.dynamic => {
                self.status.insert(
                    id,
                    NodeStatus::Fp32(Fp32Reason::Unsupported(DYNAMIC_ONLY.into())),
                );
                return;
            }
            Setting::Quantize(spec) => *spec,
        };
        let checked: &[ValueId] = if kind == "concat" {
            &inputs
        } else {
            &inputs[..1]
        };
        if let Some(v) = checked.iter().find(|v| !self.pattern_outputs.contains(v)) {
            let why = format!(
                "input '{}' is not the output of a quantized pattern",
                self.graph.value(*v).name
            );
            self.status
                .insert(id, NodeStatus::Fp32(Fp32Reason::NotMatched(why)));
            return;
        }
        let out = node.outputs[0];
        if kind == "flatten" {
            let readers = self.graph.consumers(out);
            let int8_reader = readers.iter().any(|r| takes_int8(self.op(*r)));
            if !readers.is_empty() && !int8_reader {
                let why = "no reader of its output takes int8 input".to_string();
                self.status
                    .insert(id, NodeStatus::Fp32(Fp32Reason::NotMatched(why)));
                return;
            }
        }
        let first = QuantPoint::Edge {
            value: inputs[0],
            consumer: id,
        };
        self.requests.push((first, Request::Own(spec.activation)));
        let mut seen = vec![inputs[0]];
        for &v in &inputs[1..] {
            if kind == "concat" && !seen.contains(&v) {
                seen.push(v);
                let p = QuantPoint::Edge {
                    value: v,
                    consumer: id,
                };
                self.requests
                    .push((p, Request::SharedWith(first, spec.activation)));
            }
        }
        self.requests.push((
            QuantPoint::Output(out),
            Request::SharedWith(first, spec.activation),
        ));
        let index = self.patterns.len();
        self.status
            .insert(id, NodeStatus::Quantized { pattern: index });
        self.pattern_outputs.insert(out);
        self.patterns.push(PatternMatch {
            kind: PatternKind::Propagation,
            nodes: vec![id],
            output: out,
            weight: None,
            spec,
        });
    }
}

/// Why a node under a dynamic setting that is not a linear layer stays fp32.
const DYNAMIC_ONLY: &str =
    "dynamic quantization covers linear layers only (MatMul / Gemm with a constant weight)";

/// Ops PyTorch's recipe counts as taking int8 input (`quantizable_ops`).
fn takes_int8(op: &Op) -> bool {
    matches!(
        op,
        Op::Conv(_)
            | Op::Gemm(_)
            | Op::MatMul
            | Op::Mul
            | Op::MaxPool(_)
            | Op::AveragePool { .. }
            | Op::GlobalAveragePool
            | Op::Flatten { .. }
            | Op::Concat { .. }
    )
}

/// Why a node no rule claimed stays fp32.
fn unclaimed_reason(op: &Op) -> Fp32Reason {
    let not = |s: &str| Fp32Reason::NotMatched(s.to_string());
    match op {
        Op::Conv(_) => not("its weight (or bias) is not a constant, or its input is"),
        Op::Gemm(_) => not(
            "not a linear layer (needs alpha = beta = 1, transB = 1, no transA, a constant weight and bias)",
        ),
        Op::Mul => not(
            "its inputs are not two same-shaped activations, or it is the product of a decomposed GELU (kept fp32)",
        ),
        Op::Add | Op::Relu | Op::Clip { .. } | Op::HardSwish | Op::Sigmoid => {
            not("not the post-op of a quantized conv / linear pattern")
        }
        Op::ReduceMean { .. } => not("only a mean over H, W of an NCHW tensor is int8"),
        Op::MatMul => not("not a linear layer (needs a constant 2-D weight as its second input)"),
        Op::BatchNorm { .. } => {
            Fp32Reason::Unsupported("a BatchNorm that could not be folded into a conv".into())
        }
        Op::Def(d) => match d.quant_rule() {
            crate::ops::QuantRule::Fp32 { why } => {
                Fp32Reason::Unsupported(format!("{why} for {}", d.name()))
            }
        },
        other => Fp32Reason::Unsupported(format!("no int8 recipe for {}", other.name())),
    }
}

/// Union-find over the requested quantizers: explicit sharing, plus implicit sharing of
/// quantizers on the same tensor with the same range (PyTorch's `allow_implicit_sharing`).
fn share(
    graph: &Graph,
    requests: &[(QuantPoint, Request)],
) -> (Vec<QuantGroup>, BTreeMap<QuantPoint, usize>) {
    let index: BTreeMap<QuantPoint, usize> = requests
        .iter()
        .enumerate()
        .map(|(i, (p, _))| (*p, i))
        .collect();
    let mut parent: Vec<usize> = (0..requests.len()).collect();
    fn find(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    // The spec a request resolves to through explicit sharing (PyTorch's
    // `_unwrap_shared_qspec`), independent of the unions made so far.
    let spec_of = |i: usize| match requests[i].1 {
        Request::Own(s) | Request::SharedWith(_, s) => s,
    };
    for (i, (point, request)) in requests.iter().enumerate() {
        if let Request::SharedWith(p, _) = request
            && let Some(&j) = index.get(p)
        {
            let (ri, rj) = (find(&mut parent, i), find(&mut parent, j));
            parent[ri] = rj;
        }
        if let QuantPoint::Edge { value, consumer } = *point {
            let mine = spec_of(i);
            let mut others: Vec<QuantPoint> = graph
                .consumers(value)
                .into_iter()
                .filter(|&c| c != consumer)
                .map(|c| QuantPoint::Edge { value, consumer: c })
                .collect();
            others.push(QuantPoint::Output(value));
            for other in others {
                if let Some(&j) = index.get(&other)
                    && spec_of(j).range == mine.range
                {
                    let (ri, rj) = (find(&mut parent, i), find(&mut parent, j));
                    parent[ri] = rj;
                }
            }
        }
    }
    let mut groups: Vec<QuantGroup> = Vec::new();
    let mut root_group: BTreeMap<usize, usize> = BTreeMap::new();
    let mut group_of = BTreeMap::new();
    for (i, (point, _)) in requests.iter().enumerate() {
        let r = find(&mut parent, i);
        let g = *root_group.entry(r).or_insert_with(|| {
            let spec = spec_of(i);
            groups.push(QuantGroup {
                points: Vec::new(),
                values: Vec::new(),
                spec,
            });
            groups.len() - 1
        });
        let group = &mut groups[g];
        if !group.points.contains(point) {
            group.points.push(*point);
        }
        if !group.values.contains(&point.value()) {
            group.values.push(point.value());
        }
        group_of.insert(*point, g);
    }
    (groups, group_of)
}
