//! 2-D convolution in NCHW as GEMM: for a chunk of images and one group,
//! `out[OC, imgs*OH*OW] = W[OC, C*KH*KW] x col[C*KH*KW, imgs*OH*OW]`, `col` from im2col.
//!
//! Small feature maps are batched (several images side by side in `col`) so every GEMM has
//! at least [`TARGET_COLUMNS`] columns; a single image with a 1x1, stride-1, unpadded kernel
//! uses its input as `col` directly. Bias is pre-filled so the GEMM accumulates onto it.

use rayon::prelude::*;

use super::matmul::{Operand, gemm};
use crate::ir::{Conv, Resolved};

/// GEMM width (output pixels) a chunk of images aims for.
const TARGET_COLUMNS: usize = 1024;

/// Size (elements) an im2col block of one image aims for: 512 KiB, within L2.
const COL_BLOCK_ELEMENTS: usize = 128 * 1024;

/// Geometry of one convolution call.
pub(crate) struct ConvShape {
    pub batch: usize,
    pub in_channels: usize,
    pub in_hw: [usize; 2],
    pub out_channels: usize,
    pub resolved: Resolved,
}

/// Scratch buffers of one worker.
#[derive(Default)]
struct Scratch {
    col: Vec<f32>,
    out: Vec<f32>,
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
    let pixels = oh * ow;
    let in_img = s.in_channels * h * wd;
    let out_img = s.out_channels * pixels;
    let per_chunk = TARGET_COLUMNS.div_ceil(pixels).clamp(1, s.batch.max(1));
    let chunks = s.batch.div_ceil(per_chunk);
    let run = |first: usize, out_chunk: &mut [f32], scratch: &mut Scratch, inner: usize| {
        let imgs = out_chunk.len() / out_img;
        let x_chunk = &x[first * in_img..(first + imgs) * in_img];
        conv_chunk(x_chunk, imgs, w, bias, conv, s, out_chunk, scratch, inner);
    };
    if threads > 1 && chunks >= threads {
        out.par_chunks_mut(per_chunk * out_img)
            .enumerate()
            .for_each_init(Scratch::default, |scratch, (i, o)| {
                run(i * per_chunk, o, scratch, 1)
            });
    } else {
        let mut scratch = Scratch::default();
        for (i, o) in out.chunks_mut(per_chunk * out_img).enumerate() {
            run(i * per_chunk, o, &mut scratch, threads);
        }
    }
}

/// One chunk of `imgs` consecutive images.
#[allow(clippy::too_many_arguments)]
fn conv_chunk(
    x: &[f32],
    imgs: usize,
    w: &[f32],
    bias: Option<&[f32]>,
    conv: &Conv,
    s: &ConvShape,
    out: &mut [f32],
    scratch: &mut Scratch,
    threads: usize,
) {
    let [h, wd] = s.in_hw;
    let [oh, ow] = s.resolved.output;
    let pixels = oh * ow;
    let g = conv.groups;
    let (icg, ocg) = (s.in_channels / g, s.out_channels / g);
    let [kh, kw] = conv.window.kernel;
    let k = icg * kh * kw;
    let cols = imgs * pixels;
    let pointwise = kh == 1
        && kw == 1
        && conv.window.strides == [1, 1]
        && s.resolved.pad_begin == [0, 0]
        && [oh, ow] == [h, wd];
    for gi in 0..g {
        let b = bias.map(|b| &b[gi * ocg..(gi + 1) * ocg]);
        let lhs = Operand::new(&w[gi * ocg * k..(gi + 1) * ocg * k], ocg, k);
        if imgs == 1 {
            let x_g = &x[gi * icg * h * wd..(gi + 1) * icg * h * wd];
            let out_g = &mut out[gi * ocg * pixels..(gi + 1) * ocg * pixels];
            if pointwise {
                fill_bias(out_g, pixels, pixels, b);
                gemm(
                    out_g,
                    pixels,
                    lhs,
                    Operand::new(x_g, k, pixels),
                    1.0,
                    b.is_some(),
                    threads,
                );
                continue;
            }
            // Output rows in blocks whose im2col slice stays cache-resident.
            let block_rows = (COL_BLOCK_ELEMENTS / (k * ow).max(1)).clamp(1, oh);
            for oy0 in (0..oh).step_by(block_rows) {
                let rows = oy0..(oy0 + block_rows).min(oh);
                let n = rows.len() * ow;
                scratch.col.resize(k * n, 0.0);
                im2col(
                    x_g,
                    [h, wd],
                    conv,
                    &s.resolved,
                    &mut scratch.col,
                    n,
                    0,
                    rows,
                    threads,
                );
                let dst = &mut out_g[oy0 * ow..(ocg - 1) * pixels + oy0 * ow + n];
                fill_bias(dst, pixels, n, b);
                gemm(
                    dst,
                    pixels,
                    lhs,
                    Operand::new(&scratch.col, k, n),
                    1.0,
                    b.is_some(),
                    threads,
                );
            }
            continue;
        }
        scratch.col.resize(k * cols, 0.0);
        for j in 0..imgs {
            let x_g = &x[(j * s.in_channels + gi * icg) * h * wd..][..icg * h * wd];
            im2col(
                x_g,
                [h, wd],
                conv,
                &s.resolved,
                &mut scratch.col,
                cols,
                j * pixels,
                0..oh,
                threads,
            );
        }
        scratch.out.resize(ocg * cols, 0.0);
        fill_bias(&mut scratch.out, cols, cols, b);
        gemm(
            &mut scratch.out,
            cols,
            lhs,
            Operand::new(&scratch.col, k, cols),
            1.0,
            b.is_some(),
            threads,
        );
        for j in 0..imgs {
            for o in 0..ocg {
                let src = &scratch.out[o * cols + j * pixels..][..pixels];
                out[(j * s.out_channels + gi * ocg + o) * pixels..][..pixels].copy_from_slice(src);
            }
        }
    }
}

