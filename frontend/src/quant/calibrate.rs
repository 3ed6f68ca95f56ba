//! Calibration: run the fp32 executor over input batches and feed every observed tensor to
//! its group's observer.

use super::error::{QuantError, Result};
use super::prepare::Prepared;
use crate::ir::{Tensor, ValueId};

/// Where a calibration run is, reported after every batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CalibrationProgress {
    /// Batches observed in this run.
    pub batches: usize,
    /// Samples (first-axis entries of the inputs) observed in this run.
    pub samples: usize,
}

/// `t` split along its first axis into batches of `size` (the last one may be smaller):
/// how a large single-input calibration array is fed to [`Prepared::calibrate`]. For
/// several inputs use [`crate::inputs::batches`].
///
/// ```
/// use q8_frontend::ir::Tensor;
/// let t = Tensor::from_f32(vec![5, 2], (0..10).map(|i| i as f32).collect()).unwrap();
/// let b: Vec<Tensor> = q8_frontend::quant::batches(&t, 2).collect();
/// assert_eq!(b.iter().map(|b| b.shape()[0]).collect::<Vec<_>>(), [2, 2, 1]);
/// assert_eq!(b[2].as_f32().unwrap(), &[8.0, 9.0]);
/// ```
///
/// An empty or scalar `t`, or `size == 0`, yields no batches.
pub fn batches(t: &Tensor, size: usize) -> impl Iterator<Item = Tensor> + '_ {
    crate::inputs::batches(std::slice::from_ref(t), size)
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|mut b| b.pop())
}

impl Prepared {
    /// Runs one batch (`inputs` in the order of the graph's inputs) and observes it.
    ///
    /// # Errors
    /// [`QuantError::Calibration`] when an input does not fit the graph (dtype, rank or a
    /// fixed dimension) or an observed tensor holds NaN or infinity (naming the value, the
    /// node computing it and the offset). Observers already fed from this batch keep what they
    /// saw; the offending one is unchanged.
    pub fn observe(&mut self, inputs: &[Tensor]) -> Result<()> {
        let Prepared {
            graph,
            executor,
            observers,
            watch,
            ..
        } = self;
        let mut failure: Option<(ValueId, QuantError)> = None;
        let mut hook = |id: ValueId, _: &str, t: &Tensor| {
            if failure.is_some() || watch[id.0].is_empty() {
                return;
            }
            let Some(values) = t.as_f32() else { return };
            for &g in &watch[id.0] {
                if let Err(e) = observers[g].observe(values) {
                    failure = Some((id, e));
                    return;
                }
            }
        };
        executor
            .run_observed(inputs, &mut hook)
            .map_err(|e| QuantError::Calibration(e.to_string()))?;
        if let Some((id, e)) = failure {
            let v = graph.value(id);
            let place = match graph.producer(id) {
                Some(n) => format!(
                    "value '{}' (output of node '{}', {})",
                    v.name,
                    n.name,
                    n.op.name()
                ),
                None => format!("input '{}'", v.name),
            };
            let what = match e {
                QuantError::NonFinite { offset, value } => {
                    format!("holds {value} at offset {offset}")
                }
                other => other.to_string(),
            };
            return Err(QuantError::Calibration(format!(
                "{place} {what}; NaN and infinity cannot be calibrated"
            )));
        }
        self.batches += 1;
        Ok(())
    }

    /// Observes every batch, calling `progress` after each one. A batch is the model's
    /// inputs in graph order: a [`Tensor`] for a single-input model, a `Vec<Tensor>` or an
    /// array of tensors (e.g. from [`crate::inputs::batches`]) for several.
    ///
    /// # Errors
    /// [`QuantError::Calibration`] when `batches` yields nothing, or as
    /// [`Prepared::observe`] (the message names the batch).
    pub fn calibrate<I, B>(
        &mut self,
        batches: I,
        mut progress: impl FnMut(CalibrationProgress),
    ) -> Result<CalibrationProgress>
    where
        I: IntoIterator<Item = B>,
        B: AsRef<[Tensor]>,
    {
        let mut done = CalibrationProgress::default();
        for batch in batches {
            let batch = batch.as_ref();
            let samples = crate::inputs::samples(batch).unwrap_or(1);
            self.observe(batch).map_err(|e| match e {
                QuantError::Calibration(m) => {
                    QuantError::Calibration(format!("batch {}: {m}", done.batches))
                }
                other => other,
            })?;
            done.batches += 1;
            done.samples += samples;
            progress(done);
        }
        if done.batches == 0 {
            return Err(QuantError::Calibration(
                "no calibration batches were given (the input set is empty)".into(),
            ));
        }
        Ok(done)
    }
}
