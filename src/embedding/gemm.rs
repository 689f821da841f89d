//! f32 matrix multiplication with pre-packed right-hand sides, tuned for encoder inference on CPUs.
//!
//! An encoder multiplies small activation matrices (a 20-token query is 20 rows) by the same
//! weights millions of times. General GEMM libraries re-pack the weights on every call, which for a
//! query costs more than the arithmetic; here each weight matrix is packed once, at load time, into
//! column panels that the microkernel streams straight from memory. The epilogue fuses what follows
//! a linear layer in BERT (bias, residual, GELU) so the output is written once.
//!
//! The f32 microkernel computes a 6×16 tile with AVX2/FMA when the CPU has them (checked at run
//! time) and falls back to portable code the compiler vectorises otherwise. Weights held as 4-bit
//! blocks are multiplied in integers instead, by [`int8`](super::int8)'s kernels. Work is split
//! into tiles over rows and column panels, run in parallel with rayon.

use std::cell::Cell;

use rayon::prelude::*;

use super::int8::{self, BlockPanels, QuantizedRows, BLOCK};
use super::tile::{for_tile_height, NR};
use super::vector_math::gelu;
use crate::cpu::Level;

/// Rows of the output tile one microkernel call computes.
const MR: usize = 6;
/// Rows handed to one parallel task, so a task's slice of the left matrix stays in L2 (a multiple
/// of both kernels' tile heights).
const ROWS_PER_TASK: usize = 48;
// `for_tile_height!` dispatches tile heights 1 to 6.
const _: () = assert!(MR == 6 && int8::MR == 6);

/// A `k × n` right-hand matrix stored as `ceil(n / 16)` panels of `k × 16` values, zero-padded.
#[derive(Debug, Clone, Default)]
pub struct PackedMatrix {
    k: usize,
    n: usize,
    storage: Storage,
}

#[derive(Debug, Clone)]
enum Storage {
    /// Panels of f32 values.
    F32(Vec<f32>),
    /// Small integers (-8..=8) with one f32 scale per 32 values along `k` per column, used only
    /// when that representation is *exact*: weights dequantized from ggml Q4_0 blocks (the
    /// default model's) are such integers times a per-block scale. A quarter of the f32 bytes, so
    /// a query streams 22 MB of weights instead of 85 MB, and the products run in integers on
    /// activations quantized to 8 bits per 32-value block (see [`int8`]).
    Blocks(BlockPanels),
}

impl Default for Storage {
    fn default() -> Self {
        Self::F32(Vec::new())
    }
}

impl PackedMatrix {
    /// Packs the matrix whose element at (row `kk`, column `col`) is `at(kk, col)`.
    pub fn pack(k: usize, n: usize, at: impl Fn(usize, usize) -> f32) -> Self {
        let mut packed = Self::default();
        let mut panels = packed.take_panels(k, n);
        fill_panels(&mut panels, k, n, at);
        packed.store(k, n, panels);
        packed
    }

