//! Resize (opset 10 to 21): nearest and linear interpolation of f32 tensors of any rank,
//! separable axis by axis, with the coordinate transformations PyTorch and Paddle export
//! (`half_pixel`, `pytorch_half_pixel`, `align_corners`, `asymmetric`,
//! `tf_half_pixel_for_nearest`). Linear sampling clamps coordinates to the input (as ONNX
//! Runtime does).

use super::{AttrValue, Exported, OpDef, OpSpec, concrete, def, f32_input, fail, one_f32};
use crate::error::Result;
use crate::ir::{DType, Dim, MAX_DIM, Op, Shape, Tensor, ValueId, ValueType};
use crate::onnx::ImportCx;

/// Interpolation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Nearest neighbour.
    Nearest(NearestMode),
    /// Linear (bilinear for two axes, and so on).
    Linear,
}

/// Rounding of nearest-neighbour coordinates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NearestMode {
    /// Round half down.
    RoundPreferFloor,
    /// Round half up.
    RoundPreferCeil,
    /// Round down.
    Floor,
    /// Round up.
    Ceil,
}

impl NearestMode {
    const NAMES: [(&'static str, NearestMode); 4] = [
        ("round_prefer_floor", NearestMode::RoundPreferFloor),
        ("round_prefer_ceil", NearestMode::RoundPreferCeil),
        ("floor", NearestMode::Floor),
        ("ceil", NearestMode::Ceil),
    ];

    fn round(self, x: f32) -> f32 {
        match self {
            NearestMode::RoundPreferFloor if x.fract() == 0.5 => x.floor(),
            NearestMode::RoundPreferCeil if x.fract() == 0.5 => x.ceil(),
            NearestMode::RoundPreferFloor | NearestMode::RoundPreferCeil => x.round(),
            NearestMode::Floor => x.floor(),
            NearestMode::Ceil => x.ceil(),
        }
    }
}

/// Maps an output coordinate to an input coordinate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coord {
    /// `(x + 0.5) / scale - 0.5`.
    HalfPixel,
    /// As `HalfPixel`, but 0 when the output length is 1.
    PytorchHalfPixel,
    /// `x * (in - 1) / (out - 1)`.
    AlignCorners,
    /// `x / scale`.
    Asymmetric,
    /// `(x + 0.5) / scale`.
    TfHalfPixelForNearest,
}

impl Coord {
    const NAMES: [(&'static str, Coord); 5] = [
        ("half_pixel", Coord::HalfPixel),
        ("pytorch_half_pixel", Coord::PytorchHalfPixel),
        ("align_corners", Coord::AlignCorners),
        ("asymmetric", Coord::Asymmetric),
        ("tf_half_pixel_for_nearest", Coord::TfHalfPixelForNearest),
    ];

    fn map(self, x: usize, scale: f32, len_in: usize, len_out: usize) -> f32 {
        let x = x as f32;
        match self {
            Coord::HalfPixel => (x + 0.5) / scale - 0.5,
            Coord::PytorchHalfPixel if len_out > 1 => (x + 0.5) / scale - 0.5,
            Coord::PytorchHalfPixel => 0.0,
            Coord::AlignCorners if len_out > 1 => x * (len_in - 1) as f32 / (len_out - 1) as f32,
            Coord::AlignCorners => 0.0,
            Coord::Asymmetric => x / scale,
            Coord::TfHalfPixelForNearest => (x + 0.5) / scale,
        }
    }
}

/// The output extent of each axis: a scale per axis or a size per axis.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// Output length `floor(in * scale)`.
    Scales(Vec<f32>),
    /// Output lengths.
    Sizes(Vec<usize>),
}

/// Resize of every axis of the input.
#[derive(Clone, Debug, PartialEq)]
pub struct Resize {
    /// Output extent, one entry per input axis.
    pub target: Target,
    /// Interpolation.
    pub mode: Mode,
    /// Coordinate transformation.
    pub coord: Coord,
}

/// One output position's input taps: `(index, weight)` pairs.
type Taps = Vec<[(usize, f32); 2]>;

impl Resize {
    fn rank(&self) -> usize {
        match &self.target {
            Target::Scales(s) => s.len(),
            Target::Sizes(s) => s.len(),
        }
    }

