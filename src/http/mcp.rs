//! The MCP endpoint (`/mcp`): wenda's search as tools an AI assistant can call, over the
//! Model Context Protocol's Streamable HTTP transport (the official SDK, `rmcp`).
//!
//! The server is stateless: every POST carries one JSON-RPC message and gets its answer as
//! `application/json`, so nothing is kept between requests and any number of clients may
//! connect. The tools call the same service as the HTTP routes and answer with the API's
//! JSON; a request the API would refuse (empty question, unknown passage, `top_k` out of range)
//! comes back as a tool result with `isError: true` and the API's message, which the model can
//! read and correct. Every tool takes an optional `collection` (default: `default`).
//!
//! The route needs a read key; each tool also needs the access [`TOOL_ACCESS`] gives it, checked
//! when it is called and shown in `tools/list` (each tool's `_meta`, as `x-wenda-access`).

use std::sync::Arc;

use axum::extract::{Extension, Request, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ErrorData,
    Implementation, MetaObject, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{schemars, tool, tool_handler, tool_router, RoleServer, ServerHandler};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::auth::{Access, Granted, Refusal, ACCESS_FIELD};
use super::wire::{FilterBody, PassageView, ScoredPassage, SearchResponse, SimilarResponse};
use super::{ApiError, AppState};
use crate::search::heading;
use crate::service::{ErrorCode, SearchRequest, SimilarRequest, DEFAULT_COLLECTION};

/// The access each tool needs: the one table that declares it. A tool it leaves out needs an
/// admin key (so a new tool is never open to read keys by mistake) and fails the test below.
const TOOL_ACCESS: [(&str, Access); 3] = [
    ("search", Access::Read),
    ("get_passage", Access::Read),
    ("similar_passages", Access::Read),
];

/// The access `tool` is declared to need, if it is declared.
fn tool_access(tool: &str) -> Option<Access> {
    TOOL_ACCESS
        .iter()
        .find(|(name, _)| *name == tool)
        .map(|(_, access)| *access)
}

/// The tower service behind `/mcp`.
pub type McpService = StreamableHttpService<Tools, LocalSessionManager>;

/// The `/mcp` service over `state`. `Host` and `Origin` are checked in front of it, for
/// every route alike (see `hosts`), so the SDK's own host check is off.
pub fn service(state: Arc<AppState>, max_body_bytes: usize) -> McpService {
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_max_request_body_bytes(max_body_bytes)
        .disable_allowed_hosts();
    StreamableHttpService::new(
        move || Ok(Tools::new(Arc::clone(&state))),
        Arc::default(),
        config,
    )
}

/// The Model Context Protocol endpoint (Streamable HTTP, stateless, JSON responses).
///
/// POST one JSON-RPC message (`initialize`, `tools/list`, `tools/call`, …). Tools: `search`,
/// `get_passage`, `similar_passages`. Point an MCP client at this URL.
#[utoipa::path(post, path = "/mcp", tag = "mcp", operation_id = "mcp",
    request_body(content = Object, content_type = "application/json",
        description = "A JSON-RPC 2.0 message of the Model Context Protocol."),
    responses(
        (status = 200, description = "The JSON-RPC response.", content_type = "application/json"),
        (status = 202, description = "A notification was accepted."),
        (status = 400, description = "JSON-RPC -32700: the body is not JSON."),
        (status = 403, description = "The `Host` or `Origin` is not allowed (see `--allowed-host`, `--cors-origin`)."),
        (status = 406, description = "`Accept` must list `application/json` and `text/event-stream`."),
    ))]
pub async fn endpoint(
    State(state): State<Arc<AppState>>,
    Extension(service): Extension<Arc<McpService>>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, state.limits.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(error) => {
            let message = format!("the body is over {} bytes", state.limits.max_body_bytes);
            return ApiError::from_body_error(&error, message).into_response();
        }
    };
    // Checked here because the SDK answers a body that is not JSON with a bare 415, and
    // `initialize` without its parameters with "method not found".
    let message: Value = match serde_json::from_slice(&bytes) {
        Ok(message) => message,
        Err(error) => {
            return ApiError::new(ErrorCode::MalformedJson, format!("parse error: {error}"))
                .into_response()
        }
    };
    if let Some(answer) = refuse_malformed(&message) {
        return answer;
    }
    service
        .handle(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
        .map(axum::body::Body::new)
}

/// Where the endpoint is served; its errors are given in JSON-RPC form.
pub const PATH: &str = "/mcp";

/// JSON-RPC's codes for a request that is not valid JSON, not a valid request, or whose
/// parameters are wrong, and for errors of the server.
const PARSE_ERROR: i32 = -32700;
const INVALID_REQUEST: i32 = -32600;
const INVALID_PARAMS: i32 = -32602;
const INTERNAL_ERROR: i32 = -32603;

