//! Dynamically quantized linear layers in ONNX Runtime's form,
//! `DynamicQuantizeLinear(x) -> MatMulInteger(x_u8, W_s8, x_zp[, 0]) -> Cast(f32) ->
//! Mul(., Mul(x_scale, w_scale)) [-> Add(bias)]`, lowered onto the packed int8 GEMM as one
//! [`StepKind::DynamicLinear`] step reading the f32 `x`.
//!
//! The step quantizes `x` per call with the op's own helpers ([`crate::ops::dynamic_qparams`],
//! [`crate::ops::dynamic_quantize`]) and applies the nodes' f32 arithmetic to the exact i32
//! accumulators in their order — `(acc as f32) * (x_scale * w_scale[n]) [+ bias[n]]`, then a
//! decomposed exact GELU that follows (see [`super::gelu`]) — in the GEMM's fused f32
//! epilogue, which computes exactly that; so its bits are the fp32 executor's.

use q8_kernels::gemm::PackedWeights;

use super::Matcher;
use crate::error::Result;
use crate::ir::{DType, Dim, NodeId, Op, TensorData, ValueId};
use crate::lower::{Step, StepKind, kernel_error};
use crate::ops::{Cast, DynamicQuantizeLinear, MatMulInteger};

type Attempt = std::result::Result<(), String>;

/// The matched nodes and constants of one dynamic linear layer.
struct Found {
    nodes: Vec<NodeId>,
    dql: NodeId,
    x: ValueId,
    /// `[N, K]` s8 rows.
    weight: Vec<i8>,
    n: usize,
    k: usize,
    /// Per column (a per-tensor scale repeated).
    scales: Vec<f32>,
    bias: Option<Vec<f32>>,
    gelu: bool,
    output: ValueId,
}

