//! Shapes and sliding-window geometry shared by convolution and pooling.
//!
//! All sizes are element counts. Spatial axes follow ONNX `Conv` / PyTorch `conv2d`: output
//! position `o` reads input positions `o * stride - pad_begin + t * dilation` for taps
//! `t in 0..kernel`; positions outside `[0, input)` are padding.

use crate::error::{Error, Result};

/// Largest reduction length an i32 accumulator of u8 x s8 products holds exactly
/// (`255 * 128 * K < 2^31`, `int8-math.md`).
pub const MAX_REDUCTION: usize = 65_793;

/// The shape of an NHWC tensor: `n` images of `h` rows of `w` pixels of `c` channels,
/// channels contiguous.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Nhwc {
    /// Batch size.
    pub n: usize,
    /// Height (rows).
    pub h: usize,
    /// Width (pixels per row).
    pub w: usize,
    /// Channels per pixel.
    pub c: usize,
}

impl Nhwc {
    /// A shape from its four sizes.
    pub const fn new(n: usize, h: usize, w: usize, c: usize) -> Nhwc {
        Nhwc { n, h, w, c }
    }

    /// Number of elements, or an error naming `what` if a size is zero or the product
    /// overflows `usize`.
    ///
    /// # Errors
    /// [`Error::Shape`].
    pub fn checked_len(&self, what: &str) -> Result<usize> {
        if self.n == 0 || self.h == 0 || self.w == 0 || self.c == 0 {
            return Err(Error::Shape(format!(
                "{what}: every size must be >= 1, got {self}"
            )));
        }
        self.n
            .checked_mul(self.h)
            .and_then(|x| x.checked_mul(self.w))
            .and_then(|x| x.checked_mul(self.c))
            .filter(|&len| len <= isize::MAX as usize)
            .ok_or_else(|| Error::Shape(format!("{what}: element count of {self} overflows")))
    }

    /// Number of pixels `n * h * w` (of a validated shape).
    pub fn pixels(&self) -> usize {
        self.n * self.h * self.w
    }

    /// Number of elements `n * h * w * c` (of a validated shape).
    pub fn len(&self) -> usize {
        self.pixels() * self.c
    }

    /// Whether the shape has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Display for Nhwc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "[N={}, H={}, W={}, C={}]",
            self.n, self.h, self.w, self.c
        )
    }
}

/// Spatial padding in input pixels, possibly asymmetric.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Padding {
    /// Rows added above the input.
    pub top: usize,
    /// Columns added left of the input.
    pub left: usize,
    /// Rows added below the input.
    pub bottom: usize,
    /// Columns added right of the input.
    pub right: usize,
}

impl Padding {
    /// The same padding on all four sides.
    pub const fn uniform(p: usize) -> Padding {
        Padding {
            top: p,
            left: p,
            bottom: p,
            right: p,
        }
    }

    /// Padding given as (top, left, bottom, right), the ONNX `pads` order for 2-D.
    pub const fn new(top: usize, left: usize, bottom: usize, right: usize) -> Padding {
        Padding {
            top,
            left,
            bottom,
            right,
        }
    }
}

/// One spatial axis of a sliding window over an input of `input` positions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Axis {
    pub input: usize,
    pub kernel: usize,
    pub stride: usize,
    pub dilation: usize,
    pub pad_begin: usize,
    pub pad_end: usize,
}

impl Axis {
    /// The height and width axes of a `[KH, KW]` window sliding over `input`.
    pub fn hw(
        input: Nhwc,
        kernel: [usize; 2],
        stride: [usize; 2],
        dilation: [usize; 2],
        padding: Padding,
    ) -> [Axis; 2] {
        let along = |input, i, pad_begin, pad_end| Axis {
            input,
            kernel: kernel[i],
            stride: stride[i],
            dilation: dilation[i],
            pad_begin,
            pad_end,
        };
        [
            along(input.h, 0, padding.top, padding.bottom),
            along(input.w, 1, padding.left, padding.right),
        ]
    }

