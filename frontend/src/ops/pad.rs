//! `Pad` of any element type and rank: constant, reflect, edge and (opset 19) wrap modes;
//! negative pads crop. The pads are known at import, or computed from the input shapes by
//! a shape sub-graph over run-time dims (`Shape -> Gather -> Sub -> Concat -> Pad`), held
//! as [`DimExpr`]s: the node then also reads the graph inputs having those dims, and the
//! padded axes get derived symbolic dims until the shapes are known.
//!
//! Negative pads crop first; the positive pads then extend the cropped axis (reflect, edge
//! and wrap read the cropped data), as ONNX Runtime does.

use super::{AttrValue, Exported, OpDef, OpSpec, arity, concrete, def, fail};
use crate::error::Result;
use crate::ir::{
    DType, Dim, MAX_DIM, Op, Shape, Tensor, TensorData, ValueId, ValueType, checked_numel,
};
use crate::onnx::{ImportCx, normalize_index};
use crate::ops::dim_expr::{DimExpr, DimValue};

/// How `Pad` fills the new positions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PadMode {
    /// A constant value.
    Constant,
    /// The mirror image without the edge element (`[a b c] -> b | a b c | b`).
    Reflect,
    /// The edge element repeated.
    Edge,
    /// The axis repeated periodically (`[a b c] -> c | a b c | a`).
    Wrap,
}

impl PadMode {
    fn parse(s: &str) -> Option<PadMode> {
        Some(match s {
            "constant" => PadMode::Constant,
            "reflect" => PadMode::Reflect,
            "edge" => PadMode::Edge,
            "wrap" => PadMode::Wrap,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            PadMode::Constant => "constant",
            PadMode::Reflect => "reflect",
            PadMode::Edge => "edge",
            PadMode::Wrap => "wrap",
        }
    }
}

/// `Pad(data, pads, constant_value)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Pad {
    /// Fill rule.
    pub mode: PadMode,
    /// Per axis of the data, the `[begin, end]` amounts (negative crops), evaluated on the
    /// shapes of the node's inputs (input 0 is the data; inputs 1.. are the graph inputs
    /// having the run-time dims the expressions read).
    pub pads: Vec<[DimExpr; 2]>,
    /// Constant-mode fill: a scalar of the data's element type.
    pub value: Tensor,
}

/// One axis resolved for a concrete size: the kept (cropped) range and the growth.
struct AxisPad {
    /// First kept input index.
    start: usize,
    /// Kept length.
    kept: usize,
    /// Positions added before and after.
    grow: [usize; 2],
}

impl Pad {
    /// Checks the amounts `b`, `e` on axis `axis` of size `n` and resolves them.
    fn resolve(&self, node: &str, axis: usize, n: usize, b: i64, e: i64) -> Result<AxisPad> {
        let bad = |m: String| fail(self, node, format!("axis {axis} of size {n}: {m}"));
        let crop = |p: i64| usize::try_from(p.min(0).unsigned_abs()).unwrap_or(usize::MAX);
        let grow = |p: i64| usize::try_from(p.max(0)).unwrap_or(usize::MAX);
        let (cb, ce) = (crop(b), crop(e));
        let kept = n
            .checked_sub(cb)
            .and_then(|k| k.checked_sub(ce))
            .ok_or_else(|| bad(format!("pads {b}, {e} crop more than the axis")))?;
        let g = [grow(b), grow(e)];
        if g.iter().any(|&p| p > MAX_DIM) || kept + g[0] + g[1] > MAX_DIM {
            return Err(bad(format!("pads {b}, {e} exceed {MAX_DIM}")));
        }
        let most = g[0].max(g[1]);
        match self.mode {
            PadMode::Reflect if most > 0 && most >= kept => {
                return Err(bad(format!(
                    "a reflect pad of {most} needs more than {most} elements, the axis keeps {kept}"
                )));
            }
            PadMode::Edge | PadMode::Wrap if most > 0 && kept == 0 => {
                return Err(bad(format!(
                    "{} padding of an empty axis",
                    self.mode.name()
                )));
            }
            _ => {}
        }
        Ok(AxisPad {
            start: cb,
            kept,
            grow: g,
        })
    }

