//! The binary's roles work against real PostgreSQL and Redis (the streamer's own tests are
//! in streaming.rs).

mod common;

use common::*;
use serde_json::Value;

#[test]
fn a_configuration_error_names_the_variable() {
    let out = server_command("postgres://x/y", "redis://x")
        .env_remove("FEDI_DOMAIN")
        .arg("api")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("FEDI_DOMAIN is required"));
}

#[tokio::test]
async fn api_is_ready_with_its_dependencies_and_speaks_mastodon_errors() {
    let db = fresh_database().await;
    let server = start_api(&db, &service_env("FEDI_TEST_REDIS_URL")).await;

    let health = reqwest::get(format!("{}/health", server.base_url))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), "OK");

    let ready = reqwest::get(format!("{}/readyz", server.base_url))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["database"], "ok");
    assert_eq!(body["checks"]["redis"], "ok");

    let missing = reqwest::get(format!("{}/api/v1/nothing-here", server.base_url))
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"error": "Record not found"}));
}

#[tokio::test]
async fn api_works_against_a_redis_cluster() {
    let db = fresh_database().await;
    let nodes = service_env("FEDI_TEST_REDIS_CLUSTER_NODES");
    let server = start_api_with(&db, &nodes, &[("FEDI_REDIS_MODE", "cluster")]).await;
    let ready = reqwest::get(format!("{}/readyz", server.base_url))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200, "{}", ready.text().await.unwrap());
}

#[tokio::test]
async fn a_missing_dependency_makes_the_api_unready_without_revealing_where_it_is() {
    let db = fresh_database().await;
    // Nothing listens on this port: Redis is "down".
    let dead_redis = format!("redis://:s3cret-password@127.0.0.1:{}", free_port());
    let server = start_api(&db, &dead_redis).await;

    let ready = reqwest::get(format!("{}/readyz", server.base_url))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let text = ready.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["checks"]["database"], "ok");
    assert_eq!(body["checks"]["redis"], "unavailable");
    assert!(
        !text.contains("s3cret") && !text.contains("127.0.0.1"),
        "{text}"
    );
}

/// A `redis-server` requiring a password, on its own port, stopped when dropped.
struct ProtectedRedis {
    child: std::process::Child,
    url: String,
}

impl Drop for ProtectedRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn protected_redis(password: &str) -> ProtectedRedis {
    let port = free_port();
    let child = std::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args([
            "--save",
            "",
            "--appendonly",
            "no",
            "--requirepass",
            password,
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server is installed by `make services-up`");
    let addr = format!("127.0.0.1:{port}");
    eventually(
        std::time::Duration::from_secs(10),
        "redis-server to listen",
        || async { tokio::net::TcpStream::connect(&addr).await.ok() },
    )
    .await;
    ProtectedRedis {
        child,
        url: format!("redis://127.0.0.1:{port}"),
    }
}

#[tokio::test]
async fn a_separate_redis_password_reaches_redis() {
    let db = fresh_database().await;
    let redis = protected_redis("k8s-generated-pw").await;

    let without = start_api(&db, &redis.url).await;
    let ready = reqwest::get(format!("{}/readyz", without.base_url))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503, "no password, no Redis");

    let with = start_api_with(
        &db,
        &redis.url,
        &[("FEDI_REDIS_PASSWORD", "k8s-generated-pw")],
    )
    .await;
    let ready = reqwest::get(format!("{}/readyz", with.base_url))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200, "{}", ready.text().await.unwrap());
}

#[tokio::test]
async fn browsers_may_call_the_api_from_other_origins_and_trailing_slashes_are_ignored() {
    let (server, _db) = api_on_fresh_database(&[]).await;
    let client = reqwest::Client::new();
    let preflight = client
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/api/v1/accounts/verify_credentials", server.base_url),
        )
        .header("Origin", "https://elk.zone")
        .header("Access-Control-Request-Method", "GET")
        .header("Access-Control-Request-Headers", "authorization")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(preflight.headers()["access-control-allow-origin"], "*");
    let page = client
        .get(format!("{}/api/v1/instance", server.base_url))
        .header("Origin", "https://phanpy.social")
        .send()
        .await
        .unwrap();
    let exposed = page.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("link"), "{exposed}");
    for path in ["/health/", "/api/v1/instance/"] {
        let r = reqwest::get(format!("{}{path}", server.base_url))
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
}
