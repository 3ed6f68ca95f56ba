//! `q8 bench <what>`: throughput measurements of q8's kernels.

mod common;
pub mod conv;
pub mod encoder;
pub mod gemm;
pub mod model;
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
    /// A whole ONNX model end to end: median latency, images/s, int8 vs fp32 speedup.
    Model(model::ModelArgs),
    /// A BERT-style token encoder quantized statically in memory: int8 vs fp32 latency.
    Encoder(encoder::Args),
    /// The built-in ResNet-18 (random weights, quantized with the X86 recipe) end to end.
    Resnet18(model::ResNetArgs),
    /// `q8 bench file.onnx [options]`: shorthand for `q8 bench model file.onnx [options]`.
    #[command(external_subcommand)]
    File(Vec<String>),
}

/// Runs the chosen benchmark.
pub fn run(args: Args) -> Result<(), String> {
    match args.what {
        What::Gemm(a) => gemm::run(a),
        What::Conv(a) => conv::run(a),
        What::Ops(a) => ops::run(a),
        What::Model(a) => model::run_model(a),
        What::Resnet18(a) => model::run_resnet(a),
        What::Encoder(a) => encoder::run(a),
        What::File(args) => model::run_file(&args),
    }
}
