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
