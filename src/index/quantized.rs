//! Dense vectors held as int8 codes, searched with an integer scan whose best candidates are
//! re-scored (the fast path of large segments).
//!
//! Each normalised row is stored as one code per dimension in `-127..=127`, one f32 scale (its
//! largest magnitude / 127) and a 4-bit code per dimension of what the first code's rounding
//! left (in fourteenths of a step): 580 bytes a row at 384 dimensions, against 1,536 as f32. A
//! search quantises the query to int8 the same way, ranks every admitted row by `scale ×
//! (integer dot product)` (the query's own scale is common to all rows, so it is left out),
//! keeps the best [`CANDIDATES_PER_RESULT`] × `k`, and re-scores those with the f32 query
//! against the rows' values decoded from both codes. This is Qdrant's scalar quantisation with
//! re-scoring, except that Qdrant re-scores from the original vectors on disk.
//!
//! Why the second code: re-scoring from the int8 codes alone leaves each cosine off by about
//! 3·10⁻⁴, more than the 10th and 11th nearest of a million clustered rows differ by, and
//! recall@10 was 0.968 there (measured with `wenda-bench index`). With the 4-bit remainder
//! the error is about 2·10⁻⁵ and recall@10 0.998 (what remains are near-ties). The re-scored
//! cosine is what [`QuantizedVectors::cosine`] returns for any row, so hybrid ranking's
//! re-scoring agrees with the search's scores.
//!
//! The scan reads only the int8 codes, a quarter of the bytes an f32 scan reads, and the
//! integer products run on `vpdpbusd` where the CPU has VNNI ([`kernels`]); the remainders are
//! read for the candidates alone.

mod kernels;

use super::topk::{Hit, TopK};
use super::vector::{dot_product_kernel, normalised, scan_shards};
use super::IndexError;
use crate::cpu::Level;

/// Candidates the integer scan keeps for each result wanted, re-scored to pick the results.
/// Measured with `wenda-bench index --oversample 1,2,4,8`: at a million rows recall@10 was 0.962
/// with 1, and 0.998 (all that re-scoring allows) from 2 on; 4 leaves a margin for data less
/// kind than the benchmark's, and re-scoring 40 rows costs microseconds.
pub const CANDIDATES_PER_RESULT: usize = 4;

/// Rows whose admission is decided, and then scored, together: the filter is asked row by row,
/// the kernel runs over the admitted ones.
const BLOCK_ROWS: usize = 256;

/// Steps of a remainder code per int8 step: remainders lie within ±½ step, so ±7 covers them.
const REMAINDER_STEPS: f32 = 14.0;

/// Normalised vectors of one dimensionality as int8 codes, 4-bit remainders and a scale per row.
#[derive(Debug, Clone)]
pub struct QuantizedVectors {
    dimensions: usize,
    /// `dimensions` a row, what the scan reads.
    codes: Vec<i8>,
    /// `dimensions.div_ceil(2)` bytes a row: two remainders a byte, each stored plus 8.
    remainders: Vec<u8>,
    scales: Vec<f32>,
}

impl QuantizedVectors {
    /// Room for `rows` rows (see [`DenseVectors::with_capacity`](super::DenseVectors)).
    pub fn with_capacity(dimensions: usize, rows: usize) -> Self {
        Self {
            dimensions,
            codes: Vec::with_capacity(rows * dimensions),
            remainders: Vec::with_capacity(rows * dimensions.div_ceil(2)),
            scales: Vec::with_capacity(rows),
        }
    }

    pub fn len(&self) -> usize {
        self.scales.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scales.is_empty()
    }

    /// Bytes the codes, remainders and scales take.
    pub fn size_bytes(&self) -> usize {
        self.codes.len() + self.remainders.len() + std::mem::size_of_val(self.scales.as_slice())
    }

