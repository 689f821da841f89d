//! Generative answers against a real OpenAI-compatible LLM server: llama.cpp's server
//! (`llama-cpp-python[server]`) with SmolLM2-135M-Instruct, started by `scripts/test.sh`
//! (`scripts/llm-server.sh`) and named by `WENDA_TEST_LLM_URL`. The model is tiny and its
//! answers poor; these tests check the protocol: answers streamed and not, markers that point
//! at sources, refusals that never reach the LLM, condensed follow-ups, and each way an
//! upstream fails becoming its documented error within the timeout.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use common::{send_json, start, Options, Server};
use serde_json::{json, Value};
use wenda::llm::LlmConfig;

/// The server's one thread generates for one request at a time, and the LLM call counter is
/// per process: the tests that ask the real LLM take turns.
fn turn() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|p| p.into_inner())
}

fn llm_url() -> String {
    std::env::var("WENDA_TEST_LLM_URL").expect(
        "WENDA_TEST_LLM_URL names the test LLM server: run ./scripts/test.sh, which starts it \
         (scripts/llm-server.sh start)",
    )
}

fn config(base_url: String, timeout: Duration) -> LlmConfig {
    LlmConfig {
        base_url,
        model: "smollm2".into(),
        api_key: Some("sk-test-key".into()),
        timeout,
        max_tokens: Some(48),
        temperature: Some(0.0),
    }
}

/// A wenda server over the seed corpus whose LLM is the real test server.
fn with_llm() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        start(Options {
            llm: Some(config(llm_url(), Duration::from_secs(120))),
            ..Options::default()
        })
    })
}

/// A wenda server whose LLM is at `base_url`, answering within `timeout`.
fn with_upstream(base_url: String, timeout: Duration) -> Server {
    start(Options {
        llm: Some(config(base_url, timeout)),
        ..Options::default()
    })
}

/// Calls to the LLM so far, by purpose, from the server's metrics.
fn llm_calls(server: &Server, purpose: &str) -> u64 {
    common::metric_total(
        &server.url,
        "wenda_llm_requests_total",
        &format!("purpose=\"{purpose}\""),
    ) as u64
}

/// The `[n]` markers of `text`.
fn markers(text: &str) -> Vec<usize> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        rest = &rest[open + 1..];
        if let Some(close) = rest.find(']') {
            if let Ok(n) = rest[..close].parse() {
                found.push(n);
            }
        }
    }
    found
}

fn without_markers(text: &str) -> String {
    let mut plain = text.to_owned();
    for n in markers(text) {
        plain = plain.replacen(&format!("[{n}]"), "", 1);
    }
    plain
}

/// Checks that every marker names a citation, every citation is marked, and each quote is its
/// passage's text at `quote_span`.
fn check_citations(answer: &Value) {
    let text = answer["answer"].as_str().unwrap();
    let passages = answer["passages"].as_array().unwrap();
    let citations = answer["citations"].as_array().unwrap();
    let cited: Vec<usize> = citations
        .iter()
        .map(|c| c["index"].as_u64().unwrap() as usize)
        .collect();
    for n in markers(text) {
        assert!((1..=passages.len()).contains(&n), "[{n}] in {text:?}");
        assert!(cited.contains(&n), "[{n}] has no citation: {answer}");
    }
    for citation in citations {
        let index = citation["index"].as_u64().unwrap() as usize;
        assert!(markers(text).contains(&index), "{citation} unmarked");
        let passage = &passages[index - 1];
        assert_eq!(citation["id"], passage["id"]);
        let chars: Vec<char> = passage["text"].as_str().unwrap().chars().collect();
        let [start, end]: [usize; 2] =
            serde_json::from_value(citation["quote_span"].clone()).unwrap();
        assert_eq!(
            chars[start..end].iter().collect::<String>(),
            citation["quote"].as_str().unwrap()
        );
    }
}

/// The events of a Server-Sent Events body: (event name, data).
fn events(body: &str) -> Vec<(String, String)> {
    body.split("\n\n")
        .filter_map(|block| {
            let mut name = String::from("message");
            let mut data = None;
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("event:") {
                    name = value.trim().to_owned();
                } else if let Some(value) = line.strip_prefix("data:") {
                    data = Some(value.trim_start().to_owned());
                }
            }
            Some((name, data?))
        })
        .collect()
}

