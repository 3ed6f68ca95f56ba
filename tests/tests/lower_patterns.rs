//! Every lowering pattern on one synthetic QDQ graph: conv + clip (relu6) with u8 output,
//! a dequantize shared by three consumers, pointwise conv + relu, u8 average pool, u8
//! concat with requantization, u8 add + relu, an f32 fallback (Sigmoid), an f32-output conv,
//! f32 global mean, flatten, MatMul + relu as int8 linear; conv biases read directly and
//! through `Identity`. Lowered execution is compared
//! with the QDQ reference execution and across tiers.

use std::sync::Arc;

use q8_frontend::exec::{ExecOptions, Executor};
use q8_frontend::ir::{
    Conv, DType, Dim, Graph, Op, Pool, QuantSpec, Shape, Tensor, TensorData, ValueId, Window2d,
};
use q8_frontend::lower::NodeLowering;
use q8_frontend::runtime::{Model, RuntimeOptions};
use q8_tests::available_tiers;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn i8s(&mut self, n: usize) -> Vec<i8> {
        (0..n).map(|_| (self.next() % 255) as i8).collect()
    }
    fn f32s(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|_| ((self.next() % 2001) as f32 / 1000.0 - 1.0) * scale)
            .collect()
    }
}

struct Builder {
    g: Graph,
    rng: Rng,
    /// Convs alternate between a bias constant read directly and one routed through an
    /// `Identity` node, as exporters do for shared initializers (both must lower).
    convs: usize,
}

impl Builder {
    fn qdq(&mut self, name: &str, x: ValueId, scale: f32, zp: i32) -> ValueId {
        let spec = QuantSpec::per_tensor(scale, zp, DType::U8);
        let q = self
            .g
            .add_node(&format!("{name}_q"), Op::QuantizeLinear(spec.clone()), &[x])
            .unwrap()[0];
        self.g
            .add_node(&format!("{name}_dq"), Op::DequantizeLinear(spec), &[q])
            .unwrap()[0]
    }

    /// Per-channel s8 weights (axis `axis`) behind a DequantizeLinear.
    fn weight(&mut self, name: &str, shape: Vec<usize>, axis: Option<usize>) -> ValueId {
        let n: usize = shape.iter().product();
        let channels = axis.map_or(1, |a| shape[a]);
        let w = Tensor::new(shape, TensorData::I8(self.rng.i8s(n))).unwrap();
        let c = self.g.add_constant(&format!("{name}_w"), w).unwrap();
        let spec = QuantSpec {
            scales: (0..channels).map(|i| 0.002 + 0.0005 * i as f32).collect(),
            zero_points: vec![0; channels],
            axis,
            dtype: DType::I8,
        };
        self.g
            .add_node(&format!("{name}_wdq"), Op::DequantizeLinear(spec), &[c])
            .unwrap()[0]
    }

    fn conv(
        &mut self,
        name: &str,
        x: ValueId,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
    ) -> ValueId {
        let w = self.weight(name, vec![cout, cin, k, k], Some(0));
        let b = Tensor::from_f32(vec![cout], self.rng.f32s(cout, 0.1)).unwrap();
        let mut b = self.g.add_constant(&format!("{name}_b"), b).unwrap();
        if self.convs % 2 == 1 {
            b = self
                .g
                .add_node(&format!("{name}_b_identity"), Op::Identity, &[b])
                .unwrap()[0];
        }
        self.convs += 1;
        let op = Op::Conv(Conv {
            window: Window2d::new([k, k], [stride, stride], k / 2),
            groups: 1,
        });
        self.g.add_node(name, op, &[x, w, b]).unwrap()[0]
    }
}

fn graph() -> Graph {
    let mut b = Builder {
        g: Graph::new("patterns"),
        rng: Rng(0x5eed),
        convs: 0,
    };
    let shape = Shape(vec![
        Dim::sym("n"),
        Dim::Known(3),
        Dim::Known(8),
        Dim::Known(8),
    ]);
    let x = b.g.add_input("x", DType::F32, shape).unwrap();
    let x = b.qdq("x", x, 0.02, 128);
    let a = b.conv("conv_a", x, 3, 8, 3, 1);
    let a =
        b.g.add_node("relu6", Op::Clip { min: 0.0, max: 6.0 }, &[a])
            .unwrap()[0];
    let a = b.qdq("a", a, 0.03, 0); // read by conv_b, concat and conv_d
    let bb = b.conv("conv_b", a, 8, 8, 1, 1);
    let bb = b.g.add_node("relu_b", Op::Relu, &[bb]).unwrap()[0];
    let bb = b.qdq("b", bb, 0.05, 0); // read by the pool and the concat
    let pool = Op::AveragePool {
        pool: Pool {
            window: Window2d::new([3, 3], [2, 2], 1),
            ceil_mode: false,
        },
        count_include_pad: false,
    };
    let p = b.g.add_node("avg", pool, &[bb]).unwrap()[0];
    let p = b.qdq("avg_out", p, 0.05, 0);
    let cat =
        b.g.add_node("cat", Op::Concat { axis: 1 }, &[a, bb])
            .unwrap()[0];
    let cat = b.qdq("cat_out", cat, 0.04, 3);
    let d = b.conv("conv_d", a, 8, 16, 1, 1);
    let d = b.qdq("d", d, 0.06, 120);
    let e = b.g.add_node("add", Op::Add, &[cat, d]).unwrap()[0];
    let e = b.g.add_node("relu_e", Op::Relu, &[e]).unwrap()[0];
    let e = b.qdq("e", e, 0.07, 0);
    let s = b.g.add_node("sigmoid", Op::Sigmoid, &[e]).unwrap()[0];
    let s = b.qdq("s", s, 1.0 / 255.0, 0);
    let f = b.conv("conv_f", s, 16, 4, 3, 2); // f32 output
    let m = b.g.add_node("gap", Op::GlobalAveragePool, &[f]).unwrap()[0];
    let m = b.g.add_node("flat", Op::Flatten { axis: 1 }, &[m]).unwrap()[0];
    let m = b.qdq("flat_out", m, 0.01, 100);
    let w = b.weight("mm", vec![4, 5], None);
    let y = b.g.add_node("mm", Op::MatMul, &[m, w]).unwrap()[0];
    let y = b.g.add_node("relu_y", Op::Relu, &[y]).unwrap()[0];
    let y = b.qdq("y", y, 0.001, 0);
    b.g.set_outputs(&[y, p]);
    b.g.validate().unwrap();
    b.g
}

