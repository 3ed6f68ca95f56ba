//! Convolution weights packed once per layer for one tier, and the convolution entry point.

use std::sync::Arc;

use crate::arch::ops::Isa;
use crate::arch::ops::depthwise::DepthwiseRows;
use crate::arch::ops::epilogue::OutElem;
use crate::conv::epilogue::{Prepared, check_len, prepare};
use crate::conv::implicit::{AMX_ROW_ALIGN, Im2colRows, PointwiseRows, ROW_ALIGN};
use crate::conv::{ConvEpilogue, ConvGeometry, ConvOutput, ConvWeights, Nhwc, Padding};
use crate::conv::{direct, space_to_depth};
use crate::cpu::Tier;
use crate::error::{Error, Result};
use crate::gemm::{self, ARowsIn, GemmOptions, PackedWeights, Parallelism};
use crate::ops::par_rows;
use crate::quant::QParams;
use crate::reference;

/// Channel padding of the depthwise tap table (the widest vector: 16 i32 lanes).
const DEPTHWISE_LANES: usize = 16;

/// Depthwise weights `[KH * KW][tap_stride]` as i32 (`tap_stride` = C rounded up to 16,
/// zeros in the padding) and their per-channel sums.
struct DepthwisePlan {
    taps: Vec<i32>,
    tap_stride: usize,
    wsum: Vec<i32>,
}

/// How a layer runs on its tier.
enum Plan {
    /// The scalar reference on the original weights (the `Scalar` tier).
    Reference { weights: Vec<i8> },
    /// Channel-vectorized depthwise kernel.
    Depthwise(DepthwisePlan),
    /// GEMM per group on rows of the receptive fields: read in place (`pointwise`: 1x1
    /// without padding) or gathered per job (implicit GEMM).
    Gemm {
        groups: Vec<PackedWeights>,
        pointwise: bool,
    },
    /// The AMX stem: a direct 4x4 convolution on the space-to-depth image
    /// ([`space_to_depth`]), with the transformed weights.
    SpaceToDepth(PackedWeights),
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
pub struct PackedConvWeights {
    tier: Tier,
    geom: ConvGeometry,
    output: Nhwc,
    scales: Vec<f32>,
    bias: Option<Vec<f32>>,
    /// Shared by every [`PackedConvWeights::for_input`] view of the same layer.
    plan: Arc<Plan>,
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
        } else if tier == Tier::Amx && space_to_depth::eligible(geom) {
            let t = space_to_depth::transformed(geom, output);
            let w = space_to_depth::weights(geom, weights.data);
            let (scales, bias) = (weights.scales, weights.bias);
            Plan::SpaceToDepth(PackedWeights::new(
                tier,
                geom.out_channels,
                t.reduction_len(),
                &w,
                scales,
                bias,
            )?)
        } else {
            pack_gemm(tier, geom, weights)?
        };
        Ok(PackedConvWeights {
            tier,
            geom: *geom,
            output,
            scales: weights.scales.to_vec(),
            bias: weights.bias.map(<[f32]>::to_vec),
            plan: Arc::new(plan),
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

    /// The same layer for another input shape (batch size or spatial size), sharing the
    /// packed weights: no copy, no repacking. Only the channel count must stay the same.
    ///
    /// ```
    /// use q8_kernels::conv::{ConvGeometry, ConvWeights, Nhwc, PackedConvWeights};
    /// use q8_kernels::Tier;
    /// let geom = ConvGeometry::new(Nhwc::new(1, 4, 4, 2), 3, [1, 1]);
    /// let w = [1i8; 6];
    /// let weights = ConvWeights { data: &w, scales: &[1.0; 3], bias: None };
    /// let one = PackedConvWeights::new(Tier::Scalar, &geom, &weights).unwrap();
    /// let sixteen = one.for_input(Nhwc::new(16, 4, 4, 2)).unwrap();
    /// assert_eq!(sixteen.output_shape(), Nhwc::new(16, 4, 4, 3));
    /// assert!(one.for_input(Nhwc::new(1, 4, 4, 5)).is_err());
    /// ```
    ///
    /// # Errors
    /// [`Error::Shape`] when `input.c` differs from the packed layer's input channels, or
    /// the geometry is invalid for the new input.
    pub fn for_input(&self, input: Nhwc) -> Result<PackedConvWeights> {
        if input.c != self.geom.input.c {
            return Err(Error::Shape(format!(
                "conv: packed for {} input channels, given an input with {}",
                self.geom.input.c, input.c
            )));
        }
        let geom = ConvGeometry { input, ..self.geom };
        Ok(PackedConvWeights {
            tier: self.tier,
            geom,
            output: geom.output()?,
            scales: self.scales.clone(),
            bias: self.bias.clone(),
            plan: Arc::clone(&self.plan),
        })
    }
}

impl std::fmt::Debug for PackedConvWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plan = match &*self.plan {
            Plan::Reference { .. } => "reference",
            Plan::Depthwise(_) => "depthwise",
            Plan::Gemm {
                pointwise: true, ..
            } => "pointwise gemm",
            Plan::Gemm {
                pointwise: false, ..
            } => "implicit gemm",
            Plan::SpaceToDepth(_) => "space-to-depth direct",
        };
        f.debug_struct("PackedConvWeights")
            .field("tier", &self.tier)
            .field("geometry", &self.geom)
            .field("plan", &plan)
            .finish()
    }
}

