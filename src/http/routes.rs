//! Request handlers: validate, do the work, answer in the wire format. Each handler's
//! `#[utoipa::path]` is its entry in the OpenAPI document; the search, passage and similar
//! operations are also what the MCP tools call.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode, Uri};
use axum::Json;

use super::error::ErrorBody;
use super::wire::{
    ContextBudget, EmbeddingData, EmbeddingVector, EmbeddingsRequest, EmbeddingsResponse,
    EncodingFormat, Info, PassageView, ScoredPassage, SearchQuery, SearchRequest, SearchResponse,
    SimilarQuery, SimilarResponse, Status, Usage,
};
use super::{ApiError, AppState, Service};
use crate::embedding::Role;
use crate::search::{self, Filter, Question, SearchError, SearchParams, DEFAULT_TOP_K, MAX_TOP_K};

type Answer<T> = Result<Json<T>, ApiError>;

/// Liveness: 200 while the process runs, even before the index is ready.
#[utoipa::path(get, path = "/health", tag = "service",
    responses((status = 200, description = "The process is up.", body = Status)))]
pub async fn health() -> Json<Status> {
    Json(Status {
        status: "ok".into(),
    })
}

/// Readiness: 200 once the model is loaded and the corpus indexed; 503 `not_ready` before.
#[utoipa::path(get, path = "/ready", tag = "service", responses(
    (status = 200, description = "Searches will be answered.", body = Status),
    (status = 503, description = "`not_ready`: the index is still being built.", body = ErrorBody),
))]
pub async fn ready(State(state): State<Arc<AppState>>) -> Answer<Status> {
    state.service()?;
    Ok(Json(Status {
        status: "ready".into(),
    }))
}

/// What is served: version, model, and the size of the index.
#[utoipa::path(get, path = "/v1/info", tag = "service", responses(
    (status = 200, body = Info),
    (status = 503, description = "`not_ready`", body = ErrorBody),
))]
pub async fn info(State(state): State<Arc<AppState>>) -> Answer<Info> {
    let service = state.service()?;
    Ok(Json(Info {
        version: env!("CARGO_PKG_VERSION").into(),
        model: service.model.clone(),
        passages: service.engine.passages().len(),
        documents: service.engine.documents().len(),
        index_bytes: service.engine.index_bytes(),
    }))
}

/// Search the corpus (query string form of `POST /v1/search`).
///
/// Returns the passages that best answer the question `q`, best first, each with its text,
/// document title, date, source, and citation (file and lines).
#[utoipa::path(get, path = "/v1/search", tag = "search", operation_id = "searchGet",
    params(SearchQuery), responses(
    (status = 200, description = "The best passages, best first.", body = SearchResponse),
    (status = 400, description = "`empty_query`: `q` is empty.", body = ErrorBody),
    (status = 422, description = "`invalid_request`: a parameter is unknown or out of range.", body = ErrorBody),
    (status = 503, description = "`not_ready` or `overloaded`: retry shortly.", body = ErrorBody),
))]
pub async fn search_get(
    State(state): State<Arc<AppState>>,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> Answer<SearchResponse> {
    let Query(query) = query?;
    search(&state, query.into()).await.map(Json)
}

/// Search the corpus of news passages with a natural-language question.
///
/// Returns the passages that best answer `query`, best first. Each result has the passage
/// `text`, its `document` (title, date, source), a `score`, and a `citation` (file and lines)
/// to show the user. Ask in Chinese or English; `filter` narrows by document, title or date.
/// Add `context` to also get the results as a numbered block, ready to paste into a prompt,
/// with the citations its numbers refer to.
#[utoipa::path(post, path = "/v1/search", tag = "search", operation_id = "search",
    request_body = SearchRequest, responses(
    (status = 200, description = "The best passages, best first.", body = SearchResponse),
    (status = 400, description = "`empty_query`: the query is empty.", body = ErrorBody),
    (status = 413, description = "`payload_too_large`: the body is over the limit (64 KiB by default).", body = ErrorBody),
    (status = 415, description = "`unsupported_media_type`: send `Content-Type: application/json`.", body = ErrorBody),
    (status = 422, description = "`malformed_json` or `invalid_request`: a field is missing, unknown or out of range.", body = ErrorBody),
    (status = 503, description = "`not_ready` or `overloaded`: retry shortly.", body = ErrorBody),
))]
pub async fn search_post(
    State(state): State<Arc<AppState>>,
    body: Result<Json<SearchRequest>, JsonRejection>,
) -> Answer<SearchResponse> {
    let Json(request) = body?;
    search(&state, request).await.map(Json)
}

