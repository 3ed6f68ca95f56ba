//! `convert`: the calibrated model as a QDQ graph, the form PyTorch's `convert_pt2e` and ONNX
//! Runtime's QDQ models have. Each observed activation tensor gets `QuantizeLinear ->
//! DequantizeLinear` (u8, per tensor) read by the annotated consumers; each conv / linear
//! weight becomes an s8 constant with a per-channel `DequantizeLinear` (axis 0); biases stay
//! f32. Executed by [`crate::exec::Executor`], the graph runs in reference mode: dq -> fp32 op
//! -> q with `int8-math.md`'s quantize (multiply by the f32 inverse scale, round half to even).
//! With `reduce_range` the qparams cover [0, 127], but an ONNX u8 `QuantizeLinear` clamps at
//! 255, so values beyond the calibrated range may use codes above 127 (PyTorch clamps at 127).

use std::collections::BTreeMap;
use std::path::Path;

use super::annotate::{Annotation, QuantPoint};
use super::config::{WeightGranularity, WeightSpec};
use super::error::{QuantError, Result};
use super::prepare::Prepared;
use super::qparams::ChannelQParams;
use super::report::CoverageReport;
use crate::ir::{DType, Graph, NodeId, Op, QuantSpec, Tensor, TensorData, ValueId};

/// The qparams of one sharing group.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ActivationQParams {
    /// Index into [`Annotation::groups`].
    pub group: usize,
    /// Names of the tensors quantized with them.
    pub values: Vec<String>,
    /// Scale.
    pub scale: f32,
    /// Zero point (u8).
    pub zero_point: i32,
}

/// The qparams of one quantized weight.
#[derive(Clone, Debug, PartialEq)]
pub struct WeightQParams {
    /// The conv / gemm node reading the weight.
    pub node: String,
    /// Per-channel scales (zero points are 0).
    pub scales: Vec<f32>,
    /// Channels with nonzero weights whose scale is the eps floor (fewer than 255 levels
    /// used); all-zero channels are not counted.
    pub floor_channels: usize,
}

/// A converted model: the QDQ graph plus what produced it.
#[derive(Clone, Debug)]
pub struct Quantized {
    /// The QDQ graph.
    pub graph: Graph,
    /// The fp32 graph it was made from (after BatchNorm folding); values keep their ids.
    pub fp32: Graph,
    /// The annotation used.
    pub annotation: Annotation,
    /// Activation qparams, one entry per group.
    pub activations: Vec<ActivationQParams>,
    /// Weight qparams, one entry per conv / linear pattern.
    pub weights: Vec<WeightQParams>,
    /// Per quantized tensor: the `DequantizeLinear` output its readers see.
    pub dequantized: BTreeMap<ValueId, ValueId>,
}

impl Prepared {
    /// Builds the QDQ graph from the observers' qparams; dynamic linear patterns become ONNX
    /// Runtime's dynamic form (`DynamicQuantizeLinear -> MatMulInteger -> Cast -> Mul
    /// [-> Add]`), which needs no calibration.
    ///
    /// # Errors
    /// [`QuantError::Calibration`] before any calibration batch when some activation is
    /// quantized statically; [`QuantError::Model`] when
    /// the rewritten graph does not validate (e.g. a generated name is already taken).
    pub fn convert(&self) -> Result<Quantized> {
        if self.batches == 0 && !self.annotation.groups.is_empty() {
            return Err(QuantError::Calibration(
                "convert needs at least one calibration batch".into(),
            ));
        }
        let mut g = self.graph.clone();
        let mut weights = Vec::new();
        let mut dql = super::dynamic::DqlCache::new();
        for p in &self.annotation.patterns {
            if p.spec.dynamic {
                weights.push(super::dynamic::rewrite(&mut g, p, &mut dql)?);
                continue;
            }
            let Some(w) = p.weight else { continue };
            let anchor = p.nodes[0];
            let name = g.node(anchor).expect("live node").name.clone();
            let t = g
                .value(w)
                .constant
                .clone()
                .expect("annotated weights are constants");
            let data = t
                .as_f32()
                .ok_or_else(|| QuantError::Model(format!("weight of node '{name}' is not f32")))?;
            let qp = weight_spec(&p.spec.weight, &g.node(anchor).expect("live node").op)
                .qparams(data, t.shape())?;
            let q = quantize_weight(data, t.shape(), &qp);
            let floor_channels =
                floored_channels(&q, t.shape(), &qp.scales, qp.axis, p.spec.weight.eps);
            let qv = g.add_constant(
                &format!("{name}.weight_quantized"),
                Tensor::new(t.shape().to_vec(), TensorData::I8(q))?,
            )?;
            let spec = QuantSpec {
                zero_points: vec![0; qp.scales.len()],
                axis: (qp.scales.len() > 1).then_some(qp.axis),
                scales: qp.scales.clone(),
                dtype: DType::I8,
            };
            let dq = add_single(
                &mut g,
                &format!("{name}.weight_DequantizeLinear"),
                Op::DequantizeLinear(spec),
                qv,
                &format!("{name}.weight_dequantized"),
            )?;
            g.set_input(anchor, 1, dq)?;
            weights.push(WeightQParams {
                node: name,
                floor_channels,
                scales: qp.scales,
            });
        }
        let mut activations = Vec::new();
        let mut dequantized = BTreeMap::new();
        for (gi, group) in self.annotation.groups.iter().enumerate() {
            let qp = self.observers[gi].qparams();
            let spec = QuantSpec::per_tensor(qp.scale, qp.zero_point, DType::U8);
            for &v in &group.values {
                let readers = readers_of(&self.graph, v, &group.points);
                let base = unique_base(&g, &self.graph.value(v).name);
                let q = add_single(
                    &mut g,
                    &format!("{base}_QuantizeLinear"),
                    Op::QuantizeLinear(spec.clone()),
                    v,
                    &format!("{base}_quantized"),
                )?;
                let dq = add_single(
                    &mut g,
                    &format!("{base}_DequantizeLinear"),
                    Op::DequantizeLinear(spec.clone()),
                    q,
                    &format!("{base}_dequantized"),
                )?;
                for r in readers {
                    let inputs = g.node(r).expect("live node").inputs.clone();
                    for (i, _) in inputs.iter().enumerate().filter(|(_, x)| **x == v) {
                        g.set_input(r, i, dq)?;
                    }
                }
                if group.points.contains(&QuantPoint::Output(v)) && g.is_output(v) {
                    let outs: Vec<ValueId> = g
                        .outputs()
                        .iter()
                        .map(|&o| if o == v { dq } else { o })
                        .collect();
                    g.set_outputs(&outs);
                }
                dequantized.insert(v, dq);
            }
            activations.push(ActivationQParams {
                group: gi,
                values: group
                    .values
                    .iter()
                    .map(|v| self.graph.value(*v).name.clone())
                    .collect(),
                scale: qp.scale,
                zero_point: qp.zero_point,
            });
        }
        g.validate()?;
        Ok(Quantized {
            graph: g,
            fp32: self.graph.clone(),
            annotation: self.annotation.clone(),
            activations,
            weights,
            dequantized,
        })
    }
}

