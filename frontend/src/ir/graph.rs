//! The graph: values (typed edges, some constant) and nodes (typed ops) with stable ids.
//!
//! Nodes are stored with stable [`NodeId`]s; removing a node leaves a hole, so ids held by a
//! pass stay valid while it rewrites. Execution order comes from [`Graph::topo_order`].

use std::collections::HashMap;
use std::sync::Arc;

use super::dtype::DType;
use super::infer::{ValueType, infer};
use super::op::Op;
use super::shape::Shape;
use super::tensor::Tensor;
use crate::error::{Error, Result};

/// Index of a value in its graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId(pub usize);

/// Index of a node in its graph (stable across removals).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub usize);

/// A value: an edge of the graph.
#[derive(Clone, Debug)]
pub struct Value {
    /// Unique name (the ONNX value name when imported).
    pub name: String,
    /// Element type and shape (dims may be symbolic).
    pub ty: ValueType,
    /// The node computing it; `None` for graph inputs and constants.
    pub producer: Option<NodeId>,
    /// The data of a constant (initializer); shared, never mutated in place.
    pub constant: Option<Arc<Tensor>>,
}

/// A node: an op applied to input values, producing output values.
#[derive(Clone, Debug)]
pub struct Node {
    /// Unique name (the ONNX node name when imported).
    pub name: String,
    /// The operator.
    pub op: Op,
    /// Input values, in op order.
    pub inputs: Vec<ValueId>,
    /// Output values.
    pub outputs: Vec<ValueId>,
}

/// A computation graph.
///
/// ```
/// use q8_frontend::ir::{DType, Dim, Graph, Op, Shape, Tensor};
/// let mut g = Graph::new("tiny");
/// let x = g.add_input("x", DType::F32, Shape(vec![Dim::sym("batch"), Dim::Known(4)])).unwrap();
/// let b = g.add_constant("b", Tensor::from_f32(vec![4], vec![1.0; 4]).unwrap()).unwrap();
/// let y = g.add_node("add", Op::Add, &[x, b]).unwrap()[0];
/// let z = g.add_node("relu", Op::Relu, &[y]).unwrap()[0];
/// g.set_outputs(&[z]);
/// g.validate().unwrap();
/// assert_eq!(g.consumers(y), vec![g.value(z).producer.unwrap()]);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Graph {
    /// Graph name.
    pub name: String,
    values: Vec<Value>,
    nodes: Vec<Option<Node>>,
    inputs: Vec<ValueId>,
    outputs: Vec<ValueId>,
    value_names: HashMap<String, ValueId>,
    node_names: HashMap<String, NodeId>,
}

impl Graph {
    /// An empty graph.
    pub fn new(name: &str) -> Graph {
        Graph {
            name: name.to_string(),
            ..Graph::default()
        }
    }

    fn new_value(
        &mut self,
        name: &str,
        ty: ValueType,
        producer: Option<NodeId>,
        constant: Option<Arc<Tensor>>,
    ) -> Result<ValueId> {
        if self.value_names.contains_key(name) {
            return Err(Error::Graph(format!(
                "value name '{name}' is defined twice"
            )));
        }
        let id = ValueId(self.values.len());
        self.values.push(Value {
            name: name.to_string(),
            ty,
            producer,
            constant,
        });
        self.value_names.insert(name.to_string(), id);
        Ok(id)
    }

    /// Adds a graph input.
    ///
    /// # Errors
    /// [`Error::Graph`] when the name is taken.
    pub fn add_input(&mut self, name: &str, dtype: DType, shape: Shape) -> Result<ValueId> {
        let id = self.new_value(name, ValueType::new(dtype, shape), None, None)?;
        self.inputs.push(id);
        Ok(id)
    }

    /// Adds a constant value.
    ///
    /// # Errors
    /// [`Error::Graph`] when the name is taken.
    pub fn add_constant(&mut self, name: &str, tensor: Tensor) -> Result<ValueId> {
        self.add_shared_constant(name, Arc::new(tensor))
    }

    /// Adds a constant value sharing `tensor`'s data.
    ///
    /// # Errors
    /// [`Error::Graph`] when the name is taken.
    pub fn add_shared_constant(&mut self, name: &str, tensor: Arc<Tensor>) -> Result<ValueId> {
        let ty = ValueType::new(tensor.dtype(), Shape::known(tensor.shape()));
        self.new_value(name, ty, None, Some(tensor))
    }

