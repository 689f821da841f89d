//! Request handlers. Each only destructures the request, calls one method of the service
//! ([`Service`]) and maps the answer to the wire format; each handler's `#[utoipa::path]` is its
//! entry in the OpenAPI document. Routes without a collection mean the `default` one.

use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode, Uri};
use axum::Json;

use super::error::{Body, ErrorBody};
use super::wire::{
    CollectionList, CollectionView, Deleted, DocumentBody, DocumentFileQuery, DocumentList,
    DocumentListQuery, DocumentSummary, DocumentView, EmbeddingData, EmbeddingVector,
    EmbeddingsRequest, EmbeddingsResponse, EncodingFormat, Info, JobView, PassageView,
    PutDocumentResponse, SearchQuery, SearchRequest, SearchResponse, SimilarQuery, SimilarResponse,
    Status, Usage,
};
use super::{ApiError, AppState};
use crate::embedding::Role;
use crate::service::{ErrorCode, Service, SimilarRequest, DEFAULT_COLLECTION};

type Answer<T> = Result<Json<T>, ApiError>;
type Shared = State<Arc<AppState>>;

/// Liveness: 200 while the process runs, even before the index is ready.
#[utoipa::path(get, path = "/health", tag = "service",
    responses((status = 200, description = "The process is up.", body = Status)))]
pub async fn health() -> Json<Status> {
    Json(Status {
        status: "ok".into(),
    })
}

/// Readiness: 200 once the model is loaded and the collections indexed and while the store
/// answers; 503 `not_ready` before, `storage_unavailable` while a database is unreachable.
#[utoipa::path(get, path = "/ready", tag = "service", responses(
    (status = 200, description = "Searches and writes will be answered.", body = Status),
    (status = 503, description = "`not_ready`: the index is still being built; `storage_unavailable`: the database does not answer.", body = ErrorBody),
))]
pub async fn ready(State(state): Shared) -> Answer<Status> {
    state.service()?.check_store().await?;
    Ok(Json(Status {
        status: "ready".into(),
    }))
}

