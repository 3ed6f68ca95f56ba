//! The int8 ops on every available tier, bit for bit against the scalar reference, plus
//! hand-computed cases pinning the reference itself to `int8-math.md` and PyTorch rules.

mod ops_support;

use ops_support::{Rng, edge_size, tiers};
use proptest::prelude::*;
use q8_kernels::conv::{Nhwc, Padding};
use q8_kernels::ops::{self, AddParams, ConcatInput, Pool2d};
use q8_kernels::quant::{dequantize as dq1, quantize as q1};
use q8_kernels::{QParams, Tier, reference};

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(48)
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn quantize_matches_reference(len in edge_size(300), seed: u64) {
        let mut rng = Rng::new(seed);
        let qp = rng.qparams();
        let x = rng.f32s(len, qp.scale);
        let mut want = vec![0u8; len];
        reference::ops::quantize(&x, qp, &mut want).unwrap();
        for (i, (&v, &w)) in x.iter().zip(&want).enumerate() {
            prop_assert_eq!(w, q1(v, qp.inv_scale(), qp.zero_point), "element {}", i);
        }
        for tier in tiers("quantize") {
            let mut got = vec![0u8; len];
            ops::quantize(tier, &x, qp, &mut got).unwrap();
            prop_assert_eq!(&got, &want, "tier {}", tier);
        }
    }

    #[test]
    fn quantize_nchw_matches_reference(
        n in 1usize..3, h in 1usize..6, w in edge_size(40), c in 1usize..6, seed: u64,
    ) {
        let mut rng = Rng::new(seed);
        let qp = rng.qparams();
        let shape = Nhwc::new(n, h, w, c);
        let x = rng.f32s(shape.len(), qp.scale);
        let mut want = vec![0u8; shape.len()];
        reference::ops::quantize_nchw(&x, shape, qp, &mut want).unwrap();
        // NHWC element (n, y, x, c) comes from NCHW element (n, c, y, x).
        let at = |b: usize, y: usize, xx: usize, ch: usize| x[((b * c + ch) * h + y) * w + xx];
        prop_assert_eq!(want[shape.len() - 1],
            q1(at(n - 1, h - 1, w - 1, c - 1), qp.inv_scale(), qp.zero_point));
        prop_assert_eq!(want[c - 1], q1(at(0, 0, 0, c - 1), qp.inv_scale(), qp.zero_point));
        for tier in tiers("quantize_nchw") {
            let mut got = vec![0u8; shape.len()];
            ops::quantize_nchw(tier, &x, shape, qp, &mut got).unwrap();
            prop_assert_eq!(&got, &want, "tier {}", tier);
        }
    }

    #[test]
    fn dequantize_and_requantize_match_reference(len in edge_size(300), seed: u64) {
        let mut rng = Rng::new(seed);
        let (from, to) = (rng.qparams(), rng.qparams());
        let q = rng.u8s(len);
        let mut want_f = vec![0f32; len];
        reference::ops::dequantize(&q, from, &mut want_f).unwrap();
        let mut want_q = vec![0u8; len];
        reference::ops::requantize(&q, from, to, &mut want_q).unwrap();
        for i in 0..len {
            prop_assert_eq!(want_f[i].to_bits(), dq1(q[i], from).to_bits());
            prop_assert_eq!(want_q[i], q1(dq1(q[i], from), to.inv_scale(), to.zero_point));
        }
        for tier in tiers("dequantize/requantize") {
            let mut got_f = vec![0f32; len];
            ops::dequantize(tier, &q, from, &mut got_f).unwrap();
            prop_assert_eq!(bits(&got_f), bits(&want_f), "tier {}", tier);
            let mut got_q = vec![0u8; len];
            ops::requantize(tier, &q, from, to, &mut got_q).unwrap();
            prop_assert_eq!(&got_q, &want_q, "tier {}", tier);
        }
    }

    #[test]
    fn add_matches_reference(len in edge_size(300), relu: bool, seed: u64) {
        let mut rng = Rng::new(seed);
        let params = AddParams { a: rng.qparams(), b: rng.qparams(), out: rng.qparams(), relu };
        let (a, b) = (rng.u8s(len), rng.u8s(len));
        let mut want = vec![0u8; len];
        reference::ops::add(&a, &b, &params, &mut want).unwrap();
        for tier in tiers("add") {
            let mut got = vec![0u8; len];
            ops::add(tier, &a, &b, &params, &mut got).unwrap();
            prop_assert_eq!(&got, &want, "tier {}", tier);
        }
    }

    #[test]
    fn concat_matches_reference(
        channels in prop::collection::vec(edge_size(70), 1..4), pixels in 1usize..20, seed: u64,
    ) {
        let mut rng = Rng::new(seed);
        let out_qp = rng.qparams();
        let data: Vec<(Vec<u8>, QParams)> = channels
            .iter()
            .map(|&c| {
                let qp = if rng.below(2) == 0 { out_qp } else { rng.qparams() };
                (rng.u8s(c * pixels), qp)
            })
            .collect();
        let inputs: Vec<ConcatInput> = data
            .iter()
            .zip(&channels)
            .map(|((d, qp), &c)| ConcatInput { data: d, channels: c, qparams: *qp })
            .collect();
        let total: usize = channels.iter().sum();
        let mut want = vec![0u8; pixels * total];
        reference::ops::concat_channels(&inputs, pixels, out_qp, &mut want).unwrap();
        // Pixel-wise definition: copy or requantize each input's channels in order.
        let mut offset = 0;
        for input in &inputs {
            for p in 0..pixels {
                for ch in 0..input.channels {
                    let q = input.data[p * input.channels + ch];
                    let expect = if input.qparams == out_qp {
                        q
                    } else {
                        q1(dq1(q, input.qparams), out_qp.inv_scale(), out_qp.zero_point)
                    };
                    prop_assert_eq!(want[p * total + offset + ch], expect);
                }
            }
            offset += input.channels;
        }
        for tier in tiers("concat") {
            let mut got = vec![0u8; pixels * total];
            ops::concat_channels(tier, &inputs, pixels, out_qp, &mut got).unwrap();
            prop_assert_eq!(&got, &want, "tier {}", tier);
        }
    }

    #[test]
    fn pools_match_reference(
        n in 1usize..3, h in 1usize..10, w in 1usize..10, c in edge_size(70),
        kernel in (1usize..5, 1usize..5), stride in (1usize..4, 1usize..4),
        dilation in (1usize..3, 1usize..3), pads in (0usize..3, 0usize..3, 0usize..3, 0usize..3),
        ceil_mode: bool, include_pad: bool, seed: u64,
    ) {
        let mut rng = Rng::new(seed);
        let shape = Nhwc::new(n, h, w, c);
        let pool = Pool2d::new([kernel.0, kernel.1], [stride.0, stride.1])
            .with_dilation([dilation.0, dilation.1])
            .with_padding(Padding::new(pads.0, pads.1, pads.2, pads.3))
            .with_ceil_mode(ceil_mode);
        let qp = rng.qparams();
        let x = rng.u8s(shape.len());
        let out_shape = match pool.output(shape) {
            Ok(s) => s,
            Err(_) => {
                // Invalid geometry: every tier must refuse it, never panic.
                for tier in tiers("pool") {
                    let mut out = vec![0u8; 16];
                    prop_assert!(ops::max_pool(tier, &x, shape, &pool, &mut out).is_err());
                    prop_assert!(ops::avg_pool(tier, &x, shape, &pool, include_pad, qp, &mut out).is_err());
                }
                return Ok(());
            }
        };
        let mut want_max = vec![0u8; out_shape.len()];
        reference::ops::max_pool(&x, shape, &pool, &mut want_max).unwrap();
        let mut want_avg = vec![0u8; out_shape.len()];
        reference::ops::avg_pool(&x, shape, &pool, include_pad, qp, &mut want_avg).unwrap();
        for tier in tiers("pool") {
            let mut got = vec![0u8; out_shape.len()];
            ops::max_pool(tier, &x, shape, &pool, &mut got).unwrap();
            prop_assert_eq!(&got, &want_max, "max pool, tier {}", tier);
            ops::avg_pool(tier, &x, shape, &pool, include_pad, qp, &mut got).unwrap();
            prop_assert_eq!(&got, &want_avg, "avg pool, tier {}", tier);
        }
    }

    #[test]
    fn global_avg_pool_matches_reference(
        n in 1usize..3, h in 1usize..12, w in 1usize..12, c in edge_size(140), seed: u64,
    ) {
        let mut rng = Rng::new(seed);
        let shape = Nhwc::new(n, h, w, c);
        let qp = rng.qparams();
        let x = rng.u8s(shape.len());
        let mut want = vec![0u8; n * c];
        reference::ops::global_avg_pool(&x, shape, qp, &mut want).unwrap();
        for tier in tiers("global_avg_pool") {
            let mut got = vec![0u8; n * c];
            ops::global_avg_pool(tier, &x, shape, qp, &mut got).unwrap();
            prop_assert_eq!(&got, &want, "tier {}", tier);
        }
    }
}

