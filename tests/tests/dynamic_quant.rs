//! Dynamic quantization: `DynamicQuantizeLinear` and `MatMulInteger` against straightforward
//! references of the ONNX spec (shapes of rank 1-4 with tails, all-equal and extreme
//! values, zero points scalar and per column), their errors naming node and op, export
//! round trips; `quantize --dynamic` of linear layers (ONNX Runtime's form), run by the fp32
//! executor and by the int8 runtime with the same bits.

mod onnx_support;

use onnx_support::{broadcast_offset, indices, model_proto, node, run_node, typed_value};
use proptest::prelude::*;
use q8_frontend::exec::{ExecOptions, Executor};
use q8_frontend::ir::{Tensor, TensorData};
use q8_frontend::lower::NodeLowering;
use q8_frontend::models::{mean_min_cosine, mean_pool, token_batch};
use q8_frontend::onnx;
use q8_frontend::onnx::proto::TensorProto;
use q8_frontend::quant::{
    OpQuantSpec, PatternKind, QuantConfig, Quantized, Setting, WeightGranularity, prepare,
};
use q8_frontend::runtime::{Model, RuntimeOptions};

/// The spec's DynamicQuantizeLinear, written out plainly (f32 throughout, as numpy's
/// float32 reference; `round` is half to even). A zero scale gives zero point 0, y = 0.
fn ref_dql(x: &[f32]) -> (Vec<u8>, f32, u8) {
    let lo = x.iter().fold(0.0f32, |a, &v| if v < a { v } else { a });
    let hi = x.iter().fold(0.0f32, |a, &v| if v > a { v } else { a });
    let scale = (hi - lo) / 255.0;
    if scale == 0.0 {
        return (vec![0; x.len()], 0.0, 0);
    }
    let zp = (0.0 - lo / scale).round_ties_even().clamp(0.0, 255.0);
    let y = x
        .iter()
        .map(|&v| ((v / scale).round_ties_even() + zp).clamp(0.0, 255.0) as u8)
        .collect();
    (y, scale, zp as u8)
}

/// Values of one of several kinds: spread over a range from 1e-30 to 1e30, all equal, all
/// zero, one sign only.
fn values(n: usize) -> impl Strategy<Value = Vec<f32>> {
    let spread = (
        prop::sample::select(vec![1e-30f32, 1e-3, 1.0, 7.5, 1e4, 1e30]),
        0u64..1000,
    )
        .prop_map(move |(r, seed)| {
            (0..n)
                .map(|i| r * (((i as u64 * 7919 + seed * 104_729) % 2001) as f32 / 1000.0 - 1.0))
                .collect::<Vec<f32>>()
        });
    prop_oneof![
        3 => spread,
        1 => (-100.0f32..100.0).prop_map(move |v| vec![v; n]),
        1 => Just(vec![0.0; n]),
        1 => prop::collection::vec(0.0f32..3.0, n),
        1 => prop::collection::vec(-5.0f32..-0.01, n),
    ]
}

/// A shape of rank 1-4 with small dims (tails included).
fn shape() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(prop::sample::select(vec![1usize, 2, 3, 15, 16, 17]), 1..=4)
        .prop_filter("bounded", |s| s.iter().product::<usize>() <= 4096)
}

fn u8_tensor(shape: Vec<usize>, v: Vec<u8>) -> Tensor {
    Tensor::new(shape, TensorData::U8(v)).unwrap()
}

fn i8_tensor(shape: Vec<usize>, v: Vec<i8>) -> Tensor {
    Tensor::new(shape, TensorData::I8(v)).unwrap()
}

/// `(A - za) x (B - zb[col])` with numpy matmul broadcasting, in i64.
fn ref_mmi(a: &Tensor, b: &Tensor, za: i64, zb: &[i64]) -> (Vec<usize>, Vec<i64>) {
    let ints = |t: &Tensor| -> Vec<i64> {
        match t.data() {
            TensorData::U8(v) => v.iter().map(|&x| x as i64).collect(),
            TensorData::I8(v) => v.iter().map(|&x| x as i64).collect(),
            _ => unreachable!(),
        }
    };
    let (av, bv) = (ints(a), ints(b));
    let (sa, sb) = (a.shape(), b.shape());
    let (m, k) = (sa[sa.len() - 2], sa[sa.len() - 1]);
    let n = sb[sb.len() - 1];
    let (ba, bb) = (&sa[..sa.len() - 2], &sb[..sb.len() - 2]);
    let rank = ba.len().max(bb.len());
    let pad = |s: &[usize]| [vec![1; rank - s.len()], s.to_vec()].concat();
    let batch: Vec<usize> = pad(ba)
        .iter()
        .zip(pad(bb))
        .map(|(&x, y)| x.max(y))
        .collect();
    let mut out_shape = batch.clone();
    out_shape.extend([m, n]);
    let mut y = Vec::new();
    for idx in indices(&out_shape) {
        let (bi, i, j) = (&idx[..rank], idx[rank], idx[rank + 1]);
        let mut acc = 0i64;
        for kk in 0..k {
            let ai = [bi.to_vec(), vec![i, kk]].concat();
            let bi2 = [bi.to_vec(), vec![kk, j]].concat();
            let mut sa_full = ba.to_vec();
            sa_full.extend([m, k]);
            let mut sb_full = bb.to_vec();
            sb_full.extend([k, n]);
            let x = av[broadcast_offset(&ai, &sa_full)] - za;
            let w = bv[broadcast_offset(&bi2, &sb_full)] - zb[if zb.len() == 1 { 0 } else { j }];
            acc += x * w;
        }
        y.push(acc);
    }
    (out_shape, y)
}