/// Answers a search; shared by the HTTP routes and the MCP `search` tool.
pub(super) async fn search(
    state: &Arc<AppState>,
    request: SearchRequest,
) -> Result<SearchResponse, ApiError> {
    let started = Instant::now();
    let service = state.service()?;
    if request.query.trim().is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "empty_query",
            "the query is empty; ask a question",
        ));
    }
    let params = search_params(request.top_k, request.min_score, request.filter)?;
    let budget = request.context.map(context_budget).transpose()?;
    let params = SearchParams {
        mode: request.mode,
        ..params
    };
    let _permit = state.permit()?;
    let embedding = if request.mode.needs_embedding() {
        Some(
            service
                .queue
                .embed(Role::Query, request.query.clone())
                .await?,
        )
    } else {
        None
    };
    let text = request.query.clone();
    let highlight = request.highlight.unwrap_or(true);
    let vector = embedding.as_ref().map(|e| e.vector.clone());
    let (results, context) = off_runtime(state, move |service| {
        let question = Question {
            text: &text,
            vector: vector.as_deref(),
        };
        let ranked = service.engine.search(&question, &params)?;
        let context = budget.map(|budget| match budget {
            Budget::Chars(max) => search::context(&ranked, max, &|t: &str| t.chars().count()),
            Budget::Tokens(max) => search::context(&ranked, max, &|t: &str| {
                service
                    .embedder
                    .token_count(Role::Passage, t)
                    .unwrap_or(usize::MAX)
            }),
        });
        let highlighter = highlight.then(|| service.engine.highlighter(&text));
        let results: Vec<ScoredPassage> = ranked
            .into_iter()
            .map(|ranked| {
                let highlights = highlighter.as_ref().map(|highlighter| {
                    let spans = highlighter.spans(&ranked.passage.text);
                    spans.into_iter().map(|s| [s.start, s.end]).collect()
                });
                ScoredPassage {
                    highlights,
                    ..ranked.into()
                }
            })
            .collect();
        Ok::<_, SearchError>((results, context))
    })
    .await??;
    Ok(SearchResponse {
        query: request.query,
        mode: request.mode,
        query_tokens: embedding.as_ref().map(|e| e.tokens),
        truncated: embedding.is_some_and(|e| e.truncated),
        results,
        context,
        took_ms: elapsed_ms(started),
    })
}

/// Get one passage by id (as given in search results), with its document and citation.
#[utoipa::path(get, path = "/v1/passages/{id}", tag = "search", operation_id = "getPassage",
    params(("id" = String, Path, description = "A passage id from a search result, e.g. `000_6b84f5fb9e9426be.txt~2.1`.")),
    responses(
    (status = 200, body = PassageView),
    (status = 404, description = "`unknown_passage`: no passage has this id.", body = ErrorBody),
    (status = 503, description = "`not_ready`", body = ErrorBody),
))]
pub async fn passage(
    State(state): State<Arc<AppState>>,
    id: Result<Path<String>, PathRejection>,
) -> Answer<PassageView> {
    let Path(id) = id?;
    find_passage(&state, &id).map(Json)
}

/// Looks up a passage; shared by the HTTP route and the MCP `get_passage` tool.
pub(super) fn find_passage(state: &AppState, id: &str) -> Result<PassageView, ApiError> {
    let passage = state
        .service()?
        .engine
        .passage(id)
        .ok_or_else(|| SearchError::UnknownPassage(id.to_owned()))?;
    Ok(passage.into())
}

