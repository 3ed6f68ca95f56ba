//! The AMX GEMM driver: the A operand, the 2x2-tile blocking and the hand-off to the
//! epilogue, written once over [`TileOps`] so it runs on the hardware and on the emulator.
//!
//! A call's rows are read in place when they are equally spaced and K is a whole number of
//! 64-byte tile rows (a plain GEMM's A, a convolution's gathered rows), whole 32-row groups
//! at a time; the other rows are packed, 32 at a time, into the tile layout of
//! [`super::pack::pack_a_group`] (K padded to 64, each K step one contiguous 2 KB pair of
//! tiles). Output blocks are 32 rows x 32 columns (tmm0-3), each computed over the whole K
//! in one [`TileOps::block`] call into one of two 4 KB buffers and handed to a sink (the
//! epilogue) after the next block's tiles are issued, so the vector epilogue overlaps the
//! tile unit. Column blocks are the outer loop: one 32-column B block (2 x K_pad x 16
//! bytes) is reused from L1/L2 by every row group while the next one is prefetched into
//! L2; callers size a call's rows so they stay in L2 (the GEMM driver's jobs). Edge blocks
//! use the 1x1, 1x2 and 2x1 tile variants.

use aligned_vec::{AVec, ConstAlign};

use super::config::TileConfig;
use super::native::NativeTiles;
use super::pack::{A_GROUP_ROWS, AmxPackedB, a_group_bytes, pack_a_group};
use super::tile_ops::{
    A_STEP_BYTES, B_ROW_BYTES, BlockArgs, K_STEP, PREFETCH_BYTES_PER_STEP, TILE_DIM, TileOps,
    TileSession,
};
use crate::error::{Error, Result};

/// Rows (and columns) of one output block: two tiles; also the row stride of a [`CBlock`].
pub(crate) const BLOCK_DIM: usize = 2 * TILE_DIM;

/// Row strides (bytes) at which the 16 rows of an in-place A tile fall into at most 8 of
/// the L1's 64 sets (4 KB apart): with the B tiles they overflow its 12 ways and steps
/// miss. Measured on Sapphire Rapids, 1 thread: 2048³ 10.0 ms in place, 7.7 ms packed.
const ALIASING_STRIDE: usize = 512;

/// Up to this many columns, rows are read in place even where they load badly: few column
/// blocks reuse them (3136x64x576: 0.115 ms in place, 0.175 ms packed; 784x128x1152 0.111 /
/// 0.125 ms), while 128x768x768 with misaligned rows runs 0.076 ms in place, 0.064 packed.
const IN_PLACE_MAX_COLUMNS: usize = 256;

/// A thread's buffer for the packed A groups of a call, reused from call to call.
pub(crate) type ATiles = AVec<u8, ConstAlign<64>>;

/// A fresh, empty [`ATiles`].
pub(crate) fn a_tiles() -> ATiles {
    AVec::new(64)
}

/// The A operand of [`gemm_tiles`]: `m` rows of K bytes, the first `in_place_rows` (a
/// multiple of 32) read where they are, the rest packed into tiles.
pub(crate) struct AOperand<'x> {
    m: usize,
    /// `(data, lda)`: K step `s` of row `i < in_place_rows` is
    /// `data[i·lda + in_place_steps[s]..][..64]`.
    in_place: (&'x [u8], usize),
    in_place_rows: usize,
    /// Byte offset of each K step of an in-place row.
    in_place_steps: &'x [usize],
    /// Rows `in_place_rows..m`, 32 per group in the layout of [`pack_a_group`].
    packed: &'x [u8],
    /// Byte offset of each K step of a packed group.
    packed_steps: &'x [usize],
}

