//! `q8 bench ops`: the memory-bound int8 ops at ResNet-18 / MobileNet-V2 batch-1 sizes, in
//! milliseconds and GB/s (bytes read + written / median time), plus the depthwise 3x3 conv
//! on 56x56x144 (GOPS and GB/s). A plain `memcpy` of the same size is the bandwidth yardstick.

use std::time::Instant;

use q8_kernels::conv::{
    ConvEpilogue, ConvGeometry, ConvOutput, ConvWeights, Nhwc, PackedConvWeights, Padding, conv2d,
};
use q8_kernels::cpu::{self, Tier};
use q8_kernels::ops::{self, AddParams, ConcatInput, Pool2d};
use q8_kernels::{Activation, QParams};

use super::common::{median, parse_list, positive, tiers};

/// Arguments of `q8 bench ops`.
#[derive(clap::Args)]
pub struct Args {
    /// Comma-separated thread counts.
    #[arg(long, default_value = "1")]
    threads: String,
    /// Comma-separated tiers; default: scalar and the best available tier.
    #[arg(long)]
    tier: Option<String>,
    /// One JSON object per measurement instead of a table.
    #[arg(long)]
    json: bool,
}

/// Median seconds of `f` over about 0.2 s of repetitions.
fn time(mut f: impl FnMut() -> Result<(), String>) -> Result<f64, String> {
    let t = Instant::now();
    f()?;
    let reps = ((0.2 / t.elapsed().as_secs_f64()) as usize).clamp(5, 2000);
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64());
    }
    Ok(median(times))
}

fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(37).wrapping_add(seed))
        .collect()
}

/// Runs the benchmark.
pub fn run(args: Args) -> Result<(), String> {
    let threads = parse_list(&args.threads, "thread count", positive)?;
    let tiers = tiers(args.tier.as_deref(), || {
        Ok(vec![
            Tier::Scalar,
            cpu::default_tier().map_err(|e| e.to_string())?,
        ])
    })?;
    if !args.json {
        println!(
            "{:<12} {:<34} {:>3} {:>10} {:>8} {:>8}",
            "tier", "op", "thr", "median ms", "GB/s", "GOPS"
        );
    }
    for &t in &threads {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build()
            .map_err(|e| e.to_string())?;
        for &tier in &tiers {
            pool.install(|| bench_tier(tier, t, args.json))?;
        }
    }
    Ok(())
}

/// One `q8 bench ops --json` row (`gops` is `null` for pure data movement).
#[derive(serde::Serialize)]
struct OpJson<'a> {
    op: &'a str,
    tier: &'static str,
    threads: usize,
    ms: f64,
    gbs: f64,
    gops: Option<f64>,
}

