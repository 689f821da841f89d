//! The HTTP API end to end: the real model over the seed corpus, served on an ephemeral port and
//! queried over real HTTP.

mod common;

use common::{assert_error, call, get, post, post_json, server, start, texts, Options};
use serde_json::{json, Value};
use wenda::embedding::DEFAULT_MODEL;
use wenda::http::Limits;

#[test]
fn chinese_question_finds_the_ai_study_session() {
    let (status, answer) =
        post(&json!({"query": "中央政治局集体学习时对人工智能发展提出了什么要求？"}));
    assert_eq!(status, 200, "{answer}");
    let first = &answer["results"][0];
    let title = first["document"]["title"].as_str().unwrap();
    assert!(
        title.contains("集体学习") && title.contains("人工智能"),
        "first result is from {title:?}: {answer}"
    );
    assert_eq!(answer["results"].as_array().unwrap().len(), 5);
    assert_eq!(answer["truncated"], false);
    let scores: Vec<f64> = answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["score"].as_f64().unwrap())
        .collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    assert!(first["citation"]["line_start"].as_u64().unwrap() > 0);

    // Highlights are code-point ranges of the question's words, in order and disjoint.
    let question: &str = answer["query"].as_str().unwrap();
    let chars: Vec<char> = first["text"].as_str().unwrap().chars().collect();
    let spans: Vec<(usize, usize)> = serde_json::from_value(first["highlights"].clone()).unwrap();
    assert!(!spans.is_empty(), "{first}");
    assert!(spans.windows(2).all(|w| w[0].1 < w[1].0), "{spans:?}");
    for (start, end) in spans {
        let marked: String = chars[start..end].iter().collect();
        assert!(
            marked.chars().count() > 1 && question.contains(&marked),
            "{marked:?}"
        );
    }
    let (_, plain) = post(&json!({"query": question, "highlight": false}));
    assert!(plain["results"][0].get("highlights").is_none(), "{plain}");
}

#[test]
fn english_question_finds_the_incubator_paragraph() {
    let (status, answer) = get(
        "/v1/search?q=Which%20district%20of%20Shanghai%20hosts%20the%20large-model%20incubator%20that%20was%20visited%3F&top_k=3",
    );
    assert_eq!(status, 200, "{answer}");
    let found = texts(&answer);
    assert_eq!(found.len(), 3);
    assert!(
        found
            .iter()
            .any(|t| t.contains("模速空间") && t.contains("徐汇区")),
        "{found:#?}"
    );
}

#[test]
fn filters_restrict_the_candidates_before_ranking() {
    let question = "人工智能";
    let (_, all) = post(&json!({"query": question, "top_k": 100}));
    let total = all["results"].as_array().unwrap().len();

    let (status, dated) = post(&json!({
        "query": question, "top_k": 100,
        "filter": {"date_from": "2025-04-29", "date_to": "2025-04-29"}
    }));
    assert_eq!(status, 200, "{dated}");
    let dated = dated["results"].as_array().unwrap();
    assert!(!dated.is_empty() && dated.len() < total);
    assert!(dated.iter().all(|r| r["document"]["date"] == "2025-04-29"));

    let (_, titled) = post(&json!({
        "query": question, "top_k": 3, "filter": {"title": "上海考察"}
    }));
    let titled = titled["results"].as_array().unwrap();
    assert_eq!(titled.len(), 3, "a filter must not thin the top k");
    assert!(titled.iter().all(|r| r["document"]["title"]
        .as_str()
        .unwrap()
        .contains("上海考察")));

    let (_, elsewhere) = post(&json!({
        "query": question, "filter": {"document": "no/such/file.txt"}
    }));
    assert_eq!(elsewhere["results"], json!([]));

    let (_, confident) = post(&json!({"query": question, "top_k": 100, "min_score": 0.99}));
    assert_eq!(confident["results"], json!([]));
}

