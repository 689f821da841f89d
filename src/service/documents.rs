//! The document use cases: write (create or replace), delete, read and list the documents of a
//! collection.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::{blocking, check_document_id, is_blank, Collection, Prepared, Service, ServiceError};
use crate::corpus::{
    checked_date, parse_document, ArticleDate, ArticleMeta, ChunkConfig, DocumentInput, Layout,
    Passage, ProblemKind,
};
use crate::index::IndexChange;
use crate::store::{
    now_ms, BatchOutcome, DocumentRecord, DocumentWrite, JobProgress, Origin, Store, StoredPassage,
    WriteBatch,
};

/// Most documents one page of a listing may hold.
pub const MAX_PAGE_SIZE: usize = 1_000;

/// Most bytes a document's title, date, source, url and metadata (as JSON) may take together,
/// by default. Every passage carries them, so they must stay small beside the text.
pub const DEFAULT_MAX_METADATA_BYTES: usize = 64 * 1024;

/// A document to write.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDocument {
    pub text: String,
    pub layout: Layout,
    pub title: Option<String>,
    /// As printed or `YYYY-MM-DD`; recognised dates are filterable.
    pub date: Option<String>,
    pub source: Option<String>,
    pub url: Option<String>,
    /// A flat object: strings, numbers, booleans and arrays of strings.
    pub metadata: Map<String, Value>,
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOutcome {
    pub id: String,
    /// Whether an earlier version was replaced (else the document is new).
    pub replaced: bool,
    pub passages: usize,
    /// Passages the model embedded.
    pub embedded: usize,
    /// Passages whose vector was already stored (their text was embedded before).
    pub reused: usize,
    pub took: Duration,
}

/// A stored document with its passages.
#[derive(Debug, Clone)]
pub struct DocumentDetail {
    pub record: DocumentRecord,
    pub passages: Vec<Passage>,
}

/// One page of a collection's documents (texts left out), and the cursor of the next.
#[derive(Debug, Clone)]
pub struct DocumentPage {
    pub documents: Vec<DocumentRecord>,
    /// Pass to get the next page; `None` after the last.
    pub next: Option<String>,
}

impl Service {
    /// Writes document `id` of `collection`: creates it, or replaces every passage of the
    /// earlier version at once. Answers once the document is durable and searchable.
    pub async fn put_document(
        &self,
        collection: &str,
        id: &str,
        document: NewDocument,
    ) -> Result<PutOutcome, ServiceError> {
        let started = Instant::now();
        let record = new_record(id, document, Origin::Api, self.max_metadata_bytes)?;
        let target = self.collection(collection)?;
        let mut cut = self.cut_all(vec![record]).await?;
        let (record, passages) = cut.pop().expect("one record in, one out");
        let passages = passages?;
        let count = passages.len();
        let prepared = self.prepare(passages).await?;
        let (embedded, reused) = (prepared.new_vectors.len(), prepared.reused);
        let outcome = self
            .write_documents(collection, &target, vec![(record, count)], prepared, None)
            .await?;
        Ok(PutOutcome {
            id: id.to_owned(),
            replaced: outcome.replaced[0],
            passages: count,
            embedded,
            reused,
            took: started.elapsed(),
        })
    }

    /// Cuts documents into passages off the runtime (tokenizing is CPU work); a document that
    /// yields none gets [`ServiceError::NoPassages`].
    pub(super) async fn cut_all(
        &self,
        records: Vec<DocumentRecord>,
    ) -> Result<Vec<(DocumentRecord, Result<Vec<Passage>, ServiceError>)>, ServiceError> {
        let embedder = Arc::clone(&self.embedder);
        blocking(move || {
            let config = ChunkConfig::new(&*embedder);
            records
                .into_iter()
                .map(|record| {
                    let (passages, _) = cut(&record, &config);
                    let passages = if passages.is_empty() {
                        Err(ServiceError::NoPassages(
                            "the text has no words to index (only punctuation or markup)".into(),
                        ))
                    } else {
                        Ok(passages)
                    };
                    (record, passages)
                })
                .collect()
        })
        .await
    }