    /// Adds a node; its outputs are named `{name}_output_{i}`. Returns the output values.
    ///
    /// # Errors
    /// As [`Graph::add_node_with_outputs`].
    pub fn add_node(&mut self, name: &str, op: Op, inputs: &[ValueId]) -> Result<Vec<ValueId>> {
        let names = vec![format!("{name}_output_0")];
        self.add_node_with_outputs(name, op, inputs, &names)
    }

    /// Adds a node whose outputs get the given names; infers their types.
    ///
    /// # Errors
    /// [`Error::Graph`] for unknown input ids or taken names; [`Error::Node`] when the
    /// inputs' types do not fit the op.
    pub fn add_node_with_outputs(
        &mut self,
        name: &str,
        op: Op,
        inputs: &[ValueId],
        output_names: &[String],
    ) -> Result<Vec<ValueId>> {
        if self.node_names.contains_key(name) {
            return Err(Error::Graph(format!("node name '{name}' is used twice")));
        }
        if let Some(bad) = inputs.iter().find(|v| v.0 >= self.values.len()) {
            return Err(Error::node(
                op.name(),
                name,
                format!("input value id {} does not exist", bad.0),
            ));
        }
        let tys: Vec<&ValueType> = inputs.iter().map(|v| &self.values[v.0].ty).collect();
        let out_tys = infer(&op, name, &tys)?;
        if out_tys.len() != output_names.len() {
            return Err(Error::node(
                op.name(),
                name,
                format!(
                    "has {} outputs, {} names given",
                    out_tys.len(),
                    output_names.len()
                ),
            ));
        }
        let id = NodeId(self.nodes.len());
        let mut outputs = Vec::with_capacity(out_tys.len());
        for (ty, n) in out_tys.into_iter().zip(output_names) {
            outputs.push(self.new_value(n, ty, Some(id), None)?);
        }
        self.nodes.push(Some(Node {
            name: name.to_string(),
            op,
            inputs: inputs.to_vec(),
            outputs: outputs.clone(),
        }));
        self.node_names.insert(name.to_string(), id);
        Ok(outputs)
    }

    /// Declares the graph outputs.
    pub fn set_outputs(&mut self, outputs: &[ValueId]) {
        self.outputs = outputs.to_vec();
    }

    /// Graph inputs, in order.
    pub fn inputs(&self) -> &[ValueId] {
        &self.inputs
    }

    /// Graph outputs, in order.
    pub fn outputs(&self) -> &[ValueId] {
        &self.outputs
    }

    /// A value. Panics on an id from another graph (ids are only made by this graph).
    pub fn value(&self, id: ValueId) -> &Value {
        &self.values[id.0]
    }

    /// Number of value slots (ids are `0..value_count()`).
    pub fn value_count(&self) -> usize {
        self.values.len()
    }

    /// The value named `name`.
    pub fn value_by_name(&self, name: &str) -> Option<ValueId> {
        self.value_names.get(name).copied()
    }

    /// The node named `name`, if it is still in the graph.
    pub fn node_by_name(&self, name: &str) -> Option<NodeId> {
        self.node_names
            .get(name)
            .copied()
            .filter(|id| self.nodes[id.0].is_some())
    }

