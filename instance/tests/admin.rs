//! `fedi-server admin`, run as the binary against a real PostgreSQL, the way an operator (or
//! a Kubernetes Job) runs it.

mod common;

use std::process::Output;

use common::*;
use fedi_server::auth::credentials::{digest, new_secret, verify_password};

fn admin(db: &str, args: &[&str]) -> Output {
    // Admin needs no Redis; the configuration still requires the variable.
    server_command(db, "redis://unused.invalid")
        .arg("admin")
        .args(args)
        .output()
        .expect("run fedi-server admin")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[track_caller]
fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        stdout(out),
        stderr(out)
    );
}

#[track_caller]
fn assert_fails_with(out: &Output, message: &str) {
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {}\nstderr: {}",
        stdout(out),
        stderr(out)
    );
    assert!(
        stderr(out).contains(message),
        "{:?} lacks {message:?}",
        stderr(out)
    );
    assert_eq!(stdout(out), "", "nothing on stdout after a failure");
}

async fn connect(db: &str) -> sqlx::PgConnection {
    <sqlx::PgConnection as sqlx::Connection>::connect(db)
        .await
        .unwrap()
}

#[derive(Debug, sqlx::FromRow)]
struct UserRow {
    email: String,
    password_hash: String,
    role: String,
    confirmed: bool,
    approved: bool,
    suspended: bool,
}

async fn user(db: &str, username: &str) -> UserRow {
    sqlx::query_as(
        "SELECT u.email, u.password_hash, u.role, u.confirmed_at IS NOT NULL AS confirmed, \
                u.approved, a.suspended_at IS NOT NULL AS suspended \
         FROM accounts a JOIN users u ON u.account_id = a.id \
         WHERE a.username = $1 AND a.domain IS NULL",
    )
    .bind(username)
    .fetch_one(&mut connect(db).await)
    .await
    .unwrap()
}

async fn count(db: &str, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(&mut connect(db).await)
        .await
        .unwrap()
}

#[tokio::test]
async fn create_prints_a_generated_password_once() {
    let db = migrated_database().await;
    let out = admin(
        &db,
        &[
            "accounts",
            "create",
            "Alice",
            "--email",
            "Alice@Example.ORG",
            "--role",
            "owner",
            "--confirmed",
        ],
    );
    assert_ok(&out);
    let printed = stdout(&out);
    let password = printed.trim_end_matches('\n');
    assert_eq!(printed.lines().count(), 1, "only the password: {printed:?}");
    assert!(password.len() >= 32, "a strong password: {password:?}");
    assert!(
        !stderr(&out).contains(password),
        "the password is printed once, on stdout"
    );
    assert!(stderr(&out).contains("created @Alice"), "{}", stderr(&out));

    let row = user(&db, "Alice").await;
    assert_eq!(
        row.email, "alice@example.org",
        "addresses are kept in lower case"
    );
    assert_eq!(row.role, "owner");
    assert!(row.confirmed && row.approved && !row.suspended, "{row:?}");
    assert!(row.password_hash.starts_with("$argon2id$"));
    assert!(verify_password(password, &row.password_hash));
}

#[tokio::test]
async fn create_with_a_password_prints_no_secret() {
    let db = migrated_database().await;
    let out = admin(
        &db,
        &[
            "accounts",
            "create",
            "bob",
            "--email",
            "bob@test.example",
            "--password",
            "correct horse battery",
        ],
    );
    assert_ok(&out);
    assert_eq!(stdout(&out), "");
    assert!(!stderr(&out).contains("correct horse"));
    // Not confirmed: the command says how to confirm.
    assert!(
        stderr(&out).contains("admin accounts confirm bob"),
        "{}",
        stderr(&out)
    );
    let row = user(&db, "bob").await;
    assert_eq!(row.role, "user");
    assert!(!row.confirmed && row.approved, "{row:?}");
    assert!(verify_password("correct horse battery", &row.password_hash));
}

