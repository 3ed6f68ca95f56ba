//! The running histogram behind torchao's `HistogramObserver` (2048 bins, ×16 upsampled merging
//! when the range grows) and the observer that picks a clipping range from it.
//!
//! Bit-exactness notes (all checked against `observers.json`):
//! - binning is `torch.histc`: `trunc((x - min) * bins / (max - min))` in f32, counts kept in f32;
//! - merging into a wider range spreads each old bin over 16 fine bins (count / 16), maps the
//!   fine bins' mid-points (f32 `linspace`) into the new bins with `bucketize(right=True)` and
//!   adds them up in order, as `_upscale_histogram` + `bincount` do;
//! - when the old histogram covered a single value, torch scales the one-hot old histogram by
//!   the sum of the *new* batch's histogram (`_combine_histograms`); that quirk is reproduced.

use rayon::prelude::*;

use super::clipping;
use super::error::{QuantError, Result};
use super::l2_search::non_linear_param_search;
use super::minmax::min_max;
use super::observer::Observer;
use super::qparams::{QuantRange, Symmetry, TensorQParams, compute_qparams};
use super::torch_math::{histc_bin, histc_edges, linspace_f32, torch_sum_f32};

/// Elements per parallel binning task.
const PARALLEL_CHUNK: usize = 1 << 18;

/// A histogram of equal-width bins over `[min, max]`, with f32 counts as torch keeps them.
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    counts: Vec<f32>,
    min: f32,
    max: f32,
}

impl Histogram {
    /// Bin counts.
    pub fn counts(&self) -> &[f32] {
        &self.counts
    }

    /// Left edge of the first bin (the smallest value observed).
    pub fn min(&self) -> f32 {
        self.min
    }

    /// Right edge of the last bin (the largest value observed).
    pub fn max(&self) -> f32 {
        self.max
    }

    /// Real value of bin `i`'s center, computed in f64.
    pub(crate) fn center(&self, i: usize) -> f64 {
        let width = (f64::from(self.max) - f64::from(self.min)) / self.counts.len() as f64;
        f64::from(self.min) + width * (i as f64 + 0.5)
    }
}

/// `torch.histc(values, bins, min, max)`: counts of the values inside `[min, max]`.
/// Parallel over chunks; integer partial counts make the result independent of the split.
fn histc(values: &[f32], min: f32, max: f32, bins: usize) -> Vec<f32> {
    let (lo, hi) = histc_edges(min, max);
    let count_chunk = |chunk: &[f32]| {
        let mut counts = vec![0u64; bins];
        for &x in chunk {
            if x >= lo && x <= hi {
                counts[histc_bin(x, lo, hi, bins)] += 1;
            }
        }
        counts
    };
    let counts: Vec<u64> = if values.len() > PARALLEL_CHUNK {
        values.par_chunks(PARALLEL_CHUNK).map(count_chunk).reduce(
            || vec![0u64; bins],
            |mut a, b| {
                for (x, y) in a.iter_mut().zip(b) {
                    *x += y;
                }
                a
            },
        )
    } else {
        count_chunk(values)
    };
    counts.into_iter().map(|c| c as f32).collect()
}

/// `_upscale_histogram`: the old histogram re-binned into `bins` bins over `[min, max]`.
fn upscale(old: &Histogram, min: f32, max: f32, upsample_rate: usize) -> Vec<f32> {
    let bins = old.counts.len();
    let fine = bins * upsample_rate;
    let half_fine_bin = 0.5 * ((old.max - old.min) / fine as f32);
    let boundaries: Vec<f32> = (0..=bins)
        .map(|i| linspace_f32(min, max, bins + 1, i))
        .collect();
    let mut out = vec![0.0f32; bins];
    for j in 0..fine {
        let mid = linspace_f32(old.min, old.max, fine + 1, j) + half_fine_bin;
        let weight = old.counts[j / upsample_rate] / upsample_rate as f32;
        let above = boundaries.partition_point(|&b| b <= mid);
        let bucket = above.saturating_sub(1).min(bins - 1);
        out[bucket] += weight;
    }
    out
}

/// `_combine_histograms`: the old histogram moved into the new range, plus the new batch's.
fn combine(
    old: &Histogram,
    update: Vec<f32>,
    min: f32,
    max: f32,
    upsample_rate: usize,
) -> Vec<f32> {
    if old.min == old.max {
        let bin_value = torch_sum_f32(&update);
        let one_hot = histc(&[old.min], min, max, update.len());
        return one_hot
            .iter()
            .zip(&update)
            .map(|(&h, &u)| h * bin_value + u)
            .collect();
    }
    let moved = upscale(old, min, max, upsample_rate);
    update.iter().zip(&moved).map(|(&u, &m)| u + m).collect()
}

