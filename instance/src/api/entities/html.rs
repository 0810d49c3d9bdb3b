//! Plain text that people type (profile notes, field values) turned into the HTML Mastodon
//! clients display: every character escaped, paragraphs and line breaks kept, and http(s)
//! links made clickable in Mastodon's markup (scheme hidden, long links shortened with an
//! ellipsis). Nothing the user typed can become markup of its own.

/// Characters of a link shown before the rest is hidden behind an ellipsis (Mastodon's 30).
const LINK_DISPLAY_CHARS: usize = 30;

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

/// A note or a post body: `<p>` per paragraph (blank-line separated), `<br />` per line
/// break, as Rails' `simple_format` that Mastodon uses. Blank text gives an empty string.
pub fn paragraphs(text: &str) -> String {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut out = String::new();
    let mut paragraph: Vec<&str> = Vec::new();
    let flush = |paragraph: &mut Vec<&str>, out: &mut String| {
        if paragraph.is_empty() {
            return;
        }
        out.push_str("<p>");
        let lines: Vec<String> = paragraph
            .iter()
            .map(|l| inline(l, "nofollow noopener"))
            .collect();
        out.push_str(&lines.join("<br />"));
        out.push_str("</p>");
        paragraph.clear();
    };
    for line in text.trim().split('\n') {
        if line.trim().is_empty() {
            flush(&mut paragraph, &mut out);
        } else {
            paragraph.push(line);
        }
    }
    flush(&mut paragraph, &mut out);
    out
}

/// A profile field value: one line, links carrying `rel="me"` so that the linked page can
/// be checked for a link back (Mastodon's verification).
pub fn field_value(text: &str) -> String {
    inline(text, "me nofollow noopener")
}

/// Escapes `text`, turning http(s) URLs into links with `rel`.
fn inline(text: &str, rel: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some((start, end)) = next_link(rest) {
        out.push_str(&escape(&rest[..start]));
        out.push_str(&link(&rest[start..end], rel));
        rest = &rest[end..];
    }
    out.push_str(&escape(rest));
    out
}

/// The byte range of the first URL in `text` that starts a word.
fn next_link(text: &str) -> Option<(usize, usize)> {
    let mut from = 0;
    loop {
        let found = ["https://", "http://"]
            .iter()
            .filter_map(|scheme| text[from..].find(scheme).map(|i| from + i))
            .min()?;
        let starts_word = text[..found]
            .chars()
            .next_back()
            .is_none_or(|c| c.is_whitespace() || "([{<\"'".contains(c));
        let len = text[found..]
            .find(|c: char| c.is_whitespace() || "<>\"".contains(c))
            .unwrap_or(text.len() - found);
        let end = found + trim_trailing(&text[found..found + len]);
        let candidate = &text[found..end];
        if starts_word
            && url::Url::parse(candidate).is_ok_and(|u| u.host_str().is_some_and(|h| !h.is_empty()))
            && candidate
                .split_once("://")
                .is_some_and(|(_, r)| !r.is_empty())
        {
            return Some((found, end));
        }
        from = found + 1;
    }
}

/// The length of `url` without punctuation that ends the sentence rather than the URL; a
/// closing parenthesis stays when the URL opened one (Wikipedia links).
fn trim_trailing(url: &str) -> usize {
    let mut end = url.len();
    loop {
        let Some(c) = url[..end].chars().next_back() else {
            return end;
        };
        let unbalanced_paren =
            c == ')' && url[..end].matches('(').count() < url[..end].matches(')').count();
        if ".,;:!?'\"]}".contains(c) || unbalanced_paren {
            end -= c.len_utf8();
        } else {
            return end;
        }
    }
}

/// Mastodon's link markup: the scheme (and `www.`) invisible, the first 30 characters shown,
/// the remainder invisible behind an ellipsis.
fn link(url: &str, rel: &str) -> String {
    let (scheme, after) = url.split_once("://").expect("links have a scheme");
    let (prefix, display) = match after.strip_prefix("www.") {
        Some(d) => (format!("{scheme}://www."), d),
        None => (format!("{scheme}://"), after),
    };
    let (shown, hidden, class) = match display.char_indices().nth(LINK_DISPLAY_CHARS) {
        Some((i, _)) => (&display[..i], &display[i..], "ellipsis"),
        None => (display, "", ""),
    };
    format!(
        "<a href=\"{}\" target=\"_blank\" rel=\"{rel}\" translate=\"no\">\
         <span class=\"invisible\">{}</span><span class=\"{class}\">{}</span>\
         <span class=\"invisible\">{}</span></a>",
        escape(url),
        escape(&prefix),
        escape(shown),
        escape(hidden),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_is_escaped_never_interpreted() {
        assert_eq!(
            paragraphs("<script>alert('x')</script> & \"q\""),
            "<p>&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;</p>"
        );
        assert_eq!(
            field_value("<img src=x onerror=alert(1)>"),
            "&lt;img src=x onerror=alert(1)&gt;"
        );
    }

    #[test]
    fn paragraphs_and_line_breaks_survive() {
        let cases = [
            ("", ""),
            ("  \n\n ", ""),
            ("one", "<p>one</p>"),
            ("a\nb", "<p>a<br />b</p>"),
            ("a\r\nb\n\n\nc", "<p>a<br />b</p><p>c</p>"),
            ("a\n  \nb", "<p>a</p><p>b</p>"),
        ];
        for (input, want) in cases {
            assert_eq!(paragraphs(input), want, "{input:?}");
        }
    }

    #[test]
    fn urls_become_links_in_mastodon_markup() {
        assert_eq!(
            field_value("see https://example.com/a."),
            "see <a href=\"https://example.com/a\" target=\"_blank\" rel=\"me nofollow noopener\" \
             translate=\"no\"><span class=\"invisible\">https://</span><span class=\"\">\
             example.com/a</span><span class=\"invisible\"></span></a>."
        );
        let long = paragraphs("https://www.example.com/a/very/long/path/that/goes/on?x=1&y=2");
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
        assert!(long.contains(
            "href=\"https://www.example.com/a/very/long/path/that/goes/on?x=1&amp;y=2\""
        ));
        let wiki = field_value("(https://en.wikipedia.org/wiki/Rust_(language))");
        assert!(
            wiki.contains("href=\"https://en.wikipedia.org/wiki/Rust_(language)\""),
            "{wiki}"
        );
        assert!(wiki.ends_with("</a>)"), "{wiki}");
    }

    #[test]
    fn only_http_urls_that_start_a_word_are_linked() {
        for text in [
            "javascript:alert(1)",
            "xhttps://example.com",
            "https://",
            "https:// x",
            "data:text/html,<b>",
        ] {
            assert!(!field_value(text).contains("<a "), "{text}");
        }
        let quoted = field_value("\"https://example.com/\"onmouseover=alert(1)");
        assert!(quoted.contains("href=\"https://example.com/\""), "{quoted}");
        assert!(!quoted.contains("\"onmouseover"), "{quoted}");
    }
}
