//! Weight packing: the per-tier layout, column sums, scales, bias and the AVX2 pair analysis.
//!
//! SIMD tiers share one layout: N is cut into panels of [`PANEL`] = 16 columns (zero-padded),
//! and each panel stores K in 4-byte groups (`[group][column][4]`, 64 bytes per group, K
//! zero-padded to a multiple of 4). A zmm register holds one group row of a panel, a ymm half
//! of it. The scalar tier keeps the row-major weights.
//!
//! For [`Tier::Avx2`] every weight pair `(w[k], w[k+1])` (k even) is checked at pack time: if
//! `vpmaddubsw` could saturate on it for some u8 activation (`int8-math.md`), the pair is
//! split into two halves that are each provably safe, `w = fast + residual` with
//! `residual = w / 2` (truncated): the fast panel keeps `w - w / 2`, and the half group row
//! (8 columns x 4 K bytes, same layout) goes to a per-panel residual list holding the other
//! halves, which the kernel runs through the same `vpmaddubsw` step. Both passes are exact, so the AVX2 result is
//! exact for every input, and costs extra only for the groups that need it.

use rayon::prelude::*;

use crate::arch::amx::AmxPackedB;
use crate::cpu::Tier;
use crate::error::{Error, Result};
use crate::reference::gemm::{MAX_K, column_sums};

/// Columns per packed panel (one zmm of i32 accumulators).
pub const PANEL: usize = 16;
/// Bytes of K per group (one `vpdpbusd` lane).
pub(crate) const GROUP: usize = 4;
/// Bytes of one group row of a panel.
pub(crate) const GROUP_BYTES: usize = PANEL * GROUP;

/// Whether `vpmaddubsw` can saturate on the pair `(w0, w1)` for some u8 activation pair:
/// `255 * (max(w0,0) + max(w1,0)) > 32767 || 255 * (max(-w0,0) + max(-w1,0)) > 32768`
/// (`int8-math.md`), which for integer weights is "the same-sign magnitudes sum beyond 128".
#[inline]
pub fn pair_may_saturate(w0: i8, w1: i8) -> bool {
    let (a, b) = (w0 as i16, w1 as i16);
    (a.max(0) + b.max(0) > 128) | (a.min(0) + b.min(0) < -128)
}

/// Splits a weight pair into `(fast, residual)` halves, each `vpmaddubsw`-safe, summing to
/// the pair. Safe pairs stay whole (`residual = (0, 0)`).
pub(crate) fn split_pair(w0: i8, w1: i8) -> ((i8, i8), (i8, i8)) {
    if pair_may_saturate(w0, w1) {
        let (r0, r1) = (w0 / 2, w1 / 2);
        ((w0 - r0, w1 - r1), (r0, r1))
    } else {
        ((w0, w1), (0, 0))
    }
}

/// Bytes of one half group row: 8 columns x 4 K bytes (one ymm).
pub(crate) const HALF_BYTES: usize = GROUP_BYTES / 2;

/// The AVX2 exactness data: the residual halves of the unsafe pairs, by half group row
/// (8 columns, one ymm), so a split pair costs only its own half of the panel.
pub(crate) struct Avx2Residual {
    /// Residual entries of panel `p`, columns `8h..8h + 8` (h = 0, 1) are
    /// `starts[2p + h]..starts[2p + h + 1]`.
    pub starts: Vec<usize>,
    /// Group index (within the panel) of each residual entry.
    pub groups: Vec<u32>,
    /// One 32-byte half group row (panel layout) per entry: the residual halves of its
    /// unsafe pairs, zero elsewhere.
    pub weights: Vec<u8>,
}

/// The packed weight bytes, in the tier's layout.
pub(crate) enum Body {
    /// Row-major N x K (scalar tier).
    RowMajor(Vec<i8>),
    /// 16-column panels of 4-byte K groups (VNNI tiers).
    Panels(Vec<u8>),
    /// Panels whose unsafe pairs keep only their fast half, plus the residual halves (AVX2).
    Avx2(Vec<u8>, Avx2Residual),
    /// `tdpbusd` B tiles (AMX): the panel layout with K padded to 64, which the AVX-512
    /// kernel also reads for shapes too small for tiles.
    Amx(AmxPackedB),
}

