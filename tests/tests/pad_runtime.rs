//! ONNX `Pad`: constant, reflect, edge and wrap modes with negative pads (crops), opset 18
//! `axes`, against a reference that pads one axis at a time by building each padded row
//! explicitly; pads computed at run time from the input's shape (`Shape -> Gather -> Sub ->
//! Unsqueeze -> Concat -> Pad`) in the fp32 executor and the int8 runtime's fp32 fallback,
//! at several lengths; bad nodes give errors naming the node and the op.

mod onnx_support;

use onnx_support::*;
use proptest::prelude::*;
use q8_frontend::exec::{ExecOptions, Executor};
use q8_frontend::ir::{Dim, Tensor};
use q8_frontend::lower::NodeLowering;
use q8_frontend::onnx::{
    self,
    proto::{AttributeProto, TensorProto},
};
use q8_frontend::runtime::{Model, RuntimeOptions};

/// Whether ONNX Runtime pads a kept length `m` by `b`, `e` in `mode`: not reflect by the
/// length or more, not edge or wrap of an empty axis.
fn valid(m: usize, b: usize, e: usize, mode: &str) -> bool {
    let grows = b > 0 || e > 0;
    match mode {
        "reflect" => !grows || (b < m && e < m),
        "edge" | "wrap" => !grows || m > 0,
        _ => true,
    }
}

/// Pads `row` (the kept, already-cropped elements) by `b` before and `e` after in `mode`
/// (a [`valid`] case).
fn pad_row(row: &[f32], b: usize, e: usize, mode: &str, value: f32) -> Vec<f32> {
    let m = row.len();
    let (before, after): (Vec<f32>, Vec<f32>) = match mode {
        "constant" => (vec![value; b], vec![value; e]),
        "edge" => (
            (0..b).map(|_| row[0]).collect(),
            (0..e).map(|_| row[m - 1]).collect(),
        ),
        "reflect" => (
            (1..=b).rev().map(|i| row[i]).collect(),
            (1..=e).map(|i| row[m - 1 - i]).collect(),
        ),
        // wrap: the row repeated periodically
        _ => (
            (0..b).map(|i| row[(m - (b - i) % m) % m]).collect(),
            (0..e).map(|i| row[i % m]).collect(),
        ),
    };
    [before, row.to_vec(), after].concat()
}

/// The reference: for each axis in turn, crop then pad every row along it.
fn reference(
    x: &[f32],
    shape: &[usize],
    pads: &[i64],
    mode: &str,
    value: f32,
) -> Option<(Vec<f32>, Vec<usize>)> {
    let rank = shape.len();
    let (mut data, mut shape) = (x.to_vec(), shape.to_vec());
    for a in 0..rank {
        let (b, e) = (pads[a], pads[a + rank]);
        let n = shape[a];
        let crop = |p: i64| (-p).max(0) as usize;
        if crop(b) + crop(e) > n {
            return None;
        }
        let outer: usize = shape[..a].iter().product();
        let inner: usize = shape[a + 1..].iter().product();
        let kept = n - crop(b) - crop(e);
        let (gb, ge) = (b.max(0) as usize, e.max(0) as usize);
        if !valid(kept, gb, ge, mode) {
            return None;
        }
        let new_n = kept + gb + ge;
        let mut out = vec![0f32; outer * new_n * inner];
        for o in 0..outer {
            for i in 0..inner {
                let row: Vec<f32> = (crop(b)..crop(b) + kept)
                    .map(|k| data[(o * n + k) * inner + i])
                    .collect();
                let padded = pad_row(&row, gb, ge, mode, value);
                for (k, v) in padded.into_iter().enumerate() {
                    out[(o * new_n + k) * inner + i] = v;
                }
            }
        }
        data = out;
        shape[a] = new_n;
    }
    Some((data, shape))
}

#[derive(Clone, Debug)]
struct Case {
    shape: Vec<usize>,
    pads: Vec<i64>,
    mode: &'static str,
    value: f32,
    seed: u64,
}

