//! The register-blocked micro-kernel template shared by the SIMD tiers.
//!
//! A tile is `R` rows of A x `NB` panels of 16 columns, accumulated over the whole K in
//! registers, then handed to the fused epilogue. Each tier supplies its vector types and its
//! 4-byte dot-product step through [`Isa`]; the generic bodies are `#[inline(always)]` and are
//! instantiated inside one `#[target_feature]` entry per tier, so every intrinsic inlines.

use std::array;

use super::epilogue::Epilogue;
use crate::error::{Error, Result};
use crate::gemm::pack::{GROUP, GROUP_BYTES, PANEL};

/// Rows of A for one block: row `r` is `data[offsets[r]..][..k]`, checked at construction.
pub(crate) struct ARows<'a> {
    data: &'a [u8],
    offsets: &'a [usize],
    k: usize,
}

impl<'a> ARows<'a> {
    /// Checks that every row has `k` readable bytes.
    pub(crate) fn new(data: &'a [u8], offsets: &'a [usize], k: usize) -> Result<ARows<'a>> {
        if let Some((r, &o)) = offsets
            .iter()
            .enumerate()
            .find(|(_, o)| o.checked_add(k).is_none_or(|end| end > data.len()))
        {
            return Err(Error::Shape(format!(
                "gemm A row {r} at offset {o} needs {k} bytes but the A data has {}",
                data.len()
            )));
        }
        Ok(ARows { data, offsets, k })
    }

    /// Number of rows.
    pub(crate) fn len(&self) -> usize {
        self.offsets.len()
    }

    /// Row `r` as a slice of K bytes.
    pub(crate) fn row(&self, r: usize) -> &'a [u8] {
        &self.data[self.offsets[r]..][..self.k]
    }

    /// Reduction length.
    pub(crate) fn k(&self) -> usize {
        self.k
    }

    /// `(data from row 0, row stride)` when the rows are equally spaced, at least K apart
    /// (always for one row): row `r` is then `data[r·stride..][..K]`.
    pub(crate) fn uniform(&self) -> Option<(&'a [u8], usize)> {
        let first = *self.offsets.first()?;
        let ld = match self.offsets.get(1) {
            Some(&second) => second.checked_sub(first)?,
            None => self.k,
        };
        let equal = self
            .offsets
            .iter()
            .enumerate()
            .all(|(r, &o)| o == first + r * ld);
        (equal && ld >= self.k).then(|| (&self.data[first..], ld))
    }
}

/// Packed panels of 4-byte K groups (panel `p` starts at `p * kg * 64`).
#[derive(Clone, Copy)]
pub(crate) struct Panels<'a> {
    pub data: &'a [u8],
    pub kg: usize,
}

/// Four bytes of A starting at `4 * g` as a little-endian i32, zero-filled past the row end.
///
/// # Safety
/// `row` points at `k` readable bytes and `4 * g < k`.
#[inline(always)]
pub(crate) unsafe fn a_quad(row: *const u8, g: usize, k: usize) -> i32 {
    let at = GROUP * g;
    if at + GROUP <= k {
        // SAFETY: bytes at..at + 4 are inside the row (caller contract).
        unsafe { row.add(at).cast::<i32>().read_unaligned() }
    } else {
        // SAFETY: 1..=3 bytes remain in the row from `at`; each read is guarded by `rem`.
        unsafe {
            let rem = k - at;
            let byte = |i: usize| if i < rem { *row.add(at + i) as u32 } else { 0 };
            (byte(0) | byte(1) << 8 | byte(2) << 16) as i32
        }
    }
}

/// One tier's vector operations for the template.
pub(crate) trait Isa {
    /// 16 i32 accumulators (one panel row).
    type Acc: Copy;
    /// Four A bytes broadcast to every 32-bit lane.
    type A: Copy;
    /// One 64-byte group row of a panel.
    type B: Copy;

