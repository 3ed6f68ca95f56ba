//! The quantization flow on small hand-built graphs: pattern matching and observer sharing,
//! user overrides, the coverage report, the QDQ form of `convert`, and clear errors for bad
//! calibration input and models with nothing to quantize.

use q8_frontend::exec::{ExecOptions, Executor};
use q8_frontend::ir::{
    DType, Dim, Graph, GraphBuilder, Op, Shape, Tensor, TensorData, ValueId, Window2d,
};
use q8_frontend::quant::{
    Fp32Reason, NodeStatus, PatternKind, QuantConfig, QuantError, QuantPoint, Setting, Unary,
    annotate, batches, prepare,
};

const ONE: ExecOptions = ExecOptions { threads: 1 };

fn input(b: &mut GraphBuilder, c: usize) -> ValueId {
    b.input(
        "x",
        Shape(vec![Dim::sym("n"), c.into(), 6.into(), 6.into()]),
    )
    .unwrap()
}

/// A 3x3 same-padding conv with deterministic weights.
fn conv(b: &mut GraphBuilder, name: &str, x: ValueId, ic: usize, oc: usize) -> ValueId {
    let w: Vec<f32> = (0..oc * ic * 9)
        .map(|i| ((i * 7919 % 23) as f32 - 11.0) / 40.0)
        .collect();
    let bias = (0..oc).map(|i| i as f32 * 0.05 - 0.1).collect();
    b.conv2d(
        name,
        x,
        w,
        Some(bias),
        oc,
        Window2d::new([3, 3], [1, 1], 1),
        1,
    )
    .unwrap()
}

fn batch(c: usize, n: usize, seed: usize) -> Tensor {
    let data = (0..n * c * 36)
        .map(|i| (((i + seed * 131) * 2654435761usize % 1000) as f32 / 500.0) - 1.0)
        .collect();
    Tensor::from_f32(vec![n, c, 6, 6], data).unwrap()
}

fn node(g: &Graph, name: &str) -> q8_frontend::ir::NodeId {
    g.node_by_name(name).unwrap()
}

/// conv a -> relu; conv b (same input); add(b, relu-out... ) -> relu -> conv c.
fn residual() -> Graph {
    let mut b = GraphBuilder::new("residual");
    let x = input(&mut b, 2);
    let a = conv(&mut b, "a", x, 2, 4);
    let r = b.op("relu_a", Op::Relu, &[a]).unwrap();
    let c1 = conv(&mut b, "b", r, 4, 4);
    let c2 = conv(&mut b, "c", r, 4, 4);
    let s = b.op("add", Op::Add, &[c2, c1]).unwrap();
    let s = b.op("relu", Op::Relu, &[s]).unwrap();
    let y = conv(&mut b, "d", s, 4, 2);
    b.finish(&[y]).unwrap()
}

#[test]
fn residual_add_fuses_the_earlier_conv_and_quantizes_the_other() {
    let g = residual();
    let a = annotate(&g, &QuantConfig::x86_default()).unwrap();
    let kinds: Vec<(String, String)> = a
        .patterns
        .iter()
        .map(|p| (g.node(p.nodes[0]).unwrap().name.clone(), p.kind.name()))
        .collect();
    let has = |n: &str, k: &str| kinds.contains(&(n.to_string(), k.to_string()));
    assert!(has("b", "conv+add+relu"), "{kinds:?}");
    assert!(has("c", "conv"), "{kinds:?}");
    assert!(has("a", "conv+relu") && has("d", "conv"), "{kinds:?}");
    // The unfused conv's output is quantized on its edge into the add.
    let c_out = g.node(node(&g, "c")).unwrap().outputs[0];
    let edge = QuantPoint::Edge {
        value: c_out,
        consumer: node(&g, "add"),
    };
    assert!(a.group_of(edge).is_some());
    // relu_a's output feeds convs b and c: one group (implicit sharing).
    let r = g.node(node(&g, "relu_a")).unwrap().outputs[0];
    let gb = a.group_of(QuantPoint::Edge {
        value: r,
        consumer: node(&g, "b"),
    });
    let gc = a.group_of(QuantPoint::Edge {
        value: r,
        consumer: node(&g, "c"),
    });
    assert!(gb.is_some() && gb == gc);
    // input, relu_a output, c output, relu output.
    assert_eq!(a.groups.len(), 4);
    assert!(
        a.status
            .iter()
            .all(|(_, s)| matches!(s, NodeStatus::Quantized { .. }))
    );
}

