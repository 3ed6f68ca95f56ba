//! Quantize f32 -> u8 (flat/NHWC, or NCHW with the transpose to NHWC fused), dequantize
//! u8 -> f32 and requantize u8 -> u8.

use crate::arch::ops::{Isa, elementwise as simd};
use crate::conv::Nhwc;
use crate::cpu::Tier;
use crate::error::Result;
use crate::ops::{check_len, par_rows};
use crate::quant::QParams;
use crate::reference::ops as scalar;

/// Elements per parallel row of the flat ops.
const FLAT_ROW: usize = 4096;

/// Runs `f(first, dst_piece)` over `dst` in rows of [`FLAT_ROW`] (plus one shorter tail),
/// in parallel for large buffers.
fn par_flat<T: Send>(dst: &mut [T], f: impl Fn(usize, &mut [T]) + Sync) {
    let whole = dst.len() - dst.len() % FLAT_ROW;
    let (body, tail) = dst.split_at_mut(whole);
    par_rows(body, FLAT_ROW, FLAT_ROW, |first, rows| {
        f(first * FLAT_ROW, rows)
    });
    if !tail.is_empty() {
        f(whole, tail);
    }
}

/// Quantizes f32 to u8: `clamp(rne(x * (1 / scale)) + zero_point, 0, 255)`, element-wise
/// (any layout; NHWC stays NHWC). NaN gives 0, +inf 255, -inf 0.
///
/// ```
/// use q8_kernels::ops::quantize;
/// use q8_kernels::{QParams, Tier};
/// let qp = QParams::new(0.5, 128).unwrap();
/// let mut out = [0u8; 4];
/// quantize(Tier::Scalar, &[0.0, 1.25, -1e9, f32::NAN], qp, &mut out).unwrap();
/// assert_eq!(out, [128, 130, 0, 0]);
/// ```
///
/// # Errors
/// `out.len() != input.len()`, invalid `qparams`, unavailable tier.
pub fn quantize(tier: Tier, input: &[f32], qparams: QParams, out: &mut [u8]) -> Result<()> {
    check_len("quantize output", input.len(), out.len())?;
    qparams.validate()?;
    let isa = Isa::for_tier(tier)?;
    let (inv, zp) = (qparams.inv_scale(), qparams.zero_point);
    par_flat(out, |first, dst| {
        let src = &input[first..][..dst.len()];
        match isa {
            None => scalar::quantize_slice(src, inv, zp, dst),
            Some(isa) => isa.run(simd::Quantize { src, inv, zp, dst }),
        }
    });
    Ok(())
}

/// Quantizes an f32 NCHW tensor into u8 NHWC in one pass (the network-input transform).
/// `shape` gives the logical sizes (N, H, W, C); `input` is laid out `[N][C][H][W]`, `out`
/// `[N][H][W][C]`. Same rounding as [`quantize`].
///
/// ```
/// use q8_kernels::conv::Nhwc;
/// use q8_kernels::ops::quantize_nchw;
/// use q8_kernels::{QParams, Tier};
/// let qp = QParams::new(1.0, 0).unwrap();
/// // 1 image, 2 channels, 1x2 pixels: planes [1, 2] and [3, 4].
/// let mut out = [0u8; 4];
/// quantize_nchw(Tier::Scalar, &[1.0, 2.0, 3.0, 4.0], Nhwc::new(1, 1, 2, 2), qp, &mut out).unwrap();
/// assert_eq!(out, [1, 3, 2, 4]);
/// ```
///
/// # Errors
/// Zero or overflowing shape, wrong slice lengths, invalid `qparams`, unavailable tier.
pub fn quantize_nchw(
    tier: Tier,
    input: &[f32],
    shape: Nhwc,
    qparams: QParams,
    out: &mut [u8],
) -> Result<()> {
    shape.checked_len("quantize NCHW input")?;
    check_len("quantize NCHW input", shape.len(), input.len())?;
    check_len("quantize NCHW output", shape.len(), out.len())?;
    qparams.validate()?;
    let isa = Isa::for_tier(tier)?;
    let (inv, zp) = (qparams.inv_scale(), qparams.zero_point);
    let row_len = shape.w * shape.c;
    par_rows(out, row_len, row_len, |first, rows| {
        let mut planar = vec![0u8; row_len];
        for (i, dst) in rows.chunks_exact_mut(row_len).enumerate() {
            let (n, h) = ((first + i) / shape.h, (first + i) % shape.h);
            for (c, plane_row) in planar.chunks_exact_mut(shape.w).enumerate() {
                let src = &input[((n * shape.c + c) * shape.h + h) * shape.w..][..shape.w];
                match isa {
                    None => scalar::quantize_slice(src, inv, zp, plane_row),
                    Some(isa) => isa.run(simd::Quantize {
                        src,
                        inv,
                        zp,
                        dst: plane_row,
                    }),
                }
            }
            scalar::interleave_channels(&planar, shape.c, dst);
        }
    });
    Ok(())
}

/// Dequantizes u8 to f32: `((q - zero_point) as f32) * scale`, element-wise.
///
/// ```
/// use q8_kernels::ops::dequantize;
/// use q8_kernels::{QParams, Tier};
/// let qp = QParams::new(0.5, 128).unwrap();
/// let mut out = [0.0f32; 2];
/// dequantize(Tier::Scalar, &[130, 0], qp, &mut out).unwrap();
/// assert_eq!(out, [1.0, -64.0]);
/// ```
///
/// # Errors
/// `out.len() != input.len()`, invalid `qparams`, unavailable tier.
pub fn dequantize(tier: Tier, input: &[u8], qparams: QParams, out: &mut [f32]) -> Result<()> {
    check_len("dequantize output", input.len(), out.len())?;
    qparams.validate()?;
    let isa = Isa::for_tier(tier)?;
    par_flat(out, |first, dst| {
        let src = &input[first..][..dst.len()];
        match isa {
            None => scalar::dequantize_slice(src, qparams, dst),
            Some(isa) => isa.run(simd::Dequantize {
                src,
                qp: qparams,
                dst,
            }),
        }
    });
    Ok(())
}

/// Requantizes u8 from `from` to `to`: `quantize(dequantize(q; from); to)`, element-wise.
///
/// ```
/// use q8_kernels::ops::requantize;
/// use q8_kernels::{QParams, Tier};
/// let from = QParams::new(0.5, 100).unwrap();
/// let to = QParams::new(1.0, 0).unwrap();
/// let mut out = [0u8; 3];
/// requantize(Tier::Scalar, &[104, 105, 90], from, to, &mut out).unwrap();
/// assert_eq!(out, [2, 2, 0]); // 2.0, 2.5 -> 2 (ties to even), -5 -> 0
/// ```
///
/// # Errors
/// `out.len() != input.len()`, invalid qparams, unavailable tier.
pub fn requantize(
    tier: Tier,
    input: &[u8],
    from: QParams,
    to: QParams,
    out: &mut [u8],
) -> Result<()> {
    check_len("requantize output", input.len(), out.len())?;
    from.validate()?;
    to.validate()?;
    let isa = Isa::for_tier(tier)?;
    par_flat(out, |first, dst| {
        let src = &input[first..][..dst.len()];
        match isa {
            None => scalar::requantize_slice(src, from, to, dst),
            Some(isa) => isa.run(simd::Requantize { src, from, to, dst }),
        }
    });
    Ok(())
}
