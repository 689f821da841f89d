use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::*;
use crate::corpus::PassageId;
use crate::index::{Bounds, Filter, IndexReader};

fn directory(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("wenda-store-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&path);
    path
}

fn model() -> ModelFingerprint {
    ModelFingerprint::from_bytes([7; 32])
}

fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path, model(), 2).unwrap()
}

/// A kind of store the contract tests run against: each test asks for fresh storage by name,
/// and may open it again.
trait Backend {
    /// Empties the storage named `name`.
    fn fresh(&self, name: &str);
    fn open(&self, name: &str) -> Box<dyn Store>;
    /// Vectors stored, of every model.
    fn vector_count(&self, name: &str) -> i64;
    /// Runs `sql` on the storage named `name` behind the store's back.
    fn execute(&self, name: &str, sql: &str);
}

struct Sqlite;

impl Backend for Sqlite {
    fn fresh(&self, name: &str) {
        directory(name);
    }

    fn open(&self, name: &str) -> Box<dyn Store> {
        Box::new(open(&sqlite_path(name)))
    }

    fn vector_count(&self, name: &str) -> i64 {
        let connection = Connection::open(sqlite_path(name).join(DATABASE_FILE)).unwrap();
        connection
            .query_row("SELECT COUNT(*) FROM vectors", [], |row| row.get(0))
            .unwrap()
    }

    fn execute(&self, name: &str, sql: &str) {
        let connection = Connection::open(sqlite_path(name).join(DATABASE_FILE)).unwrap();
        connection.execute_batch(sql).unwrap();
    }
}

fn sqlite_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("wenda-store-{}-{name}", std::process::id()))
}

/// A PostgreSQL server for the tests: `WENDA_TEST_DATABASE_URL` (`./scripts/test.sh` starts
/// one). Each test gets a schema of its own.
struct Postgres {
    url: String,
}

impl Postgres {
    fn from_env() -> Option<Self> {
        match std::env::var("WENDA_TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => {
                let server = Self { url };
                // What an administrator does once: the extension in `public`, which every
                // test's schema sees (created in a test's schema, dropping it would take the
                // type away from the others).
                static EXTENSION: std::sync::Once = std::sync::Once::new();
                EXTENSION.call_once(|| {
                    server
                        .client()
                        .batch_execute(
                            "SELECT pg_advisory_lock(7418263501);
                             CREATE EXTENSION IF NOT EXISTS vector SCHEMA public;
                             SELECT pg_advisory_unlock(7418263501);",
                        )
                        .unwrap();
                });
                Some(server)
            }
            _ => {
                eprintln!(
                    "skipped: WENDA_TEST_DATABASE_URL is not set (./scripts/test.sh starts a \
                     PostgreSQL server and sets it)"
                );
                None
            }
        }
    }

    fn schema(name: &str) -> String {
        format!("wenda_test_{}_{name}", std::process::id())
    }

    fn open_postgres(&self, name: &str) -> PostgresStore {
        let separator = if self.url.contains('?') { '&' } else { '?' };
        let url = format!(
            "{}{separator}options=-c%20search_path%3D{}%2Cpublic",
            self.url,
            Self::schema(name)
        );
        PostgresStore::open(&url, model(), 2, &VectorSearchSettings::default()).unwrap()
    }

    fn client(&self) -> ::postgres::Client {
        ::postgres::Client::connect(&self.url, ::postgres::NoTls).unwrap()
    }
}

impl Backend for Postgres {
    fn fresh(&self, name: &str) {
        let schema = Self::schema(name);
        self.client()
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
            ))
            .unwrap();
    }

    fn open(&self, name: &str) -> Box<dyn Store> {
        Box::new(self.open_postgres(name))
    }

    fn vector_count(&self, name: &str) -> i64 {
        let query = format!("SELECT COUNT(*) FROM {}.vectors", Self::schema(name));
        self.client().query_one(&query, &[]).unwrap().get(0)
    }

    fn execute(&self, name: &str, sql: &str) {
        let schema = Self::schema(name);
        self.client()
            .batch_execute(&format!("SET search_path TO {schema}, public; {sql}"))
            .unwrap();
    }
}

