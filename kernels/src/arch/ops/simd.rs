//! A small vector abstraction so each int8 op kernel is written once and compiled for AVX2
//! (8 x i32/f32 lanes, 32-byte byte vectors) and AVX-512 (16 lanes, 64 bytes).
//!
//! The pattern (as in memchr's `Vector` trait and pulp's `WithSimd`): a zero-sized token type
//! per ISA that can only be built after the CPU check, `#[inline(always)]` trait methods over
//! the intrinsics, generic kernels implementing [`SimdKernel`], and one `#[target_feature]`
//! entry point per ISA that the kernel is inlined into. Loads and stores take slices and check
//! their length, so the kernels themselves are safe code.
//!
//! Float semantics match the scalar contract exactly: `max`/`min` return the *second* operand
//! when either is NaN (x86 `maxps`), so `max(v, 0.0)` maps NaN to 0 like `f32::max`; rounding
//! is round-half-to-even; no FMA is ever emitted by these methods.

use std::arch::x86_64::*;

use crate::cpu::{self, Tier};
use crate::error::Result;

/// Vector operations of one ISA. `F`/`I` hold `LANES` f32 / i32; `B` holds `BYTES` u8.
pub(crate) trait Simd: Copy {
    const LANES: usize;
    const BYTES: usize;
    type F: Copy;
    type I: Copy;
    type B: Copy;

    fn splat_f(self, x: f32) -> Self::F;
    fn splat_i(self, x: i32) -> Self::I;
    fn load_f(self, src: &[f32]) -> Self::F;
    fn store_f(self, dst: &mut [f32], v: Self::F);
    /// `LANES` bytes zero-extended to i32.
    fn load_u8(self, src: &[u8]) -> Self::I;
    /// `LANES` i32 (each in 0..=255) narrowed to `LANES` bytes.
    fn store_u8(self, dst: &mut [u8], v: Self::I);
    fn load_i(self, src: &[i32]) -> Self::I;
    /// `load_u8` without the length check.
    ///
    /// # Safety
    /// `src` must be valid for reading `LANES` bytes.
    unsafe fn load_u8_ptr(self, src: *const u8) -> Self::I;
    /// `load_i` without the length check.
    ///
    /// # Safety
    /// `src` must be valid for reading `LANES` i32 (no alignment needed).
    unsafe fn load_i_ptr(self, src: *const i32) -> Self::I;
    fn to_f(self, v: Self::I) -> Self::F;
    /// Conversion of integral f32 values (round-to-nearest-even by MXCSR default).
    fn to_i(self, v: Self::F) -> Self::I;
    fn add_f(self, a: Self::F, b: Self::F) -> Self::F;
    fn mul_f(self, a: Self::F, b: Self::F) -> Self::F;
    fn div_f(self, a: Self::F, b: Self::F) -> Self::F;
    /// x86 `max`: `b` when either is NaN.
    fn max_f(self, a: Self::F, b: Self::F) -> Self::F;
    /// x86 `min`: `b` when either is NaN.
    fn min_f(self, a: Self::F, b: Self::F) -> Self::F;
    fn round_f(self, v: Self::F) -> Self::F;
    fn add_i(self, a: Self::I, b: Self::I) -> Self::I;
    fn sub_i(self, a: Self::I, b: Self::I) -> Self::I;
    fn mul_i(self, a: Self::I, b: Self::I) -> Self::I;
    fn load_b(self, src: &[u8]) -> Self::B;
    fn store_b(self, dst: &mut [u8], v: Self::B);
    fn max_b(self, a: Self::B, b: Self::B) -> Self::B;
}

/// A kernel generic over the ISA; `run` must be `#[inline(always)]` so it is compiled with
/// the features of the entry point it is inlined into.
pub(crate) trait SimdKernel {
    type Output;
    fn run<S: Simd>(self, s: S) -> Self::Output;
}

/// AVX2 token: exists only when the CPU and OS support AVX2 + FMA.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx2(());

/// AVX-512 token: exists only when the CPU and OS support AVX-512 F/BW/VL.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx512(());

