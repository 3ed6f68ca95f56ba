//! The scalar reference: plain loops that *define* q8's int8 results (`int8-math.md`).
//! Every optimized path is tested for bit equality against these functions.

pub mod conv;
pub mod gemm;
pub mod ops;

pub use gemm::{RefOutput, gemm_ref};