    /// Repacks this matrix as the `k × n` matrix whose row `kk` is `row(kk)` (`n` values):
    /// attention's values, each token's slice of a head. Whole rows are copied per panel,
    /// which packing them element by element was several times slower than.
    pub fn repack_rows<'a>(&mut self, k: usize, n: usize, row: impl Fn(usize) -> &'a [f32]) {
        let mut panels = self.take_panels(k, n);
        for kk in 0..k {
            let row = &row(kk)[..n];
            for (p, values) in row.chunks(NR).enumerate() {
                panels[p * k * NR + kk * NR..][..values.len()].copy_from_slice(values);
            }
        }
        self.store(k, n, panels);
    }

    /// Repacks this matrix as the `k × n` matrix whose column `col` is `column(col)` (`k`
    /// values): attention's keys, each token's slice of a head, read once each.
    pub fn repack_columns<'a>(&mut self, k: usize, n: usize, column: impl Fn(usize) -> &'a [f32]) {
        let mut panels = self.take_panels(k, n);
        for col in 0..n {
            let (panel, j) = (&mut panels[col / NR * k * NR..][..k * NR], col % NR);
            for (kk, &value) in column(col)[..k].iter().enumerate() {
                panel[kk * NR + j] = value;
            }
        }
        self.store(k, n, panels);
    }

    /// This matrix's f32 storage, sized for `k × n` and zeroed (a panel's padding columns must
    /// read as zeros).
    fn take_panels(&mut self, k: usize, n: usize) -> Vec<f32> {
        let mut panels = match std::mem::take(&mut self.storage) {
            Storage::F32(panels) => panels,
            Storage::Blocks(_) => Vec::new(),
        };
        panels.clear();
        panels.resize(n.div_ceil(NR) * k * NR, 0.0);
        panels
    }

    fn store(&mut self, k: usize, n: usize, panels: Vec<f32>) {
        *self = Self {
            k,
            n,
            storage: Storage::F32(panels),
        };
    }

    /// Packs the transpose of a row-major `[n, k]` weight (PyTorch's `[out, in]` layout), so that
    /// `x · Wᵀ` is a plain product with this matrix. Uses exact block storage when it can.
    pub fn from_weight(weight: &[f32], n: usize, k: usize) -> Self {
        assert_eq!(weight.len(), n * k, "weight is not {n}×{k}");
        let at = |kk: usize, col: usize| weight[col * k + kk];
        match exact_blocks(weight, n, k) {
            Some(block_scales) => {
                let scale = |block: usize, col: usize| block_scales[col * (k / BLOCK) + block];
                let int = |kk: usize, col: usize| match scale(kk / BLOCK, col) {
                    0.0 => 0,
                    s => (at(kk, col) / s).round() as i32,
                };
                Self {
                    k,
                    n,
                    storage: Storage::Blocks(BlockPanels::pack(k, n, int, scale)),
                }
            }
            None => Self::pack(k, n, at),
        }
    }

    pub fn cols(&self) -> usize {
        self.n
    }

    /// Whether the matrix is held in exact block storage.
    pub fn is_block_stored(&self) -> bool {
        matches!(self.storage, Storage::Blocks(_))
    }
}

fn fill_panels(panels: &mut [f32], k: usize, n: usize, at: impl Fn(usize, usize) -> f32) {
    for (p, panel) in panels.chunks_exact_mut(k.max(1) * NR).enumerate() {
        for (kk, row) in panel.chunks_exact_mut(NR).enumerate() {
            for (j, value) in row.iter_mut().enumerate() {
                let col = p * NR + j;
                *value = if col < n { at(kk, col) } else { 0.0 };
            }
        }
    }
}

/// Per (column, block) scales such that every weight is an integer in -8..=8 times its block's
/// scale *exactly*, or `None` if some block has no such scale. The candidates are the block's
/// largest magnitude divided by 1..=8 (ggml Q4_0, whose values are -8·d ... 7·d). Q8_0's wider
/// integers would overflow the integer kernel's 16-bit sums, so such weights stay f32.
fn exact_blocks(weight: &[f32], n: usize, k: usize) -> Option<Vec<f32>> {
    if !k.is_multiple_of(BLOCK) {
        return None;
    }
    let mut scales = Vec::with_capacity(n * k / BLOCK);
    for block in weight.chunks_exact(BLOCK) {
        let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
        if amax == 0.0 {
            scales.push(0.0);
            continue;
        }
        let scale = (1..=8).map(|m| amax / m as f32).find(|&scale| {
            block.iter().all(|&v| {
                let q = (v / scale).round();
                int8::WEIGHT_RANGE.contains(&(q as i32)) && q * scale == v
            })
        })?;
        scales.push(scale);
    }
    Some(scales)
}

/// What is added to and applied after the product, per output element.
#[derive(Clone, Copy, Default)]
pub struct Epilogue<'a> {
    /// Added to each row (length `n`).
    pub bias: Option<&'a [f32]>,
    /// Added element-wise: a row-major matrix with row stride `n` (the residual connection).
    pub residual: Option<&'a [f32]>,
    /// Apply erf GELU last.
    pub gelu: bool,
}

/// A row-major output matrix seen through a raw pointer, so parallel tasks can each write their own
/// disjoint block of it.
#[derive(Clone, Copy)]
pub struct OutMatrix {
    ptr: *mut f32,
    /// Distance between the starts of consecutive rows.
    row_stride: usize,
}