    /// The output length of `axis` for an input length, and the scale to map coordinates.
    fn axis(&self, axis: usize, len: usize) -> std::result::Result<(usize, f32), String> {
        match &self.target {
            Target::Scales(s) => {
                let out = (len as f64 * f64::from(s[axis])).floor();
                if !(0.0..=MAX_DIM as f64).contains(&out) {
                    return Err(format!(
                        "output length {out} on axis {axis} is out of range"
                    ));
                }
                Ok((out as usize, s[axis]))
            }
            Target::Sizes(s) => Ok((s[axis], s[axis] as f32 / len.max(1) as f32)),
        }
    }

    fn taps(&self, len_in: usize, len_out: usize, scale: f32) -> Taps {
        let last = len_in.saturating_sub(1);
        (0..len_out)
            .map(|o| {
                let x = self.coord.map(o, scale, len_in, len_out);
                match self.mode {
                    Mode::Nearest(n) => {
                        let i = n.round(x).clamp(0.0, last as f32) as usize;
                        [(i, 1.0), (i, 0.0)]
                    }
                    Mode::Linear => {
                        let x = x.clamp(0.0, last as f32);
                        let i0 = x.floor() as usize;
                        let i1 = (i0 + 1).min(last);
                        let w = x - i0 as f32;
                        [(i0, 1.0 - w), (i1, w)]
                    }
                }
            })
            .collect()
    }
}

/// Resamples `axis` of `x` (shape `shape`) with `taps`, one per output position.
fn resample(x: &[f32], shape: &[usize], axis: usize, taps: &Taps) -> Vec<f32> {
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis + 1..].iter().product();
    let len = shape[axis];
    let mut y = Vec::with_capacity(outer * taps.len() * inner);
    for o in 0..outer {
        let base = o * len * inner;
        for &[(i0, w0), (i1, w1)] in taps {
            let r0 = &x[base + i0 * inner..base + (i0 + 1) * inner];
            let r1 = &x[base + i1 * inner..base + (i1 + 1) * inner];
            if w1 == 0.0 {
                y.extend_from_slice(r0);
            } else {
                y.extend(r0.iter().zip(r1).map(|(a, b)| a * w0 + b * w1));
            }
        }
    }
    y
}

impl OpDef for Resize {
    fn name(&self) -> &'static str {
        "Resize"
    }

    fn infer(&self, node: &str, inputs: &[&ValueType]) -> Result<Vec<ValueType>> {
        let x = one_f32(self, node, inputs)?;
        if x.shape.rank() != self.rank() {
            return Err(fail(
                self,
                node,
                format!(
                    "{} scales or sizes for input shape {}",
                    self.rank(),
                    x.shape
                ),
            ));
        }
        let mut dims = Vec::with_capacity(x.shape.rank());
        for (axis, d) in x.shape.dims().iter().enumerate() {
            dims.push(match (d, &self.target) {
                (Dim::Known(n), _) => {
                    Dim::Known(self.axis(axis, *n).map_err(|e| fail(self, node, e))?.0)
                }
                (_, Target::Sizes(s)) => Dim::Known(s[axis]),
                (d, Target::Scales(s)) if s[axis] == 1.0 => d.clone(),
                (d, Target::Scales(s)) => Dim::sym(&format!("{d}*{}", s[axis])),
            });
        }
        Ok(vec![ValueType::new(DType::F32, Shape(dims))])
    }

    fn eval(&self, node: &str, inputs: &[&Tensor], outputs: &[ValueType]) -> Result<Vec<Tensor>> {
        let mut data = f32_input(self, node, inputs, 0)?.to_vec();
        let mut shape = inputs[0].shape().to_vec();
        let out = concrete(self, node, &outputs[0])?;
        for axis in 0..shape.len() {
            let (len_out, scale) = self
                .axis(axis, shape[axis])
                .map_err(|e| fail(self, node, e))?;
            if len_out == shape[axis] && scale == 1.0 {
                continue;
            }
            if shape[axis] == 0 {
                return Err(fail(
                    self,
                    node,
                    format!("cannot resize the empty axis {axis}"),
                ));
            }
            let taps = self.taps(shape[axis], len_out, scale);
            data = resample(&data, &shape, axis, &taps);
            shape[axis] = len_out;
        }
        Ok(vec![Tensor::from_f32(out, data)?])
    }

    fn export(&self, _node: &str) -> Result<Exported> {
        let mut attrs = vec![(
            "coordinate_transformation_mode",
            AttrValue::Str(name_of(&Coord::NAMES, self.coord)),
        )];
        match self.mode {
            Mode::Nearest(n) => {
                attrs.push(("mode", AttrValue::Str("nearest".into())));
                attrs.push((
                    "nearest_mode",
                    AttrValue::Str(name_of(&NearestMode::NAMES, n)),
                ));
            }
            Mode::Linear => attrs.push(("mode", AttrValue::Str("linear".into()))),
        }
        let n = self.rank();
        let operands = match &self.target {
            Target::Scales(s) => vec![
                None,
                Some(("scales", Tensor::from_f32(vec![n], s.clone())?)),
            ],
            Target::Sizes(s) => {
                let sizes = s.iter().map(|&v| v as i64).collect();
                vec![
                    None,
                    None,
                    Some(("sizes", Tensor::from_i64(vec![n], sizes)?)),
                ]
            }
        };
        Ok(Exported { attrs, operands })
    }
}

