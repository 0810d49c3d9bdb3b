//! Mastodon's `Notification` entity.

use std::collections::HashMap;

use serde::Serialize;
use sqlx::PgPool;
use sqlx::types::chrono::{DateTime, Utc};

use super::account::{Account, iso8601, load_accounts};
use super::status::{Status, load_statuses_from};
use crate::state::AppState;

#[derive(Clone, Debug, Serialize)]
pub struct Notification {
    pub id: String,
    pub r#type: String,
    pub created_at: String,
    pub group_key: String,
    pub account: Account,
    /// Only on the kinds that are about a status, as in Mastodon.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct NotificationRow {
    pub id: i64,
    pub account_id: i64,
    pub from_account_id: i64,
    pub r#type: String,
    pub status_id: Option<i64>,
    pub created_at: DateTime<Utc>,
}

/// Mastodon's `group_key`: favourites and boosts of one status, and follows, within the
/// same hour form a group (for clients that group them); everything else stands alone.
fn group_key(row: &NotificationRow) -> String {
    let hour = row.created_at.timestamp().div_euclid(3600);
    match (row.r#type.as_str(), row.status_id) {
        (kind @ ("favourite" | "reblog"), Some(status)) => format!("{kind}-{status}-{hour}"),
        ("follow", _) => format!("follow-{hour}"),
        _ => format!("ungrouped-{}", row.id),
    }
}

/// The notifications `rows` (all of one recipient) as that recipient sees them, in the
/// same order. One whose account or status they can no longer see is left out.
pub async fn notifications_json(
    db: &PgPool,
    state: &AppState,
    rows: &[NotificationRow],
) -> Result<Vec<Notification>, sqlx::Error> {
    let Some(recipient) = rows.first().map(|r| r.account_id) else {
        return Ok(Vec::new());
    };
    let mut account_ids: Vec<i64> = rows.iter().map(|r| r.from_account_id).collect();
    account_ids.sort_unstable();
    account_ids.dedup();
    let accounts: HashMap<String, Account> = load_accounts(db, &account_ids, state)
        .await?
        .into_iter()
        .map(|a| (a.id.clone(), a))
        .collect();
    let status_ids: Vec<i64> = rows.iter().filter_map(|r| r.status_id).collect();
    let statuses: HashMap<String, Status> =
        load_statuses_from(db, state, &status_ids, Some(recipient))
            .await?
            .into_iter()
            .map(|s| (s.id.clone(), s))
            .collect();
    Ok(rows
        .iter()
        .filter_map(|row| {
            let account = accounts.get(&row.from_account_id.to_string())?.clone();
            let status = match row.status_id {
                Some(id) => Some(statuses.get(&id.to_string())?.clone()),
                None => None,
            };
            Some(Notification {
                id: row.id.to_string(),
                r#type: row.r#type.clone(),
                created_at: iso8601(row.created_at),
                group_key: group_key(row),
                account,
                status,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::types::chrono::TimeZone;

    fn row(kind: &str, status_id: Option<i64>, minute: u32) -> NotificationRow {
        NotificationRow {
            id: 77,
            account_id: 1,
            from_account_id: 2,
            r#type: kind.into(),
            status_id,
            created_at: Utc.with_ymd_and_hms(2026, 11, 28, 10, minute, 0).unwrap(),
        }
    }

    #[test]
    fn favourites_of_a_status_group_by_hour_and_mentions_stand_alone() {
        assert_eq!(
            group_key(&row("favourite", Some(5), 1)),
            group_key(&row("favourite", Some(5), 59))
        );
        assert_ne!(
            group_key(&row("favourite", Some(5), 1)),
            group_key(&row("favourite", Some(6), 1))
        );
        assert_ne!(
            group_key(&row("favourite", Some(5), 1)),
            group_key(&row("reblog", Some(5), 1))
        );
        assert_eq!(group_key(&row("mention", Some(5), 1)), "ungrouped-77");
        assert!(group_key(&row("follow", None, 1)).starts_with("follow-"));
    }
}