/// How an observer turns its histogram into a clipping range.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RangeSearch {
    /// PyTorch's `_non_linear_param_search` (approximate L2 minimization over 256 destination
    /// bins, 1e-5 quantile steps, stop at the first increase). The X86 default.
    TorchL2,
    /// Clip `(100 - p) / 2` percent of the mass on each side, `p` in `(0, 100]`.
    Percentile(f64),
    /// Minimize the mean squared quantization error of the histogram's bin centers with the
    /// actual quantizer (scale, zero point, clamping), over shrunken ranges.
    Mse,
}

/// Observer accumulating a histogram and choosing its range with a [`RangeSearch`].
///
/// ```
/// use q8_frontend::quant::{HistogramObserver, Observer, QuantRange};
/// let mut obs = HistogramObserver::new(QuantRange::U8, 2f32.powi(-12));
/// let batch: Vec<f32> = (0..1000).map(|i| (i as f32 / 999.0) * 4.0 - 1.0).collect();
/// obs.observe(&batch).unwrap();
/// obs.observe(&[10.0]).unwrap(); // the range grows: the old histogram is re-binned
/// assert_eq!(obs.observed_range(), Some((-1.0, 10.0)));
/// let q = obs.qparams();
/// assert!(q.scale < 11.0 / 255.0); // the lone outlier at 10.0 is clipped
/// ```
#[derive(Clone, Debug)]
pub struct HistogramObserver {
    range: QuantRange,
    symmetry: Symmetry,
    eps: f32,
    bins: usize,
    upsample_rate: usize,
    search: RangeSearch,
    hist: Option<Histogram>,
}

impl HistogramObserver {
    /// Bins of torch's default histogram observer.
    pub const DEFAULT_BINS: usize = 2048;
    /// Upsampling factor of torch's histogram merge.
    pub const UPSAMPLE_RATE: usize = 16;
    /// Destination bins of the L2 search: `2^8`, independent of a reduced range (as in torch).
    pub const DST_BINS: usize = 256;

    /// torch's default: 2048 bins, L2 search, affine.
    pub fn new(range: QuantRange, eps: f32) -> HistogramObserver {
        HistogramObserver {
            range,
            symmetry: Symmetry::Affine,
            eps,
            bins: Self::DEFAULT_BINS,
            upsample_rate: Self::UPSAMPLE_RATE,
            search: RangeSearch::TorchL2,
            hist: None,
        }
    }

    /// Full control over bins, symmetry and range selection.
    ///
    /// # Errors
    /// [`QuantError::Config`] for fewer than 2 bins or more than 2^20, or a percentile outside
    /// `(0, 100]`.
    pub fn with_options(
        range: QuantRange,
        symmetry: Symmetry,
        eps: f32,
        bins: usize,
        search: RangeSearch,
    ) -> Result<HistogramObserver> {
        if !(2..=1 << 20).contains(&bins) {
            return Err(QuantError::Config(format!(
                "histogram bins {bins} must be in [2, 2^20]"
            )));
        }
        if let RangeSearch::Percentile(p) = search
            && !(p > 0.0 && p <= 100.0)
        {
            return Err(QuantError::Config(format!(
                "percentile {p} must be in (0, 100]"
            )));
        }
        Ok(HistogramObserver {
            symmetry,
            bins,
            search,
            ..HistogramObserver::new(range, eps)
        })
    }

    /// The accumulated histogram, if anything was observed.
    pub fn histogram(&self) -> Option<&Histogram> {
        self.hist.as_ref()
    }

    /// The clipping range the search picks (before it is extended to include 0).
    /// A range wider than f32 can represent is returned as is (its scale overflows to
    /// infinity, which [`TensorQParams::to_kernel_u8`] rejects).
    pub fn search_range(&self) -> Option<(f32, f32)> {
        let hist = self.hist.as_ref()?;
        if !(hist.max - hist.min).is_finite() {
            return Some((hist.min, hist.max));
        }
        Some(match self.search {
            RangeSearch::TorchL2 => non_linear_param_search(hist, Self::DST_BINS),
            RangeSearch::Percentile(p) => clipping::percentile_range(hist, p),
            RangeSearch::Mse => clipping::mse_range(hist, self.range, self.symmetry, self.eps),
        })
    }
}

