//! The executable int8 model: a lowered graph with weights packed for one tier, run many
//! times on f32 NCHW batches of any size.
//!
//! A run quantizes the input and transposes it to NHWC in one pass, keeps activations in
//! u8 NHWC between int8 steps, and reuses buffers planned per input shape (one arena per
//! concurrent run, kept in a pool: after the first run at a batch size, a run allocates
//! only its output tensors). [`Model`] is `Send + Sync`; `run` may be called from several
//! threads at once, and its results do not depend on the thread count or the tier.
//!
//! ```
//! use q8_frontend::ir::{DType, Dim, Graph, Op, QuantSpec, Shape, Tensor};
//! use q8_frontend::runtime::{Model, RuntimeOptions};
//! let mut g = Graph::new("tiny");
//! let x = g.add_input("x", DType::F32, Shape(vec![Dim::sym("n"), Dim::Known(1), Dim::Known(2), Dim::Known(2)])).unwrap();
//! let spec = QuantSpec::per_tensor(0.5, 10, DType::U8);
//! let q = g.add_node("q", Op::QuantizeLinear(spec.clone()), &[x]).unwrap()[0];
//! let dq = g.add_node("dq", Op::DequantizeLinear(spec), &[q]).unwrap()[0];
//! g.set_outputs(&[dq]);
//! let model = Model::from_graph(&g, &RuntimeOptions::default()).unwrap();
//! let input = Tensor::from_f32(vec![1, 1, 2, 2], vec![0.0, 1.0, 1.2, -9.0]).unwrap();
//! let out = model.run(&[input]).unwrap();
//! assert_eq!(out[0].as_f32().unwrap(), &[0.0, 1.0, 1.0, -5.0]); // u8 saturates at 0
//! ```

mod layout;
mod plan;
mod run;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use q8_kernels::Tier;

pub use layout::Layout;

use self::plan::{Arena, Plan, Slot, layouts};
use self::run::{Data, In, Out, relayout, run_step, to_tensor};
use crate::error::{Error, Result};
use crate::exec::Arg;
use crate::ir::{DType, Dim, Graph, NodeId, Tensor, TensorData};
use crate::lower::{FallbackNode, LowerOptions, Lowered, LoweringReport, Step, StepKind, lower};

/// Load-time settings.
#[derive(Clone, Copy, Debug, Default)]
pub struct RuntimeOptions {
    /// Tier to pack for and run on; `None` = [`q8_kernels::cpu::default_tier`] (the best
    /// available, capped by `Q8_ISA`).
    pub tier: Option<Tier>,
    /// Worker threads; 0 = one per available core.
    pub threads: usize,
}

/// Called with the name and NCHW value of every value a step writes.
pub type Observer<'a> = dyn FnMut(&str, &Tensor) + Send + 'a;

/// Time spent in one step of a profiled run.
#[derive(Clone, Debug)]
pub struct StepTiming {
    /// Anchor node name.
    pub name: String,
    /// Kernel label.
    pub kernel: &'static str,
    /// Wall time.
    pub time: Duration,
}

/// A lowered, packed model ready to run. `Send + Sync`.
pub struct Model {
    lowered: Lowered,
    order: Vec<NodeId>,
    layouts: Vec<Layout>,
    threads: usize,
    pool: rayon::ThreadPool,
    plans: Mutex<HashMap<Vec<Vec<usize>>, Arc<Plan>>>,
    arenas: Mutex<HashMap<Vec<Vec<usize>>, Vec<Arena>>>,
}

impl Model {
    /// Imports an ONNX file and builds the model.
    ///
    /// # Errors
    /// Import errors (naming the file's node), then as [`Model::from_graph`].
    pub fn load(path: impl AsRef<Path>, options: &RuntimeOptions) -> Result<Model> {
        let graph = crate::onnx::load(path)?;
        Model::from_graph(&graph, options)
    }

    /// Imports ONNX model bytes and builds the model.
    ///
    /// # Errors
    /// As [`crate::onnx::load_bytes`], then as [`Model::from_graph`].
    pub fn load_bytes(bytes: &[u8], options: &RuntimeOptions) -> Result<Model> {
        let graph = crate::onnx::load_bytes(bytes)?;
        Model::from_graph(&graph, options)
    }

