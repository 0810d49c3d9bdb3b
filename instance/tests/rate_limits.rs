//! Rate limits over HTTP against the real server and Redis (standalone and the 6-node
//! cluster): the headers on every answer, 429 past a limit, separate counters per token,
//! per client address and per group, counters shared by api replicas, who is believed about
//! the client's address, invalid tokens counted per address, and serving on when Redis is
//! gone.
//!
//! Loopback clients are never limited (as in Mastodon), so each test names its client in
//! X-Forwarded-For (loopback is a trusted proxy by default), with documentation-range
//! addresses unique to the run: counters of earlier runs, still in the shared Redis, never
//! meet them.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};

use common::*;
use serde_json::json;

/// The tests' HTTP client. reqwest's TLS comes without a crypto provider in this build (the
/// server links rustls on ring): it is installed once, as the server does.
fn http() -> reqwest::Client {
    install_crypto_provider();
    reqwest::Client::new()
}

/// A client address used by this run only (2001:db8::/32, never contacted: it only travels
/// in a header). Each differs in its /64, the unit the server counts IPv6 clients by.
fn fresh_ip() -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "2001:db8:{:x}:{:x}::7",
        (nanos >> 20) as u16 ^ std::process::id() as u16,
        SEQ.fetch_add(1, Ordering::Relaxed) as u16 ^ (nanos as u16)
    )
}