// SAFETY: tasks sharing an `OutMatrix` write disjoint elements (callers of `matmul_strided`
// promise it; `matmul` splits its output into disjoint tiles).
unsafe impl Send for OutMatrix {}
// SAFETY: as for `Send`: no two tasks write the same element, and none reads through it.
unsafe impl Sync for OutMatrix {}

impl OutMatrix {
    pub fn new(ptr: *mut f32, row_stride: usize) -> Self {
        Self { ptr, row_stride }
    }

    /// The same matrix starting `offset` elements further on.
    ///
    /// # Safety
    /// The result must still point inside the allocation.
    pub unsafe fn offset(self, offset: usize) -> Self {
        Self {
            // SAFETY: the caller keeps the result inside the allocation (this function's
            // contract).
            ptr: unsafe { self.ptr.add(offset) },
            ..self
        }
    }
}

thread_local! {
    /// Quantized activations, kept per calling thread: a batch's FFN input is megabytes, and a
    /// fresh allocation that size is new zeroed pages from the kernel on every product.
    static QUANTIZED: Cell<QuantizedRows> = Cell::default();
}

/// `out = epilogue(a · b)` for a row-major `m × k` matrix `a`, in parallel. `out` is `m × n`.
/// Against block-stored weights, `a` is first quantized to 8 bits per 32-value block.
pub fn matmul(a: &[f32], m: usize, b: &PackedMatrix, epilogue: Epilogue, out: &mut [f32]) {
    let (k, n) = (b.k, b.n);
    assert_eq!(a.len(), m * k, "left matrix is not {m}×{k}");
    assert_eq!(out.len(), m * n, "output is not {m}×{n}");
    if let Some(bias) = epilogue.bias {
        assert_eq!(bias.len(), n);
    }
    if let Some(residual) = epilogue.residual {
        assert_eq!(residual.len(), m * n);
    }
    match b.storage {
        Storage::F32(_) => par_tiles(Lhs::F32 { a, lda: k }, m, b, epilogue, out),
        Storage::Blocks(_) => {
            // Taken out rather than borrowed: while this thread waits for the product, rayon may
            // run another caller's product on it.
            let mut quantized = QUANTIZED.take();
            quantized.quantize(a, m, k);
            par_tiles(Lhs::Quantized(&quantized), m, b, epilogue, out);
            QUANTIZED.set(quantized);
        }
    }
}

/// Splits the `m × n` output into tasks of rows × panel groups and computes them in parallel.
fn par_tiles(lhs: Lhs, m: usize, b: &PackedMatrix, epilogue: Epilogue, out: &mut [f32]) {
    let row_tasks = m.div_ceil(ROWS_PER_TASK);
    let n_panels = b.n.div_ceil(NR);
    // Enough panel groups that both cores get work even for a one-tile query.
    let threads = rayon::current_num_threads();
    let panel_groups = (threads * 4).div_ceil(row_tasks).clamp(1, n_panels);
    let panels_per_group = n_panels.div_ceil(panel_groups);
    let out = OutMatrix::new(out.as_mut_ptr(), b.n);
    (0..row_tasks * panel_groups)
        .into_par_iter()
        .for_each(|task| {
            let rows = (task / panel_groups) * ROWS_PER_TASK
                ..((task / panel_groups + 1) * ROWS_PER_TASK).min(m);
            let first = (task % panel_groups) * panels_per_group;
            let panels = first..(first + panels_per_group).min(n_panels);
            let tiles = Tiles {
                lhs,
                rows,
                b,
                panels,
                epilogue,
                c: out,
            };
            // SAFETY: `out` has m×n elements; this task writes only rows `rows` × panels
            // `panels`, which no other task's ranges overlap.
            unsafe { tiles.compute() };
        });
}

