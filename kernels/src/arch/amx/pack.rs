//! Weights in the layout `tdpbusd` reads as its B operand.

use aligned_vec::{AVec, ConstAlign, avec};

use super::tile_ops::{A_STEP_BYTES, B_ROW_BYTES, B_TILE_BYTES, K_STEP, TILE_DIM};

/// Bytes of one K group (`tdpbusd` multiplies 4 consecutive K bytes per output).
const K_GROUP: usize = 4;

/// s8 weights `W[N][K]` packed for AMX: 16-column panels, each `K_pad / 4` rows of
/// 16 columns x 4 consecutive K bytes, so one K step (64 K values) of one panel is one
/// contiguous 16 x 64-byte B tile. `K_pad` is K rounded up to 64 and N is rounded up to
/// 16; the padding is zero, so it adds nothing to any sum. 64-byte aligned, immutable.
///
/// Element `(col, kk)` lives at byte
/// `(col / 16) · K_pad · 16 + (kk / 4) · 64 + (col % 16) · 4 + kk % 4`.
#[derive(Clone, Debug)]
pub(crate) struct AmxPackedB {
    n: usize,
    k: usize,
    k_padded: usize,
    data: AVec<i8, ConstAlign<64>>,
    /// Byte offset of each 64-byte K step of an A row read in place (`s · 64`) and of a
    /// packed A group (`s · A_STEP_BYTES`): the tile block's step tables, built once.
    in_place_steps: Vec<usize>,
    packed_steps: Vec<usize>,
}

impl AmxPackedB {
    /// Packs `w`, N x K row-major (`w[col * k + kk]`).
    ///
    /// # Panics
    /// If `w.len() != n * k` (the GEMM layer validates this before packing).
    pub(crate) fn new(w: &[i8], n: usize, k: usize) -> AmxPackedB {
        assert_eq!(
            Some(w.len()),
            n.checked_mul(k),
            "AmxPackedB::new: weights must hold n x k = {n} x {k} values"
        );
        let k_padded = k.next_multiple_of(K_STEP);
        let panel_bytes = k_padded * TILE_DIM;
        let mut data = avec![[64]| 0i8; n.div_ceil(TILE_DIM) * panel_bytes];
        if k > 0 {
            for (col, row) in w.chunks_exact(k).enumerate() {
                let base = (col / TILE_DIM) * panel_bytes + (col % TILE_DIM) * K_GROUP;
                let panel_column = data[base..].chunks_mut(B_ROW_BYTES);
                for (group, dst) in row.chunks(K_GROUP).zip(panel_column) {
                    dst[..group.len()].copy_from_slice(group);
                }
            }
        }
        let steps = k_padded / K_STEP;
        AmxPackedB {
            n,
            k,
            k_padded,
            data,
            in_place_steps: (0..steps).map(|s| s * K_STEP).collect(),
            packed_steps: (0..steps).map(|s| s * A_STEP_BYTES).collect(),
        }
    }

    /// The step offsets of A rows read in place and of packed A groups (see the fields).
    pub(crate) fn a_step_tables(&self) -> (&[usize], &[usize]) {
        (&self.in_place_steps, &self.packed_steps)
    }

    /// Output columns (N).
    pub(crate) fn n(&self) -> usize {
        self.n
    }

    /// Reduction length (K).
    pub(crate) fn k(&self) -> usize {
        self.k
    }

    /// K rounded up to a multiple of 64 (the packed length of every column).
    pub(crate) fn k_padded(&self) -> usize {
        self.k_padded
    }

    /// Number of 16-column panels (N rounded up to 16, divided by 16).
    #[cfg(test)]
    pub(crate) fn panels(&self) -> usize {
        self.n.div_ceil(TILE_DIM)
    }

    /// The packed bytes (all panels, including the zero padding).
    pub(crate) fn bytes(&self) -> &[u8] {
        bytemuck::cast_slice(self.data.as_slice())
    }

    /// The first B tile (K step 0) of panel `p < panels()`.
    pub(crate) fn panel(&self, p: usize) -> &[u8] {
        let panel_bytes = self.k_padded * TILE_DIM;
        &self.bytes()[p * panel_bytes..(p + 1) * panel_bytes]
    }
}

/// Rows of one packed A group (two row tiles).
pub(crate) const A_GROUP_ROWS: usize = 2 * TILE_DIM;

/// Bytes of one packed A group of K padded to `k_padded`.
pub(crate) fn a_group_bytes(k_padded: usize) -> usize {
    k_padded / K_STEP * A_STEP_BYTES
}

