//! HTML from other servers reduced to Mastodon's strict allow-list (`MASTODON_STRICT`):
//! `p br span a del s pre blockquote code b strong u i em ul ol li ruby rt rp`; `lang`
//! anywhere, `a[href class translate]`, `span[class translate]`, `ol[start reversed]`,
//! `li[value]`, `p[class]`; classes limited to microformats and Mastodon's own; `translate`
//! only as `no`; `h1`-`h6` become `<p><strong>`; links with another scheme (or none) become
//! their text; every link gets `rel="nofollow noopener" target="_blank"`.
//!
//! Three steps, each on safe input: ammonia parses the HTML as a browser would and keeps
//! the allow-list plus headings; a small rewrite of that serialised output turns headings
//! into paragraphs and unlinks links that lost their `href`; ammonia then cleans the result
//! again with the final allow-list, so that nothing the rewrite could get wrong survives.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use ammonia::{Builder, UrlRelative};

const ELEMENTS: &[&str] = &[
    "p",
    "br",
    "span",
    "a",
    "del",
    "s",
    "pre",
    "blockquote",
    "code",
    "b",
    "strong",
    "u",
    "i",
    "em",
    "ul",
    "ol",
    "li",
    "ruby",
    "rt",
    "rp",
];
const HEADINGS: &[&str] = &["h1", "h2", "h3", "h4", "h5", "h6"];
const LINK_SCHEMES: &[&str] = &[
    "http", "https", "dat", "dweb", "ipfs", "ipns", "ssb", "gopher", "xmpp", "magnet", "gemini",
];
/// Removed with everything inside: their content is code or a document of its own, never
/// text meant for the reader.
const DROPPED_WITH_CONTENT: &[&str] = &[
    "script", "style", "template", "iframe", "noscript", "object",
];

/// Microformats (`h-card`, `u-url`...) and the classes Mastodon's own markup uses.
fn allowed_class(class: &str) -> bool {
    let microformat = ["h-", "p-", "u-", "dt-", "e-"]
        .iter()
        .any(|p| class.len() > p.len() && class.starts_with(p));
    (microformat
        || matches!(
            class,
            "mention" | "hashtag" | "ellipsis" | "invisible" | "quote-inline"
        ))
        && class
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Attribute values: classes filtered, `translate` only as `no`, numbers as numbers, and
/// `lang` as a language tag, so that no value carries anything but what it claims to be.
fn filter_attribute<'u>(_element: &str, name: &str, value: &'u str) -> Option<Cow<'u, str>> {
    match name {
        "class" => {
            let kept: Vec<&str> = value
                .split(['\t', '\n', '\x0c', '\r', ' '])
                .filter(|c| allowed_class(c))
                .collect();
            (!kept.is_empty()).then(|| Cow::Owned(kept.join(" ")))
        }
        "translate" => (value == "no").then_some(Cow::Borrowed(value)),
        "start" | "value" => {
            let digits = value.strip_prefix('-').unwrap_or(value);
            (!digits.is_empty() && digits.len() <= 9 && digits.bytes().all(|b| b.is_ascii_digit()))
                .then_some(Cow::Borrowed(value))
        }
        "reversed" => Some(Cow::Borrowed("")),
        "lang" => (!value.is_empty()
            && value.len() <= 35
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .then_some(Cow::Borrowed(value)),
        _ => Some(Cow::Borrowed(value)),
    }
}

fn builder(headings: bool) -> Builder<'static> {
    let mut tags: HashSet<&'static str> = ELEMENTS.iter().copied().collect();
    if headings {
        tags.extend(HEADINGS);
    }
    let tag_attributes: HashMap<&'static str, HashSet<&'static str>> = [
        ("a", &["href", "class", "translate"][..]),
        ("span", &["class", "translate"]),
        ("ol", &["start", "reversed"]),
        ("li", &["value"]),
        ("p", &["class"]),
    ]
    .into_iter()
    .map(|(tag, attrs)| (tag, attrs.iter().copied().collect()))
    .collect();
    let mut b = Builder::empty();
    b.tags(tags)
        .clean_content_tags(DROPPED_WITH_CONTENT.iter().copied().collect())
        .generic_attributes(["lang"].into_iter().collect())
        .tag_attributes(tag_attributes)
        .url_schemes(LINK_SCHEMES.iter().copied().collect())
        // Mastodon's UNSUPPORTED_HREF_TRANSFORMER treats a relative link as an unsupported
        // scheme: it would point into this server.
        .url_relative(UrlRelative::Deny)
        .strip_comments(true)
        .attribute_filter(filter_attribute);
    if headings {
        b.link_rel(None);
    } else {
        b.link_rel(Some("nofollow noopener"))
            .set_tag_attribute_value("a", "target", "_blank");
    }
    b
}

