//! A rows of the convolution-as-GEMM: output pixel `i` of group `g` is the GEMM row
//! `[KH][KW][C_in / groups]` of its receptive field, in the weights' K order.
//!
//! - [`PointwiseRows`]: 1x1 kernels without padding (any stride, any groups) read the row in
//!   place, `C_in / groups` bytes at the input pixel `(n, oh * SH, ow * SW)`: no copy.
//! - [`Im2colRows`]: every other geometry fills only the rows of the GEMM job at hand into
//!   the driver's per-thread scratch (implicit GEMM: never the whole im2col matrix), with the
//!   input zero point at padded taps. When a group spans all channels and the kernel is not
//!   dilated along W, the taps of one kernel row are contiguous in NHWC and copied at once.

use crate::conv::geometry::TapSpan;
use crate::conv::{ConvGeometry, Nhwc};

/// Im2col rows are padded to whole 4-byte K groups of the packed weights.
pub(crate) const ROW_ALIGN: usize = 4;
/// Gathered row alignment on the AMX tier: one tile row (64 K bytes).
pub(crate) const AMX_ROW_ALIGN: usize = 64;
/// Bytes moved by one spilling copy of a short kernel row (see [`Im2colRows`]).
const SPILL: usize = 32;
use crate::gemm::source::ASource;

/// Consecutive output pixels `(n, oh, ow)` from a flat index on, without a division per
/// pixel (the divisions cost as much as a short row's gather).
struct Pixels {
    out: Nhwc,
    n: usize,
    oh: usize,
    ow: usize,
}

impl Pixels {
    /// Starts at flat output pixel index `i`.
    fn new(out: Nhwc, i: usize) -> Self {
        let (n, oh, ow) = (i / (out.h * out.w), (i / out.w) % out.h, i % out.w);
        Pixels { out, n, oh, ow }
    }

    /// The current pixel.
    #[inline(always)]
    fn get(&self) -> (usize, usize, usize) {
        (self.n, self.oh, self.ow)
    }

    /// Moves on to the next pixel.
    #[inline(always)]
    fn advance(&mut self) {
        self.ow += 1;
        if self.ow == self.out.w {
            self.ow = 0;
            self.oh += 1;
            if self.oh == self.out.h {
                self.oh = 0;
                self.n += 1;
            }
        }
    }
}

/// `dst.copy_from_slice(src)` without a `memcpy` call for the short segments receptive
/// fields are made of (a 7x7 stem row has 21 bytes): two overlapping fixed-size copies.
#[inline(always)]
fn copy_short(dst: &mut [u8], src: &[u8]) {
    fn two<const N: usize>(dst: &mut [u8], src: &[u8]) {
        let n = src.len();
        dst[..N].copy_from_slice(&src[..N]);
        dst[n - N..].copy_from_slice(&src[n - N..]);
    }
    match src.len() {
        0..4 => dst.copy_from_slice(src),
        4..8 => two::<4>(dst, src),
        8..16 => two::<8>(dst, src),
        16..=32 => two::<16>(dst, src),
        33..=64 => two::<32>(dst, src),
        _ => dst.copy_from_slice(src),
    }
}

/// In-place rows of a 1x1, unpadded convolution for group `group`.
pub(crate) struct PointwiseRows<'a> {
    pub input: &'a [u8],
    pub geom: &'a ConvGeometry,
    pub out: Nhwc,
    pub group: usize,
}

impl ASource for PointwiseRows<'_> {
    fn rows<'s>(&'s self, m0: usize, offsets: &mut [usize], _: &'s mut Vec<u8>) -> &'s [u8] {
        let (inp, [sh, sw]) = (self.geom.input, self.geom.stride);
        let channel = self.group * self.geom.in_channels_per_group();
        let mut pixels = Pixels::new(self.out, m0);
        for offset in offsets.iter_mut() {
            let (n, oh, ow) = pixels.get();
            *offset = ((n * inp.h + oh * sh) * inp.w + ow * sw) * inp.c + channel;
            pixels.advance();
        }
        self.input
    }
}

/// Receptive fields of group `group`, gathered per job into scratch. Rows are `row_len`
/// bytes: the `KH * KW * C_in / groups` taps, then filler up to `row_len` that meets the
/// zero weights the packing appended (so it adds nothing, whatever its value).
pub(crate) struct Im2colRows<'a> {
    input: &'a [u8],
    geom: &'a ConvGeometry,
    out: Nhwc,
    group: usize,
    zero_point: u8,
    row_len: usize,
    rows: Vec<TapSpan>,
    cols: Vec<TapSpan>,
}

