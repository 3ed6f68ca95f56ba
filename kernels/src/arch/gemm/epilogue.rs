//! The fused epilogue on vectors of i32 accumulators: zero-point correction, `* scale[n]`,
//! `+ bias[n]`, `+ residual`, activation, then u8 / f32 / i32 stores. Each step is the same
//! IEEE operation, in the same order, as [`crate::epilogue::epilogue_f32`] and
//! [`crate::quant::quantize`] (no FMA), so the results are bit-identical to the reference.
//!
//! [`Epilogue`] holds validated views; its row functions write through a raw output pointer
//! so that threads can write disjoint tiles of one output matrix.

use std::arch::x86_64::*;
use std::marker::PhantomData;

use crate::epilogue::Activation;
use crate::error::{Error, Result};
use crate::math::gelu_erf;
use crate::quant::quantize;
use crate::reference::gemm::check_strided;

/// The u8 residual ("sum") input of the epilogue.
#[derive(Clone, Copy)]
pub(crate) struct ResidualView<'a> {
    /// M x N u8 codes, row stride `ld`.
    pub data: &'a [u8],
    /// Leading dimension (elements).
    pub ld: usize,
    /// Residual zero point.
    pub zero_point: i32,
    /// Residual scale.
    pub scale: f32,
}

/// The output matrix, borrowed mutably for `'a`.
pub(crate) enum OutputView<'a> {
    /// Requantized u8 with `1 / scale` and zero point.
    U8(&'a mut [u8], f32, i32),
    /// f32 epilogue values.
    F32(&'a mut [f32]),
    /// Raw corrected accumulators.
    I32(&'a mut [i32]),
}

#[derive(Clone, Copy)]
enum OutPtr {
    U8 { ptr: *mut u8, inv: f32, zo: i32 },
    F32(*mut f32),
    I32(*mut i32),
}

/// A validated M x N epilogue: per-column arrays padded to whole 16-column panels, the
/// residual and output checked against M, N and their strides.
pub(crate) struct Epilogue<'a> {
    m: usize,
    n: usize,
    ldc: usize,
    out: OutPtr,
    zp_corr: &'a [i32],
    scale: &'a [f32],
    bias: Option<&'a [f32]>,
    residual: Option<ResidualView<'a>>,
    act: Activation,
    _out: PhantomData<&'a mut [u8]>,
}

// SAFETY: the raw output pointer comes from a `&'a mut` slice held for `'a`; the row
// functions that write through it are `unsafe` and require callers to give each thread
// disjoint output elements, so sharing the view across threads cannot create a data race.
unsafe impl Send for Epilogue<'_> {}
// SAFETY: as for `Send`: concurrent use only writes disjoint elements (caller contract).
unsafe impl Sync for Epilogue<'_> {}

/// The per-column epilogue vectors of one 16-column panel.
#[derive(Clone, Copy)]
pub(crate) struct ColumnsZmm {
    zp_corr: __m512i,
    scale: __m512,
    bias: Option<__m512>,
}

/// Lanes of a partial vector as a mask (`lanes` in 1..=16).
#[inline]
fn mask16(lanes: usize) -> u16 {
    if lanes >= 16 {
        u16::MAX
    } else {
        (1u16 << lanes) - 1
    }
}

impl<'a> Epilogue<'a> {
    /// Checks every view and builds the epilogue of an M x N result.
    ///
    /// `zp_corr` (`-za * colsum[n]`), `scale` (`s_a * s_w[n]`) and `bias` must cover N
    /// rounded up to a multiple of 16.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        m: usize,
        n: usize,
        out: OutputView<'a>,
        ldc: usize,
        zp_corr: &'a [i32],
        scale: &'a [f32],
        bias: Option<&'a [f32]>,
        residual: Option<ResidualView<'a>>,
        act: Activation,
    ) -> Result<Epilogue<'a>> {
        let padded = n.div_ceil(16) * 16;
        let short = |what: &'static str, len: usize| {
            (len < padded).then_some(Error::Length {
                what,
                expected: padded,
                actual: len,
            })
        };
        if let Some(e) = short("epilogue zero-point correction", zp_corr.len())
            .or_else(|| short("epilogue scales", scale.len()))
            .or_else(|| bias.and_then(|b| short("epilogue bias", b.len())))
        {
            return Err(e);
        }
        act.validate()?;
        if let Some(r) = &residual {
            check_strided("gemm residual", r.data.len(), m, n, r.ld)?;
        }
        let (len, out) = match out {
            OutputView::U8(d, inv, zo) => (
                d.len(),
                OutPtr::U8 {
                    ptr: d.as_mut_ptr(),
                    inv,
                    zo,
                },
            ),
            OutputView::F32(d) => (d.len(), OutPtr::F32(d.as_mut_ptr())),
            OutputView::I32(d) => (d.len(), OutPtr::I32(d.as_mut_ptr())),
        };
        check_strided("gemm output", len, m, n, ldc)?;
        Ok(Epilogue {
            m,
            n,
            ldc,
            out,
            zp_corr,
            scale,
            bias,
            residual,
            act,
            _out: PhantomData,
        })
    }

    /// Rows of the output.
    pub(crate) fn m(&self) -> usize {
        self.m
    }

    /// Columns of the output.
    pub(crate) fn n(&self) -> usize {
        self.n
    }

    /// Scalar epilogue of one accumulator (the reference steps, element by element).
    ///
    /// # Safety
    /// `i < m`, `j < n`, and no other thread writes element `(i, j)` concurrently.
    pub(crate) unsafe fn store_one(&self, acc: i32, i: usize, j: usize) {
        debug_assert!(i < self.m && j < self.n);
        let acc = acc.wrapping_add(self.zp_corr[j]);
        let at = i * self.ldc + j;
        let y = crate::epilogue::epilogue_f32(
            acc,
            self.scale[j],
            self.bias.map(|b| b[j]),
            self.residual.map(|r| {
                (
                    r.data[i * r.ld + j],
                    crate::quant::QParams {
                        scale: r.scale,
                        zero_point: r.zero_point,
                    },
                )
            }),
            self.act,
        );
        // SAFETY: `at` is inside the output (checked in `new` for i < m, j < n) and the
        // caller guarantees exclusive access to this element.
        unsafe {
            match self.out {
                OutPtr::I32(p) => p.add(at).write(acc),
                OutPtr::F32(p) => p.add(at).write(y),
                OutPtr::U8 { ptr, inv, zo } => ptr.add(at).write(quantize(y, inv, zo)),
            }
        }
    }

    /// The per-column vectors of columns `j..j + 16` (zero-point correction, scale, bias).
    ///
    /// # Safety
    /// AVX-512 F available; `j < n` is a multiple of 16.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    pub(crate) unsafe fn columns_zmm(&self, j: usize) -> ColumnsZmm {
        debug_assert!(j < self.n && j.is_multiple_of(16));
        // SAFETY: the per-column arrays cover whole panels (checked in `new`) and j is a
        // panel-aligned column < n, so 16 elements from j are in bounds.
        unsafe {
            ColumnsZmm {
                zp_corr: _mm512_loadu_si512(self.zp_corr.as_ptr().add(j).cast()),
                scale: _mm512_loadu_ps(self.scale.as_ptr().add(j)),
                bias: self.bias.map(|b| _mm512_loadu_ps(b.as_ptr().add(j))),
            }
        }
    }

    /// Epilogue of 16 accumulators of row `i`, columns `j..j + lanes`, on zmm registers.
    ///
    /// # Safety
    /// AVX-512 F/BW/VL available; `i < m`, `lanes` in 1..=16, `j + lanes <= n`, `j` a
    /// multiple of 16; no other thread writes these elements concurrently.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    pub(crate) unsafe fn store_zmm(&self, acc: __m512i, i: usize, j: usize, lanes: usize) {
        // SAFETY: forwarded (j is a panel-aligned column < n).
        unsafe { self.store_zmm_with(&self.columns_zmm(j), acc, i, j, lanes) }
    }

    /// [`Self::store_zmm`] with the column vectors of `j` already loaded (a block epilogue
    /// loads them once for all its rows).
    ///
    /// # Safety
    /// As [`Self::store_zmm`], and `cols` is `self.columns_zmm(j)`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    pub(crate) unsafe fn store_zmm_with(
        &self,
        cols: &ColumnsZmm,
        acc: __m512i,
        i: usize,
        j: usize,
        lanes: usize,
    ) {
        // SAFETY: forwarded.
        unsafe {
            if let Some(y) = self.pre_activation_zmm(cols, acc, i, j, lanes) {
                let y = match self.act {
                    Activation::None => y,
                    Activation::Relu => _mm512_max_ps(y, _mm512_setzero_ps()),
                    Activation::Clamp { min, max } => {
                        _mm512_min_ps(_mm512_max_ps(y, _mm512_set1_ps(min)), _mm512_set1_ps(max))
                    }
                    act => scalar_activation_zmm(act, y),
                };
                self.finish_zmm(y, i, j, lanes);
            }
        }
    }

    /// The f32 value before the activation (`acc * scale + bias + residual`) of row `i`,
    /// columns `j..j + lanes`, or `None` after storing the raw i32 sums for an i32 output.
    ///
    /// # Safety
    /// As [`Self::store_zmm_with`].
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    unsafe fn pre_activation_zmm(
        &self,
        cols: &ColumnsZmm,
        acc: __m512i,
        i: usize,
        j: usize,
        lanes: usize,
    ) -> Option<__m512> {
        debug_assert!(i < self.m && (1..=16).contains(&lanes) && j + lanes <= self.n);
        let mask = mask16(lanes);
        let at = i * self.ldc + j;
        // SAFETY: the masked residual load and i32 store touch only `lanes` valid elements
        // of row i (inside the output, checked in `new`).
        unsafe {
            let acc = _mm512_add_epi32(acc, cols.zp_corr);
            if let OutPtr::I32(p) = self.out {
                _mm512_mask_storeu_epi32(p.add(at), mask, acc);
                return None;
            }
            let mut y = _mm512_mul_ps(_mm512_cvtepi32_ps(acc), cols.scale);
            if let Some(b) = cols.bias {
                y = _mm512_add_ps(y, b);
            }
            if let Some(r) = &self.residual {
                let codes = _mm_maskz_loadu_epi8(mask, r.data.as_ptr().add(i * r.ld + j).cast());
                let q =
                    _mm512_sub_epi32(_mm512_cvtepu8_epi32(codes), _mm512_set1_epi32(r.zero_point));
                y = _mm512_add_ps(
                    y,
                    _mm512_mul_ps(_mm512_cvtepi32_ps(q), _mm512_set1_ps(r.scale)),
                );
            }
            Some(y)
        }
    }

    /// Converts the activated values `y` of row `i`, columns `j..j + lanes`, to the output
    /// kind and stores them (nothing for an i32 output).
    ///
    /// # Safety
    /// As [`Self::store_zmm_with`].
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    unsafe fn finish_zmm(&self, y: __m512, i: usize, j: usize, lanes: usize) {
        let mask = mask16(lanes);
        let at = i * self.ldc + j;
        // SAFETY: the masked stores touch only `lanes` valid elements of row i (inside the
        // output, checked in `new`).
        unsafe {
            match self.out {
                OutPtr::F32(p) => _mm512_mask_storeu_ps(p.add(at), mask, y),
                OutPtr::U8 { ptr, inv, zo } => {
                    // clamp(rne(y·inv) + zo, 0, 255) in integers: round to nearest even while
                    // converting, add the zero point, clamp below at 0 and narrow with unsigned
                    // saturation (above 255 -> 255). Bounding t at 2^30 first keeps huge values
                    // at 255 (the conversion would give i32::MIN); NaN stays NaN (`min_ps`
                    // returns its second operand then), converts to i32::MIN and ends at 0, as
                    // `f32::max(NaN, 0)` does in the reference. Same bits, three fewer uops.
                    let t = _mm512_mul_ps(y, _mm512_set1_ps(inv));
                    let t = _mm512_min_ps(_mm512_set1_ps(1073741824.0), t);
                    let q = _mm512_cvt_roundps_epi32::<
                        { _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC },
                    >(t);
                    let q = _mm512_max_epi32(
                        _mm512_add_epi32(q, _mm512_set1_epi32(zo)),
                        _mm512_setzero_si512(),
                    );
                    let bytes = _mm512_cvtusepi32_epi8(q);
                    if lanes == 16 {
                        _mm_storeu_si128(ptr.add(at).cast(), bytes);
                    } else {
                        _mm_mask_storeu_epi8(ptr.add(at).cast(), mask, bytes);
                    }
                }
                OutPtr::I32(_) => {}
            }
        }
    }

    /// Epilogue of 8 accumulators of row `i`, columns `j..j + lanes`, on ymm registers.
    ///
    /// # Safety
    /// AVX2 available; `i < m`, `lanes` in 1..=8, `j + lanes <= n`, `j % 8 == 0`; no other
    /// thread writes these elements concurrently.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(crate) unsafe fn store_ymm(&self, acc: __m256i, i: usize, j: usize, lanes: usize) {
        debug_assert!(i < self.m && (1..=8).contains(&lanes) && j + lanes <= self.n);
        let at = i * self.ldc + j;
        // SAFETY: j is 8-aligned and < n, so 8 elements from j lie inside the panel-padded
        // per-column arrays (checked in `new`); residual and output accesses use only the
        // `lanes` valid elements of row i (full-width only when lanes == 8).
        unsafe {
            let acc =
                _mm256_add_epi32(acc, _mm256_loadu_si256(self.zp_corr.as_ptr().add(j).cast()));
            if let OutPtr::I32(p) = self.out {
                if lanes == 8 {
                    _mm256_storeu_si256(p.add(at).cast(), acc);
                } else {
                    let mut t = [0i32; 8];
                    _mm256_storeu_si256(t.as_mut_ptr().cast(), acc);
                    std::ptr::copy_nonoverlapping(t.as_ptr(), p.add(at), lanes);
                }
                return;
            }
            let mut y = _mm256_mul_ps(
                _mm256_cvtepi32_ps(acc),
                _mm256_loadu_ps(self.scale.as_ptr().add(j)),
            );
            if let Some(b) = self.bias {
                y = _mm256_add_ps(y, _mm256_loadu_ps(b.as_ptr().add(j)));
            }
            if let Some(r) = &self.residual {
                let src = r.data.as_ptr().add(i * r.ld + j);
                let codes = if lanes == 8 {
                    _mm_loadl_epi64(src.cast())
                } else {
                    let mut codes = [0u8; 8];
                    std::ptr::copy_nonoverlapping(src, codes.as_mut_ptr(), lanes);
                    _mm_loadl_epi64(codes.as_ptr().cast())
                };
                let q =
                    _mm256_sub_epi32(_mm256_cvtepu8_epi32(codes), _mm256_set1_epi32(r.zero_point));
                y = _mm256_add_ps(
                    y,
                    _mm256_mul_ps(_mm256_cvtepi32_ps(q), _mm256_set1_ps(r.scale)),
                );
            }
            y = match self.act {
                Activation::None => y,
                Activation::Relu => _mm256_max_ps(y, _mm256_setzero_ps()),
                Activation::Clamp { min, max } => {
                    _mm256_min_ps(_mm256_max_ps(y, _mm256_set1_ps(min)), _mm256_set1_ps(max))
                }
                act => scalar_activation_ymm(act, y),
            };
            match self.out {
                OutPtr::F32(p) => {
                    if lanes == 8 {
                        _mm256_storeu_ps(p.add(at), y);
                    } else {
                        let mut t = [0f32; 8];
                        _mm256_storeu_ps(t.as_mut_ptr(), y);
                        std::ptr::copy_nonoverlapping(t.as_ptr(), p.add(at), lanes);
                    }
                }
                OutPtr::U8 { ptr, inv, zo } => {
                    let t = _mm256_mul_ps(y, _mm256_set1_ps(inv));
                    let t = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(t);
                    let t = _mm256_add_ps(t, _mm256_set1_ps(zo as f32));
                    let t =
                        _mm256_min_ps(_mm256_max_ps(t, _mm256_setzero_ps()), _mm256_set1_ps(255.0));
                    let q = _mm256_cvttps_epi32(t);
                    let w = _mm256_packus_epi32(q, q);
                    let b = _mm256_packus_epi16(w, w);
                    let bytes = _mm_unpacklo_epi32(
                        _mm256_castsi256_si128(b),
                        _mm256_extracti128_si256::<1>(b),
                    );
                    if lanes == 8 {
                        _mm_storel_epi64(ptr.add(at).cast(), bytes);
                    } else {
                        let mut t = [0u8; 16];
                        _mm_storeu_si128(t.as_mut_ptr().cast(), bytes);
                        std::ptr::copy_nonoverlapping(t.as_ptr(), ptr.add(at), lanes);
                    }
                }
                OutPtr::I32(_) => {}
            }
        }
    }
}

