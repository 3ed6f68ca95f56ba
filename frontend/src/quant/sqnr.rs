//! Per-layer numeric comparison (PyTorch's numeric debugger, keyed by ONNX node names): for
//! every quantized pattern, the SQNR of what the QDQ reference computes at its output (after
//! the output's own quantize / dequantize, when it has one) against the fp32 model's value
//! there, accumulated over all batches; plus the SQNR of each graph output.

use std::collections::HashMap;
use std::fmt;

use serde::Serialize;

use super::annotate::PatternMatch;
use super::convert::Quantized;
use super::error::Result;
use crate::exec::{ExecOptions, Executor};
use crate::ir::{NodeId, Tensor, ValueId};

/// `10 * log10(sum ref^2 / sum (ref - x)^2)` in dB (f64 sums); `+inf` when equal.
///
/// ```
/// let db = q8_frontend::quant::sqnr_db(&[1.0, -2.0], &[1.1, -2.0]);
/// assert!((db - 10.0 * (5.0f64 / 0.01).log10()).abs() < 1e-3);
/// ```
pub fn sqnr_db(reference: &[f32], x: &[f32]) -> f64 {
    let mut acc = Accumulator::default();
    acc.add(reference, x);
    acc.db()
}

#[derive(Clone, Copy, Debug, Default)]
struct Accumulator {
    signal: f64,
    noise: f64,
}

impl Accumulator {
    fn add(&mut self, reference: &[f32], x: &[f32]) {
        for (&r, &v) in reference.iter().zip(x) {
            let (r, v) = (f64::from(r), f64::from(v));
            self.signal += r * r;
            self.noise += (r - v) * (r - v);
        }
    }

    fn db(self) -> f64 {
        if self.noise == 0.0 {
            f64::INFINITY
        } else {
            10.0 * (self.signal / self.noise).log10()
        }
    }
}

/// One row of the comparison (in JSON an infinite SQNR is `null`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LayerSqnr {
    /// ONNX name of the pattern's anchor node (or of the graph output value).
    pub node: String,
    /// Pattern name (`output` for graph outputs).
    pub pattern: String,
    /// The compared value (the pattern's output).
    pub value: String,
    /// SQNR in dB over all compared batches.
    pub sqnr_db: f64,
}

/// Per-layer and per-output SQNR of a converted model against its fp32 original.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Comparison {
    /// Batches compared.
    pub batches: usize,
    /// One row per quantized pattern, in graph order of the anchor nodes.
    pub layers: Vec<LayerSqnr>,
    /// One row per graph output.
    pub outputs: Vec<LayerSqnr>,
}

impl Comparison {
    /// The rows with the lowest SQNR first.
    pub fn worst_first(&self) -> Vec<&LayerSqnr> {
        let mut rows: Vec<&LayerSqnr> = self.layers.iter().collect();
        rows.sort_by(|a, b| a.sqnr_db.total_cmp(&b.sqnr_db));
        rows
    }

    /// `{"batches": n, "layers": [{"node", "pattern", "value", "sqnr_db"}], "outputs": [...]}`
    /// (its [`Serialize`] form; an infinite SQNR is written as `null`).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a comparison serializes")
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "per-layer SQNR, int8 (QDQ reference) vs fp32, {} batches:",
            self.batches
        )?;
        let width = self
            .layers
            .iter()
            .chain(&self.outputs)
            .map(|r| r.node.len())
            .max()
            .unwrap_or(4);
        for r in self.layers.iter().chain(&self.outputs) {
            writeln!(
                f,
                "  {:<width$}  {:<16} {:>7.2} dB",
                r.node, r.pattern, r.sqnr_db
            )?;
        }
        Ok(())
    }
}

/// Runs the fp32 original and the QDQ model of `quantized` on each batch (the inputs in
/// graph order: one [`Tensor`] or a `Vec<Tensor>`) and compares them at every quantized pattern's output and at the graph outputs.
///
/// # Errors
/// [`super::QuantError::Model`] when a batch does not fit the model or execution fails.
pub fn compare<I, B>(quantized: &Quantized, batches: I, options: ExecOptions) -> Result<Comparison>
where
    I: IntoIterator<Item = B>,
    B: AsRef<[Tensor]>,
{
    let fp32 = Executor::new(&quantized.fp32, options)?;
    let qdq = Executor::new(&quantized.graph, options)?;
    let patterns = &quantized.annotation.patterns;
    // (fp32 value, value seen by the QDQ graph's readers)
    let probes: Vec<(ValueId, ValueId)> = patterns
        .iter()
        .map(|p| {
            let seen = quantized.dequantized.get(&p.output).copied();
            (p.output, seen.unwrap_or(p.output))
        })
        .collect();
    let mut layers = vec![Accumulator::default(); probes.len()];
    let mut outputs = vec![Accumulator::default(); quantized.fp32.outputs().len()];
    let mut count = 0;
    for batch in batches {
        let batch = batch.as_ref();
        let mut reference: HashMap<ValueId, Vec<f32>> = HashMap::new();
        let want: Vec<ValueId> = probes.iter().map(|p| p.0).collect();
        let ref_out = fp32.run_observed(batch, &mut |id, _, t| {
            if want.contains(&id)
                && let Some(v) = t.as_f32()
            {
                reference.insert(id, v.to_vec());
            }
        })?;
        let mut got: HashMap<ValueId, Vec<f32>> = HashMap::new();
        let seen: Vec<ValueId> = probes.iter().map(|p| p.1).collect();
        let q_out = qdq.run_observed(batch, &mut |id, _, t| {
            if seen.contains(&id)
                && let Some(v) = t.as_f32()
            {
                got.insert(id, v.to_vec());
            }
        })?;
        for (acc, (r, s)) in layers.iter_mut().zip(&probes) {
            if let (Some(r), Some(s)) = (reference.get(r), got.get(s)) {
                acc.add(r, s);
            }
        }
        for (acc, (r, q)) in outputs.iter_mut().zip(ref_out.iter().zip(&q_out)) {
            if let (Some(r), Some(q)) = (r.as_f32(), q.as_f32()) {
                acc.add(r, q);
            }
        }
        count += 1;
    }
    let g = &quantized.fp32;
    let position: HashMap<NodeId, usize> =
        g.nodes().enumerate().map(|(i, (id, _))| (id, i)).collect();
    let mut rows: Vec<(&PatternMatch, Accumulator)> = patterns.iter().zip(layers).collect();
    rows.sort_by_key(|(p, _)| position.get(&p.nodes[0]).copied());
    let layers = rows
        .into_iter()
        .map(|(p, acc)| LayerSqnr {
            node: g
                .node(p.nodes[0])
                .map(|n| n.name.clone())
                .unwrap_or_default(),
            pattern: p.kind.name(),
            value: g.value(p.output).name.clone(),
            sqnr_db: acc.db(),
        })
        .collect();
    let outputs = g
        .outputs()
        .iter()
        .zip(outputs)
        .map(|(&o, acc)| LayerSqnr {
            node: g.value(o).name.clone(),
            pattern: "output".into(),
            value: g.value(o).name.clone(),
            sqnr_db: acc.db(),
        })
        .collect();
    Ok(Comparison {
        layers,
        outputs,
        batches: count,
    })
}
