//! Constant folding of shape sub-graphs at import (`Shape -> Gather -> Unsqueeze -> Concat ->
//! Reshape` and friends). Integer tensors of rank <= 1 are evaluated symbolically: an element
//! is a known integer or a named dimension (e.g. the dynamic `batch`), so a Reshape target
//! computed from the input's own shape resolves even when the batch is dynamic.

use std::sync::Arc;

use crate::ir::{Dim, Tensor, TensorData};
pub(crate) use crate::ops::ArithOp;

/// One element of a folded integer tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SymInt {
    /// A known integer.
    Known(i64),
    /// A named dimension, known at run time.
    Sym(Arc<str>),
    /// Arithmetic on run-time dims, kept as a tree so an op can evaluate it on the concrete
    /// shapes (see [`crate::ops::DimExpr`]).
    Expr(Arc<SymExpr>),
}

/// `a op b` of folded integers, one of them depending on a run-time dim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SymExpr {
    /// `Add`, `Sub`, `Mul` or `Div` (truncating toward zero).
    pub op: ArithOp,
    /// Left operand.
    pub a: SymInt,
    /// Right operand.
    pub b: SymInt,
}

/// A folded integer tensor of rank 0 or 1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SymTensor {
    /// True for rank 0 (then `values` has one element).
    pub scalar: bool,
    /// Elements.
    pub values: Vec<SymInt>,
}

impl SymTensor {
    /// The tensor of a shape's dims.
    pub fn from_dims(dims: &[Dim]) -> SymTensor {
        let values = dims
            .iter()
            .map(|d| match d {
                Dim::Known(n) => SymInt::Known(*n as i64),
                Dim::Sym(s) => SymInt::Sym(s.clone()),
            })
            .collect();
        SymTensor {
            scalar: false,
            values,
        }
    }

    /// A view of an integer constant of rank <= 1.
    pub fn from_tensor(t: &Tensor) -> Option<SymTensor> {
        let values: Vec<i64> = match t.data() {
            TensorData::I64(v) => v.clone(),
            TensorData::I32(v) => v.iter().map(|&x| x as i64).collect(),
            _ => return None,
        };
        if t.shape().len() > 1 {
            return None;
        }
        Some(SymTensor {
            scalar: t.shape().is_empty(),
            values: values.into_iter().map(SymInt::Known).collect(),
        })
    }

    /// The known values, if none is symbolic.
    pub fn known(&self) -> Option<Vec<i64>> {
        self.values
            .iter()
            .map(|v| match v {
                SymInt::Known(k) => Some(*k),
                SymInt::Sym(_) | SymInt::Expr(_) => None,
            })
            .collect()
    }

    /// As an i64 constant, if every element is known.
    pub fn to_tensor(&self) -> Option<Tensor> {
        let v = self.known()?;
        let shape = if self.scalar { vec![] } else { vec![v.len()] };
        Tensor::from_i64(shape, v).ok()
    }
}

/// Python-style normalization of a possibly negative index into `0..len`.
pub(crate) fn normalize_index(i: i64, len: usize) -> Option<usize> {
    let len = i64::try_from(len).ok()?;
    let j = if i < 0 { i + len } else { i };
    (0..len).contains(&j).then_some(j as usize)
}

