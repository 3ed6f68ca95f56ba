//! Every op of the fp32 executor against hand-computed values: pads (asymmetric, auto_pad),
//! strides, dilation, groups, ceil_mode, count_include_pad, broadcasting, Gemm flags, q/dq.

use q8_frontend::exec::{ExecOptions, Executor};
use q8_frontend::ir::{
    Conv, DType, Gemm, Graph, Op, Padding, Pool, QuantSpec, ReshapeDim, Shape, Tensor, TensorData,
    Window2d,
};

/// Runs `op` on input `x` and constant operands; returns the output shape and data.
fn eval(
    op: Op,
    x: (&[usize], Vec<f32>),
    consts: &[(&[usize], Vec<f32>)],
) -> (Vec<usize>, Vec<f32>) {
    let mut g = Graph::new("t");
    let xi = g.add_input("x", DType::F32, Shape::known(x.0)).unwrap();
    let mut inputs = vec![xi];
    for (i, (shape, data)) in consts.iter().enumerate() {
        let t = Tensor::from_f32(shape.to_vec(), data.clone()).unwrap();
        inputs.push(g.add_constant(&format!("c{i}"), t).unwrap());
    }
    let y = g.add_node("op", op, &inputs).unwrap()[0];
    g.set_outputs(&[y]);
    let mut results = Vec::new();
    for threads in [1, 2] {
        let exec = Executor::new(&g, ExecOptions { threads }).unwrap();
        let out = exec
            .run(&[Tensor::from_f32(x.0.to_vec(), x.1.clone()).unwrap()])
            .unwrap()
            .remove(0);
        results.push((out.shape().to_vec(), out.as_f32().unwrap().to_vec()));
    }
    assert_eq!(results[0], results[1], "1 and 2 threads differ");
    results.remove(0)
}

fn iota(n: usize) -> Vec<f32> {
    (0..n).map(|i| i as f32).collect()
}

fn conv(
    kernel: [usize; 2],
    strides: [usize; 2],
    dilations: [usize; 2],
    padding: Padding,
    groups: usize,
) -> Op {
    Op::Conv(Conv {
        window: Window2d {
            kernel,
            strides,
            dilations,
            padding,
        },
        groups,
    })
}

#[test]
fn conv_asymmetric_pads() {
    let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    let op = conv(
        [2, 2],
        [1, 1],
        [1, 1],
        Padding::Explicit {
            begin: [1, 0],
            end: [0, 1],
        },
        1,
    );
    let (shape, y) = eval(op, (&[1, 1, 3, 3], x), &[(&[1, 1, 2, 2], vec![1.0; 4])]);
    assert_eq!(shape, [1, 1, 3, 3]);
    assert_eq!(y, [3.0, 5.0, 3.0, 12.0, 16.0, 9.0, 24.0, 28.0, 15.0]);
}

#[test]
fn conv_stride_and_dilation() {
    let op = conv([2, 2], [2, 2], [2, 2], Padding::symmetric(0), 1);
    let (shape, y) = eval(
        op,
        (&[1, 1, 5, 5], iota(25)),
        &[(&[1, 1, 2, 2], vec![1.0, 0.0, 0.0, 1.0])],
    );
    assert_eq!(shape, [1, 1, 2, 2]);
    assert_eq!(y, [12.0, 16.0, 32.0, 36.0]);
}

#[test]
fn conv_groups_and_bias() {
    let op = conv([1, 1], [1, 1], [1, 1], Padding::symmetric(0), 2);
    let (_, y) = eval(
        op,
        (&[1, 4, 1, 1], vec![1.0, 2.0, 3.0, 4.0]),
        &[
            (&[2, 2, 1, 1], vec![1.0, 1.0, 1.0, -1.0]),
            (&[2], vec![0.5, -0.5]),
        ],
    );
    assert_eq!(y, [3.5, -1.5]);
    // Depthwise 3x3 with padding 1: each channel sums its 3x3 neighbourhood, scaled.
    let op = conv([3, 3], [1, 1], [1, 1], Padding::symmetric(1), 2);
    let (_, y) = eval(
        op,
        (&[1, 2, 2, 2], vec![1.0; 8]),
        &[(&[2, 1, 3, 3], [vec![1.0; 9], vec![2.0; 9]].concat())],
    );
    assert_eq!(y, [4.0, 4.0, 4.0, 4.0, 8.0, 8.0, 8.0, 8.0]);
}