/// Runs each contract test against SQLite and against PostgreSQL.
macro_rules! contract {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(#[test]
            fn $test() {
                super::$test(&super::Sqlite);
            })*
        }
        mod postgres {
            $(#[test]
            fn $test() {
                if let Some(server) = super::Postgres::from_env() {
                    super::$test(&server);
                }
            })*
        }
    };
}

contract!(
    documents_replace_whole_and_survive_reopening,
    a_passage_id_of_another_document_refuses_the_whole_batch,
    vectors_are_shared_by_text_and_reused,
    unknown_collections_and_deletion,
    paging_through_documents,
    jobs_keep_their_lines_and_progress,
    errors_say_whether_to_retry,
);

fn record(id: &str, text: &str) -> DocumentRecord {
    DocumentRecord {
        id: id.into(),
        layout: Layout::Plain,
        title: Some("标题".into()),
        date: None,
        source: None,
        url: None,
        metadata: serde_json::json!({"lang": "zh"})
            .as_object()
            .cloned()
            .unwrap(),
        text: text.into(),
        origin: Origin::Api,
        content_hash: [1; 32],
        created_at: 1,
        updated_at: 2,
        passages: 0,
    }
}

fn stored(document: &str, id: &str, text: &str) -> StoredPassage {
    StoredPassage {
        passage: crate::corpus::passage_for_tests(document, id, text),
        text_key: TextKey::of(text),
        terms: TermCounts::default(),
    }
}

fn put(store: &dyn Store, document: &str, texts: &[&str]) -> Result<BatchOutcome> {
    let record = record(document, &texts.join("\n\n"));
    let passages: Vec<StoredPassage> = texts
        .iter()
        .enumerate()
        .map(|(i, text)| stored(document, &format!("{document}~{i}"), text))
        .collect();
    let vectors: Vec<Vec<f32>> = texts.iter().map(|t| vec![t.len() as f32, 1.0]).collect();
    let sentences: Vec<SentenceVectors> = texts
        .iter()
        .map(|t| one_sentence(t, vec![t.len() as f32, 2.0]))
        .collect();
    store.write(
        "c",
        &WriteBatch {
            put: vec![DocumentWrite {
                record: &record,
                passages: &passages,
            }],
            delete: Vec::new(),
            job: None,
            vectors: passages
                .iter()
                .zip(&vectors)
                .map(|(p, v)| (p.text_key, v.as_slice()))
                .collect(),
            sentence_vectors: passages
                .iter()
                .zip(&sentences)
                .map(|(p, s)| (p.text_key, s))
                .collect(),
        },
    )
}

/// The sentence vectors of a text that is one sentence.
fn one_sentence(text: &str, vector: Vec<f32>) -> SentenceVectors {
    SentenceVectors {
        spans: std::iter::once(0..text.chars().count()).collect(),
        vectors: vec![vector],
    }
}

fn documents_replace_whole_and_survive_reopening(backend: &dyn Backend) {
    backend.fresh("replace");
    {
        let store = backend.open("replace");
        let store = &*store;
        assert!(store.create_collection("c").unwrap());
        assert!(!store.create_collection("c").unwrap(), "idempotent");
        assert_eq!(
            put(store, "a", &["一", "二", "三"]).unwrap().replaced,
            [false]
        );
        assert_eq!(put(store, "a", &["一", "四"]).unwrap().replaced, [true]);
        assert_eq!(
            backend.vector_count("replace"),
            2,
            "the vectors of 二 and 三 went with them"
        );
    }
    let store = backend.open("replace");
    let loaded = store.load_collection("c").unwrap();
    let ids: Vec<&str> = loaded
        .iter()
        .map(|p| p.stored.passage.id.as_str())
        .collect();
    assert_eq!(ids, ["a~0", "a~1"]);
    assert!(loaded.iter().all(|p| p.vector != StoredVector::Missing));
    let (record, passages) = store.document("c", "a").unwrap().unwrap();
    assert_eq!((record.passages, passages.len()), (2, 2));
    assert_eq!(record.metadata["lang"], "zh");
    let summary = &store.collection("c").unwrap().unwrap();
    assert_eq!((summary.documents, summary.passages), (1, 2));
    assert_eq!(summary.text_bytes, "一\n\n四".len() as u64);
}

