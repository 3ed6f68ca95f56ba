//! Graph IR, ONNX import, fp32 execution, quantization flow and lowering onto q8-kernels.
//!
//! Load, inspect, fold and run a model:
//!
//! ```no_run
//! use q8_frontend::exec::{ExecOptions, Executor};
//! use q8_frontend::ir::Tensor;
//! use q8_frontend::{onnx, passes};
//!
//! let mut graph = onnx::load("digits_resnet.onnx")?;           // opsets 13-21, QDQ too
//! for (_, node) in graph.nodes() {
//!     println!("{:<24} {}", node.name, node.op.name());          // ONNX node names kept
//! }
//! let report = passes::fold_batch_norm(&mut graph)?;           // Conv/Gemm + BN -> Conv/Gemm
//! println!("folded {} BatchNorms", report.folded.len());
//! let exec = Executor::new(&graph, ExecOptions { threads: 2 })?;
//! let x = Tensor::from_f32(vec![4, 1, 32, 32], vec![0.0; 4 * 32 * 32])?;
//! let logits = exec.run_observed(&[x], &mut |_, name, t| println!("{name}: {:?}", t.shape()))?;
//! println!("{:?}", logits[0].shape());
//! # Ok::<(), q8_frontend::error::Error>(())
//! ```
#![forbid(unsafe_code)]

pub mod error;
pub mod exec;
pub mod inputs;
pub mod ir;
pub mod lower;
pub mod models;
pub mod npy;
pub mod onnx;
pub mod ops;
pub mod passes;
pub mod quant;
pub mod runtime;
