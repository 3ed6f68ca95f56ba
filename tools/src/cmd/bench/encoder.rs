//! `q8 bench encoder <file.onnx>`: a BERT-style token encoder (inputs `input_ids`,
//! `attention_mask`) quantized statically in memory (linear layers int8, calibrated on random
//! token batches), then the median latency of the int8 runtime and of the fp32 executor per
//! batch, sequence length and thread count, and the int8 speedup.

use std::path::PathBuf;

use q8_frontend::exec::{ExecOptions, Executor};
use q8_frontend::models::{quantize_encoder, token_batch};
use q8_frontend::onnx;
use q8_frontend::quant::QuantConfig;
use q8_frontend::runtime::{Model, RuntimeOptions};

use super::common::{parse_list, positive};
use super::model::median_time;

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
    /// One JSON object per measurement.
    #[arg(long)]
    json: bool,
}

/// Runs `q8 bench encoder`.
pub fn run(args: Args) -> Result<(), String> {
    let name = args.model.display().to_string();
    let e = |x: &dyn std::fmt::Display| format!("{name}: {x}");
    let graph = onnx::load(&args.model).map_err(|x| e(&x))?;
    let batches: Vec<usize> = parse_list(&args.batch, "batch", positive)?;
    let threads: Vec<usize> = parse_list(&args.threads, "threads", positive)?;
    let config = QuantConfig::x86_default();
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
                println!(
                    "{{\"model\":{name:?},\"tier\":\"{}\",\"threads\":{t},\"batch\":{b},\"seq\":{},\"int8_median_ms\":{ms8:.3},\"fp32_median_ms\":{ms32:.3}}}",
                    model.tier(),
                    args.seq
                );
            } else {
                println!(
                    "{name}: {} {t} thread(s), batch {b} x {}: int8 {ms8:.2} ms, fp32 {ms32:.2} ms, speedup {:.2}x",
                    model.tier(),
                    args.seq,
                    ms32 / ms8
                );
            }
        }
    }
    Ok(())
}