/// Find the passages closest in meaning to one passage (itself and its own paragraph
/// excluded): "more like this".
#[utoipa::path(get, path = "/v1/passages/{id}/similar", tag = "search", operation_id = "similarPassages",
    params(("id" = String, Path, description = "A passage id from a search result."), SimilarQuery),
    responses(
    (status = 200, description = "The closest passages, best first.", body = SimilarResponse),
    (status = 404, description = "`unknown_passage`: no passage has this id.", body = ErrorBody),
    (status = 422, description = "`invalid_request`: a parameter is unknown or out of range.", body = ErrorBody),
    (status = 503, description = "`not_ready` or `overloaded`", body = ErrorBody),
))]
pub async fn similar(
    State(state): State<Arc<AppState>>,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<SimilarQuery>, QueryRejection>,
) -> Answer<SimilarResponse> {
    let Path(id) = id?;
    let Query(query) = query?;
    find_similar(&state, id, query).await.map(Json)
}

/// Ranks the passages related to passage `id`; shared by the HTTP route and the MCP
/// `similar_passages` tool.
pub(super) async fn find_similar(
    state: &Arc<AppState>,
    id: String,
    query: SimilarQuery,
) -> Result<SimilarResponse, ApiError> {
    let started = Instant::now();
    state.service()?;
    let params = search_params(query.top_k, query.min_score, Filter::default())?;
    let _permit = state.permit()?;
    let passage_id = id.clone();
    let results = off_runtime(state, move |service| {
        service
            .engine
            .similar(&passage_id, &params)
            .map(|ranked| ranked.into_iter().map(ScoredPassage::from).collect())
    })
    .await??;
    Ok(SimilarResponse {
        id,
        results,
        took_ms: elapsed_ms(started),
    })
}

/// Most texts one `/v1/embeddings` request may carry.
pub const MAX_EMBEDDING_INPUTS: usize = 128;

/// OpenAI-compatible embeddings: the served model's vectors for up to 128 texts.
///
/// Texts are embedded as passages (texts to index) unless `input_type` is `query` (questions).
#[utoipa::path(post, path = "/v1/embeddings", tag = "embeddings", operation_id = "createEmbeddings",
    request_body = EmbeddingsRequest, responses(
    (status = 200, body = EmbeddingsResponse),
    (status = 400, description = "`empty_input`: an input is empty.", body = ErrorBody),
    (status = 413, description = "`payload_too_large`: the body is over 4 MiB.", body = ErrorBody),
    (status = 415, description = "`unsupported_media_type`: send `Content-Type: application/json`.", body = ErrorBody),
    (status = 422, description = "`malformed_json` or `invalid_request`: more than 128 inputs, or `dimensions` other than the model's.", body = ErrorBody),
    (status = 503, description = "`not_ready` or `overloaded`", body = ErrorBody),
))]
pub async fn embeddings(
    State(state): State<Arc<AppState>>,
    body: Result<Json<EmbeddingsRequest>, JsonRejection>,
) -> Answer<EmbeddingsResponse> {
    let Json(request) = body?;
    let service = state.service()?;
    let texts = request.input.into_texts();
    if texts.is_empty() || texts.len() > MAX_EMBEDDING_INPUTS {
        return Err(ApiError::invalid(format!(
            "input must hold 1 to {MAX_EMBEDDING_INPUTS} texts, got {}",
            texts.len()
        )));
    }
    if let Some(index) = texts.iter().position(|t| t.trim().is_empty()) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "empty_input",
            format!("input {index} is empty"),
        ));
    }
    if let Some(dimensions) = request.dimensions {
        if dimensions != service.model.dimensions {
            return Err(ApiError::invalid(format!(
                "dimensions {dimensions} is not available: the model's vectors have {}",
                service.model.dimensions
            )));
        }
    }
    let _permit = state.permit()?;
    let role = request.input_type.unwrap_or(Role::Passage);
    let embedded = service.queue.embed_all(role, texts).await?;
    let tokens = embedded.iter().map(|e| e.tokens).sum();
    let data = embedded
        .into_iter()
        .enumerate()
        .map(|(index, embedding)| EmbeddingData {
            object: "embedding".into(),
            index,
            truncated: embedding.truncated,
            embedding: match request.encoding_format {
                EncodingFormat::Float => EmbeddingVector::Float(embedding.vector),
                EncodingFormat::Base64 => EmbeddingVector::Base64(base64_floats(&embedding.vector)),
            },
        })
        .collect();
    Ok(Json(EmbeddingsResponse {
        object: "list".into(),
        data,
        model: service.model.id.clone(),
        usage: Usage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    }))
}

