//! The web client (`instance/web`, built into `FEDI_WEB_ROOT`) served by the api role at `/`.
//!
//! It is a fallback of the API router: only GET and HEAD, only outside the paths that
//! belong to the API, OAuth, well-known documents, ActivityPub and health checks, and (but
//! for `/assets/`) only for requests that accept HTML, so that API clients keep Mastodon's
//! JSON 404 and peers asking for ActivityPub never get a page. Unknown paths get
//! `index.html`: the client routes them itself.

use std::path::Path;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower_http::services::{ServeDir, ServeFile};

use crate::api::ApiError;
use crate::state::AppState;

/// Paths the server answers itself: a miss there is an API 404, never the web client.
const SERVER_PREFIXES: &[&str] = &[
    "/api",
    "/oauth",
    "/.well-known",
    "/nodeinfo",
    "/users",
    "/inbox",
    "/actor",
    "/auth",
    "/health",
    "/livez",
    "/readyz",
    "/media",
    "/system",
];

/// Vite names every file under `assets/` by its content hash: a URL never changes meaning.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The router's fallback: the web client where it applies, else the JSON 404.
pub async fn fallback(State(state): State<AppState>, request: Request) -> Response {
    if !is_web_request(&request) {
        return ApiError::NotFound.into_response();
    }
    let root = state.config.web_root();
    if !root.join("index.html").is_file() {
        return ApiError::NotFound.into_response();
    }
    let assets = request.uri().path().starts_with("/assets/");
    let served = if assets {
        ServeDir::new(root.join("assets"))
            .append_index_html_on_directories(false)
            .precompressed_br()
            .precompressed_gzip()
            .try_call(strip_assets_prefix(request))
            .await
    } else {
        // Any other path: a file of the root (favicon) or else `index.html` with 200.
        ServeDir::new(&root)
            .append_index_html_on_directories(false)
            .precompressed_br()
            .precompressed_gzip()
            .fallback(
                ServeFile::new(root.join("index.html"))
                    .precompressed_br()
                    .precompressed_gzip(),
            )
            .try_call(request)
            .await
    };
    let response = match served {
        Ok(r) => r.map(Body::new),
        Err(e) => {
            tracing::warn!(error = %e, "reading the web client's files failed");
            return ApiError::NotFound.into_response();
        }
    };
    with_headers(response, assets, &content_security_policy(&state))
}

/// GET or HEAD outside the server's own paths, accepting HTML (assets: anything).
pub fn is_web_request(request: &Request) -> bool {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return false;
    }
    let path = request.uri().path();
    if SERVER_PREFIXES
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")))
    {
        return false;
    }
    if path.starts_with("/assets/") {
        return true;
    }
    request
        .headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let t = t.split(';').next().unwrap_or("").trim();
            t.eq_ignore_ascii_case("text/html") || t.eq_ignore_ascii_case("application/xhtml+xml")
        })
}

fn strip_assets_prefix(mut request: Request) -> Request {
    let rest = request.uri().path()["/assets".len()..].to_owned();
    let pq = match request.uri().query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest,
    };
    if let Ok(uri) = pq.parse() {
        *request.uri_mut() = uri;
    }
    request
}

fn with_headers(mut response: Response, assets: bool, csp: &str) -> Response {
    let cache = if assets && response.status() == StatusCode::OK {
        IMMUTABLE
    } else {
        // index.html names the current hashed assets: revalidate it every time.
        "no-cache"
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(v) = HeaderValue::from_str(csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    response
}

/// No inline script or style, nothing framed, images and media only from here and the
/// media origin, connections only to here and WebSocket servers (the streaming API).
pub fn content_security_policy(state: &AppState) -> String {
    let own = state.base_url();
    let streaming = state.streaming_url();
    let media = state
        .storage
        .as_ref()
        .and_then(|s| origin(&s.public_url("")))
        .unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; \
         img-src 'self' data: blob: {own} {media}; media-src 'self' blob: {own} {media}; \
         connect-src 'self' wss: {streaming}; font-src 'self'; object-src 'none'; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'; manifest-src 'self'"
    )
}

fn origin(url: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()
        .map(|u| u.origin().ascii_serialization())
        .filter(|o| o != "null")
}

/// Logged once at start: an api without the client still serves the API.
pub fn check_root(root: &Path) {
    if root.join("index.html").is_file() {
        tracing::info!(root = %root.display(), "serving the web client");
    } else {
        tracing::warn!(
            root = %root.display(),
            "no web client here (index.html missing): `/` answers 404; build it with `make web` \
             and set FEDI_WEB_ROOT"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: Method, path: &str, accept: Option<&str>) -> Request {
        let mut b = Request::builder().method(method).uri(path);
        if let Some(a) = accept {
            b = b.header(header::ACCEPT, a);
        }
        b.body(Body::empty()).unwrap()
    }

    const BROWSER: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

    #[test]
    fn only_browser_navigation_outside_server_paths_gets_the_client() {
        let cases = [
            (Method::GET, "/", Some(BROWSER), true),
            (Method::HEAD, "/@alice", Some(BROWSER), true),
            (Method::GET, "/statuses/1", Some("TEXT/HTML"), true),
            (Method::GET, "/assets/index-abc.js", Some("*/*"), true),
            (Method::GET, "/assets/index-abc.js", None, true),
            (Method::GET, "/", Some("application/json"), false),
            (
                Method::GET,
                "/@alice",
                Some("application/activity+json"),
                false,
            ),
            (Method::GET, "/", None, false),
            (Method::POST, "/", Some(BROWSER), false),
            (Method::GET, "/api/v1/nothing", Some(BROWSER), false),
            (Method::GET, "/api", Some(BROWSER), false),
            (Method::GET, "/oauth/nothing", Some(BROWSER), false),
            (Method::GET, "/.well-known/nothing", Some(BROWSER), false),
            (Method::GET, "/users/alice", Some(BROWSER), false),
            (Method::GET, "/apiary", Some(BROWSER), true),
        ];
        for (method, path, accept, want) in cases {
            assert_eq!(
                is_web_request(&req(method.clone(), path, accept)),
                want,
                "{method} {path} {accept:?}"
            );
        }
    }

    #[test]
    fn origins_drop_paths_and_keep_ports() {
        assert_eq!(
            origin("https://cdn.example.com/media/").as_deref(),
            Some("https://cdn.example.com")
        );
        assert_eq!(
            origin("http://127.0.0.1:8333/bucket/").as_deref(),
            Some("http://127.0.0.1:8333")
        );
        assert_eq!(origin("not a url"), None);
    }
}
