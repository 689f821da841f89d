//! Copies of a data directory made while a server uses it: a consistent backup of the whole
//! database, and a collection's documents with their vectors, for moving it elsewhere without
//! embedding it again. Both read through their own read-only connection, so they need no lock.

use std::path::Path;

use rusqlite::params;

use super::{collection_id, connect, text_key, SqlRow, DATABASE_FILE};
use crate::embedding::{ModelFingerprint, TextKey};
use crate::store::rows::{document_record, DOCUMENT_COLUMNS};
use crate::store::{DocumentRecord, Result, StoreError};

/// A document and the vectors of its passages' texts (under one model).
#[derive(Debug, Clone)]
pub struct ExportedDocument {
    pub record: DocumentRecord,
    pub vectors: Vec<(TextKey, Vec<f32>)>,
}

fn open_database(directory: &Path) -> Result<rusqlite::Connection> {
    let path = directory.join(DATABASE_FILE);
    if !path.exists() {
        return Err(StoreError::Unavailable(format!(
            "{} has no wenda database",
            directory.display()
        )));
    }
    connect(&path, true)
}

/// Writes a consistent copy of the database in `directory` to `destination`, which must not
/// exist yet. Safe while a server writes: the copy is one read transaction.
pub fn backup(directory: &Path, destination: &Path) -> Result<()> {
    if destination.exists() {
        return Err(StoreError::Unavailable(format!(
            "{} already exists; give a new file",
            destination.display()
        )));
    }
    let destination = destination
        .to_str()
        .ok_or_else(|| StoreError::Unavailable("the backup path is not UTF-8".into()))?;
    open_database(directory)?.execute("VACUUM INTO ?1", [destination])?;
    Ok(())
}

/// Calls `each` with every document of `collection` in `directory`, in id order, with the
/// vectors `model` made for its passages. Returns how many documents there were.
pub fn export(
    directory: &Path,
    collection: &str,
    model: ModelFingerprint,
    each: &mut dyn FnMut(ExportedDocument) -> std::io::Result<()>,
) -> Result<usize> {
    let connection = open_database(directory)?;
    // One read transaction: the export is a consistent snapshot.
    connection.execute_batch("BEGIN")?;
    let id = collection_id(&connection, collection)?;
    let mut documents = connection.prepare(&format!(
        "SELECT {DOCUMENT_COLUMNS} FROM documents WHERE collection_id = ?1 ORDER BY doc_id"
    ))?;
    let mut vectors = connection.prepare(
        "SELECT DISTINCT p.text_key, v.vector FROM passages p
         JOIN vectors v ON v.model = ?3 AND v.text_key = p.text_key
         WHERE p.collection_id = ?1 AND p.doc_id = ?2 ORDER BY p.seq",
    )?;
    let mut count = 0;
    let mut rows = documents.query([id])?;
    while let Some(row) = rows.next()? {
        let record = document_record(&SqlRow(row))?;
        let found = vectors
            .query_map(params![id, record.id, model.as_bytes()], |row| {
                Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, Vec<u8>>(1)?))
            })?
            .map(|pair| {
                let (key, bytes) = pair?;
                let vector = bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                Ok((text_key(&key)?, vector))
            })
            .collect::<Result<Vec<_>>>()?;
        each(ExportedDocument {
            record,
            vectors: found,
        })
        .map_err(|e| StoreError::Unavailable(format!("writing the export: {e}")))?;
        count += 1;
    }
    Ok(count)
}
