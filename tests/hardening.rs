//! Hostile and careless clients: slow headers, stalled bodies, held connections and bodies,
//! foreign hosts and origins, malformed MCP messages; and what operators see (`/metrics`).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{assert_error, call, call_with, scratch, send_json, spawn_server, start, Options};
use serde_json::{json, Value};
use wenda::http::{Limits, Transport};

/// A raw connection to `base` (`http://host:port`).
fn connect(base: &str) -> TcpStream {
    let stream = TcpStream::connect(base.trim_start_matches("http://")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
}

/// Reads one answer (status and JSON body) from `stream`, or `None` when the server closed
/// the connection without one.
fn read_answer(stream: &mut TcpStream) -> Option<(u16, Value)> {
    let mut received = Vec::new();
    let mut buffer = [0; 4096];
    loop {
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= length {
                let status = head.split(' ').nth(1).unwrap().parse().unwrap();
                return Some((status, serde_json::from_str(&body[..length]).unwrap()));
            }
        }
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return None,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
        }
    }
}

/// Whether the server has closed `stream` (reading gives end of file or a reset).
fn closed(stream: &mut TcpStream) -> bool {
    let mut byte = [0; 1];
    matches!(stream.read(&mut byte), Ok(0) | Err(_))
}

#[test]
fn slow_headers_stalled_bodies_and_idle_connections_are_cut_off() {
    let server = start(Options {
        transport: Transport {
            header_timeout: Duration::from_secs(1),
            ..Transport::default()
        },
        limits: Limits {
            body_timeout: Duration::from_secs(1),
            ..Limits::default()
        },
        ..Options::default()
    });
    // Slowloris: a header line every 300 ms never completes the head.
    let mut slow = connect(&server.url);
    let started = Instant::now();
    slow.write_all(b"GET /health HTTP/1.1\r\n").unwrap();
    let mut cut = false;
    for _ in 0..30 {
        std::thread::sleep(Duration::from_millis(300));
        if slow.write_all(b"X-Slow: y\r\n").is_err() {
            cut = true;
            break;
        }
    }
    assert!(
        cut || closed(&mut slow),
        "a slowloris client was never cut off"
    );
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "{:?}",
        started.elapsed()
    );

    // A body that stops arriving: 408 with a JSON error.
    let mut stalled = connect(&server.url);
    stalled
        .write_all(
            b"POST /v1/search HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
              Content-Length: 1000\r\n\r\n{\"query\": \"hi",
        )
        .unwrap();
    let (status, body) = read_answer(&mut stalled).expect("an answer to a stalled body");
    assert_error((status, body), 408, "body_timeout");

    // A connection that sends nothing is closed after the header timeout.
    let mut idle = connect(&server.url);
    assert!(closed(&mut idle));

    // A body declared over the limit is refused before it is sent.
    let mut huge = connect(&server.url);
    huge.write_all(
        b"POST /v1/search HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
          Content-Length: 1000000000\r\n\r\n",
    )
    .unwrap();
    let answer = read_answer(&mut huge).expect("an answer before the body");
    assert_error(answer, 413, "payload_too_large");
}

