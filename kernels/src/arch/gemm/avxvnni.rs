//! AVX-VNNI: VEX `vpdpbusd` on ymm; a 16-column panel row is two ymm registers.
//!
//! Blocking: 6 rows x 1 panel = 12 ymm accumulators + 2 panel halves + 1 broadcast (the
//! 16 ymm registers of AVX2).

use std::arch::x86_64::*;

use super::epilogue::Epilogue;
use super::kernel::{self, ARows, Isa, Panels};

/// Rows per micro-tile.
pub(crate) const MR: usize = 6;
/// Panels per micro-tile.
pub(crate) const NB: usize = 1;

/// Two ymm halves of a panel row: columns 0..8 and 8..16.
pub(crate) type Pair = [__m256i; 2];

/// Loads one 64-byte panel group row as two ymm halves.
///
/// # Safety
/// AVX enabled in the caller; 64 readable bytes at `p`.
#[inline(always)]
pub(crate) unsafe fn load_pair(p: *const u8) -> Pair {
    // SAFETY: caller contract.
    unsafe {
        [
            _mm256_loadu_si256(p.cast()),
            _mm256_loadu_si256(p.add(32).cast()),
        ]
    }
}

/// Epilogue of a 16-column accumulator pair (two 8-lane stores).
///
/// # Safety
/// AVX2 enabled; as [`Epilogue::store_ymm`] for `j..j + lanes` (`lanes` in 1..=16).
#[inline(always)]
pub(crate) unsafe fn store_pair(ep: &Epilogue<'_>, acc: Pair, i: usize, j: usize, lanes: usize) {
    // SAFETY: forwarded contract; the second half only when it has valid columns.
    unsafe {
        ep.store_ymm(acc[0], i, j, lanes.min(8));
        if lanes > 8 {
            ep.store_ymm(acc[1], i, j + 8, lanes - 8);
        }
    }
}

struct AvxVnni;

impl Isa for AvxVnni {
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

    #[inline(always)]
    unsafe fn dot(acc: Pair, a: __m256i, b: Pair) -> Pair {
        // SAFETY: AVX-VNNI enabled in the caller (trait contract).
        unsafe {
            [
                _mm256_dpbusd_avx_epi32(acc[0], a, b[0]),
                _mm256_dpbusd_avx_epi32(acc[1], a, b[1]),
            ]
        }
    }

    #[inline(always)]
    unsafe fn store(ep: &Epilogue<'_>, acc: Pair, i: usize, j: usize, lanes: usize) {
        // SAFETY: forwarded contract.
        unsafe { store_pair(ep, acc, i, j, lanes) }
    }
}

/// Rows `a` (output rows `i0..`) x panels `p_begin..p_end`, with the fused epilogue.
///
/// # Safety
/// AVX2 and AVX-VNNI available; otherwise as [`super::avx512::gemm_block`].
#[target_feature(enable = "avx2,avxvnni")]
pub(crate) unsafe fn gemm_block(
    a: &ARows<'_>,
    i0: usize,
    panels: Panels<'_>,
    p_begin: usize,
    p_end: usize,
    ep: &Epilogue<'_>,
) {
    // SAFETY: forwarded contract; the features of `AvxVnni` are enabled here.
    unsafe { kernel::block::<AvxVnni, MR, NB>(&AvxVnni, a, i0, panels, p_begin, p_end, ep) }
}
