//! Rate limits, as Mastodon's rack-attack throttles: every `/api/` request counts per token
//! (per client address without one), and sign-up, sign-in, app registration, media uploads
//! and status creation have stricter groups of their own (`fedi_config::RateLimitGroup`).
//!
//! Counters live in Redis so that every api replica shares them: one key per group and
//! client, a fixed window started by its first request (INCR, then PEXPIRE, in one script).
//! Each key holds its hash tag whole, so a cluster routes it to one node. Answers carry
//! `X-RateLimit-Limit`, `-Remaining` and `-Reset` (ISO 8601) of the tightest group; beyond
//! a limit the answer is 429 `{"error":"Too many requests"}`. When Redis cannot answer the
//! request is served anyway (and logged): an outage of the counters must not become one of
//! the API.
//!
//! Loopback clients are never limited, as in Mastodon (health probes, tools on the host).
//! A token is counted by its digest without a database lookup; so that made-up tokens do not
//! escape the per-address limit, each 401 answered to a token also counts against the
//! client's address, and a token request from an address over that limit is refused.

mod client_ip;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use fedi_config::{Limit, RateLimitGroup};
use sqlx::types::chrono::Utc;
use tracing::warn;

use crate::api::ApiError;
use crate::auth::credentials::digest;
use crate::state::{AppState, Redis};

pub use client_ip::client_ip;

/// How long a request waits for the counters before it is served without them.
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);

/// One counter a request is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Check {
    limit: Limit,
    key: String,
}

/// A counter after this request: how many it has seen and when it starts again.
#[derive(Debug, Clone, Copy)]
struct Count {
    limit: u32,
    used: u64,
    reset_in: Duration,
}

impl Count {
    fn remaining(&self) -> u64 {
        u64::from(self.limit).saturating_sub(self.used)
    }

    fn exceeded(&self) -> bool {
        self.used > u64::from(self.limit)
    }

    fn headers(&self, headers: &mut HeaderMap) {
        let reset = Utc::now() + self.reset_in;
        let values = [
            ("x-ratelimit-limit", self.limit.to_string()),
            ("x-ratelimit-remaining", self.remaining().to_string()),
            (
                "x-ratelimit-reset",
                // Mastodon's form: ISO 8601 in UTC with microseconds.
                reset.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
            ),
        ];
        for (name, value) in values {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(name, v);
            }
        }
    }
}

/// Who a counter counts: a token (its digest) or a client address. On Redis the name
/// goes within the instance's namespace (`hit`, `peek`; see `redis_keys`).
fn key(group: &str, subject: &str) -> String {
    // The whole name inside the hash tag: one slot per counter, whatever the group.
    format!("ratelimit:{{{group}:{subject}}}")
}

/// The groups a request falls in, with the counter of each; `token` is the digest of its
/// bearer token.
fn checks(
    method: &Method,
    path: &str,
    token: Option<&str>,
    ip: &str,
    limit_of: impl Fn(RateLimitGroup) -> Option<Limit>,
) -> Vec<Check> {
    let by_token = |group: RateLimitGroup| match token {
        Some(t) => key(group.name(), &format!("token:{t}")),
        None => key(group.name(), &format!("ip:{ip}")),
    };
    let by_ip = |group: RateLimitGroup| key(group.name(), &format!("ip:{ip}"));
    let post = method == Method::POST;
    let mut groups = Vec::new();
    if path.starts_with("/api/") {
        groups.push((RateLimitGroup::Api, by_token(RateLimitGroup::Api)));
    }
    match path {
        "/api/v1/accounts" if post => {
            groups.push((RateLimitGroup::SignUp, by_ip(RateLimitGroup::SignUp)))
        }
        "/oauth/token" | "/oauth/authorize" if post => {
            groups.push((RateLimitGroup::SignIn, by_ip(RateLimitGroup::SignIn)))
        }
        // Password resets mail someone and try tokens: throttled as sign-in attempts.
        "/auth/password" if post || method == Method::PUT => {
            groups.push((RateLimitGroup::SignIn, by_ip(RateLimitGroup::SignIn)))
        }
        "/api/v1/apps" if post => groups.push((RateLimitGroup::Apps, by_ip(RateLimitGroup::Apps))),
        "/api/v1/media" | "/api/v2/media" if post => {
            groups.push((RateLimitGroup::Media, by_token(RateLimitGroup::Media)))
        }
        "/api/v1/statuses" if post => {
            groups.push((RateLimitGroup::Statuses, by_token(RateLimitGroup::Statuses)))
        }
        _ => {}
    }
    groups
        .into_iter()
        .filter_map(|(group, key)| limit_of(group).map(|limit| Check { limit, key }))
        .collect()
}

