//! Integer arithmetic for [`gemm`](super::gemm)'s block-stored weights: int8 activations times
//! 4-bit-range weights, summed exactly in integers and scaled to f32 once per 32-value block.
//!
//! The default model's weights are small integers (ggml Q4_0: -8..=7) times one f32 scale per 32
//! values along `k`. Multiplied as f32 they run at the FMA limit, 8 multiply-adds per instruction;
//! AVX2's `vpmaddubsw` does 32 u8 × i8 multiply-adds per instruction. So the activations are
//! quantized at run time the way ggml's Q8_0 does it (per row and 32-value block: i8 values and one
//! f32 scale), each block's dot products are summed in integers, and only the block sums are
//! scaled and accumulated in f32.
//!
//! `vpmaddubsw` wants one operand unsigned, so weights are stored plus [`WEIGHT_OFFSET`] (0..=16)
//! and the offset's share, `WEIGHT_OFFSET · Σ activations`, is subtracted per block (the quantizer
//! stores it next to each block's scale). Small unsigned weights also keep 16-bit sums exact over a
//! whole block (8 instructions × 2 products × 16 × 127 = 32,512 < 2¹⁵), so widening to 32 bits
//! (`vpmaddwd`) happens once per block rather than once per instruction.
//!
//! CPUs with VNNI (AVX-VNNI, AVX-512 VNNI) do a group's multiply, pairwise adds and widening in
//! one `vpdpbusd`, which wants the same unsigned × signed operands: their kernels read the same
//! panels. The AVX-512 kernel holds a whole group of a panel in one register.

use rayon::prelude::*;

use super::tile::{for_tile_height, NR};
use crate::cpu::Level;

// The 256-bit kernels hold one group of a panel (16 columns × 4 bytes) in two registers, the
// AVX-512 kernel in one.
const _: () = assert!(NR == 16);

/// Values along `k` that share one scale, in both operands (ggml's block length).
pub const BLOCK: usize = 32;
/// Rows of the output tile one microkernel call computes: 6 rows × 2 registers of 16-bit block
/// sums, the two weight registers and a broadcast fill the 16 AVX2 registers (the f32 accumulators,
/// touched once per block, live on the stack). Measured 10-20% faster than 4 rows.
pub const MR: usize = 6;
/// Consecutive `k` values packed per column and lane: `vpmaddubsw` adds products in pairs and
/// `vpmaddwd` adds those pairs, so one 32-bit lane sums 4 products.
const GROUP: usize = 4;
/// Added to each stored weight so that it is unsigned.
const WEIGHT_OFFSET: i32 = 8;
/// Weights must lie in this range to be held here: Q4_0's -8..=7 and the +8 that gemm's search for
/// exact scales also accepts (the 16-bit bound above holds for stored values up to 16).
pub const WEIGHT_RANGE: std::ops::RangeInclusive<i32> = -8..=8;

/// A `k × n` matrix of block-scaled small integers, packed for the microkernel: `ceil(n / 16)`
/// panels, each holding, for every group of 4 values along `k`, 16 columns × 4 bytes (one AVX2
/// register per 8 columns), and the panel's scales as `k / 32` rows of 16.
#[derive(Debug, Clone)]
pub struct BlockPanels {
    k: usize,
    values: Vec<u8>,
    scales: Vec<f32>,
}

/// One panel of a [`BlockPanels`].
#[derive(Clone, Copy)]
pub struct Panel<'a> {
    values: &'a [u8],
    scales: &'a [f32],
}

