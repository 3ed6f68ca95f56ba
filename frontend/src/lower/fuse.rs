//! Pattern matching: which nodes become which kernel step.

mod attention;
mod dynamic;
mod gelu;

use std::collections::{HashMap, HashSet};

use q8_kernels::conv::{ConvGeometry, ConvWeights, Nhwc, PackedConvWeights};
use q8_kernels::gemm::PackedWeights;
use q8_kernels::ops::{AddParams, Pool2d};
use q8_kernels::{Activation, QParams, Tier};

use super::report::{LoweringReport, NodeEntry, NodeLowering};
use super::weights::{bias_values, is_u8_per_tensor, quantized_weights};
use super::{FallbackNode, Step, StepKind, kernel_error, kernel_padding, same_qparams};
use crate::error::Result;
use crate::ir::{Dim, Graph, Node, NodeId, Op, Padding, Shape, ValueId, Window2d};
use crate::ops::{Unary, UnaryKind};

/// Outcome of trying one pattern: matched, or why not (the node then runs in f32).
type Attempt = std::result::Result<(), String>;

struct Matcher<'g> {
    g: &'g Graph,
    tier: Tier,
    threads: usize,
    batch_relaxed: bool,
    users: HashMap<ValueId, Vec<NodeId>>,
    /// Node -> index of the step covering it.
    claimed: HashMap<NodeId, usize>,
    steps: Vec<Step>,
    /// Why an anchor node was not lowered.
    notes: HashMap<NodeId, String>,
    details: HashMap<usize, String>,
    /// Nodes computed in f32 inside a fused fallback step (the attention chain).
    fused_f32: HashSet<NodeId>,
}

/// Runs pass 2 (packing) and 3 (fusion) over a rewritten graph; see [`super::lower`].
pub(super) fn fuse(
    g: &Graph,
    tier: Tier,
    threads: usize,
    batch_relaxed: bool,
) -> Result<(Vec<Step>, LoweringReport)> {
    let order = g.topo_order()?;
    let mut users: HashMap<ValueId, Vec<NodeId>> = HashMap::new();
    for (id, n) in g.nodes() {
        for &v in &n.inputs {
            let list = users.entry(v).or_default();
            if !list.contains(&id) {
                list.push(id);
            }
        }
    }
    let mut m = Matcher {
        g,
        tier,
        threads,
        batch_relaxed,
        users,
        claimed: HashMap::new(),
        steps: Vec::new(),
        notes: HashMap::new(),
        details: HashMap::new(),
        fused_f32: HashSet::new(),
    };
    for &id in &order {
        if m.claimed.contains_key(&id) {
            continue;
        }
        let node = g.node(id).expect("live node");
        let attempt = match &node.op {
            Op::Conv(_) => m.conv(id)?,
            Op::Gemm(_) | Op::MatMul => m.linear(id)?,
            Op::Def(d) if d.downcast::<crate::ops::BatchMatMul>().is_some() => m.attention(id)?,
            Op::Def(d) if d.downcast::<crate::ops::MatMulInteger>().is_some() => {
                m.dynamic_linear(id)?
            }
            Op::MaxPool(_)
            | Op::AveragePool { .. }
            | Op::GlobalAveragePool
            | Op::ReduceMean { .. }
            | Op::Flatten { .. }
            | Op::Reshape { .. }
            | Op::Concat { .. }
            | Op::Add => m.u8_op(id)?,
            _ => Ok(()),
        };
        if let Err(why) = attempt {
            m.notes.insert(id, why);
        }
    }
    m.claim_dynamic_quantizers(&order);
    let constant = m.constant_derived(&order);
    for &id in &order {
        if m.claimed.contains_key(&id) || constant.contains(&id) {
            continue;
        }
        m.standalone(id)?;
    }
    m.fold_missing_constants(&order, &constant)?;
    let position: HashMap<NodeId, usize> = order.iter().enumerate().map(|(i, &n)| (n, i)).collect();
    let mut keyed: Vec<(usize, usize)> = m
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let p = g.value(s.output).producer.map_or(0, |n| position[&n]);
            (p, i)
        })
        .collect();
    keyed.sort_unstable();
    let report = m.report(&order, &constant);
    let mut slots: Vec<Option<Step>> = m.steps.into_iter().map(Some).collect();
    let steps = keyed
        .into_iter()
        .map(|(_, i)| slots[i].take().expect("each step once"))
        .collect();
    Ok((steps, report))
}

