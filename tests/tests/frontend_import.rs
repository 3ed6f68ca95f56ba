//! ONNX import features beyond the fixtures, on small models written with the proto
//! messages: shape sub-graph folding with a dynamic batch, Constant nodes, typed-field
//! initializers, Clip bounds from inputs, Squeeze/Unsqueeze, foreign domains.

use q8_frontend::error::Error;
use q8_frontend::exec::{ExecOptions, Executor};
use q8_frontend::ir::{Dim, Op, Tensor};
use q8_frontend::onnx::{self, proto::*};

mod onnx_support;

use onnx_support::{f32_tensor, i64_tensor, ints_attr, model, node, tensor_attr, value};

fn run(bytes: &[u8], x: Tensor) -> Tensor {
    let g = onnx::load_bytes(bytes).unwrap();
    Executor::new(&g, ExecOptions { threads: 1 })
        .unwrap()
        .run(&[x])
        .unwrap()
        .remove(0)
}

#[test]
fn shape_subgraph_folds_with_a_dynamic_batch() {
    // Reshape(x, Concat(Unsqueeze(Gather(Shape(x), 0)), [-1])): a flatten PyTorch writes.
    let nodes = vec![
        node("Shape", "shape", &["x"], &["s"], vec![]),
        node(
            "Constant",
            "zero",
            &[],
            &["i0"],
            vec![tensor_attr("value", i64_tensor("", &[], &[0]))],
        ),
        node("Gather", "gather", &["s", "i0"], &["n"], vec![]),
        node("Unsqueeze", "unsqueeze", &["n", "axes0"], &["n1"], vec![]),
        node(
            "Concat",
            "concat",
            &["n1", "minus1"],
            &["target"],
            vec![AttributeProto {
                name: "axis".into(),
                r#type: 2,
                ..Default::default()
            }],
        ),
        node("Reshape", "reshape", &["x", "target"], &["y"], vec![]),
    ];
    let inits = vec![
        i64_tensor("axes0", &[1], &[0]),
        i64_tensor("minus1", &[1], &[-1]),
    ];
    let bytes = model(
        13,
        nodes,
        inits,
        value("x", &[Err("batch"), Ok(2), Ok(3), Ok(3)]),
        "y",
    );
    let g = onnx::load_bytes(&bytes).unwrap();
    assert_eq!(g.nodes().count(), 1, "only the Reshape remains");
    assert_eq!(
        g.value(g.outputs()[0]).ty.shape.dims(),
        &[Dim::sym("batch"), Dim::Known(18)]
    );
    let data: Vec<f32> = (0..54).map(|i| i as f32).collect();
    let y = run(
        &bytes,
        Tensor::from_f32(vec![3, 2, 3, 3], data.clone()).unwrap(),
    );
    assert_eq!(y.shape(), &[3, 18]);
    assert_eq!(y.as_f32().unwrap(), &data[..]);
}

#[test]
fn constants_typed_initializers_and_clip_inputs() {
    // Clip(Mul(x, w), Constant(0), max) with w in float_data: a ReLU6 after a scale.
    let nodes = vec![
        node("Mul", "mul", &["x", "w"], &["m"], vec![]),
        node(
            "Constant",
            "lo",
            &[],
            &["zero"],
            vec![AttributeProto {
                name: "value_float".into(),
                r#type: 1,
                f: 0.0,
                ..Default::default()
            }],
        ),
        node("Clip", "relu6", &["m", "zero", "six"], &["y"], vec![]),
    ];
    let inits = vec![
        f32_tensor("w", &[3], &[1.0, 10.0, -1.0]),
        f32_tensor("six", &[], &[6.0]),
    ];
    let bytes = model(17, nodes, inits, value("x", &[Ok(1), Ok(3)]), "y");
    let g = onnx::load_bytes(&bytes).unwrap();
    let clip = g.node_by_name("relu6").and_then(|id| g.node(id)).unwrap();
    assert_eq!(clip.op, Op::Clip { min: 0.0, max: 6.0 });
    let y = run(
        &bytes,
        Tensor::from_f32(vec![1, 3], vec![2.0, 2.0, 2.0]).unwrap(),
    );
    assert_eq!(y.as_f32().unwrap(), &[2.0, 6.0, 0.0]);
}

#[test]
fn squeeze_unsqueeze_of_activations_become_reshapes() {
    let nodes = vec![
        node("Unsqueeze", "u", &["x", "axes"], &["a"], vec![]),
        node("Squeeze", "s", &["a", "axes"], &["y"], vec![]),
    ];
    let bytes = model(
        21,
        nodes,
        vec![i64_tensor("axes", &[1], &[-1])],
        value("x", &[Err("n"), Ok(4)]),
        "y",
    );
    let g = onnx::load_bytes(&bytes).unwrap();
    assert!(g.nodes().all(|(_, n)| matches!(n.op, Op::Reshape { .. })));
    let y = run(
        &bytes,
        Tensor::from_f32(vec![2, 4], (0..8).map(|i| i as f32).collect()).unwrap(),
    );
    assert_eq!(y.shape(), &[2, 4]);
}

#[test]
fn foreign_domains_and_missing_required_attributes_are_named() {
    let mut fused = node("FusedConv", "fc0", &["x"], &["y"], vec![]);
    fused.domain = "com.microsoft".into();
    let err =
        onnx::load_bytes(&model(13, vec![fused], vec![], value("x", &[Ok(1)]), "y")).unwrap_err();
    assert!(
        matches!(&err, Error::UnsupportedOp { domain, node, .. } if domain == "com.microsoft" && node == "fc0"),
        "{err}"
    );
    let pool = node("MaxPool", "mp", &["x"], &["y"], vec![]);
    let msg = onnx::load_bytes(&model(
        13,
        vec![pool],
        vec![],
        value("x", &[Ok(1), Ok(1), Ok(4), Ok(4)]),
        "y",
    ))
    .unwrap_err()
    .to_string();
    assert!(
        msg.contains("MaxPool node 'mp'") && msg.contains("kernel_shape"),
        "{msg}"
    );
    let conv = node(
        "Conv",
        "c",
        &["x", "w"],
        &["y"],
        vec![ints_attr("pads", &[1, 1])],
    );
    let w = f32_tensor("w", &[1, 1, 3, 3], &[1.0; 9]);
    let msg = onnx::load_bytes(&model(
        13,
        vec![conv],
        vec![w],
        value("x", &[Ok(1), Ok(1), Ok(4), Ok(4)]),
        "y",
    ))
    .unwrap_err()
    .to_string();
    assert!(
        msg.contains("Conv node 'c'") && msg.contains("pads"),
        "{msg}"
    );
}

#[test]
fn auto_pad_same_upper_conv_imports() {
    let conv = node(
        "Conv",
        "c",
        &["x", "w"],
        &["y"],
        vec![
            AttributeProto {
                name: "auto_pad".into(),
                r#type: 3,
                s: b"SAME_UPPER".to_vec(),
                ..Default::default()
            },
            ints_attr("strides", &[2, 2]),
        ],
    );
    let w = f32_tensor("w", &[1, 1, 3, 3], &[1.0; 9]);
    let bytes = model(
        13,
        vec![conv],
        vec![w],
        value("x", &[Ok(1), Ok(1), Ok(4), Ok(4)]),
        "y",
    );
    let y = run(
        &bytes,
        Tensor::from_f32(vec![1, 1, 4, 4], vec![1.0; 16]).unwrap(),
    );
    assert_eq!(y.as_f32().unwrap(), &[9.0, 6.0, 6.0, 4.0]);
}
