//! Model inputs from files, bound to a graph's inputs by name, and batching along the first
//! axis (calibration, comparison, benchmarks).
//!
//! An input set is given as a list of specs, the form every `q8` command takes:
//! * one `file.npy` for a single-input model;
//! * one `file.npz` holding one array per graph input, keyed by the input's name
//!   (`np.savez("calib.npz", input_ids=ids, attention_mask=mask)`);
//! * `name=file.npy` for every input (any order).
//!
//! Arrays may be f32 (f64 is converted), i64, i32, u8, i8 or bool; each must have the
//! element type, rank and fixed dimensions of its graph input. Errors name the input, the
//! file and what does not fit.
//!
//! ```
//! use q8_frontend::inputs;
//! use q8_frontend::ir::Tensor;
//! let a = Tensor::from_f32(vec![5, 2], (0..10).map(|i| i as f32).collect()).unwrap();
//! let b = Tensor::from_i64(vec![5], vec![0, 1, 2, 3, 4]).unwrap();
//! let batches: Vec<Vec<Tensor>> = inputs::batches(&[a, b], 2).unwrap().collect();
//! assert_eq!(batches.len(), 3);
//! assert_eq!(batches[2][1].as_i64().unwrap(), &[4]);
//! ```

use std::path::Path;

use crate::error::{Error, Result};
use crate::ir::{Dim, Graph, Tensor, TensorData, ValueId};
use crate::npy::{self, NpyArray, NpyData};

/// Converts a `.npy` array to a tensor: f64 becomes f32, other types keep theirs.
///
/// # Errors
/// [`Error::Input`] when the shape's element count is out of range.
pub fn tensor_from_npy(array: NpyArray) -> Result<Tensor> {
    let (shape, data) = array.into_parts();
    let data = match data {
        NpyData::F32(v) => TensorData::F32(v),
        NpyData::F64(v) => TensorData::F32(v.into_iter().map(|x| x as f32).collect()),
        NpyData::I64(v) => TensorData::I64(v),
        NpyData::I32(v) => TensorData::I32(v),
        NpyData::U8(v) => TensorData::U8(v),
        NpyData::I8(v) => TensorData::I8(v),
        NpyData::Bool(v) => TensorData::Bool(v),
    };
    Tensor::new(shape, data).map_err(|e| Error::Input(e.to_string()))
}

/// Reads a `.npy` file as a tensor (as [`tensor_from_npy`]).
///
/// # Errors
/// [`Error::Input`] naming the file when it cannot be read or parsed.
pub fn read_tensor(path: impl AsRef<Path>) -> Result<Tensor> {
    let path = path.as_ref();
    let array = npy::read(path).map_err(|e| Error::Input(in_file(path, e)))?;
    tensor_from_npy(array).map_err(|e| Error::Input(in_file(path, e)))
}

/// Reads the inputs of `graph` from `specs` (the forms in the module docs), in the order of
/// the graph's inputs, each checked against its graph input.
///
/// # Errors
/// [`Error::Input`] naming the spec, input or file: an unknown, repeated or missing input
/// name, an unnamed `.npy` for a model with several inputs, an archive lacking an input or
/// holding extra arrays, an unreadable file, or an array whose element type, rank or fixed
/// dimensions differ from the graph's.
pub fn read_inputs(graph: &Graph, specs: &[impl AsRef<str>]) -> Result<Vec<Tensor>> {
    let names: Vec<&str> = graph
        .inputs()
        .iter()
        .map(|&i| graph.value(i).name.as_str())
        .collect();
    let specs: Vec<&str> = specs.iter().map(AsRef::as_ref).collect();
    let files: Vec<(usize, Tensor, String)> = match specs[..] {
        [] => return Err(Error::Input(format!("no inputs given (inputs: {names:?})"))),
        [only] if !only.contains('=') && only.ends_with(".npz") => read_archive(&names, only)?,
        [only] if !only.contains('=') => {
            if names.len() != 1 {
                return Err(Error::Input(format!(
                    "{only}: the model has inputs {names:?}: give each as name=file.npy, or one .npz with an array per input"
                )));
            }
            vec![(0, read_tensor(only)?, only.to_string())]
        }
        _ => read_named(&names, &specs)?,
    };
    let mut inputs: Vec<Option<Tensor>> = vec![None; names.len()];
    for (i, t, file) in files {
        check_fits(graph, graph.inputs()[i], &t, &file)?;
        inputs[i] = Some(t);
    }
    Ok(inputs.into_iter().flatten().collect())
}