fn a_passage_id_of_another_document_refuses_the_whole_batch(backend: &dyn Backend) {
    backend.fresh("taken");
    let store = backend.open("taken");
    store.create_collection("c").unwrap();
    put(&*store, "a", &["一"]).unwrap();
    let record = record("b", "二");
    let passages = [stored("b", "a~0", "二")];
    let error = store
        .write(
            "c",
            &WriteBatch {
                put: vec![DocumentWrite {
                    record: &record,
                    passages: &passages,
                }],
                ..WriteBatch::default()
            },
        )
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::PassageTaken { document, .. } if document == "a"),
        "{error}"
    );
    assert!(
        store.document("c", "b").unwrap().is_none(),
        "nothing half-written"
    );
    assert_eq!(store.collection("c").unwrap().unwrap().documents, 1);
}

fn vectors_are_shared_by_text_and_reused(backend: &dyn Backend) {
    backend.fresh("vectors");
    let store = backend.open("vectors");
    store.create_collection("c").unwrap();
    put(&*store, "a", &["同一段"]).unwrap();
    let keys = [TextKey::of("同一段"), TextKey::of("别的")];
    let found = store.vectors(&keys).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[&keys[0]], vec!["同一段".len() as f32, 1.0]);
    let sentences = store.sentence_vectors(&keys).unwrap();
    assert_eq!(
        sentences.get(&keys[0]),
        Some(&one_sentence("同一段", vec!["同一段".len() as f32, 2.0]))
    );
    assert_eq!(sentences.len(), 1);
    // Sentence vectors made again (the text split otherwise) replace the old ones.
    let resplit = SentenceVectors {
        spans: vec![0..2, 2..3],
        vectors: vec![vec![0.5, 0.25], vec![-1.0, 0.0]],
    };
    store
        .write(
            "c",
            &WriteBatch {
                sentence_vectors: vec![(keys[0], &resplit)],
                ..WriteBatch::default()
            },
        )
        .unwrap();
    assert_eq!(store.sentence_vectors(&keys).unwrap()[&keys[0]], resplit);
    // A second document with the same text keeps the vector alive when the first goes.
    put(&*store, "b", &["同一段"]).unwrap();
    let outcome = store
        .write(
            "c",
            &WriteBatch {
                delete: vec!["a", "missing"],
                ..WriteBatch::default()
            },
        )
        .unwrap();
    assert_eq!(outcome.deleted, [true, false]);
    assert_eq!(backend.vector_count("vectors"), 1);
    assert_eq!(store.sentence_vectors(&keys).unwrap().len(), 1);
    store
        .write(
            "c",
            &WriteBatch {
                delete: vec!["b"],
                ..WriteBatch::default()
            },
        )
        .unwrap();
    assert_eq!(backend.vector_count("vectors"), 0);
    assert!(
        store.sentence_vectors(&keys).unwrap().is_empty(),
        "sentence vectors go with the last passage of their text"
    );
}

fn unknown_collections_and_deletion(backend: &dyn Backend) {
    backend.fresh("collections");
    let store = backend.open("collections");
    assert!(matches!(
        put(&*store, "a", &["一"]),
        Err(StoreError::UnknownCollection(_))
    ));
    store.create_collection("c").unwrap();
    store.create_collection("d").unwrap();
    put(&*store, "a", &["一"]).unwrap();
    let names: Vec<String> = store
        .collections()
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["c", "d"]);
    assert!(store.delete_collection("c").unwrap());
    assert!(!store.delete_collection("c").unwrap());
    assert_eq!(backend.vector_count("collections"), 0);
    assert!(store
        .sentence_vectors(&[TextKey::of("一")])
        .unwrap()
        .is_empty());
    assert!(matches!(
        store.load_collection("c"),
        Err(StoreError::UnknownCollection(_))
    ));
}

fn paging_through_documents(backend: &dyn Backend) {
    backend.fresh("paging");
    let store = backend.open("paging");
    store.create_collection("c").unwrap();
    for id in ["b", "a", "d", "c"] {
        put(&*store, id, &[id]).unwrap();
    }
    let page = store.documents("c", None, 3).unwrap();
    let ids: Vec<&str> = page.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c"]);
    assert!(
        page.iter().all(|d| d.text.is_empty()),
        "listings leave texts out"
    );
    let rest = store.documents("c", Some("c"), 3).unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].id, "d");
}

