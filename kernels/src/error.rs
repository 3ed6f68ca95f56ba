//! The one error type of `q8-kernels`: every public function validates its arguments and
//! returns one of these instead of panicking.

use crate::cpu::Tier;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, with enough context to find the offending argument.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Error {
    /// `Q8_ISA` or a CLI flag named no known tier.
    #[error("unknown ISA tier {0:?}: expected scalar, avx2, avx-vnni, avx512-vnni or amx")]
    UnknownTier(String),
    /// The requested tier cannot run on this CPU/OS.
    #[error("ISA tier {tier} is not available here: {reason}")]
    TierUnavailable {
        /// The tier asked for.
        tier: Tier,
        /// What CPU feature, OS state or permission is missing.
        reason: String,
    },
    /// A packed buffer was made for another tier than the one asked to run it.
    #[error("weights were packed for tier {packed} but the call asked for tier {requested}")]
    TierMismatch {
        /// Tier the weights were packed for.
        packed: Tier,
        /// Tier requested by the call.
        requested: Tier,
    },
    /// A slice is shorter (or longer) than its shape requires.
    #[error("{what}: expected length {expected}, got {actual}")]
    Length {
        /// Which argument.
        what: &'static str,
        /// Required length.
        expected: usize,
        /// Length passed.
        actual: usize,
    },
    /// A shape or geometry argument is invalid.
    #[error("invalid shape: {0}")]
    Shape(String),
    /// A quantization parameter is invalid (zero/NaN/negative scale, zero point out of range).
    #[error("invalid quantization parameter: {0}")]
    QParams(String),
    /// The reduction is too long for an exact i32 accumulator.
    #[error("K = {k} exceeds {max}, the largest reduction an i32 accumulator holds exactly")]
    KTooLarge {
        /// Reduction length asked for.
        k: usize,
        /// Largest supported.
        max: usize,
    },
}
