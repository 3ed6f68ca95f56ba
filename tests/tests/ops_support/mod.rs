//! Shared helpers of the int8 op and convolution tests: tier iteration that reports skipped
//! tiers, a seeded data generator biased towards extreme values, edge-size strategies, and a
//! convolution case runner comparing every tier with the reference.

#![allow(dead_code)]

use proptest::prelude::*;
use q8_kernels::conv::{
    ConvEpilogue, ConvGeometry, ConvOutput, ConvWeights, PackedConvWeights, Residual, conv2d,
};
use q8_kernels::cpu::Tier;
use q8_kernels::{Activation, QParams, reference};

/// The tiers to test here; each unavailable one is reported as skipped by name.
pub use q8_tests::available_tiers as tiers;

/// A small deterministic generator (splitmix64) so proptest only draws seeds and shapes.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// u8 values with 0 and 255 each about 1/8 of the time.
    pub fn u8s(&mut self, len: usize) -> Vec<u8> {
        (0..len)
            .map(|_| match self.below(8) {
                0 => 0,
                1 => 255,
                _ => self.next_u64() as u8,
            })
            .collect()
    }

    /// s8 values with -128 and 127 each about 1/8 of the time.
    pub fn i8s(&mut self, len: usize) -> Vec<i8> {
        (0..len)
            .map(|_| match self.below(8) {
                0 => -128,
                1 => 127,
                _ => self.next_u64() as i8,
            })
            .collect()
    }

    /// f32 values: ordinary magnitudes, exact half-way points, huge values, inf and NaN.
    pub fn f32s(&mut self, len: usize, scale: f32) -> Vec<f32> {
        (0..len)
            .map(|_| match self.below(16) {
                0 => f32::NAN,
                1 => f32::INFINITY,
                2 => f32::NEG_INFINITY,
                3 => (self.below(600) as f32 - 300.0 + 0.5) * scale,
                4 => (self.next_u64() as i64 as f32) * 1e-3,
                5 => f32::from_bits(self.next_u64() as u32),
                _ => (self.below(1 << 20) as f32 / (1 << 20) as f32 - 0.5) * 300.0 * scale,
            })
            .collect()
    }

    pub fn f32_in(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * (self.below(1 << 24) as f32 / (1 << 24) as f32)
    }

    /// Quantization parameters including extreme zero points and tiny / large scales.
    pub fn qparams(&mut self) -> QParams {
        let zero_point = match self.below(4) {
            0 => 0,
            1 => 255,
            _ => self.below(256) as i32,
        };
        let scale = match self.below(6) {
            0 => 1.0,
            1 => 1e-4,
            2 => 50.0,
            _ => self.f32_in(0.001, 0.2),
        };
        QParams::new(scale, zero_point).unwrap()
    }
}

/// Sizes with the SIMD block edges forced in.
pub fn edge_size(max: usize) -> impl Strategy<Value = usize> {
    let edges: Vec<usize> = [
        1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129,
    ]
    .into_iter()
    .filter(|&e| e <= max)
    .collect();
    prop_oneof![proptest::sample::select(edges), 1..=max]
}

/// Everything one convolution call needs, generated from a seed.
pub struct Case {
    pub geom: ConvGeometry,
    pub input: Vec<u8>,
    pub in_qp: QParams,
    pub weights: Vec<i8>,
    pub scales: Vec<f32>,
    pub bias: Option<Vec<f32>>,
    pub residual: Option<(Vec<u8>, QParams)>,
    pub activation: Activation,
    pub out_qp: Option<QParams>,
}

impl Case {
    pub fn new(geom: ConvGeometry, seed: u64) -> Case {
        let mut rng = Rng::new(seed);
        let out = geom.output().unwrap();
        let oc = geom.out_channels;
        let activation = match rng.below(6) {
            0 => Activation::None,
            1 => Activation::Relu,
            2 => Activation::LeakyRelu { alpha: 0.1 },
            3 => Activation::Tanh,
            4 => Activation::Gelu {
                tanh: rng.below(2) == 0,
            },
            _ => Activation::Clamp {
                min: -1.0,
                max: 6.0,
            },
        };
        Case {
            geom,
            input: rng.u8s(geom.input.len()),
            in_qp: rng.qparams(),
            weights: rng.i8s(geom.weights_len()),
            scales: (0..oc).map(|_| rng.f32_in(0.001, 0.05)).collect(),
            bias: (rng.below(2) == 0).then(|| (0..oc).map(|_| rng.f32_in(-3.0, 3.0)).collect()),
            residual: (rng.below(2) == 0).then(|| (rng.u8s(out.len()), rng.qparams())),
            activation,
            out_qp: (rng.below(4) != 0).then(|| rng.qparams()),
        }
    }

