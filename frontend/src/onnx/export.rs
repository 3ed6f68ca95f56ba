//! [`Graph`] -> ONNX (opset 17): the inverse of import, so a graph q8 built or rewrote (e.g.
//! a converted QDQ model) can be saved and read back, or handed to another runtime. Node and
//! value names are kept; attribute-like operands (Clip bounds, Reshape targets, q/dq
//! parameters) become initializers named after their node.

use std::collections::HashSet;
use std::path::Path;

use super::proto::{
    AttributeProto, Dimension, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, TypeProtoTensor, ValueInfoProto,
};
use crate::error::{Error, Result};
use crate::ir::{
    Dim, Graph, Node, Op, Padding, QuantSpec, ReshapeDim, Tensor, TensorData, ValueId, ValueType,
    Window2d,
};
use crate::ops::AttrValue;

/// The opset written.
pub const EXPORT_OPSET: i64 = 17;

/// Writes `graph` as an ONNX file.
///
/// # Errors
/// As [`to_model`], or [`Error::Io`] when the file cannot be written.
pub fn save(graph: &Graph, path: impl AsRef<Path>) -> Result<()> {
    let bytes = super::encode_model(&to_model(graph)?);
    std::fs::write(path.as_ref(), bytes).map_err(|source| Error::Io {
        path: path.as_ref().display().to_string(),
        source,
    })
}

/// Converts `graph` to ONNX messages (opset [`EXPORT_OPSET`]).
///
/// ```
/// use q8_frontend::ir::{Dim, GraphBuilder, Op, Shape};
/// use q8_frontend::onnx;
/// let mut b = GraphBuilder::new("g");
/// let x = b.input("x", Shape(vec![Dim::sym("batch"), 4.into()])).unwrap();
/// let y = b.op("relu", Op::Relu, &[x]).unwrap();
/// let g = b.finish(&[y]).unwrap();
/// let back = onnx::load_bytes(&onnx::encode_model(&onnx::to_model(&g).unwrap())).unwrap();
/// assert!(back.node_by_name("relu").is_some());
/// ```
///
/// # Errors
/// [`Error::Node`] for an op ONNX opset 17 cannot express (a Reshape copying a symbolic
/// dimension to another position, an AveragePool with dilation).
pub fn to_model(graph: &Graph) -> Result<ModelProto> {
    let mut ex = Exporter {
        graph,
        out: GraphProto {
            name: graph.name.clone(),
            ..GraphProto::default()
        },
        names: HashSet::new(),
    };
    for &i in graph.inputs() {
        let v = graph.value(i);
        ex.out.input.push(value_info(&v.name, &v.ty));
    }
    let mut written = HashSet::new();
    for id in graph.topo_order()? {
        let node = graph.node(id).expect("topo_order yields live nodes");
        for &v in &node.inputs {
            if let Some(t) = &graph.value(v).constant
                && written.insert(v)
            {
                ex.out
                    .initializer
                    .push(tensor_proto(&graph.value(v).name, t));
            }
        }
        let n = ex.node(node)?;
        ex.out.node.push(n);
    }
    for &o in graph.outputs() {
        let v = graph.value(o);
        if let Some(t) = &v.constant
            && written.insert(o)
        {
            ex.out.initializer.push(tensor_proto(&v.name, t));
        }
        ex.out.output.push(value_info(&v.name, &v.ty));
    }
    Ok(ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: EXPORT_OPSET,
        }],
        producer_name: "q8".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(ex.out),
    })
}

struct Exporter<'g> {
    graph: &'g Graph,
    out: GraphProto,
    /// Names of initializers added for attribute-like operands.
    names: HashSet<String>,
}

