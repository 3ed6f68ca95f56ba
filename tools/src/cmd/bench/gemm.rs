//! `q8 bench gemm`: GOPS (2·M·N·K / median time) of the packed GEMM per shape, tier and
//! thread count, with prepacked weights and the full u8 epilogue (bias + ReLU), next to the
//! tier's per-core peak measured by an instruction-throughput probe. "% peak" is relative to
//! that per-core peak times the thread count; `--json` also gives the per-core `peak_gops`.
//!
//! Weights are drawn like per-channel-quantized trained weights (bell-shaped, max |w| near
//! 127), which is what decides how much of the exact AVX2 path needs the residual pass.

use std::time::Instant;

use q8_kernels::cpu::{self, Tier};
use q8_kernels::gemm::{self, Epilogue, GemmOptions, Output, PackedWeights, Parallelism};
use q8_kernels::{Activation, QParams};

use super::common::{Rng, median, parse_list, positive, tiers};

/// The default shapes (M x N x K): model layers from batch-1 GEMV to large square GEMMs.
pub const DEFAULT_SHAPES: &str = "1x512x4608,49x512x4608,196x256x2304,784x128x1152,\
3136x64x576,12544x64x147,1024x1024x1024,2048x2048x2048,128x768x768,128x3072x768";

/// `--transformer`: encoder linear layers, M = batch x sequence rows (1 token to 4 x 128)
/// against the BERT-base / MiniLM widths (N x K of 384..4096: QKV / output 768 x 768,
/// FFN 3072 x 768 and 768 x 3072, MiniLM 384 x 384 and 1536 x 384, a 4096 square).
pub const TRANSFORMER_SHAPES: &str = "1x768x768,16x768x768,64x768x768,128x768x768,512x768x768,\
1x3072x768,16x3072x768,128x3072x768,512x3072x768,1x768x3072,128x768x3072,512x768x3072,\
1x384x384,128x384x384,1024x384x384,128x1536x384,128x384x1536,1x4096x4096,64x4096x4096";

/// Arguments of `q8 bench gemm`.
#[derive(clap::Args)]
pub struct Args {
    /// Comma-separated MxNxK shapes.
    #[arg(long, default_value = DEFAULT_SHAPES)]
    shapes: String,
    /// Benchmark the transformer shapes (`TRANSFORMER_SHAPES`: M = 1..1024 rows against
    /// N, K in 384..4096) instead of `--shapes`.
    #[arg(long, conflicts_with = "shapes")]
    transformer: bool,
    /// Comma-separated thread counts.
    #[arg(long, default_value = "1,2")]
    threads: String,
    /// Comma-separated tiers (scalar, avx2, avx-vnni, avx512-vnni, amx); default: every
    /// available SIMD tier.
    #[arg(long)]
    tier: Option<String>,
    /// Timed repetitions per measurement (default: adaptive, about 0.4 s each, >= 5).
    #[arg(long)]
    reps: Option<usize>,
    /// One JSON object per measurement instead of a table.
    #[arg(long)]
    json: bool,
}

fn parse_shape(s: &str) -> Option<(usize, usize, usize)> {
    let d: Vec<usize> = s
        .split(['x', 'X'])
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    match d[..] {
        [m, n, k] if m > 0 && n > 0 && k > 0 => Some((m, n, k)),
        _ => None,
    }
}

struct Measurement {
    tier: Tier,
    shape: (usize, usize, usize),
    threads: usize,
    median_ms: f64,
    gops: f64,
    /// AVX2: share of K groups that also run the residual pass.
    residual: Option<f64>,
}

/// Runs the benchmark table.
pub fn run(args: Args) -> Result<(), String> {
    let list = if args.transformer {
        TRANSFORMER_SHAPES
    } else {
        &args.shapes
    };
    let shapes = parse_list(list, "shape (want MxNxK)", parse_shape)?;
    let threads = parse_list(&args.threads, "thread count", positive)?;
    if args.reps == Some(0) {
        return Err("--reps must be >= 1".into());
    }
    let tiers = tiers(args.tier.as_deref(), || {
        Ok(cpu::available_tiers()
            .into_iter()
            .filter(|&t| t != Tier::Scalar)
            .collect())
    })?;
    if !args.json {
        println!(
            "{:<12} {:>16} {:>3} {:>10} {:>8} {:>7}",
            "tier", "MxNxK", "thr", "median ms", "GOPS", "% peak"
        );
    }
    for &tier in &tiers {
        let peak = gemm::peak_gops(tier).map_err(|e| e.to_string())?;
        for &shape in &shapes {
            for &t in &threads {
                let r = measure(tier, shape, t, args.reps)?;
                report(&r, peak, args.json);
            }
        }
    }
    Ok(())
}

