//! One node's computation on concrete tensors.

use super::buffers::Buffers;
use super::conv::{ConvShape, conv2d};
use super::eltwise;
use super::matmul::{Operand, gemm};
use super::pool::{PoolKind, plane_mean, pool2d};
use super::qdq;
use crate::error::{Error, Result};
use crate::ir::{Op, Tensor, TensorData, ValueType};

/// A node input: borrowed, or owned when this node is its last reader (then ops may reuse
/// its buffer in place).
pub(crate) enum Arg<'a> {
    /// Still needed elsewhere.
    Borrowed(&'a Tensor),
    /// Dead after this node.
    Owned(Tensor),
}

impl Arg<'_> {
    pub fn tensor(&self) -> &Tensor {
        match self {
            Arg::Borrowed(t) => t,
            Arg::Owned(t) => t,
        }
    }

    /// The f32 data as an owned buffer (moved when owned, copied into a pooled buffer
    /// otherwise).
    fn into_f32(self, buffers: &mut Buffers) -> Option<Vec<f32>> {
        match self {
            Arg::Owned(t) => match t.into_parts().1 {
                TensorData::F32(v) => Some(v),
                _ => None,
            },
            Arg::Borrowed(t) => t.as_f32().map(|s| {
                let mut v = buffers.take(s.len());
                v.copy_from_slice(s);
                v
            }),
        }
    }
}

/// Execution settings shared by all nodes of a run.
pub(crate) struct Ctx<'a> {
    pub threads: usize,
    pub buffers: &'a mut Buffers,
}

fn f32_of<'t>(t: &'t Tensor, op: &Op, node: &str) -> Result<&'t [f32]> {
    t.as_f32().ok_or_else(|| {
        Error::node(
            op.name(),
            node,
            format!("expected an f32 input, got {}", t.dtype()),
        )
    })
}