    /// Appends `vector`, normalised and quantised, and returns its row.
    pub fn push(&mut self, vector: &[f32]) -> Result<usize, IndexError> {
        let unit: Vec<f32> = normalised(vector, self.dimensions)?.collect();
        Ok(self.push_normalised(&unit))
    }

    /// Appends an already normalised vector (a row of an exact segment being merged).
    pub(crate) fn push_normalised(&mut self, unit: &[f32]) -> usize {
        assert_eq!(unit.len(), self.dimensions, "dimensions");
        let row = self.len();
        let first = self.codes.len();
        let scale = quantize(unit, &mut self.codes);
        let step = scale / REMAINDER_STEPS;
        let remainder = |(value, &code): (&f32, &i8)| {
            let left = value - f32::from(code) * scale;
            let steps = if step > 0.0 { left / step } else { 0.0 };
            (steps.round().clamp(-7.0, 7.0) as i8 + 8) as u8
        };
        let nibbles: Vec<u8> = unit
            .iter()
            .zip(&self.codes[first..])
            .map(remainder)
            .collect();
        self.remainders.extend(
            nibbles
                .chunks(2)
                .map(|pair| pair[0] | pair.get(1).map_or(0, |hi| hi << 4)),
        );
        self.scales.push(scale);
        row
    }

    /// Appends the rows of `other` that `keep` admits, codes as they are (no second rounding).
    pub(crate) fn extend_from(&mut self, other: &Self, keep: impl Fn(usize) -> bool) {
        assert_eq!(self.dimensions, other.dimensions, "dimensions");
        for row in (0..other.len()).filter(|&row| keep(row)) {
            self.codes.extend_from_slice(other.codes(row));
            self.remainders.extend_from_slice(other.remainders(row));
            self.scales.push(other.scales[row]);
        }
    }

    fn codes(&self, row: usize) -> &[i8] {
        &self.codes[row * self.dimensions..(row + 1) * self.dimensions]
    }

    fn remainders(&self, row: usize) -> &[u8] {
        let width = self.dimensions.div_ceil(2);
        &self.remainders[row * width..(row + 1) * width]
    }

    /// The vector `row` stands for, decoded from both codes (within about 10⁻⁴ of the
    /// normalised vector it was made from, value by value).
    pub fn vector(&self, row: usize) -> Vec<f32> {
        let step = self.scales[row] / REMAINDER_STEPS;
        let remainders = self
            .remainders(row)
            .iter()
            .flat_map(|&pair| [pair & 0xf, pair >> 4]);
        self.codes(row)
            .iter()
            .zip(remainders)
            .map(|(&code, nibble)| {
                let steps = i16::from(code) * REMAINDER_STEPS as i16 + i16::from(nibble) - 8;
                f32::from(steps) * step
            })
            .collect()
    }

    /// The cosine of `query` with row `row` as searches score it: with the decoded vector.
    pub fn cosine(&self, query: &[f32], row: usize) -> f32 {
        dot_product_kernel()(query, &self.vector(row))
    }

    /// The `k` rows most similar to `query` among those `accept` admits, best first, scored by
    /// [`cosine`](Self::cosine); the same contract as
    /// [`DenseVectors::nearest`](super::DenseVectors::nearest), with candidates found by the
    /// integer scan of this CPU's kernels.
    pub fn nearest(
        &self,
        query: &[f32],
        k: usize,
        accept: &(dyn Fn(usize) -> bool + Sync),
    ) -> Vec<Hit> {
        self.nearest_with(Level::detected(), query, k, CANDIDATES_PER_RESULT, accept)
    }

    /// [`nearest`](Self::nearest) keeping `per_result` candidates per result rather than
    /// [`CANDIDATES_PER_RESULT`] (`wenda-bench index` measures the recall each gives).
    pub fn nearest_oversampled(
        &self,
        query: &[f32],
        k: usize,
        per_result: usize,
        accept: &(dyn Fn(usize) -> bool + Sync),
    ) -> Vec<Hit> {
        self.nearest_with(Level::detected(), query, k, per_result, accept)
    }

