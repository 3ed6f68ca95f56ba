//! [`ImportCx`]: what a registered op's importer sees of the node being imported.

use super::attrs::Attrs;
use super::fold::SymInt;
use super::proto::NodeProto;
use super::{Importer, input};
use crate::error::{Error, Result};
use crate::ir::{Dim, ValueId, ValueType};
use crate::ops::DimExpr;

/// One entry of a shape read at import.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TargetDim {
    /// A known value.
    Known(i64),
    /// The run-time size of `axis` of a graph input.
    Of(ValueId, usize),
}

/// One ONNX node during import: its attributes, its inputs (graph values, constants and
/// folded shape values) and the model's default-domain opset.
pub(crate) struct ImportCx<'a> {
    pub(super) imp: &'a Importer,
    pub(super) node: &'a NodeProto,
    pub(super) attrs: &'a Attrs<'a>,
}

impl ImportCx<'_> {
    /// The model's default-domain opset.
    pub fn opset(&self) -> i64 {
        self.imp.opset
    }

    /// The node's ONNX op type.
    pub fn op_type(&self) -> &str {
        &self.node.op_type
    }

    /// The node's attributes.
    pub fn attrs(&self) -> &Attrs<'_> {
        self.attrs
    }

    /// An error naming this node and its op type.
    pub fn err(&self, message: impl Into<String>) -> Error {
        self.attrs.err(message)
    }

    /// Number of input slots (including omitted optional ones).
    pub fn input_count(&self) -> usize {
        self.node.input.len()
    }

    /// Number of output slots the node declares.
    pub fn output_count(&self) -> usize {
        self.node.output.len()
    }

    /// The graph value of required input `i`.
    ///
    /// # Errors
    /// [`Error::Node`] when it is missing or undefined.
    pub fn input(&self, i: usize) -> Result<ValueId> {
        self.imp
            .value(self.imp.required(self.node, self.attrs, i)?, self.attrs)
    }

    /// The graph value of optional input `i` (`None` when omitted).
    ///
    /// # Errors
    /// [`Error::Node`] when it names an undefined value.
    pub fn optional(&self, i: usize) -> Result<Option<ValueId>> {
        input(self.node, i)
            .map(|s| self.imp.value(s, self.attrs))
            .transpose()
    }

    /// The `axis` attribute (or `default`) normalized against `rank`.
    ///
    /// # Errors
    /// [`Error::Node`] when it is out of range.
    pub fn axis_attr(&self, rank: usize, default: i64) -> Result<usize> {
        let axis = self.attrs.int("axis", default);
        super::normalize_index(axis, rank)
            .ok_or_else(|| self.err(format!("axis {axis} out of range for rank {rank}")))
    }

    /// The type of a graph value.
    pub fn ty(&self, v: ValueId) -> &ValueType {
        &self.imp.graph.value(v).ty
    }

    /// True when input `i` is given (not omitted).
    pub fn has_input(&self, i: usize) -> bool {
        input(self.node, i).is_some()
    }

    /// The integer values of input `i` when it is a constant (or a folded shape value whose
    /// entries are all known); `Ok(None)` when the input is omitted.
    ///
    /// # Errors
    /// [`Error::Node`] when it is given but not a known integer tensor.
    pub fn const_ints(&self, i: usize) -> Result<Option<Vec<i64>>> {
        let Some(name) = input(self.node, i) else {
            return Ok(None);
        };
        self.imp
            .sym(name)
            .and_then(|s| s.known())
            .map(Some)
            .ok_or_else(|| {
                self.err(format!(
                    "input {i} ('{name}') must be a constant integer tensor"
                ))
            })
    }

    /// A shape given by input `i` (a constant or a folded shape value), each entry a known
    /// integer or a run-time dim resolved to `(graph input, axis)` having it.
    ///
    /// # Errors
    /// [`Error::Node`] when the input is not a shape value, or names a run-time dim no graph
    /// input has.
    pub fn dims_input(&self, i: usize) -> Result<Vec<TargetDim>> {
        let name =
            super::input(self.node, i).ok_or_else(|| self.err(format!("input {i} is missing")))?;
        let s = self.imp.sym(name).ok_or_else(|| {
            self.err(format!(
                "input {i} ('{name}') must be a constant or folded shape"
            ))
        })?;
        s.values
            .iter()
            .map(|v| match v {
                SymInt::Known(k) => Ok(TargetDim::Known(*k)),
                SymInt::Sym(sym) => self.graph_dim(sym).map(|(g, axis)| TargetDim::Of(g, axis)),
                SymInt::Expr(_) => Err(self.err(format!(
                    "dimension '{}' is computed from run-time dimensions; only a graph input's own dimension is supported here",
                    super::fold::show(v)
                ))),
            })
            .collect()
    }

    /// The graph input and axis having run-time dim `sym`.
    fn graph_dim(&self, sym: &str) -> Result<(ValueId, usize)> {
        self.imp
            .graph
            .inputs()
            .iter()
            .find_map(|&g| {
                let dims = self.imp.graph.value(g).ty.shape.dims();
                dims.iter()
                    .position(|d| matches!(d, Dim::Sym(x) if &**x == sym))
                    .map(|axis| (g, axis))
            })
            .ok_or_else(|| {
                self.err(format!(
                    "dimension '{sym}' is not a dimension of a graph input"
                ))
            })
    }

    /// Input `i` (a constant or a folded shape value) as integers computed from the input
    /// shapes at run time: each run-time dim a leaf reading `(node input, axis)`, the graph
    /// inputs having those dims appended to `inputs` (once each).
    ///
    /// # Errors
    /// [`Error::Node`] when the input is missing or not a folded integer tensor, or names a
    /// run-time dim no graph input has.
    pub fn dim_exprs_input(&self, i: usize, inputs: &mut Vec<ValueId>) -> Result<Vec<DimExpr>> {
        let name =
            super::input(self.node, i).ok_or_else(|| self.err(format!("input {i} is missing")))?;
        let s = self.imp.sym(name).ok_or_else(|| {
            self.err(format!(
                "input {i} ('{name}') must be a constant or computed from the input shapes"
            ))
        })?;
        s.values.iter().map(|v| self.dim_expr(v, inputs)).collect()
    }

    fn dim_expr(&self, v: &SymInt, inputs: &mut Vec<ValueId>) -> Result<DimExpr> {
        Ok(match v {
            SymInt::Known(k) => DimExpr::Known(*k),
            SymInt::Sym(sym) => {
                let (g, axis) = self.graph_dim(sym)?;
                let input = inputs.iter().position(|&x| x == g).unwrap_or_else(|| {
                    inputs.push(g);
                    inputs.len() - 1
                });
                DimExpr::Dim { input, axis }
            }
            SymInt::Expr(e) => DimExpr::Op(
                e.op,
                Box::new(self.dim_expr(&e.a, inputs)?),
                Box::new(self.dim_expr(&e.b, inputs)?),
            ),
        })
    }

    /// Input `i` when it is a constant; `Ok(None)` when omitted.
    ///
    /// # Errors
    /// [`Error::Node`] when it is given but not a constant.
    pub fn const_tensor(&self, i: usize) -> Result<Option<std::sync::Arc<crate::ir::Tensor>>> {
        let Some(name) = input(self.node, i) else {
            return Ok(None);
        };
        self.imp
            .constant(name)
            .map(Some)
            .ok_or_else(|| self.err(format!("input {i} ('{name}') must be a constant")))
    }

    /// The f32 values of input `i` when it is a constant; `Ok(None)` when omitted.
    ///
    /// # Errors
    /// [`Error::Node`] when it is given but not a constant f32 tensor.
    pub fn const_floats(&self, i: usize) -> Result<Option<Vec<f32>>> {
        let Some(name) = input(self.node, i) else {
            return Ok(None);
        };
        self.imp
            .constant(name)
            .and_then(|t| t.as_f32().map(<[f32]>::to_vec))
            .map(Some)
            .ok_or_else(|| {
                self.err(format!(
                    "input {i} ('{name}') must be a constant f32 tensor"
                ))
            })
    }
}