/// What is served: version, model, and the size of the indexes.
#[utoipa::path(get, path = "/v1/info", tag = "service", responses(
    (status = 200, body = Info),
    (status = 503, description = "`not_ready`", body = ErrorBody),
))]
pub async fn info(State(state): Shared) -> Answer<Info> {
    let service = state.service()?;
    let totals = service.totals();
    Ok(Json(Info {
        version: env!("CARGO_PKG_VERSION").into(),
        model: service.model().into(),
        collections: totals.collections,
        passages: totals.passages,
        documents: totals.documents,
        index_bytes: totals.index_bytes,
        kernels: crate::cpu::kernels().into(),
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
    State(state): Shared,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> Answer<SearchResponse> {
    let Query(query) = query?;
    search(&state, DEFAULT_COLLECTION, query.into()).await
}

/// Search the corpus of news passages with a natural-language question.
///
/// Returns the passages that best answer `query`, best first. Each result has the passage
/// `text`, its `document` (title, date, source), a `score`, and a `citation` (file and lines)
/// to show the user. Ask in Chinese or English; `filter` narrows by document, title, date or
/// metadata. Add `context` to also get the results as a numbered block, ready to paste into a
/// prompt, with the citations its numbers refer to.
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
    State(state): Shared,
    Body(body): Body<SearchRequest>,
) -> Answer<SearchResponse> {
    search(&state, DEFAULT_COLLECTION, body).await
}

/// Search one collection (query string form).
#[utoipa::path(get, path = "/v1/collections/{collection}/search", tag = "search",
    operation_id = "collectionSearchGet",
    params(("collection" = String, Path, description = "The collection's name."), SearchQuery),
    responses(
    (status = 200, description = "The best passages, best first.", body = SearchResponse),
    (status = 400, description = "`empty_query`: `q` is empty.", body = ErrorBody),
    (status = 404, description = "`unknown_collection`", body = ErrorBody),
    (status = 422, description = "`invalid_request`: a parameter is unknown or out of range.", body = ErrorBody),
    (status = 503, description = "`not_ready` or `overloaded`: retry shortly.", body = ErrorBody),
))]
pub async fn collection_search_get(
    State(state): Shared,
    collection: Result<Path<String>, PathRejection>,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> Answer<SearchResponse> {
    let Path(collection) = collection?;
    let Query(query) = query?;
    search(&state, &collection, query.into()).await
}

/// Search one collection with a natural-language question (the body of `POST /v1/search`).
#[utoipa::path(post, path = "/v1/collections/{collection}/search", tag = "search",
    operation_id = "collectionSearch",
    params(("collection" = String, Path, description = "The collection's name.")),
    request_body = SearchRequest, responses(
    (status = 200, description = "The best passages, best first.", body = SearchResponse),
    (status = 400, description = "`empty_query`: the query is empty.", body = ErrorBody),
    (status = 404, description = "`unknown_collection`", body = ErrorBody),
    (status = 413, description = "`payload_too_large`", body = ErrorBody),
    (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
    (status = 422, description = "`malformed_json` or `invalid_request`", body = ErrorBody),
    (status = 503, description = "`not_ready` or `overloaded`: retry shortly.", body = ErrorBody),
))]
pub async fn collection_search_post(
    State(state): Shared,
    collection: Result<Path<String>, PathRejection>,
    Body(body): Body<SearchRequest>,
) -> Answer<SearchResponse> {
    let Path(collection) = collection?;
    search(&state, &collection, body).await
}

/// Answers a search over `collection`.
pub(super) async fn search(
    state: &AppState,
    collection: &str,
    request: SearchRequest,
) -> Answer<SearchResponse> {
    let service = state.service()?;
    let request = request.into_domain().map_err(ApiError::invalid)?;
    let outcome = service.search(collection, request).await?;
    Ok(Json(outcome.into()))
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
    State(state): Shared,
    id: Result<Path<String>, PathRejection>,
) -> Answer<PassageView> {
    let Path(id) = id?;
    passage_of(&state, DEFAULT_COLLECTION, &id)
}

/// Get one passage of a collection by id.
#[utoipa::path(get, path = "/v1/collections/{collection}/passages/{id}", tag = "search",
    operation_id = "getCollectionPassage",
    params(("collection" = String, Path, description = "The collection's name."),
        ("id" = String, Path, description = "A passage id from a search result.")),
    responses(
    (status = 200, body = PassageView),
    (status = 404, description = "`unknown_collection` or `unknown_passage`", body = ErrorBody),
    (status = 503, description = "`not_ready`", body = ErrorBody),
))]
pub async fn collection_passage(
    State(state): Shared,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Answer<PassageView> {
    let Path((collection, id)) = path?;
    passage_of(&state, &collection, &id)
}

fn passage_of(state: &AppState, collection: &str, id: &str) -> Answer<PassageView> {
    let passage = state.service()?.passage(collection, id)?;
    Ok(Json(PassageView::from(&*passage)))
}

/// Find the passages closest in meaning to one passage (itself excluded): "more like this".
#[utoipa::path(get, path = "/v1/passages/{id}/similar", tag = "search", operation_id = "similarPassages",
    params(("id" = String, Path, description = "A passage id from a search result."), SimilarQuery),
    responses(
    (status = 200, description = "The closest passages, best first.", body = SimilarResponse),
    (status = 404, description = "`unknown_passage`: no passage has this id.", body = ErrorBody),
    (status = 422, description = "`invalid_request`: a parameter is unknown or out of range.", body = ErrorBody),
    (status = 503, description = "`not_ready` or `overloaded`", body = ErrorBody),
))]
pub async fn similar(
    State(state): Shared,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<SimilarQuery>, QueryRejection>,
) -> Answer<SimilarResponse> {
    let Path(id) = id?;
    let Query(query) = query?;
    similar_to(&state, DEFAULT_COLLECTION, &id, query).await
}

