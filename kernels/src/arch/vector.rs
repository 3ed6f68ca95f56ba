//! The bodies of [`crate::vector`] compiled for AVX-512 and AVX2 with the same source: the
//! compiler vectorizes the same IEEE operations in the same order, so every width gives the
//! scalar bits.

/// Which compiled copy of a body to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Width {
    /// Baseline x86-64 (SSE2).
    Plain,
    /// AVX2 + FMA registers (no FMA contraction: Rust never fuses).
    Avx2,
    /// AVX-512 F.
    Avx512,
}

impl Width {
    /// The widest copy the default kernel tier (capped by `Q8_ISA`) allows.
    pub(crate) fn current() -> Width {
        use crate::cpu::{Tier, default_tier};
        match default_tier().unwrap_or(Tier::Scalar) {
            Tier::Avx512Vnni | Tier::Amx => Width::Avx512,
            Tier::Avx2 | Tier::AvxVnni => Width::Avx2,
            Tier::Scalar => Width::Plain,
        }
    }
}

/// Defines `$name(width, args) -> ret`, running `$body` (an `#[inline(always)]` function)
/// compiled for the requested width.
macro_rules! dispatch {
    ($(#[$doc:meta])* $name:ident <$($g:ident: $bound:path),*> ($($arg:ident: $ty:ty),*) -> $ret:ty = $body:ident) => {
        $(#[$doc])*
        pub(crate) fn $name<$($g: $bound),*>(width: Width, $($arg: $ty),*) -> $ret {
            #[target_feature(enable = "avx512f")]
            fn wide<$($g: $bound),*>($($arg: $ty),*) -> $ret {
                $body($($arg),*)
            }
            #[target_feature(enable = "avx2,fma")]
            fn mid<$($g: $bound),*>($($arg: $ty),*) -> $ret {
                $body($($arg),*)
            }
            match width {
                // SAFETY: `Width::current` chose this copy only when the default tier (hence
                // the CPU and the OS) supports AVX-512 F.
                Width::Avx512 => unsafe { wide($($arg),*) },
                // SAFETY: as above, for AVX2 and FMA (every tier from Avx2 up has them).
                Width::Avx2 => unsafe { mid($($arg),*) },
                Width::Plain => $body($($arg),*),
            }
        }
    };
}

dispatch!(
    /// `y[i] = f(x[i])`; the slices have equal lengths (checked by the caller).
    map<F: Fn(f32) -> f32>(x: &[f32], y: &mut [f32], f: F) -> () = map_body
);
dispatch!(
    /// [`crate::vector::map_math`].
    map_math<>(f: crate::vector::MathFn, y: &mut [f32]) -> () = map_math_body
);
dispatch!(
    /// [`crate::vector::range_with_zero`].
    range_with_zero<>(x: &[f32]) -> (f32, f32, bool) = range_with_zero_body
);
dispatch!(
    /// [`crate::vector::quantize_dividing`]; equal lengths (checked by the caller).
    quantize_dividing<>(x: &[f32], scale: f32, zp: f32, y: &mut [u8]) -> () = quantize_dividing_body
);
dispatch!(
    /// `y[i] = f(y[i])`.
    map_in_place<F: Fn(f32) -> f32>(y: &mut [f32], f: F) -> () = map_in_place_body
);
dispatch!(
    /// `y[i] = f(a[i], b[i])`; equal lengths (checked by the caller).
    zip_map<F: Fn(f32, f32) -> f32>(a: &[f32], b: &[f32], y: &mut [f32], f: F) -> () = zip_map_body
);
dispatch!(
    /// `y[i] = f(y[i], b[i])`; equal lengths (checked by the caller).
    zip_map_in_place<F: Fn(f32, f32) -> f32>(y: &mut [f32], b: &[f32], f: F) -> () = zip_map_in_place_body
);
dispatch!(
    /// [`crate::vector::softmax_rows`]; `row > 0` divides `y.len()` (checked by the caller).
    softmax_rows<>(y: &mut [f32], row: usize) -> () = softmax_rows_body
);
dispatch!(
    /// [`crate::vector::sum`].
    sum<>(x: &[f32]) -> f32 = sum_body
);
dispatch!(
    /// [`crate::vector::max`].
    max<>(x: &[f32]) -> f32 = max_body
);

#[inline(always)]
fn map_body<F: Fn(f32) -> f32>(x: &[f32], y: &mut [f32], f: F) {
    for (o, &v) in y.iter_mut().zip(x) {
        *o = f(v);
    }
}

#[inline(always)]
fn range_with_zero_body(x: &[f32]) -> (f32, f32, bool) {
    let (mut lo, mut hi, mut finite) = ([0f32; LANES], [0f32; LANES], [true; LANES]);
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            lo[i] = lo[i].min(c[i]);
            hi[i] = hi[i].max(c[i]);
            finite[i] &= c[i].is_finite();
        }
    }
    for (i, &v) in tail.iter().enumerate() {
        lo[i] = lo[i].min(v);
        hi[i] = hi[i].max(v);
        finite[i] &= v.is_finite();
    }
    (
        fold_lanes(lo, f32::min),
        fold_lanes(hi, f32::max),
        finite.iter().all(|&f| f),
    )
}

