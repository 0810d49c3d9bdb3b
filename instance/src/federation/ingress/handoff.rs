//! The hand-off from the inbox to the `ingress` queue, where workers process activities
//! (the inbox only verifies). One function, so that what a job carries is decided here.

use serde_json::{Value, json};

use super::JOB_KIND;
use crate::jobs::{self, Queue};
use crate::state::AppState;

/// Queues a verified activity: `signer` is the actor whose key verified it (already
/// checked to be the activity's actor), `inbox_account` the local account whose personal
/// inbox received it (`None` for the shared inbox).
pub async fn hand_off(
    state: &AppState,
    activity: Value,
    signer: &str,
    inbox_account: Option<i64>,
) -> anyhow::Result<()> {
    let args = json!({
        "activity": activity,
        "signer": signer,
        "inbox_account_id": inbox_account.map(|id| id.to_string()),
    });
    jobs::enqueue(state, Queue::Ingress, JOB_KIND, args).await
}