fn bench_tier(tier: Tier, threads: usize, json: bool) -> Result<(), String> {
    let e = |e: q8_kernels::Error| e.to_string();
    let qp = QParams::new(0.05, 7).map_err(e)?;
    let qp2 = QParams::new(0.04, 12).map_err(e)?;
    let show = |name: &str, secs: f64, moved: usize, ops: Option<f64>| {
        let gbs = moved as f64 / secs / 1e9;
        let gops = ops.map(|o| o / secs / 1e9);
        if json {
            let row = OpJson {
                op: name,
                tier: tier.name(),
                threads,
                ms: secs * 1e3,
                gbs,
                gops,
            };
            // A plain struct of numbers and strings always serializes.
            let _ = crate::cmd::print_json(&row);
        } else {
            let g = gops.map_or("-".into(), |g| format!("{g:.1}"));
            println!(
                "{:<12} {:<34} {:>3} {:>10.4} {:>8.2} {:>8}",
                tier.name(),
                name,
                threads,
                secs * 1e3,
                gbs,
                g
            );
        }
    };

    // The yardstick: copying 56x56x64 bytes.
    let act = Nhwc::new(1, 56, 56, 64);
    let a = bytes(act.len(), 1);
    let b = bytes(act.len(), 2);
    let mut out = vec![0u8; act.len()];
    let s = time(|| {
        out.copy_from_slice(std::hint::black_box(&a));
        Ok(())
    })?;
    show("memcpy 56x56x64", s, 2 * act.len(), None);

    let image = Nhwc::new(1, 224, 224, 3);
    let x: Vec<f32> = (0..image.len())
        .map(|i| (i % 255) as f32 * 0.01 - 1.0)
        .collect();
    let mut q = vec![0u8; image.len()];
    let s = time(|| ops::quantize_nchw(tier, &x, image, qp, &mut q).map_err(e))?;
    show("quantize NCHW->NHWC 224x224x3", s, 5 * image.len(), None);
    let s = time(|| ops::quantize(tier, &x, qp, &mut q).map_err(e))?;
    show("quantize flat 150528", s, 5 * image.len(), None);
    let logits = Nhwc::new(1, 56, 56, 64);
    let mut f = vec![0f32; logits.len()];
    let s = time(|| ops::dequantize(tier, &a, qp, &mut f).map_err(e))?;
    show("dequantize 56x56x64", s, 5 * logits.len(), None);
    let s = time(|| ops::requantize(tier, &a, qp, qp2, &mut out).map_err(e))?;
    show("requantize 56x56x64", s, 2 * act.len(), None);
    let params = AddParams {
        a: qp,
        b: qp2,
        out: qp,
        relu: true,
    };
    let s = time(|| ops::add(tier, &a, &b, &params, &mut out).map_err(e))?;
    show("add+relu 56x56x64", s, 3 * act.len(), None);

    let stem = Nhwc::new(1, 112, 112, 64);
    let sx = bytes(stem.len(), 3);
    let pool = Pool2d::new([3, 3], [2, 2]).with_padding(Padding::uniform(1));
    let mut pooled = vec![0u8; pool.output(stem).map_err(e)?.len()];
    let s = time(|| ops::max_pool(tier, &sx, stem, &pool, &mut pooled).map_err(e))?;
    show(
        "maxpool 3x3s2 112x112x64",
        s,
        stem.len() + pooled.len(),
        None,
    );
    let s = time(|| ops::avg_pool(tier, &sx, stem, &pool, false, qp, &mut pooled).map_err(e))?;
    show(
        "avgpool 3x3s2 112x112x64",
        s,
        stem.len() + pooled.len(),
        None,
    );

    let last = Nhwc::new(1, 7, 7, 512);
    let lx = bytes(last.len(), 4);
    let mut gap = vec![0u8; 512];
    let s = time(|| ops::global_avg_pool(tier, &lx, last, qp, &mut gap).map_err(e))?;
    show("global avgpool 7x7x512", s, last.len() + 512, None);

    let half = Nhwc::new(1, 28, 28, 128);
    let (c1, c2) = (bytes(half.len(), 5), bytes(half.len(), 6));
    let mut cat = vec![0u8; 2 * half.len()];
    let copy_in = [
        ConcatInput {
            data: &c1,
            channels: 128,
            qparams: qp,
        },
        ConcatInput {
            data: &c2,
            channels: 128,
            qparams: qp,
        },
    ];
    let s = time(|| ops::concat_channels(tier, &copy_in, half.pixels(), qp, &mut cat).map_err(e))?;
    show("concat copy 2x28x28x128", s, 4 * half.len(), None);
    let requant_in = [
        copy_in[0],
        ConcatInput {
            qparams: qp2,
            ..copy_in[1]
        },
    ];
    let s =
        time(|| ops::concat_channels(tier, &requant_in, half.pixels(), qp, &mut cat).map_err(e))?;
    show("concat requant 2x28x28x128", s, 4 * half.len(), None);

    let dw = Nhwc::new(1, 56, 56, 144);
    let geom = ConvGeometry::new(dw, 144, [3, 3])
        .with_groups(144)
        .with_padding(Padding::uniform(1));
    let w: Vec<i8> = (0..geom.weights_len())
        .map(|i| (i as i8).wrapping_mul(29))
        .collect();
    let scales = vec![0.01f32; 144];
    let bias = vec![0.1f32; 144];
    let weights = ConvWeights {
        data: &w,
        scales: &scales,
        bias: Some(&bias),
    };
    let packed = PackedConvWeights::new(tier, &geom, &weights).map_err(e)?;
    let dx = bytes(dw.len(), 7);
    let mut dy = vec![0u8; dw.len()];
    let epi = ConvEpilogue {
        residual: None,
        activation: Activation::Clamp { min: 0.0, max: 6.0 },
    };
    let s = time(|| {
        conv2d(
            tier,
            &packed,
            &dx,
            qp,
            &epi,
            ConvOutput::U8 {
                data: &mut dy,
                qparams: qp2,
            },
        )
        .map_err(e)
    })?;
    let ops = 2.0 * (dw.len() * 9) as f64;
    show("depthwise 3x3 56x56x144 relu6", s, 2 * dw.len(), Some(ops));
    Ok(())
}