/// `Gather(data, indices)` on axis 0 of a rank-1 tensor.
pub(crate) fn gather(data: &SymTensor, indices: &SymTensor) -> Result<SymTensor, String> {
    if data.scalar {
        return Err("cannot gather from a scalar".into());
    }
    let idx = indices.known().ok_or("indices must be known")?;
    let values = idx
        .iter()
        .map(|&i| {
            normalize_index(i, data.values.len())
                .map(|j| data.values[j].clone())
                .ok_or_else(|| format!("index {i} out of range for length {}", data.values.len()))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(SymTensor {
        scalar: indices.scalar,
        values,
    })
}

/// `Slice` of a rank-1 tensor (ONNX clamping rules, any non-zero step).
pub(crate) fn slice(
    data: &SymTensor,
    start: i64,
    end: i64,
    step: i64,
) -> Result<SymTensor, String> {
    if data.scalar {
        return Err("cannot slice a scalar".into());
    }
    let picked = slice_indices(data.values.len(), start, end, step)?;
    Ok(SymTensor {
        scalar: false,
        values: picked.into_iter().map(|i| data.values[i].clone()).collect(),
    })
}

/// The positions `Slice` picks on an axis of length `len`: ONNX's clamping of negative and
/// out-of-range `start` / `end`, any non-zero `step` (a huge step stops, never overflows).
pub(crate) fn slice_indices(
    len: usize,
    start: i64,
    end: i64,
    step: i64,
) -> Result<Vec<usize>, String> {
    if step == 0 {
        return Err("slice step is 0".into());
    }
    let len = i64::try_from(len).map_err(|_| "axis too long")?;
    let clamp = |v: i64, lo: i64, hi: i64| {
        let v = if v < 0 { v.saturating_add(len) } else { v };
        v.clamp(lo, hi)
    };
    let (mut i, e) = if step > 0 {
        (clamp(start, 0, len), clamp(end, 0, len))
    } else {
        (clamp(start, -1, len - 1), clamp(end, -1, len - 1))
    };
    let mut out = Vec::new();
    while (step > 0 && i < e) || (step < 0 && i > e) {
        out.push(i as usize);
        match i.checked_add(step) {
            Some(next) => i = next,
            None => break,
        }
    }
    Ok(out)
}

/// Element-wise integer arithmetic (`Add`, `Sub`, `Mul`, `Div` truncating toward zero as
/// ONNX does) with scalar broadcasting. An element involving a run-time dim becomes a new
/// named dim (e.g. `batch*2`), except for the identities (`batch * 1` is `batch`): a Reshape
/// target may use one such entry where it would use -1.
pub(crate) fn arith(op: &str, a: &SymTensor, b: &SymTensor) -> Result<SymTensor, String> {
    let n = broadcast_len(a.values.len(), b.values.len())?;
    let mut values = Vec::with_capacity(n);
    for i in 0..n {
        let arith = ArithOp::from_onnx(op).ok_or_else(|| format!("{op} is not arithmetic"))?;
        let v = match (at(a, i), at(b, i)) {
            (SymInt::Known(p), SymInt::Known(q)) => SymInt::Known(
                arith
                    .apply(*p, *q)
                    .ok_or_else(|| format!("{op} of {p} and {q} overflows or divides by 0"))?,
            ),
            // Identities keep the run-time dim itself (x * 1, x + 0, x - 0, x / 1).
            (p, SymInt::Known(1)) if matches!(op, "Mul" | "Div") => p.clone(),
            (SymInt::Known(1), q) if op == "Mul" => q.clone(),
            (p, SymInt::Known(0)) if matches!(op, "Add" | "Sub") => p.clone(),
            (SymInt::Known(0), q) if op == "Add" => q.clone(),
            (p, q) => SymInt::Expr(Arc::new(SymExpr {
                op: arith,
                a: p.clone(),
                b: q.clone(),
            })),
        };
        values.push(v);
    }
    Ok(SymTensor {
        scalar: a.scalar && b.scalar,
        values,
    })
}

/// The printed form of a folded integer (a run-time dim's name, `(a-b)` for an
/// expression); symbolic dims derived from it are named so.
pub(crate) fn show(v: &SymInt) -> String {
    match v {
        SymInt::Known(k) => k.to_string(),
        SymInt::Sym(s) => s.to_string(),
        SymInt::Expr(e) => format!("({}{}{})", show(&e.a), e.op.sign(), show(&e.b)),
    }
}

/// The broadcast length of two rank-<=1 operands of lengths `a` and `b`.
fn broadcast_len(a: usize, b: usize) -> Result<usize, String> {
    let n = a.max(b);
    if (a == n || a == 1) && (b == n || b == 1) {
        Ok(n)
    } else {
        Err(format!("lengths {a} and {b} do not broadcast"))
    }
}

/// Element `i` of an operand broadcast along its (rank <= 1) axis.
fn at(t: &SymTensor, i: usize) -> &SymInt {
    &t.values[if t.values.len() == 1 { 0 } else { i }]
}

/// `Equal` of folded integer tensors, as a bool tensor. A run-time dim (or a sum or product of such) is at least 1, so it
/// differs from any known value below 1 and equals itself; against a known value >= 1 the
/// answer is only known at run time (an error).
pub(crate) fn equal(a: &SymTensor, b: &SymTensor) -> Result<Tensor, String> {
    let n = broadcast_len(a.values.len(), b.values.len())?;
    let values = (0..n)
        .map(|i| match (at(a, i), at(b, i)) {
            (SymInt::Known(p), SymInt::Known(q)) => Ok(p == q),
            (p, q) if p == q => Ok(true),
            (p, SymInt::Known(k)) | (SymInt::Known(k), p) if *k < 1 && positive(p) => Ok(false),
            (p, q) => Err(format!(
                "whether {p:?} equals {q:?} is only known at run time"
            )),
        })
        .collect::<Result<Vec<_>, String>>()?;
    let shape = if a.scalar && b.scalar {
        vec![]
    } else {
        vec![n]
    };
    Tensor::from_bool(shape, values).map_err(|e| e.to_string())
}

/// True when `v` is certainly >= 1: a run-time dim, or sums and products of such.
fn positive(v: &SymInt) -> bool {
    match v {
        SymInt::Known(k) => *k >= 1,
        SymInt::Sym(_) => true,
        SymInt::Expr(e) => {
            matches!(e.op, ArithOp::Add | ArithOp::Mul) && positive(&e.a) && positive(&e.b)
        }
    }
}

/// A constant `Where` condition of rank <= 1 (bool, or integers read as non-zero = true)
/// as 0 / 1 values.
pub(crate) fn condition(t: &Tensor) -> Option<SymTensor> {
    match t.data() {
        TensorData::Bool(v) if t.shape().len() <= 1 => Some(SymTensor {
            scalar: t.shape().is_empty(),
            values: v.iter().map(|&b| SymInt::Known(i64::from(b))).collect(),
        }),
        _ => SymTensor::from_tensor(t),
    }
}

/// `Where(cond, x, y)` of folded integer tensors with a known condition.
pub(crate) fn select(c: &SymTensor, x: &SymTensor, y: &SymTensor) -> Result<SymTensor, String> {
    let cond = c.known().ok_or("the condition is only known at run time")?;
    let n = broadcast_len(broadcast_len(cond.len(), x.values.len())?, y.values.len())?;
    let values = (0..n)
        .map(|i| {
            let pick = cond[if cond.len() == 1 { 0 } else { i }] != 0;
            if pick { at(x, i) } else { at(y, i) }.clone()
        })
        .collect();
    Ok(SymTensor {
        scalar: c.scalar && x.scalar && y.scalar,
        values,
    })
}