    /// A node, if it is still in the graph.
    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.nodes.get(id.0).and_then(Option::as_ref)
    }

    /// Mutable access to a node's op (its inputs and outputs change through the rewrite
    /// methods, which keep the graph's bookkeeping right).
    pub fn op_mut(&mut self, id: NodeId) -> Option<&mut Op> {
        self.nodes
            .get_mut(id.0)
            .and_then(Option::as_mut)
            .map(|n| &mut n.op)
    }

    /// Live nodes with their ids, in insertion order.
    pub fn nodes(&self) -> impl Iterator<Item = (NodeId, &Node)> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_ref().map(|n| (NodeId(i), n)))
    }

    /// The node computing `v`, if any.
    pub fn producer(&self, v: ValueId) -> Option<&Node> {
        self.values[v.0].producer.and_then(|p| self.node(p))
    }

    /// Nodes reading `v` (once per node, in insertion order).
    pub fn consumers(&self, v: ValueId) -> Vec<NodeId> {
        self.nodes()
            .filter(|(_, n)| n.inputs.contains(&v))
            .map(|(id, _)| id)
            .collect()
    }

    /// True when `v` is a graph output.
    pub fn is_output(&self, v: ValueId) -> bool {
        self.outputs.contains(&v)
    }

    /// Replaces input `index` of `node` with `value`.
    ///
    /// # Errors
    /// [`Error::Graph`] for a removed node or an index out of range.
    pub fn set_input(&mut self, node: NodeId, index: usize, value: ValueId) -> Result<()> {
        let n = self.nodes.get_mut(node.0).and_then(Option::as_mut);
        match n.and_then(|n| n.inputs.get_mut(index)) {
            Some(slot) => {
                *slot = value;
                Ok(())
            }
            None => Err(Error::Graph(format!(
                "node {} has no input {index}",
                node.0
            ))),
        }
    }

    /// Replaces all inputs of `node`. Types are not re-inferred: call [`Graph::validate`]
    /// after rewriting.
    ///
    /// # Errors
    /// [`Error::Graph`] for a removed node or an unknown value id.
    pub fn set_inputs(&mut self, node: NodeId, inputs: Vec<ValueId>) -> Result<()> {
        if let Some(bad) = inputs.iter().find(|v| v.0 >= self.values.len()) {
            return Err(Error::Graph(format!("value id {} does not exist", bad.0)));
        }
        match self.nodes.get_mut(node.0).and_then(Option::as_mut) {
            Some(n) => {
                n.inputs = inputs;
                Ok(())
            }
            None => Err(Error::Graph(format!("node {} does not exist", node.0))),
        }
    }

    /// Makes `node` compute `value` as its output `index` (the value's old producer, if any,
    /// loses it). Types are not re-inferred: call [`Graph::validate`] after rewriting.
    ///
    /// # Errors
    /// [`Error::Graph`] for a removed node or an index out of range.
    pub fn set_output(&mut self, node: NodeId, index: usize, value: ValueId) -> Result<()> {
        let n = self.nodes.get_mut(node.0).and_then(Option::as_mut);
        match n.and_then(|n| n.outputs.get_mut(index)) {
            Some(slot) => {
                self.values[slot.0].producer = None;
                *slot = value;
                self.values[value.0].producer = Some(node);
                Ok(())
            }
            None => Err(Error::Graph(format!(
                "node {} has no output {index}",
                node.0
            ))),
        }
    }

    /// Every read of `old` (node inputs and graph outputs) reads `new` instead.
    pub fn replace_uses(&mut self, old: ValueId, new: ValueId) {
        for n in self.nodes.iter_mut().flatten() {
            for i in n.inputs.iter_mut().filter(|i| **i == old) {
                *i = new;
            }
        }
        for o in self.outputs.iter_mut().filter(|o| **o == old) {
            *o = new;
        }
    }

    /// Makes `v`, a value no live node produces, a constant holding `tensor` (constant
    /// folding). Its type becomes the tensor's concrete type.
    ///
    /// # Errors
    /// [`Error::Graph`] when a live node still produces `v`, or the tensor's dtype or rank
    /// differ from the value's.
    pub fn set_constant(&mut self, v: ValueId, tensor: Arc<Tensor>) -> Result<()> {
        let producer = self.values[v.0].producer.and_then(|p| self.node(p));
        let val = &self.values[v.0];
        if producer.is_some()
            || val.ty.dtype != tensor.dtype()
            || val.ty.shape.rank() != tensor.shape().len()
        {
            return Err(Error::Graph(format!(
                "cannot make '{}' ({} {}) a constant of {} {:?}",
                val.name,
                val.ty.dtype,
                val.ty.shape,
                tensor.dtype(),
                tensor.shape()
            )));
        }
        let val = &mut self.values[v.0];
        val.ty.shape = Shape::known(tensor.shape());
        val.producer = None;
        val.constant = Some(tensor);
        Ok(())
    }

    /// Removes a node; its outputs become values without producer.
    pub fn remove_node(&mut self, id: NodeId) {
        if let Some(n) = self.nodes.get_mut(id.0).and_then(Option::take) {
            for o in n.outputs {
                if self.values[o.0].producer == Some(id) {
                    self.values[o.0].producer = None;
                }
            }
            self.node_names.remove(&n.name);
        }
    }

    /// Live nodes in an order where every node follows the producers of its inputs.
    ///
    /// # Errors
    /// [`Error::Graph`] naming a node on a cycle, or a node reading a value nothing defines.
    pub fn topo_order(&self) -> Result<Vec<NodeId>> {
        let mut pending: Vec<usize> = vec![0; self.nodes.len()];
        let mut users: Vec<Vec<NodeId>> = vec![Vec::new(); self.values.len()];
        for (id, n) in self.nodes() {
            for &v in &n.inputs {
                let val = self.values.get(v.0).ok_or_else(|| {
                    Error::Graph(format!(
                        "node '{}' reads value id {} that does not exist",
                        n.name, v.0
                    ))
                })?;
                match val.producer.and_then(|p| self.node(p).map(|_| p)) {
                    Some(_) => {
                        pending[id.0] += 1;
                        users[v.0].push(id);
                    }
                    None if val.constant.is_some() || self.inputs.contains(&v) => {}
                    None => {
                        return Err(Error::Graph(format!(
                            "node '{}' ({}) reads '{}', which no node, input or constant defines",
                            n.name,
                            n.op.name(),
                            val.name
                        )));
                    }
                }
            }
        }
        let mut ready: Vec<NodeId> = self
            .nodes()
            .filter(|(id, _)| pending[id.0] == 0)
            .map(|(id, _)| id)
            .collect();
        ready.reverse();
        let mut order = Vec::with_capacity(self.nodes.len());
        while let Some(id) = ready.pop() {
            order.push(id);
            let n = self.nodes[id.0]
                .as_ref()
                .map(|n| n.outputs.clone())
                .unwrap_or_default();
            for o in n {
                for &u in users[o.0].iter().rev() {
                    pending[u.0] -= 1;
                    if pending[u.0] == 0 {
                        ready.push(u);
                    }
                }
            }
        }
        if let Some((_, n)) = self.nodes().find(|(id, _)| pending[id.0] > 0) {
            return Err(Error::Graph(format!(
                "node '{}' ({}) is on a cycle",
                n.name,
                n.op.name()
            )));
        }
        Ok(order)
    }

    /// Checks the whole graph: no dangling edges, no cycles, each value produced once, every
    /// node's stored output types equal to what its inputs imply, constants matching their
    /// declared types, at least one output, outputs defined.
    ///
    /// # Errors
    /// The first problem found, naming the node or value.
    pub fn validate(&self) -> Result<()> {
        if self.outputs.is_empty() {
            return Err(Error::Graph(format!(
                "graph '{}' declares no outputs",
                self.name
            )));
        }
        let order = self.topo_order()?;
        for (i, v) in self.values.iter().enumerate() {
            if let Some(c) = &v.constant
                && (v.producer.is_some()
                    || c.dtype() != v.ty.dtype
                    || Shape::known(c.shape()) != v.ty.shape)
            {
                return Err(Error::Graph(format!(
                    "constant '{}' disagrees with its declared type or has a producer",
                    v.name
                )));
            }
            if let Some(p) = v.producer {
                let ok = self
                    .node(p)
                    .is_some_and(|n| n.outputs.contains(&ValueId(i)));
                if !ok {
                    return Err(Error::Graph(format!(
                        "value '{}' names a producer that does not output it",
                        v.name
                    )));
                }
            }
        }
        for id in order {
            let n = &self.nodes[id.0]
                .as_ref()
                .expect("topo_order yields live nodes");
            let tys: Vec<&ValueType> = n.inputs.iter().map(|v| &self.values[v.0].ty).collect();
            let expect = infer(&n.op, &n.name, &tys)?;
            let got: Vec<&ValueType> = n.outputs.iter().map(|v| &self.values[v.0].ty).collect();
            if expect.len() != got.len() || expect.iter().zip(&got).any(|(e, g)| e != *g) {
                return Err(Error::node(
                    n.op.name(),
                    &n.name,
                    "stored output types differ from the inferred ones",
                ));
            }
            for &o in &n.outputs {
                if self.values[o.0].producer != Some(id) {
                    return Err(Error::node(
                        n.op.name(),
                        &n.name,
                        format!(
                            "output '{}' is produced by another node",
                            self.values[o.0].name
                        ),
                    ));
                }
            }
        }
        for &o in &self.outputs {
            let v = &self.values[o.0];
            if v.producer.is_none() && v.constant.is_none() && !self.inputs.contains(&o) {
                return Err(Error::Graph(format!(
                    "graph output '{}' is not computed by any node",
                    v.name
                )));
            }
        }
        Ok(())
    }

    /// Re-infers the type of every node output in execution order (after a rewrite that
    /// changed input shapes).
    ///
    /// # Errors
    /// As [`Graph::topo_order`] and [`infer`].
    pub fn reinfer(&mut self) -> Result<()> {
        for id in self.topo_order()? {
            let n = self.nodes[id.0]
                .as_ref()
                .expect("topo_order yields live nodes");
            let tys: Vec<&ValueType> = n.inputs.iter().map(|v| &self.values[v.0].ty).collect();
            let out = infer(&n.op, &n.name, &tys)?;
            let outs = n.outputs.clone();
            for (o, t) in outs.into_iter().zip(out) {
                self.values[o.0].ty = t;
            }
        }
        Ok(())
    }
}
