//! Convenience layer over [`Graph`] for writing models in Rust: layers that create their
//! own weight constants, named after the layer (`{name}.weight`, `{name}.bias`, ...).

use super::DType;
use super::graph::{Graph, ValueId};
use super::op::{Conv, Gemm, Op};
use super::shape::Shape;
use super::tensor::Tensor;
use super::window::Window2d;
use crate::error::Result;

/// Per-channel parameters of an inference BatchNorm.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchNormParams {
    /// Scale (gamma).
    pub gamma: Vec<f32>,
    /// Shift (beta).
    pub beta: Vec<f32>,
    /// Running mean.
    pub mean: Vec<f32>,
    /// Running variance.
    pub var: Vec<f32>,
    /// Added to the variance.
    pub epsilon: f32,
}

/// Builds a graph layer by layer.
///
/// ```
/// use q8_frontend::ir::{Dim, GraphBuilder, Op, Shape, Window2d};
/// let mut b = GraphBuilder::new("net");
/// let x = b.input("x", Shape(vec![Dim::sym("batch"), 3.into(), 8.into(), 8.into()])).unwrap();
/// let y = b.conv2d("conv", x, vec![0.1; 4 * 3 * 3 * 3], None, 4, Window2d::new([3, 3], [1, 1], 1), 1).unwrap();
/// let y = b.op("relu", Op::Relu, &[y]).unwrap();
/// let g = b.finish(&[y]).unwrap();
/// assert_eq!(g.value(g.outputs()[0]).ty.shape.to_string(), "[batch, 4, 8, 8]");
/// ```
#[derive(Debug, Default)]
pub struct GraphBuilder {
    graph: Graph,
}

impl GraphBuilder {
    /// An empty builder.
    pub fn new(name: &str) -> GraphBuilder {
        GraphBuilder {
            graph: Graph::new(name),
        }
    }

    /// Adds an f32 graph input.
    ///
    /// # Errors
    /// As [`Graph::add_input`].
    pub fn input(&mut self, name: &str, shape: Shape) -> Result<ValueId> {
        self.graph.add_input(name, DType::F32, shape)
    }

    /// Adds an f32 constant.
    ///
    /// # Errors
    /// As [`Tensor::from_f32`] and [`Graph::add_constant`].
    pub fn constant(&mut self, name: &str, shape: Vec<usize>, data: Vec<f32>) -> Result<ValueId> {
        self.graph
            .add_constant(name, Tensor::from_f32(shape, data)?)
    }

    /// Adds a single-output node.
    ///
    /// # Errors
    /// As [`Graph::add_node`].
    pub fn op(&mut self, name: &str, op: Op, inputs: &[ValueId]) -> Result<ValueId> {
        Ok(self.graph.add_node(name, op, inputs)?[0])
    }

    /// A 2-D convolution with weight `[out_channels, C / groups, KH, KW]` (row-major data)
    /// and optional bias.
    ///
    /// # Errors
    /// When the data lengths or shapes do not fit.
    #[allow(clippy::too_many_arguments)]
    pub fn conv2d(
        &mut self,
        name: &str,
        x: ValueId,
        weight: Vec<f32>,
        bias: Option<Vec<f32>>,
        out_channels: usize,
        window: Window2d,
        groups: usize,
    ) -> Result<ValueId> {
        let [kh, kw] = window.kernel;
        let per_out = weight.len() / out_channels.max(1);
        let w = self.constant(
            &format!("{name}.weight"),
            vec![out_channels, per_out / (kh * kw).max(1), kh, kw],
            weight,
        )?;
        let mut inputs = vec![x, w];
        if let Some(b) = bias {
            inputs.push(self.constant(&format!("{name}.bias"), vec![out_channels], b)?);
        }
        self.op(name, Op::Conv(Conv { window, groups }), &inputs)
    }

    /// Inference batch normalization with the given per-channel parameters.
    ///
    /// # Errors
    /// When the parameter lengths differ from the channel count.
    pub fn batch_norm(&mut self, name: &str, x: ValueId, p: BatchNormParams) -> Result<ValueId> {
        let c = p.gamma.len();
        let mut inputs = vec![x];
        for (suffix, data) in [
            ("weight", p.gamma),
            ("bias", p.beta),
            ("running_mean", p.mean),
            ("running_var", p.var),
        ] {
            inputs.push(self.constant(&format!("{name}.{suffix}"), vec![c], data)?);
        }
        self.op(name, Op::BatchNorm { epsilon: p.epsilon }, &inputs)
    }

    /// A linear layer `x [M, K] -> [M, N]` with weight `[N, K]` and optional bias `[N]`.
    ///
    /// # Errors
    /// When the data lengths or shapes do not fit.
    pub fn linear(
        &mut self,
        name: &str,
        x: ValueId,
        weight: Vec<f32>,
        bias: Option<Vec<f32>>,
        out_features: usize,
    ) -> Result<ValueId> {
        let k = weight.len() / out_features.max(1);
        let w = self.constant(&format!("{name}.weight"), vec![out_features, k], weight)?;
        let mut inputs = vec![x, w];
        if let Some(b) = bias {
            inputs.push(self.constant(&format!("{name}.bias"), vec![out_features], b)?);
        }
        let gemm = Gemm {
            alpha: 1.0,
            beta: 1.0,
            trans_a: false,
            trans_b: true,
        };
        self.op(name, Op::Gemm(gemm), &inputs)
    }

    /// The graph under construction (for ops the helpers do not cover).
    pub fn graph_mut(&mut self) -> &mut Graph {
        &mut self.graph
    }

    /// Sets the outputs, validates and returns the graph.
    ///
    /// # Errors
    /// As [`Graph::validate`].
    pub fn finish(mut self, outputs: &[ValueId]) -> Result<Graph> {
        self.graph.set_outputs(outputs);
        self.graph.validate()?;
        Ok(self.graph)
    }
}
