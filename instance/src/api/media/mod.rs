//! Media attachments: upload (`POST /api/v1/media`, `/api/v2/media`), read, update and
//! delete (`/api/v1/media/:id`), all under `write:media` as on Mastodon.
//!
//! Images are processed during the request (see [`crate::media`]): 200 with the entity.
//! Video and audio are stored as received for the worker and answered 202 with `url: null`;
//! `GET` then answers 206 until the worker is done (Mastodon's async media, which clients
//! poll). Both API versions behave so: v1 clients get 202 for video too, since nothing here
//! can transcode within a request.
//!
//! Processing comes first and storing after, objects before the row: an upload that fails
//! to process leaves nothing in the bucket or the database, and a failed store or insert
//! removes what was put.

pub(crate) mod store;

use std::sync::LazyLock;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Request, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_LENGTH;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use self::store::Object;
use super::instance::limits;
use crate::api::ApiError;
use crate::api::entities::media_attachment::{MediaRow, media_columns, media_json};
use crate::api::params::{Params, Upload};
use crate::auth::Auth;
use crate::media::{self, Format, Kind, MediaError};
use crate::state::AppState;

const SCOPE: &str = "write:media";

/// A video at its limit, a thumbnail at the image limit, and the text fields. Other routes
/// keep axum's 2 MB.
const BODY_LIMIT: u64 = limits::VIDEO_SIZE_LIMIT + limits::IMAGE_SIZE_LIMIT + 1024 * 1024;

const IMAGE_LIMITS: media::Limits = media::Limits {
    max_bytes: limits::IMAGE_SIZE_LIMIT,
    max_pixels: limits::IMAGE_MATRIX_LIMIT,
};

/// Decoding a large image takes a core and a few hundred MB for up to a few seconds: one
/// at a time per core, the others wait their turn instead of exhausting memory together.
static PROCESSING: LazyLock<Semaphore> =
    LazyLock::new(|| Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get())));

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/media", post(create))
        .route("/api/v2/media", post(create))
        .route("/api/v1/media/{id}", get(show).put(update).delete(destroy))
        .layer(DefaultBodyLimit::max(BODY_LIMIT as usize))
}

#[derive(Debug, Default, Deserialize)]
struct MediaParams {
    #[serde(default)]
    description: Option<String>,
    /// `"x,y"` from forms, or `[x, y]` from JSON.
    #[serde(default)]
    focus: Option<Value>,
}

/// A declared body over the limit is refused before a byte of it is read. (A chunked body
/// that grows past it is cut by the body limit, and reported as a malformed body.)
fn too_large(request: &Request) -> Option<Response> {
    let length: u64 = request
        .headers()
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()?;
    (length > BODY_LIMIT).then(|| {
        let message = format!(
            "The request body is larger than the {} MB a media upload may take",
            BODY_LIMIT / (1024 * 1024)
        );
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            Json(json!({"error": message})),
        )
            .into_response()
    })
}

/// The parameters, for a caller already authorised (nobody else gets a body buffered).
async fn read_params(
    state: &AppState,
    request: Request,
) -> Result<Result<Params<MediaParams>, Response>, ApiError> {
    if let Some(response) = too_large(&request) {
        return Ok(Err(response));
    }
    Ok(Ok(Params::from_request(request, state).await?))
}

fn invalid(field: &str, error: MediaError) -> ApiError {
    ApiError::Validation(format!("{field} {error}"))
}

fn description(text: Option<String>) -> Result<Option<String>, ApiError> {
    match text {
        Some(t) if t.chars().count() > limits::MEDIA_DESCRIPTION_LIMIT as usize => {
            Err(ApiError::validation(
                "Description",
                &format!(
                    "is too long (maximum is {} characters)",
                    limits::MEDIA_DESCRIPTION_LIMIT
                ),
            ))
        }
        t => Ok(t),
    }
}

/// Absent or blank: no change (Mastodon ignores a blank focus).
fn focus(value: Option<&Value>) -> Result<Option<(f64, f64)>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(v) => media::parse_focus(v).map(Some).ok_or_else(|| {
            ApiError::validation("Focus", "must be two numbers from -1.0 to 1.0, as \"x,y\"")
        }),
    }
}

fn find<'a>(files: &'a [Upload], field: &str) -> Option<&'a Upload> {
    files.iter().find(|f| f.field == field)
}

/// CPU-bound work on the blocking pool, within the processing budget.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    let _permit = PROCESSING
        .acquire()
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::Internal(e.into()))
}

