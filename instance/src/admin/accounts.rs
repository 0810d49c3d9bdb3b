//! `fedi-server admin accounts ...`: local accounts, as Mastodon's `tootctl accounts`.

use anyhow::{Context, bail};
use clap::{Subcommand, ValueEnum};
use sqlx::{Connection, PgConnection};

use crate::auth::credentials::{hash_password, new_secret};

mod notification_emails;
pub use notification_emails::MailType;

/// Mastodon's bounds (Devise's, for passwords); a longer password would be cut by bcrypt there.
const USERNAME_MAX: usize = 30;
const PASSWORD_MIN: usize = 8;
const PASSWORD_MAX: usize = 72;
const EMAIL_MAX: usize = 320;

#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum AccountsCommand {
    /// Create a local account, already approved. Without --password, a generated password is
    /// printed on stdout.
    Create {
        username: String,
        #[arg(long)]
        email: String,
        #[arg(long, value_enum, default_value_t = Role::User)]
        role: Role,
        /// Mark the e-mail address as confirmed: the user can sign in at once.
        #[arg(long)]
        confirmed: bool,
        /// Visible to other local users in the process list while the command runs; omit it
        /// to get a generated one.
        #[arg(long)]
        password: Option<String>,
    },
    /// Mark the account's e-mail address as confirmed.
    Confirm { username: String },
    /// Approve an account that signed up while registrations needed approval.
    Approve { username: String },
    /// Suspend the account: its tokens stop working until it is unsuspended.
    Suspend { username: String },
    /// Lift a suspension.
    Unsuspend { username: String },
    /// Change the account's role.
    Role {
        username: String,
        #[arg(value_enum)]
        role: Role,
    },
    /// Set a new generated password (printed on stdout) and revoke every token of the user:
    /// a password reset signs the user out everywhere.
    ResetPassword { username: String },
    /// Which notifications the user is e-mailed about (Mastodon's defaults: follow,
    /// follow_request, mention); prints the types mailed afterwards on stdout.
    NotificationEmails {
        username: String,
        /// Mail these types too (repeatable).
        #[arg(long, value_enum)]
        on: Vec<MailType>,
        /// Stop mailing these types (repeatable; wins over --on).
        #[arg(long, value_enum)]
        off: Vec<MailType>,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    User,
    Moderator,
    Admin,
    Owner,
}

impl Role {
    /// The value of `users.role`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Moderator => "moderator",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }
}

pub async fn run(
    conn: &mut PgConnection,
    domain: &str,
    command: AccountsCommand,
) -> anyhow::Result<()> {
    match command {
        AccountsCommand::Create {
            username,
            email,
            role,
            confirmed,
            password,
        } => create(conn, domain, &username, &email, role, confirmed, password).await,
        AccountsCommand::Confirm { username } => {
            let user = find(conn, domain, &username).await?;
            let changed = sqlx::query(
                "UPDATE users SET confirmed_at = now(), confirmation_token_hash = NULL \
                 WHERE id = $1 AND confirmed_at IS NULL",
            )
            .bind(user.user_id)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            report(&user, changed, "is confirmed", "was already confirmed");
            Ok(())
        }
        AccountsCommand::Approve { username } => {
            let user = find(conn, domain, &username).await?;
            let changed =
                sqlx::query("UPDATE users SET approved = true WHERE id = $1 AND NOT approved")
                    .bind(user.user_id)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
            report(&user, changed, "is approved", "was already approved");
            Ok(())
        }
        AccountsCommand::Suspend { username } => {
            let user = find(conn, domain, &username).await?;
            let changed = sqlx::query(
                "UPDATE accounts SET suspended_at = now(), updated_at = now() \
                 WHERE id = $1 AND suspended_at IS NULL",
            )
            .bind(user.account_id)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            report(&user, changed, "is suspended", "was already suspended");
            Ok(())
        }
        AccountsCommand::Unsuspend { username } => {
            let user = find(conn, domain, &username).await?;
            let changed = sqlx::query(
                "UPDATE accounts SET suspended_at = NULL, updated_at = now() \
                 WHERE id = $1 AND suspended_at IS NOT NULL",
            )
            .bind(user.account_id)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            report(
                &user,
                changed,
                "is no longer suspended",
                "was not suspended",
            );
            Ok(())
        }
        AccountsCommand::Role { username, role } => {
            let user = find(conn, domain, &username).await?;
            sqlx::query("UPDATE users SET role = $2 WHERE id = $1")
                .bind(user.user_id)
                .bind(role.as_str())
                .execute(&mut *conn)
                .await?;
            eprintln!(
                "@{}: role {} -> {}",
                user.username,
                user.role,
                role.as_str()
            );
            Ok(())
        }
        AccountsCommand::ResetPassword { username } => {
            reset_password(conn, domain, &username).await
        }
        AccountsCommand::NotificationEmails { username, on, off } => {
            notification_emails::run(conn, domain, &username, &on, &off).await
        }
    }
}

