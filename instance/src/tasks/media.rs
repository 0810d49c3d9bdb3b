//! Video and audio uploads, processed by the worker as Mastodon's `PostProcessMediaWorker`:
//! the upload stored as received is probed with `ffprobe`, checked against the advertised
//! limits and transcoded with `ffmpeg` (video to H.264/AAC MP4, audio to MP3), metadata
//! stripped, a preview frame taken from videos; the new files replace the raw upload,
//! which is removed, and the attachment becomes `ready`.
//!
//! A file that cannot be probed or transcoded, or is over a limit, makes the attachment
//! `failed` (GET answers 422, statuses refuse it) and the job fails permanently: running it
//! again cannot help. A job for an attachment no longer `processing` does nothing, so a
//! job delivered twice is harmless.
//!
//! ffmpeg works in a temporary folder of its own, on files whose names are ours (never the
//! upload's), and is killed when it runs past [`FFMPEG_TIMEOUT`].

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use tracing::warn;

use crate::api::instance::limits;
use crate::api::media::store;
use crate::jobs::{JobError, Queue, Registry};
use crate::media::{self, Format};
use crate::state::AppState;

pub const PROCESS: &str = "media.process";

/// Transient failures (S3 or the database down) are retried a few times; files that are
/// bad fail at once.
const MAX_RETRIES: u32 = 5;
/// A probe reads headers only; a transcode of a 99 MB file takes minutes at most.
const FFPROBE_TIMEOUT: Duration = Duration::from_secs(30);
const FFMPEG_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// Mastodon sets no limit of its own here; this bounds the worker's time on one upload.
const MAX_DURATION_SECS: f64 = 60.0 * 60.0;

const THUMBNAIL_LIMITS: media::Limits = media::Limits {
    max_bytes: limits::IMAGE_SIZE_LIMIT,
    max_pixels: limits::IMAGE_MATRIX_LIMIT,
};

pub fn register(r: &mut Registry) {
    r.register(PROCESS, MAX_RETRIES, |state, args| async move {
        #[derive(Deserialize)]
        struct Args {
            media_id: i64,
        }
        let Args { media_id } = crate::jobs::args(args)?;
        process(&state, media_id).await
    });
}

/// Queues the processing of attachment `id`; call it after its row committed. A failure
/// is logged: the attachment then stays `processing` and the unattached-media cleanup
/// removes it.
pub async fn enqueue(state: &AppState, id: i64) {
    let args = json!({ "media_id": id });
    if let Err(e) = crate::jobs::enqueue(state, Queue::Default, PROCESS, args).await {
        warn!(error = %e, media = id, "cannot queue media processing");
    }
}

#[derive(sqlx::FromRow)]
struct Pending {
    #[sqlx(rename = "type")]
    kind: String,
    file_key: Option<String>,
    thumbnail_key: Option<String>,
    meta: sqlx::types::Json<Value>,
}

/// Why a file is refused; shown in the dead job and the log, never to other users.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Rejected(String);

