//! The api's token cache against real PostgreSQL: two api processes on one database, as
//! replicas behind a Service are. A token one of them keeps in memory must stop working
//! there the moment any path revokes or narrows it: the other process's endpoints, the
//! admin CLI, plain SQL, cascades. And the cache must start over whenever it may have
//! missed a change.

mod common;

use std::time::{Duration, Instant};

use common::{
    Server, eventually, issue_token, migrated_database, server_command, service_env, start_api,
};
use fedi_server::auth::credentials::{digest, new_secret};
use fedi_server::auth::token_changes::APPLICATION_NAME;
use serde_json::Value;
use sqlx::{Connection, PgConnection};

struct Apis {
    db: String,
    /// Where tokens are warmed and checked.
    b: Server,
    /// Where revocations are asked, when they go through the API.
    a: Server,
    http: reqwest::Client,
}

impl Apis {
    async fn start() -> Self {
        let db = migrated_database().await;
        let redis = service_env("FEDI_TEST_REDIS_URL");
        let (a, b) = tokio::join!(start_api(&db, &redis), start_api(&db, &redis));
        let apis = Self {
            db,
            a,
            b,
            http: reqwest::Client::new(),
        };
        apis.serving(&apis.a).await;
        apis.serving(&apis.b).await;
        apis
    }