    /// `dilation * (kernel - 1) + 1`, the extent one window covers.
    fn effective_kernel(&self) -> Option<usize> {
        self.dilation
            .checked_mul(self.kernel - 1)
            .and_then(|x| x.checked_add(1))
    }

    /// Output length; `ceil_mode` follows PyTorch's pooling rule (the last window must start
    /// inside the input or the leading padding). `name` labels errors ("height", "width").
    pub fn output_len(&self, ceil_mode: bool, op: &str, name: &str) -> Result<usize> {
        let bad = |msg: String| Err(Error::Shape(format!("{op}: {name}: {msg}")));
        if self.input == 0 || self.kernel == 0 || self.stride == 0 || self.dilation == 0 {
            return bad(format!(
                "input {}, kernel {}, stride {}, dilation {} must all be >= 1",
                self.input, self.kernel, self.stride, self.dilation
            ));
        }
        let (Some(span), Some(padded)) = (
            self.effective_kernel(),
            self.input
                .checked_add(self.pad_begin)
                .and_then(|x| x.checked_add(self.pad_end)),
        ) else {
            return bad("geometry overflows".into());
        };
        if span > padded {
            return bad(format!(
                "kernel extent {span} (kernel {} dilation {}) is larger than the padded input {padded}",
                self.kernel, self.dilation
            ));
        }
        let room = padded - span;
        let mut out = if ceil_mode {
            room.div_ceil(self.stride) + 1
        } else {
            room / self.stride + 1
        };
        if ceil_mode && (out - 1) * self.stride >= self.input + self.pad_begin {
            out -= 1;
        }
        Ok(out)
    }

    /// First input position (may be negative) read by output `o`.
    #[inline]
    pub fn start(&self, o: usize) -> isize {
        (o * self.stride) as isize - self.pad_begin as isize
    }

    /// The taps `lo..hi` of output `o` whose input position lies in `[0, input)`.
    #[inline]
    pub fn valid_taps(&self, o: usize) -> (usize, usize) {
        let start = self.start(o);
        let d = self.dilation as isize;
        let lo = if start >= 0 { 0 } else { (-start + d - 1) / d };
        let room = self.input as isize - start;
        let hi = if room <= 0 {
            0
        } else {
            ((room + d - 1) / d).min(self.kernel as isize)
        };
        let lo = lo.min(self.kernel as isize) as usize;
        (lo, (hi as usize).max(lo))
    }

    /// The taps of output `o` whose position lies in the padded extent
    /// `[-pad_begin, input + pad_end)` (the PyTorch `count_include_pad` count).
    #[inline]
    pub fn padded_taps(&self, o: usize) -> usize {
        let start = self.start(o);
        let end = (self.input + self.pad_end) as isize;
        let room = end - start;
        let d = self.dilation as isize;
        if room <= 0 {
            0
        } else {
            ((room + d - 1) / d).min(self.kernel as isize) as usize
        }
    }
}

/// The valid taps `lo..hi` of one output position along one axis, and the input position
/// `first` of tap `lo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TapSpan {
    pub lo: usize,
    pub hi: usize,
    pub first: usize,
}

impl Axis {
    /// [`Axis::valid_taps`] of every output `0..outputs`, with the first valid input position
    /// (computed once so kernels avoid per-pixel divisions).
    pub fn spans(&self, outputs: usize) -> Vec<TapSpan> {
        (0..outputs)
            .map(|o| {
                let (lo, hi) = self.valid_taps(o);
                let first = (self.start(o) + (lo * self.dilation) as isize).max(0) as usize;
                TapSpan { lo, hi, first }
            })
            .collect()
    }
}

