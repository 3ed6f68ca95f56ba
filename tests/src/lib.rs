//! Shared helpers for q8's integration and property tests: the committed fixtures in
//! `tests/data/`, the classification metrics the model tests score logits with, and the
//! tier loop that names every tier it skips.

use std::path::PathBuf;

use q8_frontend::ir::Tensor;
use q8_frontend::npy;
use q8_kernels::cpu::{self, Tier};
use q8_kernels::reference::gemm::{RefOutput, gemm_ref};
use q8_kernels::{Activation, QParams};

/// SQNR in dB of `x` against `reference` (`q8_frontend::quant::sqnr_db`), after asserting
/// that both have the same length (a short output must fail the test, not shrink the sum).
pub fn sqnr_db(reference: &[f32], x: &[f32]) -> f64 {
    assert_eq!(
        reference.len(),
        x.len(),
        "SQNR of tensors of different lengths"
    );
    q8_frontend::quant::sqnr_db(reference, x)
}

/// Largest absolute difference over the largest absolute reference value (0 when both
/// are all zeros), after asserting equal lengths.
pub fn max_rel_err(reference: &[f32], x: &[f32]) -> f64 {
    assert_eq!(reference.len(), x.len(), "outputs of different lengths");
    let diff = reference
        .iter()
        .zip(x)
        .map(|(a, b)| f64::from((a - b).abs()))
        .fold(0.0, f64::max);
    let scale = reference
        .iter()
        .map(|a| f64::from(a.abs()))
        .fold(0.0, f64::max);
    if diff == 0.0 { 0.0 } else { diff / scale }
}

/// Path of the fixture `name` in `tests/data/`.
pub fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(name)
}

/// The fp32 `.npy` fixture `name` as a tensor of its stored shape.
///
/// # Panics
/// When the file is missing or not an fp32 array (a broken fixture fails the test).
pub fn read_f32(name: &str) -> Tensor {
    let a = npy::read(data(name)).unwrap();
    Tensor::from_f32(a.shape().to_vec(), a.values::<f32>().unwrap().to_vec()).unwrap()
}

/// The int64 `.npy` fixture `name` (token ids, masks) as a tensor of its stored shape.
///
/// # Panics
/// When the file is missing or not an int64 array.
pub fn read_i64(name: &str) -> Tensor {
    let a = npy::read(data(name)).unwrap();
    Tensor::from_i64(a.shape().to_vec(), a.values::<i64>().unwrap().to_vec()).unwrap()
}

/// Index of the first largest value of `row` (0 for an empty row).
pub fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .fold(0, |best, (i, v)| if *v > row[best] { i } else { best })
}

/// Number of 10-class logit rows of `a` and `b` whose argmax agree.
pub fn top1_agreement(a: &[f32], b: &[f32]) -> usize {
    a.chunks_exact(10)
        .zip(b.chunks_exact(10))
        .filter(|(x, y)| argmax(x) == argmax(y))
        .count()
}

/// The tiers this CPU can run, in [`Tier::ALL`] order; every other tier is reported on
/// stderr as skipped (`<test>: skipping tier <name>: <reason>`), never silently.
pub fn available_tiers(test: &str) -> Vec<Tier> {
    Tier::ALL
        .into_iter()
        .filter(|&t| {
            let ok = cpu::is_available(t);
            if !ok {
                eprintln!(
                    "{test}: skipping tier {t}: {}",
                    cpu::info().missing_reason(t)
                );
            }
            ok
        })
        .collect()
}

/// The reference GEMM's raw i32 sums `sum a·w - za·colsum` of row-major `a` (`m x k`, u8
/// with `aq`) against `w` (`n x k`, s8): what every tier's `Output::I32` must equal.
pub fn reference_i32(a: &[u8], m: usize, k: usize, aq: QParams, w: &[i8], n: usize) -> Vec<i32> {
    let mut want = vec![0i32; m * n];
    let out = RefOutput::I32 {
        data: &mut want,
        ldc: n,
    };
    gemm_ref(
        a,
        k,
        m,
        aq,
        w,
        n,
        k,
        &[1.0],
        None,
        Activation::None,
        None,
        out,
    )
    .expect("a valid reference problem");
    want
}
