//! Bool tensors and the comparison, logic, Where, GatherElements, Tile, Range and Size ops,
//! imported from one-node ONNX models and run by the fp32 executor, against straightforward
//! references: broadcast shapes, negative axes and indices, NaN, i64 edge values, zero
//! repeats; mutated nodes give errors naming the node and the op.

mod onnx_support;

use onnx_support::{
    broadcast_offset, i64_tensor, indices, int_attr, model_proto, node, run_node, typed_value,
};
use proptest::prelude::*;
use q8_frontend::exec::{ExecOptions, Executor};
use q8_frontend::ir::{Tensor, TensorData};
use q8_frontend::onnx;

/// The numpy broadcast of `shapes`.
fn broadcast(shapes: &[&[usize]]) -> Vec<usize> {
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    (0..rank)
        .map(|a| {
            shapes
                .iter()
                .filter_map(|s| (a + s.len()).checked_sub(rank).map(|i| s[i]))
                .max()
                .unwrap_or(1)
        })
        .collect()
}

/// Two shapes drawn from a common shape (rank 0..=3; each drops some leading axes and sets
/// some axes to 1) and their broadcast.
fn broadcast_pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>, Vec<usize>)> {
    prop::collection::vec(1usize..4, 0..=3).prop_flat_map(|out| {
        let r = out.len();
        let operand = (0..=r, prop::collection::vec(any::<bool>(), r)).prop_map({
            let out = out.clone();
            move |(drop, ones)| {
                (drop..r)
                    .map(|a| if ones[a] { 1 } else { out[a] })
                    .collect::<Vec<_>>()
            }
        });
        (operand.clone(), operand).prop_map(|(a, b)| (broadcast(&[&a, &b]), a, b))
    })
}

/// Values biased towards ties, NaN and infinities.
fn f32_values(n: usize) -> impl Strategy<Value = Vec<f32>> {
    let v = prop_oneof![
        4 => (-2i32..3).prop_map(|i| i as f32),
        1 => Just(f32::NAN),
        1 => Just(f32::INFINITY),
        1 => Just(f32::NEG_INFINITY),
    ];
    prop::collection::vec(v, n)
}

/// i64 values biased towards ties and the extremes.
fn i64_values(n: usize) -> impl Strategy<Value = Vec<i64>> {
    let v = prop_oneof![
        4 => -2i64..3,
        1 => Just(i64::MIN),
        1 => Just(i64::MAX),
    ];
    prop::collection::vec(v, n)
}

/// A binary bool function.
type BoolFn = fn(bool, bool) -> bool;

const COMPARISONS: [&str; 5] = ["Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual"];

fn compare<T: PartialOrd>(op: &str, a: T, b: T) -> bool {
    match op {
        "Equal" => a == b,
        "Greater" => a > b,
        "Less" => a < b,
        "GreaterOrEqual" => a >= b,
        _ => a <= b,
    }
}

/// The element-wise reference of a broadcasting binary function.
fn reference<A: Copy, B: Copy, O>(
    out: &[usize],
    (a, sa): (&[A], &[usize]),
    (b, sb): (&[B], &[usize]),
    f: impl Fn(A, B) -> O,
) -> Vec<O> {
    indices(out)
        .iter()
        .map(|i| f(a[broadcast_offset(i, sa)], b[broadcast_offset(i, sb)]))
        .collect()
}