fn case() -> impl Strategy<Value = Case> {
    // Graph inputs have no empty axes; crops make empty outputs.
    let dim = prop_oneof![Just(1usize), 1usize..7, Just(15), Just(16), Just(17)];
    (prop::collection::vec(dim, 1..=4), any::<u64>())
        .prop_flat_map(|(shape, seed)| {
            let rank = shape.len();
            (
                Just(shape),
                prop::collection::vec(-3i64..5, 2 * rank),
                prop::sample::select(vec!["constant", "reflect", "edge", "wrap"]),
                -2.0f32..2.0,
                Just(seed),
            )
        })
        .prop_filter("keep tensors small", |(s, p, ..)| {
            let rank = s.len();
            s.iter()
                .enumerate()
                .map(|(a, &n)| n + (p[a].max(0) + p[a + rank].max(0)) as usize)
                .product::<usize>()
                <= 20_000
        })
        .prop_map(|(shape, pads, mode, value, seed)| Case {
            shape,
            pads,
            mode,
            value,
            seed,
        })
}

fn data(n: usize, seed: u64) -> Vec<f32> {
    (0..n)
        .map(|i| ((i as u64 * 2654435761 + seed) % 1000) as f32 / 100.0 - 5.0)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn pad_matches_the_row_by_row_reference(c in case()) {
        let n: usize = c.shape.iter().product();
        let x = Tensor::from_f32(c.shape.clone(), data(n, c.seed)).unwrap();
        let consts = vec![
            i64_tensor("pads", &[c.pads.len() as i64], &c.pads),
            f32_tensor("value", &[], &[c.value]),
        ];
        let attrs = vec![string_attr("mode", c.mode)];
        let got = run_node(19, "Pad", attrs, std::slice::from_ref(&x), consts, 1);
        match (reference(x.as_f32().unwrap(), &c.shape, &c.pads, c.mode, c.value), got) {
            (Some((want, shape)), Ok(out)) => {
                prop_assert_eq!(out[0].shape(), shape.as_slice());
                prop_assert_eq!(out[0].as_f32().unwrap(), want.as_slice());
            }
            (None, Err(e)) => prop_assert!(e.contains("Pad") && e.contains("axis"), "{}", e),
            (want, got) => prop_assert!(false, "{:?}: reference {:?}, q8 {:?}", c, want.is_some(), got),
        }
    }

    /// Opset 18 `axes` pads only the listed axes (negative ones counted from the end).
    #[test]
    fn pad_axes_pad_only_those_axes(c in case(), pick in any::<u8>()) {
        let rank = c.shape.len();
        let axes: Vec<usize> = (0..rank).filter(|a| pick >> a & 1 == 1).collect();
        let mut full = vec![0i64; 2 * rank];
        let mut given = Vec::new();
        for side in 0..2 {
            for &a in &axes {
                full[a + side * rank] = c.pads[a + side * rank];
                given.push(c.pads[a + side * rank]);
            }
        }
        let signed: Vec<i64> = axes.iter().map(|&a| if a % 2 == 1 { a as i64 - rank as i64 } else { a as i64 }).collect();
        let n: usize = c.shape.iter().product();
        let x = Tensor::from_f32(c.shape.clone(), data(n, c.seed)).unwrap();
        let consts = vec![
            i64_tensor("pads", &[given.len() as i64], &given),
            f32_tensor("value", &[], &[c.value]),
            i64_tensor("axes", &[signed.len() as i64], &signed),
        ];
        let got = run_node(18, "Pad", vec![string_attr("mode", "edge")], std::slice::from_ref(&x), consts, 1);
        match (reference(x.as_f32().unwrap(), &c.shape, &full, "edge", c.value), got) {
            (Some((want, shape)), Ok(out)) => {
                prop_assert_eq!(out[0].shape(), shape.as_slice());
                prop_assert_eq!(out[0].as_f32().unwrap(), want.as_slice());
            }
            (None, Err(_)) => {}
            (want, got) => prop_assert!(false, "{:?} axes {:?}: reference {:?}, q8 {:?}", c, axes, want.is_some(), got),
        }
    }
}

