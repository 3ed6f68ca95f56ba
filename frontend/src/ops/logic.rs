//! Comparisons and boolean logic with numpy broadcasting: Equal, Greater, Less,
//! GreaterOrEqual, LessOrEqual (any one element type in, bool out; NaN compares false, and
//! unequal), And, Or, Xor, Not (bool), and Where (a bool condition choosing between two
//! values of any one element type).

use super::{OpDef, OpSpec, arity, broadcast_all, concrete, def, fail};
use crate::error::Result;
use crate::exec::eltwise;
use crate::ir::{DType, Op, Tensor, TensorData, ValueId, ValueType, broadcast};
use crate::onnx::ImportCx;

/// Which comparison or logical function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogicKind {
    /// `a == b`.
    Equal,
    /// `a > b`.
    Greater,
    /// `a < b`.
    Less,
    /// `a >= b`.
    GreaterOrEqual,
    /// `a <= b`.
    LessOrEqual,
    /// `a && b` (bool).
    And,
    /// `a || b` (bool).
    Or,
    /// `a != b` (bool).
    Xor,
}

impl LogicKind {
    /// True for the comparisons (numeric inputs); false for And / Or / Xor (bool inputs).
    fn compares(self) -> bool {
        !matches!(self, LogicKind::And | LogicKind::Or | LogicKind::Xor)
    }

    /// The comparison on two elements of one ordered type (false for the bool functions).
    fn compare<T: PartialOrd>(self, a: T, b: T) -> bool {
        match self {
            LogicKind::Equal => a == b,
            LogicKind::Greater => a > b,
            LogicKind::Less => a < b,
            LogicKind::GreaterOrEqual => a >= b,
            LogicKind::LessOrEqual => a <= b,
            LogicKind::And | LogicKind::Or | LogicKind::Xor => false,
        }
    }

    /// The function on two bools (Equal compares; the orderings are the comparisons of
    /// false < true).
    fn boolean(self, a: bool, b: bool) -> bool {
        match self {
            LogicKind::And => a && b,
            LogicKind::Or => a || b,
            LogicKind::Xor => a != b,
            _ => self.compare(a, b),
        }
    }
}

/// A broadcasting comparison or logical op with two inputs and a bool output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Logic(pub LogicKind);

impl OpDef for Logic {
    fn name(&self) -> &'static str {
        match self.0 {
            LogicKind::Equal => "Equal",
            LogicKind::Greater => "Greater",
            LogicKind::Less => "Less",
            LogicKind::GreaterOrEqual => "GreaterOrEqual",
            LogicKind::LessOrEqual => "LessOrEqual",
            LogicKind::And => "And",
            LogicKind::Or => "Or",
            LogicKind::Xor => "Xor",
        }
    }

    fn infer(&self, node: &str, inputs: &[&ValueType]) -> Result<Vec<ValueType>> {
        arity(self, node, inputs.len(), 2, 2)?;
        let dtype = inputs[0].dtype;
        if !self.0.compares() && dtype != DType::Bool {
            return Err(fail(
                self,
                node,
                format!("inputs must be bool, got {dtype}"),
            ));
        }
        let shape = broadcast_all(self, node, inputs, dtype)?;
        Ok(vec![ValueType::new(DType::Bool, shape)])
    }

    fn eval(&self, node: &str, inputs: &[&Tensor], outputs: &[ValueType]) -> Result<Vec<Tensor>> {
        let out = concrete(self, node, &outputs[0])?;
        let (a, b) = (inputs[0], inputs[1]);
        let mut y = vec![false; out.iter().product()];
        let kind = self.0;
        macro_rules! compare {
            ($($v:ident),*) => {
                match (a.data(), b.data()) {
                    $((TensorData::$v(x), TensorData::$v(z)) => eltwise::binary(
                        x, a.shape(), z, b.shape(), &out, &mut y, |p, q| kind.compare(p, q),
                    ),)*
                    (x, z) => {
                        return Err(fail(self, node, format!(
                            "inputs of types {} and {} are not supported",
                            x.dtype(),
                            z.dtype()
                        )));
                    }
                }
            };
        }
        if let (TensorData::Bool(x), TensorData::Bool(z)) = (a.data(), b.data()) {
            eltwise::binary(x, a.shape(), z, b.shape(), &out, &mut y, |p, q| {
                kind.boolean(p, q)
            });
        } else {
            compare!(F32, U8, I8, I32, I64);
        }
        Ok(vec![Tensor::from_bool(out, y)?])
    }
}

/// `Not(x)` of a bool tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Not;

