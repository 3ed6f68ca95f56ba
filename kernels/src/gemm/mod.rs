//! Packed u8 x s8 GEMM: weights packed once per layer, called many times, any tier.
//!
//! `C[M, N] = epilogue(A[M, K] (u8, zero point za) x W[N, K]^T (s8))`, exactly as
//! `int8-math.md` and [`crate::reference::gemm`] define it, bit-identical on every tier and
//! thread count.
//!
//! 1. [`PackedWeights::new`] packs the weights for one [`Tier`] (layout, column sums, scales,
//!    bias; for AVX2 the pair analysis that keeps `vpmaddubsw` exact).
//! 2. [`gemm`] runs A through them with a fused [`Epilogue`] into an [`Output`] (u8, f32 or
//!    raw i32), on the calling thread or the kernels' thread pool ([`Parallelism`]).
//!
//! ```
//! use q8_kernels::gemm::{gemm, Epilogue, GemmOptions, Output, PackedWeights};
//! use q8_kernels::{cpu, Activation, QParams};
//! let (m, n, k) = (2, 3, 4);
//! let a = [1u8, 2, 3, 4, 5, 6, 7, 8];
//! let w = [1i8, 0, 0, 0, 0, 1, 0, 0, -1, -1, -1, -1]; // [out][in]
//! let tier = cpu::default_tier().unwrap();
//! let packed = PackedWeights::new(tier, n, k, &w, &[1.0], None).unwrap();
//! let aq = QParams::new(0.5, 1).unwrap();
//! let mut c = [0u8; 6];
//! let out = Output::U8 { data: &mut c, ldc: n, qparams: QParams::new(1.0, 10).unwrap() };
//! let ep = Epilogue { activation: Activation::Relu, residual: None };
//! gemm(&a, k, m, aq, &packed, &ep, out, &GemmOptions::default()).unwrap();
//! // row 0: (a - 1) = [0, 1, 2, 3] -> [0, 1, -6] * 0.5 -> relu -> [0, 0.5, 0] -> + 10, rne
//! assert_eq!(c, [10, 10, 10, 12, 12, 10]);
//! ```
//!
//! # Design
//! - Layout ([`pack`]): 16-column panels of 4-byte K groups for every SIMD tier; A is read in
//!   place (row-major with a stride, no packing copy).
//! - Micro-kernels (`arch::gemm`): AVX-512 VNNI 6 rows x 64 columns, AVX-VNNI 6 x 16,
//!   exact AVX2 4 x 16, all accumulating the whole K in registers and applying the epilogue
//!   before storing. Small M (GEMV) runs the same kernels with `R = M` rows.
//! - Driver: jobs of up to 48 rows x an L2-sized chunk of panels on the kernels' spinning
//!   thread pool above ~1M multiply-accumulates (below, the calling thread runs it),
//!   shrinking jobs so every thread gets several.
//! - Crate-internal reuse (convolution, AMX): `gemm_rows` takes any `source::ASource` (rows
//!   in place via offsets, or a block filled on the fly) or an AMX direct-convolution grid,
//!   and `arch::gemm::epilogue::store_block` applies the epilogue to i32 accumulators in
//!   memory.
//! - AMX: the weights are packed as `tdpbusd` B tiles (the panel layout with K padded to 64);
//!   jobs of whole 32-row groups run the 2 x 2-tile kernel of `arch::amx`, each 32 x 32 block
//!   handed from L1 to the AVX-512 epilogue. Shapes with M < 32, N < 32 or K < 64 run the
//!   AVX-512 VNNI kernel on the same bytes.

pub mod pack;
pub(crate) mod source;

pub use pack::{PANEL, PackedWeights, pair_may_saturate};

use crate::arch::gemm::{driver, epilogue as ep, probe};
use crate::conv::direct::TapGrid;
use crate::cpu::{self, Tier};
use crate::epilogue::Activation;
use crate::error::{Error, Result};
use crate::quant::QParams;
use crate::reference::gemm::check_strided;
use source::{ASource, StridedA};