    /// Writes documents whose passages are `prepared` (in order; `records` pair each document
    /// with its passage count) with `job`'s progress, under the collection's write lock.
    pub(super) async fn write_documents(
        &self,
        collection: &str,
        target: &Arc<Collection>,
        records: Vec<(DocumentRecord, usize)>,
        prepared: Prepared,
        job: Option<JobProgress>,
    ) -> Result<BatchOutcome, ServiceError> {
        let writes = target.writes.lock().await;
        if *writes {
            return Err(ServiceError::UnknownCollection(collection.to_owned()));
        }
        let change = Change {
            put: records,
            prepared,
            delete: Vec::new(),
            job,
        };
        let (store, name, target) = (
            Arc::clone(&self.store),
            collection.to_owned(),
            Arc::clone(target),
        );
        let outcome = blocking(move || commit(&*store, &name, &target, change)).await??;
        drop(writes);
        Ok(outcome)
    }

    /// Deletes document `id` of `collection` and its passages; returns how many passages went.
    pub async fn delete_document(&self, collection: &str, id: &str) -> Result<usize, ServiceError> {
        check_document_id(id)?;
        let target = self.collection(collection)?;
        let writes = target.writes.lock().await;
        if *writes {
            return Err(ServiceError::UnknownCollection(collection.to_owned()));
        }
        let change = Change {
            delete: vec![id.to_owned()],
            ..Change::default()
        };
        let (store, name, target) = (
            Arc::clone(&self.store),
            collection.to_owned(),
            Arc::clone(&target),
        );
        let removed = blocking(move || {
            let before = target.index.reader().passage_count();
            let outcome = commit(&*store, &name, &target, change)?;
            Ok::<_, ServiceError>((outcome, before - target.index.reader().passage_count()))
        })
        .await??;
        drop(writes);
        match removed {
            (outcome, passages) if outcome.deleted[0] => Ok(passages),
            _ => Err(ServiceError::UnknownDocument {
                collection: collection.to_owned(),
                document: id.to_owned(),
            }),
        }
    }

    /// Document `id` of `collection`, with its text, metadata and passages.
    pub async fn document(
        &self,
        collection: &str,
        id: &str,
    ) -> Result<DocumentDetail, ServiceError> {
        check_document_id(id)?;
        self.collection(collection)?;
        let store = Arc::clone(&self.store);
        let (name, document) = (collection.to_owned(), id.to_owned());
        blocking(move || match store.document(&name, &document)? {
            Some((record, passages)) => Ok(DocumentDetail { record, passages }),
            None => Err(ServiceError::UnknownDocument {
                collection: name,
                document,
            }),
        })
        .await?
    }

    /// Up to `limit` documents of `collection` after the cursor `after` (from a previous page).
    pub async fn documents(
        &self,
        collection: &str,
        after: Option<String>,
        limit: usize,
    ) -> Result<DocumentPage, ServiceError> {
        if !(1..=MAX_PAGE_SIZE).contains(&limit) {
            return Err(ServiceError::Invalid(format!(
                "limit must be between 1 and {MAX_PAGE_SIZE}, got {limit}"
            )));
        }
        self.collection(collection)?;
        let after = after
            .map(|cursor| cursor::last_id(collection, &cursor))
            .transpose()?;
        let store = Arc::clone(&self.store);
        let name = collection.to_owned();
        blocking(move || {
            let mut documents = store.documents(&name, after.as_deref(), limit + 1)?;
            let next = (documents.len() > limit).then(|| {
                documents.truncate(limit);
                let last = documents.last().map_or("", |d| d.id.as_str());
                cursor::after(&name, last)
            });
            Ok(DocumentPage { documents, next })
        })
        .await?
    }
}

/// Paging cursors: opaque to clients, and checked, so that a cursor of another collection or a
/// made-up one is refused rather than silently starting the listing somewhere else. A cursor is
/// the last id of a page with a tag over the collection and that id, base64url-encoded. The tag
/// is a checksum, not a secret: a client that forges one only lists what it could list anyway.
mod cursor {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use sha2::{Digest, Sha256};

    use crate::service::ServiceError;

    const VERSION: u8 = 1;
    const TAG_BYTES: usize = 8;

    fn tag(collection: &str, id: &str) -> [u8; TAG_BYTES] {
        let digest = Sha256::new()
            .chain_update(b"wenda paging cursor\0")
            .chain_update(collection.as_bytes())
            .chain_update([0])
            .chain_update(id.as_bytes())
            .finalize();
        digest[..TAG_BYTES]
            .try_into()
            .expect("a SHA-256 digest is 32 bytes")
    }

