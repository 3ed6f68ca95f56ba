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

/// The detector's BatchNorm-folded convs have channels with `max |w|` below 127.5 * 2^-12:
/// the X86 recipe's scale floor leaves them few levels (reported per node), and the int8
/// output loses almost everything; a lower floor (`with_weight_eps`) restores it.
#[test]
fn ppocr_detector_weight_scale_floor_is_reported_and_can_be_lowered() {
    use q8_frontend::quant::{OpQuantSpec, QuantConfig, Setting, batches, prepare};
    use q8_frontend::runtime::{Model, RuntimeOptions};
    let graph = onnx::load(data("real/ch_PP-OCRv4_det_infer.onnx")).unwrap();
    let x = read_f32("real/ch_PP-OCRv4_det_1x3x96x128.in.npy");
    let want = read_f32("real/ch_PP-OCRv4_det_1x3x96x128.ort.npy");
    let run = |spec: OpQuantSpec| {
        let config = QuantConfig::with_global(Setting::Quantize(spec));
        let mut prepared = prepare(&graph, &config, ExecOptions { threads: 2 }).unwrap();
        prepared.calibrate(batches(&x, 1), |_| {}).unwrap();
        let quantized = prepared.convert().unwrap();
        let floored: usize = quantized.weights.iter().map(|w| w.floor_channels).sum();
        let rt = RuntimeOptions {
            tier: None,
            threads: 2,
        };
        let model = Model::from_graph(&quantized.graph, &rt).unwrap();
        let got = model.run(std::slice::from_ref(&x)).unwrap().remove(0);
        let sqnr = q8_tests::sqnr_db(want.as_f32().unwrap(), got.as_f32().unwrap());
        (floored, sqnr)
    };
    let (floored, sqnr) = run(OpQuantSpec::x86_default());
    let (floored_low, sqnr_low) = run(OpQuantSpec::x86_default().with_weight_eps(f32::EPSILON));
    eprintln!(
        "PP-OCRv4 det int8 SQNR vs ORT fp32: eps 2^-12 {sqnr:.1} dB ({floored} channels at the \
         floor), eps f32::EPSILON {sqnr_low:.1} dB ({floored_low})"
    );
    assert!(floored >= 10, "{floored} channels at the 2^-12 floor");
    assert!(
        floored_low < floored / 4,
        "{floored_low} channels still at the floor"
    );
    assert!(sqnr_low >= sqnr + 5.0, "{sqnr:.1} -> {sqnr_low:.1} dB");
}
