//! Answers over HTTP: the real model over the seed corpus, served on an ephemeral port. The
//! answer quotes sentences of the passages it cites, exactly and where they are, or refuses.

mod common;

use common::{assert_error, post_json};
use serde_json::{json, Value};

/// Checks what every answer promises, found or not, and returns it.
fn answer(path: &str, body: &Value) -> Value {
    let (status, answer) = post_json(path, body);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["mode"], "extractive", "{answer}");
    assert!(
        !answer["passages"].as_array().unwrap().is_empty(),
        "{answer}"
    );
    let passages: Vec<&Value> = answer["passages"].as_array().unwrap().iter().collect();
    let citations = answer["citations"].as_array().unwrap();
    for (n, citation) in citations.iter().enumerate() {
        assert_eq!(citation["index"], n + 1, "{citation}");
        // The quote is the passage's own text at `quote_span`, in code points.
        let passage = passages
            .iter()
            .find(|p| p["id"] == citation["id"])
            .unwrap_or_else(|| panic!("cited passage not among the passages: {citation}"));
        let text: Vec<char> = passage["text"].as_str().unwrap().chars().collect();
        let [start, end]: [usize; 2] =
            serde_json::from_value(citation["quote_span"].clone()).unwrap();
        let quoted: String = text[start..end].iter().collect();
        assert_eq!(quoted, citation["quote"].as_str().unwrap());
        assert_eq!(citation["document"], passage["document"]);
        assert_eq!(citation["citation"], passage["citation"]);
    }
    let sentences = answer["sentences"].as_array().unwrap();
    let scores: Vec<f64> = sentences
        .iter()
        .map(|s| s["score"].as_f64().unwrap())
        .collect();
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "best first: {scores:?}"
    );
    let text = answer["answer"].as_str().unwrap();
    for sentence in sentences {
        let said = sentence["text"].as_str().unwrap();
        assert!(said.chars().count() <= 200, "{said:?}");
        for index in sentence["citations"].as_array().unwrap() {
            assert!(text.contains(&format!("{said}[{index}]")), "{text:?}");
            assert_eq!(
                citations[index.as_u64().unwrap() as usize - 1]["quote"],
                said
            );
        }
    }
    answer
}

#[test]
fn a_chinese_question_is_answered_with_the_sentence_that_says_it() {
    let reply = answer(
        "/v1/answer",
        &json!({"question": "模速空间位于上海哪个区？"}),
    );
    assert_eq!(reply["found"], true, "{reply}");
    assert_eq!(reply["question"], "模速空间位于上海哪个区？");
    let best = reply["sentences"][0]["text"].as_str().unwrap();
    assert!(best.contains("徐汇区"), "{reply}");
    assert!(
        reply["answer"].as_str().unwrap().starts_with(best),
        "{reply}"
    );
    assert_eq!(reply["sentences"][0]["citations"], json!([1]));
    assert!(reply["took_ms"].as_f64().unwrap() > 0.0);
}

/// Tokens the model has read for texts in `role`, from the server's metrics.
fn tokens_embedded(url: &str, role: &str) -> f64 {
    common::metric_total(url, "wenda_embed_tokens_total", &format!("role=\"{role}\""))
}

/// The seed corpus was embedded sentence by sentence when it was written, so answering runs
/// the model on the question only. (No test in this file writes documents, so no other passage
/// is embedded meanwhile.)
#[test]
fn answers_read_sentence_vectors_made_at_ingest_and_embed_no_passage_text() {
    let url = common::server();
    let before = (
        tokens_embedded(url, "passage"),
        tokens_embedded(url, "query"),
    );
    for question in [
        "上海人工智能产业规模有多大？",
        "What did the Model Speed Space achieve?",
        "哪些企业入驻了模速空间？",
    ] {
        answer("/v1/answer", &json!({"question": question, "top_k": 10}));
    }
    assert_eq!(tokens_embedded(url, "passage"), before.0);
    assert!(
        tokens_embedded(url, "query") > before.1,
        "questions are counted"
    );
}