/// `c = a · b` single-threaded with explicit strides: `a` rows start `lda` apart. Used for
/// attention, where each head of each sequence is its own small product; `b` must be f32-stored
/// (as [`PackedMatrix::repack_rows`] and [`PackedMatrix::repack_columns`] make it).
///
/// # Safety
/// `a` must hold `m` rows of `k` values (the rows of `b`) at stride `lda`; `c` must be valid for writes of
/// `m` rows of `b.cols()` values, written by no one else meanwhile.
pub unsafe fn matmul_strided(a: &[f32], lda: usize, m: usize, b: &PackedMatrix, c: OutMatrix) {
    assert!(!b.is_block_stored(), "strided products take f32 matrices");
    let n_panels = b.n.div_ceil(NR);
    let tiles = Tiles {
        lhs: Lhs::F32 { a, lda },
        rows: 0..m,
        b,
        panels: 0..n_panels,
        epilogue: Epilogue::default(),
        c,
    };
    // SAFETY: `c` is valid for writes of the `m` rows × `b.cols()` values the tiles cover, and
    // written by no one else meanwhile (this function's contract): what `compute` needs.
    unsafe { tiles.compute() };
}

/// The left operand of a product, in the form the right operand's storage multiplies with.
#[derive(Clone, Copy)]
enum Lhs<'a> {
    /// f32 rows whose starts are `lda` apart, for f32 storage.
    F32 { a: &'a [f32], lda: usize },
    /// Rows quantized per block, for block storage.
    Quantized(&'a QuantizedRows),
}

/// One task's share of a product: output rows `rows` × column panels `panels` of `c = a · b`.
struct Tiles<'a> {
    lhs: Lhs<'a>,
    rows: std::ops::Range<usize>,
    b: &'a PackedMatrix,
    panels: std::ops::Range<usize>,
    epilogue: Epilogue<'a>,
    c: OutMatrix,
}

