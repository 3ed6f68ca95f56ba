//! CPU feature detection and the instruction-set tier q8 runs on.
//!
//! Detection happens once per process ([`info`]): CPUID (through raw-cpuid) says what the
//! silicon has, XCR0 (`xgetbv`) says which register states the OS saves, and for AMX the
//! Linux `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)` request must succeed. A tier
//! is *available* only when all three agree, so no path can ever raise SIGILL.
//!
//! The environment variable `Q8_ISA` (`scalar`, `avx2`, `avx-vnni`, `avx512-vnni`, `amx`)
//! caps the tier [`default_tier`] returns; naming a tier the CPU lacks is an error, not a
//! silent downgrade. Every public kernel also accepts an explicit [`Tier`], so one process
//! can exercise all tiers (as the tests do). A cap below `amx` also means the process never
//! asks Linux for the AMX permission ([`AmxPermission::CappedByEnv`]): the AMX tier is then
//! unavailable even by explicit request, and no tile instruction can run in it.
//!
//! ```
//! use q8_kernels::cpu::{self, Tier};
//! let best = cpu::default_tier().expect("Q8_ISA names a tier this CPU has");
//! assert!(cpu::is_available(Tier::Scalar));
//! assert!(cpu::is_available(best));
//! ```

mod detect;

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

pub use detect::{AmxPermission, CpuInfo, Features, OsSupport};

use crate::error::{Error, Result};

/// An instruction-set tier, ordered from slowest to fastest (`Scalar < Avx2 < ... < Amx`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    /// Portable Rust; the reference semantics.
    Scalar,
    /// AVX2 (`vpmaddubsw`, exact: weight pairs that could saturate are split at pack time).
    Avx2,
    /// AVX-VNNI: VEX-encoded `vpdpbusd` on ymm registers.
    AvxVnni,
    /// AVX-512 VNNI: `vpdpbusd` on zmm registers.
    Avx512Vnni,
    /// AMX-INT8: `tdpbusd` on 16x64-byte tiles.
    Amx,
}

impl Tier {
    /// Every tier, slowest first.
    pub const ALL: [Tier; 5] = [
        Tier::Scalar,
        Tier::Avx2,
        Tier::AvxVnni,
        Tier::Avx512Vnni,
        Tier::Amx,
    ];

    /// The name used by `Q8_ISA`, the CLI and reports (`"avx512-vnni"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Tier::Scalar => "scalar",
            Tier::Avx2 => "avx2",
            Tier::AvxVnni => "avx-vnni",
            Tier::Avx512Vnni => "avx512-vnni",
            Tier::Amx => "amx",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Tier {
    type Err = Error;

    /// Parses a tier name; accepts `_` for `-` and any case (`AVX512_VNNI`).
    fn from_str(s: &str) -> Result<Tier> {
        let norm = s.trim().to_ascii_lowercase().replace('_', "-");
        Tier::ALL
            .into_iter()
            .find(|t| t.name() == norm || t.name().replace('-', "") == norm)
            .ok_or_else(|| Error::UnknownTier(s.to_string()))
    }
}

/// What this process detected: features, OS support, AMX permission. Computed once.
pub fn info() -> &'static CpuInfo {
    static INFO: OnceLock<CpuInfo> = OnceLock::new();
    INFO.get_or_init(detect::detect)
}

/// Whether `tier` can run in this process (CPU, OS and, for AMX, the kernel's permission).
pub fn is_available(tier: Tier) -> bool {
    info().supports(tier)
}

/// The tiers that can run here, slowest first (always starts with `Scalar`).
pub fn available_tiers() -> Vec<Tier> {
    Tier::ALL.into_iter().filter(|&t| is_available(t)).collect()
}

/// The fastest available tier.
pub fn best_tier() -> Tier {
    available_tiers()
        .pop()
        .expect("the scalar tier is always available")
}

/// The tier kernels use when the caller does not pick one: the best available tier,
/// capped by `Q8_ISA` when it is set.
///
/// # Errors
/// `Q8_ISA` names no tier, or names one this CPU (or OS) cannot run.
pub fn default_tier() -> Result<Tier> {
    static CHOSEN: OnceLock<Result<Tier>> = OnceLock::new();
    CHOSEN
        .get_or_init(|| match std::env::var("Q8_ISA") {
            Ok(cap) if !cap.trim().is_empty() => {
                let tier: Tier = cap.parse()?;
                require(tier)?;
                Ok(tier)
            }
            _ => Ok(best_tier()),
        })
        .clone()
}

/// Whether Linux lets this process use AMX tile data right now (asked afresh, not the
/// cached detection). False on other systems and in processes that never requested it,
/// e.g. those capped by `Q8_ISA` below `amx`: there, any tile instruction would fault, so
/// a process that finishes its work has run none.
pub fn os_grants_amx_tile_data() -> bool {
    detect::os_grants_tile_data()
}

/// Succeeds when `tier` can run here; otherwise an error saying what is missing.
///
/// # Errors
/// [`Error::TierUnavailable`] naming the tier and the missing CPU or OS support.
pub fn require(tier: Tier) -> Result<()> {
    if is_available(tier) {
        Ok(())
    } else {
        Err(Error::TierUnavailable {
            tier,
            reason: info().missing_reason(tier),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tier_names_round_trip() {
        for t in Tier::ALL {
            assert_eq!(t.name().parse::<Tier>().unwrap(), t);
        }
        assert_eq!("AVX512_VNNI".parse::<Tier>().unwrap(), Tier::Avx512Vnni);
        assert_eq!("avxvnni".parse::<Tier>().unwrap(), Tier::AvxVnni);
        assert!("sse9".parse::<Tier>().is_err());
    }

    #[test]
    fn tiers_are_ordered_and_scalar_always_runs() {
        assert!(Tier::Scalar < Tier::Avx2 && Tier::Avx512Vnni < Tier::Amx);
        assert_eq!(available_tiers()[0], Tier::Scalar);
        assert!(require(Tier::Scalar).is_ok());
    }

    #[test]
    fn unavailable_tier_reports_reason() {
        for t in Tier::ALL {
            if !is_available(t) {
                let msg = require(t).unwrap_err().to_string();
                assert!(msg.contains(t.name()), "{msg}");
            }
        }
    }
}
