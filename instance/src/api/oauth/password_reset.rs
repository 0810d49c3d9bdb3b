//! Password reset by e-mail, as Mastodon's (Devise's recoverable, in paranoid mode):
//! `GET /auth/password/new` asks for the address; `POST /auth/password` answers the same
//! page whatever the address, and mails a link when a confirmed account has it;
//! `GET /auth/password/edit?reset_password_token=...` asks for the new password, and
//! `PUT /auth/password` (or a POST carrying the token, what an HTML form can send) sets it,
//! uses up the token, signs the user out of every application and mails a notice.
//!
//! The token is a random 256-bit secret kept as its SHA-256 digest, one per user (a new
//! request replaces it), valid for six hours as Devise's `reset_password_within`.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use tracing::{info, warn};

use super::authorize::PageError;
use super::pages;
use super::session::{CSRF_COOKIE, Keys, SESSION_TTL_SECS, browser_id, cookie, set_cookie};
use super::users::{MAX_EMAIL_LEN, MAX_PASSWORD_LEN};
use crate::api::ApiError;
use crate::auth::credentials::{digest, hash_password, new_secret};
use crate::auth::token_cache::Change;
use crate::events;
use crate::state::AppState;

/// Devise's `reset_password_within` in Mastodon.
const TOKEN_TTL: &str = "6 hours";
/// Devise's bounds for passwords in Mastodon (bcrypt's limit), as at sign-up.
const PASSWORD_MIN: usize = 8;
const PASSWORD_MAX: usize = 72;
/// Tokens are 43 characters; anything much longer is not one of ours.
const TOKEN_MAX: usize = 128;

/// Devise's paranoid answer: the same whether or not the address is known.
const SENT: &str = "If your email address exists in our database, you will receive a password \
                    recovery link at your email address in a few minutes.";
const INVALID_LINK: &str = "This password reset link is invalid or has expired. Ask for a new one.";
const FORM_EXPIRED: &str =
    "This form has expired or was not sent from this site. Go back, reload the page and try again.";

type PageResult = Result<Response, PageError>;

#[derive(Debug, Default, Deserialize)]
pub(super) struct PasswordForm {
    // Mastodon's own form names its fields `user[...]`: both spellings are accepted.
    #[serde(default, alias = "user[email]")]
    email: Option<String>,
    #[serde(default, alias = "user[reset_password_token]")]
    reset_password_token: Option<String>,
    #[serde(default, alias = "user[password]")]
    password: String,
    #[serde(default, alias = "user[password_confirmation]")]
    password_confirmation: Option<String>,
    #[serde(default)]
    csrf_token: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct EditQuery {
    #[serde(default)]
    reset_password_token: Option<String>,
}

/// `GET /auth/password/new`.
pub(super) async fn new(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let browser = browser_id(&headers);
    let token = Keys::new(&state.config).csrf_token(&browser, None);
    respond(
        StatusCode::OK,
        request_page(&state.config.domain, "", None, &token),
        &browser,
    )
}

/// `POST /auth/password`: a reset request, or the new password when the form carries a
/// token (HTML forms cannot PUT).
pub(super) async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    let Some(form) = parse(&body) else {
        return Ok(malformed());
    };
    if form.reset_password_token.is_some() {
        return change(&state, &headers, form).await;
    }
    let Some(browser) = csrf_browser(&state, &headers, &form.csrf_token) else {
        return Ok(expired());
    };
    let email = form.email.unwrap_or_default().trim().to_lowercase();
    let token = Keys::new(&state.config).csrf_token(&browser, None);
    if email.is_empty() {
        let page = request_page(
            &state.config.domain,
            "",
            Some("Email can't be blank"),
            &token,
        );
        return Ok(respond(StatusCode::UNPROCESSABLE_ENTITY, page, &browser));
    }
    if email.len() <= MAX_EMAIL_LEN {
        send_instructions(&state, &email).await?;
    }
    Ok(respond(
        StatusCode::OK,
        message_page("Check your e-mail", SENT),
        &browser,
    ))
}