/// A processed thumbnail, its folder chosen later (it needs the attachment's id).
struct Thumbnail {
    rendition: media::Rendition,
    blurhash: String,
}

impl Thumbnail {
    async fn process(upload: &Upload) -> Result<Self, ApiError> {
        let bytes = upload.bytes.clone();
        let (rendition, blurhash) =
            blocking(move || media::process_thumbnail(&bytes, &IMAGE_LIMITS))
                .await?
                .map_err(|e| match e {
                    MediaError::UnsupportedType => {
                        ApiError::validation("Thumbnail", "must be a JPEG, PNG, GIF or WebP image")
                    }
                    e => invalid("Thumbnail", e),
                })?;
        Ok(Self {
            rendition,
            blurhash,
        })
    }

    fn object(self, id: i64) -> Object {
        store::object(
            &store::thumbnail_dir(id),
            "original",
            self.rendition.format,
            self.rendition.bytes,
        )
    }
}

fn thumbnail_for_image() -> ApiError {
    // Mastodon's rule: a custom preview is for video and audio, which have none of their own.
    ApiError::validation("Thumbnail", "can only be given for video and audio")
}

/// 200 when ready, 206 while the worker has not processed the file yet.
fn entity(state: &AppState, row: &MediaRow) -> Response {
    let status = if row.processing() {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    (status, Json(media_json(row, state))).into_response()
}

/// What an upload becomes before its id is known.
enum Prepared {
    Image(media::Processed),
    Pending {
        format: Format,
        bytes: Bytes,
        thumbnail: Option<Thumbnail>,
    },
}

async fn create(
    State(state): State<AppState>,
    auth: Auth,
    request: Request,
) -> Result<Response, ApiError> {
    auth.require(SCOPE)?;
    let account_id = auth.user()?.account_id;
    let Params { value: p, files } = match read_params(&state, request).await? {
        Ok(params) => params,
        Err(response) => return Ok(response),
    };
    let description = description(p.description)?.unwrap_or_default();
    let focus = focus(p.focus.as_ref())?.unwrap_or((0.0, 0.0));
    let file =
        find(&files, "file").ok_or_else(|| ApiError::validation("File", "can't be blank"))?;
    let thumbnail = find(&files, "thumbnail");
    let storage = store::storage(&state)?;

    let format =
        media::detect(&file.bytes).ok_or_else(|| invalid("File", MediaError::UnsupportedType))?;
    let prepared = match format.kind() {
        Kind::Image => {
            if thumbnail.is_some() {
                return Err(thumbnail_for_image());
            }
            let bytes = file.bytes.clone();
            let processed = blocking(move || media::process_image(&bytes, &IMAGE_LIMITS))
                .await?
                .map_err(|e| invalid("File", e))?;
            Prepared::Image(processed)
        }
        Kind::Video | Kind::Audio => {
            if file.bytes.len() as u64 > limits::VIDEO_SIZE_LIMIT {
                return Err(invalid(
                    "File",
                    MediaError::TooLarge {
                        limit: limits::VIDEO_SIZE_LIMIT,
                    },
                ));
            }
            let thumbnail = match thumbnail {
                Some(upload) => Some(Thumbnail::process(upload).await?),
                None => None,
            };
            Prepared::Pending {
                format,
                bytes: file.bytes.clone(),
                thumbnail,
            }
        }
    };

    let id: i64 = sqlx::query_scalar("SELECT fedi_id()")
        .fetch_one(state.db.primary())
        .await?;
    let dir = store::file_dir(id);
    let mut meta = json!({"focus": media::focus_json(focus)});
    let (kind, objects, file_key, preview_key, thumbnail_key, blurhash, ready) = match prepared {
        Prepared::Image(processed) => {
            meta["original"] = processed.original.geometry();
            meta["small"] = processed.small.geometry();
            let original = store::object(
                &dir,
                "original",
                processed.original.format,
                processed.original.bytes,
            );
            let small = store::object(&dir, "small", processed.small.format, processed.small.bytes);
            let (file_key, preview_key) = (original.key.clone(), small.key.clone());
            (
                Kind::Image,
                vec![original, small],
                file_key,
                Some(preview_key),
                None,
                Some(processed.blurhash),
                true,
            )
        }
        Prepared::Pending {
            format,
            bytes,
            thumbnail,
        } => {
            let original = store::object(&dir, "original", format, bytes);
            let file_key = original.key.clone();
            let mut objects = vec![original];
            let (mut thumbnail_key, mut blurhash) = (None, None);
            if let Some(t) = thumbnail {
                meta["small"] = t.rendition.geometry();
                blurhash = Some(t.blurhash.clone());
                let object = t.object(id);
                thumbnail_key = Some(object.key.clone());
                objects.push(object);
            }
            (
                format.kind(),
                objects,
                file_key,
                None,
                thumbnail_key,
                blurhash,
                false,
            )
        }
    };
    let content_type = objects[0].content_type;
    let file_size = objects[0].bytes.len() as i64;

    store::put_all(&storage, &objects).await?;
    let inserted: Result<MediaRow, sqlx::Error> = sqlx::query_as(concat!(
        "INSERT INTO media_attachments (id, account_id, type, file_key, preview_key, \
            thumbnail_key, content_type, file_size, meta, description, blurhash, state) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING ",
        media_columns!()
    ))
    .bind(id)
    .bind(account_id)
    .bind(kind.entity_type())
    .bind(&file_key)
    .bind(&preview_key)
    .bind(&thumbnail_key)
    .bind(content_type)
    .bind(file_size)
    .bind(sqlx::types::Json(&meta))
    .bind(&description)
    .bind(&blurhash)
    .bind(if ready { "ready" } else { "processing" })
    .fetch_one(state.db.primary())
    .await;
    let row = match inserted {
        Ok(row) => row,
        Err(e) => {
            store::remove(&storage, objects.iter().map(|o| o.key.clone()).collect()).await;
            return Err(e.into());
        }
    };
    let status = if ready {
        StatusCode::OK
    } else {
        crate::tasks::media::enqueue(&state, row.id).await;
        StatusCode::ACCEPTED
    };
    Ok((status, Json(media_json(&row, &state))).into_response())
}

fn parse_id(id: &str) -> Result<i64, ApiError> {
    id.parse().map_err(|_| ApiError::NotFound)
}

/// The caller's own attachment; anyone else's does not exist for them.
async fn owned(
    db: impl sqlx::PgExecutor<'_>,
    id: i64,
    account_id: i64,
    lock: bool,
) -> Result<MediaRow, ApiError> {
    let query = if lock {
        concat!(
            "SELECT ",
            media_columns!(),
            " FROM media_attachments WHERE id = $1 AND account_id = $2 FOR UPDATE"
        )
    } else {
        concat!(
            "SELECT ",
            media_columns!(),
            " FROM media_attachments WHERE id = $1 AND account_id = $2"
        )
    };
    sqlx::query_as(query)
        .bind(id)
        .bind(account_id)
        .fetch_optional(db)
        .await?
        .ok_or(ApiError::NotFound)
}

/// Mastodon's answer for media the worker could not process.
fn failed(row: &MediaRow) -> Result<(), ApiError> {
    if row.state == "failed" {
        return Err(ApiError::Unprocessable(
            "Error processing thumbnail for uploaded media".into(),
        ));
    }
    Ok(())
}

fn attached() -> ApiError {
    ApiError::Unprocessable(
        "This media is attached to a status: it can no longer be changed here".into(),
    )
}

async fn show(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    auth.require(SCOPE)?;
    let account_id = auth.user()?.account_id;
    // The primary: clients poll right after uploading.
    let row = owned(state.db.primary(), parse_id(&id)?, account_id, false).await?;
    failed(&row)?;
    Ok(entity(&state, &row))
}

async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    auth.require(SCOPE)?;
    let account_id = auth.user()?.account_id;
    let id = parse_id(&id)?;
    let Params { value: p, files } = match read_params(&state, request).await? {
        Ok(params) => params,
        Err(response) => return Ok(response),
    };
    let description = description(p.description)?;
    let focus = focus(p.focus.as_ref())?;
    let row = owned(state.db.primary(), id, account_id, false).await?;
    if row.status_id.is_some() {
        return Err(attached());
    }
    failed(&row)?;

    // (the object, `meta.small`, the blurhash)
    let mut new_thumbnail: Option<(Object, Value, String)> = None;
    let storage = state.storage.clone();
    if let Some(upload) = find(&files, "thumbnail") {
        if row.kind == Kind::Image.entity_type() {
            return Err(thumbnail_for_image());
        }
        let storage = store::storage(&state)?;
        let t = Thumbnail::process(upload).await?;
        let geometry = t.rendition.geometry();
        let blurhash = t.blurhash.clone();
        let object = t.object(id);
        store::put_all(&storage, std::slice::from_ref(&object)).await?;
        new_thumbnail = Some((object, geometry, blurhash));
    }
    let new_key = new_thumbnail.as_ref().map(|(o, _, _)| o.key.clone());

    let saved = async {
        let mut tx = state.db.begin().await?;
        let row = owned(&mut *tx, id, account_id, true).await?;
        if row.status_id.is_some() {
            return Err(attached());
        }
        let mut meta = match row.meta.0.clone() {
            Value::Object(map) => Value::Object(map),
            _ => json!({}),
        };
        if let Some(point) = focus {
            meta["focus"] = media::focus_json(point);
        }
        if let Some((_, geometry, _)) = &new_thumbnail {
            meta["small"] = geometry.clone();
        }
        let updated: MediaRow = sqlx::query_as(concat!(
            "UPDATE media_attachments SET description = coalesce($2, description), meta = $3, \
                thumbnail_key = coalesce($4, thumbnail_key), \
                blurhash = CASE WHEN $4::text IS NULL THEN blurhash ELSE $5 END \
             WHERE id = $1 RETURNING ",
            media_columns!()
        ))
        .bind(id)
        .bind(&description)
        .bind(sqlx::types::Json(&meta))
        .bind(&new_key)
        .bind(new_thumbnail.as_ref().map(|(_, _, b)| b.as_str()))
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok::<_, ApiError>((updated, row.thumbnail_key))
    }
    .await;
    match saved {
        Ok((updated, old_thumbnail)) => {
            if let (Some(storage), Some(old)) =
                (&storage, old_thumbnail.filter(|_| new_key.is_some()))
            {
                store::remove(storage, vec![old]).await;
            }
            Ok(entity(&state, &updated))
        }
        Err(e) => {
            if let (Some(storage), Some(key)) = (&storage, &new_key) {
                store::remove(storage, vec![key.clone()]).await;
            }
            Err(e)
        }
    }
}