#[test]
fn an_english_question_is_answered_from_chinese_text() {
    let reply = answer(
        "/v1/answer",
        &json!({"question": "Which district of Shanghai is the Model Speed Space in?"}),
    );
    assert_eq!(reply["found"], true, "{reply}");
    assert!(
        reply["answer"].as_str().unwrap().contains("徐汇区"),
        "{reply}"
    );
}

#[test]
fn a_collection_is_answered_from_its_own_route_within_the_filter() {
    let reply = answer(
        "/v1/collections/default/answer",
        &json!({
            "question": "模速空间位于上海哪个区？",
            "top_k": 3,
            "max_sentences": 1,
            "filter": {"date_from": "2025-04-29", "date_to": "2025-04-29"},
        }),
    );
    assert_eq!(reply["found"], true, "{reply}");
    assert_eq!(reply["sentences"].as_array().unwrap().len(), 1);
    let passages = reply["passages"].as_array().unwrap();
    assert!(passages.len() <= 3);
    assert!(passages
        .iter()
        .all(|p| p["document"]["date"] == "2025-04-29"));

    let (status, missing) = post_json(
        "/v1/collections/no_such_collection/answer",
        &json!({"question": "模速空间位于上海哪个区？"}),
    );
    assert_error((status, missing), 404, "unknown_collection");
}

#[test]
fn a_question_the_documents_do_not_answer_is_refused_with_the_passages_found() {
    for (question, refusal) in [
        (
            "法国大革命是哪一年爆发的？",
            "知识库中没有找到这个问题的答案。",
        ),
        (
            "What is the boiling point of liquid nitrogen?",
            "The documents do not answer this question.",
        ),
    ] {
        let reply = answer("/v1/answer", &json!({"question": question}));
        assert_eq!(reply["found"], false, "{reply}");
        assert_eq!(reply["answer"], refusal);
        assert_eq!(reply["sentences"], json!([]));
        assert_eq!(reply["citations"], json!([]));
    }
}

#[test]
fn bad_answer_requests_name_the_problem() {
    for question in ["", "   ", "\u{200b}"] {
        assert_error(
            post_json("/v1/answer", &json!({"question": question})),
            400,
            "empty_question",
        );
    }
    assert_error(
        post_json(
            "/v1/answer",
            &json!({"question": "模速空间在哪里？", "mode": "generative"}),
        ),
        400,
        "no_llm_configured",
    );
    for body in [
        json!({"question": "模速空间在哪里？", "max_sentences": 0}),
        json!({"question": "模速空间在哪里？", "max_sentences": 11}),
        json!({"question": "模速空间在哪里？", "top_k": 0}),
        json!({"question": "模速空间在哪里？", "mode": "poetic"}),
        json!({"question": "模速空间在哪里？", "temperature": 1}),
        json!({"query": "模速空间在哪里？"}),
    ] {
        let (status, reply) = post_json("/v1/answer", &body);
        assert_eq!(status, 422, "{body} → {reply}");
    }
}

#[test]
fn without_an_llm_a_short_follow_up_is_searched_with_the_previous_question() {
    let reply = answer(
        "/v1/answer",
        &json!({
            "question": "在哪个区？",
            "conversation": [
                {"role": "user", "content": "模速空间是什么？"},
                {"role": "assistant", "content": "上海市打造的人工智能大模型专业孵化和加速平台。[1]"},
            ],
        }),
    );
    assert_eq!(reply["standalone_question"], "模速空间是什么？ 在哪个区？");
    assert_eq!(reply["found"], true, "{reply}");
    assert!(
        reply["answer"].as_str().unwrap().contains("徐汇区"),
        "{reply}"
    );
    // A question that stands on its own is searched as it is.
    let reply = answer(
        "/v1/answer",
        &json!({
            "question": "模速空间位于上海哪个区？",
            "conversation": [{"role": "user", "content": "上海一季度GDP增长多少？"}],
        }),
    );
    assert!(reply.get("standalone_question").is_none(), "{reply}");
}

