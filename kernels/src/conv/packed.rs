//! Convolution weights packed once per layer for one tier, and the convolution entry point.

use crate::arch::ops::Isa;
use crate::arch::ops::depthwise::DepthwiseRows;
use crate::arch::ops::epilogue::OutElem;
use crate::conv::epilogue::{Prepared, check_len, prepare};
use crate::conv::{ConvEpilogue, ConvGeometry, ConvOutput, ConvWeights, Nhwc};
use crate::cpu::Tier;
use crate::error::{Error, Result};
use crate::ops::par_rows;
use crate::quant::QParams;
use crate::reference;

/// Channel padding of the depthwise tap table (the widest vector: 16 i32 lanes).
const DEPTHWISE_LANES: usize = 16;

/// How a layer runs on its tier.
#[derive(Clone, Debug)]
enum Plan {
    /// The scalar reference on the original weights (the `Scalar` tier).
    Reference { weights: Vec<i8> },
    /// Channel-vectorized depthwise kernel: weights `[KH * KW][tap_stride]` as i32.
    Depthwise { taps: Vec<i32>, tap_stride: usize },
}

/// A convolution layer's weights, scales and bias, validated and laid out once for `tier`.
/// Immutable and `Send + Sync`; run it with [`conv2d`] on the same tier.
///
/// ```
/// use q8_kernels::conv::{conv2d, ConvEpilogue, ConvGeometry, ConvOutput, ConvWeights, Nhwc,
///     Padding, PackedConvWeights};
/// use q8_kernels::{cpu, QParams};
/// let tier = cpu::default_tier().unwrap();
/// // Depthwise 3x3 over 8 channels, padding 1.
/// let geom = ConvGeometry::new(Nhwc::new(1, 4, 4, 8), 8, [3, 3])
///     .with_groups(8)
///     .with_padding(Padding::uniform(1));
/// let w = vec![1i8; 8 * 9];
/// let weights = ConvWeights { data: &w, scales: &[0.5; 8], bias: None };
/// let packed = PackedConvWeights::new(tier, &geom, &weights).unwrap();
/// let qp = QParams::new(1.0, 3).unwrap();
/// let input = vec![4u8; 4 * 4 * 8]; // real 1.0 everywhere
/// let mut out = vec![0f32; 4 * 4 * 8];
/// conv2d(tier, &packed, &input, qp, &ConvEpilogue::default(), ConvOutput::F32(&mut out)).unwrap();
/// assert_eq!(out[0], 2.0); // corner: 4 taps * 1.0 * 0.5
/// assert_eq!(out[5 * 8], 4.5); // interior: 9 taps * 0.5
/// ```
#[derive(Clone, Debug)]
pub struct PackedConvWeights {
    tier: Tier,
    geom: ConvGeometry,
    output: Nhwc,
    scales: Vec<f32>,
    bias: Option<Vec<f32>>,
    plan: Plan,
}

impl PackedConvWeights {
    /// Validates `geom` and `weights` (layout `[C_out][KH][KW][C_in / groups]`) and packs
    /// them for `tier`.
    ///
    /// # Errors
    /// Invalid geometry, wrong weight/scale/bias lengths, non-finite or non-positive
    /// scales, unavailable tier.
    pub fn new(tier: Tier, geom: &ConvGeometry, weights: &ConvWeights<'_>) -> Result<Self> {
        let output = geom.output()?;
        crate::cpu::require(tier)?;
        check_len("conv weights", geom.weights_len(), weights.data.len())?;
        check_len(
            "conv weight scales",
            geom.out_channels,
            weights.scales.len(),
        )?;
        if let Some(b) = weights.bias {
            check_len("conv bias", geom.out_channels, b.len())?;
        }
        if let Some((oc, s)) = weights
            .scales
            .iter()
            .enumerate()
            .find(|(_, s)| !(s.is_finite() && **s > 0.0))
        {
            return Err(Error::QParams(format!(
                "conv weight scale {s} of output channel {oc} must be finite and > 0"
            )));
        }
        let plan = if tier == Tier::Scalar {
            Plan::Reference {
                weights: weights.data.to_vec(),
            }
        } else if geom.is_depthwise() && geom.out_channels == geom.input.c {
            pack_depthwise(geom, weights.data)
        } else {
            return Err(Error::Shape(format!(
                "conv: tier {tier} has no kernel for groups {} with {} -> {} channels yet",
                geom.groups, geom.input.c, geom.out_channels
            )));
        };
        Ok(PackedConvWeights {
            tier,
            geom: *geom,
            output,
            scales: weights.scales.to_vec(),
            bias: weights.bias.map(<[f32]>::to_vec),
            plan,
        })
    }