#[test]
fn conv_auto_pad() {
    let w = (&[1usize, 1, 3, 3][..], vec![1.0; 9]);
    let (shape, y) = eval(
        conv([3, 3], [2, 2], [1, 1], Padding::SameUpper, 1),
        (&[1, 1, 4, 4], vec![1.0; 16]),
        std::slice::from_ref(&w),
    );
    assert_eq!((shape, y), (vec![1, 1, 2, 2], vec![9.0, 6.0, 6.0, 4.0]));
    let (_, y) = eval(
        conv([3, 3], [2, 2], [1, 1], Padding::SameLower, 1),
        (&[1, 1, 4, 4], vec![1.0; 16]),
        std::slice::from_ref(&w),
    );
    assert_eq!(y, [4.0, 6.0, 6.0, 9.0]);
    let (shape, _) = eval(
        conv([3, 3], [1, 1], [1, 1], Padding::Valid, 1),
        (&[1, 1, 4, 4], vec![1.0; 16]),
        &[w],
    );
    assert_eq!(shape, [1, 1, 2, 2]);
}

#[test]
fn conv_batch_chunks_match_single_images() {
    // 3 images of 4x4 (16 pixels): the executor batches them into one GEMM.
    let x: Vec<f32> = (0..3 * 2 * 16)
        .map(|i| ((i * 7) % 11) as f32 - 5.0)
        .collect();
    let w: Vec<f32> = (0..3 * 2 * 9).map(|i| ((i * 5) % 7) as f32 - 3.0).collect();
    let op = conv([3, 3], [1, 1], [1, 1], Padding::symmetric(1), 1);
    let (_, all) = eval(
        op.clone(),
        (&[3, 2, 4, 4], x.clone()),
        &[(&[3, 2, 3, 3], w.clone())],
    );
    for n in 0..3 {
        let (_, one) = eval(
            op.clone(),
            (&[1, 2, 4, 4], x[n * 32..(n + 1) * 32].to_vec()),
            &[(&[3, 2, 3, 3], w.clone())],
        );
        assert_eq!(one, all[n * 48..(n + 1) * 48]);
    }
}

fn pool(kernel: usize, stride: usize, pad: usize, ceil_mode: bool) -> Pool {
    Pool {
        window: Window2d::new([kernel, kernel], [stride, stride], pad),
        ceil_mode,
    }
}

#[test]
fn max_pool_ceil_mode() {
    let (shape, y) = eval(
        Op::MaxPool(pool(3, 2, 0, false)),
        (&[1, 1, 4, 4], iota(16)),
        &[],
    );
    assert_eq!((shape, y), (vec![1, 1, 1, 1], vec![10.0]));
    let (shape, y) = eval(
        Op::MaxPool(pool(3, 2, 0, true)),
        (&[1, 1, 4, 4], iota(16)),
        &[],
    );
    assert_eq!((shape, y), (vec![1, 1, 2, 2], vec![10.0, 11.0, 14.0, 15.0]));
    // Padding never wins, even against negative values.
    let (_, y) = eval(
        Op::MaxPool(pool(2, 2, 1, false)),
        (&[1, 1, 2, 2], vec![-4.0, -3.0, -2.0, -1.0]),
        &[],
    );
    assert_eq!(y, [-4.0, -3.0, -2.0, -1.0]);
}

#[test]
fn average_pool_count_include_pad() {
    let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    let avg = |include| Op::AveragePool {
        pool: pool(2, 1, 1, false),
        count_include_pad: include,
    };
    let (shape, y) = eval(avg(true), (&[1, 1, 3, 3], x.clone()), &[]);
    assert_eq!(shape, [1, 1, 4, 4]);
    assert_eq!((y[0], y[5]), (0.25, 3.0));
    let (_, y) = eval(avg(false), (&[1, 1, 3, 3], x), &[]);
    assert_eq!((y[0], y[5], y[3]), (1.0, 3.0, 3.0));
    // ceil_mode: the last window hangs past the input; it divides by the taps inside.
    let op = Op::AveragePool {
        pool: pool(2, 2, 0, true),
        count_include_pad: true,
    };
    let (shape, y) = eval(
        op,
        (&[1, 1, 3, 3], (1..=9).map(|v| v as f32).collect()),
        &[],
    );
    assert_eq!((shape, y), (vec![1, 1, 2, 2], vec![3.0, 4.5, 7.5, 9.0]));
}

