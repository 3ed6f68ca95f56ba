//! The registered op families (element-wise unary, broadcasting binary, Softmax, Resize,
//! ConvTranspose) imported from one-node ONNX models and run by the fp32 executor, against
//! straightforward references: broadcast shapes, negative axes, rank 0, int64 edge values
//! (graph inputs cannot have empty dims); mutated nodes give errors naming the node and the op.

mod onnx_support;

use onnx_support::{
    broadcast_offset, f32_tensor, float_attr, i64_tensor, indices, int_attr, ints_attr,
    model_proto, node, run_node as run, string_attr, typed_value,
};
use proptest::prelude::*;
use q8_frontend::exec::{ExecOptions, Executor};
use q8_frontend::ir::Tensor;
use q8_frontend::onnx::{
    self,
    proto::{AttributeProto, TensorProto},
};

fn f32s(t: &Tensor) -> &[f32] {
    t.as_f32().unwrap()
}

fn close(a: f32, b: f64, tol: f64) -> bool {
    (a.is_nan() && b.is_nan()) || (f64::from(a) - b).abs() <= tol * (1.0 + b.abs())
}

fn shape_and_data(max_rank: usize) -> impl Strategy<Value = (Vec<usize>, Vec<f32>)> {
    // Graph inputs cannot have empty dims (q8 rejects 0 in declared shapes).
    prop::collection::vec(1usize..4, 0..=max_rank).prop_flat_map(|shape| {
        let n = shape.iter().product::<usize>();
        (Just(shape), prop::collection::vec(-4.0f32..4.0, n))
    })
}

