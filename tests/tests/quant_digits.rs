//! The X86 post-training quantization flow on digits_resnet: default config against fp32 and
//! against PyTorch's own int8 model, a better non-default config, and the QDQ ONNX round trip.

use q8_frontend::exec::{ExecOptions, Executor};
use q8_frontend::ir::{DType, Op};
use q8_frontend::quant::{
    ObserverKind, OpQuantSpec, QuantConfig, Quantized, Setting, batches, compare, prepare,
};
use q8_frontend::{npy, onnx};
use q8_tests::{argmax, data, read_f32, sqnr_db};

fn quantize_digits(config: &QuantConfig) -> Quantized {
    let graph = onnx::load(data("digits_resnet.onnx")).unwrap();
    let mut prepared = prepare(&graph, config, ExecOptions { threads: 2 }).unwrap();
    let calib = read_f32("digits_calib.npy");
    let start = std::time::Instant::now();
    let done = prepared.calibrate(batches(&calib, 32), |_| {}).unwrap();
    eprintln!(
        "calibrated {} batches ({} images) in {:.1} ms",
        done.batches,
        done.samples,
        start.elapsed().as_secs_f64() * 1e3
    );
    prepared.convert().unwrap()
}

fn logits(q: &Quantized) -> Vec<f32> {
    let exec = Executor::new(&q.graph, ExecOptions { threads: 2 }).unwrap();
    exec.run(&[read_f32("digits_test_x.npy")]).unwrap()[0]
        .as_f32()
        .unwrap()
        .to_vec()
}

fn top1(logits: &[f32]) -> usize {
    let labels = npy::read(data("digits_test_y.npy")).unwrap();
    let labels = labels.values::<i64>().unwrap().to_vec();
    logits
        .chunks_exact(10)
        .zip(labels)
        .filter(|(row, y)| argmax(row) as i64 == *y)
        .count()
}

#[test]
fn default_config_matches_fp32_and_pytorch() {
    let q = quantize_digits(&QuantConfig::x86_default());
    print!("{}", q.coverage());
    let got = logits(&q);
    let fp32 = read_f32("digits_resnet_test_logits_fp32.npy");
    let torch = read_f32("digits_resnet.pt2e_reference_test_logits.npy");
    let vs_fp32 = sqnr_db(fp32.as_f32().unwrap(), &got);
    let vs_torch = sqnr_db(torch.as_f32().unwrap(), &got);
    let correct = top1(&got);
    eprintln!(
        "default: top-1 {correct}/360, SQNR vs fp32 {vs_fp32:.2} dB, vs PyTorch int8 {vs_torch:.2} dB"
    );
    // Diagnostic: our activation qparams next to those in PyTorch's exported QDQ model.
    let pt = onnx::load(data("digits_resnet.pt2e_qdq.onnx")).unwrap();
    let theirs: Vec<(f32, i32)> = pt
        .nodes()
        .filter_map(|(_, n)| match &n.op {
            Op::QuantizeLinear(s) => Some((s.scales[0], s.zero_points[0])),
            _ => None,
        })
        .collect();
    // Equal: scale within 1e-6 relative (torch's f32 sums may differ in the last bit), same zp.
    let same = |scale: f32, zp: i32| {
        theirs
            .iter()
            .any(|&(s, z)| z == zp && ((s - scale) / s).abs() <= 1e-6)
    };
    let matching = q
        .activations
        .iter()
        .filter(|a| same(a.scale, a.zero_point))
        .count();
    for a in &q.activations {
        let same = same(a.scale, a.zero_point);
        eprintln!(
            "  group {:>2}: scale {:.7} zp {:>3} {} {:?}",
            a.group,
            a.scale,
            a.zero_point,
            if same {
                "= PyTorch"
            } else {
                "(PyTorch observes this place differently)"
            },
            a.values
        );
    }
    // PyTorch 2.15's export leaves MaxPool and the global average pool unannotated, so its
    // observers there see only the pool outputs; q8 applies the recipe (pool outputs share
    // their inputs' qparams). Every other group equals PyTorch's.
    assert_eq!(
        matching,
        q.activations.len() - 2,
        "activation qparams equal to PyTorch's"
    );
    assert!(correct >= 359, "top-1 {correct}/360");
    assert!(vs_fp32 >= 40.0, "SQNR vs fp32 {vs_fp32} dB");
    assert!(vs_torch >= 45.0, "SQNR vs PyTorch {vs_torch} dB");
}

