//! Executing one lowered step on its buffers.

use std::borrow::Cow;

use q8_kernels::conv::{ConvEpilogue, ConvOutput, Nhwc, PackedConvWeights, Residual, conv2d};
use q8_kernels::gemm::{self, Epilogue, GemmOptions, Output, Parallelism};
use q8_kernels::ops::{self, ConcatInput};
use q8_kernels::{Activation, Tier};

use super::layout::{Layout, nchw_to_nhwc, nhwc_to_nchw};
use super::plan::four;
use crate::error::{Error, Result};
use crate::ir::{Tensor, TensorData};
use crate::lower::{Step, StepKind};

/// A step input: data, logical shape, layout.
pub(crate) struct In<'a> {
    pub data: Data<'a>,
    pub shape: &'a [usize],
    pub layout: Layout,
    /// The whole tensor when the value is held as one (a graph input, a fallback step's
    /// output): fallback steps borrow it instead of copying `data`.
    pub whole: Option<&'a Tensor>,
}

/// Borrowed element data.
#[derive(Clone, Copy)]
pub(crate) enum Data<'a> {
    U8(&'a [u8]),
    F32(&'a [f32]),
    /// A value of another element type (logical layout): shape sub-graphs, masks, ids.
    Tensor(&'a Tensor),
}

/// The step's output buffer.
pub(crate) enum Out<'a> {
    U8(&'a mut [u8]),
    F32(&'a mut [f32]),
    /// The slot of a value held as a whole tensor (of another element type here: f32
    /// fallback outputs are written by [`crate::lower::FallbackNode`] directly).
    Tensor(&'a mut Option<Tensor>),
}

/// Runs `step` (its convolution retargeted to this shape in `conv`).
pub(crate) fn run_step(
    step: &Step,
    conv: Option<&PackedConvWeights>,
    tier: Tier,
    inputs: &[In<'_>],
    out: Out<'_>,
    out_shape: &[usize],
    out_layout: Layout,
) -> Result<()> {
    let err = kernel_err(step);
    let mismatch = || type_mismatch(step);
    let x = &inputs[0];
    match (&step.kind, out) {
        (StepKind::Quantize(qp), Out::U8(o)) => {
            let Data::F32(src) = x.data else {
                return Err(mismatch());
            };
            match (x.layout, x.shape.len()) {
                (Layout::Plain, 4) => {
                    let [n, c, h, w] = four(x.shape, step)?;
                    ops::quantize_nchw(tier, src, Nhwc::new(n, h, w, c), *qp, o).map_err(err)
                }
                _ => ops::quantize(tier, src, *qp, o).map_err(err),
            }
        }
        (StepKind::Dequantize(qp), Out::F32(o)) => {
            let Data::U8(src) = x.data else {
                return Err(mismatch());
            };
            ops::dequantize(tier, src, *qp, o).map_err(err)
        }
        (StepKind::Conv { .. }, out) => {
            conv_step(step, conv.ok_or_else(mismatch)?, tier, inputs, out)
        }
        (
            StepKind::Linear {
                packed,
                input,
                residual,
                activation,
                output,
            },
            out,
        ) => {
            let src = plain_u8(x).ok_or_else(mismatch)?;
            let (k, n) = (packed.k(), packed.n());
            let m = src.len() / k;
            if m * k != src.len() || x.shape.last() != Some(&k) {
                return Err(Error::node(
                    step.kind.label(),
                    &step.name,
                    format!("input shape {:?} does not end in K = {k}", x.shape),
                ));
            }
            let r = match (residual, inputs.get(1)) {
                (Some(qparams), Some(r)) => Some((plain_u8(r).ok_or_else(mismatch)?, *qparams)),
                (None, None) => None,
                _ => return Err(mismatch()),
            };
            let dst = match (out, output) {
                (Out::U8(data), Some(qparams)) => Output::U8 {
                    data,
                    ldc: n,
                    qparams: *qparams,
                },
                (Out::F32(data), None) => Output::F32 { data, ldc: n },
                _ => return Err(mismatch()),
            };
            let epilogue = Epilogue {
                activation: *activation,
                residual: r.as_ref().map(|(data, qparams)| gemm::Residual {
                    data,
                    ld: n,
                    qparams: *qparams,
                }),
            };
            let options = GemmOptions {
                tier: Some(tier),
                parallelism: Parallelism::Global,
            };
            gemm::gemm(&src, k, m, *input, packed, &epilogue, dst, &options).map_err(err)
        }
        (
            StepKind::DynamicLinear {
                packed,
                quantizer,
                scales,
                bias,
                gelu,
            },
            Out::F32(o),
        ) => {
            let src = plain_f32(x).ok_or_else(mismatch)?;
            let linear = DynamicLinear {
                packed,
                quantizer,
                scales,
                bias: bias.as_deref(),
                gelu: *gelu,
            };
            linear.run(step, tier, &src, x.shape, o)
        }
        (StepKind::MaxPool(pool), Out::U8(o)) => {
            let Data::U8(src) = x.data else {
                return Err(mismatch());
            };
            ops::max_pool(tier, src, nhwc(x.shape, step)?, pool, o).map_err(err)
        }
        (
            StepKind::AvgPool {
                pool,
                count_include_pad,
                qparams,
            },
            Out::U8(o),
        ) => {
            let Data::U8(src) = x.data else {
                return Err(mismatch());
            };
            let shape = nhwc(x.shape, step)?;
            ops::avg_pool(tier, src, shape, pool, *count_include_pad, *qparams, o).map_err(err)
        }
        (StepKind::GlobalAvgPool(qp), Out::U8(o)) => {
            let Data::U8(src) = x.data else {
                return Err(mismatch());
            };
            ops::global_avg_pool(tier, src, nhwc(x.shape, step)?, *qp, o).map_err(err)
        }
        (
            StepKind::Concat {
                inputs: qps,
                output,
            },
            Out::U8(o),
        ) => {
            let mut parts = Vec::with_capacity(inputs.len());
            for (i, qp) in inputs.iter().zip(qps) {
                let Data::U8(data) = i.data else {
                    return Err(mismatch());
                };
                parts.push(ConcatInput {
                    data,
                    channels: i.shape[1],
                    qparams: *qp,
                });
            }
            let [n, _, h, w] = four(out_shape, step)?;
            ops::concat_channels(tier, &parts, n * h * w, *output, o).map_err(err)
        }
        (StepKind::Add(params), Out::U8(o)) => {
            let (
                Data::U8(a),
                Some(In {
                    data: Data::U8(b), ..
                }),
            ) = (x.data, inputs.get(1))
            else {
                return Err(mismatch());
            };
            ops::add(tier, a, b, params, o).map_err(err)
        }
        (StepKind::Reshape, Out::U8(o)) => {
            let Data::U8(src) = x.data else {
                return Err(mismatch());
            };
            relayout(src, x.shape, x.layout, o, out_shape, out_layout);
            Ok(())
        }
        (StepKind::Reshape, Out::F32(o)) => {
            let Data::F32(src) = x.data else {
                return Err(mismatch());
            };
            relayout(src, x.shape, x.layout, o, out_shape, out_layout);
            Ok(())
        }
        (StepKind::Reshape, Out::Tensor(o)) => {
            let Data::Tensor(t) = x.data else {
                return Err(mismatch());
            };
            *o = Some(Tensor::new(out_shape.to_vec(), t.data().clone())?);
            Ok(())
        }
        (StepKind::MeanF32, Out::F32(o)) => {
            let Data::F32(src) = x.data else {
                return Err(mismatch());
            };
            mean_hw(src, four(x.shape, step)?, x.layout, o);
            Ok(())
        }
        _ => Err(mismatch()),
    }
}

/// Runs a conv step on its retargeted weights `packed`. A rank-3 value (the `[N, C, L]`
/// of a 1-D conv) is held in logical order (`Layout::Plain`) while the kernels read and
/// write channels-last `[N][L][C]` (`[N][H][W][C]` with `H = 1`): the input and residual
/// are transposed into copies and the result is transposed back into `out`.
fn conv_step(
    step: &Step,
    packed: &PackedConvWeights,
    tier: Tier,
    inputs: &[In<'_>],
    out: Out<'_>,
) -> Result<()> {
    let StepKind::Conv {
        input,
        residual,
        activation,
        output,
        ..
    } = &step.kind
    else {
        return Err(Error::node(
            step.kind.label(),
            &step.name,
            "not a conv step",
        ));
    };
    let err = kernel_err(step);
    let mismatch = || type_mismatch(step);
    let src = channels_last(&inputs[0]).ok_or_else(mismatch)?;
    let r = match (residual, inputs.get(1)) {
        (Some(qparams), Some(r)) => Some((channels_last(r).ok_or_else(mismatch)?, *qparams)),
        (None, None) => None,
        _ => return Err(mismatch()),
    };
    let epilogue = ConvEpilogue {
        residual: r.as_ref().map(|(data, qparams)| Residual {
            data,
            qparams: *qparams,
        }),
        activation: *activation,
    };
    let o = packed.output_shape();
    let one_d = (inputs[0].shape.len() == 3).then_some([o.n, o.c, 1, o.w]);
    let run = |dst: ConvOutput<'_>| conv2d(tier, packed, &src, *input, &epilogue, dst);
    match (out, output) {
        (Out::U8(data), Some(qparams)) => from_channels_last(data, one_d, |data| {
            run(ConvOutput::U8 {
                data,
                qparams: *qparams,
            })
        })
        .map_err(err),
        (Out::F32(data), None) => {
            from_channels_last(data, one_d, |data| run(ConvOutput::F32(data))).map_err(err)
        }
        _ => Err(mismatch()),
    }
}

/// A u8 conv input channels-last: borrowed as is (rank 4, held NHWC), or a rank-3
/// `[N][C][L]` transposed into `[N][L][C]`. `None` for other data.
fn channels_last<'a>(i: &In<'a>) -> Option<Cow<'a, [u8]>> {
    let Data::U8(v) = i.data else {
        return None;
    };
    match *i.shape {
        [n, c, l] if i.layout == Layout::Plain => {
            let mut o = vec![0u8; v.len()];
            nchw_to_nhwc(v, [n, c, 1, l], &mut o);
            Some(Cow::Owned(o))
        }
        _ => Some(Cow::Borrowed(v)),
    }
}

/// Lets `write` fill `dst` channels-last: directly, or (`one_d = Some([n, c, 1, l])`, a
/// rank-3 output held in logical order) through a scratch buffer transposed into `dst`.
fn from_channels_last<T: Copy + Default, E>(
    dst: &mut [T],
    one_d: Option<[usize; 4]>,
    write: impl FnOnce(&mut [T]) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let Some(shape) = one_d else {
        return write(dst);
    };
    let mut scratch = vec![T::default(); dst.len()];
    write(&mut scratch)?;
    nhwc_to_nchw(&scratch, shape, dst);
    Ok(())
}

thread_local! {
    /// Per-thread scratch of dynamic linear steps (the u8 activations, the i32 sums), kept
    /// between calls so that large steps do not fault in fresh pages on every run.
    static DYNAMIC_SCRATCH: std::cell::RefCell<(Vec<u8>, Vec<i32>)> = Default::default();
}

/// The parts of a [`StepKind::DynamicLinear`] step.
struct DynamicLinear<'a> {
    packed: &'a gemm::PackedWeights,
    quantizer: &'a str,
    scales: &'a [f32],
    bias: Option<&'a [f32]>,
    gelu: bool,
}

impl DynamicLinear<'_> {
    /// `o = (acc as f32) * (x_scale * scales[n]) [+ bias[n]]` with `acc` the exact
    /// `(x_u8 - x_zp) x W` of the GEMM, `x` quantized per call as DynamicQuantizeLinear does.
    fn run(
        &self,
        step: &Step,
        tier: Tier,
        x: &[f32],
        shape: &[usize],
        o: &mut [f32],
    ) -> Result<()> {
        let (k, n) = (self.packed.k(), self.packed.n());
        let m = x.len() / k;
        if m * k != x.len() || shape.last() != Some(&k) || o.len() != m * n {
            return Err(Error::node(
                step.kind.label(),
                &step.name,
                format!("input shape {shape:?} does not end in K = {k}"),
            ));
        }
        let qp = crate::ops::dynamic_qparams(x)
            .map_err(|e| Error::node("DynamicQuantizeLinear", self.quantizer, e))?;
        if m == 0 {
            return Ok(());
        }
        DYNAMIC_SCRATCH.with(|scratch| {
            let (xq, acc) = &mut *scratch.borrow_mut();
            xq.resize(x.len(), 0);
            self.quantized_product(step, tier, x, qp, (xq, acc), o)
        })
    }

    /// The body of [`DynamicLinear::run`] on the calling thread's scratch buffers.
    fn quantized_product(
        &self,
        step: &Step,
        tier: Tier,
        x: &[f32],
        qp: crate::ops::DynamicQParams,
        (xq, acc): (&mut [u8], &mut Vec<i32>),
        o: &mut [f32],
    ) -> Result<()> {
        let err = kernel_err(step);
        let (k, n) = (self.packed.k(), self.packed.n());
        let m = x.len() / k;
        crate::ops::dynamic_quantize(x, qp, xq);
        let options = GemmOptions {
            tier: Some(tier),
            parallelism: Parallelism::Global,
        };
        let zero_point = i32::from(qp.zero_point);
        if let Ok(aq) = q8_kernels::QParams::new(qp.scale, zero_point) {
            // The fused f32 epilogue: `acc * (x_scale * scales[n]) [+ bias[n]]`, then GELU.
            let activation = if self.gelu {
                Activation::Gelu { tanh: false }
            } else {
                Activation::None
            };
            let epilogue = Epilogue {
                activation,
                residual: None,
            };
            let dst = Output::F32 { data: o, ldc: n };
            return gemm::gemm(xq, k, m, aq, self.packed, &epilogue, dst, &options).map_err(err);
        }
        // A scale the kernels do not take (0 for an all-zero input, or one whose inverse
        // overflows): the same arithmetic on the i32 accumulators here.
        let aq = q8_kernels::QParams::new(1.0, zero_point).map_err(err)?;
        acc.resize(m * n, 0);
        let dst = Output::I32 { data: acc, ldc: n };
        gemm::gemm(
            xq,
            k,
            m,
            aq,
            self.packed,
            &Epilogue::default(),
            dst,
            &options,
        )
        .map_err(err)?;
        let scale: Vec<f32> = self.scales.iter().map(|&s| qp.scale * s).collect();
        for (row, acc) in o.chunks_exact_mut(n).zip(acc.chunks_exact(n)) {
            for ((y, &a), &s) in row.iter_mut().zip(acc).zip(&scale) {
                *y = a as f32 * s;
            }
            if let Some(b) = self.bias {
                for (y, &b) in row.iter_mut().zip(b) {
                    *y += b;
                }
            }
        }
        if self.gelu {
            q8_kernels::vector::map_math(q8_kernels::vector::MathFn::GeluErf, o);
        }
        Ok(())
    }
}

/// The step's error for a failed kernel call.
fn kernel_err(step: &Step) -> impl Fn(q8_kernels::Error) -> Error + Copy + '_ {
    move |e| Error::node(step.kind.label(), &step.name, e.to_string())
}

/// The step's error for operands of an element type it does not take.
fn type_mismatch(step: &Step) -> Error {
    Error::node(
        step.kind.label(),
        &step.name,
        "input or output element type does not fit the step",
    )
}

/// An f32 input in logical row-major order (borrowed, or a rank-4 channels-last value
/// transposed into a copy). `None` for other data.
fn plain_f32<'a>(i: &In<'a>) -> Option<Cow<'a, [f32]>> {
    let Data::F32(v) = i.data else {
        return None;
    };
    Some(plain_view(v, i))
}

