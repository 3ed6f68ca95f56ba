//! `q8 bench <what>`: throughput measurements of q8's kernels.

pub mod conv;
pub mod gemm;
pub mod ops;

/// Arguments of `q8 bench`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

/// What to benchmark.
#[derive(clap::Subcommand)]
enum What {
    /// Packed u8 x s8 GEMM with the fused u8 epilogue, per tier and thread count.
    Gemm(gemm::Args),
    /// The 20 ResNet-18 convolutions (u8 in/out, real epilogues), per tier, batch and threads.
    Conv(conv::Args),
    /// The memory-bound int8 ops and a depthwise conv, in GB/s.
    Ops(ops::Args),
}

/// Runs the chosen benchmark.
pub fn run(args: Args) -> Result<(), String> {
    match args.what {
        What::Gemm(a) => gemm::run(a),
        What::Conv(a) => conv::run(a),
        What::Ops(a) => ops::run(a),
    }
}
