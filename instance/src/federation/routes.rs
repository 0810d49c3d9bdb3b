//! The federation endpoints the api role serves: WebFinger, host-meta, actors, statuses,
//! collections, inboxes.

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::Value;

use super::authorized_fetch::{self, FetchAuthError, Fetcher};
use super::documents::actor::{self, LocalAccount};
use super::documents::collections::{self, PageQuery, Relation};
use super::documents::{note, webfinger};
use super::{inbox, keys};
use crate::api::ApiError;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/.well-known/webfinger", get(webfinger_handler))
        .route("/.well-known/host-meta", get(host_meta))
        .route("/actor", get(instance_actor))
        .route("/users/{username}", get(person))
        .route("/users/{username}/outbox", get(outbox))
        .route("/users/{username}/followers", get(followers))
        .route("/users/{username}/following", get(following))
        .route("/users/{username}/collections/featured", get(featured))
        .route("/users/{username}/statuses/{id}", get(status))
        .route(
            "/users/{username}/statuses/{id}/activity",
            get(status_activity),
        )
        .merge(
            Router::new()
                .route("/inbox", post(inbox::shared))
                .route("/actor/inbox", post(inbox::shared))
                .route("/users/{username}/inbox", post(inbox::personal))
                .layer(DefaultBodyLimit::max(inbox::MAX_BODY)),
        )
}

/// Why a document is not served: the API's errors, or the fetcher's signature.
enum Refusal {
    Api(ApiError),
    Auth(FetchAuthError),
}

impl From<ApiError> for Refusal {
    fn from(e: ApiError) -> Self {
        Refusal::Api(e)
    }
}

impl From<FetchAuthError> for Refusal {
    fn from(e: FetchAuthError) -> Self {
        Refusal::Auth(e)
    }
}

impl From<sqlx::Error> for Refusal {
    fn from(e: sqlx::Error) -> Self {
        Refusal::Api(e.into())
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Api(e) => e.into_response(),
            Refusal::Auth(e) => e.into_response(),
        }
    }
}

const ACTIVITY_JSON: &str = "application/activity+json; charset=utf-8";

/// A JSON document with the ActivityPub content type; varies on Accept because the same
/// URL answers browsers with a redirect.
fn activity_json(doc: Value) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(ACTIVITY_JSON),
            ),
            (header::VARY, HeaderValue::from_static("Accept")),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("max-age=60, public"),
            ),
        ],
        doc.to_string(),
    )
        .into_response()
}

/// A document, cached publicly unless secure mode serves it by signer (Mastodon: not
/// public then, or a shared cache would hand it to anyone).
fn serve(fetcher: &Fetcher, doc: Value) -> Response {
    let mut response = activity_json(doc);
    if fetcher.secure() {
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("max-age=60, private"),
        );
    }
    response
}

/// Whether the client asked for ActivityPub JSON: `application/activity+json`,
/// `application/ld+json` (Mastodon's fetchers add the ActivityStreams profile, others do
/// not), or plain JSON. Anything else (a browser's `text/html`) gets the web page.
pub fn wants_activitypub(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|range| {
            range
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .any(|essence| {
            matches!(
                essence.as_str(),
                "application/activity+json" | "application/ld+json" | "application/json"
            )
        })
}

/// The web page for browsers: the profile or status path of the web client.
fn to_web(path: String) -> Response {
    let mut response = Redirect::to(&path).into_response();
    response
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept"));
    response
}

#[derive(Deserialize)]
struct WebfingerQuery {
    #[serde(default)]
    resource: String,
}

async fn webfinger_handler(
    State(state): State<AppState>,
    Query(q): Query<WebfingerQuery>,
) -> Result<Response, ApiError> {
    let resource = webfinger::parse_resource(&q.resource, &state.config.domain)
        .map_err(|e| ApiError::BadRequest(e.into()))?
        .ok_or(ApiError::NotFound)?;
    let jrd = match resource {
        webfinger::Resource::InstanceActor => webfinger::instance_actor_jrd(&state),
        webfinger::Resource::Account(name) => {
            let account = actor::find_local(&state, &name)
                .await?
                .ok_or(ApiError::NotFound)?;
            webfinger::account_jrd(&state, &account.username)
        }
    };
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/jrd+json; charset=utf-8"),
            ),
            (
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("max-age=259200, public"),
            ),
        ],
        jrd.to_string(),
    )
        .into_response())
}

async fn host_meta(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/xrd+xml; charset=utf-8"),
        )],
        webfinger::host_meta(&state),
    )
        .into_response()
}

async fn instance_actor(State(state): State<AppState>) -> Result<Response, ApiError> {
    let key = keys::instance_actor_key(&state.db)
        .await
        .map_err(ApiError::Internal)?;
    Ok(activity_json(actor::instance_actor(
        &state,
        &key.public_pem,
    )))
}

