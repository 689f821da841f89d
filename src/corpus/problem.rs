//! What can be wrong with the files a user brings, reported instead of stopping the load.

use std::fmt;
use std::path::PathBuf;

use crate::corpus::formats::{ExtractError, Formats};

/// Something skipped while loading: a file, a JSON line, or the passages of a paragraph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file as found on disk.
    pub path: PathBuf,
    /// 1-based line the problem is on, when it is on one.
    pub line: Option<usize>,
    pub kind: ProblemKind,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProblemKind {
    #[error("cannot read: {0}")]
    Unreadable(String),
    #[error("{0}")]
    Unextractable(#[from] ExtractError),
    #[error("empty file")]
    Empty,
    #[error("{bytes} bytes, over the limit of {limit} (--max-file-bytes)")]
    TooLarge { bytes: u64, limit: u64 },
    #[error("a symbolic link to {}, outside the corpus folder: not followed", .0.display())]
    LinkOutside(std::path::PathBuf),
    #[error("unsupported file type: expected {}", Formats::standard().extension_list())]
    UnsupportedExtension,
    #[error("malformed JSON line: {0}")]
    MalformedJson(String),
    #[error("missing or empty field \"{0}\"")]
    MissingField(&'static str),
    #[error("refused: {0}")]
    Refused(String),
    #[error("duplicate passage id \"{id}\", first loaded from {first_path} line {first_line}")]
    DuplicateId {
        id: String,
        first_path: String,
        first_line: usize,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": {}", self.kind)
    }
}
