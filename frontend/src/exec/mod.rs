//! The fp32 executor: runs a [`Graph`] on f32 NCHW inputs of any batch size.
//!
//! Built once per graph: nodes whose inputs are all constants (e.g. `DequantizeLinear` of
//! int8 weights) are evaluated at build time, and the execution order and each value's last
//! reader are planned. A run frees every value after its last reader and recycles its buffer
//! (element-wise ops work in place on dying inputs). Convolutions and matrix products run
//! through faer's f32 GEMM on a rayon pool of the requested size. QuantizeLinear /
//! DequantizeLinear run in reference mode with `int8-math.md` semantics, so QDQ models run
//! as dq -> fp32 op -> q.
//!
//! ```
//! use q8_frontend::exec::{ExecOptions, Executor};
//! use q8_frontend::ir::{Dim, GraphBuilder, Op, Shape, Tensor};
//! let mut b = GraphBuilder::new("net");
//! let x = b.input("x", Shape(vec![Dim::sym("batch"), Dim::Known(3)])).unwrap();
//! let y = b.linear("fc", x, vec![1.0, 0.0, 0.0, 0.0, 1.0, 1.0], Some(vec![0.5, -10.0]), 2).unwrap();
//! let y = b.op("relu", Op::Relu, &[y]).unwrap();
//! let graph = b.finish(&[y]).unwrap();
//! let exec = Executor::new(&graph, ExecOptions { threads: 1 }).unwrap();
//! let input = Tensor::from_f32(vec![1, 3], vec![1.0, 2.0, 3.0]).unwrap();
//! let mut seen = Vec::new();
//! let out = exec.run_observed(&[input], &mut |_, name, _| seen.push(name.to_string())).unwrap();
//! assert_eq!(out[0].as_f32().unwrap(), &[1.5, 0.0]);
//! assert_eq!(seen, ["x", "fc_output_0", "relu_output_0"]);
//! ```

mod buffers;
mod conv;
pub(crate) mod eltwise;
mod eval;
pub(crate) mod matmul;
mod pool;
mod qdq;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub(crate) use self::buffers::Buffers;
pub(crate) use self::eval::Arg;
use self::eval::{Ctx, eval};
use crate::error::{Error, Result};
use crate::ir::{Dim, Graph, NodeId, Shape, Tensor, TensorData, ValueId, ValueType, infer};

/// Executor settings.
#[derive(Clone, Copy, Debug, Default)]
pub struct ExecOptions {
    /// Worker threads; 0 = one per available core.
    pub threads: usize,
}

/// Called with every value a run computes (graph inputs first, then each node's outputs in
/// execution order): its id, its name and its data (NCHW for 4-D values).
pub type Observer<'a> = dyn FnMut(ValueId, &str, &Tensor) + Send + 'a;

/// A graph prepared for repeated fp32 execution. `Send + Sync`; runs may overlap.
pub struct Executor {
    graph: Graph,
    order: Vec<NodeId>,
    reads: Vec<usize>,
    keep: Vec<bool>,
    threads: usize,
    pool: rayon::ThreadPool,
    buffers: Mutex<Buffers>,
}