    async fn token_cache(&self, server: &Server) -> String {
        let body: Value = self
            .http
            .get(format!("{}/readyz", server.base_url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["token_cache"].as_str().unwrap().to_string()
    }

    async fn serving(&self, server: &Server) {
        eventually(
            Duration::from_secs(10),
            "the token cache to serve",
            || async { (self.token_cache(server).await == "serving").then_some(()) },
        )
        .await;
    }

    async fn verify_credentials(&self, server: &Server, token: &str) -> u16 {
        self.http
            .get(format!(
                "{}/api/v1/accounts/verify_credentials",
                server.base_url
            ))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// Used on B until it is sure to be kept there.
    async fn warm(&self, token: &str) {
        for _ in 0..2 {
            assert_eq!(self.verify_credentials(&self.b, token).await, 200);
        }
    }

    async fn sql(&self, statement: &'static str, id: i64) {
        let mut conn = PgConnection::connect(&self.db).await.unwrap();
        sqlx::query(statement)
            .bind(id)
            .execute(&mut conn)
            .await
            .unwrap();
    }

    async fn batch(&self, statements: &'static str) {
        let mut conn = PgConnection::connect(&self.db).await.unwrap();
        sqlx::raw_sql(statements).execute(&mut conn).await.unwrap();
    }

    /// `POST /oauth/revoke` of `h`'s token on `server`, as its application.
    async fn revoke(&self, server: &Server, h: &Holder) {
        let form = [
            ("client_id", h.client_id.as_str()),
            ("client_secret", &h.client_secret),
            ("token", &h.token),
        ];
        let status = self
            .http
            .post(format!("{}/oauth/revoke", server.base_url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(form).unwrap())
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200);
    }

    fn admin(&self, args: &[&str]) {
        let out = server_command(&self.db, "redis://unused.invalid")
            .arg("admin")
            .args(args)
            .output()
            .expect("run fedi-server admin");
        assert!(
            out.status.success(),
            "admin {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A confirmed user `name` with a token of an application whose client secret is known.
struct Holder {
    user_id: i64,
    account_id: i64,
    application_id: i64,
    client_id: String,
    client_secret: String,
    token: String,
    token_id: i64,
}

async fn holder(db: &str, name: &str) -> Holder {
    let (account_id, user_id) = common::create_user(db, name, "a long password").await;
    let mut conn = PgConnection::connect(db).await.unwrap();
    let (client_id, client_secret) = (new_secret(), new_secret());
    let (application_id,): (i64,) = sqlx::query_as(
        "INSERT INTO oauth_applications (name, redirect_uris, scopes, client_id, \
                                         client_secret_hash) \
         VALUES ('app', ARRAY['urn:ietf:wg:oauth:2.0:oob'], 'read write', $1, $2) \
         RETURNING id",
    )
    .bind(&client_id)
    .bind(digest(&client_secret))
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let token = new_secret();
    let (token_id,): (i64,) = sqlx::query_as(
        "INSERT INTO oauth_access_tokens (token_hash, application_id, user_id, scopes) \
         VALUES ($1, $2, $3, 'read write') RETURNING id",
    )
    .bind(digest(&token))
    .bind(application_id)
    .bind(user_id)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    Holder {
        user_id,
        account_id,
        application_id,
        client_id,
        client_secret,
        token,
        token_id,
    }
}

/// How a case ends the token: through the other api process, the admin CLI, or SQL with
/// the id of one of the holder's rows.
enum Way {
    Revoke,
    Admin(&'static str),
    Sql(&'static str, Of),
}

enum Of {
    Token,
    User,
    Account,
    Application,
}

/// How long another process may go on taking a token after its revocation committed: the
/// time PostgreSQL's announcement takes to reach it (milliseconds; the bound is generous
/// for a loaded CI machine).
const PROPAGATION_BOUND: Duration = Duration::from_secs(2);

#[tokio::test]
async fn every_way_a_token_ends_reaches_the_other_process() {
    use Way::*;
    let apis = Apis::start().await;
    let cases: [(&str, Way, u16); 10] = [
        (
            "revoked through the other process's /oauth/revoke",
            Revoke,
            401,
        ),
        (
            "password reset with the admin CLI",
            Admin("reset-password"),
            401,
        ),
        (
            "account suspended with the admin CLI",
            Admin("suspend"),
            403,
        ),
        (
            "token revoked in SQL",
            Sql(
                "UPDATE oauth_access_tokens SET revoked_at = now() WHERE id = $1",
                Of::Token,
            ),
            401,
        ),
        (
            "token expired in SQL",
            Sql(
                "UPDATE oauth_access_tokens SET expires_at = now() WHERE id = $1",
                Of::Token,
            ),
            401,
        ),
        (
            "scopes narrowed in SQL",
            Sql(
                "UPDATE oauth_access_tokens SET scopes = 'write' WHERE id = $1",
                Of::Token,
            ),
            403,
        ),
        (
            "confirmation withdrawn in SQL",
            Sql(
                "UPDATE users SET confirmed_at = NULL WHERE id = $1",
                Of::User,
            ),
            403,
        ),
        (
            "approval withdrawn in SQL",
            Sql("UPDATE users SET approved = false WHERE id = $1", Of::User),
            403,
        ),
        (
            "account deleted in SQL (cascade)",
            Sql("DELETE FROM accounts WHERE id = $1", Of::Account),
            401,
        ),
        (
            "application deleted in SQL (cascade)",
            Sql(
                "DELETE FROM oauth_applications WHERE id = $1",
                Of::Application,
            ),
            401,
        ),
    ];
    let mut slowest = Duration::ZERO;
    for (i, (case, way, refused_with)) in cases.into_iter().enumerate() {
        let name = format!("holder{i}");
        let h = holder(&apis.db, &name).await;
        apis.warm(&h.token).await;
        match way {
            Revoke => apis.revoke(&apis.a, &h).await,
            Admin(command) => apis.admin(&["accounts", command, &name]),
            Sql(statement, of) => {
                let id = match of {
                    Of::Token => h.token_id,
                    Of::User => h.user_id,
                    Of::Account => h.account_id,
                    Of::Application => h.application_id,
                };
                apis.sql(statement, id).await
            }
        }
        let done = Instant::now();
        let status = loop {
            let status = apis.verify_credentials(&apis.b, &h.token).await;
            // (A token still kept for a deleted account finds no account: 404.)
            if status == refused_with || done.elapsed() > PROPAGATION_BOUND {
                break status;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        assert_eq!(
            status, refused_with,
            "{case}: still taken {PROPAGATION_BOUND:?} after it"
        );
        slowest = slowest.max(done.elapsed());
    }
    eprintln!("slowest propagation to the other process, request included: {slowest:?}");
}

#[tokio::test]
async fn the_process_that_revokes_refuses_from_the_next_request_on() {
    let apis = Apis::start().await;
    for round in 0..20 {
        let h = holder(&apis.db, &format!("self{round}")).await;
        apis.warm(&h.token).await;
        apis.revoke(&apis.b, &h).await;
        assert_eq!(
            apis.verify_credentials(&apis.b, &h.token).await,
            401,
            "round {round}"
        );
    }
}

#[tokio::test]
async fn tokens_are_served_from_memory_until_the_database_announces_a_change() {
    let apis = Apis::start().await;
    let h = holder(&apis.db, "kept").await;
    apis.warm(&h.token).await;

    // With the announcement silenced, only the process that kept the token still takes it:
    // the requests above were answered from memory, and what makes it let go is the
    // announcement, nothing else.
    apis.batch("ALTER TABLE oauth_access_tokens DISABLE TRIGGER tokens_changed")
        .await;
    let revoke = "UPDATE oauth_access_tokens SET revoked_at = now() WHERE id = $1";
    apis.sql(revoke, h.token_id).await;
    assert_eq!(apis.verify_credentials(&apis.a, &h.token).await, 401);
    assert_eq!(apis.verify_credentials(&apis.b, &h.token).await, 200);

    apis.batch("ALTER TABLE oauth_access_tokens ENABLE ALWAYS TRIGGER tokens_changed")
        .await;
    apis.sql(revoke, h.token_id).await;
    assert_eq!(apis.verify_credentials(&apis.b, &h.token).await, 401);

    // Tokens never kept (unknown ones) cost a database lookup each time, and stay refused.
    assert_eq!(apis.verify_credentials(&apis.b, "no-such-token").await, 401);
}

#[tokio::test]
async fn a_listener_that_lost_its_connection_forgets_what_it_kept() {
    let apis = Apis::start().await;
    let h = holder(&apis.db, "lost").await;
    apis.warm(&h.token).await;

    // A change nobody hears: while the listeners are gone, nothing is announced to them.
    apis.batch("ALTER TABLE oauth_access_tokens DISABLE TRIGGER tokens_changed")
        .await;
    let listeners = listener_pids(&apis.db).await;
    assert_eq!(listeners.len(), 2, "one listener per api process");
    let mut conn = PgConnection::connect(&apis.db).await.unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid")
        .bind(&listeners)
        .execute(&mut conn)
        .await
        .unwrap();
    let revoke = "UPDATE oauth_access_tokens SET revoked_at = now() WHERE id = $1";
    apis.sql(revoke, h.token_id).await;
    // (A listener does not start while a trigger is disabled.)
    apis.batch("ALTER TABLE oauth_access_tokens ENABLE ALWAYS TRIGGER tokens_changed")
        .await;

    // Both processes connect again, and serve only once a heartbeat is heard again.
    let started = Instant::now();
    eventually(Duration::from_secs(15), "new listeners", || async {
        let now = listener_pids(&apis.db).await;
        (now.len() == 2 && now.iter().all(|p| !listeners.contains(p))).then_some(())
    })
    .await;
    apis.serving(&apis.b).await;
    eprintln!("serving again after {:?}", started.elapsed());
    // The missed revocation: what was kept before the gap is gone.
    assert_eq!(apis.verify_credentials(&apis.b, &h.token).await, 401);
}

#[tokio::test]
async fn without_its_triggers_the_cache_is_never_used() {
    let db = migrated_database().await;
    let mut conn = PgConnection::connect(&db).await.unwrap();
    sqlx::raw_sql("DROP TRIGGER token_users_changed ON users")
        .execute(&mut conn)
        .await
        .unwrap();
    let apis = Apis {
        a: start_api(&db, &service_env("FEDI_TEST_REDIS_URL")).await,
        b: start_api(&db, &service_env("FEDI_TEST_REDIS_URL")).await,
        db,
        http: reqwest::Client::new(),
    };
    let token = issue_token(
        &apis.db,
        Some(holder(&apis.db, "untrusting").await.user_id),
        "read",
    )
    .await;
    apis.warm(&token).await;
    // Long enough for several heartbeats.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(apis.token_cache(&apis.b).await, "not serving");
    let user: (i64,) =
        sqlx::query_as("SELECT user_id FROM oauth_access_tokens WHERE token_hash = $1")
            .bind(digest(&token))
            .fetch_one(&mut conn)
            .await
            .unwrap();
    apis.sql("UPDATE users SET approved = false WHERE id = $1", user.0)
        .await;
    assert_eq!(apis.verify_credentials(&apis.b, &token).await, 403);
}

#[tokio::test]
async fn the_cache_can_be_turned_off() {
    let db = migrated_database().await;
    let server = common::start_api_with(
        &db,
        &service_env("FEDI_TEST_REDIS_URL"),
        &[("FEDI_TOKEN_CACHE_SECONDS", "0")],
    )
    .await;
    let body: Value = reqwest::get(format!("{}/readyz", server.base_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["token_cache"], "disabled");
    // Long enough for a listener to connect, had one been started (the other tests see
    // theirs within a second).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        listener_pids(&db).await.is_empty(),
        "no listener without a cache"
    );
}

/// The backends of the api processes' token listeners on `db`.
async fn listener_pids(db: &str) -> Vec<i32> {
    let mut conn = PgConnection::connect(db).await.unwrap();
    sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity \
         WHERE application_name = $1 AND datname = current_database() ORDER BY pid",
    )
    .bind(APPLICATION_NAME)
    .fetch_all(&mut conn)
    .await
    .unwrap()
}