impl BlockPanels {
    /// Packs the matrix whose element (row `kk`, column `col`) is `int(kk, col) · scale(kk / 32,
    /// col)`. `k` must be a multiple of 32 and every integer in [`WEIGHT_RANGE`].
    pub fn pack(
        k: usize,
        n: usize,
        int: impl Fn(usize, usize) -> i32,
        scale: impl Fn(usize, usize) -> f32,
    ) -> Self {
        assert_eq!(k % BLOCK, 0, "k = {k} is not a multiple of {BLOCK}");
        let n_panels = n.div_ceil(NR);
        let mut values = vec![WEIGHT_OFFSET as u8; n_panels * k * NR];
        let mut scales = vec![0f32; n_panels * (k / BLOCK) * NR];
        for col in 0..n {
            let (p, j) = (col / NR, col % NR);
            for kk in 0..k {
                let v = int(kk, col);
                assert!(WEIGHT_RANGE.contains(&v), "weight {v} out of range");
                values[p * k * NR + (kk / GROUP) * NR * GROUP + j * GROUP + kk % GROUP] =
                    (v + WEIGHT_OFFSET) as u8;
            }
            for block in 0..k / BLOCK {
                scales[(p * (k / BLOCK) + block) * NR + j] = scale(block, col);
            }
        }
        Self { k, values, scales }
    }

    /// Panel `p`: columns `16p .. 16p + 16`.
    pub fn panel(&self, p: usize) -> Panel<'_> {
        let (len, blocks) = (self.k * NR, self.k / BLOCK * NR);
        Panel {
            values: &self.values[p * len..(p + 1) * len],
            scales: &self.scales[p * blocks..(p + 1) * blocks],
        }
    }
}

/// Rows of `k` activations quantized per 32-value block: i8 values in -127..=127, the block's f32
/// scale, and [`WEIGHT_OFFSET`] times the sum of its values (what the stored weights' offset adds).
#[derive(Debug, Default)]
pub struct QuantizedRows {
    k: usize,
    values: Vec<i8>,
    scales: Vec<f32>,
    offsets: Vec<i32>,
}

impl QuantizedRows {
    /// Quantizes the row-major `m × k` matrix `a` (k a multiple of 32) into this buffer, in
    /// parallel over rows.
    pub fn quantize(&mut self, a: &[f32], m: usize, k: usize) {
        assert_eq!(k % BLOCK, 0, "k = {k} is not a multiple of {BLOCK}");
        assert_eq!(a.len(), m * k);
        self.k = k;
        self.values.resize(m * k, 0);
        self.scales.resize(m * k / BLOCK, 0.0);
        self.offsets.resize(m * k / BLOCK, 0);
        if k == 0 {
            return;
        }
        a.par_chunks(k)
            .zip(self.values.par_chunks_mut(k))
            .zip(self.scales.par_chunks_mut(k / BLOCK))
            .zip(self.offsets.par_chunks_mut(k / BLOCK))
            // A query's few rows take less time than handing them to another thread.
            .with_min_len(16)
            .for_each(|(((row, values), scales), offsets)| {
                quantize_row(row, values, scales, offsets)
            });
    }

    #[cfg(test)]
    fn dequantized(&self) -> Vec<f32> {
        (self.values.iter().enumerate())
            .map(|(i, &v)| v as f32 * self.scales[i / BLOCK])
            .collect()
    }
}

fn quantize_row(row: &[f32], values: &mut [i8], scales: &mut [f32], offsets: &mut [i32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if crate::cpu::has_avx2_fma() {
            // SAFETY: the kernels run at a level that includes AVX2, checked just above.
            return unsafe { quantize_row_avx2(row, values, scales, offsets) };
        }
    }
    quantize_row_portable(row, values, scales, offsets)
}

/// The scale of a block whose largest magnitude is `amax`, and its inverse (0 for an all-zero
/// block, whose values then quantize to 0).
#[inline(always)]
fn block_scale(amax: f32) -> (f32, f32) {
    let scale = amax / 127.0;
    (scale, if scale > 0.0 { 1.0 / scale } else { 0.0 })
}

