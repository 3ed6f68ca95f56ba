//! AVX2 / AVX-512 kernels of the int8 ops and the depthwise convolution, written once over
//! the [`simd::Simd`] abstraction.

pub(crate) mod depthwise;
pub(crate) mod elementwise;
pub(crate) mod epilogue;
pub(crate) mod pool;
pub(crate) mod simd;

pub(crate) use simd::Isa;