#[tokio::test]
async fn create_refuses_taken_and_malformed_input_and_writes_nothing() {
    let db = migrated_database().await;
    create_user(&db, "carol", "password-1").await;
    let create = |username: &'static str, email: &'static str, extra: &'static [&'static str]| {
        let mut args = vec!["accounts", "create", username, "--email", email];
        args.extend_from_slice(extra);
        admin(&db, &args)
    };
    let cases: [(Output, &str); 7] = [
        (
            create("CAROL", "new@test.example", &[]),
            "the username @CAROL is already taken",
        ),
        (
            create("dan", "Carol@Test.Example", &[]),
            "carol@test.example is already used by another account",
        ),
        (
            create("al.ice", "a@test.example", &[]),
            "only letters, digits and underscores",
        ),
        (
            create("erin", "not-an-address", &[]),
            "is not an e-mail address",
        ),
        (
            create("erin", "e@test.example", &["--password", "short"]),
            "must have 8 to 72 characters",
        ),
        (
            create("@erin@elsewhere.example", "e@test.example", &[]),
            "only local accounts",
        ),
        (
            create("erin", "e@test.example", &["--role", "superuser"]),
            "invalid value 'superuser'",
        ),
    ];
    for (out, message) in &cases[..6] {
        assert_fails_with(out, message);
    }
    // clap's own usage error.
    assert_eq!(cases[6].0.status.code(), Some(2));
    assert!(
        stderr(&cases[6].0).contains(cases[6].1),
        "{}",
        stderr(&cases[6].0)
    );
    assert_eq!(count(&db, "accounts").await, 1);
    assert_eq!(count(&db, "users").await, 1);
}

