//! Depthwise convolution on every available tier, bit for bit against the reference conv;
//! named MobileNet-V2 shapes; hand-checked reference semantics; bad arguments.

mod ops_support;

use ops_support::{Case, check_geometry, edge_size, reference_f32, tiers};
use proptest::prelude::*;
use q8_kernels::conv::{
    ConvEpilogue, ConvGeometry, ConvOutput, ConvWeights, Nhwc, PackedConvWeights, Padding,
    Residual, conv2d,
};
use q8_kernels::{Activation, Error, QParams, Tier};

fn depthwise(input: Nhwc, kernel: [usize; 2]) -> ConvGeometry {
    ConvGeometry::new(input, input.c, kernel).with_groups(input.c)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn depthwise_matches_reference_on_every_tier(
        n in 1usize..3, h in 1usize..11, w in 1usize..11, c in edge_size(70),
        kernel in (1usize..8, 1usize..8), stride in (1usize..4, 1usize..4),
        dilation in (1usize..3, 1usize..3), pads in (0usize..4, 0usize..4, 0usize..4, 0usize..4),
        seed: u64,
    ) {
        let geom = depthwise(Nhwc::new(n, h, w, c), [kernel.0, kernel.1])
            .with_stride([stride.0, stride.1])
            .with_dilation([dilation.0, dilation.1])
            .with_padding(Padding::new(pads.0, pads.1, pads.2, pads.3));
        check_geometry(geom, seed, "depthwise");
    }
}

#[test]
fn mobilenet_v2_depthwise_shapes() {
    let shapes = [
        (Nhwc::new(1, 112, 112, 32), 1),
        (Nhwc::new(1, 112, 112, 32), 2),
        (Nhwc::new(1, 56, 56, 144), 1),
        (Nhwc::new(1, 56, 56, 144), 2),
        (Nhwc::new(2, 14, 14, 576), 1),
        (Nhwc::new(1, 7, 7, 960), 1),
    ];
    for (i, (input, stride)) in shapes.into_iter().enumerate() {
        let geom = depthwise(input, [3, 3])
            .with_stride([stride, stride])
            .with_padding(Padding::uniform(1));
        Case::new(geom, 100 + i as u64).check_all_tiers(&format!("mobilenet {input} s{stride}"));
    }
}

#[test]
fn reference_pads_with_the_zero_point() {
    // Input equal to the zero point everywhere is real 0: the accumulator is 0 at every
    // position, borders included, so the f32 output is exactly the bias.
    let geom = depthwise(Nhwc::new(1, 5, 4, 3), [3, 3]).with_padding(Padding::new(2, 1, 0, 3));
    let qp = QParams::new(0.1, 77).unwrap();
    let w: Vec<i8> = (0..27).map(|i| i as i8 * 9 - 100).collect();
    let bias = [0.5, -1.25, 3.0];
    let weights = ConvWeights {
        data: &w,
        scales: &[0.3, 0.2, 0.1],
        bias: Some(&bias),
    };
    let input = vec![77u8; geom.input.len()];
    let out = reference_f32(&geom, &input, qp, &weights);
    for (i, y) in out.iter().enumerate() {
        assert_eq!(*y, bias[i % 3], "output {i}");
    }
}