/// The unary ops, their attributes and an f64 reference.
type UnaryCase = (&'static str, Vec<AttributeProto>, fn(f64) -> f64);

fn unary_cases() -> Vec<UnaryCase> {
    fn elu(x: f64, a: f64) -> f64 {
        if x > 0.0 { x } else { a * (x.exp() - 1.0) }
    }
    vec![
        ("HardSigmoid", vec![float_attr("alpha", 0.25)], |x| {
            (0.25 * x + 0.5).clamp(0.0, 1.0)
        }),
        ("LeakyRelu", vec![], |x| if x >= 0.0 { x } else { 0.01 * x }),
        ("Elu", vec![float_attr("alpha", 0.5)], |x| elu(x, 0.5)),
        ("Selu", vec![], |x| 1.050_701 * elu(x, 1.673_263_2)),
        ("Softplus", vec![], |x| x.exp().ln_1p()),
        ("Tanh", vec![], f64::tanh),
        ("Exp", vec![], f64::exp),
        ("Log", vec![], f64::ln),
        ("Sqrt", vec![], f64::sqrt),
        ("Neg", vec![], |x| -x),
        ("Abs", vec![], f64::abs),
        ("Reciprocal", vec![], |x| 1.0 / x),
        ("Floor", vec![], f64::floor),
        ("Ceil", vec![], f64::ceil),
    ]
}

#[test]
fn erf_and_gelu_match_tabulated_values() {
    let xs = [-3.0f32, -1.5, -0.5, 0.0, 0.5, 1.0, 2.0, 2.5, 3.0];
    // Python's math.erf.
    let erf = [
        -0.999_977_909_5,
        -0.966_105_146_5,
        -0.520_499_877_8,
        0.0,
        0.520_499_877_8,
        0.842_700_792_9,
        0.995_322_265_0,
        0.999_593_047_98,
        0.999_977_909_5,
    ];
    let x = Tensor::from_f32(vec![xs.len()], xs.to_vec()).unwrap();
    let y = run(13, "Erf", vec![], std::slice::from_ref(&x), vec![], 1).unwrap();
    for ((a, b), x) in f32s(&y[0]).iter().zip(erf).zip(xs) {
        assert!(close(*a, b, 1e-6), "erf({x}) = {a}, want {b}");
    }
    // x * Phi(x), Phi the standard normal CDF (Python's math.erf).
    let gelu = [
        -0.004_049_694_094_9,
        -0.100_210_801_903_3,
        -0.154_268_769_363_0,
        0.0,
        0.345_731_230_637_0,
        0.841_344_746_068_5,
        1.954_499_736_103_6,
        2.484_475_836_685_6,
        2.995_950_305_905_1,
    ];
    let y = run(20, "Gelu", vec![], std::slice::from_ref(&x), vec![], 1).unwrap();
    for ((a, want), x) in f32s(&y[0]).iter().zip(gelu).zip(xs) {
        assert!(close(*a, want, 1e-6), "gelu({x}) = {a}, want {want}");
    }
    let approx = vec![string_attr("approximate", "tanh")];
    let y = run(20, "Gelu", approx, std::slice::from_ref(&x), vec![], 1).unwrap();
    for (a, x) in f32s(&y[0]).iter().zip(xs) {
        let x = f64::from(x);
        let want = 0.5
            * x
            * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3))).tanh());
        assert!(close(*a, want, 1e-6), "gelu_tanh({x}) = {a}, want {want}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn unary_ops_match_the_reference((shape, data) in shape_and_data(4)) {
        let x = Tensor::from_f32(shape.clone(), data.clone()).unwrap();
        for (op, attrs, reference) in unary_cases() {
            let y = run(13, op, attrs, std::slice::from_ref(&x), vec![], 1).unwrap().remove(0);
            prop_assert_eq!(y.shape(), &shape[..]);
            for (a, x) in f32s(&y).iter().zip(&data) {
                let want = reference(f64::from(*x));
                prop_assert!(close(*a, want, 1e-5), "{}({}) = {}, want {}", op, x, a, want);
            }
        }
    }

    #[test]
    fn binary_ops_broadcast_like_numpy(
        out in prop::collection::vec(1usize..4, 0..=4),
        mask_a in prop::collection::vec(any::<bool>(), 4),
        mask_b in prop::collection::vec(any::<bool>(), 4),
        drop in 0usize..3,
        seed in any::<u64>(),
    ) {
        // Operand shapes: the output shape with some axes set to 1, b with leading axes dropped.
        let a_shape: Vec<usize> = out.iter().zip(&mask_a).map(|(&d, &m)| if m { 1 } else { d }).collect();
        let b_shape: Vec<usize> =
            out.iter().zip(&mask_b).map(|(&d, &m)| if m { 1 } else { d }).skip(drop.min(out.len())).collect();
        let val = |i: usize, salt: u64| ((((i as u64 + 1) * 2_654_435_761) ^ seed ^ salt) % 17) as f32 - 8.0;
        let expect_shape: Vec<usize> = out.iter().enumerate().map(|(i, &d)| {
            let db = i.checked_sub(out.len() - b_shape.len()).map_or(1, |j| b_shape[j]);
            if a_shape[i] == 1 && db == 1 { 1 } else { d }
        }).collect();
        let an: usize = a_shape.iter().product();
        let bn: usize = b_shape.iter().product();
        for (op, f) in [
            ("Sub", (|a, b| a - b) as fn(f64, f64) -> f64),
            ("Div", |a, b| a / b),
            ("Min", f64::min),
            ("Max", f64::max),
            ("Pow", f64::powf),
        ] {
            // Pow: positive bases, exponents in quarters; Div: no zero divisors.
            let a: Vec<f32> = (0..an).map(|i| if op == "Pow" { val(i, 1) + 9.0 } else { val(i, 1) }).collect();
            let b: Vec<f32> = (0..bn).map(|i| match (op, val(i, 2)) {
                ("Pow", v) => v / 4.0,
                ("Div", 0.0) => 3.0,
                (_, v) => v,
            }).collect();
            let xs = [
                Tensor::from_f32(a_shape.clone(), a.clone()).unwrap(),
                Tensor::from_f32(b_shape.clone(), b.clone()).unwrap(),
            ];
            let y = run(13, op, vec![], &xs, vec![], 1).unwrap().remove(0);
            prop_assert_eq!(y.shape(), &expect_shape[..], "{}", op);
            for (k, idx) in indices(&expect_shape).iter().enumerate() {
                let av = f64::from(a[broadcast_offset(idx, &a_shape)]);
                let bv = f64::from(b[broadcast_offset(idx, &b_shape)]);
                prop_assert!(close(f32s(&y)[k], f(av, bv), 1e-5), "{} at {:?}", op, idx);
            }
            if op == "Pow" {
                continue;
            }
            let ai: Vec<i64> = a.iter().map(|&v| v as i64).collect();
            let bi: Vec<i64> = b.iter().map(|&v| v as i64).collect();
            let xs = [
                Tensor::from_i64(a_shape.clone(), ai.clone()).unwrap(),
                Tensor::from_i64(b_shape.clone(), bi.clone()).unwrap(),
            ];
            let y = run(13, op, vec![], &xs, vec![], 1).unwrap().remove(0);
            let got = y.as_i64().unwrap();
            for (k, idx) in indices(&expect_shape).iter().enumerate() {
                let (p, q) = (ai[broadcast_offset(idx, &a_shape)], bi[broadcast_offset(idx, &b_shape)]);
                let want = match op { "Sub" => p - q, "Div" => p / q, "Min" => p.min(q), _ => p.max(q) };
                prop_assert_eq!(got[k], want, "{} i64 at {:?}", op, idx);
            }
        }
    }

    #[test]
    fn softmax_normalizes_along_the_axis(
        (shape, data) in shape_and_data(4).prop_filter("rank >= 1", |(s, _)| !s.is_empty()),
        axis_seed in any::<usize>(),
        log in any::<bool>(),
        legacy in any::<bool>(),
    ) {
        let rank = shape.len();
        let axis = (axis_seed % (2 * rank)) as i64 - rank as i64; // negative and positive
        let op = if log { "LogSoftmax" } else { "Softmax" };
        let opset = if legacy { 11 } else { 13 };
        let x = Tensor::from_f32(shape.clone(), data.clone()).unwrap();
        let y = run(opset, op, vec![int_attr("axis", axis)], std::slice::from_ref(&x), vec![], 1).unwrap().remove(0);
        let ax = axis.rem_euclid(rank as i64) as usize;
        // Opset 11 normalizes over the flattened axes ax..; opset 13 over ax alone.
        let group = |idx: &[usize]| -> Vec<usize> {
            if legacy { idx[..ax].to_vec() } else { [&idx[..ax], &idx[ax + 1..]].concat() }
        };
        let all = indices(&shape);
        for (k, idx) in all.iter().enumerate() {
            let g = group(idx);
            let members: Vec<f64> = all.iter().enumerate()
                .filter(|(_, j)| group(j) == g).map(|(m, _)| f64::from(data[m])).collect();
            let max = members.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = members.iter().map(|v| (v - max).exp()).sum();
            let v = f64::from(data[k]) - max;
            let want = if log { v - sum.ln() } else { v.exp() / sum };
            prop_assert!(close(f32s(&y)[k], want, 1e-5), "{} at {:?}", op, idx);
        }
    }

    #[test]
    fn resize_matches_per_pixel_interpolation(
        h in 1usize..5, w in 1usize..5, sh in 1usize..4, sw in 1usize..4,
        mode in 0usize..6, seed in any::<u32>(),
    ) {
        let (m, coord, nearest) = [
            ("nearest", "asymmetric", "floor"),
            ("nearest", "half_pixel", "round_prefer_floor"),
            ("nearest", "align_corners", "round_prefer_ceil"),
            ("linear", "half_pixel", ""),
            ("linear", "pytorch_half_pixel", ""),
            ("linear", "align_corners", ""),
        ][mode];
        let data: Vec<f32> = (0..2 * h * w).map(|i| ((i as u32 * 7 + seed) % 13) as f32).collect();
        let x = Tensor::from_f32(vec![1, 2, h, w], data.clone()).unwrap();
        let mut attrs = vec![string_attr("mode", m), string_attr("coordinate_transformation_mode", coord)];
        if !nearest.is_empty() {
            attrs.push(string_attr("nearest_mode", nearest));
        }
        let scales = f32_tensor("scales", &[4], &[1.0, 1.0, sh as f32, sw as f32]);
        let roi = f32_tensor("roi", &[0], &[]);
        let y = run(13, "Resize", attrs, std::slice::from_ref(&x), vec![roi, scales], 1).unwrap().remove(0);
        let (oh, ow) = (h * sh, w * sw);
        prop_assert_eq!(y.shape(), &[1, 2, oh, ow][..]);
        let src = |o: usize, len: usize, out: usize, s: usize| -> f64 {
            let (o, len, out, s) = (o as f64, len as f64, out as f64, s as f64);
            match coord {
                "asymmetric" => o / s,
                "align_corners" if out > 1.0 => o * (len - 1.0) / (out - 1.0),
                "align_corners" => 0.0,
                _ => (o + 0.5) / s - 0.5,
            }
        };
        let round = |v: f64| match nearest {
            "floor" => v.floor(),
            "round_prefer_ceil" if v.fract() == 0.5 => v.ceil(),
            _ if v.fract() == 0.5 => v.floor(),
            _ => v.round(),
        };
        for c in 0..2 {
            for oy in 0..oh {
                for ox in 0..ow {
                    let (fy, fx) = (src(oy, h, oh, sh), src(ox, w, ow, sw));
                    let at = |y: usize, x: usize| f64::from(data[(c * h + y) * w + x]);
                    let want = if m == "nearest" {
                        let cl = |v: f64, n: usize| round(v).clamp(0.0, (n - 1) as f64) as usize;
                        at(cl(fy, h), cl(fx, w))
                    } else {
                        let cl = |v: f64, n: usize| v.clamp(0.0, (n - 1) as f64);
                        let (fy, fx) = (cl(fy, h), cl(fx, w));
                        let (y0, x0) = (fy.floor() as usize, fx.floor() as usize);
                        let (y1, x1) = ((y0 + 1).min(h - 1), (x0 + 1).min(w - 1));
                        let (dy, dx) = (fy - y0 as f64, fx - x0 as f64);
                        at(y0, x0) * (1.0 - dy) * (1.0 - dx) + at(y0, x1) * (1.0 - dy) * dx
                            + at(y1, x0) * dy * (1.0 - dx) + at(y1, x1) * dy * dx
                    };
                    let got = f32s(&y)[(c * oh + oy) * ow + ox];
                    prop_assert!(close(got, want, 1e-5), "{} {} at {},{}: {} vs {}", m, coord, oy, ox, got, want);
                }
            }
        }
    }

    #[test]
    fn conv_transpose_matches_the_gather_definition(
        c in 1usize..4, mg in 1usize..3, groups in 1usize..3,
        h in 1usize..5, w in 1usize..5, k in 1usize..4,
        stride in 1usize..3, dil in 1usize..3, pad in 0usize..2, opad in 0usize..2,
        bias in any::<bool>(),
    ) {
        let opad = opad.min(stride.max(dil) - 1);
        let cin = c * groups;
        let m = mg * groups;
        let full = |len: usize| (len - 1) * stride + opad + dil * (k - 1) + 1;
        prop_assume!(full(h) > 2 * pad && full(w) > 2 * pad);
        let x: Vec<f32> = (0..cin * h * w).map(|i| ((i * 5) % 7) as f32 - 3.0).collect();
        let wt: Vec<f32> = (0..cin * mg * k * k).map(|i| ((i * 3) % 5) as f32 - 2.0).collect();
        let b: Vec<f32> = (0..m).map(|i| i as f32 * 0.5).collect();
        let mut consts = vec![f32_tensor("w", &[cin as i64, mg as i64, k as i64, k as i64], &wt)];
        if bias {
            consts.push(f32_tensor("b", &[m as i64], &b));
        }
        let attrs = vec![
            ints_attr("strides", &[stride as i64; 2]),
            ints_attr("dilations", &[dil as i64; 2]),
            ints_attr("pads", &[pad as i64; 4]),
            ints_attr("output_padding", &[opad as i64; 2]),
            int_attr("group", groups as i64),
        ];
        let xt = Tensor::from_f32(vec![1, cin, h, w], x.clone()).unwrap();
        let y = run(13, "ConvTranspose", attrs, &[xt], consts, 1).unwrap().remove(0);
        let (oh, ow) = (full(h) - 2 * pad, full(w) - 2 * pad);
        prop_assert_eq!(y.shape(), &[1, m, oh, ow][..]);
        // out[oc, oy, ox] = sum over taps with oy + pad = iy * stride + ky * dil.
        let tap = |o: usize, kk: usize, len: usize| -> Option<usize> {
            let v = (o + pad).checked_sub(kk * dil)?;
            (v % stride == 0 && v / stride < len).then_some(v / stride)
        };
        for (oc, bias_oc) in b.iter().enumerate() {
            let (g, ocl) = (oc / mg, oc % mg);
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = if bias { f64::from(*bias_oc) } else { 0.0 };
                    for ic in g * c..(g + 1) * c {
                        for ky in 0..k {
                            for kx in 0..k {
                                if let (Some(iy), Some(ix)) = (tap(oy, ky, h), tap(ox, kx, w)) {
                                    acc += f64::from(x[(ic * h + iy) * w + ix])
                                        * f64::from(wt[((ic * mg + ocl) * k + ky) * k + kx]);
                                }
                            }
                        }
                    }
                    prop_assert!(close(f32s(&y)[(oc * oh + oy) * ow + ox], acc, 1e-5));
                }
            }
        }
    }
}

