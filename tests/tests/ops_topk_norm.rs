//! TopK and InstanceNormalization imported from one-node ONNX models and run by the fp32
//! executor, against straightforward references (negative axes, ties, NaN, i64 edge
//! values, k = 0; graph inputs cannot have empty dims); mutated nodes give errors naming the node and the op; both
//! round-trip through export.

mod onnx_support;

use onnx_support::{
    f32_tensor, float_attr, i64_tensor, indices, int_attr, model_proto, node, run_node, typed_value,
};
use proptest::prelude::*;
use q8_frontend::exec::{ExecOptions, Executor};
use q8_frontend::ir::Tensor;
use q8_frontend::onnx;
use q8_frontend::onnx::proto::{AttributeProto, TensorProto};

/// Reference TopK of one line: indices sorted by (value, index) with NaN above numbers.
fn ref_topk<T: PartialOrd + Copy>(
    line: &[T],
    k: usize,
    largest: bool,
    nan: fn(T) -> bool,
) -> Vec<usize> {
    let rank = |v: T| (nan(v), v);
    let mut pos: Vec<usize> = (0..line.len()).collect();
    // Bubble-free O(n^2) selection: repeatedly take the best remaining, lower index first.
    let mut out = vec![];
    for _ in 0..k {
        let mut best: Option<usize> = None;
        for &p in &pos {
            let better = match best {
                None => true,
                Some(b) => {
                    let (pn, pv) = rank(line[p]);
                    let (bn, bv) = rank(line[b]);
                    let gt = !bn && (pn || pv > bv);
                    let lt = !pn && (bn || pv < bv);
                    if largest { gt } else { lt }
                }
            };
            if better {
                best = Some(p);
            }
        }
        let b = best.unwrap();
        pos.retain(|&p| p != b);
        out.push(b);
    }
    out
}

/// Checks TopK outputs against [`ref_topk`] along `axis` of `shape`.
fn check_topk<T: PartialOrd + Copy + std::fmt::Debug>(
    data: &[T],
    shape: &[usize],
    axis: usize,
    k: usize,
    largest: bool,
    nan: fn(T) -> bool,
    (got_values, got_idx): (&[T], &[i64]),
) -> Result<(), TestCaseError> {
    let mut out_shape = shape.to_vec();
    out_shape[axis] = k;
    for at in indices(&out_shape) {
        if at[axis] != 0 {
            continue;
        }
        let offset =
            |s: &[usize], i: &[usize]| i.iter().zip(s).fold(0, |acc, (&a, &d)| acc * d + a);
        let line: Vec<T> = (0..shape[axis])
            .map(|j| {
                let mut i = at.clone();
                i[axis] = j;
                data[offset(shape, &i)]
            })
            .collect();
        let want = ref_topk(&line, k, largest, nan);
        for (j, &w) in want.iter().enumerate() {
            let mut i = at.clone();
            i[axis] = j;
            let o = offset(&out_shape, &i);
            prop_assert_eq!(got_idx[o], w as i64);
            let (g, e) = (got_values[o], line[w]);
            prop_assert!(
                nan(g) && nan(e) || format!("{g:?}") == format!("{e:?}"),
                "{:?} vs {:?}",
                g,
                e
            );
        }
    }
    Ok(())
}

fn f32_values(n: usize) -> impl Strategy<Value = Vec<f32>> {
    let v = prop_oneof![
        6 => (-2i32..3).prop_map(|i| i as f32),
        1 => Just(f32::NAN),
        1 => Just(f32::INFINITY),
        1 => Just(f32::NEG_INFINITY),
    ];
    prop::collection::vec(v, n)
}