fn quantize_row_portable(row: &[f32], values: &mut [i8], scales: &mut [f32], offsets: &mut [i32]) {
    for (((x, q), scale), offset) in (row.chunks_exact(BLOCK))
        .zip(values.chunks_exact_mut(BLOCK))
        .zip(scales)
        .zip(offsets)
    {
        let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        let inv;
        (*scale, inv) = block_scale(amax);
        let mut sum = 0;
        for (q, &v) in q.iter_mut().zip(x) {
            // Ties to even, as the AVX2 conversion rounds, so both paths give the same values.
            *q = (v * inv).round_ties_even() as i8;
            sum += *q as i32;
        }
        *offset = WEIGHT_OFFSET * sum;
    }
}

/// [`quantize_row_portable`] in AVX2 intrinsics, with identical results: the portable loop does
/// not vectorise (a float max that respects NaN, a saturating cast).
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn quantize_row_avx2(
    row: &[f32],
    values: &mut [i8],
    scales: &mut [f32],
    offsets: &mut [i32],
) {
    // SAFETY: each `x` is a whole block of BLOCK = 32 values, read as four 8-value loads inside it,
    // and each `q` a whole block of 32 bytes, the store's width.
    unsafe {
        use std::arch::x86_64::*;
        let sign_bit = _mm256_set1_ps(-0.0);
        for (((x, q), scale), offset) in (row.chunks_exact(BLOCK))
            .zip(values.chunks_exact_mut(BLOCK))
            .zip(scales)
            .zip(offsets)
        {
            let v: [__m256; 4] = std::array::from_fn(|i| _mm256_loadu_ps(x.as_ptr().add(8 * i)));
            let abs = v.map(|v| _mm256_andnot_ps(sign_bit, v));
            let max8 = _mm256_max_ps(_mm256_max_ps(abs[0], abs[1]), _mm256_max_ps(abs[2], abs[3]));
            let max4 = _mm_max_ps(_mm256_castps256_ps128(max8), _mm256_extractf128_ps(max8, 1));
            let max2 = _mm_max_ps(max4, _mm_movehl_ps(max4, max4));
            let amax = _mm_cvtss_f32(_mm_max_ss(max2, _mm_movehdup_ps(max2)));
            let inv;
            (*scale, inv) = block_scale(amax);
            let ints = v.map(|v| _mm256_cvtps_epi32(_mm256_mul_ps(v, _mm256_set1_ps(inv))));
            let sum8 = _mm256_add_epi32(
                _mm256_add_epi32(ints[0], ints[1]),
                _mm256_add_epi32(ints[2], ints[3]),
            );
            let sum4 = _mm_add_epi32(
                _mm256_castsi256_si128(sum8),
                _mm256_extracti128_si256(sum8, 1),
            );
            let sum2 = _mm_add_epi32(sum4, _mm_unpackhi_epi64(sum4, sum4));
            let sum = _mm_cvtsi128_si32(_mm_add_epi32(sum2, _mm_shuffle_epi32(sum2, 1)));
            *offset = WEIGHT_OFFSET * sum;
            // The packs work within 128-bit halves, leaving the 4-value runs in the order 0 2 4 6 1 3 5 7.
            let bytes = _mm256_packs_epi16(
                _mm256_packs_epi32(ints[0], ints[1]),
                _mm256_packs_epi32(ints[2], ints[3]),
            );
            let ordered =
                _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            _mm256_storeu_si256(q.as_mut_ptr() as *mut __m256i, ordered);
        }
    }
}

/// One tile of up to 6 × 16: `tile[r][j] = Σ_kk a[row0 + r][kk] · panel[kk][j]` for `r < rows`,
/// overwriting the tile, with the newest kernels the CPU runs. Like the f32 kernel, short tiles
/// get a kernel of their own height.
///
/// # Safety
/// Rows `row0 .. row0 + rows` must exist in `a`, which must have the panel's `k`.
pub unsafe fn microkernel(
    rows: usize,
    a: &QuantizedRows,
    row0: usize,
    panel: Panel,
    tile: &mut [[f32; NR]; MR],
) {
    // SAFETY: the detected level is one the CPU supports; the rest is the caller's contract.
    unsafe { microkernel_at(Level::detected(), rows, a, row0, panel, tile) }
}

