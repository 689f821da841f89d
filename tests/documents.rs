//! Collections and documents over real HTTP, against the real model and a real data directory:
//! writing, replacing, deleting, listing, filtering by metadata, bad input, concurrency, a full
//! store, and API keys.

mod common;

use std::collections::HashSet;
use std::path::Path;

use common::{assert_error, call, call_with, send_json, start, Options, Server};
use serde_json::{json, Value};
use wenda::http::{ApiKeys, Limits};
use wenda::store::DATABASE_FILE;

fn server() -> Server {
    start(Options::default())
}

/// Uploads `files` (name, content) to the import route at `path` as `multipart/form-data`.
fn upload(base: &str, path: &str, files: &[(&str, Vec<u8>)]) -> (u16, Value) {
    let boundary = "wenda-test-boundary";
    let mut form = Vec::new();
    for (name, content) in files {
        form.extend(format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        ).into_bytes());
        form.extend(content);
        form.extend(b"\r\n");
    }
    form.extend(format!("--{boundary}--\r\n").into_bytes());
    let content_type = format!("multipart/form-data; boundary={boundary}");
    call(base, "POST", path, Some((&content_type, &form)))
}

fn put(base: &str, path: &str, body: &Value) -> (u16, Value) {
    send_json(base, "PUT", path, body)
}

