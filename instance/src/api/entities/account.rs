//! Mastodon's `Account` and `CredentialAccount` entities, built from `accounts` rows.
//!
//! Queries select `account_columns!()` from `accounts a` into an [`AccountRow`], then call
//! [`account_json`]: one place decides what an account looks like to clients.

use chrono::SecondsFormat;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::types::chrono::{DateTime, Utc};

use super::html;
use crate::state::AppState;

/// The columns of an [`AccountRow`], for `SELECT ... FROM accounts a`. A macro rather than a
/// constant so that queries stay `&'static str` literals (`concat!`), which sqlx requires.
/// The follow counters are columns kept by triggers (migration `account_counters`):
/// counting them here cost an index scan over every follower of a popular account per
/// rendering. The status count is the folded column plus the changes the worker has not
/// folded yet (migration `statuses_count`, `tasks::statuses_count`): counting it here cost a
/// heap visit per status of each author.
macro_rules! account_columns {
    () => {
        "a.id, a.username, a.domain, a.display_name, a.note, a.locked, a.bot, a.discoverable, \
         a.avatar_key, a.header_key, a.fields, a.created_at, \
         a.uri, a.url, a.actor_type, a.avatar_remote_url, a.header_remote_url, \
         a.followers_count, a.following_count, \
         a.statuses_count + coalesce((SELECT sum(c.delta) FROM account_statuses_count_changes c \
                                      WHERE c.account_id = a.id), 0)::bigint AS statuses_count, \
         (SELECT s.created_at FROM statuses s WHERE s.account_id = a.id \
          ORDER BY s.id DESC LIMIT 1) AS last_status_at"
    };
}
pub(crate) use account_columns;

/// One profile metadata entry as stored in `accounts.fields`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredField {
    pub name: String,
    pub value: String,
}