/// [`microkernel`] with the kernels of `level`.
///
/// # Safety
/// As for [`microkernel`], and the CPU must support `level`.
unsafe fn microkernel_at(
    level: Level,
    rows: usize,
    a: &QuantizedRows,
    row0: usize,
    panel: Panel,
    tile: &mut [[f32; NR]; MR],
) {
    debug_assert!(rows <= MR && (row0 + rows) * a.k <= a.values.len());
    // SAFETY: each kernel runs only at a level whose features it is compiled for, which the
    // caller guarantees the CPU has; all read rows `row0 .. row0 + rows` of `a`, which the
    // caller guarantees exist.
    unsafe {
        #[cfg(target_arch = "x86_64")]
        match level {
            Level::Avx512Vnni => {
                return for_tile_height!(rows, microkernel_avx512_vnni(a, row0, panel, tile))
            }
            Level::AvxVnni => {
                return for_tile_height!(rows, microkernel_avx_vnni(a, row0, panel, tile))
            }
            Level::Avx2 => return for_tile_height!(rows, microkernel_avx2(a, row0, panel, tile)),
            Level::Portable => {}
        }
        microkernel_portable(rows, a, row0, panel, tile)
    }
}

fn microkernel_portable(
    rows: usize,
    a: &QuantizedRows,
    row0: usize,
    panel: Panel,
    tile: &mut [[f32; NR]; MR],
) {
    let k = a.k;
    let blocks = k / BLOCK;
    *tile = [[0.0; NR]; MR];
    for (r, out) in tile.iter_mut().enumerate().take(rows) {
        let row = row0 + r;
        for block in 0..blocks {
            let at = row * blocks + block;
            let activations = &a.values[row * k + block * BLOCK..][..BLOCK];
            let weights = &panel.values[block * BLOCK * NR..][..BLOCK * NR];
            let mut dots = [0i32; NR];
            for (group, x) in weights
                .chunks_exact(NR * GROUP)
                .zip(activations.chunks(GROUP))
            {
                for (dot, w) in dots.iter_mut().zip(group.chunks_exact(GROUP)) {
                    *dot += (w.iter().zip(x))
                        .map(|(&w, &x)| w as i32 * x as i32)
                        .sum::<i32>();
                }
            }
            let scales = &panel.scales[block * NR..][..NR];
            for ((v, dot), w_scale) in out.iter_mut().zip(dots).zip(scales) {
                *v += (dot - a.offsets[at]) as f32 * (a.scales[at] * w_scale);
            }
        }
    }
}

/// [`microkernel`] in AVX2/FMA registers: `vpmaddubsw` into 16-bit block sums.
///
/// # Safety
/// As for [`microkernel`], on a CPU with AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn microkernel_avx2<const ROWS: usize>(
    a: &QuantizedRows,
    row0: usize,
    panel: Panel,
    tile: &mut [[f32; NR]; MR],
) {
    // SAFETY: the caller's contract is the body's; the CPU has AVX2 and FMA, all it uses when
    // `VNNI` is false.
    unsafe { microkernel_256::<ROWS, false>(a, row0, panel, tile) }
}

/// [`microkernel`] in AVX2/FMA registers with AVX-VNNI's `vpdpbusd`.
///
/// # Safety
/// As for [`microkernel`], on a CPU with AVX2, FMA and AVX-VNNI.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avxvnni")]
unsafe fn microkernel_avx_vnni<const ROWS: usize>(
    a: &QuantizedRows,
    row0: usize,
    panel: Panel,
    tile: &mut [[f32; NR]; MR],
) {
    // SAFETY: the caller's contract is the body's, and the CPU has everything it uses.
    unsafe { microkernel_256::<ROWS, true>(a, row0, panel, tile) }
}

