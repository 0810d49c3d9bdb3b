//! Reading a Note (or Question, Article, Page) as the servers of the fediverse publish it:
//! what the ingress stores of a status, pure, so that golden documents of Mastodon,
//! GoToSocial, Akkoma and Misskey can be checked against it
//! (`tests/fixtures/federation/`). Every property may come as a value, an object or a
//! list; absent and `null` mean the same.

use serde_json::Value;

use super::parse;
use crate::federation::urls::PUBLIC;

/// Attachments kept per status (Mastodon's remote limit).
pub const MEDIA_MAX: usize = 4;

/// What a Note says, sanitized.
#[derive(Debug, Clone, PartialEq)]
pub struct Content {
    pub html: String,
    pub spoiler_text: String,
    pub sensitive: bool,
    pub language: Option<String>,
}

impl Content {
    pub fn of(doc: &Value) -> Self {
        let map = doc.get("contentMap").and_then(Value::as_object);
        // `content` first; some servers only send `contentMap` (any language's will do).
        let html = doc
            .get("content")
            .and_then(Value::as_str)
            .or_else(|| map.and_then(|m| m.values().find_map(Value::as_str)))
            .map(|c| parse::sanitized(c, 100_000))
            .unwrap_or_default();
        let spoiler_text = doc
            .get("summary")
            .and_then(Value::as_str)
            .map(|s| parse::truncate(parse::strip_tags(s).trim(), 10_000))
            .unwrap_or_default();
        let sensitive = doc
            .get("sensitive")
            .and_then(Value::as_bool)
            .unwrap_or(false)
            || !spoiler_text.is_empty();
        let language = map
            .and_then(|m| m.keys().next())
            .filter(|l| !l.is_empty() && l.len() <= 16 && *l != "und")
            .cloned();
        Self {
            html,
            spoiler_text,
            sensitive,
            language,
        }
    }
}

fn is_public(id: &str) -> bool {
    id == PUBLIC || id == "as:Public" || id == "Public"
}

/// Mastodon's reading of `to` / `cc`: public in `to`, unlisted in `cc`, followers-only when
/// addressed to the author's followers, else direct.
pub fn visibility(doc: &Value, followers_url: Option<&str>) -> &'static str {
    let to = parse::ids(doc.get("to"));
    let cc = parse::ids(doc.get("cc"));
    if to.iter().any(|i| is_public(i)) {
        "public"
    } else if cc.iter().any(|i| is_public(i)) {
        "unlisted"
    } else if to
        .iter()
        .chain(&cc)
        .any(|i| Some(i.as_str()) == followers_url || i.ends_with("/followers"))
    {
        "private"
    } else {
        "direct"
    }
}

/// The author: `attributedTo` as an id, an object, or a list of them (PeerTube lists the
/// channel too: the first actor that is a Person or Service wins, else the first).
pub fn author(doc: &Value) -> Option<&str> {
    match doc.get("attributedTo")? {
        Value::Array(list) => list
            .iter()
            .find(|a| matches!(parse::type_of(a), Some("Person" | "Service")))
            .or_else(|| list.first())
            .and_then(parse::id_of),
        other => parse::id_of(other),
    }
}