/// `name=file.npy` specs: (input index, tensor, file) for every graph input.
fn read_named(names: &[&str], specs: &[&str]) -> Result<Vec<(usize, Tensor, String)>> {
    let mut given: Vec<(usize, &str)> = Vec::new();
    for spec in specs {
        let (name, path) = spec.split_once('=').ok_or_else(|| {
            Error::Input(format!("{spec}: with several inputs write name=file.npy"))
        })?;
        let i = names.iter().position(|n| *n == name).ok_or_else(|| {
            Error::Input(format!(
                "{spec}: the model has no input '{name}' (inputs: {names:?})"
            ))
        })?;
        if given.iter().any(|&(j, _)| j == i) {
            return Err(Error::Input(format!("{spec}: '{name}' is given twice")));
        }
        given.push((i, path));
    }
    if let Some(missing) = (0..names.len()).find(|i| !given.iter().any(|(j, _)| j == i)) {
        let name = names[missing];
        return Err(Error::Input(format!(
            "input '{name}' is not given (add {name}=file.npy)"
        )));
    }
    given
        .into_iter()
        .map(|(i, path)| Ok((i, read_tensor(path)?, path.to_string())))
        .collect()
}

/// An `.npz` archive with exactly one array per graph input name.
fn read_archive(names: &[&str], path: &str) -> Result<Vec<(usize, Tensor, String)>> {
    let npz = npy::read_npz(path).map_err(|e| Error::Input(in_file(path, e)))?;
    let extra: Vec<&str> = npz.names().filter(|n| !names.contains(n)).collect();
    if !extra.is_empty() {
        return Err(Error::Input(format!(
            "{path}: arrays {extra:?} are not inputs of the model (inputs: {names:?})"
        )));
    }
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let array = npz.get(name).map_err(|_| {
                Error::Input(format!(
                    "{path}: no array for input '{name}' (arrays: {:?})",
                    npz.names().collect::<Vec<_>>()
                ))
            })?;
            let file = format!("{path}[{name}]");
            let t = tensor_from_npy(array.clone()).map_err(|e| Error::Input(in_file(&file, e)))?;
            Ok((i, t, file))
        })
        .collect()
}

/// Checks element type, rank and fixed dimensions of `t` against graph input `id`.
fn check_fits(graph: &Graph, id: ValueId, t: &Tensor, file: &str) -> Result<()> {
    let v = graph.value(id);
    // A declared batch of 1 takes any batch: exporters fix it, and the int8 runtime and the
    // CLI run such models on whole batches.
    let dims = v.ty.shape.dims().iter().zip(t.shape()).enumerate();
    let fits = t.dtype() == v.ty.dtype
        && t.shape().len() == v.ty.shape.rank()
        && dims.into_iter().all(|(axis, (d, &n))| match d {
            Dim::Known(1) if axis == 0 => true,
            Dim::Known(k) => *k == n,
            Dim::Sym(_) => true,
        });
    if fits {
        return Ok(());
    }
    Err(Error::Input(format!(
        "{file}: input '{}' is {} {:?}, the model expects {} {}",
        v.name,
        t.dtype(),
        t.shape(),
        v.ty.dtype,
        v.ty.shape
    )))
}

/// The number of samples (first-axis length) shared by every input.
///
/// # Errors
/// [`Error::Input`] when there are no inputs, an input is a scalar, or two inputs disagree
/// (naming both lengths).
pub fn samples(inputs: &[Tensor]) -> Result<usize> {
    let first = inputs
        .first()
        .ok_or_else(|| Error::Input("no inputs".into()))?;
    let n = |t: &Tensor| t.shape().first().copied();
    let count =
        n(first).ok_or_else(|| Error::Input("input 0 is a scalar (no sample axis)".into()))?;
    for (i, t) in inputs.iter().enumerate() {
        if n(t) != Some(count) {
            return Err(Error::Input(format!(
                "input {i} has shape {:?}, input 0 has {count} samples on the first axis",
                t.shape()
            )));
        }
    }
    Ok(count)
}

