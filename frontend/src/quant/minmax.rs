//! Min/max statistics: a single-pass, auto-vectorized scan that also rejects NaN and infinity,
//! and the observers built on it (`MinMaxObserver`, `MovingAverageMinMaxObserver`,
//! `PerChannelMinMaxObserver` of torchao's pt2e stack).

use rayon::prelude::*;

use super::error::{QuantError, Result};
use super::observer::Observer;
use super::qparams::{ChannelQParams, QuantRange, Symmetry, TensorQParams, compute_qparams};

/// Lanes of the vectorized scan (one AVX-512 register of f32, two AVX2 registers).
const LANES: usize = 16;

/// Inputs longer than this are scanned in parallel chunks of this size.
const PARALLEL_CHUNK: usize = 1 << 18;

/// `(min, max)` of `values`, `None` when empty.
///
/// # Errors
/// [`QuantError::NonFinite`] naming the first NaN or infinite value.
pub fn min_max(values: &[f32]) -> Result<Option<(f32, f32)>> {
    if values.is_empty() {
        return Ok(None);
    }
    let (lo, hi, finite) = if values.len() > PARALLEL_CHUNK {
        values.par_chunks(PARALLEL_CHUNK).map(scan).reduce(
            || (f32::INFINITY, f32::NEG_INFINITY, true),
            |a, b| (a.0.min(b.0), a.1.max(b.1), a.2 && b.2),
        )
    } else {
        scan(values)
    };
    if !finite {
        return Err(first_non_finite(values));
    }
    Ok(Some((lo, hi)))
}

/// The error for the first non-finite value (cold path).
pub(crate) fn first_non_finite(values: &[f32]) -> QuantError {
    let (offset, &value) = values
        .iter()
        .enumerate()
        .find(|(_, v)| !v.is_finite())
        .unwrap_or((0, &f32::NAN));
    QuantError::NonFinite { offset, value }
}

/// One pass over `values`: min, max and whether every value is finite. Written as independent
/// lanes with branch-free selects so that LLVM vectorizes it; a per-lane flag records any NaN
/// or ±inf.
fn scan(values: &[f32]) -> (f32, f32, bool) {
    let mut lo = [f32::INFINITY; LANES];
    let mut hi = [f32::NEG_INFINITY; LANES];
    let mut non_finite = [0u32; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for j in 0..LANES {
            let x = chunk[j];
            lo[j] = if x < lo[j] { x } else { lo[j] };
            hi[j] = if x > hi[j] { x } else { hi[j] };
            non_finite[j] |= u32::from(!x.is_finite());
        }
    }
    for (j, &x) in tail.iter().enumerate() {
        lo[j] = if x < lo[j] { x } else { lo[j] };
        hi[j] = if x > hi[j] { x } else { hi[j] };
        non_finite[j] |= u32::from(!x.is_finite());
    }
    let lo = lo.iter().fold(f32::INFINITY, |a, &b| a.min(b));
    let hi = hi.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let finite = non_finite.iter().all(|&p| p == 0);
    (lo, hi, finite)
}

/// Running min/max (`MinMaxObserver`): `min = min(min, min(x))`, `max = max(max, max(x))`;
/// empty tensors are ignored.
///
/// ```
/// use q8_frontend::quant::{MinMaxObserver, Observer, QuantRange, Symmetry};
/// let mut obs = MinMaxObserver::new(QuantRange::U8, Symmetry::Affine, 2f32.powi(-12));
/// obs.observe(&[-1.0, 0.5]).unwrap();
/// obs.observe(&[3.0]).unwrap();
/// assert_eq!(obs.observed_range(), Some((-1.0, 3.0)));
/// assert_eq!(obs.qparams().zero_point, 64);
/// assert!(obs.observe(&[1.0, f32::NAN]).is_err());
/// ```
#[derive(Clone, Debug)]
pub struct MinMaxObserver {
    range: QuantRange,
    symmetry: Symmetry,
    eps: f32,
    min: f32,
    max: f32,
}

impl MinMaxObserver {
    /// An observer that has seen nothing.
    pub fn new(range: QuantRange, symmetry: Symmetry, eps: f32) -> MinMaxObserver {
        MinMaxObserver {
            range,
            symmetry,
            eps,
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
        }
    }
}

impl Observer for MinMaxObserver {
    fn observe(&mut self, values: &[f32]) -> Result<()> {
        if let Some((lo, hi)) = min_max(values)? {
            self.min = self.min.min(lo);
            self.max = self.max.max(hi);
        }
        Ok(())
    }

