//! A scripted fediverse server on a loopback port for the federation policy tests: serves
//! documents by the host they were asked under (`127.0.0.1:port` and `localhost:port` are
//! two "domains" of one listener), records every request, answers POSTs with 202.
#![allow(dead_code)] // each test binary uses a different subset

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use fedi_server::federation::keys::{self, Signer};
use fedi_server::federation::signatures;
use serde_json::{Value, json};

pub const AS: &str = "https://www.w3.org/ns/activitystreams";
pub const AP: &str = "application/activity+json";

#[derive(Clone, Debug)]
pub struct Request {
    pub method: Method,
    /// `host[:port]` the request was sent to, and its path.
    pub host: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Default)]
struct State {
    docs: HashMap<String, Value>,
    requests: Vec<Request>,
}

#[derive(Clone)]
pub struct Peer {
    pub port: u16,
    state: Arc<Mutex<State>>,
}

impl Peer {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state: Arc<Mutex<State>> = Arc::default();
        let served = state.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let state = served.clone();
                async move {
                    let host = headers
                        .get("host")
                        .and_then(|h| h.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    let path = uri.path().to_string();
                    let mut s = state.lock().unwrap();
                    s.requests.push(Request {
                        method: method.clone(),
                        host: host.clone(),
                        path: path.clone(),
                        headers,
                        body,
                    });
                    if method == Method::POST {
                        return StatusCode::ACCEPTED.into_response();
                    }
                    match s.docs.get(&format!("{host}{path}")) {
                        Some(doc) => ([("content-type", AP)], doc.to_string()).into_response(),
                        None => StatusCode::NOT_FOUND.into_response(),
                    }
                }
            },
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { port, state }
    }

    /// `127.0.0.1:port` or `localhost:port`: the peer under one of its names.
    pub fn host(&self, name: &str) -> String {
        format!("{name}:{}", self.port)
    }

    /// Serves `doc` at `url` (`http://host:port/path`).
    pub fn put(&self, url: &str, doc: Value) {
        let key = url.strip_prefix("http://").unwrap().to_string();
        self.state.lock().unwrap().docs.insert(key, doc);
    }

    /// The document served at `url`.
    pub fn get(&self, url: &str) -> Option<Value> {
        let key = url.strip_prefix("http://")?;
        self.state.lock().unwrap().docs.get(key).cloned()
    }

    /// Publishes actor `name` under `host` (see [`Self::host`]); returns its id and signer.
    pub fn actor(&self, host: &str, name: &str) -> (String, Signer) {
        let id = format!("http://{host}/users/{name}");
        let pair = keys::generate().unwrap();
        self.put(
            &id,
            json!({
                "@context": [AS, "https://w3id.org/security/v1"],
                "id": id, "type": "Person", "preferredUsername": name,
                "inbox": format!("{id}/inbox"),
                "endpoints": {"sharedInbox": format!("http://{host}/inbox")},
                "followers": format!("{id}/followers"),
                "publicKey": {"id": format!("{id}#main-key"), "owner": id,
                              "publicKeyPem": pair.public_pem},
            }),
        );
        let signer = Signer::new(format!("{id}#main-key"), &pair.private_pem).unwrap();
        (id, signer)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Requests received under `host` (any path).
    pub fn requests_to(&self, host: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.host == host)
            .collect()
    }
}

/// A signing key for a made-up actor whose server is never contacted.
pub fn signer_for(actor: &str) -> Signer {
    let pair = keys::generate().unwrap();
    Signer::new(format!("{actor}#main-key"), &pair.private_pem).unwrap()
}

/// A `Follow` of `object` by `actor`.
pub fn follow(actor: &str, object: &str) -> Value {
    json!({
        "@context": AS,
        "id": format!("{actor}#follows/{}", std::process::id()),
        "type": "Follow", "actor": actor, "object": object,
    })
}

/// POSTs `activity` to `path` of our server at `base_url` (answering for `domain`), signed
/// by `signer` as peers do.
pub async fn post_signed(
    base_url: &str,
    domain: &str,
    path: &str,
    signer: &Signer,
    activity: &Value,
) -> (u16, String) {
    let body = activity.to_string().into_bytes();
    let url = url::Url::parse(&format!("https://{domain}{path}")).unwrap();
    let signed = signatures::sign(
        signer,
        &Method::POST,
        &url,
        Some(&body),
        AP,
        SystemTime::now(),
    );
    let r = reqwest::Client::new()
        .post(format!("{base_url}{path}"))
        .header("host", domain)
        .header("content-type", AP)
        .header("date", signed.date)
        .header("digest", signed.digest.unwrap())
        .header("signature", signed.signature)
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// GETs `path` of our server as ActivityPub JSON, signed by `signer` when given.
pub async fn get_signed(
    base_url: &str,
    domain: &str,
    path: &str,
    signer: Option<&Signer>,
) -> (u16, HeaderMap, String) {
    let mut request = reqwest::Client::new()
        .get(format!("{base_url}{path}"))
        .header("host", domain)
        .header("accept", AP);
    if let Some(signer) = signer {
        let url = url::Url::parse(&format!("https://{domain}{path}")).unwrap();
        let signed = signatures::sign(signer, &Method::GET, &url, None, AP, SystemTime::now());
        request = request
            .header("date", signed.date)
            .header("signature", signed.signature);
    }
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.text().await.unwrap())
}