impl OpDef for Not {
    fn name(&self) -> &'static str {
        "Not"
    }

    fn infer(&self, node: &str, inputs: &[&ValueType]) -> Result<Vec<ValueType>> {
        arity(self, node, inputs.len(), 1, 1)?;
        let shape = broadcast_all(self, node, inputs, DType::Bool)?;
        Ok(vec![ValueType::new(DType::Bool, shape)])
    }

    fn eval(&self, node: &str, inputs: &[&Tensor], outputs: &[ValueType]) -> Result<Vec<Tensor>> {
        let out = concrete(self, node, &outputs[0])?;
        let x = inputs[0]
            .as_bool()
            .ok_or_else(|| fail(self, node, "input must be a bool tensor"))?;
        Ok(vec![Tensor::from_bool(
            out,
            x.iter().map(|&b| !b).collect(),
        )?])
    }
}

/// `Where(cond, x, y)`: `x` where the bool `cond` holds, else `y`, all three broadcast.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Where;

/// `data` of `shape` broadcast to `out`.
fn spread<T: Copy + Default>(data: &[T], shape: &[usize], out: &[usize]) -> Vec<T> {
    let mut y = vec![T::default(); out.iter().product()];
    eltwise::binary(data, shape, &[()], &[], out, &mut y, |v, _| v);
    y
}

impl OpDef for Where {
    fn name(&self) -> &'static str {
        "Where"
    }

    fn infer(&self, node: &str, inputs: &[&ValueType]) -> Result<Vec<ValueType>> {
        arity(self, node, inputs.len(), 3, 3)?;
        let cond = broadcast_all(self, node, &inputs[..1], DType::Bool)?;
        let values = broadcast_all(self, node, &inputs[1..], inputs[1].dtype)?;
        let shape = broadcast(&cond, &values).map_err(|e| fail(self, node, e))?;
        Ok(vec![ValueType::new(inputs[1].dtype, shape)])
    }

    fn eval(&self, node: &str, inputs: &[&Tensor], outputs: &[ValueType]) -> Result<Vec<Tensor>> {
        let out = concrete(self, node, &outputs[0])?;
        let (c, x, y) = (inputs[0], inputs[1], inputs[2]);
        let cond = c
            .as_bool()
            .ok_or_else(|| fail(self, node, "condition must be a bool tensor"))?;
        let cond = spread(cond, c.shape(), &out);
        macro_rules! select {
            ($($v:ident),*) => {
                match (x.data(), y.data()) {
                    $((TensorData::$v(p), TensorData::$v(q)) => {
                        let (p, q) = (spread(p, x.shape(), &out), spread(q, y.shape(), &out));
                        TensorData::$v(
                            cond.iter().zip(p.into_iter().zip(q)).map(|(&k, (a, b))| if k { a } else { b }).collect(),
                        )
                    })*
                    (p, q) => {
                        return Err(fail(self, node, format!(
                            "values of types {} and {} differ",
                            p.dtype(),
                            q.dtype()
                        )));
                    }
                }
            };
        }
        let data = select!(F32, U8, I8, I32, I64, Bool);
        Ok(vec![Tensor::new(out, data)?])
    }
}

fn import(cx: &ImportCx<'_>) -> Result<(Op, Vec<ValueId>)> {
    let kind = match cx.op_type() {
        "Equal" => LogicKind::Equal,
        "Greater" => LogicKind::Greater,
        "Less" => LogicKind::Less,
        "GreaterOrEqual" => LogicKind::GreaterOrEqual,
        "LessOrEqual" => LogicKind::LessOrEqual,
        "And" => LogicKind::And,
        "Or" => LogicKind::Or,
        "Xor" => LogicKind::Xor,
        "Not" => return Ok((def(Not), vec![cx.input(0)?])),
        "Where" => {
            let inputs = (0..3).map(|i| cx.input(i)).collect::<Result<Vec<_>>>()?;
            return Ok((def(Where), inputs));
        }
        other => return Err(cx.err(format!("{other} is not a logic op"))),
    };
    if cx.input_count() != 2 {
        return Err(cx.err(format!("has {} inputs, expects 2", cx.input_count())));
    }
    Ok((def(Logic(kind)), vec![cx.input(0)?, cx.input(1)?]))
}

/// The family's registry entries.
pub(super) const SPECS: &[OpSpec] = &[
    OpSpec::new("Equal", 7, import),
    OpSpec::new("Greater", 7, import),
    OpSpec::new("Less", 7, import),
    OpSpec::new("GreaterOrEqual", 12, import),
    OpSpec::new("LessOrEqual", 12, import),
    OpSpec::new("And", 7, import),
    OpSpec::new("Or", 7, import),
    OpSpec::new("Xor", 7, import),
    OpSpec::new("Not", 1, import),
    OpSpec::new("Where", 9, import),
];
