//! The coverage report: for every node, whether it is quantized (in which pattern) or stays
//! fp32, and why. Printed as a table, or as JSON for scripts.

use std::fmt;

use serde::Serialize;

use super::annotate::{Annotation, Fp32Reason, NodeStatus};
use super::config::ConfigSource;
use crate::ir::Graph;

/// One node's line of the report.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeCoverage {
    /// ONNX node name.
    pub node: String,
    /// ONNX op type.
    pub op: String,
    /// `Some(pattern name)` when quantized.
    pub pattern: Option<String>,
    /// Why the node stays fp32 (`None` when quantized).
    pub reason: Option<String>,
}

/// Per-node coverage of an annotation.
///
/// ```
/// use q8_frontend::ir::{Dim, GraphBuilder, Op, Shape};
/// use q8_frontend::quant::{annotate, CoverageReport, QuantConfig};
/// let mut b = GraphBuilder::new("net");
/// let x = b.input("x", Shape(vec![Dim::sym("n"), 4.into()])).unwrap();
/// let y = b.op("sigmoid", Op::Sigmoid, &[x]).unwrap();
/// let g = b.finish(&[y]).unwrap();
/// let report = CoverageReport::new(&g, &annotate(&g, &QuantConfig::x86_default()).unwrap());
/// assert_eq!(report.quantized(), 0);
/// assert!(report.to_string().contains("nothing is quantized"));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct CoverageReport {
    /// One entry per node, in graph order.
    pub nodes: Vec<NodeCoverage>,
    /// Number of observer-sharing groups (activation qparams).
    pub groups: usize,
}

impl CoverageReport {
    /// The report for `annotation` of `graph`.
    pub fn new(graph: &Graph, annotation: &Annotation) -> CoverageReport {
        let nodes = annotation
            .status
            .iter()
            .filter_map(|(id, status)| {
                let n = graph.node(*id)?;
                let (pattern, reason) = match status {
                    NodeStatus::Quantized { pattern } => (
                        annotation.patterns.get(*pattern).map(|p| p.kind.name()),
                        None,
                    ),
                    NodeStatus::Fp32(r) => (None, Some(reason_text(r))),
                };
                Some(NodeCoverage {
                    node: n.name.clone(),
                    op: n.op.name().to_string(),
                    pattern,
                    reason,
                })
            })
            .collect();
        CoverageReport {
            nodes,
            groups: annotation.groups.len(),
        }
    }

    /// Number of quantized nodes.
    pub fn quantized(&self) -> usize {
        self.nodes.iter().filter(|n| n.pattern.is_some()).count()
    }

    /// The report as a JSON object (its [`Serialize`] form): `{"quantized": n, "fp32": n,
    /// "groups": n, "nodes": [{"node", "op", "status", "pattern" | "reason"}]}`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a report serializes")
    }
}

/// The JSON form of a [`CoverageReport`].
#[derive(Serialize)]
struct CoverageJson<'a> {
    quantized: usize,
    fp32: usize,
    groups: usize,
    nodes: Vec<NodeJson<'a>>,
}

/// The JSON form of a [`NodeCoverage`]: `status` is `quantized` (with `pattern`) or `fp32`
/// (with `reason`).
#[derive(Serialize)]
struct NodeJson<'a> {
    node: &'a str,
    op: &'a str,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pattern: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
}

impl Serialize for CoverageReport {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let nodes = self
            .nodes
            .iter()
            .map(|n| NodeJson {
                node: &n.node,
                op: &n.op,
                status: if n.pattern.is_some() {
                    "quantized"
                } else {
                    "fp32"
                },
                pattern: n.pattern.as_deref(),
                reason: match n.pattern {
                    Some(_) => None,
                    None => Some(n.reason.as_deref().unwrap_or("")),
                },
            })
            .collect();
        CoverageJson {
            quantized: self.quantized(),
            fp32: self.nodes.len() - self.quantized(),
            groups: self.groups,
            nodes,
        }
        .serialize(s)
    }
}

impl fmt::Display for CoverageReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let q = self.quantized();
        writeln!(
            f,
            "coverage: {q} of {} nodes quantized, {} activation qparam groups",
            self.nodes.len(),
            self.groups
        )?;
        if q == 0 {
            writeln!(f, "nothing is quantized:")?;
        }
        let width = self.nodes.iter().map(|n| n.node.len()).max().unwrap_or(4);
        for n in &self.nodes {
            match (&n.pattern, &n.reason) {
                (Some(p), _) => writeln!(f, "  {:<width$}  {:<18} int8  {p}", n.node, n.op)?,
                (None, r) => writeln!(
                    f,
                    "  {:<width$}  {:<18} fp32  {}",
                    n.node,
                    n.op,
                    r.as_deref().unwrap_or("")
                )?,
            }
        }
        Ok(())
    }
}

fn reason_text(r: &Fp32Reason) -> String {
    match r {
        Fp32Reason::Override(ConfigSource::NodeName) => "user override (node name)".into(),
        Fp32Reason::Override(ConfigSource::OpType) => "user override (op type)".into(),
        Fp32Reason::Override(ConfigSource::Global) => "user override (global setting)".into(),
        Fp32Reason::NotMatched(why) => format!("pattern not matched: {why}"),
        Fp32Reason::Unsupported(why) => format!("unsupported: {why}"),
    }
}