/// Computes `op` on `args`; `outs` holds the output types already inferred from the
/// argument shapes (all dims known).
pub(crate) fn eval(
    op: &Op,
    node: &str,
    mut args: Vec<Arg<'_>>,
    outs: &[ValueType],
    ctx: &mut Ctx<'_>,
) -> Result<Vec<Tensor>> {
    let out = outs
        .first()
        .ok_or_else(|| Error::node(op.name(), node, "has no output type"))?;
    let out_shape = out
        .shape
        .to_known()
        .ok_or_else(|| Error::node(op.name(), node, "output shape is not concrete"))?;
    let numel: usize = out_shape.iter().product();
    let data: TensorData = match op {
        Op::Conv(conv) => {
            let x = args[0].tensor();
            let s = x.shape();
            // A 1-D conv's [N, C, L] is [N, C, 1, L] in memory.
            let in_hw = match s {
                [_, _, l] => [1, *l],
                _ => [s[2], s[3]],
            };
            let resolved = conv
                .window
                .resolve(in_hw, false)
                .map_err(|e| Error::node(op.name(), node, e))?;
            let w = f32_of(args[1].tensor(), op, node)?;
            let bias = match args.get(2) {
                Some(b) => Some(f32_of(b.tensor(), op, node)?),
                None => None,
            };
            let shape = ConvShape {
                batch: s[0],
                in_channels: s[1],
                in_hw,
                out_channels: out_shape[1],
                resolved,
            };
            let mut y = ctx.buffers.take(numel);
            conv2d(
                f32_of(x, op, node)?,
                w,
                bias,
                conv,
                &shape,
                &mut y,
                ctx.threads,
            );
            TensorData::F32(y)
        }
        Op::Gemm(g) => {
            let (a, b) = (args[0].tensor(), args[1].tensor());
            let lhs = Operand {
                data: f32_of(a, op, node)?,
                rows: a.shape()[0],
                cols: a.shape()[1],
                transposed: g.trans_a,
            };
            let rhs = Operand {
                data: f32_of(b, op, node)?,
                rows: b.shape()[0],
                cols: b.shape()[1],
                transposed: g.trans_b,
            };
            let mut y = ctx.buffers.take(numel);
            let with_c = args.len() == 3 && g.beta != 0.0;
            if with_c {
                let c = args[2].tensor();
                eltwise::binary(
                    &[0.0],
                    &[],
                    f32_of(c, op, node)?,
                    c.shape(),
                    &out_shape,
                    &mut y,
                    |_, c| c,
                );
                if g.beta != 1.0 {
                    y.iter_mut().for_each(|v| *v *= g.beta);
                }
            }
            gemm(&mut y, out_shape[1], lhs, rhs, g.alpha, with_c, ctx.threads);
            TensorData::F32(y)
        }
        Op::MatMul => {
            let (a, b) = (args[0].tensor(), args[1].tensor());
            let (k, n) = (b.shape()[0], b.shape()[1]);
            let m = a.len() / k.max(1);
            let mut y = ctx.buffers.take(numel);
            gemm(
                &mut y,
                n,
                Operand::new(f32_of(a, op, node)?, m, k),
                Operand::new(f32_of(b, op, node)?, k, n),
                1.0,
                false,
                ctx.threads,
            );
            TensorData::F32(y)
        }
        Op::BatchNorm { epsilon } => {
            let p: Vec<&[f32]> = args[1..]
                .iter()
                .map(|a| f32_of(a.tensor(), op, node))
                .collect::<Result<_>>()?;
            let (gamma, beta, mean, var) = (p[0], p[1], p[2], p[3]);
            let scale: Vec<f32> = gamma
                .iter()
                .zip(var)
                .map(|(g, v)| g / (v + epsilon).sqrt())
                .collect();
            let shift: Vec<f32> = beta
                .iter()
                .zip(mean)
                .zip(&scale)
                .map(|((b, m), s)| b - m * s)
                .collect();
            let channels = out_shape[1];
            let inner: usize = out_shape[2..].iter().product();
            let x = args.swap_remove(0);
            let mut y = x
                .into_f32(ctx.buffers)
                .ok_or_else(|| Error::node(op.name(), node, "expected f32 input"))?;
            eltwise::scale_shift(&mut y, channels, inner, &scale, &shift);
            TensorData::F32(y)
        }
        Op::Relu | Op::Clip { .. } | Op::HardSwish | Op::Sigmoid => {
            let x = args.swap_remove(0);
            let mut y = x
                .into_f32(ctx.buffers)
                .ok_or_else(|| Error::node(op.name(), node, "expected f32 input"))?;
            eltwise::unary(op, &mut y);
            TensorData::F32(y)
        }
        Op::Add => return add_or_mul(op, node, args, out_shape, ctx, |a, b| a + b),
        Op::Mul => return add_or_mul(op, node, args, out_shape, ctx, |a, b| a * b),
        Op::MaxPool(pool) | Op::AveragePool { pool, .. } => {
            let x = args[0].tensor();
            let s = x.shape();
            let r = pool
                .window
                .resolve([s[2], s[3]], pool.ceil_mode)
                .map_err(|e| Error::node(op.name(), node, e))?;
            let kind = match op {
                Op::AveragePool {
                    count_include_pad, ..
                } => PoolKind::Average {
                    count_include_pad: *count_include_pad,
                },
                _ => PoolKind::Max,
            };
            let mut y = ctx.buffers.take(numel);
            pool2d(
                f32_of(x, op, node)?,
                s[0] * s[1],
                [s[2], s[3]],
                pool,
                &r,
                kind,
                &mut y,
                ctx.threads,
            );
            TensorData::F32(y)
        }
        Op::GlobalAveragePool | Op::ReduceMean { .. } => {
            let x = args[0].tensor();
            let s = x.shape();
            let mut y = ctx.buffers.take(numel);
            plane_mean(f32_of(x, op, node)?, s[2] * s[3], &mut y);
            TensorData::F32(y)
        }
        Op::Flatten { .. } | Op::Reshape { .. } | Op::Identity => {
            let x = args.swap_remove(0);
            match x {
                Arg::Owned(t) => t.into_parts().1,
                Arg::Borrowed(t) => copy_data(t.data(), ctx.buffers),
            }
        }
        Op::Concat { axis } => {
            let outer: usize = out_shape[..*axis].iter().product();
            let mut parts: Vec<(usize, &Tensor)> = Vec::with_capacity(args.len());
            for a in &args {
                let t = a.tensor();
                parts.push((t.shape()[*axis..].iter().product(), t));
            }
            concat(&parts, outer, out.dtype, ctx.buffers)
                .ok_or_else(|| Error::node(op.name(), node, "inputs differ in element type"))?
        }
        Op::QuantizeLinear(spec) => qdq::quantize(
            f32_of(args[0].tensor(), op, node)?,
            args[0].tensor().shape(),
            spec,
        ),
        Op::DequantizeLinear(spec) => TensorData::F32(qdq::dequantize(
            args[0].tensor().data(),
            args[0].tensor().shape(),
            spec,
        )),
        Op::Def(d) => {
            let inputs: Vec<&Tensor> = args.iter().map(Arg::tensor).collect();
            let got = d.eval(node, &inputs, outs)?;
            let same = got.len() == outs.len()
                && got.iter().zip(outs).all(|(t, ty)| {
                    t.dtype() == ty.dtype && ty.shape.to_known().as_deref() == Some(t.shape())
                });
            if !same {
                return Err(Error::node(
                    op.name(),
                    node,
                    "computed outputs differ from the inferred types",
                ));
            }
            return Ok(got);
        }
    };
    Ok(vec![Tensor::new(out_shape, data)?])
}