/// Find the passages of a collection closest in meaning to one of its passages.
#[utoipa::path(get, path = "/v1/collections/{collection}/passages/{id}/similar", tag = "search",
    operation_id = "collectionSimilarPassages",
    params(("collection" = String, Path, description = "The collection's name."),
        ("id" = String, Path, description = "A passage id from a search result."), SimilarQuery),
    responses(
    (status = 200, description = "The closest passages, best first.", body = SimilarResponse),
    (status = 404, description = "`unknown_collection` or `unknown_passage`", body = ErrorBody),
    (status = 422, description = "`invalid_request`", body = ErrorBody),
    (status = 503, description = "`not_ready` or `overloaded`", body = ErrorBody),
))]
pub async fn collection_similar(
    State(state): Shared,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<SimilarQuery>, QueryRejection>,
) -> Answer<SimilarResponse> {
    let Path((collection, id)) = path?;
    let Query(query) = query?;
    similar_to(&state, &collection, &id, query).await
}

pub(super) async fn similar_to(
    state: &AppState,
    collection: &str,
    id: &str,
    query: SimilarQuery,
) -> Answer<SimilarResponse> {
    let request = SimilarRequest {
        top_k: query.top_k,
        min_score: query.min_score,
        ef_search: query.ef_search,
        ..SimilarRequest::default()
    };
    let outcome = state.service()?.similar(collection, id, request).await?;
    Ok(Json(outcome.into()))
}

/// List the collections with their sizes.
#[utoipa::path(get, path = "/v1/collections", tag = "collections", operation_id = "listCollections",
    responses(
    (status = 200, body = CollectionList),
    (status = 503, description = "`not_ready` or `storage_unavailable`", body = ErrorBody),
))]
pub async fn list_collections(State(state): Shared) -> Answer<CollectionList> {
    let service = state.service()?;
    let collections = service.collections().await?;
    Ok(Json(CollectionList {
        collections: collections
            .into_iter()
            .map(|summary| CollectionView::new(summary, service.model()))
            .collect(),
    }))
}

/// Describe one collection: documents, passages, bytes and model.
#[utoipa::path(get, path = "/v1/collections/{collection}", tag = "collections",
    operation_id = "getCollection",
    params(("collection" = String, Path, description = "The collection's name.")),
    responses(
    (status = 200, body = CollectionView),
    (status = 404, description = "`unknown_collection`", body = ErrorBody),
    (status = 422, description = "`invalid_name`", body = ErrorBody),
    (status = 503, description = "`not_ready`", body = ErrorBody),
))]
pub async fn get_collection(
    State(state): Shared,
    collection: Result<Path<String>, PathRejection>,
) -> Answer<CollectionView> {
    let Path(collection) = collection?;
    let service = state.service()?;
    let summary = service.collection_summary(&collection).await?;
    Ok(Json(CollectionView::new(summary, service.model())))
}

/// Create a collection (idempotent: 201 when created, 200 when it already existed).
#[utoipa::path(put, path = "/v1/collections/{collection}", tag = "collections",
    operation_id = "createCollection",
    params(("collection" = String, Path, description = "1 to 64 of `a-z 0-9 _ -`.")),
    responses(
    (status = 200, description = "It already existed.", body = CollectionView),
    (status = 201, description = "Created.", body = CollectionView),
    (status = 403, description = "`forbidden`: a read-only key.", body = ErrorBody),
    (status = 422, description = "`invalid_name`", body = ErrorBody),
    (status = 503, description = "`not_ready` or `storage_unavailable`", body = ErrorBody),
))]
pub async fn put_collection(
    State(state): Shared,
    collection: Result<Path<String>, PathRejection>,
) -> Result<(StatusCode, Json<CollectionView>), ApiError> {
    let Path(collection) = collection?;
    let service = state.service()?;
    let created = service.create_collection(&collection).await?;
    let summary = service.collection_summary(&collection).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(CollectionView::new(summary, service.model()))))
}

