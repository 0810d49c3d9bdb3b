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

    /// A local user with a password and a `read write follow` token: (account id, token).
    pub async fn token_user(&self, name: &str) -> (i64, String) {
        let (account, user) = super::create_user(&self.db, name, "a long password").await;
        let token = super::issue_token(&self.db, Some(user), "read write follow").await;
        (account, token)
    }

    /// Posts `text` as a public status with `token`: its id.
    pub async fn post_public(&self, token: &str, text: &str) -> String {
        let reply = self
            .call(
                "POST",
                "/api/v1/statuses",
                Some(token),
                Body::Form(&[("status", text), ("visibility", "public")]),
            )
            .await
            .expect(200);
        reply.json()["id"].as_str().unwrap().to_string()
    }

    /// The ids of the statuses (or other entities) a GET of `path` lists, in order.
    pub async fn listed_ids(&self, path: &str, token: Option<&str>) -> Vec<String> {
        let reply = self.call("GET", path, token, Body::None).await.expect(200);
        reply
            .json()
            .as_array()
            .expect("a list")
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect()
    }

    pub async fn conn(&self) -> sqlx::PgConnection {
        <sqlx::PgConnection as sqlx::Connection>::connect(&self.db)
            .await
            .unwrap()
    }
}
