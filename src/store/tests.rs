use super::*;

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

fn put(store: &SqliteStore, document: &str, texts: &[&str]) -> Result<BatchOutcome> {
    let record = record(document, &texts.join("\n\n"));
    let passages: Vec<StoredPassage> = texts
        .iter()
        .enumerate()
        .map(|(i, text)| stored(document, &format!("{document}~{i}"), text))
        .collect();
    let vectors: Vec<Vec<f32>> = texts.iter().map(|t| vec![t.len() as f32, 1.0]).collect();
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
        },
    )
}

fn vector_count(store: &SqliteStore) -> i64 {
    store
        .reader()
        .query_row("SELECT COUNT(*) FROM vectors", [], |row| row.get(0))
        .unwrap()
}

#[test]
fn documents_replace_whole_and_survive_reopening() {
    let path = directory("replace");
    {
        let store = open(&path);
        assert!(store.create_collection("c").unwrap());
        assert!(!store.create_collection("c").unwrap(), "idempotent");
        assert_eq!(
            put(&store, "a", &["一", "二", "三"]).unwrap().replaced,
            [false]
        );
        assert_eq!(put(&store, "a", &["一", "四"]).unwrap().replaced, [true]);
        assert_eq!(
            vector_count(&store),
            2,
            "the vectors of 二 and 三 went with them"
        );
    }
    let store = open(&path);
    let loaded = store.load_collection("c").unwrap();
    let ids: Vec<&str> = loaded
        .iter()
        .map(|p| p.stored.passage.id.as_str())
        .collect();
    assert_eq!(ids, ["a~0", "a~1"]);
    assert!(loaded.iter().all(|p| p.vector.is_some()));
    let (record, passages) = store.document("c", "a").unwrap().unwrap();
    assert_eq!((record.passages, passages.len()), (2, 2));
    assert_eq!(record.metadata["lang"], "zh");
    let summary = &store.collection("c").unwrap().unwrap();
    assert_eq!((summary.documents, summary.passages), (1, 2));
    assert_eq!(summary.text_bytes, "一\n\n四".len() as u64);
}

#[test]
fn a_passage_id_of_another_document_refuses_the_whole_batch() {
    let store = open(&directory("taken"));
    store.create_collection("c").unwrap();
    put(&store, "a", &["一"]).unwrap();
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

#[test]
fn vectors_are_shared_by_text_and_reused() {
    let store = open(&directory("vectors"));
    store.create_collection("c").unwrap();
    put(&store, "a", &["同一段"]).unwrap();
    let keys = [TextKey::of("同一段"), TextKey::of("别的")];
    let found = store.vectors(&keys).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[&keys[0]], vec!["同一段".len() as f32, 1.0]);
    // A second document with the same text keeps the vector alive when the first goes.
    put(&store, "b", &["同一段"]).unwrap();
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
    assert_eq!(vector_count(&store), 1);
    store
        .write(
            "c",
            &WriteBatch {
                delete: vec!["b"],
                ..WriteBatch::default()
            },
        )
        .unwrap();
    assert_eq!(vector_count(&store), 0);
}

#[test]
fn unknown_collections_and_deletion() {
    let store = open(&directory("collections"));
    assert!(matches!(
        put(&store, "a", &["一"]),
        Err(StoreError::UnknownCollection(_))
    ));
    store.create_collection("c").unwrap();
    store.create_collection("d").unwrap();
    put(&store, "a", &["一"]).unwrap();
    let names: Vec<String> = store
        .collections()
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["c", "d"]);
    assert!(store.delete_collection("c").unwrap());
    assert!(!store.delete_collection("c").unwrap());
    assert_eq!(vector_count(&store), 0);
    assert!(matches!(
        store.load_collection("c"),
        Err(StoreError::UnknownCollection(_))
    ));
}

#[test]
fn paging_through_documents() {
    let store = open(&directory("paging"));
    store.create_collection("c").unwrap();
    for id in ["b", "a", "d", "c"] {
        put(&store, id, &[id]).unwrap();
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

#[test]
fn a_full_store_refuses_writes_and_keeps_what_it_had() {
    let store = open(&directory("full"));
    store.create_collection("c").unwrap();
    put(&store, "small", &["一"]).unwrap();
    store.set_size_limit(64 * 1024).unwrap();
    let big = "很长的文本。".repeat(20_000);
    let error = put(&store, "big", &[&big]).unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error}");
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
    store
        .writer()
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
