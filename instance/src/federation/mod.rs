//! ActivityPub federation, our own (the licence rules out the AGPL crates of this field):
//! actor keys, HTTP Signatures, the documents peers fetch, and the inbox.

mod authorized_fetch;
pub mod delivery;
pub mod documents;
pub mod domain_policy;
pub mod fetch;
mod inbox;
pub mod ingress;
pub mod keys;
pub mod remote;
pub mod remote_keys;
pub mod resolve;
mod routes;
pub mod signatures;
pub mod urls;

use std::sync::OnceLock;

pub use ingress::JOB_KIND as INGRESS_JOB;
pub use routes::routes;

use crate::state::AppState;

/// The process's outbound client for federation (connection pools are per client). The
/// configuration is the process's, so the first caller's settings are everyone's.
pub fn fetcher(state: &AppState) -> anyhow::Result<&'static fetch::Fetcher> {
    static FETCHER: OnceLock<fetch::Fetcher> = OnceLock::new();
    if let Some(f) = FETCHER.get() {
        return Ok(f);
    }
    let f = fetch::Fetcher::new(state.config.federation_allow_loopback)?
        .with_policy(domain_policy::of(state).clone());
    Ok(FETCHER.get_or_init(|| f))
}

/// The instance actor's signer, for fetches.
pub async fn instance_signer(state: &AppState) -> anyhow::Result<keys::Signer> {
    let pair = keys::instance_actor_key(&state.db).await?;
    keys::Signer::new(urls::instance_key_id(state), &pair.private_pem)
}