/// The rounded quotient is read from the low mantissa bits of `t + 1.5 · 2^23` (exact for
/// `|t| <= 512`), and the zero point added and the result clamped in i32: a saturating
/// float-to-int cast does not vectorize.
#[inline(always)]
fn quantize_dividing_body(x: &[f32], scale: f32, zp: f32, y: &mut [u8]) {
    const MAGIC: f32 = 12_582_912.0;
    let zp = zp as i32;
    for (o, &v) in y.iter_mut().zip(x) {
        let t = (v / scale).clamp(-512.0, 512.0) + MAGIC;
        let q = (t.to_bits() as i32 - MAGIC.to_bits() as i32 + zp).clamp(0, 255);
        *o = if v.is_nan() { 0 } else { q as u8 };
    }
}

/// One loop per function, each calling it directly (`#[inline(always)]` then holds).
#[inline(always)]
fn map_math_body(f: crate::vector::MathFn, y: &mut [f32]) {
    use crate::math;
    use crate::vector::MathFn;
    match f {
        MathFn::Erf => {
            for v in y {
                *v = math::erf(*v);
            }
        }
        MathFn::GeluErf => {
            for v in y {
                *v = math::gelu_erf(*v);
            }
        }
    }
}

#[inline(always)]
fn map_in_place_body<F: Fn(f32) -> f32>(y: &mut [f32], f: F) {
    for v in y {
        *v = f(*v);
    }
}

#[inline(always)]
fn zip_map_body<F: Fn(f32, f32) -> f32>(a: &[f32], b: &[f32], y: &mut [f32], f: F) {
    for ((o, &u), &v) in y.iter_mut().zip(a).zip(b) {
        *o = f(u, v);
    }
}

#[inline(always)]
fn zip_map_in_place_body<F: Fn(f32, f32) -> f32>(y: &mut [f32], b: &[f32], f: F) {
    for (o, &v) in y.iter_mut().zip(b) {
        *o = f(*o, v);
    }
}

/// Every row: `max`, `exp(v - max)` in place with the fixed-order sum of [`sum_body`] in the
/// same pass, then `e * (1 / sum)`; all in one compiled copy, so short rows pay no per-row
/// dispatch.
#[inline(always)]
fn softmax_rows_body(y: &mut [f32], row: usize) {
    for r in y.chunks_exact_mut(row) {
        let max = max_body(r);
        let sum = exp_sum_body(r, max);
        let inv = 1.0 / sum;
        map_in_place_body(r, |e| e * inv);
    }
}

/// `x[i] = exp(x[i] - max)` and the sum of the results in [`sum_body`]'s order (so the same
/// bits as the two passes), in one pass.
#[inline(always)]
fn exp_sum_body(x: &mut [f32], max: f32) -> f32 {
    let mut lanes = [0f32; LANES];
    let mut chunks = x.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for (l, v) in lanes.iter_mut().zip(c) {
            *v = crate::math::exp(*v - max);
            *l += *v;
        }
    }
    for (l, v) in lanes.iter_mut().zip(chunks.into_remainder()) {
        *v = crate::math::exp(*v - max);
        *l += *v;
    }
    fold_lanes(lanes, |a, b| a + b)
}

/// Lanes of the fixed-order reductions.
pub(crate) const LANES: usize = 16;

/// Lane `i` adds `x[i], x[16 + i], ...` (the tail into the first lanes), then the lanes fold
/// pairwise: `l[i] += l[i + 8]`, `l[i] += l[i + 4]`, `+ l[i + 2]`, `+ l[i + 1]`.
#[inline(always)]
fn sum_body(x: &[f32]) -> f32 {
    let mut lanes = [0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l += v;
        }
    }
    for (l, &v) in lanes.iter_mut().zip(tail) {
        *l += v;
    }
    fold_lanes(lanes, |a, b| a + b)
}

/// The maximum by `f32::max` (NaN ignored unless all are NaN; `-inf` for no values). Any
/// order gives the same result, so four independent lane sets run side by side.
#[inline(always)]
fn max_body(x: &[f32]) -> f32 {
    let mut sets = [[f32::NEG_INFINITY; LANES]; 4];
    let blocks = x.chunks_exact(4 * LANES);
    let rest = blocks.remainder();
    for b in blocks {
        for (set, c) in sets.iter_mut().zip(b.chunks_exact(LANES)) {
            for (l, &v) in set.iter_mut().zip(c) {
                *l = l.max(v);
            }
        }
    }
    let [mut lanes, s1, s2, s3] = sets;
    for s in [s1, s2, s3] {
        for (l, v) in lanes.iter_mut().zip(s) {
            *l = l.max(v);
        }
    }
    for (i, &v) in rest.iter().enumerate() {
        lanes[i % LANES] = lanes[i % LANES].max(v);
    }
    fold_lanes(lanes, f32::max)
}

#[inline(always)]
fn fold_lanes(mut lanes: [f32; LANES], op: impl Fn(f32, f32) -> f32) -> f32 {
    let mut half = LANES / 2;
    while half > 0 {
        for i in 0..half {
            lanes[i] = op(lanes[i], lanes[i + half]);
        }
        half /= 2;
    }
    lanes[0]
}
