//! Element-wise quantized addition with an optional fused ReLU.

use crate::arch::ops::{Isa, elementwise as simd};
use crate::cpu::Tier;
use crate::error::Result;
use crate::ops::{check_len, par_rows};
use crate::quant::QParams;
use crate::reference::ops as scalar;

/// Quantization parameters of `add`'s two inputs and output, and whether ReLU is fused.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AddParams {
    /// First input's qparams.
    pub a: QParams,
    /// Second input's qparams.
    pub b: QParams,
    /// Output qparams.
    pub out: QParams,
    /// Apply `max(y, 0)` before quantizing.
    pub relu: bool,
}

impl AddParams {
    pub(crate) fn validate(&self) -> Result<()> {
        self.a.validate()?;
        self.b.validate()?;
        self.out.validate()
    }
}

/// `out = quantize(relu?(((a - za) as f32) * sa + ((b - zb) as f32) * sb); so, zo)`,
/// element-wise, each step a separate f32 operation (no FMA). Same-shape inputs (any layout).
///
/// ```
/// use q8_kernels::ops::{add, AddParams};
/// use q8_kernels::{QParams, Tier};
/// let qp = QParams::new(0.5, 10).unwrap();
/// let params = AddParams { a: qp, b: qp, out: qp, relu: true };
/// let mut out = [0u8; 2];
/// add(Tier::Scalar, &[12, 0], &[14, 5], &params, &mut out).unwrap();
/// assert_eq!(out, [16, 10]); // 1.0 + 2.0 = 3.0 -> 6 + 10; -5 - 2.5 -> relu 0 -> 10
/// ```
///
/// # Errors
/// Slices of different lengths, invalid qparams, unavailable tier.
pub fn add(tier: Tier, a: &[u8], b: &[u8], params: &AddParams, out: &mut [u8]) -> Result<()> {
    check_len("add second input", a.len(), b.len())?;
    check_len("add output", a.len(), out.len())?;
    params.validate()?;
    let isa = Isa::for_tier(tier)?;
    const ROW: usize = 4096;
    let whole = out.len() - out.len() % ROW;
    let (body, tail) = out.split_at_mut(whole);
    let run = |first: usize, dst: &mut [u8]| {
        let (a, b) = (&a[first..][..dst.len()], &b[first..][..dst.len()]);
        match isa {
            None => scalar::add_slice(a, b, params, dst),
            Some(isa) => isa.run(simd::Add { a, b, params, dst }),
        }
    };
    par_rows(body, ROW, ROW, |first, rows| run(first * ROW, rows));
    if !tail.is_empty() {
        run(whole, tail);
    }
    Ok(())
}
