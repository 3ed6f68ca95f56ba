//! Direct convolution on AMX tiles: the tiles read the receptive fields straight from a
//! zero-point padded copy of the NHWC input, with no im2col gather.
//!
//! For stride 1 and one group, the K bytes `(kh, kw, c)` of output pixel `(y, x)` come from
//! padded input pixel `(y + kh·DH, x + kw·DW)`, channel `c`. Numbering the outputs on the
//! padded grid instead (row `r = y·Wp + x`, `Wp` the padded width), that pixel is
//! `r + kh·DH·Wp + kw·DW`: every 64-byte K step of 16 consecutive rows is one tile with a row
//! stride of `C_in` bytes, at a fixed offset per step, when a step never straddles two taps
//! (`C_in` a multiple of 64) or a kernel row is contiguous and whole steps long (`DW` = 1,
//! `KW·C_in` a multiple of 64). Rows with `x >= W_out` (a few per output row) are computed on
//! the grid and never stored. The stride-2 stem runs here too, after a space-to-depth
//! transform (`space_to_depth`).

use std::cell::RefCell;

use crate::conv::{ConvGeometry, Nhwc};
use crate::error::{Error, Result};
use crate::ops::par_rows;

/// `C_in` must be a multiple of this (one tile row of K per tap and channel block).
const CHANNEL_BLOCK: usize = 64;

/// Whether `geom` runs as a direct convolution on the AMX tier.
pub(crate) fn eligible(geom: &ConvGeometry) -> bool {
    let c = geom.input.c;
    geom.stride == [1, 1]
        && geom.groups == 1
        && geom.kernel != [1, 1]
        && (c.is_multiple_of(CHANNEL_BLOCK)
            || (geom.dilation[1] == 1 && (geom.kernel[1] * c).is_multiple_of(CHANNEL_BLOCK)))
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
    let (i, p) = (geom.input, geom.padding);
    let padded = Nhwc::new(i.n, i.h + p.top + p.bottom, i.w + p.left + p.right, i.c);
    let unpadded = ConvGeometry {
        input: padded,
        padding: Default::default(),
        ..*geom
    };
    with_padded_grid(
        &unpadded,
        out,
        zero_point,
        |image, dst| {
            let src = &input[image * i.h * i.w * i.c..][..i.h * i.w * i.c];
            for (y, row) in src.chunks_exact(i.w * i.c).enumerate() {
                let at = ((y + p.top) * padded.w + p.left) * i.c;
                dst[at..at + row.len()].copy_from_slice(row);
            }
        },
        body,
    )
}

/// Calls `body` with the grid of the unpadded convolution `geom` over a buffer of
/// `geom.input` images that starts out as `fill_value` everywhere and that `fill(n, image)`
/// completes, image by image (on several threads when the batch allows).
///
/// # Errors
/// [`Error::Shape`] when `geom` is not [`eligible`] or has padding, or the sizes overflow;
/// `body`'s error.
pub(crate) fn with_padded_grid<R>(
    geom: &ConvGeometry,
    out: Nhwc,
    fill_value: u8,
    fill: impl Fn(usize, &mut [u8]) + Sync,
    body: impl FnOnce(&TapGrid<'_>) -> Result<R>,
) -> Result<R> {
    if !eligible(geom) || geom.padding != Default::default() {
        return Err(Error::Shape(format!(
            "direct conv: needs stride 1, one group, no padding left, whole 64-byte K steps, \
             got {geom:?}"
        )));
    }
    let i = geom.input;
    let overflow = || Error::Shape(format!("direct conv: input of {geom:?} overflows"));
    let image_bytes =
        i.h.checked_mul(i.w)
            .and_then(|px| px.checked_mul(i.c))
            .ok_or_else(overflow)?;
    let steps = tap_steps(geom, i.w);
    // The last 32-row group of the last image reads up to 31 grid rows past the image's
    // grid, plus the farthest tap.
    let last_row = (out.h * i.w).next_multiple_of(32);
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
        padded.resize(len, fill_value);
        let images = &mut padded[..i.n * image_bytes];
        par_rows(images, image_bytes, image_bytes, |first, chunk| {
            for (n, image) in chunk.chunks_exact_mut(image_bytes).enumerate() {
                fill(first + n, image);
            }
        });
        body(&TapGrid {
            data: &padded,
            image_bytes,
            images: i.n,
            lda: i.c,
            grid_w: i.w,
            out_h: out.h,
            out_w: out.w,
            steps,
        })
    })
}

/// The byte offset of each 64-byte K step in the `[KH][KW][C_in]` order of the weights:
/// whole contiguous kernel rows when `DW` = 1, else tap by tap.
fn tap_steps(geom: &ConvGeometry, wp: usize) -> Vec<usize> {
    let ([kh, kw], [dh, dw], c) = (geom.kernel, geom.dilation, geom.input.c);
    let (taps_per_run, run_bytes) = if dw == 1 { (1, kw * c) } else { (kw, c) };
    let mut steps = Vec::with_capacity(kh * kw * c / CHANNEL_BLOCK);
    for y in 0..kh {
        for x in 0..taps_per_run {
            let run = (y * dh * wp + x * dw) * c;
            steps.extend((0..run_bytes / CHANNEL_BLOCK).map(|b| run + b * CHANNEL_BLOCK));
        }
    }
    steps
}
