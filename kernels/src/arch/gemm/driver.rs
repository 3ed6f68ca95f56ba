//! The GEMM driver: cache blocking, job partitioning over the kernels' thread pool, and per-tier dispatch.
//!
//! Work is cut into jobs of `mc` rows x `nc` panels. A job fetches its rows once from the
//! [`ASource`] and runs the tier's block loop on them (row groups of MR in L1, the job's panel
//! chunk in L2: `nc` is sized so the chunk takes about a quarter of a 1 MB L2). Jobs are ordered
//! panel-chunk-major, so a thread working through consecutive jobs keeps its B chunk in L2.
//! Every output element is computed by one micro-kernel over the whole K, so results do not
//! depend on the blocking or the thread count.

use std::cell::RefCell;
use std::sync::Mutex;

use super::epilogue::{Epilogue, store_block};
use super::kernel::{ARows, Panels};
use super::{avx2, avx512, avxvnni, scalar};
use crate::arch::{amx, spin_pool};
use crate::conv::direct::TapGrid;
use crate::cpu::Tier;
use crate::error::{Error, Result};
use crate::gemm::pack::{Body, GROUP, GROUP_BYTES, PANEL, PackedWeights, k_groups};
use crate::gemm::source::ASource;

/// Bytes of packed B one job should keep resident in L2.
const L2_CHUNK_BYTES: usize = 256 * 1024;
/// Below this many multiply-accumulates a call stays on the calling thread (a few
/// microseconds of work; publishing a call to the spinning pool costs about one).
const PARALLEL_MIN_MACS: usize = 1 << 20;
/// Rows per job when M is large.
const MC_ROWS: usize = 48;

/// The kernel family a call runs (a tier may use more than one, by shape).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Engine {
    Scalar,
    Avx2,
    AvxVnni,
    Avx512,
    Amx,
}

/// Smallest M, N and K for which the AMX tiles are used; below, the AMX tier runs the
/// AVX-512 VNNI kernel on the same packed bytes (one 32 x 32 tile block would be mostly
/// padding and the tile configuration and C round trip would dominate). Not yet tuned on
/// AMX hardware.
const AMX_MIN: (usize, usize, usize) = (32, 32, 64);

fn engine(w: &PackedWeights, m: usize) -> Engine {
    match &w.body {
        Body::RowMajor(_) => Engine::Scalar,
        Body::Avx2(..) => Engine::Avx2,
        Body::Panels(_) if w.tier() == Tier::Avx512Vnni => Engine::Avx512,
        Body::Panels(_) => Engine::AvxVnni,
        Body::Amx(_) => {
            let (mm, mn, mk) = AMX_MIN;
            if m >= mm && w.n() >= mn && w.k() >= mk {
                Engine::Amx
            } else {
                Engine::Avx512
            }
        }
    }
}

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

/// Row and panel granularity of an engine's jobs: (rows, panels, most panels per job).
fn granularity(engine: Engine) -> (usize, usize, usize) {
    match engine {
        Engine::Avx512 => (avx512::MR, avx512::NB, usize::MAX),
        Engine::AvxVnni => (avxvnni::MR, avxvnni::NB, usize::MAX),
        Engine::Avx2 => (avx2::MR, avx2::NB, usize::MAX),
        Engine::Scalar => (1, 1, usize::MAX),
        // Planned by `plan_amx`.
        Engine::Amx => (AMX_ROWS, 2, usize::MAX),
    }
}

