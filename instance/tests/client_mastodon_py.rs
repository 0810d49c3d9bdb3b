//! Mastodon.py (from PyPI, unchanged; the venv of scripts/client-venv.sh) uses a real server
//! the way an application does: it registers an app and two accounts, signs in with the
//! password grant, uploads an image and posts it, follows, searches, and pages the home
//! timeline with `fetch_next` and `max_id`. The server runs with rate limits on, so the
//! library also reads the rate-limit headers of every answer.

mod common;

use std::process::Command;

use common::*;
use serde_json::{Value, json};

/// The venv of scripts/client-venv.sh, built on first use and cached.
fn client_python() -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/client-venv.sh");
    let out = Command::new(script)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
    assert!(
        out.status.success(),
        "{script} failed: the Mastodon.py tests need python3 with venv and pip, and PyPI (or \
         PIP_INDEX_URL). Install python3-venv, then run the script by hand to see more.\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Runs the client script; its JSON output.
fn run_script(python: &str, args: &[&str]) -> Value {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/mastodon_py_session.py"
    );
    // Blocking is fine: the server is another process.
    let out = Command::new(python)
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "Mastodon.py failed ({args:?}):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stdout));
    })
}

/// An address of the documentation range (never contacted: it only travels in
/// X-Forwarded-For) that this run's rate-limit counters alone use.
fn client_ip() -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "2001:db8:{:x}:{:x}::1",
        (n >> 16) as u16,
        std::process::id() as u16
    )
}

#[tokio::test]
async fn mastodon_py_registers_posts_follows_and_pages_home() {
    // reqwest's TLS comes without a crypto provider in this build: the server's, ring.
    install_crypto_provider();
    let python = client_python();
    let bucket = TestBucket::public("pyclient").await;
    let env = bucket.server_env();
    let (server, db) = api_on_fresh_database(&env_refs(&env)).await;
    let state = tempdir();
    let ip = client_ip();
    let state_dir = state.to_str().unwrap();

    let registered = run_script(
        &python,
        &["register", &server.base_url, state_dir, &ip, "alice", "bob"],
    );
    assert_eq!(
        registered,
        json!({"accounts": {"alice": {"token_issued": true}, "bob": {"token_issued": true}}})
    );
    // The e-mail links, as an operator would confirm them.
    for user in ["alice", "bob"] {
        let out = server_command(&db, &service_env("FEDI_TEST_REDIS_URL"))
            .args(["admin", "accounts", "confirm", user])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let seen = run_script(&python, &["use", &server.base_url, state_dir, &ip]);
    assert_eq!(seen["me"], json!({"username": "alice", "acct": "alice"}));
    assert_eq!(seen["bob"]["username"], "bob");
    assert_eq!(seen["following"], true);
    assert_eq!(
        seen["media"],
        json!({
            "type": "image",
            "description": "a red rectangle",
            "width": 40,
            "height": 30,
            "url_is_https_or_http": true,
            "blurhash": true,
        })
    );
    assert_eq!(seen["own"]["content"], "<p>my picture</p>");
    assert_eq!(seen["own"]["has_datetime"], true);
    assert_eq!(seen["own"]["media_ids"].as_array().unwrap().len(), 1);

    // Home: Alice's post, then Bob's four, newest first, in pages of 2 that fetch_next
    // walks to the end without a gap or a repeat.
    let expected: Vec<&str> = seen["expected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(expected.len(), 5);
    let pages: Vec<Vec<&str>> = seen["pages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            p.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(pages.len(), 3, "{pages:?}");
    assert!(pages.iter().all(|p| p.len() <= 2), "{pages:?}");
    assert_eq!(pages.concat(), expected);
    assert_eq!(seen["after_second"], json!(expected[2..]));

    // The rate-limit headers, as the library understood them.
    assert_eq!(seen["ratelimit"]["limit"], 300);
    let remaining = seen["ratelimit"]["remaining"].as_i64().unwrap();
    assert!((250..300).contains(&remaining), "{remaining}");
    assert_eq!(seen["ratelimit"]["reset_in_future"], true);

    // Search: the two "early" posts, the hashtag by its prefix, Bob by his.
    let mut early: Vec<&str> = expected[3..].to_vec();
    early.sort();
    assert_eq!(seen["search_statuses"], json!(early));
    assert_eq!(seen["search_hashtags"], json!(["pytest"]));
    assert_eq!(seen["search_accounts"], json!(["bob"]));
}

/// A directory of its own for the client's files, removed at the end.
struct TempDir(std::path::PathBuf);

impl std::ops::Deref for TempDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir() -> TempDir {
    let dir = std::env::temp_dir().join(format!(
        "fedi-pyclient-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}
