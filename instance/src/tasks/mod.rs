//! The application's background jobs (fan-out, mail, maintenance), registered with the
//! worker's job registry. Each module owns its kinds, their arguments and the helpers the
//! API calls to queue them after a commit.

pub mod mail;
pub mod maintenance;
pub mod media;
pub mod polls;
pub mod preview_cards;
pub mod remote_media;
pub mod statuses_count;
pub mod timeline;

/// Registers every task kind (and the periodic ones) with the worker.
pub fn register(registry: &mut crate::jobs::Registry) {
    timeline::register(registry);
    mail::register(registry);
    maintenance::register(registry);
    polls::register(registry);
    preview_cards::register(registry);
    remote_media::register(registry);
    media::register(registry);
    statuses_count::register(registry);
    crate::federation::ingress::register(registry);
    crate::search::jobs::register(registry);
    crate::federation::delivery::register(registry);
    crate::federation::domain_policy::register(registry);
}

/// After a remote status was stored: its link preview and the copy of its media.
pub async fn remote_status_stored(state: &crate::state::AppState, id: i64) {
    preview_cards::enqueue(state, id).await;
    remote_media::enqueue(state, id).await;
}
