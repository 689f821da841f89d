//! Keeping the best `k` of many scored rows without sorting them all.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// A scored passage of an index snapshot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// Where the passage is in the snapshot that found it (see [`Slot`](super::Slot)).
    pub slot: usize,
    /// How well it matches: a cosine for vector search, a normalised BM25 for lexical, or their
    /// blend.
    pub score: f32,
}

/// Orders hits best first: higher score, then lower slot (so equal scores rank
/// deterministically).
pub fn best_first(a: &Hit, b: &Hit) -> Ordering {
    b.score.total_cmp(&a.score).then(a.slot.cmp(&b.slot))
}

/// Heap entry whose maximum is the *worst* kept hit, so it is the one evicted.
struct Worst(Hit);

impl PartialEq for Worst {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Worst {}
impl PartialOrd for Worst {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Worst {
    fn cmp(&self, other: &Self) -> Ordering {
        best_first(&self.0, &other.0)
    }
}

/// Keeps the `k` best hits seen.
pub(crate) struct TopK {
    k: usize,
    heap: BinaryHeap<Worst>,
}

impl TopK {
    pub(crate) fn new(k: usize) -> Self {
        Self {
            k,
            heap: BinaryHeap::with_capacity(k + 1),
        }
    }

    pub(crate) fn offer(&mut self, hit: Hit) {
        if self.heap.len() < self.k {
            self.heap.push(Worst(hit));
        } else if let Some(mut worst) = self.heap.peek_mut() {
            if best_first(&hit, &worst.0) == Ordering::Less {
                *worst = Worst(hit);
            }
        }
    }

    pub(crate) fn merge(mut self, other: Self) -> Self {
        for Worst(hit) in other.heap {
            self.offer(hit);
        }
        self
    }

    pub(crate) fn into_sorted(self) -> Vec<Hit> {
        let mut hits: Vec<Hit> = self.heap.into_iter().map(|Worst(hit)| hit).collect();
        hits.sort_by(best_first);
        hits
    }
}
