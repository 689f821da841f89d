//! The real `wenda serve` process over a real data directory: restarts load everything without
//! embedding, the corpus folder is kept in sync, and `kill -9` in the middle of writes loses no
//! acknowledged document and leaves no partial one.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{call, ranking, root, scratch, send_json, spawn_server, ServerProcess};
use serde_json::{json, Value};

fn number(server: &ServerProcess, message: &str, field: &str) -> u64 {
    server
        .logged(message, field)
        .unwrap_or_else(|| panic!("no {field} in {message:?}: {:#?}", server.log()))
        .parse()
        .unwrap()
}

fn paragraphs(document: usize, count: usize) -> String {
    (0..count)
        .map(|p| {
            format!(
                "文档{document}段落{p}：城市治理与公共服务的第{p}项措施涉及交通、医疗、教育和住房等方面，需要长期推进。"
            )
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

#[test]
fn restarts_embed_nothing_and_answer_identically_and_the_folder_stays_in_sync() {
    let data = scratch("restart-data");
    let corpus = scratch("restart-corpus");
    let seed = root().join("seeds/000_6b84f5fb9e9426be.txt");
    std::fs::copy(&seed, corpus.join("news.txt")).unwrap();
    let corpus_arg = corpus.to_str().unwrap();
    let queries = [
        json!({"query": "模速空间在哪个区？", "top_k": 5}),
        json!({"query": "What did the Politburo say about the economy?", "top_k": 5, "mode": "dense"}),
        json!({"query": "人工智能治理", "top_k": 5, "mode": "lexical"}),
    ];

    let server = spawn_server(&data, &["--corpus", corpus_arg]);
    assert_eq!(number(&server, "corpus in sync", "added"), 1);
    call(&server.url, "PUT", "/v1/collections/notes", None);
    let note = json!({"text": paragraphs(1, 3), "title": "笔记", "metadata": {"kind": "note"}});
    let (status, _) = send_json(
        &server.url,
        "PUT",
        "/v1/collections/notes/documents/n1",
        &note,
    );
    assert_eq!(status, 201);
    let before: Vec<_> = queries
        .iter()
        .map(|q| ranking(&server, "/v1/search", q))
        .chain([ranking(
            &server,
            "/v1/collections/notes/search",
            &queries[0],
        )])
        .collect();
    server.kill();

    let server = spawn_server(&data, &["--corpus", corpus_arg]);
    assert_eq!(
        number(&server, "store loaded", "embedded"),
        0,
        "{:#?}",
        server.log()
    );
    assert_eq!(number(&server, "store loaded", "collections"), 2);
    assert_eq!(number(&server, "corpus in sync", "unchanged"), 1);
    assert_eq!(number(&server, "corpus in sync", "embedded"), 0);
    let after: Vec<_> = queries
        .iter()
        .map(|q| ranking(&server, "/v1/search", q))
        .chain([ranking(
            &server,
            "/v1/collections/notes/search",
            &queries[0],
        )])
        .collect();
    assert_eq!(before, after, "identical answers after a restart");
    server.kill();

    // One paragraph edited, a file added: only their passages are embedded.
    let text = std::fs::read_to_string(&seed).unwrap();
    let edited = text.replacen("模速空间", "模速空间（上海）", 1);
    assert_ne!(edited, text);
    std::fs::write(corpus.join("news.txt"), edited).unwrap();
    std::fs::write(
        corpus.join("added.md"),
        "新增的文件只有一段文字，讨论了海洋保护。",
    )
    .unwrap();
    let server = spawn_server(&data, &["--corpus", corpus_arg]);
    assert_eq!(number(&server, "corpus in sync", "changed"), 1);
    assert_eq!(number(&server, "corpus in sync", "added"), 1);
    assert_eq!(
        number(&server, "corpus in sync", "embedded"),
        2,
        "{:#?}",
        server.log()
    );
    let (_, found) = send_json(
        &server.url,
        "POST",
        "/v1/search",
        &json!({"query": "海洋保护", "top_k": 1}),
    );
    assert_eq!(found["results"][0]["document"]["path"], "added.md");
    server.kill();

    // A file removed: its document goes; the API's documents stay.
    std::fs::remove_file(corpus.join("added.md")).unwrap();
    let server = spawn_server(&data, &["--corpus", corpus_arg]);
    assert_eq!(number(&server, "corpus in sync", "removed"), 1);
    let (_, default) = call(&server.url, "GET", "/v1/collections/default", None);
    assert_eq!(default["documents"], 1);
    let (_, notes) = call(&server.url, "GET", "/v1/collections/notes", None);
    assert_eq!(notes["documents"], 1);
    drop(server);

    // A corpus folder that cannot be read (a wrong working directory, a missing mount) is not
    // an empty one: nothing it brought is deleted.
    let missing = corpus.join("no-such-folder");
    let server = spawn_server(&data, &["--corpus", missing.to_str().unwrap()]);
    assert_eq!(number(&server, "corpus in sync", "removed"), 0);
    let (_, default) = call(&server.url, "GET", "/v1/collections/default", None);
    assert_eq!(default["documents"], 1);
}

#[test]
fn kill_9_during_writes_loses_nothing_acknowledged_and_leaves_nothing_partial() {
    let data = scratch("kill-data");
    let server = spawn_server(&data, &["--no-corpus"]);
    let url = server.url.clone();
    call(&url, "PUT", "/v1/collections/w", None);
    let put = |i: usize, paragraphs_count: usize| {
        let body = json!({"text": paragraphs(i, paragraphs_count)});
        send_json(
            &url,
            "PUT",
            &format!("/v1/collections/w/documents/d{i}"),
            &body,
        )
    };
    // Three documents first, with their dense rankings (which other documents cannot change).
    for i in 0..3 {
        assert_eq!(put(i, 4).0, 201);
    }
    let dense = |server: &ServerProcess, i: usize| {
        ranking(
            server,
            "/v1/collections/w/search",
            &json!({"query": "城市治理措施", "mode": "dense", "top_k": 10, "filter": {"document": format!("d{i}")}}),
        )
    };
    let before: Vec<_> = (0..3).map(|i| dense(&server, i)).collect();

    // Then a stream of writes, large ones among them, killed in the middle.
    let acknowledged: Arc<Mutex<Vec<(usize, u64)>>> = Arc::default();
    let writer = {
        let acknowledged = Arc::clone(&acknowledged);
        let url = url.clone();
        std::thread::spawn(move || {
            for i in 3.. {
                let count = if i % 2 == 0 { 40 } else { 5 };
                let body = json!({"text": paragraphs(i, count)});
                let answer = ureq::put(&format!("{url}/v1/collections/w/documents/d{i}"))
                    .timeout(Duration::from_secs(60))
                    .send_json(body);
                match answer {
                    Ok(response) => {
                        let written: Value = response.into_json().unwrap();
                        let passages = written["passages"].as_u64().unwrap();
                        acknowledged.lock().unwrap().push((i, passages));
                    }
                    Err(_) => return i,
                }
            }
            unreachable!()
        })
    };
    while acknowledged.lock().unwrap().len() < 4 {
        std::thread::sleep(Duration::from_millis(20));
    }
    server.kill();
    let in_flight = writer.join().unwrap();
    let acknowledged = acknowledged.lock().unwrap().clone();

    let server = spawn_server(&data, &["--no-corpus"]);
    assert_eq!(number(&server, "store loaded", "embedded"), 0);
    let after: Vec<_> = (0..3).map(|i| dense(&server, i)).collect();
    assert_eq!(before, after);
    for (i, passages) in &acknowledged {
        let (status, document) = call(
            &server.url,
            "GET",
            &format!("/v1/collections/w/documents/d{i}"),
            None,
        );
        assert_eq!(status, 200, "acknowledged d{i} is gone: {document}");
        assert_eq!(
            document["passages"].as_array().unwrap().len() as u64,
            *passages
        );
    }
    // The write in flight is there whole or not at all.
    let (status, document) = call(
        &server.url,
        "GET",
        &format!("/v1/collections/w/documents/d{in_flight}"),
        None,
    );
    if status == 200 {
        let all: String = document["passages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["text"].as_str().unwrap())
            .collect();
        let expected = if in_flight % 2 == 0 { 40 } else { 5 };
        for p in 0..expected {
            assert!(
                all.contains(&format!("文档{in_flight}段落{p}：")),
                "d{in_flight} is partial"
            );
        }
    } else {
        assert_eq!(status, 404, "{document}");
    }
    let (_, described) = call(&server.url, "GET", "/v1/collections/w", None);
    let expected_documents = 3 + acknowledged.len() + usize::from(status == 200);
    assert_eq!(
        described["documents"].as_u64().unwrap() as usize,
        expected_documents
    );
    // Every stored passage is searchable: the index and the store agree.
    let (_, all) = send_json(
        &server.url,
        "POST",
        "/v1/collections/w/search",
        &json!({"query": "城市治理", "mode": "lexical", "top_k": 100}),
    );
    assert!(!all["results"].as_array().unwrap().is_empty());
}

fn wenda(arguments: &[&str], data: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wenda"))
        .current_dir(root())
        .args(arguments)
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap()
}

#[test]
fn a_data_directory_serves_one_process_and_public_addresses_need_keys() {
    let data = scratch("guarded-data");
    let refused = wenda(&["serve", "--addr", "0.0.0.0:0"], &data);
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.contains("--api-key") && message.contains("--no-auth"),
        "{message}"
    );

    let server = spawn_server(&data, &["--no-corpus"]);
    let second = wenda(&["query", "--no-corpus", "人工智能"], &data);
    assert!(!second.status.success());
    let message = String::from_utf8_lossy(&second.stderr);
    assert!(
        message.contains("used by another wenda process"),
        "{message}"
    );
    drop(server);
}

#[test]
fn kill_9_during_an_import_then_the_job_resumes_and_finishes() {
    let data = scratch("import-data");
    let server = spawn_server(&data, &["--no-corpus"]);
    call(&server.url, "PUT", "/v1/collections/bulk", None);
    let documents = 160;
    let body: String = (0..documents)
        .map(|i| json!({"id": format!("d{i}"), "text": paragraphs(i, 6)}).to_string() + "\n")
        .collect();
    let (status, accepted) = common::call(
        &server.url,
        "POST",
        "/v1/collections/bulk/documents:import",
        Some(("application/x-ndjson", body.as_bytes())),
    );
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["id"].as_str().unwrap().to_owned();
    // Killed once some batches are in.
    loop {
        let (_, job) = call(&server.url, "GET", &format!("/v1/jobs/{id}"), None);
        let done = job["documents"]["done"].as_u64().unwrap();
        assert!(
            done < documents as u64,
            "the import finished before the kill: {job}"
        );
        if done >= 32 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    server.kill();

    let server = spawn_server(&data, &["--no-corpus"]);
    let job = loop {
        let (_, job) = call(&server.url, "GET", &format!("/v1/jobs/{id}"), None);
        if job["status"] == "completed" {
            break job;
        }
        assert_ne!(job["status"], "failed", "{job}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(job["documents"]["done"], documents, "{job}");
    assert_eq!(job["documents"]["failed"], 0);
    assert_eq!(
        job["embedded"].as_u64().unwrap() + job["reused"].as_u64().unwrap(),
        job["passages"].as_u64().unwrap(),
        "{job}"
    );
    let (_, described) = call(&server.url, "GET", "/v1/collections/bulk", None);
    assert_eq!(described["documents"], documents);
    assert_eq!(described["passages"], job["passages"]);
    for i in [0, documents / 2, documents - 1] {
        let (status, _) = call(
            &server.url,
            "GET",
            &format!("/v1/collections/bulk/documents/d{i}"),
            None,
        );
        assert_eq!(status, 200, "d{i}");
    }
}

fn wenda_ok(arguments: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_wenda"))
        .current_dir(root())
        .args(arguments)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "wenda {arguments:?}: {stderr}");
    stderr
}

#[test]
fn backups_and_exports_are_taken_while_serving_and_an_export_moves_without_embedding() {
    let data = scratch("move-data");
    let server = spawn_server(&data, &[]);
    call(&server.url, "PUT", "/v1/collections/notes", None);
    let note = json!({"text": paragraphs(7, 3), "title": "笔记", "metadata": {"kind": "note"}});
    send_json(
        &server.url,
        "PUT",
        "/v1/collections/notes/documents/n1",
        &note,
    );
    let question = json!({"query": "城市治理措施", "top_k": 3});
    let before = ranking(&server, "/v1/collections/notes/search", &question);

    let work = scratch("move-files");
    let (backup, export) = (work.join("backup.sqlite3"), work.join("notes.jsonl"));
    let data_arg = data.to_str().unwrap();
    wenda_ok(&[
        "backup",
        "--data-dir",
        data_arg,
        "--to",
        backup.to_str().unwrap(),
    ]);
    let exported = wenda_ok(&[
        "export",
        "--data-dir",
        data_arg,
        "--collection",
        "notes",
        "--out",
        export.to_str().unwrap(),
    ]);
    assert!(exported.contains("exported 1 documents"), "{exported}");
    drop(server);

    // The export, read into a new data directory: nothing embedded, the same answers.
    let moved = scratch("move-target");
    let imported = wenda_ok(&[
        "import",
        "--data-dir",
        moved.to_str().unwrap(),
        export.to_str().unwrap(),
    ]);
    assert!(
        imported.contains("imported 1 of 1") && imported.contains(" 0 embedded"),
        "{imported}"
    );
    let server = spawn_server(&moved, &["--no-corpus"]);
    assert_eq!(
        ranking(&server, "/v1/collections/notes/search", &question),
        before
    );
    let (_, document) = call(
        &server.url,
        "GET",
        "/v1/collections/notes/documents/n1",
        None,
    );
    assert_eq!(document["metadata"]["kind"], "note");
    drop(server);

    // The backup, put in place of a data directory's database, is the whole store.
    let restored = scratch("move-restored");
    std::fs::copy(&backup, restored.join(wenda::store::DATABASE_FILE)).unwrap();
    let server = spawn_server(&restored, &["--no-corpus"]);
    assert_eq!(number(&server, "store loaded", "embedded"), 0);
    assert_eq!(number(&server, "store loaded", "collections"), 2);
    assert_eq!(
        ranking(&server, "/v1/collections/notes/search", &question),
        before
    );
}

/// SIGTERM while a client is stalled in the middle of a request: the server gives requests in
/// flight `--shutdown-timeout` to finish, then closes the connection and exits, rather than
/// waiting for the client for as long as it likes.
#[test]
fn a_stalled_client_does_not_hold_up_shutdown_past_its_deadline() {
    use std::io::Write;
    let data = scratch("shutdown");
    let mut server = spawn_server(&data, &["--no-corpus", "--shutdown-timeout", "1"]);
    let mut stalled =
        std::net::TcpStream::connect(server.url.trim_start_matches("http://")).unwrap();
    stalled
        .write_all(
            b"POST /v1/search HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
              Content-Length: 1000\r\n\r\n{\"query\": ",
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let terminated = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(terminated.success());
    let started = std::time::Instant::now();
    while server.child.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "still running 30 s after SIGTERM, held by a stalled client"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The log is read from the process's stderr: its last lines may still be on their way.
    let logged = || server.log().iter().any(|l| l.contains("shutdown deadline"));
    let exited = std::time::Instant::now();
    while !logged() && exited.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(logged(), "{:?}", server.log());
    drop(stalled);
}
