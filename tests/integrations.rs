//! The integrations end to end, over real HTTP against the real model: the OpenAPI document
//! against the router, an MCP client session on `/mcp`, and the search page in headless
//! Chromium.

mod common;

use std::collections::BTreeSet;

use common::{call, get, server, start, webdriver, Options};
use rmcp::model::{CallToolRequestParams, CallToolResult, ClientConfig};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt;
use serde_json::{json, Map, Value};

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// A real passage id, to fill `{id}` in documented paths.
fn some_passage_id() -> String {
    let (status, answer) = get("/v1/search?q=%E6%A8%A1%E9%80%9F%E7%A9%BA%E9%97%B4&top_k=1");
    assert_eq!(status, 200, "{answer}");
    answer["results"][0]["id"].as_str().unwrap().to_owned()
}

/// Sends `method path` with a JSON body and returns the status and body, whatever they are.
fn raw(method: &str, path: &str) -> (u16, String) {
    let url = format!("{}{path}", server());
    let response = ureq::request(method, &url)
        .set("Content-Type", "application/json")
        .set("Accept", "application/json, text/event-stream")
        .send_string("{}");
    match response {
        Ok(response) => (response.status(), response.into_string().unwrap()),
        Err(ureq::Error::Status(status, response)) => (status, response.into_string().unwrap()),
        Err(error) => panic!("{method} {path}: {error}"),
    }
}

#[test]
fn openapi_document_describes_exactly_what_the_router_serves() {
    let (status, document) = get("/openapi.json");
    assert_eq!(status, 200, "{document}");
    assert!(
        document["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        document["openapi"]
    );
    assert!(
        document["servers"][0]["url"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:"),
        "the server URL the client used: {}",
        document["servers"]
    );
    let paths = document["paths"].as_object().unwrap();
    let documented: BTreeSet<&str> = paths.keys().map(String::as_str).collect();
    for expected in [
        "/",
        "/docs",
        "/openapi.json",
        "/health",
        "/ready",
        "/v1/info",
        "/v1/search",
        "/v1/passages/{id}",
        "/v1/passages/{id}/similar",
        "/v1/embeddings",
        "/v1/collections",
        "/v1/collections/{collection}",
        "/v1/collections/{collection}/search",
        "/v1/collections/{collection}/passages/{id}",
        "/v1/collections/{collection}/passages/{id}/similar",
        "/v1/collections/{collection}/documents",
        "/v1/collections/{collection}/documents/{doc_id}",
        "/mcp",
    ] {
        assert!(
            documented.contains(expected),
            "{expected} in {documented:?}"
        );
    }

    let id = some_passage_id();
    for (path, operations) in paths {
        // Writes go to a collection of their own, so probing cannot change what other tests see.
        let concrete = path
            .replace("{id}", &id)
            .replace("{collection}", "openapi-probe")
            .replace("{doc_id}", "probe");
        for method in METHODS {
            let (status, body) = raw(method, &concrete);
            let is_documented = operations.get(method.to_lowercase()).is_some();
            if is_documented {
                // Served: whatever it answers, it is not the router's "no such route".
                assert!(
                    status != 405 && !body.contains("\"no_route\""),
                    "{method} {path} is documented but answered {status} {body}"
                );
            } else {
                assert_eq!(
                    status, 405,
                    "{method} {path} is not documented, so it must not be served: {body}"
                );
            }
        }
    }
    let (status, body) = raw("GET", "/v2/nothing");
    assert_eq!(status, 404, "{body}");
}

#[test]
fn openapi_document_is_enough_to_call_search() {
    let (_, document) = get("/openapi.json");
    let search = &document["paths"]["/v1/search"]["post"];
    assert_eq!(search["operationId"], "search");
    assert!(search["summary"].as_str().unwrap().len() > 20, "{search}");
    assert!(
        search["description"].as_str().unwrap().len() > 100,
        "{search}"
    );
    for (path, operations) in document["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            assert!(
                operation["summary"].as_str().is_some_and(|s| !s.is_empty()),
                "{method} {path} has no summary"
            );
            let success = operation["responses"]
                .as_object()
                .unwrap()
                .keys()
                .any(|status| status.starts_with('2'));
            assert!(success, "{method} {path} documents no success");
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                assert!(
                    parameter["description"].is_string(),
                    "{method} {path}: parameter {} is undescribed",
                    parameter["name"]
                );
            }
        }
    }
    // Every field a caller sends is described, so a function-calling model knows what to put.
    let schemas = &document["components"]["schemas"];
    for name in [
        "SearchRequest",
        "Filter",
        "ContextBudget",
        "EmbeddingsRequest",
        "DocumentBody",
    ] {
        for (field, schema) in schemas[name]["properties"].as_object().unwrap() {
            let described =
                schema["description"].is_string() || schema["oneOf"][0]["description"].is_string();
            assert!(described, "{name}.{field} is undescribed: {schema}");
        }
    }
    assert_eq!(
        schemas["SearchRequest"]["required"],
        json!(["query"]),
        "only the query is required"
    );
    assert!(schemas["SearchRequest"]["properties"]["query"]["example"].is_string());
}

#[test]
fn docs_and_search_pages_are_self_contained_html() {
    for path in ["/", "/docs"] {
        let response = ureq::get(&format!("{}{path}", server())).call().unwrap();
        assert_eq!(
            response.content_type(),
            "text/html",
            "{path}: {:?}",
            response.header("content-type")
        );
        let policy = response
            .header("content-security-policy")
            .unwrap()
            .to_owned();
        assert!(policy.contains("default-src 'none'"), "{path}: {policy}");
        let html = response.into_string().unwrap();
        for external in ["src=\"http", "href=\"http", "url(http", "@import"] {
            assert!(
                !html.contains(external),
                "{path} refers outside: {external}"
            );
        }
    }
}