fn lcg(seed: u64, n: usize) -> Vec<u64> {
    let mut s = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            s >> 33
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn dynamic_quantize_linear_matches_the_spec(
        (shape, x) in shape().prop_flat_map(|s| {
            let n = s.iter().product();
            (Just(s), values(n))
        })
    ) {
        let t = Tensor::from_f32(shape.clone(), x.clone()).unwrap();
        let out = run_node(11, "DynamicQuantizeLinear", vec![], &[t], vec![], 3).unwrap();
        let (y, scale, zp) = ref_dql(&x);
        prop_assert_eq!(out[0].shape(), &shape[..]);
        prop_assert_eq!(out[0].data(), &TensorData::U8(y));
        prop_assert_eq!(out[1].shape(), &[] as &[usize]);
        prop_assert_eq!(out[1].as_f32().unwrap()[0].to_bits(), scale.to_bits());
        prop_assert_eq!(out[2].data(), &TensorData::U8(vec![zp]));
    }

    #[test]
    fn matmul_integer_matches_the_reference(
        batch_a in prop::collection::vec(prop::sample::select(vec![1usize, 2, 3]), 0..=2),
        batch_b in prop::collection::vec(prop::sample::select(vec![1usize, 2]), 0..=1),
        m in prop::sample::select(vec![1usize, 2, 5, 16, 17]),
        k in prop::sample::select(vec![1usize, 3, 15, 16, 17, 33]),
        n in prop::sample::select(vec![1usize, 4, 15, 16, 17]),
        signed_a in any::<bool>(),
        signed_b in any::<bool>(),
        zp_kind in 0usize..4,
        seed in 0u64..10_000,
    ) {
        // Batch dims of A and B broadcast: B's (if any) is applied to A's last batch axis.
        let mut sa = batch_a.clone();
        sa.extend([m, k]);
        let mut sb: Vec<usize> = match (batch_a.last(), batch_b.first()) {
            (Some(&d), Some(&e)) if e != 1 => vec![d],
            (_, Some(_)) => vec![1],
            _ => vec![],
        };
        sb.extend([k, n]);
        let na: usize = sa.iter().product();
        let nb: usize = sb.iter().product();
        let ra = lcg(seed, na);
        let rb = lcg(seed + 1, nb + n + 1);
        let a = if signed_a {
            i8_tensor(sa.clone(), ra.iter().map(|&r| r as u8 as i8).collect())
        } else {
            u8_tensor(sa.clone(), ra.iter().map(|&r| r as u8).collect())
        };
        let b = if signed_b {
            i8_tensor(sb.clone(), rb[..nb].iter().map(|&r| r as u8 as i8).collect())
        } else {
            u8_tensor(sb.clone(), rb[..nb].iter().map(|&r| r as u8).collect())
        };
        let zp_a = rb[nb] as u8;
        let zp_b: Vec<u8> = rb[nb + 1..].to_vec().iter().map(|&r| r as u8).collect();
        let zp_t = |signed: bool, dims: Vec<usize>, v: &[u8]| {
            if signed {
                i8_tensor(dims, v.iter().map(|&x| x as i8).collect())
            } else {
                u8_tensor(dims, v.to_vec())
            }
        };
        let as_i = |signed: bool, v: u8| if signed { v as i8 as i64 } else { v as i64 };
        let mut inputs = vec![a.clone(), b.clone()];
        let (za, zb) = match zp_kind {
            0 => (0, vec![0]),
            1 => {
                inputs.push(zp_t(signed_a, vec![], &[zp_a]));
                (as_i(signed_a, zp_a), vec![0])
            }
            2 => {
                inputs.push(zp_t(signed_a, vec![1], &[zp_a]));
                inputs.push(zp_t(signed_b, vec![], &zp_b[..1]));
                (as_i(signed_a, zp_a), vec![as_i(signed_b, zp_b[0])])
            }
            _ => {
                inputs.push(zp_t(signed_a, vec![], &[zp_a]));
                inputs.push(zp_t(signed_b, vec![n], &zp_b));
                (as_i(signed_a, zp_a), zp_b.iter().map(|&z| as_i(signed_b, z)).collect())
            }
        };
        let out = run_node(10, "MatMulInteger", vec![], &inputs, vec![], 1).unwrap();
        let (shape, want) = ref_mmi(&a, &b, za, &zb);
        prop_assert_eq!(out[0].shape(), &shape[..]);
        let want: Vec<i32> = want.iter().map(|&v| v as i32).collect();
        prop_assert_eq!(out[0].data(), &TensorData::I32(want));
    }
}

