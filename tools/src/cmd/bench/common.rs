//! Helpers shared by the `q8 bench` subcommands: list arguments, tier selection, the
//! deterministic input generator and the median of timed repetitions.

use q8_kernels::cpu::{self, Tier};

/// Parses a comma-separated list with `f`, naming `what` and the bad item on failure.
pub(crate) fn parse_list<T>(
    s: &str,
    what: &str,
    f: impl Fn(&str) -> Option<T>,
) -> Result<Vec<T>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(|x| f(x).ok_or_else(|| format!("bad {what} {x:?}")))
        .collect()
}

/// A positive count (threads, batch size).
pub(crate) fn positive(s: &str) -> Option<usize> {
    s.parse().ok().filter(|&n| n > 0)
}

/// The tiers named in `list` (comma-separated), or `default()` without a list; every one
/// must be available on this CPU.
pub(crate) fn tiers(
    list: Option<&str>,
    default: impl FnOnce() -> Result<Vec<Tier>, String>,
) -> Result<Vec<Tier>, String> {
    let tiers = match list {
        Some(list) => parse_list(list, "tier", |t| t.parse::<Tier>().ok())?,
        None => default()?,
    };
    for &t in &tiers {
        cpu::require(t).map_err(|e| e.to_string())?;
    }
    Ok(tiers)
}

/// Deterministic pseudo-random inputs (xorshift64*).
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    /// Next 64 random bits.
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// `n` random bytes (the top byte of each draw).
    pub(crate) fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next() >> 56) as u8).collect()
    }

    /// Bell-shaped weight in [-126, 126] (sum of four uniforms), like trained weights.
    pub(crate) fn weight(&mut self) -> i8 {
        let x = self.next();
        let s: i32 = (0..4).map(|i| ((x >> (16 * i)) & 63) as i32).sum();
        (s - 126) as i8
    }
}

/// Median of `times` (seconds; the upper middle one for an even count).
///
/// # Panics
/// When `times` is empty.
pub(crate) fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}