fn plan(engine: Engine, m: usize, n: usize, k: usize, threads: usize) -> Plan {
    if engine == Engine::Amx {
        return plan_amx(m, n, k, threads);
    }
    let (mr, nb, max_nc) = granularity(engine);
    let panels = n.div_ceil(PANEL);
    let panel_bytes = k_groups(k) * GROUP_BYTES;
    let most = (L2_CHUNK_BYTES / panel_bytes).min(max_nc);
    let mut nc = (most / nb * nb).clamp(nb, panels.next_multiple_of(nb));
    // Equal chunks: 16 panels at 12 per chunk become 8 + 8, not 12 + 4.
    nc = panels.div_ceil(panels.div_ceil(nc)).next_multiple_of(nb);
    let mut mc = MC_ROWS.next_multiple_of(mr).min(m.next_multiple_of(mr));
    // Equal row blocks too: 100 rows at 48 become 36 + 36 + 28, not 48 + 48 + 4.
    mc = m.div_ceil(m.div_ceil(mc)).next_multiple_of(mr);
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

/// Rows of A one AMX tile group holds (two 16-row tiles).
const AMX_ROWS: usize = 32;
/// Bytes of packed rows an AMX job holds: they stay in L2 while every column block of B
/// streams past them once (so B is read from memory once per this many bytes of A).
const AMX_A_BYTES: usize = 512 * 1024;
/// Most rows of an AMX job.
const AMX_MC_ROWS: usize = 512;

/// AMX jobs own whole row blocks: a job packs its rows into tiles (where they are not read
/// in place) once and runs them against every column, so no row is packed twice. With
/// several threads, row blocks shrink (down to one 32-row group) until each thread has
/// two; only when even that leaves a thread idle are the columns split as well (each part
/// prepares its rows again).
fn plan_amx(m: usize, n: usize, k: usize, threads: usize) -> Plan {
    let panels = n.div_ceil(PANEL);
    let fit = (AMX_A_BYTES / k.next_multiple_of(64).max(64)) / AMX_ROWS * AMX_ROWS;
    let mut mc = fit
        .clamp(AMX_ROWS, AMX_MC_ROWS)
        .min(m.next_multiple_of(AMX_ROWS));
    if threads > 1 {
        let groups = m.div_ceil(AMX_ROWS);
        mc = mc.min(groups.div_ceil(2 * threads).max(1) * AMX_ROWS);
    }
    mc = m.div_ceil(m.div_ceil(mc)).next_multiple_of(AMX_ROWS);
    let m_jobs = m.div_ceil(mc);
    let splits = if m_jobs < threads {
        threads.div_ceil(m_jobs)
    } else {
        1
    };
    let nc = panels.div_ceil(splits).next_multiple_of(2).max(2);
    Plan {
        mc,
        nc,
        m_jobs,
        n_jobs: panels.div_ceil(nc),
    }
}

/// Per-thread buffers of a job.
struct Scratch {
    /// Row offsets from the A source.
    offsets: Vec<usize>,
    /// The A source's own scratch (rows it fills on the fly).
    rows: Vec<u8>,
    /// AMX: the job's rows packed into tiles.
    a_tiles: amx::ATiles,
}

impl Default for Scratch {
    fn default() -> Scratch {
        Scratch {
            offsets: Vec::new(),
            rows: Vec::new(),
            a_tiles: amx::a_tiles(),
        }
    }
}

/// Computes the M x N result of `w` on the rows of `a` into `ep`'s output, on `threads`
/// threads (1 = this thread only; more run on the kernels' spinning pool).
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
    let parallel = threads > 1 && m.saturating_mul(n * k) >= PARALLEL_MIN_MACS;
    let engine = engine(w, m);
    let plan = plan(engine, m, n, k, if parallel { threads } else { 1 });
    let panels = n.div_ceil(PANEL);
    let job = |s: &mut Scratch, idx: usize| -> Result<()> {
        let (pj, mj) = (idx / plan.m_jobs, idx % plan.m_jobs);
        let m0 = mj * plan.mc;
        let rows = plan.mc.min(m - m0);
        let (p_begin, p_end) = (pj * plan.nc, ((pj + 1) * plan.nc).min(panels));
        s.offsets.resize(rows, 0);
        let data = a.rows(m0, &mut s.offsets, &mut s.rows);
        let rows = ARows::new(data, &s.offsets, k)?;
        match (&w.body, engine) {
            (Body::Amx(b), Engine::Amx) => {
                let uniform = rows.uniform();
                let (j0, j1) = (p_begin * PANEL, (p_end * PANEL).min(n));
                let a_op = amx::AOperand::new(
                    b,
                    rows.len(),
                    j1 - j0,
                    |r| rows.row(r),
                    uniform,
                    &mut s.a_tiles,
                );
                amx::gemm_tiles(b, &a_op, j0, j1 - j0, |blk| amx_epilogue(ep, m0, blk))
            }
            _ => {
                block(w, engine, &rows, m0, p_begin, p_end, ep);
                Ok(())
            }
        }
    };
    let jobs = plan.m_jobs * plan.n_jobs;
    run_jobs(if parallel { threads } else { 1 }, jobs, &|idx| {
        SCRATCH.with(|s| job(&mut s.borrow_mut(), idx))
    })
}

