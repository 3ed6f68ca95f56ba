//! Element-wise ops: activations, numpy-broadcast Add/Mul, per-channel scale/shift
//! (BatchNorm), all f32.

use crate::ir::Op;

/// Applies a unary activation in place.
pub(crate) fn unary(op: &Op, v: &mut [f32]) {
    match op {
        Op::Relu => v.iter_mut().for_each(|x| *x = x.max(0.0)),
        Op::Clip { min, max } => v.iter_mut().for_each(|x| *x = x.max(*min).min(*max)),
        Op::HardSwish => v
            .iter_mut()
            .for_each(|x| *x *= (*x + 3.0).clamp(0.0, 6.0) / 6.0),
        Op::Sigmoid => v.iter_mut().for_each(|x| *x = 1.0 / (1.0 + (-*x).exp())),
        _ => {}
    }
}

/// `y = x * scale[c] + shift[c]` in place, channel `c` = axis 1 of `[N, C, inner]`.
pub(crate) fn scale_shift(
    v: &mut [f32],
    channels: usize,
    inner: usize,
    scale: &[f32],
    shift: &[f32],
) {
    for (i, chunk) in v.chunks_exact_mut(inner.max(1)).enumerate() {
        let c = i % channels;
        let (s, t) = (scale[c], shift[c]);
        chunk.iter_mut().for_each(|x| *x = *x * s + t);
    }
}

/// Row-major strides of `shape` aligned to rank `rank`, with 0 on broadcast axes.
fn broadcast_strides(shape: &[usize], rank: usize) -> Vec<usize> {
    let mut strides = vec![0; rank];
    let mut s = 1;
    for (i, &d) in shape.iter().enumerate().rev() {
        let axis = rank - shape.len() + i;
        strides[axis] = if d == 1 { 0 } else { s };
        s *= d;
    }
    strides
}

/// `out = f(a, b)` with numpy broadcasting to `out_shape` (the shapes must broadcast to
/// it and the slices hold their shapes' element counts). The innermost axis runs as a plain
/// slice loop (both operands contiguous, or one of them a repeated scalar), which the
/// compiler vectorizes when `f` is simple.
pub(crate) fn binary<A: Copy, B: Copy, O>(
    a: &[A],
    a_shape: &[usize],
    b: &[B],
    b_shape: &[usize],
    out_shape: &[usize],
    out: &mut [O],
    f: impl Fn(A, B) -> O + Copy,
) {
    if a_shape == out_shape && b_shape == out_shape {
        row(a, 1, b, 1, out, f);
        return;
    }
    if b.len() == 1 && a_shape == out_shape {
        row(a, 1, b, 0, out, f);
        return;
    }
    let rank = out_shape.len();
    let (sa, sb) = (
        broadcast_strides(a_shape, rank),
        broadcast_strides(b_shape, rank),
    );
    let inner = out_shape.last().copied().unwrap_or(1).max(1);
    let (la, lb) = if rank > 0 {
        (sa[rank - 1], sb[rank - 1])
    } else {
        (0, 0)
    };
    let mut index = vec![0usize; rank];
    for out_row in out.chunks_exact_mut(inner) {
        let (mut ia, mut ib) = (0, 0);
        for d in 0..rank.saturating_sub(1) {
            ia += index[d] * sa[d];
            ib += index[d] * sb[d];
        }
        row(&a[ia..], la, &b[ib..], lb, out_row, f);
        for d in (0..rank.saturating_sub(1)).rev() {
            index[d] += 1;
            if index[d] < out_shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
}

/// `out[j] = f(a[j * la], b[j * lb])` for the unit strides `la`, `lb` in {0, 1} (0: the
/// operand's first element repeats), each case a loop over slices.
#[inline(always)]
fn row<A: Copy, B: Copy, O>(
    a: &[A],
    la: usize,
    b: &[B],
    lb: usize,
    out: &mut [O],
    f: impl Fn(A, B) -> O,
) {
    let n = out.len();
    match (la, lb) {
        (0, 0) => out.iter_mut().for_each(|o| *o = f(a[0], b[0])),
        (0, _) => {
            let x = a[0];
            out.iter_mut().zip(&b[..n]).for_each(|(o, &y)| *o = f(x, y));
        }
        (_, 0) => {
            let y = b[0];
            out.iter_mut().zip(&a[..n]).for_each(|(o, &x)| *o = f(x, y));
        }
        _ => out
            .iter_mut()
            .zip(a[..n].iter().zip(&b[..n]))
            .for_each(|(o, (&x, &y))| *o = f(x, y)),
    }
}

/// `a = f(a, b)` in place when `a` already has the output shape.
pub(crate) fn binary_in_place(
    a: &mut [f32],
    shape: &[usize],
    b: &[f32],
    b_shape: &[usize],
    f: impl Fn(f32, f32) -> f32 + Copy,
) {
    if b_shape == shape {
        a.iter_mut().zip(b).for_each(|(x, &y)| *x = f(*x, y));
    } else if b.len() == 1 {
        let y = b[0];
        a.iter_mut().for_each(|x| *x = f(*x, y));
    } else {
        let copy = a.to_vec();
        binary(&copy, shape, b, b_shape, shape, a, f);
    }
}