async fn call(
    method: &str,
    base: &str,
    path: &str,
    token: Option<&str>,
    ip: Option<&str>,
) -> Reply {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = http().request(method, format!("{base}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(ip) = ip {
        req = req.header("x-forwarded-for", ip);
    }
    Reply::read(req.send().await.expect("the server answers")).await
}

async fn get(base: &str, path: &str, token: Option<&str>, ip: &str) -> Reply {
    call("GET", base, path, token, Some(ip)).await
}

/// The three headers, the reset as seconds from now.
#[track_caller]
fn limit_headers(reply: &Reply) -> (u64, u64, i64) {
    let limit = reply
        .header("x-ratelimit-limit")
        .expect("X-RateLimit-Limit");
    let remaining = reply
        .header("x-ratelimit-remaining")
        .expect("X-RateLimit-Remaining");
    let reset = reply
        .header("x-ratelimit-reset")
        .expect("X-RateLimit-Reset");
    // Mastodon's form: 2026-11-28T02:05:00.123456Z.
    assert!(
        reset.len() == 27 && reset.ends_with('Z') && reset.as_bytes()[19] == b'.',
        "{reset}"
    );
    let reset = chrono_like_seconds(reset);
    (limit.parse().unwrap(), remaining.parse().unwrap(), reset)
}

/// Seconds from now until an ISO 8601 UTC instant (the tests' reqwest brings no date crate).
fn chrono_like_seconds(iso: &str) -> i64 {
    let n = |a: usize, b: usize| iso[a..b].parse::<i64>().unwrap();
    let (y, m, d) = (n(0, 4), n(5, 7), n(8, 10));
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let at = days * 86_400 + n(11, 13) * 3600 + n(14, 16) * 60 + n(17, 19);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    at - now
}

#[tokio::test]
async fn a_small_limit_answers_429_with_the_headers_per_token_and_per_address() {
    http();
    let (server, db) = api_on_fresh_database(&[("FEDI_RATE_LIMITS", "api=3/1h")]).await;
    let base = &server.base_url;
    let (_, alice) = create_user(&db, "alice", "pw-alice-1").await;
    let (_, bob) = create_user(&db, "bob", "pw-bob-1").await;
    let alice = issue_token(&db, Some(alice), "read").await;
    let bob = issue_token(&db, Some(bob), "read").await;
    let ip = fresh_ip();

    for left in [2, 1, 0] {
        let reply = get(
            base,
            "/api/v1/accounts/verify_credentials",
            Some(&alice),
            &ip,
        )
        .await
        .expect(200);
        let (limit, remaining, reset) = limit_headers(&reply);
        assert_eq!((limit, remaining), (3, left));
        assert!((3590..=3600).contains(&reset), "{reset}");
    }
    let refused = get(
        base,
        "/api/v1/accounts/verify_credentials",
        Some(&alice),
        &ip,
    )
    .await
    .expect(429);
    assert_eq!(refused.json(), json!({"error": "Too many requests"}));
    assert_eq!(refused.header("content-type"), Some("application/json"));
    let (limit, remaining, reset) = limit_headers(&refused);
    assert_eq!((limit, remaining), (3, 0));
    assert!((3590..=3600).contains(&reset), "{reset}");
    // The token's counter covers every API endpoint.
    get(base, "/api/v1/instance", Some(&alice), &ip)
        .await
        .expect(429);

    // Another token from the same address has its own counter.
    let reply = get(base, "/api/v1/accounts/verify_credentials", Some(&bob), &ip)
        .await
        .expect(200);
    assert_eq!(limit_headers(&reply).1, 2);

    // Without a token, each address has its own.
    let (one, two) = (fresh_ip(), fresh_ip());
    for _ in 0..3 {
        get(base, "/api/v1/instance", None, &one).await.expect(200);
    }
    get(base, "/api/v1/instance", None, &one).await.expect(429);
    let reply = get(base, "/api/v1/instance", None, &two).await.expect(200);
    assert_eq!(limit_headers(&reply).1, 2);

    // Outside /api/ nothing is counted, and loopback clients are never limited.
    let health = get(base, "/health", None, &one).await.expect(200);
    assert!(health.header("x-ratelimit-limit").is_none());
    for _ in 0..5 {
        let local = call("GET", base, "/api/v1/instance", None, None)
            .await
            .expect(200);
        assert!(local.header("x-ratelimit-limit").is_none());
    }
}

#[tokio::test]
async fn stricter_groups_count_on_their_own() {
    http();
    let (server, _db) = api_on_fresh_database(&[(
        "FEDI_RATE_LIMITS",
        "api=50/1h,sign_up=2/30m,sign_in=2/5m,apps=1/10m",
    )])
    .await;
    let base = &server.base_url;
    let ip = fresh_ip();

    // Sign-in: failed attempts count too (that is the point).
    for _ in 0..2 {
        let reply = call("POST", base, "/oauth/token", None, Some(&ip)).await;
        assert_ne!(reply.status, 429);
        assert_eq!(limit_headers(&reply).0, 2);
    }
    let refused = call("POST", base, "/oauth/token", None, Some(&ip))
        .await
        .expect(429);
    let (limit, remaining, reset) = limit_headers(&refused);
    assert_eq!((limit, remaining), (2, 0));
    assert!((290..=300).contains(&reset), "{reset}");

    // Sign-up, per address; the API's own counter shows the tighter group's numbers.
    for left in [1, 0] {
        let reply = call("POST", base, "/api/v1/accounts", None, Some(&ip)).await;
        assert_ne!(reply.status, 429);
        let (limit, remaining, _) = limit_headers(&reply);
        assert_eq!((limit, remaining), (2, left));
    }
    call("POST", base, "/api/v1/accounts", None, Some(&ip))
        .await
        .expect(429);
    // Sign-up's limit leaves the rest of the API alone (its counter has seen the three
    // sign-ups and this request).
    let reply = get(base, "/api/v1/instance", None, &ip).await.expect(200);
    let (limit, remaining, _) = limit_headers(&reply);
    assert_eq!((limit, remaining), (50, 46));

    // App registrations.
    let other = fresh_ip();
    let app = call("POST", base, "/api/v1/apps", None, Some(&other)).await;
    assert_ne!(app.status, 429);
    call("POST", base, "/api/v1/apps", None, Some(&other))
        .await
        .expect(429);
}

#[tokio::test]
async fn invalid_tokens_count_against_the_address() {
    http();
    let (server, db) = api_on_fresh_database(&[("FEDI_RATE_LIMITS", "api=2/1h")]).await;
    let base = &server.base_url;
    let ip = fresh_ip();
    for i in 0..2 {
        get(
            base,
            "/api/v1/accounts/verify_credentials",
            Some(&format!("made-up-{i}")),
            &ip,
        )
        .await
        .expect(401);
    }
    // A third made-up token is refused before it reaches the database.
    get(
        base,
        "/api/v1/accounts/verify_credentials",
        Some("made-up-2"),
        &ip,
    )
    .await
    .expect(429);
    // A real token elsewhere is not affected.
    let (_, carol) = create_user(&db, "carol", "pw-carol-1").await;
    let carol = issue_token(&db, Some(carol), "read").await;
    get(
        base,
        "/api/v1/accounts/verify_credentials",
        Some(&carol),
        &fresh_ip(),
    )
    .await
    .expect(200);
}

#[tokio::test]
async fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
    http();
    // Loopback is no trusted proxy here: the peer (127.0.0.1) is the client, and loopback
    // clients are not limited, whatever X-Forwarded-For claims.
    let (server, _db) = api_on_fresh_database(&[
        ("FEDI_RATE_LIMITS", "api=1/1h"),
        ("FEDI_TRUSTED_PROXIES", "10.0.0.0/8"),
    ])
    .await;
    let ip = fresh_ip();
    for _ in 0..3 {
        let reply = get(&server.base_url, "/api/v1/instance", None, &ip)
            .await
            .expect(200);
        assert!(reply.header("x-ratelimit-limit").is_none());
    }
}