impl Matcher<'_> {
    /// The single unclaimed reader of `v` when it is an `Op::Def` of type `T`.
    fn sole_def<T: crate::ops::OpDef + 'static>(&self, v: ValueId) -> Option<(NodeId, &T)> {
        let id = self.sole_consumer(v)?;
        match &self.node(id).op {
            Op::Def(d) => d.downcast::<T>().map(|t| (id, t)),
            _ => None,
        }
    }

    /// A constant f32 tensor's values and shape.
    fn f32_constant(&self, v: ValueId) -> Option<(&[f32], &[usize])> {
        let t = self.g.value(v).constant.as_ref()?;
        Some((t.as_f32()?, t.shape()))
    }

    /// `MatMulInteger` node `id` in the dynamic linear pattern (see the module doc).
    fn find_dynamic(&self, id: NodeId) -> std::result::Result<Found, String> {
        let node = self.node(id);
        let op = match &node.op {
            Op::Def(d) => d.downcast::<MatMulInteger>(),
            _ => None,
        };
        let Some(op) = op.filter(|o| o.a_zero_point) else {
            return Err("no activation zero point".into());
        };
        let (xq, wq, xz) = (node.inputs[0], node.inputs[1], node.inputs[2]);
        let dql = self.g.value(xq).producer.filter(|&p| {
            let n = self.node(p);
            matches!(&n.op, Op::Def(d) if d.downcast::<DynamicQuantizeLinear>().is_some())
                && n.outputs[0] == xq
                && n.outputs[2] == xz
        });
        let Some(dql) = dql else {
            return Err("input is not DynamicQuantizeLinear's (with its zero point)".into());
        };
        let (x, xs) = (self.node(dql).inputs[0], self.node(dql).outputs[1]);
        if self.g.value(x).constant.is_some() {
            return Err("the quantized input is a constant".into());
        }
        let Some(w) = self.g.value(wq).constant.as_ref() else {
            return Err("the weight is not a constant".into());
        };
        let (TensorData::I8(wd), &[k, n]) = (w.data(), w.shape()) else {
            return Err("the weight is not a 2-D s8 constant".into());
        };
        if op.b_zero_point {
            let zero = self.g.value(node.inputs[3]).constant.as_ref().is_some_and(
                |t| matches!(t.data(), TensorData::I8(v) if v.iter().all(|&z| z == 0)),
            );
            if !zero {
                return Err("the weight zero point is not a constant 0".into());
            }
        }
        let x_ty = &self.g.value(x).ty;
        if x_ty.shape.rank() < 2 || x_ty.shape.dims().last().and_then(Dim::known) != Some(k) {
            return Err(format!("the input {} is not [.., K = {k}]", x_ty.shape));
        }
        let Some((cast, c)) = self.sole_def::<Cast>(node.outputs[0]) else {
            return Err("the int32 product is not cast alone".into());
        };
        if c.to != DType::F32 {
            return Err("the int32 product is not cast to f32".into());
        }
        let cast_out = self.node(cast).outputs[0];
        let Some((mul, scale_mul, scales)) = self.output_scale(cast_out, xs, n) else {
            return Err("the product is not scaled by Mul(x_scale, w_scale) alone".into());
        };
        let mut nodes = vec![id, cast, scale_mul, mul];
        let mut output = self.node(mul).outputs[0];
        let mut bias = None;
        if let Some((add, b, out)) = self.bias_add(output, n) {
            nodes.push(add);
            bias = Some(b);
            output = out;
        }
        let gelu = self.decomposed_gelu(output);
        if let Some((act, out)) = &gelu {
            nodes.extend(act);
            output = *out;
        }
        let weight = crate::ir::transpose_2d(wd, k, n);
        Ok(Found {
            nodes,
            dql,
            x,
            weight,
            n,
            k,
            scales,
            bias,
            gelu: gelu.is_some(),
            output,
        })
    }

    /// `Mul(v, s)` (either order) read alone, with `s = Mul(xs, ws)` (either order) read
    /// only by it and `ws` a constant scalar or `[N]`: (mul, scale mul, N scales).
    fn output_scale(
        &self,
        v: ValueId,
        xs: ValueId,
        n: usize,
    ) -> Option<(NodeId, NodeId, Vec<f32>)> {
        let mul = self.sole_consumer(v)?;
        let node = self.node(mul);
        if !matches!(node.op, Op::Mul) {
            return None;
        }
        let s = super::other_input(node, v);
        let scale_mul = self.g.value(s).producer?;
        let sn = self.node(scale_mul);
        if !matches!(sn.op, Op::Mul)
            || self.sole_consumer(s) != Some(mul)
            || !sn.inputs.contains(&xs)
        {
            return None;
        }
        let (ws, shape) = self.f32_constant(super::other_input(sn, xs))?;
        let scales = match (ws, shape) {
            ([one], []) | ([one], [1]) => vec![*one; n],
            (all, [len]) if *len == n => all.to_vec(),
            _ => return None,
        };
        Some((mul, scale_mul, scales))
    }

    /// `DynamicQuantizeLinear -> MatMulInteger -> Cast -> Mul [-> Add]` anchored on the
    /// MatMulInteger `id`.
    pub(super) fn dynamic_linear(&mut self, id: NodeId) -> Result<Attempt> {
        let f = match self.find_dynamic(id) {
            Ok(f) => f,
            Err(why) => return Ok(Err(why)),
        };
        let name = self.node(id).name.clone();
        let dql_name = self.node(f.dql).name.clone();
        // Scales and bias packed too: the GEMM's f32 epilogue, `acc * (x_scale * s[n]) + b[n]`,
        // is the nodes' arithmetic in their order.
        let packed =
            PackedWeights::new(self.tier, f.n, f.k, &f.weight, &f.scales, f.bias.as_deref())
                .map_err(kernel_error("MatMulInteger", &name))?;
        let per_channel = f.scales.windows(2).any(|p| p[0] != p[1]);
        let detail = format!(
            "{}->{}: u8 per-call (dynamic) x s8 {}{}, f32 out",
            f.k,
            f.n,
            if per_channel {
                "per channel"
            } else {
                "per tensor"
            },
            if f.bias.is_some() { ", bias add" } else { "" },
        ) + if f.gelu { ", gelu (erf)" } else { "" };
        let step = Step {
            name,
            kind: StepKind::DynamicLinear {
                packed,
                quantizer: dql_name,
                scales: f.scales,
                bias: f.bias,
                gelu: f.gelu,
            },
            inputs: vec![f.x],
            output: f.output,
        };
        self.push(step, &f.nodes, detail);
        Ok(Ok(()))
    }

    /// Claims each `DynamicQuantizeLinear` whose every reader is in a lowered step (it is
    /// then computed inside those steps) for the first such step.
    pub(super) fn claim_dynamic_quantizers(&mut self, order: &[NodeId]) {
        for &id in order {
            let node = self.node(id);
            let is_dql =
                matches!(&node.op, Op::Def(d) if d.downcast::<DynamicQuantizeLinear>().is_some());
            if !is_dql || self.claimed.contains_key(&id) {
                continue;
            }
            let mut step = None;
            let covered = node.outputs.iter().all(|&o| {
                !self.g.is_output(o)
                    && self.users.get(&o).is_none_or(|us| {
                        us.iter().all(|u| match self.claimed.get(u) {
                            Some(&s) if !matches!(self.steps[s].kind, StepKind::Fallback(_)) => {
                                step.get_or_insert(s);
                                true
                            }
                            _ => false,
                        })
                    })
            });
            if let (true, Some(s)) = (covered, step) {
                self.claimed.insert(id, s);
            }
        }
    }
}