/// An API error as a JSON-RPC error object, the API's code and HTTP status in `data`.
fn error_data(error: &ApiError) -> ErrorData {
    let code = match error.code {
        ErrorCode::MalformedJson => PARSE_ERROR,
        _ if error.status.is_server_error() => INTERNAL_ERROR,
        _ => INVALID_REQUEST,
    };
    ErrorData::new(
        rmcp::model::ErrorCode(code),
        error.message.clone(),
        Some(serde_json::json!({ "code": error.code.as_str(), "status": error.status.as_u16() })),
    )
}

/// An API error as a JSON-RPC error answer (`id` null: the request may not have one), with
/// the same HTTP status and the API's code in `data`.
pub fn json_rpc_error(error: &ApiError) -> Response {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": error_data(error),
    });
    // JSON-RPC over HTTP answers a message it cannot read with 400, whatever the API says.
    let status = match error.code {
        ErrorCode::MalformedJson | ErrorCode::InvalidRequest => StatusCode::BAD_REQUEST,
        _ => error.status,
    };
    (status, axum::Json(body)).into_response()
}

/// The answer to a message the SDK would misreport: not one JSON-RPC object (MCP has no
/// batches), or an `initialize` without the parameters it requires (-32602, naming them).
fn refuse_malformed(message: &Value) -> Option<Response> {
    let Some(object) = message.as_object() else {
        return Some(
            ApiError::new(
                ErrorCode::InvalidRequest,
                "the body must be one JSON-RPC message (an object); batches are not supported",
            )
            .into_response(),
        );
    };
    if object.get("method").and_then(Value::as_str) != Some("initialize") {
        return None;
    }
    let params = object.get("params").and_then(Value::as_object);
    let missing: Vec<&str> = [
        ("protocolVersion", Value::is_string as fn(&Value) -> bool),
        ("capabilities", Value::is_object),
        ("clientInfo", Value::is_object),
    ]
    .into_iter()
    .filter(|(field, is_right)| !params.and_then(|p| p.get(*field)).is_some_and(is_right))
    .map(|(field, _)| field)
    .collect();
    if missing.is_empty() {
        return None;
    }
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": object.get("id").cloned().unwrap_or(Value::Null),
        "error": {
            "code": INVALID_PARAMS,
            "message": format!(
                "initialize needs params with protocolVersion (a string), capabilities and \
                 clientInfo (objects); missing or wrong: {}",
                missing.join(", ")
            ),
        },
    });
    Some(axum::Json(body).into_response())
}

/// The MCP server: one per request (the transport is stateless), cheap to make.
#[derive(Clone)]
pub struct Tools {
    state: Arc<AppState>,
    tool_router: ToolRouter<Self>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct SearchArgs {
    /// The question or search text, in any language (Chinese and English work best). Full
    /// questions work better than keywords.
    question: String,
    /// How many passages to return, 1 to 100 (default 5).
    top_k: Option<usize>,
    /// Only passages of this document: its `path`, exactly as results show it.
    document: Option<String>,
    /// Only passages whose article title contains this text.
    title: Option<String>,
    /// Only passages dated on or after this day, `YYYY-MM-DD`.
    date_from: Option<String>,
    /// Only passages dated on or before this day, `YYYY-MM-DD`.
    date_to: Option<String>,
    /// The collection to search (default: `default`).
    collection: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct PassageArgs {
    /// A passage id, as returned by `search` or `similar_passages`.
    id: String,
    /// The collection it belongs to (default: `default`).
    collection: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct SimilarArgs {
    /// A passage id, as returned by `search` or `similar_passages`.
    id: String,
    /// How many passages to return, 1 to 100 (default 5).
    top_k: Option<usize>,
    /// The collection it belongs to (default: `default`).
    collection: Option<String>,
}

#[tool_router]
impl Tools {
    /// The tools, each listed with the access it is declared to need.
    fn new(state: Arc<AppState>) -> Self {
        let mut tool_router = Self::tool_router();
        for route in tool_router.map.values_mut() {
            if let Some(access) = tool_access(&route.attr.name) {
                let mut meta = serde_json::Map::new();
                meta.insert(ACCESS_FIELD.into(), access.as_str().into());
                route.attr.meta = Some(MetaObject(meta));
            }
        }
        Self { state, tool_router }
    }

    /// Finds the passages of the corpus that best answer a question.
    #[tool(
        description = "Search the document collection (news articles) for the passages that best \
            answer a question. Returns numbered passages with title, date and source, each with \
            an id (for get_passage and similar_passages) and a citation (file and lines). Cite \
            passages by title and date when you use them.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn search(&self, Parameters(args): Parameters<SearchArgs>) -> CallToolResult {
        let answered = async {
            let service = self.state.service()?;
            let collection = collection_of(&args.collection).to_owned();
            let request = search_request(args).map_err(ApiError::invalid)?;
            let outcome = service.search(&collection, request).await?;
            Ok::<_, ApiError>(SearchResponse::from(outcome))
        };
        match answered.await {
            Ok(response) => answer(render_results(&response.results), &response),
            Err(error) => tool_error(&error),
        }
    }

    /// One passage in full, by id.
    #[tool(
        description = "Get one passage by its id (from search or similar_passages), with its \
            document's title, date, source and citation.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn get_passage(&self, Parameters(args): Parameters<PassageArgs>) -> CallToolResult {
        let found = self
            .state
            .service()
            .and_then(|service| Ok(service.passage(collection_of(&args.collection), &args.id)?));
        match found {
            Ok(passage) => {
                let passage = PassageView::from(&*passage);
                answer(render_passage(None, &passage), &passage)
            }
            Err(error) => tool_error(&error),
        }
    }

    /// The passages closest in meaning to one passage.
    #[tool(
        description = "Find passages related in meaning to a given passage (by id), e.g. other \
            reports on the same event. The passage itself is not included.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn similar_passages(&self, Parameters(args): Parameters<SimilarArgs>) -> CallToolResult {
        let answered = async {
            let request = SimilarRequest {
                top_k: args.top_k,
                ..SimilarRequest::default()
            };
            let outcome = self
                .state
                .service()?
                .similar(collection_of(&args.collection), &args.id, request)
                .await?;
            Ok::<_, ApiError>(SimilarResponse::from(outcome))
        };
        match answered.await {
            Ok(response) => answer(render_results(&response.results), &response),
            Err(error) => tool_error(&error),
        }
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Tools {
    /// Calls the tool when the request's key grants the access it needs. Checked here, on the
    /// name the SDK dispatches on, so no second reading of the message can disagree with it.
    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        // The route's guard lets only valid keys in and tells what they grant; without that
        // word, nothing is granted.
        let granted = context
            .extensions
            .get::<Parts>()
            .and_then(|parts| parts.extensions.get::<Granted>())
            .map_or(Access::Public, |granted| granted.0);
        if granted < tool_access(&request.name).unwrap_or(Access::Admin) {
            return Err(error_data(&Refusal::ReadOnly.error()));
        }
        self.tool_router
            .call(ToolCallContext::new(self, request, context))
            .await
    }

    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("wenda", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "wenda searches a collection of documents (Chinese news articles by default) \
                 by meaning. Call `search` with the user's question, answer from the passages \
                 it returns and cite them; use `similar_passages` to find related coverage and \
                 `get_passage` to fetch a passage by id.",
            )
    }
}

