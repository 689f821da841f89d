//! The routes that answer questions: wenda's own (`/v1/answer`, JSON or Server-Sent Events)
//! and OpenAI's chat completions and model list, for chat UIs and OpenAI's clients. Like the
//! other handlers, each only translates: one call to the service's `answer` or
//! `answer_stream`, its outcome mapped to the wire.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream::{self, Stream, StreamExt};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use serde_json::json;
use tokio::sync::mpsc;

use super::error::{Body, ErrorBody};
use super::wire::{
    AnswerCitation, AnswerRequest, AnswerResponse, ChatChoice, ChatCompletion, ChatRequest,
    ChatResponseMessage, DeltaEvent, ModelList, ModelView, SourcesEvent, TokenUsageView,
    UrlCitation, UrlCitationAnnotation, DEFAULT_MODEL,
};
use super::{ApiError, AppState};
use crate::answer::generate::markers;
use crate::service::{AnswerEvent, AnswerOutcome, Finish, DEFAULT_COLLECTION};

type Shared = State<Arc<AppState>>;

/// Answer a question from the documents, with citations.
///
/// Retrieves the passages that best answer `question` (a hybrid search, with `filter`), then
/// answers: extractively (the sentences that say the answer, quoted, best first) or, when the
/// server has an LLM, in the LLM's words from the numbered passages. Each sentence is followed
/// by its `[n]` marker; `citations` names each passage, the exact sentence quoted and where it
/// is. When the documents do not answer, `found` is false, `answer` is the server's refusal
/// text (the LLM is not asked), and `passages` still lists what was found. With `"stream":
/// true` the answer comes as Server-Sent Events: `sources`, `delta`s, then `done` with this
/// object, or `error`.
#[utoipa::path(post, path = "/v1/answer", tag = "answer", operation_id = "answer",
    request_body = AnswerRequest, responses(
    (status = 200, description = "The answer, its citations and the passages it was drawn from (`text/event-stream` when `stream` is true).", body = AnswerResponse),
    (status = 400, description = "`empty_question`, or `no_llm_configured`: `mode` is `generative` and the server has no LLM.", body = ErrorBody),
    (status = 413, description = "`payload_too_large`", body = ErrorBody),
    (status = 415, description = "`unsupported_media_type`: send `Content-Type: application/json`.", body = ErrorBody),
    (status = 422, description = "`malformed_json` or `invalid_request`: a field is missing, unknown or out of range.", body = ErrorBody),
    (status = 502, description = "`upstream_unavailable` or `upstream_invalid`: the LLM failed or answered something else than a completion.", body = ErrorBody),
    (status = 503, description = "`not_ready` or `overloaded`: retry shortly.", body = ErrorBody),
    (status = 504, description = "`upstream_timeout`: the LLM did not answer within `--llm-timeout`.", body = ErrorBody),
))]
pub async fn answer_post(
    State(state): Shared,
    Body(body): Body<AnswerRequest>,
) -> Result<Response, ApiError> {
    answer(&state, DEFAULT_COLLECTION, body).await
}

/// Answer a question from one collection's documents (the body of `POST /v1/answer`).
#[utoipa::path(post, path = "/v1/collections/{collection}/answer", tag = "answer",
    operation_id = "collectionAnswer",
    params(("collection" = String, Path, description = "The collection's name.")),
    request_body = AnswerRequest, responses(
    (status = 200, description = "The answer, its citations and the passages it was drawn from.", body = AnswerResponse),
    (status = 400, description = "`empty_question` or `no_llm_configured`", body = ErrorBody),
    (status = 404, description = "`unknown_collection`", body = ErrorBody),
    (status = 413, description = "`payload_too_large`", body = ErrorBody),
    (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
    (status = 422, description = "`malformed_json` or `invalid_request`", body = ErrorBody),
    (status = 502, description = "`upstream_unavailable` or `upstream_invalid`", body = ErrorBody),
    (status = 503, description = "`not_ready` or `overloaded`: retry shortly.", body = ErrorBody),
    (status = 504, description = "`upstream_timeout`", body = ErrorBody),
))]
pub async fn collection_answer_post(
    State(state): Shared,
    collection: Result<Path<String>, PathRejection>,
    Body(body): Body<AnswerRequest>,
) -> Result<Response, ApiError> {
    let Path(collection) = collection?;
    answer(&state, &collection, body).await
}