static FIRST: LazyLock<Builder<'static>> = LazyLock::new(|| builder(true));
static FINAL: LazyLock<Builder<'static>> = LazyLock::new(|| builder(false));

/// `html` with only Mastodon's strict allow-list left.
pub fn sanitize(html: &str) -> String {
    let first = FIRST.clean(html).to_string();
    let rewritten = rewrite(&first).unwrap_or_else(|| super::escape(&first));
    FINAL.clean(&rewritten).to_string()
}

/// One tag of html5ever's serialisation, which writes every attribute as `name="value"`,
/// escapes `<`, `>` and `"` inside values and `<`, `>` in text: a `<` always opens a tag.
struct Tag<'a> {
    end: bool,
    name: &'a str,
    /// Raw (still escaped) attribute text, from after the name to before `>`.
    attrs: &'a str,
}

impl Tag<'_> {
    fn has_attr(&self, wanted: &str) -> bool {
        let mut rest = self.attrs;
        while let Some(eq) = rest.find("=\"") {
            if rest[..eq].trim() == wanted {
                return true;
            }
            let after = &rest[eq + 2..];
            let Some(close) = after.find('"') else {
                return false;
            };
            rest = &after[close + 1..];
        }
        false
    }
}

/// The tag at the start of `s` (which begins with `<`), and its length.
fn parse_tag(s: &str) -> Option<(Tag<'_>, usize)> {
    let (end, body) = match s.strip_prefix("</") {
        Some(b) => (true, b),
        None => (false, &s[1..]),
    };
    let name_len = body.find(|c: char| !c.is_ascii_alphanumeric())?;
    let name = &body[..name_len];
    // Find the closing `>` outside quoted values.
    let mut in_quotes = false;
    for (i, c) in body.char_indices().skip(name_len) {
        match c {
            '"' => in_quotes = !in_quotes,
            '>' if !in_quotes => {
                let len = s.len() - body.len() + i + 1;
                return Some((
                    Tag {
                        end,
                        name,
                        attrs: &body[name_len..i],
                    },
                    len,
                ));
            }
            _ => {}
        }
    }
    None
}

