//! Who may call what: every operation of the OpenAPI document and every MCP tool, called
//! without a key, with a read key and with an admin key, against the access the server declares
//! for it (`x-wenda-access` on each operation, and in each tool's `_meta`). The writes and the
//! public operations are also listed here, apart from the server's declaration, so a write
//! declared `read` (or a read declared `public`) by mistake fails.
//!
//! A route cannot be added without an access: the router is built with `GuardedRouter`
//! (src/http/auth.rs), whose only ways to add a route take one, so leaving it out does not
//! compile. A new route declared with the wrong access fails here (the lists below), and one
//! added around the builder would be missing `x-wenda-access`, which fails here too. An MCP tool
//! left out of the table that declares tools' access (`TOOL_ACCESS` in src/http/mcp.rs) fails
//! the unit test beside it and this test, as `tools/list` then shows no access for it.

mod common;

use std::collections::BTreeSet;

use common::{scratch, spawn_server, ServerProcess};
use serde_json::{json, Value};

const ADMIN_KEY: &str = "access-test-admin";
const READ_KEY: &str = "access-test-read";

/// The operations that change data, which need an admin key.
const WRITES: [(&str, &str); 5] = [
    ("PUT", "/v1/collections/{collection}"),
    ("DELETE", "/v1/collections/{collection}"),
    ("PUT", "/v1/collections/{collection}/documents/{doc_id}"),
    ("DELETE", "/v1/collections/{collection}/documents/{doc_id}"),
    ("POST", "/v1/collections/{collection}/documents:import"),
];

/// The operations open to anyone.
const PUBLIC: [(&str, &str); 5] = [
    ("GET", "/"),
    ("GET", "/docs"),
    ("GET", "/openapi.json"),
    ("GET", "/health"),
    ("GET", "/ready"),
];

/// The MCP tools that change data (none yet).
const WRITING_TOOLS: [&str; 0] = [];

/// Dify's route refuses in Dify's own form (403 with `error_code` 1001 without a key).
const DIFY_OPERATION: &str = "difyRetrieval";

/// Writes go to a collection of their own, so they cannot disturb the reads.
const WRITE_COLLECTION: &str = "access-test";

struct Operation {
    method: String,
    path: String,
    id: String,
    access: String,
    has_body: bool,
}

/// An answer: status, `WWW-Authenticate`, and the body (JSON, or `Null` for pages).
struct Answer {
    status: u16,
    www_authenticate: Option<String>,
    body: Value,
}

fn send(server: &ServerProcess, method: &str, path: &str, key: Option<&str>, body: &str) -> Answer {
    let mut request = ureq::request(method, &format!("{}{path}", server.url))
        .set("Accept", "application/json, text/event-stream");
    if let Some(key) = key {
        request = request.set("Authorization", &format!("Bearer {key}"));
    }
    let response = if body.is_empty() {
        request.call()
    } else {
        request
            .set("Content-Type", "application/json")
            .send_string(body)
    };
    let response = match response {
        Ok(response) | Err(ureq::Error::Status(_, response)) => response,
        Err(error) => panic!("{method} {path}: {error}"),
    };
    let status = response.status();
    let www_authenticate = response.header("www-authenticate").map(str::to_owned);
    let text = response.into_string().unwrap();
    Answer {
        status,
        www_authenticate,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
    }
}

/// The API's error code: in `error`, or in `error.data` where the error is in JSON-RPC form
/// (on `/mcp`).
fn error_code(body: &Value) -> &Value {
    let error = &body["error"];
    if error["data"].is_object() {
        &error["data"]["code"]
    } else {
        &error["code"]
    }
}

/// The document's operations, in its order.
fn operations(document: &Value) -> Vec<Operation> {
    let mut found = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in [
            "get", "put", "post", "delete", "patch", "head", "options", "trace",
        ] {
            let Some(operation) = item.get(method) else {
                continue;
            };
            let access = operation["x-wenda-access"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} declares no x-wenda-access"));
            found.push(Operation {
                method: method.to_uppercase(),
                path: path.clone(),
                id: operation["operationId"].as_str().unwrap_or_default().into(),
                access: access.into(),
                has_body: operation.get("requestBody").is_some(),
            });
        }
    }
    found
}

/// The operations whose declared access is `access`.
fn declared<'a>(operations: &'a [Operation], access: &str) -> BTreeSet<(&'a str, &'a str)> {
    operations
        .iter()
        .filter(|operation| operation.access == access)
        .map(|operation| (operation.method.as_str(), operation.path.as_str()))
        .collect()
}

/// Ids that exist in `default`: a passage and a document.
struct Known {
    passage: String,
    document: String,
}

/// `operation`'s path with its parameters filled in: what exists in `default` for reads, the
/// test's own collection for writes.
fn fill(operation: &Operation, known: &Known) -> String {
    let writes = operation.access == "admin";
    let (collection, document) = if writes {
        (WRITE_COLLECTION, "access-test-document")
    } else {
        ("default", known.document.as_str())
    };
    operation
        .path
        .replace("{collection}", collection)
        .replace("{doc_id}", document)
        .replace("{id}", &known.passage)
}

