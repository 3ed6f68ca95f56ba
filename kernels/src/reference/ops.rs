//! Reference int8 ops: the scalar loops that define quantize, dequantize, requantize, add,
//! max / average / global average pooling and concat (`int8-math.md`, "Other int8 ops").
//!
//! The public functions here are the [`crate::ops`] functions pinned to [`Tier::Scalar`],
//! which runs exactly the loops below (on row blocks, possibly on several threads; each
//! element is computed independently). The SIMD paths reuse the per-element helpers for
//! their tails and are tested bit for bit against these functions.

use crate::conv::Nhwc;
use crate::cpu::Tier;
use crate::error::Result;
use crate::ops::{self, AddParams, ConcatInput, Pool2d, PoolPlan};
use crate::quant::{QParams, dequantize as dequantize_one, quantize as quantize_one};

/// [`ops::quantize`] on the scalar tier.
///
/// # Errors
/// As [`ops::quantize`].
pub fn quantize(input: &[f32], qparams: QParams, out: &mut [u8]) -> Result<()> {
    ops::quantize(Tier::Scalar, input, qparams, out)
}

/// [`ops::quantize_nchw`] on the scalar tier.
///
/// # Errors
/// As [`ops::quantize_nchw`].
pub fn quantize_nchw(input: &[f32], shape: Nhwc, qparams: QParams, out: &mut [u8]) -> Result<()> {
    ops::quantize_nchw(Tier::Scalar, input, shape, qparams, out)
}

/// [`ops::dequantize`] on the scalar tier.
///
/// # Errors
/// As [`ops::dequantize`].
pub fn dequantize(input: &[u8], qparams: QParams, out: &mut [f32]) -> Result<()> {
    ops::dequantize(Tier::Scalar, input, qparams, out)
}

/// [`ops::requantize`] on the scalar tier.
///
/// # Errors
/// As [`ops::requantize`].
pub fn requantize(input: &[u8], from: QParams, to: QParams, out: &mut [u8]) -> Result<()> {
    ops::requantize(Tier::Scalar, input, from, to, out)
}

/// [`ops::add`] on the scalar tier.
///
/// # Errors
/// As [`ops::add`].
pub fn add(a: &[u8], b: &[u8], params: &AddParams, out: &mut [u8]) -> Result<()> {
    ops::add(Tier::Scalar, a, b, params, out)
}

/// [`ops::max_pool`] on the scalar tier.
///
/// # Errors
/// As [`ops::max_pool`].
pub fn max_pool(input: &[u8], shape: Nhwc, pool: &Pool2d, out: &mut [u8]) -> Result<()> {
    ops::max_pool(Tier::Scalar, input, shape, pool, out)
}

/// [`ops::avg_pool`] on the scalar tier.
///
/// # Errors
/// As [`ops::avg_pool`].
pub fn avg_pool(
    input: &[u8],
    shape: Nhwc,
    pool: &Pool2d,
    count_include_pad: bool,
    qparams: QParams,
    out: &mut [u8],
) -> Result<()> {
    ops::avg_pool(
        Tier::Scalar,
        input,
        shape,
        pool,
        count_include_pad,
        qparams,
        out,
    )
}

/// [`ops::global_avg_pool`] on the scalar tier.
///
/// # Errors
/// As [`ops::global_avg_pool`].
pub fn global_avg_pool(input: &[u8], shape: Nhwc, qparams: QParams, out: &mut [u8]) -> Result<()> {
    ops::global_avg_pool(Tier::Scalar, input, shape, qparams, out)
}

