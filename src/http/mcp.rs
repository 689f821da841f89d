//! The MCP endpoint (`/mcp`): wenda's search and answers as tools an AI assistant can call, over the
//! Model Context Protocol's Streamable HTTP transport (the official SDK, `rmcp`).
//!
//! The server is stateless: every POST carries one JSON-RPC message and gets its answer as
//! `application/json`, so nothing is kept between requests and any number of clients may
//! connect. The tools call the same service as the HTTP routes and answer with the API's
//! JSON; a request the API would refuse (empty question, unknown passage, `top_k` out of range),
//! or arguments that do not fit the tool's input schema, come back as a tool result with
//! `isError: true` and a message naming the argument, which the model can read and correct.
//! Every tool takes an optional `collection` (default: `default`).
//!
//! A message that is not JSON-RPC 2.0 is answered 400 with -32600 naming what is wrong; an
//! unknown method -32601 and a served method's wrong params -32602, as JSON-RPC errors to the
//! request (HTTP 200), as the Streamable HTTP transport asks.
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
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, CustomRequest,
    CustomResult, ErrorData, Implementation, JsonObject, MetaObject, ServerCapabilities,
    ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{schemars, tool, tool_handler, tool_router, RoleServer, ServerHandler};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::auth::{Access, Granted, Refusal, ACCESS_FIELD};
use super::wire::{
    AnswerResponse, CitationView, DocumentRef, FilterBody, PassageView, ScoredPassage,
    SearchResponse, SimilarResponse,
};
use super::{ApiError, AppState};
use crate::answer::MAX_SENTENCES;
use crate::corpus::page_label;
use crate::index::Filter;
use crate::search::{heading, MAX_TOP_K};
use crate::service::{AnswerRequest, ErrorCode, SearchRequest, SimilarRequest, DEFAULT_COLLECTION};

/// The access each tool needs: the one table that declares it. A tool it leaves out needs an
/// admin key (so a new tool is never open to read keys by mistake) and fails the test below.
const TOOL_ACCESS: [(&str, Access); 4] = [
    ("search", Access::Read),
    ("answer", Access::Read),
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
/// `answer`, `get_passage`, `similar_passages`. Point an MCP client at this URL.
#[utoipa::path(post, path = "/mcp", tag = "mcp", operation_id = "mcp",
    request_body(content = Object, content_type = "application/json",
        description = "A JSON-RPC 2.0 message of the Model Context Protocol."),
    responses(
        (status = 200, description = "The JSON-RPC response: its result, or an error (-32601: \
            no such method; -32602: the params of a method do not fit, named).",
            content_type = "application/json"),
        (status = 202, description = "A notification was accepted."),
        (status = 400, description = "JSON-RPC -32700: the body is not JSON; -32600: it is not \
            one JSON-RPC 2.0 message (`jsonrpc` not \"2.0\", an `id` that is not a string or \
            an integer, `params` that are not an object, …), named.",
            content_type = "application/json"),
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
    // Checked here because the SDK answers a body that is not JSON, or not JSON-RPC, with a
    // bare 415.
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

/// JSON-RPC's codes for a request that is not valid JSON or not a valid request, and for
/// errors of the server.
const PARSE_ERROR: i32 = -32700;
const INVALID_REQUEST: i32 = -32600;
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

/// An API error as a JSON-RPC error answer (`id` null: the request may not have one).
pub fn json_rpc_error(error: &ApiError) -> Response {
    error_answer(Value::Null, error)
}

/// An API error as the JSON-RPC error answer to the message `id` (null when it has none, or
/// not a valid one), with the HTTP status it is answered with and the API's code in `data`.
fn error_answer(id: Value, error: &ApiError) -> Response {
    // JSON-RPC over HTTP answers a message it cannot read with 400, whatever the API says.
    let status = match error.code {
        ErrorCode::MalformedJson | ErrorCode::InvalidRequest => StatusCode::BAD_REQUEST,
        _ => error.status,
    };
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": error_data(&ApiError { status, ..error.clone() }),
    });
    (status, axum::Json(body)).into_response()
}

/// The 400 answer (-32600) to a message the SDK would refuse as a media type (415): not one
/// JSON-RPC object (MCP has no batches), or one whose members are wrong. It names what is
/// wrong, and answers the message's id when that one is valid.
fn refuse_malformed(message: &Value) -> Option<Response> {
    let fault = match message.as_object() {
        Some(object) => envelope_fault(object)?,
        None => {
            "the body must be one JSON-RPC message (an object); batches are not supported".into()
        }
    };
    let id = message.get("id").filter(|id| is_request_id(id));
    Some(error_answer(
        id.cloned().unwrap_or(Value::Null),
        &ApiError::new(
            ErrorCode::InvalidRequest,
            format!("invalid request: {fault}"),
        ),
    ))
}