    /// The tier these weights were packed for.
    pub fn tier(&self) -> Tier {
        self.tier
    }

    /// The layer's geometry.
    pub fn geometry(&self) -> &ConvGeometry {
        &self.geom
    }

    /// The output shape `[N, OH, OW, C_out]`.
    pub fn output_shape(&self) -> Nhwc {
        self.output
    }
}

/// `[C][KH][KW]` s8 weights to `[KH * KW][C rounded up to 16]` i32 (zeros in the padding).
fn pack_depthwise(geom: &ConvGeometry, weights: &[i8]) -> Plan {
    let c = geom.input.c;
    let taps_n = geom.kernel[0] * geom.kernel[1];
    let tap_stride = c.next_multiple_of(DEPTHWISE_LANES);
    let mut taps = vec![0i32; taps_n * tap_stride];
    for (ch, filter) in weights.chunks_exact(taps_n).enumerate() {
        for (t, &w) in filter.iter().enumerate() {
            taps[t * tap_stride + ch] = i32::from(w);
        }
    }
    Plan::Depthwise { taps, tap_stride }
}

/// Convolution of u8 NHWC `input` (quantized with `in_qp`) with packed weights, fused
/// epilogue, u8 or f32 NHWC output; bit-identical to [`reference::conv::conv2d`] on every
/// tier and thread count.
///
/// # Errors
/// `tier` differs from the packing tier ([`Error::TierMismatch`]), wrong input/output/
/// residual lengths, invalid qparams or activation bounds.
pub fn conv2d(
    tier: Tier,
    packed: &PackedConvWeights,
    input: &[u8],
    in_qp: QParams,
    epilogue: &ConvEpilogue<'_>,
    out: ConvOutput<'_>,
) -> Result<()> {
    if tier != packed.tier {
        return Err(Error::TierMismatch {
            packed: packed.tier,
            requested: tier,
        });
    }
    let geom = &packed.geom;
    check_len("conv input", geom.input.len(), input.len())?;
    let fused = prepare(
        geom.out_channels,
        packed.output.len(),
        in_qp,
        &weights_view(packed),
        epilogue,
        &out,
    )?;
    let Some(isa) = Isa::for_tier(tier)? else {
        let Plan::Reference { weights } = &packed.plan else {
            unreachable!("scalar packing always keeps the reference weights")
        };
        let weights = ConvWeights {
            data: weights,
            ..weights_view(packed)
        };
        return reference::conv::conv2d(geom, input, in_qp, &weights, epilogue, out);
    };
    match out {
        ConvOutput::U8 { data, qparams } => {
            run(isa, packed, input, in_qp, &fused, Some(qparams), data)
        }
        ConvOutput::F32(data) => run(isa, packed, input, in_qp, &fused, None, data),
    }
    Ok(())
}

/// The packed layer's scales and bias (weights left empty).
fn weights_view(packed: &PackedConvWeights) -> ConvWeights<'_> {
    ConvWeights {
        data: &[],
        scales: &packed.scales,
        bias: packed.bias.as_deref(),
    }
}

/// Runs the packed plan on a vector ISA, parallel over output rows.
fn run<T: OutElem>(
    isa: Isa,
    packed: &PackedConvWeights,
    input: &[u8],
    in_qp: QParams,
    fused: &Prepared<'_>,
    out_qp: Option<QParams>,
    out: &mut [T],
) {
    let (geom, o) = (&packed.geom, packed.output);
    let row_len = o.w * o.c;
    let work = row_len * geom.reduction_len();
    match &packed.plan {
        Plan::Depthwise { taps, tap_stride } => par_rows(out, row_len, work, |first, rows| {
            isa.run(DepthwiseRows {
                input,
                in_shape: geom.input,
                out_shape: o,
                axes: geom.axes(),
                taps,
                tap_stride: *tap_stride,
                za: in_qp.zero_point,
                fused,
                out_qp,
                first,
                rows,
            })
        }),
        Plan::Reference { .. } => unreachable!("the reference plan only exists on the scalar tier"),
    }
}