    /// [`nearest`](Self::nearest) with the kernels of `level` (which this CPU must support).
    fn nearest_with(
        &self,
        level: Level,
        query: &[f32],
        k: usize,
        per_result: usize,
        accept: &(dyn Fn(usize) -> bool + Sync),
    ) -> Vec<Hit> {
        assert_eq!(query.len(), self.dimensions, "query dimensions");
        if k == 0 || self.is_empty() {
            return Vec::new();
        }
        let mut query_codes = Vec::with_capacity(self.dimensions);
        quantize(query, &mut query_codes);
        let wanted = k.saturating_mul(per_result.max(1));
        let candidates = scan_shards(self.len(), wanted, |rows| {
            let mut top = TopK::new(wanted);
            let mut admitted = Vec::with_capacity(BLOCK_ROWS);
            let mut dots = Vec::with_capacity(BLOCK_ROWS);
            for first in rows.clone().step_by(BLOCK_ROWS) {
                let block = first..rows.end.min(first + BLOCK_ROWS);
                admitted.clear();
                admitted.extend(block.filter(|&row| accept(row)).map(|row| row as u32));
                dots.resize(admitted.len(), 0);
                kernels::dots(level, &query_codes, &self.codes, &admitted, &mut dots);
                for (&row, &dot) in admitted.iter().zip(&dots) {
                    top.offer(Hit {
                        slot: row as usize,
                        score: self.scales[row as usize] * dot as f32,
                    });
                }
            }
            top
        });
        let mut top = TopK::new(k);
        for candidate in candidates.into_sorted() {
            top.offer(Hit {
                slot: candidate.slot,
                score: self.cosine(query, candidate.slot),
            });
        }
        top.into_sorted()
    }
}

/// Appends the codes of `values` to `codes` and returns their scale: symmetric, so that the
/// largest magnitude maps to ±127 and zero to 0 (−128 is never used, which the kernels rely on).
fn quantize(values: &[f32], codes: &mut Vec<i8>) -> f32 {
    let largest = values.iter().fold(0f32, |largest, v| largest.max(v.abs()));
    if largest == 0.0 {
        codes.extend(std::iter::repeat_n(0, values.len()));
        return 0.0;
    }
    let to_code = 127.0 / largest;
    codes.extend(
        values
            .iter()
            .map(|v| (v * to_code).round().clamp(-127.0, 127.0) as i8),
    );
    largest / 127.0
}

#[cfg(test)]
mod tests {
    use super::super::vector::tests::{brute_force, random_vectors};
    use super::super::vector::{dot, DenseVectors, PARALLEL_ROWS};
    use super::*;
    use crate::cpu::for_each_supported_level;

    /// The same rows exact and quantised.
    fn both(vectors: &[Vec<f32>]) -> (DenseVectors, QuantizedVectors) {
        let dimensions = vectors[0].len();
        let (mut exact, mut quantized) = (
            DenseVectors::with_capacity(dimensions, vectors.len()),
            QuantizedVectors::with_capacity(dimensions, vectors.len()),
        );
        for vector in vectors {
            exact.push(vector).unwrap();
            quantized.push(vector).unwrap();
        }
        (exact, quantized)
    }

    /// The share of the exact top `k` that `found` holds.
    fn recall(exact: &[Hit], found: &[Hit]) -> f64 {
        let hit = found
            .iter()
            .filter(|f| exact.iter().any(|e| e.slot == f.slot))
            .count();
        hit as f64 / exact.len() as f64
    }

