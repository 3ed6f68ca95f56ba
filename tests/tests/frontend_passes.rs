//! BatchNorm folding (single-reader rule, shared weights, Gemm) and the graph validator.

use q8_frontend::exec::{ExecOptions, Executor};
use q8_frontend::ir::{
    BatchNormParams, DType, Dim, Graph, GraphBuilder, Op, Shape, Tensor, Window2d,
};
use q8_frontend::models::{ResNet18Config, resnet18};
use q8_frontend::passes::fold_batch_norm;

fn run(g: &Graph, x: &Tensor) -> Vec<f32> {
    let exec = Executor::new(g, ExecOptions { threads: 1 }).unwrap();
    exec.run(std::slice::from_ref(x)).unwrap()[0]
        .as_f32()
        .unwrap()
        .to_vec()
}

fn assert_close(a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len(), "output lengths differ");
    let scale = a.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-6);
    let diff = a
        .iter()
        .zip(b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(
        diff <= 1e-5 * scale.max(1.0),
        "max |diff| {diff} (scale {scale})"
    );
}

fn input(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_f32(
        shape.to_vec(),
        (0..n)
            .map(|i| ((i * 37 % 101) as f32) / 50.0 - 1.0)
            .collect(),
    )
    .unwrap()
}

fn bn(c: usize, k: f32) -> BatchNormParams {
    BatchNormParams {
        gamma: (0..c).map(|i| 0.5 + k * i as f32).collect(),
        beta: (0..c).map(|i| 0.1 * i as f32 - k).collect(),
        mean: (0..c).map(|i| 0.05 * i as f32).collect(),
        var: (0..c).map(|i| 0.5 + 0.25 * i as f32).collect(),
        epsilon: 1e-5,
    }
}

#[test]
fn resnet18_folds_all_twenty_batch_norms_without_changing_outputs() {
    let g = resnet18(ResNet18Config {
        num_classes: 10,
        image_size: 32,
        seed: 3,
    })
    .unwrap();
    let mut folded = g.clone();
    let report = fold_batch_norm(&mut folded).unwrap();
    assert_eq!(report.folded.len(), 20, "{report:?}");
    assert!(report.kept.is_empty());
    assert!(report.folded.contains(&(
        "layer2.0.downsample.1".to_string(),
        "layer2.0.downsample.0".to_string()
    )));
    assert_eq!(
        folded
            .nodes()
            .filter(|(_, n)| matches!(n.op, Op::BatchNorm { .. }))
            .count(),
        0
    );
    let x = input(&[2, 3, 32, 32]);
    assert_close(&run(&g, &x), &run(&folded, &x));
}

#[test]
fn a_conv_output_with_two_readers_keeps_its_batch_norm() {
    let mut b = GraphBuilder::new("two_readers");
    let x = b
        .input(
            "x",
            Shape(vec![Dim::sym("n"), 2.into(), 4.into(), 4.into()]),
        )
        .unwrap();
    let w: Vec<f32> = (0..3 * 2 * 9).map(|i| (i % 5) as f32 - 2.0).collect();
    let c = b
        .conv2d(
            "conv",
            x,
            w,
            Some(vec![0.1, 0.2, 0.3]),
            3,
            Window2d::new([3, 3], [1, 1], 1),
            1,
        )
        .unwrap();
    let y = b.batch_norm("bn", c, bn(3, 0.2)).unwrap();
    let r = b.op("relu", Op::Relu, &[c]).unwrap();
    let s = b.op("add", Op::Add, &[y, r]).unwrap();
    let g = b.finish(&[s]).unwrap();
    let mut folded = g.clone();
    let report = fold_batch_norm(&mut folded).unwrap();
    assert!(report.folded.is_empty());
    assert_eq!(report.kept[0].0, "bn");
    assert!(
        report.kept[0].1.contains("other readers"),
        "{}",
        report.kept[0].1
    );
    let x = input(&[1, 2, 4, 4]);
    assert_close(&run(&g, &x), &run(&folded, &x));
}

