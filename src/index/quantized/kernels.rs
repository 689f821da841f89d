//! Integer dot products of one int8 query with many int8 rows, one function per [`Level`].
//!
//! Codes are symmetric, in `-127..=127` (never −128), so every level returns the exact same
//! integer: the levels differ in speed only, and tests compare each with the portable one.
//!
//! `vpdpbusd` (the VNNI levels) multiplies an unsigned byte by a signed one, so the row's codes
//! are flipped to `code + 128` on load (one XOR) and `128 × Σ query` is taken off the sum once.
//! AVX2's `vpmaddubsw` is also unsigned × signed but adds pairs with 16-bit saturation, which
//! `255 × 127 × 2` would overflow, so it multiplies `|query|` by the row's code carrying the
//! query's sign instead (at most `2 × 127²`, which fits).

use crate::cpu::Level;

/// `out[i]` = the dot product of `query` with row `rows[i]` of `codes` (rows of `query.len()`
/// codes, one after another), computed by `level`'s kernel.
///
/// Panics when this CPU lacks `level`, or a row is outside `codes`.
pub(super) fn dots(level: Level, query: &[i8], codes: &[i8], rows: &[u32], out: &mut [i32]) {
    assert!(level.is_supported(), "{} kernels on this CPU", level.name());
    assert_eq!(rows.len(), out.len(), "one output per row");
    let dimensions = query.len();
    let last = rows.iter().map(|&row| row as usize + 1).max().unwrap_or(0);
    assert!(last * dimensions <= codes.len(), "row outside the codes");
    match level {
        Level::Portable => {
            for (out, &row) in out.iter_mut().zip(rows) {
                *out = dot(query, &codes[row as usize * dimensions..][..dimensions]);
            }
        }
        // SAFETY: for each kernel below, the level is supported and every row lies within
        // `codes` (both asserted above), which is all it requires.
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => unsafe { dots_avx2(query, codes, rows, out) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Level::AvxVnni => unsafe { dots_avx_vnni(query, codes, rows, out) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Level::Avx512Vnni => unsafe { dots_avx512_vnni(query, codes, rows, out) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!("only the portable level is supported off x86_64"),
    }
}

/// The reference, and every kernel's tail past its last full register.
fn dot(a: &[i8], b: &[i8]) -> i32 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| i32::from(x) * i32::from(y))
        .sum()
}

/// `128 × Σ query[..body]`: what flipping the row's codes to unsigned adds to a VNNI sum.
fn flip_correction(query: &[i8], body: usize) -> i32 {
    128 * query[..body].iter().map(|&q| i32::from(q)).sum::<i32>()
}

/// Where the rows of one group of up to [`GROUP`] start in the codes; a short group repeats its
/// last row, whose extra results are not written.
fn group_starts(rows: &[u32], dimensions: usize) -> [usize; GROUP] {
    std::array::from_fn(|j| rows[j.min(rows.len() - 1)] as usize * dimensions)
}

/// Rows scored together: each load of the query serves four rows, and the four independent sums
/// keep the multiply-add unit busy while loads are waited for.
const GROUP: usize = 4;

/// # Safety
/// The CPU must have AVX2; every row in `rows` must lie within `codes` (rows of `query.len()`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dots_avx2(query: &[i8], codes: &[i8], rows: &[u32], out: &mut [i32]) {
    use std::arch::x86_64::*;
    let dimensions = query.len();
    let body = dimensions / 32 * 32;
    let ones = _mm256_set1_epi16(1);
    for (out, rows) in out.chunks_mut(GROUP).zip(rows.chunks(GROUP)) {
        let starts = group_starts(rows, dimensions);
        let mut sums = [_mm256_setzero_si256(); GROUP];
        for i in (0..body).step_by(32) {
            // SAFETY: `i + 32 ≤ body ≤ dimensions`.
            let q = unsafe { _mm256_loadu_si256(query.as_ptr().add(i).cast()) };
            let magnitudes = _mm256_abs_epi8(q);
            for (sum, &start) in sums.iter_mut().zip(&starts) {
                // SAFETY: as for `q`, and the row lies within `codes`.
                let c = unsafe { _mm256_loadu_si256(codes.as_ptr().add(start + i).cast()) };
                prefetch(codes, start + i);
                let pairs = _mm256_maddubs_epi16(magnitudes, _mm256_sign_epi8(c, q));
                *sum = _mm256_add_epi32(*sum, _mm256_madd_epi16(pairs, ones));
            }
        }
        for ((out, sum), start) in out.iter_mut().zip(sums).zip(starts) {
            let tail = &codes[start + body..start + dimensions];
            *out = sum_lanes_256(sum) + dot(&query[body..], tail);
        }
    }
}

/// # Safety
/// The CPU must have AVX-VNNI; every row in `rows` must lie within `codes` (rows of
/// `query.len()`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,avxvnni")]
unsafe fn dots_avx_vnni(query: &[i8], codes: &[i8], rows: &[u32], out: &mut [i32]) {
    use std::arch::x86_64::*;
    let dimensions = query.len();
    let body = dimensions / 32 * 32;
    let correction = flip_correction(query, body);
    let flip = _mm256_set1_epi8(i8::MIN);
    for (out, rows) in out.chunks_mut(GROUP).zip(rows.chunks(GROUP)) {
        let starts = group_starts(rows, dimensions);
        let mut sums = [_mm256_setzero_si256(); GROUP];
        for i in (0..body).step_by(32) {
            // SAFETY: `i + 32 ≤ body ≤ dimensions`.
            let q = unsafe { _mm256_loadu_si256(query.as_ptr().add(i).cast()) };
            for (sum, &start) in sums.iter_mut().zip(&starts) {
                // SAFETY: as for `q`, and the row lies within `codes`.
                let c = unsafe { _mm256_loadu_si256(codes.as_ptr().add(start + i).cast()) };
                prefetch(codes, start + i);
                *sum = _mm256_dpbusd_avx_epi32(*sum, _mm256_xor_si256(c, flip), q);
            }
        }
        for ((out, sum), start) in out.iter_mut().zip(sums).zip(starts) {
            let tail = &codes[start + body..start + dimensions];
            *out = sum_lanes_256(sum) - correction + dot(&query[body..], tail);
        }
    }
}

