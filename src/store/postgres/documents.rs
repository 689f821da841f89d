//! Documents, passages and vectors in PostgreSQL: the [`DocumentStore`] contract, with each
//! write recorded in the change feed other replicas follow.

use std::collections::HashMap;
use std::sync::Arc;

use pgvector::Vector;
use postgres::error::SqlState;
use postgres::Transaction;
use serde_json::Value;

use super::jobs::record_progress;
use super::vectors::EXACT_SEARCH_UP_TO;
use super::{collection_id, PgRow, PostgresStore};
use crate::corpus::Passage;
use crate::embedding::{ModelFingerprint, TextKey};
use crate::index::{fold, TermCounts, VectorSearch};
use crate::store::rows::{
    corrupt, document_record, text_key, DOCUMENT_COLUMNS, DOCUMENT_SUMMARY_COLUMNS,
};
use crate::store::{
    now_ms, BatchOutcome, Change, CollectionRecord, DocumentRecord, DocumentStore, LoadedPassage,
    Origin, Result, SentenceVectors, StoreError, StoredPassage, StoredVector, WriteBatch,
};

/// The advisory lock every write takes: writes commit one after another, so the change feed's
/// order is their commit order and a replica reading it never skips a change still in flight.
const WRITE_LOCK: i64 = 7418263502;
/// How long changes are kept for replicas to follow (a replica that stops longer reloads all).
const CHANGES_KEPT_MS: i64 = 24 * 3600 * 1000;

impl PostgresStore {
    fn decode_vector(&self, vector: Vector) -> Result<Vec<f32>> {
        let values = vector.to_vec();
        if values.len() != self.dimensions {
            return Err(StoreError::Corrupt {
                path: self.location.clone(),
                problem: format!(
                    "a vector has {} dimensions, the model {}",
                    values.len(),
                    self.dimensions
                ),
            });
        }
        Ok(values)
    }

    /// The passages of `collection` (of one document, if given), in document and passage
    /// order, with their vectors under the store's model where there is one.
    fn load_passages(
        &self,
        collection: &str,
        document: Option<&str>,
    ) -> Result<Vec<LoadedPassage>> {
        let mut client = self.client()?;
        let id = collection_id(&mut *client, collection)?;
        let rows = client.query(
            "SELECT p.body, p.text_key, p.terms, v.text_key IS NOT NULL
             FROM passages p
             LEFT JOIN vectors v ON v.model = $2 AND v.text_key = p.text_key
             WHERE p.collection_id = $1 AND ($3::text IS NULL OR p.doc_id = $3)
             ORDER BY p.doc_id, p.seq",
            &[&id, &self.model.as_bytes().as_slice(), &document],
        )?;
        rows.iter()
            .map(|row| {
                let body: String = row.get(0);
                let key: Vec<u8> = row.get(1);
                let terms: Vec<u8> = row.get(2);
                let has_vector: bool = row.get(3);
                Ok(LoadedPassage {
                    stored: StoredPassage {
                        passage: serde_json::from_str(&body).map_err(|e| corrupt("passage", e))?,
                        text_key: text_key(&key)?,
                        terms: TermCounts::decode(&terms).map_err(|e| corrupt("terms", e))?,
                    },
                    vector: if has_vector {
                        StoredVector::InStore
                    } else {
                        StoredVector::Missing
                    },
                })
            })
            .collect()
    }

    fn collection_records(&self, name: Option<&str>) -> Result<Vec<CollectionRecord>> {
        let rows = self.client()?.query(
            "SELECT c.name, c.created_at, COUNT(d.doc_id), COALESCE(SUM(d.passages), 0)::bigint,
                    COALESCE(SUM(OCTET_LENGTH(d.text)), 0)::bigint
             FROM collections c LEFT JOIN documents d ON d.collection_id = c.id
             WHERE $1::text IS NULL OR c.name = $1
             GROUP BY c.id ORDER BY c.name",
            &[&name],
        )?;
        Ok(rows
            .iter()
            .map(|row| CollectionRecord {
                name: row.get(0),
                created_at: row.get(1),
                documents: row.get::<_, i64>(2) as usize,
                passages: row.get::<_, i64>(3) as usize,
                text_bytes: row.get::<_, i64>(4) as u64,
            })
            .collect())
    }
}