/// POSTs `body` and reads the whole event stream.
fn stream(base: &str, path: &str, body: &Value) -> (u16, String, String) {
    let response = ureq::post(&format!("{base}{path}"))
        .set("Content-Type", "application/json")
        .send_string(&body.to_string())
        .unwrap_or_else(|e| match e {
            ureq::Error::Status(_, r) => r,
            e => panic!("{e}"),
        });
    let status = response.status();
    let content_type = response.content_type().to_owned();
    (status, content_type, response.into_string().unwrap())
}

#[test]
fn a_question_the_documents_answer_is_answered_by_the_llm_with_checked_markers() {
    let _turn = turn();
    let server = with_llm();
    let before = llm_calls(server, "answer");
    let (status, answer) = send_json(
        &server.url,
        "POST",
        "/v1/answer",
        &json!({"question": "模速空间已入驻多少家企业？", "top_k": 2}),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["mode"], "generative");
    assert_eq!(llm_calls(server, "answer"), before + 1);
    assert!(
        answer["usage"]["completion_tokens"].as_u64().unwrap() > 0,
        "{answer}"
    );
    assert_eq!(answer["passages"].as_array().unwrap().len(), 2);
    if answer["found"] == true {
        assert!(!answer["answer"].as_str().unwrap().is_empty());
        check_citations(&answer);
    } else {
        assert_eq!(answer["answer"], "知识库中没有找到这个问题的答案。");
    }
}