    /// The cursor of the page after document `id` of `collection`.
    pub(super) fn after(collection: &str, id: &str) -> String {
        let mut bytes = vec![VERSION];
        bytes.extend(tag(collection, id));
        bytes.extend(id.as_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The document id `cursor` continues after, if it is a cursor of `collection`.
    pub(super) fn last_id(collection: &str, cursor: &str) -> Result<String, ServiceError> {
        let refuse = || {
            ServiceError::InvalidCursor(format!(
                "cursor {:?} is not one a listing of collection {collection:?} gave: pass the \
                 next_cursor of the previous page as it is, or none for the first page",
                cursor.chars().take(64).collect::<String>()
            ))
        };
        let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| refuse())?;
        let (version, rest) = bytes.split_first().ok_or_else(refuse)?;
        if *version != VERSION || rest.len() < TAG_BYTES {
            return Err(refuse());
        }
        let (given, id) = rest.split_at(TAG_BYTES);
        let id = std::str::from_utf8(id).map_err(|_| refuse())?;
        if given != tag(collection, id) {
            return Err(refuse());
        }
        Ok(id.to_owned())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_cursor_continues_only_the_listing_that_gave_it() {
            let cursor = after("news", "2025/04/模速空间");
            assert_eq!(last_id("news", &cursor).unwrap(), "2025/04/模速空间");
            assert!(cursor
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b)));
            for (collection, cursor) in [
                ("other", cursor.as_str()),
                ("news", "2025/04/模速空间"),
                ("news", ""),
                ("news", "AQ"),
                ("news", &cursor[..cursor.len() - 1]),
            ] {
                assert!(
                    matches!(
                        last_id(collection, cursor),
                        Err(ServiceError::InvalidCursor(_))
                    ),
                    "{collection} {cursor}"
                );
            }
        }
    }
}

/// Documents to write (each with its passage count, the passages `prepared` in the same order)
/// and to delete, in one transaction.
#[derive(Default)]
pub(super) struct Change {
    pub(super) put: Vec<(DocumentRecord, usize)>,
    pub(super) prepared: Prepared,
    pub(super) delete: Vec<String>,
    pub(super) job: Option<JobProgress>,
}

/// Commits `change` to the store and then to the collection's index. Blocking; the caller
/// holds the collection's write lock, so store and index take writes in the same order.
pub(super) fn commit(
    store: &dyn Store,
    collection: &str,
    target: &Collection,
    change: Change,
) -> Result<BatchOutcome, ServiceError> {
    let add = change.prepared.index_passages();
    let mut passages = change
        .prepared
        .passages
        .into_iter()
        .map(|(stored, _)| stored);
    let groups: Vec<(DocumentRecord, Vec<StoredPassage>)> = change
        .put
        .into_iter()
        .map(|(record, count)| {
            let passages: Vec<StoredPassage> = passages.by_ref().take(count).collect();
            let record = DocumentRecord {
                passages: passages.len(),
                ..record
            };
            (record, passages)
        })
        .collect();
    let outcome = store.write(
        collection,
        &WriteBatch {
            put: groups
                .iter()
                .map(|(record, passages)| DocumentWrite { record, passages })
                .collect(),
            delete: change.delete.iter().map(String::as_str).collect(),
            vectors: change
                .prepared
                .new_vectors
                .iter()
                .map(|(key, vector)| (*key, vector.as_slice()))
                .collect(),
            sentence_vectors: change
                .prepared
                .new_sentence_vectors
                .iter()
                .map(|(key, sentences)| (*key, sentences))
                .collect(),
            job: change.job.as_ref(),
        },
    )?;
    let mut remove_documents = change.delete;
    remove_documents.extend(groups.into_iter().map(|(record, _)| record.id));
    target
        .index
        .apply(IndexChange {
            remove_documents,
            add,
        })
        .map_err(|e| ServiceError::Internal(e.to_string()))?;
    Ok(outcome)
}

/// Cuts a document's text into passages by its layout, with its fields as the articles'
/// defaults; also returns the lines it skipped (JSON lines) and why.
pub(super) fn cut(
    record: &DocumentRecord,
    config: &ChunkConfig<'_>,
) -> (Vec<Passage>, Vec<(usize, ProblemKind)>) {
    let meta = ArticleMeta {
        title: record.title.clone(),
        dateline: None,
        date: record.date.as_deref().map(ArticleDate::parse),
        source: record.source.clone(),
        url: record.url.clone(),
    };
    let input = DocumentInput {
        id: &record.id,
        text: &record.text,
        layout: record.layout,
        meta: &meta,
        metadata: &record.metadata,
    };
    let parsed = parse_document(&input, config);
    let problems = parsed.problems;
    (parsed.groups.into_iter().flatten().collect(), problems)
}