/// `PUT /auth/password`.
pub(super) async fn update(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    let Some(form) = parse(&body) else {
        return Ok(malformed());
    };
    change(&state, &headers, form).await
}

/// `GET /auth/password/edit?reset_password_token=...`: the new-password form, or why the
/// link no longer works.
pub(super) async fn edit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<EditQuery>,
) -> PageResult {
    let browser = browser_id(&headers);
    let reset_token = q.reset_password_token.unwrap_or_default();
    if holder(&state, &reset_token).await?.is_none() {
        return Ok(respond(StatusCode::NOT_FOUND, invalid_page(), &browser));
    }
    let csrf = Keys::new(&state.config).csrf_token(&browser, None);
    Ok(respond(
        StatusCode::OK,
        edit_page(&reset_token, None, &csrf),
        &browser,
    ))
}

/// A new token for the confirmed, unsuspended user with `email`, if any, and the mail with
/// its link, in one transaction.
async fn send_instructions(state: &AppState, email: &str) -> Result<(), ApiError> {
    let mut tx = state.db.begin().await?;
    let user: Option<(i64, String)> = sqlx::query_as(
        "SELECT u.id, a.username FROM users u JOIN accounts a ON a.id = u.account_id \
         WHERE lower(u.email) = lower($1) AND u.confirmed_at IS NOT NULL \
           AND a.suspended_at IS NULL \
         FOR UPDATE OF u",
    )
    .bind(email)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((user_id, username)) = user else {
        return Ok(());
    };
    let token = new_secret();
    sqlx::query(
        "UPDATE users SET reset_password_token_hash = $2, reset_password_sent_at = now() \
         WHERE id = $1",
    )
    .bind(user_id)
    .bind(digest(&token))
    .execute(&mut *tx)
    .await?;
    let (subject, body) = instructions_mail(state, &username, &token);
    let mail = crate::tasks::mail::queue(&mut tx, email, &subject, &body).await?;
    tx.commit().await?;
    crate::tasks::mail::enqueue(state, mail).await;
    info!(user_id, "password reset instructions queued");
    Ok(())
}

/// The user holding the unexpired reset token `token`.
async fn holder(state: &AppState, token: &str) -> Result<Option<i64>, ApiError> {
    if token.is_empty() || token.len() > TOKEN_MAX {
        return Ok(None);
    }
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT id FROM users WHERE reset_password_token_hash = $1 \
           AND reset_password_sent_at > now() - interval '{TOKEN_TTL}'"
    )))
    .bind(digest(token))
    .fetch_optional(state.db.primary())
    .await?)
}

