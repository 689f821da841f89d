//! Identities of vectors: which model made them ([`ModelFingerprint`]) and from which text
//! ([`TextKey`]). A stored vector is valid only for the fingerprint it was made under, and is
//! reused for any passage whose embedding text has its key.

use std::fs::File;
use std::io;
use std::path::Path;

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
        for path in hashed_files(files) {
            let mut file = File::open(path).map_err(|e| EmbeddingError::io(path, e))?;
            let bytes =
                io::copy(&mut file, &mut hasher).map_err(|e| EmbeddingError::io(path, e))?;
            hasher.update(bytes.to_le_bytes());
        }
        hasher.update(settings(embedder));
        Ok(Self(hasher.finalize().into()))
    }

    /// [`of`](Self::of), computed once per model: the result is kept beside the weights
    /// ([`CACHE_FILE`]) with the size and modification time of every file hashed, and reused
    /// while they and the settings are unchanged, so a start does not read the whole weights
    /// file (about a second for e5-small's 470 MB). A folder that cannot be written to only
    /// costs the hashing.
    pub fn cached(files: &ModelFiles, embedder: &Embedder) -> Result<Self, EmbeddingError> {
        let cache = files.weights.with_file_name(CACHE_FILE);
        let key = cache_key(files, embedder)?;
        let recorded = std::fs::read_to_string(&cache)
            .ok()
            .and_then(|text| serde_json::from_str::<CachedFingerprint>(&text).ok())
            .filter(|cached| cached.key == key)
            .and_then(|cached| parse_hex(&cached.fingerprint));
        if let Some(bytes) = recorded {
            return Ok(Self(bytes));
        }
        let fingerprint = Self::of(files, embedder)?;
        let record = CachedFingerprint {
            key,
            fingerprint: fingerprint.hex(),
        };
        if let Err(error) = write_atomically(&cache, &record) {
            tracing::debug!(%error, path = %cache.display(), "cannot keep the model fingerprint");
        }
        Ok(fingerprint)
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

/// Reads what [`hex`] wrote.
fn parse_hex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut bytes = [0u8; 32];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(bytes)
}

/// Where [`ModelFingerprint::cached`] keeps a model's fingerprint: beside its weights.
pub const CACHE_FILE: &str = "wenda-fingerprint.json";

/// The files whose bytes a fingerprint covers.
fn hashed_files(files: &ModelFiles) -> [&Path; 3] {
    [&files.weights, &files.tokenizer, &files.config]
}

/// What besides the files decides a vector: pooling, the passage prompt, the encoder.
fn settings(embedder: &Embedder) -> String {
    let config = embedder.config();
    let encoder = match embedder.backend() {
        Backend::Native => format!("native {NATIVE_ENCODER_REVISION}"),
        Backend::CandleTransformers => "candle-transformers".to_owned(),
    };
    format!("{:?}{}{encoder}", config.pooling, config.prompts.passage)
}

/// A fingerprint as kept on disk, under the key of what it was computed from.
#[derive(serde::Serialize, serde::Deserialize)]
struct CachedFingerprint {
    key: String,
    fingerprint: String,
}

/// The files hashed (where they lead, their sizes and modification times) and the settings,
/// hashed: a cached fingerprint is valid while this is unchanged.
fn cache_key(files: &ModelFiles, embedder: &Embedder) -> Result<String, EmbeddingError> {
    let mut hasher = Sha256::new();
    for path in hashed_files(files) {
        let real = std::fs::canonicalize(path).map_err(|e| EmbeddingError::io(path, e))?;
        let metadata = std::fs::metadata(&real).map_err(|e| EmbeddingError::io(path, e))?;
        let modified = metadata
            .modified()
            .ok()
            .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
            .unwrap_or_default();
        hasher.update(format!(
            "{}\0{}\0{}\0",
            real.display(),
            metadata.len(),
            modified.as_nanos()
        ));
    }
    hasher.update(settings(embedder));
    Ok(hex(&hasher.finalize().into()))
}

/// Writes `record` to `path` through a temporary file, so a reader never sees half of it.
fn write_atomically(path: &Path, record: &CachedFingerprint) -> io::Result<()> {
    let temporary = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&temporary, serde_json::to_vec(record)?)?;
    std::fs::rename(&temporary, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&temporary);
    })
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
        parse_hex(text).map(Self)
    }
}
