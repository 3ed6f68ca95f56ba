//! General int8 convolution (1x1 in place, k x k implicit GEMM, grouped) on every available
//! tier, bit for bit against the reference conv; ResNet-18 layer shapes as named cases.

mod ops_support;

use ops_support::{Case, check_geometry};
use proptest::prelude::*;
use q8_kernels::conv::{ConvGeometry, Nhwc, Padding};

/// Channel counts with the 4-byte K group and 16-column panel edges forced in.
fn channels() -> impl Strategy<Value = usize> {
    prop_oneof![
        proptest::sample::select(vec![1usize, 3, 4, 5, 15, 16, 17, 32, 33]),
        1usize..24
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn conv_matches_reference_on_every_tier(
        n in 1usize..3, h in 1usize..10, w in 1usize..10,
        c_in in channels(), c_out in channels(), group_kind in 0usize..3,
        kernel in (1usize..8, 1usize..8), stride in (1usize..4, 1usize..4),
        dilation in (1usize..3, 1usize..3), pads in (0usize..4, 0usize..4, 0usize..4, 0usize..4),
        seed: u64,
    ) {
        // groups 1, 2 or C_in (depthwise with a channel multiplier when C_out = m * C_in).
        let (groups, c_in, c_out) = match group_kind {
            0 => (1, c_in, c_out),
            1 => (2, c_in.next_multiple_of(2), c_out.next_multiple_of(2)),
            _ => (c_in, c_in, c_in * (1 + c_out % 3)),
        };
        let geom = ConvGeometry::new(Nhwc::new(n, h, w, c_in), c_out, [kernel.0, kernel.1])
            .with_stride([stride.0, stride.1])
            .with_dilation([dilation.0, dilation.1])
            .with_padding(Padding::new(pads.0, pads.1, pads.2, pads.3))
            .with_groups(groups);
        check_geometry(geom, seed, "conv");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Stride 1, one group, C_in a multiple of 64: the AMX tier's direct convolution (tiles
    /// reading a padded copy of the input), with rows past the output's width, partial
    /// 32-row groups, dilation and asymmetric padding; the other tiers run implicit GEMM.
    #[test]
    fn direct_conv_geometries_match_reference(
        n in 1usize..3, h in 1usize..12, w in 1usize..20,
        c_in in proptest::sample::select(vec![64usize, 128, 192]),
        c_out in proptest::sample::select(vec![1usize, 16, 17, 31, 32, 33, 64, 65, 100]),
        kernel in (1usize..5, 1usize..5), dilation in (1usize..3, 1usize..3),
        pads in (0usize..3, 0usize..3, 0usize..3, 0usize..3), seed: u64,
    ) {
        let geom = ConvGeometry::new(Nhwc::new(n, h, w, c_in), c_out, [kernel.0, kernel.1])
            .with_dilation([dilation.0, dilation.1])
            .with_padding(Padding::new(pads.0, pads.1, pads.2, pads.3));
        check_geometry(geom, seed, "direct conv");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Stride-2 stems (7x7 or 8x8 on 1..=4 channels): the AMX tier's space-to-depth direct
    /// convolution, with odd sizes, asymmetric padding and images smaller than the kernel.
    #[test]
    fn stem_geometries_match_reference(
        n in 1usize..3, h in 1usize..40, w in 1usize..40, c_in in 1usize..=4,
        c_out in proptest::sample::select(vec![1usize, 16, 17, 32, 64, 65]),
        kernel in (7usize..=8, 7usize..=8), pads in (0usize..5, 0usize..5, 0usize..5, 0usize..5),
        seed: u64,
    ) {
        let geom = ConvGeometry::new(Nhwc::new(n, h, w, c_in), c_out, [kernel.0, kernel.1])
            .with_stride([2, 2])
            .with_padding(Padding::new(pads.0, pads.1, pads.2, pads.3));
        check_geometry(geom, seed, "stem conv");
    }
}

/// ResNet-18 conv shapes (smaller images where the scalar reference would be slow).
#[test]
fn resnet18_layer_shapes() {
    let layers = [
        ("stem 7x7 s2", Nhwc::new(1, 64, 64, 3), 64, 7, 2, 3),
        ("3x3 64", Nhwc::new(1, 14, 14, 64), 64, 3, 1, 1),
        ("3x3 s2 64->128", Nhwc::new(1, 14, 14, 64), 128, 3, 2, 1),
        ("1x1 s2 64->128", Nhwc::new(2, 14, 14, 64), 128, 1, 2, 0),
        ("1x1 s1 256->512", Nhwc::new(1, 7, 7, 256), 512, 1, 1, 0),
        ("3x3 512", Nhwc::new(1, 7, 7, 512), 512, 3, 1, 1),
    ];
    // The 1x1 in-place path with groups: random geometries almost never draw kernel 1x1 with
    // zero padding, so the per-group channel offsets are pinned here (incl. multiplier 2).
    for (i, (name, input, c_out, groups, stride)) in [
        ("1x1 groups 2", Nhwc::new(2, 5, 6, 8), 12, 2, 1),
        ("1x1 s2 groups 4", Nhwc::new(1, 9, 7, 16), 8, 4, 2),
        ("1x1 depthwise x2", Nhwc::new(1, 4, 5, 17), 34, 17, 1),
    ]
    .into_iter()
    .enumerate()
    {
        let geom = ConvGeometry::new(input, c_out, [1, 1])
            .with_stride([stride, stride])
            .with_groups(groups);
        Case::new(geom, 900 + i as u64).check_all_tiers(name);
    }
    for (i, (name, input, c_out, k, s, p)) in layers.into_iter().enumerate() {
        let geom = ConvGeometry::new(input, c_out, [k, k])
            .with_stride([s, s])
            .with_padding(Padding::uniform(p));
        Case::new(geom, 500 + i as u64).check_all_tiers(name);
    }
}

#[test]
fn conv_is_thread_count_invariant() {
    let geom = ConvGeometry::new(Nhwc::new(2, 20, 20, 32), 48, [3, 3])
        .with_stride([1, 2])
        .with_padding(Padding::new(1, 0, 2, 1));
    Case::new(geom, 77).check_thread_count_invariant("conv threads");
    // The AMX direct convolution: row jobs of one image, and columns split across threads.
    for (i, (input, c_out)) in [
        (Nhwc::new(1, 30, 30, 64), 64),
        (Nhwc::new(1, 3, 3, 128), 96),
    ]
    .into_iter()
    .enumerate()
    {
        let geom = ConvGeometry::new(input, c_out, [3, 3]).with_padding(Padding::uniform(1));
        Case::new(geom, 78 + i as u64).check_thread_count_invariant("direct conv threads");
    }
}