/// `v` (the data of `i`) in logical row-major order: borrowed when `i` is held so.
fn plain_view<'a, T: Copy + Default>(v: &'a [T], i: &In<'a>) -> Cow<'a, [T]> {
    if i.layout == Layout::Plain {
        Cow::Borrowed(v)
    } else {
        Cow::Owned(plain_copy(v, i))
    }
}

/// A u8 input in logical row-major order: borrowed as is, or (a rank-4 channels-last
/// value) transposed into a copy. `None` for f32 data.
fn plain_u8<'a>(i: &In<'a>) -> Option<Cow<'a, [u8]>> {
    let Data::U8(v) = i.data else {
        return None;
    };
    Some(plain_view(v, i))
}

/// The NHWC view of a rank-4 logical shape.
fn nhwc(shape: &[usize], step: &Step) -> Result<Nhwc> {
    let [n, c, h, w] = four(shape, step)?;
    Ok(Nhwc::new(n, h, w, c))
}

/// Copies `src` (logical `in_shape`, layout `in_layout`) into `dst` (logical `out_shape`,
/// layout `out_layout`): the same elements in logical order, as reshape requires.
pub(crate) fn relayout<T: Copy + Default>(
    src: &[T],
    in_shape: &[usize],
    in_layout: Layout,
    dst: &mut [T],
    out_shape: &[usize],
    out_layout: Layout,
) {
    let spatial = |s: &[usize]| s.len() == 4 && s[2] * s[3] > 1;
    let in_nhwc = in_layout == Layout::Nhwc && spatial(in_shape);
    let out_nhwc = out_layout == Layout::Nhwc && spatial(out_shape);
    match (in_nhwc, out_nhwc) {
        (false, false) => dst.copy_from_slice(src),
        (true, true) if in_shape == out_shape => dst.copy_from_slice(src),
        (true, false) => nhwc_to_nchw(src, dims(in_shape), dst),
        (false, true) => nchw_to_nhwc(src, dims(out_shape), dst),
        (true, true) => {
            let mut logical = vec![T::default(); src.len()];
            nhwc_to_nchw(src, dims(in_shape), &mut logical);
            nchw_to_nhwc(&logical, dims(out_shape), dst);
        }
    }
}

