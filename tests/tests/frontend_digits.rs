//! digits_resnet through both PyTorch exporters: fp32 logits against PyTorch's within 1e-4,
//! top-1 359/360, with BatchNorm folding on and off, at batch 360 and batch 1.

use q8_frontend::exec::{ExecOptions, Executor};
use q8_frontend::ir::{Graph, Tensor};
use q8_frontend::{npy, onnx, passes};
use q8_tests::{argmax, data, read_f32};

fn labels() -> Vec<i64> {
    npy::read(data("digits_test_y.npy"))
        .unwrap()
        .values::<i64>()
        .unwrap()
        .to_vec()
}

/// Largest |a - b| and the number of rows whose argmax equals `labels`.
fn score(logits: &[f32], reference: &[f32], labels: &[i64]) -> (f32, usize) {
    assert_eq!(logits.len(), reference.len());
    let diff = logits
        .iter()
        .zip(reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    let correct = logits
        .chunks_exact(10)
        .zip(labels)
        .filter(|(row, y)| argmax(row) as i64 == **y)
        .count();
    (diff, correct)
}

fn check_model(file: &str) {
    let graph = onnx::load(data(file)).unwrap();
    let mut folded = graph.clone();
    passes::fold_batch_norm(&mut folded).unwrap();
    let x = read_f32("digits_test_x.npy");
    let reference = read_f32("digits_resnet_test_logits_fp32.npy");
    let ref_logits = reference.as_f32().unwrap();
    let y = labels();
    for (what, g) in [("unfolded", &graph), ("folded", &folded)] {
        let exec = Executor::new(g, ExecOptions { threads: 2 }).unwrap();
        let out = exec.run(std::slice::from_ref(&x)).unwrap();
        assert_eq!(out[0].shape(), &[360, 10]);
        let (diff, correct) = score(out[0].as_f32().unwrap(), ref_logits, &y);
        eprintln!("{file} {what} batch 360: max |diff| {diff:.2e}, top-1 {correct}/360");
        assert!(diff <= 1e-4, "{file} {what}: max |diff| {diff}");
        assert_eq!(correct, 359, "{file} {what}");
    }
    let exec = Executor::new(&folded, ExecOptions { threads: 1 }).unwrap();
    let pixels = x.as_f32().unwrap();
    let mut logits = Vec::with_capacity(3600);
    for img in pixels.chunks_exact(32 * 32) {
        let one = Tensor::from_f32(vec![1, 1, 32, 32], img.to_vec()).unwrap();
        logits.extend_from_slice(exec.run(&[one]).unwrap()[0].as_f32().unwrap());
    }
    let (diff, correct) = score(&logits, ref_logits, &y);
    eprintln!("{file} batch 1: max |diff| {diff:.2e}, top-1 {correct}/360");
    assert!(diff <= 1e-4, "{file} batch 1: max |diff| {diff}");
    assert_eq!(correct, 359);
}

#[test]
fn legacy_exporter_matches_pytorch() {
    check_model("digits_resnet.onnx");
}

#[test]
fn dynamo_exporter_matches_pytorch() {
    check_model("digits_resnet.dynamo.onnx");
}

#[test]
fn both_exports_have_the_same_structure() {
    let kinds = |g: &Graph| {
        let mut k: Vec<&str> = g.nodes().map(|(_, n)| n.op.name()).collect();
        k.sort_unstable();
        k.join(",")
    };
    let legacy = onnx::load(data("digits_resnet.onnx")).unwrap();
    let dynamo = onnx::load(data("digits_resnet.dynamo.onnx")).unwrap();
    assert_eq!(legacy.nodes().count(), dynamo.nodes().count());
    assert!(legacy.node_by_name("/l2/c1/Conv").is_some());
    assert!(dynamo.node_by_name("node_Conv_188").is_some());
    assert!(kinds(&legacy).contains("GlobalAveragePool"));
    assert!(kinds(&dynamo).contains("ReduceMean"));
}
