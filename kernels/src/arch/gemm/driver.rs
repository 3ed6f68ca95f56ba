//! The GEMM driver: cache blocking, job partitioning over rayon, and per-tier dispatch.
//!
//! Work is cut into jobs of `mc` rows x `nc` panels. A job fetches its rows once from the
//! [`ASource`] and runs the tier's block loop on them (row groups of MR in L1, the job's panel
//! chunk in L2: `nc` is sized so the chunk fits in about half of a 1 MB L2). Jobs are ordered
//! panel-chunk-major, so a thread working through consecutive jobs keeps its B chunk in L2.
//! Every output element is computed by one micro-kernel over the whole K, so results do not
//! depend on the blocking or the thread count.

use rayon::prelude::*;

use super::epilogue::Epilogue;
use super::kernel::{ARows, Panels};
use super::{avx2, avx512, avxvnni, scalar};
use crate::cpu::Tier;
use crate::error::Result;
use crate::gemm::pack::{Body, GROUP_BYTES, PANEL, PackedWeights, k_groups};
use crate::gemm::source::ASource;

/// Bytes of packed B one job should keep resident in L2.
const L2_CHUNK_BYTES: usize = 512 * 1024;
/// Below this many multiply-accumulates a call stays on the calling thread.
pub(crate) const PARALLEL_MIN_MACS: usize = 1 << 21;
/// Rows per job when M is large.
const MC_ROWS: usize = 48;

/// How the M x N work is cut into jobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Plan {
    /// Rows per job.
    mc: usize,
    /// Panels per job.
    nc: usize,
    m_jobs: usize,
    n_jobs: usize,
}

/// The micro-tile rows and panels of the tier (`(1, 1)` for scalar).
fn micro_tile(tier: Tier) -> (usize, usize) {
    match tier {
        Tier::Avx512Vnni | Tier::Amx => (avx512::MR, avx512::NB),
        Tier::AvxVnni => (avxvnni::MR, avxvnni::NB),
        Tier::Avx2 => (avx2::MR, avx2::NB),
        Tier::Scalar => (1, 1),
    }
}

fn plan(tier: Tier, m: usize, n: usize, k: usize, threads: usize) -> Plan {
    let (mr, nb) = micro_tile(tier);
    let panels = n.div_ceil(PANEL);
    let panel_bytes = k_groups(k) * GROUP_BYTES;
    let mut nc = (L2_CHUNK_BYTES / panel_bytes / nb * nb).clamp(nb, panels.next_multiple_of(nb));
    let mut mc = MC_ROWS.next_multiple_of(mr).min(m.next_multiple_of(mr));
    // Enough jobs for every thread to get several (load balance), shrinking N chunks first
    // (small M) and then row blocks, never below one micro-tile.
    if threads > 1 {
        let want = 4 * threads;
        while m.div_ceil(mc) * panels.div_ceil(nc) < want {
            if nc > nb && (nc > 4 * nb || mc <= mr) {
                nc = (nc / 2).next_multiple_of(nb);
            } else if mc > mr {
                mc = (mc / 2).next_multiple_of(mr);
            } else {
                break;
            }
        }
    }
    Plan {
        mc,
        nc,
        m_jobs: m.div_ceil(mc),
        n_jobs: panels.div_ceil(nc),
    }
}

/// Per-thread buffers of a job: row offsets and the A source's scratch.
#[derive(Default)]
struct Scratch {
    offsets: Vec<usize>,
    rows: Vec<u8>,
}

/// Computes the M x N result of `w` on the rows of `a` into `ep`'s output, on `threads`
/// threads of the current rayon pool (1 = this thread only).
///
/// The caller has checked that `w.tier()` is available and that `ep` is an `m x w.n()`
/// epilogue.
pub(crate) fn run(
    w: &PackedWeights,
    m: usize,
    a: &dyn ASource,
    ep: &Epilogue<'_>,
    threads: usize,
) -> Result<()> {
    debug_assert!(ep.m() == m && ep.n() == w.n());
    let (n, k) = (w.n(), w.k());
    let parallel = threads > 1 && m * n * k >= PARALLEL_MIN_MACS;
    let plan = plan(w.tier(), m, n, k, if parallel { threads } else { 1 });
    let panels = n.div_ceil(PANEL);
    let job = |s: &mut Scratch, idx: usize| -> Result<()> {
        let (pj, mj) = (idx / plan.m_jobs, idx % plan.m_jobs);
        let m0 = mj * plan.mc;
        let rows = plan.mc.min(m - m0);
        let (p_begin, p_end) = (pj * plan.nc, ((pj + 1) * plan.nc).min(panels));
        s.offsets.resize(rows, 0);
        let data = a.rows(m0, &mut s.offsets, &mut s.rows);
        let rows = ARows::new(data, &s.offsets, k)?;
        block(w, &rows, m0, p_begin, p_end, ep);
        Ok(())
    };
    let jobs = plan.m_jobs * plan.n_jobs;
    if parallel {
        (0..jobs)
            .into_par_iter()
            .try_for_each_init(Scratch::default, |s, idx| job(s, idx))
    } else {
        let mut s = Scratch::default();
        (0..jobs).try_for_each(|idx| job(&mut s, idx))
    }
}

/// One job: rows `a` (output rows `i0..`) x panels `p_begin..p_end`.
fn block(
    w: &PackedWeights,
    a: &ARows<'_>,
    i0: usize,
    p_begin: usize,
    p_end: usize,
    ep: &Epilogue<'_>,
) {
    let kg = k_groups(w.k());
    let tier = w.tier();
    // SAFETY (all arms): `run`'s caller checked that `tier` is available (so are its target
    // features); `plan` keeps p_end <= panel count and rows inside M; `ARows` checked every
    // row's K bytes; jobs cover disjoint (rows, panels) rectangles, so no two threads write
    // the same output element.
    match &w.body {
        Body::RowMajor(weights) => unsafe {
            scalar::gemm_block(
                a,
                i0,
                weights,
                p_begin * PANEL,
                (p_end * PANEL).min(w.n()),
                ep,
            )
        },
        Body::Panels(data) => {
            let panels = Panels { data, kg };
            match tier {
                Tier::Avx512Vnni => unsafe {
                    avx512::gemm_block(a, i0, panels, p_begin, p_end, ep)
                },
                _ => unsafe { avxvnni::gemm_block(a, i0, panels, p_begin, p_end, ep) },
            }
        }
        Body::Avx2(data, residual) => unsafe {
            avx2::gemm_block(a, i0, Panels { data, kg }, residual, p_begin, p_end, ep)
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_cover_the_problem_and_split_for_threads() {
        for &(m, n, k) in &[
            (1, 512, 4608),
            (49, 512, 4608),
            (2048, 2048, 2048),
            (12544, 64, 147),
        ] {
            for threads in [1, 2, 8] {
                let p = plan(Tier::Avx512Vnni, m, n, k, threads);
                assert!(p.m_jobs * p.mc >= m && p.n_jobs * p.nc >= n.div_ceil(PANEL));
                assert!(p.mc % avx512::MR == 0 && p.nc % avx512::NB == 0);
            }
        }
        let p = plan(Tier::Avx512Vnni, 1, 512, 4608, 2);
        assert!(p.n_jobs >= 4, "{p:?}");
    }
}
