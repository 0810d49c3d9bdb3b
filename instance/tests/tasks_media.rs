//! Video and audio uploads processed by a real `fedi-server worker` with ffmpeg, against
//! the real PostgreSQL, Redis and S3 store: 202 then 206 until the worker is done, then 200
//! with files in the bucket stripped of their metadata, a preview frame and its blurhash,
//! Mastodon's `meta`; a file that is not a video ends failed, its job dead without retries.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use fedi_server::jobs::Queue;
use fedi_server::state::AppState;
use reqwest::header;
use serde_json::Value;

struct Env {
    api: Server,
    db: String,
    state: AppState,
    public: String,
    _worker: Server,
    /// Last: removed after the servers have stopped.
    bucket: TestBucket,
}

async fn start() -> Env {
    install_crypto_provider();
    let bucket = TestBucket::public("media-tasks").await;
    let domain = unique_domain();
    let mut env = bucket.server_env();
    env.push(("FEDI_DOMAIN", domain.clone()));
    let refs = env_refs(&env);
    let (api, db) = api_on_fresh_database(&refs).await;
    let redis = service_env("FEDI_TEST_REDIS_URL");
    let worker = start_worker(&db, &redis, &refs);
    let mut vars = refs.clone();
    vars.push(("FEDI_DATABASE_URL", db.as_str()));
    vars.push(("FEDI_REDIS_URL", redis.as_str()));
    let state = AppState::new(&config_from(&vars)).unwrap();
    Env {
        api,
        db,
        state,
        public: bucket.public_url(),
        _worker: worker,
        bucket,
    }
}

impl Env {
    async fn token(&self, username: &str) -> String {
        let (_, user_id) = create_user(&self.db, username, "a long password 123").await;
        issue_token(&self.db, Some(user_id), "read write").await
    }

    async fn upload(&self, token: &str, name: &str, mime: &str, bytes: &[u8]) -> Reply {
        let form = Multipart::default().file("file", name, mime, bytes);
        let req = reqwest::Client::new()
            .post(format!("{}/api/v2/media", self.api.base_url))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, Multipart::content_type())
            .body(form.finish());
        Reply::read(req.send().await.unwrap()).await
    }

    async fn show(&self, token: &str, id: &str) -> Reply {
        let req = reqwest::Client::new()
            .get(format!("{}/api/v1/media/{id}", self.api.base_url))
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        Reply::read(req.send().await.unwrap()).await
    }

    /// GET until it answers other than 206 (asserting that 206 is all it answers before).
    async fn settled(&self, token: &str, id: &str) -> Reply {
        eventually(Duration::from_secs(60), "media processed", || async {
            let reply = self.show(token, id).await;
            if reply.status == 206 {
                assert!(reply.json()["url"].is_null());
                return None;
            }
            Some(reply)
        })
        .await
    }

    async fn fetch(&self, url: &str) -> Vec<u8> {
        assert!(url.starts_with(&self.public), "{url} is not in the bucket");
        let reply = Reply::read(reqwest::get(url).await.unwrap()).await;
        assert_eq!(reply.status, 200, "{url}");
        reply.body
    }
}

fn ffmpeg(args: &[&str], out: &Path) -> Vec<u8> {
    let status = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y"])
        .args(args)
        .arg(out)
        .status()
        .expect("ffmpeg is installed");
    assert!(status.success());
    std::fs::read(out).unwrap()
}