/// Whether `id` can identify a request: MCP takes a string or an integer (the SDK's must fit
/// in 64 bits), never null.
fn is_request_id(id: &Value) -> bool {
    id.is_string() || id.is_i64()
}

/// What is wrong with the members of a JSON-RPC message, if anything. One with a `method` is a
/// request (with an `id`) or a notification; one with a `result` or an `error` is a response
/// of the client's (which the stateless SDK refuses itself, in JSON-RPC form).
fn envelope_fault(message: &JsonObject) -> Option<String> {
    if message.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Some(r#"jsonrpc must be "2.0""#.into());
    }
    let id = message.get("id");
    let fault = match (
        message.get("method"),
        message.get("result"),
        message.get("error"),
    ) {
        (Some(method), None, None) if !method.is_string() => "method must be a string",
        (Some(_), None, None) if id.is_some_and(|id| !is_request_id(id)) => {
            "id must be a string or an integer"
        }
        // The SDK reads null params as none, as JSON-RPC clients send them.
        (Some(_), None, None) => match message.get("params") {
            None | Some(Value::Null) => return None,
            Some(Value::Object(params)) => match params.get("_meta") {
                Some(meta) if !meta.is_object() => "params._meta must be an object",
                _ => return None,
            },
            Some(_) => "params must be an object (MCP names its parameters)",
        },
        (None, Some(_), None) if id.is_some_and(is_request_id) => return None,
        (None, Some(_), None) => "a response needs an id, a string or an integer",
        (None, None, Some(_)) if id.is_some_and(|id| !id.is_null() && !is_request_id(id)) => {
            "id must be a string, an integer or null"
        }
        (None, None, Some(error)) => {
            let code = error.get("code").and_then(Value::as_i64);
            if code.is_some_and(|code| i32::try_from(code).is_ok())
                && error.get("message").is_some_and(Value::is_string)
            {
                return None;
            }
            "error must be an object with code (an integer) and message (a string)"
        }
        _ => {
            "a message needs a method (a request or a notification), a result or an error \
             (a response), and only one of them"
        }
    };
    Some(fault.into())
}

/// The params of the methods served here that the SDK reads into types of its own, as
/// schemas: when they do not fit, it takes the request for one of an unknown method.
fn params_schema(method: &str) -> Option<JsonObject> {
    let (properties, required): (Value, &[&str]) = match method {
        "initialize" => (
            serde_json::json!({
                "protocolVersion": {"type": "string"},
                "capabilities": {"type": "object"},
                "clientInfo": {"type": "object"},
            }),
            &["protocolVersion", "capabilities", "clientInfo"],
        ),
        "tools/call" => (
            serde_json::json!({
                "name": {"type": "string"},
                "arguments": {"type": ["object", "null"]},
            }),
            &["name"],
        ),
        "tools/list" => (
            serde_json::json!({"cursor": {"type": ["string", "null"]}}),
            &[],
        ),
        _ => return None,
    };
    let mut schema = JsonObject::new();
    schema.insert("properties".into(), properties);
    schema.insert("required".into(), required.into());
    Some(schema)
}

/// What in `value` does not fit the object `schema` (a tool's input schema, or a method's
/// params): each required member that is missing, each member of the wrong type or out of
/// bounds, named with what it takes in words rather than Rust's types. Members the schema does
/// not name are let through, as serde does.
fn misfits(schema: &JsonObject, value: &JsonObject) -> Vec<String> {
    let properties = schema.get("properties").and_then(Value::as_object);
    let property = |name: &str| properties.and_then(|properties| properties.get(name));
    let missing = schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|name| !value.contains_key(*name))
        .map(|name| match property(name).map(expected) {
            Some(expected) if !expected.is_empty() => format!("{name} is required ({expected})"),
            _ => format!("{name} is required"),
        });
    let wrong = value.iter().filter_map(|(name, member)| {
        let property = property(name)?;
        (!fits(property, member)).then(|| {
            format!(
                "{name} must be {}, got {}",
                expected(property),
                shown(member)
            )
        })
    });
    missing.chain(wrong).collect()
}

