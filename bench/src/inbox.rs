//! Inbox verification throughput: a peer on loopback serves its actors' keys (as a
//! Mastodon server would), deliveries signed with HTTP Signatures (cavage, as Mastodon
//! sends them) are POSTed to the shared inbox, one in ten forged (the actor's key id, another
//! key). Every forged one must be refused and every genuine one accepted: a benchmark that
//! checks its premise, or the figure would measure a server that accepts anything.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use anyhow::{Context, ensure};
use axum::http::{Method, StatusCode, Uri};
use axum::response::IntoResponse;
use fedi_server::auth::credentials::new_secret;
use fedi_server::federation::keys::{self, Signer};
use fedi_server::federation::signatures;
use futures::StreamExt;
use serde_json::json;

use crate::outcome::Outcome;
use crate::procs::{self, Meter};
use crate::stats;

const AP: &str = "application/activity+json";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The api, as http://host:port.
    #[arg(long)]
    api: String,
    /// The server's domain: the Host the deliveries are signed for.
    #[arg(long, env = "FEDI_DOMAIN")]
    domain: String,
    #[arg(long, default_value_t = 10_000)]
    requests: usize,
    /// One delivery in `forged_every` is forged (10 = 10%).
    #[arg(long, default_value_t = 10)]
    forged_every: usize,
    /// Remote actors the deliveries come from.
    #[arg(long, default_value_t = 8)]
    actors: usize,
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    #[arg(long)]
    out: PathBuf,
}

struct Delivery {
    forged: bool,
    body: Vec<u8>,
    headers: signatures::SignedHeaders,
}

