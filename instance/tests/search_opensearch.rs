//! Search in a real OpenSearch node (`scripts/services/up.sh opensearch`,
//! `FEDI_TEST_SEARCH_URL`): versioned index migration (`admin search migrate`), the
//! worker's `search.index` job on post, edit and delete, and `/api/v2/search` answering
//! from OpenSearch while PostgreSQL still decides what the viewer may see.
//!
//! Each test uses its own index prefix, so tests and runs never share an index.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use fedi_config::SearchConfig;
use fedi_server::search::migrate::{self, Outcome, alias_targets};
use fedi_server::search::{IndexSpec, STATUSES, SearchClient};
use hyper::Method;
use reqwest::header;
use serde_json::Value;

fn search_url() -> String {
    service_env("FEDI_TEST_SEARCH_URL")
}

/// A prefix no other test or run uses.
fn unique_prefix(tag: &str) -> String {
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("t-{tag}-{}-{n}-{nanos}", std::process::id())
}

fn client(prefix: &str) -> SearchClient {
    let _ = rustls::crypto::ring::default_provider().install_default();
    SearchClient::new(&SearchConfig {
        url: search_url(),
        prefix: prefix.to_owned(),
        username: None,
        password: None,
    })
    .unwrap()
}

async fn count(client: &SearchClient, index: &str) -> u64 {
    client
        .ok(Method::POST, &format!("/{index}/_refresh"), None)
        .await
        .unwrap();
    let v = client
        .ok(Method::GET, &format!("/{index}/_count"), None)
        .await
        .unwrap();
    v["count"].as_u64().unwrap()
}

async fn connect(db: &str) -> sqlx::PgConnection {
    <sqlx::PgConnection as sqlx::Connection>::connect(db)
        .await
        .unwrap()
}

/// Deletes the test's indices (best effort: a failed test leaves them for inspection).
async fn drop_indices(client: &SearchClient) {
    let _ = client
        .send(Method::DELETE, &format!("/{}-*", client.prefix), None)
        .await;
}

