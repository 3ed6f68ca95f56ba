//! Pooling kernels over NHWC rows: channels are the vector dimension, taps the loop.

use super::simd::{
    QuantizeVec, Simd, SimdKernel, load_b_any, load_u8_any, store_b_any, store_u8_any,
};
use crate::ops::PoolPlan;

/// Pixel offsets (within one image) of the in-input taps of output `(oh, ow)` into `taps`,
/// returning the `count_include_pad` count.
#[inline(always)]
fn taps(plan: &PoolPlan, oh: usize, ow: usize, taps: &mut Vec<usize>) -> usize {
    let [ah, aw] = plan.axes;
    let (h0, h1) = ah.valid_taps(oh);
    let (w0, w1) = aw.valid_taps(ow);
    taps.clear();
    for kh in h0..h1 {
        let ih = (ah.start(oh) + (kh * ah.dilation) as isize) as usize;
        for kw in w0..w1 {
            let iw = (aw.start(ow) + (kw * aw.dilation) as isize) as usize;
            taps.push(ih * plan.input.w + iw);
        }
    }
    ah.padded_taps(oh) * aw.padded_taps(ow)
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
        let image = plan.input.h * plan.input.w;
        let mut pixels = Vec::with_capacity(plan.axes[0].kernel * plan.axes[1].kernel);
        for (r, row) in self.rows.chunks_exact_mut(o.w * c).enumerate() {
            let (n, oh) = ((self.first + r) / o.h, (self.first + r) % o.h);
            let img = &self.input[n * image * c..][..image * c];
            for (ow, dst) in row.chunks_exact_mut(c).enumerate() {
                taps(plan, oh, ow, &mut pixels);
                for (cb, dst) in dst.chunks_mut(S::BYTES).enumerate() {
                    let off = cb * S::BYTES;
                    let mut m = load_b_any(s, &img[pixels[0] * c + off..][..dst.len()]);
                    for &p in &pixels[1..] {
                        m = s.max_b(m, load_b_any(s, &img[p * c + off..][..dst.len()]));
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
        let image = plan.input.h * plan.input.w;
        let q = QuantizeVec::new(s, 1.0, self.zp);
        let zp = s.splat_i(self.zp);
        let mut pixels = Vec::with_capacity(plan.axes[0].kernel * plan.axes[1].kernel);
        for (r, row) in self.rows.chunks_exact_mut(o.w * c).enumerate() {
            let (n, oh) = ((self.first + r) / o.h, (self.first + r) % o.h);
            let img = &self.input[n * image * c..][..image * c];
            for (ow, dst) in row.chunks_exact_mut(c).enumerate() {
                let padded = taps(plan, oh, ow, &mut pixels);
                let count = if self.include_pad {
                    padded
                } else {
                    pixels.len()
                };
                let count = s.splat_f(count as f32);
                for (cb, dst) in dst.chunks_mut(S::LANES).enumerate() {
                    let off = cb * S::LANES;
                    let mut t = s.splat_i(0);
                    for &p in &pixels {
                        let v = load_u8_any(s, &img[p * c + off..][..dst.len()]);
                        t = s.add_i(t, s.sub_i(v, zp));
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