/// The activations without a vector form ([`Activation::is_scalar_only`]): the 16 lanes of
/// the pre-activation `y` go through the scalar [`Activation::apply`], lane by lane.
/// Kept out of line: inlined, its stack round trip made the common activations' epilogue
/// slower (measured, AMX ResNet-18).
#[target_feature(enable = "avx512f")]
#[inline(never)]
fn scalar_activation_zmm(act: Activation, y: __m512) -> __m512 {
    let mut t = [0f32; 16];
    // SAFETY: `t` holds 16 f32, the width of one zmm load / store.
    unsafe { _mm512_storeu_ps(t.as_mut_ptr(), y) };
    apply_each(act, &mut t);
    // SAFETY: as above.
    unsafe { _mm512_loadu_ps(t.as_ptr()) }
}

/// [`scalar_activation_zmm`] on the 8 lanes of a ymm register.
#[target_feature(enable = "avx2")]
#[inline(never)]
fn scalar_activation_ymm(act: Activation, y: __m256) -> __m256 {
    let mut t = [0f32; 8];
    // SAFETY: `t` holds 8 f32, the width of one ymm load / store.
    unsafe { _mm256_storeu_ps(t.as_mut_ptr(), y) };
    apply_each(act, &mut t);
    // SAFETY: as above.
    unsafe { _mm256_loadu_ps(t.as_ptr()) }
}