#[test]
fn reference_conv_matches_a_hand_computed_grouped_case() {
    // 1 image, 1x3 pixels, 2 input channels, groups 2, channel multiplier 2 (4 outputs),
    // kernel 1x2, stride 1, right padding 1: output channel oc reads input channel oc / 2.
    let geom = ConvGeometry::new(Nhwc::new(1, 1, 3, 2), 4, [1, 2])
        .with_groups(2)
        .with_padding(Padding::new(0, 0, 0, 1));
    let qp = QParams::new(1.0, 10).unwrap();
    let input = [11u8, 20, 12, 30, 13, 40]; // channel 0: 1, 2, 3; channel 1: 10, 20, 30 (real)
    let w = [1i8, 2, -1, 1, 3, 0, 0, -2]; // [oc][kw]
    let weights = ConvWeights {
        data: &w,
        scales: &[1.0; 4],
        bias: None,
    };
    let out = reference_f32(&geom, &input, qp, &weights);
    #[rustfmt::skip]
    let want = [
        1.0 + 2.0 * 2.0, -1.0 + 2.0, 3.0 * 10.0, -2.0 * 20.0,   // x = 0
        2.0 + 2.0 * 3.0, -2.0 + 3.0, 3.0 * 20.0, -2.0 * 30.0,   // x = 1
        3.0, -3.0, 3.0 * 30.0, 0.0,                               // x = 2: right tap is padding
    ];
    assert_eq!(out, want);
}

#[test]
fn depthwise_is_thread_count_invariant() {
    let geom = depthwise(Nhwc::new(2, 28, 28, 96), [5, 5])
        .with_stride([2, 2])
        .with_padding(Padding::uniform(2));
    Case::new(geom, 9).check_thread_count_invariant("depthwise threads");
}

#[test]
fn bad_conv_arguments_are_errors() {
    let geom = depthwise(Nhwc::new(1, 4, 4, 8), [3, 3]).with_padding(Padding::uniform(1));
    let w = vec![1i8; 72];
    let scales = vec![0.1f32; 8];
    let qp = QParams::new(0.5, 3).unwrap();
    let input = vec![0u8; 128];
    for tier in tiers("bad conv arguments") {
        let ok = ConvWeights {
            data: &w,
            scales: &scales,
            bias: None,
        };
        let rejects = |geom: &ConvGeometry, weights: ConvWeights<'_>| {
            PackedConvWeights::new(tier, geom, &weights).is_err()
        };
        assert!(rejects(
            &geom,
            ConvWeights {
                data: &w[1..],
                ..ok
            }
        ));
        assert!(rejects(
            &geom,
            ConvWeights {
                scales: &scales[1..],
                ..ok
            }
        ));
        assert!(rejects(
            &geom,
            ConvWeights {
                scales: &[f32::NAN; 8],
                ..ok
            }
        ));
        assert!(rejects(&geom.with_stride([0, 1]), ok));
        assert!(rejects(&geom.with_groups(3), ok));
        let big = depthwise(Nhwc::new(1, 2, 2, 8), [5, 5]);
        assert!(rejects(
            &big,
            ConvWeights {
                data: &[0; 200],
                ..ok
            }
        ));
        let packed = PackedConvWeights::new(tier, &geom, &ok).unwrap();
        let epi = ConvEpilogue::default();
        let mut out = vec![0u8; 128];
        fn u8_out(data: &mut [u8]) -> ConvOutput<'_> {
            ConvOutput::U8 {
                data,
                qparams: QParams {
                    scale: 0.5,
                    zero_point: 3,
                },
            }
        }
        assert!(conv2d(tier, &packed, &input[1..], qp, &epi, u8_out(&mut out)).is_err());
        assert!(conv2d(tier, &packed, &input, qp, &epi, u8_out(&mut out[1..])).is_err());
        let short = ConvEpilogue {
            residual: Some(Residual {
                data: &input[1..],
                qparams: qp,
            }),
            ..epi
        };
        assert!(conv2d(tier, &packed, &input, qp, &short, u8_out(&mut out)).is_err());
        let bad_act = ConvEpilogue {
            activation: Activation::Clamp { min: 1.0, max: 0.0 },
            ..epi
        };
        assert!(conv2d(tier, &packed, &input, qp, &bad_act, u8_out(&mut out)).is_err());
        let other = if tier == Tier::Scalar {
            Tier::Avx2
        } else {
            Tier::Scalar
        };
        assert!(matches!(
            conv2d(other, &packed, &input, qp, &epi, u8_out(&mut out)),
            Err(Error::TierMismatch { .. })
        ));
    }
}