/// Also read as JSON: status pages take their authors' rows from the statuses query
/// (`to_jsonb` of these columns) instead of a query of their own.
#[derive(Clone, Debug, sqlx::FromRow, Deserialize)]
pub struct AccountRow {
    pub id: i64,
    pub username: String,
    pub domain: Option<String>,
    pub display_name: String,
    pub note: String,
    pub locked: bool,
    pub bot: bool,
    pub discoverable: bool,
    pub avatar_key: Option<String>,
    pub header_key: Option<String>,
    pub fields: Json<Vec<StoredField>>,
    pub created_at: DateTime<Utc>,
    /// Remote accounts: the actor id, profile page, actor type and media as published
    /// (notes and field values are then sanitized HTML, stored as received).
    pub uri: Option<String>,
    pub url: Option<String>,
    pub actor_type: Option<String>,
    pub avatar_remote_url: Option<String>,
    pub header_remote_url: Option<String>,
    pub followers_count: i64,
    pub following_count: i64,
    pub statuses_count: i64,
    pub last_status_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Field {
    pub name: String,
    /// HTML.
    pub value: String,
    pub verified_at: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Account {
    pub id: String,
    pub username: String,
    /// `username` for local accounts, `username@domain` for remote ones.
    pub acct: String,
    pub display_name: String,
    pub locked: bool,
    pub bot: bool,
    pub discoverable: bool,
    pub indexable: bool,
    pub group: bool,
    pub hide_collections: bool,
    pub noindex: bool,
    /// Midnight UTC of the creation day: Mastodon rounds it so as not to reveal more.
    pub created_at: String,
    /// HTML.
    pub note: String,
    pub url: String,
    pub uri: String,
    pub avatar: String,
    pub avatar_static: String,
    pub header: String,
    pub header_static: String,
    pub followers_count: i64,
    pub following_count: i64,
    pub statuses_count: i64,
    pub last_status_at: Option<String>,
    pub emojis: Vec<Value>,
    pub roles: Vec<Value>,
    pub fields: Vec<Field>,
}

/// Mastodon's default images, served by this server (see `accounts::media`).
pub const MISSING_AVATAR_PATH: &str = "/avatars/original/missing.png";
pub const MISSING_HEADER_PATH: &str = "/headers/original/missing.png";

/// The `Account` entity of `row`.
pub fn account_json(row: &AccountRow, state: &AppState) -> Account {
    let base = state.base_url();
    let media = |key: &Option<String>, missing: &str| match (key, &state.storage) {
        (Some(key), Some(storage)) => storage.public_url(key),
        _ => format!("{base}{missing}"),
    };
    // Remote profiles keep their own URLs once federation stores them; until then the
    // Mastodon layout of their host is the best guess.
    // Local accounts live under this server's base URL (plain http for test servers on
    // loopback, which peers compare with the actor's `url`).
    let home = match &row.domain {
        None => base.clone(),
        Some(domain) => format!("https://{domain}"),
    };
    let avatar = row
        .avatar_remote_url
        .clone()
        .unwrap_or_else(|| media(&row.avatar_key, MISSING_AVATAR_PATH));
    let header = row
        .header_remote_url
        .clone()
        .unwrap_or_else(|| media(&row.header_key, MISSING_HEADER_PATH));
    let remote = row.domain.is_some() && row.uri.is_some();
    Account {
        id: row.id.to_string(),
        username: row.username.clone(),
        acct: match &row.domain {
            None => row.username.clone(),
            Some(domain) => format!("{}@{domain}", row.username),
        },
        display_name: row.display_name.clone(),
        locked: row.locked,
        bot: row.bot,
        discoverable: row.discoverable,
        indexable: false,
        group: row.actor_type.as_deref() == Some("Group"),
        hide_collections: false,
        noindex: false,
        created_at: midnight(row.created_at),
        note: if remote {
            row.note.clone()
        } else {
            html::paragraphs(&row.note)
        },
        url: row
            .url
            .clone()
            .or_else(|| row.uri.clone().filter(|_| remote))
            .unwrap_or_else(|| format!("{home}/@{}", row.username)),
        uri: row
            .uri
            .clone()
            .filter(|_| remote)
            .unwrap_or_else(|| format!("{home}/users/{}", row.username)),
        // No still frame of animated images yet (the media issue makes one).
        avatar_static: avatar.clone(),
        avatar,
        header_static: header.clone(),
        header,
        followers_count: row.followers_count,
        following_count: row.following_count,
        statuses_count: row.statuses_count,
        // A day only, as Mastodon gives it: when exactly someone last posted is not shown.
        last_status_at: row.last_status_at.map(|t| t.date_naive().to_string()),
        emojis: Vec::new(),
        roles: Vec::new(),
        fields: row
            .fields
            .iter()
            .map(|f| Field {
                name: f.name.clone(),
                value: if remote {
                    f.value.clone()
                } else {
                    html::field_value(&f.value)
                },
                verified_at: None,
            })
            .collect(),
    }
}

/// `2016-11-24T00:00:00.000Z`.
fn midnight(t: DateTime<Utc>) -> String {
    format!("{}T00:00:00.000Z", t.date_naive())
}

/// An ISO 8601 time with milliseconds, as Mastodon writes every other timestamp. Not
/// `format` with a pattern: it parses its pattern on every call, a few percent of the CPU
/// of a timeline page (two timestamps per status).
pub fn iso8601(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[derive(Clone, Debug, Serialize)]
pub struct SourceField {
    pub name: String,
    pub value: String,
    pub verified_at: Option<String>,
}

/// What the owner typed, for editing.
#[derive(Clone, Debug, Serialize)]
pub struct Source {
    pub privacy: String,
    pub sensitive: bool,
    pub language: Option<String>,
    pub note: String,
    pub fields: Vec<SourceField>,
    pub follow_requests_count: i64,
    pub discoverable: bool,
    pub indexable: bool,
    pub hide_collections: bool,
    pub attribution_domains: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Role {
    pub id: String,
    pub name: String,
    /// A decimal bit set, as Mastodon sends it.
    pub permissions: String,
    pub color: String,
    pub highlighted: bool,
}

/// Mastodon's permission bits (`UserRole::FLAGS`).
mod permission {
    pub const ADMINISTRATOR: u64 = 1 << 0;
    pub const VIEW_AUDIT_LOG: u64 = 1 << 2;
    pub const VIEW_DASHBOARD: u64 = 1 << 3;
    pub const MANAGE_REPORTS: u64 = 1 << 4;
    pub const MANAGE_FEDERATION: u64 = 1 << 5;
    pub const MANAGE_SETTINGS: u64 = 1 << 6;
    pub const MANAGE_BLOCKS: u64 = 1 << 7;
    pub const MANAGE_TAXONOMIES: u64 = 1 << 8;
    pub const MANAGE_APPEALS: u64 = 1 << 9;
    pub const MANAGE_USERS: u64 = 1 << 10;
    pub const MANAGE_RULES: u64 = 1 << 12;
    pub const MANAGE_ANNOUNCEMENTS: u64 = 1 << 13;
    pub const MANAGE_CUSTOM_EMOJIS: u64 = 1 << 14;
    pub const MANAGE_WEBHOOKS: u64 = 1 << 15;
    pub const INVITE_USERS: u64 = 1 << 16;
    pub const MANAGE_ROLES: u64 = 1 << 17;
    pub const MANAGE_USER_ACCESS: u64 = 1 << 18;
    pub const DELETE_USER_DATA: u64 = 1 << 19;
}

impl Role {
    /// Mastodon's seeded roles: `@everyone` (id -99) for plain users, then the staff roles.
    pub fn of(role: &str) -> Self {
        use permission::*;
        let moderator =
            VIEW_DASHBOARD | VIEW_AUDIT_LOG | MANAGE_USERS | MANAGE_REPORTS | MANAGE_TAXONOMIES;
        let admin = moderator
            | MANAGE_USER_ACCESS
            | DELETE_USER_DATA
            | MANAGE_FEDERATION
            | MANAGE_SETTINGS
            | MANAGE_BLOCKS
            | MANAGE_APPEALS
            | MANAGE_RULES
            | MANAGE_ANNOUNCEMENTS
            | MANAGE_CUSTOM_EMOJIS
            | MANAGE_WEBHOOKS
            | MANAGE_ROLES;
        let (id, name, permissions, highlighted) = match role {
            "moderator" => ("1", "Moderator", moderator, true),
            "admin" => ("2", "Admin", admin, true),
            "owner" => ("3", "Owner", ADMINISTRATOR, true),
            _ => ("-99", "", INVITE_USERS, false),
        };
        Self {
            id: id.into(),
            name: name.into(),
            permissions: permissions.to_string(),
            color: String::new(),
            highlighted,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct CredentialAccount {
    #[serde(flatten)]
    pub account: Account,
    pub source: Source,
    pub role: Role,
}

/// The user-side columns of a `CredentialAccount`.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct UserSettingsRow {
    pub role: String,
    pub default_privacy: String,
    pub default_sensitive: bool,
    pub default_language: Option<String>,
    pub follow_requests_count: i64,
}

pub fn credential_account_json(
    row: &AccountRow,
    user: &UserSettingsRow,
    state: &AppState,
) -> CredentialAccount {
    CredentialAccount {
        account: account_json(row, state),
        source: Source {
            privacy: user.default_privacy.clone(),
            sensitive: user.default_sensitive,
            language: user.default_language.clone(),
            note: row.note.clone(),
            fields: row
                .fields
                .iter()
                .map(|f| SourceField {
                    name: f.name.clone(),
                    value: f.value.clone(),
                    verified_at: None,
                })
                .collect(),
            follow_requests_count: user.follow_requests_count,
            discoverable: row.discoverable,
            indexable: false,
            hide_collections: false,
            attribution_domains: Vec::new(),
        },
        role: Role::of(&user.role),
    }
}

/// The `CredentialAccount` of the local account `account_id`, read from `db`.
pub async fn load_credential_account(
    db: impl sqlx::PgExecutor<'_> + Copy,
    account_id: i64,
    state: &AppState,
) -> Result<Option<CredentialAccount>, sqlx::Error> {
    let row: Option<AccountRow> = sqlx::query_as(concat!(
        "SELECT ",
        account_columns!(),
        " FROM accounts a WHERE a.id = $1"
    ))
    .bind(account_id)
    .fetch_optional(db)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let user: Option<UserSettingsRow> = sqlx::query_as(
        "SELECT u.role, u.default_privacy, u.default_sensitive, u.default_language, \
                (SELECT count(*) FROM follow_requests r WHERE r.target_account_id = u.account_id) \
                    AS follow_requests_count \
         FROM users u WHERE u.account_id = $1",
    )
    .bind(account_id)
    .fetch_optional(db)
    .await?;
    Ok(user.map(|user| credential_account_json(&row, &user, state)))
}

/// Visible accounts (not suspended) by id, in the order of `ids`; unknown ids are skipped.
pub async fn load_accounts(
    db: impl sqlx::PgExecutor<'_>,
    ids: &[i64],
    state: &AppState,
) -> Result<Vec<Account>, sqlx::Error> {
    let rows: Vec<AccountRow> = sqlx::query_as(concat!(
        "SELECT ",
        account_columns!(),
        " FROM unnest($1::bigint[]) WITH ORDINALITY AS wanted(id, ord) \
          JOIN accounts a ON a.id = wanted.id \
          WHERE a.suspended_at IS NULL ORDER BY wanted.ord"
    ))
    .bind(ids)
    .fetch_all(db)
    .await?;
    Ok(rows.iter().map(|r| account_json(r, state)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::types::chrono::TimeZone;

    #[test]
    fn creation_times_are_rounded_to_the_day() {
        let t = Utc.with_ymd_and_hms(2026, 11, 28, 23, 59, 58).unwrap();
        assert_eq!(midnight(t), "2026-11-28T00:00:00.000Z");
        assert_eq!(iso8601(t), "2026-11-28T23:59:58.000Z");
        // Milliseconds, cut as Mastodon cuts them (not rounded).
        let t = t + chrono::TimeDelta::nanoseconds(210_987_654);
        assert_eq!(iso8601(t), "2026-11-28T23:59:58.210Z");
    }

    #[test]
    fn plain_users_get_the_everyone_role() {
        let r = Role::of("user");
        assert_eq!((r.id.as_str(), r.permissions.as_str()), ("-99", "65536"));
        assert_eq!(Role::of("moderator").permissions, "1308");
        assert_eq!(Role::of("owner").name, "Owner");
    }
}