/// Integer tensors pad too, with a constant of their own type.
#[test]
fn pad_of_int64_with_an_int64_constant() {
    let x = Tensor::from_i64(vec![2, 2], vec![1, 2, 3, 4]).unwrap();
    let consts = vec![
        i64_tensor("pads", &[4], &[0, 1, 1, -1]),
        i64_tensor("value", &[], &[-9]),
    ];
    let out = run_node(13, "Pad", vec![], &[x], consts, 1).unwrap();
    assert_eq!(out[0].shape(), &[3, 2]);
    assert_eq!(out[0].as_i64().unwrap(), &[-9, 1, -9, 3, -9, -9]);
}

/// `Pad(x, Concat([0, 0, begin], [0, 0, target - L]))` with `L` the run-time length of
/// `x [N, C, L]`: pads (or crops, when `L > target`) the last axis to `target`.
fn pad_to_length(mode: &str, target: i64, begin: i64) -> Vec<u8> {
    let nodes = vec![
        node("Shape", "shape", &["x"], &["s"], vec![]),
        node("Gather", "len", &["s", "two"], &["l"], vec![]),
        node("Sub", "missing", &["target", "l"], &["d"], vec![]),
        node("Sub", "end", &["d", "begin"], &["e"], vec![]),
        node("Unsqueeze", "e1", &["e", "axes0"], &["e_1"], vec![]),
        node(
            "Concat",
            "pads",
            &["head", "e_1"],
            &["pads"],
            vec![int_attr("axis", 0)],
        ),
        node(
            "Pad",
            "pad",
            &["x", "pads", "value"],
            &["p"],
            vec![string_attr("mode", mode)],
        ),
        node("Relu", "relu", &["p"], &["y"], vec![]),
    ];
    let inits: Vec<TensorProto> = vec![
        i64_tensor("two", &[], &[2]),
        i64_tensor("target", &[], &[target]),
        i64_tensor("begin", &[], &[begin]),
        i64_tensor("axes0", &[1], &[0]),
        i64_tensor("head", &[5], &[0, 0, begin, 0, 0]),
        f32_tensor("value", &[], &[0.5]),
    ];
    model(
        13,
        nodes,
        inits,
        value("x", &[Err("N"), Ok(3), Err("L")]),
        "y",
    )
}

#[test]
fn pads_computed_from_the_run_time_length() {
    for (mode, begin) in [
        ("constant", 0),
        ("constant", 2),
        ("edge", 1),
        ("reflect", 1),
    ] {
        let bytes = pad_to_length(mode, 12, begin);
        let g = onnx::load_bytes(&bytes).unwrap();
        let y = g.outputs()[0];
        let dims = g.value(y).ty.shape.dims().to_vec();
        assert_eq!(dims[..2], [Dim::sym("N"), Dim::Known(3)]);
        assert!(matches!(dims[2], Dim::Sym(_)), "{dims:?}");
        let exec = Executor::new(&g, ExecOptions { threads: 1 }).unwrap();
        let model = Model::from_graph(&g, &RuntimeOptions::default()).unwrap();
        let lowering = &model
            .report()
            .nodes
            .iter()
            .find(|e| e.node == "pad")
            .unwrap()
            .lowering;
        assert!(
            matches!(lowering, NodeLowering::Fallback { .. }),
            "{lowering:?}"
        );
        for l in [3usize, 9, 12, 15, 16, 17] {
            let x = Tensor::from_f32(vec![2, 3, l], data(6 * l, l as u64)).unwrap();
            let end = 12 - l as i64 - begin;
            let pads = [0, 0, begin, 0, 0, end];
            let Some((want, shape)) = reference(x.as_f32().unwrap(), &[2, 3, l], &pads, mode, 0.5)
            else {
                let e = exec.run(std::slice::from_ref(&x)).unwrap_err().to_string();
                assert!(e.contains("'pad'"), "{mode} L = {l}: {e}");
                continue;
            };
            let want: Vec<f32> = want.iter().map(|v| v.max(0.0)).collect();
            let got = exec.run(std::slice::from_ref(&x)).unwrap();
            assert_eq!(got[0].shape(), shape.as_slice(), "{mode} L = {l}");
            assert_eq!(got[0].as_f32().unwrap(), want.as_slice(), "{mode} L = {l}");
            let rt = model.run(std::slice::from_ref(&x)).unwrap();
            assert_eq!(rt, got, "int8 runtime fallback, {mode} L = {l}");
        }
    }
}

