//! Observer conformance against torchao's pt2e observers (`tests/data/observers.{npz,json}`),
//! and the behaviour of the non-PyTorch range choices (percentile, MSE) on heavy tails.

use q8_frontend::npy::{self, Npz};
use q8_frontend::quant::{
    HistogramObserver, MinMaxObserver, MovingAverageMinMaxObserver, Observer, ObserverKind,
    OpQuantSpec, QuantRange, Symmetry, TensorQParams, X86_EPS,
};
use q8_tests::data;
use serde_json::Value;

fn fixtures() -> (Npz, Value) {
    let npz = npy::read_npz(data("observers.npz")).unwrap();
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(data("observers.json")).unwrap()).unwrap();
    (npz, json)
}

fn f32s<'a>(npz: &'a Npz, key: &str) -> &'a [f32] {
    npz.get(key).unwrap().values::<f32>().unwrap()
}

/// Compares one result with the expectation; returns the relative scale error, or a message.
fn check(
    case: &str,
    got: TensorQParams,
    range: Option<(f32, f32)>,
    want: &Value,
) -> Result<f64, String> {
    let scale = want["scale"].as_f64().unwrap();
    let zp = want["zero_point"].as_i64().unwrap();
    let rel = (f64::from(got.scale) - scale).abs() / scale;
    let mut problems = Vec::new();
    if rel > 1e-6 {
        problems.push(format!("scale {} vs {scale} (rel {rel:.2e})", got.scale));
    }
    if i64::from(got.zero_point) != zp {
        problems.push(format!("zero point {} vs {zp}", got.zero_point));
    }
    if let (Some(lo), Some(hi)) = (want["observed_min"].as_f64(), want["observed_max"].as_f64()) {
        let (glo, ghi) = range.unwrap_or((f32::NAN, f32::NAN));
        if glo != lo as f32 || ghi != hi as f32 {
            problems.push(format!("observed ({glo}, {ghi}) vs ({lo}, {hi})"));
        }
    }
    if problems.is_empty() {
        Ok(rel)
    } else {
        Err(format!("{case}: {}", problems.join("; ")))
    }
}

#[test]
fn activation_observers_match_torchao() {
    let (npz, json) = fixtures();
    assert_eq!(json["eps"].as_f64().unwrap() as f32, X86_EPS);
    let cases = json["activation_cases"].as_object().unwrap();
    let (mut passed, mut failures, mut max_rel) = (0, Vec::new(), 0.0f64);
    for (name, case) in cases {
        let observers: Vec<(&str, Box<dyn Observer>)> = vec![
            (
                "histogram_u8",
                Box::new(HistogramObserver::new(QuantRange::U8, X86_EPS)),
            ),
            (
                "minmax_u8",
                Box::new(MinMaxObserver::new(
                    QuantRange::U8,
                    Symmetry::Affine,
                    X86_EPS,
                )),
            ),
            (
                "minmax_s8_symmetric",
                Box::new(MinMaxObserver::new(
                    QuantRange::I8,
                    Symmetry::Symmetric,
                    X86_EPS,
                )),
            ),
            (
                "moving_average_u8",
                Box::new(
                    MovingAverageMinMaxObserver::new(
                        QuantRange::U8,
                        Symmetry::Affine,
                        X86_EPS,
                        MovingAverageMinMaxObserver::DEFAULT_AVERAGING_CONSTANT,
                    )
                    .unwrap(),
                ),
            ),
        ];
        let batches = case["batches"].as_u64().unwrap();
        for (kind, mut obs) in observers {
            for i in 0..batches {
                obs.observe(f32s(&npz, &format!("{name}__{i}"))).unwrap();
            }
            match check(
                &format!("{name}/{kind}"),
                obs.qparams(),
                obs.observed_range(),
                &case[kind],
            ) {
                Ok(rel) => {
                    passed += 1;
                    max_rel = max_rel.max(rel);
                }
                Err(msg) => failures.push(msg),
            }
        }
    }
    eprintln!(
        "activation conformance: {passed}/{} pass, max relative scale error {max_rel:.3e}",
        passed + failures.len()
    );
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(passed, cases.len() * 4);
}

