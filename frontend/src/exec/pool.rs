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
#[allow(clippy::too_many_arguments)]
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
    // Taps of one axis that land inside the input, and those inside the declared padding.
    let taps = |o: usize, a: usize, size: usize| -> (usize, usize, usize) {
        let origin = (o * win.strides[a]) as isize - r.pad_begin[a] as isize;
        let (d, k) = (win.dilations[a] as isize, win.kernel[a]);
        let in_range = |lo: isize, hi: isize| {
            let first = (0..k).find(|&t| origin + t as isize * d >= lo).unwrap_or(k);
            let last = (0..k)
                .rev()
                .find(|&t| origin + t as isize * d < hi)
                .map_or(0, |t| t + 1);
            (first, last.max(first))
        };
        let (first, last) = in_range(0, size as isize);
        let (pf, pl) = in_range(-(r.pad_begin[a] as isize), (size + r.pad_end[a]) as isize);
        (first, last, pl - pf)
    };
    let cols: Vec<(usize, usize, usize)> = (0..ow).map(|ox| taps(ox, 1, w)).collect();
    let rows: Vec<(usize, usize, usize)> = (0..oh).map(|oy| taps(oy, 0, h)).collect();
    let plane = |p: usize, dst: &mut [f32], scratch: &mut Vec<f32>| {
        let src = &x[p * h * w..(p + 1) * h * w];
        if let PoolKind::Max = kind {
            separable_max(src, w, win, r, &rows, &cols, dst, scratch);
            return;
        }
        for oy in 0..oh {
            let (ky0, ky1, ky_all) = rows[oy];
            let y0 = (oy * win.strides[0]) as isize - r.pad_begin[0] as isize;
            for (ox, &(kx0, kx1, kx_all)) in cols.iter().enumerate() {
                let x0 = (ox * win.strides[1]) as isize - r.pad_begin[1] as isize;
                let mut acc = match kind {
                    PoolKind::Max => f32::NEG_INFINITY,
                    PoolKind::Average { .. } => 0.0,
                };
                for ky in ky0..ky1 {
                    let row = &src[(y0 + (ky * win.dilations[0]) as isize) as usize * w..][..w];
                    for kx in kx0..kx1 {
                        let v = row[(x0 + (kx * win.dilations[1]) as isize) as usize];
                        acc = match kind {
                            PoolKind::Max => acc.max(v),
                            PoolKind::Average { .. } => acc + v,
                        };
                    }
                }
                dst[oy * ow + ox] = match kind {
                    PoolKind::Max => acc,
                    PoolKind::Average { count_include_pad } => {
                        let count = if count_include_pad {
                            ky_all * kx_all
                        } else {
                            (ky1 - ky0) * (kx1 - kx0)
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
            .for_each_init(Vec::new, |scratch, (p, d)| plane(p, d, scratch));
    } else {
        let mut scratch = Vec::new();
        for (p, d) in out.chunks_mut(oh * ow).enumerate().take(planes) {
            plane(p, d, &mut scratch);
        }
    }
}

/// Max pooling of one plane in two exact passes (max is order-independent): first the max
/// over each window's rows for every output row, a contiguous, vectorizable element-wise max
/// of whole input rows; then the max over each window's columns of that, on half as many
/// rows as the input has for stride 2.
#[allow(clippy::too_many_arguments)]
fn separable_max(
    src: &[f32],
    w: usize,
    win: &crate::ir::Window2d,
    r: &Resolved,
    rows: &[(usize, usize, usize)],
    cols: &[(usize, usize, usize)],
    dst: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    let ow = cols.len();
    scratch.resize(rows.len() * w, 0.0);
    for (oy, (&(k0, k1, _), vrow)) in rows.iter().zip(scratch.chunks_exact_mut(w)).enumerate() {
        vrow.fill(f32::NEG_INFINITY);
        let y0 = (oy * win.strides[0]) as isize - r.pad_begin[0] as isize;
        for ky in k0..k1 {
            let iy = (y0 + (ky * win.dilations[0]) as isize) as usize;
            for (o, v) in vrow.iter_mut().zip(&src[iy * w..(iy + 1) * w]) {
                *o = o.max(*v);
            }
        }
    }
    for (vrow, out_row) in scratch.chunks_exact(w).zip(dst.chunks_exact_mut(ow)) {
        for (ox, (&(k0, k1, _), o)) in cols.iter().zip(out_row.iter_mut()).enumerate() {
            let x0 = (ox * win.strides[1]) as isize - r.pad_begin[1] as isize;
            let mut m = f32::NEG_INFINITY;
            for kx in k0..k1 {
                m = m.max(vrow[(x0 + (kx * win.dilations[1]) as isize) as usize]);
            }
            *o = m;
        }
    }
}

/// Mean of each `len`-element plane of `x` into `out[plane]`.
pub(crate) fn plane_mean(x: &[f32], len: usize, out: &mut [f32]) {
    for (o, p) in out.iter_mut().zip(x.chunks_exact(len)) {
        *o = p.iter().sum::<f32>() / len as f32;
    }
}