#[test]
fn dynamic_quantize_linear_edge_values() {
    let run = |x: Vec<f32>| {
        let t = Tensor::from_f32(vec![x.len()], x).unwrap();
        run_node(11, "DynamicQuantizeLinear", vec![], &[t], vec![], 3)
    };
    // The spec's example: [0, 2, -3, -2.5, 1.34, 0.5] -> scale 5 / 255, zp 153.
    let out = run(vec![0.0, 2.0, -3.0, -2.5, 1.34, 0.5]).unwrap();
    assert_eq!(out[1].as_f32().unwrap(), &[5.0 / 255.0]);
    assert_eq!(out[2].data(), &TensorData::U8(vec![153]));
    assert_eq!(
        out[0].data(),
        &TensorData::U8(vec![153, 255, 0, 26, 221, 179])
    );
    // Ties round half to even: scale 1, zero point rne(127.5) = 128.
    let out = run(vec![-127.5, 127.5, 0.5, 1.5, 2.5, -0.5, -1.5]).unwrap();
    assert_eq!(out[1].as_f32().unwrap(), &[1.0]);
    assert_eq!(out[2].data(), &TensorData::U8(vec![128]));
    assert_eq!(
        out[0].data(),
        &TensorData::U8(vec![0, 255, 128, 130, 130, 128, 126])
    );
    // All zero: scale 0, zero point 0, y = 0.
    let out = run(vec![0.0; 5]).unwrap();
    assert_eq!(out[1].as_f32().unwrap(), &[0.0]);
    assert_eq!(out[0].data(), &TensorData::U8(vec![0; 5]));
    for (bad, needle) in [
        (vec![1.0, f32::NAN], "NaN"),
        (vec![f32::INFINITY], "inf"),
        (vec![f32::NEG_INFINITY, 0.0], "-inf"),
        (vec![f32::MAX, -f32::MAX], "too wide"),
    ] {
        let err = run(bad).unwrap_err();
        assert!(
            err.contains("DynamicQuantizeLinear node 'n'") && err.contains(needle),
            "{err}"
        );
    }
}

/// (op type, opset, inputs, expected error fragment).
type MutatedCase = (&'static str, i64, Vec<Tensor>, &'static str);

#[test]
fn mutated_nodes_name_the_node_and_op() {
    let u = |s: Vec<usize>| {
        let n = s.iter().product();
        u8_tensor(s, vec![1; n])
    };
    let f = Tensor::from_f32(vec![2, 3], vec![0.5; 6]).unwrap();
    let cases: Vec<MutatedCase> = vec![
        ("DynamicQuantizeLinear", 11, vec![u(vec![2])], "must be f32"),
        (
            "DynamicQuantizeLinear",
            11,
            vec![f.clone(), f.clone()],
            "input",
        ),
        (
            "MatMulInteger",
            10,
            vec![f.clone(), u(vec![3, 2])],
            "u8 or i8",
        ),
        (
            "MatMulInteger",
            10,
            vec![u(vec![2, 3]), u(vec![4, 2])],
            "inner dimensions",
        ),
        ("MatMulInteger", 10, vec![u(vec![2, 3])], "input"),
        (
            "MatMulInteger",
            10,
            vec![u(vec![2, 3]), u(vec![3, 2]), u(vec![2])],
            "must be a scalar",
        ),
        (
            "MatMulInteger",
            10,
            vec![u(vec![2, 3]), u(vec![3, 2]), u(vec![]), u(vec![3])],
            "or [N]",
        ),
        (
            "MatMulInteger",
            10,
            vec![u(vec![2, 3]), u(vec![3, 2]), i8_tensor(vec![], vec![0])],
            "zero point",
        ),
        (
            "MatMulInteger",
            10,
            vec![u(vec![2, 2, 3]), u(vec![3, 3, 2])],
            "broadcast",
        ),
        (
            "MatMulInteger",
            10,
            vec![u(vec![]), u(vec![3, 2])],
            "rank >= 1",
        ),
    ];
    for (op, opset, inputs, needle) in cases {
        let outs = if op == "DynamicQuantizeLinear" { 3 } else { 1 };
        let err = run_node(opset, op, vec![], &inputs, vec![], outs).unwrap_err();
        assert!(
            err.contains(&format!("{op} node 'n'")) && err.contains(needle),
            "{op}: {err}"
        );
    }
}

