//! Exact maximum-inner-product search over one contiguous matrix of vectors (the dense part of
//! an index segment).
//!
//! Rows are L2-normalised when added, so a dot product is a cosine similarity. A search scores
//! every row the caller's filter accepts (filtered rows are never scored, so a filter narrows the
//! candidates before ranking rather than thinning a top-k afterwards) and keeps the best `k` in
//! a bounded min-heap instead of sorting all scores. Indexes beyond [`PARALLEL_ROWS`] rows are
//! scanned in parallel shards whose heaps are merged.
//!
//! Exact search costs one pass over `rows × dimensions` floats per query: memory bandwidth, not
//! arithmetic, is the limit. `wenda-bench index` measures it on this machine.

use std::ops::Range;

use rayon::prelude::*;

use super::topk::{Hit, TopK};
use super::IndexError;

/// Rows from which a search is split into parallel shards of this many rows.
pub const PARALLEL_ROWS: usize = 16_384;

/// Normalised vectors of one dimensionality, stored row after row.
#[derive(Debug, Clone)]
pub struct DenseVectors {
    dimensions: usize,
    values: Vec<f32>,
}

impl DenseVectors {
    pub fn new(dimensions: usize) -> Self {
        Self::with_capacity(dimensions, 0)
    }

    /// Room for `rows` rows, so that filling it allocates once and exactly (a vector grown by
    /// doubling can hold up to twice the memory its rows need).
    pub fn with_capacity(dimensions: usize, rows: usize) -> Self {
        Self {
            dimensions,
            values: Vec::with_capacity(rows * dimensions),
        }
    }

    pub fn dimensions(&self) -> usize {
        self.dimensions
    }

    pub fn len(&self) -> usize {
        self.values.len() / self.dimensions.max(1)
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Bytes the vectors take.
    pub fn size_bytes(&self) -> usize {
        std::mem::size_of_val(self.values.as_slice())
    }

    /// Appends `vector`, normalised, and returns its row.
    pub fn push(&mut self, vector: &[f32]) -> Result<usize, IndexError> {
        let row = self.len();
        self.values.extend(normalised(vector, self.dimensions)?);
        Ok(row)
    }

    /// The stored (normalised) vector of `row`.
    pub fn vector(&self, row: usize) -> &[f32] {
        &self.values[row * self.dimensions..(row + 1) * self.dimensions]
    }

    /// The `k` rows most similar to `query` among those `accept` admits, best first.
    ///
    /// `query` should be normalised for scores to be cosines; its length must match the index.
    pub fn nearest(
        &self,
        query: &[f32],
        k: usize,
        accept: &(dyn Fn(usize) -> bool + Sync),
    ) -> Vec<Hit> {
        assert_eq!(query.len(), self.dimensions, "query dimensions");
        if k == 0 || self.is_empty() {
            return Vec::new();
        }
        let dot = dot_product_kernel();
        scan_shards(self.len(), k, |rows| {
            let mut top = TopK::new(k);
            for slot in rows.filter(|&slot| accept(slot)) {
                top.offer(Hit {
                    slot,
                    score: dot(query, self.vector(slot)),
                });
            }
            top
        })
        .into_sorted()
    }

    /// Appends the rows of `other` that `keep` admits (vectors are already normalised).
    pub(crate) fn extend_from(&mut self, other: &Self, keep: impl Fn(usize) -> bool) {
        assert_eq!(self.dimensions, other.dimensions, "dimensions");
        for row in (0..other.len()).filter(|&row| keep(row)) {
            self.values.extend_from_slice(other.vector(row));
        }
    }
}

/// `vector` scaled to unit length, once checked to have `dimensions` finite values.
pub(crate) fn normalised(
    vector: &[f32],
    dimensions: usize,
) -> Result<impl Iterator<Item = f32> + '_, IndexError> {
    if vector.len() != dimensions {
        return Err(IndexError::Dimensions {
            expected: dimensions,
            found: vector.len(),
        });
    }
    if !vector.iter().all(|v| v.is_finite()) {
        return Err(IndexError::NotFinite);
    }
    let norm = dot(vector, vector).sqrt();
    // A zero vector stays zero: it matches nothing rather than everything.
    let scale = if norm > 0.0 { 1.0 / norm } else { 0.0 };
    Ok(vector.iter().map(move |v| v * scale))
}

