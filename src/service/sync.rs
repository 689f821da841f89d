//! Keeping the `default` collection in step with the corpus folder given at start-up: files
//! added, changed and removed since the last start become document writes and deletes, applied
//! in one transaction. A file whose content is unchanged is not even cut into passages.
//!
//! Only documents that came from the folder are touched: a document written through the API
//! into `default` is never deleted by a sync, and a file with the same id is skipped.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use super::documents::{commit, content_hash, cut, new_record, Change};
use super::{NewDocument, OpenError, Service, ServiceError, VectorLookup, DEFAULT_COLLECTION};
use crate::corpus::{read_files, ChunkConfig, Problem, ProblemKind, ReadOptions};
use crate::store::Origin;

/// What a sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Documents whose files are new.
    pub added: usize,
    /// Documents whose files changed.
    pub changed: usize,
    /// Documents whose files are gone (or no longer yield a passage).
    pub removed: usize,
    pub unchanged: usize,
    /// Passages the model embedded (others reused stored vectors).
    pub embedded: usize,
    /// Files and lines skipped, and why.
    pub problems: Vec<Problem>,
    /// Files of unsupported types in the folders.
    pub ignored_files: usize,
}

impl Service {
    /// Brings collection `default` in step with the files of `paths` read as `options` say
    /// (files skipped keep their documents). Blocking; `progress(done,
    /// total)` follows the embedding of passages the store has no vector for.
    pub fn sync_corpus(
        &self,
        paths: &[PathBuf],
        options: ReadOptions,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<SyncReport, OpenError> {
        let name = DEFAULT_COLLECTION;
        if self.store.create_collection(name)? {
            self.register(name, self.new_collection(name));
        }
        let target = self.collection(name)?;
        let scan = read_files(paths, options);
        let mut report = SyncReport {
            problems: scan.problems,
            ignored_files: scan.ignored_files,
            ..SyncReport::default()
        };
        let stored = self.store.content_hashes(name, Origin::Corpus)?;
        let written_through_api = self.store.content_hashes(name, Origin::Api)?;
        // A document goes only when its file is known to be gone: not when the file could not
        // be read, nor when a folder could not be listed (a wrong working directory, a mount
        // that is missing) and its files are simply unknown.
        let seen: HashSet<&str> = scan
            .files
            .iter()
            .map(|f| f.id.as_str())
            .chain(scan.unread.iter().map(String::as_str))
            .collect();
        let mut removed: Vec<String> = if scan.complete {
            stored
                .keys()
                .filter(|id| !seen.contains(id.as_str()))
                .cloned()
                .collect()
        } else {
            tracing::warn!(
                corpus = ?paths,
                "the corpus could not be read whole; no document is removed from collection default"
            );
            Vec::new()
        };

        // First the files that changed: their stored versions go, freeing their passage ids.
        let mut pending = Vec::new();
        for file in &scan.files {
            if written_through_api.contains_key(&file.id) {
                tracing::warn!(
                    document = file.id,
                    "a document with this id was written through the API; the file is not loaded"
                );
                continue;
            }
            let document = NewDocument {
                text: file.text.clone(),
                layout: file.layout,
                title: None,
                date: None,
                source: None,
                url: None,
                metadata: serde_json::Map::new(),
            };
            if stored.get(&file.id) == Some(&content_hash(&document)) {
                report.unchanged += 1;
            } else {
                pending.push((file, document));
            }
        }
        let freed: HashSet<String> = removed
            .iter()
            .cloned()
            .chain(pending.iter().map(|(file, _)| file.id.clone()))
            .collect();

        // Then cut them; a passage id that another document keeps, or that an earlier file of
        // this sync took, costs the file (and its stored version goes: the folder decides).
        let reader = target.index.reader();
        let config = ChunkConfig::new(&*self.embedder);
        let mut records = Vec::new();
        let mut passages = Vec::new();
        let mut claimed: HashMap<String, String> = HashMap::new();
        for (file, document) in pending {
            let was_stored = stored.contains_key(&file.id);
            let parsed =
                match new_record(&file.id, document, Origin::Corpus, self.max_metadata_bytes) {
                    Ok(record) => {
                        let (parsed, problems) = cut(&record, &config);
                        for (line, kind) in problems {
                            report.problem(&file.path, Some(line), kind);
                        }
                        let taken = parsed.iter().find_map(|passage| {
                            let id = passage.id.as_str();
                            if let Some(other) = claimed.get(id) {
                                return Some((id.to_owned(), other.clone()));
                            }
                            let owner = &reader.passage(reader.slot_of(&passage.id)?).citation.path;
                            (!freed.contains(owner)).then(|| (id.to_owned(), owner.clone()))
                        });
                        match taken {
                            Some((id, owner)) => {
                                let kind = ProblemKind::DuplicateId {
                                    id,
                                    first_path: owner,
                                    first_line: 0,
                                };
                                report.problem(&file.path, None, kind);
                                None
                            }
                            None => Some((record, parsed)).filter(|(_, parsed)| !parsed.is_empty()),
                        }
                    }
                    Err(error) => {
                        report.problem(&file.path, None, ProblemKind::Refused(error.to_string()));
                        None
                    }
                };
            let Some((record, parsed)) = parsed else {
                if was_stored {
                    removed.push(file.id.clone());
                }
                continue;
            };
            for passage in &parsed {
                claimed.insert(passage.id.to_string(), file.id.clone());
            }
            if was_stored {
                report.changed += 1;
            } else {
                report.added += 1;
            }
            records.push((record, parsed.len()));
            passages.extend(parsed);
        }
        report.removed = removed.len();
        if records.is_empty() && removed.is_empty() {
            return Ok(report);
        }

        let mut lookup = VectorLookup::new(&*self.store, &passages)?;
        let texts = lookup.missing_texts();
        report.embedded = lookup.missing_passages();
        let embeddings = self.embed_blocking(&texts, progress)?;
        lookup.fill(embeddings);
        let change = Change {
            put: records,
            prepared: lookup.into_prepared(&self.analyzer, passages),
            delete: removed,
            job: None,
        };
        let writes = target.writes.blocking_lock();
        commit(&*self.store, name, &target, change)?;
        drop(writes);
        Ok(report)
    }
}

impl SyncReport {
    fn problem(&mut self, path: &std::path::Path, line: Option<usize>, kind: ProblemKind) {
        let problem = Problem {
            path: path.to_owned(),
            line,
            kind,
        };
        tracing::warn!("skipped {problem}");
        self.problems.push(problem);
    }
}

impl From<ServiceError> for OpenError {
    fn from(error: ServiceError) -> Self {
        Self::Sync(error.to_string())
    }
}