    /// The output dim of axis `axis` of size `d`.
    fn out_dim(&self, node: &str, axis: usize, d: &Dim, shapes: &[&Shape]) -> Result<Dim> {
        let [b, e] = &self.pads[axis];
        let ev = |x: &DimExpr| x.eval(shapes).map_err(|m| fail(self, node, m));
        Ok(match (d, ev(b)?, ev(e)?) {
            (Dim::Known(n), DimValue::Known(b), DimValue::Known(e)) => {
                let r = self.resolve(node, axis, *n, b, e)?;
                Dim::Known(r.kept + r.grow[0] + r.grow[1])
            }
            (d, DimValue::Known(0), DimValue::Known(0)) => d.clone(),
            (d, b, e) => Dim::sym(&format!("pad({d},{b},{e})")),
        })
    }

    /// The input index each output position of `r` reads (`None` = the constant).
    fn axis_map(&self, r: &AxisPad) -> Vec<Option<usize>> {
        let m = r.kept as i64;
        let len = r.kept + r.grow[0] + r.grow[1];
        (0..len)
            .map(|p| {
                let q = p as i64 - r.grow[0] as i64;
                let q = if (0..m).contains(&q) {
                    q
                } else {
                    match self.mode {
                        PadMode::Constant => return None,
                        PadMode::Edge => q.clamp(0, m - 1),
                        PadMode::Reflect if q < 0 => -q,
                        PadMode::Reflect => 2 * (m - 1) - q,
                        PadMode::Wrap => q.rem_euclid(m),
                    }
                };
                Some(r.start + q as usize)
            })
            .collect()
    }
}

impl OpDef for Pad {
    fn name(&self) -> &'static str {
        "Pad"
    }

    fn infer(&self, node: &str, inputs: &[&ValueType]) -> Result<Vec<ValueType>> {
        arity(self, node, inputs.len(), 1, usize::MAX)?;
        let x = inputs[0];
        if x.shape.rank() != self.pads.len() {
            return Err(fail(
                self,
                node,
                format!("{} pads for shape {}", 2 * self.pads.len(), x.shape),
            ));
        }
        if self.value.dtype() != x.dtype || !self.value.shape().is_empty() {
            return Err(fail(
                self,
                node,
                format!("the constant value must be a {} scalar", x.dtype),
            ));
        }
        let shapes: Vec<&Shape> = inputs.iter().map(|t| &t.shape).collect();
        let dims = x
            .shape
            .dims()
            .iter()
            .enumerate()
            .map(|(a, d)| self.out_dim(node, a, d, &shapes))
            .collect::<Result<Vec<_>>>()?;
        let shape = Shape(dims);
        if let Some(known) = shape.to_known() {
            checked_numel(&known).map_err(|e| fail(self, node, e.to_string()))?;
        }
        Ok(vec![ValueType::new(x.dtype, shape)])
    }

    fn eval(&self, node: &str, inputs: &[&Tensor], outputs: &[ValueType]) -> Result<Vec<Tensor>> {
        let out = concrete(self, node, &outputs[0])?;
        let x = inputs[0];
        if x.shape().len() != self.pads.len() {
            return Err(fail(self, node, "input rank differs from the pads"));
        }
        let owned: Vec<Shape> = inputs.iter().map(|t| Shape::known(t.shape())).collect();
        let shapes: Vec<&Shape> = owned.iter().collect();
        let mut maps = Vec::with_capacity(out.len());
        for (a, &n) in x.shape().iter().enumerate() {
            let known = |e: &DimExpr| match e.eval(&shapes) {
                Ok(DimValue::Known(v)) => Ok(v),
                Ok(DimValue::Sym(s)) => Err(fail(self, node, format!("pad {s} is not concrete"))),
                Err(m) => Err(fail(self, node, m)),
            };
            let r = self.resolve(
                node,
                a,
                n,
                known(&self.pads[a][0])?,
                known(&self.pads[a][1])?,
            )?;
            maps.push(self.axis_map(&r));
        }
        if maps.iter().map(Vec::len).ne(out.iter().copied()) {
            return Err(fail(self, node, "pads disagree with the inferred shape"));
        }
        let offsets = offsets(x.shape(), &maps);
        macro_rules! fill {
            ($($v:ident),*) => {
                match (x.data(), self.value.data()) {
                    $((TensorData::$v(d), TensorData::$v(c)) => TensorData::$v(
                        offsets.iter().map(|o| o.map_or(c[0], |i| d[i])).collect(),
                    ),)*
                    _ => return Err(fail(self, node, "the constant value's type differs from the data's")),
                }
            };
        }
        let data = fill!(F32, U8, I8, I32, I64, Bool);
        Ok(vec![Tensor::new(out, data)?])
    }

    fn export(&self, node: &str) -> Result<Exported> {
        let known = |e: &DimExpr| {
            e.known().ok_or_else(|| {
                fail(
                    self,
                    node,
                    "pads computed from run-time dimensions cannot be exported as a constant",
                )
            })
        };
        let mut pads = Vec::with_capacity(2 * self.pads.len());
        for side in 0..2 {
            for p in &self.pads {
                pads.push(known(&p[side])?);
            }
        }
        let len = pads.len();
        Ok(Exported {
            attrs: vec![("mode", AttrValue::Str(self.mode.name().into()))],
            operands: vec![
                Some(("pads", Tensor::from_i64(vec![len], pads)?)),
                Some(("value", self.value.clone())),
            ],
        })
    }
}

