//! The tile operations the AMX GEMM driver is written against, so the same driver runs on
//! the real instructions ([`super::native::NativeTiles`]) and on the plain-Rust emulator
//! (`super::emulator::EmulatedTiles`, test builds).
//!
//! Granularity: tile *contents* do not survive between two `asm!` blocks (Rust treats
//! `tmm0-7` as clobber-only registers), so the unit of work is one whole output block —
//! zero the accumulators, run the whole K loop, store them — inside one block. The tile
//! *configuration* is per-thread CPU state that compiled Rust never touches, so it is
//! loaded once per GEMM call ([`TileSession`]) and released when the call ends.

use super::config::TileConfig;

/// Bytes between two rows of a packed B tile (16 columns x 4 K bytes).
pub(crate) const B_ROW_BYTES: usize = 64;
/// Bytes of one packed B tile (16 rows of K/4 groups x 64 bytes); the distance between
/// two consecutive K steps of one 16-column panel.
pub(crate) const B_TILE_BYTES: usize = 1024;
/// K bytes one `tdpbusd` consumes per row (one A tile row).
pub(crate) const K_STEP: usize = 64;
/// Rows of an A tile / C tile; also columns of a C tile (16 x i32 = 64 bytes).
pub(crate) const TILE_DIM: usize = 16;

/// Bytes of one K step of a packed 32-row A group: two 16 x 64-byte tiles back to back.
pub(crate) const A_STEP_BYTES: usize = 2 * TILE_DIM * K_STEP;

/// One output block of `MT x NT` 16x16 i32 tiles (`MT`, `NT` in 1..=2):
/// `C[16·i + r][16·j + c] = sum over s < k_steps, q < 64 of
///   A_i[r][a_steps[s] + q] · B_j[s][q / 4][4·c + q % 4]` (u8 x s8, wrapping i32 sums),
/// where row `r` of A tile `i` starts at `a[i] + r·lda`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BlockArgs {
    /// Row 0 of A tile 0 (`a[0]`) and tile 1 (`a[1]`, read only when `MT == 2`), before
    /// the step offsets: in place (rows `lda` apart, steps 64 bytes apart), packed by
    /// [`super::pack::pack_a_group`] (`lda` 64, steps [`A_STEP_BYTES`] apart), or the taps
    /// of a direct convolution (steps wherever the kernel's taps are).
    pub a: [*const u8; 2],
    /// Bytes between consecutive rows of an A tile.
    pub lda: usize,
    /// `k_steps` byte offsets: K step `s` of A tile `i` starts at `a[i] + a_steps[s]`.
    pub a_steps: *const usize,
    /// First packed tile of the 16-column B panel for C tile column 0 (`b[0]`) and 1
    /// (`b[1]`, read only when `NT == 2`); rows are [`B_ROW_BYTES`] apart and each K step
    /// advances [`B_TILE_BYTES`].
    pub b: [*const u8; 2],
    /// Number of 64-byte K steps, at least 1.
    pub k_steps: usize,
    /// Element (0, 0) of the C block; tile (i, j) starts at `c + 16·i rows + 16·j columns`.
    pub c: *mut i32,
    /// Bytes between consecutive C rows.
    pub ldc_bytes: usize,
    /// Start of [`PREFETCH_BYTES_PER_STEP`] x `k_steps` bytes to bring into L2 while the
    /// block runs (the driver points it at B the next blocks will read). Only a hint: any
    /// address is allowed, nothing is read through it.
    pub prefetch: *const u8,
}

/// Bytes of [`BlockArgs::prefetch`] requested per K step (sixteen cache lines: one B
/// tile, so two blocks' calls cover a whole next 32-column B block).
pub(crate) const PREFETCH_BYTES_PER_STEP: usize = 1024;

/// The tile-level operations of the AMX GEMM.
pub(crate) trait TileOps {
    /// `ldtilecfg`: makes `cfg` the current tile configuration of this thread.
    fn load_config(&mut self, cfg: &TileConfig);

    /// `tilerelease`: returns the tile state to its initial (unconfigured) state.
    fn release(&mut self);

    /// Computes one `MT x NT` output block (see [`BlockArgs`]) with tiles tmm0..3 as C
    /// (tile (i, j) in tmm(2i + j)), tmm4..5 as A and tmm6..7 as B, and stores it.
    ///
    /// # Safety
    /// The configuration from [`TileConfig::full_tiles`] is loaded; `k_steps >= 1`;
    /// `a_steps` points to `k_steps` readable offsets; for every used tile and step, the 16 rows x 64 bytes read through `args.a` / `args.b`
    /// are readable and the 16 rows x 64 bytes written through `args.c` are writable and
    /// not aliased by any live reference.
    unsafe fn block<const MT: usize, const NT: usize>(&mut self, args: &BlockArgs);

    /// Declares memory the following blocks may access (`writable`: may also store).
    /// The emulator checks every tile row against the declared regions; hardware ignores it.
    fn declare_region(&mut self, _start: *const u8, _bytes: usize, _writable: bool) {}
}

/// A loaded tile configuration; releases the tiles (`tilerelease`) when dropped, also on
/// an early return or a panic.
pub(crate) struct TileSession<'o, O: TileOps> {
    ops: &'o mut O,
}

impl<'o, O: TileOps> TileSession<'o, O> {
    /// Loads `cfg` into `ops` for the lifetime of the session.
    pub(crate) fn new(ops: &'o mut O, cfg: &TileConfig) -> Self {
        ops.load_config(cfg);
        TileSession { ops }
    }

    /// The configured tile operations.
    pub(crate) fn ops(&mut self) -> &mut O {
        self.ops
    }
}

impl<O: TileOps> Drop for TileSession<'_, O> {
    fn drop(&mut self) {
        self.ops.release();
    }
}
