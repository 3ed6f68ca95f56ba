//! The real AMX-INT8 instructions, written as `asm!` mnemonics (the AMX intrinsics and the
//! `amx-*` target features are unstable; the LLVM assembler accepts the mnemonics on
//! stable Rust without any target feature).

use std::arch::asm;
use std::time::Instant;

use super::config::TileConfig;
use super::tile_ops::{
    B_ROW_BYTES, B_TILE_BYTES, BlockArgs, PREFETCH_BYTES_PER_STEP, TileOps, TileSession,
};
use crate::cpu::{self, Tier};
use crate::error::Result;

/// Proof that AMX-INT8 can run on this thread: the CPU has AMX-TILE and AMX-INT8, the OS
/// saves the tile state (XCR0 bits 17, 18) and Linux granted the XTILEDATA permission.
/// The only way to get one is [`NativeTiles::new`], which checks all of that.
#[derive(Debug)]
pub(crate) struct NativeTiles {
    _checked: (),
}

impl NativeTiles {
    /// Checks that the AMX tier is available.
    ///
    /// # Errors
    /// [`crate::Error::TierUnavailable`] naming what is missing.
    pub(crate) fn new() -> Result<NativeTiles> {
        cpu::require(Tier::Amx)?;
        Ok(NativeTiles { _checked: () })
    }

    /// Runs `rounds` x 4 `tdpbusd` on register operands into four independent accumulators
    /// (the throughput probe). Needs the [`TileConfig::full_tiles`] configuration.
    fn dpbusd_rounds(&mut self, rounds: usize) {
        // SAFETY: `self` proves AMX is usable on this CPU/OS/process; the caller holds a
        // `TileSession` with the full-tiles configuration, so all shapes are valid. The
        // block touches no memory and only tile registers plus `rounds`, declared as clobbered.
        unsafe {
            asm!(
                "tilezero tmm4",
                "tilezero tmm5",
                "tilezero tmm6",
                "tilezero tmm7",
                "2:",
                "tdpbusd tmm0, tmm4, tmm6",
                "tdpbusd tmm1, tmm4, tmm7",
                "tdpbusd tmm2, tmm5, tmm6",
                "tdpbusd tmm3, tmm5, tmm7",
                "dec {rounds}",
                "jnz 2b",
                rounds = inout(reg) rounds.max(1) => _,
                out("tmm0") _, out("tmm1") _, out("tmm2") _, out("tmm3") _,
                out("tmm4") _, out("tmm5") _, out("tmm6") _, out("tmm7") _,
                options(nostack, nomem),
            );
        }
    }
}

impl TileOps for NativeTiles {
    fn load_config(&mut self, cfg: &TileConfig) {
        // SAFETY: `self` proves AMX is usable; `cfg` is 64 readable bytes of a valid
        // palette-1 configuration (TileConfig only builds valid ones), so no #GP.
        unsafe {
            asm!(
                "ldtilecfg [{cfg}]",
                cfg = in(reg) cfg.as_bytes().as_ptr(),
                options(nostack, readonly),
            );
        }
    }

    fn release(&mut self) {
        // SAFETY: `self` proves AMX is usable; `tilerelease` only resets tile state.
        unsafe {
            asm!(
                "tilerelease",
                out("tmm0") _, out("tmm1") _, out("tmm2") _, out("tmm3") _,
                out("tmm4") _, out("tmm5") _, out("tmm6") _, out("tmm7") _,
                options(nostack, nomem),
            );
        }
    }

