//! The per-tensor observer interface and the observer kinds a configuration can name.

use super::error::{QuantError, Result};
use super::histogram::{HistogramObserver, RangeSearch};
use super::minmax::{MinMaxObserver, MovingAverageMinMaxObserver, min_max};
use super::qparams::{QuantRange, Symmetry, TensorQParams, compute_qparams};

/// Collects statistics of one tensor over calibration batches and derives its qparams.
pub trait Observer: Send + std::fmt::Debug {
    /// Folds one batch (any shape, flattened) into the statistics. Empty batches are ignored.
    ///
    /// # Errors
    /// [`QuantError::NonFinite`] naming the first NaN or infinite value; the statistics are
    /// left unchanged.
    fn observe(&mut self, values: &[f32]) -> Result<()>;

    /// Scale and zero point from the statistics so far; (1.0, 0) if nothing was observed.
    fn qparams(&self) -> TensorQParams;

    /// The running (min, max) statistic, `None` before the first non-empty batch.
    fn observed_range(&self) -> Option<(f32, f32)>;
}

/// Which observer computes an activation's qparams.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ObserverKind {
    /// Running min/max over all batches.
    MinMax,
    /// Exponential moving average of per-batch min/max; `averaging_constant` in (0, 1].
    MovingAverageMinMax {
        /// Weight of the newest batch (torch: 0.01).
        averaging_constant: f32,
    },
    /// torch's `HistogramObserver` with its L2 range search (the X86 default).
    Histogram,
    /// Histogram, then keep the central `percentile` percent of the mass.
    Percentile {
        /// In (0, 100], e.g. 99.99.
        percentile: f64,
    },
    /// Histogram, then the range with the least quantization MSE.
    Mse,
}

impl ObserverKind {
    /// Checks the kind's parameters.
    ///
    /// # Errors
    /// [`QuantError::Config`] naming the bad parameter.
    pub fn validate(&self) -> Result<()> {
        match *self {
            ObserverKind::MovingAverageMinMax {
                averaging_constant: c,
            } if !(c > 0.0 && c <= 1.0) => Err(QuantError::Config(format!(
                "averaging constant {c} must be in (0, 1]"
            ))),
            ObserverKind::Percentile { percentile: p } if !(p > 0.0 && p <= 100.0) => Err(
                QuantError::Config(format!("percentile {p} must be in (0, 100]")),
            ),
            _ => Ok(()),
        }
    }

    /// A fresh observer of this kind.
    ///
    /// ```
    /// use q8_frontend::quant::{ObserverKind, QuantRange, Symmetry};
    /// let mut obs = ObserverKind::MinMax.build(QuantRange::U8, Symmetry::Affine, 2f32.powi(-12)).unwrap();
    /// obs.observe(&[0.0, 2.55]).unwrap();
    /// assert_eq!(obs.qparams().zero_point, 0);
    /// ```
    ///
    /// # Errors
    /// As [`ObserverKind::validate`].
    pub fn build(
        self,
        range: QuantRange,
        symmetry: Symmetry,
        eps: f32,
    ) -> Result<Box<dyn Observer>> {
        self.validate()?;
        let histogram = |search| {
            HistogramObserver::with_options(
                range,
                symmetry,
                eps,
                HistogramObserver::DEFAULT_BINS,
                search,
            )
        };
        Ok(match self {
            ObserverKind::MinMax => Box::new(MinMaxObserver::new(range, symmetry, eps)),
            ObserverKind::MovingAverageMinMax { averaging_constant } => Box::new(
                MovingAverageMinMaxObserver::new(range, symmetry, eps, averaging_constant)?,
            ),
            ObserverKind::Histogram => Box::new(histogram(RangeSearch::TorchL2)?),
            ObserverKind::Percentile { percentile } => {
                Box::new(histogram(RangeSearch::Percentile(percentile))?)
            }
            ObserverKind::Mse => Box::new(histogram(RangeSearch::Mse)?),
        })
    }
}

/// Dynamic quantization: the affine qparams of one call's tensor, from its own min/max (what
/// torch's `choose_qparams` computes at run time for dynamically quantized linear layers).
///
/// ```
/// use q8_frontend::quant::{dynamic_qparams, QuantRange};
/// let q = dynamic_qparams(&[-1.0, 0.2, 3.0], QuantRange::U8, 2f32.powi(-12)).unwrap();
/// assert_eq!((q.scale, q.zero_point), (4.0 / 255.0, 64));
/// ```
///
/// # Errors
/// [`QuantError::NonFinite`] for NaN/inf. An empty tensor gives (1.0, 0).
pub fn dynamic_qparams(values: &[f32], range: QuantRange, eps: f32) -> Result<TensorQParams> {
    let (lo, hi) = min_max(values)?.unwrap_or((f32::INFINITY, f32::NEG_INFINITY));
    Ok(compute_qparams(lo, hi, range, Symmetry::Affine, eps))
}
