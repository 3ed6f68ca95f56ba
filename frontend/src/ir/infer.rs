//! Type and shape inference: the output types of an op given its input types. Used when a
//! node is added, by the validator, and by the executor on concrete shapes at run time, so
//! the three can never disagree.

use std::sync::Arc;

use super::dtype::DType;
use super::op::{Conv, Op, ReshapeDim};
use super::shape::{Dim, MAX_ELEMENTS, Shape};
use super::window::{Padding, Window2d};
use crate::error::{Error, Result};

/// Element type and shape of a value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValueType {
    /// Element type.
    pub dtype: DType,
    /// Shape.
    pub shape: Shape,
}

impl ValueType {
    /// A type from its parts.
    pub fn new(dtype: DType, shape: Shape) -> ValueType {
        ValueType { dtype, shape }
    }
}

/// Output types of `op` (node `node`) for the given input types.
///
/// # Errors
/// [`Error::Node`] naming the op, the node and the mismatch (rank, dtype, channels, ...).
pub fn infer(op: &Op, node: &str, inputs: &[&ValueType]) -> Result<Vec<ValueType>> {
    if let Op::Def(d) = op {
        return d.infer(node, inputs);
    }
    let fail = |msg: String| Error::node(op.name(), node, msg);
    let (lo, hi) = op.arity();
    if inputs.len() < lo || inputs.len() > hi {
        return Err(fail(format!(
            "expects {lo}..={} inputs, got {}",
            hi.min(99),
            inputs.len()
        )));
    }
    let x = inputs[0];
    let expect_f32 = |i: usize| -> Result<()> {
        if inputs[i].dtype != DType::F32 {
            return Err(fail(format!(
                "input {i} must be f32, got {}",
                inputs[i].dtype
            )));
        }
        Ok(())
    };
    let rank = |i: usize, r: usize| -> Result<()> {
        if inputs[i].shape.rank() != r {
            return Err(fail(format!(
                "input {i} must have rank {r}, got shape {}",
                inputs[i].shape
            )));
        }
        Ok(())
    };
    let same = |shape: Shape| Ok(vec![ValueType::new(DType::F32, shape)]);
    match op {
        Op::Conv(conv) => {
            for i in 0..inputs.len() {
                expect_f32(i)?;
            }
            same(conv_shape(conv, inputs).map_err(fail)?)
        }
        Op::MaxPool(pool) | Op::AveragePool { pool, .. } => {
            expect_f32(0)?;
            rank(0, 4)?;
            let (oh, ow) = window_out(&pool.window, [&x.shape.0[2], &x.shape.0[3]], pool.ceil_mode)
                .map_err(fail)?;
            same(Shape(vec![
                x.shape.0[0].clone(),
                x.shape.0[1].clone(),
                oh,
                ow,
            ]))
        }
        Op::GlobalAveragePool => {
            expect_f32(0)?;
            rank(0, 4)?;
            same(Shape(vec![
                x.shape.0[0].clone(),
                x.shape.0[1].clone(),
                Dim::Known(1),
                Dim::Known(1),
            ]))
        }
        Op::ReduceMean { axes, keepdims } => {
            expect_f32(0)?;
            rank(0, 4)?;
            if axes != &[2, 3] {
                return Err(fail(format!(
                    "only the spatial axes [2, 3] can be reduced, got {axes:?}"
                )));
            }
            let mut dims = vec![x.shape.0[0].clone(), x.shape.0[1].clone()];
            if *keepdims {
                dims.extend([Dim::Known(1), Dim::Known(1)]);
            }
            same(Shape(dims))
        }
        Op::Gemm(gemm) => {
            for i in 0..inputs.len() {
                expect_f32(i)?;
            }
            rank(0, 2)?;
            rank(1, 2)?;
            let a = &x.shape.0;
            let b = &inputs[1].shape.0;
            let (m, ka) = if gemm.trans_a {
                (&a[1], &a[0])
            } else {
                (&a[0], &a[1])
            };
            let (kb, n) = if gemm.trans_b {
                (&b[1], &b[0])
            } else {
                (&b[0], &b[1])
            };
            check_equal(ka, kb).map_err(|_| {
                fail(format!(
                    "inner dimensions differ: A {} vs B {}",
                    x.shape, inputs[1].shape
                ))
            })?;
            let out = Shape(vec![m.clone(), n.clone()]);
            if inputs.len() == 3 {
                let c = broadcast(&inputs[2].shape, &out).map_err(fail)?;
                if c != out {
                    return Err(fail(format!(
                        "C of shape {} does not broadcast to {out}",
                        inputs[2].shape
                    )));
                }
            }
            same(out)
        }
        Op::MatMul => {
            expect_f32(0)?;
            expect_f32(1)?;
            rank(1, 2)?;
            if x.shape.rank() < 2 {
                return Err(fail(format!("A must have rank >= 2, got {}", x.shape)));
            }
            let b = &inputs[1].shape.0;
            let mut dims = x.shape.0.clone();
            let k = dims.pop().unwrap_or(Dim::Known(0));
            check_equal(&k, &b[0]).map_err(|_| {
                fail(format!(
                    "inner dimensions differ: A {} vs B {}",
                    x.shape, inputs[1].shape
                ))
            })?;
            dims.push(b[1].clone());
            same(Shape(dims))
        }
        Op::BatchNorm { .. } => {
            for i in 0..5 {
                expect_f32(i)?;
            }
            if x.shape.rank() < 2 {
                return Err(fail(format!("input must have rank >= 2, got {}", x.shape)));
            }
            for (i, p) in inputs.iter().enumerate().skip(1) {
                if p.shape.rank() != 1 {
                    return Err(fail(format!(
                        "parameter {i} must have rank 1, got {}",
                        p.shape
                    )));
                }
                check_equal(&p.shape.0[0], &x.shape.0[1]).map_err(|_| {
                    fail(format!(
                        "parameter {i} of shape {} does not match {} channels",
                        p.shape, x.shape.0[1]
                    ))
                })?;
            }
            same(x.shape.clone())
        }
        Op::Relu | Op::Clip { .. } | Op::HardSwish | Op::Sigmoid => {
            expect_f32(0)?;
            same(x.shape.clone())
        }
        Op::Identity => Ok(vec![x.clone()]),
        Op::Add | Op::Mul => {
            expect_f32(0)?;
            expect_f32(1)?;
            same(broadcast(&x.shape, &inputs[1].shape).map_err(fail)?)
        }
        Op::Flatten { axis } => {
            if *axis > x.shape.rank() {
                return Err(fail(format!(
                    "axis {axis} out of range for shape {}",
                    x.shape
                )));
            }
            let outer = product(&x.shape.0[..*axis]).map_err(fail)?;
            let inner = product(&x.shape.0[*axis..]).map_err(fail)?;
            Ok(vec![ValueType::new(x.dtype, Shape(vec![outer, inner]))])
        }
        Op::Reshape { target } => Ok(vec![ValueType::new(
            x.dtype,
            reshape(&x.shape, target).map_err(fail)?,
        )]),
        Op::Concat { axis } => {
            let r = x.shape.rank();
            if *axis >= r {
                return Err(fail(format!(
                    "axis {axis} out of range for shape {}",
                    x.shape
                )));
            }
            let mut along = Vec::with_capacity(inputs.len());
            for (i, t) in inputs.iter().enumerate() {
                if t.dtype != x.dtype || t.shape.rank() != r {
                    return Err(fail(format!(
                        "input {i} ({} {}) differs in dtype or rank from input 0 ({} {})",
                        t.dtype, t.shape, x.dtype, x.shape
                    )));
                }
                for d in 0..r {
                    if d != *axis {
                        check_equal(&t.shape.0[d], &x.shape.0[d]).map_err(|_| {
                            fail(format!(
                                "input {i} of shape {} differs from input 0 {} off axis {axis}",
                                t.shape, x.shape
                            ))
                        })?;
                    }
                }
                along.push(t.shape.0[*axis].clone());
            }
            let mut dims = x.shape.0.clone();
            dims[*axis] = sum(&along).map_err(fail)?;
            Ok(vec![ValueType::new(x.dtype, Shape(dims))])
        }
        Op::QuantizeLinear(q) => {
            expect_f32(0)?;
            if !matches!(q.dtype, DType::U8 | DType::I8) {
                return Err(fail(format!(
                    "quantized type must be u8 or i8, got {}",
                    q.dtype
                )));
            }
            check_qspec(q, &x.shape).map_err(fail)?;
            Ok(vec![ValueType::new(q.dtype, x.shape.clone())])
        }
        Op::DequantizeLinear(q) => {
            if x.dtype != q.dtype || !matches!(q.dtype, DType::U8 | DType::I8 | DType::I32) {
                return Err(fail(format!(
                    "input is {} but the parameters are for {}",
                    x.dtype, q.dtype
                )));
            }
            check_qspec(q, &x.shape).map_err(fail)?;
            same(x.shape.clone())
        }
        Op::Def(d) => d.infer(node, inputs),
    }
}