/// Delete a collection with all its documents.
#[utoipa::path(delete, path = "/v1/collections/{collection}", tag = "collections",
    operation_id = "deleteCollection",
    params(("collection" = String, Path, description = "The collection's name.")),
    responses(
    (status = 200, body = Deleted),
    (status = 403, description = "`forbidden`: a read-only key.", body = ErrorBody),
    (status = 404, description = "`unknown_collection`", body = ErrorBody),
    (status = 503, description = "`not_ready` or `storage_unavailable`", body = ErrorBody),
))]
pub async fn delete_collection(
    State(state): Shared,
    collection: Result<Path<String>, PathRejection>,
) -> Answer<Deleted> {
    let Path(collection) = collection?;
    state.service()?.delete_collection(&collection).await?;
    Ok(Json(Deleted {
        id: collection,
        deleted: true,
        passages: None,
    }))
}

/// Documents listed per page when the caller does not say.
const DEFAULT_PAGE_SIZE: usize = 100;

/// List a collection's documents (without their texts), a page at a time, by id.
#[utoipa::path(get, path = "/v1/collections/{collection}/documents", tag = "documents",
    operation_id = "listDocuments",
    params(("collection" = String, Path, description = "The collection's name."), DocumentListQuery),
    responses(
    (status = 200, body = DocumentList),
    (status = 404, description = "`unknown_collection`", body = ErrorBody),
    (status = 422, description = "`invalid_request`: `limit` out of range.", body = ErrorBody),
    (status = 503, description = "`not_ready` or `storage_unavailable`", body = ErrorBody),
))]
pub async fn list_documents(
    State(state): Shared,
    collection: Result<Path<String>, PathRejection>,
    query: Result<Query<DocumentListQuery>, QueryRejection>,
) -> Answer<DocumentList> {
    let Path(collection) = collection?;
    let Query(query) = query?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE_SIZE);
    let page = state
        .service()?
        .documents(&collection, query.cursor, limit)
        .await?;
    Ok(Json(DocumentList {
        documents: page.documents.iter().map(DocumentSummary::from).collect(),
        next_cursor: page.next,
    }))
}

/// Get a document: its fields, metadata, text and passages.
#[utoipa::path(get, path = "/v1/collections/{collection}/documents/{doc_id}", tag = "documents",
    operation_id = "getDocument",
    params(("collection" = String, Path, description = "The collection's name."),
        ("doc_id" = String, Path, description = "The document's id (percent-encode `/` and other reserved characters).")),
    responses(
    (status = 200, body = DocumentView),
    (status = 404, description = "`unknown_collection` or `unknown_document`", body = ErrorBody),
    (status = 422, description = "`invalid_name`", body = ErrorBody),
    (status = 503, description = "`not_ready` or `storage_unavailable`", body = ErrorBody),
))]
pub async fn get_document(
    State(state): Shared,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Answer<DocumentView> {
    let Path((collection, id)) = path?;
    let detail = state.service()?.document(&collection, &id).await?;
    Ok(Json(detail.into()))
}

/// Create or replace a document. It is cut into passages, embedded (text embedded before is
/// reused) and stored; the answer comes once it is durable and searchable. A replaced
/// document's passages are swapped at once: a search sees the old version or the new one. The
/// body is JSON, or a file: `text/plain` (in any common encoding: a `charset` parameter is
/// trusted, else it is detected), `text/markdown`, `application/x-ndjson`, or
/// `application/octet-stream` with the format known by the id's extension; its title, date
/// and other fields then come in the query string.
#[utoipa::path(put, path = "/v1/collections/{collection}/documents/{doc_id}", tag = "documents",
    operation_id = "putDocument",
    params(("collection" = String, Path, description = "The collection's name."),
        ("doc_id" = String, Path, description = "The document's id: up to 512 bytes, no control characters (percent-encode reserved characters).")),
    params(DocumentFileQuery),
    request_body(content(
        (DocumentBody = "application/json"),
        (String = "text/plain"),
        (String = "text/markdown"),
        (Vec<u8> = "application/octet-stream"),
    )),
    responses(
    (status = 200, description = "Replaced.", body = PutDocumentResponse),
    (status = 201, description = "Created.", body = PutDocumentResponse),
    (status = 403, description = "`forbidden`: a read-only key.", body = ErrorBody),
    (status = 404, description = "`unknown_collection`", body = ErrorBody),
    (status = 409, description = "`passage_id_conflict`: a passage id belongs to another document.", body = ErrorBody),
    (status = 413, description = "`payload_too_large`: over the document limit (16 MiB by default).", body = ErrorBody),
    (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
    (status = 422, description = "`malformed_json`, `invalid_request`, `invalid_name`, `no_passages` (the text has nothing to index) or `unreadable_document` (a file that is not of its format: binary data as text, text that cannot be decoded whole).", body = ErrorBody),
    (status = 503, description = "`not_ready`, `overloaded` or `storage_unavailable`: nothing was written.", body = ErrorBody),
))]
pub async fn put_document(
    State(state): Shared,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<DocumentFileQuery>, QueryRejection>,
    request: axum::extract::Request,
) -> Result<(StatusCode, Json<PutDocumentResponse>), ApiError> {
    let Path((collection, id)) = path?;
    let Query(fields) = query?;
    let document = super::import::document_body(&id, fields, request).await?;
    let outcome = state
        .service()?
        .put_document(&collection, &id, document)
        .await?;
    let status = if outcome.replaced {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(outcome.into())))
}