/// `[C][KH][KW]` s8 weights to `[KH * KW][C rounded up to 16]` i32 (zeros in the padding).
fn pack_depthwise(geom: &ConvGeometry, weights: &[i8]) -> Plan {
    let c = geom.input.c;
    let taps_n = geom.kernel[0] * geom.kernel[1];
    let tap_stride = c.next_multiple_of(DEPTHWISE_LANES);
    let mut taps = vec![0i32; taps_n * tap_stride];
    let mut wsum = vec![0i32; tap_stride];
    for (ch, filter) in weights.chunks_exact(taps_n).enumerate() {
        for (t, &w) in filter.iter().enumerate() {
            taps[t * tap_stride + ch] = i32::from(w);
            wsum[ch] += i32::from(w);
        }
    }
    Plan::Depthwise(DepthwisePlan {
        taps,
        tap_stride,
        wsum,
    })
}

/// One [`PackedWeights`] per group: the group's `[OC/g][KH][KW][IC/g]` weights are an
/// `N x K` GEMM operand with K in the order the A rows are gathered.
fn pack_gemm(tier: Tier, geom: &ConvGeometry, weights: &ConvWeights<'_>) -> Result<Plan> {
    let (ocpg, k) = (geom.out_channels_per_group(), geom.reduction_len());
    let pointwise = geom.kernel == [1, 1] && geom.padding == Padding::default();
    // Gathered rows may be padded to whole K groups (zero weights keep the sums exact);
    // in-place rows cannot. On AMX to whole 64-byte tile rows, so the tiles read the
    // gathered rows in place instead of packing them a second time (the 7x7 stem's K = 147
    // becomes 192).
    let row_len = match (pointwise, tier) {
        (true, _) => k,
        (false, Tier::Amx) => k.next_multiple_of(AMX_ROW_ALIGN),
        (false, _) => k.next_multiple_of(ROW_ALIGN),
    };
    let groups = (0..geom.groups)
        .map(|g| {
            let channels = g * ocpg..(g + 1) * ocpg;
            let mut padded = vec![0i8; ocpg * row_len];
            let group_weights = &weights.data[channels.start * k..channels.end * k];
            for (dst, src) in padded
                .chunks_exact_mut(row_len)
                .zip(group_weights.chunks_exact(k))
            {
                dst[..k].copy_from_slice(src);
            }
            PackedWeights::new(
                tier,
                ocpg,
                row_len,
                &padded,
                &weights.scales[channels.clone()],
                weights.bias.map(|b| &b[channels]),
            )
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Plan::Gemm { groups, pointwise })
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
    match &*packed.plan {
        Plan::Reference { weights } => {
            let weights = ConvWeights {
                data: weights,
                ..weights_view(packed)
            };
            reference::conv::conv2d(geom, input, in_qp, &weights, epilogue, out)
        }
        Plan::Gemm { groups, pointwise } => {
            run_gemm(packed, groups, *pointwise, input, in_qp, epilogue, out)
        }
        Plan::SpaceToDepth(weights) => {
            let (o, mut out) = (packed.output, out);
            let t = space_to_depth::transformed(geom, o);
            let (gemm_epilogue, gemm_out) = group_operands(epilogue, &mut out, 0, o.c);
            let fill = |n: usize, dst: &mut [u8]| {
                space_to_depth::fill_image(geom, t.input.w, input, n, dst);
            };
            direct::with_padded_grid(&t, o, in_qp.zero_point as u8, fill, |grid| {
                gemm::gemm_rows(
                    ARowsIn::Taps(grid),
                    in_qp,
                    weights,
                    &gemm_epilogue,
                    gemm_out,
                    &gemm_options(packed),
                )
            })
        }
        Plan::Depthwise(depthwise) => {
            // Depthwise plans are only packed for vector tiers.
            let isa = Isa::for_tier(tier)?.ok_or(Error::TierMismatch {
                packed: packed.tier,
                requested: Tier::Scalar,
            })?;
            let view = DepthwiseView {
                isa,
                packed,
                plan: depthwise,
                input,
                za: in_qp.zero_point,
                fused: &fused,
            };
            match out {
                ConvOutput::U8 { data, qparams } => view.run(Some(qparams), data),
                ConvOutput::F32(data) => view.run(None, data),
            }
            Ok(())
        }
    }
}

/// The GEMM options of a layer's calls: its tier, the current pool's threads.
fn gemm_options(packed: &PackedConvWeights) -> GemmOptions {
    GemmOptions {
        tier: Some(packed.tier),
        parallelism: Parallelism::Global,
    }
}

/// The GEMM epilogue and output of the group whose channels start at `first` (output and
/// residual rows `ldc` apart).
fn group_operands<'o>(
    epilogue: &ConvEpilogue<'o>,
    out: &'o mut ConvOutput<'_>,
    first: usize,
    ldc: usize,
) -> (gemm::Epilogue<'o>, gemm::Output<'o>) {
    let gemm_epilogue = gemm::Epilogue {
        activation: epilogue.activation,
        residual: epilogue.residual.map(|r| gemm::Residual {
            data: &r.data[first..],
            ld: ldc,
            qparams: r.qparams,
        }),
    };
    let gemm_out = match out {
        ConvOutput::U8 { data, qparams } => gemm::Output::U8 {
            data: &mut data[first..],
            ldc,
            qparams: *qparams,
        },
        ConvOutput::F32(data) => gemm::Output::F32 {
            data: &mut data[first..],
            ldc,
        },
    };
    (gemm_epilogue, gemm_out)
}