/// What the filters of a search test of a passage, as stored beside it: its title folded as
/// title filters compare it, its day, its metadata for filters.
pub(super) fn filter_columns(passage: &Passage) -> (Option<String>, Option<String>, Value) {
    (
        passage.article.title.as_deref().map(fold),
        passage
            .article
            .date
            .as_ref()
            .and_then(|date| date.iso.clone()),
        metadata_for_filters(Value::Object(passage.metadata.clone())),
    )
}

/// `metadata` with every number as the `f64` filters compare (`1`, `1.0` and
/// `1.00000000000000001` all become `1.0`), so that PostgreSQL's exact numeric equality agrees
/// with wenda's.
fn metadata_for_filters(metadata: Value) -> Value {
    match metadata {
        Value::Number(number) => number.as_f64().map_or(Value::Number(number), Value::from),
        Value::Array(items) => Value::Array(items.into_iter().map(metadata_for_filters).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(key, value)| (key, metadata_for_filters(value)))
                .collect(),
        ),
        other => other,
    }
}

/// Takes the write lock and records changes in `transaction`.
fn record_changes(
    transaction: &mut Transaction<'_>,
    replica: &str,
    collection: &str,
    documents: &[Option<&str>],
) -> Result<()> {
    if documents.is_empty() {
        return Ok(());
    }
    let insert = transaction
        .prepare("INSERT INTO changes (collection, doc_id, replica, at) VALUES ($1, $2, $3, $4)")?;
    let now = now_ms();
    for document in documents {
        transaction.execute(&insert, &[&collection, document, &replica, &now])?;
    }
    transaction.execute(
        "DELETE FROM changes WHERE at < $1",
        &[&(now - CHANGES_KEPT_MS)],
    )?;
    Ok(())
}

/// Deletes a document and its passages: whether there was one, and the text keys its passages
/// used.
fn delete_document(
    transaction: &mut Transaction<'_>,
    collection_id: i64,
    id: &str,
) -> Result<(bool, Vec<Vec<u8>>)> {
    let keys = transaction
        .query(
            "DELETE FROM passages WHERE collection_id = $1 AND doc_id = $2 RETURNING text_key",
            &[&collection_id, &id],
        )?
        .iter()
        .map(|row| row.get::<_, Vec<u8>>(0))
        .collect();
    let deleted = transaction.execute(
        "DELETE FROM documents WHERE collection_id = $1 AND doc_id = $2",
        &[&collection_id, &id],
    )?;
    Ok((deleted == 1, keys))
}

fn put_document(
    transaction: &mut Transaction<'_>,
    collection_id: i64,
    model: &[u8],
    record: &DocumentRecord,
    passages: &[StoredPassage],
) -> Result<(bool, Vec<Vec<u8>>)> {
    let created_at: i64 = transaction
        .query_opt(
            "SELECT created_at FROM documents WHERE collection_id = $1 AND doc_id = $2",
            &[&collection_id, &record.id],
        )?
        .map_or(record.created_at, |row| row.get(0));
    let (replaced, released) = delete_document(transaction, collection_id, &record.id)?;
    let ids: Vec<&str> = passages.iter().map(|p| p.passage.id.as_str()).collect();
    if let Some(row) = transaction.query_opt(
        "SELECT passage_id, doc_id FROM passages
         WHERE collection_id = $1 AND passage_id = ANY($2) LIMIT 1",
        &[&collection_id, &ids],
    )? {
        return Err(StoreError::PassageTaken {
            passage: row.get(0),
            document: row.get(1),
        });
    }
    transaction.execute(
        "INSERT INTO documents (collection_id, doc_id, layout, title, date, source, url,
             metadata, text, origin, content_hash, created_at, updated_at, passages)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        &[
            &collection_id,
            &record.id,
            &record.layout.as_str(),
            &record.title,
            &record.date,
            &record.source,
            &record.url,
            &Value::Object(record.metadata.clone()),
            &record.text,
            &record.origin.as_str(),
            &record.content_hash.as_slice(),
            &created_at,
            &record.updated_at,
            &(passages.len() as i32),
        ],
    )?;
    let insert = transaction.prepare(
        "INSERT INTO passages (collection_id, doc_id, seq, passage_id, body, text_key, terms,
             title_folded, day, metadata, embedding)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
             (SELECT embedding::halfvec FROM vectors WHERE model = $11 AND text_key = $6))",
    )?;
    for (seq, stored) in passages.iter().enumerate() {
        let body = serde_json::to_string(&stored.passage).expect("a passage serialises");
        let (title, day, metadata) = filter_columns(&stored.passage);
        let inserted = transaction.execute(
            &insert,
            &[
                &collection_id,
                &record.id,
                &(seq as i32),
                &stored.passage.id.as_str(),
                &body,
                &stored.text_key.as_bytes().as_slice(),
                &stored.terms.encode(),
                &title,
                &day,
                &metadata,
                &model,
            ],
        );
        if let Err(error) = inserted {
            // Another writer took the id between the check above and this insert.
            if error.code() == Some(&SqlState::UNIQUE_VIOLATION) {
                return Err(StoreError::PassageTaken {
                    passage: stored.passage.id.to_string(),
                    document: "another document".into(),
                });
            }
            return Err(error.into());
        }
    }
    Ok((replaced, released))
}

