//! ONNX proto builders for tests: nodes, attributes, tensors, value infos and models; a
//! one-node model runner and the multi-index helpers its references use.
#![allow(dead_code)] // each test binary uses a different subset

use q8_frontend::exec::{ExecOptions, Executor};
use q8_frontend::ir::Tensor;
use q8_frontend::onnx::{self, proto::*};

pub fn node(
    op: &str,
    name: &str,
    inputs: &[&str],
    outputs: &[&str],
    attribute: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        name: name.into(),
        op_type: op.into(),
        domain: String::new(),
        attribute,
    }
}

pub fn ints_attr(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: 7,
        ints: v.to_vec(),
        ..Default::default()
    }
}

pub fn tensor_attr(name: &str, t: TensorProto) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: 4,
        t: Some(t),
        ..Default::default()
    }
}

pub fn i64_tensor(name: &str, dims: &[i64], v: &[i64]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: 7,
        int64_data: v.to_vec(),
        ..Default::default()
    }
}

pub fn f32_tensor(name: &str, dims: &[i64], v: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: 1,
        float_data: v.to_vec(),
        ..Default::default()
    }
}

/// An f32 graph value of known (`Ok`) and named (`Err`) dims.
pub fn value(name: &str, dims: &[Result<i64, &str>]) -> ValueInfoProto {
    typed_value(name, 1, dims)
}

/// A graph value of ONNX element type `elem_type`.
pub fn typed_value(name: &str, elem_type: i32, dims: &[Result<i64, &str>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| match d {
            Ok(v) => Dimension {
                dim_value: Some(*v),
                dim_param: None,
            },
            Err(p) => Dimension {
                dim_value: None,
                dim_param: Some(p.to_string()),
            },
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type,
                shape: Some(TensorShapeProto { dim }),
            }),
        }),
    }
}

/// A model of `nodes` with one f32 graph input and one output.
pub fn model(
    opset: i64,
    nodes: Vec<NodeProto>,
    initializer: Vec<TensorProto>,
    input: ValueInfoProto,
    output: &str,
) -> Vec<u8> {
    onnx::encode_model(&model_proto(
        opset,
        nodes,
        initializer,
        vec![input],
        &[output],
    ))
}

/// A model of `nodes` with the given graph inputs and outputs.
pub fn model_proto(
    opset: i64,
    nodes: Vec<NodeProto>,
    initializer: Vec<TensorProto>,
    input: Vec<ValueInfoProto>,
    outputs: &[&str],
) -> ModelProto {
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: opset,
        }],
        graph: Some(GraphProto {
            node: nodes,
            name: "test".into(),
            initializer,
            input,
            output: outputs.iter().map(|o| value(o, &[])).collect(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// An INT attribute.
pub fn int_attr(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: 2,
        i,
        ..Default::default()
    }
}

/// A FLOAT attribute.
pub fn float_attr(name: &str, f: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: 1,
        f,
        ..Default::default()
    }
}

/// A STRING attribute.
pub fn string_attr(name: &str, s: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: 3,
        s: s.as_bytes().to_vec(),
        ..Default::default()
    }
}

/// One node `op` named "n" reading graph inputs `x0, x1, ...` (the `inputs`, of their own
/// element types and concrete shapes) and then the initializers `consts` (by their names),
/// at `opset`; imports it, runs it on the fp32 executor and returns its `outputs` outputs
/// (any error as its message).
pub fn run_node(
    opset: i64,
    op: &str,
    attrs: Vec<AttributeProto>,
    inputs: &[Tensor],
    consts: Vec<TensorProto>,
    outputs: usize,
) -> Result<Vec<Tensor>, String> {
    let mut names: Vec<String> = (0..inputs.len()).map(|i| format!("x{i}")).collect();
    names.extend(consts.iter().map(|c| c.name.clone()));
    let outs: Vec<String> = (0..outputs).map(|i| format!("y{i}")).collect();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let out_refs: Vec<&str> = outs.iter().map(String::as_str).collect();
    let values = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let dims: Vec<Result<i64, &str>> = t.shape().iter().map(|&d| Ok(d as i64)).collect();
            typed_value(&names[i], t.dtype().onnx_code(), &dims)
        })
        .collect();
    let m = model_proto(
        opset,
        vec![node(op, "n", &name_refs, &out_refs, attrs)],
        consts,
        values,
        &out_refs,
    );
    let g = onnx::import(&m).map_err(|e| e.to_string())?;
    let exec = Executor::new(&g, ExecOptions { threads: 1 }).map_err(|e| e.to_string())?;
    exec.run(inputs).map_err(|e| e.to_string())
}

/// Row-major index of `idx` in `shape`, broadcasting (size-1 axes read index 0; missing
/// leading axes are dropped).
pub fn broadcast_offset(idx: &[usize], shape: &[usize]) -> usize {
    let skip = idx.len() - shape.len();
    shape
        .iter()
        .zip(&idx[skip..])
        .fold(0, |acc, (&d, &i)| acc * d + if d == 1 { 0 } else { i })
}

/// Every multi-index of `shape`, in row-major order.
pub fn indices(shape: &[usize]) -> Vec<Vec<usize>> {
    let mut all = vec![vec![]];
    for &d in shape {
        all = all
            .into_iter()
            .flat_map(|p| (0..d).map(move |i| [p.clone(), vec![i]].concat()))
            .collect();
    }
    all
}
