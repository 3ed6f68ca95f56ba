//! 1-D convolution (ONNX `Conv` on `[N, C, L]` with a `[M, C / group, k]` weight, as
//! `torch.nn.Conv1d` exports it): the fp32 executor against a straightforward f64 reference
//! over random shapes, strides, dilations, pads and groups (depthwise included); symbolic
//! `N` and `L` through shape inference; a Conv1d -> BatchNorm -> Relu -> Conv1d model
//! quantized with the X86 recipe and run on the int8 kernels (bit-identical to the same
//! model written as a 2-D conv over `H = 1`, identical on every tier and thread count,
//! within 1 LSB of the QDQ reference); export round trips; attribute errors naming the node.

mod onnx_support;

use onnx_support::*;
use proptest::prelude::*;
use q8_frontend::exec::{ExecOptions, Executor};
use q8_frontend::ir::{DType, Dim, Graph, Op, Tensor, TensorData};
use q8_frontend::lower::NodeLowering;
use q8_frontend::onnx::{
    self,
    proto::{AttributeProto, TensorProto},
};
use q8_frontend::quant::{QuantConfig, prepare};
use q8_frontend::runtime::{Model, RuntimeOptions};
use q8_tests::{available_tiers, sqnr_db};

const ONE: ExecOptions = ExecOptions { threads: 1 };

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % 2000) as f32 / 1000.0 - 1.0
        })
        .collect()
}

/// One drawn convolution.
#[derive(Clone, Debug)]
struct Case {
    n: usize,
    groups: usize,
    /// Input channels per group.
    cg: usize,
    /// Output channels per group.
    mg: usize,
    l: usize,
    k: usize,
    stride: usize,
    dilation: usize,
    pads: [usize; 2],
    /// `auto_pad = SAME_UPPER` instead of `pads`.
    same: bool,
    bias: bool,
    seed: u64,
}

impl Case {
    fn c(&self) -> usize {
        self.groups * self.cg
    }
    fn m(&self) -> usize {
        self.groups * self.mg
    }
    fn span(&self) -> usize {
        self.dilation * (self.k - 1) + 1
    }
    /// The effective pads: explicit, or SAME_UPPER's (extra pad at the end).
    fn pads(&self) -> [usize; 2] {
        if !self.same {
            return self.pads;
        }
        let out = self.l.div_ceil(self.stride);
        let total = ((out - 1) * self.stride + self.span()).saturating_sub(self.l);
        [total / 2, total - total / 2]
    }
    fn out_len(&self) -> usize {
        let p = self.pads();
        (self.l + p[0] + p[1] - self.span()) / self.stride + 1
    }
    fn x(&self) -> Vec<f32> {
        values(self.n * self.c() * self.l, self.seed)
    }
    fn w(&self) -> Vec<f32> {
        values(self.m() * self.cg * self.k, self.seed ^ 1)
    }
    fn b(&self) -> Vec<f32> {
        values(self.m(), self.seed ^ 2)
    }

    /// The straightforward definition, in f64.
    fn reference(&self) -> Vec<f64> {
        let (x, w, b) = (self.x(), self.w(), self.b());
        let (c, m, l, ol) = (self.c(), self.m(), self.l, self.out_len());
        let mut y = vec![0f64; self.n * m * ol];
        for n in 0..self.n {
            for o in 0..m {
                let g = o / self.mg;
                for p in 0..ol {
                    let mut acc = if self.bias { b[o] as f64 } else { 0.0 };
                    for i in 0..self.cg {
                        let ic = g * self.cg + i;
                        for t in 0..self.k {
                            let pos = (p * self.stride + t * self.dilation) as i64
                                - self.pads()[0] as i64;
                            if pos < 0 || pos >= l as i64 {
                                continue;
                            }
                            let xv = x[(n * c + ic) * l + pos as usize] as f64;
                            acc += xv * w[(o * self.cg + i) * self.k + t] as f64;
                        }
                    }
                    y[(n * m + o) * ol + p] = acc;
                }
            }
        }
        y
    }