/// The body of the two 256-bit kernels, inlined into each so that its intrinsics compile for
/// the caller's features. Each 32-bit lane sums a column's 4 products of a group: with `VNNI`
/// by one `vpdpbusd` into 32-bit block sums; without, `vpmaddubsw` adds pairs into exact 16-bit
/// block sums (see the module documentation), widened once per block.
///
/// # Safety
/// As for [`microkernel`], on a CPU with AVX2 and FMA, and AVX-VNNI if `VNNI`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn microkernel_256<const ROWS: usize, const VNNI: bool>(
    a: &QuantizedRows,
    row0: usize,
    panel: Panel,
    tile: &mut [[f32; NR]; MR],
) {
    // SAFETY: rows `row0 .. row0 + ROWS` of `a` exist with the panel's `k` (the caller's contract),
    // so each row pointer is valid for `k` reads, 4 at a time at multiples of GROUP, and
    // `at` indexes their blocks' scales and offsets; the panel holds `k` rows of NR bytes
    // (two 32-byte loads per row of GROUP) and `k / BLOCK` rows of NR scales; every row
    // of `tile` holds 16 values, the two stores' width.
    unsafe {
        use std::arch::x86_64::*;
        let k = a.k;
        let blocks = k / BLOCK;
        let ones = _mm256_set1_epi16(1);
        let mut acc = [[_mm256_setzero_ps(); 2]; ROWS];
        let w = panel.values.as_ptr();
        let x: [*const i8; ROWS] = std::array::from_fn(|r| a.values.as_ptr().add((row0 + r) * k));
        let mut sums = [[_mm256_setzero_si256(); 2]; ROWS];
        // One loop over all of `k` rather than a loop of 8 per block: LLVM unrolls a constant 8
        // completely and then regroups the body row by row, holding all 16 weight registers of a block
        // and spilling them (measured 1.5× slower).
        for group in 0..k / GROUP {
            let kk = group * GROUP;
            let w0 = _mm256_loadu_si256(w.add(kk * NR) as *const __m256i);
            let w1 = _mm256_loadu_si256(w.add(kk * NR + 32) as *const __m256i);
            for r in 0..ROWS {
                let x4 = _mm256_set1_epi32((x[r].add(kk) as *const i32).read_unaligned());
                if VNNI {
                    sums[r][0] = _mm256_dpbusd_avx_epi32(sums[r][0], w0, x4);
                    sums[r][1] = _mm256_dpbusd_avx_epi32(sums[r][1], w1, x4);
                } else {
                    sums[r][0] = _mm256_add_epi16(sums[r][0], _mm256_maddubs_epi16(w0, x4));
                    sums[r][1] = _mm256_add_epi16(sums[r][1], _mm256_maddubs_epi16(w1, x4));
                }
            }
            if (kk + GROUP).is_multiple_of(BLOCK) {
                let block = kk / BLOCK;
                let w_scales = panel.scales.as_ptr().add(block * NR);
                let w_scales = [_mm256_loadu_ps(w_scales), _mm256_loadu_ps(w_scales.add(8))];
                for r in 0..ROWS {
                    let at = (row0 + r) * blocks + block;
                    let offset = _mm256_set1_epi32(*a.offsets.get_unchecked(at));
                    let x_scale = _mm256_set1_ps(*a.scales.get_unchecked(at));
                    for c in 0..2 {
                        let sum = if VNNI {
                            sums[r][c]
                        } else {
                            _mm256_madd_epi16(sums[r][c], ones)
                        };
                        let dot = _mm256_sub_epi32(sum, offset);
                        let scale = _mm256_mul_ps(x_scale, w_scales[c]);
                        acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), scale, acc[r][c]);
                        sums[r][c] = _mm256_setzero_si256();
                    }
                }
            }
        }
        for r in 0..ROWS {
            _mm256_storeu_ps(tile[r].as_mut_ptr(), acc[r][0]);
            _mm256_storeu_ps(tile[r].as_mut_ptr().add(8), acc[r][1]);
        }
    }
}