fn dims(s: &[usize]) -> [usize; 4] {
    [s[0], s[1], s[2], s[3]]
}

/// Mean over H, W of an f32 rank-4 tensor into `[N][C]`.
fn mean_hw(src: &[f32], [n, c, h, w]: [usize; 4], layout: Layout, out: &mut [f32]) {
    let hw = h * w;
    let inv = hw as f32;
    for b in 0..n {
        let image = &src[b * c * hw..][..c * hw];
        let o = &mut out[b * c..][..c];
        match layout {
            Layout::Plain => {
                for (ch, plane) in image.chunks_exact(hw).enumerate() {
                    o[ch] = plane.iter().sum::<f32>() / inv;
                }
            }
            Layout::Nhwc => {
                o.fill(0.0);
                for pixel in image.chunks_exact(c) {
                    for (acc, &v) in o.iter_mut().zip(pixel) {
                        *acc += v;
                    }
                }
                for v in o.iter_mut() {
                    *v /= inv;
                }
            }
        }
    }
}

/// A step input as an NCHW tensor (for the fp32 executor and observers).
pub(crate) fn to_tensor(i: &In<'_>) -> Result<Tensor> {
    if let Some(t) = i.whole {
        return Ok(t.clone());
    }
    let shape = i.shape.to_vec();
    let data = match i.data {
        Data::U8(v) => TensorData::U8(plain_copy(v, i)),
        Data::F32(v) => TensorData::F32(plain_copy(v, i)),
        Data::Tensor(t) => return Ok(t.clone()),
    };
    Tensor::new(shape, data)
}

/// `v` (the data of `i`) in logical row-major order, in a new vector: a straight copy when
/// it is in that order already.
fn plain_copy<T: Copy + Default>(v: &[T], i: &In<'_>) -> Vec<T> {
    if i.layout == Layout::Plain {
        return v.to_vec();
    }
    let mut o = vec![T::default(); v.len()];
    relayout(v, i.shape, i.layout, &mut o, i.shape, Layout::Plain);
    o
}