#[test]
fn passages_and_related_passages() {
    let (_, answer) = post(&json!({"query": "模速空间", "top_k": 1}));
    let id = answer["results"][0]["id"].as_str().unwrap().to_owned();

    let (status, passage) = get(&format!("/v1/passages/{id}"));
    assert_eq!(status, 200, "{passage}");
    assert_eq!(passage["id"], id.as_str());
    assert_eq!(passage["text"], answer["results"][0]["text"]);

    let (status, similar) = get(&format!("/v1/passages/{id}/similar?top_k=4"));
    assert_eq!(status, 200, "{similar}");
    let results = similar["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    assert!(results.iter().all(|r| r["id"] != id.as_str()), "{similar}");

    assert_error(get("/v1/passages/no-such-id"), 404, "unknown_passage");
    assert_error(
        get("/v1/passages/no-such-id/similar"),
        404,
        "unknown_passage",
    );
}

#[test]
fn health_readiness_and_info() {
    assert_eq!(get("/health"), (200, json!({"status": "ok"})));
    assert_eq!(get("/ready"), (200, json!({"status": "ready"})));
    let (status, info) = get("/v1/info");
    assert_eq!(status, 200);
    assert_eq!(info["model"]["id"], DEFAULT_MODEL);
    assert_eq!(info["model"]["dimensions"], 384);
    assert!(info["passages"].as_u64().unwrap() >= 20);
    assert_eq!(info["documents"], 1);
    assert_eq!(
        info["index_bytes"].as_u64().unwrap(),
        info["passages"].as_u64().unwrap() * 384 * 4
    );
    // The kernels named are the newest this CPU can run.
    let newest = wenda::cpu::Level::ALL
        .into_iter()
        .rev()
        .find(|level| level.is_supported())
        .unwrap();
    assert_eq!(info["kernels"], newest.name());
}

#[test]
fn a_question_beyond_the_window_is_answered_and_flagged() {
    let question = "人工智能的发展和监管。".repeat(200);
    let (status, answer) = post(&json!({ "query": question }));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["truncated"], true);
    assert_eq!(answer["query_tokens"], 512);
    assert_eq!(answer["results"].as_array().unwrap().len(), 5);
}

