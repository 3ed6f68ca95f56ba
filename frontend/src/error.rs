//! The frontend's error type: every message is one sentence naming what is wrong and where.

/// Errors of graph construction, ONNX import, passes and execution.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// File involved.
        path: String,
        /// Underlying I/O error.
        source: std::io::Error,
    },
    /// The bytes are not a well-formed ONNX model.
    #[error("malformed ONNX model: {0}")]
    Decode(String),
    /// The model uses an operator q8 does not implement.
    #[error("unsupported ONNX op {op_type} (node '{node}', domain '{domain}', opset {opset})")]
    UnsupportedOp {
        /// ONNX op type.
        op_type: String,
        /// ONNX node name.
        node: String,
        /// Operator domain ("" is the default ONNX domain).
        domain: String,
        /// Opset version of that domain in the model.
        opset: i64,
    },
    /// A node is malformed: bad attribute, input count, type or shape.
    #[error("{op} node '{node}': {message}")]
    Node {
        /// Op type (ONNX spelling).
        op: String,
        /// Node name (the ONNX node name it came from).
        node: String,
        /// What is wrong.
        message: String,
    },
    /// The graph as a whole is malformed (dangling edge, cycle, duplicate name, ...).
    #[error("invalid graph: {0}")]
    Graph(String),
    /// A run was given inputs that do not match the graph.
    #[error("invalid input: {0}")]
    Input(String),
}

impl Error {
    /// An error attributed to one node.
    pub fn node(
        op: impl Into<String>,
        node: impl Into<String>,
        message: impl Into<String>,
    ) -> Error {
        Error::Node {
            op: op.into(),
            node: node.into(),
            message: message.into(),
        }
    }
}

/// Result with the frontend's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
