//! f32 slice loops (element-wise maps, sums, maxima) compiled for the widest SIMD the default
//! kernel tier allows, with bit-identical results on every tier: the maps apply the same
//! function to every element, and the reductions use one fixed order (16 lane partial sums,
//! then a pairwise fold) whatever the register width.
//!
//! The functions passed to the maps should be branch-free and `#[inline]` (e.g.
//! [`crate::math::exp`], [`crate::math::erf`]) for the loops to vectorize.
//!
//! ```
//! use q8_kernels::vector;
//! let x = [1.0f32, -2.0, 3.0];
//! let mut y = [0.0f32; 3];
//! vector::map(&x, &mut y, |v| v * 2.0).unwrap();
//! assert_eq!(y, [2.0, -4.0, 6.0]);
//! assert_eq!(vector::sum(&y), 4.0);
//! assert_eq!(vector::max(&y), 6.0);
//! ```

use crate::arch::vector::{self as imp, Width};
use crate::error::{Error, Result};

fn same_len(what: &str, a: usize, b: usize) -> Result<()> {
    if a == b {
        Ok(())
    } else {
        Err(Error::Shape(format!("{what}: lengths {a} and {b} differ")))
    }
}

/// `(min(0, x..), max(0, x..), every x finite)` in one pass (the range ONNX's
/// DynamicQuantizeLinear quantizes; min / max of finite values do not depend on the order).
///
/// ```
/// assert_eq!(q8_kernels::vector::range_with_zero(&[1.5, -2.0]), (-2.0, 1.5, true));
/// assert!(!q8_kernels::vector::range_with_zero(&[1.0, f32::NAN]).2);
/// ```
pub fn range_with_zero(x: &[f32]) -> (f32, f32, bool) {
    imp::range_with_zero(Width::current(), x)
}

/// `y[i] = clamp(rne(x[i] / scale) + zero_point, 0, 255)`, dividing as ONNX's
/// QuantizeLinear / DynamicQuantizeLinear specify (not [`crate::ops::quantize`]'s multiply
/// by `1 / scale`); `rne` by the `1.5 · 2^23` trick after clamping to `[-512, 512]`, exact
/// there. NaN gives 0. `scale` must be finite and > 0 for a meaningful result.
///
/// ```
/// let mut y = [0u8; 3];
/// q8_kernels::vector::quantize_dividing(&[0.5, 1.5, -9.0], 1.0, 3, &mut y).unwrap();
/// assert_eq!(y, [3, 5, 0]);
/// ```
///
/// # Errors
/// [`Error::Shape`] when the lengths differ.
pub fn quantize_dividing(x: &[f32], scale: f32, zero_point: u8, y: &mut [u8]) -> Result<()> {
    same_len("vector::quantize_dividing", x.len(), y.len())?;
    imp::quantize_dividing(Width::current(), x, scale, f32::from(zero_point), y);
    Ok(())
}

/// A [`crate::math`] function for [`map_math`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MathFn {
    /// [`crate::math::erf`].
    Erf,
    /// [`crate::math::gelu_erf`].
    GeluErf,
}

/// `y[i] = f(y[i])` for a [`crate::math`] function, called directly in each compiled copy:
/// the long bodies of `erf` and `gelu_erf` are not reliably inlined through the closure
/// [`map_in_place`] takes, and a call per element is ~20 times slower than the vectorized
/// loop.
///
/// ```
/// use q8_kernels::vector::{map_math, MathFn};
/// let mut y = [0.0f32, 10.0, -10.0];
/// map_math(MathFn::Erf, &mut y);
/// assert_eq!(y, [0.0, 1.0, -1.0]);
/// ```
pub fn map_math(f: MathFn, y: &mut [f32]) {
    imp::map_math(Width::current(), f, y);
}

/// `y[i] = f(x[i])`.
///
/// # Errors
/// [`Error::Shape`] when the lengths differ.
pub fn map(x: &[f32], y: &mut [f32], f: impl Fn(f32) -> f32) -> Result<()> {
    same_len("vector::map", x.len(), y.len())?;
    imp::map(Width::current(), x, y, f);
    Ok(())
}

/// `y[i] = f(y[i])`.
pub fn map_in_place(y: &mut [f32], f: impl Fn(f32) -> f32) {
    imp::map_in_place(Width::current(), y, f);
}

/// `y[i] = f(a[i], b[i])`.
///
/// # Errors
/// [`Error::Shape`] when the lengths differ.
pub fn zip_map(a: &[f32], b: &[f32], y: &mut [f32], f: impl Fn(f32, f32) -> f32) -> Result<()> {
    same_len("vector::zip_map", a.len(), b.len())?;
    same_len("vector::zip_map", a.len(), y.len())?;
    imp::zip_map(Width::current(), a, b, y, f);
    Ok(())
}

