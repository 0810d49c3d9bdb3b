//! Fan-out latency of one streamer with 1,000 WebSocket clients: the time from PUBLISH to
//! the frame at each client, for events every client receives (the public stream, one
//! filtering query per event) and for events each addressed to one client (home streams, as
//! the timeline fan-out publishes them). A measurement, printed, not a timing assertion:
//! the test asserts only that every client received every event.
//!
//! Run: `cargo test -p fedi-server --test streaming_latency -- --nocapture`.

mod common;
#[path = "streaming/support.rs"]
mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;
use fedi_server::auth::credentials::digest;
use fedi_server::events::{Event, channel};
use futures::StreamExt;
use support::*;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

const CLIENTS: usize = 1000;
/// Public events, each delivered to every client.
const BROADCASTS: i64 = 30;
/// Home events: one per client.
const DIRECTED: usize = CLIENTS;

/// `CLIENTS` users with one token each, written in bulk (no password hashing: nobody signs
/// in): `(account ids, tokens)`.
async fn users(db: &str) -> (Vec<i64>, Vec<String>) {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(db)
        .await
        .unwrap();
    let names: Vec<String> = (0..CLIENTS).map(|i| format!("bench{i}")).collect();
    let accounts: Vec<i64> = sqlx::query_scalar(
        "INSERT INTO accounts (username) SELECT unnest($1::text[]) RETURNING id",
    )
    .bind(&names)
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let emails: Vec<String> = names.iter().map(|n| format!("{n}@test.example")).collect();
    let users: Vec<i64> = sqlx::query_scalar(
        "INSERT INTO users (account_id, email, password_hash, confirmed_at) \
         SELECT a, e, 'unused', now() FROM unnest($1::bigint[], $2::text[]) AS t(a, e) \
         RETURNING id",
    )
    .bind(&accounts)
    .bind(&emails)
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let tokens: Vec<String> = (0..CLIENTS)
        .map(|i| format!("bench-token-{i}-{}", free_port()))
        .collect();
    let hashes: Vec<String> = tokens.iter().map(|t| digest(t)).collect();
    let app: i64 = sqlx::query_scalar(
        "INSERT INTO oauth_applications (name, redirect_uris, scopes, client_id, client_secret_hash) \
         VALUES ('bench', ARRAY['urn:ietf:wg:oauth:2.0:oob'], 'read', 'bench', 'x') RETURNING id",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO oauth_access_tokens (token_hash, application_id, user_id, scopes) \
         SELECT h, $3, u, 'read' FROM unnest($1::text[], $2::bigint[]) AS t(h, u)",
    )
    .bind(&hashes)
    .bind(&users)
    .bind(app)
    .execute(&mut conn)
    .await
    .unwrap();
    // unnest keeps the order of its arrays, and so does RETURNING of one INSERT ... SELECT.
    (accounts, tokens)
}