/// Add or Mul (`f`) of two f32 tensors broadcast to `out_shape`, reusing a dying operand's
/// buffer when it already has the output shape (both ops commute, so which one does not
/// matter). Generic in `f` so the element loops inline and vectorize it.
fn add_or_mul(
    op: &Op,
    node: &str,
    mut args: Vec<Arg<'_>>,
    out_shape: Vec<usize>,
    ctx: &mut Ctx<'_>,
    f: impl Fn(f32, f32) -> f32 + Copy,
) -> Result<Vec<Tensor>> {
    let numel = out_shape.iter().product();
    let b_arg = args.pop().expect("arity checked");
    let a_arg = args.pop().expect("arity checked");
    let (a_shape, b_shape) = (
        a_arg.tensor().shape().to_vec(),
        b_arg.tensor().shape().to_vec(),
    );
    let (dst, other, other_shape) = match (a_arg, b_arg) {
        (Arg::Owned(a), b) if a_shape == out_shape => (a, b, b_shape),
        (a, Arg::Owned(b)) if b_shape == out_shape => (b, a, a_shape),
        (a, b) => {
            let mut y = ctx.buffers.take(numel);
            eltwise::binary(
                f32_of(a.tensor(), op, node)?,
                &a_shape,
                f32_of(b.tensor(), op, node)?,
                &b_shape,
                &out_shape,
                &mut y,
                f,
            );
            return Ok(vec![Tensor::new(out_shape, TensorData::F32(y))?]);
        }
    };
    let mut y = match dst.into_parts().1 {
        TensorData::F32(v) => v,
        _ => return Err(Error::node(op.name(), node, "expected f32 inputs")),
    };
    eltwise::binary_in_place(
        &mut y,
        &out_shape,
        f32_of(other.tensor(), op, node)?,
        &other_shape,
        f,
    );
    Ok(vec![Tensor::new(out_shape, TensorData::F32(y))?])
}

fn copy_data(d: &TensorData, buffers: &mut Buffers) -> TensorData {
    match d {
        TensorData::F32(v) => {
            let mut y = buffers.take(v.len());
            y.copy_from_slice(v);
            TensorData::F32(y)
        }
        other => other.clone(),
    }
}

/// Concatenates `(row length, tensor)` parts row by row over `outer` rows.
fn concat(
    parts: &[(usize, &Tensor)],
    outer: usize,
    dtype: crate::ir::DType,
    buffers: &mut Buffers,
) -> Option<TensorData> {
    macro_rules! cat {
        ($variant:ident, $init:expr) => {{
            let total: usize = parts.iter().map(|p| p.0).sum::<usize>() * outer;
            let mut y = $init(total);
            let mut at = 0;
            for row in 0..outer {
                for (len, t) in parts {
                    let TensorData::$variant(v) = t.data() else {
                        return None;
                    };
                    y[at..at + len].copy_from_slice(&v[row * len..(row + 1) * len]);
                    at += len;
                }
            }
            TensorData::$variant(y)
        }};
    }
    Some(match dtype {
        crate::ir::DType::F32 => cat!(F32, |n| buffers.take(n)),
        crate::ir::DType::U8 => cat!(U8, |n| vec![0u8; n]),
        crate::ir::DType::I8 => cat!(I8, |n| vec![0i8; n]),
        crate::ir::DType::I32 => cat!(I32, |n| vec![0i32; n]),
        crate::ir::DType::I64 => cat!(I64, |n| vec![0i64; n]),
        crate::ir::DType::Bool => cat!(Bool, |n| vec![false; n]),
    })
}