/// Input offsets (`None` = the constant) of the output walked in row-major order, output
/// axis `a` reading the input indices `maps[a]` of an input of shape `shape`.
fn offsets(shape: &[usize], maps: &[Vec<Option<usize>>]) -> Vec<Option<usize>> {
    let strides = super::layout::strides(shape);
    let mut out = vec![Some(0usize)];
    for (st, map) in strides.iter().zip(maps) {
        out = out
            .iter()
            .flat_map(|&base| {
                map.iter()
                    .map(move |&i| base.zip(i).map(|(b, i)| b + i * st))
            })
            .collect();
    }
    out
}

/// A scalar of element type `dtype` holding `v` (the ONNX < 11 `value` attribute).
fn scalar(dtype: DType, v: f32) -> Result<Tensor> {
    let t = Tensor::from_f32(vec![], vec![v])?;
    super::cast_tensor(&t, dtype)
        .ok_or_else(|| crate::error::Error::Graph(format!("cannot make a {dtype} constant of {v}")))
}

/// The constant value: input 2 (a one-element constant of the data's type) or zero.
fn constant_value(cx: &ImportCx<'_>, dtype: DType) -> Result<Tensor> {
    if cx.opset() < 11 {
        return scalar(dtype, cx.attrs().float("value", 0.0)).map_err(|e| cx.err(e.to_string()));
    }
    match cx.const_tensor(2)? {
        None => scalar(dtype, 0.0).map_err(|e| cx.err(e.to_string())),
        Some(t) if t.dtype() == dtype && t.len() == 1 => {
            Tensor::new(vec![], t.data().clone()).map_err(|e| cx.err(e.to_string()))
        }
        Some(t) => Err(cx.err(format!(
            "constant_value must be one {dtype} value, got {} of shape {:?}",
            t.dtype(),
            t.shape()
        ))),
    }
}

/// The axes the pads apply to (opset 18 `axes`, else all), normalized and distinct.
fn pad_axes(cx: &ImportCx<'_>, rank: usize) -> Result<Vec<usize>> {
    let Some(axes) = (if cx.opset() >= 18 {
        cx.const_ints(3)?
    } else {
        None
    }) else {
        return Ok((0..rank).collect());
    };
    let mut out = Vec::with_capacity(axes.len());
    for &a in &axes {
        let n = normalize_index(a, rank)
            .ok_or_else(|| cx.err(format!("axis {a} out of range for rank {rank}")))?;
        if out.contains(&n) {
            return Err(cx.err(format!("axes {axes:?} repeat axis {a}")));
        }
        out.push(n);
    }
    Ok(out)
}

