//! torchvision architectures (MobileNetV3, ShuffleNetV2, ConvNeXt, DenseNet, EfficientNet,
//! ViT, Swin) exported by `torch.onnx.export` (opset 17, dynamic batch,
//! random weights, shrunk to keep the files small; `tests/data/torchvision/export.py`):
//! the fp32 executor matches ONNX Runtime within 1e-4 relative at batch 2 and batch 1,
//! and the X86 recipe quantizes each without error into a graph the int8 runtime runs
//! (ops it does not cover stay fp32 between q/dq).

use q8_frontend::exec::{ExecOptions, Executor};
use q8_frontend::ir::Tensor;
use q8_frontend::onnx;
use q8_frontend::quant::{QuantConfig, batches, prepare};
use q8_frontend::runtime::{Model, RuntimeOptions};
use q8_tests::{data, max_rel_err, read_f32};

fn first_row(t: &Tensor) -> Tensor {
    let mut shape = t.shape().to_vec();
    let n = t.len() / shape[0];
    shape[0] = 1;
    Tensor::from_f32(shape, t.as_f32().unwrap()[..n].to_vec()).unwrap()
}

fn check(name: &str) {
    let graph = onnx::load(data(&format!("torchvision/{name}.onnx"))).unwrap();
    let x = read_f32(&format!("torchvision/{name}.in.npy"));
    let want = read_f32(&format!("torchvision/{name}.ort.npy"));
    let exec = Executor::new(&graph, ExecOptions { threads: 2 }).unwrap();
    for (x, want) in [(x.clone(), want.clone()), (first_row(&x), first_row(&want))] {
        let got = exec.run(std::slice::from_ref(&x)).unwrap().remove(0);
        assert_eq!(got.shape(), want.shape(), "{name}");
        let err = max_rel_err(want.as_f32().unwrap(), got.as_f32().unwrap());
        eprintln!(
            "{name} batch {}: fp32 relative error vs ONNX Runtime {err:.2e}",
            x.shape()[0]
        );
        assert!(err <= 1e-4, "{name}: relative error {err:.2e}");
    }
    let mut prepared =
        prepare(&graph, &QuantConfig::default(), ExecOptions { threads: 2 }).unwrap();
    prepared.calibrate(batches(&x, 2), |_| {}).unwrap();
    let quantized = prepared.convert().unwrap();
    let coverage = quantized.coverage();
    let (int8, total) = (coverage.quantized(), coverage.nodes.len());
    assert!(int8 > 0, "{name}: nothing quantized");
    let model = Model::from_graph(
        &quantized.graph,
        &RuntimeOptions {
            tier: None,
            threads: 2,
        },
    )
    .unwrap();
    let got = model.run(std::slice::from_ref(&x)).unwrap().remove(0);
    assert_eq!(got.shape(), want.shape(), "{name} int8");
    let sqnr = q8_tests::sqnr_db(want.as_f32().unwrap(), got.as_f32().unwrap());
    eprintln!("{name}: {int8} of {total} nodes int8, int8 SQNR vs ORT fp32 {sqnr:.1} dB");
}

#[test]
fn mobilenet_v3_small() {
    check("mobilenet_v3_small_shrunk");
}

#[test]
fn shufflenet_v2() {
    check("shufflenet_v2");
}

#[test]
fn convnext() {
    check("convnext_tiny_shrunk");
}

#[test]
fn densenet() {
    check("densenet_shrunk");
}

#[test]
fn efficientnet_b0() {
    check("efficientnet_b0_shrunk");
}

#[test]
fn vision_transformer() {
    check("vit_shrunk");
}

#[test]
fn swin_transformer() {
    check("swin_shrunk");
}