impl DocumentStore for PostgresStore {
    fn model(&self) -> ModelFingerprint {
        self.model
    }

    fn describe(&self) -> String {
        self.location.clone()
    }

    fn create_collection(&self, name: &str) -> Result<bool> {
        let mut client = self.client()?;
        let mut transaction = client.transaction()?;
        transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])?;
        let created = transaction.execute(
            "INSERT INTO collections (name, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&name, &now_ms()],
        )? == 1;
        if created {
            record_changes(&mut transaction, &self.replica, name, &[None])?;
        }
        transaction.commit()?;
        Ok(created)
    }

    fn delete_collection(&self, name: &str) -> Result<bool> {
        let mut client = self.client()?;
        let mut transaction = client.transaction()?;
        transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])?;
        let deleted = transaction.execute("DELETE FROM collections WHERE name = $1", &[&name])?;
        if deleted == 1 {
            record_changes(&mut transaction, &self.replica, name, &[None])?;
        }
        for table in ["vectors", "sentence_vectors"] {
            transaction.execute(
                &format!(
                    "DELETE FROM {table} WHERE NOT EXISTS
                         (SELECT 1 FROM passages p WHERE p.text_key = {table}.text_key)"
                ),
                &[],
            )?;
        }
        transaction.commit()?;
        Ok(deleted == 1)
    }

    fn collections(&self) -> Result<Vec<CollectionRecord>> {
        self.collection_records(None)
    }

    fn collection(&self, name: &str) -> Result<Option<CollectionRecord>> {
        Ok(self.collection_records(Some(name))?.pop())
    }

    fn write(&self, collection: &str, batch: &WriteBatch<'_>) -> Result<BatchOutcome> {
        let mut client = self.client()?;
        let mut transaction = client.transaction()?;
        // Writers, from any replica, commit one after another: two replicas writing the same
        // document end with one version, never a failed insert, and the change feed is in
        // commit order.
        transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])?;
        let collection_id = collection_id(&mut transaction, collection)?;
        let model = self.model.as_bytes().as_slice();
        // Vectors first: the passages put below take theirs from the table as they are
        // inserted, so each row is written (and enters the HNSW index) once.
        if !batch.vectors.is_empty() {
            let insert = transaction.prepare(
                "INSERT INTO vectors (model, text_key, embedding) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
            )?;
            for (key, vector) in &batch.vectors {
                assert_eq!(vector.len(), self.dimensions, "vector dimensions");
                transaction.execute(
                    &insert,
                    &[
                        &model,
                        &key.as_bytes().as_slice(),
                        &Vector::from(vector.to_vec()),
                    ],
                )?;
            }
            if batch.put.is_empty() {
                // Vectors alone (the model changed, or an export's vectors arrive first):
                // the passages with these texts take them.
                let keys: Vec<&[u8]> = batch
                    .vectors
                    .iter()
                    .map(|(key, _)| key.as_bytes().as_slice())
                    .collect();
                transaction.execute(
                    "UPDATE passages p SET embedding = v.embedding::halfvec FROM vectors v
                     WHERE p.text_key = ANY($1) AND v.model = $2 AND v.text_key = p.text_key",
                    &[&keys, &model],
                )?;
            }
        }
        let mut outcome = BatchOutcome::default();
        let mut released: Vec<Vec<u8>> = Vec::new();
        for document in &batch.delete {
            let (existed, keys) = delete_document(&mut transaction, collection_id, document)?;
            outcome.deleted.push(existed);
            released.extend(keys);
        }
        for write in &batch.put {
            let (replaced, keys) = put_document(
                &mut transaction,
                collection_id,
                model,
                write.record,
                write.passages,
            )?;
            outcome.replaced.push(replaced);
            released.extend(keys);
        }
        if !batch.sentence_vectors.is_empty() {
            let insert = transaction.prepare(
                "INSERT INTO sentence_vectors (model, text_key, sentences) VALUES ($1, $2, $3)
                 ON CONFLICT (model, text_key) DO UPDATE SET sentences = excluded.sentences",
            )?;
            for (key, sentences) in &batch.sentence_vectors {
                transaction.execute(
                    &insert,
                    &[&model, &key.as_bytes().as_slice(), &sentences.encode()],
                )?;
            }
        }
        if !released.is_empty() {
            for table in ["vectors", "sentence_vectors"] {
                transaction.execute(
                    &format!(
                        "DELETE FROM {table} WHERE text_key = ANY($1) AND NOT EXISTS
                             (SELECT 1 FROM passages p WHERE p.text_key = {table}.text_key)"
                    ),
                    &[&released],
                )?;
            }
        }
        if let Some(progress) = batch.job {
            record_progress(&mut transaction, progress)?;
        }
        let changed: Vec<Option<&str>> = batch
            .delete
            .iter()
            .copied()
            .chain(batch.put.iter().map(|write| write.record.id.as_str()))
            .map(Some)
            .collect();
        record_changes(&mut transaction, &self.replica, collection, &changed)?;
        transaction.commit()?;
        Ok(outcome)
    }

    fn vectors(&self, keys: &[TextKey]) -> Result<HashMap<TextKey, Vec<f32>>> {
        let wanted: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes().as_slice()).collect();
        let rows = self.client()?.query(
            "SELECT text_key, embedding FROM vectors WHERE model = $1 AND text_key = ANY($2)",
            &[&self.model.as_bytes().as_slice(), &wanted],
        )?;
        rows.iter()
            .map(|row| {
                let key: Vec<u8> = row.get(0);
                Ok((text_key(&key)?, self.decode_vector(row.get(1))?))
            })
            .collect()
    }

    fn sentence_vectors(&self, keys: &[TextKey]) -> Result<HashMap<TextKey, SentenceVectors>> {
        let wanted: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes().as_slice()).collect();
        let rows = self.client()?.query(
            "SELECT text_key, sentences FROM sentence_vectors
             WHERE model = $1 AND text_key = ANY($2)",
            &[&self.model.as_bytes().as_slice(), &wanted],
        )?;
        rows.iter()
            .map(|row| {
                let key: Vec<u8> = row.get(0);
                let sentences = SentenceVectors::decode(row.get(1), self.dimensions)?;
                Ok((text_key(&key)?, sentences))
            })
            .collect()
    }

    fn load_collection(&self, collection: &str) -> Result<Vec<LoadedPassage>> {
        self.load_passages(collection, None)
    }

    fn load_document(&self, collection: &str, id: &str) -> Result<Vec<LoadedPassage>> {
        self.load_passages(collection, Some(id))
    }

    fn changes_since(&self, after: u64) -> Result<(Vec<Change>, u64)> {
        let rows = self.client()?.query(
            "SELECT seq, collection, doc_id, replica FROM changes WHERE seq > $1
             ORDER BY seq LIMIT 10000",
            &[&(after as i64)],
        )?;
        let next = rows.last().map_or(after, |row| row.get::<_, i64>(0) as u64);
        let changes = rows
            .iter()
            .filter(|row| row.get::<_, &str>(3) != self.replica)
            .map(|row| Change {
                collection: row.get(1),
                document: row.get(2),
            })
            .collect();
        Ok((changes, next))
    }

    fn change_position(&self) -> Result<u64> {
        let position: Option<i64> = self
            .client()?
            .query_one("SELECT MAX(seq) FROM changes", &[])?
            .get(0);
        Ok(position.unwrap_or(0) as u64)
    }

    fn shared(&self) -> bool {
        true
    }

    fn ping(&self) -> Result<()> {
        self.client()?.batch_execute("SELECT 1")?;
        if let Some(read_pool) = &self.read_pool {
            read_pool.get()?.batch_execute("SELECT 1")?;
        }
        Ok(())
    }

    fn vector_search(&self, collection: &str) -> Option<Arc<dyn VectorSearch>> {
        Some(Arc::new(self.vectors(collection, EXACT_SEARCH_UP_TO)))
    }

    fn rewrite_terms(&self, collection: &str, terms: &[(&str, &TermCounts)]) -> Result<()> {
        let mut client = self.client()?;
        let mut transaction = client.transaction()?;
        let id = collection_id(&mut transaction, collection)?;
        let update = transaction.prepare(
            "UPDATE passages SET terms = $3 WHERE collection_id = $1 AND passage_id = $2",
        )?;
        for (passage, counts) in terms {
            transaction.execute(&update, &[&id, passage, &counts.encode()])?;
        }
        transaction.commit()?;
        Ok(())
    }

    fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .client()?
            .query_opt("SELECT value FROM wenda_settings WHERE key = $1", &[&key])?
            .map(|row| row.get(0)))
    }

    fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        self.client()?.execute(
            "INSERT INTO wenda_settings (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[&key, &value],
        )?;
        Ok(())
    }

    fn document(
        &self,
        collection: &str,
        id: &str,
    ) -> Result<Option<(DocumentRecord, Vec<Passage>)>> {
        let mut client = self.client()?;
        let collection_id = collection_id(&mut *client, collection)?;
        let Some(row) = client.query_opt(
            &format!(
                "SELECT {DOCUMENT_COLUMNS} FROM documents WHERE collection_id = $1 AND doc_id = $2"
            ),
            &[&collection_id, &id],
        )?
        else {
            return Ok(None);
        };
        let record = document_record(&PgRow(&row))?;
        let passages = client
            .query(
                "SELECT body FROM passages WHERE collection_id = $1 AND doc_id = $2 ORDER BY seq",
                &[&collection_id, &id],
            )?
            .iter()
            .map(|row| {
                serde_json::from_str(row.get::<_, &str>(0)).map_err(|e| corrupt("passage", e))
            })
            .collect::<Result<Vec<Passage>>>()?;
        Ok(Some((record, passages)))
    }

    fn documents(
        &self,
        collection: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DocumentRecord>> {
        let mut client = self.client()?;
        let collection_id = collection_id(&mut *client, collection)?;
        client
            .query(
                &format!(
                    "SELECT {DOCUMENT_SUMMARY_COLUMNS} FROM documents
                     WHERE collection_id = $1
                         AND ($2::text IS NULL OR doc_id COLLATE \"C\" > $2 COLLATE \"C\")
                     ORDER BY doc_id COLLATE \"C\" LIMIT $3"
                ),
                &[&collection_id, &after, &(limit as i64)],
            )?
            .iter()
            .map(|row| document_record(&PgRow(row)))
            .collect()
    }

    fn content_hashes(
        &self,
        collection: &str,
        origin: Origin,
    ) -> Result<HashMap<String, [u8; 32]>> {
        let mut client = self.client()?;
        let collection_id = collection_id(&mut *client, collection)?;
        client
            .query(
                "SELECT doc_id, content_hash FROM documents WHERE collection_id = $1 AND origin = $2",
                &[&collection_id, &origin.as_str()],
            )?
            .iter()
            .map(|row| {
                let hash: Vec<u8> = row.get(1);
                let hash: [u8; 32] = hash
                    .try_into()
                    .map_err(|_| corrupt("content hash", "not 32 bytes"))?;
                Ok((row.get(0), hash))
            })
            .collect()
    }
}
