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
/// how a large calibration array is fed to [`Prepared::calibrate`].
///
/// ```
/// use q8_frontend::ir::Tensor;
/// let t = Tensor::from_f32(vec![5, 2], (0..10).map(|i| i as f32).collect()).unwrap();
/// let b: Vec<Tensor> = q8_frontend::quant::batches(&t, 2).collect();
/// assert_eq!(b.iter().map(|b| b.shape()[0]).collect::<Vec<_>>(), [2, 2, 1]);
/// assert_eq!(b[2].as_f32().unwrap(), &[8.0, 9.0]);
/// ```
///
/// An empty, scalar or non-f32 `t`, or `size == 0`, yields no batches.
pub fn batches(t: &Tensor, size: usize) -> impl Iterator<Item = Tensor> + '_ {
    let per: usize = t.shape().iter().skip(1).product();
    let data = t
        .as_f32()
        .filter(|_| !t.shape().is_empty())
        .filter(|d| size > 0 && per > 0 && !d.is_empty())
        .unwrap_or(&[]);
    data.chunks(per.max(1) * size.max(1)).filter_map(move |c| {
        let mut shape = t.shape().to_vec();
        shape[0] = c.len() / per;
        Tensor::from_f32(shape, c.to_vec()).ok()
    })
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

    /// Observes every batch of a single-input model, calling `progress` after each one.
    ///
    /// # Errors
    /// [`QuantError::Calibration`] when the model has more than one input, when `batches`
    /// yields nothing, or as [`Prepared::observe`] (the message names the batch).
    pub fn calibrate<I>(
        &mut self,
        batches: I,
        mut progress: impl FnMut(CalibrationProgress),
    ) -> Result<CalibrationProgress>
    where
        I: IntoIterator<Item = Tensor>,
    {
        let inputs = self.graph.inputs().len();
        if inputs != 1 {
            return Err(QuantError::Calibration(format!(
                "the model has {inputs} inputs; feed multi-input models with Prepared::observe"
            )));
        }
        let mut done = CalibrationProgress::default();
        for batch in batches {
            let samples = batch.shape().first().copied().unwrap_or(1);
            self.observe(std::slice::from_ref(&batch))
                .map_err(|e| match e {
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