/// The vector ISA an op runs for a tier (`None`: the scalar reference).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Isa {
    Avx2(Avx2),
    Avx512(Avx512),
}

impl Isa {
    /// Checks that `tier` runs here and picks its vector ISA: AVX2 code for `Avx2` and
    /// `AvxVnni`, AVX-512 code for `Avx512Vnni` and `Amx`, none for `Scalar`.
    pub(crate) fn for_tier(tier: Tier) -> Result<Option<Isa>> {
        cpu::require(tier)?;
        Ok(match tier {
            Tier::Scalar => None,
            Tier::Avx2 | Tier::AvxVnni => Some(Isa::Avx2(Avx2(()))),
            Tier::Avx512Vnni | Tier::Amx => Some(Isa::Avx512(Avx512(()))),
        })
    }

    /// Runs `kernel` compiled for this ISA.
    #[inline]
    pub(crate) fn run<K: SimdKernel>(self, kernel: K) -> K::Output {
        match self {
            // SAFETY: an `Avx2` token is only built by `for_tier` after `cpu::require`
            // confirmed AVX2 and FMA (tiers >= Avx2 need them).
            Isa::Avx2(t) => unsafe { run_avx2(t, kernel) },
            // SAFETY: an `Avx512` token is only built by `for_tier` for tiers whose
            // availability implies AVX-512 F/BW/VL and the OS state for it.
            Isa::Avx512(t) => unsafe { run_avx512(t, kernel) },
        }
    }
}

