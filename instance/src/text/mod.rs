//! Status text: what people type turned into the HTML Mastodon clients display, the mentions
//! and hashtags found in it (stored beside the status), its length as Mastodon counts it,
//! and the sanitizer that reduces HTML from other servers to Mastodon's strict allow-list.
//!
//! Rendering never lets typed text become markup: every character is escaped, and the only
//! elements in the output are the ones written here (paragraphs, line breaks, links).

mod sanitize;
mod scan;

pub use sanitize::sanitize;
pub use scan::{Acct, Token, tokens};

use unicode_segmentation::UnicodeSegmentation;

/// Characters of a link shown before the rest is hidden behind an ellipsis (Mastodon's 30).
const LINK_DISPLAY_CHARS: usize = 30;

/// Where a resolved mention links to, and the name it shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MentionTarget {
    pub url: String,
    pub username: String,
}

/// What a status text refers to, for storage and for resolving before rendering.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extracted {
    /// Each account once, in order of first appearance; `domain` is None for this server.
    pub mentions: Vec<Acct>,
    /// Each hashtag once (compared case-insensitively), as first written.
    pub tags: Vec<String>,
}

/// The mentions and hashtags of `text`; `local_domain` names this server, whose accounts
/// may be written `@user@local_domain` too.
pub fn extract(text: &str, local_domain: &str) -> Extracted {
    let mut out = Extracted::default();
    for token in tokens(text) {
        match token {
            Token::Mention(acct) => {
                let acct = acct.normalized(local_domain);
                if !out.mentions.iter().any(|m| m.same(&acct)) {
                    out.mentions.push(acct);
                }
            }
            Token::Hashtag(tag) => {
                if !out
                    .tags
                    .iter()
                    .any(|t| t.to_lowercase() == tag.to_lowercase())
                {
                    out.tags.push(tag.to_string());
                }
            }
            Token::Text(_) | Token::Url(_) => {}
        }
    }
    out
}

/// The length Mastodon checks against `max_characters`: grapheme clusters of the text and
/// the content warning together, every URL counted as `url_weight` characters whatever its
/// length, and a remote mention as its `@username` part only.
pub fn countable_length(text: &str, spoiler_text: &str, url_weight: usize) -> usize {
    let count = |s: &str| {
        tokens(s)
            .map(|t| match t {
                Token::Text(t) => t.graphemes(true).count(),
                Token::Url(_) => url_weight,
                Token::Mention(acct) => 1 + acct.username.graphemes(true).count(),
                Token::Hashtag(tag) => 1 + tag.graphemes(true).count(),
            })
            .sum::<usize>()
    };
    count(text) + count(spoiler_text)
}

/// A status as Mastodon renders it: a `<p>` per paragraph (blank-line separated), `<br />`
/// per line break, http(s) URLs as links, hashtags linked to `base_url/tags/...`, and each
/// mention that `resolve` knows as an h-card link (unknown ones stay text). Blank text
/// gives an empty string.
pub fn render(
    text: &str,
    base_url: &str,
    local_domain: &str,
    resolve: impl Fn(&Acct) -> Option<MentionTarget>,
) -> String {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut out = String::new();
    let mut paragraph: Vec<String> = Vec::new();
    let flush = |paragraph: &mut Vec<String>, out: &mut String| {
        if !paragraph.is_empty() {
            out.push_str("<p>");
            out.push_str(&paragraph.join("<br />"));
            out.push_str("</p>");
            paragraph.clear();
        }
    };
    for line in text.trim().split('\n') {
        if line.trim().is_empty() {
            flush(&mut paragraph, &mut out);
            continue;
        }
        let mut html = String::new();
        for token in tokens(line) {
            match token {
                Token::Text(t) => html.push_str(&escape(t)),
                Token::Url(url) => html.push_str(&link(url)),
                Token::Hashtag(tag) => html.push_str(&hashtag(tag, base_url)),
                Token::Mention(acct) => match resolve(&acct.normalized(local_domain)) {
                    Some(target) => html.push_str(&mention(&target)),
                    None => html.push_str(&escape(&acct.written())),
                },
            }
        }
        paragraph.push(html);
    }
    flush(&mut paragraph, &mut out);
    out
}

