//! Reference QuantizeLinear / DequantizeLinear with `int8-math.md` semantics: quantize
//! multiplies by the f32 inverse scale, rounds half to even, adds the zero point and clamps.

use q8_kernels::quant;

use crate::ir::{QuantSpec, TensorData};

/// Scale and zero point for every element index, as (per-element channel) lookups.
fn channel_of(spec: &QuantSpec, shape: &[usize]) -> (usize, usize) {
    match spec.axis {
        None => (1, 1),
        Some(a) => (shape[a], shape[a + 1..].iter().product::<usize>().max(1)),
    }
}

/// f32 -> u8 / i8.
pub(crate) fn quantize(x: &[f32], shape: &[usize], spec: &QuantSpec) -> TensorData {
    let (channels, inner) = channel_of(spec, shape);
    let inv: Vec<f32> = spec.scales.iter().map(|s| 1.0f32 / s).collect();
    let ch = |i: usize| {
        if channels == 1 {
            0
        } else {
            (i / inner) % channels
        }
    };
    match spec.dtype {
        crate::ir::DType::I8 => TensorData::I8(
            x.iter()
                .enumerate()
                .map(|(i, &v)| {
                    let c = ch(i);
                    let q = (v * inv[c]).round_ties_even() + spec.zero_points[c] as f32;
                    q.clamp(-128.0, 127.0) as i8
                })
                .collect(),
        ),
        _ => TensorData::U8(
            x.iter()
                .enumerate()
                .map(|(i, &v)| {
                    let c = ch(i);
                    quant::quantize(v, inv[c], spec.zero_points[c])
                })
                .collect(),
        ),
    }
}

/// u8 / i8 / i32 -> f32: `(q - zero_point) * scale`.
pub(crate) fn dequantize(q: &TensorData, shape: &[usize], spec: &QuantSpec) -> Vec<f32> {
    let (channels, inner) = channel_of(spec, shape);
    let ch = |i: usize| {
        if channels == 1 {
            0
        } else {
            (i / inner) % channels
        }
    };
    let dq = |i: usize, v: i64| ((v - spec.zero_points[ch(i)] as i64) as f32) * spec.scales[ch(i)];
    match q {
        TensorData::U8(v) => v
            .iter()
            .enumerate()
            .map(|(i, &x)| dq(i, x as i64))
            .collect(),
        TensorData::I8(v) => v
            .iter()
            .enumerate()
            .map(|(i, &x)| dq(i, x as i64))
            .collect(),
        TensorData::I32(v) => v
            .iter()
            .enumerate()
            .map(|(i, &x)| dq(i, x as i64))
            .collect(),
        TensorData::I64(v) => v.iter().enumerate().map(|(i, &x)| dq(i, x)).collect(),
        TensorData::Bool(v) => v
            .iter()
            .enumerate()
            .map(|(i, &x)| dq(i, x as i64))
            .collect(),
        TensorData::F32(v) => v.clone(),
    }
}