/// The collection a tool call names, or `default`.
fn collection_of(collection: &Option<String>) -> &str {
    collection.as_deref().unwrap_or(DEFAULT_COLLECTION)
}

/// The search the tool's arguments ask for, or why they are invalid.
fn search_request(args: SearchArgs) -> Result<SearchRequest, String> {
    let filter = FilterBody {
        document: args.document,
        title: args.title,
        date_from: args.date_from,
        date_to: args.date_to,
        metadata: None,
    };
    Ok(SearchRequest {
        top_k: args.top_k,
        filter: filter.into_domain()?,
        // The tool's text has no markup to show them in.
        highlight: false,
        ..SearchRequest::new(args.question)
    })
}

/// A successful result: text for the model, and the API's JSON as structured content for
/// programs.
fn answer(text: String, structured: &impl Serialize) -> CallToolResult {
    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
    result.structured_content = serde_json::to_value(structured).ok();
    result
}

fn tool_error(error: &ApiError) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(format!(
        "{}: {}",
        error.code, error.message
    ))])
}

fn render_results(results: &[ScoredPassage]) -> String {
    if results.is_empty() {
        return "No passage matches.".into();
    }
    let entries: Vec<String> = results
        .iter()
        .enumerate()
        .map(|(i, result)| render_passage(Some(i + 1), &result.passage))
        .collect();
    entries.join("\n\n")
}

/// `[n] title (date, source)` (the path when there is no title), the text, then the id and
/// citation on their own line.
fn render_passage(number: Option<usize>, passage: &PassageView) -> String {
    let document = &passage.document;
    let heading = heading(
        number,
        Some(document.title.as_deref().unwrap_or(&document.path)),
        document.date.as_deref(),
        document.source.as_deref(),
    );
    let citation = &passage.citation;
    format!(
        "{heading}\n{}\nid: {} · {} lines {}–{}",
        passage.text, passage.id, citation.path, citation.line_start, citation.line_end
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_declares_its_access() {
        let tools: Vec<String> = Tools::tool_router()
            .list_all()
            .into_iter()
            .map(|tool| tool.name.into_owned())
            .collect();
        for tool in &tools {
            assert!(
                tool_access(tool).is_some(),
                "the MCP tool `{tool}` has no access in TOOL_ACCESS"
            );
        }
        for (declared, _) in TOOL_ACCESS {
            assert!(
                tools.iter().any(|tool| tool == declared),
                "no tool `{declared}`"
            );
        }
    }
}