    /// A one-Conv model with symbolic `N` and `L`.
    fn model(&self) -> Vec<u8> {
        let (c, m, cg, k) = (
            self.c() as i64,
            self.m() as i64,
            self.cg as i64,
            self.k as i64,
        );
        let mut inputs = vec!["x", "w"];
        let mut init = vec![f32_tensor("w", &[m, cg, k], &self.w())];
        if self.bias {
            inputs.push("b");
            init.push(f32_tensor("b", &[m], &self.b()));
        }
        let mut attrs = vec![
            ints_attr("kernel_shape", &[k]),
            ints_attr("strides", &[self.stride as i64]),
            ints_attr("dilations", &[self.dilation as i64]),
            int_attr("group", self.groups as i64),
        ];
        attrs.push(if self.same {
            string_attr("auto_pad", "SAME_UPPER")
        } else {
            ints_attr("pads", &[self.pads[0] as i64, self.pads[1] as i64])
        });
        model(
            17,
            vec![node("Conv", "conv", &inputs, &["y"], attrs)],
            init,
            value("x", &[Err("N"), Ok(c), Err("L")]),
            "y",
        )
    }
}

fn case() -> impl Strategy<Value = Case> {
    let l = prop_oneof![Just(1usize), Just(15), Just(16), Just(17), 1usize..70];
    let groups = prop_oneof![Just(1usize), Just(2), Just(3)];
    (
        (1usize..4, groups, 1usize..5, 1usize..5, any::<bool>()),
        (l, 1usize..6, 1usize..4, 1usize..4),
        (0usize..4, 0usize..4, any::<bool>(), any::<u64>()),
    )
        .prop_map(
            |((n, groups, cg, mg, depthwise), (l, k, stride, dilation), (p0, p1, bias, seed))| {
                let (cg, mg) = if depthwise { (1, mg.min(2)) } else { (cg, mg) };
                Case {
                    n,
                    groups: if depthwise {
                        groups * cg.max(2)
                    } else {
                        groups
                    },
                    cg,
                    mg,
                    l,
                    k,
                    stride,
                    dilation,
                    pads: [p0, p1],
                    same: seed % 4 == 0,
                    bias,
                    seed,
                }
            },
        )
        .prop_filter("the window fits", |c| {
            let p = c.pads();
            c.l + p[0] + p[1] > c.dilation * (c.k - 1)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The fp32 executor computes the 1-D convolution, and shape inference keeps the output
    /// rank 3 with a symbolic batch and length.
    #[test]
    fn fp32_conv1d_matches_the_f64_reference(c in case()) {
        let g = onnx::load_bytes(&c.model()).unwrap();
        let y = g.outputs()[0];
        let dims = g.value(y).ty.shape.dims().to_vec();
        prop_assert_eq!(dims.len(), 3);
        prop_assert_eq!(&dims[0], &Dim::sym("N"));
        prop_assert_eq!(&dims[1], &Dim::Known(c.m()));
        prop_assert!(matches!(dims[2], Dim::Sym(_)), "{:?}", dims);
        let x = Tensor::from_f32(vec![c.n, c.c(), c.l], c.x()).unwrap();
        let threads = 1 + (c.seed % 2) as usize;
        let out = Executor::new(&g, ExecOptions { threads }).unwrap().run(&[x]).unwrap();
        prop_assert_eq!(out[0].shape(), &[c.n, c.m(), c.out_len()]);
        let want = c.reference();
        for (i, (&got, &w)) in out[0].as_f32().unwrap().iter().zip(&want).enumerate() {
            let tol = 1e-5 * (1.0 + (c.cg * c.k) as f64);
            prop_assert!((got as f64 - w).abs() <= tol, "{:?}: element {}: {} vs {}", c, i, got, w);
        }
    }
}

/// The `[N, C, L]` model under quantization: Conv1d (6 -> 8, k 3, pads 1) -> BatchNorm ->
/// Relu -> depthwise Conv1d (k 5, stride 2, pads 2) -> grouped Conv1d (group 2, 8 -> 4,
/// k 3, dilation 2) + pointwise Conv1d of the same input (8 -> 4) -> Add -> Relu (a fused
/// residual sum). `two_d` writes the same model as 2-D convs over `[N, C, 1, L]`.
fn stack(two_d: bool) -> Vec<u8> {
    let dims = |v: &[i64]| -> Vec<i64> {
        if two_d {
            [&v[..2], &[1], &v[2..]].concat()
        } else {
            v.to_vec()
        }
    };
    let attrs = |k: i64, s: i64, d: i64, p: i64, g: i64| {
        let w = |v: i64, h: i64| if two_d { vec![h, v] } else { vec![v] };
        let pads = if two_d { vec![0, p, 0, p] } else { vec![p, p] };
        vec![
            ints_attr("kernel_shape", &w(k, 1)),
            ints_attr("strides", &w(s, 1)),
            ints_attr("dilations", &w(d, 1)),
            ints_attr("pads", &pads),
            int_attr("group", g),
        ]
    };
    let bn: Vec<TensorProto> = ["gamma", "beta", "mean", "var"]
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let v: Vec<f32> = values(8, 40 + i as u64)
                .iter()
                .map(|v| {
                    if *n == "var" || *n == "gamma" {
                        0.5 + v.abs()
                    } else {
                        *v
                    }
                })
                .collect();
            f32_tensor(n, &[8], &v)
        })
        .collect();
    let mut init = vec![
        f32_tensor("wa", &dims(&[8, 6, 3]), &values(8 * 6 * 3, 11)),
        f32_tensor("ba", &[8], &values(8, 12)),
        f32_tensor("wb", &dims(&[8, 1, 5]), &values(8 * 5, 13)),
        f32_tensor("wc", &dims(&[4, 4, 3]), &values(4 * 4 * 3, 14)),
        f32_tensor("bc", &[4], &values(4, 15)),
        f32_tensor("wd", &dims(&[4, 8, 1]), &values(4 * 8, 16)),
    ];
    init.extend(bn);
    let nodes = vec![
        node(
            "Conv",
            "conv_a",
            &["x", "wa", "ba"],
            &["a"],
            attrs(3, 1, 1, 1, 1),
        ),
        node(
            "BatchNormalization",
            "bn",
            &["a", "gamma", "beta", "mean", "var"],
            &["an"],
            vec![],
        ),
        node("Relu", "relu", &["an"], &["ar"], vec![]),
        node(
            "Conv",
            "conv_b",
            &["ar", "wb"],
            &["b"],
            attrs(5, 2, 1, 2, 8),
        ),
        node(
            "Conv",
            "conv_c",
            &["b", "wc", "bc"],
            &["c"],
            attrs(3, 1, 2, 2, 2),
        ),
        node("Conv", "conv_d", &["b", "wd"], &["d"], attrs(1, 1, 1, 0, 1)),
        node("Add", "add", &["c", "d"], &["s"], vec![]),
        node("Relu", "relu_out", &["s"], &["y"], vec![]),
    ];
    let x_dims = if two_d {
        vec![Err("N"), Ok(6), Ok(1), Ok(L as i64)]
    } else {
        vec![Err("N"), Ok(6), Err("L")]
    };
    model(17, nodes, init, value("x", &x_dims), "y")
}