impl Tiles<'_> {
    /// Computes the tiles, with the whole loop (epilogue and GELU included) compiled for the
    /// newest vector instructions the CPU has.
    ///
    /// # Safety
    /// `c` must be valid for writes of every element in `rows` × the columns of `panels`, and no
    /// one else may write them meanwhile.
    unsafe fn compute(&self) {
        #[cfg(target_arch = "x86_64")]
        match Level::detected() {
            // SAFETY: the CPU has the level's features; the caller upholds the rest of the
            // contract, which is `compute`'s own.
            Level::Avx512Vnni => return unsafe { self.compute_avx512() },
            // SAFETY: as above.
            Level::Avx2 | Level::AvxVnni => return unsafe { self.compute_avx2() },
            Level::Portable => {}
        }
        // SAFETY: the caller upholds the contract, which is `compute`'s own.
        unsafe { self.compute_portable() }
    }

    /// [`compute`](Self::compute) compiled for AVX2 and FMA.
    ///
    /// # Safety
    /// As for [`compute`](Self::compute), on a CPU with AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn compute_avx2(&self) {
        // SAFETY: the caller upholds `compute`'s contract, and the CPU has AVX2 and FMA.
        unsafe { self.compute_portable() }
    }

    /// [`compute`](Self::compute) compiled for AVX-512, so the epilogue vectorises 16 wide.
    ///
    /// # Safety
    /// As for [`compute`](Self::compute), on a CPU with AVX-512 F/BW/VL, AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
    unsafe fn compute_avx512(&self) {
        // SAFETY: the caller upholds `compute`'s contract, and the CPU has the features.
        unsafe { self.compute_portable() }
    }

    /// The tiles, panel by panel.
    ///
    /// # Safety
    /// As for [`compute`](Self::compute).
    #[inline(always)]
    unsafe fn compute_portable(&self) {
        for p in self.panels.clone() {
            match (&self.b.storage, self.lhs) {
                (Storage::F32(panels), Lhs::F32 { a, lda }) => {
                    let len = self.b.k * NR;
                    // SAFETY: the panel products write this task's tiles of `c` only, which
                    // the caller keeps valid and unshared.
                    unsafe { self.f32_panel(p, &panels[p * len..(p + 1) * len], a, lda) }
                }
                (Storage::Blocks(blocks), Lhs::Quantized(a)) => {
                    // SAFETY: as for the f32 panels.
                    unsafe { self.block_panel(p, blocks.panel(p), a) }
                }
                _ => unreachable!("`matmul` quantizes the left operand exactly for block storage"),
            }
        }
    }

    /// This task's rows times f32 panel `p`.
    #[inline(always)]
    unsafe fn f32_panel(&self, p: usize, panel: &[f32], a: &[f32], lda: usize) {
        // SAFETY: each row pointer is row `row + r` of `a` (below `rows.end`, so among the rows the
        // caller gave at stride `lda`), valid for the kernel's `k` reads; `panel` holds `k` rows
        // of NR; `finish` writes inside this task's block of `c`.
        unsafe {
            let mut row = self.rows.start;
            while row < self.rows.end {
                let tile_rows = MR.min(self.rows.end - row);
                // Rows past a short tile's end repeat its last row; the kernel never reads them.
                let a_rows: [*const f32; MR] =
                    std::array::from_fn(|r| a.as_ptr().add((row + r.min(tile_rows - 1)) * lda));
                self.prefetch_residual(row, tile_rows, p);
                let mut tile = [[0f32; NR]; MR];
                microkernel(self.b.k, tile_rows, &a_rows, panel, &mut tile);
                self.finish(row, p, &mut tile[..tile_rows]);
                row += tile_rows;
            }
        }
    }

    /// This task's rows times block-stored panel `p`.
    #[inline(always)]
    unsafe fn block_panel(&self, p: usize, panel: int8::Panel, a: &QuantizedRows) {
        // SAFETY: rows `row .. row + tile_rows` are below `rows.end`, so they exist in `a` (quantized
        // for the whole product, with the panel's `k`); `finish` writes inside this task's block.
        unsafe {
            let mut row = self.rows.start;
            while row < self.rows.end {
                let tile_rows = int8::MR.min(self.rows.end - row);
                self.prefetch_residual(row, tile_rows, p);
                let mut tile = [[0f32; NR]; int8::MR];
                int8::microkernel(tile_rows, a, row, panel, &mut tile);
                self.finish(row, p, &mut tile[..tile_rows]);
                row += tile_rows;
            }
        }
    }

    /// Starts fetching the residual values the epilogue of the tile at `row` in panel `p` will
    /// read, so that the fetch overlaps the microkernel: a batch's residual is tens of MB, out of
    /// cache, and waiting for it was a third of the epilogue's time.
    #[inline(always)]
    fn prefetch_residual(&self, row: usize, rows: usize, p: usize) {
        #[cfg(target_arch = "x86_64")]
        if let Some(residual) = self.epilogue.residual {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            let cols = NR.min(self.b.n - p * NR);
            for r in row..row + rows {
                let start = r * self.c.row_stride + p * NR;
                // A tile row's values may straddle two cache lines: ask for both ends.
                for at in [start, start + cols - 1] {
                    // SAFETY: `at` is inside `residual` (and prefetching never faults anyway).
                    unsafe { _mm_prefetch::<_MM_HINT_T0>(residual.as_ptr().add(at).cast()) };
                }
            }
        }
    }

    /// Applies the epilogue to the tile whose first row is output row `row` in panel `p`, and
    /// writes it to `c`.
    #[inline(always)]
    unsafe fn finish(&self, row: usize, p: usize, tile: &mut [[f32; NR]]) {
        let (epilogue, c) = (self.epilogue, self.c);
        let ldc = c.row_stride;
        let col0 = p * NR;
        let cols = NR.min(self.b.n - col0);
        for (r, values) in tile.iter_mut().enumerate() {
            let out_row = row + r;
            if let Some(bias) = epilogue.bias {
                for (v, b) in values.iter_mut().zip(&bias[col0..col0 + cols]) {
                    *v += b;
                }
            }
            if let Some(residual) = epilogue.residual {
                let start = out_row * ldc + col0;
                for (v, r) in values.iter_mut().zip(&residual[start..start + cols]) {
                    *v += r;
                }
            }
            if epilogue.gelu {
                values.iter_mut().for_each(|v| *v = gelu(*v));
            }
            // SAFETY: `out_row` is below `rows.end` and `col0 + cols` at most `n`, so the copy
            // writes inside this task's block of `c`, which the caller keeps valid and unshared.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    values.as_ptr(),
                    c.ptr.add(out_row * ldc + col0),
                    cols,
                )
            };
        }
    }
}

