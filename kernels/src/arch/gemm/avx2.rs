//! AVX2, exact: `vpmaddubsw` + `vpmaddwd(ones)` + `vpaddd` on the pack-time-proven safe pairs,
//! and the widened residual pairs (`vpmaddwd` of i16 A pairs and i16 weights) after the main
//! K loop. Both paths are exact, so the sum is the true i32 dot product for every input.
//!
//! Blocking: 4 rows x 1 panel = 8 ymm accumulators + ones + 2 panel halves + broadcast +
//! temporaries (MLAS's AVX2 u8s8 shape).

use std::arch::x86_64::*;

use super::avxvnni::{Pair, load_pair, store_pair};
use super::epilogue::Epilogue;
use super::kernel::{self, ARows, Isa, Panels, a_quad};
use crate::gemm::pack::{Avx2Residual, RESIDUAL_I16};

/// Rows per micro-tile.
pub(crate) const MR: usize = 4;
/// Panels per micro-tile.
pub(crate) const NB: usize = 1;

struct Avx2Exact<'r> {
    residual: &'r Avx2Residual,
}

impl Isa for Avx2Exact<'_> {
    type Acc = Pair;
    type A = __m256i;
    type B = Pair;

    #[inline(always)]
    unsafe fn zero() -> Pair {
        // SAFETY: AVX enabled in the caller (trait contract).
        unsafe { [_mm256_setzero_si256(); 2] }
    }

    #[inline(always)]
    unsafe fn bcast(quad: i32) -> __m256i {
        // SAFETY: as `zero`.
        unsafe { _mm256_set1_epi32(quad) }
    }

    #[inline(always)]
    unsafe fn load_b(p: *const u8) -> Pair {
        // SAFETY: trait contract.
        unsafe { load_pair(p) }
    }

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

    #[inline(always)]
    unsafe fn store(ep: &Epilogue<'_>, acc: Pair, i: usize, j: usize, lanes: usize) {
        // SAFETY: forwarded contract.
        unsafe { store_pair(ep, acc, i, j, lanes) }
    }

    /// Adds the residual pairs of panels `p0..p0 + NB`: `a` pairs widened to i16, weights
    /// pre-widened at pack time, `vpmaddwd` into i32 (exact: |a| <= 255, |w| <= 128).
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
            for idx in res.starts[panel]..res.starts[panel + 1] {
                let g = res.groups[idx] as usize;
                let w = &res.weights[idx * RESIDUAL_I16..][..RESIDUAL_I16];
                // SAFETY: `w` holds 64 i16 = 128 bytes, read as two pairs of ymm; residual
                // groups satisfy 4g < k, so `a_quad` stays inside each row; AVX2 enabled.
                unsafe {
                    let w01 = load_pair(w.as_ptr().cast());
                    let w23 = load_pair(w.as_ptr().add(2 * 16).cast());
                    for r in 0..R {
                        let q = a_quad(rows[r], g, k) as u32;
                        let lo = _mm256_set1_epi32(((q & 0xff) | ((q >> 8 & 0xff) << 16)) as i32);
                        let hi = _mm256_set1_epi32(((q >> 16 & 0xff) | ((q >> 24) << 16)) as i32);
                        for h in 0..2 {
                            let s = _mm256_add_epi32(
                                _mm256_madd_epi16(lo, w01[h]),
                                _mm256_madd_epi16(hi, w23[h]),
                            );
                            acc[r][p][h] = _mm256_add_epi32(acc[r][p][h], s);
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