impl Exporter<'_> {
    /// Adds an initializer for an attribute-like operand of `node`; returns its name.
    fn operand(&mut self, node: &str, what: &str, t: Tensor) -> String {
        let mut name = format!("{node}.{what}");
        let mut i = 1;
        while self.graph.value_by_name(&name).is_some() || self.names.contains(&name) {
            name = format!("{node}.{what}_{i}");
            i += 1;
        }
        self.names.insert(name.clone());
        self.out.initializer.push(tensor_proto(&name, &t));
        name
    }

    fn qparams(&mut self, node: &str, q: &QuantSpec) -> Result<(Vec<String>, Vec<AttributeProto>)> {
        let dims = if q.axis.is_some() {
            vec![q.scales.len()]
        } else {
            vec![]
        };
        let zp = match q.dtype {
            crate::ir::DType::U8 => {
                TensorData::U8(q.zero_points.iter().map(|&z| z as u8).collect())
            }
            crate::ir::DType::I8 => {
                TensorData::I8(q.zero_points.iter().map(|&z| z as i8).collect())
            }
            _ => TensorData::I32(q.zero_points.clone()),
        };
        let scale = self.operand(
            node,
            "scale",
            Tensor::from_f32(dims.clone(), q.scales.clone())?,
        );
        let zero_point = self.operand(node, "zero_point", Tensor::new(dims, zp)?);
        let attrs = q
            .axis
            .map(|a| vec![int("axis", a as i64)])
            .unwrap_or_default();
        Ok((vec![scale, zero_point], attrs))
    }

    fn node(&mut self, node: &Node) -> Result<NodeProto> {
        let g = self.graph;
        let name_of = |v: &ValueId| g.value(*v).name.clone();
        let mut inputs: Vec<String> = node.inputs.iter().map(name_of).collect();
        let fail = |msg: &str| Error::node(node.op.name(), &node.name, msg.to_string());
        let mut op_type = node.op.name().to_string();
        let attribute = match &node.op {
            Op::Conv(c) => {
                let spatial = g.value(node.inputs[0]).ty.shape.rank().saturating_sub(2);
                let mut a = window_attrs(&c.window, spatial.clamp(1, 2));
                a.push(int("group", c.groups as i64));
                a
            }
            Op::MaxPool(p) => {
                let mut a = window_attrs(&p.window, 2);
                a.push(int("ceil_mode", p.ceil_mode as i64));
                a
            }
            Op::AveragePool {
                pool,
                count_include_pad,
            } => {
                if pool.window.dilations != [1, 1] {
                    return Err(fail("AveragePool with dilation needs opset 19"));
                }
                let mut a: Vec<AttributeProto> = window_attrs(&pool.window, 2)
                    .into_iter()
                    .filter(|a| a.name != "dilations")
                    .collect();
                a.push(int("ceil_mode", pool.ceil_mode as i64));
                a.push(int("count_include_pad", *count_include_pad as i64));
                a
            }
            Op::Gemm(gm) => vec![
                float("alpha", gm.alpha),
                float("beta", gm.beta),
                int("transA", gm.trans_a as i64),
                int("transB", gm.trans_b as i64),
            ],
            Op::BatchNorm { epsilon } => vec![float("epsilon", *epsilon)],
            Op::Clip { min, max } => {
                inputs.push(self.operand(&node.name, "min", Tensor::from_f32(vec![], vec![*min])?));
                inputs.push(self.operand(&node.name, "max", Tensor::from_f32(vec![], vec![*max])?));
                vec![]
            }
            Op::ReduceMean { axes, keepdims } => vec![
                ints("axes", axes.iter().map(|&a| a as i64).collect()),
                int("keepdims", *keepdims as i64),
            ],
            Op::Flatten { axis } => vec![int("axis", *axis as i64)],
            Op::Concat { axis } => vec![int("axis", *axis as i64)],
            Op::Reshape { target } => {
                let shape = &g.value(node.inputs[0]).ty.shape;
                // One symbolic dim moved to another axis (an Unsqueeze [B, S] -> [B, 1, 1, S])
                // is written as -1 when the target has no other inferred dim.
                let mut infer_free = !target.contains(&ReshapeDim::Infer);
                let mut dims = Vec::with_capacity(target.len());
                for (pos, t) in target.iter().enumerate() {
                    dims.push(match t {
                        ReshapeDim::Fixed(n) => *n as i64,
                        ReshapeDim::Infer => -1,
                        ReshapeDim::CopyInput(a) if *a == pos => 0,
                        ReshapeDim::CopyInput(a) => match shape.dims().get(*a) {
                            Some(Dim::Known(n)) => *n as i64,
                            _ if std::mem::take(&mut infer_free) => -1,
                            _ => return Err(fail("two symbolic dimensions moved to other axes cannot be written as one Reshape target")),
                        },
                    });
                }
                let len = dims.len();
                inputs.push(self.operand(&node.name, "shape", Tensor::from_i64(vec![len], dims)?));
                vec![]
            }
            Op::QuantizeLinear(q) | Op::DequantizeLinear(q) => {
                let (names, attrs) = self.qparams(&node.name, q)?;
                inputs.extend(names);
                attrs
            }
            Op::Def(d) => {
                let e = d.export(&node.name)?;
                for operand in e.operands {
                    inputs.push(match operand {
                        Some((role, t)) => self.operand(&node.name, role, t),
                        None => String::new(),
                    });
                }
                inputs = d.export_inputs(inputs);
                e.attrs.into_iter().map(|(k, v)| attr(k, v)).collect()
            }
            Op::MatMul
            | Op::Relu
            | Op::HardSwish
            | Op::Sigmoid
            | Op::Mul
            | Op::Add
            | Op::GlobalAveragePool
            | Op::Identity => vec![],
        };
        if let Op::BatchNorm { .. } = node.op {
            op_type = "BatchNormalization".into();
        }
        Ok(NodeProto {
            input: inputs,
            output: node.outputs.iter().map(name_of).collect(),
            name: node.name.clone(),
            op_type,
            domain: String::new(),
            attribute,
        })
    }
}