fn shape_axis() -> impl Strategy<Value = (Vec<usize>, i64)> {
    prop::collection::vec(1usize..5, 1..=3).prop_flat_map(|s| {
        let r = s.len() as i64;
        (Just(s), -r..r)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn topk_f32_matches_reference(
        (shape, ax) in shape_axis(),
        largest in any::<bool>(),
        kf in 0.0f64..=1.0,
        seed in f32_values(64),
        opset in prop::sample::select(vec![10i64, 11]),
    ) {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n).map(|i| seed[i % seed.len()]).collect();
        let axis = ax.rem_euclid(shape.len() as i64) as usize;
        let k = (kf * shape[axis] as f64).floor() as usize;
        let largest = largest || opset < 11;
        let x = Tensor::from_f32(shape.clone(), data.clone()).unwrap();
        let mut attrs = vec![int_attr("axis", ax)];
        if opset >= 11 {
            attrs.push(int_attr("largest", i64::from(largest)));
        }
        let y = run_node(opset, "TopK", attrs, &[x], vec![i64_tensor("k", &[1], &[k as i64])], 2).unwrap();
        let mut out = shape.clone();
        out[axis] = k;
        prop_assert_eq!(y[0].shape(), &out[..]);
        prop_assert_eq!(y[1].shape(), &out[..]);
        check_topk(&data, &shape, axis, k, largest, f32::is_nan, (y[0].as_f32().unwrap(), y[1].as_i64().unwrap()))?;
    }

    #[test]
    fn topk_i64_attribute_form(
        (shape, ax) in shape_axis(),
        vals in prop::collection::vec(prop_oneof![4 => -2i64..3, 1 => Just(i64::MIN), 1 => Just(i64::MAX)], 64),
    ) {
        let n: usize = shape.iter().product();
        let data: Vec<i64> = (0..n).map(|i| vals[i % vals.len()]).collect();
        let axis = ax.rem_euclid(shape.len() as i64) as usize;
        let k = shape[axis].min(2);
        let x = Tensor::from_i64(shape.clone(), data.clone()).unwrap();
        let y = run_node(7, "TopK", vec![int_attr("axis", ax), int_attr("k", k as i64)], &[x], vec![], 2).unwrap();
        check_topk(&data, &shape, axis, k, true, |_| false, (y[0].as_i64().unwrap(), y[1].as_i64().unwrap()))?;
    }

    #[test]
    fn instance_norm_matches_reference(
        shape in prop::collection::vec(1usize..4, 3..=5),
        seed in prop::collection::vec(-4.0f32..4.0, 32),
        eps in prop::sample::select(vec![1e-5f32, 0.1]),
    ) {
        let n: usize = shape.iter().product();
        let c = shape[1];
        let data: Vec<f32> = (0..n).map(|i| seed[i % seed.len()] + (i % 7) as f32).collect();
        let scale: Vec<f32> = (0..c).map(|i| 0.5 + i as f32).collect();
        let bias: Vec<f32> = (0..c).map(|i| i as f32 - 1.0).collect();
        let x = Tensor::from_f32(shape.clone(), data.clone()).unwrap();
        let consts = vec![f32_tensor("s", &[c as i64], &scale), f32_tensor("b", &[c as i64], &bias)];
        let y = run_node(7, "InstanceNormalization", vec![float_attr("epsilon", eps)], &[x], consts, 1).unwrap();
        let inner: usize = shape[2..].iter().product();
        let got = y[0].as_f32().unwrap();
        for (r, row) in data.chunks(inner).enumerate() {
            let m = row.iter().map(|&v| v as f64).sum::<f64>() / inner as f64;
            let var = row.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / inner as f64;
            for (j, &v) in row.iter().enumerate() {
                let want = ((v as f64 - m) / (var + eps as f64).sqrt()) * scale[r % c] as f64 + bias[r % c] as f64;
                let g = got[r * inner + j] as f64;
                prop_assert!((g - want).abs() <= 1e-5 * (1.0 + want.abs()), "{} vs {}", g, want);
            }
        }
    }
}

/// (opset, op type, inputs, attributes, initializers, expected error fragment).
type MutatedCase = (
    i64,
    &'static str,
    Vec<Tensor>,
    Vec<AttributeProto>,
    Vec<TensorProto>,
    &'static str,
);

#[test]
fn mutated_nodes_name_the_node_and_op() {
    let f = Tensor::from_f32(vec![2, 3], vec![0.5; 6]).unwrap();
    let f4 = Tensor::from_f32(vec![1, 2, 3], vec![0.5; 6]).unwrap();
    let k = |v: &[i64]| i64_tensor("k", &[v.len() as i64], v);
    let c2 = || {
        vec![
            f32_tensor("s", &[2], &[1.0; 2]),
            f32_tensor("b", &[2], &[0.0; 2]),
        ]
    };
    let cases: Vec<MutatedCase> = vec![
        (
            11,
            "TopK",
            vec![f.clone()],
            vec![],
            vec![k(&[4])],
            "k = 4 exceeds",
        ),
        (
            11,
            "TopK",
            vec![f.clone()],
            vec![],
            vec![k(&[-1])],
            "must be in",
        ),
        (
            11,
            "TopK",
            vec![f.clone()],
            vec![],
            vec![k(&[i64::MAX])],
            "must be in",
        ),
        (
            11,
            "TopK",
            vec![f.clone()],
            vec![],
            vec![k(&[1, 2])],
            "one value",
        ),
        (11, "TopK", vec![f.clone()], vec![], vec![], "missing"),
        (
            11,
            "TopK",
            vec![f.clone()],
            vec![int_attr("axis", 2)],
            vec![k(&[1])],
            "axis 2",
        ),
        (
            11,
            "TopK",
            vec![f.clone()],
            vec![int_attr("largest", 2)],
            vec![k(&[1])],
            "must be 0 or 1",
        ),
        (7, "TopK", vec![f.clone()], vec![], vec![], "attribute k"),
        (
            11,
            "TopK",
            vec![Tensor::from_bool(vec![2], vec![true; 2]).unwrap()],
            vec![],
            vec![k(&[1])],
            "got bool",
        ),
        (
            7,
            "InstanceNormalization",
            vec![f.clone()],
            vec![],
            c2(),
            "rank >= 3",
        ),
        (
            7,
            "InstanceNormalization",
            vec![f4.clone()],
            vec![],
            vec![
                f32_tensor("s", &[3], &[1.0; 3]),
                f32_tensor("b", &[2], &[0.0; 2]),
            ],
            "must be [C]",
        ),
        (
            7,
            "InstanceNormalization",
            vec![f4.clone()],
            vec![float_attr("epsilon", -1.0)],
            c2(),
            "epsilon",
        ),
        (
            7,
            "InstanceNormalization",
            vec![f4.clone()],
            vec![],
            vec![],
            "missing",
        ),
    ];
    for (opset, op, inputs, attrs, consts, needle) in cases {
        let outs = if op == "TopK" { 2 } else { 1 };
        let err = run_node(opset, op, attrs, &inputs, consts, outs).unwrap_err();
        assert!(
            err.contains(&format!("{op} node 'n'")) && err.contains(needle),
            "{op}: {err}"
        );
    }
}

#[test]
fn topk_on_a_symbolic_axis_checks_k_at_run_time() {
    let m = model_proto(
        11,
        vec![node("TopK", "n", &["x", "k"], &["v", "i"], vec![])],
        vec![i64_tensor("k", &[1], &[3])],
        vec![typed_value("x", 1, &[Err("L")])],
        &["v", "i"],
    );
    let g = onnx::import(&m).unwrap();
    let exec = Executor::new(&g, ExecOptions { threads: 1 }).unwrap();
    let ok = exec
        .run(&[Tensor::from_f32(vec![4], vec![1.0, 3.0, 2.0, 3.0]).unwrap()])
        .unwrap();
    assert_eq!(ok[0].as_f32().unwrap(), &[3.0, 3.0, 2.0]);
    assert_eq!(ok[1].as_i64().unwrap(), &[1, 3, 2]);
    let err = exec
        .run(&[Tensor::from_f32(vec![2], vec![1.0, 2.0]).unwrap()])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("TopK node 'n'") && err.contains("exceeds"),
        "{err}"
    );
}

