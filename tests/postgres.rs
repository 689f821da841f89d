//! `wenda serve --store postgres://…` against a real PostgreSQL 18 with pgvector
//! (`./scripts/test.sh` starts one and sets `WENDA_TEST_DATABASE_URL`): the same API over the
//! shared store, durable through `kill -9`, and readable by a second replica.

mod common;

use common::{call, fresh_database, ranking, send_json, spawn_serve, ServerProcess};
use serde_json::{json, Value};

/// Ids and scores of the answer to `question` through `server`.
fn ids(server: &ServerProcess, path: &str, question: &str) -> Vec<(String, f64)> {
    ranking(server, path, &json!({"query": question}))
}

/// Imports `documents` documents with texts from `text(i)` into a new collection `bulk`
/// through `server`; returns the job's id.
fn import_bulk(server: &ServerProcess, documents: usize, text: impl Fn(usize) -> String) -> String {
    call(&server.url, "PUT", "/v1/collections/bulk", None);
    let body: String = (0..documents)
        .map(|i| json!({"id": format!("d{i}"), "text": text(i)}).to_string() + "\n")
        .collect();
    let (status, accepted) = call(
        &server.url,
        "POST",
        "/v1/collections/bulk/documents:import",
        Some(("application/x-ndjson", body.as_bytes())),
    );
    assert_eq!(status, 202, "{accepted}");
    accepted["id"].as_str().unwrap().to_owned()
}

#[test]
fn the_api_over_postgres_survives_kill_9_and_is_shared_by_replicas() {
    let Some(url) = fresh_database("serve") else {
        return;
    };
    let store = ["--store", url.as_str()];
    let server = spawn_serve(&store);
    let before = ids(&server, "/v1/search", "模速空间在哪个区？");
    assert!(!before.is_empty());
    call(&server.url, "PUT", "/v1/collections/notes", None);
    let note =
        json!({"text": "这份笔记记录了长江流域的生态保护措施。", "metadata": {"kind": "note"}});
    let (status, written) = send_json(
        &server.url,
        "PUT",
        "/v1/collections/notes/documents/n1",
        &note,
    );
    assert_eq!(status, 201, "{written}");
    let notes = ids(&server, "/v1/collections/notes/search", "长江生态保护");
    assert_eq!(notes[0].0, "n1~1.1");
    server.kill();

    // Restarted: everything is in the database; nothing is embedded again.
    let server = spawn_serve(&store);
    assert_eq!(
        server.logged("store loaded", "embedded").as_deref(),
        Some("0")
    );
    assert_eq!(ids(&server, "/v1/search", "模速空间在哪个区？"), before);
    assert_eq!(
        ids(&server, "/v1/collections/notes/search", "长江生态保护"),
        notes
    );
    let (_, document) = call(
        &server.url,
        "GET",
        "/v1/collections/notes/documents/n1",
        None,
    );
    assert_eq!(document["metadata"]["kind"], "note");

    // A second replica on the same database serves the same answers.
    let replica = spawn_serve(&store);
    assert_eq!(
        ids(&replica, "/v1/collections/notes/search", "长江生态保护"),
        notes
    );
    let (_, collections): (u16, Value) = call(&replica.url, "GET", "/v1/collections", None);
    assert_eq!(collections["collections"].as_array().unwrap().len(), 2);
}

#[test]
fn replicas_starting_together_migrate_and_load_the_corpus_once() {
    let Some(url) = fresh_database("together") else {
        return;
    };
    let replicas: Vec<ServerProcess> = std::thread::scope(|scope| {
        let starting: Vec<_> = (0..3)
            .map(|_| scope.spawn(|| spawn_serve(&["--store", url.as_str()])))
            .collect();
        starting.into_iter().map(|s| s.join().unwrap()).collect()
    });
    for replica in &replicas {
        let (_, default) = call(&replica.url, "GET", "/v1/collections/default", None);
        assert_eq!(default["documents"], 1, "{default}");
        assert!(!ids(replica, "/v1/search", "人工智能").is_empty());
    }
}

/// Polls `ready` until it holds (a guard against hanging, not a speed check: two minutes);
/// returns how long it took.
fn until(what: &str, ready: impl Fn() -> bool) -> std::time::Duration {
    let started = std::time::Instant::now();
    while !ready() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(120),
            "{what}: not seen after two minutes"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    started.elapsed()
}

#[test]
fn a_write_through_one_replica_is_searchable_through_another() {
    let Some(url) = fresh_database("follow") else {
        return;
    };
    let store = ["--store", url.as_str(), "--no-corpus"];
    let (a, b) = (spawn_serve(&store), spawn_serve(&store));
    call(&a.url, "PUT", "/v1/collections/shared", None);
    let lag = until("a collection created through A", || {
        call(&b.url, "GET", "/v1/collections/shared", None).0 == 200
    });
    eprintln!("collection visible through B after {lag:?}");

    let note = json!({"text": "第一版：这份笔记讨论了城市垃圾分类的推进情况。"});
    send_json(&a.url, "PUT", "/v1/collections/shared/documents/n1", &note);
    let search = |server: &ServerProcess| ids(server, "/v1/collections/shared/search", "垃圾分类");
    let lag = until("a document written through A", || !search(&b).is_empty());
    eprintln!("document searchable through B after {lag:?}");
    assert_eq!(search(&b), search(&a), "the same passages and scores");

    let replacement = json!({"text": "第二版：改为讨论城市绿化和公园建设。"});
    send_json(
        &a.url,
        "PUT",
        "/v1/collections/shared/documents/n1",
        &replacement,
    );
    until("a document replaced through A", || {
        let (_, answer) = send_json(
            &b.url,
            "POST",
            "/v1/collections/shared/search",
            &json!({"query": "公园建设"}),
        );
        answer["results"][0]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("第二版"))
    });
    let (_, document) = call(&b.url, "GET", "/v1/collections/shared/documents/n1", None);
    assert!(document["text"].as_str().unwrap().starts_with("第二版"));

    call(
        &a.url,
        "DELETE",
        "/v1/collections/shared/documents/n1",
        None,
    );
    until("a document deleted through A", || search(&b).is_empty());

    call(&a.url, "DELETE", "/v1/collections/shared", None);
    until("a collection deleted through A", || {
        call(&b.url, "GET", "/v1/collections/shared/search?q=a", None).0 == 404
    });
}