fn check_qspec(q: &super::op::QuantSpec, shape: &Shape) -> std::result::Result<(), String> {
    let (lo, hi) = q.range();
    if q.scales.is_empty() || q.scales.len() != q.zero_points.len() {
        return Err(format!(
            "{} scales and {} zero points",
            q.scales.len(),
            q.zero_points.len()
        ));
    }
    if let Some(bad) = q.scales.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
        return Err(format!("scale {bad} must be finite and > 0"));
    }
    if let Some(bad) = q.zero_points.iter().find(|z| **z < lo || **z > hi) {
        return Err(format!(
            "zero point {bad} outside [{lo}, {hi}] of {}",
            q.dtype
        ));
    }
    match q.axis {
        None if q.scales.len() != 1 => Err(format!(
            "{} scales for a per-tensor quantization",
            q.scales.len()
        )),
        Some(a) if a >= shape.rank() => Err(format!("axis {a} out of range for shape {shape}")),
        Some(a) => match shape.0[a] {
            Dim::Known(n) if n != q.scales.len() => Err(format!(
                "{} scales for axis {a} of size {n}",
                q.scales.len()
            )),
            _ => Ok(()),
        },
        None => Ok(()),
    }
}

fn check_equal(a: &Dim, b: &Dim) -> std::result::Result<(), ()> {
    match (a, b) {
        (Dim::Known(x), Dim::Known(y)) if x != y => Err(()),
        _ => Ok(()),
    }
}

