//! Pooling kernels over NHWC rows: channels are the vector dimension, taps the loop. The
//! valid taps of every output column are computed once per call ([`Axis::spans`]), so the
//! per-pixel work is loads and max / add only.

use super::simd::{
    QuantizeVec, Simd, SimdKernel, load_b_any, load_u8_any, store_b_any, store_u8_any,
};
use crate::conv::Axis;
use crate::ops::PoolPlan;

/// The valid kernel rows of output row `oh`: `(count, first input row)`.
#[inline(always)]
fn row_span(axis: &Axis, oh: usize) -> (usize, usize) {
    let (lo, hi) = axis.valid_taps(oh);
    (
        hi - lo,
        (axis.start(oh) + (lo * axis.dilation) as isize) as usize,
    )
}

/// Max pooling of output rows `first..`.
pub(crate) struct MaxPoolRows<'a> {
    pub plan: &'a PoolPlan,
    pub input: &'a [u8],
    pub first: usize,
    pub rows: &'a mut [u8],
}

impl SimdKernel for MaxPoolRows<'_> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let (plan, o, c) = (self.plan, self.plan.output, self.plan.input.c);
        let [ah, aw] = plan.axes;
        let row_bytes = plan.input.w * c;
        let image = plan.input.h * row_bytes;
        let (dh, step) = (ah.dilation, aw.dilation * c);
        let cols = aw.spans(o.w);
        for (r, row) in self.rows.chunks_exact_mut(o.w * c).enumerate() {
            let (n, oh) = ((self.first + r) / o.h, (self.first + r) % o.h);
            let img = &self.input[n * image..][..image];
            let (kh_n, ih0) = row_span(&ah, oh);
            for (dst, col) in row.chunks_exact_mut(c).zip(&cols) {
                let kw_n = col.hi - col.lo;
                for (cb, dst) in dst.chunks_mut(S::BYTES).enumerate() {
                    let len = dst.len();
                    // All zeros: the identity of a u8 max (windows are never empty).
                    let mut m = load_b_any(s, &[]);
                    for kh in 0..kh_n {
                        let base = (ih0 + kh * dh) * row_bytes + col.first * c + cb * S::BYTES;
                        for kw in 0..kw_n {
                            m = s.max_b(m, load_b_any(s, &img[base + kw * step..][..len]));
                        }
                    }
                    store_b_any(s, dst, m);
                }
            }
        }
    }
}

/// Average pooling of output rows `first..`.
pub(crate) struct AvgPoolRows<'a> {
    pub plan: &'a PoolPlan,
    pub input: &'a [u8],
    pub include_pad: bool,
    pub zp: i32,
    pub first: usize,
    pub rows: &'a mut [u8],
}

impl SimdKernel for AvgPoolRows<'_> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let (plan, o, c) = (self.plan, self.plan.output, self.plan.input.c);
        let [ah, aw] = plan.axes;
        let row_bytes = plan.input.w * c;
        let image = plan.input.h * row_bytes;
        let (dh, step) = (ah.dilation, aw.dilation * c);
        let q = QuantizeVec::new(s, 1.0, self.zp);
        let zp = s.splat_i(self.zp);
        let cols = aw.spans(o.w);
        let padded_cols: Vec<usize> = (0..o.w).map(|ow| aw.padded_taps(ow)).collect();
        for (r, row) in self.rows.chunks_exact_mut(o.w * c).enumerate() {
            let (n, oh) = ((self.first + r) / o.h, (self.first + r) % o.h);
            let img = &self.input[n * image..][..image];
            let (kh_n, ih0) = row_span(&ah, oh);
            let padded_rows = ah.padded_taps(oh);
            for ((dst, col), &padded_w) in row.chunks_exact_mut(c).zip(&cols).zip(&padded_cols) {
                let kw_n = col.hi - col.lo;
                let count = if self.include_pad {
                    padded_rows * padded_w
                } else {
                    kh_n * kw_n
                };
                let count = s.splat_f(count as f32);
                for (cb, dst) in dst.chunks_mut(S::LANES).enumerate() {
                    let len = dst.len();
                    let mut t = s.splat_i(0);
                    for kh in 0..kh_n {
                        let base = (ih0 + kh * dh) * row_bytes + col.first * c + cb * S::LANES;
                        for kw in 0..kw_n {
                            let v = load_u8_any(s, &img[base + kw * step..][..len]);
                            t = s.add_i(t, s.sub_i(v, zp));
                        }
                    }
                    let avg = s.round_f(s.div_f(s.to_f(t), count));
                    store_u8_any(s, dst, q.finish(s, avg));
                }
            }
        }
    }
}
/// Global average pooling of one image: `src` is `H * W` pixels of `dst.len()` channels.
pub(crate) struct GlobalAvgPoolImage<'a> {
    pub src: &'a [u8],
    pub zp: i32,
    pub dst: &'a mut [u8],
}

impl SimdKernel for GlobalAvgPoolImage<'_> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let c = self.dst.len();
        let pixels = self.src.len() / c;
        let q = QuantizeVec::new(s, 1.0, self.zp);
        let count = s.splat_f(pixels as f32);
        // sum(q - zp) == sum(q) - pixels * zp exactly: both fit i32 (pixels * 255 < 2^31).
        let bias = s.splat_i(pixels as i32 * self.zp);
        for (cb, dst) in self.dst.chunks_mut(S::LANES).enumerate() {
            let off = cb * S::LANES;
            let mut t = s.splat_i(0);
            for px in self.src.chunks_exact(c) {
                t = s.add_i(t, load_u8_any(s, &px[off..off + dst.len()]));
            }
            let avg = s.round_f(s.div_f(s.to_f(s.sub_i(t, bias)), count));
            store_u8_any(s, dst, q.finish(s, avg));
        }
    }
}