fn jobs_keep_their_lines_and_progress(backend: &dyn Backend) {
    backend.fresh("jobs");
    let store = backend.open("jobs");
    store.create_collection("c").unwrap();
    let line = |seq: usize, refused: Option<&str>| JobLine {
        seq,
        file: (seq == 2).then(|| "upload.jsonl".to_owned()),
        line: seq + 1,
        body: format!("{{\"id\": \"d{seq}\"}}"),
        refused: refused.map(|why| ("invalid_request".to_owned(), why.to_owned())),
    };
    let lines = [
        line(0, None),
        line(1, Some("not JSON")),
        line(2, None),
        line(3, None),
    ];
    assert!(matches!(
        store.create_job("j0", "missing", &lines),
        Err(StoreError::UnknownCollection(_))
    ));
    let job = store.create_job("j1", "c", &lines).unwrap();
    assert_eq!(
        (job.status, job.documents, job.failed),
        (JobStatus::Queued, 4, 1)
    );
    assert_eq!(store.unfinished_jobs().unwrap().len(), 1);
    let pending: Vec<usize> = store
        .claim_lines("j1", 10, 1_000)
        .unwrap()
        .iter()
        .map(|l| l.seq)
        .collect();
    assert_eq!(pending, [0, 2, 3]);
    store
        .set_job_status("j1", JobStatus::Running, None)
        .unwrap();

    // A batch's progress is committed with its documents.
    let progress = JobProgress {
        job: "j1".into(),
        done: vec![0],
        failed: vec![(2, "no_passages".into(), "empty".into())],
        passages: 1,
        embedded: 1,
        tokens: 9,
        reused: 0,
        working_ms: 5,
    };
    let record = record("d0", "一");
    let passages = [stored("d0", "d0~0", "一")];
    store
        .write(
            "c",
            &WriteBatch {
                put: vec![DocumentWrite {
                    record: &record,
                    passages: &passages,
                }],
                job: Some(&progress),
                ..WriteBatch::default()
            },
        )
        .unwrap();
    let pending: Vec<usize> = store
        .claim_lines("j1", 10, 1_000)
        .unwrap()
        .iter()
        .map(|l| l.seq)
        .collect();
    assert_eq!(pending, [3]);
    let job = store.job("j1").unwrap().unwrap();
    assert_eq!(
        (job.done, job.failed, job.passages, job.tokens),
        (1, 2, 1, 9)
    );
    assert!(job.started_at.is_some() && job.finished_at.is_none());
    let errors = store.job_errors("j1", 10).unwrap();
    let where_: Vec<(Option<&str>, usize, &str)> = errors
        .iter()
        .map(|e| (e.file.as_deref(), e.line, e.code.as_str()))
        .collect();
    assert_eq!(
        where_,
        [
            (None, 2, "invalid_request"),
            (Some("upload.jsonl"), 3, "no_passages")
        ]
    );
    store
        .set_job_status("j1", JobStatus::Completed, None)
        .unwrap();
    let job = store.job("j1").unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Completed);
    assert!(job.finished_at.is_some());
    assert!(store.unfinished_jobs().unwrap().is_empty());
    assert!(store.job("nothing").unwrap().is_none());
}

/// A statement the database refuses is a bug ([`StoreError::Internal`], never "retry later"),
/// located where wenda runs it; a constraint another writer met first is a conflict.
fn errors_say_whether_to_retry(backend: &dyn Backend) {
    backend.fresh("errors");
    let store = backend.open("errors");
    store.create_collection("c").unwrap();
    put(&*store, "a", &["一"]).unwrap();
    // Another writer's constraint: documents may not share a title (both are titled 标题).
    backend.execute(
        "errors",
        "CREATE UNIQUE INDEX documents_one_title ON documents (title)",
    );
    let error = put(&*store, "b", &["二"]).unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error}");
    // A schema wenda's statements no longer fit: what a bug in a query looks like.
    backend.execute(
        "errors",
        "ALTER TABLE documents RENAME COLUMN title TO heading",
    );
    let error = store.documents("c", None, 10).unwrap_err();
    match &error {
        StoreError::Internal { statement, message } => {
            assert!(statement.file().contains("store"), "{statement}");
            assert!(message.contains("title"), "{message}");
        }
        other => panic!("a refused statement is internal, not {other:?}"),
    }
    let error = put(&*store, "c", &["三"]).unwrap_err();
    assert!(matches!(error, StoreError::Internal { .. }), "{error}");
    // What was there is intact.
    backend.execute(
        "errors",
        "ALTER TABLE documents RENAME COLUMN heading TO title",
    );
    assert!(store.document("c", "a").unwrap().is_some());
    assert!(store.document("c", "b").unwrap().is_none());
}

