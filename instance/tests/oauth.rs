//! OAuth2 over HTTP against the real server: registration, the authorization-code flow with
//! PKCE through the HTML pages (driven like a browser: cookies kept, hidden fields carried),
//! the out-of-band code page, every grant of the token endpoint, revocation, and the
//! metadata document.

mod common;

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use reqwest::header::{self, HeaderMap};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const OOB: &str = "urn:ietf:wg:oauth:2.0:oob";
const CALLBACK: &str = "https://client.example/callback";
const KEY_BASE: &str = "3f9a0c1d5e7b2a4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e2f4a6b8c0d2e4f6a8b0c";

async fn server() -> (Server, String) {
    api_on_fresh_database(&[("FEDI_SECRET_KEY_BASE", KEY_BASE)]).await
}

/// A response read whole.
struct Page {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Page {
    fn location(&self) -> Option<String> {
        self.headers
            .get(header::LOCATION)
            .map(|v| v.to_str().unwrap().to_string())
    }

    /// The name/value of every `<input>` with a name: what submitting the form sends.
    fn inputs(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for tag in self.body.split("<input ").skip(1) {
            let tag = &tag[..tag.find('>').unwrap()];
            if let Some(name) = attr(tag, "name").or_else(|| attr(tag, "id")) {
                out.push((name, attr(tag, "value").unwrap_or_default()));
            }
        }
        out
    }

