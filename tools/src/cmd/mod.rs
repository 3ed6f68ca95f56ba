//! One module per `q8` subcommand; each has `Args` (clap) and `run(Args) -> Result<(), String>`.

pub mod bench;
pub mod cpu;
pub mod demo;
pub mod eval;
pub mod inspect;
pub mod ops;
pub mod quantize;
pub mod run;