/// Delete a document and its passages.
#[utoipa::path(delete, path = "/v1/collections/{collection}/documents/{doc_id}", tag = "documents",
    operation_id = "deleteDocument",
    params(("collection" = String, Path, description = "The collection's name."),
        ("doc_id" = String, Path, description = "The document's id.")),
    responses(
    (status = 200, body = Deleted),
    (status = 403, description = "`forbidden`: a read-only key.", body = ErrorBody),
    (status = 404, description = "`unknown_collection` or `unknown_document`", body = ErrorBody),
    (status = 503, description = "`not_ready` or `storage_unavailable`: nothing was deleted.", body = ErrorBody),
))]
pub async fn delete_document(
    State(state): Shared,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Answer<Deleted> {
    let Path((collection, id)) = path?;
    let passages = state.service()?.delete_document(&collection, &id).await?;
    Ok(Json(Deleted {
        id,
        deleted: true,
        passages: Some(passages),
    }))
}

/// Import many documents at once, as a background job.
///
/// The body is NDJSON (`Content-Type: application/x-ndjson`), one document per line:
/// `{"id", "text", "title"?, "date"?, "source"?, "url"?, "metadata"?, "format"?}`, or a
/// `multipart/form-data` upload of `.jsonl` files (the same lines) and `.txt` / `.md` files (each
/// one document, named after the file). Answers 202 with the job at once; lines that are not
/// documents are reported with their line numbers, the others are written in batches (an
/// existing document with the same id is replaced). The job survives a restart and resumes
/// where it stopped. Follow it with `GET /v1/jobs/{id}`.
#[utoipa::path(post, path = "/v1/collections/{collection}/documents:import", tag = "documents",
    operation_id = "importDocuments",
    params(("collection" = String, Path, description = "The collection's name.")),
    request_body(content = String, content_type = "application/x-ndjson",
        description = "One JSON document per line (or `multipart/form-data` with files).",
        example = json!("{\"id\": \"a\", \"text\": \"第一篇文档的正文。\"}\n{\"id\": \"b\", \"text\": \"第二篇。\", \"metadata\": {\"lang\": \"zh\"}}")),
    responses(
    (status = 202, description = "Accepted: the job, queued.", body = JobView),
    (status = 403, description = "`forbidden`: a read-only key.", body = ErrorBody),
    (status = 404, description = "`unknown_collection`", body = ErrorBody),
    (status = 413, description = "`payload_too_large`: over the import limit (256 MiB by default).", body = ErrorBody),
    (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
    (status = 422, description = "`invalid_request`: no lines, not UTF-8, an unsupported file type.", body = ErrorBody),
    (status = 503, description = "`not_ready` or `storage_unavailable`", body = ErrorBody),
))]
pub async fn import_documents(
    State(state): Shared,
    collection: Result<Path<String>, PathRejection>,
    request: axum::extract::Request,
) -> Result<
    (
        StatusCode,
        [(axum::http::HeaderName, String); 1],
        Json<JobView>,
    ),
    ApiError,
