//! Reading ActivityStreams documents, whose properties come in several shapes (a string,
//! an object with an `id` or `href`, a list of either), and the actor document itself.

use serde_json::Value;

use super::origin;
use crate::text;

/// Actor types an account can be made of.
pub const ACTOR_TYPES: [&str; 5] = ["Person", "Service", "Application", "Group", "Organization"];

/// Mastodon's hard limits for remote profiles (the migration's checks).
const DISPLAY_NAME_MAX: usize = 100;
const NOTE_MAX: usize = 10_000;
const FIELDS_MAX: usize = 16;

/// The id of a property: a string, or the `id` of an embedded object.
pub fn id_of(value: &Value) -> Option<&str> {
    match value {
        Value::String(s) => Some(s),
        Value::Object(o) => o.get("id").and_then(Value::as_str),
        Value::Array(list) => list.first().and_then(id_of),
        _ => None,
    }
}

/// The URL of a link-like property (`url`, `icon`): a string, an object's `href` or
/// `url`, the first of a list; http(s) only.
pub fn url_of(value: &Value) -> Option<String> {
    let found = match value {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("href").or_else(|| o.get("url")).and_then(url_of),
        Value::Array(list) => list.iter().find_map(url_of),
        _ => None,
    }?;
    origin(&found).map(|_| found)
}

/// Every id of a property that may be one value or a list (`to`, `cc`).
pub fn ids(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::Array(list)) => list.iter().filter_map(id_of).map(str::to_string).collect(),
        Some(v) => id_of(v).map(str::to_string).into_iter().collect(),
        None => Vec::new(),
    }
}

/// The `type` of an object (the first one when a list).
pub fn type_of(value: &Value) -> Option<&str> {
    match value.get("type")? {
        Value::String(s) => Some(s),
        Value::Array(list) => list.first().and_then(Value::as_str),
        _ => None,
    }
}

/// `text` cut to `max` characters.
pub fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// Sanitized HTML of at most `max` characters (cut before sanitizing, so that the
/// sanitizer closes what the cut left open; escaping can lengthen it, hence the margin).
pub fn sanitized(html: &str, max: usize) -> String {
    let clean = text::sanitize(&truncate(html, max * 9 / 10));
    if clean.chars().count() <= max {
        clean
    } else {
        text::escape(&truncate(&strip_tags(&clean), max / 6))
    }
}

/// The text of some HTML, for fields that are plain text (display names).
pub fn strip_tags(html: &str) -> String {
    let clean = text::sanitize(html);
    let mut out = String::new();
    let mut in_tag = false;
    for c in clean.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// What an actor document says, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Actor {
    pub uri: String,
    pub actor_type: String,
    pub username: String,
    /// `host[:port]` of the id: the account's domain.
    pub domain: String,
    pub display_name: String,
    /// Sanitized HTML.
    pub note: String,
    pub url: Option<String>,
    pub inbox_url: String,
    pub shared_inbox_url: Option<String>,
    pub outbox_url: Option<String>,
    pub followers_url: Option<String>,
    pub following_url: Option<String>,
    pub featured_url: Option<String>,
    pub avatar_url: Option<String>,
    pub header_url: Option<String>,
    pub locked: bool,
    pub discoverable: bool,
    /// `(name, value)`: plain-text names, sanitized HTML values.
    pub fields: Vec<(String, String)>,
    pub moved_to: Option<String>,
}

