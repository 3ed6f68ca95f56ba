//! AVX-512 VNNI: `vpdpbusd` on zmm, one zmm per 16-column panel row.
//!
//! Blocking (measured on the Zen 5 development machine, where `vpdpbusd zmm` issues twice
//! per cycle with ~4 cycles latency, so >= 8 independent chains are needed): 6 rows x 4
//! panels = 24 accumulators, 4 panel loads and 6 broadcasts per 24 `vpdpbusd`.

use std::arch::x86_64::*;

use super::epilogue::Epilogue;
use super::kernel::{Isa, stateless_gemm_block};

/// Rows per micro-tile.
pub(crate) const MR: usize = 6;
/// Panels per micro-tile.
pub(crate) const NB: usize = 4;

struct Avx512Vnni;

impl Isa for Avx512Vnni {
    type Acc = __m512i;
    type A = __m512i;
    type B = __m512i;

    #[inline(always)]
    unsafe fn zero() -> __m512i {
        // SAFETY: AVX-512 F enabled in the caller (trait contract).
        unsafe { _mm512_setzero_si512() }
    }

    #[inline(always)]
    unsafe fn bcast(quad: i32) -> __m512i {
        // SAFETY: as `zero`.
        unsafe { _mm512_set1_epi32(quad) }
    }

    #[inline(always)]
    unsafe fn load_b(p: *const u8) -> __m512i {
        // SAFETY: 64 readable bytes at p (trait contract), AVX-512 F enabled.
        unsafe { _mm512_loadu_si512(p.cast()) }
    }

    #[inline(always)]
    unsafe fn dot(acc: __m512i, a: __m512i, b: __m512i) -> __m512i {
        // SAFETY: AVX-512 VNNI enabled in the caller (trait contract).
        unsafe { _mm512_dpbusd_epi32(acc, a, b) }
    }

    #[inline(always)]
    unsafe fn store(ep: &Epilogue<'_>, acc: __m512i, i: usize, j: usize, lanes: usize) {
        // SAFETY: forwarded contract (features and bounds).
        unsafe { ep.store_zmm(acc, i, j, lanes) }
    }
}

stateless_gemm_block!(
    /// Rows `a` (output rows `i0..`) x panels `p_begin..p_end`, with the fused epilogue.
    ///
    /// # Safety
    /// AVX-512 F/BW/VL/VNNI available; `p_end` <= the number of panels; output rows exist and
    /// no other thread writes these output elements concurrently.
    Avx512Vnni,
    "avx512f,avx512bw,avx512vl,avx512vnni"
);
