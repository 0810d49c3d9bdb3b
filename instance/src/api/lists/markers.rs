//! Markers: where the user stopped reading home and notifications, shared by their clients.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use sqlx::types::chrono::{DateTime, Utc};

use crate::api::ApiError;
use crate::api::entities::account::iso8601;
use crate::api::params::{Params, flex};
use crate::auth::Auth;
use crate::state::AppState;

const TIMELINES: [&str; 2] = ["home", "notifications"];

#[derive(Debug, Serialize)]
pub struct Marker {
    last_read_id: String,
    version: i32,
    updated_at: String,
}

#[derive(sqlx::FromRow)]
struct MarkerRow {
    timeline: String,
    last_read_id: i64,
    version: i32,
    updated_at: DateTime<Utc>,
}

fn markers_json(rows: Vec<MarkerRow>) -> BTreeMap<String, Marker> {
    rows.into_iter()
        .map(|r| {
            (
                r.timeline,
                Marker {
                    last_read_id: r.last_read_id.to_string(),
                    version: r.version,
                    updated_at: iso8601(r.updated_at),
                },
            )
        })
        .collect()
}

#[derive(Debug, Default, Deserialize)]
pub struct ShowQuery {
    #[serde(default, deserialize_with = "flex::list")]
    timeline: Vec<String>,
}

/// The markers of the timelines asked for; unknown names are ignored, and a timeline never
/// marked is absent, as in Mastodon.
pub async fn show(
    State(state): State<AppState>,
    auth: Auth,
    Params { value: q, .. }: Params<ShowQuery>,
) -> Result<Json<BTreeMap<String, Marker>>, ApiError> {
    auth.require("read:statuses")?;
    let user = auth.user()?.user_id;
    let rows = sqlx::query_as(
        "SELECT timeline, last_read_id, version, updated_at FROM markers \
         WHERE user_id = $1 AND timeline = ANY($2)",
    )
    .bind(user)
    .bind(&q.timeline)
    .fetch_all(state.db.reader())
    .await?;
    Ok(Json(markers_json(rows)))
}

#[derive(Debug, Default, Deserialize)]
pub struct Position {
    #[serde(default)]
    last_read_id: Option<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
pub struct UpdateParams {
    #[serde(default)]
    home: Option<Position>,
    #[serde(default)]
    notifications: Option<Position>,
}

fn last_read_id(timeline: &str, position: &Position) -> Result<i64, ApiError> {
    let field = format!("{timeline}[last_read_id]");
    match &position.last_read_id {
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        Some(serde_json::Value::Number(n)) => n.as_i64(),
        _ => None,
    }
    .filter(|id| *id >= 0)
    .ok_or_else(|| ApiError::validation(&field, "must be an ID"))
}

/// Moves the given markers. The version (Mastodon's `lock_version`) counts real moves only:
/// saving the same position again changes nothing, as a Rails update without changes.
pub async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Params { value: p, .. }: Params<UpdateParams>,
) -> Result<Json<BTreeMap<String, Marker>>, ApiError> {
    auth.require("write:statuses")?;
    let user = auth.user()?.user_id;
    let mut wanted = Vec::new();
    for (timeline, position) in TIMELINES.iter().zip([&p.home, &p.notifications]) {
        if let Some(position) = position {
            wanted.push((timeline.to_string(), last_read_id(timeline, position)?));
        }
    }
    let (timelines, ids): (Vec<String>, Vec<i64>) = wanted.into_iter().unzip();
    let rows = sqlx::query_as(
        "INSERT INTO markers AS m (user_id, timeline, last_read_id) \
         SELECT $1, t, i FROM unnest($2::text[], $3::bigint[]) AS u(t, i) \
         ON CONFLICT (user_id, timeline) DO UPDATE SET \
             last_read_id = EXCLUDED.last_read_id, version = m.version + 1, updated_at = now() \
           WHERE m.last_read_id <> EXCLUDED.last_read_id \
         RETURNING timeline, last_read_id, version, updated_at",
    )
    .bind(user)
    .bind(&timelines)
    .bind(&ids)
    .fetch_all(state.db.primary())
    .await?;
    let mut markers = markers_json(rows);
    if markers.len() < timelines.len() {
        // Unchanged markers are not returned by the upsert: read them back.
        let rest: Vec<MarkerRow> = sqlx::query_as(
            "SELECT timeline, last_read_id, version, updated_at FROM markers \
             WHERE user_id = $1 AND timeline = ANY($2)",
        )
        .bind(user)
        .bind(&timelines)
        .fetch_all(state.db.primary())
        .await?;
        for (k, v) in markers_json(rest) {
            markers.entry(k).or_insert(v);
        }
    }
    Ok(Json(markers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn last_read_ids_come_as_strings_or_numbers() {
        let p = |v| Position {
            last_read_id: Some(v),
        };
        assert_eq!(last_read_id("home", &p(json!("42"))).unwrap(), 42);
        assert_eq!(last_read_id("home", &p(json!(42))).unwrap(), 42);
        assert!(last_read_id("home", &p(json!("x"))).is_err());
        assert!(last_read_id("home", &Position::default()).is_err());
    }
}
