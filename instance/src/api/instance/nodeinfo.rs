//! NodeInfo 2.0 and 2.1 (<https://nodeinfo.diaspora.software/>): how crawlers, peers and
//! some clients learn what software runs here. Elk fetches `/nodeinfo/2.0` directly while
//! Phanpy follows `/.well-known/nodeinfo`, so both paths must answer.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use fedi_config::Registrations;
use serde_json::{Value, json};

use super::settings::Site;
use super::{SOURCE_URL, cached, stats};
use crate::api::ApiError;
use crate::state::AppState;

const SCHEMA_20: &str = "http://nodeinfo.diaspora.software/ns/schema/2.0";
const SCHEMA_21: &str = "http://nodeinfo.diaspora.software/ns/schema/2.1";
/// Mastodon caches its NodeInfo for half an hour; crawlers poll it.
const MAX_AGE: u32 = 1800;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/.well-known/nodeinfo", get(discovery))
        .route(
            "/nodeinfo/2.0",
            get(|s: State<AppState>| document(s, "2.0")),
        )
        .route(
            "/nodeinfo/2.1",
            get(|s: State<AppState>| document(s, "2.1")),
        )
}

async fn discovery(State(state): State<AppState>) -> Response {
    let base = state.base_url();
    cached(
        MAX_AGE,
        json!({
            "links": [
                {"rel": SCHEMA_20, "href": format!("{base}/nodeinfo/2.0")},
                {"rel": SCHEMA_21, "href": format!("{base}/nodeinfo/2.1")},
            ]
        }),
    )
}

async fn document(
    State(state): State<AppState>,
    version: &'static str,
) -> Result<Response, ApiError> {
    let db = state.db.reader();
    let (site, usage) = tokio::try_join!(Site::load(db, &state.config.domain), stats::usage(db))?;
    let mut response = cached(
        MAX_AGE,
        body(version, &site, usage, state.config.registrations),
    );
    // The spec names the schema in the media type; a bare application/json also parses.
    let content_type = format!("application/json; profile=\"{}#\"", schema(version));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&content_type).expect("an ASCII header value"),
    );
    Ok(response.into_response())
}

fn schema(version: &str) -> &'static str {
    if version == "2.1" {
        SCHEMA_21
    } else {
        SCHEMA_20
    }
}

fn body(version: &str, site: &Site, usage: stats::Usage, registrations: Registrations) -> Value {
    let mut software = json!({"name": "fedi", "version": env!("CARGO_PKG_VERSION")});
    if version == "2.1" {
        software["repository"] = json!(SOURCE_URL);
        software["homepage"] = json!(SOURCE_URL);
    }
    json!({
        "version": version,
        "software": software,
        "protocols": ["activitypub"],
        "services": {"outbound": [], "inbound": []},
        "usage": {
            "users": {
                "total": usage.users,
                "activeMonth": usage.active_month,
                "activeHalfyear": usage.active_halfyear,
            },
            "localPosts": usage.local_posts,
        },
        // As Mastodon: sign-ups that wait for approval are still open.
        "openRegistrations": registrations != Registrations::Closed,
        "metadata": {
            "nodeName": site.title,
            "nodeDescription": site.description,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_follow_their_schema_version() {
        let site = Site::defaults("example.org");
        let usage = stats::Usage {
            users: 3,
            active_month: 2,
            active_halfyear: 3,
            local_posts: 0,
            domains: 0,
        };
        let v20 = body("2.0", &site, usage, Registrations::Approval);
        assert_eq!(v20["version"], "2.0");
        assert_eq!(v20["openRegistrations"], true);
        assert!(v20["software"].get("repository").is_none());
        assert_eq!(v20["usage"]["users"]["activeMonth"], 2);
        assert_eq!(v20["metadata"]["nodeName"], "example.org");
        let v21 = body("2.1", &site, usage, Registrations::Closed);
        assert_eq!(v21["version"], "2.1");
        assert_eq!(v21["openRegistrations"], false);
        assert_eq!(v21["software"]["repository"], SOURCE_URL);
        // NodeInfo 2.0 restricts the software name to [a-z0-9-].
        let name = v20["software"]["name"].as_str().unwrap();
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        );
    }
}
