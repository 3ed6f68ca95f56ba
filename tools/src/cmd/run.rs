//! `q8 run`: run an ONNX model on a `.npy` batch: QDQ models lowered onto the int8 kernels
//! (`--fp32` runs them in reference mode instead), fp32 models through the fp32 executor;
//! print the output shapes, the first rows and the top-1 class per row, or write `.npy`.

use std::path::PathBuf;
use std::time::Instant;

use q8_frontend::exec::{ExecOptions, Executor};
use q8_frontend::ir::{Dim, Tensor, TensorData};
use q8_frontend::npy::{self, NpyArray};
use q8_frontend::{inputs, onnx, passes};
use serde::Serialize;

/// Arguments of `q8 run`.
#[derive(clap::Args)]
pub struct Args {
    /// ONNX model file.
    model: PathBuf,
    /// Input: a `.npy` array (f32 or f64, NCHW for image models; i64 / i32 / bool for ids and
    /// masks), `name=file.npy` for one named graph input (repeat for models with several
    /// inputs), or one `.npz` with an array per input name.
    #[arg(long, required = true)]
    input: Vec<String>,
    /// Write the first output to this `.npy` file instead of printing rows.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Worker threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Fold BatchNorm into the preceding Conv / Gemm before running.
    #[arg(long)]
    fold_bn: bool,
    /// Rows of each output to print.
    #[arg(long, default_value_t = 5)]
    rows: usize,
    /// Run a QDQ model in fp32 reference mode (dq -> fp32 op -> q) instead of int8.
    #[arg(long)]
    fp32: bool,
    /// ISA tier for the int8 path (default: the best available, capped by Q8_ISA).
    #[arg(long)]
    tier: Option<q8_kernels::Tier>,
    /// Print the time of every int8 step.
    #[arg(long)]
    profile: bool,
    /// Print a JSON summary (path, tier, threads, ms, output shapes, top-1 per row).
    #[arg(long)]
    json: bool,
}

/// Runs the model and reports.
pub fn run(args: Args) -> Result<(), String> {
    let model = args.model.display().to_string();
    let mut graph = onnx::load(&args.model).map_err(|e| format!("{model}: {e}"))?;
    if args.fold_bn {
        let report = passes::fold_batch_norm(&mut graph).map_err(|e| format!("{model}: {e}"))?;
        println!(
            "folded {} BatchNorm nodes, kept {}",
            report.folded.len(),
            report.kept.len()
        );
        for (bn, why) in &report.kept {
            println!("  kept '{bn}': {why}");
        }
    }
    let inputs = inputs::read_inputs(&graph, &args.input).map_err(|e| e.to_string())?;
    let input = &inputs[0];
    if !args.fp32 && super::eval::is_qdq(&graph) {
        return run_int8(&args, &model, &graph, &inputs);
    }
    let exec = Executor::new(
        &graph,
        ExecOptions {
            threads: args.threads,
        },
    )
    .map_err(|e| format!("{model}: {e}"))?;
    let start = Instant::now();
    let outputs = run_batch(&exec, &inputs).map_err(|e| format!("{model}: {e}"))?;
    let elapsed = start.elapsed();
    println!(
        "{model}: {} nodes, input {:?}, {:.2} ms on {} thread(s)",
        graph.nodes().count(),
        input.shape(),
        elapsed.as_secs_f64() * 1e3,
        exec.threads()
    );
    if let Some(path) = &args.output {
        let first = outputs.first().ok_or("the model has no outputs")?;
        let array = to_npy(first)?;
        npy::write(path, &array).map_err(|e| e.to_string())?;
        println!("wrote output {:?} to {}", first.shape(), path.display());
        return Ok(());
    }
    for (&id, t) in graph.outputs().iter().zip(&outputs) {
        println!(
            "output '{}' {:?} {}",
            graph.value(id).name,
            t.shape(),
            t.dtype()
        );
        print_rows(t, args.rows);
    }
    Ok(())
}