/// Runs each group's GEMM on its rows, writing the group's channel slice of every output
/// pixel (leading dimension `C_out`).
fn run_gemm(
    packed: &PackedConvWeights,
    groups: &[PackedWeights],
    pointwise: bool,
    input: &[u8],
    in_qp: QParams,
    epilogue: &ConvEpilogue<'_>,
    mut out: ConvOutput<'_>,
) -> Result<()> {
    let (geom, o) = (&packed.geom, packed.output);
    let (ocpg, ldc, m) = (geom.out_channels_per_group(), o.c, o.pixels());
    let options = gemm_options(packed);
    for (g, weights) in groups.iter().enumerate() {
        let (gemm_epilogue, gemm_out) = group_operands(epilogue, &mut out, g * ocpg, ldc);
        let zero_point = in_qp.zero_point as u8;
        let run = |rows: ARowsIn<'_>| {
            gemm::gemm_rows(rows, in_qp, weights, &gemm_epilogue, gemm_out, &options)
        };
        if packed.tier == Tier::Amx && !pointwise && direct::eligible(geom) {
            direct::with_grid(geom, o, input, zero_point, |grid| run(ARowsIn::Taps(grid)))?;
        } else if pointwise {
            let rows = PointwiseRows {
                input,
                geom,
                out: o,
                group: g,
            };
            run(ARowsIn::Source(&rows, m))?;
        } else {
            let rows = Im2colRows::new(input, geom, o, g, zero_point, weights.k());
            run(ARowsIn::Source(&rows, m))?;
        }
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

/// One depthwise call: the packed taps, the input and the validated epilogue.
struct DepthwiseView<'a> {
    isa: Isa,
    packed: &'a PackedConvWeights,
    plan: &'a DepthwisePlan,
    input: &'a [u8],
    za: i32,
    fused: &'a Prepared<'a>,
}

impl DepthwiseView<'_> {
    /// Runs the channel-vectorized kernel, parallel over output rows.
    fn run<T: OutElem>(&self, out_qp: Option<QParams>, out: &mut [T]) {
        let (geom, o) = (&self.packed.geom, self.packed.output);
        let row_len = o.w * o.c;
        let work = row_len * geom.reduction_len();
        let za_wsum: Vec<i32> = self.plan.wsum.iter().map(|&w| -self.za * w).collect();
        par_rows(out, row_len, work, |first, rows| {
            self.isa.run(DepthwiseRows {
                input: self.input,
                in_shape: geom.input,
                out_shape: o,
                axes: geom.axes(),
                taps: &self.plan.taps,
                tap_stride: self.plan.tap_stride,
                za_wsum: &za_wsum,
                za: self.za,
                fused: self.fused,
                out_qp,
                first,
                rows,
            })
        })
    }
}