/// Runs `job(0) .. job(jobs - 1)` on `threads` threads; the first error wins.
fn run_jobs(threads: usize, jobs: usize, job: &(dyn Fn(usize) -> Result<()> + Sync)) -> Result<()> {
    if threads <= 1 {
        return (0..jobs).try_for_each(job);
    }
    let first_error = Mutex::new(None);
    spin_pool::run(threads, jobs, &|idx| {
        if let Err(e) = job(idx) {
            first_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert(e);
        }
    });
    first_error
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .map_or(Ok(()), Err)
}

/// Bytes of grid rows (`C_in` each) one direct-convolution job covers.
const TAP_JOB_BYTES: usize = 128 * 1024;

/// The direct convolution of `grid` with `w` (packed for AMX) into `ep`'s output, on
/// `threads` threads. Jobs are (image, run of grid rows, column part): rows in multiples of
/// 32 up to [`TAP_JOB_BYTES`] of them, columns split only when rows leave a thread idle.
///
/// The caller has checked that the AMX tier is available and that `ep` is an
/// `grid.out_rows() x w.n()` epilogue.
pub(crate) fn run_taps(
    w: &PackedWeights,
    grid: &TapGrid<'_>,
    ep: &Epilogue<'_>,
    threads: usize,
) -> Result<()> {
    let Body::Amx(b) = &w.body else {
        return Err(Error::Shape(format!(
            "direct conv: weights packed for {:?}, not AMX",
            w.tier()
        )));
    };
    let rows = grid.rows_per_image();
    let macs = (grid.images * rows).saturating_mul(w.n() * w.k());
    let threads = if macs < PARALLEL_MIN_MACS { 1 } else { threads };
    let mut chunk =
        (TAP_JOB_BYTES / grid.lda.max(1) / AMX_ROWS * AMX_ROWS).clamp(AMX_ROWS, AMX_MC_ROWS);
    while threads > 1 && chunk > AMX_ROWS && grid.images * rows.div_ceil(chunk) < 2 * threads {
        chunk = (chunk / 2).next_multiple_of(AMX_ROWS);
    }
    let per_image = rows.div_ceil(chunk);
    let row_jobs = grid.images * per_image;
    let parts = if row_jobs < threads {
        threads.div_ceil(row_jobs)
    } else {
        1
    };
    let part_cols = w.n().div_ceil(parts).next_multiple_of(amx::BLOCK_DIM);
    let parts = w.n().div_ceil(part_cols);
    run_jobs(threads, row_jobs * parts, &|idx| {
        let (row_job, part) = (idx / parts, idx % parts);
        let (n, r0) = (row_job / per_image, row_job % per_image * chunk);
        let data = &grid.data[n * grid.image_bytes + r0 * grid.lda..];
        let a = amx::AOperand::taps(b, chunk.min(rows - r0), data, grid.lda, &grid.steps)?;
        let j0 = part * part_cols;
        amx::gemm_tiles(b, &a, j0, part_cols.min(w.n() - j0), |blk| {
            tap_epilogue(ep, grid, n, r0, blk)
        })
    })
}

/// The epilogue of one finished block of grid rows `r0 + blk.i0 ..` of image `n`: each run
/// of rows inside the output's width goes to its output rows.
fn tap_epilogue(
    ep: &Epilogue<'_>,
    grid: &TapGrid<'_>,
    n: usize,
    r0: usize,
    blk: &amx::CBlock<'_>,
) -> Result<()> {
    let mut r = 0;
    while r < blk.rows {
        let (out_row, valid) = grid.out_run(n, r0 + blk.i0 + r);
        let len = valid.min(blk.rows - r);
        if len > 0 {
            // SAFETY: the AMX tier implies AVX-512 F/BW/VL (checked by the caller); grid
            // rows of disjoint jobs map to disjoint output rows, and columns split into
            // disjoint parts.
            unsafe {
                store_block(
                    ep,
                    &blk.data[r * amx::BLOCK_DIM..],
                    amx::BLOCK_DIM,
                    out_row,
                    len,
                    blk.j0,
                    blk.cols,
                )?;
            }
        }
        // Skip to the next grid row's start when past the output's width.
        let to_row_end = grid.grid_w - (r0 + blk.i0 + r) % grid.grid_w;
        r += if len > 0 { len } else { to_row_end };
    }
    Ok(())
}