    fn input(&self, name: &str) -> Option<String> {
        self.inputs()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .unwrap()
    }
}

/// The inputs of `page` less `drop`, with `set` set.
fn fields(page: &Page, drop: &[&str], set: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = page
        .inputs()
        .into_iter()
        .filter(|(n, _)| !drop.contains(&n.as_str()) && !set.iter().any(|(k, _)| k == n))
        .collect();
    fields.extend(set.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    fields
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let tag = format!(" {tag}");
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let end = start + tag[start..].find('"')?;
    Some(
        tag[start..end]
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

/// A browser: follows no redirects by itself, keeps cookies, and records every Set-Cookie.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: BTreeMap<String, String>,
    set_cookies: Vec<String>,
}

impl Browser {
    fn new(base: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: base.to_string(),
            cookies: BTreeMap::new(),
            set_cookies: Vec::new(),
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let req = self.http.get(format!("{}{path}", self.base));
        self.send(req).await
    }

    async fn post(&mut self, path: &str, fields: &[(String, String)]) -> Page {
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(fields).unwrap());
        self.send(req).await
    }

    /// Submits the page's form (its inputs, with `extra` set) to `action`.
    async fn submit(&mut self, page: &Page, action: &str, extra: &[(&str, &str)]) -> Page {
        self.post(action, &fields(page, &[], extra)).await
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let req = if cookie.is_empty() {
            req
        } else {
            req.header(header::COOKIE, cookie)
        };
        let resp = req.send().await.unwrap();
        for c in resp.headers().get_all(header::SET_COOKIE) {
            let c = c.to_str().unwrap().to_string();
            let (pair, _) = c.split_once(';').unwrap_or((&c, ""));
            let (name, value) = pair.split_once('=').unwrap();
            self.cookies.insert(name.to_string(), value.to_string());
            self.set_cookies.push(c);
        }
        Page {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            body: resp.text().await.unwrap(),
        }
    }
}

/// Registers an application; returns (client_id, client_secret).
async fn register(base: &str, redirect_uris: Value, scopes: &str) -> (String, String) {
    let resp = reqwest::Client::new()
        .post(format!("{base}/api/v1/apps"))
        .json(
            &json!({"client_name": "Test client", "redirect_uris": redirect_uris,
                      "scopes": scopes, "website": "https://client.example"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let app: Value = resp.json().await.unwrap();
    (
        app["client_id"].as_str().unwrap().to_string(),
        app["client_secret"].as_str().unwrap().to_string(),
    )
}

fn authorize_path(client_id: &str, redirect_uri: &str, extra: &[(&str, &str)]) -> String {
    let mut pairs = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect_uri),
    ];
    pairs.extend_from_slice(extra);
    format!(
        "/oauth/authorize?{}",
        serde_urlencoded::to_string(&pairs).unwrap()
    )
}

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .unwrap()
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

async fn token(base: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{base}/oauth/token"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(form).unwrap())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

async fn token_json(base: &str, body: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{base}/oauth/token"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

async fn verify_app(base: &str, token: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .get(format!("{base}/api/v1/apps/verify_credentials"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

async fn sql(db: &str, statement: &'static str, bind: i64) {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(db)
        .await
        .unwrap();
    sqlx::query(statement)
        .bind(bind)
        .execute(&mut conn)
        .await
        .unwrap();
}

async fn count(db: &str, query: &'static str) -> i64 {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(db)
        .await
        .unwrap();
    sqlx::query_scalar(query)
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

/// Signs in through the sign-in form shown for `path`; returns the consent page.
async fn sign_in_to_consent(
    browser: &mut Browser,
    path: &str,
    email: &str,
    password: &str,
) -> Page {
    let form = browser.get(path).await;
    assert_eq!(form.status, 200, "{}", form.body);
    assert!(form.body.contains("name=\"password\""), "{}", form.body);
    let signed_in = browser
        .submit(
            &form,
            "/oauth/sign_in",
            &[("email", email), ("password", password)],
        )
        .await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    let next = signed_in.location().unwrap();
    assert!(next.starts_with("/oauth/authorize?"), "{next}");
    let consent = browser.get(&next).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    assert!(
        consent.body.contains("value=\"approve\""),
        "{}",
        consent.body
    );
    consent
}

#[tokio::test]
async fn the_authorization_code_flow_with_pkce_goes_through_the_pages() {
    let (server, db) = server().await;
    let base = &server.base_url;
    create_user(&db, "alice", "correct horse battery").await;
    let (client_id, client_secret) = register(base, json!([CALLBACK]), "read write push").await;
    let verifier = "a-verifier-of-at-least-forty-three-characters-0123456789";
    let path = authorize_path(
        &client_id,
        CALLBACK,
        &[
            ("scope", "read write:statuses"),
            ("state", "xyz <&>"),
            ("code_challenge", &challenge(verifier)),
            ("code_challenge_method", "S256"),
        ],
    );

    let mut browser = Browser::new(base);
    let form = browser.get(&path).await;
    assert_eq!(form.status, 200);
    assert!(
        form.body.contains("Sign in to test.example"),
        "{}",
        form.body
    );
    assert!(form.body.contains("Test client"));
    // The security headers of every page.
    assert!(form.header("content-type").starts_with("text/html"));
    let csp = form.header("content-security-policy");
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
    assert!(
        !csp.contains("script-src") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(form.header("x-frame-options"), "DENY");
    assert_eq!(form.header("referrer-policy"), "same-origin");
    assert_eq!(form.header("cache-control"), "no-store");
    assert!(!form.body.contains("<script"));
    assert_eq!(form.input("state").as_deref(), Some("xyz <&>"));

    // A wrong password: the form again, with the generic message and no session.
    let wrong = browser
        .submit(
            &form,
            "/oauth/sign_in",
            &[("email", "alice@test.example"), ("password", "nope")],
        )
        .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("Invalid email address or password."));
    assert!(!browser.cookies.contains_key("__Host-fedi_session"));

    let consent = sign_in_to_consent(
        &mut browser,
        &path,
        "Alice@Test.Example",
        "correct horse battery",
    )
    .await;
    let session_cookie = browser
        .set_cookies
        .iter()
        .find(|c| c.starts_with("__Host-fedi_session="))
        .unwrap();
    for attr in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/", "Max-Age="] {
        assert!(session_cookie.contains(attr), "{session_cookie}");
    }
    assert!(
        consent.body.contains("@alice@test.example"),
        "{}",
        consent.body
    );
    assert!(consent.body.contains("read"), "{}", consent.body);
    assert!(consent.body.contains("write:statuses"), "{}", consent.body);
    assert_eq!(consent.header("x-frame-options"), "DENY");

    // Approve: back to the client with a code and the state.
    let approved = browser
        .submit(&consent, "/oauth/authorize", &[("decision", "approve")])
        .await;
    assert_eq!(approved.status, 303, "{}", approved.body);
    let location = approved.location().unwrap();
    assert!(location.starts_with(&format!("{CALLBACK}?")), "{location}");
    assert_eq!(query_param(&location, "state").as_deref(), Some("xyz <&>"));
    let code = query_param(&location, "code").unwrap();
    assert_eq!(approved.header("cache-control"), "no-store");

    // A wrong verifier is refused, and spends the code.
    let exchange = |code: String, verifier: &'static str| {
        let (client_id, client_secret) = (client_id.clone(), client_secret.clone());
        async move {
            token(
                base,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", CALLBACK),
                    ("client_id", &client_id),
                    ("client_secret", &client_secret),
                    ("code_verifier", verifier),
                ],
            )
            .await
        }
    };
    let (status, body) = exchange(
        code.clone(),
        "another-verifier-of-at-least-forty-three-characters-x",
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, body) = exchange(code, verifier).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    // A second round (the session is still there: straight to the consent page).
    let consent = browser.get(&path).await;
    assert!(
        consent.body.contains("value=\"approve\""),
        "{}",
        consent.body
    );
    let approved = browser
        .submit(&consent, "/oauth/authorize/", &[("decision", "approve")])
        .await;
    let code = query_param(&approved.location().unwrap(), "code").unwrap();
    let (status, body) = token(
        base,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CALLBACK),
            ("client_id", &client_id),
            ("client_secret", &client_secret),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "the verifier is required when a challenge was given"
    );

    let consent = browser.get(&path).await;
    let approved = browser
        .submit(&consent, "/oauth/authorize", &[("decision", "approve")])
        .await;
    let code = query_param(&approved.location().unwrap(), "code").unwrap();
    let (status, body) = exchange(code.clone(), verifier).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "read write:statuses");
    assert!(body["created_at"].as_i64().unwrap() > 1_700_000_000);
    assert!(body["refresh_token"].is_string());
    let access = body["access_token"].as_str().unwrap().to_string();
    let (status, app) = verify_app(base, &access).await;
    assert_eq!(status, 200, "{app}");
    assert_eq!(app["name"], "Test client");
    assert!(app.get("client_secret").is_none());

    // Codes are single use.
    let (status, body) = exchange(code, verifier).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    // Codes and tokens are stored as digests only.
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM oauth_authorization_codes WHERE length(code_hash) = 64"
        )
        .await,
        3
    );
    drop(server);
}

#[tokio::test]
async fn the_out_of_band_flow_shows_the_code_and_the_trailing_slash_works() {
    let (server, db) = server().await;
    let base = &server.base_url;
    create_user(&db, "bob", "bob's password").await;
    let (client_id, client_secret) = register(base, json!(OOB), "read write").await;
    let path = authorize_path(&client_id, OOB, &[("scope", "read")]).replacen(
        "/oauth/authorize?",
        "/oauth/authorize/?",
        1,
    );
    let mut browser = Browser::new(base);
    let consent =
        sign_in_to_consent(&mut browser, &path, "bob@test.example", "bob's password").await;
    let shown = browser
        .submit(&consent, "/oauth/authorize/", &[("decision", "approve")])
        .await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    assert!(shown.location().is_none());
    assert_eq!(shown.header("cache-control"), "no-store");
    let code = shown.input("code").expect("the code is on the page");
    assert_eq!(code.len(), 43);

    // toot exchanges it with a JSON body.
    let (status, body) = token_json(
        base,
        json!({"grant_type": "authorization_code", "code": code, "redirect_uri": OOB,
               "client_id": client_id, "client_secret": client_secret}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "read");

    // Denied out of band: a page, nothing to redirect to.
    let consent = browser.get(&path).await;
    let denied = browser
        .submit(&consent, "/oauth/authorize", &[("decision", "deny")])
        .await;
    assert_eq!(denied.status, 400);
    assert!(denied.location().is_none());
    assert!(denied.body.contains("denied"), "{}", denied.body);
}

#[tokio::test]
async fn bad_authorization_requests_never_redirect_to_an_unregistered_uri() {
    let (server, _db) = server().await;
    let base = &server.base_url;
    let (client_id, _) = register(base, json!(format!("{CALLBACK}\n{OOB}")), "read").await;
    let mut browser = Browser::new(base);

    for (path, what) in [
        (
            authorize_path(&client_id, "https://evil.example/callback", &[]),
            "another URI",
        ),
        (
            authorize_path(&client_id, &format!("{CALLBACK}/x"), &[]),
            "a longer URI",
        ),
        (
            "/oauth/authorize?response_type=code&client_id=nobody&redirect_uri=https%3A%2F%2Fevil.example"
                .to_string(),
            "an unknown client",
        ),
        (
            format!("/oauth/authorize?response_type=code&client_id={client_id}"),
            "no redirect_uri",
        ),
    ] {
        let page = browser.get(&path).await;
        assert_eq!(page.status, 400, "{what}: {}", page.body);
        assert!(page.location().is_none(), "{what}");
        assert!(!page.body.contains("evil.example"), "{what}");
        assert_eq!(page.header("x-frame-options"), "DENY");
    }

    // With a registered URI, errors go back to the client with the state.
    for (extra, error) in [
        (vec![("scope", "read write")], "invalid_scope"),
        (vec![("scope", "read sudo")], "invalid_scope"),
        (
            vec![
                (
                    "code_challenge",
                    "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                ),
                ("code_challenge_method", "plain"),
            ],
            "invalid_request",
        ),
        (
            vec![(
                "code_challenge",
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            )],
            "invalid_request",
        ),
    ] {
        let mut extra = extra;
        extra.push(("state", "s1"));
        let page = browser
            .get(&authorize_path(&client_id, CALLBACK, &extra))
            .await;
        assert_eq!(page.status, 302, "{extra:?}: {}", page.body);
        let location = page.location().unwrap();
        assert!(location.starts_with(&format!("{CALLBACK}?")), "{location}");
        assert_eq!(query_param(&location, "error").as_deref(), Some(error));
        assert_eq!(query_param(&location, "state").as_deref(), Some("s1"));
    }
    let query = serde_urlencoded::to_string([
        ("response_type", "token"),
        ("client_id", &client_id),
        ("redirect_uri", CALLBACK),
    ])
    .unwrap();
    let page = browser.get(&format!("/oauth/authorize?{query}")).await;
    assert_eq!(
        query_param(&page.location().unwrap(), "error").as_deref(),
        Some("unsupported_response_type")
    );
}

#[tokio::test]
async fn denying_redirects_with_access_denied() {
    let (server, db) = server().await;
    let base = &server.base_url;
    create_user(&db, "carol", "carol's password").await;
    let (client_id, _) = register(base, json!([CALLBACK]), "read").await;
    let path = authorize_path(&client_id, CALLBACK, &[("state", "st")]);
    let mut browser = Browser::new(base);
    let consent = sign_in_to_consent(
        &mut browser,
        &path,
        "carol@test.example",
        "carol's password",
    )
    .await;
    let denied = browser
        .submit(&consent, "/oauth/authorize", &[("decision", "deny")])
        .await;
    assert_eq!(denied.status, 303);
    let location = denied.location().unwrap();
    assert_eq!(
        query_param(&location, "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(query_param(&location, "state").as_deref(), Some("st"));
    assert!(query_param(&location, "code").is_none());
    assert_eq!(
        count(&db, "SELECT count(*) FROM oauth_authorization_codes").await,
        0
    );
}

#[tokio::test]
async fn forms_without_their_csrf_token_are_refused() {
    let (server, db) = server().await;
    let base = &server.base_url;
    create_user(&db, "dave", "dave's password").await;
    let (client_id, _) = register(base, json!([CALLBACK]), "read").await;
    let path = authorize_path(&client_id, CALLBACK, &[]);

    // Sign-in: no token, a made-up token, or no CSRF cookie.
    let mut browser = Browser::new(base);
    let form = browser.get(&path).await;
    let creds = [
        ("email", "dave@test.example"),
        ("password", "dave's password"),
    ];
    for (what, csrf) in [
        ("missing", ""),
        ("forged", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
    ] {
        let mut fields = fields(&form, &["csrf_token"], &creds);
        if !csrf.is_empty() {
            fields.push(("csrf_token".into(), csrf.into()));
        }
        let refused = browser.post("/oauth/sign_in", &fields).await;
        assert_eq!(refused.status, 403, "{what}: {}", refused.body);
        assert!(
            !browser.cookies.contains_key("__Host-fedi_session"),
            "{what}"
        );
    }
    let mut cookieless = Browser::new(base);
    let refused = cookieless.submit(&form, "/oauth/sign_in", &creds).await;
    assert_eq!(refused.status, 403, "the token is bound to the CSRF cookie");

    // Consent: the sign-in form's token is not valid once signed in.
    let consent = sign_in_to_consent(&mut browser, &path, creds[0].1, creds[1].1).await;
    let stale = form.input("csrf_token").unwrap();
    let refused = browser
        .submit(
            &consent,
            "/oauth/authorize",
            &[("decision", "approve"), ("csrf_token", &stale)],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.location().is_none());
    let refused = browser
        .submit(
            &consent,
            "/oauth/authorize",
            &[("decision", "approve"), ("csrf_token", "")],
        )
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(
        count(&db, "SELECT count(*) FROM oauth_authorization_codes").await,
        0
    );
    // With its own token it goes through.
    let ok = browser
        .submit(&consent, "/oauth/authorize", &[("decision", "approve")])
        .await;
    assert_eq!(ok.status, 303);
}

#[tokio::test]
async fn sign_in_refuses_accounts_that_may_not_be_used_without_telling_addresses_apart() {
    let (server, db) = server().await;
    let base = &server.base_url;
    let (_, unconfirmed) = create_user(&db, "unconfirmed", "password one").await;
    sql(
        &db,
        "UPDATE users SET confirmed_at = NULL WHERE id = $1",
        unconfirmed,
    )
    .await;
    let (_, pending) = create_user(&db, "pending", "password two").await;
    sql(
        &db,
        "UPDATE users SET approved = false WHERE id = $1",
        pending,
    )
    .await;
    let (suspended, _) = create_user(&db, "suspended", "password three").await;
    sql(
        &db,
        "UPDATE accounts SET suspended_at = now() WHERE id = $1",
        suspended,
    )
    .await;
    let (client_id, _) = register(base, json!([CALLBACK]), "read").await;
    let path = authorize_path(&client_id, CALLBACK, &[]);
    let mut browser = Browser::new(base);
    let form = browser.get(&path).await;

    let attempt = |email: &'static str, password: &'static str| {
        let fields = fields(&form, &[], &[("email", email), ("password", password)]);
        let base = base.clone();
        let cookies = browser.cookies.clone();
        async move {
            let mut b = Browser::new(&base);
            b.cookies = cookies;
            let page = b.post("/oauth/sign_in", &fields).await;
            (page, b.cookies.contains_key("__Host-fedi_session"))
        }
    };

    // Unknown address and wrong password: the same status and message.
    let (unknown, s1) = attempt("nobody@test.example", "password one").await;
    let (wrong, s2) = attempt("unconfirmed@test.example", "not it").await;
    assert_eq!((unknown.status, wrong.status), (401, 401));
    assert_eq!(
        unknown.body.replace("nobody@", "X@"),
        wrong.body.replace("unconfirmed@", "X@"),
        "no difference beyond the echoed address"
    );
    assert!(!s1 && !s2);

    for (email, password, reason) in [
        (
            "unconfirmed@test.example",
            "password one",
            "confirm your email",
        ),
        ("pending@test.example", "password two", "pending review"),
        ("suspended@test.example", "password three", "suspended"),
    ] {
        let (page, session) = attempt(email, password).await;
        assert_eq!(page.status, 403, "{email}");
        assert!(page.body.contains(reason), "{email}: {}", page.body);
        assert!(!session, "{email}");
    }
}

#[tokio::test]
async fn a_session_ends_with_a_password_change_and_force_login_asks_again() {
    let (server, db) = server().await;
    let base = &server.base_url;
    let (_, user_id) = create_user(&db, "erin", "erin's password").await;
    let (client_id, _) = register(base, json!([CALLBACK]), "read").await;
    let path = authorize_path(&client_id, CALLBACK, &[]);
    let mut browser = Browser::new(base);
    sign_in_to_consent(&mut browser, &path, "erin@test.example", "erin's password").await;

    let forced = browser.get(&format!("{path}&force_login=true")).await;
    assert!(forced.body.contains("name=\"password\""), "{}", forced.body);
    assert!(
        forced.input("force_login").is_none(),
        "not carried past sign-in"
    );
    assert!(browser.get(&path).await.body.contains("value=\"approve\""));

    let new_hash = fedi_server::auth::credentials::hash_password("a new one").unwrap();
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db)
        .await
        .unwrap();
    sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
        .bind(new_hash)
        .bind(user_id)
        .execute(&mut conn)
        .await
        .unwrap();
    let after = browser.get(&path).await;
    assert!(after.body.contains("name=\"password\""), "{}", after.body);
}

#[tokio::test]
async fn the_password_grant_signs_in_by_email() {
    let (server, db) = server().await;
    let base = &server.base_url;
    create_user(&db, "frank", "frank's password").await;
    let (_, unconfirmed) = create_user(&db, "grace", "grace's password").await;
    sql(
        &db,
        "UPDATE users SET confirmed_at = NULL WHERE id = $1",
        unconfirmed,
    )
    .await;
    let (client_id, client_secret) = register(base, json!(OOB), "read write follow").await;
    let grant = |username: &'static str, password: &'static str, scope: &'static str| {
        let (id, secret) = (client_id.clone(), client_secret.clone());
        async move {
            token(
                base,
                &[
                    ("grant_type", "password"),
                    ("client_id", &id),
                    ("client_secret", &secret),
                    ("username", username),
                    ("password", password),
                    ("scope", scope),
                ],
            )
            .await
        }
    };

    let (status, body) = grant("frank@test.example", "frank's password", "read write").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "read write");
    assert!(body["refresh_token"].is_string());
    let (status, _) = verify_app(base, body["access_token"].as_str().unwrap()).await;
    assert_eq!(status, 200);

    let (s1, wrong) = grant("frank@test.example", "wrong", "read").await;
    let (s2, unknown) = grant("nobody@test.example", "wrong", "read").await;
    assert_eq!((s1, s2), (400, 400));
    assert_eq!(wrong["error"], "invalid_grant");
    assert_eq!(wrong, unknown, "no account enumeration");

    let (status, body) = grant("grace@test.example", "grace's password", "read").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, body) = grant("frank@test.example", "frank's password", "read push").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope"))
    );

    // Mastodon.py sends JSON; HTTP Basic carries the client.
    let resp = reqwest::Client::new()
        .post(format!("{base}/oauth/token"))
        .basic_auth(&client_id, Some(&client_secret))
        .json(
            &json!({"grant_type": "password", "username": "frank@test.example",
                      "password": "frank's password", "scope": "read"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn client_credentials_and_token_endpoint_errors() {
    let (server, _db) = server().await;
    let base = &server.base_url;
    let (client_id, client_secret) = register(base, json!(OOB), "read write").await;

    // toot: JSON, no scope (read).
    let (status, body) = token_json(
        base,
        json!({"grant_type": "client_credentials", "client_id": client_id,
               "client_secret": client_secret, "redirect_uri": OOB}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "read");
    assert!(body.get("refresh_token").is_none());
    let (status, app) = verify_app(base, body["access_token"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(app["scopes"], json!(["read", "write"]));

    let (status, body) = token(
        base,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &client_id),
            ("client_secret", &client_secret),
            ("scope", "write"),
        ],
    )
    .await;
    assert_eq!((status, body["scope"].as_str()), (200, Some("write")));

    let cases = [
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", &client_id),
                ("client_secret", &client_secret),
                ("scope", "read follow"),
            ],
            400,
            "invalid_scope",
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", &client_id),
                ("client_secret", "wrong"),
            ],
            401,
            "invalid_client",
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", &client_id),
            ],
            401,
            "invalid_client",
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", "unknown"),
                ("client_secret", &client_secret),
            ],
            401,
            "invalid_client",
        ),
        (
            vec![
                ("grant_type", "implicit"),
                ("client_id", &client_id),
                ("client_secret", &client_secret),
            ],
            400,
            "unsupported_grant_type",
        ),
        (
            vec![("client_id", &client_id), ("client_secret", &client_secret)],
            400,
            "invalid_request",
        ),
        (
            vec![
                ("grant_type", "authorization_code"),
                ("client_id", &client_id),
                ("client_secret", &client_secret),
                ("redirect_uri", OOB),
            ],
            400,
            "invalid_request",
        ),
        (
            vec![
                ("grant_type", "authorization_code"),
                ("client_id", &client_id),
                ("client_secret", &client_secret),
                ("redirect_uri", OOB),
                ("code", "made-up"),
            ],
            400,
            "invalid_grant",
        ),
    ];
    for (form, want_status, want_error) in cases {
        let (status, body) = token(base, &form).await;
        assert_eq!(status, want_status, "{form:?}: {body}");
        assert_eq!(body["error"], want_error, "{form:?}");
        assert!(body["error_description"].is_string(), "{body}");
    }
}

#[tokio::test]
async fn refresh_tokens_replace_their_pair() {
    let (server, db) = server().await;
    let base = &server.base_url;
    create_user(&db, "heidi", "heidi's password").await;
    let (client_id, client_secret) = register(base, json!(OOB), "read write").await;
    let (other_id, other_secret) = register(base, json!(OOB), "read write").await;
    let (_, first) = token(
        base,
        &[
            ("grant_type", "password"),
            ("client_id", &client_id),
            ("client_secret", &client_secret),
            ("username", "heidi@test.example"),
            ("password", "heidi's password"),
            ("scope", "read write"),
        ],
    )
    .await;
    let refresh = first["refresh_token"].as_str().unwrap();

    // Another client cannot use it.
    let (status, body) = token(
        base,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &other_id),
            ("client_secret", &other_secret),
            ("refresh_token", refresh),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    // Nor ask for more than was granted.
    let (status, body) = token(
        base,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &client_id),
            ("client_secret", &client_secret),
            ("refresh_token", refresh),
            ("scope", "read write follow"),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope"))
    );

    let (status, second) = token(
        base,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &client_id),
            ("client_secret", &client_secret),
            ("refresh_token", refresh),
            ("scope", "read"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["scope"], "read");
    assert_ne!(second["access_token"], first["access_token"]);
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    let old = first["access_token"].as_str().unwrap();
    assert_eq!(
        verify_app(base, old).await.0,
        401,
        "the old token is revoked"
    );
    let new = second["access_token"].as_str().unwrap();
    assert_eq!(verify_app(base, new).await.0, 200);

    let (status, body) = token(
        base,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &client_id),
            ("client_secret", &client_secret),
            ("refresh_token", refresh),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "a refresh token is good once"
    );
}