/// Counts one request on `key`; the window starts with its first request.
async fn hit(redis: &Redis, check: &Check) -> redis::RedisResult<Count> {
    const SCRIPT: &str = "\
        local n = redis.call('INCR', KEYS[1]) \
        local ttl = redis.call('PTTL', KEYS[1]) \
        if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) ttl = tonumber(ARGV[1]) end \
        return {n, ttl}";
    let period = check.limit.period.as_millis().to_string();
    let (used, ttl): (u64, i64) = redis
        .eval(SCRIPT, &[&redis.keys().key(&check.key)], &[period])
        .await?;
    Ok(Count {
        limit: check.limit.requests,
        used,
        reset_in: Duration::from_millis(ttl.max(0) as u64),
    })
}

/// Reads a counter without counting.
async fn peek(redis: &Redis, check: &Check) -> redis::RedisResult<Count> {
    const SCRIPT: &str = "\
        return {tonumber(redis.call('GET', KEYS[1]) or '0'), redis.call('PTTL', KEYS[1])}";
    let (used, ttl): (u64, i64) = redis
        .eval(SCRIPT, &[&redis.keys().key(&check.key)], &[])
        .await?;
    Ok(Count {
        limit: check.limit.requests,
        used,
        reset_in: Duration::from_millis(ttl.max(0) as u64),
    })
}

/// The counters of a request, after counting it. The first exceeded one, else the one with
/// the fewest requests left.
async fn evaluate(
    redis: &Redis,
    checks: &[Check],
    bad_tokens: Option<&Check>,
) -> redis::RedisResult<Count> {
    let mut tightest: Option<Count> = None;
    for check in checks {
        let count = hit(redis, check).await?;
        if count.exceeded() {
            return Ok(count);
        }
        if tightest.is_none_or(|t| count.remaining() < t.remaining()) {
            tightest = Some(count);
        }
    }
    if let Some(check) = bad_tokens {
        let count = peek(redis, check).await?;
        // Over the limit of invalid tokens: refused until its window ends.
        if count.used >= u64::from(count.limit) {
            return Ok(Count {
                used: count.used + 1,
                ..count
            });
        }
    }
    Ok(tightest.expect("evaluate is called with at least one check"))
}

fn too_many(count: &Count) -> Response {
    let mut response = ApiError::TooManyRequests.into_response();
    count.headers(response.headers_mut());
    response
}

