//! A real client, Mastodon.py, streams a user through two streamer processes on different
//! ports while another user posts through the api: the worker's fan-out delivers the `update`
//! and the api the mention's `notification`, and both streams receive both events.

mod common;
#[path = "streaming/support.rs"]
mod support;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use fedi_server::events::channel;
use serde_json::Value;
use std::io::BufRead;
use support::*;

/// The venv of scripts/client-venv.sh, built on first use and cached.
fn client_python() -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/client-venv.sh");
    let out = std::process::Command::new(script)
        .stderr(Stdio::inherit())
        .output()
        .expect("run scripts/client-venv.sh");
    assert!(out.status.success(), "scripts/client-venv.sh failed");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A child killed when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn call(api: &Server, token: &str, path: &str, form: &[(&str, &str)]) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{}{path}", api.base_url))
        .bearer_auth(token)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(form).unwrap())
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test]
async fn mastodon_py_receives_updates_and_notifications_through_two_streamers() {
    let python = client_python();
    let db = migrated_database().await;
    let redis = service_env("FEDI_TEST_REDIS_URL");
    let domain = unique_domain();
    let env = [("FEDI_DOMAIN", domain.as_str())];
    let api = start_api_with(&db, &redis, &env).await;
    let _worker = start_worker(&db, &redis, &env);
    let one = start_streamer(&db, &redis, &env).await;
    let two = start_streamer(&db, &redis, &env).await;
    let state = support::app_state_of(&domain, &db, &redis, false);

    let (alice, alice_user) = create_user(&db, "alice", "correct horse battery").await;
    let alice_token = issue_token(&db, Some(alice_user), "read write follow").await;
    let (bob, bob_user) = create_user(&db, "bob", "correct horse battery").await;
    let bob_token = issue_token(&db, Some(bob_user), "read write follow").await;
    call(
        &api,
        &alice_token,
        &format!("/api/v1/accounts/{bob}/follow"),
        &[],
    )
    .await;

    let mut child = Child(
        std::process::Command::new(python)
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/clients/mastodon_py_streaming.py"
            ))
            .arg(&alice_token)
            .arg(&one.base_url)
            .arg(&two.base_url)
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .expect("run the Mastodon.py client"),
    );
    // The client's lines, read on a thread of their own.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let stdout = child.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // The client's next event within `timeout`.
    let mut next = async |timeout: Duration| -> Option<Value> {
        let line = tokio::time::timeout(timeout, rx.recv())
            .await
            .ok()?
            .expect("the client exited");
        let v: Value = serde_json::from_str(&line).unwrap();
        assert!(v.get("error").is_none(), "{v}");
        Some(v)
    };

    // Both streams open: probes (unknown events to the library, with a JSON payload as it
    // expects) reach both.
    let mut open = [false, false];
    let probe = fedi_server::events::Event {
        event: PROBE.into(),
        payload: "{}".into(),
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while open != [true, true] {
        publish(&state, &channel::user(alice), &probe).await;
        // Until the client has connected, a probe reaches nobody: publish again.
        while let Some(v) = next(Duration::from_millis(500)).await {
            if v["event"] == PROBE {
                open[v["via"].as_u64().unwrap() as usize] = true;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "streams open: {open:?}"
        );
    }

    let status = call(
        &api,
        &bob_token,
        "/api/v1/statuses",
        &[("status", "hello @alice, streaming works")],
    )
    .await;
    let id = status["id"].as_str().unwrap().to_string();
    let mut updates = [false, false];
    let mut notifications = [false, false];
    while updates != [true, true] || notifications != [true, true] {
        let v = next(Duration::from_secs(30))
            .await
            .expect("the client printed nothing for 30 s");
        let via = v["via"].as_u64().unwrap() as usize;
        match v["event"].as_str().unwrap() {
            "update" => {
                assert_eq!(
                    (v["id"].as_str(), v["account"].as_str()),
                    (Some(id.as_str()), Some("bob"))
                );
                assert!(
                    v["content"].as_str().unwrap().contains("streaming works"),
                    "{v}"
                );
                updates[via] = true;
            }
            "notification" => {
                assert_eq!(v["type"], "mention", "{v}");
                assert_eq!(
                    (v["account"].as_str(), v["status"].as_str()),
                    (Some("bob"), Some(id.as_str()))
                );
                notifications[via] = true;
            }
            _ => {}
        }
    }
}
