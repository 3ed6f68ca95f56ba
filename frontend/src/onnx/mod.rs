//! ONNX import: model bytes -> [`Graph`].
//!
//! Reads opsets 13 to 21 of the default domain as written by both PyTorch exporters and by
//! ONNX Runtime's quantizer: initializers (raw or typed data), `Constant` nodes, shape
//! sub-graphs folded at import (also with a dynamic batch), and QDQ models. Every error names
//! the node (and op type and opset for unsupported ops). Malformed or hostile bytes give an
//! error, never a panic: declared sizes are checked and capped before allocation.
//!
//! ```no_run
//! let graph = q8_frontend::onnx::load("model.onnx").unwrap();
//! for (_, node) in graph.nodes() {
//!     println!("{} {}", node.name, node.op.name());
//! }
//! ```

pub(crate) mod attrs;
mod cx;
mod export;
mod fold;
mod ops;
pub mod proto;
mod qlinear;
mod tensor;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use prost::Message;

pub(crate) use self::cx::{ImportCx, TargetDim};
pub use self::export::{EXPORT_OPSET, save, to_model};
pub(crate) use self::fold::{normalize_index, slice_indices};
pub(crate) use self::ops::{TYPED_SPECS, typed as typed_import};
pub(crate) use self::qlinear::SPECS as QLINEAR_SPECS;

use self::attrs::Attrs;
use self::fold::SymTensor;
use self::proto::{ModelProto, NodeProto, ValueInfoProto};
use crate::error::{Error, Result};
use crate::ir::{DType, Dim, Graph, MAX_DIM, Shape, Tensor, ValueId};

/// Oldest default-domain opset q8 reads.
pub const MIN_OPSET: i64 = 7;
/// Newest default-domain opset q8 reads.
pub const MAX_OPSET: i64 = 21;

/// Largest model file q8 reads (2 GiB, protobuf's own limit).
const MAX_MODEL_BYTES: u64 = 2 << 30;

/// Loads an ONNX model file.
///
/// # Errors
/// [`Error::Io`] when the file cannot be read; otherwise as [`load_bytes`].
pub fn load(path: impl AsRef<Path>) -> Result<Graph> {
    let path = path.as_ref();
    let io = |source| Error::Io {
        path: path.display().to_string(),
        source,
    };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > MAX_MODEL_BYTES {
        return Err(Error::Decode(format!(
            "{} is {len} bytes, more than the 2 GiB protobuf limit",
            path.display()
        )));
    }
    let bytes = std::fs::read(path).map_err(io)?;
    load_bytes(&bytes)
}

/// Imports an ONNX model from its serialized bytes.
///
/// # Errors
/// [`Error::Decode`] for malformed protobuf, unsupported opsets, element types or external
/// data; [`Error::UnsupportedOp`] naming op type, node and opset; [`Error::Node`] for a
/// malformed node; [`Error::Graph`] for dangling edges or cycles.
pub fn load_bytes(bytes: &[u8]) -> Result<Graph> {
    import(&decode_model(bytes)?)
}

/// Decodes model bytes into the protobuf messages (to inspect or edit before [`import`]).
///
/// # Errors
/// [`Error::Decode`] for malformed protobuf.
pub fn decode_model(bytes: &[u8]) -> Result<ModelProto> {
    ModelProto::decode(bytes).map_err(|e| Error::Decode(format!("protobuf decoding failed: {e}")))
}

/// Serializes protobuf messages into model bytes.
pub fn encode_model(model: &ModelProto) -> Vec<u8> {
    model.encode_to_vec()
}

/// Imports a decoded model; see [`load_bytes`].
///
/// # Errors
/// As [`load_bytes`].
pub fn import(model: &ModelProto) -> Result<Graph> {
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| Error::Decode("the model has no graph".into()))?;
    let opsets: HashMap<String, i64> = model
        .opset_import
        .iter()
        .map(|o| {
            (
                if o.domain == "ai.onnx" {
                    String::new()
                } else {
                    o.domain.clone()
                },
                o.version,
            )
        })
        .collect();
    let opset = *opsets
        .get("")
        .ok_or_else(|| Error::Decode("the model imports no default-domain opset".into()))?;
    if !(MIN_OPSET..=MAX_OPSET).contains(&opset) {
        return Err(Error::Decode(format!(
            "opset {opset} is not supported (q8 reads opsets {MIN_OPSET} to {MAX_OPSET})"
        )));
    }
    if let Some(s) = graph.sparse_initializer.first() {
        return Err(Error::Decode(format!(
            "sparse initializers are not supported (shape {:?})",
            s.dims
        )));
    }
    let mut imp = Importer {
        graph: Graph::new(&graph.name),
        opsets,
        opset,
        syms: HashMap::new(),
    };
    for t in &graph.initializer {
        let tensor = tensor::tensor_from_proto(t)?;
        imp.graph.add_constant(&t.name, tensor)?;
    }
    for input in &graph.input {
        if imp.graph.value_by_name(&input.name).is_none() {
            let (dtype, shape) = value_info_type(input)?;
            imp.graph.add_input(&input.name, dtype, shape)?;
        }
    }
    for (index, node) in graph.node.iter().enumerate() {
        imp.node(index, node)?;
    }
    let mut outputs = Vec::with_capacity(graph.output.len());
    for o in &graph.output {
        let id = imp.graph.value_by_name(&o.name).ok_or_else(|| {
            Error::Graph(format!(
                "graph output '{}' is not computed by any node",
                o.name
            ))
        })?;
        outputs.push(id);
    }
    imp.graph.set_outputs(&outputs);
    imp.graph.validate()?;
    Ok(imp.graph)
}