/// One tile of up to 6×16: `tile[r][j] = Σ_kk a_rows[r][kk] · panel[kk][j]` for `r < rows`.
/// Short tiles (the last rows of a matrix) get a kernel of their own height rather than computing
/// rows that are thrown away: a 20-token query is three full tiles and one of two rows.
///
/// # Safety
/// Each of the first `rows` pointers of `a_rows` must be valid for reads of `k` values, and
/// `panel` must hold `k` rows of `NR` values.
#[inline]
unsafe fn microkernel(
    k: usize,
    rows: usize,
    a_rows: &[*const f32; MR],
    panel: &[f32],
    tile: &mut [[f32; NR]; MR],
) {
    // SAFETY: the detected level is one the CPU supports; the rest is the caller's contract.
    unsafe { microkernel_at(Level::detected(), k, rows, a_rows, panel, tile) }
}

/// [`microkernel`] with the kernels of `level`.
///
/// # Safety
/// As for [`microkernel`], and the CPU must support `level`.
#[inline]
unsafe fn microkernel_at(
    level: Level,
    k: usize,
    rows: usize,
    a_rows: &[*const f32; MR],
    panel: &[f32],
    tile: &mut [[f32; NR]; MR],
) {
    // SAFETY: each kernel runs only at a level whose features it is compiled for, which the
    // caller guarantees the CPU has; all read what the caller guarantees exists.
    unsafe {
        #[cfg(target_arch = "x86_64")]
        match level {
            Level::Avx512Vnni => {
                return for_tile_height!(rows, microkernel_avx512(k, a_rows, panel, tile))
            }
            Level::Avx2 | Level::AvxVnni => {
                return for_tile_height!(rows, microkernel_avx2(k, a_rows, panel, tile))
            }
            Level::Portable => {}
        }
        microkernel_portable(k, rows, a_rows, panel, tile)
    }
}

/// [`microkernel`] in plain Rust.
///
/// # Safety
/// As for [`microkernel`].
unsafe fn microkernel_portable(
    k: usize,
    rows: usize,
    a_rows: &[*const f32; MR],
    panel: &[f32],
    tile: &mut [[f32; NR]; MR],
) {
    // SAFETY: the first `rows` pointers are valid for `k` reads (the caller's contract).
    unsafe {
        for (kk, b) in panel.chunks_exact(NR).take(k).enumerate() {
            for r in 0..rows {
                let a = *a_rows[r].add(kk);
                for j in 0..NR {
                    tile[r][j] += a * b[j];
                }
            }
        }
    }
}

/// [`microkernel`] in AVX2/FMA registers: two 8-lane accumulators per row.
///
/// # Safety
/// As for [`microkernel`], on a CPU with AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn microkernel_avx2<const ROWS: usize>(
    k: usize,
    a_rows: &[*const f32; MR],
    panel: &[f32],
    tile: &mut [[f32; NR]; MR],
) {
    // SAFETY: `panel` holds `k` rows of NR = 16 values, so the two loads of row `kk` read inside
    // it; each of the first ROWS pointers is valid for `k` reads (the caller's contract);
    // every row of `tile` holds 16 values, the two stores' width.
    unsafe {
        use std::arch::x86_64::*;
        let mut acc = [[_mm256_setzero_ps(); 2]; ROWS];
        let b = panel.as_ptr();
        for kk in 0..k {
            let b0 = _mm256_loadu_ps(b.add(kk * NR));
            let b1 = _mm256_loadu_ps(b.add(kk * NR + 8));
            for r in 0..ROWS {
                let a = _mm256_broadcast_ss(&*a_rows[r].add(kk));
                acc[r][0] = _mm256_fmadd_ps(a, b0, acc[r][0]);
                acc[r][1] = _mm256_fmadd_ps(a, b1, acc[r][1]);
            }
        }
        for r in 0..ROWS {
            _mm256_storeu_ps(tile[r].as_mut_ptr(), acc[r][0]);
            _mm256_storeu_ps(tile[r].as_mut_ptr().add(8), acc[r][1]);
        }
    }
}

