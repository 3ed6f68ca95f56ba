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
                let px = Pixel {
                    img,
                    taps: self.taps,
                    za_wsum: self.za_wsum,
                    za,
                    interior,
                    rows: (h0, h1, ih0, ah.dilation),
                    cols: (w0, w1, iw0),
                    row_bytes,
                    channels: c,
                    kw_n,
                    tap_stride: ts,
                    a_step,
                };
                // Groups of 4 full vectors share the tap loop (4 accumulators in registers),
                // then single full vectors, then the partial tail vector.
                let full = c / S::LANES;
                let mut c0 = 0;
                while c0 + 4 * S::LANES <= full * S::LANES {
                    let acc = px.full::<4>(s, c0);
                    for (g, &acc) in acc.iter().enumerate() {
                        let ch = c0 + g * S::LANES;
                        epi.store(s, acc, ch, pixel_idx + ch, &mut dst[ch..ch + S::LANES]);
                    }
                    c0 += 4 * S::LANES;
                }
                while c0 < full * S::LANES {
                    let [acc] = px.full::<1>(s, c0);
                    epi.store(s, acc, c0, pixel_idx + c0, &mut dst[c0..c0 + S::LANES]);
                    c0 += S::LANES;
                }
                if c0 < c {
                    let acc = px.tail(s, c0);
                    epi.store(s, acc, c0, pixel_idx + c0, &mut dst[c0..]);
                }
            }
        }
    }
}

/// The receptive field of one output pixel: valid tap ranges and where they start.
struct Pixel<'a, S: Simd> {
    /// This image's input, `H * W * C` bytes.
    img: &'a [u8],
    taps: &'a [i32],
    za_wsum: &'a [i32],
    za: S::I,
    /// Every tap is inside the input: accumulate `a * w` from `-za * sum w`.
    interior: bool,
    /// Valid kernel rows `lo..hi`, the input row of `lo`, the row dilation.
    rows: (usize, usize, usize, usize),
    /// Valid kernel columns `lo..hi` and the input column of `lo`.
    cols: (usize, usize, usize),
    row_bytes: usize,
    channels: usize,
    kw_n: usize,
    tap_stride: usize,
    /// Input bytes between consecutive kernel columns (`DW * C`).
    a_step: usize,
}

impl<S: Simd> Pixel<'_, S> {
    /// Start values of channels `c0..c0 + LANES`.
    #[inline(always)]
    fn start(&self, s: S, c0: usize) -> S::I {
        if self.interior {
            s.load_i(&self.za_wsum[c0..c0 + S::LANES])
        } else {
            s.splat_i(0)
        }
    }

    /// Accumulators of `G` full vectors of channels from `c0` (`c0 + G * LANES <= C`).
    #[inline(always)]
    fn full<const G: usize>(&self, s: S, c0: usize) -> [S::I; G] {
        assert!(c0 + G * S::LANES <= self.channels);
        let (h0, h1, ih0, dh) = self.rows;
        let (w0, w1, iw0) = self.cols;
        let mut acc = [s.splat_i(0); G];
        for (g, acc) in acc.iter_mut().enumerate() {
            *acc = self.start(s, c0 + g * S::LANES);
        }
        for kh in h0..h1 {
            let a0 = (ih0 + (kh - h0) * dh) * self.row_bytes + iw0 * self.channels + c0;
            let w_off = (kh * self.kw_n + w0) * self.tap_stride + c0;
            // SAFETY: tap t reads input bytes ((ih * W + iw0 + t * DW) * C + c0) ..
            // + G * LANES with ih < H and iw0 + t * DW < W (valid taps) and
            // c0 + G * LANES <= C (asserted): inside `img` (H * W * C bytes, asserted by the
            // caller); and weights ((kh * KW + w0 + t) * ts + c0) .. + G * LANES with
            // kh < KH, w0 + t < KW and c0 + G * LANES <= C <= ts: inside `taps`
            // (KH * KW * ts, asserted by the caller).
            unsafe {
                let mut pa = self.img.as_ptr().add(a0);
                let mut pw = self.taps.as_ptr().add(w_off);
                for _ in w0..w1 {
                    for (g, acc) in acc.iter_mut().enumerate() {
                        let mut a = s.load_u8_ptr(pa.add(g * S::LANES));
                        if !self.interior {
                            a = s.sub_i(a, self.za);
                        }
                        *acc = s.add_i(*acc, s.mul_i(a, s.load_i_ptr(pw.add(g * S::LANES))));
                    }
                    pa = pa.add(self.a_step);
                    pw = pw.add(self.tap_stride);
                }
            }
        }
        acc
    }

    /// Accumulator of the partial vector of channels `c0..C`, with checked loads.
    #[inline(always)]
    fn tail(&self, s: S, c0: usize) -> S::I {
        let (h0, h1, ih0, dh) = self.rows;
        let (w0, w1, iw0) = self.cols;
        let len = self.channels - c0;
        let mut acc = self.start(s, c0);
        for kh in h0..h1 {
            let a0 = (ih0 + (kh - h0) * dh) * self.row_bytes + iw0 * self.channels + c0;
            let w_off = (kh * self.kw_n + w0) * self.tap_stride + c0;
            for t in 0..w1 - w0 {
                let mut a = load_u8_any(s, &self.img[a0 + t * self.a_step..][..len]);
                if !self.interior {
                    a = s.sub_i(a, self.za);
                }
                let w = s.load_i(&self.taps[w_off + t * self.tap_stride..]);
                acc = s.add_i(acc, s.mul_i(a, w));
            }
        }
        acc
    }
}
