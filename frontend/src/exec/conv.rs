//! 2-D convolution in NCHW: per image and group, `out[OC, OH*OW] = W[OC, C*KH*KW] x
//! col[C*KH*KW, OH*OW]` with `col` from im2col (or the input itself for 1x1, stride 1,
//! unpadded kernels), bias pre-filled so the GEMM accumulates onto it.

use rayon::prelude::*;

use super::matmul::{Operand, gemm, par};
use crate::ir::{Conv, Resolved};

/// Geometry of one convolution call.
pub(crate) struct ConvShape {
    pub batch: usize,
    pub in_channels: usize,
    pub in_hw: [usize; 2],
    pub out_channels: usize,
    pub resolved: Resolved,
}

/// Computes the convolution into `out` (`[N, OC, OH, OW]`).
pub(crate) fn conv2d(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    conv: &Conv,
    s: &ConvShape,
    out: &mut [f32],
    threads: usize,
) {
    let [h, wd] = s.in_hw;
    let [oh, ow] = s.resolved.output;
    let g = conv.groups;
    let (icg, ocg) = (s.in_channels / g, s.out_channels / g);
    let [kh, kw] = conv.window.kernel;
    let k = icg * kh * kw;
    let pointwise = kh == 1
        && kw == 1
        && conv.window.strides == [1, 1]
        && s.resolved.pad_begin == [0, 0]
        && [oh, ow] == [h, wd];
    let in_img = s.in_channels * h * wd;
    let out_img = s.out_channels * oh * ow;
    let col_len = if pointwise { 0 } else { k * oh * ow };
    let image = |n: usize, out_n: &mut [f32], col: &mut Vec<f32>, inner_threads: usize| {
        let x_n = &x[n * in_img..(n + 1) * in_img];
        for gi in 0..g {
            let x_g = &x_n[gi * icg * h * wd..(gi + 1) * icg * h * wd];
            let rhs = if pointwise {
                x_g
            } else {
                col.resize(col_len, 0.0);
                im2col(x_g, icg, s.in_hw, conv, &s.resolved, col, inner_threads);
                &col[..]
            };
            let dst = &mut out_n[gi * ocg * oh * ow..(gi + 1) * ocg * oh * ow];
            if let Some(b) = bias {
                for (row, &bv) in dst
                    .chunks_exact_mut(oh * ow)
                    .zip(&b[gi * ocg..(gi + 1) * ocg])
                {
                    row.fill(bv);
                }
            }
            let lhs = Operand::new(&w[gi * ocg * k..(gi + 1) * ocg * k], ocg, k);
            gemm(
                dst,
                ocg,
                oh * ow,
                lhs,
                Operand::new(rhs, k, oh * ow),
                1.0,
                bias.is_some(),
                par(inner_threads),
            );
        }
    };
    if threads > 1 && s.batch > 1 {
        out.par_chunks_mut(out_img)
            .enumerate()
            .for_each_init(Vec::new, |col, (n, out_n)| image(n, out_n, col, 1));
    } else {
        let mut col = Vec::new();
        for (n, out_n) in out.chunks_exact_mut(out_img).enumerate() {
            image(n, out_n, &mut col, threads);
        }
    }
}

/// Unfolds one image group `x [C, H, W]` into `col [C*KH*KW, OH*OW]`; padded taps are 0.
fn im2col(
    x: &[f32],
    channels: usize,
    hw: [usize; 2],
    conv: &Conv,
    r: &Resolved,
    col: &mut [f32],
    threads: usize,
) {
    let [h, w] = hw;
    let [kh, kw] = conv.window.kernel;
    let [sh, sw] = conv.window.strides;
    let [dh, dw] = conv.window.dilations;
    let [oh, ow] = r.output;
    let [ph, pw] = r.pad_begin;
    let per_channel = kh * kw * oh * ow;
    let fill = |c: usize, dst: &mut [f32]| {
        let plane = &x[c * h * w..(c + 1) * h * w];
        for ky in 0..kh {
            for kx in 0..kw {
                let row = &mut dst[(ky * kw + kx) * oh * ow..(ky * kw + kx + 1) * oh * ow];
                let x_off = (kx * dw) as isize - pw as isize;
                // Output columns whose input column lies inside [0, w).
                let first = if x_off >= 0 {
                    0
                } else {
                    ((-x_off) as usize).div_ceil(sw)
                };
                let last = if (w as isize) <= x_off {
                    0
                } else {
                    ((w as isize - x_off - 1) as usize / sw + 1).min(ow)
                };
                for oy in 0..oh {
                    let out_row = &mut row[oy * ow..(oy + 1) * ow];
                    let iy = (oy * sh + ky * dh) as isize - ph as isize;
                    if iy < 0 || iy >= h as isize || first >= last {
                        out_row.fill(0.0);
                        continue;
                    }
                    let src = &plane[iy as usize * w..(iy as usize + 1) * w];
                    out_row[..first].fill(0.0);
                    out_row[last..].fill(0.0);
                    let start = (first * sw) as isize + x_off;
                    if sw == 1 {
                        let s0 = start as usize;
                        out_row[first..last].copy_from_slice(&src[s0..s0 + (last - first)]);
                    } else {
                        for (j, o) in out_row[first..last].iter_mut().enumerate() {
                            *o = src[(start + (j * sw) as isize) as usize];
                        }
                    }
                }
            }
        }
    };
    if threads > 1 {
        col.par_chunks_mut(per_channel)
            .enumerate()
            .for_each(|(c, dst)| fill(c, dst));
    } else {
        for (c, dst) in col.chunks_mut(per_channel).enumerate().take(channels) {
            fill(c, dst);
        }
    }
}