impl Matcher<'_> {
    fn node(&self, id: NodeId) -> &Node {
        self.g.node(id).expect("live node")
    }

    /// The only node reading `v` (and `v` is not a graph output).
    fn sole_consumer(&self, v: ValueId) -> Option<NodeId> {
        match self.users.get(&v).map(Vec::as_slice) {
            Some([one]) if !self.g.is_output(v) && !self.claimed.contains_key(one) => {
                let n = self.node(*one);
                (n.inputs.iter().filter(|&&i| i == v).count() == 1).then_some(*one)
            }
            _ => None,
        }
    }

    /// `v = DequantizeLinear(u8 per-tensor)(src)` with `src` computed at run time and `v`
    /// read by one node: returns (dq node, src, qparams).
    fn dq_input(&self, v: ValueId) -> std::result::Result<(NodeId, ValueId, QParams), String> {
        let name = &self.g.value(v).name;
        let Some(dq) = self.g.value(v).producer else {
            return Err(format!("input '{name}' is not dequantized from u8"));
        };
        let node = self.node(dq);
        let Op::DequantizeLinear(spec) = &node.op else {
            return Err(format!(
                "input '{name}' is not dequantized from u8 (it comes from {})",
                node.op.name()
            ));
        };
        if !is_u8_per_tensor(spec) {
            return Err(format!(
                "input '{name}' is not a u8 per-tensor quantized tensor"
            ));
        }
        let src = node.inputs[0];
        if self.g.value(src).constant.is_some() {
            return Err(format!("input '{name}' is a constant"));
        }
        if self.users.get(&v).map_or(0, Vec::len) != 1 || self.g.is_output(v) {
            return Err(format!("dequantized input '{name}' has several readers"));
        }
        let qp = QParams::new(spec.scales[0], spec.zero_points[0]).map_err(|e| e.to_string())?;
        Ok((dq, src, qp))
    }

    /// The `QuantizeLinear` (u8 per-tensor) that alone reads `v`, if any.
    fn q_output(&self, v: ValueId) -> Option<(NodeId, ValueId, QParams)> {
        let q = self.sole_consumer(v)?;
        let node = self.node(q);
        match &node.op {
            Op::QuantizeLinear(spec) if is_u8_per_tensor(spec) => {
                let qp = QParams::new(spec.scales[0], spec.zero_points[0]).ok()?;
                Some((q, node.outputs[0], qp))
            }
            _ => None,
        }
    }

    /// Known `[C, H, W]` of a rank-4 value.
    fn chw(&self, v: ValueId) -> std::result::Result<[usize; 3], String> {
        let dims = self.g.value(v).ty.shape.dims();
        let known: Option<Vec<usize>> = dims.iter().skip(1).map(Dim::known).collect();
        match known.as_deref() {
            Some(&[c, h, w]) if dims.len() == 4 => Ok([c, h, w]),
            _ => Err(format!(
                "'{}' is not an NCHW tensor with known C, H, W ({})",
                self.g.value(v).name,
                self.g.value(v).ty.shape
            )),
        }
    }

    /// `[C, H, W]` of a conv input: a rank-4 value with known C, H, W, or a rank-3
    /// `[N, C, L]` (a 1-D conv) as `[C, 1, L]`. A 1-D conv with explicit pads may have a
    /// run-time `L`: the weights are packed for the shortest input the window fits (the
    /// plans do not depend on the spatial size) and retargeted to each run's shape.
    fn conv_chw(&self, v: ValueId, window: &Window2d) -> std::result::Result<[usize; 3], String> {
        let dims = self.g.value(v).ty.shape.dims();
        let fixed_pads = !matches!(window.padding, Padding::SameUpper | Padding::SameLower);
        match dims {
            [_, Dim::Known(c), Dim::Known(l)] => Ok([*c, 1, *l]),
            [_, Dim::Known(c), Dim::Sym(_)] if fixed_pads => Ok([*c, 1, window.span(1)]),
            [_, _, _] => Err(format!(
                "'{}' {} is not [N, C, L] with a known C (and a known L for auto_pad SAME)",
                self.g.value(v).name,
                self.g.value(v).ty.shape
            )),
            _ => self.chw(v),
        }
    }

    fn push(&mut self, step: Step, nodes: &[NodeId], detail: String) -> usize {
        let index = self.steps.len();
        self.steps.push(step);
        for &n in nodes {
            self.claimed.insert(n, index);
        }
        self.details.insert(index, detail);
        index
    }

    /// `dq -> conv -> [relu | clip | add(dq(r)) [-> relu]] -> [q]`.
    fn conv(&mut self, id: NodeId) -> Result<Attempt> {
        let node = self.node(id).clone();
        let Op::Conv(conv) = &node.op else {
            unreachable!("called on convs")
        };
        let (dq, x, in_qp) = match self.dq_input(node.inputs[0]) {
            Ok(found) => found,
            Err(why) => return Ok(Err(why)),
        };
        let Some(w) = quantized_weights(self.g, &node, node.inputs[1])? else {
            return Ok(Err("the weight is not a dequantized s8 constant".into()));
        };
        let rank = self.g.value(node.inputs[0]).ty.shape.rank();
        if w.shape.len() != rank || w.axis != 0 {
            return Ok(Err(
                "the weight is not quantized per output channel (axis 0)".into(),
            ));
        }
        // A 1-D conv's weight [OC, C/g, k] is [OC, C/g, 1, k].
        let w_shape = match w.shape[..] {
            [oc, ic, k] => [oc, ic, 1, k],
            [oc, ic, kh, kw] => [oc, ic, kh, kw],
            _ => {
                return Ok(Err(format!(
                    "the weight shape {:?} is not 3-D or 4-D",
                    w.shape
                )));
            }
        };
        let oc = w.shape[0];
        let bias = match node.inputs.get(2) {
            None => None,
            Some(&b) => match bias_values(self.g, b, oc) {
                Ok(v) => Some(v),
                Err(why) => return Ok(Err(why)),
            },
        };
        let [c, h, wd] = match self.conv_chw(node.inputs[0], &conv.window) {
            Ok(d) => d,
            Err(why) => return Ok(Err(why)),
        };
        let resolved = match conv.window.resolve([h, wd], false) {
            Ok(r) => r,
            Err(why) => return Ok(Err(why)),
        };
        let geom = ConvGeometry::new(Nhwc::new(1, h, wd, c), oc, conv.window.kernel)
            .with_stride(conv.window.strides)
            .with_dilation(conv.window.dilations)
            .with_padding(kernel_padding(resolved.pad_begin, resolved.pad_end))
            .with_groups(conv.groups);
        let data = ohwi(&w.data, w_shape);
        let weights = ConvWeights {
            data: &data,
            scales: &w.scales,
            bias: bias.as_deref(),
        };
        let packed = PackedConvWeights::new(self.tier, &geom, &weights)
            .map_err(kernel_error("Conv", &node.name))?;
        let mut nodes = vec![dq, id];
        nodes.extend(self.g.value(node.inputs[1]).producer);
        if let Some(&b) = node.inputs.get(2) {
            nodes.extend(self.g.value(b).producer);
        }
        let (mut cur, mut activation, mut residual) = (node.outputs[0], Activation::None, None);
        let mut parts = Vec::new();
        while let Some(next) = self.sole_consumer(cur) {
            let n = self.node(next).clone();
            match (&n.op, activation) {
                (Op::Relu, Activation::None) => {
                    activation = Activation::Relu;
                    parts.push("relu".to_string());
                }
                (Op::Clip { min, max }, Activation::None) => {
                    activation = Activation::Clamp {
                        min: *min,
                        max: *max,
                    };
                    parts.push(format!("clamp [{min}, {max}]"));
                }
                (Op::Add, Activation::None) if residual.is_none() => {
                    let other = if n.inputs[0] == cur {
                        n.inputs[1]
                    } else {
                        n.inputs[0]
                    };
                    if self.g.value(other).ty.shape != self.g.value(cur).ty.shape {
                        break;
                    }
                    let Ok((rdq, r, rqp)) = self.dq_input(other) else {
                        break;
                    };
                    nodes.push(rdq);
                    residual = Some((r, rqp));
                    parts.push("residual sum".to_string());
                }
                _ => break,
            }
            nodes.push(next);
            cur = n.outputs[0];
        }
        let (output, out_qp) = match self.q_output(cur) {
            Some((q, y, qp)) => {
                nodes.push(q);
                parts.push("u8 out".to_string());
                (y, Some(qp))
            }
            None => {
                parts.push("f32 out".to_string());
                (cur, None)
            }
        };
        let mut inputs = vec![x];
        inputs.extend(residual.map(|(r, _)| r));
        let (k, st) = (conv.window.kernel, conv.window.strides);
        let window = if rank == 3 {
            format!("1-D k{} s{}", k[1], st[1])
        } else {
            format!("{}x{} s{}", k[0], k[1], st[0])
        };
        let detail = format!(
            "{window} g{} {}->{}: {}",
            conv.groups,
            c,
            oc,
            parts.join(", ")
        );
        let step = Step {
            name: node.name.clone(),
            kind: StepKind::Conv {
                packed,
                input: in_qp,
                residual: residual.map(|(_, q)| q),
                activation,
                output: out_qp,
            },
            inputs,
            output,
        };
        self.push(step, &nodes, detail);
        Ok(Ok(()))
    }

    /// `dq -> gemm/matmul -> [add(bias)] -> [act | add(dq(r)) [-> relu]] -> [q]` on an input
    /// of any rank `[.., K]` (rows = product of the leading dims).
    fn linear(&mut self, id: NodeId) -> Result<Attempt> {
        let node = self.node(id).clone();
        let trans_b = match &node.op {
            Op::Gemm(gm) => {
                if gm.alpha != 1.0 || gm.beta != 1.0 || gm.trans_a {
                    return Ok(Err("Gemm with alpha/beta != 1 or transposed A".into()));
                }
                gm.trans_b
            }
            _ => false,
        };
        let (dq, x, in_qp) = match self.dq_input(node.inputs[0]) {
            Ok(found) => found,
            Err(why) => return Ok(Err(why)),
        };
        let in_shape = &self.g.value(node.inputs[0]).ty.shape;
        let rank_ok = match &node.op {
            Op::Gemm(_) => in_shape.rank() == 2,
            _ => in_shape.rank() >= 2,
        };
        if !rank_ok {
            return Ok(Err(format!("the input {in_shape} is not [.., K]")));
        }
        let Some(w) = quantized_weights(self.g, &node, node.inputs[1])? else {
            return Ok(Err("the weight is not a dequantized s8 constant".into()));
        };
        let Some((data, scales, n, k)) = linear_weight(&w, trans_b) else {
            return Ok(Err(
                "the weight is not a matrix quantized per output channel".into(),
            ));
        };
        if in_shape.dims().last().and_then(Dim::known) != Some(k) {
            return Ok(Err(format!("the input {in_shape} does not end in K = {k}")));
        }
        let mut nodes = vec![dq, id];
        nodes.extend(self.g.value(node.inputs[1]).producer);
        let mut bias = None;
        if let Some(&b) = node.inputs.get(2) {
            nodes.extend(self.g.value(b).producer);
            match bias_values(self.g, b, n) {
                Ok(v) => bias = Some(v),
                Err(why) => return Ok(Err(why)),
            }
        }
        let mut cur = node.outputs[0];
        let mut parts = Vec::new();
        if bias.is_none()
            && let Some((add, b, out)) = self.bias_add(cur, n)
        {
            bias = Some(b);
            nodes.push(add);
            parts.push("bias add".to_string());
            cur = out;
        }
        let post = self.linear_post_ops(cur, &mut nodes, &mut parts);
        let packed = PackedWeights::new(self.tier, n, k, &data, &scales, bias.as_deref())
            .map_err(kernel_error(node.op.name(), &node.name))?;
        let (output, out_qp) = match self.q_output(post.output) {
            Some((q, y, qp)) => {
                nodes.push(q);
                parts.push("u8 out".to_string());
                (y, Some(qp))
            }
            None => {
                parts.push("f32 out".to_string());
                (post.output, None)
            }
        };
        let mut inputs = vec![x];
        inputs.extend(post.residual.map(|(r, _)| r));
        let step = Step {
            name: node.name.clone(),
            kind: StepKind::Linear {
                packed,
                input: in_qp,
                residual: post.residual.map(|(_, q)| q),
                activation: post.activation,
                output: out_qp,
            },
            inputs,
            output,
        };
        self.push(step, &nodes, format!("{k}->{n}: {}", parts.join(", ")));
        Ok(Ok(()))
    }

    /// `Add(v, b)` (either order) with a constant `b` of `n` values along the last axis only
    /// and an output shaped like `v`: returns (add node, bias, add output).
    fn bias_add(&self, v: ValueId, n: usize) -> Option<(NodeId, Vec<f32>, ValueId)> {
        let add = self.sole_consumer(v)?;
        let node = self.node(add);
        if !matches!(node.op, Op::Add) {
            return None;
        }
        let b = other_input(node, v);
        let t = self.g.value(b).constant.as_ref()?;
        let along_last =
            t.shape().last() == Some(&n) && t.shape().iter().rev().skip(1).all(|&d| d == 1);
        let same_shape = self.g.value(node.outputs[0]).ty.shape == self.g.value(v).ty.shape;
        if !along_last || !same_shape {
            return None;
        }
        let values = bias_values(self.g, b, n).ok()?;
        Some((add, values, node.outputs[0]))
    }

    /// The activation, or the residual sum (+ relu), after a linear's (biased) output `v`.
    fn linear_post_ops(
        &self,
        v: ValueId,
        nodes: &mut Vec<NodeId>,
        parts: &mut Vec<String>,
    ) -> PostOps {
        let mut post = PostOps {
            activation: Activation::None,
            residual: None,
            output: v,
        };
        if let Some((gelu, out)) = self.decomposed_gelu(v) {
            parts.push("gelu (erf, decomposed)".to_string());
            nodes.extend(gelu);
            post.activation = Activation::Gelu { tanh: false };
            post.output = out;
            return post;
        }
        let Some(next) = self.sole_consumer(v) else {
            return post;
        };
        let n = self.node(next);
        if let Some(a) = fused_activation(&n.op) {
            parts.push(activation_label(a));
            nodes.push(next);
            post.activation = a;
            post.output = n.outputs[0];
            return post;
        }
        if !matches!(n.op, Op::Add) {
            return post;
        }
        let other = other_input(n, v);
        if self.g.value(other).ty.shape != self.g.value(v).ty.shape {
            return post;
        }
        let Ok((rdq, r, rqp)) = self.dq_input(other) else {
            return post;
        };
        nodes.extend([rdq, next]);
        parts.push("residual sum".to_string());
        post.residual = Some((r, rqp));
        post.output = n.outputs[0];
        if let Some(relu) = self
            .sole_consumer(post.output)
            .filter(|&r| matches!(self.node(r).op, Op::Relu))
        {
            parts.push("relu".to_string());
            nodes.push(relu);
            post.activation = Activation::Relu;
            post.output = self.node(relu).outputs[0];
        }
        post
    }

    /// `q(op(dq(x)...))` for pools, reshape, concat and add.
    fn u8_op(&mut self, id: NodeId) -> Result<Attempt> {
        let node = self.node(id).clone();
        let mut dqs = Vec::new();
        for &v in &node.inputs {
            if self.g.value(v).constant.is_some() && !matches!(node.op, Op::Add | Op::Concat { .. })
            {
                continue; // shape operands folded at import
            }
            match self.dq_input(v) {
                Ok(found) => dqs.push(found),
                Err(why) => return Ok(Err(why)),
            }
        }
        let mut nodes: Vec<NodeId> = dqs.iter().map(|d| d.0).collect();
        nodes.push(id);
        let mut cur = node.outputs[0];
        let mut relu = false;
        if matches!(node.op, Op::Add)
            && let Some(r) = self
                .sole_consumer(cur)
                .filter(|&r| matches!(self.node(r).op, Op::Relu))
        {
            relu = true;
            nodes.push(r);
            cur = self.node(r).outputs[0];
        }
        let Some((q, output, out_qp)) = self.q_output(cur) else {
            return Ok(Err("the result is not quantized to u8".into()));
        };
        nodes.push(q);
        let in_qp = dqs[0].2;
        let same = same_qparams(in_qp, out_qp);
        let shape_of = |v: ValueId| self.chw(v);
        let (kind, detail) = match &node.op {
            Op::MaxPool(p) | Op::AveragePool { pool: p, .. } => {
                if !same {
                    return Ok(Err("pool input and output qparams differ".into()));
                }
                let [_, h, w] = match shape_of(node.inputs[0]) {
                    Ok(d) => d,
                    Err(why) => return Ok(Err(why)),
                };
                let r = match p.window.resolve([h, w], p.ceil_mode) {
                    Ok(r) => r,
                    Err(why) => return Ok(Err(why)),
                };
                let pool = Pool2d::new(p.window.kernel, p.window.strides)
                    .with_dilation(p.window.dilations)
                    .with_padding(kernel_padding(r.pad_begin, r.pad_end))
                    .with_ceil_mode(p.ceil_mode);
                let detail = format!(
                    "{}x{} s{}",
                    p.window.kernel[0], p.window.kernel[1], p.window.strides[0]
                );
                match &node.op {
                    Op::AveragePool {
                        count_include_pad, ..
                    } => (
                        StepKind::AvgPool {
                            pool,
                            count_include_pad: *count_include_pad,
                            qparams: in_qp,
                        },
                        detail,
                    ),
                    _ => (StepKind::MaxPool(pool), detail),
                }
            }
            Op::GlobalAveragePool | Op::ReduceMean { .. } => {
                let spatial = match &node.op {
                    Op::ReduceMean { axes, .. } => axes == &[2, 3],
                    _ => true,
                };
                if !same || !spatial || self.g.value(node.inputs[0]).ty.shape.rank() != 4 {
                    return Ok(Err("not a mean over H, W with shared qparams".into()));
                }
                (StepKind::GlobalAvgPool(in_qp), "over H, W".to_string())
            }
            Op::Flatten { .. } | Op::Reshape { .. } => {
                if !same {
                    return Ok(Err("reshape input and output qparams differ".into()));
                }
                (StepKind::Reshape, "u8 bytes in logical order".to_string())
            }
            Op::Concat { axis } => {
                if *axis != 1 || self.g.value(output).ty.shape.rank() != 4 {
                    return Ok(Err(
                        "concat is not along the channels of NCHW tensors".into()
                    ));
                }
                let inputs = dqs
                    .iter()
                    .map(|d| {
                        if same_qparams(d.2, out_qp) {
                            out_qp
                        } else {
                            d.2
                        }
                    })
                    .collect();
                (
                    StepKind::Concat {
                        inputs,
                        output: out_qp,
                    },
                    format!("{} inputs", dqs.len()),
                )
            }
            Op::Add => {
                let (a, b) = (node.inputs[0], node.inputs[1]);
                if self.g.value(a).ty.shape != self.g.value(b).ty.shape {
                    return Ok(Err("broadcasting add".into()));
                }
                let params = AddParams {
                    a: dqs[0].2,
                    b: dqs[1].2,
                    out: out_qp,
                    relu,
                };
                (
                    StepKind::Add(params),
                    if relu { "relu" } else { "plain" }.to_string(),
                )
            }
            _ => unreachable!("called on u8-op anchors"),
        };
        let step = Step {
            name: node.name.clone(),
            kind,
            inputs: dqs.iter().map(|d| d.1).collect(),
            output,
        };
        self.push(step, &nodes, detail);
        Ok(Ok(()))
    }

    /// Nodes whose value is fixed at load time (all inputs constant or constant-derived).
    fn constant_derived(&self, order: &[NodeId]) -> HashSet<NodeId> {
        let mut set = HashSet::new();
        for &id in order {
            let n = self.node(id);
            let fixed = n.inputs.iter().all(|&v| {
                self.g.value(v).constant.is_some()
                    || self.g.value(v).producer.is_some_and(|p| set.contains(&p))
            });
            if fixed {
                set.insert(id);
            }
        }
        set
    }

    /// A node no pattern claimed: a quantize / dequantize boundary, an f32 step, or the
    /// fp32 executor.
    fn standalone(&mut self, id: NodeId) -> Result<()> {
        let node = self.node(id).clone();
        let input = node.inputs[0];
        let (kind, detail) = match &node.op {
            Op::QuantizeLinear(spec) if is_u8_per_tensor(spec) => (
                StepKind::Quantize(
                    QParams::new(spec.scales[0], spec.zero_points[0])
                        .map_err(kernel_error("QuantizeLinear", &node.name))?,
                ),
                "f32 -> u8".to_string(),
            ),
            Op::DequantizeLinear(spec) if is_u8_per_tensor(spec) => (
                StepKind::Dequantize(
                    QParams::new(spec.scales[0], spec.zero_points[0])
                        .map_err(kernel_error("DequantizeLinear", &node.name))?,
                ),
                "u8 -> f32".to_string(),
            ),
            Op::Flatten { .. } | Op::Reshape { .. } | Op::Identity => {
                (StepKind::Reshape, "no arithmetic".to_string())
            }
            Op::GlobalAveragePool | Op::ReduceMean { .. } if self.is_f32_spatial_mean(&node) => {
                (StepKind::MeanF32, "f32 mean over H, W".to_string())
            }
            _ => return self.fallback(id),
        };
        let step = Step {
            name: node.name.clone(),
            kind,
            inputs: vec![input],
            output: node.outputs[0],
        };
        self.push(step, &[id], detail);
        Ok(())
    }

    /// `GlobalAveragePool` or `ReduceMean` over axes {2, 3} of a rank-4 f32 value.
    fn is_f32_spatial_mean(&self, node: &Node) -> bool {
        let ty = &self.g.value(node.inputs[0]).ty;
        let spatial = match &node.op {
            Op::ReduceMean { axes, .. } => axes == &[2, 3],
            _ => true,
        };
        spatial && ty.shape.rank() == 4 && ty.dtype == crate::ir::DType::F32
    }

    /// A one-node graph (plus the constant-derived nodes it reads) for the fp32 executor:
    /// one step per output that is read (or a graph output), the first output always.
    fn fallback(&mut self, id: NodeId) -> Result<()> {
        let node = self.node(id).clone();
        let why = self
            .notes
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("no int8 kernel for {}", node.op.name()));
        for (i, &out) in node.outputs.iter().enumerate() {
            let read = self.users.get(&out).is_some_and(|u| !u.is_empty()) || self.g.is_output(out);
            if i > 0 && !read {
                continue;
            }
            let mut sub = Graph::new(&node.name);
            let mut map: HashMap<ValueId, ValueId> = HashMap::new();
            let mut inputs = Vec::new();
            let mut included = Vec::new();
            self.import_into(&mut sub, &mut map, &mut inputs, &mut included, id)?;
            sub.set_outputs(&[map[&out]]);
            let body = FallbackNode::new(sub, self.threads)?;
            let step = Step {
                name: node.name.clone(),
                kind: StepKind::Fallback(Box::new(body)),
                inputs,
                output: out,
            };
            included.push(id);
            self.push(step, &included, why.clone());
        }
        Ok(())
    }

    /// Copies node `id` into `sub`, its constant-derived producers first; run-time values
    /// it reads become inputs of `sub` (a batch fixed at 1 becomes symbolic).
    fn import_into(
        &self,
        sub: &mut Graph,
        map: &mut HashMap<ValueId, ValueId>,
        inputs: &mut Vec<ValueId>,
        included: &mut Vec<NodeId>,
        id: NodeId,
    ) -> Result<()> {
        let node = self.node(id).clone();
        for &v in &node.inputs {
            if map.contains_key(&v) {
                continue;
            }
            let val = self.g.value(v);
            if let Some(c) = &val.constant {
                let nv = sub.add_shared_constant(&val.name, c.clone())?;
                map.insert(v, nv);
                continue;
            }
            let producer = val.producer.filter(|p| !self.claimed.contains_key(p));
            let fixed = producer.is_some_and(|p| {
                self.node(p)
                    .inputs
                    .iter()
                    .all(|&i| self.g.value(i).constant.is_some())
                    || self.is_constant_chain(p)
            });
            if let (Some(p), true) = (producer, fixed) {
                self.import_into(sub, map, inputs, included, p)?;
                included.push(p);
                continue;
            }
            let mut dims = val.ty.shape.dims().to_vec();
            if let Some(d0) = dims.first_mut()
                && (matches!(d0, Dim::Sym(_)) || (self.batch_relaxed && *d0 == Dim::Known(1)))
            {
                *d0 = Dim::sym("batch");
            }
            let nv = sub.add_input(&val.name, val.ty.dtype, Shape(dims))?;
            map.insert(v, nv);
            inputs.push(v);
        }
        let ins: Vec<ValueId> = node.inputs.iter().map(|v| map[v]).collect();
        let names: Vec<String> = node
            .outputs
            .iter()
            .map(|&o| self.g.value(o).name.clone())
            .collect();
        let outs = sub.add_node_with_outputs(&node.name, node.op.clone(), &ins, &names)?;
        for (o, n) in node.outputs.iter().zip(outs) {
            map.insert(*o, n);
        }
        Ok(())
    }

    fn is_constant_chain(&self, id: NodeId) -> bool {
        self.node(id).inputs.iter().all(|&v| {
            self.g.value(v).constant.is_some()
                || self
                    .g
                    .value(v)
                    .producer
                    .is_some_and(|p| self.is_constant_chain(p))
        })
    }

    /// Any value a step reads that no step computes and that is not a graph input or
    /// constant is constant-derived: evaluate it once through the executor.
    fn fold_missing_constants(
        &mut self,
        order: &[NodeId],
        constant: &HashSet<NodeId>,
    ) -> Result<()> {
        let produced: HashSet<ValueId> = self.steps.iter().map(|s| s.output).collect();
        let mut needed: Vec<ValueId> = Vec::new();
        for s in &self.steps {
            for &v in &s.inputs {
                let val = self.g.value(v);
                if !produced.contains(&v) && val.constant.is_none() && !self.g.inputs().contains(&v)
                {
                    needed.push(v);
                }
            }
        }
        for &o in self.g.outputs() {
            if !produced.contains(&o) && self.g.value(o).producer.is_some() {
                needed.push(o);
            }
        }
        for id in order.iter().copied().filter(|id| constant.contains(id)) {
            let out = self.node(id).outputs[0];
            if needed.contains(&out) && !self.claimed.contains_key(&id) {
                self.fallback(id)?;
            }
        }
        Ok(())
    }

    fn report(&self, order: &[NodeId], constant: &HashSet<NodeId>) -> LoweringReport {
        let mut report = LoweringReport::default();
        for &id in order {
            let n = self.node(id);
            let lowering = match self.claimed.get(&id) {
                Some(&i) => {
                    let s = &self.steps[i];
                    let detail = self.details.get(&i).cloned().unwrap_or_default();
                    match &s.kind {
                        StepKind::Fallback(_)
                            if s.name == n.name || self.fused_f32.contains(&id) =>
                        {
                            NodeLowering::Fallback { reason: detail }
                        }
                        StepKind::Fallback(_) => NodeLowering::Constant,
                        kind => NodeLowering::Lowered {
                            step: s.name.clone(),
                            kernel: kind.label().to_string(),
                            detail,
                        },
                    }
                }
                None if constant.contains(&id) => NodeLowering::Constant,
                None => NodeLowering::Fallback {
                    reason: "not reached".into(),
                },
            };
            report.nodes.push(NodeEntry {
                node: n.name.clone(),
                op: n.op.name().to_string(),
                lowering,
            });
        }
        report
    }
}

