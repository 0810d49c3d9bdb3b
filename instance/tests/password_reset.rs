//! Password reset by e-mail, end to end: the HTML pages of the api, a `fedi-server worker`
//! sending through the SMTP sink, the link followed, the new password set. An unknown
//! address gets the same answer and no mail; a token works once and expires; the old
//! tokens of the user stop working.

mod common;
#[path = "mail/sink.rs"]
mod sink;

use std::time::Duration;

use common::*;
use fedi_server::auth::credentials::verify_password;
use reqwest::header;
use sink::{Mail, address, received, smtp_env};

const WAIT: Duration = Duration::from_secs(30);
const SENT: &str = "If your email address exists in our database, you will receive a password \
                    recovery link at your email address in a few minutes.";

/// A browser of the pages: the CSRF cookie they set, sent back with each form.
struct Browser {
    base: String,
    http: reqwest::Client,
    csrf_cookie: Option<String>,
}

struct Page {
    status: u16,
    html: String,
}

impl Page {
    fn csrf_token(&self) -> String {
        self.input("csrf_token")
    }

    fn input(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self.html.find(&marker).unwrap_or_else(|| {
            panic!("no {name} in the page: {}", self.html);
        }) + marker.len();
        let end = self.html[start..].find('"').unwrap() + start;
        self.html[start..end].to_string()
    }
}

