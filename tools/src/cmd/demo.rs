//! `q8 demo`: the embedded default, no downloads. Quantizes the small digits ResNet the repo
//! carries (X86 recipe, its 128 calibration images), prints fp32 vs int8 accuracy and the
//! SQNR of the int8 logits; then builds torchvision's ResNet-18 (random weights with BN
//! statistics), quantizes and lowers it and prints int8 vs fp32 latency at batch 1 and 16.
//! Between the two, a transformer part: the embedded tiny BERT-like encoder
//! (`tests/data/tiny_bert`) quantized statically and dynamically, its sentence embeddings
//! against fp32.

use std::time::Instant;

use q8_frontend::exec::{ExecOptions, Executor};
use q8_frontend::ir::{Graph, Tensor};
use q8_frontend::models::{mean_min_cosine, mean_pool, quantize_encoder, token_batch};
use q8_frontend::npy::{self, NpyData};
use q8_frontend::onnx;
use q8_frontend::quant::{QuantConfig, batches, prepare, sqnr_db};
use q8_frontend::runtime::{Model, RuntimeOptions};
use serde::Serialize;

use super::bench::model::{median_time, quantized_resnet18, random_images};
use super::eval::correct;

const DIGITS_ONNX: &[u8] = include_bytes!("../../../tests/data/digits_resnet.onnx");
const DIGITS_CALIB: &[u8] = include_bytes!("../../../tests/data/digits_calib.npy");
const DIGITS_TEST_X: &[u8] = include_bytes!("../../../tests/data/digits_test_x.npy");
const DIGITS_TEST_Y: &[u8] = include_bytes!("../../../tests/data/digits_test_y.npy");
const TINY_BERT_ONNX: &[u8] = include_bytes!("../../../tests/data/tiny_bert/tiny_bert.onnx");
/// The tiny encoder's vocabulary and hidden width (`tests/data/tiny_bert/export.py`).
const TINY_BERT_VOCAB: usize = 96;
const TINY_BERT_HIDDEN: usize = 32;

/// Arguments of `q8 demo`.
#[derive(clap::Args)]
pub struct Args {
    /// Worker threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Skip the ResNet-18 latency part.
    #[arg(long)]
    no_resnet: bool,
    /// Skip the transformer (tiny BERT-like encoder) part.
    #[arg(long)]
    no_transformer: bool,
    /// Print one JSON object at the end instead of text.
    #[arg(long)]
    json: bool,
}

fn f32_tensor(bytes: &[u8], what: &str) -> Result<Tensor, String> {
    let a = npy::from_bytes(bytes).map_err(|e| format!("embedded {what}: {e}"))?;
    let NpyData::F32(v) = a.data() else {
        return Err(format!("embedded {what}: not f32"));
    };
    Tensor::from_f32(a.shape().to_vec(), v.clone()).map_err(|e| format!("embedded {what}: {e}"))
}

fn first_f32(out: &[Tensor]) -> Result<&[f32], String> {
    out.first()
        .and_then(Tensor::as_f32)
        .ok_or_else(|| "the model's first output is not f32".to_string())
}