#[test]
fn bad_requests_get_a_status_and_a_json_error() {
    assert_error(post(&json!({"query": "  \n "})), 400, "empty_query");
    assert_error(get("/v1/search?q="), 400, "empty_query");
    // Zero-width characters alone are nothing to ask; bytes that are not UTF-8 are refused
    // rather than searched as U+FFFD.
    assert_error(get("/v1/search?q=%E2%80%8B%E2%80%8B"), 400, "empty_query");
    assert_error(get("/v1/search?q=%ff%fe"), 400, "bad_request");
    assert_error(get("/v1/search"), 422, "invalid_request");
    assert_error(
        post(&json!({"query": "a", "top_k": 0})),
        422,
        "invalid_request",
    );
    assert_error(
        post(&json!({"query": "a", "top_k": 101})),
        422,
        "invalid_request",
    );
    assert_error(get("/v1/search?q=a&top_k=five"), 422, "invalid_request");
    // A field serde cannot read is named, in the API's words rather than Rust's.
    for (body, field) in [
        (json!({"query": "a", "top_k": -1}), "top_k:"),
        (json!({"query": "a", "top_k": "x"}), "top_k:"),
        (json!({"query": "a", "min_score": "high"}), "min_score:"),
        (json!({"query": "a", "filter": 3}), "filter:"),
    ] {
        let (status, answer) = post(&body);
        assert_eq!(status, 422, "{answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(field), "{body}: {message}");
        for rust in ["usize", "u64", "f32", "struct", "Option"] {
            assert!(!message.contains(rust), "{body}: {message}");
        }
    }
    assert_error(
        post(&json!({"query": "a", "topk": 3})),
        422,
        "invalid_request",
    );
    // serde would read an array as the struct's fields in order; positions are not names.
    for nested in [json!({"filter": ["a.txt"]}), json!({"context": [300]})] {
        let mut body = nested;
        body["query"] = json!("a");
        assert_error(post(&body), 422, "invalid_request");
    }
    assert_error(post(&json!({"query": 42})), 422, "invalid_request");
    assert_error(
        post(&json!({"query": "a", "min_score": 2})),
        422,
        "invalid_request",
    );
    assert_error(
        post(&json!({"query": "a", "filter": {"date_from": "2025-02-30"}})),
        422,
        "invalid_request",
    );
    assert_error(
        post(
            &json!({"query": "a", "filter": {"date_from": "2025-05-01", "date_to": "2025-04-01"}}),
        ),
        422,
        "invalid_request",
    );
    let send = |content_type: &str, body: &[u8]| {
        call(server(), "POST", "/v1/search", Some((content_type, body)))
    };
    assert_error(
        send("application/json", b"{\"query\": "),
        422,
        "malformed_json",
    );
    assert_error(
        send("application/json", b"{\"query\": \"\xff\xfe\"}"),
        422,
        "malformed_json",
    );
    assert_error(
        send("text/plain", b"{\"query\": \"a\"}"),
        415,
        "unsupported_media_type",
    );
    let huge = json!({ "query": "长".repeat(40_000) }).to_string();
    assert_error(
        send("application/json", huge.as_bytes()),
        413,
        "payload_too_large",
    );
    assert_error(get("/v1/nothing-here"), 404, "no_route");
    assert_error(
        call(server(), "DELETE", "/v1/search", None),
        405,
        "method_not_allowed",
    );
}

#[test]
fn concurrent_requests_all_succeed_with_the_sequential_answers() {
    let questions = [
        "会议对财政政策和货币政策有什么部署？",
        "Which district of Shanghai hosts the large-model incubator?",
        "人工智能治理",
        "稳就业稳企业稳市场稳预期",
        "What did the Politburo say about the economy?",
    ];
    let ask = |i: usize| post(&json!({"query": questions[i % questions.len()], "top_k": 5}));
    let sequential: Vec<(u16, Value)> = (0..questions.len()).map(ask).collect();
    let concurrent: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..50).map(|i| scope.spawn(move || ask(i))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, (status, answer)) in concurrent.iter().enumerate() {
        assert_eq!(*status, 200, "{answer}");
        let expected = &sequential[i % questions.len()].1;
        let ids = |a: &Value| {
            a["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(answer), ids(expected), "question {i}");
        for (got, want) in answer["results"]
            .as_array()
            .unwrap()
            .iter()
            .zip(expected["results"].as_array().unwrap())
        {
            let (got, want) = (
                got["score"].as_f64().unwrap(),
                want["score"].as_f64().unwrap(),
            );
            assert!((got - want).abs() < 1e-4, "question {i}: {got} vs {want}");
        }
    }
}

#[test]
fn not_ready_until_the_index_is_built() {
    let server = start(Options {
        ready: false,
        ..Options::default()
    });
    let url = server.url.as_str();
    assert_eq!(call(url, "GET", "/health", None).0, 200);
    assert_error(call(url, "GET", "/ready", None), 503, "not_ready");
    assert_error(
        call(url, "GET", "/v1/search?q=hello", None),
        503,
        "not_ready",
    );
    assert_error(call(url, "GET", "/v1/info", None), 503, "not_ready");
}

#[test]
fn overload_is_refused_rather_than_queued() {
    let server = start(Options {
        limits: Limits {
            max_in_flight: 0,
            ..Limits::default()
        },
        ..Options::default()
    });
    assert_error(
        call(server.url.as_str(), "GET", "/v1/search?q=hello", None),
        503,
        "overloaded",
    );
    // Overload passes: clients are told when to try again.
    match ureq::get(&format!("{}/v1/search?q=hello", server.url)).call() {
        Err(ureq::Error::Status(503, response)) => {
            assert_eq!(response.header("retry-after"), Some("1"));
        }
        other => panic!("expected 503, got {other:?}"),
    }
}

#[test]
fn every_mode_answers_with_its_score_components() {
    for mode in ["dense", "lexical", "hybrid"] {
        let (status, answer) =
            post(&json!({"query": "模速空间在哪个区？", "mode": mode, "top_k": 3}));
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["mode"], mode);
        let first = &answer["results"][0];
        assert!(
            first["text"].as_str().unwrap().contains("模速空间"),
            "{mode}: {answer}"
        );
        let scores = &first["scores"];
        assert_eq!(scores["dense"].is_number(), mode != "lexical", "{answer}");
        assert_eq!(scores["lexical"].is_number(), mode != "dense", "{answer}");
        assert_eq!(
            answer["query_tokens"].is_number(),
            mode != "lexical",
            "{answer}"
        );
    }
    assert_error(
        post(&json!({"query": "a", "mode": "fuzzy"})),
        422,
        "invalid_request",
    );
    let (_, default) = post(&json!({"query": "模速空间"}));
    assert_eq!(default["mode"], "hybrid");
}

fn embed(body: &Value) -> (u16, Value) {
    post_json("/v1/embeddings", body)
}

#[test]
fn openai_compatible_embeddings() {
    let (status, answer) = embed(&json!({
        "input": ["模速空间位于徐汇区。", "The incubator is in Xuhui."],
        "model": "text-embedding-3-small"
    }));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["object"], "list");
    assert_eq!(answer["model"], DEFAULT_MODEL);
    let data = answer["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    for (i, item) in data.iter().enumerate() {
        assert_eq!(item["object"], "embedding");
        assert_eq!(item["index"], i);
        let vector: Vec<f64> = item["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(vector.len(), 384);
        let norm: f64 = vector.iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-3, "{norm}");
    }
    assert!(answer["usage"]["prompt_tokens"].as_u64().unwrap() > 10);

    // The same text as a passage (default) and as a query gets different prompts.
    let (_, passage) = embed(&json!({"input": "人工智能"}));
    let (_, query) = embed(&json!({"input": "人工智能", "input_type": "query"}));
    assert_ne!(
        passage["data"][0]["embedding"],
        query["data"][0]["embedding"]
    );
    let (_, again) = embed(&json!({"input": ["人工智能"]}));
    let first = passage["data"][0]["embedding"].as_array().unwrap();
    let second = again["data"][0]["embedding"].as_array().unwrap();
    for (a, b) in first.iter().zip(second) {
        assert!((a.as_f64().unwrap() - b.as_f64().unwrap()).abs() < 1e-4);
    }

    // Base64 carries the same little-endian f32 values (what the official clients ask for).
    let (_, encoded) = embed(&json!({"input": "人工智能", "encoding_format": "base64"}));
    let text = encoded["data"][0]["embedding"].as_str().unwrap();
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap();
    let decoded: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(decoded.len(), 384);
    for (a, b) in decoded.iter().zip(first) {
        assert!((f64::from(*a) - b.as_f64().unwrap()).abs() < 1e-4);
    }

    // A body larger than a search's is accepted; texts beyond the window are truncated and say so.
    let long: Vec<String> = (0..3)
        .map(|i| format!("第{i}段。{}", "长".repeat(9_000)))
        .collect();
    let (status, answer) = embed(&json!({ "input": long }));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["data"].as_array().unwrap().len(), 3);
    assert_eq!(answer["data"][0]["truncated"], true);
    assert_eq!(answer["usage"]["prompt_tokens"], 3 * 512);

    assert_error(embed(&json!({"input": []})), 422, "invalid_request");
    let too_many: Vec<&str> = vec!["a"; 129];
    assert_error(embed(&json!({ "input": too_many })), 422, "invalid_request");
    assert_error(embed(&json!({"input": ["a", " "]})), 400, "empty_input");
    assert_error(
        embed(&json!({"input": "a", "dimensions": 256})),
        422,
        "invalid_request",
    );
    // Token ids, as LangChain's OpenAIEmbeddings sends them by default, are refused with the fix.
    for ids in [json!([1, 2, 3]), json!([[0, 5, 2], [0, 7, 2]])] {
        let (status, answer) = embed(&json!({ "input": ids }));
        assert_eq!(status, 422, "{answer}");
        assert_eq!(
            answer["error"]["code"], "token_ids_not_supported",
            "{answer}"
        );
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("check_embedding_ctx_length=False"),
            "{message}"
        );
    }
    assert_error(embed(&json!({"input": [1, "a"]})), 422, "invalid_request");
    assert_error(embed(&json!({"input": [-1]})), 422, "invalid_request");
    assert_error(
        embed(&json!({"input": "a", "input_type": "document"})),
        422,
        "invalid_request",
    );
}