async fn process(state: &AppState, id: i64) -> Result<(), JobError> {
    let row: Option<Pending> = sqlx::query_as(
        "SELECT type, file_key, thumbnail_key, meta FROM media_attachments \
         WHERE id = $1 AND state = 'processing'",
    )
    .bind(id)
    .fetch_optional(state.db.primary())
    .await?;
    let Some(row) = row else {
        return Ok(());
    };
    let Some(raw_key) = row.file_key.clone() else {
        return fail(state, id, None, Rejected("no file was stored".into())).await;
    };
    let storage = state
        .storage
        .clone()
        .ok_or_else(|| JobError::permanent(anyhow::anyhow!("no media storage configured")))?;
    let bytes = storage.get(&raw_key).await?;

    let dir = TempDir::new()?;
    let input = dir.path().join("input");
    tokio::fs::write(&input, &bytes).await?;
    drop(bytes);

    let outcome = match transcode(&dir, &input, row.kind == "audio").await {
        Ok(outcome) => outcome,
        Err(Failure::Rejected(r)) => return fail(state, id, Some(&raw_key), r).await,
        Err(Failure::Io(e)) => return Err(JobError::retry(e)),
    };

    let files_dir = store::file_dir(id);
    let original_bytes = tokio::fs::read(&outcome.output).await?;
    let original = store::object(&files_dir, "original", outcome.format, original_bytes);
    let mut objects = vec![original];
    let mut meta = row.meta.0.clone();
    if !meta.is_object() {
        meta = json!({});
    }
    for (k, v) in outcome.meta.as_object().into_iter().flatten() {
        meta[k] = v.clone();
    }
    let mut blurhash = None;
    if let Some(frame) = &outcome.frame {
        let frame = tokio::fs::read(frame).await?;
        match tokio::task::spawn_blocking(move || {
            media::process_thumbnail(&frame, &THUMBNAIL_LIMITS)
        })
        .await?
        {
            Ok((rendition, hash)) => {
                // A custom thumbnail's size stays what `meta.small` describes.
                if row.thumbnail_key.is_none() {
                    meta["small"] = rendition.geometry();
                }
                blurhash = Some(hash);
                objects.push(store::object(
                    &files_dir,
                    "small",
                    rendition.format,
                    rendition.bytes,
                ));
            }
            Err(e) => warn!(error = %e, media = id, "no preview frame for a video"),
        }
    }
    let keys: Vec<String> = objects.iter().map(|o| o.key.clone()).collect();
    store::put_all(&storage, &objects)
        .await
        .map_err(|e| JobError::retry(anyhow::anyhow!("{e:?}")))?;
    let updated = sqlx::query(
        "UPDATE media_attachments SET type = $2, file_key = $3, preview_key = $4, \
            content_type = $5, file_size = $6, meta = $7, \
            blurhash = CASE WHEN thumbnail_key IS NULL THEN coalesce($8, blurhash) \
                ELSE blurhash END, \
            state = 'ready' \
         WHERE id = $1 AND state = 'processing'",
    )
    .bind(id)
    .bind(outcome.kind)
    .bind(&objects[0].key)
    .bind(objects.get(1).map(|o| o.key.as_str()))
    .bind(objects[0].content_type)
    .bind(objects[0].bytes.len() as i64)
    .bind(sqlx::types::Json(&meta))
    .bind(&blurhash)
    .execute(state.db.primary())
    .await;
    match updated {
        // Deleted or processed meanwhile: ours are orphans.
        Ok(done) if done.rows_affected() == 0 => store::remove(&storage, keys).await,
        Ok(_) => store::remove(&storage, vec![raw_key]).await,
        Err(e) => {
            store::remove(&storage, keys).await;
            return Err(JobError::retry(e));
        }
    }
    Ok(())
}

/// Marks the attachment failed, removes the raw upload (nobody will serve it) and fails the
/// job for good.
async fn fail(
    state: &AppState,
    id: i64,
    raw_key: Option<&str>,
    why: Rejected,
) -> Result<(), JobError> {
    sqlx::query(
        "UPDATE media_attachments SET state = 'failed' WHERE id = $1 AND state = 'processing'",
    )
    .bind(id)
    .execute(state.db.primary())
    .await?;
    if let (Some(storage), Some(key)) = (&state.storage, raw_key) {
        store::remove(storage, vec![key.to_string()]).await;
    }
    Err(JobError::permanent(why))
}

enum Failure {
    Rejected(Rejected),
    Io(anyhow::Error),
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e.into())
    }
}

fn rejected(message: impl Into<String>) -> Failure {
    Failure::Rejected(Rejected(message.into()))
}

struct Outcome {
    kind: &'static str,
    format: Format,
    output: PathBuf,
    frame: Option<PathBuf>,
    meta: Value,
}

#[derive(Deserialize)]
struct Probe {
    #[serde(default)]
    streams: Vec<Stream>,
    #[serde(default)]
    format: ProbeFormat,
}

#[derive(Deserialize, Default)]
struct ProbeFormat {
    duration: Option<String>,
    bit_rate: Option<String>,
}

#[derive(Deserialize)]
struct Stream {
    codec_type: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    avg_frame_rate: Option<String>,
    r_frame_rate: Option<String>,
    #[serde(default)]
    disposition: Value,
}