/// A 2-D convolution: input shape, output channels, kernel, stride, dilation, padding and
/// groups (ONNX `Conv` / PyTorch `conv2d` semantics, output size rounded down).
///
/// Tensors it describes:
/// - input: u8, NHWC `[N][H][W][C_in]`;
/// - weights: s8, `[C_out][KH][KW][C_in / groups]` (output channel major, then kernel row,
///   kernel column, input channel of the group), with one f32 scale per output channel;
/// - output: NHWC `[N][OH][OW][C_out]`; output channel `oc` belongs to group
///   `oc / (C_out / groups)` and reads input channels of that group only.
///
/// ```
/// use q8_kernels::conv::{ConvGeometry, Nhwc, Padding};
/// let g = ConvGeometry::new(Nhwc::new(1, 224, 224, 3), 64, [7, 7])
///     .with_stride([2, 2])
///     .with_padding(Padding::uniform(3));
/// assert_eq!(g.output().unwrap(), Nhwc::new(1, 112, 112, 64));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvGeometry {
    /// Input shape; `input.c` is `C_in`.
    pub input: Nhwc,
    /// Output channels `C_out`.
    pub out_channels: usize,
    /// Kernel `[KH, KW]`.
    pub kernel: [usize; 2],
    /// Stride `[SH, SW]`.
    pub stride: [usize; 2],
    /// Dilation `[DH, DW]`.
    pub dilation: [usize; 2],
    /// Spatial padding (read as the input zero point).
    pub padding: Padding,
    /// Groups; `C_in` and `C_out` must be multiples of it.
    pub groups: usize,
}

impl ConvGeometry {
    /// A convolution with stride 1, dilation 1, no padding and one group.
    pub const fn new(input: Nhwc, out_channels: usize, kernel: [usize; 2]) -> ConvGeometry {
        ConvGeometry {
            input,
            out_channels,
            kernel,
            stride: [1, 1],
            dilation: [1, 1],
            padding: Padding::uniform(0),
            groups: 1,
        }
    }

    /// Sets the stride `[SH, SW]`.
    pub const fn with_stride(mut self, stride: [usize; 2]) -> ConvGeometry {
        self.stride = stride;
        self
    }

    /// Sets the dilation `[DH, DW]`.
    pub const fn with_dilation(mut self, dilation: [usize; 2]) -> ConvGeometry {
        self.dilation = dilation;
        self
    }

    /// Sets the padding.
    pub const fn with_padding(mut self, padding: Padding) -> ConvGeometry {
        self.padding = padding;
        self
    }

    /// Sets the number of groups.
    pub const fn with_groups(mut self, groups: usize) -> ConvGeometry {
        self.groups = groups;
        self
    }

    /// Input channels per group (of a validated geometry).
    pub fn in_channels_per_group(&self) -> usize {
        self.input.c / self.groups
    }

    /// Output channels per group (of a validated geometry).
    pub fn out_channels_per_group(&self) -> usize {
        self.out_channels / self.groups
    }

    /// Reduction length per output: `KH * KW * C_in / groups`.
    pub fn reduction_len(&self) -> usize {
        self.kernel[0] * self.kernel[1] * self.in_channels_per_group()
    }

    /// Whether this is a depthwise convolution (`groups == C_in`, so one input channel per
    /// group; `C_out = C_in * multiplier`).
    pub fn is_depthwise(&self) -> bool {
        self.groups == self.input.c
    }

    /// Number of weights `C_out * KH * KW * C_in / groups` (of a validated geometry).
    pub fn weights_len(&self) -> usize {
        self.out_channels * self.reduction_len()
    }

    pub(crate) fn axes(&self) -> [Axis; 2] {
        Axis::hw(
            self.input,
            self.kernel,
            self.stride,
            self.dilation,
            self.padding,
        )
    }

