//! The AMX GEMM driver: validation, A staging and the 2x2-tile blocking, written once over
//! [`TileOps`] so it runs on the hardware and on the emulator alike.
//!
//! Blocking: output blocks of 32 rows x 32 columns (tmm0-3), each computed over the whole
//! K in one [`TileOps::block`] call — accumulators never leave the tiles mid-reduction, so
//! C is written exactly once (the probe in `kernels-prior-art.md` §10 measured ~100 cycles
//! of drain per block and found C traffic to be the limit when K was split). Row blocks
//! are the outer loop, so one 32-row A block (32 x K_pad bytes) is reused from L1/L2 by
//! every column block, and B is streamed once per row block: callers should size a call's
//! columns so that `nb x K_pad` bytes of B stay in L2 (about 1 MB). Edge blocks use
//! the 1x1, 1x2 and 2x1 tile variants and a zero-padded copy of A; C tiles that would
//! cross the output's edge go to a 4 KB scratch block and only the valid part is copied.
//!
//! Intended tuning, to be measured on AMX hardware: issue the next step's loads between
//! the `tdpbusd`s (software pipelining measured +10-15 % with B from L2), a 3x1/1x3 shape
//! when N or M is a single tile wide, and storing C straight into the fused epilogue's
//! L1 buffer.

use aligned_vec::{AVec, ConstAlign, avec};

use super::config::TileConfig;
use super::native::NativeTiles;
use super::pack::AmxPackedB;
use super::tile_ops::{BlockArgs, K_STEP, TILE_DIM, TileOps, TileSession};
use crate::error::{Error, Result};

/// Rows (and columns) of one output block: two tiles.
const BLOCK_DIM: usize = 2 * TILE_DIM;

/// Scratch for one output block whose tiles cross the output's edges.
#[repr(C, align(64))]
struct EdgeBlock([i32; BLOCK_DIM * BLOCK_DIM]);

/// Raw i32 GEMM on AMX tiles: `acc[i·ldacc + j] = sum_{kk<k} a[i·lda + kk] · w[n0 + j][kk]`
/// for `i < m`, `j < nb` (overwrites; no zero-point term, no epilogue). Configures the tiles
/// of the calling thread once and releases them before returning.
///
/// # Errors
/// [`Error::TierUnavailable`] when AMX cannot run here; otherwise as [`gemm_i32_with`].
#[allow(
    clippy::too_many_arguments,
    reason = "strided GEMM operands, as BLAS does"
)]
pub(crate) fn gemm_i32(
    b: &AmxPackedB,
    a: &[u8],
    lda: usize,
    m: usize,
    n0: usize,
    nb: usize,
    acc: &mut [i32],
    ldacc: usize,
) -> Result<()> {
    let mut tiles = NativeTiles::new()?;
    gemm_i32_with(&mut tiles, b, a, lda, m, n0, nb, acc, ldacc)
}

