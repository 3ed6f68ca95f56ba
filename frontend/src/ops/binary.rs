//! Element-wise binary ops with numpy broadcasting: Sub, Div, Pow, Min, Max (Min / Max
//! variadic, folded pairwise), Mod. f32 for all but integer Mod; i64 and i32 for all but Pow (integer division
//! truncates toward zero and rejects a zero divisor; overflow wraps).

use super::{AttrValue, Exported, OpDef, OpSpec, arity, concrete, def, fail};
use crate::error::Result;
use crate::exec::eltwise;
use crate::ir::{DType, Op, Tensor, TensorData, ValueId, ValueType, broadcast};
use crate::onnx::ImportCx;

/// Which binary function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryKind {
    /// `a - b`.
    Sub,
    /// `a / b`.
    Div,
    /// `a ^ b` (f32 only).
    Pow,
    /// `min(a, b)` (NaN propagates).
    Min,
    /// `max(a, b)` (NaN propagates).
    Max,
    /// Integer remainder with the sign of the divisor (`fmod = 0`; integers only).
    Mod,
    /// Remainder with the sign of the dividend (`fmod = 1`, C's `fmod`).
    Fmod,
}

impl BinaryKind {
    fn f32(self, a: f32, b: f32) -> f32 {
        match self {
            BinaryKind::Sub => a - b,
            BinaryKind::Div => a / b,
            BinaryKind::Pow => a.powf(b),
            BinaryKind::Min if a.is_nan() || b.is_nan() => f32::NAN,
            BinaryKind::Min => a.min(b),
            BinaryKind::Max if a.is_nan() || b.is_nan() => f32::NAN,
            BinaryKind::Max => a.max(b),
            BinaryKind::Mod | BinaryKind::Fmod => a % b,
        }
    }
}

/// Integer arithmetic of a [`BinaryKind`] (wrapping; division by zero is checked before).
trait Int: Copy + Ord + Default + PartialEq {
    fn sub(self, b: Self) -> Self;
    fn div(self, b: Self) -> Self;
    fn rem(self, b: Self) -> Self;
    fn add(self, b: Self) -> Self;
}

macro_rules! int {
    ($t:ty) => {
        impl Int for $t {
            fn sub(self, b: $t) -> $t {
                self.wrapping_sub(b)
            }
            fn div(self, b: $t) -> $t {
                self.wrapping_div(b)
            }
            fn rem(self, b: $t) -> $t {
                self.wrapping_rem(b)
            }
            fn add(self, b: $t) -> $t {
                self.wrapping_add(b)
            }
        }
    };
}

int!(i64);
int!(i32);

/// A broadcasting binary op.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Binary {
    /// The function.
    pub kind: BinaryKind,
    /// Number of inputs (2, or 1.. for Min / Max).
    pub inputs: usize,
}

impl Binary {
    fn int<T: Int>(
        &self,
        node: &str,
        a: (&[T], &[usize]),
        b: (&[T], &[usize]),
        out: &[usize],
    ) -> Result<Vec<T>> {
        let kind = self.kind;
        if kind == BinaryKind::Pow {
            return Err(fail(self, node, "Pow of integers is not supported"));
        }
        let divides = matches!(kind, BinaryKind::Div | BinaryKind::Mod | BinaryKind::Fmod);
        if divides && b.0.contains(&T::default()) {
            return Err(fail(self, node, "integer division by zero"));
        }
        let mut y = vec![T::default(); out.iter().product()];
        eltwise::binary(a.0, a.1, b.0, b.1, out, &mut y, |x, z| match kind {
            BinaryKind::Sub => x.sub(z),
            BinaryKind::Div => x.div(z),
            BinaryKind::Min => x.min(z),
            BinaryKind::Fmod => x.rem(z),
            BinaryKind::Mod => {
                let r = x.rem(z);
                if r != T::default() && ((r < T::default()) != (z < T::default())) {
                    r.add(z)
                } else {
                    r
                }
            }
            // Pow was rejected above.
            BinaryKind::Max | BinaryKind::Pow => x.max(z),
        });
        Ok(y)
    }

    /// `a (op) b` broadcast to `out`.
    fn pair(&self, node: &str, a: &Tensor, b: &Tensor, out: &[usize]) -> Result<Tensor> {
        let (sa, sb) = (a.shape(), b.shape());
        let data = match (a.data(), b.data()) {
            (TensorData::F32(x), TensorData::F32(y)) => {
                let mut o = vec![0.0f32; out.iter().product()];
                // A closure per common kind, so the loops inline (and vectorize) its arithmetic.
                match self.kind {
                    BinaryKind::Sub => eltwise::binary(x, sa, y, sb, out, &mut o, |p, q| p - q),
                    BinaryKind::Div => eltwise::binary(x, sa, y, sb, out, &mut o, |p, q| p / q),
                    kind => eltwise::binary(x, sa, y, sb, out, &mut o, |p, q| kind.f32(p, q)),
                }
                TensorData::F32(o)
            }
            (TensorData::I64(x), TensorData::I64(y)) => {
                TensorData::I64(self.int(node, (x, sa), (y, sb), out)?)
            }
            (TensorData::I32(x), TensorData::I32(y)) => {
                TensorData::I32(self.int(node, (x, sa), (y, sb), out)?)
            }
            (x, y) => {
                return Err(fail(
                    self,
                    node,
                    format!(
                        "inputs of types {} and {} are not supported",
                        x.dtype(),
                        y.dtype()
                    ),
                ));
            }
        };
        Tensor::new(out.to_vec(), data)
    }
}

