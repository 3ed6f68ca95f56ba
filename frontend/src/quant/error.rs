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
}

/// Result alias of the quantization module.
pub type Result<T, E = QuantError> = std::result::Result<T, E>;