async fn answer(
    state: &AppState,
    collection: &str,
    body: AnswerRequest,
) -> Result<Response, ApiError> {
    let service = state.service()?;
    let streamed = body.stream;
    let request = body.into_domain().map_err(ApiError::invalid)?;
    if !streamed {
        let outcome = service.answer(collection, request).await?;
        return Ok(Json(AnswerResponse::from(outcome)).into_response());
    }
    let events = started(service.answer_stream(collection.to_owned(), request)).await?;
    let events = events.map(|event| {
        let (name, data) = match event {
            AnswerEvent::Sources(sources) => (
                "sources",
                json!(SourcesEvent {
                    sources: sources.iter().map(Into::into).collect()
                }),
            ),
            AnswerEvent::Delta(text) => ("delta", json!(DeltaEvent { text })),
            AnswerEvent::Done(outcome) => ("done", json!(AnswerResponse::from(*outcome))),
            AnswerEvent::Failed(error) => ("error", json!(ApiError::from(error).body())),
        };
        Ok::<_, Infallible>(Event::default().event(name).data(data.to_string()))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// The events of a streamed answer, once the first has come: a failure before anything was
/// answered is the request's error, not an event.
async fn started(
    mut events: mpsc::Receiver<AnswerEvent>,
) -> Result<impl Stream<Item = AnswerEvent>, ApiError> {
    let first = events.recv().await.ok_or_else(|| {
        ApiError::from(crate::service::ServiceError::Internal(
            "the answer stopped".into(),
        ))
    })?;
    if let AnswerEvent::Failed(error) = first {
        return Err(error.into());
    }
    let rest = stream::unfold(events, |mut events| async move {
        events.recv().await.map(|event| (event, events))
    });
    Ok(stream::iter([first]).chain(rest))
}

/// Chat with the documents (OpenAI's chat completions).
///
/// The model is a collection (`wenda` for `default`; see `GET /v1/models`); the last message is
/// the question and the messages before it the conversation, in which a follow-up is
/// understood. The reply's `content` is wenda's answer with its `[n]` markers, each marker an
/// `url_citation` annotation, and `citations` lists the passages as `POST /v1/answer` does.
/// Streaming follows OpenAI's chunk format, the citations in the last chunk. Works with
/// OpenAI's client libraries and chat UIs as a custom OpenAI-compatible model.
#[utoipa::path(post, path = "/v1/chat/completions", tag = "answer", operation_id = "chatCompletions",
    request_body = ChatRequest, responses(
    (status = 200, description = "The answer as a chat completion (`text/event-stream` chunks when `stream` is true).", body = ChatCompletion),
    (status = 400, description = "`empty_question`", body = ErrorBody),
    (status = 404, description = "`unknown_collection`: no collection is named as the model.", body = ErrorBody),
    (status = 422, description = "`invalid_request`: no user message, a last message not from the user, a content part that is not text, or over 64 messages; the field is named.", body = ErrorBody),
    (status = 502, description = "`upstream_unavailable` or `upstream_invalid`", body = ErrorBody),
    (status = 503, description = "`not_ready` or `overloaded`: retry shortly.", body = ErrorBody),
    (status = 504, description = "`upstream_timeout`", body = ErrorBody),
))]
pub async fn chat_completions(
    State(state): Shared,
    headers: HeaderMap,
    Body(body): Body<ChatRequest>,
) -> Result<Response, ApiError> {
    let service = state.service()?;
    let request = body.to_domain().map_err(ApiError::invalid)?;
    let collection = body.collection().to_owned();
    let links = Links::new(&headers, &collection);
    let reply = Reply {
        id: format!("chatcmpl-{}", completion_id()),
        created: unix_seconds(),
        model: body.model.clone(),
    };
    if !body.stream {
        let outcome = service.answer(&collection, request).await?;
        return Ok(Json(reply.completion(outcome, &links)).into_response());
    }
    let include_usage = body.include_usage();
    let events = started(service.answer_stream(collection, request)).await?;
    let chunks = events.flat_map(move |event| {
        let data = match event {
            AnswerEvent::Sources(_) => vec![reply.chunk(
                json!([choice(json!({"role": "assistant", "content": ""}), None)]),
            )],
            AnswerEvent::Delta(text) => {
                vec![reply.chunk(json!([choice(json!({"content": text}), None)]))]
            }
            AnswerEvent::Done(outcome) => {
                let mut last =
                    reply.chunk(json!([choice(json!({}), Some(finish_reason(&outcome)))]));
                let citations: Vec<AnswerCitation> =
                    outcome.citations.iter().map(Into::into).collect();
                last["citations"] = json!(citations);
                let mut chunks = vec![last];
                if include_usage {
                    let mut usage_chunk = reply.chunk(json!([]));
                    usage_chunk["usage"] = json!(usage(&outcome));
                    chunks.push(usage_chunk);
                }
                chunks
            }
            AnswerEvent::Failed(error) => {
                let error = ApiError::from(error);
                vec![json!({"error": {
                    "message": error.message, "type": error.code.as_str(), "code": error.code.as_str(),
                }})]
            }
        };
        stream::iter(data.into_iter().map(|d| d.to_string()))
    });
    let done = stream::iter(["[DONE]".to_owned()]);
    let events = chunks
        .chain(done)
        .map(|data| Ok::<_, Infallible>(Event::default().data(data)));
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// The models a chat client may name: `wenda` (the `default` collection) and every other
/// collection by its name.
#[utoipa::path(get, path = "/v1/models", tag = "answer", operation_id = "listModels",
    responses(
    (status = 200, body = ModelList),
    (status = 503, description = "`not_ready`", body = ErrorBody),
))]
pub async fn models(State(state): Shared) -> Result<Json<ModelList>, ApiError> {
    let collections = state.service()?.collections().await?;
    let data = collections
        .into_iter()
        .map(|c| ModelView {
            id: if c.name == DEFAULT_COLLECTION {
                DEFAULT_MODEL.to_owned()
            } else {
                c.name
            },
            object: "model".into(),
            created: c.created_at / 1000,
            owned_by: "wenda".into(),
        })
        .collect();
    Ok(Json(ModelList {
        object: "list".into(),
        data,
    }))
}