/// Sets the new password of the token's holder.
async fn change(state: &AppState, headers: &HeaderMap, form: PasswordForm) -> PageResult {
    let reset_token = form.reset_password_token.unwrap_or_default();
    let Some(browser) = csrf_browser(state, headers, &form.csrf_token) else {
        return Ok(expired());
    };
    if holder(state, &reset_token).await?.is_none() {
        return Ok(respond(StatusCode::NOT_FOUND, invalid_page(), &browser));
    }
    let password = form.password;
    let problem = password_problem(&password).or_else(|| {
        form.password_confirmation
            .as_deref()
            .is_some_and(|c| c != password)
            .then_some("Password confirmation doesn't match Password".to_string())
    });
    if let Some(problem) = problem {
        let csrf = Keys::new(&state.config).csrf_token(&browser, None);
        let page = edit_page(&reset_token, Some(&problem), &csrf);
        return Ok(respond(StatusCode::UNPROCESSABLE_ENTITY, page, &browser));
    }
    // Argon2 takes tens of milliseconds of CPU: off the async workers, and only once the
    // token is known to be good.
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .map_err(ApiError::Internal)?;

    let mut tx = state.db.begin().await.map_err(ApiError::from)?;
    // The token is used up in the same statement that checks it: of two submissions at
    // once, one finds it gone.
    let changed: Option<(i64, String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE users u SET password_hash = $2, reset_password_token_hash = NULL, \
                reset_password_sent_at = NULL \
         FROM accounts a \
         WHERE a.id = u.account_id AND u.reset_password_token_hash = $1 \
           AND u.reset_password_sent_at > now() - interval '{TOKEN_TTL}' \
         RETURNING u.id, u.email, a.username"
    )))
    .bind(digest(&reset_token))
    .bind(&hash)
    .fetch_optional(&mut *tx)
    .await
    .map_err(ApiError::from)?;
    let Some((user_id, email, username)) = changed else {
        return Ok(respond(StatusCode::NOT_FOUND, invalid_page(), &browser));
    };
    // Mastodon revokes every access of the user (`revoke_access!`); refresh tokens live in
    // the same rows, and an unused code would otherwise still buy a token.
    let revoked: Vec<i64> = sqlx::query_scalar(
        "UPDATE oauth_access_tokens SET revoked_at = now() \
         WHERE user_id = $1 AND revoked_at IS NULL RETURNING id",
    )
    .bind(user_id)
    .fetch_all(&mut *tx)
    .await
    .map_err(ApiError::from)?;
    sqlx::query("DELETE FROM oauth_authorization_codes WHERE user_id = $1 AND used_at IS NULL")
        .bind(user_id)
        .execute(&mut *tx)
        .await
        .map_err(ApiError::from)?;
    let (subject, body) = changed_mail(state, &username);
    let mail = crate::tasks::mail::queue(&mut tx, &email, &subject, &body)
        .await
        .map_err(ApiError::from)?;
    tx.commit().await.map_err(ApiError::from)?;
    // At once here; in the other processes through PostgreSQL (auth::token_changes).
    state.tokens.invalidate(Change::User(user_id));
    crate::tasks::mail::enqueue(state, mail).await;
    info!(
        user_id,
        revoked = revoked.len(),
        "password reset; tokens revoked"
    );
    close_streams(state, &revoked).await;
    Ok(respond(
        StatusCode::OK,
        message_page(
            "Password changed",
            "Your password has been changed successfully. Every app signed in to your \
             account was signed out: sign in again with the new password.",
        ),
        &browser,
    ))
}

/// Open streaming connections of the revoked tokens close at once; a lost message is
/// caught by the streamer's periodic re-validation.
async fn close_streams(state: &AppState, token_ids: &[i64]) {
    for &id in token_ids {
        let (channel, kill) = (events::channel::access_token(id), events::Event::kill());
        let sent = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            events::publish(state, &channel, &kill),
        )
        .await;
        if !matches!(sent, Ok(Ok(()))) {
            warn!(
                token_id = id,
                "could not tell the streamers about a revoked token"
            );
            return;
        }
    }
}

fn password_problem(password: &str) -> Option<String> {
    let n = password.chars().count();
    if n == 0 {
        Some("Password can't be blank".into())
    } else if n < PASSWORD_MIN {
        Some(format!(
            "Password is too short (minimum is {PASSWORD_MIN} characters)"
        ))
    } else if n > PASSWORD_MAX || password.len() > MAX_PASSWORD_LEN {
        Some(format!(
            "Password is too long (maximum is {PASSWORD_MAX} characters)"
        ))
    } else {
        None
    }
}

fn instructions_mail(state: &AppState, username: &str, token: &str) -> (String, String) {
    let domain = &state.config.domain;
    let link = format!(
        "{}/auth/password/edit?reset_password_token={token}",
        state.base_url()
    );
    let subject = format!("{domain}: Reset password instructions");
    let body = format!(
        "Hi @{username},\n\n\
         Someone (hopefully you) asked for a new password for your account on {domain}. \
         To choose one, open this link within 6 hours:\n\n{link}\n\n\
         If you didn't request this, please ignore this e-mail. Your password won't change \
         until you open the link above and choose a new one.\n"
    );
    (subject, body)
}

fn changed_mail(state: &AppState, username: &str) -> (String, String) {
    let domain = &state.config.domain;
    let subject = format!("{domain}: Password changed");
    let body = format!(
        "Hi @{username},\n\n\
         The password for your account on {domain} has just been changed, and every app \
         signed in to it was signed out.\n\n\
         If you did not change it, someone may have access to your e-mail. Ask for a new \
         password at {}/auth/password/new and contact the staff of {domain}.\n",
        state.base_url()
    );
    (subject, body)
}

