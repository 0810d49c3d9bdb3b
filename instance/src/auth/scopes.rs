//! OAuth2 scopes as Mastodon defines them: `read`, `write`, `follow`, `push`, `profile`, the
//! granular `read:statuses`-style forms, and `admin:read`/`admin:write` with theirs. A token
//! holding a parent scope holds all its children.

use std::collections::BTreeSet;
use std::fmt;

/// One scope an endpoint requires, such as `read:statuses`.
pub type Scope = &'static str;

const READ: &[&str] = &[
    "accounts",
    "blocks",
    "bookmarks",
    "favourites",
    "filters",
    "follows",
    "lists",
    "mutes",
    "notifications",
    "search",
    "statuses",
];
const WRITE: &[&str] = &[
    "accounts",
    "blocks",
    "bookmarks",
    "conversations",
    "favourites",
    "filters",
    "follows",
    "lists",
    "media",
    "mutes",
    "notifications",
    "reports",
    "statuses",
];
/// The deprecated `follow` scope stands for these.
const FOLLOW: &[&str] = &[
    "read:blocks",
    "write:blocks",
    "read:follows",
    "write:follows",
    "read:mutes",
    "write:mutes",
];
const ADMIN: &[&str] = &[
    "accounts",
    "reports",
    "domain_allows",
    "domain_blocks",
    "ip_blocks",
    "email_domain_blocks",
    "canonical_email_blocks",
];

/// Every scope the server knows, in Mastodon's order: for `scopes_supported`.
pub fn all() -> Vec<String> {
    let mut out: Vec<String> = ["read", "write"].map(String::from).to_vec();
    out.extend(WRITE.iter().map(|s| format!("write:{s}")));
    out.extend(READ.iter().map(|s| format!("read:{s}")));
    out.extend(["follow", "push", "profile", "admin:read"].map(String::from));
    out.extend(ADMIN.iter().map(|s| format!("admin:read:{s}")));
    out.push("admin:write".into());
    out.extend(ADMIN.iter().map(|s| format!("admin:write:{s}")));
    out
}

/// A set of granted scopes, as a token or an application holds them.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Scopes(BTreeSet<String>);

impl Scopes {
    /// Parses a space-separated list (`+` too, as some clients send); unknown scopes are an
    /// error naming them. An empty list means `read`, as in Mastodon.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut set = BTreeSet::new();
        for s in text.split([' ', '+']).filter(|s| !s.is_empty()) {
            if !known(s) {
                return Err(format!("unknown scope {s:?}"));
            }
            set.insert(s.to_string());
        }
        if set.is_empty() {
            set.insert("read".to_string());
        }
        Ok(Self(set))
    }

    /// Whether these scopes grant `required`.
    pub fn allows(&self, required: &str) -> bool {
        if self.0.contains(required) {
            return true;
        }
        if let Some((parent, _)) = required.rsplit_once(':')
            && self.0.contains(parent)
        {
            return true;
        }
        self.0.contains("follow") && FOLLOW.contains(&required)
    }

    /// Whether every scope of `self` is granted by `other` (an authorization may ask for no
    /// more than its application registered).
    pub fn within(&self, other: &Scopes) -> bool {
        self.0.iter().all(|s| other.allows(s))
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list: Vec<&str> = self.iter().collect();
        f.write_str(&list.join(" "))
    }
}

fn known(scope: &str) -> bool {
    match scope {
        "read" | "write" | "follow" | "push" | "profile" | "admin:read" | "admin:write" => true,
        _ => match scope.split_once(':') {
            Some(("read", s)) => READ.contains(&s),
            Some(("write", s)) => WRITE.contains(&s),
            Some(("admin", rest)) => match rest.split_once(':') {
                Some(("read" | "write", s)) => ADMIN.contains(&s),
                _ => false,
            },
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_grant_their_children_and_nothing_else() {
        let cases = [
            ("read", "read:statuses", true),
            ("read", "write:statuses", false),
            ("read:statuses", "read:statuses", true),
            ("read:statuses", "read:accounts", false),
            ("write", "write:media", true),
            ("follow", "write:follows", true),
            ("follow", "read:mutes", true),
            ("follow", "write:statuses", false),
            ("admin:read", "admin:read:accounts", true),
            ("admin:read", "admin:write:accounts", false),
            ("read write", "write:favourites", true),
            ("profile", "read:accounts", false),
            ("push", "push", true),
        ];
        for (granted, required, want) in cases {
            let s = Scopes::parse(granted).unwrap();
            assert_eq!(s.allows(required), want, "{granted} -> {required}");
        }
    }

    #[test]
    fn every_listed_scope_is_known_and_listed_once() {
        let list = all();
        for scope in &list {
            assert_eq!(
                Scopes::parse(scope).map(|s| s.to_string()).as_deref(),
                Ok(scope.as_str()),
                "{scope}"
            );
        }
        let set = Scopes::parse(&list.join(" ")).unwrap();
        assert_eq!(set.iter().count(), list.len(), "no duplicates");
        assert_eq!(list.len(), 45);
    }

    #[test]
    fn parsing_defaults_to_read_and_names_unknown_scopes() {
        assert_eq!(Scopes::parse("").unwrap().to_string(), "read");
        assert_eq!(
            Scopes::parse("write+read  follow").unwrap().to_string(),
            "follow read write"
        );
        let err = Scopes::parse("read sudo").unwrap_err();
        assert!(err.contains("sudo"), "{err}");
        assert!(Scopes::parse("read:nothing").is_err());
        assert!(Scopes::parse("admin:read:accounts").is_ok());
    }

    #[test]
    fn a_request_stays_within_what_the_application_registered() {
        let app = Scopes::parse("read write:statuses").unwrap();
        assert!(Scopes::parse("read:accounts").unwrap().within(&app));
        assert!(Scopes::parse("write:statuses read").unwrap().within(&app));
        assert!(!Scopes::parse("write").unwrap().within(&app));
        assert!(!Scopes::parse("follow").unwrap().within(&app));
    }
}
