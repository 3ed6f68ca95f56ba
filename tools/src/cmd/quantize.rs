//! `q8 quantize`: post-training quantization of an fp32 ONNX model with the X86 recipe
//! (prepare, calibrate on a `.npy` set with a progress bar, convert), writing a QDQ ONNX
//! model; prints the coverage report and, with `--compare`, the per-layer SQNR table.

use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use q8_frontend::exec::ExecOptions;
use q8_frontend::ir::{Graph, Tensor};
use q8_frontend::quant::{
    ActivationQParams, CalibrationProgress, Comparison, CoverageReport, ObserverKind, OpQuantSpec,
    Prepared, QuantConfig, Setting, WeightGranularity, compare, prepare,
};
use q8_frontend::{inputs, onnx};
use serde::Serialize;

/// Arguments of `q8 quantize`.
#[derive(clap::Args)]
pub struct Args {
    /// fp32 ONNX model.
    model: PathBuf,
    /// Calibration inputs, samples on the first axis: a `.npy` array (f32 or f64, NCHW for
    /// image models), one `.npz` with an array per input name, or `name=file.npy` per input
    /// (repeatable).
    #[arg(long, required_unless_present = "dynamic", conflicts_with = "dynamic")]
    calib: Vec<String>,
    /// Dynamic quantization of the linear layers (MatMul with a constant 2-D weight, Gemm):
    /// activations quantized per call (DynamicQuantizeLinear), s8 weights, everything else
    /// fp32; ONNX Runtime's `quantize_dynamic` form. Needs no calibration data.
    #[arg(long)]
    dynamic: bool,
    /// One weight scale per tensor instead of per output channel.
    #[arg(long)]
    per_tensor_weights: bool,
    /// Where to write the QDQ model.
    #[arg(short, long)]
    output: PathBuf,
    /// Samples per calibration (and comparison) batch.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Config file: lines `observer = NAME`, `reduce_range = true|false`, `weight_eps = E`,
    /// `fp32_node = NAME`, `fp32_op = TYPE` (`#` starts a comment). Flags given as well are applied after it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Activation observer: histogram (default, PyTorch's), minmax, moving-average, mse,
    /// percentile:P (e.g. percentile:99.99).
    #[arg(long)]
    observer: Option<String>,
    /// Activations in [0, 127] (CPUs without VNNI).
    #[arg(long)]
    reduce_range: bool,
    /// Floor of the weight scales (default 2^-12, the X86 recipe's; small-magnitude channels,
    /// e.g. after BatchNorm folding, at the floor use fewer than 255 levels: 1.2e-7 lifts it).
    #[arg(long)]
    weight_eps: Option<f32>,
    /// Keep this node (ONNX node name) in fp32; repeatable.
    #[arg(long = "fp32-node")]
    fp32_nodes: Vec<String>,
    /// Keep every node of this op type (e.g. Gemm) in fp32; repeatable.
    #[arg(long = "fp32-op")]
    fp32_ops: Vec<String>,
    /// Inputs to compare fp32 and int8 on, layer by layer, in the forms of `--calib`.
    #[arg(long)]
    compare: Vec<String>,
    /// Print the reports as one JSON object.
    #[arg(long)]
    json: bool,
    /// Worker threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

/// `q8 quantize --json`.
#[derive(Serialize)]
struct QuantizeJson<'a> {
    model: &'a str,
    output: String,
    calibration: CalibrationJson,
    coverage: &'a CoverageReport,
    activations: &'a [ActivationQParams],
    sqnr: Option<&'a Comparison>,
}

/// What calibration saw (`images` counts samples, of any model).
#[derive(Serialize)]
struct CalibrationJson {
    batches: usize,
    images: usize,
    ms: f64,
}

/// Settings from the config file and flags.
#[derive(Debug, Default)]
struct Options {
    observer: Option<ObserverKind>,
    reduce_range: bool,
    weight_eps: Option<f32>,
    fp32_nodes: Vec<String>,
    fp32_ops: Vec<String>,
}