/// The browser's CSRF cookie, if the form's token was made for it.
fn csrf_browser(state: &AppState, headers: &HeaderMap, token: &str) -> Option<String> {
    let keys = Keys::new(&state.config);
    cookie(headers, CSRF_COOKIE)
        .filter(|b| keys.csrf_valid(b, None, token))
        .map(str::to_string)
}

fn parse(body: &[u8]) -> Option<PasswordForm> {
    serde_urlencoded::from_bytes(body).ok()
}

fn respond(status: StatusCode, page: Markup, browser: &str) -> Response {
    let cookie: HeaderValue = set_cookie(CSRF_COOKIE, browser, SESSION_TTL_SECS);
    pages::respond(status, page, &[cookie])
}

fn expired() -> Response {
    pages::respond(
        StatusCode::FORBIDDEN,
        message_page("Try again", FORM_EXPIRED),
        &[],
    )
}

fn malformed() -> Response {
    pages::respond(
        StatusCode::BAD_REQUEST,
        message_page("Something went wrong", "The form is malformed."),
        &[],
    )
}

fn message_page(title: &str, text: &str) -> Markup {
    pages::message("en", title, text)
}

fn invalid_page() -> Markup {
    pages::layout(
        "en",
        "Password reset",
        html! {
            h1 { "Password reset" }
            p.error role="alert" { (INVALID_LINK) }
            p { a href="/auth/password/new" { "Ask for a new link" } }
        },
    )
}

fn request_page(domain: &str, email: &str, error: Option<&str>, csrf_token: &str) -> Markup {
    pages::layout(
        "en",
        "Forgot your password?",
        html! {
            h1 { "Forgot your password?" }
            p.muted { "Enter the e-mail address of your account on " (domain)
                      " and we will send you a link to choose a new password." }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form method="post" action="/auth/password" {
                input type="hidden" name="csrf_token" value=(csrf_token);
                label for="email" { "Email address" }
                input id="email" type="email" name="email" value=(email) required
                    autocomplete="email" autofocus maxlength="320";
                div.actions { button.primary type="submit" { "Reset password" } }
            }
        },
    )
}

fn edit_page(reset_token: &str, error: Option<&str>, csrf_token: &str) -> Markup {
    pages::layout(
        "en",
        "Set a new password",
        html! {
            h1 { "Set a new password" }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form method="post" action="/auth/password" {
                input type="hidden" name="_method" value="put";
                input type="hidden" name="csrf_token" value=(csrf_token);
                input type="hidden" name="reset_password_token" value=(reset_token);
                label for="password" { "New password" }
                input id="password" type="password" name="password" required
                    autocomplete="new-password" minlength="8" maxlength="72" autofocus;
                label for="password_confirmation" { "Confirm new password" }
                input id="password_confirmation" type="password" name="password_confirmation"
                    required autocomplete="new-password" minlength="8" maxlength="72";
                div.actions { button.primary type="submit" { "Change password" } }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_are_read_in_both_spellings() {
        let f = parse(b"user%5Bemail%5D=a%40b.example&csrf_token=t").unwrap();
        assert_eq!(f.email.as_deref(), Some("a@b.example"));
        assert!(f.reset_password_token.is_none());
        let f = parse(b"_method=put&reset_password_token=x&password=p1&password_confirmation=p2")
            .unwrap();
        assert_eq!(f.reset_password_token.as_deref(), Some("x"));
        assert_eq!(f.password_confirmation.as_deref(), Some("p2"));
    }

    #[test]
    fn passwords_are_8_to_72_characters() {
        assert!(password_problem("").is_some());
        assert!(password_problem("1234567").is_some());
        assert!(password_problem("12345678").is_none());
        assert!(password_problem(&"é".repeat(72)).is_none());
        assert!(password_problem(&"x".repeat(73)).is_some());
    }

    #[test]
    fn the_token_in_the_form_is_escaped() {
        let page = edit_page("\"><script>", Some("<b>"), "t").into_string();
        assert!(!page.contains("<script>"), "{page}");
        assert!(!page.contains("<b>"), "{page}");
    }
}
