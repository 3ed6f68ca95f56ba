//! Reference 2-D convolution, literally as `int8-math.md` defines it.
//!
//! For output `(n, oh, ow, oc)` in group `g = oc / (C_out / groups)`:
//! `acc = sum over (kh, kw, ic) of (a - z_in) * w[oc][kh][kw][ic]` in i32, where `a` is the
//! input at `(n, oh*SH - top + kh*DH, ow*SW - left + kw*DW, g*C_in/groups + ic)`, or `z_in`
//! for padded positions (real 0). Then the GEMM epilogue and the u8 / f32 output.

use crate::conv::epilogue::{check_len, prepare, store};
use crate::conv::{ConvEpilogue, ConvGeometry, ConvOutput, ConvWeights};
use crate::error::Result;
use crate::quant::QParams;

/// Reference convolution of u8 NHWC `input` (quantized with `in_qp`).
///
/// ```
/// use q8_kernels::conv::{ConvEpilogue, ConvGeometry, ConvOutput, ConvWeights, Nhwc, Padding};
/// use q8_kernels::{reference, QParams};
/// // 1x1 image, 3x3 kernel, padding 1: only the centre tap reads the input.
/// let geom = ConvGeometry::new(Nhwc::new(1, 1, 1, 1), 1, [3, 3]).with_padding(Padding::uniform(1));
/// let qp = QParams::new(1.0, 10).unwrap();
/// let weights = ConvWeights { data: &[1; 9], scales: &[1.0], bias: None };
/// let mut out = [0.0f32];
/// reference::conv::conv2d(&geom, &[13], qp, &weights, &ConvEpilogue::default(),
///     ConvOutput::F32(&mut out)).unwrap();
/// assert_eq!(out, [3.0]); // (13 - 10) * 1; the 8 padded taps add (10 - 10) * 1
/// ```
///
/// # Errors
/// Invalid geometry, slice lengths, quantization parameters, scales or activation bounds.
pub fn conv2d(
    geom: &ConvGeometry,
    input: &[u8],
    in_qp: QParams,
    weights: &ConvWeights<'_>,
    epilogue: &ConvEpilogue<'_>,
    mut out: ConvOutput<'_>,
) -> Result<()> {
    let out_shape = geom.output()?;
    check_len("conv input", geom.input.len(), input.len())?;
    check_len("conv weights", geom.weights_len(), weights.data.len())?;
    let fused = prepare(
        geom.out_channels,
        out_shape.len(),
        in_qp,
        weights,
        epilogue,
        &out,
    )?;
    let [ah, aw] = geom.axes();
    let (icpg, ocpg) = (geom.in_channels_per_group(), geom.out_channels_per_group());
    let [kh_n, kw_n] = geom.kernel;
    let za = in_qp.zero_point;
    let inp = geom.input;
    for n in 0..out_shape.n {
        for oh in 0..out_shape.h {
            for ow in 0..out_shape.w {
                for oc in 0..out_shape.c {
                    let g = oc / ocpg;
                    let mut acc = 0i32;
                    for kh in 0..kh_n {
                        let ih = ah.start(oh) + (kh * ah.dilation) as isize;
                        for kw in 0..kw_n {
                            let iw = aw.start(ow) + (kw * aw.dilation) as isize;
                            let inside = (0..inp.h as isize).contains(&ih)
                                && (0..inp.w as isize).contains(&iw);
                            for ic in 0..icpg {
                                let a = if inside {
                                    let pix = (n * inp.h + ih as usize) * inp.w + iw as usize;
                                    i32::from(input[pix * inp.c + g * icpg + ic])
                                } else {
                                    za
                                };
                                let w = weights.data[((oc * kh_n + kh) * kw_n + kw) * icpg + ic];
                                acc += (a - za) * i32::from(w);
                            }
                        }
                    }
                    let idx = ((n * out_shape.h + oh) * out_shape.w + ow) * out_shape.c + oc;
                    store(&mut out, idx, fused.value(acc, oc, idx));
                }
            }
        }
    }
    Ok(())
}
