//! Already-quantized ops other tools emit (QLinearConv with per-channel weights and an int32
//! bias, QLinearConv strided without bias, ConvInteger with zero points, QLinearMatMul with
//! a dynamic batch), imported through their QDQ rewrite, against ONNX Runtime's outputs
//! (`tests/data/qlinear/make.py`): on the fp32 executor and on the int8 runtime, where the
//! convs and the matmul lower onto the int8 kernels. ONNX Runtime computes in integers and
//! rounds once, q8's fp32 path rounds f32 products: u8 outputs may differ by one step.

use q8_frontend::exec::{ExecOptions, Executor};
use q8_frontend::ir::{Tensor, TensorData};
use q8_frontend::npy::{self, NpyData};
use q8_frontend::onnx;
use q8_frontend::runtime::{Model, RuntimeOptions};
use q8_tests::data;

/// The arrays of an `.npz` as tensors, by name.
fn read_npz(name: &str) -> Vec<(String, Tensor)> {
    let npz = npy::read_npz(data(name)).unwrap();
    npz.names()
        .map(|n| {
            let a = npz.get(n).unwrap();
            let d = match a.data() {
                NpyData::F32(v) => TensorData::F32(v.clone()),
                NpyData::U8(v) => TensorData::U8(v.clone()),
                NpyData::I32(v) => TensorData::I32(v.clone()),
                other => panic!("{name}: {n} has dtype {:?}", other.dtype()),
            };
            (n.to_string(), Tensor::new(a.shape().to_vec(), d).unwrap())
        })
        .collect()
}

/// Largest absolute difference of two tensors of one integer type, and the element count.
fn max_step(got: &Tensor, want: &Tensor) -> (i64, usize) {
    assert_eq!(got.shape(), want.shape());
    let diff = |a: i64, b: i64| (a - b).abs();
    let d = match (got.data(), want.data()) {
        (TensorData::U8(g), TensorData::U8(w)) => g
            .iter()
            .zip(w)
            .map(|(&a, &b)| diff(a.into(), b.into()))
            .max(),
        (TensorData::I32(g), TensorData::I32(w)) => g
            .iter()
            .zip(w)
            .map(|(&a, &b)| diff(a.into(), b.into()))
            .max(),
        (g, w) => panic!("types {:?} vs {:?}", g.dtype(), w.dtype()),
    };
    (d.unwrap_or(0), got.len())
}

/// Runs `stem` on the fp32 executor and, when `lowered` gives its expected int8 node count,
/// on the int8 runtime, and checks every integer output against ONNX Runtime within
/// `steps[i]` (0 = bit-exact); f32 outputs are the dequantized u8 ones and follow them.
fn check(stem: &str, steps: &[i64], lowered: Option<usize>) {
    let inputs: Vec<Tensor> = read_npz(&format!("qlinear/{stem}.in.npz"))
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    let want = read_npz(&format!("qlinear/{stem}.ort.npz"));
    let path = data(&format!("qlinear/{stem}.onnx"));
    let graph = onnx::load(&path).unwrap();
    let names: Vec<&str> = graph
        .outputs()
        .iter()
        .map(|&o| graph.value(o).name.as_str())
        .collect();
    let exec = Executor::new(&graph, ExecOptions { threads: 1 }).unwrap();
    let fp32 = exec.run(&inputs).unwrap();
    let mut runs = vec![("fp32", fp32)];
    if let Some(lowered) = lowered {
        let options = RuntimeOptions {
            tier: None,
            threads: 1,
        };
        let model = Model::load(&path, &options).unwrap();
        let (int8, _) = model.report().int8_coverage();
        assert_eq!(int8, lowered, "{}", model.report());
        runs.push(("int8", model.run(&inputs).unwrap()));
    }
    let mut checked = 0;
    for (path_name, outs) in &runs {
        for ((name, got), &limit) in names.iter().zip(outs).zip(steps) {
            let (_, w) = want.iter().find(|(n, _)| n == name).unwrap();
            if got.as_f32().is_some() {
                continue;
            }
            let (d, n) = max_step(got, w);
            eprintln!("{stem} {path_name} {name}: max difference {d} over {n} values");
            assert!(d <= limit, "{stem} {path_name} {name}: {d} steps");
            checked += 1;
        }
    }
    assert!(checked >= 1);
}

#[test]
fn qlinear_convs_match_onnx_runtime_and_lower_to_int8() {
    // c2 (u8 after two QLinearConvs), y (its dequantized f32).
    check("qlinear_conv", &[1, 0], Some(2));
}

/// ConvInteger's int32 result is exact; its u8 weights have no int8 kernel (s8 weights
/// only) and the int8 runtime's fp32 fallback steps carry no int32 outputs, so it runs on
/// the fp32 executor only.
#[test]
fn conv_integer_matches_onnx_runtime_exactly() {
    check("conv_integer", &[0], None);
}

#[test]
fn qlinear_matmul_matches_onnx_runtime() {
    check("qlinear_matmul", &[1, 0], Some(1));
}

#[test]
fn qlinear_conv_with_a_run_time_scale_names_the_node() {
    let path = data("qlinear/qlinear_conv.onnx");
    let mut m = onnx::decode_model(&std::fs::read(path).unwrap()).unwrap();
    let g = m.graph.as_mut().unwrap();
    // Feed conv1's weight scale from the graph input instead of a constant.
    let conv = g.node.iter_mut().find(|n| n.name == "conv1").unwrap();
    conv.input[4] = "x".into();
    let err = onnx::import(&m).unwrap_err().to_string();
    assert!(
        err.contains("conv1") && err.contains("QLinearConv") && err.contains("must be a constant"),
        "{err}"
    );
}
