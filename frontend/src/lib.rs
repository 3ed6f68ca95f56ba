//! Graph IR, ONNX import, fp32 execution, quantization flow and lowering onto q8-kernels.
#![forbid(unsafe_code)]

pub mod npy;
pub mod quant;
