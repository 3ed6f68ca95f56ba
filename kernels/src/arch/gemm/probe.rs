//! Instruction-throughput probes: independent multiply-accumulate chains on registers, timed,
//! giving each tier's per-core peak in GOPS (2 ops per u8 x s8 multiply-accumulate).

use std::arch::x86_64::*;
use std::hint::black_box;
use std::time::Instant;

use crate::cpu::Tier;

/// Independent accumulator chains per probe (enough to hide the latency on every x86 core
/// measured: 5 cycles x 2 ports).
const CHAINS: usize = 16;

#[target_feature(enable = "avx512f,avx512vnni")]
fn vnni512_chains(iters: usize) -> i32 {
    let a = _mm512_set1_epi32(black_box(0x0101_0101));
    let b = _mm512_set1_epi32(black_box(0x0102_0301));
    let mut acc = [_mm512_setzero_si512(); CHAINS];
    for _ in 0..iters {
        for x in acc.iter_mut() {
            *x = _mm512_dpbusd_epi32(*x, a, b);
        }
    }
    let sum = acc
        .iter()
        .fold(_mm512_setzero_si512(), |s, &x| _mm512_add_epi32(s, x));
    _mm512_reduce_add_epi32(sum)
}

#[target_feature(enable = "avx2,avxvnni")]
fn avxvnni_chains(iters: usize) -> i32 {
    let a = _mm256_set1_epi32(black_box(0x0101_0101));
    let b = _mm256_set1_epi32(black_box(0x0102_0301));
    let mut acc = [_mm256_setzero_si256(); CHAINS];
    for _ in 0..iters {
        for x in acc.iter_mut() {
            *x = _mm256_dpbusd_avx_epi32(*x, a, b);
        }
    }
    let sum = acc
        .iter()
        .fold(_mm256_setzero_si256(), |s, &x| _mm256_add_epi32(s, x));
    _mm256_extract_epi32::<0>(sum)
}

/// The AVX2 triple `vpmaddubsw` + `vpmaddwd` (ones) + `vpaddd`, 32 MACs per triple.
#[target_feature(enable = "avx2")]
fn avx2_chains(iters: usize) -> i32 {
    const TRIPLES: usize = 8;
    let a = _mm256_set1_epi32(black_box(0x0101_0101));
    let b = _mm256_set1_epi32(black_box(0x0102_0301));
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_si256(); TRIPLES];
    for _ in 0..iters {
        for x in acc.iter_mut() {
            let t = _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), ones);
            *x = _mm256_add_epi32(*x, t);
        }
        // Keep the products inside the loop (a loop-invariant triple would be hoisted).
        black_box(&mut acc);
    }
    let sum = acc
        .iter()
        .fold(_mm256_setzero_si256(), |s, &x| _mm256_add_epi32(s, x));
    _mm256_extract_epi32::<0>(sum)
}

/// MACs per iteration of each probe loop.
fn macs_per_iter(tier: Tier) -> usize {
    match tier {
        Tier::Avx512Vnni => CHAINS * 64,
        Tier::AvxVnni => CHAINS * 32,
        _ => 8 * 32,
    }
}

/// Best-of-5 GOPS of `tier`'s MAC chains on this core. `None` for tiers without a probe here
/// (scalar, AMX) or that are not available (checked by the caller).
pub(crate) fn peak_gops(tier: Tier) -> Option<f64> {
    let run: fn(usize) -> i32 = match tier {
        // SAFETY: the caller checked `cpu::require(tier)`: AVX-512 F + VNNI are present.
        Tier::Avx512Vnni => |n| unsafe { vnni512_chains(n) },
        // SAFETY: the caller checked `cpu::require(tier)`: AVX2 + AVX-VNNI are present.
        Tier::AvxVnni => |n| unsafe { avxvnni_chains(n) },
        // SAFETY: the caller checked `cpu::require(tier)`: AVX2 is present.
        Tier::Avx2 => |n| unsafe { avx2_chains(n) },
        Tier::Scalar | Tier::Amx => return None,
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
