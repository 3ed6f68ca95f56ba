//! Export round trip: graph -> ONNX bytes -> graph gives the same nodes and bit-identical
//! outputs, for both PyTorch exports, both QDQ fixtures and the built-in ResNet-18.

use q8_frontend::exec::{ExecOptions, Executor};
use q8_frontend::ir::{Graph, Tensor};
use q8_frontend::models::{ResNet18Config, resnet18};
use q8_frontend::{npy, onnx};
use q8_tests::data;

fn outputs(g: &Graph, x: &Tensor) -> Vec<Tensor> {
    Executor::new(g, ExecOptions { threads: 1 })
        .unwrap()
        .run(std::slice::from_ref(x))
        .unwrap()
}

fn round_trip(g: &Graph, x: &Tensor) {
    let bytes = onnx::encode_model(&onnx::to_model(g).unwrap());
    let back = onnx::load_bytes(&bytes).unwrap();
    let names = |g: &Graph| {
        g.nodes()
            .map(|(_, n)| (n.name.clone(), n.op.clone()))
            .collect::<Vec<_>>()
    };
    let (mut a, mut b) = (names(g), names(&back));
    a.sort_by(|p, q| p.0.cmp(&q.0));
    b.sort_by(|p, q| p.0.cmp(&q.0));
    assert_eq!(a, b);
    assert_eq!(outputs(g, x), outputs(&back, x));
}

fn digits(n: usize) -> Tensor {
    let a = npy::read(data("digits_test_x.npy")).unwrap();
    Tensor::from_f32(
        vec![n, 1, 32, 32],
        a.values::<f32>().unwrap()[..n * 1024].to_vec(),
    )
    .unwrap()
}

#[test]
fn fixtures_round_trip() {
    for (file, n) in [
        ("digits_resnet.onnx", 8),
        ("digits_resnet.dynamo.onnx", 8),
        ("digits_resnet.ort_qdq.onnx", 8),
        ("digits_resnet.pt2e_qdq.onnx", 1),
    ] {
        round_trip(&onnx::load(data(file)).unwrap(), &digits(n));
    }
}

#[test]
fn resnet18_round_trips_through_a_file() {
    let g = resnet18(ResNet18Config {
        num_classes: 10,
        image_size: 32,
        seed: 5,
    })
    .unwrap();
    let path = std::env::temp_dir().join(format!("q8_resnet18_export_{}.onnx", std::process::id()));
    onnx::save(&g, &path).unwrap();
    let back = onnx::load(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let x = Tensor::from_f32(
        vec![2, 3, 32, 32],
        (0..6144).map(|i| (i % 17) as f32 / 8.0 - 1.0).collect(),
    )
    .unwrap();
    assert_eq!(outputs(&g, &x), outputs(&back, &x));
    assert_eq!(back.nodes().count(), g.nodes().count());
    round_trip(&g, &x);
}
