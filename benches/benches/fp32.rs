//! fp32 executor throughput: digits_resnet at batch 360, and the built-in ResNet-18 at
//! batch 1 and 16 with 1 and 2 threads (BatchNorm folded, as in deployment).
#![allow(
    missing_docs,
    reason = "criterion_group! generates an undocumented pub fn"
)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use q8_benches::{digits_images, fixture};
use q8_frontend::exec::{ExecOptions, Executor};
use q8_frontend::ir::Tensor;
use q8_frontend::models::{ResNet18Config, resnet18};
use q8_frontend::{onnx, passes};

fn digits(c: &mut Criterion) {
    let graph = onnx::load(fixture("digits_resnet.onnx")).expect("fixture model");
    let x = digits_images();
    let mut group = c.benchmark_group("fp32_digits_resnet");
    group.throughput(Throughput::Elements(360));
    for threads in [1, 2] {
        let exec = Executor::new(&graph, ExecOptions { threads }).expect("executor");
        group.bench_function(BenchmarkId::new(format!("b360_t{threads}"), "32x32"), |b| {
            b.iter(|| black_box(exec.run(std::slice::from_ref(&x)).expect("run")))
        });
    }
    group.finish();
}

fn resnet(c: &mut Criterion) {
    let mut graph = resnet18(ResNet18Config::default()).expect("resnet18");
    passes::fold_batch_norm(&mut graph).expect("fold");
    let mut group = c.benchmark_group("fp32_resnet18");
    for batch in [1usize, 16] {
        let pixels: Vec<f32> = (0..batch * 3 * 224 * 224)
            .map(|i| ((i % 255) as f32) / 255.0 - 0.5)
            .collect();
        let x = Tensor::from_f32(vec![batch, 3, 224, 224], pixels).expect("input");
        group.throughput(Throughput::Elements(batch as u64));
        for threads in [1, 2] {
            let exec = Executor::new(&graph, ExecOptions { threads }).expect("executor");
            group.bench_function(
                BenchmarkId::new(format!("b{batch}_t{threads}"), "224x224"),
                |b| b.iter(|| black_box(exec.run(std::slice::from_ref(&x)).expect("run"))),
            );
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    targets = digits, resnet
}
criterion_main!(benches);
