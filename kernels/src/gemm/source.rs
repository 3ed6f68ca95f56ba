//! Where the GEMM driver gets its A rows from (crate-internal; the basis of implicit-GEMM
//! convolution).
//!
//! The driver asks an [`ASource`] for one block of rows at a time (a job's `MC` rows) and
//! runs every micro-kernel of the job on them, so a source can
//! - point into the caller's memory (row-major A with a stride, [`StridedA`]; a strided
//!   1x1 convolution whose output pixel `i` reads input pixel `f(i)`), at no copy, or
//! - fill a small scratch block on the fly (a k x k convolution's receptive fields, with
//!   padded taps set to the input zero point), reused across all of the job's N panels.

/// A provider of A rows (u8, K bytes each, the activation zero point applies to all).
pub(crate) trait ASource: Sync {
    /// Makes rows `m0..m0 + offsets.len()` available: writes where each row starts into
    /// `offsets` and returns the slice they index (its own data, or `scratch` after filling
    /// it). Each row must have K readable bytes; the driver checks this before any kernel
    /// runs and reports a violation as an error.
    fn rows<'s>(&'s self, m0: usize, offsets: &mut [usize], scratch: &'s mut Vec<u8>) -> &'s [u8];
}

/// Row-major A with leading dimension `lda`.
pub(crate) struct StridedA<'a> {
    /// The activations.
    pub data: &'a [u8],
    /// Elements between consecutive rows.
    pub lda: usize,
}

impl ASource for StridedA<'_> {
    fn rows<'s>(&'s self, m0: usize, offsets: &mut [usize], _: &'s mut Vec<u8>) -> &'s [u8] {
        for (r, o) in offsets.iter_mut().enumerate() {
            *o = (m0 + r) * self.lda;
        }
        self.data
    }
}