#[test]
fn integer_edge_values_wrap_and_division_by_zero_is_an_error() {
    let a = Tensor::from_i64(vec![3], vec![i64::MIN, i64::MAX, 7]).unwrap();
    let b = Tensor::from_i64(vec![3], vec![1, -1, -2]).unwrap();
    let y = run(13, "Sub", vec![], &[a.clone(), b.clone()], vec![], 1).unwrap();
    assert_eq!(y[0].as_i64().unwrap(), [i64::MAX, i64::MIN, 9]);
    let y = run(13, "Div", vec![], &[a.clone(), b], vec![], 1).unwrap();
    assert_eq!(y[0].as_i64().unwrap(), [i64::MIN, -i64::MAX, -3]);
    let zero = Tensor::from_i64(vec![1], vec![0]).unwrap();
    let err = run(13, "Div", vec![], &[a, zero], vec![], 1).unwrap_err();
    assert!(
        err.contains("Div node 'n'") && err.contains("division by zero"),
        "{err}"
    );
}

/// A mutated node: op type, attributes, constant operands, output count, and a piece of
/// the expected error message.
type Mutation = (
    &'static str,
    Vec<AttributeProto>,
    Vec<TensorProto>,
    usize,
    &'static str,
);

/// Each mutated node on input `x` fails with an error naming node 'n', its op and `needle`.
fn assert_mutations_named(x: &Tensor, cases: Vec<Mutation>) {
    for (op, attrs, consts, outputs, needle) in cases {
        let opset = match op {
            "Gelu" => 20,
            "LayerNormalization" => 17,
            _ => 13,
        };
        let err = run(opset, op, attrs, std::slice::from_ref(x), consts, outputs).unwrap_err();
        assert!(
            err.contains(&format!("{op} node 'n'")) && err.contains(needle),
            "{op}: {err}"
        );
    }
}