/// The sequence length of the 2-D form and of the calibration batches (the 1-D model's
/// length is symbolic).
const L: usize = 37;

fn batch(n: usize, seed: u64, two_d: bool, l: usize) -> Tensor {
    let shape = if two_d {
        vec![n, 6, 1, l]
    } else {
        vec![n, 6, l]
    };
    Tensor::from_f32(
        shape,
        values(n * 6 * l, seed).iter().map(|v| 2.0 * v).collect(),
    )
    .unwrap()
}

/// Imports, folds, calibrates and converts `stack(two_d)` with the X86 recipe.
fn quantized(two_d: bool) -> Graph {
    let g = onnx::load_bytes(&stack(two_d)).unwrap();
    let mut p = prepare(&g, &QuantConfig::x86_default(), ONE).unwrap();
    let folded = &p.batch_norm_folding().folded;
    assert_eq!(folded, &[("bn".to_string(), "conv_a".to_string())]);
    assert!(
        !p.graph()
            .nodes()
            .any(|(_, n)| matches!(n.op, Op::BatchNorm { .. }))
    );
    p.calibrate((0..4).map(|s| vec![batch(3, s, two_d, L)]), |_| {})
        .unwrap();
    p.convert().unwrap().graph
}

/// Runs `xs` (one model, several input shapes) on the int8 runtime, checking that every
/// conv runs on the int8 kernels.
fn run_int8(g: &Graph, xs: &[Tensor], tier: q8_kernels::Tier, threads: usize) -> Vec<Tensor> {
    let model = Model::from_graph(
        g,
        &RuntimeOptions {
            tier: Some(tier),
            threads,
        },
    )
    .unwrap();
    let r = model.report();
    for conv in ["conv_a", "conv_b", "conv_c", "conv_d"] {
        let e = r.nodes.iter().find(|e| e.node == conv).unwrap();
        assert!(
            matches!(&e.lowering, NodeLowering::Lowered { kernel, .. } if kernel.starts_with("int8 conv")),
            "{conv} on {tier}: {e:?}\n{r}"
        );
    }
    assert_eq!(r.int8_coverage(), (4, 4), "{r}");
    assert!(r.fallback_nodes().is_empty(), "{r}");
    assert!(format!("{r}").contains("residual sum"), "{r}");
    xs.iter()
        .map(|x| model.run(std::slice::from_ref(x)).unwrap().remove(0))
        .collect()
}