/// The best `k` of `rows` rows, as `scan` finds them in ranges of rows: one range below
/// [`PARALLEL_ROWS`], else shards of that many scanned in parallel and their best merged.
pub(crate) fn scan_shards(
    rows: usize,
    k: usize,
    scan: impl Fn(Range<usize>) -> TopK + Sync,
) -> TopK {
    if rows < PARALLEL_ROWS {
        return scan(0..rows);
    }
    (0..rows.div_ceil(PARALLEL_ROWS))
        .into_par_iter()
        .map(|shard| scan(shard * PARALLEL_ROWS..rows.min((shard + 1) * PARALLEL_ROWS)))
        .reduce(|| TopK::new(k), TopK::merge)
}

/// The fastest dot product this CPU runs: AVX2/FMA when available (checked once per search).
/// Scans and exact re-scoring use the same kernel, so a passage gets the same cosine either way.
pub(crate) fn dot_product_kernel() -> fn(&[f32], &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::has_avx2_fma() {
        // SAFETY: the CPU supports the features `dot_avx2` is compiled for.
        return |a, b| unsafe { dot_avx2(a, b) };
    }
    dot
}

/// Dot product with eight independent accumulators, so the compiler can keep them in vector
/// registers instead of serialising on one sum.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (a_body, a_tail) = a.split_at(a.len() / 8 * 8);
    let (b_body, b_tail) = b.split_at(a_body.len());
    for (x, y) in a_body.chunks_exact(8).zip(b_body.chunks_exact(8)) {
        for ((lane, x), y) in lanes.iter_mut().zip(x).zip(y) {
            *lane += x * y;
        }
    }
    let tail: f32 = a_tail.iter().zip(b_tail).map(|(x, y)| x * y).sum();
    lanes.iter().sum::<f32>() + tail
}

