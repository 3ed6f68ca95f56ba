//! The AMX driver against a naive triple loop: on the emulator always, on the real tiles
//! when this CPU has AMX.

use proptest::prelude::*;

use super::emulator::EmulatedTiles;
use super::*;
use crate::cpu::{self, Tier};
use crate::error::Error;

/// Tile-edge sizes every dimension is tried with.
const EDGES: [usize; 13] = [1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129];

/// One strided problem: `a` is exactly `(m-1)·lda + k` bytes starting `a_off` into its
/// buffer; `acc` has `acc_off` values before it and row stride `ldacc`.
#[derive(Clone, Debug)]
struct Problem {
    m: usize,
    n: usize,
    k: usize,
    n0: usize,
    nb: usize,
    lda: usize,
    ldacc: usize,
    a_off: usize,
    acc_off: usize,
    a_buf: Vec<u8>,
    w: Vec<i8>,
}

impl Problem {
    #[allow(clippy::too_many_arguments, reason = "test problem description")]
    fn new(
        m: usize,
        n: usize,
        k: usize,
        n0: usize,
        nb: usize,
        lda_extra: usize,
        ldacc_extra: usize,
        offsets: (usize, usize),
        mut next: impl FnMut() -> u32,
    ) -> Problem {
        let lda = k + lda_extra;
        let a_len = (m - 1) * lda + k;
        Problem {
            m,
            n,
            k,
            n0,
            nb,
            lda,
            ldacc: nb + ldacc_extra,
            a_off: offsets.0,
            acc_off: offsets.1,
            a_buf: (0..offsets.0 + a_len).map(|_| next() as u8).collect(),
            w: (0..n * k).map(|_| next() as i8).collect(),
        }
    }

    fn a(&self) -> &[u8] {
        &self.a_buf[self.a_off..]
    }

    fn acc_len(&self) -> usize {
        (self.m - 1) * self.ldacc + self.nb
    }

    /// `acc[i·ldacc + j] = sum_kk a[i·lda + kk] · w[n0 + j][kk]`, with the gaps between rows
    /// keeping the sentinel.
    fn naive(&self, sentinel: i32) -> Vec<i32> {
        let mut out = vec![sentinel; self.acc_off + self.acc_len()];
        for i in 0..self.m {
            for j in 0..self.nb {
                let col = &self.w[(self.n0 + j) * self.k..][..self.k];
                let row = &self.a()[i * self.lda..][..self.k];
                let dot = row
                    .iter()
                    .zip(col)
                    .map(|(&x, &y)| i32::from(x) * i32::from(y))
                    .fold(0i32, i32::wrapping_add);
                out[self.acc_off + i * self.ldacc + j] = dot;
            }
        }
        out
    }

    /// Runs the driver on `ops` (A in place where it can be, or all packed), writing into a
    /// buffer full of `sentinel`.
    fn run<O: TileOps>(
        &self,
        ops: &mut O,
        b: &AmxPackedB,
        sentinel: i32,
        in_place: bool,
    ) -> Vec<i32> {
        let mut out = vec![sentinel; self.acc_off + self.acc_len()];
        let acc = &mut out[self.acc_off..];
        gemm_i32_with(
            ops,
            b,
            self.a(),
            self.lda,
            self.m,
            self.n0,
            self.nb,
            acc,
            self.ldacc,
            in_place,
        )
        .expect("valid problem");
        out
    }
}

/// xorshift32: a deterministic value stream for the sweeps.
fn stream(mut s: u32) -> impl FnMut() -> u32 {
    move || {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        s
    }
}

/// Checks `p` on the emulator (results, tdpbusd count, one config load, release) and, when
/// the CPU has AMX, on the real tiles.
fn check(p: &Problem) {
    let b = AmxPackedB::new(&p.w, p.n, p.k);
    let want = p.naive(i32::MIN);
    let mut emu = EmulatedTiles::new();
    assert_eq!(
        p.run(&mut emu, &b, i32::MIN, true),
        want,
        "emulated AMX: {p:?}"
    );
    assert_eq!(emu.config_loads, 1, "one ldtilecfg per call");
    assert!(
        !emu.is_configured(),
        "tiles released at the end of the call"
    );
    let panels = (p.n0 + p.nb).div_ceil(16) - p.n0 / 16;
    assert_eq!(
        emu.dpbusd_count,
        p.m.div_ceil(16) * panels * b.k_padded() / 64,
        "one tdpbusd per (A tile, B panel, K step)"
    );
    let packed = p.run(&mut EmulatedTiles::new(), &b, i32::MIN, false);
    assert_eq!(packed, want, "emulated AMX, A packed: {p:?}");
    if cpu::is_available(Tier::Amx) {
        for in_place in [true, false] {
            let got = p.run(&mut NativeTiles::new().unwrap(), &b, i32::MIN, in_place);
            assert_eq!(
                got, want,
                "AMX (A in place where possible: {in_place}): {p:?}"
            );
        }
    }
}