/// `q8 run --json` of a QDQ model.
#[derive(Serialize)]
struct RunJson<'a> {
    model: &'a str,
    precision: &'static str,
    tier: &'static str,
    threads: usize,
    input: &'a [usize],
    ms: f64,
    outputs: Vec<OutputJson<'a>>,
    profile: Vec<StepJson<'a>>,
}

/// One output: its shape and the top-1 index of every row (last axis).
#[derive(Serialize)]
struct OutputJson<'a> {
    name: &'a str,
    shape: &'a [usize],
    top1: Vec<usize>,
}

/// One profiled step.
#[derive(Serialize)]
struct StepJson<'a> {
    step: &'a str,
    kernel: &'a str,
    ms: f64,
}

/// The int8 path: lower, pack, run (optionally profiled), report.
fn run_int8(
    args: &Args,
    model: &str,
    graph: &q8_frontend::ir::Graph,
    inputs: &[Tensor],
) -> Result<(), String> {
    let m = super::eval::build_model(model, graph, args.tier, args.threads)?;
    let start = Instant::now();
    let (outputs, timings) = if args.profile {
        // One warm-up run first: the profile then shows steady-state step times, without
        // the first run's planning and first-touch page faults.
        m.run(inputs).map_err(|e| format!("{model}: {e}"))?;
        m.run_profiled(inputs)
            .map_err(|e| format!("{model}: {e}"))?
    } else {
        let out = m.run(inputs).map_err(|e| format!("{model}: {e}"))?;
        (out, Vec::new())
    };
    let ms = start.elapsed().as_secs_f64() * 1e3;
    let lowered = &m.lowered().graph;
    if args.json {
        let outputs = lowered
            .outputs()
            .iter()
            .zip(&outputs)
            .map(|(&id, t)| {
                let width = t.shape().last().copied().unwrap_or(1).max(1);
                OutputJson {
                    name: &lowered.value(id).name,
                    shape: t.shape(),
                    top1: t
                        .as_f32()
                        .unwrap_or_default()
                        .chunks_exact(width)
                        .map(argmax)
                        .collect(),
                }
            })
            .collect();
        let profile = timings
            .iter()
            .map(|t| StepJson {
                step: &t.name,
                kernel: t.kernel,
                ms: t.time.as_secs_f64() * 1e3,
            })
            .collect();
        super::print_json(&RunJson {
            model,
            precision: "int8",
            tier: m.tier().name(),
            threads: m.threads(),
            input: inputs[0].shape(),
            ms,
            outputs,
            profile,
        })?;
    } else {
        println!(
            "{model}: int8 on {} ({} steps), input {:?}, {ms:.2} ms on {} thread(s)",
            m.tier(),
            m.lowered().steps.len(),
            inputs[0].shape(),
            m.threads()
        );
        if args.profile {
            let total: f64 = timings.iter().map(|t| t.time.as_secs_f64()).sum();
            for t in &timings {
                let ms = t.time.as_secs_f64() * 1e3;
                println!(
                    "  {:<40} {:<22} {ms:8.3} ms {:5.1} %",
                    t.name,
                    t.kernel,
                    100.0 * t.time.as_secs_f64() / total.max(1e-12)
                );
            }
        }
    }
    if let Some(path) = &args.output {
        let first = outputs.first().ok_or("the model has no outputs")?;
        npy::write(path, &to_npy(first)?).map_err(|e| format!("{}: {e}", path.display()))?;
        if !args.json {
            println!("wrote output {:?} to {}", first.shape(), path.display());
        }
    } else if !args.json {
        for (&id, t) in lowered.outputs().iter().zip(&outputs) {
            println!(
                "output '{}' {:?} {}",
                lowered.value(id).name,
                t.shape(),
                t.dtype()
            );
            print_rows(t, args.rows);
        }
    }
    Ok(())
}

