//! One module per `q8` subcommand; each has `Args` (clap) and `run(Args) -> Result<(), String>`.

pub mod bench;
pub mod cpu;
pub mod demo;
pub mod eval;
pub mod inspect;
pub mod ops;
pub mod quantize;
pub mod run;

/// Prints a report as one line of JSON (the `--json` form of every command).
pub(crate) fn print_json(report: &impl serde::Serialize) -> Result<(), String> {
    let line = serde_json::to_string(report).map_err(|e| format!("JSON report: {e}"))?;
    println!("{line}");
    Ok(())
}
