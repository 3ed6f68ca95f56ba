//! `prepare`: BatchNorm folding, annotation and one observer per sharing group (PyTorch's
//! `prepare_pt2e`). Weights need no observer: they are constants, quantized per channel by
//! [`Prepared::convert`].

use super::annotate::{Annotation, annotate};
use super::config::QuantConfig;
use super::error::{QuantError, Result};
use super::observer::Observer;
use super::report::CoverageReport;
use crate::exec::{ExecOptions, Executor};
use crate::ir::Graph;
use crate::passes::{BnFoldReport, fold_batch_norm};

/// A model ready for calibration: the BN-folded fp32 graph, its annotation, and one
/// observer per [`QuantGroup`](super::QuantGroup).
///
/// The whole flow (see also the crate-level `q8 quantize` command):
///
/// ```
/// use q8_frontend::exec::ExecOptions;
/// use q8_frontend::ir::{Dim, GraphBuilder, Op, Shape, Tensor, Window2d};
/// use q8_frontend::quant::{prepare, QuantConfig};
/// let mut b = GraphBuilder::new("net");
/// let x = b.input("x", Shape(vec![Dim::sym("n"), 1.into(), 4.into(), 4.into()])).unwrap();
/// let w: Vec<f32> = (0..18).map(|i| i as f32 / 18.0 - 0.5).collect();
/// let y = b.conv2d("conv", x, w, Some(vec![0.1, -0.1]), 2, Window2d::new([3, 3], [1, 1], 1), 1).unwrap();
/// let y = b.op("relu", Op::Relu, &[y]).unwrap();
/// let fp32 = b.finish(&[y]).unwrap();
///
/// let mut prepared = prepare(&fp32, &QuantConfig::x86_default(), ExecOptions { threads: 1 }).unwrap();
/// let batches = (0..4).map(|i| {
///     let data = (0..32).map(|j| ((i * 32 + j) as f32 * 0.37).sin()).collect();
///     Tensor::from_f32(vec![2, 1, 4, 4], data).unwrap()
/// });
/// prepared.calibrate(batches, |_| {}).unwrap();
/// let quantized = prepared.convert().unwrap();
/// print!("{}", quantized.coverage());
/// let path = std::env::temp_dir().join("q8_prepare_doc.q8.onnx");
/// quantized.save(&path).unwrap();
/// let reloaded = q8_frontend::onnx::load(&path).unwrap();
/// assert_eq!(reloaded.nodes().count(), quantized.graph.nodes().count());
/// ```
pub struct Prepared {
    pub(super) graph: Graph,
    pub(super) bn: BnFoldReport,
    pub(super) annotation: Annotation,
    pub(super) executor: Executor,
    pub(super) observers: Vec<Box<dyn Observer>>,
    /// Per value id: the groups observing it.
    pub(super) watch: Vec<Vec<usize>>,
    /// Calibration batches seen so far.
    pub(super) batches: usize,
}

/// Folds BatchNorm, annotates `graph` under `config` and creates the observers.
///
/// # Errors
/// [`QuantError::Config`] for an invalid config; [`QuantError::Model`] for an already
/// quantized graph, or when the graph does not validate or BN folding fails;
/// [`QuantError::NothingQuantizable`] with the coverage report when no node can be quantized.
pub fn prepare(graph: &Graph, config: &QuantConfig, options: ExecOptions) -> Result<Prepared> {
    graph.validate()?;
    let mut graph = graph.clone();
    let bn = fold_batch_norm(&mut graph)?;
    let annotation = annotate(&graph, config)?;
    if annotation.patterns.is_empty() {
        let report = CoverageReport::new(&graph, &annotation);
        return Err(QuantError::NothingQuantizable(report.to_string()));
    }
    let observers = annotation
        .groups
        .iter()
        .map(|g| g.spec.build_observer())
        .collect::<Result<Vec<_>>>()?;
    let mut watch = vec![Vec::new(); graph.value_count()];
    for (i, g) in annotation.groups.iter().enumerate() {
        for v in &g.values {
            watch[v.0].push(i);
        }
    }
    let executor = Executor::new(&graph, options)?;
    Ok(Prepared {
        graph,
        bn,
        annotation,
        executor,
        observers,
        watch,
        batches: 0,
    })
}

impl Prepared {
    /// The fp32 graph after BatchNorm folding (what is calibrated and converted).
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Which BatchNorms were folded, and which were kept and why.
    pub fn batch_norm_folding(&self) -> &BnFoldReport {
        &self.bn
    }

    /// Patterns, sharing groups and per-node status.
    pub fn annotation(&self) -> &Annotation {
        &self.annotation
    }

    /// The coverage report: per node, quantized (which pattern) or fp32 and why.
    pub fn coverage(&self) -> CoverageReport {
        CoverageReport::new(&self.graph, &self.annotation)
    }

    /// Calibration batches observed so far.
    pub fn batches_seen(&self) -> usize {
        self.batches
    }
}
