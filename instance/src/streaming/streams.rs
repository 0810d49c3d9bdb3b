//! Mastodon's stream names (`user`, `public:local:media`, `hashtag` with a tag...), the Redis
//! channels behind each, and who may open them. Pure, apart from nothing: the list owner
//! check is left to the caller, which has the database.

use crate::auth::Scopes;
use crate::events::channel::{self, Scope};

/// What a client asked for, from a WebSocket `subscribe` message, a `?stream=` query or an
/// SSE path.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Request {
    pub stream: String,
    pub tag: Option<String>,
    pub list: Option<String>,
}

/// A stream the viewer may open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The `stream` field of every message: `["user"]`, `["hashtag", "Rust"]`, `["list", "7"]`.
    pub name: Vec<String>,
    pub channels: Vec<String>,
    /// Public and hashtag streams: the viewer's chosen languages apply, as on Mastodon (a
    /// home or list feed was already shaped by the fan-out).
    pub public: bool,
    /// A list stream: opened only if this list belongs to the viewer.
    pub list: Option<i64>,
}

impl Plan {
    /// One subscription per set of channels, as Mastodon keys them: subscribing twice to
    /// the same stream is a no-op.
    pub fn key(&self) -> String {
        self.channels.join(";")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    UnknownStream,
    NoTag,
    List,
    Scope,
}

impl Refusal {
    pub fn status(self) -> u16 {
        match self {
            Refusal::UnknownStream | Refusal::NoTag => 400,
            Refusal::List => 404,
            Refusal::Scope => 401,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Refusal::UnknownStream => "Unknown stream type",
            Refusal::NoTag => "No tag for stream provided",
            Refusal::List => "Not authorized to stream this list",
            Refusal::Scope => "Access token does not cover required scopes",
        }
    }
}

/// The stream an SSE path serves (`/api/v1/streaming/<rest>`), `None` for an unknown path.
pub fn from_path(rest: &str, only_media: bool) -> Option<&'static str> {
    Some(match (rest, only_media) {
        ("user", _) => "user",
        ("user/notification", _) => "user:notification",
        ("public", false) => "public",
        ("public", true) => "public:media",
        ("public/local", false) => "public:local",
        ("public/local", true) => "public:local:media",
        ("public/remote", false) => "public:remote",
        ("public/remote", true) => "public:remote:media",
        ("hashtag", _) => "hashtag",
        ("hashtag/local", _) => "hashtag:local",
        ("list", _) => "list",
        ("direct", _) => "direct",
        _ => return None,
    })
}