/// `y[i] = f(y[i], b[i])`.
///
/// # Errors
/// [`Error::Shape`] when the lengths differ.
pub fn zip_map_in_place(y: &mut [f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> Result<()> {
    same_len("vector::zip_map_in_place", y.len(), b.len())?;
    imp::zip_map_in_place(Width::current(), y, b, f);
    Ok(())
}

/// Softmax of each `row`-long row of `y` in place: `e = exp(v - max)` with
/// [`crate::math::exp`], then `e * (1 / sum(e))` with the order of [`sum`] (the bits of calling
/// [`max`], [`map_in_place`], [`sum`] and [`map_in_place`] per row). An empty `y` is left
/// alone.
///
/// # Errors
/// [`Error::Shape`] when `row` is 0 (with a non-empty `y`) or does not divide `y.len()`.
pub fn softmax_rows(y: &mut [f32], row: usize) -> Result<()> {
    if y.is_empty() {
        return Ok(());
    }
    if row == 0 || !y.len().is_multiple_of(row) {
        return Err(Error::Shape(format!(
            "vector::softmax_rows: rows of {row} do not tile {} values",
            y.len()
        )));
    }
    imp::softmax_rows(Width::current(), y, row);
    Ok(())
}

/// The sum in a fixed order: lane `i` of 16 adds `x[i], x[16 + i], ...` (the last partial
/// chunk into the first lanes), then lanes fold pairwise (`l[i] + l[i + 8]`, then `+ 4`, `+ 2`,
/// `+ 1`). 0 for an empty slice.
pub fn sum(x: &[f32]) -> f32 {
    imp::sum(Width::current(), x)
}

/// The largest value by `f32::max` (NaNs ignored unless all are NaN); `-inf` when empty.
pub fn max(x: &[f32]) -> f32 {
    imp::max(Width::current(), x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::vector as imp;

    /// The documented order, written out as plain scalar code.
    fn sum_reference(x: &[f32]) -> f32 {
        let mut lanes = [0f32; 16];
        for (i, &v) in x.iter().enumerate() {
            lanes[i % 16] += v;
        }
        for half in [8, 4, 2, 1] {
            for i in 0..half {
                lanes[i] += lanes[i + half];
            }
        }
        lanes[0]
    }

    fn widths() -> Vec<Width> {
        let mut w = vec![Width::Plain];
        if crate::cpu::is_available(crate::Tier::Avx2) {
            w.push(Width::Avx2);
        } else {
            eprintln!("vector: AVX2 copies not tested (CPU lacks AVX2)");
        }
        if crate::cpu::is_available(crate::Tier::Avx512Vnni) {
            w.push(Width::Avx512);
        } else {
            eprintln!("vector: AVX-512 copies not tested (CPU lacks AVX-512)");
        }
        w
    }

    fn values(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7919 % 1000) as f32 - 500.0) * 1.37e-3 * (1 + i % 5) as f32)
            .collect()
    }

    #[test]
    fn every_width_gives_the_reference_bits() {
        for n in [0, 1, 15, 16, 17, 31, 63, 64, 65, 200, 1031] {
            let x = values(n);
            let want_sum = sum_reference(&x);
            let want_max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let want_map: Vec<f32> = x.iter().map(|&v| crate::math::erf(v * 3.0)).collect();
            for w in widths() {
                assert_eq!(imp::sum(w, &x).to_bits(), want_sum.to_bits(), "{w:?} n {n}");
                assert_eq!(imp::max(w, &x), want_max, "{w:?} n {n}");
                let mut y = vec![0f32; n];
                imp::map(w, &x, &mut y, |v| crate::math::erf(v * 3.0));
                assert!(
                    y.iter()
                        .zip(&want_map)
                        .all(|(a, b)| a.to_bits() == b.to_bits())
                );
                for (f, scalar) in [
                    (MathFn::Erf, crate::math::erf as fn(f32) -> f32),
                    (MathFn::GeluErf, crate::math::gelu_erf),
                ] {
                    let big: Vec<f32> = x.iter().map(|v| v * 40.0).collect();
                    let mut m = big.clone();
                    imp::map_math(w, f, &mut m);
                    assert!(
                        m.iter()
                            .zip(&big)
                            .all(|(a, &b)| a.to_bits() == scalar(b).to_bits()),
                        "{f:?} {w:?} n {n}"
                    );
                }
                let mut z = x.clone();
                imp::map_in_place(w, &mut z, crate::math::exp);
                assert!(
                    z.iter()
                        .zip(&x)
                        .all(|(a, &b)| a.to_bits() == crate::math::exp(b).to_bits())
                );
                let mut p = vec![0f32; n];
                imp::zip_map(w, &x, &y, &mut p, |a, b| a / (b + 2.0));
                assert!(
                    p.iter()
                        .zip(x.iter().zip(&y))
                        .all(|(o, (a, b))| o.to_bits() == (a / (b + 2.0)).to_bits())
                );
                let mut rows = x.clone();
                if n > 0 && n % 5 == 0 {
                    imp::softmax_rows(w, &mut rows, 5);
                    for (got, src) in rows.chunks(5).zip(x.chunks(5)) {
                        let max = src.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                        let e: Vec<f32> = src.iter().map(|&v| crate::math::exp(v - max)).collect();
                        let s = sum_reference(&e);
                        assert!(
                            got.iter()
                                .zip(&e)
                                .all(|(g, e)| g.to_bits() == (e * (1.0 / s)).to_bits())
                        );
                    }
                }
                let mut q = x.clone();
                imp::zip_map_in_place(w, &mut q, &y, |a, b| a / 1.5 + b);
                assert!(
                    q.iter()
                        .zip(x.iter().zip(&y))
                        .all(|(o, (a, b))| o.to_bits() == (a / 1.5 + b).to_bits())
                );
            }
        }
    }

    #[test]
    fn reductions_handle_empty_and_nan() {
        assert_eq!(sum(&[]), 0.0);
        assert_eq!(max(&[]), f32::NEG_INFINITY);
        assert_eq!(max(&[f32::NAN, 2.0, f32::NAN]), 2.0);
        assert!(sum(&[1.0, f32::NAN]).is_nan());
    }

    #[test]
    fn mismatched_lengths_are_errors() {
        let mut y = [0f32; 2];
        assert!(map(&[1.0], &mut y, |v| v).is_err());
        assert!(zip_map(&[1.0, 2.0], &[1.0], &mut y, |a, b| a + b).is_err());
        assert!(zip_map_in_place(&mut y, &[1.0], |a, b| a + b).is_err());
        assert!(softmax_rows(&mut y, 0).is_err());
        assert!(softmax_rows(&mut y, 3).is_err());
        assert!(softmax_rows(&mut [], 0).is_ok());
        assert!(quantize_dividing(&[1.0], 1.0, 0, &mut [0u8; 2]).is_err());
    }

    /// The quantization and range bodies on every width against scalar definitions: ties to
    /// even, saturation, NaN, signed zeros, tails.
    #[test]
    fn quantize_dividing_and_range_match_their_definitions() {
        let want = |v: f32, scale: f32, zp: u8| -> u8 {
            if v.is_nan() {
                return 0;
            }
            let r = (v / scale).round_ties_even() + f32::from(zp);
            r.clamp(0.0, 255.0) as u8
        };
        let special = [
            0.5f32,
            1.5,
            2.5,
            -0.5,
            -1.5,
            -0.0,
            1e30,
            -1e30,
            f32::NAN,
            127.49,
        ];
        for n in [0usize, 1, 15, 16, 17, 33, 200] {
            let mut x = values(n);
            for (v, s) in x.iter_mut().zip(special.iter().cycle()).step_by(3) {
                *v = *s;
            }
            for (scale, zp) in [(1.0f32, 0u8), (0.01, 128), (0.5, 255), (3.0e-3, 7)] {
                let expect: Vec<u8> = x.iter().map(|&v| want(v, scale, zp)).collect();
                for w in widths() {
                    let mut y = vec![0u8; n];
                    imp::quantize_dividing(w, &x, scale, f32::from(zp), &mut y);
                    assert_eq!(y, expect, "{w:?} n {n} scale {scale} zp {zp}");
                }
            }
            let finite: Vec<f32> = x.iter().copied().filter(|v| v.is_finite()).collect();
            let lo = finite.iter().copied().fold(0.0f32, f32::min);
            let hi = finite.iter().copied().fold(0.0f32, f32::max);
            for w in widths() {
                let has_nan = x.iter().any(|v| v.is_nan());
                assert_eq!(
                    imp::range_with_zero(w, &finite),
                    (lo, hi, true),
                    "{w:?} n {n}"
                );
                assert_eq!(imp::range_with_zero(w, &x).2, !has_nan, "{w:?} n {n}");
            }
        }
    }
}
