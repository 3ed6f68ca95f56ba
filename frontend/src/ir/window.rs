//! Sliding-window geometry shared by Conv and the pools: kernel, strides, dilations and
//! padding (explicit, possibly asymmetric, or ONNX `auto_pad`), resolved per input size.

/// How a window op pads its input (ONNX `pads` / `auto_pad`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Padding {
    /// Explicit pads: `begin = [top, left]`, `end = [bottom, right]`.
    Explicit {
        /// Pads before each spatial axis (H, W).
        begin: [usize; 2],
        /// Pads after each spatial axis (H, W).
        end: [usize; 2],
    },
    /// `SAME_UPPER`: output = ceil(input / stride), extra pad at the end.
    SameUpper,
    /// `SAME_LOWER`: output = ceil(input / stride), extra pad at the beginning.
    SameLower,
    /// `VALID`: no padding.
    Valid,
}

impl Padding {
    /// Symmetric explicit padding of `p` on every side.
    pub fn symmetric(p: usize) -> Padding {
        Padding::Explicit {
            begin: [p, p],
            end: [p, p],
        }
    }
}

/// A 2-D sliding window over the H and W axes of an NCHW tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window2d {
    /// Kernel size (KH, KW).
    pub kernel: [usize; 2],
    /// Strides (SH, SW), >= 1.
    pub strides: [usize; 2],
    /// Dilations (DH, DW), >= 1.
    pub dilations: [usize; 2],
    /// Padding rule.
    pub padding: Padding,
}

/// A window resolved for one input size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// Output size (OH, OW), each >= 1.
    pub output: [usize; 2],
    /// Pads before (top, left).
    pub pad_begin: [usize; 2],
    /// Pads after (bottom, right), as declared (ceil mode may read past them; those
    /// positions are outside the padded input).
    pub pad_end: [usize; 2],
}

impl Window2d {
    /// A window with unit dilation and symmetric padding `pad`.
    pub fn new(kernel: [usize; 2], strides: [usize; 2], pad: usize) -> Window2d {
        Window2d {
            kernel,
            strides,
            dilations: [1, 1],
            padding: Padding::symmetric(pad),
        }
    }

    /// Checks that every parameter is in range (kernel, strides, dilations >= 1; all <=
    /// [`super::MAX_DIM`]); returns a description of the first violation.
    pub fn check(&self) -> std::result::Result<(), String> {
        let max = super::shape::MAX_DIM;
        for (what, v, min) in [
            ("kernel", self.kernel, 1),
            ("strides", self.strides, 1),
            ("dilations", self.dilations, 1),
        ] {
            if v.iter().any(|&x| x < min || x > max) {
                return Err(format!("{what} {v:?} out of range [{min}, {max}]"));
            }
        }
        if let Padding::Explicit { begin, end } = &self.padding
            && begin.iter().chain(end).any(|&p| p > max)
        {
            return Err(format!("pads {begin:?}/{end:?} exceed {max}"));
        }
        Ok(())
    }

    /// Extent of the dilated kernel along axis `a`.
    pub fn span(&self, a: usize) -> usize {
        self.dilations[a] * (self.kernel[a] - 1) + 1
    }

    /// Output size and pads for an input of spatial size `input`. `ceil_mode` rounds the
    /// output size up (pools), dropping a last window that would start in the end padding
    /// (PyTorch's and ONNX's rule).
    ///
    /// # Errors
    /// A message when the window does not fit (output size 0).
    pub fn resolve(
        &self,
        input: [usize; 2],
        ceil_mode: bool,
    ) -> std::result::Result<Resolved, String> {
        let mut out = [0usize; 2];
        let mut pad_begin = [0usize; 2];
        let mut pad_end = [0usize; 2];
        for a in 0..2 {
            let (size, stride, span) = (input[a], self.strides[a], self.span(a));
            match &self.padding {
                Padding::Explicit { begin, end } => {
                    pad_begin[a] = begin[a];
                    pad_end[a] = end[a];
                }
                Padding::Valid => {}
                Padding::SameUpper | Padding::SameLower => {
                    let o = size.div_ceil(stride);
                    let total = ((o.max(1) - 1) * stride + span).saturating_sub(size);
                    let small = total / 2;
                    let (b, e) = if self.padding == Padding::SameUpper {
                        (small, total - small)
                    } else {
                        (total - small, small)
                    };
                    pad_begin[a] = b;
                    pad_end[a] = e;
                }
            }
            let padded = size + pad_begin[a] + pad_end[a];
            if padded < span {
                return Err(format!(
                    "window of extent {span} does not fit the padded input size {padded} (axis {})",
                    a + 2
                ));
            }
            let room = padded - span;
            let mut o = if ceil_mode {
                room.div_ceil(stride) + 1
            } else {
                room / stride + 1
            };
            if ceil_mode && (o - 1) * stride >= size + pad_begin[a] {
                o -= 1;
            }
            out[a] = o;
        }
        Ok(Resolved {
            output: out,
            pad_begin,
            pad_end,
        })
    }
}