#[test]
fn a_streamed_answer_sends_sources_then_the_text_then_the_answer() {
    let _turn = turn();
    let server = with_llm();
    let (status, content_type, body) = stream(
        &server.url,
        "/v1/answer",
        &json!({"question": "模速空间是什么平台？", "top_k": 2, "mode": "generative", "stream": true}),
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let events = events(&body);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"sources"), "{names:?}");
    assert_eq!(names.last(), Some(&"done"), "{names:?}");
    assert!(
        names[1..names.len() - 1].iter().all(|n| *n == "delta"),
        "{names:?}"
    );
    let sources: Value = serde_json::from_str(&events[0].1).unwrap();
    let done: Value = serde_json::from_str(&events.last().unwrap().1).unwrap();
    let streamed: String = events
        .iter()
        .filter(|(n, _)| n == "delta")
        .map(|(_, d)| {
            serde_json::from_str::<Value>(d).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    if done["found"] == true {
        assert_eq!(sources["sources"].as_array().unwrap().len(), 2, "{sources}");
        // The text as streamed is the answer's, save markers attached at the end.
        assert_eq!(
            without_markers(&streamed).trim(),
            without_markers(done["answer"].as_str().unwrap()).trim()
        );
        check_citations(&done);
    }
}

#[test]
fn questions_the_documents_do_not_answer_are_refused_without_asking_the_llm() {
    let _turn = turn();
    let server = with_llm();
    let before = llm_calls(server, "answer");
    let (status, answer) = send_json(
        &server.url,
        "POST",
        "/v1/answer",
        &json!({"question": "What is the boiling point of liquid nitrogen on Mars?", "mode": "generative"}),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["found"], false, "{answer}");
    assert_eq!(
        answer["answer"],
        "The documents do not answer this question."
    );
    assert!(!answer["passages"].as_array().unwrap().is_empty());
    assert_eq!(llm_calls(server, "answer"), before, "the LLM was asked");
}

#[test]
fn a_follow_up_is_condensed_by_the_llm_before_retrieval() {
    let _turn = turn();
    let server = with_llm();
    let before = llm_calls(server, "condense");
    let (status, answer) = send_json(
        &server.url,
        "POST",
        "/v1/answer",
        &json!({
            "question": "它已入驻多少家企业？",
            "conversation": [
                {"role": "user", "content": "模速空间是什么？"},
                {"role": "assistant", "content": "模速空间是上海市打造的人工智能大模型专业孵化和加速平台。[1]"},
            ],
        }),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(llm_calls(server, "condense"), before + 1);
    let standalone = answer["standalone_question"].as_str().unwrap_or_default();
    assert!(!standalone.trim().is_empty(), "{answer}");
}

#[test]
fn chat_completions_answer_in_openai_form_streamed_and_not() {
    let _turn = turn();
    let server = with_llm();
    let body = json!({
        "model": "wenda",
        "messages": [{"role": "user", "content": "模速空间已入驻多少家企业？"}],
    });
    let (status, completion) = send_json(&server.url, "POST", "/v1/chat/completions", &body);
    assert_eq!(status, 200, "{completion}");
    assert_eq!(completion["object"], "chat.completion");
    let message = &completion["choices"][0]["message"];
    assert_eq!(message["role"], "assistant");
    let content = message["content"].as_str().unwrap();
    let chars: Vec<char> = content.chars().collect();
    for annotation in message["annotations"].as_array().unwrap() {
        assert_eq!(annotation["type"], "url_citation");
        let at = &annotation["url_citation"];
        let (start, end) = (
            at["start_index"].as_u64().unwrap() as usize,
            at["end_index"].as_u64().unwrap() as usize,
        );
        let marker: String = chars[start..end].iter().collect();
        let index: u64 = marker.trim_matches(['[', ']']).parse().unwrap();
        let cited = completion["citations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["index"] == index)
            .unwrap_or_else(|| panic!("{marker} has no citation: {completion}"));
        assert!(
            at["url"]
                .as_str()
                .unwrap()
                .ends_with(&cited["id"].as_str().unwrap().replace('#', "%23")),
            "{at}"
        );
    }

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let (status, content_type, text) = stream(&server.url, "/v1/chat/completions", &streamed);
    assert_eq!(status, 200, "{text}");
    assert!(content_type.starts_with("text/event-stream"));
    let events = events(&text);
    assert_eq!(events.last().unwrap().1, "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|(_, d)| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let finished: Vec<&Value> = chunks
        .iter()
        .filter(|c| !c["choices"][0]["finish_reason"].is_null())
        .collect();
    assert_eq!(finished.len(), 1);
    // The same reply as above (temperature 0), which may run into the 48-token limit.
    assert_eq!(
        finished[0]["choices"][0]["finish_reason"],
        completion["choices"][0]["finish_reason"]
    );
    assert!(finished[0]["citations"].is_array());
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert!(usage["usage"]["total_tokens"].is_u64());
}

#[test]
fn an_answer_cut_at_the_token_limit_says_so() {
    let _turn = turn();
    let server = start(Options {
        llm: Some(LlmConfig {
            max_tokens: Some(2),
            ..config(llm_url(), Duration::from_secs(120))
        }),
        ..Options::default()
    });
    let question = "模速空间已入驻多少家企业？";
    let (status, answer) = send_json(
        &server.url,
        "POST",
        "/v1/answer",
        &json!({"question": question, "top_k": 2}),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["finish_reason"], "length", "{answer}");
    assert_eq!(answer["usage"]["completion_tokens"], 2, "{answer}");

    let body = json!({"model": "wenda", "messages": [{"role": "user", "content": question}]});
    let (status, completion) = send_json(&server.url, "POST", "/v1/chat/completions", &body);
    assert_eq!(status, 200, "{completion}");
    assert_eq!(completion["choices"][0]["finish_reason"], "length");
    let mut streamed = body;
    streamed["stream"] = json!(true);
    let (status, _, text) = stream(&server.url, "/v1/chat/completions", &streamed);
    assert_eq!(status, 200, "{text}");
    let reasons: Vec<Value> = events(&text)
        .iter()
        .filter_map(|(_, data)| serde_json::from_str::<Value>(data).ok())
        .map(|chunk| chunk["choices"][0]["finish_reason"].clone())
        .filter(|reason| !reason.is_null())
        .collect();
    assert_eq!(reasons, [json!("length")], "{text}");
}

/// A one-connection-at-a-time HTTP server that answers every request with `reply` (or never,
/// when `None`), for the ways an upstream fails.
fn upstream(reply: Option<&'static str>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for connection in listener.incoming() {
            let Ok(mut connection) = connection else {
                continue;
            };
            let mut request = [0u8; 65536];
            let _ = connection.read(&mut request);
            match reply {
                Some(reply) => {
                    let _ = connection.write_all(reply.as_bytes());
                    if reply.contains("text/event-stream") {
                        // The stream breaks off: the connection is kept open, silent.
                        held.push(connection);
                    }
                }
                None => held.push(connection),
            }
        }
    });
    url
}

/// A whole HTTP response.
fn reply(status: &str, content_type: &str, body: &str) -> &'static str {
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    Box::leak(response.into_boxed_str())
}

