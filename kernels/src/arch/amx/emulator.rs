//! A plain-Rust model of the AMX tile unit, so the AMX driver, packing and blocking are
//! tested on machines without AMX. It decodes the raw `ldtilecfg` bytes, keeps eight
//! 16 x 64-byte tiles, and executes `tilezero`, `tileloadd`, `tdpbusd`, `tilestored` and
//! `tilerelease` with the SDM semantics (rows/bytes beyond a tile's shape read as zero,
//! i32 sums wrap). Where the hardware would fault (#UD: no configuration, mismatched
//! shapes; #GP: bad configuration) it panics, and it panics on any tile row outside the
//! memory the driver declared, so tests catch out-of-bounds reads and writes.
//!
//! [`EmulatedTiles::block`] issues the same instruction sequence as the `asm!` block in
//! `native.rs`, line for line.

use std::ops::Range;

use super::config::{MAX_COLSB, MAX_ROWS, TILE_COUNT, TileConfig, TileShape};
use super::tile_ops::{B_ROW_BYTES, B_TILE_BYTES, BlockArgs, TileOps};

/// One tile register: 16 rows x 64 bytes.
type Tile = [[u8; MAX_COLSB]; MAX_ROWS];

/// The emulated tile unit of one thread.
pub(crate) struct EmulatedTiles {
    shapes: Option<[Option<TileShape>; TILE_COUNT]>,
    tiles: [Tile; TILE_COUNT],
    regions: Vec<(Range<usize>, bool)>,
    /// Number of `tdpbusd` executed (lets tests check the blocking).
    pub dpbusd_count: usize,
    /// Number of `ldtilecfg` executed.
    pub config_loads: usize,
}

impl EmulatedTiles {
    /// A tile unit in the initial (unconfigured) state.
    pub(crate) fn new() -> EmulatedTiles {
        EmulatedTiles {
            shapes: None,
            tiles: [[[0; MAX_COLSB]; MAX_ROWS]; TILE_COUNT],
            regions: Vec::new(),
            dpbusd_count: 0,
            config_loads: 0,
        }
    }

    /// Whether a configuration is loaded (false after `tilerelease`).
    pub(crate) fn is_configured(&self) -> bool {
        self.shapes.is_some()
    }

    fn shape(&self, t: usize) -> TileShape {
        let shapes = self
            .shapes
            .expect("#UD: tile instruction without ldtilecfg");
        shapes[t].unwrap_or_else(|| panic!("#UD: tmm{t} is not configured"))
    }

    fn check_access(&self, ptr: usize, bytes: usize, write: bool) {
        let ok = self
            .regions
            .iter()
            .any(|(r, writable)| r.start <= ptr && ptr + bytes <= r.end && (*writable || !write));
        assert!(
            ok,
            "tile {} of {bytes} bytes at {ptr:#x} outside the declared regions {:x?}",
            if write { "store" } else { "load" },
            self.regions
        );
    }

    /// `tilezero tmm{t}`.
    fn tilezero(&mut self, t: usize) {
        self.shape(t);
        self.tiles[t] = [[0; MAX_COLSB]; MAX_ROWS];
    }

    /// `tileloadd tmm{t}, [base + stride]`: `rows` rows of `colsb` bytes, the rest zeroed.
    ///
    /// # Safety
    /// Every row read must be readable (also checked against the declared regions).
    unsafe fn tileloadd(&mut self, t: usize, base: *const u8, stride: usize) {
        let s = self.shape(t);
        let mut tile = [[0; MAX_COLSB]; MAX_ROWS];
        for (r, row) in tile.iter_mut().enumerate().take(s.rows) {
            let src = base.wrapping_add(r * stride);
            self.check_access(src as usize, s.colsb, false);
            // SAFETY: the caller guarantees the row is readable; it lies in a declared
            // region (checked above) and `row` has room for `colsb <= 64` bytes.
            unsafe { std::ptr::copy_nonoverlapping(src, row.as_mut_ptr(), s.colsb) };
        }
        self.tiles[t] = tile;
    }

    /// `tilestored [base + stride], tmm{t}`: `rows` rows of `colsb` bytes.
    ///
    /// # Safety
    /// Every row written must be writable and unaliased (also checked against the regions).
    unsafe fn tilestored(&mut self, t: usize, base: *mut u8, stride: usize) {
        let s = self.shape(t);
        for r in 0..s.rows {
            let dst = base.wrapping_add(r * stride);
            self.check_access(dst as usize, s.colsb, true);
            // SAFETY: the caller guarantees the row is writable and unaliased; it lies in a
            // declared writable region (checked above).
            unsafe { std::ptr::copy_nonoverlapping(self.tiles[t][r].as_ptr(), dst, s.colsb) };
        }
    }