#[test]
fn per_channel_weight_observer_matches_torchao() {
    let (npz, json) = fixtures();
    let spec = OpQuantSpec::x86_default().weight;
    let mut max_rel = 0.0f64;
    let cases = json["weight_cases"].as_object().unwrap();
    for (name, case) in cases {
        let array = npz.get(&format!("weight__{name}")).unwrap();
        let shape: Vec<usize> = case["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(array.shape(), shape.as_slice());
        let q = spec
            .qparams(array.values::<f32>().unwrap(), &shape)
            .unwrap();
        let want_scales = case["scales"].as_array().unwrap();
        let want_zps = case["zero_points"].as_array().unwrap();
        assert_eq!(q.scales.len(), want_scales.len(), "{name}");
        for (c, (got, want)) in q.scales.iter().zip(want_scales).enumerate() {
            let want = want.as_f64().unwrap();
            let rel = (f64::from(*got) - want).abs() / want;
            assert!(rel <= 1e-6, "{name} channel {c}: {got} vs {want}");
            max_rel = max_rel.max(rel);
        }
        let zps: Vec<i64> = want_zps.iter().map(|z| z.as_i64().unwrap()).collect();
        assert_eq!(
            q.zero_points
                .iter()
                .map(|&z| i64::from(z))
                .collect::<Vec<_>>(),
            zps
        );
    }
    eprintln!(
        "weight conformance: {} tensors pass, max relative scale error {max_rel:.3e}",
        cases.len()
    );
}

/// Heavy-tailed data: Student-t with 3 degrees of freedom (finite variance, rare large values),
/// from a fixed xorshift stream and Box-Muller normals.
fn heavy_tailed(n: usize) -> Vec<f32> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    let mut normal =
        move || (-2.0 * uniform().ln()).sqrt() * (2.0 * std::f64::consts::PI * uniform()).cos();
    (0..n)
        .map(|_| {
            let z = normal();
            let chi2: f64 = (0..3).map(|_| normal().powi(2)).sum();
            (z / (chi2 / 3.0).sqrt()) as f32
        })
        .collect()
}

fn reconstruction_mse<'a>(values: impl Iterator<Item = &'a f32>, q: TensorQParams) -> f64 {
    let kq = q.to_kernel_u8().unwrap();
    let (mut sum, mut n) = (0.0f64, 0usize);
    for &x in values {
        let code = q8_kernels::quant::quantize(x, kq.inv_scale(), kq.zero_point);
        let d = f64::from(x) - f64::from(q8_kernels::quant::dequantize(code, kq));
        sum += d * d;
        n += 1;
    }
    sum / n as f64
}

#[test]
fn percentile_and_mse_clip_outliers() {
    let values = heavy_tailed(50_000);
    let qparams_of = |kind: ObserverKind| {
        let mut obs = kind
            .build(QuantRange::U8, Symmetry::Affine, X86_EPS)
            .unwrap();
        for batch in values.chunks(10_000) {
            obs.observe(batch).unwrap();
        }
        obs.qparams()
    };
    let minmax = qparams_of(ObserverKind::MinMax);
    let percentile = qparams_of(ObserverKind::Percentile { percentile: 99.9 });
    let mse = qparams_of(ObserverKind::Mse);
    let total = |q| reconstruction_mse(values.iter(), q);
    let bulk = |q| reconstruction_mse(values.iter().filter(|x| x.abs() <= 3.0), q);
    eprintln!(
        "t(3), 50k values: scale minmax {} percentile(99.9) {} mse {}; \
         total MSE {:.3e} {:.3e} {:.3e}; bulk (|x| <= 3) MSE {:.3e} {:.3e} {:.3e}",
        minmax.scale,
        percentile.scale,
        mse.scale,
        total(minmax),
        total(percentile),
        total(mse),
        bulk(minmax),
        bulk(percentile),
        bulk(mse)
    );
    // Both clip: a smaller range than min/max.
    assert!(percentile.scale < minmax.scale / 2.0);
    assert!(mse.scale < minmax.scale);
    // Percentile buys resolution for the bulk of the distribution ...
    assert!(bulk(percentile) < bulk(minmax) / 4.0);
    // ... and the MSE search finds the lowest total reconstruction error of the three.
    assert!(total(mse) < total(minmax));
    assert!(total(mse) <= total(percentile));
}

#[test]
fn non_finite_batches_are_rejected_by_every_observer() {
    let kinds = [
        ObserverKind::MinMax,
        ObserverKind::MovingAverageMinMax {
            averaging_constant: 0.01,
        },
        ObserverKind::Histogram,
        ObserverKind::Percentile { percentile: 99.0 },
        ObserverKind::Mse,
    ];
    for kind in kinds {
        let mut obs = kind
            .build(QuantRange::U8, Symmetry::Affine, X86_EPS)
            .unwrap();
        obs.observe(&[0.0, 1.0]).unwrap();
        let before = obs.qparams();
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let err = obs.observe(&[0.5, bad, 2.0]).unwrap_err().to_string();
            assert!(err.contains("offset 1"), "{kind:?}: {err}");
        }
        assert_eq!(
            obs.qparams(),
            before,
            "{kind:?}: a rejected batch must not change state"
        );
    }
}

