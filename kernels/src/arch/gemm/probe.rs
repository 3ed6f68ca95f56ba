//! Instruction-throughput probes: independent multiply-accumulate chains on registers, timed,
//! giving each tier's per-core peak in GOPS (2 ops per u8 x s8 multiply-accumulate).

use std::arch::x86_64::*;
use std::hint::black_box;
use std::time::Instant;

use crate::cpu::Tier;

/// Independent zmm accumulator chains (latency ~4-5 cycles x 2 ports: >= 10 are needed).
const CHAINS: usize = 16;
/// Independent ymm chains: as many as 16 ymm registers leave room for (spilling ruins it).
const YMM_CHAINS: usize = 12;

/// `$name(iters)`: `$chains` independent `$dpbusd` accumulator chains over `iters`
/// iterations, summed into one i32 so nothing is optimized away (one body for the zmm and
/// ymm VNNI probes, which differ only in register width).
macro_rules! vnni_chains {
    (
        $name:ident, $features:literal, $chains:expr,
        $set1:ident, $zero:ident, $dpbusd:ident, $add:ident, $reduce:expr
    ) => {
        #[target_feature(enable = $features)]
        fn $name(iters: usize) -> i32 {
            let a = $set1(black_box(0x0101_0101));
            let b = $set1(black_box(0x0102_0301));
            let mut acc = [$zero(); $chains];
            for _ in 0..iters {
                for x in acc.iter_mut() {
                    *x = $dpbusd(*x, a, b);
                }
            }
            let sum = acc.iter().fold($zero(), |s, &x| $add(s, x));
            $reduce(sum)
        }
    };
}

vnni_chains!(
    vnni512_chains,
    "avx512f,avx512vnni",
    CHAINS,
    _mm512_set1_epi32,
    _mm512_setzero_si512,
    _mm512_dpbusd_epi32,
    _mm512_add_epi32,
    _mm512_reduce_add_epi32
);
vnni_chains!(
    avxvnni_chains,
    "avx2,avxvnni",
    YMM_CHAINS,
    _mm256_set1_epi32,
    _mm256_setzero_si256,
    _mm256_dpbusd_avx_epi32,
    _mm256_add_epi32,
    _mm256_extract_epi32::<0>
);

/// The AVX2 triple `vpmaddubsw` + `vpmaddwd` (ones) + `vpaddd`, 32 MACs per triple, 8
/// independent triples per iteration. Written in `asm!` because the compiler would hoist
/// the loop-invariant products out of an intrinsics loop.
#[target_feature(enable = "avx2")]
fn avx2_chains(iters: usize) -> i32 {
    let out: i32;
    // SAFETY: AVX2 is enabled for this function (its callers check the CPU); the asm uses
    // only registers it declares as clobbered and touches no memory.
    unsafe {
        std::arch::asm!(
            "vpcmpeqw ymm2, ymm2, ymm2",
            "vpsrlw ymm2, ymm2, 15",
            "vmovd xmm0, {a:e}",
            "vpbroadcastd ymm0, xmm0",
            "vmovd xmm1, {b:e}",
            "vpbroadcastd ymm1, xmm1",
            "vpxor ymm8, ymm8, ymm8",
            "vpxor ymm9, ymm9, ymm9",
            "vpxor ymm10, ymm10, ymm10",
            "vpxor ymm11, ymm11, ymm11",
            "vpxor ymm12, ymm12, ymm12",
            "vpxor ymm13, ymm13, ymm13",
            "vpxor ymm14, ymm14, ymm14",
            "vpxor ymm15, ymm15, ymm15",
            "2:",
            "vpmaddubsw ymm4, ymm0, ymm1",
            "vpmaddubsw ymm5, ymm0, ymm1",
            "vpmaddubsw ymm6, ymm0, ymm1",
            "vpmaddubsw ymm7, ymm0, ymm1",
            "vpmaddwd ymm4, ymm4, ymm2",
            "vpmaddwd ymm5, ymm5, ymm2",
            "vpmaddwd ymm6, ymm6, ymm2",
            "vpmaddwd ymm7, ymm7, ymm2",
            "vpaddd ymm8, ymm8, ymm4",
            "vpaddd ymm9, ymm9, ymm5",
            "vpaddd ymm10, ymm10, ymm6",
            "vpaddd ymm11, ymm11, ymm7",
            "vpmaddubsw ymm4, ymm0, ymm1",
            "vpmaddubsw ymm5, ymm0, ymm1",
            "vpmaddubsw ymm6, ymm0, ymm1",
            "vpmaddubsw ymm7, ymm0, ymm1",
            "vpmaddwd ymm4, ymm4, ymm2",
            "vpmaddwd ymm5, ymm5, ymm2",
            "vpmaddwd ymm6, ymm6, ymm2",
            "vpmaddwd ymm7, ymm7, ymm2",
            "vpaddd ymm12, ymm12, ymm4",
            "vpaddd ymm13, ymm13, ymm5",
            "vpaddd ymm14, ymm14, ymm6",
            "vpaddd ymm15, ymm15, ymm7",
            "dec {n}",
            "jnz 2b",
            "vpaddd ymm8, ymm8, ymm12",
            "vmovd {out:e}, xmm8",
            n = inout(reg) iters.max(1) => _,
            a = in(reg) black_box(0x0101_0101u32),
            b = in(reg) black_box(0x0102_0301u32),
            out = lateout(reg) out,
            out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm4") _, out("ymm5") _,
            out("ymm6") _, out("ymm7") _, out("ymm8") _, out("ymm9") _, out("ymm10") _,
            out("ymm11") _, out("ymm12") _, out("ymm13") _, out("ymm14") _, out("ymm15") _,
            options(nomem, nostack),
        );
    }
    out
}

/// MACs per iteration of each probe loop.
fn macs_per_iter(tier: Tier) -> usize {
    match tier {
        Tier::Avx512Vnni => CHAINS * 64,
        Tier::AvxVnni => YMM_CHAINS * 32,
        _ => 8 * 32,
    }
}

/// Best-of-5 GOPS of `tier`'s MAC chains on this core (AMX: `arch::amx`'s `tdpbusd` probe).
/// `None` for the scalar tier, or AMX when it cannot run. The caller checks availability.
pub(crate) fn peak_gops(tier: Tier) -> Option<f64> {
    let run: fn(usize) -> i32 = match tier {
        // SAFETY: the caller checked `cpu::require(tier)`: AVX-512 F + VNNI are present.
        Tier::Avx512Vnni => |n| unsafe { vnni512_chains(n) },
        // SAFETY: the caller checked `cpu::require(tier)`: AVX2 + AVX-VNNI are present.
        Tier::AvxVnni => |n| unsafe { avxvnni_chains(n) },
        // SAFETY: the caller checked `cpu::require(tier)`: AVX2 is present.
        Tier::Avx2 => |n| unsafe { avx2_chains(n) },
        Tier::Amx => return crate::arch::amx::measure_peak_gops(),
        Tier::Scalar => return None,
    };
    black_box(run(10_000)); // warm up the vector unit and the clock
    let iters = 200_000;
    let best = (0..5)
        .map(|_| {
            let t = Instant::now();
            black_box(run(black_box(iters)));
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    Some(2.0 * (iters * macs_per_iter(tier)) as f64 / best / 1e9)
}
