//! Depthwise convolution (channel multiplier 1), vectorized over channels, exact on every
//! ISA: u8 inputs and s8 weights are widened to i32 (`vpmovzxbd`, `vpmulld`), never the
//! saturating `vpmaddubsw`.
//!
//! Padded taps read the zero point `za` and add `(za - za) * w = 0`, so they are skipped.
//! Interior pixels (every tap inside the input) accumulate `sum a * w` starting from
//! `-za * sum w` (the same exact i32); border pixels accumulate `(a - za) * w` over their
//! valid taps.

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
    /// `-za * sum over taps of w[c]`, `tap_stride` long.
    pub za_wsum: &'a [i32],
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
        let row_bytes = self.in_shape.w * c;
        let image = self.in_shape.h * row_bytes;
        let epi = EpilogueVec::new(s, self.fused, self.out_qp);
        let za = s.splat_i(self.za);
        let (kw_n, ts) = (aw.kernel, self.tap_stride);
        let a_step = aw.dilation * c;
        assert!(self.input.len() >= o.n * image && self.tap_stride >= c);
        assert!(self.taps.len() >= ah.kernel * kw_n * ts && self.za_wsum.len() >= ts);
        let cols = aw.spans(o.w);
        for (r, row) in self.rows.chunks_exact_mut(o.w * c).enumerate() {
            let (n, oh) = ((self.first + r) / o.h, (self.first + r) % o.h);
            let img = &self.input[n * image..][..image];
            let (h0, h1) = ah.valid_taps(oh);
            let ih0 = (ah.start(oh) + (h0 * ah.dilation) as isize) as usize;
            let mut row_idx = (self.first + r) * o.w * c;
            for (dst, span) in row.chunks_exact_mut(c).zip(&cols) {
                let (w0, w1, iw0) = (span.lo, span.hi, span.first);
                let interior = h1 - h0 == ah.kernel && w1 - w0 == kw_n;
                let pixel_idx = row_idx;
                row_idx += c;
                for (cb, dst) in dst.chunks_mut(S::LANES).enumerate() {
                    let c0 = cb * S::LANES;
                    let len = dst.len();
                    let mut acc = if interior {
                        s.load_i(&self.za_wsum[c0..c0 + S::LANES])
                    } else {
                        s.splat_i(0)
                    };
                    for kh in h0..h1 {
                        let a0 = (ih0 + (kh - h0) * ah.dilation) * row_bytes + iw0 * c + c0;
                        let w0_off = (kh * kw_n + w0) * ts + c0;
                        let taps = w1 - w0;
                        if len < S::LANES {
                            // Channel tail: bounds-checked partial loads.
                            for t in 0..taps {
                                let mut a = load_u8_any(s, &img[a0 + t * a_step..][..len]);
                                if !interior {
                                    a = s.sub_i(a, za);
                                }
                                let w = s.load_i(&self.taps[w0_off + t * ts..]);
                                acc = s.add_i(acc, s.mul_i(a, w));
                            }
                            continue;
                        }
                        // SAFETY: tap t reads input bytes at
                        // ((ih * W + iw0 + t * DW) * C + c0) .. + LANES with ih < H,
                        // iw0 + t * DW < W (valid taps) and c0 + LANES <= C (full block), all
                        // inside `img` (H * W * C bytes, asserted above); and weights at
                        // ((kh * KW + w0 + t) * ts + c0) .. + LANES with kh < KH, w0 + t < KW
                        // and c0 + LANES <= ts, inside `taps` (KH * KW * ts, asserted above).
                        unsafe {
                            let mut pa = img.as_ptr().add(a0);
                            let mut pw = self.taps.as_ptr().add(w0_off);
                            for _ in 0..taps {
                                let mut a = s.load_u8_ptr(pa);
                                if !interior {
                                    a = s.sub_i(a, za);
                                }
                                acc = s.add_i(acc, s.mul_i(a, s.load_i_ptr(pw)));
                                pa = pa.add(a_step);
                                pw = pw.add(ts);
                            }
                        }
                    }
                    epi.store(s, acc, c0, pixel_idx + c0, dst);
                }
            }
        }
    }
}