#[test]
fn convert_gives_u8_qdq_pairs_and_s8_per_channel_weights() {
    let g = residual();
    let mut p = prepare(&g, &QuantConfig::x86_default(), ONE).unwrap();
    p.calibrate((0..3).map(|s| batch(2, 2, s)), |_| {}).unwrap();
    let q = p.convert().unwrap();
    let qg = &q.graph;
    let mut pairs = 0;
    for (_, n) in qg.nodes() {
        match &n.op {
            Op::QuantizeLinear(s) => {
                assert_eq!((s.dtype, s.axis), (DType::U8, None));
                let readers = qg.consumers(n.outputs[0]);
                assert_eq!(readers.len(), 1);
                let dq = qg.node(readers[0]).unwrap();
                assert!(matches!(&dq.op, Op::DequantizeLinear(d) if d == s));
                pairs += 1;
            }
            Op::Conv(_) => {
                let w = qg.producer(n.inputs[1]).unwrap();
                assert!(
                    matches!(&w.op, Op::DequantizeLinear(s) if s.dtype == DType::I8 && s.axis == Some(0) && s.zero_points.iter().all(|&z| z == 0))
                );
                let q = qg.value(w.inputs[0]).constant.as_ref().unwrap();
                assert!(matches!(q.data(), TensorData::I8(_)));
                let bias = qg.value(n.inputs[2]);
                assert_eq!(bias.ty.dtype, DType::F32);
                assert!(bias.constant.is_some(), "bias stays an f32 constant");
                let x = qg.producer(n.inputs[0]).unwrap();
                assert!(matches!(x.op, Op::DequantizeLinear(_)), "conv input is dq");
            }
            _ => {}
        }
    }
    assert_eq!(pairs, 4);
    assert_eq!(q.weights.len(), 4);
    let out = Executor::new(qg, ONE)
        .unwrap()
        .run(&[batch(2, 3, 9)])
        .unwrap();
    assert_eq!(out[0].shape(), &[3, 2, 6, 6]);
}

#[test]
fn fp32_overrides_are_honoured_and_reported() {
    let g = residual();
    let mut config = QuantConfig::x86_default();
    config.set_node("b", Setting::Fp32);
    let a = annotate(&g, &config).unwrap();
    let status = |name: &str| {
        let id = node(&g, name);
        a.status.iter().find(|(n, _)| *n == id).unwrap().1.clone()
    };
    // b's whole pattern stays fp32; c (next in line for the add) takes over conv+add+relu.
    assert!(matches!(
        status("b"),
        NodeStatus::Fp32(Fp32Reason::Override(_))
    ));
    let c = a.pattern_of(node(&g, "c")).unwrap();
    assert_eq!(c.kind, PatternKind::ConvAddRelu);
    let mut p = prepare(&g, &config, ONE).unwrap();
    let text = p.coverage().to_string();
    assert!(text.contains("user override (node name)"), "{text}");
    let json = p.coverage().to_json();
    assert!(
        json.contains("\"node\":\"b\",\"op\":\"Conv\",\"status\":\"fp32\""),
        "{json}"
    );
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let rows = v["nodes"].as_array().unwrap();
    assert_eq!(rows.len(), p.coverage().nodes.len());
    assert!(
        rows.iter()
            .all(|n| (n["status"] == "quantized") == n["pattern"].is_string())
    );
    assert_eq!(v["quantized"], p.coverage().quantized());
    p.calibrate([batch(2, 1, 0)], |_| {}).unwrap();
    let q = p.convert().unwrap();
    let b_node = q.graph.node(node(&q.graph, "b")).unwrap();
    let w = q.graph.value(b_node.inputs[1]);
    assert_eq!(w.ty.dtype, DType::F32);
    assert!(w.constant.is_some(), "the fp32 conv keeps its f32 weight");
}

