//! Criterion benchmarks of the packed GEMM (u8 output, bias + ReLU, prepacked weights) on
//! model-derived shapes, one benchmark id per tier, and of weight packing.
//!
//! `cargo bench -p q8-benches --bench gemm`. Throughput is in multiply-accumulates
//! (GOPS = 2 x Melem/s / 1000).

#![allow(
    missing_docs,
    reason = "criterion_group! generates an undocumented pub fn"
)]

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use q8_benches::simd_tiers;
use q8_kernels::gemm::{Epilogue, GemmOptions, Output, PackedWeights, Parallelism, gemm};
use q8_kernels::{Activation, QParams};

/// (M, N, K) of ResNet-50 / BERT layers as GEMMs.
const SHAPES: [(usize, usize, usize); 5] = [
    (49, 512, 4608),
    (196, 256, 2304),
    (784, 128, 1152),
    (128, 768, 768),
    (1024, 1024, 1024),
];

/// Bell-shaped weights in [-126, 126], like per-channel-quantized trained weights.
fn weights(len: usize) -> Vec<i8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((0..4).map(|i| ((x >> (16 * i)) & 63) as i32).sum::<i32>() - 126) as i8
        })
        .collect()
}

fn bench_gemm(c: &mut Criterion) {
    let mut group = c.benchmark_group("gemm_u8_bias_relu");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(2));
    let aq = QParams::new(0.02, 128).unwrap();
    let oq = QParams::new(0.05, 0).unwrap();
    let ep = Epilogue {
        activation: Activation::Relu,
        residual: None,
    };
    for (m, n, k) in SHAPES {
        let a: Vec<u8> = (0..m * k).map(|i| (i * 131 % 251) as u8).collect();
        let w = weights(n * k);
        let bias: Vec<f32> = (0..n).map(|j| j as f32 * 0.01).collect();
        let mut out = vec![0u8; m * n];
        group.throughput(Throughput::Elements((m * n * k) as u64));
        for tier in simd_tiers("gemm") {
            let packed = PackedWeights::new(tier, n, k, &w, &[0.001], Some(&bias)).unwrap();
            let opts = GemmOptions {
                tier: Some(tier),
                parallelism: Parallelism::Sequential,
            };
            group.bench_function(BenchmarkId::new(tier.name(), format!("{m}x{n}x{k}")), |b| {
                b.iter(|| {
                    let o = Output::U8 {
                        data: &mut out,
                        ldc: n,
                        qparams: oq,
                    };
                    gemm(&a, k, m, aq, &packed, &ep, o, &opts).unwrap()
                })
            });
        }
    }
    group.finish();
}

fn bench_pack(c: &mut Criterion) {
    let mut group = c.benchmark_group("pack_weights");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(2));
    let (n, k) = (4096, 4096);
    let w = weights(n * k);
    group.throughput(Throughput::Bytes((n * k) as u64));
    for tier in simd_tiers("gemm") {
        group.bench_function(BenchmarkId::new(tier.name(), format!("{n}x{k}")), |b| {
            b.iter(|| PackedWeights::new(tier, n, k, &w, &[0.001], None).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, bench_gemm, bench_pack);
criterion_main!(benches);
