//! The API's self-description: the OpenAPI 3.1 document at `/openapi.json`, generated from the
//! handlers' `#[utoipa::path]` attributes and the wire types, so it cannot drift from the code.
//! The router is built from the same attributes (see [`super::router`]).

use std::sync::Arc;

use axum::extract::Extension;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::server::Server;
use utoipa::openapi::OpenApi as Document;
use utoipa::OpenApi;

use super::error::ErrorBody;
use super::Exposure;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "wenda",
        description = "Question answering over a document collection (Chinese news articles by \
            default): ask a question in Chinese, English or another language and get the passages \
            that answer it, with title, date, source and a citation (file and lines). Documents \
            are added, replaced and deleted through the API while wenda serves, in named \
            collections, and kept durably. Also: a prompt-ready context block for chatbots, \
            related passages, OpenAI-compatible embeddings, an MCP endpoint for AI assistants, \
            and Dify's External Knowledge API. When API keys are configured, send one as \
            `Authorization: Bearer <key>`.",
        license(name = "MIT OR Apache-2.0")
    ),
    tags(
        (name = "answer", description = "Answers with citations: quoted from the documents, or written by the server's LLM from them; OpenAI-compatible chat completions."),
        (name = "search", description = "Find passages that answer a question; related passages."),
        (name = "embeddings", description = "The served model's vectors, OpenAI-compatible."),
        (name = "collections", description = "Named sets of documents, each with its own indexes."),
        (name = "documents", description = "Add, replace, delete, list and import documents."),
        (name = "mcp", description = "Model Context Protocol (Streamable HTTP) for AI assistants."),
        (name = "dify", description = "Dify's External Knowledge API: register `http://host:port/dify`."),
        (name = "service", description = "Health, readiness, what is served, and these pages."),
    ),
    components(schemas(ErrorBody)),
    modifiers(&ApiKeyScheme),
    security(("api_key" = []))
)]
pub struct ApiDoc;

/// Declares the API key (sent as a Bearer token). Each operation states what it needs, as the
/// router guards it: `x-wenda-access` (`public`, `read` or `admin`) and the key's role in its
/// `security` (see `auth::GuardedRouter`); servers without keys ignore it.
struct ApiKeyScheme;

impl utoipa::Modify for ApiKeyScheme {
    fn modify(&self, document: &mut Document) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = document.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A key given to `wenda serve` with --api-key (role `admin`: read and \
                         write) or --read-api-key (role `read`: read only); needed only when the \
                         server has keys.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document, serialised once; the `servers` entry is filled per request.
#[derive(Clone)]
pub struct ServedDocument(pub Arc<Document>);

/// This API's OpenAPI 3.1 document.
#[utoipa::path(get, path = "/openapi.json", tag = "service",
    responses((status = 200, description = "This document.", content_type = "application/json")))]
pub async fn document(
    Extension(document): Extension<ServedDocument>,
    Extension(exposure): Extension<Arc<Exposure>>,
    headers: HeaderMap,
) -> Response {
    let mut document = (*document.0).clone();
    // Tools that call the API from the document (LLM actions) need an absolute server URL;
    // the one the client used is the right one, once it is one this server answers to (a
    // caching proxy must not be able to store a document pointing elsewhere). With any host
    // allowed, no host can be trusted, and the URL stays relative.
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|host| !exposure.any_host() && exposure.allows_host(host));
    let url = match host {
        Some(host) => {
            let scheme = match headers.get("x-forwarded-proto").map(|h| h.as_bytes()) {
                Some(b"https") => "https",
                _ => "http",
            };
            format!("{scheme}://{host}")
        }
        None => "/".to_owned(),
    };
    document.servers = Some(vec![Server::new(url)]);
    axum::Json(document).into_response()
}
