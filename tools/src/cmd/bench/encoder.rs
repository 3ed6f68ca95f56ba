//! `q8 bench encoder <file.onnx>`: a BERT-style token encoder (inputs `input_ids`,
//! `attention_mask`) quantized in memory (linear layers int8: statically, calibrated on random
//! token batches, or with `--dynamic` activations quantized per call), then the median latency of the int8 runtime and of the fp32 executor per
//! batch, sequence length and thread count, and the int8 speedup.

use std::path::PathBuf;

use q8_frontend::exec::{ExecOptions, Executor};
use q8_frontend::models::{quantize_encoder, token_batch};
use q8_frontend::onnx;
use q8_frontend::quant::QuantConfig;
use q8_frontend::runtime::{Model, RuntimeOptions, StepTiming};

use super::common::{parse_list, positive};
use super::model::median_time;

/// One `q8 bench encoder --json` row.
#[derive(serde::Serialize)]
struct EncoderJson<'a> {
    model: &'a str,
    tier: &'static str,
    threads: usize,
    batch: usize,
    seq: usize,
    /// "static" or "dynamic".
    mode: &'static str,
    int8_median_ms: f64,
    fp32_median_ms: f64,
}

/// Arguments of `q8 bench encoder`.
#[derive(clap::Args)]
pub struct Args {
    /// fp32 ONNX encoder.
    model: PathBuf,
    /// Batch sizes, comma-separated.
    #[arg(long, default_value = "1,8")]
    batch: String,
    /// Sequence length.
    #[arg(long, default_value_t = 128)]
    seq: usize,
    /// Thread counts, comma-separated.
    #[arg(long, default_value = "1,2")]
    threads: String,
    /// Token ids are drawn from 1..vocab (30522: BERT / MiniLM).
    #[arg(long, default_value_t = 30522)]
    vocab: usize,
    /// Minimum timed runs per measurement.
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Dynamic quantization (activation qparams per call) instead of the static recipe.
    #[arg(long)]
    dynamic: bool,
    /// One JSON object per measurement.
    #[arg(long)]
    json: bool,
    /// After each measurement, the int8 run's time per kernel kind and its slowest steps
    /// (each step's fastest of `reps` profiled runs).
    #[arg(long)]
    profile: bool,
}

/// Runs `q8 bench encoder`.
pub fn run(args: Args) -> Result<(), String> {
    let name = args.model.display().to_string();
    let e = |x: &dyn std::fmt::Display| format!("{name}: {x}");
    let graph = onnx::load(&args.model).map_err(|x| e(&x))?;
    let batches: Vec<usize> = parse_list(&args.batch, "batch", positive)?;
    let threads: Vec<usize> = parse_list(&args.threads, "threads", positive)?;
    let (config, mode) = if args.dynamic {
        (QuantConfig::dynamic(), "dynamic")
    } else {
        (QuantConfig::x86_default(), "static")
    };
    let calib = ExecOptions { threads: 0 };
    let quantized =
        quantize_encoder(&graph, &config, calib, args.vocab, args.seq, 4).map_err(|x| e(&x))?;
    for &t in &threads {
        let model = Model::from_graph(
            &quantized.graph,
            &RuntimeOptions {
                tier: None,
                threads: t,
            },
        )
        .map_err(|x| e(&x))?;
        let exec = Executor::new(&graph, ExecOptions { threads: t }).map_err(|x| e(&x))?;
        for &b in &batches {
            let (ids, mask) = token_batch(b, args.seq, args.vocab, 7).map_err(|x| e(&x))?;
            let inputs = [ids, mask];
            let (t8, _) = median_time(args.reps, || {
                model.run(&inputs).map(drop).map_err(|x| e(&x))
            })?;
            let (t32, _) =
                median_time(args.reps, || exec.run(&inputs).map(drop).map_err(|x| e(&x)))?;
            let (ms8, ms32) = (t8.as_secs_f64() * 1e3, t32.as_secs_f64() * 1e3);
            if args.json {
                crate::cmd::print_json(&EncoderJson {
                    model: &name,
                    tier: model.tier().name(),
                    threads: t,
                    batch: b,
                    seq: args.seq,
                    mode,
                    int8_median_ms: ms8,
                    fp32_median_ms: ms32,
                })?;
            } else {
                println!(
                    "{name}: {} {t} thread(s), batch {b} x {}: int8 ({mode}) {ms8:.2} ms, fp32 {ms32:.2} ms, speedup {:.2}x",
                    model.tier(),
                    args.seq,
                    ms32 / ms8
                );
            }
            if args.profile {
                let mut steps = model.run_profiled(&inputs).map_err(|x| e(&x))?.1;
                for _ in 1..args.reps {
                    let again = model.run_profiled(&inputs).map_err(|x| e(&x))?.1;
                    for (s, a) in steps.iter_mut().zip(again) {
                        s.time = s.time.min(a.time);
                    }
                }
                print_kernel_profile(&steps);
            }
        }
    }
    Ok(())
}

/// Total time, step count and share per kernel label, largest first, then the slowest
/// steps.
fn print_kernel_profile(steps: &[StepTiming]) {
    let mut by_kernel: Vec<(&str, f64, usize)> = Vec::new();
    for s in steps {
        let ms = s.time.as_secs_f64() * 1e3;
        match by_kernel.iter_mut().find(|(k, ..)| *k == s.kernel) {
            Some(entry) => {
                entry.1 += ms;
                entry.2 += 1;
            }
            None => by_kernel.push((s.kernel, ms, 1)),
        }
    }
    by_kernel.sort_by(|a, b| b.1.total_cmp(&a.1));
    let total: f64 = by_kernel.iter().map(|k| k.1).sum();
    for (kernel, ms, n) in by_kernel {
        println!(
            "  {kernel:<24} {n:4} steps {ms:8.3} ms {:5.1} %",
            100.0 * ms / total.max(1e-12)
        );
    }
    let mut slowest: Vec<&StepTiming> = steps.iter().collect();
    slowest.sort_by_key(|s| std::cmp::Reverse(s.time));
    for s in slowest.iter().take(12) {
        let ms = s.time.as_secs_f64() * 1e3;
        println!("    {:<48} {:<24} {ms:8.3} ms", s.name, s.kernel);
    }
}