    /// Validates the geometry and returns the output shape `[N, OH, OW, C_out]`.
    ///
    /// # Errors
    /// [`Error::Shape`] for zero sizes, strides or dilations, a kernel extent larger than the
    /// padded input, channels not divisible by the groups, or sizes whose products overflow;
    /// [`Error::KTooLarge`] when `KH * KW * C_in / groups` exceeds [`MAX_REDUCTION`].
    pub fn output(&self) -> Result<Nhwc> {
        self.input.checked_len("conv input")?;
        let (g, ci, co) = (self.groups, self.input.c, self.out_channels);
        if g == 0 || co == 0 {
            return Err(Error::Shape(format!(
                "conv: groups ({g}) and output channels ({co}) must be >= 1"
            )));
        }
        if ci % g != 0 || co % g != 0 {
            return Err(Error::Shape(format!(
                "conv: input channels {ci} and output channels {co} must be divisible by groups {g}"
            )));
        }
        let [ah, aw] = self.axes();
        let oh = ah.output_len(false, "conv", "height")?;
        let ow = aw.output_len(false, "conv", "width")?;
        let k = self.kernel[0]
            .checked_mul(self.kernel[1])
            .and_then(|x| x.checked_mul(ci / g))
            .ok_or_else(|| Error::Shape("conv: reduction length overflows".into()))?;
        if k > MAX_REDUCTION {
            return Err(Error::KTooLarge {
                k,
                max: MAX_REDUCTION,
            });
        }
        co.checked_mul(k)
            .ok_or_else(|| Error::Shape("conv: weight count overflows".into()))?;
        let out = Nhwc::new(self.input.n, oh, ow, co);
        out.checked_len("conv output")?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn axis(
        input: usize,
        kernel: usize,
        stride: usize,
        dilation: usize,
        pads: (usize, usize),
    ) -> Axis {
        Axis {
            input,
            kernel,
            stride,
            dilation,
            pad_begin: pads.0,
            pad_end: pads.1,
        }
    }

    #[test]
    fn output_len_matches_pytorch() {
        // floor((5 + 2 - 3) / 2) + 1 = 3
        assert_eq!(
            axis(5, 3, 2, 1, (1, 1))
                .output_len(false, "t", "h")
                .unwrap(),
            3
        );
        // PyTorch max_pool2d(k=3, s=2, ceil_mode=True) on 6: ceil(3/2)+1 = 3
        assert_eq!(
            axis(6, 3, 2, 1, (0, 0)).output_len(true, "t", "h").unwrap(),
            3
        );
        // last window would start in the right padding: dropped (input 5, pad 1, k 2, s 2)
        assert_eq!(
            axis(5, 2, 2, 1, (1, 1)).output_len(true, "t", "h").unwrap(),
            3
        );
        assert!(
            axis(4, 5, 1, 1, (0, 0))
                .output_len(false, "t", "h")
                .is_err()
        );
        assert!(
            axis(4, 1, 0, 1, (0, 0))
                .output_len(false, "t", "h")
                .is_err()
        );
    }

    #[test]
    fn valid_taps_clip_to_input() {
        let a = axis(5, 3, 1, 2, (2, 2));
        assert_eq!(a.valid_taps(0), (1, 3)); // positions -2, 0, 2
        assert_eq!(a.valid_taps(4), (0, 2)); // positions 2, 4, 6
        assert_eq!(a.padded_taps(4), 3);
        let b = axis(1, 2, 1, 2, (1, 1)); // positions -1, 1: empty
        assert_eq!(b.valid_taps(0), (1, 1));
    }

    #[test]
    fn conv_validation_names_the_problem() {
        let base = ConvGeometry::new(Nhwc::new(1, 8, 8, 6), 4, [3, 3]);
        assert!(base.output().is_ok());
        let msg = base.with_groups(4).output().unwrap_err().to_string();
        assert!(msg.contains("divisible"), "{msg}");
        assert!(base.with_stride([0, 1]).output().is_err());
        assert!(
            ConvGeometry::new(Nhwc::new(1, 2, 2, 1), 1, [3, 3])
                .output()
                .is_err()
        );
        assert!(
            ConvGeometry::new(Nhwc::new(1, 2, 2, 1), 1, [3, 3])
                .with_padding(Padding::uniform(1))
                .output()
                .is_ok()
        );
        assert!(matches!(
            ConvGeometry::new(Nhwc::new(1, 1, 1, 70_000), 1, [1, 1]).output(),
            Err(Error::KTooLarge { .. })
        ));
        assert!(
            ConvGeometry::new(Nhwc::new(usize::MAX, 2, 2, 2), 1, [1, 1])
                .output()
                .is_err()
        );
    }
}