/// ffprobe's JSON for `bytes`: the format's tags and the streams.
fn probe(bytes: &[u8], dir: &Path) -> Value {
    let file = dir.join("probe.bin");
    std::fs::write(&file, bytes).unwrap();
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

fn has_title(probe: &Value) -> bool {
    probe.to_string().to_lowercase().contains("secret")
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tasks-media-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn a_video_with_sound_is_transcoded_stripped_and_previewed() {
    let env = start().await;
    let token = env.token("filmer").await;
    let dir = temp_dir("video");
    let video = ffmpeg(
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc=duration=1:size=320x240:rate=10",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=1",
            "-metadata",
            "title=secret",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-shortest",
        ],
        &dir.join("in.mp4"),
    );
    assert!(
        has_title(&probe(&video, &dir)),
        "the input carries the title"
    );

    let reply = env.upload(&token, "holiday.mp4", "video/mp4", &video).await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    let id = reply.json()["id"].as_str().unwrap().to_string();
    let done = env.settled(&token, &id).await;
    assert_eq!(done.status, 200, "{}", done.text());
    let media = done.json();
    assert_eq!(media["type"], "video");

    let meta = &media["meta"];
    assert_eq!(meta["original"]["width"], 320);
    assert_eq!(meta["original"]["height"], 240);
    assert_eq!(meta["original"]["frame_rate"], "10/1");
    let duration = meta["original"]["duration"].as_f64().unwrap();
    assert!((0.9..1.2).contains(&duration), "{duration}");
    assert!(meta["original"]["bitrate"].as_u64().unwrap() > 0);
    assert_eq!(meta["fps"], 10);
    assert_eq!(meta["small"]["width"], 320);
    let blurhash = media["blurhash"].as_str().expect("a blurhash");
    assert!(blurhash.len() >= 6, "{blurhash}");

    let stored = env.fetch(media["url"].as_str().unwrap()).await;
    assert!(media["url"].as_str().unwrap().ends_with(".mp4"));
    let p = probe(&stored, &dir);
    assert!(!has_title(&p), "metadata stripped: {p}");
    let codecs: Vec<&str> = p["streams"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["codec_name"].as_str())
        .collect();
    assert!(
        codecs.contains(&"h264") && codecs.contains(&"aac"),
        "{codecs:?}"
    );
    let preview = env.fetch(media["preview_url"].as_str().unwrap()).await;
    assert_eq!(&preview[..3], &[0xff, 0xd8, 0xff], "a JPEG preview");

    // The raw upload is gone: only the processed original and its preview remain.
    let keys = env.bucket.keys().await;
    assert_eq!(keys.len(), 2, "{keys:?}");

    // A second run of a ready attachment changes nothing.
    fedi_server::jobs::enqueue(
        &env.state,
        Queue::Default,
        "media.process",
        serde_json::json!({"media_id": id.parse::<i64>().unwrap()}),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(env.show(&token, &id).await.json(), media);
    assert_eq!(env.bucket.keys().await, keys);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_silent_video_becomes_gifv_and_audio_becomes_mp3() {
    let env = start().await;
    let token = env.token("mixer").await;
    let dir = temp_dir("gifv");
    let silent = ffmpeg(
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc=duration=1:size=160x120:rate=10",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
        ],
        &dir.join("silent.mp4"),
    );
    let audio = ffmpeg(
        &[
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=1",
            "-metadata",
            "title=secret",
            "-c:a",
            "flac",
        ],
        &dir.join("tone.flac"),
    );
    let gif = env.upload(&token, "loop.mp4", "video/mp4", &silent).await;
    assert_eq!(gif.status, 202, "{}", gif.text());
    let sound = env.upload(&token, "tone.flac", "audio/flac", &audio).await;
    assert_eq!(sound.status, 202, "{}", sound.text());

    let gif = env
        .settled(&token, gif.json()["id"].as_str().unwrap())
        .await
        .json();
    assert_eq!(gif["type"], "gifv");
    assert_eq!(gif["meta"]["original"]["width"], 160);

    let sound = env
        .settled(&token, sound.json()["id"].as_str().unwrap())
        .await;
    assert_eq!(sound.status, 200, "{}", sound.text());
    let sound = sound.json();
    assert_eq!(sound["type"], "audio");
    let url = sound["url"].as_str().unwrap();
    assert!(url.ends_with(".mp3"), "{url}");
    let p = probe(&env.fetch(url).await, &dir);
    assert_eq!(p["streams"][0]["codec_name"], "mp3");
    assert!(!has_title(&p), "metadata stripped: {p}");
    let duration = sound["meta"]["original"]["duration"].as_f64().unwrap();
    assert!((0.9..1.2).contains(&duration), "{duration}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_garbage_video_ends_failed_without_retries() {
    let env = start().await;
    let token = env.token("prankster").await;
    // An MP4 signature, then noise: detected as a video, unreadable by ffprobe.
    let mut bytes = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom".to_vec();
    let mut noise = [0u8; 4096];
    getrandom::fill(&mut noise).unwrap();
    bytes.extend_from_slice(&noise);
    let reply = env.upload(&token, "bad.mp4", "video/mp4", &bytes).await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    let id = reply.json()["id"].as_str().unwrap().to_string();

    let done = env.settled(&token, &id).await;
    assert_eq!(done.status, 422, "{}", done.text());
    let dead = eventually(Duration::from_secs(20), "the job dead", || async {
        let dead = fedi_server::jobs::store::dead_list(&env.state, Queue::Default, 10)
            .await
            .ok()?;
        dead.into_iter().find(|d| d.job.kind == "media.process")
    })
    .await;
    assert_eq!(dead.job.retries, 0, "{:?}", dead.job);
    assert_eq!(dead.job.args["media_id"].to_string(), id);
    // Nothing of it is left in the bucket.
    assert!(env.bucket.keys().await.is_empty());
}
