//! `TensorProto` -> [`Tensor`]: raw little-endian bytes or typed fields, with every declared
//! size checked against the bytes present before anything is allocated.

use super::proto::TensorProto;
use crate::error::{Error, Result};
use crate::ir::{DType, MAX_DIM, Tensor, TensorData, checked_numel};

/// Converts a dims list from a model file (each in 0..=[`MAX_DIM`]).
pub(crate) fn dims_from_proto(dims: &[i64], what: &str) -> Result<Vec<usize>> {
    dims.iter()
        .map(|&d| {
            usize::try_from(d)
                .ok()
                .filter(|&d| d <= MAX_DIM)
                .ok_or_else(|| {
                    Error::Decode(format!(
                        "{what} has dimension {d} (must be in 0..={MAX_DIM})"
                    ))
                })
        })
        .collect()
}

/// Decodes an initializer or `Constant` tensor.
pub(crate) fn tensor_from_proto(t: &TensorProto) -> Result<Tensor> {
    let what = format!("tensor '{}'", t.name);
    if t.data_location == 1 || !t.external_data.is_empty() {
        return Err(Error::Decode(format!(
            "{what} keeps its data in an external file, which q8 does not read; save the model with all tensors inside the .onnx file"
        )));
    }
    let dtype = DType::from_onnx_code(t.data_type).ok_or_else(|| {
        Error::Decode(format!(
            "{what} has element type code {} (q8 reads f32, u8, i8, i32, i64, bool)",
            t.data_type
        ))
    })?;
    let shape = dims_from_proto(&t.dims, &what)?;
    let n = checked_numel(&shape).map_err(|e| Error::Decode(format!("{what}: {e}")))?;
    let data = if !t.raw_data.is_empty() || n == 0 {
        let raw = &t.raw_data;
        let expect = n * dtype.size_bytes();
        if raw.len() != expect {
            return Err(Error::Decode(format!(
                "{what} of shape {shape:?} needs {expect} bytes of {dtype} data, raw_data has {}",
                raw.len()
            )));
        }
        from_raw(dtype, raw)
    } else {
        let typed_len = match dtype {
            DType::F32 => t.float_data.len(),
            DType::I64 => t.int64_data.len(),
            _ => t.int32_data.len(),
        };
        if typed_len != n {
            return Err(Error::Decode(format!(
                "{what} of shape {shape:?} needs {n} elements, its typed data field has {typed_len}"
            )));
        }
        from_typed(dtype, t, &what)?
    };
    Tensor::new(shape, data)
}

fn from_raw(dtype: DType, raw: &[u8]) -> TensorData {
    fn words<const N: usize, T>(raw: &[u8], f: fn([u8; N]) -> T) -> Vec<T> {
        raw.chunks_exact(N)
            .map(|c| {
                let mut b = [0u8; N];
                b.copy_from_slice(c);
                f(b)
            })
            .collect()
    }
    match dtype {
        DType::F32 => TensorData::F32(words(raw, f32::from_le_bytes)),
        DType::U8 => TensorData::U8(raw.to_vec()),
        DType::I8 => TensorData::I8(raw.iter().map(|&b| b as i8).collect()),
        DType::I32 => TensorData::I32(words(raw, i32::from_le_bytes)),
        DType::I64 => TensorData::I64(words(raw, i64::from_le_bytes)),
        DType::Bool => TensorData::Bool(raw.iter().map(|&b| b != 0).collect()),
    }
}

fn from_typed(dtype: DType, t: &TensorProto, what: &str) -> Result<TensorData> {
    let narrow = |lo: i32, hi: i32| -> Result<()> {
        match t.int32_data.iter().find(|v| **v < lo || **v > hi) {
            Some(v) => Err(Error::Decode(format!(
                "{what}: value {v} out of range for {dtype}"
            ))),
            None => Ok(()),
        }
    };
    Ok(match dtype {
        DType::F32 => TensorData::F32(t.float_data.clone()),
        DType::I64 => TensorData::I64(t.int64_data.clone()),
        DType::I32 => TensorData::I32(t.int32_data.clone()),
        DType::U8 => {
            narrow(0, 255)?;
            TensorData::U8(t.int32_data.iter().map(|&v| v as u8).collect())
        }
        DType::I8 => {
            narrow(-128, 127)?;
            TensorData::I8(t.int32_data.iter().map(|&v| v as i8).collect())
        }
        DType::Bool => {
            narrow(0, 1)?;
            TensorData::Bool(t.int32_data.iter().map(|&v| v != 0).collect())
        }
    })
}
