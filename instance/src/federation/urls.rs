//! The URLs of local ActivityPub objects, Mastodon's layout: peers and users recognise it,
//! and ids must never change once published.

use crate::state::AppState;

pub const PUBLIC: &str = "https://www.w3.org/ns/activitystreams#Public";

pub fn actor(state: &AppState, username: &str) -> String {
    format!("{}/users/{username}", state.base_url())
}

pub fn key_id(state: &AppState, username: &str) -> String {
    format!("{}#main-key", actor(state, username))
}

pub fn profile(state: &AppState, username: &str) -> String {
    format!("{}/@{username}", state.base_url())
}

pub fn followers(state: &AppState, username: &str) -> String {
    format!("{}/followers", actor(state, username))
}

pub fn status(state: &AppState, username: &str, id: i64) -> String {
    format!("{}/statuses/{id}", actor(state, username))
}

pub fn status_page(state: &AppState, username: &str, id: i64) -> String {
    format!("{}/{id}", profile(state, username))
}

pub fn shared_inbox(state: &AppState) -> String {
    format!("{}/inbox", state.base_url())
}

pub fn instance_actor(state: &AppState) -> String {
    format!("{}/actor", state.base_url())
}

pub fn instance_key_id(state: &AppState) -> String {
    format!("{}#main-key", instance_actor(state))
}

/// The actor id of an account: ours for local ones; for remote ones, Mastodon's layout on
/// their host until remote accounts store the id they were fetched with.
pub fn account_actor(state: &AppState, username: &str, domain: Option<&str>) -> String {
    match domain {
        None => actor(state, username),
        Some(domain) => format!("https://{domain}/users/{username}"),
    }
}