#[test]
fn connections_over_the_cap_are_refused_while_health_still_answers() {
    let server = start(Options {
        transport: Transport {
            max_connections: 3,
            ..Transport::default()
        },
        ..Options::default()
    });
    let held: Vec<TcpStream> = (0..3).map(|_| connect(&server.url)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let ask = |path: &str| {
        let mut stream = connect(&server.url);
        stream
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
            .unwrap();
        read_answer(&mut stream).expect("an answer over the cap")
    };
    assert_error(ask("/v1/search?q=hello"), 503, "too_many_connections");
    assert_eq!(ask("/health"), (200, json!({"status": "ok"})));
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(call(&server.url, "GET", "/v1/search?q=hello", None).0, 200);
}

/// Resident memory of process `pid`, in bytes.
fn resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

/// Clients holding large bodies one byte short: only `--max-in-flight` of them are read; the
/// rest are refused before their bodies are buffered, so memory does not grow with them.
#[test]
fn held_bodies_beyond_the_in_flight_limit_are_refused_unread() {
    const CLIENTS: usize = 60;
    const BODY: usize = 4 * 1024 * 1024;
    let data = scratch("held-bodies");
    let server = spawn_server(&data, &["--no-corpus", "--max-in-flight", "2"]);
    let pid = server.child.id();
    let before = resident_bytes(pid);
    let chunk = vec![b' '; BODY - 1];
    let head = format!(
        "POST /v1/embeddings HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {BODY}\r\n\r\n"
    );
    let mut clients: Vec<TcpStream> = Vec::new();
    for _ in 0..CLIENTS {
        let mut stream = connect(&server.url);
        stream.write_all(head.as_bytes()).unwrap();
        // A refused client may find the connection closed before it has sent everything.
        let _ = stream.write_all(&chunk);
        clients.push(stream);
    }
    std::thread::sleep(Duration::from_millis(500));
    let grown = resident_bytes(pid).saturating_sub(before);
    let mut overloaded = 0;
    for stream in clients.iter_mut().skip(2) {
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        if let Some((503, body)) = read_answer(stream) {
            assert_eq!(body["error"]["code"], "overloaded", "{body}");
            overloaded += 1;
        }
    }
    assert!(
        overloaded >= CLIENTS - 4,
        "{overloaded} of {CLIENTS} refused"
    );
    // Were every body buffered, 60 × 4 MiB = 240 MiB; two are allowed.
    assert!(
        grown < 64 * 1024 * 1024,
        "resident memory grew by {} MiB",
        grown >> 20
    );
}

#[test]
fn foreign_hosts_and_origins_are_refused_and_cors_is_opt_in() {
    let server = start(Options {
        cors_origins: vec!["https://app.example.com".into()],
        ..Options::default()
    });
    let url = server.url.as_str();
    for path in ["/v1/search?q=hi", "/openapi.json", "/", "/v1/info"] {
        let answer = call_with(url, "GET", path, None, &[("Host", "evil.example")]);
        assert_error(answer, 403, "host_not_allowed");
    }
    let search = r#"{"query": "人工智能"}"#.as_bytes();
    let post = |origin: &str| {
        call_with(
            url,
            "POST",
            "/v1/search",
            Some(("application/json", search)),
            &[("Origin", origin)],
        )
    };
    assert_error(post("https://evil.example"), 403, "origin_not_allowed");
    assert_error(post("null"), 403, "origin_not_allowed");
    assert_eq!(post(url).0, 200, "the server's own pages may post");
    assert_eq!(post("https://app.example.com").0, 200);

    // CORS: the allowed origin is told so, others are not; preflights are answered.
    let allowed = ureq::get(&format!("{url}/v1/search?q=hi"))
        .set("Origin", "https://app.example.com")
        .call()
        .unwrap();
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    let foreign = ureq::get(&format!("{url}/v1/search?q=hi"))
        .set("Origin", "https://evil.example")
        .call()
        .unwrap();
    assert_eq!(foreign.header("access-control-allow-origin"), None);
    let preflight = ureq::request("OPTIONS", &format!("{url}/v1/search"))
        .set("Origin", "https://app.example.com")
        .set("Access-Control-Request-Method", "POST")
        .set(
            "Access-Control-Request-Headers",
            "authorization, content-type",
        )
        .call()
        .unwrap();
    assert_eq!(preflight.status(), 200);
    let methods = preflight.header("access-control-allow-methods").unwrap();
    assert!(methods.contains("POST"), "{methods}");

    // Without --cors-origin no CORS header is ever sent.
    let closed = start(Options::default());
    let answer = ureq::get(&format!("{}/v1/search?q=hi", closed.url))
        .set("Origin", "https://app.example.com")
        .call()
        .unwrap();
    assert_eq!(answer.header("access-control-allow-origin"), None);

    // /openapi.json names only the host it was asked by, once allowed, and a known scheme.
    let host = url.trim_start_matches("http://");
    let (_, document) = call_with(
        url,
        "GET",
        "/openapi.json",
        None,
        &[("X-Forwarded-Proto", "javascript")],
    );
    assert_eq!(document["servers"][0]["url"], format!("http://{host}"));
    let (_, document) = call_with(
        url,
        "GET",
        "/openapi.json",
        None,
        &[("X-Forwarded-Proto", "https")],
    );
    assert_eq!(document["servers"][0]["url"], format!("https://{host}"));
}

#[test]
fn requests_without_a_host_header_are_answered() {
    let server = start(Options::default());
    let mut stream = connect(&server.url);
    stream.write_all(b"GET /health HTTP/1.0\r\n\r\n").unwrap();
    assert_eq!(
        read_answer(&mut stream),
        Some((200, json!({"status": "ok"})))
    );
}

/// Posts `body` to `/mcp` as an MCP client would and returns the status and JSON-RPC answer.
fn mcp(url: &str, body: &[u8], headers: &[(&str, &str)]) -> (u16, Value) {
    let mut all = vec![("Accept", "application/json, text/event-stream")];
    all.extend_from_slice(headers);
    call_with(url, "POST", "/mcp", Some(("application/json", body)), &all)
}

#[test]
fn mcp_errors_come_in_json_rpc_form() {
    let server = start(Options::default());
    let url = server.url.as_str();
    let (status, answer) = mcp(url, b"{not json", &[]);
    assert_eq!(status, 400);
    assert_eq!(answer["error"]["code"], -32700, "{answer}");
    assert_eq!(answer["id"], Value::Null);

    let initialize = br#"{"jsonrpc":"2.0","id":7,"method":"initialize","params":{}}"#;
    let (status, answer) = mcp(url, initialize, &[]);
    assert_eq!(status, 200);
    assert_eq!(answer["id"], 7);
    assert_eq!(answer["error"]["code"], -32602, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("protocolVersion"), "{message}");

    let (status, answer) = mcp(url, b"[1, 2]", &[]);
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (400, json!(-32600))
    );

    let list = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let (status, answer) = mcp(url, list, &[("Origin", "https://evil.example")]);
    assert_eq!(status, 403);
    assert_eq!(
        answer["error"]["data"]["code"], "origin_not_allowed",
        "{answer}"
    );
    let (status, answer) = mcp(url, list, &[("Host", "evil.example")]);
    assert_eq!(status, 403);
    assert_eq!(
        answer["error"]["data"]["code"], "host_not_allowed",
        "{answer}"
    );
    let (status, answer) = call_with(url, "POST", "/mcp", Some(("application/json", list)), &[]);
    assert_eq!(status, 406);
    assert_eq!(
        answer["error"]["data"]["code"], "not_acceptable",
        "{answer}"
    );
    let (status, answer) = mcp(url, list, &[]);
    assert_eq!(status, 200);
    assert!(answer["result"]["tools"].is_array(), "{answer}");
}