/// Runs `q8 demo`.
pub fn run(args: Args) -> Result<(), String> {
    let say = |s: String| {
        if !args.json {
            println!("{s}");
        }
    };
    let graph: Graph =
        onnx::load_bytes(DIGITS_ONNX).map_err(|e| format!("digits_resnet.onnx: {e}"))?;
    let calib = f32_tensor(DIGITS_CALIB, "digits_calib.npy")?;
    let x = f32_tensor(DIGITS_TEST_X, "digits_test_x.npy")?;
    let labels = match npy::from_bytes(DIGITS_TEST_Y)
        .map_err(|e| e.to_string())?
        .data()
    {
        NpyData::I64(v) => v.clone(),
        _ => return Err("embedded digits_test_y.npy: labels are not i64".into()),
    };
    let n = labels.len();
    let exec = Executor::new(
        &graph,
        ExecOptions {
            threads: args.threads,
        },
    )
    .map_err(|e| e.to_string())?;
    let fp32 = exec
        .run(std::slice::from_ref(&x))
        .map_err(|e| e.to_string())?;
    let fp32 = first_f32(&fp32)?.to_vec();
    let start = Instant::now();
    let mut prepared = prepare(
        &graph,
        &QuantConfig::x86_default(),
        ExecOptions {
            threads: args.threads,
        },
    )
    .map_err(|e| format!("digits_resnet.onnx: {e}"))?;
    prepared
        .calibrate(batches(&calib, 32), |_| {})
        .map_err(|e| format!("digits_resnet.onnx: {e}"))?;
    let quantized = prepared
        .convert()
        .map_err(|e| format!("digits_resnet.onnx: {e}"))?;
    let quant_ms = start.elapsed().as_secs_f64() * 1e3;
    let model = Model::from_graph(
        &quantized.graph,
        &RuntimeOptions {
            tier: None,
            threads: args.threads,
        },
    )
    .map_err(|e| format!("digits_resnet.onnx: {e}"))?;
    let int8 = model
        .run(std::slice::from_ref(&x))
        .map_err(|e| e.to_string())?;
    let int8 = first_f32(&int8)?;
    let classes = fp32.len() / n.max(1);
    let (top_fp32, top_int8) = (
        correct(&fp32, classes, &labels),
        correct(int8, classes, &labels),
    );
    let db = sqnr_db(&fp32, int8);
    let (lowered, total) = model.report().int8_coverage();
    say(format!(
        "digits ResNet (embedded): quantized with the X86 recipe on 128 images in {quant_ms:.0} ms; {lowered}/{total} conv/linear nodes on int8 kernels ({})",
        model.tier()
    ));
    say(format!(
        "  fp32 top-1 {top_fp32}/{n}, int8 top-1 {top_int8}/{n}, int8 vs fp32 logits SQNR {db:.1} dB"
    ));
    let transformer = if args.no_transformer {
        None
    } else {
        Some(transformer(args.threads, &say)?)
    };
    let mut latencies = Vec::new();
    if !args.no_resnet {
        let (fp32_graph, qdq) = quantized_resnet18(!args.json)?;
        let start = Instant::now();
        let model = Model::from_graph(
            &qdq,
            &RuntimeOptions {
                tier: None,
                threads: args.threads,
            },
        )
        .map_err(|e| format!("resnet18: {e}"))?;
        let load_ms = start.elapsed().as_secs_f64() * 1e3;
        let exec = Executor::new(
            &fp32_graph,
            ExecOptions {
                threads: args.threads,
            },
        )
        .map_err(|e| e.to_string())?;
        say(format!(
            "ResNet-18 (torchvision shapes, random weights): lowered and packed in {load_ms:.0} ms for {}, {} thread(s)",
            model.tier(),
            model.threads()
        ));
        for batch in [1, 16] {
            let images = random_images(batch, 224, 7);
            let (t8, _) = median_time(3, || {
                model
                    .run(std::slice::from_ref(&images))
                    .map(drop)
                    .map_err(|e| e.to_string())
            })?;
            let (t32, _) = median_time(2, || {
                exec.run(std::slice::from_ref(&images))
                    .map(drop)
                    .map_err(|e| e.to_string())
            })?;
            let (ms8, ms32) = (t8.as_secs_f64() * 1e3, t32.as_secs_f64() * 1e3);
            say(format!(
                "  batch {batch:>2}: int8 {ms8:8.2} ms ({:7.1} images/s), fp32 {ms32:8.2} ms, speedup {:.1}x",
                batch as f64 / t8.as_secs_f64(),
                ms32 / ms8
            ));
            latencies.push(LatencyJson {
                batch,
                threads: model.threads(),
                int8_median_ms: ms8,
                fp32_median_ms: ms32,
            });
        }
    }
    if args.json {
        super::print_json(&DemoJson {
            tier: model.tier().name(),
            digits: DigitsJson {
                images: n,
                fp32_top1: top_fp32,
                int8_top1: top_int8,
                sqnr_db: db,
            },
            transformer,
            resnet18: latencies,
        })?;
    }
    Ok(())
}