/// DQL -> MatMulInteger (omitted a_zero_point, given b_zero_point) as an ONNX model.
fn dql_matmul_integer_model() -> q8_frontend::ir::Graph {
    let w: Vec<i32> = (0..12).map(|i| (i * 37 % 255) - 127).collect();
    let weight = TensorProto {
        name: "w".into(),
        dims: vec![4, 3],
        data_type: 3,
        int32_data: w,
        ..Default::default()
    };
    let wzp = TensorProto {
        name: "wzp".into(),
        dims: vec![3],
        data_type: 3,
        int32_data: vec![1, -2, 0],
        ..Default::default()
    };
    let m = model_proto(
        11,
        vec![
            node(
                "DynamicQuantizeLinear",
                "dql",
                &["x"],
                &["xq", "xs", "xz"],
                vec![],
            ),
            node(
                "MatMulInteger",
                "mmi",
                &["xq", "w", "", "wzp"],
                &["acc"],
                vec![],
            ),
            node(
                "MatMulInteger",
                "mmi2",
                &["xq", "w", "xz", "wzp"],
                &["acc2"],
                vec![],
            ),
        ],
        vec![weight, wzp],
        vec![typed_value("x", 1, &[Err("batch"), Ok(2), Ok(4)])],
        &["acc", "acc2", "xs"],
    );
    onnx::import(&m).unwrap()
}

#[test]
fn dql_and_matmul_integer_round_trip_through_export() {
    let g = dql_matmul_integer_model();
    let bytes = onnx::encode_model(&onnx::to_model(&g).unwrap());
    let back = onnx::load_bytes(&bytes).unwrap();
    let ops = |g: &q8_frontend::ir::Graph| {
        let mut v: Vec<_> = g
            .nodes()
            .map(|(_, n)| (n.name.clone(), n.op.clone(), n.inputs.len()))
            .collect();
        v.sort_by(|p, q| p.0.cmp(&q.0));
        v
    };
    assert_eq!(ops(&g), ops(&back));
    let x: Vec<f32> = (0..24).map(|i| (i as f32 * 0.7).sin() * 3.0).collect();
    let x = Tensor::from_f32(vec![3, 2, 4], x).unwrap();
    let run = |g| {
        Executor::new(g, ExecOptions { threads: 1 })
            .unwrap()
            .run(std::slice::from_ref(&x))
            .unwrap()
    };
    let (a, b) = (run(&g), run(&back));
    assert_eq!(a, b);
    assert_eq!(a[0].shape(), &[3, 2, 3]);
    // With the activation's own zero point the product is (x_q - zp) x (w - wzp).
    let (xq, _, zp) = ref_dql(x.as_f32().unwrap());
    let xq = u8_tensor(vec![3, 2, 4], xq);
    let w = i8_tensor(
        vec![4, 3],
        (0..12).map(|i| ((i * 37 % 255) - 127) as i8).collect(),
    );
    let (_, want) = ref_mmi(&xq, &w, zp as i64, &[1, -2, 0]);
    let want: Vec<i32> = want.iter().map(|&v| v as i32).collect();
    assert_eq!(a[1].data(), &TensorData::I32(want));
}

// ---- quantize --dynamic ----

fn f32_init(name: &str, dims: &[usize], seed: u64, scale: f32) -> TensorProto {
    let n: usize = dims.iter().product();
    let v: Vec<f32> = lcg(seed, n)
        .iter()
        .map(|&r| scale * ((r % 2001) as f32 / 1000.0 - 1.0))
        .collect();
    onnx_support::f32_tensor(
        name,
        &dims.iter().map(|&d| d as i64).collect::<Vec<_>>(),
        &v,
    )
}

