//! `q8 inspect`: graph summary (inputs, outputs, op counts), int8 coverage and the per-node
//! lowering report of an ONNX model.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use q8_frontend::lower::LoweringReport;
use q8_frontend::onnx;
use q8_kernels::Tier;
use serde::Serialize;

/// Arguments of `q8 inspect`.
#[derive(clap::Args)]
pub struct Args {
    /// ONNX model file.
    model: PathBuf,
    /// Tier to lower for (default: the best available, capped by Q8_ISA).
    #[arg(long)]
    tier: Option<Tier>,
    /// Print one JSON object (graph summary and the lowering report).
    #[arg(long)]
    json: bool,
}

/// `q8 inspect --json`.
#[derive(Serialize)]
struct InspectJson<'a> {
    model: &'a str,
    nodes: usize,
    inputs: Vec<ValueJson>,
    outputs: Vec<ValueJson>,
    ops: &'a BTreeMap<&'a str, usize>,
    steps: usize,
    load_ms: f64,
    lowering: &'a LoweringReport,
}

/// A graph input or output: its name and `dtype shape`.
#[derive(Serialize)]
struct ValueJson {
    name: String,
    #[serde(rename = "type")]
    ty: String,
}

/// Runs `q8 inspect`.
pub fn run(args: Args) -> Result<(), String> {
    let model = args.model.display().to_string();
    let start = Instant::now();
    let graph = onnx::load(&args.model).map_err(|e| format!("{model}: {e}"))?;
    let m = super::eval::build_model(&model, &graph, args.tier, 1)?;
    let load_ms = start.elapsed().as_secs_f64() * 1e3;
    let mut ops: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, n) in graph.nodes() {
        *ops.entry(n.op.name()).or_default() += 1;
    }
    let io = |ids: &[q8_frontend::ir::ValueId]| -> Vec<(String, String)> {
        ids.iter()
            .map(|&i| {
                let v = graph.value(i);
                (v.name.clone(), format!("{} {}", v.ty.dtype, v.ty.shape))
            })
            .collect()
    };
    let (inputs, outputs) = (io(graph.inputs()), io(graph.outputs()));
    let report = m.report();
    if args.json {
        let list = |l: &[(String, String)]| -> Vec<ValueJson> {
            l.iter()
                .map(|(name, ty)| ValueJson {
                    name: name.clone(),
                    ty: ty.clone(),
                })
                .collect()
        };
        return super::print_json(&InspectJson {
            model: &model,
            nodes: graph.nodes().count(),
            inputs: list(&inputs),
            outputs: list(&outputs),
            ops: &ops,
            steps: m.lowered().steps.len(),
            load_ms,
            lowering: report,
        });
    }
    println!("{model}: {} nodes", graph.nodes().count());
    for (n, t) in &inputs {
        println!("  input  {n}: {t}");
    }
    for (n, t) in &outputs {
        println!("  output {n}: {t}");
    }
    let counts: Vec<String> = ops.iter().map(|(k, v)| format!("{k} x{v}")).collect();
    println!("  ops: {}", counts.join(", "));
    let (int8, total) = report.int8_coverage();
    println!(
        "coverage: {int8}/{total} conv/linear nodes on int8 kernels, {} f32 fallback nodes, {} steps (load + lower + pack {load_ms:.1} ms)",
        report.fallback_nodes().len(),
        m.lowered().steps.len()
    );
    print!("{report}");
    Ok(())
}