impl Executor {
    /// Validates `graph`, folds its constant sub-graphs and plans execution.
    ///
    /// # Errors
    /// Validation errors, a failing constant node, or a thread pool that cannot start.
    pub fn new(graph: &Graph, options: ExecOptions) -> Result<Executor> {
        graph.validate()?;
        let threads = match options.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| Error::Graph(format!("cannot start {threads} worker threads: {e}")))?;
        let mut graph = graph.clone();
        let mut buffers = Buffers::default();
        pool.install(|| fold_constants(&mut graph, threads, &mut buffers))?;
        let order = graph.topo_order()?;
        let mut reads = vec![0usize; graph.value_count()];
        for &id in &order {
            for v in &graph.node(id).expect("live node").inputs {
                reads[v.0] += 1;
            }
        }
        let mut keep = vec![false; graph.value_count()];
        for &o in graph.outputs() {
            keep[o.0] = true;
        }
        Ok(Executor {
            graph,
            order,
            reads,
            keep,
            threads,
            pool,
            buffers: Mutex::new(buffers),
        })
    }

    /// The executed graph (after constant folding).
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Worker threads used.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs the graph; `inputs` in the order of [`Graph::inputs`]. Returns the outputs in
    /// the order of [`Graph::outputs`].
    ///
    /// # Errors
    /// [`Error::Input`] when an input's dtype or shape does not match the graph (symbolic
    /// dims must agree across inputs); [`Error::Node`] when a node fails.
    pub fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        self.run_observed(inputs, &mut |_, _, _| {})
    }

    /// As [`Executor::run`], calling `observer` with every input and intermediate value.
    ///
    /// # Errors
    /// As [`Executor::run`].
    pub fn run_observed(
        &self,
        inputs: &[Tensor],
        observer: &mut Observer<'_>,
    ) -> Result<Vec<Tensor>> {
        self.run_in(inputs, observer, true)
    }

    /// As [`Executor::run`], on the caller's rayon pool instead of the executor's own: for
    /// callers already running inside a pool of the same size (the int8 runtime's fp32
    /// steps), which would otherwise hand every call to another pool's sleeping threads.
    ///
    /// # Errors
    /// As [`Executor::run`].
    pub fn run_here(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        self.run_in(inputs, &mut |_, _, _| {}, false)
    }

    /// Checks `inputs` and executes with the reusable buffers, in the executor's own pool
    /// (`own_pool`) or on the calling thread's.
    fn run_in(
        &self,
        inputs: &[Tensor],
        observer: &mut Observer<'_>,
        own_pool: bool,
    ) -> Result<Vec<Tensor>> {
        self.check_inputs(inputs)?;
        let mut buffers =
            std::mem::take(&mut *self.buffers.lock().unwrap_or_else(|e| e.into_inner()));
        let result = if own_pool {
            self.pool
                .install(|| self.execute(inputs, observer, &mut buffers))
        } else {
            self.execute(inputs, observer, &mut buffers)
        };
        *self.buffers.lock().unwrap_or_else(|e| e.into_inner()) = buffers;
        result
    }

    fn check_inputs(&self, inputs: &[Tensor]) -> Result<()> {
        let g = &self.graph;
        if inputs.len() != g.inputs().len() {
            return Err(Error::Input(format!(
                "the graph has {} inputs, {} were given",
                g.inputs().len(),
                inputs.len()
            )));
        }
        let mut bound: HashMap<&str, usize> = HashMap::new();
        for (&id, t) in g.inputs().iter().zip(inputs) {
            let v = g.value(id);
            let bad = || {
                Error::Input(format!(
                    "input '{}' is {} {:?}, the graph expects {} {}",
                    v.name,
                    t.dtype(),
                    t.shape(),
                    v.ty.dtype,
                    v.ty.shape
                ))
            };
            if t.dtype() != v.ty.dtype || t.shape().len() != v.ty.shape.rank() {
                return Err(bad());
            }
            for (d, &n) in v.ty.shape.dims().iter().zip(t.shape()) {
                match d {
                    Dim::Known(k) if *k != n => return Err(bad()),
                    Dim::Sym(s) if n == 0 || *bound.entry(s).or_insert(n) != n => {
                        return Err(bad());
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    fn execute(
        &self,
        inputs: &[Tensor],
        observer: &mut Observer<'_>,
        buffers: &mut Buffers,
    ) -> Result<Vec<Tensor>> {
        let g = &self.graph;
        let mut slots: Vec<Option<Cow<'_, Tensor>>> = (0..g.value_count()).map(|_| None).collect();
        for (&id, t) in g.inputs().iter().zip(inputs) {
            observer(id, &g.value(id).name, t);
            slots[id.0] = Some(Cow::Borrowed(t));
        }
        let mut remaining = self.reads.clone();
        for &id in &self.order {
            let node = g.node(id).expect("planned nodes are live");
            let owned: Vec<bool> = node
                .inputs
                .iter()
                .map(|v| {
                    !self.keep[v.0]
                        && remaining[v.0] == 1
                        && matches!(slots[v.0], Some(Cow::Owned(_)))
                })
                .collect();
            let mut taken: Vec<Option<Tensor>> = node
                .inputs
                .iter()
                .zip(&owned)
                .map(|(v, &own)| {
                    if own {
                        slots[v.0].take().map(Cow::into_owned)
                    } else {
                        None
                    }
                })
                .collect();
            let out = {
                let mut args = Vec::with_capacity(node.inputs.len());
                for (v, t) in node.inputs.iter().zip(taken.iter_mut()) {
                    let arg = match t.take() {
                        Some(t) => Arg::Owned(t),
                        None => Arg::Borrowed(self.lookup(*v, &slots, node)?),
                    };
                    args.push(arg);
                }
                eval_node(&node.op, &node.name, args, self.threads, buffers)?
            };
            for v in &node.inputs {
                remaining[v.0] -= 1;
                if remaining[v.0] == 0
                    && !self.keep[v.0]
                    && let Some(Cow::Owned(t)) = slots[v.0].take()
                    && let TensorData::F32(buf) = t.into_parts().1
                {
                    buffers.give(buf);
                }
            }
            for (&o, t) in node.outputs.iter().zip(out) {
                observer(o, &g.value(o).name, &t);
                slots[o.0] = Some(Cow::Owned(t));
            }
        }
        let outputs = g.outputs();
        outputs
            .iter()
            .enumerate()
            .map(|(k, &o)| {
                let missing =
                    || Error::Graph(format!("output '{}' was not computed", g.value(o).name));
                match &g.value(o).constant {
                    Some(c) => Ok(Tensor::clone(c)),
                    // Moved out at its last listing (a value may be listed twice).
                    None if !outputs[k + 1..].contains(&o) => {
                        slots[o.0].take().map(Cow::into_owned).ok_or_else(missing)
                    }
                    None => slots[o.0]
                        .as_ref()
                        .map(|t| t.as_ref().clone())
                        .ok_or_else(missing),
                }
            })
            .collect()
    }

    fn lookup<'s>(
        &'s self,
        v: ValueId,
        slots: &'s [Option<Cow<'_, Tensor>>],
        node: &crate::ir::Node,
    ) -> Result<&'s Tensor> {
        if let Some(c) = &self.graph.value(v).constant {
            return Ok(c);
        }
        slots[v.0].as_deref().ok_or_else(|| {
            Error::node(
                node.op.name(),
                &node.name,
                format!("input '{}' has no value", self.graph.value(v).name),
            )
        })
    }
}

/// Infers `op`'s output types from the concrete `args` and computes them, with `threads`
/// workers of the calling rayon pool and output buffers taken from `buffers`.
///
/// # Errors
/// Inference or evaluation errors naming `node`.
pub(crate) fn eval_node(
    op: &crate::ir::Op,
    node: &str,
    args: Vec<Arg<'_>>,
    threads: usize,
    buffers: &mut Buffers,
) -> Result<Vec<Tensor>> {
    let tys: Vec<ValueType> = args
        .iter()
        .map(|a| ValueType::new(a.tensor().dtype(), Shape::known(a.tensor().shape())))
        .collect();
    let ty_refs: Vec<&ValueType> = tys.iter().collect();
    let out_ty = infer(op, node, &ty_refs)?;
    let mut ctx = Ctx { threads, buffers };
    eval(op, node, args, &out_ty, &mut ctx)
}

/// Evaluates every node whose inputs are all constants and makes its output a constant.
pub(crate) fn fold_constants(
    graph: &mut Graph,
    threads: usize,
    buffers: &mut Buffers,
) -> Result<()> {
    for id in graph.topo_order()? {
        let node = graph.node(id).expect("live node").clone();
        let consts: Option<Vec<Arc<Tensor>>> = node
            .inputs
            .iter()
            .map(|v| graph.value(*v).constant.clone())
            .collect();
        let Some(consts) = consts else { continue };
        let args: Vec<Arg<'_>> = consts.iter().map(|t| Arg::Borrowed(t)).collect();
        let outs = eval_node(&node.op, &node.name, args, threads, buffers)?;
        graph.remove_node(id);
        for (&o, t) in node.outputs.iter().zip(outs) {
            graph.set_constant(o, Arc::new(t))?;
        }
    }
    Ok(())
}