impl Stream {
    fn is(&self, kind: &str) -> bool {
        self.codec_type.as_deref() == Some(kind)
    }

    /// Cover art in audio files is a one-frame "video" stream.
    fn is_picture(&self) -> bool {
        self.disposition.get("attached_pic").and_then(Value::as_i64) == Some(1)
    }

    fn frame_rate(&self) -> Option<(String, f64)> {
        [&self.avg_frame_rate, &self.r_frame_rate]
            .into_iter()
            .flatten()
            .find_map(|r| {
                let (n, d) = r.split_once('/')?;
                let (n, d): (f64, f64) = (n.parse().ok()?, d.parse().ok()?);
                (n > 0.0 && d > 0.0).then(|| (r.clone(), n / d))
            })
    }
}

async fn probe(file: &Path) -> Result<Probe, Failure> {
    let out = run(
        "ffprobe",
        &[
            "-v".as_ref(),
            "error".as_ref(),
            "-print_format".as_ref(),
            "json".as_ref(),
            "-show_format".as_ref(),
            "-show_streams".as_ref(),
            file.as_os_str(),
        ],
        FFPROBE_TIMEOUT,
    )
    .await?;
    serde_json::from_slice(&out).map_err(|e| rejected(format!("unreadable probe: {e}")))
}

fn number(s: &Option<String>) -> Option<f64> {
    s.as_deref()?.parse().ok().filter(|v: &f64| v.is_finite())
}

async fn transcode(dir: &TempDir, input: &Path, audio_only: bool) -> Result<Outcome, Failure> {
    let probe = probe(input).await?;
    let video = probe
        .streams
        .iter()
        .find(|s| s.is("video") && !s.is_picture());
    let has_audio = probe.streams.iter().any(|s| s.is("audio"));
    let duration = number(&probe.format.duration);
    if duration.is_some_and(|d| d > MAX_DURATION_SECS) {
        return Err(rejected("longer than the maximum duration"));
    }
    let bitrate = number(&probe.format.bit_rate);
    if audio_only || video.is_none() {
        if !has_audio {
            return Err(rejected("no audio or video stream"));
        }
        let output = dir.path().join("original.mp3");
        let mut args: Vec<&std::ffi::OsStr> = vec![
            "-nostdin".as_ref(),
            "-v".as_ref(),
            "error".as_ref(),
            "-i".as_ref(),
            input.as_os_str(),
        ];
        args.extend(
            [
                "-map_metadata",
                "-1",
                "-vn",
                "-c:a",
                "libmp3lame",
                "-q:a",
                "2",
                "-f",
                "mp3",
            ]
            .map(std::ffi::OsStr::new),
        );
        args.push(output.as_os_str());
        run("ffmpeg", &args, FFMPEG_TIMEOUT).await?;
        let mut original = json!({});
        if let Some(d) = duration {
            original["duration"] = json!(d);
        }
        if let Some(b) = bitrate {
            original["bitrate"] = json!(b as u64);
        }
        let mut meta = json!({ "original": original });
        if let Some(d) = duration {
            meta["length"] = json!(length(d));
            meta["duration"] = json!(d);
        }
        return Ok(Outcome {
            kind: "audio",
            format: Format::Mp3,
            output,
            frame: None,
            meta,
        });
    }
    let video = video.expect("checked above");
    let (Some(width), Some(height)) = (video.width, video.height) else {
        return Err(rejected("a video stream without dimensions"));
    };
    if width == 0
        || height == 0
        || u64::from(width) * u64::from(height) > limits::VIDEO_MATRIX_LIMIT
    {
        return Err(rejected(format!("{width}x{height} is over the size limit")));
    }
    let rate = video.frame_rate();
    if rate
        .as_ref()
        .is_some_and(|(_, fps)| *fps > f64::from(limits::VIDEO_FRAME_RATE_LIMIT))
    {
        return Err(rejected("over the frame rate limit"));
    }
    // Mastodon's rule: a video without sound is shown as a looping GIF.
    let kind = if has_audio { "video" } else { "gifv" };
    let output = dir.path().join("original.mp4");
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "-nostdin".as_ref(),
        "-v".as_ref(),
        "error".as_ref(),
        "-i".as_ref(),
        input.as_os_str(),
    ];
    args.extend(
        [
            "-map_metadata",
            "-1",
            "-map",
            "0:v:0",
            "-map",
            "0:a:0?",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-crf",
            "23",
            "-pix_fmt",
            "yuv420p",
            // H.264 in 4:2:0 needs even dimensions.
            "-vf",
            "scale=trunc(iw/2)*2:trunc(ih/2)*2",
            "-c:a",
            "aac",
            "-b:a",
            "192k",
            "-movflags",
            "+faststart",
            "-f",
            "mp4",
        ]
        .map(std::ffi::OsStr::new),
    );
    args.push(output.as_os_str());
    run("ffmpeg", &args, FFMPEG_TIMEOUT).await?;

    let frame = dir.path().join("frame.jpg");
    let frame_args: Vec<&std::ffi::OsStr> = vec![
        "-nostdin".as_ref(),
        "-v".as_ref(),
        "error".as_ref(),
        "-i".as_ref(),
        output.as_os_str(),
        "-frames:v".as_ref(),
        "1".as_ref(),
        "-q:v".as_ref(),
        "2".as_ref(),
        "-f".as_ref(),
        "image2".as_ref(),
        frame.as_os_str(),
    ];
    let frame = match run("ffmpeg", &frame_args, FFPROBE_TIMEOUT).await {
        Ok(_) => Some(frame),
        Err(_) => None,
    };

    let (out_w, out_h) = (width / 2 * 2, height / 2 * 2);
    let mut original = json!({ "width": out_w, "height": out_h });
    if let Some((r, _)) = &rate {
        original["frame_rate"] = json!(r);
    }
    if let Some(d) = duration {
        original["duration"] = json!(d);
    }
    if let Some(b) = bitrate {
        original["bitrate"] = json!(b as u64);
    }
    let mut meta = json!({
        "width": out_w,
        "height": out_h,
        "size": format!("{out_w}x{out_h}"),
        "aspect": f64::from(out_w) / f64::from(out_h.max(1)),
        "original": original,
    });
    if let Some((_, fps)) = rate {
        meta["fps"] = json!(fps.round() as u64);
    }
    if let Some(d) = duration {
        meta["length"] = json!(length(d));
        meta["duration"] = json!(d);
    }
    Ok(Outcome {
        kind,
        format: Format::Mp4,
        output,
        frame,
        meta,
    })
}