/// The events of a Server-Sent Events body: (event name, data).
fn events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter_map(|block| {
            let name = block.lines().find_map(|l| l.strip_prefix("event: "))?;
            let data = block.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((name.to_owned(), serde_json::from_str(data).unwrap()))
        })
        .collect()
}

#[test]
fn an_extractive_answer_streams_its_sources_text_and_answer() {
    let response = ureq::post(&format!("{}/v1/answer", common::server()))
        .send_json(json!({"question": "模速空间位于上海哪个区？", "stream": true}))
        .unwrap();
    assert!(response.content_type().starts_with("text/event-stream"));
    let events = events(&response.into_string().unwrap());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["sources", "delta", "done"]);
    let done = &events[2].1;
    assert_eq!(done["found"], true);
    assert_eq!(events[1].1["text"], done["answer"]);
    let sources = events[0].1["sources"].as_array().unwrap();
    let cited: Vec<&Value> = done["citations"].as_array().unwrap().iter().collect();
    assert_eq!(sources.len(), cited.len());
    for (source, citation) in sources.iter().zip(cited) {
        assert_eq!(source["index"], citation["index"]);
        assert_eq!(source["id"], citation["id"]);
    }
    // A request refused before anything is answered is an error, not a stream.
    assert_error(
        post_json("/v1/answer", &json!({"question": " ", "stream": true})),
        400,
        "empty_question",
    );
}

#[test]
fn chat_completions_answer_extractively_without_an_llm() {
    let (status, completion) = post_json(
        "/v1/chat/completions",
        &json!({"model": "wenda", "temperature": 0.2,
                "messages": [{"role": "system", "content": "Be brief."},
                             {"role": "user", "content": "模速空间位于上海哪个区？"}]}),
    );
    assert_eq!(status, 200, "{completion}");
    let content = completion["choices"][0]["message"]["content"]
        .as_str()
        .unwrap();
    assert!(content.contains("徐汇区"), "{completion}");
    let annotation = &completion["choices"][0]["message"]["annotations"][0]["url_citation"];
    let id = completion["citations"][0]["id"].as_str().unwrap();
    let url = annotation["url"].as_str().unwrap();
    assert!(url.contains("/v1/collections/default/passages/"), "{url}");
    // The annotation's URL is the passage, readable on this server.
    let path = &url[url.find("/v1/").unwrap()..];
    let (status, passage) = common::get(path);
    assert_eq!(status, 200, "{passage}");
    assert_eq!(passage["id"], id);
    let chars: Vec<char> = content.chars().collect();
    let (start, end) = (
        annotation["start_index"].as_u64().unwrap() as usize,
        annotation["end_index"].as_u64().unwrap() as usize,
    );
    assert_eq!(chars[start..end].iter().collect::<String>(), "[1]");
    assert_eq!(completion["usage"]["total_tokens"], 0, "no LLM, no tokens");

    let (status, models) = common::get("/v1/models");
    assert_eq!(status, 200);
    assert_eq!(models["data"][0]["id"], "wenda");
    assert_error(
        post_json(
            "/v1/chat/completions",
            &json!({"model": "no_such_collection", "messages": [{"role": "user", "content": "x"}]}),
        ),
        404,
        "unknown_collection",
    );
}

#[test]
fn chat_requests_that_cannot_be_answered_name_the_field() {
    let many: Vec<Value> = (0..65)
        .map(|_| json!({"role": "user", "content": "模速空间在哪里？"}))
        .collect();
    for (messages, field) in [
        (json!([]), "messages:"),
        (
            json!([{"role": "system", "content": "hi"}]),
            "messages[0].role",
        ),
        (
            json!([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]),
            "messages[1].role",
        ),
        (
            json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]),
            "messages[0].content[0].type",
        ),
        (Value::Array(many), "messages: at most 64"),
    ] {
        let (status, reply) = post_json(
            "/v1/chat/completions",
            &json!({"model": "wenda", "messages": messages}),
        );
        assert_eq!(status, 422, "{reply}");
        assert!(
            reply["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with(field),
            "{field}: {reply}"
        );
    }
}
