//! Concatenation of u8 NHWC tensors along channels, requantizing inputs whose qparams differ
//! from the output's.

use crate::arch::ops::{Isa, elementwise as simd};
use crate::cpu::Tier;
use crate::error::{Error, Result};
use crate::ops::{check_len, par_rows};
use crate::quant::QParams;
use crate::reference::ops as scalar;

/// One input of [`concat_channels`]: `pixels * channels` u8 values (NHWC) and their qparams.
#[derive(Clone, Copy, Debug)]
pub struct ConcatInput<'a> {
    /// NHWC data, `channels` per pixel.
    pub data: &'a [u8],
    /// Channels of this input.
    pub channels: usize,
    /// Quantization parameters of `data`.
    pub qparams: QParams,
}

/// Concatenates NHWC inputs along channels into `out` (`pixels * sum(channels)` values with
/// `out_qparams`). Inputs with exactly the output's qparams are copied; the others are
/// requantized: `quantize(dequantize(q; qp_i); out_qparams)`.
///
/// ```
/// use q8_kernels::ops::{concat_channels, ConcatInput};
/// use q8_kernels::{QParams, Tier};
/// let qp = QParams::new(1.0, 0).unwrap();
/// let half = QParams::new(0.5, 0).unwrap();
/// let a = ConcatInput { data: &[1, 2], channels: 1, qparams: qp };
/// let b = ConcatInput { data: &[10, 20], channels: 1, qparams: half };
/// let mut out = [0u8; 4];
/// concat_channels(Tier::Scalar, &[a, b], 2, qp, &mut out).unwrap();
/// assert_eq!(out, [1, 5, 2, 10]);
/// ```
///
/// # Errors
/// No inputs, an input with zero channels or the wrong length, wrong output length, invalid
/// qparams, unavailable tier.
pub fn concat_channels(
    tier: Tier,
    inputs: &[ConcatInput<'_>],
    pixels: usize,
    out_qparams: QParams,
    out: &mut [u8],
) -> Result<()> {
    if inputs.is_empty() {
        return Err(Error::Shape("concat: no inputs".into()));
    }
    out_qparams.validate()?;
    let mut total = 0usize;
    for (i, input) in inputs.iter().enumerate() {
        input.qparams.validate()?;
        if input.channels == 0 {
            return Err(Error::Shape(format!("concat: input {i} has zero channels")));
        }
        let len = pixels
            .checked_mul(input.channels)
            .ok_or_else(|| Error::Shape(format!("concat: input {i} size overflows")))?;
        check_len("concat input", len, input.data.len())?;
        total = total
            .checked_add(input.channels)
            .ok_or_else(|| Error::Shape("concat: channel count overflows".into()))?;
    }
    let out_len = pixels
        .checked_mul(total)
        .ok_or_else(|| Error::Shape("concat: output size overflows".into()))?;
    check_len("concat output", out_len, out.len())?;
    let isa = Isa::for_tier(tier)?;
    par_rows(out, total, total, |first, rows| {
        for (p, dst_pixel) in rows.chunks_exact_mut(total).enumerate() {
            let mut offset = 0;
            for input in inputs {
                let c = input.channels;
                let src = &input.data[(first + p) * c..][..c];
                let dst = &mut dst_pixel[offset..offset + c];
                offset += c;
                if input.qparams == out_qparams {
                    dst.copy_from_slice(src);
                    continue;
                }
                let (from, to) = (input.qparams, out_qparams);
                match isa {
                    None => scalar::requantize_slice(src, from, to, dst),
                    Some(isa) => isa.run(simd::Requantize { src, from, to, dst }),
                }
            }
        }
    });
    Ok(())
}