#[test]
fn global_average_pool_and_reduce_mean() {
    let (shape, y) = eval(Op::GlobalAveragePool, (&[1, 2, 2, 2], iota(8)), &[]);
    assert_eq!((shape, y), (vec![1, 2, 1, 1], vec![1.5, 5.5]));
    let (shape, y) = eval(
        Op::ReduceMean {
            axes: vec![2, 3],
            keepdims: false,
        },
        (&[1, 2, 2, 2], iota(8)),
        &[],
    );
    assert_eq!((shape, y), (vec![1, 2], vec![1.5, 5.5]));
}

#[test]
fn broadcasting_add_and_mul() {
    let (shape, y) = eval(
        Op::Add,
        (&[2, 3], iota(6)),
        &[(&[3], vec![10.0, 20.0, 30.0])],
    );
    assert_eq!(
        (shape, y),
        (vec![2, 3], vec![10.0, 21.0, 32.0, 13.0, 24.0, 35.0])
    );
    let (shape, y) = eval(
        Op::Mul,
        (&[2, 1], vec![2.0, 3.0]),
        &[(&[1, 3], vec![1.0, 2.0, 3.0])],
    );
    assert_eq!((shape, y), (vec![2, 3], vec![2.0, 4.0, 6.0, 3.0, 6.0, 9.0]));
    let (_, y) = eval(
        Op::Add,
        (&[1, 2, 1, 2], iota(4)),
        &[(&[2, 1, 1], vec![100.0, 200.0])],
    );
    assert_eq!(y, [100.0, 101.0, 202.0, 203.0]);
    let (shape, y) = eval(
        Op::Mul,
        (&[1, 1], vec![3.0]),
        &[(&[2, 2], vec![1.0, 2.0, 3.0, 4.0])],
    );
    assert_eq!((shape, y), (vec![2, 2], vec![3.0, 6.0, 9.0, 12.0]));
}

#[test]
fn gemm_flags_and_matmul() {
    let a = (&[3usize, 2][..], vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]); // A^T of [[1,2,3],[4,5,6]]
    let b = (&[2usize, 3][..], vec![1.0, 0.0, 1.0, 0.0, 1.0, 1.0]); // B^T of [[1,0],[0,1],[1,1]]
    let op = Op::Gemm(Gemm {
        alpha: 2.0,
        beta: 0.5,
        trans_a: true,
        trans_b: true,
    });
    let (shape, y) = eval(op, a, &[b, (&[2], vec![10.0, 20.0])]);
    // A*B = [[4,5],[10,11]]; 2*AB + 0.5*C
    assert_eq!((shape, y), (vec![2, 2], vec![13.0, 20.0, 25.0, 32.0]));
    let (shape, y) = eval(
        Op::MatMul,
        (&[2, 1, 3], iota(6)),
        &[(&[3, 2], vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0])],
    );
    assert_eq!((shape, y), (vec![2, 1, 2], vec![2.0, 3.0, 8.0, 9.0]));
}

#[test]
fn activations() {
    let x = vec![-4.0, -1.5, 0.0, 1.5, 4.0, 7.0];
    let s = &[6usize][..];
    assert_eq!(
        eval(Op::Relu, (s, x.clone()), &[]).1,
        [0.0, 0.0, 0.0, 1.5, 4.0, 7.0]
    );
    assert_eq!(
        eval(Op::Clip { min: 0.0, max: 6.0 }, (s, x.clone()), &[]).1,
        [0.0, 0.0, 0.0, 1.5, 4.0, 6.0]
    );
    assert_eq!(
        eval(Op::HardSwish, (s, x.clone()), &[]).1,
        [0.0, -0.375, 0.0, 1.125, 4.0, 7.0]
    );
    let sig = eval(Op::Sigmoid, (s, x), &[]).1;
    assert!((sig[2] - 0.5).abs() < 1e-7 && (sig[4] - 0.98201376).abs() < 1e-6);
}