async fn local_account(state: &AppState, username: &str) -> Result<LocalAccount, ApiError> {
    actor::find_local(state, username)
        .await?
        .ok_or(ApiError::NotFound)
}

async fn person(
    State(state): State<AppState>,
    Path(username): Path<String>,
    headers: HeaderMap,
    fetcher: Fetcher,
) -> Result<Response, Refusal> {
    let account = local_account(&state, &username).await?;
    if !wants_activitypub(&headers) {
        return Ok(to_web(format!("/@{}", account.username)));
    }
    let key = keys::account_key(&state.db, account.id)
        .await
        .map_err(ApiError::Internal)?;
    let doc = actor::person(&state, &account, &key.public_pem);
    if fetcher.full_access() {
        Ok(serve(&fetcher, doc))
    } else {
        Ok(serve(&fetcher, authorized_fetch::reduced_actor(&doc)))
    }
}

async fn outbox(
    State(state): State<AppState>,
    Path(username): Path<String>,
    Query(q): Query<PageQuery>,
    fetcher: Fetcher,
) -> Result<Response, Refusal> {
    fetcher.require()?;
    let account = local_account(&state, &username).await?;
    Ok(serve(
        &fetcher,
        collections::outbox(&state, &account, &q).await?,
    ))
}

async fn followers(
    State(state): State<AppState>,
    Path(username): Path<String>,
    Query(q): Query<PageQuery>,
    fetcher: Fetcher,
) -> Result<Response, Refusal> {
    fetcher.require()?;
    let account = local_account(&state, &username).await?;
    Ok(serve(
        &fetcher,
        collections::accounts(&state, &account, Relation::Followers, &q).await?,
    ))
}

async fn following(
    State(state): State<AppState>,
    Path(username): Path<String>,
    Query(q): Query<PageQuery>,
    fetcher: Fetcher,
) -> Result<Response, Refusal> {
    fetcher.require()?;
    let account = local_account(&state, &username).await?;
    Ok(serve(
        &fetcher,
        collections::accounts(&state, &account, Relation::Following, &q).await?,
    ))
}

async fn featured(
    State(state): State<AppState>,
    Path(username): Path<String>,
    fetcher: Fetcher,
) -> Result<Response, Refusal> {
    fetcher.require()?;
    let account = local_account(&state, &username).await?;
    Ok(serve(
        &fetcher,
        collections::featured(&state, &account).await?,
    ))
}

/// A status readable without authentication: public or unlisted. Followers-only and direct
/// posts are never served to an anonymous fetch (Pixelfed CVE-2025-30741 leaked them);
/// peers learn of them by delivery.
async fn public_status(
    state: &AppState,
    username: &str,
    id: &str,
) -> Result<note::StatusRow, ApiError> {
    let id: i64 = id.parse().map_err(|_| ApiError::NotFound)?;
    let row = note::find(state, username, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    match note::Visibility::parse(&row.visibility) {
        Some(note::Visibility::Public | note::Visibility::Unlisted) => Ok(row),
        _ => Err(ApiError::NotFound),
    }
}

async fn status(
    State(state): State<AppState>,
    Path((username, id)): Path<(String, String)>,
    headers: HeaderMap,
    fetcher: Fetcher,
) -> Result<Response, Refusal> {
    let row = public_status(&state, &username, &id).await?;
    if row.reblog_of_id.is_some() {
        return Err(ApiError::NotFound.into());
    }
    if !wants_activitypub(&headers) {
        return Ok(to_web(format!("/@{}/{}", row.username, row.id)));
    }
    fetcher.require()?;
    let mut doc = note::note(&state, &row).await?;
    doc["@context"] = note::context();
    Ok(serve(&fetcher, doc))
}

async fn status_activity(
    State(state): State<AppState>,
    Path((username, id)): Path<(String, String)>,
    fetcher: Fetcher,
) -> Result<Response, Refusal> {
    fetcher.require()?;
    let row = public_status(&state, &username, &id).await?;
    if row.reblog_of_id.is_some() {
        // The reblogged post must itself be public for its Announce to be shown.
        let reblogged =
            sqlx::query_as::<_, (String,)>("SELECT visibility FROM statuses WHERE id = $1")
                .bind(row.reblog_of_id)
                .fetch_optional(state.db.reader())
                .await?;
        if !matches!(
            reblogged.as_ref().map(|r| r.0.as_str()),
            Some("public" | "unlisted")
        ) {
            return Err(ApiError::NotFound.into());
        }
    }
    let mut doc = note::activity(&state, &row).await?;
    doc["@context"] = note::context();
    Ok(serve(&fetcher, doc))
}