    /// Lowers `graph` (packing its weights once) and builds the model.
    ///
    /// # Errors
    /// As [`lower`]; a u8 graph input; a thread pool that cannot start.
    pub fn from_graph(graph: &Graph, options: &RuntimeOptions) -> Result<Model> {
        let threads = match options.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let lowered = lower(
            graph,
            &LowerOptions {
                tier: options.tier,
                threads,
            },
        )?;
        for &i in lowered.graph.inputs() {
            let v = lowered.graph.value(i);
            if v.ty.dtype == DType::U8 {
                return Err(Error::Input(format!(
                    "graph input '{}' is u8: q8 models take f32 (or integer / bool) inputs and \
                     quantize them",
                    v.name
                )));
            }
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| Error::Graph(format!("cannot start {threads} worker threads: {e}")))?;
        let order = lowered.graph.topo_order()?;
        let layouts = layouts(&lowered.graph, &lowered.steps);
        Ok(Model {
            lowered,
            order,
            layouts,
            threads,
            pool,
            plans: Mutex::new(HashMap::new()),
            arenas: Mutex::new(HashMap::new()),
        })
    }

    /// The lowering report.
    pub fn report(&self) -> &LoweringReport {
        &self.lowered.report
    }

    /// The lowered graph and steps.
    pub fn lowered(&self) -> &Lowered {
        &self.lowered
    }

    /// The tier the weights are packed for and every kernel runs on.
    pub fn tier(&self) -> Tier {
        self.lowered.tier
    }

    /// Worker threads.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Bytes of scratch buffers one run at these input shapes uses (planned on first use).
    ///
    /// # Errors
    /// As [`Model::run`] for shapes that do not fit the graph.
    pub fn scratch_bytes(&self, input_shapes: &[Vec<usize>]) -> Result<usize> {
        Ok(self.plan(input_shapes)?.arena_bytes())
    }