#[target_feature(enable = "avx2,fma")]
fn run_avx2<K: SimdKernel>(t: Avx2, kernel: K) -> K::Output {
    kernel.run(t)
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
fn run_avx512<K: SimdKernel>(t: Avx512, kernel: K) -> K::Output {
    kernel.run(t)
}

const RNE: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

/// Implements the pure (register-only) methods by naming the intrinsic for each.
macro_rules! pure_ops {
    ($feat:literal; $($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty = $body:expr;)*) => {
        $(
            #[inline(always)]
            fn $name(self, $($arg: $ty),*) -> $ret {
                // SAFETY: the token proves the CPU supports the ISA ($feat); these intrinsics
                // only compute on registers.
                unsafe { $body }
            }
        )*
    };
}

impl Simd for Avx2 {
    const LANES: usize = 8;
    const BYTES: usize = 32;
    type F = __m256;
    type I = __m256i;
    type B = __m256i;

    pure_ops! { "avx2";
        splat_f(x: f32) -> __m256 = _mm256_set1_ps(x);
        splat_i(x: i32) -> __m256i = _mm256_set1_epi32(x);
        to_f(v: __m256i) -> __m256 = _mm256_cvtepi32_ps(v);
        to_i(v: __m256) -> __m256i = _mm256_cvtps_epi32(v);
        add_f(a: __m256, b: __m256) -> __m256 = _mm256_add_ps(a, b);
        mul_f(a: __m256, b: __m256) -> __m256 = _mm256_mul_ps(a, b);
        div_f(a: __m256, b: __m256) -> __m256 = _mm256_div_ps(a, b);
        max_f(a: __m256, b: __m256) -> __m256 = _mm256_max_ps(a, b);
        min_f(a: __m256, b: __m256) -> __m256 = _mm256_min_ps(a, b);
        round_f(v: __m256) -> __m256 = _mm256_round_ps::<RNE>(v);
        add_i(a: __m256i, b: __m256i) -> __m256i = _mm256_add_epi32(a, b);
        sub_i(a: __m256i, b: __m256i) -> __m256i = _mm256_sub_epi32(a, b);
        mul_i(a: __m256i, b: __m256i) -> __m256i = _mm256_mullo_epi32(a, b);
        max_b(a: __m256i, b: __m256i) -> __m256i = _mm256_max_epu8(a, b);
    }

    #[inline(always)]
    fn load_f(self, src: &[f32]) -> __m256 {
        assert!(src.len() >= 8);
        // SAFETY: 8 f32 readable (checked); AVX proven by the token.
        unsafe { _mm256_loadu_ps(src.as_ptr()) }
    }

    #[inline(always)]
    fn store_f(self, dst: &mut [f32], v: __m256) {
        assert!(dst.len() >= 8);
        // SAFETY: 8 f32 writable (checked); AVX proven by the token.
        unsafe { _mm256_storeu_ps(dst.as_mut_ptr(), v) }
    }

    #[inline(always)]
    fn load_u8(self, src: &[u8]) -> __m256i {
        assert!(src.len() >= 8);
        // SAFETY: 8 bytes readable (checked); AVX2 proven by the token.
        unsafe { _mm256_cvtepu8_epi32(_mm_loadl_epi64(src.as_ptr().cast())) }
    }

    #[inline(always)]
    fn store_u8(self, dst: &mut [u8], v: __m256i) {
        assert!(dst.len() >= 8);
        // SAFETY: 8 bytes writable (checked); AVX2 proven by the token. Lanes are in 0..=255,
        // so the saturating packs are exact; the permute gathers dwords 0 and 4.
        unsafe {
            let w = _mm256_packus_epi32(v, v);
            let b = _mm256_packus_epi16(w, w);
            let b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 0, 0, 0, 0, 0, 0));
            _mm_storel_epi64(dst.as_mut_ptr().cast(), _mm256_castsi256_si128(b));
        }
    }

    #[inline(always)]
    unsafe fn load_u8_ptr(self, src: *const u8) -> __m256i {
        // SAFETY: the caller guarantees 8 readable bytes; AVX2 proven by the token.
        unsafe { _mm256_cvtepu8_epi32(_mm_loadl_epi64(src.cast())) }
    }

    #[inline(always)]
    unsafe fn load_i_ptr(self, src: *const i32) -> __m256i {
        // SAFETY: the caller guarantees 8 readable i32; AVX proven by the token.
        unsafe { _mm256_loadu_si256(src.cast()) }
    }

    #[inline(always)]
    fn load_i(self, src: &[i32]) -> __m256i {
        assert!(src.len() >= 8);
        // SAFETY: 8 i32 readable (checked); AVX proven by the token.
        unsafe { _mm256_loadu_si256(src.as_ptr().cast()) }
    }

    #[inline(always)]
    fn load_b(self, src: &[u8]) -> __m256i {
        assert!(src.len() >= 32);
        // SAFETY: 32 bytes readable (checked); AVX proven by the token.
        unsafe { _mm256_loadu_si256(src.as_ptr().cast()) }
    }

    #[inline(always)]
    fn store_b(self, dst: &mut [u8], v: __m256i) {
        assert!(dst.len() >= 32);
        // SAFETY: 32 bytes writable (checked); AVX proven by the token.
        unsafe { _mm256_storeu_si256(dst.as_mut_ptr().cast(), v) }
    }
}

impl Simd for Avx512 {
    const LANES: usize = 16;
    const BYTES: usize = 64;
    type F = __m512;
    type I = __m512i;
    type B = __m512i;

    pure_ops! { "avx512f/bw";
        splat_f(x: f32) -> __m512 = _mm512_set1_ps(x);
        splat_i(x: i32) -> __m512i = _mm512_set1_epi32(x);
        to_f(v: __m512i) -> __m512 = _mm512_cvtepi32_ps(v);
        to_i(v: __m512) -> __m512i = _mm512_cvtps_epi32(v);
        add_f(a: __m512, b: __m512) -> __m512 = _mm512_add_ps(a, b);
        mul_f(a: __m512, b: __m512) -> __m512 = _mm512_mul_ps(a, b);
        div_f(a: __m512, b: __m512) -> __m512 = _mm512_div_ps(a, b);
        max_f(a: __m512, b: __m512) -> __m512 = _mm512_max_ps(a, b);
        min_f(a: __m512, b: __m512) -> __m512 = _mm512_min_ps(a, b);
        round_f(v: __m512) -> __m512 = _mm512_roundscale_ps::<RNE>(v);
        add_i(a: __m512i, b: __m512i) -> __m512i = _mm512_add_epi32(a, b);
        sub_i(a: __m512i, b: __m512i) -> __m512i = _mm512_sub_epi32(a, b);
        mul_i(a: __m512i, b: __m512i) -> __m512i = _mm512_mullo_epi32(a, b);
        max_b(a: __m512i, b: __m512i) -> __m512i = _mm512_max_epu8(a, b);
    }