    /// `tdpbusd tmm{c}, tmm{a}, tmm{b}`: `C[m][n] += sum_q A[m][q] (u8) * B[q/4][4n + q%4] (s8)`.
    fn tdpbusd(&mut self, c: usize, a: usize, b: usize) {
        let (sc, sa, sb) = (self.shape(c), self.shape(a), self.shape(b));
        assert!(
            c != a && c != b && a != b,
            "#UD: tdpbusd operands must differ"
        );
        assert!(
            sc.rows == sa.rows && sc.colsb == sb.colsb && sa.colsb == 4 * sb.rows,
            "#UD: tdpbusd shapes C {sc:?}, A {sa:?}, B {sb:?} do not match"
        );
        assert!(
            sc.colsb % 4 == 0 && sa.colsb % 4 == 0,
            "#UD: colsb not a multiple of 4"
        );
        let (ta, tb) = (self.tiles[a], self.tiles[b]);
        let tc = &mut self.tiles[c];
        for m in 0..sc.rows {
            for n in 0..sc.colsb / 4 {
                let mut acc = i32::from_le_bytes(tc[m][4 * n..4 * n + 4].try_into().unwrap());
                for q in 0..sa.colsb {
                    let prod = i32::from(ta[m][q]) * i32::from(tb[q / 4][4 * n + q % 4] as i8);
                    acc = acc.wrapping_add(prod);
                }
                tc[m][4 * n..4 * n + 4].copy_from_slice(&acc.to_le_bytes());
            }
        }
        self.dpbusd_count += 1;
    }
}

impl TileOps for EmulatedTiles {
    fn load_config(&mut self, cfg: &TileConfig) {
        self.shapes = Some(TileConfig::decode(cfg.as_bytes()).expect("#GP: invalid tile config"));
        self.tiles = [[[0; MAX_COLSB]; MAX_ROWS]; TILE_COUNT];
        self.config_loads += 1;
    }

    fn release(&mut self) {
        self.shapes = None;
        self.tiles = [[[0; MAX_COLSB]; MAX_ROWS]; TILE_COUNT];
    }

    unsafe fn block<const MT: usize, const NT: usize>(&mut self, args: &BlockArgs) {
        const { assert!(MT >= 1 && MT <= 2 && NT >= 1 && NT <= 2) };
        assert!(
            args.k_steps >= 1,
            "k_steps = 0 would loop 2^64 times in the asm"
        );
        let (mut b0, mut b1) = (args.b[0], args.b[1]);
        // SAFETY: the step table holds `k_steps` offsets (this function's contract).
        let steps = unsafe { std::slice::from_raw_parts(args.a_steps, args.k_steps) };
        self.tilezero(0);
        if NT == 2 {
            self.tilezero(1);
        }
        if MT == 2 {
            self.tilezero(2);
            if NT == 2 {
                self.tilezero(3);
            }
        }
        for &step in steps {
            let (a0, a1) = (args.a[0].wrapping_add(step), args.a[1].wrapping_add(step));
            // SAFETY: the A/B tile rows of every step are readable (this function's contract).
            unsafe {
                self.tileloadd(4, a0, args.lda);
                self.tileloadd(6, b0, B_ROW_BYTES);
            }
            self.tdpbusd(0, 4, 6);
            if NT == 2 {
                // SAFETY: as for the loads above.
                unsafe { self.tileloadd(7, b1, B_ROW_BYTES) };
                self.tdpbusd(1, 4, 7);
            }
            if MT == 2 {
                // SAFETY: as for the loads above.
                unsafe { self.tileloadd(5, a1, args.lda) };
                self.tdpbusd(2, 5, 6);
                if NT == 2 {
                    self.tdpbusd(3, 5, 7);
                }
            }
            b0 = b0.wrapping_add(B_TILE_BYTES);
            b1 = b1.wrapping_add(B_TILE_BYTES);
        }
        let c = args.c.cast::<u8>();
        // SAFETY: forwarded from this function's contract (C rows writable).
        unsafe {
            self.tilestored(0, c, args.ldc_bytes);
            if NT == 2 {
                self.tilestored(1, c.wrapping_add(64), args.ldc_bytes);
            }
            if MT == 2 {
                let c1 = c.wrapping_add(16 * args.ldc_bytes);
                self.tilestored(2, c1, args.ldc_bytes);
                if NT == 2 {
                    self.tilestored(3, c1.wrapping_add(64), args.ldc_bytes);
                }
            }
        }
    }

