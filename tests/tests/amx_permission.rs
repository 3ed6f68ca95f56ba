//! A process capped by `Q8_ISA` below `amx` never asks Linux for the AMX tile-data
//! permission, so any tile instruction in it would fault (SIGILL): a capped child process that
//! runs GEMMs of AMX-sized shapes on its default tier and exits cleanly has executed none.
//! The uncapped parent, on an AMX machine, holds the permission.

use std::process::Command;

use q8_kernels::cpu::{self, AmxPermission, Tier};
use q8_kernels::gemm::{Epilogue, GemmOptions, Output, PackedWeights, Parallelism, gemm};
use q8_kernels::{Error, QParams};
use q8_tests::reference_i32;

/// Set in the child's environment: run [`capped_child_body`] instead of spawning.
const CHILD_VAR: &str = "Q8_AMX_PERMISSION_CHILD";

/// In the child (`Q8_ISA=avx512-vnni` or lower): no permission, AMX refused by name, and
/// large GEMMs on the default tier match the reference, on 1 and 2 threads.
fn capped_child_body() {
    let (f, os) = (cpu::info().features, cpu::info().os);
    let expected = if f.amx_tile && f.amx_int8 && os.amx {
        AmxPermission::CappedByEnv
    } else {
        AmxPermission::NotApplicable
    };
    assert_eq!(cpu::info().amx_permission, expected);
    assert!(
        !cpu::os_grants_amx_tile_data(),
        "capped process holds AMX tile permission"
    );
    assert!(matches!(
        cpu::require(Tier::Amx),
        Err(Error::TierUnavailable {
            tier: Tier::Amx,
            ..
        })
    ));
    // Weights may be packed in the AMX layout (that is only bytes), but never run on it.
    if let Ok(amx_weights) = PackedWeights::new(Tier::Amx, 64, 64, &[1; 64 * 64], &[1.0], None) {
        let mut out = vec![0i32; 64 * 64];
        let out = Output::I32 {
            data: &mut out,
            ldc: 64,
        };
        let a = [1u8; 64 * 64];
        let aq = QParams {
            scale: 1.0,
            zero_point: 0,
        };
        let refused = gemm(
            &a,
            64,
            64,
            aq,
            &amx_weights,
            &Epilogue::default(),
            out,
            &GemmOptions::default(),
        );
        assert!(
            matches!(
                refused,
                Err(Error::TierUnavailable {
                    tier: Tier::Amx,
                    ..
                })
            ),
            "{refused:?}"
        );
    }
    let tier = cpu::default_tier().unwrap();
    assert!(tier < Tier::Amx);
    let (m, n, k) = (96, 80, 192);
    let a: Vec<u8> = (0..m * k).map(|i| (i * 31 % 256) as u8).collect();
    let w: Vec<i8> = (0..n * k).map(|i| (i * 17 % 255) as i8).collect();
    let aq = QParams {
        scale: 0.02,
        zero_point: 7,
    };
    let want = reference_i32(&a, m, k, aq, &w, n);
    let packed = PackedWeights::new(tier, n, k, &w, &[1.0], None).unwrap();
    for parallelism in [Parallelism::Sequential, Parallelism::Threads(2)] {
        let mut got = vec![0i32; m * n];
        let out = Output::I32 {
            data: &mut got,
            ldc: n,
        };
        let opts = GemmOptions {
            tier: None,
            parallelism,
        };
        gemm(&a, k, m, aq, &packed, &Epilogue::default(), out, &opts).unwrap();
        assert_eq!(got, want, "{tier} {parallelism:?}");
    }
    println!("capped child ran on {tier} without AMX permission");
}

#[test]
fn a_process_capped_below_amx_never_holds_tile_permission() {
    if std::env::var_os(CHILD_VAR).is_some() {
        capped_child_body();
        return;
    }
    if cpu::is_available(Tier::Amx) {
        assert!(
            cpu::os_grants_amx_tile_data(),
            "uncapped AMX process lacks permission"
        );
    } else {
        eprintln!(
            "amx_permission: this process cannot run AMX ({}); checking only that the capped child stays below it",
            cpu::info().missing_reason(Tier::Amx)
        );
    }
    let cap = if cpu::is_available(Tier::Avx512Vnni) {
        "avx512-vnni"
    } else {
        "scalar"
    };
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args([
            "--exact",
            "a_process_capped_below_amx_never_holds_tile_permission",
            "--nocapture",
        ])
        .env(CHILD_VAR, "1")
        .env("Q8_ISA", cap)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "capped child failed ({:?}; a SIGILL means a tile instruction ran):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("capped child ran"),
        "child did not run its body:\n{stdout}"
    );
}