fn bools(t: &Tensor) -> &[bool] {
    t.as_bool().expect("a bool output")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn comparisons_broadcast_f32_and_i64(
        ((out, sa, sb), fa, fb, ia, ib) in broadcast_pair().prop_flat_map(|(out, sa, sb)| {
            let (na, nb) = (sa.iter().product::<usize>(), sb.iter().product::<usize>());
            (Just((out, sa, sb)), f32_values(na), f32_values(nb), i64_values(na), i64_values(nb))
        }),
        op in 0usize..5,
    ) {
        let op = COMPARISONS[op];
        let ta = Tensor::from_f32(sa.clone(), fa.clone()).unwrap();
        let tb = Tensor::from_f32(sb.clone(), fb.clone()).unwrap();
        let y = run_node(13, op, vec![], &[ta, tb], vec![], 1).unwrap();
        prop_assert_eq!(y[0].shape(), &out[..]);
        let want = reference(&out, (&fa, &sa), (&fb, &sb), |p, q| compare(op, p, q));
        prop_assert_eq!(bools(&y[0]), &want[..]);

        let ta = Tensor::from_i64(sa.clone(), ia.clone()).unwrap();
        let tb = Tensor::from_i64(sb.clone(), ib.clone()).unwrap();
        let y = run_node(13, op, vec![], &[ta, tb], vec![], 1).unwrap();
        let want = reference(&out, (&ia, &sa), (&ib, &sb), |p, q| compare(op, p, q));
        prop_assert_eq!(bools(&y[0]), &want[..]);
    }

    #[test]
    fn logic_and_where_broadcast(
        (out, sa, sb) in broadcast_pair(),
        sc in prop::collection::vec(any::<bool>(), 0..=3),
        op in 0usize..3,
        bits in prop::collection::vec(any::<bool>(), 64),
    ) {
        let (na, nb) = (sa.iter().product::<usize>(), sb.iter().product::<usize>());
        let a: Vec<bool> = bits[..na].to_vec();
        let b: Vec<bool> = bits[32..32 + nb].to_vec();
        let ta = Tensor::from_bool(sa.clone(), a.clone()).unwrap();
        let tb = Tensor::from_bool(sb.clone(), b.clone()).unwrap();
        let logic: [(&str, BoolFn); 3] =
            [("And", |p, q| p && q), ("Or", |p, q| p || q), ("Xor", |p, q| p != q)];
        let (name, f) = logic[op];
        let y = run_node(13, name, vec![], &[ta.clone(), tb.clone()], vec![], 1).unwrap();
        prop_assert_eq!(bools(&y[0]), &reference(&out, (&a, &sa), (&b, &sb), f)[..]);

        let not = run_node(13, "Not", vec![], std::slice::from_ref(&ta), vec![], 1).unwrap();
        let flipped: Vec<bool> = a.iter().map(|&v| !v).collect();
        prop_assert_eq!(bools(&not[0]), &flipped[..]);

        // Where(cond = a, x of shape sb, y of shape sc (a suffix of out, some axes 1)).
        let r = out.len();
        let sy: Vec<usize> = (r.saturating_sub(sc.len())..r)
            .map(|i| if sc[i + sc.len() - r] { 1 } else { out[i] })
            .collect();
        let ny = sy.iter().product::<usize>();
        let out = broadcast(&[&sa, &sb, &sy]);
        let xs: Vec<f32> = (0..nb).map(|i| i as f32).collect();
        let ys: Vec<f32> = (0..ny).map(|i| -(i as f32) - 1.0).collect();
        let tx = Tensor::from_f32(sb.clone(), xs.clone()).unwrap();
        let ty = Tensor::from_f32(sy.clone(), ys.clone()).unwrap();
        let w = run_node(13, "Where", vec![], &[ta, tx, ty], vec![], 1).unwrap();
        let want: Vec<f32> = indices(&out)
            .iter()
            .map(|i| {
                if a[broadcast_offset(i, &sa)] {
                    xs[broadcast_offset(i, &sb)]
                } else {
                    ys[broadcast_offset(i, &sy)]
                }
            })
            .collect();
        prop_assert_eq!(w[0].shape(), &out[..]);
        prop_assert_eq!(w[0].as_f32().unwrap(), &want[..]);
    }

    #[test]
    fn gather_elements_picks_along_any_axis(
        shape in prop::collection::vec(1usize..4, 1..=3),
        axis_pick in any::<prop::sample::Index>(),
        negative in any::<bool>(),
        shrink in prop::collection::vec(any::<bool>(), 3),
        raw in prop::collection::vec(any::<u32>(), 27),
    ) {
        let rank = shape.len();
        let axis = axis_pick.index(rank);
        // Indices: any length on the axis, at most the data's length elsewhere.
        let ishape: Vec<usize> = shape
            .iter()
            .enumerate()
            .map(|(a, &d)| if a == axis { 1 + raw[a] as usize % 3 } else if shrink[a] { 1 } else { d })
            .collect();
        let len = shape[axis] as i64;
        let idx: Vec<i64> = (0..ishape.iter().product::<usize>())
            .map(|i| i64::from(raw[i] % len as u32) - if raw[i] % 2 == 1 { len } else { 0 })
            .collect();
        let data: Vec<i64> = (0..shape.iter().product::<usize>() as i64).collect();
        let x = Tensor::from_i64(shape.clone(), data.clone()).unwrap();
        let i = Tensor::from_i64(ishape.clone(), idx.clone()).unwrap();
        let ax = if negative { axis as i64 - rank as i64 } else { axis as i64 };
        let y = run_node(13, "GatherElements", vec![int_attr("axis", ax)], &[x, i], vec![], 1)
            .unwrap();
        let want: Vec<i64> = indices(&ishape)
            .iter()
            .enumerate()
            .map(|(flat, at)| {
                let mut src = at.clone();
                src[axis] = idx[flat].rem_euclid(len) as usize;
                data[src.iter().zip(&shape).fold(0, |acc, (&k, &d)| acc * d + k)]
            })
            .collect();
        prop_assert_eq!(y[0].shape(), &ishape[..]);
        prop_assert_eq!(y[0].as_i64().unwrap(), &want[..]);
    }

    #[test]
    fn tile_repeats_every_axis(
        shape in prop::collection::vec(1usize..4, 0..=3),
        reps in prop::collection::vec(0usize..3, 3),
    ) {
        let reps = &reps[..shape.len()];
        let n = shape.iter().product::<usize>();
        let x = Tensor::from_bool(shape.clone(), (0..n).map(|i| i % 3 == 0).collect()).unwrap();
        let r: Vec<i64> = reps.iter().map(|&r| r as i64).collect();
        let y = run_node(13, "Tile", vec![], std::slice::from_ref(&x), vec![i64_tensor("r", &[r.len() as i64], &r)], 1)
            .unwrap();
        let out: Vec<usize> = shape.iter().zip(reps).map(|(d, r)| d * r).collect();
        let src = bools(&x);
        let want: Vec<bool> = indices(&out)
            .iter()
            .map(|i| src[i.iter().zip(&shape).fold(0, |acc, (&k, &d)| acc * d + k % d)])
            .collect();
        prop_assert_eq!(y[0].shape(), &out[..]);
        prop_assert_eq!(bools(&y[0]), &want[..]);
    }
}