/// The tower layer (`axum::middleware::from_fn_with_state`) around the whole router.
pub async fn limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let config = &state.config.rate_limits;
    // Without a socket (a router driven in-process) there is no client to count.
    let Some(peer) = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
    else {
        return next.run(request).await;
    };
    let ip: IpAddr = client_ip(peer, request.headers(), config);
    if ip.is_loopback() {
        return next.run(request).await;
    }
    let ip_key = client_ip::throttle_key(ip);
    let (parts, body) = request.into_parts();
    let token = crate::auth::token::bearer(&parts).map(|t| digest(&t));
    let request = Request::from_parts(parts, body);
    let checks = checks(
        request.method(),
        request.uri().path(),
        token.as_deref(),
        &ip_key,
        |g| config.limit(g),
    );
    if checks.is_empty() {
        return next.run(request).await;
    }
    // Invalid tokens count against the client's address, with the API's limit.
    let bad_tokens = match (&token, config.limit(RateLimitGroup::Api)) {
        (Some(_), Some(limit)) => Some(Check {
            limit,
            key: key("api_bad_token", &format!("ip:{ip_key}")),
        }),
        _ => None,
    };
    let count = match tokio::time::timeout(
        REDIS_TIMEOUT,
        evaluate(&state.redis, &checks, bad_tokens.as_ref()),
    )
    .await
    {
        Ok(Ok(count)) => Some(count),
        Ok(Err(e)) => {
            warn!(error = %e, "rate limits not checked: Redis failed; request served");
            None
        }
        Err(_) => {
            warn!("rate limits not checked: Redis did not answer in time; request served");
            None
        }
    };
    if let Some(count) = count.filter(Count::exceeded) {
        return too_many(&count);
    }
    let mut response = next.run(request).await;
    if let Some(count) = &count {
        count.headers(response.headers_mut());
    }
    if let (StatusCode::UNAUTHORIZED, Some(check)) = (response.status(), &bad_tokens) {
        match tokio::time::timeout(REDIS_TIMEOUT, hit(&state.redis, check)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => warn!(error = %e, "invalid token not counted: Redis failed"),
            Err(_) => warn!("invalid token not counted: Redis did not answer in time"),
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(requests: u32) -> Option<Limit> {
        Some(Limit {
            requests,
            period: Duration::from_secs(60),
        })
    }

    #[test]
    fn requests_fall_in_their_groups() {
        let all = |g: RateLimitGroup| match g {
            RateLimitGroup::Statuses => None,
            _ => limit(10),
        };
        let keys = |method: Method, path: &str, token: Option<&str>| -> Vec<String> {
            checks(&method, path, token, "203.0.113.5", all)
                .into_iter()
                .map(|c| c.key)
                .collect()
        };
        assert_eq!(
            keys(Method::GET, "/api/v1/timelines/home", Some("d1")),
            ["ratelimit:{api:token:d1}"]
        );
        assert_eq!(
            keys(Method::POST, "/api/v1/accounts", Some("d1")),
            [
                "ratelimit:{api:token:d1}",
                "ratelimit:{sign_up:ip:203.0.113.5}"
            ]
        );
        assert_eq!(
            keys(Method::POST, "/oauth/token", None),
            ["ratelimit:{sign_in:ip:203.0.113.5}"]
        );
        assert_eq!(
            keys(Method::POST, "/api/v2/media", None),
            [
                "ratelimit:{api:ip:203.0.113.5}",
                "ratelimit:{media:ip:203.0.113.5}"
            ]
        );
        // A group turned off is not counted.
        assert_eq!(
            keys(Method::POST, "/api/v1/statuses", Some("d1")),
            ["ratelimit:{api:token:d1}"]
        );
        assert!(keys(Method::GET, "/oauth/token", None).is_empty());
        assert_eq!(
            keys(Method::PUT, "/auth/password", None),
            ["ratelimit:{sign_in:ip:203.0.113.5}"]
        );
        assert!(keys(Method::GET, "/auth/password/new", None).is_empty());
        assert!(keys(Method::GET, "/health", None).is_empty());
    }

    #[test]
    fn counts_report_what_is_left() {
        let c = Count {
            limit: 3,
            used: 4,
            reset_in: Duration::from_secs(30),
        };
        assert!(c.exceeded());
        assert_eq!(c.remaining(), 0);
        let mut headers = HeaderMap::new();
        c.headers(&mut headers);
        assert_eq!(headers["x-ratelimit-limit"], "3");
        assert_eq!(headers["x-ratelimit-remaining"], "0");
        let reset = headers["x-ratelimit-reset"].to_str().unwrap();
        let reset = sqlx::types::chrono::DateTime::parse_from_rfc3339(reset).unwrap();
        let ahead = reset.signed_duration_since(Utc::now()).num_seconds();
        assert!((28..=30).contains(&ahead), "{ahead}");
    }
}
