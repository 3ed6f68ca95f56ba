//! AVX-VNNI: VEX `vpdpbusd` on ymm; a 16-column panel row is two ymm registers
//! ([`super::ymm`]).
//!
//! Blocking: 6 rows x 1 panel = 12 ymm accumulators + 2 panel halves + 1 broadcast (the
//! 16 ymm registers of AVX2).

use std::arch::x86_64::*;

use super::kernel::{Isa, stateless_gemm_block};
use super::ymm::{Pair, ymm_pair_isa};

/// Rows per micro-tile.
pub(crate) const MR: usize = 6;
/// Panels per micro-tile.
pub(crate) const NB: usize = 1;

struct AvxVnni;

impl Isa for AvxVnni {
    ymm_pair_isa!();

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
}

stateless_gemm_block!(
    /// Rows `a` (output rows `i0..`) x panels `p_begin..p_end`, with the fused epilogue.
    ///
    /// # Safety
    /// AVX2 and AVX-VNNI available; otherwise as [`super::avx512::gemm_block`].
    AvxVnni,
    "avx2,avxvnni"
);