#[test]
fn range_counts_like_onnx_for_both_signs_and_extremes() {
    let cases: [(i64, i64, i64, Vec<i64>); 5] = [
        (0, 5, 2, vec![0, 2, 4]),
        (5, 0, -2, vec![5, 3, 1]),
        (3, 3, 1, vec![]),
        (0, 5, -1, vec![]),
        (i64::MAX - 2, i64::MAX, 1, vec![i64::MAX - 2, i64::MAX - 1]),
    ];
    for (start, limit, delta, want) in cases {
        let consts = vec![
            i64_tensor("s", &[], &[start]),
            i64_tensor("l", &[], &[limit]),
            i64_tensor("d", &[], &[delta]),
        ];
        let y = run_node(13, "Range", vec![], &[], consts, 1).unwrap();
        assert_eq!(y[0].as_i64().unwrap(), &want[..], "{start} {limit} {delta}");
    }
    let consts = vec![
        onnx_support::f32_tensor("s", &[], &[1.0]),
        onnx_support::f32_tensor("l", &[], &[2.0]),
        onnx_support::f32_tensor("d", &[], &[0.25]),
    ];
    let y = run_node(13, "Range", vec![], &[], consts, 1).unwrap();
    assert_eq!(y[0].as_f32().unwrap(), &[1.0, 1.25, 1.5, 1.75]);
}