#[test]
fn an_unreachable_postgres_is_unavailable() {
    // Nothing listens on port 1.
    let error = PostgresStore::open(
        "postgres://wenda@127.0.0.1:1/wenda",
        model(),
        2,
        &VectorSearchSettings::default(),
    )
    .err()
    .unwrap();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error}");
}

#[test]
fn postgres_vector_search_refused_is_a_bug_not_an_outage() {
    use crate::index::ReadError;
    let Some(server) = Postgres::from_env() else {
        return;
    };
    server.fresh("refused_search");
    let store = server.open_postgres("refused_search");
    store.create_collection("c").unwrap();
    put(&store, "a", &["一"]).unwrap();
    let vectors = store.vector_search("c").unwrap();
    let id = PassageId::new("a~0");
    assert!(vectors.vector(&id).unwrap().is_some());
    server.execute(
        "refused_search",
        "ALTER TABLE passages RENAME COLUMN embedding TO embedding_gone",
    );
    match vectors.vector(&id) {
        Err(ReadError::Refused(problem)) => {
            assert!(problem.contains("vectors.rs"), "names where: {problem}")
        }
        other => panic!("a refused query is not an outage: {other:?}"),
    }
}

#[test]
fn a_full_store_refuses_writes_and_keeps_what_it_had() {
    let store = open(&directory("full"));
    store.create_collection("c").unwrap();
    put(&store, "small", &["一"]).unwrap();
    store.set_size_limit(64 * 1024).unwrap();
    let big = "很长的文本。".repeat(20_000);
    let error = put(&store, "big", &[&big]).unwrap_err();
    assert!(matches!(error, StoreError::Full(_)), "{error}");
    assert!(error.to_string().contains("--max-store-bytes"), "{error}");
    assert!(store.document("c", "big").unwrap().is_none());
    assert!(store.document("c", "small").unwrap().is_some());
    assert_eq!(store.load_collection("c").unwrap().len(), 1);
}

#[test]
fn one_process_at_a_time_and_newer_schemas_are_refused() {
    let path = directory("lock");
    let store = open(&path);
    assert!(matches!(
        SqliteStore::open(&path, model(), 2),
        Err(StoreError::InUse(_))
    ));
    Connection::open(path.join(DATABASE_FILE))
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    drop(store);
    assert!(matches!(
        SqliteStore::open(&path, model(), 2),
        Err(StoreError::NewerSchema { found: 99, .. })
    ));
}

#[test]
fn a_damaged_database_is_reported_not_replaced() {
    let path = directory("damaged");
    drop(open(&path));
    std::fs::write(
        path.join(DATABASE_FILE),
        b"this is not a database, it is a text file",
    )
    .unwrap();
    let error = SqliteStore::open(&path, model(), 2).err().unwrap();
    assert!(matches!(error, StoreError::Corrupt { .. }), "{error}");
    assert!(std::fs::read(path.join(DATABASE_FILE))
        .unwrap()
        .starts_with(b"this is not"));
}

#[test]
fn backups_are_consistent_copies() {
    let path = directory("backup");
    let store = open(&path);
    store.create_collection("c").unwrap();
    put(&store, "a", &["一", "二"]).unwrap();
    let copy = path.join("copy.sqlite3");
    super::backup(&path, &copy).unwrap();
    assert!(
        super::backup(&path, &copy).is_err(),
        "an existing file is not overwritten"
    );
    drop(store);
    let copy_dir = directory("backup-restored");
    std::fs::create_dir_all(&copy_dir).unwrap();
    std::fs::rename(&copy, copy_dir.join(DATABASE_FILE)).unwrap();
    let restored = open(&copy_dir);
    assert_eq!(restored.load_collection("c").unwrap().len(), 2);
}