/// Mastodon's scope rule: public and hashtag streams need a token but no scope; the
/// notification stream needs `read:notifications`; every other stream `read:statuses`
/// (`read` grants both).
pub fn plan(account_id: i64, scopes: &Scopes, req: &Request) -> Result<Plan, Refusal> {
    let need = |scope| {
        if scopes.allows(scope) {
            Ok(())
        } else {
            Err(Refusal::Scope)
        }
    };
    let simple = |channels: Vec<String>, public| Plan {
        name: vec![req.stream.clone()],
        channels,
        public,
        list: None,
    };
    let public = |scope, media| Ok(simple(vec![channel::public(scope, media)], true));
    match req.stream.as_str() {
        "user" => {
            need("read:statuses")?;
            let mut channels = vec![channel::user(account_id)];
            // The user stream carries notifications only for a token that may read them.
            if scopes.allows("read:notifications") {
                channels.push(channel::notifications(account_id));
            }
            Ok(simple(channels, false))
        }
        "user:notification" => {
            need("read:notifications")?;
            Ok(simple(vec![channel::notifications(account_id)], false))
        }
        "public" => public(Scope::All, false),
        "public:media" => public(Scope::All, true),
        "public:local" => public(Scope::Local, false),
        "public:local:media" => public(Scope::Local, true),
        "public:remote" => public(Scope::Remote, false),
        "public:remote:media" => public(Scope::Remote, true),
        "hashtag" | "hashtag:local" => {
            let tag = req
                .tag
                .as_deref()
                .map(|t| t.strip_prefix('#').unwrap_or(t))
                .filter(|t| !t.is_empty())
                .ok_or(Refusal::NoTag)?;
            let local = req.stream == "hashtag:local";
            Ok(Plan {
                name: vec![req.stream.clone(), req.tag.clone().unwrap_or_default()],
                channels: vec![channel::hashtag(tag, local)],
                public: true,
                list: None,
            })
        }
        "list" => {
            need("read:statuses")?;
            let raw = req.list.clone().unwrap_or_default();
            let id: i64 = raw.trim().parse().map_err(|_| Refusal::List)?;
            Ok(Plan {
                name: vec!["list".into(), raw],
                channels: vec![channel::list(id)],
                public: false,
                list: Some(id),
            })
        }
        "direct" => {
            need("read:statuses")?;
            Ok(simple(vec![channel::direct(account_id)], false))
        }
        _ => Err(Refusal::UnknownStream),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(stream: &str, tag: Option<&str>, list: Option<&str>) -> Request {
        Request {
            stream: stream.into(),
            tag: tag.map(Into::into),
            list: list.map(Into::into),
        }
    }

    fn scopes(s: &str) -> Scopes {
        Scopes::parse(s).unwrap()
    }

    #[test]
    fn each_stream_maps_to_mastodons_channels() {
        let read = scopes("read");
        let cases = [
            (
                req("user", None, None),
                vec!["timeline:7", "timeline:7:notifications"],
            ),
            (
                req("user:notification", None, None),
                vec!["timeline:7:notifications"],
            ),
            (req("public", None, None), vec!["timeline:public"]),
            (
                req("public:media", None, None),
                vec!["timeline:public:media"],
            ),
            (
                req("public:local:media", None, None),
                vec!["timeline:public:local:media"],
            ),
            (
                req("public:remote", None, None),
                vec!["timeline:public:remote"],
            ),
            (
                req("hashtag", Some("#Rust"), None),
                vec!["timeline:hashtag:rust"],
            ),
            (
                req("hashtag:local", Some("rust"), None),
                vec!["timeline:hashtag:rust:local"],
            ),
            (req("list", None, Some("12")), vec!["timeline:list:12"]),
            (req("direct", None, None), vec!["timeline:direct:7"]),
        ];
        for (r, want) in cases {
            assert_eq!(plan(7, &read, &r).unwrap().channels, want, "{r:?}");
        }
        let tag = plan(7, &read, &req("hashtag", Some("Rust"), None)).unwrap();
        assert_eq!(tag.name, ["hashtag", "Rust"]);
        assert!(tag.public);
        let list = plan(7, &read, &req("list", None, Some("12"))).unwrap();
        assert_eq!(
            (list.name, list.list),
            (vec!["list".into(), "12".into()], Some(12))
        );
    }

    #[test]
    fn scopes_decide_as_on_mastodon() {
        let statuses = scopes("read:statuses");
        let notifications = scopes("read:notifications");
        let write = scopes("write");
        // read:statuses opens the user stream without its notifications.
        assert_eq!(
            plan(7, &statuses, &req("user", None, None))
                .unwrap()
                .channels,
            ["timeline:7"]
        );
        assert_eq!(
            plan(7, &statuses, &req("user:notification", None, None)),
            Err(Refusal::Scope)
        );
        assert!(plan(7, &notifications, &req("user:notification", None, None)).is_ok());
        assert_eq!(
            plan(7, &notifications, &req("direct", None, None)),
            Err(Refusal::Scope)
        );
        // Public streams need no scope at all (the token itself is checked earlier).
        assert!(plan(7, &write, &req("public:local", None, None)).is_ok());
        assert_eq!(
            plan(7, &write, &req("list", None, Some("1"))),
            Err(Refusal::Scope)
        );
    }

    #[test]
    fn bad_requests_are_named() {
        let read = scopes("read");
        assert_eq!(
            plan(7, &read, &req("nope", None, None)),
            Err(Refusal::UnknownStream)
        );
        assert_eq!(
            plan(7, &read, &req("hashtag", None, None)),
            Err(Refusal::NoTag)
        );
        assert_eq!(
            plan(7, &read, &req("hashtag", Some("#"), None)),
            Err(Refusal::NoTag)
        );
        assert_eq!(
            plan(7, &read, &req("list", None, Some("x"))),
            Err(Refusal::List)
        );
        assert_eq!(plan(7, &read, &req("list", None, None)), Err(Refusal::List));
    }

    #[test]
    fn sse_paths_name_streams() {
        assert_eq!(
            from_path("user/notification", false),
            Some("user:notification")
        );
        assert_eq!(from_path("public/local", true), Some("public:local:media"));
        assert_eq!(from_path("hashtag/local", true), Some("hashtag:local"));
        assert_eq!(from_path("health", false), None);
    }
}
