//! The pages people open in a browser: the search page at `/` and the API docs at `/docs`.
//! Each is one HTML file embedded in the binary, with inline script and styles, that talks only
//! to this server: nothing is fetched from elsewhere, which the content security policy enforces.

use axum::http::{header, HeaderValue};
use axum::response::{Html, IntoResponse, Response};

/// A page that renders the OpenAPI document for people.
#[utoipa::path(get, path = "/docs", tag = "service",
    responses((status = 200, description = "HTML.", content_type = "text/html")))]
pub async fn docs_page() -> Response {
    page(include_str!("page/docs.html"))
}

/// The search page: a search box, results with the question's words highlighted, and
/// related passages. Works in Chinese and English, on phones too.
#[utoipa::path(get, path = "/", tag = "service",
    responses((status = 200, description = "HTML.", content_type = "text/html")))]
pub async fn search_page() -> Response {
    page(include_str!("page/index.html"))
}

/// An embedded page, with headers that keep it to this server.
fn page(html: &'static str) -> Response {
    let mut response = Html(html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             connect-src 'self'; img-src data:; base-uri 'none'; form-action 'self'; \
             frame-ancestors 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}