    #[test]
    fn codes_round_to_the_nearest_step_of_the_largest_magnitude() {
        let mut codes = Vec::new();
        let scale = quantize(&[0.5, -0.25, 0.001, -0.5], &mut codes);
        assert_eq!(codes, [127, -64, 0, -127]);
        assert!((scale - 0.5 / 127.0).abs() < 1e-9);
        let mut index = QuantizedVectors::with_capacity(2, 0);
        index.push(&[3.0, 4.0]).unwrap();
        let decoded = index.vector(0);
        let within = 0.8 / 127.0 / REMAINDER_STEPS / 2.0 + 1e-7;
        assert!((decoded[0] - 0.6).abs() <= within, "{decoded:?}");
        assert!((decoded[1] - 0.8).abs() <= within, "{decoded:?}");
        index.push(&[0.0, 0.0]).unwrap();
        assert_eq!(index.vector(1), [0.0, 0.0], "a zero vector stays zero");
        // Two codes, one byte of two remainders, the scale.
        assert_eq!(index.size_bytes(), 2 * (2 + 1 + 4));
        assert_eq!(index.push(&[f32::NAN, 1.0]), Err(IndexError::NotFinite));
    }

    /// Every kernel level finds the same rows, scored as `cosine` scores them, and nearly all
    /// of the exact top k.
    #[test]
    fn nearest_matches_exact_search_at_every_level() {
        let vectors = random_vectors(3_000, 384, 5);
        let (exact, quantized) = both(&vectors);
        let queries = random_vectors(20, 384, 6);
        for_each_supported_level(|level| {
            let mut total = 0.0;
            for query in &queries {
                let query: Vec<f32> = normalised(query, 384).unwrap().collect();
                let found = quantized.nearest_with(level, &query, 10, 8, &|_| true);
                assert_eq!(
                    found,
                    quantized.nearest_with(Level::Portable, &query, 10, 8, &|_| true),
                    "{} agrees with the portable kernel",
                    level.name()
                );
                for hit in &found {
                    assert_eq!(hit.score, quantized.cosine(&query, hit.slot));
                    assert!((hit.score - dot(&query, exact.vector(hit.slot))).abs() < 1e-4);
                }
                total += recall(&exact.nearest(&query, 10, &|_| true), &found);
            }
            // Uniform noise is the hard case (all cosines near 0); clustered data does better.
            let recall = total / queries.len() as f64;
            assert!(recall >= 0.95, "{}: recall@10 {recall}", level.name());
        });
    }

    #[test]
    fn filters_apply_before_ranking_in_parallel_shards() {
        let vectors = random_vectors(PARALLEL_ROWS * 2 + 301, 16, 11);
        let (exact, quantized) = both(&vectors);
        // In the second shard, and admitted.
        let own = PARALLEL_ROWS + 6;
        let query = exact.vector(own).to_vec();
        let accept = |row: usize| row % 3 == own % 3;
        let found = quantized.nearest(&query, 25, &accept);
        assert_eq!(found.len(), 25, "a filter must not thin the top k");
        assert!(found.iter().all(|hit| accept(hit.slot)));
        assert_eq!(found[0].slot, own, "the row itself is nearest");
        let reference = brute_force(
            exact.len(),
            |row| dot(&query, exact.vector(row)),
            25,
            &accept,
        );
        assert!(recall(&reference, &found) >= 0.9);
        let none = quantized.nearest(&query, 5, &|_| false);
        assert!(none.is_empty());
    }

    #[test]
    fn merged_rows_keep_their_codes() {
        let vectors = random_vectors(50, 8, 2);
        let (_, quantized) = both(&vectors);
        let mut merged = QuantizedVectors::with_capacity(8, 25);
        merged.extend_from(&quantized, |row| row % 2 == 0);
        assert_eq!(merged.len(), 25);
        assert_eq!(merged.vector(3), quantized.vector(6));
        assert_eq!(merged.size_bytes(), 25 * (8 + 4 + 4));
    }

    #[test]
    fn empty_index_and_zero_k_return_nothing() {
        let index = QuantizedVectors::with_capacity(4, 0);
        assert!(index.nearest(&[0.5; 4], 3, &|_| true).is_empty());
        let (_, index) = both(&random_vectors(10, 4, 1));
        assert!(index.nearest(&[0.5; 4], 0, &|_| true).is_empty());
    }
}
