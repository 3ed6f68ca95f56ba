//! The handful of PyTorch CPU numerics the observers must reproduce bit for bit: `linspace`,
//! floor division, `histc` binning and the cascade order of `sum` over an f32 vector.
//!
//! Each function documents the ATen kernel behaviour it mirrors (PyTorch 2.x CPU, AVX-512 build).

/// Width of ATen's `Vectorized<float>` in the AVX-512 CPU build that produced the conformance
/// vectors; `torch.sum` reduces in this many lanes.
const SUM_LANES: usize = 16;

/// Element `i` of `torch.linspace(start, end, steps)` in f32: the first half counts up from
/// `start`, the second half down from `end` (ATen's `linspace_kernel`), each as one f32
/// multiply and one f32 add, so both end points are exact.
pub(crate) fn linspace_f32(start: f32, end: f32, steps: usize, i: usize) -> f32 {
    let step = (end - start) / (steps - 1) as f32;
    if i < steps / 2 {
        start + step * i as f32
    } else {
        end - step * (steps - 1 - i) as f32
    }
}

/// `torch.div(a, b, rounding_mode="floor")` for f32 (`c10::div_floor_floating`): Python-style
/// floor division through `fmod`, with its correction when the quotient is just below an integer.
pub(crate) fn div_floor_f32(a: f32, b: f32) -> f32 {
    if b == 0.0 {
        return a / b;
    }
    let modulo = a % b;
    let mut div = (a - modulo) / b;
    if modulo != 0.0 && ((b < 0.0) != (modulo < 0.0)) {
        div -= 1.0;
    }
    if div != 0.0 {
        let mut floordiv = div.floor();
        if div - floordiv > 0.5 {
            floordiv += 1.0;
        }
        floordiv
    } else {
        0.0f32.copysign(a / b)
    }
}

/// The f32 edges `torch.histc(x, bins, min, max)` uses: equal bounds are widened the way
/// ATen's `histc_select_outer_bin_edges` does (to at least ±1, in f64), then rounded to f32
/// through `linspace`, whose end points are exact.
pub(crate) fn histc_edges(min: f32, max: f32) -> (f32, f32) {
    if min != max {
        return (min, max);
    }
    let v = f64::from(min);
    let lo = f64::from(min.next_down()).min(v - 1.0);
    let hi = f64::from(max.next_up()).max(v + 1.0);
    (lo as f32, hi as f32)
}

/// Bin of `x` (already known to lie in `[lo, hi]`) among `bins` equal bins, as `torch.histc`
/// computes it: `trunc((x - lo) * bins / (hi - lo))` in f32, the right edge folded into the last
/// bin. Clamping happens in f32 before the conversion (same result for every finite position,
/// and vectorizable); a NaN position from overflowing extremes lands in the last bin.
#[inline]
pub(crate) fn histc_bin(x: f32, lo: f32, hi: f32, bins: usize) -> usize {
    let pos = ((x - lo) * bins as f32) / (hi - lo);
    let last = (bins - 1) as f32;
    let clamped = if pos < last { pos } else { last };
    let clamped = if clamped > 0.0 { clamped } else { 0.0 };
    // In [0, bins - 1] and bins <= 2^20: the i32 conversion is exact (and a single SIMD op).
    clamped as i32 as usize
}

/// `torch.sum` of a contiguous f32 vector, in ATen's order (`cascade_sum` ->
/// `vectorized_inner_sum`): 16-lane vector accumulators summed in a multi-level cascade with
/// four interleaved rows, then the scalar tail, then the lanes in order.
pub(crate) fn torch_sum_f32(values: &[f32]) -> f32 {
    let n_vec = values.len() / SUM_LANES;
    let lane_sums = vector_row_sum(&values[..n_vec * SUM_LANES]);
    let mut total = 0.0f32;
    for &v in &values[n_vec * SUM_LANES..] {
        total += v;
    }
    for lane in lane_sums {
        total += lane;
    }
    total
}

type Lanes = [f32; SUM_LANES];

fn load(values: &[f32], vector: usize) -> Lanes {
    let mut out = [0.0; SUM_LANES];
    out.copy_from_slice(&values[vector * SUM_LANES..(vector + 1) * SUM_LANES]);
    out
}

fn add_into(acc: &mut Lanes, v: &Lanes) {
    for (a, b) in acc.iter_mut().zip(v) {
        *a += *b;
    }
}