fn ids(answer: &Value) -> Vec<String> {
    answer["results"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer}"))
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn collections_are_created_listed_described_and_deleted() {
    let server = server();
    let url = server.url.as_str();
    let (status, created) = call(url, "PUT", "/v1/collections/notes", None);
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["name"], "notes");
    assert_eq!(
        (created["documents"].as_u64(), created["passages"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(created["model"]["dimensions"], 384);
    assert_eq!(
        call(url, "PUT", "/v1/collections/notes", None).0,
        200,
        "idempotent"
    );

    let (_, list) = call(url, "GET", "/v1/collections", None);
    let names: Vec<&str> = list["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "notes"]);
    let (_, default) = call(url, "GET", "/v1/collections/default", None);
    assert_eq!(default["documents"], 1);
    assert!(default["passages"].as_u64().unwrap() >= 20);
    assert_eq!(
        default["vector_bytes"].as_u64().unwrap(),
        default["passages"].as_u64().unwrap() * 384 * 4
    );

    for bad in ["Notes", "a%20b", "%E6%96%B0", &"x".repeat(65)] {
        assert_error(
            call(url, "PUT", &format!("/v1/collections/{bad}"), None),
            422,
            "invalid_name",
        );
    }
    assert_error(
        call(url, "GET", "/v1/collections/missing", None),
        404,
        "unknown_collection",
    );
    assert_error(
        call(url, "GET", "/v1/collections/missing/search?q=a", None),
        404,
        "unknown_collection",
    );

    let (status, deleted) = call(url, "DELETE", "/v1/collections/notes", None);
    assert_eq!(
        (status, &deleted["deleted"]),
        (200, &json!(true)),
        "{deleted}"
    );
    assert_error(
        call(url, "DELETE", "/v1/collections/notes", None),
        404,
        "unknown_collection",
    );
    assert_error(
        call(url, "GET", "/v1/collections/notes/documents", None),
        404,
        "unknown_collection",
    );
}

#[test]
fn a_document_is_searchable_once_acknowledged_and_replaced_whole() {
    let server = server();
    let url = server.url.as_str();
    call(url, "PUT", "/v1/collections/kb", None);
    let body = json!({
        "text": "# 模速空间\n\n模速空间是上海市打造的人工智能大模型专业孵化和加速平台，位于徐汇区。\n\n## 入驻企业\n\n已入驻企业100余家，涵盖大模型、具身智能和智能终端。",
        "title": "上海大模型孵化器",
        "date": "2025-04-29",
        "source": "内部资料",
        "url": "https://example.org/modu",
        "metadata": {"lang": "zh", "year": 2025, "tags": ["ai", "shanghai"]},
        "format": "markdown"
    });
    let (status, written) = put(url, "/v1/collections/kb/documents/modu%2F2025", &body);
    assert_eq!(status, 201, "{written}");
    assert_eq!(written["id"], "modu/2025");
    let passages = written["passages"].as_u64().unwrap();
    assert!(passages >= 1);
    assert_eq!(
        written["embedded"].as_u64().unwrap() + written["reused"].as_u64().unwrap(),
        passages
    );

    let (status, found) = send_json(
        url,
        "POST",
        "/v1/collections/kb/search",
        &json!({"query": "Which district hosts the incubator?", "top_k": 1}),
    );
    assert_eq!(status, 200, "{found}");
    let first = &found["results"][0];
    assert!(
        first["text"].as_str().unwrap().contains("徐汇区"),
        "{found}"
    );
    assert_eq!(first["document"]["path"], "modu/2025");
    assert_eq!(first["document"]["title"], "上海大模型孵化器");
    assert_eq!(first["document"]["date"], "2025-04-29");
    assert_eq!(first["document"]["url"], "https://example.org/modu");
    assert_eq!(first.get("metadata"), None, "given once, for the document");
    assert_eq!(found["document_metadata"]["modu/2025"]["lang"], "zh");
    assert!(
        !first["text"].as_str().unwrap().contains('#'),
        "heading markers are left out"
    );
    // The collection is its own: the default collection does not have it.
    let (_, elsewhere) = send_json(
        url,
        "POST",
        "/v1/search",
        &json!({"query": "模速空间入驻企业", "top_k": 100}),
    );
    assert!(
        ids(&elsewhere).iter().all(|id| !id.starts_with("modu")),
        "{elsewhere}"
    );

    let id = first["id"].as_str().unwrap();
    let (status, passage) = call(
        url,
        "GET",
        &format!("/v1/collections/kb/passages/{id}"),
        None,
    );
    assert_eq!((status, &passage["text"]), (200, &first["text"]));
    assert_eq!(
        passage["metadata"]["lang"], "zh",
        "a single passage has its own"
    );
    assert_error(
        call(url, "GET", &format!("/v1/passages/{id}"), None),
        404,
        "unknown_passage",
    );

    let (status, document) = call(url, "GET", "/v1/collections/kb/documents/modu%2F2025", None);
    assert_eq!(status, 200, "{document}");
    assert_eq!(document["text"], body["text"]);
    assert_eq!(document["metadata"], body["metadata"]);
    assert_eq!(document["format"], "markdown");
    assert_eq!(
        document["passages"].as_array().unwrap().len() as u64,
        passages
    );
    // Citations point into the document's own text.
    let text = body["text"].as_str().unwrap();
    for passage in document["passages"].as_array().unwrap() {
        let (start, end) = (
            passage["citation"]["byte_start"].as_u64().unwrap() as usize,
            passage["citation"]["byte_end"].as_u64().unwrap() as usize,
        );
        let cited: String = text[start..end]
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '#')
            .collect();
        let shown: String = passage["text"]
            .as_str()
            .unwrap()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        assert_eq!(cited, shown);
    }

    // The same text again: nothing to embed.
    let (status, again) = put(url, "/v1/collections/kb/documents/modu%2F2025", &body);
    assert_eq!((status, &again["embedded"]), (200, &json!(0)), "{again}");
    assert_eq!(again["reused"].as_u64().unwrap(), passages);

    // Replaced: the old passages are gone, the new one is found.
    let replacement = json!({"text": "这份文件已经改写，现在讨论的是海洋生物学和珊瑚礁的保护。"});
    let (status, _) = put(
        url,
        "/v1/collections/kb/documents/modu%2F2025",
        &replacement,
    );
    assert_eq!(status, 200);
    let (_, after) = send_json(
        url,
        "POST",
        "/v1/collections/kb/search",
        &json!({"query": "徐汇区孵化平台", "top_k": 10}),
    );
    let texts: Vec<&str> = after["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        ["这份文件已经改写，现在讨论的是海洋生物学和珊瑚礁的保护。"]
    );
    let (_, described) = call(url, "GET", "/v1/collections/kb", None);
    assert_eq!(
        (
            described["documents"].as_u64(),
            described["passages"].as_u64()
        ),
        (Some(1), Some(1))
    );

    let (status, deleted) = call(
        url,
        "DELETE",
        "/v1/collections/kb/documents/modu%2F2025",
        None,
    );
    assert_eq!(
        (status, &deleted["passages"]),
        (200, &json!(1)),
        "{deleted}"
    );
    let (_, empty) = send_json(
        url,
        "POST",
        "/v1/collections/kb/search",
        &json!({"query": "珊瑚礁"}),
    );
    assert_eq!(empty["results"], json!([]));
    assert_error(
        call(url, "GET", "/v1/collections/kb/documents/modu%2F2025", None),
        404,
        "unknown_document",
    );
    assert_error(
        call(
            url,
            "DELETE",
            "/v1/collections/kb/documents/modu%2F2025",
            None,
        ),
        404,
        "unknown_document",
    );
}

#[test]
fn documents_are_listed_a_page_at_a_time() {
    let server = server();
    let url = server.url.as_str();
    call(url, "PUT", "/v1/collections/pages", None);
    for i in 0..5 {
        let body = json!({"text": format!("第{i}份文件讲的是第{i}个主题。")});
        assert_eq!(
            put(url, &format!("/v1/collections/pages/documents/d{i}"), &body).0,
            201
        );
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/collections/pages/documents?limit=2&cursor={c}"),
            None => "/v1/collections/pages/documents?limit=2".into(),
        };
        let (status, page) = call(url, "GET", &path, None);
        assert_eq!(status, 200, "{page}");
        let documents = page["documents"].as_array().unwrap();
        assert!(documents.len() <= 2);
        assert!(
            documents.iter().all(|d| d.get("text").is_none()),
            "listings leave texts out"
        );
        seen.extend(
            documents
                .iter()
                .map(|d| d["id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ["d0", "d1", "d2", "d3", "d4"]);
    // Cursors are opaque and checked: a made-up one, or one of another collection, is refused.
    let (_, first) = call(url, "GET", "/v1/collections/pages/documents?limit=1", None);
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    assert_ne!(cursor, "d0", "not the bare id");
    call(url, "PUT", "/v1/collections/others", None);
    for bad in ["d0", "garbage", &cursor[..cursor.len() - 2]] {
        assert_error(
            call(
                url,
                "GET",
                &format!("/v1/collections/pages/documents?cursor={bad}"),
                None,
            ),
            422,
            "invalid_cursor",
        );
    }
    assert_error(
        call(
            url,
            "GET",
            &format!("/v1/collections/others/documents?cursor={cursor}"),
            None,
        ),
        422,
        "invalid_cursor",
    );
    assert_error(
        call(url, "GET", "/v1/collections/pages/documents?limit=0", None),
        422,
        "invalid_request",
    );
    assert_error(
        call(
            url,
            "GET",
            "/v1/collections/pages/documents?limit=1001",
            None,
        ),
        422,
        "invalid_request",
    );
}

#[test]
fn metadata_filters_narrow_before_ranking() {
    let server = server();
    let url = server.url.as_str();
    call(url, "PUT", "/v1/collections/meta", None);
    let documents = [
        (
            "a",
            json!({"lang": "zh", "year": 2023, "tags": ["ai"], "published": "2023-05-01", "author": "Li Wei"}),
        ),
        (
            "b",
            json!({"lang": "en", "year": 2024, "tags": ["policy"], "published": "2024-06-01T08:00:00Z", "author": "Wang Fang"}),
        ),
        (
            "c",
            json!({"lang": "zh", "year": 2025, "tags": ["ai", "policy"], "published": "2025-04-29", "draft": true}),
        ),
    ];
    for (id, metadata) in &documents {
        let body =
            json!({"text": format!("关于人工智能政策的第{id}份报告。"), "metadata": metadata});
        assert_eq!(
            put(url, &format!("/v1/collections/meta/documents/{id}"), &body).0,
            201
        );
    }
    let found = |metadata: Value| -> Vec<String> {
        let (status, answer) = send_json(
            url,
            "POST",
            "/v1/collections/meta/search",
            &json!({"query": "人工智能政策", "top_k": 10, "filter": {"metadata": metadata}}),
        );
        assert_eq!(status, 200, "{answer}");
        let mut documents: Vec<String> = answer["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["document"]["path"].as_str().unwrap().to_owned())
            .collect();
        documents.sort();
        documents
    };
    assert_eq!(found(json!({"lang": "zh"})), ["a", "c"]);
    assert_eq!(found(json!({"tags": "policy"})), ["b", "c"]);
    assert_eq!(
        found(json!({"tags": {"in": ["ai"]}, "lang": "zh"})),
        ["a", "c"]
    );
    assert_eq!(found(json!({"lang": ["en", "fr"]})), ["b"]);
    assert_eq!(found(json!({"year": {"gte": 2024, "lt": 2025}})), ["b"]);
    assert_eq!(found(json!({"year": {"gt": 2023}})), ["b", "c"]);
    assert_eq!(
        found(json!({"published": {"date_from": "2024-06-01", "date_to": "2025-01-01"}})),
        ["b"]
    );
    assert_eq!(found(json!({"author": {"contains": "wang"}})), ["b"]);
    assert_eq!(found(json!({"draft": true})), ["c"]);
    assert_eq!(found(json!({"missing": "x"})), Vec::<String>::new());
    for bad in [
        json!({"year": {"gte": "2024"}}),
        json!({"year": {"gt": 1, "gte": 2}}),
        json!({"year": {"between": [1, 2]}}),
        json!({"year": {"gte": 2025, "lt": 2024}}),
        json!({"published": {"date_from": "2024-13-01"}}),
        json!({"tags": {"in": "ai"}}),
        json!({"nested": {"in": [{"a": 1}]}}),
        json!(["not", "an", "object"]),
    ] {
        let (status, answer) = send_json(
            url,
            "POST",
            "/v1/collections/meta/search",
            &json!({"query": "人工智能", "filter": {"metadata": bad}}),
        );
        assert_eq!(status, 422, "{bad}: {answer}");
    }
}

#[test]
fn dates_are_checked_on_write_as_the_filters_read_them() {
    let server = server();
    let url = server.url.as_str();
    call(url, "PUT", "/v1/collections/dated", None);
    for date in [
        "2025-02-30",
        "99999-01-01",
        "yesterday",
        "2025-01-01T25:00:00Z",
    ] {
        let answer = put(
            url,
            "/v1/collections/dated/documents/bad",
            &json!({"text": "某日的新闻。", "date": date}),
        );
        let message = answer.1["error"]["message"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        assert_error(answer, 422, "invalid_request");
        assert!(message.starts_with("date:"), "{date}: {message}");
    }
    // A valid timestamp is kept as its day, and a printed day as printed; both filter.
    for (id, given, kept) in [
        ("stamped", "2025-03-04T08:30:00+08:00", "2025-03-04"),
        ("printed", "2025年3月5日", "2025年3月5日"),
    ] {
        let (status, body) = put(
            url,
            &format!("/v1/collections/dated/documents/{id}"),
            &json!({"text": "春季植树活动在各地展开。", "date": given}),
        );
        assert_eq!(status, 201, "{body}");
        let (_, document) = call(
            url,
            "GET",
            &format!("/v1/collections/dated/documents/{id}"),
            None,
        );
        assert_eq!(document["date"], kept, "{document}");
    }
    let (status, found) = send_json(
        url,
        "POST",
        "/v1/collections/dated/search",
        &json!({"query": "植树", "filter": {"date_from": "2025-03-04", "date_to": "2025-03-05"}}),
    );
    assert_eq!(status, 200, "{found}");
    let mut ids: Vec<&str> = found["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["document"]["path"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, ["printed", "stamped"], "{found}");
}

#[test]
fn a_key_given_twice_is_refused_not_overwritten() {
    let server = server();
    let url = server.url.as_str();
    call(url, "PUT", "/v1/collections/twice", None);
    let bodies: [&[u8]; 3] = [
        br#"{"text": "first", "text": "second"}"#,
        br#"{"text": "one", "metadata": {"lang": "zh", "lang": "en"}}"#,
        br#"{"text": "one", "title": "t", "title": "t"}"#,
    ];
    for body in bodies {
        let answer = call(
            url,
            "PUT",
            "/v1/collections/twice/documents/d",
            Some(("application/json", body)),
        );
        let message = answer.1["error"]["message"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        assert_error(answer, 422, "invalid_request");
        assert!(message.contains("appears more than once"), "{message}");
    }
    assert_error(
        call(url, "GET", "/v1/collections/twice/documents/d", None),
        404,
        "unknown_document",
    );
    // Searches too: the question asked is the one checked.
    let answer = call(
        url,
        "POST",
        "/v1/search",
        Some(("application/json", br#"{"query": "a", "query": "b"}"#)),
    );
    assert_error(answer, 422, "invalid_request");
}

#[test]
fn bad_documents_get_a_status_and_a_json_error() {
    let server = start(Options {
        limits: Limits {
            max_document_bytes: 64 * 1024,
            ..Limits::default()
        },
        ..Options::default()
    });
    let url = server.url.as_str();
    call(url, "PUT", "/v1/collections/bad", None);
    let ok = json!({"text": "正常的文本。"});
    assert_error(
        put(url, "/v1/collections/nope/documents/a", &ok),
        404,
        "unknown_collection",
    );
    assert_error(
        put(url, "/v1/collections/bad/documents/a%00b", &ok),
        422,
        "invalid_name",
    );
    assert_error(
        put(url, "/v1/collections/bad/documents/%20a", &ok),
        422,
        "invalid_name",
    );
    let long_id = "x".repeat(513);
    assert_error(
        put(
            url,
            &format!("/v1/collections/bad/documents/{long_id}"),
            &ok,
        ),
        422,
        "invalid_name",
    );
    assert_error(
        put(url, "/v1/collections/bad/documents/a", &json!({"text": ""})),
        422,
        "no_passages",
    );
    assert_error(
        put(
            url,
            "/v1/collections/bad/documents/a",
            &json!({"text": " \n\u{200b} "}),
        ),
        422,
        "no_passages",
    );
    assert_error(
        put(
            url,
            "/v1/collections/bad/documents/a",
            &json!({"text": "。。。！——"}),
        ),
        422,
        "no_passages",
    );
    assert_error(
        put(url, "/v1/collections/bad/documents/a", &json!({"txt": "x"})),
        422,
        "invalid_request",
    );
    assert_error(
        put(
            url,
            "/v1/collections/bad/documents/a",
            &json!({"text": "x", "format": "pdf"}),
        ),
        422,
        "invalid_request",
    );
    assert_error(
        put(
            url,
            "/v1/collections/bad/documents/a",
            &json!({"text": "x", "metadata": {"a": {"b": 1}}}),
        ),
        422,
        "invalid_request",
    );
    assert_error(
        put(
            url,
            "/v1/collections/bad/documents/a",
            &json!({"text": "x", "metadata": {"a": null}}),
        ),
        422,
        "invalid_request",
    );
    assert_error(
        put(url, "/v1/collections/bad/documents/a", &json!(["text"])),
        422,
        "invalid_request",
    );
    assert_error(
        call(
            url,
            "PUT",
            "/v1/collections/bad/documents/a",
            Some(("application/json", b"{\"text\": \"\xff\"}")),
        ),
        422,
        "malformed_json",
    );
    assert_error(
        call(
            url,
            "PUT",
            "/v1/collections/bad/documents/a",
            Some(("image/png", b"\x89PNG\r\n")),
        ),
        415,
        "unsupported_media_type",
    );
    let huge = json!({"text": "长".repeat(30_000)});
    assert_error(
        put(url, "/v1/collections/bad/documents/a", &huge),
        413,
        "payload_too_large",
    );
    let (_, described) = call(url, "GET", "/v1/collections/bad", None);
    assert_eq!(
        described["documents"], 0,
        "no refused write left anything: {described}"
    );
}

/// Concurrent writers of one document: the result is exactly one of their versions, and a
/// search running meanwhile sees one version at a time, never a mixture.
#[test]
fn concurrent_writes_of_one_document_end_in_exactly_one_version() {
    let server = server();
    let url = server.url.as_str();
    call(url, "PUT", "/v1/collections/race", None);
    let version = |v: usize| -> String {
        (0..6)
            .map(|p| format!("版本{v}的第{p}段讨论了城市交通、公共卫生和教育改革等多个方面的问题，内容足够长以便单独成段。"))
            .collect::<Vec<_>>()
            .join("\n\n")
    };
    let marker = |text: &str| -> Option<usize> {
        text.split("版本").nth(1)?.split('的').next()?.parse().ok()
    };
    let searching = std::sync::atomic::AtomicBool::new(true);
    std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let mut checks = 0;
            while searching.load(std::sync::atomic::Ordering::Relaxed) {
                let (status, answer) = send_json(
                    url,
                    "POST",
                    "/v1/collections/race/search",
                    &json!({"query": "城市交通", "top_k": 20, "mode": "lexical"}),
                );
                assert_eq!(status, 200, "{answer}");
                let versions: HashSet<Option<usize>> = answer["results"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| marker(r["text"].as_str().unwrap()))
                    .collect();
                assert!(versions.len() <= 1, "a search saw a mixture: {versions:?}");
                checks += 1;
            }
            checks
        });
        let writers: Vec<_> = (0..8)
            .map(|v| {
                let text = version(v);
                scope.spawn(move || {
                    let (status, answer) = put(
                        url,
                        "/v1/collections/race/documents/doc",
                        &json!({"text": text}),
                    );
                    assert!(status == 200 || status == 201, "{answer}");
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        searching.store(false, std::sync::atomic::Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
    });
    let (_, document) = call(url, "GET", "/v1/collections/race/documents/doc", None);
    let winner = marker(document["text"].as_str().unwrap()).unwrap();
    assert_eq!(document["text"].as_str().unwrap(), version(winner));
    for passage in document["passages"].as_array().unwrap() {
        assert_eq!(marker(passage["text"].as_str().unwrap()), Some(winner));
    }
    let (_, described) = call(url, "GET", "/v1/collections/race", None);
    assert_eq!(described["documents"], 1);
    assert_eq!(
        described["passages"].as_u64().unwrap() as usize,
        document["passages"].as_array().unwrap().len()
    );
}

#[test]
fn deleting_a_collection_while_it_is_searched_answers_or_404s() {
    let server = server();
    let url = server.url.as_str();
    call(url, "PUT", "/v1/collections/doomed", None);
    for i in 0..3 {
        put(
            url,
            &format!("/v1/collections/doomed/documents/d{i}"),
            &json!({"text": format!("第{i}份关于经济形势的报告。")}),
        );
    }
    std::thread::scope(|scope| {
        let searchers: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    let mut statuses = HashSet::new();
                    for _ in 0..40 {
                        let (status, answer) = send_json(
                            url,
                            "POST",
                            "/v1/collections/doomed/search",
                            &json!({"query": "经济形势"}),
                        );
                        assert!(status == 200 || status == 404, "{status} {answer}");
                        if status == 404 {
                            assert_eq!(answer["error"]["code"], "unknown_collection");
                        }
                        statuses.insert(status);
                    }
                    statuses
                })
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert_eq!(call(url, "DELETE", "/v1/collections/doomed", None).0, 200);
        for searcher in searchers {
            searcher.join().unwrap();
        }
    });
    assert_error(
        call(url, "GET", "/v1/collections/doomed/search?q=a", None),
        404,
        "unknown_collection",
    );
}

#[test]
fn a_full_store_refuses_writes_with_503_and_keeps_serving_reads() {
    // A cap of one byte: the store may not grow at all.
    let server = start(Options {
        max_store_bytes: Some(1),
        ..Options::default()
    });
    let url = server.url.as_str();
    let big: String = (0..400)
        .map(|i| format!("第{i}段：城市更新与产业升级的长期规划。\n\n"))
        .collect();
    let answer = put(
        url,
        "/v1/collections/default/documents/big",
        &json!({"text": big}),
    );
    assert_error(answer, 503, "storage_unavailable");
    assert_error(
        call(url, "GET", "/v1/collections/default/documents/big", None),
        404,
        "unknown_document",
    );
    let (status, found) = send_json(
        url,
        "POST",
        "/v1/search",
        &json!({"query": "城市更新与产业升级", "top_k": 50}),
    );
    assert_eq!(status, 200, "{found}");
    assert!(
        ids(&found).iter().all(|id| !id.starts_with("big")),
        "nothing half-written is searchable"
    );
    let (_, described) = call(url, "GET", "/v1/collections/default", None);
    assert_eq!(described["documents"], 1);
}

/// Bytes the store takes on disk: the database with its write-ahead log and shared memory.
fn store_bytes(data_dir: &Path) -> u64 {
    ["", "-wal", "-shm"]
        .iter()
        .filter_map(|suffix| {
            std::fs::metadata(data_dir.join(format!("{DATABASE_FILE}{suffix}"))).ok()
        })
        .map(|file| file.len())
        .sum()
}

/// Ids of the documents a search finds.
fn documents_found(answer: &Value) -> Vec<String> {
    answer["results"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer}"))
        .iter()
        .map(|r| r["document"]["path"].as_str().unwrap().to_owned())
        .collect()
}

/// `--max-store-bytes` caps the database, its write-ahead log and its shared memory together
/// (issue 23, finding 4): documents are written until a 503, and the files never take more
/// than the cap and one write. The refused document leaves nothing; deleting documents makes
/// room again at once (their pages are reused), without a restart.
#[test]
fn the_store_cap_counts_the_write_ahead_log_and_shared_memory() {
    const CAP: u64 = 3_000_000;
    // A write starts only under the cap and can take the files past it by the log frames it
    // writes: for these documents (27 kB of text each) about 80 kB, so this is twice that.
    const ONE_WRITE: u64 = 160 * 1024;
    let server = start(Options {
        max_store_bytes: Some(CAP),
        ..Options::default()
    });
    let url = server.url.as_str();
    let data_dir = server.data_dir.clone().unwrap();
    let paragraph = "城市更新与产业升级需要长期规划，兼顾民生、生态与财政的可持续。\n\n";
    // Identical paragraphs after a first line of its own: a couple of passages to embed each.
    let document =
        |i: usize| json!({"text": format!("第{i}篇文档的开头。\n\n{}", paragraph.repeat(300))});
    let path = |i: usize| format!("/v1/collections/default/documents/d{i}");
    let mut written = 0;
    let mut largest = store_bytes(&data_dir);
    let refusal = loop {
        assert!(
            written < 300,
            "never refused: {} bytes",
            store_bytes(&data_dir)
        );
        let answer = put(url, &path(written), &document(written));
        largest = largest.max(store_bytes(&data_dir));
        if answer.0 != 201 {
            break answer;
        }
        written += 1;
    };
    assert!(
        written > 10,
        "refused after {written} documents: {}",
        refusal.1
    );
    assert!(
        largest <= CAP + ONE_WRITE,
        "the database, log and shared memory took {largest} bytes under a cap of {CAP}"
    );
    let message = refusal.1["error"]["message"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert_error(refusal, 503, "storage_unavailable");
    assert!(message.contains("--max-store-bytes"), "{message}");

    let refused = format!("d{written}");
    assert_error(
        call(url, "GET", &path(written), None),
        404,
        "unknown_document",
    );
    let (status, answer) = send_json(
        url,
        "POST",
        "/v1/collections/default/search",
        &json!({"query": format!("第{written}篇文档的开头"), "top_k": 50}),
    );
    assert_eq!(status, 200, "{answer}");
    assert!(!documents_found(&answer).contains(&refused), "{answer}");
    let (_, described) = call(url, "GET", "/v1/collections/default", None);
    assert_eq!(described["documents"], 1 + written as u64);
    assert_eq!(call(url, "GET", &path(0), None).0, 200);

    for i in 0..3 {
        assert_eq!(call(url, "DELETE", &path(i), None).0, 200);
    }
    let (status, answer) = put(url, &path(written), &document(written));
    assert_eq!(
        status, 201,
        "the deleted documents' pages take it: {answer}"
    );
    largest = largest.max(store_bytes(&data_dir));
    assert!(
        largest <= CAP + ONE_WRITE,
        "{largest} bytes under a cap of {CAP}"
    );
}

#[test]
fn metadata_is_bounded_and_answered_once_per_document() {
    let server = start(Options {
        keys: ApiKeys::new(&["admin".into()], &["reader".into()]),
        ..Options::default()
    });
    let url = server.url.as_str();
    let as_admin = [("Authorization", "Bearer admin")];
    let as_reader = [("Authorization", "Bearer reader")];
    let put = |id: &str, body: &Value| {
        let body = body.to_string();
        let path = format!("/v1/collections/default/documents/{id}");
        call_with(
            url,
            "PUT",
            &path,
            Some(("application/json", body.as_bytes())),
            &as_admin,
        )
    };

    // Over the limit (64 KiB by default): refused, naming the field.
    let text = "城市更新与产业升级的长期规划。";
    let (status, refused) = put(
        "huge",
        &json!({"text": text, "metadata": {"s": "x".repeat(5_000_000)}}),
    );
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (422, Some("invalid_request")),
        "{refused}"
    );
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("metadata:") && message.contains("--max-metadata-bytes"),
        "{message}"
    );
    let (status, refused) = put(
        "long-title",
        &json!({"text": text, "title": "题".repeat(30_000)}),
    );
    assert_eq!(status, 422, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("title:"),
        "{refused}"
    );

    // Just under it, on a document of 100 paragraphs: what a read key gets back stays a small
    // multiple of what is stored, however many of the passages an answer holds. Each passage
    // used to carry the metadata: 100 copies in a search, 100 in a read of the document.
    let metadata = json!({"s": "元".repeat(20_000)});
    let paragraphs: Vec<String> = (0..100)
        .map(|i| {
            format!(
                "第{i}段：城市更新与产业升级的长期规划，涉及交通、住房和公共服务的改善措施。\
                 各区将在第{i}个季度公布具体方案，并听取居民的意见和建议。"
            )
        })
        .collect();
    let text = paragraphs.join("\n\n");
    let (status, written) = put("big", &json!({"text": text, "metadata": metadata}));
    assert_eq!(status, 201, "{written}");
    assert_eq!(written["passages"], 100, "one passage a paragraph");
    let stored = text.len() + metadata.to_string().len();

    let read = |method: &str, path: &str, body: Option<Value>| {
        let body = body.map(|b| b.to_string());
        let payload = body.as_deref().map(|b| ("application/json", b.as_bytes()));
        let answer = call_with(url, method, path, payload, &as_reader);
        assert_eq!(answer.0, 200, "{path}: {}", answer.1);
        answer.1
    };
    let search = read(
        "POST",
        "/v1/search",
        Some(
            json!({"query": "城市更新", "mode": "lexical", "top_k": 100, "filter": {"document": "big"}}),
        ),
    );
    assert_eq!(search["results"].as_array().unwrap().len(), 100);
    assert_eq!(search["document_metadata"]["big"], metadata);
    let document = read("GET", "/v1/collections/default/documents/big", None);
    assert_eq!(document["metadata"], metadata);
    let first = search["results"][0]["id"].as_str().unwrap().to_owned();
    let similar = read(
        "GET",
        &format!("/v1/passages/{first}/similar?top_k=50"),
        None,
    );
    for (name, answer) in [
        ("search", &search),
        ("document", &document),
        ("similar", &similar),
    ] {
        let size = answer.to_string().len();
        assert!(
            size < 3 * stored,
            "{name}: {size} bytes answered for {stored} stored"
        );
    }
}

#[test]
fn a_large_document_is_written_in_time_linear_in_its_size() {
    // 4 MiB of one short paragraph repeated: 17,000 passages, one text to embed. Writing it took
    // 36 s (8 MiB: 166 s) while each passage's foreign-key check read the whole document text;
    // it takes about 3 s now. The bound is the default request timeout, halved: generous for a
    // slow machine, far below the quadratic cost.
    let server = server();
    let url = server.url.as_str();
    let paragraph =
        "据新华社北京电 国务院新闻办公室今天举行新闻发布会，介绍今年前三季度国民经济运行情况。\
                     统计局发言人表示，经济运行总体平稳，就业形势基本稳定，物价水平温和上涨。\n\n";
    let text = paragraph.repeat(4 * 1024 * 1024 / paragraph.len());
    let started = std::time::Instant::now();
    let (status, written) = put(
        url,
        "/v1/collections/default/documents/large",
        &json!({"text": text}),
    );
    let took = started.elapsed();
    assert_eq!(status, 201, "{written}");
    assert_eq!(written["passages"], 4 * 1024 * 1024 / paragraph.len());
    let limit = Limits::default().request_timeout / 2;
    assert!(took < limit, "a 4 MiB document took {took:?} to write");
    let (status, found) = send_json(
        url,
        "POST",
        "/v1/search",
        &json!({"query": "统计局发言人", "mode": "lexical", "top_k": 3}),
    );
    assert_eq!(status, 200, "{found}");
    assert!(
        ids(&found).iter().all(|id| id.starts_with("large~")),
        "{found}"
    );
}

#[test]
fn a_statement_the_store_refuses_is_a_500_never_a_retry() {
    let server = start(Options::default());
    let url = server.url.as_str();
    // What a bug in a query looks like to the server: a column its statements name is gone.
    let database = server.data_dir.as_ref().unwrap().join(DATABASE_FILE);
    rusqlite::Connection::open(database)
        .unwrap()
        .execute_batch("ALTER TABLE documents RENAME COLUMN title TO heading")
        .unwrap();
    let answer = put(
        url,
        "/v1/collections/default/documents/new",
        &json!({"text": "一篇新的文档。"}),
    );
    let message = answer.1["error"]["message"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert_error(answer, 500, "internal");
    assert!(message.contains("src/store/"), "names where: {message}");
    assert!(!message.contains("retry"), "{message}");
    assert_error(
        call(url, "GET", "/v1/collections/default/documents", None),
        500,
        "internal",
    );
    // Searches read the index, not the broken table, and go on.
    let (status, found) = send_json(url, "POST", "/v1/search", &json!({"query": "人工智能"}));
    assert_eq!(status, 200, "{found}");
}

#[test]
fn api_keys_guard_reads_and_writes() {
    let server = start(Options {
        keys: ApiKeys::new(&["admin-secret".into()], &["read-secret".into()]),
        ..Options::default()
    });
    let url = server.url.as_str();
    let search = |headers: &[(&str, &str)]| {
        call_with(url, "GET", "/v1/search?q=%E6%A8%A1%E9%80%9F", None, headers)
    };
    let (status, answer) = search(&[]);
    assert_error((status, answer), 401, "unauthorized");
    let response = ureq::get(&format!("{url}/v1/search?q=a"))
        .call()
        .unwrap_err();
    let ureq::Error::Status(_, response) = response else {
        panic!("{response}")
    };
    assert_eq!(response.header("www-authenticate"), Some("Bearer"));
    assert_error(
        search(&[("Authorization", "Bearer wrong")]),
        401,
        "unauthorized",
    );
    assert_eq!(search(&[("Authorization", "Bearer read-secret")]).0, 200);
    assert_eq!(search(&[("api-key", "read-secret")]).0, 200);
    assert_eq!(search(&[("Authorization", "bearer admin-secret")]).0, 200);

    let write = |key: &str| {
        call_with(
            url,
            "PUT",
            "/v1/collections/guarded",
            None,
            &[("Authorization", &format!("Bearer {key}"))],
        )
    };
    assert_error(write("read-secret"), 403, "forbidden");
    assert_eq!(write("admin-secret").0, 201);
    assert_error(
        call(url, "PUT", "/v1/collections/other", None),
        401,
        "unauthorized",
    );
    // MCP clients read errors in JSON-RPC form, the API's code in `data`.
    let (status, answer) = call(url, "POST", "/mcp", Some(("application/json", b"{}")));
    assert_eq!(status, 401);
    assert_eq!(answer["error"]["data"]["code"], "unauthorized", "{answer}");
    // What a browser or a probe needs stays open.
    for open in ["/health", "/ready", "/openapi.json"] {
        assert_eq!(call(url, "GET", open, None).0, 200, "{open}");
    }
    assert_eq!(ureq::get(&format!("{url}/")).call().unwrap().status(), 200);
}

/// Polls job `id` until it is no longer queued or running.
fn finished_job(url: &str, id: &str) -> Value {
    for _ in 0..600 {
        let (status, job) = call(url, "GET", &format!("/v1/jobs/{id}"), None);
        assert_eq!(status, 200, "{job}");
        if job["status"] != "queued" && job["status"] != "running" {
            return job;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("job {id} did not finish");
}

#[test]
fn a_byte_order_mark_before_an_import_is_not_part_of_its_first_line() {
    let server = server();
    let url = server.url.as_str();
    call(url, "PUT", "/v1/collections/bom", None);
    let line = |id: &str, text: &str| json!({"id": id, "text": text}).to_string();
    let body = format!(
        "\u{feff}{}\n{}\n",
        line("b1", "带字节顺序标记的第一行：黄河流域的水土保持。"),
        line("b2", "第二行：西部地区的光伏发电。")
    );
    let (status, accepted) = call(
        url,
        "POST",
        "/v1/collections/bom/documents:import",
        Some(("application/x-ndjson", body.as_bytes())),
    );
    assert_eq!(status, 202, "{accepted}");
    let job = finished_job(url, accepted["id"].as_str().unwrap());
    assert_eq!(
        job["documents"],
        json!({"total": 2, "done": 2, "failed": 0}),
        "{job}"
    );
    // The same in uploaded files: a JSON-lines file and a text file, each starting with one.
    let (status, accepted) = upload(
        url,
        "/v1/collections/bom/documents:import",
        &[
            (
                "more.jsonl",
                format!(
                    "\u{feff}{}\n",
                    line("b3", "上传文件的第一行：东北的黑土地保护。")
                )
                .into_bytes(),
            ),
            (
                "note.txt",
                "\u{feff}标记之后的正文：南方的防汛准备。".into(),
            ),
        ],
    );
    assert_eq!(status, 202, "{accepted}");
    let job = finished_job(url, accepted["id"].as_str().unwrap());
    assert_eq!(
        job["documents"],
        json!({"total": 2, "done": 2, "failed": 0}),
        "{job}"
    );
    let (_, note) = call(url, "GET", "/v1/collections/bom/documents/note.txt", None);
    let text = note["text"].as_str().unwrap();
    assert!(text.starts_with("标记之后"), "no mark kept: {text:?}");
}

#[test]
fn imports_write_the_good_lines_and_report_each_bad_one() {
    let server = server();
    let url = server.url.as_str();
    call(url, "PUT", "/v1/collections/bulk", None);
    let body = [
        json!({"id": "p1", "text": "第一篇：上海发布人工智能产业扶持政策。", "metadata": {"city": "sh"}}).to_string(),
        String::new(),
        "{not json".into(),
        json!({"id": "p2", "text": "第二篇：北京推进城市交通治理。", "format": "news"}).to_string(),
        json!({"id": "", "text": "无名"}).to_string(),
        json!({"id": "p3", "text": "！！！"}).to_string(),
        json!({"id": "p4", "text": "x", "format": "pdf"}).to_string(),
        json!({"id": "p5", "text": "x", "extra": 1}).to_string(),
        json!(["p6", "array"]).to_string(),
        json!({"id": "p1", "text": "第一篇的新版本：上海发布人工智能产业扶持政策细则。"}).to_string(),
    ]
    .join("\n");
    let (status, accepted) = call(
        url,
        "POST",
        "/v1/collections/bulk/documents:import",
        Some(("application/x-ndjson", body.as_bytes())),
    );
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(
        accepted["documents"]["total"], 9,
        "blank lines are not documents"
    );
    let job = finished_job(url, accepted["id"].as_str().unwrap());
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(
        job["documents"],
        json!({"total": 9, "done": 3, "failed": 6}),
        "{job}"
    );
    let errors: Vec<(u64, &str)> = job["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["line"].as_u64().unwrap(), e["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        errors,
        [
            (3, "invalid_request"),
            (5, "invalid_name"),
            (6, "no_passages"),
            (7, "invalid_request"),
            (8, "invalid_request"),
            (9, "invalid_request")
        ]
    );
    assert_eq!(
        job["embedded"].as_u64().unwrap() + job["reused"].as_u64().unwrap(),
        job["passages"].as_u64().unwrap()
    );
    // Later lines replace earlier ones with the same id.
    let (_, p1) = call(url, "GET", "/v1/collections/bulk/documents/p1", None);
    assert!(p1["text"].as_str().unwrap().contains("新版本"), "{p1}");
    let (_, found) = send_json(
        url,
        "POST",
        "/v1/collections/bulk/search",
        &json!({"query": "城市交通", "top_k": 1}),
    );
    assert_eq!(found["results"][0]["document"]["path"], "p2");
    let (_, described) = call(url, "GET", "/v1/collections/bulk", None);
    assert_eq!(described["documents"], 2);

    // Files: JSON lines, and a text file that is one document named after it.
    let (status, accepted) = upload(
        url,
        "/v1/collections/bulk/documents:import",
        &[
            (
                "more.jsonl",
                format!(
                    "{}\n{{broken\n",
                    json!({"id": "m1", "text": "上传的第一篇：长江流域生态保护。"})
                )
                .into_bytes(),
            ),
            (
                "notes.md",
                "# 会议纪要\n\n讨论了数据中心的能耗问题。".into(),
            ),
            // Saved in GBK, as many Chinese text files are.
            (
                "旧文件.txt",
                encoding_rs::GBK
                    .encode("旧编码的文件：黄河流域的水土保持工作取得进展。")
                    .0
                    .into_owned(),
            ),
        ],
    );
    assert_eq!(status, 202, "{accepted}");
    let job = finished_job(url, accepted["id"].as_str().unwrap());
    assert_eq!(
        job["documents"],
        json!({"total": 4, "done": 3, "failed": 1}),
        "{job}"
    );
    assert_eq!(job["errors"][0]["file"], "more.jsonl");
    assert_eq!(job["errors"][0]["line"], 2);
    let (status, old) = call(
        url,
        "GET",
        "/v1/collections/bulk/documents/旧文件.txt",
        None,
    );
    assert_eq!(status, 200, "{old}");
    assert_eq!(
        old["text"],
        "旧编码的文件：黄河流域的水土保持工作取得进展。"
    );
    // A file that is not text is refused by name; the rest of the upload is written.
    let (status, accepted) = upload(
        url,
        "/v1/collections/bulk/documents:import",
        &[
            ("scan.txt", b"%PDF-1.7\n\x00\x01\x02".to_vec()),
            ("fine.txt", "正常的文本：西部地区的风电建设。".into()),
        ],
    );
    assert_eq!(status, 202, "{accepted}");
    let job = finished_job(url, accepted["id"].as_str().unwrap());
    assert_eq!(
        job["documents"],
        json!({"total": 2, "done": 1, "failed": 1}),
        "{job}"
    );
    let error = &job["errors"][0];
    assert_eq!(
        (&error["file"], &error["code"]),
        (&json!("scan.txt"), &json!("unreadable_document")),
        "{job}"
    );
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .starts_with("scan.txt: binary data, not text"),
        "{job}"
    );
    assert_eq!(
        call(url, "GET", "/v1/collections/bulk/documents/fine.txt", None).0,
        200
    );
    let (status, notes) = call(url, "GET", "/v1/collections/bulk/documents/notes.md", None);
    assert_eq!(
        (status, notes["format"].as_str()),
        (200, Some("markdown")),
        "{notes}"
    );

    assert_error(
        call(
            url,
            "POST",
            "/v1/collections/nope/documents:import",
            Some(("application/x-ndjson", b"{}")),
        ),
        404,
        "unknown_collection",
    );
    assert_error(
        call(
            url,
            "POST",
            "/v1/collections/bulk/documents:import",
            Some(("text/csv", b"a,b")),
        ),
        415,
        "unsupported_media_type",
    );
    assert_error(
        call(
            url,
            "POST",
            "/v1/collections/bulk/documents:import",
            Some(("application/x-ndjson", b"\n \n")),
        ),
        422,
        "invalid_request",
    );
    assert_error(
        call(
            url,
            "POST",
            "/v1/collections/bulk/documents:import",
            Some((
                "application/x-ndjson",
                b"{\"id\": \"a\", \"text\": \"\xff\"}",
            )),
        ),
        422,
        "invalid_request",
    );
    assert_error(
        call(url, "GET", "/v1/jobs/job-nothing", None),
        404,
        "unknown_job",
    );
}

#[test]
fn dify_external_knowledge_api_answers_its_documented_requests() {
    let server = start(Options {
        keys: ApiKeys::new(&["admin-secret".into()], &["dify-key".into()]),
        ..Options::default()
    });
    let url = server.url.as_str();
    let dify = |body: &Value, authorization: Option<&str>| {
        let bytes = body.to_string().into_bytes();
        let headers: Vec<(&str, &str)> = authorization
            .map(|a| ("Authorization", a))
            .into_iter()
            .collect();
        call_with(
            url,
            "POST",
            "/dify/retrieval",
            Some(("application/json", &bytes)),
            &headers,
        )
    };
    // The request of Dify's documentation, with a collection as the knowledge id.
    let documented = json!({
        "knowledge_id": "default",
        "query": "模速空间在哪个区？",
        "retrieval_setting": {"top_k": 2, "score_threshold": 0.5}
    });
    let (status, answer) = dify(&documented, Some("Bearer dify-key"));
    assert_eq!(status, 200, "{answer}");
    let records = answer["records"].as_array().unwrap();
    assert_eq!(records.len(), 2, "{answer}");
    for record in records {
        assert!(record["content"].as_str().is_some_and(|c| !c.is_empty()));
        assert!(record["score"].as_f64().unwrap() >= 0.5);
        assert!(record["title"].as_str().is_some_and(|t| !t.is_empty()));
        let metadata = record["metadata"]
            .as_object()
            .expect("metadata is an object");
        assert!(metadata.values().all(|v| !v.is_null()), "{metadata:?}");
        assert_eq!(metadata["document"], "000_6b84f5fb9e9426be.txt");
        assert!(metadata["line_start"].as_u64().unwrap() > 0);
    }
    assert!(
        records[0]["content"].as_str().unwrap().contains("徐汇区"),
        "{answer}"
    );
    let (_, none) = dify(
        &json!({"knowledge_id": "default", "query": "模速空间", "retrieval_setting": {"top_k": 3, "score_threshold": 0.99}}),
        Some("Bearer dify-key"),
    );
    assert_eq!(none, json!({"records": []}));

    // Dify's error codes and shapes.
    let error = |answer: (u16, Value), status: u16, code: u64| {
        assert_eq!(answer.0, status, "{}", answer.1);
        assert_eq!(answer.1["error_code"], code, "{}", answer.1);
        assert!(answer.1["error_msg"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    };
    error(dify(&documented, None), 403, 1001);
    error(dify(&documented, Some("Basic dify-key")), 403, 1001);
    error(dify(&documented, Some("Bearer wrong")), 403, 1002);
    let mut unknown = documented.clone();
    unknown["knowledge_id"] = json!("AAA-BBB-CCC");
    error(dify(&unknown, Some("Bearer dify-key")), 404, 2001);

    // Metadata conditions, as Dify sends them.
    let admin = [("Authorization", "Bearer admin-secret")];
    call_with(url, "PUT", "/v1/collections/kb", None, &admin);
    for (id, metadata) in [
        (
            "ai",
            json!({"category": "AI", "tag": "tech", "year": 2024, "published": "2024-03-01"}),
        ),
        (
            "bio",
            json!({"category": "biology", "tag": "AI-adjacent", "year": 2021, "published": "2021-07-01"}),
        ),
        (
            "sea",
            json!({"category": "ocean", "year": 2019, "published": "2019-01-01"}),
        ),
    ] {
        let body =
            json!({"text": format!("{id}：关于科学研究进展的一篇报道。"), "metadata": metadata})
                .to_string();
        let (status, answer) = call_with(
            url,
            "PUT",
            &format!("/v1/collections/kb/documents/{id}"),
            Some(("application/json", body.as_bytes())),
            &admin,
        );
        assert_eq!(status, 201, "{answer}");
    }
    let filtered = |condition: Value| -> Vec<String> {
        let body = json!({
            "knowledge_id": "kb",
            "query": "科学研究进展",
            "retrieval_setting": {"top_k": 10, "score_threshold": 0.0},
            "metadata_condition": condition
        });
        let (status, answer) = dify(&body, Some("Bearer dify-key"));
        assert_eq!(status, 200, "{answer}");
        let mut documents: Vec<String> = answer["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["metadata"]["document"].as_str().unwrap().to_owned())
            .collect();
        documents.sort();
        documents
    };
    // Dify's documented example: a field list and `contains`.
    let example = json!({"logical_operator": "and", "conditions": [
        {"name": ["category", "tag"], "comparison_operator": "contains", "value": "AI"}]});
    assert_eq!(filtered(example), ["ai", "bio"]);
    let or = json!({"logical_operator": "or", "conditions": [
        {"name": "category", "comparison_operator": "is", "value": "ocean"},
        {"name": "year", "comparison_operator": "≥", "value": 2024}]});
    assert_eq!(filtered(or), ["ai", "sea"]);
    let and = json!({"conditions": [
        {"name": "tag", "comparison_operator": "not empty"},
        {"name": "published", "comparison_operator": "before", "value": "2022-01-01"}]});
    assert_eq!(filtered(and), ["bio"]);
    let negated = json!({"conditions": [
        {"name": "category", "comparison_operator": "not in", "value": ["AI", "ocean"]},
        {"name": "year", "comparison_operator": "<", "value": 2022}]});
    assert_eq!(filtered(negated), ["bio"]);
    let bad = json!({"knowledge_id": "kb", "query": "科学", "retrieval_setting": {"top_k": 2, "score_threshold": 0},
        "metadata_condition": {"conditions": [{"name": "x", "comparison_operator": "resembles", "value": "y"}]}});
    error(dify(&bad, Some("Bearer dify-key")), 422, 422);
}

/// Vectors belong to one model: a store opened with another embeds its passages again (once
/// per distinct text), and keeps the first model's vectors for a switch back.
#[test]
fn another_model_embeds_the_stored_passages_again_and_a_switch_back_reuses_them() {
    use std::sync::Arc;
    use wenda::embedding::ModelFingerprint;
    use wenda::service::{ModelSummary, Service};
    use wenda::store::SqliteStore;

    let dir = common::seeded_data_dir("model-switch");
    let model = common::model();
    let open = |fingerprint: ModelFingerprint| {
        let summary = ModelSummary {
            id: "test".into(),
            dimensions: model.embedder.dimensions(),
            pooling: "mean".into(),
            max_tokens: 512,
        };
        let store = SqliteStore::open(&dir, fingerprint, model.embedder.dimensions()).unwrap();
        let (service, report) = Service::open(
            Arc::clone(&model.embedder),
            summary,
            Arc::new(store),
            &common::settings(8),
            &mut |_, _| {},
        )
        .unwrap();
        drop(service);
        report
    };
    let same = open(model.fingerprint);
    assert_eq!((same.embedded, same.collections), (0, 1));
    let other = open(ModelFingerprint::from_bytes([9; 32]));
    assert!(
        other.embedded > 0 && other.embedded <= other.passages,
        "{other:?}"
    );
    assert_eq!(
        open(model.fingerprint).embedded,
        0,
        "the first model's vectors were kept"
    );
}

/// A document sent as a file rather than JSON: its format by media type (or, for
/// `application/octet-stream`, by the id's extension), its text in the declared or detected
/// encoding, its fields in the query string; what is not a readable file is refused by name.
#[test]
fn a_document_can_be_put_as_a_file_in_any_common_encoding() {
    let server = server();
    let url = server.url.as_str();
    assert_eq!(call(url, "PUT", "/v1/collections/files", None).0, 201);
    let text = "旧编码的通知：城市公园将于五月一日起延长开放时间。";
    let gbk = encoding_rs::GBK.encode(text).0.into_owned();
    // Puts a file and reads back what was stored.
    let put_and_get = |path: &str, content_type: &str, body: &[u8]| {
        let (status, put) = call(
            url,
            "PUT",
            &format!("/v1/collections/files/documents/{path}"),
            Some((content_type, body)),
        );
        assert_eq!(status, 201, "{put}");
        let id = path.split('?').next().unwrap();
        call(
            url,
            "GET",
            &format!("/v1/collections/files/documents/{id}"),
            None,
        )
        .1
    };
    for (id, content_type) in [
        ("declared", "text/plain; charset=GBK"),
        ("detected", "text/plain"),
    ] {
        let path = format!(
            "{id}?title=%E5%85%AC%E5%9B%AD&date=2025-04-30&metadata=%7B%22lang%22%3A%22zh%22%7D"
        );
        let stored = put_and_get(&path, content_type, &gbk);
        assert_eq!(stored["text"], text, "{content_type}");
        assert_eq!(
            (
                &stored["title"],
                &stored["date"],
                &stored["metadata"]["lang"],
                &stored["format"]
            ),
            (
                &json!("公园"),
                &json!("2025-04-30"),
                &json!("zh"),
                &json!("news")
            ),
            "{stored}"
        );
    }
    let markdown = "# 会议纪要\n\n讨论了公园的开放时间。";
    let stored = put_and_get(
        "minutes.md",
        "application/octet-stream",
        markdown.as_bytes(),
    );
    assert_eq!(stored["format"], "markdown", "{stored}");
    assert!(
        stored["passages"][0]["citation"]
            .get("page_start")
            .is_none(),
        "{stored}"
    );
    // Form feeds are page breaks, as in text extracted from PDF: citations name the pages.
    let paged = "第一页：公园开放时间的通知。\n\u{c}第二页：夏季延长至晚上十点。";
    let stored = put_and_get(
        "paged.txt?format=plain",
        "text/plain; charset=utf-8",
        paged.as_bytes(),
    );
    let citation = &stored["passages"][0]["citation"];
    assert_eq!(
        (&citation["page_start"], &citation["page_end"]),
        (&json!(1), &json!(2)),
        "{stored}"
    );
    let (_, found) = send_json(
        url,
        "POST",
        "/v1/collections/files/search",
        &json!({"query": "夏季开放到几点", "top_k": 1, "filter": {"document": "paged.txt"},
                "context": {"max_chars": 500}}),
    );
    let context = found["context"]["text"].as_str().unwrap_or_default();
    assert!(context.starts_with("[1] (pp. 1–2)\n"), "{found}");
    assert_eq!(found["context"]["citations"][0]["page_end"], 2, "{found}");
    let (_, found) = send_json(
        url,
        "POST",
        "/v1/collections/files/search",
        &json!({"query": "公园什么时候延长开放", "top_k": 3}),
    );
    assert_eq!(found["results"].as_array().unwrap().len(), 3, "{found}");

    let put_file = |path: &str, content_type: &str, body: &[u8]| {
        call(
            url,
            "PUT",
            &format!("/v1/collections/files/documents/{path}"),
            Some((content_type, body)),
        )
    };
    let (status, refused) = put_file(
        "scan.txt",
        "application/octet-stream",
        b"%PDF-1.7\n\x00\x01",
    );
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (422, Some("unreadable_document")),
        "{refused}"
    );
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("binary data"),
        "{refused}"
    );
    assert_error(
        put_file("declared", "text/plain; charset=utf-8", &gbk),
        422,
        "unreadable_document",
    );
    assert_error(
        put_file("x", "text/plain; charset=klingon", b"a"),
        415,
        "unsupported_media_type",
    );
    let (status, refused) = put_file("x", "image/png", b"\x89PNG");
    assert_eq!(status, 415, "{refused}");
    assert_eq!(refused["error"]["code"], "unsupported_media_type");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("\"image/png\" is not a document format: send JSON (`application/json`), a file as one of text/plain,"),
        "{refused}"
    );
    assert_error(
        put_file("x.csv", "application/octet-stream", b"a,b"),
        415,
        "unsupported_media_type",
    );
    assert_error(
        put_file("x?metadata=%5B1%5D", "text/plain", "正文。".as_bytes()),
        422,
        "invalid_request",
    );
    // The fields of a JSON document are in its body, never in the query string too.
    assert_error(
        call(
            url,
            "PUT",
            "/v1/collections/files/documents/json?title=x",
            Some(("application/json", r#"{"text": "正文。"}"#.as_bytes())),
        ),
        422,
        "invalid_request",
    );
    // Every refusal left the collection as it was.
    let (_, described) = call(url, "GET", "/v1/collections/files", None);
    assert_eq!(described["documents"], 4, "{described}");
}