    fn qparams(&self) -> TensorQParams {
        compute_qparams(self.min, self.max, self.range, self.symmetry, self.eps)
    }

    fn observed_range(&self) -> Option<(f32, f32)> {
        (self.min <= self.max).then_some((self.min, self.max))
    }
}

/// Exponential moving average of per-batch min/max (`MovingAverageMinMaxObserver`): the first
/// batch sets min/max, later ones move them by `c · (batch_min - min)` (all f32; c = 0.01 by
/// default).
#[derive(Clone, Debug)]
pub struct MovingAverageMinMaxObserver {
    inner: MinMaxObserver,
    averaging_constant: f32,
}

impl MovingAverageMinMaxObserver {
    /// PyTorch's default averaging constant.
    pub const DEFAULT_AVERAGING_CONSTANT: f32 = 0.01;

    /// An observer that has seen nothing.
    ///
    /// # Errors
    /// [`QuantError::Config`] unless `0 < averaging_constant <= 1`.
    pub fn new(
        range: QuantRange,
        symmetry: Symmetry,
        eps: f32,
        averaging_constant: f32,
    ) -> Result<MovingAverageMinMaxObserver> {
        if !(averaging_constant > 0.0 && averaging_constant <= 1.0) {
            return Err(QuantError::Config(format!(
                "averaging constant {averaging_constant} must be in (0, 1]"
            )));
        }
        Ok(MovingAverageMinMaxObserver {
            inner: MinMaxObserver::new(range, symmetry, eps),
            averaging_constant,
        })
    }
}

impl Observer for MovingAverageMinMaxObserver {
    fn observe(&mut self, values: &[f32]) -> Result<()> {
        let Some((lo, hi)) = min_max(values)? else {
            return Ok(());
        };
        let obs = &mut self.inner;
        if obs.min == f32::INFINITY && obs.max == f32::NEG_INFINITY {
            (obs.min, obs.max) = (lo, hi);
        } else {
            let c = self.averaging_constant;
            obs.min += c * (lo - obs.min);
            obs.max += c * (hi - obs.max);
        }
        Ok(())
    }

    fn qparams(&self) -> TensorQParams {
        self.inner.qparams()
    }

    fn observed_range(&self) -> Option<(f32, f32)> {
        self.inner.observed_range()
    }
}

/// Running min/max per channel along `axis` (`PerChannelMinMaxObserver`), for weights.
///
/// ```
/// use q8_frontend::quant::{PerChannelMinMaxObserver, QuantRange, Symmetry};
/// let mut obs = PerChannelMinMaxObserver::new(0, QuantRange::I8, Symmetry::Symmetric, 2f32.powi(-12));
/// obs.observe(&[0.5, -1.0, 0.25, 0.0], &[2, 2]).unwrap();
/// let q = obs.qparams().unwrap();
/// assert_eq!(q.scales, vec![1.0 / 127.5, 0.25 / 127.5]);
/// assert_eq!(q.zero_points, vec![0, 0]);
/// ```
#[derive(Clone, Debug)]
pub struct PerChannelMinMaxObserver {
    axis: usize,
    range: QuantRange,
    symmetry: Symmetry,
    eps: f32,
    mins: Vec<f32>,
    maxs: Vec<f32>,
}

impl PerChannelMinMaxObserver {
    /// An observer that has seen nothing.
    pub fn new(
        axis: usize,
        range: QuantRange,
        symmetry: Symmetry,
        eps: f32,
    ) -> PerChannelMinMaxObserver {
        PerChannelMinMaxObserver {
            axis,
            range,
            symmetry,
            eps,
            mins: Vec::new(),
            maxs: Vec::new(),
        }
    }