#[test]
fn postgres_replicas_claim_disjoint_lines_and_take_over_expired_claims() {
    let Some(server) = Postgres::from_env() else {
        return;
    };
    server.fresh("claims");
    let (a, b) = (server.open("claims"), server.open("claims"));
    a.create_collection("c").unwrap();
    let lines: Vec<JobLine> = (0..5)
        .map(|seq| JobLine {
            seq,
            file: None,
            line: seq + 1,
            body: "{}".into(),
            refused: None,
        })
        .collect();
    a.create_job("j", "c", &lines).unwrap();
    let seqs = |lines: Vec<JobLine>| lines.into_iter().map(|l| l.seq).collect::<Vec<_>>();
    assert_eq!(seqs(a.claim_lines("j", 2, 60_000).unwrap()), [0, 1]);
    assert_eq!(seqs(b.claim_lines("j", 10, 60_000).unwrap()), [2, 3, 4]);
    assert_eq!(
        seqs(a.claim_lines("j", 10, 60_000).unwrap()),
        [0, 1],
        "its own, renewed"
    );
    assert_eq!(b.lines_left("j").unwrap(), 5);
    // A claim that has run out (a replica that died) goes to whoever asks.
    assert_eq!(seqs(a.claim_lines("j", 10, -1).unwrap()), [0, 1]);
    assert_eq!(
        seqs(b.claim_lines("j", 10, 60_000).unwrap()),
        [0, 1, 2, 3, 4]
    );
    assert!(a.claim_lines("j", 10, 60_000).unwrap().is_empty());
}

/// Passages with titles, days and metadata of every kind the filters test, and 2-d vectors.
fn filterable_passages() -> Vec<(StoredPassage, Vec<f32>)> {
    let titles = [
        Some("Äpfel und Birnen"),
        Some("人工智能发展"),
        Some("ÄPFEL news"),
        None,
    ];
    (0..48)
        .map(|i| {
            let document = format!("d{}", i % 6);
            let id = format!("p{i}");
            let text = format!("段落{i}");
            let mut stored = stored(&document, &id, &text);
            let passage = &mut stored.passage;
            passage.article.title = titles[i % 4].map(str::to_owned);
            passage.article.date = (i % 7 != 0).then(|| crate::corpus::ArticleDate {
                text: "printed".into(),
                iso: Some(format!("2024-0{}-1{}", 1 + i % 9, i % 10)),
            });
            let tag = if i % 5 == 0 {
                serde_json::json!(["a", "x"])
            } else {
                serde_json::json!(["a", "b"][i % 2])
            };
            let number = if i % 3 == 0 {
                serde_json::json!(i as f64 + 0.5)
            } else {
                serde_json::json!(i)
            };
            let mut metadata = serde_json::json!({
                "tag": tag,
                "n": number,
                "flag": i % 3 == 0,
                "when": if i % 8 == 0 { "2024-02-30T10:00:00".to_owned() }
                        else { format!("2024-03-{}", 10 + i % 20) },
            });
            match i % 4 {
                0 => metadata["note"] = serde_json::json!(""),
                1 => {}
                2 => metadata["note"] = serde_json::json!("Grüße aus BERLIN"),
                _ => metadata["note"] = serde_json::json!(["x", []]),
            }
            passage.metadata = metadata.as_object().cloned().unwrap();
            let angle = i as f32 * 0.13;
            (stored, vec![angle.cos(), angle.sin()])
        })
        .collect()
}