impl Observer for HistogramObserver {
    fn observe(&mut self, values: &[f32]) -> Result<()> {
        let Some((x_min, x_max)) = min_max(values)? else {
            return Ok(());
        };
        let hist = match self.hist.take() {
            None => Histogram {
                counts: histc(values, x_min, x_max, self.bins),
                min: x_min,
                max: x_max,
            },
            Some(old) => {
                let (min, max) = (old.min.min(x_min), old.max.max(x_max));
                let update = histc(values, min, max, self.bins);
                let counts = if min == old.min && max == old.max {
                    old.counts
                        .iter()
                        .zip(&update)
                        .map(|(&a, &b)| a + b)
                        .collect()
                } else {
                    combine(&old, update, min, max, self.upsample_rate)
                };
                Histogram { counts, min, max }
            }
        };
        self.hist = Some(hist);
        Ok(())
    }

    fn qparams(&self) -> TensorQParams {
        let (min, max) = self
            .search_range()
            .unwrap_or((f32::INFINITY, f32::NEG_INFINITY));
        compute_qparams(min, max, self.range, self.symmetry, self.eps)
    }

    fn observed_range(&self) -> Option<(f32, f32)> {
        self.hist.as_ref().map(|h| (h.min, h.max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histc_counts_every_value_once_and_is_split_independent() {
        let n = PARALLEL_CHUNK * 2 + 77;
        let v: Vec<f32> = (0..n)
            .map(|i| ((i * 7919) % 10_007) as f32 - 5000.0)
            .collect();
        let (lo, hi) = min_max(&v).unwrap().unwrap();
        let parallel = histc(&v, lo, hi, 2048);
        let serial: Vec<f32> = {
            let mut c = vec![0.0f32; 2048];
            for &x in &v {
                c[histc_bin(x, lo, hi, 2048)] += 1.0;
            }
            c
        };
        assert_eq!(parallel, serial);
        assert_eq!(parallel.iter().map(|&c| c as usize).sum::<usize>(), n);
    }

    #[test]
    fn upscale_preserves_mass() {
        let old = Histogram {
            counts: (0..64).map(|i| (i % 5) as f32).collect(),
            min: -1.0,
            max: 3.0,
        };
        let moved = upscale(&old, -2.0, 7.5, 16);
        let before: f32 = old.counts.iter().sum();
        let after: f32 = moved.iter().sum();
        assert!((before - after).abs() < 1e-3, "{before} vs {after}");
        // Nothing lands left of -1.0 or right of 3.0 in the new bins.
        let width = 9.5 / 64.0;
        for (i, &c) in moved.iter().enumerate() {
            let (l, r) = (-2.0 + width * i as f32, -2.0 + width * (i + 1) as f32);
            if r < -1.0 || l > 3.0 {
                assert_eq!(c, 0.0, "bin {i}");
            }
        }
    }

    #[test]
    fn single_value_history_is_weighted_by_the_new_batch_like_torch() {
        // torch's `_combine_histograms` scales the old one-hot histogram by sum(update_hist),
        // not by the old count: 1 old value + 3 new ones weigh 3 + 3.
        let mut obs = HistogramObserver::new(QuantRange::U8, 1e-6);
        obs.observe(&[1.0]).unwrap();
        obs.observe(&[0.0, 2.0, 2.0]).unwrap();
        let counts = obs.histogram().unwrap().counts();
        assert_eq!(counts.iter().sum::<f32>(), 6.0);
        assert_eq!(counts[1024], 3.0);
    }

    #[test]
    fn unobserved_and_empty_give_unit_scale() {
        let mut obs = HistogramObserver::new(QuantRange::U8, 1e-6);
        obs.observe(&[]).unwrap();
        let q = obs.qparams();
        assert_eq!((q.scale, q.zero_point), (1.0, 0));
        assert!(obs.observe(&[f32::INFINITY]).is_err());
        assert!(obs.histogram().is_none());
    }

    #[test]
    fn options_are_validated() {
        let bad = |bins, search| {
            HistogramObserver::with_options(QuantRange::U8, Symmetry::Affine, 1e-6, bins, search)
                .is_err()
        };
        assert!(bad(1, RangeSearch::TorchL2));
        assert!(bad(2048, RangeSearch::Percentile(0.0)));
        assert!(bad(2048, RangeSearch::Percentile(100.5)));
        assert!(!bad(2048, RangeSearch::Percentile(99.99)));
    }
}
