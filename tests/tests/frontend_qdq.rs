//! The two foreign QDQ fixtures import and run in reference mode (dq -> fp32 op -> q with
//! `int8-math.md` quantize semantics); their logits agree with the runtimes that made them.

use q8_frontend::exec::{ExecOptions, Executor};
use q8_frontend::ir::{DType, Op, Tensor};
use q8_frontend::onnx;
use q8_tests::{data, read_f32, sqnr_db, top1_agreement};

#[test]
fn ort_qdq_model_imports_and_matches_onnx_runtime() {
    let graph = onnx::load(data("digits_resnet.ort_qdq.onnx")).unwrap();
    let count = |name: &str| graph.nodes().filter(|(_, n)| n.op.name() == name).count();
    assert!(count("QuantizeLinear") > 10 && count("DequantizeLinear") > 10);
    let per_axis_s8 = graph.nodes().any(|(_, n)| {
        matches!(&n.op, Op::DequantizeLinear(q) if q.axis == Some(0) && q.dtype == DType::I8 && q.scales.len() > 1)
    });
    assert!(per_axis_s8, "weights are per-channel s8");
    let i32_bias = graph
        .nodes()
        .any(|(_, n)| matches!(&n.op, Op::DequantizeLinear(q) if q.dtype == DType::I32));
    assert!(i32_bias, "ORT quantizes biases to i32");
    let exec = Executor::new(&graph, ExecOptions { threads: 2 }).unwrap();
    let out = exec.run(&[read_f32("digits_test_x.npy")]).unwrap();
    let reference = read_f32("digits_resnet.ort_qdq_test_logits.npy");
    let (got, want) = (out[0].as_f32().unwrap(), reference.as_f32().unwrap());
    let db = sqnr_db(want, got);
    let agree = top1_agreement(want, got);
    eprintln!(
        "ORT QDQ reference execution vs ONNX Runtime: SQNR {db:.1} dB, top-1 agreement {agree}/360"
    );
    assert!(db >= 55.0, "SQNR {db} (measured 62.4 dB)");
    assert_eq!(agree, 360);
}

#[test]
fn pt2e_qdq_model_imports_and_matches_pytorch_reference() {
    let graph = onnx::load(data("digits_resnet.pt2e_qdq.onnx")).unwrap();
    let q = graph
        .nodes()
        .filter(|(_, n)| matches!(n.op, Op::QuantizeLinear(_)))
        .count();
    assert!(q >= 12, "{q} QuantizeLinear nodes");
    let exec = Executor::new(&graph, ExecOptions { threads: 1 }).unwrap();
    let x = read_f32("digits_test_x.npy");
    let mut logits = Vec::with_capacity(3600);
    for img in x.as_f32().unwrap().chunks_exact(32 * 32) {
        let one = Tensor::from_f32(vec![1, 1, 32, 32], img.to_vec()).unwrap();
        logits.extend_from_slice(exec.run(&[one]).unwrap()[0].as_f32().unwrap());
    }
    let reference = read_f32("digits_resnet.pt2e_reference_test_logits.npy");
    let want = reference.as_f32().unwrap();
    let db = sqnr_db(want, &logits);
    let agree = top1_agreement(want, &logits);
    eprintln!(
        "PT2E QDQ reference execution vs PyTorch convert_pt2e: SQNR {db:.1} dB, top-1 agreement {agree}/360"
    );
    assert!(db >= 70.0, "SQNR {db} (measured 81.7 dB)");
    assert_eq!(agree, 360);
}