impl<'x> AOperand<'x> {
    /// Prepares rows `row(i)`, `i < m` (at least `b.k()` bytes each), for GEMMs against
    /// `columns` columns of `b`. The whole 32-row groups are read in place where `uniform`
    /// gives the same rows as `(data, lda)` (row `i` at `data[i·lda..]`), K is a multiple of
    /// 64 and either the rows are reused by few column blocks (at most
    /// [`IN_PLACE_MAX_COLUMNS`]: a copy would cost more than it saves) or they load well in
    /// place (64-byte aligned, `lda` not a multiple of [`ALIASING_STRIDE`]); all other rows
    /// are packed into `a_tiles`, the contiguous tile layout of [`pack_a_group`].
    pub(crate) fn new<'a>(
        b: &'x AmxPackedB,
        m: usize,
        columns: usize,
        row: impl Fn(usize) -> &'a [u8],
        uniform: Option<(&'x [u8], usize)>,
        a_tiles: &'x mut ATiles,
    ) -> AOperand<'x> {
        let k = b.k();
        let whole = m / A_GROUP_ROWS * A_GROUP_ROWS;
        let fits = |&(data, lda): &(&[u8], usize)| {
            let loads_well =
                !lda.is_multiple_of(ALIASING_STRIDE) && (data.as_ptr() as usize).is_multiple_of(64);
            whole > 0
                && k == b.k_padded()
                && lda >= k
                && (columns <= IN_PLACE_MAX_COLUMNS || loads_well)
                && (whole - 1) * lda + k <= data.len()
        };
        let (in_place, in_place_rows) = match uniform.filter(fits) {
            Some(view) => (view, whole),
            None => ((&[][..], 0), 0),
        };
        let group_bytes = a_group_bytes(b.k_padded());
        a_tiles.resize((m - in_place_rows).div_ceil(A_GROUP_ROWS) * group_bytes, 0);
        if group_bytes > 0 {
            for (g, out) in a_tiles.chunks_exact_mut(group_bytes).enumerate() {
                let first = in_place_rows + g * A_GROUP_ROWS;
                let count = (m - first).min(A_GROUP_ROWS);
                pack_a_group(|r| row(first + r), count, k, out);
            }
        }
        let (in_place_steps, packed_steps) = b.a_step_tables();
        AOperand {
            m,
            in_place,
            in_place_rows,
            in_place_steps,
            packed: a_tiles,
            packed_steps,
        }
    }

    /// The rows of a direct convolution, all read in place: K step `s` of row `i` is
    /// `data[i·lda + steps[s]..][..64]`, also for the rows of the last 32-row group past
    /// `m` (their sums are computed and never handed to the sink).
    ///
    /// # Errors
    /// [`Error::Shape`] when `steps` does not have one entry per 64-byte K step of `b`, or
    /// `data` is too short for the rows of every whole group.
    pub(crate) fn taps(
        b: &AmxPackedB,
        m: usize,
        data: &'x [u8],
        lda: usize,
        steps: &'x [usize],
    ) -> Result<AOperand<'x>> {
        let rows = m.next_multiple_of(A_GROUP_ROWS);
        let reach = steps.iter().max().map_or(0, |&s| s + K_STEP);
        let need = (rows.max(1) - 1) * lda + reach;
        if steps.len() != b.k_padded() / K_STEP || b.k() != b.k_padded() || data.len() < need {
            return Err(Error::Shape(format!(
                "amx direct conv: {} step offsets for K = {} (padded {}), {} rows of stride \
                 {lda} need {need} bytes, have {}",
                steps.len(),
                b.k(),
                b.k_padded(),
                rows,
                data.len()
            )));
        }
        Ok(AOperand {
            m,
            in_place: (data, lda),
            in_place_rows: rows,
            in_place_steps: steps,
            packed: &[],
            packed_steps: &[],
        })
    }

    /// Rows.
    pub(crate) fn m(&self) -> usize {
        self.m
    }

    /// `(tile pointers, lda, step offsets)` of the 32-row group starting at row `32·g`
    /// (see [`BlockArgs`]).
    fn group(&self, g: usize, group_bytes: usize) -> ([*const u8; 2], usize, &[usize]) {
        let i0 = g * A_GROUP_ROWS;
        if i0 < self.in_place_rows {
            let (data, lda) = self.in_place;
            let a0 = data[i0 * lda..].as_ptr();
            let a1 = data[(i0 + TILE_DIM) * lda..].as_ptr();
            ([a0, a1], lda, self.in_place_steps)
        } else {
            let at = (i0 - self.in_place_rows) / A_GROUP_ROWS * group_bytes;
            let a0 = self.packed[at..].as_ptr();
            let a1 = self.packed[at + A_STEP_BYTES / 2..].as_ptr();
            ([a0, a1], B_ROW_BYTES, self.packed_steps)
        }
    }
}