#[test]
fn batch_norm_scale_shift() {
    let consts: Vec<(&[usize], Vec<f32>)> = vec![
        (&[2], vec![2.0, 1.0]),
        (&[2], vec![1.0, 0.0]),
        (&[2], vec![1.0, -1.0]),
        (&[2], vec![4.0, 1.0]),
    ];
    let (_, y) = eval(
        Op::BatchNorm { epsilon: 0.0 },
        (&[1, 2, 1, 2], vec![1.0, 3.0, 0.0, 1.0]),
        &consts,
    );
    assert_eq!(y, [1.0, 3.0, 1.0, 2.0]);
}

#[test]
fn shape_ops() {
    let (shape, y) = eval(Op::Flatten { axis: 2 }, (&[2, 3, 2], iota(12)), &[]);
    assert_eq!((shape, y), (vec![6, 2], iota(12)));
    let target = vec![
        ReshapeDim::CopyInput(0),
        ReshapeDim::Infer,
        ReshapeDim::Fixed(2),
    ];
    let (shape, _) = eval(Op::Reshape { target }, (&[2, 3, 2], iota(12)), &[]);
    assert_eq!(shape, [2, 3, 2]);
    let (shape, y) = eval(
        Op::Concat { axis: 1 },
        (&[2, 1], vec![1.0, 2.0]),
        &[(&[2, 2], vec![3.0, 4.0, 5.0, 6.0])],
    );
    assert_eq!((shape, y), (vec![2, 3], vec![1.0, 3.0, 4.0, 2.0, 5.0, 6.0]));
}

#[test]
fn quantize_dequantize_reference() {
    let mut g = Graph::new("qdq");
    let x = g.add_input("x", DType::F32, Shape::known(&[2, 3])).unwrap();
    let q = g
        .add_node(
            "q",
            Op::QuantizeLinear(QuantSpec::per_tensor(0.5, 10, DType::U8)),
            &[x],
        )
        .unwrap()[0];
    let dq = g
        .add_node(
            "dq",
            Op::DequantizeLinear(QuantSpec::per_tensor(0.5, 10, DType::U8)),
            &[q],
        )
        .unwrap()[0];
    let axis = QuantSpec {
        scales: vec![1.0, 0.25],
        zero_points: vec![0, -1],
        axis: Some(0),
        dtype: DType::I8,
    };
    let qa = g
        .add_node("qa", Op::QuantizeLinear(axis.clone()), &[x])
        .unwrap()[0];
    let dqa = g
        .add_node("dqa", Op::DequantizeLinear(axis), &[qa])
        .unwrap()[0];
    g.set_outputs(&[q, dq, qa, dqa]);
    let exec = Executor::new(&g, ExecOptions { threads: 1 }).unwrap();
    let input =
        Tensor::from_f32(vec![2, 3], vec![1.25, 1.75, -100.0, 200.0, 0.125, -0.375]).unwrap();
    let out = exec.run(&[input]).unwrap();
    // 1.25/0.5 = 2.5 -> 2 (half to even); 1.75/0.5 = 3.5 -> 4; clamps at 0 and 255.
    assert_eq!(out[0].data(), &TensorData::U8(vec![12, 14, 0, 255, 10, 9]));
    assert_eq!(
        out[1].as_f32().unwrap(),
        &[1.0, 2.0, -5.0, 122.5, 0.0, -0.5]
    );
    // Row 0: scale 1, zp 0; row 1: scale 0.25, zp -1 (0.125*4 = 0.5 -> 0, -0.375*4 = -1.5 -> -2).
    assert_eq!(
        out[2].data(),
        &TensorData::I8(vec![1, 2, -100, 127, -1, -3])
    );
    assert_eq!(
        out[3].as_f32().unwrap(),
        &[1.0, 2.0, -100.0, 32.0, 0.0, -0.5]
    );
}