#[test]
fn context_blocks_for_chatbots() {
    let (status, answer) = post(&json!({
        "query": "模速空间在哪个区？", "top_k": 4, "context": {"max_chars": 400}
    }));
    assert_eq!(status, 200, "{answer}");
    let context = &answer["context"];
    let text = context["text"].as_str().unwrap();
    assert!(text.chars().count() <= 400, "{text}");
    assert!(text.starts_with("[1] "), "{text}");
    assert!(text.contains("(2025-04-29, 新华网)\n"), "{text}");
    let citations = context["citations"].as_array().unwrap();
    assert!(!citations.is_empty());
    assert_eq!(
        citations.len() + context["omitted"].as_u64().unwrap() as usize,
        4
    );
    for (i, citation) in citations.iter().enumerate() {
        assert_eq!(citation["number"], i + 1);
        assert_eq!(citation["id"], answer["results"][i]["id"]);
        assert!(text.contains(&format!("[{}] ", i + 1)));
    }

    let (_, by_tokens) =
        get("/v1/search?q=%E6%A8%A1%E9%80%9F%E7%A9%BA%E9%97%B4&top_k=3&context_tokens=60");
    assert_eq!(by_tokens["context"]["cut"], true, "{by_tokens}");
    assert!(by_tokens["context"]["text"]
        .as_str()
        .unwrap()
        .ends_with('…'));
    let (_, none) = post(&json!({"query": "模速空间"}));
    assert!(none.get("context").is_none());

    assert_error(
        post(&json!({"query": "a", "context": {"max_chars": 10, "max_tokens": 10}})),
        422,
        "invalid_request",
    );
    assert_error(
        post(&json!({"query": "a", "context": {}})),
        422,
        "invalid_request",
    );
    assert_error(
        post(&json!({"query": "a", "context": {"max_chars": 0}})),
        422,
        "invalid_request",
    );
}

/// Every answer carries a request id (the client's, when it sends a usable one), and the
/// headers that keep browsers from sniffing types and proxies from caching API answers.
#[test]
fn answers_carry_request_ids_and_safety_headers() {
    let url = format!(
        "{}/v1/search?q=%E4%BA%BA%E5%B7%A5%E6%99%BA%E8%83%BD",
        server()
    );
    let given = ureq::get(&url)
        .set("x-request-id", "client-42.a")
        .call()
        .unwrap();
    assert_eq!(given.header("x-request-id"), Some("client-42.a"));
    assert_eq!(given.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(given.header("cache-control"), Some("no-store"));
    let made = |id: &str| {
        ureq::get(&url)
            .set("x-request-id", id)
            .call()
            .unwrap()
            .header("x-request-id")
            .unwrap()
            .to_owned()
    };
    let (first, second) = (made("has spaces"), made(&"x".repeat(65)));
    assert!(!first.is_empty() && first != "has spaces");
    assert_ne!(first, second, "each request gets its own id");
    let health = ureq::get(&format!("{}/health", server())).call().unwrap();
    assert!(health.header("x-request-id").is_some());
    assert_eq!(health.header("cache-control"), None);
}