/// Where [`gemm`] writes C (row-major, leading dimension `ldc` >= N, in elements).
pub enum Output<'a> {
    /// Requantized u8: `clamp(rne(y / scale) + zero_point, 0, 255)`.
    U8 {
        /// At least `(M - 1) * ldc + N` elements.
        data: &'a mut [u8],
        /// Leading dimension.
        ldc: usize,
        /// Output quantization.
        qparams: QParams,
    },
    /// The f32 epilogue value `y`.
    F32 {
        /// At least `(M - 1) * ldc + N` elements.
        data: &'a mut [f32],
        /// Leading dimension.
        ldc: usize,
    },
    /// The exact accumulator `sum a * w - za * colsum` (no scale, bias, residual or activation).
    I32 {
        /// At least `(M - 1) * ldc + N` elements.
        data: &'a mut [i32],
        /// Leading dimension.
        ldc: usize,
    },
}

/// A u8 tensor added in the epilogue (a residual "sum" input), M x N with its qparams.
#[derive(Clone, Copy, Debug)]
pub struct Residual<'a> {
    /// At least `(M - 1) * ld + N` elements.
    pub data: &'a [u8],
    /// Leading dimension (elements).
    pub ld: usize,
    /// Its quantization.
    pub qparams: QParams,
}

/// The fused steps after the accumulation (bias and weight scales live in [`PackedWeights`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct Epilogue<'a> {
    /// Applied after bias and residual.
    pub activation: Activation,
    /// Optional residual input.
    pub residual: Option<Residual<'a>>,
}

/// Which threads a call may use. Results are identical for every choice.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Parallelism {
    /// The calling thread only.
    Sequential,
    /// As many threads as the current rayon pool has (the global one unless called inside
    /// `ThreadPool::install`); they run on the kernels' own spinning pool of that size.
    #[default]
    Global,
    /// This many threads: the caller and the workers of the kernels' pool of that size
    /// (created once per size and kept; idle workers spin about 2 ms, then sleep).
    Threads(usize),
}

/// Per-call options.
#[derive(Clone, Copy, Debug, Default)]
pub struct GemmOptions {
    /// The tier to run; `None` runs the tier the weights were packed for. A different tier
    /// is an error ([`Error::TierMismatch`]), never a silent conversion.
    pub tier: Option<Tier>,
    /// Threads to use.
    pub parallelism: Parallelism,
}

/// The largest `Parallelism::Threads(n)` accepted: a pool is kept per distinct count, so
/// counts are bounded to bound the threads a caller can leave behind.
pub const MAX_THREADS: usize = 256;

/// `C = epilogue(A x W^T)` for row-major A (`m` rows of `weights.k()` bytes, stride `lda`).
///
/// # Errors
/// Zero `m`, short slices or strides smaller than a row, invalid qparams or clamp bounds,
/// a tier that is unavailable or differs from the packing tier, `Threads(0)` or more than
/// [`MAX_THREADS`] threads.
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    a: &[u8],
    lda: usize,
    m: usize,
    a_qparams: QParams,
    weights: &PackedWeights,
    epilogue: &Epilogue<'_>,
    out: Output<'_>,
    options: &GemmOptions,
) -> Result<()> {
    check_strided("gemm A", a.len(), m, weights.k(), lda)?;
    gemm_rows(
        ARowsIn::Source(&StridedA { data: a, lda }, m),
        a_qparams,
        weights,
        epilogue,
        out,
        options,
    )
}

/// Where a crate-internal GEMM call's A rows come from.
pub(crate) enum ARowsIn<'a> {
    /// `m` rows from any [`ASource`] (plain A, implicit-GEMM convolution).
    Source(&'a dyn ASource, usize),
    /// The grid of an AMX direct convolution (weights packed for AMX, K = the grid's step
    /// count x 64); output rows as the grid maps them.
    Taps(&'a TapGrid<'a>),
}

/// [`gemm`] with A rows from an [`ARowsIn`] (crate-internal entry for convolution).
///
/// # Errors
/// As [`gemm`]; also a source whose rows do not have K readable bytes, or a grid whose
/// weights are not packed for AMX or do not match it.
pub(crate) fn gemm_rows(
    a: ARowsIn<'_>,
    a_qparams: QParams,
    weights: &PackedWeights,
    epilogue: &Epilogue<'_>,
    out: Output<'_>,
    options: &GemmOptions,
) -> Result<()> {
    let m = match a {
        ARowsIn::Source(_, m) => m,
        ARowsIn::Taps(grid) => grid.out_rows(),
    };
    let call = Call {
        m,
        a_qparams,
        weights,
        epilogue,
        options,
    };
    call.run(out, |epi, threads| match a {
        ARowsIn::Source(rows, m) => driver::run(weights, m, rows, epi, threads),
        ARowsIn::Taps(grid) => driver::run_taps(weights, grid, epi, threads),
    })
}