/// What every chunk and the completion of one reply share.
struct Reply {
    id: String,
    created: u64,
    model: String,
}

impl Reply {
    fn completion(&self, outcome: AnswerOutcome, links: &Links) -> ChatCompletion {
        let citations: Vec<AnswerCitation> = outcome.citations.iter().map(Into::into).collect();
        let annotations = annotations(&outcome.text, &citations, links);
        let usage = usage(&outcome);
        let finish_reason = finish_reason(&outcome).into();
        ChatCompletion {
            id: self.id.clone(),
            object: "chat.completion".into(),
            created: self.created,
            model: self.model.clone(),
            choices: vec![ChatChoice {
                index: 0,
                message: ChatResponseMessage {
                    role: "assistant".into(),
                    content: outcome.text,
                    annotations,
                },
                finish_reason,
            }],
            usage,
            citations,
        }
    }

    /// A `chat.completion.chunk` with these `choices`.
    fn chunk(&self, choices: serde_json::Value) -> serde_json::Value {
        json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model, "choices": choices,
        })
    }
}

/// The one choice of a chunk: what it adds to the message, and why it ends, in the last.
fn choice(delta: serde_json::Value, finish_reason: Option<&str>) -> serde_json::Value {
    json!({"index": 0, "delta": delta, "finish_reason": finish_reason})
}

/// OpenAI's reason for the end of a reply: `length` when the LLM ran into its token limit.
fn finish_reason(outcome: &AnswerOutcome) -> &'static str {
    outcome.finish.unwrap_or(Finish::Stop).as_str()
}

fn usage(outcome: &AnswerOutcome) -> TokenUsageView {
    outcome.usage.unwrap_or_default().into()
}

/// What a path segment cannot hold as it is (a passage id has `~`, `.` and `#`).
const PATH_SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// Where a cited passage can be read: the document's own address, else the passage on this
/// server (as the request reached it).
struct Links {
    base: String,
}

impl Links {
    fn new(headers: &HeaderMap, collection: &str) -> Self {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let scheme = header("x-forwarded-proto").unwrap_or("http");
        let host = header("host").unwrap_or("localhost");
        let collection = utf8_percent_encode(collection, PATH_SEGMENT);
        Self {
            base: format!("{scheme}://{host}/v1/collections/{collection}/passages/"),
        }
    }

    fn of(&self, citation: &AnswerCitation) -> String {
        citation.document.url.clone().unwrap_or_else(|| {
            format!(
                "{}{}",
                self.base,
                utf8_percent_encode(&citation.id, PATH_SEGMENT)
            )
        })
    }
}

/// One `url_citation` per `[n]` marker of `content` that names a citation, at the marker's
/// code-point offsets.
fn annotations(
    content: &str,
    citations: &[AnswerCitation],
    links: &Links,
) -> Vec<UrlCitationAnnotation> {
    let (mut bytes_seen, mut chars_seen) = (0, 0);
    let mut chars_before = |byte: usize| {
        chars_seen += content[bytes_seen..byte].chars().count();
        bytes_seen = byte;
        chars_seen
    };
    let mut annotations = Vec::new();
    for (marker, index) in markers(content) {
        let start_index = chars_before(marker.start);
        let end_index = chars_before(marker.end);
        let Some(cited) = citations.iter().find(|c| c.index == index) else {
            continue;
        };
        annotations.push(UrlCitationAnnotation {
            kind: "url_citation".into(),
            url_citation: UrlCitation {
                url: links.of(cited),
                title: cited
                    .document
                    .title
                    .clone()
                    .unwrap_or_else(|| cited.document.path.clone()),
                start_index,
                end_index,
            },
        });
    }
    annotations
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A completion id unique within this process and unlikely to repeat across restarts.
fn completion_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!("{nanos:x}{:04x}", NEXT.fetch_add(1, Ordering::Relaxed))
}
