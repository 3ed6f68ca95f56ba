//! The packed GEMM on every available tier against the scalar reference: exact equality of
//! i32, u8 and f32 outputs over random shapes (tile edges forced in), zero points, scales,
//! bias, residual, activations, extreme values, offsets and strides; AVX2 adversarial pairs;
//! thread-count invariance; argument errors.

use proptest::prelude::*;
use q8_kernels::cpu::{self, Tier};
use q8_kernels::gemm::{
    Epilogue, GemmOptions, Output, PackedWeights, Parallelism, Residual, gemm, pair_may_saturate,
};
use q8_kernels::reference::gemm::{MAX_K, RefOutput, gemm_ref};
use q8_kernels::{Activation, Error, QParams};
use q8_tests::{available_tiers, reference_i32};

/// Tiers that can run here (and pack weights); the others are reported as skipped, by name.
fn tiers() -> Vec<Tier> {
    available_tiers("gemm tests")
        .into_iter()
        .filter(|&t| match PackedWeights::new(t, 1, 1, &[1], &[1.0], None) {
            Ok(_) => true,
            Err(e) => {
                eprintln!("gemm tests: skipping tier {t}: {e}");
                false
            }
        })
        .collect()
}

/// Deterministic data from a seed (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn byte(&mut self) -> u8 {
        (self.next() >> 56) as u8
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// How operand values are drawn.
#[derive(Clone, Copy, Debug)]
enum Values {
    Uniform,
    /// a in {0, 255}, w in {-128, 127}.
    Extreme,
    /// Per-channel Gaussian-like weights (most pairs `vpmaddubsw`-safe, some not).
    Realistic,
    /// Unit weights and unit weight scales: with `sa = 0.5` every odd accumulator lands on an
    /// exact .5, so the round-half-to-even of every epilogue is exercised.
    Ties,
}

#[derive(Clone, Debug)]
struct Problem {
    m: usize,
    n: usize,
    k: usize,
    a_off: usize,
    lda_extra: usize,
    ldc_extra: usize,
    seed: u64,
    values: Values,
    za: i32,
    sa: f32,
    per_channel: bool,
    bias: bool,
    residual: bool,
    activation: Activation,
    out_q: QParams,
}

struct Data {
    a: Vec<u8>,
    w: Vec<i8>,
    scales: Vec<f32>,
    bias: Option<Vec<f32>>,
    res: Vec<u8>,
    ld: usize,
}

impl Problem {
    fn lda(&self) -> usize {
        self.k + self.lda_extra
    }
    fn ldc(&self) -> usize {
        self.n + self.ldc_extra
    }
    fn data(&self) -> Data {
        let mut r = Rng(self.seed | 1);
        let a_len = self.a_off + (self.m - 1) * self.lda() + self.k;
        let a = (0..a_len)
            .map(|_| match self.values {
                Values::Extreme => [0, 255][r.below(2)],
                _ => r.byte(),
            })
            .collect();
        let w = (0..self.n * self.k)
            .map(|_| match self.values {
                Values::Uniform => r.byte() as i8,
                Values::Extreme => [-128, 127][r.below(2)],
                Values::Ties => 1,
                Values::Realistic => {
                    let s: i32 = (0..4).map(|_| r.below(64) as i32).sum::<i32>() - 126;
                    s.clamp(-128, 127) as i8
                }
            })
            .collect();
        let nscales = if self.per_channel { self.n } else { 1 };
        let scales = (0..nscales)
            .map(|_| match self.values {
                Values::Ties => 1.0,
                _ => 1e-3 + r.below(1000) as f32 * 1e-5,
            })
            .collect();
        let bias = self.bias.then(|| {
            (0..self.n)
                .map(|_| r.below(2001) as f32 * 0.01 - 10.0)
                .collect()
        });
        // The residual has its own row stride, independent of the output's.
        let ld = self.n + r.below(7);
        let res = (0..self.m * ld).map(|_| r.byte()).collect();
        Data {
            a,
            w,
            scales,
            bias,
            res,
            ld,
        }
    }
}

fn a_q(p: &Problem) -> QParams {
    QParams::new(p.sa, p.za).unwrap()
}

fn residual<'a>(p: &Problem, d: &'a Data) -> Option<Residual<'a>> {
    p.residual.then(|| Residual {
        data: &d.res,
        ld: d.ld,
        qparams: QParams::new(0.05, 100).unwrap(),
    })
}