/// The operands of one GEMM call besides A and the output.
struct Call<'c> {
    m: usize,
    a_qparams: QParams,
    weights: &'c PackedWeights,
    epilogue: &'c Epilogue<'c>,
    options: &'c GemmOptions,
}

impl Call<'_> {
    /// Validates the call, builds the fused epilogue over `out` and hands it to `body` with
    /// the number of threads to use.
    fn run(
        &self,
        out: Output<'_>,
        body: impl FnOnce(&ep::Epilogue<'_>, usize) -> Result<()>,
    ) -> Result<()> {
        let Call {
            m,
            a_qparams,
            weights,
            epilogue,
            options,
        } = *self;
        let tier = weights.tier();
        if let Some(requested) = options.tier
            && requested != tier
        {
            return Err(Error::TierMismatch {
                packed: tier,
                requested,
            });
        }
        cpu::require(tier)?;
        if m == 0 {
            return Err(Error::Shape("gemm: M must be >= 1".into()));
        }
        a_qparams.validate()?;
        epilogue.activation.validate()?;
        let scale: Vec<f32> = weights
            .weight_scales
            .iter()
            .map(|&s| a_qparams.scale * s)
            .collect();
        let zp_corr: Vec<i32> = weights
            .colsum
            .iter()
            .map(|&c| -a_qparams.zero_point * c)
            .collect();
        let residual = match epilogue.residual {
            Some(r) => {
                r.qparams.validate()?;
                Some(ep::ResidualView {
                    data: r.data,
                    ld: r.ld,
                    zero_point: r.qparams.zero_point,
                    scale: r.qparams.scale,
                })
            }
            None => None,
        };
        let (view, ldc) = match out {
            Output::U8 { data, ldc, qparams } => {
                qparams.validate()?;
                (
                    ep::OutputView::U8(data, qparams.inv_scale(), qparams.zero_point),
                    ldc,
                )
            }
            Output::F32 { data, ldc } => (ep::OutputView::F32(data), ldc),
            Output::I32 { data, ldc } => (ep::OutputView::I32(data), ldc),
        };
        let epi = ep::Epilogue::new(
            m,
            weights.n(),
            view,
            ldc,
            &zp_corr,
            &scale,
            weights.bias.as_deref(),
            residual,
            epilogue.activation,
        )?;
        body(&epi, thread_count(options.parallelism)?)
    }
}

/// The threads a call with `parallelism` uses.
fn thread_count(parallelism: Parallelism) -> Result<usize> {
    Ok(match parallelism {
        Parallelism::Sequential => 1,
        Parallelism::Global => rayon::current_num_threads(),
        Parallelism::Threads(0) => {
            return Err(Error::Shape(
                "gemm: Parallelism::Threads(0) has no thread to run on".into(),
            ));
        }
        Parallelism::Threads(n) if n > MAX_THREADS => {
            return Err(Error::Shape(format!(
                "gemm: Parallelism::Threads({n}) exceeds {MAX_THREADS} (one pool per count is kept)"
            )));
        }
        Parallelism::Threads(n) => n,
    })
}

/// The measured per-core peak of `tier`'s multiply-accumulate instruction in GOPS (2 ops per
/// u8 x s8 MAC), from independent register-only chains (`vpdpbusd` zmm / ymm, the AVX2
/// `vpmaddubsw` + `vpmaddwd` + `vpaddd` triple). `None` for the scalar tier, which has no
/// such instruction. Takes a few milliseconds.
///
/// ```
/// use q8_kernels::{cpu, gemm};
/// let best = cpu::best_tier();
/// if let Some(gops) = gemm::peak_gops(best).unwrap() {
///     assert!(gops > 0.0);
/// }
/// ```
///
/// # Errors
/// The tier is not available here.
pub fn peak_gops(tier: Tier) -> Result<Option<f64>> {
    cpu::require(tier)?;
    Ok(probe::peak_gops(tier))
}