/// A run-time reflect pad larger than the length it reflects is an error at run time.
#[test]
fn run_time_reflect_pad_too_large_is_an_error() {
    let g = onnx::load_bytes(&pad_to_length("reflect", 12, 0)).unwrap();
    let exec = Executor::new(&g, ExecOptions { threads: 1 }).unwrap();
    let x = Tensor::from_f32(vec![1, 3, 4], data(12, 1)).unwrap();
    let e = exec.run(&[x]).unwrap_err().to_string();
    assert!(
        e.contains("Pad") && e.contains("'pad'") && e.contains("reflect"),
        "{e}"
    );
}

/// Mutated Pad nodes: each is an error naming the node and the op, never a panic.
#[test]
fn bad_pad_nodes_name_the_node() {
    let x = || value("x", &[Ok(2), Ok(3)]);
    let try_load = |opset: i64, inputs: &[&str], attrs, inits: Vec<TensorProto>| {
        let m = model(
            opset,
            vec![node("Pad", "bad_pad", inputs, &["y"], attrs)],
            inits,
            x(),
            "y",
        );
        onnx::load_bytes(&m).map(|_| ()).unwrap_err().to_string()
    };
    let pads = |v: &[i64]| i64_tensor("pads", &[v.len() as i64], v);
    let mode = |m: &str| vec![string_attr("mode", m)];
    // (opset, node inputs, attributes, initializers, a word the message must contain)
    type Bad = (
        i64,
        Vec<&'static str>,
        Vec<AttributeProto>,
        Vec<TensorProto>,
        &'static str,
    );
    let cases: Vec<Bad> = vec![
        (
            13,
            vec!["x", "pads"],
            vec![],
            vec![pads(&[1, 1, 1])],
            "3 pads",
        ),
        (
            13,
            vec!["x", "pads"],
            mode("reflect"),
            vec![pads(&[0, 3, 0, 0])],
            "reflect",
        ),
        (
            13,
            vec!["x", "pads"],
            vec![],
            vec![pads(&[-3, 0, 0, 0])],
            "crop",
        ),
        (
            13,
            vec!["x", "pads"],
            mode("mirror"),
            vec![pads(&[0, 0, 0, 0])],
            "mirror",
        ),
        (
            18,
            vec!["x", "pads"],
            mode("wrap"),
            vec![pads(&[0, 0, 0, 0])],
            "wrap",
        ),
        (
            13,
            vec!["x", "pads"],
            vec![],
            vec![pads(&[0, i64::MAX, 0, 0])],
            "out of range",
        ),
        (
            13,
            vec!["x", "pads", "value"],
            vec![],
            vec![pads(&[0, 0, 0, 0]), i64_tensor("value", &[], &[1])],
            "constant_value",
        ),
        (
            18,
            vec!["x", "pads", "", "axes"],
            vec![],
            vec![pads(&[0, 0]), i64_tensor("axes", &[1], &[2])],
            "axis 2",
        ),
        (
            18,
            vec!["x", "pads", "", "axes"],
            vec![],
            vec![pads(&[0, 0, 0, 0]), i64_tensor("axes", &[2], &[1, -1])],
            "repeat",
        ),
        (13, vec!["x", "x"], vec![], vec![], "input 1"),
        (10, vec!["x"], vec![], vec![], "pads is required"),
    ];
    for (opset, inputs, attrs, inits, what) in cases {
        let e = try_load(opset, &inputs, attrs.clone(), inits);
        assert!(
            e.contains("bad_pad") && e.contains("Pad") && e.contains(what),
            "opset {opset} {inputs:?} {attrs:?}: {e}"
        );
    }
}