/// A small fp32 model of linear layers: `x [b, s, 20]` -> MatMul W1 [20, 17] -> Add b1 ->
/// Relu -> MatMul W2 [17, 5]; and `z [b, 20]` -> Gemm (transB, bias) -> Gemm (no bias), plus
/// a second MatMul reading `x` (so one DynamicQuantizeLinear serves two layers).
fn linear_model() -> q8_frontend::ir::Graph {
    let gemm_attrs = || vec![onnx_support::int_attr("transB", 1)];
    let m = model_proto(
        13,
        vec![
            node("MatMul", "fc1", &["x", "w1"], &["h1"], vec![]),
            node("Add", "fc1_bias", &["h1", "b1"], &["h2"], vec![]),
            node("Relu", "relu", &["h2"], &["h3"], vec![]),
            node("MatMul", "fc2", &["h3", "w2"], &["y"], vec![]),
            node("MatMul", "side", &["x", "w3"], &["y_side"], vec![]),
            node("Gemm", "g1", &["z", "gw1", "gb1"], &["u1"], gemm_attrs()),
            node("Gemm", "g2", &["u1", "gw2"], &["u"], gemm_attrs()),
        ],
        vec![
            f32_init("w1", &[20, 17], 1, 0.4),
            f32_init("b1", &[17], 2, 0.1),
            f32_init("w2", &[17, 5], 3, 0.5),
            f32_init("w3", &[20, 16], 4, 0.3),
            f32_init("gw1", &[16, 20], 5, 0.4),
            f32_init("gb1", &[16], 6, 0.2),
            f32_init("gw2", &[15, 16], 7, 0.6),
        ],
        vec![
            typed_value("x", 1, &[Err("b"), Ok(3), Ok(20)]),
            typed_value("z", 1, &[Err("b"), Ok(20)]),
        ],
        &["y", "y_side", "u"],
    );
    onnx::import(&m).unwrap()
}

/// Dynamic quantization without any calibration.
fn quantize_dynamic(g: &q8_frontend::ir::Graph, config: &QuantConfig) -> Quantized {
    prepare(g, config, ExecOptions { threads: 1 })
        .unwrap()
        .convert()
        .unwrap()
}

fn count_ops(g: &q8_frontend::ir::Graph, op: &str) -> usize {
    g.nodes().filter(|(_, n)| n.op.name() == op).count()
}

fn linear_inputs(b: usize, seed: u64) -> Vec<Tensor> {
    let x: Vec<f32> = lcg(seed, b * 60)
        .iter()
        .map(|&r| (r % 1000) as f32 / 250.0 - 2.0)
        .collect();
    let z: Vec<f32> = lcg(seed + 9, b * 20)
        .iter()
        .map(|&r| (r % 1000) as f32 / 100.0 - 3.0)
        .collect();
    vec![
        Tensor::from_f32(vec![b, 3, 20], x).unwrap(),
        Tensor::from_f32(vec![b, 20], z).unwrap(),
    ]
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    q8_frontend::models::cosine_similarity(a, b)
}