/// A local account and its user.
#[derive(Debug)]
struct LocalUser {
    account_id: i64,
    user_id: i64,
    /// As stored (the case the user chose).
    username: String,
    role: String,
}

/// Accepts `alice`, `@alice` and `@alice@<this domain>`.
fn local_username<'a>(input: &'a str, domain: &str) -> anyhow::Result<&'a str> {
    let name = input.trim().trim_start_matches('@');
    match name.split_once('@') {
        None => Ok(name),
        Some((name, host)) if host.eq_ignore_ascii_case(domain) => Ok(name),
        Some(_) => {
            bail!("{input} is not an account of {domain}: only local accounts can be managed")
        }
    }
}

async fn find(conn: &mut PgConnection, domain: &str, input: &str) -> anyhow::Result<LocalUser> {
    let username = local_username(input, domain)?;
    let row: Option<(i64, i64, String, String)> = sqlx::query_as(
        "SELECT a.id, u.id, a.username, u.role \
         FROM accounts a JOIN users u ON u.account_id = a.id \
         WHERE lower(a.username) = lower($1) AND a.domain IS NULL",
    )
    .bind(username)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((account_id, user_id, username, role)) = row else {
        bail!("no local account named @{username}");
    };
    Ok(LocalUser {
        account_id,
        user_id,
        username,
        role,
    })
}

fn report(user: &LocalUser, changed: u64, done: &str, already: &str) {
    if changed > 0 {
        eprintln!("@{} {done}", user.username);
    } else {
        eprintln!("@{} {already}; nothing changed", user.username);
    }
}

/// Letters, digits and underscores, as sign-up allows (and as WebFinger handles survive
/// every client); admins may use names sign-up reserves, such as `admin`.
fn validate_username(username: &str) -> anyhow::Result<()> {
    if username.is_empty() || username.len() > USERNAME_MAX {
        bail!("the username must have 1 to {USERNAME_MAX} characters");
    }
    if !username
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        bail!("the username may contain only letters, digits and underscores: {username:?}");
    }
    Ok(())
}

fn validate_email(email: &str) -> anyhow::Result<()> {
    let plausible = email.len() <= EMAIL_MAX
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email
            .rsplit_once('@')
            .is_some_and(|(local, host)| !local.is_empty() && host.contains('.'));
    if !plausible {
        bail!("{email:?} is not an e-mail address");
    }
    Ok(())
}

fn validate_password(password: &str) -> anyhow::Result<()> {
    let n = password.chars().count();
    if !(PASSWORD_MIN..=PASSWORD_MAX).contains(&n) {
        bail!("the password must have {PASSWORD_MIN} to {PASSWORD_MAX} characters");
    }
    Ok(())
}

async fn hash(password: String) -> anyhow::Result<String> {
    // Argon2 is seconds of CPU at worst; keep the runtime's thread free all the same.
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .context("hashing the password")?
}