async fn destroy(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    auth.require(SCOPE)?;
    let account_id = auth.user()?.account_id;
    let id = parse_id(&id)?;
    // One statement: a status cannot take the attachment between a check and the delete.
    let deleted: Option<MediaRow> = sqlx::query_as(concat!(
        "DELETE FROM media_attachments WHERE id = $1 AND account_id = $2 AND status_id IS NULL \
         RETURNING ",
        media_columns!()
    ))
    .bind(id)
    .bind(account_id)
    .fetch_optional(state.db.primary())
    .await?;
    let Some(row) = deleted else {
        owned(state.db.primary(), id, account_id, false).await?;
        return Err(ApiError::Unprocessable(
            "Media attachment is currently used by a status".into(),
        ));
    };
    if let Some(storage) = &state.storage {
        let keys = [row.file_key, row.preview_key, row.thumbnail_key];
        store::remove(storage, keys.into_iter().flatten().collect()).await;
    }
    Ok(Json(json!({})).into_response())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn the_advertised_types_are_exactly_the_accepted_ones() {
        let accepted: BTreeSet<&str> = Format::ALL
            .iter()
            .map(|f| f.mime())
            .chain(media::MIME_ALIASES.iter().map(|(m, _)| *m))
            .collect();
        let advertised: BTreeSet<&str> = limits::SUPPORTED_MIME_TYPES.iter().copied().collect();
        assert_eq!(advertised, accepted);
        assert_eq!(
            advertised.len(),
            limits::SUPPORTED_MIME_TYPES.len(),
            "no duplicates"
        );
    }

    #[test]
    fn the_body_limit_takes_a_video_and_a_thumbnail_at_their_limits() {
        const { assert!(BODY_LIMIT > limits::VIDEO_SIZE_LIMIT + limits::IMAGE_SIZE_LIMIT) };
        assert_eq!(IMAGE_LIMITS.max_pixels, limits::IMAGE_MATRIX_LIMIT);
    }

    #[test]
    fn descriptions_and_focus_points_are_checked() {
        let long = "é".repeat(limits::MEDIA_DESCRIPTION_LIMIT as usize);
        assert_eq!(description(Some(long.clone())).unwrap(), Some(long.clone()));
        let err = description(Some(format!("{long}x"))).unwrap_err();
        assert!(err.to_string().contains("maximum is 1500"), "{err}");
        assert_eq!(focus(None).unwrap(), None);
        assert_eq!(focus(Some(&json!(" "))).unwrap(), None);
        assert_eq!(focus(Some(&json!("0.5,-0.5"))).unwrap(), Some((0.5, -0.5)));
        let err = focus(Some(&json!("2,0"))).unwrap_err();
        assert!(err.to_string().contains("Focus must be"), "{err}");
    }
}
