//! Real pretrained models (PaddleOCR, Apache-2.0, opsets 11 and 12, dynamic N/H/W) run in
//! the fp32 executor at two input sizes each and match ONNX Runtime within 1e-4 relative
//! (max abs error / max abs value). References: `tests/data/real/make_refs.py`.

use q8_frontend::exec::{ExecOptions, Executor};
use q8_frontend::onnx;
use q8_tests::{data, max_rel_err, read_f32};

fn check(model: &str, tags: &[&str]) {
    let graph = onnx::load(data(&format!("real/{model}_infer.onnx"))).unwrap();
    let exec = Executor::new(&graph, ExecOptions { threads: 2 }).unwrap();
    for tag in tags {
        let x = read_f32(&format!("real/{model}_{tag}.in.npy"));
        let want = read_f32(&format!("real/{model}_{tag}.ort.npy"));
        let got = exec.run(&[x]).unwrap().remove(0);
        assert_eq!(got.shape(), want.shape(), "{model} {tag}");
        let err = max_rel_err(want.as_f32().unwrap(), got.as_f32().unwrap());
        eprintln!("{model} {tag}: fp32 relative error vs ONNX Runtime {err:.2e}");
        assert!(err <= 1e-4, "{model} {tag}: relative error {err:.2e}");
    }
}

#[test]
fn ppocr_v4_detector_matches_onnx_runtime_at_two_sizes() {
    check("ch_PP-OCRv4_det", &["1x3x96x128", "1x3x128x160"]);
}

#[test]
fn ppocr_direction_classifier_matches_onnx_runtime_at_two_sizes() {
    check("ch_ppocr_mobile_v2.0_cls", &["1x3x48x192", "2x3x48x160"]);
}

#[test]
fn ppocr_models_quantize_with_every_fp32_node_explained_and_run_int8() {
    use q8_frontend::quant::{QuantConfig, batches, prepare};
    use q8_frontend::runtime::{Model, RuntimeOptions};
    for (model, tag) in [
        ("ch_ppocr_mobile_v2.0_cls", "2x3x48x160"),
        ("ch_PP-OCRv4_det", "1x3x96x128"),
    ] {
        let graph = onnx::load(data(&format!("real/{model}_infer.onnx"))).unwrap();
        let x = read_f32(&format!("real/{model}_{tag}.in.npy"));
        let mut prepared =
            prepare(&graph, &QuantConfig::default(), ExecOptions { threads: 2 }).unwrap();
        prepared.calibrate(batches(&x, 2), |_| {}).unwrap();
        let quantized = prepared.convert().unwrap();
        let coverage = quantized.coverage();
        assert!(coverage.quantized() > 0, "{model}: nothing quantized");
        for n in &coverage.nodes {
            assert!(
                n.pattern.is_some() || n.reason.as_deref().is_some_and(|r| !r.is_empty()),
                "{model}: fp32 node '{}' ({}) has no reason",
                n.node,
                n.op
            );
        }
        let registered_fp32 = coverage
            .nodes
            .iter()
            .find(|n| n.op == "HardSigmoid")
            .and_then(|n| n.reason.clone())
            .unwrap_or_default();
        assert!(registered_fp32.contains("HardSigmoid"), "{registered_fp32}");
        let m = Model::from_graph(
            &quantized.graph,
            &RuntimeOptions {
                tier: None,
                threads: 2,
            },
        )
        .unwrap();
        let got = m.run(std::slice::from_ref(&x)).unwrap().remove(0);
        let want = read_f32(&format!("real/{model}_{tag}.ort.npy"));
        assert_eq!(got.shape(), want.shape());
        eprintln!(
            "{model}: {} of {} nodes int8, int8 SQNR vs ORT fp32 {:.1} dB",
            coverage.quantized(),
            coverage.nodes.len(),
            q8_tests::sqnr_db(want.as_f32().unwrap(), got.as_f32().unwrap())
        );
    }
}