/// Quantizes the model and reports.
pub fn run(args: Args) -> Result<(), String> {
    let model = args.model.display().to_string();
    let config = build_config(&args)?;
    let graph = onnx::load(&args.model).map_err(|e| format!("{model}: {e}"))?;
    let options = ExecOptions {
        threads: args.threads,
    };
    let mut prepared = prepare(&graph, &config, options).map_err(|e| format!("{model}: {e}"))?;
    let start = Instant::now();
    let done = if args.dynamic {
        CalibrationProgress::default()
    } else {
        calibrate(&graph, &mut prepared, &args)?
    };
    let calib_ms = start.elapsed().as_secs_f64() * 1e3;
    let quantized = prepared.convert().map_err(|e| format!("{model}: {e}"))?;
    quantized
        .save(&args.output)
        .map_err(|e| format!("{}: {e}", args.output.display()))?;
    let comparison = if args.compare.is_empty() {
        None
    } else {
        let x = inputs::read_inputs(&graph, &args.compare).map_err(|e| e.to_string())?;
        Some(
            compare(&quantized, batches(&x, args.batch_size)?, options)
                .map_err(|e| format!("comparing on {}: {e}", args.compare.join(" ")))?,
        )
    };
    let coverage = quantized.coverage();
    let floored: Vec<String> = quantized
        .weights
        .iter()
        .filter(|w| w.floor_channels > 0)
        .map(|w| format!("{} ({} channels)", w.node, w.floor_channels))
        .collect();
    if args.json {
        return super::print_json(&QuantizeJson {
            model: &model,
            output: args.output.display().to_string(),
            calibration: CalibrationJson {
                batches: done.batches,
                images: done.samples,
                ms: calib_ms,
            },
            coverage: &coverage,
            activations: &quantized.activations,
            sqnr: comparison.as_ref(),
        });
    }
    if args.dynamic {
        println!("{model}: dynamic quantization (no calibration)");
    } else {
        println!(
            "calibrated {model} on {} images in {} batches ({calib_ms:.0} ms)",
            done.samples, done.batches
        );
    }
    print!("{coverage}");
    if !floored.is_empty() {
        println!(
            "weight channels at the scale floor (fewer than 255 levels; --weight-eps lowers it): {}",
            floored.join(", ")
        );
    }
    if let Some(c) = &comparison {
        print!("{c}");
    }
    println!("wrote {}", args.output.display());
    Ok(())
}

/// Calibrates on `--calib` with a progress bar.
fn calibrate(
    graph: &Graph,
    prepared: &mut Prepared,
    args: &Args,
) -> Result<CalibrationProgress, String> {
    let model = args.model.display();
    let calib = inputs::read_inputs(graph, &args.calib).map_err(|e| e.to_string())?;
    let total = inputs::samples(&calib).map_err(|e| e.to_string())?;
    let bar = ProgressBar::new(total as u64).with_style(
        ProgressStyle::with_template("calibrating {bar:30} {pos}/{len} samples {elapsed}")
            .map_err(|e| e.to_string())?,
    );
    let done = prepared
        .calibrate(batches(&calib, args.batch_size)?, |p| {
            bar.set_position(p.samples as u64)
        })
        .map_err(|e| format!("{model} calibrated on {}: {e}", args.calib.join(" ")))?;
    bar.finish_and_clear();
    Ok(done)
}

/// `set` in batches of `size` samples, for calibration and comparison.
fn batches(set: &[Tensor], size: usize) -> Result<impl Iterator<Item = Vec<Tensor>>, String> {
    if size == 0 {
        return Err("--batch-size must be at least 1".into());
    }
    inputs::batches(set, size).map_err(|e| e.to_string())
}

