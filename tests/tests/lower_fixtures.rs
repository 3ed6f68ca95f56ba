//! Foreign QDQ models (ONNX Runtime's quantize_static, PyTorch PT2E exported) lowered onto
//! the int8 kernels: logits agree with the runtime that made them.

use q8_frontend::lower::NodeLowering;
use q8_frontend::runtime::{Model, RuntimeOptions};
use q8_tests::{data, read_f32, sqnr_db, top1_agreement};

/// Lowers `model`, checks every conv / linear runs on an int8 kernel, and compares its
/// logits on the 360 test images (one batch) with `reference`.
fn check(model: &str, reference: &str, min_db: f64) {
    let m = Model::load(
        data(model),
        &RuntimeOptions {
            tier: None,
            threads: 2,
        },
    )
    .unwrap();
    let report = m.report();
    eprintln!("{report}");
    let (int8, total) = report.int8_coverage();
    assert_eq!(int8, total, "every conv / linear lowered to int8");
    assert!(total >= 13);
    let f32_nodes = report.fallback_nodes();
    assert!(f32_nodes.is_empty(), "f32 fallback nodes: {f32_nodes:?}");
    let fused_relu = report.nodes.iter().any(|e| {
        matches!(&e.lowering, NodeLowering::Lowered { kernel, detail, .. } if kernel.starts_with("int8 conv") && (detail.contains("relu") || detail.contains("u8 out")))
    });
    assert!(fused_relu);
    let x = read_f32("digits_test_x.npy");
    let out = m.run(std::slice::from_ref(&x)).unwrap();
    let got = out[0].as_f32().unwrap();
    let want = read_f32(reference);
    let want = want.as_f32().unwrap();
    let db = sqnr_db(want, got);
    let agree = top1_agreement(want, got);
    eprintln!("{model} lowered int8 vs {reference}: SQNR {db:.1} dB, top-1 agreement {agree}/360");
    assert!(db >= min_db, "SQNR {db:.1} dB");
    assert!(agree >= 359, "top-1 agreement {agree}/360");
}

#[test]
fn ort_qdq_model_lowers_and_matches_onnx_runtime() {
    check(
        "digits_resnet.ort_qdq.onnx",
        "digits_resnet.ort_qdq_test_logits.npy",
        40.0,
    );
}

#[test]
fn pt2e_qdq_model_lowers_and_matches_pytorch_reference() {
    check(
        "digits_resnet.pt2e_qdq.onnx",
        "digits_resnet.pt2e_reference_test_logits.npy",
        40.0,
    );
}
