//! The `federation.deliver` job: one activity POSTed to one inbox, signed by its actor.

use std::time::Instant;

use axum::body::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::{info, warn};

use super::{breaker, failures};
use crate::federation::fetch::FetchError;
use crate::federation::keys::{self, Signer};
use crate::federation::urls;
use crate::jobs::{self, JobError};
use crate::state::AppState;

pub const KIND: &str = "federation.deliver";

/// Mastodon's `ActivityPub::DeliveryWorker` retries: 16 tries, about two to three days of
/// back-off.
pub const MAX_RETRIES: u32 = 16;

#[derive(Debug, Serialize, Deserialize)]
pub struct Delivery {
    /// The local account whose key signs (the activity's actor).
    pub account_id: i64,
    pub inbox: String,
    /// The activity exactly as it is sent, `@context` included.
    pub activity: Value,
}

/// What an answer means for the delivery.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// The peer answered and will never take it (Mastodon: a 4xx other than 401, 408 and
    /// 429, or 501): no retry, but the domain is alive.
    Refused,
    /// Anything else (5xx, a redirect, a throttle, no answer): retried.
    Failed,
}

pub fn outcome(status: u16) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered,
        401 | 408 | 429 => Outcome::Failed,
        400..=499 | 501 => Outcome::Refused,
        _ => Outcome::Failed,
    }
}

async fn signer(state: &AppState, account_id: i64) -> Result<Signer, JobError> {
    let username: Option<String> =
        sqlx::query_scalar("SELECT username FROM accounts WHERE id = $1 AND domain IS NULL")
            .bind(account_id)
            .fetch_optional(state.db.reader())
            .await?;
    let Some(username) = username else {
        return Err(JobError::permanent(anyhow::anyhow!(
            "account {account_id} is gone or not local"
        )));
    };
    let pair = keys::account_key(&state.db, account_id).await?;
    Ok(Signer::new(
        urls::key_id(state, &username),
        &pair.private_pem,
    )?)
}

pub async fn run(state: AppState, args: Value) -> Result<(), JobError> {
    let job: Delivery = jobs::args(args)?;
    let domain = crate::federation::remote::origin(&job.inbox)
        .ok_or_else(|| JobError::permanent(anyhow::anyhow!("invalid inbox {}", job.inbox)))?;
    // A suspended domain (or one outside limited mode's allowlist) gets nothing from us.
    if crate::federation::domain_policy::of(&state).refuses_url(&job.inbox) {
        info!(%domain, "delivery dropped: domain blocked by the federation policy");
        return Ok(());
    }
    // Queued before the domain was found dead, or retried since: dropped like new ones.
    if failures::is_unavailable(&state.db, &domain).await? {
        info!(%domain, "delivery dropped: domain unavailable");
        return Ok(());
    }
    let breakers = breaker::breakers();
    if !breakers.allows(&job.inbox, Instant::now()) {
        return Err(JobError::retry(anyhow::anyhow!(
            "{}: circuit open after repeated failures",
            job.inbox
        )));
    }
    let signer = signer(&state, job.account_id).await?;
    let body = Bytes::from(serde_json::to_vec(&job.activity)?);
    let fetcher = crate::federation::fetcher(&state)?;
    let result = fetcher.post_activity(&job.inbox, body, &signer).await;
    let status = match result {
        Ok(status) => status,
        // An inbox on a private address, or not a URL, will never become deliverable.
        Err(e @ (FetchError::Forbidden(_) | FetchError::InvalidUrl(_))) => {
            return Err(JobError::permanent(e));
        }
        Err(e) => {
            breakers.failure(&job.inbox, Instant::now());
            failures::record_failure(&state.db, &domain).await?;
            return Err(JobError::retry(anyhow::anyhow!(
                "delivery to {} failed: {e}",
                job.inbox
            )));
        }
    };
    match outcome(status) {
        Outcome::Failed => breakers.failure(&job.inbox, Instant::now()),
        Outcome::Delivered | Outcome::Refused => breakers.success(&job.inbox),
    }
    match outcome(status) {
        Outcome::Delivered => {
            failures::reset(&state.db, &domain).await?;
            Ok(())
        }
        Outcome::Refused => {
            failures::reset(&state.db, &domain).await?;
            if status == 410 {
                gone(&state, &job.inbox).await?;
            }
            Err(JobError::permanent(anyhow::anyhow!(
                "{} refused the delivery: {status}",
                job.inbox
            )))
        }
        Outcome::Failed => {
            if failures::record_failure(&state.db, &domain).await? {
                warn!(%domain, "domain marked unavailable after failing on {} days", failures::FAILURE_DAYS);
            }
            Err(JobError::retry(anyhow::anyhow!(
                "{} answered {status}",
                job.inbox
            )))
        }
    }
}

/// A personal inbox answering 410 Gone: its account was deleted there. Its follows of our
/// accounts go (nothing more will reach it); the account row stays for its statuses.
async fn gone(state: &AppState, inbox: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM follows WHERE account_id IN \
             (SELECT id FROM accounts WHERE domain IS NOT NULL AND inbox_url = $1)",
    )
    .bind(inbox)
    .execute(state.db.primary())
    .await
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified_as_mastodon_does() {
        for ok in [200, 201, 202, 204] {
            assert_eq!(outcome(ok), Outcome::Delivered);
        }
        for refused in [400, 403, 404, 410, 422, 501] {
            assert_eq!(outcome(refused), Outcome::Refused, "{refused}");
        }
        for retried in [301, 302, 401, 408, 429, 500, 502, 503] {
            assert_eq!(outcome(retried), Outcome::Failed, "{retried}");
        }
    }
}
