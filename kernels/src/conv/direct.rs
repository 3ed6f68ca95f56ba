//! Direct convolution on AMX tiles: the tiles read the receptive fields straight from a
//! zero-point padded copy of the NHWC input, with no im2col gather.
//!
//! For stride 1, one group and `C_in` a multiple of 64, the 64-byte K step `(kh, kw, c..c+64)`
//! of output pixel `(y, x)` is the 64 bytes at padded input pixel `(y + kh·DH, x + kw·DW)`,
//! channel `c`. Numbering the outputs on the padded grid instead (row `r = y·Wp + x`, `Wp`
//! the padded width), that pixel is `r + kh·DH·Wp + kw·DW`: every K step of 16 consecutive
//! rows is one tile with a row stride of `C_in` bytes, at a fixed offset per step. Rows with
//! `x >= W_out` (a few per output row) are computed on the grid and never stored.

use std::cell::RefCell;

use crate::conv::{ConvGeometry, Nhwc};
use crate::error::{Error, Result};

/// `C_in` must be a multiple of this (one tile row of K per tap and channel block).
const CHANNEL_BLOCK: usize = 64;

/// Whether `geom` runs as a direct convolution on the AMX tier.
pub(crate) fn eligible(geom: &ConvGeometry) -> bool {
    geom.stride == [1, 1]
        && geom.groups == 1
        && geom.input.c.is_multiple_of(CHANNEL_BLOCK)
        && geom.kernel != [1, 1]
}

/// The padded input and how grid rows map to K steps and to output pixels.
pub(crate) struct TapGrid<'a> {
    /// The padded images, `image_bytes` apart (with readable slack after the last one).
    pub data: &'a [u8],
    /// Bytes between two padded images.
    pub image_bytes: usize,
    /// Images (the batch).
    pub images: usize,
    /// Bytes between two grid rows: `C_in`.
    pub lda: usize,
    /// Padded width `Wp`: grid rows per output row.
    pub grid_w: usize,
    /// The output's height and width.
    pub out_h: usize,
    /// Output width; grid rows with `x >= out_w` are not stored.
    pub out_w: usize,
    /// Byte offset of each 64-byte K step from its row's start, in the weights' K order.
    pub steps: Vec<usize>,
}

impl TapGrid<'_> {
    /// Grid rows of one image: `out_h x grid_w`.
    pub(crate) fn rows_per_image(&self) -> usize {
        self.out_h * self.grid_w
    }

    /// Output rows (pixels) of the whole batch.
    pub(crate) fn out_rows(&self) -> usize {
        self.images * self.out_h * self.out_w
    }

    /// The output row of grid row `r` of image `n`, and how many grid rows from `r` on map
    /// to consecutive output rows (0 when `r` is a column past the output's width).
    pub(crate) fn out_run(&self, n: usize, r: usize) -> (usize, usize) {
        let (y, x) = (r / self.grid_w, r % self.grid_w);
        let valid = self.out_w.saturating_sub(x);
        ((n * self.out_h + y) * self.out_w + x, valid)
    }
}

thread_local! {
    /// The caller's padded input, kept from call to call (it is as large as the input, and a
    /// fresh allocation would be mapped and faulted in on every call).
    static PADDED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Pads `input` (u8 NHWC, `geom.input`) with `zero_point` as `geom.padding` says and calls
/// `body` with the grid over it.
///
/// # Errors
/// [`Error::Shape`] when `geom` is not [`eligible`] or the sizes overflow; `body`'s error.
pub(crate) fn with_grid<R>(
    geom: &ConvGeometry,
    out: Nhwc,
    input: &[u8],
    zero_point: u8,
    body: impl FnOnce(&TapGrid<'_>) -> Result<R>,
) -> Result<R> {
    if !eligible(geom) {
        return Err(Error::Shape(format!(
            "direct conv: needs stride 1, one group and C_in % 64 == 0, got {geom:?}"
        )));
    }
    let (i, p) = (geom.input, geom.padding);
    let (hp, wp) = (i.h + p.top + p.bottom, i.w + p.left + p.right);
    let overflow = || Error::Shape(format!("direct conv: padded input of {geom:?} overflows"));
    let image_bytes = hp
        .checked_mul(wp)
        .and_then(|px| px.checked_mul(i.c))
        .ok_or_else(overflow)?;
    let steps = tap_steps(geom, wp);
    // The last 32-row group of the last image reads up to 31 grid rows past the image's
    // grid, plus the farthest tap.
    let last_row = (out.h * wp).next_multiple_of(32);
    let reach = steps.iter().max().map_or(0, |s| s + CHANNEL_BLOCK);
    let len =
        i.n.saturating_sub(1)
            .checked_mul(image_bytes)
            .and_then(|b| b.checked_add(last_row * i.c + reach))
            .ok_or_else(overflow)?
            .max(i.n * image_bytes);
    PADDED.with(|cell| {
        let mut padded = cell.borrow_mut();
        padded.clear();
        padded.resize(len, zero_point);
        for (src, dst) in input
            .chunks_exact(i.h * i.w * i.c)
            .zip(padded.chunks_mut(image_bytes))
        {
            for (y, row) in src.chunks_exact(i.w * i.c).enumerate() {
                let at = ((y + p.top) * wp + p.left) * i.c;
                dst[at..at + row.len()].copy_from_slice(row);
            }
        }
        body(&TapGrid {
            data: &padded,
            image_bytes,
            images: i.n,
            lda: i.c,
            grid_w: wp,
            out_h: out.h,
            out_w: out.w,
            steps,
        })
    })
}

/// The byte offset of each 64-byte K step in the `[KH][KW][C_in]` order of the weights.
fn tap_steps(geom: &ConvGeometry, wp: usize) -> Vec<usize> {
    let ([kh, kw], [dh, dw], c) = (geom.kernel, geom.dilation, geom.input.c);
    let mut steps = Vec::with_capacity(kh * kw * c / CHANNEL_BLOCK);
    for y in 0..kh {
        for x in 0..kw {
            let tap = (y * dh * wp + x * dw) * c;
            steps.extend((0..c / CHANNEL_BLOCK).map(|b| tap + b * CHANNEL_BLOCK));
        }
    }
    steps
}