/// SHA-256 over everything passages are cut from, so an unchanged document is recognised
/// without cutting it again.
pub(super) fn content_hash(document: &NewDocument) -> [u8; 32] {
    let mut hasher = Sha256::new();
    let fields = [
        Some(document.layout.as_str()),
        document.title.as_deref(),
        document.date.as_deref(),
        document.source.as_deref(),
        document.url.as_deref(),
    ];
    for field in fields {
        // Presence and length first, so that no two different field lists hash alike.
        let bytes = field.map_or(&[][..], str::as_bytes);
        hasher.update([u8::from(field.is_some())]);
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    }
    hasher.update(Value::Object(document.metadata.clone()).to_string());
    hasher.update([0]);
    hasher.update(document.text.as_bytes());
    hasher.finalize().into()
}

/// Checks a document and makes its record (passage count still 0). Its fields besides the text
/// may take at most `max_metadata_bytes`.
pub(super) fn new_record(
    id: &str,
    mut document: NewDocument,
    origin: Origin,
    max_metadata_bytes: usize,
) -> Result<DocumentRecord, ServiceError> {
    check_document_id(id)?;
    check_metadata(&document.metadata)?;
    check_field_sizes(&document, max_metadata_bytes)?;
    // The corpus folder's files keep the dates they print; a client is told when its date is
    // not one the date filters can read.
    if origin == Origin::Api {
        if let Some(date) = document.date.take().filter(|date| !is_blank(date)) {
            document.date = Some(
                checked_date(&date).map_err(|why| ServiceError::Invalid(format!("date: {why}")))?,
            );
        }
    }
    if is_blank(&document.text) {
        return Err(ServiceError::NoPassages("the text is empty".into()));
    }
    if !document.text.chars().any(char::is_alphanumeric) {
        return Err(ServiceError::NoPassages(
            "the text has no letters or digits, only punctuation and symbols".into(),
        ));
    }
    Ok(DocumentRecord {
        id: id.to_owned(),
        layout: document.layout,
        content_hash: content_hash(&document),
        title: document.title,
        date: document.date,
        source: document.source,
        url: document.url,
        metadata: document.metadata,
        text: document.text,
        origin,
        created_at: now_ms(),
        updated_at: now_ms(),
        passages: 0,
    })
}

/// Refuses a document whose fields besides the text exceed `limit` bytes together, naming the
/// largest: each passage is answered with them, so a large value would be copied into every
/// search result and document read (a read key could make the server allocate gigabytes).
fn check_field_sizes(document: &NewDocument, limit: usize) -> Result<(), ServiceError> {
    let text_field = |name, value: &Option<String>| (name, value.as_ref().map_or(0, String::len));
    let metadata = serde_json::to_string(&document.metadata).map_or(usize::MAX, |json| json.len());
    let sizes = [
        ("metadata", metadata),
        text_field("title", &document.title),
        text_field("date", &document.date),
        text_field("source", &document.source),
        text_field("url", &document.url),
    ];
    let total = sizes
        .iter()
        .map(|(_, bytes)| bytes)
        .fold(0usize, |a, b| a.saturating_add(*b));
    if total <= limit {
        return Ok(());
    }
    let (largest, bytes) = sizes
        .iter()
        .max_by_key(|(_, bytes)| *bytes)
        .expect("five fields");
    Err(ServiceError::Invalid(format!(
        "{largest}: {bytes} bytes; a document's title, date, source, url and metadata (as \
         JSON) may take {limit} bytes together (the server's --max-metadata-bytes)"
    )))
}

/// Metadata must be flat: strings, numbers, booleans, or arrays of strings.
fn check_metadata(metadata: &Map<String, Value>) -> Result<(), ServiceError> {
    for (key, value) in metadata {
        let flat = match value {
            Value::String(_) | Value::Number(_) | Value::Bool(_) => true,
            Value::Array(items) => items.iter().all(Value::is_string),
            Value::Null | Value::Object(_) => false,
        };
        if !flat {
            return Err(ServiceError::Invalid(format!(
                "metadata field {key:?} must be a string, number, boolean or array of strings"
            )));
        }
        if key.is_empty() || key.chars().any(char::is_control) {
            return Err(ServiceError::Invalid(format!(
                "metadata key {key:?} must be non-empty without control characters"
            )));
        }
    }
    Ok(())
}
