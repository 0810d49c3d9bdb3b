//! A small OpenSearch REST client on hyper. Not reqwest: its rustls feature would break
//! the crate's test clients (see Cargo.toml), and federation already links hyper + rustls.

use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::body::Bytes;
use base64::Engine;
use fedi_config::SearchConfig;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode, header};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// A bulk reindex request can take a while on a busy cluster; a query should not.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

type Client = hyper_util::client::legacy::Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

#[derive(Clone)]
pub struct SearchClient {
    client: Client,
    base: String,
    /// `Basic ...`, kept out of `Debug` and logs.
    authorization: Option<String>,
    pub prefix: String,
}

impl std::fmt::Debug for SearchClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchClient")
            .field("base", &self.base)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// A request body: JSON, or the newline-delimited JSON of `_bulk`.
pub enum Body {
    Json(Value),
    NdJson(String),
}

impl SearchClient {
    pub fn new(config: &SearchConfig) -> anyhow::Result<Self> {
        let (tls, errors) = fedi_config::tls::service_client()?;
        for e in errors {
            tracing::warn!(
                error = e,
                "part of the system's certificate store is unusable"
            );
        }
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.enforce_http(false);
        // Plain HTTP is allowed: an in-cluster node behind a NetworkPolicy often has no TLS.
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https);
        let url = url::Url::parse(&config.url)
            .with_context(|| format!("FEDI_SEARCH_URL {:?} is not a URL", config.url))?;
        if !matches!(url.scheme(), "http" | "https") {
            bail!("FEDI_SEARCH_URL must be http:// or https://");
        }
        let authorization = config.username.as_ref().map(|user| {
            let password = config.password.as_ref().map_or("", |p| p.expose());
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            format!("Basic {token}")
        });
        Ok(Self {
            client,
            base: config.url.trim_end_matches('/').to_owned(),
            authorization,
            prefix: config.prefix.clone(),
        })
    }

    /// The client of this process's configuration, built once (a connection pool).
    pub fn shared(config: &SearchConfig) -> anyhow::Result<&'static SearchClient> {
        static CLIENT: OnceLock<SearchClient> = OnceLock::new();
        if let Some(c) = CLIENT.get() {
            return Ok(c);
        }
        let c = Self::new(config)?;
        Ok(CLIENT.get_or_init(|| c))
    }

    /// Sends a request; any status is returned with its JSON body (`Null` when empty).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Body>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let mut req = Request::builder()
            .method(method.clone())
            .uri(format!("{}{}", self.base, path));
        if let Some(a) = &self.authorization {
            req = req.header(header::AUTHORIZATION, a);
        }
        let req = match body {
            None => req.body(Full::new(Bytes::new()))?,
            Some(Body::Json(v)) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(serde_json::to_vec(&v)?)))?,
            Some(Body::NdJson(s)) => req
                .header(header::CONTENT_TYPE, "application/x-ndjson")
                .body(Full::new(Bytes::from(s)))?,
        };
        let exchange = async {
            let res = self.client.request(req).await?;
            let status = res.status();
            let bytes = res.into_body().collect().await?.to_bytes();
            anyhow::Ok((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "OpenSearch: no answer to {method} {path} within {REQUEST_TIMEOUT:?}"
                )
            })?
            .with_context(|| format!("OpenSearch: {method} {path}"))?;
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        Ok((status, value))
    }

    /// As [`send`](Self::send), failing on any status but 2xx with OpenSearch's reason.
    pub async fn ok(
        &self,
        method: Method,
        path: &str,
        body: Option<Body>,
    ) -> anyhow::Result<Value> {
        let (status, value) = self.send(method.clone(), path, body).await?;
        if !status.is_success() {
            bail!(
                "OpenSearch: {method} {path} answered {status}: {}",
                reason(&value)
            );
        }
        Ok(value)
    }
}

/// OpenSearch's own sentence for an error answer.
pub fn reason(v: &Value) -> String {
    v.pointer("/error/reason")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| v.to_string())
}