    /// Zeroed accumulators.
    ///
    /// # Safety
    /// The tier's target features are enabled in the (inlined-into) caller.
    unsafe fn zero() -> Self::Acc;
    /// Broadcast of four A bytes.
    ///
    /// # Safety
    /// As [`Isa::zero`].
    unsafe fn bcast(quad: i32) -> Self::A;
    /// Loads 64 bytes of a panel.
    ///
    /// # Safety
    /// As [`Isa::zero`], and `p` points at 64 readable bytes.
    unsafe fn load_b(p: *const u8) -> Self::B;
    /// `acc += sum over the 4 bytes of a * b`, exact.
    ///
    /// # Safety
    /// As [`Isa::zero`].
    unsafe fn dot(acc: Self::Acc, a: Self::A, b: Self::B) -> Self::Acc;
    /// Fused epilogue of one accumulator row: output row `i`, columns `j..j + lanes`.
    ///
    /// # Safety
    /// As [`Isa::zero`] and [`Epilogue::store_zmm`].
    unsafe fn store(ep: &Epilogue<'_>, acc: Self::Acc, i: usize, j: usize, lanes: usize);
    /// Extra exact terms after the main K loop (the AVX2 residual pairs), for panels
    /// `p0..p0 + NB`.
    ///
    /// # Safety
    /// As [`Isa::zero`]; `rows` point at `k` readable bytes each.
    #[inline(always)]
    unsafe fn finish<const R: usize, const NB: usize>(
        &self,
        _acc: &mut [[Self::Acc; NB]; R],
        _rows: &[*const u8; R],
        _k: usize,
        _p0: usize,
    ) {
    }
}

/// One K group of a tile: `acc[r][p] += quads[r] . b[p * stride..][..64]`.
///
/// # Safety
/// Target features of `K` enabled; `b + p * stride` points at 64 readable bytes, p < NB.
#[inline(always)]
unsafe fn step<K: Isa, const R: usize, const NB: usize>(
    acc: &mut [[K::Acc; NB]; R],
    b: *const u8,
    stride: usize,
    quads: &[i32; R],
) {
    // SAFETY: caller contract.
    unsafe {
        let bv: [K::B; NB] = array::from_fn(|p| K::load_b(b.add(p * stride)));
        for r in 0..R {
            let a = K::bcast(quads[r]);
            for p in 0..NB {
                acc[r][p] = K::dot(acc[r][p], a, bv[p]);
            }
        }
    }
}

/// One R x (NB x 16) tile over the whole K, with the epilogue.
///
/// # Safety
/// Target features of `K` enabled; `rows` point at `k` readable bytes each; panels
/// `p0..p0 + NB` exist; output rows `i0..i0 + R` exist and are not written concurrently.
#[inline(always)]
unsafe fn tile<K: Isa, const R: usize, const NB: usize>(
    isa: &K,
    rows: [*const u8; R],
    panels: Panels<'_>,
    p0: usize,
    ep: &Epilogue<'_>,
    i0: usize,
    k: usize,
) {
    let stride = panels.kg * GROUP_BYTES;
    // SAFETY: every pointer stays inside panel p0 + p (< count) at group g < kg, and inside
    // each row at byte < k (a_quad); the features are enabled by the caller.
    unsafe {
        let b = panels.data.as_ptr().add(p0 * stride);
        let mut acc = [[K::zero(); NB]; R];
        let full = k / GROUP;
        for g in 0..full {
            let quads = array::from_fn(|r| rows[r].add(GROUP * g).cast::<i32>().read_unaligned());
            step::<K, R, NB>(&mut acc, b.add(g * GROUP_BYTES), stride, &quads);
        }
        if full * GROUP < k {
            let quads = array::from_fn(|r| a_quad(rows[r], full, k));
            step::<K, R, NB>(&mut acc, b.add(full * GROUP_BYTES), stride, &quads);
        }
        isa.finish(&mut acc, &rows, k, p0);
        let n = ep.n();
        for (r, acc_row) in acc.iter().enumerate() {
            for (p, &x) in acc_row.iter().enumerate() {
                let j = (p0 + p) * PANEL;
                if j < n {
                    K::store(ep, x, i0 + r, j, PANEL.min(n - j));
                }
            }
        }
    }
}

/// R rows of A against panels `p_begin..p_end`, NB panels at a time then single panels.
///
/// # Safety
/// As [`tile`] for every panel in the range.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn rows_tile<K: Isa, const R: usize, const NB: usize>(
    isa: &K,
    a: &ARows<'_>,
    r0: usize,
    panels: Panels<'_>,
    p_begin: usize,
    p_end: usize,
    ep: &Epilogue<'_>,
    i0: usize,
) {
    let rows: [*const u8; R] = array::from_fn(|r| a.row(r0 + r).as_ptr());
    let mut p = p_begin;
    // SAFETY: forwarded contract; p + NB <= p_end (or p + 1 <= p_end) keeps panels in range.
    unsafe {
        while p + NB <= p_end {
            tile::<K, R, NB>(isa, rows, panels, p, ep, i0 + r0, a.k());
            p += NB;
        }
        while p < p_end {
            tile::<K, R, 1>(isa, rows, panels, p, ep, i0 + r0, a.k());
            p += 1;
        }
    }
}

