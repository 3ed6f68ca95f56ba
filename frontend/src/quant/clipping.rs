//! Clipping-range choices beyond PyTorch's: percentile and MSE-optimal, both read off the
//! observer's histogram (bin centers stand for the values inside a bin; with 2048 bins against
//! at most 256 quantization levels this costs little accuracy).

use super::histogram::Histogram;
use super::qparams::{QuantRange, Symmetry, compute_qparams};

/// Number of shrink factors the MSE search tries per coordinate: 1.00, 0.99, ..., 0.01.
const SHRINK_STEPS: usize = 100;

/// Coordinate-descent rounds of the MSE search after the joint shrink.
const MSE_ROUNDS: usize = 2;

/// The range holding the central `p` percent of the observed mass: `(100 - p) / 2` percent is
/// cut on each side, at bin granularity (the lower edge of the bin where the left tail ends,
/// the upper edge of the bin where the right tail starts). `p = 100` gives the full range.
pub(crate) fn percentile_range(hist: &Histogram, percentile: f64) -> (f32, f32) {
    let counts = hist.counts();
    let bins = counts.len();
    let total: f64 = counts.iter().map(|&c| f64::from(c)).sum();
    let tail = total * (100.0 - percentile) / 200.0;
    let mut below = 0.0f64;
    let mut first = 0;
    for (i, &c) in counts.iter().enumerate() {
        if below + f64::from(c) > tail {
            first = i;
            break;
        }
        below += f64::from(c);
    }
    let mut above = 0.0f64;
    let mut last = bins - 1;
    for (i, &c) in counts.iter().enumerate().rev() {
        if above + f64::from(c) > tail {
            last = i;
            break;
        }
        above += f64::from(c);
    }
    let last = last.max(first);
    (edge(hist, first), edge(hist, last + 1))
}

/// Left edge of bin `i` (`i = bins` is the right end), exact at both ends.
fn edge(hist: &Histogram, i: usize) -> f32 {
    let bins = hist.counts().len();
    if i == 0 {
        return hist.min();
    }
    if i == bins {
        return hist.max();
    }
    let (min, max) = (f64::from(hist.min()), f64::from(hist.max()));
    (min + (max - min) * i as f64 / bins as f64) as f32
}

/// The range minimizing `Σ count · (center - dequant(quant(center)))²` with the real quantizer
/// (the qparams `compute_qparams` derives from the candidate range, rounding and clamping
/// included). Candidates shrink the observed `min` and `max` by factors 1.00 ... 0.01: first
/// both together, then each side alone, alternating for a few rounds.
pub(crate) fn mse_range(
    hist: &Histogram,
    range: QuantRange,
    symmetry: Symmetry,
    eps: f32,
) -> (f32, f32) {
    let samples: Vec<(f64, f64)> = hist
        .counts()
        .iter()
        .enumerate()
        .filter(|(_, c)| **c > 0.0)
        .map(|(i, &c)| (hist.center(i), f64::from(c)))
        .collect();
    let (min, max) = (hist.min(), hist.max());
    let error = |a: f32, b: f32| quantization_mse(&samples, min * a, max * b, range, symmetry, eps);
    let factors: Vec<f32> = (0..SHRINK_STEPS)
        .map(|k| 1.0 - k as f32 / SHRINK_STEPS as f32)
        .collect();
    let argmin = |f: &dyn Fn(f32) -> f64| {
        // Ties keep the widest range (factors run from 1.0 down).
        let mut best = (f64::INFINITY, 1.0f32);
        for &k in &factors {
            let e = f(k);
            if e < best.0 {
                best = (e, k);
            }
        }
        best.1
    };
    let joint = argmin(&|k| error(k, k));
    let (mut a, mut b) = (joint, joint);
    for _ in 0..MSE_ROUNDS {
        a = argmin(&|k| error(k, b));
        b = argmin(&|k| error(a, k));
    }
    (min * a, max * b)
}

/// Weighted mean squared error of quantizing the samples with the qparams of `[lo, hi]`.
fn quantization_mse(
    samples: &[(f64, f64)],
    lo: f32,
    hi: f32,
    range: QuantRange,
    symmetry: Symmetry,
    eps: f32,
) -> f64 {
    let q = compute_qparams(lo.min(hi), lo.max(hi), range, symmetry, eps);
    let (scale, zp) = (f64::from(q.scale), f64::from(q.zero_point));
    let (qmin, qmax) = (f64::from(range.qmin()), f64::from(range.qmax()));
    samples
        .iter()
        .map(|&(x, count)| {
            let code = ((x / scale).round_ties_even() + zp).clamp(qmin, qmax);
            let d = x - (code - zp) * scale;
            count * d * d
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::super::observer::Observer;
    use super::super::{HistogramObserver, RangeSearch};
    use super::*;

    fn observer(search: RangeSearch) -> HistogramObserver {
        HistogramObserver::with_options(QuantRange::U8, Symmetry::Affine, 1e-6, 2048, search)
            .unwrap()
    }

    #[test]
    fn percentile_100_keeps_everything_and_99_cuts_tails() {
        let v: Vec<f32> = (0..10_000).map(|i| i as f32).collect();
        let mut all = observer(RangeSearch::Percentile(100.0));
        all.observe(&v).unwrap();
        assert_eq!(all.search_range(), Some((0.0, 9999.0)));
        let mut p98 = observer(RangeSearch::Percentile(98.0));
        p98.observe(&v).unwrap();
        let (lo, hi) = p98.search_range().unwrap();
        assert!(
            (lo - 100.0).abs() < 10.0 && (hi - 9900.0).abs() < 10.0,
            "{lo} {hi}"
        );
    }

    #[test]
    fn mse_keeps_a_uniform_range_nearly_whole() {
        let v: Vec<f32> = (0..20_000).map(|i| i as f32 / 20_000.0).collect();
        let mut obs = observer(RangeSearch::Mse);
        obs.observe(&v).unwrap();
        let (lo, hi) = obs.search_range().unwrap();
        assert_eq!(lo, 0.0);
        assert!(hi > 0.97, "{hi}");
    }
}