/// The `tag` property as a list (GoToSocial sends a lone tag as an object).
pub fn tags(doc: &Value) -> impl Iterator<Item = &Value> {
    match doc.get("tag") {
        Some(Value::Array(list)) => list.iter().collect::<Vec<_>>(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => Vec::new(),
    }
    .into_iter()
}

/// Actor ids of the `Mention` tags.
pub fn mention_hrefs(doc: &Value) -> Vec<String> {
    tags(doc)
        .filter(|t| parse::type_of(t) == Some("Mention"))
        .filter_map(|t| t.get("href").and_then(parse::id_of).map(str::to_string))
        .collect()
}

pub fn hashtags(doc: &Value) -> Vec<String> {
    let mut names: Vec<String> = tags(doc)
        .filter(|t| parse::type_of(t) == Some("Hashtag"))
        .filter_map(|t| t.get("name").and_then(Value::as_str))
        .map(|n| n.trim_start_matches('#').to_string())
        .filter(|n| {
            !n.is_empty()
                && n.chars().count() <= 256
                && n.chars().all(|c| c.is_alphanumeric() || c == '_')
        })
        .collect();
    names.sort_by_key(|n| n.to_lowercase());
    names.dedup_by_key(|n| n.to_lowercase());
    names.truncate(64);
    names
}

#[derive(Debug, Clone, PartialEq)]
pub struct Media {
    pub kind: &'static str,
    pub url: String,
    pub content_type: Option<String>,
    pub description: String,
    pub blurhash: Option<String>,
}

/// The attachments, at most [`MEDIA_MAX`]. The URL may be a string, a `Link` or a list of
/// links (Pleroma), whose `mediaType` counts when the attachment has none; without any, the
/// attachment's type (`Image`, `Video`, `Audio`) says what it is.
pub fn attachments(doc: &Value) -> Vec<Media> {
    let list = match doc.get("attachment") {
        Some(Value::Array(list)) => list.iter().collect::<Vec<_>>(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => Vec::new(),
    };
    list.into_iter()
        .filter_map(|a| {
            let url = a.get("url").and_then(parse::url_of)?;
            let link_type = match a.get("url") {
                Some(Value::Array(links)) => links
                    .iter()
                    .find_map(|l| l.get("mediaType").and_then(Value::as_str)),
                Some(link @ Value::Object(_)) => link.get("mediaType").and_then(Value::as_str),
                _ => None,
            };
            let content_type = a
                .get("mediaType")
                .and_then(Value::as_str)
                .or(link_type)
                .map(|t| parse::truncate(t, 255));
            let kind = match content_type.as_deref().and_then(|t| t.split('/').next()) {
                Some("image") => "image",
                Some("video") => "video",
                Some("audio") => "audio",
                _ => match parse::type_of(a) {
                    Some("Image") => "image",
                    Some("Video") => "video",
                    Some("Audio") => "audio",
                    _ => "unknown",
                },
            };
            Some(Media {
                kind,
                url,
                content_type,
                description: a
                    .get("name")
                    .and_then(Value::as_str)
                    .map(|n| parse::truncate(n, 1500))
                    .unwrap_or_default(),
                blurhash: a
                    .get("blurhash")
                    .and_then(Value::as_str)
                    .filter(|b| b.len() <= 100)
                    .map(str::to_string),
            })
        })
        .take(MEDIA_MAX)
        .collect()
}

/// The status replied to.
pub fn in_reply_to(doc: &Value) -> Option<&str> {
    doc.get("inReplyTo").and_then(parse::id_of)
}

/// The quoted status (Misskey's `_misskey_quote` / `quoteUrl`, Fedibird's `quoteUri`, FEP-e232
/// `quote`): read, not stored yet (statuses have no quote column).
pub fn quote(doc: &Value) -> Option<&str> {
    ["quote", "quoteUrl", "quoteUri", "_misskey_quote"]
        .iter()
        .find_map(|k| doc.get(*k).and_then(parse::id_of))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn visibility_follows_addressing() {
        let f = Some("https://m.example/users/bob/followers");
        assert_eq!(visibility(&json!({"to": [PUBLIC]}), f), "public");
        assert_eq!(
            visibility(&json!({"to": f, "cc": ["as:Public"]}), f),
            "unlisted"
        );
        assert_eq!(visibility(&json!({"to": [f]}), f), "private");
        assert_eq!(
            visibility(&json!({"to": ["https://x.example/users/a"]}), f),
            "direct"
        );
    }

    #[test]
    fn hashtags_are_deduplicated_and_checked() {
        let doc = json!({"tag": [
            {"type": "Hashtag", "name": "#Rust"}, {"type": "Hashtag", "name": "#rust"},
            {"type": "Hashtag", "name": "#bad tag"}, {"type": "Mention", "name": "@a"}]});
        assert_eq!(hashtags(&doc), vec!["Rust".to_string()]);
    }
}
