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
