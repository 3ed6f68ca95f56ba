//! The already-quantized ops other tools emit — QLinearConv, QLinearMatMul, ConvInteger —
//! imported by rewriting each node into the equivalent QDQ form of standard nodes
//! (`DequantizeLinear` of each operand -> `Conv` / `MatMul` -> `QuantizeLinear`, or `Cast`
//! to int32 for ConvInteger), which are then imported as usual. The lowering maps that form
//! onto the int8 kernels as it maps any QDQ model, and the fp32 executor runs it as dq ->
//! fp32 op -> q (integer products of int8 values are exact in f32 up to 2^24).
//!
//! The rewritten compute node keeps the original node's name, so reports and errors name
//! it; the helper nodes are named `<node>/dq_x` and so on, their values `<output>/x_f32`.

use std::sync::Arc;

use super::attrs::Attrs;
use super::proto::{AttributeProto, NodeProto};
use super::{Importer, input};
use crate::error::Result;
use crate::ir::{Op, Tensor, ValueId};
use crate::onnx::ImportCx;
use crate::ops::OpSpec;

/// Registry entries (the rewrite runs before the registry lookup, see
/// [`Importer::try_rewrite`]).
pub(crate) const SPECS: &[OpSpec] = &[
    OpSpec::new("QLinearConv", 10, rewritten),
    OpSpec::new("QLinearMatMul", 10, rewritten),
    OpSpec::new("ConvInteger", 10, rewritten),
];

fn rewritten(cx: &ImportCx<'_>) -> Result<(Op, Vec<ValueId>)> {
    Err(cx.err("is imported by its QDQ rewrite (an internal error if seen)"))
}

/// An `INT` attribute.
fn int_attr(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: 2,
        i,
        ..Default::default()
    }
}

/// A default-domain node.
fn proto(
    op: &str,
    name: String,
    inputs: &[&str],
    output: &str,
    attrs: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.to_string()],
        name,
        op_type: op.into(),
        domain: String::new(),
        attribute: attrs,
    }
}

/// The nodes and constants one rewritten node becomes.
struct Rewrite<'n> {
    node: &'n NodeProto,
    name: &'n str,
    out: &'n str,
    nodes: Vec<NodeProto>,
    constants: Vec<(String, Tensor)>,
}

impl<'n> Rewrite<'n> {
    /// Input `i` of the original node ("" when omitted).
    fn arg(&self, i: usize) -> &'n str {
        input(self.node, i).unwrap_or("")
    }

    /// Value name `<output>/<role>`.
    fn value(&self, role: &str) -> String {
        format!("{}/{role}", self.out)
    }

    /// `DequantizeLinear(x, scale, zp)` along `axis` into `<output>/<role>`; returns it.
    fn dequantize(&mut self, role: &str, x: &str, scale: &str, zp: &str, axis: i64) -> String {
        let y = self.value(role);
        let inputs: Vec<&str> = if zp.is_empty() {
            vec![x, scale]
        } else {
            vec![x, scale, zp]
        };
        let node = proto(
            "DequantizeLinear",
            format!("{}/dq_{role}", self.name),
            &inputs,
            &y,
            vec![int_attr("axis", axis)],
        );
        self.nodes.push(node);
        y
    }

    /// `QuantizeLinear(y, y_scale, y_zp)` (inputs 6 and 7) into the original node's output.
    fn quantize_output(&mut self, y: &str) {
        let node = proto(
            "QuantizeLinear",
            format!("{}/q_y", self.name),
            &[y, self.arg(6), self.arg(7)],
            self.out,
            vec![],
        );
        self.nodes.push(node);
    }

    /// A constant named `<output>/<role>`; returns its name.
    fn constant(&mut self, role: &str, t: Tensor) -> String {
        let name = self.value(role);
        self.constants.push((name.clone(), t));
        name
    }
}

impl Importer {
    /// Imports `n` through its QDQ rewrite when it is one of this module's ops; `Ok(false)`
    /// for any other op.
    ///
    /// # Errors
    /// [`crate::Error::Node`] naming the node when an operand the rewrite needs constant
    /// (the scales) is not, and any error of the rewritten nodes' import.
    pub(super) fn try_rewrite(&mut self, name: &str, n: &NodeProto, a: &Attrs) -> Result<bool> {
        let mut rw = Rewrite {
            node: n,
            name,
            out: n.output.first().map_or("", String::as_str),
            nodes: vec![],
            constants: vec![],
        };
        match n.op_type.as_str() {
            "QLinearConv" => self.qlinear_conv(&mut rw, a)?,
            "QLinearMatMul" => self.qlinear_matmul(&mut rw, a)?,
            "ConvInteger" => self.conv_integer(&mut rw, a)?,
            _ => return Ok(false),
        }
        for (c, t) in rw.constants {
            self.graph.add_constant(&c, t)?;
        }
        for (i, node) in rw.nodes.iter().enumerate() {
            self.node(i, node)?;
        }
        Ok(true)
    }