/// The ONNX name of `v` in a name table.
fn name_of<T: PartialEq>(list: &[(&str, T)], v: T) -> String {
    list.iter()
        .find(|(_, x)| *x == v)
        .map_or("", |(n, _)| *n)
        .to_string()
}

/// Looks `value` up in a name table.
fn named<T: Copy>(cx: &ImportCx<'_>, key: &str, value: &str, list: &[(&str, T)]) -> Result<T> {
    list.iter()
        .find(|(n, _)| *n == value)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let names: Vec<&str> = list.iter().map(|(n, _)| *n).collect();
            cx.err(format!(
                "{key} '{value}' is not one of {}",
                names.join(", ")
            ))
        })
}

fn import(cx: &ImportCx<'_>) -> Result<(Op, Vec<ValueId>)> {
    let a = cx.attrs();
    let x = cx.input(0)?;
    let rank = cx.ty(x).shape.rank();
    if a.int("antialias", 0) != 0 || a.has("axes") {
        return Err(cx.err("antialias and axes are not supported"));
    }
    let policy = a.string("keep_aspect_ratio_policy", "stretch");
    if policy != "stretch" {
        return Err(cx.err(format!(
            "keep_aspect_ratio_policy '{policy}' is not supported"
        )));
    }
    let opset10 = cx.opset() < 11;
    let mode = match a.string("mode", "nearest").as_str() {
        "nearest" => {
            let default = if opset10 {
                "floor"
            } else {
                "round_prefer_floor"
            };
            let n = a.string("nearest_mode", default);
            Mode::Nearest(named(cx, "nearest_mode", &n, &NearestMode::NAMES)?)
        }
        "linear" => Mode::Linear,
        other => return Err(cx.err(format!("mode '{other}' is not supported (nearest, linear)"))),
    };
    let coord = if opset10 {
        Coord::Asymmetric
    } else {
        let c = a.string("coordinate_transformation_mode", "half_pixel");
        named(cx, "coordinate_transformation_mode", &c, &Coord::NAMES)?
    };
    let (scales_at, sizes_at) = if opset10 { (1, usize::MAX) } else { (2, 3) };
    let scales = cx.const_floats(scales_at)?.filter(|s| !s.is_empty());
    let sizes = if cx.has_input(sizes_at) {
        cx.const_ints(sizes_at)?
    } else {
        None
    };
    let target = match (scales, sizes) {
        (Some(s), None) => {
            if let Some(bad) = s.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
                return Err(cx.err(format!("scale {bad} must be finite and > 0")));
            }
            Target::Scales(s)
        }
        (None, Some(s)) => {
            let sizes = s
                .iter()
                .map(|&v| {
                    usize::try_from(v)
                        .ok()
                        .filter(|&v| (1..=MAX_DIM).contains(&v))
                })
                .collect::<Option<Vec<usize>>>()
                .ok_or_else(|| cx.err(format!("sizes {s:?} must be in 1..={MAX_DIM}")))?;
            Target::Sizes(sizes)
        }
        _ => return Err(cx.err("exactly one of scales and sizes must be given")),
    };
    let resize = Resize {
        target,
        mode,
        coord,
    };
    if resize.rank() != rank {
        return Err(cx.err(format!(
            "{} scales or sizes for a rank-{rank} input",
            resize.rank()
        )));
    }
    Ok((def(resize), vec![x]))
}

/// The registry entry.
pub(super) const SPECS: &[OpSpec] = &[OpSpec {
    op_type: "Resize",
    since: 10,
    import,
}];
