//! Sign-up through the API (`POST /api/v1/accounts`) and the e-mail confirmation link.
//!
//! A sign-up writes the account, its user, the returned token and the confirmation mail in
//! one transaction: a failure leaves nothing behind, and no mail goes out for an account
//! that does not exist. The token works once the address is confirmed (and, in approval
//! mode, the account approved): the bearer-token extractor refuses it until then.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use fedi_config::Registrations;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::api::ApiError;
use crate::api::entities::Token;
use crate::api::entities::html::escape;
use crate::api::params::{Params, flex};
use crate::auth::Auth;
use crate::auth::credentials::{digest, hash_password, new_secret};
use crate::state::AppState;

const USERNAME_MAX: usize = 30;
const PASSWORD_MIN: usize = 8;
/// bcrypt's limit in Mastodon (Devise); Argon2 has none, but passwords stay portable.
const PASSWORD_MAX: usize = 72;
const EMAIL_MAX: usize = 320;
const REASON_MAX: usize = 1000;

/// Names that would pass for the instance's staff or system addresses. Mastodon reserves a
/// similar list; an admin can still create these through the admin commands.
const RESERVED_USERNAMES: &[&str] = &[
    "abuse",
    "admin",
    "administrator",
    "help",
    "hostmaster",
    "instance_actor",
    "mod",
    "moderator",
    "moderators",
    "noreply",
    "no_reply",
    "owner",
    "postmaster",
    "root",
    "security",
    "staff",
    "support",
    "system",
    "webmaster",
];

/// Mastodon's validation error codes (`details[field][].error`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    Accepted,
    Blank,
    Inclusion,
    Invalid,
    Reserved,
    Taken,
    TooLong,
    TooShort,
}

impl Code {
    fn as_str(self) -> &'static str {
        match self {
            Code::Accepted => "ERR_ACCEPTED",
            Code::Blank => "ERR_BLANK",
            Code::Inclusion => "ERR_INCLUSION",
            Code::Invalid => "ERR_INVALID",
            Code::Reserved => "ERR_RESERVED",
            Code::Taken => "ERR_TAKEN",
            Code::TooLong => "ERR_TOO_LONG",
            Code::TooShort => "ERR_TOO_SHORT",
        }
    }
}

/// A problem with one field: its code and the text Mastodon shows for it.
pub type Problem = (Code, String);