async fn create(
    conn: &mut PgConnection,
    domain: &str,
    username: &str,
    email: &str,
    role: Role,
    confirmed: bool,
    password: Option<String>,
) -> anyhow::Result<()> {
    let username = local_username(username, domain)?;
    validate_username(username)?;
    // Stored in lower case, as sign-up does, so that the unique index means one owner.
    let email = email.trim().to_lowercase();
    validate_email(&email)?;
    if let Some(p) = &password {
        validate_password(p)?;
    }

    let (username_taken, email_taken): (bool, bool) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM accounts WHERE lower(username) = lower($1) AND domain IS NULL), \
                EXISTS (SELECT 1 FROM users WHERE lower(email) = lower($2))",
    )
    .bind(username)
    .bind(&email)
    .fetch_one(&mut *conn)
    .await?;
    if username_taken {
        bail!("the username @{username} is already taken");
    }
    if email_taken {
        bail!("the e-mail address {email} is already used by another account");
    }

    let generated = password.is_none();
    let password = password.unwrap_or_else(new_secret);
    let password_hash = hash(password.clone()).await?;
    // The actor's key pair for federation (CPU work, before the transaction opens).
    let key_pair = crate::federation::keys::generate_async().await?;

    let mut tx = conn.begin().await?;
    let (account_id,): (i64,) =
        sqlx::query_as("INSERT INTO accounts (username) VALUES ($1) RETURNING id")
            .bind(username)
            .fetch_one(&mut *tx)
            .await
            .map_err(taken)?;
    crate::federation::keys::insert_account_key(&mut tx, account_id, &key_pair).await?;
    sqlx::query(
        "INSERT INTO users (account_id, email, password_hash, confirmed_at, approved, role) \
         VALUES ($1, $2, $3, CASE WHEN $4 THEN now() END, true, $5)",
    )
    .bind(account_id)
    .bind(&email)
    .bind(&password_hash)
    .bind(confirmed)
    .bind(role.as_str())
    .execute(&mut *tx)
    .await
    .map_err(taken)?;
    tx.commit().await?;

    eprintln!(
        "created @{username} (account {account_id}, role {})",
        role.as_str()
    );
    if !confirmed {
        eprintln!(
            "@{username} cannot sign in until the address is confirmed: \
             fedi-server admin accounts confirm {username}"
        );
    }
    if generated {
        eprintln!("the generated password follows on stdout; it is not shown again");
        println!("{password}");
    }
    Ok(())
}

/// A unique index hit by a concurrent creation, told in the words of the checks above.
fn taken(e: sqlx::Error) -> anyhow::Error {
    let constraint = e
        .as_database_error()
        .filter(|d| d.is_unique_violation())
        .and_then(|d| d.constraint().map(str::to_owned));
    match constraint.as_deref() {
        Some("accounts_username_domain") => anyhow::anyhow!("the username is already taken"),
        Some("users_email") => {
            anyhow::anyhow!("the e-mail address is already used by another account")
        }
        _ => e.into(),
    }
}

async fn reset_password(conn: &mut PgConnection, domain: &str, input: &str) -> anyhow::Result<()> {
    let user = find(conn, domain, input).await?;
    let password = new_secret();
    let password_hash = hash(password.clone()).await?;

    // One transaction: a new password with the old sessions still valid must never be seen.
    let mut tx = conn.begin().await?;
    sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
        .bind(user.user_id)
        .bind(&password_hash)
        .execute(&mut *tx)
        .await?;
    // Refresh tokens live in the same rows and go with them.
    let revoked = sqlx::query(
        "UPDATE oauth_access_tokens SET revoked_at = now() \
         WHERE user_id = $1 AND revoked_at IS NULL",
    )
    .bind(user.user_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    // A code issued before the reset would otherwise still buy a fresh token.
    sqlx::query("DELETE FROM oauth_authorization_codes WHERE user_id = $1 AND used_at IS NULL")
        .bind(user.user_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;

    eprintln!(
        "@{}: password reset, {revoked} token(s) revoked; the new password follows on stdout",
        user.username
    );
    println!("{password}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_names_are_accepted_in_every_usual_form() {
        for input in [
            "alice",
            "@alice",
            "@alice@example.org",
            "alice@EXAMPLE.org",
            " alice ",
        ] {
            assert_eq!(
                local_username(input, "example.org").unwrap(),
                "alice",
                "{input}"
            );
        }
        let err = local_username("@alice@elsewhere.net", "example.org").unwrap_err();
        assert!(err.to_string().contains("only local accounts"), "{err}");
    }

    #[test]
    fn inputs_are_checked_before_anything_is_written() {
        assert!(validate_username("admin").is_ok());
        assert!(validate_username("Al_1ce").is_ok());
        for bad in ["", "al.ice", "al ice", "ålice", &"a".repeat(31)] {
            assert!(validate_username(bad).is_err(), "{bad:?}");
        }
        assert!(validate_email("a@example.org").is_ok());
        for bad in ["", "a", "@example.org", "a@localhost", "a b@example.org"] {
            assert!(validate_email(bad).is_err(), "{bad:?}");
        }
        assert!(validate_password("12345678").is_ok());
        assert!(validate_password("1234567").is_err());
        assert!(validate_password(&"x".repeat(73)).is_err());
        // Generated passwords satisfy the same rule.
        assert!(validate_password(&new_secret()).is_ok());
    }
}
