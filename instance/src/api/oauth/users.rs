//! The users OAuth signs in: found by e-mail, checked by password, refused while they may
//! not use the service.

use std::sync::LazyLock;

use crate::api::ApiError;
use crate::auth::credentials::{hash_password, verify_password};
use crate::state::AppState;

/// Longer passwords are refused before hashing: Argon2 over megabytes is a cheap DoS.
pub(super) const MAX_PASSWORD_LEN: usize = 1024;
pub(super) const MAX_EMAIL_LEN: usize = 320;

#[derive(Debug, sqlx::FromRow)]
pub(super) struct User {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
    confirmed: bool,
    approved: bool,
    suspended: bool,
}

const SELECT: &str = "SELECT u.id, a.username, u.password_hash, \
        u.confirmed_at IS NOT NULL AS confirmed, u.approved, \
        a.suspended_at IS NOT NULL AS suspended \
    FROM users u JOIN accounts a ON a.id = u.account_id";

impl User {
    /// On the primary: a confirmation or suspension a moment ago must count.
    pub async fn by_email(state: &AppState, email: &str) -> Result<Option<Self>, ApiError> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{SELECT} WHERE lower(u.email) = lower($1)"
        )))
        .bind(email)
        .fetch_optional(state.db.primary())
        .await?)
    }

    pub async fn by_id(state: &AppState, id: i64) -> Result<Option<Self>, ApiError> {
        Ok(
            sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} WHERE u.id = $1")))
                .bind(id)
                .fetch_optional(state.db.primary())
                .await?,
        )
    }

    /// Why this user may not sign in, if they may not; said only to someone who gave the
    /// right password, so it reveals nothing about which addresses exist.
    pub fn refusal(&self) -> Option<&'static str> {
        if self.suspended {
            Some("Your account has been suspended.")
        } else if !self.confirmed {
            Some("You have to confirm your email address before continuing.")
        } else if !self.approved {
            Some("Your account is pending review by the staff.")
        } else {
            None
        }
    }
}

/// What a sign-in attempt found.
pub(super) enum SignIn {
    Ok(User),
    /// Unknown address or wrong password: one answer for both.
    BadCredentials,
    /// Right password, but the account may not be used yet (or any more).
    Refused(&'static str),
}

/// Checks `password` for the user with `email`. An unknown address costs the same Argon2
/// run as a known one, so timing does not tell them apart either.
pub(super) async fn sign_in(
    state: &AppState,
    email: &str,
    password: &str,
) -> Result<SignIn, ApiError> {
    if email.len() > MAX_EMAIL_LEN || password.len() > MAX_PASSWORD_LEN {
        return Ok(SignIn::BadCredentials);
    }
    let user = User::by_email(state, email).await?;
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let password = password.to_string();
    let matches = tokio::task::spawn_blocking(move || {
        verify_password(&password, hash.as_deref().unwrap_or(&DUMMY_HASH))
    })
    .await
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("password check panicked: {e}")))?;
    Ok(match user {
        Some(user) if matches => match user.refusal() {
            Some(reason) => SignIn::Refused(reason),
            None => SignIn::Ok(user),
        },
        _ => SignIn::BadCredentials,
    })
}

/// A hash of a password nobody knows, verified against when the address is unknown.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    hash_password(&crate::auth::credentials::new_secret()).expect("hashing a random password")
});