/// [`microkernel`] in AVX-512 registers: a group of the panel (16 columns × 4 bytes) is one
/// register, and one `vpdpbusd` adds its 64 products for a row into 32-bit block sums.
///
/// # Safety
/// As for [`microkernel`], on a CPU with AVX-512 F/BW/VL and VNNI.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
unsafe fn microkernel_avx512_vnni<const ROWS: usize>(
    a: &QuantizedRows,
    row0: usize,
    panel: Panel,
    tile: &mut [[f32; NR]; MR],
) {
    // SAFETY: as for `microkernel_256`: rows `row0 .. row0 + ROWS` of `a` exist with the panel's
    // `k`, the panel holds `k / GROUP` groups of 64 bytes (one load each) and `k / BLOCK` rows
    // of NR scales (one load each), and every row of `tile` holds 16 values, the store's width.
    unsafe {
        use std::arch::x86_64::*;
        let k = a.k;
        let blocks = k / BLOCK;
        let mut acc = [_mm512_setzero_ps(); ROWS];
        let w = panel.values.as_ptr();
        let x: [*const i8; ROWS] = std::array::from_fn(|r| a.values.as_ptr().add((row0 + r) * k));
        let mut sums = [_mm512_setzero_si512(); ROWS];
        // One loop over all of `k`, as in the 256-bit kernels.
        for group in 0..k / GROUP {
            let kk = group * GROUP;
            let w4 = _mm512_loadu_si512(w.add(kk * NR) as *const __m512i);
            for r in 0..ROWS {
                let x4 = _mm512_set1_epi32((x[r].add(kk) as *const i32).read_unaligned());
                sums[r] = _mm512_dpbusd_epi32(sums[r], w4, x4);
            }
            if (kk + GROUP).is_multiple_of(BLOCK) {
                let block = kk / BLOCK;
                let w_scales = _mm512_loadu_ps(panel.scales.as_ptr().add(block * NR));
                for r in 0..ROWS {
                    let at = (row0 + r) * blocks + block;
                    let offset = _mm512_set1_epi32(*a.offsets.get_unchecked(at));
                    let scale =
                        _mm512_mul_ps(_mm512_set1_ps(*a.scales.get_unchecked(at)), w_scales);
                    let dot = _mm512_cvtepi32_ps(_mm512_sub_epi32(sums[r], offset));
                    acc[r] = _mm512_fmadd_ps(dot, scale, acc[r]);
                    sums[r] = _mm512_setzero_si512();
                }
            }
        }
        for r in 0..ROWS {
            _mm512_storeu_ps(tile[r].as_mut_ptr(), acc[r]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Activations with an outlier column, as BERT's have, and values of both signs.
    fn activations(m: usize, k: usize) -> Vec<f32> {
        (0..m * k)
            .map(|i| {
                let v = ((i as u32).wrapping_mul(2_654_435_761) % 2001) as f32 / 1000.0 - 1.0;
                if i % k == 5 {
                    v * 40.0
                } else {
                    v
                }
            })
            .collect()
    }

    fn weight_int(kk: usize, col: usize) -> i32 {
        ((kk * 7 + col * 13) % 17) as i32 - 8
    }

    fn weight_scale(block: usize, col: usize) -> f32 {
        0.01 + (block * 3 + col) as f32 * 1e-3
    }

    #[test]
    fn quantized_values_are_within_half_a_step_and_paths_agree() {
        let (m, k) = (3, 96);
        let mut a = activations(m, k);
        a[32..64].fill(0.0); // an all-zero block
        let mut q = QuantizedRows::default();
        q.quantize(&a, m, k);
        for (i, (&x, y)) in a.iter().zip(q.dequantized()).enumerate() {
            let step = q.scales[i / BLOCK];
            assert!((x - y).abs() <= step * 0.5 + 1e-6, "{i}: {x} vs {y}");
        }
        assert!(q.values.iter().all(|&v| v != i8::MIN));
        let expected_offset: i32 = q.values[..BLOCK].iter().map(|&v| v as i32).sum();
        assert_eq!(q.offsets[0], WEIGHT_OFFSET * expected_offset);

        let (mut values, mut scales, mut offsets) = (vec![0; k], vec![0.0; 3], vec![0; 3]);
        quantize_row_portable(&a[k..2 * k], &mut values, &mut scales, &mut offsets);
        assert_eq!(values, q.values[k..2 * k]);
        assert_eq!(scales, q.scales[3..6]);
        assert_eq!(offsets, q.offsets[3..6]);
    }

    /// Every tile height, ragged `n`, through the kernels of every level the CPU runs, against
    /// the f32 product of the dequantized activations and the weights.
    #[test]
    fn microkernels_match_the_dequantized_product() {
        let (m, k, n) = (7, 96, 21);
        let a = activations(m, k);
        let mut q = QuantizedRows::default();
        q.quantize(&a, m, k);
        let x = q.dequantized();
        let b = BlockPanels::pack(k, n, weight_int, weight_scale);
        let weight =
            |kk: usize, col: usize| weight_int(kk, col) as f32 * weight_scale(kk / 32, col);
        crate::cpu::for_each_supported_level(|level| {
            for p in 0..n.div_ceil(NR) {
                for (row0, rows) in [(0, 6), (1, 5), (3, 4), (4, 3), (1, 2), (6, 1)] {
                    let mut tile = [[f32::NAN; NR]; MR];
                    // SAFETY: rows `row0 .. row0 + rows` are among the `m` rows quantized, and
                    // the CPU supports `level`.
                    unsafe { microkernel_at(level, rows, &q, row0, b.panel(p), &mut tile) };
                    for (r, tile_row) in tile.iter().enumerate().take(rows) {
                        for (j, &got) in tile_row.iter().enumerate().take(n - p * NR) {
                            let col = p * NR + j;
                            let want: f32 = (0..k)
                                .map(|kk| x[(row0 + r) * k + kk] * weight(kk, col))
                                .sum();
                            assert!(
                                (got - want).abs() < 1e-4,
                                "{level:?}: row {}, col {col}: {got} vs {want}",
                                row0 + r
                            );
                        }
                    }
                }
            }
        });
    }

    /// The worst case for the 16-bit block sums: every weight +8 (stored 16) against activations
    /// of ±127; a wrapped sum would be off by 65,536 × scale.
    #[test]
    fn extreme_blocks_do_not_overflow() {
        let (k, n) = (64, 16);
        let halves = BlockPanels::pack(k, n, |kk, _| if kk < 32 { 8 } else { -8 }, |_, _| 1.0);
        let all_high = BlockPanels::pack(k, n, |_, _| 8, |_, _| 1.0);
        crate::cpu::for_each_supported_level(|level| {
            for sign in [1.0, -1.0] {
                let mut q = QuantizedRows::default();
                q.quantize(&vec![sign; k], 1, k);
                let mut tile = [[0f32; NR]; MR];
                // SAFETY: row 0 is the one row quantized, with the panel's `k`, and the CPU
                // supports `level`.
                unsafe { microkernel_at(level, 1, &q, 0, halves.panel(0), &mut tile) };
                // 32 × 8 × ±1 + 32 × -8 × ±1 = 0, each half exact.
                assert!(
                    tile[0].iter().all(|&v| v.abs() < 1e-3),
                    "{level:?}: {:?}",
                    tile[0]
                );
            }
            let mut q = QuantizedRows::default();
            q.quantize(&vec![-1.0; k], 1, k);
            let mut tile = [[0f32; NR]; MR];
            // SAFETY: as above.
            unsafe { microkernel_at(level, 1, &q, 0, all_high.panel(0), &mut tile) };
            assert!(
                tile[0].iter().all(|&v| (v + 512.0).abs() < 1e-3),
                "{level:?}: {:?}",
                tile[0]
            );
        });
    }
}