#[test]
fn every_operation_and_tool_is_guarded_as_declared() {
    let server = spawn_server(
        &scratch("access-data"),
        &["--api-key", ADMIN_KEY, "--read-api-key", READ_KEY],
    );
    let document = send(&server, "GET", "/openapi.json", None, "").body;
    let operations = operations(&document);
    assert_eq!(
        declared(&operations, "admin"),
        BTreeSet::from(WRITES),
        "the operations the server declares admin are not the writes"
    );
    assert_eq!(
        declared(&operations, "public"),
        BTreeSet::from(PUBLIC),
        "the operations the server declares public are not the open ones"
    );
    for operation in &operations {
        assert!(
            ["public", "read", "admin"].contains(&operation.access.as_str()),
            "{} {}: unknown access {}",
            operation.method,
            operation.path,
            operation.access
        );
    }

    let found = send(
        &server,
        "POST",
        "/v1/search",
        Some(READ_KEY),
        &json!({"query": "模速空间在哪个区？", "top_k": 1}).to_string(),
    );
    let listed = send(
        &server,
        "GET",
        "/v1/collections/default/documents",
        Some(READ_KEY),
        "",
    );
    let known = Known {
        passage: found.body["results"][0]["id"].as_str().unwrap().into(),
        document: listed.body["documents"][0]["id"].as_str().unwrap().into(),
    };

    for operation in &operations {
        let path = fill(operation, &known);
        let body = if operation.has_body { "{}" } else { "" };
        let call = |key| send(&server, &operation.method, &path, key, body);
        let name = format!("{} {path}", operation.method);

        let anonymous = call(None);
        if operation.access == "public" {
            assert!(
                (200..300).contains(&anonymous.status),
                "{name} without a key: {}",
                anonymous.status
            );
        } else if operation.id == DIFY_OPERATION {
            assert_eq!(anonymous.status, 403, "{name} without a key");
            assert_eq!(
                anonymous.body["error_code"], 1001,
                "{name}: {}",
                anonymous.body
            );
        } else {
            assert_eq!(
                anonymous.status, 401,
                "{name} without a key: {}",
                anonymous.body
            );
            assert_eq!(error_code(&anonymous.body), "unauthorized", "{name}");
            assert_eq!(
                anonymous.www_authenticate.as_deref(),
                Some("Bearer"),
                "{name}"
            );
        }

        let reader = call(Some(READ_KEY));
        if operation.access == "admin" {
            assert_eq!(
                reader.status, 403,
                "{name} with a read key: {}",
                reader.body
            );
            assert_eq!(error_code(&reader.body), "forbidden", "{name}");
        } else {
            assert!(
                ![401, 403].contains(&reader.status),
                "{name} with a read key: {} {}",
                reader.status,
                reader.body
            );
        }
    }
    // Admin calls last, reads before writes, so no write runs before a read it could disturb.
    let (writes, reads): (Vec<_>, Vec<_>) = operations
        .iter()
        .partition(|operation| operation.access == "admin");
    for operation in reads.into_iter().chain(writes) {
        let path = fill(operation, &known);
        let body = if operation.has_body { "{}" } else { "" };
        let admin = send(&server, &operation.method, &path, Some(ADMIN_KEY), body);
        assert!(
            ![401, 403].contains(&admin.status),
            "{} {path} with an admin key: {} {}",
            operation.method,
            admin.status,
            admin.body
        );
    }

    mcp_tools_are_guarded_as_declared(&server, &known);
}

/// A JSON-RPC request to `/mcp`.
fn mcp(server: &ServerProcess, key: Option<&str>, method: &str, params: Value) -> Answer {
    let message = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    send(server, "POST", "/mcp", key, &message.to_string())
}

fn mcp_tools_are_guarded_as_declared(server: &ServerProcess, known: &Known) {
    let listed = mcp(server, Some(READ_KEY), "tools/list", json!({}));
    assert_eq!(listed.status, 200, "{}", listed.body);
    let tools = listed.body["result"]["tools"].as_array().unwrap().clone();
    assert!(!tools.is_empty());
    let mut writing = BTreeSet::new();
    for tool in &tools {
        let name = tool["name"].as_str().unwrap();
        let access = tool["_meta"]["x-wenda-access"]
            .as_str()
            .unwrap_or_else(|| panic!("the MCP tool {name} declares no access: {tool}"));
        assert!(["read", "admin"].contains(&access), "{name}: {access}");
        if access == "admin" {
            writing.insert(name);
        }
        // Every required argument, with a value that exists.
        let mut arguments = serde_json::Map::new();
        for argument in tool["inputSchema"]["required"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let argument = argument.as_str().unwrap();
            let value = match argument {
                "question" => "模速空间在哪个区？",
                "id" => known.passage.as_str(),
                _ => "default",
            };
            arguments.insert(argument.into(), value.into());
        }
        let params = json!({"name": name, "arguments": arguments});
        let call = |key| mcp(server, key, "tools/call", params.clone());

        let anonymous = call(None);
        assert_eq!(
            anonymous.status, 401,
            "tool {name} without a key: {}",
            anonymous.body
        );
        assert_eq!(error_code(&anonymous.body), "unauthorized", "tool {name}");

        let reader = call(Some(READ_KEY));
        assert_eq!(
            reader.status, 200,
            "tool {name} with a read key: {}",
            reader.body
        );
        if access == "admin" {
            assert_eq!(
                error_code(&reader.body),
                "forbidden",
                "tool {name} with a read key: {}",
                reader.body
            );
        } else {
            assert!(
                reader.body.get("result").is_some(),
                "tool {name} with a read key: {}",
                reader.body
            );
        }

        let admin = call(Some(ADMIN_KEY));
        assert_eq!(
            admin.status, 200,
            "tool {name} with an admin key: {}",
            admin.body
        );
        assert!(
            admin.body.get("result").is_some(),
            "tool {name} with an admin key: {}",
            admin.body
        );
    }
    assert_eq!(
        writing,
        BTreeSet::from(WRITING_TOOLS),
        "the MCP tools the server declares admin are not the writing ones"
    );
}