/// Validates an actor document fetched for `uri` (the fetcher has checked that its id is
/// the URL it came from): the id must be `uri` itself, its type an actor's, its username
/// and inbox present, its endpoints http(s).
pub fn actor(doc: &Value, uri: &str) -> Result<Actor, String> {
    let str_at = |k: &str| doc.get(k).and_then(Value::as_str);
    let id = str_at("id").ok_or("no id")?;
    if id != uri {
        return Err(format!("actor id {id} is not {uri}"));
    }
    let domain = origin(id).ok_or("actor id is not an http(s) URL")?;
    let actor_type = type_of(doc).ok_or("no type")?;
    if !ACTOR_TYPES.contains(&actor_type) {
        return Err(format!("{actor_type} is not an actor type"));
    }
    let username = str_at("preferredUsername")
        .map(str::trim)
        .filter(|u| !u.is_empty() && u.chars().count() <= 2048 && !u.contains(['@', '/', ' ']))
        .ok_or("no usable preferredUsername")?;
    let endpoint = |k: &str| doc.get(k).and_then(id_of).filter(|u| origin(u).is_some());
    let inbox_url = endpoint("inbox").ok_or("no inbox")?.to_string();
    let shared_inbox_url = doc
        .get("endpoints")
        .and_then(|e| e.get("sharedInbox"))
        .and_then(Value::as_str)
        .filter(|u| origin(u).is_some())
        .map(str::to_string);
    let fields = match doc.get("attachment") {
        Some(Value::Array(list)) => list
            .iter()
            .filter(|a| type_of(a) == Some("PropertyValue"))
            .filter_map(|a| {
                let name = a.get("name")?.as_str()?;
                let value = a.get("value")?.as_str()?;
                Some((truncate(&strip_tags(name), 255), sanitized(value, 2047)))
            })
            .take(FIELDS_MAX)
            .collect(),
        _ => Vec::new(),
    };
    let image = |k: &str| doc.get(k).and_then(url_of);
    Ok(Actor {
        uri: id.to_string(),
        actor_type: actor_type.to_string(),
        username: username.to_string(),
        domain,
        display_name: truncate(
            strip_tags(str_at("name").unwrap_or_default()).trim(),
            DISPLAY_NAME_MAX,
        ),
        note: sanitized(str_at("summary").unwrap_or_default(), NOTE_MAX),
        url: doc.get("url").and_then(url_of),
        inbox_url,
        shared_inbox_url,
        outbox_url: endpoint("outbox").map(str::to_string),
        followers_url: endpoint("followers").map(str::to_string),
        following_url: endpoint("following").map(str::to_string),
        featured_url: endpoint("featured").map(str::to_string),
        avatar_url: image("icon"),
        header_url: image("image"),
        locked: doc
            .get("manuallyApprovesFollowers")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        discoverable: doc
            .get("discoverable")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        fields,
        moved_to: doc.get("movedTo").and_then(id_of).map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Value {
        json!({
            "id": "https://m.example/users/bob", "type": "Person",
            "preferredUsername": "bob", "name": "Bob <b>B</b>",
            "summary": "<p>hi <script>alert(1)</script><a href=\"https://x.example\">x</a></p>",
            "inbox": "https://m.example/users/bob/inbox",
            "endpoints": {"sharedInbox": "https://m.example/inbox"},
            "icon": {"type": "Image", "url": "https://files.m.example/a.png"},
            "image": [{"type": "Image", "url": "https://files.m.example/h.png"}],
            "url": "https://m.example/@bob", "manuallyApprovesFollowers": true,
            "attachment": [{"type": "PropertyValue", "name": "Site",
                            "value": "<a href=\"https://b.example\" onclick=\"x()\">b</a>"}]
        })
    }

    #[test]
    fn actors_are_read_and_sanitized() {
        let a = actor(&doc(), "https://m.example/users/bob").unwrap();
        assert_eq!(a.username, "bob");
        assert_eq!(a.domain, "m.example");
        assert_eq!(a.display_name, "Bob B");
        assert!(!a.note.contains("script") && a.note.contains("https://x.example"));
        assert_eq!(
            a.shared_inbox_url.as_deref(),
            Some("https://m.example/inbox")
        );
        assert_eq!(
            a.avatar_url.as_deref(),
            Some("https://files.m.example/a.png")
        );
        assert_eq!(
            a.header_url.as_deref(),
            Some("https://files.m.example/h.png")
        );
        assert!(a.locked);
        assert_eq!(a.fields.len(), 1);
        assert!(!a.fields[0].1.contains("onclick"));
    }

    #[test]
    fn broken_actors_are_refused() {
        assert!(actor(&doc(), "https://m.example/users/alice").is_err());
        for (k, v) in [
            ("type", json!("Note")),
            ("preferredUsername", json!("")),
            ("inbox", json!("javascript:alert(1)")),
        ] {
            let mut d = doc();
            d[k] = v;
            assert!(actor(&d, "https://m.example/users/bob").is_err(), "{k}");
        }
    }
}