    #[inline(always)]
    fn load_f(self, src: &[f32]) -> __m512 {
        assert!(src.len() >= 16);
        // SAFETY: 16 f32 readable (checked); AVX-512F proven by the token.
        unsafe { _mm512_loadu_ps(src.as_ptr()) }
    }

    #[inline(always)]
    fn store_f(self, dst: &mut [f32], v: __m512) {
        assert!(dst.len() >= 16);
        // SAFETY: 16 f32 writable (checked); AVX-512F proven by the token.
        unsafe { _mm512_storeu_ps(dst.as_mut_ptr(), v) }
    }

    #[inline(always)]
    fn load_u8(self, src: &[u8]) -> __m512i {
        assert!(src.len() >= 16);
        // SAFETY: 16 bytes readable (checked); AVX-512F proven by the token.
        unsafe { _mm512_cvtepu8_epi32(_mm_loadu_si128(src.as_ptr().cast())) }
    }

    #[inline(always)]
    fn store_u8(self, dst: &mut [u8], v: __m512i) {
        assert!(dst.len() >= 16);
        // SAFETY: 16 bytes writable (checked); AVX-512F proven by the token. Lanes are in
        // 0..=255, so the truncating narrow is exact.
        unsafe { _mm_storeu_si128(dst.as_mut_ptr().cast(), _mm512_cvtepi32_epi8(v)) }
    }

    #[inline(always)]
    unsafe fn load_u8_ptr(self, src: *const u8) -> __m512i {
        // SAFETY: the caller guarantees 16 readable bytes; AVX-512F proven by the token.
        unsafe { _mm512_cvtepu8_epi32(_mm_loadu_si128(src.cast())) }
    }

    #[inline(always)]
    unsafe fn load_i_ptr(self, src: *const i32) -> __m512i {
        // SAFETY: the caller guarantees 16 readable i32; AVX-512F proven by the token.
        unsafe { _mm512_loadu_si512(src.cast()) }
    }

    #[inline(always)]
    fn load_i(self, src: &[i32]) -> __m512i {
        assert!(src.len() >= 16);
        // SAFETY: 16 i32 readable (checked); AVX-512F proven by the token.
        unsafe { _mm512_loadu_si512(src.as_ptr().cast()) }
    }

    #[inline(always)]
    fn load_b(self, src: &[u8]) -> __m512i {
        assert!(src.len() >= 64);
        // SAFETY: 64 bytes readable (checked); AVX-512F proven by the token.
        unsafe { _mm512_loadu_si512(src.as_ptr().cast()) }
    }

    #[inline(always)]
    fn store_b(self, dst: &mut [u8], v: __m512i) {
        assert!(dst.len() >= 64);
        // SAFETY: 64 bytes writable (checked); AVX-512F proven by the token.
        unsafe { _mm512_storeu_si512(dst.as_mut_ptr().cast(), v) }
    }
}

/// Largest `LANES` of any ISA (sizes the stack buffers of partial blocks).
const MAX_LANES: usize = 16;
/// Largest `BYTES` of any ISA.
const MAX_BYTES: usize = 64;

/// Loads `src.len() < LANES` f32 into the low lanes (others 0).
#[inline(always)]
pub(crate) fn load_f_part<S: Simd>(s: S, src: &[f32]) -> S::F {
    let mut buf = [0f32; MAX_LANES];
    buf[..src.len()].copy_from_slice(src);
    s.load_f(&buf)
}

/// Stores the low `dst.len() < LANES` f32 lanes.
#[inline(always)]
pub(crate) fn store_f_part<S: Simd>(s: S, dst: &mut [f32], v: S::F) {
    let mut buf = [0f32; MAX_LANES];
    s.store_f(&mut buf, v);
    let n = dst.len();
    dst.copy_from_slice(&buf[..n]);
}

