//! The MiniLM sentence encoder (`paraphrase-MiniLM-L3-v2`, 69 MB, not committed: fetch it with
//! `../shared/models/fetch.sh`, or point `Q8_MINILM` at it) quantized with the static X86
//! recipe: the linear layers (MatMul with a constant weight) int8, LayerNorm / Softmax / GELU
//! / residual adds fp32. Sentence embeddings (last_hidden_state mean-pooled over the
//! attention mask) of the QDQ model against fp32: mean cosine similarity >= 0.99.
//!
//! Ignored by default (the model is not in the repository); run with
//! `cargo test --release -p q8-tests --test minilm_int8 -- --ignored --nocapture`.

use std::path::PathBuf;

use q8_frontend::exec::{ExecOptions, Executor};
use q8_frontend::ir::{Tensor, TensorData};
use q8_frontend::quant::{QuantConfig, prepare};
use q8_frontend::runtime::{Model, RuntimeOptions};

const SEQ: usize = 128;
const HIDDEN: usize = 384;
const VOCAB: u64 = 30522;

fn model_path() -> PathBuf {
    std::env::var_os("Q8_MINILM").map_or_else(
        || PathBuf::from("/work/models-extra/paraphrase-MiniLM-L3-v2.onnx"),
        PathBuf::from,
    )
}

/// `batch` sequences of random token ids (`[CLS] ... [SEP]`, lengths 16..=SEQ, padded with 0
/// and masked), from `seed`.
fn tokens(batch: usize, seed: u64) -> (Tensor, Tensor) {
    let mut s = seed | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let (mut ids, mut mask) = (vec![0i64; batch * SEQ], vec![0i64; batch * SEQ]);
    for b in 0..batch {
        let len = 16 + (next() as usize % (SEQ - 15));
        for t in 0..len {
            ids[b * SEQ + t] = match t {
                0 => 101,
                _ if t == len - 1 => 102,
                _ => 1000 + (next() % (VOCAB - 1000)) as i64,
            };
            mask[b * SEQ + t] = 1;
        }
    }
    let t = |v| Tensor::new(vec![batch, SEQ], TensorData::I64(v)).unwrap();
    (t(ids), t(mask))
}

/// Mean of the hidden states over the unmasked tokens, per sequence.
fn mean_pool(hidden: &[f32], mask: &[i64], batch: usize) -> Vec<Vec<f32>> {
    (0..batch)
        .map(|b| {
            let mut sum = vec![0f32; HIDDEN];
            let mut count = 0f32;
            for t in 0..SEQ {
                if mask[b * SEQ + t] != 0 {
                    let h = &hidden[(b * SEQ + t) * HIDDEN..][..HIDDEN];
                    sum.iter_mut().zip(h).for_each(|(s, v)| *s += v);
                    count += 1.0;
                }
            }
            sum.iter().map(|s| s / count).collect()
        })
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

/// The embeddings of `graph` on one batch (output 2 is `last_hidden_state`).
fn embed(exec: &Executor, ids: &Tensor, mask: &Tensor, batch: usize) -> Vec<Vec<f32>> {
    let out = exec.run(&[ids.clone(), mask.clone()]).unwrap();
    let hidden = out[2].as_f32().expect("last_hidden_state is f32");
    let TensorData::I64(m) = mask.data() else {
        unreachable!("the mask is built as i64")
    };
    mean_pool(hidden, m, batch)
}

#[test]
#[ignore = "needs the 69 MB MiniLM model (../shared/models/fetch.sh)"]
fn static_int8_minilm_keeps_sentence_embeddings() {
    let graph = q8_frontend::onnx::load(model_path()).unwrap();
    let options = ExecOptions { threads: 0 };
    let mut prepared = prepare(&graph, &QuantConfig::x86_default(), options).unwrap();
    for seed in 0..4 {
        let (ids, mask) = tokens(4, 1000 + seed);
        prepared.observe(&[ids, mask]).unwrap();
    }
    let coverage = prepared.coverage();
    let quantized = prepared.convert().unwrap();
    let fp32 = Executor::new(&graph, options).unwrap();
    let int8 = Executor::new(&quantized.graph, options).unwrap();
    let (ids, mask) = tokens(8, 7);
    let want = embed(&fp32, &ids, &mask, 8);
    let got = embed(&int8, &ids, &mask, 8);
    let cos: Vec<f64> = want.iter().zip(&got).map(|(a, b)| cosine(a, b)).collect();
    let mean = cos.iter().sum::<f64>() / cos.len() as f64;
    let min = cos.iter().copied().fold(1.0, f64::min);
    println!(
        "static int8 MiniLM: {} quantized nodes; mean cosine {mean:.5}, min {min:.5} over 8 sequences",
        coverage.quantized()
    );
    assert!(mean >= 0.99, "mean cosine similarity {mean}");

    // The same QDQ graph on the int8 runtime (linear layers on the packed GEMM).
    let model = Model::from_graph(&quantized.graph, &RuntimeOptions::default()).unwrap();
    let report = model.report();
    let out = model.run(&[ids.clone(), mask.clone()]).unwrap();
    let TensorData::I64(m) = mask.data() else {
        unreachable!("the mask is built as i64")
    };
    let runtime = mean_pool(out[2].as_f32().unwrap(), m, 8);
    let cos: Vec<f64> = want
        .iter()
        .zip(&runtime)
        .map(|(a, b)| cosine(a, b))
        .collect();
    let mean_rt = cos.iter().sum::<f64>() / cos.len() as f64;
    let (int8_nodes, compute) = report.int8_coverage();
    println!(
        "int8 runtime: {int8_nodes} of {compute} compute nodes int8, mean cosine {mean_rt:.5} (min {:.5})",
        cos.iter().copied().fold(1.0, f64::min)
    );
    assert!(
        mean_rt >= 0.99,
        "int8 runtime mean cosine similarity {mean_rt}"
    );
}
