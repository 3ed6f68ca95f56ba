//! The registered op families (element-wise unary, broadcasting binary, Softmax, Resize,
//! ConvTranspose) imported from one-node ONNX models and run by the fp32 executor, against
//! straightforward references: broadcast shapes, negative axes, rank 0, int64 edge values
//! (graph inputs cannot have empty dims); mutated nodes give errors naming the node and the op.

mod onnx_support;

use onnx_support::{
    f32_tensor, float_attr, i64_tensor, int_attr, ints_attr, model_proto, node, string_attr,
    typed_value,
};
use proptest::prelude::*;
use q8_frontend::exec::{ExecOptions, Executor};
use q8_frontend::ir::{Tensor, TensorData};
use q8_frontend::onnx::{
    self,
    proto::{AttributeProto, TensorProto},
};

/// One node `op` named "n" reading graph inputs `x0, x1, ...` (the `inputs`) and then the
/// initializers `consts` (by their names), at `opset`; returns its outputs.
fn run(
    opset: i64,
    op: &str,
    attrs: Vec<AttributeProto>,
    inputs: &[Tensor],
    consts: Vec<TensorProto>,
    outputs: usize,
) -> Result<Vec<Tensor>, String> {
    let mut names: Vec<String> = (0..inputs.len()).map(|i| format!("x{i}")).collect();
    names.extend(consts.iter().map(|c| c.name.clone()));
    let outs: Vec<String> = (0..outputs).map(|i| format!("y{i}")).collect();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let out_refs: Vec<&str> = outs.iter().map(String::as_str).collect();
    let values = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let elem = match t.data() {
                TensorData::I64(_) => 7,
                _ => 1,
            };
            let dims: Vec<Result<i64, &str>> = t.shape().iter().map(|&d| Ok(d as i64)).collect();
            typed_value(&names[i], elem, &dims)
        })
        .collect();
    let m = model_proto(
        opset,
        vec![node(op, "n", &name_refs, &out_refs, attrs)],
        consts,
        values,
        &out_refs,
    );
    let g = onnx::import(&m).map_err(|e| e.to_string())?;
    let exec = Executor::new(&g, ExecOptions { threads: 1 }).map_err(|e| e.to_string())?;
    exec.run(inputs).map_err(|e| e.to_string())
}

fn f32s(t: &Tensor) -> &[f32] {
    t.as_f32().unwrap()
}

/// Row-major index of `idx` in `shape`, broadcasting (size-1 axes read index 0; missing
/// leading axes are dropped).
fn broadcast_offset(idx: &[usize], shape: &[usize]) -> usize {
    let skip = idx.len() - shape.len();
    shape
        .iter()
        .zip(&idx[skip..])
        .fold(0, |acc, (&d, &i)| acc * d + if d == 1 { 0 } else { i })
}

/// Every multi-index of `shape`, in row-major order.
fn indices(shape: &[usize]) -> Vec<Vec<usize>> {
    let mut all = vec![vec![]];
    for &d in shape {
        all = all
            .into_iter()
            .flat_map(|p| (0..d).map(move |i| [p.clone(), vec![i]].concat()))
            .collect();
    }
    all
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

#[test]
fn mutated_nodes_name_the_node_and_op() {
    let x4 = Tensor::from_f32(vec![1, 2, 3, 3], vec![0.5; 18]).unwrap();
    let scales = |v: &[f32]| f32_tensor("scales", &[v.len() as i64], v);
    let roi = || f32_tensor("roi", &[0], &[]);
    let cases: Vec<(&str, Vec<AttributeProto>, Vec<TensorProto>, &str)> = vec![
        (
            "HardSigmoid",
            vec![float_attr("alpha", f32::NAN)],
            vec![],
            "alpha",
        ),
        ("Softmax", vec![int_attr("axis", 4)], vec![], "axis 4"),
        ("Softmax", vec![int_attr("axis", -5)], vec![], "axis -5"),
        (
            "Gelu",
            vec![string_attr("approximate", "erf")],
            vec![],
            "approximate",
        ),
        (
            "Resize",
            vec![string_attr("mode", "cubic")],
            vec![roi(), scales(&[1.0, 1.0, 2.0, 2.0])],
            "mode 'cubic'",
        ),
        (
            "Resize",
            vec![],
            vec![roi(), scales(&[2.0, 2.0])],
            "2 scales",
        ),
        (
            "Resize",
            vec![],
            vec![roi(), scales(&[1.0, 1.0, -2.0, 2.0])],
            "scale -2",
        ),
        (
            "Resize",
            vec![],
            vec![roi(), scales(&[1.0, 1.0, 1e9, 1e9])],
            "out of range",
        ),
        (
            "Resize",
            vec![string_attr(
                "coordinate_transformation_mode",
                "tf_crop_and_resize",
            )],
            vec![roi(), scales(&[1.0, 1.0, 2.0, 2.0])],
            "coordinate_transformation_mode",
        ),
        (
            "ConvTranspose",
            vec![],
            vec![f32_tensor("w", &[2, 1, 3], &[0.0; 6])],
            "2-D",
        ),
        (
            "ConvTranspose",
            vec![],
            vec![f32_tensor("w", &[3, 1, 1, 1], &[0.0; 3])],
            "channels",
        ),
        (
            "ConvTranspose",
            vec![ints_attr("pads", &[9, 9, 9, 9])],
            vec![f32_tensor("w", &[2, 1, 1, 1], &[0.0; 2])],
            "pads",
        ),
        (
            "ConvTranspose",
            vec![ints_attr("output_padding", &[3, 3])],
            vec![f32_tensor("w", &[2, 1, 1, 1], &[0.0; 2])],
            "output_padding",
        ),
        (
            "ConvTranspose",
            vec![ints_attr("strides", &[1 << 40, 1])],
            vec![f32_tensor("w", &[2, 1, 1, 1], &[0.0; 2])],
            "strides",
        ),
        ("Pow", vec![], vec![i64_tensor("e", &[1], &[2])], "exponent"),
        (
            "Sub",
            vec![],
            vec![f32_tensor("b", &[4], &[0.0; 4])],
            "broadcast",
        ),
    ];
    for (op, attrs, consts, needle) in cases {
        let opset = if op == "Gelu" { 20 } else { 13 };
        let err = run(opset, op, attrs, std::slice::from_ref(&x4), consts, 1).unwrap_err();
        assert!(
            err.contains(&format!("{op} node 'n'")) && err.contains(needle),
            "{op}: {err}"
        );
    }
}