#[tokio::test]
async fn revoked_tokens_stop_working() {
    let (server, _db) = server().await;
    let base = &server.base_url;
    let (client_id, client_secret) = register(base, json!(OOB), "read").await;
    let (other_id, other_secret) = register(base, json!(OOB), "read").await;
    let app_token = |id: String, secret: String| async move {
        let (_, body) = token(
            base,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", &secret),
            ],
        )
        .await;
        body["access_token"].as_str().unwrap().to_string()
    };
    let mine = app_token(client_id.clone(), client_secret.clone()).await;
    let theirs = app_token(other_id, other_secret).await;
    let revoke = |fields: Vec<(&'static str, String)>| async move {
        let resp = reqwest::Client::new()
            .post(format!("{base}/oauth/revoke"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(&fields).unwrap())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json::<Value>().await.unwrap())
    };
    let with_client = |token: &str| {
        vec![
            ("client_id", client_id.clone()),
            ("client_secret", client_secret.clone()),
            ("token", token.to_string()),
        ]
    };

    // Another client's token: refused, and it keeps working.
    let (status, body) = revoke(with_client(&theirs)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("unauthorized_client"))
    );
    assert_eq!(verify_app(base, &theirs).await.0, 200);
    // Unknown tokens: success, nothing learned (RFC 7009).
    assert_eq!(revoke(with_client("no-such-token")).await, (200, json!({})));
    // A wrong client secret.
    let mut bad = with_client(&mine);
    bad[1].1 = "wrong".into();
    assert_eq!(revoke(bad).await.1["error"], "invalid_client");

    assert_eq!(verify_app(base, &mine).await.0, 200);
    assert_eq!(revoke(with_client(&mine)).await, (200, json!({})));
    let (status, body) = verify_app(base, &mine).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(
        revoke(with_client(&mine)).await,
        (200, json!({})),
        "idempotent"
    );
}