/// Writes `bias[o]` into the first `len` elements of each output row `o` (rows `stride`
/// apart), so the GEMM can accumulate onto it.
fn fill_bias(dst: &mut [f32], stride: usize, len: usize, bias: Option<&[f32]>) {
    if let Some(b) = bias {
        for (o, &bv) in b.iter().enumerate() {
            dst[o * stride..o * stride + len].fill(bv);
        }
    }
}

/// Unfolds output rows `out_rows` of one image group `x [C, H, W]` into rows of `col`
/// (`C*KH*KW` rows of `row_len` elements), writing columns `offset..offset + rows * OW`;
/// padded taps are 0.
#[allow(clippy::too_many_arguments)]
fn im2col(
    x: &[f32],
    hw: [usize; 2],
    conv: &Conv,
    r: &Resolved,
    col: &mut [f32],
    row_len: usize,
    offset: usize,
    out_rows: std::ops::Range<usize>,
    threads: usize,
) {
    let [h, w] = hw;
    let [kh, kw] = conv.window.kernel;
    let [sh, sw] = conv.window.strides;
    let [dh, dw] = conv.window.dilations;
    let ow = r.output[1];
    let [ph, pw] = r.pad_begin;
    let fill = |c: usize, rows: &mut [f32]| {
        let plane = &x[c * h * w..(c + 1) * h * w];
        for ky in 0..kh {
            for kx in 0..kw {
                let row = &mut rows[(ky * kw + kx) * row_len + offset..][..out_rows.len() * ow];
                let x_off = (kx * dw) as isize - pw as isize;
                // Output columns whose input column lies inside [0, w).
                let first = if x_off >= 0 {
                    0
                } else {
                    ((-x_off) as usize).div_ceil(sw).min(ow)
                };
                let last = if (w as isize) <= x_off {
                    0
                } else {
                    ((w as isize - x_off - 1) as usize / sw + 1).min(ow)
                };
                for (i, oy) in out_rows.clone().enumerate() {
                    let out_row = &mut row[i * ow..(i + 1) * ow];
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
    let per_channel = kh * kw * row_len;
    let channels = x.len() / (h * w).max(1);
    if threads > 1 {
        col[..channels * per_channel]
            .par_chunks_mut(per_channel)
            .enumerate()
            .for_each(|(c, rows)| fill(c, rows));
    } else {
        for (c, rows) in col.chunks_mut(per_channel).enumerate().take(channels) {
            fill(c, rows);
        }
    }
}
