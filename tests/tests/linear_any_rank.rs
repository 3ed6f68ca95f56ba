//! Int8 linear layers on inputs of rank 2 to 4 (`[.., K] x W[K, N]`, MatMul with a constant
//! weight) with every fused epilogue — bias add, ReLU, LeakyReLU, Tanh, GELU (erf and tanh),
//! residual sum (+ ReLU) — and u8 or f32 output, lowered onto the packed GEMM. The runtime's
//! output must equal, bit for bit, the kernels' scalar reference GEMM (`gemm_ref`) on the
//! same quantized codes, on every tier and at 1 and 2 threads.

mod ops_support;

use ops_support::Rng;
use proptest::prelude::*;
use q8_frontend::ir::{DType, Dim, Graph, Op, QuantSpec, Shape, Tensor, TensorData, ValueId};
use q8_frontend::ops::{Unary, UnaryKind, def};
use q8_frontend::runtime::{Model, RuntimeOptions};
use q8_kernels::reference::gemm::{RefOutput, gemm_ref};
use q8_kernels::{Activation, QParams, quant};
use q8_tests::available_tiers;

/// The fused post-op under test.
#[derive(Clone, Copy, Debug)]
enum Post {
    Act(Activation),
    Residual { relu: bool },
}

/// One drawn linear layer.
#[derive(Clone, Debug)]
struct Case {
    lead: Vec<usize>,
    k: usize,
    n: usize,
    bias: bool,
    post: Post,
    u8_out: bool,
    seed: u64,
}

const X_QP: QParams = QParams {
    scale: 0.02,
    zero_point: 120,
};
const R_QP: QParams = QParams {
    scale: 0.03,
    zero_point: 100,
};
const OUT_QP: QParams = QParams {
    scale: 0.01,
    zero_point: 128,
};

/// The tensors of one case: input, residual, s8 weight `[K, N]`, scales, bias.
struct Data {
    x: Vec<f32>,
    r: Vec<f32>,
    w: Vec<i8>,
    scales: Vec<f32>,
    bias: Vec<f32>,
}

impl Case {
    fn rows(&self) -> usize {
        self.lead.iter().product()
    }

    fn data(&self) -> Data {
        let mut rng = Rng::new(self.seed);
        let (m, k, n) = (self.rows(), self.k, self.n);
        let mut f32s = |len: usize, bound: f32| -> Vec<f32> {
            (0..len).map(|_| rng.f32_in(-bound, bound)).collect()
        };
        let (x, r, bias) = (f32s(m * k, 2.5), f32s(m * n, 3.0), f32s(n, 1.0));
        Data {
            x,
            r,
            w: (0..k * n).map(|_| rng.next_u64() as i8).collect(),
            scales: (0..n).map(|j| 0.001 + 0.0003 * j as f32).collect(),
            bias,
        }
    }

    fn qdq(g: &mut Graph, name: &str, x: ValueId, qp: QParams) -> ValueId {
        let spec = QuantSpec::per_tensor(qp.scale, qp.zero_point, DType::U8);
        let q = g
            .add_node(&format!("{name}_q"), Op::QuantizeLinear(spec.clone()), &[x])
            .unwrap()[0];
        g.add_node(&format!("{name}_dq"), Op::DequantizeLinear(spec), &[q])
            .unwrap()[0]
    }

    /// The QDQ graph: `dq(x) -> MatMul(dq(W)) -> [Add(bias)] -> post -> [q -> dq]`.
    fn graph(&self, d: &Data) -> Graph {
        let mut g = Graph::new("linear");
        let mut shape: Vec<Dim> = self.lead.iter().map(|&s| Dim::Known(s)).collect();
        shape.push(Dim::Known(self.k));
        let x = g.add_input("x", DType::F32, Shape(shape.clone())).unwrap();
        let xdq = Self::qdq(&mut g, "x", x, X_QP);
        let wt = Tensor::new(vec![self.k, self.n], TensorData::I8(d.w.clone())).unwrap();
        let wc = g.add_constant("w", wt).unwrap();
        let wspec = QuantSpec {
            scales: d.scales.clone(),
            zero_points: vec![0; self.n],
            axis: Some(1),
            dtype: DType::I8,
        };
        let w = g
            .add_node("w_dq", Op::DequantizeLinear(wspec), &[wc])
            .unwrap()[0];
        let mut y = g.add_node("mm", Op::MatMul, &[xdq, w]).unwrap()[0];
        if self.bias {
            let b = Tensor::new(vec![self.n], TensorData::F32(d.bias.clone())).unwrap();
            let b = g.add_constant("b", b).unwrap();
            y = g.add_node("bias", Op::Add, &[b, y]).unwrap()[0];
        }
        y = match self.post {
            Post::Act(Activation::None) => y,
            Post::Act(a) => g.add_node("act", activation_op(a), &[y]).unwrap()[0],
            Post::Residual { relu } => {
                *shape.last_mut().unwrap() = Dim::Known(self.n);
                let r = g.add_input("r", DType::F32, Shape(shape)).unwrap();
                let rdq = Self::qdq(&mut g, "r", r, R_QP);
                let s = g.add_node("sum", Op::Add, &[y, rdq]).unwrap()[0];
                if relu {
                    g.add_node("relu", Op::Relu, &[s]).unwrap()[0]
                } else {
                    s
                }
            }
        };
        if self.u8_out {
            y = Self::qdq(&mut g, "y", y, OUT_QP);
        }
        g.set_outputs(&[y]);
        g
    }