/// [`Activation::apply`] on every value, with the match outside the loop so that the
/// branch-free activations (GELU's erf) vectorize with the caller's target features into the
/// same bits.
#[inline(always)]
fn apply_each(act: Activation, t: &mut [f32]) {
    if act == (Activation::Gelu { tanh: false }) {
        for v in t {
            *v = gelu_erf(*v);
        }
    } else {
        for v in t {
            *v = act.apply(*v);
        }
    }
}

/// Applies the epilogue to an `rows x cols` block of raw accumulators (`acc[r * ldacc + c]`
/// is output element `(i0 + r, j0 + c)`) with zmm registers. For AMX tiles and any other
/// engine that produces i32 sums in memory on an AVX-512 machine.
///
/// # Safety
/// AVX-512 F/BW/VL is available on this CPU (`cpu::require` of the Avx512Vnni or Amx tier
/// succeeded), and no other thread writes output rows `i0..i0 + rows` x columns `j0..j0 + cols` concurrently.
///
/// # Errors
/// The block is outside the output, `j0` is not a multiple of 16, or `acc` is too short.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn store_block(
    ep: &Epilogue<'_>,
    acc: &[i32],
    ldacc: usize,
    i0: usize,
    rows: usize,
    j0: usize,
    cols: usize,
) -> Result<()> {
    if i0 + rows > ep.m || j0 + cols > ep.n || !j0.is_multiple_of(16) {
        return Err(Error::Shape(format!(
            "epilogue block rows {i0}..{} x columns {j0}..{} is outside {} x {} or unaligned",
            i0 + rows,
            j0 + cols,
            ep.m,
            ep.n
        )));
    }
    check_strided("epilogue accumulators", acc.len(), rows, cols, ldacc)?;
    // SAFETY: AVX-512 available and the rows/columns are this caller's (contract); the
    // block lies inside the output and `acc` holds it (checked above).
    unsafe { store_block_zmm(ep, acc, ldacc, i0, rows, j0, cols) };
    Ok(())
}