/// # Safety
/// The CPU must have AVX-512 F/BW and VNNI; every row in `rows` must lie within `codes` (rows
/// of `query.len()`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn dots_avx512_vnni(query: &[i8], codes: &[i8], rows: &[u32], out: &mut [i32]) {
    use std::arch::x86_64::*;
    let dimensions = query.len();
    let body = dimensions / 64 * 64;
    let correction = flip_correction(query, body);
    let flip = _mm512_set1_epi8(i8::MIN);
    for (out, rows) in out.chunks_mut(GROUP).zip(rows.chunks(GROUP)) {
        let starts = group_starts(rows, dimensions);
        let mut sums = [_mm512_setzero_si512(); GROUP];
        for i in (0..body).step_by(64) {
            // SAFETY: `i + 64 ≤ body ≤ dimensions`.
            let q = unsafe { _mm512_loadu_si512(query.as_ptr().add(i).cast()) };
            for (sum, &start) in sums.iter_mut().zip(&starts) {
                // SAFETY: as for `q`, and the row lies within `codes`.
                let c = unsafe { _mm512_loadu_si512(codes.as_ptr().add(start + i).cast()) };
                prefetch(codes, start + i);
                *sum = _mm512_dpbusd_epi32(*sum, _mm512_xor_si512(c, flip), q);
            }
        }
        for ((out, sum), start) in out.iter_mut().zip(sums).zip(starts) {
            let tail = &codes[start + body..start + dimensions];
            *out = _mm512_reduce_add_epi32(sum) - correction + dot(&query[body..], tail);
        }
    }
}

/// How far ahead of the row being scored its successors are fetched into cache. Without it the
/// scan ran at 16 GB/s on one core against 37 GB/s for the f32 scan, stalled on loads: the
/// hardware prefetcher does not run far enough ahead of a kernel that consumes a cache line
/// every few instructions. 4 KiB (about ten rows) measured best of 1 to 16 KiB.
const PREFETCH_BYTES: usize = 4096;

/// Asks for the cache line [`PREFETCH_BYTES`] past `codes[at]` (harmless past the end: a
/// prefetch never faults, and the address is only computed, never dereferenced).
#[cfg(target_arch = "x86_64")]
#[inline]
fn prefetch(codes: &[i8], at: usize) {
    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
    // SAFETY: prefetching reads nothing the program can observe and cannot fault.
    unsafe { _mm_prefetch::<_MM_HINT_T0>(codes.as_ptr().wrapping_add(at + PREFETCH_BYTES).cast()) };
}

/// The sum of the eight 32-bit lanes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn sum_lanes_256(v: std::arch::x86_64::__m256i) -> i32 {
    use std::arch::x86_64::*;
    let halves = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    let pairs = _mm_add_epi32(halves, _mm_unpackhi_epi64(halves, halves));
    let one = _mm_add_epi32(pairs, _mm_shuffle_epi32(pairs, 0b01));
    _mm_cvtsi128_si32(one)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::for_each_supported_level;

    /// Codes over the whole range, extremes included, in a pattern that differs per row.
    fn codes(rows: usize, dimensions: usize, seed: u32) -> Vec<i8> {
        (0..rows * dimensions)
            .map(|i| {
                let x = (i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 7;
                ((x % 255) as i32 - 127) as i8
            })
            .collect()
    }

    #[test]
    fn every_level_computes_the_exact_integer_dot_products() {
        for dimensions in [1, 7, 31, 32, 33, 64, 100, 384, 391] {
            let rows = 9;
            let table = codes(rows, dimensions, 17);
            let mut query = codes(1, dimensions, 3);
            // Extreme products, which would saturate a 16-bit pair sum of unsigned codes.
            query[0] = 127;
            let mut extreme = table.clone();
            extreme[..dimensions].fill(-127);
            let order: Vec<u32> = vec![8, 0, 3, 3, 7, 1, 2, 4, 5, 6];
            let expected: Vec<i32> = order
                .iter()
                .map(|&row| dot(&query, &extreme[row as usize * dimensions..][..dimensions]))
                .collect();
            for_each_supported_level(|level| {
                let mut out = vec![0; order.len()];
                dots(level, &query, &extreme, &order, &mut out);
                assert_eq!(out, expected, "{} at {dimensions} dimensions", level.name());
            });
        }
    }

    #[test]
    fn all_extremes_do_not_saturate() {
        let dimensions = 384;
        let query = vec![127i8; dimensions];
        let table: Vec<i8> = [vec![127i8; dimensions], vec![-127i8; dimensions]].concat();
        let full = 127 * 127 * dimensions as i32;
        for_each_supported_level(|level| {
            let mut out = [0; 2];
            dots(level, &query, &table, &[0, 1], &mut out);
            assert_eq!(out, [full, -full], "{}", level.name());
        });
    }

    #[test]
    #[should_panic(expected = "row outside the codes")]
    fn rows_outside_the_codes_are_refused() {
        dots(Level::Portable, &[1, 2], &[1, 2, 3, 4], &[2], &mut [0]);
    }
}