    pub fn weights(&self) -> ConvWeights<'_> {
        ConvWeights {
            data: &self.weights,
            scales: &self.scales,
            bias: self.bias.as_deref(),
        }
    }

    pub fn epilogue(&self) -> ConvEpilogue<'_> {
        ConvEpilogue {
            residual: self.residual.as_ref().map(|(d, qp)| Residual {
                data: d,
                qparams: *qp,
            }),
            activation: self.activation,
        }
    }

    /// Runs `f` with a fresh output buffer and returns the output bits (u8 or f32 bits).
    pub fn output(&self, f: impl FnOnce(ConvOutput<'_>) -> q8_kernels::Result<()>) -> Vec<u32> {
        let len = self.geom.output().unwrap().len();
        match self.out_qp {
            Some(qparams) => {
                let mut data = vec![0u8; len];
                f(ConvOutput::U8 {
                    data: &mut data,
                    qparams,
                })
                .unwrap();
                data.into_iter().map(u32::from).collect()
            }
            None => {
                let mut data = vec![0f32; len];
                f(ConvOutput::F32(&mut data)).unwrap();
                data.into_iter().map(f32::to_bits).collect()
            }
        }
    }

    pub fn reference(&self) -> Vec<u32> {
        self.output(|out| {
            reference::conv::conv2d(
                &self.geom,
                &self.input,
                self.in_qp,
                &self.weights(),
                &self.epilogue(),
                out,
            )
        })
    }

    pub fn run(&self, tier: Tier) -> Vec<u32> {
        let packed = PackedConvWeights::new(tier, &self.geom, &self.weights()).unwrap();
        self.output(|out| {
            conv2d(
                tier,
                &packed,
                &self.input,
                self.in_qp,
                &self.epilogue(),
                out,
            )
        })
    }

    /// Asserts the result on every available tier is the same with 1, 2 and 3 threads.
    pub fn check_thread_count_invariant(&self, test: &str) {
        for tier in tiers(test) {
            let run = |threads| {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                pool.install(|| self.run(tier))
            };
            let one = run(1);
            assert_eq!(one, run(2), "{test}: tier {tier}");
            assert_eq!(one, run(3), "{test}: tier {tier}");
        }
    }

    /// Asserts every available tier equals the reference bit for bit.
    pub fn check_all_tiers(&self, test: &str) {
        let want = self.reference();
        for tier in tiers(test) {
            let got = self.run(tier);
            let bad = got.iter().zip(&want).filter(|(g, w)| g != w).count();
            assert_eq!(
                bad,
                0,
                "{test}: tier {tier}: {bad} of {} outputs differ",
                want.len()
            );
        }
    }
}

/// A valid `geom`: every available tier equals the reference bit for bit on seeded data. An
/// invalid one (e.g. a kernel larger than the padded input): packing fails on every tier.
pub fn check_geometry(geom: ConvGeometry, seed: u64, test: &str) {
    if geom.output().is_ok() {
        Case::new(geom, seed).check_all_tiers(test);
    } else {
        check_invalid_geometry_is_rejected(&geom, test);
    }
}

/// Asserts that packing zero weights of the right size for the invalid `geom` fails on every
/// available tier (an error, never a panic).
fn check_invalid_geometry_is_rejected(geom: &ConvGeometry, test: &str) {
    let [kh, kw] = geom.kernel;
    let c_out = geom.out_channels;
    let w = vec![0i8; c_out * kh * kw * (geom.input.c / geom.groups)];
    let scales = vec![1.0; c_out];
    let weights = ConvWeights {
        data: &w,
        scales: &scales,
        bias: None,
    };
    for tier in tiers(test) {
        assert!(
            PackedConvWeights::new(tier, geom, &weights).is_err(),
            "{test}: tier {tier}: {geom:?} was accepted"
        );
    }
}

/// The scalar reference convolution of `input` with f32 output and the default epilogue.
pub fn reference_f32(
    geom: &ConvGeometry,
    input: &[u8],
    qparams: QParams,
    weights: &ConvWeights<'_>,
) -> Vec<f32> {
    let mut out = vec![0f32; geom.output().unwrap().len()];
    reference::conv::conv2d(
        geom,
        input,
        qparams,
        weights,
        &ConvEpilogue::default(),
        ConvOutput::F32(&mut out),
    )
    .unwrap();
    out
}