fn input(n: usize) -> Tensor {
    let mut rng = Rng(99);
    Tensor::from_f32(vec![n, 3, 8, 8], rng.f32s(n * 192, 2.5)).unwrap()
}

#[test]
fn every_pattern_lowers_as_reported() {
    let m = Model::from_graph(&graph(), &RuntimeOptions::default()).unwrap();
    let r = m.report();
    eprintln!("{r}");
    let kernel = |node: &str| {
        r.nodes
            .iter()
            .find(|e| e.node == node)
            .map(|e| match &e.lowering {
                NodeLowering::Lowered { kernel, detail, .. } => format!("{kernel}: {detail}"),
                NodeLowering::Fallback { reason } => format!("f32: {reason}"),
                NodeLowering::Constant => "constant".into(),
            })
            .unwrap()
    };
    assert!(
        kernel("conv_a").starts_with("int8 conv (u8 out)")
            && kernel("conv_a").contains("clamp [0, 6]")
    );
    assert!(kernel("conv_b").contains("relu"));
    assert_eq!(kernel("avg").split(':').next(), Some("u8 average pool"));
    assert!(kernel("cat").starts_with("u8 concat"));
    assert!(kernel("add").starts_with("u8 add: relu"));
    assert!(kernel("sigmoid").starts_with("f32: no int8 kernel for Sigmoid"));
    assert!(kernel("conv_f").starts_with("int8 conv (f32 out)"));
    assert!(kernel("gap").starts_with("f32 mean"));
    assert!(kernel("mm").starts_with("int8 linear (u8 out): 4->5: relu"));
    assert_eq!(r.fallback_nodes(), ["sigmoid"]);
    assert_eq!(r.duplicated_dequantize, 3, "a_dq read 3 times, b_dq twice");
    let json = r.to_json();
    assert!(json.contains("\"node\":\"sigmoid\",\"op\":\"Sigmoid\",\"lowering\":\"f32\""));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["nodes"].as_array().unwrap().len(), r.nodes.len());
    assert_eq!(v["fallback_nodes"], 1);
    let sigmoid = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == "sigmoid");
    assert!(
        sigmoid.unwrap()["reason"]
            .as_str()
            .unwrap()
            .contains("Sigmoid")
    );
}

#[test]
fn lowered_execution_matches_reference_and_is_tier_independent() {
    let g = graph();
    let x = input(5);
    let reference = Executor::new(&g, ExecOptions { threads: 1 }).unwrap();
    let mut want = std::collections::HashMap::new();
    let ref_out = reference
        .run_observed(std::slice::from_ref(&x), &mut |_, n, t| {
            if t.dtype() == DType::U8 {
                want.insert(n.to_string(), t.clone());
            }
        })
        .unwrap();
    let want = Arc::new(want);
    let m = Model::from_graph(
        &g,
        &RuntimeOptions {
            tier: None,
            threads: 2,
        },
    )
    .unwrap();
    let mut worst = 0;
    let mut compared = 0;
    let out = m
        .run_observed(std::slice::from_ref(&x), &mut |n, t| {
            if let (Some(w), TensorData::U8(got)) = (want.get(n), t.data()) {
                let TensorData::U8(w) = w.data() else { return };
                assert_eq!(
                    w.len(),
                    got.len(),
                    "{n}: lowered and reference lengths differ"
                );
                for (a, b) in w.iter().zip(got) {
                    worst = worst.max((*a as i32 - *b as i32).abs());
                }
                compared += 1;
            }
        })
        .unwrap();
    assert!(compared >= 8, "{compared} u8 values compared");
    assert!(worst <= 1, "u8 intermediates differ by {worst} LSB");
    // Output quanta: y (scale 0.001) and the average pool (scale 0.05); 1 LSB allowed.
    for ((r, o), quantum) in ref_out.iter().zip(&out).zip([0.001f32, 0.05]) {
        assert_eq!(r.shape(), o.shape());
        let (r, o) = (r.as_f32().unwrap(), o.as_f32().unwrap());
        let max = r
            .iter()
            .zip(o)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            max <= quantum * 1.01,
            "outputs differ by {max}, more than one quantum {quantum}"
        );
    }
    for tier in available_tiers("lower_patterns") {
        let mt = Model::from_graph(
            &g,
            &RuntimeOptions {
                tier: Some(tier),
                threads: 1,
            },
        )
        .unwrap();
        assert_eq!(
            mt.run(std::slice::from_ref(&x)).unwrap(),
            out,
            "tier {tier}"
        );
    }
}