/// An MCP session as an assistant would hold it, with the official SDK's client.
async fn mcp_session(url: String) {
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url),
    );
    let client = ClientConfig::default()
        .serve(transport)
        .await
        .expect("initialize");
    let info = client.peer_info().expect("the server introduced itself");
    assert_eq!(
        info.server_info.as_ref().map(|s| s.name.as_str()),
        Some("wenda")
    );
    assert!(info.capabilities.tools.is_some());

    let tools = client.list_all_tools().await.expect("tools/list");
    let names: BTreeSet<&str> = tools.iter().map(|tool| tool.name.as_ref()).collect();
    assert_eq!(
        names,
        BTreeSet::from(["answer", "get_passage", "search", "similar_passages"])
    );
    let search_tool = tools.iter().find(|tool| tool.name == "search").unwrap();
    assert!(search_tool.input_schema["properties"]["question"].is_object());
    assert_eq!(search_tool.input_schema["required"], json!(["question"]));

    let call = |name: &'static str, arguments: Value| {
        let arguments: Map<String, Value> = serde_json::from_value(arguments).unwrap();
        let params = CallToolRequestParams::new(name).with_arguments(arguments);
        let client = &client;
        async move { client.call_tool(params).await.expect("tools/call") }
    };
    let found = call(
        "search",
        json!({"question": "上海的大模型孵化器模速空间在哪个区？", "top_k": 3}),
    )
    .await;
    assert_eq!(found.is_error, Some(false), "{found:?}");
    let text = text_of(&found);
    assert!(text.starts_with("[1] "), "{text}");
    assert!(text.contains("徐汇区"), "{text}");
    let structured = found.structured_content.as_ref().expect("structured");
    let results = structured["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    let id = results[0]["id"].as_str().unwrap().to_owned();
    assert!(text.contains(&format!("id: {id}")), "{text}");

    let passage = call("get_passage", json!({ "id": id })).await;
    assert_eq!(passage.is_error, Some(false), "{passage:?}");
    assert_eq!(
        passage.structured_content.as_ref().unwrap()["text"],
        results[0]["text"]
    );

    let similar = call("similar_passages", json!({ "id": id, "top_k": 2 })).await;
    assert_eq!(similar.is_error, Some(false), "{similar:?}");
    let related = similar.structured_content.as_ref().unwrap()["results"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(related.len(), 2);
    assert!(related.iter().all(|r| r["id"] != id.as_str()));

    let answered = call(
        "answer",
        json!({"question": "模速空间位于上海哪个区？", "top_k": 3, "max_sentences": 1}),
    )
    .await;
    assert_eq!(answered.is_error, Some(false), "{answered:?}");
    let text = text_of(&answered);
    let structured = answered.structured_content.as_ref().expect("structured");
    assert_eq!(structured["found"], true, "{structured}");
    let quote = structured["citations"][0]["quote"].as_str().unwrap();
    assert!(quote.contains("徐汇区"), "{structured}");
    assert!(
        text.starts_with(&format!("{quote}[1]\n\nSources:\n\n[1] ")),
        "{text}"
    );
    let refused = call("answer", json!({"question": "法国大革命是哪一年爆发的？"})).await;
    assert_eq!(refused.is_error, Some(false), "{refused:?}");
    assert!(
        text_of(&refused).starts_with("知识库中没有找到这个问题的答案。\n\nPassages searched:"),
        "{refused:?}"
    );

    // Mistakes come back as tool errors the model can read, not as protocol failures.
    let unknown = call("get_passage", json!({"id": "no-such-passage"})).await;
    assert_eq!(unknown.is_error, Some(true));
    assert!(
        text_of(&unknown).starts_with("unknown_passage"),
        "{unknown:?}"
    );
    let empty = call("search", json!({"question": " "})).await;
    assert!(text_of(&empty).starts_with("empty_query"), "{empty:?}");
    let empty = call("answer", json!({"question": " "})).await;
    assert!(text_of(&empty).starts_with("empty_question"), "{empty:?}");
    let bad_date = call(
        "search",
        json!({"question": "AI", "date_from": "2025-13-01"}),
    )
    .await;
    assert_eq!(bad_date.is_error, Some(true));
    assert!(text_of(&bad_date).contains("YYYY-MM-DD"), "{bad_date:?}");

    client.cancel().await.expect("closing the session");
}

fn text_of(result: &CallToolResult) -> &str {
    &result.content[0].as_text().expect("text content").text
}

#[test]
fn mcp_client_session_over_http() {
    let url = format!("{}/mcp", server());
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(mcp_session(url));
}

#[test]
fn mcp_refuses_foreign_hosts_and_non_post() {
    // DNS rebinding: a page on another origin resolving its name to 127.0.0.1.
    let response = ureq::post(&format!("{}/mcp", server()))
        .set("Host", "attacker.example")
        .set("Content-Type", "application/json")
        .set("Accept", "application/json, text/event-stream")
        .send_string(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#);
    match response {
        Err(ureq::Error::Status(status, _)) => assert_eq!(status, 403),
        other => panic!("a foreign Host was served: {other:?}"),
    }
    let (status, body) = call(server(), "GET", "/mcp", None);
    assert_eq!(status, 405, "{body}");
}

#[test]
fn search_page_in_headless_chromium() {
    webdriver::check_search_page(server());
}

#[test]
fn search_page_asks_for_a_key_when_the_server_needs_one() {
    let guarded = start(Options {
        keys: wenda::http::ApiKeys::new(&[], &["page-key".into()]),
        ..Options::default()
    });
    webdriver::check_key_prompt(&guarded.url, "page-key");
}