/// Issue 23, finding 6: JSON that is not a valid JSON-RPC request is 400 with -32600 naming
/// what is wrong (not 415), with the request's id when that one is valid; an unknown method is
/// -32601 and wrong params of a known one -32602, both 200 with the id; a tool argument of the
/// wrong type is a tool error naming the argument, without Rust's type names.
#[test]
fn mcp_answers_invalid_json_rpc_with_its_error_codes() {
    let server = start(Options::default());
    let url = server.url.as_str();
    for (body, id, named) in [
        (
            json!({"jsonrpc": "2.0", "id": 1.5, "method": "tools/list"}),
            Value::Null,
            "id",
        ),
        (
            json!({"jsonrpc": "2.0", "id": null, "method": "tools/list"}),
            Value::Null,
            "id",
        ),
        (
            json!({"jsonrpc": "2.0", "id": {}, "method": "tools/list"}),
            Value::Null,
            "id",
        ),
        (
            json!({"jsonrpc": "2.0", "id": [1], "method": "tools/list"}),
            Value::Null,
            "id",
        ),
        (
            json!({"id": 3, "method": "tools/list"}),
            json!(3),
            "jsonrpc",
        ),
        (
            json!({"jsonrpc": "1.0", "id": "a", "method": "tools/list"}),
            json!("a"),
            "jsonrpc",
        ),
        (
            json!({"jsonrpc": "2.0", "id": 4, "method": "tools/list", "params": []}),
            json!(4),
            "params",
        ),
        (
            json!({"jsonrpc": "2.0", "id": 5, "method": "tools/list", "params": 1}),
            json!(5),
            "params",
        ),
        (
            json!({"jsonrpc": "2.0", "id": 6, "method": 7}),
            json!(6),
            "method",
        ),
        (json!({"jsonrpc": "2.0", "id": 8}), json!(8), "method"),
    ] {
        let (status, answer) = mcp(url, body.to_string().as_bytes(), &[]);
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["jsonrpc"], "2.0", "{body}: {answer}");
        assert_eq!(answer["id"], id, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], -32600, "{body}: {answer}");
        assert_eq!(
            answer["error"]["data"],
            json!({"code": "invalid_request", "status": 400}),
            "{body}: {answer}"
        );
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(named), "{body}: {message}");
    }

    let (status, answer) = mcp(
        url,
        br#"{"jsonrpc": "2.0", "id": 9, "method": "no/such"}"#,
        &[],
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["id"], 9, "{answer}");
    assert_eq!(answer["error"]["code"], -32601, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("no/such"), "{message}");

    let tools_call = |params: Value| {
        let body = json!({"jsonrpc": "2.0", "id": 10, "method": "tools/call", "params": params});
        let (status, answer) = mcp(url, body.to_string().as_bytes(), &[]);
        assert_eq!(status, 200, "{body}: {answer}");
        assert_eq!(answer["id"], 10, "{body}: {answer}");
        answer
    };
    for (params, named) in [
        (json!({}), "name"),
        (json!({"name": 5}), "name"),
        (json!({"name": "search", "arguments": [1]}), "arguments"),
        (json!({"name": "no_such_tool"}), "no_such_tool"),
    ] {
        let answer = tools_call(params.clone());
        assert_eq!(answer["error"]["code"], -32602, "{params}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(named), "{params}: {message}");
    }

    // Arguments the model got wrong are tool errors it can read and correct.
    for (arguments, named) in [
        (json!({"question": "AI", "top_k": -1}), "top_k"),
        (json!({"question": "AI", "top_k": "x"}), "top_k"),
        (json!({"question": "AI", "top_k": 2.5}), "top_k"),
        (json!({"question": "AI", "top_k": 0}), "top_k"),
        (json!({"top_k": 1}), "question"),
        (json!({"question": 5}), "question"),
        (json!({"question": "AI", "date_from": false}), "date_from"),
    ] {
        let answer = tools_call(json!({"name": "search", "arguments": arguments}));
        let result = &answer["result"];
        assert_eq!(result["isError"], true, "{arguments}: {answer}");
        let text = result["content"][0]["text"].as_str().unwrap();
        assert!(text.contains(named), "{arguments}: {text}");
        for rust in [
            "usize",
            "u64",
            "i64",
            "u32",
            "f64",
            "String",
            "struct",
            "enum",
            "expected u",
        ] {
            assert!(!text.contains(rust), "{arguments}: {text}");
        }
    }
    let answer = tools_call(json!({"name": "search", "arguments": {"question": "AI", "top_k": 1}}));
    assert_eq!(answer["result"]["isError"], false, "{answer}");
    let results = answer["result"]["structuredContent"]["results"].as_array();
    assert_eq!(results.map(Vec::len), Some(1), "{answer}");

    // A notification is accepted without an answer.
    let notification = ureq::post(&format!("{url}/mcp"))
        .set("Content-Type", "application/json")
        .set("Accept", "application/json, text/event-stream")
        .send_string(r#"{"jsonrpc": "2.0", "method": "notifications/initialized"}"#)
        .unwrap();
    assert_eq!(notification.status(), 202);
}

/// One sample of a Prometheus text exposition: `name{labels} value`.
fn samples(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line:?}"));
            let name_end = series.find('{').unwrap_or(series.len());
            let name = &series[..name_end];
            assert!(
                !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
                "bad metric name in {line:?}"
            );
            if name_end < series.len() {
                assert!(series.ends_with('}'), "unterminated labels in {line:?}");
            }
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}"));
            (series.to_owned(), value)
        })
        .collect()
}