#[test]
fn quantize_dynamic_writes_onnx_runtime_form_without_calibration() {
    let g = linear_model();
    let q = quantize_dynamic(&g, &QuantConfig::dynamic());
    assert_eq!(q.annotation.patterns.len(), 5);
    assert!(
        q.annotation
            .patterns
            .iter()
            .all(|p| p.kind == PatternKind::DynamicLinear)
    );
    assert!(q.activations.is_empty());
    // x feeds fc1 and side: one DynamicQuantizeLinear; h3, z, u1: one each.
    assert_eq!(count_ops(&q.graph, "DynamicQuantizeLinear"), 4);
    assert_eq!(count_ops(&q.graph, "MatMulInteger"), 5);
    assert_eq!(count_ops(&q.graph, "Cast"), 5);
    assert_eq!(count_ops(&q.graph, "Mul"), 10);
    // fc1's Add stays (fp32); g1's bias becomes one.
    assert_eq!(count_ops(&q.graph, "Add"), 2);
    assert_eq!(
        count_ops(&q.graph, "Gemm") + count_ops(&q.graph, "MatMul"),
        0
    );
    // The MatMulInteger keeps the layer's name; weights per output channel.
    assert!(q.graph.node_by_name("fc1").is_some());
    let w = q.weights.iter().find(|w| w.node == "g1").unwrap();
    assert_eq!(w.scales.len(), 16);

    let exec = |g| Executor::new(g, ExecOptions { threads: 1 }).unwrap();
    let x = linear_inputs(4, 3);
    let want = exec(&g).run(&x).unwrap();
    let got = exec(&q.graph).run(&x).unwrap();
    for (w, o) in want.iter().zip(&got) {
        assert_eq!(w.shape(), o.shape());
        let c = cosine(w.as_f32().unwrap(), o.as_f32().unwrap());
        assert!(c > 0.999, "cosine {c}");
    }
    // Saved and loaded back: the same graph computes the same bits.
    let path = std::env::temp_dir().join(format!("q8_dyn_{}.onnx", std::process::id()));
    q.save(&path).unwrap();
    let back = onnx::load(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(exec(&back).run(&x).unwrap(), got);
}

#[test]
fn dynamic_mode_options_per_tensor_weights_and_mixed_configs() {
    let g = linear_model();
    let mut spec = OpQuantSpec::x86_default().with_dynamic(true);
    spec.weight.granularity = WeightGranularity::PerTensor;
    let q = quantize_dynamic(&g, &QuantConfig::with_global(Setting::Quantize(spec)));
    assert!(q.weights.iter().all(|w| w.scales.len() == 1));
    let x = linear_inputs(2, 5);
    let got = Executor::new(&q.graph, ExecOptions { threads: 1 })
        .unwrap()
        .run(&x)
        .unwrap();
    assert_eq!(got[0].shape(), &[2, 3, 5]);
    // A static global with one layer dynamic: the static ones still need calibration.
    let mut mixed = QuantConfig::x86_default();
    mixed.set_node("g2", Setting::Quantize(spec));
    let p = prepare(&g, &mixed, ExecOptions { threads: 1 }).unwrap();
    let err = p.convert().unwrap_err().to_string();
    assert!(err.contains("calibration"), "{err}");
    let kind = |name: &str| {
        let id = g.node_by_name(name).unwrap();
        p.annotation().pattern_of(id).map(|m| m.kind)
    };
    assert_eq!(kind("g2"), Some(PatternKind::DynamicLinear));
    assert_eq!(kind("g1"), Some(PatternKind::Linear));
    // An already dynamically quantized model is rejected.
    let err = prepare(
        &q.graph,
        &QuantConfig::dynamic(),
        ExecOptions { threads: 1 },
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("already quantized"), "{err}");
}

const HIDDEN: usize = 32;
const VOCAB: usize = 96;

fn tiny_bert() -> q8_frontend::ir::Graph {
    onnx::load(q8_tests::data("tiny_bert/tiny_bert.onnx")).unwrap()
}

/// `ort_dynamic_2x16.npy` is ONNX Runtime 1.32's output of the model q8 writes for
/// `q8 quantize tiny_bert.onnx --dynamic` on `ids_2x16` / `mask_2x16`.
#[test]
fn tiny_bert_dynamic_matches_onnx_runtime_and_keeps_embeddings() {
    let g = tiny_bert();
    let q = quantize_dynamic(&g, &QuantConfig::dynamic());
    assert_eq!(count_ops(&q.graph, "MatMulInteger"), 12);
    let exec = Executor::new(&q.graph, ExecOptions { threads: 1 }).unwrap();
    let inputs = [
        q8_tests::read_i64("tiny_bert/ids_2x16.npy"),
        q8_tests::read_i64("tiny_bert/mask_2x16.npy"),
    ];
    let out = exec.run(&inputs).unwrap();
    let want = q8_tests::read_f32("tiny_bert/ort_dynamic_2x16.npy");
    let err = q8_tests::max_rel_err(want.as_f32().unwrap(), out[0].as_f32().unwrap());
    assert!(err < 1e-4, "relative error {err} vs ONNX Runtime");

    let (ids, mask) = token_batch(6, 40, VOCAB, 99).unwrap();
    let inputs = [ids, mask.clone()];
    let fp32 = Executor::new(&g, ExecOptions { threads: 1 })
        .unwrap()
        .run(&inputs)
        .unwrap();
    let dynamic = exec.run(&inputs).unwrap();
    let a = mean_pool(fp32[0].as_f32().unwrap(), &mask, HIDDEN).unwrap();
    let b = mean_pool(dynamic[0].as_f32().unwrap(), &mask, HIDDEN).unwrap();
    let (mean, min) = mean_min_cosine(&a, &b);
    assert!(mean >= 0.99, "mean cosine {mean} (min {min})");
}

// ---- the int8 runtime ----

/// Runs `g` on every available tier with 1 and 2 threads; every result must equal the fp32
/// executor's bits. Returns the models' reports of the first run.
fn runtime_matches_executor(
    g: &q8_frontend::ir::Graph,
    inputs: &[Tensor],
    test: &str,
) -> q8_frontend::lower::LoweringReport {
    let want = Executor::new(g, ExecOptions { threads: 1 })
        .unwrap()
        .run(inputs)
        .unwrap();
    let mut report = None;
    for tier in q8_tests::available_tiers(test) {
        for threads in [1, 2] {
            let rt = RuntimeOptions {
                tier: Some(tier),
                threads,
            };
            let model = Model::from_graph(g, &rt).unwrap();
            let got = model.run(inputs).unwrap();
            assert_eq!(got.len(), want.len());
            for (i, (w, o)) in want.iter().zip(&got).enumerate() {
                assert_eq!(w.shape(), o.shape(), "output {i}, tier {tier}");
                match (w.as_f32(), o.as_f32()) {
                    (Some(a), Some(b)) => {
                        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                        assert!(
                            bits(a) == bits(b),
                            "output {i}: tier {tier}, {threads} threads differ from the executor"
                        );
                    }
                    _ => assert_eq!(w, o, "output {i}: tier {tier}, {threads} threads"),
                }
            }
            report.get_or_insert_with(|| model.report().clone());
        }
    }
    report.unwrap()
}

fn dynamic_steps(report: &q8_frontend::lower::LoweringReport) -> usize {
    report
        .nodes
        .iter()
        .filter(|e| e.op == "MatMulInteger")
        .filter(|e| matches!(&e.lowering, NodeLowering::Lowered { kernel, .. } if kernel.starts_with("int8 dynamic linear")))
        .count()
}

#[test]
fn runtime_dynamic_linear_is_bit_identical_to_the_executor() {
    let g = linear_model();
    for per_tensor in [false, true] {
        let mut spec = OpQuantSpec::x86_default().with_dynamic(true);
        if per_tensor {
            spec.weight.granularity = WeightGranularity::PerTensor;
        }
        let q = quantize_dynamic(&g, &QuantConfig::with_global(Setting::Quantize(spec)));
        for (b, seed) in [(1, 1), (4, 2), (7, 3)] {
            let report = runtime_matches_executor(&q.graph, &linear_inputs(b, seed), "dynamic");
            assert_eq!(dynamic_steps(&report), 5);
            // Every DynamicQuantizeLinear runs inside the linear steps.
            assert!(report.nodes.iter().filter(|e| e.op == "DynamicQuantizeLinear").all(
                |e| matches!(&e.lowering, NodeLowering::Lowered { kernel, .. } if kernel.starts_with("int8 dynamic"))
            ));
        }
    }
}

#[test]
fn runtime_tiny_bert_dynamic_is_bit_identical_and_keeps_embeddings() {
    let g = tiny_bert();
    let q = quantize_dynamic(&g, &QuantConfig::dynamic());
    let (ids, mask) = token_batch(3, 24, VOCAB, 7).unwrap();
    let inputs = [ids, mask.clone()];
    let report = runtime_matches_executor(&q.graph, &inputs, "tiny_bert_dynamic");
    assert_eq!(dynamic_steps(&report), 12);
    // Each layer's decomposed GELU (Div, Erf, Add, Mul, Mul) runs in the FFN step.
    let fused_erfs = report
        .nodes
        .iter()
        .filter(|e| e.op == "Erf")
        .filter(|e| {
            matches!(&e.lowering, NodeLowering::Lowered { kernel, detail, .. }
            if kernel.starts_with("int8 dynamic linear") && detail.contains("gelu"))
        })
        .count();
    assert_eq!(fused_erfs, 2, "one fused GELU per layer");
    let fp32 = Executor::new(&g, ExecOptions { threads: 1 })
        .unwrap()
        .run(&inputs)
        .unwrap();
    let int8 = Model::from_graph(&q.graph, &RuntimeOptions::default())
        .unwrap()
        .run(&inputs)
        .unwrap();
    let a = mean_pool(fp32[0].as_f32().unwrap(), &mask, HIDDEN).unwrap();
    let b = mean_pool(int8[0].as_f32().unwrap(), &mask, HIDDEN).unwrap();
    let (mean, min) = mean_min_cosine(&a, &b);
    assert!(mean >= 0.99, "mean cosine {mean} (min {min})");
}

/// A non-finite activation is an error naming the DynamicQuantizeLinear node, in the
/// runtime as in the executor.
#[test]
fn runtime_rejects_non_finite_activations_naming_the_quantizer() {
    let q = quantize_dynamic(&linear_model(), &QuantConfig::dynamic());
    let dql = q
        .graph
        .nodes()
        .find(|(_, n)| n.op.name() == "DynamicQuantizeLinear" && n.inputs[0] == q.graph.inputs()[1])
        .map(|(_, n)| n.name.clone())
        .unwrap();
    let mut x = linear_inputs(2, 1);
    let (shape, mut z) = (x[1].shape().to_vec(), x[1].as_f32().unwrap().to_vec());
    z[3] = f32::INFINITY;
    x[1] = Tensor::from_f32(shape, z).unwrap();
    let exec = Executor::new(&q.graph, ExecOptions { threads: 1 }).unwrap();
    let model = Model::from_graph(&q.graph, &RuntimeOptions::default()).unwrap();
    for err in [
        exec.run(&x).unwrap_err().to_string(),
        model.run(&x).unwrap_err().to_string(),
    ] {
        assert!(
            err.contains(&format!("DynamicQuantizeLinear node '{dql}'")) && err.contains("inf"),
            "{err}"
        );
    }
}

/// Unmatched forms (no activation zero point; DQL outputs read elsewhere) run as fallback
/// steps, with every output of a multi-output node available.
#[test]
fn runtime_runs_unmatched_dynamic_forms_in_fallback() {
    let g = dql_matmul_integer_model();
    let x: Vec<f32> = (0..48).map(|i| (i as f32 * 0.37).cos() * 2.0).collect();
    let x = Tensor::from_f32(vec![6, 2, 4], x).unwrap();
    runtime_matches_executor(&g, &[x], "dynamic_fallback");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Random linear layers (ranks 2-4, K and N tails, extreme and constant inputs): the
    /// int8 runtime gives the executor's bits on every tier and thread count.
    #[test]
    fn runtime_dynamic_linear_matches_executor_on_random_shapes(
        lead in prop::collection::vec(prop::sample::select(vec![1usize, 2, 3, 17]), 1..=3),
        k in prop::sample::select(vec![1usize, 15, 16, 17, 64, 65]),
        n in prop::sample::select(vec![1usize, 15, 16, 17, 33]),
        gemm in any::<bool>(),
        bias in any::<bool>(),
        seed in 0u64..1000,
        kind in 0usize..4,
    ) {
        let lead = if gemm { vec![lead[0]] } else { lead };
        let w_dims = if gemm { vec![n, k] } else { vec![k, n] };
        let mut inputs = vec!["x", "w"];
        let mut inits = vec![f32_init("w", &w_dims, seed, 0.5)];
        let mut nodes = vec![];
        let attrs = if gemm { vec![onnx_support::int_attr("transB", 1)] } else { vec![] };
        if bias {
            inits.push(f32_init("b", &[n], seed + 1, 0.3));
            if gemm {
                inputs.push("b");
            }
        }
        let mm_out = if bias && !gemm { "h" } else { "y" };
        nodes.push(node(if gemm { "Gemm" } else { "MatMul" }, "fc", &inputs, &[mm_out], attrs));
        if bias && !gemm {
            nodes.push(node("Add", "bias", &["h", "b"], &["y"], vec![]));
        }
        let mut dims: Vec<Result<i64, &str>> = lead.iter().map(|&d| Ok(d as i64)).collect();
        dims.push(Ok(k as i64));
        let m = model_proto(13, nodes, inits, vec![typed_value("x", 1, &dims)], &["y"]);
        let g = onnx::import(&m).unwrap();
        let q = quantize_dynamic(&g, &QuantConfig::dynamic());
        let count: usize = lead.iter().product::<usize>() * k;
        let x: Vec<f32> = match kind {
            0 => lcg(seed, count).iter().map(|&r| (r % 2001) as f32 / 100.0 - 10.0).collect(),
            1 => vec![1.5; count],
            2 => vec![0.0; count],
            _ => lcg(seed, count).iter().map(|&r| (r % 2001) as f32 * 1e25 - 1e28).collect(),
        };
        let mut shape = lead.clone();
        shape.push(k);
        let x = Tensor::from_f32(shape, x).unwrap();
        let report = runtime_matches_executor(&q.graph, &[x], "dynamic_prop");
        prop_assert_eq!(dynamic_steps(&report), 1);
    }
}

/// ONNX Runtime's own `quantize_dynamic` of tiny_bert (`dynamic_refs.py`): q8 loads it, its
/// fp32 executor matches ONNX Runtime, and the int8 runtime lowers all 12 MatMulIntegers
/// with the executor's bits on every tier and thread count.
#[test]
fn onnx_runtime_dynamic_model_runs_on_the_int8_kernels() {
    let g = onnx::load(q8_tests::data("tiny_bert/tiny_bert_ort_dynamic.onnx")).unwrap();
    let inputs = [
        q8_tests::read_i64("tiny_bert/ids_2x16.npy"),
        q8_tests::read_i64("tiny_bert/mask_2x16.npy"),
    ];
    let out = Executor::new(&g, ExecOptions { threads: 1 })
        .unwrap()
        .run(&inputs)
        .unwrap();
    let want = q8_tests::read_f32("tiny_bert/ort_ort_dynamic_2x16.npy");
    let err = q8_tests::max_rel_err(want.as_f32().unwrap(), out[0].as_f32().unwrap());
    assert!(err < 1e-4, "relative error {err} vs ONNX Runtime");
    let report = runtime_matches_executor(&g, &inputs, "ort_dynamic");
    assert_eq!(dynamic_steps(&report), 12);
    assert_eq!(report.int8_coverage(), (12, 16));
}