fn window_attrs(w: &Window2d, spatial: usize) -> Vec<AttributeProto> {
    // A 1-D window is the W axis of a `1 x k` window over `H = 1`.
    let axes = 2 - spatial..2;
    let list = |v: &[usize; 2]| v[axes.clone()].iter().map(|&x| x as i64).collect();
    let mut a = vec![
        ints("kernel_shape", list(&w.kernel)),
        ints("strides", list(&w.strides)),
        ints("dilations", list(&w.dilations)),
    ];
    match &w.padding {
        Padding::Explicit { begin, end } => {
            let mut pads: Vec<i64> = list(begin);
            pads.extend(list(end));
            a.push(ints("pads", pads));
        }
        Padding::SameUpper => a.push(string("auto_pad", "SAME_UPPER")),
        Padding::SameLower => a.push(string("auto_pad", "SAME_LOWER")),
        Padding::Valid => a.push(string("auto_pad", "VALID")),
    }
    a
}

/// ONNX `AttributeProto.AttributeType` codes.
const FLOAT: i32 = 1;
const INT: i32 = 2;
const STRING: i32 = 3;
const INTS: i32 = 7;

fn attr(name: &str, v: AttrValue) -> AttributeProto {
    match v {
        AttrValue::Int(i) => int(name, i),
        AttrValue::Ints(v) => ints(name, v),
        AttrValue::Float(f) => float(name, f),
        AttrValue::Str(s) => string(name, &s),
    }
}

fn int(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: INT,
        i,
        ..AttributeProto::default()
    }
}

fn ints(name: &str, v: Vec<i64>) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: INTS,
        ints: v,
        ..AttributeProto::default()
    }
}

fn float(name: &str, f: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: FLOAT,
        f,
        ..AttributeProto::default()
    }
}

fn string(name: &str, s: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: STRING,
        s: s.as_bytes().to_vec(),
        ..AttributeProto::default()
    }
}

fn value_info(name: &str, ty: &ValueType) -> ValueInfoProto {
    let dim = ty
        .shape
        .dims()
        .iter()
        .map(|d| match d {
            Dim::Known(n) => Dimension {
                dim_value: Some(*n as i64),
                dim_param: None,
            },
            Dim::Sym(s) => Dimension {
                dim_value: None,
                dim_param: Some(s.to_string()),
            },
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: ty.dtype.onnx_code(),
                shape: Some(TensorShapeProto { dim }),
            }),
        }),
    }
}

fn tensor_proto(name: &str, t: &Tensor) -> TensorProto {
    let raw_data: Vec<u8> = match t.data() {
        TensorData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::U8(v) => v.clone(),
        TensorData::I8(v) => v.iter().map(|&x| x as u8).collect(),
        TensorData::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::Bool(v) => v.iter().map(|&x| u8::from(x)).collect(),
    };
    TensorProto {
        dims: t.shape().iter().map(|&d| d as i64).collect(),
        data_type: t.dtype().onnx_code(),
        name: name.into(),
        raw_data,
        ..TensorProto::default()
    }
}