/// Pads read the run-time dims of another graph input: `x [N, 3, L]` padded at the end of
/// its last axis to the length `K` of `r [K]`.
#[test]
fn pads_from_another_inputs_run_time_dim() {
    let nodes = vec![
        node("Shape", "sx", &["x"], &["s"], vec![]),
        node("Gather", "len", &["s", "two"], &["l"], vec![]),
        node("Shape", "sr", &["r"], &["t"], vec![]),
        node("Sub", "missing", &["t", "l"], &["e_1"], vec![]),
        node(
            "Concat",
            "pads",
            &["head", "e_1"],
            &["pads"],
            vec![int_attr("axis", 0)],
        ),
        node(
            "Pad",
            "pad",
            &["x", "pads"],
            &["y"],
            vec![string_attr("mode", "edge")],
        ),
    ];
    let inits = vec![
        i64_tensor("two", &[1], &[2]),
        i64_tensor("head", &[5], &[0, 0, 0, 0, 0]),
    ];
    let inputs = vec![
        value("x", &[Err("N"), Ok(3), Err("L")]),
        value("r", &[Err("K")]),
    ];
    let m = model_proto(13, nodes, inits, inputs, &["y"]);
    let g = onnx::import(&m).unwrap();
    assert!(matches!(
        g.value(g.outputs()[0]).ty.shape.dims()[2],
        Dim::Sym(_)
    ));
    let exec = Executor::new(&g, ExecOptions { threads: 1 }).unwrap();
    let model = Model::from_graph(&g, &RuntimeOptions::default()).unwrap();
    for (l, k) in [(4usize, 9usize), (5, 5), (8, 3)] {
        let x = Tensor::from_f32(vec![2, 3, l], data(6 * l, 7)).unwrap();
        let r = Tensor::from_f32(vec![k], vec![0.0; k]).unwrap();
        let pads = [0, 0, 0, 0, 0, k as i64 - l as i64];
        let (want, shape) = reference(x.as_f32().unwrap(), &[2, 3, l], &pads, "edge", 0.0).unwrap();
        let inputs = [x, r];
        let got = exec.run(&inputs).unwrap();
        assert_eq!(got[0].shape(), shape.as_slice());
        assert_eq!(
            got[0].as_f32().unwrap(),
            want.as_slice(),
            "L = {l}, K = {k}"
        );
        assert_eq!(
            model.run(&inputs).unwrap(),
            got,
            "int8 runtime, L = {l}, K = {k}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random Pad nodes (pads of any length and extreme values, any mode string, axes,
    /// opset) load and run or fail with an error naming the node and the op; never panic.
    #[test]
    fn mutated_pad_nodes_never_panic(
        pads in prop::collection::vec(prop_oneof![-20i64..20, Just(i64::MIN), Just(i64::MAX), Just(1 << 40)], 0..8),
        axes in prop::option::of(prop::collection::vec(-4i64..4, 0..4)),
        mode in prop::sample::select(vec!["constant", "reflect", "edge", "wrap", "", "REFLECT"]),
        opset in prop::sample::select(vec![10i64, 11, 13, 18, 19]),
    ) {
        let mut inputs = vec!["x", "pads", ""];
        let mut inits = vec![i64_tensor("pads", &[pads.len() as i64], &pads)];
        if let Some(a) = &axes {
            inputs.push("axes");
            inits.push(i64_tensor("axes", &[a.len() as i64], a));
        }
        let mut attrs = vec![string_attr("mode", mode)];
        if opset < 11 {
            inputs.truncate(1);
            attrs.push(ints_attr("pads", &pads));
        }
        let m = model(opset, vec![node("Pad", "mutant", &inputs, &["y"], attrs)], inits, value("x", &[Ok(2), Ok(3), Ok(4)]), "y");
        let loaded = onnx::load_bytes(&m).and_then(|g| {
            let x = Tensor::from_f32(vec![2, 3, 4], data(24, 1)).unwrap();
            Executor::new(&g, ExecOptions { threads: 1 })?.run(&[x])
        });
        if let Err(e) = loaded {
            let e = e.to_string();
            prop_assert!(e.contains("mutant") && e.contains("Pad"), "{}", e);
        }
    }
}
