//! Multi-head self-attention over sequences packed back to back, without padding.
//!
//! A batch of texts of different lengths is stored as one `[tokens, 3 × hidden]` matrix of
//! projected queries, keys and values, with each sequence a range of rows. Every (sequence, head)
//! pair is an independent task: scores `Q·Kᵀ` over the sequence's own tokens only, a softmax per
//! row, then `P·V` written straight into the head's columns of the output. Padded positions are
//! never computed, so a batch costs what its real tokens cost and gives the same numbers as its
//! members one at a time.

use std::cell::RefCell;
use std::ops::Range;

use rayon::prelude::*;

use super::gemm::{matmul_strided, OutMatrix, PackedMatrix};
use super::vector_math::{fast_exp, lane_sum};
use crate::cpu::Level;

/// Shape of the attention: `heads × head_dim` is the hidden size.
#[derive(Debug, Clone, Copy)]
pub struct Heads {
    pub count: usize,
    pub dim: usize,
}

/// Buffers one attention task needs, kept per thread: a 512-token sequence needs a 1 MiB score
/// matrix per head, and a fresh allocation that size is new zeroed pages from the kernel each time.
#[derive(Default)]
struct Scratch {
    keys: PackedMatrix,
    values: PackedMatrix,
    scores: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// `out[tokens, hidden]` = attention of `qkv[tokens, 3 × hidden]` within each sequence of `seqs`:
/// `softmax(Q·Kᵀ / √head_dim) · V` per head.
pub fn attention(qkv: &[f32], seqs: &[Range<usize>], heads: Heads, out: &mut [f32]) {
    let hidden = heads.count * heads.dim;
    let tokens = seqs.last().map_or(0, |s| s.end);
    assert_eq!(
        qkv.len(),
        tokens * 3 * hidden,
        "qkv is not {tokens}×{}",
        3 * hidden
    );
    assert_eq!(out.len(), tokens * hidden);
    let out = OutMatrix::new(out.as_mut_ptr(), hidden);
    // Scaling the scores rather than folding the scale into the query weights keeps those
    // weights in their exact block form (see `gemm`).
    let scale = 1.0 / (heads.dim as f32).sqrt();
    let tasks: Vec<(usize, usize)> = (0..seqs.len())
        .flat_map(|s| (0..heads.count).map(move |h| (s, h)))
        .collect();
    tasks.into_par_iter().for_each(|(s, h)| {
        let seq = seqs[s].clone();
        let len = seq.len();
        if len == 0 {
            return;
        }
        let row = |t: usize| (seq.start + t) * 3 * hidden;
        let (q_col, k_col, v_col) = (
            h * heads.dim,
            hidden + h * heads.dim,
            2 * hidden + h * heads.dim,
        );
        SCRATCH.with_borrow_mut(
            |Scratch {
                 keys,
                 values,
                 scores,
             }| {
                // Scores: (len × dim) · (dim × len), keys packed as the right-hand side.
                keys.repack_columns(heads.dim, len, |t| &qkv[row(t) + k_col..][..heads.dim]);
                scores.resize(len * len, 0.0);
                let q = &qkv[row(0) + q_col..];
                // SAFETY: `q` holds `len` rows at stride 3·hidden; `scores` is len × len.
                unsafe {
                    let scores_out = OutMatrix::new(scores.as_mut_ptr(), len);
                    matmul_strided(q, 3 * hidden, len, keys, scores_out)
                };
                scores
                    .chunks_exact_mut(len)
                    .for_each(|row| softmax_in_place(row, scale));
                values.repack_rows(len, heads.dim, |t| &qkv[row(t) + v_col..][..heads.dim]);
                // SAFETY: the output block (this sequence's rows × this head's columns) lies inside
                // `out` and no other task writes it.
                unsafe {
                    let block = out.offset(seq.start * hidden + h * heads.dim);
                    matmul_strided(scores, len, len, values, block);
                }
            },
        );
    });
}

/// Softmax of one row of scores times `scale`, compiled for the newest vector instructions the
/// CPU has.
fn softmax_in_place(row: &mut [f32], scale: f32) {
    // SAFETY: the detected level is one the CPU supports.
    unsafe { softmax_at(Level::detected(), row, scale) }
}

/// [`softmax_in_place`] compiled for `level`.
///
/// # Safety
/// The CPU must support `level`.
unsafe fn softmax_at(level: Level, row: &mut [f32], scale: f32) {
    #[cfg(target_arch = "x86_64")]
    match level {
        // SAFETY: the CPU has the level's features (the caller's contract).
        Level::Avx512Vnni => return unsafe { softmax_avx512(row, scale) },
        // SAFETY: as above.
        Level::Avx2 | Level::AvxVnni => return unsafe { softmax_avx2(row, scale) },
        Level::Portable => {}
    }
    softmax_portable(row, scale)
}

/// [`softmax_portable`] compiled for AVX2 and FMA, which LLVM vectorises.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn softmax_avx2(row: &mut [f32], scale: f32) {
    softmax_portable(row, scale)
}

