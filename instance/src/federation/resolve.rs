//! Finding remote accounts the user names: `user@domain` through WebFinger, actor URLs
//! directly, both stored through `remote::actor`. Used by account lookup, search with
//! `resolve=true`, and follows.

use serde_json::Value;
use tracing::debug;

use super::remote::{self, actor::ActorError};
use crate::state::AppState;

/// WebFinger's JRD and plain JSON, which some servers answer with.
const JRD_ACCEPT: &str = "application/jrd+json, application/json";

/// The account `username@domain` (a remote domain), from the database or else resolved
/// through WebFinger on `domain`. `None` when the peer does not know it or cannot be
/// reached; errors are our own (database).
pub async fn account_by_acct(
    state: &AppState,
    username: &str,
    domain: &str,
) -> Result<Option<i64>, sqlx::Error> {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    if username.is_empty() || domain.is_empty() || username.contains(['/', '?', '#', '@']) {
        return Ok(None);
    }
    let known: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM accounts WHERE domain = $1 AND lower(username) = lower($2)",
    )
    .bind(&domain)
    .bind(username)
    .fetch_optional(state.db.primary())
    .await?;
    if known.is_some() {
        return Ok(known);
    }
    let Some(href) = webfinger(state, username, &domain).await else {
        return Ok(None);
    };
    let Some(id) = account_by_url(state, &href).await? else {
        return Ok(None);
    };
    // The actor may live on another host than the handle's (split domains): that host must
    // confirm the handle, or any server could claim names on another's domain.
    let (stored_user, stored_domain): (String, Option<String>) =
        sqlx::query_as("SELECT username, domain FROM accounts WHERE id = $1")
            .bind(id)
            .fetch_one(state.db.primary())
            .await?;
    let same = stored_domain.as_deref() == Some(domain.as_str())
        && stored_user.eq_ignore_ascii_case(username);
    if same {
        return Ok(Some(id));
    }
    let confirmed = match &stored_domain {
        Some(d) => webfinger(state, &stored_user, d).await.as_deref() == Some(href.as_str()),
        None => false,
    };
    Ok(confirmed.then_some(id))
}

/// The account whose actor is at `url` (fetched and stored when unknown or stale); `None`
/// when the URL is not an actor or its server cannot be reached.
pub async fn account_by_url(state: &AppState, url: &str) -> Result<Option<i64>, sqlx::Error> {
    match remote::actor::by_uri(state, url).await {
        Ok(id) => Ok(Some(id)),
        Err(ActorError::Database(e)) => Err(e),
        Err(e) => {
            debug!(error = %e, url, "cannot resolve an actor");
            Ok(None)
        }
    }
}

/// The actor URL WebFinger gives for `acct:username@domain`.
async fn webfinger(state: &AppState, username: &str, domain: &str) -> Option<String> {
    let scheme =
        if state.config.federation_allow_loopback && fedi_config::is_loopback_domain(domain) {
            // Test peers on loopback, allowed by the explicit test setting, speak plain HTTP.
            "http"
        } else {
            "https"
        };
    let mut url = url::Url::parse(&format!("{scheme}://{domain}/.well-known/webfinger")).ok()?;
    url.query_pairs_mut()
        .append_pair("resource", &format!("acct:{username}@{domain}"));
    let fetcher = super::fetcher(state).ok()?;
    let jrd = match fetcher.get_json(url.as_str(), JRD_ACCEPT).await {
        Ok(jrd) => jrd,
        Err(e) => {
            debug!(error = %e, domain, "WebFinger failed");
            return None;
        }
    };
    self_link(&jrd)
}

/// The `self` link of an ActivityPub type in a JRD.
fn self_link(jrd: &Value) -> Option<String> {
    jrd.get("links")?
        .as_array()?
        .iter()
        .find(|l| {
            l.get("rel").and_then(Value::as_str) == Some("self")
                && l.get("type")
                    .and_then(Value::as_str)
                    .is_some_and(super::fetch::is_activitypub_type)
        })
        .and_then(|l| l.get("href")?.as_str())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_self_link_must_be_activitypub() {
        let jrd = serde_json::json!({"links": [
            {"rel": "http://webfinger.net/rel/profile-page", "type": "text/html", "href": "https://m.example/@a"},
            {"rel": "self", "type": "text/html", "href": "https://m.example/wrong"},
            {"rel": "self", "type": "application/activity+json", "href": "https://m.example/users/a"},
        ]});
        assert_eq!(
            self_link(&jrd).as_deref(),
            Some("https://m.example/users/a")
        );
        let ld = serde_json::json!({"links": [{"rel": "self",
            "type": "application/ld+json; profile=\"https://www.w3.org/ns/activitystreams\"",
            "href": "https://g.example/users/b"}]});
        assert_eq!(self_link(&ld).as_deref(), Some("https://g.example/users/b"));
        assert_eq!(self_link(&serde_json::json!({"links": []})), None);
    }
}
