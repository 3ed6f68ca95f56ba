//! `q8 bench conv`: milliseconds and GOPS (2 * MACs / median time) of every distinct
//! ResNet-18 convolution, u8 NHWC in and out, prepacked weights, bias and the layer's real
//! epilogue (ReLU; residual add + ReLU for the second conv of each basic block; nothing for
//! the 1x1 downsample convs), plus the total over all 20 convs (each distinct layer times
//! the number of times the network runs it).
//!
//! Next to the median wall time it reports the mean CPU time per run and thread (from the
//! scheduler's per-thread accounting): on a host shared with other work the wall time
//! includes time the bench was not running, the CPU time does not.

use std::time::Instant;

use q8_kernels::conv::{
    ConvEpilogue, ConvGeometry, ConvOutput, ConvWeights, Nhwc, PackedConvWeights, Padding,
    Residual, conv2d,
};
use q8_kernels::cpu::{self, Tier};

use super::common::{Rng, median, parse_list, positive, tiers};
use q8_kernels::{Activation, QParams};

/// One distinct ResNet-18 conv: name, input H = W, C_in, C_out, kernel, stride, padding,
/// whether it adds the residual, whether it ends in ReLU, how often the network runs it.
struct Layer {
    name: &'static str,
    size: usize,
    c_in: usize,
    c_out: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
    residual: bool,
    relu: bool,
    count: usize,
}

const fn layer(
    name: &'static str,
    (size, c_in, c_out): (usize, usize, usize),
    (kernel, stride, pad): (usize, usize, usize),
    (residual, relu, count): (bool, bool, usize),
) -> Layer {
    Layer {
        name,
        size,
        c_in,
        c_out,
        kernel,
        stride,
        pad,
        residual,
        relu,
        count,
    }
}

/// The 20 convs of ResNet-18 as 15 distinct layers with their multiplicities.
const LAYERS: [Layer; 15] = [
    layer(
        "conv1 7x7s2 3-64",
        (224, 3, 64),
        (7, 2, 3),
        (false, true, 1),
    ),
    layer("l1 3x3 64", (56, 64, 64), (3, 1, 1), (false, true, 2)),
    layer("l1 3x3 64 +res", (56, 64, 64), (3, 1, 1), (true, true, 2)),
    layer(
        "l2 3x3s2 64-128",
        (56, 64, 128),
        (3, 2, 1),
        (false, true, 1),
    ),
    layer(
        "l2 1x1s2 64-128",
        (56, 64, 128),
        (1, 2, 0),
        (false, false, 1),
    ),
    layer("l2 3x3 128", (28, 128, 128), (3, 1, 1), (false, true, 1)),
    layer(
        "l2 3x3 128 +res",
        (28, 128, 128),
        (3, 1, 1),
        (true, true, 2),
    ),
    layer(
        "l3 3x3s2 128-256",
        (28, 128, 256),
        (3, 2, 1),
        (false, true, 1),
    ),
    layer(
        "l3 1x1s2 128-256",
        (28, 128, 256),
        (1, 2, 0),
        (false, false, 1),
    ),
    layer("l3 3x3 256", (14, 256, 256), (3, 1, 1), (false, true, 1)),
    layer(
        "l3 3x3 256 +res",
        (14, 256, 256),
        (3, 1, 1),
        (true, true, 2),
    ),
    layer(
        "l4 3x3s2 256-512",
        (14, 256, 512),
        (3, 2, 1),
        (false, true, 1),
    ),
    layer(
        "l4 1x1s2 256-512",
        (14, 256, 512),
        (1, 2, 0),
        (false, false, 1),
    ),
    layer("l4 3x3 512", (7, 512, 512), (3, 1, 1), (false, true, 1)),
    layer("l4 3x3 512 +res", (7, 512, 512), (3, 1, 1), (true, true, 2)),
];

