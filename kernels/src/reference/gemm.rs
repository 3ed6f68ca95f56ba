//! Reference u8 x s8 GEMM: `int8-math.md` written as plain loops.
//!
//! `acc[m][n] = sum_k a[m][k] * w[n][k] - za * colsum[n]` (exact i32), then the epilogue of
//! [`crate::epilogue::epilogue_f32`] and the output conversion of [`crate::quant::quantize`].
//! The optimized paths in [`crate::gemm`] are tested for bit equality against this.
//!
//! ```
//! use q8_kernels::reference::gemm::{gemm_ref, RefOutput};
//! use q8_kernels::{Activation, QParams};
//! let a = [10u8, 20, 30];           // M = 1, K = 3, zero point 10
//! let w = [1i8, -1, 2, 3, 0, -2];   // N = 2 rows of K
//! let mut acc = [0i32; 2];
//! let aq = QParams::new(0.5, 10).unwrap();
//! gemm_ref(&a, 3, 1, aq, &w, 2, 3, &[1.0], None, Activation::None, None,
//!          RefOutput::I32 { data: &mut acc, ldc: 2 }).unwrap();
//! // (0*1 + 10*-1 + 20*2, 0*3 + 10*0 + 20*-2)
//! assert_eq!(acc, [30, -40]);
//! ```

use crate::epilogue::{Activation, epilogue_f32};
use crate::error::{Error, Result};
use crate::quant::{QParams, quantize};

/// Largest K for which `255 * 128 * K` fits an i32, so the accumulator is exact.
pub const MAX_K: usize = 65_793;

/// Where the reference writes its result: the same outputs as the optimized
/// [`crate::gemm::gemm`] (row-major with leading dimension `ldc`), so one value can be
/// handed to both.
pub type RefOutput<'a> = crate::gemm::Output<'a>;

/// Length a row-major `rows x cols` view with leading dimension `ld` needs (`None` when it
/// overflows `usize`).
fn strided_len(rows: usize, cols: usize, ld: usize) -> Option<usize> {
    match rows {
        0 => Some(0),
        _ => (rows - 1).checked_mul(ld)?.checked_add(cols),
    }
}

/// Checks a strided view: `ld >= cols` and the slice covers the last row.
pub(crate) fn check_strided(
    what: &'static str,
    len: usize,
    rows: usize,
    cols: usize,
    ld: usize,
) -> Result<()> {
    if ld < cols {
        return Err(Error::Shape(format!(
            "{what}: leading dimension {ld} is smaller than the row width {cols}"
        )));
    }
    let need = strided_len(rows, cols, ld).ok_or_else(|| {
        Error::Shape(format!(
            "{what}: {rows} rows with leading dimension {ld} overflow the address space"
        ))
    })?;
    if len < need {
        return Err(Error::Length {
            what,
            expected: need,
            actual: len,
        });
    }
    Ok(())
}

/// Column sums of `w` (N x K row-major): the zero-point term's weights.
pub fn column_sums(w: &[i8], n: usize, k: usize) -> Vec<i32> {
    w.chunks_exact(k)
        .take(n)
        .map(|row| row.iter().map(|&x| x as i32).sum())
        .collect()
}

