//! f32 matrix multiplication with pre-packed right-hand sides, tuned for encoder inference on CPUs.
//!
//! An encoder multiplies small activation matrices (a 20-token query is 20 rows) by the same
//! weights millions of times. General GEMM libraries re-pack the weights on every call, which for a
//! query costs more than the arithmetic; here each weight matrix is packed once, at load time, into
//! column panels that the microkernel streams straight from memory. The epilogue fuses what follows
//! a linear layer in BERT (bias, residual, GELU) so the output is written once.
//!
//! The microkernel computes a 6×16 tile with AVX2/FMA when the CPU has them (checked at run time)
//! and falls back to portable code the compiler vectorises otherwise. Work is split into tiles
//! over rows and column panels, run in parallel with rayon.

use rayon::prelude::*;

use super::vector_math::gelu;

/// Rows of the output tile one microkernel call computes.
const MR: usize = 6;
/// Columns of a packed panel (two AVX registers of 8 lanes).
const NR: usize = 16;
/// Rows handed to one parallel task, so a task's slice of the left matrix stays in L2.
const ROWS_PER_TASK: usize = MR * 8;

/// Values along `k` that share one scale in block storage (ggml's block length).
const BLOCK: usize = 32;

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
    /// Panels of small integers with one f32 scale per 32 values along `k` per column, used only
    /// when that representation is *exact*: weights dequantized from ggml blocks (the default
    /// model's are Q4_0) are integers times a per-block scale. A quarter of the f32 bytes, so a
    /// query streams 22 MB of weights instead of 85 MB; each panel is expanded to f32 just before
    /// the microkernel uses it, and the products are bit-identical to the f32 ones.
    Blocks { values: Vec<i8>, scales: Vec<f32> },
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
        packed.repack(k, n, at);
        packed
    }

    /// Like [`pack`](Self::pack), reusing this matrix's storage (for per-task scratch matrices).
    pub fn repack(&mut self, k: usize, n: usize, at: impl Fn(usize, usize) -> f32) {
        let mut panels = match std::mem::take(&mut self.storage) {
            Storage::F32(panels) => panels,
            Storage::Blocks { .. } => Vec::new(),
        };
        panels.resize(n.div_ceil(NR) * k * NR, 0.0);
        fill_panels(&mut panels, k, n, at);
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
                let n_panels = n.div_ceil(NR);
                let mut values = vec![0i8; n_panels * k * NR];
                let mut scales = vec![0f32; n_panels * (k / BLOCK) * NR];
                for (p, panel) in values.chunks_exact_mut(k * NR).enumerate() {
                    for (kk, row) in panel.chunks_exact_mut(NR).enumerate() {
                        for (j, value) in row.iter_mut().enumerate() {
                            let col = p * NR + j;
                            if col < n {
                                let scale = block_scales[col * (k / BLOCK) + kk / BLOCK];
                                scales[(p * (k / BLOCK) + kk / BLOCK) * NR + j] = scale;
                                *value = if scale == 0.0 {
                                    0
                                } else {
                                    (at(kk, col) / scale).round() as i8
                                };
                            }
                        }
                    }
                }
                Self {
                    k,
                    n,
                    storage: Storage::Blocks { values, scales },
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
        matches!(self.storage, Storage::Blocks { .. })
    }

    /// Panel `p` as f32 values, expanding block storage into `scratch`.
    fn panel<'a>(&'a self, p: usize, scratch: &'a mut Vec<f32>) -> &'a [f32] {
        let len = self.k * NR;
        match &self.storage {
            Storage::F32(panels) => &panels[p * len..(p + 1) * len],
            Storage::Blocks { values, scales } => {
                scratch.resize(len, 0.0);
                let blocks = self.k / BLOCK;
                expand_panel(
                    &values[p * len..(p + 1) * len],
                    &scales[p * blocks * NR..(p + 1) * blocks * NR],
                    scratch,
                );
                scratch
            }
        }
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

/// Per (column, block) scales such that every weight is an integer in [-127, 127] times its
/// block's scale *exactly*, or `None` if some block has no such scale. The candidates are the
/// block's largest magnitude divided by 1..=8 (ggml Q4_0, whose largest value is -8·d ... 7·d)
/// or by 127 (Q8_0).
fn exact_blocks(weight: &[f32], n: usize, k: usize) -> Option<Vec<f32>> {
    if k % BLOCK != 0 {
        return None;
    }
    let mut scales = Vec::with_capacity(n * k / BLOCK);
    for block in weight.chunks_exact(BLOCK) {
        let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
        if amax == 0.0 {
            scales.push(0.0);
            continue;
        }
        let scale = (1..=8)
            .chain([127])
            .map(|m| amax / m as f32)
            .find(|&scale| {
                block.iter().all(|&v| {
                    let q = (v / scale).round();
                    q.abs() <= 127.0 && q * scale == v
                })
            })?;
        scales.push(scale);
    }
    Some(scales)
}

/// `out[kk][j] = values[kk][j] · scales[kk / 32][j]` for one panel.
fn expand_panel(values: &[i8], scales: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if has_avx2_fma() {
            // Safety: the CPU has AVX2, checked just above.
            return unsafe { expand_panel_avx2(values, scales, out) };
        }
    }
    expand_panel_portable(values, scales, out)
}

#[inline(always)]
fn expand_panel_portable(values: &[i8], scales: &[f32], out: &mut [f32]) {
    for ((block_values, block_out), block_scales) in values
        .chunks_exact(BLOCK * NR)
        .zip(out.chunks_exact_mut(BLOCK * NR))
        .zip(scales.chunks_exact(NR))
    {
        for (row_values, row_out) in block_values
            .chunks_exact(NR)
            .zip(block_out.chunks_exact_mut(NR))
        {
            for j in 0..NR {
                row_out[j] = row_values[j] as f32 * block_scales[j];
            }
        }
    }
}

/// The portable loop, compiled with AVX2 so it vectorises to 8-lane conversions.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn expand_panel_avx2(values: &[i8], scales: &[f32], out: &mut [f32]) {
    expand_panel_portable(values, scales, out)
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

// Safety: tasks sharing an `OutMatrix` write disjoint elements (callers of `matmul_strided`
// promise it; `matmul` splits its output into disjoint tiles).
unsafe impl Send for OutMatrix {}
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
            ptr: self.ptr.add(offset),
            ..self
        }
    }
}

