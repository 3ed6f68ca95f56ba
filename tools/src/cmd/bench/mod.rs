//! `q8 bench <what>`: throughput measurements of q8's kernels.

pub mod gemm;

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
}

/// Runs the chosen benchmark.
pub fn run(args: Args) -> Result<(), String> {
    match args.what {
        What::Gemm(a) => gemm::run(a),
    }
}