/// Packs `count <= 32` rows of A (`row(r)`, at least `k` bytes each) into the layout the
/// tile kernel reads: byte `q` of K step `s` of row `r` goes to
/// `out[s·2048 + (r / 16)·1024 + (r % 16)·64 + q]`, so each K step of the group is one
/// contiguous 2 KB pair of tiles with 64-byte rows. The K tail and the rows past `count`
/// are zero, so they add nothing to any sum.
///
/// # Panics
/// If `count > 32`, a row is shorter than `k`, or `out.len() != a_group_bytes(k_padded)`
/// with `k_padded` = K rounded up to 64 (the driver sizes both).
pub(crate) fn pack_a_group<'a>(
    row: impl Fn(usize) -> &'a [u8],
    count: usize,
    k: usize,
    out: &mut [u8],
) {
    assert!(count <= A_GROUP_ROWS, "pack_a_group: {count} rows > 32");
    assert_eq!(
        out.len(),
        a_group_bytes(k.next_multiple_of(K_STEP)),
        "pack_a_group: out length"
    );
    let rows: [&[u8]; A_GROUP_ROWS] =
        std::array::from_fn(|r| if r < count { &row(r)[..k] } else { &[] });
    // Step by step, so the destination is written sequentially (2 KB per step); each source
    // row is read forward, 64 bytes a step.
    for (s, step) in out.chunks_exact_mut(A_STEP_BYTES).enumerate() {
        let lo = s * K_STEP;
        for (src, dst) in rows.iter().zip(step.chunks_exact_mut(B_ROW_BYTES)) {
            let dst = <&mut [u8; K_STEP]>::try_from(dst).expect("64-byte rows");
            match src.get(lo..lo + K_STEP) {
                // A whole step as a fixed-size copy (two zmm moves, no memcpy call).
                Some(chunk) => *dst = *<&[u8; K_STEP]>::try_from(chunk).expect("64 bytes"),
                None => {
                    let tail = src.get(lo..).unwrap_or(&[]);
                    dst[..tail.len()].copy_from_slice(tail);
                    dst[tail.len()..].fill(0);
                }
            }
        }
    }
}

// One packed panel is `k_padded / 64` B tiles back to back.
const _: () = assert!(B_TILE_BYTES == TILE_DIM * B_ROW_BYTES && B_ROW_BYTES == TILE_DIM * K_GROUP);

#[cfg(test)]
mod tests {
    use super::*;

    fn weights(n: usize, k: usize, seed: u32) -> Vec<i8> {
        (0..n * k)
            .map(|i| (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) as i8)
            .collect()
    }

    #[test]
    fn layout_matches_definition_element_by_element() {
        for (n, k) in [
            (1, 1),
            (15, 63),
            (16, 64),
            (17, 65),
            (33, 129),
            (31, 200),
            (2, 4),
        ] {
            let w = weights(n, k, 7);
            let p = AmxPackedB::new(&w, n, k);
            assert_eq!((p.n(), p.k()), (n, k));
            assert_eq!(p.k_padded(), k.div_ceil(64) * 64);
            assert_eq!(p.panels(), n.div_ceil(16));
            let bytes = p.bytes();
            assert_eq!(bytes.len(), p.panels() * 16 * p.k_padded());
            assert_eq!(bytes.as_ptr() as usize % 64, 0, "64-byte aligned");
            let mut expected = vec![0u8; bytes.len()];
            for col in 0..p.panels() * 16 {
                for kk in 0..p.k_padded() {
                    let at =
                        (col / 16) * p.k_padded() * 16 + (kk / 4) * 64 + (col % 16) * 4 + kk % 4;
                    expected[at] = if col < n && kk < k {
                        w[col * k + kk] as u8
                    } else {
                        0
                    };
                }
            }
            assert_eq!(bytes, &expected[..], "n={n} k={k}");
            for panel in 0..p.panels() {
                assert_eq!(p.panel(panel).len(), p.k_padded() * 16);
                assert_eq!(p.panel(panel).as_ptr() as usize % 64, 0);
            }
        }
    }

    #[test]
    fn a_groups_match_definition_element_by_element() {
        for (count, k) in [
            (32usize, 64usize),
            (1, 1),
            (17, 63),
            (32, 65),
            (5, 200),
            (0, 7),
            (16, 128),
        ] {
            let data: Vec<u8> = (0..32 * k).map(|i| (i * 131 % 251) as u8 + 1).collect();
            let k_padded = k.next_multiple_of(64);
            let mut out = vec![0xAAu8; a_group_bytes(k_padded)];
            pack_a_group(|r| &data[r * k..][..k], count, k, &mut out);
            for s in 0..k_padded / 64 {
                for r in 0..32 {
                    for q in 0..64 {
                        let kk = s * 64 + q;
                        let want = if r < count && kk < k {
                            data[r * k + kk]
                        } else {
                            0
                        };
                        let at = s * 2048 + (r / 16) * 1024 + (r % 16) * 64 + q;
                        assert_eq!(out[at], want, "count={count} k={k} s={s} r={r} q={q}");
                    }
                }
            }
        }
    }

    #[test]
    fn empty_shapes_pack_to_nothing() {
        assert!(AmxPackedB::new(&[], 0, 5).bytes().is_empty());
        let p = AmxPackedB::new(&[], 3, 0);
        assert_eq!((p.n(), p.k(), p.k_padded()), (3, 0, 0));
    }

    #[test]
    #[should_panic(expected = "n x k = 2 x 3")]
    fn wrong_length_is_rejected() {
        AmxPackedB::new(&[0; 5], 2, 3);
    }

    #[test]
    fn packed_weights_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<AmxPackedB>();
    }
}