/// `out = epilogue(a · b)` for a row-major `m × k` matrix `a`, in parallel. `out` is `m × n`.
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
    let row_tasks = m.div_ceil(ROWS_PER_TASK);
    let n_panels = n.div_ceil(NR);
    // Enough panel groups that both cores get work even for a one-tile query.
    let threads = rayon::current_num_threads();
    let panel_groups = (threads * 4).div_ceil(row_tasks).clamp(1, n_panels);
    let panels_per_group = n_panels.div_ceil(panel_groups);
    let out = OutMatrix::new(out.as_mut_ptr(), n);
    (0..row_tasks * panel_groups)
        .into_par_iter()
        .for_each(|task| {
            let rows = (task / panel_groups) * ROWS_PER_TASK
                ..((task / panel_groups + 1) * ROWS_PER_TASK).min(m);
            let first = (task % panel_groups) * panels_per_group;
            let panels = first..(first + panels_per_group).min(n_panels);
            // Safety: `out` has m×n elements; this task writes only rows `rows` × panels `panels`.
            let tiles = Tiles {
                a,
                lda: k,
                rows,
                b,
                panels,
                epilogue,
                c: out,
            };
            unsafe { tiles.compute() };
        });
}

/// `c = a · b` single-threaded with explicit strides: `a` rows start `lda` apart. Used for
/// attention, where each head of each sequence is its own small product.
///
/// # Safety
/// `a` must hold `m` rows of `k` values (the rows of `b`) at stride `lda`; `c` must be valid for writes of
/// `m` rows of `b.cols()` values, written by no one else meanwhile.
pub unsafe fn matmul_strided(a: &[f32], lda: usize, m: usize, b: &PackedMatrix, c: OutMatrix) {
    let n_panels = b.n.div_ceil(NR);
    let tiles = Tiles {
        a,
        lda,
        rows: 0..m,
        b,
        panels: 0..n_panels,
        epilogue: Epilogue::default(),
        c,
    };
    tiles.compute();
}

/// One task's share of a product: output rows `rows` × column panels `panels` of `c = a · b`.
struct Tiles<'a> {
    a: &'a [f32],
    /// Distance between the starts of consecutive rows of `a`.
    lda: usize,
    rows: std::ops::Range<usize>,
    b: &'a PackedMatrix,
    panels: std::ops::Range<usize>,
    epilogue: Epilogue<'a>,
    c: OutMatrix,
}

/// Whether this CPU runs the AVX2/FMA code paths (detected once, then a cached load).
#[cfg(target_arch = "x86_64")]
#[inline]
pub fn has_avx2_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