/// Headings into `<p><strong>`, and links without an `href` (ammonia removed a scheme
/// outside the list, or a relative one) into their text, as Mastodon's transformers do.
/// None if the input is not the serialisation expected: the caller then escapes it all.
fn rewrite(html: &str) -> Option<String> {
    let mut out = String::with_capacity(html.len() + 32);
    // Depth of `<a>` elements being replaced by their text (markup inside is dropped).
    let mut unlinking = 0usize;
    let mut rest = html;
    while let Some(lt) = rest.find('<') {
        out.push_str(&rest[..lt]);
        let (tag, len) = parse_tag(&rest[lt..])?;
        rest = &rest[lt + len..];
        if unlinking > 0 {
            if tag.name == "a" {
                if tag.end {
                    unlinking -= 1;
                } else {
                    unlinking += 1;
                }
            }
            continue;
        }
        match (tag.name, tag.end) {
            ("a", false) if !tag.has_attr("href") => unlinking = 1,
            (h, false) if HEADINGS.contains(&h) => out.push_str("<p><strong>"),
            (h, true) if HEADINGS.contains(&h) => out.push_str("</strong></p>"),
            _ => out.push_str(&html[html.len() - rest.len() - len..html.len() - rest.len()]),
        }
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_markup_survives_as_mastodon_keeps_it() {
        let cases = [
            ("plain & simple", "plain &amp; simple"),
            ("<p>a<br>b</p>", "<p>a<br>b</p>"),
            (
                "<p lang=\"de\"><b>f</b><i>k</i><em>e</em><strong>s</strong><u>u</u><del>d</del><s>s</s></p>",
                "<p lang=\"de\"><b>f</b><i>k</i><em>e</em><strong>s</strong><u>u</u><del>d</del><s>s</s></p>",
            ),
            (
                "<pre><code>x &lt; y</code></pre><blockquote>q</blockquote>",
                "<pre><code>x &lt; y</code></pre><blockquote>q</blockquote>",
            ),
            (
                "<ol start=\"3\" reversed><li value=\"7\">a</li></ol><ul><li>b</li></ul>",
                "<ol start=\"3\" reversed=\"\"><li value=\"7\">a</li></ol><ul><li>b</li></ul>",
            ),
            (
                "<ruby>漢<rp>(</rp><rt>kan</rt><rp>)</rp></ruby>",
                "<ruby>漢<rp>(</rp><rt>kan</rt><rp>)</rp></ruby>",
            ),
            (
                "<span class=\"h-card\" translate=\"no\"><a href=\"https://x.example/@a\" class=\"u-url mention\">@<span>a</span></a></span>",
                "<span class=\"h-card\" translate=\"no\"><a href=\"https://x.example/@a\" class=\"u-url mention\" target=\"_blank\" rel=\"nofollow noopener\">@<span>a</span></a></span>",
            ),
            (
                "<p class=\"quote-inline\">RE: x</p>",
                "<p class=\"quote-inline\">RE: x</p>",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(sanitize(input), want, "{input}");
        }
    }

    #[test]
    fn mastodon_transformations() {
        let cases = [
            (
                "<h1>Title</h1><p>x</p>",
                "<p><strong>Title</strong></p><p>x</p>",
            ),
            (
                "<h3 lang=\"en\" onclick=\"x()\">T</h3>",
                "<p><strong>T</strong></p>",
            ),
            (
                "<ul><li><h6>a</h6></li></ul>",
                "<ul><li><p><strong>a</strong></p></li></ul>",
            ),
            // Every link gets Mastodon's rel and target, whatever it had.
            (
                "<a href=\"https://x.example/\" rel=\"opener\" target=\"_self\">x</a>",
                "<a href=\"https://x.example/\" target=\"_blank\" rel=\"nofollow noopener\">x</a>",
            ),
            (
                "<a href=\"gemini://x.example/\">g</a>",
                "<a href=\"gemini://x.example/\" target=\"_blank\" rel=\"nofollow noopener\">g</a>",
            ),
            // Schemes outside the list, relative links and links without href: text.
            ("<a href=\"javascript:alert(1)\">click</a>", "click"),
            ("<a href=\"ftp://x.example/\"><b>f</b>tp</a>", "ftp"),
            ("<a href=\"/relative\">r</a> and <a>none</a>", "r and none"),
            ("<a href=\"\">e</a>", "e"),
            // Classes: microformats and Mastodon's own only.
            (
                "<span class=\"invisible evil h-card x-y\">s</span>",
                "<span class=\"invisible h-card\">s</span>",
            ),
            ("<span class=\"evil\">s</span>", "<span>s</span>"),
            ("<span translate=\"yes\">s</span>", "<span>s</span>"),
            ("<b class=\"mention\">s</b>", "<b>s</b>"),
            // Unknown elements are unwrapped, their text kept.
            (
                "<div><section>in</section></div><table><tr><td>c</td></tr></table>",
                "inc",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(sanitize(input), want, "{input}");
        }
    }

    /// Whatever goes in, nothing comes out but allow-listed elements and attributes.
    #[test]
    fn xss_corpus_leaves_only_the_allow_list() {
        let corpus = [
            "<script>alert(1)</script>",
            "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
            "<scr<script>ipt>alert(1)</script>",
            "<img src=x onerror=alert(1)>",
            "<p onmouseover=\"alert(1)\">x</p>",
            "<a href=\"javascript:alert(1)\">x</a>",
            "<a href=\"JaVaScRiPt:alert(1)\">x</a>",
            "<a href=\"  javascript:alert(1)\">x</a>",
            "<a href=\"java&#x09;script:alert(1)\">x</a>",
            "<a href=\"&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1)\">x</a>",
            "<a href=\"javascript&colon;alert(1)\">x</a>",
            "<a href=\"data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==\">x</a>",
            "<a href=\"vbscript:msgbox(1)\">x</a>",
            "<a href=\"https://ok.example/\" onclick=\"alert(1)\" style=\"color:red\">ok</a>",
            "<span style=\"background:url(javascript:alert(1))\">s</span>",
            "<style>body{background:red}</style>",
            "<iframe src=\"https://evil.example/\"></iframe>",
            "<iframe srcdoc=\"<script>alert(1)</script>\"></iframe>",
            "<svg onload=alert(1)><script>alert(1)</script></svg>",
            "<svg><a xlink:href=\"javascript:alert(1)\"><text>x</text></a></svg>",
            "<math><mi xlink:href=\"javascript:alert(1)\">x</mi></math>",
            "<object data=\"javascript:alert(1)\"></object>",
            "<embed src=\"javascript:alert(1)\">",
            "<form action=\"javascript:alert(1)\"><input type=submit></form>",
            "<meta http-equiv=\"refresh\" content=\"0;url=javascript:alert(1)\">",
            "<base href=\"javascript:alert(1)//\">",
            "<link rel=stylesheet href=\"https://evil.example/x.css\">",
            "<!--<img src=x onerror=alert(1)>-->",
            "<![CDATA[<img src=x onerror=alert(1)>]]>",
            "<p title=\"\"><img src=x onerror=alert(1)>\"></p>",
            "<a href=\"https://x.example/\" title='\"><script>alert(1)</script>'>x</a>",
            "<span class='\"><script>alert(1)</script>'>x</span>",
            "<p lang=\"en\" onclick=\"alert(1)\" lang=\"x\">dup</p>",
            "<p lang='\"><img src=x onerror=alert(1)>'>l</p>",
            "<ol start=\"1 onclick=alert(1)\"><li value=\"x\">v</li></ol>",
            "&lt;script&gt;alert(1)&lt;/script&gt;",
            "&#60;script&#62;alert(1)&#60;/script&#62;",
            "<noscript><p title=\"</noscript><img src=x onerror=alert(1)>\"></noscript>",
            "<textarea><script>alert(1)</script></textarea>",
            "<xmp><script>alert(1)</script></xmp>",
            "<template><script>alert(1)</script></template>",
            "<select><style><img src=x onerror=alert(1)></style></select>",
            "<table><td><a href=\"javascript:alert(1)\">x</a></td></table>",
            "<h1 onclick=\"alert(1)\"><a href=\"javascript:alert(1)\">h</a></h1>",
            "<a href=\"https://x.example/<h1>\">h</a>",
            "<p>unclosed <b>bold <a href=\"https://x.example\">link",
            "<a href=\"https://x.example\"><a href=\"javascript:alert(1)\">nested</a></a>",
            "<video src=x onerror=alert(1)>",
            "<body onload=alert(1)>",
            "<details open ontoggle=alert(1)>",
            "<a href=\"https://x.example\" target=\"_self\" rel=\"opener\" ping=\"https://t.example\">p</a>",
        ];
        for input in corpus {
            let out = sanitize(input);
            assert_only_allow_listed(&out, input);
            // Idempotent: what is clean stays as it is.
            assert_eq!(sanitize(&out), out, "{input}");
        }
    }

    /// Walks the output (which must be html5ever's serialisation) and checks each element
    /// and attribute against the allow-list.
    fn assert_only_allow_listed(out: &str, input: &str) {
        let lower = out.to_ascii_lowercase();
        for bad in [
            "javascript:",
            "data:",
            "vbscript:",
            "onerror",
            "onclick",
            "onload",
            "style=",
        ] {
            if lower.contains(bad) {
                // Only as escaped text, never inside a tag.
                let mut rest = out;
                while let Some(lt) = rest.find('<') {
                    let (tag, len) = parse_tag(&rest[lt..]).expect("well-formed output");
                    assert!(
                        !tag.attrs.to_ascii_lowercase().contains(bad),
                        "{bad} in a tag of {out:?} (from {input:?})"
                    );
                    rest = &rest[lt + len..];
                }
            }
        }
        let mut rest = out;
        while let Some(lt) = rest.find('<') {
            let (tag, len) =
                parse_tag(&rest[lt..]).unwrap_or_else(|| panic!("bad tag in {out:?} ({input:?})"));
            assert!(
                ELEMENTS.contains(&tag.name),
                "<{}> in {out:?} from {input:?}",
                tag.name
            );
            let mut attrs = tag.attrs;
            while let Some(eq) = attrs.find("=\"") {
                let name = attrs[..eq].trim();
                let allowed = name == "lang"
                    || matches!(
                        (tag.name, name),
                        ("a", "href" | "rel" | "class" | "translate" | "target")
                            | ("span", "class" | "translate")
                            | ("ol", "start" | "reversed")
                            | ("li", "value")
                            | ("p", "class")
                    );
                assert!(allowed, "{}[{name}] in {out:?} from {input:?}", tag.name);
                let after = &attrs[eq + 2..];
                let close = after.find('"').unwrap();
                let value = &after[..close];
                if name == "href" {
                    let scheme = value.split(':').next().unwrap().to_ascii_lowercase();
                    assert!(
                        LINK_SCHEMES.contains(&scheme.as_str()),
                        "{value} in {out:?}"
                    );
                }
                if name == "rel" {
                    assert_eq!(value, "nofollow noopener");
                }
                attrs = &after[close + 1..];
            }
            if tag.name == "a" && !tag.end {
                assert!(tag.has_attr("href") && tag.has_attr("rel") && tag.has_attr("target"));
            }
            rest = &rest[lt + len..];
        }
    }
}
