//! SearchReady. Search is optional: without it the server searches with PostgreSQL's
//! full-text search, which is ready whenever the database is. The managed OpenSearch is
//! ready when its pods are (their readiness probe asks the cluster's health); an external
//! one when its banner (`GET /`, with the instance's credentials) says OpenSearch or
//! Elasticsearch: a port that merely accepts connections may be the wrong service, and a
//! refused password would otherwise only show in the server's logs.

use std::time::Duration;

use base64::Engine;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::{Request, StatusCode, header};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use super::probe;
use super::{Readiness, Scope};

/// As `probe::tcp`: long enough across a region, short enough not to hold a reconcile.
const TIMEOUT: Duration = Duration::from_secs(3);
/// A banner is a few hundred bytes; anything much larger is not one.
const MAX_BANNER: usize = 64 * 1024;

pub async fn observe(scope: &Scope<'_>) -> Readiness {
    let Some(search) = &scope.fedi.spec.search else {
        return Readiness::ready(
            "NotConfigured",
            "No search cluster: the server uses PostgreSQL full-text search.",
        );
    };
    if let Some(external) = &search.external {
        let Some((host, port)) = probe::url_host_port(&external.url) else {
            return Readiness::waiting(
                "InvalidSearchUrl",
                format!("spec.search.external.url {} has no host.", external.url),
            );
        };
        let credentials = match &external.credentials_secret_ref {
            Some(secret) => {
                let user = probe::secret_value(scope, &secret.name, "username").await;
                let password = probe::secret_value(scope, &secret.name, "password").await;
                match (user, password) {
                    (Ok(u), Ok(p)) => Some((secret.name.clone(), u, p)),
                    (Err(r), _) | (_, Err(r)) => return r,
                }
            }
            None => None,
        };
        let at = format!("{host}:{port}");
        return match banner(&external.url, credentials.as_ref()).await {
            Ok((status, body)) => judge(&at, credentials.map(|c| c.0).as_deref(), status, &body),
            Err(e) => Readiness::waiting("SearchUnreachable", format!("cannot reach {at}: {e}")),
        };
    }
    let name = format!("{}-search", scope.name);
    match probe::statefulset(scope, &name, "OpenSearch").await {
        Some(waiting) => waiting,
        None => Readiness::ready(
            "ClusterHealthy",
            format!("Every OpenSearch node of {name} is ready."),
        ),
    }
}

/// `GET <url>/` with basic authentication when credentials are given. Errors carry their
/// causes (connection refused, certificate unknown...), never the credentials.
async fn banner(
    url: &str,
    credentials: Option<&(String, String, String)>,
) -> Result<(StatusCode, Bytes), String> {
    let (tls, errors) = fedi_config::tls::service_client().map_err(|e| e.to_string())?;
    for e in errors {
        tracing::debug!(
            error = e,
            "part of the system's certificate store is unusable"
        );
    }
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .build::<_, Empty<Bytes>>(https);
    let mut req = Request::get(format!("{}/", url.trim_end_matches('/')));
    if let Some((_, user, password)) = credentials {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        req = req.header(header::AUTHORIZATION, format!("Basic {token}"));
    }
    let req = req.body(Empty::new()).map_err(|e| e.to_string())?;
    let exchange = async {
        let res = client.request(req).await.map_err(|e| causes(&e))?;
        let status = res.status();
        let body = Limited::new(res.into_body(), MAX_BANNER)
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        Ok((status, body))
    };
    tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| format!("no answer within {}s", TIMEOUT.as_secs()))?
}

/// The error with its sources: hyper's own message ("client error (Connect)") says little.
fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// What the banner of the cluster at `at` means; `secret` names the credentials sent.
fn judge(at: &str, secret: Option<&str>, status: StatusCode, body: &[u8]) -> Readiness {
    if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
        let what = match secret {
            Some(name) => format!("the username and password of Secret {name}"),
            None => "requests without credentials: set spec.search.external.credentialsSecretRef"
                .to_owned(),
        };
        return Readiness::waiting(
            "AuthenticationFailed",
            format!("The search cluster at {at} refused {what} (HTTP {status})."),
        );
    }
    let banner: Value = serde_json::from_slice(body).unwrap_or_default();
    let version = banner["version"]["number"].as_str();
    match version {
        Some(version) if status.is_success() => {
            let distribution = banner["version"]["distribution"]
                .as_str()
                .unwrap_or("elasticsearch");
            Readiness::ready(
                "Reachable",
                format!("The search cluster at {at} answers: {distribution} {version}."),
            )
        }
        _ => Readiness::waiting(
            "NotOpenSearch",
            format!(
                "{at} answered HTTP {status} without an OpenSearch or Elasticsearch banner \
                 (no version.number at /): check spec.search.external.url."
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_banner_decides() {
        let opensearch =
            br#"{"name":"n","version":{"distribution":"opensearch","number":"2.19.6"}}"#;
        let r = judge("s:9200", None, StatusCode::OK, opensearch);
        assert_eq!((r.ready, r.reason.as_str()), (true, "Reachable"));
        assert!(r.message.contains("opensearch 2.19.6"), "{}", r.message);
        let elastic = br#"{"version":{"number":"7.10.2"}}"#;
        assert!(judge("s:9200", None, StatusCode::OK, elastic).ready);

        let r = judge("s:9200", Some("creds"), StatusCode::UNAUTHORIZED, b"");
        assert_eq!(
            (r.ready, r.reason.as_str()),
            (false, "AuthenticationFailed")
        );
        assert!(r.message.contains("Secret creds") && r.message.contains("s:9200"));
        let r = judge("s:9200", None, StatusCode::FORBIDDEN, b"{}");
        assert!(r.message.contains("credentialsSecretRef"), "{}", r.message);

        for (status, body) in [
            (StatusCode::OK, &b"<html>hello</html>"[..]),
            (StatusCode::OK, b"{}"),
            (StatusCode::NOT_FOUND, b"not found"),
            (StatusCode::SERVICE_UNAVAILABLE, opensearch),
        ] {
            let r = judge("s:9200", None, status, body);
            assert_eq!(
                (r.ready, r.reason.as_str()),
                (false, "NotOpenSearch"),
                "{status}"
            );
            assert!(r.message.contains("spec.search.external.url"));
        }
    }

    #[tokio::test]
    async fn a_closed_port_is_an_error_with_its_cause() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let err = banner(&format!("http://127.0.0.1:{port}"), None)
            .await
            .unwrap_err();
        assert!(err.to_lowercase().contains("refused"), "{err}");
    }
}
