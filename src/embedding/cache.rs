//! Passage vectors remembered on disk, so that a restart over an unchanged corpus embeds nothing
//! and a changed file re-embeds only the passages whose text changed.
//!
//! An entry is keyed by the SHA-256 of the exact text the model saw ([`TextKey`]). A cache file
//! belongs to one [`ModelFingerprint`] (weights, tokenizer, configuration and prompts) and one
//! scope (the corpus it serves) and is named after both, so vectors of one model are never served
//! for another and each corpus prunes only its own file. The file, little-endian:
//!
//! ```text
//! "WENDAVEC" | format: u32 | dimensions: u32 | fingerprint: [u8; 32] | entries: u64
//! entries × (key: [u8; 32] | dimensions × f32)
//! SHA-256 of everything above: [u8; 32]
//! ```
//!
//! A save writes a temporary file in the same directory, syncs it and renames it over the old
//! one, so a crash leaves the old cache or the new one, never a torn file. Anything else that
//! damages a file fails the checksum; a damaged or mismatched file is reported, ignored and
//! replaced at the next save.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{Backend, Embedder, EmbeddingError, ModelFiles, NATIVE_ENCODER_REVISION};

const MAGIC: &[u8; 8] = b"WENDAVEC";
const FORMAT: u32 = 1;
const HEADER_BYTES: usize = 8 + 4 + 4 + 32 + 8;

/// Identifies a model's behaviour: vectors cached under one fingerprint are valid only for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

    /// Lower-case hex, as used in file names and logs.
    pub fn hex(&self) -> String {
        hex(&self.0)
    }
}

/// The key of one cached vector: the SHA-256 of the text embedded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TextKey([u8; 32]);

impl TextKey {
    pub fn of(text: &str) -> Self {
        Self(Sha256::digest(text.as_bytes()).into())
    }
}

/// Why a cache file was not used.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{path} is damaged: {problem}")]
    Corrupt { path: String, problem: String },
    #[error("{path} was written for another model or format: {problem}")]
    Mismatch { path: String, problem: String },
}

/// What opening a cache found.
#[derive(Debug)]
pub enum CacheOpened {
    /// No cache file yet.
    Empty,
    /// This many vectors were loaded.
    Loaded(usize),
    /// The file could not be used and will be rebuilt.
    Discarded(CacheError),
}

/// The vectors of one model, keyed by text.
#[derive(Debug)]
pub struct VectorCache {
    path: PathBuf,
    fingerprint: ModelFingerprint,
    dimensions: usize,
    entries: HashMap<TextKey, Box<[f32]>>,
}

impl VectorCache {
    /// Opens the cache for `fingerprint` in `dir` (created at the first save). `scope` names
    /// what the cache is for (the corpus paths): each scope has its own file, so that serving
    /// one corpus does not evict the vectors of another.
    pub fn open(
        dir: &Path,
        scope: &str,
        fingerprint: ModelFingerprint,
        dimensions: usize,
    ) -> (Self, CacheOpened) {
        let scope = hex(&Sha256::digest(scope.as_bytes())[..4]);
        let path = dir.join(format!("vectors-{}-{scope}.bin", &fingerprint.hex()[..16]));
        let mut cache = Self {
            path,
            fingerprint,
            dimensions,
            entries: HashMap::new(),
        };
        let opened = match cache.read() {
            Ok(entries) => {
                cache.entries = entries;
                CacheOpened::Loaded(cache.entries.len())
            }
            Err(CacheError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                CacheOpened::Empty
            }
            Err(error) => CacheOpened::Discarded(error),
        };
        (cache, opened)
    }