/// Loads `src.len() < LANES` bytes zero-extended into the low i32 lanes (others 0).
#[inline(always)]
pub(crate) fn load_u8_part<S: Simd>(s: S, src: &[u8]) -> S::I {
    let mut buf = [0u8; MAX_LANES];
    buf[..src.len()].copy_from_slice(src);
    s.load_u8(&buf)
}

/// Loads `min(LANES, src.len())` bytes zero-extended to i32 (full or partial block).
#[inline(always)]
pub(crate) fn load_u8_any<S: Simd>(s: S, src: &[u8]) -> S::I {
    if src.len() >= S::LANES {
        s.load_u8(src)
    } else {
        load_u8_part(s, src)
    }
}

/// Stores `min(LANES, dst.len())` i32 lanes narrowed to bytes (values in 0..=255).
#[inline(always)]
pub(crate) fn store_u8_any<S: Simd>(s: S, dst: &mut [u8], v: S::I) {
    if dst.len() >= S::LANES {
        s.store_u8(dst, v)
    } else {
        let mut buf = [0u8; MAX_LANES];
        s.store_u8(&mut buf, v);
        let n = dst.len();
        dst.copy_from_slice(&buf[..n]);
    }
}

/// Loads `min(BYTES, src.len())` bytes into a byte vector (others 0).
#[inline(always)]
pub(crate) fn load_b_any<S: Simd>(s: S, src: &[u8]) -> S::B {
    if src.len() >= S::BYTES {
        s.load_b(src)
    } else {
        let mut buf = [0u8; MAX_BYTES];
        buf[..src.len()].copy_from_slice(src);
        s.load_b(&buf)
    }
}

/// Stores `min(BYTES, dst.len())` bytes of a byte vector.
#[inline(always)]
pub(crate) fn store_b_any<S: Simd>(s: S, dst: &mut [u8], v: S::B) {
    if dst.len() >= S::BYTES {
        s.store_b(dst, v)
    } else {
        let mut buf = [0u8; MAX_BYTES];
        s.store_b(&mut buf, v);
        let n = dst.len();
        dst.copy_from_slice(&buf[..n]);
    }
}

/// Splatted constants of `quantize(y; inv_scale, zp)`.
#[derive(Clone, Copy)]
pub(crate) struct QuantizeVec<S: Simd> {
    inv: S::F,
    zp: S::F,
    lo: S::F,
    hi: S::F,
}

impl<S: Simd> QuantizeVec<S> {
    #[inline(always)]
    pub(crate) fn new(s: S, inv_scale: f32, zp: i32) -> Self {
        QuantizeVec {
            inv: s.splat_f(inv_scale),
            zp: s.splat_f(zp as f32),
            lo: s.splat_f(0.0),
            hi: s.splat_f(255.0),
        }
    }

    /// `clamp(rne(y * inv) + zp, 0, 255)` as i32 lanes; NaN lanes give 0.
    #[inline(always)]
    pub(crate) fn apply(&self, s: S, y: S::F) -> S::I {
        self.finish(s, s.round_f(s.mul_f(y, self.inv)))
    }

    /// `clamp(r + zp, 0, 255)` for already rounded `r`.
    #[inline(always)]
    pub(crate) fn finish(&self, s: S, r: S::F) -> S::I {
        let shifted = s.add_f(r, self.zp);
        s.to_i(s.min_f(s.max_f(shifted, self.lo), self.hi))
    }
}

/// Splatted constants of `dequantize(q; scale, zp)`.
#[derive(Clone, Copy)]
pub(crate) struct DequantizeVec<S: Simd> {
    zp: S::I,
    scale: S::F,
}

impl<S: Simd> DequantizeVec<S> {
    #[inline(always)]
    pub(crate) fn new(s: S, qp: crate::quant::QParams) -> Self {
        DequantizeVec {
            zp: s.splat_i(qp.zero_point),
            scale: s.splat_f(qp.scale),
        }
    }

    /// `((q - zp) as f32) * scale` for zero-extended `q` lanes.
    #[inline(always)]
    pub(crate) fn apply(&self, s: S, q: S::I) -> S::F {
        s.mul_f(s.to_f(s.sub_i(q, self.zp)), self.scale)
    }
}
