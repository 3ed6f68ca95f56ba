//! Element-wise kernels: quantize, dequantize, requantize, add. Full vectors, then one
//! partial block through a stack buffer; every lane computes exactly the scalar formula.

use super::simd::{
    DequantizeVec, QuantizeVec, Simd, SimdKernel, load_f_part, load_u8_any, store_f_part,
    store_u8_any,
};
use crate::ops::AddParams;
use crate::quant::QParams;

/// f32 -> u8 with `inv` (= 1 / scale) and `zp`.
pub(crate) struct Quantize<'a> {
    pub src: &'a [f32],
    pub inv: f32,
    pub zp: i32,
    pub dst: &'a mut [u8],
}

impl SimdKernel for Quantize<'_> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let q = QuantizeVec::new(s, self.inv, self.zp);
        for (src, dst) in self.src.chunks(S::LANES).zip(self.dst.chunks_mut(S::LANES)) {
            let v = if src.len() == S::LANES {
                s.load_f(src)
            } else {
                load_f_part(s, src)
            };
            store_u8_any(s, dst, q.apply(s, v));
        }
    }
}

/// u8 -> f32.
pub(crate) struct Dequantize<'a> {
    pub src: &'a [u8],
    pub qp: QParams,
    pub dst: &'a mut [f32],
}

impl SimdKernel for Dequantize<'_> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let dq = DequantizeVec::new(s, self.qp);
        for (src, dst) in self.src.chunks(S::LANES).zip(self.dst.chunks_mut(S::LANES)) {
            let y = dq.apply(s, load_u8_any(s, src));
            if dst.len() == S::LANES {
                s.store_f(dst, y)
            } else {
                store_f_part(s, dst, y)
            }
        }
    }
}

/// u8 -> u8: quantize(dequantize(q; from); to).
pub(crate) struct Requantize<'a> {
    pub src: &'a [u8],
    pub from: QParams,
    pub to: QParams,
    pub dst: &'a mut [u8],
}

impl SimdKernel for Requantize<'_> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let dq = DequantizeVec::new(s, self.from);
        let q = QuantizeVec::new(s, self.to.inv_scale(), self.to.zero_point);
        for (src, dst) in self.src.chunks(S::LANES).zip(self.dst.chunks_mut(S::LANES)) {
            store_u8_any(s, dst, q.apply(s, dq.apply(s, load_u8_any(s, src))));
        }
    }
}

/// u8 + u8 -> u8 with three sets of qparams and optional relu.
pub(crate) struct Add<'a> {
    pub a: &'a [u8],
    pub b: &'a [u8],
    pub params: &'a AddParams,
    pub dst: &'a mut [u8],
}

impl SimdKernel for Add<'_> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let p = self.params;
        let (da, db) = (DequantizeVec::new(s, p.a), DequantizeVec::new(s, p.b));
        let q = QuantizeVec::new(s, p.out.inv_scale(), p.out.zero_point);
        let zero = s.splat_f(0.0);
        let (a, b, dst) = (self.a, self.b, self.dst);
        let body = dst.len() - dst.len() % S::LANES;
        let mut i = 0;
        while i < body {
            let y = s.add_f(
                da.apply(s, s.load_u8(&a[i..])),
                db.apply(s, s.load_u8(&b[i..])),
            );
            let y = if p.relu { s.max_f(y, zero) } else { y };
            s.store_u8(&mut dst[i..], q.apply(s, y));
            i += S::LANES;
        }
        if body < dst.len() {
            let (ya, yb) = (load_u8_any(s, &a[body..]), load_u8_any(s, &b[body..]));
            let y = s.add_f(da.apply(s, ya), db.apply(s, yb));
            let y = if p.relu { s.max_f(y, zero) } else { y };
            store_u8_any(s, &mut dst[body..], q.apply(s, y));
        }
    }
}