/// Escapes text for both element content and double- or single-quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Mastodon's link markup: the scheme (and `www.`) invisible, the first 30 characters shown,
/// the remainder invisible behind an ellipsis.
fn link(url: &str) -> String {
    let (scheme, after) = url.split_once("://").unwrap_or(("https", url));
    let (prefix, display) = match after.strip_prefix("www.") {
        Some(d) => (format!("{scheme}://www."), d),
        None => (format!("{scheme}://"), after),
    };
    let (shown, hidden, class) = match display.char_indices().nth(LINK_DISPLAY_CHARS) {
        Some((i, _)) => (&display[..i], &display[i..], "ellipsis"),
        None => (display, "", ""),
    };
    format!(
        "<a href=\"{}\" target=\"_blank\" rel=\"nofollow noopener\" translate=\"no\">\
         <span class=\"invisible\">{}</span><span class=\"{class}\">{}</span>\
         <span class=\"invisible\">{}</span></a>",
        escape(url),
        escape(&prefix),
        escape(shown),
        escape(hidden),
    )
}

fn hashtag(tag: &str, base_url: &str) -> String {
    format!(
        "<a href=\"{base_url}/tags/{}\" class=\"mention hashtag\" rel=\"tag\">#<span>{}</span></a>",
        escape(&percent_encode(tag)),
        escape(tag)
    )
}

fn mention(target: &MentionTarget) -> String {
    format!(
        "<span class=\"h-card\" translate=\"no\"><a href=\"{}\" class=\"u-url mention\">\
         @<span>{}</span></a></span>",
        escape(&target.url),
        escape(&target.username)
    )
}