    unsafe fn block<const MT: usize, const NT: usize>(&mut self, args: &BlockArgs) {
        const { assert!(MT >= 1 && MT <= 2 && NT >= 1 && NT <= 2) };
        // The assembler drops the `.if` parts for the absent tiles, so each (MT, NT) is its own
        // straight-line loop. Per K step: one A and one B load per `tdpbusd` pair, loads
        // interleaved with the multiplies so the next tile is in flight; pointers advance by
        // one entry of the A step table and one 1 KB packed tile of B. Each step also asks for
        // sixteen lines of `prefetch` in L2 (prefetch never faults, whatever the address).
        // SAFETY: `self` proves AMX is usable; the caller guarantees the full-tiles config is
        // loaded, `k_steps >= 1` and that every A/B tile row read and C row written lies in
        // valid, unaliased memory (this function's contract). All tile registers and every
        // pointer/counter register changed are declared as outputs. The step table holds
        // `k_steps` entries (contract).
        unsafe {
            asm!(
                "tilezero tmm0",
                ".if {nt} == 2", "tilezero tmm1", ".endif",
                ".if {mt} == 2", "tilezero tmm2", ".if {nt} == 2", "tilezero tmm3", ".endif", ".endif",
                "2:",
                "mov {t}, [{offs}]",
                "add {t}, {a0}",
                "tileloadd tmm4, [{t} + {lda}*1]",
                "tileloadd tmm6, [{b0} + {ld}*1]",
                "tdpbusd tmm0, tmm4, tmm6",
                ".if {nt} == 2",
                "tileloadd tmm7, [{b1} + {ld}*1]",
                "tdpbusd tmm1, tmm4, tmm7",
                ".endif",
                ".if {mt} == 2",
                "mov {t}, [{offs}]",
                "add {t}, {a1}",
                "tileloadd tmm5, [{t} + {lda}*1]",
                "tdpbusd tmm2, tmm5, tmm6",
                ".if {nt} == 2", "tdpbusd tmm3, tmm5, tmm7", ".endif",
                ".endif",
                "prefetcht1 [{pf}]",
                "prefetcht1 [{pf} + 64]",
                "prefetcht1 [{pf} + 128]",
                "prefetcht1 [{pf} + 192]",
                "prefetcht1 [{pf} + 256]",
                "prefetcht1 [{pf} + 320]",
                "prefetcht1 [{pf} + 384]",
                "prefetcht1 [{pf} + 448]",
                "prefetcht1 [{pf} + 512]",
                "prefetcht1 [{pf} + 576]",
                "prefetcht1 [{pf} + 640]",
                "prefetcht1 [{pf} + 704]",
                "prefetcht1 [{pf} + 768]",
                "prefetcht1 [{pf} + 832]",
                "prefetcht1 [{pf} + 896]",
                "prefetcht1 [{pf} + 960]",
                "add {pf}, {pfstep}",
                "add {offs}, 8",
                "add {b0}, {btile}",
                "add {b1}, {btile}",
                "dec {steps}",
                "jnz 2b",
                "tilestored [{c} + {ldc}*1], tmm0",
                ".if {nt} == 2", "tilestored [{c} + {ldc}*1 + 64], tmm1", ".endif",
                ".if {mt} == 2",
                "mov {a0}, {ldc}",
                "shl {a0}, 4",
                "add {a0}, {c}",
                "tilestored [{a0} + {ldc}*1], tmm2",
                ".if {nt} == 2", "tilestored [{a0} + {ldc}*1 + 64], tmm3", ".endif",
                ".endif",
                mt = const MT,
                nt = const NT,
                btile = const B_TILE_BYTES,
                a0 = inout(reg) args.a[0] => _,
                a1 = in(reg) args.a[1],
                lda = in(reg) args.lda,
                offs = inout(reg) args.a_steps => _,
                t = out(reg) _,
                b0 = inout(reg) args.b[0] => _,
                b1 = inout(reg) args.b[1] => _,
                ld = in(reg) B_ROW_BYTES,
                pf = inout(reg) args.prefetch => _,
                pfstep = const PREFETCH_BYTES_PER_STEP,
                steps = inout(reg) args.k_steps => _,
                c = in(reg) args.c,
                ldc = in(reg) args.ldc_bytes,
                out("tmm0") _, out("tmm1") _, out("tmm2") _, out("tmm3") _,
                out("tmm4") _, out("tmm5") _, out("tmm6") _, out("tmm7") _,
                options(nostack),
            );
        }
    }
}

/// `tdpbusd` throughput of this core in GOPS (2 ops per u8 x s8 multiply-add): four
/// independent accumulator tiles fed from registers, best of several timed runs on the
/// calling thread. `None` when AMX is not available here.
pub(crate) fn measure_peak_gops() -> Option<f64> {
    /// Multiply-adds of one full-size `tdpbusd` (16 x 16 outputs x 64 products).
    const MACS_PER_TDPBUSD: f64 = 16.0 * 16.0 * 64.0;
    /// About 1 ms per run at ~16 cycles per `tdpbusd`.
    const ROUNDS: usize = 50_000;
    let mut tiles = NativeTiles::new().ok()?;
    let mut session = TileSession::new(&mut tiles, &TileConfig::full_tiles());
    session.ops().dpbusd_rounds(ROUNDS / 10); // warm-up: clocks, tile state allocation
    let best = (0..7)
        .map(|_| {
            let start = Instant::now();
            session.ops().dpbusd_rounds(ROUNDS);
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    Some(2.0 * MACS_PER_TDPBUSD * 4.0 * ROUNDS as f64 / best / 1e9)
}
