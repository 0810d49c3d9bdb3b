//! Content filters, Mastodon's v2 API (`/api/v2/filters` with its keywords and statuses):
//! a user's filters and what they match. Every change sends `filters_changed` on the user's
//! stream, so that connected clients fetch them again; matching statuses carry the results
//! in `Status.filtered` (see [`matching`]).

pub(crate) mod matching;
mod store;
mod v1;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::warn;

use self::store::{Filter, FilterKeyword, FilterStatus, load_filters};
use crate::api::ApiError;
use crate::api::params::{Params, flex};
use crate::auth::{Auth, Scope};
use crate::events::{self, Event, channel};
use crate::state::AppState;

const CONTEXTS: [&str; 5] = ["home", "notifications", "public", "thread", "account"];
const ACTIONS: [&str; 2] = ["warn", "hide"];
const TEXT_MAX: usize = 256;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/filters", get(v1::index))
        .route("/api/v1/filters/{id}", get(v1::show))
        .route("/api/v2/filters", get(index).post(create))
        .route(
            "/api/v2/filters/{id}",
            get(show).put(update).delete(destroy),
        )
        .route(
            "/api/v2/filters/{id}/keywords",
            get(keywords).post(add_keyword),
        )
        .route(
            "/api/v2/filters/keywords/{id}",
            get(show_keyword).put(update_keyword).delete(remove_keyword),
        )
        .route(
            "/api/v2/filters/{id}/statuses",
            get(statuses).post(add_status),
        )
        .route(
            "/api/v2/filters/statuses/{id}",
            get(show_status).delete(remove_status),
        )
}

pub(super) fn me(auth: &Auth, scope: Scope) -> Result<i64, ApiError> {
    auth.require(scope)?;
    Ok(auth.user()?.account_id)
}

pub(super) fn parse_id(id: &str) -> Result<i64, ApiError> {
    id.parse().map_err(|_| ApiError::NotFound)
}

/// Tells the owner's connected clients to fetch their filters again.
async fn changed(state: &AppState, owner: i64) {
    if let Err(e) = events::publish(state, &channel::user(owner), &Event::filters_changed()).await {
        warn!(error = %e, "cannot publish filters_changed");
    }
}

async fn one(state: &AppState, owner: i64, id: i64) -> Result<Filter, ApiError> {
    load_filters(state.db.primary(), owner, Some(id), false)
        .await?
        .pop()
        .ok_or(ApiError::NotFound)
}

pub async fn index(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<Vec<Filter>>, ApiError> {
    let me = me(&auth, "read:filters")?;
    Ok(Json(
        load_filters(state.db.reader(), me, None, false).await?,
    ))
}

pub async fn show(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Filter>, ApiError> {
    let me = me(&auth, "read:filters")?;
    Ok(Json(one(&state, me, parse_id(&id)?).await?))
}

#[derive(Debug, Default, Deserialize)]
pub struct FilterParams {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    context: Option<Value>,
    #[serde(default)]
    filter_action: Option<String>,
    /// Seconds from now; empty or null: never.
    #[serde(default)]
    expires_in: Option<Value>,
    #[serde(default)]
    keywords_attributes: Option<Value>,
}

fn check_title(title: &str) -> Result<String, ApiError> {
    let title = title.trim();
    if title.is_empty() {
        return Err(ApiError::validation("title", "can't be blank"));
    }
    if title.chars().count() > TEXT_MAX {
        return Err(ApiError::validation("title", "is too long"));
    }
    Ok(title.to_string())
}

fn check_context(v: &Value) -> Result<Vec<String>, ApiError> {
    let items: Vec<String> = match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .map(|x| x.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| ApiError::validation("context", "is invalid"))?,
        _ => return Err(ApiError::validation("context", "is invalid")),
    };
    let mut out: Vec<String> = Vec::new();
    for c in items {
        if !CONTEXTS.contains(&c.as_str()) {
            return Err(ApiError::validation("context", "is invalid"));
        }
        if !out.contains(&c) {
            out.push(c);
        }
    }
    if out.is_empty() {
        return Err(ApiError::validation("context", "can't be blank"));
    }
    Ok(out)
}

fn check_action(a: &str) -> Result<String, ApiError> {
    if ACTIONS.contains(&a) {
        Ok(a.to_string())
    } else {
        Err(ApiError::validation("filter_action", "is invalid"))
    }
}

/// `expires_in` as seconds: `None` for never.
fn check_expires_in(v: &Value) -> Result<Option<i64>, ApiError> {
    let bad = || ApiError::validation("expires_in", "is not a number of seconds");
    let secs = match v {
        Value::Null => return Ok(None),
        Value::String(s) if s.trim().is_empty() => return Ok(None),
        Value::String(s) => s.trim().parse::<i64>().map_err(|_| bad())?,
        Value::Number(n) => n.as_i64().ok_or_else(bad)?,
        _ => return Err(bad()),
    };
    // Mastodon's smallest choice is 30 minutes; a non-positive delay would create a filter
    // that never applies. A century bounds the timestamp arithmetic.
    if !(1..=100 * 365 * 24 * 3600).contains(&secs) {
        return Err(bad());
    }
    Ok(Some(secs))
}

/// One entry of `keywords_attributes`.
#[derive(Debug, Default, Deserialize)]
struct KeywordAttrs {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    keyword: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    whole_word: Option<bool>,
    #[serde(default, rename = "_destroy", deserialize_with = "flex::opt_bool")]
    destroy: Option<bool>,
}

/// `keywords_attributes` as a JSON array or a form's `keywords_attributes[0][keyword]`.
fn keyword_attrs(v: Option<Value>) -> Result<Vec<KeywordAttrs>, ApiError> {
    let entries = match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a,
        Some(Value::Object(map)) => {
            let mut items: Vec<(String, Value)> = map.into_iter().collect();
            items.sort_by_key(|(k, _)| (k.parse::<u64>().unwrap_or(u64::MAX), k.clone()));
            items.into_iter().map(|(_, v)| v).collect()
        }
        Some(_) => return Err(ApiError::validation("keywords_attributes", "is invalid")),
    };
    entries
        .into_iter()
        .map(|e| {
            serde_json::from_value(e)
                .map_err(|_| ApiError::validation("keywords_attributes", "is invalid"))
        })
        .collect()
}

