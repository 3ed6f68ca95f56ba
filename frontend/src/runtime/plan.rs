//! Per-input-shape plans: concrete shapes of every value, convolutions retargeted to the
//! batch, and the buffer assignment (values whose lifetimes do not overlap share a buffer).

use q8_kernels::conv::{Nhwc, PackedConvWeights};

use super::layout::Layout;
use crate::error::{Error, Result};
use crate::exec::Buffers;
use crate::ir::{DType, Graph, NodeId, Shape, ValueId, ValueType, infer};
use crate::lower::{Step, StepKind};

/// Where a value lives during a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slot {
    /// Graph input `k` (the caller's tensor, read in place).
    Input(usize),
    /// u8 buffer of the arena.
    U8(usize),
    /// f32 buffer of the arena.
    F32(usize),
    /// A whole tensor of another element type (i64, i32, bool, i8, ...) written by an f32
    /// fallback step: shape sub-graphs, masks, token ids. One slot per value.
    Tensor(usize),
}

/// Everything that depends on the input shapes, computed once per shape.
pub(crate) struct Plan {
    /// Concrete logical shape of every value the steps touch (empty for the others).
    pub shapes: Vec<Vec<usize>>,
    /// Per step: the convolution retargeted to this input shape.
    pub convs: Vec<Option<PackedConvWeights>>,
    /// Per value: its buffer.
    pub slots: Vec<Option<Slot>>,
    /// Sizes of the arena's u8 buffers.
    pub u8_sizes: Vec<usize>,
    /// Sizes of the arena's f32 buffers.
    pub f32_sizes: Vec<usize>,
    /// Number of the arena's tensor slots.
    pub tensors: usize,
    /// Per value: index of the last step reading it (`usize::MAX` for graph outputs).
    pub last_use: Vec<usize>,
}

/// Scratch buffers of one run (one arena per concurrent run, reused across runs).
pub(crate) struct Arena {
    pub u8: Vec<Vec<u8>>,
    pub f32: Vec<Vec<f32>>,
    pub tensors: Vec<Option<crate::ir::Tensor>>,
    /// f32 buffers of dead tensor slots, reused by the fallback steps' outputs.
    pub buffers: Buffers,
}

impl Plan {
    /// Plans `steps` for inputs of the given shapes.
    pub fn new(
        graph: &Graph,
        order: &[NodeId],
        steps: &[Step],
        input_shapes: &[Vec<usize>],
    ) -> Result<Plan> {
        let shapes = concrete_shapes(graph, order, input_shapes)?;
        let mut convs = Vec::with_capacity(steps.len());
        for s in steps {
            convs.push(match &s.kind {
                StepKind::Conv { packed, .. } => {
                    // A 1-D conv's [N, C, L] is [N, C, 1, L].
                    let [n, c, h, w] = match shapes[s.inputs[0].0][..] {
                        [n, c, l] => [n, c, 1, l],
                        ref x => four(x, s)?,
                    };
                    Some(
                        packed
                            .for_input(Nhwc::new(n, h, w, c))
                            .map_err(|e| Error::node("Conv", &s.name, e.to_string()))?,
                    )
                }
                _ => None,
            });
        }
        let mut last_use = vec![0usize; graph.value_count()];
        for (i, s) in steps.iter().enumerate() {
            for v in &s.inputs {
                last_use[v.0] = i;
            }
        }
        for o in graph.outputs() {
            last_use[o.0] = usize::MAX;
        }
        let mut slots: Vec<Option<Slot>> = vec![None; graph.value_count()];
        for (k, v) in graph.inputs().iter().enumerate() {
            slots[v.0] = Some(Slot::Input(k));
        }
        let (mut u8_sizes, mut f32_sizes) = (Vec::new(), Vec::new());
        let (mut free_u8, mut free_f32): (Vec<usize>, Vec<usize>) = (Vec::new(), Vec::new());
        let mut tensors = 0;
        for (i, s) in steps.iter().enumerate() {
            let len: usize = shapes[s.output.0].iter().product();
            let dtype = graph.value(s.output).ty.dtype;
            // Fallback steps write whole tensors (moved in, no copy); so do values of other
            // element types. u8 fallback outputs may be channels-last: they get buffers.
            let whole = matches!(s.kind, StepKind::Fallback(_)) && dtype != DType::U8;
            slots[s.output.0] = Some(if whole || !matches!(dtype, DType::U8 | DType::F32) {
                tensors += 1;
                Slot::Tensor(tensors - 1)
            } else if dtype == DType::U8 {
                Slot::U8(take_buffer(&mut u8_sizes, &mut free_u8, len))
            } else {
                Slot::F32(take_buffer(&mut f32_sizes, &mut free_f32, len))
            });
            for v in &s.inputs {
                if last_use[v.0] == i {
                    match slots[v.0] {
                        Some(Slot::U8(b)) if !free_u8.contains(&b) => free_u8.push(b),
                        Some(Slot::F32(b)) if !free_f32.contains(&b) => free_f32.push(b),
                        _ => {}
                    }
                }
            }
        }
        Ok(Plan {
            shapes,
            convs,
            slots,
            u8_sizes,
            f32_sizes,
            tensors,
            last_use,
        })
    }