/// Element type and shape of a graph input.
fn value_info_type(v: &ValueInfoProto) -> Result<(DType, Shape)> {
    let what = format!("graph input '{}'", v.name);
    let t = v
        .r#type
        .as_ref()
        .and_then(|t| t.tensor_type.as_ref())
        .ok_or_else(|| Error::Decode(format!("{what} is not a tensor")))?;
    let dtype = DType::from_onnx_code(t.elem_type).ok_or_else(|| {
        Error::Decode(format!(
            "{what} has element type code {} (q8 reads f32, u8, i8, i32, i64, bool)",
            t.elem_type
        ))
    })?;
    let shape = t
        .shape
        .as_ref()
        .ok_or_else(|| Error::Decode(format!("{what} has no shape")))?;
    let dims = shape
        .dim
        .iter()
        .enumerate()
        .map(|(i, d)| match (&d.dim_value, &d.dim_param) {
            (Some(v), _) if *v >= 1 && *v <= MAX_DIM as i64 => Ok(Dim::Known(*v as usize)),
            // Paddle's exporter writes -1 for a dynamic dimension.
            (Some(-1), _) => Ok(Dim::sym(&format!("{}_dim{i}", v.name))),
            (Some(v), _) => Err(Error::Decode(format!(
                "{what} has dimension {v} on axis {i} (must be in 1..={MAX_DIM})"
            ))),
            // "?" (Paddle) is an anonymous dimension, not one shared name.
            (None, Some(p)) if !p.is_empty() && p != "?" => Ok(Dim::sym(p)),
            (None, _) => Ok(Dim::sym(&format!("{}_dim{i}", v.name))),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((dtype, Shape(dims)))
}

/// Import state: the graph so far and the folded shape values.
struct Importer {
    graph: Graph,
    opsets: HashMap<String, i64>,
    opset: i64,
    /// Integer values folded symbolically that contain run-time dims (not graph values).
    syms: HashMap<String, SymTensor>,
}

impl Importer {
    fn node(&mut self, index: usize, n: &NodeProto) -> Result<()> {
        let name = self.node_name(index, n);
        let domain = if n.domain == "ai.onnx" {
            ""
        } else {
            n.domain.as_str()
        };
        if !domain.is_empty() {
            return Err(Error::UnsupportedOp {
                op_type: n.op_type.clone(),
                node: name,
                domain: domain.to_string(),
                opset: self.opsets.get(domain).copied().unwrap_or(0),
            });
        }
        let a = Attrs::new(n, &name);
        let first_out = n
            .output
            .first()
            .filter(|o| !o.is_empty())
            .ok_or_else(|| a.err("has no output"))?;
        if self.graph.value_by_name(first_out).is_some() || self.syms.contains_key(first_out) {
            return Err(a.err(format!("output '{first_out}' is already defined")));
        }
        if n.op_type == "Constant" {
            let t = self.constant_attr(&a)?;
            self.graph.add_constant(first_out, t)?;
            return Ok(());
        }
        if let Some(folded) = self.try_fold(n, &a)? {
            self.define_folded(first_out, folded)?;
            return Ok(());
        }
        if self.try_rewrite(&name, n, &a)? {
            return Ok(());
        }
        let spec =
            crate::ops::lookup(&n.op_type, self.opset).ok_or_else(|| self.unsupported(n, &a))?;
        let cx = ImportCx {
            imp: self,
            node: n,
            attrs: &a,
        };
        let (op, inputs) = (spec.import)(&cx)?;
        let names = self.output_names(&name, n, &op, &inputs, &a)?;
        if let Some(values) = self.evaluate_constant(&name, &op, &inputs)? {
            for (out, t) in names.iter().zip(values) {
                self.graph.add_constant(out, t)?;
            }
            return Ok(());
        }
        self.graph
            .add_node_with_outputs(&name, op, &inputs, &names)?;
        Ok(())
    }

    /// The outputs of a registered op whose inputs are all constants, computed now, so
    /// that shape arithmetic through it (e.g. `Mod` of constants) folds like the rest.
    fn evaluate_constant(
        &self,
        name: &str,
        op: &crate::ir::Op,
        inputs: &[ValueId],
    ) -> Result<Option<Vec<Tensor>>> {
        let crate::ir::Op::Def(d) = op else {
            return Ok(None);
        };
        let consts: Option<Vec<Arc<Tensor>>> = inputs
            .iter()
            .map(|&v| self.graph.value(v).constant.clone())
            .collect();
        let Some(consts) = consts else {
            return Ok(None);
        };
        let tys: Vec<&crate::ir::ValueType> =
            inputs.iter().map(|&v| &self.graph.value(v).ty).collect();
        let outs = d.infer(name, &tys)?;
        let args: Vec<&Tensor> = consts.iter().map(|t| &**t).collect();
        d.eval(name, &args, &outs).map(Some)
    }

    /// Names for the outputs `op` computes: the node's output names, generated names for
    /// omitted optional ones. A named output the op does not compute is an error.
    fn output_names(
        &self,
        name: &str,
        n: &NodeProto,
        op: &crate::ir::Op,
        inputs: &[ValueId],
        a: &Attrs,
    ) -> Result<Vec<String>> {
        let tys: Vec<&crate::ir::ValueType> =
            inputs.iter().map(|&v| &self.graph.value(v).ty).collect();
        let count = crate::ir::infer(op, name, &tys)?.len();
        if let Some(extra) = n.output.iter().skip(count).find(|o| !o.is_empty()) {
            return Err(a.err(format!(
                "output '{extra}' is not supported (q8 computes {count} output(s) of this op)"
            )));
        }
        Ok((0..count)
            .map(|i| match n.output.get(i).filter(|o| !o.is_empty()) {
                Some(o) => o.clone(),
                None => format!("{name}_output_{i}"),
            })
            .collect())
    }

    fn node_name(&self, index: usize, n: &NodeProto) -> String {
        let base = if n.name.is_empty() {
            format!("{}_{index}", n.op_type)
        } else {
            n.name.clone()
        };
        if self.graph.node_by_name(&base).is_none() {
            base
        } else {
            format!("{base}_{index}")
        }
    }

    fn unsupported(&self, n: &NodeProto, a: &Attrs) -> Error {
        match a.err("") {
            Error::Node { node, .. } => Error::UnsupportedOp {
                op_type: n.op_type.clone(),
                node,
                domain: String::new(),
                opset: self.opset,
            },
            other => other,
        }
    }

    /// The value an input name refers to.
    fn value(&self, name: &str, a: &Attrs) -> Result<ValueId> {
        if let Some(v) = self.graph.value_by_name(name) {
            return Ok(v);
        }
        if self.syms.contains_key(name) {
            return Err(a.err(format!(
                "input '{name}' is a shape computed from run-time dimensions; q8 folds such values only into Reshape targets"
            )));
        }
        Err(a.err(format!(
            "input '{name}' is not defined by an earlier node, an initializer or a graph input (dangling edge, cycle or unsorted graph)"
        )))
    }

    /// The constant data behind an input name, if it is a constant.
    fn constant(&self, name: &str) -> Option<Arc<Tensor>> {
        self.graph
            .value_by_name(name)
            .and_then(|v| self.graph.value(v).constant.clone())
    }

    /// The folded integer tensor behind an input name, if any.
    fn sym(&self, name: &str) -> Option<SymTensor> {
        self.syms
            .get(name)
            .cloned()
            .or_else(|| self.constant(name).and_then(|t| SymTensor::from_tensor(&t)))
    }

    fn define_folded(&mut self, name: &str, folded: Folded) -> Result<()> {
        match folded {
            Folded::Tensor(t) => {
                self.graph.add_shared_constant(name, t)?;
            }
            Folded::Sym(s) => match s.to_tensor() {
                Some(t) => {
                    self.graph.add_constant(name, t)?;
                }
                None => {
                    self.syms.insert(name.to_string(), s);
                }
            },
        }
        Ok(())
    }

    /// `Constant`'s value from whichever attribute holds it.
    fn constant_attr(&self, a: &Attrs) -> Result<Tensor> {
        if let Some(t) = a.tensor("value") {
            return tensor::tensor_from_proto(t).map_err(|e| a.err(e.to_string()));
        }
        if a.has("value_float") {
            return Tensor::from_f32(vec![], vec![a.float("value_float", 0.0)]);
        }
        if a.has("value_int") {
            return Tensor::from_i64(vec![], vec![a.int("value_int", 0)]);
        }
        if let Some(v) = a.ints("value_ints") {
            return Tensor::from_i64(vec![v.len()], v.to_vec());
        }
        Err(a.err("has no value attribute q8 reads (value, value_float, value_int, value_ints)"))
    }
}

/// Input `i` of a node, `None` when absent or omitted (`""`).
fn input(n: &NodeProto, i: usize) -> Option<&str> {
    n.input.get(i).map(String::as_str).filter(|s| !s.is_empty())
}

/// The result of folding a node at import.
enum Folded {
    /// A constant (possibly sharing data with the input constant).
    Tensor(Arc<Tensor>),
    /// An integer tensor that may hold run-time dims.
    Sym(SymTensor),
}
