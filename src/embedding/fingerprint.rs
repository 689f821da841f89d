//! Identities of vectors: which model made them ([`ModelFingerprint`]) and from which text
//! ([`TextKey`]). A stored vector is valid only for the fingerprint it was made under, and is
//! reused for any passage whose embedding text has its key.

use std::fs::File;
use std::io;

use sha2::{Digest, Sha256};

use super::{Backend, Embedder, EmbeddingError, ModelFiles, NATIVE_ENCODER_REVISION};

/// Identifies a model's behaviour: vectors made under one fingerprint are valid only for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ModelFingerprint([u8; 32]);

impl ModelFingerprint {
    /// Hashes everything that decides a passage's vector: the weights, the tokenizer, the model
    /// configuration, pooling, the passage prompt and the encoder implementation.
    pub fn of(files: &ModelFiles, embedder: &Embedder) -> Result<Self, EmbeddingError> {
        let mut hasher = Sha256::new();
        for path in [&files.weights, &files.tokenizer, &files.config] {
            let mut file = File::open(path).map_err(|e| EmbeddingError::io(path, e))?;
            let bytes =
                io::copy(&mut file, &mut hasher).map_err(|e| EmbeddingError::io(path, e))?;
            hasher.update(bytes.to_le_bytes());
        }
        let config = embedder.config();
        hasher.update(format!("{:?}", config.pooling));
        hasher.update(config.prompts.passage.as_bytes());
        match embedder.backend() {
            Backend::Native => hasher.update(format!("native {NATIVE_ENCODER_REVISION}")),
            Backend::CandleTransformers => hasher.update("candle-transformers"),
        }
        Ok(Self(hasher.finalize().into()))
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex, as shown in logs and exports.
    pub fn hex(&self) -> String {
        hex(&self.0)
    }
}

fn hex(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The key of one vector: the SHA-256 of the text embedded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TextKey([u8; 32]);

impl TextKey {
    pub fn of(text: &str) -> Self {
        Self(Sha256::digest(text.as_bytes()).into())
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex, as exports write it.
    pub fn hex(&self) -> String {
        hex(&self.0)
    }

    /// Reads what [`hex`](Self::hex) wrote.
    pub fn from_hex(text: &str) -> Option<Self> {
        if text.len() != 64 || !text.is_ascii() {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Self(bytes))
    }
}
