//! The fp32 attention chain `MatMul -> Div | Mul (scalar) -> [Add (mask)] -> Softmax (last
//! axis) -> MatMul`, as exported transformers write it, runs in the int8 runtime as one fused
//! step: over random shapes (batch x heads, query / key lengths with tails, head sizes),
//! masks of every broadcast form or none, scale by Div or Mul (either operand order), the
//! runtime's output is bit-identical to the fp32 executor's five nodes, on 1 and 2 threads,
//! and the report names all five nodes as one attention step. Chains that differ (softmax
//! on another axis, a non-scalar scale, a second reader of the scores) stay unfused and
//! still give the executor's bits.

mod onnx_support;

use onnx_support::{f32_tensor, int_attr, model_proto, node, value};
use proptest::prelude::*;
use q8_frontend::exec::{ExecOptions, Executor};
use q8_frontend::ir::{Graph, Tensor};
use q8_frontend::lower::NodeLowering;
use q8_frontend::onnx::{self, proto::NodeProto};
use q8_frontend::runtime::{Model, RuntimeOptions};

/// How the scores are scaled and masked in one test chain.
#[derive(Clone, Copy, Debug)]
struct Form {
    /// `Mul` by `1/sqrt(d)` instead of `Div` by `sqrt(d)`.
    mul: bool,
    /// The scale constant is the first operand (`Mul(c, s)` / `Add(mask, s)`).
    swapped: bool,
    /// 0: no mask, 1: `[B, 1, 1, T]`, 2: `[B, 1, S, T]`, 3: `[T]`.
    mask: u8,
}

/// Shapes `[b, h, s, d]` for q and `t` keys; v has `e` features.
#[derive(Clone, Copy, Debug)]
struct Dims {
    b: usize,
    h: usize,
    s: usize,
    t: usize,
    d: usize,
    e: usize,
}

impl Dims {
    fn mask_shape(&self, form: Form) -> Option<Vec<usize>> {
        match form.mask {
            0 => None,
            1 => Some(vec![self.b, 1, 1, self.t]),
            2 => Some(vec![self.b, 1, self.s, self.t]),
            _ => Some(vec![self.t]),
        }
    }
}

fn dims_of(shape: &[usize]) -> Vec<Result<i64, &'static str>> {
    shape.iter().map(|&d| Ok(d as i64)).collect()
}

/// The chain as ONNX nodes: `scores = q x k_t`, scaled, masked, softmax on `axis`, `x v`.
fn chain_nodes(form: Form, axis: i64, masked: bool) -> Vec<NodeProto> {
    let (op, c) = if form.mul { ("Mul", "c") } else { ("Div", "c") };
    let scale_in: [&str; 2] = if form.swapped && form.mul {
        [c, "scores"]
    } else {
        ["scores", c]
    };
    let mut nodes = vec![
        node("MatMul", "qk", &["q", "k_t"], &["scores"], vec![]),
        node(op, "scale", &scale_in, &["scaled"], vec![]),
    ];
    let soft_in = if masked {
        let add_in: [&str; 2] = if form.swapped {
            ["mask", "scaled"]
        } else {
            ["scaled", "mask"]
        };
        nodes.push(node("Add", "mask_add", &add_in, &["masked"], vec![]));
        "masked"
    } else {
        "scaled"
    };
    nodes.push(node(
        "Softmax",
        "softmax",
        &[soft_in],
        &["probs"],
        vec![int_attr("axis", axis)],
    ));
    nodes.push(node("MatMul", "pv", &["probs", "v"], &["y"], vec![]));
    nodes
}

/// The chain's graph; `scale` is the constant's shape (`[]` is a scalar).
fn chain_graph(
    dims: Dims,
    form: Form,
    axis: i64,
    scale: &[i64],
    extra: Option<NodeProto>,
) -> Graph {
    let Dims { b, h, s, t, d, e } = dims;
    let mask = dims.mask_shape(form);
    let mut inputs = vec![
        value("q", &dims_of(&[b, h, s, d])),
        value("k_t", &dims_of(&[b, h, d, t])),
        value("v", &dims_of(&[b, h, t, e])),
    ];
    if let Some(m) = &mask {
        inputs.push(value("mask", &dims_of(m)));
    }
    let n: i64 = scale.iter().product();
    let c = if form.mul {
        1.0 / (d as f32).sqrt()
    } else {
        (d as f32).sqrt()
    };
    let mut nodes = chain_nodes(form, axis, mask.is_some());
    let mut outputs = vec!["y"];
    if let Some(x) = extra {
        nodes.push(x);
        outputs.push("z");
    }
    let m = model_proto(
        13,
        nodes,
        vec![f32_tensor("c", scale, &vec![c; n as usize])],
        inputs,
        &outputs,
    );
    onnx::import(&m).unwrap()
}

/// Deterministic values in about [-3, 3] with `-1e4`-style mask entries where `masky`.
fn fill(shape: &[usize], seed: u64, masky: bool) -> Tensor {
    let n: usize = shape.iter().product();
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let data = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let u = (x >> 40) as f32 / (1u64 << 24) as f32;
            if masky {
                if u < 0.3 { -10000.0 } else { 0.0 }
            } else {
                u * 6.0 - 3.0
            }
        })
        .collect();
    Tensor::from_f32(shape.to_vec(), data).unwrap()
}