/// [`microkernel`] in AVX-512 registers: a row of the panel is one register. Even and odd `k`
/// accumulate separately, so each row has two independent FMA chains, enough to keep both FMA
/// units busy at 6 rows.
///
/// # Safety
/// As for [`microkernel`], on a CPU with AVX-512 F, AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn microkernel_avx512<const ROWS: usize>(
    k: usize,
    a_rows: &[*const f32; MR],
    panel: &[f32],
    tile: &mut [[f32; NR]; MR],
) {
    // SAFETY: `panel` holds `k` rows of NR = 16 values, one load each; each of the first ROWS
    // pointers is valid for `k` reads (the caller's contract); every row of `tile` holds 16
    // values, the store's width.
    unsafe {
        use std::arch::x86_64::*;
        let (mut even, mut odd) = ([_mm512_setzero_ps(); ROWS], [_mm512_setzero_ps(); ROWS]);
        let b = panel.as_ptr();
        let mut kk = 0;
        while kk + 1 < k {
            let (b0, b1) = (
                _mm512_loadu_ps(b.add(kk * NR)),
                _mm512_loadu_ps(b.add(kk * NR + NR)),
            );
            for r in 0..ROWS {
                even[r] = _mm512_fmadd_ps(_mm512_set1_ps(*a_rows[r].add(kk)), b0, even[r]);
                odd[r] = _mm512_fmadd_ps(_mm512_set1_ps(*a_rows[r].add(kk + 1)), b1, odd[r]);
            }
            kk += 2;
        }
        if kk < k {
            let b0 = _mm512_loadu_ps(b.add(kk * NR));
            for r in 0..ROWS {
                even[r] = _mm512_fmadd_ps(_mm512_set1_ps(*a_rows[r].add(kk)), b0, even[r]);
            }
        }
        for r in 0..ROWS {
            _mm512_storeu_ps(tile[r].as_mut_ptr(), _mm512_add_ps(even[r], odd[r]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], m: usize, k: usize, w: &[f32], n: usize) -> Vec<f32> {
        let mut out = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|kk| a[i * k + kk] * w[j * k + kk]).sum();
            }
        }
        out
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 1000) as f32 / 500.0
                    - 1.0
            })
            .collect()
    }

    #[test]
    fn matches_naive_product_with_ragged_edges_and_epilogue() {
        for (m, k, n) in [
            (1, 3, 1),
            (7, 33, 17),
            (20, 64, 48),
            (53, 40, 35),
            (100, 16, 160),
        ] {
            let a = values(m * k, 1);
            let w = values(n * k, 2);
            let bias = values(n, 3);
            let residual = values(m * n, 4);
            let packed = PackedMatrix::from_weight(&w, n, k);
            let mut out = vec![0f32; m * n];
            let epilogue = Epilogue {
                bias: Some(&bias),
                residual: Some(&residual),
                gelu: true,
            };
            matmul(&a, m, &packed, epilogue, &mut out);
            let expected = naive(&a, m, k, &w, n);
            for i in 0..m * n {
                let want = gelu(expected[i] + bias[i % n] + residual[i]);
                assert!(
                    (out[i] - want).abs() < 1e-4,
                    "{m}×{k}×{n} at {i}: {} vs {want}",
                    out[i]
                );
            }
        }
    }

    /// Block-stored weights multiply activations quantized to 8 bits per 32-value block, so each
    /// product may differ from the f32 one by at most Σ |weight| × half a quantization step.
    #[test]
    fn ggml_style_block_weights_give_the_product_within_quantization_error() {
        // Rows span a whole parallel task plus a ragged tile; columns end mid-panel.
        let (m, k, n) = (53, 96, 40);
        // Q4_0-style: integers in [-8, 7] times a per-(column, 32-block) scale.
        let w: Vec<f32> = (0..n * k)
            .map(|i| ((i * 7 % 16) as f32 - 8.0) * (0.01 + (i / BLOCK) as f32 * 1e-3))
            .collect();
        let packed = PackedMatrix::from_weight(&w, n, k);
        assert!(packed.is_block_stored());
        let dense = PackedMatrix::pack(k, n, |kk, col| w[col * k + kk]);
        let a = values(m * k, 7);
        let bias = values(n, 3);
        let residual = values(m * n, 4);
        let epilogue = Epilogue {
            bias: Some(&bias),
            residual: Some(&residual),
            gelu: false,
        };
        let (mut out_blocks, mut out_dense) = (vec![0f32; m * n], vec![0f32; m * n]);
        matmul(&a, m, &packed, epilogue, &mut out_blocks);
        matmul(&a, m, &dense, epilogue, &mut out_dense);
        for i in 0..m {
            let half_steps: Vec<f32> = a[i * k..(i + 1) * k]
                .chunks(BLOCK)
                .map(|b| b.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0 / 2.0)
                .collect();
            for j in 0..n {
                let bound: f32 = (0..k)
                    .map(|kk| w[j * k + kk].abs() * half_steps[kk / BLOCK])
                    .sum();
                let (got, want) = (out_blocks[i * n + j], out_dense[i * n + j]);
                assert!(
                    (got - want).abs() <= bound + 1e-4,
                    "{i},{j}: {got} vs {want} (bound {bound})"
                );
            }
        }
        assert_ne!(out_blocks, out_dense, "the activations were quantized");

        // Arbitrary floats have no exact block form and stay f32.
        let arbitrary = values(n * k, 8);
        assert!(!PackedMatrix::from_weight(&arbitrary, n, k).is_block_stored());
    }

    /// Every tile height and an odd `k`, through the f32 kernels of every level the CPU runs.
    #[test]
    fn microkernels_of_every_level_match_the_naive_product() {
        let k = 37;
        let a = values(MR * k, 9);
        let panel = values(k * NR, 10);
        let a_rows: [*const f32; MR] = std::array::from_fn(|r| a[r * k..].as_ptr());
        crate::cpu::for_each_supported_level(|level| {
            for rows in 1..=MR {
                let mut tile = [[f32::NAN; NR]; MR];
                // The portable kernel accumulates into the tile; the others overwrite it.
                tile.iter_mut().for_each(|row| row.fill(0.0));
                // SAFETY: each row pointer is valid for `k` reads, `panel` holds `k` rows of NR,
                // and the CPU supports `level`.
                unsafe { microkernel_at(level, k, rows, &a_rows, &panel, &mut tile) };
                for (r, tile_row) in tile.iter().enumerate().take(rows) {
                    for (j, &got) in tile_row.iter().enumerate() {
                        let want: f32 = (0..k).map(|kk| a[r * k + kk] * panel[kk * NR + j]).sum();
                        assert!((got - want).abs() < 1e-4, "{level:?} {rows} rows, {r},{j}");
                    }
                }
            }
        });
    }

    #[test]
    fn repacking_rows_or_columns_equals_packing_elements() {
        let (k, n) = (7, 37);
        let source = values(k * n, 11);
        let at = |kk: usize, col: usize| source[kk * n + col];
        let expected = PackedMatrix::pack(k, n, at);
        let mut by_rows = PackedMatrix::pack(3, 50, |_, _| f32::NAN);
        by_rows.repack_rows(k, n, |kk| &source[kk * n..(kk + 1) * n]);
        let transposed: Vec<f32> = (0..n)
            .flat_map(|col| (0..k).map(move |kk| (kk, col)))
            .map(|(kk, col)| at(kk, col))
            .collect();
        let mut by_columns = PackedMatrix::pack(9, 20, |_, _| f32::NAN);
        by_columns.repack_columns(k, n, |col| &transposed[col * k..(col + 1) * k]);
        for packed in [&by_rows, &by_columns] {
            let (Storage::F32(want), Storage::F32(got)) = (&expected.storage, &packed.storage)
            else {
                panic!("f32 storage expected")
            };
            assert_eq!((packed.k, packed.n), (k, n));
            assert_eq!(got, want);
        }
    }

    #[test]
    fn strided_product_writes_only_its_block() {
        let (m, k, n, lda, ldc) = (5, 8, 3, 20, 10);
        let a = values(m * lda, 5);
        let w = values(n * k, 6);
        let packed = PackedMatrix::from_weight(&w, n, k);
        let mut c = vec![f32::NAN; m * ldc];
        // SAFETY: `a` holds `m` rows of `k` at stride `lda`; `c` holds `m` rows at stride `ldc`.
        unsafe { matmul_strided(&a, lda, m, &packed, OutMatrix::new(c.as_mut_ptr(), ldc)) };
        for i in 0..m {
            for j in 0..ldc {
                let v = c[i * ldc + j];
                if j < n {
                    let want: f32 = (0..k).map(|kk| a[i * lda + kk] * w[j * k + kk]).sum();
                    assert!((v - want).abs() < 1e-5);
                } else {
                    assert!(v.is_nan(), "wrote outside the block at {i},{j}");
                }
            }
        }
    }
}
