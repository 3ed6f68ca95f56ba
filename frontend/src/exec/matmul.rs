//! The f32 GEMM every Conv / Gemm / MatMul goes through: faer's matmul (sarah-ek's gemm
//! kernels, AVX2/AVX-512, rayon-parallel) behind a small safe, row-major interface.

use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

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

/// Fewest output rows a thread's share of a GEMM may have.
const MIN_ROWS_PER_THREAD: usize = 16;

/// `dst[m x n] (=|+=) alpha * lhs * rhs`, row-major with `dst` rows `dst_stride` elements
/// apart (`dst` spans `(m - 1) * dst_stride + n` elements), `m` and `n` taken from the
/// (possibly transposed) operands. Callers guarantee the shapes agree (the executor derives
/// them from validated op shapes).
///
/// With `threads > 1` the output rows are split into one contiguous block per thread, each a
/// sequential GEMM scheduled by rayon: faer's own parallel mode synchronizes its workers
/// inside every K block, which collapses when the cores are shared with other processes.
pub(crate) fn gemm(
    dst: &mut [f32],
    dst_stride: usize,
    lhs: Operand<'_>,
    rhs: Operand<'_>,
    alpha: f32,
    accumulate: bool,
    threads: usize,
) {
    let (lhs, rhs) = (lhs.view(), rhs.view());
    let (m, n) = (lhs.nrows(), rhs.ncols());
    let accum = if accumulate {
        Accum::Add
    } else {
        Accum::Replace
    };
    if m == 0 || n == 0 {
        return;
    }
    let product = |d: &mut [f32], row0: usize| {
        let rows = (d.len() - n) / dst_stride + 1;
        // Built as the transpose of a column-major view: faer 0.24's
        // `from_row_major_slice_with_stride_mut` swaps the two strides.
        let d =
            MatMut::from_column_major_slice_with_stride_mut(d, n, rows, dst_stride).transpose_mut();
        faer::linalg::matmul::matmul(d, accum, lhs.subrows(row0, rows), rhs, alpha, Par::Seq);
    };
    let blocks = threads.min(m / MIN_ROWS_PER_THREAD).max(1);
    if blocks == 1 {
        product(dst, 0);
        return;
    }
    let rows_per_block = m.div_ceil(blocks);
    let full = (rows_per_block - 1) * dst_stride + n;
    dst.par_chunks_mut(rows_per_block * dst_stride)
        .enumerate()
        .for_each(|(b, d)| {
            let len = d.len().min(full);
            product(&mut d[..len], b * rows_per_block);
        });
}