#[test]
fn ceil_mode_follows_pytorch() {
    let ceil_h = |size: usize| {
        let s = Nhwc::new(1, size, size, 1);
        Pool2d::new([3, 3], [2, 2])
            .with_ceil_mode(true)
            .output(s)
            .unwrap()
            .h
    };
    // torch.nn.MaxPool2d(3, 2, ceil_mode=True) on 112 -> 56; floor -> 55 without padding.
    assert_eq!(ceil_h(112), 56);
    let s = Nhwc::new(1, 112, 112, 1);
    assert_eq!(Pool2d::new([3, 3], [2, 2]).output(s).unwrap().h, 55);
    // GoogLeNet-style 3x3 s2 ceil on 57: (57-3)/2 = 27 exactly -> 28 either way.
    assert_eq!(ceil_h(57), 28);
    // Input 5, k 2, s 2, pad 1: ceil gives 4 windows but the 4th starts in the right padding.
    let s = Nhwc::new(1, 5, 5, 1);
    let pool = Pool2d::new([2, 2], [2, 2])
        .with_padding(Padding::uniform(1))
        .with_ceil_mode(true);
    assert_eq!(pool.output(s).unwrap().h, 3);
}

#[test]
fn average_pool_counts_follow_pytorch() {
    // One channel, 3x3 input of real values 1..9 (scale 1, zp 0), 2x2 window, stride 2,
    // padding 1, ceil mode: outputs cover windows clipped at the borders.
    let qp = QParams::new(1.0, 0).unwrap();
    let x: Vec<u8> = (1..=9).collect();
    let shape = Nhwc::new(1, 3, 3, 1);
    let pool = Pool2d::new([2, 2], [2, 2]).with_padding(Padding::uniform(1));
    let mut out = vec![0u8; 4];
    // count_include_pad: every window has 4 taps. Top-left = 1/4 -> 0; top-right
    // (2+3)/4 = 1.25 -> 1; bottom-left (4+7)/4 = 2.75 -> 3; bottom-right (5+6+8+9)/4 = 7.
    reference::ops::avg_pool(&x, shape, &pool, true, qp, &mut out).unwrap();
    assert_eq!(out, [0, 1, 3, 7]);
    // exclude pad: 1/1, 5/2 = 2.5 -> 2 (ties to even), 11/2 = 5.5 -> 6, 28/4 = 7.
    reference::ops::avg_pool(&x, shape, &pool, false, qp, &mut out).unwrap();
    assert_eq!(out, [1, 2, 6, 7]);
    // Ceil-mode overhang beyond the padding is not counted even with count_include_pad:
    // 3 wide, k 2, s 2, no padding, ceil -> 2 windows; the second covers column 2 only.
    let pool = Pool2d::new([1, 2], [1, 2]).with_ceil_mode(true);
    let mut out = vec![0u8; 6];
    reference::ops::avg_pool(&x, shape, &pool, true, qp, &mut out).unwrap();
    assert_eq!(out, [2, 3, 4, 6, 8, 9]); // (1+2)/2 = 1.5 -> 2, 3/1; (4+5)/2 = 4.5 -> 4, ...
}

