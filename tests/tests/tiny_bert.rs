//! A tiny BERT-like encoder (`tests/data/tiny_bert/`, random weights, exported by its
//! `export.py` with `torch.onnx.export`, opset 17): two int64 inputs, embeddings, 2 post-LN
//! layers of 2-head attention and a GELU (erf) FFN.
//!
//! * fp32: matches ONNX Runtime within 1e-4 relative at two batch x sequence sizes;
//! * static int8 (the X86 recipe: every linear MatMul int8, attention / LayerNorm / GELU /
//!   residuals fp32), calibrated on multi-input token batches: the int8 runtime's sentence
//!   embeddings stay within cosine 0.99 of fp32 and are identical on every tier and thread
//!   count, also after saving the QDQ model to ONNX and loading it back.

use q8_frontend::exec::{ExecOptions, Executor};
use q8_frontend::ir::Tensor;
use q8_frontend::lower::NodeLowering;
use q8_frontend::models::{mean_min_cosine, mean_pool, token_batch};
use q8_frontend::quant::{QuantConfig, prepare};
use q8_frontend::runtime::{Model, RuntimeOptions};
use q8_tests::{available_tiers, data, max_rel_err};

const HIDDEN: usize = 32;
const VOCAB: usize = 96;

fn graph() -> q8_frontend::ir::Graph {
    q8_frontend::onnx::load(data("tiny_bert/tiny_bert.onnx")).unwrap()
}

#[test]
fn fp32_matches_onnx_runtime_at_two_sizes() {
    let exec = Executor::new(&graph(), ExecOptions { threads: 1 }).unwrap();
    for size in ["2x16", "3x24"] {
        let inputs = [
            q8_tests::read_i64(&format!("tiny_bert/ids_{size}.npy")),
            q8_tests::read_i64(&format!("tiny_bert/mask_{size}.npy")),
        ];
        let out = exec.run(&inputs).unwrap();
        let want = q8_tests::read_f32(&format!("tiny_bert/ort_{size}.npy"));
        assert_eq!(out[0].shape(), want.shape());
        let err = max_rel_err(want.as_f32().unwrap(), out[0].as_f32().unwrap());
        assert!(err < 1e-4, "{size}: relative error {err} vs ONNX Runtime");
    }
}

#[test]
fn static_int8_keeps_embeddings_and_is_tier_invariant() {
    let g = graph();
    let options = ExecOptions { threads: 1 };
    let mut prepared = prepare(&g, &QuantConfig::x86_default(), options).unwrap();
    for seed in 0..6 {
        let (ids, mask) = token_batch(4, 32, VOCAB, seed).unwrap();
        prepared.observe(&[ids, mask]).unwrap();
    }
    let quantized = prepared.convert().unwrap();
    let (ids, mask) = token_batch(6, 40, VOCAB, 99).unwrap();
    let inputs = [ids, mask.clone()];
    let fp32 = Executor::new(&g, options).unwrap().run(&inputs).unwrap();
    let want = mean_pool(fp32[0].as_f32().unwrap(), &mask, HIDDEN).unwrap();

    let mut outputs = Vec::new();
    for tier in available_tiers("tiny_bert") {
        for threads in [1, 2] {
            let rt = RuntimeOptions {
                tier: Some(tier),
                threads,
            };
            let model = Model::from_graph(&quantized.graph, &rt).unwrap();
            // 2 layers x 6 linear layers; the 4 attention MatMuls stay fp32.
            assert_eq!(model.report().int8_coverage(), (12, 16), "tier {tier}");
            // The decomposed GELU (Div, Erf, Add, Mul, Mul) runs in the FFN linear's epilogue.
            let erfs: Vec<_> = model
                .report()
                .nodes
                .iter()
                .filter(|e| e.op == "Erf")
                .collect();
            assert_eq!(erfs.len(), 2, "one GELU per layer");
            for e in erfs {
                assert!(
                    matches!(&e.lowering, NodeLowering::Lowered { kernel, detail, .. }
                        if kernel.starts_with("int8 linear") && detail.contains("gelu")),
                    "{}: {:?}",
                    e.node,
                    e.lowering
                );
            }
            outputs.push((tier, threads, model.run(&inputs).unwrap()));
        }
    }
    let (_, _, first) = &outputs[0];
    for (tier, threads, out) in &outputs {
        assert_eq!(out, first, "tier {tier}, {threads} threads");
    }
    // Saved as QDQ ONNX (the mask's Unsqueeze [B, S] -> [B, 1, 1, S] moves a symbolic dim)
    // and loaded back, the model runs to the same bits.
    let bytes =
        q8_frontend::onnx::encode_model(&q8_frontend::onnx::to_model(&quantized.graph).unwrap());
    let reloaded = q8_frontend::onnx::load_bytes(&bytes).unwrap();
    let model = Model::from_graph(&reloaded, &RuntimeOptions::default()).unwrap();
    assert_eq!(
        &model.run(&inputs).unwrap(),
        first,
        "after an ONNX round trip"
    );
    let got = mean_pool(first[0].as_f32().unwrap(), &mask, HIDDEN).unwrap();
    let (mean, min) = mean_min_cosine(&want, &got);
    assert!(mean >= 0.99, "mean cosine {mean} (min {min})");
}

/// A GELU-shaped chain with another constant (here `x / 1.5` instead of `x / sqrt 2`) is not
/// the exact GELU: its nodes stay fp32 fallback steps instead of being fused into the linear.
#[test]
fn a_near_gelu_is_not_fused() {
    let mut g = graph();
    let sqrt2: Vec<_> = g
        .nodes()
        .filter(|(_, n)| n.op.name() == "Div")
        .map(|(_, n)| n.inputs[1])
        .filter(|&c| {
            let t = g.value(c).constant.as_ref();
            t.and_then(|t| t.as_f32()) == Some(&[std::f32::consts::SQRT_2][..])
        })
        .collect();
    assert_eq!(sqrt2.len(), 2, "one GELU Div per layer");
    for v in sqrt2 {
        let c = Tensor::from_f32(vec![], vec![1.5]).unwrap();
        g.set_constant(v, std::sync::Arc::new(c)).unwrap();
    }
    let options = ExecOptions { threads: 1 };
    let mut prepared = prepare(&g, &QuantConfig::x86_default(), options).unwrap();
    let (ids, mask) = token_batch(4, 32, VOCAB, 0).unwrap();
    prepared.observe(&[ids, mask]).unwrap();
    let quantized = prepared.convert().unwrap();
    let model = Model::from_graph(&quantized.graph, &RuntimeOptions::default()).unwrap();
    let erfs: Vec<_> = model
        .report()
        .nodes
        .iter()
        .filter(|e| e.op == "Erf")
        .collect();
    assert_eq!(erfs.len(), 2);
    for e in erfs {
        assert!(
            matches!(e.lowering, NodeLowering::Fallback { .. }),
            "{}: {:?}",
            e.node,
            e.lowering
        );
    }
}