/// The reference GEMM. `a` is M x K (u8, stride `lda`), `w` is N x K (s8, row-major, `[out][in]`),
/// `weight_scales` has N entries (or 1 for per-tensor), `bias` N entries, the residual is an
/// M x N u8 tensor `(data, ld, qparams)`.
///
/// # Errors
/// Zero or too-large dimensions, short slices, invalid qparams or activation bounds.
#[allow(clippy::too_many_arguments)]
pub fn gemm_ref(
    a: &[u8],
    lda: usize,
    m: usize,
    a_qparams: QParams,
    w: &[i8],
    n: usize,
    k: usize,
    weight_scales: &[f32],
    bias: Option<&[f32]>,
    activation: Activation,
    residual: Option<(&[u8], usize, QParams)>,
    out: RefOutput<'_>,
) -> Result<()> {
    if m == 0 || n == 0 || k == 0 {
        return Err(Error::Shape(format!(
            "gemm: M, N, K must be >= 1, got {m} x {n} x {k}"
        )));
    }
    if k > MAX_K {
        return Err(Error::KTooLarge { k, max: MAX_K });
    }
    a_qparams.validate()?;
    activation.validate()?;
    check_strided("gemm A", a.len(), m, k, lda)?;
    check_strided("gemm weights", w.len(), n, k, k)?;
    if weight_scales.len() != n && weight_scales.len() != 1 {
        return Err(Error::Length {
            what: "gemm weight scales (N or 1)",
            expected: n,
            actual: weight_scales.len(),
        });
    }
    if let Some(b) = bias
        && b.len() != n
    {
        return Err(Error::Length {
            what: "gemm bias",
            expected: n,
            actual: b.len(),
        });
    }
    if let Some((r, ld, rq)) = residual {
        rq.validate()?;
        check_strided("gemm residual", r.len(), m, n, ld)?;
    }
    let colsum = column_sums(w, n, k);
    let za = a_qparams.zero_point;
    let acc = |i: usize, j: usize| -> i32 {
        let row = &a[i * lda..i * lda + k];
        let col = &w[j * k..j * k + k];
        let dot: i32 = row
            .iter()
            .zip(col)
            .map(|(&x, &y)| x as i32 * y as i32)
            .sum();
        dot - za * colsum[j]
    };
    let scale =
        |j: usize| a_qparams.scale * weight_scales[if weight_scales.len() == 1 { 0 } else { j }];
    let value = |i: usize, j: usize| {
        epilogue_f32(
            acc(i, j),
            scale(j),
            bias.map(|b| b[j]),
            residual.map(|(r, ld, rq)| (r[i * ld + j], rq)),
            activation,
        )
    };
    match out {
        RefOutput::U8 { data, ldc, qparams } => {
            qparams.validate()?;
            check_strided("gemm output", data.len(), m, n, ldc)?;
            let inv = qparams.inv_scale();
            for i in 0..m {
                for j in 0..n {
                    data[i * ldc + j] = quantize(value(i, j), inv, qparams.zero_point);
                }
            }
        }
        RefOutput::F32 { data, ldc } => {
            check_strided("gemm output", data.len(), m, n, ldc)?;
            for i in 0..m {
                for j in 0..n {
                    data[i * ldc + j] = value(i, j);
                }
            }
        }
        RefOutput::I32 { data, ldc } => {
            check_strided("gemm output", data.len(), m, n, ldc)?;
            for i in 0..m {
                for j in 0..n {
                    data[i * ldc + j] = acc(i, j);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_point_term_and_epilogue() {
        let aq = QParams::new(0.5, 3).unwrap();
        let a = [3u8, 5, 255, 0];
        let w = [2i8, -1, 127, -128];
        let mut y = [0.0f32; 4];
        gemm_ref(
            &a,
            2,
            2,
            aq,
            &w,
            2,
            2,
            &[0.25, 1.0],
            Some(&[1.0, -1.0]),
            Activation::Relu,
            None,
            RefOutput::F32 {
                data: &mut y,
                ldc: 2,
            },
        )
        .unwrap();
        // acc[0][0] = (3-3)*2 + (5-3)*-1 = -2 -> -2*0.125 + 1 = 0.75
        // acc[0][1] = 0*127 + 2*-128 = -256 -> -256*0.5 - 1 -> relu 0
        // acc[1][0] = 252*2 + -3*-1 = 507 -> 507*0.125 + 1 = 64.375
        // acc[1][1] = 252*127 + -3*-128 = 32388 -> 16194 - 1 = 16193
        assert_eq!(y, [0.75, 0.0, 64.375, 16193.0]);
    }

    #[test]
    fn rejects_k_above_bound_and_short_slices() {
        let aq = QParams::new(1.0, 0).unwrap();
        let mut o = [0i32; 1];
        let mut call = |a: &[u8], k: usize| {
            gemm_ref(
                a,
                2,
                1,
                aq,
                &[0; 2],
                1,
                k,
                &[1.0],
                None,
                Activation::None,
                None,
                RefOutput::I32 {
                    data: &mut o,
                    ldc: 1,
                },
            )
        };
        assert!(matches!(
            call(&[0; 2], MAX_K + 1),
            Err(Error::KTooLarge { .. })
        ));
        assert!(matches!(call(&[0; 1], 2), Err(Error::Length { .. })));
    }
}