/// [`softmax_portable`] compiled for AVX-512, which LLVM vectorises 16 wide: the exponentials
/// of a long passage's scores were a seventh of its encoding time at 8 wide.
///
/// # Safety
/// The CPU must have AVX-512 F/BW/VL, AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn softmax_avx512(row: &mut [f32], scale: f32) {
    softmax_portable(row, scale)
}

/// Separate passes so each one vectorises.
#[inline(always)]
fn softmax_portable(row: &mut [f32], scale: f32) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    row.iter_mut()
        .for_each(|v| *v = fast_exp((*v - max) * scale));
    let inv = 1.0 / lane_sum(row, |v| v);
    row.iter_mut().for_each(|v| *v *= inv);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straightforward attention for one sequence and one head.
    fn naive(qkv: &[f32], seq: Range<usize>, h: usize, heads: Heads) -> Vec<f32> {
        let hidden = heads.count * heads.dim;
        let at = |t: usize, part: usize, d: usize| {
            qkv[t * 3 * hidden + part * hidden + h * heads.dim + d]
        };
        let mut out = vec![0f32; seq.len() * heads.dim];
        for (i, ti) in seq.clone().enumerate() {
            let scale = 1.0 / (heads.dim as f32).sqrt();
            let scores: Vec<f32> = seq
                .clone()
                .map(|tj| {
                    (0..heads.dim)
                        .map(|d| at(ti, 0, d) * at(tj, 1, d))
                        .sum::<f32>()
                        * scale
                })
                .collect();
            let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let exps: Vec<f32> = scores.iter().map(|s| (s - max).exp()).collect();
            let sum: f32 = exps.iter().sum();
            for d in 0..heads.dim {
                out[i * heads.dim + d] = seq
                    .clone()
                    .zip(&exps)
                    .map(|(tj, e)| e / sum * at(tj, 2, d))
                    .sum();
            }
        }
        out
    }

    #[test]
    fn softmax_matches_the_definition_at_every_level() {
        let scores: Vec<f32> = (0..37)
            .map(|i| ((i * 7919) % 97) as f32 / 9.0 - 5.0)
            .collect();
        let scale = 0.3;
        let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exps: Vec<f64> = scores
            .iter()
            .map(|&s| (((s - max) * scale) as f64).exp())
            .collect();
        let sum: f64 = exps.iter().sum();
        crate::cpu::for_each_supported_level(|level| {
            let mut row = scores.clone();
            // SAFETY: `for_each_supported_level` passes only levels the CPU supports.
            unsafe { softmax_at(level, &mut row, scale) };
            for (got, e) in row.iter().zip(&exps) {
                assert!(
                    (*got as f64 - e / sum).abs() < 1e-6,
                    "{level:?}: {got} vs {}",
                    e / sum
                );
            }
        });
    }

    #[test]
    fn packed_sequences_attend_only_within_themselves() {
        let heads = Heads { count: 3, dim: 5 };
        let hidden = 15;
        let seqs = vec![0..4, 4..5, 5..22];
        let tokens = 22;
        let qkv: Vec<f32> = (0..tokens * 3 * hidden)
            .map(|i| ((i * 7919) % 211) as f32 / 105.0 - 1.0)
            .collect();
        let mut out = vec![f32::NAN; tokens * hidden];
        attention(&qkv, &seqs, heads, &mut out);
        for seq in &seqs {
            for h in 0..heads.count {
                let want = naive(&qkv, seq.clone(), h, heads);
                for (i, t) in seq.clone().enumerate() {
                    for d in 0..heads.dim {
                        let got = out[t * hidden + h * heads.dim + d];
                        let w = want[i * heads.dim + d];
                        assert!((got - w).abs() < 1e-5, "seq {seq:?} head {h}: {got} vs {w}");
                    }
                }
            }
        }
    }
}