/// Real data, several batches: PyTorch's PT2E flow (X86 default config) calibrated the model
/// input's histogram observer on `digits_calib.npy` in batches of 32; the qparams it chose are
/// the first `QuantizeLinear` of `digits_resnet.pt2e_qdq.onnx` (scale initializer `val_27`,
/// zero point `val_26`), copied here.
#[test]
fn histogram_observer_matches_pt2e_on_the_model_input() {
    const PT2E_INPUT_SCALE: f64 = 0.009784772992134094;
    const PT2E_INPUT_ZERO_POINT: i32 = 77;
    let calib = npy::read(data("digits_calib.npy")).unwrap();
    assert_eq!(calib.shape(), &[128, 1, 32, 32]);
    let mut obs = HistogramObserver::new(QuantRange::U8, X86_EPS);
    for batch in calib.values::<f32>().unwrap().chunks(32 * 32 * 32) {
        obs.observe(batch).unwrap();
    }
    let q = obs.qparams();
    let rel = (f64::from(q.scale) - PT2E_INPUT_SCALE).abs() / PT2E_INPUT_SCALE;
    eprintln!(
        "model input: scale {} (rel err {rel:.2e}), zero point {}",
        q.scale, q.zero_point
    );
    assert!(rel <= 1e-6, "scale {} vs {PT2E_INPUT_SCALE}", q.scale);
    assert_eq!(q.zero_point, PT2E_INPUT_ZERO_POINT);
}

/// A range wider than f32 can hold (max - min > f32::MAX) has no finite scale: torch's formula
/// gives infinity, and the conversion to kernel qparams says so instead of passing it on.
#[test]
fn overflowing_ranges_are_reported_at_conversion() {
    let mut obs = ObserverKind::MinMax
        .build(QuantRange::U8, Symmetry::Affine, X86_EPS)
        .unwrap();
    obs.observe(&[3.0e38, -3.0e38]).unwrap();
    let q = obs.qparams();
    assert!(q.scale.is_infinite());
    let err = q.to_kernel_u8().unwrap_err().to_string();
    assert!(err.contains("scale"), "{err}");
    let mut hist = HistogramObserver::new(QuantRange::U8, X86_EPS);
    hist.observe(&[3.0e38, -3.0e38, 0.0]).unwrap();
    assert!(hist.qparams().to_kernel_u8().is_err());
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = f32> {
        prop_oneof![
            4 => -10.0f32..10.0,
            1 => -1e6f32..1e6,
            1 => Just(0.0f32),
            1 => prop::sample::select(vec![1e-30f32, -1e-30, 3.0e30, -3.0e30, 1.5]),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Any finite batches give valid qparams (positive finite scale, zero point in range),
        /// an observed range covering every value, and a search range inside it.
        #[test]
        fn qparams_are_always_valid(
            batches in prop::collection::vec(prop::collection::vec(value(), 0..200), 1..4),
            reduce in any::<bool>(),
        ) {
            let range = if reduce { QuantRange::U8_REDUCED } else { QuantRange::U8 };
            let kinds = [
                ObserverKind::MinMax,
                ObserverKind::MovingAverageMinMax { averaging_constant: 0.01 },
                ObserverKind::Histogram,
                ObserverKind::Percentile { percentile: 99.0 },
                ObserverKind::Mse,
            ];
            let all: Vec<f32> = batches.iter().flatten().copied().collect();
            for kind in kinds {
                let mut obs = kind.build(range, Symmetry::Affine, X86_EPS).unwrap();
                for b in &batches {
                    obs.observe(b).unwrap();
                }
                let q = obs.qparams();
                prop_assert!(q.scale.is_finite() && q.scale >= X86_EPS, "{kind:?}: {q:?}");
                prop_assert!((range.qmin()..=range.qmax()).contains(&q.zero_point));
                q.to_kernel_u8().unwrap();
                match obs.observed_range() {
                    None => prop_assert!(all.is_empty()),
                    Some((lo, hi)) if kind != (ObserverKind::MovingAverageMinMax { averaging_constant: 0.01 }) => {
                        for &x in &all {
                            prop_assert!(lo <= x && x <= hi, "{kind:?}: {x} outside ({lo}, {hi})");
                        }
                    }
                    Some(_) => {}
                }
            }
            let mut hist = HistogramObserver::new(range, X86_EPS);
            for b in &batches {
                hist.observe(b).unwrap();
            }
            if let (Some((lo, hi)), Some((slo, shi))) = (hist.observed_range(), hist.search_range()) {
                let slack = (f64::from(hi) - f64::from(lo)) * 1e-6;
                prop_assert!(f64::from(slo) >= f64::from(lo) - slack && f64::from(shi) <= f64::from(hi) + slack);
            }
        }
    }
}