    /// The constant f32 scale at input `i`.
    fn scale(&self, rw: &Rewrite<'_>, a: &Attrs, i: usize) -> Result<Arc<Tensor>> {
        let s = rw.arg(i);
        self.constant(s)
            .filter(|t| t.as_f32().is_some() && t.shape().len() <= 1)
            .ok_or_else(|| {
                a.err(format!(
                    "scale '{s}' (input {i}) must be a constant f32 scalar or vector"
                ))
            })
    }

    /// `x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp[, bias]` -> dq(x), dq(w) per output
    /// channel, dq(bias) at scale `x_scale * w_scale`, Conv (same attributes), q(y).
    fn qlinear_conv(&self, rw: &mut Rewrite<'_>, a: &Attrs) -> Result<()> {
        let x_scale = self.scale(rw, a, 1)?;
        let w_scale = self.scale(rw, a, 4)?;
        let xs = x_scale.as_f32().unwrap_or(&[]);
        if xs.len() != 1 {
            return Err(a.err(format!(
                "x_scale has {} elements, must be a scalar",
                xs.len()
            )));
        }
        let x = rw.dequantize("x_f32", rw.arg(0), rw.arg(1), rw.arg(2), 1);
        let w = rw.dequantize("w_f32", rw.arg(3), rw.arg(4), rw.arg(5), 0);
        let mut conv_in = vec![x, w];
        if !rw.arg(8).is_empty() {
            let ws = w_scale.as_f32().unwrap_or(&[]);
            let scales: Vec<f32> = ws.iter().map(|&s| s * xs[0]).collect();
            let t = Tensor::from_f32(w_scale.shape().to_vec(), scales)?;
            let bias_scale = rw.constant("bias_scale", t);
            conv_in.push(rw.dequantize("bias_f32", rw.arg(8), &bias_scale, "", 0));
        }
        let y = rw.value("y_f32");
        let refs: Vec<&str> = conv_in.iter().map(String::as_str).collect();
        let conv = proto(
            "Conv",
            rw.name.to_string(),
            &refs,
            &y,
            rw.node.attribute.clone(),
        );
        rw.nodes.push(conv);
        rw.quantize_output(&y);
        Ok(())
    }

    /// `a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp` -> dq(a), dq(b) (per column when
    /// b's scale is a vector), MatMul, q(y).
    fn qlinear_matmul(&self, rw: &mut Rewrite<'_>, a: &Attrs) -> Result<()> {
        let rank = |name: &str| {
            self.graph
                .value_by_name(name)
                .map_or(2, |v| self.graph.value(v).ty.shape.rank() as i64)
        };
        let (ra, rb) = (rank(rw.arg(0)), rank(rw.arg(3)));
        self.scale(rw, a, 1)?;
        self.scale(rw, a, 4)?;
        let x = rw.dequantize("a_f32", rw.arg(0), rw.arg(1), rw.arg(2), ra - 2);
        let w = rw.dequantize("b_f32", rw.arg(3), rw.arg(4), rw.arg(5), rb - 1);
        let y = rw.value("y_f32");
        rw.nodes
            .push(proto("MatMul", rw.name.to_string(), &[&x, &w], &y, vec![]));
        rw.quantize_output(&y);
        Ok(())
    }

    /// `x, w[, x_zp[, w_zp]]` -> dq(x) and dq(w) at scale 1 (so each is `q - zp`, exact),
    /// Conv (same attributes), Cast to int32.
    fn conv_integer(&self, rw: &mut Rewrite<'_>, a: &Attrs) -> Result<()> {
        let ones = |zp: &str| -> Result<Tensor> {
            let shape = self.constant(zp).map_or(vec![], |t| t.shape().to_vec());
            let n = shape.iter().product();
            Tensor::from_f32(shape, vec![1.0; n])
        };
        for i in [2, 3] {
            let zp = rw.arg(i);
            if !zp.is_empty() && self.constant(zp).is_none() {
                return Err(a.err(format!("zero point '{zp}' (input {i}) must be a constant")));
            }
        }
        let x_one = rw.constant("x_scale", ones(rw.arg(2))?);
        let w_one = rw.constant("w_scale", ones(rw.arg(3))?);
        let x = rw.dequantize("x_f32", rw.arg(0), &x_one, rw.arg(2), 1);
        let w = rw.dequantize("w_f32", rw.arg(1), &w_one, rw.arg(3), 0);
        let y = rw.value("y_f32");
        let conv = proto(
            "Conv",
            rw.name.to_string(),
            &[&x, &w],
            &y,
            rw.node.attribute.clone(),
        );
        rw.nodes.push(conv);
        let cast = proto(
            "Cast",
            format!("{}/cast", rw.name),
            &[&y],
            rw.out,
            vec![int_attr("to", 6)],
        );
        rw.nodes.push(cast);
        Ok(())
    }
}