#[test]
fn shared_weights_are_copied_not_modified() {
    let mut g = Graph::new("shared");
    let x = g
        .add_input("x", DType::F32, Shape::known(&[1, 2, 3, 3]))
        .unwrap();
    let w = g
        .add_constant(
            "w",
            Tensor::from_f32(vec![2, 2, 1, 1], vec![1.0, 2.0, 3.0, 4.0]).unwrap(),
        )
        .unwrap();
    let conv = Op::Conv(q8_frontend::ir::Conv {
        window: Window2d::new([1, 1], [1, 1], 0),
        groups: 1,
    });
    let mut outs = Vec::new();
    for (i, k) in [(0, 0.3f32), (1, 0.7)] {
        let c = g
            .add_node(&format!("conv{i}"), conv.clone(), &[x, w])
            .unwrap()[0];
        let p = bn(2, k);
        let mut ins = vec![c];
        for (j, v) in [p.gamma, p.beta, p.mean, p.var].into_iter().enumerate() {
            ins.push(
                g.add_constant(&format!("bn{i}_{j}"), Tensor::from_f32(vec![2], v).unwrap())
                    .unwrap(),
            );
        }
        outs.push(
            g.add_node(&format!("bn{i}"), Op::BatchNorm { epsilon: 1e-5 }, &ins)
                .unwrap()[0],
        );
    }
    let sum = g.add_node("sum", Op::Add, &outs).unwrap()[0];
    g.set_outputs(&[sum]);
    let mut folded = g.clone();
    assert_eq!(fold_batch_norm(&mut folded).unwrap().folded.len(), 2);
    let w_after = folded
        .value(folded.value_by_name("w").unwrap())
        .constant
        .clone()
        .unwrap();
    assert_eq!(w_after.as_f32().unwrap(), &[1.0, 2.0, 3.0, 4.0]);
    let x = input(&[1, 2, 3, 3]);
    assert_close(&run(&g, &x), &run(&folded, &x));
}

#[test]
fn gemm_batch_norm_folds() {
    let mut b = GraphBuilder::new("linear_bn");
    let x = b.input("x", Shape(vec![Dim::sym("n"), 4.into()])).unwrap();
    let y = b
        .linear(
            "fc",
            x,
            (0..12).map(|i| i as f32 / 6.0 - 1.0).collect(),
            Some(vec![0.5, -0.5, 1.0]),
            3,
        )
        .unwrap();
    let y = b.batch_norm("bn", y, bn(3, 0.4)).unwrap();
    let g = b.finish(&[y]).unwrap();
    let mut folded = g.clone();
    assert_eq!(
        fold_batch_norm(&mut folded).unwrap().folded,
        vec![("bn".to_string(), "fc".to_string())]
    );
    let x = input(&[5, 4]);
    assert_close(&run(&g, &x), &run(&folded, &x));
}

#[test]
fn validator_finds_cycles_and_dangling_edges() {
    let mut g = Graph::new("cycle");
    let x = g.add_input("x", DType::F32, Shape::known(&[1, 2])).unwrap();
    let a = g.add_node("a", Op::Relu, &[x]).unwrap()[0];
    let b = g.add_node("b", Op::Sigmoid, &[a]).unwrap()[0];
    g.set_outputs(&[b]);
    g.validate().unwrap();
    let mut cyclic = g.clone();
    let first = cyclic.node_by_name("a").unwrap();
    cyclic.set_input(first, 0, b).unwrap();
    let msg = cyclic.validate().unwrap_err().to_string();
    assert!(msg.contains("cycle"), "{msg}");
    let mut dangling = g.clone();
    dangling.remove_node(first);
    let msg = dangling.validate().unwrap_err().to_string();
    assert!(msg.contains("'b'") && msg.contains("a_output_0"), "{msg}");
    let mut wrong_type = Graph::new("types");
    let q = wrong_type
        .add_input("q", DType::U8, Shape::known(&[2]))
        .unwrap();
    let msg = wrong_type
        .add_node("r", Op::Relu, &[q])
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("Relu node 'r'") && msg.contains("f32"),
        "{msg}"
    );
}

#[test]
fn a_graph_without_outputs_is_rejected() {
    let mut g = Graph::new("no_outputs");
    let x = g.add_input("x", DType::F32, Shape::known(&[1, 2])).unwrap();
    g.add_node("a", Op::Relu, &[x]).unwrap();
    let msg = g.validate().unwrap_err().to_string();
    assert!(msg.contains("declares no outputs"), "{msg}");
    assert!(Executor::new(&g, ExecOptions { threads: 1 }).is_err());
}

#[test]
fn batch_norms_after_single_input_producers_stay_batch_norms() {
    // DenseNet: BN after a (one-input) Concat, after a pool, after Relu; none can fold,
    // and folding must neither panic nor change the outputs.
    let mut b = GraphBuilder::new("densenet_like");
    let x = b
        .input(
            "x",
            Shape(vec![Dim::sym("n"), 2.into(), 4.into(), 4.into()]),
        )
        .unwrap();
    let cat = b.op("cat", Op::Concat { axis: 1 }, &[x]).unwrap();
    let y = b.batch_norm("bn_cat", cat, bn(2, 0.1)).unwrap();
    let r = b.op("relu", Op::Relu, &[y]).unwrap();
    let z = b.batch_norm("bn_relu", r, bn(2, 0.3)).unwrap();
    let g = b.finish(&[z]).unwrap();
    let mut folded = g.clone();
    let report = fold_batch_norm(&mut folded).unwrap();
    assert!(report.folded.is_empty(), "{report:?}");
    let kept: Vec<&str> = report.kept.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(kept, ["bn_cat", "bn_relu"]);
    assert!(
        report.kept[0].1.contains("Concat 'cat'"),
        "{}",
        report.kept[0].1
    );
    let x = input(&[2, 2, 4, 4]);
    assert_close(&run(&g, &x), &run(&folded, &x));
}
