//! `q8 bench model <file.onnx>` and `q8 bench resnet18`: end-to-end latency of a whole
//! network (median of timed runs after a warm-up), images per second, and with `--fp32` the
//! fp32 executor on the same model and the int8 speedup over it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use q8_frontend::exec::{ExecOptions, Executor};
use q8_frontend::ir::{Graph, Tensor};
use q8_frontend::models::{ResNet18Config, resnet18};
use q8_frontend::quant::{QuantConfig, prepare};
use q8_frontend::runtime::{Model, RuntimeOptions};
use q8_frontend::{inputs, onnx};
use q8_kernels::Tier;

/// Arguments of `q8 bench model`.
#[derive(clap::Args)]
pub struct ModelArgs {
    /// ONNX model (QDQ models run int8; fp32 models only with `--fp32`).
    model: PathBuf,
    /// Inputs to time instead of synthetic ones (then `--batch` is ignored): a `.npy`,
    /// `name=file.npy` per graph input (repeatable), or one `.npz` with an array per input.
    /// Without it every input is synthesized: `--batch` on the first axis, other symbolic
    /// dims 1, f32 a ramp, integers 1, bools true.
    #[arg(long)]
    input: Vec<String>,
    #[command(flatten)]
    common: Common,
}

/// Arguments of `q8 bench resnet18`.
#[derive(clap::Args)]
pub struct ResNetArgs {
    #[command(flatten)]
    common: Common,
}

/// Options shared by both model benchmarks.
#[derive(clap::Args)]
struct Common {
    /// Batch sizes, comma-separated.
    #[arg(long, default_value = "1,16")]
    batch: String,
    /// Thread counts, comma-separated.
    #[arg(long, default_value = "1,2")]
    threads: String,
    /// Also time the fp32 executor and report the int8 speedup.
    #[arg(long)]
    fp32: bool,
    /// ISA tier of the int8 path.
    #[arg(long)]
    tier: Option<Tier>,
    /// Minimum timed runs per measurement (more are run while under ~1 s).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// One JSON object per measurement.
    #[arg(long)]
    json: bool,
}

/// The networks to time: the QDQ graph for int8, the fp32 graph (if any) for `--fp32`, and
/// the inputs given (synthetic ones per batch size without them).
struct Subject {
    name: String,
    int8: Option<Graph>,
    fp32: Option<Graph>,
    inputs: Option<Vec<Tensor>>,
}

fn parse_list(s: &str, what: &str) -> Result<Vec<usize>, String> {
    s.split(',')
        .map(|p| {
            p.trim()
                .parse::<usize>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("--{what}: '{p}' is not a positive integer"))
        })
        .collect()
}

/// Runs `q8 bench model`.
pub fn run_model(args: ModelArgs) -> Result<(), String> {
    let name = args.model.display().to_string();
    let graph = onnx::load(&args.model).map_err(|e| format!("{name}: {e}"))?;
    let qdq = crate::cmd::eval::is_qdq(&graph);
    let inputs = if args.input.is_empty() {
        None
    } else {
        Some(inputs::read_inputs(&graph, &args.input).map_err(|e| e.to_string())?)
    };
    let subject = Subject {
        name,
        int8: qdq.then(|| graph.clone()),
        fp32: (args.common.fp32 || !qdq).then_some(graph),
        inputs,
    };
    bench(&subject, &args.common)
}

/// Runs `q8 bench <file.onnx> [options]` (the model path given in place of a subcommand).
pub fn run_file(args: &[String]) -> Result<(), String> {
    #[derive(clap::Parser)]
    #[command(name = "q8 bench")]
    struct File {
        #[command(flatten)]
        args: ModelArgs,
    }
    let parsed = <File as clap::Parser>::try_parse_from(
        std::iter::once("q8 bench".to_string()).chain(args.iter().cloned()),
    )
    .map_err(|e| e.to_string().trim_end().replace('\n', " "))?;
    run_model(parsed.args)
}

/// Runs `q8 bench resnet18`.
pub fn run_resnet(args: ResNetArgs) -> Result<(), String> {
    let c = &args.common;
    let (fp32, qdq) = quantized_resnet18(!c.json)?;
    let start = Instant::now();
    let bytes = onnx::encode_model(&onnx::to_model(&qdq).map_err(|e| e.to_string())?);
    let encode = start.elapsed();
    let start = Instant::now();
    let model = Model::load_bytes(
        &bytes,
        &RuntimeOptions {
            tier: c.tier,
            threads: 1,
        },
    )
    .map_err(|e| format!("resnet18: {e}"))?;
    let load = start.elapsed();
    let scratch = model
        .scratch_bytes(&[vec![16, 3, 224, 224]])
        .map_err(|e| e.to_string())?;
    if c.json {
        crate::cmd::print_json(&LoadJson {
            model: "resnet18",
            load_ms: load.as_secs_f64() * 1e3,
            onnx_bytes: bytes.len(),
            scratch_bytes_b16: scratch,
            tier: model.tier().name(),
        })?;
    } else {
        println!(
            "resnet18: QDQ ONNX {:.1} MB (encoded in {:.0} ms); load = import + lower + pack {:.1} ms on {}; batch-16 scratch {:.1} MB",
            bytes.len() as f64 / 1e6,
            encode.as_secs_f64() * 1e3,
            load.as_secs_f64() * 1e3,
            model.tier(),
            scratch as f64 / 1e6
        );
    }
    let subject = Subject {
        name: "resnet18".into(),
        int8: Some(qdq),
        fp32: c.fp32.then_some(fp32),
        inputs: None,
    };
    bench(&subject, c)
}

