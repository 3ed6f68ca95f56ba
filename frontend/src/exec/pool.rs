//! Max and average pooling and the spatial mean in NCHW, one (n, c) plane per task.

use rayon::prelude::*;

use crate::ir::{Pool, Resolved};

/// Which reduction a pool window applies.
#[derive(Clone, Copy)]
pub(crate) enum PoolKind {
    /// Maximum over in-bounds taps (padding never wins).
    Max,
    /// Mean; the divisor counts padded taps (inside the declared pads) when `true`.
    Average { count_include_pad: bool },
}

/// Pools `x [planes, H, W]` into `out [planes, OH, OW]`.
pub(crate) fn pool2d(
    x: &[f32],
    planes: usize,
    hw: [usize; 2],
    pool: &Pool,
    r: &Resolved,
    kind: PoolKind,
    out: &mut [f32],
    threads: usize,
) {
    let [h, w] = hw;
    let [oh, ow] = r.output;
    let win = &pool.window;
    let plane = |p: usize, dst: &mut [f32]| {
        let src = &x[p * h * w..(p + 1) * h * w];
        for oy in 0..oh {
            let y0 = (oy * win.strides[0]) as isize - r.pad_begin[0] as isize;
            for ox in 0..ow {
                let x0 = (ox * win.strides[1]) as isize - r.pad_begin[1] as isize;
                let mut acc = match kind {
                    PoolKind::Max => f32::NEG_INFINITY,
                    PoolKind::Average { .. } => 0.0,
                };
                let mut inside = 0usize;
                let mut padded = 0usize;
                for ky in 0..win.kernel[0] {
                    let iy = y0 + (ky * win.dilations[0]) as isize;
                    for kx in 0..win.kernel[1] {
                        let ix = x0 + (kx * win.dilations[1]) as isize;
                        if iy >= 0 && iy < h as isize && ix >= 0 && ix < w as isize {
                            let v = src[iy as usize * w + ix as usize];
                            acc = match kind {
                                PoolKind::Max => acc.max(v),
                                PoolKind::Average { .. } => acc + v,
                            };
                            inside += 1;
                        } else if iy >= -(r.pad_begin[0] as isize)
                            && iy < (h + r.pad_end[0]) as isize
                            && ix >= -(r.pad_begin[1] as isize)
                            && ix < (w + r.pad_end[1]) as isize
                        {
                            padded += 1;
                        }
                    }
                }
                dst[oy * ow + ox] = match kind {
                    PoolKind::Max => acc,
                    PoolKind::Average { count_include_pad } => {
                        let count = if count_include_pad {
                            inside + padded
                        } else {
                            inside
                        };
                        acc / count.max(1) as f32
                    }
                };
            }
        }
    };
    if threads > 1 {
        out.par_chunks_mut(oh * ow)
            .enumerate()
            .for_each(|(p, d)| plane(p, d));
    } else {
        for (p, d) in out.chunks_mut(oh * ow).enumerate().take(planes) {
            plane(p, d);
        }
    }
}

/// Mean of each `len`-element plane of `x` into `out[plane]`.
pub(crate) fn plane_mean(x: &[f32], len: usize, out: &mut [f32]) {
    for (o, p) in out.iter_mut().zip(x.chunks_exact(len)) {
        *o = p.iter().sum::<f32>() / len as f32;
    }
}
