//! The database stopped and started under a running `wenda serve --store postgres://…`:
//! writes and searches that need vectors fail fast with 503 `storage_unavailable` (writes
//! change nothing), lexical searches go on from memory, `/ready` says the database is away, and
//! all comes back by itself.
//! (A test binary of its own: it stops the server every PostgreSQL test shares.)

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{call, fresh_database, root, send_json, spawn_serve};
use serde_json::json;

fn postgres(action: &str) {
    let status = Command::new(root().join("scripts/postgres.sh"))
        .arg(action)
        .status()
        .unwrap();
    assert!(status.success(), "scripts/postgres.sh {action}");
}

#[test]
fn the_database_going_away_and_coming_back() {
    let Some(url) = fresh_database("faults") else {
        return;
    };
    let wenda = spawn_serve(&["--store", &url, "--no-corpus"]);
    call(&wenda.url, "PUT", "/v1/collections/c", None);
    let put = |id: &str, text: &str| {
        send_json(
            &wenda.url,
            "PUT",
            &format!("/v1/collections/c/documents/{id}"),
            &json!({"text": text}),
        )
    };
    assert_eq!(put("before", "数据库停止之前写入的文档。").0, 201);

    postgres("pause");
    let started = Instant::now();
    let (status, answer) = put("during", "数据库停止期间写入的文档。");
    eprintln!(
        "a write with the database down answered {status} after {:?}",
        started.elapsed()
    );
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (503, Some("storage_unavailable")),
        "{answer}"
    );
    // The vectors are in the database: a search that needs them says it is unavailable; one
    // by shared words alone goes on from this replica's memory.
    let started = Instant::now();
    let (status, answer) = send_json(
        &wenda.url,
        "POST",
        "/v1/collections/c/search",
        &json!({"query": "数据库停止之前"}),
    );
    eprintln!(
        "a search with the database down answered {status} after {:?}",
        started.elapsed()
    );
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (503, Some("storage_unavailable")),
        "{answer}"
    );
    let (status, found) = send_json(
        &wenda.url,
        "POST",
        "/v1/collections/c/search",
        &json!({"query": "数据库停止之前", "mode": "lexical"}),
    );
    assert_eq!(status, 200, "lexical searches go on: {found}");
    assert_eq!(found["results"][0]["document"]["path"], "before");
    let (status, ready) = call(&wenda.url, "GET", "/ready", None);
    assert_eq!(
        (status, ready["error"]["code"].as_str()),
        (503, Some("storage_unavailable"))
    );

    postgres("resume");
    let started = Instant::now();
    while call(&wenda.url, "GET", "/ready", None).0 != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not ready again"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "ready again {:?} after the database came back",
        started.elapsed()
    );
    assert_eq!(put("after", "数据库恢复之后写入的文档。").0, 201);
    assert_eq!(
        call(
            &wenda.url,
            "GET",
            "/v1/collections/c/documents/during",
            None
        )
        .0,
        404,
        "nothing that failed was kept"
    );
    let (_, described) = call(&wenda.url, "GET", "/v1/collections/c", None);
    assert_eq!(described["documents"], 2);
}
