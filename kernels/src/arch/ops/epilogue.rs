//! The fused convolution epilogue on vectors of output channels, lane for lane the scalar
//! `epilogue_f32` + output conversion: `acc * scale[oc]`, `+ bias[oc]`,
//! `+ (r - zr) * sr`, activation, then u8 (quantize) or f32.

use super::simd::{
    DequantizeVec, QuantizeVec, Simd, load_f_part, load_u8_any, store_f_part, store_u8_any,
};
use crate::conv::epilogue::Prepared;
use crate::epilogue::Activation;
use crate::quant::QParams;

/// An output element type of the fused epilogue.
pub(crate) trait OutElem: Copy + Send + Sync + 'static {
    /// Converts and stores `min(LANES, dst.len())` lanes of the epilogue value `y`.
    fn store<S: Simd>(s: S, q: &QuantizeVec<S>, dst: &mut [Self], y: S::F);
}

impl OutElem for u8 {
    #[inline(always)]
    fn store<S: Simd>(s: S, q: &QuantizeVec<S>, dst: &mut [u8], y: S::F) {
        store_u8_any(s, dst, q.apply(s, y));
    }
}

impl OutElem for f32 {
    #[inline(always)]
    fn store<S: Simd>(s: S, _q: &QuantizeVec<S>, dst: &mut [f32], y: S::F) {
        if dst.len() >= S::LANES {
            s.store_f(dst, y)
        } else {
            store_f_part(s, dst, y)
        }
    }
}

/// Loads `min(LANES, src.len())` f32 (others 0).
#[inline(always)]
fn load_f_any<S: Simd>(s: S, src: &[f32]) -> S::F {
    if src.len() >= S::LANES {
        s.load_f(src)
    } else {
        load_f_part(s, src)
    }
}

/// Splatted constants of one call's epilogue.
pub(crate) struct EpilogueVec<'a, S: Simd> {
    fused: &'a Prepared<'a>,
    residual: Option<(&'a [u8], DequantizeVec<S>)>,
    lo: Option<S::F>,
    hi: Option<S::F>,
    q: QuantizeVec<S>,
}

impl<'a, S: Simd> EpilogueVec<'a, S> {
    /// `out_qp`: the u8 output's parameters (ignored for f32 output).
    #[inline(always)]
    pub(crate) fn new(s: S, fused: &'a Prepared<'a>, out_qp: Option<QParams>) -> Self {
        let (lo, hi) = match fused.activation {
            Activation::None => (None, None),
            Activation::Relu => (Some(s.splat_f(0.0)), None),
            Activation::Clamp { min, max } => (Some(s.splat_f(min)), Some(s.splat_f(max))),
            // Applied lane by lane with the scalar function in `store`.
            _ => (None, None),
        };
        let out_qp = out_qp.unwrap_or(QParams {
            scale: 1.0,
            zero_point: 0,
        });
        EpilogueVec {
            fused,
            residual: fused.residual.map(|(r, qp)| (r, DequantizeVec::new(s, qp))),
            lo,
            hi,
            q: QuantizeVec::new(s, out_qp.inv_scale(), out_qp.zero_point),
        }
    }

    /// Finishes accumulator lanes of output channels `oc..oc + dst.len()` (at most LANES)
    /// whose first element has flat output index `idx`.
    #[inline(always)]
    pub(crate) fn store<T: OutElem>(&self, s: S, acc: S::I, oc: usize, idx: usize, dst: &mut [T]) {
        let n = dst.len();
        let mut y = s.mul_f(s.to_f(acc), load_f_any(s, &self.fused.scale[oc..oc + n]));
        if let Some(bias) = self.fused.bias {
            y = s.add_f(y, load_f_any(s, &bias[oc..oc + n]));
        }
        if let Some((r, dq)) = &self.residual {
            y = s.add_f(y, dq.apply(s, load_u8_any(s, &r[idx..idx + n])));
        }
        if let Some(lo) = self.lo {
            y = s.max_f(y, lo);
        }
        if let Some(hi) = self.hi {
            y = s.min_f(y, hi);
        }
        if self.fused.activation.is_scalar_only() {
            y = scalar_activation(s, self.fused.activation, y);
        }
        T::store(s, &self.q, dst, y);
    }
}

/// The activations without a vector form, lane by lane with the scalar
/// [`Activation::apply`] (bit-identical to the scalar tier).
#[inline(always)]
fn scalar_activation<S: Simd>(s: S, act: Activation, y: S::F) -> S::F {
    let mut t = [0f32; 16];
    let lanes = &mut t[..S::LANES];
    s.store_f(lanes, y);
    lanes.iter_mut().for_each(|v| *v = act.apply(*v));
    s.load_f(lanes)
}
