//! A rows of the convolution-as-GEMM: output pixel `i` of group `g` is the GEMM row
//! `[KH][KW][C_in / groups]` of its receptive field, in the weights' K order.
//!
//! - [`PointwiseRows`]: 1x1 kernels without padding (any stride, any groups) read the row in
//!   place, `C_in / groups` bytes at the input pixel `(n, oh * SH, ow * SW)`: no copy.
//! - [`Im2colRows`]: every other geometry fills only the rows of the GEMM job at hand into
//!   the driver's per-thread scratch (implicit GEMM: never the whole im2col matrix), with the
//!   input zero point at padded taps. When a group spans all channels and the kernel is not
//!   dilated along W, the taps of one kernel row are contiguous in NHWC and copied at once.

use crate::conv::{Axis, ConvGeometry, Nhwc};
use crate::gemm::source::ASource;

/// Splits a flat output pixel index into `(n, oh, ow)`.
#[inline]
fn pixel(out: Nhwc, i: usize) -> (usize, usize, usize) {
    (i / (out.h * out.w), (i / out.w) % out.h, i % out.w)
}

/// In-place rows of a 1x1, unpadded convolution for group `group`.
pub(crate) struct PointwiseRows<'a> {
    pub input: &'a [u8],
    pub geom: &'a ConvGeometry,
    pub out: Nhwc,
    pub group: usize,
}

impl ASource for PointwiseRows<'_> {
    fn rows<'s>(&'s self, m0: usize, offsets: &mut [usize], _: &'s mut Vec<u8>) -> &'s [u8] {
        let (inp, [sh, sw]) = (self.geom.input, self.geom.stride);
        let channel = self.group * self.geom.in_channels_per_group();
        for (r, offset) in offsets.iter_mut().enumerate() {
            let (n, oh, ow) = pixel(self.out, m0 + r);
            *offset = ((n * inp.h + oh * sh) * inp.w + ow * sw) * inp.c + channel;
        }
        self.input
    }
}

/// Receptive fields of group `group`, gathered per job into scratch.
pub(crate) struct Im2colRows<'a> {
    pub input: &'a [u8],
    pub geom: &'a ConvGeometry,
    pub out: Nhwc,
    pub group: usize,
    pub zero_point: u8,
}

impl ASource for Im2colRows<'_> {
    fn rows<'s>(&'s self, m0: usize, offsets: &mut [usize], scratch: &'s mut Vec<u8>) -> &'s [u8] {
        let g = self.geom;
        let (inp, icpg) = (g.input, g.in_channels_per_group());
        let [ah, aw]: [Axis; 2] = g.axes();
        let [kh_n, kw_n] = g.kernel;
        let k = kh_n * kw_n * icpg;
        let channel = self.group * icpg;
        // Taps of a kernel row are adjacent bytes of the input when one group holds every
        // channel and W is not dilated.
        let contiguous = icpg == inp.c && aw.dilation == 1;
        scratch.resize(offsets.len() * k, 0);
        for (r, (offset, row)) in offsets
            .iter_mut()
            .zip(scratch.chunks_exact_mut(k))
            .enumerate()
        {
            *offset = r * k;
            let (n, oh, ow) = pixel(self.out, m0 + r);
            let (h0, h1) = ah.valid_taps(oh);
            let (w0, w1) = aw.valid_taps(ow);
            for (kh, taps) in row.chunks_exact_mut(kw_n * icpg).enumerate() {
                if !(h0..h1).contains(&kh) || w0 == w1 {
                    taps.fill(self.zero_point);
                    continue;
                }
                let ih = (ah.start(oh) + (kh * ah.dilation) as isize) as usize;
                let image_row = &self.input[(n * inp.h + ih) * inp.w * inp.c..][..inp.w * inp.c];
                let iw0 = (aw.start(ow) + (w0 * aw.dilation) as isize) as usize;
                taps[..w0 * icpg].fill(self.zero_point);
                taps[w1 * icpg..].fill(self.zero_point);
                if contiguous {
                    let len = (w1 - w0) * icpg;
                    taps[w0 * icpg..w1 * icpg].copy_from_slice(&image_row[iw0 * inp.c..][..len]);
                } else {
                    for kw in w0..w1 {
                        let iw = iw0 + (kw - w0) * aw.dilation;
                        taps[kw * icpg..(kw + 1) * icpg]
                            .copy_from_slice(&image_row[iw * inp.c + channel..][..icpg]);
                    }
                }
            }
        }
        scratch
    }
}