/// `Shape -> Gather -> Range` of the run-time sequence length and `Range` to the input's
/// `Size`; a `Less` mask of the positions selects through `Where`.
#[test]
fn range_to_a_run_time_length_masks_through_where() {
    let m = model_proto(
        13,
        vec![
            node("Shape", "shape", &["x"], &["s"], vec![]),
            node("Gather", "len", &["s", "one"], &["n"], vec![]),
            node("Range", "pos", &["zero", "n", "step"], &["p"], vec![]),
            node("Size", "size", &["x"], &["k"], vec![]),
            node("Range", "all", &["zero", "k", "step"], &["q"], vec![]),
            node("Less", "lt", &["p", "three"], &["mask"], vec![]),
            node("Where", "pick", &["mask", "p", "minus"], &["y"], vec![]),
        ],
        vec![
            i64_tensor("one", &[], &[1]),
            i64_tensor("zero", &[], &[0]),
            i64_tensor("step", &[], &[1]),
            i64_tensor("three", &[], &[3]),
            i64_tensor("minus", &[1], &[-1]),
        ],
        vec![typed_value("x", 1, &[Ok(1), Err("seq")])],
        &["y", "mask", "q"],
    );
    let g = onnx::import(&m).unwrap();
    let exec = Executor::new(&g, ExecOptions { threads: 1 }).unwrap();
    for seq in [2usize, 5] {
        let x = Tensor::from_f32(vec![1, seq], vec![0.0; seq]).unwrap();
        let out = exec.run(&[x]).unwrap();
        let all: Vec<i64> = (0..seq as i64).collect();
        let want: Vec<i64> = all.iter().map(|&p| if p < 3 { p } else { -1 }).collect();
        assert_eq!(out[0].as_i64().unwrap(), &want[..]);
        let mask = all.iter().map(|&p| p < 3).collect();
        assert_eq!(out[1].data(), &TensorData::Bool(mask));
        assert_eq!(out[2].as_i64().unwrap(), &all[..]);
    }
}

#[test]
fn mutated_nodes_name_the_node_and_op() {
    let f = Tensor::from_f32(vec![2, 3], vec![0.5; 6]).unwrap();
    let b = Tensor::from_bool(vec![2, 3], vec![true; 6]).unwrap();
    let i = Tensor::from_i64(vec![2], vec![0, 7]).unwrap();
    let ints = |n: &str, v: &[i64]| i64_tensor(n, &[v.len() as i64], v);
    let cases: Vec<(&str, Vec<Tensor>, Vec<_>, Vec<_>, &str)> = vec![
        (
            "And",
            vec![f.clone(), f.clone()],
            vec![],
            vec![],
            "must be bool",
        ),
        ("Not", vec![f.clone()], vec![], vec![], "expected bool"),
        (
            "Equal",
            vec![f.clone(), b.clone()],
            vec![],
            vec![],
            "input 1 is bool",
        ),
        (
            "Less",
            vec![f.clone(), Tensor::from_f32(vec![4], vec![0.0; 4]).unwrap()],
            vec![],
            vec![],
            "broadcast",
        ),
        (
            "Where",
            vec![f.clone(), f.clone(), f.clone()],
            vec![],
            vec![],
            "expected bool",
        ),
        (
            "Where",
            vec![b.clone(), f.clone(), i.clone()],
            vec![],
            vec![],
            "input 1 is i64",
        ),
        (
            "GatherElements",
            vec![f.clone(), i.clone()],
            vec![],
            vec![],
            "indices of shape",
        ),
        (
            "GatherElements",
            vec![f.clone(), f.clone()],
            vec![],
            vec![],
            "indices must be",
        ),
        (
            "GatherElements",
            vec![f.clone(), Tensor::from_i64(vec![1, 1], vec![5]).unwrap()],
            vec![],
            vec![],
            "index 5 out of range",
        ),
        (
            "GatherElements",
            vec![f.clone(), Tensor::from_i64(vec![1, 1], vec![0]).unwrap()],
            vec![int_attr("axis", 2)],
            vec![],
            "axis 2",
        ),
        (
            "Tile",
            vec![f.clone()],
            vec![],
            vec![ints("r", &[1])],
            "1 repeats",
        ),
        (
            "Tile",
            vec![f.clone()],
            vec![],
            vec![ints("r", &[1, -1])],
            "must be in",
        ),
        (
            "Tile",
            vec![f.clone()],
            vec![],
            vec![ints("r", &[1 << 24, 2])],
            "exceeds",
        ),
        (
            "Range",
            vec![],
            vec![],
            vec![ints("s", &[0]), ints("l", &[3]), ints("d", &[0])],
            "delta",
        ),
        (
            "Range",
            vec![],
            vec![],
            vec![ints("s", &[0]), ints("l", &[i64::MAX]), ints("d", &[1])],
            "exceed",
        ),
    ];
    for (op, inputs, attrs, consts, needle) in cases {
        let err = run_node(13, op, attrs, &inputs, consts, 1).unwrap_err();
        assert!(
            err.contains(&format!("{op} node 'n'")) && err.contains(needle),
            "{op}: {err}"
        );
    }
}
