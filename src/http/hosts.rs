//! Who may reach the API from a browser: the `Host` names it answers, the `Origin`s it
//! accepts writes from, and CORS for browser apps on other origins.
//!
//! A server on loopback is still reachable from any web page the user opens: with DNS
//! rebinding, a page on `evil.example` gets its name pointed at 127.0.0.1 and reads the API
//! as if same-origin; only the `Host` header (`evil.example`) gives it away. So every route
//! answers only the names it is told (loopback names by default), and a request without
//! `Host` (HTTP/1.0 probes; browsers always send one) is let through. A page on another origin
//! can also *send* a form POST to loopback without reading the answer; writes (and every
//! `/mcp` call, as the MCP specification asks) whose `Origin` is neither this server nor a
//! CORS-allowed origin are refused. CORS itself is off unless origins are given.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::ApiError;
use crate::service::ErrorCode;

/// The `Host` names served when none are given.
const LOOPBACK_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// A name clients may address this server by, with or without a port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostName {
    name: String,
    port: Option<u16>,
}

impl HostName {
    /// `name`, `name:port`, `[v6]`, `[v6]:port` or a bare IPv6 address; names compare
    /// case-insensitively.
    fn parse(text: &str) -> Option<Self> {
        let text = text.trim().to_ascii_lowercase();
        if text.is_empty() {
            return None;
        }
        if let Some(rest) = text.strip_prefix('[') {
            let (name, after) = rest.split_once(']')?;
            let port = match after.strip_prefix(':') {
                Some(port) => Some(port.parse().ok()?),
                None if after.is_empty() => None,
                None => return None,
            };
            return Some(Self {
                name: name.to_owned(),
                port,
            });
        }
        match text.rsplit_once(':') {
            // More than one colon and no brackets: a bare IPv6 address.
            Some((name, _)) if name.contains(':') => Some(Self {
                name: text.clone(),
                port: None,
            }),
            Some((name, port)) => Some(Self {
                name: name.to_owned(),
                port: Some(port.parse().ok()?),
            }),
            None => Some(Self {
                name: text,
                port: None,
            }),
        }
    }

    /// Whether a request addressed to `host` is addressed to this name (any port when this
    /// name has none).
    fn admits(&self, host: &Self) -> bool {
        self.name == host.name && self.port.is_none_or(|port| Some(port) == host.port)
    }
}

/// The names and origins this server answers; shared by every request.
#[derive(Debug)]
pub struct Exposure {
    /// `None`: any host (`--allowed-host '*'`).
    hosts: Option<Vec<HostName>>,
    /// Origins of browser apps allowed to call the API (`--cors-origin`); `*` is any.
    cors_origins: Vec<String>,
}

impl Exposure {
    /// `allowed_hosts` as given to `--allowed-host` (empty: loopback names; `*`: any) and
    /// `cors_origins` as given to `--cors-origin` (empty: CORS off).
    pub fn new(allowed_hosts: &[String], cors_origins: &[String]) -> Result<Arc<Self>, String> {
        let hosts = if allowed_hosts.iter().any(|host| host == "*") {
            None
        } else if allowed_hosts.is_empty() {
            Some(
                LOOPBACK_NAMES
                    .iter()
                    .filter_map(|n| HostName::parse(n))
                    .collect(),
            )
        } else {
            let parsed = allowed_hosts
                .iter()
                .map(|host| {
                    HostName::parse(host).ok_or_else(|| format!("bad --allowed-host {host:?}"))
                })
                .collect::<Result<_, _>>()?;
            Some(parsed)
        };
        let cors_origins: Vec<String> = cors_origins
            .iter()
            .map(|origin| origin.trim().trim_end_matches('/').to_ascii_lowercase())
            .collect();
        if let Some(bad) = cors_origins
            .iter()
            .find(|o| *o != "*" && HeaderValue::from_str(o).is_err())
        {
            return Err(format!("bad --cors-origin {bad:?}"));
        }
        Ok(Arc::new(Self {
            hosts,
            cors_origins,
        }))
    }

    /// Whether a request with this `Host` header value is answered.
    pub fn allows_host(&self, host: &str) -> bool {
        let Some(names) = &self.hosts else {
            return true;
        };
        HostName::parse(host).is_some_and(|host| names.iter().any(|name| name.admits(&host)))
    }

    /// Whether any host is answered, so no host can be named in links (`/openapi.json`).
    pub fn any_host(&self) -> bool {
        self.hosts.is_none()
    }

