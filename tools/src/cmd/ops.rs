//! `q8 ops`: the ONNX op types q8 imports, from the op registry.

/// Arguments of `q8 ops`.
#[derive(clap::Args)]
pub struct Args {
    /// Print a JSON array instead of one op type per line.
    #[arg(long)]
    json: bool,
}

/// Prints the supported op types, sorted.
pub fn run(args: Args) -> Result<(), String> {
    let ops = q8_frontend::ops::supported_ops();
    if args.json {
        let quoted: Vec<String> = ops.iter().map(|o| format!("{o:?}")).collect();
        println!("[{}]", quoted.join(","));
    } else {
        for op in ops {
            println!("{op}");
        }
    }
    Ok(())
}