/// Base64 of the little-endian bytes of `values`, as OpenAI's `encoding_format: base64`.
fn base64_floats(values: &[f32]) -> String {
    use base64::Engine;
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_route",
        format!("no route for {method} {}", uri.path()),
    )
}

pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not accept {method}", uri.path()),
    )
}

/// Checks the knobs shared by searches and related-passage lookups.
fn search_params(
    top_k: Option<usize>,
    min_score: Option<f32>,
    filter: Filter,
) -> Result<SearchParams, ApiError> {
    let top_k = top_k.unwrap_or(DEFAULT_TOP_K);
    if !(1..=MAX_TOP_K).contains(&top_k) {
        return Err(ApiError::invalid(format!(
            "top_k must be between 1 and {MAX_TOP_K}, got {top_k}"
        )));
    }
    if let Some(min) = min_score {
        if !(-1.0..=1.0).contains(&min) {
            return Err(ApiError::invalid(format!(
                "min_score is a cosine similarity between -1 and 1, got {min}"
            )));
        }
    }
    if let (Some(from), Some(to)) = (&filter.date_from, &filter.date_to) {
        if from > to {
            return Err(ApiError::invalid(format!(
                "date_from {} is after date_to {}",
                from.as_str(),
                to.as_str()
            )));
        }
    }
    Ok(SearchParams {
        top_k,
        filter,
        min_score,
        ..SearchParams::default()
    })
}

/// A context budget, checked.
enum Budget {
    Chars(usize),
    Tokens(usize),
}

/// Most characters (or tokens) a context block may be asked to fill.
const MAX_CONTEXT_BUDGET: usize = 1_000_000;

fn context_budget(budget: ContextBudget) -> Result<Budget, ApiError> {
    let budget = match (budget.max_chars, budget.max_tokens) {
        (Some(chars), None) => Budget::Chars(chars),
        (None, Some(tokens)) => Budget::Tokens(tokens),
        _ => {
            return Err(ApiError::invalid(
                "context takes exactly one of max_chars and max_tokens",
            ))
        }
    };
    let (Budget::Chars(size) | Budget::Tokens(size)) = budget;
    if !(1..=MAX_CONTEXT_BUDGET).contains(&size) {
        return Err(ApiError::invalid(format!(
            "the context budget must be between 1 and {MAX_CONTEXT_BUDGET}, got {size}"
        )));
    }
    Ok(budget)
}

fn elapsed_ms(started: Instant) -> f64 {
    (started.elapsed().as_secs_f64() * 1e6).round() / 1e3
}

/// Runs `work` on the ready service on a blocking thread: ranking scans the whole index, and a
/// large corpus must not stall the async workers' I/O. Call only once the service is ready.
async fn off_runtime<T: Send + 'static>(
    state: &Arc<AppState>,
    work: impl FnOnce(&Service) -> T + Send + 'static,
) -> Result<T, ApiError> {
    let state = Arc::clone(state);
    tokio::task::spawn_blocking(move || work(state.service().expect("checked ready before")))
        .await
        .map_err(|error| {
            tracing::error!(%error, "a ranking task failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "ranking failed",
            )
        })
}
