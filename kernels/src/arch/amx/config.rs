//! The 64-byte AMX tile configuration that `ldtilecfg` reads (palette 1).
//!
//! Byte layout (Intel SDM, `LDTILECFG`): byte 0 palette id, byte 1 `start_row`, bytes
//! 16 + 2·t (u16, little endian) the bytes per row (`colsb`) of tile `t`, byte 48 + t its
//! row count; every other byte must be zero or `ldtilecfg` raises #GP.

/// Number of tile registers in palette 1.
pub(crate) const TILE_COUNT: usize = 8;
/// Most rows a palette-1 tile has.
pub(crate) const MAX_ROWS: usize = 16;
/// Most bytes per row a palette-1 tile has.
pub(crate) const MAX_COLSB: usize = 64;

const PALETTE_BYTE: usize = 0;
const START_ROW_BYTE: usize = 1;
const COLSB_BYTE: usize = 16;
const ROWS_BYTE: usize = 48;

/// Rows and bytes per row of one configured tile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TileShape {
    /// Rows (1..=16).
    pub rows: usize,
    /// Bytes per row (1..=64).
    pub colsb: usize,
}

/// A palette-1 tile configuration, stored exactly as `ldtilecfg` reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[repr(C, align(64))]
pub(crate) struct TileConfig {
    bytes: [u8; 64],
}

impl TileConfig {
    /// Palette 1, `start_row` 0, every tile unconfigured (0 rows, 0 bytes).
    fn empty() -> TileConfig {
        let mut bytes = [0u8; 64];
        bytes[PALETTE_BYTE] = 1;
        bytes[START_ROW_BYTE] = 0;
        TileConfig { bytes }
    }

    /// The configuration of the GEMM kernel: all eight tiles 16 rows x 64 bytes
    /// (tmm0-3 the 16x16 i32 accumulators, tmm4-5 the u8 A tiles, tmm6-7 the s8 B tiles).
    /// Edge blocks are zero-padded instead of reconfigured, so one `ldtilecfg` per call suffices.
    pub(crate) fn full_tiles() -> TileConfig {
        let mut cfg = TileConfig::empty();
        for t in 0..TILE_COUNT {
            cfg.set_tile(
                t,
                TileShape {
                    rows: MAX_ROWS,
                    colsb: MAX_COLSB,
                },
            );
        }
        cfg
    }

    /// Sets tile `t`'s shape. Callers pass `t < 8`, `rows <= 16`, `colsb <= 64`.
    fn set_tile(&mut self, t: usize, shape: TileShape) {
        debug_assert!(t < TILE_COUNT && shape.rows <= MAX_ROWS && shape.colsb <= MAX_COLSB);
        let colsb = (shape.colsb as u16).to_le_bytes();
        self.bytes[COLSB_BYTE + 2 * t..COLSB_BYTE + 2 * t + 2].copy_from_slice(&colsb);
        self.bytes[ROWS_BYTE + t] = shape.rows as u8;
    }

    /// Wraps raw bytes without checking them (tests use it to build invalid configurations).
    #[cfg(test)]
    pub(crate) fn from_raw(bytes: [u8; 64]) -> TileConfig {
        TileConfig { bytes }
    }

    /// The 64 bytes `ldtilecfg` reads.
    pub(crate) fn as_bytes(&self) -> &[u8; 64] {
        &self.bytes
    }

    /// Decodes a raw configuration the way `ldtilecfg` does: `Some(shapes)` (a `None` entry is
    /// an unconfigured tile) or `None` where the hardware raises #GP (palette not 1,
    /// `start_row` not 0, a reserved byte set, a shape out of range or half-configured).
    #[cfg(test)]
    pub(crate) fn decode(bytes: &[u8; 64]) -> Option<[Option<TileShape>; TILE_COUNT]> {
        let reserved_clear = bytes
            .iter()
            .enumerate()
            .filter(|&(i, _)| {
                i > START_ROW_BYTE
                    && !(COLSB_BYTE..COLSB_BYTE + 2 * TILE_COUNT).contains(&i)
                    && !(ROWS_BYTE..ROWS_BYTE + TILE_COUNT).contains(&i)
            })
            .all(|(_, &b)| b == 0);
        if bytes[PALETTE_BYTE] != 1 || bytes[START_ROW_BYTE] != 0 || !reserved_clear {
            return None;
        }
        let mut shapes = [None; TILE_COUNT];
        for (t, shape) in shapes.iter_mut().enumerate() {
            let colsb =
                u16::from_le_bytes([bytes[COLSB_BYTE + 2 * t], bytes[COLSB_BYTE + 2 * t + 1]])
                    as usize;
            let rows = bytes[ROWS_BYTE + t] as usize;
            match (rows, colsb) {
                (0, 0) => {}
                (1..=MAX_ROWS, 1..=MAX_COLSB) => *shape = Some(TileShape { rows, colsb }),
                _ => return None,
            }
        }
        Some(shapes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_ldtilecfg() {
        assert_eq!(std::mem::size_of::<TileConfig>(), 64);
        assert_eq!(std::mem::align_of::<TileConfig>(), 64);
        let mut cfg = TileConfig::empty();
        cfg.set_tile(
            3,
            TileShape {
                rows: 7,
                colsb: 0x1234 & 63,
            },
        );
        cfg.set_tile(
            7,
            TileShape {
                rows: 16,
                colsb: 64,
            },
        );
        let b = cfg.as_bytes();
        assert_eq!(b[0], 1, "palette at byte 0");
        assert_eq!(b[1], 0, "start_row at byte 1");
        assert_eq!(
            u16::from_le_bytes([b[16 + 6], b[16 + 7]]),
            0x34,
            "colsb[3] at 22"
        );
        assert_eq!(
            u16::from_le_bytes([b[16 + 14], b[16 + 15]]),
            64,
            "colsb[7] at 30"
        );
        assert_eq!(b[48 + 3], 7, "rows[3] at 51");
        assert_eq!(b[48 + 7], 16, "rows[7] at 55");
        let set: Vec<usize> = (0..64).filter(|&i| b[i] != 0).collect();
        assert_eq!(set, vec![0, 22, 30, 51, 55]);
    }

    #[test]
    fn gemm_config_is_uniform_and_valid() {
        let cfg = TileConfig::full_tiles();
        let b = cfg.as_bytes();
        for t in 0..TILE_COUNT {
            assert_eq!(u16::from_le_bytes([b[16 + 2 * t], b[17 + 2 * t]]), 64);
            assert_eq!(b[48 + t], 16);
        }
        let shapes = TileConfig::decode(b).expect("valid config");
        assert!(shapes.iter().all(|s| *s
            == Some(TileShape {
                rows: 16,
                colsb: 64
            })));
    }

    #[test]
    fn decode_rejects_what_ldtilecfg_faults_on() {
        let good = *TileConfig::full_tiles().as_bytes();
        for (byte, value) in [
            (0, 0),
            (0, 2),
            (1, 1),
            (2, 1),
            (32, 1),
            (56, 1),
            (48, 17),
            (16, 65),
        ] {
            let mut bad = good;
            bad[byte] = value;
            assert!(TileConfig::decode(&bad).is_none(), "byte {byte} = {value}");
        }
        let mut half = good;
        half[48] = 0;
        assert!(TileConfig::decode(&half).is_none(), "rows 0 with colsb 64");
    }
}
