//! The accounts API over HTTP against the real server, PostgreSQL, Redis and S3 store:
//! sign-up in every registration mode and its e-mail confirmation, the user's own profile
//! (text fields, avatar and header in the bucket), reading and searching accounts, follows,
//! follow requests, blocks, mutes, and the paged lists of them.

mod common;

use std::time::Duration;

use common::*;
use reqwest::header;
use serde_json::{Value, json};

/// A body and its content type.
enum Body {
    None,
    Form(Vec<(String, String)>),
    Json(Value),
    Multipart(Multipart),
}

fn form(pairs: &[(&str, &str)]) -> Body {
    Body::Form(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

struct Api {
    server: Server,
    db: String,
    http: reqwest::Client,
}

impl Api {
    async fn start(env: &[(&str, &str)]) -> Self {
        let (server, db) = api_on_fresh_database(env).await;
        Self {
            server,
            db,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    /// `path` may be a full `https://test.example/...` URL from a Link header or a mail.
    fn url(&self, path: &str) -> String {
        let path = path.strip_prefix("https://test.example").unwrap_or(path);
        format!("{}{path}", self.server.base_url)
    }

    async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Body) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        req = match body {
            Body::None => req,
            Body::Form(pairs) => req
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(serde_urlencoded::to_string(&pairs).unwrap()),
            Body::Json(v) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(v.to_string()),
            Body::Multipart(m) => req
                .header(header::CONTENT_TYPE, Multipart::content_type())
                .body(m.finish()),
        };
        Reply::read(req.send().await.expect("the server answers")).await
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.call("GET", path, token, Body::None).await
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Body) -> Reply {
        self.call("POST", path, token, body).await
    }

    async fn conn(&self) -> sqlx::PgConnection {
        <sqlx::PgConnection as sqlx::Connection>::connect(&self.db)
            .await
            .unwrap()
    }

    /// Rows in the tables a sign-up writes.
    async fn counts(&self) -> [i64; 4] {
        let mut conn = self.conn().await;
        let mut out = [0; 4];
        for (i, table) in ["accounts", "users", "oauth_access_tokens", "outgoing_mail"]
            .iter()
            .enumerate()
        {
            let sql = format!("SELECT count(*) FROM {table}");
            out[i] = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_one(&mut conn)
                .await
                .unwrap();
        }
        out
    }

    /// A local, confirmed account with a user, without the cost of hashing a password
    /// (nobody signs in with it here); returns `(account_id, user_id)`.
    async fn account(&self, username: &str) -> (i64, i64) {
        let mut conn = self.conn().await;
        let (account_id,): (i64,) =
            sqlx::query_as("INSERT INTO accounts (username) VALUES ($1) RETURNING id")
                .bind(username)
                .fetch_one(&mut conn)
                .await
                .unwrap();
        let (user_id,): (i64,) = sqlx::query_as(
            "INSERT INTO users (account_id, email, password_hash, confirmed_at) \
             VALUES ($1, $2, 'not-a-hash', now()) RETURNING id",
        )
        .bind(account_id)
        .bind(format!("{username}@mail.example"))
        .fetch_one(&mut conn)
        .await
        .unwrap();
        (account_id, user_id)
    }

    /// An account with a token of `scopes`; returns `(account_id, token)`.
    async fn user(&self, username: &str, scopes: &str) -> (String, String) {
        let (account_id, user_id) = self.account(username).await;
        let token = issue_token(&self.db, Some(user_id), scopes).await;
        (account_id.to_string(), token)
    }
}

fn sign_up(username: &str, email: &str) -> Vec<(&'static str, String)> {
    vec![
        ("username", username.to_string()),
        ("email", email.to_string()),
        ("password", "correct horse battery".to_string()),
        ("agreement", "true".to_string()),
        ("locale", "de".to_string()),
    ]
}

fn form_of(pairs: &[(&str, String)]) -> Body {
    Body::Form(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    )
}

/// The codes of `details[field]` of a 422.
fn codes(reply: &Value, field: &str) -> Vec<String> {
    reply["details"][field]
        .as_array()
        .unwrap_or_else(|| panic!("no details for {field}: {reply}"))
        .iter()
        .map(|d| d["error"].as_str().unwrap().to_string())
        .collect()
}

/// The confirmation link of the newest mail to `to`.
async fn confirmation_link(api: &Api, to: &str) -> String {
    let mut conn = api.conn().await;
    let (subject, body): (String, String) = sqlx::query_as(
        "SELECT subject, body_text FROM outgoing_mail WHERE to_address = $1 \
         AND sent_at IS NULL ORDER BY id DESC LIMIT 1",
    )
    .bind(to)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(subject.contains("test.example"), "{subject}");
    body.split_whitespace()
        .find(|w| w.starts_with("https://test.example/auth/confirmation?confirmation_token="))
        .unwrap_or_else(|| panic!("no link in {body}"))
        .to_string()
}

#[tokio::test]
async fn open_registration_returns_a_token_that_works_once_the_address_is_confirmed() {
    let api = Api::start(&[]).await;
    let app = issue_token(&api.db, None, "write:accounts").await;

    let token = api
        .post(
            "/api/v1/accounts",
            Some(&app),
            form_of(&sign_up("Alice_1", "Alice@Mail.Example")),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(token["token_type"], "Bearer");
    // The application's registered scopes, as Mastodon grants them.
    assert_eq!(token["scope"], "read write follow push");
    assert!(token["created_at"].is_i64(), "{token}");
    let access = token["access_token"].as_str().unwrap().to_string();

    let mut conn = api.conn().await;
    let (confirmed, approved, locale, email): (bool, bool, String, String) = sqlx::query_as(
        "SELECT u.confirmed_at IS NOT NULL, u.approved, u.locale, u.email \
         FROM users u JOIN accounts a ON a.id = u.account_id WHERE a.username = 'Alice_1'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        (confirmed, approved, locale.as_str(), email.as_str()),
        (false, true, "de", "alice@mail.example")
    );

    // Unconfirmed: the token exists but opens nothing.
    api.get("/api/v1/accounts/verify_credentials", Some(&access))
        .await
        .expect(403);

    let link = confirmation_link(&api, "alice@mail.example").await;
    let page = api.get(&link, None).await.expect(200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text().contains("confirmed"), "{}", page.text());
    // One use only; a made-up token confirms nothing.
    api.get(&link, None).await.expect(404);
    api.get("/auth/confirmation?confirmation_token=nope", None)
        .await
        .expect(404);
    api.get("/auth/confirmation", None).await.expect(404);

    let me = api
        .get("/api/v1/accounts/verify_credentials", Some(&access))
        .await
        .expect(200)
        .json();
    assert_eq!(me["username"], "Alice_1");
    assert_eq!(me["acct"], "Alice_1");
    assert_eq!(me["source"]["privacy"], "public");
    assert_eq!(me["role"]["id"], "-99");

    // Elk and friends send JSON.
    let token = api
        .post(
            "/api/v1/accounts",
            Some(&app),
            Body::Json(json!({
                "username": "bob", "email": "bob@mail.example",
                "password": "hunter2hunter2", "agreement": true
            })),
        )
        .await
        .expect(200)
        .json();
    assert!(token["access_token"].is_string());
}

#[tokio::test]
async fn bad_sign_ups_are_refused_field_by_field_and_store_nothing() {
    let api = Api::start(&[]).await;
    let app = issue_token(&api.db, None, "write:accounts").await;
    api.post(
        "/api/v1/accounts",
        Some(&app),
        form_of(&sign_up("alice", "alice@mail.example")),
    )
    .await
    .expect(200);
    let read_only = issue_token(&api.db, None, "read").await;
    let before = api.counts().await;

    let with = |changes: &[(&'static str, &str)]| {
        let mut pairs = sign_up("newcomer", "newcomer@mail.example");
        for (k, v) in changes {
            pairs.retain(|(key, _)| key != k);
            if !v.is_empty() {
                pairs.push((k, v.to_string()));
            }
        }
        form_of(&pairs)
    };
    let long_password = "x".repeat(73);
    let long_username = "a".repeat(31);
    let cases: Vec<(Body, &str, &str)> = vec![
        (with(&[("username", "ALICE")]), "username", "ERR_TAKEN"),
        (
            with(&[("email", "ALICE@mail.example")]),
            "email",
            "ERR_TAKEN",
        ),
        (
            with(&[("username", "new-comer")]),
            "username",
            "ERR_INVALID",
        ),
        (
            with(&[("username", long_username.as_str())]),
            "username",
            "ERR_TOO_LONG",
        ),
        (with(&[("username", "admin")]), "username", "ERR_RESERVED"),
        (with(&[("username", "")]), "username", "ERR_BLANK"),
        (with(&[("email", "not-an-address")]), "email", "ERR_INVALID"),
        (with(&[("password", "short")]), "password", "ERR_TOO_SHORT"),
        (
            with(&[("password", long_password.as_str())]),
            "password",
            "ERR_TOO_LONG",
        ),
        (with(&[("agreement", "")]), "agreement", "ERR_ACCEPTED"),
        (with(&[("agreement", "false")]), "agreement", "ERR_ACCEPTED"),
        (with(&[("locale", "klingon")]), "locale", "ERR_INCLUSION"),
    ];
    for (body, field, code) in cases {
        let reply = api
            .post("/api/v1/accounts", Some(&app), body)
            .await
            .expect(422)
            .json();
        assert_eq!(codes(&reply, field), [code], "{reply}");
        assert!(
            reply["error"]
                .as_str()
                .unwrap()
                .starts_with("Validation failed: "),
            "{reply}"
        );
    }
    // Every problem at once, each under its field.
    let reply = api
        .post(
            "/api/v1/accounts",
            Some(&app),
            form(&[("username", "alice"), ("email", "alice@mail.example")]),
        )
        .await
        .expect(422)
        .json();
    assert_eq!(codes(&reply, "username"), ["ERR_TAKEN"]);
    assert_eq!(codes(&reply, "email"), ["ERR_TAKEN"]);
    assert_eq!(codes(&reply, "password"), ["ERR_BLANK"]);
    assert_eq!(codes(&reply, "agreement"), ["ERR_ACCEPTED"]);
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .contains("Username has already been taken"),
        "{reply}"
    );

    // Scopes: a token needs write:accounts; no token at all is a 401.
    let ok_body = || with(&[]);
    api.post("/api/v1/accounts", Some(&read_only), ok_body())
        .await
        .expect(403);
    api.post("/api/v1/accounts", None, ok_body())
        .await
        .expect(401);
    assert_eq!(
        api.counts().await,
        before,
        "a refused sign-up stored something"
    );

    // A failure in the last step (the mail) takes the account, user and token with it.
    let mut conn = api.conn().await;
    sqlx::query(
        "CREATE FUNCTION refuse_mail() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'mail table unavailable'; END $$",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::query(
        "CREATE TRIGGER refuse_mail BEFORE INSERT ON outgoing_mail \
         FOR EACH ROW EXECUTE FUNCTION refuse_mail()",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let reply = api
        .post("/api/v1/accounts", Some(&app), ok_body())
        .await
        .expect(500);
    assert_eq!(reply.json(), json!({"error": "internal error"}));
    assert_eq!(
        api.counts().await,
        before,
        "a failed sign-up left rows behind"
    );
    sqlx::query("DROP TRIGGER refuse_mail ON outgoing_mail")
        .execute(&mut conn)
        .await
        .unwrap();

    // Racing sign-ups for one name: one wins, the others learn it is taken.
    let attempts = (0..6).map(|i| {
        let body = form_of(&sign_up("racer", &format!("racer{i}@mail.example")));
        api.post("/api/v1/accounts", Some(&app), body)
    });
    let replies = futures_join_all(attempts).await;
    let won = replies.iter().filter(|r| r.status == 200).count();
    assert_eq!(won, 1, "exactly one sign-up gets the name");
    for r in replies.iter().filter(|r| r.status != 200) {
        assert_eq!(r.status, 422, "{}", r.text());
        assert_eq!(codes(&r.json(), "username"), ["ERR_TAKEN"]);
    }
}

/// `futures::future::join_all` without the dependency: the requests run concurrently on
/// the runtime.
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<Reply>
where
    F: std::future::Future<Output = Reply>,
{
    let futures: Vec<_> = futures.map(Box::pin).collect();
    let mut out = Vec::new();
    let mut pending: Vec<_> = futures.into_iter().map(Some).collect();
    let mut results: Vec<Option<Reply>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (i, slot) in pending.iter_mut().enumerate() {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(r) => {
                        results[i] = Some(r);
                        *slot = None;
                    }
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out.extend(results.into_iter().map(Option::unwrap));
    out
}

#[tokio::test]
async fn approval_mode_needs_a_reason_and_closed_mode_refuses() {
    let api = Api::start(&[("FEDI_REGISTRATIONS", "approval")]).await;
    let app = issue_token(&api.db, None, "write:accounts").await;
    let reply = api
        .post(
            "/api/v1/accounts",
            Some(&app),
            form_of(&sign_up("carol", "carol@mail.example")),
        )
        .await
        .expect(422)
        .json();
    assert_eq!(codes(&reply, "reason"), ["ERR_BLANK"]);

    let mut pairs = sign_up("carol", "carol@mail.example");
    pairs.push(("reason", "I run the local choir".into()));
    let token = api
        .post("/api/v1/accounts", Some(&app), form_of(&pairs))
        .await
        .expect(200)
        .json();
    let mut conn = api.conn().await;
    let (approved, reason): (bool, String) =
        sqlx::query_as("SELECT approved, reason FROM users WHERE email = 'carol@mail.example'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(
        (approved, reason.as_str()),
        (false, "I run the local choir")
    );
    // Confirmed but not yet approved: still locked out.
    let link = confirmation_link(&api, "carol@mail.example").await;
    let page = api.get(&link, None).await.expect(200);
    assert!(page.text().contains("approve"), "{}", page.text());
    api.get(
        "/api/v1/accounts/verify_credentials",
        token["access_token"].as_str(),
    )
    .await
    .expect(403);
    drop(api);

    let api = Api::start(&[("FEDI_REGISTRATIONS", "closed")]).await;
    let app = issue_token(&api.db, None, "write:accounts").await;
    let reply = api
        .post(
            "/api/v1/accounts",
            Some(&app),
            form_of(&sign_up("dave", "dave@mail.example")),
        )
        .await
        .expect(403);
    assert_eq!(reply.json(), json!({"error": "This action is not allowed"}));
    assert_eq!(api.counts().await, [0, 0, 1, 0]);
}

#[tokio::test]
async fn verify_credentials_needs_a_user_token_with_read_accounts_or_profile() {
    let api = Api::start(&[]).await;
    let (_, user_id) = api.account("erin").await;
    let path = "/api/v1/accounts/verify_credentials";
    let reply = api.get(path, None).await.expect(401);
    assert_eq!(
        reply.header("www-authenticate"),
        Some("Bearer error=\"invalid_token\"")
    );
    api.get(path, Some("made-up")).await.expect(401);
    for (scopes, status) in [
        ("write:statuses read:statuses", 403),
        ("profile", 200),
        ("read:accounts", 200),
        ("read", 200),
    ] {
        let token = issue_token(&api.db, Some(user_id), scopes).await;
        api.get(path, Some(&token)).await.expect(status);
    }
    let app = issue_token(&api.db, None, "read").await;
    let reply = api.get(path, Some(&app)).await.expect(422);
    // Mastodon's text is exactly this message; the shared `Auth::user` currently prefixes
    // it with "Validation failed: " (reported to its owner).
    let error = reply.json()["error"].as_str().unwrap().to_string();
    assert!(
        error.ends_with("This method requires an authenticated user"),
        "{error}"
    );
}

#[tokio::test]
async fn update_credentials_changes_text_fields_and_source() {
    let api = Api::start(&[]).await;
    let (id, token) = api.user("frank", "read write").await;
    let path = "/api/v1/accounts/update_credentials";
    let me = api
        .call(
            "PATCH",
            path,
            Some(&token),
            form(&[
                ("display_name", "Frank <b>F</b>"),
                (
                    "note",
                    "Hi <script>alert(1)</script>\n\nSecond & last: https://example.com/x",
                ),
                ("locked", "1"),
                ("bot", "true"),
                ("discoverable", "off"),
                ("fields_attributes[0][name]", "Web"),
                ("fields_attributes[0][value]", "https://frank.example"),
                ("fields_attributes[1][name]", "Pronouns"),
                ("fields_attributes[1][value]", "he/him"),
                ("source[privacy]", "private"),
                ("source[sensitive]", "true"),
                ("source[language]", "de"),
            ]),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(me["id"], id);
    assert_eq!(me["display_name"], "Frank <b>F</b>");
    let note = me["note"].as_str().unwrap();
    assert!(
        note.starts_with("<p>Hi &lt;script&gt;alert(1)&lt;/script&gt;</p><p>Second &amp; last: <a href=\"https://example.com/x\""),
        "{note}"
    );
    assert!(!note.contains("<script"), "{note}");
    assert_eq!(
        me["source"]["note"],
        "Hi <script>alert(1)</script>\n\nSecond & last: https://example.com/x"
    );
    assert_eq!(
        (&me["locked"], &me["bot"], &me["discoverable"]),
        (&json!(true), &json!(true), &json!(false))
    );
    assert_eq!(me["fields"][0]["name"], "Web");
    assert!(
        me["fields"][0]["value"]
            .as_str()
            .unwrap()
            .contains("rel=\"me nofollow noopener\""),
        "{me}"
    );
    assert_eq!(me["fields"][1]["value"], "he/him");
    assert_eq!(me["fields"][0]["verified_at"], Value::Null);
    assert_eq!(
        me["source"]["fields"],
        json!([
            {"name": "Web", "value": "https://frank.example", "verified_at": null},
            {"name": "Pronouns", "value": "he/him", "verified_at": null},
        ])
    );
    assert_eq!(
        (
            &me["source"]["privacy"],
            &me["source"]["sensitive"],
            &me["source"]["language"]
        ),
        (&json!("private"), &json!(true), &json!("de"))
    );

    // JSON with an array of fields; what is not sent stays.
    let me = api
        .call(
            "PATCH",
            path,
            Some(&token),
            Body::Json(json!({
                "fields_attributes": [{"name": "Only", "value": "one"}],
                "source": {"language": ""}
            })),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(me["fields"].as_array().unwrap().len(), 1);
    assert_eq!(me["display_name"], "Frank <b>F</b>");
    assert_eq!(me["source"]["privacy"], "private");
    assert_eq!(me["source"]["language"], Value::Null);
    let again = api
        .get("/api/v1/accounts/verify_credentials", Some(&token))
        .await
        .expect(200)
        .json();
    assert_eq!(again["fields"], me["fields"]);

    let long_name = "n".repeat(31);
    let long_note = "n".repeat(501);
    let too_many: Vec<(String, String)> = (0..5)
        .flat_map(|i| {
            [
                (format!("fields_attributes[{i}][name]"), format!("n{i}")),
                (format!("fields_attributes[{i}][value]"), "v".to_string()),
            ]
        })
        .collect();
    for body in [
        form(&[("display_name", long_name.as_str())]),
        form(&[("note", long_note.as_str())]),
        Body::Form(too_many),
        form(&[("source[privacy]", "everyone")]),
        form(&[("source[language]", "German")]),
        form(&[("locked", "perhaps")]),
    ] {
        let reply = api
            .call("PATCH", path, Some(&token), body)
            .await
            .expect(422);
        assert!(
            reply.json()["error"]
                .as_str()
                .unwrap()
                .starts_with("Validation failed"),
            "{}",
            reply.text()
        );
    }
    let unchanged = api
        .get("/api/v1/accounts/verify_credentials", Some(&token))
        .await
        .json();
    assert_eq!(unchanged, again, "a refused update changed something");

    let (_, read_only) = api.user("grace", "read").await;
    api.call(
        "PATCH",
        path,
        Some(&read_only),
        form(&[("display_name", "x")]),
    )
    .await
    .expect(403);
    api.call("PATCH", path, None, form(&[("display_name", "x")]))
        .await
        .expect(401);
}

/// A real 1x1 PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0xda, 0x63, 0x48, 0xc8, 0x6c, 0xf9,
    0x0f, 0x00, 0x04, 0xc7, 0x02, 0x4d, 0xf5, 0xe2, 0x1a, 0xb5, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];
/// The start of a JPEG (JFIF): what the server looks at.
const JPEG: &[u8] = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9";

#[tokio::test]
async fn avatars_and_headers_go_to_the_bucket_and_are_served_with_their_real_type() {
    let bucket = TestBucket::public("accounts").await;
    let env = bucket.server_env();
    let api = Api::start(&env_refs(&env)).await;
    let (id, token) = api.user("heidi", "read write").await;
    let path = "/api/v1/accounts/update_credentials";
    let public = bucket.public_url();

    // Before any upload: the server's own default images.
    let me = api
        .get(&format!("/api/v1/accounts/{id}"), None)
        .await
        .json();
    assert_eq!(
        me["avatar"],
        "https://test.example/avatars/original/missing.png"
    );
    for missing in [
        "/avatars/original/missing.png",
        "/headers/original/missing.png",
    ] {
        let reply = api.get(missing, None).await.expect(200);
        assert_eq!(reply.header("content-type"), Some("image/png"));
        assert!(reply.body.starts_with(b"\x89PNG"));
    }

    // The client's claimed types are wrong on purpose: the bytes decide.
    let me = api
        .call(
            "PATCH",
            path,
            Some(&token),
            Body::Multipart(
                Multipart::default()
                    .text("display_name", "Heidi")
                    .file("avatar", "me.bin", "application/octet-stream", PNG)
                    .file("header", "header.png", "image/png", JPEG),
            ),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(me["display_name"], "Heidi");
    let avatar = me["avatar"].as_str().unwrap().to_string();
    let header_url = me["header"].as_str().unwrap().to_string();
    assert!(
        avatar.starts_with(&format!("{public}media/accounts/avatars/{id}/"))
            && avatar.ends_with(".png"),
        "{avatar}"
    );
    assert!(
        header_url.starts_with(&format!("{public}media/accounts/headers/{id}/"))
            && header_url.ends_with(".jpg"),
        "{header_url}"
    );
    assert_eq!(me["avatar_static"], me["avatar"]);
    for (url, body, mime) in [
        (&avatar, PNG, "image/png"),
        (&header_url, JPEG, "image/jpeg"),
    ] {
        // Anonymous, as a browser fetches it.
        let got = reqwest::get(url.as_str()).await.unwrap();
        assert_eq!(got.status(), 200, "{url}");
        assert_eq!(
            got.headers()["content-type"].to_str().unwrap(),
            mime,
            "{url}"
        );
        assert_eq!(got.bytes().await.unwrap().as_ref(), body);
    }

    // Not an image, whatever it claims; too big though it starts like one. Nothing changes
    // and nothing is stored.
    let keys_before = bucket.keys().await;
    let mut big = PNG.to_vec();
    big.resize(8 * 1024 * 1024 + 1, 0);
    for (file, needle) in [
        (
            b"<html><script>alert(1)</script></html>".as_slice(),
            "must be a PNG, JPEG, GIF or WebP",
        ),
        (
            b"{\"type\":\"Person\"}".as_slice(),
            "must be a PNG, JPEG, GIF or WebP",
        ),
        (big.as_slice(), "less than 8 MB"),
    ] {
        let reply = api
            .call(
                "PATCH",
                path,
                Some(&token),
                Body::Multipart(Multipart::default().text("display_name", "Changed").file(
                    "avatar",
                    "x.png",
                    "image/png",
                    file,
                )),
            )
            .await
            .expect(422);
        assert!(reply.text().contains(needle), "{}", reply.text());
    }
    let me = api
        .get("/api/v1/accounts/verify_credentials", Some(&token))
        .await
        .json();
    assert_eq!(
        (me["avatar"].as_str(), me["display_name"].as_str()),
        (Some(avatar.as_str()), Some("Heidi"))
    );
    assert_eq!(bucket.keys().await, keys_before);

    // A new avatar replaces the old object; removing it restores the default.
    let me = api
        .call(
            "PATCH",
            path,
            Some(&token),
            Body::Multipart(Multipart::default().file("avatar", "a.gif", "image/gif", PNG)),
        )
        .await
        .expect(200)
        .json();
    let second = me["avatar"].as_str().unwrap().to_string();
    assert_ne!(second, avatar);
    assert_ne!(reqwest::get(avatar.as_str()).await.unwrap().status(), 200);
    let me = api
        .call("DELETE", "/api/v1/profile/avatar", Some(&token), Body::None)
        .await
        .expect(200)
        .json();
    assert_eq!(
        me["avatar"],
        "https://test.example/avatars/original/missing.png"
    );
    assert_eq!(me["header"], header_url.as_str());
    assert_ne!(reqwest::get(second.as_str()).await.unwrap().status(), 200);
    let remaining = bucket.keys().await;
    assert_eq!(remaining.len(), 1, "{remaining:?}");
    assert!(remaining[0].starts_with(&format!("media/accounts/headers/{id}/")));
}

#[tokio::test]
async fn accounts_are_read_by_id_and_acct_and_found_by_prefix() {
    let api = Api::start(&[]).await;
    let (ivan, token) = api.user("ivan", "read").await;
    let (ivy, _) = api.user("Ivy", "read").await;
    let (jane, _) = api.user("jane", "read").await;
    let (zed, _) = api.user("zed", "read").await;
    api.user("per_cent", "read").await;
    let mut conn = api.conn().await;
    sqlx::query("UPDATE accounts SET display_name = 'Jane Ivanova' WHERE id = $1")
        .bind(jane.parse::<i64>().unwrap())
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("UPDATE accounts SET suspended_at = now() WHERE id = $1")
        .bind(zed.parse::<i64>().unwrap())
        .execute(&mut conn)
        .await
        .unwrap();
    let (remote,): (i64,) = sqlx::query_as(
        "INSERT INTO accounts (username, domain) VALUES ('ivan', 'remote.example') RETURNING id",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();

    let a = api
        .get(&format!("/api/v1/accounts/{ivan}"), None)
        .await
        .expect(200)
        .json();
    assert_eq!(a["id"], ivan);
    assert_eq!(a["username"], "ivan");
    assert_eq!(a["acct"], "ivan");
    assert_eq!(a["url"], "https://test.example/@ivan");
    assert_eq!(a["uri"], "https://test.example/users/ivan");
    assert_eq!(a["group"], false);
    assert_eq!(a["emojis"], json!([]));
    assert_eq!(a["fields"], json!([]));
    assert_eq!(a["last_status_at"], Value::Null);
    assert_eq!(
        (
            &a["followers_count"],
            &a["following_count"],
            &a["statuses_count"]
        ),
        (&json!(0), &json!(0), &json!(0))
    );
    let created = a["created_at"].as_str().unwrap();
    assert!(
        created.ends_with("T00:00:00.000Z") && created.len() == 24,
        "{created}"
    );
    assert!(a.get("source").is_none(), "only the owner sees source");
    let r = api
        .get(&format!("/api/v1/accounts/{remote}"), None)
        .await
        .expect(200)
        .json();
    assert_eq!(r["acct"], "ivan@remote.example");

    for missing in [
        format!("/api/v1/accounts/{zed}"),
        "/api/v1/accounts/123456".to_string(),
        "/api/v1/accounts/not-a-number".to_string(),
    ] {
        let reply = api.get(&missing, None).await.expect(404);
        assert_eq!(reply.json(), json!({"error": "Record not found"}));
    }
    // A token, when given, must carry the scope.
    let (_, writer) = api.user("writer", "write").await;
    api.get(&format!("/api/v1/accounts/{ivan}"), Some(&writer))
        .await
        .expect(403);
    api.get(&format!("/api/v1/accounts/{ivan}"), Some(&token))
        .await
        .expect(200);

    for (acct, want) in [
        ("ivan", Some(ivan.clone())),
        ("@IVAN", Some(ivan.clone())),
        ("ivan@test.example", Some(ivan.clone())),
        ("ivan@remote.example", Some(remote.to_string())),
        ("ivy", Some(ivy.clone())),
        ("zed", None),
        ("nobody", None),
        ("ivan@elsewhere.example", None),
        ("", None),
    ] {
        let reply = api
            .get(
                &format!("/api/v1/accounts/lookup?acct={}", urlencode(acct)),
                None,
            )
            .await;
        match want {
            Some(id) => assert_eq!(reply.expect(200).json()["id"], id, "{acct}"),
            None => {
                reply.expect(404);
            }
        }
    }

    let search = |q: &str, extra: &str| {
        let path = format!("/api/v1/accounts/search?q={}{extra}", urlencode(q));
        let api = &api;
        let token = token.clone();
        async move {
            let reply = api.get(&path, Some(&token)).await.expect(200).json();
            reply
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["username"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    // The exact name first, then shorter names; display names match by word.
    assert_eq!(search("iv", "").await, ["Ivy", "ivan", "jane"]);
    assert_eq!(search("ivan", "").await, ["ivan", "jane"]);
    assert_eq!(search("@ivy@test.example", "").await, ["Ivy"]);
    assert_eq!(search("iv", "&limit=1").await, ["Ivy"]);
    assert_eq!(search("iv", "&limit=1&offset=1").await, ["ivan"]);
    assert_eq!(search("z", "").await, Vec::<String>::new());
    assert_eq!(search("per_", "").await, ["per_cent"]);
    assert_eq!(search("%", "").await, Vec::<String>::new());
    assert_eq!(search("iv@remote.example", "").await, Vec::<String>::new());
    api.get("/api/v1/accounts/search?q=iv", None)
        .await
        .expect(401);
    api.get("/api/v1/accounts/search?q=iv", Some(&writer))
        .await
        .expect(403);
    api.get("/api/v1/accounts/search", Some(&token))
        .await
        .expect(400);
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("", s)]).unwrap()[1..].to_string()
}

/// The relationship of the caller to `id`.
async fn relationship(api: &Api, token: &str, id: &str) -> Value {
    let reply = api
        .get(
            &format!("/api/v1/accounts/relationships?id[]={id}"),
            Some(token),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(reply.as_array().unwrap().len(), 1, "{reply}");
    reply[0].clone()
}

fn flags(rel: &Value) -> Vec<&'static str> {
    [
        "following",
        "followed_by",
        "requested",
        "requested_by",
        "blocking",
        "blocked_by",
        "muting",
        "muting_notifications",
    ]
    .into_iter()
    .filter(|f| rel[*f] == json!(true))
    .collect()
}

async fn counts_of(api: &Api, id: &str) -> (i64, i64) {
    let a = api
        .get(&format!("/api/v1/accounts/{id}"), None)
        .await
        .expect(200)
        .json();
    (
        a["followers_count"].as_i64().unwrap(),
        a["following_count"].as_i64().unwrap(),
    )
}

#[tokio::test]
async fn follows_requests_blocks_and_mutes_change_relationships() {
    let api = Api::start(&[]).await;
    let (alice, a) = api.user("alice", "read write follow").await;
    let (bob, b) = api.user("bob", "read write follow").await;
    let (carol, c) = api.user("carol", "read write follow").await;
    let (dave, d) = api.user("dave", "read write follow").await;
    let post = |token: &str, path: String| {
        let token = token.to_string();
        let api = &api;
        async move { api.post(&path, Some(&token), Body::None).await }
    };

    // Unlocked: a follow at once; the options show in the relationship.
    let rel = api
        .post(
            &format!("/api/v1/accounts/{bob}/follow"),
            Some(&a),
            form(&[
                ("reblogs", "false"),
                ("notify", "true"),
                ("languages[]", "de"),
            ]),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(rel["id"], bob);
    assert_eq!(flags(&rel), ["following"]);
    assert_eq!(
        (
            &rel["showing_reblogs"],
            &rel["notifying"],
            &rel["languages"]
        ),
        (&json!(false), &json!(true), &json!(["de"]))
    );
    // Following again changes only what is sent.
    let rel = api
        .post(
            &format!("/api/v1/accounts/{bob}/follow"),
            Some(&a),
            Body::Json(json!({"reblogs": true})),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(
        (&rel["showing_reblogs"], &rel["notifying"]),
        (&json!(true), &json!(true))
    );
    assert_eq!(
        flags(&relationship(&api, &b, &alice).await),
        ["followed_by"]
    );
    assert_eq!(counts_of(&api, &bob).await, (1, 0));
    assert_eq!(counts_of(&api, &alice).await, (0, 1));
    let rel = post(&a, format!("/api/v1/accounts/{bob}/unfollow"))
        .await
        .expect(200)
        .json();
    assert!(flags(&rel).is_empty(), "{rel}");
    assert_eq!(counts_of(&api, &bob).await, (0, 0));
    // Oneself: Mastodon's "not found"; unknown accounts likewise.
    post(&a, format!("/api/v1/accounts/{alice}/follow"))
        .await
        .expect(404);
    post(&a, "/api/v1/accounts/999/follow".into())
        .await
        .expect(404);

    // Locked: a request, which the target authorizes or rejects.
    api.call(
        "PATCH",
        "/api/v1/accounts/update_credentials",
        Some(&c),
        form(&[("locked", "true")]),
    )
    .await
    .expect(200);
    let rel = post(&a, format!("/api/v1/accounts/{carol}/follow"))
        .await
        .expect(200)
        .json();
    assert_eq!(flags(&rel), ["requested"]);
    post(&d, format!("/api/v1/accounts/{carol}/follow"))
        .await
        .expect(200);
    let requests = api
        .get("/api/v1/follow_requests", Some(&c))
        .await
        .expect(200);
    let ids: Vec<&str> = requests
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .map(|s| {
            if s == dave {
                "dave"
            } else if s == alice {
                "alice"
            } else {
                "?"
            }
        })
        .collect();
    assert_eq!(ids, ["dave", "alice"], "newest first");
    let me = api
        .get("/api/v1/accounts/verify_credentials", Some(&c))
        .await
        .json();
    assert_eq!(me["source"]["follow_requests_count"], 2);
    let rel = post(&c, format!("/api/v1/follow_requests/{alice}/authorize"))
        .await
        .expect(200)
        .json();
    assert_eq!(flags(&rel), ["followed_by"]);
    assert_eq!(flags(&relationship(&api, &a, &carol).await), ["following"]);
    let rel = post(&c, format!("/api/v1/follow_requests/{dave}/reject"))
        .await
        .expect(200)
        .json();
    assert!(flags(&rel).is_empty(), "{rel}");
    assert!(flags(&relationship(&api, &d, &carol).await).is_empty());
    post(&c, format!("/api/v1/follow_requests/{dave}/reject"))
        .await
        .expect(404);
    post(&c, format!("/api/v1/follow_requests/{bob}/authorize"))
        .await
        .expect(404);

    // A block ends follows both ways and stops new ones.
    post(&a, format!("/api/v1/accounts/{bob}/follow"))
        .await
        .expect(200);
    post(&b, format!("/api/v1/accounts/{alice}/follow"))
        .await
        .expect(200);
    let rel = post(&a, format!("/api/v1/accounts/{bob}/block"))
        .await
        .expect(200)
        .json();
    assert_eq!(flags(&rel), ["blocking"]);
    assert_eq!(flags(&relationship(&api, &b, &alice).await), ["blocked_by"]);
    post(&b, format!("/api/v1/accounts/{alice}/follow"))
        .await
        .expect(403);
    post(&a, format!("/api/v1/accounts/{bob}/follow"))
        .await
        .expect(403);
    assert_eq!(
        counts_of(&api, &alice).await,
        (0, 1),
        "alice still follows carol"
    );
    let blocks = api.get("/api/v1/blocks", Some(&a)).await.expect(200).json();
    assert_eq!(blocks[0]["id"], bob);
    // Bob, blocked, sees alice's lists empty.
    let hidden = api
        .get(&format!("/api/v1/accounts/{alice}/following"), Some(&b))
        .await
        .expect(200)
        .json();
    assert_eq!(hidden, json!([]));
    let visible = api
        .get(&format!("/api/v1/accounts/{alice}/following"), None)
        .await
        .expect(200)
        .json();
    assert_eq!(visible[0]["id"], carol);
    let rel = post(&a, format!("/api/v1/accounts/{bob}/unblock"))
        .await
        .expect(200)
        .json();
    assert!(flags(&rel).is_empty(), "{rel}");
    assert_eq!(api.get("/api/v1/blocks", Some(&a)).await.json(), json!([]));

    // Mutes: with or without notifications, for ever or for a while.
    let rel = api
        .post(
            &format!("/api/v1/accounts/{dave}/mute"),
            Some(&a),
            form(&[("notifications", "false")]),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(flags(&rel), ["muting"]);
    let rel = post(&a, format!("/api/v1/accounts/{dave}/mute"))
        .await
        .expect(200)
        .json();
    assert_eq!(flags(&rel), ["muting", "muting_notifications"]);
    assert_eq!(
        api.get("/api/v1/mutes", Some(&a)).await.expect(200).json()[0]["id"],
        dave
    );
    let rel = post(&a, format!("/api/v1/accounts/{dave}/unmute"))
        .await
        .expect(200)
        .json();
    assert!(flags(&rel).is_empty(), "{rel}");
    api.post(
        &format!("/api/v1/accounts/{dave}/mute"),
        Some(&a),
        form(&[("duration", "1")]),
    )
    .await
    .expect(200);
    assert_eq!(
        flags(&relationship(&api, &a, &dave).await),
        ["muting", "muting_notifications"]
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        flags(&relationship(&api, &a, &dave).await).is_empty(),
        "the mute expired"
    );
    assert_eq!(api.get("/api/v1/mutes", Some(&a)).await.json(), json!([]));

    // Several at once, unknown and malformed ids skipped, in the order asked.
    let many = api
        .get(
            &format!(
                "/api/v1/accounts/relationships?id[]={carol}&id[]=999&id[]=x&id[]={bob}&id[]={carol}"
            ),
            Some(&a),
        )
        .await
        .expect(200)
        .json();
    let ids: Vec<&str> = many
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [carol.as_str(), bob.as_str()]);
    let single = api
        .get(
            &format!("/api/v1/accounts/relationships?id={bob}"),
            Some(&a),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(single[0]["id"], bob);

    // Each action needs its scope; the old `follow` scope grants them all.
    let (_, reader) = api.user("reader", "read").await;
    for action in ["follow", "unfollow", "block", "unblock", "mute", "unmute"] {
        post(&reader, format!("/api/v1/accounts/{bob}/{action}"))
            .await
            .expect(403);
    }
    let (_, blocker) = api.user("blocker", "write:blocks").await;
    post(&blocker, format!("/api/v1/accounts/{bob}/block"))
        .await
        .expect(200);
    post(&blocker, format!("/api/v1/accounts/{bob}/follow"))
        .await
        .expect(403);
    let (_, follow_only) = api.user("oldclient", "follow").await;
    post(&follow_only, format!("/api/v1/accounts/{bob}/mute"))
        .await
        .expect(200);
    api.get("/api/v1/follow_requests", Some(&blocker))
        .await
        .expect(403);
    api.get("/api/v1/blocks", Some(&reader)).await.expect(200);
    let (_, no_blocks) = api.user("narrow", "read:accounts").await;
    api.get("/api/v1/blocks", Some(&no_blocks))
        .await
        .expect(403);
    api.get("/api/v1/mutes", Some(&no_blocks)).await.expect(403);
    api.get(
        &format!("/api/v1/accounts/relationships?id[]={bob}"),
        Some(&no_blocks),
    )
    .await
    .expect(403);
    let app = issue_token(&api.db, None, "read write follow").await;
    post(&app, format!("/api/v1/accounts/{bob}/follow"))
        .await
        .expect(422);
}

#[tokio::test]
async fn followers_page_newest_first_with_link_headers() {
    let api = Api::start(&[]).await;
    let (star, _) = api.account("star").await;
    let mut conn = api.conn().await;
    // 45 followers, following in the order of their names.
    let mut followers = Vec::new();
    for i in 0..45 {
        let (id,): (i64,) =
            sqlx::query_as("INSERT INTO accounts (username) VALUES ($1) RETURNING id")
                .bind(format!("fan{i:02}"))
                .fetch_one(&mut conn)
                .await
                .unwrap();
        sqlx::query("INSERT INTO follows (account_id, target_account_id) VALUES ($1, $2)")
            .bind(id)
            .bind(star)
            .execute(&mut conn)
            .await
            .unwrap();
        followers.push(format!("fan{i:02}"));
    }
    let names = |reply: &Reply| -> Vec<String> {
        reply
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["username"].as_str().unwrap().to_string())
            .collect()
    };
    let newest_first: Vec<String> = followers.iter().rev().cloned().collect();

    let first = api
        .get(&format!("/api/v1/accounts/{star}/followers?limit=20"), None)
        .await
        .expect(200);
    assert_eq!(names(&first), newest_first[..20]);
    let next = first.link("next").expect("a next link");
    assert!(
        next.starts_with(&format!(
            "https://test.example/api/v1/accounts/{star}/followers?limit=20&max_id="
        )),
        "{next}"
    );
    let second = api.get(&next, None).await.expect(200);
    assert_eq!(names(&second), newest_first[20..40]);
    let third = api
        .get(&second.link("next").unwrap(), None)
        .await
        .expect(200);
    assert_eq!(names(&third), newest_first[40..]);
    // A token in the query works but is not repeated in the links.
    let (_, token) = api.user("viewer", "read").await;
    let with_token = api
        .get(
            &format!("/api/v1/accounts/{star}/followers?limit=20&access_token={token}"),
            None,
        )
        .await
        .expect(200);
    assert_eq!(names(&with_token), names(&first));
    assert!(!with_token.header("link").unwrap().contains(&token));
    let beyond = api
        .get(&third.link("next").unwrap(), None)
        .await
        .expect(200);
    assert_eq!(names(&beyond), Vec::<String>::new());
    assert!(beyond.header("link").is_none());
    // Paging back up with the prev link (min_id) gives the page just newer.
    let back = api
        .get(&third.link("prev").unwrap(), None)
        .await
        .expect(200);
    assert_eq!(names(&back), newest_first[20..40]);
    let top = api
        .get(&first.link("prev").unwrap(), None)
        .await
        .expect(200);
    assert_eq!(names(&top), Vec::<String>::new());

    // Default 40, at most 80.
    let default = api
        .get(&format!("/api/v1/accounts/{star}/followers"), None)
        .await
        .expect(200);
    assert_eq!(names(&default).len(), 40);
    let clamped = api
        .get(
            &format!("/api/v1/accounts/{star}/followers?limit=500"),
            None,
        )
        .await
        .expect(200);
    assert_eq!(names(&clamped).len(), 45);
    api.get(
        &format!("/api/v1/accounts/{star}/followers?max_id=abc"),
        None,
    )
    .await
    .expect(422);

    let star_account = api
        .get(&format!("/api/v1/accounts/{star}"), None)
        .await
        .json();
    assert_eq!(star_account["followers_count"], 45);
    let fan = api
        .get("/api/v1/accounts/lookup?acct=fan07", None)
        .await
        .json();
    let following = api
        .get(
            &format!("/api/v1/accounts/{}/following", fan["id"].as_str().unwrap()),
            None,
        )
        .await
        .expect(200);
    assert_eq!(names(&following), ["star"]);
    api.get("/api/v1/accounts/999/followers", None)
        .await
        .expect(404);
}