/// The int8 runtime against the fp32 executor of the QDQ graph: u8 intermediates within
/// 1 LSB, outputs close.
fn check_against_qdq_reference(q: &Graph, x: &Tensor, got: &Tensor) {
    let mut want = std::collections::HashMap::new();
    let reference = Executor::new(q, ONE)
        .unwrap()
        .run_observed(std::slice::from_ref(x), &mut |_, n, t| {
            if t.dtype() == DType::U8 {
                want.insert(n.to_string(), t.clone());
            }
        })
        .unwrap();
    let model = Model::from_graph(q, &RuntimeOptions::default()).unwrap();
    let mut compared = 0;
    model
        .run_observed(std::slice::from_ref(x), &mut |n, t| {
            if let (Some(w), TensorData::U8(got)) = (want.get(n), t.data()) {
                let TensorData::U8(w) = w.data() else { return };
                for (a, b) in w.iter().zip(got) {
                    assert!((*a as i32 - *b as i32).abs() <= 1, "{n}: {a} vs {b}");
                }
                compared += w.len();
            }
        })
        .unwrap();
    let l = x.shape()[2];
    assert!(
        compared >= x.shape()[0] * 8 * l,
        "{compared} u8 values compared"
    );
    let db = sqnr_db(reference[0].as_f32().unwrap(), got.as_f32().unwrap());
    assert!(db > 30.0, "L = {l}: int8 vs QDQ reference SQNR {db:.1} dB");
}

#[test]
fn quantized_conv1d_stack_runs_on_the_int8_kernels() {
    let q1 = quantized(false);
    let q2 = quantized(true);
    for (_, n) in q1.nodes() {
        if let Op::Conv(_) = &n.op {
            let w = q1.producer(n.inputs[1]).unwrap();
            assert!(
                matches!(&w.op, Op::DequantizeLinear(s) if s.dtype == DType::I8 && s.axis == Some(0)),
                "{}: per-channel s8 weight",
                n.name
            );
            assert_eq!(q1.value(n.inputs[1]).ty.shape.rank(), 3);
        }
    }
    // One model (symbolic L) run at several lengths, retargeting its convs per shape.
    let xs: Vec<Tensor> = [L, 1, 16, 64]
        .iter()
        .map(|&l| batch(5, 99 + l as u64, false, l))
        .collect();
    let base = run_int8(&q1, &xs, q8_kernels::Tier::Scalar, 1);
    let ol = base[0].shape()[2];
    assert_eq!(base[0].shape(), &[5, 4, ol]);
    // The same model as 2-D convs over H = 1 (L known): the same codes, the same bits.
    let flat = run_int8(
        &q2,
        &[batch(5, 99 + L as u64, true, L)],
        q8_kernels::Tier::Scalar,
        1,
    );
    assert_eq!(flat[0].shape(), &[5, 4, 1, ol]);
    assert_eq!(
        base[0].as_f32().unwrap(),
        flat[0].as_f32().unwrap(),
        "1-D vs 2-D over H = 1"
    );
    for tier in available_tiers("conv1d") {
        for threads in [1, 2] {
            let got = run_int8(&q1, &xs, tier, threads);
            assert_eq!(got, base, "{tier}, {threads} threads");
        }
    }
    for (x, got) in xs.iter().zip(&base) {
        check_against_qdq_reference(&q1, x, got);
    }
}

