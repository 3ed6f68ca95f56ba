//! ConvTranspose (2-D, NCHW, f32): the gradient of Conv with respect to its input, with
//! groups, strides, dilations, explicit pads and output padding.

use std::ops::Range;

use super::{AttrValue, Exported, OpDef, OpSpec, all_f32, arity, concrete, def, f32_input, fail};
use crate::error::Result;
use crate::ir::{DType, Dim, MAX_DIM, Op, Shape, Tensor, ValueId, ValueType};
use crate::onnx::ImportCx;

/// A transposed 2-D convolution. Inputs `x [N, C, H, W]`, `w [C, M / groups, KH, KW]`,
/// optional `bias [M]`; output `[N, M, OH, OW]` with
/// `OH = stride * (H - 1) + output_padding + dilation * (KH - 1) + 1 - pad_begin - pad_end`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvTranspose {
    /// `[KH, KW]`.
    pub kernel: [usize; 2],
    /// Strides (H, W).
    pub strides: [usize; 2],
    /// Dilations (H, W).
    pub dilations: [usize; 2],
    /// `[begin H, begin W, end H, end W]`.
    pub pads: [usize; 4],
    /// Extra rows / columns at the end (H, W).
    pub output_padding: [usize; 2],
    /// Groups.
    pub groups: usize,
}

impl ConvTranspose {
    fn out_len(&self, axis: usize, len: usize) -> std::result::Result<usize, String> {
        let full = (len.max(1) - 1) * self.strides[axis]
            + self.output_padding[axis]
            + self.dilations[axis] * (self.kernel[axis] - 1)
            + 1;
        let pads = self.pads[axis] + self.pads[axis + 2];
        full.checked_sub(pads)
            .filter(|n| (1..=MAX_DIM).contains(n))
            .ok_or_else(|| format!("pads {:?} leave no output on axis {}", self.pads, axis + 2))
    }

    /// Input positions `i` whose tap at kernel offset `k` lands in `0..out`.
    fn valid(&self, axis: usize, k: usize, len: usize, out: usize) -> Range<usize> {
        let (s, off) = (self.strides[axis] as i64, (k * self.dilations[axis]) as i64);
        let pad = self.pads[axis] as i64;
        // o = i * s + off - pad in [0, out)  <=>  i in [ceil((pad - off) / s), ...].
        let lo = (pad - off + s - 1).div_euclid(s).max(0);
        let hi = (out as i64 - 1 + pad - off).div_euclid(s) + 1;
        let hi = hi.clamp(0, len as i64);
        (lo.min(hi) as usize)..(hi as usize)
    }
}