impl Browser {
    fn new(base: &str) -> Self {
        Self {
            base: base.to_string(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            csrf_cookie: None,
        }
    }

    async fn send(&mut self, method: reqwest::Method, path: &str, form: &[(&str, &str)]) -> Page {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(c) = &self.csrf_cookie {
            req = req.header(header::COOKIE, format!("__Host-fedi_csrf={c}"));
        }
        if !form.is_empty() {
            req = req
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(serde_urlencoded::to_string(form).unwrap());
        }
        let reply = req.send().await.unwrap();
        for v in reply.headers().get_all(header::SET_COOKIE) {
            let v = v.to_str().unwrap();
            if let Some(rest) = v.strip_prefix("__Host-fedi_csrf=") {
                self.csrf_cookie = Some(rest.split(';').next().unwrap().to_string());
            }
        }
        let status = reply.status().as_u16();
        Page {
            status,
            html: reply.text().await.unwrap(),
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        self.send(reqwest::Method::GET, path, &[]).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        self.send(reqwest::Method::POST, path, form).await
    }

    /// Asks for a reset of `email` through the form.
    async fn ask_reset(&mut self, email: &str) -> Page {
        let form = self.get("/auth/password/new").await;
        assert_eq!(form.status, 200, "{}", form.html);
        let csrf = form.csrf_token();
        self.post("/auth/password", &[("email", email), ("csrf_token", &csrf)])
            .await
    }
}

/// A confirmed user with a unique address; returns `(user id, address, a token of theirs)`.
async fn user(db: &str, name: &str) -> (i64, String, String) {
    let (_, user_id) = create_user(db, name, "the old password").await;
    let email = address(name);
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(db)
        .await
        .unwrap();
    sqlx::query("UPDATE users SET email = $2 WHERE id = $1")
        .bind(user_id)
        .bind(&email)
        .execute(&mut conn)
        .await
        .unwrap();
    let token = issue_token(db, Some(user_id), "read write").await;
    (user_id, email, token)
}

/// The token of the reset link in `mail`.
fn reset_token(mail: &Mail) -> String {
    let marker = "/auth/password/edit?reset_password_token=";
    let start = mail.body.find(marker).unwrap_or_else(|| panic!("{mail:?}")) + marker.len();
    mail.body[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

async fn mail_with(to: &str, subject: &str) -> Mail {
    eventually(WAIT, &format!("a mail {subject:?} to {to}"), || async {
        received(to)
            .into_iter()
            .find(|m| m.subject.contains(subject))
    })
    .await
}

async fn password_hash(db: &str, user_id: i64) -> String {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(db)
        .await
        .unwrap();
    sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

async fn verify_credentials(api: &TestApi, token: &str) -> u16 {
    api.call(
        "GET",
        "/api/v1/accounts/verify_credentials",
        Some(token),
        Body::None,
    )
    .await
    .status
}

/// The api and a worker that mails through the sink.
async fn services() -> (TestApi, Server) {
    let domain = unique_domain();
    let env = smtp_env(&domain);
    let api = TestApi::start_with(&env_refs(&env)).await;
    let worker = start_worker(
        &api.db,
        &service_env("FEDI_TEST_REDIS_URL"),
        &env_refs(&env),
    );
    (api, worker)
}

#[tokio::test]
async fn a_reset_link_sets_the_password_once_and_signs_every_app_out() {
    let (api, _worker) = services().await;
    let (alice, email, old_token) = user(&api.db, "alice").await;
    assert_eq!(verify_credentials(&api, &old_token).await, 200);
    let mut browser = Browser::new(&api.server.base_url);

    // An unknown address and a known one get the same page; only the known one a mail.
    let nobody = address("nobody");
    let unknown = browser.ask_reset(&nobody).await;
    let known = browser.ask_reset(&email.to_uppercase()).await;
    assert_eq!((unknown.status, known.status), (200, 200));
    assert!(unknown.html.contains(SENT), "{}", unknown.html);
    assert_eq!(unknown.html, known.html);
    let mail = mail_with(&email, "Reset password instructions").await;
    let token = reset_token(&mail);
    assert_eq!(token.len(), 43, "{mail:?}");
    assert!(
        mail.body
            .contains(&format!("/auth/password/edit?reset_password_token={token}")),
        "{mail:?}"
    );
    let mut conn = api.conn().await;
    let queued_for_nobody: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outgoing_mail WHERE to_address = $1")
            .bind(&nobody)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(queued_for_nobody, 0);
    assert!(received(&nobody).is_empty());

    // The link's form, then the new password; a mismatched confirmation changes nothing.
    let edit = browser
        .get(&format!("/auth/password/edit?reset_password_token={token}"))
        .await;
    assert_eq!(edit.status, 200, "{}", edit.html);
    assert_eq!(edit.input("reset_password_token"), token);
    let csrf = edit.csrf_token();
    let mismatch = browser
        .post(
            "/auth/password",
            &[
                ("_method", "put"),
                ("csrf_token", &csrf),
                ("reset_password_token", &token),
                ("password", "a brand new password"),
                ("password_confirmation", "another password"),
            ],
        )
        .await;
    assert_eq!(mismatch.status, 422, "{}", mismatch.html);
    assert!(mismatch.html.contains("doesn&#39;t match") || mismatch.html.contains("doesn't match"));
    assert!(verify_password(
        "the old password",
        &password_hash(&api.db, alice).await
    ));

    // Without the form's CSRF token, nothing either.
    let forged = browser
        .send(
            reqwest::Method::PUT,
            "/auth/password",
            &[
                ("reset_password_token", &token),
                ("password", "a brand new password"),
                ("password_confirmation", "a brand new password"),
            ],
        )
        .await;
    assert_eq!(forged.status, 403, "{}", forged.html);

    let done = browser
        .send(
            reqwest::Method::PUT,
            "/auth/password",
            &[
                ("csrf_token", &csrf),
                ("reset_password_token", &token),
                ("password", "a brand new password"),
                ("password_confirmation", "a brand new password"),
            ],
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.html);
    assert!(done.html.contains("changed successfully"), "{}", done.html);
    let hash = password_hash(&api.db, alice).await;
    assert!(verify_password("a brand new password", &hash));
    assert!(!verify_password("the old password", &hash));

    // Every token the user had is revoked; the user is told by mail.
    assert_eq!(verify_credentials(&api, &old_token).await, 401);
    let notice = mail_with(&email, "Password changed").await;
    assert!(notice.body.contains("has just been changed"), "{notice:?}");

    // The token worked once.
    let again = browser
        .post(
            "/auth/password",
            &[
                ("csrf_token", &csrf),
                ("reset_password_token", &token),
                ("password", "yet another password"),
                ("password_confirmation", "yet another password"),
            ],
        )
        .await;
    assert_eq!(again.status, 404, "{}", again.html);
    assert!(
        again.html.contains("invalid or has expired"),
        "{}",
        again.html
    );
    let reused = browser
        .get(&format!("/auth/password/edit?reset_password_token={token}"))
        .await;
    assert_eq!(reused.status, 404);
    assert_eq!(password_hash(&api.db, alice).await, hash);
    // The mail bodies, with their one-time link, are not kept once sent.
    eventually(WAIT, "both mails marked sent", || async {
        let mut conn = api.conn().await;
        let unsent: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM outgoing_mail WHERE to_address = $1 \
             AND (sent_at IS NULL OR body_text <> '')",
        )
        .bind(&email)
        .fetch_one(&mut conn)
        .await
        .unwrap();
        (unsent == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn expired_tokens_and_unconfirmed_addresses_get_nowhere() {
    let (api, _worker) = services().await;
    let (alice, email, old_token) = user(&api.db, "alice").await;
    let mut browser = Browser::new(&api.server.base_url);
    assert_eq!(browser.ask_reset(&email).await.status, 200);
    let token = reset_token(&mail_with(&email, "Reset password instructions").await);

    // Six hours later (Devise's `reset_password_within`), the link is dead.
    let mut conn = api.conn().await;
    sqlx::query(
        "UPDATE users SET reset_password_sent_at = now() - interval '6 hours 1 minute' \
         WHERE id = $1",
    )
    .bind(alice)
    .execute(&mut conn)
    .await
    .unwrap();
    let edit = browser
        .get(&format!("/auth/password/edit?reset_password_token={token}"))
        .await;
    assert_eq!(edit.status, 404, "{}", edit.html);
    let csrf = edit.csrf_token_or_new(&mut browser).await;
    let refused = browser
        .post(
            "/auth/password",
            &[
                ("csrf_token", &csrf),
                ("reset_password_token", &token),
                ("password", "a brand new password"),
                ("password_confirmation", "a brand new password"),
            ],
        )
        .await;
    assert_eq!(refused.status, 404, "{}", refused.html);
    assert!(verify_password(
        "the old password",
        &password_hash(&api.db, alice).await
    ));
    assert_eq!(verify_credentials(&api, &old_token).await, 200);

    // An address not confirmed yet gets the same answer and no mail.
    let (bob, bob_email, _) = user(&api.db, "bob").await;
    sqlx::query("UPDATE users SET confirmed_at = NULL WHERE id = $1")
        .bind(bob)
        .execute(&mut conn)
        .await
        .unwrap();
    let answer = browser.ask_reset(&bob_email).await;
    assert_eq!(answer.status, 200);
    assert!(answer.html.contains(SENT));
    let (queued, token_set): (i64, bool) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM outgoing_mail WHERE to_address = $2), \
                reset_password_token_hash IS NOT NULL FROM users WHERE id = $1",
    )
    .bind(bob)
    .bind(&bob_email)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!((queued, token_set), (0, false));
}

impl Page {
    /// The form token of this page, or of a fresh request form when this page has none.
    async fn csrf_token_or_new(&self, browser: &mut Browser) -> String {
        if self.html.contains("name=\"csrf_token\"") {
            return self.csrf_token();
        }
        browser.get("/auth/password/new").await.csrf_token()
    }
}