/// Exporting writes a 3-D Conv (1-D attributes) that imports back to the same graph
/// behaviour, for the fp32 model and its QDQ form.
#[test]
fn conv1d_export_round_trips() {
    let fp32 = onnx::load_bytes(&stack(false)).unwrap();
    let q = quantized(false);
    let x = batch(2, 5, false, 20);
    for g in [&fp32, &q] {
        let m = onnx::to_model(g).unwrap();
        let conv = m
            .graph
            .as_ref()
            .unwrap()
            .node
            .iter()
            .find(|n| n.name == "conv_b")
            .unwrap();
        let attr = |k: &str| {
            conv.attribute
                .iter()
                .find(|a| a.name == k)
                .unwrap()
                .ints
                .clone()
        };
        assert_eq!(attr("kernel_shape"), [5]);
        assert_eq!(attr("strides"), [2]);
        assert_eq!(attr("pads"), [2, 2]);
        let back = onnx::load_bytes(&onnx::encode_model(&m)).unwrap();
        let run = |g: &Graph| {
            Executor::new(g, ONE)
                .unwrap()
                .run(std::slice::from_ref(&x))
                .unwrap()
        };
        assert_eq!(run(&back), run(g));
    }
}

/// Attributes that do not fit a 1-D conv are errors naming the node and the op.
#[test]
fn bad_conv1d_attributes_name_the_node() {
    // (attributes, input shape, weight shape, a word the message must contain)
    type Bad = (
        Vec<AttributeProto>,
        &'static [i64],
        &'static [i64],
        &'static str,
    );
    let ks = |k: &[i64]| vec![ints_attr("kernel_shape", k)];
    let cases: Vec<Bad> = vec![
        (ks(&[1, 3]), &[1, 2, 9], &[2, 2, 3], "kernel_shape"),
        (ks(&[4]), &[1, 2, 9], &[2, 2, 3], "kernel_shape"),
        (
            vec![ints_attr("strides", &[1, 1])],
            &[1, 2, 9],
            &[2, 2, 3],
            "strides",
        ),
        (
            vec![ints_attr("pads", &[1, 1, 1, 1])],
            &[1, 2, 9],
            &[2, 2, 3],
            "pads",
        ),
        (
            vec![ints_attr("dilations", &[0])],
            &[1, 2, 9],
            &[2, 2, 3],
            "dilations",
        ),
        (
            vec![int_attr("group", 2)],
            &[1, 2, 9],
            &[2, 2, 3],
            "channels",
        ),
        (vec![], &[1, 2, 1, 9], &[2, 2, 3], "rank"),
        (vec![], &[1, 2, 9], &[2, 2, 3, 1], "rank"),
        (vec![], &[1, 3, 9], &[2, 2, 3], "channels"),
        (
            vec![ints_attr("pads", &[9, 0])],
            &[1, 2, 9],
            &[2, 2, 20],
            "does not fit",
        ),
    ];
    for (attrs, x, w, what) in cases {
        let len = w.iter().product::<i64>() as usize;
        let x_dims: Vec<Result<i64, &str>> = x.iter().map(|&d| Ok(d)).collect();
        let m = model(
            17,
            vec![node("Conv", "bad_conv", &["x", "w"], &["y"], attrs.clone())],
            vec![f32_tensor("w", w, &values(len, 3))],
            value("x", &x_dims),
            "y",
        );
        let e = onnx::load_bytes(&m).map(|_| ()).unwrap_err().to_string();
        assert!(
            e.contains("bad_conv") && e.contains("Conv") && e.contains(what),
            "{attrs:?} {x:?} {w:?}: {e}"
        );
    }
}

