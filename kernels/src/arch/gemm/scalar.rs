//! The scalar tier: portable loops over row-major weights, through the same driver.

use super::epilogue::Epilogue;
use super::kernel::ARows;

/// Rows `a` (output rows `i0..`) x columns `j_begin..j_end` of `w` (N x K row-major).
///
/// # Safety
/// Output rows `i0..i0 + a.len()` and columns `j_begin..j_end` exist in `ep` and no other
/// thread writes them concurrently.
pub(crate) unsafe fn gemm_block(
    a: &ARows<'_>,
    i0: usize,
    w: &[i8],
    j_begin: usize,
    j_end: usize,
    ep: &Epilogue<'_>,
) {
    let k = a.k();
    for r in 0..a.len() {
        let row = a.row(r);
        for j in j_begin..j_end {
            let col = &w[j * k..][..k];
            let dot: i32 = row
                .iter()
                .zip(col)
                .map(|(&x, &y)| x as i32 * y as i32)
                .sum();
            // SAFETY: forwarded contract.
            unsafe { ep.store_one(dot, i0 + r, j) };
        }
    }
}