    /// Runs the model on NCHW inputs of the graph's element types (f32 images, i64 token ids,
    /// ...; in the order of the graph's inputs); returns the graph outputs (NCHW).
    ///
    /// # Errors
    /// [`Error::Input`] for a wrong input count, dtype or shape, or a NaN (naming the
    /// input); [`Error::Node`] when a step fails.
    pub fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        self.execute(inputs, None, None)
    }

    /// As [`Model::run`], calling `observer` with the name and NCHW value of every value a
    /// step writes (u8 for quantized values), in execution order: the inspection hook.
    ///
    /// # Errors
    /// As [`Model::run`].
    pub fn run_observed(
        &self,
        inputs: &[Tensor],
        observer: &mut Observer<'_>,
    ) -> Result<Vec<Tensor>> {
        self.execute(inputs, Some(observer), None)
    }

    /// As [`Model::run`], also returning the wall time of every step.
    ///
    /// # Errors
    /// As [`Model::run`].
    pub fn run_profiled(&self, inputs: &[Tensor]) -> Result<(Vec<Tensor>, Vec<StepTiming>)> {
        let mut times = Vec::with_capacity(self.lowered.steps.len());
        let out = self.execute(inputs, None, Some(&mut times))?;
        let timings = self
            .lowered
            .steps
            .iter()
            .zip(times)
            .map(|(s, time)| StepTiming {
                name: s.name.clone(),
                kernel: s.kind.label(),
                time,
            })
            .collect();
        Ok((out, timings))
    }

    fn check_inputs(&self, inputs: &[Tensor]) -> Result<Vec<Vec<usize>>> {
        let g = &self.lowered.graph;
        if inputs.len() != g.inputs().len() {
            return Err(Error::Input(format!(
                "the model has {} input(s), {} given",
                g.inputs().len(),
                inputs.len()
            )));
        }
        let mut shapes = Vec::with_capacity(inputs.len());
        for (&id, t) in g.inputs().iter().zip(inputs) {
            let v = g.value(id);
            let dims = v.ty.shape.dims();
            let fits = t.shape().len() == dims.len()
                && dims
                    .iter()
                    .zip(t.shape())
                    .enumerate()
                    .all(|(i, (d, &n))| match d {
                        // A relaxed batch was fixed at 1 by the exporter; any batch may run.
                        Dim::Known(k) => {
                            *k == n || (i == 0 && self.lowered.batch_relaxed && *k == 1 && n > 0)
                        }
                        Dim::Sym(_) => n > 0,
                    });
            if !fits || t.dtype() != v.ty.dtype {
                return Err(Error::Input(format!(
                    "input '{}' is {} {:?}, the model expects {} {}",
                    v.name,
                    t.dtype(),
                    t.shape(),
                    v.ty.dtype,
                    v.ty.shape
                )));
            }
            if let Some(i) = t.as_f32().and_then(first_nan) {
                return Err(Error::Input(format!(
                    "input '{}' holds NaN (first at flat index {i})",
                    v.name
                )));
            }
            shapes.push(t.shape().to_vec());
        }
        Ok(shapes)
    }

    fn plan(&self, shapes: &[Vec<usize>]) -> Result<Arc<Plan>> {
        let key = shapes.to_vec();
        if let Some(p) = self
            .plans
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(Arc::clone(p));
        }
        let plan = Arc::new(Plan::new(
            &self.lowered.graph,
            &self.order,
            &self.lowered.steps,
            shapes,
        )?);
        self.plans
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, Arc::clone(&plan));
        Ok(plan)
    }

    fn execute(
        &self,
        inputs: &[Tensor],
        observer: Option<&mut Observer<'_>>,
        times: Option<&mut Vec<Duration>>,
    ) -> Result<Vec<Tensor>> {
        let shapes = self.check_inputs(inputs)?;
        let plan = self.plan(&shapes)?;
        let arena = self
            .arenas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&shapes)
            .and_then(Vec::pop);
        let mut arena = arena.unwrap_or_else(|| plan.arena());
        let result = self
            .pool
            .install(|| self.steps(&plan, &mut arena, inputs, observer, times));
        self.arenas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(shapes)
            .or_default()
            .push(arena);
        result
    }

    fn steps(
        &self,
        plan: &Plan,
        arena: &mut Arena,
        inputs: &[Tensor],
        mut observer: Option<&mut Observer<'_>>,
        mut times: Option<&mut Vec<Duration>>,
    ) -> Result<Vec<Tensor>> {
        let g = &self.lowered.graph;
        for (i, step) in self.lowered.steps.iter().enumerate() {
            let start = Instant::now();
            match &step.kind {
                StepKind::Fallback(node) => self.fallback_step(i, node, plan, arena, inputs)?,
                _ => self.kernel_step(i, plan, arena, inputs)?,
            }
            release_dead_tensors(i, step, plan, arena);
            if let Some(t) = times.as_deref_mut() {
                t.push(start.elapsed());
            }
            if let Some(observe) = observer.as_deref_mut() {
                let view = self.input_view(plan, arena, inputs, step.output);
                observe(&g.value(step.output).name, &to_tensor(&view)?);
            }
        }
        g.outputs()
            .iter()
            .map(|&o| match &g.value(o).constant {
                Some(c) => Ok(Tensor::clone(c)),
                None => to_tensor(&self.input_view(plan, arena, inputs, o)),
            })
            .collect()
    }

    /// Runs kernel step `i` (any kind but a fallback) on its arena buffers.
    fn kernel_step(
        &self,
        i: usize,
        plan: &Plan,
        arena: &mut Arena,
        inputs: &[Tensor],
    ) -> Result<()> {
        let step = &self.lowered.steps[i];
        let out_shape = &plan.shapes[step.output.0];
        let len: usize = out_shape.iter().product();
        let slot = plan.slots[step.output.0];
        let mut out_buf = match slot {
            Some(Slot::U8(b)) => Buf::U8(std::mem::take(&mut arena.u8[b])),
            Some(Slot::F32(b)) => Buf::F32(std::mem::take(&mut arena.f32[b])),
            Some(Slot::Tensor(b)) => Buf::Tensor(arena.tensors[b].take()),
            _ => unreachable!("every step output has an arena buffer"),
        };
        let outcome = {
            let ins: Vec<In<'_>> = step
                .inputs
                .iter()
                .map(|&v| self.input_view(plan, arena, inputs, v))
                .collect();
            let out = match &mut out_buf {
                Buf::U8(b) => Out::U8(&mut b[..len]),
                Buf::F32(b) => Out::F32(&mut b[..len]),
                Buf::Tensor(t) => Out::Tensor(t),
            };
            let layout = self.layouts[step.output.0];
            run_step(
                step,
                plan.convs[i].as_ref(),
                self.tier(),
                &ins,
                out,
                out_shape,
                layout,
            )
        };
        match (slot, out_buf) {
            (Some(Slot::U8(b)), Buf::U8(v)) => arena.u8[b] = v,
            (Some(Slot::F32(b)), Buf::F32(v)) => arena.f32[b] = v,
            (Some(Slot::Tensor(b)), Buf::Tensor(t)) => arena.tensors[b] = t,
            _ => unreachable!("buffer returns to its slot"),
        }
        outcome
    }

    /// Runs fallback step `i`: inputs held as whole tensors are lent (or handed over when
    /// this step is their last reader), others copied into tensors; the result is moved into
    /// its tensor slot (or, for a u8 value, copied into its buffer in the value's layout).
    fn fallback_step(
        &self,
        i: usize,
        node: &FallbackNode,
        plan: &Plan,
        arena: &mut Arena,
        inputs: &[Tensor],
    ) -> Result<()> {
        let step = &self.lowered.steps[i];
        let mut handed: Vec<Option<Tensor>> = step
            .inputs
            .iter()
            .enumerate()
            .map(|(k, &v)| match plan.slots[v.0] {
                Some(Slot::Tensor(b))
                    if plan.last_use[v.0] == i
                        && node.reads_once(k)
                        && step.inputs.iter().filter(|&&w| w == v).count() == 1 =>
                {
                    arena.tensors[b].take()
                }
                _ => None,
            })
            .collect();
        let mut buffers = std::mem::take(&mut arena.buffers);
        let result = step
            .inputs
            .iter()
            .zip(handed.iter_mut())
            .map(|(&v, handed)| match handed.take() {
                Some(t) => Ok(Arg::Owned(t)),
                None => {
                    let view = self.input_view(plan, arena, inputs, v);
                    match view.whole {
                        Some(t) => Ok(Arg::Borrowed(t)),
                        None => to_tensor(&view).map(Arg::Owned),
                    }
                }
            })
            .collect::<Result<Vec<_>>>()
            .and_then(|args| node.eval(&step.name, args, self.threads, &mut buffers));
        arena.buffers = buffers;
        let t = result?;
        let out_shape = &plan.shapes[step.output.0];
        if t.shape() != out_shape.as_slice() {
            return Err(Error::node(
                step.kind.label(),
                &step.name,
                format!("computed shape {:?}, planned {:?}", t.shape(), out_shape),
            ));
        }
        let layout = self.layouts[step.output.0];
        match (plan.slots[step.output.0], t.data()) {
            (Some(Slot::Tensor(b)), _) => arena.tensors[b] = Some(t),
            (Some(Slot::U8(b)), TensorData::U8(v)) => relayout(
                v,
                out_shape,
                Layout::Plain,
                &mut arena.u8[b][..v.len()],
                out_shape,
                layout,
            ),
            _ => {
                return Err(Error::node(
                    step.kind.label(),
                    &step.name,
                    format!("a {} result does not fit the planned buffer", t.dtype()),
                ));
            }
        }
        Ok(())
    }

    /// The data of value `v` during a run.
    fn input_view<'a>(
        &self,
        plan: &'a Plan,
        arena: &'a Arena,
        inputs: &'a [Tensor],
        v: crate::ir::ValueId,
    ) -> In<'a> {
        let shape = &plan.shapes[v.0];
        let len: usize = shape.iter().product();
        let whole = match plan.slots[v.0] {
            Some(Slot::Input(k)) => Some(&inputs[k]),
            Some(Slot::Tensor(b)) => arena.tensors[b].as_ref(),
            _ => None,
        };
        let data = match (plan.slots[v.0], whole) {
            (Some(Slot::U8(b)), _) => Data::U8(&arena.u8[b][..len]),
            (Some(Slot::F32(b)), _) => Data::F32(&arena.f32[b][..len]),
            (_, Some(t)) => match t.data() {
                TensorData::F32(x) => Data::F32(x),
                TensorData::U8(x) => Data::U8(x),
                _ => Data::Tensor(t),
            },
            _ => Data::F32(&[]),
        };
        In {
            data,
            shape,
            layout: self.layouts[v.0],
            whole,
        }
    }
}

/// Index of the first NaN: blocks are screened with a branch-free (vectorizable) fold,
/// only a block holding a NaN is searched element by element.
fn first_nan(values: &[f32]) -> Option<usize> {
    const BLOCK: usize = 4096;
    values
        .chunks(BLOCK)
        .position(|b| b.iter().fold(false, |seen, x| seen | x.is_nan()))
        .and_then(|blk| {
            let start = blk * BLOCK;
            values[start..]
                .iter()
                .position(|x| x.is_nan())
                .map(|i| start + i)
        })
}

/// Returns the buffers of the whole-tensor values step `i` was the last reader of.
fn release_dead_tensors(i: usize, step: &Step, plan: &Plan, arena: &mut Arena) {
    for v in &step.inputs {
        if plan.last_use[v.0] == i
            && let Some(Slot::Tensor(b)) = plan.slots[v.0]
            && let Some(t) = arena.tensors[b].take()
            && let TensorData::F32(buf) = t.into_parts().1
        {
            arena.buffers.give(buf);
        }
    }
}

/// An arena buffer taken out for the step writing it.
enum Buf {
    U8(Vec<u8>),
    F32(Vec<f32>),
    Tensor(Option<Tensor>),
}