/// Mastodon's `length`: `H:MM:SS.ss`.
fn length(seconds: f64) -> String {
    let total = seconds.max(0.0);
    let h = (total / 3600.0).floor();
    let m = ((total - h * 3600.0) / 60.0).floor();
    let s = total - h * 3600.0 - m * 60.0;
    format!("{h}:{m:02}:{s:05.2}")
}

/// Runs a tool to completion within `timeout` (killed past it); a non-zero exit is the
/// file's fault, a tool that cannot start is ours.
async fn run(
    program: &str,
    args: &[&std::ffi::OsStr],
    timeout: Duration,
) -> Result<Vec<u8>, Failure> {
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Failure::Io(anyhow::anyhow!("cannot run {program}: {e}")))?;
    let out = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(out) => out?,
        Err(_) => return Err(rejected(format!("{program} ran past {timeout:?}"))),
    };
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().last().unwrap_or("").chars().take(300);
        return Err(rejected(format!(
            "{program} failed: {}",
            last.collect::<String>()
        )));
    }
    Ok(out.stdout)
}

/// A private folder under the system's temporary one, removed with everything in it when
/// dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> std::io::Result<Self> {
        let mut bytes = [0u8; 12];
        getrandom::fill(&mut bytes).map_err(std::io::Error::other)?;
        let name: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let path = std::env::temp_dir().join(format!("fedi-media-{name}"));
        std::fs::create_dir(&path)?;
        Ok(Self(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_read_as_mastodon_writes_them() {
        assert_eq!(length(1.0), "0:00:01.00");
        assert_eq!(length(3725.5), "1:02:05.50");
    }
}
