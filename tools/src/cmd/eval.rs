//! `q8 eval`: accuracy of a model on a labelled `.npy` set: top-1, and SQNR of its logits
//! against reference logits. QDQ models run on the int8 kernels (`--fp32`: reference mode).

use std::path::PathBuf;
use std::time::Instant;

use q8_frontend::exec::{ExecOptions, Executor};
use q8_frontend::ir::{Graph, Op, Tensor};
use q8_frontend::npy::{self, NpyData};
use q8_frontend::quant::sqnr_db;
use q8_frontend::runtime::{Model, RuntimeOptions};
use q8_frontend::{inputs, onnx};
use q8_kernels::Tier;

use super::run::{argmax, read_f32, run_batch};

/// Arguments of `q8 eval`.
#[derive(clap::Args)]
pub struct Args {
    /// ONNX model file (QDQ or fp32).
    model: PathBuf,
    /// Inputs, samples on the first axis: a `.npy` (f32 NCHW for image models), or
    /// `name=file.npy` per graph input (repeatable; int64 / bool allowed), or one `.npz`
    /// with an array per input name.
    #[arg(long, required = true)]
    input: Vec<String>,
    /// Labels: `.npy` integer class per input row.
    #[arg(long)]
    labels: PathBuf,
    /// Reference logits (`.npy` f32, same shape as the model output) for SQNR and top-1
    /// agreement.
    #[arg(long)]
    reference: Option<PathBuf>,
    /// Run a QDQ model in fp32 reference mode instead of int8.
    #[arg(long)]
    fp32: bool,
    /// ISA tier of the int8 path.
    #[arg(long)]
    tier: Option<Tier>,
    /// Worker threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// `q8 eval --json`.
#[derive(serde::Serialize)]
struct EvalJson<'a> {
    model: &'a str,
    precision: &'a str,
    images: usize,
    top1_correct: usize,
    top1: f64,
    ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    sqnr_db: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top1_agreement: Option<usize>,
}

/// True when the graph holds quantize / dequantize nodes (a QDQ model).
pub(crate) fn is_qdq(graph: &Graph) -> bool {
    graph
        .nodes()
        .any(|(_, n)| matches!(n.op, Op::QuantizeLinear(_)))
}

/// Lowers and packs a graph, naming the model file in errors.
pub(crate) fn build_model(
    model: &str,
    graph: &Graph,
    tier: Option<Tier>,
    threads: usize,
) -> Result<Model, String> {
    Model::from_graph(graph, &RuntimeOptions { tier, threads }).map_err(|e| format!("{model}: {e}"))
}

/// Rows of `logits` (row width `classes`) whose argmax equals the label.
pub(crate) fn correct(logits: &[f32], classes: usize, labels: &[i64]) -> usize {
    logits
        .chunks_exact(classes)
        .zip(labels)
        .filter(|(row, l)| argmax(row) as i64 == **l)
        .count()
}

/// Integer labels from a `.npy` file.
pub(crate) fn read_labels(path: &PathBuf) -> Result<Vec<i64>, String> {
    let a = npy::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(match a.data() {
        NpyData::I64(v) => v.clone(),
        NpyData::I32(v) => v.iter().map(|&x| i64::from(x)).collect(),
        NpyData::U8(v) => v.iter().map(|&x| i64::from(x)).collect(),
        _ => {
            return Err(format!(
                "{}: labels must be integers, found {}",
                path.display(),
                a.dtype().descr()
            ));
        }
    })
}

/// Runs `q8 eval`.
pub fn run(args: Args) -> Result<(), String> {
    let model = args.model.display().to_string();
    let graph = onnx::load(&args.model).map_err(|e| format!("{model}: {e}"))?;
    let input = inputs::read_inputs(&graph, &args.input).map_err(|e| e.to_string())?;
    let labels = read_labels(&args.labels)?;
    let rows = inputs::samples(&input).map_err(|e| e.to_string())?;
    if labels.len() != rows {
        return Err(format!(
            "{}: {} labels for {rows} inputs in {}",
            args.labels.display(),
            labels.len(),
            args.input.join(" ")
        ));
    }
    let int8 = !args.fp32 && is_qdq(&graph);
    let start = Instant::now();
    let (logits, precision) = if int8 {
        let m = build_model(&model, &graph, args.tier, args.threads)?;
        let out = m.run(&input).map_err(|e| format!("{model}: {e}"))?;
        (first_f32(out, &model)?, format!("int8 ({})", m.tier()))
    } else {
        let exec = Executor::new(
            &graph,
            ExecOptions {
                threads: args.threads,
            },
        )
        .map_err(|e| format!("{model}: {e}"))?;
        let out = run_batch(&exec, &input).map_err(|e| format!("{model}: {e}"))?;
        (first_f32(out, &model)?, "fp32".to_string())
    };
    let ms = start.elapsed().as_secs_f64() * 1e3;
    let classes = logits.len() / rows.max(1);
    if classes == 0 || classes * rows != logits.len() {
        return Err(format!(
            "{model}: the first output has {} values, not a whole number of classes for {rows} images",
            logits.len()
        ));
    }
    let top1 = correct(&logits, classes, &labels);
    let reference = match &args.reference {
        Some(path) => {
            let r = read_f32(path)?;
            let r = r.as_f32().unwrap_or_default().to_vec();
            if r.len() != logits.len() {
                return Err(format!(
                    "{}: {} reference values for {} logits",
                    path.display(),
                    r.len(),
                    logits.len()
                ));
            }
            let agree = r
                .chunks_exact(classes)
                .zip(logits.chunks_exact(classes))
                .filter(|(a, b)| argmax(a) == argmax(b))
                .count();
            Some((sqnr_db(&r, &logits), agree))
        }
        None => None,
    };
    if args.json {
        super::print_json(&EvalJson {
            model: &model,
            precision: &precision,
            images: rows,
            top1_correct: top1,
            top1: top1 as f64 / rows.max(1) as f64,
            ms,
            sqnr_db: reference.map(|r| r.0),
            top1_agreement: reference.map(|r| r.1),
        })?;
    } else {
        println!(
            "{model} [{precision}]: top-1 {top1}/{rows} = {:.2} % ({ms:.1} ms)",
            100.0 * top1 as f64 / rows.max(1) as f64
        );
        if let Some((db, agree)) = reference {
            println!("  vs reference logits: SQNR {db:.1} dB, top-1 agreement {agree}/{rows}");
        }
    }
    Ok(())
}

fn first_f32(out: Vec<Tensor>, model: &str) -> Result<Vec<f32>, String> {
    out.into_iter()
        .next()
        .and_then(|t| t.as_f32().map(<[f32]>::to_vec))
        .ok_or_else(|| format!("{model}: the first output is not an f32 tensor"))
}