> {
    let Path(collection) = collection?;
    let service = state.service()?;
    let lines = super::import::import_lines(request, state.limits.max_import_bytes).await?;
    let record = service.submit_import(&collection, lines).await?;
    let report = service.job(&record.id).await?;
    let location = format!("/v1/jobs/{}", record.id);
    Ok((
        StatusCode::ACCEPTED,
        [(axum::http::header::LOCATION, location)],
        Json(report.into()),
    ))
}

/// Follow an import job: documents done and refused (with line numbers), passages, tokens/s.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "documents", operation_id = "getJob",
    params(("id" = String, Path, description = "The job id an import answered with.")),
    responses(
    (status = 200, body = JobView),
    (status = 404, description = "`unknown_job`", body = ErrorBody),
    (status = 503, description = "`not_ready`", body = ErrorBody),
))]
pub async fn job(State(state): Shared, id: Result<Path<String>, PathRejection>) -> Answer<JobView> {
    let Path(id) = id?;
    Ok(Json(state.service()?.job(&id).await?.into()))
}

/// OpenAI-compatible embeddings: the served model's vectors for up to 128 texts.
///
/// Texts are embedded as passages (texts to index) unless `input_type` is `query` (questions).
#[utoipa::path(post, path = "/v1/embeddings", tag = "embeddings", operation_id = "createEmbeddings",
    request_body = EmbeddingsRequest, responses(
    (status = 200, body = EmbeddingsResponse),
    (status = 400, description = "`empty_input`: an input is empty.", body = ErrorBody),
    (status = 413, description = "`payload_too_large`: the body is over 4 MiB.", body = ErrorBody),
    (status = 415, description = "`unsupported_media_type`: send `Content-Type: application/json`.", body = ErrorBody),
    (status = 422, description = "`malformed_json` or `invalid_request`: more than 128 inputs, or `dimensions` other than the model's; `token_ids_not_supported`: the input is token ids, not text.", body = ErrorBody),
    (status = 503, description = "`not_ready` or `overloaded`", body = ErrorBody),
))]
pub async fn embeddings(
    State(state): Shared,
    Body(body): Body<EmbeddingsRequest>,
) -> Answer<EmbeddingsResponse> {
    let request = body;
    let service: &Service = state.service()?;
    if let Some(dimensions) = request.dimensions {
        if dimensions != service.model().dimensions {
            return Err(ApiError::invalid(format!(
                "dimensions {dimensions} is not available: the model's vectors have {}",
                service.model().dimensions
            )));
        }
    }
    let role = request.input_type.map_or(Role::Passage, Role::from);
    let texts = request.input.into_texts().ok_or_else(|| {
        ApiError::new(
            ErrorCode::TokenIdsNotSupported,
            "input is token ids; send the texts themselves: wenda tokenizes with its own model's \
             tokenizer (LangChain's OpenAIEmbeddings tokenizes first unless given \
             check_embedding_ctx_length=False)",
        )
    })?;
    let embedded = service.embed(role, texts).await?;
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
        model: service.model().id.clone(),
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
        ErrorCode::NoRoute,
        format!("no route for {method} {}", uri.path()),
    )
}

pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("{} does not accept {method}", uri.path()),
    )
}
