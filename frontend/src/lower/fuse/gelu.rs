//! The exact GELU as PyTorch exports it after a linear layer,
//! `Mul(Mul(v, Add(Erf(Div(v, √2)), 1)), 0.5)`, recognized so the linear's epilogue applies
//! it ([`q8_kernels::Activation::Gelu`]) instead of five fp32 fallback steps.
//!
//! The fused form computes `0.5 · v · (1 + erf(v / √2))` with the same `erf` and the same
//! f32 constants, so it gives the bits of the five nodes (multiplying by 0.5 first or last
//! is the same exact halving), except where `v · (1 + erf)` overflows or `v` is subnormal.

use super::Matcher;
use crate::ir::{NodeId, Op, ValueId};
use crate::ops::{Binary, BinaryKind, Unary, UnaryKind};

impl Matcher<'_> {
    /// The five nodes of the decomposed GELU reading `v` and the value they compute.
    pub(super) fn decomposed_gelu(&self, v: ValueId) -> Option<(Vec<NodeId>, ValueId)> {
        let users = self.users.get(&v)?;
        if users.len() != 2
            || self.g.is_output(v)
            || users.iter().any(|u| self.claimed.contains_key(u))
        {
            return None;
        }
        let is_div = |&id: &NodeId| {
            let n = self.node(id);
            let div = matches!(&n.op, Op::Def(d)
                if d.downcast::<Binary>().is_some_and(|b| b.kind == BinaryKind::Div));
            div && n.inputs.first() == Some(&v)
                && self.scalar(n.inputs[1]) == Some(std::f32::consts::SQRT_2)
        };
        let div = *users.iter().find(|u| is_div(u))?;
        let mul = *users.iter().find(|&&u| u != div)?;
        let erf = self.sole_consumer(self.node(div).outputs[0])?;
        let is_erf = matches!(&self.node(erf).op, Op::Def(d)
            if d.downcast::<Unary>().is_some_and(|u| u.0 == UnaryKind::Erf));
        let add = self.sole_consumer(self.node(erf).outputs[0])?;
        let one_plus = self.scalar_operand(add, Op::Add, self.node(erf).outputs[0]) == Some(1.0);
        let a = self.node(add).outputs[0];
        let product = self.sole_consumer(a) == Some(mul)
            && matches!(self.node(mul).op, Op::Mul)
            && self.node(mul).inputs.contains(&v)
            && self.node(mul).inputs.contains(&a);
        let half = self.sole_consumer(self.node(mul).outputs[0])?;
        let halved = self.scalar_operand(half, Op::Mul, self.node(mul).outputs[0]) == Some(0.5);
        let out = self.node(half).outputs[0];
        let same_shape = self.g.value(out).ty.shape == self.g.value(v).ty.shape;
        (is_erf && one_plus && product && halved && same_shape)
            .then(|| (vec![div, erf, add, mul, half], out))
    }

    /// The constant scalar that node `id` (of kind `op`) combines with `x`.
    pub(super) fn scalar_operand(&self, id: NodeId, op: Op, x: ValueId) -> Option<f32> {
        let n = self.node(id);
        if std::mem::discriminant(&n.op) != std::mem::discriminant(&op) || n.inputs.len() != 2 {
            return None;
        }
        let other = if n.inputs[0] == x {
            n.inputs[1]
        } else {
            n.inputs[0]
        };
        self.scalar(other)
    }

    /// The value of a constant f32 tensor with one element.
    pub(super) fn scalar(&self, v: ValueId) -> Option<f32> {
        match self.g.value(v).constant.as_ref()?.as_f32() {
            Some([x]) => Some(*x),
            _ => None,
        }
    }
}
