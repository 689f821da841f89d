//! A store written by an earlier release opens and serves identically: the fixture in
//! `tests/fixtures/store-7715635/` was written by wenda at commit 7715635 (documents put through
//! the API, an import job with a refused line), and `answers.json` holds what that release
//! answered to each request (made with `record.py` beside it, `took_ms` left out). The same
//! requests to today's server over a copy of that store must get the same answers; scores may
//! differ by what the CPU's kernel level changes in the last digits. Answers whose form changed
//! on purpose since are brought to today's form first ([`today`]), one documented change each.

mod common;

use common::{call, send_json, start, Options};
use serde_json::{Map, Value};

/// Scores computed on another CPU differ in their last digits, never by this much.
const SCORE_TOLERANCE: f64 = 2e-3;

fn same(expected: &Value, actual: &Value, at: &str) -> Result<(), String> {
    match (expected, actual) {
        (Value::Number(e), Value::Number(a)) if e.is_f64() || a.is_f64() => {
            let (e, a) = (e.as_f64().unwrap(), a.as_f64().unwrap());
            if (e - a).abs() <= SCORE_TOLERANCE {
                Ok(())
            } else {
                Err(format!("{at}: {e} became {a}"))
            }
        }
        (Value::Object(e), Value::Object(a)) => {
            let mut keys: Vec<&String> = e.keys().chain(a.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                match (e.get(key), a.get(key)) {
                    (Some(e), Some(a)) => same(e, a, &format!("{at}.{key}"))?,
                    (Some(_), None) => return Err(format!("{at}.{key} is gone")),
                    // Fields added since are allowed; fields taken away are not.
                    (None, Some(_)) => {}
                    (None, None) => unreachable!(),
                }
            }
            Ok(())
        }
        (Value::Array(e), Value::Array(a)) if e.len() == a.len() => e
            .iter()
            .zip(a)
            .enumerate()
            .try_for_each(|(i, (e, a))| same(e, a, &format!("{at}[{i}]"))),
        _ if expected == actual => Ok(()),
        _ => Err(format!("{at}: {expected} became {actual}")),
    }
}

fn without_took_ms(value: Value) -> Value {
    match value {
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .filter(|(key, _)| key != "took_ms")
                .map(|(key, value)| (key, without_took_ms(value)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_took_ms).collect()),
        other => other,
    }
}

/// A recorded answer in today's form: the changes made to the API since the recording.
fn today(mut answer: Value) -> Value {
    // Issue 23: a document's metadata is given once per answer, not with each passage.
    if let Some(results) = answer.get_mut("results").and_then(Value::as_array_mut) {
        let mut shared: Map<String, Value> = Map::new();
        for result in results.iter_mut() {
            let own = result.as_object_mut().unwrap().remove("metadata");
            let own = own.unwrap_or_else(|| Value::Object(Map::new()));
            let path = result["document"]["path"].as_str().unwrap().to_owned();
            match shared.get(&path) {
                None => {
                    shared.insert(path, own);
                }
                Some(first) if *first == own => {}
                Some(_) => {
                    result["metadata"] = own;
                }
            }
        }
        shared.retain(|_, metadata| metadata.as_object().is_some_and(|m| !m.is_empty()));
        if !shared.is_empty() {
            answer["document_metadata"] = Value::Object(shared);
        }
    }
    let document_metadata = answer.get("metadata").cloned();
    if let Some(passages) = answer.get_mut("passages").and_then(Value::as_array_mut) {
        for passage in passages {
            let own = passage.as_object_mut().unwrap().remove("metadata");
            let own = own.unwrap_or_else(|| Value::Object(Map::new()));
            if Some(&own) != document_metadata.as_ref() {
                passage["metadata"] = own;
            }
        }
    }
    answer
}

/// Issue 23: paging cursors are opaque. Where the recorded cursor was the last id of the page,
/// today's must be a string that lists the documents after that id.
fn same_cursor(server: &str, path: &str, recorded: &Value, answer: &mut Value) {
    let (Some(last), Some(cursor)) = (
        recorded["next_cursor"].as_str(),
        answer["next_cursor"].as_str(),
    ) else {
        return;
    };
    let (status, next) = call(server, "GET", &format!("{path}&cursor={cursor}"), None);
    assert_eq!(status, 200, "{path}: {next}");
    let first = next["documents"][0]["id"].as_str().unwrap();
    assert!(
        first > last,
        "{path}: the page after {last:?} starts at {first:?}"
    );
    answer["next_cursor"] = Value::from(last);
}

#[test]
fn a_store_written_by_an_earlier_release_serves_the_same_answers() {
    let fixture = common::root().join("tests/fixtures/store-7715635");
    let data_dir = common::scratch("store-compat");
    std::fs::copy(
        fixture.join("wenda.sqlite3"),
        data_dir.join(wenda::store::DATABASE_FILE),
    )
    .unwrap();
    let server = start(Options {
        data_dir: Some(data_dir),
        ..Options::default()
    });
    let recorded: Vec<Value> =
        serde_json::from_slice(&std::fs::read(fixture.join("answers.json")).unwrap()).unwrap();
    assert!(recorded.len() >= 15);
    for exchange in &recorded {
        let method = exchange["method"].as_str().unwrap();
        let path = exchange["path"].as_str().unwrap();
        let (status, answer) = match &exchange["body"] {
            Value::Null => call(&server.url, method, path, None),
            body => send_json(&server.url, method, path, body),
        };
        assert_eq!(
            u64::from(status),
            exchange["status"].as_u64().unwrap(),
            "{method} {path}: {answer}"
        );
        let mut answer = without_took_ms(answer);
        same_cursor(&server.url, path, &exchange["answer"], &mut answer);
        if let Err(difference) = same(&today(exchange["answer"].clone()), &answer, "") {
            panic!("{method} {path}: {difference}");
        }
    }
}