/// ATen's `row_sum` over vectors with `ilp_factor = 4`.
fn vector_row_sum(values: &[f32]) -> Lanes {
    const ILP: usize = 4;
    let size = values.len() / SUM_LANES;
    let size_ilp = size / ILP;
    let mut partial = multi_row_sum(values, size_ilp);
    for vector in size_ilp * ILP..size {
        add_into(&mut partial[0], &load(values, vector));
    }
    let [mut first, rest @ ..] = partial;
    for p in &rest {
        add_into(&mut first, p);
    }
    first
}

/// ATen's `multi_row_sum` with 4 rows of vectors (row `i`, column `k` = vector `4 i + k`) and
/// four cascade levels.
fn multi_row_sum(values: &[f32], size: usize) -> [Lanes; 4] {
    const LEVELS: usize = 4;
    let level_power = 4.max(ceil_log2(size) / LEVELS as u32);
    let level_step = 1usize << level_power;
    let level_mask = level_step - 1;
    let mut acc = [[[0.0f32; SUM_LANES]; 4]; LEVELS];
    let add_row = |acc0: &mut [Lanes; 4], i: usize| {
        for (k, a) in acc0.iter_mut().enumerate() {
            add_into(a, &load(values, i * 4 + k));
        }
    };
    let mut i = 0;
    while i + level_step <= size {
        for _ in 0..level_step {
            add_row(&mut acc[0], i);
            i += 1;
        }
        for j in 1..LEVELS {
            let (lower, upper) = acc.split_at_mut(j);
            for k in 0..4 {
                add_into(&mut upper[0][k], &lower[j - 1][k]);
                lower[j - 1][k] = [0.0; SUM_LANES];
            }
            if i & (level_mask << (j as u32 * level_power)) != 0 {
                break;
            }
        }
    }
    while i < size {
        add_row(&mut acc[0], i);
        i += 1;
    }
    let (first, rest) = acc.split_at_mut(1);
    for level in rest.iter() {
        for k in 0..4 {
            add_into(&mut first[0][k], &level[k]);
        }
    }
    first[0]
}

/// ATen's `CeilLog2`: 1 for x <= 2, else the number of bits of `x - 1`.
fn ceil_log2(x: usize) -> u32 {
    if x <= 2 {
        1
    } else {
        usize::BITS - (x - 1).leading_zeros()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linspace_end_points_are_exact() {
        let (a, b) = (-3.7f32, 11.3f32);
        assert_eq!(linspace_f32(a, b, 2049, 0), a);
        assert_eq!(linspace_f32(a, b, 2049, 2048), b);
        assert!((linspace_f32(a, b, 2049, 1024) - 3.8).abs() < 1e-5);
    }

    #[test]
    fn floor_division_matches_python() {
        assert_eq!(div_floor_f32(7.0, 2.0), 3.0);
        assert_eq!(div_floor_f32(-7.0, 2.0), -4.0);
        assert_eq!(div_floor_f32(-0.0, 2.0), -0.0);
        assert_eq!(div_floor_f32(6.0, 3.0), 2.0);
        assert!(div_floor_f32(1.0, 0.0).is_infinite());
    }

    #[test]
    fn sum_is_exact_on_integers_and_close_on_reals() {
        for n in [0usize, 1, 15, 16, 17, 63, 64, 65, 1000, 2048, 70_000] {
            let v: Vec<f32> = (0..n).map(|i| (i % 7) as f32).collect();
            let exact: f64 = v.iter().map(|&x| f64::from(x)).sum();
            assert_eq!(f64::from(torch_sum_f32(&v)), exact, "n = {n}");
            let r: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.37).sin()).collect();
            let exact: f64 = r.iter().map(|&x| f64::from(x)).sum();
            assert!(
                (f64::from(torch_sum_f32(&r)) - exact).abs() < 1e-3,
                "n = {n}"
            );
        }
    }

    #[test]
    fn histc_widens_single_values_and_bins_edges() {
        assert_eq!(histc_edges(0.5, 0.5), (-0.5, 1.5));
        assert_eq!(histc_edges(-1.0, 2.0), (-1.0, 2.0));
        let big = 3.0e7f32;
        let (lo, hi) = histc_edges(big, big);
        assert!(lo < big && hi > big);
        assert_eq!(histc_bin(2.0, -1.0, 2.0, 2048), 2047);
        assert_eq!(histc_bin(-1.0, -1.0, 2.0, 2048), 0);
        assert_eq!(histc_bin(0.5, 0.0, f32::INFINITY, 2048), 0);
        assert_eq!(histc_bin(f32::MAX, -f32::MAX, f32::MAX, 2048), 2047);
    }
}