fn check_keyword(k: &str) -> Result<String, ApiError> {
    let k = k.trim();
    if k.is_empty() {
        return Err(ApiError::validation("keyword", "can't be blank"));
    }
    if k.chars().count() > TEXT_MAX {
        return Err(ApiError::validation("keyword", "is too long"));
    }
    Ok(k.to_string())
}

fn attr_id(v: &Option<Value>) -> Result<Option<i64>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => s.parse().map(Some).map_err(|_| ApiError::NotFound),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or(ApiError::NotFound),
        Some(_) => Err(ApiError::NotFound),
    }
}

/// Applies `keywords_attributes` to filter `filter` inside `tx`: new keywords, changes to
/// existing ones by id, `_destroy` removals (Rails' nested attributes).
async fn apply_keywords(
    tx: &mut sqlx::PgConnection,
    filter: i64,
    attrs: Vec<KeywordAttrs>,
) -> Result<(), ApiError> {
    for a in attrs {
        match attr_id(&a.id)? {
            Some(id) if a.destroy.unwrap_or(false) => {
                sqlx::query(
                    "DELETE FROM custom_filter_keywords WHERE id = $1 AND custom_filter_id = $2",
                )
                .bind(id)
                .bind(filter)
                .execute(&mut *tx)
                .await?;
            }
            Some(id) => {
                let keyword = a.keyword.as_deref().map(check_keyword).transpose()?;
                let found = sqlx::query(
                    "UPDATE custom_filter_keywords SET keyword = coalesce($3, keyword), \
                         whole_word = coalesce($4, whole_word) \
                     WHERE id = $1 AND custom_filter_id = $2",
                )
                .bind(id)
                .bind(filter)
                .bind(keyword)
                .bind(a.whole_word)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if found == 0 {
                    return Err(ApiError::NotFound);
                }
            }
            None if a.destroy.unwrap_or(false) => {}
            None => {
                let keyword = check_keyword(a.keyword.as_deref().unwrap_or_default())?;
                sqlx::query(
                    "INSERT INTO custom_filter_keywords (custom_filter_id, keyword, whole_word) \
                     VALUES ($1, $2, $3)",
                )
                .bind(filter)
                .bind(keyword)
                .bind(a.whole_word.unwrap_or(true))
                .execute(&mut *tx)
                .await?;
            }
        }
    }
    Ok(())
}

pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    Params { value: p, .. }: Params<FilterParams>,
) -> Result<Json<Filter>, ApiError> {
    let me = me(&auth, "write:filters")?;
    let title = check_title(p.title.as_deref().unwrap_or_default())?;
    let context = check_context(p.context.as_ref().unwrap_or(&Value::Null))?;
    let action = check_action(p.filter_action.as_deref().unwrap_or("warn"))?;
    let expires_in = p
        .expires_in
        .as_ref()
        .map(check_expires_in)
        .transpose()?
        .flatten();
    let keywords = keyword_attrs(p.keywords_attributes)?;
    let mut tx = state.db.begin().await?;
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO custom_filters (account_id, title, context, action, expires_at) \
         VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5)) RETURNING id",
    )
    .bind(me)
    .bind(title)
    .bind(context)
    .bind(action)
    .bind(expires_in.map(|s| s as f64))
    .fetch_one(&mut *tx)
    .await?;
    apply_keywords(&mut tx, id, keywords).await?;
    tx.commit().await?;
    changed(&state, me).await;
    Ok(Json(one(&state, me, id).await?))
}

pub async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Params { value: p, .. }: Params<FilterParams>,
) -> Result<Json<Filter>, ApiError> {
    let me = me(&auth, "write:filters")?;
    let id = parse_id(&id)?;
    let title = p.title.as_deref().map(check_title).transpose()?;
    let context = p.context.as_ref().map(check_context).transpose()?;
    let action = p.filter_action.as_deref().map(check_action).transpose()?;
    let expires_in = p.expires_in.as_ref().map(check_expires_in).transpose()?;
    let keywords = keyword_attrs(p.keywords_attributes)?;
    let mut tx = state.db.begin().await?;
    let found = sqlx::query(
        "UPDATE custom_filters SET title = coalesce($3, title), \
             context = coalesce($4, context), action = coalesce($5, action), \
             expires_at = CASE WHEN $6 THEN now() + make_interval(secs => $7) \
                               ELSE expires_at END \
         WHERE id = $1 AND account_id = $2",
    )
    .bind(id)
    .bind(me)
    .bind(title)
    .bind(context)
    .bind(action)
    .bind(expires_in.is_some())
    .bind(expires_in.flatten().map(|s| s as f64))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if found == 0 {
        return Err(ApiError::NotFound);
    }
    apply_keywords(&mut tx, id, keywords).await?;
    tx.commit().await?;
    changed(&state, me).await;
    Ok(Json(one(&state, me, id).await?))
}

pub async fn destroy(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let me = me(&auth, "write:filters")?;
    let deleted = sqlx::query("DELETE FROM custom_filters WHERE id = $1 AND account_id = $2")
        .bind(parse_id(&id)?)
        .bind(me)
        .execute(state.db.primary())
        .await?
        .rows_affected();
    if deleted == 0 {
        return Err(ApiError::NotFound);
    }
    changed(&state, me).await;
    Ok(Json(json!({})))
}