fn filters_to_compare() -> Vec<Filter> {
    use crate::index::{IsoDate, MetadataCondition, MetadataFilter, MetadataTest, Scalar};
    let field = |key: &str, test: MetadataTest| {
        MetadataFilter::Field(MetadataCondition {
            key: key.into(),
            test,
        })
    };
    let day = |text: &str| IsoDate::try_from(text.to_owned()).unwrap();
    let metadata = |filters: Vec<MetadataFilter>| Filter {
        metadata: filters,
        ..Filter::default()
    };
    vec![
        Filter::default(),
        Filter {
            document: Some("d2".into()),
            ..Filter::default()
        },
        Filter {
            title: Some("äpfel".into()),
            ..Filter::default()
        },
        Filter {
            date_from: Some(day("2024-03-01")),
            date_to: Some(day("2024-06-15")),
            ..Filter::default()
        },
        metadata(vec![field(
            "tag",
            MetadataTest::Equals(Scalar::Text("x".into())),
        )]),
        metadata(vec![field("n", MetadataTest::Equals(Scalar::Number(9.5)))]),
        metadata(vec![field("n", MetadataTest::Equals(Scalar::Number(10.0)))]),
        metadata(vec![field(
            "flag",
            MetadataTest::Equals(Scalar::Bool(true)),
        )]),
        metadata(vec![field(
            "tag",
            MetadataTest::In(vec![Scalar::Text("b".into()), Scalar::Number(1.0)]),
        )]),
        metadata(vec![field(
            "n",
            MetadataTest::Range(Bounds {
                lower: Some((10.0, false)),
                upper: Some((30.5, true)),
            }),
        )]),
        metadata(vec![field(
            "when",
            MetadataTest::DateRange(Bounds {
                lower: Some((day("2024-02-01"), true)),
                upper: Some((day("2024-03-20"), false)),
            }),
        )]),
        metadata(vec![field("note", MetadataTest::Contains("grüsse".into()))]),
        metadata(vec![field("note", MetadataTest::Contains("grüße".into()))]),
        metadata(vec![field("note", MetadataTest::Empty)]),
        metadata(vec![MetadataFilter::Not(Box::new(field(
            "note",
            MetadataTest::Empty,
        )))]),
        metadata(vec![MetadataFilter::Not(Box::new(field(
            "note",
            MetadataTest::Prefix("grü".into()),
        )))]),
        metadata(vec![MetadataFilter::Any(vec![
            field("flag", MetadataTest::Equals(Scalar::Bool(true))),
            MetadataFilter::All(vec![
                field("tag", MetadataTest::Equals(Scalar::Text("a".into()))),
                MetadataFilter::Not(Box::new(field(
                    "n",
                    MetadataTest::Range(Bounds {
                        lower: None,
                        upper: Some((20.0, true)),
                    }),
                ))),
            ]),
        ])]),
        metadata(vec![MetadataFilter::Any(Vec::new())]),
        Filter {
            document: Some("d3".into()),
            title: Some("人工".into()),
            metadata: vec![field("tag", MetadataTest::Equals(Scalar::Text("b".into())))],
            ..Filter::default()
        },
    ]
}