/// One finished output block of raw i32 sums: element `(i0 + r, j0 + c)` of the product is
/// `data[r * BLOCK_DIM + c]` for `r < rows`, `c < cols` (`rows, cols <= 32`).
pub(crate) struct CBlock<'b> {
    /// The sums, rows [`BLOCK_DIM`] values apart.
    pub data: &'b [i32],
    /// First output row.
    pub i0: usize,
    /// Valid rows.
    pub rows: usize,
    /// First output column.
    pub j0: usize,
    /// Valid columns.
    pub cols: usize,
}

/// Two 32 x 32 i32 blocks: the tiles store one while the sink reads the other.
#[repr(C, align(64))]
struct BlockPair([[i32; BLOCK_DIM * BLOCK_DIM]; 2]);

/// Raw i32 GEMM on AMX tiles: the product of the rows of `a` with weight columns
/// `n0..n0 + nb` (no zero-point term, no epilogue), handed to `sink` one finished block of
/// at most 32 x 32 at a time (each output element exactly once,
/// while the block is still in L1). Configures the tiles of the calling thread once and
/// releases them before returning.
///
/// # Errors
/// [`Error::TierUnavailable`] when AMX cannot run here; otherwise as [`gemm_tiles_with`].
pub(crate) fn gemm_tiles(
    b: &AmxPackedB,
    a: &AOperand<'_>,
    n0: usize,
    nb: usize,
    sink: impl FnMut(&CBlock<'_>) -> Result<()>,
) -> Result<()> {
    let mut tiles = NativeTiles::new()?;
    gemm_tiles_with(&mut tiles, b, a, n0, nb, sink)
}

/// [`gemm_tiles`] on any [`TileOps`] implementation (the hardware or the emulator).
///
/// The sink of one block runs after the tiles of the next block have been issued, so the
/// out-of-order core overlaps the (vector) epilogue with the tile unit's work.
///
/// # Errors
/// [`Error::Shape`] when `n0 + nb > N` or `a` was prepared for another K; the first
/// error of `sink`. Sums wrap like `tdpbusd` when K exceeds the exact bound
/// of `int8-math.md` (K <= 65 793); callers check K.
pub(crate) fn gemm_tiles_with<O: TileOps>(
    ops: &mut O,
    b: &AmxPackedB,
    a: &AOperand<'_>,
    n0: usize,
    nb: usize,
    mut sink: impl FnMut(&CBlock<'_>) -> Result<()>,
) -> Result<()> {
    let n = b.n();
    if n0.checked_add(nb).is_none_or(|end| end > n) {
        return Err(Error::Shape(format!(
            "amx gemm: columns {n0}..{n0}+{nb} exceed the packed N = {n}"
        )));
    }
    let group_bytes = a_group_bytes(b.k_padded());
    let m = a.m();
    let packed_rows = m.saturating_sub(a.in_place_rows);
    if a.packed.len() != packed_rows.div_ceil(A_GROUP_ROWS) * group_bytes {
        return Err(Error::Shape(format!(
            "amx gemm: {} packed A bytes do not hold {} rows of K = {}",
            a.packed.len(),
            packed_rows,
            b.k()
        )));
    }
    let mut blocks = BlockPair([[0; BLOCK_DIM * BLOCK_DIM]; 2]);
    if m == 0 || nb == 0 {
        return Ok(());
    }
    let (first_panel, end_panel) = (n0 / TILE_DIM, (n0 + nb).div_ceil(TILE_DIM));
    let block_of = |p: usize, g: usize| {
        let (col0, nt) = (p * TILE_DIM, (end_panel - p).min(2));
        let (lo, hi) = (col0.max(n0), (col0 + nt * TILE_DIM).min(n0 + nb));
        let i0 = g * A_GROUP_ROWS;
        (i0, (m - i0).min(BLOCK_DIM), lo, hi - lo, lo - col0)
    };
    if b.k() == 0 {
        for p in (first_panel..end_panel).step_by(2) {
            for g in 0..m.div_ceil(A_GROUP_ROWS) {
                let (i0, rows, j0, cols, _) = block_of(p, g);
                sink(&CBlock {
                    data: &blocks.0[0],
                    i0,
                    rows,
                    j0,
                    cols,
                })?;
            }
        }
        return Ok(());
    }
    ops.declare_region(b.bytes().as_ptr(), b.bytes().len(), false);
    ops.declare_region(a.packed.as_ptr(), a.packed.len(), false);
    ops.declare_region(a.in_place.0.as_ptr(), a.in_place.0.len(), false);
    ops.declare_region(blocks.0.as_ptr().cast(), size_of_val(&blocks.0), true);

    let mut session = TileSession::new(ops, &TileConfig::full_tiles());
    let prefetch_bytes = b.k_padded() / K_STEP * PREFETCH_BYTES_PER_STEP;
    // The block computed last, waiting for its sink.
    let mut pending: Option<Pending> = None;
    let mut next = 0;
    for p in (first_panel..end_panel).step_by(2) {
        let nt = (end_panel - p).min(2);
        let b_tiles = [b.panel(p).as_ptr(), b.panel(p + nt - 1).as_ptr()];
        // The next column block (panels p+2, p+3: contiguous), half of it during each of
        // the first two row groups (again, from L2, by the later ones), so it is in L2 when
        // its turn comes even with few rows (a hint: past the end of B is harmless).
        let next_b = b_tiles[0].wrapping_add(2 * TILE_DIM * b.k_padded());
        for g in 0..m.div_ceil(A_GROUP_ROWS) {
            let (i0, rows, j0, cols, skip) = block_of(p, g);
            let (a_tiles, lda, a_steps) = a.group(g, group_bytes);
            let args = BlockArgs {
                a: a_tiles,
                lda,
                a_steps: a_steps.as_ptr(),
                b: b_tiles,
                k_steps: b.k_padded() / K_STEP,
                c: blocks.0[next].as_mut_ptr(),
                ldc_bytes: BLOCK_DIM * 4,
                prefetch: next_b.wrapping_add(g % 2 * prefetch_bytes),
            };
            // SAFETY: the session loaded the full-tiles config; k_padded >= 64 since k >= 1;
            // both step tables of `a` hold K_pad / 64 offsets (built so by `AmxPackedB::new`,
            // checked by `AOperand::taps`).
            // A: in place, rows i0..i0+32 < in_place_rows hold every step's 64 bytes (checked
            // by `AOperand::new` / `AOperand::taps`); packed, the group holds K_pad / 64 steps of two 1 KB tiles
            // (`group_bytes`, length checked above). B:
            // panels p and p+nt-1 < panels() each hold K_pad/64 tiles. C: the 32 x 32 block
            // `next` with 128-byte rows, which no live reference covers (the pending block
            // is the other one).
            unsafe { run_block(session.ops(), rows.div_ceil(TILE_DIM), nt, &args) };
            if let Some(done) = pending {
                emit(&mut sink, &blocks, done)?;
            }
            pending = Some(Pending {
                buf: next,
                i0,
                rows,
                j0,
                cols,
                skip,
            });
            next ^= 1;
        }
    }
    if let Some(done) = pending {
        emit(&mut sink, &blocks, done)?;
    }
    Ok(())
}

/// A finished block waiting for its sink: which of the two buffers holds it, its output
/// rows and columns (as in [`CBlock`]), and the columns of the buffer before `j0`.
#[derive(Clone, Copy)]
struct Pending {
    buf: usize,
    i0: usize,
    rows: usize,
    j0: usize,
    cols: usize,
    skip: usize,
}

/// Hands the finished block `done` to `sink`.
fn emit(
    sink: &mut impl FnMut(&CBlock<'_>) -> Result<()>,
    blocks: &BlockPair,
    done: Pending,
) -> Result<()> {
    sink(&CBlock {
        data: &blocks.0[done.buf][done.skip..],
        i0: done.i0,
        rows: done.rows,
        j0: done.j0,
        cols: done.cols,
    })
}

/// [`gemm_tiles_with`] on strided A: row `i` is `a[i·lda..][..K]`, read in place where
/// `in_place` allows and [`AOperand::new`] can, packed otherwise.
///
/// # Errors
/// As [`gemm_tiles_with`], and [`Error::Length`] when `a` is shorter than `(m-1)·lda + K`.
#[cfg(test)]
#[allow(
    clippy::too_many_arguments,
    reason = "strided GEMM operands, as BLAS has"
)]
pub(crate) fn gemm_i32_with<O: TileOps>(
    ops: &mut O,
    b: &AmxPackedB,
    a: &[u8],
    lda: usize,
    m: usize,
    n0: usize,
    nb: usize,
    acc: &mut [i32],
    ldacc: usize,
    in_place: bool,
) -> Result<()> {
    let need_a = span("a", m, lda, b.k())?;
    if a.len() < need_a {
        return Err(Error::Length {
            what: "amx gemm: a ((m-1)·lda + k bytes)",
            expected: need_a,
            actual: a.len(),
        });
    }
    validate_output(b, m, n0, nb, acc.len(), ldacc)?;
    let mut packed = a_tiles();
    let uniform = in_place.then_some((a, lda));
    let a = AOperand::new(b, m, nb, |i| &a[i * lda..][..b.k()], uniform, &mut packed);
    gemm_tiles_with(ops, b, &a, n0, nb, |blk| {
        for r in 0..blk.rows {
            let out = (blk.i0 + r) * ldacc + blk.j0 - n0;
            acc[out..out + blk.cols].copy_from_slice(&blk.data[r * BLOCK_DIM..][..blk.cols]);
        }
        Ok(())
    })
}

/// Dispatches to the `mt x nt` tile variant of [`TileOps::block`].
///
/// # Safety
/// As [`TileOps::block`].
unsafe fn run_block<O: TileOps>(ops: &mut O, mt: usize, nt: usize, args: &BlockArgs) {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        match (mt, nt) {
            (1, 1) => ops.block::<1, 1>(args),
            (1, _) => ops.block::<1, 2>(args),
            (_, 1) => ops.block::<2, 1>(args),
            _ => ops.block::<2, 2>(args),
        }
    }
}