pub async fn keywords(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Vec<FilterKeyword>>, ApiError> {
    let me = me(&auth, "read:filters")?;
    Ok(Json(one(&state, me, parse_id(&id)?).await?.keywords))
}

#[derive(Debug, Default, Deserialize)]
pub struct KeywordParams {
    #[serde(default)]
    keyword: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    whole_word: Option<bool>,
}

pub async fn add_keyword(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Params { value: p, .. }: Params<KeywordParams>,
) -> Result<Json<FilterKeyword>, ApiError> {
    let me = me(&auth, "write:filters")?;
    let filter = one(&state, me, parse_id(&id)?).await?;
    let keyword = check_keyword(p.keyword.as_deref().unwrap_or_default())?;
    let (kid,): (i64,) = sqlx::query_as(
        "INSERT INTO custom_filter_keywords (custom_filter_id, keyword, whole_word) \
         VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(parse_id(&filter.id)?)
    .bind(&keyword)
    .bind(p.whole_word.unwrap_or(true))
    .fetch_one(state.db.primary())
    .await?;
    changed(&state, me).await;
    keyword_of(&state, me, kid).await.map(Json)
}

/// The caller's keyword `id`, or 404.
async fn keyword_of(state: &AppState, me: i64, id: i64) -> Result<FilterKeyword, ApiError> {
    let row: (i64, String, bool) = sqlx::query_as(
        "SELECT k.id, k.keyword, k.whole_word FROM custom_filter_keywords k \
         JOIN custom_filters f ON f.id = k.custom_filter_id \
         WHERE k.id = $1 AND f.account_id = $2",
    )
    .bind(id)
    .bind(me)
    .fetch_optional(state.db.primary())
    .await?
    .ok_or(ApiError::NotFound)?;
    Ok(FilterKeyword {
        id: row.0.to_string(),
        keyword: row.1,
        whole_word: row.2,
    })
}

pub async fn show_keyword(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<FilterKeyword>, ApiError> {
    let me = me(&auth, "read:filters")?;
    keyword_of(&state, me, parse_id(&id)?).await.map(Json)
}

pub async fn update_keyword(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Params { value: p, .. }: Params<KeywordParams>,
) -> Result<Json<FilterKeyword>, ApiError> {
    let me = me(&auth, "write:filters")?;
    let id = parse_id(&id)?;
    let keyword = p.keyword.as_deref().map(check_keyword).transpose()?;
    let found = sqlx::query(
        "UPDATE custom_filter_keywords k SET keyword = coalesce($3, k.keyword), \
             whole_word = coalesce($4, k.whole_word) \
         FROM custom_filters f WHERE f.id = k.custom_filter_id AND k.id = $1 \
           AND f.account_id = $2",
    )
    .bind(id)
    .bind(me)
    .bind(keyword)
    .bind(p.whole_word)
    .execute(state.db.primary())
    .await?
    .rows_affected();
    if found == 0 {
        return Err(ApiError::NotFound);
    }
    changed(&state, me).await;
    keyword_of(&state, me, id).await.map(Json)
}

pub async fn remove_keyword(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let me = me(&auth, "write:filters")?;
    let deleted = sqlx::query(
        "DELETE FROM custom_filter_keywords k USING custom_filters f \
         WHERE f.id = k.custom_filter_id AND k.id = $1 AND f.account_id = $2",
    )
    .bind(parse_id(&id)?)
    .bind(me)
    .execute(state.db.primary())
    .await?
    .rows_affected();
    if deleted == 0 {
        return Err(ApiError::NotFound);
    }
    changed(&state, me).await;
    Ok(Json(json!({})))
}

pub async fn statuses(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Vec<FilterStatus>>, ApiError> {
    let me = me(&auth, "read:filters")?;
    Ok(Json(one(&state, me, parse_id(&id)?).await?.statuses))
}

#[derive(Debug, Default, Deserialize)]
pub struct StatusParams {
    #[serde(default)]
    status_id: Option<Value>,
}

pub async fn add_status(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Params { value: p, .. }: Params<StatusParams>,
) -> Result<Json<FilterStatus>, ApiError> {
    let me = me(&auth, "write:filters")?;
    let filter = parse_id(&one(&state, me, parse_id(&id)?).await?.id)?;
    let status = match attr_id(&p.status_id) {
        Ok(Some(s)) => s,
        _ => return Err(ApiError::validation("status_id", "is invalid")),
    };
    // Only a status the caller may see can be filtered: nothing tells the others exist.
    let seen = crate::api::entities::status::load_statuses_from(
        state.db.primary(),
        &state,
        &[status],
        Some(me),
    )
    .await?;
    if seen.is_empty() {
        return Err(ApiError::NotFound);
    }
    let (fid,): (i64,) = sqlx::query_as(
        "INSERT INTO custom_filter_statuses (custom_filter_id, status_id) VALUES ($1, $2) \
         ON CONFLICT (custom_filter_id, status_id) DO UPDATE SET status_id = excluded.status_id \
         RETURNING id",
    )
    .bind(filter)
    .bind(status)
    .fetch_one(state.db.primary())
    .await?;
    changed(&state, me).await;
    Ok(Json(FilterStatus {
        id: fid.to_string(),
        status_id: status.to_string(),
    }))
}

async fn status_of(state: &AppState, me: i64, id: i64) -> Result<FilterStatus, ApiError> {
    let (id, status_id): (i64, i64) = sqlx::query_as(
        "SELECT s.id, s.status_id FROM custom_filter_statuses s \
         JOIN custom_filters f ON f.id = s.custom_filter_id \
         WHERE s.id = $1 AND f.account_id = $2",
    )
    .bind(id)
    .bind(me)
    .fetch_optional(state.db.primary())
    .await?
    .ok_or(ApiError::NotFound)?;
    Ok(FilterStatus {
        id: id.to_string(),
        status_id: status_id.to_string(),
    })
}

pub async fn show_status(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<FilterStatus>, ApiError> {
    let me = me(&auth, "read:filters")?;
    status_of(&state, me, parse_id(&id)?).await.map(Json)
}

pub async fn remove_status(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let me = me(&auth, "write:filters")?;
    let deleted = sqlx::query(
        "DELETE FROM custom_filter_statuses s USING custom_filters f \
         WHERE f.id = s.custom_filter_id AND s.id = $1 AND f.account_id = $2",
    )
    .bind(parse_id(&id)?)
    .bind(me)
    .execute(state.db.primary())
    .await?
    .rows_affected();
    if deleted == 0 {
        return Err(ApiError::NotFound);
    }
    changed(&state, me).await;
    Ok(Json(json!({})))
}