#[tokio::test]
async fn applications_are_registered_like_mastodon_does() {
    let (server, _db) = server().await;
    let base = &server.base_url;
    let http = reqwest::Client::new();

    // A form with newline-separated URIs (the classic form).
    let resp = http
        .post(format!("{base}/api/v1/apps"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(
            serde_urlencoded::to_string([
                ("client_name", "Form app"),
                ("redirect_uris", &format!("{CALLBACK}\n{OOB}")),
                ("scopes", "read write follow push"),
            ])
            .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let app: Value = resp.json().await.unwrap();
    assert!(app["id"].is_string());
    assert_eq!(app["name"], "Form app");
    assert_eq!(app["website"], Value::Null);
    assert_eq!(app["scopes"], json!(["follow", "push", "read", "write"]));
    assert_eq!(app["redirect_uri"], format!("{CALLBACK}\n{OOB}"));
    assert_eq!(app["redirect_uris"], json!([CALLBACK, OOB]));
    assert_eq!(app["client_secret_expires_at"], 0);
    assert_eq!(app["client_id"].as_str().unwrap().len(), 43);
    assert_eq!(app["client_secret"].as_str().unwrap().len(), 43);

    // JSON with a list (Mastodon 4.3), default scope.
    let resp = http
        .post(format!("{base}/api/v1/apps"))
        .json(
            &json!({"client_name": "Json app", "redirect_uris": ["elk://oauth", CALLBACK],
                      "website": "https://elk.example"}),
        )
        .send()
        .await
        .unwrap();
    let app: Value = resp.json().await.unwrap();
    assert_eq!(app["scopes"], json!(["read"]));
    assert_eq!(app["redirect_uris"], json!(["elk://oauth", CALLBACK]));
    assert_eq!(app["website"], "https://elk.example");

    let long_name = "n".repeat(61);
    for (body, mentions) in [
        (
            json!({"client_name": "x", "redirect_uris": OOB, "scopes": "read sudo"}),
            "sudo",
        ),
        (
            json!({"client_name": "x", "redirect_uris": "https://a.example/cb#f"}),
            "fragment",
        ),
        (
            json!({"client_name": "x", "redirect_uris": "/callback"}),
            "absolute",
        ),
        (
            json!({"client_name": "x", "redirect_uris": "javascript:alert(1)"}),
            "scheme",
        ),
        (json!({"client_name": "x"}), "redirect_uris"),
        (json!({"redirect_uris": OOB}), "client_name"),
        (
            json!({"client_name": long_name, "redirect_uris": OOB}),
            "too long",
        ),
        (
            json!({"client_name": "x", "redirect_uris": OOB, "website": "not a url"}),
            "website",
        ),
    ] {
        let resp = http
            .post(format!("{base}/api/v1/apps"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 422, "{body}");
        let err: Value = resp.json().await.unwrap();
        let message = err["error"].as_str().unwrap();
        assert!(message.starts_with("Validation failed"), "{message}");
        assert!(message.contains(mentions), "{body}: {message}");
    }

    let resp = http
        .get(format!("{base}/api/v1/apps/verify_credentials"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn the_metadata_document_describes_the_endpoints() {
    let (server, _db) = server().await;
    let resp = reqwest::get(format!(
        "{}/.well-known/oauth-authorization-server",
        server.base_url
    ))
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(doc["issuer"], "https://test.example/");
    assert_eq!(
        doc["authorization_endpoint"],
        "https://test.example/oauth/authorize"
    );
    assert_eq!(doc["token_endpoint"], "https://test.example/oauth/token");
    assert_eq!(
        doc["revocation_endpoint"],
        "https://test.example/oauth/revoke"
    );
    assert_eq!(
        doc["app_registration_endpoint"],
        "https://test.example/api/v1/apps"
    );
    assert_eq!(doc["response_types_supported"], json!(["code"]));
    assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post"])
    );
    let grants: Vec<&str> = doc["grant_types_supported"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_str().unwrap())
        .collect();
    for g in [
        "authorization_code",
        "client_credentials",
        "password",
        "refresh_token",
    ] {
        assert!(grants.contains(&g), "{g}");
    }
    let scopes: Vec<&str> = doc["scopes_supported"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    for s in [
        "read",
        "write",
        "follow",
        "push",
        "profile",
        "read:statuses",
        "admin:write:reports",
    ] {
        assert!(scopes.contains(&s), "{s}");
    }
}
