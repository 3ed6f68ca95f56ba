//! Int8 element-wise, pooling, concat and quantize / dequantize ops (u8 in, u8 out).
//!
//! Every op takes an explicit [`Tier`](crate::Tier): `Scalar` runs the reference loops of
//! [`crate::reference::ops`], `Avx2`/`AvxVnni` the AVX2 code, `Avx512Vnni`/`Amx` the AVX-512
//! code; all give the same bits (`int8-math.md`). Large calls are split over several threads
//! by output rows (as many threads as the current rayon pool has, run by the kernels' spinning
//! pool); the result never depends on the thread count.

mod add;
mod concat;
mod pool;
mod quantize;

pub use add::{AddParams, add};
pub use concat::{ConcatInput, concat_channels};
pub(crate) use pool::PoolPlan;
pub use pool::{MAX_POOL_WINDOW, Pool2d, avg_pool, global_avg_pool, max_pool};
pub use quantize::{dequantize, quantize, quantize_nchw, requantize};

use crate::arch::spin_pool;
pub(crate) use crate::conv::epilogue::check_len;
use std::sync::Mutex;

/// Amount of work (elements touched) below which an op stays on the calling thread.
const PAR_THRESHOLD: usize = 1 << 17;

/// Calls `f(first_row, rows)` over `dst` split into whole rows of `row_len` elements, on
/// several threads when `rows * work_per_row` is large. Each element is computed
/// independently, so the split never changes results.
pub(crate) fn par_rows<T: Send>(
    dst: &mut [T],
    row_len: usize,
    work_per_row: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    if row_len == 0 || dst.is_empty() {
        return;
    }
    let rows = dst.len() / row_len;
    let total = rows.saturating_mul(work_per_row.max(1));
    let threads = rayon::current_num_threads();
    if threads == 1 || total < PAR_THRESHOLD || rows == 1 {
        f(0, dst);
        return;
    }
    let chunks = (total / PAR_THRESHOLD).clamp(1, threads * 4).min(rows);
    let rows_per_chunk = rows.div_ceil(chunks);
    // Each job takes its own chunk out of its own cell, so the lock is never contended.
    let parts: Vec<Mutex<&mut [T]>> = dst
        .chunks_mut(rows_per_chunk * row_len)
        .map(Mutex::new)
        .collect();
    spin_pool::run(threads, parts.len(), &|i| {
        let mut chunk = parts[i].lock().unwrap_or_else(|p| p.into_inner());
        f(i * rows_per_chunk, &mut chunk);
    });
}