    /// The file the cache lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, key: &TextKey) -> Option<&[f32]> {
        self.entries.get(key).map(|v| &**v)
    }

    /// Remembers `vector` for `key`. Vectors of the wrong length are a caller bug.
    pub fn insert(&mut self, key: TextKey, vector: &[f32]) {
        assert_eq!(vector.len(), self.dimensions, "cached vector dimensions");
        self.entries.insert(key, vector.into());
    }

    /// Forgets every entry not in `keep`, so the file tracks the corpus instead of growing
    /// with every edit. Returns how many were dropped.
    pub fn retain(&mut self, keep: &HashSet<TextKey>) -> usize {
        let before = self.entries.len();
        self.entries.retain(|key, _| keep.contains(key));
        before - self.entries.len()
    }

    /// Writes the cache atomically (temporary file, sync, rename).
    pub fn save(&self) -> Result<(), CacheError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(|e| self.io_error(dir, e))?;
        let temporary = self
            .path
            .with_extension(format!("tmp{}", std::process::id()));
        let result = self.write_to(&temporary).and_then(|()| {
            fs::rename(&temporary, &self.path).map_err(|e| self.io_error(&self.path, e))
        });
        if result.is_err() {
            let _ = fs::remove_file(&temporary);
        }
        result
    }

    fn write_to(&self, path: &Path) -> Result<(), CacheError> {
        let file = File::create(path).map_err(|e| self.io_error(path, e))?;
        self.write_contents(file)
            .map_err(|e| self.io_error(path, e))
    }

    fn write_contents(&self, file: File) -> io::Result<()> {
        let mut out = HashingWriter {
            inner: BufWriter::new(file),
            hasher: Sha256::new(),
        };
        out.write_all(MAGIC)?;
        out.write_all(&FORMAT.to_le_bytes())?;
        out.write_all(&(self.dimensions as u32).to_le_bytes())?;
        out.write_all(&self.fingerprint.0)?;
        out.write_all(&(self.entries.len() as u64).to_le_bytes())?;
        for (key, vector) in &self.entries {
            out.write_all(&key.0)?;
            for value in vector.iter() {
                out.write_all(&value.to_le_bytes())?;
            }
        }
        let checksum: [u8; 32] = out.hasher.finalize().into();
        let mut inner = out.inner;
        inner.write_all(&checksum)?;
        inner.into_inner().map_err(|e| e.into_error())?.sync_all()
    }

    fn read(&self) -> Result<HashMap<TextKey, Box<[f32]>>, CacheError> {
        let file = File::open(&self.path).map_err(|e| self.io_error(&self.path, e))?;
        let length = file
            .metadata()
            .map_err(|e| self.io_error(&self.path, e))?
            .len();
        let mut input = HashingReader {
            inner: BufReader::new(file),
            hasher: Sha256::new(),
        };
        let corrupt = |problem: String| CacheError::Corrupt {
            path: self.path.display().to_string(),
            problem,
        };
        let mismatch = |problem: String| CacheError::Mismatch {
            path: self.path.display().to_string(),
            problem,
        };
        let truncated = |e: io::Error| corrupt(format!("cannot read: {e}"));

        let mut header = [0u8; HEADER_BYTES];
        input.read_exact(&mut header).map_err(truncated)?;
        if &header[..8] != MAGIC {
            return Err(mismatch("not a wenda vector cache".into()));
        }
        let format = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
        if format != FORMAT {
            return Err(mismatch(format!("format {format}, expected {FORMAT}")));
        }
        let dimensions = u32::from_le_bytes(header[12..16].try_into().expect("4 bytes")) as usize;
        if header[16..48] != self.fingerprint.0 {
            return Err(mismatch("model fingerprint differs".into()));
        }
        if dimensions != self.dimensions {
            return Err(mismatch(format!(
                "{dimensions} dimensions, the model has {}",
                self.dimensions
            )));
        }
        let count = u64::from_le_bytes(header[48..56].try_into().expect("8 bytes"));
        let entry_bytes = 32 + 4 * dimensions as u64;
        let expected_length = count
            .checked_mul(entry_bytes)
            .and_then(|n| n.checked_add((HEADER_BYTES + 32) as u64));
        if expected_length != Some(length) {
            return Err(corrupt(format!(
                "{length} bytes, but the header announces {count} entries"
            )));
        }

        let mut entries = HashMap::with_capacity(count as usize);
        let mut record = vec![0u8; entry_bytes as usize];
        for _ in 0..count {
            input.read_exact(&mut record).map_err(truncated)?;
            let key = TextKey(record[..32].try_into().expect("32 bytes"));
            let vector: Box<[f32]> = record[32..]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
                .collect();
            entries.insert(key, vector);
        }
        let computed: [u8; 32] = input.hasher.finalize().into();
        let mut stored = [0u8; 32];
        input.inner.read_exact(&mut stored).map_err(truncated)?;
        if computed != stored {
            return Err(corrupt("checksum does not match the contents".into()));
        }
        Ok(entries)
    }

    fn io_error(&self, path: &Path, source: io::Error) -> CacheError {
        CacheError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// Hashes what passes through, so the checksum costs no second pass over the file.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.hasher.update(&buf[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.hasher.update(&buf[..read]);
        Ok(read)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIMENSIONS: usize = 4;

    fn fingerprint(byte: u8) -> ModelFingerprint {
        ModelFingerprint([byte; 32])
    }

    fn filled_cache(dir: &Path) -> VectorCache {
        let (mut cache, opened) = VectorCache::open(dir, "test", fingerprint(1), DIMENSIONS);
        assert!(matches!(opened, CacheOpened::Empty));
        cache.insert(TextKey::of("天气"), &[0.1, 0.2, 0.3, 0.4]);
        cache.insert(TextKey::of("weather"), &[-1.0, 0.0, 0.5, 2.0]);
        cache.save().unwrap();
        cache
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("wenda-cache-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn round_trips_and_leaves_no_temporary_file() {
        let dir = temp_dir("round-trip");
        filled_cache(&dir);
        let (cache, opened) = VectorCache::open(&dir, "test", fingerprint(1), DIMENSIONS);
        assert!(matches!(opened, CacheOpened::Loaded(2)), "{opened:?}");
        assert_eq!(
            cache.get(&TextKey::of("天气")),
            Some(&[0.1, 0.2, 0.3, 0.4][..])
        );
        assert_eq!(cache.get(&TextKey::of("rain")), None);
        let files: Vec<_> = fs::read_dir(&dir).unwrap().collect();
        assert_eq!(files.len(), 1, "{files:?}");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn another_model_does_not_see_the_vectors() {
        let dir = temp_dir("other-model");
        filled_cache(&dir);
        let (cache, opened) = VectorCache::open(&dir, "test", fingerprint(2), DIMENSIONS);
        assert!(matches!(opened, CacheOpened::Empty));
        assert!(cache.is_empty());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn damaged_files_are_detected() {
        let dir = temp_dir("damaged");
        let path = filled_cache(&dir).path().to_owned();
        let good = fs::read(&path).unwrap();

        let mut flipped = good.clone();
        flipped[HEADER_BYTES + 40] ^= 1;
        fs::write(&path, &flipped).unwrap();
        let (cache, opened) = VectorCache::open(&dir, "test", fingerprint(1), DIMENSIONS);
        assert!(
            matches!(&opened, CacheOpened::Discarded(CacheError::Corrupt { problem, .. }) if problem.contains("checksum")),
            "{opened:?}"
        );
        assert!(cache.is_empty());

        fs::write(&path, &good[..good.len() - 7]).unwrap();
        let (_, opened) = VectorCache::open(&dir, "test", fingerprint(1), DIMENSIONS);
        assert!(
            matches!(opened, CacheOpened::Discarded(CacheError::Corrupt { .. })),
            "{opened:?}"
        );

        fs::write(&path, b"garbage").unwrap();
        let (_, opened) = VectorCache::open(&dir, "test", fingerprint(1), DIMENSIONS);
        assert!(
            matches!(opened, CacheOpened::Discarded(CacheError::Corrupt { .. })),
            "{opened:?}"
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_file_of_other_dimensions_is_a_mismatch() {
        let dir = temp_dir("dimensions");
        filled_cache(&dir);
        let (_, opened) = VectorCache::open(&dir, "test", fingerprint(1), DIMENSIONS + 1);
        assert!(
            matches!(opened, CacheOpened::Discarded(CacheError::Mismatch { .. })),
            "{opened:?}"
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn scopes_have_their_own_files() {
        let dir = temp_dir("scopes");
        filled_cache(&dir);
        let (cache, opened) = VectorCache::open(&dir, "other corpus", fingerprint(1), DIMENSIONS);
        assert!(matches!(opened, CacheOpened::Empty));
        assert!(cache.is_empty());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn retain_drops_entries_of_texts_no_longer_in_the_corpus() {
        let dir = temp_dir("retain");
        let mut cache = filled_cache(&dir);
        let keep: HashSet<TextKey> = [TextKey::of("weather")].into();
        assert_eq!(cache.retain(&keep), 1);
        assert_eq!(cache.len(), 1);
        fs::remove_dir_all(dir).unwrap();
    }
}