/// `inputs` (a model's inputs in graph order, samples on the first axis) split into batches
/// of `size` samples, every input sliced alike (the last batch may be smaller). A `size` of
/// 0 or an empty input set yields no batches.
///
/// # Errors
/// As [`samples`] for a non-empty set.
pub fn batches(inputs: &[Tensor], size: usize) -> Result<impl Iterator<Item = Vec<Tensor>> + '_> {
    let total = if inputs.is_empty() {
        0
    } else {
        samples(inputs)?
    };
    let step = size.max(1);
    let starts = if size == 0 { 0 } else { total.div_ceil(step) };
    Ok((0..starts).map(move |b| {
        let (start, end) = (b * step, ((b + 1) * step).min(total));
        inputs.iter().map(|t| rows(t, start, end)).collect()
    }))
}

/// Samples `start..end` of `t` (first axis).
fn rows(t: &Tensor, start: usize, end: usize) -> Tensor {
    let per: usize = t.shape()[1..].iter().product();
    let (a, b) = (start * per, end * per);
    let data = match t.data() {
        TensorData::F32(v) => TensorData::F32(v[a..b].to_vec()),
        TensorData::U8(v) => TensorData::U8(v[a..b].to_vec()),
        TensorData::I8(v) => TensorData::I8(v[a..b].to_vec()),
        TensorData::I32(v) => TensorData::I32(v[a..b].to_vec()),
        TensorData::I64(v) => TensorData::I64(v[a..b].to_vec()),
        TensorData::Bool(v) => TensorData::Bool(v[a..b].to_vec()),
    };
    let mut shape = t.shape().to_vec();
    shape[0] = end - start;
    Tensor::new(shape, data).expect("a slice of a valid tensor is valid")
}

/// Synthetic inputs for `graph` (benchmarks): every input with `batch` on its first axis
/// and its other dimensions as declared (1 where symbolic). f32 inputs hold a deterministic
/// ramp in [-1, 1); integer inputs hold 1 (a valid token id and an all-on mask), bool
/// inputs `true`.
///
/// # Errors
/// [`Error::Input`] when an input is a scalar or the element count is too large.
pub fn synthetic(graph: &Graph, batch: usize) -> Result<Vec<Tensor>> {
    graph
        .inputs()
        .iter()
        .map(|&id| {
            let v = graph.value(id);
            let mut dims: Vec<usize> =
                v.ty.shape
                    .dims()
                    .iter()
                    .map(|d| d.known().unwrap_or(1))
                    .collect();
            let first = dims.first_mut().ok_or_else(|| {
                Error::Input(format!(
                    "input '{}' is a scalar: give it with --input",
                    v.name
                ))
            })?;
            *first = batch;
            let n = crate::ir::checked_numel(&dims).map_err(|e| Error::Input(e.to_string()))?;
            let data = match v.ty.dtype {
                crate::ir::DType::F32 => TensorData::F32(
                    (0..n)
                        .map(|i| (i * 7919 % 1000) as f32 / 500.0 - 1.0)
                        .collect(),
                ),
                crate::ir::DType::U8 => TensorData::U8(vec![1; n]),
                crate::ir::DType::I8 => TensorData::I8(vec![1; n]),
                crate::ir::DType::I32 => TensorData::I32(vec![1; n]),
                crate::ir::DType::I64 => TensorData::I64(vec![1; n]),
                crate::ir::DType::Bool => TensorData::Bool(vec![true; n]),
            };
            Tensor::new(dims, data).map_err(|e| Error::Input(format!("input '{}': {e}", v.name)))
        })
        .collect()
}

fn in_file(path: impl AsRef<Path>, e: impl std::fmt::Display) -> String {
    let path = path.as_ref().display().to_string();
    let e = e.to_string();
    // I/O errors already name the path.
    if e.contains(&path) {
        e
    } else {
        format!("{path}: {e}")
    }
}