/// torchvision's ResNet-18 with deterministic random weights, quantized with the X86
/// default recipe on a few deterministic random batches: (fp32 graph, QDQ graph).
pub(crate) fn quantized_resnet18(verbose: bool) -> Result<(Graph, Graph), String> {
    let start = Instant::now();
    let graph = resnet18(ResNet18Config::default()).map_err(|e| format!("resnet18: {e}"))?;
    let mut prepared = prepare(
        &graph,
        &QuantConfig::x86_default(),
        ExecOptions { threads: 0 },
    )
    .map_err(|e| format!("resnet18: {e}"))?;
    let batches = (0..2).map(|i| random_images(4, 224, 100 + i));
    prepared
        .calibrate(batches, |_| {})
        .map_err(|e| format!("resnet18: {e}"))?;
    let quantized = prepared.convert().map_err(|e| format!("resnet18: {e}"))?;
    if verbose {
        println!(
            "resnet18: built and quantized (X86 default recipe, 8 random calibration images) in {:.1} s",
            start.elapsed().as_secs_f64()
        );
    }
    Ok((quantized.fp32, quantized.graph))
}

/// `n` deterministic pseudo-random NCHW 3-channel images, roughly standard normal.
pub(crate) fn random_images(n: usize, size: usize, seed: u64) -> Tensor {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    let values = (0..n * 3 * size * size)
        .map(|_| (next() + next() + next() - 1.5) * 2.0)
        .collect();
    Tensor::from_f32(vec![n, 3, size, size], values).expect("consistent shape")
}

/// Median of timed runs of `f` (one warm-up first).
pub(crate) fn median_time(
    min_reps: usize,
    mut f: impl FnMut() -> Result<(), String>,
) -> Result<(Duration, usize), String> {
    f()?;
    let mut times = Vec::new();
    let budget = Instant::now();
    while times.len() < min_reps.max(1)
        || (budget.elapsed() < Duration::from_secs(1) && times.len() < 200)
    {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed());
    }
    times.sort_unstable();
    Ok((times[times.len() / 2], times.len()))
}

fn bench(subject: &Subject, c: &Common) -> Result<(), String> {
    let batches = match &subject.inputs {
        Some(x) => vec![inputs::samples(x).map_err(|e| e.to_string())?],
        None => parse_list(&c.batch, "batch")?,
    };
    let threads = parse_list(&c.threads, "threads")?;
    let graph = subject
        .int8
        .as_ref()
        .or(subject.fp32.as_ref())
        .ok_or("nothing to benchmark")?;
    for &t in &threads {
        let model = match &subject.int8 {
            Some(g) => Some(
                Model::from_graph(
                    g,
                    &RuntimeOptions {
                        tier: c.tier,
                        threads: t,
                    },
                )
                .map_err(|e| format!("{}: {e}", subject.name))?,
            ),
            None => None,
        };
        let exec = match &subject.fp32 {
            Some(g) => Some(
                Executor::new(g, ExecOptions { threads: t })
                    .map_err(|e| format!("{}: {e}", subject.name))?,
            ),
            None => None,
        };
        for &b in &batches {
            let x = match &subject.inputs {
                Some(x) => x.clone(),
                None => {
                    inputs::synthetic(graph, b).map_err(|e| format!("{}: {e}", subject.name))?
                }
            };
            let fp32 = match &exec {
                Some(e) => {
                    let (med, reps) = median_time(c.reps.min(3), || {
                        e.run(&x).map(drop).map_err(|e| e.to_string())
                    })?;
                    report(c.json, &subject.name, b, t, "fp32", "-", med, reps, None);
                    Some(med)
                }
                None => None,
            };
            if let Some(m) = &model {
                let (med, reps) =
                    median_time(c.reps, || m.run(&x).map(drop).map_err(|e| e.to_string()))?;
                let speedup = fp32.map(|f| f.as_secs_f64() / med.as_secs_f64());
                report(
                    c.json,
                    &subject.name,
                    b,
                    t,
                    "int8",
                    m.tier().name(),
                    med,
                    reps,
                    speedup,
                );
            }
        }
    }
    Ok(())
}

/// `q8 bench resnet18 --json`: the load line.
#[derive(serde::Serialize)]
struct LoadJson {
    model: &'static str,
    load_ms: f64,
    onnx_bytes: usize,
    scratch_bytes_b16: usize,
    tier: &'static str,
}

/// One `q8 bench <model> --json` measurement.
#[derive(serde::Serialize)]
struct MeasurementJson<'a> {
    model: &'a str,
    batch: usize,
    threads: usize,
    precision: &'a str,
    tier: &'a str,
    median_ms: f64,
    images_per_s: f64,
    reps: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    speedup_vs_fp32: Option<f64>,
}

#[allow(clippy::too_many_arguments)]
fn report(
    json: bool,
    model: &str,
    batch: usize,
    threads: usize,
    precision: &str,
    tier: &str,
    median: Duration,
    reps: usize,
    speedup: Option<f64>,
) {
    let ms = median.as_secs_f64() * 1e3;
    let ips = batch as f64 / median.as_secs_f64();
    if json {
        let row = MeasurementJson {
            model,
            batch,
            threads,
            precision,
            tier,
            median_ms: ms,
            images_per_s: ips,
            reps,
            speedup_vs_fp32: speedup,
        };
        // A plain struct of numbers and strings always serializes.
        let _ = crate::cmd::print_json(&row);
    } else {
        let speedup = speedup.map_or(String::new(), |s| format!(", {s:.2}x fp32"));
        println!(
            "{model} b{batch} t{threads} {precision:>4} {tier:>12}: median {ms:9.3} ms, {ips:9.1} images/s ({reps} runs){speedup}"
        );
    }
}
