//! The int8 runtime end to end: ResNet-18 (torchvision shapes, random weights, quantized
//! with the X86 recipe) at batch 1 and 16 with 1 and 2 threads, its load time (import +
//! lower + pack of the QDQ ONNX bytes), and the ONNX Runtime digits QDQ fixture.
#![allow(
    missing_docs,
    reason = "criterion_group! generates an undocumented pub fn"
)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use q8_benches::{digits_images, fixture};
use q8_frontend::exec::ExecOptions;
use q8_frontend::ir::Tensor;
use q8_frontend::models::{ResNet18Config, resnet18};
use q8_frontend::onnx;
use q8_frontend::quant::{QuantConfig, prepare};
use q8_frontend::runtime::{Model, RuntimeOptions};

fn images(batch: usize) -> Tensor {
    let values = (0..batch * 3 * 224 * 224)
        .map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0)
        .collect();
    Tensor::from_f32(vec![batch, 3, 224, 224], values).expect("tensor")
}

/// The QDQ ResNet-18 as ONNX bytes.
fn quantized_resnet18() -> Vec<u8> {
    let graph = resnet18(ResNet18Config::default()).expect("resnet18");
    let mut prepared = prepare(
        &graph,
        &QuantConfig::x86_default(),
        ExecOptions { threads: 0 },
    )
    .expect("prepare");
    prepared
        .calibrate([images(2), images(2)], |_| {})
        .expect("calibrate");
    let quantized = prepared.convert().expect("convert");
    onnx::encode_model(&onnx::to_model(&quantized.graph).expect("export"))
}

fn resnet(c: &mut Criterion) {
    let bytes = quantized_resnet18();
    let mut group = c.benchmark_group("int8_resnet18");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    group.bench_function("load_import_lower_pack", |b| {
        b.iter(|| black_box(Model::load_bytes(&bytes, &RuntimeOptions::default()).expect("load")))
    });
    for threads in [1, 2] {
        let options = RuntimeOptions {
            tier: None,
            threads,
        };
        let model = Model::load_bytes(&bytes, &options).expect("load");
        for batch in [1usize, 16] {
            let x = images(batch);
            group.throughput(Throughput::Elements(batch as u64));
            let id = BenchmarkId::new(format!("b{batch}_t{threads}"), model.tier().name());
            group.bench_function(id, |b| {
                b.iter(|| black_box(model.run(std::slice::from_ref(&x)).expect("run")))
            });
        }
    }
    group.finish();
}

fn digits(c: &mut Criterion) {
    let x = digits_images();
    let mut group = c.benchmark_group("int8_digits_ort_qdq");
    group.throughput(Throughput::Elements(360));
    for threads in [1, 2] {
        let options = RuntimeOptions {
            tier: None,
            threads,
        };
        let model = Model::load(fixture("digits_resnet.ort_qdq.onnx"), &options).expect("load");
        group.bench_function(BenchmarkId::new(format!("b360_t{threads}"), "32x32"), |b| {
            b.iter(|| black_box(model.run(std::slice::from_ref(&x)).expect("run")))
        });
    }
    group.finish();
}

criterion_group!(benches, resnet, digits);
criterion_main!(benches);