#[test]
fn run_rejects_mismatched_inputs_and_observes_every_value() {
    let mut g = Graph::new("t");
    let x = g
        .add_input(
            "x",
            DType::F32,
            Shape(vec![q8_frontend::ir::Dim::sym("n"), 3.into()]),
        )
        .unwrap();
    let y = g.add_node("relu", Op::Relu, &[x]).unwrap()[0];
    let z = g.add_node("sig", Op::Sigmoid, &[y]).unwrap()[0];
    g.set_outputs(&[z]);
    let exec = Executor::new(&g, ExecOptions { threads: 1 }).unwrap();
    let bad = Tensor::from_f32(vec![2, 4], vec![0.0; 8]).unwrap();
    let msg = exec.run(&[bad]).unwrap_err().to_string();
    assert!(msg.contains("'x'") && msg.contains("[n, 3]"), "{msg}");
    assert!(exec.run(&[]).is_err());
    let mut names = Vec::new();
    let ok = Tensor::from_f32(vec![5, 3], vec![0.0; 15]).unwrap();
    exec.run_observed(&[ok], &mut |_, name, t| {
        names.push((name.to_string(), t.shape().to_vec()))
    })
    .unwrap();
    assert_eq!(names.len(), 3);
    assert_eq!(names[1], ("relu_output_0".to_string(), vec![5, 3]));
}

#[test]
fn concurrent_runs_share_one_executor() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    let g = q8_frontend::models::resnet18(q8_frontend::models::ResNet18Config {
        num_classes: 10,
        image_size: 32,
        seed: 9,
    })
    .unwrap();
    let exec = Executor::new(&g, ExecOptions { threads: 1 }).unwrap();
    send_sync(&exec);
    let inputs: Vec<Tensor> = (0..4)
        .map(|k| {
            Tensor::from_f32(
                vec![1, 3, 32, 32],
                (0..3072)
                    .map(|i| ((i * (k + 3)) % 29) as f32 / 14.0 - 1.0)
                    .collect(),
            )
            .unwrap()
        })
        .collect();
    let serial: Vec<Vec<Tensor>> = inputs
        .iter()
        .map(|x| exec.run(std::slice::from_ref(x)).unwrap())
        .collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = inputs
            .iter()
            .map(|x| s.spawn(|| exec.run(std::slice::from_ref(x)).unwrap()))
            .collect();
        for (h, want) in handles.into_iter().zip(&serial) {
            assert_eq!(&h.join().unwrap(), want);
        }
    });
}

/// Direct-loop convolution (the definition) for comparison with the GEMM path.
#[allow(clippy::too_many_arguments)]
fn naive_conv(
    x: &[f32],
    c: usize,
    h: usize,
    w: usize,
    wt: &[f32],
    oc: usize,
    k: usize,
    stride: usize,
    pad: usize,
    bias: &[f32],
) -> Vec<f32> {
    let oh = (h + 2 * pad - k) / stride + 1;
    let ow = (w + 2 * pad - k) / stride + 1;
    let mut out = vec![0.0f32; oc * oh * ow];
    for o in 0..oc {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut acc = bias[o] as f64;
                for ci in 0..c {
                    for ky in 0..k {
                        for kx in 0..k {
                            let iy = (oy * stride + ky) as isize - pad as isize;
                            let ix = (ox * stride + kx) as isize - pad as isize;
                            if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                acc += x[(ci * h + iy as usize) * w + ix as usize] as f64
                                    * wt[((o * c + ci) * k + ky) * k + kx] as f64;
                            }
                        }
                    }
                }
                out[(o * oh + oy) * ow + ox] = acc as f32;
            }
        }
    }
    out
}

#[test]
fn large_maps_are_unfolded_in_blocks_that_match_the_definition() {
    let (c, h, w, oc) = (32, 40, 40, 40);
    let x: Vec<f32> = (0..c * h * w)
        .map(|i| ((i * 13) % 23) as f32 / 11.0 - 1.0)
        .collect();
    let wt: Vec<f32> = (0..oc * c * 9)
        .map(|i| ((i * 7) % 19) as f32 / 9.0 - 1.0)
        .collect();
    let bias: Vec<f32> = (0..oc).map(|i| i as f32 * 0.25).collect();
    for stride in [1, 2] {
        let op = conv([3, 3], [stride, stride], [1, 1], Padding::symmetric(1), 1);
        let (_, got) = eval(
            op,
            (&[1, c, h, w], x.clone()),
            &[(&[oc, c, 3, 3], wt.clone()), (&[oc], bias.clone())],
        );
        let want = naive_conv(&x, c, h, w, &wt, oc, 3, stride, 1, &bias);
        assert_eq!(got.len(), want.len());
        let diff = got
            .iter()
            .zip(&want)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(diff < 1e-4, "stride {stride}: max |diff| {diff}");
    }
}