fn metrics(url: &str) -> Vec<(String, f64)> {
    let response = ureq::get(&format!("{url}/metrics")).call().unwrap();
    assert!(response.content_type().starts_with("text/plain"));
    samples(&response.into_string().unwrap())
}

fn sample(samples: &[(String, f64)], series: &str) -> f64 {
    samples
        .iter()
        .find(|(s, _)| s == series)
        .map_or(0.0, |(_, v)| *v)
}

#[test]
fn metrics_are_prometheus_text_and_move_with_traffic() {
    let server = start(Options::default());
    let url = server.url.as_str();
    let searches = r#"wenda_http_requests_total{route="/v1/search",method="GET",status="200"}"#;
    let refused = r#"wenda_http_errors_total{code="empty_query"}"#;
    let before = metrics(url);
    assert_eq!(
        call(
            url,
            "GET",
            "/v1/search?q=%E4%BA%BA%E5%B7%A5%E6%99%BA%E8%83%BD",
            None
        )
        .0,
        200
    );
    assert_error(
        call(url, "GET", "/v1/search?q=%20", None),
        400,
        "empty_query",
    );
    let after = metrics(url);
    assert!(sample(&after, searches) >= sample(&before, searches) + 1.0);
    assert!(sample(&after, refused) >= sample(&before, refused) + 1.0);
    for series in [
        r#"wenda_collection_passages{collection="default"}"#,
        r#"wenda_build_info{version="0.1.0"}"#,
    ] {
        assert!(sample(&after, series) > 0.0, "{series} missing or zero");
    }
    for name in [
        "wenda_http_request_duration_seconds_bucket",
        "wenda_search_duration_seconds_count",
        "wenda_embed_tokens_total",
        "wenda_embed_batch_texts_count",
        "wenda_http_connections_open",
        "wenda_http_requests_in_flight",
        "wenda_embed_queue_depth",
    ] {
        assert!(
            after.iter().any(|(s, _)| s.starts_with(name)),
            "{name} missing"
        );
    }
}