impl OpDef for ConvTranspose {
    fn name(&self) -> &'static str {
        "ConvTranspose"
    }

    fn infer(&self, node: &str, inputs: &[&ValueType]) -> Result<Vec<ValueType>> {
        arity(self, node, inputs.len(), 2, 3)?;
        all_f32(self, node, inputs)?;
        let x = &inputs[0].shape;
        let w = inputs[1]
            .shape
            .to_known()
            .filter(|w| w.len() == 4)
            .ok_or_else(|| {
                fail(
                    self,
                    node,
                    format!("weight shape {} must be known and 4-D", inputs[1].shape),
                )
            })?;
        if x.rank() != 4 {
            return Err(fail(self, node, format!("input must be 4-D NCHW, got {x}")));
        }
        if [w[2], w[3]] != self.kernel {
            return Err(fail(
                self,
                node,
                format!("kernel_shape {:?} differs from weight {w:?}", self.kernel),
            ));
        }
        if let Dim::Known(c) = x.dims()[1]
            && c != w[0]
        {
            return Err(fail(
                self,
                node,
                format!("input has {c} channels, weight {w:?} expects {}", w[0]),
            ));
        }
        if w[0] % self.groups != 0 {
            return Err(fail(
                self,
                node,
                format!(
                    "{} input channels not divisible by group {}",
                    w[0], self.groups
                ),
            ));
        }
        let m = w[1] * self.groups;
        if inputs.len() == 3 && inputs[2].shape != Shape::known(&[m]) {
            return Err(fail(
                self,
                node,
                format!("bias shape {} must be [{m}]", inputs[2].shape),
            ));
        }
        let mut dims = vec![x.dims()[0].clone(), Dim::Known(m)];
        for axis in 0..2 {
            dims.push(match &x.dims()[axis + 2] {
                Dim::Known(n) => {
                    Dim::Known(self.out_len(axis, *n).map_err(|e| fail(self, node, e))?)
                }
                d => Dim::sym(&format!("{d}*{}", self.strides[axis])),
            });
        }
        Ok(vec![ValueType::new(DType::F32, Shape(dims))])
    }

    fn eval(&self, node: &str, inputs: &[&Tensor], outputs: &[ValueType]) -> Result<Vec<Tensor>> {
        let x = f32_input(self, node, inputs, 0)?;
        let w = f32_input(self, node, inputs, 1)?;
        let bias = match inputs.get(2) {
            Some(_) => Some(f32_input(self, node, inputs, 2)?),
            None => None,
        };
        let out = concrete(self, node, &outputs[0])?;
        let s = inputs[0].shape();
        let (c, h, wd) = (s[1], s[2], s[3]);
        let (m, oh, ow) = (out[1], out[2], out[3]);
        let (cg, mg) = (c / self.groups, m / self.groups);
        let [kh, kw] = self.kernel;
        let mut y = vec![0.0f32; out.iter().product()];
        for (plane, yp) in y.chunks_exact_mut((oh * ow).max(1)).enumerate() {
            let (b, oc) = (plane / m, plane % m);
            yp.fill(bias.map_or(0.0, |bv| bv[oc]));
            let (g, ocl) = (oc / mg, oc % mg);
            for ic in g * cg..(g + 1) * cg {
                let xp = &x[(b * c + ic) * h * wd..][..h * wd];
                for ky in 0..kh {
                    let rows = self.valid(0, ky, h, oh);
                    for kx in 0..kw {
                        let wv = w[((ic * mg + ocl) * kh + ky) * kw + kx];
                        let cols = self.valid(1, kx, wd, ow);
                        for iy in rows.clone() {
                            let oy = iy * self.strides[0] + ky * self.dilations[0] - self.pads[0];
                            let xrow = &xp[iy * wd..(iy + 1) * wd];
                            for ix in cols.clone() {
                                let ox =
                                    ix * self.strides[1] + kx * self.dilations[1] - self.pads[1];
                                yp[oy * ow + ox] += wv * xrow[ix];
                            }
                        }
                    }
                }
            }
        }
        Ok(vec![Tensor::from_f32(out, y)?])
    }

    fn export(&self, _node: &str) -> Result<Exported> {
        let ints = |v: &[usize]| AttrValue::Ints(v.iter().map(|&x| x as i64).collect());
        Ok(Exported {
            attrs: vec![
                ("kernel_shape", ints(&self.kernel)),
                ("strides", ints(&self.strides)),
                ("dilations", ints(&self.dilations)),
                ("pads", ints(&self.pads)),
                ("output_padding", ints(&self.output_padding)),
                ("group", AttrValue::Int(self.groups as i64)),
            ],
            operands: vec![],
        })
    }
}

fn import(cx: &ImportCx<'_>) -> Result<(Op, Vec<ValueId>)> {
    let a = cx.attrs();
    let (x, w) = (cx.input(0)?, cx.input(1)?);
    let wshape = cx
        .ty(w)
        .shape
        .to_known()
        .filter(|s| s.len() == 4)
        .ok_or_else(|| {
            cx.err(format!(
                "q8 supports 2-D ConvTranspose only; weight shape is {}",
                cx.ty(w).shape
            ))
        })?;
    let auto_pad = a.string("auto_pad", "NOTSET");
    if !matches!(auto_pad.as_str(), "NOTSET" | "") || a.has("output_shape") {
        return Err(cx.err("auto_pad and output_shape are not supported (use explicit pads)"));
    }
    let groups = usize::try_from(a.int("group", 1))
        .ok()
        .filter(|g| (1..=MAX_DIM).contains(g))
        .ok_or_else(|| cx.err(format!("group {} must be >= 1", a.int("group", 1))))?;
    let op = ConvTranspose {
        kernel: a.sizes("kernel_shape", [wshape[2], wshape[3]], 1)?,
        strides: a.sizes("strides", [1, 1], 1)?,
        dilations: a.sizes("dilations", [1, 1], 1)?,
        pads: a.sizes("pads", [0; 4], 0)?,
        output_padding: a.sizes("output_padding", [0, 0], 0)?,
        groups,
    };
    if (0..2).any(|i| op.output_padding[i] >= op.strides[i].max(op.dilations[i])) {
        return Err(cx.err(format!(
            "output_padding {:?} must be smaller than the stride or dilation",
            op.output_padding
        )));
    }
    let mut inputs = vec![x, w];
    inputs.extend(cx.optional(2)?);
    Ok((def(op), inputs))
}

/// The registry entry.
pub(super) const SPECS: &[OpSpec] = &[OpSpec {
    op_type: "ConvTranspose",
    since: 1,
    import,
}];