#[test]
fn max_pool_ignores_padding_even_below_zero_point() {
    // Real values are all negative (codes below the zero point); padding must not win.
    let x = [3u8, 5, 7, 9];
    let mut out = [0u8; 9];
    let pool = Pool2d::new([2, 2], [1, 1]).with_padding(Padding::uniform(1));
    for tier in tiers("max_pool padding") {
        ops::max_pool(tier, &x, Nhwc::new(1, 2, 2, 1), &pool, &mut out).unwrap();
        assert_eq!(out, [3, 5, 5, 7, 9, 9, 7, 9, 9], "tier {tier}");
    }
}

#[test]
fn bad_arguments_are_errors() {
    let qp = QParams::new(1.0, 0).unwrap();
    let shape = Nhwc::new(1, 4, 4, 3);
    let x = vec![0u8; shape.len()];
    let pool = Pool2d::new([2, 2], [2, 2]);
    for tier in tiers("bad arguments") {
        let mut short = vec![0u8; 3];
        assert!(ops::max_pool(tier, &x, shape, &pool, &mut short).is_err());
        assert!(ops::max_pool(tier, &x[1..], shape, &pool, &mut [0; 12]).is_err());
        assert!(
            ops::avg_pool(
                tier,
                &x,
                shape,
                &Pool2d::new([5, 5], [1, 1]),
                true,
                qp,
                &mut short
            )
            .is_err()
        );
        assert!(ops::max_pool(tier, &x, shape, &Pool2d::new([2, 2], [0, 1]), &mut short).is_err());
        // A window that covers only padding.
        let lonely = Pool2d::new([1, 1], [1, 1]).with_padding(Padding::uniform(1));
        assert!(ops::max_pool(tier, &x, shape, &lonely, &mut [0; 108]).is_err());
        assert!(ops::global_avg_pool(tier, &x, shape, qp, &mut short[..2]).is_err());
        assert!(ops::quantize(tier, &[1.0, 2.0], qp, &mut short).is_err());
        assert!(ops::quantize_nchw(tier, &[1.0; 48], shape, qp, &mut short).is_err());
        assert!(ops::dequantize(tier, &x, qp, &mut [0.0; 3]).is_err());
        assert!(
            ops::requantize(
                tier,
                &x,
                qp,
                QParams {
                    scale: 0.0,
                    zero_point: 0
                },
                &mut [0; 48]
            )
            .is_err()
        );
        let p = AddParams {
            a: qp,
            b: qp,
            out: qp,
            relu: false,
        };
        assert!(ops::add(tier, &x, &x[1..], &p, &mut [0; 48]).is_err());
        let input = ConcatInput {
            data: &x,
            channels: 3,
            qparams: qp,
        };
        assert!(ops::concat_channels(tier, &[input], 15, qp, &mut [0; 45]).is_err());
        assert!(ops::concat_channels(tier, &[], 16, qp, &mut []).is_err());
        let zero = ConcatInput {
            data: &[],
            channels: 0,
            qparams: qp,
        };
        assert!(ops::concat_channels(tier, &[zero], 16, qp, &mut []).is_err());
    }
}

#[test]
fn results_do_not_depend_on_thread_count() {
    // Large enough to be split across threads.
    let mut rng = Rng::new(7);
    let qp = rng.qparams();
    let shape = Nhwc::new(2, 56, 56, 64);
    let x = rng.u8s(shape.len());
    let f = rng.f32s(shape.len(), qp.scale);
    let pool = Pool2d::new([3, 3], [2, 2]).with_padding(Padding::uniform(1));
    let run = |threads: usize, tier: Tier| {
        let pool_threads = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool_threads.install(|| {
            let mut q = vec![0u8; shape.len()];
            ops::quantize(tier, &f, qp, &mut q).unwrap();
            let mut m = vec![0u8; shape.len() / 4];
            ops::max_pool(tier, &x, shape, &pool, &mut m).unwrap();
            let p = AddParams {
                a: qp,
                b: qp,
                out: qp,
                relu: true,
            };
            let mut a = vec![0u8; shape.len()];
            ops::add(tier, &x, &q, &p, &mut a).unwrap();
            (q, m, a)
        })
    };
    for tier in tiers("thread invariance") {
        let one = run(1, tier);
        assert_eq!(one, run(2, tier), "tier {tier}");
        assert_eq!(one, run(5, tier), "tier {tier}");
    }
}
