//! The stride-2 stem (a 7x7 or 8x8 kernel on at most 4 channels, as in ResNet) as a
//! stride-1 4x4 convolution on a space-to-depth copy of its padded input, so the AMX tiles
//! read it directly (`direct`) instead of gathering 147-byte receptive fields.
//!
//! With `P` the zero-point padded input, output `(y, x)` sums `w[kh][kw][c] · P(2y + kh,
//! 2x + kw, c)`. Writing `kh = 2a + p`, `kw = 2b + q` (`a, b < 4`, `p, q < 2`), that is
//! `w'[a][b][(2p + q)·C + c] · S(y + a, x + b, (2p + q)·C + c)` with
//! `S(u, v, (2p + q)·C + c) = P(2u + p, 2v + q, c)`, and `w'` zero where `2a + p >= KH` or
//! `2b + q >= KW`. `S` has [`S2D_CHANNELS`] channels (the unused ones hold the zero point
//! and meet zero weights), so one 4-pixel kernel row of `S` is exactly one 64-byte K step.

use crate::conv::{ConvGeometry, Nhwc};

/// Channels of the space-to-depth image: 4 sub-pixels x up to 4 input channels.
const S2D_CHANNELS: usize = 16;
/// Kernel size of the transformed convolution.
const S2D_KERNEL: usize = 4;

/// Whether `geom` is a stem this transform handles.
pub(crate) fn eligible(geom: &ConvGeometry) -> bool {
    let [kh, kw] = geom.kernel;
    geom.stride == [2, 2]
        && geom.dilation == [1, 1]
        && geom.groups == 1
        && 4 * geom.input.c <= S2D_CHANNELS
        && (7..=8).contains(&kh)
        && (7..=8).contains(&kw)
}

/// The stride-1, unpadded geometry on the space-to-depth image of `geom`'s padded input,
/// for a valid `geom` (`out` is its output shape): the same output.
pub(crate) fn transformed(geom: &ConvGeometry, out: Nhwc) -> ConvGeometry {
    let input = Nhwc::new(
        geom.input.n,
        out.h + S2D_KERNEL - 1,
        out.w + S2D_KERNEL - 1,
        S2D_CHANNELS,
    );
    ConvGeometry::new(input, geom.out_channels, [S2D_KERNEL, S2D_KERNEL])
}

/// `[C_out][KH][KW][C]` weights of an [`eligible`] `geom` as the `[C_out][4][4][16]` weights
/// of [`transformed`].
pub(crate) fn weights(geom: &ConvGeometry, w: &[i8]) -> Vec<i8> {
    let ([kh, kw], c) = (geom.kernel, geom.input.c);
    let per_out = S2D_KERNEL * S2D_KERNEL * S2D_CHANNELS;
    let mut out = vec![0i8; geom.out_channels * per_out];
    for (o, dst) in out.chunks_exact_mut(per_out).enumerate() {
        let src = &w[o * kh * kw * c..][..kh * kw * c];
        for (y, x) in (0..kh).flat_map(|y| (0..kw).map(move |x| (y, x))) {
            let (a, p, b, q) = (y / 2, y % 2, x / 2, x % 2);
            let at = ((a * S2D_KERNEL + b) * S2D_CHANNELS) + (2 * p + q) * c;
            dst[at..at + c].copy_from_slice(&src[(y * kw + x) * c..][..c]);
        }
    }
    out
}

/// Writes image `n` of `input` (u8 NHWC, `geom.input`) into `dst`, one space-to-depth image
/// of [`transformed`] (rows of `s_w` pixels) that holds the zero point everywhere on entry.
pub(crate) fn fill_image(geom: &ConvGeometry, s_w: usize, input: &[u8], n: usize, dst: &mut [u8]) {
    let (i, pad) = (geom.input, geom.padding);
    let image = &input[n * i.h * i.w * i.c..][..i.h * i.w * i.c];
    for (u, s_line) in dst.chunks_exact_mut(s_w * S2D_CHANNELS).enumerate() {
        for p in 0..2 {
            let Some(row) = (2 * u + p).checked_sub(pad.top).filter(|&r| r < i.h) else {
                continue;
            };
            let src = &image[row * i.w * i.c..][..i.w * i.c];
            for (v, px) in s_line.chunks_exact_mut(S2D_CHANNELS).enumerate() {
                for q in 0..2 {
                    let Some(col) = (2 * v + q).checked_sub(pad.left).filter(|&c| c < i.w) else {
                        continue;
                    };
                    let at = (2 * p + q) * i.c;
                    px[at..at + i.c].copy_from_slice(&src[col * i.c..][..i.c]);
                }
            }
        }
    }
}