impl OpDef for Binary {
    fn name(&self) -> &'static str {
        match self.kind {
            BinaryKind::Sub => "Sub",
            BinaryKind::Div => "Div",
            BinaryKind::Pow => "Pow",
            BinaryKind::Min => "Min",
            BinaryKind::Max => "Max",
            BinaryKind::Mod | BinaryKind::Fmod => "Mod",
        }
    }

    fn infer(&self, node: &str, inputs: &[&ValueType]) -> Result<Vec<ValueType>> {
        arity(self, node, inputs.len(), self.inputs, self.inputs)?;
        let dtype = inputs[0].dtype;
        let allowed = match self.kind {
            BinaryKind::Pow => dtype == DType::F32,
            BinaryKind::Mod => matches!(dtype, DType::I64 | DType::I32),
            _ => matches!(dtype, DType::F32 | DType::I64 | DType::I32),
        };
        if !allowed {
            return Err(fail(
                self,
                node,
                format!("input type {dtype} is not supported"),
            ));
        }
        let shape = super::broadcast_all(self, node, inputs, dtype)?;
        Ok(vec![ValueType::new(dtype, shape)])
    }

    fn export(&self, _node: &str) -> Result<Exported> {
        let attrs = match self.kind {
            BinaryKind::Mod => vec![("fmod", AttrValue::Int(0))],
            BinaryKind::Fmod => vec![("fmod", AttrValue::Int(1))],
            _ => vec![],
        };
        Ok(Exported {
            attrs,
            operands: vec![],
        })
    }

    fn eval(&self, node: &str, inputs: &[&Tensor], outputs: &[ValueType]) -> Result<Vec<Tensor>> {
        let out = concrete(self, node, &outputs[0])?;
        let first = inputs
            .first()
            .ok_or_else(|| fail(self, node, "has no inputs"))?;
        let mut acc = (*first).clone();
        for (i, b) in inputs.iter().enumerate().skip(1) {
            let partial: Vec<usize> = if i + 1 == inputs.len() {
                out.clone()
            } else {
                let s = broadcast(
                    &crate::ir::Shape::known(acc.shape()),
                    &crate::ir::Shape::known(b.shape()),
                )
                .map_err(|e| fail(self, node, e))?;
                s.to_known().unwrap_or_default()
            };
            acc = self.pair(node, &acc, b, &partial)?;
        }
        if inputs.len() == 1 {
            acc = acc.reshape(out)?;
        }
        Ok(vec![acc])
    }
}

fn import(cx: &ImportCx<'_>) -> Result<(Op, Vec<ValueId>)> {
    let kind = match cx.op_type() {
        "Sub" => BinaryKind::Sub,
        "Div" => BinaryKind::Div,
        "Pow" => BinaryKind::Pow,
        "Min" => BinaryKind::Min,
        "Max" => BinaryKind::Max,
        "Mod" if cx.attrs().flag("fmod", false)? => BinaryKind::Fmod,
        "Mod" => BinaryKind::Mod,
        other => return Err(cx.err(format!("{other} is not a broadcasting binary op"))),
    };
    let variadic = matches!(kind, BinaryKind::Min | BinaryKind::Max);
    let n = cx.input_count();
    if (variadic && n == 0) || (!variadic && n != 2) {
        return Err(cx.err(format!("has {n} inputs")));
    }
    let inputs = (0..n).map(|i| cx.input(i)).collect::<Result<Vec<_>>>()?;
    if kind == BinaryKind::Pow && cx.ty(inputs[1]).dtype != DType::F32 {
        return Err(cx.err(format!(
            "exponent of type {} is not supported (q8 reads f32 exponents)",
            cx.ty(inputs[1]).dtype
        )));
    }
    Ok((def(Binary { kind, inputs: n }), inputs))
}

/// The family's registry entries.
pub(super) const SPECS: &[OpSpec] = &[
    OpSpec::new("Sub", 7, import),
    OpSpec::new("Div", 7, import),
    OpSpec::new("Pow", 7, import),
    OpSpec::new("Min", 8, import),
    OpSpec::new("Max", 8, import),
    OpSpec::new("Mod", 10, import),
];