/// The config from `--config`, then the flags.
fn build_config(args: &Args) -> Result<QuantConfig, String> {
    let mut o = match &args.config {
        Some(path) => read_config_file(path)?,
        None => Options::default(),
    };
    if let Some(name) = &args.observer {
        o.observer = Some(parse_observer(name)?);
    }
    o.reduce_range |= args.reduce_range;
    o.weight_eps = args.weight_eps.or(o.weight_eps);
    o.fp32_nodes.extend(args.fp32_nodes.iter().cloned());
    o.fp32_ops.extend(args.fp32_ops.iter().cloned());
    let mut spec = OpQuantSpec::x86_default()
        .with_reduce_range(o.reduce_range)
        .with_dynamic(args.dynamic);
    if args.per_tensor_weights {
        spec.weight.granularity = WeightGranularity::PerTensor;
    }
    if let Some(kind) = o.observer {
        spec = spec.with_observer(kind);
    }
    if let Some(eps) = o.weight_eps {
        spec = spec.with_weight_eps(eps);
    }
    let mut config = QuantConfig::with_global(Setting::Quantize(spec));
    for op in o.fp32_ops {
        config.set_op_type(op, Setting::Fp32);
    }
    for node in o.fp32_nodes {
        config.set_node(node, Setting::Fp32);
    }
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

fn parse_observer(name: &str) -> Result<ObserverKind, String> {
    Ok(match name {
        "histogram" => ObserverKind::Histogram,
        "minmax" => ObserverKind::MinMax,
        "moving-average" => ObserverKind::MovingAverageMinMax {
            averaging_constant: 0.01,
        },
        "mse" => ObserverKind::Mse,
        other => match other.strip_prefix("percentile:") {
            Some(p) => ObserverKind::Percentile {
                percentile: p
                    .parse()
                    .map_err(|_| format!("observer '{other}': '{p}' is not a number"))?,
            },
            None => {
                return Err(format!(
                    "unknown observer '{other}' (histogram, minmax, moving-average, mse, percentile:P)"
                ));
            }
        },
    })
}

fn read_config_file(path: &Path) -> Result<Options, String> {
    let file = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {file}: {e}"))?;
    let mut o = Options::default();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .map(|(k, v)| (k.trim(), v.trim()))
            .ok_or_else(|| format!("{file} line {}: expected `key = value`", i + 1))?;
        match key {
            "observer" => o.observer = Some(parse_observer(value)?),
            "reduce_range" => {
                o.reduce_range = value.parse().map_err(|_| {
                    format!("{file} line {}: reduce_range must be true or false", i + 1)
                })?;
            }
            "weight_eps" => {
                o.weight_eps =
                    Some(value.parse().map_err(|_| {
                        format!("{file} line {}: weight_eps must be a number", i + 1)
                    })?);
            }
            "fp32_node" => o.fp32_nodes.push(value.to_string()),
            "fp32_op" => o.fp32_ops.push(value.to_string()),
            other => {
                return Err(format!(
                    "{file} line {}: unknown key '{other}' (observer, reduce_range, weight_eps, fp32_node, fp32_op)",
                    i + 1
                ));
            }
        }
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observer_names_parse_or_say_what_is_allowed() {
        assert_eq!(parse_observer("mse").unwrap(), ObserverKind::Mse);
        assert_eq!(
            parse_observer("percentile:99.9").unwrap(),
            ObserverKind::Percentile { percentile: 99.9 }
        );
        let err = parse_observer("percentile:x").unwrap_err();
        assert!(err.contains("'x' is not a number"), "{err}");
        let err = parse_observer("kl").unwrap_err();
        assert!(err.contains("unknown observer 'kl'"), "{err}");
    }

    #[test]
    fn config_files_parse_and_errors_name_the_line() {
        let dir = std::env::temp_dir();
        let good = dir.join(format!("q8_quantize_cfg_{}.txt", std::process::id()));
        std::fs::write(
            &good,
            "# digits\nobserver = minmax\nreduce_range = true\nweight_eps = 1e-6\nfp32_node = /fc/Gemm # head\nfp32_op = Mul\n",
        )
        .unwrap();
        let o = read_config_file(&good).unwrap();
        assert_eq!(o.observer, Some(ObserverKind::MinMax));
        assert!(o.reduce_range);
        assert_eq!(o.weight_eps, Some(1e-6));
        assert_eq!(o.fp32_nodes, ["/fc/Gemm"]);
        assert_eq!(o.fp32_ops, ["Mul"]);
        std::fs::write(&good, "observer = mse\nthreads 4\n").unwrap();
        let err = read_config_file(&good).unwrap_err();
        assert!(err.contains("line 2: expected `key = value`"), "{err}");
        std::fs::write(&good, "weight_eps = tiny\n").unwrap();
        let err = read_config_file(&good).unwrap_err();
        assert!(err.contains("line 1: weight_eps must be a number"), "{err}");
        std::fs::write(&good, "bits = 4\n").unwrap();
        let err = read_config_file(&good).unwrap_err();
        assert!(err.contains("line 1: unknown key 'bits'"), "{err}");
        std::fs::remove_file(&good).unwrap();
    }
}