#[test]
fn an_import_left_by_a_killed_replica_is_finished_by_another() {
    let Some(url) = fresh_database("takeover") else {
        return;
    };
    let store = ["--store", url.as_str(), "--no-corpus"];
    let (a, b) = (spawn_serve(&store), spawn_serve(&store));
    let documents = 120;
    let id = import_bulk(&a, documents, |i| {
        (0..6)
            .map(|p| format!("文档{i}段落{p}：关于城市治理第{p}项措施的说明，涉及交通和住房。\n\n"))
            .collect()
    });
    let job = format!("/v1/jobs/{id}");
    until("the first batches", || {
        let (_, report) = call(&a.url, "GET", &job, None);
        report["documents"]["done"].as_u64().unwrap() >= 32
    });
    a.kill();

    // B takes the job over once A's lease has run out (30 s) and finishes it.
    let started = std::time::Instant::now();
    let report = loop {
        let (_, report) = call(&b.url, "GET", &job, None);
        if report["status"] == "completed" {
            break report;
        }
        assert!(started.elapsed().as_secs() < 90, "not taken over: {report}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    eprintln!(
        "taken over and finished {:?} after the kill",
        started.elapsed()
    );
    assert_eq!(report["documents"]["done"], documents, "{report}");
    let (_, described) = call(&b.url, "GET", "/v1/collections/bulk", None);
    assert_eq!(described["documents"], documents);
    until("every imported document searchable through B", || {
        let (_, answer) = send_json(
            &b.url,
            "POST",
            "/v1/collections/bulk/search",
            &json!({"query": "文档119段落5", "mode": "lexical", "top_k": 1}),
        );
        answer["results"][0]["document"]["path"] == "d119"
    });
}

#[test]
fn replicas_share_the_work_of_an_import() {
    let Some(url) = fresh_database("share") else {
        return;
    };
    let store = ["--store", url.as_str(), "--no-corpus"];
    let (a, b) = (spawn_serve(&store), spawn_serve(&store));
    let documents = 320;
    // Long enough that the import outlasts the other replica's look for work.
    let id = import_bulk(&a, documents, |i| {
        (0..12)
            .map(|p| format!("第{i}份简报第{p}条：城市治理的第{p}项措施，涉及交通、医疗和住房。"))
            .collect()
    });
    until("the import", || {
        call(&b.url, "GET", &format!("/v1/jobs/{id}"), None).1["status"] == "completed"
    });
    let (_, report) = call(&a.url, "GET", &format!("/v1/jobs/{id}"), None);
    assert_eq!(report["documents"]["done"], documents, "{report}");
    // Both replicas claimed lines of it.
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let workers: i64 = client
        .query_one(
            "SELECT COUNT(DISTINCT claimed_by) FROM job_lines WHERE job_id = $1",
            &[&id],
        )
        .unwrap()
        .get(0);
    assert_eq!(workers, 2, "the import was shared");
    let (_, described) = call(&b.url, "GET", "/v1/collections/bulk", None);
    assert_eq!(described["documents"], documents);
}

/// Vector searches read from a streaming-replication standby (`--read-database-url`;
/// `./scripts/test.sh` starts one and sets `WENDA_TEST_STANDBY_URL`): a write goes to the
/// primary and is found by a dense search once the standby has replayed it.
#[test]
fn vector_searches_can_read_from_a_standby() {
    let Some(url) = fresh_database("standby") else {
        return;
    };
    let Ok(standby) = std::env::var("WENDA_TEST_STANDBY_URL") else {
        eprintln!("skipped: WENDA_TEST_STANDBY_URL is not set (./scripts/test.sh sets it)");
        return;
    };
    let database = url.rsplit_once('/').unwrap().1;
    let standby = format!("{}/{database}", standby.rsplit_once('/').unwrap().0);
    // The database reaches the standby with the primary's next WAL records.
    until("the database on the standby", || {
        postgres::Client::connect(&standby, postgres::NoTls).is_ok()
    });
    let server = spawn_serve(&[
        "--store",
        &url,
        "--read-database-url",
        &standby,
        "--no-corpus",
    ]);
    call(&server.url, "PUT", "/v1/collections/c", None);
    let started = std::time::Instant::now();
    let note = json!({"text": "这份报告讨论了湿地公园的候鸟保护工作。"});
    let (status, _) = send_json(&server.url, "PUT", "/v1/collections/c/documents/r1", &note);
    assert_eq!(status, 201);
    let dense = json!({"query": "候鸟保护", "mode": "dense"});
    until("a write found by a dense search on the standby", || {
        let (status, answer) = send_json(&server.url, "POST", "/v1/collections/c/search", &dense);
        assert_eq!(status, 200, "{answer}");
        answer["results"][0]["id"] == "r1~1.1"
    });
    eprintln!(
        "written and found through the standby {:?} later",
        started.elapsed()
    );
    let mut client = postgres::Client::connect(&standby, postgres::NoTls).unwrap();
    let readers: i64 = client
        .query_one(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&database],
        )
        .unwrap()
        .get(0);
    assert!(readers >= 1, "wenda reads from the standby");
}
