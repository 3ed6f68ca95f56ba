//! Graph IR, ONNX import, fp32 execution, quantization flow and lowering onto q8-kernels.
#![forbid(unsafe_code)]

pub mod error;
pub mod exec;
pub mod ir;
pub mod models;
pub mod npy;
pub mod onnx;
pub mod passes;
pub mod quant;
