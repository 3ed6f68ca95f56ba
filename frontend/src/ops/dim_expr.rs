//! Integers computed from input shapes: what a shape sub-graph (`Shape -> Gather -> Sub ->
//! Concat`) folds to at import when it involves run-time dims. An op holding a [`DimExpr`]
//! takes the graph inputs whose dims it reads as extra node inputs and evaluates the
//! expression on their shapes, symbolically at inference and concretely at run time.

use std::fmt;

use crate::ir::{Dim, Shape};

/// Integer arithmetic of ONNX `Add`, `Sub`, `Mul`, `Div` (truncating toward zero).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArithOp {
    /// `a + b`.
    Add,
    /// `a - b`.
    Sub,
    /// `a * b`.
    Mul,
    /// `a / b`, truncated toward zero.
    Div,
}

impl ArithOp {
    /// The op of an ONNX op type, if it is one of the four.
    pub fn from_onnx(op_type: &str) -> Option<ArithOp> {
        Some(match op_type {
            "Add" => ArithOp::Add,
            "Sub" => ArithOp::Sub,
            "Mul" => ArithOp::Mul,
            "Div" => ArithOp::Div,
            _ => return None,
        })
    }

    /// `a op b`; `None` on overflow or division by zero.
    pub fn apply(self, a: i64, b: i64) -> Option<i64> {
        match self {
            ArithOp::Add => a.checked_add(b),
            ArithOp::Sub => a.checked_sub(b),
            ArithOp::Mul => a.checked_mul(b),
            ArithOp::Div => a.checked_div(b),
        }
    }

    /// The operator's sign (`+`, `-`, `*`, `/`).
    pub fn sign(self) -> char {
        match self {
            ArithOp::Add => '+',
            ArithOp::Sub => '-',
            ArithOp::Mul => '*',
            ArithOp::Div => '/',
        }
    }
}

/// An integer known at import or computed from the shapes of the op's inputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DimExpr {
    /// A known value.
    Known(i64),
    /// The size of `axis` of node input `input`.
    Dim {
        /// Node input index.
        input: usize,
        /// Axis of that input.
        axis: usize,
    },
    /// `a op b`.
    Op(ArithOp, Box<DimExpr>, Box<DimExpr>),
}

/// The value of a [`DimExpr`] for some input shapes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DimValue {
    /// Known now.
    Known(i64),
    /// Depends on a run-time dim; the text names it (used for derived symbolic dims).
    Sym(String),
}

impl fmt::Display for DimValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DimValue::Known(k) => write!(f, "{k}"),
            DimValue::Sym(s) => f.write_str(s),
        }
    }
}

impl DimExpr {
    /// Evaluates on the node's input shapes.
    ///
    /// # Errors
    /// A message when an input or axis is missing, or the arithmetic overflows or divides
    /// by zero.
    pub fn eval(&self, shapes: &[&Shape]) -> Result<DimValue, String> {
        Ok(match self {
            DimExpr::Known(k) => DimValue::Known(*k),
            DimExpr::Dim { input, axis } => {
                match shapes.get(*input).and_then(|s| s.dims().get(*axis)) {
                    Some(Dim::Known(n)) => DimValue::Known(*n as i64),
                    Some(Dim::Sym(s)) => DimValue::Sym(s.to_string()),
                    None => return Err(format!("input {input} has no axis {axis}")),
                }
            }
            DimExpr::Op(op, a, b) => match (a.eval(shapes)?, b.eval(shapes)?) {
                (DimValue::Known(x), DimValue::Known(y)) => {
                    DimValue::Known(op.apply(x, y).ok_or_else(|| {
                        format!("{x} {} {y} overflows or divides by 0", op.sign())
                    })?)
                }
                (x, y) => DimValue::Sym(format!("({x}{}{y})", op.sign())),
            },
        })
    }

    /// The value when it needs no input shape.
    pub fn known(&self) -> Option<i64> {
        self.eval(&[]).ok().and_then(|v| match v {
            DimValue::Known(k) => Some(k),
            DimValue::Sym(_) => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluates_symbolically_and_concretely() {
        let e = DimExpr::Op(
            ArithOp::Sub,
            Box::new(DimExpr::Known(16)),
            Box::new(DimExpr::Dim { input: 1, axis: 2 }),
        );
        let x = Shape(vec![Dim::Known(1)]);
        let sym = Shape(vec![Dim::Known(1), Dim::Known(3), Dim::sym("L")]);
        assert_eq!(e.eval(&[&x, &sym]), Ok(DimValue::Sym("(16-L)".into())));
        let known = Shape::known(&[1, 3, 5]);
        assert_eq!(e.eval(&[&x, &known]), Ok(DimValue::Known(11)));
        assert!(e.eval(&[&x]).is_err());
        assert_eq!(e.known(), None);
        let div = DimExpr::Op(
            ArithOp::Div,
            Box::new(DimExpr::Known(-7)),
            Box::new(DimExpr::Known(2)),
        );
        assert_eq!(div.known(), Some(-3));
        let zero = DimExpr::Op(ArithOp::Div, Box::new(div), Box::new(DimExpr::Known(0)));
        assert!(zero.eval(&[]).is_err());
    }
}
