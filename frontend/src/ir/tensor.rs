//! Dense tensors: a shape and a typed, row-major (C order) element buffer.

use super::dtype::DType;
use super::shape::checked_numel;
use crate::error::{Error, Result};

/// Typed element storage of a [`Tensor`].
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    /// f32 elements.
    F32(Vec<f32>),
    /// u8 elements.
    U8(Vec<u8>),
    /// i8 elements.
    I8(Vec<i8>),
    /// i32 elements.
    I32(Vec<i32>),
    /// i64 elements.
    I64(Vec<i64>),
    /// bool elements.
    Bool(Vec<bool>),
}

impl TensorData {
    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            TensorData::F32(_) => DType::F32,
            TensorData::U8(_) => DType::U8,
            TensorData::I8(_) => DType::I8,
            TensorData::I32(_) => DType::I32,
            TensorData::I64(_) => DType::I64,
            TensorData::Bool(_) => DType::Bool,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            TensorData::F32(v) => v.len(),
            TensorData::U8(v) => v.len(),
            TensorData::I8(v) => v.len(),
            TensorData::I32(v) => v.len(),
            TensorData::I64(v) => v.len(),
            TensorData::Bool(v) => v.len(),
        }
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A dense tensor in C order.
///
/// ```
/// use q8_frontend::ir::Tensor;
/// let t = Tensor::from_f32(vec![2, 3], vec![0.0; 6]).unwrap();
/// assert_eq!(t.shape(), &[2, 3]);
/// assert!(Tensor::from_f32(vec![2, 3], vec![0.0; 5]).is_err());
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: TensorData,
}

impl Tensor {
    /// A tensor of `shape` holding `data`.
    ///
    /// # Errors
    /// [`Error::Graph`] when the element count of `shape` differs from `data.len()` or
    /// exceeds [`super::MAX_ELEMENTS`].
    pub fn new(shape: Vec<usize>, data: TensorData) -> Result<Tensor> {
        let n = checked_numel(&shape)?;
        if n != data.len() {
            return Err(Error::Graph(format!(
                "tensor of shape {shape:?} needs {n} elements, got {}",
                data.len()
            )));
        }
        Ok(Tensor { shape, data })
    }

    /// An f32 tensor; see [`Tensor::new`].
    ///
    /// # Errors
    /// As [`Tensor::new`].
    pub fn from_f32(shape: Vec<usize>, data: Vec<f32>) -> Result<Tensor> {
        Tensor::new(shape, TensorData::F32(data))
    }

    /// An i64 tensor; see [`Tensor::new`].
    ///
    /// # Errors
    /// As [`Tensor::new`].
    pub fn from_i64(shape: Vec<usize>, data: Vec<i64>) -> Result<Tensor> {
        Tensor::new(shape, TensorData::I64(data))
    }

    /// A bool tensor; see [`Tensor::new`].
    ///
    /// # Errors
    /// As [`Tensor::new`].
    pub fn from_bool(shape: Vec<usize>, data: Vec<bool>) -> Result<Tensor> {
        Tensor::new(shape, TensorData::Bool(data))
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The elements.
    pub fn data(&self) -> &TensorData {
        &self.data
    }

    /// The f32 elements, if this is an f32 tensor.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            TensorData::F32(v) => Some(v),
            _ => None,
        }
    }

    /// The i64 elements, if this is an i64 tensor.
    pub fn as_i64(&self) -> Option<&[i64]> {
        match &self.data {
            TensorData::I64(v) => Some(v),
            _ => None,
        }
    }

    /// The bool elements, if this is a bool tensor.
    pub fn as_bool(&self) -> Option<&[bool]> {
        match &self.data {
            TensorData::Bool(v) => Some(v),
            _ => None,
        }
    }

    /// Splits into shape and data.
    pub fn into_parts(self) -> (Vec<usize>, TensorData) {
        (self.shape, self.data)
    }

    /// Changes the shape, keeping the elements (the element count must not change).
    ///
    /// # Errors
    /// [`Error::Graph`] when the element counts differ.
    pub fn reshape(self, shape: Vec<usize>) -> Result<Tensor> {
        Tensor::new(shape, self.data)
    }
}

/// The row-major `[cols, rows]` transpose of the row-major `[rows, cols]` matrix `x`
/// (weights between the `[K, N]` and `[N, K]` layouts).
pub(crate) fn transpose_2d<T: Copy>(x: &[T], rows: usize, cols: usize) -> Vec<T> {
    debug_assert_eq!(x.len(), rows * cols);
    (0..rows * cols)
        .map(|i| x[(i % rows) * cols + i / rows])
        .collect()
}

/// A tensor is a one-input batch: single-input models take a [`Tensor`] wherever a batch of
/// inputs (`&[Tensor]`, `Vec<Tensor>`) is accepted, e.g. [`crate::quant::Prepared::calibrate`].
impl AsRef<[Tensor]> for Tensor {
    fn as_ref(&self) -> &[Tensor] {
        std::slice::from_ref(self)
    }
}