    fn inputs(&self, d: &Data) -> Vec<Tensor> {
        let mut shape = self.lead.clone();
        shape.push(self.k);
        let mut v = vec![Tensor::new(shape.clone(), TensorData::F32(d.x.clone())).unwrap()];
        if matches!(self.post, Post::Residual { .. }) {
            *shape.last_mut().unwrap() = self.n;
            v.push(Tensor::new(shape, TensorData::F32(d.r.clone())).unwrap());
        }
        v
    }

    /// The scalar reference: quantize with the kernels' formula, `gemm_ref`, dequantize.
    fn expected(&self, d: &Data) -> Vec<f32> {
        let (m, k, n) = (self.rows(), self.k, self.n);
        let codes = |v: &[f32], qp: QParams| -> Vec<u8> {
            v.iter()
                .map(|&x| quant::quantize(x, qp.inv_scale(), qp.zero_point))
                .collect()
        };
        let a = codes(&d.x, X_QP);
        let r = codes(&d.r, R_QP);
        let w_nk: Vec<i8> = (0..n * k).map(|i| d.w[(i % k) * n + i / k]).collect();
        let (activation, residual) = match self.post {
            Post::Act(a) => (a, None),
            Post::Residual { relu } => (
                if relu {
                    Activation::Relu
                } else {
                    Activation::None
                },
                Some((r.as_slice(), n, R_QP)),
            ),
        };
        let bias = self.bias.then_some(d.bias.as_slice());
        let run = |out: RefOutput<'_>| {
            gemm_ref(
                &a, k, m, X_QP, &w_nk, n, k, &d.scales, bias, activation, residual, out,
            )
            .unwrap()
        };
        if self.u8_out {
            let mut q = vec![0u8; m * n];
            run(RefOutput::U8 {
                data: &mut q,
                ldc: n,
                qparams: OUT_QP,
            });
            q.iter().map(|&c| quant::dequantize(c, OUT_QP)).collect()
        } else {
            let mut y = vec![0f32; m * n];
            run(RefOutput::F32 {
                data: &mut y,
                ldc: n,
            });
            y
        }
    }
}

fn activation_op(a: Activation) -> Op {
    match a {
        Activation::Relu => Op::Relu,
        Activation::Clamp { min, max } => Op::Clip { min, max },
        Activation::LeakyRelu { alpha } => def(Unary(UnaryKind::LeakyRelu { alpha })),
        Activation::Tanh => def(Unary(UnaryKind::Tanh)),
        Activation::Gelu { tanh } => def(Unary(UnaryKind::Gelu { tanh })),
        Activation::None => unreachable!("no node for the identity"),
    }
}

fn post() -> impl Strategy<Value = Post> {
    prop_oneof![
        Just(Post::Act(Activation::None)),
        Just(Post::Act(Activation::Relu)),
        Just(Post::Act(Activation::Clamp {
            min: -1.0,
            max: 6.0
        })),
        (-0.5f32..0.5).prop_map(|alpha| Post::Act(Activation::LeakyRelu { alpha })),
        Just(Post::Act(Activation::Tanh)),
        any::<bool>().prop_map(|tanh| Post::Act(Activation::Gelu { tanh })),
        any::<bool>().prop_map(|relu| Post::Residual { relu }),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(1usize..6, 1..=3),
        prop_oneof![Just(1usize), Just(64), 1usize..80],
        prop_oneof![Just(16usize), Just(33), 1usize..70],
        any::<bool>(),
        post(),
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(|(lead, k, n, bias, post, u8_out, seed)| Case {
            lead,
            k,
            n,
            bias,
            post,
            u8_out,
            seed,
        })
}

fn run(
    case: &Case,
    g: &Graph,
    inputs: &[Tensor],
    tier: q8_kernels::Tier,
    threads: usize,
) -> Vec<f32> {
    let options = RuntimeOptions {
        tier: Some(tier),
        threads,
    };
    let model = Model::from_graph(g, &options).unwrap();
    let r = model.report();
    assert!(
        r.fallback_nodes().is_empty(),
        "{case:?}: nodes left in f32: {:?}",
        r.fallback_nodes()
    );
    let out = model.run(inputs).unwrap();
    let mut shape = case.lead.clone();
    shape.push(case.n);
    assert_eq!(out[0].shape(), shape.as_slice());
    out[0].as_f32().unwrap().to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn linear_of_any_rank_matches_the_reference_gemm_on_every_tier(c in case()) {
        let d = c.data();
        let g = c.graph(&d);
        let inputs = c.inputs(&d);
        let want = c.expected(&d);
        for tier in available_tiers("linear_any_rank") {
            for threads in [1, 2] {
                let got = run(&c, &g, &inputs, tier, threads);
                let same = got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits());
                prop_assert!(same, "tier {tier}, {threads} threads, {c:?}");
            }
        }
    }
}

/// The lowering report names every fused part of a rank-3 MatMul + bias + GELU.
#[test]
fn report_names_the_fused_epilogue() {
    let c = Case {
        lead: vec![2, 3],
        k: 8,
        n: 5,
        bias: true,
        post: Post::Act(Activation::Gelu { tanh: false }),
        u8_out: true,
        seed: 7,
    };
    let g = c.graph(&c.data());
    let model = Model::from_graph(&g, &RuntimeOptions::default()).unwrap();
    let json = model.report().to_json();
    assert!(
        json.contains(
            r#""kernel":"int8 linear (u8 out)","detail":"8->5: bias add, gelu (erf), u8 out""#
        ),
        "{json}"
    );
}