/// The block loop: rows of `a` in groups of up to `MR` (A stays in L1), each against all
/// panels `p_begin..p_end` (kept in L2 by the caller's blocking). `MR` must be <= 8.
///
/// # Safety
/// Target features of `K` enabled; `p_end` <= the number of panels; output rows `i0..i0 + a.len()`
/// exist and no other thread writes their columns of these panels concurrently.
#[inline(always)]
pub(crate) unsafe fn block<K: Isa, const MR: usize, const NB: usize>(
    isa: &K,
    a: &ARows<'_>,
    i0: usize,
    panels: Panels<'_>,
    p_begin: usize,
    p_end: usize,
    ep: &Epilogue<'_>,
) {
    const { assert!(MR >= 1 && MR <= 8, "micro-tile rows are 1..=8") };
    let mut r0 = 0;
    while r0 < a.len() {
        let r = MR.min(a.len() - r0);
        macro_rules! rows {
            ($($n:literal)*) => {
                match r {
                    $($n => {
                        // SAFETY: forwarded contract; rows r0..r0 + $n exist in `a`.
                        unsafe { rows_tile::<K, $n, NB>(isa, a, r0, panels, p_begin, p_end, ep, i0) }
                    })*
                    _ => unreachable!("micro-tile rows are at most 8"),
                }
            };
        }
        rows!(1 2 3 4 5 6 7 8);
        r0 += r;
    }
}

/// Defines `gemm_block` for a stateless tier: [`block`] instantiated for `$isa` with the
/// calling module's `MR` x `NB` tiles inside one `#[target_feature(enable = $features)]`
/// function, so the whole template inlines with the tier's instructions. The attributes
/// given (the doc comment with its `# Safety` section) go on the function.
macro_rules! stateless_gemm_block {
    ($(#[$attr:meta])* $isa:ident, $features:literal) => {
        $(#[$attr])*
        #[target_feature(enable = $features)]
        pub(crate) unsafe fn gemm_block(
            a: &$crate::arch::gemm::kernel::ARows<'_>,
            i0: usize,
            panels: $crate::arch::gemm::kernel::Panels<'_>,
            p_begin: usize,
            p_end: usize,
            ep: &$crate::arch::gemm::epilogue::Epilogue<'_>,
        ) {
            // SAFETY: forwarded contract; the tier's features are enabled here.
            unsafe {
                $crate::arch::gemm::kernel::block::<$isa, MR, NB>(
                    &$isa, a, i0, panels, p_begin, p_end, ep,
                )
            }
        }
    };
}
pub(crate) use stateless_gemm_block;