thread_local! {
    /// Each thread's job buffers, kept from call to call: a packed AMX row block or an i32
    /// block is a few hundred KB, which the allocator would otherwise map and fault in
    /// afresh on every call. A job never calls back into the GEMM, so the cell is never
    /// borrowed twice.
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// One job of a register-blocked engine: rows `a` (output rows `i0..`) x panels
/// `p_begin..p_end`.
fn block(
    w: &PackedWeights,
    engine: Engine,
    a: &ARows<'_>,
    i0: usize,
    p_begin: usize,
    p_end: usize,
    ep: &Epilogue<'_>,
) {
    let kg = k_groups(w.k());
    let (j_begin, j_end) = (p_begin * PANEL, (p_end * PANEL).min(w.n()));
    // SAFETY: `run`'s caller checked that the tier is available, and each engine needs at
    // most the tier's features (the AMX tier implies AVX-512 VNNI; the AMX layout is the
    // panel layout with K padded to 64); `plan` keeps p_end <= the panel count and rows
    // inside M; `ARows` checked every row's K bytes; jobs cover disjoint (rows, panels)
    // rectangles, so no two threads write one output element.
    unsafe {
        match (&w.body, engine) {
            (Body::RowMajor(weights), _) => scalar::gemm_block(a, i0, weights, j_begin, j_end, ep),
            (Body::Panels(data), Engine::Avx512) => {
                avx512::gemm_block(a, i0, Panels { data, kg }, p_begin, p_end, ep)
            }
            (Body::Panels(data), _) => {
                avxvnni::gemm_block(a, i0, Panels { data, kg }, p_begin, p_end, ep)
            }
            (Body::Avx2(data, residual), _) => {
                avx2::gemm_block(a, i0, Panels { data, kg }, residual, p_begin, p_end, ep)
            }
            (Body::Amx(b), _) => {
                let kg = b.k_padded() / GROUP;
                avx512::gemm_block(
                    a,
                    i0,
                    Panels {
                        data: b.bytes(),
                        kg,
                    },
                    p_begin,
                    p_end,
                    ep,
                )
            }
        }
    }
}

/// The epilogue of one finished AMX block of the job whose rows start at output row `m0`.
fn amx_epilogue(ep: &Epilogue<'_>, m0: usize, blk: &amx::CBlock<'_>) -> Result<()> {
    // SAFETY: the AMX tier implies AVX-512 F/BW/VL (checked by `run`'s caller); the block
    // lies in this job's rows and columns (disjoint jobs).
    unsafe {
        store_block(
            ep,
            blk.data,
            amx::BLOCK_DIM,
            m0 + blk.i0,
            blk.rows,
            blk.j0,
            blk.cols,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::epilogue::OutputView;
    use super::*;

    /// Dense M x N output with per-column zero-point corrections and scales, no bias,
    /// residual or activation.
    fn plain_epilogue<'a>(
        m: usize,
        n: usize,
        out: OutputView<'a>,
        zp: &'a [i32],
        scale: &'a [f32],
    ) -> Epilogue<'a> {
        Epilogue::new(m, n, out, n, zp, scale, None, None, Default::default()).unwrap()
    }

    #[test]
    fn plans_cover_the_problem_and_split_for_threads() {
        for &(m, n, k) in &[
            (1, 512, 4608),
            (49, 512, 4608),
            (2048, 2048, 2048),
            (12544, 64, 147),
        ] {
            for threads in [1, 2, 8] {
                let p = plan(Engine::Avx512, m, n, k, threads);
                assert!(p.m_jobs * p.mc >= m && p.n_jobs * p.nc >= n.div_ceil(PANEL));
                assert!(p.mc.is_multiple_of(avx512::MR) && p.nc.is_multiple_of(avx512::NB));
            }
        }
        let p = plan(Engine::Avx512, 1, 512, 4608, 2);
        assert!(p.n_jobs >= 4, "{p:?}");
        let p = plan(Engine::Avx512, 196, 256, 2304, 1);
        assert!(
            16usize.is_multiple_of(p.nc),
            "16 panels in equal chunks: {p:?}"
        );
    }

    /// Small shapes on the AMX tier run the AVX-512 kernel on the AMX layout (K padded to 64).
    #[test]
    fn amx_layout_runs_on_the_avx512_kernel() {
        use crate::gemm::source::StridedA;
        if !crate::cpu::is_available(Tier::Avx512Vnni) {
            eprintln!("amx layout test: skipping: AVX-512 VNNI is not available");
            return;
        }
        for (m, n, k) in [(3, 20, 70), (31, 33, 5), (1, 16, 64)] {
            let w: Vec<i8> = (0..n * k).map(|i| (i * 53 % 256) as u8 as i8).collect();
            let a: Vec<u8> = (0..m * k).map(|i| (i * 29 % 256) as u8).collect();
            let packed = PackedWeights::new(Tier::Amx, n, k, &w, &[1.0], None).unwrap();
            assert_eq!(engine(&packed, m), Engine::Avx512);
            let zp: Vec<i32> = packed.colsum.iter().map(|c| -3 * c).collect();
            let scale = vec![1.0f32; packed.colsum.len()];
            let mut got = vec![0i32; m * n];
            let ep = plain_epilogue(m, n, OutputView::I32(&mut got), &zp, &scale);
            run(&packed, m, &StridedA { data: &a, lda: k }, &ep, 1).unwrap();
            let want: Vec<i32> = (0..m * n)
                .map(|x| {
                    let (i, j) = (x / n, x % n);
                    (0..k)
                        .map(|kk| (a[i * k + kk] as i32 - 3) * w[j * k + kk] as i32)
                        .sum()
                })
                .collect();
            assert_eq!(got, want, "{m}x{n}x{k}");
        }
    }

    /// The AMX block epilogue against the element-by-element one, for blocks at an offset
    /// job row, with partial rows and columns (the tile kernel itself is tested in
    /// `arch::amx`, on the hardware when present).
    #[test]
    fn amx_epilogue_matches_the_scalar_epilogue() {
        if !crate::cpu::is_available(Tier::Avx512Vnni) {
            eprintln!("amx_epilogue test: skipping: the AVX-512 epilogue is not available");
            return;
        }
        let (m, n): (usize, usize) = (45, 70);
        let zp = vec![-5i32; n.next_multiple_of(16)];
        let scale: Vec<f32> = (0..zp.len()).map(|j| 0.001 * (j + 1) as f32).collect();
        let data: Vec<i32> = (0..32 * 32).map(|x| (x * 7919 % 20011) - 10000).collect();
        let (mut got, mut want) = (vec![0f32; m * n], vec![0f32; m * n]);
        let ep = plain_epilogue(m, n, OutputView::F32(&mut got), &zp, &scale);
        let ep2 = plain_epilogue(m, n, OutputView::F32(&mut want), &zp, &scale);
        for (m0, i0, rows, j0, cols) in [
            (0, 0, 32, 0, 32),
            (13, 0, 32, 32, 32),
            (13, 0, 32, 64, 6),
            (40, 0, 5, 48, 17),
        ] {
            let blk = amx::CBlock {
                data: &data,
                i0,
                rows,
                j0,
                cols,
            };
            amx_epilogue(&ep, m0, &blk).unwrap();
            for r in 0..rows {
                for c in 0..cols {
                    // SAFETY: inside the output, one thread.
                    unsafe { ep2.store_one(data[r * 32 + c], m0 + i0 + r, j0 + c) };
                }
            }
        }
        let outside = amx::CBlock {
            data: &data,
            i0: 0,
            rows: 32,
            j0: 64,
            cols: 32,
        };
        assert!(
            amx_epilogue(&ep, 0, &outside).is_err(),
            "columns past N are rejected"
        );
        assert_eq!(got, want);
    }
}