/// [`ops::concat_channels`] on the scalar tier.
///
/// # Errors
/// As [`ops::concat_channels`].
pub fn concat_channels(
    inputs: &[ConcatInput<'_>],
    pixels: usize,
    out_qparams: QParams,
    out: &mut [u8],
) -> Result<()> {
    ops::concat_channels(Tier::Scalar, inputs, pixels, out_qparams, out)
}

// ---- the defining loops ----

pub(crate) fn quantize_slice(src: &[f32], inv_scale: f32, zp: i32, dst: &mut [u8]) {
    for (d, &x) in dst.iter_mut().zip(src) {
        *d = quantize_one(x, inv_scale, zp);
    }
}

pub(crate) fn dequantize_slice(src: &[u8], qp: QParams, dst: &mut [f32]) {
    for (d, &q) in dst.iter_mut().zip(src) {
        *d = dequantize_one(q, qp);
    }
}

/// `quantize(dequantize(q; from); to)`.
#[inline]
pub(crate) fn requantize_one(q: u8, from: QParams, to: QParams) -> u8 {
    quantize_one(dequantize_one(q, from), to.inv_scale(), to.zero_point)
}

pub(crate) fn requantize_slice(src: &[u8], from: QParams, to: QParams, dst: &mut [u8]) {
    for (d, &q) in dst.iter_mut().zip(src) {
        *d = requantize_one(q, from, to);
    }
}

/// One element of [`ops::add`].
#[inline]
pub(crate) fn add_one(a: u8, b: u8, p: &AddParams) -> u8 {
    let ya = (a as i32 - p.a.zero_point) as f32 * p.a.scale;
    let yb = (b as i32 - p.b.zero_point) as f32 * p.b.scale;
    let mut y = ya + yb;
    if p.relu {
        y = y.max(0.0);
    }
    quantize_one(y, p.out.inv_scale(), p.out.zero_point)
}

pub(crate) fn add_slice(a: &[u8], b: &[u8], p: &AddParams, dst: &mut [u8]) {
    for ((d, &x), &y) in dst.iter_mut().zip(a).zip(b) {
        *d = add_one(x, y, p);
    }
}

/// Transposes `C` planes of `W` bytes (`planar[c * W + w]`) into `W` pixels of `C` channels.
pub(crate) fn interleave_channels(planar: &[u8], channels: usize, dst: &mut [u8]) {
    let width = planar.len() / channels;
    for (c, plane) in planar.chunks_exact(width).enumerate() {
        for (w, &q) in plane.iter().enumerate() {
            dst[w * channels + c] = q;
        }
    }
}

/// The average of `int8-math.md`: `clamp(rne(t / count) + zp, 0, 255)`, a true f32 division.
#[inline]
pub(crate) fn average(t: i32, count: usize, zp: i32) -> u8 {
    let y = (t as f32 / count as f32).round_ties_even() + zp as f32;
    y.clamp(0.0, 255.0) as u8
}

/// Input pixel offsets (in pixels, within one image) of the valid taps of output `(oh, ow)`,
/// and the `count_include_pad` count.
fn window(plan: &PoolPlan, oh: usize, ow: usize, mut visit: impl FnMut(usize)) -> usize {
    let [ah, aw] = plan.axes;
    let (h0, h1) = ah.valid_taps(oh);
    let (w0, w1) = aw.valid_taps(ow);
    for kh in h0..h1 {
        let ih = (ah.start(oh) + (kh * ah.dilation) as isize) as usize;
        for kw in w0..w1 {
            let iw = (aw.start(ow) + (kw * aw.dilation) as isize) as usize;
            visit(ih * plan.input.w + iw);
        }
    }
    ah.padded_taps(oh) * aw.padded_taps(ow)
}

/// Max pooling of output rows `first..` (row = one `(n, oh)`) into `out`.
pub(crate) fn max_pool_rows(plan: &PoolPlan, input: &[u8], first: usize, out: &mut [u8]) {
    let (o, c) = (plan.output, plan.input.c);
    let image = plan.input.h * plan.input.w;
    for (r, row) in out.chunks_exact_mut(o.w * c).enumerate() {
        let (n, oh) = ((first + r) / o.h, (first + r) % o.h);
        for (ow, dst) in row.chunks_exact_mut(c).enumerate() {
            dst.fill(0);
            window(plan, oh, ow, |pix| {
                let src = &input[(n * image + pix) * c..][..c];
                for (d, &q) in dst.iter_mut().zip(src) {
                    *d = (*d).max(q);
                }
            });
        }
    }
}

/// Average pooling of output rows `first..` into `out`.
pub(crate) fn avg_pool_rows(
    plan: &PoolPlan,
    input: &[u8],
    include_pad: bool,
    zp: i32,
    first: usize,
    out: &mut [u8],
) {
    let (o, c) = (plan.output, plan.input.c);
    let image = plan.input.h * plan.input.w;
    let mut sums = vec![0i32; c];
    for (r, row) in out.chunks_exact_mut(o.w * c).enumerate() {
        let (n, oh) = ((first + r) / o.h, (first + r) % o.h);
        for (ow, dst) in row.chunks_exact_mut(c).enumerate() {
            sums.fill(0);
            let mut valid = 0;
            let padded = window(plan, oh, ow, |pix| {
                valid += 1;
                let src = &input[(n * image + pix) * c..][..c];
                for (t, &q) in sums.iter_mut().zip(src) {
                    *t += q as i32 - zp;
                }
            });
            let count = if include_pad { padded } else { valid };
            for (d, &t) in dst.iter_mut().zip(&sums) {
                *d = average(t, count, zp);
            }
        }
    }
}

/// Global average pooling of one image (`src` = `H * W` pixels of `channels`) into `dst`.
pub(crate) fn global_avg_pool_image(src: &[u8], channels: usize, zp: i32, dst: &mut [u8]) {
    let pixels = src.len() / channels;
    for (c, d) in dst.iter_mut().enumerate() {
        let t: i32 = src
            .iter()
            .skip(c)
            .step_by(channels)
            .map(|&q| q as i32 - zp)
            .sum();
        *d = average(t, pixels, zp);
    }
}