/// Output spatial dims of a window op on an NCHW shape.
/// Output shape of a Conv: `[N, OC, OH, OW]` for a 2-D conv (`x` and `w` of rank 4), or
/// `[N, OC, OL]` for a 1-D conv (rank 3: the window is `1 x k` over `H = 1`).
fn conv_shape(conv: &Conv, inputs: &[&ValueType]) -> std::result::Result<Shape, String> {
    let x = &inputs[0].shape;
    let rank = x.rank();
    if rank != 3 && rank != 4 {
        return Err(format!("input must have rank 3 or 4, got shape {x}"));
    }
    if inputs[1].shape.rank() != rank {
        return Err(format!(
            "weight shape {} must have rank {rank} like the input {x}",
            inputs[1].shape
        ));
    }
    let w = inputs[1]
        .shape
        .to_known()
        .ok_or("weight shape must be known")?;
    let g = conv.groups;
    if g == 0 || w[0] % g != 0 {
        return Err(format!(
            "{} output channels not divisible by group {g}",
            w[0]
        ));
    }
    let window = &conv.window;
    let kernel = if rank == 3 { [1, w[2]] } else { [w[2], w[3]] };
    if kernel != window.kernel {
        return Err(format!(
            "kernel_shape {:?} differs from weight shape {w:?}",
            window.kernel
        ));
    }
    let flat_h = match &window.padding {
        Padding::Explicit { begin, end } => begin[0] == 0 && end[0] == 0,
        _ => true,
    };
    if rank == 3 && (window.strides[0] != 1 || window.dilations[0] != 1 || !flat_h) {
        return Err(format!(
            "a 1-D conv's window must be 1 x k over H = 1, got {window:?}"
        ));
    }
    if let Dim::Known(c) = x.0[1]
        && c != w[1] * g
    {
        return Err(format!(
            "input has {c} channels but weight {w:?} with group {g} expects {}",
            w[1] * g
        ));
    }
    if inputs.len() == 3 && inputs[2].shape != Shape::known(&[w[0]]) {
        return Err(format!("bias shape {} must be [{}]", inputs[2].shape, w[0]));
    }
    let (n, oc) = (x.0[0].clone(), Dim::Known(w[0]));
    if rank == 3 {
        let (_, ol) = window_out(window, [&Dim::Known(1), &x.0[2]], false)?;
        return Ok(Shape(vec![n, oc, ol]));
    }
    let (oh, ow) = window_out(window, [&x.0[2], &x.0[3]], false)?;
    Ok(Shape(vec![n, oc, oh, ow]))
}

fn window_out(
    w: &Window2d,
    [h, wd]: [&Dim; 2],
    ceil: bool,
) -> std::result::Result<(Dim, Dim), String> {
    w.check()?;
    match (h, wd) {
        (Dim::Known(h), Dim::Known(wd)) => {
            let r = w.resolve([*h, *wd], ceil)?;
            Ok((Dim::Known(r.output[0]), Dim::Known(r.output[1])))
        }
        (h, wd) => Ok((derived(&format!("{h}'")), derived(&format!("{wd}'")))),
    }
}

fn derived(name: &str) -> Dim {
    Dim::Sym(Arc::from(name))
}