fn expect_error(server: &Server, code: &str, status: u16, within: Duration) -> Value {
    let started = Instant::now();
    let (got, answer) = send_json(
        &server.url,
        "POST",
        "/v1/answer",
        &json!({"question": "模速空间已入驻多少家企业？", "mode": "generative"}),
    );
    assert_eq!(got, status, "{answer}");
    assert_eq!(answer["error"]["code"], code, "{answer}");
    assert!(started.elapsed() < within, "took {:?}", started.elapsed());
    answer
}

#[test]
fn every_upstream_failure_is_its_documented_error_within_the_timeout() {
    let timeout = Duration::from_secs(2);
    let bound = Duration::from_secs(15);
    // Nothing listens on the port: the server is stopped.
    let free = TcpListener::bind("127.0.0.1:0").unwrap();
    let stopped = format!("http://{}/v1", free.local_addr().unwrap());
    drop(free);
    let answer = expect_error(
        &with_upstream(stopped, timeout),
        "upstream_unavailable",
        502,
        bound,
    );
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .contains("cannot be reached"));

    let silent = upstream(None);
    expect_error(
        &with_upstream(silent, timeout),
        "upstream_timeout",
        504,
        bound,
    );

    let html = upstream(Some(reply(
        "200 OK",
        "text/html",
        "<html>Bad Gateway</html>",
    )));
    let answer = expect_error(
        &with_upstream(html, timeout),
        "upstream_invalid",
        502,
        bound,
    );
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("<html>Bad Gateway"),
        "{answer}"
    );

    let failing = upstream(Some(reply(
        "500 Internal Server Error",
        "application/json",
        r#"{"error":{"message":"model crashed"}}"#,
    )));
    let answer = expect_error(
        &with_upstream(failing, timeout),
        "upstream_unavailable",
        502,
        bound,
    );
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("500") && message.contains("model crashed"),
        "{message}"
    );
}

#[test]
fn a_stream_that_breaks_off_ends_with_an_error_then_done() {
    let breaking = upstream(Some(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n\
         data: {\"choices\":[{\"delta\":{\"content\":\"模速空间\"}}]}\n\n",
    ));
    let server = with_upstream(breaking, Duration::from_secs(2));
    let (status, _, text) = stream(
        &server.url,
        "/v1/chat/completions",
        &json!({"model": "wenda", "stream": true,
                "messages": [{"role": "user", "content": "模速空间已入驻多少家企业？"}]}),
    );
    assert_eq!(status, 200, "{text}");
    let events = events(&text);
    let data: Vec<&str> = events.iter().map(|(_, d)| d.as_str()).collect();
    assert_eq!(data.last(), Some(&"[DONE]"), "{text}");
    let error: Value = serde_json::from_str(data[data.len() - 2]).unwrap();
    assert_eq!(error["error"]["code"], "upstream_timeout", "{text}");
    assert!(
        text.contains("模速空间"),
        "the first token was streamed: {text}"
    );
}

#[test]
fn the_llm_key_is_never_returned() {
    let server = with_upstream(upstream(None), Duration::from_secs(1));
    let (_, answer) = send_json(
        &server.url,
        "POST",
        "/v1/answer",
        &json!({"question": "模速空间已入驻多少家企业？"}),
    );
    assert!(!answer.to_string().contains("sk-test-key"), "{answer}");
    let metrics = ureq::get(&format!("{}/metrics", server.url))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(!metrics.contains("sk-test-key"));
}
