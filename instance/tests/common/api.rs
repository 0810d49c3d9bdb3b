//! A `fedi-server api` on a fresh database and one way to call it, for the HTTP tests that
//! need nothing more; each test file adds its own helpers in an `impl TestApi` of its own.

use reqwest::header;
use serde_json::Value;

use super::{Reply, Server, api_on_fresh_database, install_crypto_provider};

/// What a request carries.
pub enum Body<'a> {
    None,
    Form(&'a [(&'a str, &'a str)]),
    Json(Value),
}

/// A local account of a test (its id as the API writes it) and a token of it.
#[derive(Clone)]
pub struct User {
    pub id: String,
    pub token: String,
}

pub struct TestApi {
    pub server: Server,
    pub db: String,
    pub http: reqwest::Client,
}

impl TestApi {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// With `env` added to the server's environment.
    pub async fn start_with(env: &[(&str, &str)]) -> Self {
        install_crypto_provider();
        let (server, db) = api_on_fresh_database(env).await;
        Self {
            server,
            db,
            http: reqwest::Client::new(),
        }
    }

    /// `path` may be a full URL of the server's domain, as the server writes them in its
    /// answers (`Link` headers, `url` fields).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Body<'_>,
    ) -> Reply {
        let path = path.strip_prefix("https://test.example").unwrap_or(path);
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.server.base_url));
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        req = match body {
            Body::None => req,
            Body::Form(pairs) => req
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(serde_urlencoded::to_string(pairs).unwrap()),
            Body::Json(v) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(v.to_string()),
        };
        Reply::read(req.send().await.expect("the server answers")).await
    }

    pub async fn conn(&self) -> sqlx::PgConnection {
        <sqlx::PgConnection as sqlx::Connection>::connect(&self.db)
            .await
            .unwrap()
    }
}