/// Weights packed once per layer for one [`Tier`]: immutable, `Send + Sync`, shareable across
/// threads and calls.
///
/// ```
/// use q8_kernels::cpu::Tier;
/// use q8_kernels::gemm::PackedWeights;
/// let w = vec![1i8; 3 * 5]; // N = 3 outputs, K = 5 inputs, row-major [out][in]
/// let p = PackedWeights::new(Tier::Scalar, 3, 5, &w, &[0.1], Some(&[0.0, 1.0, 2.0])).unwrap();
/// assert_eq!((p.n(), p.k(), p.tier()), (3, 5, Tier::Scalar));
/// assert!(PackedWeights::new(Tier::Scalar, 3, 5, &w, &[0.0], None).is_err()); // zero scale
/// ```
pub struct PackedWeights {
    tier: Tier,
    n: usize,
    k: usize,
    pub(crate) body: Body,
    /// `sum_k w[n][k]`, zero-padded to whole panels.
    pub(crate) colsum: Vec<i32>,
    /// Per-column weight scale (per-tensor expanded), padded with 1.0.
    pub(crate) weight_scales: Vec<f32>,
    /// Per-column bias, zero-padded, when given.
    pub(crate) bias: Option<Vec<f32>>,
}

impl PackedWeights {
    /// Packs `weights` (s8, N x K row-major `[out][in]`) for `tier`.
    ///
    /// `weight_scales` has N entries (per output channel) or 1 (per tensor); each must be
    /// finite and > 0. `bias` (f32, N entries, finite) is added in the epilogue.
    ///
    /// # Errors
    /// Zero N or K, K above [`MAX_K`], wrong slice lengths, bad scales or bias, a tier this
    /// crate cannot pack for (see [`crate::gemm`] on AMX).
    pub fn new(
        tier: Tier,
        n: usize,
        k: usize,
        weights: &[i8],
        weight_scales: &[f32],
        bias: Option<&[f32]>,
    ) -> Result<PackedWeights> {
        if n == 0 || k == 0 {
            return Err(Error::Shape(format!(
                "packed weights: N and K must be >= 1, got N = {n}, K = {k}"
            )));
        }
        if k > MAX_K {
            return Err(Error::KTooLarge { k, max: MAX_K });
        }
        let expected = n
            .checked_mul(k)
            .ok_or_else(|| Error::Shape(format!("packed weights: N x K = {n} x {k} overflows")))?;
        if weights.len() != expected {
            return Err(Error::Length {
                what: "packed weights: weights (N x K)",
                expected,
                actual: weights.len(),
            });
        }
        if weight_scales.len() != n && weight_scales.len() != 1 {
            return Err(Error::Length {
                what: "packed weights: weight scales (N, or 1 per tensor)",
                expected: n,
                actual: weight_scales.len(),
            });
        }
        if let Some((i, s)) = weight_scales
            .iter()
            .enumerate()
            .find(|(_, s)| !(s.is_finite() && **s > 0.0))
        {
            return Err(Error::QParams(format!(
                "packed weights: weight scale [{i}] = {s} must be finite and > 0"
            )));
        }
        if let Some(b) = bias {
            if b.len() != n {
                return Err(Error::Length {
                    what: "packed weights: bias",
                    expected: n,
                    actual: b.len(),
                });
            }
            if let Some((i, v)) = b.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                return Err(Error::QParams(format!(
                    "packed weights: bias [{i}] = {v} must be finite"
                )));
            }
        }
        let n_pad = n.div_ceil(PANEL) * PANEL;
        let body = match tier {
            Tier::Scalar => Body::RowMajor(weights.to_vec()),
            Tier::AvxVnni | Tier::Avx512Vnni => Body::Panels(pack_panels(weights, n, k)),
            Tier::Avx2 => {
                let mut panels = pack_panels(weights, n, k);
                let residual = split_unsafe_pairs(&mut panels, k);
                Body::Avx2(panels, residual)
            }
            Tier::Amx => Body::Amx(AmxPackedB::new(weights, n, k)),
        };
        let mut colsum: Vec<i32> = weights
            .par_chunks(64 * k)
            .flat_map_iter(|rows| column_sums(rows, rows.len() / k, k))
            .collect();
        colsum.resize(n_pad, 0);
        let weight_scales = (0..n_pad)
            .map(|j| match weight_scales.len() {
                1 => weight_scales[0],
                _ => weight_scales.get(j).copied().unwrap_or(1.0),
            })
            .collect();
        let bias = bias.map(|b| {
            let mut v = b.to_vec();
            v.resize(n_pad, 0.0);
            v
        });
        Ok(PackedWeights {
            tier,
            n,
            k,
            body,
            colsum,
            weight_scales,
            bias,
        })
    }

    /// The tier these weights were packed for (the only tier that can use them).
    pub fn tier(&self) -> Tier {
        self.tier
    }

    /// Output channels (N).
    pub fn n(&self) -> usize {
        self.n
    }

    /// Reduction length (K).
    pub fn k(&self) -> usize {
        self.k
    }

    /// For [`Tier::Avx2`]: the fraction of (panel, K group, 8-column half) rows that need
    /// the second, residual pass (0 when every weight pair is `vpmaddubsw`-safe); `None` for
    /// other tiers.
    pub fn avx2_residual_fraction(&self) -> Option<f64> {
        match &self.body {
            Body::Avx2(panels, r) => {
                Some(r.groups.len() as f64 / (panels.len() / HALF_BYTES) as f64)
            }
            _ => None,
        }
    }
}