    /// Whether a browser page on `origin` may send this request to a server addressed as
    /// `host`: its own origin, a CORS-allowed one, or one on an allowed name.
    fn allows_origin(&self, origin: &str, host: Option<&str>) -> bool {
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        if self.cors_origins.iter().any(|o| o == "*" || *o == origin) {
            return true;
        }
        let Some(authority) = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
        else {
            return false; // `null` (sandboxed pages, files) and other schemes
        };
        let same_origin = host.is_some_and(|host| host.eq_ignore_ascii_case(authority));
        same_origin || (self.hosts.is_some() && self.allows_host(authority))
    }

    /// The CORS layer, when origins are configured: answers preflights and adds the
    /// `Access-Control-*` headers for those origins.
    pub fn cors(&self) -> Option<CorsLayer> {
        if self.cors_origins.is_empty() {
            return None;
        }
        let origins = if self.cors_origins.iter().any(|o| o == "*") {
            AllowOrigin::any()
        } else {
            AllowOrigin::list(
                self.cors_origins
                    .iter()
                    .filter_map(|o| HeaderValue::from_str(o).ok()),
            )
        };
        Some(
            CorsLayer::new()
                .allow_origin(origins)
                .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    header::HeaderName::from_static("api-key"),
                    header::HeaderName::from_static(super::REQUEST_ID),
                ])
                .expose_headers([
                    header::HeaderName::from_static(super::REQUEST_ID),
                    header::RETRY_AFTER,
                ])
                .max_age(Duration::from_secs(3600)),
        )
    }
}

/// Refuses requests addressed to a name this server does not answer (403
/// `host_not_allowed`), and writes or MCP calls from a foreign page (403 `origin_not_allowed`).
pub async fn check(
    State(exposure): State<Arc<Exposure>>,
    request: Request,
    next: Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .map(|value| value.to_str().unwrap_or("\u{fffd}"));
    if let Some(host) = host {
        if !exposure.allows_host(host) {
            return ApiError::new(
                ErrorCode::HostNotAllowed,
                format!(
                    "this server does not answer to the name {host:?}; start it with \
                     --allowed-host naming it"
                ),
            )
            .into_response();
        }
    }
    let checked = request.uri().path() == "/mcp" || !request.method().is_safe();
    if let (true, Some(origin)) = (checked, request.headers().get(header::ORIGIN)) {
        let origin = origin.to_str().unwrap_or("\u{fffd}");
        if !exposure.allows_origin(origin, host) {
            return ApiError::new(
                ErrorCode::OriginNotAllowed,
                format!(
                    "requests from pages on {origin:?} are not accepted; start the server \
                     with --cors-origin naming it"
                ),
            )
            .into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exposure(hosts: &[&str], origins: &[&str]) -> Arc<Exposure> {
        let owned = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Exposure::new(&owned(hosts), &owned(origins)).unwrap()
    }

    #[test]
    fn loopback_names_on_any_port_by_default() {
        let default = exposure(&[], &[]);
        for host in [
            "localhost",
            "LOCALHOST:8080",
            "127.0.0.1:1",
            "[::1]:8080",
            "[::1]",
        ] {
            assert!(default.allows_host(host), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:8080",
            "127.0.0.2",
            "localhost.evil",
            "",
        ] {
            assert!(!default.allows_host(host), "{host}");
        }
    }

    #[test]
    fn named_hosts_with_and_without_ports() {
        let named = exposure(&["search.example.org", "10.0.0.5:8080", "::1"], &[]);
        assert!(named.allows_host("search.example.org:443"));
        assert!(named.allows_host("10.0.0.5:8080"));
        assert!(!named.allows_host("10.0.0.5:8081"));
        assert!(named.allows_host("[::1]:80"));
        assert!(
            !named.allows_host("localhost"),
            "naming hosts replaces the default"
        );
        assert!(exposure(&["*"], &[]).allows_host("anything.example"));
        assert!(Exposure::new(&["a:notaport".into()], &[]).is_err());
    }

    #[test]
    fn origins_same_site_allowed_or_cors_listed() {
        let default = exposure(&[], &["https://app.example.com/"]);
        assert!(default.allows_origin("http://localhost:8080", Some("localhost:8080")));
        assert!(default.allows_origin("http://127.0.0.1:9000", Some("localhost:8080")));
        assert!(default.allows_origin("https://app.example.com", Some("localhost:8080")));
        assert!(!default.allows_origin("https://evil.example", Some("localhost:8080")));
        assert!(!default.allows_origin("null", Some("localhost:8080")));
        let open = exposure(&["*"], &[]);
        assert!(open.allows_origin("http://a.example:1", Some("a.example:1")));
        assert!(!open.allows_origin("http://evil.example", Some("a.example:1")));
        assert!(exposure(&[], &["*"]).allows_origin("null", None));
    }
}
