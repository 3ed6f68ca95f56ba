//! Shared helpers for q8's criterion benchmarks: the SIMD tiers to measure, the committed
//! test fixtures and the digits test batch.

use std::path::PathBuf;

use q8_frontend::ir::Tensor;
use q8_frontend::npy;
use q8_kernels::cpu::{self, Tier};

/// The SIMD tiers this CPU can run, in [`Tier::ALL`] order; each unavailable one is named on
/// stderr with the reason, prefixed by `bench`.
pub fn simd_tiers(bench: &str) -> Vec<Tier> {
    Tier::ALL
        .into_iter()
        .filter(|&t| {
            let ok = t != Tier::Scalar && cpu::is_available(t);
            if !ok && t != Tier::Scalar {
                eprintln!(
                    "{bench} bench: skipping tier {t}: {}",
                    cpu::info().missing_reason(t)
                );
            }
            ok
        })
        .collect()
}

/// Path of the test fixture `name` (in `tests/data/` of the workspace).
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data")
        .join(name)
}

/// The 360 digits test images, `[360, 1, 32, 32]` f32.
///
/// # Panics
/// When the fixture is missing or malformed.
pub fn digits_images() -> Tensor {
    let x = npy::read(fixture("digits_test_x.npy")).expect("fixture data");
    Tensor::from_f32(x.shape().to_vec(), x.values::<f32>().expect("f32").to_vec()).expect("tensor")
}