/// `(m-1)·ld + width`, the extent of `m` rows with stride `ld`.
#[cfg(test)]
fn span(what: &str, m: usize, ld: usize, width: usize) -> Result<usize> {
    m.checked_sub(1)
        .map_or(Some(0), |last| last.checked_mul(ld)?.checked_add(width))
        .ok_or_else(|| {
            Error::Shape(format!(
                "amx gemm: {what} of {m} rows with stride {ld} overflows usize"
            ))
        })
}

/// Checks the output operands of [`gemm_i32_with`].
#[cfg(test)]
fn validate_output(
    b: &AmxPackedB,
    m: usize,
    n0: usize,
    nb: usize,
    acc_len: usize,
    ldacc: usize,
) -> Result<()> {
    let n = b.n();
    if n0.checked_add(nb).is_none_or(|end| end > n) {
        return Err(Error::Shape(format!(
            "amx gemm: columns {n0}..{n0}+{nb} exceed the packed N = {n}"
        )));
    }
    if m > 1 && nb > 0 && ldacc < nb {
        return Err(Error::Shape(format!(
            "amx gemm: ldacc = {ldacc} is below nb = {nb}, output rows would overlap"
        )));
    }
    let need_acc = span("acc", m, ldacc, nb)?;
    if acc_len < need_acc {
        return Err(Error::Length {
            what: "amx gemm: acc ((m-1)·ldacc + nb values)",
            expected: need_acc,
            actual: acc_len,
        });
    }
    Ok(())
}