#[test]
fn topk_and_instance_norm_round_trip_through_export() {
    let m = model_proto(
        11,
        vec![
            node(
                "InstanceNormalization",
                "in",
                &["x", "s", "b"],
                &["h"],
                vec![float_attr("epsilon", 0.01)],
            ),
            node(
                "TopK",
                "tk",
                &["h", "k"],
                &["v", "i"],
                vec![int_attr("axis", -1), int_attr("largest", 0)],
            ),
        ],
        vec![
            f32_tensor("s", &[2], &[1.5, -0.5]),
            f32_tensor("b", &[2], &[0.25, 2.0]),
            i64_tensor("k", &[1], &[2]),
        ],
        vec![typed_value("x", 1, &[Ok(1), Ok(2), Ok(4)])],
        &["v", "i"],
    );
    let g = onnx::import(&m).unwrap();
    let back = onnx::load_bytes(&onnx::encode_model(&onnx::to_model(&g).unwrap())).unwrap();
    let names = |g: &q8_frontend::ir::Graph| {
        let mut v: Vec<_> = g
            .nodes()
            .map(|(_, n)| (n.name.clone(), n.op.clone()))
            .collect();
        v.sort_by(|p, q| p.0.cmp(&q.0));
        v
    };
    assert_eq!(names(&g), names(&back));
    let x = Tensor::from_f32(vec![1, 2, 4], vec![0.0, 2.0, 1.0, 5.0, -1.0, 3.0, 3.0, 0.5]).unwrap();
    let run = |g| {
        Executor::new(g, ExecOptions { threads: 1 })
            .unwrap()
            .run(std::slice::from_ref(&x))
            .unwrap()
    };
    assert_eq!(run(&g), run(&back));
}
