//! Max, average and global average pooling over u8 NHWC tensors.

use crate::arch::ops::{Isa, pool as simd};
use crate::conv::{Axis, Nhwc, Padding};
use crate::cpu::Tier;
use crate::error::{Error, Result};
use crate::ops::{check_len, par_rows};
use crate::quant::QParams;
use crate::reference::ops as scalar;

/// Largest window (taps) or global pool (pixels) whose i32 sum of `q - zp` is exact.
pub const MAX_POOL_WINDOW: usize = (i32::MAX / 255) as usize;

/// A 2-D pooling window: kernel, stride, dilation, padding and ceil mode
/// (PyTorch `max_pool2d` / `avg_pool2d` semantics).
///
/// Output size per axis: `floor_or_ceil((in + pads - dilation*(k-1) - 1) / stride) + 1`; in
/// ceil mode a last window that would start in the trailing padding is dropped. That is
/// PyTorch's rule (`pooling_output_shape`); an ONNX importer whose source used a different
/// ceil rule must check the output shape it expects against [`Pool2d::output`]. Every window
/// must contain at least one input position, otherwise the geometry is an error.
///
/// ```
/// use q8_kernels::conv::{Nhwc, Padding};
/// use q8_kernels::ops::Pool2d;
/// // ResNet's stem max pool: 3x3, stride 2, padding 1.
/// let pool = Pool2d::new([3, 3], [2, 2]).with_padding(Padding::uniform(1));
/// assert_eq!(pool.output(Nhwc::new(1, 112, 112, 64)).unwrap(), Nhwc::new(1, 56, 56, 64));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Pool2d {
    /// Window `[KH, KW]`.
    pub kernel: [usize; 2],
    /// Stride `[SH, SW]`.
    pub stride: [usize; 2],
    /// Dilation `[DH, DW]`.
    pub dilation: [usize; 2],
    /// Padding (never part of a max; counted by average pooling only with
    /// `count_include_pad`).
    pub padding: Padding,
    /// Round the output size up instead of down.
    pub ceil_mode: bool,
}

impl Pool2d {
    /// A window with the given kernel and stride, dilation 1, no padding, floor mode.
    pub const fn new(kernel: [usize; 2], stride: [usize; 2]) -> Pool2d {
        Pool2d {
            kernel,
            stride,
            dilation: [1, 1],
            padding: Padding::uniform(0),
            ceil_mode: false,
        }
    }

    /// Sets the padding.
    pub const fn with_padding(mut self, padding: Padding) -> Pool2d {
        self.padding = padding;
        self
    }

    /// Sets the dilation.
    pub const fn with_dilation(mut self, dilation: [usize; 2]) -> Pool2d {
        self.dilation = dilation;
        self
    }

    /// Sets ceil mode.
    pub const fn with_ceil_mode(mut self, ceil_mode: bool) -> Pool2d {
        self.ceil_mode = ceil_mode;
        self
    }

    pub(crate) fn axes(&self, input: Nhwc) -> [Axis; 2] {
        Axis::hw(input, self.kernel, self.stride, self.dilation, self.padding)
    }

    /// Validates the window against `input` and returns the output shape (same N and C).
    ///
    /// # Errors
    /// [`Error::Shape`] for zero sizes, a window larger than the padded input, a window
    /// covering only padding, or a window of more than [`MAX_POOL_WINDOW`] taps.
    pub fn output(&self, input: Nhwc) -> Result<Nhwc> {
        input.checked_len("pool input")?;
        let [ah, aw] = self.axes(input);
        let oh = ah.output_len(self.ceil_mode, "pool", "height")?;
        let ow = aw.output_len(self.ceil_mode, "pool", "width")?;
        if self.kernel[0].saturating_mul(self.kernel[1]) > MAX_POOL_WINDOW {
            return Err(Error::Shape(format!(
                "pool: window {:?} has more than {MAX_POOL_WINDOW} taps",
                self.kernel
            )));
        }
        for (axis, len, name) in [(ah, oh, "height"), (aw, ow, "width")] {
            if let Some(o) = (0..len).find(|&o| {
                let (lo, hi) = axis.valid_taps(o);
                lo == hi
            }) {
                return Err(Error::Shape(format!(
                    "pool: {name}: window {o} covers only padding (input {}, kernel {}, \
                     dilation {}, pads {}/{})",
                    axis.input, axis.kernel, axis.dilation, axis.pad_begin, axis.pad_end
                )));
            }
        }
        Ok(Nhwc::new(input.n, oh, ow, input.c))
    }
}

/// A validated pooling call: shapes and axes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PoolPlan {
    pub input: Nhwc,
    pub output: Nhwc,
    pub axes: [Axis; 2],
}

impl PoolPlan {
    pub(crate) fn new(pool: &Pool2d, input: Nhwc, in_len: usize, out_len: usize) -> Result<Self> {
        let output = pool.output(input)?;
        check_len("pool input", input.len(), in_len)?;
        check_len("pool output", output.len(), out_len)?;
        Ok(PoolPlan {
            input,
            output,
            axes: pool.axes(input),
        })
    }
}