#[tokio::test]
async fn an_unchanged_mapping_version_reindexes_nothing_and_a_bumped_one_rebuilds() {
    let db = migrated_database().await;
    let (alice, _) = create_user(&db, "alice", "a long password 123").await;
    let mut conn = connect(&db).await;
    for text in ["first words", "second words", "third words"] {
        sqlx::query("INSERT INTO statuses (account_id, text) VALUES ($1, $2)")
            .bind(alice)
            .bind(text)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    // A reblog has no text of its own: never indexed.
    sqlx::query(
        "INSERT INTO statuses (account_id, reblog_of_id) \
         SELECT $1, min(id) FROM statuses",
    )
    .bind(alice)
    .execute(&mut conn)
    .await
    .unwrap();
    let prefix = unique_prefix("mig");
    let client = client(&prefix);
    let v1 = STATUSES.index(&prefix);
    let alias = STATUSES.alias(&prefix);
    let mut lines = Vec::new();

    let first = migrate::migrate(&client, &mut conn, STATUSES, &mut |l| lines.push(l))
        .await
        .unwrap();
    assert_eq!(
        first,
        Outcome::Reindexed {
            documents: 3,
            previous: None
        }
    );
    assert_eq!(
        alias_targets(&client, &alias).await.unwrap(),
        std::slice::from_ref(&v1)
    );
    assert_eq!(count(&client, &alias).await, 3);
    assert!(
        lines.iter().any(|l| l.contains("3 documents indexed")),
        "{lines:?}"
    );

    // A row the migration never saw: an unchanged version must not pick it up by
    // reindexing (the job does that), so the count shows that nothing was rebuilt.
    sqlx::query("INSERT INTO statuses (account_id, text) VALUES ($1, 'fourth words')")
        .bind(alice)
        .execute(&mut conn)
        .await
        .unwrap();
    lines.clear();
    let again = migrate::migrate(&client, &mut conn, STATUSES, &mut |l| lines.push(l))
        .await
        .unwrap();
    assert_eq!(again, Outcome::UpToDate);
    assert_eq!(count(&client, &alias).await, 3);
    assert!(lines.iter().any(|l| l.contains("up to date")), "{lines:?}");

    // The next server version changes the statuses mapping.
    let bumped = IndexSpec {
        version: STATUSES.version + 1,
        ..STATUSES
    };
    let v2 = bumped.index(&prefix);
    let rebuilt = migrate::migrate(&client, &mut conn, bumped, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(
        rebuilt,
        Outcome::Reindexed {
            documents: 4,
            previous: Some(v1.clone())
        }
    );
    assert_eq!(
        alias_targets(&client, &alias).await.unwrap(),
        std::slice::from_ref(&v2)
    );
    assert_eq!(count(&client, &alias).await, 4);
    // The previous version stays for a rollback, untouched.
    assert_eq!(count(&client, &v1).await, 3);
    // And the bumped version, run again, is a no-op too.
    let after = migrate::migrate(&client, &mut conn, bumped, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(after, Outcome::UpToDate);
    drop_indices(&client).await;
}

#[tokio::test]
async fn admin_search_migrate_builds_both_indices_once() {
    let db = migrated_database().await;
    let (alice, _) = create_user(&db, "alice", "a long password 123").await;
    let mut conn = connect(&db).await;
    sqlx::query("INSERT INTO statuses (account_id, text) VALUES ($1, 'hello')")
        .bind(alice)
        .execute(&mut conn)
        .await
        .unwrap();
    let prefix = unique_prefix("cli");
    let run = || {
        server_command(&db, &service_env("FEDI_TEST_REDIS_URL"))
            .args(["admin", "search", "migrate"])
            .env("FEDI_SEARCH_URL", search_url())
            .env("FEDI_SEARCH_PREFIX", &prefix)
            .stderr(Stdio::piped())
            .stdout(Stdio::piped())
            .output()
            .unwrap()
    };
    let out = run();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(out.stdout.is_empty(), "stdout is for listings only");
    assert!(
        err.contains(&format!("{prefix}-statuses: now on {prefix}-statuses-v")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{prefix}-accounts: now on {prefix}-accounts-v")),
        "{err}"
    );
    let client = client(&prefix);
    assert_eq!(count(&client, &format!("{prefix}-statuses")).await, 1);
    assert_eq!(count(&client, &format!("{prefix}-accounts")).await, 1);

    let out = run();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(err.matches("up to date").count(), 2, "{err}");
    assert!(!err.contains("building"), "{err}");

    // Without a cluster configured the command says so and fails.
    let out = server_command(&db, &service_env("FEDI_TEST_REDIS_URL"))
        .args(["admin", "search", "migrate"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("FEDI_SEARCH_URL is not set"));
    drop_indices(&client).await;
}

struct Api {
    server: Server,
    _worker: Server,
    db: String,
    http: reqwest::Client,
}

impl Api {
    async fn start(prefix: &str) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        // Job queues are named by domain: this test's worker takes only its own jobs.
        let domain = format!("{prefix}.test.example");
        let url = search_url();
        let env = [
            ("FEDI_DOMAIN", domain.as_str()),
            ("FEDI_SEARCH_URL", url.as_str()),
            ("FEDI_SEARCH_PREFIX", prefix),
        ];
        let (server, db) = api_on_fresh_database(&env).await;
        let worker = server_command(&db, &service_env("FEDI_TEST_REDIS_URL"))
            .arg("worker")
            .env("FEDI_LISTEN", format!("127.0.0.1:{}", free_port()))
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn fedi-server worker");
        Self {
            server,
            _worker: Server {
                child: worker,
                base_url: String::new(),
            },
            db,
            http: reqwest::Client::new(),
        }
    }

    async fn call(&self, method: Method, path: &str, token: &str, form: &[(&str, &str)]) -> Value {
        let method = reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap();
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.server.base_url))
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        if !form.is_empty() {
            req = req
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(serde_urlencoded::to_string(form).unwrap());
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    async fn post(&self, token: &str, text: &str, visibility: &str) -> String {
        let v = self
            .call(
                Method::POST,
                "/api/v1/statuses",
                token,
                &[("status", text), ("visibility", visibility)],
            )
            .await;
        v["id"].as_str().unwrap().to_owned()
    }

    async fn search(&self, token: &str, q: &str) -> Vec<String> {
        let qs = serde_urlencoded::to_string([("q", q), ("type", "statuses")]).unwrap();
        let v = self
            .call(Method::GET, &format!("/api/v2/search?{qs}"), token, &[])
            .await;
        v["statuses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect()
    }
}

impl Api {
    /// Polls until the search answers `want` (OpenSearch makes documents searchable at its
    /// next refresh, about a second); no answer on the way may hold an id of `never`.
    async fn search_becomes(&self, token: &str, q: &str, want: &[&str], never: &[&str]) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.search(token, q).await;
            for id in never {
                assert!(
                    !got.iter().any(|g| g == id),
                    "{id} must never be found: {got:?}"
                );
            }
            if got == want || std::time::Instant::now() > deadline {
                assert_eq!(got, want);
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Whether document `id` is in the alias's index, as the worker left it.
async fn indexed(client: &SearchClient, alias: &str, id: &str) -> Option<Value> {
    let (status, v) = client
        .send(Method::GET, &format!("/{alias}/_doc/{id}"), None)
        .await
        .unwrap();
    (status.is_success() && v["found"] == true).then(|| v["_source"].clone())
}

#[tokio::test]
async fn the_worker_indexes_statuses_and_search_answers_from_opensearch_within_visibility() {
    let prefix = unique_prefix("api");
    let api = Api::start(&prefix).await;
    let client = client(&prefix);
    let alias = STATUSES.alias(&prefix);
    let mut conn = connect(&api.db).await;
    for spec in fedi_server::search::mappings::ALL {
        migrate::migrate(&client, &mut conn, spec, &mut |_| {})
            .await
            .unwrap();
    }
    let (_, alice_user) = create_user(&api.db, "alice", "a long password 123").await;
    let (_, bob_user) = create_user(&api.db, "bob", "a long password 123").await;
    let alice = issue_token(&api.db, Some(alice_user), "read write").await;
    let bob = issue_token(&api.db, Some(bob_user), "read write").await;

    let public = api
        .post(&alice, "Un café crème, s'il vous plaît", "public")
        .await;
    let private = api
        .post(&alice, "Café for my followers only", "private")
        .await;
    let other = api.post(&alice, "nothing to see here", "public").await;
    for id in [&public, &private, &other] {
        eventually(
            Duration::from_secs(20),
            "the worker to index a status",
            || indexed(&client, &alias, id),
        )
        .await;
    }
    let doc = indexed(&client, &alias, &public).await.unwrap();
    assert_eq!(doc["visibility"], "public");
    assert_eq!(
        doc["text"].as_str().unwrap().trim(),
        "Un café crème, s'il vous plaît"
    );

    // "cafe" finds "café" only through OpenSearch's folding analyzer: PostgreSQL's
    // 'simple' configuration keeps the accent, so this proves which backend answered.
    let mut pg = connect(&api.db).await;
    let (pg_matches,): (bool,) = sqlx::query_as(
        "SELECT to_tsvector('simple', 'Un café crème') @@ websearch_to_tsquery('simple', 'cafe')",
    )
    .fetch_one(&mut pg)
    .await
    .unwrap();
    assert!(
        !pg_matches,
        "the backend check below needs a query PostgreSQL misses"
    );
    // Bob may see the public status only: the private one is indexed but re-checked.
    api.search_becomes(&bob, "cafe", &[&public], &[&private])
        .await;
    // Alice wrote both.
    api.search_becomes(&alice, "cafe", &[&private, &public], &[])
        .await;

    // An edit reaches the index through the job.
    api.call(
        Method::PUT,
        &format!("/api/v1/statuses/{other}"),
        &alice,
        &[("status", "now about a cafe too")],
    )
    .await;
    eventually(
        Duration::from_secs(20),
        "the edit to reach the index",
        || async {
            let doc = indexed(&client, &alias, &other).await?;
            doc["text"].as_str()?.contains("now about").then_some(())
        },
    )
    .await;
    api.search_becomes(&bob, "cafe", &[&other, &public], &[&private])
        .await;

    // A deletion removes the document; PostgreSQL's re-check hides it even before.
    api.call(
        Method::DELETE,
        &format!("/api/v1/statuses/{public}"),
        &alice,
        &[],
    )
    .await;
    // No polling here: the document is still in the index, PostgreSQL drops it.
    assert_eq!(api.search(&bob, "cafe").await, std::slice::from_ref(&other));
    eventually(
        Duration::from_secs(20),
        "the deletion to reach the index",
        || async {
            indexed(&client, &alias, &public)
                .await
                .is_none()
                .then_some(())
        },
    )
    .await;
    drop_indices(&client).await;
}

#[tokio::test]
async fn search_falls_back_to_postgres_without_an_index() {
    // The cluster is configured but never migrated: the API still answers, from
    // PostgreSQL (which finds the exact word), and the job does not create a stray index.
    let prefix = unique_prefix("nomig");
    let api = Api::start(&prefix).await;
    let (_, alice_user) = create_user(&api.db, "alice", "a long password 123").await;
    let alice = issue_token(&api.db, Some(alice_user), "read write").await;
    let id = api.post(&alice, "exactword here", "public").await;
    assert_eq!(api.search(&alice, "exactword").await, [id]);
    let client = client(&prefix);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (status, _) = client
        .send(Method::GET, &format!("/{}", STATUSES.alias(&prefix)), None)
        .await
        .unwrap();
    assert_eq!(
        status.as_u16(),
        404,
        "no index may be auto-created under the alias"
    );
}
