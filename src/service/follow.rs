//! Following a shared store: the writes other replicas make reach this replica's indexes.
//!
//! Every write to a shared store records which documents it changed, in commit order (see
//! `store::postgres`). A thread reads what other processes changed every [`FOLLOW_EVERY`] and
//! applies it: a document written or deleted elsewhere is read again from the store (passages,
//! terms and vectors, nothing embedded) and replaces this replica's copy in one index change,
//! so a search here sees the old version or the new one; a collection created or deleted
//! elsewhere appears or goes.

use std::sync::{Arc, PoisonError, Weak};
use std::time::Duration;

use super::{Service, ServiceError};
use crate::index::{IndexChange, IndexedPassage};
use crate::store::{Change, LoadedPassage, StoreError, StoredVector};

/// How often a replica reads the changes others made: about the most a write made through one
/// replica takes to be searchable through another.
pub const FOLLOW_EVERY: Duration = Duration::from_millis(200);

/// Starts the thread that follows the store's changes from `position`, for as long as `service`
/// lives.
pub(super) fn start_follower(service: &Arc<Service>, mut position: u64) {
    let weak: Weak<Service> = Arc::downgrade(service);
    std::thread::Builder::new()
        .name("wenda-follow".into())
        .spawn(move || loop {
            std::thread::sleep(FOLLOW_EVERY);
            let Some(service) = weak.upgrade() else {
                return;
            };
            match service.follow(position) {
                Ok(next) => position = next,
                Err(error) => tracing::warn!(%error, "cannot follow the store's changes; retrying"),
            }
        })
        .expect("spawning the change follower thread");
}

impl Service {
    /// Applies the changes other processes made after `position`; returns where to go on from.
    fn follow(&self, position: u64) -> Result<u64, ServiceError> {
        let (changes, next) = self.store.changes_since(position)?;
        for change in changes {
            self.apply_change(change)?;
        }
        Ok(next)
    }

    fn apply_change(&self, change: Change) -> Result<(), ServiceError> {
        let name = change.collection;
        let Some(document) = change.document else {
            // A collection created or deleted: the store says which.
            match self.store.collection(&name)? {
                Some(_) => self.follow_collection(&name)?,
                None => {
                    let gone = self
                        .collections
                        .write()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(&name);
                    if let Some(collection) = gone {
                        *collection.writes.blocking_lock() = true;
                    }
                }
            }
            return Ok(());
        };
        let Ok(target) = self.collection(&name) else {
            // Written before its creation reached us: read the collection whole.
            return self.follow_collection(&name);
        };
        let loaded = match self.store.load_document(&name, &document) {
            Ok(loaded) => loaded,
            // The collection was deleted since: a later change says so and removes it whole.
            Err(StoreError::UnknownCollection(_)) => Vec::new(),
            Err(error) => return Err(error.into()),
        };
        let add = indexed(loaded, &document);
        let _writes = target.writes.blocking_lock();
        target
            .index
            .apply(IndexChange {
                remove_documents: vec![document],
                add,
            })
            .map_err(|e| ServiceError::Internal(e.to_string()))
    }

    /// Reads collection `name` whole from the store into a new index, unless this replica has
    /// it already.
    fn follow_collection(&self, name: &str) -> Result<(), ServiceError> {
        if self.collection(name).is_ok() {
            return Ok(());
        }
        let collection = self.new_collection(name);
        let loaded = self.store.load_collection(name)?;
        collection
            .index
            .apply(IndexChange {
                remove_documents: Vec::new(),
                add: indexed(loaded, name),
            })
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        self.register(name, collection);
        Ok(())
    }
}

/// The loaded passages that can be indexed: those with a vector under this model (a replica
/// serving another model cannot share a store with this one; its passages are left out).
/// Vectors the store keeps itself are not loaded: the index leaves them there.
pub(super) fn indexed(loaded: Vec<LoadedPassage>, what: &str) -> Vec<IndexedPassage> {
    let total = loaded.len();
    let add: Vec<IndexedPassage> = loaded
        .into_iter()
        .filter_map(|passage| {
            let vector = match passage.vector {
                StoredVector::Loaded(vector) => vector,
                StoredVector::InStore => Vec::new(),
                StoredVector::Missing => return None,
            };
            Some(IndexedPassage {
                vector,
                passage: passage.stored.passage,
                terms: passage.stored.terms,
            })
        })
        .collect();
    if add.len() < total {
        tracing::warn!(
            what,
            missing = total - add.len(),
            "passages without a vector under this model were not indexed"
        );
    }
    add
}
