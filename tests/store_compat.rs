//! A store written by an earlier release opens and serves identically: the fixture in
//! `tests/fixtures/store-7715635/` was written by wenda at commit 7715635 (documents put through
//! the API, an import job with a refused line), and `answers.json` holds what that release
//! answered to each request (made with `record.py` beside it, `took_ms` left out). The same
//! requests to today's server over a copy of that store must get the same answers; scores may
//! differ by what the CPU's kernel level changes in the last digits.

mod common;

use common::{call, send_json, start, Options};
use serde_json::Value;

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
        if let Err(difference) = same(&exchange["answer"], &without_took_ms(answer), "") {
            panic!("{method} {path}: {difference}");
        }
    }
}