/// The JSON types a property of a schema takes, none when it does not say.
fn types(property: &Value) -> Vec<&str> {
    match property.get("type") {
        Some(Value::String(kind)) => vec![kind.as_str()],
        Some(Value::Array(kinds)) => kinds.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// Whether `value` is of a type `property` takes, within its bounds.
fn fits(property: &Value, value: &Value) -> bool {
    let kinds = types(property);
    let typed = kinds.is_empty()
        || kinds.iter().any(|kind| match *kind {
            "null" => value.is_null(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "object" => value.is_object(),
            "array" => value.is_array(),
            _ => true,
        });
    let within = |bound: &str, holds: fn(f64, f64) -> bool| match (
        value.as_f64(),
        property.get(bound).and_then(Value::as_f64),
    ) {
        (Some(number), Some(bound)) => holds(number, bound),
        _ => true,
    };
    typed
        && within("minimum", |number, min| number >= min)
        && within("maximum", |number, max| number <= max)
}

/// What `property` takes, in words: "a string", "an integer between 1 and 100". Null, which
/// every optional member takes, goes without saying.
fn expected(property: &Value) -> String {
    let kinds: Vec<&str> = types(property)
        .into_iter()
        .filter_map(|kind| match kind {
            "null" => None,
            "string" => Some("a string"),
            "integer" => Some("an integer"),
            "number" => Some("a number"),
            "boolean" => Some("true or false"),
            "object" => Some("an object"),
            "array" => Some("an array"),
            other => Some(other),
        })
        .collect();
    let bounds = match (property.get("minimum"), property.get("maximum")) {
        (Some(min), Some(max)) => format!(" between {min} and {max}"),
        (Some(min), None) => format!(" of at least {min}"),
        (None, Some(max)) => format!(" of at most {max}"),
        (None, None) => String::new(),
    };
    format!("{}{bounds}", kinds.join(" or "))
}

/// `value` as a misfit names it: numbers and literals as they are, the rest by their kind (a
/// long text would otherwise come back whole).
fn shown(value: &Value) -> String {
    match value {
        Value::String(_) => "a string".into(),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
        literal => literal.to_string(),
    }
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
    #[serde(flatten)]
    within: Within,
}

/// The passages a search or an answer looks at.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct Within {
    /// How many passages to return (to answer from), 1 to 100 (default 5).
    #[schemars(range(min = 1, max = MAX_TOP_K))]
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

impl Within {
    fn filter(&self) -> Result<Filter, String> {
        FilterBody {
            document: self.document.clone(),
            title: self.title.clone(),
            date_from: self.date_from.clone(),
            date_to: self.date_to.clone(),
            metadata: None,
        }
        .into_domain()
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct AnswerArgs {
    /// The question, in any language (Chinese and English work best).
    question: String,
    /// Most sentences in the answer, the best included, 1 to 10 (default 3).
    #[schemars(range(min = 1, max = MAX_SENTENCES))]
    max_sentences: Option<usize>,
    #[serde(flatten)]
    within: Within,
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
    #[schemars(range(min = 1, max = MAX_TOP_K))]
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
            let collection = collection_of(&args.within.collection).to_owned();
            let request = search_request(args).map_err(ApiError::invalid)?;
            let outcome = service.search(&collection, request).await?;
            Ok::<_, ApiError>(SearchResponse::from(outcome))
        };
        match answered.await {
            Ok(response) => answer(render_results(&response.results), &response),
            Err(error) => tool_error(&error),
        }
    }

    /// The answer to a question, quoted from the documents with numbered citations.
    #[tool(
        description = "Answer a question from the document collection: the sentences of the \
            documents that say the answer, each followed by a [n] marker, then the numbered \
            sources (title, date, the quoted sentence, passage id and citation). When the \
            documents do not answer, it says so and lists the passages it searched: do not \
            make an answer up then. Quote and cite the sources when you use the answer.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn answer(&self, Parameters(args): Parameters<AnswerArgs>) -> CallToolResult {
        let answered = async {
            let service = self.state.service()?;
            let request = AnswerRequest {
                top_k: args.within.top_k,
                filter: args.within.filter().map_err(ApiError::invalid)?,
                max_sentences: args.max_sentences,
                ..AnswerRequest::new(args.question)
            };
            let outcome = service
                .answer(collection_of(&args.within.collection), request)
                .await?;
            Ok::<_, ApiError>(AnswerResponse::from(outcome))
        };
        match answered.await {
            Ok(response) => answer(render_answer(&response), &response),
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
    /// Calls the tool when the request's key grants the access it needs and its arguments fit
    /// the tool's input schema. Checked here, on the name the SDK dispatches on, so no second
    /// reading of the message can disagree with it.
    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let Some(tool) = self.tool_router.get(&request.name) else {
            let tools: Vec<&str> = TOOL_ACCESS.iter().map(|(name, _)| *name).collect();
            return Err(ErrorData::invalid_params(
                format!(
                    "unknown tool {:?}; the tools are {}",
                    request.name,
                    tools.join(", ")
                ),
                None,
            ));
        };
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
        // Before the SDK reads them, which answers in Rust's words ("expected usize") without
        // naming the argument.
        let faults = misfits(
            &tool.input_schema,
            request.arguments.as_ref().unwrap_or(&JsonObject::new()),
        );
        if !faults.is_empty() {
            return Ok(tool_error(&ApiError::invalid(faults.join("; "))).into());
        }
        self.tool_router
            .call(ToolCallContext::new(self, request, context))
            .await
    }

    /// A request the SDK could not read as one it knows: a method served here whose params do
    /// not fit (-32602, naming them), or one not served (-32601).
    async fn on_custom_request(
        &self,
        request: CustomRequest,
        _context: RequestContext<RoleServer>,
    ) -> Result<CustomResult, ErrorData> {
        let method = request.method;
        let Some(schema) = params_schema(&method) else {
            return Err(ErrorData::new(
                rmcp::model::ErrorCode::METHOD_NOT_FOUND,
                format!("method not found: {method}"),
                None,
            ));
        };
        let params = match request.params {
            Some(Value::Object(params)) => params,
            _ => JsonObject::new(),
        };
        let faults = misfits(&schema, &params);
        let message = if faults.is_empty() {
            format!("invalid params for {method}")
        } else {
            format!("invalid params for {method}: {}", faults.join("; "))
        };
        Err(ErrorData::invalid_params(message, None))
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
    Ok(SearchRequest {
        top_k: args.within.top_k,
        filter: args.within.filter()?,
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

/// The answer, then its sources: each cited sentence under its passage's heading; or, when the
/// documents do not answer, the refusal and the passages searched.
fn render_answer(response: &AnswerResponse) -> String {
    if !response.found {
        return format!(
            "{}\n\nPassages searched:\n\n{}",
            response.answer,
            render_results(&response.passages)
        );
    }
    let sources: Vec<String> = response
        .citations
        .iter()
        .map(|cited| {
            render_source(
                Some(cited.index),
                &cited.document,
                &cited.quote,
                &cited.id,
                &cited.citation,
            )
        })
        .collect();
    format!(
        "{}\n\nSources:\n\n{}",
        response.answer,
        sources.join("\n\n")
    )
}

/// `[n] title (date, source)` (the path when there is no title), the text, then the id and
/// citation on their own line.
fn render_passage(number: Option<usize>, passage: &PassageView) -> String {
    render_source(
        number,
        &passage.document,
        &passage.text,
        &passage.id,
        &passage.citation,
    )
}

fn render_source(
    number: Option<usize>,
    document: &DocumentRef,
    text: &str,
    id: &str,
    citation: &CitationView,
) -> String {
    let pages = page_label(citation.page_start, citation.page_end);
    let heading = heading(
        number,
        Some(document.title.as_deref().unwrap_or(&document.path)),
        document.date.as_deref(),
        document.source.as_deref(),
        pages.as_deref(),
    );
    format!(
        "{heading}\n{text}\nid: {id} · {} lines {}–{}",
        citation.path, citation.line_start, citation.line_end
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

    #[test]
    fn misfits_name_the_argument_and_what_it_takes() {
        let router = Tools::tool_router();
        let schema = &router.get("search").unwrap().input_schema;
        let misfits_of = |arguments: Value| misfits(schema, arguments.as_object().unwrap());
        assert_eq!(
            misfits_of(serde_json::json!({"question": "q", "top_k": -1})),
            ["top_k must be an integer between 1 and 100, got -1"]
        );
        assert_eq!(
            misfits_of(serde_json::json!({"top_k": "x", "date_to": [1]})),
            [
                "question is required (a string)",
                "date_to must be a string, got an array",
                "top_k must be an integer between 1 and 100, got a string",
            ]
        );
        let fitting = serde_json::json!({"question": "q", "top_k": 100, "title": null, "x": 1});
        assert!(misfits_of(fitting).is_empty());
    }
}