/// Runs `inputs`; a single-input model exported with a fixed batch of 1 runs once per
/// image, its outputs stacked along axis 0.
pub(crate) fn run_batch(
    exec: &Executor,
    inputs: &[Tensor],
) -> Result<Vec<Tensor>, q8_frontend::error::Error> {
    let g = exec.graph();
    let fixed_one = g
        .inputs()
        .first()
        .is_some_and(|&i| g.value(i).ty.shape.dims().first() == Some(&Dim::Known(1)));
    let [input] = inputs else {
        return exec.run(inputs);
    };
    let n = input.shape().first().copied().unwrap_or(1);
    let Some(values) = input.as_f32().filter(|_| fixed_one && n > 1) else {
        return exec.run(inputs);
    };
    let mut one_shape = input.shape().to_vec();
    one_shape[0] = 1;
    let mut stacked: Vec<(Vec<usize>, Vec<f32>)> = Vec::new();
    for image in values.chunks_exact(values.len() / n) {
        let outs = exec.run(&[Tensor::from_f32(one_shape.clone(), image.to_vec())?])?;
        stacked.resize(outs.len(), (Vec::new(), Vec::new()));
        for ((shape, data), out) in stacked.iter_mut().zip(&outs) {
            *shape = out.shape().to_vec();
            data.extend_from_slice(out.as_f32().unwrap_or_default());
        }
    }
    stacked
        .into_iter()
        .map(|(mut shape, data)| {
            if let Some(first) = shape.first_mut() {
                *first = n;
            }
            Tensor::from_f32(shape, data)
        })
        .collect()
}

/// Reads an f32 or f64 `.npy` array as an f32 tensor.
pub(crate) fn read_f32(path: &PathBuf) -> Result<Tensor, String> {
    let t = inputs::read_tensor(path).map_err(|e| e.to_string())?;
    if t.as_f32().is_none() {
        return Err(format!(
            "{}: input must be f32 or f64, found {}",
            path.display(),
            t.dtype()
        ));
    }
    Ok(t)
}

fn to_npy(t: &Tensor) -> Result<NpyArray, String> {
    let shape = t.shape().to_vec();
    let array = match t.data() {
        TensorData::F32(v) => NpyArray::new(shape, v.clone()),
        TensorData::U8(v) => NpyArray::new(shape, v.clone()),
        TensorData::I8(v) => NpyArray::new(shape, v.clone()),
        TensorData::I32(v) => NpyArray::new(shape, v.clone()),
        TensorData::I64(v) => NpyArray::new(shape, v.clone()),
        TensorData::Bool(v) => NpyArray::new(shape, v.clone()),
    };
    array.map_err(|e| e.to_string())
}

/// Prints up to `rows` rows (the last axis is a row) and, for f32, each row's top-1 index.
fn print_rows(t: &Tensor, rows: usize) {
    let Some(values) = t.as_f32() else {
        println!("  (non-f32 output: use -o to save it)");
        return;
    };
    let width = t.shape().last().copied().unwrap_or(1).max(1);
    let total = values.len() / width;
    for (i, row) in values.chunks_exact(width).take(rows).enumerate() {
        let shown: Vec<String> = row.iter().take(10).map(|v| format!("{v:9.4}")).collect();
        let more = if width > 10 { " ..." } else { "" };
        let top = argmax(row);
        println!("  [{i:>4}] top-1 {top:>4} | {}{more}", shown.join(" "));
    }
    if total > rows {
        let tops: Vec<String> = values
            .chunks_exact(width)
            .map(|row| argmax(row).to_string())
            .collect();
        let preview = tops.iter().take(64).cloned().collect::<Vec<_>>().join(" ");
        let more = if total > 64 { " ..." } else { "" };
        println!(
            "  ... {} more rows; top-1 of all {total}: {preview}{more}",
            total - rows
        );
    }
}

/// Index of the largest value (the first one on ties).
pub(crate) fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .fold(0, |m, (j, v)| if *v > row[m] { j } else { m })
}