#[test]
fn mse_observer_beats_pytorch() {
    let spec = OpQuantSpec::x86_default().with_observer(ObserverKind::Mse);
    let q = quantize_digits(&QuantConfig::with_global(Setting::Quantize(spec)));
    let got = logits(&q);
    let fp32 = read_f32("digits_resnet_test_logits_fp32.npy");
    let db = sqnr_db(fp32.as_f32().unwrap(), &got);
    let correct = top1(&got);
    eprintln!("MSE observer: top-1 {correct}/360, SQNR vs fp32 {db:.2} dB (PyTorch PT2E: 40.5 dB)");
    assert!(db > 42.0, "SQNR {db} dB (measured 43.05 dB)");
    assert!(correct >= 359);
}

#[test]
fn saved_qdq_model_reloads_to_identical_outputs() {
    let q = quantize_digits(&QuantConfig::x86_default());
    let path = std::env::temp_dir().join(format!("q8_quant_digits_{}.q8.onnx", std::process::id()));
    q.save(&path).unwrap();
    let back = onnx::load(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let count = |g: &q8_frontend::ir::Graph, f: &dyn Fn(&Op) -> bool| {
        g.nodes().filter(|(_, n)| f(&n.op)).count()
    };
    let u8_q =
        |op: &Op| matches!(op, Op::QuantizeLinear(s) if s.dtype == DType::U8 && s.axis.is_none());
    let s8_dq = |op: &Op| matches!(op, Op::DequantizeLinear(s) if s.dtype == DType::I8 && s.axis == Some(0));
    assert_eq!(count(&back, &u8_q), count(&q.graph, &u8_q));
    assert_eq!(count(&back, &s8_dq), 13, "12 convs and the linear layer");
    assert_eq!(back.nodes().count(), q.graph.nodes().count());
    let x = read_f32("digits_test_x.npy");
    let run = |g: &q8_frontend::ir::Graph| {
        Executor::new(g, ExecOptions { threads: 2 })
            .unwrap()
            .run(std::slice::from_ref(&x))
            .unwrap()
    };
    assert_eq!(
        run(&back),
        run(&q.graph),
        "bit-identical logits after save and load"
    );
}

#[test]
fn per_layer_sqnr_is_keyed_by_onnx_node_names() {
    let q = quantize_digits(&QuantConfig::x86_default());
    let x = read_f32("digits_test_x.npy");
    let c = compare(&q, batches(&x, 90), ExecOptions { threads: 2 }).unwrap();
    print!("{c}");
    assert_eq!(c.batches, 4);
    assert_eq!(c.layers.len(), q.annotation.patterns.len());
    let names: Vec<&str> = c.layers.iter().map(|r| r.node.as_str()).collect();
    assert_eq!(names[0], "/conv1/Conv", "graph order");
    assert!(names.contains(&"/l3/down/down.0/Conv") && names.contains(&"/fc/Gemm"));
    for r in &c.layers {
        assert!(r.sqnr_db > 25.0 && r.sqnr_db < 60.0, "{r:?}");
    }
    // The output row is the logits SQNR against the fp32 model q8 quantized.
    let fp32 = Executor::new(&q.fp32, ExecOptions { threads: 2 }).unwrap();
    let want = fp32.run(std::slice::from_ref(&x)).unwrap();
    let direct = sqnr_db(want[0].as_f32().unwrap(), &logits(&q));
    assert!(
        (c.outputs[0].sqnr_db - direct).abs() < 1e-6,
        "{} vs {direct}",
        c.outputs[0].sqnr_db
    );
    assert!(
        c.to_json()
            .contains("\"node\":\"/l1/c2/Conv\",\"pattern\":\"conv+add+relu\"")
    );
}
