//! PyTorch's `HistogramObserver._non_linear_param_search` (a port of caffe2's
//! `NormMinimization::NonlinearQuantizationParamsSearch`), reproduced operation by operation:
//! which quantities torch holds as f64 Python floats and which as f32 tensors decides the bits.

use super::histogram::Histogram;
use super::torch_math::{div_floor_f32, torch_sum_f32};

/// Quantile step of the search.
const STEP: f64 = 1e-5;

/// The clipping range `(min, max)` the L2 search picks from `hist`, for `dst_bins` destination
/// bins (256 for 8-bit types).
///
/// Moves the left or right histogram boundary inwards by quantile steps of 1e-5 (whichever
/// side moves farther), evaluates the approximate L2 quantization error of each new candidate
/// and stops at the first candidate whose error increases.
pub(crate) fn non_linear_param_search(hist: &Histogram, dst_bins: usize) -> (f32, f32) {
    let counts = hist.counts();
    let bins = counts.len();
    let bin_width = (hist.max() - hist.min()) / bins as f32;
    // `torch.sum(...).item()` (f32 cascade) and `torch.cumsum` (f64 accumulator, f32 output).
    let total = f64::from(torch_sum_f32(counts));
    let mut running = 0.0f64;
    let cumsum: Vec<f32> = counts
        .iter()
        .map(|&c| {
            running += f64::from(c);
            running as f32
        })
        .collect();

    let mut error = ErrorModel::new(hist, dst_bins);
    let (mut alpha, mut beta) = (0.0f64, 1.0f64);
    let (mut start, mut end) = (0usize, bins - 1);
    let mut norm_min = f64::INFINITY;
    while alpha < beta {
        let next_alpha = alpha + STEP;
        let next_beta = beta - STEP;
        // `cSum[l] < next_alpha * total` compares an f32 tensor with a Python float: in f32.
        let left_threshold = (next_alpha * total) as f32;
        let right_threshold = (next_beta * total) as f32;
        let mut l = start;
        while l < end && cumsum[l] < left_threshold {
            l += 1;
        }
        let mut r = end;
        while r > start && cumsum[r] > right_threshold {
            r -= 1;
        }
        let (mut next_start, mut next_end) = (start, end);
        if l - start > end - r {
            next_start = l;
            alpha = next_alpha;
        } else {
            next_end = r;
            beta = next_beta;
        }
        if next_start == start && next_end == end {
            continue;
        }
        let norm = error.eval(next_start, next_end);
        if norm > norm_min {
            break;
        }
        norm_min = norm;
        start = next_start;
        end = next_end;
    }
    let new_min = hist.min() + bin_width * start as f32;
    let new_max = hist.min() + bin_width * (end + 1) as f32;
    (new_min, new_max)
}

/// `_compute_quantization_error` over one histogram, with a reusable scratch buffer.
struct ErrorModel<'a> {
    counts: &'a [f32],
    /// `(max.item() - min.item()) / bins`: a Python float.
    bin_width: f64,
    dst_bins: usize,
    norms: Vec<f32>,
}

impl<'a> ErrorModel<'a> {
    fn new(hist: &'a Histogram, dst_bins: usize) -> ErrorModel<'a> {
        let counts = hist.counts();
        ErrorModel {
            counts,
            bin_width: (f64::from(hist.max()) - f64::from(hist.min())) / counts.len() as f64,
            dst_bins,
            norms: vec![0.0; counts.len()],
        }
    }

    /// Approximate L2 error of quantizing with source bins `start..=end` as the range.
    fn eval(&mut self, start: usize, end: usize) -> f64 {
        let dst_bin_width = self.bin_width * (end - start + 1) as f64 / self.dst_bins as f64;
        if dst_bin_width == 0.0 {
            return 0.0;
        }
        // Python floats enter f32 tensor ops rounded to f32.
        let bin_width = self.bin_width as f32;
        let dst_width = dst_bin_width as f32;
        let half = (dst_bin_width / 2.0) as f32;
        let neg_half = (-dst_bin_width / 2.0) as f32;
        let last_dst = (self.dst_bins - 1) as f32;
        let cube = |x: f32| x * x * x;
        let full_bin_norm = (cube(half) - cube(neg_half)) / 3.0;
        for (i, (norm, &count)) in self.norms.iter_mut().zip(self.counts).enumerate() {
            let src_begin = (i as f32 - start as f32) * bin_width;
            let src_end = src_begin + bin_width;
            let dst_of_begin = div_floor_f32(src_begin, dst_width).clamp(0.0, last_dst);
            let dst_of_begin_center = (dst_of_begin + 0.5) * dst_width;
            let dst_of_end = div_floor_f32(src_end, dst_width).clamp(0.0, last_dst);
            let density = count / bin_width;

            let delta_begin = src_begin - dst_of_begin_center;
            let mut n = density * ((cube(half) - cube(delta_begin)) / 3.0);
            n += (dst_of_end - dst_of_begin - 1.0) * (density * full_bin_norm);
            let dst_of_end_center = dst_of_end * dst_width + half;
            let delta_end = src_end - dst_of_end_center;
            n += density * ((cube(delta_end) - cube(neg_half)) / 3.0);
            *norm = n;
        }
        f64::from(torch_sum_f32(&self.norms))
    }
}