/// ONNX conv weights `[OC][C/g][KH][KW]` to the kernels' `[OC][KH][KW][C/g]`.
fn ohwi(w: &[i8], [oc, ic, kh, kw]: [usize; 4]) -> Vec<i8> {
    let mut out = vec![0i8; w.len()];
    for o in 0..oc {
        for i in 0..ic {
            for y in 0..kh {
                for x in 0..kw {
                    out[((o * kh + y) * kw + x) * ic + i] = w[((o * ic + i) * kh + y) * kw + x];
                }
            }
        }
    }
    out
}

/// The input of a two-input node that is not `v`.
fn other_input(node: &Node, v: ValueId) -> ValueId {
    if node.inputs[0] == v {
        node.inputs[1]
    } else {
        node.inputs[0]
    }
}

/// What follows a fused linear: activation, residual (value, qparams) and the last value.
struct PostOps {
    activation: Activation,
    residual: Option<(ValueId, QParams)>,
    output: ValueId,
}

/// The kernel activation an fp32 post-op node computes, if the linear epilogue has it.
fn fused_activation(op: &Op) -> Option<Activation> {
    match op {
        Op::Relu => Some(Activation::Relu),
        Op::Clip { min, max } if min <= max => Some(Activation::Clamp {
            min: *min,
            max: *max,
        }),
        Op::Def(d) => match d.downcast::<Unary>()?.0 {
            UnaryKind::LeakyRelu { alpha } if alpha.is_finite() => {
                Some(Activation::LeakyRelu { alpha })
            }
            UnaryKind::Tanh => Some(Activation::Tanh),
            UnaryKind::Gelu { tanh } => Some(Activation::Gelu { tanh }),
            _ => None,
        },
        _ => None,
    }
}