fn report_native_skip() {
    if !cpu::is_available(Tier::Amx) {
        eprintln!(
            "amx: real AMX path skipped on this CPU ({}); emulated path tested",
            cpu::require(Tier::Amx).unwrap_err()
        );
    }
}

#[test]
fn edge_shapes_match_naive() {
    report_native_skip();
    let mut next = stream(0x9e37_79b9);
    for &m in &EDGES {
        for &n in &EDGES {
            for &k in &EDGES {
                check(&Problem::new(m, n, k, 0, n, 0, 0, (0, 0), &mut next));
            }
        }
    }
}

#[test]
fn extreme_values_are_exact_up_to_the_k_bound() {
    report_native_skip();
    // 255 · 128 · 65 793 < 2^31: the largest K the contract allows is summed exactly.
    for (k, w_even, w_odd) in [
        (129, -128i8, 127i8),
        (65_793, -128, -128),
        (4_160, 127, 127),
    ] {
        let (m, n) = (17, 18);
        let mut p = Problem::new(m, n, k, 1, 17, 3, 2, (5, 1), stream(1));
        p.a_buf.fill(255);
        for (col, column) in p.w.chunks_mut(k).enumerate() {
            column.fill(if col % 2 == 0 { w_even } else { w_odd });
        }
        check(&p);
        // Output (0, 0) is column n0 = 1, an odd one.
        assert_eq!(p.naive(0)[1], 255 * i32::from(w_odd) * k as i32);
    }
}

#[test]
fn wrapping_matches_tdpbusd_beyond_the_bound() {
    let k = 65_856; // 1029 K steps, 255 · -128 · K < -2^31
    let p = {
        let mut p = Problem::new(1, 1, k, 0, 1, 0, 0, (0, 0), stream(3));
        p.a_buf.fill(255);
        p.w.fill(-128);
        p
    };
    let b = AmxPackedB::new(&p.w, 1, k);
    let got = p.run(&mut EmulatedTiles::new(), &b, 0, true);
    assert_eq!(got[0], (-(255i64 * 128 * k as i64)) as i32);
}

#[test]
fn argument_errors() {
    let (m, n, k) = (3, 20, 70);
    let w = vec![1i8; n * k];
    let b = AmxPackedB::new(&w, n, k);
    let a = vec![1u8; (m - 1) * 80 + k];
    let mut acc = vec![0i32; (m - 1) * 24 + 20];
    let mut emu = EmulatedTiles::new();
    let mut run = |a: &[u8], lda, n0, nb, acc: &mut [i32], ldacc| {
        gemm_i32_with(&mut emu, &b, a, lda, m, n0, nb, acc, ldacc, true)
    };
    assert!(run(&a, 80, 0, 20, &mut acc, 24).is_ok());
    assert!(matches!(
        run(&a, 80, 1, 20, &mut acc, 24),
        Err(Error::Shape(_))
    ));
    assert!(matches!(
        run(&a, 80, usize::MAX, 2, &mut acc, 24),
        Err(Error::Shape(_))
    ));
    assert!(matches!(
        run(&a, 80, 0, 20, &mut acc, 19),
        Err(Error::Shape(_))
    ));
    assert!(matches!(
        run(&a, usize::MAX, 0, 20, &mut acc, 24),
        Err(Error::Shape(_))
    ));
    let short = &a[..a.len() - 1];
    match run(short, 80, 0, 20, &mut acc, 24) {
        Err(Error::Length {
            expected, actual, ..
        }) => {
            assert_eq!((expected, actual), (a.len(), a.len() - 1));
        }
        other => panic!("short a: {other:?}"),
    }
    let n_acc = acc.len();
    assert!(matches!(
        run(&a, 80, 0, 20, &mut acc[..n_acc - 1], 24),
        Err(Error::Length { expected, .. }) if expected == n_acc
    ));
    assert_eq!(emu.config_loads, 1, "rejected calls never touch the tiles");
    // The native entry point refuses to run without AMX instead of faulting.
    let mut packed = a_tiles();
    let a_op = AOperand::new(
        &b,
        m,
        20,
        |i| &a[i * 80..][..k],
        Some((&a, 80)),
        &mut packed,
    );
    let native = gemm_tiles(&b, &a_op, 0, 20, |_| Ok(()));
    if cpu::is_available(Tier::Amx) {
        assert!(native.is_ok());
    } else {
        assert!(matches!(
            native,
            Err(Error::TierUnavailable {
                tier: Tier::Amx,
                ..
            })
        ));
    }
}