/// [`gemm_i32`] on any [`TileOps`] implementation (the hardware or the emulator).
///
/// # Errors
/// [`Error::Shape`] when `n0 + nb > N`, output rows overlap (`m > 1` and `ldacc < nb`) or
/// the strides overflow; [`Error::Length`] when `a` is shorter than `(m-1)·lda + K` or
/// `acc` shorter than `(m-1)·ldacc + nb`. Sums wrap like `tdpbusd` when K exceeds the exact
/// bound of `int8-math.md` (K <= 65 793); callers check K.
#[allow(
    clippy::too_many_arguments,
    reason = "strided GEMM operands, as BLAS does"
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
) -> Result<()> {
    validate(b, a.len(), lda, m, n0, nb, acc.len(), ldacc)?;
    let k = b.k();
    if m == 0 || nb == 0 {
        return Ok(());
    }
    if k == 0 {
        for i in 0..m {
            acc[i * ldacc..i * ldacc + nb].fill(0);
        }
        return Ok(());
    }
    let k_padded = b.k_padded();
    // A is read in place only where every tile row is a real row holding whole K steps.
    let k_in_place = k == k_padded;
    let mut a_panel: AVec<u8, ConstAlign<64>> = if k_in_place && m.is_multiple_of(TILE_DIM) {
        AVec::new(64)
    } else {
        avec![[64]| 0u8; BLOCK_DIM * k_padded]
    };
    let mut edge = EdgeBlock([0; BLOCK_DIM * BLOCK_DIM]);

    ops.declare_region(a.as_ptr(), a.len(), false);
    ops.declare_region(b.bytes().as_ptr(), b.bytes().len(), false);
    ops.declare_region(a_panel.as_ptr(), a_panel.len(), false);
    ops.declare_region(acc.as_ptr().cast(), size_of_val(acc), true);
    ops.declare_region(edge.0.as_ptr().cast(), size_of_val(&edge.0), true);

    let mut session = TileSession::new(ops, &TileConfig::full_tiles());
    let (first_panel, end_panel) = (n0 / TILE_DIM, (n0 + nb).div_ceil(TILE_DIM));
    for i0 in (0..m).step_by(BLOCK_DIM) {
        let rows = (m - i0).min(BLOCK_DIM);
        let mt = rows.div_ceil(TILE_DIM);
        let (a_tiles, a_stride) = if k_in_place && rows.is_multiple_of(TILE_DIM) {
            let a0 = a[i0 * lda..].as_ptr();
            let a1 = if mt == 2 {
                a[(i0 + TILE_DIM) * lda..].as_ptr()
            } else {
                a0
            };
            ([a0, a1], lda)
        } else {
            stage_rows(&mut a_panel, a, lda, i0, rows, k, k_padded);
            let tile1 = a_panel[TILE_DIM * k_padded..].as_ptr();
            ([a_panel.as_ptr(), tile1], k_padded)
        };
        for p in (first_panel..end_panel).step_by(2) {
            let nt = (end_panel - p).min(2);
            let col0 = p * TILE_DIM;
            let cols = nt * TILE_DIM;
            let direct = rows == mt * TILE_DIM && col0 >= n0 && col0 + cols <= n0 + nb;
            let (c, ldc_bytes) = if direct {
                (acc[i0 * ldacc + col0 - n0..].as_mut_ptr(), ldacc * 4)
            } else {
                (edge.0.as_mut_ptr(), BLOCK_DIM * 4)
            };
            let args = BlockArgs {
                a: a_tiles,
                lda: a_stride,
                b: [b.panel(p).as_ptr(), b.panel(p + nt - 1).as_ptr()],
                k_steps: k_padded / K_STEP,
                c,
                ldc_bytes,
            };
            // SAFETY: the session loaded the full-tiles config; k_padded >= 64 since k >= 1.
            // A: in place, the rows i0..i0+16·mt exist (rows == 16·mt) and each reads K = K_pad
            // bytes, inside a (validated >= (m-1)·lda + k); staged, 32 rows of K_pad bytes lie
            // in `a_panel`. B: panels p and p+nt-1 < panels() each hold K_pad/64 tiles.
            // C: direct, rows i0..i0+16·mt < m and columns col0-n0..+cols <= nb with
            // ldacc >= nb, inside acc (validated >= (m-1)·ldacc + nb), unaliased (&mut);
            // otherwise the 32 x 32 `edge` block with 128-byte rows.
            unsafe { run_block(session.ops(), mt, nt, &args) };
            if !direct {
                let (lo, hi) = (col0.max(n0), (col0 + cols).min(n0 + nb));
                for r in 0..rows {
                    let out = (i0 + r) * ldacc + lo - n0;
                    acc[out..out + hi - lo]
                        .copy_from_slice(&edge.0[r * BLOCK_DIM + lo - col0..][..hi - lo]);
                }
            }
        }
    }
    Ok(())
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

/// Copies rows `i0..i0 + rows` of A (K bytes each) into the 32-row panel with K_pad-byte
/// rows, zero-filling the K tail and the rows past the output's edge.
fn stage_rows(
    panel: &mut [u8],
    a: &[u8],
    lda: usize,
    i0: usize,
    rows: usize,
    k: usize,
    k_padded: usize,
) {
    for (r, dst) in panel.chunks_exact_mut(k_padded).enumerate() {
        if r < rows {
            let src = &a[(i0 + r) * lda..][..k];
            dst[..k].copy_from_slice(src);
            dst[k..].fill(0);
        } else {
            dst.fill(0);
        }
    }
}

/// Checks the operands of [`gemm_i32_with`].
#[allow(clippy::too_many_arguments, reason = "mirrors gemm_i32_with")]
fn validate(
    b: &AmxPackedB,
    a_len: usize,
    lda: usize,
    m: usize,
    n0: usize,
    nb: usize,
    acc_len: usize,
    ldacc: usize,
) -> Result<()> {
    let n = b.n();
    if n0.checked_add(nb).is_none_or(|end| end > n) {
        return Err(Error::Shape(format!(
            "amx gemm_i32: columns {n0}..{n0}+{nb} exceed the packed N = {n}"
        )));
    }
    if m > 1 && nb > 0 && ldacc < nb {
        return Err(Error::Shape(format!(
            "amx gemm_i32: ldacc = {ldacc} is below nb = {nb}, output rows would overlap"
        )));
    }
    let span = |what: &str, ld: usize, width: usize| {
        m.checked_sub(1)
            .map_or(Some(0), |last| last.checked_mul(ld)?.checked_add(width))
            .ok_or_else(|| {
                Error::Shape(format!(
                    "amx gemm_i32: {what} of {m} rows with stride {ld} overflows usize"
                ))
            })
    };
    let need_a = span("a", lda, b.k())?;
    if a_len < need_a {
        return Err(Error::Length {
            what: "amx gemm_i32: a ((m-1)·lda + k bytes)",
            expected: need_a,
            actual: a_len,
        });
    }
    let need_acc = span("acc", ldacc, nb)?;
    if acc_len < need_acc {
        return Err(Error::Length {
            what: "amx gemm_i32: acc ((m-1)·ldacc + nb values)",
            expected: need_acc,
            actual: acc_len,
        });
    }
    Ok(())
}