    /// Folds a C-order tensor of `shape` into the per-channel statistics.
    ///
    /// # Errors
    /// [`QuantError::Shape`] if `values` does not match `shape`, the axis is missing or the
    /// channel count changed; [`QuantError::NonFinite`] for NaN/inf.
    pub fn observe(&mut self, values: &[f32], shape: &[usize]) -> Result<()> {
        let channels = *shape.get(self.axis).ok_or_else(|| {
            QuantError::Shape(format!(
                "channel axis {} does not exist in shape {shape:?}",
                self.axis
            ))
        })?;
        let count = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if count != Some(values.len()) {
            return Err(QuantError::Shape(format!(
                "shape {shape:?} does not match {} values",
                values.len()
            )));
        }
        if values.is_empty() {
            return Ok(());
        }
        if !self.mins.is_empty() && self.mins.len() != channels {
            return Err(QuantError::Shape(format!(
                "observed {} channels before, now {channels} (shape {shape:?})",
                self.mins.len()
            )));
        }
        let inner: usize = shape[self.axis + 1..].iter().product();
        let mut mins = vec![f32::INFINITY; channels];
        let mut maxs = vec![f32::NEG_INFINITY; channels];
        for (outer_idx, block) in values.chunks_exact(channels * inner).enumerate() {
            for (c, row) in block.chunks_exact(inner).enumerate() {
                let (lo, hi, finite) = scan(row);
                if !finite {
                    let base = (outer_idx * channels + c) * inner;
                    return Err(match first_non_finite(row) {
                        QuantError::NonFinite { offset, value } => QuantError::NonFinite {
                            offset: base + offset,
                            value,
                        },
                        other => other,
                    });
                }
                mins[c] = mins[c].min(lo);
                maxs[c] = maxs[c].max(hi);
            }
        }
        if self.mins.is_empty() {
            (self.mins, self.maxs) = (mins, maxs);
        } else {
            for (m, v) in self.mins.iter_mut().zip(mins) {
                *m = m.min(v);
            }
            for (m, v) in self.maxs.iter_mut().zip(maxs) {
                *m = m.max(v);
            }
        }
        Ok(())
    }

    /// Scales and zero points per channel.
    ///
    /// # Errors
    /// [`QuantError::NotObserved`] before any non-empty tensor was observed.
    pub fn qparams(&self) -> Result<ChannelQParams> {
        if self.mins.is_empty() {
            return Err(QuantError::NotObserved("per-channel min/max observer"));
        }
        let (scales, zero_points) = self
            .mins
            .iter()
            .zip(&self.maxs)
            .map(|(&lo, &hi)| {
                let q = compute_qparams(lo, hi, self.range, self.symmetry, self.eps);
                (q.scale, q.zero_point)
            })
            .unzip();
        Ok(ChannelQParams {
            scales,
            zero_points,
            axis: self.axis,
            range: self.range,
        })
    }

    /// Per-channel (min, max) seen so far (empty before the first observation).
    pub fn observed_ranges(&self) -> impl Iterator<Item = (f32, f32)> + '_ {
        self.mins.iter().copied().zip(self.maxs.iter().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_matches_naive_min_max_on_every_tail_length() {
        for n in [1usize, 15, 16, 17, 63, 64, 65, 300] {
            let v: Vec<f32> = (0..n)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.1)
                .collect();
            let lo = v.iter().copied().fold(f32::INFINITY, f32::min);
            let hi = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(min_max(&v).unwrap(), Some((lo, hi)), "n = {n}");
        }
        assert_eq!(min_max(&[]).unwrap(), None);
    }

    #[test]
    fn non_finite_values_are_named() {
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut v = vec![1.0f32; 40];
            v[33] = bad;
            match min_max(&v) {
                Err(QuantError::NonFinite { offset: 33, .. }) => {}
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn parallel_scan_agrees_with_serial() {
        let n = PARALLEL_CHUNK * 3 + 5;
        let v: Vec<f32> = (0..n)
            .map(|i| ((i * 7919) % 100_003) as f32 * 1e-3 - 7.0)
            .collect();
        assert_eq!(min_max(&v).unwrap().unwrap(), {
            let (lo, hi, _) = scan(&v);
            (lo, hi)
        });
    }

    #[test]
    fn per_channel_handles_inner_axes_and_errors() {
        let mut obs = PerChannelMinMaxObserver::new(1, QuantRange::I8, Symmetry::Symmetric, 1e-6);
        // shape [2, 3, 2]: channel c values at [o, c, i].
        let v: Vec<f32> = (0..12).map(|i| i as f32 - 6.0).collect();
        obs.observe(&v, &[2, 3, 2]).unwrap();
        let ranges: Vec<_> = obs.observed_ranges().collect();
        assert_eq!(ranges, vec![(-6.0, 1.0), (-4.0, 3.0), (-2.0, 5.0)]);
        assert!(obs.observe(&v, &[3, 4]).is_err());
        assert!(obs.observe(&v[..11], &[2, 3, 2]).is_err());
        assert!(obs.observe(&v, &[12]).is_err());
        let mut nan = v.clone();
        nan[7] = f32::NAN;
        assert!(matches!(
            obs.observe(&nan, &[2, 3, 2]),
            Err(QuantError::NonFinite { offset: 7, .. })
        ));
    }
}