#[test]
fn empty_and_zero_k_calls() {
    let b = AmxPackedB::new(&[], 4, 0);
    let mut acc = vec![9i32; 2 * 5 + 4];
    gemm_i32_with(
        &mut EmulatedTiles::new(),
        &b,
        &[],
        0,
        3,
        0,
        4,
        &mut acc,
        5,
        true,
    )
    .unwrap();
    assert_eq!(acc.iter().filter(|&&x| x == 0).count(), 12);
    let b = AmxPackedB::new(&[1; 8], 4, 2);
    let mut emu = EmulatedTiles::new();
    gemm_i32_with(&mut emu, &b, &[], 2, 0, 0, 4, &mut [], 4, true).unwrap();
    gemm_i32_with(&mut emu, &b, &[1, 1], 2, 1, 2, 0, &mut [], 4, true).unwrap();
    assert_eq!(emu.config_loads, 0);
}

#[test]
fn peak_probe_runs_only_with_amx() {
    match measure_peak_gops() {
        Some(gops) => assert!(gops > 100.0, "tdpbusd peak {gops} GOPS"),
        None => {
            assert!(!cpu::is_available(Tier::Amx));
            eprintln!("amx: tdpbusd peak probe skipped: AMX not available on this CPU");
        }
    }
}

fn edge_or_any(max: usize) -> impl Strategy<Value = usize> {
    prop_oneof![proptest::sample::select(EDGES.to_vec()), 1..=max]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random shapes, column windows, strides and unaligned offsets.
    #[test]
    fn strided_windows_match_naive(
        m in edge_or_any(80),
        n in edge_or_any(80),
        k in edge_or_any(200),
        window in (0.0f64..1.0, 0.0f64..=1.0),
        lda_extra in prop_oneof![Just(0usize), 1..70usize],
        ldacc_extra in 0..20usize,
        offsets in (0..64usize, 0..16usize),
        seed in any::<u32>(),
    ) {
        let n0 = ((n as f64 * window.0) as usize).min(n - 1);
        let nb = (((n - n0) as f64 * window.1) as usize).max(1);
        check(&Problem::new(m, n, k, n0, nb, lda_extra, ldacc_extra, offsets, stream(seed | 1)));
    }
}

/// The direct-convolution operand: every K step of row `i` read at `i·lda + steps[s]`
/// (steps out of order and overlapping, rows past `m` in the last group never handed to
/// the sink), on the emulator and on the real tiles.
#[test]
fn tap_offsets_match_naive() {
    report_native_skip();
    let mut next = stream(0x7a95);
    for (m, n, lda, steps) in [
        (1usize, 16usize, 64usize, vec![0usize]),
        (33, 48, 64, vec![640, 0, 64, 128, 704]),
        (70, 32, 192, vec![128, 0, 192, 64, 1000, 3]),
    ] {
        let k = steps.len() * 64;
        let reach = steps.iter().max().unwrap() + 64;
        let data: Vec<u8> = (0..(m.next_multiple_of(32) - 1) * lda + reach)
            .map(|_| next() as u8)
            .collect();
        let w: Vec<i8> = (0..n * k).map(|_| next() as i8).collect();
        let b = AmxPackedB::new(&w, n, k);
        let naive: Vec<i32> = (0..m * n)
            .map(|at| {
                let (i, j) = (at / n, at % n);
                (0..k)
                    .map(|kk| {
                        let x = data[i * lda + steps[kk / 64] + kk % 64];
                        i32::from(x) * i32::from(w[j * k + kk])
                    })
                    .sum()
            })
            .collect();
        let run =
            |ops: &mut dyn FnMut(&AOperand<'_>, &mut Vec<i32>) -> crate::error::Result<()>| {
                let a = AOperand::taps(&b, m, &data, lda, &steps).unwrap();
                let mut out = vec![i32::MIN; m * n];
                ops(&a, &mut out).unwrap();
                out
            };
        let sink = |out: &mut Vec<i32>, blk: &CBlock<'_>| {
            for r in 0..blk.rows {
                let at = (blk.i0 + r) * n + blk.j0;
                out[at..at + blk.cols].copy_from_slice(&blk.data[r * BLOCK_DIM..][..blk.cols]);
            }
            Ok(())
        };
        let emulated = run(&mut |a, out| {
            driver::gemm_tiles_with(&mut EmulatedTiles::new(), &b, a, 0, n, |blk| sink(out, blk))
        });
        assert_eq!(emulated, naive, "emulated taps m={m} n={n} steps={steps:?}");
        if cpu::is_available(Tier::Amx) {
            let native = run(&mut |a, out| gemm_tiles(&b, a, 0, n, |blk| sink(out, blk)));
            assert_eq!(native, naive, "AMX taps m={m} n={n} steps={steps:?}");
        }
        let short = AOperand::taps(&b, m, &data[..data.len() - 1], lda, &steps);
        assert!(
            matches!(short, Err(Error::Shape(_))),
            "short data is refused"
        );
    }
}
