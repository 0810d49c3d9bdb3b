//! WebFinger (RFC 7033) and host-meta (RFC 6415): how a peer turns `@alice@our.domain`
//! into the actor URL to fetch.

use crate::federation::urls;
use crate::state::AppState;
use serde_json::{Value, json};

/// What a `resource` names, when it names something of ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    Account(String),
    InstanceActor,
}

/// `acct:alice@domain` (with or without `acct:`, `@` prefixed or not), the actor URL
/// `https://domain/users/alice`, or the profile URL `https://domain/@alice`. The domain
/// must be ours (case-insensitive, a trailing dot ignored). `Err` for a resource that
/// cannot be read at all (400); `Ok(None)` for one that is not ours (404).
pub fn parse_resource(resource: &str, domain: &str) -> Result<Option<Resource>, &'static str> {
    let resource = resource.trim();
    if resource.is_empty() {
        return Err("resource is required");
    }
    let ours = |host: &str| {
        host.trim_end_matches('.')
            .eq_ignore_ascii_case(domain.trim_end_matches('.'))
    };
    if resource.starts_with("https://") || resource.starts_with("http://") {
        let Ok(url) = url::Url::parse(resource) else {
            return Err("resource is not a valid URL");
        };
        // Host and port together: a domain with a port (test servers on loopback) names
        // only URLs on that port, a bare one only URLs on the scheme's default port.
        let authority = url.host_str().map(|host| match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        });
        if !authority.as_deref().is_some_and(ours) {
            return Ok(None);
        }
        let path = url.path().trim_end_matches('/');
        if path == "/actor" {
            return Ok(Some(Resource::InstanceActor));
        }
        let name = path
            .strip_prefix("/users/")
            .or_else(|| path.strip_prefix("/@"));
        return Ok(name
            .filter(|n| valid_username(n))
            .map(|n| Resource::Account(n.to_string())));
    }
    let acct = resource.strip_prefix("acct:").unwrap_or(resource);
    let acct = acct.strip_prefix('@').unwrap_or(acct);
    let Some((user, host)) = acct.rsplit_once('@') else {
        return Err("resource must be acct:user@domain or a URL");
    };
    if !ours(host) {
        return Ok(None);
    }
    if user.eq_ignore_ascii_case(domain) {
        return Ok(Some(Resource::InstanceActor));
    }
    Ok(valid_username(user).then(|| Resource::Account(user.to_string())))
}

fn valid_username(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 30
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-')
}

pub fn account_jrd(state: &AppState, username: &str) -> Value {
    let actor = urls::actor(state, username);
    let profile = urls::profile(state, username);
    json!({
        "subject": format!("acct:{username}@{}", state.config.domain),
        "aliases": [profile, actor],
        "links": [
            {"rel": "http://webfinger.net/rel/profile-page", "type": "text/html", "href": profile},
            {"rel": "self", "type": "application/activity+json", "href": actor},
            {"rel": "http://ostatus.org/schema/1.0/subscribe",
             "template": format!("{}/authorize_interaction?uri={{uri}}", state.base_url())},
        ]
    })
}

pub fn instance_actor_jrd(state: &AppState) -> Value {
    let actor = urls::instance_actor(state);
    json!({
        "subject": format!("acct:{0}@{0}", state.config.domain),
        "aliases": [actor],
        "links": [
            {"rel": "http://webfinger.net/rel/profile-page", "type": "text/html",
             "href": format!("{}/about/more?instance_actor=true", state.base_url())},
            {"rel": "self", "type": "application/activity+json", "href": actor},
        ]
    })
}

pub fn host_meta(state: &AppState) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <XRD xmlns=\"http://docs.oasis-open.org/ns/xri/xrd-1.0\">\n  \
         <Link rel=\"lrdd\" template=\"{}/.well-known/webfinger?resource={{uri}}\"/>\n\
         </XRD>\n",
        state.base_url()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_are_read_in_every_form_peers_send() {
        let d = "social.example";
        let alice = Some(Resource::Account("alice".into()));
        for r in [
            "acct:alice@social.example",
            "alice@social.example",
            "acct:@alice@SOCIAL.example",
            "acct:alice@social.example.",
            "https://social.example/users/alice",
            "https://social.example/@alice",
        ] {
            assert_eq!(parse_resource(r, d), Ok(alice.clone()), "{r}");
        }
        assert_eq!(
            parse_resource("acct:social.example@social.example", d),
            Ok(Some(Resource::InstanceActor))
        );
        assert_eq!(
            parse_resource("https://social.example/actor", d),
            Ok(Some(Resource::InstanceActor))
        );
        for other in [
            "acct:alice@other.example",
            "acct:alice@social.example.evil.example",
            "https://other.example/users/alice",
            "https://social.example:8443/users/alice",
            "https://social.example/users/al%20ice",
            "https://social.example/statuses/1",
        ] {
            assert_eq!(parse_resource(other, d), Ok(None), "{other}");
        }
        let on_a_port = "127.0.0.1:3000";
        assert_eq!(
            parse_resource("http://127.0.0.1:3000/users/alice", on_a_port),
            Ok(alice.clone())
        );
        assert_eq!(
            parse_resource("acct:alice@127.0.0.1:3000", on_a_port),
            Ok(alice.clone())
        );
        for other in [
            "http://127.0.0.1:3001/users/alice",
            "http://127.0.0.1/users/alice",
            "acct:alice@127.0.0.1",
        ] {
            assert_eq!(parse_resource(other, on_a_port), Ok(None), "{other}");
        }
        for bad in ["", "alice", "https://"] {
            assert!(parse_resource(bad, d).is_err(), "{bad}");
        }
    }
}
