//! The f32 GEMM every Conv / Gemm / MatMul goes through: faer's matmul (sarah-ek's gemm
//! kernels, AVX2/AVX-512, rayon-parallel) behind a small safe, row-major interface.

use faer::{Accum, MatMut, MatRef, Par};

/// A row-major `rows x cols` operand, optionally used transposed.
#[derive(Clone, Copy)]
pub(crate) struct Operand<'a> {
    /// Elements, row-major, exactly `rows * cols` long.
    pub data: &'a [f32],
    /// Rows as stored.
    pub rows: usize,
    /// Columns as stored.
    pub cols: usize,
    /// Use the transpose.
    pub transposed: bool,
}

impl<'a> Operand<'a> {
    /// A row-major matrix used as stored.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Operand<'a> {
        Operand {
            data,
            rows,
            cols,
            transposed: false,
        }
    }

    fn view(&self) -> MatRef<'a, f32> {
        let m = MatRef::from_row_major_slice(self.data, self.rows, self.cols);
        if self.transposed { m.transpose() } else { m }
    }
}

/// The thread budget of one GEMM call.
pub(crate) fn par(threads: usize) -> Par {
    if threads <= 1 {
        Par::Seq
    } else {
        Par::rayon(threads)
    }
}

/// `dst[m x n] (=|+=) alpha * lhs * rhs`, all row-major, `m` and `n` taken from the
/// (possibly transposed) operands. Callers guarantee the shapes agree (the executor derives
/// them from validated op shapes).
pub(crate) fn gemm(
    dst: &mut [f32],
    lhs: Operand<'_>,
    rhs: Operand<'_>,
    alpha: f32,
    accumulate: bool,
    par: Par,
) {
    let (lhs, rhs) = (lhs.view(), rhs.view());
    let dst = MatMut::from_row_major_slice_mut(dst, lhs.nrows(), rhs.ncols());
    let accum = if accumulate {
        Accum::Add
    } else {
        Accum::Replace
    };
    faer::linalg::matmul::matmul(dst, accum, lhs, rhs, alpha, par);
}
