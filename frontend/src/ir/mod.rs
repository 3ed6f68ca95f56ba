//! The graph IR: typed values and ops, type/shape inference, a builder and a validator.
//!
//! Every node keeps the name it had in the source model; values carry a [`DType`] and a
//! [`Shape`] whose dimensions may be symbolic (a dynamic batch). Passes find patterns with
//! [`Graph::producer`] / [`Graph::consumers`] and rewrite with [`Graph::set_input`],
//! [`Graph::set_output`], [`Graph::replace_uses`] and [`Graph::remove_node`].

mod builder;
mod dtype;
mod graph;
mod infer;
mod op;
mod shape;
mod tensor;
mod window;

pub use builder::{BatchNormParams, GraphBuilder};
pub use dtype::DType;
pub use graph::{Graph, Node, NodeId, Value, ValueId};
pub use infer::{ValueType, broadcast, infer};
pub use op::{Conv, Gemm, Op, Pool, QuantSpec, ReshapeDim};
pub use shape::{Dim, MAX_DIM, MAX_ELEMENTS, Shape, checked_numel};
pub(crate) use tensor::transpose_2d;
pub use tensor::{Tensor, TensorData};
pub use window::{Padding, Resolved, Window2d};
