//! The `q8` command line.

mod cmd;

use clap::{Parser, Subcommand};

/// q8: int8 inference for x86.
#[derive(Parser)]
#[command(name = "q8", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print detected CPU features, OS enablement, AMX permission and the tier chosen.
    Cpu(cmd::cpu::Args),
    /// Benchmark a kernel: `q8 bench gemm [--shapes ...] [--threads 1,2] [--tier ...] [--json]`.
    Bench(cmd::bench::Args),
    /// Run an ONNX model in fp32 on a .npy input: `q8 run model.onnx --input x.npy [-o out.npy]`.
    Run(cmd::run::Args),
    /// Post-training quantization (X86 recipe): `q8 quantize model.onnx --calib x.npy -o model.q8.onnx`.
    Quantize(cmd::quantize::Args),
    /// Top-1 accuracy (and SQNR against reference logits) of a model on a labelled .npy set.
    Eval(cmd::eval::Args),
    /// The embedded demo: quantize the bundled digits model, then ResNet-18 int8 vs fp32.
    Demo(cmd::demo::Args),
    /// Graph summary, int8 coverage and the per-node lowering report of an ONNX model.
    Inspect(cmd::inspect::Args),
    /// The ONNX op types q8 imports (from the op registry).
    Ops(cmd::ops::Args),
}

fn main() {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Cpu(args) => cmd::cpu::run(args),
        Command::Bench(args) => cmd::bench::run(args),
        Command::Run(args) => cmd::run::run(args),
        Command::Quantize(args) => cmd::quantize::run(args),
        Command::Eval(args) => cmd::eval::run(args),
        Command::Demo(args) => cmd::demo::run(args),
        Command::Inspect(args) => cmd::inspect::run(args),
        Command::Ops(args) => cmd::ops::run(args),
    };
    if let Err(message) = outcome {
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}
