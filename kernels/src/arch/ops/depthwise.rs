//! Depthwise convolution (channel multiplier 1), vectorized over channels, exact on every
//! ISA: u8 inputs and s8 weights are widened to i32 (`(a - za) * w` with `vpmulld`), never
//! the saturating `vpmaddubsw`. Padded taps are skipped: they would add `(za - za) * w = 0`.

use super::epilogue::{EpilogueVec, OutElem};
use super::simd::{Simd, SimdKernel, load_u8_any};
use crate::conv::epilogue::Prepared;
use crate::conv::{Axis, Nhwc};
use crate::quant::QParams;

/// Output rows `first..` (row = one `(n, oh)`) of a depthwise convolution.
pub(crate) struct DepthwiseRows<'a, T> {
    pub input: &'a [u8],
    pub in_shape: Nhwc,
    pub out_shape: Nhwc,
    pub axes: [Axis; 2],
    /// Weights `[KH * KW][tap_stride]` as i32, `tap_stride` = C rounded up to 16.
    pub taps: &'a [i32],
    pub tap_stride: usize,
    pub za: i32,
    pub fused: &'a Prepared<'a>,
    pub out_qp: Option<QParams>,
    pub first: usize,
    pub rows: &'a mut [T],
}

impl<T: OutElem> SimdKernel for DepthwiseRows<'_, T> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let (o, c) = (self.out_shape, self.in_shape.c);
        let [ah, aw] = self.axes;
        let image = self.in_shape.h * self.in_shape.w * c;
        let epi = EpilogueVec::new(s, self.fused, self.out_qp);
        let za = s.splat_i(self.za);
        for (r, row) in self.rows.chunks_exact_mut(o.w * c).enumerate() {
            let (n, oh) = ((self.first + r) / o.h, (self.first + r) % o.h);
            let img = &self.input[n * image..][..image];
            let (h0, h1) = ah.valid_taps(oh);
            let row_idx = (self.first + r) * o.w * c;
            for (ow, dst) in row.chunks_exact_mut(c).enumerate() {
                let (w0, w1) = aw.valid_taps(ow);
                for (cb, dst) in dst.chunks_mut(S::LANES).enumerate() {
                    let c0 = cb * S::LANES;
                    let len = dst.len();
                    let mut acc = s.splat_i(0);
                    for kh in h0..h1 {
                        let ih = (ah.start(oh) + (kh * ah.dilation) as isize) as usize;
                        for kw in w0..w1 {
                            let iw = (aw.start(ow) + (kw * aw.dilation) as isize) as usize;
                            let a =
                                load_u8_any(s, &img[(ih * self.in_shape.w + iw) * c + c0..][..len]);
                            let tap = (kh * aw.kernel + kw) * self.tap_stride + c0;
                            let w = s.load_i(&self.taps[tap..tap + S::LANES]);
                            acc = s.add_i(acc, s.mul_i(s.sub_i(a, za), w));
                        }
                    }
                    epi.store(s, acc, c0, row_idx + ow * c + c0, dst);
                }
            }
        }
    }
}