impl<'a> Im2colRows<'a> {
    pub(crate) fn new(
        input: &'a [u8],
        geom: &'a ConvGeometry,
        out: Nhwc,
        group: usize,
        zero_point: u8,
        row_len: usize,
    ) -> Self {
        let [ah, aw] = geom.axes();
        Im2colRows {
            input,
            geom,
            out,
            group,
            zero_point,
            row_len,
            rows: ah.spans(out.h),
            cols: aw.spans(out.w),
        }
    }
}

impl ASource for Im2colRows<'_> {
    fn rows<'s>(&'s self, m0: usize, offsets: &mut [usize], scratch: &'s mut Vec<u8>) -> &'s [u8] {
        let g = self.geom;
        let (inp, icpg) = (g.input, g.in_channels_per_group());
        let [kh_n, kw_n] = g.kernel;
        let [dh, dw] = g.dilation;
        let k = kh_n * kw_n * icpg;
        // Taps of a kernel row are adjacent bytes of the input when one group holds every
        // channel and W is not dilated.
        let contiguous = icpg == inp.c && dw == 1;
        // SPILL bytes of slack after the last row, for the spilling copies below.
        scratch.resize(offsets.len() * self.row_len + SPILL, 0);
        let segment = kw_n * icpg;
        let row_step = dh * inp.w * inp.c;
        let mut pixels = Pixels::new(self.out, m0);
        for (r, offset) in offsets.iter_mut().enumerate() {
            let (n, oh, ow) = pixels.get();
            *offset = r * self.row_len;
            let (rs, cs) = (self.rows[oh], self.cols[ow]);
            // Bytes k..row_len meet zero weights: any value adds nothing.
            let tail = &mut scratch[r * self.row_len..];
            if contiguous && rs.hi - rs.lo == kh_n && cs.hi - cs.lo == kw_n {
                // Interior pixel, all taps of a kernel row adjacent: one copy per kernel row.
                let first = (n * inp.h + rs.first) * inp.w * inp.c + cs.first * inp.c;
                if segment <= SPILL && first + (kh_n - 1) * row_step + SPILL <= self.input.len() {
                    // Short kernel rows (a 7x7 stem row has 21 bytes): one fixed SPILL-byte
                    // copy each, in increasing order, so the bytes past a segment are
                    // overwritten by the next kernel row, the next receptive field (rows are
                    // filled in order) or land in filler or slack.
                    for kh in 0..kh_n {
                        let at = first + kh * row_step;
                        tail[kh * segment..][..SPILL].copy_from_slice(&self.input[at..][..SPILL]);
                    }
                } else {
                    for (kh, taps) in tail[..k].chunks_exact_mut(segment).enumerate() {
                        let at = first + kh * row_step;
                        copy_short(taps, &self.input[at..at + segment]);
                    }
                }
            } else {
                self.gather_border(&mut tail[..k], (n, rs, cs), contiguous);
            }
            pixels.advance();
        }
        scratch
    }
}

impl Im2colRows<'_> {
    /// Fills one receptive field that touches the padding (or whose taps are not adjacent).
    fn gather_border(
        &self,
        row: &mut [u8],
        (n, rs, cs): (usize, TapSpan, TapSpan),
        contiguous: bool,
    ) {
        let g = self.geom;
        let (inp, icpg, zp) = (g.input, g.in_channels_per_group(), self.zero_point);
        let [kw_n, dh, dw] = [g.kernel[1], g.dilation[0], g.dilation[1]];
        let channel = self.group * icpg;
        for (kh, taps) in row.chunks_exact_mut(kw_n * icpg).enumerate() {
            if !(rs.lo..rs.hi).contains(&kh) || cs.lo == cs.hi {
                taps.fill(zp);
                continue;
            }
            let ih = rs.first + (kh - rs.lo) * dh;
            let image_row = &self.input[(n * inp.h + ih) * inp.w * inp.c..][..inp.w * inp.c];
            if cs.lo > 0 {
                taps[..cs.lo * icpg].fill(zp);
            }
            if cs.hi < kw_n {
                taps[cs.hi * icpg..].fill(zp);
            }
            if contiguous {
                let len = (cs.hi - cs.lo) * icpg;
                copy_short(
                    &mut taps[cs.lo * icpg..cs.hi * icpg],
                    &image_row[cs.first * inp.c..][..len],
                );
            } else {
                for kw in cs.lo..cs.hi {
                    let iw = cs.first + (kw - cs.lo) * dw;
                    copy_short(
                        &mut taps[kw * icpg..(kw + 1) * icpg],
                        &image_row[iw * inp.c + channel..][..icpg],
                    );
                }
            }
        }
    }
}
