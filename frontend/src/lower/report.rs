//! The lowering report: for every node of the graph, which step runs it and how, or why it
//! stays in f32.

use std::fmt;

use serde::Serialize;

/// What became of one graph node. In JSON, a `"lowering"` tag (`"lowered"`, `"constant"`,
/// `"f32"`) beside the variant's fields.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "lowering")]
pub enum NodeLowering {
    /// Part of a lowered step (an int8 kernel, a u8 op or a quantize / dequantize boundary).
    #[serde(rename = "lowered")]
    Lowered {
        /// Name of the step's anchor node.
        step: String,
        /// Kernel label ("int8 conv (u8 out)", "u8 max pool", ...).
        kernel: String,
        /// Epilogue / geometry details.
        detail: String,
    },
    /// Evaluated once at load time (weights, biases, folded shapes).
    #[serde(rename = "constant")]
    Constant,
    /// Runs in f32 through the executor.
    #[serde(rename = "f32")]
    Fallback {
        /// Why no int8 pattern matched.
        reason: String,
    },
}

/// One node's entry.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeEntry {
    /// Node name (as in the source model).
    pub node: String,
    /// ONNX op type.
    pub op: String,
    /// What happened to it.
    #[serde(flatten)]
    pub lowering: NodeLowering,
}

/// The per-node account of a lowering, printable as text ([`fmt::Display`]) or JSON.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoweringReport {
    /// Every node, in execution order.
    pub nodes: Vec<NodeEntry>,
    /// Tier the weights were packed for.
    pub tier: String,
    /// `DequantizeLinear` clones made so each consumer has its own.
    pub duplicated_dequantize: usize,
    /// `q(maxpool(y))` rewritten to `maxpool(q(y))`.
    pub quantize_moved_before_max_pool: usize,
    /// The exporter's batch of 1 is treated as dynamic.
    pub batch_relaxed: bool,
}

impl LoweringReport {
    /// Names of the nodes that run in f32 (fallback), in execution order.
    pub fn fallback_nodes(&self) -> Vec<&str> {
        self.nodes
            .iter()
            .filter(|e| matches!(e.lowering, NodeLowering::Fallback { .. }))
            .map(|e| e.node.as_str())
            .collect()
    }

    /// Count of compute nodes (Conv, Gemm, MatMul, MatMulInteger) running on int8 kernels,
    /// and in total.
    pub fn int8_coverage(&self) -> (usize, usize) {
        let compute: Vec<&NodeEntry> = self
            .nodes
            .iter()
            .filter(|e| matches!(e.op.as_str(), "Conv" | "Gemm" | "MatMul" | "MatMulInteger"))
            .collect();
        let int8 = compute
            .iter()
            .filter(|e| matches!(&e.lowering, NodeLowering::Lowered { kernel, .. } if kernel.starts_with("int8")))
            .count();
        (int8, compute.len())
    }

    /// The report as a JSON object (its [`Serialize`] form): `{"tier",
    /// "int8_compute_nodes", "compute_nodes", "fallback_nodes", "duplicated_dequantize",
    /// "quantize_moved_before_max_pool", "batch_relaxed", "nodes": [{"node", "op",
    /// "lowering", "step", "kernel", "detail" | "reason"}]}`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a report serializes")
    }
}

/// The JSON form of a [`LoweringReport`], with its derived counts.
#[derive(Serialize)]
struct ReportJson<'a> {
    tier: &'a str,
    int8_compute_nodes: usize,
    compute_nodes: usize,
    fallback_nodes: usize,
    duplicated_dequantize: usize,
    quantize_moved_before_max_pool: usize,
    batch_relaxed: bool,
    nodes: &'a [NodeEntry],
}

impl Serialize for LoweringReport {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (int8, total) = self.int8_coverage();
        ReportJson {
            tier: &self.tier,
            int8_compute_nodes: int8,
            compute_nodes: total,
            fallback_nodes: self.fallback_nodes().len(),
            duplicated_dequantize: self.duplicated_dequantize,
            quantize_moved_before_max_pool: self.quantize_moved_before_max_pool,
            batch_relaxed: self.batch_relaxed,
            nodes: &self.nodes,
        }
        .serialize(s)
    }
}

impl fmt::Display for LoweringReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (int8, total) = self.int8_coverage();
        writeln!(
            f,
            "lowering for tier {}: {int8}/{total} conv/linear nodes on int8 kernels, {} nodes in f32",
            self.tier,
            self.fallback_nodes().len()
        )?;
        if self.batch_relaxed {
            writeln!(
                f,
                "  (the exporter fixed the batch at 1: treated as dynamic)"
            )?;
        }
        for e in &self.nodes {
            match &e.lowering {
                NodeLowering::Lowered {
                    step,
                    kernel,
                    detail,
                } if *step == e.node => {
                    writeln!(f, "  {:<40} {:<18} {kernel}: {detail}", e.node, e.op)?
                }
                NodeLowering::Lowered { step, .. } => {
                    writeln!(f, "  {:<40} {:<18} fused into '{step}'", e.node, e.op)?
                }
                NodeLowering::Constant => writeln!(f, "  {:<40} {:<18} constant", e.node, e.op)?,
                NodeLowering::Fallback { reason } => {
                    writeln!(f, "  {:<40} {:<18} f32 fallback: {reason}", e.node, e.op)?
                }
            }
        }
        Ok(())
    }
}