fn measure(
    tier: Tier,
    (m, n, k): (usize, usize, usize),
    threads: usize,
    reps: Option<usize>,
) -> Result<Measurement, String> {
    let mut rng = Rng(0x2545_F491 ^ (m * 7 + n * 13 + k) as u64);
    let a = rng.bytes(m * k);
    let w: Vec<i8> = (0..n * k).map(|_| rng.weight()).collect();
    let scales: Vec<f32> = (0..n).map(|j| 0.001 + j as f32 * 1e-6).collect();
    let bias: Vec<f32> = (0..n).map(|j| (j % 7) as f32 - 3.0).collect();
    let e = |e: q8_kernels::Error| e.to_string();
    let packed = PackedWeights::new(tier, n, k, &w, &scales, Some(&bias)).map_err(e)?;
    let aq = QParams::new(0.02, 128).map_err(e)?;
    let oq = QParams::new(0.05, 0).map_err(e)?;
    let ep = Epilogue {
        activation: Activation::Relu,
        residual: None,
    };
    let opts = GemmOptions {
        tier: Some(tier),
        parallelism: Parallelism::Threads(threads),
    };
    let mut c = vec![0u8; m * n];
    let mut once = || -> Result<f64, String> {
        let t = Instant::now();
        let out = Output::U8 {
            data: &mut c,
            ldc: n,
            qparams: oq,
        };
        gemm::gemm(&a, k, m, aq, &packed, &ep, out, &opts).map_err(e)?;
        Ok(t.elapsed().as_secs_f64())
    };
    let first = once()?;
    let reps = reps.unwrap_or_else(|| ((0.4 / first) as usize).clamp(5, 400));
    let times = (0..reps)
        .map(|_| once())
        .collect::<Result<Vec<f64>, String>>()?;
    let median = median(times);
    Ok(Measurement {
        tier,
        shape: (m, n, k),
        threads,
        median_ms: median * 1e3,
        gops: 2.0 * (m * n * k) as f64 / median / 1e9,
        residual: packed.avx2_residual_fraction(),
    })
}

/// One `q8 bench gemm --json` row (`null` where the peak or residual is unknown).
#[derive(serde::Serialize)]
struct GemmJson {
    tier: &'static str,
    m: usize,
    n: usize,
    k: usize,
    threads: usize,
    gops: f64,
    peak_gops: Option<f64>,
    peak_gops_all_threads: Option<f64>,
    pct_peak: Option<f64>,
    median_ms: f64,
    avx2_residual_pct: Option<f64>,
}

fn report(r: &Measurement, peak: Option<f64>, json: bool) {
    let (m, n, k) = r.shape;
    let peak_all = peak.map(|p| p * r.threads as f64);
    let pct = peak_all.map(|p| 100.0 * r.gops / p);
    if json {
        let row = GemmJson {
            tier: r.tier.name(),
            m,
            n,
            k,
            threads: r.threads,
            gops: r.gops,
            peak_gops: peak,
            peak_gops_all_threads: peak_all,
            pct_peak: pct,
            median_ms: r.median_ms,
            avx2_residual_pct: r.residual.map(|f| 100.0 * f),
        };
        // A plain struct of numbers and strings always serializes.
        let _ = crate::cmd::print_json(&row);
    } else {
        let pct = pct.map_or("-".to_string(), |p| format!("{p:.0}%"));
        let note = r.residual.map_or(String::new(), |f| {
            format!("  (residual pass on {:.0}% of K groups)", 100.0 * f)
        });
        println!(
            "{:<12} {:>16} {:>3} {:>10.3} {:>8.1} {:>7}{note}",
            r.tier.name(),
            format!("{m}x{n}x{k}"),
            r.threads,
            r.median_ms,
            r.gops,
            pct
        );
    }
}
