//! The int8 runtime: parity with QDQ reference execution (u8 intermediates within 1 LSB),
//! identical bits across tiers, thread counts, batch sizes and concurrent callers, and
//! clear errors for bad input.

use std::collections::HashMap;
use std::sync::Arc;

use q8_frontend::exec::{ExecOptions, Executor};
use q8_frontend::ir::{Tensor, TensorData};
use q8_frontend::runtime::{Model, RuntimeOptions};
use q8_frontend::{npy, onnx};
use q8_kernels::cpu::Tier;
use q8_tests::{available_tiers, data, sqnr_db};

const MODELS: [&str; 2] = ["digits_resnet.ort_qdq.onnx", "digits_resnet.pt2e_qdq.onnx"];

/// The first `n` test images as one batch.
fn images(n: usize) -> Tensor {
    let a = npy::read(data("digits_test_x.npy")).unwrap();
    let v = a.values::<f32>().unwrap()[..n * 1024].to_vec();
    Tensor::from_f32(vec![n, 1, 32, 32], v).unwrap()
}

fn model(name: &str, tier: Option<Tier>, threads: usize) -> Model {
    Model::load(data(name), &RuntimeOptions { tier, threads }).unwrap()
}

#[test]
fn u8_intermediates_within_one_lsb_of_qdq_reference() {
    for name in MODELS {
        let graph = onnx::load(data(name)).unwrap();
        let reference = Executor::new(&graph, ExecOptions { threads: 2 }).unwrap();
        let lowered = model(name, None, 2);
        let mut compared = 0;
        let mut differing = 0;
        let mut logits_db = f64::INFINITY;
        // The PT2E export pins the batch at 1: compare image by image.
        for i in 0..8 {
            let x = {
                let all = images(8);
                let v = all.as_f32().unwrap()[i * 1024..(i + 1) * 1024].to_vec();
                Tensor::from_f32(vec![1, 1, 32, 32], v).unwrap()
            };
            let mut want: HashMap<String, Tensor> = HashMap::new();
            let ref_out = reference
                .run_observed(std::slice::from_ref(&x), &mut |_, n, t| {
                    if matches!(t.data(), TensorData::U8(_)) {
                        want.insert(n.to_string(), t.clone());
                    }
                })
                .unwrap();
            let mut got: Vec<(String, Tensor)> = Vec::new();
            let out = lowered
                .run_observed(std::slice::from_ref(&x), &mut |n, t| {
                    got.push((n.to_string(), t.clone()))
                })
                .unwrap();
            for (n, t) in &got {
                let (Some(w), TensorData::U8(g)) = (want.get(n), t.data()) else {
                    continue;
                };
                let TensorData::U8(w) = w.data() else {
                    continue;
                };
                assert_eq!(w.len(), g.len(), "{name}: {n}");
                for (a, b) in w.iter().zip(g) {
                    let d = (*a as i32 - *b as i32).abs();
                    assert!(d <= 1, "{name}: value {n} differs by {d} LSB");
                    differing += usize::from(d == 1);
                }
                compared += w.len();
            }
            let db = sqnr_db(ref_out[0].as_f32().unwrap(), out[0].as_f32().unwrap());
            logits_db = logits_db.min(db);
        }
        eprintln!(
            "{name}: {compared} u8 intermediates compared, {differing} differ by 1 LSB; worst logits SQNR {logits_db:.1} dB"
        );
        assert!(compared > 10_000, "{name}: {compared} values compared");
        assert!(logits_db >= 45.0, "{name}: logits SQNR {logits_db:.1} dB");
    }
}

#[test]
fn identical_bits_across_tiers_threads_and_batch_sizes() {
    let x = images(24);
    for name in MODELS {
        let base = model(name, Some(Tier::Scalar), 1)
            .run(std::slice::from_ref(&x))
            .unwrap();
        for tier in available_tiers("runtime") {
            for threads in [1, 2, 3] {
                let out = model(name, Some(tier), threads)
                    .run(std::slice::from_ref(&x))
                    .unwrap();
                assert_eq!(out, base, "{name} on {tier} with {threads} threads");
            }
        }
        let m = model(name, None, 2);
        let logits = base[0].as_f32().unwrap();
        for (start, n) in [(0, 1), (1, 7), (8, 16)] {
            let part = Tensor::from_f32(
                vec![n, 1, 32, 32],
                x.as_f32().unwrap()[start * 1024..(start + n) * 1024].to_vec(),
            )
            .unwrap();
            let out = m.run(&[part]).unwrap();
            assert_eq!(
                out[0].as_f32().unwrap(),
                &logits[start * 10..(start + n) * 10],
                "{name} batch {n}"
            );
        }
    }
}

#[test]
fn concurrent_runs_give_the_single_thread_result() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Model>();
    let x = images(16);
    for name in MODELS {
        let single = model(name, None, 1).run(std::slice::from_ref(&x)).unwrap();
        let shared = Arc::new(model(name, None, 2));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let (m, x) = (Arc::clone(&shared), x.clone());
                std::thread::spawn(move || {
                    (0..5)
                        .map(|_| m.run(std::slice::from_ref(&x)).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            for out in h.join().unwrap() {
                assert_eq!(out, single, "{name}");
            }
        }
    }
}

#[test]
fn bad_inputs_give_clear_errors() {
    let m = model(MODELS[0], None, 1);
    let wrong_shape = Tensor::from_f32(vec![1, 1, 16, 16], vec![0.0; 256]).unwrap();
    let msg = m.run(&[wrong_shape]).unwrap_err().to_string();
    assert!(
        msg.contains("input 'input'") && msg.contains("[1, 1, 16, 16]"),
        "{msg}"
    );
    let wrong_type = Tensor::new(vec![1, 1, 32, 32], TensorData::U8(vec![0; 1024])).unwrap();
    let msg = m.run(&[wrong_type]).unwrap_err().to_string();
    assert!(msg.contains("u8"), "{msg}");
    let mut v = vec![0.0f32; 2048];
    v[1500] = f32::NAN;
    let nan = Tensor::from_f32(vec![2, 1, 32, 32], v).unwrap();
    let msg = m.run(&[nan]).unwrap_err().to_string();
    assert!(
        msg.contains("NaN") && msg.contains("'input'") && msg.contains("1500"),
        "{msg}"
    );
    let msg = m.run(&[]).unwrap_err().to_string();
    assert!(msg.contains("1 input"), "{msg}");
    let bytes = std::fs::read(data(MODELS[0])).unwrap();
    let truncated = onnx::load_bytes(&bytes[..bytes.len() / 2]);
    assert!(truncated.is_err());
}

#[test]
fn non_symmetric_weights_are_rejected_with_the_node_name() {
    use q8_frontend::ir::Op;
    let mut graph = onnx::load(data(MODELS[0])).unwrap();
    let id = graph
        .nodes()
        .find(|(_, n)| n.name == "onnx::Conv_120_DequantizeLinear")
        .map(|(id, _)| id)
        .unwrap();
    if let Some(Op::DequantizeLinear(spec)) = graph.op_mut(id) {
        spec.zero_points[3] = 1;
    }
    let err = Model::from_graph(&graph, &RuntimeOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("/l1/c1/Conv") && err.contains("zero point"),
        "{err}"
    );
}