fn import(cx: &ImportCx<'_>) -> Result<(Op, Vec<ValueId>)> {
    let x = cx.input(0)?;
    let (rank, dtype) = (cx.ty(x).shape.rank(), cx.ty(x).dtype);
    let a = cx.attrs();
    let mode_name = a.string("mode", "constant");
    let mode = PadMode::parse(&mode_name)
        .filter(|m| *m != PadMode::Wrap || cx.opset() >= 19)
        .ok_or_else(|| {
            cx.err(format!(
                "mode '{mode_name}' is not one of constant, reflect, edge (and wrap from opset 19)"
            ))
        })?;
    let mut inputs = vec![x];
    let flat: Vec<DimExpr> = if cx.opset() < 11 {
        let pads = a
            .ints("pads")
            .ok_or_else(|| cx.err("attribute pads is required"))?;
        pads.iter().map(|&p| DimExpr::Known(p)).collect()
    } else {
        cx.dim_exprs_input(1, &mut inputs)?
    };
    let axes = pad_axes(cx, rank)?;
    if flat.len() != 2 * axes.len() {
        return Err(cx.err(format!(
            "{} pads for {} padded axes of a rank-{rank} input",
            flat.len(),
            axes.len()
        )));
    }
    if let Some(p) = flat
        .iter()
        .filter_map(DimExpr::known)
        .find(|p| p.unsigned_abs() > MAX_DIM as u64)
    {
        return Err(cx.err(format!("pad {p} is out of range (|pad| <= {MAX_DIM})")));
    }
    let mut pads = vec![[DimExpr::Known(0), DimExpr::Known(0)]; rank];
    for (j, &axis) in axes.iter().enumerate() {
        pads[axis] = [flat[j].clone(), flat[j + axes.len()].clone()];
    }
    let value = constant_value(cx, dtype)?;
    Ok((def(Pad { mode, pads, value }), inputs))
}

/// The registry entry.
pub(super) const SPECS: &[OpSpec] = &[OpSpec {
    op_type: "Pad",
    since: 2,
    import,
}];

#[cfg(test)]
mod tests {
    use super::*;

    fn pad(mode: PadMode, b: i64, e: i64) -> Pad {
        Pad {
            mode,
            pads: vec![[DimExpr::Known(b), DimExpr::Known(e)]],
            value: Tensor::from_f32(vec![], vec![-1.0]).unwrap(),
        }
    }

    fn run(p: &Pad, x: &[f32]) -> Result<Vec<f32>> {
        let t = Tensor::from_f32(vec![x.len()], x.to_vec())?;
        let ty = ValueType::new(DType::F32, Shape::known(&[x.len()]));
        let out = p.infer("p", &[&ty])?;
        Ok(p.eval("p", &[&t], &out)?[0].as_f32().unwrap().to_vec())
    }

    #[test]
    fn modes_and_crops_on_one_axis() {
        let x = [1.0, 2.0, 3.0, 4.0];
        let r = |m, b, e| run(&pad(m, b, e), &x).unwrap();
        assert_eq!(
            r(PadMode::Constant, 1, 2),
            [-1.0, 1.0, 2.0, 3.0, 4.0, -1.0, -1.0]
        );
        assert_eq!(
            r(PadMode::Reflect, 2, 3),
            [3.0, 2.0, 1.0, 2.0, 3.0, 4.0, 3.0, 2.0, 1.0]
        );
        assert_eq!(r(PadMode::Edge, 2, 1), [1.0, 1.0, 1.0, 2.0, 3.0, 4.0, 4.0]);
        assert_eq!(
            r(PadMode::Wrap, 5, 1),
            [4.0, 1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0, 1.0]
        );
        // Crop first, then pad the kept [2, 3].
        assert_eq!(r(PadMode::Reflect, -1, 1), [2.0, 3.0, 4.0, 3.0]);
        assert_eq!(r(PadMode::Edge, 2, -2), [1.0, 1.0, 1.0, 2.0]);
        assert_eq!(r(PadMode::Constant, -4, 0), Vec::<f32>::new());
        assert!(run(&pad(PadMode::Reflect, 4, 0), &x).is_err());
        assert!(run(&pad(PadMode::Constant, -3, -2), &x).is_err());
        assert!(run(&pad(PadMode::Edge, 1, -4), &x).is_err());
    }
}