#[test]
fn concat_inputs_share_the_first_inputs_quantizer() {
    let mut b = GraphBuilder::new("cat");
    let x = input(&mut b, 2);
    let l = conv(&mut b, "l", x, 2, 3);
    let l = b.op("relu_l", Op::Relu, &[l]).unwrap();
    let r = conv(&mut b, "r", x, 2, 3);
    let cat = b.op("cat", Op::Concat { axis: 1 }, &[l, r]).unwrap();
    let y = conv(&mut b, "out", cat, 6, 2);
    let g = b.finish(&[y]).unwrap();
    let a = annotate(&g, &QuantConfig::x86_default()).unwrap();
    let cat_id = node(&g, "cat");
    let group = |v| {
        a.group_of(QuantPoint::Edge {
            value: v,
            consumer: cat_id,
        })
    };
    assert!(group(l).is_some());
    assert_eq!(group(l), group(r));
    assert_eq!(group(l), a.group_of(QuantPoint::Output(cat)));
    let shared = &a.groups[group(l).unwrap()];
    assert_eq!(shared.values.len(), 3, "both inputs and the output");
    assert_eq!(a.pattern_of(cat_id).unwrap().kind, PatternKind::Propagation);
}

#[test]
fn silu_linear_add_and_mul_patterns() {
    let mut b = GraphBuilder::new("mix");
    let x = input(&mut b, 1);
    let c = conv(&mut b, "c", x, 1, 2);
    let s = b.op("sig", Op::Sigmoid, &[c]).unwrap();
    let silu = b.op("silu", Op::Mul, &[c, s]).unwrap();
    let m = b.op("square", Op::Mul, &[silu, silu]).unwrap();
    let f = b.op("flat", Op::Flatten { axis: 1 }, &[m]).unwrap();
    let fc = b
        .linear("fc", f, vec![0.01; 4 * 72], Some(vec![0.0; 4]), 4)
        .unwrap();
    let skip = b.linear("skip", f, vec![-0.02; 4 * 72], None, 4).unwrap();
    let y = b.op("sum", Op::Add, &[fc, skip]).unwrap();
    let g = b.finish(&[y]).unwrap();
    let a = annotate(&g, &QuantConfig::x86_default()).unwrap();
    let kind = |n: &str| a.pattern_of(node(&g, n)).map(|p| p.kind);
    assert_eq!(kind("c"), Some(PatternKind::ConvUnary(Unary::Silu)));
    assert_eq!(kind("silu"), kind("c"));
    assert_eq!(kind("square"), Some(PatternKind::Mul));
    assert_eq!(kind("fc"), Some(PatternKind::LinearAdd));
    assert_eq!(kind("skip"), Some(PatternKind::Linear));
    // linear+add: the add's other input gets no quantizer.
    let skip_out = g.node(node(&g, "skip")).unwrap().outputs[0];
    let extra = QuantPoint::Edge {
        value: skip_out,
        consumer: node(&g, "sum"),
    };
    assert_eq!(a.group_of(extra), None);
    // Flatten reads a quantized pattern (mul) and feeds linears: propagated.
    assert_eq!(kind("flat"), Some(PatternKind::Propagation));
}

#[test]
fn pool_after_an_fp32_value_stays_fp32_with_the_reason() {
    let mut b = GraphBuilder::new("pool");
    let x = input(&mut b, 1);
    let p = b
        .op(
            "pool",
            Op::MaxPool(q8_frontend::ir::Pool {
                window: Window2d::new([2, 2], [2, 2], 0),
                ceil_mode: false,
            }),
            &[x],
        )
        .unwrap();
    let y = conv(&mut b, "c", p, 1, 1);
    let g = b.finish(&[y]).unwrap();
    let p = prepare(&g, &QuantConfig::x86_default(), ONE).unwrap();
    let row = p
        .coverage()
        .nodes
        .into_iter()
        .find(|n| n.node == "pool")
        .unwrap();
    assert_eq!(row.pattern, None);
    let reason = row.reason.unwrap();
    assert!(
        reason.contains("not the output of a quantized pattern"),
        "{reason}"
    );
}