/// Runs `tier` and the reference on all three outputs and asserts exact equality.
fn check(p: &Problem, tier: Tier, parallelism: Parallelism) {
    let d = p.data();
    let packed = PackedWeights::new(tier, p.n, p.k, &d.w, &d.scales, d.bias.as_deref()).unwrap();
    let a = &d.a[p.a_off..];
    let ep = Epilogue {
        activation: p.activation,
        residual: residual(p, &d),
    };
    let opts = GemmOptions {
        tier: Some(tier),
        parallelism,
    };
    let (ldc, len) = (p.ldc(), (p.m - 1) * p.ldc() + p.n);
    let run_opt = |out: Output<'_>| {
        gemm(a, p.lda(), p.m, a_q(p), &packed, &ep, out, &opts).unwrap();
    };
    let run_ref = |out: RefOutput<'_>| {
        gemm_ref(
            a,
            p.lda(),
            p.m,
            a_q(p),
            &d.w,
            p.n,
            p.k,
            &d.scales,
            d.bias.as_deref(),
            p.activation,
            ep.residual.map(|r| (r.data, r.ld, r.qparams)),
            out,
        )
        .unwrap()
    };
    // Sentinel-filled outputs also check that gaps between rows stay untouched.
    let (mut want, mut got) = (vec![-7i32; len], vec![-7i32; len]);
    run_ref(RefOutput::I32 {
        data: &mut want,
        ldc,
    });
    run_opt(Output::I32 {
        data: &mut got,
        ldc,
    });
    assert_eq!(got, want, "i32 output, tier {tier}, {p:?}");

    let (mut want, mut got) = (vec![7u8; len], vec![7u8; len]);
    let qparams = p.out_q;
    run_ref(RefOutput::U8 {
        data: &mut want,
        ldc,
        qparams,
    });
    run_opt(Output::U8 {
        data: &mut got,
        ldc,
        qparams,
    });
    assert_eq!(got, want, "u8 output, tier {tier}, {p:?}");

    let (mut want, mut got) = (vec![7.5f32; len], vec![7.5f32; len]);
    run_ref(RefOutput::F32 {
        data: &mut want,
        ldc,
    });
    run_opt(Output::F32 {
        data: &mut got,
        ldc,
    });
    let same = |x: &f32, y: &f32| x == y || (x.is_nan() && y.is_nan());
    let bad = got.iter().zip(&want).position(|(x, y)| !same(x, y));
    assert!(
        bad.is_none(),
        "f32 output differs at {bad:?}, tier {tier}, {p:?}"
    );
}

fn dim() -> impl Strategy<Value = usize> {
    prop_oneof![
        prop::sample::select(vec![1usize, 15, 16, 17, 63, 64, 65, 127, 128, 129]),
        1usize..200,
    ]
}

fn activation() -> impl Strategy<Value = Activation> {
    prop_oneof![
        Just(Activation::None),
        Just(Activation::Relu),
        (-3.0f32..0.0, 0.0f32..6.0).prop_map(|(min, max)| Activation::Clamp { min, max }),
        (-1.0f32..1.0).prop_map(|alpha| Activation::LeakyRelu { alpha }),
        Just(Activation::Tanh),
        any::<bool>().prop_map(|tanh| Activation::Gelu { tanh }),
    ]
}