pub async fn run(a: Args) -> anyhow::Result<()> {
    let roles = procs::roles()?;
    let peer = Peer::start().await?;
    let mut actors = Vec::new();
    for k in 0..a.actors {
        let pair = keys::generate_async().await?;
        let id = peer.url(&format!("/users/peer{k}"));
        let key_id = format!("{id}#main-key");
        peer.put(
            &format!("/users/peer{k}"),
            json!({
                "@context": ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1"],
                "id": id,
                "type": "Person",
                "inbox": format!("{id}/inbox"),
                "preferredUsername": format!("peer{k}"),
                "publicKey": {"id": key_id, "owner": id, "publicKeyPem": pair.public_pem},
            })
            .to_string(),
        );
        let signer = Signer::new(key_id.clone(), &pair.private_pem)?;
        let forger = Signer::new(key_id, &keys::generate_async().await?.private_pem)?;
        actors.push((id, signer, forger));
    }

    // Signed ahead of time: the client's RSA signing would otherwise take CPU from the server.
    let inbox = url::Url::parse(&format!("https://{}/inbox", a.domain))?;
    let sign = |i: usize, forged: bool| {
        let (actor, signer, forger) = &actors[i % actors.len()];
        let body = json!({
            "@context": "https://www.w3.org/ns/activitystreams",
            "id": format!("{actor}/likes/{}", new_secret()),
            "type": "Like",
            "actor": actor,
            "object": format!("https://{}/users/bench0/statuses/{i}", a.domain),
        })
        .to_string()
        .into_bytes();
        let key = if forged { forger } else { signer };
        let headers = signatures::sign(
            key,
            &Method::POST,
            &inbox,
            Some(&body),
            AP,
            SystemTime::now(),
        );
        Delivery {
            forged,
            body,
            headers,
        }
    };
    let client = reqwest::Client::new();
    let target = format!("{}/inbox", a.api);
    // The first delivery of each actor fetches its key; later ones find it cached, as in a
    // steady stream from known peers.
    for k in 0..a.actors {
        let warm = sign(k, false);
        let status = post(&client, &target, &a.domain, &warm).await?.0;
        ensure!(
            status == StatusCode::ACCEPTED,
            "a genuine delivery was answered {status}: is FEDI_FEDERATION_ALLOW_LOOPBACK set?"
        );
    }
    let deliveries: Vec<Delivery> = (0..a.requests)
        .map(|i| sign(i, i % a.forged_every == a.forged_every - 1))
        .collect();
    let forged = deliveries.iter().filter(|d| d.forged).count();

    let meter = Meter::start(&roles)?;
    let started = Instant::now();
    let hotspot = tokio::spawn(procs::hotspot(procs::pid_of(&roles, "api"), 5));
    let results: Vec<anyhow::Result<(StatusCode, bool, u64)>> = futures::stream::iter(&deliveries)
        .map(|d| {
            let (client, target, domain) = (&client, &target, &a.domain);
            async move {
                let (status, micros) = post(client, target, domain, d).await?;
                Ok((status, d.forged, micros))
            }
        })
        .buffer_unordered(a.concurrency)
        .collect()
        .await;
    let duration = started.elapsed().as_secs_f64();
    let roles_usage = meter.finish(a.requests as u64)?;

    let mut counts: HashMap<(bool, u16), usize> = HashMap::new();
    let mut samples = Vec::with_capacity(results.len());
    for r in results {
        let (status, forged, micros) = r?;
        *counts.entry((forged, status.as_u16())).or_default() += 1;
        samples.push(micros);
    }
    let accepted = counts.get(&(false, 202)).copied().unwrap_or(0);
    // The premise: no forged delivery gets through. A genuine one the overloaded server
    // answers 500 (its pool timed out) is an error of the figure, not of the premise.
    let forged_through: usize = counts
        .iter()
        .filter(|((forged, status), _)| *forged && (200..300).contains(status))
        .map(|(_, n)| n)
        .sum();
    let refused = counts.get(&(true, 401)).copied().unwrap_or(0);
    let genuine = a.requests - forged;
    let outcome = Outcome {
        order: 60,
        name: "inbox POST verification, 10% forged".into(),
        requests: a.requests as u64,
        duration_s: duration,
        per_second: a.requests as f64 / duration,
        unit: "signatures/s".into(),
        latency_ms: stats::latency(samples),
        errors: (genuine - accepted + forged - refused) as u64,
        roles: roles_usage,
        hotspot: Some(format!("api: {}", hotspot.await?)),
        target: None,
        notes: vec![format!(
            "{genuine} genuine: {accepted} accepted (202); {forged} forged: {refused} refused (401), \
             {forged_through} accepted; answers by (forged, status): {counts:?}; \
             {} peers, keys cached after the first delivery; {} in flight",
            a.actors, a.concurrency
        )],
    };
    outcome.write(&a.out)?;
    ensure!(
        forged_through == 0,
        "premise broken: {forged_through} forged deliveries accepted; {counts:?} (forged, status) -> count"
    );
    Ok(())
}

async fn post(
    client: &reqwest::Client,
    target: &str,
    domain: &str,
    d: &Delivery,
) -> anyhow::Result<(StatusCode, u64)> {
    let started = Instant::now();
    let response = client
        .post(target)
        .header("host", domain)
        .header("content-type", AP)
        .header("date", &d.headers.date)
        .header("digest", d.headers.digest.as_deref().unwrap_or_default())
        .header("signature", &d.headers.signature)
        .body(d.body.clone())
        .send()
        .await
        .context("POST to the inbox")?;
    let status = response.status();
    response.bytes().await?;
    Ok((status, started.elapsed().as_micros() as u64))
}

/// The remote server: actor documents by path.
struct Peer {
    base: String,
    docs: Arc<std::sync::Mutex<HashMap<String, String>>>,
}

impl Peer {
    async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let docs: Arc<std::sync::Mutex<HashMap<String, String>>> = Arc::default();
        let served = docs.clone();
        let app = axum::Router::new().fallback(move |uri: Uri| {
            let doc = served.lock().unwrap().get(uri.path()).cloned();
            async move {
                match doc {
                    Some(body) => ([("content-type", AP)], body).into_response(),
                    None => StatusCode::NOT_FOUND.into_response(),
                }
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self { base, docs })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn put(&self, path: &str, body: String) {
        self.docs.lock().unwrap().insert(path.into(), body);
    }
}
