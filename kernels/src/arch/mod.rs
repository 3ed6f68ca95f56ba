//! ISA-specific code. All `unsafe` of the crate (besides CPU detection) lives below here,
//! behind safe functions that check the tier and the bounds first.

pub(crate) mod amx;
pub(crate) mod gemm;
pub(crate) mod ops;
pub(crate) mod spin_pool;
pub(crate) mod vector;
