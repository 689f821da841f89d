//! The collection use cases: create, delete, list and describe named sets of documents.

use std::sync::{Arc, PoisonError};

use super::{blocking, check_collection_name, Service, ServiceError};
use crate::store::CollectionRecord;

/// A collection and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionSummary {
    pub name: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub documents: usize,
    pub passages: usize,
    /// Bytes of document text stored.
    pub text_bytes: u64,
    /// Bytes its vectors take in memory.
    pub vector_bytes: usize,
}

impl Service {
    /// Creates collection `name`; `Ok(false)` when it already exists (creating is idempotent).
    pub async fn create_collection(&self, name: &str) -> Result<bool, ServiceError> {
        check_collection_name(name)?;
        // Registering under the map's lock keeps two concurrent creations from making two
        // indexes; the store call is quick and idempotent.
        let store = Arc::clone(&self.store);
        let owned = name.to_owned();
        blocking(move || store.create_collection(&owned)).await??;
        let mut collections = self
            .collections
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if collections.contains_key(name) {
            return Ok(false);
        }
        collections.insert(name.to_owned(), self.new_collection(name));
        Ok(true)
    }

    /// Deletes collection `name` with its documents. Searches already running finish on what
    /// they started with; later ones find no collection.
    pub async fn delete_collection(&self, name: &str) -> Result<(), ServiceError> {
        check_collection_name(name)?;
        let target = self.collection(name)?;
        let mut writes = target.writes.lock().await;
        if *writes {
            return Err(ServiceError::UnknownCollection(name.to_owned()));
        }
        let store = Arc::clone(&self.store);
        let owned = name.to_owned();
        blocking(move || store.delete_collection(&owned)).await??;
        *writes = true;
        self.collections
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
        Ok(())
    }

    /// Every collection, by name.
    pub async fn collections(&self) -> Result<Vec<CollectionSummary>, ServiceError> {
        let store = Arc::clone(&self.store);
        let records = blocking(move || store.collections()).await??;
        Ok(records
            .into_iter()
            .map(|record| self.summary(record))
            .collect())
    }

    /// Collection `name` and what it holds.
    pub async fn collection_summary(&self, name: &str) -> Result<CollectionSummary, ServiceError> {
        check_collection_name(name)?;
        self.collection(name)?;
        let store = Arc::clone(&self.store);
        let owned = name.to_owned();
        let record = blocking(move || store.collection(&owned)).await??;
        record
            .map(|record| self.summary(record))
            .ok_or_else(|| ServiceError::UnknownCollection(name.to_owned()))
    }

    fn summary(&self, record: CollectionRecord) -> CollectionSummary {
        let vector_bytes = self
            .reader(&record.name)
            .map_or(0, |reader| reader.vector_bytes());
        CollectionSummary {
            name: record.name,
            created_at: record.created_at,
            documents: record.documents,
            passages: record.passages,
            text_bytes: record.text_bytes,
            vector_bytes,
        }
    }
}
