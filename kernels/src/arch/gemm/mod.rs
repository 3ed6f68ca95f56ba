//! AVX2, AVX-VNNI and AVX-512 VNNI GEMM micro-kernels, packing and epilogues.
//!
//! - [`kernel`]: the register-blocked micro-kernel template (`R` rows x `NB` 16-column
//!   panels, whole K in registers, fused epilogue) and the block loop.
//! - [`avx512`], [`avxvnni`], [`avx2`], [`scalar`]: one tier each; [`ymm`]: the two-ymm
//!   panel row the AVX-VNNI and AVX2 tiers share.
//! - [`epilogue`]: the vectorized epilogue (zmm, ymm, scalar) and [`epilogue::store_block`]
//!   for engines that produce i32 accumulators in memory (AMX, convolution).
//! - [`driver`]: blocking, jobs on the kernels' spinning pool, dispatch.
//! - [`probe`]: per-tier instruction-throughput probes.

pub(crate) mod avx2;
pub(crate) mod avx512;
pub(crate) mod avxvnni;
pub(crate) mod driver;
pub(crate) mod epilogue;
pub(crate) mod kernel;
pub(crate) mod probe;
pub(crate) mod scalar;
pub(crate) mod ymm;
