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

/// The valid taps of one output pixel: `rows x cols` loads, the first at byte `base` of
/// `img`, rows `row_step` bytes apart and columns `col_step` bytes apart.
struct Window<'a> {
    img: &'a [u8],
    base: usize,
    rows: usize,
    cols: usize,
    row_step: usize,
    col_step: usize,
    /// Output row within the image.
    oh: usize,
    /// Output column.
    ow: usize,
}

impl<'a> Window<'a> {
    /// Calls `f` with the `len` bytes at channel offset `off` of every valid tap, row-major.
    #[inline(always)]
    fn for_each_tap(&self, off: usize, len: usize, mut f: impl FnMut(&'a [u8])) {
        for kh in 0..self.rows {
            let base = self.base + kh * self.row_step + off;
            for kw in 0..self.cols {
                f(&self.img[base + kw * self.col_step..][..len]);
            }
        }
    }
}

/// Calls `f` with every output pixel of the whole output rows `rows` (starting at output row
/// `first`, counted across images) and that pixel's window.
#[inline(always)]
fn for_each_window(
    plan: &PoolPlan,
    input: &[u8],
    first: usize,
    rows: &mut [u8],
    mut f: impl FnMut(&Window<'_>, &mut [u8]),
) {
    let (o, c) = (plan.output, plan.input.c);
    let [ah, aw] = plan.axes;
    let row_bytes = plan.input.w * c;
    let image = plan.input.h * row_bytes;
    let cols = aw.spans(o.w);
    for (r, row) in rows.chunks_exact_mut(o.w * c).enumerate() {
        let (n, oh) = ((first + r) / o.h, (first + r) % o.h);
        let img = &input[n * image..][..image];
        let (kh_n, ih0) = row_span(&ah, oh);
        for (ow, (dst, col)) in row.chunks_exact_mut(c).zip(&cols).enumerate() {
            let window = Window {
                img,
                base: ih0 * row_bytes + col.first * c,
                rows: kh_n,
                cols: col.hi - col.lo,
                row_step: ah.dilation * row_bytes,
                col_step: aw.dilation * c,
                oh,
                ow,
            };
            f(&window, dst);
        }
    }
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
        for_each_window(
            self.plan,
            self.input,
            self.first,
            self.rows,
            |window, dst| {
                for (cb, dst) in dst.chunks_mut(S::BYTES).enumerate() {
                    // All zeros: the identity of a u8 max (windows are never empty).
                    let mut m = load_b_any(s, &[]);
                    window.for_each_tap(cb * S::BYTES, dst.len(), |px| {
                        m = s.max_b(m, load_b_any(s, px));
                    });
                    store_b_any(s, dst, m);
                }
            },
        );
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
        let (plan, o) = (self.plan, self.plan.output);
        let [ah, aw] = plan.axes;
        let q = QuantizeVec::new(s, 1.0, self.zp);
        let zp = s.splat_i(self.zp);
        let padded_rows: Vec<usize> = (0..o.h).map(|oh| ah.padded_taps(oh)).collect();
        let padded_cols: Vec<usize> = (0..o.w).map(|ow| aw.padded_taps(ow)).collect();
        let include_pad = self.include_pad;
        for_each_window(plan, self.input, self.first, self.rows, |window, dst| {
            let count = if include_pad {
                padded_rows[window.oh] * padded_cols[window.ow]
            } else {
                window.rows * window.cols
            };
            let count = s.splat_f(count as f32);
            for (cb, dst) in dst.chunks_mut(S::LANES).enumerate() {
                let mut t = s.splat_i(0);
                window.for_each_tap(cb * S::LANES, dst.len(), |px| {
                    t = s.add_i(t, s.sub_i(load_u8_any(s, px), zp));
                });
                let avg = s.round_f(s.div_f(s.to_f(t), count));
                store_u8_any(s, dst, q.finish(s, avg));
            }
        });
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
