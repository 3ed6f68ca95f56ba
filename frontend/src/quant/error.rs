//! Errors of quantization configuration and observation.

/// What went wrong while configuring or observing.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum QuantError {
    /// An observed tensor holds NaN or an infinity, which has no quantized representation.
    #[error("observed value at offset {offset} is {value}: NaN and infinity cannot be calibrated")]
    NonFinite {
        /// Flat (C-order) index of the first offending value.
        offset: usize,
        /// The value found there.
        value: f32,
    },
    /// A configuration or observer parameter is out of its domain.
    #[error("invalid quantization config: {0}")]
    Config(String),
    /// Values and shape disagree, or the channel axis does not exist.
    #[error("invalid shape: {0}")]
    Shape(String),
    /// Quantization parameters were asked of an observer that has seen no data and has no
    /// meaningful default (per-channel weights).
    #[error("{0} has observed nothing")]
    NotObserved(&'static str),
    /// Calibration could not run or saw data that cannot be calibrated.
    #[error("calibration failed: {0}")]
    Calibration(String),
    /// The graph could not be prepared, converted, executed or saved.
    #[error("{0}")]
    Model(String),
    /// No node of the model can be quantized (the coverage report says why for each).
    #[error("nothing in the model can be quantized:\n{0}")]
    NothingQuantizable(String),
}

impl From<crate::error::Error> for QuantError {
    fn from(e: crate::error::Error) -> QuantError {
        QuantError::Model(e.to_string())
    }
}

/// Result alias of the quantization module.
pub type Result<T, E = QuantError> = std::result::Result<T, E>;