/// The body of [`store_block`], compiled for AVX-512 so that the zmm epilogue inlines into
/// the loop: column by column (the per-column vectors loaded once), row by row, loaded
/// straight from `acc` (a partial last vector with a mask).
///
/// # Safety
/// As [`store_block`], with the block and `acc` already checked.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn store_block_zmm(
    ep: &Epilogue<'_>,
    acc: &[i32],
    ldacc: usize,
    i0: usize,
    rows: usize,
    j0: usize,
    cols: usize,
) {
    if ep.act.is_scalar_only() {
        // SAFETY: forwarded.
        unsafe { store_block_batched_zmm(ep, acc, ldacc, i0, rows, j0, cols) };
        return;
    }
    for c in (0..cols).step_by(16) {
        let lanes = (cols - c).min(16);
        // SAFETY: j0 + c is a multiple of 16 inside the output (checked by the caller).
        let columns = unsafe { ep.columns_zmm(j0 + c) };
        for r in 0..rows {
            let row = &acc[r * ldacc..][..cols];
            // SAFETY: `lanes` values from `row[c]` are in bounds (masked load); the output
            // block is inside the output and owned by the caller (contract).
            unsafe {
                let x = _mm512_maskz_loadu_epi32(mask16(lanes), row.as_ptr().add(c));
                ep.store_zmm_with(&columns, x, i0 + r, j0 + c, lanes);
            }
        }
    }
}

