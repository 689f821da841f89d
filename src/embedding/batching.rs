//! Groups inputs into batches under a token budget, longest first, so padding wastes little work.
//!
//! The reference backends pad a batch to its longest member, so its cost is `members × longest`.
//! Sorting by length puts inputs of similar length together; the budget caps that product so a
//! batch of long passages stays small while short queries share one forward pass. wenda's own
//! encoder takes the batch as a [`PackedBatch`] and never computes padding.

use std::ops::Range;

/// Limits on one forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Most padded tokens (`members × longest`) in one batch.
    pub token_budget: usize,
    /// Most inputs in one batch.
    pub max_inputs: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        // Measured on CMRC contexts: larger batches give the GEMM taller matrices (1,387 tokens/s
        // at 1,024, 1,455 at 4,096, 1,549 at 16,384); 16k tokens of activations is ~100 MB.
        Self {
            token_budget: 16_384,
            max_inputs: 128,
        }
    }
}

/// Splits input indices into batches: each batch lists indices into `lengths`, longest first, and
/// every index appears in exactly one batch. An input longer than the budget gets a batch alone.
pub fn plan_batches(lengths: &[usize], limits: BatchLimits) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by(|&a, &b| lengths[b].cmp(&lengths[a]));
    let mut batches: Vec<Vec<usize>> = Vec::new();
    for index in order {
        let fits = batches.last().is_some_and(|batch| {
            // Sorted descending: the batch's first member is its longest.
            let longest = lengths[batch[0]].max(1);
            batch.len() < limits.max_inputs && (batch.len() + 1) * longest <= limits.token_budget
        });
        match batches.last_mut() {
            Some(batch) if fits => batch.push(index),
            _ => batches.push(vec![index]),
        }
    }
    batches
}

/// Token sequences packed back to back without padding, with each sequence's range in the
/// packed ids (what text-embeddings-inference passes as `cu_seqlens`): the native encoder works
/// on the packed rows, and attention stays within each range.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackedBatch {
    ids: Vec<u32>,
    sequences: Vec<Range<usize>>,
}

impl PackedBatch {
    /// Packs `sequences` in order.
    pub fn new<'a>(sequences: impl IntoIterator<Item = &'a [u32]>) -> Self {
        let mut batch = Self::default();
        for ids in sequences {
            let start = batch.ids.len();
            batch.ids.extend_from_slice(ids);
            batch.sequences.push(start..batch.ids.len());
        }
        batch
    }

    /// Every token id, sequence after sequence.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// Each sequence's range in [`ids`](Self::ids), in order.
    pub fn sequences(&self) -> &[Range<usize>] {
        &self.sequences
    }

    /// The ids of sequence `index`.
    pub fn sequence(&self, index: usize) -> &[u32] {
        &self.ids[self.sequences[index].clone()]
    }

    /// The length of the longest sequence (0 for an empty batch).
    pub fn longest(&self) -> usize {
        self.sequences.iter().map(|s| s.len()).max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_input_lands_in_exactly_one_batch_within_budget() {
        let lengths = [12, 512, 7, 300, 300, 40, 3, 511, 90, 90, 90];
        let limits = BatchLimits {
            token_budget: 1024,
            max_inputs: 4,
        };
        let batches = plan_batches(&lengths, limits);
        let mut seen: Vec<usize> = batches.iter().flatten().copied().collect();
        seen.sort();
        assert_eq!(seen, (0..lengths.len()).collect::<Vec<_>>());
        for batch in &batches {
            let longest = batch.iter().map(|&i| lengths[i]).max().unwrap();
            assert!(batch.len() <= limits.max_inputs);
            assert!(batch.len() == 1 || batch.len() * longest <= limits.token_budget);
            assert_eq!(lengths[batch[0]], longest, "longest first");
        }
        // 512 and 511 fit together exactly at 1024.
        assert_eq!(batches[0], vec![1, 7]);
    }

    #[test]
    fn packed_sequences_keep_their_ids_and_order() {
        let batch = PackedBatch::new([&[0u32, 5, 2][..], &[][..], &[0, 2][..]]);
        assert_eq!(batch.ids(), [0, 5, 2, 0, 2]);
        assert_eq!(batch.sequences(), [0..3, 3..3, 3..5]);
        assert_eq!(batch.sequence(2), [0, 2]);
        assert_eq!(batch.longest(), 3);
        assert_eq!(PackedBatch::default().longest(), 0);
    }

    #[test]
    fn oversized_input_gets_its_own_batch_and_empty_input_no_batch() {
        let limits = BatchLimits {
            token_budget: 10,
            max_inputs: 8,
        };
        assert_eq!(plan_batches(&[50, 2], limits), vec![vec![0], vec![1]]);
        assert!(plan_batches(&[], limits).is_empty());
    }
}
