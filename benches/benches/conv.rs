//! Criterion benchmarks of the int8 convolution (ResNet-18 layers: the 7x7 stem, a 3x3 with
//! residual, a 1x1 stride-2 downsample; MobileNet-V2's depthwise 3x3) and of the
//! memory-bound ops around it, batch 1, one thread, one benchmark id per tier.
//!
//! `cargo bench -p q8-benches --bench conv`. Conv throughput is in multiply-accumulates
//! (GOPS = 2 x Melem/s / 1000); op throughput in bytes read + written.

#![allow(
    missing_docs,
    reason = "criterion_group! generates an undocumented pub fn"
)]

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use q8_kernels::conv::{
    ConvEpilogue, ConvGeometry, ConvOutput, ConvWeights, Nhwc, PackedConvWeights, Padding,
    Residual, conv2d,
};
use q8_kernels::cpu::Tier;
use q8_kernels::ops::{self, AddParams, Pool2d};
use q8_kernels::{Activation, QParams};

/// Makes the global rayon pool one thread, so every call runs inline on the bench thread
/// (a wake-up of a pool thread would dominate the small ops on a loaded machine).
fn single_thread() {
    // Fails only if the pool already exists, i.e. the other group set it up.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build_global();
}

fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(131).wrapping_add(seed))
        .collect()
}

/// (name, geometry, residual add?)
fn layers() -> Vec<(&'static str, ConvGeometry, bool)> {
    let conv = |input, c_out, k: usize, s: usize, p: usize| {
        ConvGeometry::new(input, c_out, [k, k])
            .with_stride([s, s])
            .with_padding(Padding::uniform(p))
    };
    vec![
        (
            "stem_7x7s2_224x3_64",
            conv(Nhwc::new(1, 224, 224, 3), 64, 7, 2, 3),
            false,
        ),
        (
            "3x3_56x64_res",
            conv(Nhwc::new(1, 56, 56, 64), 64, 3, 1, 1),
            true,
        ),
        (
            "1x1s2_28x128_256",
            conv(Nhwc::new(1, 28, 28, 128), 256, 1, 2, 0),
            false,
        ),
        (
            "dw3x3_56x144",
            conv(Nhwc::new(1, 56, 56, 144), 144, 3, 1, 1).with_groups(144),
            false,
        ),
    ]
}

fn bench_conv(c: &mut Criterion) {
    single_thread();
    let mut group = c.benchmark_group("conv_u8_batch1_1thread");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(2));
    let (in_qp, out_qp) = (
        QParams::new(0.02, 3).unwrap(),
        QParams::new(0.05, 0).unwrap(),
    );
    for (name, geom, residual) in layers() {
        let out_shape = geom.output().unwrap();
        let w: Vec<i8> = bytes(geom.weights_len(), 9)
            .into_iter()
            .map(|b| b as i8 / 2)
            .collect();
        let scales = vec![0.002f32; geom.out_channels];
        let bias = vec![0.1f32; geom.out_channels];
        let weights = ConvWeights {
            data: &w,
            scales: &scales,
            bias: Some(&bias),
        };
        let input = bytes(geom.input.len(), 1);
        let res = bytes(out_shape.len(), 2);
        let epilogue = ConvEpilogue {
            residual: residual.then_some(Residual {
                data: &res,
                qparams: in_qp,
            }),
            activation: Activation::Relu,
        };
        let mut out = vec![0u8; out_shape.len()];
        group.throughput(Throughput::Elements(
            (out_shape.len() * geom.reduction_len()) as u64,
        ));
        for tier in q8_benches::simd_tiers("conv") {
            let packed = PackedConvWeights::new(tier, &geom, &weights).unwrap();
            group.bench_function(BenchmarkId::new(tier.name(), name), |b| {
                b.iter(|| {
                    let o = ConvOutput::U8 {
                        data: &mut out,
                        qparams: out_qp,
                    };
                    conv2d(tier, &packed, &input, in_qp, &epilogue, o).unwrap()
                })
            });
        }
    }
    group.finish();
}

fn bench_ops(c: &mut Criterion) {
    single_thread();
    let mut group = c.benchmark_group("int8_ops_1thread");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(1));
    let (qa, qb) = (
        QParams::new(0.05, 7).unwrap(),
        QParams::new(0.04, 12).unwrap(),
    );
    let image = Nhwc::new(1, 224, 224, 3);
    let x: Vec<f32> = (0..image.len())
        .map(|i| (i % 255) as f32 * 0.01 - 1.0)
        .collect();
    let act = Nhwc::new(1, 56, 56, 64);
    let (a, b) = (bytes(act.len(), 3), bytes(act.len(), 4));
    let stem = Nhwc::new(1, 112, 112, 64);
    let s = bytes(stem.len(), 5);
    let max = Pool2d::new([3, 3], [2, 2]).with_padding(Padding::uniform(1));
    let mut q = vec![0u8; image.len()];
    let mut out = vec![0u8; act.len()];
    for tier in std::iter::once(Tier::Scalar).chain(q8_benches::simd_tiers("conv")) {
        group.throughput(Throughput::Bytes(5 * image.len() as u64));
        group.bench_function(
            BenchmarkId::new(tier.name(), "quantize_nchw_224x224x3"),
            |bch| bch.iter(|| ops::quantize_nchw(tier, &x, image, qa, &mut q).unwrap()),
        );
        group.throughput(Throughput::Bytes(3 * act.len() as u64));
        let params = AddParams {
            a: qa,
            b: qb,
            out: qa,
            relu: true,
        };
        group.bench_function(BenchmarkId::new(tier.name(), "add_relu_56x56x64"), |bch| {
            bch.iter(|| ops::add(tier, &a, &b, &params, &mut out).unwrap())
        });
        group.throughput(Throughput::Bytes((stem.len() + act.len()) as u64));
        group.bench_function(
            BenchmarkId::new(tier.name(), "maxpool_3x3s2_112x112x64"),
            |bch| bch.iter(|| ops::max_pool(tier, &s, stem, &max, &mut out).unwrap()),
        );
    }
    group.finish();
}

criterion_group!(benches, bench_conv, bench_ops);
criterion_main!(benches);