    fn declare_region(&mut self, start: *const u8, bytes: usize, writable: bool) {
        let start = start as usize;
        self.regions.push((start..start + bytes, writable));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shaped(rows: usize, colsb: usize) -> TileShape {
        TileShape { rows, colsb }
    }

    #[test]
    fn tdpbusd_matches_definition_on_full_tiles() {
        let mut e = EmulatedTiles::new();
        e.load_config(&TileConfig::full_tiles());
        let a: Vec<u8> = (0..1024).map(|i| (i * 37 % 256) as u8).collect();
        let b: Vec<u8> = (0..1024).map(|i| (i * 91 % 256) as u8).collect();
        let mut c = vec![7i32; 256];
        e.declare_region(a.as_ptr(), a.len(), false);
        e.declare_region(b.as_ptr(), b.len(), false);
        e.declare_region(c.as_ptr().cast(), c.len() * 4, true);
        // SAFETY: a, b are 1 KB (16 rows x 64 bytes), c is 16 x 16 i32.
        unsafe {
            e.tileloadd(0, c.as_ptr().cast(), 64);
            e.tileloadd(4, a.as_ptr(), 64);
            e.tileloadd(6, b.as_ptr(), 64);
            e.tdpbusd(0, 4, 6);
            e.tilestored(0, c.as_mut_ptr().cast(), 64);
        }
        for m in 0..16 {
            for n in 0..16 {
                let mut want = 7i32;
                for k4 in 0..16 {
                    for i in 0..4 {
                        want += i32::from(a[m * 64 + 4 * k4 + i])
                            * i32::from(b[k4 * 64 + 4 * n + i] as i8);
                    }
                }
                assert_eq!(c[m * 16 + n], want, "C[{m}][{n}]");
            }
        }
        assert_eq!(e.dpbusd_count, 1);
    }

    #[test]
    fn partial_shapes_zero_the_rest_and_wrap() {
        let mut bytes = *TileConfig::full_tiles().as_bytes();
        // tmm0: 2 rows x 8 bytes (2 i32), tmm4: 2 rows x 4 bytes, tmm6: 1 row x 8 bytes.
        for (t, s) in [(0, shaped(2, 8)), (4, shaped(2, 4)), (6, shaped(1, 8))] {
            bytes[16 + 2 * t..18 + 2 * t].copy_from_slice(&(s.colsb as u16).to_le_bytes());
            bytes[48 + t] = s.rows as u8;
        }
        let cfg = TileConfig::from_raw(bytes);
        let mut e = EmulatedTiles::new();
        e.load_config(&cfg);
        let a = [255u8; 8];
        let b = [0x80u8; 8]; // -128
        let mut c = [i32::MIN + 1000, 3, 0, 0];
        e.declare_region(a.as_ptr(), 8, false);
        e.declare_region(b.as_ptr(), 8, false);
        e.declare_region(c.as_ptr().cast(), 16, true);
        // SAFETY: all rows lie inside the 8/8/16-byte arrays declared above.
        unsafe {
            e.tileloadd(0, c.as_ptr().cast(), 8);
            e.tileloadd(4, a.as_ptr(), 4);
            e.tileloadd(6, b.as_ptr(), 8);
            assert!(e.tiles[4][0][4..].iter().all(|&x| x == 0));
            assert!(e.tiles[6][1].iter().all(|&x| x == 0));
            e.tdpbusd(0, 4, 6);
            e.tilestored(0, c.as_mut_ptr().cast(), 8);
        }
        let dot = 4 * 255 * -128;
        assert_eq!(c, [(i32::MIN + 1000).wrapping_add(dot), 3 + dot, dot, dot]);
    }

    #[test]
    #[should_panic(expected = "#UD: tdpbusd shapes")]
    fn mismatched_shapes_fault() {
        let mut cfg_bytes = *TileConfig::full_tiles().as_bytes();
        cfg_bytes[48 + 6] = 8; // B with 8 rows against A with 64 bytes per row
        let mut e = EmulatedTiles::new();
        e.load_config(&TileConfig::from_raw(cfg_bytes));
        e.tdpbusd(0, 4, 6);
    }

    #[test]
    #[should_panic(expected = "#UD: tile instruction without ldtilecfg")]
    fn unconfigured_use_faults() {
        let mut e = EmulatedTiles::new();
        e.load_config(&TileConfig::full_tiles());
        e.release();
        assert!(!e.is_configured());
        e.tilezero(0);
    }

    #[test]
    #[should_panic(expected = "outside the declared regions")]
    fn out_of_region_load_is_caught() {
        let mut e = EmulatedTiles::new();
        e.load_config(&TileConfig::full_tiles());
        let a = vec![0u8; 1024 + 63];
        e.declare_region(a.as_ptr(), 1023, false);
        // SAFETY: the buffer holds 1087 bytes, so the read itself stays in bounds.
        unsafe { e.tileloadd(4, a.as_ptr(), 64) };
    }
}
