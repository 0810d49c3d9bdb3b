//! The web client (`instance/web`) end to end: built, served by a real `fedi-server` on the
//! test services (PostgreSQL, Redis, S3), and driven in headless Chromium by
//! `instance/web/e2e/run.mjs` (playwright-core with Debian's `chromium`; nothing is
//! downloaded). Screenshots land in `target/web-e2e/`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn chromium() -> String {
    let path = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&path).is_file(),
        "no Chromium at {path}: install Debian's `chromium` package or set CHROMIUM to a \
         Chromium executable"
    );
    path
}

/// `make web` (npm ci and the Vite build, skipped when nothing changed), so that running this
/// test alone serves what the sources say.
fn build_web_client() -> PathBuf {
    let root = repo_root();
    let status = Command::new(root.join("scripts/web.sh"))
        .arg("build")
        .current_dir(&root)
        .status()
        .expect("run scripts/web.sh (needs bash, node and npm)");
    assert!(status.success(), "building the web client failed");
    let dist = root.join("instance/web/dist");
    assert!(
        dist.join("index.html").is_file(),
        "no index.html in {dist:?}"
    );
    dist
}

/// `GET /readyz` answers 200. By hand: the browser does all the HTTP of this test, and this
/// keeps it clear of the TLS setup of the HTTP client crates.
fn ready(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut conn) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    let request = "GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    let mut head = [0u8; 12];
    conn.write_all(request.as_bytes()).is_ok()
        && conn.read_exact(&mut head).is_ok()
        && head.ends_with(b" 200")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_web_client_signs_up_posts_follows_and_notifies_in_chromium() {
    let chromium = chromium();
    let dist = build_web_client();
    let db = migrated_database().await;
    // Removed when the test ends, however it ends.
    let bucket = TestBucket::public("web").await;
    let mut env = bucket.server_env();
    env.push(("FEDI_WEB_ROOT", dist.display().to_string()));
    env.push(("FEDI_REGISTRATIONS", "open".into()));
    // The throttles count by client address in the shared test Redis, and every test here
    // comes from 127.0.0.1: sign-ups and app registrations of earlier runs would count.
    env.push((
        "FEDI_RATE_LIMITS",
        "api=off,sign_up=off,sign_in=off,apps=off,media=off,statuses=off".into(),
    ));
    // `all`: the api with the worker (fan-out, notifications) and the streamer on one port,
    // as `make dev` runs them.
    let port = free_port();
    let base_url = format!("http://127.0.0.1:{port}");
    let log = std::fs::File::create(std::env::temp_dir().join(format!("web-e2e-{port}.log")))
        .expect("server log file");
    let child = server_command(&db, &service_env("FEDI_TEST_REDIS_URL"))
        .arg("all")
        .env("FEDI_LISTEN", format!("127.0.0.1:{port}"))
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("spawn fedi-server all");
    let _server = Server {
        child,
        base_url: base_url.clone(),
    };
    eventually(
        Duration::from_secs(30),
        "fedi-server all to be ready",
        || async { ready(port).then_some(()) },
    )
    .await;

    let artifacts = repo_root().join("target/web-e2e");
    let started = Instant::now();
    // The script confirms sign-ups with `fedi-server admin`, which reads the same settings.
    let output = Command::new("node")
        .arg("e2e/run.mjs")
        .current_dir(repo_root().join("instance/web"))
        .env("WEB_BASE_URL", &base_url)
        .env("FEDI_SERVER_BIN", env!("CARGO_BIN_EXE_fedi-server"))
        .env("FEDI_DOMAIN", "test.example")
        .env("FEDI_DATABASE_URL", &db)
        .env("FEDI_REDIS_URL", service_env("FEDI_TEST_REDIS_URL"))
        .env("CHROMIUM", &chromium)
        .env("WEB_E2E_ARTIFACTS", &artifacts)
        .stdin(Stdio::null())
        .output()
        .expect("run node (Node.js 20.19+ is required)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    println!("browser test took {:?}", started.elapsed());
    assert!(
        output.status.success(),
        "the browser test failed; server log in {:?}",
        std::env::temp_dir().join(format!("web-e2e-{port}.log"))
    );
    for name in [
        "signup",
        "home-desktop",
        "profile-phone",
        "notifications",
        "thread",
    ] {
        assert!(
            artifacts.join(format!("{name}.png")).is_file(),
            "screenshot {name}.png missing"
        );
    }
}
