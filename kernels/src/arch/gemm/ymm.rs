//! The ymm form of a 16-column panel row, shared by the AVX2 and AVX-VNNI tiers: two ymm
//! halves (columns 0..8 and 8..16), loaded, zeroed, broadcast into and stored the same way;
//! the tiers differ only in their 4-byte dot-product step (and AVX2's residual pass).

use std::arch::x86_64::*;

use super::epilogue::Epilogue;

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

/// The [`super::kernel::Isa`] items every ymm-pair tier shares (vector types, `zero`,
/// `bcast`, `load_b`, `store`), expanded inside the tier's `impl Isa` next to its own `dot`.
/// Every method stays `#[inline(always)]`, so the tier's `#[target_feature]` entry inlines
/// them exactly as if written out.
macro_rules! ymm_pair_isa {
    () => {
        type Acc = $crate::arch::gemm::ymm::Pair;
        type A = ::std::arch::x86_64::__m256i;
        type B = $crate::arch::gemm::ymm::Pair;

        #[inline(always)]
        unsafe fn zero() -> Self::Acc {
            // SAFETY: AVX enabled in the caller (trait contract).
            unsafe { [::std::arch::x86_64::_mm256_setzero_si256(); 2] }
        }

        #[inline(always)]
        unsafe fn bcast(quad: i32) -> Self::A {
            // SAFETY: as `zero`.
            unsafe { ::std::arch::x86_64::_mm256_set1_epi32(quad) }
        }

        #[inline(always)]
        unsafe fn load_b(p: *const u8) -> Self::B {
            // SAFETY: trait contract.
            unsafe { $crate::arch::gemm::ymm::load_pair(p) }
        }

        #[inline(always)]
        unsafe fn store(
            ep: &$crate::arch::gemm::epilogue::Epilogue<'_>,
            acc: Self::Acc,
            i: usize,
            j: usize,
            lanes: usize,
        ) {
            // SAFETY: forwarded contract.
            unsafe { $crate::arch::gemm::ymm::store_pair(ep, acc, i, j, lanes) }
        }
    };
}
pub(crate) use ymm_pair_isa;
