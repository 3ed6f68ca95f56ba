//! # q8-kernels
//!
//! int8 inference kernels for x86-64: u8 activations x s8 weights with i32 accumulation,
//! on AMX, AVX-512 VNNI, AVX-VNNI, AVX2 and a scalar reference that defines the math.
//!
//! ## Safety model
//! Every public function is safe. It validates shapes, lengths and quantization parameters,
//! checks that the requested [`cpu::Tier`] can run in this process, and only then enters the
//! `unsafe` SIMD code, which lives in the `arch` modules behind those checks. Results are
//! bit-identical across tiers and thread counts.

mod arch;
pub mod conv;
pub mod cpu;
pub mod epilogue;
pub mod error;
pub mod gemm;
pub mod math;
pub mod ops;
pub mod quant;
pub mod reference;
pub mod vector;

pub use cpu::Tier;
pub use epilogue::Activation;
pub use error::{Error, Result};
pub use quant::QParams;