/// `q8 demo --json`.
#[derive(Serialize)]
struct DemoJson {
    tier: &'static str,
    digits: DigitsJson,
    /// The static and the dynamic int8 encoder.
    transformer: Option<Vec<TransformerJson>>,
    resnet18: Vec<LatencyJson>,
}

/// The digits part: top-1 of both precisions and the logits SQNR.
#[derive(Serialize)]
struct DigitsJson {
    images: usize,
    fp32_top1: usize,
    int8_top1: usize,
    sqnr_db: f64,
}

/// The transformer part, per quantization mode: int8 coverage, embedding cosines and
/// latencies.
#[derive(Serialize)]
struct TransformerJson {
    /// "static" (calibrated X86 recipe) or "dynamic" (activation qparams per call).
    mode: &'static str,
    int8_matmuls: usize,
    matmuls: usize,
    mean_cosine: f64,
    min_cosine: f64,
    int8_median_ms: f64,
    fp32_median_ms: f64,
}

/// One ResNet-18 latency row.
#[derive(Serialize)]
struct LatencyJson {
    batch: usize,
    threads: usize,
    int8_median_ms: f64,
    fp32_median_ms: f64,
}

/// The transformer part: the embedded tiny BERT-like encoder quantized statically (linear
/// layers int8, calibrated on random token batches) and dynamically (activations quantized
/// per call); prints each mode's sentence-embedding cosine similarity to fp32 and the
/// latencies at batch 8 x sequence 128. Returns the numbers for `--json`.
fn transformer(threads: usize, say: &dyn Fn(String)) -> Result<Vec<TransformerJson>, String> {
    let e = |e: &dyn std::fmt::Display| format!("tiny_bert.onnx: {e}");
    let graph = onnx::load_bytes(TINY_BERT_ONNX).map_err(|x| e(&x))?;
    let options = ExecOptions { threads };
    let exec = Executor::new(&graph, options).map_err(|x| e(&x))?;
    let (ids, mask) = token_batch(8, 128, TINY_BERT_VOCAB, 99).map_err(|x| e(&x))?;
    let inputs = [ids, mask];
    let embed = |out: Vec<Tensor>| -> Result<Vec<Vec<f32>>, String> {
        mean_pool(first_f32(&out)?, &inputs[1], TINY_BERT_HIDDEN).map_err(|x| e(&x))
    };
    let want = embed(exec.run(&inputs).map_err(|x| e(&x))?)?;
    let (t32, _) = median_time(5, || exec.run(&inputs).map(drop).map_err(|x| e(&x)))?;
    let ms32 = t32.as_secs_f64() * 1e3;
    say(format!(
        "tiny BERT-like encoder (embedded, 2 layers, hidden 32), 8 x 128 random tokens: fp32 {ms32:.2} ms"
    ));
    let modes = [
        ("static", QuantConfig::x86_default()),
        ("dynamic", QuantConfig::dynamic()),
    ];
    let mut rows = Vec::new();
    for (mode, config) in modes {
        let quantized = quantize_encoder(&graph, &config, options, TINY_BERT_VOCAB, 64, 4)
            .map_err(|x| e(&x))?;
        let rt = RuntimeOptions {
            tier: None,
            threads,
        };
        let model = Model::from_graph(&quantized.graph, &rt).map_err(|x| e(&x))?;
        let got = embed(model.run(&inputs).map_err(|x| e(&x))?)?;
        let (mean, min) = mean_min_cosine(&want, &got);
        let (t8, _) = median_time(5, || model.run(&inputs).map(drop).map_err(|x| e(&x)))?;
        let ms8 = t8.as_secs_f64() * 1e3;
        let (lowered, total) = model.report().int8_coverage();
        say(format!(
            "  {mode} int8: {lowered}/{total} MatMuls on int8 kernels (the attention ones stay fp32); embeddings vs fp32 mean cosine {mean:.4}, min {min:.4}; {ms8:.2} ms"
        ));
        rows.push(TransformerJson {
            mode,
            int8_matmuls: lowered,
            matmuls: total,
            mean_cosine: mean,
            min_cosine: min,
            int8_median_ms: ms8,
            fp32_median_ms: ms32,
        });
    }
    Ok(rows)
}