#[tokio::test]
async fn requests_are_served_when_redis_is_down() {
    http();
    let db = migrated_database().await;
    // Nothing listens there.
    let redis = format!("redis://127.0.0.1:{}", free_port());
    let server = start_api_with(&db, &redis, &[("FEDI_RATE_LIMITS", "api=1/1h")]).await;
    let ip = fresh_ip();
    for _ in 0..3 {
        let reply = get(&server.base_url, "/api/v1/instance", None, &ip)
            .await
            .expect(200);
        assert!(reply.header("x-ratelimit-limit").is_none());
    }
}

#[tokio::test]
async fn replicas_share_the_counters_on_a_redis_cluster() {
    http();
    let db = migrated_database().await;
    let nodes = service_env("FEDI_TEST_REDIS_CLUSTER_NODES");
    let env = [
        ("FEDI_REDIS_MODE", "cluster"),
        ("FEDI_RATE_LIMITS", "api=4/1h"),
    ];
    let one = start_api_with(&db, &nodes, &env).await;
    let two = start_api_with(&db, &nodes, &env).await;
    let (_, dave) = create_user(&db, "dave", "pw-dave-1").await;
    let dave = issue_token(&db, Some(dave), "read").await;
    let ip = fresh_ip();
    // Alternating between the two replicas, one counter.
    for (i, server) in [&one, &two, &one, &two].iter().enumerate() {
        let reply = get(
            &server.base_url,
            "/api/v1/accounts/verify_credentials",
            Some(&dave),
            &ip,
        )
        .await
        .expect(200);
        assert_eq!(limit_headers(&reply).1, 3 - i as u64);
    }
    for server in [&one, &two] {
        get(
            &server.base_url,
            "/api/v1/accounts/verify_credentials",
            Some(&dave),
            &ip,
        )
        .await
        .expect(429);
    }
    // Anonymous counters of several addresses, spread over the cluster's nodes.
    for _ in 0..4 {
        let ip = fresh_ip();
        for _ in 0..4 {
            get(&two.base_url, "/api/v1/instance", None, &ip)
                .await
                .expect(200);
        }
        get(&one.base_url, "/api/v1/instance", None, &ip)
            .await
            .expect(429);
    }
}