impl Quantized {
    /// The coverage report: per node, quantized (which pattern) or fp32 and why.
    pub fn coverage(&self) -> CoverageReport {
        CoverageReport::new(&self.fp32, &self.annotation)
    }

    /// Writes the QDQ graph as an ONNX file (see [`crate::onnx::save`]).
    ///
    /// # Errors
    /// [`QuantError::Model`] when the graph cannot be expressed in ONNX or the file cannot be
    /// written.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        crate::onnx::save(&self.graph, path)?;
        Ok(())
    }
}

/// Adds a one-input, one-output node with a named output.
fn add_single(g: &mut Graph, name: &str, op: Op, input: ValueId, output: &str) -> Result<ValueId> {
    Ok(g.add_node_with_outputs(name, op, &[input], &[output.to_string()])?[0])
}

/// A name prefix no node or value of `g` uses yet.
fn unique_base(g: &Graph, base: &str) -> String {
    free_name(base, |b| {
        g.node_by_name(&format!("{b}_QuantizeLinear")).is_some()
            || g.value_by_name(&format!("{b}_quantized")).is_some()
    })
}

/// `base`, or the first of `base_1`, `base_2`, ... that is not `taken`.
pub(super) fn free_name(base: &str, taken: impl Fn(&str) -> bool) -> String {
    if !taken(base) {
        return base.to_string();
    }
    (1..)
        .map(|i| format!("{base}_{i}"))
        .find(|b| !taken(b))
        .expect("some suffix is free")
}

/// The nodes that read the quantized version of `v`: all readers when the group quantizes
/// `v` as an output, else the consumers of its annotated edges.
fn readers_of(fp32: &Graph, v: ValueId, points: &[QuantPoint]) -> Vec<NodeId> {
    if points.contains(&QuantPoint::Output(v)) {
        return fp32.consumers(v);
    }
    points
        .iter()
        .filter_map(|p| match *p {
            QuantPoint::Edge { value, consumer } if value == v => Some(consumer),
            _ => None,
        })
        .collect()
}

/// Symmetric s8 weights: `clamp(rne(w * (1 / s_c)), -128, 127)` per channel, as torch's
/// `quantize_per_channel` computes them.
/// Elements per channel block: channel of element `i` is `(i / inner) % channels`.
fn channel_inner(len: usize, shape: &[usize], channels: usize, axis: usize) -> usize {
    if channels == 1 {
        len.max(1)
    } else {
        shape[axis + 1..].iter().product::<usize>().max(1)
    }
}

/// Channels of the quantized weights `q` with a nonzero code whose scale is at most `floor`.
pub(super) fn floored_channels(
    q: &[i8],
    shape: &[usize],
    scales: &[f32],
    axis: usize,
    floor: f32,
) -> usize {
    let inner = channel_inner(q.len(), shape, scales.len(), axis);
    let mut used = vec![false; scales.len()];
    for (i, &v) in q.iter().enumerate() {
        used[(i / inner) % scales.len()] |= v != 0;
    }
    used.iter()
        .zip(scales)
        .filter(|&(&u, &s)| u && s <= floor)
        .count()
}

pub(super) fn quantize_weight(w: &[f32], shape: &[usize], qp: &ChannelQParams) -> Vec<i8> {
    let channels = qp.scales.len();
    let inner = channel_inner(w.len(), shape, channels, qp.axis);
    let inv: Vec<f32> = qp.scales.iter().map(|s| 1.0f32 / s).collect();
    w.iter()
        .enumerate()
        .map(|(i, &x)| {
            let c = (i / inner) % channels;
            let q = (x * inv[c]).round_ties_even() + qp.zero_points[c] as f32;
            q.clamp(-128.0, 127.0) as i8
        })
        .collect()
}

/// The weight spec of a pattern anchored on `op`: a MatMul's weight is `[K, N]`, so its
/// output channels are axis 1 (a conv's and a Gemm's are axis 0).
pub(super) fn weight_spec(spec: &WeightSpec, op: &Op) -> WeightSpec {
    match (op, spec.granularity) {
        (Op::MatMul, WeightGranularity::PerChannel { axis: 0 }) => WeightSpec {
            granularity: WeightGranularity::PerChannel { axis: 1 },
            ..*spec
        },
        _ => *spec,
    }
}
