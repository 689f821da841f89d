//! `wenda serve --store postgres://…` against a real PostgreSQL 18 with pgvector
//! (`./scripts/test.sh` starts one and sets `WENDA_TEST_DATABASE_URL`): the same API over the
//! shared store, durable through `kill -9`, and readable by a second replica.

mod common;

use common::{call, send_json, spawn_serve, ServerProcess};
use serde_json::{json, Value};

/// A fresh database on the test server, by URL; `None` (with a note) when there is no server.
fn database(name: &str) -> Option<String> {
    let Ok(server) = std::env::var("WENDA_TEST_DATABASE_URL") else {
        eprintln!("skipped: WENDA_TEST_DATABASE_URL is not set (./scripts/test.sh sets it)");
        return None;
    };
    let database = format!("wenda_it_{}_{name}", std::process::id());
    let mut client = postgres::Client::connect(&server, postgres::NoTls).unwrap();
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {database}"))
        .unwrap();
    client
        .batch_execute(&format!("CREATE DATABASE {database}"))
        .unwrap();
    let (base, _) = server.rsplit_once('/').expect("a URL with a database name");
    Some(format!("{base}/{database}"))
}

fn ids(server: &ServerProcess, path: &str, question: &str) -> Vec<(String, f64)> {
    let (status, answer) = send_json(&server.url, "POST", path, &json!({"query": question}));
    assert_eq!(status, 200, "{answer}");
    answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_owned(),
                r["score"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn the_api_over_postgres_survives_kill_9_and_is_shared_by_replicas() {
    let Some(url) = database("serve") else { return };
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
    let Some(url) = database("together") else {
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