/// Dot product with four 8-lane FMA chains: enough independent work to hide FMA latency, so the
/// scan runs at memory speed.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: the loads read 8 values at `i + 8j` < `body` ≤ the length of both slices; the
    // store writes `lanes`' 8 values.
    unsafe {
        use std::arch::x86_64::*;
        let n = a.len().min(b.len());
        let body = n / 32 * 32;
        let mut sums = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i < body {
            for (j, sum) in sums.iter_mut().enumerate() {
                let x = _mm256_loadu_ps(a.as_ptr().add(i + 8 * j));
                let y = _mm256_loadu_ps(b.as_ptr().add(i + 8 * j));
                *sum = _mm256_fmadd_ps(x, y, *sum);
            }
            i += 32;
        }
        let sum = _mm256_add_ps(
            _mm256_add_ps(sums[0], sums[1]),
            _mm256_add_ps(sums[2], sums[3]),
        );
        let mut lanes = [0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), sum);
        lanes.iter().sum::<f32>() + dot(&a[body..n], &b[body..n])
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::topk::best_first;
    use super::*;

    /// `rows` vectors of uniform noise, the same for the same seed.
    pub(in crate::index) fn random_vectors(
        rows: usize,
        dimensions: usize,
        seed: u64,
    ) -> Vec<Vec<f32>> {
        let mut state = seed;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        };
        (0..rows)
            .map(|_| (0..dimensions).map(|_| next()).collect())
            .collect()
    }

    fn random_index(rows: usize, dimensions: usize, seed: u64) -> DenseVectors {
        let mut index = DenseVectors::new(dimensions);
        for vector in random_vectors(rows, dimensions, seed) {
            index.push(&vector).unwrap();
        }
        index
    }

    /// The reference: score every row `accept` admits, sort them all, keep `k`.
    pub(in crate::index) fn brute_force(
        rows: usize,
        score: impl Fn(usize) -> f32,
        k: usize,
        accept: &dyn Fn(usize) -> bool,
    ) -> Vec<Hit> {
        let mut hits: Vec<Hit> = (0..rows)
            .filter(|&row| accept(row))
            .map(|row| Hit {
                slot: row,
                score: score(row),
            })
            .collect();
        hits.sort_by(best_first);
        hits.truncate(k);
        hits
    }

    fn exact(
        index: &DenseVectors,
        query: &[f32],
        k: usize,
        accept: &dyn Fn(usize) -> bool,
    ) -> Vec<Hit> {
        brute_force(index.len(), |row| dot(query, index.vector(row)), k, accept)
    }

    #[test]
    fn rows_are_normalised() {
        let mut index = DenseVectors::new(2);
        index.push(&[3.0, 4.0]).unwrap();
        assert_eq!(index.vector(0), &[0.6, 0.8]);
        index.push(&[0.0, 0.0]).unwrap();
        assert_eq!(index.vector(1), &[0.0, 0.0]);
        assert_eq!(index.size_bytes(), 16);
    }

    #[test]
    fn rejects_wrong_dimensions_and_non_finite_values() {
        let mut index = DenseVectors::new(3);
        assert_eq!(
            index.push(&[1.0, 2.0]),
            Err(IndexError::Dimensions {
                expected: 3,
                found: 2
            })
        );
        assert_eq!(
            index.push(&[1.0, f32::NAN, 0.0]),
            Err(IndexError::NotFinite)
        );
        assert!(index.is_empty());
    }

    #[test]
    fn top_k_matches_a_full_sort() {
        let index = random_index(1_000, 24, 7);
        let query = index.vector(123).to_vec();
        for k in [1, 5, 37, 1_000, 5_000] {
            let found = index.nearest(&query, k, &|_| true);
            assert_eq!(found, exact(&index, &query, k, &|_| true), "k = {k}");
        }
        assert_eq!(index.nearest(&query, 1, &|_| true)[0].slot, 123);
    }

    #[test]
    fn filter_applies_before_ranking() {
        let index = random_index(500, 16, 3);
        let query = index.vector(10).to_vec();
        let odd = |row: usize| row % 2 == 1;
        let found = index.nearest(&query, 10, &odd);
        assert_eq!(found.len(), 10, "a filter must not thin the top k");
        assert!(found.iter().all(|hit| hit.slot % 2 == 1));
        assert_eq!(found, exact(&index, &query, 10, &odd));
    }

    #[test]
    fn parallel_shards_agree_with_a_full_sort() {
        let index = random_index(PARALLEL_ROWS * 2 + 301, 8, 11);
        let query = index.vector(PARALLEL_ROWS + 5).to_vec();
        let accept = |row: usize| !row.is_multiple_of(3);
        assert_eq!(
            index.nearest(&query, 25, &accept),
            exact(&index, &query, 25, &accept)
        );
    }

    #[test]
    fn empty_index_and_zero_k_return_nothing() {
        let index = DenseVectors::new(4);
        assert!(index.nearest(&[0.5; 4], 3, &|_| true).is_empty());
        let index = random_index(10, 4, 1);
        assert!(index.nearest(&[0.5; 4], 0, &|_| true).is_empty());
    }

    #[test]
    fn dot_products_handle_any_length() {
        let kernel = dot_product_kernel();
        for len in [0, 1, 7, 8, 19, 32, 63, 384, 391] {
            let a: Vec<f32> = (0..len).map(|i| (i % 7) as f32 - 3.0).collect();
            let b: Vec<f32> = (0..len).map(|i| (i % 5) as f32 * 0.5).collect();
            let expected: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert_eq!(dot(&a, &b), expected, "portable, {len}");
            assert_eq!(kernel(&a, &b), expected, "fastest, {len}");
        }
    }
}