/// All the problems of a sign-up, rendered as Mastodon's 422 with `details`.
#[derive(Debug, Default)]
pub struct Invalid(Vec<(&'static str, Vec<Problem>)>);

impl Invalid {
    pub fn add(&mut self, field: &'static str, problem: Problem) {
        match self.0.iter_mut().find(|(f, _)| *f == field) {
            Some((_, list)) => list.push(problem),
            None => self.0.push((field, vec![problem])),
        }
    }

    fn check(&mut self, field: &'static str, result: Result<(), Problem>) {
        if let Err(p) = result {
            self.add(field, p);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn has(&self, field: &str) -> bool {
        self.0.iter().any(|(f, _)| *f == field)
    }
}

impl Invalid {
    /// `{"error": "Validation failed: Username has already been taken, ...", "details": {...}}`
    fn body(&self) -> Value {
        let mut messages = Vec::new();
        let mut details = Map::new();
        for (field, problems) in &self.0 {
            let mut label = field.replace('_', " ");
            label[..1].make_ascii_uppercase();
            for (_, description) in problems {
                messages.push(format!("{label} {description}"));
            }
            let list = problems
                .iter()
                .map(|(code, description)| json!({"error": code.as_str(), "description": description}))
                .collect();
            details.insert(field.to_string(), Value::Array(list));
        }
        json!({
            "error": format!("Validation failed: {}", messages.join(", ")),
            "details": details,
        })
    }
}

impl IntoResponse for Invalid {
    fn into_response(self) -> Response {
        (StatusCode::UNPROCESSABLE_ENTITY, Json(self.body())).into_response()
    }
}

pub enum RegistrationError {
    Api(ApiError),
    Invalid(Invalid),
}

impl From<ApiError> for RegistrationError {
    fn from(e: ApiError) -> Self {
        RegistrationError::Api(e)
    }
}

impl From<sqlx::Error> for RegistrationError {
    fn from(e: sqlx::Error) -> Self {
        RegistrationError::Api(e.into())
    }
}

impl IntoResponse for RegistrationError {
    fn into_response(self) -> Response {
        match self {
            RegistrationError::Api(e) => e.into_response(),
            RegistrationError::Invalid(i) => i.into_response(),
        }
    }
}

pub fn validate_username(username: &str) -> Result<(), Problem> {
    if username.is_empty() {
        return Err((Code::Blank, "can't be blank".into()));
    }
    if !username
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err((
            Code::Invalid,
            "must contain only letters, numbers and underscores".into(),
        ));
    }
    if username.len() > USERNAME_MAX {
        return Err((
            Code::TooLong,
            format!("is too long (maximum is {USERNAME_MAX} characters)"),
        ));
    }
    if RESERVED_USERNAMES.contains(&username.to_ascii_lowercase().as_str()) {
        return Err((Code::Reserved, "is reserved".into()));
    }
    Ok(())
}

/// A plausible address: the mail itself is the real check.
pub fn validate_email(email: &str) -> Result<(), Problem> {
    if email.is_empty() {
        return Err((Code::Blank, "can't be blank".into()));
    }
    let invalid = || (Code::Invalid, "is invalid".to_string());
    if email.len() > EMAIL_MAX || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid());
    }
    let (local, domain) = email.rsplit_once('@').ok_or_else(invalid)?;
    let labels_ok = domain.split('.').count() >= 2
        && domain.split('.').all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    if local.is_empty() || local.len() > 64 || local.contains('@') || !labels_ok {
        return Err(invalid());
    }
    Ok(())
}

pub fn validate_password(password: &str) -> Result<(), Problem> {
    let n = password.chars().count();
    if n == 0 {
        Err((Code::Blank, "can't be blank".into()))
    } else if n < PASSWORD_MIN {
        Err((
            Code::TooShort,
            format!("is too short (minimum is {PASSWORD_MIN} characters)"),
        ))
    } else if n > PASSWORD_MAX {
        Err((
            Code::TooLong,
            format!("is too long (maximum is {PASSWORD_MAX} characters)"),
        ))
    } else {
        Ok(())
    }
}

/// A language tag such as `en`, `pt-BR` or `zh-Hant`.
pub fn validate_locale(locale: &str) -> Result<(), Problem> {
    let mut parts = locale.split(['-', '_']);
    let language = parts.next().unwrap_or_default();
    let ok = (2..=3).contains(&language.len())
        && language.bytes().all(|b| b.is_ascii_lowercase())
        && parts
            .all(|p| (2..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
        && locale.len() <= 16;
    if ok {
        Ok(())
    } else {
        Err((Code::Inclusion, "is not included in the list".into()))
    }
}

#[derive(Debug, Deserialize)]
pub struct RegisterParams {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default, deserialize_with = "flex::bool")]
    agreement: bool,
    #[serde(default)]
    locale: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

pub async fn register(
    State(state): State<AppState>,
    auth: Auth,
    Params { value: p, .. }: Params<RegisterParams>,
) -> Result<Json<Token>, RegistrationError> {
    auth.require("write:accounts")?;
    let approval = match state.config.registrations {
        Registrations::Closed => return Err(ApiError::Forbidden.into()),
        Registrations::Approval => true,
        Registrations::Open => false,
    };

    let username = p.username.unwrap_or_default();
    // Addresses are compared and stored in lower case, as Devise does.
    let email = p.email.unwrap_or_default().trim().to_lowercase();
    let password = p.password.unwrap_or_default();
    let locale = p
        .locale
        .filter(|l| !l.trim().is_empty())
        .unwrap_or_else(|| "en".into());
    let reason = p.reason.unwrap_or_default().trim().to_string();

    let mut invalid = Invalid::default();
    invalid.check("username", validate_username(&username));
    invalid.check("email", validate_email(&email));
    invalid.check("password", validate_password(&password));
    if !p.agreement {
        invalid.add("agreement", (Code::Accepted, "must be accepted".into()));
    }
    invalid.check("locale", validate_locale(&locale));
    if approval && reason.is_empty() {
        invalid.add("reason", (Code::Blank, "can't be blank".into()));
    }
    if reason.chars().count() > REASON_MAX {
        invalid.add(
            "reason",
            (
                Code::TooLong,
                format!("is too long (maximum is {REASON_MAX} characters)"),
            ),
        );
    }
    if !invalid.has("username") || !invalid.has("email") {
        let (username_taken, email_taken): (bool, bool) = sqlx::query_as(
            "SELECT EXISTS (SELECT 1 FROM accounts \
                            WHERE lower(username) = lower($1) AND coalesce(domain, '') = ''), \
                    EXISTS (SELECT 1 FROM users WHERE lower(email) = lower($2))",
        )
        .bind(&username)
        .bind(&email)
        .fetch_one(state.db.primary())
        .await?;
        if username_taken && !invalid.has("username") {
            invalid.add("username", taken());
        }
        if email_taken && !invalid.has("email") {
            invalid.add("email", taken());
        }
    }
    if !invalid.is_empty() {
        return Err(RegistrationError::Invalid(invalid));
    }

    // Argon2 takes tens of milliseconds of CPU: off the async workers.
    let password_hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .map_err(ApiError::Internal)?;
    let confirmation_token = new_secret();
    let access_token = new_secret();
    // The actor's key pair for federation; generating one is CPU work, done before the
    // transaction opens.
    let key_pair = crate::federation::keys::generate_async()
        .await
        .map_err(ApiError::Internal)?;

    let mut tx = state.db.begin().await?;
    // The token gets what the application registered, as Mastodon's AppSignUpService does.
    let (scopes,): (String,) =
        sqlx::query_as("SELECT scopes FROM oauth_applications WHERE id = $1")
            .bind(auth.application_id)
            .fetch_one(&mut *tx)
            .await?;
    let inserted = insert(
        &mut tx,
        &username,
        &email,
        &password_hash,
        &locale,
        &reason,
        approval,
        &confirmation_token,
    )
    .await;
    let user_id = match inserted {
        Ok(id) => id,
        Err(e) => return Err(unique_violation(&e).unwrap_or_else(|| e.into())),
    };
    crate::federation::keys::insert_user_account_key(&mut tx, user_id, &key_pair).await?;
    let (created_at,): (i64,) = sqlx::query_as(
        "INSERT INTO oauth_access_tokens (token_hash, application_id, user_id, scopes) \
         VALUES ($1, $2, $3, $4) RETURNING extract(epoch FROM created_at)::bigint",
    )
    .bind(digest(&access_token))
    .bind(auth.application_id)
    .bind(user_id)
    .bind(&scopes)
    .fetch_one(&mut *tx)
    .await?;
    let (subject, body) = confirmation_mail(&state, &username, &confirmation_token, approval);
    let (mail_id,): (i64,) = sqlx::query_as(
        "INSERT INTO outgoing_mail (to_address, subject, body_text) VALUES ($1, $2, $3) \
         RETURNING id",
    )
    .bind(&email)
    .bind(subject)
    .bind(body)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    crate::tasks::mail::enqueue(&state, mail_id).await;
    tracing::info!(user_id, approval, "account registered");
    Ok(Json(Token::bearer(access_token, scopes, created_at)))
}

fn taken() -> Problem {
    (Code::Taken, "has already been taken".into())
}

/// The account and its user; returns the user's id.
#[allow(clippy::too_many_arguments)]
async fn insert(
    tx: &mut sqlx::PgTransaction<'_>,
    username: &str,
    email: &str,
    password_hash: &str,
    locale: &str,
    reason: &str,
    approval: bool,
    confirmation_token: &str,
) -> Result<i64, sqlx::Error> {
    let (account_id,): (i64,) =
        sqlx::query_as("INSERT INTO accounts (username) VALUES ($1) RETURNING id")
            .bind(username)
            .fetch_one(&mut **tx)
            .await?;
    let (user_id,): (i64,) = sqlx::query_as(
        "INSERT INTO users (account_id, email, password_hash, locale, reason, approved, \
                            confirmation_token_hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(account_id)
    .bind(email)
    .bind(password_hash)
    .bind(locale)
    .bind(reason)
    .bind(!approval)
    .bind(digest(confirmation_token))
    .fetch_one(&mut **tx)
    .await?;
    Ok(user_id)
}

/// A concurrent sign-up that took the name or address between the check and the insert.
fn unique_violation(e: &sqlx::Error) -> Option<RegistrationError> {
    let field = match e.as_database_error()?.constraint()? {
        "accounts_username_domain" => "username",
        "users_email" => "email",
        _ => return None,
    };
    let mut invalid = Invalid::default();
    invalid.add(field, taken());
    Some(RegistrationError::Invalid(invalid))
}

fn confirmation_url(state: &AppState, token: &str) -> String {
    format!(
        "{}/auth/confirmation?confirmation_token={token}",
        state.base_url()
    )
}

fn confirmation_mail(
    state: &AppState,
    username: &str,
    token: &str,
    approval: bool,
) -> (String, String) {
    let domain = &state.config.domain;
    let subject = format!("Confirm your e-mail address for {domain}");
    let after = if approval {
        "The staff will then review your sign-up; you will be able to sign in once they approve it."
    } else {
        "You will then be able to sign in."
    };
    let body = format!(
        "Welcome to {domain}, @{username}!\n\n\
         To confirm your e-mail address, open this link:\n\n{}\n\n{after}\n\n\
         If you did not sign up, ignore this message: the account stays unusable without \
         confirmation.\n",
        confirmation_url(state, token)
    );
    (subject, body)
}

#[derive(Debug, Deserialize)]
pub struct ConfirmQuery {
    #[serde(default)]
    confirmation_token: Option<String>,
}

/// The link in the confirmation mail. A token works once; its digest is all that is kept.
pub async fn confirm(
    State(state): State<AppState>,
    Query(q): Query<ConfirmQuery>,
) -> Result<(StatusCode, Html<String>), ApiError> {
    let token = q.confirmation_token.unwrap_or_default();
    let approved: Option<(bool,)> = if token.is_empty() {
        None
    } else {
        sqlx::query_as(
            "UPDATE users SET confirmed_at = now(), confirmation_token_hash = NULL \
             WHERE confirmation_token_hash = $1 AND confirmed_at IS NULL RETURNING approved",
        )
        .bind(digest(&token))
        .fetch_optional(state.db.primary())
        .await?
    };
    let (status, message) = match approved {
        Some((true,)) => (
            StatusCode::OK,
            "Your e-mail address has been confirmed. You can now sign in.",
        ),
        Some((false,)) => (
            StatusCode::OK,
            "Your e-mail address has been confirmed. The staff will review your sign-up; \
             you can sign in once they approve it.",
        ),
        None => (
            StatusCode::NOT_FOUND,
            "This confirmation link is invalid or has already been used.",
        ),
    };
    let title = escape(&state.config.domain);
    Ok((
        status,
        Html(format!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{title}</title></head><body><main><h1>{title}</h1><p>{}</p></main>\
             </body></html>\n",
            escape(message)
        )),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_letters_digits_and_underscores_and_not_reserved() {
        for ok in ["alice", "Bob_2", "_", "a".repeat(30).as_str()] {
            assert_eq!(validate_username(ok), Ok(()), "{ok}");
        }
        let cases = [
            ("", Code::Blank),
            ("al ice", Code::Invalid),
            ("alice.b", Code::Invalid),
            ("alice@x", Code::Invalid),
            ("élise", Code::Invalid),
            ("a-b", Code::Invalid),
            (&"a".repeat(31), Code::TooLong),
            ("admin", Code::Reserved),
            ("Root", Code::Reserved),
            ("SUPPORT", Code::Reserved),
        ];
        for (name, code) in cases {
            assert_eq!(
                validate_username(name).map_err(|p| p.0),
                Err(code),
                "{name}"
            );
        }
    }

    #[test]
    fn emails_need_a_local_part_and_a_dotted_domain() {
        for ok in [
            "a@b.co",
            "first.last+tag@mail.example.org",
            "x@xn--bcher-kva.example",
        ] {
            assert_eq!(validate_email(ok), Ok(()), "{ok}");
        }
        for bad in [
            "plain",
            "@example.com",
            "a@",
            "a@localhost",
            "a@b..c",
            "a b@example.com",
            "a@-x.example",
            "a@b@example.com",
        ] {
            assert!(validate_email(bad).is_err(), "{bad}");
        }
        assert_eq!(validate_email("").map_err(|p| p.0), Err(Code::Blank));
    }

    #[test]
    fn passwords_are_8_to_72_characters() {
        assert_eq!(
            validate_password("1234567").map_err(|p| p.0),
            Err(Code::TooShort)
        );
        assert_eq!(validate_password("12345678"), Ok(()));
        assert_eq!(validate_password(&"é".repeat(72)), Ok(()));
        assert_eq!(
            validate_password(&"x".repeat(73)).map_err(|p| p.0),
            Err(Code::TooLong)
        );
        assert_eq!(validate_password("").map_err(|p| p.0), Err(Code::Blank));
    }

    #[test]
    fn locales_are_language_tags() {
        for ok in ["en", "pt-BR", "zh-Hant", "es_419", "ast"] {
            assert_eq!(validate_locale(ok), Ok(()), "{ok}");
        }
        for bad in ["", "e", "EN", "english", "en-", "en-<b>"] {
            assert!(validate_locale(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn details_name_each_field_with_mastodon_codes() {
        let mut invalid = Invalid::default();
        invalid.add("username", taken());
        invalid.add("email", taken());
        invalid.add("agreement", (Code::Accepted, "must be accepted".into()));
        assert_eq!(
            invalid.body(),
            json!({
                "error": "Validation failed: Username has already been taken, \
                          Email has already been taken, Agreement must be accepted",
                "details": {
                    "username": [{"error": "ERR_TAKEN", "description": "has already been taken"}],
                    "email": [{"error": "ERR_TAKEN", "description": "has already been taken"}],
                    "agreement": [{"error": "ERR_ACCEPTED", "description": "must be accepted"}],
                },
            })
        );
    }
}