fn chain_inputs(dims: Dims, form: Form, seed: u64) -> Vec<Tensor> {
    let Dims { b, h, s, t, d, e } = dims;
    let mut inputs = vec![
        fill(&[b, h, s, d], seed, false),
        fill(&[b, h, d, t], seed + 1, false),
        fill(&[b, h, t, e], seed + 2, false),
    ];
    if let Some(m) = dims.mask_shape(form) {
        inputs.push(fill(&m, seed + 3, true));
    }
    inputs
}

/// The report's entries for the chain's five (or four) nodes.
fn chain_lowering(model: &Model) -> Vec<(String, NodeLowering)> {
    model
        .report()
        .nodes
        .iter()
        .filter(|e| e.node != "extra")
        .map(|e| (e.node.clone(), e.lowering.clone()))
        .collect()
}

fn is_fused(l: &NodeLowering) -> bool {
    matches!(l, NodeLowering::Fallback { reason } if reason.starts_with("f32 attention"))
}

/// Runs `g` in the executor and the runtime on 1 and 2 threads; all outputs must agree
/// bit for bit. Returns the 1-thread model.
fn same_bits(g: &Graph, inputs: &[Tensor]) -> Result<Model, TestCaseError> {
    let want = Executor::new(g, ExecOptions { threads: 1 })
        .unwrap()
        .run(inputs)
        .unwrap();
    let mut first = None;
    for threads in [1, 2] {
        let rt = RuntimeOptions {
            tier: None,
            threads,
        };
        let model = Model::from_graph(g, &rt).unwrap();
        let got = model.run(inputs).unwrap();
        prop_assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            prop_assert_eq!(g.shape(), w.shape());
            let (g, w) = (g.as_f32().unwrap(), w.as_f32().unwrap());
            let same = g.iter().zip(w).all(|(a, b)| a.to_bits() == b.to_bits());
            prop_assert!(
                same,
                "{} threads: runtime differs from the executor",
                threads
            );
        }
        first.get_or_insert(model);
    }
    Ok(first.unwrap())
}

fn dims() -> impl Strategy<Value = Dims> {
    (
        1usize..3,
        1usize..4,
        prop::sample::select(vec![1usize, 2, 7, 15, 16, 17, 33]),
        prop::sample::select(vec![1usize, 3, 16, 17, 40]),
        prop::sample::select(vec![1usize, 8, 16, 19]),
        prop::sample::select(vec![1usize, 8, 17]),
    )
        .prop_map(|(b, h, s, t, d, e)| Dims { b, h, s, t, d, e })
}

fn form() -> impl Strategy<Value = Form> {
    (any::<bool>(), any::<bool>(), 0u8..4).prop_map(|(mul, swapped, mask)| Form {
        mul,
        swapped,
        mask,
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn fused_attention_gives_the_chains_bits(dims in dims(), form in form(), seed in 0u64..1000) {
        let g = chain_graph(dims, form, -1, &[], None);
        let model = same_bits(&g, &chain_inputs(dims, form, seed))?;
        let report = chain_lowering(&model);
        let nodes = 4 + usize::from(form.mask != 0);
        prop_assert_eq!(report.len(), nodes);
        for (name, l) in &report {
            prop_assert!(is_fused(l), "{} not fused: {:?}", name, l);
        }
    }

    #[test]
    fn other_chains_stay_unfused_and_exact(dims in dims(), form in form(), seed in 0u64..1000, which in 0u8..3) {
        // A one-element scale is a scalar.
        prop_assume!(which != 1 || dims.t > 1);
        let (axis, scale, extra) = match which {
            // Softmax over the query axis is not attention.
            0 => (2, vec![], None),
            // A per-key scale vector is not a scalar.
            1 => (-1, vec![dims.t as i64], None),
            // The scores are read twice: they must stay a tensor.
            _ => (-1, vec![], Some(node("Neg", "extra", &["scores"], &["z"], vec![]))),
        };
        let g = chain_graph(dims, form, axis, &scale, extra);
        let model = same_bits(&g, &chain_inputs(dims, form, seed))?;
        for (name, l) in chain_lowering(&model) {
            prop_assert!(!is_fused(&l), "{} fused: {:?}", name, l);
        }
    }
}

#[test]
fn fused_detail_lists_the_chain() {
    let dims = Dims {
        b: 1,
        h: 2,
        s: 5,
        t: 5,
        d: 4,
        e: 4,
    };
    let form = Form {
        mul: false,
        swapped: false,
        mask: 1,
    };
    let g = chain_graph(dims, form, -1, &[], None);
    let model = Model::from_graph(&g, &RuntimeOptions::default()).unwrap();
    let NodeLowering::Fallback { reason } = &model.report().nodes[0].lowering else {
        panic!("{:?}", model.report().nodes[0]);
    };
    assert_eq!(
        reason,
        "f32 attention, one step per head: MatMul -> Div -> Add -> Softmax -> MatMul"
    );
}