/// A short report name of a fused activation ("relu", "gelu (erf)", ...).
fn activation_label(a: Activation) -> String {
    match a {
        Activation::None => "none".into(),
        Activation::Relu => "relu".into(),
        Activation::Clamp { min, max } => format!("clamp [{min}, {max}]"),
        Activation::LeakyRelu { alpha } => format!("leaky relu {alpha}"),
        Activation::Tanh => "tanh".into(),
        Activation::Gelu { tanh: false } => "gelu (erf)".into(),
        Activation::Gelu { tanh: true } => "gelu (tanh)".into(),
    }
}

/// A linear weight as packed `[N, K]` s8 rows with N scales: `(data, scales, n, k)`, or
/// `None` when it is not a matrix quantized per output channel (or per tensor).
#[allow(clippy::type_complexity)]
fn linear_weight(
    w: &super::weights::QuantWeights,
    trans_b: bool,
) -> Option<(Vec<i8>, Vec<f32>, usize, usize)> {
    if w.shape.len() != 2 {
        return None;
    }
    let (n_axis, n, k) = if trans_b {
        (0, w.shape[0], w.shape[1])
    } else {
        (1, w.shape[1], w.shape[0])
    };
    let scales = if w.axis == n_axis && w.scales.len() == n {
        w.scales.clone()
    } else if w.scales.windows(2).all(|p| p[0] == p[1]) {
        vec![w.scales[0]; n]
    } else {
        return None;
    };
    let data: Vec<i8> = if trans_b {
        w.data.clone()
    } else {
        crate::ir::transpose_2d(&w.data, k, n)
    };
    Some((data, scales, n, k))
}
