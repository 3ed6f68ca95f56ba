//! `q8 cpu`: what the CPU has, what the OS enables, and the tier q8 will use.

use std::collections::BTreeMap;

use q8_kernels::cpu::{self, Tier};

/// Arguments of `q8 cpu`.
#[derive(clap::Args)]
pub struct Args {
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// `q8 cpu --json`.
#[derive(serde::Serialize)]
struct CpuJson<'a> {
    brand: &'a str,
    features: BTreeMap<&'static str, bool>,
    xcr0: String,
    os_avx: bool,
    os_avx512: bool,
    os_amx: bool,
    amx_permission: &'a str,
    tiers: BTreeMap<&'static str, bool>,
    chosen: &'static str,
}

/// Prints the detection report.
pub fn run(args: Args) -> Result<(), String> {
    let info = cpu::info();
    let chosen = cpu::default_tier().map_err(|e| e.to_string())?;
    let f = &info.features;
    let flags = [
        ("avx2", f.avx2),
        ("fma", f.fma),
        ("avx512f", f.avx512f),
        ("avx512bw", f.avx512bw),
        ("avx512vl", f.avx512vl),
        ("avx512vnni", f.avx512vnni),
        ("avxvnni", f.avxvnni),
        ("amx_tile", f.amx_tile),
        ("amx_int8", f.amx_int8),
    ];
    let amx = match &info.amx_permission {
        cpu::AmxPermission::NotApplicable => "not requested (no AMX in CPU or OS)".to_string(),
        cpu::AmxPermission::CappedByEnv => "not requested (Q8_ISA caps below amx)".to_string(),
        cpu::AmxPermission::Granted => "granted".to_string(),
        cpu::AmxPermission::Denied(why) => format!("denied: {why}"),
    };
    if args.json {
        return super::print_json(&CpuJson {
            brand: &info.brand,
            features: flags.iter().copied().collect(),
            xcr0: format!("{:#x}", info.os.xcr0),
            os_avx: info.os.avx,
            os_avx512: info.os.avx512,
            os_amx: info.os.amx,
            amx_permission: &amx,
            tiers: Tier::ALL
                .iter()
                .map(|&t| (t.name(), cpu::is_available(t)))
                .collect(),
            chosen: chosen.name(),
        });
    }
    println!("CPU: {}", info.brand);
    let present: Vec<&str> = flags.iter().filter(|f| f.1).map(|f| f.0).collect();
    println!("features: {}", present.join(" "));
    println!(
        "OS state (XCR0 = {:#x}): AVX {}, AVX-512 {}, AMX tiles {}",
        info.os.xcr0,
        yes_no(info.os.avx),
        yes_no(info.os.avx512),
        yes_no(info.os.amx)
    );
    println!("AMX permission: {amx}");
    for t in Tier::ALL {
        let why = info.missing_reason(t);
        if why.is_empty() {
            println!("  tier {:<12} available", t.name());
        } else {
            println!("  tier {:<12} unavailable: {why}", t.name());
        }
    }
    let capped = std::env::var("Q8_ISA").map(|v| format!(" (capped by Q8_ISA={v})"));
    println!("chosen tier: {}{}", chosen, capped.unwrap_or_default());
    Ok(())
}

fn yes_no(b: bool) -> &'static str {
    if b { "enabled" } else { "disabled" }
}
