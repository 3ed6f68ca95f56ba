//! The MiniLM sentence encoder (`paraphrase-MiniLM-L3-v2`, 69 MB, not committed: fetch it with
//! `../shared/models/fetch.sh`, or point `Q8_MINILM` at it) quantized with the static X86
//! recipe: the linear layers (MatMul with a constant weight) int8, LayerNorm / Softmax / GELU
//! / residual adds fp32. Sentence embeddings (last_hidden_state mean-pooled over the
//! attention mask) of the int8 model against fp32: mean cosine similarity >= 0.99, both for
//! the QDQ graph on the reference executor and on the int8 runtime.
//!
//! The fp32 executor against ONNX Runtime 1.32 (`tests/data/minilm/make_refs.py`, the same
//! `token_batch` ids): sentence embeddings at 2 x 40 and 3 x 128 tokens, and the 2 x 40
//! `last_hidden_state`, within 1e-4 relative (max abs error / max abs value).
//!
//! Ignored by default (the model is not in the repository); run with
//! `cargo test --release -p q8-tests --test minilm_int8 -- --ignored --nocapture`.

use std::path::PathBuf;

use q8_frontend::exec::{ExecOptions, Executor};
use q8_frontend::ir::Tensor;
use q8_frontend::models::{mean_min_cosine, mean_pool, quantize_encoder, token_batch};
use q8_frontend::quant::QuantConfig;
use q8_frontend::runtime::{Model, RuntimeOptions};

const SEQ: usize = 128;
const HIDDEN: usize = 384;
const VOCAB: usize = 30522;

fn model_path() -> PathBuf {
    std::env::var_os("Q8_MINILM").map_or_else(
        || PathBuf::from("/work/models-extra/paraphrase-MiniLM-L3-v2.onnx"),
        PathBuf::from,
    )
}

/// Embeddings from the outputs of one run (output 2 is `last_hidden_state`).
fn embeddings(out: &[Tensor], mask: &Tensor) -> Vec<Vec<f32>> {
    mean_pool(out[2].as_f32().unwrap(), mask, HIDDEN).unwrap()
}

#[test]
#[ignore = "needs the 69 MB MiniLM model (../shared/models/fetch.sh)"]
fn fp32_matches_onnx_runtime_at_two_sequence_lengths() {
    let graph = q8_frontend::onnx::load(model_path()).unwrap();
    let exec = Executor::new(&graph, ExecOptions { threads: 0 }).unwrap();
    for (batch, seq, seed, outputs) in [(2, 40, 5, &[2, 3][..]), (3, 128, 9, &[3][..])] {
        let (ids, mask) = token_batch(batch, seq, VOCAB, seed).unwrap();
        let out = exec.run(&[ids, mask]).unwrap();
        for &o in outputs {
            let name = if o == 2 { "hidden" } else { "embedding" };
            let want = q8_tests::read_f32(&format!("minilm/ort_{batch}x{seq}_{name}.npy"));
            assert_eq!(out[o].shape(), want.shape(), "{batch}x{seq} output {o}");
            let err = q8_tests::max_rel_err(want.as_f32().unwrap(), out[o].as_f32().unwrap());
            println!("fp32 MiniLM {batch}x{seq} {name}: relative error vs ONNX Runtime {err:.2e}");
            assert!(
                err <= 1e-4,
                "{batch}x{seq} {name}: relative error {err:.2e}"
            );
        }
    }
}

#[test]
#[ignore = "needs the 69 MB MiniLM model (../shared/models/fetch.sh)"]
fn static_int8_minilm_keeps_sentence_embeddings() {
    let graph = q8_frontend::onnx::load(model_path()).unwrap();
    let options = ExecOptions { threads: 0 };
    // Calibrated on 4 batches of 4 x 128 tokens (seeds 0..4), as benches/peers/encoder_e2e.py
    // calibrates ONNX Runtime's quantize_static.
    let config = QuantConfig::x86_default();
    let quantized = quantize_encoder(&graph, &config, options, VOCAB, SEQ, 4).unwrap();
    let (ids, mask) = token_batch(8, SEQ, VOCAB, 7).unwrap();
    let inputs = [ids, mask.clone()];
    let fp32 = Executor::new(&graph, options).unwrap();
    let want = embeddings(&fp32.run(&inputs).unwrap(), &mask);

    let qdq = Executor::new(&quantized.graph, options).unwrap();
    let (mean, min) = mean_min_cosine(&want, &embeddings(&qdq.run(&inputs).unwrap(), &mask));
    println!(
        "static int8 MiniLM, QDQ graph on the reference executor: mean cosine {mean:.5}, min {min:.5}"
    );
    assert!(mean >= 0.99, "mean cosine similarity {mean}");

    let model = Model::from_graph(&quantized.graph, &RuntimeOptions::default()).unwrap();
    let (int8_nodes, compute) = model.report().int8_coverage();
    let got = embeddings(&model.run(&inputs).unwrap(), &mask);
    let (mean, min) = mean_min_cosine(&want, &got);
    println!(
        "int8 runtime: {int8_nodes} of {compute} MatMul nodes int8, mean cosine {mean:.5}, min {min:.5}"
    );
    assert!(mean >= 0.99, "int8 runtime mean cosine similarity {mean}");

    // Where the time goes at batch 1 x 128 (the slowest steps, after one warm-up run).
    let (ids, mask) = token_batch(1, SEQ, VOCAB, 7).unwrap();
    let one = [ids, mask];
    model.run(&one).unwrap();
    let (_, mut steps) = model.run_profiled(&one).unwrap();
    let total: f64 = steps.iter().map(|s| s.time.as_secs_f64() * 1e3).sum();
    steps.sort_by_key(|s| std::cmp::Reverse(s.time));
    println!(
        "batch 1 x 128, {total:.1} ms in {} steps; slowest:",
        steps.len()
    );
    for s in steps.iter().take(12) {
        println!(
            "  {:8.2} ms  {:24} {}",
            s.time.as_secs_f64() * 1e3,
            s.kernel,
            s.name
        );
    }
}

#[test]
#[ignore = "needs the 69 MB MiniLM model (../shared/models/fetch.sh)"]
fn dynamic_int8_minilm_keeps_sentence_embeddings() {
    let graph = q8_frontend::onnx::load(model_path()).unwrap();
    let options = ExecOptions { threads: 0 };
    let quantized = q8_frontend::quant::prepare(&graph, &QuantConfig::dynamic(), options)
        .unwrap()
        .convert()
        .unwrap();
    let (ids, mask) = token_batch(8, SEQ, VOCAB, 7).unwrap();
    let inputs = [ids, mask.clone()];
    let want = embeddings(
        &Executor::new(&graph, options)
            .unwrap()
            .run(&inputs)
            .unwrap(),
        &mask,
    );
    let model = Model::from_graph(&quantized.graph, &RuntimeOptions::default()).unwrap();
    let got = embeddings(&model.run(&inputs).unwrap(), &mask);
    let (mean, min) = mean_min_cosine(&want, &got);
    println!("dynamic int8 MiniLM, int8 runtime: mean cosine {mean:.5}, min {min:.5}");
    assert!(mean >= 0.99, "mean cosine similarity {mean}");
    let qdq = Executor::new(&quantized.graph, options)
        .unwrap()
        .run(&inputs)
        .unwrap();
    assert_eq!(
        model.run(&inputs).unwrap()[2],
        qdq[2],
        "the runtime gives the executor's bits"
    );
}
