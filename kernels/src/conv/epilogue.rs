//! What a convolution does after its i32 reduction: the per-layer constants (weight scales,
//! bias), the per-call fusions (residual sum, activation) and the output (u8 or f32).
//!
//! The math is `int8-math.md`'s GEMM epilogue with `scale[oc] = s_in * s_w[oc]` (one f32
//! multiply), applied through [`crate::epilogue::epilogue_f32`].

use crate::epilogue::{Activation, epilogue_f32};
use crate::error::{Error, Result};
use crate::quant::{QParams, quantize};

/// A layer's constant parameters: s8 weights `[C_out][KH][KW][C_in / groups]`, one positive
/// finite f32 scale per output channel, and an optional f32 bias per output channel.
#[derive(Clone, Copy, Debug)]
pub struct ConvWeights<'a> {
    /// s8 weights, layout `[C_out][KH][KW][C_in / groups]`.
    pub data: &'a [i8],
    /// Per-output-channel weight scales (`C_out` of them).
    pub scales: &'a [f32],
    /// Per-output-channel bias in real units (`C_out` of them), if any.
    pub bias: Option<&'a [f32]>,
}

/// A u8 tensor summed into the result before the activation (the residual "sum" post-op),
/// with the same NHWC shape as the output and its own quantization parameters.
#[derive(Clone, Copy, Debug)]
pub struct Residual<'a> {
    /// u8 values, NHWC like the output.
    pub data: &'a [u8],
    /// Quantization parameters of `data`.
    pub qparams: QParams,
}

/// The per-call fusions: optional residual sum, then the activation.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConvEpilogue<'a> {
    /// Residual input added after the bias.
    pub residual: Option<Residual<'a>>,
    /// Activation applied last (in real units).
    pub activation: Activation,
}

/// Where a convolution writes: u8 requantized with `qparams`, or the f32 epilogue value.
#[derive(Debug)]
pub enum ConvOutput<'a> {
    /// u8 output: `clamp(rne(y / s_out) + z_out, 0, 255)` (multiplying by `1 / s_out`).
    U8 {
        /// NHWC output buffer.
        data: &'a mut [u8],
        /// Output quantization parameters.
        qparams: QParams,
    },
    /// f32 output: the epilogue value `y` itself.
    F32(&'a mut [f32]),
}

impl ConvOutput<'_> {
    /// Length of the output buffer.
    pub fn len(&self) -> usize {
        match self {
            ConvOutput::U8 { data, .. } => data.len(),
            ConvOutput::F32(data) => data.len(),
        }
    }

    /// Whether the output buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Validated epilogue inputs of one call, with the combined scales precomputed.
#[derive(Clone, Debug)]
pub(crate) struct Prepared<'a> {
    /// `s_in * s_w[oc]`, one f32 multiply each.
    pub scale: Vec<f32>,
    pub bias: Option<&'a [f32]>,
    pub residual: Option<(&'a [u8], QParams)>,
    pub activation: Activation,
}

impl Prepared<'_> {
    /// The f32 epilogue value of accumulator `acc` at output channel `oc`, flat output index
    /// `idx` (which addresses the residual).
    #[inline]
    pub fn value(&self, acc: i32, oc: usize, idx: usize) -> f32 {
        epilogue_f32(
            acc,
            self.scale[oc],
            self.bias.map(|b| b[oc]),
            self.residual.map(|(r, q)| (r[idx], q)),
            self.activation,
        )
    }
}

/// Stores epilogue values into a [`ConvOutput`] by flat index.
pub(crate) fn store(out: &mut ConvOutput<'_>, idx: usize, y: f32) {
    match out {
        ConvOutput::U8 { data, qparams } => {
            data[idx] = quantize(y, qparams.inv_scale(), qparams.zero_point)
        }
        ConvOutput::F32(data) => data[idx] = y,
    }
}

/// Checks every per-call argument against the geometry and precomputes the scales.
pub(crate) fn prepare<'a>(
    out_channels: usize,
    out_len: usize,
    in_qp: QParams,
    weights: &ConvWeights<'a>,
    epilogue: &ConvEpilogue<'a>,
    out: &ConvOutput<'_>,
) -> Result<Prepared<'a>> {
    in_qp.validate()?;
    check_len("conv weight scales", out_channels, weights.scales.len())?;
    if let Some(b) = weights.bias {
        check_len("conv bias", out_channels, b.len())?;
    }
    if let Some(r) = &epilogue.residual {
        check_len("conv residual", out_len, r.data.len())?;
        r.qparams.validate()?;
    }
    if let ConvOutput::U8 { qparams, .. } = out {
        qparams.validate()?;
    }
    check_len("conv output", out_len, out.len())?;
    epilogue.activation.validate()?;
    let scale = weights
        .scales
        .iter()
        .enumerate()
        .map(|(oc, &s)| {
            let combined = in_qp.scale * s;
            if s.is_finite() && s > 0.0 && combined.is_finite() && combined > 0.0 {
                Ok(combined)
            } else {
                Err(Error::QParams(format!(
                    "conv weight scale {s} of output channel {oc} must be finite and > 0 \
                     (combined with the input scale: {combined})"
                )))
            }
        })
        .collect::<Result<Vec<f32>>>()?;
    Ok(Prepared {
        scale,
        bias: weights.bias,
        residual: epilogue.residual.map(|r| (r.data, r.qparams)),
        activation: epilogue.activation,
    })
}

/// `Err(Error::Length)` unless `actual == expected`.
pub(crate) fn check_len(what: &'static str, expected: usize, actual: usize) -> Result<()> {
    if expected == actual {
        Ok(())
    } else {
        Err(Error::Length {
            what,
            expected,
            actual,
        })
    }
}