#[test]
fn mutated_nodes_name_the_node_and_op() {
    let x4 = Tensor::from_f32(vec![1, 2, 3, 3], vec![0.5; 18]).unwrap();
    let scales = |v: &[f32]| f32_tensor("scales", &[v.len() as i64], v);
    let roi = || f32_tensor("roi", &[0], &[]);
    let cases: Vec<Mutation> = vec![
        (
            "HardSigmoid",
            vec![float_attr("alpha", f32::NAN)],
            vec![],
            1,
            "alpha",
        ),
        ("Softmax", vec![int_attr("axis", 4)], vec![], 1, "axis 4"),
        ("Softmax", vec![int_attr("axis", -5)], vec![], 1, "axis -5"),
        (
            "Gelu",
            vec![string_attr("approximate", "erf")],
            vec![],
            1,
            "approximate",
        ),
        (
            "Resize",
            vec![string_attr("mode", "cubic")],
            vec![roi(), scales(&[1.0, 1.0, 2.0, 2.0])],
            1,
            "mode 'cubic'",
        ),
        (
            "Resize",
            vec![],
            vec![roi(), scales(&[2.0, 2.0])],
            1,
            "2 scales",
        ),
        (
            "Resize",
            vec![],
            vec![roi(), scales(&[1.0, 1.0, -2.0, 2.0])],
            1,
            "scale -2",
        ),
        (
            "Resize",
            vec![],
            vec![roi(), scales(&[1.0, 1.0, 1e9, 1e9])],
            1,
            "out of range",
        ),
        (
            "Resize",
            vec![string_attr(
                "coordinate_transformation_mode",
                "tf_crop_and_resize",
            )],
            vec![roi(), scales(&[1.0, 1.0, 2.0, 2.0])],
            1,
            "coordinate_transformation_mode",
        ),
        (
            "ConvTranspose",
            vec![],
            vec![f32_tensor("w", &[2, 1, 3], &[0.0; 6])],
            1,
            "2-D",
        ),
        (
            "ConvTranspose",
            vec![],
            vec![f32_tensor("w", &[3, 1, 1, 1], &[0.0; 3])],
            1,
            "channels",
        ),
        (
            "ConvTranspose",
            vec![ints_attr("pads", &[9, 9, 9, 9])],
            vec![f32_tensor("w", &[2, 1, 1, 1], &[0.0; 2])],
            1,
            "pads",
        ),
        (
            "ConvTranspose",
            vec![ints_attr("output_padding", &[3, 3])],
            vec![f32_tensor("w", &[2, 1, 1, 1], &[0.0; 2])],
            1,
            "output_padding",
        ),
        (
            "ConvTranspose",
            vec![ints_attr("strides", &[1 << 40, 1])],
            vec![f32_tensor("w", &[2, 1, 1, 1], &[0.0; 2])],
            1,
            "strides",
        ),
        (
            "Pow",
            vec![],
            vec![i64_tensor("e", &[1], &[2])],
            1,
            "exponent",
        ),
        (
            "Sub",
            vec![],
            vec![f32_tensor("b", &[4], &[0.0; 4])],
            1,
            "broadcast",
        ),
    ];
    assert_mutations_named(&x4, cases);
}