/// Rows of 16 values whose scalar-only activation (GELU's erf, ...) one call applies: the
/// vectorized function's long dependency chains then overlap across rows.
const ACTIVATION_BATCH_ROWS: usize = 8;

/// [`store_block_zmm`] for the scalar-only activations: the pre-activation values of up to
/// [`ACTIVATION_BATCH_ROWS`] rows of one 16-column panel go to a buffer, the activation runs
/// over the whole buffer ([`apply_each`], same bits per element), then each row is converted
/// and stored.
///
/// # Safety
/// As [`store_block_zmm`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn store_block_batched_zmm(
    ep: &Epilogue<'_>,
    acc: &[i32],
    ldacc: usize,
    i0: usize,
    rows: usize,
    j0: usize,
    cols: usize,
) {
    let mut buf = [0f32; 16 * ACTIVATION_BATCH_ROWS];
    for c in (0..cols).step_by(16) {
        let lanes = (cols - c).min(16);
        // SAFETY: j0 + c is a multiple of 16 inside the output (checked by the caller).
        let columns = unsafe { ep.columns_zmm(j0 + c) };
        for r0 in (0..rows).step_by(ACTIVATION_BATCH_ROWS) {
            let batch = (rows - r0).min(ACTIVATION_BATCH_ROWS);
            for (k, slot) in buf.chunks_exact_mut(16).take(batch).enumerate() {
                let row = &acc[(r0 + k) * ldacc..][..cols];
                // SAFETY: `lanes` values from `row[c]` are in bounds (masked load); the
                // buffer slot holds 16 f32. For an i32 output (`None`) the sums are stored
                // already and `finish_zmm` below stores nothing.
                unsafe {
                    let x = _mm512_maskz_loadu_epi32(mask16(lanes), row.as_ptr().add(c));
                    let y = ep.pre_activation_zmm(&columns, x, i0 + r0 + k, j0 + c, lanes);
                    _mm512_storeu_ps(slot.as_mut_ptr(), y.unwrap_or(_mm512_setzero_ps()));
                }
            }
            apply_each(ep.act, &mut buf[..16 * batch]);
            for (k, slot) in buf.chunks_exact(16).take(batch).enumerate() {
                // SAFETY: the slot holds 16 f32; the output block is the caller's (contract).
                unsafe {
                    ep.finish_zmm(_mm512_loadu_ps(slot.as_ptr()), i0 + r0 + k, j0 + c, lanes)
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::{self, Tier};
    use crate::quant::QParams;

    /// The zmm block epilogue gives the element-by-element bits, for every output kind, on a
    /// ragged block.
    #[test]
    fn store_block_matches_store_one() {
        if !cpu::is_available(Tier::Avx512Vnni) {
            eprintln!("store_block test: skipping avx512-vnni: not available");
            return;
        }
        let (m, n) = (3, 37);
        let acc: Vec<i32> = (0..m * n)
            .map(|i| (i as i32 * 7919) % 20001 - 10000)
            .collect();
        let zp: Vec<i32> = (0..48).map(|j| j * 3 - 50).collect();
        let scale: Vec<f32> = (0..48).map(|j| 0.001 * (j + 1) as f32).collect();
        let bias: Vec<f32> = (0..48).map(|j| j as f32 * 0.25 - 4.0).collect();
        let res: Vec<u8> = (0..m * n).map(|i| (i * 37 % 256) as u8).collect();
        let rq = QParams::new(0.1, 17).unwrap();
        let residual = ResidualView {
            data: &res,
            ld: n,
            zero_point: rq.zero_point,
            scale: rq.scale,
        };
        // Kinds 3 and 4 drive the u8 requantization to huge, infinite and NaN values (ReLU's
        // zeros times an infinite inverse scale).
        for kind in 0..5 {
            let act = match kind {
                0..3 => Activation::Clamp {
                    min: -2.0,
                    max: 3.0,
                },
                _ => Activation::Relu,
            };
            let mut outs: Vec<(Vec<u8>, Vec<f32>, Vec<i32>)> = Vec::new();
            for blockwise in [false, true] {
                let (mut u, mut f, mut i) =
                    (vec![0u8; m * n], vec![0f32; m * n], vec![0i32; m * n]);
                let view = match kind {
                    0 => OutputView::U8(&mut u, 1.0 / 0.02, 9),
                    1 => OutputView::F32(&mut f),
                    2 => OutputView::I32(&mut i),
                    3 => OutputView::U8(&mut u, 1e30, 9),
                    _ => OutputView::U8(&mut u, f32::INFINITY, 9),
                };
                let ep =
                    Epilogue::new(m, n, view, n, &zp, &scale, Some(&bias), Some(residual), act)
                        .unwrap();
                if blockwise {
                    // SAFETY: AVX-512 was checked above; one thread.
                    unsafe { store_block(&ep, &acc, n, 0, m, 0, n).unwrap() };
                    // SAFETY: as above; rows outside the output are rejected, not written.
                    assert!(unsafe { store_block(&ep, &acc, n, 1, m, 0, n) }.is_err());
                } else {
                    for r in 0..m {
                        for c in 0..n {
                            // SAFETY: inside the output; one thread.
                            unsafe { ep.store_one(acc[r * n + c], r, c) };
                        }
                    }
                }
                outs.push((u, f, i));
            }
            assert_eq!(outs[0], outs[1], "output kind {kind}");
        }
    }
}
