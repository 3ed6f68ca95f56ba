//! One-time probe: CPUID feature bits, XCR0 state, and the Linux AMX permission request.

use super::Tier;

/// Feature bits CPUID reports (what the silicon has, not yet what the OS allows).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Features {
    /// CPUID.1:ECX.OSXSAVE: `xgetbv` may be executed.
    pub osxsave: bool,
    /// AVX2.
    pub avx2: bool,
    /// FMA3.
    pub fma: bool,
    /// AVX-512 Foundation.
    pub avx512f: bool,
    /// AVX-512 byte/word instructions.
    pub avx512bw: bool,
    /// AVX-512 vector-length extensions.
    pub avx512vl: bool,
    /// AVX-512 VNNI (`vpdpbusd` on zmm).
    pub avx512vnni: bool,
    /// AVX-VNNI (VEX `vpdpbusd` on ymm).
    pub avxvnni: bool,
    /// AMX tile architecture.
    pub amx_tile: bool,
    /// AMX int8 (`tdpbusd`).
    pub amx_int8: bool,
}

/// Register states the OS saves on context switch (XCR0), i.e. what it lets us use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OsSupport {
    /// Raw XCR0 value (0 when `xgetbv` is unavailable).
    pub xcr0: u64,
    /// SSE + AVX (ymm) state enabled (XCR0 bits 1, 2).
    pub avx: bool,
    /// Opmask + zmm state enabled (XCR0 bits 5, 6, 7).
    pub avx512: bool,
    /// AMX TILECFG + TILEDATA state enabled (XCR0 bits 17, 18).
    pub amx: bool,
}

/// Outcome of asking Linux for permission to use AMX tile data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AmxPermission {
    /// Not asked: the CPU or the OS state lacks AMX.
    NotApplicable,
    /// Not asked: `Q8_ISA` caps this process below the AMX tier, so it never holds the
    /// tile-data permission and no tile instruction can run in it.
    CappedByEnv,
    /// `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)` succeeded.
    Granted,
    /// The request failed; AMX stays disabled for this process.
    Denied(String),
}

/// Everything detection found, computed once per process by [`super::info`].
#[derive(Clone, Debug)]
pub struct CpuInfo {
    /// CPU brand string, for reports.
    pub brand: String,
    /// CPUID feature bits.
    pub features: Features,
    /// OS-enabled register state.
    pub os: OsSupport,
    /// The AMX permission result.
    pub amx_permission: AmxPermission,
}

impl CpuInfo {
    /// Whether `tier` can run: CPU features, OS state and permission all present.
    pub fn supports(&self, tier: Tier) -> bool {
        self.missing_reason(tier).is_empty()
    }

    /// What is missing for `tier` (empty when it is supported).
    pub fn missing_reason(&self, tier: Tier) -> String {
        let f = &self.features;
        let os = &self.os;
        let mut missing: Vec<&str> = Vec::new();
        let need_avx2 = tier >= Tier::Avx2;
        if need_avx2 && !(f.avx2 && f.fma) {
            missing.push("CPU lacks AVX2/FMA");
        }
        if need_avx2 && !os.avx {
            missing.push("OS has not enabled AVX state in XCR0");
        }
        match tier {
            Tier::AvxVnni if !f.avxvnni => missing.push("CPU lacks AVX-VNNI"),
            Tier::Avx512Vnni | Tier::Amx => {
                if !(f.avx512f && f.avx512bw && f.avx512vl && f.avx512vnni) {
                    missing.push("CPU lacks AVX-512 F/BW/VL/VNNI");
                }
                if !os.avx512 {
                    missing.push("OS has not enabled AVX-512 state in XCR0");
                }
            }
            _ => {}
        }
        if tier == Tier::Amx {
            if !(f.amx_tile && f.amx_int8) {
                missing.push("CPU lacks AMX-TILE/AMX-INT8");
            } else if !os.amx {
                missing.push("OS has not enabled AMX tile state in XCR0");
            } else if let AmxPermission::Denied(why) = &self.amx_permission {
                return format!("Linux denied AMX tile data permission: {why}");
            } else if self.amx_permission == AmxPermission::CappedByEnv {
                return "Q8_ISA caps this process below amx (AMX permission not requested)".into();
            }
        }
        missing.join("; ")
    }
}

pub(super) fn detect() -> CpuInfo {
    let features = cpuid_features();
    let os = os_support(features.osxsave);
    let amx_permission = if !(features.amx_tile && features.amx_int8 && os.amx) {
        AmxPermission::NotApplicable
    } else if capped_below_amx() {
        AmxPermission::CappedByEnv
    } else {
        request_amx_permission()
    };
    CpuInfo {
        brand: brand(),
        features,
        os,
        amx_permission,
    }
}

