//! Outgoing federation: local actions become activities (`outgoing`), delivered one job per
//! inbox (`deliver`), signed by their actor, with Mastodon's retry policy, a circuit breaker
//! per inbox (`breaker`) and per-domain failure tracking (`failures`).
//!
//! The API calls the functions here after its transaction commits; they only queue a job.

mod activities;
mod breaker;
pub mod deliver;
pub mod failures;
mod outgoing;

pub use activities::follow_id;
pub use outgoing::{Outgoing, prepare_delete, send};

use crate::jobs::Registry;
use crate::state::AppState;

pub fn register(r: &mut Registry) {
    r.register(outgoing::KIND, outgoing::MAX_RETRIES, outgoing::run);
    r.register(deliver::KIND, deliver::MAX_RETRIES, deliver::run);
}

/// The server of `actor_uri` sent us a verified activity: its delivery failures are
/// forgotten and, if it was unavailable, deliveries to it resume. Failures are logged: the
/// activity itself was accepted.
pub async fn domain_answered(state: &AppState, actor_uri: &str) {
    let Some(domain) = crate::federation::remote::origin(actor_uri) else {
        return;
    };
    if let Err(e) = failures::reset(&state.db, &domain).await {
        tracing::warn!(error = %e, domain, "cannot reset a domain's delivery failures");
    }
}

/// A remote follow to be answered: the follower, the local account followed, and the id
/// of the `Follow` activity as received.
#[derive(Debug, Clone)]
pub struct IncomingFollow {
    pub follower_id: i64,
    pub target_id: i64,
    pub uri: String,
}

/// Sends `Accept` of `follow` to its remote follower (for the inbox, when it auto-accepts,
/// and for the API's authorization of a request).
pub async fn accept_follow(state: &AppState, follow: &IncomingFollow) {
    answer(state, follow, true).await;
}

/// Sends `Reject` of `follow` to its remote follower.
pub async fn reject_follow(state: &AppState, follow: &IncomingFollow) {
    answer(state, follow, false).await;
}

async fn answer(state: &AppState, follow: &IncomingFollow, accept: bool) {
    send(
        state,
        Outgoing::FollowAnswer {
            account_id: follow.target_id,
            follower_id: follow.follower_id,
            follow_uri: follow.uri.clone(),
            accept,
        },
    )
    .await;
}