/// Arguments of `q8 bench conv`.
#[derive(clap::Args)]
pub struct Args {
    /// Comma-separated batch sizes.
    #[arg(long, default_value = "1,16")]
    batch: String,
    /// Comma-separated thread counts.
    #[arg(long, default_value = "1,2")]
    threads: String,
    /// Comma-separated tiers (scalar, avx2, avx-vnni, avx512-vnni, amx); default: the best
    /// available tier.
    #[arg(long)]
    tier: Option<String>,
    /// Timed repetitions per measurement (default: adaptive, about 0.2 s each, >= 3).
    #[arg(long)]
    reps: Option<usize>,
    /// One JSON object per measurement (and per total) instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs the benchmark.
pub fn run(args: Args) -> Result<(), String> {
    let batches = parse_list(&args.batch, "batch", positive)?;
    let threads = parse_list(&args.threads, "thread count", positive)?;
    let tiers = tiers(args.tier.as_deref(), || {
        Ok(vec![cpu::default_tier().map_err(|e| e.to_string())?])
    })?;
    if args.reps == Some(0) {
        return Err("--reps must be >= 1".into());
    }
    if !args.json {
        println!(
            "{:<12} {:<18} {:>5} {:>3} {:>4} {:>10} {:>8} {:>10} {:>8}",
            "tier", "layer", "batch", "thr", "runs", "median ms", "GOPS", "cpu ms", "cpu GOPS"
        );
    }
    for &tier in &tiers {
        for &batch in &batches {
            for &t in &threads {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(t)
                    .build()
                    .map_err(|e| e.to_string())?;
                let mut total = Timing {
                    cpu_ms: Some(0.0),
                    ..Timing::default()
                };
                for l in &LAYERS {
                    let m = pool.install(|| measure(tier, l, batch, args.reps))?;
                    report(tier, l.name, batch, t, l.count, m, args.json);
                    let runs = l.count as f64;
                    total.ms += m.ms * runs;
                    total.cpu_ms = total.cpu_ms.zip(m.cpu_ms).map(|(a, b)| a + b * runs);
                    total.ops += m.ops * runs;
                }
                report(tier, "total", batch, t, 20, total, args.json);
            }
        }
    }
    Ok(())
}

/// One layer's (or the total's) measurement.
#[derive(Clone, Copy, Default)]
struct Timing {
    /// Median wall-clock milliseconds per run.
    ms: f64,
    /// Mean CPU milliseconds per run and thread (Linux only; `None` when the runs were too
    /// short to measure it): on a host shared with other processes, what a run costs when it
    /// gets its cores to itself. With several threads it includes rayon's idle spinning.
    cpu_ms: Option<f64>,
    /// Operations per run (2 * MACs).
    ops: f64,
}

/// Shortest CPU time span whose mean per run is reported (tick granularity makes shorter
/// spans meaningless).
const MIN_CPU_SPAN_NS: u64 = 50_000_000;

/// Nanoseconds all threads of this process have spent on a CPU, from
/// `/proc/self/task/*/schedstat`; `None` where that is unavailable.
fn cpu_ns() -> Option<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir("/proc/self/task").ok()? {
        let stat = std::fs::read_to_string(entry.ok()?.path().join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

/// Times runs of `l` (u8 in/out, bias, its epilogue) on the current rayon pool.
fn measure(tier: Tier, l: &Layer, batch: usize, reps: Option<usize>) -> Result<Timing, String> {
    let e = |e: q8_kernels::Error| e.to_string();
    let geom = ConvGeometry::new(
        Nhwc::new(batch, l.size, l.size, l.c_in),
        l.c_out,
        [l.kernel; 2],
    )
    .with_stride([l.stride; 2])
    .with_padding(Padding::uniform(l.pad));
    let out_shape = geom.output().map_err(e)?;
    let mut rng = Rng(0x9E37_79B9 ^ (l.size * 31 + l.c_in * 7 + l.c_out) as u64);
    let w: Vec<i8> = (0..geom.weights_len()).map(|_| rng.weight()).collect();
    let scales: Vec<f32> = (0..l.c_out).map(|j| 0.002 + j as f32 * 1e-6).collect();
    let bias: Vec<f32> = (0..l.c_out).map(|j| (j % 7) as f32 * 0.1 - 0.3).collect();
    let weights = ConvWeights {
        data: &w,
        scales: &scales,
        bias: Some(&bias),
    };
    let packed = PackedConvWeights::new(tier, &geom, &weights).map_err(e)?;
    let input = rng.bytes(geom.input.len());
    let residual = rng.bytes(out_shape.len());
    let (in_qp, res_qp, out_qp) = (
        QParams::new(0.02, 3).map_err(e)?,
        QParams::new(0.03, 5).map_err(e)?,
        QParams::new(0.05, 0).map_err(e)?,
    );
    let epilogue = ConvEpilogue {
        residual: l.residual.then_some(Residual {
            data: &residual,
            qparams: res_qp,
        }),
        activation: if l.relu {
            Activation::Relu
        } else {
            Activation::None
        },
    };
    let mut out = vec![0u8; out_shape.len()];
    let mut once = || -> Result<f64, String> {
        let t = Instant::now();
        let o = ConvOutput::U8 {
            data: &mut out,
            qparams: out_qp,
        };
        conv2d(tier, &packed, &input, in_qp, &epilogue, o).map_err(e)?;
        Ok(t.elapsed().as_secs_f64())
    };
    let first = once()?;
    let cpu_before = cpu_ns();
    let reps = reps.unwrap_or_else(|| ((0.2 / first) as usize).clamp(3, 500));
    let times = (0..reps)
        .map(|_| once())
        .collect::<Result<Vec<f64>, String>>()?;
    // The kernel updates a running thread's total at scheduler ticks (a few ms): only a
    // span of many ticks gives a usable mean.
    let cpu_ms = cpu_before
        .zip(cpu_ns())
        .map(|(a, b)| b.saturating_sub(a))
        .filter(|&ns| ns >= MIN_CPU_SPAN_NS)
        .map(|ns| ns as f64 / 1e6 / (reps * rayon::current_num_threads()) as f64);
    let ops = 2.0 * (out_shape.len() * geom.reduction_len()) as f64;
    Ok(Timing {
        ms: median(times) * 1e3,
        cpu_ms,
        ops,
    })
}

/// One `q8 bench conv --json` row (`null` where CPU time was not measurable).
#[derive(serde::Serialize)]
struct ConvJson<'a> {
    layer: &'a str,
    batch: usize,
    threads: usize,
    tier: &'static str,
    runs: usize,
    ms: f64,
    gops: f64,
    cpu_ms: Option<f64>,
    cpu_gops: Option<f64>,
}

fn report(
    tier: Tier,
    layer: &str,
    batch: usize,
    threads: usize,
    runs: usize,
    m: Timing,
    json: bool,
) {
    let gops = m.ops / (m.ms * 1e-3) / 1e9;
    let cpu_gops = m.cpu_ms.map(|c| m.ops / (c * 1e-3) / 1e9);
    if json {
        let row = ConvJson {
            layer,
            batch,
            threads,
            tier: tier.name(),
            runs,
            ms: m.ms,
            gops,
            cpu_ms: m.cpu_ms,
            cpu_gops,
        };
        // A plain struct of numbers and strings always serializes.
        let _ = crate::cmd::print_json(&row);
    } else {
        let opt = |v: Option<f64>, digits: usize| v.map_or("-".into(), |v| format!("{v:.digits$}"));
        println!(
            "{:<12} {:<18} {:>5} {:>3} {:>4} {:>10.3} {:>8.1} {:>10} {:>8}",
            tier.name(),
            layer,
            batch,
            threads,
            runs,
            m.ms,
            gops,
            opt(m.cpu_ms, 3),
            opt(cpu_gops, 1)
        );
    }
}