fn problem() -> impl Strategy<Value = Problem> {
    (
        (
            dim(),
            dim(),
            dim(),
            0usize..4,
            0usize..5,
            0usize..5,
            any::<u64>(),
        ),
        prop_oneof![
            Just(Values::Uniform),
            Just(Values::Extreme),
            Just(Values::Realistic)
        ],
        (
            0i32..=255,
            0.001f32..0.1,
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        ),
        activation(),
        (0.01f32..1.0, 0i32..=255),
    )
        .prop_map(
            |(
                (m, n, k, a_off, lda_extra, ldc_extra, seed),
                values,
                (za, sa, pc, b, r),
                act,
                oq,
            )| {
                Problem {
                    m,
                    n,
                    k,
                    a_off,
                    lda_extra,
                    ldc_extra,
                    seed,
                    values,
                    za,
                    sa,
                    per_channel: pc,
                    bias: b,
                    residual: r,
                    activation: act,
                    out_q: QParams::new(oq.0, oq.1).unwrap(),
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn every_tier_matches_the_reference(p in problem()) {
        for tier in tiers() {
            check(&p, tier, Parallelism::Sequential);
        }
    }
}

fn fixed(m: usize, n: usize, k: usize, values: Values) -> Problem {
    Problem {
        m,
        n,
        k,
        a_off: 1,
        lda_extra: 3,
        ldc_extra: 2,
        seed: 0x9e37_79b9_7f4a_7c15 ^ (m * 131 + n * 17 + k) as u64,
        values,
        za: 131,
        sa: 0.02,
        per_channel: true,
        bias: true,
        residual: true,
        activation: Activation::Clamp {
            min: -1.0,
            max: 4.0,
        },
        out_q: QParams::new(0.03, 20).unwrap(),
    }
}

#[test]
fn tile_edges_on_every_tier() {
    let edges = [1, 15, 16, 17, 63, 64, 65, 127, 128, 129];
    for tier in tiers() {
        for (i, &m) in edges.iter().enumerate() {
            let n = edges[(i * 3 + 1) % edges.len()];
            let k = edges[(i * 7 + 2) % edges.len()];
            check(
                &fixed(m, n, k, Values::Realistic),
                tier,
                Parallelism::Sequential,
            );
        }
    }
}

#[test]
fn half_way_values_round_to_even_on_every_tier() {
    for tier in tiers() {
        // Short K and centred zero points keep most outputs inside the u8 range.
        for (m, n, k) in [(7, 40, 5), (33, 17, 4), (1, 129, 3)] {
            let p = Problem {
                za: 128,
                sa: 0.5,
                bias: false,
                residual: false,
                activation: Activation::None,
                out_q: QParams::new(1.0, 128).unwrap(),
                ..fixed(m, n, k, Values::Ties)
            };
            check(&p, tier, Parallelism::Sequential);
        }
    }
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    for tier in tiers() {
        for threads in [1, 2, 8] {
            // 6M multiply-accumulates: above the single-thread threshold (4M).
            check(
                &fixed(300, 200, 100, Values::Uniform),
                tier,
                Parallelism::Threads(threads),
            );
        }
        // A GEMV-like shape split over N only (5M multiply-accumulates).
        check(
            &fixed(3, 1700, 1001, Values::Extreme),
            tier,
            Parallelism::Threads(8),
        );
    }
}

/// One `vpmaddubsw` lane: `sat16(a0 * w0 + a1 * w1)`.
fn vpmaddubsw_lane(a0: u8, a1: u8, w0: i8, w1: i8) -> i32 {
    (a0 as i32 * w0 as i32 + a1 as i32 * w1 as i32).clamp(-32768, 32767)
}

/// Pairs on which `vpmaddubsw` saturates for a = 255 (same-sign magnitudes above 128).
const SATURATING_PAIRS: [(i8, i8); 4] = [(127, 127), (-128, -128), (-64, -65), (127, 2)];
/// The boundary: magnitudes summing to exactly 128 fit i16 (255 * 128 = 32640), e.g.
/// (127, 1), so they stay on the fast path.
const BOUNDARY_PAIRS: [(i8, i8); 3] = [(127, 1), (64, 64), (-64, -64)];

#[test]
fn plain_vpmaddubsw_would_saturate_on_the_adversarial_pairs() {
    for (w0, w1) in SATURATING_PAIRS {
        assert!(pair_may_saturate(w0, w1), "({w0}, {w1})");
        let exact = 255 * (w0 as i32 + w1 as i32);
        assert_ne!(vpmaddubsw_lane(255, 255, w0, w1), exact, "({w0}, {w1})");
    }
    for (w0, w1) in BOUNDARY_PAIRS {
        assert!(!pair_may_saturate(w0, w1), "({w0}, {w1})");
        let exact = 255 * (w0 as i32 + w1 as i32);
        assert_eq!(vpmaddubsw_lane(255, 255, w0, w1), exact, "({w0}, {w1})");
    }
}

#[test]
fn adversarial_pairs_are_exact_on_every_tier() {
    let (m, k) = (5, 64);
    let a = vec![255u8; m * k];
    let aq = QParams::new(1.0, 0).unwrap();
    for tier in tiers() {
        for (idx, (w0, w1)) in SATURATING_PAIRS
            .into_iter()
            .chain(BOUNDARY_PAIRS)
            .enumerate()
        {
            // Column 0: the pair everywhere; column 1: the pair mixed with safe pairs.
            let n = 17;
            let w: Vec<i8> = (0..n * k)
                .map(|i| match (i / k, (i % k) % 2, (i % k) / 2 % 3) {
                    (c, _, 1) if c > 0 => 3,
                    (_, 0, _) => w0,
                    _ => w1,
                })
                .collect();
            let packed = PackedWeights::new(tier, n, k, &w, &[1.0], None).unwrap();
            let mut got = vec![0i32; m * n];
            let out = Output::I32 {
                data: &mut got,
                ldc: n,
            };
            let opts = GemmOptions {
                tier: Some(tier),
                parallelism: Parallelism::Sequential,
            };
            gemm(&a, k, m, aq, &packed, &Epilogue::default(), out, &opts).unwrap();
            let want = reference_i32(&a, m, k, aq, &w, n);
            assert_eq!(got, want, "tier {tier}, pair #{idx} ({w0}, {w1})");
            assert_eq!(got[0], 255 * (k as i32 / 2) * (w0 as i32 + w1 as i32));
            if pair_may_saturate(w0, w1) {
                let saturating: i32 = (0..k / 2).map(|_| vpmaddubsw_lane(255, 255, w0, w1)).sum();
                assert_ne!(
                    got[0], saturating,
                    "tier {tier}: the saturating sum would differ"
                );
            }
        }
    }
}

#[test]
fn avx2_residual_is_empty_for_seven_bit_weights() {
    let w: Vec<i8> = (0..64 * 64).map(|i| (i % 128) as i8 - 64).collect();
    let p = PackedWeights::new(Tier::Scalar, 64, 64, &w, &[1.0], None).unwrap();
    assert_eq!(p.avx2_residual_fraction(), None);
    if cpu::is_available(Tier::Avx2) {
        let p = PackedWeights::new(Tier::Avx2, 64, 64, &w, &[1.0], None).unwrap();
        assert_eq!(p.avx2_residual_fraction(), Some(0.0));
        let w = vec![127i8; 64 * 64];
        let p = PackedWeights::new(Tier::Avx2, 64, 64, &w, &[1.0], None).unwrap();
        assert_eq!(p.avx2_residual_fraction(), Some(1.0));
    } else {
        eprintln!("gemm tests: skipping tier avx2 residual check: not available");
    }
}

#[test]
fn bad_arguments_are_errors() {
    let tier = cpu::best_tier();
    let tier = if PackedWeights::new(tier, 1, 1, &[1], &[1.0], None).is_ok() {
        tier
    } else {
        Tier::Avx512Vnni.min(tier)
    };
    let (m, n, k) = (3, 5, 7);
    let w = vec![1i8; n * k];
    let a = vec![1u8; m * k];
    let aq = QParams::new(0.1, 3).unwrap();
    let pack = |w: &[i8], s: &[f32], b: Option<&[f32]>, n: usize, k: usize| {
        PackedWeights::new(tier, n, k, w, s, b)
    };
    // Packing.
    assert!(matches!(
        pack(&w, &[1.0], None, n, MAX_K + 1),
        Err(Error::KTooLarge { .. })
    ));
    assert!(matches!(
        pack(&w[1..], &[1.0], None, n, k),
        Err(Error::Length { .. })
    ));
    assert!(matches!(
        pack(&w, &[0.0], None, n, k),
        Err(Error::QParams(_))
    ));
    assert!(matches!(
        pack(&w, &[f32::NAN], None, n, k),
        Err(Error::QParams(_))
    ));
    assert!(matches!(
        pack(&w, &[1.0, 2.0], None, n, k),
        Err(Error::Length { .. })
    ));
    assert!(matches!(
        pack(&w, &[1.0], Some(&[0.0; 4]), n, k),
        Err(Error::Length { .. })
    ));
    assert!(matches!(
        pack(&w, &[1.0], Some(&[f32::NAN; 5]), n, k),
        Err(Error::QParams(_))
    ));
    assert!(pack(&[], &[1.0], None, 0, k).is_err());
    let packed = pack(&w, &[1.0], None, n, k).unwrap();
    let opts = GemmOptions::default();
    let none = Epilogue::default();
    let mut c = vec![0u8; m * n];
    let oq = QParams::new(1.0, 0).unwrap();
    let mut call = |a: &[u8],
                    lda: usize,
                    m: usize,
                    aq: QParams,
                    ep: &Epilogue<'_>,
                    len: usize,
                    o: &GemmOptions| {
        let out = Output::U8 {
            data: &mut c[..len],
            ldc: n,
            qparams: oq,
        };
        gemm(a, lda, m, aq, &packed, ep, out, o)
    };
    assert!(call(&a, k, m, aq, &none, m * n, &opts).is_ok());
    assert!(matches!(
        call(&a[1..], k, m, aq, &none, m * n, &opts),
        Err(Error::Length { .. })
    ));
    assert!(matches!(
        call(&a, k - 1, m, aq, &none, m * n, &opts),
        Err(Error::Shape(_))
    ));
    assert!(matches!(
        call(&a, k, m, aq, &none, m * n - 1, &opts),
        Err(Error::Length { .. })
    ));
    assert!(call(&a, k, 0, aq, &none, m * n, &opts).is_err());
    assert!(matches!(
        call(&a, usize::MAX / 2, m, aq, &none, m * n, &opts),
        Err(Error::Shape(_))
    ));
    let zero_scale = QParams {
        scale: 0.0,
        zero_point: 0,
    };
    let nan_scale = QParams {
        scale: f32::NAN,
        zero_point: 0,
    };
    assert!(matches!(
        call(&a, k, m, zero_scale, &none, m * n, &opts),
        Err(Error::QParams(_))
    ));
    assert!(matches!(
        call(&a, k, m, nan_scale, &none, m * n, &opts),
        Err(Error::QParams(_))
    ));
    let bad_zp = QParams {
        scale: 1.0,
        zero_point: 256,
    };
    assert!(matches!(
        call(&a, k, m, bad_zp, &none, m * n, &opts),
        Err(Error::QParams(_))
    ));
    for activation in [
        Activation::Clamp { min: 2.0, max: 1.0 },
        Activation::Clamp {
            min: f32::NAN,
            max: 1.0,
        },
        Activation::LeakyRelu { alpha: f32::NAN },
    ] {
        let ep = Epilogue {
            activation,
            residual: None,
        };
        assert!(matches!(
            call(&a, k, m, aq, &ep, m * n, &opts),
            Err(Error::Shape(_))
        ));
    }
    let short = Epilogue {
        activation: Activation::None,
        residual: Some(Residual {
            data: &a[..m * n - 1],
            ld: n,
            qparams: aq,
        }),
    };
    assert!(matches!(
        call(&a, k, m, aq, &short, m * n, &opts),
        Err(Error::Length { .. })
    ));
    let other = if tier == Tier::Scalar {
        Tier::Avx2
    } else {
        Tier::Scalar
    };
    let mismatch = GemmOptions {
        tier: Some(other),
        ..opts
    };
    assert!(matches!(
        call(&a, k, m, aq, &none, m * n, &mismatch),
        Err(Error::TierMismatch { .. })
    ));
    let no_threads = GemmOptions {
        parallelism: Parallelism::Threads(0),
        ..opts
    };
    assert!(call(&a, k, m, aq, &none, m * n, &no_threads).is_err());
    let too_many_threads = GemmOptions {
        parallelism: Parallelism::Threads(q8_kernels::gemm::MAX_THREADS + 1),
        ..opts
    };
    assert!(call(&a, k, m, aq, &none, m * n, &too_many_threads).is_err());
    let mut c = vec![0u8; m * n];
    let bad_out = Output::U8 {
        data: &mut c,
        ldc: n,
        qparams: zero_scale,
    };
    assert!(gemm(&a, k, m, aq, &packed, &none, bad_out, &opts).is_err());
    for t in Tier::ALL {
        if !cpu::is_available(t) {
            let e = PackedWeights::new(t, n, k, &w, &[1.0], None).and_then(|p| {
                gemm(
                    &a,
                    k,
                    m,
                    aq,
                    &p,
                    &none,
                    Output::I32 {
                        data: &mut [0; 15],
                        ldc: n,
                    },
                    &opts,
                )
            });
            assert!(e.is_err(), "tier {t} is unavailable but ran");
        }
    }
}