/// Row-major offset of `idx` in `shape`.
fn offset(idx: &[usize], shape: &[usize]) -> usize {
    shape.iter().zip(idx).fold(0, |acc, (&d, &i)| acc * d + i)
}

fn i64_input(name: &str, v: &[i64]) -> TensorProto {
    i64_tensor(name, &[v.len() as i64], v)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn transpose_slice_and_split_move_the_right_elements(
        (shape, data) in shape_and_data(4).prop_filter("rank >= 1", |(s, _)| !s.is_empty()),
        seed in any::<u64>(),
    ) {
        let rank = shape.len();
        let x = Tensor::from_f32(shape.clone(), data.clone()).unwrap();
        // Transpose by a rotation of the axes.
        let rot = (seed as usize) % rank;
        let perm: Vec<usize> = (0..rank).map(|i| (i + rot) % rank).collect();
        let perm_i64: Vec<i64> = perm.iter().map(|&p| p as i64).collect();
        let y = run(13, "Transpose", vec![ints_attr("perm", &perm_i64)], std::slice::from_ref(&x), vec![], 1).unwrap().remove(0);
        let out: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
        prop_assert_eq!(y.shape(), &out[..]);
        for (k, idx) in indices(&out).iter().enumerate() {
            let mut src = vec![0; rank];
            for (i, &p) in perm.iter().enumerate() {
                src[p] = idx[i];
            }
            prop_assert_eq!(f32s(&y)[k], data[offset(&src, &shape)]);
        }
        // Slice the last axis with a negative start and a step of -1 or 2.
        let axis = rank - 1;
        let len = shape[axis] as i64;
        let (start, end, step) = if seed % 2 == 0 { (-1, -len - 1, -1) } else { (0, i64::MAX, 2) };
        let consts = vec![i64_input("s", &[start]), i64_input("e", &[end]), i64_input("a", &[-1]), i64_input("p", &[step])];
        let y = run(13, "Slice", vec![], std::slice::from_ref(&x), consts, 1).unwrap().remove(0);
        let picked: Vec<usize> = if step < 0 { (0..len as usize).rev().collect() } else { (0..len as usize).step_by(2).collect() };
        let mut out = shape.clone();
        out[axis] = picked.len();
        prop_assert_eq!(y.shape(), &out[..]);
        for (k, idx) in indices(&out).iter().enumerate() {
            let mut src = idx.clone();
            src[axis] = picked[idx[axis]];
            prop_assert_eq!(f32s(&y)[k], data[offset(&src, &shape)]);
        }
        // Split axis 0 into equal parts (the last one smaller) by output count.
        let parts = (seed as usize % 3) + 1;
        prop_assume!(shape[0] >= parts && shape[0].div_ceil(parts) * (parts - 1) < shape[0]);
        let ys = run(13, "Split", vec![int_attr("axis", 0)], std::slice::from_ref(&x), vec![], parts).unwrap();
        let each = shape[0].div_ceil(parts);
        let inner: usize = shape[1..].iter().product();
        let joined: Vec<f32> = ys.iter().flat_map(|t| f32s(t).to_vec()).collect();
        prop_assert_eq!(&joined, &data);
        for (i, t) in ys.iter().enumerate() {
            let rows = if i + 1 == parts { shape[0] - each * (parts - 1) } else { each };
            prop_assert_eq!(t.len(), rows * inner);
        }
    }

    #[test]
    fn gather_picks_rows_with_negative_indices(
        (shape, data) in shape_and_data(3).prop_filter("rank >= 1", |(s, _)| !s.is_empty()),
        raw in prop::collection::vec(any::<i64>(), 1..4),
        axis_seed in any::<usize>(),
    ) {
        let rank = shape.len();
        let axis = axis_seed % rank;
        let len = shape[axis] as i64;
        let idx: Vec<i64> = raw.iter().map(|v| v.rem_euclid(2 * len) - len).collect(); // -len..len
        let x = Tensor::from_f32(shape.clone(), data.clone()).unwrap();
        let consts = vec![i64_input("i", &idx)];
        let y = run(13, "Gather", vec![int_attr("axis", axis as i64 - rank as i64)], std::slice::from_ref(&x), consts, 1).unwrap().remove(0);
        let mut out = shape.clone();
        out[axis] = idx.len();
        prop_assert_eq!(y.shape(), &out[..]);
        for (k, o) in indices(&out).iter().enumerate() {
            let mut src = o.clone();
            src[axis] = idx[o[axis]].rem_euclid(len) as usize;
            prop_assert_eq!(f32s(&y)[k], data[offset(&src, &shape)]);
        }
        let bad = vec![i64_input("i", &[len])];
        let err = run(13, "Gather", vec![int_attr("axis", axis as i64)], std::slice::from_ref(&x), bad, 1).unwrap_err();
        prop_assert!(err.contains("Gather node 'n'") && err.contains("out of range"), "{}", err);
    }

    #[test]
    fn reductions_and_argmax_match_the_reference(
        (shape, data) in shape_and_data(4).prop_filter("rank >= 1", |(s, _)| !s.is_empty()),
        mask in prop::collection::vec(any::<bool>(), 4),
        keep in any::<bool>(),
        opset in prop::sample::select(vec![13i64, 18]),
    ) {
        let rank = shape.len();
        let axes: Vec<usize> = (0..rank).filter(|&i| mask[i]).collect();
        // Negative spelling of the axes; none given = all axes.
        let spelled: Vec<i64> = axes.iter().map(|&a| a as i64 - rank as i64).collect();
        let x = Tensor::from_f32(shape.clone(), data.clone()).unwrap();
        let reduced: Vec<usize> = if axes.is_empty() { (0..rank).collect() } else { axes.clone() };
        let group = |idx: &[usize]| -> Vec<usize> {
            idx.iter().enumerate().filter(|(i, _)| !reduced.contains(i)).map(|(_, &v)| v).collect()
        };
        for (op, f) in [
            ("ReduceSum", (|v: &[f64]| v.iter().sum()) as fn(&[f64]) -> f64),
            ("ReduceMean", |v| v.iter().sum::<f64>() / v.len() as f64),
            ("ReduceMax", |v| v.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
            ("ReduceMin", |v| v.iter().copied().fold(f64::INFINITY, f64::min)),
            ("ReduceProd", |v| v.iter().product()),
        ] {
            let as_input = op == "ReduceSum" || opset >= 18;
            let mut attrs = vec![int_attr("keepdims", keep as i64)];
            let mut consts = vec![];
            if !spelled.is_empty() {
                if as_input {
                    consts.push(i64_input("axes", &spelled));
                } else {
                    attrs.push(ints_attr("axes", &spelled));
                }
            }
            let y = run(opset, op, attrs, std::slice::from_ref(&x), consts, 1).unwrap().remove(0);
            let groups: Vec<Vec<usize>> = {
                let mut g: Vec<Vec<usize>> = indices(&shape).iter().map(|i| group(i)).collect();
                g.sort();
                g.dedup();
                g
            };
            prop_assert_eq!(y.len(), groups.len(), "{}", op);
            for (k, g) in groups.iter().enumerate() {
                let members: Vec<f64> = indices(&shape).iter().enumerate()
                    .filter(|(_, i)| &group(i) == g).map(|(m, _)| f64::from(data[m])).collect();
                prop_assert!(close(f32s(&y)[k], f(&members), 1e-5), "{} group {:?}", op, g);
            }
        }
        let axis = axes.first().copied().unwrap_or(0);
        let y = run(13, "ArgMax", vec![int_attr("axis", axis as i64), int_attr("keepdims", 0)], std::slice::from_ref(&x), vec![], 1).unwrap().remove(0);
        let got = y.as_i64().unwrap();
        let mut out = shape.clone();
        out.remove(axis);
        for (k, o) in indices(&out).iter().enumerate() {
            let at = |j: usize| { let mut s = o.clone(); s.insert(axis, j); data[offset(&s, &shape)] };
            let best = (0..shape[axis]).fold(0, |b, j| if at(j) > at(b) { j } else { b });
            prop_assert_eq!(got[k], best as i64);
        }
    }

    #[test]
    fn layer_norm_and_batched_matmul_match_the_reference(
        b0 in 1usize..3, b1 in 1usize..3, m in 1usize..4, k in 1usize..5, n in 1usize..4,
        a_rank in 1usize..5, b_rank in 1usize..5, seed in any::<u32>(),
    ) {
        let val = |i: usize, s: u32| (((i as u32).wrapping_mul(2_654_435_761) ^ seed ^ s) % 9) as f32 - 4.0;
        // MatMul: A [b0, 1, m, k] truncated to a_rank, B [1, b1, k, n] truncated to b_rank.
        let full_a = [b0, 1, m, k];
        let full_b = [1, b1, k, n];
        let sa: Vec<usize> = full_a[4 - a_rank..].to_vec();
        let sb: Vec<usize> = if b_rank == 1 { vec![k] } else { full_b[4 - b_rank..].to_vec() };
        let an: usize = sa.iter().product();
        let bn: usize = sb.iter().product();
        let av: Vec<f32> = (0..an).map(|i| val(i, 1)).collect();
        let bv: Vec<f32> = (0..bn).map(|i| val(i, 2)).collect();
        let xs = [Tensor::from_f32(sa.clone(), av.clone()).unwrap(), Tensor::from_f32(sb.clone(), bv.clone()).unwrap()];
        let y = run(13, "MatMul", vec![], &xs, vec![], 1).unwrap().remove(0);
        // numpy: promote 1-D, broadcast the batch, drop promoted axes.
        let pa: Vec<usize> = if a_rank == 1 { vec![1, k] } else { sa.clone() };
        let pb: Vec<usize> = if b_rank == 1 { vec![k, 1] } else { sb.clone() };
        let batch_rank = (pa.len() - 2).max(pb.len() - 2);
        let batch: Vec<usize> = (0..batch_rank).map(|i| {
            let get = |p: &[usize]| { let r = p.len() - 2; (i + r).checked_sub(batch_rank).map_or(1, |j| p[j]) };
            get(&pa).max(get(&pb))
        }).collect();
        let (mm, nn) = (pa[pa.len() - 2], pb[pb.len() - 1]);
        let mut want_shape = batch.clone();
        if a_rank > 1 { want_shape.push(mm); }
        if b_rank > 1 { want_shape.push(nn); }
        prop_assert_eq!(y.shape(), &want_shape[..]);
        let mut k_out = 0;
        for bidx in indices(&batch) {
            for i in 0..mm {
                for j in 0..nn {
                    let mut acc = 0.0f64;
                    for t in 0..k {
                        let ia = [broadcast_index(&bidx, &pa[..pa.len() - 2]), vec![i, t]].concat();
                        let ib = [broadcast_index(&bidx, &pb[..pb.len() - 2]), vec![t, j]].concat();
                        acc += f64::from(av[offset(&ia, &pa)]) * f64::from(bv[offset(&ib, &pb)]);
                    }
                    prop_assert!(close(f32s(&y)[k_out], acc, 1e-5));
                    k_out += 1;
                }
            }
        }
        // LayerNormalization over the last two axes of [b0, m, k].
        let shape = vec![b0, m, k];
        let data: Vec<f32> = (0..b0 * m * k).map(|i| val(i, 3)).collect();
        let scale: Vec<f32> = (0..m * k).map(|i| 0.5 + i as f32 * 0.1).collect();
        let bias: Vec<f32> = (0..m * k).map(|i| i as f32 * -0.2).collect();
        let consts = vec![
            f32_tensor("scale", &[m as i64, k as i64], &scale),
            f32_tensor("bias", &[m as i64, k as i64], &bias),
        ];
        let x = Tensor::from_f32(shape.clone(), data.clone()).unwrap();
        let attrs = vec![int_attr("axis", -2), float_attr("epsilon", 1e-3)];
        let y = run(17, "LayerNormalization", attrs, std::slice::from_ref(&x), consts, 1).unwrap().remove(0);
        for (r, row) in data.chunks(m * k).enumerate() {
            let mean = row.iter().map(|&v| f64::from(v)).sum::<f64>() / row.len() as f64;
            let var = row.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / row.len() as f64;
            for (j, &v) in row.iter().enumerate() {
                let want = (f64::from(v) - mean) / (var + 1e-3).sqrt() * f64::from(scale[j]) + f64::from(bias[j]);
                prop_assert!(close(f32s(&y)[r * m * k + j], want, 1e-5));
            }
        }
    }
}

/// The index into a batch shape `dims` (right-aligned, size-1 axes broadcast) of the
/// broadcast batch index `idx`.
fn broadcast_index(idx: &[usize], dims: &[usize]) -> Vec<usize> {
    let skip = idx.len() - dims.len();
    dims.iter()
        .zip(&idx[skip..])
        .map(|(&d, &i)| if d == 1 { 0 } else { i })
        .collect()
}

#[test]
fn mutated_layout_and_reduction_nodes_name_the_node_and_op() {
    let x = Tensor::from_f32(vec![2, 3], vec![1.0; 6]).unwrap();
    let cases: Vec<Mutation> = vec![
        (
            "Transpose",
            vec![ints_attr("perm", &[0, 0])],
            vec![],
            1,
            "permutation",
        ),
        (
            "Transpose",
            vec![ints_attr("perm", &[0, 1, 2])],
            vec![],
            1,
            "permutation",
        ),
        (
            "Slice",
            vec![],
            vec![
                i64_input("s", &[0]),
                i64_input("e", &[1]),
                i64_input("a", &[2]),
            ],
            1,
            "axis 2",
        ),
        (
            "Slice",
            vec![],
            vec![
                i64_input("s", &[0]),
                i64_input("e", &[1]),
                i64_input("a", &[0]),
                i64_input("p", &[0]),
            ],
            1,
            "step 0",
        ),
        (
            "Slice",
            vec![],
            vec![i64_input("s", &[0, 0]), i64_input("e", &[1])],
            1,
            "entries",
        ),
        (
            "Gather",
            vec![int_attr("axis", 5)],
            vec![i64_input("i", &[0])],
            1,
            "axis 5",
        ),
        (
            "Split",
            vec![],
            vec![i64_input("split", &[1, 5])],
            2,
            "does not sum",
        ),
        (
            "Split",
            vec![int_attr("axis", 1)],
            vec![],
            5,
            "into 5 parts",
        ),
        (
            "ReduceSum",
            vec![],
            vec![i64_input("axes", &[7])],
            1,
            "out of range",
        ),
        ("ArgMax", vec![int_attr("axis", -3)], vec![], 1, "axis -3"),
        (
            "MatMul",
            vec![],
            vec![f32_tensor("b", &[2, 2, 2], &[0.0; 8])],
            1,
            "inner dimensions",
        ),
        (
            "Cast",
            // 10 = float16, which q8 does not read.
            vec![int_attr("to", 10)],
            vec![],
            1,
            "element type code 10",
        ),
        (
            "Expand",
            vec![],
            vec![i64_input("shape", &[4, 5])],
            1,
            "broadcast",
        ),
        (
            "Expand",
            vec![],
            vec![i64_input("shape", &[-3])],
            1,
            "out of range",
        ),
        ("Mod", vec![], vec![f32_tensor("d", &[1], &[2.0])], 1, "f32"),
        (
            "LayerNormalization",
            vec![],
            vec![f32_tensor("s", &[2], &[1.0; 2])],
            1,
            "normalized size",
        ),
    ];
    assert_mutations_named(&x, cases);
}

#[test]
fn mod_follows_the_divisor_sign_or_c_fmod() {
    let a = Tensor::from_i64(vec![4], vec![7, -7, 7, -7]).unwrap();
    let b = Tensor::from_i64(vec![4], vec![3, 3, -3, -3]).unwrap();
    let y = run(13, "Mod", vec![], &[a.clone(), b.clone()], vec![], 1).unwrap();
    assert_eq!(y[0].as_i64().unwrap(), [1, 2, -2, -1]);
    let y = run(13, "Mod", vec![int_attr("fmod", 1)], &[a, b], vec![], 1).unwrap();
    assert_eq!(y[0].as_i64().unwrap(), [1, -1, 1, -1]);
    let fa = Tensor::from_f32(vec![2], vec![5.5, -5.5]).unwrap();
    let fb = Tensor::from_f32(vec![2], vec![2.0, 2.0]).unwrap();
    let y = run(
        13,
        "Mod",
        vec![int_attr("fmod", 1)],
        &[fa.clone(), fb.clone()],
        vec![],
        1,
    )
    .unwrap();
    assert_eq!(f32s(&y[0]), [1.5, -1.5]);
    let err = run(13, "Mod", vec![], &[fa, fb], vec![], 1).unwrap_err();
    assert!(err.contains("Mod node 'n'") && err.contains("f32"), "{err}");
}

#[test]
fn expand_to_a_shape_built_from_the_dynamic_batch() {
    // y = Expand(c [1, 4], [Shape(x)[0], 4]) + x, x of shape [n, 1].
    let nodes = vec![
        node("Shape", "shape", &["x0"], &["s"], vec![]),
        node("Gather", "batch", &["s", "zero"], &["b"], vec![]),
        node("Unsqueeze", "b1", &["b", "axes"], &["b_1"], vec![]),
        node(
            "Concat",
            "target",
            &["b_1", "four"],
            &["t"],
            vec![int_attr("axis", 0)],
        ),
        node("Expand", "expand", &["c", "t"], &["e"], vec![]),
        node("Add", "add", &["e", "x0"], &["y0"], vec![]),
    ];
    let consts = vec![
        i64_tensor("zero", &[], &[0]),
        i64_input("axes", &[0]),
        i64_input("four", &[4]),
        f32_tensor("c", &[1, 4], &[1.0, 2.0, 3.0, 4.0]),
    ];
    let m = model_proto(
        13,
        nodes,
        consts,
        vec![typed_value("x0", 1, &[Err("n"), Ok(1)])],
        &["y0"],
    );
    let g = onnx::import(&m).unwrap();
    let exec = Executor::new(&g, ExecOptions { threads: 1 }).unwrap();
    for n in [1usize, 3] {
        let x = Tensor::from_f32(vec![n, 1], (0..n).map(|i| 10.0 * i as f32).collect()).unwrap();
        let y = exec.run(&[x]).unwrap().remove(0);
        assert_eq!(y.shape(), [n, 4]);
        let want: Vec<f32> = (0..n)
            .flat_map(|i| [1.0, 2.0, 3.0, 4.0].map(|v| v + 10.0 * i as f32))
            .collect();
        assert_eq!(f32s(&y), want);
    }
}

#[test]
fn slice_to_a_run_time_length_and_cast() {
    // y = ids - Cast(Slice(table [1, 6], 0, Shape(x)[1], axis 1), i64): BERT's position ids.
    let nodes = vec![
        node("Shape", "shape", &["x0"], &["s"], vec![]),
        node("Gather", "len", &["s", "one"], &["l"], vec![]),
        node("Unsqueeze", "l1", &["l", "axes"], &["l_1"], vec![]),
        node(
            "Slice",
            "slice",
            &["table", "zero", "l_1", "one_axis"],
            &["p"],
            vec![],
        ),
        node("Cast", "cast", &["p"], &["pi"], vec![int_attr("to", 7)]),
        node("Sub", "sub", &["x0", "pi"], &["y0"], vec![]),
    ];
    let consts = vec![
        i64_tensor("one", &[], &[1]),
        i64_input("axes", &[0]),
        i64_input("zero", &[0]),
        i64_input("one_axis", &[1]),
        f32_tensor("table", &[1, 6], &[0.0, 1.0, 2.0, 3.9, 4.0, 5.0]),
    ];
    let m = model_proto(
        13,
        nodes,
        consts,
        vec![typed_value("x0", 7, &[Ok(1), Err("seq")])],
        &["y0"],
    );
    let g = onnx::import(&m).unwrap();
    let exec = Executor::new(&g, ExecOptions { threads: 1 }).unwrap();
    for seq in [2usize, 5] {
        let x = Tensor::from_i64(vec![1, seq], vec![100; seq]).unwrap();
        let y = exec.run(&[x]).unwrap().remove(0);
        let want: Vec<i64> = [100, 99, 98, 97, 96][..seq].to_vec();
        assert_eq!(y.as_i64().unwrap(), want, "seq {seq} (3.9 casts to 3)");
    }
    let long = Tensor::from_i64(vec![1, 7], vec![0; 7]).unwrap();
    let err = exec.run(&[long]).unwrap_err().to_string();
    assert!(err.contains("Sub node 'sub'"), "{err}");
}

#[test]
fn pad_places_the_input_inside_the_fill_value() {
    let x = Tensor::from_f32(vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
    let consts = vec![
        i64_input("pads", &[1, 0, 0, 2]),
        f32_tensor("v", &[], &[-1.0]),
    ];
    let y = run(13, "Pad", vec![], std::slice::from_ref(&x), consts, 1)
        .unwrap()
        .remove(0);
    assert_eq!(y.shape(), [3, 4]);
    #[rustfmt::skip]
    assert_eq!(f32s(&y), [
        -1.0, -1.0, -1.0, -1.0,
        1.0, 2.0, -1.0, -1.0,
        3.0, 4.0, -1.0, -1.0,
    ]);
    for (pads, mode, needle) in [
        (vec![1, 0, 0], "constant", "3 pads"),
        (vec![-3, 0, 0, 0], "constant", "crop more than the axis"),
        (vec![0, 2, 0, 0], "reflect", "a reflect pad of 2"),
    ] {
        let consts = vec![i64_input("pads", &pads)];
        let attrs = vec![string_attr("mode", mode)];
        let err = run(13, "Pad", attrs, std::slice::from_ref(&x), consts, 1).unwrap_err();
        assert!(
            err.contains("Pad node 'n'") && err.contains(needle),
            "{err}"
        );
    }
}