#[test]
fn nothing_quantizable_is_an_explicit_error_with_the_report() {
    let mut b = GraphBuilder::new("sig");
    let x = input(&mut b, 1);
    let y = b.op("sig", Op::Sigmoid, &[x]).unwrap();
    let g = b.finish(&[y]).unwrap();
    let err = prepare(&g, &QuantConfig::x86_default(), ONE).err().unwrap();
    assert!(matches!(err, QuantError::NothingQuantizable(_)));
    let text = err.to_string();
    assert!(
        text.contains("sig") && text.contains("not the post-op of a quantized conv"),
        "{text}"
    );
    // Everything overridden to fp32 is also "nothing quantizable", naming the override.
    let err = prepare(&residual(), &QuantConfig::with_global(Setting::Fp32), ONE)
        .err()
        .unwrap();
    assert!(err.to_string().contains("user override"), "{err}");
}

#[test]
fn calibration_errors_are_clear() {
    let g = residual();
    let mut p = prepare(&g, &QuantConfig::x86_default(), ONE).unwrap();
    let err = p.convert().unwrap_err().to_string();
    assert!(err.contains("at least one calibration batch"), "{err}");
    let err = p
        .calibrate(Vec::<Tensor>::new(), |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("no calibration batches"), "{err}");
    let scalar = Tensor::from_f32(vec![], vec![1.0]).unwrap();
    assert_eq!(batches(&scalar, 4).count(), 0);
    assert_eq!(batches(&batch(2, 3, 0), 0).count(), 0);
    let err = p
        .calibrate(batches(&scalar, 4), |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("no calibration batches"), "{err}");

    let wrong = Tensor::from_f32(vec![1, 3, 6, 6], vec![0.0; 108]).unwrap();
    let err = p
        .calibrate([batch(2, 1, 0), wrong], |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("batch 1") && err.contains("input 'x'"),
        "{err}"
    );

    let mut nan = batch(2, 1, 0);
    let mut data = nan.as_f32().unwrap().to_vec();
    data[5] = f32::NAN;
    nan = Tensor::from_f32(nan.shape().to_vec(), data).unwrap();
    let err = p.calibrate([nan], |_| {}).unwrap_err().to_string();
    assert!(
        err.contains("input 'x'") && err.contains("NaN") && err.contains("offset 5"),
        "{err}"
    );

    // An intermediate overflowing to infinity is named with the node computing it.
    let mut b = GraphBuilder::new("overflow");
    let x = input(&mut b, 1);
    let sum = b
        .conv2d(
            "sum",
            x,
            vec![1.0; 9],
            None,
            1,
            Window2d::new([3, 3], [1, 1], 1),
            1,
        )
        .unwrap();
    let r = b.op("relu_sum", Op::Relu, &[sum]).unwrap();
    let y = conv(&mut b, "next", r, 1, 1);
    let g = b.finish(&[y]).unwrap();
    let mut p = prepare(&g, &QuantConfig::x86_default(), ONE).unwrap();
    let huge = Tensor::from_f32(vec![1, 1, 6, 6], vec![1e38; 36]).unwrap();
    let err = p.calibrate([huge], |_| {}).unwrap_err().to_string();
    assert!(
        err.contains("'relu_sum_output_0'")
            && err.contains("node 'relu_sum'")
            && err.contains("inf"),
        "{err}"
    );
}

#[test]
fn an_already_quantized_model_is_refused_by_name() {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join("digits_resnet.ort_qdq.onnx");
    let g = q8_frontend::onnx::load(path).unwrap();
    let err = prepare(&g, &QuantConfig::x86_default(), ONE).err().unwrap();
    assert!(matches!(err, QuantError::Model(_)));
    assert!(
        err.to_string().contains("already quantized (node '"),
        "{err}"
    );
}
