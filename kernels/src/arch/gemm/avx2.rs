//! AVX2, exact: `vpmaddubsw` + `vpmaddwd(ones)` + `vpaddd` over the fast panels, whose pairs
//! were all proven safe at pack time, then the same step over the residual groups (the
//! other, also safe, halves of the pairs that were split, per 8-column half row). No step
//! can saturate, so the sum is the true i32 dot product for every input.
//!
//! Blocking: 4 rows x 1 panel = 8 ymm accumulators + ones + 2 panel halves + broadcast +
//! temporaries (MLAS's AVX2 u8s8 shape).

use std::arch::x86_64::*;

use super::epilogue::Epilogue;
use super::kernel::{self, ARows, Isa, Panels, a_quad};
use super::ymm::{Pair, ymm_pair_isa};
use crate::gemm::pack::{Avx2Residual, HALF_BYTES};

/// Rows per micro-tile.
pub(crate) const MR: usize = 4;
/// Panels per micro-tile.
pub(crate) const NB: usize = 1;

struct Avx2Exact<'r> {
    residual: &'r Avx2Residual,
}

impl Isa for Avx2Exact<'_> {
    ymm_pair_isa!();

    /// Exact because every pair left in the fast panels passed `pair_may_saturate`.
    #[inline(always)]
    unsafe fn dot(acc: Pair, a: __m256i, b: Pair) -> Pair {
        // SAFETY: AVX2 enabled in the caller (trait contract).
        unsafe {
            let ones = _mm256_set1_epi16(1);
            let t0 = _mm256_madd_epi16(_mm256_maddubs_epi16(a, b[0]), ones);
            let t1 = _mm256_madd_epi16(_mm256_maddubs_epi16(a, b[1]), ones);
            [_mm256_add_epi32(acc[0], t0), _mm256_add_epi32(acc[1], t1)]
        }
    }

    /// Adds the residual half rows of panels `p0..p0 + NB` with the same exact triple.
    #[inline(always)]
    unsafe fn finish<const R: usize, const NB: usize>(
        &self,
        acc: &mut [[Pair; NB]; R],
        rows: &[*const u8; R],
        k: usize,
        p0: usize,
    ) {
        let res = self.residual;
        for (p, panel) in (p0..p0 + NB).enumerate() {
            #[allow(
                clippy::needless_range_loop,
                reason = "h selects the ymm half of every row"
            )]
            for h in 0..2 {
                let entries = res.starts[2 * panel + h]..res.starts[2 * panel + h + 1];
                for idx in entries {
                    let g = res.groups[idx] as usize;
                    let w = &res.weights[idx * HALF_BYTES..][..HALF_BYTES];
                    // SAFETY: `w` holds one 32-byte half row; residual groups satisfy
                    // 4g < k, so `a_quad` stays inside each row; AVX2 enabled (trait
                    // contract).
                    unsafe {
                        let b = _mm256_loadu_si256(w.as_ptr().cast());
                        let ones = _mm256_set1_epi16(1);
                        for r in 0..R {
                            let a = _mm256_set1_epi32(a_quad(rows[r], g, k));
                            let t = _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), ones);
                            acc[r][p][h] = _mm256_add_epi32(acc[r][p][h], t);
                        }
                    }
                }
            }
        }
    }
}

/// Rows `a` (output rows `i0..`) x panels `p_begin..p_end` of the safe-pair `panels` plus
/// their `residual`, with the fused epilogue.
///
/// # Safety
/// AVX2 available; `residual` was built with `panels`; otherwise as
/// [`super::avx512::gemm_block`].
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn gemm_block(
    a: &ARows<'_>,
    i0: usize,
    panels: Panels<'_>,
    residual: &Avx2Residual,
    p_begin: usize,
    p_end: usize,
    ep: &Epilogue<'_>,
) {
    let isa = Avx2Exact { residual };
    // SAFETY: forwarded contract; AVX2 is enabled here.
    unsafe { kernel::block::<Avx2Exact<'_>, MR, NB>(&isa, a, i0, panels, p_begin, p_end, ep) }
}