/// The id of the status a frame carries.
fn id_of(frame: &str) -> i64 {
    let frame: serde_json::Value = serde_json::from_str(frame).unwrap();
    let status: serde_json::Value =
        serde_json::from_str(frame["payload"].as_str().unwrap()).unwrap();
    status["id"].as_str().unwrap().parse().unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "fan-out latency, {what}: {} deliveries, p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        samples.len(),
        ms(percentile(&samples, 0.50)),
        ms(percentile(&samples, 0.90)),
        ms(percentile(&samples, 0.99)),
        ms(*samples.last().unwrap()),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_latency_with_a_thousand_websocket_clients() {
    let db = migrated_database().await;
    let (redis, env) = redis_env(false);
    let streamer = start_streamer(&db, &redis, &env).await;
    let state = app_state(&db, &redis, false);
    let (accounts, tokens) = users(&db).await;
    let author = accounts[0] + 1_000_000;
    // A public stream of this test's own: tests elsewhere post to `timeline:public`.
    let tag = format!("bench{}", std::process::id());
    let query = format!("stream=hashtag&tag={tag}");
    let public = channel::hashtag(&tag, false);

    // Every client on its home stream and the public stream; each reports (status id,
    // arrival) for every update, probes aside.
    let (arrivals_tx, mut arrivals) = mpsc::unbounded_channel::<(usize, String, Instant)>();
    let (ready_tx, mut ready) = mpsc::unbounded_channel::<usize>();
    let started = Instant::now();
    for (i, token) in tokens.iter().enumerate() {
        let mut ws = Ws::connect(&streamer.base_url, &query, Auth::Header(token))
            .await
            .unwrap();
        ws.subscribe("user", serde_json::json!({})).await;
        let (arrivals_tx, ready_tx) = (arrivals_tx.clone(), ready_tx.clone());
        tokio::spawn(async move {
            let mut seen = std::collections::HashSet::new();
            loop {
                // The raw frame, timed first and parsed later: the clients share the CPU
                // with the streamer, and parsing here would count as latency.
                let text = match ws.socket.next().await {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(_)) => continue,
                    _ => return,
                };
                let at = Instant::now();
                if text.contains(PROBE) {
                    // Ready once probes arrive on both streams.
                    let frame: serde_json::Value = serde_json::from_str(&text).unwrap();
                    seen.insert(frame["stream"][0].as_str().unwrap().to_string());
                    if seen.len() == 2 {
                        let _ = ready_tx.send(i);
                        seen.insert("reported".into());
                    }
                    continue;
                }
                let _ = arrivals_tx.send((i, text.to_string(), at));
            }
        });
    }
    println!("{CLIENTS} clients connected in {:?}", started.elapsed());

    // Probes until every client has both streams.
    let probe = Event {
        event: PROBE.into(),
        payload: "probe".into(),
    };
    let mut ready_clients = std::collections::HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while ready_clients.len() < CLIENTS {
        publish(&state, &public, &probe).await;
        for (i, a) in accounts.iter().enumerate() {
            if !ready_clients.contains(&i) {
                publish(&state, &channel::user(*a), &probe).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        while let Ok(i) = ready.try_recv() {
            ready_clients.insert(i);
        }
        assert!(
            Instant::now() < deadline,
            "{} clients ready",
            ready_clients.len()
        );
    }
    // Let the probes still in flight arrive before measuring.
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Broadcast: each public update reaches all clients.
    let mut sent: HashMap<i64, Instant> = HashMap::new();
    for id in 1..=BROADCASTS {
        let event = Event::update(&status(id, author, "author", None));
        sent.insert(id, Instant::now());
        publish(&state, &public, &event).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut broadcast = Vec::new();
    while broadcast.len() < CLIENTS * BROADCASTS as usize {
        let (_, frame, at) = tokio::time::timeout(Duration::from_secs(30), arrivals.recv())
            .await
            .expect("every client receives every public update")
            .unwrap();
        broadcast.push(at - sent[&id_of(&frame)]);
    }

    // Directed: one home update per client, published back to back as a fan-out does.
    let mut sent: HashMap<i64, Instant> = HashMap::new();
    for (i, a) in accounts.iter().enumerate().take(DIRECTED) {
        let id = 1_000 + i as i64;
        let event = Event::update(&status(id, author, "author", None));
        sent.insert(id, Instant::now());
        publish(&state, &channel::user(*a), &event).await;
    }
    let mut directed = Vec::new();
    while directed.len() < DIRECTED {
        let (client, frame, at) = tokio::time::timeout(Duration::from_secs(30), arrivals.recv())
            .await
            .expect("every client receives its home update")
            .unwrap();
        let id = id_of(&frame);
        assert_eq!(
            id,
            1_000 + client as i64,
            "a home update reached another client"
        );
        directed.push(at - sent[&id]);
    }
    report(
        &format!("public (hashtag) stream, {CLIENTS} clients x {BROADCASTS} updates"),
        broadcast,
    );
    report(
        &format!("home streams, {DIRECTED} updates to one client each"),
        directed,
    );
}
