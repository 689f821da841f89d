//! The vectors of a passage's sentences as the store keeps them: one value per passage text,
//! beside its vector, so an extractive answer scores sentences without running the model.
//!
//! Each vector is kept with the character span of the sentence it was made from, so a reader
//! can tell that the passage text is still split the same way (the splitter may change between
//! releases, and two passages may share an embedding text but not a text) and embed again
//! rather than pair a sentence with another's vector. Values are half precision: the cosine
//! between a question and a sentence moves by under 0.001, and the store takes half the room.
//!
//! Layout (little-endian): format `1` (u8), sentences `n` (u32), dimensions `d` (u16), then `n`
//! spans (start and end, u32 each), then `n × d` values (f16).

use std::ops::Range;

use half::f16;

use super::rows::corrupt;
use super::Result;

const FORMAT: u8 = 1;
const HEADER_BYTES: usize = 1 + 4 + 2;

/// The vectors of one passage text's sentences, in order, each with the character offsets of
/// its sentence in the passage text.
#[derive(Debug, Clone, PartialEq)]
pub struct SentenceVectors {
    pub spans: Vec<Range<usize>>,
    pub vectors: Vec<Vec<f32>>,
}

impl SentenceVectors {
    pub(super) fn encode(&self) -> Vec<u8> {
        assert_eq!(self.spans.len(), self.vectors.len(), "a span per vector");
        let dimensions = self.vectors.first().map_or(0, Vec::len);
        let mut bytes = Vec::with_capacity(HEADER_BYTES + self.spans.len() * (8 + 2 * dimensions));
        bytes.push(FORMAT);
        bytes.extend((self.spans.len() as u32).to_le_bytes());
        bytes.extend((dimensions as u16).to_le_bytes());
        for span in &self.spans {
            bytes.extend((span.start as u32).to_le_bytes());
            bytes.extend((span.end as u32).to_le_bytes());
        }
        for vector in &self.vectors {
            assert_eq!(vector.len(), dimensions, "vector dimensions");
            bytes.extend(vector.iter().flat_map(|v| f16::from_f32(*v).to_le_bytes()));
        }
        bytes
    }

    /// Reads what [`encode`](Self::encode) wrote, for a model of `dimensions`.
    pub(super) fn decode(bytes: &[u8], dimensions: usize) -> Result<Self> {
        let problem = |what: String| corrupt("sentence vectors", what);
        let header = bytes
            .get(..HEADER_BYTES)
            .ok_or_else(|| problem(format!("{} bytes", bytes.len())))?;
        if header[0] != FORMAT {
            return Err(problem(format!("format {}", header[0])));
        }
        let count = u32::from_le_bytes([header[1], header[2], header[3], header[4]]) as usize;
        let stored_dimensions = u16::from_le_bytes([header[5], header[6]]) as usize;
        if count > 0 && stored_dimensions != dimensions {
            return Err(problem(format!(
                "{stored_dimensions} dimensions for a model of {dimensions}"
            )));
        }
        let body = &bytes[HEADER_BYTES..];
        let span_bytes = count * 8;
        if body.len() != span_bytes + count * stored_dimensions * 2 {
            return Err(problem(format!(
                "{} bytes for {count} sentences of {stored_dimensions} dimensions",
                bytes.len()
            )));
        }
        let word = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
        let spans = body[..span_bytes]
            .chunks_exact(8)
            .map(|b| word(&b[..4])..word(&b[4..]))
            .collect();
        let vectors = if stored_dimensions == 0 {
            Vec::new()
        } else {
            body[span_bytes..]
                .chunks_exact(stored_dimensions * 2)
                .map(|vector| {
                    vector
                        .chunks_exact(2)
                        .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
                        .collect()
                })
                .collect()
        };
        Ok(Self { spans, vectors })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentence_vectors_read_back_as_written_to_half_precision() {
        let written = SentenceVectors {
            spans: vec![0..5, 6..40],
            vectors: vec![vec![0.125, -0.5, 0.3], vec![1.0, 0.0, -0.0625]],
        };
        let read = SentenceVectors::decode(&written.encode(), 3).unwrap();
        assert_eq!(read.spans, written.spans);
        for (read, written) in read.vectors.iter().zip(&written.vectors) {
            for (r, w) in read.iter().zip(written) {
                assert!((r - w).abs() < 1e-3, "{r} against {w}");
            }
        }
        let none = SentenceVectors {
            spans: Vec::new(),
            vectors: Vec::new(),
        };
        assert_eq!(SentenceVectors::decode(&none.encode(), 3).unwrap(), none);
    }

    #[test]
    fn damaged_sentence_vectors_are_refused_not_misread() {
        let bytes = SentenceVectors {
            spans: std::iter::once(0..5).collect(),
            vectors: vec![vec![0.5; 4]],
        }
        .encode();
        for damaged in [
            &bytes[..3],
            &bytes[..bytes.len() - 1],
            &[&bytes[..], &[0]].concat(),
        ] {
            assert!(SentenceVectors::decode(damaged, 4).is_err());
        }
        assert!(
            SentenceVectors::decode(&bytes, 8).is_err(),
            "another model's"
        );
        let mut other_format = bytes.clone();
        other_format[0] = 2;
        assert!(SentenceVectors::decode(&other_format, 4).is_err());
    }
}