#[test]
fn invisible_characters_and_decomposed_letters_do_not_change_a_search() {
    let server = start(Options::default());
    let ids = |query: &str| {
        let (status, answer) =
            send_json(&server.url, "POST", "/v1/search", &json!({"query": query}));
        assert_eq!(status, 200, "{answer}");
        let ids: Vec<String> = answer["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect();
        (answer["query"].clone(), ids)
    };
    let (query, plain) = ids("人工智能学习");
    assert_eq!(ids("人工\u{200B}智能\u{FEFF}学习\u{0}"), (query, plain));
    let (query, _) = ids("cafe\u{301} au lait");
    assert_eq!(query, "caf\u{e9} au lait");
}

/// A question sent while a large embeddings request is being worked through is answered
/// before it: the request is cut into slices, and questions go ahead of the next slice.
#[test]
fn a_question_is_answered_during_a_large_embeddings_request() {
    let server = start(Options::default());
    let url = server.url.clone();
    let long = "人工智能的发展改变了各行各业的工作方式。".repeat(30);
    let inputs: Vec<String> = (0..48).map(|_| long.clone()).collect();
    let embeddings = std::thread::spawn(move || {
        let answer = send_json(&url, "POST", "/v1/embeddings", &json!({"input": inputs}));
        (answer.0, Instant::now())
    });
    std::thread::sleep(Duration::from_millis(300));
    let (status, _) = send_json(
        &server.url,
        "POST",
        "/v1/search",
        &json!({"query": "人工智能"}),
    );
    let searched = Instant::now();
    assert_eq!(status, 200);
    let (status, embedded) = embeddings.join().unwrap();
    assert_eq!(status, 200);
    assert!(
        searched < embedded,
        "the question waited for the whole embeddings request"
    );
}