/// Numpy (multidirectional) broadcasting of two shapes.
pub fn broadcast(a: &Shape, b: &Shape) -> std::result::Result<Shape, String> {
    let r = a.rank().max(b.rank());
    let mut out = Vec::with_capacity(r);
    for i in 0..r {
        let da = if i + a.rank() >= r {
            &a.0[i + a.rank() - r]
        } else {
            &Dim::Known(1)
        };
        let db = if i + b.rank() >= r {
            &b.0[i + b.rank() - r]
        } else {
            &Dim::Known(1)
        };
        out.push(match (da, db) {
            (Dim::Known(1), d) | (d, Dim::Known(1)) => d.clone(),
            (Dim::Known(x), Dim::Known(y)) if x != y => {
                return Err(format!("shapes {a} and {b} do not broadcast"));
            }
            (Dim::Known(x), _) | (_, Dim::Known(x)) => Dim::Known(*x),
            (s, _) => s.clone(),
        });
    }
    Ok(Shape(out))
}

/// Split of a dims list into its known product and its symbols.
fn factor(dims: &[Dim]) -> std::result::Result<(usize, Vec<Arc<str>>), String> {
    let mut known = 1usize;
    let mut syms = Vec::new();
    for d in dims {
        match d {
            Dim::Known(n) => {
                known = known
                    .checked_mul(*n)
                    .filter(|&k| k <= MAX_ELEMENTS)
                    .ok_or_else(|| format!("element count exceeds {MAX_ELEMENTS}"))?;
            }
            Dim::Sym(s) => syms.push(s.clone()),
        }
    }
    Ok((known, syms))
}

fn from_factors(known: usize, syms: &[Arc<str>]) -> Dim {
    match (known, syms) {
        (k, []) => Dim::Known(k),
        (1, [s]) => Dim::Sym(s.clone()),
        (k, s) => {
            let mut parts: Vec<String> = s.iter().map(|x| x.to_string()).collect();
            if k != 1 {
                parts.push(k.to_string());
            }
            derived(&parts.join("*"))
        }
    }
}

fn product(dims: &[Dim]) -> std::result::Result<Dim, String> {
    let (k, s) = factor(dims)?;
    Ok(from_factors(k, &s))
}

fn sum(dims: &[Dim]) -> std::result::Result<Dim, String> {
    if let Some(known) = dims.iter().map(Dim::known).collect::<Option<Vec<usize>>>() {
        let total = known
            .iter()
            .try_fold(0usize, |a, &b| a.checked_add(b))
            .filter(|&t| t <= MAX_ELEMENTS)
            .ok_or_else(|| format!("sum of sizes exceeds {MAX_ELEMENTS}"))?;
        return Ok(Dim::Known(total));
    }
    let parts: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    Ok(derived(&parts.join("+")))
}

fn reshape(input: &Shape, target: &[ReshapeDim]) -> std::result::Result<Shape, String> {
    if target.iter().filter(|t| **t == ReshapeDim::Infer).count() > 1 {
        return Err("more than one inferred (-1) dimension".into());
    }
    let mut dims: Vec<Option<Dim>> = Vec::with_capacity(target.len());
    for t in target {
        dims.push(match t {
            ReshapeDim::Fixed(n) => Some(Dim::Known(*n)),
            ReshapeDim::CopyInput(a) => Some(input.0.get(*a).cloned().ok_or_else(|| {
                format!("target copies axis {a} of a rank-{} input", input.rank())
            })?),
            ReshapeDim::Infer => None,
        });
    }
    let (in_known, mut in_syms) = factor(&input.0)?;
    let fixed: Vec<Dim> = dims.iter().flatten().cloned().collect();
    let (t_known, t_syms) = factor(&fixed)?;
    for s in &t_syms {
        match in_syms.iter().position(|x| x == s) {
            Some(p) => {
                in_syms.remove(p);
            }
            None if dims.iter().all(Option::is_some) => {}
            None => {
                return Err(format!(
                    "cannot infer a dimension of {input} reshaped with symbol {s}"
                ));
            }
        }
    }
    let mismatch = || format!("cannot reshape {input} to {target:?}: element counts differ");
    if let Some(slot) = dims.iter().position(Option::is_none) {
        if t_known != 0 && !in_syms.is_empty() && in_known % t_known != 0 {
            // A product of run-time dims (e.g. `batch*2`) the symbols do not factor: the
            // inferred size is known at run time, where the element counts are checked.
            dims[slot] = Some(derived(&format!("{input}/{t_known}")));
            return Ok(Shape(dims.into_iter().flatten().collect()));
        }
        if t_known == 0 || in_known % t_known != 0 {
            return Err(mismatch());
        }
        dims[slot] = Some(from_factors(in_known / t_known, &in_syms));
    } else if in_syms.is_empty() && t_syms.is_empty() && in_known != t_known {
        return Err(mismatch());
    }
    Ok(Shape(dims.into_iter().flatten().collect()))
}