/// Whether `Q8_ISA` names a tier below AMX (an unparsable value is reported later by
/// `default_tier`; here it caps nothing).
fn capped_below_amx() -> bool {
    std::env::var("Q8_ISA")
        .ok()
        .and_then(|v| v.trim().parse::<Tier>().ok())
        .is_some_and(|t| t < Tier::Amx)
}

fn brand() -> String {
    raw_cpuid::CpuId::new()
        .get_processor_brand_string()
        .map(|b| b.as_str().trim().to_string())
        .unwrap_or_else(|| "unknown x86-64 CPU".to_string())
}

fn cpuid_features() -> Features {
    let cpuid = raw_cpuid::CpuId::new();
    let mut f = Features::default();
    if let Some(fi) = cpuid.get_feature_info() {
        f.osxsave = fi.has_oxsave();
        f.fma = fi.has_fma();
    }
    if let Some(ext) = cpuid.get_extended_feature_info() {
        f.avx2 = ext.has_avx2();
        f.avx512f = ext.has_avx512f();
        f.avx512bw = ext.has_avx512bw();
        f.avx512vl = ext.has_avx512vl();
        f.avx512vnni = ext.has_avx512vnni();
        f.avxvnni = ext.has_avx_vnni();
        f.amx_tile = ext.has_amx_tile();
        f.amx_int8 = ext.has_amx_int8();
    }
    f
}

fn os_support(osxsave: bool) -> OsSupport {
    if !osxsave {
        return OsSupport::default();
    }
    let xcr0 = read_xcr0();
    let all = |mask: u64| xcr0 & mask == mask;
    OsSupport {
        xcr0,
        avx: all(0b110),
        avx512: all(0b1110_0110),
        amx: all(0b11 << 17),
    }
}

#[cfg(target_arch = "x86_64")]
fn read_xcr0() -> u64 {
    #[target_feature(enable = "xsave")]
    fn xgetbv0() -> u64 {
        // SAFETY: `xsave` is enabled for this function, and its caller only runs it after
        // CPUID reported OSXSAVE, which is exactly when XGETBV with ECX = 0 is defined.
        unsafe { std::arch::x86_64::_xgetbv(0) }
    }
    // SAFETY: only reached when CPUID.1:ECX.OSXSAVE is set (checked by `os_support`), which
    // implies XSAVE support, the target feature `xgetbv0` was compiled for.
    unsafe { xgetbv0() }
}

#[cfg(target_os = "linux")]
const ARCH_GET_XCOMP_PERM: libc::c_long = 0x1022;
#[cfg(target_os = "linux")]
const XFEATURE_XTILEDATA: libc::c_long = 18;

/// Whether Linux currently lets this process use AMX tile data (`ARCH_GET_XCOMP_PERM`),
/// asked afresh: without it any tile instruction faults (SIGILL).
#[cfg(target_os = "linux")]
pub(super) fn os_grants_tile_data() -> bool {
    xcomp_permissions().is_ok_and(|granted| granted & (1 << XFEATURE_XTILEDATA) != 0)
}

/// The extended-state components this process may use (`ARCH_GET_XCOMP_PERM` bit mask).
#[cfg(target_os = "linux")]
fn xcomp_permissions() -> std::io::Result<u64> {
    let mut granted: u64 = 0;
    // SAFETY: ARCH_GET_XCOMP_PERM writes one u64 through the pointer, which points at a
    // live, aligned local.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_GET_XCOMP_PERM,
            &mut granted as *mut u64,
        )
    };
    if rc == 0 {
        Ok(granted)
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
pub(super) fn os_grants_tile_data() -> bool {
    false
}

#[cfg(target_os = "linux")]
fn request_amx_permission() -> AmxPermission {
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    // SAFETY: arch_prctl with ARCH_REQ_XCOMP_PERM takes an integer feature number and no
    // pointers; the kernel validates it and answers with 0 or -1/errno.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        )
    };
    if rc != 0 {
        return AmxPermission::Denied(std::io::Error::last_os_error().to_string());
    }
    let granted = match xcomp_permissions() {
        Ok(mask) => mask,
        Err(e) => return AmxPermission::Denied(e.to_string()),
    };
    if granted & (1 << XFEATURE_XTILEDATA) == 0 {
        return AmxPermission::Denied(format!("permission mask {granted:#x} lacks XTILEDATA"));
    }
    AmxPermission::Granted
}

#[cfg(not(target_os = "linux"))]
fn request_amx_permission() -> AmxPermission {
    AmxPermission::Denied("AMX permission is only requested on Linux".to_string())
}