    /// Fresh buffers for one concurrent run.
    pub fn arena(&self) -> Arena {
        Arena {
            u8: self.u8_sizes.iter().map(|&n| vec![0u8; n]).collect(),
            f32: self.f32_sizes.iter().map(|&n| vec![0f32; n]).collect(),
            tensors: vec![None; self.tensors],
            buffers: Buffers::default(),
        }
    }

    /// Bytes of scratch one run uses.
    pub fn arena_bytes(&self) -> usize {
        self.u8_sizes.iter().sum::<usize>() + 4 * self.f32_sizes.iter().sum::<usize>()
    }
}

/// A free buffer for `len` elements (the best-fitting one, grown if none is large enough),
/// or a new one.
fn take_buffer(sizes: &mut Vec<usize>, free: &mut Vec<usize>, len: usize) -> usize {
    let fit = free
        .iter()
        .enumerate()
        .filter(|(_, b)| sizes[**b] >= len)
        .min_by_key(|(_, b)| sizes[**b])
        .or_else(|| free.iter().enumerate().max_by_key(|(_, b)| sizes[**b]))
        .map(|(i, _)| i);
    match fit {
        Some(i) => {
            let b = free.swap_remove(i);
            sizes[b] = sizes[b].max(len);
            b
        }
        None => {
            sizes.push(len);
            sizes.len() - 1
        }
    }
}

/// Logical shapes of all values for concrete input shapes (type inference with known dims).
fn concrete_shapes(
    graph: &Graph,
    order: &[NodeId],
    inputs: &[Vec<usize>],
) -> Result<Vec<Vec<usize>>> {
    let mut types: Vec<Option<ValueType>> = vec![None; graph.value_count()];
    for (k, &v) in graph.inputs().iter().enumerate() {
        types[v.0] = Some(ValueType::new(
            graph.value(v).ty.dtype,
            Shape::known(&inputs[k]),
        ));
    }
    for (i, slot) in types.iter_mut().enumerate() {
        if let Some(c) = &graph.value(ValueId(i)).constant {
            *slot = Some(ValueType::new(c.dtype(), Shape::known(c.shape())));
        }
    }
    for &id in order {
        let n = graph.node(id).expect("live node");
        let tys: Vec<&ValueType> = n
            .inputs
            .iter()
            .map(|v| types[v.0].as_ref())
            .collect::<Option<_>>()
            .ok_or_else(|| Error::node(n.op.name(), &n.name, "an input has no shape"))?;
        let out = infer(&n.op, &n.name, &tys)?;
        for (o, t) in n.outputs.iter().zip(out) {
            types[o.0] = Some(t);
        }
    }
    Ok(types
        .into_iter()
        .map(|t| t.and_then(|t| t.shape.to_known()).unwrap_or_default())
        .collect())
}

/// The `[n, c, h, w]` of a rank-4 shape, or an error naming the step.
pub(crate) fn four(shape: &[usize], step: &Step) -> Result<[usize; 4]> {
    <[usize; 4]>::try_from(shape).map_err(|_| {
        Error::node(
            step.kind.label(),
            &step.name,
            format!("expected a rank-4 tensor, got shape {shape:?}"),
        )
    })
}

/// The physical layout each value gets from the step that writes it.
pub(crate) fn layouts(graph: &Graph, steps: &[Step]) -> Vec<Layout> {
    let mut layout = vec![Layout::Plain; graph.value_count()];
    for s in steps {
        let rank4 = graph.value(s.output).ty.shape.rank() == 4;
        let nhwc = match &s.kind {
            StepKind::Quantize(_)
            | StepKind::Conv { .. }
            | StepKind::MaxPool(_)
            | StepKind::AvgPool { .. }
            | StepKind::GlobalAvgPool(_)
            | StepKind::Concat { .. } => true,
            StepKind::Dequantize(_) | StepKind::Add(_) => layout[s.inputs[0].0] == Layout::Nhwc,
            StepKind::Reshape | StepKind::Fallback(_) => {
                graph.value(s.output).ty.dtype == DType::U8
            }
            StepKind::Linear { .. } | StepKind::DynamicLinear { .. } | StepKind::MeanF32 => false,
        };
        layout[s.output.0] = if nhwc && rank4 {
            Layout::Nhwc
        } else {
            Layout::Plain
        };
    }
    layout
}