impl Tiles<'_> {
    /// Computes the tiles, with the whole loop (panel expansion, epilogue, GELU) compiled for
    /// AVX2/FMA when the CPU has them.
    ///
    /// # Safety
    /// `c` must be valid for writes of every element in `rows` × the columns of `panels`, and no
    /// one else may write them meanwhile.
    unsafe fn compute(&self) {
        #[cfg(target_arch = "x86_64")]
        {
            if has_avx2_fma() {
                return self.compute_avx2();
            }
        }
        self.compute_portable()
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn compute_avx2(&self) {
        self.compute_portable()
    }

    #[inline(always)]
    unsafe fn compute_portable(&self) {
        let (a, lda, b, epilogue, c) = (self.a, self.lda, self.b, self.epilogue, self.c);
        let (rows, panels) = (self.rows.clone(), self.panels.clone());
        let ldc = c.row_stride;
        let mut scratch = Vec::new();
        for p in panels {
            let panel = b.panel(p, &mut scratch);
            let col0 = p * NR;
            let cols = NR.min(b.n - col0);
            let mut row = rows.start;
            while row < rows.end {
                let tile_rows = MR.min(rows.end - row);
                // Rows past a short tile's end repeat its last row; the kernel never reads them.
                let a_rows: [*const f32; MR] =
                    std::array::from_fn(|r| a.as_ptr().add((row + r.min(tile_rows - 1)) * lda));
                let mut tile = [[0f32; NR]; MR];
                microkernel(b.k, tile_rows, &a_rows, panel, &mut tile);
                for (r, values) in tile.iter_mut().enumerate().take(tile_rows) {
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
                    std::ptr::copy_nonoverlapping(
                        values.as_ptr(),
                        c.ptr.add(out_row * ldc + col0),
                        cols,
                    );
                }
                row += tile_rows;
            }
        }
    }
}

/// One tile of up to 6×16: `tile[r][j] = Σ_kk a_rows[r][kk] · panel[kk][j]` for `r < rows`.
/// Short tiles (the last rows of a matrix) get a kernel of their own height rather than computing
/// rows that are thrown away: a 20-token query is three full tiles and one of two rows.
#[inline]
unsafe fn microkernel(
    k: usize,
    rows: usize,
    a_rows: &[*const f32; MR],
    panel: &[f32],
    tile: &mut [[f32; NR]; MR],
) {
    #[cfg(target_arch = "x86_64")]
    {
        if has_avx2_fma() {
            return match rows {
                1 => microkernel_avx2::<1>(k, a_rows, panel, tile),
                2 => microkernel_avx2::<2>(k, a_rows, panel, tile),
                3 => microkernel_avx2::<3>(k, a_rows, panel, tile),
                4 => microkernel_avx2::<4>(k, a_rows, panel, tile),
                5 => microkernel_avx2::<5>(k, a_rows, panel, tile),
                _ => microkernel_avx2::<MR>(k, a_rows, panel, tile),
            };
        }
    }
    microkernel_portable(k, rows, a_rows, panel, tile)
}

unsafe fn microkernel_portable(
    k: usize,
    rows: usize,
    a_rows: &[*const f32; MR],
    panel: &[f32],
    tile: &mut [[f32; NR]; MR],
) {
    for (kk, b) in panel.chunks_exact(NR).take(k).enumerate() {
        for r in 0..rows {
            let a = *a_rows[r].add(kk);
            for j in 0..NR {
                tile[r][j] += a * b[j];
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn microkernel_avx2<const ROWS: usize>(
    k: usize,
    a_rows: &[*const f32; MR],
    panel: &[f32],
    tile: &mut [[f32; NR]; MR],
) {
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

    #[test]
    fn ggml_style_block_weights_are_stored_exactly() {
        let (m, k, n) = (9, 64, 40);
        // Q4_0-style: integers in [-8, 7] times a per-(column, 32-block) scale.
        let w: Vec<f32> = (0..n * k)
            .map(|i| ((i * 7 % 16) as f32 - 8.0) * (0.01 + (i / BLOCK) as f32 * 1e-3))
            .collect();
        let packed = PackedMatrix::from_weight(&w, n, k);
        assert!(packed.is_block_stored());
        let dense = PackedMatrix::pack(k, n, |kk, col| w[col * k + kk]);
        let a = values(m * k, 7);
        let (mut out_blocks, mut out_dense) = (vec![0f32; m * n], vec![0f32; m * n]);
        matmul(&a, m, &packed, Epilogue::default(), &mut out_blocks);
        matmul(&a, m, &dense, Epilogue::default(), &mut out_dense);
        assert_eq!(out_blocks, out_dense, "block storage must be bit-exact");

        // Arbitrary floats have no exact block form and stay f32.
        let arbitrary = values(n * k, 8);
        assert!(!PackedMatrix::from_weight(&arbitrary, n, k).is_block_stored());
    }

    #[test]
    fn strided_product_writes_only_its_block() {
        let (m, k, n, lda, ldc) = (5, 8, 3, 20, 10);
        let a = values(m * lda, 5);
        let w = values(n * k, 6);
        let packed = PackedMatrix::from_weight(&w, n, k);
        let mut c = vec![f32::NAN; m * ldc];
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
