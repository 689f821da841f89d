//! Passage ids: stable across runs and machines, so caches and clients can keep them.
//!
//! Ids of passages cut from text files are derived from the document's path relative to the
//! root it was loaded from and the passage's position, and use only URL-unreserved characters
//! (`A-Z a-z 0-9 - . _ ~`), so they go into `/v1/passages/{id}` unencoded:
//!
//! ```text
//! news/000_6b84.txt, article 2, paragraph 5           ->  news~2F000_6b84.txt~2.5
//! the same paragraph split in three, the later pieces ->  news~2F000_6b84.txt~2.5.2, ~2.5.3
//! ```
//!
//! Path bytes outside `A-Z a-z 0-9 - . _` are written `~XX` (upper-case hex), so `~` never
//! appears unescaped in the path part and the position after the last `~` cannot be confused with
//! it: different paths or positions always give different ids. Ids of JSON-lines records are
//! the records' own, with `#2`, `#3`… appended for the later pieces of a split record.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Identifier of a passage, unique within a loaded corpus.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PassageId(String);

impl PassageId {
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Id of the `piece`-th (1-based) piece of a record that was split: the first keeps the
    /// record's id.
    pub(crate) fn piece(&self, piece: usize) -> Self {
        if piece == 1 {
            self.clone()
        } else {
            Self(format!("{}#{piece}", self.0))
        }
    }
}

impl fmt::Display for PassageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The path part of the ids generated for one document.
#[derive(Debug, Clone)]
pub(crate) struct DocumentKey(String);

impl DocumentKey {
    /// `relative_path` uses `/` between components on every platform.
    pub(crate) fn new(relative_path: &str) -> Self {
        let mut key = String::with_capacity(relative_path.len());
        for &byte in relative_path.as_bytes() {
            if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_') {
                key.push(char::from(byte));
            } else {
                key.push_str(&format!("~{byte:02X}"));
            }
        }
        Self(key)
    }

    /// Id of the `piece`-th (1-based) piece of the passage that starts at `paragraph` of
    /// `article` (both 1-based).
    pub(crate) fn passage(&self, article: usize, paragraph: usize, piece: usize) -> PassageId {
        let mut id = format!("{}~{article}.{paragraph}", self.0);
        if piece > 1 {
            id.push_str(&format!(".{piece}"));
        }
        PassageId(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_unreserved(id: &PassageId) -> bool {
        id.as_str()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    }

    #[test]
    fn generated_ids_are_url_safe_and_readable() {
        let key = DocumentKey::new("news/000_6b84.txt");
        assert_eq!(key.passage(2, 5, 1).as_str(), "news~2F000_6b84.txt~2.5");
        assert_eq!(key.passage(2, 5, 3).as_str(), "news~2F000_6b84.txt~2.5.3");
        let han = DocumentKey::new("新闻 1.md").passage(1, 1, 1);
        assert!(is_unreserved(&han), "{han}");
    }

    #[test]
    fn distinct_paths_give_distinct_ids() {
        let ids: Vec<_> = ["a/b.txt", "a~2Fb.txt", "a_b.txt", "a/b.txt~1.1"]
            .into_iter()
            .map(|path| DocumentKey::new(path).passage(1, 1, 1))
            .collect();
        for (i, id) in ids.iter().enumerate() {
            assert!(!ids[i + 1..].contains(id), "{id}");
        }
    }

    #[test]
    fn record_pieces_extend_the_record_id() {
        let id = PassageId::new("doc-7");
        assert_eq!(id.piece(1), id);
        assert_eq!(id.piece(2).as_str(), "doc-7#2");
    }
}