/// K groups per panel.
pub(crate) fn k_groups(k: usize) -> usize {
    k.div_ceil(GROUP)
}

/// Packs N x K row-major weights into 16-column panels of 4-byte K groups (zero-padded).
fn pack_panels(w: &[i8], n: usize, k: usize) -> Vec<u8> {
    let w: &[u8] = bytemuck::cast_slice(w);
    let kg = k_groups(k);
    let panel_bytes = kg * GROUP_BYTES;
    let mut out = vec![0u8; n.div_ceil(PANEL) * panel_bytes];
    out.par_chunks_mut(panel_bytes)
        .enumerate()
        .for_each(|(p, panel)| {
            for c in 0..PANEL.min(n - p * PANEL) {
                let row = &w[(p * PANEL + c) * k..][..k];
                let quads = row.chunks_exact(GROUP);
                let tail = quads.remainder();
                let mut dst = panel[c * GROUP..].chunks_mut(GROUP_BYTES);
                for (quad, d) in quads.zip(&mut dst) {
                    d[..GROUP].copy_from_slice(quad);
                }
                if let Some(d) = dst.next().filter(|_| !tail.is_empty()) {
                    d[..tail.len()].copy_from_slice(tail);
                }
            }
        });
    out
}

/// Splits every `vpmaddubsw`-unsafe pair of `panels` ([`split_pair`]): the fast half stays,
/// the residual half goes to the group's residual row.
fn split_unsafe_pairs(panels: &mut [u8], k: usize) -> Avx2Residual {
    let panel_bytes = k_groups(k) * GROUP_BYTES;
    // Per panel and half: (group indices, residual half rows).
    let per_panel: Vec<[(Vec<u32>, Vec<u8>); 2]> = panels
        .par_chunks_mut(panel_bytes)
        .map(|panel| {
            let mut halves: [(Vec<u32>, Vec<u8>); 2] = Default::default();
            for (g, row) in panel.chunks_exact_mut(GROUP_BYTES).enumerate() {
                for (h, half) in row.chunks_exact_mut(HALF_BYTES).enumerate() {
                    // Branch-free screen first: most half rows have no unsafe pair.
                    let unsafe_any = half.chunks_exact(2).fold(false, |any, p| {
                        any | pair_may_saturate(p[0] as i8, p[1] as i8)
                    });
                    if !unsafe_any {
                        continue;
                    }
                    let mut residual = [0u8; HALF_BYTES];
                    let mut any = false;
                    for at in (0..HALF_BYTES).step_by(2) {
                        let ((f0, f1), (r0, r1)) = split_pair(half[at] as i8, half[at + 1] as i8);
                        if (r0, r1) != (0, 0) {
                            any = true;
                            (half[at], half[at + 1]) = (f0 as u8, f1 as u8);
                            (residual[at], residual[at + 1]) = (r0 as u8, r1 as u8);
                        }
                    }
                    if any {
                        halves[h].0.push(g as u32);
                        halves[h].1.extend_from_slice(&residual);
                    }
                }
            }
            halves
        })
        .collect();
    let mut starts = vec![0];
    let mut groups = Vec::new();
    let mut weights = Vec::new();
    for (g, w) in per_panel.into_iter().flatten() {
        groups.extend_from_slice(&g);
        weights.extend_from_slice(&w);
        starts.push(groups.len());
    }
    Avx2Residual {
        starts,
        groups,
        weights,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_analysis_matches_the_contract() {
        assert!(pair_may_saturate(127, 127));
        assert!(pair_may_saturate(-128, -128));
        assert!(pair_may_saturate(127, 2));
        assert!(!pair_may_saturate(127, 1)); // 255 * 128 = 32640 fits i16
        assert!(pair_may_saturate(-64, -65));
        assert!(!pair_may_saturate(-64, -64)); // 255 * 128 = 32640 <= 32768
        assert!(!pair_may_saturate(64, 64)); // 255 * 128 = 32640 <= 32767
        assert!(!pair_may_saturate(127, -128));
        assert!(!pair_may_saturate(0, -128));
    }

    #[test]
    fn panel_layout_groups_four_k_per_column() {
        // N = 2, K = 5: w[n][k] = 10 n + k.
        let w: Vec<i8> = (0..2)
            .flat_map(|n| (0..5).map(move |k| (10 * n + k) as i8))
            .collect();
        let p = pack_panels(&w, 2, 5);
        assert_eq!(p.len(), 2 * GROUP_BYTES);
        assert_eq!(&p[0..4], &[0, 1, 2, 3]);
        assert_eq!(&p[4..8], &[10, 11, 12, 13]);
        assert_eq!(&p[GROUP_BYTES..GROUP_BYTES + 8], &[4, 0, 0, 0, 14, 0, 0, 0]);
    }

    #[test]
    fn pair_rule_is_the_contract_formula() {
        for w0 in i8::MIN..=i8::MAX {
            for w1 in i8::MIN..=i8::MAX {
                let pos = w0.max(0) as i32 + w1.max(0) as i32;
                let neg = -(w0.min(0) as i32) - w1.min(0) as i32;
                let contract = 255 * pos > 32767 || 255 * neg > 32768;
                assert_eq!(pair_may_saturate(w0, w1), contract, "({w0}, {w1})");
            }
        }
    }

    #[test]
    fn every_pair_splits_into_safe_halves() {
        for w0 in i8::MIN..=i8::MAX {
            for w1 in i8::MIN..=i8::MAX {
                let ((f0, f1), (r0, r1)) = split_pair(w0, w1);
                assert!(!pair_may_saturate(f0, f1) && !pair_may_saturate(r0, r1));
                assert_eq!(
                    (f0 as i32 + r0 as i32, f1 as i32 + r1 as i32),
                    (w0 as i32, w1 as i32)
                );
            }
        }
    }

    #[test]
    fn unsafe_pairs_split_into_the_residual() {
        let mut w = vec![1i8; 4];
        w[0] = 127;
        w[1] = 127;
        let mut p = pack_panels(&w, 1, 4);
        let r = split_unsafe_pairs(&mut p, 4);
        assert_eq!(&p[0..4], &[64, 64, 1, 1]);
        assert_eq!(
            (r.starts.clone(), r.groups.clone()),
            (vec![0, 1, 1], vec![0])
        );
        assert_eq!(&r.weights[0..4], &[63, 63, 0, 0]);
        assert_eq!(r.weights.len(), HALF_BYTES);
    }
}