#[tokio::test]
async fn confirm_approve_suspend_unsuspend_and_role() {
    let db = migrated_database().await;
    assert_ok(&admin(
        &db,
        &[
            "accounts",
            "create",
            "dora",
            "--email",
            "dora@test.example",
            "--password",
            "password-1",
        ],
    ));
    // As a sign-up waiting for approval would be.
    sqlx::query("UPDATE users SET approved = false, confirmation_token_hash = 'x'")
        .execute(&mut connect(&db).await)
        .await
        .unwrap();

    let out = admin(&db, &["accounts", "confirm", "dora"]);
    assert_ok(&out);
    assert!(
        stderr(&out).contains("@dora is confirmed"),
        "{}",
        stderr(&out)
    );
    assert!(user(&db, "dora").await.confirmed);
    let out = admin(&db, &["accounts", "confirm", "@dora"]);
    assert_ok(&out);
    assert!(
        stderr(&out).contains("already confirmed"),
        "{}",
        stderr(&out)
    );

    assert!(!user(&db, "dora").await.approved);
    assert_ok(&admin(&db, &["accounts", "approve", "DORA"]));
    assert!(user(&db, "dora").await.approved);

    assert_ok(&admin(&db, &["accounts", "suspend", "@dora@test.example"]));
    assert!(user(&db, "dora").await.suspended);
    let out = admin(&db, &["accounts", "suspend", "dora"]);
    assert_ok(&out);
    assert!(
        stderr(&out).contains("already suspended"),
        "{}",
        stderr(&out)
    );
    assert_ok(&admin(&db, &["accounts", "unsuspend", "dora"]));
    assert!(!user(&db, "dora").await.suspended);

    for role in ["moderator", "admin", "owner", "user"] {
        let out = admin(&db, &["accounts", "role", "dora", role]);
        assert_ok(&out);
        assert_eq!(user(&db, "dora").await.role, role);
    }
    let out = admin(&db, &["accounts", "role", "dora", "moderator"]);
    assert!(
        stderr(&out).contains("role user -> moderator"),
        "{}",
        stderr(&out)
    );
    let out = admin(&db, &["accounts", "role", "dora", "god"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(user(&db, "dora").await.role, "moderator");
}

#[tokio::test]
async fn reset_password_revokes_every_session_of_the_user_only() {
    let db = migrated_database().await;
    let (_, erin) = create_user(&db, "erin", "old-password").await;
    let (_, frank) = create_user(&db, "frank", "franks-password").await;
    issue_token(&db, Some(erin), "read").await;
    issue_token(&db, Some(erin), "read write").await;
    issue_token(&db, Some(frank), "read").await;
    let mut conn = connect(&db).await;
    let (app,): (i64,) = sqlx::query_as(
        "INSERT INTO oauth_applications (name, redirect_uris, scopes, client_id, client_secret_hash) \
         VALUES ('app', ARRAY['urn:ietf:wg:oauth:2.0:oob'], 'read', $1, $2) RETURNING id",
    )
    .bind(new_secret())
    .bind(digest(&new_secret()))
    .fetch_one(&mut conn)
    .await
    .unwrap();
    // A code handed out just before the reset, not yet exchanged.
    for user in [erin, frank] {
        sqlx::query(
            "INSERT INTO oauth_authorization_codes \
             (code_hash, application_id, user_id, redirect_uri, scopes, expires_at) \
             VALUES ($1, $2, $3, 'urn:ietf:wg:oauth:2.0:oob', 'read', now() + interval '10 minutes')",
        )
        .bind(digest(&new_secret()))
        .bind(app)
        .bind(user)
        .execute(&mut conn)
        .await
        .unwrap();
    }

    let out = admin(&db, &["accounts", "reset-password", "erin"]);
    assert_ok(&out);
    let password = stdout(&out).trim_end().to_string();
    assert_eq!(stdout(&out).lines().count(), 1);
    assert!(!stderr(&out).contains(&password));
    assert!(
        stderr(&out).contains("2 token(s) revoked"),
        "{}",
        stderr(&out)
    );

    let row = user(&db, "erin").await;
    assert!(verify_password(&password, &row.password_hash));
    assert!(!verify_password("old-password", &row.password_hash));

    let tokens: Vec<(i64, bool)> = sqlx::query_as(
        "SELECT user_id, revoked_at IS NOT NULL FROM oauth_access_tokens ORDER BY id",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(tokens, [(erin, true), (erin, true), (frank, false)]);
    let codes: Vec<i64> = sqlx::query_scalar("SELECT user_id FROM oauth_authorization_codes")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        codes,
        [frank],
        "erin's pending code can no longer buy a token"
    );
}

#[tokio::test]
async fn an_unknown_user_is_named_in_the_error() {
    let db = migrated_database().await;
    for args in [
        &["accounts", "confirm", "nobody"][..],
        &["accounts", "approve", "nobody"],
        &["accounts", "suspend", "@nobody"],
        &["accounts", "unsuspend", "nobody"],
        &["accounts", "role", "nobody", "admin"],
        &["accounts", "reset-password", "nobody"],
    ] {
        assert_fails_with(&admin(&db, args), "no local account named @nobody");
    }
    // A remote account of the same name is not a local one.
    sqlx::query("INSERT INTO accounts (username, domain) VALUES ('remote', 'elsewhere.example')")
        .execute(&mut connect(&db).await)
        .await
        .unwrap();
    assert_fails_with(
        &admin(&db, &["accounts", "suspend", "remote"]),
        "no local account named @remote",
    );
}

#[tokio::test]
async fn database_problems_are_explained_without_credentials() {
    let unmigrated = fresh_database().await;
    assert_fails_with(
        &admin(&unmigrated, &["accounts", "confirm", "x"]),
        "run `fedi-server migrate` first",
    );

    let dead = format!("postgres://fedi:s3cret-pw@127.0.0.1:{}/fedi", free_port());
    let out = admin(&dead, &["accounts", "confirm", "x"]);
    assert_fails_with(&out, "cannot connect to the primary database");
    assert!(!stderr(&out).contains("s3cret-pw"), "{}", stderr(&out));
}