/// A path segment: ASCII letters, digits and `_` as they are, every other byte `%XX`.
pub fn percent_encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "https://social.example";
    const DOMAIN: &str = "social.example";

    /// Knows `alice` (local) and `bob@remote.example`.
    fn known(acct: &Acct) -> Option<MentionTarget> {
        match (
            acct.username.to_lowercase().as_str(),
            acct.domain.as_deref(),
        ) {
            ("alice", None) => Some(MentionTarget {
                url: format!("{BASE}/@alice"),
                username: "alice".into(),
            }),
            ("bob", Some("remote.example")) => Some(MentionTarget {
                url: "https://remote.example/@bob".into(),
                username: "bob".into(),
            }),
            _ => None,
        }
    }

    fn r(text: &str) -> String {
        render(text, BASE, DOMAIN, known)
    }

    #[test]
    fn paragraphs_line_breaks_and_escaping() {
        let cases = [
            ("", ""),
            ("  \n\n ", ""),
            ("one", "<p>one</p>"),
            ("a\nb", "<p>a<br />b</p>"),
            ("a\r\nb\n\n\nc", "<p>a<br />b</p><p>c</p>"),
            ("a\n  \nb", "<p>a</p><p>b</p>"),
            (
                "<script>alert('x')</script> & \"q\"",
                "<p>&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;</p>",
            ),
            (
                "<img src=x onerror=alert(1)>",
                "<p>&lt;img src=x onerror=alert(1)&gt;</p>",
            ),
            ("&lt;b&gt;", "<p>&amp;lt;b&amp;gt;</p>"),
        ];
        for (input, want) in cases {
            assert_eq!(r(input), want, "{input:?}");
        }
    }

    #[test]
    fn known_mentions_become_h_cards_and_unknown_ones_stay_text() {
        let alice = "<span class=\"h-card\" translate=\"no\"><a href=\"https://social.example/@alice\" \
                     class=\"u-url mention\">@<span>alice</span></a></span>";
        let bob = "<span class=\"h-card\" translate=\"no\"><a href=\"https://remote.example/@bob\" \
                   class=\"u-url mention\">@<span>bob</span></a></span>";
        let cases = [
            ("hi @alice!".to_string(), format!("<p>hi {alice}!</p>")),
            (
                "@Alice@Social.Example".to_string(),
                format!("<p>{alice}</p>"),
            ),
            ("@bob@remote.example.".to_string(), format!("<p>{bob}.</p>")),
            ("@carol".to_string(), "<p>@carol</p>".to_string()),
            (
                "@carol@other.example".to_string(),
                "<p>@carol@other.example</p>".to_string(),
            ),
            // Not at a word start: an e-mail address or a path.
            (
                "mail alice@alice.example".to_string(),
                "<p>mail alice@alice.example</p>".to_string(),
            ),
            ("x/@alice".to_string(), "<p>x/@alice</p>".to_string()),
        ];
        for (input, want) in cases {
            assert_eq!(r(&input), want, "{input:?}");
        }
    }

    #[test]
    fn hashtags_link_to_the_tag_page() {
        assert_eq!(
            r("#Rust and #rust_lang, not #123 nor a#b"),
            "<p><a href=\"https://social.example/tags/Rust\" class=\"mention hashtag\" rel=\"tag\">\
             #<span>Rust</span></a> and <a href=\"https://social.example/tags/rust_lang\" \
             class=\"mention hashtag\" rel=\"tag\">#<span>rust_lang</span></a>, not #123 nor a#b</p>"
        );
        let unicode = r("#café");
        assert!(
            unicode.contains("href=\"https://social.example/tags/caf%C3%A9\""),
            "{unicode}"
        );
        assert!(unicode.contains("#<span>café</span>"), "{unicode}");
        // An anchor in a URL is part of the URL.
        assert!(!r("https://example.com/#top").contains("hashtag"));
    }

    #[test]
    fn urls_become_links_in_mastodon_markup() {
        assert_eq!(
            r("see https://example.com/a."),
            "<p>see <a href=\"https://example.com/a\" target=\"_blank\" rel=\"nofollow noopener\" \
             translate=\"no\"><span class=\"invisible\">https://</span><span class=\"\">\
             example.com/a</span><span class=\"invisible\"></span></a>.</p>"
        );
        let long = r("https://www.example.com/a/very/long/path/that/goes/on?x=1&y=2");
        assert!(
            long.contains("<span class=\"invisible\">https://www.</span>"),
            "{long}"
        );
        assert!(
            long.contains(
                "<span class=\"ellipsis\">example.com/a/very/long/path/t</span>\
                 <span class=\"invisible\">hat/goes/on?x=1&amp;y=2</span>"
            ),
            "{long}"
        );
        let wiki = r("(https://en.wikipedia.org/wiki/Rust_(language))");
        assert!(
            wiki.contains("href=\"https://en.wikipedia.org/wiki/Rust_(language)\""),
            "{wiki}"
        );
        assert!(wiki.ends_with("</a>)</p>"), "{wiki}");
        for text in [
            "javascript:alert(1)",
            "xhttps://example.com",
            "https://",
            "data:text/html,<b>",
        ] {
            assert!(!r(text).contains("<a "), "{text}");
        }
        let quoted = r("\"https://example.com/\"onmouseover=alert(1)");
        assert!(quoted.contains("href=\"https://example.com/\""), "{quoted}");
        assert!(!quoted.contains("\"onmouseover"), "{quoted}");
    }

    #[test]
    fn mentions_and_tags_are_extracted_once_each() {
        let e = extract(
            "@alice @ALICE @alice@social.example @bob@Remote.Example #Tag #tag #other",
            DOMAIN,
        );
        let accts: Vec<(String, Option<String>)> = e
            .mentions
            .iter()
            .map(|a| (a.username.clone(), a.domain.clone()))
            .collect();
        assert_eq!(
            accts,
            [
                ("alice".to_string(), None),
                ("bob".to_string(), Some("remote.example".to_string()))
            ]
        );
        assert_eq!(e.tags, ["Tag", "other"]);
    }

    #[test]
    fn length_counts_graphemes_urls_as_23_and_remote_mentions_by_username() {
        let cases = [
            ("", "", 0),
            ("hello", "", 5),
            ("hello", "cw", 7),
            ("👩‍👩‍👧‍👦 é", "", 3),
            ("https://example.com/a/very/long/path/indeed/yes", "", 23),
            ("x http://a.example", "", 25),
            ("@bob@remote.example", "", 4),
            ("@alice", "", 6),
        ];
        for (text, cw, want) in cases {
            assert_eq!(countable_length(text, cw, 23), want, "{text:?}");
        }
    }
}