/// Searching vectors in PostgreSQL gives what the exact search in memory gives, whatever the
/// filter: the SQL a filter becomes admits at least what the filter admits (exactly that where
/// it says so), and the reader rechecks the rest.
#[test]
fn postgres_vector_search_with_filters_matches_memory() {
    use crate::index::{Analyzer, Index, IndexChange, IndexedPassage, MemoryIndex, NearestQuery};
    let Some(server) = Postgres::from_env() else {
        return;
    };
    // A schema of its own: the contract test `vectors_are_shared_by_text_and_reused` runs
    // alongside and recreates schema `vectors`.
    server.fresh("filtered_search");
    let store = server.open_postgres("filtered_search");
    store.create_collection("c").unwrap();
    let passages = filterable_passages();
    let records: Vec<DocumentRecord> = (0..6).map(|d| record(&format!("d{d}"), "…")).collect();
    let grouped: Vec<Vec<StoredPassage>> = records
        .iter()
        .map(|record| {
            passages
                .iter()
                .filter(|(p, _)| p.passage.citation.path == record.id)
                .map(|(p, _)| p.clone())
                .collect()
        })
        .collect();
    store
        .write(
            "c",
            &WriteBatch {
                put: records
                    .iter()
                    .zip(&grouped)
                    .map(|(record, passages)| DocumentWrite { record, passages })
                    .collect(),
                vectors: passages
                    .iter()
                    .map(|(p, v)| (p.text_key, v.as_slice()))
                    .collect(),
                ..WriteBatch::default()
            },
        )
        .unwrap();
    let analyzer = Arc::new(Analyzer::default());
    let added = |vectors: bool| IndexChange {
        remove_documents: Vec::new(),
        add: passages
            .iter()
            .map(|(p, v)| IndexedPassage {
                passage: p.passage.clone(),
                vector: if vectors { v.clone() } else { Vec::new() },
                terms: p.terms.clone(),
            })
            .collect(),
    };
    let memory = MemoryIndex::new(2, Arc::clone(&analyzer));
    memory.apply(added(true)).unwrap();
    // Filters searched exactly (as they are when they admit few passages), and the HNSW graph
    // walked with the filter (as it is when they admit many).
    let remote = |vectors: Arc<dyn VectorSearch>| {
        let index = crate::index::RemoteIndex::new(
            MemoryIndex::lexical_only(Arc::clone(&analyzer)),
            vectors,
        );
        index.apply(added(false)).unwrap();
        index.reader()
    };
    let exact = memory.reader();
    let readers = [
        remote(store.vector_search("c").unwrap()),
        remote(Arc::new(store.vectors("c", 0))),
    ];
    let mut client = server.client();
    client
        .batch_execute(&format!(
            "SET search_path = {}, public",
            Postgres::schema("filtered_search")
        ))
        .unwrap();
    let query = [0.3f32.cos(), 0.3f32.sin()];
    for filter in filters_to_compare() {
        let admitted: std::collections::BTreeSet<String> = {
            let compiled = filter.compile();
            passages
                .iter()
                .filter(|(p, _)| {
                    let title = p.passage.article.title.as_deref().map(crate::index::fold);
                    compiled.accepts(&p.passage, title.as_deref())
                })
                .map(|(p, _)| p.passage.id.to_string())
                .collect()
        };
        let (sql, params, exact_sql) = super::postgres::filter_sql(&filter);
        let params: Vec<&(dyn ::postgres::types::ToSql + Sync)> =
            params.iter().map(|p| p.as_ref()).collect();
        let selected: std::collections::BTreeSet<String> = client
            .query(
                &format!("SELECT passage_id FROM passages WHERE {sql}"),
                &params,
            )
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert!(selected.is_superset(&admitted), "{filter:?}: {sql}");
        if exact_sql {
            assert_eq!(selected, admitted, "{filter:?}: {sql}");
        }
        let nearest = NearestQuery {
            vector: &query,
            k: 5,
            filter: &filter,
            exclude: exact.slot_of(&PassageId::new("p2")),
            ef_search: None,
        };
        let ids = |reader: &Arc<dyn IndexReader>, hits: Vec<crate::index::Hit>| {
            hits.iter()
                .map(|hit| (reader.passage(hit.slot).id.to_string(), hit.score))
                .collect::<Vec<_>>()
        };
        let expected = ids(&exact, exact.nearest(&nearest).unwrap());
        for approximate in &readers {
            let found = ids(
                approximate,
                approximate
                    .nearest(&NearestQuery {
                        exclude: approximate.slot_of(&PassageId::new("p2")),
                        ..nearest
                    })
                    .unwrap(),
            );
            assert_eq!(expected.len(), found.len(), "{filter:?}");
            for ((_, want), (id, got)) in expected.iter().zip(&found) {
                // Half precision: cosines agree to about 1e-3, so near-ties may swap.
                assert!(
                    (want - got).abs() < 2e-3,
                    "{filter:?}: {expected:?} {found:?}"
                );
                assert!(admitted.contains(id), "{filter:?}: {id} is not admitted");
            }
        }
        assert!(admitted.len() < 5 || expected.len() == 5);
    }
    // Passages whose vectors are asked for by id.
    let approximate = &readers[0];
    let slot = approximate.slot_of(&PassageId::new("p7")).unwrap();
    let cosine = approximate.cosines(&query, &[slot]).unwrap()[0];
    let want = exact.cosines(&query, &[exact.slot_of(&PassageId::new("p7")).unwrap()]);
    assert!((cosine - want.unwrap()[0]).abs() < 2e-3);
    let vector = approximate.vector(slot).unwrap();
    assert!((vector[0] - (7.0f32 * 0.13).cos()).abs() < 2e-3);
}