/// A quantized 1-D conv with `auto_pad = SAME_UPPER` and a run-time length (its pads depend
/// on the length) stays in f32, says why, and computes what the QDQ reference computes.
#[test]
fn same_padded_conv1d_with_a_run_time_length_stays_f32() {
    let c = Case {
        n: 2,
        groups: 1,
        cg: 3,
        mg: 4,
        l: 10,
        k: 4,
        stride: 2,
        dilation: 1,
        pads: [0, 0],
        same: true,
        bias: true,
        seed: 8,
    };
    let g = onnx::load_bytes(&c.model()).unwrap();
    let mut p = prepare(&g, &QuantConfig::x86_default(), ONE).unwrap();
    let x = |l: usize, seed: u64| Tensor::from_f32(vec![2, 3, l], values(6 * l, seed)).unwrap();
    p.calibrate((0..2).map(|s| vec![x(10, s)]), |_| {}).unwrap();
    let q = p.convert().unwrap().graph;
    let model = Model::from_graph(&q, &RuntimeOptions::default()).unwrap();
    let r = model.report();
    let e = r.nodes.iter().find(|e| e.node == "conv").unwrap();
    assert!(
        matches!(&e.lowering, NodeLowering::Fallback { reason } if reason.contains("auto_pad SAME")),
        "{e:?}"
    );
    let reference = Executor::new(&q, ONE).unwrap();
    for l in [7, 10, 31] {
        let x = x(l, 3);
        let want = reference.run(std::slice::from_ref(&x)).unwrap();
        assert_eq!(want[0].shape(), &[2, 4, l.div_ceil(2)]);
        assert_eq!(
            model.run(std::slice::from_ref(&x)).unwrap(),
            want,
            "L = {l}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random Conv attributes on a 1-D conv (any lengths, zero and huge values, bad groups,
    /// auto_pad strings) load and run or fail with an error naming the node; never panic.
    #[test]
    fn mutated_conv1d_nodes_never_panic(
        attrs in prop::collection::vec(
            (
                prop::sample::select(vec!["kernel_shape", "strides", "dilations", "pads"]),
                prop::collection::vec(prop_oneof![0i64..5, Just(-1), Just(i64::MAX), Just(1 << 30)], 0..5),
            ),
            0..4,
        ),
        group in prop_oneof![Just(1i64), Just(2), Just(0), Just(-3), Just(i64::MAX)],
        auto in prop::sample::select(vec!["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID", "same"]),
        w_rank in 2usize..6,
    ) {
        let w_dims: Vec<i64> = [4, 2, 3, 1, 1][..w_rank].to_vec();
        let len = w_dims.iter().product::<i64>() as usize;
        let mut list: Vec<_> = attrs.iter().map(|(k, v)| ints_attr(k, v)).collect();
        list.push(int_attr("group", group));
        list.push(string_attr("auto_pad", auto));
        let m = model(
            17,
            vec![node("Conv", "mutant", &["x", "w"], &["y"], list)],
            vec![f32_tensor("w", &w_dims, &values(len, 1))],
            value("x", &[Ok(1), Ok(2), Err("L")]),
            "y",
        );
        let loaded = onnx::load_bytes(&m).and_then(|g| {
            let x = Tensor::from_f32(vec![1, 2, 9], values(18, 2)).unwrap();
            Executor::new(&g, ONE)?.run(&[x])
        });
        if let Err(e) = loaded {
            let e = e.to_string();
            prop_assert!(e.contains("mutant") && e.contains("Conv"), "{}", e);
        }
    }
}