/// Max pooling of u8 NHWC `input` (quantization parameters unchanged: max is monotonic).
/// Padded positions never take part.
///
/// ```
/// use q8_kernels::conv::{Nhwc, Padding};
/// use q8_kernels::ops::{max_pool, Pool2d};
/// use q8_kernels::Tier;
/// let input = [1u8, 9, 4, 2]; // 1x2x2x1
/// let mut out = [0u8; 4];
/// let pool = Pool2d::new([2, 2], [1, 1]).with_padding(Padding::new(0, 0, 1, 1));
/// max_pool(Tier::Scalar, &input, Nhwc::new(1, 2, 2, 1), &pool, &mut out).unwrap();
/// assert_eq!(out, [9, 9, 4, 2]);
/// ```
///
/// # Errors
/// Invalid geometry (see [`Pool2d::output`]), wrong slice lengths, unavailable tier.
pub fn max_pool(
    tier: Tier,
    input: &[u8],
    shape: Nhwc,
    pool: &Pool2d,
    out: &mut [u8],
) -> Result<()> {
    let plan = PoolPlan::new(pool, shape, input.len(), out.len())?;
    let isa = Isa::for_tier(tier)?;
    let row_len = plan.output.w * plan.output.c;
    let work = row_len * pool.kernel[0] * pool.kernel[1];
    par_rows(out, row_len, work, |first, rows| match isa {
        None => scalar::max_pool_rows(&plan, input, first, rows),
        Some(isa) => isa.run(simd::MaxPoolRows {
            plan: &plan,
            input,
            first,
            rows,
        }),
    });
    Ok(())
}

/// Average pooling: `t = sum of (q - zp)` over the window's input positions (i32), then
/// `clamp(rne(t / count) + zp, 0, 255)` with the input's `qparams` kept for the output.
///
/// `count` is the number of taps inside the input when `count_include_pad` is false, and the
/// number of taps inside the padded input (but not in the extra ceil-mode overhang) when it is
/// true: PyTorch `avg_pool2d` semantics, extended to dilation.
///
/// # Errors
/// Invalid geometry, wrong slice lengths, invalid `qparams`, unavailable tier.
pub fn avg_pool(
    tier: Tier,
    input: &[u8],
    shape: Nhwc,
    pool: &Pool2d,
    count_include_pad: bool,
    qparams: QParams,
    out: &mut [u8],
) -> Result<()> {
    let plan = PoolPlan::new(pool, shape, input.len(), out.len())?;
    qparams.validate()?;
    let isa = Isa::for_tier(tier)?;
    let zp = qparams.zero_point;
    let row_len = plan.output.w * plan.output.c;
    let work = row_len * pool.kernel[0] * pool.kernel[1];
    par_rows(out, row_len, work, |first, rows| match isa {
        None => scalar::avg_pool_rows(&plan, input, count_include_pad, zp, first, rows),
        Some(isa) => isa.run(simd::AvgPoolRows {
            plan: &plan,
            input,
            include_pad: count_include_pad,
            zp,
            first,
            rows,
        }),
    });
    Ok(())
}

/// Global average pooling: one output per (image, channel), the average over all `H * W`
/// pixels with the rounding of [`avg_pool`]; `out` is `[N][C]` (NHWC with H = W = 1).
///
/// ```
/// use q8_kernels::conv::Nhwc;
/// use q8_kernels::ops::global_avg_pool;
/// use q8_kernels::{QParams, Tier};
/// let qp = QParams::new(0.1, 10).unwrap();
/// let mut out = [0u8; 1];
/// // (0 + 1 + 2 + 4) / 4 = 1.75 -> 2, + 10
/// global_avg_pool(Tier::Scalar, &[10, 11, 12, 14], Nhwc::new(1, 2, 2, 1), qp, &mut out).unwrap();
/// assert_eq!(out, [12]);
/// ```
///
/// # Errors
/// Zero or overflowing shape, more than [`MAX_POOL_WINDOW`] pixels, wrong slice lengths,
/// invalid `qparams`, unavailable tier.
pub fn global_avg_pool(
    tier: Tier,
    input: &[u8],
    shape: Nhwc,
    qparams: QParams,
    out: &mut [u8],
) -> Result<()> {
    shape.checked_len("global average pool input")?;
    if shape.h * shape.w > MAX_POOL_WINDOW {
        return Err(Error::Shape(format!(
            "global average pool: {} pixels exceed {MAX_POOL_WINDOW}",
            shape.h * shape.w
        )));
    }
    check_len("global average pool input", shape.len(), input.len())?;
    check_len("global average pool output", shape.n * shape.c, out.len())?;
    qparams.validate()?;
    let isa = Isa::for_tier(tier)?;
    let zp = qparams.zero_point;
    let image = shape.h * shape.w * shape.c;
    par_rows(out, shape.c, image, |first, rows| {
        for (i, dst) in rows.chunks_exact_mut(shape.c).enumerate() {
            let src = &input[(first + i) * image..][..image];
            match isa {
                None => scalar::global_avg_pool_image(src, shape.c, zp, dst),
                Some(isa) => isa.run(simd::GlobalAvgPoolImage { src, zp, dst }),
            }
        }
    });
    Ok(())
}
