//! AMX-INT8 (`tdpbusd`) GEMM micro-kernel, tile configuration and packing.
//!
//! - [`AmxPackedB`]: s8 weights in the `tdpbusd` B layout (16-column panels of 4-byte K
//!   groups, K padded to 64).
//! - [`AOperand`] + [`gemm_tiles`]: u8 activation rows read in place, packed into tiles
//!   once, or (a direct convolution) read at one offset per K step from a padded input; raw
//!   i32 GEMMs against those weights on the calling thread's tiles, each finished 32 x 32
//!   block handed to a sink (the epilogue) while hot in L1. `gemm_tiles_with` is the same
//!   driver on any [`TileOps`], which is how the tests run it on the emulator on CPUs
//!   without AMX.
//! - [`measure_peak_gops`]: the `tdpbusd` throughput probe.
//!
//! Only `native.rs` executes AMX instructions; everything else (packing, staging,
//! blocking, edge handling, bounds) is exercised by the emulator on every machine.

mod config;
mod driver;
#[cfg(test)]
mod emulator;
mod native;
mod pack;
#[cfg(test)]
mod tests;
mod tile_ops;

#[cfg(test)]
pub(crate) use driver::gemm_i32_with;
pub(crate) use driver::{AOperand, ATiles, BLOCK_DIM, CBlock, a_tiles, gemm_tiles};
#[cfg(test)]
pub(crate) use native::NativeTiles;
pub(crate) use native::measure_peak_gops;
pub(crate) use pack::AmxPackedB;
#[cfg(test)]
pub(crate) use tile_ops::TileOps;
